//! etcd (Debian `etcd-server`): one `etcd` per node, all in the initial cluster.
//! Ready when every member answers and all agree on a leader. The client uses etcd's
//! default, linearizable reads.

use super::failover::{self, Bound, Expected, Failover, Role, Settings};
use super::knob::{self, Kind, Knob};
use super::{Cell, Client, ClientError, CutOff, Database, Found, Health, Written, COMPARE_FAILED};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use etcd_client::{ConnectOptions, Error as EtcdError};
use std::time::Duration;

pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;
/// The settings `--set` changes, each passed as the flag of that name; the defaults are
/// etcd 3.4's own, stated so that the record and the failover model read what the servers
/// were told.
pub const KNOBS: &[Knob] = &[
    Knob {
        name: "heartbeat-interval",
        default: "100",
        kind: Kind::Number,
        about: "ms between the leader's heartbeats",
    },
    Knob {
        name: "election-timeout",
        default: "1000",
        kind: Kind::Number,
        about: "ms a follower waits without a heartbeat before it campaigns",
    },
    Knob {
        name: "pre-vote",
        default: "false",
        kind: Kind::Bool,
        about: "a node asks whether it could win before it campaigns (a rejoining node then does not depose the leader)",
    },
];
/// The system user etcd runs as (Debian's `etcd-server` makes it), not root.
const USER: &str = "etcd";

pub struct Etcd;

/// Makes each node's etcd data directory (`<node>/data`), its user's alone (mode 0700).
pub fn prepare_data(layout: &Layout) -> crate::error::Result<()> {
    use crate::error::Error;
    use std::os::unix::fs::PermissionsExt;
    for n in &layout.nodes {
        let data = n.dir.join("data");
        std::fs::create_dir_all(&data).map_err(Error::io(format!("create {}", data.display())))?;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
            .map_err(Error::io(format!("chmod {}", data.display())))?;
        layout.give(&data, USER)?;
    }
    Ok(())
}

fn client_url(layout: &Layout, node: usize) -> String {
    format!("http://{}", layout.client_addr(node, CLIENT_PORT))
}

async fn connect(
    layout: &Layout,
    node: usize,
    timeout: Duration,
) -> Result<etcd_client::Client, ClientError> {
    let options = ConnectOptions::new().with_connect_timeout(timeout);
    match tokio::time::timeout(
        timeout,
        etcd_client::Client::connect([client_url(layout, node)], Some(options)),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(ClientError::definite(format!("connect: {e}"))),
        Err(_) => Err(ClientError::definite("connect: timed out")),
    }
}

/// Whether a failed request certainly did not take effect.
fn is_definite(e: &EtcdError) -> bool {
    match e {
        EtcdError::TransportError(_) | EtcdError::InvalidArgs(_) | EtcdError::InvalidUri(_) => true,
        EtcdError::GRpcStatus(s) => {
            let m = s.message();
            // Refused before it reached the server, or refused by it before proposing.
            m.contains("error trying to connect")
                || m.contains("Connection refused")
                || m.contains("etcdserver: no leader")
                || m.contains("etcdserver: not capable")
        }
        _ => false,
    }
}

fn describe(e: &EtcdError) -> String {
    match e {
        EtcdError::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    }
}

struct EtcdClient(etcd_client::Client);

fn write_error(e: EtcdError) -> ClientError {
    ClientError {
        definite: is_definite(&e),
        text: describe(&e),
    }
}

impl EtcdClient {
    async fn get(
        &mut self,
        key: &str,
        options: Option<etcd_client::GetOptions>,
    ) -> Result<Found, ClientError> {
        let resp = self
            .0
            .get(key, options)
            .await
            .map_err(|e| ClientError::definite(describe(&e)))?;
        match resp.kvs().first() {
            None => Ok(Found::default()),
            Some(kv) => {
                let text = kv
                    .value_str()
                    .map_err(|e| ClientError::definite(e.to_string()))?;
                Ok(Found {
                    cell: Some(Cell::parse(key, text)?),
                    revision: Some(kv.mod_revision()),
                })
            }
        }
    }
}

#[async_trait]
impl Client for EtcdClient {
    async fn read(&mut self, key: &str) -> Result<Found, ClientError> {
        self.get(key, None).await
    }

    /// A serializable read: answered from the node's own store, without asking the leader.
    async fn read_any(&mut self, key: &str) -> Result<Found, ClientError> {
        self.get(
            key,
            Some(etcd_client::GetOptions::new().with_serializable()),
        )
        .await
    }

    async fn write(&mut self, key: &str, cell: Cell) -> Result<Written, ClientError> {
        let resp = self
            .0
            .put(key, cell.encode(), None)
            .await
            .map_err(write_error)?;
        Ok(Written {
            revision: resp.header().map(|h| h.revision()),
        })
    }

