//! One-way drop: a node still hears its peers, but every packet it sends them is lost.

use super::{nft, Fault, InForce, Param, Topology};
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
    fn rules(
        &self,
        topology: &Topology,
        f: &InForce,
        _: &Param,
        node: usize,
        table: &str,
    ) -> Option<Result<String>> {
        let peers = topology.peers(node, &[]);
        Some(Ok(nft::peer_rules(
            table,
            &f.target,
            &peers,
            nft::Drop::Outbound,
        )))
    }
}
