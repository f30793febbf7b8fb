//! `perseus run zookeeper`: a ZooKeeper ensemble, `sync` + get, then set, per node.

use crate::support::*;

/// ZooKeeper's observable behaviour when its leader is isolated (seen here, with Debian's
/// `tickTime=2000`, `syncLimit=5`: every node stops for about 10 s, until the followers
/// give the leader up and elect one of themselves; the isolated node closes its clients'
/// sessions and refuses new ones at once; after the rejoin it takes about 11 s to follow
/// the new leader):
/// - before the isolation all three serve;
/// - from 12 s after the isolation until the rejoin, the two others serve in every second
///   and the isolated node completes nothing and fails fast (several errors a second);
/// - in the last 5 s all three serve again, and nothing read was stale or lost;
/// - with `--write cas` (setData with the version read) every writer's increments go through.
#[test]
fn run_zookeeper_isolates_the_leader_and_measures_it() {
    require_lab("java", "default-jre-headless");
    require_lab("/usr/share/java/zookeeper.jar", "zookeeper");
    let r = run_scenario(
        "zookeeper",
        "zookeeper",
        &[
            "--isolate",
            "leader",
            "--before",
            "5s",
            "--during",
            "25s",
            "--after",
            "20s",
            "--write",
            "cas",
        ],
    );
    let leader = (1..=3)
        .find(|i| r.stdout.contains(&format!("# isolated n{i}\n")))
        .expect("the leader's isolation is marked")
        - 1;
    let [iso, isolated, rejoin, _] = r.isolate_marks();
    r.assert_serving(iso.saturating_sub(3), iso, &[true; 3], "all serve before");
    let mut others = [true; 3];
    others[leader] = false;
    r.assert_serving(
        isolated + 12,
        rejoin,
        &others,
        "the two others serve, the isolated leader not",
    );
    let late_errors: u64 = r
        .rows_between(isolated + 12, rejoin)
        .iter()
        .map(|row| row.err[leader] as u64)
        .sum();
    assert!(
        late_errors >= 3 * 10,
        "the isolated node fails fast: {late_errors} errors in 10+ s"
    );
    let last = r.last_second();
    r.assert_serving(last - 4, last + 1, &[true; 3], "all serve again");
    assert_eq!(r.summary["correctness"]["violations"], 0);
    assert_eq!(r.summary["lost_acknowledged_writes"], 0);
    // Compare-and-set by znode version: every writer's increments go through, each with
    // its attempt and the zxid of its change.
    assert_eq!(r.write_mode(), "cas");
    let attempts = r.attempts();
    assert!(
        attempts.acknowledged.iter().all(|n| *n > 10) && attempts.all_revised,
        "{attempts:?}"
    );
    assert!(r.summary["database_version"]
        .as_str()
        .unwrap_or("")
        .starts_with("3.8"));
    let _ = std::fs::remove_dir_all(&r.out);
}
