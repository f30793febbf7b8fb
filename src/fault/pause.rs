//! Pause and resume: every process of a node stopped with SIGSTOP, continued with SIGCONT.
//! Its connections stay open; its clients' requests hang.

use super::InForce;
use crate::error::Result;
use crate::lab::{process, LabState};
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
