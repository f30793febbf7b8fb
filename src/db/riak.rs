//! Riak KV over its HTTP API, as a client protocol (`riak-kv`) for a cluster Perseus did not
//! start: each node's client talks to that node only, with quorum reads and writes, as the
//! seed measured Riak; and the `riak` preset, a node per lab node in containers from Basho's
//! image (no Debian package has Riak), joined into one ring, measured with that client.
//!
//! - Read: `GET /buckets/perseus/keys/KEY?r=quorum&pr=quorum`; 404 is an absent key; the
//!   answer's `X-Riak-Vclock` (the object's causal context) and `ETag` are kept for the
//!   write that follows. Siblings (300) are refused: the bucket is expected without
//!   `allow_mult`.
//! - Write: `PUT` of the same path with `w=quorum&dw=quorum&pw=quorum`, the vector clock
//!   read; with `--write cas`, conditioned on the `ETag` read (`If-Match`) or on absence
//!   (`If-None-Match: *`), a `412 Precondition Failed` being a failed compare. Riak's
//!   documentation warns that the condition does not prevent concurrent writes.
//! - Riak orders nothing across keys: no revision.
//! - A write refused before it was stored (400, 412) is definite; a timeout or a 503 (a
//!   quorum not met in time, after some replicas may have stored it) is unknown.
//!
//! Documented at <https://docs.riak.com/riak/kv/latest/developing/api/http/store-object>
//! and `…/fetch-object`.

use super::http::{self, Answer, Failed};
use super::{Cell, Client, ClientError, CutOff, Database, Found, Health, Written, COMPARE_FAILED};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::time::Duration;

pub const PORT: u16 = 8098;
const BUCKET: &str = "perseus";
const QUORUM: &str = "quorum";
const PROBE: Duration = Duration::from_millis(800);

/// The object's path and the read's or write's quorum parameters.
pub fn path(key: &str, write: bool) -> String {
    let key = http::escape(key);
    if write {
        format!("/buckets/{BUCKET}/keys/{key}?w={QUORUM}&dw={QUORUM}&pw={QUORUM}")
    } else {
        format!("/buckets/{BUCKET}/keys/{key}?r={QUORUM}&pr={QUORUM}")
    }
}

/// What a read leaves for the write that follows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub vclock: Option<String>,
    pub etag: Option<String>,
}

/// A read's answer: the cell and its context, or absent (404).
pub fn parse_read(key: &str, a: &Answer) -> Result<(Found, Context), ClientError> {
    let context = Context {
        vclock: a.header("X-Riak-Vclock").map(str::to_string),
        etag: a.header("ETag").map(str::to_string),
    };
    let absent = Found {
        cell: None,
        revision: None,
    };
    match a.status {
        404 => Ok((absent, context)),
        200 => {
            let text = String::from_utf8_lossy(&a.body);
            Ok((
                Found {
                    cell: Some(Cell::parse(key, text.trim())?),
                    revision: None,
                },
                context,
            ))
        }
        300 => Err(ClientError::definite(
            "300 siblings: the bucket keeps concurrent values (allow_mult); use one without",
        )),
        _ => Err(ClientError::definite(refusal(a))),
    }
}

/// The headers of a write after a read that left `context`; `cas`: conditioned on it.
pub fn write_headers(context: &Context, cas: bool, found: bool) -> Vec<(&'static str, String)> {
    let mut h = vec![("Content-Type", "text/plain".to_string())];
    if let Some(v) = &context.vclock {
        h.push(("X-Riak-Vclock", v.clone()));
    }
    if cas {
        match (&context.etag, found) {
            (Some(etag), true) => h.push(("If-Match", etag.clone())),
            (_, false) => h.push(("If-None-Match", "*".to_string())),
            // A value without an ETag cannot be matched: the write goes unconditioned
            // rather than never.
            (None, true) => {}
        }
    }
    h
}

/// A write's answer: stored (200, 204), a failed compare (412), or refused.
pub fn parse_write(a: &Answer) -> Result<Written, ClientError> {
    match a.status {
        200 | 204 => Ok(Written::default()),
        412 => Err(ClientError::definite(COMPARE_FAILED)),
        400 | 404 => Err(ClientError::definite(refusal(a))),
        _ => Err(ClientError::indefinite(refusal(a))),
    }
}

