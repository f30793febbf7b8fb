//! PostgreSQL 15 managed by Patroni (Debian `postgresql patroni`), with an etcd cluster in
//! the same lab (a member on every node) as Patroni's store. Patroni's defaults: `ttl` 30 s,
//! `loop_wait` 10 s, `retry_timeout` 10 s, asynchronous replication.
//!
//! Only the primary takes writes, so each node's client connects the way PostgreSQL's own
//! drivers fail over: a multi-host connection (this node first, then the others) with
//! `target_session_attrs=read-write`, which settles on whichever server accepts writes. The
//! record notes which server that was.

use super::failover::{self, Expected, Failover, Role, Settings};
use super::knob::{self, Kind, Knob};
use super::{etcd, http, postgres, Client, ClientError, CutOff, Database, Health};
use crate::error::{Error, Result};
use crate::lab::process::user_ids;
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_postgres::NoTls;

pub const PORT: u16 = 5432;
pub const API_PORT: u16 = 8008;
const USER: &str = "postgres";
const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The superuser's password where the lab has none of its own (labs made by an older
/// Perseus); the workload connects as the superuser, with the lab's password.
const PASSWORD: &str = "perseus";
const PROBE: Duration = Duration::from_millis(800);

pub struct Patroni;

/// The directory Patroni and PostgreSQL own on node `node` (data, socket, config).
fn pg_dir(node_dir: &Path) -> PathBuf {
    node_dir.join("pg")
}

/// `patroni.yml` of node `node`.
pub fn config(layout: &Layout, node: usize) -> String {
    let n = &layout.nodes[node];
    let pg = pg_dir(&n.dir);
    let etcd_hosts: Vec<String> = layout
        .nodes
        .iter()
        .map(|m| format!("{}:{}", m.addr, etcd::CLIENT_PORT))
        .collect();
    format!(
        "scope: perseus-{lab}\n\
         name: {name}\n\
         restapi:\n  listen: {addr}:{API_PORT}\n  connect_address: {addr}:{API_PORT}\n\
         etcd3:\n  hosts: {hosts}\n\
         bootstrap:\n\
         \x20 dcs:\n{dcs}\
         \x20   postgresql:\n      use_pg_rewind: true\n\
         \x20 initdb:\n  - encoding: UTF8\n  - auth: scram-sha-256\n\
         \x20 pg_hba:\n  - local all all trust\n  - host replication replicator {net} scram-sha-256\n  - host all all {net} scram-sha-256\n\
         postgresql:\n\
         \x20 listen: {addr}:{PORT}\n  connect_address: {addr}:{PORT}\n\
         \x20 data_dir: {pg}/data\n  bin_dir: {BIN_DIR}\n  pgpass: {pg}/pgpass\n\
         \x20 authentication:\n\
         \x20   superuser:\n      username: {USER}\n      password: {password}\n\
         \x20   replication:\n      username: replicator\n      password: {password}\n\
         \x20 parameters:\n    unix_socket_directories: '{pg}'\n    shared_buffers: 32MB\n",
        lab = layout.lab,
        name = n.name,
        addr = n.addr,
        hosts = etcd_hosts.join(","),
        pg = pg.display(),
        password = layout.secret_or(PASSWORD),
        net = lab_network(layout),
        dcs = KNOBS
            .iter()
            .map(|k| format!("    {}: {}\n", k.name, knob::value(layout, k)))
            .collect::<String>(),
    )
}

/// The lab's /24 (its nodes and the host's side of its bridge), the only network the
/// servers accept connections from.
fn lab_network(layout: &Layout) -> String {
    let [a, b, c, _] = layout.nodes[0].addr.octets();
    format!("{a}.{b}.{c}.0/24")
}

/// The client's connection settings for node `node`: every server, this node's first,
/// settling on the one that accepts writes.
fn client_config(layout: &Layout, node: usize, timeout: Duration) -> tokio_postgres::Config {
    postgres::config(
        layout,
        node,
        postgres::Route::Failover,
        layout.credentials((USER, layout.secret_or(PASSWORD))),
        PORT,
        timeout,
    )
}

fn chown_postgres(path: &Path) -> Result<()> {
    let (uid, gid) = user_ids(USER)?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(Error::io(format!("chown {}", path.display())))
}

/// What node `node`'s Patroni says of the cluster: member name → (role, state).
async fn members(layout: &Layout, node: usize) -> Result<Vec<(String, String, String)>, String> {
    let addr = SocketAddr::new(layout.nodes[node].addr.into(), API_PORT);
    let v = http::get_json(addr, "/cluster", PROBE).await?;
    let list = v["members"].as_array().cloned().unwrap_or_default();
    Ok(list
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or("").to_string();
            (s("name"), s("role"), s("state"))
        })
        .collect())
}

