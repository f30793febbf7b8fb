//! ReQL's wire protocol, as far as Perseus speaks it: the V1_0 handshake with SCRAM-SHA-256
//! (RFC 5802, RFC 7677), queries as JSON terms in frames, and their responses.
//!
//! - Handshake: the client sends the magic number of V1_0, little-endian; then messages
//!   are JSON objects each ended by a NUL byte: the server's version, the client's first
//!   SCRAM message, the server's challenge, the client's proof, the server's signature.
//! - A query: an 8-byte token and a 4-byte length (both little-endian), then
//!   `[START, term, optargs]` as JSON. Its response: the same token and length, then
//!   `{"t": type, "r": [...], "e": error type}`.
//!
//! Documented at <https://rethinkdb.com/docs/writing-drivers/> and in `ql2.proto`.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The magic number of protocol V1_0.
pub const V1_0: u32 = 0x34c2_bdc3;
/// The query type that starts a query.
pub const START: u64 = 1;
/// The largest message Perseus reads: its answers are a document or a count.
const MAX_MESSAGE: usize = 1 << 20;

/// Term types of `ql2.proto` that Perseus builds queries from.
pub mod term {
    pub const MAKE_ARRAY: u64 = 2;
    pub const VAR: u64 = 10;
    pub const DB: u64 = 14;
    pub const TABLE: u64 = 15;
    pub const GET: u64 = 16;
    pub const EQ: u64 = 17;
    pub const GET_FIELD: u64 = 31;
    pub const COUNT: u64 = 43;
    pub const REPLACE: u64 = 55;
    pub const INSERT: u64 = 56;
    pub const DB_CREATE: u64 = 57;
    pub const TABLE_CREATE: u64 = 60;
    pub const BRANCH: u64 = 65;
    pub const AND: u64 = 67;
    pub const FUNC: u64 = 69;
}

/// Response types of `ql2.proto`.
pub mod response {
    pub const SUCCESS_ATOM: u64 = 1;
    pub const SUCCESS_SEQUENCE: u64 = 2;
    pub const SUCCESS_PARTIAL: u64 = 3;
    pub const CLIENT_ERROR: u64 = 16;
    pub const COMPILE_ERROR: u64 = 17;
    pub const RUNTIME_ERROR: u64 = 18;
}

/// Runtime error types of `ql2.proto` that say whether a write happened.
pub mod error {
    /// The operation failed, and did nothing (e.g. no primary replica).
    pub const OP_FAILED: u64 = 4_100_000;
    /// The operation may or may not have happened.
    pub const OP_INDETERMINATE: u64 = 4_200_000;
}

/// A term: `[type, [args…]]`, with `{optargs}` if any.
pub fn t(kind: u64, args: Vec<Value>) -> Value {
    json!([kind, args])
}

/// A term with optional arguments.
pub fn to(kind: u64, args: Vec<Value>, optargs: Value) -> Value {
    json!([kind, args, optargs])
}

/// A query frame: token, length, `[START, term, {}]`.
pub fn frame(token: u64, query: &Value) -> Vec<u8> {
    let body = json!([START, query, {}]).to_string();
    let mut out = Vec::with_capacity(12 + body.len());
    out.extend_from_slice(&token.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

/// What a query's response says.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A value, or the values of a whole sequence.
    Success(Value),
    /// A refusal: the response type, the runtime error type (0 if none), the message.
    Error { kind: u64, error: u64, text: String },
}

/// Reads a response body.
pub fn parse_response(body: &[u8]) -> Result<Answer, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let kind = v["t"].as_u64().ok_or("no response type")?;
    let r = v["r"].as_array().cloned().unwrap_or_default();
    match kind {
        response::SUCCESS_ATOM => Ok(Answer::Success(r.into_iter().next().unwrap_or(Value::Null))),
        response::SUCCESS_SEQUENCE | response::SUCCESS_PARTIAL => {
            Ok(Answer::Success(Value::Array(r)))
        }
        response::CLIENT_ERROR | response::COMPILE_ERROR | response::RUNTIME_ERROR => {
            let text = r.first().and_then(Value::as_str).unwrap_or("").to_string();
            Ok(Answer::Error {
                kind,
                error: v["e"].as_u64().unwrap_or(0),
                text,
            })
        }
        other => Err(format!(
            "response type {other}, which Perseus does not expect"
        )),
    }
}

