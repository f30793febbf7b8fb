//! The client protocols on their own (`database = "postgres"` / `"mysql"` in a cluster
//! file), against real servers: a lab's PostgreSQL (Patroni's: one primary, two read-only
//! replicas) and a lab's MariaDB Galera, each described to `perseus watch --cluster` as a
//! cluster Perseus did not start. What the tests hold them to is the protocol's own
//! contract: each node's client talks to that node and no other, so it sees that node's
//! answers, refusals included, where Patroni's and Galera's presets would route around them.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The lab's node addresses and its password, from its state file.
fn lab_nodes(lab: &str) -> (Vec<String>, String) {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab_dir(lab).join("state.json")).unwrap())
            .unwrap();
    let addrs = (0..3)
        .map(|i| state["nodes"][i]["addr"].as_str().unwrap().to_string())
        .collect();
    (addrs, state["secret"].as_str().unwrap().to_string())
}

/// A cluster file naming `protocol` as its client, the lab's three nodes at `port`, and
/// `user` with the password in `PERSEUS_PROTOCOL_TEST_PASSWORD`.
fn cluster_file(lab: &str, protocol: &str, port: u16, user: &str) -> PathBuf {
    let (addrs, _) = lab_nodes(lab);
    let mut text = format!(
        "name = \"c{}-{protocol}\"\ndatabase = \"{protocol}\"\nuser = \"{user}\"\n\
         password_env = \"PERSEUS_PROTOCOL_TEST_PASSWORD\"\n",
        std::process::id()
    );
    for (i, a) in addrs.iter().enumerate() {
        text.push_str(&format!(
            "[[node]]\nname = \"n{}\"\naddress = \"{a}:{port}\"\n",
            i + 1
        ));
    }
    let path = std::env::temp_dir().join(format!("{lab}-{protocol}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `perseus watch --cluster FILE --write cas` for about `seconds`, calling `during` once
/// `at` seconds in; stopped with Ctrl-C as a user would. Returns its results and what it
/// printed.
fn watch(
    file: &Path,
    lab: &str,
    seconds: u64,
    at: u64,
    during: impl FnOnce(),
) -> (RunResult, String) {
    let (_, password) = lab_nodes(lab);
    let out = out_dir(&format!("protocol-{lab}"));
    let err = out.with_extension("err");
    let mut child = perseus()
        .args([
            "watch",
            "--cluster",
            file.to_str().unwrap(),
            "--write",
            "cas",
        ])
        .args(["--out", out.to_str().unwrap()])
        .env("PERSEUS_PROTOCOL_TEST_PASSWORD", password)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut during = Some(during);
    while start.elapsed() < Duration::from_secs(seconds) {
        if child.try_wait().unwrap().is_some() {
            panic!(
                "the watch ended by itself: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        if start.elapsed() >= Duration::from_secs(at) {
            if let Some(f) = during.take() {
                f();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        output.status.success(),
        "the watch ends cleanly on Ctrl-C: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (RunResult::load(out, stdout.clone()), stdout)
}

#[test]
fn a_plain_postgres_client_per_node_sees_its_own_node_primary_or_replica() {
    require_lab("patroni", "patroni");
    let lab = lab_name("proto-pg");
    let _guard = LabGuard(lab.clone());
    let (code, stdout, stderr) = run(&["up", "patroni", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (_, status, _) = run(&["status", "--lab", &lab]);
    let primary = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("leader: "))
        .and_then(|l| l.split(';').next())
        .expect("status names the primary")
        .to_string();
    let p: usize = primary.trim_start_matches('n').parse::<usize>().unwrap() - 1;

    let file = cluster_file(&lab, "postgres", 5432, "postgres");
    let (r, stdout) = watch(&file, &lab, 7, 99, || {});
    let _ = std::fs::remove_file(&file);
    assert_eq!(r.summary["database"], "postgres");
    let version = r.summary["database_version"].as_str().unwrap_or_default();
    assert!(version.starts_with("PostgreSQL 15"), "{version}");
    // Every complete second: the primary's client completed increments, each replica's
    // none, refused by its own server (a read-only transaction), never routed elsewhere.
    let rows = r.rows_between(2, r.last_second());
    assert!(rows.len() >= 3, "{stdout}");
    for row in rows {
        let expected: Vec<bool> = (0..3).map(|i| i == p).collect();
        assert_eq!(serving(row), expected, "{}", row.render());
    }
    for i in (0..3).filter(|i| *i != p) {
        assert!(
            stdout.contains(&format!(
                "errors n{} before: 25006: cannot execute INSERT in a read-only transaction",
                i + 1
            )),
            "n{}'s client is refused by its replica: {stdout}",
            i + 1
        );
    }
    assert_no_anomaly(&r);

    // The HTTP exchange the HTTP protocols (consul-kv) are built on, against a real server
    // that runs here: Patroni's REST API on the primary's node.
    let (addrs, _) = lab_nodes(&lab);
    let api: std::net::SocketAddr = format!("{}:8008", addrs[p]).parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Duration::from_secs(5);
    let a = rt
        .block_on(perseus::db::http::request(
            api,
            "GET",
            "/cluster",
            &[],
            b"",
            t,
        ))
        .expect("Patroni's API answers");
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v: serde_json::Value = serde_json::from_slice(&a.body).expect("a whole JSON body");
    assert_eq!(v["members"].as_array().map(Vec::len), Some(3), "{v}");
    let a = rt
        .block_on(perseus::db::http::request(
            api,
            "GET",
            "/no-such-path",
            &[],
            b"",
            t,
        ))
        .expect("an answer");
    assert!(a.status >= 400, "{}", a.status);
    let closed: std::net::SocketAddr = format!("{}:8009", addrs[p]).parse().unwrap();
    let e = rt
        .block_on(perseus::db::http::request(closed, "GET", "/", &[], b"", t))
        .unwrap_err();
    assert!(
        matches!(e, perseus::db::http::Failed::NotSent(_)),
        "a refused connection sent nothing: {e:?}"
    );

    // How a server's refusal reads, from the real server's SQLSTATEs: a serialization
    // failure (CockroachDB's retry error) certainly did nothing; "statement completion
    // unknown" (its ambiguous result) may have done it.
    let (_, secret) = lab_nodes(&lab);
    let mut c = tokio_postgres::Config::new();
    c.host(&addrs[p])
        .port(5432)
        .user("postgres")
        .password(&secret)
        .dbname("postgres");
    let raised = |code: &str| {
        rt.block_on(async {
            let client = perseus::db::postgres::open(&c, t).await.expect("connects");
            let e = client
                .batch_execute(&format!(
                    "DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{code}'; END $$"
                ))
                .await
                .unwrap_err();
            perseus::db::postgres::client_error(e)
        })
    };
    let e = raised("40001");
    assert!(e.definite && e.text == "40001: raised", "{e:?}");
    let e = raised("40003");
    assert!(!e.definite && e.text == "40003: raised", "{e:?}");

    let (code, _, stderr) = run(&["down", "--lab", &lab]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_plain_mysql_client_per_node_sees_its_cut_off_node_refuse() {
    require_lab("mariadbd", "mariadb-server");
    let lab = lab_name("proto-my");
    let _guard = LabGuard(lab.clone());
    let (code, stdout, stderr) = run(&["up", "galera", "--lab", &lab]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    let file = cluster_file(&lab, "mysql", 3306, "perseus");
    // n2 is cut off from its peers 3 s in; Galera's members give up on it after
    // evs.suspect_timeout (5 s), and from then on n2 answers 1047 (not part of the primary
    // component) to its own client, while the other two take writes.
    let (r, stdout) = watch(&file, &lab, 14, 3, || {
        let (code, out, err) = run(&["isolate", "n2", "--lab", &lab]);
        assert_eq!(code, 0, "{out}{err}");
    });
    let _ = std::fs::remove_file(&file);
    assert_eq!(r.summary["database"], "mysql");
    let version = r.summary["database_version"].as_str().unwrap_or_default();
    assert!(version.contains("MariaDB"), "{version}");
    let last = r.last_second();
    r.assert_serving(2, 3, &[true, true, true], "all three before the cut");
    let end = r.rows_between(last - 1, last);
    assert!(!end.is_empty(), "{stdout}");
    for row in end {
        assert_eq!(serving(row), [true, false, true], "{}", row.render());
    }
    assert!(
        stdout.contains("errors n2") && stdout.contains(": 1047 "),
        "n2's client hears its own node refuse: {stdout}"
    );
    assert_no_anomaly(&r);
    let (code, _, stderr) = run(&["down", "--lab", &lab]);
    assert_eq!(code, 0, "{stderr}");
}
