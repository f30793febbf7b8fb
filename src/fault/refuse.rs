//! Refusal: every packet between a node and its peers is answered at once, with a TCP reset
//! (or an ICMP port-unreachable), both ways. Connections between them fail fast instead of
//! timing out, as when a firewall rejects rather than drops; the client still reaches the
//! node.

use super::verdict::{Link, Verdict};
use super::{isolate, Fault, InForce, Param};
use crate::error::Result;
use crate::hosts::Probe;
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
    fn probes(&self, node: usize, n: usize) -> Vec<Probe> {
        isolate::cut_off(node, n, true)
    }
    fn links(&self, names: &[String], f: &InForce, _: &Param) -> Option<Result<Vec<Link>>> {
        Some(Ok(isolate::cut_from_peers(names.len(), f, Verdict::Reject)))
    }
}
