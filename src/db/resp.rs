//! A minimal Redis (RESP2) client: one connection, one request at a time, as the seed's
//! client holds. Used for Redis servers and Sentinels; small enough that the client's own
//! cost is measurable against `redis-benchmark` (`perseus bench client`).

use super::{Cell, ClientError, Found, Written, COMPARE_FAILED};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// The `redis.conf` lines every Redis server of a lab starts with: it listens on its node's
/// address only (so no protected mode), logs to standard output, keeps its data in
/// `dir/data`, takes no snapshots, and writes an append-only file synced as `appendfsync`
/// says; with the lab's password if the lab has one.
pub fn server_config(
    layout: &crate::lab::Layout,
    node: usize,
    port: u16,
    appendfsync: &str,
) -> String {
    let n = &layout.nodes[node];
    let mut c = format!(
        "bind {addr}\n\
         port {port}\n\
         protected-mode no\n\
         daemonize no\n\
         logfile \"\"\n\
         dir {dir}/data\n\
         save \"\"\n\
         appendonly yes\n\
         appendfsync {appendfsync}\n",
        addr = n.addr,
        dir = n.dir.display(),
    );
    if let Some(secret) = &layout.secret {
        // Only clients that know the lab's password get in.
        c.push_str(&format!("requirepass {secret}\n"));
    }
    c
}

/// The password clients give a lab's Redis servers (the lab's own), or a cluster's (from its
/// file), if any.
pub fn password(layout: &crate::lab::Layout) -> Option<String> {
    layout.secret.clone().or_else(|| {
        layout
            .credentials
            .as_ref()
            .map(|(_, p)| p.clone())
            .filter(|p| !p.is_empty())
    })
}

/// A reply, as RESP2 has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    /// An error reply (`-ERR …`, `-READONLY …`): the server refused the command.
    Error(String),
    Integer(i64),
    /// A bulk string; `None` is the null bulk string (e.g. GET of an absent key).
    Bulk(Option<Vec<u8>>),
    /// An array; `None` is the null array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for simple and bulk strings and integers.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Integer(i) => Some(i.to_string()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// What went wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespError {
    /// The connection broke or the reply made no sense: the command may have run.
    Broken(String),
    /// The server answered with an error: the command did not run.
    Refused(String),
}

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RespError::Broken(e) | RespError::Refused(e) => f.write_str(e),
        }
    }
}

/// One connection to a Redis server or Sentinel.
pub struct Conn {
    stream: BufStream<TcpStream>,
    request: Vec<u8>,
    pub addr: SocketAddr,
}

impl Conn {
    /// Connects within `timeout`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, String> {
        let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect {addr}: timed out"))?
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_nodelay(true)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        Ok(Conn {
            stream: BufStream::new(s),
            request: Vec::with_capacity(64),
            addr,
        })
    }

    /// Sends one command and reads its reply. An error reply is [`RespError::Refused`].
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        encode(&mut self.request, args);
        let broken = |e: std::io::Error| RespError::Broken(e.to_string());
        self.stream.write_all(&self.request).await.map_err(broken)?;
        self.stream.flush().await.map_err(broken)?;
        match read_reply(&mut self.stream).await? {
            Reply::Error(e) => Err(RespError::Refused(e)),
            r => Ok(r),
        }
    }

    /// Connects within `timeout` and, given a password, authenticates with it (`AUTH`).
    pub async fn connect_auth(
        addr: SocketAddr,
        timeout: Duration,
        password: Option<&str>,
    ) -> Result<Conn, String> {
        let mut c = Conn::connect(addr, timeout).await?;
        if let Some(p) = password {
            c.call_within(&[b"AUTH", p.as_bytes()], timeout)
                .await
                .map_err(|e| format!("AUTH at {addr}: {e}"))?;
        }
        Ok(c)
    }

    /// Like [`Conn::call`], all within `timeout` (a timeout is [`RespError::Broken`]).
    pub async fn call_within(
        &mut self,
        args: &[&[u8]],
        timeout: Duration,
    ) -> Result<Reply, RespError> {
        tokio::time::timeout(timeout, self.call(args))
            .await
            .unwrap_or_else(|_| Err(RespError::Broken("timed out".into())))
    }
}

/// Sets `KEYS[1]` to `ARGV[2]` only if it holds `ARGV[1]` (an empty `ARGV[1]`: only if it
/// is absent); 1 if it did, 0 if not. Runs atomically on the server.
const COMPARE_AND_SET: &str = "local v = redis.call('GET', KEYS[1]) \
    if (v == false and ARGV[1] == '') or v == ARGV[1] then \
    redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end";

