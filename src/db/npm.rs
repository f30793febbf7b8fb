//! Packages from the npm registry that a preset runs (Gryadka's proposer): installed once
//! into Perseus's cache with the system's `npm`, exactly as the preset's lockfile pins them
//! (every version and its integrity hash), and used from there, offline, afterwards.

use crate::error::{Error, Result};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long an installation may take before it is given up.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);

/// A pinned npm installation: a `package.json` naming the package and its `package-lock.json`.
#[derive(Debug)]
pub struct Package {
    /// What it is, for the user: `gryadka@1.61.8`.
    pub spec: &'static str,
    /// Its directory in the cache, unique per pinned version: `gryadka-1.61.8`.
    pub dir_name: &'static str,
    pub manifest: &'static str,
    pub lockfile: &'static str,
}

/// Where installed packages are kept: `$PERSEUS_HOME/cache/npm`.
pub fn cache_dir() -> PathBuf {
    crate::lab::home().join("cache").join("npm")
}

impl Package {
    /// Its directory in the cache (there only once completely installed).
    pub fn dir(&self) -> PathBuf {
        cache_dir().join(self.dir_name)
    }

    /// The `node_modules` to run it from (`NODE_PATH`).
    pub fn node_modules(&self) -> PathBuf {
        self.dir().join("node_modules")
    }

    pub fn installed(&self) -> bool {
        self.dir().join("node_modules").is_dir()
    }

    /// Installs it into the cache unless it is there: `npm ci` in a private directory beside
    /// it (which verifies every package against the lockfile's integrity hash), then one
    /// rename, so the cache never holds half an installation. Whether it installed now.
    /// Needs `npm` and its registry the first time only.
    pub fn install(&self) -> Result<bool> {
        if self.installed() {
            return Ok(false);
        }
        let parent = cache_dir();
        std::fs::create_dir_all(&parent)
            .map_err(Error::io(format!("create {}", parent.display())))?;
        let staging = crate::files::private_dir_in(&parent, "npm")?;
        let result = self.install_into(&staging);
        let _ = std::fs::remove_dir_all(staging.join(".npm"));
        let done = result.and_then(|()| {
            // The servers run as their own system user: the installation is readable by all.
            for d in [&parent, &staging] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
                    .map_err(Error::io(format!("chmod {}", d.display())))?;
            }
            match std::fs::rename(&staging, self.dir()) {
                Ok(()) => Ok(()),
                // Another Perseus installed it meanwhile: theirs is as good.
                Err(_) if self.installed() => Ok(()),
                Err(e) => Err(Error::io(format!("rename into {}", self.dir().display()))(
                    e,
                )),
            }
        });
        if staging.exists() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        done.map(|()| true)
    }

    fn install_into(&self, dir: &Path) -> Result<()> {
        crate::files::write(&dir.join("package.json"), self.manifest)?;
        crate::files::write(&dir.join("package-lock.json"), self.lockfile)?;
        let mut child = Command::new("npm")
            .args([
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--no-update-notifier",
                "--loglevel=error",
            ])
            // Its download cache stays in the staging directory, removed afterwards.
            .arg(format!("--cache={}", dir.join(".npm").display()))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::MissingBinary {
                binary: "npm".into(),
                how: format!("install it with: apt-get install npm ({e})"),
            })?;
        let mut stderr = child.stderr.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if started.elapsed() < INSTALL_LIMIT => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let stderr = reader.join().unwrap_or_default();
        let why = match status {
            Some(s) if s.success() => return Ok(()),
            Some(s) => match s.code() {
                Some(code) => format!("exit {code}"),
                None => format!("{s}"),
            },
            None => format!("took longer than {} s", INSTALL_LIMIT.as_secs()),
        };
        Err(Error::Command {
            command: format!("npm ci (installing {} into {})", self.spec, cache_dir().display()),
            stderr: format!(
                "{why}: {}; it needs the npm registry (registry.npmjs.org, or the one npm is configured with) the first time",
                npm_reason(&stderr)
            ),
        })
    }
}

/// The lines of npm's error output that say what went wrong (its code and the failed
/// request), without its advice, stack and pointer to a log that is removed with the
/// staging directory.
fn npm_reason(stderr: &str) -> String {
    let reasons: Vec<&str> = stderr
        .lines()
        .map(|l| {
            l.trim_start_matches("npm error")
                .trim_start_matches("npm ERR!")
                .trim()
        })
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("at ")
                && !["complete log", "proxy", "npm help"]
                    .iter()
                    .any(|noise| l.contains(noise))
        })
        .take(4)
        .collect();
    if reasons.is_empty() {
        "npm said nothing".into()
    } else {
        reasons.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npms_reason_keeps_what_failed_and_drops_its_advice() {
        let stderr = "npm error code ECONNREFUSED\n\
            npm error syscall connect\n\
            npm error errno ECONNREFUSED\n\
            npm error FetchError: request to http://127.0.0.1:9/gryadka failed, reason: connect ECONNREFUSED\n\
            npm error     at ClientRequest.<anonymous> (/usr/lib/node_modules/npm/x.js:1:1)\n\
            npm error\n\
            npm error If you are behind a proxy, please make sure that the 'proxy' config is set properly.\n\
            npm error A complete log of this run can be found in: /x/.npm/_logs/debug-0.log\n";
        assert_eq!(
            npm_reason(stderr),
            "code ECONNREFUSED; syscall connect; errno ECONNREFUSED; FetchError: request to http://127.0.0.1:9/gryadka failed, reason: connect ECONNREFUSED"
        );
        assert_eq!(npm_reason("npm ERR! code E404\n"), "code E404");
        assert_eq!(npm_reason(""), "npm said nothing");
    }
}
