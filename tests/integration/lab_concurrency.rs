//! Several commands on one lab at once: they take turns on the lab's lock, so its state and
//! its faults stay what the lab really holds; one watch per lab.

use crate::support::*;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn spawn(args: &[&str]) -> Child {
    perseus()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Brings up an etcd lab called `lab`; returns its host-side links and its state.
fn up_etcd(lab: &str) -> (Vec<String>, serde_json::Value) {
    let (code, stdout, stderr) = run(&["up", "etcd", "--lab", lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let state =
        serde_json::from_str(&std::fs::read_to_string(lab_dir(lab).join("state.json")).unwrap())
            .unwrap();
    (links_of(lab), state)
}

/// Whether every process the lab's state lists for `node` (n1 = 0) is alive.
fn node_alive(lab: &str, node: usize) -> bool {
    let text = std::fs::read_to_string(lab_dir(lab).join("state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let procs = v["nodes"][node]["processes"].as_array().unwrap().clone();
    !procs.is_empty()
        && procs.iter().all(|p| {
            let pid = p["pid"].as_i64().unwrap();
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        })
}

/// - two `isolate n3` at once: one puts the fault in force, the other is refused;
/// - `kill n1` and `kill n3` at once, then `restart n1` and `restart n3` at once: both nodes
///   run again and the state lists their live processes (no lost update), status shows no
///   fault, heal finds nothing to do;
/// - a second watch of the same lab is refused while the first runs;
/// - nothing of the lab is left afterwards.
#[test]
fn concurrent_commands_on_one_lab_take_turns() {
    require_lab("etcd", "etcd-server");
    let lab = lab_name("concurrent");
    let _guard = LabGuard(lab.clone());
    let (code, stdout, stderr) = run(&["up", "etcd", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let links = links_of(&lab);

    let a = spawn(&["isolate", "n3", "--lab", &lab]);
    let b = spawn(&["isolate", "n3", "--lab", &lab]);
    let mut results = [finish(a), finish(b)];
    results.sort();
    assert_eq!(results[0].0, 0, "one isolates: {results:?}");
    assert_ne!(results[1].0, 0, "the other is refused: {results:?}");
    assert!(results[1].1.contains("in force already"), "{results:?}");
    let (code, out, err) = run(&["heal", "--lab", &lab]);
    assert_eq!(code, 0, "{out}{err}");

    for verb in ["kill", "restart"] {
        let a = spawn(&[verb, "n1", "--lab", &lab]);
        let b = spawn(&[verb, "n3", "--lab", &lab]);
        for (code, out) in [finish(a), finish(b)] {
            assert_eq!(code, 0, "{verb}: {out}");
        }
    }
    assert!(
        node_alive(&lab, 0) && node_alive(&lab, 2),
        "both restarted, both recorded"
    );
    let (_, status, _) = run(&["status", "--lab", &lab]);
    assert!(!status.contains("killed"), "no phantom fault: {status}");
    let (code, out, _) = run(&["heal", "--lab", &lab]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to undo"), "{out}");

    let out = out_dir("concurrent");
    let mut first = perseus()
        .args(["watch", "--lab", &lab, "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (code, _, stderr) = run(&[
        "watch",
        "--lab",
        &lab,
        "--out",
        out.join("second").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("a watch of this lab is running already"),
        "{stderr}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(first.wait().unwrap().success());

    let (code, stdout, stderr) = run(&["down", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let left = leftovers(&lab, &links);
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&out);
}

/// A scenario that kills the same node twice (restarting it in between) plays to the end:
/// each fault is judged against the lab as it is then, not as it was at the start; and
/// `kill all` is undone by `heal` on every node.
#[test]
fn a_node_can_be_killed_twice_in_one_scenario() {
    require_lab("etcd", "etcd-server");
    let dir = out_dir("killtwice-scenario");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("kill-twice.toml");
    std::fs::write(
        &file,
        r#"[[phase]]
name = "before"
duration = "3s"
[[phase]]
name = "killed"
duration = "3s"
faults = ["kill n2"]
[[phase]]
name = "back"
duration = "4s"
faults = ["restart n2"]
[[phase]]
name = "killed again"
duration = "3s"
faults = ["kill n2"]
[[phase]]
name = "after"
duration = "4s"
faults = ["heal"]
[[phase]]
name = "all killed"
duration = "3s"
faults = ["kill all"]
[[phase]]
name = "all back"
duration = "10s"
faults = ["heal"]
"#,
    )
    .unwrap();
    let r = run_scenario("etcd", "killtwice", &["--scenario", file.to_str().unwrap()]);
    let record = record_text(&r.out);
    let killed = record
        .lines()
        .filter(|l| l.starts_with("F ") && l.ends_with(" killed n2"))
        .count();
    let restarted = record
        .lines()
        .filter(|l| l.starts_with("F ") && l.ends_with(" restarted n2"))
        .count();
    assert_eq!((killed, restarted), (2, 2), "both kills and both restarts");
    for verb in ["killed", "restarted"] {
        assert!(
            record
                .lines()
                .any(|l| l.starts_with("F ") && l.ends_with(&format!(" {verb} n1 n2 n3"))),
            "kill all, then heal restarts all three: {verb}"
        );
    }
    // After a restart of the whole cluster etcd must elect a leader before anyone serves,
    // and the restarted nodes' logs differ: without pre-vote, a node whose log is behind
    // campaigns, loses, and restarts its peers' election timers (1-2 s) before one whose
    // log is current wins, while the clients' requests time out after 1 s each. From the
    // restart to all three serving, in 45 runs with both cores busy: 0.25-2.5 s in 43, and
    // 3.9 s and 4.8 s once each (in the 3.9 s run n1 lost at terms 3, 4 and 5 before n3 won
    // at term 6); over 4 s on the pristine root where 6 s were too few. So all three must
    // serve from 7 s after the restart on.
    let healed = last_marker_row(&r.table, "restarted");
    assert!(
        r.last_second() >= healed + 8,
        "the run goes on 10 s after the heal"
    );
    r.assert_serving(
        healed + 7,
        r.last_second() + 1,
        &[true; 3],
        "all serve again",
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&r.out);
}

/// A restart that does not stay up (here: its client port is held by another socket in the
/// node's namespace) is an error that says so and shows the log, not a node counted as
/// running; once the port is free, the restart works.
#[test]
fn a_restart_that_does_not_stay_up_is_an_error() {
    require_lab("etcd", "etcd-server");
    let lab = lab_name("restartfail");
    let _guard = LabGuard(lab.clone());
    let (links, state) = up_etcd(&lab);
    let netns = state["nodes"][1]["netns"].as_str().unwrap().to_string();
    let addr = format!("{}:2379", state["nodes"][1]["addr"].as_str().unwrap());

    let (code, out, err) = run(&["kill", "n2", "--lab", &lab]);
    assert_eq!(code, 0, "{out}{err}");
    // Hold n2's client port from inside its namespace until told to let go.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (free_tx, free_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/run/netns/{netns}")).unwrap();
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        // The killed server's socket may take a moment to go (a SIGKILL waits for a
        // write to disk in progress to finish), so the port is tried for a while.
        let t = Instant::now();
        let listener = loop {
            match std::net::TcpListener::bind(&addr) {
                Ok(l) => break l,
                Err(e) if t.elapsed() < Duration::from_secs(10) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("bind {addr} in n2's namespace: {e}"),
            }
        };
        held_tx.send(()).unwrap();
        let _ = free_rx.recv_timeout(Duration::from_secs(60));
        drop(listener);
    });
    held_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let (code, out, err) = run(&["restart", "n2", "--lab", &lab]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("exited right after each restart"), "{err}");
    free_tx.send(()).unwrap();
    holder.join().unwrap();
    let (code, out, err) = run(&["restart", "n2", "--lab", &lab]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(node_alive(&lab, 1));

    let (code, stdout, stderr) = run(&["down", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let left = leftovers(&lab, &links);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A `perseus bench fault` killed while its rules are in force leaves an isolation that
/// `perseus status` shows and `perseus heal` removes (it used a table of its own that
/// neither could see).
#[test]
fn a_killed_bench_fault_leaves_nothing_heal_cannot_see() {
    require_lab("etcd", "etcd-server");
    let lab = lab_name("benchkill");
    let _guard = LabGuard(lab.clone());
    let (links, state) = up_etcd(&lab);
    let netns = state["nodes"][1]["netns"].as_str().unwrap().to_string();
    let tables = || {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &netns, "nft", "list", "tables"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Its rules are in force for a few milliseconds of every isolation: kill it the moment
    // they are seen, and try again (a bounded number of times) if it removed them first.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut caught = false;
    while !caught && Instant::now() < deadline {
        let mut bench = perseus()
            .args([
                "bench", "fault", "--lab", &lab, "--node", "n2", "--repeat", "200",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if tables().contains("perseus") {
                let _ = bench.kill();
                break;
            }
        }
        let _ = bench.kill();
        let _ = bench.wait();
        caught = tables().contains("perseus");
    }
    assert!(caught, "never caught the bench with its rules in force");
    let (_, status, _) = run(&["status", "--lab", &lab]);
    assert!(status.contains("isolated n2"), "status shows it: {status}");
    let (code, out, err) = run(&["heal", "--lab", &lab]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!tables().contains("perseus"), "heal removed it");

    let (code, stdout, stderr) = run(&["down", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let left = leftovers(&lab, &links);
    assert!(left.is_empty(), "left behind: {left:?}");
}