/// SCRAM-SHA-256 from the client's side: its first message, then its proof for the
/// server's challenge, then the check of the server's signature.
pub struct Scram {
    user: String,
    password: String,
    nonce: String,
    /// What the proof and the signature are computed over, once the challenge came.
    auth_message: String,
    salted: Vec<u8>,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| format!("not base64: {text:?}"))
}

/// A SCRAM attribute `name=value` of a comma-separated message.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k.len() == 1 && k.starts_with(name)).then_some(v)
    })
}

impl Scram {
    /// `nonce`: printable, with no comma (the client's random part).
    pub fn new(user: &str, password: &str, nonce: &str) -> Self {
        Scram {
            user: user.replace('=', "=3D").replace(',', "=2C"),
            password: password.to_string(),
            nonce: nonce.to_string(),
            auth_message: String::new(),
            salted: Vec::new(),
        }
    }

    fn first_bare(&self) -> String {
        format!("n={},r={}", self.user, self.nonce)
    }

    /// The client's first message: no channel binding, the user, the nonce.
    pub fn first(&self) -> String {
        format!("n,,{}", self.first_bare())
    }

    /// The client's final message for the server's challenge `server_first`
    /// (`r=NONCE,s=SALT,i=ITERATIONS`): the proof that it knows the password.
    pub fn proof(&mut self, server_first: &str) -> Result<String, String> {
        let nonce = attribute(server_first, 'r').ok_or("no nonce in the challenge")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend the client's".into());
        }
        let salt = unb64(attribute(server_first, 's').ok_or("no salt in the challenge")?)?;
        let rounds: u32 = attribute(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .filter(|i| (1..=1_000_000).contains(i))
            .ok_or("no iteration count (1 to 1,000,000) in the challenge")?;
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(self.password.as_bytes(), &salt, rounds, &mut salted);
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{server_first},{without_proof}", self.first_bare());
        let client_key = hmac(&salted, b"Client Key");
        let stored = Sha256::digest(&client_key);
        let signature = hmac(&stored, self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.salted = salted.to_vec();
        Ok(format!("{without_proof},p={}", b64(&proof)))
    }

    /// Whether the server's final message (`v=SIGNATURE`) proves it knew the password too.
    pub fn verify(&self, server_final: &str) -> Result<(), String> {
        let v = attribute(server_final, 'v').ok_or("no server signature")?;
        let server_key = hmac(&self.salted, b"Server Key");
        let expected = hmac(&server_key, self.auth_message.as_bytes());
        if unb64(v)? == expected {
            Ok(())
        } else {
            Err("the server's signature is wrong".into())
        }
    }
}

/// A random nonce of 24 base64 characters.
pub fn nonce() -> String {
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes).expect("the kernel's random numbers");
    b64(&bytes)
}

/// One connection, handshaken, that sends queries one at a time.
pub struct Connection {
    stream: TcpStream,
    token: u64,
    /// The server's version, from the handshake.
    pub version: String,
}

/// Reads one NUL-terminated JSON message of the handshake.
async fn read_message(stream: &mut TcpStream) -> Result<Value, String> {
    let mut out = Vec::new();
    loop {
        let b = stream.read_u8().await.map_err(|e| format!("read: {e}"))?;
        if b == 0 {
            break;
        }
        if out.len() >= MAX_MESSAGE {
            return Err("a handshake message too long".into());
        }
        out.push(b);
    }
    let v: Value = serde_json::from_slice(&out).map_err(|_| {
        format!(
            "not a handshake message: {}",
            crate::terminal::printable(&String::from_utf8_lossy(&out[..out.len().min(120)]))
        )
    })?;
    if v["success"] == Value::Bool(true) {
        Ok(v)
    } else {
        Err(format!(
            "refused: {}",
            crate::terminal::printable(v["error"].as_str().unwrap_or("no reason given"))
        ))
    }
}

async fn send_message(stream: &mut TcpStream, v: &Value) -> Result<(), String> {
    let mut bytes = v.to_string().into_bytes();
    bytes.push(0);
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("write: {e}"))
}

