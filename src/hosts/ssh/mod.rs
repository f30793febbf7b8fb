//! Machines Perseus reaches over SSH as a transport: a cluster file whose nodes say
//! `ssh = "user@host"` needs no fault commands. Every script runs on the node's machine (in
//! its host namespace, or the `netns` the file names) through one master connection per
//! node ([`conn`]); the servers are the unit or processes the file names ([`server`]).
//!
//! **A machine is never left cut off.** Every change goes in together with a dead man's
//! switch on that machine: a detached `sleep LEASE; UNDO` (for a paused server `kill -CONT`,
//! for a killed one its start command), LEASE reaching the cluster file's `lease` (30 s by
//! default) past the scenario's planned end. When Perseus undoes the change it stops the
//! switch; when Perseus dies, loses its laptop or its SSH session, the switch heals the
//! node. Every table is named `perseus_<fault>_<8 hex digits>`, unique per change, so a late
//! switch can only ever remove its own.
//!
//! Clients still run where Perseus runs, so the record keeps one clock; each command's
//! round trip goes into the record as a mark, which says how precisely the fault's markers
//! are placed around it.

pub mod conn;
pub mod server;

use super::{Change, Guard, ProcessOp, Processes, Transport};
use crate::error::{Error, Result};
use crate::lab::{events, Layout};
use conn::quote;
pub use server::Server;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long one remote command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// One node's machine, as the cluster file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// ssh's destination (`user@host`).
    pub dest: String,
    /// The network namespace there that the node's rules go into; `None`: the host's.
    pub netns: Option<String>,
    /// How Perseus finds the node's server there, for kill and pause.
    pub server: Option<Server>,
}

/// A process fault in force on one node, and the script that undoes it (stopping its
/// switch).
#[derive(Debug, Clone)]
struct Held {
    node: usize,
    op: ProcessOp,
    undo: server::Script,
}

/// What a run's changes over SSH must outlive by, if Perseus dies: the scenario's planned
/// length (counted from the first change), and the cluster file's lease past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub scenario: Duration,
    pub past_end: Duration,
}

/// A cluster's machines over SSH; see the module's documentation.
pub struct SshHost<'a> {
    layout: Layout,
    events: Option<PathBuf>,
    machines: Vec<Machine>,
    conns: Vec<conn::Conn>,
    lease: Lease,
    /// When the scenario is planned to end (set by the first change).
    planned_end: Option<Instant>,
    /// Each table loaded by this host, with its switch.
    switches: Vec<(usize, String, Option<u32>)>,
    held: Vec<Held>,
    say: Box<dyn Fn(String) + 'a>,
}

