//! NATS JetStream (Debian `nats-server`, 2.9): one server per node, all in one cluster
//! with JetStream on, and a key-value bucket replicated on every node (R3). Each client
//! holds one connection to its own node only (the servers' gossip of other addresses is
//! ignored) and uses the bucket as the NATS clients do: a get of the key's last entry, a
//! put, and a put that names the revision it read for compare-and-set.
//!
//! Ready when every server reports itself healthy (JetStream on and current with the meta
//! leader) and all agree on the meta leader; warmed up when the bucket's stream has a
//! leader and every replica is current. The node that leads is the stream's leader.
//!
//! Durability: 2.9.10 writes a stream's messages to its files as they come and fsyncs
//! them every 2 minutes (`server/stream.go`: `fsCfg.SyncInterval = 2 * time.Minute`); a
//! Raft log every 5 minutes and the meta store every 60 s (`server/jetstream_cluster.go`,
//! `server/filestore.go`). None of these has a setting in this version: `sync_interval`
//! came later.

use super::failover::{self, Expected, Failover, Role, Settings};
use super::knob::{self, Kind, Knob};
use super::{
    Cell, Client, ClientError, CutOff, Database, Found, Health, Leadership, WarmUp, Written,
    COMPARE_FAILED,
};
use crate::error::{Error, Result};
use crate::lab::{Layout, ProcessSpec};
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use async_trait::async_trait;
use bytes::Bytes;
use std::time::Duration;

pub const CLIENT_PORT: u16 = 4222;
/// The cluster's route port.
pub const PEER_PORT: u16 = 6222;
/// The HTTP monitoring port (`/healthz`, `/jsz`, `/varz`).
const MONITOR_PORT: u16 = 8222;
/// The bucket, and the stream that holds it as the NATS clients name it.
const BUCKET: &str = "perseus";
const STREAM: &str = "KV_perseus";
/// The system user Debian's `nats-server` makes; the servers run as it, not root.
const USER: &str = "nats";
const PROBE: Duration = Duration::from_millis(800);

/// The settings `--set` changes. 2.9.10 has no setting for its Raft timers or its sync
/// interval (see the module's doc), so the one setting is the bucket's.
pub const KNOBS: &[Knob] = &[Knob {
    name: "allow_direct",
    default: "false",
    kind: Kind::Bool,
    about: "a get may be answered by any replica, not only the stream's leader: what the NATS clients set when they make a bucket (reads may then be stale)",
}];

/// 2.9.10's Raft timers (`server/raft.go`), constants of that version.
const HEARTBEAT: Duration = Duration::from_secs(1);
const MIN_ELECTION: Duration = Duration::from_secs(4);
const MAX_ELECTION: Duration = Duration::from_secs(9);
const MAX_CAMPAIGN: Duration = Duration::from_millis(800);
/// How often a server tries to reconnect a route it lost (`DEFAULT_ROUTE_RECONNECT`,
/// `server/const.go`).
const ROUTE_RECONNECT: Duration = Duration::from_secs(1);
const RAFT_SOURCE: &str = "https://github.com/nats-io/nats-server/blob/v2.9.10/server/raft.go (minElectionTimeoutDefault 4 s, maxElectionTimeoutDefault 9 s, hbIntervalDefault 1 s, lostQuorumIntervalDefault 10 s)";

pub struct Nats;

/// The configuration file of node `node`.
pub fn config(layout: &Layout, node: usize) -> String {
    let n = &layout.nodes[node];
    let routes: Vec<String> = layout
        .nodes
        .iter()
        .filter(|m| m.name != n.name)
        .map(|m| format!("nats-route://{}:{PEER_PORT}", m.addr))
        .collect();
    format!(
        "server_name: {name}\n\
         listen: \"{addr}:{CLIENT_PORT}\"\n\
         http: \"{addr}:{MONITOR_PORT}\"\n\
         jetstream {{\n  store_dir: \"{dir}/data\"\n}}\n\
         cluster {{\n  name: perseus\n  listen: \"{addr}:{PEER_PORT}\"\n  routes: [{routes}]\n}}\n",
        name = n.name,
        addr = n.addr,
        dir = n.dir.display(),
        routes = routes.join(", "),
    )
}

