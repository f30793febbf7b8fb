//! Faults on machines Perseus reaches over SSH: a cluster file whose nodes say
//! `ssh = "user@host"` needs no fault commands. Each network fault is an nftables table that
//! Perseus loads on the node's machine (in its host namespace, or the `netns` the file
//! names) through one master connection per node ([`ssh`]); `kill` and `pause` signal the
//! server the file names on the node ([`server`]).
//!
//! **A machine is never left cut off.** Every fault goes in together with a dead man's
//! switch on that machine: a detached `sleep LEASE; nft delete table …` (for a paused
//! server `kill -CONT`, for a killed one its start command), LEASE reaching the cluster
//! file's `lease` (30 s by default) past the scenario's planned end. When Perseus undoes the
//! fault it stops the switch; when Perseus dies, loses its laptop or its SSH session, the
//! switch heals the node. `perseus heal --cluster FILE` removes every table Perseus made on
//! every node and continues the servers ([`heal_all`]); `perseus status --cluster FILE`
//! reads the tables back ([`tables`]). Every table is named `perseus_<fault>_<8 hex
//! digits>`, unique per fault in force, so a late switch can only ever remove its own.
//!
//! Clients still run where Perseus runs, so the record keeps one clock; a fault's markers
//! are written around its remote command, and each command's round trip goes into the record
//! as a mark, which says how precisely the marker is placed.

pub mod server;
pub mod ssh;

use crate::cluster::Cluster;
use crate::db::Database;
use crate::error::{Error, Result};
use crate::fault::{self, nft, Action, Fault, InForce, Param, ProcessOp, Rng, Target};
use crate::lab::events;
use crate::record::marks;
use crate::scenario::Scenario;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long one remote command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether Perseus can make `fault` over SSH: every fault that is nftables rules (loaded
/// in the node's own namespace; one that cuts the clients keeps the SSH session that loads
/// it), and every fault on the server's processes, which the cluster file names on each
/// node (`service`, or `process` and `start`).
pub fn supports(fault: &dyn Fault) -> bool {
    match fault.acts_on() {
        fault::ActsOn::Rules | fault::ActsOn::Processes(_) => true,
    }
}

/// The faults Perseus makes over SSH, for messages.
fn supported() -> String {
    let names: Vec<&str> = fault::FAULTS
        .iter()
        .filter(|f| supports(**f))
        .map(|f| f.kind().name)
        .collect();
    names.join(", ")
}

/// Checks, before anything starts, that every fault of `scenario` can be made over SSH and
/// names nodes of the cluster.
pub fn check_scenario(cluster: &Cluster, scenario: &Scenario) -> Result<()> {
    for phase in &scenario.phases {
        for action in &phase.faults {
            let (fault, target) = match action {
                Action::Start { fault, target, .. } | Action::End { fault, target } => {
                    (*fault, target)
                }
                Action::Heal => continue,
            };
            if !supports(fault) {
                return Err(Error::Invalid(format!(
                    "phase '{}': '{action}': over SSH Perseus makes {} so far; {} is not one of them",
                    phase.name,
                    supported(),
                    fault.kind().name
                )));
            }
            if let Target::Node(n) = target {
                cluster.node_index(n)?;
            }
            if let fault::ActsOn::Processes(op) = fault.acts_on() {
                let nodes: Vec<usize> = match target {
                    Target::Node(n) => vec![cluster.node_index(n)?],
                    _ => (0..cluster.nodes.len()).collect(),
                };
                for i in nodes {
                    let node = &cluster.nodes[i];
                    let ok = match &node.server {
                        None => false,
                        Some(crate::cluster::Server::Service(_)) => true,
                        Some(crate::cluster::Server::Process { start, .. }) => {
                            op == ProcessOp::Pause || start.is_some()
                        }
                    };
                    if !ok {
                        return Err(Error::Invalid(format!(
                            "phase '{}': '{action}' over SSH needs, on node {}, service = \"UNIT\" (systemd), or process = \"TEXT OF ITS COMMAND LINE\"{}",
                            phase.name,
                            node.name,
                            if op == ProcessOp::Kill { " and start = \"COMMAND\" to restart it" } else { "" }
                        )));
                    }
                }
            }
            if let Action::Start {
                param: Param::Groups(g),
                ..
            } = action
            {
                fault::partition::grudge_of(&names(cluster), g)?;
            }
        }
    }
    Ok(())
}

fn names(cluster: &Cluster) -> Vec<String> {
    cluster.nodes.iter().map(|n| n.name.clone()).collect()
}

/// The command that runs `nft` where node `node`'s rules live.
fn nft_command(cluster: &Cluster, node: usize) -> String {
    match &cluster.nodes[node].netns {
        Some(ns) => format!("ip netns exec {} nft", ssh::quote(ns)),
        None => "nft".into(),
    }
}

/// The SSH session's far end and this side's port, as `$SSH_CONNECTION` says on the machine.
fn session_of(ssh_connection: &str) -> Option<(std::net::IpAddr, u16)> {
    let f: Vec<&str> = ssh_connection.split_whitespace().collect();
    match f.as_slice() {
        [client, _, _, port] => Some((client.parse().ok()?, port.parse().ok()?)),
        _ => None,
    }
}

/// The script that loads a ruleset (from standard input) as table `table`, checks it is in
/// force, and starts its switch: a detached session that removes the table after `lease`.
/// It prints the switch's process id.
fn install_script(nft: &str, table: &str, lease: Duration) -> String {
    let remove = format!(
        "sleep {}; {nft} delete table inet {table}",
        lease.as_secs().max(1)
    );
    format!(
        "set -e\n{nft} -f -\n{nft} list table inet {table} >/dev/null\n\
         setsid sh -c {} </dev/null >/dev/null 2>&1 &\necho $!\n",
        ssh::quote(&remove)
    )
}

/// The script that stops switch `pid` (its whole session), removes table `table` and checks
/// it is gone.
fn remove_script(nft: &str, table: &str, pid: Option<u32>) -> String {
    let stop = server::stop_switch(pid);
    format!(
        "{stop}{nft} delete table inet {table} 2>/dev/null || true\n\
         if {nft} list table inet {table} >/dev/null 2>&1; then echo \"table inet {table} is still there\" >&2; exit 1; fi\n"
    )
}

/// The script that removes every table Perseus made and prints their names.
fn heal_script(nft: &str) -> String {
    format!(
        "for t in $({nft} list tables | sed -n 's/^table inet \\(perseus_[A-Za-z0-9_]*\\)$/\\1/p'); do \
         {nft} delete table inet \"$t\" && echo \"$t\"; done\n"
    )
}

/// A fault in force on one node, and how to undo it (which also stops its switch).
#[derive(Debug, Clone)]
struct Installed {
    kind: &'static str,
    target: String,
    node: usize,
    /// What the undo does, for the record: `removed table inet perseus_isolate_…`.
    undone: String,
    undo: server::Script,
}

/// Faults over SSH on a cluster's machines; see the module's documentation.
pub struct Remote<'a, S: Fn(String)> {
    cluster: &'a Cluster,
    db: &'static dyn Database,
    conns: Vec<ssh::Conn>,
    scenario_length: Duration,
    /// When the scenario is planned to end (set when its first fault starts).
    planned_end: Option<Instant>,
    installed: Vec<Installed>,
    rng: Rng,
    say: S,
}

