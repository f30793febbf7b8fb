//! Redis with Sentinel (Debian `redis-server redis-sentinel`): node 1 starts as the primary,
//! the others replicate from it, and a Sentinel on every node watches the primary (quorum
//! 2) and promotes a replica when it is unreachable for `down-after-milliseconds`. Each node's
//! client asks its own node's Sentinel which server is the primary and sends GET then SET
//! there; it asks again every `RECHECK` and after any error, as Sentinel-aware client
//! libraries follow `+switch-master`. The record notes which server answered.
//!
//! Configuration as shipped otherwise: asynchronous replication, no `min-replicas-to-write`,
//! append-only file with `appendfsync everysec`.

use super::failover::{self, Expected, Failover, Role, Settings};
use super::knob::{self, Kind, Knob};
use super::resp::{self, Conn, Reply, RespError};
use super::{Cell, Client, ClientError, CutOff, Database, Found, Health, Written, COMPARE_FAILED};
use crate::error::{Error, Result};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

pub const PORT: u16 = 6379;
pub const SENTINEL_PORT: u16 = 26379;
/// The name Sentinels know the primary by.
const MASTER: &str = "perseus";
/// The system user the servers run as (Debian's `redis-server` makes it), not root.
const USER: &str = "redis";
/// The settings `--set` changes: two of every Sentinel's (`sentinel NAME perseus VALUE`) and
/// three of every server's `redis.conf`.
pub const KNOBS: &[Knob] = &[
    Knob {
        name: "down-after-milliseconds",
        default: "2000",
        kind: Kind::Number,
        about: "ms a Sentinel waits on an unreachable primary before it counts it down (Redis's default is 30 s; a short scenario would never see a failover)",
    },
    Knob {
        name: "failover-timeout",
        default: "10000",
        kind: Kind::Number,
        about: "ms a Sentinel gives a failover before another may try",
    },
    Knob {
        name: "min-replicas-to-write",
        default: "0",
        kind: Kind::Number,
        about: "replicas a primary must reach to take a write (0: it takes writes alone, so a cut-off primary keeps taking them)",
    },
    Knob {
        name: "min-replicas-max-lag",
        default: "10",
        kind: Kind::Number,
        about: "seconds within which a replica must have answered to count for min-replicas-to-write",
    },
    Knob {
        name: "appendfsync",
        default: "everysec",
        kind: Kind::OneOf(&["always", "everysec", "no"]),
        about: "when the append-only file reaches the disk",
    },
];
/// How often a client asks its Sentinel whether the primary moved.
const RECHECK: Duration = Duration::from_millis(100);
const PROBE: Duration = Duration::from_millis(800);

pub struct RedisSentinel;

/// `redis.conf` of node `node`: every node but the first starts as a replica of node 1.
pub fn redis_config(layout: &Layout, node: usize) -> String {
    let mut c = resp::server_config(
        layout,
        node,
        PORT,
        knob::value(layout, knob::named(KNOBS, "appendfsync")),
    );
    c.push_str(&format!(
        "min-replicas-to-write {}\nmin-replicas-max-lag {}\n",
        knob::value(layout, knob::named(KNOBS, "min-replicas-to-write")),
        knob::value(layout, knob::named(KNOBS, "min-replicas-max-lag")),
    ));
    if let Some(secret) = &layout.secret {
        // The replicas give it to the primary.
        c.push_str(&format!("masterauth {secret}\n"));
    }
    if node != 0 {
        c.push_str(&format!("replicaof {} {PORT}\n", layout.nodes[0].addr));
    }
    c
}

/// The run id of node `node`'s Sentinel: 40 hex digits, fixed per lab and node, so every
/// Sentinel can be told of the others before they start.
pub fn sentinel_id(layout: &Layout, node: usize) -> String {
    // FNV-1a of the lab's name: distinct labs get distinct ids.
    let lab = layout.lab.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{lab:016x}{:024x}", node + 1)
}

