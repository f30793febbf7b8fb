//! `perseus matrix`: two databases × one scenario × two runs, killed in the middle and run
//! again, which finishes it without redoing a finished run.

use crate::support::*;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// The first matrix: killed when dropped, also when the test fails before it kills it, and
/// then its lab taken down.
struct FirstMatrix {
    child: Child,
    _lab: LabGuard,
}

impl Drop for FirstMatrix {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(path: &Path, limit: Duration) {
    let t = Instant::now();
    while !path.exists() {
        assert!(t.elapsed() < limit, "{} within {limit:?}", path.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_killed_matrix_continues_where_it_stopped() {
    require_lab("etcd", "etcd-server");
    require_lab("redis-server", "redis-server");
    let out = out_dir("matrix");
    let scenario = out.with_extension("toml");
    let _removed = Removed(vec![scenario.clone(), out.clone()]);
    std::fs::write(
        &scenario,
        "[[phase]]\nname = \"before\"\nduration = \"2s\"\n\n\
         [[phase]]\nname = \"isolated\"\nduration = \"3s\"\nfaults = [\"isolate n2\"]\n\n\
         [[phase]]\nname = \"after\"\nduration = \"3s\"\nfaults = [\"rejoin n2\"]\n",
    )
    .unwrap();
    let name = scenario.file_stem().unwrap().to_str().unwrap().to_string();
    let args = [
        "matrix",
        "--db",
        "etcd,redis-sentinel",
        "--scenario",
        scenario.to_str().unwrap(),
        "--repeat",
        "2",
        "--out",
        out.to_str().unwrap(),
        // Blind writes to an etcd leader cut off can be lost (a timed-out write that lands
        // later), which would make the run end with 4; compare-and-set writes cannot be.
        "--write",
        "cas",
    ];
    let etcd = out.join(format!("etcd-{name}"));
    let child = perseus().args(args).spawn().unwrap();
    let lab = format!("mx-{}", child.id());
    let mut first = FirstMatrix {
        child,
        _lab: LabGuard(lab.clone()),
    };
    // Killed outright while etcd's second run is under way: its spec saved and its lab made
    // (the spec is saved before the lab exists, so a kill in between leaves no lab to take
    // down).
    wait_for(
        &etcd.join("1").join("summary.json"),
        Duration::from_secs(120),
    );
    wait_for(&etcd.join("2").join("spec.json"), Duration::from_secs(60));
    wait_for(&lab_dir(&lab).join("state.json"), Duration::from_secs(60));
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let finished = std::fs::read(etcd.join("1").join("summary.json")).unwrap();
    let (code, stdout, stderr) = run(&["down", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("run 1 of 2: done already"), "{stderr}");
    assert!(
        stderr.contains("run 2 of 2: removing what a stopped run left"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(etcd.join("1").join("summary.json")).unwrap(),
        finished,
        "a finished run is not run again"
    );
    // The table a run without the kill would have: a row per database, two runs each.
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    for db in ["etcd", "redis-sentinel"] {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {db} |")))
            .unwrap_or_else(|| panic!("a row for {db}:\n{table}"));
        assert!(row.contains(&format!("| {name} | 2 |")), "{row}");
        let r = perseus::report::repeat::Repeat::load(
            &out.join(format!("{db}-{name}")).join("summary.json"),
        )
        .unwrap();
        assert_eq!(r.runs, ["1", "2"]);
        assert!(r.figures["downtime_on_isolation_ms"]
            .values
            .iter()
            .all(|v| v.is_some()));
    }
    assert!(table.starts_with("Measured on "), "{table}");
    assert!(out.join("table.html").exists());

    // The directory holds this matrix, and no other.
    let mut other = args.to_vec();
    other[6] = "3";
    let (code, _, stderr) = run(&other);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("holds another matrix"), "{stderr}");
    assert!(leftovers(&lab, &[]).is_empty());
}
