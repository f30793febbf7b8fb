//! ZooKeeper (Debian `zookeeper`, 3.8): one JVM (`QuorumPeerMain`) per node with Debian's
//! default timing (`tickTime=2000`, `syncLimit=5`). The client's loop is `sync` + get, then
//! set, on a znode of its own (`/perseus-n1` …), through a session with its node only.
//! Ready when every node answers `srvr` as leader or follower and exactly one leads.

use super::failover::{self, Bound, Expected, Failover, Role, Settings};
use super::knob::{self, Kind, Knob};
use super::{Cell, Client, ClientError, CutOff, Database, Found, Health, Written, COMPARE_FAILED};
use crate::error::{Error, Result};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zookeeper_client as zk;

pub const CLIENT_PORT: u16 = 2181;
const JAR: &str = "/usr/share/java/zookeeper.jar";
/// A logging backend for ZooKeeper's slf4j: plain lines on standard error, in the node's log.
const LOGGER_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const PROBE: Duration = Duration::from_millis(800);
/// How long a server looking for a leader first waits for votes before sending its own
/// again (`finalizeWait`), and the longest the wait grows to, doubling each time nobody
/// answered (`maxNotificationInterval`): `FastLeaderElection`'s constants.
const MIN_NOTIFICATION: Duration = Duration::from_millis(200);
const MAX_NOTIFICATION: Duration = Duration::from_secs(60);
/// The system user the servers run as (Debian's `zookeeper` makes it), not root.
const USER: &str = "zookeeper";

pub struct Zookeeper;

/// The settings `--set` changes, each a line of `zoo.cfg` (ZooKeeper's sample defaults).
pub const KNOBS: &[Knob] = &[
    Knob {
        name: "tickTime",
        default: "2000",
        kind: Kind::Number,
        about: "ms in a tick, ZooKeeper's unit of time for its timeouts",
    },
    Knob {
        name: "initLimit",
        default: "10",
        kind: Kind::Number,
        about: "ticks a follower has to connect and sync to a new leader",
    },
    Knob {
        name: "syncLimit",
        default: "5",
        kind: Kind::Number,
        about: "ticks a follower may go without hearing from its leader",
    },
];

/// `zoo.cfg` of node `node`.
pub fn config(layout: &Layout, node: usize) -> String {
    let n = &layout.nodes[node];
    let mut c = format!(
        "{knobs}dataDir={dir}/data\n\
         clientPort={CLIENT_PORT}\n\
         clientPortAddress={addr}\n\
         admin.enableServer=false\n\
         4lw.commands.whitelist=srvr,ruok\n",
        knobs = KNOBS
            .iter()
            .map(|k| format!("{}={}\n", k.name, knob::value(layout, k)))
            .collect::<String>(),
        dir = n.dir.display(),
        addr = n.addr,
    );
    for (i, m) in layout.nodes.iter().enumerate() {
        c.push_str(&format!("server.{}={}:2888:3888\n", i + 1, m.addr));
    }
    c
}

/// A four-letter-word command's answer from node `node`.
async fn four_letters(layout: &Layout, node: usize, word: &str) -> Result<String, String> {
    let addr = SocketAddr::new(layout.nodes[node].addr.into(), CLIENT_PORT);
    let ask = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(word.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .await
            .map_err(|e| e.to_string())?;
        Ok(out)
    };
    tokio::time::timeout(PROBE, ask)
        .await
        .map_err(|_| format!("{word}: timed out"))?
}

