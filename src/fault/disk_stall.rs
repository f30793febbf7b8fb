//! A stalled disk: every file operation on the node's data blocks until healed, as on a
//! hung volume. The server's own threads hang in those operations; its client sees
//! whatever the server does about it.

use super::{ActsOn, Fault, Param};
use crate::disk::Mode;
use crate::record::faults::{named, FaultKind};

/// `disk-stall NODE`, undone by `heal`.
pub struct DiskStall;

impl Fault for DiskStall {
    fn kind(&self) -> &'static FaultKind {
        named("disk-stall")
    }
    fn about(&self) -> &'static str {
        "Stall a node's disk: every file operation on its data blocks until healed (--disk faulty)"
    }
    fn acts_on(&self) -> ActsOn {
        ActsOn::Disk
    }
    fn disk_mode(&self, _param: &Param) -> Option<Mode> {
        Some(Mode::Stall)
    }
    fn disk_param(&self, mode: Mode) -> Option<Param> {
        (mode == Mode::Stall).then(Param::default)
    }
}
