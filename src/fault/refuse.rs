//! Refusal: every packet between a node and its peers is answered at once, with a TCP reset
//! (or an ICMP port-unreachable), both ways. Connections between them fail fast instead of
//! timing out, as when a firewall rejects rather than drops; the client still reaches the
//! node.

use super::grudge::Grudge;
use super::{isolate, nft, table, Fault, InForce, Param};
use crate::error::Result;
use crate::lab::LabState;
use crate::record::faults::{named, FaultKind};

/// `refuse NODE`, undone by `heal`.
pub struct Refuse;

impl Fault for Refuse {
    fn kind(&self) -> &'static FaultKind {
        named("refuse")
    }
    fn about(&self) -> &'static str {
        "Refuse all traffic between a node and its peers: their connections fail at once (TCP reset) instead of timing out; the client still reaches it"
    }
    fn apply(&self, lab: &LabState, f: &InForce, _: &Param, port: u16) -> Result<()> {
        for &node in &f.nodes {
            let peers: Vec<_> = Grudge::isolate(node, lab.nodes.len())
                .drops(node)
                .map(|i| lab.nodes[i].addr)
                .collect();
            let name = &lab.nodes[node].name;
            let rules = nft::peer_rules(&table(f.kind), name, &peers, nft::Drop::Refuse);
            nft::apply(&lab.nodes[node].netns, &rules)?;
        }
        for &node in &f.nodes {
            isolate::verify(lab, node, port, true)?;
        }
        Ok(())
    }
}
