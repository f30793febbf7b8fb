//! CockroachDB: a node per lab node in containers from Cockroach Labs' image (no Debian
//! package has it), insecure, each node's client speaking the PostgreSQL protocol to its own
//! node only (`postgres::Route::Plain`), as the `root` user.
//!
//! The nodes start knowing each other (`--join`) and wait to be initialised once: the
//! first node's container runs `cockroach init` beside its server until the cluster says
//! it is (or already was) initialised. No node leads the whole: every range has its own
//! Raft leader and leaseholder, spread over the nodes, so `--isolate leader` does not apply
//! and the failover model speaks for whichever node is cut off.
//!
//! Its timing is Raft's tick, the election timeout in ticks, and the range lease, which
//! `base/config.go` reads from the environment; the preset passes them so.

use super::failover::{self, Bound, Expected, Failover, Role, Settings};
use super::knob::{self, Kind, Knob};
use super::postgres;
use super::{Client, ClientError, CutOff, Database, Health};
use crate::error::Result;
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::time::Duration;

/// The image the preset runs, pinned.
pub const IMAGE: &str = "cockroachdb/cockroach:v24.2.4";
/// SQL and the nodes' own RPC share one port.
pub const PORT: u16 = 26257;
/// Insecure mode's superuser, with no password.
const CREDENTIALS: (&str, &str) = ("root", "");
/// How many times the first node tries `cockroach init`, a second apart.
const INIT_TRIES: u32 = 300;
const MODEL_SOURCE: &str = "https://github.com/cockroachdb/cockroach/blob/master/pkg/base/config.go (Raft's tick, election timeout in ticks, and the range lease duration, each from its COCKROACH_ variable); https://www.cockroachlabs.com/docs/stable/architecture/replication-layer (a range's leaseholder on a lost node is replaced once its lease expires)";

/// The settings `--set` changes, passed as the environment `base/config.go` reads; the
/// values are CockroachDB 24's own defaults.
pub const KNOBS: &[Knob] = &[
    Knob {
        name: "COCKROACH_RAFT_TICK_INTERVAL_MS",
        default: "500",
        kind: Kind::Number,
        about: "ms per Raft tick (COCKROACH_RAFT_TICK_INTERVAL)",
    },
    Knob {
        name: "COCKROACH_RAFT_ELECTION_TIMEOUT_TICKS",
        default: "4",
        kind: Kind::Number,
        about: "ticks a follower waits without its leader before it campaigns",
    },
    Knob {
        name: "COCKROACH_RANGE_LEASE_DURATION_MS",
        default: "6000",
        kind: Kind::Number,
        about: "ms a range's lease lasts, after which another node may take it (COCKROACH_RANGE_LEASE_DURATION)",
    },
];

pub struct Cockroachdb;

/// The environment of a node's server, from the knobs, as CockroachDB reads it (durations
/// in Go's form).
pub fn environment(layout: &Layout) -> Vec<(String, String)> {
    let v = |name| knob::value(layout, knob::named(KNOBS, name));
    vec![
        (
            "COCKROACH_RAFT_TICK_INTERVAL".into(),
            format!("{}ms", v("COCKROACH_RAFT_TICK_INTERVAL_MS")),
        ),
        (
            "COCKROACH_RAFT_ELECTION_TIMEOUT_TICKS".into(),
            v("COCKROACH_RAFT_ELECTION_TIMEOUT_TICKS").into(),
        ),
        (
            "COCKROACH_RANGE_LEASE_DURATION".into(),
            format!("{}ms", v("COCKROACH_RANGE_LEASE_DURATION_MS")),
        ),
    ]
}

/// The `cockroach start` command line of node `node`.
pub fn start_args(layout: &Layout, node: usize) -> Vec<String> {
    let n = &layout.nodes[node];
    let join = layout
        .nodes
        .iter()
        .map(|m| format!("{}:{PORT}", m.addr))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        "start".into(),
        "--insecure".into(),
        format!("--listen-addr={}:{PORT}", n.addr),
        format!("--http-addr={}:8080", n.addr),
        format!("--join={join}"),
        format!("--store={}", n.dir.join("data").display()),
        "--cache=128MiB".into(),
        "--max-sql-memory=128MiB".into(),
    ]
}

