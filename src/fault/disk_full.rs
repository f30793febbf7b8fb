//! A full disk: writes, and whatever makes a file, fail with ENOSPC on the node's data;
//! reads still work.

use super::{ActsOn, Fault, Param};
use crate::disk::Mode;
use crate::record::faults::{named, FaultKind};

/// `disk-full NODE`, undone by `heal`.
pub struct DiskFull;

impl Fault for DiskFull {
    fn kind(&self) -> &'static FaultKind {
        named("disk-full")
    }
    fn about(&self) -> &'static str {
        "Fill a node's disk: its writes fail with ENOSPC, its reads still work (--disk faulty)"
    }
    fn acts_on(&self) -> ActsOn {
        ActsOn::Disk
    }
    fn disk_mode(&self, _param: &Param) -> Option<Mode> {
        Some(Mode::Full)
    }
    fn disk_param(&self, mode: Mode) -> Option<Param> {
        (mode == Mode::Full).then(Param::default)
    }
}