/// Opens a master connection to every node's machine, in parallel; sockets in `dir`.
async fn connect_all(cluster: &Cluster, dir: &Path) -> Result<Vec<ssh::Conn>> {
    let opens = cluster.nodes.iter().map(|n| {
        let dest = n.ssh.clone().unwrap_or_default();
        let config = cluster.ssh_config.clone();
        let tag = n.name.clone();
        async move { ssh::Conn::open(&dest, config.as_deref(), dir, &tag).await }
    });
    futures::future::join_all(opens).await.into_iter().collect()
}

impl<'a, S: Fn(String)> Remote<'a, S> {
    /// Connects to every node's machine; `dir` holds the connections' sockets.
    /// `scenario_length`: how long the whole scenario is planned to last.
    pub async fn open(
        cluster: &'a Cluster,
        db: &'static dyn Database,
        dir: &Path,
        scenario_length: Duration,
        seed: u64,
        say: S,
    ) -> Result<Remote<'a, S>> {
        let conns = connect_all(cluster, dir).await?;
        Ok(Remote {
            cluster,
            db,
            conns,
            scenario_length,
            planned_end: None,
            installed: Vec::new(),
            rng: Rng::new(seed),
            say,
        })
    }

    fn mark(&self, verb: &str, text: &str) -> Result<()> {
        events::append(&self.cluster.dir(), verb, text).map(|_| ())
    }

    /// How long a table loaded now must outlive a Perseus that dies.
    fn lease(&self) -> Duration {
        let left = self.planned_end.map_or(self.scenario_length, |e| {
            e.saturating_duration_since(Instant::now())
        });
        left + self.cluster.lease
    }

    async fn nodes_of(&mut self, target: &Target) -> Result<Vec<usize>> {
        fault::resolve_in(target, &self.cluster.layout(), self.db, &mut self.rng).await
    }

    /// Puts `f` in force on `node`, with its switch.
    async fn install(&mut self, f: &InForce, param: &Param, node: usize) -> Result<()> {
        match f.fault().acts_on() {
            fault::ActsOn::Processes(op) => self.signal(f, op, node).await,
            fault::ActsOn::Rules => self.load_rules(f, param, node).await,
        }
    }

    /// Pauses or kills node `node`'s server, with the switch that undoes it.
    async fn signal(&mut self, f: &InForce, op: ProcessOp, node: usize) -> Result<()> {
        let name = self.cluster.nodes[node].name.clone();
        let srv = self.cluster.nodes[node].server.clone().ok_or_else(|| {
            Error::Invalid(format!(
                "{} over ssh: node {name} says neither service = nor process =",
                f.kind.name
            ))
        })?;
        let lease = self.lease();
        let (script, stdin) = match op {
            ProcessOp::Pause => server::pause(&srv, lease),
            ProcessOp::Kill => server::kill(&srv, lease),
        };
        let out = self.conns[node]
            .run(&script, stdin.as_deref(), COMMAND_TIMEOUT)
            .await?;
        let verb = match op {
            ProcessOp::Pause => "paused",
            ProcessOp::Kill => "killed",
        };
        let said = format!(
            "ssh {}: {} the server in {} ms{}",
            self.conns[node].dest(),
            if out.succeeded() { verb } else { "failed: not" },
            out.took.as_millis(),
            if out.succeeded() {
                String::new()
            } else {
                format!(" ({})", out.why())
            }
        );
        self.mark(events::MARK, &said)?;
        (self.say)(said);
        if !out.succeeded() {
            return Err(Error::FaultNotInForce(format!(
                "{} on {name} over ssh: {}",
                f.kind.name,
                out.why()
            )));
        }
        let mut lines = out.stdout.lines();
        let switch: Option<u32> = lines.next().and_then(|l| l.trim().parse().ok());
        let (undone, undo) = match op {
            ProcessOp::Pause => {
                let pids = lines.next().unwrap_or("").trim().to_string();
                (
                    "resumed the server".to_string(),
                    server::resume(&srv, switch, &pids),
                )
            }
            ProcessOp::Kill => (
                "started the server again".to_string(),
                server::restart(&srv, switch),
            ),
        };
        self.installed.push(Installed {
            kind: f.kind.name,
            target: f.target.clone(),
            node,
            undone,
            undo,
        });
        Ok(())
    }

    /// Loads `f`'s table on `node` with its switch.
    async fn load_rules(&mut self, f: &InForce, param: &Param, node: usize) -> Result<()> {
        // Unique across runs (not from the run's seed): a switch left by an earlier run
        // must never match a table of this one.
        let nonce = crate::clock::monotonic_ns() ^ ((std::process::id() as u64) << 40);
        let table = format!(
            "{}_{:08x}",
            fault::table(f.kind),
            Rng::new(nonce).below(u32::MAX as usize) as u32
        );
        let nft = nft_command(self.cluster, node);
        // A fault that cuts the clients keeps this very session, where the rules go into
        // the machine's own namespace (a named one holds no SSH session).
        let session = if f.fault().cuts_clients() && self.cluster.nodes[node].netns.is_none() {
            let out = self.conns[node]
                .run("echo \"$SSH_CONNECTION\"", None, COMMAND_TIMEOUT)
                .await?;
            let s = session_of(&out.stdout);
            if s.is_none() {
                return Err(Error::FaultNotInForce(format!(
                    "{} on {}: the SSH session's address is unknown (SSH_CONNECTION = {:?}), and cutting it would leave the machine out of reach until the lease ends",
                    f.kind.name,
                    self.cluster.nodes[node].name,
                    out.stdout.trim()
                )));
            }
            s
        } else {
            None
        };
        let topology = fault::Topology::of(&self.cluster.layout(), session);
        let rules = f
            .fault()
            .rules(&topology, f, param, node, &table)
            .unwrap_or_else(|| {
                Err(Error::Invalid(format!(
                    "{} is no network fault",
                    f.kind.name
                )))
            })?;
        let out = self.conns[node]
            .run(
                &install_script(&nft, &table, self.lease()),
                Some(&rules),
                COMMAND_TIMEOUT,
            )
            .await?;
        let name = &self.cluster.nodes[node].name;
        let said = format!(
            "ssh {}: {} table inet {table} in {} ms",
            self.conns[node].dest(),
            if out.succeeded() {
                "loaded"
            } else {
                "failed to load"
            },
            out.took.as_millis()
        );
        self.mark(events::MARK, &said)?;
        (self.say)(said);
        if !out.succeeded() {
            // Whatever part of it got there goes again.
            let _ = self.conns[node]
                .run(&remove_script(&nft, &table, None), None, COMMAND_TIMEOUT)
                .await;
            return Err(Error::FaultNotInForce(format!(
                "{} on {name} over ssh: {}",
                f.kind.name,
                out.why()
            )));
        }
        let switch = out.stdout.trim().parse().ok();
        self.installed.push(Installed {
            kind: f.kind.name,
            target: f.target.clone(),
            node,
            undone: format!("removed table inet {table}"),
            undo: (remove_script(&nft, &table, switch), None),
        });
        Ok(())
    }

    /// Undoes `i` (and stops its switch).
    async fn uninstall(&mut self, i: Installed) -> Result<()> {
        let out = self.conns[i.node]
            .run(&i.undo.0, i.undo.1.as_deref(), COMMAND_TIMEOUT)
            .await?;
        let said = format!(
            "ssh {}: {} in {} ms",
            self.conns[i.node].dest(),
            i.undone,
            out.took.as_millis()
        );
        self.mark(events::MARK, &said)?;
        (self.say)(said);
        if !out.succeeded() {
            return Err(Error::FaultNotInForce(format!(
                "undoing {} on {} over ssh: {}",
                i.kind,
                self.cluster.nodes[i.node].name,
                out.why()
            )));
        }
        Ok(())
    }
}

