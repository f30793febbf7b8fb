//! RethinkDB: ReQL as a client protocol (`reql`) for a cluster Perseus did not start, each
//! node's client connected to that node only; and the `rethinkdb` preset, a server per node
//! in containers from RethinkDB's image (no Debian package has it), with one table of three
//! replicas, measured with that client.
//!
//! - A key is a document `{id: KEY, value, attempt}` of the table `perseus.counters`.
//! - Read: `get` with `read_mode: "majority"`, as the seed's reads were.
//! - Write: `insert` with `conflict: "replace"` and hard durability; with `--write cas`, a
//!   `replace` whose function keeps the document unless it still holds the value and attempt
//!   read (kept: a failed compare), or, for a key read absent, an `insert` that a duplicate
//!   primary key refuses (a failed compare).
//! - A runtime error of type `OP_FAILED` or a query refused as such did nothing: definite;
//!   `OP_INDETERMINATE`, a write whose result says it lost contact, a broken connection or
//!   a timeout may have done it: unknown.
//!
//! RethinkDB documents no failover timing (its servers declare a peer lost after a
//! heartbeat timeout it does not give, then elect a new primary replica): the preset says
//! so and has no model.
//!
//! Documented at <https://rethinkdb.com/api/javascript/> (`get`, `insert`, `replace`,
//! `table`'s `read_mode`) and <https://rethinkdb.com/docs/failover/>.

pub mod wire;

use super::{Cell, Client, ClientError, CutOff, Database, Found, Health, Written, COMPARE_FAILED};
use crate::error::{Error, Result};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use wire::{t, term, to, Answer, Connection};

pub const PORT: u16 = 28015;
/// The port the servers reach each other on.
pub const CLUSTER_PORT: u16 = 29015;
const DATABASE: &str = "perseus";
const TABLE: &str = "counters";
const PROBE: Duration = Duration::from_millis(800);
/// The administrator, with no password, as a new server has them.
const CREDENTIALS: (&str, &str) = ("admin", "");
const SOURCE: &str = "https://rethinkdb.com/docs/failover/ (a table whose primary replica is lost elects a new one automatically once a majority of its voting replicas remain; no timing is given)";

/// The table's term: `r.db("perseus").table("counters", {read_mode: "majority"})`.
pub fn table() -> Value {
    to(
        term::TABLE,
        vec![t(term::DB, vec![json!(DATABASE)]), json!(TABLE)],
        json!({ "read_mode": "majority" }),
    )
}

/// `key`'s document holding `cell`.
pub fn document(key: &str, cell: Cell) -> Value {
    json!({ "id": key, "value": cell.value, "attempt": cell.attempt })
}

/// The read of `key`.
pub fn get(key: &str) -> Value {
    t(term::GET, vec![table(), json!(key)])
}

/// The blind write of `cell` to `key`, or (`cas`) its insert that refuses a present key.
pub fn insert(key: &str, cell: Cell, cas: bool) -> Value {
    let conflict = if cas { "error" } else { "replace" };
    to(
        term::INSERT,
        vec![table(), document(key, cell)],
        json!({ "conflict": conflict, "durability": "hard" }),
    )
}

/// The compare-and-set of `key` from `read` to `cell`: `replace` with
/// `function(row) { return r.branch(row("value").eq(V).and(row("attempt").eq(A)), NEW, row) }`.
pub fn replace_if(key: &str, read: Cell, cell: Cell) -> Value {
    let row = || t(term::VAR, vec![json!(1)]);
    let field = |name: &str, v: Value| {
        t(
            term::EQ,
            vec![t(term::GET_FIELD, vec![row(), json!(name)]), v],
        )
    };
    let unchanged = t(
        term::AND,
        vec![
            field("value", json!(read.value)),
            field("attempt", json!(read.attempt)),
        ],
    );
    let function = t(
        term::FUNC,
        vec![
            t(term::MAKE_ARRAY, vec![json!(1)]),
            t(term::BRANCH, vec![unchanged, document(key, cell), row()]),
        ],
    );
    to(
        term::REPLACE,
        vec![get(key), function],
        json!({ "durability": "hard" }),
    )
}

/// A refusal's outcome: `OP_INDETERMINATE` may have happened; everything else did not.
pub fn refusal(error: u64, text: &str) -> ClientError {
    let text = crate::terminal::excerpt(text, 300);
    if error == wire::error::OP_INDETERMINATE {
        ClientError::indefinite(text)
    } else {
        ClientError::definite(text)
    }
}

