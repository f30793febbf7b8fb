//! A lab beside a running Docker engine: Docker turns forwarding on and sets the host's
//! iptables `FORWARD` policy to `DROP`, which a lab bridged on the host would suffer (its
//! frames between nodes pass the host's iptables). The lab's traffic must not care, whether
//! Docker started before the lab or in the middle of a run.

use crate::support::*;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DOCKER_SOCKET: &str = "/var/run/docker.sock";
const FORWARDING: &str = "/proc/sys/net/ipv4/ip_forward";
/// Set to 1 as a loaded `br_netfilter` does (Docker loads it), so the test is the same on a
/// machine where it is off: bridged frames on the host meet the host's iptables.
const BRIDGE_NF: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// What Docker changes on the host, as the test found it; put back when dropped, also when
/// the test fails.
struct Host {
    ruleset: String,
    forwarding: String,
    bridge_nf: Option<String>,
    /// What Docker makes outside its own directories and was not there.
    absent: Vec<PathBuf>,
    docker0_absent: bool,
}

/// A dockerd this test started, with its default settings but for where it keeps its
/// files (a directory of the test's own, removed with it); stopped when dropped.
struct Docker {
    child: Child,
    dir: PathBuf,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn write(path: &str, value: &str) {
    std::fs::write(path, value).unwrap_or_else(|e| panic!("write {path}: {e}"));
}

fn ruleset() -> String {
    let out = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft");
    assert!(out.status.success(), "nft list ruleset failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn answers(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

fn forward_policy() -> String {
    let out = Command::new("iptables")
        .args(["-S", "FORWARD"])
        .output()
        .expect("iptables (Debian's docker.io depends on it)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

impl Host {
    /// Notes the host as it is, then turns forwarding off (as on a machine where nothing
    /// turned it on) and bridged frames through iptables on (as Docker's `br_netfilter`).
    fn prepare() -> Host {
        let host = Host {
            ruleset: ruleset(),
            forwarding: read(FORWARDING).expect("ip_forward"),
            bridge_nf: read(BRIDGE_NF),
            absent: ["/etc/docker/key.json", "/etc/docker"]
                .iter()
                .map(PathBuf::from)
                .filter(|p| !p.exists())
                .collect(),
            docker0_absent: !Path::new("/sys/class/net/docker0").exists(),
        };
        write(FORWARDING, "0");
        if host.bridge_nf.is_some() {
            write(BRIDGE_NF, "1");
        }
        host
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("nft").args(["flush", "ruleset"]).status();
        if !self.ruleset.trim().is_empty() {
            use std::io::Write as _;
            if let Ok(mut nft) = Command::new("nft")
                .args(["-f", "-"])
                .stdin(Stdio::piped())
                .spawn()
            {
                let _ = nft.stdin.take().unwrap().write_all(self.ruleset.as_bytes());
                let _ = nft.wait();
            }
        }
        let _ = std::fs::write(FORWARDING, &self.forwarding);
        if let Some(v) = &self.bridge_nf {
            let _ = std::fs::write(BRIDGE_NF, v);
        }
        if self.docker0_absent {
            let _ = Command::new("ip").args(["link", "del", "docker0"]).status();
        }
        for p in &self.absent {
            let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
        }
    }
}

impl Docker {
    /// Starts dockerd with its default settings and waits until it has set the host's
    /// `FORWARD` policy to `DROP`.
    fn start() -> Docker {
        assert!(
            Path::new("/usr/sbin/dockerd").exists(),
            "dockerd is missing: apt-get install docker.io (or run .ci/run)"
        );
        assert!(
            !answers(Path::new(DOCKER_SOCKET)),
            "a Docker engine already runs here: this test starts one of its own as a machine \
             does at boot; stop it (systemctl stop docker.socket docker) and run the test again"
        );
        let dir = std::env::temp_dir().join(format!("perseus-it-docker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("dockerd.log");
        let socket = dir.join("docker.sock");
        let out = std::fs::File::create(&log).unwrap();
        let at = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let child = Command::new("/usr/sbin/dockerd")
            .args(["--data-root", &at("data"), "--exec-root", &at("exec")])
            .args(["--pidfile", &at("docker.pid"), "--host"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start dockerd");
        let mut docker = Docker { child, dir };
        let said =
            |d: &Docker| std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default();
        let t = Instant::now();
        while !answers(&socket) || !forward_policy().contains("DROP") {
            if let Ok(Some(status)) = docker.child.try_wait() {
                panic!("dockerd exited ({status}): {}", said(&docker));
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "dockerd did not answer and set FORWARD to DROP within 60 s ({}): {}",
                forward_policy(),
                said(&docker)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(
            read(FORWARDING).as_deref(),
            Some("1"),
            "Docker turned forwarding on"
        );
        docker
    }
}

impl Drop for Docker {
    /// Stops dockerd, and the containerd it started, within 40 s.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t = Instant::now();
        while self.child.try_wait().ok().flatten().is_none()
            && t.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let exec = self.dir.join("exec").to_string_lossy().into_owned();
        while !processes_mentioning(&exec).is_empty() && t.elapsed() < Duration::from_secs(40) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const RUN: [&str; 8] = [
    "--isolate",
    "follower",
    "--before",
    "8s",
    "--during",
    "6s",
    "--after",
    "6s",
];

/// Asserts a run beside Docker measured what a run without it does: nobody down when a
/// follower is cut off, and every node serving before the fault.
fn assert_undisturbed(r: &RunResult, when: &str) {
    let m = &r.summary["metrics"];
    assert_eq!(
        m["downtime_on_isolation_ms"], 0,
        "{when}: {m}\n{}",
        r.stdout
    );
    let [isolate, ..] = r.isolate_marks();
    r.assert_serving(2, isolate, &[true; 3], when);
}

/// Docker starts in the middle of one run and is there from the start of the next: both
/// runs form their cluster and measure no downtime for a cut-off follower; then Docker
/// goes and the host is as the test found it, with nothing of Perseus's left.
#[test]
fn a_lab_works_beside_docker_started_before_or_during_a_run() {
    require_lab("etcd", "etcd-server");
    let links_before = host_links();
    let host = Host::prepare();
    let (ruleset_before, forwarding_before) = (host.ruleset.clone(), host.forwarding.clone());

    // Docker starts while the first run is in its steady phase.
    let lab = lab_name("docker-mid");
    let _guard = LabGuard(lab.clone());
    let out = out_dir("docker-mid");
    let err_path = out.with_extension("stderr");
    let _removed = Removed(vec![err_path.clone(), out.clone()]);
    let mut args: Vec<&str> = vec!["run", "etcd"];
    args.extend_from_slice(&RUN);
    args.extend_from_slice(&["--lab", &lab, "--out", out.to_str().unwrap()]);
    let mut run = perseus()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !std::fs::read_to_string(&err_path)
        .unwrap_or_default()
        .contains("steady after")
    {
        if t.elapsed() > Duration::from_secs(90) || run.try_wait().unwrap().is_some() {
            let _ = run.kill();
            panic!(
                "the run did not get steady: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let docker = Docker::start();
    let output = run.wait_with_output().unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        leftovers(&lab, &[]).is_empty(),
        "{:?}",
        leftovers(&lab, &[])
    );
    let r = RunResult::load(out, stdout);
    assert_undisturbed(&r, "Docker started during the run");

    // Docker is there from the start: the lab forms, as it did not when bridged on the host.
    let r = run_scenario("etcd", "docker-before", &RUN);
    assert_undisturbed(&r, "Docker running from the start");

    drop(docker);
    drop(host);
    assert_eq!(
        ruleset(),
        ruleset_before,
        "the host's rules are as they were"
    );
    assert_eq!(read(FORWARDING), Some(forwarding_before));
    assert!(
        processes_mentioning("dockerd").is_empty(),
        "{:?}",
        processes_mentioning("dockerd")
    );
    let left: Vec<String> = host_links()
        .into_iter()
        .filter(|l| !links_before.contains(l))
        .collect();
    assert!(left.is_empty(), "links left on the host: {left:?}");
}

/// The host's network links.
fn host_links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
