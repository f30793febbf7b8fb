//! Isolation, as the seed's `isolate.sh` / `rejoin.sh`: all traffic between a node and its
//! peers is dropped; the client (on the host) still reaches the node. `isolate-all` cuts the
//! node off from everyone, its clients included.

use super::grudge::Grudge;
use super::{load_rules, nft, probe, table, Fault, InForce, Param, Topology};
use crate::error::{Error, Result};
use crate::lab::LabState;
use crate::record::faults::{named, FaultKind};
use std::net::SocketAddr;
use std::time::Duration;

/// How long a probe waits for a connection that must not happen.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// Cuts each node of `f` off from its peers, then checks with real connection attempts on
/// `port` that peers cannot reach it nor it its peers, while the host still can.
pub fn isolate(lab: &LabState, f: &InForce, port: u16) -> Result<()> {
    load_rules(&Isolate, lab, f, &Param::None)?;
    for &node in &f.nodes {
        verify(lab, node, port, true)?;
    }
    Ok(())
}

/// Cuts each node of `f` off from everyone (loopback aside), then checks that neither the
/// host nor the peers can connect to it.
pub fn isolate_all(lab: &LabState, f: &InForce, port: u16) -> Result<()> {
    load_rules(&IsolateAll, lab, f, &Param::None)?;
    for &node in &f.nodes {
        verify(lab, node, port, false)?;
    }
    Ok(())
}

/// The rules that drop everything between `node` and its peers, answered as `how`.
pub(super) fn cut_from_peers(
    topology: &Topology,
    node: usize,
    table: &str,
    how: nft::Drop,
) -> String {
    let peers: Vec<_> = Grudge::isolate(node, topology.addrs.len())
        .drops(node)
        .map(|i| topology.addrs[i])
        .collect();
    nft::peer_rules(table, &topology.names[node], &peers, how)
}

/// Whether `node` is isolated from its peers now.
pub fn is_isolated(lab: &LabState, node: usize) -> Result<bool> {
    let t = table(Isolate.kind());
    Ok(nft::our_tables(&lab.nodes[node].netns)?
        .iter()
        .any(|(name, _)| *name == t))
}

/// Connection attempts, in parallel: peers ⇄ node must fail; host → node must succeed if
/// `client_reaches`, else fail.
pub(super) fn verify(lab: &LabState, node: usize, port: u16, client_reaches: bool) -> Result<()> {
    let me = &lab.nodes[node];
    let mut checks = Vec::new();
    for (i, p) in lab.nodes.iter().enumerate() {
        if i == node {
            continue;
        }
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
        client_reaches,
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
                format!("{what} still connects after the rules went in")
            }));
        }
    }
    Ok(())
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
    fn apply(&self, lab: &LabState, f: &InForce, _: &Param, port: u16) -> Result<()> {
        isolate(lab, f, port)
    }
    fn rules(
        &self,
        topology: &Topology,
        _: &InForce,
        _: &Param,
        node: usize,
        table: &str,
    ) -> Option<Result<String>> {
        Some(Ok(cut_from_peers(topology, node, table, nft::Drop::Both)))
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
    fn apply(&self, lab: &LabState, f: &InForce, _: &Param, port: u16) -> Result<()> {
        isolate_all(lab, f, port)
    }
    fn cuts_clients(&self) -> bool {
        true
    }
    /// Everything but loopback, and but the connection `topology` keeps (the SSH session
    /// that loads the rules, which cutting would leave the machine out of reach).
    fn rules(
        &self,
        topology: &Topology,
        _: &InForce,
        _: &Param,
        node: usize,
        table: &str,
    ) -> Option<Result<String>> {
        let name = &topology.names[node];
        Some(Ok(match topology.keep {
            Some(keep) => nft::everything_but_rules(table, name, keep),
            None => nft::everything_rules(table, name),
        }))
    }
}