/// Node `node`'s server; the first node's also initialises the cluster once it can, beside
/// the server (a shell that starts the init loop and then becomes the server).
pub fn server(layout: &Layout, node: usize) -> ProcessSpec {
    let mut args = start_args(layout, node);
    let program = if node == 0 {
        let first = layout.nodes[0].addr;
        let script = format!(
            "i=0; while [ $i -lt {INIT_TRIES} ]; do \
             out=$(cockroach init --insecure --host={first}:{PORT} 2>&1); \
             case \"$out\" in *'successfully initialized'*|*'already been initialized'*) \
             exit 0;; esac; i=$((i+1)); sleep 1; done"
        );
        let mut wrapped = vec![
            "-c".to_string(),
            format!("({script}) & exec cockroach \"$@\""),
            "cockroach".to_string(),
        ];
        wrapped.append(&mut args);
        args = wrapped;
        "sh"
    } else {
        "cockroach"
    };
    ProcessSpec {
        name: "cockroach".into(),
        program: program.into(),
        args,
        env: environment(layout),
        user: None,
        image: None,
    }
}

#[async_trait]
impl Database for Cockroachdb {
    fn name(&self) -> &'static str {
        "cockroachdb"
    }

    fn image(&self) -> Option<&'static str> {
        Some(IMAGE)
    }

    fn client(&self) -> &'static str {
        "postgres"
    }

    fn ready_when(&self) -> &'static str {
        "every node to answer SELECT version() on port 26257 (it does once n1's cockroach init has run)"
    }

    fn about(&self) -> &'static str {
        "CockroachDB 24.2, a node per lab node, insecure, in containers (--backend docker); the PostgreSQL protocol to the node's own server"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[("cockroach", super::NO_PACKAGE)]
    }

    fn run_here(&self) -> bool {
        false
    }

    fn client_port(&self) -> u16 {
        PORT
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        vec![server(layout, node)]
    }

    /// Ready when every node answers SQL, which it does only once the cluster is initialised.
    async fn health(&self, layout: &Layout) -> Health {
        postgres::every_node_answers(layout, PORT, layout.credentials(CREDENTIALS)).await
    }

    async fn setup(&self, layout: &Layout) -> Result<()> {
        postgres::create_table(layout, PORT, layout.credentials(CREDENTIALS)).await
    }

    fn knobs(&self) -> &'static [Knob] {
        KNOBS
    }

    fn failover(&self) -> Option<&dyn Failover> {
        Some(self)
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> std::result::Result<Box<dyn Client>, ClientError> {
        postgres::plain_client(layout, node, PORT, layout.credentials(CREDENTIALS), timeout).await
    }

    /// A cut-off node can reach no range's leaseholder but its own, whose leases run out.
    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: false,
            settles: Duration::from_secs(6),
            source: MODEL_SOURCE,
        }
    }
}

impl Cockroachdb {
    /// The longest a range led from the cut-off node is unavailable: its lease runs out
    /// while the others elect a Raft leader (a randomised timeout of one to two election
    /// timeouts), then one of them takes the lease; a request in flight waits out the
    /// client's timeout.
    fn failover_range(s: &Settings, client_timeout: Duration) -> Option<(Duration, String)> {
        let tick = failover::ms(s, "COCKROACH_RAFT_TICK_INTERVAL_MS", 1)?;
        let ticks = failover::count(s, "COCKROACH_RAFT_ELECTION_TIMEOUT_TICKS")?;
        let lease = failover::ms(s, "COCKROACH_RANGE_LEASE_DURATION_MS", 1)?;
        let election = tick.checked_mul(ticks)?;
        let high = lease.max(2 * election) + election + client_timeout;
        Some((
            high,
            format!(
                "a range whose leaseholder was on the cut-off node is unavailable until its \
                 lease of {} runs out and the others have elected a Raft leader (one to two \
                 election timeouts of {} ticks of {}, {}), which then takes the lease \
                 within another election; a connected client stalls only if its key's \
                 range was held there, and a request in flight waits out the client's \
                 timeout ({})",
                failover::show(lease),
                ticks,
                failover::show(tick),
                failover::show(election),
                failover::show(client_timeout)
            ),
        ))
    }
}