    /// One transaction: the put happens only if the key's `mod_revision` is still the one
    /// read (or the key is still absent).
    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> Result<Written, ClientError> {
        use etcd_client::{Compare, CompareOp, Txn, TxnOp};
        let compare = match (found.cell, found.revision) {
            (Some(_), Some(rev)) => Compare::mod_revision(key, CompareOp::Equal, rev),
            (Some(c), None) => Compare::value(key, CompareOp::Equal, c.encode()),
            (None, _) => Compare::create_revision(key, CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key, cell.encode(), None)]);
        let resp = self.0.txn(txn).await.map_err(write_error)?;
        if !resp.succeeded() {
            return Err(ClientError::definite(COMPARE_FAILED));
        }
        Ok(Written {
            revision: resp.header().map(|h| h.revision()),
        })
    }
}

#[async_trait]
impl Database for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    /// The project's own image of the version Debian 12 ships, which the lab runs.
    fn image(&self) -> Option<&'static str> {
        Some("quay.io/coreos/etcd:v3.4.23")
    }

    fn client(&self) -> &'static str {
        "etcd gRPC"
    }

    fn about(&self) -> &'static str {
        "etcd 3.4 key-value store (Raft); linearizable reads and writes"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[("etcd", "etcd-server")]
    }

    fn client_port(&self) -> u16 {
        CLIENT_PORT
    }

    fn peer_port(&self) -> u16 {
        PEER_PORT
    }

    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: false,
            settles: Duration::from_secs(3),
            source: "https://etcd.io/docs/v3.5/op-guide/failures/ (network partition: the minority side cannot serve; reads are linearizable by default, so they need the leader)",
        }
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        let n = &layout.nodes[node];
        let cluster: Vec<String> = layout
            .nodes
            .iter()
            .map(|m| format!("{}=http://{}:{PEER_PORT}", m.name, m.addr))
            .collect();
        let client = format!("http://{}:{CLIENT_PORT}", n.addr);
        let peer = format!("http://{}:{PEER_PORT}", n.addr);
        let args = [
            "--name",
            &n.name,
            "--data-dir",
            &n.dir.join("data").to_string_lossy(),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &cluster.join(","),
            "--initial-cluster-token",
            &format!("perseus-{}", layout.lab),
            "--initial-cluster-state",
            "new",
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(
            KNOBS
                .iter()
                .map(|k| format!("--{}={}", k.name, knob::value(layout, k))),
        )
        .collect();
        vec![ProcessSpec {
            name: "etcd".into(),
            program: "etcd".into(),
            args,
            env: Vec::new(),
            user: Some(USER.into()),
            image: None,
        }]
    }

    fn prepare(&self, layout: &Layout) -> crate::error::Result<()> {
        prepare_data(layout)
    }

    async fn health(&self, layout: &Layout) -> Health {
        probe(layout).await.0
    }

    fn knobs(&self) -> &'static [Knob] {
        KNOBS
    }

    fn failover(&self) -> Option<&dyn Failover> {
        Some(self)
    }

    fn leadership(&self) -> Option<&dyn super::Leadership> {
        Some(self)
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> Result<Box<dyn Client>, ClientError> {
        Ok(Box::new(EtcdClient(connect(layout, node, timeout).await?)))
    }
}

#[async_trait]
impl super::Leadership for Etcd {
    async fn leader(&self, layout: &Layout) -> Option<usize> {
        probe(layout).await.1
    }
}

/// The cluster's health, and the node that leads as the servers report it.
async fn probe(layout: &Layout) -> (Health, Option<usize>) {
    let probe = |i: usize| async move {
        let mut c = connect(layout, i, Duration::from_millis(800)).await.ok()?;
        let s = tokio::time::timeout(Duration::from_millis(800), c.status())
            .await
            .ok()?
            .ok()?;
        Some((s.header()?.member_id(), s.leader(), s.version().to_string()))
    };
    let answers = futures::future::join_all((0..layout.nodes.len()).map(probe)).await;
    let not_ready: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.as_ref().is_none_or(|a| a.1 == 0))
        .map(|(i, _)| i)
        .collect();
    let leaders: Vec<u64> = answers.iter().flatten().map(|a| a.1).collect();
    let leader_id = leaders.first().copied().filter(|l| *l != 0);
    let leader = leader_id.and_then(|l| {
        answers
            .iter()
            .position(|a| a.as_ref().is_some_and(|a| a.0 == l))
    });
    let agree = leaders.iter().all(|l| Some(*l) == leader_id);
    let why = if !not_ready.is_empty() {
        let names: Vec<&str> = not_ready
            .iter()
            .map(|i| layout.nodes[*i].name.as_str())
            .collect();
        format!("no answer with a leader from {}", names.join(", "))
    } else if !agree {
        "members disagree on the leader".into()
    } else {
        String::new()
    };
    let health = Health {
        ready: not_ready.is_empty() && agree && leader.is_some(),
        not_ready,
        why,
        version: answers.iter().flatten().next().map(|a| a.2.clone()),
    };
    (health, leader)
}

