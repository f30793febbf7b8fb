//! TiDB, the seed's database: per node a PD (placement driver), a TiKV (storage) and a TiDB
//! (SQL, MySQL protocol), wired as the seed's docker-compose did. Not packaged for Debian:
//! on this machine's namespaces the binaries come from `--bin-dir`, then PATH, then TiUP's
//! components directory; in containers (`--backend docker`) each component runs from
//! PingCAP's image of it (`pingcap/pd`, `pingcap/tikv`, `pingcap/tidb`, one tag).
//!
//! Ready when PD reports every TiKV store up and every tidb-server answers; warmed up (faults
//! may start) when PD reports no region missing or waiting for a replica. The seed's bug
//! (tidb#2676) was an isolation during warm-up, when regions still had a single replica:
//! `perseus run tidb --skip-warmup` starts the faults without waiting, to reproduce it.

use super::failover::{self, Bound, Expected, Failover, Role, Settings};
use super::http::get_json;
use super::knob::{self, Kind, Knob};
use super::mysql;
use super::{Client, ClientError, CutOff, Database, Health, WarmUp};
use crate::error::{Error, Result};
use crate::lab::process::find_program;
use crate::lab::{Layout, ProcessSpec};
use async_trait::async_trait;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const PD_CLIENT: u16 = 2379;
pub const PD_PEER: u16 = 2380;
pub const TIKV: u16 = 20160;
pub const TIKV_STATUS: u16 = 20180;
pub const SQL: u16 = 4000;
pub const SQL_STATUS: u16 = 10080;
/// TiDB's initial account: root without a password.
const SERVER: mysql::Server = mysql::Server {
    port: SQL,
    credentials: ("root", ""),
    lab_password: false,
};

/// (binary, TiUP component).
const BINARIES: [(&str, &str); 3] = [
    ("pd-server", "pd"),
    ("tikv-server", "tikv"),
    ("tidb-server", "tidb"),
];

pub struct Tidb;

/// The settings `--set` changes, written into TiKV's and PD's configuration files; the
/// defaults are TiKV's and PD's own, stated so that the record and the model read them.
pub const KNOBS: &[Knob] = &[
    Knob {
        name: "raft-base-tick-interval-ms",
        default: "1000",
        kind: Kind::Number,
        about: "ms of a TiKV Raft tick (raftstore.raft-base-tick-interval)",
    },
    Knob {
        name: "raft-election-timeout-ticks",
        default: "10",
        kind: Kind::Number,
        about: "ticks a TiKV region's follower waits without its leader before it campaigns",
    },
    Knob {
        name: "raft-heartbeat-ticks",
        default: "2",
        kind: Kind::Number,
        about: "ticks between a TiKV region leader's heartbeats",
    },
    Knob {
        name: "lease",
        default: "3",
        kind: Kind::Number,
        about: "seconds of PD's leader lease (PD's leader, which hands out timestamps, is replaced after it)",
    },
];
const MODEL_SOURCE: &str = "https://docs.pingcap.com/tidb/stable/tikv-configuration-file/ (raft-base-tick-interval 1s, raft-election-timeout-ticks 10, raft-heartbeat-ticks 2, prevote true); https://docs.pingcap.com/tidb/stable/pd-configuration-file/ (lease 3)";

