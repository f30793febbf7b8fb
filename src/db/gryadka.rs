//! Gryadka (npm `gryadka@1.61.8`, the version the original Perseus experiment measured): a
//! Paxos register per key over Redis, with no leader. Every node runs a `redis-server`, the
//! acceptor's storage, and a Node.js server Perseus ships (`gryadka/server.js`) that holds a
//! proposer of the package (`Cache`, `AcceptorClient`, `Proposer`, quorum 2 of 3) and serves
//! it to Perseus's client. Every proposer talks to all three acceptors, so a node cut off
//! from its peers leaves its proposer with one acceptor, short of a quorum, while the others
//! keep two.
//!
//! The package is installed once into Perseus's cache with `npm`, pinned by version and
//! integrity (`gryadka/package-lock.json`). Redis keeps the acceptors' state in an
//! append-only file synced on every write (`appendfsync always`), as a Paxos acceptor's
//! promises must survive a restart.

use super::failover::{self, Expected, Failover, Role, Settings};
use super::knob::{self, Kind, Knob};
use super::npm::Package;
use super::resp::{self, Conn, Reply, RespError};
use super::{Cell, Client, ClientError, CutOff, Database, Found, Health, Written, COMPARE_FAILED};
use crate::error::{Error, Result};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Every node's Redis (the acceptor).
pub const REDIS_PORT: u16 = 6379;
/// Every node's proposer, which Perseus's client talks to.
pub const PORT: u16 = 6380;
/// The system user the servers run as (Debian's `redis-server` makes it), not root.
const USER: &str = "redis";
const SERVER_JS: &str = include_str!("gryadka/server.js");
/// What Perseus installs from npm: the package and its dependencies, pinned.
pub static PACKAGE: Package = Package {
    spec: "gryadka@1.61.8",
    dir_name: "gryadka-1.61.8",
    manifest: include_str!("gryadka/package.json"),
    lockfile: include_str!("gryadka/package-lock.json"),
};
pub const KNOBS: &[Knob] = &[Knob {
    name: "appendfsync",
    default: "always",
    kind: Kind::OneOf(&["always", "everysec", "no"]),
    about: "when an acceptor's append-only file reaches the disk (always: a promise survives a crash of its node)",
}];
const PROBE: Duration = Duration::from_millis(800);
/// Linux's least retransmission timeout (`TCP_RTO_MIN`, tcp(7)); the timeout doubles at
/// every retransmission.
const RTO_MIN: Duration = Duration::from_millis(200);
const MODEL_SOURCE: &str = "https://github.com/gryadka/js (every read and write needs a majority of acceptors); https://man7.org/linux/man-pages/man7/tcp.7.html (retransmission timeout, doubling); docs/findings/gryadka-recovery-tcp-backoff.md";

pub struct Gryadka;

/// `redis.conf` of node `node`'s acceptor (only the lab's proposers know its password).
pub fn redis_config(layout: &Layout, node: usize) -> String {
    resp::server_config(
        layout,
        node,
        REDIS_PORT,
        knob::value(layout, knob::named(KNOBS, "appendfsync")),
    )
}

/// The command line of node `node`'s proposer server.
fn proposer_args(layout: &Layout, node: usize) -> Vec<String> {
    let acceptors: Vec<String> = layout
        .nodes
        .iter()
        .map(|n| format!("{}:{REDIS_PORT}", n.addr))
        .collect();
    vec![
        layout.nodes[node]
            .dir
            .join("gryadka-server.js")
            .to_string_lossy()
            .into_owned(),
        "--id".into(),
        node.to_string(),
        "--listen".into(),
        format!("{}:{PORT}", layout.nodes[node].addr),
        "--acceptors".into(),
        acceptors.join(","),
        "--local".into(),
        node.to_string(),
    ]
}

/// A client of one node's proposer.
struct GryadkaClient(Conn);

/// Gryadka's "NO" certainly changed nothing; its "UNKNOWN" (the accept round failed after it
/// started) may have; a compare that failed wrote nothing.
fn client_error(e: RespError) -> ClientError {
    match e {
        RespError::Refused(t) if t.starts_with("CASFAILED") => {
            ClientError::definite(COMPARE_FAILED)
        }
        RespError::Refused(t) if t.starts_with("UNKNOWN") => ClientError::indefinite(t),
        e => e.into(),
    }
}

#[async_trait]
impl Client for GryadkaClient {
    /// A read is a Paxos round of the node's proposer (it commits what it read).
    async fn read(&mut self, key: &str) -> Result<Found, ClientError> {
        let cell = match self
            .0
            .call(&[b"GET", key.as_bytes()])
            .await
            .map_err(client_error)?
        {
            Reply::Bulk(None) => None,
            r => Some(Cell::parse(key, &r.text().unwrap_or_default())?),
        };
        Ok(Found {
            cell,
            revision: None,
        })
    }

