//! Databases: how to start a node, when the cluster is ready, and a client for the workload.
//! One file per database; [`REGISTRY`] lists them.

pub mod cockroachdb;
pub mod consul;
pub mod etcd;
pub mod failover;
pub mod galera;
pub mod gryadka;
pub mod http;
pub mod knob;
pub mod mongodb;
pub mod mysql;
pub mod nats;
pub mod npm;
pub mod patroni;
pub mod postgres;
pub mod redis_sentinel;
pub mod resp;
pub mod rethinkdb;
pub mod riak;
pub mod start;
pub use start::start;
pub mod tidb;
pub mod yugabytedb;
pub mod zookeeper;

use crate::error::{Error, Result};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

/// Every database Perseus can run, in the order `perseus list` shows them.
pub static REGISTRY: &[&dyn Database] = &[
    &etcd::Etcd,
    &galera::Galera,
    &patroni::Patroni,
    &redis_sentinel::RedisSentinel,
    &zookeeper::Zookeeper,
    &gryadka::Gryadka,
    &nats::Nats,
    &tidb::Tidb,
    &consul::Consul,
    &yugabytedb::Yugabytedb,
    &mongodb::Mongodb,
    &cockroachdb::Cockroachdb,
    &rethinkdb::Rethinkdb,
    &riak::Riak,
];

/// Client protocols on their own, for clusters Perseus did not start (a cluster file's or
/// a compose project's `database`): each node's client talks to that node only, and
/// nothing is started. Not presets: `perseus run` and `perseus up` refuse them.
pub static PROTOCOLS: &[&dyn Database] = &[
    &postgres::Postgres,
    &mysql::Mysql,
    &consul::ConsulKv,
    &riak::RiakKv,
    &mongodb::MongodbWire,
    &rethinkdb::Reql,
];

/// Looks a database up by name: a preset of [`REGISTRY`] or a protocol of [`PROTOCOLS`].
pub fn find(name: &str) -> Result<&'static dyn Database> {
    REGISTRY
        .iter()
        .chain(PROTOCOLS)
        .copied()
        .find(|d| d.name() == name)
        .ok_or_else(|| Error::UnknownDatabase {
            name: name.to_string(),
            known: REGISTRY
                .iter()
                .chain(PROTOCOLS)
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Looks up a preset Perseus can start; a protocol's name is refused, saying what to do.
pub fn preset(name: &str) -> Result<&'static dyn Database> {
    let db = find(name)?;
    if is_protocol(db) {
        return Err(Error::Invalid(format!(
            "{name} is a client protocol, not a database Perseus can start: measure a \
             cluster you run with a cluster file (database = \"{name}\", perseus run \
             --cluster FILE), or pick a preset (perseus list)"
        )));
    }
    Ok(db)
}

/// What a preset's [`Database::binaries`] says of a binary no Debian package provides and
/// its image does: on this machine's own servers it runs only from the user's PATH.
pub const NO_PACKAGE: &str = "no Debian package: run it with --backend docker";

/// For a preset no Debian package provides, whose image is `image`: every binary of
/// `binaries` on PATH, or the first one missing named with how to run it in containers.
pub fn image_only(binaries: &[(&str, &str)], image: &str) -> Result<()> {
    match binaries
        .iter()
        .find(|(b, _)| crate::lab::process::find_program(b).is_none())
    {
        None => Ok(()),
        Some((binary, _)) => Err(Error::MissingBinary {
            binary: binary.to_string(),
            how: format!(
                "no Debian package has it: run it in containers with --backend docker (image \
                 {image}, docker pull {image}), or put its binaries on PATH"
            ),
        }),
    }
}

/// What a protocol says of a cut-off node's client: nothing, for it is the database's.
pub fn protocol_cut_off() -> CutOff {
    CutOff {
        serves: false,
        settles: Duration::ZERO,
        source: "a protocol, not a database: what a cut-off node's client sees is the database's",
    }
}

/// Where a preset's servers can run, for `perseus list`: this machine's network
/// namespaces where its binaries come from Debian's packages (or the user's), and
/// containers where it has an image.
pub fn backends(db: &dyn Database) -> &'static str {
    let image_only = db.binaries().iter().any(|(_, how)| *how == NO_PACKAGE);
    match (db.image().is_some(), image_only) {
        (true, true) => "docker",
        (true, false) => "namespaces, docker",
        (false, _) => "namespaces",
    }
}

