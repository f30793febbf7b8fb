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
        let rows = r.rows_between(from, to);
        assert!(rows.len() >= 2, "{what}: only {} rows", rows.len());
        for x in rows {
            assert!(ok(&x.ok), "{what}: {}", x.render());
        }
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
