//! A lab beside a running Docker engine: Docker turns forwarding on and sets the host's
//! iptables `FORWARD` policy to `DROP`, which a lab bridged on the host would suffer (its
//! frames between nodes pass the host's iptables). The lab's traffic must not care, whether
//! Docker started before the lab or in the middle of a run.

use crate::engine::*;
use crate::support::*;

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
    let host = Host::prepare();

    // Docker starts while the first run is in its steady phase.
    let lab = lab_name("docker-mid");
    let _guard = LabGuard(lab.clone());
    let out = out_dir("docker-mid");
    let err_path = out.with_extension("stderr");
    let _removed = Removed(vec![err_path.clone(), out.clone()]);
    let mut args: Vec<&str> = vec!["run", "etcd"];
    args.extend_from_slice(&RUN);
    args.extend_from_slice(&["--lab", &lab, "--out", out.to_str().unwrap()]);
    let run = run_until_steady(&args, &err_path);
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

    host.restore_after(docker);
    assert!(
        processes_mentioning("dockerd").is_empty(),
        "{:?}",
        processes_mentioning("dockerd")
    );
}
