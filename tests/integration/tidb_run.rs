//! `perseus run tidb`: needs TiDB's binaries, which no Debian package provides. The test is
//! ignored (reported as skipped, never as passed) unless run on purpose:
//! `PERSEUS_TIDB_BIN_DIR=DIR cargo nextest run --run-ignored all tidb`.

use crate::support::*;

/// The seed's isolation on a warmed-up TiDB: before, all serve; after the rejoin and a
/// generous recovery, all serve again; the summary says the fault hit a warmed-up cluster.
#[test]
#[ignore = "needs TiDB binaries (pd-server, tikv-server, tidb-server): set PERSEUS_TIDB_BIN_DIR and pass --run-ignored all"]
fn run_tidb_isolates_n2_on_a_warmed_up_cluster() {
    let bin_dir = std::env::var("PERSEUS_TIDB_BIN_DIR").expect(
        "PERSEUS_TIDB_BIN_DIR names the directory with pd-server, tikv-server and tidb-server",
    );
    require_lab("etcd", "etcd-server");
    let r = run_scenario(
        "tidb",
        "tidb",
        &[
            "--bin-dir",
            &bin_dir,
            "--before",
            "10s",
            "--during",
            "30s",
            "--after",
            "120s",
        ],
    );
    let [iso, ..] = r.isolate_marks();
    r.assert_serving(
        iso.saturating_sub(3),
        iso,
        &[true, true, true],
        "all serve before",
    );
    let last = r.last_second();
    r.assert_serving(last - 4, last + 1, &[true, true, true], "all serve again");
    assert_eq!(r.summary["fault"]["warmed_up"], true);
    let _ = std::fs::remove_dir_all(&r.out);
}