/// How many replicas stream from node `node` (the primary), as `pg_stat_replication` says.
async fn streaming_replicas(layout: &Layout, node: usize) -> Result<i64, String> {
    let mut c = tokio_postgres::Config::new();
    c.user(USER)
        .password(layout.secret_or(PASSWORD))
        .dbname("postgres")
        .host(layout.nodes[node].addr.to_string())
        .port(PORT)
        .connect_timeout(PROBE);
    let ask = async {
        let (client, connection) = c.connect(NoTls).await.map_err(|e| postgres::describe(&e))?;
        tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                &[],
            )
            .await
            .map_err(|e| postgres::describe(&e))?;
        Ok(row.get::<_, i64>(0))
    };
    tokio::time::timeout(PROBE, ask)
        .await
        .map_err(|_| "timed out".to_string())?
}

#[async_trait]
impl Database for Patroni {
    fn name(&self) -> &'static str {
        "patroni"
    }

    /// PostgreSQL's directory (data, its socket and Patroni's configuration).
    fn data_dir(&self) -> Option<&'static str> {
        Some("pg")
    }

    fn client(&self) -> &'static str {
        "postgres, failing over"
    }

    fn about(&self) -> &'static str {
        "PostgreSQL 15 + Patroni 3 (etcd in the lab); clients connect with target_session_attrs=read-write"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("patroni", "patroni"),
            ("/usr/lib/postgresql/15/bin/postgres", "postgresql"),
            ("etcd", "etcd-server"),
        ]
    }

    fn client_port(&self) -> u16 {
        PORT
    }

    fn peer_port(&self) -> u16 {
        super::etcd::PEER_PORT
    }

    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: true,
            settles: Duration::from_secs(3),
            source: "https://www.postgresql.org/docs/15/libpq-connect.html#LIBPQ-MULTIPLE-HOSTS (target_session_attrs=read-write settles on the primary, which a replica cut off from its peers does not affect)",
        }
    }

    fn prepare(&self, layout: &Layout) -> Result<()> {
        etcd::prepare_data(layout)?;
        for (i, n) in layout.nodes.iter().enumerate() {
            let pg = pg_dir(&n.dir);
            std::fs::create_dir_all(&pg).map_err(Error::io(format!("create {}", pg.display())))?;
            let cfg = pg.join("patroni.yml");
            crate::files::write(&cfg, config(layout, i))?;
            // It holds the lab's password: readable by its owner (postgres) only.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600))
                .map_err(Error::io(format!("chmod {}", cfg.display())))?;
            chown_postgres(&pg)?;
            chown_postgres(&cfg)?;
        }
        Ok(())
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        let mut p = etcd::Etcd.processes(layout, node);
        p.push(ProcessSpec {
            name: "patroni".into(),
            program: "patroni".into(),
            args: vec![pg_dir(&layout.nodes[node].dir)
                .join("patroni.yml")
                .to_string_lossy()
                .into_owned()],
            env: vec![("PATH".into(), format!("{BIN_DIR}:/usr/bin:/bin"))],
            user: Some(USER.into()),
            image: None,
        });
        p
    }

    async fn health(&self, layout: &Layout) -> Health {
        probe(layout).await.0
    }

    fn knobs(&self) -> &'static [Knob] {
        KNOBS
    }

    fn failover(&self) -> Option<&dyn Failover> {
        Some(self)
    }

    fn leadership(&self) -> Option<&dyn super::Leadership> {
        Some(self)
    }

    async fn setup(&self, layout: &Layout) -> Result<()> {
        let timeout = Duration::from_secs(5);
        let c = postgres::open(&client_config(layout, 0, timeout), timeout)
            .await
            .map_err(|e| Error::Invalid(format!("patroni setup: {}", e.text)))?;
        c.batch_execute(postgres::SETUP)
            .await
            .map_err(|e| Error::Invalid(format!("patroni setup: {}", postgres::describe(&e))))
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> Result<Box<dyn Client>, ClientError> {
        postgres::client(&client_config(layout, node, timeout), timeout).await
    }
}

#[async_trait]
impl super::Leadership for Patroni {
    async fn leader(&self, layout: &Layout) -> Option<usize> {
        probe(layout).await.1
    }
}

