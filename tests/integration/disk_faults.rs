//! Every disk fault on a real etcd lab made with `--disk faulty`, from a scenario file, with
//! what each node's client saw; then nothing of the layers left after the lab goes.

use crate::support::*;

/// The node (index) of the first marker `verb`'s target.
fn node_of(t: &perseus::record::table::Table, verb: &str) -> usize {
    t.lines
        .iter()
        .find_map(|l| match l {
            perseus::record::table::Line::Marker { verb: v, target } if v == verb => target
                .split(' ')
                .next()?
                .strip_prefix('n')?
                .parse::<usize>()
                .ok(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no marker {verb} naming a node"))
        - 1
}

/// `tests/fixtures/disk-faults.toml` with `--write cas`. etcd (Debian's 3.4) syncs its
/// write-ahead log before it answers, so:
/// - stalled n2: its client completes nothing (its server hangs in the disk), n1 and n3
///   serve; after the heal all serve;
/// - a follower's writes and syncs 100 ms slower: its peers serve every second, its own
///   client completes at most half as much as before (it waits on that follower);
/// - n2's writes and syncs failing: its server stops (etcd panics on a failed WAL write), its
///   client completes nothing, n1 and n3 serve; the heal starts it again (a server that
///   exited is a kill in force) and it serves;
/// - n3's disk full: the same for n3;
/// - n2's power cut: its client completes nothing while n1 and n3 serve; it serves again
///   after `power-on`;
/// - the whole cluster's power cut: nobody serves; all serve again after `power-on all`;
/// - and no acknowledged write is lost, nor any other anomaly: what etcd acknowledged it
///   had synced, so dropping what was unsynced lost nothing.
#[test]
fn every_disk_fault_has_its_effect_on_etcd() {
    require_lab("etcd", "etcd-server");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/disk-faults.toml"
    );
    let r = run_scenario_expecting(
        "etcd",
        "disk",
        &["--scenario", scenario, "--write", "cas", "--disk", "faulty"],
        &[0],
    );
    let t = &r.table;
    let row = |verb: &str| marker_row(t, verb);
    let check = |from: u64, to: u64, what: &str, ok: &dyn Fn(&[u32]) -> bool| {
        check_rows(&r, from, to, what, &|x| ok(&x.ok))
    };
    let others_only = |n: usize| move |ok: &[u32]| (0..3).all(|i| (ok[i] > 0) == (i != n));
    check(
        row("stalled-disk") + 3,
        row("unstalling-disk"),
        "stalled n2 completes nothing, n1 and n3 serve",
        &others_only(1),
    );
    check(
        row("unstalled-disk") + 3,
        row("slowing-disk"),
        "all serve after the stall",
        &|ok| ok.iter().all(|n| *n > 0),
    );
    // A follower's slow disk: its peers commit without it and serve every second; its own
    // client, whose requests wait for that follower to apply what they commit, falls to
    // at most half of what it completed before (nothing at all, here).
    let slow = node_of(t, "slowed-disk");
    check(
        row("slowed-disk") + 2,
        row("unslowing-disk"),
        "the slow follower's peers serve",
        &|ok| (0..3).all(|i| i == slow || ok[i] > 0),
    );
    let rate = |from: u64, to: u64| {
        let rows = r.rows_between(from, to);
        rows.iter().map(|x| x.ok[slow] as f64).sum::<f64>() / rows.len().max(1) as f64
    };
    let (before, during) = (
        rate(row("unstalled-disk") + 2, row("slowing-disk")),
        rate(row("slowed-disk") + 2, row("unslowing-disk")),
    );
    assert!(
        during <= 0.5 * before,
        "the slow follower's client: {during:.0}/s against {before:.0}/s before"
    );
    check(
        row("failed-disk") + 3,
        row("mending-disk"),
        "n2's failing disk stops its server, n1 and n3 serve",
        &others_only(1),
    );
    check(
        row("mended-disk") + 4,
        row("filling-disk"),
        "all serve after the heal",
        &|ok| ok.iter().all(|n| *n > 0),
    );
    check(
        row("filled-disk") + 3,
        row("emptying-disk"),
        "n3's full disk stops its server, n1 and n2 serve",
        &others_only(2),
    );
    check(
        row("emptied-disk") + 4,
        row("cutting-power"),
        "all serve after the heal",
        &|ok| ok.iter().all(|n| *n > 0),
    );
    check(
        row("cut-power") + 2,
        row("restoring-power"),
        "n2 without power completes nothing, n1 and n3 serve",
        &others_only(1),
    );
    let all_cut = last_marker_row(t, "cut-power");
    let all_on = last_marker_row(t, "restoring-power");
    check(
        all_cut + 1,
        all_on,
        "nobody serves while the whole cluster is off",
        &|ok| ok.iter().all(|n| *n == 0),
    );
    let last = r.last_second();
    check(last - 3, last + 1, "all serve at the end", &|ok| {
        ok.iter().all(|n| *n > 0)
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
            "disk-stall",
            "disk-slow",
            "disk-error",
            "disk-full",
            "lose-unsynced",
            "lose-unsynced"
        ]
    );
    assert_no_anomaly(&r);
    let _ = std::fs::remove_dir_all(&r.out);
}

/// A run with `--disk faulty` killed with SIGKILL while a disk stall, put in force from
/// another terminal, holds n1's server: `status` shows the stall, and `down` removes
/// everything, layers and their mounts included, though a server hangs in one.
#[test]
fn a_killed_run_with_a_stalled_disk_leaves_nothing_after_down() {
    require_lab("etcd", "etcd-server");
    let lab = lab_name("diskkill");
    let _guard = LabGuard(lab.clone());
    let out = out_dir("diskkill");
    let _removed = Removed(vec![out.clone()]);
    let err_path = out.with_extension("stderr");
    let _removed_err = Removed(vec![err_path.clone()]);
    let mut child = run_until_steady(
        &[
            "run",
            "etcd",
            "--before",
            "60s",
            "--disk",
            "faulty",
            "--lab",
            &lab,
            "--out",
            out.to_str().unwrap(),
        ],
        &err_path,
    );
    let (code, stdout, stderr) = run(&["disk-stall", "n1", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let links = links_of(&lab);
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, status, stderr) = run(&["status", "--lab", &lab]);
    assert_eq!(code, 0, "{stderr}");
    assert!(status.contains("stalled-disk n1"), "{status}");
    let left = leftovers(&lab, &links);
    assert!(
        left.iter().any(|l| l.starts_with("mount ")),
        "the layers outlive a killed perseus: {left:?}"
    );
    let (code, stdout, stderr) = run(&["down", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let left = leftovers(&lab, &links);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `tests/fixtures/disk-faults-nats.toml` on NATS JetStream 2.9 with `--write cas`, each
/// fault on a follower of the bucket's stream (the leader and the other follower keep a
/// quorum). A client's requests go through its own server to the stream's leader, so:
/// - a stalled follower: its client completes nothing (its server hangs in the disk), the
///   others serve; after the heal all serve, once a leader is elected again where the
///   follower deposed it;
/// - a follower whose writes and syncs take 100 ms longer: the others serve every second,
///   its own client completes at most half as much as before;
/// - a follower whose writes fail, then one whose disk is full: the others serve; the
///   server logs the disk's error and disables JetStream until it restarts (its client,
///   served by the leader through it, may not notice), or hangs in the disk (its client
///   stops): both were seen;
/// - a follower's power cut: its client completes nothing while the others serve; it
///   serves again after the heal;
/// - and no acknowledged write is lost, nor any other anomaly: the leader and the other
///   follower held every write.
#[test]
fn every_disk_fault_on_a_nats_follower_leaves_the_others_serving() {
    require_lab("nats-server", "nats-server");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/disk-faults-nats.toml"
    );
    let r = run_scenario_expecting(
        "nats",
        "disknats",
        &["--scenario", scenario, "--write", "cas", "--disk", "faulty"],
        &[0],
    );
    let t = &r.table;
    let row = |verb: &str| marker_row(t, verb);
    let check = |from: u64, to: u64, what: &str, ok: &dyn Fn(&[u32]) -> bool| {
        check_rows(&r, from, to, what, &|x| ok(&x.ok))
    };
    let others = |n: usize| move |ok: &[u32]| (0..3).all(|i| i == n || ok[i] > 0);
    let all = |ok: &[u32]| ok.iter().all(|n| *n > 0);

    let stalled = node_of(t, "stalled-disk");
    check(
        row("stalled-disk") + 2,
        row("unstalling-disk"),
        "a stalled follower's client completes nothing, the others serve",
        &|ok| ok[stalled] == 0 && others(stalled)(ok),
    );
    // Back from its stall, the follower may depose the leader (2.9's Raft has no pre-vote):
    // every client was seen down 5 s, and once 18 s, before a leader was elected again, so
    // the phase lasts 25 s (and the last, after a power cut, 15 s).
    check(
        row("slowing-disk") - 2,
        row("slowing-disk"),
        "all serve after the stall",
        &all,
    );
    let slow = node_of(t, "slowed-disk");
    check(
        row("slowed-disk") + 1,
        row("unslowing-disk"),
        "a slow follower's peers serve",
        &others(slow),
    );
    let rate = |from: u64, to: u64| {
        let rows = r.rows_between(from, to);
        rows.iter().map(|x| x.ok[slow] as f64).sum::<f64>() / rows.len().max(1) as f64
    };
    let (before, during) = (
        rate(row("slowing-disk") - 3, row("slowing-disk")),
        rate(row("slowed-disk") + 1, row("unslowing-disk")),
    );
    assert!(
        during <= 0.5 * before,
        "the slow follower's client: {during:.0}/s against {before:.0}/s before"
    );
    let failed = node_of(t, "failed-disk");
    check(
        row("failed-disk") + 1,
        row("mending-disk"),
        "a failing follower's peers serve",
        &others(failed),
    );
    let full = node_of(t, "filled-disk");
    check(
        row("filled-disk") + 1,
        row("emptying-disk"),
        "a full follower's peers serve",
        &others(full),
    );
    let log = |n: usize| {
        std::fs::read_to_string(
            r.out
                .join("logs")
                .join(format!("n{}-nats-server.log", n + 1)),
        )
        .unwrap_or_default()
    };
    // The fault reached the server one of two ways, both seen here: it logs the disk's
    // error and disables JetStream until it restarts (its client, served by the leader
    // through it, goes on), or it hangs in the disk without a word (its client stops).
    let stopped = |n: usize, from: &str, to: &str| {
        let rows = r.rows_between(row(from) + 2, row(to));
        rows.len() >= 2 && rows.iter().all(|x| x.ok[n] == 0)
    };
    assert!(
        (log(failed).contains("input/output error") && log(failed).contains("will be DISABLED"))
            || stopped(failed, "failed-disk", "mending-disk"),
        "n{}'s server met the failing disk: {}",
        failed + 1,
        log(failed)
    );
    // A server the failing disk disabled or hung meets no write on a full one.
    assert!(
        log(full).contains("no space left on device")
            || stopped(full, "filled-disk", "emptying-disk")
            || full == failed,
        "n{}'s server met the full disk: {}",
        full + 1,
        log(full)
    );
    let cut = node_of(t, "cut-power");
    check(
        row("cut-power") + 2,
        row("restoring-power"),
        "a follower without power completes nothing, the others serve",
        &|ok| ok[cut] == 0 && others(cut)(ok),
    );
    let last = r.last_second();
    check(last - 4, last + 1, "all serve at the end", &all);
    assert_no_anomaly(&r);
    let _ = std::fs::remove_dir_all(&r.out);
}
