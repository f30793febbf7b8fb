//! One-way drop: a node still hears its peers, but every packet it sends them is lost.

use super::verdict::{End, Link, Verdict};
use super::{Fault, InForce, Param};
use crate::error::Result;
use crate::record::faults::{named, FaultKind};

/// `one-way NODE`, undone by `heal`.
pub struct OneWay;

impl Fault for OneWay {
    fn kind(&self) -> &'static FaultKind {
        named("one-way")
    }
    fn about(&self) -> &'static str {
        "Lose everything a node sends to its peers (it still hears them)"
    }
    fn links(&self, names: &[String], f: &InForce, _: &Param) -> Option<Result<Vec<Link>>> {
        let n = names.len();
        Some(Ok(f
            .nodes
            .iter()
            .flat_map(|&t| {
                (0..n).filter(move |p| *p != t).map(move |p| Link {
                    from: End::Node(t),
                    to: End::Node(p),
                    verdict: Verdict::Drop,
                })
            })
            .collect()))
    }
}
