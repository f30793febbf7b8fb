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
    links_before: Vec<String>,
}

impl Containers {
    /// Starts Docker (as a machine does at boot) and builds `images`, each as `(IMAGE,
    /// [PROGRAM…, --user NAME…])`. Perseus and `docker` reach that engine by `DOCKER_HOST`.
    fn start(images: &[(&str, &[&str])]) -> Containers {
        assert!(
            Path::new("/usr/bin/docker").exists(),
            "the docker client is missing: apt-get install docker.io (or run .ci/run)"
        );
        let links_before = host_links();
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
        Containers {
            docker,
            host,
            links_before,
        }
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

    /// Stops the engine, then checks the host is as it was found: its rules, forwarding,
    /// links, and no namespace of Perseus's.
    fn finish(self) {
        let Containers {
            docker,
            host,
            links_before,
        } = self;
        let (ruleset_before, forwarding_before) = (host.ruleset.clone(), host.forwarding.clone());
        drop(docker);
        drop(host);
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
    let c = Containers::start(&[(ETCD_IMAGE, &["etcd", "--user", "etcd"])]);
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
    every_fault_effects(&r);
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
    let c = Containers::start(&[(ETCD_IMAGE, &["etcd", "--user", "etcd"])]);
    let lab = lab_name("dk-kill");
    let _guard = LabGuard(lab.clone());
    let out = out_dir("dk-kill");
    let err_path = out.with_extension("stderr");
    let mut run = perseus()
        .args(["run", "etcd", "--backend", "docker", "--image", ETCD_IMAGE])
        .args(["--lab", &lab, "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
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
    c.finish();
}