/// TiUP's home: `$TIUP_HOME`, else `~/.tiup`.
fn tiup_home() -> Option<PathBuf> {
    std::env::var_os("TIUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".tiup")))
}

/// Orders version directory names (`v7.5.0` < `v7.10.1`) by their numbers.
fn version_key(name: &str) -> Vec<u64> {
    name.trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Where `binary` is: in `bin_dir`, on PATH, or in the newest version TiUP installed.
pub fn locate(binary: &str, component: &str, bin_dir: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = bin_dir {
        return find_program(&dir.join(binary).to_string_lossy());
    }
    if let Some(p) = find_program(binary) {
        return Some(p);
    }
    let versions = tiup_home()?.join("components").join(component);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(versions)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort_by_key(|d| version_key(&d.file_name().unwrap_or_default().to_string_lossy()));
    dirs.iter()
        .rev()
        .map(|d| d.join(binary))
        .find_map(|p| find_program(&p.to_string_lossy()))
}

fn program(binary: &str, component: &str, layout: &Layout) -> String {
    if layout.containers() {
        // PingCAP's images keep each binary at the root.
        return format!("/{binary}");
    }
    locate(binary, component, layout.bin_dir.as_deref())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| binary.to_string())
}

/// The image of TiDB's SQL layer that a container lab runs from, pinned; PD and TiKV run
/// from PingCAP's images of theirs with the same tag ([`component_image`]).
pub const IMAGE: &str = "pingcap/tidb:v8.1.0";

/// The image of `component` (`pd`, `tikv` or `tidb`) beside the lab's `image`: where
/// `image` is `…/tidb:TAG`, the same path and tag with `component` for `tidb`; otherwise
/// `image` itself, an image that holds every component's binary at its root.
pub fn component_image(image: &str, component: &str) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let (repo, tag) = match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (image, None),
    };
    let (path, last) = match repo.rsplit_once('/') {
        Some((p, l)) => (Some(p), l),
        None => (None, repo),
    };
    if last != "tidb" {
        return image.to_string();
    }
    let mut out = match path {
        Some(p) => format!("{p}/{component}"),
        None => component.to_string(),
    };
    if let Some(t) = tag {
        out = format!("{out}:{t}");
    }
    out
}

/// PD's configuration: its leader lease, and as many replicas as the lab can hold, at most 3.
pub fn pd_config(layout: &Layout) -> String {
    format!(
        "lease = {}\n[replication]\nmax-replicas = {}\n",
        knob::value(layout, knob::named(KNOBS, "lease")),
        layout.nodes.len().min(3)
    )
}

/// TiKV's configuration: a block cache fit for several TiKVs on one machine, and the Raft
/// timing the knobs give.
pub fn tikv_config(layout: &Layout) -> String {
    let k = |name: &str| knob::value(layout, knob::named(KNOBS, name));
    format!(
        "[storage.block-cache]\ncapacity = \"256MB\"\n\
         [raftstore]\nraft-base-tick-interval = \"{}ms\"\nraft-election-timeout-ticks = {}\n\
         raft-heartbeat-ticks = {}\n",
        k("raft-base-tick-interval-ms"),
        k("raft-election-timeout-ticks"),
        k("raft-heartbeat-ticks")
    )
}

fn pd_endpoints(layout: &Layout) -> String {
    let v: Vec<String> = layout
        .nodes
        .iter()
        .map(|n| format!("{}:{PD_CLIENT}", n.addr))
        .collect();
    v.join(",")
}

