//! Isolation, as the seed's `isolate.sh` / `rejoin.sh`: all traffic between a node and its
//! peers is dropped; the client (on the host) still reaches the node.

use super::partition::Grudge;
use super::{nft, probe};
use crate::error::{Error, Result};
use crate::lab::{events, LabState};
use std::net::SocketAddr;
use std::time::Duration;

/// The nftables table that holds an isolation.
pub const TABLE: &str = "perseus_isolate";

/// How long a probe waits for a connection that must not happen.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Whether `node` is isolated now (its table is in its namespace).
pub fn is_isolated(lab: &LabState, node: usize) -> Result<bool> {
    Ok(nft::our_tables(&lab.nodes[node].netns)?
        .iter()
        .any(|t| t == TABLE))
}

/// Cuts `node` off from its peers. Writes `isolating` before and `isolated` once the rules
/// are in force; then checks, with real connection attempts on `port`, that peers cannot
/// reach the node nor the node its peers, while the host still can. If that check fails,
/// the rules are removed again and the error says what got through.
pub fn isolate(lab: &LabState, node: usize, port: u16) -> Result<()> {
    let name = &lab.nodes[node].name;
    let grudge = Grudge::isolate(node, lab.nodes.len());
    let peers: Vec<_> = grudge.drops(node).map(|i| lab.nodes[i].addr).collect();
    events::append(&lab.dir(), "isolating", name)?;
    nft::apply(
        &lab.nodes[node].netns,
        &nft::drop_peers_rules(TABLE, &peers),
    )?;
    events::append(&lab.dir(), "isolated", name)?;
    if let Err(e) = verify_cut(lab, node, &grudge, port) {
        let _ = nft::remove(&lab.nodes[node].netns, TABLE);
        return Err(e);
    }
    Ok(())
}

fn verify_cut(lab: &LabState, node: usize, grudge: &Grudge, port: u16) -> Result<()> {
    let me = &lab.nodes[node];
    let mut checks = Vec::new();
    for peer in grudge.drops(node) {
        let p = &lab.nodes[peer];
        checks.push((
            Some(me.netns.clone()),
            SocketAddr::from((p.addr, port)),
            false,
            format!("{} → {}", me.name, p.name),
        ));
        checks.push((
            Some(p.netns.clone()),
            SocketAddr::from((me.addr, port)),
            false,
            format!("{} → {}", p.name, me.name),
        ));
    }
    checks.push((
        None,
        SocketAddr::from((me.addr, port)),
        true,
        format!("client → {}", me.name),
    ));
    let results: Vec<_> = checks
        .into_iter()
        .map(|(ns, to, want, what)| {
            std::thread::spawn(move || {
                (
                    probe::can_connect(ns.as_deref(), to, PROBE_TIMEOUT),
                    want,
                    what,
                )
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("probe thread"))
        .collect();
    for (got, want, what) in results {
        if got? != want {
            return Err(Error::FaultNotInForce(if want {
                format!("{what} cannot connect, but the client must still reach the isolated node")
            } else {
                format!("{what} still connects after the isolation rules went in")
            }));
        }
    }
    Ok(())
}

/// Restores `node`'s traffic with its peers: writes `rejoining`, removes the rules, checks
/// that no rule of ours is left in its namespace, writes `rejoined`. Returns false (and
/// writes nothing) if the node was not isolated.
pub fn rejoin(lab: &LabState, node: usize) -> Result<bool> {
    let me = &lab.nodes[node];
    if !is_isolated(lab, node)? {
        return Ok(false);
    }
    events::append(&lab.dir(), "rejoining", &me.name)?;
    nft::remove(&me.netns, TABLE)?;
    let left = nft::our_tables(&me.netns)?;
    if left.iter().any(|t| t == TABLE) {
        return Err(Error::FaultNotInForce(format!(
            "table inet {TABLE} is still in {}'s namespace after the rejoin",
            me.name
        )));
    }
    events::append(&lab.dir(), "rejoined", &me.name)?;
    Ok(true)
}