    async fn write(&mut self, key: &str, cell: Cell) -> Result<Written, ClientError> {
        self.0
            .call(&[b"SET", key.as_bytes(), cell.encode().as_bytes()])
            .await
            .map_err(client_error)?;
        Ok(Written::default())
    }

    /// One Paxos round that keeps the key unless it holds what was read.
    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> Result<Written, ClientError> {
        let expected = found.cell.map(|c| c.encode()).unwrap_or_default();
        self.0
            .call(&[
                b"CAS",
                key.as_bytes(),
                expected.as_bytes(),
                cell.encode().as_bytes(),
            ])
            .await
            .map_err(client_error)?;
        Ok(Written::default())
    }
}

/// Whether node `node`'s proposer completes a read (of a key of its own) within `PROBE`,
/// and the versions it reports.
async fn probe(layout: &Layout, node: usize) -> Result<Option<String>, String> {
    let addr: SocketAddr = layout.client_addr(node, PORT);
    let pw = resp::password(layout);
    let mut c = Conn::connect_auth(addr, PROBE, pw.as_deref()).await?;
    let key = format!("perseus-probe-{}", layout.nodes[node].name);
    c.call_within(&[b"GET", key.as_bytes()], PROBE)
        .await
        .map_err(|e| format!("read through the proposer: {e}"))?;
    let info = c.call_within(&[b"INFO"], PROBE).await.ok();
    let fields = resp::info_fields(&info.and_then(|r| r.text()).unwrap_or_default());
    Ok(fields.get("gryadka_version").map(|g| {
        format!(
            "{g} (Redis {}, Node.js {})",
            fields.get("redis_version").map_or("?", |s| s),
            fields.get("node_version").map_or("?", |s| s),
        )
    }))
}

#[async_trait]
impl Database for Gryadka {
    fn name(&self) -> &'static str {
        "gryadka"
    }

    fn client(&self) -> &'static str {
        "gryadka HTTP"
    }

    fn about(&self) -> &'static str {
        "Gryadka 1.61.8 (npm, the seed's version): Paxos over a Redis per node, a proposer per node, no leader"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("node", "nodejs"),
            ("npm", "npm"),
            ("redis-server", "redis-server"),
        ]
    }

    /// `npm` is needed only until the package is in the cache.
    fn check_installed(&self, _bin_dir: Option<&Path>) -> Result<()> {
        for (binary, package) in self.binaries() {
            if *binary == "npm" && PACKAGE.installed() {
                continue;
            }
            if crate::lab::process::find_program(binary).is_none() {
                return Err(Error::MissingBinary {
                    binary: binary.to_string(),
                    how: format!("install it with: apt-get install {package}"),
                });
            }
        }
        Ok(())
    }

    fn npm_package(&self) -> Option<&'static Package> {
        Some(&PACKAGE)
    }

    fn client_port(&self) -> u16 {
        PORT
    }

    fn peer_port(&self) -> u16 {
        REDIS_PORT
    }

    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: false,
            settles: Duration::from_secs(1),
            source: "https://github.com/gryadka/js (a proposer needs a majority of the acceptors for every read and write; one cut off reaches only its own)",
        }
    }

    fn knobs(&self) -> &'static [Knob] {
        KNOBS
    }

    fn failover(&self) -> Option<&dyn Failover> {
        Some(self)
    }

    fn prepare(&self, layout: &Layout) -> Result<()> {
        for (i, n) in layout.nodes.iter().enumerate() {
            let data = n.dir.join("data");
            std::fs::create_dir_all(&data)
                .map_err(Error::io(format!("create {}", data.display())))?;
            let conf = n.dir.join("redis.conf");
            crate::files::write(&conf, redis_config(layout, i))?;
            // It holds the lab's password: its server's user's alone.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600))
                .map_err(Error::io(format!("chmod {}", conf.display())))?;
            crate::files::write(&n.dir.join("gryadka-server.js"), SERVER_JS)?;
            layout.give(&n.dir, USER)?;
        }
        Ok(())
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        let dir = &layout.nodes[node].dir;
        let mut env = vec![(
            "NODE_PATH".to_string(),
            PACKAGE.node_modules().to_string_lossy().into_owned(),
        )];
        if let Some(secret) = &layout.secret {
            env.push(("PERSEUS_SECRET".into(), secret.clone()));
        }
        vec![
            ProcessSpec {
                name: "redis-server".into(),
                program: "redis-server".into(),
                args: vec![dir.join("redis.conf").to_string_lossy().into_owned()],
                env: Vec::new(),
                user: Some(USER.into()),
                image: None,
            },
            ProcessSpec {
                name: "gryadka".into(),
                program: "node".into(),
                args: proposer_args(layout, node),
                env,
                user: Some(USER.into()),
                image: None,
            },
        ]
    }

    /// Ready when every node's proposer completes a read.
    async fn health(&self, layout: &Layout) -> Health {
        let n = layout.nodes.len();
        let probes = futures::future::join_all((0..n).map(|i| probe(layout, i))).await;
        let mut health = Health::default();
        let mut why = Vec::new();
        for (i, p) in probes.into_iter().enumerate() {
            match p {
                Ok(v) => health.version = health.version.or(v),
                Err(e) => {
                    health.not_ready.push(i);
                    why.push(format!("{}: {e}", layout.nodes[i].name));
                }
            }
        }
        health.ready = health.not_ready.is_empty();
        health.why = why.join("; ");
        health
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> Result<Box<dyn Client>, ClientError> {
        let pw = resp::password(layout);
        let c = Conn::connect_auth(layout.client_addr(node, PORT), timeout, pw.as_deref())
            .await
            .map_err(ClientError::definite)?;
        Ok(Box::new(GryadkaClient(c)))
    }
}

