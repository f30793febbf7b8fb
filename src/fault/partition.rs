//! A partition: groups of nodes that cannot reach each other (`n1|n2 n3`), or a named
//! shape (`halves`, `ring`, `bridge`). Every node that has someone to drop gets a rule
//! table; the clients still reach every node.

use super::grudge::{parse_groups, Grudge, Shape};
use super::{nft, table, InForce};
use crate::error::{Error, Result};
use crate::lab::LabState;

/// The grudge of a shape name or of groups over the lab's nodes.
pub fn grudge(lab: &LabState, groups: &str) -> Result<Grudge> {
    let n = lab.nodes.len();
    match Shape::parse(groups.trim()) {
        Some(shape) => Ok(Grudge::shape(shape, n)),
        None => {
            let groups = parse_groups(groups, &lab.node_names())
                .map_err(|e| Error::Invalid(format!("partition: {e}")))?;
            Ok(Grudge::groups(&groups, n))
        }
    }
}

/// Puts the partition in force on every node of `f`.
pub fn apply(lab: &LabState, f: &InForce, grudge: &Grudge) -> Result<()> {
    for &node in &f.nodes {
        let peers: Vec<_> = grudge.drops(node).map(|i| lab.nodes[i].addr).collect();
        let rules = nft::peer_rules(&table(f.kind), &f.target, &peers, nft::Drop::Both);
        nft::apply(&lab.nodes[node].netns, &rules)?;
    }
    Ok(())
}