async fn pd_get(layout: &Layout, path: &str) -> std::result::Result<serde_json::Value, String> {
    let mut last = String::from("no PD");
    for n in &layout.nodes {
        match get_json(
            SocketAddr::from((n.addr, PD_CLIENT)),
            path,
            Duration::from_millis(800),
        )
        .await
        {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Warmed up once PD reports no region missing or waiting for a replica.
#[async_trait]
impl WarmUp for Tidb {
    async fn warmed_up(&self, layout: &Layout) -> std::result::Result<(), String> {
        for check in ["miss-peer", "pending-peer"] {
            let v = pd_get(layout, &format!("/pd/api/v1/regions/check/{check}")).await?;
            let count = v["count"].as_u64().unwrap_or(u64::MAX);
            if count != 0 {
                return Err(format!("PD reports {count} regions with a {check}"));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Database for Tidb {
    fn name(&self) -> &'static str {
        "tidb"
    }

    /// PD's and TiKV's: two directories.
    fn data_dir(&self) -> Option<&'static str> {
        None
    }

    fn client(&self) -> &'static str {
        "mysql"
    }

    fn image(&self) -> Option<&'static str> {
        Some(IMAGE)
    }

    /// PD's and TiKV's images beside the lab's (TiDB's).
    fn images(&self, image: &str) -> Vec<String> {
        let mut v: Vec<String> = ["pd", "tikv"]
            .iter()
            .map(|c| component_image(image, c))
            .filter(|c| c != image)
            .collect();
        v.dedup();
        v
    }

    fn ready_when(&self) -> &'static str {
        "PD (GET /pd/api/v1/stores) to report every TiKV store up, and every tidb-server to answer"
    }

    fn about(&self) -> &'static str {
        "TiDB (PD + TiKV + TiDB per node), the seed's database; binaries from --bin-dir or TiUP, or PingCAP's images in containers (--backend docker)"
    }

    /// TiDB's binaries are neither packaged nor downloadable on this project's machines.
    fn run_here(&self) -> bool {
        false
    }

    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("pd-server", "TiUP or --bin-dir (no Debian package)"),
            ("tikv-server", "TiUP or --bin-dir (no Debian package)"),
            ("tidb-server", "TiUP or --bin-dir (no Debian package)"),
        ]
    }

    fn client_port(&self) -> u16 {
        SQL
    }

    fn peer_port(&self) -> u16 {
        PD_PEER
    }

    fn cut_off(&self) -> CutOff {
        CutOff {
            serves: false,
            settles: Duration::from_secs(20),
            source: "https://docs.pingcap.com/tidb/stable/tidb-architecture (a TiDB server holds no data: it reads and writes through TiKV region leaders and PD, which a node cut off from its peers cannot reach)",
        }
    }

    fn check_installed(&self, bin_dir: Option<&Path>) -> Result<()> {
        for (binary, component) in BINARIES {
            if locate(binary, component, bin_dir).is_none() {
                let looked = match bin_dir {
                    Some(d) => format!("in {}", d.display()),
                    None => "on PATH or in ~/.tiup/components".into(),
                };
                return Err(Error::MissingBinary {
                    binary: format!("{binary} ({looked})"),
                    how: "TiDB has no Debian package: install TiUP and run `tiup install pd tikv tidb`, or pass --bin-dir DIR holding pd-server, tikv-server and tidb-server".into(),
                });
            }
        }
        Ok(())
    }

    fn prepare(&self, layout: &Layout) -> Result<()> {
        for n in &layout.nodes {
            let write = |name: &str, text: &str| {
                let p = n.dir.join(name);
                crate::files::write(&p, text)
            };
            write("pd.toml", &pd_config(layout))?;
            write("tikv.toml", &tikv_config(layout))?;
        }
        Ok(())
    }

    fn processes(&self, layout: &Layout, node: usize) -> Vec<ProcessSpec> {
        let n = &layout.nodes[node];
        let (a, dir) = (n.addr, n.dir.display());
        let cluster: Vec<String> = layout
            .nodes
            .iter()
            .map(|m| format!("pd-{}=http://{}:{PD_PEER}", m.name, m.addr))
            .collect();
        let spec = |name: &str, binary: &str, component: &str, args: Vec<String>| ProcessSpec {
            name: name.into(),
            program: program(binary, component, layout),
            args,
            env: Vec::new(),
            user: None,
            image: layout
                .image
                .as_deref()
                .map(|i| component_image(i, component))
                .filter(|c| Some(c.as_str()) != layout.image.as_deref()),
        };
        vec![
            spec(
                "pd",
                "pd-server",
                "pd",
                vec![
                    format!("--name=pd-{}", n.name),
                    format!("--data-dir={dir}/pd"),
                    format!("--client-urls=http://{a}:{PD_CLIENT}"),
                    format!("--advertise-client-urls=http://{a}:{PD_CLIENT}"),
                    format!("--peer-urls=http://{a}:{PD_PEER}"),
                    format!("--advertise-peer-urls=http://{a}:{PD_PEER}"),
                    format!("--initial-cluster={}", cluster.join(",")),
                    format!("--config={dir}/pd.toml"),
                ],
            ),
            spec(
                "tikv",
                "tikv-server",
                "tikv",
                vec![
                    format!("--addr={a}:{TIKV}"),
                    format!("--advertise-addr={a}:{TIKV}"),
                    format!("--status-addr={a}:{TIKV_STATUS}"),
                    format!("--pd={}", pd_endpoints(layout)),
                    format!("--data-dir={dir}/tikv"),
                    format!("--config={dir}/tikv.toml"),
                ],
            ),
            spec(
                "tidb",
                "tidb-server",
                "tidb",
                vec![
                    "--store=tikv".into(),
                    format!("--path={}", pd_endpoints(layout)),
                    format!("--host={a}"),
                    format!("-P={SQL}"),
                    format!("--status={SQL_STATUS}"),
                    format!("--advertise-address={a}"),
                ],
            ),
        ]
    }

    async fn health(&self, layout: &Layout) -> Health {
        probe(layout).await.0
    }

    fn leadership(&self) -> Option<&dyn super::Leadership> {
        Some(self)
    }

    fn knobs(&self) -> &'static [Knob] {
        KNOBS
    }

    fn failover(&self) -> Option<&dyn Failover> {
        Some(self)
    }

    async fn setup(&self, layout: &Layout) -> Result<()> {
        SERVER.setup(layout, 0).await
    }

    fn warm_up(&self) -> Option<&dyn WarmUp> {
        Some(self)
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

#[async_trait]
impl super::Leadership for Tidb {
    async fn leader(&self, layout: &Layout) -> Option<usize> {
        probe(layout).await.1
    }
}

/// The cluster's health, and the node that leads as the servers report it.
async fn probe(layout: &Layout) -> (Health, Option<usize>) {
    let n = layout.nodes.len();
    let mut why = Vec::new();
    let up = match pd_get(layout, "/pd/api/v1/stores").await {
        Ok(v) => v["stores"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter(|s| s["store"]["state_name"] == "Up")
                    .count()
            })
            .unwrap_or(0),
        Err(e) => {
            why.push(format!("PD: {e}"));
            0
        }
    };
    if up < n {
        why.push(format!("PD reports {up} of {n} TiKV stores up"));
    }
    let answers = futures::future::join_all((0..n).map(|i| SERVER.version(layout, i))).await;
    let mut not_ready = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        if let Err(e) = a {
            not_ready.push(i);
            why.push(format!("{} tidb-server: {e}", layout.nodes[i].name));
        }
    }
    if up < n && not_ready.is_empty() {
        not_ready.push(0);
    }
    let leader = pd_get(layout, "/pd/api/v1/leader")
        .await
        .ok()
        .and_then(|v| {
            let name = v["name"].as_str()?.strip_prefix("pd-")?.to_string();
            layout.nodes.iter().position(|n| n.name == name)
        });
    let health = Health {
        ready: why.is_empty(),
        not_ready,
        why: why.join("; "),
        version: answers.into_iter().flatten().flatten().next(),
    };
    (health, leader)
}

