//! The hosts a cluster's nodes run on, as faults reach them: one small [`Transport`] that
//! every fault is written against, implemented by the lab (namespaces on this machine, its
//! own or its containers', [`lab`]), by SSH (each node's own machine, [`ssh`]) and by a
//! compose project Perseus did not start (its containers, [`compose`]). A fault never
//! knows which one it holds: a new transport is one more implementation, not one more copy
//! of the faults.
//!
//! A transport does four things on node `i`: it runs a script as root in the node's network
//! namespace and undoes it ([`Transport::put`], [`Transport::undo`]), reads what is in force
//! there ([`Transport::read`]), and, where it can, checks who connects to whom
//! ([`Transport::probe`]). Stopping and starting the node's server is an optional ability
//! ([`Processes`]), as Jepsen's `Kill` and `Pause` protocols are, and so is making the
//! node's disk sick ([`Disks`]).

pub mod compose;
pub mod lab;
pub mod ssh;

use crate::error::Result;
use crate::lab::Layout;
use std::net::IpAddr;
use std::path::PathBuf;

/// A change one fault makes on one node, as `sh` scripts run as root in the node's network
/// namespace. Whatever else it does, it loads an nftables table named [`Change::table`]
/// whose comment is the fault's target text: that table is how the change is found in
/// force, from any terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its `inet` table, named by the transport ([`Transport::table`]).
    pub table: String,
    /// Puts it in force, reading `stdin`; fails unless it is in force.
    pub put: String,
    pub stdin: String,
    /// Undoes whatever of it is in force, whether `put` finished or not; fails if any of
    /// it is left.
    pub undo: String,
}

/// A connection attempt that tells whether a fault is in force: from node `from` (`None`:
/// from where the clients run) to node `to`'s client port, which must succeed or fail as
/// `connects` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub from: Option<usize>,
    pub to: usize,
    pub connects: bool,
}

/// What holds off changes from other terminals while one is made; dropped when it is done.
pub type Guard = Box<dyn std::any::Any>;

/// How Perseus reaches the nodes of a cluster to put faults in force and undo them.
#[async_trait::async_trait(?Send)]
pub trait Transport {
    /// The nodes: names, addresses, and what the database needs to know of them.
    fn layout(&self) -> Layout;
    /// Where the fault markers go: the event log a run's record reads; `None` where no run
    /// records this cluster now.
    fn events_dir(&self) -> Option<PathBuf>;
    /// Takes whatever serialises changes from several terminals, and reads the nodes'
    /// state afresh; held until the guard is dropped.
    async fn begin(&mut self) -> Result<Guard>;
    /// A name for a new table of a fault whose tables are named `prefix`: the prefix
    /// itself, or the prefix and a unique suffix (`_` and 8 hex digits) where a change can
    /// outlive the run that made it.
    fn table(&mut self, prefix: &str) -> String;
    /// The connection that carries changes to `node`, which a change that reaches the
    /// node's clients must spare; `None` where none goes through its network.
    async fn kept(&mut self, node: usize) -> Result<Option<(IpAddr, u16)>>;
    /// Puts `change` in force on `node`; on error, part of it may be in force.
    async fn put(&mut self, node: usize, change: &Change) -> Result<()>;
    /// Runs `undo`, the script that removes a change found in force on `node` as `table`.
    async fn undo(&mut self, node: usize, table: &str, undo: &str) -> Result<()>;
    /// What `script` prints, run in `node`'s network namespace; it must change nothing.
    async fn read(&mut self, node: usize, script: &str) -> Result<String>;
    /// Each probe's outcome, all tried at once, each given up after `timeout`; `None`
    /// (the default) where this transport cannot try connections between the nodes.
    async fn probe(
        &mut self,
        _probes: &[Probe],
        _port: u16,
        _timeout: std::time::Duration,
    ) -> Option<Result<Vec<bool>>> {
        None
    }
    /// Its ability to stop and start the nodes' servers, if it has one.
    fn processes(&mut self) -> Option<&mut dyn Processes>;
    /// Its ability to make the nodes' disks sick, if it has one (by default, none).
    fn disks(&mut self) -> Option<&mut dyn Disks> {
        None
    }
}