/// `sentinel.conf` of node `node` (Sentinel rewrites it as it learns). It names the other
/// Sentinels and the replicas from the start: Sentinel would otherwise learn the replicas
/// only from its next `INFO` of the primary, up to 10 s later.
pub fn sentinel_config(layout: &Layout, node: usize) -> String {
    let n = &layout.nodes[node];
    let quorum = layout.nodes.len() / 2 + 1;
    let mut known = String::new();
    for m in layout.nodes.iter().skip(1) {
        known.push_str(&format!(
            "sentinel known-replica {MASTER} {} {PORT}\n",
            m.addr
        ));
    }
    for (i, m) in layout.nodes.iter().enumerate() {
        if i != node {
            known.push_str(&format!(
                "sentinel known-sentinel {MASTER} {} {SENTINEL_PORT} {}\n",
                m.addr,
                sentinel_id(layout, i)
            ));
        }
    }
    if let Some(secret) = &layout.secret {
        // Sentinels ask for the password, give it to each other and to the servers.
        known.push_str(&format!(
            "requirepass {secret}\nsentinel sentinel-pass {secret}\nsentinel auth-pass {MASTER} {secret}\n"
        ));
    }
    format!(
        "bind {addr}\n\
         port {SENTINEL_PORT}\n\
         protected-mode no\n\
         daemonize no\n\
         logfile \"\"\n\
         dir {dir}\n\
         sentinel monitor {MASTER} {primary} {PORT} {quorum}\n\
         sentinel down-after-milliseconds {MASTER} {down_after}\n\
         sentinel failover-timeout {MASTER} {failover_timeout}\n\
         sentinel parallel-syncs {MASTER} 1\n\
         sentinel myid {id}\n\
         {known}",
        id = sentinel_id(layout, node),
        down_after = knob::value(layout, knob::named(KNOBS, "down-after-milliseconds")),
        failover_timeout = knob::value(layout, knob::named(KNOBS, "failover-timeout")),
        addr = n.addr,
        dir = n.dir.display(),
        primary = layout.nodes[0].addr,
    )
}

/// Node `node`'s Sentinel (for a cluster Perseus did not start: the node's address is its
/// Sentinel's).
fn sentinel_addr(layout: &Layout, node: usize) -> SocketAddr {
    layout.client_addr(node, SENTINEL_PORT)
}

fn redis_addr(layout: &Layout, node: usize) -> SocketAddr {
    SocketAddr::new(layout.nodes[node].addr.into(), PORT)
}

/// The primary a Sentinel names.
async fn primary_of(sentinel: &mut Conn, timeout: Duration) -> Result<SocketAddr, String> {
    let reply = sentinel
        .call_within(
            &[b"SENTINEL", b"get-master-addr-by-name", MASTER.as_bytes()],
            timeout,
        )
        .await
        .map_err(|e| format!("sentinel: {e}"))?;
    let fields: Vec<String> = match &reply {
        Reply::Array(Some(items)) => items.iter().filter_map(Reply::text).collect(),
        _ => Vec::new(),
    };
    match fields.as_slice() {
        [ip, port] => format!("{ip}:{port}")
            .parse()
            .map_err(|_| format!("sentinel named {ip}:{port}")),
        _ => Err(format!("sentinel does not know the primary ({reply:?})")),
    }
}

/// A client that follows its node's Sentinel to the primary.
struct SentinelClient {
    sentinel_addr: SocketAddr,
    password: Option<String>,
    sentinel: Option<Conn>,
    primary: Option<Conn>,
    asked: Instant,
    timeout: Duration,
    server: Option<Ipv4Addr>,
}

impl SentinelClient {
    /// The connection to the primary, asking the Sentinel first if there is none or if
    /// `recheck` and it is time to ask again.
    async fn primary(&mut self, recheck: bool) -> Result<&mut Conn, ClientError> {
        if self.primary.is_none() || (recheck && self.asked.elapsed() >= RECHECK) {
            if self.sentinel.is_none() {
                self.sentinel = Some(
                    Conn::connect_auth(self.sentinel_addr, self.timeout, self.password.as_deref())
                        .await
                        .map_err(|e| ClientError::definite(format!("sentinel: {e}")))?,
                );
            }
            let sentinel = self.sentinel.as_mut().expect("connected above");
            let addr = match primary_of(sentinel, self.timeout).await {
                Ok(a) => a,
                Err(e) => {
                    self.sentinel = None;
                    return Err(ClientError::definite(e));
                }
            };
            self.asked = Instant::now();
            if self.primary.as_ref().map(|c| c.addr) != Some(addr) {
                self.primary = None;
                self.server = match addr.ip() {
                    std::net::IpAddr::V4(ip) => Some(ip),
                    _ => None,
                };
                self.primary = Some(
                    Conn::connect_auth(addr, self.timeout, self.password.as_deref())
                        .await
                        .map_err(ClientError::definite)?,
                );
            }
        }
        Ok(self.primary.as_mut().expect("connected above"))
    }

