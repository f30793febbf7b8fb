//! A node's server on its machine ([`Server`]: a systemd unit, or the processes whose
//! command line contains a text): the `sh` scripts that kill, restart, pause and resume it
//! over SSH. Each fault's script starts its dead man's switch, a detached session that
//! undoes it after the lease (continues the paused processes, starts the killed server
//! again), and prints the switch's process id first. The pattern and the start command reach
//! the machine on the script's standard input, never in the script's own command line,
//! where the pattern would find the script itself.

use super::conn::quote;
use std::time::Duration;

/// The server of a node on its machine, as kill/restart and pause/resume over SSH reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// A systemd unit: `systemctl kill -s SIGNAL`, `systemctl start`.
    Service(String),
    /// Every process whose command line contains `pattern`; `start` starts the server again
    /// (run detached, with `sh`), where the file gives one.
    Process {
        pattern: String,
        start: Option<String>,
    },
}

/// Reads the pattern and the start command from standard input, and defines `find_pids`,
/// which sets `$pids` to the processes whose command line contains the pattern, and
/// `state PID`, a process's state letter (empty once it is gone).
const PRELUDE: &str = "IFS= read -r pat\nIFS= read -r start || true\n\
find_pids() { pids=''; for d in /proc/[0-9]*; do \
c=$(tr '\\000' ' ' < \"$d/cmdline\" 2>/dev/null) || continue; \
case \"$c\" in *\"$pat\"*) pids=\"$pids ${d#/proc/}\";; esac; done; [ -n \"$pids\" ]; }\n\
state() { sed -n 's/^.*) \\(.\\).*$/\\1/p' \"/proc/$1/stat\" 2>/dev/null || true; }\n";

/// Waits up to 5 s until every process of `$pids` is in one of `states` (letters; `-` for
/// gone), else fails naming them.
fn wait_until(states: &str, what: &str) -> String {
    format!(
        "i=0\nwhile :; do left=''; for p in $pids; do s=$(state $p); \
         case \"${{s:--}}\" in [{states}]) ;; *) left=\"$left $p\";; esac; done; \
         [ -z \"$left\" ] && break; i=$((i+1)); \
         [ $i -ge 50 ] && {{ echo \"not {what} within 5 s:$left\" >&2; exit 1; }}; sleep 0.1; done\n"
    )
}

/// Detaches `command` to run after `lease`, and prints its process id.
fn switch(lease: Duration, command: &str) -> String {
    let run = format!("sleep {}; {command}", lease.as_secs().max(1));
    format!(
        "setsid sh -c {} </dev/null >/dev/null 2>&1 &\necho $!\n",
        quote(&run)
    )
}

/// A script and what goes to its standard input.
pub type Script = (String, Option<String>);

fn with_pattern(pattern: &str, start: Option<&str>, body: String) -> Script {
    (
        format!("set -e\n{PRELUDE}{body}"),
        Some(format!("{pattern}\n{}\n", start.unwrap_or(""))),
    )
}

/// Stops the server with SIGSTOP, checks it is stopped, and starts the switch that continues
/// it. Prints the switch's id, then the processes stopped.
pub fn pause(server: &Server, lease: Duration) -> Script {
    match server {
        Server::Service(unit) => {
            let u = quote(unit);
            (
                format!(
                    "set -e\nsystemctl kill -s STOP {u}\n{}",
                    switch(lease, &format!("systemctl kill -s CONT {u}"))
                ),
                None,
            )
        }
        Server::Process { pattern, .. } => with_pattern(
            pattern,
            None,
            format!(
                "find_pids || {{ echo \"no process's command line contains: $pat\" >&2; exit 1; }}\n\
                 kill -STOP $pids\n{}setsid sh -c \"sleep {}; kill -CONT $pids\" </dev/null >/dev/null 2>&1 &\n\
                 echo $!\necho $pids\n",
                wait_until("Tt-", "stopped"),
                lease.as_secs().max(1)
            ),
        ),
    }
}