/// Raft's election, as etcd's tuning guide describes it: a follower that hears no heartbeat
/// for an election timeout (randomised by Raft between one and two of them) campaigns.
impl Failover for Etcd {
    fn expect(&self, s: &Settings, role: Role, client_timeout: Duration) -> Option<Expected> {
        let heartbeat = failover::ms(s, "heartbeat-interval", 1)?;
        let election = failover::ms(s, "election-timeout", 1)?;
        let bounds: Vec<Bound> = match role {
            Role::Follower => failover::unaffected(
                "the leader and the other follower keep a majority: nothing stops",
            ),
            Role::Leader => failover::both(
                election.saturating_sub(heartbeat),
                2 * election + 2 * heartbeat + client_timeout,
                format!(
                    "the followers campaign one to two election timeouts (election-timeout {}) \
                     after the last heartbeat (heartbeat-interval {}); a request in flight to \
                     the old leader waits out the client's timeout ({})",
                    failover::show(election),
                    failover::show(heartbeat),
                    failover::show(client_timeout)
                ),
            ),
            Role::Unknown => return None,
        };
        Some(Expected {
            bounds,
            source: "https://etcd.io/docs/v3.4/tuning/",
        })
    }

    fn rejoin(
        &self,
        s: &Settings,
        role: Role,
        isolated: Duration,
        client_timeout: Duration,
    ) -> Option<Expected> {
        let heartbeat = failover::ms(s, "heartbeat-interval", 1)?;
        let election = failover::ms(s, "election-timeout", 1)?;
        let pre_vote = s.get("pre-vote")? == "true";
        if role == Role::Unknown {
            return None;
        }
        // How long the returning node itself then takes to serve is its catch-up: it applies
        // every entry it missed before it answers a linearizable read, which no setting
        // bounds, so recovery time has no range.
        let catch_up = "the returning node then answers its client once it has applied the \
                        entries it missed, which no setting bounds (it grows with the writes it \
                        missed), so recovery time has no range";
        let (low, high, why) = if pre_vote || isolated <= election {
            (
                Duration::ZERO,
                Duration::ZERO,
                format!(
                    "{}, so it follows the leader at its next heartbeat and nobody stops; {catch_up}",
                    if pre_vote {
                        "with pre-vote the cut-off node never raised its term (its pre-votes failed)"
                    } else {
                        "cut off for less than an election timeout, the node never campaigned"
                    }
                ),
            )
        } else {
            // The leader steps down at the returning node's answer to its next heartbeat
            // (a higher term); a node with the whole log wins one randomised election
            // timeout later, or two when the returning node's own campaign, which cannot
            // win with its stale log, resets the others' timers first.
            (
                election.saturating_sub(heartbeat),
                heartbeat + 4 * election + client_timeout,
                format!(
                    "without pre-vote the cut-off node kept campaigning and returns with a \
                     higher term: the leader steps down at its next heartbeat \
                     (heartbeat-interval {}), and nobody is served until a node with the whole \
                     log wins, one to two randomised election timeouts later (election-timeout \
                     {}), or two rounds when the returning node's hopeless campaign resets the \
                     others' timers; a request in flight waits out the client's timeout ({}); \
                     {catch_up}",
                    failover::show(heartbeat),
                    failover::show(election),
                    failover::show(client_timeout)
                ),
            )
        };
        Some(Expected {
            bounds: vec![Bound {
                figure: failover::DOWNTIME_ON_RECOVERY,
                low,
                high,
                why,
            }],
            source: "https://etcd.io/docs/v3.4/op-guide/configuration/ (--pre-vote, default false in 3.4); Raft thesis §9.6, https://web.stanford.edu/~ouster/cgi-bin/papers/OngaroPhD.pdf (a rejoining server disrupts the cluster unless it pre-votes)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::for_tests(None)
    }

    #[test]
    fn every_node_is_in_the_initial_cluster_and_listens_on_its_own_address() {
        let p = Etcd.processes(&layout(), 1);
        assert_eq!(p.len(), 1);
        let args = p[0].args.join(" ");
        assert!(args.contains("--name n2 "));
        assert!(args.contains("--data-dir /x/n2/data "));
        assert!(args.contains("--listen-client-urls http://198.18.1.2:2379 "));
        assert!(args.contains("--listen-peer-urls http://198.18.1.2:2380 "));
        assert!(args.contains(
            "--initial-cluster n1=http://198.18.1.1:2380,n2=http://198.18.1.2:2380,n3=http://198.18.1.3:2380 "
        ));
        assert!(args.contains("--initial-cluster-token perseus-t "));
    }
}
