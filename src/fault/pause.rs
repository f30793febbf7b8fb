//! Pause and resume: every process of a node stopped with SIGSTOP, continued with SIGCONT.
//! Its connections stay open; its clients' requests hang.

use super::{ActsOn, Fault, ProcessOp};
use crate::record::faults::{named, FaultKind};

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
    fn acts_on(&self) -> ActsOn {
        ActsOn::Processes(ProcessOp::Pause)
    }
}
