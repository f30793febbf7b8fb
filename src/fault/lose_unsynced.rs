//! A power cut: the node's servers are killed, and everything they wrote but never synced
//! is gone before they start again, as LazyFS's `clear-cache` does. Until then its disk
//! answers nothing (every operation fails with EIO).

use super::{ActsOn, Fault, Param};
use crate::disk::Mode;
use crate::record::faults::{named, FaultKind};

/// `lose-unsynced NODE` / `power-on NODE`.
pub struct LoseUnsynced;

impl Fault for LoseUnsynced {
    fn kind(&self) -> &'static FaultKind {
        named("lose-unsynced")
    }
    fn about(&self) -> &'static str {
        "Cut a node's power: kill its servers and drop what they wrote but never synced (--disk faulty)"
    }
    fn undone_by(&self) -> Option<(&'static str, &'static str)> {
        Some((
            "power-on",
            "Start a node whose power was cut again, on what its disk kept",
        ))
    }
    fn acts_on(&self) -> ActsOn {
        ActsOn::Disk
    }
    fn disk_mode(&self, _param: &Param) -> Option<Mode> {
        Some(Mode::Cut)
    }
    fn disk_param(&self, mode: Mode) -> Option<Param> {
        (mode == Mode::Cut).then(Param::default)
    }
}
