//! MongoDB: its wire protocol through the official driver, as a client protocol
//! (`mongodb-wire`) for a replica set Perseus did not start, each node's client holding a
//! direct connection to that node only ([`Route::Direct`]); and the `mongodb` preset, a
//! replica set of three members in containers from MongoDB's image (no Debian package has
//! it), whose clients the driver sends to the primary ([`Route::ReplicaSet`]), as the
//! seed's were. The preset forms the set itself (`replSetInitiate`, with the knobs).
//!
//! - A key is a document `{_id: KEY, value, attempt}` of `perseus.counters`.
//! - Read: `find` on `_id` with read concern `linearizable`, as the seed read: only the
//!   primary that a majority still follows answers it; a secondary refuses. In a lab,
//!   `--set readConcern=majority` reads what a majority has acknowledged instead.
//! - Write: an upsert replacing the document, with write concern `majority`; with `--write
//!   cas`, an update matching the whole document read (no match: a failed compare), or,
//!   for a key read absent, an insert that a duplicate `_id` refuses (a failed compare).
//! - The driver retries nothing (`retryWrites`, `retryReads` off): one request each.
//! - A server's refusal before it ran anything (not primary, a duplicate key) is definite;
//!   a write concern error, an interruption by a step-down, a broken connection or a
//!   timeout may have left the write applied: unknown.
//!
//! Documented at <https://www.mongodb.com/docs/manual/reference/read-concern-linearizable/>,
//! <https://www.mongodb.com/docs/manual/reference/write-concern/> and
//! <https://www.mongodb.com/docs/manual/reference/error-codes/>.

use super::failover::{self, Expected, Failover, Role, Settings};
use super::knob::{self, Kind, Knob};
use super::{Cell, Client, ClientError, CutOff, Database, Found, Health, Written, COMPARE_FAILED};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::{Error as MongoError, ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, ReadConcern, ServerAddress, WriteConcern};
use std::time::Duration;

pub const PORT: u16 = 27017;
const DATABASE: &str = "perseus";
const COLLECTION: &str = "counters";
/// The replica set's name, which every member is started with.
pub const REPLICA_SET: &str = "perseus";
const PROBE: Duration = Duration::from_millis(800);

/// Server error codes that refuse a request before it ran: not the primary
/// (`NotWritablePrimary`, `NotPrimaryNoSecondaryOk`, `NotPrimaryOrSecondary`), and a
/// duplicate key.
const REFUSED: &[i32] = &[10107, 13435, 13436, DUPLICATE_KEY];
const DUPLICATE_KEY: i32 = 11000;

/// The filter that finds `key`'s document.
pub fn by_key(key: &str) -> Document {
    doc! { "_id": key }
}

/// `key`'s document holding `cell`.
pub fn document(key: &str, cell: Cell) -> Document {
    doc! { "_id": key, "value": cell.value, "attempt": cell.attempt as i64 }
}

/// The update that sets `cell`.
pub fn set(cell: Cell) -> Document {
    doc! { "$set": { "value": cell.value, "attempt": cell.attempt as i64 } }
}

/// A found document's cell; a document that is not a Perseus counter is a definite error.
pub fn cell_of(key: &str, d: &Document) -> Result<Cell, ClientError> {
    let number = |name: &str| match d.get(name) {
        Some(Bson::Int64(n)) => Some(*n),
        Some(Bson::Int32(n)) => Some(i64::from(*n)),
        _ => None,
    };
    match (number("value"), number("attempt")) {
        (Some(value), Some(attempt)) if attempt >= 0 => Ok(Cell {
            value,
            attempt: attempt as u64,
        }),
        _ => Err(ClientError::definite(format!(
            "the document of {key} is not a Perseus counter: {}",
            crate::terminal::excerpt(&d.to_string(), 120)
        ))),
    }
}

