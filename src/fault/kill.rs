//! Kill and restart: every process of a node killed with SIGKILL (no chance to clean up),
//! then started again with the same data directory.

use super::{ActsOn, Fault, ProcessOp};
use crate::record::faults::{named, FaultKind};

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
    fn acts_on(&self) -> ActsOn {
        ActsOn::Processes(ProcessOp::Kill)
    }
}