/// The cluster's health, and the node that leads as the servers report it.
async fn probe(layout: &Layout) -> (Health, Option<usize>) {
    let n = layout.nodes.len();
    let views = futures::future::join_all((0..n).map(|i| members(layout, i))).await;
    let mut not_ready = Vec::new();
    let mut why = Vec::new();
    let mut leader = None;
    // One node's view of every member; the others only need to answer.
    let view = views.iter().find_map(|v| v.as_ref().ok());
    for (i, node) in layout.nodes.iter().enumerate() {
        let problem = match (&views[i], view) {
            (Err(e), _) => Some(e.clone()),
            (Ok(_), None) => Some("no member list".into()),
            (Ok(_), Some(members)) => match members.iter().find(|m| m.0 == node.name) {
                None => Some("not a member yet".into()),
                Some((_, role, state)) => {
                    if role == "leader" {
                        leader = Some(i);
                    }
                    let ok = matches!(state.as_str(), "running" | "streaming");
                    (!ok).then(|| format!("{role} is {state}"))
                }
            },
        };
        if let Some(p) = problem {
            not_ready.push(i);
            why.push(format!("{}: {p}", node.name));
        }
    }
    let version = match leader {
        None => None,
        Some(l) => {
            let addr = SocketAddr::new(layout.nodes[l].addr.into(), API_PORT);
            http::get_json(addr, "/patroni", PROBE).await.ok().map(|v| {
                let pg = v["server_version"].as_u64().unwrap_or(0);
                format!(
                    "PostgreSQL {}.{} (Patroni {})",
                    pg / 10000,
                    pg % 10000,
                    v["patroni"]["version"].as_str().unwrap_or("?")
                )
            })
        }
    };
    match leader {
        None => why.push("no leader".into()),
        Some(l) if not_ready.is_empty() => {
            // Patroni says "running" of a replica that is not replicating yet (its slot
            // missing): ask the primary which replicas stream.
            let streaming = streaming_replicas(layout, l).await;
            if streaming != Ok(n as i64 - 1) {
                not_ready.extend((0..n).filter(|i| *i != l));
                why.push(format!(
                    "replicas streaming from the primary: {streaming:?}"
                ));
            }
        }
        Some(_) => {}
    }
    let health = Health {
        ready: not_ready.is_empty() && leader.is_some(),
        not_ready,
        why: why.join("; "),
        version,
    };
    (health, leader)
}

/// The settings `--set` changes: Patroni's dynamic configuration, written into the DCS at
/// bootstrap (Patroni's defaults).
pub const KNOBS: &[Knob] = &[
    Knob {
        name: "ttl",
        default: "30",
        kind: Kind::Number,
        about: "seconds the leader key lives in the DCS without a refresh",
    },
    Knob {
        name: "loop_wait",
        default: "10",
        kind: Kind::Number,
        about: "seconds each member's HA loop sleeps between rounds",
    },
    Knob {
        name: "retry_timeout",
        default: "10",
        kind: Kind::Number,
        about:
            "seconds DCS and PostgreSQL operations are retried before the primary demotes itself",
    },
    Knob {
        name: "maximum_lag_on_failover",
        default: "1048576",
        kind: Kind::Number,
        about: "bytes a replica may lag and still be promoted",
    },
    Knob {
        name: "synchronous_mode",
        default: "false",
        kind: Kind::Bool,
        about: "a commit waits for a synchronous replica, which alone may be promoted",
    },
];

/// Patroni's leader key, as its dynamic configuration describes it: a primary that cannot
/// refresh the key in the DCS demotes itself after `retry_timeout`; the key expires `ttl`
/// after its last refresh, and a replica takes it on its next round (`loop_wait`). Clients
/// follow whichever server takes writes, the cut-off primary too while it does.
impl Failover for Patroni {
    fn expect(&self, s: &Settings, role: Role, client_timeout: Duration) -> Option<Expected> {
        let ttl = failover::ms(s, "ttl", 1000)?;
        let loop_wait = failover::ms(s, "loop_wait", 1000)?;
        let retry = failover::ms(s, "retry_timeout", 1000)?;
        let bounds = match role {
            Role::Follower => {
                failover::unaffected("the primary keeps refreshing its leader key: nothing stops")
            }
            Role::Leader => {
                // Demoted within [retry, retry + loop_wait]; a replica promoted within
                // [ttl - loop_wait, ttl + loop_wait]; nobody takes writes in between.
                let promoted_low = ttl.saturating_sub(loop_wait);
                let promoted_high = ttl + loop_wait + client_timeout;
                let why = format!(
                    "the cut-off primary keeps taking writes until it demotes itself \
                     retry_timeout {} after its last round (rounds every loop_wait {}); a \
                     replica takes the leader key ttl {} after its last refresh, on its next \
                     round",
                    failover::show(retry),
                    failover::show(loop_wait),
                    failover::show(ttl)
                );
                vec![
                    failover::Bound {
                        figure: failover::DOWNTIME,
                        low: promoted_low.saturating_sub(retry + loop_wait),
                        high: promoted_high.saturating_sub(retry),
                        why: why.clone(),
                    },
                    failover::Bound {
                        figure: failover::DISTURBANCE,
                        low: promoted_low,
                        high: promoted_high,
                        why,
                    },
                ]
            }
            Role::Unknown => return None,
        };
        Some(Expected {
            bounds,
            source: "https://patroni.readthedocs.io/en/latest/dynamic_configuration.html",
        })
    }