/// Whether a failed request certainly did not take effect, and its text.
pub fn client_error(e: &MongoError) -> ClientError {
    let (definite, text) = match e.kind.as_ref() {
        ErrorKind::ServerSelection { message, .. } => {
            (true, format!("no server to send to: {message}"))
        }
        ErrorKind::Command(c) => (
            REFUSED.contains(&c.code),
            format!("{} ({}): {}", c.code_name, c.code, c.message),
        ),
        ErrorKind::Write(WriteFailure::WriteError(w)) => (
            REFUSED.contains(&w.code),
            format!("write error {}: {}", w.code, w.message),
        ),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => (
            false,
            format!("write concern {} ({}): {}", w.code_name, w.code, w.message),
        ),
        _ => (false, e.to_string()),
    };
    ClientError {
        definite,
        text: crate::terminal::excerpt(&text, 300),
    }
}

/// Whether `e` is the refusal of a duplicate `_id`: a compare-and-set on an absent key lost.
fn duplicate_key(e: &MongoError) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY)
        || matches!(e.kind.as_ref(), ErrorKind::Command(c) if c.code == DUPLICATE_KEY)
}

/// How a node's client reaches the replica set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// That node's member only (a direct connection, no discovery): a secondary's client
    /// is refused, as a secondary refuses.
    Direct,
    /// The replica set through that node's member first: the driver discovers the set and
    /// sends every request to the primary, as the seed's clients did.
    ReplicaSet,
}

/// The workload's read concern: `linearizable` unless the lab's `readConcern` says
/// `majority`.
fn read_concern(layout: &Layout) -> ReadConcern {
    match knob::value(layout, knob::named(KNOBS, "readConcern")) {
        "majority" => ReadConcern::majority(),
        _ => ReadConcern::linearizable(),
    }
}

/// A driver for node `node`'s client by `route`, with the seed's concerns and no retries.
/// Makes no connection until the first request.
pub fn driver(
    layout: &Layout,
    node: usize,
    route: Route,
    timeout: Duration,
) -> Result<mongodb::Client, ClientError> {
    let n = layout.nodes.len();
    let nodes: Vec<usize> = match route {
        Route::Direct => vec![node],
        Route::ReplicaSet => (0..n).map(|k| (node + k) % n).collect(),
    };
    let hosts: Vec<ServerAddress> = nodes
        .into_iter()
        .map(|i| ServerAddress::Tcp {
            host: layout.nodes[i].addr.to_string(),
            port: Some(layout.port(i, PORT)),
        })
        .collect();
    let options = ClientOptions::builder()
        .hosts(hosts)
        .direct_connection(route == Route::Direct)
        .repl_set_name((route == Route::ReplicaSet).then(|| REPLICA_SET.to_string()))
        .connect_timeout(timeout)
        .server_selection_timeout(timeout)
        .heartbeat_freq(Duration::from_millis(500))
        .retry_reads(false)
        .retry_writes(false)
        .read_concern(read_concern(layout))
        .write_concern(WriteConcern::majority())
        .app_name("perseus".to_string())
        .build();
    mongodb::Client::with_options(options)
        .map_err(|e| ClientError::definite(format!("driver: {}", client_error(&e).text)))
}

/// Runs `f` within `timeout`; past it, an unknown outcome.
async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, MongoError>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r.map_err(|e| client_error(&e)),
        Err(_) => Err(ClientError::indefinite("timed out")),
    }
}

struct MongoClient {
    counters: mongodb::Collection<Document>,
    timeout: Duration,
}

#[async_trait]
impl Client for MongoClient {
    async fn read(&mut self, key: &str) -> Result<Found, ClientError> {
        let found = within(self.timeout, async {
            self.counters.find_one(by_key(key)).await
        })
        .await?;
        Ok(Found {
            cell: found.map(|d| cell_of(key, &d)).transpose()?,
            revision: None,
        })
    }

    async fn write(&mut self, key: &str, cell: Cell) -> Result<Written, ClientError> {
        within(self.timeout, async {
            self.counters
                .replace_one(by_key(key), document(key, cell))
                .upsert(true)
                .await
        })
        .await?;
        Ok(Written::default())
    }

    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> Result<Written, ClientError> {
        match found.cell {
            Some(read) => {
                let r = within(self.timeout, async {
                    self.counters
                        .update_one(document(key, read), set(cell))
                        .await
                })
                .await?;
                if r.matched_count == 0 {
                    return Err(ClientError::definite(COMPARE_FAILED));
                }
            }
            None => {
                let r = tokio::time::timeout(
                    self.timeout,
                    self.counters.insert_one(document(key, cell)),
                )
                .await
                .map_err(|_| ClientError::indefinite("timed out"))?;
                match r {
                    Ok(_) => {}
                    Err(e) if duplicate_key(&e) => {
                        return Err(ClientError::definite(COMPARE_FAILED))
                    }
                    Err(e) => return Err(client_error(&e)),
                }
            }
        }
        Ok(Written::default())
    }
}