/// The stream of the bucket, as the NATS clients make a bucket that keeps one value a key.
fn stream_config(layout: &Layout) -> stream::Config {
    stream::Config {
        name: STREAM.into(),
        subjects: vec![format!("$KV.{BUCKET}.>")],
        max_messages_per_subject: 1,
        num_replicas: layout.nodes.len(),
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: knob::value(layout, &KNOBS[0]) == "true",
        ..Default::default()
    }
}

fn subject(key: &str) -> String {
    format!("$KV.{BUCKET}.{key}")
}

/// A connection to node `node` alone, that comes back to it after a drop.
async fn connect(
    layout: &Layout,
    node: usize,
    timeout: Duration,
) -> Result<async_nats::Client, ClientError> {
    let url = format!("nats://{}", layout.client_addr(node, CLIENT_PORT));
    let options = async_nats::ConnectOptions::new()
        .ignore_discovered_servers()
        .connection_timeout(timeout)
        .request_timeout(Some(timeout))
        .max_reconnects(None)
        // A dropped connection is retried within 100 ms, then at most every second, so
        // what the record shows is the server's, not the client's backoff.
        .reconnect_delay_callback(|attempts| Duration::from_millis(100 * attempts.min(10) as u64));
    match tokio::time::timeout(timeout, options.connect(url)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(ClientError::definite(format!("connect: {e}"))),
        Err(_) => Err(ClientError::definite("connect: timed out")),
    }
}

struct NatsClient {
    js: jetstream::Context,
    stream: stream::Stream<()>,
    direct: bool,
}

/// A publish handed to the connection, or a definite failure: one the client could not
/// even queue cannot have been stored.
fn published(
    r: std::result::Result<jetstream::context::PublishAckFuture, jetstream::context::PublishError>,
) -> std::result::Result<jetstream::context::PublishAckFuture, ClientError> {
    r.map_err(|e| ClientError::definite(format!("publish: {e}")))
}

/// The error of a publish that was sent: definite where the servers said it was not
/// stored (no stream took the subject, or a compare failed), unknown otherwise.
fn ack_error(e: &jetstream::context::PublishError) -> ClientError {
    match e.kind() {
        PublishErrorKind::WrongLastSequence => ClientError::definite(COMPARE_FAILED),
        PublishErrorKind::StreamNotFound => {
            ClientError::definite(format!("no stream took the write: {e}"))
        }
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe | PublishErrorKind::Other => {
            ClientError::indefinite(e.to_string())
        }
        _ => ClientError::definite(e.to_string()),
    }
}

impl NatsClient {
    async fn publish(
        &mut self,
        key: &str,
        cell: Cell,
        expect: Option<u64>,
    ) -> Result<Written, ClientError> {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(seq) = expect {
            headers.insert(
                "Nats-Expected-Last-Subject-Sequence",
                seq.to_string().as_str(),
            );
        }
        let ack = published(
            self.js
                .publish_with_headers(subject(key), headers, Bytes::from(cell.encode()))
                .await,
        )?
        .await
        .map_err(|e| ack_error(&e))?;
        Ok(Written {
            revision: i64::try_from(ack.sequence).ok(),
        })
    }
}

#[async_trait]
impl Client for NatsClient {
    /// The key's last entry: from any replica with `allow_direct`, else from the leader.
    async fn read(&mut self, key: &str) -> Result<Found, ClientError> {
        let subject = subject(key);
        let message = if self.direct {
            match self.stream.direct_get_last_for_subject(subject).await {
                Ok(m) => Some(m),
                Err(e) if e.kind() == stream::DirectGetErrorKind::NotFound => None,
                Err(e) => return Err(ClientError::definite(format!("get: {e}"))),
            }
        } else {
            match self.stream.get_last_raw_message_by_subject(&subject).await {
                Ok(m) => Some(m),
                Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => None,
                Err(e) => return Err(ClientError::definite(format!("get: {e}"))),
            }
        };
        let Some(m) = message else {
            return Ok(Found::default());
        };
        let text = std::str::from_utf8(&m.payload)
            .map_err(|_| ClientError::definite(format!("value of {key} is not text")))?;
        Ok(Found {
            cell: Some(Cell::parse(key, text)?),
            revision: i64::try_from(m.sequence).ok(),
        })
    }

