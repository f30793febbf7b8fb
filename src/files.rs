//! Writing files as root where another user could have put something first: private
//! scratch directories in the system's temporary directory, and result files that are
//! never written through a symbolic link.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Creates `path` (or truncates the file there) for writing, refusing to follow a symbolic
/// link in its last component: a link planted in a results directory cannot make Perseus
/// overwrite the file it points to.
pub fn create(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Invalid(format!(
                    "{} is a symbolic link: Perseus does not write through one; remove it",
                    path.display()
                ))
            } else {
                Error::io(format!("create {}", path.display()))(e)
            }
        })
}

/// The uid and gid of a system user.
pub fn user_ids(name: &str) -> Result<(u32, u32)> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        _ => Err(Error::Invalid(format!(
            "no system user '{name}' (its package creates it)"
        ))),
    }
}

/// Hands `path` and everything under it to the system user `user` (a lab directory its
/// server runs in as that user). Symbolic links are changed themselves, never followed.
pub fn chown_tree(path: &Path, user: &str) -> Result<()> {
    let (uid, gid) = user_ids(user)?;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
            .map_err(Error::io(format!("chown {}", p.display())))?;
        let meta =
            std::fs::symlink_metadata(&p).map_err(Error::io(format!("stat {}", p.display())))?;
        if meta.is_dir() {
            for entry in
                std::fs::read_dir(&p).map_err(Error::io(format!("read {}", p.display())))?
            {
                stack.push(
                    entry
                        .map_err(Error::io(format!("read {}", p.display())))?
                        .path(),
                );
            }
        }
    }
    Ok(())
}

/// Replaces `path` with `bytes` whole: a reader sees the old file or the new one, never a
/// part, and concurrent writers never mix their bytes. `path` must be a regular file or
/// nothing (see [`Output`]).
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    let mut out = Output::create(path, Streams::Refuse)?;
    out.write_all(bytes.as_ref())
        .map_err(Error::io(format!("write {}", path.display())))?;
    out.commit()
}

/// Whether an [`Output`] may write into a character device or a pipe (`/dev/stdout`, a
/// FIFO) as it stands, rather than replacing a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    Allow,
    Refuse,
}

/// An output file that appears whole or not at all. A regular file (or nothing) at the
/// target is replaced on [`Output::commit`] by a new file written beside it under an
/// unguessable name, created exclusively and readable by its owner only until it is
/// complete; dropped uncommitted, the new file is removed and the target left as it was.
/// A character device or a pipe is written directly where [`Streams::Allow`]s it. Anything
/// else at the target (a symbolic link, a directory, a socket, a block device) is refused,
/// and nothing is ever renamed over what is not a regular file.
pub struct Output {
    file: File,
    /// The file being written and the target it replaces; `None` when writing directly.
    replaces: Option<(PathBuf, PathBuf)>,
}

