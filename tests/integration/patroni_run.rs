//! `perseus run patroni`: PostgreSQL with Patroni (etcd in the lab), clients that connect
//! with `target_session_attrs=read-write`.

use crate::support::*;

/// Patroni's observable behaviour when the primary is isolated (whichever node won the
/// race to initialise the cluster) (seen here, with
/// Patroni's defaults `ttl` 30 s, `retry_timeout` 10 s: the clients, which still reach it, keep
/// writing to it for about 12 s until its Patroni, cut off from etcd's majority, demotes
/// it; then nobody can write for about 10 s until the leader key expires and a replica is
/// promoted; the clients then settle on the new primary; the writes the old one took alone
/// are gone):
/// - before the isolation all three serve, on the primary;
/// - in the first 5 s of the isolation all three still serve (on the isolated primary);
/// - from 35 s after the isolation until the rejoin all three serve, on one new primary;
/// - in the last 5 s all three serve, on that primary;
/// - the checker finds the lost writes as stale reads (exit 4): rolled back with the old
///   primary, even with `--write cas` (an UPDATE that matches only the row as read), which
///   keeps late writes from overwriting newer ones but cannot keep a primary's data.
#[test]
fn run_patroni_isolates_the_primary_and_measures_it() {
    require_lab("patroni", "patroni");
    require_lab("/usr/lib/postgresql/15/bin/postgres", "postgresql");
    require_lab("etcd", "etcd-server");
    let r = run_scenario_expecting(
        "patroni",
        "patroni",
        &[
            "--isolate",
            "leader",
            "--before",
            "5s",
            "--during",
            "45s",
            "--after",
            "15s",
            "--write",
            "cas",
        ],
        &[4],
    );
    let old = (1..=3)
        .find(|i| r.stdout.contains(&format!("# isolated n{i}\n")))
        .expect("the primary's isolation is marked")
        - 1;
    let [iso, isolated, rejoin, _] = r.isolate_marks();
    r.assert_serving(iso.saturating_sub(3), iso, &[true; 3], "all serve before");
    for node in 0..3 {
        assert_eq!(
            r.writes_served_by(node, iso - 3, iso - 1),
            [old],
            "on the primary before"
        );
    }
    r.assert_serving(
        isolated,
        isolated + 5,
        &[true; 3],
        "all serve on the isolated primary at first",
    );
    r.assert_serving(
        isolated + 35,
        rejoin,
        &[true; 3],
        "all serve on the new primary",
    );
    let last = r.last_second();
    r.assert_serving(last - 4, last + 1, &[true; 3], "all serve at the end");
    let new_primary = r.writes_served_by(0, isolated + 35, rejoin - 1);
    assert!(
        new_primary.len() == 1 && new_primary[0] != old,
        "one new primary: {new_primary:?}"
    );
    r.assert_all_end_on(&new_primary);
    let c = &r.summary["correctness"];
    assert!(
        c["by_kind"]["stale-read"].as_u64() >= Some(1),
        "the writes the isolated primary took are lost: {c}"
    );
    let lost = r.summary["lost_acknowledged_writes"].as_u64().unwrap();
    assert!(
        lost >= 100,
        "the isolated primary acknowledged writes for about 12 s, all lost: {lost}"
    );
    assert_eq!(r.write_mode(), "cas");
    assert_eq!(
        c["lost_by_kind"]["stale-read"].as_u64(),
        Some(lost),
        "all of it rolled back, none overwritten by a late write: {c}"
    );
    assert!(r.attempts().acknowledged.iter().all(|n| *n > 10));
    assert!(r.summary["database_version"]
        .as_str()
        .unwrap_or("")
        .starts_with("PostgreSQL 15"));
    let _ = std::fs::remove_dir_all(&r.out);
}