    async fn write(&mut self, key: &str, cell: Cell) -> Result<Written, ClientError> {
        self.publish(key, cell, None).await
    }

    /// A put that the stream's leader stores only if the key's last entry is still the
    /// one read (revision 0: only if the key has none), as the bucket's `update` does.
    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> Result<Written, ClientError> {
        let expect = match (found.cell, found.revision) {
            (None, _) => 0,
            (Some(_), Some(rev)) => u64::try_from(rev).unwrap_or(0),
            (Some(_), None) => {
                return Err(ClientError::definite(
                    "compare-and-set needs the revision the read returned",
                ))
            }
        };
        self.publish(key, cell, Some(expect)).await
    }
}

/// The stream's state as node `node`'s connection sees it: its leader's name and how many
/// replicas are current, within [`PROBE`].
async fn stream_state(
    layout: &Layout,
    node: usize,
) -> std::result::Result<(String, usize), String> {
    let c = connect(layout, node, PROBE).await.map_err(|e| e.text)?;
    let mut js = jetstream::new(c);
    js.set_timeout(PROBE);
    let ask = async {
        let s = js.get_stream(STREAM).await.map_err(|e| e.to_string())?;
        let info = s.cached_info();
        let cluster = info
            .cluster
            .as_ref()
            .ok_or("the stream reports no cluster")?;
        let leader = cluster.leader.clone().ok_or("the stream has no leader")?;
        let current = 1 + cluster.replicas.iter().filter(|r| r.current).count();
        Ok::<_, String>((leader, current))
    };
    tokio::time::timeout(PROBE, ask)
        .await
        .map_err(|_| "no answer about the stream".to_string())?
}

fn node_named(layout: &Layout, name: &str) -> Option<usize> {
    layout.nodes.iter().position(|n| n.name == name)
}

/// What `path` on node `node`'s monitoring port answers.
async fn monitor(
    layout: &Layout,
    node: usize,
    path: &str,
) -> std::result::Result<serde_json::Value, String> {
    let addr = std::net::SocketAddr::new(layout.nodes[node].addr.into(), MONITOR_PORT);
    super::http::get_json(addr, path, PROBE).await
}

