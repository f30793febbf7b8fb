//! The layer itself: a FUSE file system that passes every operation through to a backing
//! directory, holds file data written but not synced in memory as a kernel's page cache
//! would, and behaves as its [`Mode`] says.
//!
//! Data is what a power cut loses: writes reach the backing file on `fsync`/`fdatasync`,
//! through a file opened `O_SYNC`/`O_DSYNC`, or when more than [`WRITEBACK_BYTES`] are
//! unsynced (as a kernel writes back under pressure). Metadata (creating, renaming,
//! removing, resizing) passes straight through and survives a power cut.

use super::mode::Mode;
use super::unsynced::Unsynced;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unsynced bytes past which everything unsynced is written back (not synced).
pub const WRITEBACK_BYTES: u64 = 256 << 20;

/// Attributes are never cached by the kernel: a dropped write changes a file's size.
const TTL: Duration = Duration::ZERO;

/// What an operation is, as the mode judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Reading data or metadata: only a stall holds it.
    Read,
    /// Changing metadata that takes no space (remove, rename, chmod).
    Change,
    /// Writing data, or making something that takes space.
    Write,
    Sync,
}

/// The mode, shared by the file system and whoever changes it.
#[derive(Debug, Default)]
pub struct Control {
    mode: Mutex<Mode>,
    changed: Condvar,
    rng: Mutex<u64>,
}

impl Control {
    pub fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    /// Sets the mode; operations stalled under the old one go on.
    pub fn set(&self, mode: Mode) {
        *lock(&self.mode) = mode;
        self.changed.notify_all();
    }

    /// Waits while the disk stalls, then says whether `op` goes through now.
    fn gate(&self, op: Op) -> Result<(), Errno> {
        let mut mode = lock(&self.mode);
        while *mode == Mode::Stall {
            mode = self.changed.wait(mode).unwrap_or_else(|e| e.into_inner());
        }
        let mode = *mode;
        match (mode, op) {
            (Mode::Slow(d), Op::Write | Op::Sync) => {
                std::thread::sleep(d);
                Ok(())
            }
            (Mode::Error(p), Op::Write | Op::Sync) if self.roll() < p => Err(Errno::EIO),
            (Mode::Full, Op::Write) => Err(Errno::ENOSPC),
            (Mode::Cut, _) => Err(Errno::EIO),
            _ => Ok(()),
        }
    }

    /// A number in 0..100 (xorshift).
    fn roll(&self) -> u8 {
        let mut s = lock(&self.rng);
        if *s == 0 {
            *s = crate::clock::monotonic_ns() | 1;
        }
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s % 100) as u8
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An open file.
struct Open {
    file: File,
    ino: u64,
    /// Opened `O_SYNC` or `O_DSYNC`: its writes reach the backing file at once.
    sync: bool,
}

#[derive(Default)]
struct State {
    /// Each inode's path in the backing directory, as last looked up.
    paths: HashMap<u64, PathBuf>,
    files: HashMap<u64, Open>,
    next_fh: u64,
    unsynced: HashMap<u64, Unsynced>,
    unsynced_bytes: u64,
}

/// The file system over backing directory `root`.
pub struct Layer {
    root: PathBuf,
    root_ino: u64,
    control: Arc<Control>,
    state: Arc<Mutex<State>>,
}

/// What the control socket needs of a mounted layer.
#[derive(Clone)]
pub struct Handle {
    pub control: Arc<Control>,
    state: Arc<Mutex<State>>,
}

impl Handle {
    /// Forgets every unsynced write, as a power cut does; returns how many bytes.
    pub fn drop_unsynced(&self) -> u64 {
        let mut st = lock(&self.state);
        st.unsynced.clear();
        std::mem::take(&mut st.unsynced_bytes)
    }

