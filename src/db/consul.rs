//! Consul: its key/value store over its HTTP API as a client protocol (`consul-kv`) for a
//! cluster Perseus did not start, each node's client talking to that node's agent only; and
//! the `consul` preset, three servers in containers from HashiCorp's image (no Debian
//! package has Consul), measured with that client.
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

use super::http::{self, Answer};
use super::{Cell, Client, ClientError, CutOff, Database, Found, Health, Written, COMPARE_FAILED};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::time::Duration;

pub const PORT: u16 = 8500;
const PROBE: Duration = Duration::from_millis(800);

/// The path of `key` in the store, for reading (`cas`: `None`) or writing.
pub fn path(key: &str, cas: Option<i64>) -> String {
    let key = http::escape(key);
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
    format!("{} {}", a.status, crate::terminal::excerpt(line, 200))
}

/// Standard base64 (RFC 4648, with padding), as Consul encodes values; `None` if it is not.
pub fn base64(text: &str) -> Option<Vec<u8>> {
    use ::base64::Engine;
    ::base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
}

struct ConsulClient {
    addr: SocketAddr,
    timeout: Duration,
}

impl ConsulClient {
    async fn send(&self, method: &str, path: &str, body: &[u8]) -> Result<Answer, ClientError> {
        http::request(self.addr, method, path, &[], body, self.timeout)
            .await
            .map_err(ClientError::from)
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
        super::protocol_cut_off()
    }
}

/// The image the `consul` preset runs, pinned.
pub const IMAGE: &str = "hashicorp/consul:1.20.1";
/// The server port the nodes reach each other on (Raft and RPC).
pub const SERVER_PORT: u16 = 8300;
/// Consul's base Raft timing, which `raft_multiplier` scales (`agent/consul/config.go`;
/// the performance documentation): heartbeat timeout, election timeout, leader lease.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(1000);
const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
const MODEL_SOURCE: &str = "https://developer.hashicorp.com/consul/docs/reference/architecture/server (raft_multiplier scales Raft's timing; default 5); https://github.com/hashicorp/raft (a follower campaigns after a random heartbeat timeout to twice it)";

/// The settings `--set` changes; Consul's own default.
pub const KNOBS: &[super::knob::Knob] = &[super::knob::Knob {
    name: "raft_multiplier",
    default: "5",
    kind: super::knob::Kind::Number,
    about: "scales Raft's timing: heartbeat and election timeouts of 1 s each, times this",
}];

/// Three Consul servers, one per node, in containers.
pub struct Consul;

/// The command line of node `node`'s server.
pub fn server_args(layout: &Layout, node: usize) -> Vec<String> {
    let n = &layout.nodes[node];
    let mut args = vec![
        "agent".to_string(),
        "-server".into(),
        format!("-bootstrap-expect={}", layout.nodes.len()),
        format!("-node={}", n.name),
        format!("-data-dir={}", n.dir.join("data").display()),
        format!("-bind={}", n.addr),
        format!("-advertise={}", n.addr),
        format!("-client={}", n.addr),
        "-log-level=info".into(),
        format!(
            "-hcl=performance {{ raft_multiplier = {} }}",
            super::knob::value(layout, &KNOBS[0])
        ),
    ];
    args.extend(
        layout
            .nodes
            .iter()
            .map(|m| format!("-retry-join={}:8301", m.addr)),
    );
    args
}

/// The node whose server address (`ADDR:8300`, as `/v1/status/leader` quotes it) is
/// `leader`, if any.
pub fn leader_node(layout: &Layout, leader: &serde_json::Value) -> Option<usize> {
    let addr: SocketAddr = leader.as_str()?.parse().ok()?;
    layout
        .nodes
        .iter()
        .position(|n| std::net::IpAddr::V4(n.addr) == addr.ip())
}

impl Consul {
    /// Each node's answer: the leader it names (a node of the layout) and its version.
    async fn views(layout: &Layout) -> Vec<Result<(usize, String), String>> {
        futures::future::join_all((0..layout.nodes.len()).map(|i| async move {
            let addr = ConsulKv::addr(layout, i);
            let leader = http::get_json(addr, "/v1/status/leader", PROBE).await?;
            let agent = http::get_json(addr, "/v1/agent/self", PROBE).await?;
            let version = parse_status(&leader, &agent)?;
            let l = leader_node(layout, &leader)
                .ok_or_else(|| format!("a leader outside the lab: {leader}"))?;
            Ok((l, version))
        }))
        .await
    }
}

