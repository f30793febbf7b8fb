//! A node's machine over SSH, with the system's OpenSSH client: one master connection per
//! node (`ControlMaster`), opened once, so each command costs one round trip, not a
//! handshake. Port, user, key and jump host come from the user's ssh config and agent (or
//! the cluster file's `ssh_config`); Perseus never prompts (`BatchMode`).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// How long a connection may take to be made.
const CONNECT_TIMEOUT_S: u32 = 10;

/// What a remote command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Its exit status; `None`: ssh was killed past the timeout.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The round trip, as seen from here.
    pub took: Duration,
}

impl Output {
    pub fn succeeded(&self) -> bool {
        self.status == Some(0)
    }

    /// Why it failed, in one line.
    pub fn why(&self) -> String {
        let text: String = self
            .stderr
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect();
        match self.status {
            Some(s) => format!("exit {s}: {text}"),
            None => format!("no answer: {text}"),
        }
    }
}

/// A master connection to one machine: a child `ssh` that ends with this value, and with
/// Perseus itself however it ends (it gets SIGTERM when its parent dies).
#[derive(Debug)]
pub struct Conn {
    dest: String,
    config: Option<PathBuf>,
    socket: PathBuf,
    master: tokio::process::Child,
}

/// `ssh` with the options every use shares: never a prompt, a bounded connection time,
/// the master's socket.
fn command(config: Option<&Path>, socket: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("ssh");
    if let Some(f) = config {
        c.arg("-F").arg(f);
    }
    c.args(["-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("ConnectTimeout={CONNECT_TIMEOUT_S}"))
        .arg("-o")
        .arg(format!("ControlPath={}", socket.display()))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// `text` as one word for `sh`.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl Conn {
    fn command(&self) -> tokio::process::Command {
        command(self.config.as_deref(), &self.socket)
    }

    /// Opens the master connection to `dest` (authenticated when this returns), its socket
    /// in `dir` under `tag`.
    pub async fn open(dest: &str, config: Option<&Path>, dir: &Path, tag: &str) -> Result<Conn> {
        let socket = dir.join(format!("ssh-{tag}"));
        let log = dir.join(format!("ssh-{tag}.log"));
        let mut c = command(config, &socket);
        c.args(["-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-N"])
            .arg("-E")
            .arg(&log)
            .arg("--")
            .arg(dest)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            c.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let master = c.spawn().map_err(|e| Error::MissingBinary {
            binary: "ssh".into(),
            how: format!("install it with: apt-get install openssh-client ({e})"),
        })?;
        let mut conn = Conn {
            dest: dest.to_string(),
            config: config.map(Path::to_path_buf),
            socket,
            master,
        };
        let deadline = Instant::now() + Duration::from_secs(CONNECT_TIMEOUT_S as u64 + 5);
        let failed = |why: &str| {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            Error::Unreachable(format!("ssh {dest}: {}", last_line(&said).unwrap_or(why)))
        };
        loop {
            if let Ok(Some(_)) = conn.master.try_wait() {
                let e = failed("the connection closed");
                let _ = std::fs::remove_file(&log);
                return Err(e);
            }
            let mut check = command(config, &conn.socket);
            check
                .args(["-O", "check", "--"])
                .arg(dest)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if check.status().await.is_ok_and(|s| s.success()) {
                let _ = std::fs::remove_file(&log);
                return Ok(conn);
            }
            if Instant::now() >= deadline {
                let e = failed("no connection");
                let _ = std::fs::remove_file(&log);
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` with `sh` on the machine, `stdin` given to it, within `timeout`.
    pub async fn run(
        &self,
        script: &str,
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<Output> {
        let t = Instant::now();
        let mut c = self.command();
        c.args(["-o", "ControlMaster=no", "--"])
            .arg(&self.dest)
            .arg(format!("sh -c {}", quote(script)))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(Error::io(format!("start ssh {}", self.dest)))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .await
                .map_err(Error::io(format!("write to ssh {}", self.dest)))?;
        }
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(Output {
                status: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                took: t.elapsed(),
            }),
            Ok(Err(e)) => Err(Error::io(format!("ssh {}", self.dest))(e)),
            Err(_) => Ok(Output {
                status: None,
                stdout: String::new(),
                stderr: format!("no answer within {} s", timeout.as_secs()),
                took: t.elapsed(),
            }),
        }
    }

    pub fn dest(&self) -> &str {
        &self.dest
    }
}

impl Drop for Conn {
    /// Closes the master connection.
    fn drop(&mut self) {
        let _ = self.master.start_kill();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_word_reads_back_as_itself_in_sh() {
        assert_eq!(quote("nft list tables"), "'nft list tables'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote("a 'b' $HOME `x` \"c\"\nd")))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "a 'b' $HOME `x` \"c\"\nd"
        );
    }
}
