//! The lab as a transport: every node is a network namespace on this machine, its own or
//! a container's (see [`lab::containers`]). Scripts run in the node's namespace (`sh`
//! entered into it), probes are real connections from inside the namespaces, and the
//! servers are the processes the lab started, signalled by pid (or, in containers, frozen
//! and killed through the engine) and started again with the database's own command
//! lines. Changes from several terminals take turns under the lab's lock. Nothing outlives the lab: tearing it down removes the
//! namespaces and all that is in them.

use super::{Change, Disks, Guard, ProcessOp, Processes, Transport};
use crate::db::Database;
use crate::disk::Mode;
use crate::error::{Error, Result};
use crate::lab::{self, process, LabState, Layout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A lab Perseus made, reached through its namespaces.
pub struct LabHost {
    state: LabState,
    db: Option<&'static dyn Database>,
}

impl LabHost {
    /// The lab `state`, whose servers `db` starts again after a kill.
    pub fn new(state: LabState, db: &'static dyn Database) -> LabHost {
        LabHost {
            state,
            db: Some(db),
        }
    }

    /// The lab `state`, to read what is in force (and undo what needs no database: every
    /// fault but a kill).
    pub fn reading(state: LabState) -> LabHost {
        LabHost { state, db: None }
    }

    /// The lab as last read.
    pub fn state(&self) -> &LabState {
        &self.state
    }

    fn netns(&self, node: usize) -> String {
        self.state.nodes[node].netns.clone()
    }

    /// Runs `script` with `sh` in `node`'s namespace, off the runtime's threads.
    async fn sh(&self, node: usize, script: &str, stdin: &str) -> Result<String> {
        let (ns, script, stdin) = (self.netns(node), script.to_string(), stdin.to_string());
        blocking(move || process::run_in(&ns, "sh", &["-c", &script], Some(&stdin))).await
    }
}

/// Runs `f` on a thread where blocking is allowed.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Invalid(format!("lab task failed: {e}")))?
}

#[async_trait::async_trait(?Send)]
impl Transport for LabHost {
    fn layout(&self) -> Layout {
        self.state.layout()
    }

    fn events_dir(&self) -> Option<PathBuf> {
        Some(self.state.dir())
    }

    /// The lab's lock, and the lab as it is on disk now: another command, or an earlier
    /// restart, may have changed its processes since it was read.
    async fn begin(&mut self) -> Result<Guard> {
        let lock = self.state.lock()?;
        self.state = LabState::load(&self.state.name)?;
        Ok(Box::new(lock))
    }

    /// The prefix: a lab's tables go with its namespaces, and at most one of each fault
    /// is in force on a node.
    fn table(&mut self, prefix: &str) -> String {
        prefix.to_string()
    }

    /// None: the lab's namespaces are entered from this machine, not reached through them.
    async fn kept(&mut self, _node: usize) -> Result<Option<(IpAddr, u16)>> {
        Ok(None)
    }

    async fn put(&mut self, node: usize, change: &Change) -> Result<()> {
        self.sh(node, &change.put, &change.stdin).await.map(|_| ())
    }

    async fn undo(&mut self, node: usize, _table: &str, undo: &str) -> Result<()> {
        self.sh(node, undo, "").await.map(|_| ())
    }

    async fn read(&mut self, node: usize, script: &str) -> Result<String> {
        self.sh(node, script, "").await
    }

    async fn probe(
        &mut self,
        probes: &[super::Probe],
        port: u16,
        timeout: Duration,
    ) -> Option<Result<Vec<bool>>> {
        let tries: Vec<_> = probes
            .iter()
            .map(|p| {
                let ns = p.from.map(|i| self.netns(i));
                let to = SocketAddr::from((self.state.nodes[p.to].addr, port));
                std::thread::spawn(move || {
                    Ok(lab::net::reach(ns.as_deref(), to, timeout)? == lab::net::Reach::Connected)
                })
            })
            .collect();
        let joined = blocking(move || {
            tries
                .into_iter()
                .map(|t| t.join().expect("probe thread"))
                .collect::<Result<Vec<bool>>>()
        })
        .await;
        Some(joined)
    }

    fn processes(&mut self) -> Option<&mut dyn Processes> {
        Some(self)
    }

    fn disks(&mut self) -> Option<&mut dyn Disks> {
        Some(self)
    }
}