/// Whether `db` is one of [`PROTOCOLS`].
pub fn is_protocol(db: &dyn Database) -> bool {
    PROTOCOLS.iter().any(|p| p.name() == db.name())
}

/// A protocol's health from each node's answer (its version, or why not): ready when every
/// node answered; the version is the first answer's.
pub fn all_answer(layout: &Layout, answers: &[std::result::Result<String, String>]) -> Health {
    let not_ready: Vec<usize> = (0..answers.len())
        .filter(|i| answers[*i].is_err())
        .collect();
    let why = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            a.as_ref()
                .err()
                .map(|e| format!("{}: {e}", layout.nodes[i].name))
        })
        .collect::<Vec<_>>()
        .join("; ");
    Health {
        ready: not_ready.is_empty(),
        not_ready,
        why,
        version: answers.iter().find_map(|a| a.as_ref().ok().cloned()),
    }
}

/// Makes sure `db` can run here: its binaries ([`Database::check_installed`]), then the npm
/// package it runs, installed into Perseus's cache if it is not there yet (the first time,
/// which needs the npm registry). Returns what it installed, for the user.
pub fn ensure_installed(db: &dyn Database, bin_dir: Option<&Path>) -> Result<Option<String>> {
    db.check_installed(bin_dir)?;
    match db.npm_package() {
        Some(p) if p.install()? => Ok(Some(format!(
            "installed {} from npm into {}",
            p.spec,
            p.dir().display()
        ))),
        _ => Ok(None),
    }
}

/// What a health probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Every node is up and the cluster can serve.
    pub ready: bool,
    /// Nodes that did not answer as a ready node should.
    pub not_ready: Vec<usize>,
    /// Why it is not ready, for the user.
    pub why: String,
    /// The server version, as the servers report it.
    pub version: Option<String>,
}

/// A failed request. `definite`: it certainly did not take effect (never sent, or refused);
/// otherwise it may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub definite: bool,
    pub text: String,
}

impl ClientError {
    pub fn definite(text: impl Into<String>) -> Self {
        ClientError {
            definite: true,
            text: text.into(),
        }
    }

    pub fn indefinite(text: impl Into<String>) -> Self {
        ClientError {
            definite: false,
            text: text.into(),
        }
    }
}

/// What the workload keeps in a key: the writer's counter and the number of the write
/// attempt that set it. Attempt numbers are unique per key (see the workload), so a read
/// names the exact write it returned. Attempt 0: set by something that did not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cell {
    pub value: i64,
    pub attempt: u64,
}

impl Cell {
    /// The text form for databases that store strings: `value#attempt`.
    pub fn encode(&self) -> String {
        format!("{}#{}", self.value, self.attempt)
    }

    /// Reads the text form back; a bare number (a value an older Perseus wrote) is attempt 0.
    pub fn decode(text: &str) -> Option<Cell> {
        let (value, attempt) = match text.split_once('#') {
            Some((v, a)) => (v, a.parse().ok()?),
            None => (text, 0),
        };
        Some(Cell {
            value: value.parse().ok()?,
            attempt,
        })
    }

    /// [`Cell::decode`], or a definite client error naming the key.
    pub fn parse(key: &str, text: &str) -> Result<Cell, ClientError> {
        Cell::decode(text).ok_or_else(|| {
            ClientError::definite(format!(
                "value of {key} is not a Perseus counter: {:?}",
                text.chars().take(64).collect::<String>()
            ))
        })
    }
}

/// What a read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Found {
    /// `None`: the key is absent.
    pub cell: Option<Cell>,
    /// The database's own stamp of the change that last set the key, ordered across the
    /// whole database (etcd: the key's `mod_revision`; ZooKeeper: its `mzxid`), where it has one.
    pub revision: Option<i64>,
}

