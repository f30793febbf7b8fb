//! YugabyteDB: on every node a YB-Master (the cluster's catalog, a Raft group of the three)
//! and a YB-TServer (the tablets, each a Raft group of three replicas, and YSQL, the
//! PostgreSQL protocol on 5433), in containers from YugaByte's image (no Debian package has
//! it). Each node's client speaks YSQL to its own tablet server only (`postgres::Route::Plain`).
//!
//! No node leads the whole: every tablet has a leader of its own, spread over the nodes, so
//! `--isolate leader` does not apply and the failover model speaks for whichever node is cut
//! off. Its timing is the tablets' Raft: a follower gives up on its leader after
//! `leader_failure_max_missed_heartbeat_periods` heartbeats of `raft_heartbeat_interval_ms`
//! (6 × 500 ms, "approximately 3 seconds" in the documentation).

use super::failover::{self, Bound, Expected, Failover, Role, Settings};
use super::knob::{self, Kind, Knob};
use super::postgres;
use super::{Client, ClientError, CutOff, Database, Health};
use crate::error::Result;
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::time::Duration;

/// The image the preset runs, pinned.
pub const IMAGE: &str = "yugabytedb/yugabyte:2.20.1.0-b97";
pub const YSQL_PORT: u16 = 5433;
pub const MASTER_PORT: u16 = 7100;
pub const TSERVER_PORT: u16 = 9100;
const BIN: &str = "/home/yugabyte/bin";
/// YSQL's superuser as the image makes it.
const CREDENTIALS: (&str, &str) = ("yugabyte", "yugabyte");
const MODEL_SOURCE: &str = "https://docs.yugabyte.com/stable/explore/fault-tolerance/macos/ (a tablet's leader on a lost node is replaced in about 3 s); https://docs.yugabyte.com/stable/reference/configuration/yb-tserver/ (raft_heartbeat_interval_ms, leader_failure_max_missed_heartbeat_periods, leader_lease_duration_ms)";

/// The settings `--set` changes, passed to both servers; YugabyteDB's own defaults.
pub const KNOBS: &[Knob] = &[
    Knob {
        name: "raft_heartbeat_interval_ms",
        default: "500",
        kind: Kind::Number,
        about: "ms between a tablet leader's heartbeats",
    },
    Knob {
        name: "leader_failure_max_missed_heartbeat_periods",
        default: "6",
        kind: Kind::Number,
        about: "heartbeats a follower misses before it campaigns",
    },
    Knob {
        name: "leader_lease_duration_ms",
        default: "2000",
        kind: Kind::Number,
        about: "ms a leader keeps serving after a majority last acknowledged it",
    },
];

pub struct Yugabytedb;

/// The Raft flags both servers of a node get, from the knobs.
fn raft_flags(layout: &Layout) -> Vec<String> {
    KNOBS
        .iter()
        .map(|k| format!("--{}={}", k.name, knob::value(layout, k)))
        .collect()
}

/// Every master's address, as both servers name them.
fn masters(layout: &Layout) -> String {
    layout
        .nodes
        .iter()
        .map(|n| format!("{}:{MASTER_PORT}", n.addr))
        .collect::<Vec<_>>()
        .join(",")
}

/// Node `node`'s two servers: its master, then its tablet server.
pub fn servers(layout: &Layout, node: usize) -> Vec<ProcessSpec> {
    let n = &layout.nodes[node];
    let data = format!("--fs_data_dirs={}", n.dir.join("data").display());
    let mut master = vec![
        format!("--master_addresses={}", masters(layout)),
        format!("--rpc_bind_addresses={}:{MASTER_PORT}", n.addr),
        data.clone(),
        format!("--replication_factor={}", layout.nodes.len()),
    ];
    master.extend(raft_flags(layout));
    let mut tserver = vec![
        format!("--tserver_master_addrs={}", masters(layout)),
        format!("--rpc_bind_addresses={}:{TSERVER_PORT}", n.addr),
        data,
        "--enable_ysql=true".into(),
        format!("--pgsql_proxy_bind_address={}:{YSQL_PORT}", n.addr),
    ];
    tserver.extend(raft_flags(layout));
    [("yb-master", master), ("yb-tserver", tserver)]
        .into_iter()
        .map(|(name, args)| ProcessSpec {
            name: name.into(),
            program: format!("{BIN}/{name}"),
            args,
            env: Vec::new(),
            user: None,
            image: None,
        })
        .collect()
}

#[async_trait]
impl Database for Yugabytedb {
    fn name(&self) -> &'static str {
        "yugabytedb"
    }

    fn image(&self) -> Option<&'static str> {
        Some(IMAGE)
    }

    fn client(&self) -> &'static str {
        "postgres"
    }

    fn ready_when(&self) -> &'static str {
        "every node's YSQL to answer SELECT version() on port 5433"
    }

    fn about(&self) -> &'static str {
        "YugabyteDB 2.20, a YB-Master and a YB-TServer per node, in containers (--backend docker); YSQL (PostgreSQL protocol) to the node's own tablet server"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("yb-master", super::NO_PACKAGE),
            ("yb-tserver", super::NO_PACKAGE),
        ]
    }

    fn run_here(&self) -> bool {
        false
    }

    fn client_port(&self) -> u16 {
        YSQL_PORT
    }

    fn peer_port(&self) -> u16 {
        TSERVER_PORT
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        servers(layout, node)
    }

    /// Ready when every node's YSQL answers.
    async fn health(&self, layout: &Layout) -> Health {
        postgres::every_node_answers(layout, YSQL_PORT, layout.credentials(CREDENTIALS)).await
    }

    async fn setup(&self, layout: &Layout) -> Result<()> {
        postgres::create_table(layout, YSQL_PORT, layout.credentials(CREDENTIALS)).await
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
        postgres::plain_client(
            layout,
            node,
            YSQL_PORT,
            layout.credentials(CREDENTIALS),
            timeout,
        )
        .await
    }

    /// A cut-off node's tablet server reaches no leader but its own, whose leases run out.
    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: false,
            settles: Duration::from_secs(3),
            source: MODEL_SOURCE,
        }
    }
}