impl Conn {
    /// `GET key` as a Perseus counter; `None` if the key is absent. A value that is not
    /// one is [`RespError::Refused`].
    pub async fn get_cell(&mut self, key: &str) -> Result<Option<Cell>, RespError> {
        match self.call(&[b"GET", key.as_bytes()]).await? {
            Reply::Bulk(None) => Ok(None),
            r => {
                let text = r.text().unwrap_or_default();
                Cell::parse(key, &text)
                    .map(Some)
                    .map_err(|e| RespError::Refused(e.text))
            }
        }
    }

    /// `SET key cell`.
    pub async fn set_cell(&mut self, key: &str, cell: Cell) -> Result<(), RespError> {
        self.call(&[b"SET", key.as_bytes(), cell.encode().as_bytes()])
            .await
            .map(|_| ())
    }

    /// Sets `key` to `cell` if it still holds `expected` (`None`: if it is absent), in one
    /// server-side script; whether it did.
    pub async fn compare_and_set(
        &mut self,
        key: &str,
        expected: Option<Cell>,
        cell: Cell,
    ) -> Result<bool, RespError> {
        let expected = expected.map(|c| c.encode()).unwrap_or_default();
        let reply = self
            .call(&[
                b"EVAL",
                COMPARE_AND_SET.as_bytes(),
                b"1",
                key.as_bytes(),
                expected.as_bytes(),
                cell.encode().as_bytes(),
            ])
            .await?;
        Ok(matches!(reply, Reply::Integer(1)))
    }
}

impl From<RespError> for ClientError {
    /// A refusal certainly did not take effect; a broken connection may have.
    fn from(e: RespError) -> Self {
        match e {
            RespError::Refused(t) => ClientError::definite(t),
            RespError::Broken(t) => ClientError::indefinite(t),
        }
    }
}

/// A client of one Redis server, for the workload: GET then SET on its key.
pub struct PlainClient(pub Conn);

#[async_trait::async_trait]
impl super::Client for PlainClient {
    async fn read(&mut self, key: &str) -> Result<Found, ClientError> {
        Ok(Found {
            cell: self.0.get_cell(key).await?,
            revision: None,
        })
    }

    async fn write(&mut self, key: &str, cell: Cell) -> Result<Written, ClientError> {
        self.0.set_cell(key, cell).await?;
        Ok(Written::default())
    }

    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> Result<Written, ClientError> {
        match self.0.compare_and_set(key, found.cell, cell).await? {
            true => Ok(Written::default()),
            false => Err(ClientError::definite(COMPARE_FAILED)),
        }
    }
}

/// Encodes a command as a RESP array of bulk strings into `out` (cleared first).
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// The longest reply line read (a status, an error, a length): a server cannot make the
/// client buffer without end.
const MAX_LINE: u64 = 64 * 1024;
/// The longest bulk string read: Perseus's values are numbers, INFO replies a few KiB.
const MAX_BULK: i64 = 1 << 20;
/// The most elements of one array, and the deepest nesting, read.
const MAX_ARRAY: i64 = 4096;
const MAX_DEPTH: usize = 8;