/// What a successful write returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    /// The stamp of this change, comparable with [`Found::revision`], where the database has one.
    pub revision: Option<i64>,
}

/// The text of a compare-and-set whose compare failed: the key changed since it was read.
/// A definite failure: nothing was written.
pub const COMPARE_FAILED: &str = "compare failed: the key changed since it was read";

/// One connection to one node, as the seed's client held.
#[async_trait]
pub trait Client: Send {
    /// What `key` holds.
    async fn read(&mut self, key: &str) -> Result<Found, ClientError>;
    /// Sets `key` to `cell`, whatever it holds (the seed's blind write).
    async fn write(&mut self, key: &str, cell: Cell) -> Result<Written, ClientError>;
    /// Sets `key` to `cell` only if it still holds `expected` (`None`: only if it is
    /// absent), as one atomic step of the database; fails definitely with
    /// [`COMPARE_FAILED`] otherwise. `found` is this client's last read of `key`, for
    /// databases that compare a version rather than the value.
    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> Result<Written, ClientError>;
    /// Reads `key` the cheapest way the database offers, which may be stale (etcd: a
    /// serializable read from the node's own store); by default the same as [`Client::read`].
    async fn read_any(&mut self, key: &str) -> Result<Found, ClientError> {
        self.read(key).await
    }
    /// The server that answered (or was sent) the last request, for clients that are sent
    /// on from the node they were opened to (e.g. to the primary); `None` otherwise.
    fn server(&self) -> Option<Ipv4Addr> {
        None
    }
}

/// An optional ability: nodes start one at a time, in node order, each ready before the
/// next starts (e.g. Galera, where a node joins by state transfer from one already there).
#[async_trait]
pub trait StagedStart: Send + Sync {
    /// Whether node `node` is ready to let the next node join; `Err` says why not.
    async fn node_ready(&self, layout: &Layout, node: usize) -> Result<(), String>;
}

/// An optional ability: the database serves before it is in its normal state (e.g. TiDB,
/// whose regions are not yet fully replicated), and says when it is.
#[async_trait]
pub trait WarmUp: Send + Sync {
    /// Whether it has finished warming up, so a fault now hits it in its normal state; `Err`
    /// says why not.
    async fn warmed_up(&self, layout: &Layout) -> Result<(), String>;
}

/// An optional ability: one node leads (takes or orders every write), and the database
/// says which. Databases where every node takes writes (Galera) have none.
#[async_trait]
pub trait Leadership: Send + Sync {
    /// The node that leads now, as the servers report it; `None` while none does (an
    /// election, no quorum, no answer within about a second).
    async fn leader(&self, layout: &Layout) -> Option<usize>;
}

/// What a client of one node sees while that node, not the leader, is cut off from its
/// peers and the others keep a majority: what the database's documentation describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutOff {
    /// Whether that client's reads and writes still complete (e.g. sent on to a primary
    /// it still reaches); otherwise they all fail or time out.
    pub serves: bool,
    /// How long after the cut the database may take to behave so (timeouts it waits out).
    pub settles: Duration,
    /// Where the documentation says so.
    pub source: &'static str,
}

