//! A slow disk: every write and sync on the node's data waits a while first.

use super::{ActsOn, Fault, Param, ParamDoc, Target, TARGET_PARAM};
use crate::disk::{mode::parse_delay, Mode};
use crate::record::faults::{named, FaultKind};

/// `disk-slow NODE DELAY`, undone by `heal`.
pub struct DiskSlow;

impl Fault for DiskSlow {
    fn kind(&self) -> &'static FaultKind {
        named("disk-slow")
    }
    fn about(&self) -> &'static str {
        "Slow a node's disk: every write and sync on its data waits a delay first (--disk faulty)"
    }
    fn example(&self) -> &'static str {
        "n2 100ms"
    }
    fn params(&self) -> &'static [ParamDoc] {
        &[
            TARGET_PARAM,
            ParamDoc {
                name: "DELAY",
                help: "how long each write and sync waits: 1ms to 60s, e.g. 100ms",
                many: false,
            },
        ]
    }
    fn parse(&self, args: &[&str]) -> std::result::Result<(Target, Param), String> {
        let [target, delay] = args else {
            return Err("'disk-slow' takes a target and a delay, e.g. disk-slow n2 100ms".into());
        };
        let d = parse_delay(delay)?;
        Ok((target.parse()?, Param::new(format!("{}ms", d.as_millis()))))
    }
    fn acts_on(&self) -> ActsOn {
        ActsOn::Disk
    }
    fn disk_mode(&self, param: &Param) -> Option<Mode> {
        parse_delay(param.text()).ok().map(Mode::Slow)
    }
    fn disk_param(&self, mode: Mode) -> Option<Param> {
        match mode {
            Mode::Slow(d) => Some(Param::new(format!("{}ms", d.as_millis()))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_delay_is_read_in_one_form_and_back_from_the_disk() {
        let (_, p) = DiskSlow.parse(&["n2", "2s"]).unwrap();
        assert_eq!(p.text(), "2000ms");
        let mode = DiskSlow.disk_mode(&p).unwrap();
        assert_eq!(DiskSlow.disk_param(mode), Some(p));
        assert!(DiskSlow.parse(&["n2"]).unwrap_err().contains("a delay"));
        assert!(DiskSlow.parse(&["n2", "0ms"]).is_err());
        assert_eq!(DiskSlow.disk_param(Mode::Stall), None);
    }
}