/// A read's answer: the document's cell, or absent (`null`).
pub fn parse_read(key: &str, v: &Value) -> std::result::Result<Found, ClientError> {
    if v.is_null() {
        return Ok(Found::default());
    }
    let value = v["value"].as_i64();
    let attempt = v["attempt"].as_u64();
    match (value, attempt) {
        (Some(value), Some(attempt)) => Ok(Found {
            cell: Some(Cell { value, attempt }),
            revision: None,
        }),
        _ => Err(ClientError::definite(format!(
            "the document of {key} is not a Perseus counter: {}",
            crate::terminal::excerpt(&v.to_string(), 120)
        ))),
    }
}

/// A write's result (`{inserted, replaced, unchanged, errors, first_error}`): written, a
/// failed compare (`unchanged`, or a duplicate key for a compare-and-set's insert), or
/// refused.
pub fn parse_write(v: &Value) -> std::result::Result<Written, ClientError> {
    let count = |name: &str| v[name].as_u64().unwrap_or(0);
    if count("errors") > 0 {
        let text = v["first_error"].as_str().unwrap_or("a write error");
        if text.contains("Duplicate primary key") {
            return Err(ClientError::definite(COMPARE_FAILED));
        }
        // "Lost contact" with the primary replica: the write may have been done.
        let unknown = text.to_ascii_lowercase().contains("lost contact");
        let text = crate::terminal::excerpt(text, 300);
        return Err(ClientError {
            definite: !unknown,
            text,
        });
    }
    if count("inserted") + count("replaced") == 1 {
        Ok(Written::default())
    } else if count("unchanged") == 1 {
        Err(ClientError::definite(COMPARE_FAILED))
    } else {
        Err(ClientError::indefinite(format!(
            "an unexpected write result: {}",
            crate::terminal::excerpt(&v.to_string(), 120)
        )))
    }
}

struct ReqlClient {
    addr: SocketAddr,
    credentials: (String, String),
    timeout: Duration,
    /// `None` after an error, which may leave a response unread: the next request opens
    /// another.
    connection: Option<Connection>,
}

impl ReqlClient {
    /// Runs `query`; a refusal is definite unless indeterminate, anything after sending
    /// that is not an answer is unknown.
    async fn run(&mut self, query: &Value) -> std::result::Result<Value, ClientError> {
        let mut c = match self.connection.take() {
            Some(c) => c,
            None => Connection::open(
                self.addr,
                &self.credentials.0,
                &self.credentials.1,
                self.timeout,
            )
            .await
            .map_err(ClientError::definite)?,
        };
        match tokio::time::timeout(self.timeout, c.run(query)).await {
            Err(_) => Err(ClientError::indefinite("timed out")),
            Ok(Err(e)) => Err(ClientError::indefinite(e)),
            Ok(Ok(Answer::Success(v))) => {
                self.connection = Some(c);
                Ok(v)
            }
            Ok(Ok(Answer::Error { error, text, .. })) => {
                self.connection = Some(c);
                Err(refusal(error, &text))
            }
        }
    }
}

#[async_trait]
impl Client for ReqlClient {
    async fn read(&mut self, key: &str) -> std::result::Result<Found, ClientError> {
        let v = self.run(&get(key)).await?;
        parse_read(key, &v)
    }

    async fn write(&mut self, key: &str, cell: Cell) -> std::result::Result<Written, ClientError> {
        let v = self.run(&insert(key, cell, false)).await?;
        parse_write(&v)
    }

    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> std::result::Result<Written, ClientError> {
        let query = match found.cell {
            Some(read) => replace_if(key, read, cell),
            None => insert(key, cell, true),
        };
        let v = self.run(&query).await?;
        parse_write(&v)
    }
}

fn addr(layout: &Layout, node: usize) -> SocketAddr {
    SocketAddr::new(layout.nodes[node].addr.into(), layout.port(node, PORT))
}

/// Node `node`'s answer: its version, if it sees every server of the layout.
async fn ask(layout: &Layout, node: usize) -> std::result::Result<String, String> {
    let (user, password) = layout.credentials(CREDENTIALS);
    let mut c = Connection::open(addr(layout, node), user, password, PROBE).await?;
    let servers = t(
        term::COUNT,
        vec![t(
            term::TABLE,
            vec![
                t(term::DB, vec![json!("rethinkdb")]),
                json!("server_status"),
            ],
        )],
    );
    let answer = tokio::time::timeout(PROBE, c.run(&servers))
        .await
        .map_err(|_| "timed out".to_string())??;
    match answer {
        Answer::Success(v) if v.as_u64() == Some(layout.nodes.len() as u64) => {
            Ok(format!("RethinkDB {}", c.version))
        }
        Answer::Success(v) => Err(format!("sees {v} servers of {}", layout.nodes.len())),
        Answer::Error { text, .. } => Err(text),
    }
}

async fn health(layout: &Layout) -> Health {
    let answers = futures::future::join_all((0..layout.nodes.len()).map(|i| ask(layout, i))).await;
    super::all_answer(layout, &answers)
}

