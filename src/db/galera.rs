//! MariaDB Galera Cluster (Debian `mariadb-server galera-4 rsync`): multi-master, every node
//! takes reads and writes. Node 1 bootstraps a new cluster; the others join one at a time,
//! each receiving a full copy (rsync state transfer) from a synced node. `mariadbd` runs as
//! user `mysql` (the rsync transfer fails as root), bound to the node's lab address.

use super::failover::{self, Bound, Expected, Failover, Role, Settings};
use super::knob::{self, Kind, Knob};
use super::mysql;
use super::{Client, ClientError, CutOff, Database, Health, StagedStart};
use crate::error::{Error, Result};
use crate::lab::process::{run_host, user_ids};
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const PORT: u16 = 3306;
const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";
const USER: &str = "mysql";
/// `evs.install_timeout`'s documented default: how long the members wait for a new view
/// to be installed.
const INSTALL_TIMEOUT: Duration = Duration::from_millis(7500);
/// The workload's account, made on the bootstrap node by `init.sql`, with the lab's own
/// password (this one only where a lab has none: labs made by an older Perseus).
const CREDENTIALS: (&str, &str) = ("perseus", "perseus");
const SERVER: mysql::Server = mysql::Server {
    port: PORT,
    credentials: CREDENTIALS,
    lab_password: true,
};

pub struct Galera;

/// The settings `--set` changes: Galera's group membership timeouts (its defaults, stated
/// so that the record and the failover model read what the servers were told), the size of
/// the writeset cache a rejoining node catches up from, and InnoDB's flush at commit, which
/// decides how fast a node applies the writesets it missed.
pub const KNOBS: &[Knob] = &[
    Knob {
        name: "evs.suspect_timeout",
        default: "PT5S",
        kind: Kind::IsoSeconds,
        about: "how long a silent peer goes before it is suspected",
    },
    Knob {
        name: "evs.inactive_check_period",
        default: "PT0.5S",
        kind: Kind::IsoSeconds,
        about: "how often silence is checked",
    },
    Knob {
        name: "evs.inactive_timeout",
        default: "PT15S",
        kind: Kind::IsoSeconds,
        about: "the hard limit on a silent peer",
    },
    Knob {
        name: "evs.join_retrans_period",
        default: "PT1S",
        kind: Kind::IsoSeconds,
        about: "how often a membership change is resent",
    },
    Knob {
        name: "gcache.size",
        default: "64M",
        kind: Kind::Size,
        about: "the writeset cache a rejoining node catches up from (IST) instead of a full copy",
    },
    Knob {
        name: "innodb_flush_log_at_trx_commit",
        default: "1",
        kind: Kind::OneOf(&["0", "1", "2"]),
        about: "1 flushes InnoDB's log at every commit; 2 once a second (applying missed writesets is then much faster)",
    },
];

/// The knobs that are `wsrep_provider_options` entries, as `name=value;…`.
fn provider_options(layout: &Layout) -> String {
    KNOBS
        .iter()
        .filter(|k| k.name.starts_with("evs.") || k.name.starts_with("gcache."))
        .map(|k| format!("{}={}", k.name, knob::value(layout, k)))
        .collect::<Vec<_>>()
        .join(";")
}

fn data_dir(node_dir: &Path) -> PathBuf {
    node_dir.join("data")
}