/// What one member says of itself and its replica set (`hello`), as far as Perseus asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The replica set's name; `None` before the set is initiated.
    pub set_name: Option<String>,
    /// It is the primary.
    pub primary: bool,
    /// It is a secondary.
    pub secondary: bool,
    /// The primary it knows of, as `host:port`.
    pub knows_primary: Option<String>,
}

/// Reads a `hello` reply.
pub fn parse_hello(d: &Document) -> Hello {
    let flag = |name: &str| d.get_bool(name).unwrap_or(false);
    Hello {
        set_name: d.get_str("setName").ok().map(str::to_string),
        primary: flag("isWritablePrimary") || flag("ismaster"),
        secondary: flag("secondary"),
        knows_primary: d.get_str("primary").ok().map(str::to_string),
    }
}

/// The layout's node at `host:port`, as a member names another.
fn node_at(layout: &Layout, addr: &str) -> Option<usize> {
    let (host, _) = addr.rsplit_once(':')?;
    layout.nodes.iter().position(|n| n.addr.to_string() == host)
}

/// Node `node`'s answer to `isMaster` (as old servers and new answer it) and its version
/// (`buildInfo`), within [`PROBE`].
async fn ask(layout: &Layout, node: usize) -> Result<(Hello, String), String> {
    let c = driver(layout, node, Route::Direct, PROBE).map_err(|e| e.text)?;
    let admin = c.database("admin");
    let hello = within(PROBE, async {
        admin.run_command(doc! { "isMaster": 1 }).await
    })
    .await
    .map_err(|e| e.text)?;
    let build = within(PROBE, async {
        admin.run_command(doc! { "buildInfo": 1 }).await
    })
    .await
    .map_err(|e| e.text)?;
    let version = build
        .get_str("version")
        .map_or("MongoDB".to_string(), |v| format!("MongoDB {v}"));
    Ok((parse_hello(&hello), version))
}

/// The health of a replica set from each member's answer: ready when every member is the
/// primary or a secondary of one set, and they agree on one primary.
pub fn judge(layout: &Layout, answers: &[Result<(Hello, String), String>]) -> Health {
    let states: Vec<Result<String, String>> = answers
        .iter()
        .map(|a| {
            let (h, version) = a.as_ref().map_err(Clone::clone)?;
            match &h.set_name {
                None => Err("not a member of a replica set yet".into()),
                Some(_) if !h.primary && !h.secondary => {
                    Err("neither primary nor secondary".into())
                }
                Some(_) if h.knows_primary.is_none() => Err("knows no primary".into()),
                Some(_) => Ok(version.clone()),
            }
        })
        .collect();
    let mut health = super::all_answer(layout, &states);
    let primaries: Vec<&str> = answers
        .iter()
        .flatten()
        .filter_map(|(h, _)| h.knows_primary.as_deref())
        .collect();
    if health.ready && primaries.windows(2).any(|w| w[0] != w[1]) {
        health.ready = false;
        health.why = format!("members disagree on the primary: {}", primaries.join(", "));
    }
    health
}

/// The node a majority of the layout names as primary, if any.
pub fn primary_of(layout: &Layout, answers: &[Result<(Hello, String), String>]) -> Option<usize> {
    let named: Vec<usize> = answers
        .iter()
        .flatten()
        .filter_map(|(h, _)| node_at(layout, h.knows_primary.as_deref()?))
        .collect();
    (0..layout.nodes.len())
        .find(|i| named.iter().filter(|n| *n == i).count() * 2 > layout.nodes.len())
}

async fn every_member(layout: &Layout) -> Vec<Result<(Hello, String), String>> {
    futures::future::join_all((0..layout.nodes.len()).map(|i| ask(layout, i))).await
}