fn refusal(a: &Answer) -> String {
    let body = String::from_utf8_lossy(&a.body);
    let line: String = body
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .chars()
        .take(200)
        .collect();
    format!("{} {}", a.status, crate::terminal::printable(&line))
}

struct RiakClient {
    addr: SocketAddr,
    timeout: Duration,
    /// The last read's context (a client reads and writes one key, in turn).
    context: Context,
}

impl RiakClient {
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Answer, ClientError> {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http::request(self.addr, method, path, &headers, body, self.timeout)
            .await
            .map_err(ClientError::from)
    }

    async fn put(
        &mut self,
        key: &str,
        cell: Cell,
        cas: bool,
        found: bool,
    ) -> Result<Written, ClientError> {
        let headers = write_headers(&self.context, cas, found);
        let a = self
            .send("PUT", &path(key, true), &headers, cell.encode().as_bytes())
            .await?;
        parse_write(&a)
    }
}

#[async_trait]
impl Client for RiakClient {
    async fn read(&mut self, key: &str) -> Result<Found, ClientError> {
        let a = self.send("GET", &path(key, false), &[], b"").await?;
        let (found, context) = parse_read(key, &a)?;
        self.context = context;
        Ok(found)
    }

    async fn write(&mut self, key: &str, cell: Cell) -> Result<Written, ClientError> {
        self.put(key, cell, false, true).await
    }

    async fn compare_and_set(
        &mut self,
        key: &str,
        found: &Found,
        cell: Cell,
    ) -> Result<Written, ClientError> {
        self.put(key, cell, true, found.cell.is_some()).await
    }
}

/// Riak KV as a client of a cluster Perseus did not start.
pub struct RiakKv;

