//! Kill and restart: every process of a node killed with SIGKILL (no chance to clean up),
//! then started again with the same data directory.

use super::{Fault, InForce, Param};
use crate::db::Database;
use crate::error::Result;
use crate::lab::{self, process, LabState};
use crate::record::faults::{named, FaultKind};
use std::time::Duration;

/// Kills every process of the nodes of `f` and waits until they are gone.
pub fn apply(lab: &LabState, f: &InForce) -> Result<()> {
    for &node in &f.nodes {
        let pids: Vec<(i32, u64)> = process::pids_in(&lab.nodes[node].netns)
            .into_iter()
            .filter_map(|p| process::start_time(p).map(|t| (p, t)))
            .collect();
        process::kill_all(&pids, Duration::from_secs(2));
    }
    Ok(())
}

/// Starts the nodes of `f` again, all at once (their processes as the database restarts
/// them).
pub fn restart(lab_name: &str, f: &InForce, db: &dyn Database) -> Result<()> {
    let mut state = LabState::load(lab_name)?;
    let layout = state.layout();
    let nodes: Vec<_> = f
        .nodes
        .iter()
        .map(|&node| (node, db.restart_processes(&layout, node)))
        .collect();
    lab::restart_nodes(&mut state, &nodes)
}

/// The nodes whose processes have all gone.
pub fn killed(lab: &LabState) -> Vec<usize> {
    (0..lab.nodes.len())
        .filter(|&i| {
            let procs = &lab.nodes[i].processes;
            !procs.is_empty()
                && procs
                    .iter()
                    .all(|p| !process::is_alive(p.pid, p.start_time))
        })
        .collect()
}

/// `kill NODE` / `restart NODE`.
pub struct Kill;

impl Fault for Kill {
    fn kind(&self) -> &'static FaultKind {
        named("kill")
    }
    fn about(&self) -> &'static str {
        "Kill every process of a node with SIGKILL (its data stays)"
    }
    fn undone_by(&self) -> Option<(&'static str, &'static str)> {
        Some(("restart", "Start a killed node again"))
    }
    fn apply(&self, lab: &LabState, f: &InForce, _: &Param, _port: u16) -> Result<()> {
        apply(lab, f)
    }
    fn undo(&self, lab: &LabState, f: &InForce, db: &dyn Database) -> Result<()> {
        restart(&lab.name, f, db)
    }
    fn acts_on(&self) -> super::ActsOn {
        super::ActsOn::Processes(super::ProcessOp::Kill)
    }
    fn held_by_processes(&self, lab: &LabState) -> Option<Vec<usize>> {
        Some(killed(lab))
    }
}
