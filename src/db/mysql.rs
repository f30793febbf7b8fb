//! The MySQL-protocol client shared by Galera and TiDB: the seed's `perseus.storage` table,
//! read with SELECT, written with INSERT when the key is missing and UPDATE otherwise.
//! Server errors keep their code first in the text (`1047 WSREP has not yet prepared node
//! for application use`); a broken connection is `2013 lost connection: …`.

use super::{Client, ClientError};
use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Creates the seed's table, idempotently.
pub const SETUP: [&str; 2] = [
    "CREATE DATABASE IF NOT EXISTS perseus",
    "CREATE TABLE IF NOT EXISTS perseus.storage (id VARCHAR(64) PRIMARY KEY, value BIGINT)",
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

/// Runs the seed's setup statements on one connection.
pub async fn setup(conn: &mut Conn) -> Result<(), String> {
    for sql in SETUP {
        conn.query_drop(sql).await.map_err(|e| describe(&e))?;
    }
    Ok(())
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
    async fn read(&mut self, key: &str) -> Result<Option<i64>, ClientError> {
        let v: Option<Option<i64>> = self
            .conn
            .exec_first("SELECT value FROM perseus.storage WHERE id = ?", (key,))
            .await
            .map_err(|e| ClientError::definite(describe(&e)))?;
        self.found = v.is_some();
        Ok(v.flatten())
    }

    async fn write(&mut self, key: &str, value: i64) -> Result<(), ClientError> {
        if self.found {
            self.conn
                .exec_drop(
                    "UPDATE perseus.storage SET value = ? WHERE id = ?",
                    (value, key),
                )
                .await
                .map_err(write_error)
        } else {
            self.conn
                .exec_drop(
                    "INSERT INTO perseus.storage (id, value) VALUES (?, ?)",
                    (key, value),
                )
                .await
                .map_err(write_error)?;
            self.found = true;
            Ok(())
        }
    }
}