    fn failed(&mut self, e: RespError) -> ClientError {
        self.primary = None;
        e.into()
    }
}

#[async_trait]
impl Client for SentinelClient {
    /// Reads from the primary, following the Sentinel if it moved. Only reads follow: a
    /// read → increment → write cycle writes where it read, so that the first read from a
    /// new primary shows what the old one lost.
    async fn read(&mut self, key: &str) -> Result<Found, ClientError> {
        let c = self.primary(true).await?;
        match c.get_cell(key).await {
            Ok(cell) => Ok(Found {
                cell,
                revision: None,
            }),
            Err(e) => Err(self.failed(e)),
        }
    }

    async fn write(&mut self, key: &str, cell: Cell) -> Result<Written, ClientError> {
        let c = self.primary(false).await?;
        match c.set_cell(key, cell).await {
            Ok(()) => Ok(Written::default()),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// A server-side script on the primary: sets the key only if it holds what was read.
    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> Result<Written, ClientError> {
        let c = self.primary(false).await?;
        match c.compare_and_set(key, found.cell, cell).await {
            Ok(true) => Ok(Written::default()),
            Ok(false) => Err(ClientError::definite(COMPARE_FAILED)),
            Err(e) => Err(self.failed(e)),
        }
    }

    fn server(&self) -> Option<Ipv4Addr> {
        self.server
    }
}

/// What one node says of itself and of the primary.
#[derive(Debug, Default)]
struct NodeView {
    /// `ROLE` of its Redis: "master", or "slave" with the primary's address and link state.
    role: Option<String>,
    replica_of: Option<(String, String)>,
    replicas: usize,
    /// Its Sentinel's primary, and how many Sentinels and replicas it knows.
    sentinel_primary: Option<SocketAddr>,
    other_sentinels: usize,
    known_replicas: usize,
    version: Option<String>,
    problem: Option<String>,
}

async fn view(layout: &Layout, node: usize) -> NodeView {
    let mut v = NodeView::default();
    let password = resp::password(layout);
    match Conn::connect_auth(redis_addr(layout, node), PROBE, password.as_deref()).await {
        Err(e) => v.problem = Some(format!("redis: {e}")),
        Ok(mut c) => {
            match c.call_within(&[b"ROLE"], PROBE).await {
                Ok(Reply::Array(Some(items))) => {
                    v.role = items.first().and_then(Reply::text);
                    match v.role.as_deref() {
                        Some("master") => {
                            v.replicas = match items.get(2) {
                                Some(Reply::Array(Some(r))) => r.len(),
                                _ => 0,
                            }
                        }
                        _ => {
                            let t = |i: usize| items.get(i).and_then(Reply::text);
                            v.replica_of = t(1).zip(t(2)).map(|(ip, port)| {
                                (format!("{ip}:{port}"), t(3).unwrap_or_default())
                            });
                        }
                    }
                }
                other => v.problem = Some(format!("redis ROLE: {other:?}")),
            }
            if let Ok(r) = c.call_within(&[b"INFO", b"server"], PROBE).await {
                v.version = r
                    .text()
                    .and_then(|t| resp::info_fields(&t).remove("redis_version"));
            }
        }
    }
    match Conn::connect_auth(sentinel_addr(layout, node), PROBE, password.as_deref()).await {
        Err(e) => v.problem = v.problem.or(Some(format!("sentinel: {e}"))),
        Ok(mut s) => {
            v.sentinel_primary = primary_of(&mut s, PROBE).await.ok();
            let count = |r: Result<Reply, RespError>| match r {
                Ok(Reply::Array(Some(items))) => items.len(),
                _ => 0,
            };
            v.other_sentinels = count(
                s.call_within(&[b"SENTINEL", b"sentinels", MASTER.as_bytes()], PROBE)
                    .await,
            );
            v.known_replicas = count(
                s.call_within(&[b"SENTINEL", b"replicas", MASTER.as_bytes()], PROBE)
                    .await,
            );
        }
    }
    v
}

/// Whether node `node`'s view is that of a ready cluster whose primary is `primary`.
fn ready_problem(
    v: &NodeView,
    node_addr: SocketAddr,
    primary: SocketAddr,
    n: usize,
) -> Option<String> {
    if let Some(p) = &v.problem {
        return Some(p.clone());
    }
    if v.sentinel_primary != Some(primary) {
        return Some(format!(
            "sentinel names {:?} as primary",
            v.sentinel_primary
        ));
    }
    if v.other_sentinels + 1 < n || v.known_replicas + 1 < n {
        return Some(format!(
            "sentinel knows {} other sentinels and {} replicas",
            v.other_sentinels, v.known_replicas
        ));
    }
    if node_addr == primary {
        (v.role.as_deref() != Some("master") || v.replicas + 1 < n)
            .then(|| format!("primary has role {:?} with {} replicas", v.role, v.replicas))
    } else {
        match &v.replica_of {
            Some((of, state)) if *of == primary.to_string() && state == "connected" => None,
            other => Some(format!("role {:?}, replica of {other:?}", v.role)),
        }
    }
}

#[async_trait]
impl Database for RedisSentinel {
    fn name(&self) -> &'static str {
        "redis-sentinel"
    }

    /// The official image of the version Debian 12 ships (it holds both servers).
    fn image(&self) -> Option<&'static str> {
        Some("redis:7.0.15")
    }