async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Result<Vec<u8>, RespError> {
    use tokio::io::AsyncReadExt;
    let mut line = Vec::with_capacity(32);
    let n = (&mut *r)
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| RespError::Broken(e.to_string()))?;
    if n == 0 {
        return Err(RespError::Broken("connection closed".into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(RespError::Broken(format!(
            "reply line not ended by CRLF within {MAX_LINE} bytes"
        )));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn int(bytes: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            RespError::Broken(format!(
                "bad number in reply: {:?}",
                String::from_utf8_lossy(bytes)
            ))
        })
}

/// Reads one reply (arrays in full).
pub async fn read_reply<R: AsyncBufReadExt + Unpin + Send>(r: &mut R) -> Result<Reply, RespError> {
    // Arrays nest; an explicit stack keeps this an ordinary (non-recursive) async fn.
    let mut stack: Vec<(Vec<Reply>, usize)> = Vec::new();
    loop {
        let line = read_line(r).await?;
        let (tag, rest) = line
            .split_first()
            .ok_or_else(|| RespError::Broken("empty reply line".into()))?;
        let mut reply = match tag {
            b'+' => Reply::Simple(String::from_utf8_lossy(rest).into_owned()),
            b'-' => Reply::Error(String::from_utf8_lossy(rest).into_owned()),
            b':' => Reply::Integer(int(rest)?),
            b'$' => match int(rest)? {
                -1 => Reply::Bulk(None),
                n if n > MAX_BULK => {
                    return Err(RespError::Broken(format!(
                        "a bulk string of {n} bytes (more than {MAX_BULK}) in a reply"
                    )))
                }
                n if n >= 0 => {
                    let mut buf = vec![0; n as usize + 2];
                    r.read_exact(&mut buf)
                        .await
                        .map_err(|e| RespError::Broken(e.to_string()))?;
                    buf.truncate(n as usize);
                    Reply::Bulk(Some(buf))
                }
                _ => return Err(RespError::Broken("bad bulk length".into())),
            },
            b'*' => match int(rest)? {
                -1 => Reply::Array(None),
                0 => Reply::Array(Some(Vec::new())),
                n if n > MAX_ARRAY || stack.len() >= MAX_DEPTH => {
                    return Err(RespError::Broken(format!(
                        "an array of {n} elements at depth {} (at most {MAX_ARRAY}, {MAX_DEPTH} deep) in a reply",
                        stack.len() + 1
                    )))
                }
                n if n > 0 => {
                    stack.push((Vec::with_capacity(n as usize), n as usize));
                    continue;
                }
                _ => return Err(RespError::Broken("bad array length".into())),
            },
            other => {
                return Err(RespError::Broken(format!(
                    "unknown reply type {:?}",
                    *other as char
                )))
            }
        };
        // Fold finished arrays into their parents.
        loop {
            match stack.last_mut() {
                None => return Ok(reply),
                Some((items, want)) => {
                    items.push(reply);
                    if items.len() < *want {
                        break;
                    }
                    let (items, _) = stack.pop().expect("an open array");
                    reply = Reply::Array(Some(items));
                }
            }
        }
    }
}

/// The `key:value` lines of an `INFO` reply.
pub fn info_fields(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply, RespError> {
        let mut r = tokio::io::BufReader::new(bytes);
        read_reply(&mut r).await
    }

    #[test]
    fn a_command_is_an_array_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b"42"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n42\r\n");
    }

    #[tokio::test]
    async fn replies_of_every_type_parse() {
        assert_eq!(parse(b"+OK\r\n").await, Ok(Reply::Simple("OK".into())));
        assert_eq!(parse(b":-7\r\n").await, Ok(Reply::Integer(-7)));
        assert_eq!(parse(b"$-1\r\n").await, Ok(Reply::Bulk(None)));
        assert_eq!(
            parse(b"$4\r\na\r\nb\r\n").await,
            Ok(Reply::Bulk(Some(b"a\r\nb".to_vec())))
        );
        assert_eq!(
            parse(b"-READONLY You can't write against a read only replica.\r\n").await,
            Ok(Reply::Error(
                "READONLY You can't write against a read only replica.".into()
            ))
        );
        assert_eq!(
            parse(b"*2\r\n*2\r\n$1\r\na\r\n:1\r\n*0\r\n").await,
            Ok(Reply::Array(Some(vec![
                Reply::Array(Some(vec![
                    Reply::Bulk(Some(b"a".to_vec())),
                    Reply::Integer(1)
                ])),
                Reply::Array(Some(vec![])),
            ])))
        );
    }

    #[tokio::test]
    async fn a_cut_reply_is_a_broken_connection() {
        assert!(matches!(
            parse(b"$5\r\nab").await,
            Err(RespError::Broken(_))
        ));
        assert!(matches!(
            parse(b"*2\r\n:1\r\n").await,
            Err(RespError::Broken(_))
        ));
        assert!(matches!(parse(b"?x\r\n").await, Err(RespError::Broken(_))));
    }

    /// A server's declared lengths are capped: a huge bulk string, a huge or deep array or
    /// an endless line is an error, not an allocation.
    #[tokio::test]
    async fn hostile_lengths_are_errors_not_allocations() {
        for bytes in [
            &b"$9000000000000000000\r\n"[..],
            b"*9000000000000000000\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
            b"$-5\r\n",
        ] {
            assert!(
                parse(bytes).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let endless = vec![b'+'; 200_000];
        let e = parse(&endless).await.unwrap_err();
        assert!(
            matches!(e, RespError::Broken(ref m) if m.contains("within")),
            "{e:?}"
        );
        assert!(parse(b"$3\r\nabc\r\n").await.is_ok());
    }
}