#[async_trait]
impl Database for RiakKv {
    fn name(&self) -> &'static str {
        "riak-kv"
    }

    fn about(&self) -> &'static str {
        "Riak KV over its HTTP API, a client per node to that node only: quorum reads and writes (r, pr, w, dw, pw), If-Match for --write cas; for a cluster file"
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

    /// Ready when every node answers `/ping`; Riak's HTTP API states no version there.
    async fn health(&self, layout: &Layout) -> Health {
        let answers = futures::future::join_all((0..layout.nodes.len()).map(|i| async move {
            let addr = SocketAddr::new(layout.nodes[i].addr.into(), layout.port(i, PORT));
            let a = http::request(addr, "GET", "/ping", &[], b"", PROBE)
                .await
                .map_err(|e| match e {
                    Failed::NotSent(t) | Failed::Unanswered(t) => t,
                })?;
            match (a.status, a.body.trim_ascii()) {
                (200, b"OK") => Ok("Riak KV".to_string()),
                _ => Err(refusal(&a)),
            }
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
        Ok(Box::new(RiakClient {
            addr: SocketAddr::new(layout.nodes[node].addr.into(), layout.port(node, PORT)),
            timeout,
            context: Context::default(),
        }))
    }

    fn cut_off(&self) -> CutOff {
        super::protocol_cut_off()
    }
}

/// The image the `riak` preset runs, pinned: Basho's last.
pub const IMAGE: &str = "basho/riak-kv:ubuntu-2.2.3";
/// Riak's configuration file in that image.
const CONF: &str = "/etc/riak/riak.conf";
/// How many times a joining node tries to join and commit, 2 s apart.
const JOIN_TRIES: u32 = 150;
const SOURCE: &str = "https://docs.riak.com/riak/kv/latest/learn/concepts/eventual-consistency/ (primaries and fallbacks; pr=quorum needs a quorum of primary replicas); https://www.erlang.org/doc/apps/kernel/kernel_app.html (net_ticktime: a peer node is declared down after 60 s without ticks); no failover timing of Riak's own is documented";

/// A Riak node per lab node, in containers, joined into one ring.
pub struct Riak;

/// The shell that runs node `node`: it names the node and its listeners by the node's
/// address in Riak's configuration, keeps its data in the node's directory, starts Riak
/// (which runs in the background), joins every node but the first to the first and
/// commits the ring, then stays in the foreground on Riak's console log.
pub fn script(layout: &Layout, node: usize) -> String {
    let n = &layout.nodes[node];
    let first = layout.nodes[0].addr;
    let data = n.dir.join("data");
    let mut s = format!(
        "set -e; \
         sed -i -E 's#^nodename = .*#nodename = riak@{addr}#; \
         s#^listener.http.internal = .*#listener.http.internal = {addr}:{PORT}#; \
         s#^listener.protobuf.internal = .*#listener.protobuf.internal = {addr}:8087#; \
         s#^platform_data_dir = .*#platform_data_dir = {data}#' {CONF}; \
         mkdir -p {data}; chown -R riak:riak {data}; \
         riak start; riak-admin wait-for-service riak_kv riak@{addr}; ",
        addr = n.addr,
        data = data.display(),
    );
    if node > 0 {
        s += &format!(
            "i=0; while [ $i -lt {JOIN_TRIES} ]; do \
             riak-admin cluster join riak@{first} >/dev/null 2>&1 || true; \
             riak-admin cluster plan >/dev/null 2>&1 || true; \
             riak-admin cluster commit >/dev/null 2>&1 || true; \
             if riak-admin member-status 2>/dev/null | grep -q 'valid.*riak@{addr}'; then break; fi; \
             i=$((i+1)); sleep 2; done; ",
            addr = n.addr,
        );
    }
    s += "exec tail -F /var/log/riak/console.log";
    s
}

/// The node's `/stats`: ready when its ring holds every node of the layout; its version.
pub fn parse_stats(layout: &Layout, stats: &serde_json::Value) -> Result<String, String> {
    let members = stats["ring_members"]
        .as_array()
        .ok_or("no ring_members in /stats")?;
    if members.len() != layout.nodes.len() {
        return Err(format!(
            "{} of {} nodes in the ring",
            members.len(),
            layout.nodes.len()
        ));
    }
    Ok(stats["riak_kv_version"]
        .as_str()
        .map_or("Riak KV".into(), |v| format!("Riak KV {v}")))
}

#[async_trait]
impl Database for Riak {
    fn name(&self) -> &'static str {
        "riak"
    }

    fn image(&self) -> Option<&'static str> {
        Some(IMAGE)
    }

    fn client(&self) -> &'static str {
        "riak-kv"
    }

    fn ready_when(&self) -> &'static str {
        "every node's GET /stats to list three ring members"
    }

    fn about(&self) -> &'static str {
        "Riak KV 2.2, a node per lab node in one ring, in containers (--backend docker); its HTTP API to the node itself, quorum reads and writes; no documented failover timing"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[("riak", super::NO_PACKAGE)]
    }

    fn run_here(&self) -> bool {
        false
    }

    fn client_port(&self) -> u16 {
        PORT
    }

    /// Erlang distribution's port mapper, which every node reaches the others through.
    fn peer_port(&self) -> u16 {
        4369
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        vec![ProcessSpec {
            name: "riak".into(),
            program: "sh".into(),
            args: vec!["-c".into(), script(layout, node)],
            env: Vec::new(),
            user: None,
            image: None,
        }]
    }

    /// Ready when every node's ring holds every node.
    async fn health(&self, layout: &Layout) -> Health {
        let answers = futures::future::join_all((0..layout.nodes.len()).map(|i| async move {
            let addr = SocketAddr::new(layout.nodes[i].addr.into(), layout.port(i, PORT));
            let stats = http::get_json(addr, "/stats", PROBE).await?;
            parse_stats(layout, &stats)
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
        RiakKv.connect(layout, node, timeout).await
    }

    /// A cut-off node holds one primary replica of a key at most, short of `pr=quorum`; it
    /// knows its peers gone once Erlang's `net_ticktime` (60 s) runs out.
    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: false,
            settles: Duration::from_secs(60),
            source: SOURCE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_names_itself_by_its_address_and_all_but_the_first_join_the_first() {
        let l = Layout::for_tests(None);
        let first = script(&l, 0);
        assert!(
            first.contains("nodename = riak@198.18.1.1#")
                && first.contains("listener.http.internal = 198.18.1.1:8098#")
                && first.contains("platform_data_dir = /x/n1/data#")
                && first.contains("riak-admin wait-for-service riak_kv riak@198.18.1.1;")
                && !first.contains("cluster join")
                && first.ends_with("exec tail -F /var/log/riak/console.log"),
            "{first}"
        );
        let second = script(&l, 1);
        assert!(
            second.contains("riak-admin cluster join riak@198.18.1.1 ")
                && second.contains("cluster commit")
                && second.contains("grep -q 'valid.*riak@198.18.1.2'"),
            "{second}"
        );
        assert!(
            Riak.failover().is_none(),
            "Riak documents no failover timing"
        );
        assert!(!Riak.run_here());
    }

    /// `/stats` as Riak's HTTP API documents it: ready when the ring holds all three.
    #[test]
    fn the_ring_is_ready_when_it_holds_every_node() {
        let l = Layout::for_tests(None);
        let all = serde_json::json!({
            "ring_members": ["riak@198.18.1.1", "riak@198.18.1.2", "riak@198.18.1.3"],
            "riak_kv_version": "2.2.3",
        });
        assert_eq!(parse_stats(&l, &all).unwrap(), "Riak KV 2.2.3");
        let one = serde_json::json!({ "ring_members": ["riak@198.18.1.1"] });
        assert_eq!(
            parse_stats(&l, &one).unwrap_err(),
            "1 of 3 nodes in the ring"
        );
        assert!(parse_stats(&l, &serde_json::json!({})).is_err());
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        Answer {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn reads_and_writes_ask_for_a_quorum_of_the_primaries() {
        assert_eq!(
            path("perseus-n1", false),
            "/buckets/perseus/keys/perseus-n1?r=quorum&pr=quorum"
        );
        assert_eq!(
            path("perseus-n1", true),
            "/buckets/perseus/keys/perseus-n1?w=quorum&dw=quorum&pw=quorum"
        );
    }

    /// The fetch answer Riak's documentation shows, with a cell for its body.
    #[test]
    fn a_read_keeps_the_vector_clock_and_etag_and_404_is_absent() {
        let a = answer(
            200,
            &[
                (
                    "X-Riak-Vclock",
                    "a85hYGBgzGDKBVIsbLvm1WYwJTLmsTLcjeE5ypcFAA==",
                ),
                ("ETag", "\"6dQBm9oYA1mxRSH0e96l5W\""),
                ("Content-Type", "text/plain"),
            ],
            "5#7",
        );
        let (f, c) = parse_read("perseus-n1", &a).unwrap();
        assert_eq!(
            f.cell,
            Some(Cell {
                value: 5,
                attempt: 7
            })
        );
        assert_eq!(f.revision, None);
        assert_eq!(c.etag.as_deref(), Some("\"6dQBm9oYA1mxRSH0e96l5W\""));
        let (f, _) = parse_read("perseus-n1", &answer(404, &[], "not found\n")).unwrap();
        assert_eq!(f.cell, None);
        for (status, body) in [
            (300, "Siblings:\n1\n2\n"),
            (503, "R-value unsatisfied"),
            (200, "x"),
        ] {
            let e = parse_read("perseus-n1", &answer(status, &[], body)).unwrap_err();
            assert!(e.definite, "{status}: {e:?}");
        }
    }

    #[test]
    fn a_cas_is_conditioned_on_the_etag_read_or_on_absence() {
        let c = Context {
            vclock: Some("vc".into()),
            etag: Some("\"e\"".into()),
        };
        let h = |cas, found| write_headers(&c, cas, found);
        assert_eq!(
            h(true, true),
            [
                ("Content-Type", "text/plain".to_string()),
                ("X-Riak-Vclock", "vc".into()),
                ("If-Match", "\"e\"".into())
            ]
        );
        assert!(h(true, false).contains(&("If-None-Match", "*".into())));
        assert!(!h(false, true).iter().any(|(k, _)| k.starts_with("If-")));
    }

    #[test]
    fn a_write_is_stored_a_412_is_a_failed_compare_and_a_503_unknown() {
        assert!(parse_write(&answer(204, &[], "")).is_ok());
        let e = parse_write(&answer(412, &[], "")).unwrap_err();
        assert_eq!((e.definite, e.text.as_str()), (true, COMPARE_FAILED));
        assert!(
            parse_write(&answer(400, &[], "bad w"))
                .unwrap_err()
                .definite
        );
        assert!(
            !parse_write(&answer(503, &[], "timeout"))
                .unwrap_err()
                .definite
        );
    }
}