/// Ranges' leases and Raft: no node leads the whole, so the model holds whichever node is
/// cut off.
impl Failover for Cockroachdb {
    fn expect(&self, s: &Settings, _role: Role, client_timeout: Duration) -> Option<Expected> {
        let (high, why) = Self::failover_range(s, client_timeout)?;
        Some(Expected {
            bounds: failover::both(Duration::ZERO, high, why),
            source: MODEL_SOURCE,
        })
    }

    /// CockroachDB's Raft campaigns with pre-vote and check-quorum: a returning replica
    /// deposes nobody.
    fn rejoin(
        &self,
        s: &Settings,
        _role: Role,
        _isolated: Duration,
        _client_timeout: Duration,
    ) -> Option<Expected> {
        failover::count(s, "COCKROACH_RAFT_ELECTION_TIMEOUT_TICKS")?;
        Some(Expected {
            bounds: vec![Bound {
                figure: failover::DOWNTIME_ON_RECOVERY,
                low: Duration::ZERO,
                high: Duration::ZERO,
                why: "a returning node's replicas campaign with pre-vote, so none deposes a \
                      leader that kept a majority; how long the returning node's own client \
                      waits for its replicas to catch up and its leases to move back no \
                      setting bounds, so recovery time has no range"
                    .into(),
            }],
            source: MODEL_SOURCE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_node_initialises_the_cluster_beside_its_server_and_all_join_all() {
        let l = Layout::for_tests(None);
        let first = server(&l, 0);
        assert_eq!(first.program, "sh");
        assert_eq!(first.args[0], "-c");
        let script = &first.args[1];
        assert!(
            script.contains("cockroach init --insecure --host=198.18.1.1:26257")
                && script.ends_with("& exec cockroach \"$@\"")
                && script.contains("already been initialized"),
            "{script}"
        );
        assert_eq!(first.args[2], "cockroach", "$0 of the script");
        assert_eq!(first.args[3..], start_args(&l, 0)[..]);
        let second = server(&l, 1);
        assert_eq!(second.program, "cockroach");
        let args = second.args.join(" ");
        for part in [
            "start --insecure --listen-addr=198.18.1.2:26257 ",
            "--join=198.18.1.1:26257,198.18.1.2:26257,198.18.1.3:26257 ",
            "--store=/x/n2/data ",
        ] {
            assert!(args.contains(part), "{part}: {args}");
        }
        assert!(second.env.contains(&(
            "COCKROACH_RANGE_LEASE_DURATION".to_string(),
            "6000ms".to_string()
        )));
        assert!(
            Cockroachdb.leadership().is_none(),
            "no node leads the whole"
        );
        assert!(!Cockroachdb.run_here());
    }

    /// A 6 s lease, a 2 s election timeout (4 ticks of 500 ms), a 1 s timeout: up to 9 s,
    /// for whichever node; the knobs move it.
    #[test]
    fn the_model_is_the_leases_and_the_election() {
        let layout = Layout::for_tests(None);
        let mut s = knob::effective(&layout, KNOBS);
        let t = Duration::from_secs(1);
        let e = Cockroachdb.expect(&s, Role::Unknown, t).unwrap();
        assert_eq!(e.bounds[0].high.as_millis(), 9000);
        s.insert("COCKROACH_RANGE_LEASE_DURATION_MS".into(), "2000".into());
        let e = Cockroachdb.expect(&s, Role::Leader, t).unwrap();
        assert_eq!(
            e.bounds[0].high.as_millis(),
            7000,
            "two elections outlast it"
        );
        let r = Cockroachdb
            .rejoin(&s, Role::Unknown, Duration::from_secs(30), t)
            .unwrap();
        assert_eq!(r.bounds[0].high, Duration::ZERO);
    }
}
