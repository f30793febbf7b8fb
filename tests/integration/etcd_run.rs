//! `perseus run etcd` end to end on a short timeline.

use crate::support::*;

/// 10 s before, 15 s isolated, 15 s after. etcd keeps a majority (n1, n3), so:
/// - before the isolation every node serves;
/// - from 4 s after it (time to elect a new leader if n2 led) n2 completes nothing while
///   n1 and n3 serve;
/// - in the last 5 s after the rejoin all three serve again;
/// - afterwards nothing of the lab is left, and the results directory is complete;
/// - a setting changed with --set reaches the servers' command line and the summary, and
///   --rate caps each client.
#[test]
fn run_etcd_isolates_n2_and_measures_it() {
    require_lab("etcd", "etcd-server");
    let r = run_scenario(
        "etcd",
        "run",
        &[
            "--before",
            "10s",
            "--during",
            "15s",
            "--after",
            "15s",
            "--set",
            "election-timeout=1500",
            "--rate",
            "300/s",
        ],
    );
    let command = std::fs::read_to_string(r.out.join("config").join("n1-etcd.command"))
        .expect("the servers' command lines are saved");
    assert!(command.contains("--election-timeout=1500"), "{command}");
    assert!(command.contains("--heartbeat-interval=100"), "{command}");
    assert_eq!(r.summary["settings"]["election-timeout"], "1500");
    assert_eq!(r.summary["rate_cap"], 300);
    for n in ["n1", "n2", "n3"] {
        let achieved = r.summary["rate_achieved"][n].as_u64().unwrap_or(0);
        assert!(
            (1..=300).contains(&achieved),
            "{n} ran at {achieved}/s, capped at 300/s"
        );
    }
    assert!(
        r.stdout.contains("(capped at 300/s)"),
        "the rate achieved is stated: {}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("#legend: time|n1|n2|n3|n1:err|n2:err|n3:err"),
        "{}",
        r.stdout
    );
    let [iso, isolated, rejoin, rejoined] = r.isolate_marks();

    const ALL: [bool; 3] = [true, true, true];
    r.assert_serving(
        iso.saturating_sub(5),
        iso,
        &ALL,
        "all serve before the isolation",
    );
    let during = r.rows_between(isolated + 4, rejoin);
    assert!(during.len() >= 8, "{} rows while isolated", during.len());
    r.assert_serving(
        isolated + 4,
        rejoin,
        &[true, false, true],
        "only n1 and n3 serve while n2 is isolated",
    );
    let last = r.last_second();
    assert!(last >= rejoined + 10, "the run goes on after the rejoin");
    r.assert_serving(last - 4, last + 1, &ALL, "all serve again after the rejoin");

    let m = &r.summary["metrics"];
    for key in [
        "downtime_on_isolation",
        "partial_downtime_on_isolation",
        "disturbance_time",
        "downtime_on_recovery",
        "partial_downtime_on_recovery",
        "recovery_time",
    ] {
        assert!(
            m.get(format!("{key}_s")).is_some() && m.get(format!("{key}_ms")).is_some(),
            "{key} in {m}"
        );
    }
    let recovery_ms = m["recovery_time_ms"]
        .as_u64()
        .expect("etcd recovers within the run");
    assert!(recovery_ms < 10_000, "recovery took {recovery_ms} ms");
    assert_eq!(r.summary["fault"]["target"], "n2");
    let c = &r.summary["correctness"];
    assert_eq!(
        c["violations"], 0,
        "etcd loses nothing and serves no stale read: {c}"
    );
    assert_eq!(
        r.summary["lost_acknowledged_writes"], 0,
        "no acknowledged write is lost: {c}"
    );
    assert!(
        r.stdout.contains("lost acknowledged writes: none"),
        "the verdict says so: {}",
        r.stdout
    );
    assert_eq!(
        c["final_reads"], 9,
        "every key read through every node at the end: {c}"
    );
    assert_eq!(
        c["by_kind"],
        serde_json::json!({"stale-read": 0, "late-write": 0, "lost-write": 0, "phantom": 0}),
        "no anomaly of any kind: {c}"
    );
    assert_eq!(
        r.write_mode(),
        "blind",
        "the seed's blind write is the default"
    );
    let attempts = r.attempts();
    assert!(
        attempts.acknowledged.iter().all(|n| *n > 10) && attempts.all_revised,
        "every acknowledged write carries its attempt and etcd's revision: {attempts:?}"
    );
    assert_eq!(attempts.compare_failed, 0, "blind writes compare nothing");
    assert_eq!(r.summary["record_complete"], true);
    for f in ["logs/n1-etcd.log", "logs/n2-etcd.log", "logs/n3-etcd.log"] {
        assert!(r.out.join(f).exists(), "{f} in the results");
    }
    // `perseus report` rebuilds the same table from the record alone.
    let live = std::fs::read_to_string(r.out.join("client.log")).unwrap();
    let (code, _, stderr) = run(&["report", r.out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(r.out.join("client.log")).unwrap(),
        live
    );
    let _ = std::fs::remove_dir_all(&r.out);
}

/// A run killed with SIGKILL leaves its lab up; `perseus down` removes all of it, and the
/// record written so far is readable.
#[test]
fn down_cleans_up_after_a_killed_run() {
    require_lab("etcd", "etcd-server");
    let lab = lab_name("kill");
    let _guard = LabGuard(lab.clone());
    let out = out_dir("kill");
    let mut child = perseus()
        .args([
            "run",
            "etcd",
            "--before",
            "60s",
            "--lab",
            &lab,
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let rows = || {
        std::fs::read_to_string(out.join("client.log"))
            .map(|t| t.lines().filter(|l| !l.starts_with('#')).count())
            .unwrap_or(0)
    };
    while rows() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never got to 3 rows"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "perseus run ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let links = links_of(&lab);
    let pids = pids_of(&lab);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !leftovers(&lab, &links).is_empty(),
        "the lab outlives a killed perseus"
    );
    assert_eq!(pids.len(), 3);

    let (code, stdout, stderr) = run(&["down", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let left = leftovers(&lab, &links);
    assert!(left.is_empty(), "left behind: {left:?}");

    let (code, stdout, stderr) = run(&["report", out.to_str().unwrap()]);
    assert_eq!(code, 0, "the partial record is readable: {stderr}");
    assert!(stdout.contains("no fault"), "{stdout}");
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("\"record_complete\": false"), "{summary}");
    let _ = std::fs::remove_dir_all(&out);
}
