//! Isolation, as the seed's `isolate.sh` / `rejoin.sh`: all traffic between a node and its
//! peers is dropped; the client (on the host) still reaches the node. `isolate-all` cuts the
//! node off from everyone, its clients included.

use super::verdict::{self, End, Link, Verdict};
use super::{Fault, InForce, Param};
use crate::error::Result;
use crate::hosts::Probe;
use crate::record::faults::{named, FaultKind};

/// The links both ways between each node of `f` and every other node, with verdict `v`.
pub(super) fn cut_from_peers(n: usize, f: &InForce, v: Verdict) -> Vec<Link> {
    let mut links: Vec<Link> = f
        .nodes
        .iter()
        .flat_map(|&t| verdict::with_peers(t, (0..n).filter(move |p| *p != t), v))
        .collect();
    links.sort();
    links.dedup();
    links
}

/// The connection attempts that show `node` cut off from its peers: none connects to it,
/// it connects to none; its client connects to it if `client_reaches`, else not.
pub(super) fn cut_off(node: usize, n: usize, client_reaches: bool) -> Vec<Probe> {
    let mut probes: Vec<Probe> = (0..n)
        .filter(|&p| p != node)
        .flat_map(|p| {
            [
                Probe {
                    from: Some(node),
                    to: p,
                    connects: false,
                },
                Probe {
                    from: Some(p),
                    to: node,
                    connects: false,
                },
            ]
        })
        .collect();
    probes.push(Probe {
        from: None,
        to: node,
        connects: client_reaches,
    });
    probes
}

/// `isolate NODE` / `rejoin NODE`.
pub struct Isolate;

impl Fault for Isolate {
    fn kind(&self) -> &'static FaultKind {
        named("isolate")
    }
    fn about(&self) -> &'static str {
        "Cut a node off from its peers; the client still reaches it (the seed's isolate.sh)"
    }
    fn undone_by(&self) -> Option<(&'static str, &'static str)> {
        Some((
            "rejoin",
            "Restore a node's traffic with its peers (the seed's rejoin.sh)",
        ))
    }
    fn probes(&self, node: usize, n: usize) -> Vec<Probe> {
        cut_off(node, n, true)
    }
    fn links(&self, names: &[String], f: &InForce, _: &Param) -> Option<Result<Vec<Link>>> {
        Some(Ok(cut_from_peers(names.len(), f, Verdict::Drop)))
    }
}

/// `isolate-all NODE` / `rejoin-all NODE`.
pub struct IsolateAll;

impl Fault for IsolateAll {
    fn kind(&self) -> &'static FaultKind {
        named("isolate-all")
    }
    fn about(&self) -> &'static str {
        "Cut a node off from everyone, its clients included"
    }
    fn undone_by(&self) -> Option<(&'static str, &'static str)> {
        Some(("rejoin-all", "Undo isolate-all"))
    }
    fn probes(&self, node: usize, n: usize) -> Vec<Probe> {
        cut_off(node, n, false)
    }
    fn reaches_clients(&self) -> bool {
        true
    }
    /// Everything between each node of `f` and anyone, loopback aside (and the connection
    /// a transport keeps).
    fn links(&self, _: &[String], f: &InForce, _: &Param) -> Option<Result<Vec<Link>>> {
        Some(Ok(f
            .nodes
            .iter()
            .flat_map(|&t| verdict::both(End::Node(t), End::Anyone, Verdict::Drop))
            .collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_off_node_is_probed_both_ways_with_every_peer_and_from_its_client() {
        let p = cut_off(1, 3, true);
        assert_eq!(p.len(), 5);
        for peer in [0, 2] {
            assert!(p.contains(&Probe {
                from: Some(1),
                to: peer,
                connects: false
            }));
            assert!(p.contains(&Probe {
                from: Some(peer),
                to: 1,
                connects: false
            }));
        }
        assert!(p.contains(&Probe {
            from: None,
            to: 1,
            connects: true
        }));
        assert!(cut_off(1, 3, false).contains(&Probe {
            from: None,
            to: 1,
            connects: false
        }));
    }
}