/// The server's configuration for node `node` of `layout`.
pub fn config(layout: &Layout, node: usize) -> String {
    let n = &layout.nodes[node];
    let dir = n.dir.display();
    let members: Vec<String> = layout.nodes.iter().map(|m| m.addr.to_string()).collect();
    format!(
        "[mysqld]\n\
         datadir={dir}/data\n\
         socket={dir}/run/mysqld.sock\n\
         pid-file={dir}/run/mysqld.pid\n\
         bind-address={addr}\n\
         port={PORT}\n\
         skip-name-resolve\n\
         performance_schema=OFF\n\
         innodb_buffer_pool_size=64M\n\
         binlog_format=ROW\n\
         default_storage_engine=InnoDB\n\
         innodb_autoinc_lock_mode=2\n\
         innodb_flush_log_at_trx_commit={flush}\n\
         wsrep_on=ON\n\
         wsrep_provider={PROVIDER}\n\
         wsrep_cluster_name=perseus-{lab}\n\
         wsrep_cluster_address=gcomm://{members}\n\
         wsrep_node_name={name}\n\
         wsrep_node_address={addr}\n\
         wsrep_sst_method=rsync\n\
         wsrep_sst_receive_address={addr}:4444\n\
         wsrep_provider_options=\"gmcast.listen_addr=tcp://{addr}:4567;ist.recv_addr={addr}:4568;{provider}\"\n",
        provider = provider_options(layout),
        flush = knob::value(layout, knob::named(KNOBS, "innodb_flush_log_at_trx_commit")),
        addr = n.addr,
        lab = layout.lab,
        name = n.name,
        members = members.join(","),
    )
}

/// Run once on the bootstrap node: the workload's account, with `password`.
pub fn init_sql(password: &str) -> String {
    format!(
        "CREATE USER IF NOT EXISTS '{u}'@'%' IDENTIFIED BY '{p}';\nGRANT ALL PRIVILEGES ON *.* TO '{u}'@'%';\n",
        u = CREDENTIALS.0,
        p = password
    )
}

fn chown_mysql(path: &Path) -> Result<()> {
    let (uid, gid) = user_ids(USER)?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(Error::io(format!("chown {}", path.display())))
}

/// The wsrep status of one node, or why it could not be read.
async fn wsrep(
    layout: &Layout,
    node: usize,
) -> std::result::Result<std::collections::HashMap<String, String>, String> {
    let mut c = mysql::connect(
        layout.nodes[node].addr,
        PORT,
        (CREDENTIALS.0, layout.secret_or(CREDENTIALS.1)),
        Duration::from_millis(800),
    )
    .await
    .map_err(|e| e.text)?;
    let s = tokio::time::timeout(Duration::from_millis(800), mysql::status(&mut c, "wsrep_%"))
        .await
        .map_err(|_| "status timed out".to_string())??;
    let _ = c.disconnect().await;
    Ok(s)
}

fn synced(s: &std::collections::HashMap<String, String>) -> std::result::Result<(), String> {
    let get = |k: &str| s.get(k).map(String::as_str).unwrap_or("?");
    if get("wsrep_ready") == "ON" && get("wsrep_local_state_comment") == "Synced" {
        Ok(())
    } else {
        Err(format!(
            "wsrep_ready={} wsrep_local_state_comment={}",
            get("wsrep_ready"),
            get("wsrep_local_state_comment")
        ))
    }
}

/// A node joins by state transfer from one already synced: the next starts once it is.
#[async_trait]
impl StagedStart for Galera {
    async fn node_ready(&self, layout: &Layout, node: usize) -> std::result::Result<(), String> {
        synced(&wsrep(layout, node).await?)
    }
}