impl Tidb {
    /// A region's election window: a follower campaigns after a random election timeout to
    /// twice it, counted from the leader's last heartbeat; and why.
    fn region_failover(s: &Settings, client_timeout: Duration) -> Option<(Duration, String)> {
        let tick = failover::ms(s, "raft-base-tick-interval-ms", 1)?;
        let election = tick.checked_mul(failover::count(s, "raft-election-timeout-ticks")?)?;
        let heartbeat = tick.checked_mul(failover::count(s, "raft-heartbeat-ticks")?)?;
        let lease = failover::ms(s, "lease", 1000)?;
        // PD's takeover, a lease and an election of its own, ends well within that.
        let high = 2 * election + heartbeat + client_timeout;
        Some((
            high,
            format!(
                "regions led from the cut-off node get new leaders once their followers have \
                 heard nothing for a random election timeout to twice it (raft-election-timeout-ticks \
                 × raft-base-tick-interval: {}; heartbeats every {}), and if it held PD's \
                 leader, timestamps stop until another PD takes over after its lease ({}); a \
                 client stalls only if its key's region (or PD's leader) was there, and a \
                 request in flight waits out the client's timeout ({})",
                failover::show(election),
                failover::show(heartbeat),
                failover::show(lease),
                failover::show(client_timeout)
            ),
        ))
    }
}

