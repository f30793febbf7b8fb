//! A Docker engine for the tests that need one: started with its default settings (but
//! for where it keeps its files, a directory of its own) as a machine starts it at boot, and
//! the host put back as it was found when the test ends, also when it fails: Docker turns
//! forwarding on, sets the iptables `FORWARD` policy to `DROP` and makes `docker0`.

use crate::support::*;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";
pub const FORWARDING: &str = "/proc/sys/net/ipv4/ip_forward";
/// Set to 1 as a loaded `br_netfilter` does (Docker loads it), so the test is the same on a
/// machine where it is off: bridged frames on the host meet the host's iptables.
pub const BRIDGE_NF: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// What Docker changes on the host, as the test found it; put back when dropped, also when
/// the test fails.
pub struct Host {
    pub ruleset: String,
    pub forwarding: String,
    bridge_nf: Option<String>,
    /// What Docker makes outside its own directories and was not there.
    absent: Vec<PathBuf>,
    docker0_absent: bool,
    /// The host's links, before Docker made its bridges.
    links: Vec<String>,
}

/// A dockerd this test started, with its default settings but for where it keeps its
/// files (a directory of the test's own, removed with it); stopped when dropped.
pub struct Docker {
    child: Child,
    dir: PathBuf,
}

pub fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn write(path: &str, value: &str) {
    std::fs::write(path, value).unwrap_or_else(|e| panic!("write {path}: {e}"));
}

pub fn ruleset() -> String {
    let out = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft");
    assert!(out.status.success(), "nft list ruleset failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn answers(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

pub fn forward_policy() -> String {
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
    pub fn prepare() -> Host {
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
            links: host_links(),
        };
        write(FORWARDING, "0");
        if host.bridge_nf.is_some() {
            write(BRIDGE_NF, "1");
        }
        host
    }
}

impl Host {
    /// Stops `docker`, puts the host back, and asserts it is as the test found it: its
    /// rules, forwarding, and no link left that was not there.
    pub fn restore_after(self, docker: Docker) {
        let (ruleset_before, forwarding_before) = (self.ruleset.clone(), self.forwarding.clone());
        let links_before = self.links.clone();
        drop(docker);
        drop(self);
        assert_eq!(
            ruleset(),
            ruleset_before,
            "the host's rules are as they were"
        );
        assert_eq!(read(FORWARDING), Some(forwarding_before));
        let left: Vec<String> = host_links()
            .into_iter()
            .filter(|l| !links_before.contains(l))
            .collect();
        assert!(left.is_empty(), "links left on the host: {left:?}");
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
        // A network's bridge outlives an engine that stopped with the network in place
        // (a test that failed before removing it): its route would shadow the next one's.
        for link in host_links() {
            if link.starts_with("br-") && !self.links.contains(&link) {
                let _ = Command::new("ip").args(["link", "del", &link]).status();
            }
        }
        for p in &self.absent {
            let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
        }
    }
}

impl Docker {
    /// Starts dockerd with its default settings and waits until it has set the host's
    /// `FORWARD` policy to `DROP`.
    pub fn start() -> Docker {
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

impl Docker {
    /// The engine's socket, as `DOCKER_HOST` names it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
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

/// The host's network links.
pub fn host_links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