    fn client(&self) -> &'static str {
        "RESP via Sentinel"
    }

    fn about(&self) -> &'static str {
        "Redis 7 primary + replicas, a Sentinel per node (failover after 2 s); clients write to Sentinel's primary"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("redis-server", "redis-server"),
            ("redis-sentinel", "redis-sentinel"),
        ]
    }

    fn client_port(&self) -> u16 {
        PORT
    }

    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: true,
            settles: Duration::from_secs(3),
            source: "https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/ (clients ask a Sentinel for the primary; a failover needs a majority of Sentinels, so a replica cut off alone changes nothing)",
        }
    }

    fn prepare(&self, layout: &Layout) -> Result<()> {
        for (i, n) in layout.nodes.iter().enumerate() {
            let data = n.dir.join("data");
            std::fs::create_dir_all(&data)
                .map_err(Error::io(format!("create {}", data.display())))?;
            for (file, text) in [
                ("redis.conf", redis_config(layout, i)),
                ("sentinel.conf", sentinel_config(layout, i)),
            ] {
                let path = n.dir.join(file);
                crate::files::write(&path, text)?;
                // It holds the lab's password: its server's user's alone.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(Error::io(format!("chmod {}", path.display())))?;
            }
            // The servers run as `redis`; Sentinel rewrites its file in place (a temporary
            // file beside it), so the node's directory is theirs.
            layout.give(&n.dir, USER)?;
        }
        Ok(())
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        let dir = &layout.nodes[node].dir;
        let spec = |name: &str, conf: &str| ProcessSpec {
            name: name.into(),
            program: name.into(),
            args: vec![dir.join(conf).to_string_lossy().into_owned()],
            env: Vec::new(),
            user: Some(USER.into()),
            image: None,
        };
        vec![
            spec("redis-server", "redis.conf"),
            spec("redis-sentinel", "sentinel.conf"),
        ]
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
        let mut c = SentinelClient {
            sentinel_addr: sentinel_addr(layout, node),
            password: resp::password(layout),
            sentinel: None,
            primary: None,
            asked: Instant::now(),
            timeout,
            server: None,
        };
        tokio::time::timeout(timeout, c.primary(true))
            .await
            .map_err(|_| ClientError::definite("connect: timed out"))??;
        Ok(Box::new(c))
    }
}

#[async_trait]
impl super::Leadership for RedisSentinel {
    async fn leader(&self, layout: &Layout) -> Option<usize> {
        probe(layout).await.1
    }
}

/// The cluster's health, and the node that leads as the servers report it.
async fn probe(layout: &Layout) -> (Health, Option<usize>) {
    let n = layout.nodes.len();
    let views = futures::future::join_all((0..n).map(|i| view(layout, i))).await;
    // The primary most Sentinels name.
    let mut named: Vec<SocketAddr> = views.iter().filter_map(|v| v.sentinel_primary).collect();
    named.sort();
    let primary = named
        .iter()
        .max_by_key(|a| named.iter().filter(|b| b == a).count())
        .copied();
    let leader = primary.and_then(|p| (0..n).find(|i| redis_addr(layout, *i) == p));
    let mut not_ready = Vec::new();
    let mut why = Vec::new();
    for (i, v) in views.iter().enumerate() {
        let problem = match primary {
            None => Some("no sentinel names a primary".to_string()),
            Some(p) => ready_problem(v, redis_addr(layout, i), p, n),
        };
        if let Some(p) = problem {
            not_ready.push(i);
            why.push(format!("{}: {p}", layout.nodes[i].name));
        }
    }
    let health = Health {
        ready: not_ready.is_empty() && leader.is_some(),
        not_ready,
        why: why.join("; "),
        version: views.iter().find_map(|v| v.version.clone()),
    };
    (health, leader)
}

