//! A cluster Perseus did not start: a lab brought up with `perseus up`, described to
//! `perseus run --cluster` by a cluster file whose fault commands call `perseus isolate`.

use crate::support::*;

/// The cluster file for lab `lab` (its nodes n1..n3 at their client addresses), with
/// `isolate` and `rejoin` as given.
fn cluster_file(lab: &str, name: &str, isolate: &str, rejoin: &str) -> std::path::PathBuf {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab_dir(lab).join("state.json")).unwrap())
            .unwrap();
    let mut text = format!("name = \"{name}\"\ndatabase = \"etcd\"\n");
    for i in 0..3 {
        text.push_str(&format!(
            "[[node]]\nname = \"n{}\"\naddress = \"{}:2379\"\n",
            i + 1,
            state["nodes"][i]["addr"].as_str().unwrap()
        ));
    }
    text.push_str(&format!(
        "[faults]\nisolate = \"{isolate}\"\nrejoin = \"{rejoin}\"\n"
    ));
    let path = std::env::temp_dir().join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn run_on_an_existing_cluster_with_the_users_fault_commands() {
    require_lab("etcd", "etcd-server");
    let lab = lab_name("external");
    let _guard = LabGuard(lab.clone());
    let (code, stdout, stderr) = run(&["up", "etcd", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let me = env!("CARGO_BIN_EXE_perseus");
    let name = format!("ext-{}", std::process::id());
    let file = cluster_file(
        &lab,
        &name,
        &format!("{me} isolate {{node}} --lab {lab}"),
        &format!("{me} rejoin {{node}} --lab {lab}"),
    );
    let timeline = ["--before", "5s", "--during", "10s", "--after", "10s"];

    // The user's commands drive the seed's timeline, on the leader (as the lab run below
    // does: a follower's and the leader's isolation differ).
    let (_, status, _) = run(&["status", "--lab", &lab]);
    let leader = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("leader: "))
        .and_then(|l| l.split(';').next())
        .expect("status names the leader")
        .to_string();
    let out = out_dir("external");
    let mut args = vec![
        "run",
        "--cluster",
        file.to_str().unwrap(),
        "--isolate",
        &leader,
    ];
    args.extend_from_slice(&timeline);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let record = record_text(&out);
    for verb in ["isolating", "isolated", "rejoining", "rejoined"] {
        assert!(
            record.contains(&format!(" {verb} {leader}\n")),
            "{verb} {leader} in the record"
        );
    }
    assert!(
        record.contains(&format!(
            "command `{me} isolate {leader} --lab {lab}` → exit 0"
        )),
        "the command and its status are in the record"
    );
    let external = RunResult::load(out.clone(), stdout);
    assert!(
        !perseus::cluster::clusters_dir().join(&name).exists(),
        "the cluster's event log is removed"
    );

    // The same timeline in a lab Perseus runs itself gives the same picture: the leader's
    // isolation stalls every client while the two others elect a new leader, then those two
    // serve and the isolated one does not, and everyone recovers after the rejoin. The
    // figures themselves are etcd's elections, not the path the fault took: over 4 pairs of
    // runs here (on a busy machine), downtime on isolation was 1.1–2.8 s on either path, and
    // recovery 1.5–6.4 s, the external run sometimes the shorter, sometimes the longer (an
    // earlier session saw 5.3 s once). So each run is held to bounds that any of those
    // satisfy and a broken path would not, rather than to the other run's figures.
    let mut lab_args = vec!["--isolate", "leader"];
    lab_args.extend_from_slice(&timeline);
    let lab_run = run_scenario("etcd", "external-lab", &lab_args);
    let lab_leader = lab_run
        .table
        .lines
        .iter()
        .find_map(|l| match l {
            perseus::record::table::Line::Marker { verb, target } if verb == "isolating" => {
                Some(target.clone())
            }
            _ => None,
        })
        .expect("the lab run isolates someone");
    for (what, r, isolated_node) in [
        ("external", &external, &leader),
        ("lab", &lab_run, &lab_leader),
    ] {
        let ms = |k: &str| r.summary["metrics"][k].as_u64();
        let down = ms("downtime_on_isolation_ms").expect("downtime on isolation");
        assert!(
            (300..=10_000).contains(&down),
            "{what}: downtime on isolation {down} ms: isolating the leader stalls every client \
             for an election (etcd's election timeout is 1 s)"
        );
        let recovery = ms("recovery_time_ms").expect("the run recovers");
        assert!(recovery <= 9_000, "{what}: recovery {recovery} ms");
        let [_, isolated, rejoining, _] = r.isolate_marks();
        assert!(
            rejoining >= isolated + 8,
            "{what}: the isolation lasts 10 s"
        );
        let expected: Vec<bool> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| n != isolated_node)
            .collect();
        // However long the election took (8 s once in CI, among split votes), from the
        // first second the two others serve until the rejoin, they serve and the
        // isolated leader does not, for at least the last 2 s of the isolation.
        let settled = r
            .rows_between(isolated + 1, rejoining)
            .into_iter()
            .find(|row| serving(row) == expected)
            .map(|row| row.second)
            .unwrap_or(rejoining);
        assert!(
            settled + 2 <= rejoining,
            "{what}: the two others serve from second {settled}, the rejoin is at {rejoining}"
        );
        r.assert_serving(
            settled,
            rejoining,
            &expected,
            &format!("{what}: the two others serve, the isolated leader does not"),
        );
    }
    // The markers of the external run are placed as precisely as the user's command allows:
    // it is in force between `isolating` and `isolated`.
    let record = record_text(&out);
    let at = |verb: &str| -> u64 {
        record
            .lines()
            .find(|l| l.starts_with("F ") && l.ends_with(&format!(" {verb} {leader}")))
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{verb} in the record"))
    };
    let took = at("isolated") - at("isolating");
    assert!(
        took < 2_000_000,
        "the user's command runs between the markers: {took} µs"
    );

    // A fault command that fails stops the run cleanly, says why, undoes what the failed
    // start may have done (with the user's undo command), and withdraws the fault from the
    // record.
    let undone = std::env::temp_dir().join(format!("{name}-undone"));
    let _ = std::fs::remove_file(&undone);
    let failing = cluster_file(
        &lab,
        &format!("{name}-f"),
        "echo no such container >&2; exit 7",
        &format!("touch {}", undone.display()),
    );
    let fail_out = out_dir("external-fail");
    let (code, stdout, stderr) = run(&[
        "run",
        "--cluster",
        failing.to_str().unwrap(),
        "--before",
        "1s",
        "--during",
        "2s",
        "--after",
        "1s",
        "--out",
        fail_out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("fault command failed")
            && stderr.contains("exit 7 after")
            && stderr.contains(": no such container"),
        "{stderr}"
    );
    assert!(!perseus::cluster::clusters_dir()
        .join(format!("{name}-f"))
        .exists());
    assert!(undone.exists(), "the failed start was undone");
    let _ = std::fs::remove_file(&undone);
    let record = record_text(&fail_out);
    assert!(
        record.contains(" aborted isolating n2\n"),
        "the fault is withdrawn from the record"
    );
    let (code, stdout, stderr) = run(&["report", fail_out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("no fault in this record"),
        "no metrics of a fault that never was: {stdout}"
    );

    // A node that cannot be reached at start: nothing starts.
    let text = std::fs::read_to_string(&file).unwrap();
    let unreachable = std::env::temp_dir().join(format!("{name}-u.toml"));
    let n3 = text
        .lines()
        .filter(|l| l.starts_with("address"))
        .nth(2)
        .unwrap()
        .to_string();
    std::fs::write(&unreachable, text.replace(&n3, "address = \"127.0.0.1:1\"")).unwrap();
    let (code, stdout, stderr) = run(&["run", "--cluster", unreachable.to_str().unwrap()]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stderr.contains("not reachable: n3 (127.0.0.1:1)") && stderr.lines().count() == 1,
        "{stderr}"
    );

    // A malformed cluster file: its line, before anything starts.
    let malformed = std::env::temp_dir().join(format!("{name}-m.toml"));
    std::fs::write(&malformed, text.replace("address =", "adress =")).unwrap();
    let (code, _, stderr) = run(&["run", "--cluster", malformed.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("line 5: unknown field `adress`"),
        "{stderr}"
    );

    for f in [&file, &failing, &unreachable, &malformed] {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&fail_out);
    let _ = std::fs::remove_dir_all(&lab_run.out);
}