    /// How many bytes are written and not synced.
    pub fn unsynced_bytes(&self) -> u64 {
        lock(&self.state).unsynced_bytes
    }
}

impl Layer {
    pub fn new(root: &Path) -> std::io::Result<(Layer, Handle)> {
        let root_ino = std::fs::metadata(root)?.ino();
        let control = Arc::new(Control::default());
        let state = Arc::new(Mutex::new(State::default()));
        lock(&state).paths.insert(1, root.to_path_buf());
        let handle = Handle {
            control: control.clone(),
            state: state.clone(),
        };
        Ok((
            Layer {
                root: root.to_path_buf(),
                root_ino,
                control,
                state,
            },
            handle,
        ))
    }

    /// The inode number FUSE knows for a backing inode: the root's is 1 (and the backing
    /// inode 1, if any, takes the root's number).
    fn ino_of(&self, backing: u64) -> u64 {
        if backing == self.root_ino {
            1
        } else if backing == 1 {
            self.root_ino
        } else {
            backing
        }
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        lock(&self.state)
            .paths
            .get(&ino.0)
            .cloned()
            .ok_or(Errno::ESTALE)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// The attributes of `path`, its size grown by what is unsynced; the path is noted
    /// as its inode's.
    fn attr(&self, path: &Path) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(path)?;
        let ino = self.ino_of(m.ino());
        let mut st = lock(&self.state);
        st.paths.insert(ino, path.to_path_buf());
        let end = st.unsynced.get(&ino).map_or(0, Unsynced::end);
        Ok(FileAttr {
            ino: INodeNo(ino),
            size: m.size().max(end),
            blocks: m.blocks(),
            atime: time(m.atime(), m.atime_nsec()),
            mtime: time(m.mtime(), m.mtime_nsec()),
            ctime: time(m.ctime(), m.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: kind(m.file_type()),
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev() as u32,
            blksize: m.blksize() as u32,
            flags: 0,
        })
    }

    /// Writes `ino`'s unsynced data to `file`; with `sync`, syncs it too.
    fn write_back(&self, ino: u64, file: &File, sync: bool) -> Result<(), Errno> {
        let ranges = {
            let mut st = lock(&self.state);
            let ranges = st.unsynced.remove(&ino).map(|mut u| u.drain());
            let n: u64 = ranges.iter().flatten().map(|(_, v)| v.len() as u64).sum();
            st.unsynced_bytes -= n;
            ranges.unwrap_or_default()
        };
        for (at, bytes) in ranges {
            file.write_all_at(&bytes, at)?;
        }
        if sync {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Writes back everything unsynced, as a kernel does under memory pressure.
    fn write_back_all(&self) {
        let inos: Vec<(u64, Option<PathBuf>)> = {
            let st = lock(&self.state);
            st.unsynced
                .keys()
                .map(|i| (*i, st.paths.get(i).cloned()))
                .collect()
        };
        for (ino, path) in inos {
            match path.and_then(|p| OpenOptions::new().write(true).open(p).ok()) {
                Some(f) => {
                    let _ = self.write_back(ino, &f, false);
                }
                None => {
                    let mut st = lock(&self.state);
                    if let Some(u) = st.unsynced.remove(&ino) {
                        st.unsynced_bytes -= u.bytes();
                    }
                }
            }
        }
    }

    fn open_file(&self, ino: INodeNo, flags: i32) -> Result<u64, Errno> {
        let path = self.path(ino)?;
        // Always readable and writable here (the kernel checks the caller's rights), so
        // any handle can read what it wrote and write back what is unsynced.
        let keep = flags
            & !(libc::O_ACCMODE | libc::O_APPEND | libc::O_TRUNC | libc::O_CREAT)
            & !(libc::O_EXCL | libc::O_DIRECT | libc::O_SYNC | libc::O_DSYNC);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(keep)
            .open(&path)
            .or_else(|_| OpenOptions::new().read(true).custom_flags(keep).open(&path))?;
        Ok(self.keep_open(file, ino.0, flags))
    }

    fn keep_open(&self, file: File, ino: u64, flags: i32) -> u64 {
        let mut st = lock(&self.state);
        st.next_fh += 1;
        let fh = st.next_fh;
        let sync = flags & (libc::O_SYNC | libc::O_DSYNC) != 0;
        st.files.insert(fh, Open { file, ino, sync });
        fh
    }

    fn with_file<T>(
        &self,
        fh: FileHandle,
        f: impl FnOnce(&File, u64, bool) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let (file, ino, sync) = {
            let st = lock(&self.state);
            let o = st.files.get(&fh.0).ok_or(Errno::EBADF)?;
            (o.file.try_clone()?, o.ino, o.sync)
        };
        f(&file, ino, sync)
    }

    /// Gives what `req`'s caller made to the caller, as a kernel file system would.
    fn give(path: &Path, req: &Request) -> Result<(), Errno> {
        std::os::unix::fs::lchown(path, Some(req.uid()), Some(req.gid()))?;
        Ok(())
    }

    /// Forgets `ino`'s unsynced data if no link and no open file is left to it.
    fn forget_if_gone(&self, ino: u64, links_before: u64) {
        if links_before > 1 {
            return;
        }
        let mut st = lock(&self.state);
        if st.files.values().any(|o| o.ino == ino) {
            return;
        }
        st.paths.remove(&ino);
        if let Some(u) = st.unsynced.remove(&ino) {
            st.unsynced_bytes -= u.bytes();
        }
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

fn kind(t: std::fs::FileType) -> FileType {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_fifo() {
        FileType::NamedPipe
    } else if t.is_socket() {
        FileType::Socket
    } else if t.is_char_device() {
        FileType::CharDevice
    } else if t.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::RegularFile
    }
}

fn system_time(t: TimeOrNow) -> nix::sys::time::TimeSpec {
    use nix::sys::time::TimeSpec;
    match t {
        TimeOrNow::Now => TimeSpec::UTIME_NOW,
        TimeOrNow::SpecificTime(t) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            TimeSpec::new(d.as_secs() as i64, d.subsec_nanos() as i64)
        }
    }
}

/// Replies with `r`'s value through `ok`, or its error.
macro_rules! answer {
    ($reply:expr, $r:expr, $ok:expr) => {
        match $r {
            Ok(v) => $ok(v),
            Err(e) => $reply.error(e),
        }
    };
}

impl Filesystem for Layer {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self
            .control
            .gate(Op::Read)
            .and_then(|_| self.attr(&self.child(parent, name)?));
        answer!(reply, r, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self
            .control
            .gate(Op::Read)
            .and_then(|_| self.attr(&self.path(ino)?));
        answer!(reply, r, |a| reply.attr(&TTL, &a));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = (|| {
            let path = self.path(ino)?;
            let op = if size.is_some() {
                Op::Write
            } else {
                Op::Change
            };
            self.control.gate(op)?;
            if let Some(m) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m & 0o7777))?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&path, uid, gid)?;
            }
            if let Some(s) = size {
                OpenOptions::new().write(true).open(&path)?.set_len(s)?;
                let mut st = lock(&self.state);
                let before = st.unsynced.get(&ino.0).map_or(0, Unsynced::bytes);
                if let Some(u) = st.unsynced.get_mut(&ino.0) {
                    u.truncate(s);
                    let after = u.bytes();
                    st.unsynced_bytes -= before - after;
                }
            }
            if atime.is_some() || mtime.is_some() {
                use nix::sys::time::TimeSpec;
                let keep = TimeSpec::UTIME_OMIT;
                nix::sys::stat::utimensat(
                    nix::fcntl::AT_FDCWD,
                    &path,
                    &atime.map_or(keep, system_time),
                    &mtime.map_or(keep, system_time),
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|e| Errno::from_i32(e as i32))?;
            }
            self.attr(&path)
        })();
        answer!(reply, r, |a| reply.attr(&TTL, &a));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = (|| {
            self.control.gate(Op::Read)?;
            Ok(std::fs::read_link(self.path(ino)?)?)
        })();
        answer!(reply, r, |t: PathBuf| reply
            .data(std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str())));
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            self.control.gate(Op::Write)?;
            let path = self.child(parent, name)?;
            let c =
                std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
                    .map_err(|_| Errno::EINVAL)?;
            // SAFETY: a valid C string; mknod reads nothing else.
            if unsafe { libc::mknod(c.as_ptr(), mode & !umask, rdev as libc::dev_t) } != 0 {
                return Err(Errno::from(std::io::Error::last_os_error()));
            }
            Self::give(&path, req)?;
            self.attr(&path)
        })();
        answer!(reply, r, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            self.control.gate(Op::Write)?;
            let path = self.child(parent, name)?;
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(&path)?;
            Self::give(&path, req)?;
            self.attr(&path)
        })();
        use std::os::unix::fs::DirBuilderExt;
        answer!(reply, r, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| {
            self.control.gate(Op::Change)?;
            let path = self.child(parent, name)?;
            let m = std::fs::symlink_metadata(&path)?;
            std::fs::remove_file(&path)?;
            self.forget_if_gone(self.ino_of(m.ino()), m.nlink());
            Ok(())
        })();
        answer!(reply, r, |_| reply.ok());
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| {
            self.control.gate(Op::Change)?;
            let path = self.child(parent, name)?;
            let m = std::fs::symlink_metadata(&path)?;
            std::fs::remove_dir(&path)?;
            lock(&self.state).paths.remove(&self.ino_of(m.ino()));
            Ok(())
        })();
        answer!(reply, r, |_| reply.ok());
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            self.control.gate(Op::Write)?;
            let path = self.child(parent, link_name)?;
            std::os::unix::fs::symlink(target, &path)?;
            Self::give(&path, req)?;
            self.attr(&path)
        })();
        answer!(reply, r, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            self.control.gate(Op::Change)?;
            let from = self.child(parent, name)?;
            let to = self.child(newparent, newname)?;
            let replaced = std::fs::symlink_metadata(&to).ok();
            if flags.bits() == 0 {
                std::fs::rename(&from, &to)?;
            } else {
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &from,
                    nix::fcntl::AT_FDCWD,
                    &to,
                    nix::fcntl::RenameFlags::from_bits_truncate(flags.bits()),
                )
                .map_err(|e| Errno::from_i32(e as i32))?;
            }
            if let Some(m) = replaced.filter(|m| !m.is_dir()) {
                if flags.bits() & libc::RENAME_EXCHANGE == 0 {
                    self.forget_if_gone(self.ino_of(m.ino()), m.nlink());
                }
            }
            // Whatever lay under the old path lies under the new one now.
            let mut st = lock(&self.state);
            for p in st.paths.values_mut() {
                if let Ok(rest) = p.strip_prefix(&from) {
                    *p = to.join(rest);
                }
            }
            Ok(())
        })();
        answer!(reply, r, |_| reply.ok());
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            self.control.gate(Op::Write)?;
            let to = self.child(newparent, newname)?;
            std::fs::hard_link(self.path(ino)?, &to)?;
            self.attr(&to)
        })();
        answer!(reply, r, |a| reply.entry(&TTL, &a, Generation(0)));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let r = self
            .control
            .gate(Op::Read)
            .and_then(|_| self.open_file(ino, flags.0));
        answer!(reply, r, |fh| reply
            .opened(FileHandle(fh), FopenFlags::empty()));
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.control.gate(Op::Read).and_then(|_| {
            self.with_file(fh, |file, ino, _| {
                let mut buf = vec![0u8; size as usize];
                let mut got = 0;
                while got < buf.len() {
                    match file.read_at(&mut buf[got..], offset + got as u64)? {
                        0 => break,
                        n => got += n,
                    }
                }
                buf.truncate(got);
                let st = lock(&self.state);
                if let Some(u) = st.unsynced.get(&ino) {
                    let len = file.metadata()?.len().max(u.end());
                    u.read_over(offset, &mut buf, size as usize, len);
                }
                Ok(buf)
            })
        });
        answer!(reply, r, |b: Vec<u8>| reply.data(&b));
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = self.control.gate(Op::Write).and_then(|_| {
            self.with_file(fh, |file, ino, sync| {
                if sync {
                    // What was written before reaches the disk first, then this.
                    self.write_back(ino, file, false)?;
                    file.write_all_at(data, offset)?;
                    file.sync_data()?;
                    return Ok(false);
                }
                let mut st = lock(&self.state);
                let u = st.unsynced.entry(ino).or_default();
                let before = u.bytes();
                u.write(offset, data);
                let grown = u.bytes() - before;
                st.unsynced_bytes += grown;
                Ok(st.unsynced_bytes > WRITEBACK_BYTES)
            })
        });
        answer!(reply, r, |pressed| {
            if pressed {
                self.write_back_all();
            }
            reply.written(data.len() as u32)
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Closing a file syncs nothing.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.state).files.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self
            .control
            .gate(Op::Sync)
            .and_then(|_| self.with_file(fh, |file, ino, _| self.write_back(ino, file, true)));
        answer!(reply, r, |_| reply.ok());
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        answer!(reply, self.control.gate(Op::Read), |_| reply
            .opened(FileHandle(0), FopenFlags::empty()));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = (|| {
            self.control.gate(Op::Read)?;
            let path = self.path(ino)?;
            let mut entries = vec![
                (ino.0, FileType::Directory, std::ffi::OsString::from(".")),
                (1, FileType::Directory, std::ffi::OsString::from("..")),
            ];
            for e in std::fs::read_dir(&path)? {
                let e = e?;
                let t = e.file_type()?;
                use std::os::unix::fs::DirEntryExt;
                entries.push((self.ino_of(e.ino()), kind(t), e.file_name()));
            }
            Ok(entries)
        })();
        match r {
            Ok(entries) => {
                for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Metadata passes straight through: nothing is pending.
        answer!(reply, self.control.gate(Op::Sync), |_| reply.ok());
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let r = (|| {
            self.control.gate(Op::Read)?;
            nix::sys::statvfs::statvfs(&self.root).map_err(|e| Errno::from_i32(e as i32))
        })();
        let full = self.control.mode() == Mode::Full;
        answer!(reply, r, |s: nix::sys::statvfs::Statvfs| reply.statfs(
            s.blocks(),
            if full { 0 } else { s.blocks_free() },
            if full { 0 } else { s.blocks_available() },
            s.files(),
            s.files_free(),
            s.block_size() as u32,
            s.name_max() as u32,
            s.fragment_size() as u32,
        ));
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // The kernel checks the rights itself (`default_permissions`).
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = (|| {
            self.control.gate(Op::Write)?;
            let path = self.child(parent, name)?;
            let existed = std::fs::symlink_metadata(&path).is_ok();
            let keep = flags & libc::O_EXCL;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .custom_flags(keep)
                .mode(mode & !umask & 0o7777)
                .open(&path)?;
            if !existed {
                Self::give(&path, req)?;
            }
            let attr = self.attr(&path)?;
            let fh = self.keep_open(file, attr.ino.0, flags);
            Ok((attr, fh))
        })();
        answer!(reply, r, |(a, fh): (FileAttr, u64)| reply.created(
            &TTL,
            &a,
            Generation(0),
            FileHandle(fh),
            FopenFlags::empty()
        ));
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let r = self.control.gate(Op::Write).and_then(|_| {
            self.with_file(fh, |file, _, _| {
                use std::os::fd::AsRawFd;
                // SAFETY: a valid descriptor of a file this function holds open.
                let rc = unsafe {
                    libc::fallocate(
                        file.as_raw_fd(),
                        mode,
                        offset as libc::off_t,
                        length as libc::off_t,
                    )
                };
                if rc != 0 {
                    return Err(Errno::from(std::io::Error::last_os_error()));
                }
                Ok(())
            })
        });
        answer!(reply, r, |_| reply.ok());
    }
}