async fn connect_to(
    layout: &Layout,
    node: usize,
    timeout: Duration,
) -> std::result::Result<Box<dyn Client>, ClientError> {
    let (user, password) = layout.credentials(CREDENTIALS);
    Ok(Box::new(ReqlClient {
        addr: addr(layout, node),
        credentials: (user.to_string(), password.to_string()),
        timeout,
        connection: None,
    }))
}

/// ReQL as a client of a RethinkDB cluster Perseus did not start.
pub struct Reql;

#[async_trait]
impl Database for Reql {
    fn name(&self) -> &'static str {
        "reql"
    }

    fn about(&self) -> &'static str {
        "RethinkDB's ReQL (V1_0, SCRAM-SHA-256), a client per node to that node only: majority reads, hard durability, a conditional replace for --write cas; for a cluster file"
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

    /// Ready when every node answers and sees every server.
    async fn health(&self, layout: &Layout) -> Health {
        health(layout).await
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> std::result::Result<Box<dyn Client>, ClientError> {
        connect_to(layout, node, timeout).await
    }

    fn cut_off(&self) -> CutOff {
        super::protocol_cut_off()
    }
}

/// The image the `rethinkdb` preset runs, pinned.
pub const IMAGE: &str = "rethinkdb:2.4.4-bookworm-slim";

/// A server per node, in containers, and a table of three replicas.
pub struct Rethinkdb;

/// The command line of node `node`'s server: it joins every other node.
pub fn server_args(layout: &Layout, node: usize) -> Vec<String> {
    let n = &layout.nodes[node];
    let mut args = vec![
        "--server-name".to_string(),
        n.name.clone(),
        "--bind".into(),
        n.addr.to_string(),
        "--driver-port".into(),
        PORT.to_string(),
        "--cluster-port".into(),
        CLUSTER_PORT.to_string(),
        "--no-http-admin".into(),
        "--directory".into(),
        n.dir.join("data").join("rethinkdb").display().to_string(),
        "--cache-size".into(),
        "128".into(),
    ];
    for (i, m) in layout.nodes.iter().enumerate() {
        if i != node {
            args.push("--join".into());
            args.push(format!("{}:{CLUSTER_PORT}", m.addr));
        }
    }
    args
}