#[async_trait]
impl Database for Consul {
    fn name(&self) -> &'static str {
        "consul"
    }

    fn image(&self) -> Option<&'static str> {
        Some(IMAGE)
    }

    fn client(&self) -> &'static str {
        "consul-kv"
    }

    fn ready_when(&self) -> &'static str {
        "every server to name the same leader (GET /v1/status/leader, /v1/agent/self on each)"
    }

    fn about(&self) -> &'static str {
        "Consul 1.20, three servers (Raft), in containers (--backend docker); its key/value store with consistent reads"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[("consul", super::NO_PACKAGE)]
    }

    fn run_here(&self) -> bool {
        false
    }

    fn client_port(&self) -> u16 {
        PORT
    }

    fn peer_port(&self) -> u16 {
        SERVER_PORT
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        vec![ProcessSpec {
            name: "consul".into(),
            program: "consul".into(),
            args: server_args(layout, node),
            env: Vec::new(),
            user: None,
            image: None,
        }]
    }

    /// Ready when every server names the same leader.
    async fn health(&self, layout: &Layout) -> Health {
        let views = Self::views(layout).await;
        let answers: Vec<Result<String, String>> = views
            .iter()
            .map(|v| {
                v.as_ref()
                    .map(|(_, version)| version.clone())
                    .map_err(Clone::clone)
            })
            .collect();
        let mut h = super::all_answer(layout, &answers);
        let leaders: Vec<usize> = views.iter().flatten().map(|(l, _)| *l).collect();
        if h.ready && leaders.windows(2).any(|w| w[0] != w[1]) {
            h.ready = false;
            h.why = "servers disagree on the leader".into();
        }
        h
    }

    fn knobs(&self) -> &'static [super::knob::Knob] {
        KNOBS
    }

    fn failover(&self) -> Option<&dyn super::failover::Failover> {
        Some(self)
    }

    fn leadership(&self) -> Option<&dyn super::Leadership> {
        Some(self)
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> Result<Box<dyn Client>, ClientError> {
        ConsulKv.connect(layout, node, timeout).await
    }

    /// A server cut off from the leader forwards writes and consistent reads to a leader it
    /// cannot reach; once it stops hearing from it, it has none.
    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: false,
            settles: 2 * HEARTBEAT_TIMEOUT * 5,
            source: "https://developer.hashicorp.com/consul/api-docs/features/consistency (consistent reads and writes go through the leader)",
        }
    }
}

#[async_trait]
impl super::Leadership for Consul {
    /// The leader a majority of the servers name.
    async fn leader(&self, layout: &Layout) -> Option<usize> {
        let views = Self::views(layout).await;
        let named: Vec<usize> = views.iter().flatten().map(|(l, _)| *l).collect();
        (0..layout.nodes.len())
            .find(|c| named.iter().filter(|l| *l == c).count() * 2 > layout.nodes.len())
    }
}

/// hashicorp/raft's timing as Consul scales it: a follower campaigns when it has heard
/// nothing for a random heartbeat timeout to twice it, and a candidate retries after a
/// random election timeout to twice it.
impl super::failover::Failover for Consul {
    fn expect(
        &self,
        s: &super::failover::Settings,
        role: super::failover::Role,
        client_timeout: Duration,
    ) -> Option<super::failover::Expected> {
        use super::failover::{self, Role};
        let m = failover::count(s, "raft_multiplier")?.max(1);
        let (heartbeat, election) = (HEARTBEAT_TIMEOUT * m, ELECTION_TIMEOUT * m);
        let bounds = match role {
            Role::Follower => failover::unaffected(
                "the leader and the other server keep a majority: nothing stops",
            ),
            Role::Leader => failover::both(
                heartbeat - heartbeat / 10,
                2 * heartbeat + election + client_timeout,
                format!(
                    "the others campaign a random heartbeat timeout to twice it ({}, \
                     raft_multiplier {m}) after the last heartbeat (every tenth of it), and \
                     may need one more election timeout ({}) after a split vote; a request in \
                     flight waits out the client's timeout ({})",
                    failover::show(heartbeat),
                    failover::show(election),
                    failover::show(client_timeout)
                ),
            ),
            Role::Unknown => return None,
        };
        Some(failover::Expected {
            bounds,
            source: MODEL_SOURCE,
        })
    }

