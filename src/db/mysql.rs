//! The MySQL-protocol client shared by Galera and TiDB, and `mysql`, the protocol on its own
//! for a cluster Perseus did not start ([`Mysql`]: each node's client talks to that node
//! only, and nothing is started): a `perseus.counters` table like the
//! seed's `perseus.storage`, with the write attempt in a column of its own; read with
//! SELECT, written with INSERT when the key is missing and UPDATE otherwise.
//! Server errors keep their code first in the text (`1047 WSREP has not yet prepared node
//! for application use`); a broken connection is `2013 lost connection: …`.

use super::{Cell, Client, ClientError, CutOff, Database, Found, Health, Written, COMPARE_FAILED};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Creates the seed's table, idempotently.
pub const SETUP: [&str; 2] = [
    "CREATE DATABASE IF NOT EXISTS perseus",
    "CREATE TABLE IF NOT EXISTS perseus.counters \
     (id VARCHAR(64) PRIMARY KEY, value BIGINT NOT NULL, attempt BIGINT UNSIGNED NOT NULL)",
];

/// Opens a connection within `timeout` as `(user, password)`.
pub async fn connect(
    addr: Ipv4Addr,
    port: u16,
    credentials: (&str, &str),
    timeout: Duration,
) -> Result<Conn, ClientError> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(addr.to_string())
        .tcp_port(port)
        .user(Some(credentials.0))
        .pass(Some(credentials.1))
        .prefer_socket(false);
    match tokio::time::timeout(timeout, Conn::new(opts)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(ClientError::definite(format!("connect: {}", describe(&e)))),
        Err(_) => Err(ClientError::definite("connect: timed out")),
    }
}

/// The error's text with the server's code first.
pub fn describe(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("{} {}", s.code, s.message),
        mysql_async::Error::Io(io) => format!("2013 lost connection: {io}"),
        mysql_async::Error::Driver(d) => format!("2013 lost connection: {d}"),
        other => other.to_string(),
    }
}

/// A write error: refused by the server means it did not happen; a broken connection
/// after sending means it may have.
fn write_error(e: mysql_async::Error) -> ClientError {
    ClientError {
        definite: matches!(e, mysql_async::Error::Server(_)),
        text: describe(&e),
    }
}

/// Where a MySQL-protocol server listens and how the workload logs in.
#[derive(Debug, Clone, Copy)]
pub struct Server {
    pub port: u16,
    pub credentials: (&'static str, &'static str),
    /// Whether the account's password is the lab's own (see [`Layout::secret`]) where the
    /// lab has one, rather than `credentials.1`.
    pub lab_password: bool,
}

impl Server {
    /// A connection to node `node` of `layout`, at its own port and with the layout's
    /// credentials where given.
    async fn open(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> Result<Conn, ClientError> {
        let (user, password) = self.credentials;
        let password = if self.lab_password {
            layout.secret_or(password)
        } else {
            password
        };
        connect(
            layout.nodes[node].addr,
            layout.port(node, self.port),
            layout.credentials((user, password)),
            timeout,
        )
        .await
    }

    /// A workload client to node `node`.
    pub async fn client(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> Result<Box<dyn Client>, ClientError> {
        Ok(Box::new(MysqlClient::new(
            self.open(layout, node, timeout).await?,
        )))
    }

    /// Creates the seed's table (idempotently) through node `node`.
    pub async fn setup(&self, layout: &Layout, node: usize) -> crate::error::Result<()> {
        let mut conn = self
            .open(layout, node, Duration::from_secs(10))
            .await
            .map_err(|e| crate::error::Error::Database(e.text))?;
        for sql in SETUP {
            conn.query_drop(sql)
                .await
                .map_err(|e| crate::error::Error::Database(describe(&e)))?;
        }
        Ok(())
    }

    /// The server's version, if it answers within a second.
    pub async fn version(&self, layout: &Layout, node: usize) -> Result<Option<String>, String> {
        let mut c = self
            .open(layout, node, Duration::from_millis(800))
            .await
            .map_err(|e| e.text)?;
        let v: Option<String> = c
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| describe(&e))?;
        let _ = c.disconnect().await;
        Ok(v)
    }
}

/// The MySQL protocol as a client of a cluster Perseus did not start (`database = "mysql"`):
/// the account is the cluster file's, `root` with no password where it names none.
pub struct Mysql;

const PLAIN: Server = Server {
    port: 3306,
    credentials: ("root", ""),
    lab_password: false,
};

#[async_trait]
impl Database for Mysql {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn about(&self) -> &'static str {
        "the MySQL protocol, a client per node to that node only (TiDB, MariaDB or MySQL of your own, Galera); for a cluster file"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    fn client_port(&self) -> u16 {
        PLAIN.port
    }

