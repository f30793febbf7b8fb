//! One-way drop: a node still hears its peers, but every packet it sends them is lost.

use super::grudge::Grudge;
use super::{nft, table, Fault, InForce, Param};
use crate::error::Result;
use crate::lab::LabState;
use crate::record::faults::{named, FaultKind};

/// Drops what each node of `f` sends to its peers.
pub fn apply(lab: &LabState, f: &InForce) -> Result<()> {
    for &node in &f.nodes {
        let peers: Vec<_> = Grudge::isolate(node, lab.nodes.len())
            .drops(node)
            .map(|i| lab.nodes[i].addr)
            .collect();
        let rules = nft::peer_rules(&table(f.kind), &f.target, &peers, nft::Drop::Outbound);
        nft::apply(&lab.nodes[node].netns, &rules)?;
    }
    Ok(())
}

/// `one-way NODE`, undone by `heal`.
pub struct OneWay;

impl Fault for OneWay {
    fn kind(&self) -> &'static FaultKind {
        named("one-way")
    }
    fn about(&self) -> &'static str {
        "Lose everything a node sends to its peers (it still hears them)"
    }
    fn apply(&self, lab: &LabState, f: &InForce, _: &Param, _port: u16) -> Result<()> {
        apply(lab, f)
    }
}
