//! Running programs inside a node's network namespace, and stopping them again.

use crate::error::{Error, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The file that names a network namespace made by `ip netns add`.
pub fn netns_path(netns: &str) -> std::path::PathBuf {
    Path::new("/run/netns").join(netns)
}

/// A command that runs inside `netns`. With `detach`, it also runs in a session of its own
/// (no terminal, no signal from the caller's Ctrl-C), so it outlives the caller. With
/// `user` (uid, gid), it runs as that user, switched after entering the namespace (which
/// needs root).
pub fn command_in(
    netns: &str,
    program: &str,
    detach: bool,
    user: Option<(u32, u32)>,
) -> Result<Command> {
    command_at(&netns_path(netns), program, detach, user)
}

/// As [`command_in`], in the network namespace of file `path` (`/run/netns/NAME`, or a
/// process's `/proc/PID/ns/net`).
pub fn command_at(
    path: &Path,
    program: &str,
    detach: bool,
    user: Option<(u32, u32)>,
) -> Result<Command> {
    let ns = File::open(path).map_err(Error::io(format!(
        "open network namespace {}",
        path.display()
    )))?;
    let mut cmd = Command::new(program);
    // SAFETY: only async-signal-safe system calls run between fork and exec; the closure
    // owns the namespace file, which stays open until exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if detach {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Servers such as TiKV refuse to start with the default 1024 open files.
                let want = libc::rlimit {
                    rlim_cur: 1 << 20,
                    rlim_max: 1 << 20,
                };
                let mut have = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut have) == 0
                    && have.rlim_cur < want.rlim_cur
                {
                    libc::setrlimit(libc::RLIMIT_NOFILE, &want);
                }
            }
            if let Some((uid, gid)) = user {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// Runs `program args` in `netns` with `stdin` fed to it; returns its stdout, or an error
/// with its stderr.
pub fn run_in(netns: &str, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut cmd = command_in(netns, program, false, None)?;
    cmd.args(args);
    output(
        cmd,
        &format!("{program} {} (in {netns})", args.join(" ")),
        stdin,
    )
}

/// As [`run_in`], in the network namespace of process `pid` (a container's).
pub fn run_in_process(
    pid: i32,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String> {
    let mut cmd = command_at(
        &Path::new("/proc").join(pid.to_string()).join("ns/net"),
        program,
        false,
        None,
    )?;
    cmd.args(args);
    output(
        cmd,
        &format!(
            "{program} {} (in the namespace of pid {pid})",
            args.join(" ")
        ),
        stdin,
    )
}

/// Runs a command on the host; returns its stdout, or an error with its stderr.
pub fn run_host(program: &str, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    output(cmd, &format!("{program} {}", args.join(" ")), None)
}

fn output(mut cmd: Command, shown: &str, stdin: Option<&str>) -> Result<String> {
    use std::io::Write;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Command {
        command: shown.to_string(),
        stderr: e.to_string(),
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(Error::io(format!("write to {shown}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(Error::io(format!("wait for {shown}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: shown.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The start time of a process (field 22 of `/proc/PID/stat`, in clock ticks since boot),
/// which tells a process apart from a later one that reuses its pid. `None` if it is gone
/// or a zombie.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The state letter of a process (`R`, `S`, `T` stopped, `Z` zombie, …).
pub fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Kills processes with SIGKILL and waits, at most `wait`, until they are gone.
pub fn kill_all(pids: &[(i32, u64)], wait: Duration) {
    for (pid, _) in pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + wait;
    while pids.iter().any(|p| is_alive(p.0, p.1)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `pid` is still the process that started at `started` (and not a zombie).
pub fn is_alive(pid: i32, started: u64) -> bool {
    start_time(pid) == Some(started)
}

/// The processes whose network namespace is `netns`.
pub fn pids_in(netns: &str) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(netns_path(netns)) else {
        return Vec::new();
    };
    use std::os::unix::fs::MetadataExt;
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            if m.ino() == target.ino() && m.dev() == target.dev() {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Stops processes: SIGTERM, then SIGKILL for any still running after `grace`. Returns
/// once all are gone (or after `grace` twice over).
pub fn stop_all(pids: &[(i32, u64)], grace: Duration) {
    let alive = |p: &&(i32, u64)| is_alive(p.0, p.1);
    for (pid, _) in pids.iter().filter(alive) {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while pids.iter().any(|p| is_alive(p.0, p.1)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for (pid, _) in pids.iter().filter(alive) {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + grace;
    while pids.iter().any(|p| is_alive(p.0, p.1)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether `program` is an executable on PATH (or an executable path).
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = Path::new(program);
        return is_exec(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(std::path::PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| is_exec(p))
}

pub use crate::files::user_ids;

/// Fails unless the process runs as root.
pub fn require_root(what: &str) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot { what: what.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_a_made_up_one_is_not() {
        let me = std::process::id() as i32;
        let started = start_time(me).expect("own start time");
        assert!(is_alive(me, started));
        assert!(!is_alive(me, started + 1), "same pid, other start time");
        assert!(!is_alive(i32::MAX - 1, 0));
    }

    #[test]
    fn programs_are_found_on_path() {
        assert!(find_program("sh").is_some());
        assert!(find_program("surely-not-a-program-perseus").is_none());
    }
}
