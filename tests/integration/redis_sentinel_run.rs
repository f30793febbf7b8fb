//! `perseus run redis-sentinel`: Redis replication with Sentinel failover, clients that follow
//! their own node's Sentinel to the primary.

use crate::support::*;

/// Redis Sentinel's observable behaviour when the primary (n1) is isolated (seen here: no
/// client ever sees an error; n1's own Sentinel cannot reach the others, keeps naming n1,
/// and n1 keeps acknowledging its client's writes; the other two Sentinels promote a
/// replica after 2 s and their clients move to it; at the rejoin n1 is demoted, drops what
/// it took alone, and its client moves too):
/// - all three serve in every second, before, during and after the isolation;
/// - in the last 5 s of the isolation n1's writes are answered by n1, and n2's and n3's by
///   one other node, the new primary;
/// - in the last 5 s of the run every write is answered by that new primary;
/// - writes that n2's or n3's client made to n1 after it was cut off and before the
///   failover are lost: the checker reports them as stale reads (exit 4);
/// - the six whole-second metrics are all 0, and the acknowledged writes lost number in the
///   thousands (n1's client wrote to n1 alone for the whole isolation).
#[test]
fn run_redis_sentinel_isolates_the_primary_and_measures_it() {
    require_lab("redis-server", "redis-server");
    require_lab("redis-sentinel", "redis-sentinel");
    let r = run_scenario_expecting("redis-sentinel", "redis", &PRIMARY_CUT_OFF, &[4]);
    assert_primary_fails_over(&r);
    let _ = std::fs::remove_dir_all(&r.out);
}

/// The same isolation with `--write cas` (a server-side script sets the key only if it
/// still holds what was read): the failover still rolls n1's acknowledged writes back, and
/// the verdict says so; none is lost to a late write, and the increments go through.
#[test]
fn run_redis_sentinel_with_compare_and_set_still_loses_the_old_primarys_writes() {
    require_lab("redis-server", "redis-server");
    require_lab("redis-sentinel", "redis-sentinel");
    let r = run_scenario_expecting(
        "redis-sentinel",
        "rediscas",
        &[
            "--isolate",
            "leader",
            "--before",
            "5s",
            "--during",
            "12s",
            "--after",
            "8s",
            "--write",
            "cas",
        ],
        &[4],
    );
    assert_eq!(r.write_mode(), "cas");
    let c = &r.summary["correctness"];
    let lost = r.summary["lost_acknowledged_writes"].as_u64().unwrap();
    assert!(lost >= 1000, "lost acknowledged writes: {lost}");
    assert_eq!(c["lost_by_kind"]["late-write"], 0, "{c}");
    assert_eq!(c["lost_by_kind"]["stale-read"].as_u64(), Some(lost), "{c}");
    let attempts = r.attempts();
    assert!(
        attempts.acknowledged.iter().all(|n| *n > 100),
        "{attempts:?}"
    );
    assert!(
        r.stdout.contains("DATA LOSS: lost acknowledged writes: "),
        "{}",
        r.stdout
    );
    let _ = std::fs::remove_dir_all(&r.out);
}

/// The run's arguments of [`assert_primary_fails_over`]: the primary cut off for 15 s.
pub const PRIMARY_CUT_OFF: [&str; 8] = [
    "--isolate",
    "leader",
    "--before",
    "5s",
    "--during",
    "15s",
    "--after",
    "10s",
];

/// Asserts what a run of Redis Sentinel with [`PRIMARY_CUT_OFF`] shows, wherever its nodes
/// run: everyone serves throughout, the Sentinels promote one new primary, and the writes
/// the old primary n1 took while cut off are lost when it is demoted (the exit code is 4).
pub fn assert_primary_fails_over(r: &RunResult) {
    assert!(
        r.stdout.contains("isolated n1"),
        "the primary n1 is isolated:\n{}",
        r.stdout
    );
    let [iso, _, rejoin, _] = r.isolate_marks();
    let last = r.last_second();
    r.assert_serving(
        iso.saturating_sub(3),
        last + 1,
        &[true, true, true],
        "all serve, also while n1 is cut off",
    );
    // Table rows are 1-based seconds: row s covers [s-1, s).
    let late = (rejoin - 6, rejoin - 1);
    assert_eq!(
        r.writes_served_by(0, late.0, late.1),
        [0],
        "n1 keeps its own writes while isolated"
    );
    let new_primary = r.writes_served_by(1, late.0, late.1);
    assert!(
        new_primary.len() == 1 && new_primary[0] != 0,
        "n2's writes go to one new primary: {new_primary:?}"
    );
    assert_eq!(r.writes_served_by(2, late.0, late.1), new_primary);
    r.assert_all_end_on(&new_primary);
    let c = &r.summary["correctness"];
    let stale_during = ["n2", "n3"]
        .iter()
        .filter_map(|n| c["by_reader"][n]["during"].as_u64())
        .sum::<u64>();
    assert!(
        stale_during >= 1 && c["by_kind"]["stale-read"].as_u64() >= Some(1),
        "the writes n1 took from n2's and n3's clients are lost: {c}"
    );
    // The finding that matters: the table looks perfect, and thousands of acknowledged
    // writes are gone (n1's client's, from the whole isolation, when n1 is demoted).
    for key in [
        "downtime_on_isolation_s",
        "partial_downtime_on_isolation_s",
        "disturbance_time_s",
        "downtime_on_recovery_s",
        "partial_downtime_on_recovery_s",
        "recovery_time_s",
    ] {
        assert_eq!(r.summary["metrics"][key], 0, "{key}");
    }
    let lost = r.summary["lost_acknowledged_writes"].as_u64().unwrap();
    assert!(lost >= 1000, "lost acknowledged writes: {lost}");
    assert!(
        c["lost_by_key"]["n1"].as_u64() >= Some(1),
        "n1's writes to the isolated primary are lost: {c}"
    );
    assert_eq!(
        c["lost_by_kind"]["stale-read"].as_u64(),
        Some(lost),
        "rolled back with the old primary: {c}"
    );
    assert_eq!(r.write_mode(), "blind");
    assert!(
        r.stdout.contains("DATA LOSS: lost acknowledged writes: ")
            && r.stdout
                .contains("rolled back (the database went back to older data)"),
        "the verdict leads with the loss, and says how:\n{}",
        r.stdout
    );
    assert!(r.out.join("logs/n1-redis-sentinel.log").exists());
}