    fn processes(&self, _layout: &Layout, _node: usize) -> Vec<ProcessSpec> {
        Vec::new()
    }

    /// Ready when every node's server answers; the version is the first one's.
    async fn health(&self, layout: &Layout) -> Health {
        let answers = futures::future::join_all((0..layout.nodes.len()).map(|i| async move {
            PLAIN
                .version(layout, i)
                .await?
                .ok_or("no version".to_string())
        }))
        .await;
        super::all_answer(layout, &answers)
    }

    /// Creates the table through the first node that takes it (a read-only replica refuses).
    async fn setup(&self, layout: &Layout) -> crate::error::Result<()> {
        let mut last = String::new();
        for i in 0..layout.nodes.len() {
            match PLAIN.setup(layout, i).await {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{}: {e}", layout.nodes[i].name),
            }
        }
        Err(crate::error::Error::Database(format!(
            "no node created the table perseus.counters ({last})"
        )))
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> Result<Box<dyn Client>, ClientError> {
        PLAIN.client(layout, node, timeout).await
    }

    fn cut_off(&self) -> CutOff {
        super::protocol_cut_off()
    }
}

/// `SHOW STATUS LIKE pattern` as a map.
pub async fn status(conn: &mut Conn, pattern: &str) -> Result<HashMap<String, String>, String> {
    let rows: Vec<(String, String)> = conn
        .query(format!("SHOW STATUS LIKE '{pattern}'"))
        .await
        .map_err(|e| describe(&e))?;
    Ok(rows.into_iter().collect())
}

/// One connection to one node.
pub struct MysqlClient {
    conn: Conn,
    /// Whether the last read found the key (then a write is an UPDATE, else an INSERT).
    found: bool,
}

impl MysqlClient {
    pub fn new(conn: Conn) -> Self {
        MysqlClient { conn, found: false }
    }
}

#[async_trait]
impl Client for MysqlClient {
    async fn read(&mut self, key: &str) -> Result<Found, ClientError> {
        let row: Option<(i64, u64)> = self
            .conn
            .exec_first(
                "SELECT value, attempt FROM perseus.counters WHERE id = ?",
                (key,),
            )
            .await
            .map_err(|e| ClientError::definite(describe(&e)))?;
        self.found = row.is_some();
        Ok(Found {
            cell: row.map(|(value, attempt)| Cell { value, attempt }),
            revision: None,
        })
    }

    async fn write(&mut self, key: &str, cell: Cell) -> Result<Written, ClientError> {
        if self.found {
            self.conn
                .exec_drop(
                    "UPDATE perseus.counters SET value = ?, attempt = ? WHERE id = ?",
                    (cell.value, cell.attempt, key),
                )
                .await
                .map_err(write_error)?;
        } else {
            self.conn
                .exec_drop(
                    "INSERT INTO perseus.counters (id, value, attempt) VALUES (?, ?, ?)",
                    (key, cell.value, cell.attempt),
                )
                .await
                .map_err(write_error)?;
            self.found = true;
        }
        Ok(Written::default())
    }

    /// An UPDATE that matches only the row as read (or an INSERT, which fails on a
    /// duplicate key, when the key was absent).
    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> Result<Written, ClientError> {
        match found.cell {
            Some(old) => {
                self.conn
                    .exec_drop(
                        "UPDATE perseus.counters SET value = ?, attempt = ? \
                         WHERE id = ? AND value = ? AND attempt = ?",
                        (cell.value, cell.attempt, key, old.value, old.attempt),
                    )
                    .await
                    .map_err(write_error)?;
                if self.conn.affected_rows() == 0 {
                    return Err(ClientError::definite(COMPARE_FAILED));
                }
            }
            None => {
                let inserted = self
                    .conn
                    .exec_drop(
                        "INSERT INTO perseus.counters (id, value, attempt) VALUES (?, ?, ?)",
                        (key, cell.value, cell.attempt),
                    )
                    .await;
                match inserted {
                    // ER_DUP_ENTRY: someone set the key since it was read absent.
                    Err(mysql_async::Error::Server(e)) if e.code == 1062 => {
                        return Err(ClientError::definite(COMPARE_FAILED))
                    }
                    other => other.map_err(write_error)?,
                }
                self.found = true;
            }
        }
        Ok(Written::default())
    }
}
