//! `perseus run --repeat --same-lab` and `perseus check`: three runs of one scenario on one
//! etcd lab, their distribution checked against each run's own summary, and the gate on
//! it. (Repeats on a fresh lab each are what `perseus matrix` runs: tests/integration/matrix.rs.)

use crate::support::*;
use perseus::report::repeat::Repeat;
use perseus::report::summary::Summary;

#[test]
fn three_runs_make_a_distribution_that_check_gates() {
    require_lab("etcd", "etcd-server");
    let out = out_dir("repeat");
    let scenario = out.with_extension("toml");
    std::fs::write(
        &scenario,
        r#"description = "isolate n2 briefly, with a gate"
expect = ["lost_acknowledged_writes == 0", "max(downtime_on_isolation_ms) <= 600000"]

[[phase]]
name = "before"
duration = "3s"

[[phase]]
name = "isolated"
duration = "4s"
faults = ["isolate n2"]

[[phase]]
name = "after"
duration = "5s"
faults = ["rejoin n2"]
"#,
    )
    .unwrap();
    let lab = lab_name("repeat");
    let _guard = LabGuard(lab.clone());
    let (code, stdout, stderr) = run(&[
        "run",
        "etcd",
        "--repeat",
        "3",
        "--same-lab",
        "--scenario",
        scenario.to_str().unwrap(),
        "--write",
        "cas",
        "--lab",
        &lab,
        "--out",
        out.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&scenario);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for k in 1..=3 {
        assert!(
            stderr.contains(&format!("run {k} of 3")),
            "progress names run {k}: {stderr}"
        );
    }
    assert!(
        stderr.contains("left"),
        "an estimate of the time left: {stderr}"
    );
    assert!(stdout.contains("3 runs of etcd"), "{stdout}");
    assert!(
        stdout.contains("the scenario's expectations:")
            && stdout.contains("ok    lost_acknowledged_writes == 0"),
        "{stdout}"
    );
    assert!(leftovers(&lab, &[]).is_empty(), "every lab is gone");
    assert_eq!(
        stderr.matches("starting 3 etcd nodes").count(),
        1,
        "one lab for the three runs: {stderr}"
    );

    // The distribution holds each run's own figures, in run order.
    let r = Repeat::load(&out.join("summary.json")).expect("the repeat's summary");
    assert_eq!(r.runs, ["1", "2", "3"]);
    let runs: Vec<Summary> = (1..=3)
        .map(|k| Summary::load(&out.join(k.to_string()).join("summary.json")).unwrap())
        .collect();
    for (k, s) in runs.iter().enumerate() {
        for (key, v) in s.figures() {
            assert_eq!(r.figures[&key].values[k], v, "run {} {key}", k + 1);
        }
    }
    // Each run knows what n2 was when it was cut off, and bears the range etcd's failover
    // model gives for that role (whether the run fell inside it is the database's affair).
    let ranges = &r.expected["downtime_on_isolation_ms"].ranges;
    for (k, s) in runs.iter().enumerate() {
        let role = s.fault.as_ref().and_then(|f| f.role.as_deref());
        let want = match role {
            Some("leader") => [900, 3200],
            Some("follower") => [0, 0],
            other => panic!("run {}: n2's role not recorded: {other:?}", k + 1),
        };
        assert_eq!(ranges[k], Some(want), "run {} ({role:?})", k + 1);
        assert_eq!(r.roles[k].as_deref(), role);
        // The other side of the fault: cut off for 4 s, longer than an election timeout,
        // without pre-vote n2 comes back with a higher term whatever it was.
        assert_eq!(
            r.expected["downtime_on_recovery_ms"].ranges[k],
            Some([900, 5100]),
            "run {}",
            k + 1
        );
        let e = &s.expected[0];
        assert_eq!(
            e.within,
            e.measured_ms.is_some_and(|m| m >= want[0] && m <= want[1])
        );
    }
    let down = &r.figures["downtime_on_isolation_ms"];
    let mut v: Vec<u64> = down.values.iter().flatten().copied().collect();
    v.sort();
    assert_eq!(v.len(), 3, "every run measured it: {down:?}");
    assert_eq!(
        (down.min, down.median, down.max),
        (Some(v[0]), Some(v[1]), Some(v[2]))
    );
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    for k in 1..=3 {
        assert!(
            page.contains(&format!("href=\"{k}/report.html\"")),
            "run {k} is linked"
        );
        assert!(out.join(k.to_string()).join("report.html").exists());
    }

    // The distribution is rebuilt from the records alone.
    let (code, stdout, stderr) = run(&["report", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("rewrote the results of 3 runs"), "{stdout}");
    let again = Repeat::load(&out.join("summary.json")).unwrap();
    assert_eq!(
        again.figures, r.figures,
        "the same distribution from the records"
    );

    // The gate.
    let dir = out.to_str().unwrap();
    let (code, stdout, _) = run(&["check", dir, "--expect", "lost_acknowledged_writes == 0"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("ok    lost_acknowledged_writes == 0"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&[
        "check",
        dir,
        "--expect",
        "max(lost_acknowledged_writes) >= 1",
        "--expect",
        "violations == 0",
    ]);
    assert_eq!(code, 5, "a failed expectation exits 5: {stdout}{stderr}");
    assert!(
        stdout.contains(
            "FAIL  max(lost_acknowledged_writes) >= 1: max(lost_acknowledged_writes) was 0 over 3 runs"
        )
            && stdout.contains("ok    violations == 0"),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 of 2 expectations did not hold"),
        "{stderr}"
    );
    // The same verdicts as a document, with the same exit code.
    let (code, stdout, _) = run(&[
        "check",
        dir,
        "--expect",
        "max(lost_acknowledged_writes) >= 1",
        "--expect",
        "violations == 0",
        "--json",
    ]);
    assert_eq!(code, 5, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("check --json is JSON");
    assert_eq!(
        (v["format"].as_str(), v["passed"].as_bool()),
        (Some("perseus-check"), Some(false))
    );
    assert_eq!(v["expectations"][0]["ok"], false);
    assert_eq!(v["expectations"][1]["ok"], true);
    let (code, stdout, _) = run(&["report", dir, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("report --json is JSON");
    assert_eq!(v["format"], "perseus-repeat");
    assert_eq!(v["runs"].as_array().map(Vec::len), Some(3));

    let (code, stdout, _) = run(&["check", dir]);
    assert_eq!(code, 0, "the scenario's own expectations: {stdout}");
    assert!(
        stdout.contains("max(downtime_on_isolation_ms) <= 600000"),
        "{stdout}"
    );
    let one = out.join("1");
    let (code, stdout, _) = run(&["check", one.to_str().unwrap(), "--baseline", dir]);
    assert_eq!(
        code, 0,
        "a run is within a baseline it is part of: {stdout}"
    );
    assert!(stdout.contains("figures within the baseline"), "{stdout}");

    let (code, _, stderr) = run(&["check", dir, "--expect", "downtime <= 2s"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a whole number"), "{stderr}");
    let (code, _, stderr) = run(&["check", dir, "--expect", "downtime_ms <= 2"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("the figures are: downtime_on_isolation_ms"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["check", "/nonexistent-perseus-dir"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("has no summary.json"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
}