impl<'a> SshHost<'a> {
    /// The machines of the nodes of `layout`, not connected yet ([`SshHost::connect`]).
    /// Marks go into `events` where given (a run's record); `say` hears each command's
    /// outcome.
    pub fn new(
        layout: Layout,
        machines: Vec<Machine>,
        lease: Lease,
        events: Option<PathBuf>,
        say: impl Fn(String) + 'a,
    ) -> SshHost<'a> {
        SshHost {
            layout,
            events,
            machines,
            conns: Vec::new(),
            lease,
            planned_end: None,
            switches: Vec::new(),
            held: Vec::new(),
            say: Box::new(say),
        }
    }

    /// Connects to every node's machine, in parallel, with `ssh_config` (`None`: the
    /// user's own); `dir` holds the connections' sockets and must outlive them.
    pub async fn connect(&mut self, ssh_config: Option<&Path>, dir: &Path) -> Result<()> {
        let opens = self.machines.iter().zip(&self.layout.nodes).map(|(m, n)| {
            let (dest, tag) = (m.dest.clone(), n.name.clone());
            async move { conn::Conn::open(&dest, ssh_config, dir, &tag).await }
        });
        self.conns = futures::future::join_all(opens)
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        Ok(())
    }

    /// Writes marks into `events` from now on: the event log a run's record reads.
    pub fn record_into(&mut self, events: &Path) {
        self.events = Some(events.to_path_buf());
    }

    fn name(&self, node: usize) -> &str {
        &self.layout.nodes[node].name
    }

    /// Writes a mark into the record, and says it.
    fn mark(&self, said: String) -> Result<()> {
        if let Some(dir) = &self.events {
            events::append(dir, events::MARK, &said)?;
        }
        (self.say)(said);
        Ok(())
    }

    /// How long a change made now must outlive a Perseus that dies.
    fn lease(&mut self) -> Duration {
        let end = *self
            .planned_end
            .get_or_insert_with(|| Instant::now() + self.lease.scenario);
        end.saturating_duration_since(Instant::now()) + self.lease.past_end
    }

    /// `script` as a command that runs it in `node`'s namespace.
    fn in_ns(&self, node: usize, script: &str) -> String {
        match &self.machines[node].netns {
            Some(ns) => format!("ip netns exec {} sh -c {}", quote(ns), quote(script)),
            None => format!("sh -c {}", quote(script)),
        }
    }

    fn conn(&self, node: usize) -> Result<&conn::Conn> {
        self.conns.get(node).ok_or_else(|| {
            Error::Unreachable(format!("{}: not connected over ssh yet", self.name(node)))
        })
    }

    async fn run(&self, node: usize, script: &str, stdin: Option<&str>) -> Result<conn::Output> {
        self.conn(node)?.run(script, stdin, COMMAND_TIMEOUT).await
    }

    fn server(&self, node: usize, op: ProcessOp) -> Result<Server> {
        self.machines[node].server.clone().ok_or_else(|| {
            Error::Invalid(format!(
                "{op:?} over ssh: node {} says neither service = nor process =",
                self.name(node)
            ))
        })
    }
}

/// The SSH session's far end and this side's port, as `$SSH_CONNECTION` says on the machine.
fn session_of(ssh_connection: &str) -> Option<(IpAddr, u16)> {
    let f: Vec<&str> = ssh_connection.split_whitespace().collect();
    match f.as_slice() {
        [client, _, _, port] => Some((client.parse().ok()?, port.parse().ok()?)),
        _ => None,
    }
}

/// The script that puts a change in force (`put`, reading standard input) and then starts
/// its switch: a detached session that runs `undo` after `lease`. It prints the switch's id.
fn with_switch(put: &str, undo: &str, lease: Duration) -> String {
    let later = format!("sleep {}; {undo}", lease.as_secs().max(1));
    format!(
        "set -e\n{put}\nsetsid sh -c {} </dev/null >/dev/null 2>&1 &\necho $!\n",
        quote(&later)
    )
}