#[async_trait::async_trait(?Send)]
impl<S: Fn(String)> crate::schedule::Backend for Remote<'_, S> {
    async fn before_first_fault(&mut self) -> Result<()> {
        self.planned_end = Some(Instant::now() + self.scenario_length);
        Ok(())
    }

    /// Marks which node leads (where one does), then puts the fault in force on each of its
    /// nodes, between its markers. On error, what was put in force is undone again.
    async fn start(&mut self, action: &Action) -> Result<InForce> {
        let Action::Start {
            fault,
            target,
            param,
        } = action
        else {
            return Err(Error::Invalid(format!("'{action}' does not start a fault")));
        };
        if !supports(*fault) {
            return Err(Error::Invalid(format!(
                "over SSH Perseus makes {} so far, not {}",
                supported(),
                fault.kind().name
            )));
        }
        if let Some(l) = self.db.leadership() {
            let layout = self.cluster.layout();
            let leader = l.leader(&layout).await;
            let name = leader.map(|i| layout.nodes[i].name.clone());
            self.mark(events::MARK, &marks::leader(name.as_deref()))?;
        }
        let (nodes, text) = match param {
            Param::Groups(g) => {
                let names = names(self.cluster);
                let grudge = fault::partition::grudge_of(&names, g)?;
                let nodes = (0..names.len()).filter(|i| grudge.0[*i] != 0).collect();
                (nodes, grudge.describe(&names))
            }
            _ => {
                let nodes = self.nodes_of(target).await?;
                let mut text = nodes
                    .iter()
                    .map(|i| self.cluster.nodes[*i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                if let Param::Percent(p) = param {
                    text.push_str(&format!(" {p}%"));
                }
                (nodes, text)
            }
        };
        let kind = fault.kind();
        let f = InForce {
            kind,
            target: text,
            nodes,
        };
        self.mark(kind.starting, &f.target)?;
        let before = self.installed.len();
        for &node in &f.nodes {
            if let Err(e) = self.install(&f, param, node).await {
                for i in self.installed.split_off(before) {
                    let _ = self.uninstall(i).await;
                }
                self.mark(
                    crate::record::faults::ABORTED,
                    &format!("{} {}", kind.starting, f.target),
                )?;
                return Err(e);
            }
        }
        self.mark(kind.started, &f.target)?;
        Ok(f)
    }

    async fn resolve(&mut self, target: &Target) -> Result<Vec<usize>> {
        self.nodes_of(target).await
    }

    async fn end(&mut self, f: &InForce) -> Result<()> {
        self.mark(f.kind.ending, &f.target)?;
        let (mine, kept): (Vec<Installed>, Vec<Installed>) = std::mem::take(&mut self.installed)
            .into_iter()
            .partition(|i| i.kind == f.kind.name && i.target == f.target);
        self.installed = kept;
        let mut failed = None;
        for i in mine {
            if let Err(e) = self.uninstall(i).await {
                failed.get_or_insert(e);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => self.mark(f.kind.ended, &f.target),
        }
    }

    fn undoes_on_stop(&self) -> bool {
        true
    }
}

/// Removes every table Perseus made on every node of `cluster` and continues its server's
/// processes where the file names them (after a crash, or to be sure); what it undid, per
/// node. A server a killed run left down is started again by its switch within the lease.
pub async fn heal_all(cluster: &Cluster, dir: &Path) -> Result<Vec<(String, Vec<String>)>> {
    let conns = connect_all(cluster, dir).await?;
    let mut out = Vec::new();
    for (i, c) in conns.iter().enumerate() {
        let mut resumed = Vec::new();
        if let Some(srv) = &cluster.nodes[i].server {
            let (script, stdin) = server::continue_all(srv);
            let r = c.run(&script, stdin.as_deref(), COMMAND_TIMEOUT).await?;
            if r.stdout.contains("resumed") {
                resumed.push("sent SIGCONT to its server".to_string());
            }
        }
        let r = c
            .run(
                &heal_script(&nft_command(cluster, i)),
                None,
                COMMAND_TIMEOUT,
            )
            .await?;
        if !r.succeeded() {
            return Err(Error::FaultNotInForce(format!(
                "heal on {} over ssh: {}",
                cluster.nodes[i].name,
                r.why()
            )));
        }
        let mut removed: Vec<String> = r
            .stdout
            .lines()
            .map(|t| format!("removed table {t}"))
            .collect();
        removed.extend(resumed);
        out.push((cluster.nodes[i].name.clone(), removed));
    }
    Ok(out)
}

/// The tables Perseus made that are in force on every node of `cluster`, with their
/// comments (the faults' marker targets), per node.
pub async fn tables(cluster: &Cluster, dir: &Path) -> Result<Vec<(String, Vec<(String, String)>)>> {
    let conns = connect_all(cluster, dir).await?;
    let mut out = Vec::new();
    for (i, c) in conns.iter().enumerate() {
        let nft = nft_command(cluster, i);
        let r = c
            .run(&format!("{nft} list ruleset"), None, COMMAND_TIMEOUT)
            .await?;
        if !r.succeeded() {
            return Err(Error::Unreachable(format!(
                "nft list ruleset on {} over ssh: {}",
                cluster.nodes[i].name,
                r.why()
            )));
        }
        out.push((cluster.nodes[i].name.clone(), nft::parse_tables(&r.stdout)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_goes_in_with_its_switch_and_comes_out_with_it() {
        let s = install_script("nft", "perseus_isolate_0000abcd", Duration::from_secs(95));
        assert!(
            s.starts_with(
                "set -e\nnft -f -\nnft list table inet perseus_isolate_0000abcd >/dev/null\n"
            ),
            "{s}"
        );
        assert!(
            s.contains("setsid sh -c 'sleep 95; nft delete table inet perseus_isolate_0000abcd' </dev/null >/dev/null 2>&1 &\necho $!\n"),
            "{s}"
        );
        let r = remove_script(
            "ip netns exec 'db' nft",
            "perseus_loss_00000001",
            Some(4242),
        );
        assert!(r.starts_with("kill -- -4242 2>/dev/null || kill 4242 2>/dev/null || true\nip netns exec 'db' nft delete table inet perseus_loss_00000001"), "{r}");
        assert!(r.contains("exit 1"), "{r}");
        assert!(!remove_script("nft", "t", None).contains("kill"));
        let h = heal_script("nft");
        assert!(h.contains("perseus_[A-Za-z0-9_]*"), "{h}");
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
    fn the_heal_script_removes_perseus_tables_only() {
        // A stand-in for nft that lists some tables and says what it deletes.
        let fake = "nft() { if [ \"$1\" = list ]; then printf '%s' \"$L\"; else echo \"deleted $4\" >&2; fi; }\n";
        let listing = "table inet perseus_isolate_0000abcd\ntable inet filter\ntable ip perseus_x\ntable inet perseus_loss_00000002\n";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{fake}{}", heal_script("nft")))
            .env("L", listing)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "perseus_isolate_0000abcd\nperseus_loss_00000002\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "deleted perseus_isolate_0000abcd\ndeleted perseus_loss_00000002\n"
        );
    }

    /// Every fault of the registry is made over SSH too: none is refused there for want of
    /// a second copy of it.
    #[test]
    fn every_fault_of_the_registry_is_made_over_ssh() {
        for f in fault::FAULTS {
            assert!(supports(*f), "{f:?}");
        }
    }
}