/// Making the nodes' disks sick: each node's data directory sits on a layer whose
/// behaviour can be set ([`crate::disk::Mode`]).
#[async_trait::async_trait(?Send)]
pub trait Disks {
    /// Why the disk of `node` cannot be made sick, if it cannot; asked before a scenario
    /// starts.
    fn refuses(&self, node: usize) -> Option<String>;
    /// Every node's disk mode now (healthy for a node without a layer).
    async fn modes(&mut self) -> Result<Vec<crate::disk::Mode>>;
    /// Sets the disk mode of `nodes`.
    async fn set(&mut self, nodes: &[usize], mode: crate::disk::Mode) -> Result<()>;
    /// Forgets what the disks of `nodes` hold written but unsynced, as a power cut does;
    /// returns how many bytes each dropped.
    async fn drop_unsynced(&mut self, nodes: &[usize]) -> Result<Vec<u64>>;
}

/// What a fault on processes does to a node's server, until it is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessOp {
    /// Freezes it (SIGSTOP), and thaws it again (SIGCONT).
    Pause,
    /// Kills it (SIGKILL), and starts it again.
    Kill,
}

/// Stopping and starting the nodes' servers.
#[async_trait::async_trait(?Send)]
pub trait Processes {
    /// Why `op` cannot be done on `node`, if it cannot; asked before a scenario starts.
    fn refuses(&self, node: usize, op: ProcessOp) -> Option<String>;
    /// Pauses or kills the servers of `nodes`; done when every one is stopped or gone.
    async fn stop(&mut self, nodes: &[usize], op: ProcessOp) -> Result<()>;
    /// Resumes or starts again the servers of `nodes`, all at once.
    async fn resume(&mut self, nodes: &[usize], op: ProcessOp) -> Result<()>;
    /// The nodes where `op` is in force now, as far as this transport can tell.
    async fn held(&mut self, op: ProcessOp) -> Result<Vec<usize>>;
}

/// The script that loads an nftables ruleset from standard input as table `table` and
/// checks it is there.
pub fn load_table(table: &str) -> String {
    format!("set -e\nnft -f -\nnft list table inet {table} >/dev/null\n")
}

/// The script that removes table `table`, if it is there, and checks it is gone.
pub fn remove_table(table: &str) -> String {
    format!(
        "nft delete table inet {table} 2>/dev/null || true\n\
         if nft list table inet {table} >/dev/null 2>&1; then echo \"table inet {table} is still there\" >&2; exit 1; fi\n"
    )
}

/// The script that lists every table of the node's ruleset.
pub const LIST_RULESET: &str = "nft list ruleset\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// The scripts every transport runs, tried with a stand-in `nft` that keeps its tables
    /// in a file: loading checks the table is there, removing checks it is gone, and
    /// removing what is not there is no error.
    #[test]
    fn tables_load_and_go_with_their_checks() {
        let dir = std::env::temp_dir().join(format!("perseus-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = dir.join("tables");
        std::fs::write(&state, "").unwrap();
        let fake = format!(
            "nft() {{ case \"$1\" in \
             -f) cat >/dev/null; echo perseus_x >> {s};; \
             list) grep -qx \"$4\" {s};; \
             delete) grep -vx \"$4\" {s} > {s}.n || true; mv {s}.n {s};; esac; }}\n",
            s = state.display()
        );
        let sh = |script: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{fake}{script}"))
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        };
        assert!(sh(&load_table("perseus_x")).status.success());
        assert!(!sh(&load_table("perseus_y")).status.success(), "not loaded");
        assert!(sh(&remove_table("perseus_x")).status.success());
        assert_eq!(std::fs::read_to_string(&state).unwrap(), "");
        assert!(
            sh(&remove_table("perseus_x")).status.success(),
            "idempotent"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