#[async_trait::async_trait(?Send)]
impl Transport for SshHost<'_> {
    fn layout(&self) -> Layout {
        self.layout.clone()
    }

    fn events_dir(&self) -> Option<PathBuf> {
        self.events.clone()
    }

    /// Nothing: one run changes a cluster's machines at a time.
    async fn begin(&mut self) -> Result<Guard> {
        Ok(Box::new(()))
    }

    /// Unique across runs (not from the run's seed): a switch left by an earlier run must
    /// never match a table of this one.
    fn table(&mut self, prefix: &str) -> String {
        let mut z = crate::clock::monotonic_ns() ^ ((std::process::id() as u64) << 40);
        // splitmix64's finaliser: nearby clocks give unrelated suffixes.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        format!("{prefix}_{:08x}", (z ^ (z >> 31)) as u32)
    }

    /// The session that carries the commands, where the rules go into the machine's own
    /// namespace (a named one holds no SSH session).
    async fn kept(&mut self, node: usize) -> Result<Option<(IpAddr, u16)>> {
        if self.machines[node].netns.is_some() {
            return Ok(None);
        }
        let out = self.run(node, "echo \"$SSH_CONNECTION\"", None).await?;
        match session_of(&out.stdout) {
            Some(s) => Ok(Some(s)),
            None => Err(Error::FaultNotInForce(format!(
                "{}: the SSH session's address is unknown (SSH_CONNECTION = {:?}), and cutting it would leave the machine out of reach until the lease ends",
                self.name(node),
                out.stdout.trim()
            ))),
        }
    }

    async fn put(&mut self, node: usize, change: &Change) -> Result<()> {
        let lease = self.lease();
        let script = with_switch(
            &self.in_ns(node, &change.put),
            &self.in_ns(node, &change.undo),
            lease,
        );
        let out = self.run(node, &script, Some(&change.stdin)).await?;
        self.mark(format!(
            "ssh {}: {} table inet {} in {} ms",
            self.conn(node)?.dest(),
            if out.succeeded() {
                "loaded"
            } else {
                "failed to load"
            },
            change.table,
            out.took.as_millis()
        ))?;
        if !out.succeeded() {
            return Err(Error::FaultNotInForce(format!(
                "{} over ssh: {}",
                self.name(node),
                out.why()
            )));
        }
        let switch = out
            .stdout
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok());
        self.switches.push((node, change.table.clone(), switch));
        Ok(())
    }

    async fn undo(&mut self, node: usize, table: &str, undo: &str) -> Result<()> {
        let at = self
            .switches
            .iter()
            .position(|(n, t, _)| *n == node && t == table);
        let switch = at.map(|i| self.switches.remove(i)).and_then(|s| s.2);
        let script = format!("{}{}", server::stop_switch(switch), self.in_ns(node, undo));
        let out = self.run(node, &script, None).await?;
        self.mark(format!(
            "ssh {}: removed table inet {table} in {} ms",
            self.conn(node)?.dest(),
            out.took.as_millis()
        ))?;
        if !out.succeeded() {
            return Err(Error::FaultNotInForce(format!(
                "undoing {table} on {} over ssh: {}",
                self.name(node),
                out.why()
            )));
        }
        Ok(())
    }

    async fn read(&mut self, node: usize, script: &str) -> Result<String> {
        let out = self.run(node, &self.in_ns(node, script), None).await?;
        if !out.succeeded() {
            return Err(Error::Unreachable(format!(
                "reading {} over ssh: {}",
                self.name(node),
                out.why()
            )));
        }
        Ok(out.stdout)
    }

    fn processes(&mut self) -> Option<&mut dyn Processes> {
        Some(self)
    }
}

#[async_trait::async_trait(?Send)]
impl Processes for SshHost<'_> {
    /// The cluster file must name the node's server (`service`, or `process`), and, for a
    /// killed server started again by a command, that command (`start`).
    fn refuses(&self, node: usize, op: ProcessOp) -> Option<String> {
        let ok = match &self.machines[node].server {
            None => false,
            Some(Server::Service(_)) => true,
            Some(Server::Process { start, .. }) => op == ProcessOp::Pause || start.is_some(),
        };
        (!ok).then(|| refusal(self.name(node), op))
    }

    async fn stop(&mut self, nodes: &[usize], op: ProcessOp) -> Result<()> {
        for &node in nodes {
            let srv = self.server(node, op)?;
            let lease = self.lease();
            let (script, stdin) = match op {
                ProcessOp::Pause => server::pause(&srv, lease),
                ProcessOp::Kill => server::kill(&srv, lease),
            };
            let out = self.run(node, &script, stdin.as_deref()).await?;
            let verb = match op {
                ProcessOp::Pause => "paused",
                ProcessOp::Kill => "killed",
            };
            self.mark(format!(
                "ssh {}: {} the server in {} ms{}",
                self.conn(node)?.dest(),
                if out.succeeded() { verb } else { "failed: not" },
                out.took.as_millis(),
                if out.succeeded() {
                    String::new()
                } else {
                    format!(" ({})", out.why())
                }
            ))?;
            if !out.succeeded() {
                return Err(Error::FaultNotInForce(format!(
                    "{verb} {} over ssh: {}",
                    self.name(node),
                    out.why()
                )));
            }
            let mut lines = out.stdout.lines();
            let switch: Option<u32> = lines.next().and_then(|l| l.trim().parse().ok());
            let undo = match op {
                ProcessOp::Pause => server::resume(&srv, switch, lines.next().unwrap_or("").trim()),
                ProcessOp::Kill => server::restart(&srv, switch),
            };
            self.held.push(Held { node, op, undo });
        }
        Ok(())
    }

    /// What this host stopped is undone with its own script; anything else (a run that
    /// died) by continuing or starting the server the file names.
    async fn resume(&mut self, nodes: &[usize], op: ProcessOp) -> Result<()> {
        for &node in nodes {
            let at = self.held.iter().position(|h| h.node == node && h.op == op);
            let (script, stdin) = match at {
                Some(i) => self.held.remove(i).undo,
                None => {
                    let srv = self.server(node, op)?;
                    match op {
                        ProcessOp::Pause => server::continue_all(&srv),
                        ProcessOp::Kill => server::restart(&srv, None),
                    }
                }
            };
            let out = self.run(node, &script, stdin.as_deref()).await?;
            self.mark(format!(
                "ssh {}: {} in {} ms",
                self.conn(node)?.dest(),
                match op {
                    ProcessOp::Pause => "resumed the server",
                    ProcessOp::Kill => "started the server again",
                },
                out.took.as_millis()
            ))?;
            if !out.succeeded() {
                return Err(Error::FaultNotInForce(format!(
                    "undoing {op:?} on {} over ssh: {}",
                    self.name(node),
                    out.why()
                )));
            }
        }
        Ok(())
    }

    /// What this host stopped and has not undone; paused servers are also found by their
    /// processes' state, so `heal` continues what a run that died left stopped.
    async fn held(&mut self, op: ProcessOp) -> Result<Vec<usize>> {
        let mut nodes: Vec<usize> = self
            .held
            .iter()
            .filter(|h| h.op == op)
            .map(|h| h.node)
            .collect();
        if op == ProcessOp::Pause {
            for node in 0..self.machines.len() {
                let Some(srv) = self.machines[node].server.clone() else {
                    continue;
                };
                let (script, stdin) = server::stopped(&srv);
                let out = self.run(node, &script, stdin.as_deref()).await?;
                if out.succeeded() && out.stdout.contains("stopped") {
                    nodes.push(node);
                }
            }
        }
        nodes.sort_unstable();
        nodes.dedup();
        Ok(nodes)
    }
}

