//! Pause and resume: every process of a node stopped with SIGSTOP, continued with SIGCONT.
//! Its connections stay open; its clients' requests hang.

use super::{Fault, InForce, Param};
use crate::db::Database;
use crate::error::Result;
use crate::lab::{process, LabState};
use crate::record::faults::{named, FaultKind};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn signal_all(lab: &LabState, f: &InForce, sig: Signal) -> Result<()> {
    for &node in &f.nodes {
        for pid in process::pids_in(&lab.nodes[node].netns) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
    Ok(())
}

/// Stops every process of the nodes of `f`.
pub fn apply(lab: &LabState, f: &InForce) -> Result<()> {
    signal_all(lab, f, Signal::SIGSTOP)
}

/// Continues every process of the nodes of `f`.
pub fn undo(lab: &LabState, f: &InForce) -> Result<()> {
    signal_all(lab, f, Signal::SIGCONT)
}

/// The nodes with a stopped process.
pub fn paused(lab: &LabState) -> Vec<usize> {
    (0..lab.nodes.len())
        .filter(|&i| {
            process::pids_in(&lab.nodes[i].netns)
                .iter()
                .any(|p| process::state(*p) == Some('T'))
        })
        .collect()
}

/// `pause NODE` / `resume NODE`.
pub struct Pause;

impl Fault for Pause {
    fn kind(&self) -> &'static FaultKind {
        named("pause")
    }
    fn about(&self) -> &'static str {
        "Stop every process of a node with SIGSTOP"
    }
    fn undone_by(&self) -> Option<(&'static str, &'static str)> {
        Some(("resume", "Continue a paused node (SIGCONT)"))
    }
    fn apply(&self, lab: &LabState, f: &InForce, _: &Param, _port: u16) -> Result<()> {
        apply(lab, f)
    }
    fn undo(&self, lab: &LabState, f: &InForce, _db: &dyn Database) -> Result<()> {
        undo(lab, f)
    }
    fn acts_on(&self) -> super::ActsOn {
        super::ActsOn::Processes(super::ProcessOp::Pause)
    }
    fn held_by_processes(&self, lab: &LabState) -> Option<Vec<usize>> {
        Some(paused(lab))
    }
}
