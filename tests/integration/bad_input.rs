//! Bad input: one line that says what to do, a non-zero exit, nothing half-made.

use crate::support::*;
use std::os::unix::process::CommandExt;

fn one_line_error(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line of error, got: {stderr}");
    lines[0]
}

#[test]
fn unknown_database_lists_the_known_ones() {
    let (code, _, stderr) = run(&["run", "no-such-database"]);
    assert_eq!(code, 2);
    let e = one_line_error(&stderr);
    assert!(
        e.contains("unknown database 'no-such-database'") && e.contains("etcd"),
        "{e}"
    );
    let (code, _, stderr) = run(&["up", "no-such-database", "--lab", "it-bad-db"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!lab_dir("it-bad-db").exists());
}

#[test]
fn a_node_that_is_not_in_the_run_is_refused_before_anything_starts() {
    let (code, _, stderr) = run(&["run", "etcd", "--isolate", "n4", "--lab", "it-bad-node"]);
    assert_eq!(code, 2);
    let e = one_line_error(&stderr);
    assert!(
        e.contains("n4") && e.contains("n1, n2, n3") && e.contains("leader"),
        "{e}"
    );
    assert!(!lab_dir("it-bad-node").exists());
}

#[test]
fn a_setting_the_preset_does_not_have_or_a_bad_value_is_refused_before_anything_starts() {
    for (set, says) in [
        (
            "nope=1",
            "its settings: heartbeat-interval, election-timeout, pre-vote",
        ),
        (
            "election-timeout=1s",
            "election-timeout takes a whole number",
        ),
        (
            "election-timeout=5\n--data-dir=/",
            "election-timeout takes a whole number",
        ),
    ] {
        let (code, _, stderr) = run(&["run", "etcd", "--set", set, "--lab", "it-bad-set"]);
        assert_eq!(code, 2, "{set}: {stderr}");
        let e = one_line_error(&stderr);
        assert!(e.contains(says), "{set}: {e}");
        assert!(!lab_dir("it-bad-set").exists());
    }
    let (code, _, stderr) = run(&[
        "run",
        "etcd",
        "--set",
        "election-timeout",
        "--lab",
        "it-bad-set",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("NAME=VALUE"), "{stderr}");
}

#[test]
fn a_matrix_sweep_or_file_with_a_mistake_is_refused_and_makes_nothing() {
    let out = out_dir("bad-matrix");
    let o = out.to_str().unwrap();
    let (code, _, stderr) = run(&[
        "matrix",
        "--db",
        "etcd",
        "--set",
        "syncLimit=2,5",
        "--out",
        o,
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        one_line_error(&stderr).contains("none of etcd has this setting"),
        "{stderr}"
    );
    let file = out.with_extension("toml");
    std::fs::write(
        &file,
        "databases = [\"etcd\"]\n[db.etcd]\nset = { election-timeout = \"soon\" }\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["matrix", "--matrix", file.to_str().unwrap(), "--out", o]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        one_line_error(&stderr).contains("election-timeout takes a whole number"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing made");
}

#[test]
fn a_lab_that_does_not_exist_is_named() {
    for args in [
        vec!["isolate", "n2", "--lab", "it-nosuch"],
        vec!["watch", "--lab", "it-nosuch"],
        vec!["down", "--lab", "it-nosuch"],
    ] {
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}");
        let e = one_line_error(&stderr);
        assert!(e.contains("no lab named 'it-nosuch'"), "{e}");
    }
}

/// The binary is copied to a directory anyone may enter: the checkout may sit under one only
/// root can (as `mktemp -d` makes, and as a CI system may), and the test must not depend on
/// where it lives.
#[test]
fn without_root_the_error_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("perseus-noroot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _remove = Removed(vec![dir.clone()]);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = dir.join("perseus");
    std::fs::copy(env!("CARGO_BIN_EXE_perseus"), &binary).unwrap();
    let out = std::process::Command::new(&binary)
        .args(["up", "etcd", "--lab", "it-noroot"])
        .current_dir(&dir)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let (code, _, stderr) = split(out);
    assert_eq!(code, 3, "{stderr}");
    assert!(one_line_error(&stderr).contains("needs root"), "{stderr}");
    assert!(!lab_dir("it-noroot").exists());
}

#[test]
fn a_missing_binary_names_its_package() {
    require_lab("etcd", "etcd-server");
    let (code, _, stderr) = split(
        perseus()
            .args(["up", "etcd", "--lab", "it-nobin"])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 3, "{stderr}");
    let e = one_line_error(&stderr);
    assert!(
        e.contains("etcd not found") && e.contains("apt-get install etcd-server"),
        "{e}"
    );
    assert!(!lab_dir("it-nobin").exists());
}

#[test]
fn a_malformed_spec_file_names_the_line() {
    let dir = out_dir("badspec");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("spec.json");
    std::fs::write(&spec, "{\n  \"database\": \"etcd\",\n  \"nodez\": 3\n}\n").unwrap();
    let (code, _, stderr) = run(&["run", "--spec", spec.to_str().unwrap()]);
    assert_eq!(code, 2);
    let e = one_line_error(&stderr);
    assert!(
        e.contains("malformed spec") && e.contains("line 3") && e.contains("nodez"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A spare bridge holding an address of the requested range stands for "already in use".
#[test]
fn an_address_range_in_use_is_refused_and_nothing_is_made() {
    require_lab("etcd", "etcd-server");
    struct Dummy;
    impl Drop for Dummy {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", "it-dummy0"])
                .output();
        }
    }
    let _dummy = Dummy;
    let ip = |args: &[&str]| {
        assert!(std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap()
            .success())
    };
    ip(&["link", "add", "it-dummy0", "type", "bridge"]);
    ip(&["addr", "add", "198.19.250.1/24", "dev", "it-dummy0"]);
    let (code, _, stderr) = run(&[
        "up",
        "etcd",
        "--lab",
        "it-subnet",
        "--subnet",
        "198.19.250.0/24",
    ]);
    assert_eq!(code, 3);
    let e = one_line_error(&stderr);
    assert!(
        e.contains("198.19.250.0/24 is already in use") && e.contains("it-dummy0"),
        "{e}"
    );
    assert!(!lab_dir("it-subnet").exists());
    let (code, _, stderr) = run(&[
        "up",
        "etcd",
        "--lab",
        "it-subnet",
        "--subnet",
        "10.0.0.0/24",
    ]);
    assert_eq!(code, 2);
    assert!(
        one_line_error(&stderr).contains("inside 198.18.0.0/15"),
        "{stderr}"
    );
}

#[test]
fn a_scenario_with_a_mistake_names_its_line_and_nothing_starts() {
    let dir = out_dir("badscenario");
    std::fs::create_dir_all(&dir).unwrap();
    for (text, line, what) in [
        (
            "[[phase]]\nname = \"a\"\nduration = \"5s\"\nfaults = [\"kill n7\"]\n",
            "line 4",
            "no node 'n7'",
        ),
        (
            "[[phase]]\nname = \"a\"\nduration = \"-5s\"\n",
            "line 3",
            "not a duration",
        ),
        (
            "[[phase]]\nname = \"a\"\nduration = \"5s\"\nfaults = [\"explode n1\"]\n",
            "line 4",
            "unknown fault 'explode'",
        ),
        (
            "[[phase]]\nname = \"a\"\nduration = \"1e20\"\n",
            "line 3",
            "not a duration",
        ),
    ] {
        let file = dir.join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let (code, _, stderr) = run(&[
            "run",
            "etcd",
            "--scenario",
            file.to_str().unwrap(),
            "--lab",
            "it-badsc",
        ]);
        assert_eq!(code, 2, "{stderr}");
        let e = one_line_error(&stderr);
        assert!(e.contains(line) && e.contains(what), "{e}");
        assert!(!lab_dir("it-badsc").exists());
    }
    let (code, _, stderr) = run(&["run", "etcd", "--scenario", "no-such-scenario"]);
    assert_eq!(code, 2);
    assert!(
        one_line_error(&stderr).contains("split-halves"),
        "lists the built-in scenarios: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A private `PERSEUS_HOME` for a test, removed when dropped.
struct Home(std::path::PathBuf);

impl Home {
    fn new(tag: &str) -> Home {
        let dir =
            std::env::temp_dir().join(format!("perseus-it-home-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("labs")).unwrap();
        Home(dir)
    }

    fn run(&self, args: &[&str], lab_env: Option<&str>) -> (i32, String, String) {
        let mut cmd = perseus();
        cmd.args(args)
            .env("PERSEUS_HOME", &self.0)
            .env_remove("PERSEUS_LAB");
        if let Some(lab) = lab_env {
            cmd.env("PERSEUS_LAB", lab);
        }
        split(cmd.output().unwrap())
    }

    /// A lab state that `down` could act on: no nodes, a bridge that does not exist.
    fn state(&self, dir: &std::path::Path, name: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let state = serde_json::json!({
            "name": name, "database": "etcd", "subnet": "198.19.251.0/24",
            "bridge": "it-nosuch-br", "host_addr": "198.19.251.254", "nodes": [],
            "created_unix_ms": 0, "perseus_version": "0"
        });
        std::fs::write(dir.join("state.json"), state.to_string()).unwrap();
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `../` in a lab or cluster name never reaches outside `$PERSEUS_HOME/labs`: every command
/// that takes a name refuses it before reading or removing anything.
#[test]
fn lab_and_cluster_names_cannot_reach_outside_the_labs() {
    require_lab("etcd", "etcd-server");
    let home = Home::new("traversal");
    // A directory beside labs/ that looks like a lab whose state names itself by the path.
    let decoy = home.0.join("decoy");
    home.state(&decoy, "../decoy");
    for (args, env) in [
        (vec!["down", "--lab", "../decoy"], None),
        (vec!["down"], Some("../decoy")),
        (vec!["status", "--lab", "../decoy"], None),
        (vec!["isolate", "n2", "--lab", "../decoy"], None),
        (vec!["watch", "--lab", "../decoy"], None),
        (vec!["mark", "isolating", "n2", "--lab", "../decoy"], None),
        (
            vec!["mark", "isolating", "n2", "--cluster", "../decoy"],
            None,
        ),
    ] {
        let (code, stdout, stderr) = home.run(&args, env);
        if args[0] == "status" {
            // status lists the labs there are; an unknown name only narrows nothing.
            assert_eq!(code, 0, "{args:?}: {stderr}");
            assert!(!stdout.contains("decoy"), "{stdout}");
            continue;
        }
        assert_eq!(code, 2, "{args:?} {env:?}: {stdout}{stderr}");
        assert!(
            one_line_error(&stderr).contains("lab name '../decoy'"),
            "{args:?}: {stderr}"
        );
    }
    assert!(
        decoy.join("state.json").exists(),
        "nothing outside labs/ was touched"
    );
}

/// A lab whose state names another lab is refused, with what to do.
#[test]
fn a_state_that_names_another_lab_is_refused() {
    require_lab("etcd", "etcd-server");
    let home = Home::new("mismatch");
    home.state(&home.0.join("labs/it-mismatch"), "it-other");
    let (code, _, stderr) = home.run(&["down", "--lab", "it-mismatch"], None);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        one_line_error(&stderr).contains("names lab 'it-other', not 'it-mismatch'"),
        "{stderr}"
    );
    assert!(home.0.join("labs/it-mismatch/state.json").exists());
}

/// An empty lab directory (a crash before the state was first saved) is removed by `down`,
/// and `down --all` carries on past a lab it cannot remove, naming it, with exit 1.
#[test]
fn down_removes_a_lab_without_state_and_all_carries_on_past_a_failure() {
    require_lab("etcd", "etcd-server");
    let home = Home::new("wedge");
    std::fs::create_dir_all(home.0.join("labs/it-empty")).unwrap();
    let (code, stdout, stderr) = home.run(&["down", "--lab", "it-empty"], None);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("lab it-empty removed"), "{stdout}");
    assert!(!home.0.join("labs/it-empty").exists());

    std::fs::create_dir_all(home.0.join("labs/it-a-empty")).unwrap();
    home.state(&home.0.join("labs/it-b-bad"), "it-other");
    std::fs::create_dir_all(home.0.join("labs/it-c-empty")).unwrap();
    let (code, stdout, stderr) = home.run(&["down", "--all"], None);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        !home.0.join("labs/it-a-empty").exists() && !home.0.join("labs/it-c-empty").exists(),
        "the labs before and after the failure are removed: {stdout}{stderr}"
    );
    assert!(
        stderr.contains("lab it-b-bad not removed") && stderr.contains("1 of 3 labs not removed"),
        "{stderr}"
    );
}

/// Durations too long to mean anything are errors, never panics, and nothing starts.
#[test]
fn huge_durations_are_refused_before_anything_starts() {
    for args in [
        vec!["run", "etcd", "--before", "1e20", "--lab", "it-huge"],
        vec!["up", "etcd", "--ready-timeout", "1e19", "--lab", "it-huge"],
        vec![
            "run",
            "etcd",
            "--timeout",
            "100000000000y",
            "--lab",
            "it-huge",
        ],
    ] {
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            stderr.contains("not a duration") || stderr.contains("longer than"),
            "{stderr}"
        );
    }
    // A scenario's huge duration: a_scenario_with_a_mistake_names_its_line_and_nothing_starts.
    assert!(!lab_dir("it-huge").exists());
}

/// Lab servers run as their package's system user, not root; Redis asks for the lab's own
/// password (random, in a state file only root can read).
#[test]
fn lab_servers_run_unprivileged_and_ask_for_the_labs_password() {
    require_lab("redis-server", "redis-server");
    require_lab("redis-cli", "redis-tools");
    let lab = lab_name("unpriv");
    let _guard = LabGuard(lab.clone());
    let (code, stdout, stderr) = run(&["up", "redis-sentinel", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let state_path = lab_dir(&lab).join("state.json");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&state_path).unwrap().mode() & 0o777,
        0o600
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    let secret = state["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 32, "a 128-bit password");
    let redis = nix::unistd::User::from_name("redis")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    for pid in pids_of(&lab) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse().ok())
            .unwrap();
        assert_eq!(uid, redis, "process {pid} runs as redis");
    }
    let addr = state["nodes"][0]["addr"].as_str().unwrap().to_string();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", &addr, "-p", "6379"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    assert!(
        cli(&["set", "intruder", "1"]).contains("NOAUTH"),
        "no password, no way in"
    );
    assert!(cli(&["--no-auth-warning", "-a", &secret, "ping"]).contains("PONG"));
    let (code, stdout, stderr) = run(&["down", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// A results directory whose `summary.json` is of a version this build does not know, or
/// is not a regular file (a link to `/dev/zero`, which has no end), is refused with a
/// one-line error at once.
#[test]
fn a_summary_of_an_unknown_version_or_no_file_at_all_is_refused() {
    let dir = out_dir("summary-version");
    let _removed = Removed(vec![dir.clone()]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        "tests/corpus/record-etcd-isolate-leader.txt",
        dir.join("record.txt"),
    )
    .unwrap();
    let (code, _, stderr) = run(&["report", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let summary = dir.join("summary.json");
    let text = std::fs::read_to_string(&summary).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["version"] = 99.into();
    std::fs::write(&summary, v.to_string()).unwrap();
    let check = [
        "check",
        dir.to_str().unwrap(),
        "--expect",
        "lost_acknowledged_writes == 0",
    ];
    let (code, _, stderr) = run(&check);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("version 99"), "{stderr}");
    assert_eq!(one_line_error(&stderr), stderr.trim(), "one line");

    std::fs::remove_file(&summary).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &summary).unwrap();
    let t = std::time::Instant::now();
    let (code, _, stderr) = run(&check);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "refused at once"
    );
}

/// A container backend without an engine, an image without a container backend, and a
/// compose project that does not run: one line each that says what to do, and no lab and
/// no results directory made.
#[test]
fn a_container_run_without_its_engine_or_image_is_refused_before_anything_is_made() {
    let out = out_dir("bad-engine");
    let socket = out.with_extension("sock");
    let host = format!("unix://{}", socket.display());
    let run_with = |args: &[&str]| {
        split(
            perseus()
                .args(args)
                .args(["--lab", "it-bad-engine", "--out", out.to_str().unwrap()])
                .env("DOCKER_HOST", &host)
                .output()
                .unwrap(),
        )
    };
    let (code, _, stderr) = run_with(&["run", "etcd", "--backend", "docker"]);
    assert_eq!(code, 3, "{stderr}");
    let e = one_line_error(&stderr);
    assert!(
        e.contains(&socket.display().to_string()) && e.contains("DOCKER_HOST"),
        "{e}"
    );
    let (code, _, stderr) = run_with(&["run", "etcd", "--image", "quay.io/coreos/etcd:v3.4.23"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        one_line_error(&stderr).contains("--backend docker"),
        "{stderr}"
    );
    let (code, _, stderr) = run_with(&["run", "galera", "--backend", "docker"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        one_line_error(&stderr).contains("--image IMAGE"),
        "{stderr}"
    );
    let (code, _, stderr) = split(
        perseus()
            .args(["run", "etcd", "--compose", "nothing-here"])
            .env("DOCKER_HOST", &host)
            .output()
            .unwrap(),
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(one_line_error(&stderr).contains("DOCKER_HOST"), "{stderr}");
    assert!(!out.exists(), "no results directory");
    assert!(!lab_dir("it-bad-engine").exists());
}

/// A disk fault without `--disk faulty`, `--disk faulty` on a container backend, and a
/// disk of no kind Perseus knows: each refused in one line, before a results directory or
/// lab is made.
#[test]
fn disk_faults_without_a_disk_layer_are_refused_before_anything_is_made() {
    let out = out_dir("bad-disk");
    let scenario = out.with_extension("toml");
    std::fs::write(
        &scenario,
        "description = \"x\"\n[[phase]]\nname = \"a\"\nduration = \"2s\"\nfaults = [\"disk-full n2\"]\n",
    )
    .unwrap();
    let _removed = Removed(vec![scenario.clone()]);
    let run_with = |args: &[&str]| {
        split(
            perseus()
                .args(args)
                .args(["--lab", "it-bad-disk", "--out", out.to_str().unwrap()])
                .output()
                .unwrap(),
        )
    };
    let (code, _, stderr) = run_with(&["run", "etcd", "--scenario", scenario.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    let e = one_line_error(&stderr);
    assert!(
        e.contains("'disk-full n2'") && e.contains("--disk faulty"),
        "{e}"
    );
    let (code, _, stderr) = run_with(&["run", "etcd", "--disk", "faulty", "--backend", "docker"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        one_line_error(&stderr).contains("--backend lab"),
        "{stderr}"
    );
    let (code, _, stderr) = run_with(&["run", "etcd", "--disk", "broken"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("plain, faulty"), "{stderr}");
    assert!(!out.exists(), "no results directory");
    assert!(!lab_dir("it-bad-disk").exists());
}
