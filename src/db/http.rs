//! A minimal HTTP/1.0 GET for the JSON status APIs of database servers (PD's, for TiDB).
//! Lab-internal, plain HTTP, small answers: no client library needed.

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
    fn a_200_with_json_parses_and_anything_else_says_why() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"count\": 3}";
        assert_eq!(parse_response(ok).unwrap()["count"], 3);
        let err = parse_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").unwrap_err();
        assert!(err.contains("503"), "{err}");
        assert!(parse_response(b"garbage").is_err());
    }
}