async fn connect_to(
    layout: &Layout,
    node: usize,
    route: Route,
    timeout: Duration,
) -> Result<Box<dyn Client>, ClientError> {
    let c = driver(layout, node, route, timeout)?;
    Ok(Box::new(MongoClient {
        counters: c.database(DATABASE).collection(COLLECTION),
        timeout,
    }))
}

/// MongoDB's wire protocol as a client of a replica set Perseus did not start.
pub struct MongodbWire;

#[async_trait]
impl Database for MongodbWire {
    fn name(&self) -> &'static str {
        "mongodb-wire"
    }

    fn about(&self) -> &'static str {
        "MongoDB through its official driver, a direct connection per node to that node only: linearizable reads, majority writes; for a cluster file"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    fn client_port(&self) -> u16 {
        PORT
    }

    fn processes(&self, _layout: &Layout, _node: usize) -> Vec<ProcessSpec> {
        Vec::new()
    }

    /// Ready when every member is the primary or a secondary and they agree on the primary.
    async fn health(&self, layout: &Layout) -> Health {
        judge(layout, &every_member(layout).await)
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> Result<Box<dyn Client>, ClientError> {
        connect_to(layout, node, Route::Direct, timeout).await
    }

    fn cut_off(&self) -> CutOff {
        super::protocol_cut_off()
    }
}

/// The image the `mongodb` preset runs, pinned.
pub const IMAGE: &str = "mongo:7.0.14";
const MODEL_SOURCE: &str = "https://www.mongodb.com/docs/manual/core/replica-set-elections/ (a secondary calls an election after electionTimeoutMillis without the primary; the median time before a cluster elects a new primary should not typically exceed 12 seconds); https://www.mongodb.com/docs/manual/reference/replica-configuration/ (settings.electionTimeoutMillis, settings.heartbeatIntervalMillis)";

/// The settings `--set` changes: the first two written into the replica set's
/// configuration, MongoDB's own defaults; the last the clients' read concern.
pub const KNOBS: &[Knob] = &[
    Knob {
        name: "electionTimeoutMillis",
        default: "10000",
        kind: Kind::Number,
        about: "ms a secondary waits without the primary before it calls an election",
    },
    Knob {
        name: "heartbeatIntervalMillis",
        default: "2000",
        kind: Kind::Number,
        about: "ms between the members' heartbeats",
    },
    Knob {
        name: "readConcern",
        default: "linearizable",
        kind: Kind::OneOf(&["linearizable", "majority"]),
        about: "the clients' reads: linearizable (the seed's: only a primary a majority follows answers) or majority (what a majority has, as any primary last knew it)",
    },
];

/// A replica set of three members, one per node, in containers.
pub struct Mongodb;

/// The command line of node `node`'s member.
pub fn server_args(layout: &Layout, node: usize) -> Vec<String> {
    let n = &layout.nodes[node];
    vec![
        "--replSet".into(),
        REPLICA_SET.into(),
        "--bind_ip".into(),
        n.addr.to_string(),
        "--port".into(),
        PORT.to_string(),
        "--dbpath".into(),
        n.dir.join("data").display().to_string(),
        // A lab's members share a machine: a small cache and oplog.
        "--wiredTigerCacheSizeGB".into(),
        "0.25".into(),
        "--oplogSize".into(),
        "128".into(),
    ]
}

/// The `replSetInitiate` command that forms the set of every node, with the knobs.
pub fn initiate(layout: &Layout) -> Result<Document, String> {
    let number = |k: &Knob| {
        knob::value(layout, k)
            .parse::<i64>()
            .map_err(|_| format!("{} is not a whole number", k.name))
    };
    let members: Vec<Document> = layout
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| doc! { "_id": i as i32, "host": format!("{}:{PORT}", n.addr) })
        .collect();
    Ok(doc! {
        "replSetInitiate": {
            "_id": REPLICA_SET,
            "members": members,
            "settings": {
                "electionTimeoutMillis": number(knob::named(KNOBS, "electionTimeoutMillis"))?,
                "heartbeatIntervalMillis": number(knob::named(KNOBS, "heartbeatIntervalMillis"))?,
            },
        }
    })
}

