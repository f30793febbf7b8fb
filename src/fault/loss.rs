//! Packet loss: a share of the packets on every link between the target nodes and their
//! peers is dropped at random (nftables `numgen random`; `tc netem` is not available on
//! every kernel). Each packet is judged once: by its sender if the sender is a target, else
//! by its receiver, so every direction of every link touching a target loses the same share.

use super::verdict::{Link, Verdict};
use super::{isolate, Fault, InForce, Param, ParamDoc, Target, TARGET_PARAM};
use crate::error::Result;
use crate::record::faults::{named, FaultKind};

/// `loss NODE PERCENT`, undone by `heal`.
pub struct Loss;

impl Fault for Loss {
    fn kind(&self) -> &'static FaultKind {
        named("loss")
    }
    fn about(&self) -> &'static str {
        "Lose a share of the packets between a node and its peers, at random"
    }
    fn example(&self) -> &'static str {
        "n2 30%"
    }
    fn params(&self) -> &'static [ParamDoc] {
        &[
            TARGET_PARAM,
            ParamDoc {
                name: "PERCENT",
                help: "the share of packets lost, 1% to 100%, e.g. 30%",
                many: false,
            },
        ]
    }
    fn parse(&self, args: &[&str]) -> std::result::Result<(Target, Param), String> {
        let [target, p] = args else {
            return Err("'loss' takes a target and a percentage, e.g. loss n2 30%".into());
        };
        let percent = parse_percent(p)?;
        Ok((target.parse()?, Param::new(format!("{percent}%"))))
    }
    fn links(&self, names: &[String], f: &InForce, param: &Param) -> Option<Result<Vec<Link>>> {
        let mut links = isolate::cut_from_peers(names.len(), f, Verdict::Lose(percent(param)));
        links.sort();
        Some(Ok(links))
    }
}

/// A share of packets, `1%` to `100%` (the sign may be left out).
fn parse_percent(p: &str) -> std::result::Result<u8, String> {
    p.trim_end_matches('%')
        .parse::<u8>()
        .ok()
        .filter(|p| (1..=100).contains(p))
        .ok_or_else(|| format!("'{p}' is not a percentage from 1% to 100%"))
}

/// The share its parameter says (as [`Loss::parse`] wrote it).
fn percent(param: &Param) -> u8 {
    parse_percent(param.text()).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_read_and_written_back_in_one_form() {
        let (_, p) = Loss.parse(&["n2", "30"]).unwrap();
        assert_eq!(p.text(), "30%");
        assert_eq!(percent(&p), 30);
        assert!(Loss.parse(&["n2", "0%"]).is_err());
        assert!(Loss.parse(&["n2", "101%"]).is_err());
        assert!(Loss
            .parse(&["n2", "x"])
            .unwrap_err()
            .contains("not a percentage"));
    }
}