/// Sentinel's failover, as its documentation describes it, with clients that ask their own
/// node's Sentinel where the primary is: whichever node is cut off, every client reaches a
/// primary that takes its writes (the cut-off one until the others promote a replica, as
/// nothing makes it refuse writes), so the isolation costs acknowledged writes, not time.
impl Failover for RedisSentinel {
    fn expect(&self, s: &Settings, role: Role, _client_timeout: Duration) -> Option<Expected> {
        let down_after = failover::ms(s, "down-after-milliseconds", 1)?;
        if failover::count(s, "min-replicas-to-write")? != 0 {
            return None; // a cut-off primary then refuses writes: not this model
        }
        let why = match role {
            Role::Follower => {
                "the primary keeps its replica and every client: nothing stops".to_string()
            }
            _ => format!(
                "with min-replicas-to-write 0 a cut-off primary still takes writes, and each \
                 client writes to it until its node's Sentinel names the replica promoted \
                 after down-after-milliseconds {}: no time is lost, writes are",
                failover::show(down_after)
            ),
        };
        Some(Expected {
            bounds: failover::both(Duration::ZERO, Duration::ZERO, why),
            source: "https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/",
        })
    }

    fn rejoin(
        &self,
        s: &Settings,
        role: Role,
        _isolated: Duration,
        _client_timeout: Duration,
    ) -> Option<Expected> {
        if failover::count(s, "min-replicas-to-write")? != 0 {
            return None;
        }
        let why = match role {
            Role::Follower => "the replica resumes replication from the primary: nothing stops",
            _ => {
                "every client already writes to the replica Sentinel promoted; the returning \
                 old primary is made its replica (dropping what it took alone) without \
                 stopping anyone"
            }
        };
        Some(Expected {
            bounds: failover::after(
                (Duration::ZERO, Duration::ZERO),
                (Duration::ZERO, Duration::ZERO),
                why.to_string(),
            ),
            source: "https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_follow_node_1_and_every_sentinel_watches_it_with_a_majority_quorum() {
        let l = Layout::for_tests(None);
        let r1 = redis_config(&l, 0);
        let r2 = redis_config(&l, 1);
        assert!(r1.contains("bind 198.18.1.1\n") && !r1.contains("replicaof"));
        assert!(r2.contains("bind 198.18.1.2\n") && r2.contains("replicaof 198.18.1.1 6379\n"));
        assert!(r2.contains("dir /x/n2/data\n"));
        let s3 = sentinel_config(&l, 2);
        assert!(s3.contains("bind 198.18.1.3\nport 26379\n"));
        assert!(s3.contains("sentinel monitor perseus 198.18.1.1 6379 2\n"));
        assert!(s3.contains("sentinel down-after-milliseconds perseus 2000\n"));
        assert!(s3.contains("sentinel known-replica perseus 198.18.1.2 6379\n"));
        assert!(s3.contains("sentinel known-replica perseus 198.18.1.3 6379\n"));
        let id1 = sentinel_id(&l, 0);
        assert_eq!(id1.len(), 40);
        assert!(s3.contains(&format!(
            "sentinel known-sentinel perseus 198.18.1.1 26379 {id1}\n"
        )));
        assert!(s3.contains(&format!("sentinel myid {}\n", sentinel_id(&l, 2))));
        assert!(!s3.contains("known-sentinel perseus 198.18.1.3 "));
    }

    #[test]
    fn a_replica_is_ready_once_linked_to_the_primary_its_sentinel_names() {
        let p: SocketAddr = "198.18.1.1:6379".parse().unwrap();
        let me: SocketAddr = "198.18.1.2:6379".parse().unwrap();
        let mut v = NodeView {
            role: Some("slave".into()),
            replica_of: Some(("198.18.1.1:6379".into(), "connected".into())),
            sentinel_primary: Some(p),
            other_sentinels: 2,
            known_replicas: 2,
            ..NodeView::default()
        };
        assert_eq!(ready_problem(&v, me, p, 3), None);
        v.other_sentinels = 1;
        assert!(ready_problem(&v, me, p, 3).is_some());
        v.other_sentinels = 2;
        v.replica_of = Some(("198.18.1.1:6379".into(), "sync".into()));
        assert!(ready_problem(&v, me, p, 3).is_some());
    }
}