#[async_trait]
impl Database for Mongodb {
    fn name(&self) -> &'static str {
        "mongodb"
    }

    fn image(&self) -> Option<&'static str> {
        Some(IMAGE)
    }

    fn client(&self) -> &'static str {
        "mongodb-wire, to the primary"
    }

    fn ready_when(&self) -> &'static str {
        "every member to answer isMaster as the primary or a secondary of one replica set, all naming one primary (after replSetInitiate through n1)"
    }

    fn about(&self) -> &'static str {
        "MongoDB 7.0, a replica set of three members, in containers (--backend docker); linearizable reads and majority writes, each node's client sent by the driver to the primary, as the seed's"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[("mongod", super::NO_PACKAGE)]
    }

    fn run_here(&self) -> bool {
        false
    }

    fn client_port(&self) -> u16 {
        PORT
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        vec![ProcessSpec {
            name: "mongod".into(),
            program: "mongod".into(),
            args: server_args(layout, node),
            env: Vec::new(),
            user: None,
            image: None,
        }]
    }

    /// Initiates the set through the first member once every member answers; a set
    /// already initiated (code 23, `AlreadyInitialized`) is formed.
    async fn form(&self, layout: &Layout) -> Result<(), String> {
        let answers = every_member(layout).await;
        if answers.iter().flatten().any(|(h, _)| h.set_name.is_some()) {
            return Ok(());
        }
        if let Some((i, Err(why))) = answers.iter().enumerate().find(|(_, a)| a.is_err()) {
            return Err(format!("{}: {why}", layout.nodes[i].name));
        }
        let command = initiate(layout)?;
        let c = driver(layout, 0, Route::Direct, PROBE).map_err(|e| e.text)?;
        let admin = c.database("admin");
        match within(Duration::from_secs(10), async {
            admin.run_command(command).await
        })
        .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.text.contains("(23)") => Ok(()),
            Err(e) => Err(format!("replSetInitiate: {}", e.text)),
        }
    }

    /// Ready when every member is the primary or a secondary and they agree on the primary.
    async fn health(&self, layout: &Layout) -> Health {
        MongodbWire.health(layout).await
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
        connect_to(layout, node, Route::ReplicaSet, timeout).await
    }

    /// A cut-off secondary's client, which reaches the primary itself, is sent there as
    /// before.
    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: true,
            settles: Duration::ZERO,
            source: MODEL_SOURCE,
        }
    }
}

#[async_trait]
impl super::Leadership for Mongodb {
    /// The member a majority names as primary.
    async fn leader(&self, layout: &Layout) -> Option<usize> {
        primary_of(layout, &every_member(layout).await)
    }
}

impl Mongodb {
    /// How long the set is without a primary when the primary is cut off: the secondaries
    /// wait out the election timeout (from their last heartbeat), then elect within a
    /// couple of heartbeats; a request in flight waits out the client's timeout.
    fn election(s: &Settings, client_timeout: Duration) -> Option<(Duration, String)> {
        let election = failover::ms(s, "electionTimeoutMillis", 1)?;
        let heartbeat = failover::ms(s, "heartbeatIntervalMillis", 1)?;
        let high = election + 2 * heartbeat + client_timeout;
        Some((
            high,
            format!(
                "the secondaries call an election electionTimeoutMillis {} after they last \
                 heard the primary, which a heartbeat of heartbeatIntervalMillis {} may \
                 precede, and elect within another; a request in flight waits out the \
                 client's timeout ({})",
                failover::show(election),
                failover::show(heartbeat),
                failover::show(client_timeout)
            ),
        ))
    }
}

/// Only the primary's client is served; the set fails over when the primary is cut off.
impl Failover for Mongodb {
    fn expect(&self, s: &Settings, role: Role, client_timeout: Duration) -> Option<Expected> {
        let (high, why) = Self::election(s, client_timeout)?;
        let bounds = match role {
            Role::Leader => failover::both(Duration::ZERO, high, why),
            Role::Follower => failover::unaffected(
                "a secondary cut off leaves the primary a majority, and every client is \
                 sent to the primary",
            ),
            Role::Unknown => return None,
        };
        Some(Expected {
            bounds,
            source: MODEL_SOURCE,
        })
    }