#[async_trait]
impl Database for Galera {
    fn name(&self) -> &'static str {
        "galera"
    }

    fn client(&self) -> &'static str {
        "mysql"
    }

    fn about(&self) -> &'static str {
        "MariaDB 10.11 + Galera 4, multi-master; MySQL protocol (stands in for TiDB in tests)"
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("mariadbd", "mariadb-server"),
            ("mariadb-install-db", "mariadb-server"),
            (PROVIDER, "galera-4"),
            ("rsync", "rsync"),
        ]
    }

    fn client_port(&self) -> u16 {
        PORT
    }

    fn peer_port(&self) -> u16 {
        4567
    }

    fn knobs(&self) -> &'static [Knob] {
        KNOBS
    }

    fn failover(&self) -> Option<&dyn Failover> {
        Some(self)
    }

    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: false,
            settles: Duration::from_secs(10),
            source: "https://galeracluster.com/library/documentation/weighted-quorum.html (a node outside the primary component refuses queries; evs.suspect_timeout PT5S)",
        }
    }

    fn prepare(&self, layout: &Layout) -> Result<()> {
        for (i, n) in layout.nodes.iter().enumerate() {
            for sub in ["data", "run"] {
                let d = n.dir.join(sub);
                std::fs::create_dir_all(&d)
                    .map_err(Error::io(format!("create {}", d.display())))?;
                chown_mysql(&d)?;
            }
            let cnf = n.dir.join("my.cnf");
            crate::files::write(&cnf, config(layout, i))?;
        }
        // Only the bootstrap node needs system tables: the others receive a full copy.
        let first = &layout.nodes[0].dir;
        let init = first.join("init.sql");
        crate::files::write(&init, init_sql(layout.secret_or(CREDENTIALS.1)))?;
        // It holds the lab's password: the server's user's alone.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o600))
            .map_err(Error::io(format!("chmod {}", init.display())))?;
        chown_mysql(&init)?;
        let datadir = format!("--datadir={}", data_dir(first).display());
        run_host(
            "mariadb-install-db",
            &[
                "--no-defaults",
                "--user=mysql",
                &datadir,
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
            ],
        )?;
        Ok(())
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        let dir = &layout.nodes[node].dir;
        let mut args = vec![format!("--defaults-file={}", dir.join("my.cnf").display())];
        if node == 0 {
            args.push("--wsrep-new-cluster".into());
            args.push(format!("--init-file={}", dir.join("init.sql").display()));
        }
        vec![ProcessSpec {
            name: "mariadbd".into(),
            program: "mariadbd".into(),
            args,
            env: Vec::new(),
            user: Some(USER.into()),
            image: None,
        }]
    }

    /// A restarted node joins the running cluster: no bootstrap, whichever node it is.
    fn restart_processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        let mut p = self.processes(layout, node);
        for spec in &mut p {
            spec.args
                .retain(|a| a != "--wsrep-new-cluster" && !a.starts_with("--init-file"));
        }
        p
    }

    fn staged_start(&self) -> Option<&dyn StagedStart> {
        Some(self)
    }

    async fn health(&self, layout: &Layout) -> Health {
        let n = layout.nodes.len();
        let answers = futures::future::join_all((0..n).map(|i| wsrep(layout, i))).await;
        let mut not_ready = Vec::new();
        let mut why = Vec::new();
        for (i, a) in answers.iter().enumerate() {
            let problem = match a {
                Err(e) => Some(e.clone()),
                Ok(s) => synced(s).err().or_else(|| {
                    let size = s
                        .get("wsrep_cluster_size")
                        .map(String::as_str)
                        .unwrap_or("?");
                    (size != n.to_string()).then(|| format!("wsrep_cluster_size={size}"))
                }),
            };
            if let Some(p) = problem {
                not_ready.push(i);
                why.push(format!("{}: {p}", layout.nodes[i].name));
            }
        }
        let version = answers
            .iter()
            .flatten()
            .find_map(|s| s.get("wsrep_provider_version").cloned());
        let version = match version {
            Some(g) => Some(format!(
                "{} (Galera {g})",
                SERVER
                    .version(layout, 0)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            )),
            None => None,
        };
        Health {
            ready: not_ready.is_empty(),
            not_ready,
            why: why.join("; "),
            version,
        }
    }

    async fn setup(&self, layout: &Layout) -> Result<()> {
        SERVER.setup(layout, 0).await
    }

    async fn connect(
        &self,
        layout: &Layout,
        node: usize,
        timeout: Duration,
    ) -> std::result::Result<Box<dyn Client>, ClientError> {
        SERVER.client(layout, node, timeout).await
    }
}