impl Output {
    /// Opens an output for `target`: a new private file beside it, or the device or pipe
    /// itself where `streams` allows. Refuses, naming the target and what it is, anything
    /// else there, and a directory it cannot write a file into.
    pub fn create(target: &Path, streams: Streams) -> Result<Output> {
        use std::os::unix::fs::FileTypeExt;
        let refuse = |what: &str| {
            Err(Error::Invalid(format!(
                "{} is {what}: Perseus writes only to a regular file{}; give another path",
                target.display(),
                if streams == Streams::Allow {
                    ", a character device or a pipe"
                } else {
                    ""
                }
            )))
        };
        match std::fs::symlink_metadata(target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("stat {}", target.display()))(e)),
            Ok(m) => {
                let t = m.file_type();
                if t.is_symlink() {
                    return refuse("a symbolic link");
                }
                if (t.is_char_device() || t.is_fifo()) && streams == Streams::Allow {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(target)
                        .map_err(Error::io(format!("open {}", target.display())))?;
                    return Ok(Output {
                        file,
                        replaces: None,
                    });
                }
                if !t.is_file() {
                    return refuse(if t.is_dir() {
                        "a directory"
                    } else if t.is_char_device() {
                        "a character device"
                    } else if t.is_fifo() {
                        "a pipe"
                    } else {
                        "not a regular file"
                    });
                }
            }
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{}: name a file", target.display())))?
            .to_string_lossy()
            .into_owned();
        for _ in 0..16 {
            let tmp = dir.join(format!(".{name}.{}.part", random_hex::<8>()?));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
            {
                Ok(file) => {
                    return Ok(Output {
                        file,
                        replaces: Some((tmp, target.to_path_buf())),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(format!("create {}", tmp.display()))(e)),
            }
        }
        Err(Error::Invalid(format!(
            "no fresh file could be made beside {}",
            target.display()
        )))
    }

    /// Makes the output whole: flushes it and puts it in place of the target (mode 0644).
    pub fn commit(mut self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        self.file
            .flush()
            .map_err(Error::io("flush the output".to_string()))?;
        let Some((tmp, target)) = self.replaces.take() else {
            return Ok(());
        };
        let done = self
            .file
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .and_then(|_| std::fs::rename(&tmp, &target));
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(format!("write {}", target.display()))(e));
        }
        Ok(())
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some((tmp, _)) = &self.replaces {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// `N` random bytes from the kernel, as 2N hex digits.
pub fn random_hex<const N: usize>() -> Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(Error::io("read /dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The most a text file Perseus reads whole (a summary, a spec, a table) may hold.
pub const TEXT_LIMIT: u64 = 64 << 20;

/// Reads the text file at `path` whole. It must be a regular file (a link to one is
/// followed; a link to a device or a pipe is refused) of at most [`TEXT_LIMIT`] bytes:
/// what a results directory holds cannot make Perseus read for ever or fill its memory.
pub fn read_text(path: &Path) -> Result<String> {
    use std::io::Read as _;
    let file = File::open(path).map_err(Error::io(format!("read {}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(Error::io(format!("read {}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{} is not a regular file: Perseus reads results only from regular files; remove it",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    file.take(TEXT_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io(format!("read {}", path.display())))?;
    if bytes.len() as u64 > TEXT_LIMIT {
        return Err(Error::Invalid(format!(
            "{} is larger than {} MiB: it is not a file Perseus wrote; remove it",
            path.display(),
            TEXT_LIMIT >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        Error::Invalid(format!(
            "{} is not UTF-8 text: it is not a file Perseus wrote; remove it",
            path.display()
        ))
    })
}

/// A new directory under the system's temporary directory, named after `tag` with an
/// unguessable suffix, created atomically with mode 0700: nobody else can have put a file
/// or a symbolic link into it. The caller removes it (see [`Scratch`]).
pub fn private_dir(tag: &str) -> Result<PathBuf> {
    private_dir_in(&std::env::temp_dir(), tag)
}

/// [`private_dir`] in `parent`.
pub fn private_dir_in(parent: &Path, tag: &str) -> Result<PathBuf> {
    let mut seed = crate::clock::monotonic_ns() ^ (std::process::id() as u64).rotate_left(32);
    for _ in 0..16 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let dir = parent.join(format!("perseus-{tag}-{:016x}", seed));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("create {}", dir.display()))(e)),
        }
    }
    Err(Error::Invalid(format!(
        "no fresh directory could be made in {}: it is full of perseus-{tag}-* entries",
        parent.display()
    )))
}

/// A private directory that is removed, with what is in it, when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Result<Scratch> {
        private_dir(tag).map(Scratch)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_result_file_is_never_written_through_a_symbolic_link() {
        let dir = Scratch::new("test").unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("report.html");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = write(&link, "overwritten").unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        write(&dir.path().join("plain"), "one").unwrap();
        write(&dir.path().join("plain"), "two").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("plain")).unwrap(),
            "two"
        );
    }

    #[test]
    fn an_output_replaces_a_regular_file_whole_and_leaves_nothing_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = Scratch::new("test").unwrap();
        let target = dir.path().join("out.csv");
        std::fs::write(&target, "old").unwrap();
        let mut out = Output::create(&target, Streams::Allow).unwrap();
        out.write_all(b"new").unwrap();
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "old",
            "not before commit"
        );
        let part: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(part.len(), 2, "the new file is beside the target");
        let meta =
            std::fs::symlink_metadata(part.iter().find(|e| e.path() != target).unwrap().path())
                .unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "private while written"
        );
        out.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the target"
        );
        let mut out = Output::create(&target, Streams::Refuse).unwrap();
        out.write_all(b"half").unwrap();
        drop(out);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing left"
        );
    }

    #[test]
    fn an_output_never_replaces_a_device_a_pipe_a_link_or_a_directory() {
        let dir = Scratch::new("test").unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        for (path, what) in [
            (Path::new("/dev/null"), "a character device"),
            (fifo.as_path(), "a pipe"),
            (link.as_path(), "a symbolic link"),
            (dir.path(), "a directory"),
        ] {
            let e = Output::create(path, Streams::Refuse)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(what), "{e}");
            assert!(e.contains("give another path"), "{e}");
        }
        let e = Output::create(&link, Streams::Allow)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a symbolic link"), "{e}");
        // A character device is written as it stands, never renamed over.
        let mut null = Output::create(Path::new("/dev/null"), Streams::Allow).unwrap();
        null.write_all(b"gone").unwrap();
        null.commit().unwrap();
        let meta = std::fs::symlink_metadata("/dev/null").unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(
            meta.file_type().is_char_device(),
            "/dev/null is still a device"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "nothing made"
        );
    }

    #[test]
    fn a_private_dir_is_new_unguessable_and_only_its_owners() {
        let a = Scratch::new("test").unwrap();
        let b = Scratch::new("test").unwrap();
        assert_ne!(a.path(), b.path());
        let meta = std::fs::symlink_metadata(a.path()).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        let gone = a.path().to_path_buf();
        drop(a);
        assert!(!gone.exists(), "removed when dropped");
    }
}