/// The `Mode:` and `Zookeeper version:` of a `srvr` answer.
fn mode_and_version(srvr: &str) -> (Option<&str>, Option<&str>) {
    let field = |name: &str| {
        srvr.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let version = field("Zookeeper version:").map(|v| v.split([',', '-']).next().unwrap_or(v));
    (field("Mode:"), version)
}

/// Whether a failed request certainly did not take effect.
fn is_definite(e: &zk::Error) -> bool {
    !matches!(
        e,
        zk::Error::ConnectionLoss
            | zk::Error::Timeout
            | zk::Error::SessionExpired
            | zk::Error::ClientClosed
            | zk::Error::UnexpectedError(_)
            | zk::Error::UnexpectedErrorCode(_)
    )
}

fn client_error(e: zk::Error) -> ClientError {
    ClientError {
        definite: is_definite(&e),
        text: e.to_string(),
    }
}

struct ZkClient {
    client: zk::Client,
    /// The znode version of the last read, by key: what a compare-and-set compares.
    versions: std::collections::HashMap<String, i32>,
}

impl ZkClient {
    async fn create(&mut self, path: &str, cell: Cell) -> Result<zk::Stat, zk::Error> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        self.client
            .create(path, cell.encode().as_bytes(), &options)
            .await
            .map(|(stat, _)| stat)
    }
}

fn written(stat: zk::Stat) -> Written {
    Written {
        revision: Some(stat.mzxid),
    }
}

#[async_trait]
impl Client for ZkClient {
    /// `sync` then get: the value as of the leader's latest commit.
    async fn read(&mut self, key: &str) -> Result<Found, ClientError> {
        let path = format!("/{key}");
        self.client
            .sync(&path)
            .await
            .map_err(|e| ClientError::definite(format!("sync: {e}")))?;
        self.read_any(key).await
    }

    /// A plain get, answered by the node from its own copy, which may be behind.
    async fn read_any(&mut self, key: &str) -> Result<Found, ClientError> {
        match self.client.get_data(&format!("/{key}")).await {
            Ok((data, stat)) => {
                let cell = Cell::parse(key, &String::from_utf8_lossy(&data))?;
                self.versions.insert(key.to_string(), stat.version);
                Ok(Found {
                    cell: Some(cell),
                    revision: Some(stat.mzxid),
                })
            }
            Err(zk::Error::NoNode) => {
                self.versions.remove(key);
                Ok(Found::default())
            }
            Err(e) => Err(ClientError::definite(e.to_string())),
        }
    }

    async fn write(&mut self, key: &str, cell: Cell) -> Result<Written, ClientError> {
        let path = format!("/{key}");
        match self
            .client
            .set_data(&path, cell.encode().as_bytes(), None)
            .await
        {
            Ok(stat) => Ok(written(stat)),
            Err(zk::Error::NoNode) => self
                .create(&path, cell)
                .await
                .map(written)
                .map_err(client_error),
            Err(e) => Err(client_error(e)),
        }
    }

    /// `setData` with the znode version of the last read (or `create`, for a key read
    /// absent): ZooKeeper refuses it if the znode changed since.
    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> Result<Written, ClientError> {
        let path = format!("/{key}");
        let done = match (found.cell, self.versions.get(key)) {
            (Some(_), Some(&version)) => {
                self.client
                    .set_data(&path, cell.encode().as_bytes(), Some(version))
                    .await
            }
            (Some(_), None) => return Err(ClientError::definite(COMPARE_FAILED)),
            (None, _) => self.create(&path, cell).await,
        };
        match done {
            Ok(stat) => Ok(written(stat)),
            Err(zk::Error::BadVersion | zk::Error::NoNode | zk::Error::NodeExists) => {
                Err(ClientError::definite(COMPARE_FAILED))
            }
            Err(e) => Err(client_error(e)),
        }
    }
}

