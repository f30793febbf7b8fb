//! The PostgreSQL-protocol client, and `postgres`, the protocol on its own.
//!
//! The seed's table is `perseus_counters` (key, value, attempt); a read is a SELECT, a blind
//! write an upsert, a compare-and-set an UPDATE that matches only the row as read (or, for a
//! key read absent, an INSERT that does nothing if the key exists by now). A server's
//! refusal (an SQL error) certainly did not take effect; a broken connection may have.
//!
//! Two ways to reach a node ([`Route`]): `Plain`, the node's own server and no other (the
//! seed's client, for any database that speaks the protocol: CockroachDB, YugabyteDB's
//! YSQL, a PostgreSQL of your own); `Failover`, a multi-host connection, this node first,
//! that settles on whichever server accepts writes, as PostgreSQL's drivers fail over
//! (Patroni's clients).
//!
//! [`Postgres`] is the protocol as a client for a cluster Perseus did not start (`database =
//! "postgres"` in a cluster file): it starts nothing, and each node's client talks to that
//! node only.

use super::{Cell, Client, ClientError, CutOff, Database, Found, Health, Written, COMPARE_FAILED};
use crate::error::{Error, Result};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::NoTls;

pub const PORT: u16 = 5432;
pub const TABLE: &str = "perseus_counters";
/// Creates the seed's table, idempotently.
pub const SETUP: &str = "CREATE TABLE IF NOT EXISTS perseus_counters \
                         (key text PRIMARY KEY, value bigint NOT NULL, attempt bigint NOT NULL)";
const PROBE: Duration = Duration::from_millis(800);
/// The account a `postgres` cluster file names none for.
const DEFAULT_CREDENTIALS: (&str, &str) = ("postgres", "");

/// How a node's client reaches a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// That node's server only.
    Plain,
    /// Every node's server, that node's first, settling on one that accepts writes.
    Failover,
}

/// The connection settings of node `node`'s client as `(user, password)`, at each node's own
/// port (`default_port` where the layout names none).
pub fn config(
    layout: &Layout,
    node: usize,
    route: Route,
    credentials: (&str, &str),
    default_port: u16,
    timeout: Duration,
) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.user(credentials.0)
        .password(credentials.1)
        .dbname("postgres")
        .connect_timeout(timeout);
    let n = layout.nodes.len();
    let hosts: Vec<usize> = match route {
        Route::Plain => vec![node],
        Route::Failover => {
            c.target_session_attrs(TargetSessionAttrs::ReadWrite);
            (0..n).map(|k| (node + k) % n).collect()
        }
    };
    for i in hosts {
        c.host(layout.nodes[i].addr.to_string())
            .port(layout.port(i, default_port));
    }
    c
}

/// A connection made within `timeout`.
pub async fn open(
    config: &tokio_postgres::Config,
    timeout: Duration,
) -> std::result::Result<tokio_postgres::Client, ClientError> {
    let (client, connection) = tokio::time::timeout(timeout, config.connect(NoTls))
        .await
        .map_err(|_| ClientError::definite("connect: timed out"))?
        .map_err(|e| ClientError::definite(format!("connect: {}", describe(&e))))?;
    tokio::spawn(connection);
    Ok(client)
}

/// A workload client on `config`, noting the server it settled on.
pub async fn client(
    config: &tokio_postgres::Config,
    timeout: Duration,
) -> std::result::Result<Box<dyn Client>, ClientError> {
    let client = open(config, timeout).await?;
    let server = tokio::time::timeout(
        timeout,
        client.query_one("SELECT host(inet_server_addr())", &[]),
    )
    .await
    .ok()
    .and_then(|r| r.ok())
    .and_then(|row| row.get::<_, Option<String>>(0))
    .and_then(|a| a.parse().ok());
    Ok(Box::new(PgClient { client, server }))
}

/// A workload client of node `node`'s own server at `port` (the node's in the layout, if
/// it names one) as `credentials`: a database that speaks PostgreSQL's protocol on every node.
pub async fn plain_client(
    layout: &Layout,
    node: usize,
    port: u16,
    credentials: (&str, &str),
    timeout: Duration,
) -> std::result::Result<Box<dyn Client>, ClientError> {
    let c = config(layout, node, Route::Plain, credentials, port, timeout);
    client(&c, timeout).await
}

/// An error's text: the SQLSTATE and the server's message where the server refused.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Whether a failed statement certainly did not take effect: the server refused it (an
/// SQL error), as opposed to a connection that broke while it ran, or a server that says
/// it does not know (`40003`, statement completion unknown: CockroachDB's ambiguous result).
pub fn client_error(e: tokio_postgres::Error) -> ClientError {
    let unknown = e.as_db_error().is_none_or(|db| {
        *db.code() == tokio_postgres::error::SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN
    });
    ClientError {
        definite: !unknown,
        text: describe(&e),
    }
}

struct PgClient {
    client: tokio_postgres::Client,
    server: Option<Ipv4Addr>,
}

#[async_trait]
impl Client for PgClient {
    async fn read(&mut self, key: &str) -> std::result::Result<Found, ClientError> {
        let row = self
            .client
            .query_opt(
                &format!("SELECT value, attempt FROM {TABLE} WHERE key = $1"),
                &[&key],
            )
            .await
            .map_err(client_error)?;
        Ok(Found {
            cell: row.map(|r| Cell {
                value: r.get::<_, i64>(0),
                attempt: r.get::<_, i64>(1) as u64,
            }),
            revision: None,
        })
    }