/// Gryadka has no leader and no timeouts of its own: a proposer needs two acceptors of three,
/// so the cut-off node's client stops and nobody else does. Its return waits for TCP: the
/// request its proposer sent while cut off sits in the kernel's send queue (node_redis has no
/// command timeout), retransmitted at intervals that double from 200 ms, and only the first
/// retransmission after the rejoin gets it through.
impl Failover for Gryadka {
    fn expect(&self, s: &Settings, _role: Role, _client_timeout: Duration) -> Option<Expected> {
        s.get(KNOBS[0].name)?;
        Some(Expected {
            bounds: failover::unaffected(
                "no leader: the connected proposers still reach two acceptors of three, so \
                 nothing stops",
            ),
            source: MODEL_SOURCE,
        })
    }

    fn rejoin(
        &self,
        s: &Settings,
        _role: Role,
        isolated: Duration,
        client_timeout: Duration,
    ) -> Option<Expected> {
        s.get(KNOBS[0].name)?;
        // The retransmission interval running at the rejoin is at most as long as the time
        // since the first send (the cut) plus the first interval.
        let wait = isolated + RTO_MIN;
        Some(Expected {
            bounds: failover::after(
                (Duration::ZERO, Duration::ZERO),
                (Duration::ZERO, wait + 2 * client_timeout),
                format!(
                    "nobody else stops; the returning node's proposer is stuck on the request \
                     it sent when cut off, which TCP retransmits at intervals doubling from \
                     200 ms, so it gets through at the first retransmission after the rejoin, \
                     at most {} later for a {} isolation, and the next requests are served \
                     within two of the client's timeouts ({})",
                    failover::show(wait),
                    failover::show(isolated),
                    failover::show(client_timeout)
                ),
            ),
            source: MODEL_SOURCE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_proposer_knows_every_acceptor_and_loads_the_scripts_into_its_own() {
        let l = Layout::for_tests(None);
        let args = proposer_args(&l, 1).join(" ");
        assert_eq!(
            args,
            "/x/n2/gryadka-server.js --id 1 --listen 198.18.1.2:6380 \
             --acceptors 198.18.1.1:6379,198.18.1.2:6379,198.18.1.3:6379 --local 1"
        );
        let c = redis_config(&l, 2);
        assert!(c.contains("bind 198.18.1.3\nport 6379\n"), "{c}");
        assert!(c.contains("appendonly yes\nappendfsync always\n"), "{c}");
        assert!(c.contains("dir /x/n3/data\n"), "{c}");
        assert!(
            !c.contains("requirepass"),
            "no lab password, none asked: {c}"
        );
    }

    #[test]
    fn no_is_definite_unknown_is_not_and_a_failed_compare_is_the_compare_failure() {
        let no = client_error(RespError::Refused("NO [{\"id\":\"ERRNO002\"}]".into()));
        assert!(no.definite);
        let unknown = client_error(RespError::Refused("UNKNOWN [{\"id\":\"ERRNO009\"}]".into()));
        assert!(!unknown.definite);
        let cas = client_error(RespError::Refused("CASFAILED the key changed".into()));
        assert!(cas.definite && cas.text == COMPARE_FAILED);
        assert!(!client_error(RespError::Broken("reset".into())).definite);
    }

    #[test]
    fn the_lockfile_pins_the_seeds_version_with_its_integrity() {
        let lock: serde_json::Value = serde_json::from_str(PACKAGE.lockfile).unwrap();
        let g = &lock["packages"]["node_modules/gryadka"];
        assert_eq!(g["version"], "1.61.8");
        for (name, p) in lock["packages"].as_object().unwrap() {
            if !name.is_empty() {
                let integrity = p["integrity"].as_str().unwrap_or_default();
                assert!(integrity.starts_with("sha512-"), "{name}: {integrity:?}");
            }
        }
        let manifest: serde_json::Value = serde_json::from_str(PACKAGE.manifest).unwrap();
        assert_eq!(manifest["dependencies"]["gryadka"], "1.61.8");
    }
}
