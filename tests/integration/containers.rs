//! Labs whose nodes are containers (`--backend docker`), on a real Docker engine this test
//! starts, from images built here of Debian's packages (`tools/debian-image`; no registry
//! is reached). The same assertions as on a namespace lab, then nothing left behind.

use crate::engine::*;
use crate::support::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The engine, its images, and the host as it was, for one test; put back when dropped.
struct Containers {
    docker: Docker,
    host: Host,
}

impl Containers {
    /// Starts Docker (as a machine does at boot) and builds `images`, each as `(IMAGE,
    /// [PROGRAM…, --user NAME…])`. Perseus and `docker` reach that engine by `DOCKER_HOST`.
    fn start(images: &[(&str, &[&str])]) -> Containers {
        assert!(
            Path::new("/usr/bin/docker").exists(),
            "the docker client is missing: apt-get install docker.io (or run .ci/run)"
        );
        let host = Host::prepare();
        let docker = Docker::start();
        // Each test runs in a process of its own (nextest): the children inherit it.
        std::env::set_var("DOCKER_HOST", docker.host());
        for (image, args) in images {
            let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/debian-image"))
                .arg(image)
                .args(*args)
                .output()
                .expect("run tools/debian-image");
            assert!(
                out.status.success(),
                "build {image}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Containers { docker, host }
    }

    /// What carries a `perseus.lab` label in the engine: containers, networks, volumes.
    fn labelled(&self) -> [Vec<String>; 3] {
        ["container", "network", "volume"].map(|kind| {
            let out = Command::new("docker")
                .args([kind, "ls", "-q", "--filter", "label=perseus.lab"])
                .args(if kind == "container" {
                    &["-a"][..]
                } else {
                    &[]
                })
                .output()
                .expect("docker ls");
            assert!(out.status.success(), "docker {kind} ls failed");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(String::from)
                .collect()
        })
    }

    /// Stops the engine, then checks the host is as it was found: its rules, forwarding
    /// and links.
    fn finish(self) {
        let Containers { docker, host } = self;
        host.restore_after(docker);
    }
}

use std::path::Path;

const ETCD_IMAGE: &str = "perseus-test/etcd:debian";
const REDIS_IMAGE: &str = "perseus-test/redis:debian";

/// etcd in containers plays `tests/fixtures/every-fault.toml` with the lab's assertions
/// ([`every_fault_effects`]): every fault of the registry, each healed before the next,
/// with kill/restart and pause/resume through the engine. The results name the image,
/// its id, and each container with its command line.
#[test]
fn every_fault_has_its_effect_on_etcd_in_containers() {
    require_lab("etcd", "etcd-server");
    let c = Containers::start(&[(ETCD_IMAGE, &["etcd", "sleep", "--user", "etcd"])]);
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/every-fault.toml"
    );
    let r = run_scenario_expecting(
        "etcd",
        "dk-faults",
        &[
            "--backend",
            "docker",
            "--image",
            ETCD_IMAGE,
            "--scenario",
            scenario,
            "--write",
            "cas",
        ],
        &[0],
    );
    every_fault_effects(&r, true);
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(r.out.join("containers.json")).expect("containers.json"),
    )
    .unwrap();
    assert_eq!(manifest["engine"], "docker");
    assert_eq!(manifest["image"], ETCD_IMAGE);
    assert!(manifest["image_id"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let containers = manifest["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 3, "{manifest}");
    for (i, k) in containers.iter().enumerate() {
        let command: Vec<&str> = k["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(command[0], "etcd", "{k}");
        assert!(
            command.contains(&format!("n{}", i + 1).as_str()),
            "{k}: its --name"
        );
    }
    let logs = std::fs::read_to_string(r.out.join("logs/n2-etcd.log")).unwrap();
    assert!(
        logs.matches("starting an etcd server").count() >= 2,
        "n2's log holds the output of its first container and of the one restarted after the kill"
    );
    let _ = std::fs::remove_dir_all(&r.out);
    assert_eq!(c.labelled(), [vec![], vec![], vec![]] as [Vec<String>; 3]);
    c.finish();
}

/// Redis Sentinel in containers, the primary cut off: what a namespace lab shows
/// (`assert_primary_fails_over`): a new primary, everyone serving, and the old primary's
/// acknowledged writes lost when it is demoted.
#[test]
fn redis_sentinel_in_containers_fails_over_when_the_primary_is_cut_off() {
    require_lab("redis-server", "redis-server");
    let c = Containers::start(&[(
        REDIS_IMAGE,
        &["redis-server", "redis-sentinel", "--user", "redis"],
    )]);
    let mut args = vec!["--backend", "docker", "--image", REDIS_IMAGE];
    args.extend_from_slice(&crate::redis_sentinel_run::PRIMARY_CUT_OFF);
    let r = run_scenario_expecting("redis-sentinel", "dk-redis", &args, &[4]);
    crate::redis_sentinel_run::assert_primary_fails_over(&r);
    let _ = std::fs::remove_dir_all(&r.out);
    c.finish();
}

/// `perseus run --backend docker` killed with SIGKILL in the middle of its run leaves its
/// containers and network; `perseus down` removes all of them, by their label, and the
/// namespaces' names with them.
#[test]
fn a_killed_container_run_leaves_nothing_after_down() {
    require_lab("etcd", "etcd-server");
    let c = Containers::start(&[(ETCD_IMAGE, &["etcd", "sleep", "--user", "etcd"])]);
    let lab = lab_name("dk-kill");
    let _guard = LabGuard(lab.clone());
    let out = out_dir("dk-kill");
    let err_path = out.with_extension("stderr");
    let mut run = run_until_steady(
        &[
            "run",
            "etcd",
            "--backend",
            "docker",
            "--image",
            ETCD_IMAGE,
            "--lab",
            &lab,
            "--out",
            out.to_str().unwrap(),
        ],
        &err_path,
    );
    run.kill().unwrap();
    run.wait().unwrap();
    let [containers, networks, _] = c.labelled();
    assert_eq!(
        containers.len(),
        6,
        "3 sandboxes and 3 servers: {containers:?}"
    );
    assert_eq!(networks.len(), 1, "{networks:?}");
    let (code, stdout, stderr) = crate::support::run(&["down", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(c.labelled(), [vec![], vec![], vec![]] as [Vec<String>; 3]);
    assert!(!lab_dir(&lab).exists());
    let netns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!netns.contains(&lab), "{netns}");
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&err_path);
    a_server_runs_from_its_own_image();
    c.finish();
}

/// A server whose spec names an image of its own (a database of components that ship
/// apart, as TiDB's) runs from that image, which the lab checks with its own before
/// anything is made: a missing one is refused, naming the pull, and leaves no lab.
fn a_server_runs_from_its_own_image() {
    use perseus::lab::{self, Hosts, ProcessSpec};
    let other = "perseus-test/other:1";
    let tagged = Command::new("docker")
        .args(["tag", ETCD_IMAGE, other])
        .status()
        .unwrap();
    assert!(tagged.success());
    let hosts = |also: &str| Hosts::Containers {
        engine: perseus::containers::Flavour::Docker,
        image: ETCD_IMAGE.into(),
        also: vec![also.into()],
    };
    let settings = Default::default();
    let lab = lab_name("dk-img");
    let missing = lab::create(
        &lab,
        "etcd",
        3,
        None,
        None,
        &settings,
        &hosts("perseus-test/nosuch:1"),
    );
    let Err(e) = missing else {
        panic!("a missing image is refused")
    };
    assert!(
        e.to_string().contains("docker pull perseus-test/nosuch:1"),
        "{e}"
    );
    assert!(!lab_dir(&lab).exists());
    let _guard = LabGuard(lab.clone());
    let mut state = lab::create(&lab, "etcd", 3, None, None, &settings, &hosts(other)).unwrap();
    assert_eq!(state.containers.as_ref().unwrap().also, [other]);
    for (name, image) in [("own", Some(other.to_string())), ("lab", None)] {
        let spec = ProcessSpec {
            name: name.into(),
            program: "sleep".into(),
            args: vec!["60".into()],
            env: Vec::new(),
            user: None,
            image,
        };
        state.spawn(0, &spec).unwrap();
    }
    let image_of = |name: &str| {
        let container = state.nodes[0]
            .processes
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.container.clone())
            .expect("a container");
        let out = Command::new("docker")
            .args(["inspect", "-f", "{{.Config.Image}}", &container])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(image_of("own"), other);
    assert_eq!(image_of("lab"), ETCD_IMAGE);
    let (code, _, stderr) = crate::support::run(&["down", "--lab", &lab]);
    assert_eq!(code, 0, "{stderr}");
    let _ = Command::new("docker").args(["rmi", other]).status();
}

/// A compose project of Debian's `docker-compose`, as a user brings it up, taken down
/// when dropped (also when the test fails).
struct Project {
    dir: std::path::PathBuf,
}

impl Project {
    /// Three etcd services on 198.18.77.0/24, and `side1`, a container that only sleeps,
    /// beside `etcd1`: with `--group n1=etcd1,side1` they are one node.
    fn up() -> Project {
        assert!(
            Path::new("/usr/bin/docker-compose").exists(),
            "docker-compose is missing: apt-get install docker-compose (or run .ci/run)"
        );
        let dir = std::env::temp_dir().join(format!("perseus-it-project-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let addr = |i: u8| format!("198.18.77.1{i}");
        let cluster: Vec<String> = (1..=3)
            .map(|i| format!("etcd{i}=http://{}:2380", addr(i)))
            .collect();
        let mut file = String::from("version: \"2.4\"\nservices:\n");
        for i in 1..=3 {
            let a = addr(i);
            file.push_str(&format!(
                "  etcd{i}:\n    image: {ETCD_IMAGE}\n    entrypoint: [\"etcd\"]\n    command: [\"--name\", \"etcd{i}\", \"--data-dir\", \"/tmp/data\", \"--listen-client-urls\", \"http://{a}:2379\", \"--advertise-client-urls\", \"http://{a}:2379\", \"--listen-peer-urls\", \"http://{a}:2380\", \"--initial-advertise-peer-urls\", \"http://{a}:2380\", \"--initial-cluster\", \"{}\", \"--initial-cluster-state\", \"new\"]\n    networks:\n      db:\n        ipv4_address: {a}\n",
                cluster.join(",")
            ));
        }
        file.push_str(&format!(
            "  side1:\n    image: {ETCD_IMAGE}\n    entrypoint: [\"sleep\", \"infinity\"]\n    networks:\n      db:\n        ipv4_address: 198.18.77.21\nnetworks:\n  db:\n    ipam:\n      config:\n        - subnet: 198.18.77.0/24\n"
        ));
        std::fs::write(dir.join("docker-compose.yml"), file).unwrap();
        let project = Project { dir };
        let out = project.compose(&["up", "-d"]);
        assert!(
            out.status.success(),
            "docker-compose up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Up as a user finds it before measuring: every etcd takes connections.
        let t = Instant::now();
        for i in 1..=3 {
            let to: std::net::SocketAddr = format!("{}:2379", addr(i)).parse().unwrap();
            while std::net::TcpStream::connect_timeout(&to, Duration::from_millis(500)).is_err() {
                if t.elapsed() > Duration::from_secs(30) {
                    let ps = project.compose(&["ps"]);
                    let logs = project.compose(&["logs", "--tail", "10"]);
                    panic!(
                        "etcd{i} of the project does not take connections within 30 s:\n{}\n{}",
                        String::from_utf8_lossy(&ps.stdout),
                        String::from_utf8_lossy(&logs.stdout)
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        project
    }

    fn file(&self) -> std::path::PathBuf {
        self.dir.join("docker-compose.yml")
    }

    fn compose(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker-compose")
            .arg("-f")
            .arg(self.file())
            .args(args)
            .output()
            .expect("run docker-compose")
    }

    /// The pid of the container of service `service` (asked of the engine: compose's own
    /// client takes a second).
    fn pid(&self, service: &str) -> String {
        let project = self.dir.file_name().unwrap().to_string_lossy().into_owned();
        let out = Command::new("docker")
            .args(["ps", "-q", "--filter"])
            .arg(format!("label=com.docker.compose.project={project}"))
            .arg("--filter")
            .arg(format!("label=com.docker.compose.service={service}"))
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let out = Command::new("docker")
            .args(["inspect", "-f", "{{.State.Pid}}", &id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `nft list tables` in the network namespace of service `service`'s container.
    fn tables(&self, service: &str) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid(service), "-n", "nft", "list", "tables"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether a TCP connection from service `from`'s namespace reaches `to` within 1 s.
    fn connects(&self, from: &str, to: &str) -> bool {
        let (host, port) = to.split_once(':').unwrap();
        Command::new("nsenter")
            .args(["-t", &self.pid(from), "-n", "timeout", "1", "bash", "-c"])
            .arg(format!("echo > /dev/tcp/{host}/{port}"))
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// The project's running containers.
    fn running(&self) -> usize {
        let out = self.compose(&["ps", "-q", "--filter", "status=running"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A compose project Perseus did not start plays `tests/fixtures/compose-faults.toml`, its
/// node n1 made of two containers (`--group n1=etcd1,side1`). The faults whose path differs
/// from a container lab's: pause and kill go through the engine to the project's own
/// containers (with the lab's assertions), and while n1 is cut off both its containers hold
/// the rules and neither reaches a peer, while the client still reaches n1 (n1 completes
/// nothing, n2 and n3 serve). The other faults take the same path as in a container lab,
/// where `every_fault_has_its_effect_on_etcd_in_containers` plays them all. Afterwards no
/// rule of Perseus's is left in any container, and the project is as it was: nothing
/// removed, every container running.
#[test]
fn a_compose_project_takes_the_engines_faults_and_cuts_off_a_node_of_two_containers() {
    require_lab("etcd", "etcd-server");
    let c = Containers::start(&[(ETCD_IMAGE, &["etcd", "sleep", "--user", "etcd"])]);
    let project = Project::up();
    let out = out_dir("compose");
    let err_path = out.with_extension("stderr");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/compose-faults.toml"
    );
    let file = project.file();
    let mut run = perseus()
        .args(["run", "etcd", "--compose", file.to_str().unwrap()])
        .args([
            "--group",
            "n1=etcd1,side1",
            "--group",
            "n2=etcd2",
            "--group",
            "n3=etcd3",
        ])
        .args([
            "--scenario",
            scenario,
            "--write",
            "cas",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    // While n1 is isolated (an 8 s phase, 31 s in).
    let log = out.join("client.log");
    let t = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("# isolated n1")
    {
        if t.elapsed() > Duration::from_secs(200) || run.try_wait().unwrap().is_some() {
            let _ = run.kill();
            panic!(
                "n1 was not isolated: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for service in ["etcd1", "side1"] {
        assert!(
            project.tables(service).contains("perseus_isolate"),
            "{service} holds n1's rules: {}",
            project.tables(service)
        );
        assert!(
            !project.connects(service, "198.18.77.12:2380"),
            "{service} is cut off from n2"
        );
    }
    assert!(
        project.connects("etcd2", "198.18.77.13:2380"),
        "n2 reaches n3"
    );
    let output = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    let r = RunResult::load(out, stdout);
    pause_effects(&r);
    kill_effects(&r, false);
    let row = |verb: &str| marker_row(&r.table, verb);
    let all = |x: &perseus::record::table::Row| x.ok.iter().all(|n| *n > 0);
    check_rows(
        &r,
        row("restarted") + 4,
        row("isolating"),
        "restarted n2 serves again",
        &all,
    );
    check_rows(
        &r,
        row("isolated") + 4,
        row("rejoining"),
        "isolated n1 completes nothing, n2 and n3 serve",
        &|x| x.ok[0] == 0 && x.ok[1] > 0 && x.ok[2] > 0,
    );
    let last = r.last_second();
    check_rows(&r, last - 2, last + 1, "all serve at the end", &all);
    let kinds: Vec<&str> = r.summary["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["pause", "kill", "isolate"]);
    assert_no_anomaly(&r);
    for service in ["etcd1", "side1", "etcd2", "etcd3"] {
        assert!(
            !project.tables(service).contains("perseus"),
            "{service} keeps {}",
            project.tables(service)
        );
    }
    assert_eq!(project.running(), 4, "the project is as it was");
    assert_eq!(c.labelled(), [vec![], vec![], vec![]] as [Vec<String>; 3]);
    let _ = std::fs::remove_file(&err_path);
    drop(project);
    c.finish();
}