/// Continues what [`pause`] stopped (`pids`, as it printed them) and stops its switch.
pub fn resume(server: &Server, switch_id: Option<u32>, pids: &str) -> Script {
    let stop = stop_switch(switch_id);
    match server {
        Server::Service(unit) => (
            format!("set -e\n{stop}systemctl kill -s CONT {}\n", quote(unit)),
            None,
        ),
        Server::Process { pattern, .. } => with_pattern(
            pattern,
            None,
            format!(
                "{stop}pids={}\nkill -CONT $pids 2>/dev/null || true\n{}",
                quote(pids),
                wait_until("RSDIZWXxKP-", "continued")
            ),
        ),
    }
}

/// Kills the server with SIGKILL, checks it is gone, and starts the switch that starts it
/// again. Prints the switch's id.
pub fn kill(server: &Server, lease: Duration) -> Script {
    match server {
        Server::Service(unit) => {
            let u = quote(unit);
            (
                format!(
                    "set -e\nsystemctl kill -s KILL {u}\n{}",
                    switch(lease, &format!("systemctl start {u}"))
                ),
                None,
            )
        }
        Server::Process { pattern, start } => with_pattern(
            pattern,
            start.as_deref(),
            format!(
                "find_pids || {{ echo \"no process's command line contains: $pat\" >&2; exit 1; }}\n\
                 kill -KILL $pids\n{}{}",
                wait_until("Z-", "gone"),
                match start {
                    Some(_) => format!(
                        "setsid sh -c \"sleep {}; $start\" </dev/null >/dev/null 2>&1 &\necho $!\n",
                        lease.as_secs().max(1)
                    ),
                    None => "echo 0\n".into(),
                }
            ),
        ),
    }
}

/// Stops the switch of a [`kill`] and starts the server again (detached), then checks that
/// a process of it runs.
pub fn restart(server: &Server, switch_id: Option<u32>) -> Script {
    let stop = stop_switch(switch_id);
    match server {
        Server::Service(unit) => (
            format!("set -e\n{stop}systemctl start {}\n", quote(unit)),
            None,
        ),
        Server::Process { pattern, start } => with_pattern(
            pattern,
            Some(start.as_deref().unwrap_or("false")),
            format!(
                "{stop}setsid sh -c \"$start\" </dev/null >/dev/null 2>&1 &\n\
                 i=0\nuntil find_pids; do i=$((i+1)); \
                 [ $i -ge 100 ] && {{ echo \"nothing whose command line contains $pat runs 10 s after start\" >&2; exit 1; }}; \
                 sleep 0.1; done\n"
            ),
        ),
    }
}

/// Continues the server's processes, whatever stopped them (for `heal --cluster`); prints
/// `resumed` if there were any.
pub fn continue_all(server: &Server) -> Script {
    match server {
        Server::Service(unit) => (
            format!(
                "systemctl kill -s CONT {} 2>/dev/null && echo resumed || true\n",
                quote(unit)
            ),
            None,
        ),
        Server::Process { pattern, .. } => with_pattern(
            pattern,
            None,
            "if find_pids; then kill -CONT $pids 2>/dev/null || true; echo resumed; fi\n".into(),
        ),
    }
}

/// Prints `stopped` if a process of the server is stopped (SIGSTOP), whatever stopped it.
pub fn stopped(server: &Server) -> Script {
    match server {
        Server::Service(unit) => (
            format!(
                "{PRELUDE_STATE}for p in $(systemctl show -p MainPID --value {} 2>/dev/null); do \
                 [ \"$(state $p)\" = T ] && echo stopped; done; true\n",
                quote(unit)
            ),
            None,
        ),
        Server::Process { pattern, .. } => with_pattern(
            pattern,
            None,
            "if find_pids; then for p in $pids; do [ \"$(state $p)\" = T ] && echo stopped; done; fi; true\n"
                .into(),
        ),
    }
}

/// `state PID`, as [`PRELUDE`] defines it, for scripts that read no pattern.
const PRELUDE_STATE: &str =
    "state() { sed -n 's/^.*) \\(.\\).*$/\\1/p' \"/proc/$1/stat\" 2>/dev/null || true; }\n";

