//! Every fault kind on a real etcd lab, from a scenario file, with its observable effect.

use crate::support::*;
use perseus::record::table::Row;

/// A node whose requests hang fails once per timeout: every 1.1 s (1 s timeout, 100 ms
/// pause) while it still accepts connections, up to every 2.2 s when connecting to it
/// times out too. So an occasional second holds no error: count them over the stretch, in
/// at least `share` of its seconds.
fn times_out(rows: &[&Row], node: usize, share: f64, what: &str) {
    let errors: u32 = rows.iter().map(|r| r.err[node]).sum();
    assert!(
        errors >= 1 && errors as f64 >= share * rows.len() as f64,
        "{what}: {errors} errors in {} seconds",
        rows.len()
    );
}

/// `tests/fixtures/every-fault.toml` plays, on one lab: pause n2, kill n2 (then restart),
/// one-way n2, 30 % loss on every link, n2 throttled, partition n1|n2 n3, isolate n1, refuse n3,
/// isolate-all n3; each healed before the next. Each effect is checked in the rows after its marker, a few
/// seconds in (time for etcd to elect a new leader where the fault hit it):
/// - paused n2: its client completes nothing and times out; n1 and n3 serve;
/// - killed n2: its client fails fast (refused connections, several errors a second); after
///   the restart it serves again;
/// - one-way n2: n2 hears its peers but cannot take part: nothing completes through it;
/// - 30 % loss everywhere: throughput drops, the cluster is not stopped (an election may
///   cost a second or two);
/// - n2 throttled to 100 kbit/s: its client gets at most a fifth of what it got before,
///   n1 and n3 serve;
/// - partition n1|n2 n3: the minority n1 completes nothing, the majority serves;
/// - isolate n1: n1 completes nothing, n2 and n3 serve;
/// - refuse n3: the same, with its peers' connections reset at once instead of dropped;
/// - isolate-all n3: its client cannot reach it at all; n1 and n2 serve;
/// - at the end all serve: the last phase is long enough for the election that n3's
///   rejoin can force (the lab runs etcd without pre-vote, so a node that was cut off
///   comes back with a higher term and deposes the leader: up to 3 s with nobody serving,
///   seen in CI); one metrics interval per fault;
/// - with `--write cas` (a transaction on the key's `mod_revision`) nothing is lost: a write
///   that timed out while n2 was paused can still take effect when it resumes
///   (docs/findings/etcd-pause-late-write.md), but it then fails its compare instead of
///   overwriting newer increments. No anomaly of any kind.
#[test]
fn every_fault_kind_has_its_effect_on_etcd() {
    require_lab("etcd", "etcd-server");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/every-fault.toml"
    );
    let r = run_scenario_expecting(
        "etcd",
        "faults",
        &["--scenario", scenario, "--write", "cas"],
        &[0],
    );
    let t = &r.table;
    let row = |verb: &str| marker_row(t, verb);
    let check = |from: u64, to: u64, what: &str, ok: &dyn Fn(&Row) -> bool| {
        let rows = r.rows_between(from, to);
        assert!(rows.len() >= 2, "{what}: only {} rows", rows.len());
        for x in rows {
            assert!(ok(x), "{what}: {}", x.render());
        }
    };
    check(
        row("paused") + 3,
        row("resuming"),
        "paused n2 hangs, others serve",
        &|x| x.ok[1] == 0 && x.ok[0] > 0 && x.ok[2] > 0,
    );
    times_out(
        &r.rows_between(row("paused") + 3, row("resuming")),
        1,
        0.7,
        "paused n2",
    );
    check(
        row("killed") + 2,
        row("restarting"),
        "killed n2 fails fast, others serve",
        &|x| x.ok[1] == 0 && x.err[1] >= 3 && x.ok[0] > 0 && x.ok[2] > 0,
    );
    check(
        row("restarted") + 4,
        row("cutting-outbound"),
        "restarted n2 serves again",
        &|x| x.ok.iter().all(|n| *n > 0),
    );
    check(
        row("cut-outbound") + 4,
        row("restoring-outbound"),
        "one-way n2 cannot take part",
        &|x| x.ok[1] == 0 && x.ok[0] > 0 && x.ok[2] > 0,
    );
    // 30 % of the packets on every link lost: throughput drops, but the cluster is not
    // stopped (an election under loss may leave a second or two with nobody serving).
    let lossy = r.rows_between(row("degraded"), row("restoring"));
    let before = r.rows_between(2, row("pausing"));
    assert!(lossy.len() >= 5, "{} rows under loss", lossy.len());
    let stopped = lossy
        .iter()
        .filter(|x| x.ok.iter().all(|n| *n == 0))
        .count();
    assert!(stopped <= 2, "loss stopped everyone for {stopped} seconds");
    let total = |rows: &[&Row]| {
        rows.iter()
            .map(|x| x.ok.iter().sum::<u32>() as f64)
            .sum::<f64>()
            / rows.len().max(1) as f64
    };
    assert!(
        total(&lossy) < 0.7 * total(&before),
        "loss lowers throughput: {:.0}/s under loss, {:.0}/s before",
        total(&lossy),
        total(&before)
    );
    throttled(
        &r.rows_between(row("throttled") + 2, row("unthrottling")),
        &before,
    );
    check(
        row("partitioned") + 4,
        row("healing-partition"),
        "minority n1 stops, majority serves",
        &|x| x.ok[0] == 0 && x.ok[1] > 0 && x.ok[2] > 0,
    );
    check(
        row("isolated") + 4,
        row("rejoining"),
        "isolated n1 completes nothing, n2 and n3 serve",
        &|x| x.ok[0] == 0 && x.ok[1] > 0 && x.ok[2] > 0,
    );
    check(
        row("refused") + 4,
        row("accepting"),
        "refused n3 completes nothing, n1 and n2 serve",
        &|x| x.ok[2] == 0 && x.ok[0] > 0 && x.ok[1] > 0,
    );
    check(
        row("isolated-all") + 3,
        row("rejoining-all"),
        "n3 cut off from its client too",
        &|x| x.ok[2] == 0 && x.ok[0] > 0 && x.ok[1] > 0,
    );
    times_out(
        &r.rows_between(row("isolated-all") + 3, row("rejoining-all")),
        2,
        0.4,
        "n3 cut off",
    );
    let last = r.last_second();
    check(last - 2, last + 1, "all serve at the end", &|x| {
        x.ok.iter().all(|n| *n > 0)
    });

    let kinds: Vec<&str> = r.summary["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "pause",
            "kill",
            "one-way",
            "loss",
            "throttle",
            "partition",
            "isolate",
            "refuse",
            "isolate-all"
        ]
    );
    let c = &r.summary["correctness"];
    assert_eq!(
        c["by_kind"],
        serde_json::json!({"stale-read": 0, "late-write": 0, "lost-write": 0, "phantom": 0}),
        "{c}"
    );
    assert_eq!(r.summary["lost_acknowledged_writes"], 0, "{c}");
    assert_eq!(r.write_mode(), "cas");
    let attempts = r.attempts();
    assert!(
        attempts.acknowledged.iter().all(|n| *n > 10) && attempts.all_revised,
        "{attempts:?}"
    );
    let _ = std::fs::remove_dir_all(&r.out);
}