#[async_trait]
impl Database for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn client(&self) -> &'static str {
        "NATS key/value"
    }

    fn about(&self) -> &'static str {
        "NATS JetStream 2.9 key-value bucket, replicated on 3 servers (Raft)"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[("nats-server", "nats-server")]
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
            source: "https://docs.nats.io/running-a-nats-service/configuration/clustering/jetstream_clustering (a stream needs a quorum of its replicas to take a write)",
        }
    }

    fn prepare(&self, layout: &Layout) -> Result<()> {
        for (i, n) in layout.nodes.iter().enumerate() {
            let data = n.dir.join("data");
            std::fs::create_dir_all(&data)
                .map_err(Error::io(format!("create {}", data.display())))?;
            crate::files::write(&n.dir.join("nats.conf"), config(layout, i))?;
            layout.give(&n.dir, USER)?;
        }
        Ok(())
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        let conf = layout.nodes[node].dir.join("nats.conf");
        vec![ProcessSpec {
            name: "nats-server".into(),
            program: "nats-server".into(),
            args: vec!["-c".into(), conf.to_string_lossy().into_owned()],
            env: Vec::new(),
            user: Some(USER.into()),
            image: None,
        }]
    }

    async fn health(&self, layout: &Layout) -> Health {
        let probe = |i: usize| async move {
            monitor(layout, i, "/healthz").await?;
            let jsz = monitor(layout, i, "/jsz").await?;
            let leader = jsz["meta_cluster"]["leader"]
                .as_str()
                .filter(|l| !l.is_empty())
                .ok_or("no meta leader")?
                .to_string();
            Ok::<_, String>(leader)
        };
        let answers = futures::future::join_all((0..layout.nodes.len()).map(probe)).await;
        let not_ready: Vec<usize> = (0..answers.len())
            .filter(|i| answers[*i].is_err())
            .collect();
        let leaders: Vec<&String> = answers.iter().flatten().collect();
        let agree = leaders.windows(2).all(|w| w[0] == w[1]);
        let why = match not_ready.first() {
            Some(i) => format!(
                "{}: {}",
                layout.nodes[*i].name,
                answers[*i].as_ref().err().map_or("", String::as_str)
            ),
            None if !agree => "the servers disagree on the meta leader".into(),
            None => String::new(),
        };
        let version = monitor(layout, 0, "/varz")
            .await
            .ok()
            .and_then(|v| v["version"].as_str().map(str::to_string));
        Health {
            ready: not_ready.is_empty() && agree,
            not_ready,
            why,
            version,
        }
    }

    /// Makes the bucket, replicated on every node, if it is not there yet.
    async fn setup(&self, layout: &Layout) -> Result<()> {
        let c = connect(layout, 0, Duration::from_secs(10))
            .await
            .map_err(|e| Error::Database(e.text))?;
        let mut js = jetstream::new(c);
        js.set_timeout(Duration::from_secs(10));
        js.get_or_create_stream(stream_config(layout))
            .await
            .map_err(|e| Error::Database(format!("making the bucket {BUCKET}: {e}")))?;
        Ok(())
    }

    fn warm_up(&self) -> Option<&dyn WarmUp> {
        Some(self)
    }

    fn knobs(&self) -> &'static [Knob] {
        KNOBS
    }

    fn failover(&self) -> Option<&dyn Failover> {
        Some(self)
    }

    fn leadership(&self) -> Option<&dyn Leadership> {
        Some(self)
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> Result<Box<dyn Client>, ClientError> {
        let c = connect(layout, node, timeout).await?;
        let mut js = jetstream::new(c);
        js.set_timeout(timeout);
        let stream = js
            .get_stream_no_info(STREAM)
            .await
            .map_err(|e| ClientError::definite(e.to_string()))?;
        Ok(Box::new(NatsClient {
            js,
            stream,
            direct: knob::value(layout, &KNOBS[0]) == "true",
        }))
    }
}