/// TiKV's regions and PD each run Raft; which node leads the region a client's key lives in
/// is not what `leader` names (PD's leader), so the model holds for whichever node is cut off.
impl Failover for Tidb {
    fn expect(&self, s: &Settings, _role: Role, client_timeout: Duration) -> Option<Expected> {
        let (high, why) = Self::region_failover(s, client_timeout)?;
        Some(Expected {
            bounds: failover::both(Duration::ZERO, high, why),
            source: MODEL_SOURCE,
        })
    }

    /// TiKV and PD pre-vote by default, so a returning node's campaign deposes nobody.
    fn rejoin(
        &self,
        s: &Settings,
        _role: Role,
        _isolated: Duration,
        _client_timeout: Duration,
    ) -> Option<Expected> {
        Self::region_failover(s, Duration::ZERO)?;
        Some(Expected {
            bounds: vec![Bound {
                figure: failover::DOWNTIME_ON_RECOVERY,
                low: Duration::ZERO,
                high: Duration::ZERO,
                why: "TiKV's regions and PD pre-vote (TiKV's raftstore.prevote is on by \
                      default), so a returning node rejoins as a follower and nobody stops \
                      (the seed's TiDB 1.1 stopped 82 s here, after its warm-up: outside \
                      this range); how long its regions then take to catch up no setting \
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

    /// PD and TiKV run from PingCAP's images beside TiDB's, with its tag; an image of
    /// another name is taken to hold every binary.
    #[test]
    fn each_component_runs_from_its_own_image_in_containers() {
        assert_eq!(component_image(IMAGE, "pd"), "pingcap/pd:v8.1.0");
        assert_eq!(component_image(IMAGE, "tidb"), IMAGE);
        assert_eq!(
            component_image("registry.example:5000/pingcap/tidb:v7.5.1", "tikv"),
            "registry.example:5000/pingcap/tikv:v7.5.1"
        );
        assert_eq!(component_image("tidb", "pd"), "pd");
        assert_eq!(
            component_image("mine/all-in-one:1", "pd"),
            "mine/all-in-one:1"
        );
        assert_eq!(
            component_image("pingcap/tidb@sha256:abc", "pd"),
            "pingcap/tidb@sha256:abc"
        );
        assert_eq!(
            Tidb.images(IMAGE),
            ["pingcap/pd:v8.1.0", "pingcap/tikv:v8.1.0"]
        );
        assert!(Tidb.images("mine/all-in-one:1").is_empty());
        let mut l = Layout::for_tests(None);
        l.image = Some(IMAGE.into());
        let p = Tidb.processes(&l, 0);
        let got: Vec<(&str, Option<&str>)> = p
            .iter()
            .map(|p| (p.program.as_str(), p.image.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("/pd-server", Some("pingcap/pd:v8.1.0")),
                ("/tikv-server", Some("pingcap/tikv:v8.1.0")),
                ("/tidb-server", None),
            ]
        );
        assert!(Tidb
            .processes(&Layout::for_tests(None), 0)
            .iter()
            .all(|p| p.image.is_none()));
    }

    fn layout() -> Layout {
        Layout::for_tests(Some("/opt/tidb/bin"))
    }

    #[test]
    fn a_3_node_lab_runs_pd_tikv_and_tidb_per_node_wired_as_the_seed() {
        let p = Tidb.processes(&layout(), 1);
        let names: Vec<&str> = p.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["pd", "tikv", "tidb"]);
        assert_eq!(
            p[0].args,
            [
                "--name=pd-n2",
                "--data-dir=/x/n2/pd",
                "--client-urls=http://198.18.1.2:2379",
                "--advertise-client-urls=http://198.18.1.2:2379",
                "--peer-urls=http://198.18.1.2:2380",
                "--advertise-peer-urls=http://198.18.1.2:2380",
                "--initial-cluster=pd-n1=http://198.18.1.1:2380,pd-n2=http://198.18.1.2:2380,pd-n3=http://198.18.1.3:2380",
                "--config=/x/n2/pd.toml",
            ]
        );
        assert_eq!(
            p[1].args,
            [
                "--addr=198.18.1.2:20160",
                "--advertise-addr=198.18.1.2:20160",
                "--status-addr=198.18.1.2:20180",
                "--pd=198.18.1.1:2379,198.18.1.2:2379,198.18.1.3:2379",
                "--data-dir=/x/n2/tikv",
                "--config=/x/n2/tikv.toml",
            ]
        );
        assert_eq!(
            p[2].args,
            [
                "--store=tikv",
                "--path=198.18.1.1:2379,198.18.1.2:2379,198.18.1.3:2379",
                "--host=198.18.1.2",
                "-P=4000",
                "--status=10080",
                "--advertise-address=198.18.1.2",
            ]
        );
    }

    #[test]
    fn config_fits_the_lab() {
        assert_eq!(
            pd_config(&layout()),
            "lease = 3\n[replication]\nmax-replicas = 3\n"
        );
        let mut one = layout();
        one.nodes.truncate(1);
        assert!(pd_config(&one).contains("max-replicas = 1"));
        let tikv = tikv_config(&layout());
        assert!(tikv.contains("capacity = \"256MB\""));
        assert!(
            tikv.contains("\n[raftstore]\nraft-base-tick-interval = \"1000ms\"\n"),
            "{tikv}"
        );
        assert!(tikv.contains("\nraft-election-timeout-ticks = 10\nraft-heartbeat-ticks = 2\n"));
        assert!(pd_config(&layout()).starts_with("lease = 3\n"));
    }

    #[test]
    fn binaries_come_from_bin_dir_then_path_then_the_newest_tiup_version() {
        let root = std::env::temp_dir().join(format!("perseus-tidb-bins-{}", std::process::id()));
        let mk = |p: &Path| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let bin = root.join("bin/pd-server");
        mk(&bin);
        assert_eq!(
            locate("pd-server", "pd", Some(&root.join("bin"))),
            Some(bin)
        );
        assert_eq!(
            locate("tikv-server", "tikv", Some(&root.join("bin"))),
            None,
            "--bin-dir is the only place looked"
        );
        let old = root.join("tiup/components/tikv/v7.5.0/tikv-server");
        let new = root.join("tiup/components/tikv/v7.10.1/tikv-server");
        mk(&old);
        mk(&new);
        std::env::set_var("TIUP_HOME", root.join("tiup"));
        assert_eq!(locate("tikv-server", "tikv", None), Some(new));
        let err = Tidb
            .check_installed(Some(&root.join("empty")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tiup install pd tikv tidb") && err.contains("--bin-dir"),
            "{err}"
        );
        std::env::remove_var("TIUP_HOME");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// TiKV's defaults: ticks of 1 s, an election after 10 to 20 of them, heartbeats every
    /// 2: up to 23 s with a 1 s timeout, for whichever node; and 0 after the rejoin.
    #[test]
    fn the_model_is_a_regions_election_and_pre_vote_on_return() {
        use crate::db::failover::{DISTURBANCE, DOWNTIME_ON_RECOVERY};
        let mut s = crate::db::knob::effective(&layout(), KNOBS);
        let t = Duration::from_secs(1);
        let e = Tidb.expect(&s, Role::Leader, t).unwrap();
        let b = e.bounds.iter().find(|b| b.figure == DISTURBANCE).unwrap();
        assert_eq!((b.low.as_millis(), b.high.as_millis()), (0, 23_000));
        assert_eq!(Tidb.expect(&s, Role::Follower, t), Some(e));
        let r = Tidb
            .rejoin(&s, Role::Unknown, Duration::from_secs(30), t)
            .unwrap();
        assert_eq!(r.bounds.len(), 1);
        assert_eq!(r.bounds[0].figure, DOWNTIME_ON_RECOVERY);
        assert_eq!(r.bounds[0].high, Duration::ZERO);
        s.insert("raft-base-tick-interval-ms".into(), "100".into());
        let e = Tidb.expect(&s, Role::Unknown, t).unwrap();
        assert_eq!(e.bounds[0].high.as_millis(), 3200);
    }
}
