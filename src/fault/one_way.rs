//! One-way drop: a node still hears its peers, but every packet it sends them is lost.

use super::grudge::Grudge;
use super::{nft, table, InForce};
use crate::error::Result;
use crate::lab::LabState;

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