    fn rejoin(
        &self,
        s: &Settings,
        _role: Role,
        _isolated: Duration,
        client_timeout: Duration,
    ) -> Option<Expected> {
        Self::election(s, client_timeout)?;
        Some(Expected {
            bounds: failover::after(
                (Duration::ZERO, Duration::ZERO),
                (Duration::ZERO, Duration::ZERO),
                "a returning member rejoins as a secondary (an old primary stepped down \
                      and rolls back what the majority lacks) and the primary stays, so \
                      nobody stops; every client is sent to the primary, so recovery time \
                      is none either"
                    .into(),
            ),
            source: MODEL_SOURCE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_hold_the_cell_and_a_compare_matches_the_cell_read() {
        let c = Cell {
            value: 41,
            attempt: 7,
        };
        let d = document("perseus-n1", c);
        assert_eq!(d.get_str("_id").unwrap(), "perseus-n1");
        assert_eq!(cell_of("perseus-n1", &d).unwrap(), c);
        let s = set(Cell {
            value: 42,
            attempt: 8,
        });
        let inner = s.get_document("$set").unwrap();
        assert_eq!(inner.get_i64("value").unwrap(), 42);
        assert_eq!(inner.get_i64("attempt").unwrap(), 8);
        // A value some other client stored as a 32-bit number still reads.
        let small = doc! { "_id": "k", "value": 3i32, "attempt": 1i32 };
        assert_eq!(cell_of("k", &small).unwrap().value, 3);
        for bad in [
            doc! { "_id": "k" },
            doc! { "_id": "k", "value": "3", "attempt": 1i64 },
            doc! { "_id": "k", "value": 3i64, "attempt": -1i64 },
        ] {
            let e = cell_of("k", &bad).unwrap_err();
            assert!(
                e.definite && e.text.contains("not a Perseus counter"),
                "{}",
                e.text
            );
        }
    }

    /// Errors as the server replies them (code, codeName, errmsg): a refusal by a secondary
    /// or of a duplicate key is definite; a step-down's interruption, a write concern
    /// error, a broken connection may have left the write applied.
    #[test]
    fn a_refusal_is_definite_and_an_interrupted_write_unknown() {
        use mongodb::bson::deserialize_from_document as from_document;
        use mongodb::error::{CommandError, WriteConcernError, WriteError};
        let command = |code: i32, name: &str| -> MongoError {
            let c: CommandError =
                from_document(doc! { "code": code, "codeName": name, "errmsg": "x" }).unwrap();
            ErrorKind::Command(c).into()
        };
        let e = client_error(&command(10107, "NotWritablePrimary"));
        assert!(
            e.definite && e.text == "NotWritablePrimary (10107): x",
            "{}",
            e.text
        );
        assert!(client_error(&command(13435, "NotPrimaryNoSecondaryOk")).definite);
        assert!(!client_error(&command(11602, "InterruptedDueToReplStateChange")).definite);
        assert!(!client_error(&command(189, "PrimarySteppedDown")).definite);
        let dup: WriteError =
            from_document(doc! { "code": DUPLICATE_KEY, "errmsg": "E11000 duplicate key" })
                .unwrap();
        let dup: MongoError = ErrorKind::Write(WriteFailure::WriteError(dup)).into();
        assert!(duplicate_key(&dup) && client_error(&dup).definite);
        let wc: WriteConcernError = from_document(
            doc! { "code": 64, "codeName": "WriteConcernFailed", "errmsg": "waiting for replication timed out" },
        )
        .unwrap();
        let wc: MongoError = ErrorKind::Write(WriteFailure::WriteConcernError(wc)).into();
        let e = client_error(&wc);
        assert!(
            !e.definite && e.text.contains("WriteConcernFailed"),
            "{}",
            e.text
        );
        assert!(!duplicate_key(&wc));
        let io: MongoError = ErrorKind::Io(std::sync::Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )))
        .into();
        assert!(!client_error(&io).definite);
    }

    /// Replies as the server documents them: a primary, a secondary, a member before the
    /// set is initiated.
    #[test]
    fn hello_replies_say_who_is_primary() {
        let primary = doc! {
            "isWritablePrimary": true, "secondary": false, "setName": "perseus",
            "primary": "198.18.1.1:27017", "hosts": ["198.18.1.1:27017"], "ok": 1.0,
        };
        let secondary = doc! {
            "isWritablePrimary": false, "secondary": true, "setName": "perseus",
            "primary": "198.18.1.1:27017", "ok": 1.0,
        };
        let alone = doc! { "isWritablePrimary": false, "secondary": false, "ok": 1.0 };
        let h = parse_hello(&primary);
        assert!(h.primary && !h.secondary && h.set_name.as_deref() == Some("perseus"));
        let l = Layout::for_tests(None);
        let v = |d: &Document| Ok((parse_hello(d), "MongoDB 7.0.14".to_string()));
        let all = [v(&primary), v(&secondary), v(&secondary)];
        let health = judge(&l, &all);
        assert!(health.ready, "{}", health.why);
        assert_eq!(health.version.as_deref(), Some("MongoDB 7.0.14"));
        assert_eq!(primary_of(&l, &all), Some(0));
        let young = [v(&alone), v(&alone), v(&alone)];
        let h = judge(&l, &young);
        assert!(!h.ready && h.why.contains("not a member of a replica set yet"));
        assert_eq!(primary_of(&l, &young), None);
        // One member still names an old primary: not ready, and no majority for either.
        let mut other = secondary.clone();
        other.insert("primary", "198.18.1.2:27017");
        let split = [v(&primary), v(&other), Err("timed out".to_string())];
        let h = judge(&l, &split);
        assert!(!h.ready);
        assert_eq!(primary_of(&l, &split), None);
    }

    #[test]
    fn the_set_is_initiated_with_every_node_and_the_knobs() {
        let mut l = Layout::for_tests(None);
        l.settings = [("electionTimeoutMillis".to_string(), "5000".to_string())].into();
        let c = initiate(&l).unwrap();
        let config = c.get_document("replSetInitiate").unwrap();
        assert_eq!(config.get_str("_id").unwrap(), REPLICA_SET);
        let hosts: Vec<&str> = config
            .get_array("members")
            .unwrap()
            .iter()
            .map(|m| m.as_document().unwrap().get_str("host").unwrap())
            .collect();
        assert_eq!(
            hosts,
            ["198.18.1.1:27017", "198.18.1.2:27017", "198.18.1.3:27017"]
        );
        let settings = config.get_document("settings").unwrap();
        assert_eq!(settings.get_i64("electionTimeoutMillis").unwrap(), 5000);
        assert_eq!(settings.get_i64("heartbeatIntervalMillis").unwrap(), 2000);
        let args = server_args(&l, 1).join(" ");
        assert!(
            args.starts_with(
                "--replSet perseus --bind_ip 198.18.1.2 --port 27017 --dbpath /x/n2/data"
            ),
            "{args}"
        );
        assert!(
            !initiate(&l).unwrap().to_string().contains("readConcern"),
            "a client setting, not the set's"
        );
        assert_eq!(read_concern(&l), ReadConcern::linearizable());
        l.settings
            .insert("readConcern".to_string(), "majority".to_string());
        assert_eq!(read_concern(&l), ReadConcern::majority());
        assert!(!Mongodb.run_here());
    }

    /// 10 s of election timeout, a heartbeat, another, a 1 s timeout: up to 15 s when the
    /// primary is cut off, the documented 12 s median within it; nothing for a secondary.
    #[test]
    fn the_model_is_the_election_of_a_new_primary() {
        let layout = Layout::for_tests(None);
        let s = knob::effective(&layout, KNOBS);
        let t = Duration::from_secs(1);
        let e = Mongodb.expect(&s, Role::Leader, t).unwrap();
        assert_eq!(e.bounds[0].high.as_millis(), 15_000);
        let e = Mongodb.expect(&s, Role::Follower, t).unwrap();
        assert_eq!(e.bounds[0].high, Duration::ZERO);
        let r = Mongodb
            .rejoin(&s, Role::Leader, Duration::from_secs(30), t)
            .unwrap();
        assert_eq!(r.bounds.len(), 2, "both recovery figures: none");
    }
}