    fn rejoin(
        &self,
        s: &super::failover::Settings,
        role: super::failover::Role,
        _isolated: Duration,
        client_timeout: Duration,
    ) -> Option<super::failover::Expected> {
        use super::failover::{self, Bound, Role};
        let m = failover::count(s, "raft_multiplier")?.max(1);
        if role == Role::Unknown {
            return None;
        }
        let (heartbeat, election) = (HEARTBEAT_TIMEOUT * m, ELECTION_TIMEOUT * m);
        Some(failover::Expected {
            bounds: vec![Bound {
                figure: failover::DOWNTIME_ON_RECOVERY,
                low: Duration::ZERO,
                high: 2 * heartbeat + election + client_timeout,
                why: format!(
                    "a returning server that campaigned while cut off answers the leader with \
                     a higher term, which deposes it unless the servers pre-vote \
                     (hashicorp/raft 1.7 and later; which Consul versions use it is the \
                     image's affair): then nobody is served until the next election, as \
                     after a leader's isolation (heartbeat timeout {}, election timeout {}); \
                     how long the returning server then takes to catch up no setting bounds, \
                     so recovery time has no range",
                    failover::show(heartbeat),
                    failover::show(election)
                ),
            }],
            source: MODEL_SOURCE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
            ..Answer::default()
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

    #[test]
    fn each_server_binds_its_node_expects_three_and_joins_every_node() {
        let l = Layout::for_tests(None);
        let args = server_args(&l, 1).join(" ");
        for part in [
            "agent -server -bootstrap-expect=3 -node=n2 ",
            "-data-dir=/x/n2/data ",
            "-bind=198.18.1.2 -advertise=198.18.1.2 -client=198.18.1.2 ",
            "-hcl=performance { raft_multiplier = 5 } ",
            "-retry-join=198.18.1.1:8301 -retry-join=198.18.1.2:8301 -retry-join=198.18.1.3:8301",
        ] {
            assert!(args.contains(part), "{part}: {args}");
        }
        let p = Consul.processes(&l, 0);
        assert_eq!(
            (p[0].program.as_str(), p[0].user.as_deref()),
            ("consul", None)
        );
        assert_eq!(Consul.image(), Some(IMAGE));
        assert!(!Consul.run_here());
    }

    #[test]
    fn the_leader_is_the_node_at_the_address_the_servers_quote() {
        let l = Layout::for_tests(None);
        assert_eq!(
            leader_node(&l, &serde_json::json!("198.18.1.3:8300")),
            Some(2)
        );
        assert_eq!(leader_node(&l, &serde_json::json!("10.0.0.1:8300")), None);
        assert_eq!(leader_node(&l, &serde_json::json!("")), None);
        assert_eq!(leader_node(&l, &serde_json::json!(7)), None);
    }

    /// With Consul's default raft_multiplier 5: heartbeat and election timeouts of 5 s.
    #[test]
    fn the_failover_model_scales_with_raft_multiplier() {
        use crate::db::failover::{Failover, Role, DOWNTIME, DOWNTIME_ON_RECOVERY};
        let range = |m: &str, role: Role, rejoin: bool| {
            let s: crate::db::failover::Settings =
                [("raft_multiplier".to_string(), m.to_string())].into();
            let t = Duration::from_secs(1);
            let e = if rejoin {
                Consul.rejoin(&s, role, Duration::from_secs(30), t)
            } else {
                Consul.expect(&s, role, t)
            }
            .unwrap();
            let figure = if rejoin {
                DOWNTIME_ON_RECOVERY
            } else {
                DOWNTIME
            };
            let b = e.bounds.iter().find(|b| b.figure == figure).unwrap();
            (b.low.as_millis() as u64, b.high.as_millis() as u64)
        };
        assert_eq!(range("5", Role::Leader, false), (4500, 16_000));
        assert_eq!(range("1", Role::Leader, false), (900, 4000));
        assert_eq!(range("5", Role::Follower, false), (0, 0));
        assert_eq!(range("5", Role::Follower, true), (0, 16_000));
    }
}
