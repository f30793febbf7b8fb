//! Packet loss: a share of the packets on every link between the target nodes and their
//! peers is dropped at random (nftables `numgen random`; `tc netem` is not available on
//! every kernel). Each packet is judged once: by its sender if the sender is a target, else
//! by its receiver, so every direction of every link touching a target loses the same share.

use super::{nft, table, InForce};
use crate::error::Result;
use crate::lab::LabState;

/// Drops `percent`% of the packets between the nodes of `f` and their peers, both ways.
pub fn apply(lab: &LabState, f: &InForce, percent: u8) -> Result<()> {
    for &node in &f.nodes {
        let peers = |skip_targets: bool| -> Vec<std::net::Ipv4Addr> {
            (0..lab.nodes.len())
                .filter(|i| *i != node && !(skip_targets && f.nodes.contains(i)))
                .map(|i| lab.nodes[i].addr)
                .collect()
        };
        // Outbound to every peer; inbound only from peers that do not judge their own.
        let rules = nft::loss_rules(
            &table(f.kind),
            &f.target,
            &peers(false),
            &peers(true),
            percent,
        );
        nft::apply(&lab.nodes[node].netns, &rules)?;
    }
    Ok(())
}
