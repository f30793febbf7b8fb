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

/// Writes `bytes` into a new or truncated `path` (see [`create`]).
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    create(path)?
        .write_all(bytes.as_ref())
        .map_err(Error::io(format!("write {}", path.display())))
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
