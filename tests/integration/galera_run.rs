//! `perseus run galera`: MariaDB Galera through the MySQL protocol, as the seed measured TiDB.

use crate::support::*;

/// Galera's observable behaviour under the seed's isolation (seen here: the connected pair
/// stalls about 6 s until the isolated node is declared gone, then serves; the isolated node
/// leaves the primary component and answers `1047 WSREP has not yet prepared node` at
/// once; after the rejoin it catches up by incremental state transfer, which takes longer
/// the more it missed: 8 s to 25 s here for 25 s of isolation, more on a loaded machine):
/// - before the isolation all three serve;
/// - from 15 s after the isolation until the rejoin, n1 and n3 serve in every second;
/// - in that stretch n2 completes nothing and fails fast (several errors a second, not one
///   1 s timeout a second), with error 1047;
/// - in the last 5 s of 40 s after the rejoin all three serve again;
/// - with `--write cas` (an UPDATE that matches only the row as read) every writer's
///   increments go through, and nothing read is stale or lost.
#[test]
fn run_galera_isolates_n2_and_measures_it() {
    require_lab("mariadbd", "mariadb-server");
    require_lab("rsync", "rsync");
    let r = run_scenario(
        "galera",
        "galera",
        &[
            "--before", "5s", "--during", "25s", "--after", "40s", "--write", "cas",
        ],
    );
    let [iso, isolated, rejoin, _] = r.isolate_marks();
    r.assert_serving(
        iso.saturating_sub(3),
        iso,
        &[true, true, true],
        "all serve before",
    );
    let late = r.rows_between(isolated + 15, rejoin);
    assert!(late.len() >= 5, "{} rows late in the isolation", late.len());
    for row in &late {
        assert_eq!(
            serving(row),
            [true, false, true],
            "n1 and n3 serve, n2 not: {}",
            row.render()
        );
        assert!(row.err[1] >= 3, "n2 fails fast: {}", row.render());
    }
    let n2_during = &r.summary["errors_by_phase"]["n2"]["during"];
    assert!(
        n2_during.get("1047").is_some_and(|n| n.as_u64() > Some(10)),
        "n2's errors while isolated: {n2_during}"
    );
    let last = r.last_second();
    r.assert_serving(
        last - 4,
        last + 1,
        &[true, true, true],
        "all serve again after the rejoin",
    );
    assert!(r.summary["database_version"]
        .as_str()
        .unwrap_or("")
        .contains("MariaDB"));
    assert!(r.out.join("logs/n1-mariadbd.log").exists());
    // Compare-and-set as an UPDATE … WHERE value and attempt are still the ones read.
    assert_eq!(r.write_mode(), "cas");
    let attempts = r.attempts();
    assert!(
        attempts.acknowledged.iter().all(|n| *n > 10),
        "{attempts:?}"
    );
    assert_eq!(r.summary["correctness"]["violations"], 0);
    let _ = std::fs::remove_dir_all(&r.out);
}