/// A database Perseus can run in a lab.
#[async_trait]
pub trait Database: Send + Sync {
    fn name(&self) -> &'static str;
    /// The image its servers run from on a container backend (`--backend docker`), pinned
    /// to a tag; `None`: it has none yet, and `--image` must name one.
    fn image(&self) -> Option<&'static str> {
        None
    }
    /// The images besides the lab's `image` that some of its servers run from on a container
    /// backend (a database of components that ship apart, whose `processes` name them);
    /// none by default. Each must be there before the lab is made.
    fn images(&self, _image: &str) -> Vec<String> {
        Vec::new()
    }
    /// The directory, inside each node's own, where its servers keep their data: what a
    /// disk layer serves (`--disk faulty`). `None`: more than one, which no layer serves.
    fn data_dir(&self) -> Option<&'static str> {
        Some("data")
    }
    /// One line for `perseus list`.
    fn about(&self) -> &'static str;
    /// The client its workload speaks, for `perseus list`: the name of a protocol of
    /// [`PROTOCOLS`] where it is one, else a few words.
    fn client(&self) -> &'static str {
        self.name()
    }
    /// Whether this project has run it (its tests, on its own machines) rather than only
    /// unit-tested its command lines and parsers: `perseus list` says which.
    fn run_here(&self) -> bool {
        true
    }
    /// Binaries it needs, each with the Debian package that provides it.
    fn binaries(&self) -> &'static [(&'static str, &'static str)];
    /// The port clients connect to on every node.
    fn client_port(&self) -> u16;
    /// A port the nodes reach each other on (replication, consensus). When a cluster does
    /// not form, it is probed between every two nodes, to tell a network that drops their
    /// traffic from servers that fail. Default: the client port.
    fn peer_port(&self) -> u16 {
        self.client_port()
    }
    /// Fails, saying how to get it, when a binary is missing. `bin_dir`: where the user
    /// keeps binaries that no package installs (`--bin-dir`).
    /// Binaries that are [`NO_PACKAGE`] are looked for on PATH, and the error names the
    /// image instead.
    fn check_installed(&self, _bin_dir: Option<&Path>) -> Result<()> {
        if let Some(image) = self.image() {
            if self.binaries().iter().any(|(_, p)| *p == NO_PACKAGE) {
                return image_only(self.binaries(), image);
            }
        }
        for (binary, package) in self.binaries() {
            let found = if binary.contains('/') {
                Path::new(binary).exists()
            } else {
                crate::lab::process::find_program(binary).is_some()
            };
            if !found {
                return Err(Error::MissingBinary {
                    binary: binary.to_string(),
                    how: format!("install it with: apt-get install {package}"),
                });
            }
        }
        Ok(())
    }
    /// The npm package it runs, which [`ensure_installed`] installs into Perseus's cache on
    /// first use; `None` for databases that Debian packages alone provide.
    fn npm_package(&self) -> Option<&'static npm::Package> {
        None
    }
    /// Its warm-up, for databases that serve before they are in their normal state.
    fn warm_up(&self) -> Option<&dyn WarmUp> {
        None
    }
    /// Writes whatever the nodes need before they start (config files, data dirs).
    fn prepare(&self, _layout: &Layout) -> Result<()> {
        Ok(())
    }
    /// The processes of node `node`.
    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec>;
    /// The processes that start node `node` again after it was killed (same data); by
    /// default the same as [`Database::processes`].
    fn restart_processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        self.processes(layout, node)
    }
    /// Its staged start, for databases whose nodes must join one at a time; `None`: every
    /// node starts at once.
    fn staged_start(&self) -> Option<&dyn StagedStart> {
        None
    }
    /// Forms the cluster once every node's servers run, for databases whose servers wait
    /// to be told whom they serve with (MongoDB's `replSetInitiate`); asked again until it
    /// succeeds or the start times out, so it must be idempotent. `Err` says why not yet.
    async fn form(&self, _layout: &Layout) -> std::result::Result<(), String> {
        Ok(())
    }
    /// What [`Database::health`] waits for, in a few words naming the query it asks (for
    /// the error when a cluster never becomes ready); empty where the error's answers say
    /// enough.
    fn ready_when(&self) -> &'static str {
        ""
    }
    /// Probes the cluster once, within about a second.
    async fn health(&self, layout: &Layout) -> Health;
    /// Opens a client to node `node`. Must not take longer than `timeout`.
    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> Result<Box<dyn Client>, ClientError>;
    /// Runs once when the cluster is ready, before any client (e.g. creates the table).
    async fn setup(&self, _layout: &Layout) -> Result<()> {
        Ok(())
    }
    /// Its leadership, for databases where one node leads; `None`: every node takes writes.
    fn leadership(&self) -> Option<&dyn Leadership> {
        None
    }
    /// What a client of a node cut off from its peers sees, as the documentation says.
    fn cut_off(&self) -> CutOff;
    /// The settings that govern its failover and catch-up, with the preset's values, which
    /// `--set NAME=VALUE` changes; none by default.
    fn knobs(&self) -> &'static [knob::Knob] {
        &[]
    }
    /// Its failover model, for databases whose failover timeouts Perseus sets; `None`: no
    /// model (the report then shows no expected range).
    fn failover(&self) -> Option<&dyn failover::Failover> {
        None
    }
    /// The key node `node`'s client increments.
    fn key(&self, layout: &Layout, node: usize) -> String {
        format!("perseus-{}", layout.nodes[node].name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_protocol_is_found_for_a_cluster_but_refused_as_a_preset() {
        for name in [
            "postgres",
            "mysql",
            "consul-kv",
            "riak-kv",
            "mongodb-wire",
            "reql",
        ] {
            let db = find(name).unwrap();
            assert!(is_protocol(db) && db.processes(&Layout::for_tests(None), 0).is_empty());
            let e = preset(name).err().unwrap().to_string();
            assert!(
                e.contains("client protocol") && e.contains("--cluster"),
                "{e}"
            );
        }
        assert!(!is_protocol(preset("etcd").unwrap()));
        let names: Vec<&str> = REGISTRY.iter().chain(PROTOCOLS).map(|d| d.name()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "one name, one entry: {names:?}");
        let e = find("nosuch").err().unwrap().to_string();
        assert!(e.contains("postgres") && e.contains("etcd"), "{e}");
    }

    /// Every system the seed measured has a preset, each with its client and where it runs.
    #[test]
    fn the_seeds_nine_are_presets_with_a_client_and_a_backend() {
        let seed = [
            ("etcd", "namespaces, docker"),
            ("gryadka", "namespaces"),
            ("tidb", "namespaces, docker"),
            ("cockroachdb", "docker"),
            ("consul", "docker"),
            ("rethinkdb", "docker"),
            ("riak", "docker"),
            ("mongodb", "docker"),
            ("yugabytedb", "docker"),
        ];
        for (name, backend) in seed {
            let db = preset(name).unwrap();
            assert_eq!(backends(db), backend, "{name}");
            assert!(!db.client().is_empty() && db.client() != name, "{name}");
        }
        for p in PROTOCOLS {
            assert_eq!(p.client(), p.name(), "a protocol is its own client");
        }
    }

    #[test]
    fn an_image_only_preset_names_its_missing_binary_and_the_image_to_pull() {
        let e = image_only(&[("sh", "x"), ("no-such-binary-here", "x")], "img:1")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("no-such-binary-here") && e.contains("docker pull img:1"),
            "{e}"
        );
        assert!(image_only(&[("sh", "x")], "img:1").is_ok());
    }

    #[test]
    fn a_protocol_is_ready_when_every_node_answers() {
        let l = Layout::for_tests(None);
        let ok = |v: &str| Ok(v.to_string());
        let h = all_answer(&l, &[ok("15.1"), ok("15.1"), ok("15.1")]);
        assert!(h.ready && h.not_ready.is_empty() && h.why.is_empty());
        assert_eq!(h.version.as_deref(), Some("15.1"));
        let h = all_answer(
            &l,
            &[Err("refused".into()), ok("15.1"), Err("timed out".into())],
        );
        assert!(!h.ready);
        assert_eq!(h.not_ready, [0, 2]);
        assert_eq!(h.why, "n1: refused; n3: timed out");
        assert_eq!(h.version.as_deref(), Some("15.1"));
    }

    #[test]
    fn a_cell_reads_back_as_written_and_a_bare_number_is_attempt_zero() {
        let c = Cell {
            value: -12,
            attempt: 7,
        };
        assert_eq!(c.encode(), "-12#7");
        assert_eq!(Cell::decode(&c.encode()), Some(c));
        assert_eq!(
            Cell::decode("42"),
            Some(Cell {
                value: 42,
                attempt: 0
            })
        );
        for bad in [
            "",
            "#",
            "4#",
            "#4",
            "x#1",
            "1#-1",
            "1#2#3",
            "9223372036854775808",
        ] {
            assert_eq!(Cell::decode(bad), None, "{bad:?}");
        }
        let e = Cell::parse("perseus-n1", "hello").unwrap_err();
        assert!(e.definite && e.text.contains("perseus-n1"), "{}", e.text);
    }
}