/// Galera's group membership (EVS), as its parameter reference describes it: every node
/// waits for a silent peer until the others suspect it and install a view without it. No
/// node leads, so the model is the same whichever node is cut off.
impl Failover for Galera {
    fn expect(&self, s: &Settings, _role: Role, client_timeout: Duration) -> Option<Expected> {
        let suspect = failover::ms(s, "evs.suspect_timeout", 1)?;
        let check = failover::ms(s, "evs.inactive_check_period", 1)?;
        let retrans = failover::ms(s, "evs.join_retrans_period", 1)?;
        Some(Expected {
            bounds: failover::both(
                suspect,
                suspect + check + retrans + client_timeout,
                format!(
                    "every node stalls until the others suspect the cut node after \
                     evs.suspect_timeout {} (checked every evs.inactive_check_period {}) and \
                     agree on a view without it (resent every evs.join_retrans_period {}); a \
                     request in flight waits out the client's timeout ({})",
                    failover::show(suspect),
                    failover::show(check),
                    failover::show(retrans),
                    failover::show(client_timeout)
                ),
            ),
            source: "https://galeracluster.com/library/documentation/galera-parameters.html",
        })
    }

    fn rejoin(
        &self,
        s: &Settings,
        _role: Role,
        _isolated: Duration,
        client_timeout: Duration,
    ) -> Option<Expected> {
        let retrans = failover::ms(s, "evs.join_retrans_period", 1)?;
        let flush = s.get("innodb_flush_log_at_trx_commit")?;
        Some(Expected {
            bounds: vec![Bound {
                figure: failover::DOWNTIME_ON_RECOVERY,
                low: Duration::ZERO,
                high: retrans + INSTALL_TIMEOUT + client_timeout,
                why: format!(
                    "the returning node joins by a new view, during which every node stalls: \
                     joins are resent every evs.join_retrans_period {} and a view is installed \
                     within evs.install_timeout {} (its documented default); a request in \
                     flight waits out the client's timeout ({}). It then answers 1047 until it \
                     has applied the writesets it missed (IST), which no setting bounds: it \
                     depends on how many it missed and how fast it applies them \
                     (innodb_flush_log_at_trx_commit {flush}), so recovery time has no range",
                    failover::show(retrans),
                    failover::show(INSTALL_TIMEOUT),
                    failover::show(client_timeout)
                ),
            }],
            source: "https://galeracluster.com/library/documentation/galera-parameters.html",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::for_tests(None)
    }

    #[test]
    fn each_node_binds_its_lab_address_and_knows_every_member() {
        let c = config(&layout(), 1);
        for line in [
            "bind-address=198.18.1.2",
            "skip-name-resolve",
            "datadir=/x/n2/data",
            "wsrep_cluster_address=gcomm://198.18.1.1,198.18.1.2,198.18.1.3",
            "wsrep_node_address=198.18.1.2",
            "wsrep_sst_method=rsync",
            "wsrep_sst_receive_address=198.18.1.2:4444",
            "wsrep_provider_options=\"gmcast.listen_addr=tcp://198.18.1.2:4567;ist.recv_addr=198.18.1.2:4568;evs.suspect_timeout=PT5S;evs.inactive_check_period=PT0.5S;evs.inactive_timeout=PT15S;evs.join_retrans_period=PT1S;gcache.size=64M\"",
            "innodb_flush_log_at_trx_commit=1",
        ] {
            assert!(c.lines().any(|l| l == line), "missing {line} in\n{c}");
        }
    }

    #[test]
    fn only_node_1_bootstraps_and_all_run_as_mysql() {
        let l = layout();
        let p1 = &Galera.processes(&l, 0)[0];
        let p2 = &Galera.processes(&l, 1)[0];
        assert!(p1.args.contains(&"--wsrep-new-cluster".to_string()));
        assert!(!p2
            .args
            .iter()
            .any(|a| a.contains("new-cluster") || a.contains("init-file")));
        assert_eq!(p1.user.as_deref(), Some("mysql"));
        assert_eq!(p2.user.as_deref(), Some("mysql"));
        assert_eq!(p2.args[0], "--defaults-file=/x/n2/my.cnf");
    }
}
