//! Crash safety: `perseus run` killed with SIGKILL at random moments (bring-up, steady,
//! fault, heal, teardown), then `perseus down`: nothing of the lab is left, and whatever
//! record the run had written reads back.

use crate::support::*;
use std::time::{Duration, Instant};

/// How many kill points one run of the suite tries (each run draws new ones: the seed is
/// the time, printed with the outcomes).
const POINTS: u64 = 6;

#[test]
fn a_run_killed_at_any_moment_is_removed_by_down_and_its_record_reports() {
    require_lab("etcd", "etcd-server");
    // Seeded, and reported, so a failing point can be tried again: PERSEUS_CRASH_SEED=N.
    let seed = std::env::var("PERSEUS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| perseus::clock::unix_ms() as u64);
    let mut rng = perseus::fault::Rng::new(seed);
    // The whole run takes about 12 s here (bring-up, steady, 6 s timeline, final reads,
    // teardown): the kill points spread over 11 s, so a few land after it ended.
    let span_ms = 11_000;
    let mut outcomes = Vec::new();
    for k in 0..POINTS {
        let at = Duration::from_millis(rng.below(span_ms) as u64);
        let lab = lab_name(&format!("crash{k}"));
        let _guard = LabGuard(lab.clone());
        let out = out_dir(&format!("crash{k}"));
        let mut child = perseus()
            .args([
                "run", "etcd", "--before", "2s", "--during", "2s", "--after", "2s",
            ])
            .args(["--lab", &lab, "--out", out.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut links = Vec::new();
        while started.elapsed() < at && child.try_wait().unwrap().is_none() {
            if links.is_empty() && lab_dir(&lab).join("state.json").exists() {
                links = std::panic::catch_unwind(|| links_of(&lab)).unwrap_or_default();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        let what = format!("seed {seed}, point {k}: killed at {at:?}");
        if lab_dir(&lab).exists() {
            let (code, stdout, stderr) = run(&["down", "--lab", &lab]);
            assert_eq!(code, 0, "{what}: perseus down: {stdout}{stderr}");
        }
        let left = leftovers(&lab, &links);
        assert!(left.is_empty(), "{what}: left behind: {left:?}");
        let reported = if perseus::record::in_results(&out).is_ok() {
            let (code, stdout, stderr) = run(&["report", out.to_str().unwrap()]);
            assert!(
                code == 0 || code == 4,
                "{what}: the record re-reports: {stdout}{stderr}"
            );
            "record re-reported"
        } else {
            "no record yet"
        };
        outcomes.push(format!(
            "{what}: {}; {reported}",
            if finished { "had finished" } else { "killed" }
        ));
        let _ = std::fs::remove_dir_all(&out);
    }
    // The points, for the test's output (nextest shows it with --no-capture or on failure).
    println!("{}", outcomes.join("\n"));
    assert!(
        outcomes.iter().filter(|o| o.contains(": killed;")).count() as u64 >= POINTS / 2,
        "most points killed a running perseus: {outcomes:#?}"
    );
}
