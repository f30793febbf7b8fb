//! Consul's key/value store over its HTTP API, as a client protocol (`consul-kv`) for a
//! cluster Perseus did not start: each node's client talks to that node's agent only.
//!
//! - Read: `GET /v1/kv/KEY?consistent`, the consistent mode, in which the leader confirms
//!   it still leads before it answers (the default mode may answer from a deposed leader);
//!   404 is an absent key; the answer's `ModifyIndex` (a Raft index, ordered across the
//!   store) is the key's revision, and `Value` its content in base64.
//! - Write: `PUT /v1/kv/KEY` with the value as the body; with `--write cas`, `PUT
//!   /v1/kv/KEY?cas=INDEX` with the index read (0: only if the key is absent), which answers
//!   `false` when the key changed since.
//! - A write refused with `No cluster leader` never reached the log: definite. Any other
//!   failure once the request was sent (a timeout, a broken connection, another 5xx) may
//!   have been applied: unknown.
//!
//! Documented at <https://developer.hashicorp.com/consul/api-docs/kv> and
//! <https://developer.hashicorp.com/consul/api-docs/features/consistency>.

use super::http::{self, Answer, Failed};
use super::{Cell, Client, ClientError, CutOff, Database, Found, Health, Written, COMPARE_FAILED};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::time::Duration;

pub const PORT: u16 = 8500;
const PROBE: Duration = Duration::from_millis(800);

/// The path of `key` in the store (percent-encoded but for RFC 3986's unreserved
/// characters), for reading (`cas`: `None`) or writing.
pub fn path(key: &str, cas: Option<i64>) -> String {
    let key: String = key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    match cas {
        None => format!("/v1/kv/{key}"),
        Some(index) => format!("/v1/kv/{key}?cas={index}"),
    }
}

/// A read's answer: the key's cell and `ModifyIndex`, or absent (404).
pub fn parse_read(key: &str, a: &Answer) -> Result<Found, ClientError> {
    match a.status {
        404 => Ok(Found {
            cell: None,
            revision: None,
        }),
        200 => {
            let v: serde_json::Value = serde_json::from_slice(&a.body)
                .map_err(|e| ClientError::definite(format!("read: not JSON: {e}")))?;
            let entry = v
                .as_array()
                .and_then(|a| a.first())
                .ok_or_else(|| ClientError::definite("read: no entry in the answer"))?;
            let index = entry["ModifyIndex"]
                .as_i64()
                .ok_or_else(|| ClientError::definite("read: no ModifyIndex"))?;
            let raw = entry["Value"].as_str().unwrap_or("");
            let bytes =
                base64(raw).ok_or_else(|| ClientError::definite("read: Value is not base64"))?;
            let text = String::from_utf8_lossy(&bytes);
            Ok(Found {
                cell: Some(Cell::parse(key, &text)?),
                revision: Some(index),
            })
        }
        _ => Err(ClientError::definite(refusal(a))),
    }
}

/// A write's answer: `true` written, `false` a failed compare, anything else refused.
pub fn parse_write(a: &Answer) -> Result<Written, ClientError> {
    match (a.status, a.body.trim_ascii()) {
        (200, b"true") => Ok(Written::default()),
        (200, b"false") => Err(ClientError::definite(COMPARE_FAILED)),
        _ => {
            let text = refusal(a);
            // Only a leaderless cluster certainly did not take it.
            let definite = text.contains("No cluster leader");
            Err(ClientError { definite, text })
        }
    }
}

/// A refusal's text: the status and the first line of the body, made printable.
fn refusal(a: &Answer) -> String {
    let body = String::from_utf8_lossy(&a.body);
    let line = body.lines().next().unwrap_or("").trim();
    let line: String = line.chars().take(200).collect();
    format!("{} {}", a.status, crate::terminal::printable(&line))
}