#[async_trait]
impl WarmUp for Nats {
    /// The bucket's stream has a leader and all its replicas are current.
    async fn warmed_up(&self, layout: &Layout) -> std::result::Result<(), String> {
        let (leader, current) = stream_state(layout, 0).await?;
        if current < layout.nodes.len() {
            return Err(format!(
                "{current} of the stream's {} replicas are current (leader {leader})",
                layout.nodes.len()
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Leadership for Nats {
    /// The bucket stream's leader, as a majority of the servers report it.
    async fn leader(&self, layout: &Layout) -> Option<usize> {
        let answers =
            futures::future::join_all((0..layout.nodes.len()).map(|i| stream_state(layout, i)))
                .await;
        let named: Vec<usize> = answers
            .iter()
            .flatten()
            .filter_map(|(l, _)| node_named(layout, l))
            .collect();
        let majority = layout.nodes.len() / 2 + 1;
        named
            .iter()
            .copied()
            .find(|l| named.iter().filter(|m| *m == l).count() >= majority)
    }
}

/// The stream's Raft group: a follower that hears no heartbeat (every second) for a
/// randomised election timeout of 4–9 s campaigns after a short random delay; the others
/// are not disturbed when a follower is cut off. The timers are constants of 2.9.10; the
/// model needs a NATS record's settings only to know it speaks for one.
impl Failover for Nats {
    fn expect(&self, s: &Settings, role: Role, client_timeout: Duration) -> Option<Expected> {
        s.get(KNOBS[0].name)?;
        let bounds = match role {
            Role::Follower => failover::unaffected(
                "the stream's leader and the other replica keep a majority: nothing stops",
            ),
            Role::Leader => failover::both(
                MIN_ELECTION.saturating_sub(HEARTBEAT),
                MAX_ELECTION + MAX_CAMPAIGN + HEARTBEAT + client_timeout,
                format!(
                    "a follower campaigns when no heartbeat (every {}) came for a random \
                     {}–{} election timeout, after up to {} more; a request in flight to the \
                     old leader waits out the client's timeout ({})",
                    failover::show(HEARTBEAT),
                    failover::show(MIN_ELECTION),
                    failover::show(MAX_ELECTION),
                    failover::show(MAX_CAMPAIGN),
                    failover::show(client_timeout)
                ),
            ),
            Role::Unknown => return None,
        };
        Some(Expected {
            bounds,
            source: RAFT_SOURCE,
        })
    }

    fn rejoin(
        &self,
        s: &Settings,
        role: Role,
        _isolated: Duration,
        client_timeout: Duration,
    ) -> Option<Expected> {
        s.get(KNOBS[0].name)?;
        if role == Role::Unknown {
            return None;
        }
        // 2.9.10's Raft has no pre-vote: the returning node campaigned while cut off, and a
        // leader that hears its vote request with a higher term steps down
        // (`processVoteRequest`); the node with the whole log then wins one election later.
        let election = MAX_ELECTION + MAX_CAMPAIGN + HEARTBEAT + client_timeout;
        Some(Expected {
            bounds: failover::after(
                (Duration::ZERO, election),
                (Duration::ZERO, ROUTE_RECONNECT + election),
                format!(
                    "its route comes back within {} and it catches up; with no pre-vote in \
                     2.9.10's Raft, its vote requests carry the higher term it reached while \
                     campaigning cut off, which can depose the stream's leader: then nobody is \
                     served until a new leader is elected, within a {}–{} election timeout \
                     and up to {} of campaign; a request in flight waits out the client's \
                     timeout ({})",
                    failover::show(ROUTE_RECONNECT),
                    failover::show(MIN_ELECTION),
                    failover::show(MAX_ELECTION),
                    failover::show(MAX_CAMPAIGN),
                    failover::show(client_timeout)
                ),
            ),
            source: RAFT_SOURCE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_routes_to_the_others_and_keeps_its_store_in_its_data_dir() {
        let c = config(&Layout::for_tests(None), 1);
        assert!(c.contains("server_name: n2\n"), "{c}");
        assert!(c.contains("listen: \"198.18.1.2:4222\"\n"), "{c}");
        assert!(c.contains("store_dir: \"/x/n2/data\"\n"), "{c}");
        assert!(
            c.contains("routes: [nats-route://198.18.1.1:6222, nats-route://198.18.1.3:6222]"),
            "{c}"
        );
    }

    #[test]
    fn the_bucket_is_replicated_on_every_node_and_reads_as_set() {
        let mut layout = Layout::for_tests(None);
        let s = stream_config(&layout);
        assert_eq!((s.name.as_str(), s.num_replicas), (STREAM, 3));
        assert_eq!(s.subjects, ["$KV.perseus.>"]);
        assert!(!s.allow_direct && s.max_messages_per_subject == 1);
        layout.settings = [("allow_direct".to_string(), "true".to_string())].into();
        assert!(stream_config(&layout).allow_direct);
    }

    #[test]
    fn only_a_refused_or_failed_compare_is_definite() {
        use jetstream::context::PublishError;
        let kind = |k| ack_error(&PublishError::new(k));
        assert_eq!(
            kind(PublishErrorKind::WrongLastSequence).text,
            COMPARE_FAILED
        );
        assert!(kind(PublishErrorKind::StreamNotFound).definite);
        assert!(!kind(PublishErrorKind::TimedOut).definite);
        assert!(!kind(PublishErrorKind::BrokenPipe).definite);
    }
}