/// The lines that stop switch `id`, if any.
pub(super) fn stop_switch(id: Option<u32>) -> String {
    // Its session, and the process itself: one stopped right after it started may not have
    // made its session yet, and then only its own id reaches it (before it runs anything).
    id.filter(|p| *p > 1).map_or(String::new(), |p| {
        format!("kill -- -{p} 2>/dev/null || kill {p} 2>/dev/null || true\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sh(script: &Script) -> (bool, String, String) {
        use std::io::Write;
        let mut c = Command::new("sh")
            .arg("-c")
            .arg(&script.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = c.stdin.take().unwrap();
        input
            .write_all(script.1.as_deref().unwrap_or("").as_bytes())
            .unwrap();
        drop(input);
        let out = c.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The scripts, run for real on this machine against a `sleep` of the test's own,
    /// found by a pattern unique to it: paused, continued, killed and started again.
    #[test]
    fn a_process_is_paused_resumed_killed_and_restarted_by_its_pattern() {
        let tag = format!("perseus-server-test-{}", std::process::id());
        let start = format!("exec -a {tag} sleep 30");
        let server = Server::Process {
            pattern: tag.clone(),
            start: Some(format!("bash -c '{start}'")),
        };
        let mut child = Command::new("bash").arg("-c").arg(&start).spawn().unwrap();
        let pid = child.id();
        let state = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next().map(|r| r.trim().chars().next()))
                .flatten()
        };

        let (ok, out, err) = sh(&pause(&server, Duration::from_secs(60)));
        assert!(ok, "{err}");
        let mut lines = out.lines();
        let switch_id: u32 = lines.next().unwrap().parse().unwrap();
        let pids = lines.next().unwrap().trim().to_string();
        assert_eq!(pids, pid.to_string());
        assert_eq!(state(), Some('T'));

        let (ok, _, err) = sh(&resume(&server, Some(switch_id), &pids));
        assert!(ok, "{err}");
        // Continued: running for a moment ('R'), then asleep in its `sleep` again ('S').
        let resumed = std::time::Instant::now();
        while state() != Some('S') && resumed.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(state(), Some('S'));
        // Stopped by now, or within moments (a signal is delivered, not awaited).
        let stopped = || {
            !std::path::Path::new(&format!("/proc/{switch_id}")).exists()
                || std::fs::read_to_string(format!("/proc/{switch_id}/stat"))
                    .is_ok_and(|s| s.contains(") Z"))
        };
        let asked = std::time::Instant::now();
        while !stopped() && asked.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(stopped(), "the switch is stopped");

        let (ok, out, err) = sh(&kill(&server, Duration::from_secs(60)));
        assert!(ok, "{err}");
        let _ = child.wait();
        let switch_id: u32 = out.trim().parse().unwrap();
        let (ok, _, err) = sh(&restart(&server, Some(switch_id)));
        assert!(ok, "{err}");
        let (ok, out, _) = sh(&continue_all(&server));
        assert!(ok && out.contains("resumed"));
        // The restarted one is ours to end (no switch: no start command).
        let end = Server::Process {
            pattern: tag.clone(),
            start: None,
        };
        let (ok, out, err) = sh(&kill(&end, Duration::from_secs(1)));
        assert!(ok && out.trim() == "0", "{err}");

        let missing = Server::Process {
            pattern: format!("{tag}-nothing"),
            start: None,
        };
        let (ok, _, err) = sh(&pause(&missing, Duration::from_secs(1)));
        assert!(
            !ok && err.contains("no process's command line contains"),
            "{err}"
        );
    }

    #[test]
    fn a_service_goes_through_systemctl_and_its_switch() {
        let unit = Server::Service("etcd.service".into());
        let (s, stdin) = pause(&unit, Duration::from_secs(40));
        assert!(stdin.is_none());
        assert!(s.contains("systemctl kill -s STOP 'etcd.service'\n"), "{s}");
        assert!(
            s.contains("setsid sh -c 'sleep 40; systemctl kill -s CONT '\\''etcd.service'\\'''"),
            "{s}"
        );
        let (s, _) = kill(&unit, Duration::from_secs(40));
        assert!(
            s.contains("systemctl kill -s KILL 'etcd.service'\n") && s.contains("systemctl start"),
            "{s}"
        );
        let (s, _) = restart(&unit, Some(77));
        assert!(
            s.contains("kill -- -77 2>/dev/null || kill 77 2>/dev/null || true\nsystemctl start 'etcd.service'\n"),
            "{s}"
        );
        let (s, _) = resume(&unit, None, "");
        assert!(
            !s.contains("kill --") && s.contains("systemctl kill -s CONT"),
            "{s}"
        );
    }
}