/// Standard base64 (RFC 4648, with padding), as Consul encodes values; `None` if it is not.
pub fn base64(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (k, quad) in bytes.chunks(4).enumerate() {
        let last = k == bytes.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for c in &quad[..4 - pad] {
            n = (n << 6) | digit(*c)?;
        }
        n <<= 6 * pad as u32;
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

struct ConsulClient {
    addr: SocketAddr,
    timeout: Duration,
}

impl ConsulClient {
    async fn send(&self, method: &str, path: &str, body: &[u8]) -> Result<Answer, ClientError> {
        http::request(self.addr, method, path, body, self.timeout)
            .await
            .map_err(|e| match e {
                Failed::NotSent(t) => ClientError::definite(t),
                Failed::Unanswered(t) => ClientError::indefinite(t),
            })
    }

    async fn put(&self, key: &str, cas: Option<i64>, cell: Cell) -> Result<Written, ClientError> {
        let a = self
            .send("PUT", &path(key, cas), cell.encode().as_bytes())
            .await?;
        parse_write(&a)
    }
}

#[async_trait]
impl Client for ConsulClient {
    async fn read(&mut self, key: &str) -> Result<Found, ClientError> {
        let a = self
            .send("GET", &format!("{}?consistent", path(key, None)), b"")
            .await?;
        parse_read(key, &a)
    }

    async fn write(&mut self, key: &str, cell: Cell) -> Result<Written, ClientError> {
        self.put(key, None, cell).await
    }

    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> Result<Written, ClientError> {
        let index = if found.cell.is_some() {
            found.revision.unwrap_or(0)
        } else {
            0
        };
        self.put(key, Some(index), cell).await
    }
}

/// Consul's key/value store as a client of a cluster Perseus did not start.
pub struct ConsulKv;

impl ConsulKv {
    fn addr(layout: &Layout, node: usize) -> SocketAddr {
        SocketAddr::new(layout.nodes[node].addr.into(), layout.port(node, PORT))
    }
}

/// A node's answer to `/v1/status/leader` (the leader's address, quoted; empty when there
/// is none) and `/v1/agent/self` (its version).
pub fn parse_status(
    leader: &serde_json::Value,
    agent: &serde_json::Value,
) -> Result<String, String> {
    match leader.as_str() {
        Some(l) if !l.is_empty() => {}
        _ => return Err("no leader".into()),
    }
    Ok(agent["Config"]["Version"]
        .as_str()
        .map_or("Consul".into(), |v| format!("Consul {v}")))
}

#[async_trait]
impl Database for ConsulKv {
    fn name(&self) -> &'static str {
        "consul-kv"
    }

    fn about(&self) -> &'static str {
        "Consul's key/value store over its HTTP API, a client per node to that node's agent only: consistent reads, PUT ?cas= for --write cas; for a cluster file"
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

    /// Ready when every node's agent knows a leader; the version is the first one's.
    async fn health(&self, layout: &Layout) -> Health {
        let answers = futures::future::join_all((0..layout.nodes.len()).map(|i| async move {
            let addr = Self::addr(layout, i);
            let leader = http::get_json(addr, "/v1/status/leader", PROBE).await?;
            let agent = http::get_json(addr, "/v1/agent/self", PROBE).await?;
            parse_status(&leader, &agent)
        }))
        .await;
        super::all_answer(layout, &answers)
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> Result<Box<dyn Client>, ClientError> {
        Ok(Box::new(ConsulClient {
            addr: Self::addr(layout, node),
            timeout,
        }))
    }

    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: false,
            settles: Duration::ZERO,
            source:
                "a protocol, not a database: what a cut-off node's client sees is the database's",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    /// The answer in Consul's documentation of `GET /kv/:key`, with a cell for its value.
    #[test]
    fn a_read_gives_the_cell_and_its_modify_index_and_404_is_absent() {
        // "NSM3" is base64 of "5#7".
        let doc = r#"[{"CreateIndex":100,"ModifyIndex":200,"LockIndex":200,"Key":"perseus-n1","Flags":0,"Value":"NSM3","Session":"adf4238a-882b-9ddc-4a9d-5b6758e4159e"}]"#;
        let f = parse_read("perseus-n1", &answer(200, doc)).unwrap();
        assert_eq!(
            (f.cell, f.revision),
            (
                Some(Cell {
                    value: 5,
                    attempt: 7
                }),
                Some(200)
            )
        );
        let f = parse_read("perseus-n1", &answer(404, "")).unwrap();
        assert_eq!((f.cell, f.revision), (None, None));
        for (status, body) in [
            (200, "[]"),
            (200, "not json"),
            (200, r#"[{"Value":"NSM3"}]"#),
            (200, r#"[{"ModifyIndex":1,"Value":"N!M3"}]"#),
            (200, r#"[{"ModifyIndex":1,"Value":"aGVsbG8="}]"#),
            (500, "rpc error making call: No cluster leader"),
        ] {
            let e = parse_read("perseus-n1", &answer(status, body)).unwrap_err();
            assert!(e.definite, "{body}: {e:?}");
        }
    }

    #[test]
    fn a_write_is_true_a_failed_compare_false_and_only_no_leader_is_definite() {
        assert!(parse_write(&answer(200, "true\n")).is_ok());
        let e = parse_write(&answer(200, "false")).unwrap_err();
        assert_eq!((e.definite, e.text.as_str()), (true, COMPARE_FAILED));
        let e = parse_write(&answer(500, "No cluster leader")).unwrap_err();
        assert!(e.definite && e.text == "500 No cluster leader", "{e:?}");
        let e = parse_write(&answer(500, "rpc error making call: EOF")).unwrap_err();
        assert!(!e.definite, "it may have been applied: {e:?}");
        let e = parse_write(&answer(503, "\u{1b}[31mred\nsecond line")).unwrap_err();
        assert!(
            !e.text.contains('\u{1b}') && !e.text.contains("second"),
            "{e:?}"
        );
    }

    #[test]
    fn paths_name_the_key_and_the_index_a_cas_expects() {
        assert_eq!(path("perseus-n2", None), "/v1/kv/perseus-n2");
        assert_eq!(path("perseus-n2", Some(0)), "/v1/kv/perseus-n2?cas=0");
        assert_eq!(path("perseus-n2", Some(4711)), "/v1/kv/perseus-n2?cas=4711");
        assert_eq!(path("a b/c?d", None), "/v1/kv/a%20b%2Fc%3Fd");
    }

    #[test]
    fn base64_decodes_rfc_4648_and_refuses_the_rest() {
        // RFC 4648, section 10's test vectors.
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(coded).as_deref(), Some(plain.as_bytes()), "{coded}");
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9v!", "Zm 9"] {
            assert_eq!(base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_node_is_ready_with_a_leader_and_says_its_version() {
        let agent = serde_json::json!({"Config": {"Version": "1.20.1"}});
        assert_eq!(
            parse_status(&serde_json::json!("198.18.1.1:8300"), &agent).unwrap(),
            "Consul 1.20.1"
        );
        assert!(parse_status(&serde_json::json!(""), &agent).is_err());
    }
}