#[async_trait]
impl Database for Zookeeper {
    fn name(&self) -> &'static str {
        "zookeeper"
    }

    fn client(&self) -> &'static str {
        "zookeeper"
    }

    fn about(&self) -> &'static str {
        "ZooKeeper 3.8 ensemble (Zab); sync + get, then set, on a znode per node"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("java", "default-jre-headless"),
            (JAR, "zookeeper"),
            (LOGGER_JAR, "libslf4j-java"),
        ]
    }

    fn client_port(&self) -> u16 {
        CLIENT_PORT
    }

    fn peer_port(&self) -> u16 {
        3888
    }

    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: false,
            settles: Duration::from_secs(12),
            source: "https://zookeeper.apache.org/doc/r3.8.4/zookeeperAdmin.html (a follower that loses its leader for syncLimit × tickTime, here 10 s, stops serving and disconnects its clients)",
        }
    }

    fn prepare(&self, layout: &Layout) -> Result<()> {
        for (i, n) in layout.nodes.iter().enumerate() {
            let data = n.dir.join("data");
            std::fs::create_dir_all(&data)
                .map_err(Error::io(format!("create {}", data.display())))?;
            crate::files::write(&data.join("myid"), format!("{}\n", i + 1))?;
            let cfg = n.dir.join("zoo.cfg");
            crate::files::write(&cfg, config(layout, i))?;
            layout.give(&n.dir, USER)?;
        }
        Ok(())
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        let dir = &layout.nodes[node].dir;
        vec![ProcessSpec {
            name: "zookeeper".into(),
            program: "java".into(),
            args: vec![
                "-Xms64m".into(),
                "-Xmx256m".into(),
                "-XX:+UseSerialGC".into(),
                "-cp".into(),
                format!("{JAR}:{LOGGER_JAR}"),
                "-Dorg.slf4j.simpleLogger.showDateTime=true".into(),
                format!("-Dzookeeper.log.dir={}", dir.display()),
                "org.apache.zookeeper.server.quorum.QuorumPeerMain".into(),
                dir.join("zoo.cfg").to_string_lossy().into_owned(),
            ],
            env: Vec::new(),
            user: Some(USER.into()),
            image: None,
        }]
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
        let addr = layout.client_addr(node, CLIENT_PORT).to_string();
        let connect = zk::Client::connector()
            .with_connection_timeout(timeout)
            .with_fail_eagerly()
            .connect(&addr);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(c)) => Ok(Box::new(ZkClient {
                client: c,
                versions: Default::default(),
            })),
            Ok(Err(e)) => Err(ClientError::definite(format!("connect: {e}"))),
            Err(_) => Err(ClientError::definite("connect: timed out")),
        }
    }
}

#[async_trait]
impl super::Leadership for Zookeeper {
    async fn leader(&self, layout: &Layout) -> Option<usize> {
        probe(layout).await.1
    }
}

/// The cluster's health, and the node that leads as the servers report it.
async fn probe(layout: &Layout) -> (Health, Option<usize>) {
    let n = layout.nodes.len();
    let answers = futures::future::join_all((0..n).map(|i| four_letters(layout, i, "srvr"))).await;
    let mut not_ready = Vec::new();
    let mut why = Vec::new();
    let mut leaders = Vec::new();
    let mut version = None;
    for (i, a) in answers.iter().enumerate() {
        let problem = match a {
            Err(e) => Some(e.clone()),
            Ok(text) => {
                let (mode, v) = mode_and_version(text);
                version = version.or(v.map(String::from));
                match mode {
                    Some("leader") => {
                        leaders.push(i);
                        None
                    }
                    Some("follower") => None,
                    _ => Some(format!(
                        "not serving: {}",
                        text.lines().next().unwrap_or("")
                    )),
                }
            }
        };
        if let Some(p) = problem {
            not_ready.push(i);
            why.push(format!("{}: {p}", layout.nodes[i].name));
        }
    }
    if leaders.len() > 1 {
        why.push(format!("{} nodes say they lead", leaders.len()));
    }
    let health = Health {
        ready: not_ready.is_empty() && leaders.len() == 1,
        not_ready,
        why: why.join("; "),
        version,
    };
    (health, (leaders.len() == 1).then(|| leaders[0]))
}