    async fn write(&mut self, key: &str, cell: Cell) -> std::result::Result<Written, ClientError> {
        let attempt = cell.attempt as i64;
        self.client
            .execute(
                &format!(
                    "INSERT INTO {TABLE} (key, value, attempt) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                     attempt = excluded.attempt"
                ),
                &[&key, &cell.value, &attempt],
            )
            .await
            .map_err(client_error)?;
        Ok(Written::default())
    }

    /// An UPDATE that matches only the row as read, or, for a key read absent, an INSERT
    /// that does nothing if the key exists by now.
    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> std::result::Result<Written, ClientError> {
        let (value, attempt) = (cell.value, cell.attempt as i64);
        let changed = match found.cell {
            Some(old) => {
                let (old_value, old_attempt) = (old.value, old.attempt as i64);
                self.client
                    .execute(
                        &format!(
                            "UPDATE {TABLE} SET value = $2, attempt = $3 \
                             WHERE key = $1 AND value = $4 AND attempt = $5"
                        ),
                        &[&key, &value, &attempt, &old_value, &old_attempt],
                    )
                    .await
            }
            None => {
                self.client
                    .execute(
                        &format!(
                            "INSERT INTO {TABLE} (key, value, attempt) VALUES ($1, $2, $3) \
                             ON CONFLICT (key) DO NOTHING"
                        ),
                        &[&key, &value, &attempt],
                    )
                    .await
            }
        }
        .map_err(client_error)?;
        if changed == 0 {
            return Err(ClientError::definite(COMPARE_FAILED));
        }
        Ok(Written::default())
    }

    fn server(&self) -> Option<Ipv4Addr> {
        self.server
    }
}

/// The PostgreSQL protocol as a client of a cluster Perseus did not start.
pub struct Postgres;

/// Ready when every node's own server answers `SELECT version()` at `port` as
/// `credentials`; the version is the first one's.
pub async fn every_node_answers(layout: &Layout, port: u16, credentials: (&str, &str)) -> Health {
    let answers = futures::future::join_all((0..layout.nodes.len()).map(|i| async move {
        let c = open(
            &config(layout, i, Route::Plain, credentials, port, PROBE),
            PROBE,
        )
        .await
        .map_err(|e| e.text)?;
        let v = tokio::time::timeout(PROBE, c.query_one("SELECT version()", &[]))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| describe(&e))?;
        Ok::<String, String>(v.get(0))
    }))
    .await;
    super::all_answer(layout, &answers)
}

/// Creates the seed's table through the first node that takes it (a read-only replica
/// refuses), each at its own server only.
pub async fn create_table(layout: &Layout, port: u16, credentials: (&str, &str)) -> Result<()> {
    let mut last = String::new();
    for i in 0..layout.nodes.len() {
        let timeout = Duration::from_secs(5);
        let c = config(layout, i, Route::Plain, credentials, port, timeout);
        let done = match open(&c, timeout).await {
            Ok(c) => c.batch_execute(SETUP).await.map_err(|e| describe(&e)),
            Err(e) => Err(e.text),
        };
        match done {
            Ok(()) => return Ok(()),
            Err(e) => last = format!("{}: {e}", layout.nodes[i].name),
        }
    }
    Err(Error::Database(format!(
        "no node created the table {TABLE} ({last})"
    )))
}

#[async_trait]
impl Database for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn about(&self) -> &'static str {
        "the PostgreSQL protocol, a client per node to that node only (CockroachDB, YugabyteDB's YSQL, a PostgreSQL of your own); for a cluster file"
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

    /// Ready when every node's server answers; the version is the first one's.
    async fn health(&self, layout: &Layout) -> Health {
        every_node_answers(layout, PORT, layout.credentials(DEFAULT_CREDENTIALS)).await
    }

    /// Creates the table through the first node that takes it (a replica refuses).
    async fn setup(&self, layout: &Layout) -> Result<()> {
        create_table(layout, PORT, layout.credentials(DEFAULT_CREDENTIALS)).await
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> std::result::Result<Box<dyn Client>, ClientError> {
        plain_client(
            layout,
            node,
            PORT,
            layout.credentials(DEFAULT_CREDENTIALS),
            timeout,
        )
        .await
    }

    fn cut_off(&self) -> CutOff {
        super::protocol_cut_off()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(c: &tokio_postgres::Config) -> Vec<(String, u16)> {
        c.get_hosts()
            .iter()
            .zip(c.get_ports())
            .map(|(h, p)| match h {
                tokio_postgres::config::Host::Tcp(h) => (h.clone(), *p),
                #[allow(unreachable_patterns)]
                _ => panic!("not a TCP host"),
            })
            .collect()
    }

    #[test]
    fn a_plain_client_reaches_its_node_only_and_a_failover_client_every_node_its_own_first() {
        let l = Layout::for_tests(None);
        let t = Duration::from_secs(1);
        let plain = config(&l, 1, Route::Plain, ("u", "p"), PORT, t);
        assert_eq!(hosts(&plain), [("198.18.1.2".to_string(), PORT)]);
        assert_eq!(plain.get_target_session_attrs(), TargetSessionAttrs::Any);
        assert_eq!(plain.get_user(), Some("u"));
        let failover = config(&l, 1, Route::Failover, ("u", "p"), PORT, t);
        let order: Vec<String> = hosts(&failover).into_iter().map(|h| h.0).collect();
        assert_eq!(order, ["198.18.1.2", "198.18.1.3", "198.18.1.1"]);
        assert_eq!(
            failover.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
    }

    #[test]
    fn the_table_statement_makes_the_seeds_columns() {
        assert!(SETUP.starts_with(&format!("CREATE TABLE IF NOT EXISTS {TABLE} ")));
        for column in ["key text PRIMARY KEY", "value bigint", "attempt bigint"] {
            assert!(SETUP.contains(column), "{column}");
        }
    }
}