#[async_trait::async_trait(?Send)]
impl Disks for LabHost {
    /// A node without a layer: the lab was made without `--disk faulty`.
    fn refuses(&self, node: usize) -> Option<String> {
        lab::disks::layer(&self.state, node)
            .err()
            .map(|e| e.to_string())
    }

    async fn modes(&mut self) -> Result<Vec<Mode>> {
        let state = self.state.clone();
        blocking(move || lab::disks::modes(&state)).await
    }

    async fn set(&mut self, nodes: &[usize], mode: Mode) -> Result<()> {
        let (state, nodes) = (self.state.clone(), nodes.to_vec());
        blocking(move || lab::disks::set(&state, &nodes, mode)).await
    }

    async fn drop_unsynced(&mut self, nodes: &[usize]) -> Result<Vec<u64>> {
        let (state, nodes) = (self.state.clone(), nodes.to_vec());
        blocking(move || lab::disks::drop_unsynced(&state, &nodes)).await
    }
}

#[async_trait::async_trait(?Send)]
impl Processes for LabHost {
    /// None: the lab started every server, and knows how to start it again.
    fn refuses(&self, _node: usize, _op: ProcessOp) -> Option<String> {
        None
    }

    /// Every process in the nodes' namespaces, frozen or killed (and gone when this returns);
    /// in a container lab, the nodes' server containers, through the engine.
    async fn stop(&mut self, nodes: &[usize], op: ProcessOp) -> Result<()> {
        if self.state.containers.is_some() {
            let (state, nodes) = (self.state.clone(), nodes.to_vec());
            let kill = op == ProcessOp::Kill;
            return blocking(move || lab::containers::stop(&state, &nodes, kill)).await;
        }
        let namespaces: Vec<String> = nodes.iter().map(|&i| self.netns(i)).collect();
        blocking(move || {
            for ns in namespaces {
                match op {
                    ProcessOp::Pause => signal_all(&ns, Signal::SIGSTOP),
                    ProcessOp::Kill => {
                        let pids: Vec<(i32, u64)> = process::pids_in(&ns)
                            .into_iter()
                            .filter_map(|p| process::start_time(p).map(|t| (p, t)))
                            .collect();
                        process::kill_all(&pids, Duration::from_secs(2));
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// Paused processes are continued; killed servers start again all at once, as after a
    /// power cut, with the database's restart command lines on the same data.
    async fn resume(&mut self, nodes: &[usize], op: ProcessOp) -> Result<()> {
        match op {
            ProcessOp::Pause if self.state.containers.is_some() => {
                let (state, nodes) = (self.state.clone(), nodes.to_vec());
                blocking(move || lab::containers::thaw(&state, &nodes)).await
            }
            ProcessOp::Pause => {
                let namespaces: Vec<String> = nodes.iter().map(|&i| self.netns(i)).collect();
                blocking(move || {
                    for ns in namespaces {
                        signal_all(&ns, Signal::SIGCONT);
                    }
                    Ok(())
                })
                .await
            }
            ProcessOp::Kill => {
                let db = self.db.ok_or_else(|| {
                    Error::Invalid(format!(
                        "lab {}: its database '{}' is unknown to this Perseus, which cannot start its servers again",
                        self.state.name, self.state.database
                    ))
                })?;
                let layout = self.state.layout();
                let specs: Vec<_> = nodes
                    .iter()
                    .map(|&node| (node, db.restart_processes(&layout, node)))
                    .collect();
                let mut state = self.state.clone();
                self.state = blocking(move || {
                    lab::restart_nodes(&mut state, &specs)?;
                    Ok(state)
                })
                .await?;
                Ok(())
            }
        }
    }

    /// Paused: a node with a stopped process. Killed: a node whose every process is gone.
    async fn held(&mut self, op: ProcessOp) -> Result<Vec<usize>> {
        if op == ProcessOp::Pause && self.state.containers.is_some() {
            let state = self.state.clone();
            return blocking(move || lab::containers::paused(&state)).await;
        }
        let nodes = &self.state.nodes;
        Ok((0..nodes.len())
            .filter(|&i| match op {
                ProcessOp::Pause => process::pids_in(&nodes[i].netns)
                    .iter()
                    .any(|p| process::state(*p) == Some('T')),
                ProcessOp::Kill => {
                    let procs = &nodes[i].processes;
                    !procs.is_empty()
                        && procs
                            .iter()
                            .all(|p| !process::is_alive(p.pid, p.start_time))
                }
            })
            .collect())
    }
}

fn signal_all(netns: &str, sig: Signal) {
    for pid in process::pids_in(netns) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}