impl Connection {
    /// Connects to `addr` and authenticates as `user`; the whole within `timeout`.
    pub async fn open(
        addr: std::net::SocketAddr,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<Connection, String> {
        tokio::time::timeout(timeout, Self::handshake(addr, user, password))
            .await
            .map_err(|_| "connect: timed out".to_string())?
    }

    async fn handshake(
        addr: std::net::SocketAddr,
        user: &str,
        password: &str,
    ) -> Result<Connection, String> {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        stream
            .write_all(&V1_0.to_le_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let hello = read_message(&mut stream).await?;
        let version = hello["server_version"].as_str().unwrap_or("").to_string();
        let mut scram = Scram::new(user, password, &nonce());
        send_message(
            &mut stream,
            &json!({
                "protocol_version": 0,
                "authentication_method": "SCRAM-SHA-256",
                "authentication": scram.first(),
            }),
        )
        .await?;
        let challenge = read_message(&mut stream).await?;
        let proof = scram.proof(challenge["authentication"].as_str().unwrap_or(""))?;
        send_message(&mut stream, &json!({ "authentication": proof })).await?;
        let last = read_message(&mut stream).await?;
        scram.verify(last["authentication"].as_str().unwrap_or(""))?;
        Ok(Connection {
            stream,
            token: 0,
            version,
        })
    }

    /// Sends `query` and reads its response. An error here leaves the connection unusable.
    pub async fn run(&mut self, query: &Value) -> Result<Answer, String> {
        self.token += 1;
        self.stream
            .write_all(&frame(self.token, query))
            .await
            .map_err(|e| format!("write: {e}"))?;
        let token = self
            .stream
            .read_u64_le()
            .await
            .map_err(|e| format!("read: {e}"))?;
        let len = self
            .stream
            .read_u32_le()
            .await
            .map_err(|e| format!("read: {e}"))? as usize;
        if token != self.token {
            return Err(format!("a response to query {token}, not {}", self.token));
        }
        if len > MAX_MESSAGE {
            return Err(format!("a response of {len} bytes"));
        }
        let mut body = vec![0u8; len];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("read: {e}"))?;
        parse_response(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange (user "user", password "pencil").
    #[test]
    fn scram_sha_256_matches_the_rfc_example() {
        let mut s = Scram::new("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(s.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            s.proof(server_first).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(s.verify("v=AAAA").is_err());
        // A challenge that does not extend the client's nonce, or lacks a part, is refused.
        let mut s = Scram::new("user", "pencil", "abc");
        assert!(s.proof("r=xyz1,s=AAAA,i=4096").is_err());
        assert!(s.proof("r=abcd,s=AAAA").is_err());
        assert!(s.proof("r=abcd,s=AAAA,i=0").is_err());
        assert_eq!(Scram::new("a,b=c", "", "n").first(), "n,,n=a=2Cb=3Dc,r=n");
        assert_eq!(nonce().len(), 24);
        assert!(!nonce().contains(','));
    }

    /// The V1_0 magic number on the wire, as `ql2.proto` gives it (885177795), and a
    /// query frame: token and length little-endian, then the JSON.
    #[test]
    fn frames_are_as_the_protocol_documents() {
        assert_eq!(V1_0.to_le_bytes(), [0xc3, 0xbd, 0xc2, 0x34]);
        assert_eq!(V1_0, 885_177_795);
        let q = t(term::DB_CREATE, vec![json!("perseus")]);
        let f = frame(5, &q);
        let body = br#"[1,[57,["perseus"]],{}]"#;
        assert_eq!(&f[..8], &5u64.to_le_bytes());
        assert_eq!(&f[8..12], &(body.len() as u32).to_le_bytes());
        assert_eq!(&f[12..], body);
    }

    #[test]
    fn responses_read_as_values_or_refusals() {
        assert_eq!(
            parse_response(br#"{"t":1,"r":[{"id":"k","value":3}]}"#).unwrap(),
            Answer::Success(json!({"id": "k", "value": 3}))
        );
        assert_eq!(
            parse_response(br#"{"t":2,"r":[1,2]}"#).unwrap(),
            Answer::Success(json!([1, 2]))
        );
        assert_eq!(
            parse_response(br#"{"t":18,"e":4100000,"r":["Cannot perform write"],"b":[]}"#).unwrap(),
            Answer::Error {
                kind: response::RUNTIME_ERROR,
                error: error::OP_FAILED,
                text: "Cannot perform write".into()
            }
        );
        for bad in [&b"{"[..], br#"{"r":[]}"#, br#"{"t":99,"r":[]}"#] {
            assert!(parse_response(bad).is_err());
        }
    }
}
