//! Observers and the correctness checks on a real etcd lab.

use crate::support::*;
use perseus::error::exit;

/// With `--read-from any`, each node's observer uses etcd's serializable reads, answered
/// from the node's own store. An isolated follower's store is frozen while the other
/// writers go on, so reads through it during the isolation are stale: the checker must
/// report them (and the run ends with the violations exit code).
#[test]
fn serializable_reads_on_an_isolated_follower_are_caught_as_stale() {
    require_lab("etcd", "etcd-server");
    let args = [
        "--isolate",
        "follower",
        "--read-from",
        "any",
        "--before",
        "3s",
        "--during",
        "10s",
        "--after",
        "5s",
    ];
    let r = run_scenario_expecting("etcd", "stale", &args, &[exit::VIOLATIONS]);
    let target = r.summary["fault"]["target"].as_str().unwrap().to_string();
    let c = &r.summary["correctness"];
    let during = c["by_reader"][&target]["during"].as_u64().unwrap_or(0);
    assert!(
        during >= 100,
        "stale reads through the isolated {target} while isolated: {c}"
    );
    assert!(c["by_kind"]["stale-read"].as_u64() >= Some(during));
    assert!(
        r.stdout.contains("stale read during the fault"),
        "{}",
        r.stdout
    );
    let _ = std::fs::remove_dir_all(&r.out);
}

/// With etcd's default linearizable reads, the same observers see no stale read.
#[test]
fn linearizable_reads_on_an_isolated_follower_are_never_stale() {
    require_lab("etcd", "etcd-server");
    let args = [
        "--isolate",
        "follower",
        "--observers",
        "--before",
        "3s",
        "--during",
        "10s",
        "--after",
        "5s",
    ];
    let r = run_scenario("etcd", "linear", &args);
    let c = &r.summary["correctness"];
    assert_eq!(c["violations"], 0, "{c}");
    assert!(
        c["reads_checked"].as_u64() > Some(1000),
        "the observers read: {c}"
    );
    assert_eq!(c["final_reads"], 9);
    let _ = std::fs::remove_dir_all(&r.out);
}
