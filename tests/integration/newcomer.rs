//! What a new user trips on first: silence during bring-up, output into a closed pipe,
//! Ctrl-C, the help, completions and the man page.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Lines of the child's standard error, as they come.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts `perseus ARGS…` with standard output discarded and standard error read line by
/// line as it comes.
fn spawn_reading_stderr(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = perseus()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stderr_lines(&mut child);
    (child, rx)
}

/// Collects standard error until a line contains `needle` (returned with all lines so far);
/// fails after `within`.
fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, within: Duration, seen: &mut Vec<String>) {
    let deadline = Instant::now() + within;
    while !seen.iter().any(|l| l.contains(needle)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with '{needle}' within {within:?}: {seen:#?}"),
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("perseus did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The output commands write into a pipe that is already closed: they finish as usual.
#[test]
fn output_into_a_closed_pipe_ends_the_output_not_the_command() {
    for args in [
        vec!["list"],
        vec!["list", "scenarios"],
        vec!["completions", "bash"],
        vec!["man"],
        vec!["--help"],
    ] {
        let mut child = perseus()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // `| head -0`: the reader is gone before anything is written
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // clap's own --help exits 0 on success; it may report the broken pipe, never panic.
        if args[0] != "--help" {
            assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        }
    }
}

/// `perseus run etcd | head`: the table stops being echoed, the run goes on, records
/// everything, tears its lab down and ends cleanly. It also says what it is doing while the
/// cluster comes up.
#[test]
fn a_run_into_a_closed_pipe_records_everything_and_tears_down() {
    require_lab("etcd", "etcd-server");
    let lab = lab_name("pipe");
    let _guard = LabGuard(lab.clone());
    let out = out_dir("pipe");
    let mut child = perseus()
        .args([
            "run", "etcd", "--before", "3s", "--during", "3s", "--after", "3s",
        ])
        .args(["--lab", &lab, "--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let rx = stderr_lines(&mut child);
    let mut seen = Vec::new();
    wait_for(
        &rx,
        "starting 3 etcd nodes in lab",
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(
        !seen.iter().any(|l| l.contains("ready in")),
        "the start is announced before the cluster is ready: {seen:#?}"
    );
    let code = wait_exit(&mut child, Duration::from_secs(120));
    seen.extend(rx.try_iter());
    let stderr = seen.join("\n");
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("lab torn down"), "{stderr}");
    let record = record_text(&out);
    assert!(
        record.lines().last().is_some_and(|l| l.starts_with("E ")),
        "the record ends cleanly"
    );
    let client_log = std::fs::read_to_string(out.join("client.log")).unwrap();
    assert!(
        client_log.contains("# rejoined n2") && client_log.lines().count() > 9,
        "client.log has the whole table: {client_log}"
    );
    assert!(out.join("summary.json").exists() && out.join("report.html").exists());
    assert!(!lab_dir(&lab).exists(), "the lab is gone");
    let _ = std::fs::remove_dir_all(&out);
}

/// The first Ctrl-C stops the run, tears the lab down and says so (exit 130); a second one
/// aborts at once and says how to clean up, which `perseus down` then does.
#[test]
fn ctrl_c_tears_down_and_a_second_ctrl_c_aborts() {
    require_lab("etcd", "etcd-server");
    let sigint = |child: &Child| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap()
    };

    // One Ctrl-C while the workload runs.
    let lab = lab_name("ctrlc");
    let _guard = LabGuard(lab.clone());
    let out = out_dir("ctrlc");
    let (mut child, rx) = spawn_reading_stderr(&[
        "run",
        "etcd",
        "--before",
        "60s",
        "--lab",
        &lab,
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut seen = Vec::new();
    wait_for(&rx, "steady after", Duration::from_secs(60), &mut seen);
    let links = links_of(&lab);
    sigint(&child);
    let code = wait_exit(&mut child, Duration::from_secs(60));
    seen.extend(rx.try_iter());
    let stderr = seen.join("\n");
    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains("tearing down") && stderr.contains("Ctrl-C again"),
        "the first Ctrl-C says what happens: {stderr}"
    );
    assert!(stderr.contains("lab torn down"), "{stderr}");
    let left = leftovers(&lab, &links);
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(out.join("summary.json").exists(), "the results are written");

    // Two Ctrl-Cs during bring-up: out at once; perseus down removes what is left.
    let lab2 = lab_name("ctrlc2");
    let _guard2 = LabGuard(lab2.clone());
    let (mut child, rx) = spawn_reading_stderr(&[
        "run",
        "etcd",
        "--lab",
        &lab2,
        "--out",
        out.to_str().unwrap(),
    ]);
    let mut seen = Vec::new();
    wait_for(
        &rx,
        "starting 3 etcd nodes",
        Duration::from_secs(20),
        &mut seen,
    );
    let links = links_of(&lab2);
    sigint(&child);
    wait_for(&rx, "Ctrl-C again", Duration::from_secs(10), &mut seen);
    sigint(&child);
    let code = wait_exit(&mut child, Duration::from_secs(5));
    seen.extend(rx.try_iter());
    let stderr = seen.join("\n");
    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains("aborted") && stderr.contains("perseus down --lab"),
        "{stderr}"
    );
    if lab_dir(&lab2).exists() {
        let (code, stdout, stderr) = run(&["down", "--lab", &lab2]);
        assert_eq!(code, 0, "{stdout}{stderr}");
    }
    let left = leftovers(&lab2, &links);
    assert!(left.is_empty(), "left behind after perseus down: {left:?}");
    let _ = std::fs::remove_dir_all(&out);
}

/// `perseus list` columns fit their widest cell, so no two cells run together.
#[test]
fn list_columns_are_as_wide_as_their_cells() {
    let (code, stdout, stderr) = run(&["list"]);
    assert_eq!(code, 0, "{stderr}");
    // The presets' table, then after a blank line the protocols'.
    let lines: Vec<&str> = stdout.lines().take_while(|l| !l.is_empty()).collect();
    let header = lines[0];
    let installed_at = header.find("installed").expect("an installed column");
    let run_here_at = header.find("run here").expect("a run here column");
    for line in &lines[1..] {
        let cell = line[installed_at..].split_whitespace().next().unwrap_or("");
        assert!(
            cell == "yes" || cell == "no",
            "the installed column lines up: {line:?}"
        );
        assert_eq!(
            &line[installed_at - 2..installed_at],
            "  ",
            "two spaces before the column: {line:?}"
        );
        // Honest about what ran where: TiDB's binaries and Consul's image cannot be had
        // here, and the list says so.
        let run_here = &line[run_here_at..];
        let name = line.split_whitespace().next().unwrap();
        let db = perseus::db::find(name).unwrap();
        if ["tidb", "consul"].contains(&name) {
            assert!(!db.run_here(), "{name}");
        }
        if db.run_here() {
            assert!(run_here.starts_with("yes "), "{line:?}");
        } else {
            assert!(
                run_here.starts_with("not on this project's machines"),
                "{line:?}"
            );
        }
    }
    assert_eq!(lines.len() - 1, perseus::db::REGISTRY.len(), "{stdout}");
    let protocols = stdout.split("\n\n").nth(1).expect("the protocols' table");
    let rows: Vec<Vec<&str>> = protocols
        .lines()
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(rows[0], ["protocol", "port"], "{protocols}");
    for p in perseus::db::PROTOCOLS {
        let port = p.client_port().to_string();
        assert!(
            rows.contains(&vec![p.name(), port.as_str()]),
            "{}: {protocols}",
            p.name()
        );
    }
}

/// The help teaches: durations and targets by their forms, defaults, exit codes, the
/// environment.
#[test]
fn the_help_names_forms_defaults_targets_and_exit_codes() {
    let (code, help, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for needle in [
        "Exit codes:",
        "130",
        "PERSEUS_HOME",
        "DURATION",
        "follower",
        "random",
    ] {
        assert!(help.contains(needle), "perseus --help names {needle}");
    }
    let (_, help, _) = run(&["run", "--help"]);
    for needle in [
        "--before <DURATION>",
        "--isolate <NODE>",
        "[default: 3]",
        "leader",
        "follower",
    ] {
        assert!(
            help.contains(needle),
            "perseus run --help names {needle}:\n{help}"
        );
    }
    let (_, help, _) = run(&["isolate", "--help"]);
    for needle in ["<NODE>", "leader", "follower", "random", "all"] {
        assert!(
            help.contains(needle),
            "perseus isolate --help: {needle}:\n{help}"
        );
    }
    let (_, help, _) = run(&["bench", "lab", "--help"]);
    assert!(
        help.contains("How many times") && help.contains("Nodes per lab"),
        "bench arguments are documented:\n{help}"
    );
    let (code, completions, _) = run(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(completions.contains("isolate") && completions.contains("complete"));
    let (code, man, _) = run(&["man"]);
    assert_eq!(code, 0);
    assert!(
        man.starts_with(".ie") || man.contains(".TH perseus"),
        "{}",
        &man[..man.len().min(200)]
    );
}

/// `compare --out` into a directory that does not exist fails before printing anything.
#[test]
fn compare_into_a_missing_directory_fails_before_printing() {
    let dir = out_dir("compare-missing");
    perseus::record::synthetic::synthetic_record(&dir, 30, 50).unwrap();
    let missing = dir.join("no-such-dir").join("compare.html");
    let (code, stdout, stderr) = run(&[
        "compare",
        dir.to_str().unwrap(),
        "--out",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "nothing printed: {stdout}");
    assert!(stderr.contains("no-such-dir"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A command with nothing to clean up ends at the first Ctrl-C or SIGTERM, even while it
/// waits on its input (here a record that is a FIFO nobody writes to).
#[test]
fn a_signal_ends_a_command_that_has_nothing_to_clean_up() {
    for signal in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let dir = out_dir("fifo");
        std::fs::create_dir_all(&dir).unwrap();
        nix::unistd::mkfifo(&dir.join("record.txt"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let mut child = perseus()
            .args(["report", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "report waits on the FIFO"
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let code = wait_exit(&mut child, Duration::from_secs(5));
        assert_eq!(code, 130, "{signal}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A record with one bogus time far ahead is an error at once, not a report that grows
/// without bound.
#[test]
fn a_bogus_time_in_a_record_is_reported_not_followed() {
    let dir = out_dir("bogus-time");
    perseus::record::synthetic::synthetic_record(&dir, 10, 50).unwrap();
    // Made plain, so that a line can go in (the plain form reads as well).
    let mut text = record_text(&dir);
    std::fs::remove_file(dir.join("record.bin.zst")).unwrap();
    let end = text.rfind("\nE ").unwrap();
    text.insert_str(end + 1, "M 10000000000000 bogus\n");
    std::fs::write(dir.join("record.txt"), text).unwrap();
    let (code, _, stderr) = run(&["report", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("malformed record") && stderr.contains("after anything before it"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