/// Why `op` cannot be done over SSH on a node whose file names no way to do it.
fn refusal(node: &str, op: ProcessOp) -> String {
    format!(
        "over SSH, {} needs, on node {node}, service = \"UNIT\" (systemd), or process = \"TEXT OF ITS COMMAND LINE\"{}",
        match op {
            ProcessOp::Pause => "pause",
            ProcessOp::Kill => "kill",
        },
        if op == ProcessOp::Kill {
            " and start = \"COMMAND\" to restart it"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_goes_in_with_its_switch() {
        let s = with_switch(
            "sh -c 'nft -f -'",
            "sh -c 'nft delete table inet perseus_isolate_0000abcd'",
            Duration::from_secs(95),
        );
        assert!(s.starts_with("set -e\nsh -c 'nft -f -'\n"), "{s}");
        assert!(
            s.ends_with("setsid sh -c 'sleep 95; sh -c '\\''nft delete table inet perseus_isolate_0000abcd'\\''' </dev/null >/dev/null 2>&1 &\necho $!\n"),
            "{s}"
        );
        // It runs, and prints the switch's id last.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(with_switch("true", "true", Duration::ZERO))
            .output()
            .unwrap();
        assert!(out.status.success());
        let id = String::from_utf8_lossy(&out.stdout);
        assert!(id.trim().parse::<u32>().is_ok(), "{id}");
    }

    #[test]
    fn the_session_to_keep_is_read_from_ssh_connection() {
        assert_eq!(
            session_of("198.18.1.254 40412 198.18.1.2 22\n"),
            Some(("198.18.1.254".parse().unwrap(), 22))
        );
        assert_eq!(
            session_of("fd00::1 5000 fd00::2 2222"),
            Some(("fd00::1".parse().unwrap(), 2222))
        );
        assert_eq!(session_of(""), None);
        assert_eq!(session_of("x 1 y z"), None);
    }

    #[test]
    fn a_refusal_says_what_the_file_must_add() {
        assert!(refusal("n2", ProcessOp::Kill).contains("start = \"COMMAND\""));
        assert!(!refusal("n2", ProcessOp::Pause).contains("start ="));
    }
}
