//! `perseus run gryadka`: Gryadka 1.61.8 (the seed's version) over a Redis per node, one
//! proposer per node, no leader.

use crate::support::*;

/// What Gryadka's design implies when a node is cut off from its peers (every proposer
/// needs two of the three acceptors, and every node holds one):
/// - before the isolation all three serve;
/// - from the second after the cut until the rejoin, the two connected nodes serve in every
///   second (no downtime at all), and the isolated node's client completes nothing: its
///   proposer reaches only its own acceptor, its requests time out or are refused;
/// - after the rejoin all three serve again (its first request, stuck in TCP's
///   retransmission backoff, completes at the next retransmission);
/// - nothing read is stale or lost, and nothing of the lab is left (`run_scenario`);
/// - the package comes from Perseus's cache, installed whole.
#[test]
fn run_gryadka_isolates_a_node_and_the_others_never_stop() {
    require_lab("redis-server", "redis-server");
    require_lab("node", "nodejs");
    let r = run_scenario(
        "gryadka",
        "gryadka",
        &[
            "--isolate",
            "n2",
            "--before",
            "5s",
            "--during",
            "20s",
            "--after",
            "15s",
        ],
    );
    let [iso, isolated, rejoin, _] = r.isolate_marks();
    r.assert_serving(iso.saturating_sub(3), iso, &[true; 3], "all serve before");
    r.assert_serving(
        isolated + 1,
        rejoin,
        &[true, false, true],
        "n1 and n3 serve throughout, the isolated n2 not",
    );
    let failed: u64 = r
        .rows_between(isolated + 1, rejoin)
        .iter()
        .map(|row| row.err[1] as u64)
        .sum();
    assert!(failed >= 1, "n2's client sees its requests fail");
    let last = r.last_second();
    r.assert_serving(last - 4, last + 1, &[true; 3], "all serve again");
    assert_eq!(r.summary["metrics"]["downtime_on_isolation_s"], 0);
    assert_eq!(r.summary["correctness"]["violations"], 0);
    assert_eq!(r.summary["lost_acknowledged_writes"], 0);
    let version = r.summary["database_version"].as_str().unwrap_or("");
    assert!(version.starts_with("1.61.8 (Redis 7"), "{version}");
    assert!(r.out.join("logs/n2-gryadka.log").exists());
    assert!(r.out.join("config/n2-gryadka.command").exists());

    let cache = std::path::Path::new("/var/lib/perseus/cache/npm");
    let manifest = cache.join("gryadka-1.61.8/node_modules/gryadka/package.json");
    let installed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).expect("the cached package"))
            .unwrap();
    assert_eq!(installed["version"], "1.61.8");
    let staging: Vec<_> = std::fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("perseus-npm-"))
        .collect();
    assert!(staging.is_empty(), "no half installation left: {staging:?}");
    let _ = std::fs::remove_dir_all(&r.out);
}