    fn rejoin(
        &self,
        s: &Settings,
        role: Role,
        isolated: Duration,
        client_timeout: Duration,
    ) -> Option<Expected> {
        let ttl = failover::ms(s, "ttl", 1000)?;
        let loop_wait = failover::ms(s, "loop_wait", 1000)?;
        let none = (Duration::ZERO, Duration::ZERO);
        let (downtime, why) = match role {
            Role::Follower => (
                none,
                "the replica resumes streaming from the primary, which every client writes to: \
                 nothing stops"
                    .to_string(),
            ),
            // Cut off past ttl + loop_wait, a replica has surely taken the leader key.
            Role::Leader if isolated > ttl + loop_wait => (
                none,
                format!(
                    "cut off longer than ttl {} + loop_wait {}, it was replaced: every client \
                     already writes to the promoted replica, and the old primary comes back \
                     as its replica (rewound) without stopping anyone",
                    failover::show(ttl),
                    failover::show(loop_wait)
                ),
            ),
            Role::Leader => {
                let back = loop_wait + client_timeout;
                (
                    (Duration::ZERO, back),
                    format!(
                        "cut off for less than ttl {} + loop_wait {}, it may not have been \
                         replaced; then the demoted primary takes its leader key again on its \
                         next round (every loop_wait) and promotes itself, and a request in \
                         flight waits out the client's timeout ({})",
                        failover::show(ttl),
                        failover::show(loop_wait),
                        failover::show(client_timeout)
                    ),
                )
            }
            Role::Unknown => return None,
        };
        Some(Expected {
            bounds: failover::after(downtime, downtime, why),
            source: "https://patroni.readthedocs.io/en/latest/dynamic_configuration.html",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_password_and_network_are_the_only_way_in() {
        let mut layout = Layout::for_tests(None);
        layout.secret = Some("0123abcd".into());
        let c = config(&layout, 0);
        assert_eq!(c.matches("password: 0123abcd").count(), 2, "{c}");
        assert!(!c.contains("perseus\n") && !c.contains("0.0.0.0/0"), "{c}");
        assert!(
            c.contains("  - host all all 198.18.1.0/24 scram-sha-256"),
            "{c}"
        );
        let (_, password) = layout.credentials((USER, layout.secret_or(PASSWORD)));
        assert_eq!(password, "0123abcd");
    }

    #[test]
    fn each_patroni_binds_its_lab_address_and_uses_the_lab_etcd() {
        let c = config(&Layout::for_tests(None), 1);
        for line in [
            "name: n2",
            "  listen: 198.18.1.2:8008",
            "  hosts: 198.18.1.1:2379,198.18.1.2:2379,198.18.1.3:2379",
            "  listen: 198.18.1.2:5432",
            "  data_dir: /x/n2/pg/data",
            "  bin_dir: /usr/lib/postgresql/15/bin",
            "    unix_socket_directories: '/x/n2/pg'",
            "    retry_timeout: 10",
        ] {
            assert!(c.lines().any(|l| l == line), "missing {line:?} in\n{c}");
        }
        let yaml_ok = c
            .lines()
            .all(|l| !l.starts_with(' ') || l.starts_with("  "));
        assert!(yaml_ok, "indentation by two spaces:\n{c}");
    }

    #[test]
    fn a_client_tries_its_own_node_first_and_wants_a_writable_server() {
        let c = client_config(&Layout::for_tests(None), 2, Duration::from_secs(1));
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[allow(unreachable_patterns)]
                _ => String::new(),
            })
            .collect();
        assert_eq!(hosts, ["198.18.1.3", "198.18.1.1", "198.18.1.2"]);
        assert_eq!(
            c.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
    }
}