/// Zab, as the administrator's guide describes its timeouts: a follower that hears nothing
/// from its leader for `syncLimit` ticks drops it and looks for another.
impl Failover for Zookeeper {
    fn expect(&self, s: &Settings, role: Role, client_timeout: Duration) -> Option<Expected> {
        let tick = failover::ms(s, "tickTime", 1)?;
        let sync = failover::count(s, "syncLimit")?;
        let limit = tick.checked_mul(sync)?;
        let bounds: Vec<Bound> = match role {
            Role::Follower => failover::unaffected(
                "the leader keeps a quorum with the other follower: nothing stops",
            ),
            Role::Leader => failover::both(
                limit.saturating_sub(tick / 2),
                limit + tick + client_timeout,
                format!(
                    "the followers give up on the leader after syncLimit {sync} × tickTime {} \
                     without a packet (it pings every half tick), elect another and sync \
                     within about a tick; a request in flight waits out the client's timeout \
                     ({})",
                    failover::show(tick),
                    failover::show(client_timeout)
                ),
            ),
            Role::Unknown => return None,
        };
        Some(Expected {
            bounds,
            source: "https://zookeeper.apache.org/doc/r3.8.4/zookeeperAdmin.html",
        })
    }

    fn rejoin(
        &self,
        s: &Settings,
        role: Role,
        isolated: Duration,
        client_timeout: Duration,
    ) -> Option<Expected> {
        let tick = failover::ms(s, "tickTime", 1)?;
        let init = tick.checked_mul(failover::count(s, "initLimit")?)?;
        if role == Role::Unknown {
            return None;
        }
        // A server that lost its leader or its quorum looks for one, sending its votes again
        // after a wait that doubles from 200 ms up to 60 s while nobody answers; after the
        // rejoin it learns the leader at its next round at the latest.
        let round = isolated.clamp(MIN_NOTIFICATION, MAX_NOTIFICATION);
        Some(Expected {
            bounds: failover::after(
                (Duration::ZERO, Duration::ZERO),
                (Duration::ZERO, round + init + client_timeout),
                format!(
                    "the others keep their leader, and a returning server cannot depose it \
                     (it looks for a leader, it does not campaign against one): nobody stops; \
                     it learns the leader at its next round of votes, sent after a wait that \
                     doubled from 200 ms while it was cut off (here at most {}), then syncs \
                     within initLimit × tickTime ({}); its client's request in flight waits \
                     out the client's timeout ({})",
                    failover::show(round),
                    failover::show(init),
                    failover::show(client_timeout)
                ),
            ),
            source: "https://zookeeper.apache.org/doc/r3.8.4/zookeeperAdmin.html (initLimit); https://github.com/apache/zookeeper/blob/release-3.8.0/zookeeper-server/src/main/java/org/apache/zookeeper/server/quorum/FastLeaderElection.java (finalizeWait 200 ms, maxNotificationInterval 60 s)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_knows_the_ensemble_and_serves_clients_on_its_own_address() {
        let c = config(&Layout::for_tests(None), 1);
        for line in [
            "dataDir=/x/n2/data",
            "clientPortAddress=198.18.1.2",
            "clientPort=2181",
            "admin.enableServer=false",
            "server.1=198.18.1.1:2888:3888",
            "server.2=198.18.1.2:2888:3888",
            "server.3=198.18.1.3:2888:3888",
        ] {
            assert!(c.lines().any(|l| l == line), "missing {line} in\n{c}");
        }
        assert!(c.contains("4lw.commands.whitelist=srvr"));
    }

    #[test]
    fn srvr_gives_the_mode_and_version() {
        let srvr = "Zookeeper version: 3.8.0-debian--1, built on 2023-01-01 00:00 UTC\n\
                    Latency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(mode_and_version(srvr), (Some("follower"), Some("3.8.0")));
        assert_eq!(
            mode_and_version("This ZooKeeper instance is not currently serving requests\n"),
            (None, None)
        );
    }
}
