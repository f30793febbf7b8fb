//! Minimal plain HTTP for databases whose API is HTTP: a GET of a JSON status API (PD's, for
//! TiDB), and one request with its answer (Consul's KV store). A connection per request,
//! small answers: no client library needed.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GETs `path` from `addr` and parses the body as JSON, all within `timeout`.
pub async fn get_json(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let req =
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        parse_response(&buf)
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| format!("GET http://{addr}{path}: timed out"))?
        .map_err(|e| format!("GET http://{addr}{path}: {e}"))
}

/// The longest answer [`request`] reads: a key's value, or a status, is far smaller.
const MAX_ANSWER: u64 = 1 << 20;

/// An answer: its status code, headers and body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    pub status: u16,
    /// As sent, names and values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first header named `name` (in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Where a request failed: before it was sent (nothing reached the server), or after (it
/// may have been acted on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    NotSent(String),
    Unanswered(String),
}

/// A request that was never sent certainly did nothing; one sent and not answered may have.
impl From<Failed> for super::ClientError {
    fn from(e: Failed) -> Self {
        match e {
            Failed::NotSent(t) => super::ClientError::definite(t),
            Failed::Unanswered(t) => super::ClientError::indefinite(t),
        }
    }
}

/// `method path` to `addr` with `headers` and `body`, on a connection of its own, answered
/// within `timeout`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Answer, Failed> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| Failed::NotSent(format!("connect: {e}")))?;
        s.write_all(&encode(method, path, &addr.to_string(), headers, body))
            .await
            .map_err(|e| Failed::Unanswered(e.to_string()))?;
        let mut buf = Vec::new();
        (&mut s)
            .take(MAX_ANSWER + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| Failed::Unanswered(e.to_string()))?;
        if buf.len() as u64 > MAX_ANSWER {
            return Err(Failed::Unanswered(format!(
                "an answer of more than {MAX_ANSWER} bytes"
            )));
        }
        decode(&buf).map_err(Failed::Unanswered)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(Failed::Unanswered(format!(
            "timed out after {}",
            humantime::format_duration(timeout)
        ))),
    }
}

/// `text` percent-encoded for a path segment, but for RFC 3986's unreserved characters.
pub fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A request as it goes on the wire: HTTP/1.1, the connection closed after the answer.
pub fn encode(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// An answer read to the end of its connection: the status line's code, the headers and
/// the body (as long as `Content-Length` says where it says; chunked bodies are joined).
pub fn decode(raw: &[u8]) -> Result<Answer, String> {
    let split = memchr::memmem::find(raw, b"\r\n\r\n").ok_or("no HTTP header")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {}",
                crate::terminal::printable(status_line)
            )
        })?;
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if body.len() < n {
            return Err(format!("answer cut short: {} of {n} bytes", body.len()));
        }
        body.truncate(n);
    }
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A chunked body joined.
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = memchr::memmem::find(raw, b"\r\n").ok_or("a chunk without its size")?;
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .ok_or("a chunk size that is not hexadecimal")?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size {
            return Err("a chunk cut short".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).ok_or("a chunk cut short")?;
    }
}

/// The JSON body of a 200 response.
fn parse_response(raw: &[u8]) -> Result<serde_json::Value, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered {status}"));
    }
    serde_json::from_str(body.trim()).map_err(|e| format!("not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_goes_on_the_wire_as_http_1_1_with_its_length() {
        let wire = encode("PUT", "/v1/kv/k?cas=0", "198.18.1.1:8500", &[], b"1#2");
        assert_eq!(
            wire,
            b"PUT /v1/kv/k?cas=0 HTTP/1.1\r\nHost: 198.18.1.1:8500\r\nConnection: close\r\n\
              Content-Length: 3\r\n\r\n1#2"
        );
        let wire = encode("GET", "/k", "h:1", &[("If-Match", "\"e1\"")], b"");
        assert_eq!(
            wire,
            b"GET /k HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\nIf-Match: \"e1\"\r\n\
              Content-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn an_answer_gives_its_code_and_body_plain_or_chunked_and_hostile_ones_are_errors() {
        let a = decode(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nETag: \"x\"\r\n\r\ntrue").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"true"[..]));
        assert_eq!(
            (a.header("etag"), a.header("X-None")),
            (Some("\"x\""), None)
        );
        let a = decode(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!((a.status, a.body.len()), (404, 0));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        4\r\ntrue\r\n3\r\n!!!\r\n0\r\n\r\n";
        assert_eq!(decode(chunked).unwrap().body, b"true!!!");
        for bad in [
            &b"garbage"[..],
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"SSH-2.0-x 200\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffff\r\nab",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_200_with_json_parses_and_anything_else_says_why() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"count\": 3}";
        assert_eq!(parse_response(ok).unwrap()["count"], 3);
        let err = parse_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").unwrap_err();
        assert!(err.contains("503"), "{err}");
        assert!(parse_response(b"garbage").is_err());
    }
}