impl Yugabytedb {
    /// The longest a tablet led from the cut-off node is without a leader: the missed
    /// heartbeats, an election of a couple of heartbeats, and a request in flight's timeout.
    fn failover_range(s: &Settings, client_timeout: Duration) -> Option<(Duration, String)> {
        let heartbeat = failover::ms(s, "raft_heartbeat_interval_ms", 1)?;
        let missed = failover::count(s, "leader_failure_max_missed_heartbeat_periods")?;
        let detect = heartbeat.checked_mul(missed)?;
        let high = detect + 2 * heartbeat + client_timeout;
        Some((
            high,
            format!(
                "the tablets led from the cut-off node get new leaders once their followers \
                 miss leader_failure_max_missed_heartbeat_periods {missed} heartbeats of \
                 raft_heartbeat_interval_ms {} ({}), within a couple of heartbeats of election; \
                 a connected client stalls only if its key's tablet was led from there, and a \
                 request in flight waits out the client's timeout ({})",
                failover::show(heartbeat),
                failover::show(detect),
                failover::show(client_timeout)
            ),
        ))
    }
}

/// The tablets' Raft: no node leads the whole, so the model holds whichever node is cut off.
impl Failover for Yugabytedb {
    fn expect(&self, s: &Settings, _role: Role, client_timeout: Duration) -> Option<Expected> {
        let (high, why) = Self::failover_range(s, client_timeout)?;
        Some(Expected {
            bounds: failover::both(Duration::ZERO, high, why),
            source: MODEL_SOURCE,
        })
    }

    fn rejoin(
        &self,
        s: &Settings,
        _role: Role,
        _isolated: Duration,
        client_timeout: Duration,
    ) -> Option<Expected> {
        let (high, _) = Self::failover_range(s, client_timeout)?;
        Some(Expected {
            bounds: vec![Bound {
                figure: failover::DOWNTIME_ON_RECOVERY,
                low: Duration::ZERO,
                high,
                why: "a returning node's replicas catch up as followers; should one depose a \
                      tablet's leader with the term it reached while cut off, that tablet is \
                      without a leader for an election as above; how long the returning \
                      node's own client then waits for its tablets to catch up no setting \
                      bounds, so recovery time has no range"
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
    fn each_node_runs_a_master_and_a_tablet_server_that_know_every_master() {
        let l = Layout::for_tests(None);
        let p = servers(&l, 1);
        let names: Vec<&str> = p.iter().map(|p| p.program.as_str()).collect();
        assert_eq!(
            names,
            [
                "/home/yugabyte/bin/yb-master",
                "/home/yugabyte/bin/yb-tserver"
            ]
        );
        let all = "198.18.1.1:7100,198.18.1.2:7100,198.18.1.3:7100";
        let master = p[0].args.join(" ");
        for part in [
            format!("--master_addresses={all} "),
            "--rpc_bind_addresses=198.18.1.2:7100 ".into(),
            "--fs_data_dirs=/x/n2/data ".into(),
            "--replication_factor=3 ".into(),
            "--leader_failure_max_missed_heartbeat_periods=6".into(),
        ] {
            assert!(master.contains(&part), "{part}: {master}");
        }
        let tserver = p[1].args.join(" ");
        for part in [
            format!("--tserver_master_addrs={all} "),
            "--rpc_bind_addresses=198.18.1.2:9100 ".into(),
            "--enable_ysql=true ".into(),
            "--pgsql_proxy_bind_address=198.18.1.2:5433 ".into(),
            "--raft_heartbeat_interval_ms=500 ".into(),
        ] {
            assert!(tserver.contains(&part), "{part}: {tserver}");
        }
        assert!(Yugabytedb.leadership().is_none(), "no node leads the whole");
        assert!(!Yugabytedb.run_here());
    }

    /// 6 × 500 ms, two heartbeats of election, a 1 s timeout: up to 5 s, for whichever
    /// node; and the knobs move it.
    #[test]
    fn the_model_is_the_tablets_failure_detection() {
        let layout = Layout::for_tests(None);
        let mut s = crate::db::knob::effective(&layout, KNOBS);
        let t = Duration::from_secs(1);
        let e = Yugabytedb.expect(&s, Role::Unknown, t).unwrap();
        let b = &e.bounds[0];
        assert_eq!((b.low.as_millis(), b.high.as_millis()), (0, 5000));
        s.insert("raft_heartbeat_interval_ms".into(), "100".into());
        let e = Yugabytedb.expect(&s, Role::Leader, t).unwrap();
        assert_eq!(e.bounds[0].high.as_millis(), 1800);
        let r = Yugabytedb
            .rejoin(&s, Role::Unknown, Duration::from_secs(30), t)
            .unwrap();
        assert_eq!(r.bounds.len(), 1, "recovery time has no range");
    }
}