#[async_trait]
impl Database for Rethinkdb {
    fn name(&self) -> &'static str {
        "rethinkdb"
    }

    fn image(&self) -> Option<&'static str> {
        Some(IMAGE)
    }

    fn client(&self) -> &'static str {
        "reql"
    }

    fn ready_when(&self) -> &'static str {
        "every server to answer the handshake and count three servers in rethinkdb.server_status"
    }

    fn about(&self) -> &'static str {
        "RethinkDB 2.4, a server per node, one table of three replicas, in containers (--backend docker); ReQL to the node's own server; no documented failover timing"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[("rethinkdb", super::NO_PACKAGE)]
    }

    fn run_here(&self) -> bool {
        false
    }

    fn client_port(&self) -> u16 {
        PORT
    }

    fn peer_port(&self) -> u16 {
        CLUSTER_PORT
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        vec![ProcessSpec {
            name: "rethinkdb".into(),
            program: "rethinkdb".into(),
            args: server_args(layout, node),
            env: Vec::new(),
            user: None,
            image: None,
        }]
    }

    /// Ready when every server answers and sees every other.
    async fn health(&self, layout: &Layout) -> Health {
        health(layout).await
    }

    /// Makes the database and the table (one shard, a replica per server) through the
    /// first node, and waits, at most a minute, until a majority read of it answers.
    async fn setup(&self, layout: &Layout) -> Result<()> {
        let (user, password) = layout.credentials(CREDENTIALS);
        let timeout = Duration::from_secs(10);
        let fail = |what: &str, e: String| Error::Database(format!("{what}: {e}"));
        let mut c = Connection::open(addr(layout, 0), user, password, timeout)
            .await
            .map_err(|e| fail("connect to n1", e))?;
        let create = [
            t(term::DB_CREATE, vec![json!(DATABASE)]),
            to(
                term::TABLE_CREATE,
                vec![t(term::DB, vec![json!(DATABASE)]), json!(TABLE)],
                json!({ "shards": 1, "replicas": layout.nodes.len() }),
            ),
        ];
        for q in &create {
            match tokio::time::timeout(timeout, c.run(q)).await {
                Ok(Ok(Answer::Success(_))) => {}
                Ok(Ok(Answer::Error { text, .. })) if text.contains("already exists") => {}
                Ok(Ok(Answer::Error { text, .. })) => return Err(fail("create", text)),
                Ok(Err(e)) => return Err(fail("create", e)),
                Err(_) => return Err(fail("create", "timed out".into())),
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while std::time::Instant::now() < deadline {
            match tokio::time::timeout(timeout, c.run(&get("perseus-ready"))).await {
                Ok(Ok(Answer::Success(_))) => return Ok(()),
                Ok(Ok(Answer::Error { text, .. })) => last = text,
                Ok(Err(e)) => return Err(fail("read the new table", e)),
                Err(_) => last = "timed out".into(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(fail("the table never served a majority read", last))
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> std::result::Result<Box<dyn Client>, ClientError> {
        connect_to(layout, node, timeout).await
    }

    /// A cut-off server reaches no majority of the table's replicas: its client's majority
    /// reads and writes fail. When it does so RethinkDB does not document.
    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: false,
            settles: Duration::from_secs(10),
            source: SOURCE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queries as ReQL's JSON terms, each term number as `ql2.proto` gives it.
    #[test]
    fn the_queries_are_the_documented_terms() {
        let c = Cell {
            value: 4,
            attempt: 9,
        };
        assert_eq!(
            get("k").to_string(),
            r#"[16,[[15,[[14,["perseus"]],"counters"],{"read_mode":"majority"}],"k"]]"#
        );
        assert_eq!(
            insert("k", c, false)[2],
            json!({"conflict": "replace", "durability": "hard"})
        );
        assert_eq!(insert("k", c, true)[2]["conflict"], "error");
        assert_eq!(insert("k", c, true)[1][1], document("k", c));
        let r = replace_if(
            "k",
            c,
            Cell {
                value: 5,
                attempt: 10,
            },
        );
        assert_eq!(r[0], 55);
        let f = &r[1][1];
        assert_eq!(f[0], 69, "a function");
        assert_eq!(f[1][0], json!([2, [1]]), "of one variable");
        let branch = &f[1][1];
        assert_eq!(branch[0], 65);
        assert_eq!(
            branch[1][0].to_string(),
            r#"[67,[[17,[[31,[[10,[1]],"value"]],4]],[17,[[31,[[10,[1]],"attempt"]],9]]]]"#
        );
        assert_eq!(branch[1][1], json!({"id": "k", "value": 5, "attempt": 10}));
        assert_eq!(branch[1][2], json!([10, [1]]), "else the row as it is");
    }

    #[test]
    fn write_results_say_written_compare_failed_or_refused() {
        assert!(parse_write(&json!({"inserted": 1, "errors": 0})).is_ok());
        assert!(parse_write(&json!({"replaced": 1, "unchanged": 0, "errors": 0})).is_ok());
        let e = parse_write(&json!({"unchanged": 1, "errors": 0})).unwrap_err();
        assert!(e.definite && e.text == COMPARE_FAILED);
        let e = parse_write(&json!({"errors": 1, "first_error": "Duplicate primary key `id`: …"}))
            .unwrap_err();
        assert!(e.definite && e.text == COMPARE_FAILED);
        let e = parse_write(&json!({"errors": 1, "first_error": "Cannot perform write: lost contact with primary replica"}))
            .unwrap_err();
        assert!(!e.definite, "{}", e.text);
        let e = parse_write(&json!({"errors": 1, "first_error": "Cannot perform write: primary replica for shard [\"-inf\", \"+inf\") of table `perseus.counters` is not available"}))
            .unwrap_err();
        assert!(e.definite, "{}", e.text);
        assert!(!parse_write(&json!({"skipped": 1})).unwrap_err().definite);
        assert!(!refusal(wire::error::OP_INDETERMINATE, "x").definite);
        assert!(refusal(wire::error::OP_FAILED, "x").definite);
    }

    #[test]
    fn reads_find_the_cell_or_nothing() {
        assert_eq!(parse_read("k", &Value::Null).unwrap(), Found::default());
        let f = parse_read("k", &json!({"id": "k", "value": -3, "attempt": 2})).unwrap();
        assert_eq!(
            f.cell,
            Some(Cell {
                value: -3,
                attempt: 2
            })
        );
        let e = parse_read("k", &json!({"id": "k", "value": "x"})).unwrap_err();
        assert!(e.definite && e.text.contains("not a Perseus counter"));
    }

    #[test]
    fn every_server_joins_the_others_and_binds_its_own_address() {
        let l = Layout::for_tests(None);
        let args = server_args(&l, 1).join(" ");
        assert!(
            args.starts_with(
                "--server-name n2 --bind 198.18.1.2 --driver-port 28015 --cluster-port 29015"
            ),
            "{args}"
        );
        assert!(
            args.ends_with("--join 198.18.1.1:29015 --join 198.18.1.3:29015"),
            "{args}"
        );
        assert!(args.contains("--directory /x/n2/data/rethinkdb "), "{args}");
        assert!(
            Rethinkdb.failover().is_none(),
            "RethinkDB documents no timing"
        );
        assert!(!Rethinkdb.run_here());
    }
}
