//! A failing disk: writes and syncs on the node's data fail with EIO, all of them or a
//! share at random.

use super::{ActsOn, Fault, Param, ParamDoc, Target, TARGET_PARAM};
use crate::disk::{mode::parse_share, Mode};
use crate::record::faults::{named, FaultKind};

/// `disk-error NODE [PERCENT]`, undone by `heal`.
pub struct DiskError;

impl Fault for DiskError {
    fn kind(&self) -> &'static FaultKind {
        named("disk-error")
    }
    fn about(&self) -> &'static str {
        "Fail a node's disk: its writes and syncs return EIO, all or a share (--disk faulty)"
    }
    fn example(&self) -> &'static str {
        "n2 50%"
    }
    fn params(&self) -> &'static [ParamDoc] {
        &[
            TARGET_PARAM,
            ParamDoc {
                name: "PERCENT",
                help: "the share of writes and syncs that fail, 1% to 100% (default 100%)",
                many: false,
            },
        ]
    }
    fn parse(&self, args: &[&str]) -> std::result::Result<(Target, Param), String> {
        let (target, share) =
            match args {
                [target] => (target, 100),
                [target, p] => (target, parse_share(p)?),
                _ => return Err(
                    "'disk-error' takes a target and maybe a percentage, e.g. disk-error n2 50%"
                        .into(),
                ),
            };
        Ok((target.parse()?, Param::new(format!("{share}%"))))
    }
    fn acts_on(&self) -> ActsOn {
        ActsOn::Disk
    }
    fn disk_mode(&self, param: &Param) -> Option<Mode> {
        parse_share(param.text()).ok().map(Mode::Error)
    }
    fn disk_param(&self, mode: Mode) -> Option<Param> {
        match mode {
            Mode::Error(p) => Some(Param::new(format!("{p}%"))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_fails_unless_a_share_is_given() {
        let (_, p) = DiskError.parse(&["n2"]).unwrap();
        assert_eq!(p.text(), "100%");
        assert_eq!(DiskError.disk_mode(&p), Some(Mode::Error(100)));
        let (_, p) = DiskError.parse(&["n2", "30"]).unwrap();
        assert_eq!(DiskError.disk_param(Mode::Error(30)), Some(p));
        assert!(DiskError.parse(&["n2", "0%"]).is_err());
        assert!(DiskError.parse(&["n2", "1", "2"]).is_err());
    }
}
