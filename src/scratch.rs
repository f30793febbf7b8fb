//! Private scratch directories for files Perseus writes as root where other users could
//! have put something first (the system's temporary directory).

use crate::error::{Error, Result};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// A new directory under the system's temporary directory, named after `tag` with an
/// unguessable suffix, created atomically with mode 0700: nobody else can have put a file
/// or a symbolic link into it. The caller removes it (see [`Scratch`]).
pub fn private_dir(tag: &str) -> Result<PathBuf> {
    private_dir_in(&std::env::temp_dir(), tag)
}

fn private_dir_in(parent: &Path, tag: &str) -> Result<PathBuf> {
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
