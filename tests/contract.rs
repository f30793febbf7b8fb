//! The contract every database of the registry meets, one test per database
//! (`contract::etcd`, …), so a database added to `perseus::db::REGISTRY` is tested without a
//! line here. Through the binary, on a real lab, as a user would:
//!
//! 1. it comes up (`perseus up`) and is steady: every node's client serves, second after
//!    second (`perseus watch`, writing by compare-and-set);
//! 2. a node that does not lead is cut off from its peers (`perseus isolate follower`, or
//!    `isolate n2` where no node leads);
//! 3. once the database's own timeouts have run out ([`perseus::db::CutOff::settles`]),
//!    that node's client sees what the documentation says ([`perseus::db::CutOff::serves`]:
//!    every second served, or none), and the others serve every second;
//! 4. it rejoins, and every node's client serves again within two minutes;
//! 5. the watch ends cleanly: no acknowledged write lost, no stale read;
//! 6. `perseus down` leaves nothing of the lab on the machine.
//!
//! A database whose binaries no Debian package provides (TiDB) runs only where
//! `PERSEUS_<NAME>_BIN_DIR` names them; elsewhere its test is ignored, which nextest
//! reports as skipped, never as passed. A database whose packages are missing fails,
//! saying what to install.

#[path = "integration/support.rs"]
#[allow(dead_code)]
mod support;

use libtest_mimic::{Arguments, Failed, Trial};
use perseus::db::Database;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn main() {
    let args = Arguments::from_args();
    let trials = perseus::db::REGISTRY
        .iter()
        .map(|db| {
            let db: &'static dyn Database = *db;
            let bin_dir = user_binaries(db);
            let ignored = bin_dir.as_ref().is_some_and(|d| d.is_none());
            Trial::test(db.name(), move || {
                contract(db, bin_dir.flatten().as_deref()).map_err(Failed::from)
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// For a database with binaries no Debian package provides: `Some(the directory the user
/// named in PERSEUS_<NAME>_BIN_DIR)`, or `Some(None)` if none is named. `None` for a
/// database that Debian packages provide (`.ci/run` installs them).
fn user_binaries(db: &dyn Database) -> Option<Option<String>> {
    let debian_name = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
    };
    if db.binaries().iter().all(|(_, p)| debian_name(p)) {
        return None;
    }
    let var = format!(
        "PERSEUS_{}_BIN_DIR",
        db.name().to_uppercase().replace('-', "_")
    );
    Some(std::env::var(var).ok())
}

/// Kills the watch if the test ends early, so nothing outlives it.
struct WatchGuard(Child);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One row of the live table: its second and whether each node's client served in it.
type Row = (u64, Vec<bool>);

/// The rows of the table written so far (none while the file is incomplete).
fn rows(path: &Path) -> Vec<Row> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(t) = perseus::record::table::Table::parse(&text, path) else {
        return Vec::new();
    };
    t.rows().map(|r| (r.second, serving(r))).collect()
}

/// Waits up to `limit` until the last `n` rows of the table show every node serving;
/// returns the second of the last of them.
fn all_serve_for(path: &Path, n: usize, limit: Duration, what: &str) -> Result<u64, String> {
    let t = Instant::now();
    loop {
        let r = rows(path);
        if r.len() >= n && r[r.len() - n..].iter().all(|(_, s)| s.iter().all(|x| *x)) {
            return Ok(r[r.len() - 1].0);
        }
        if t.elapsed() > limit {
            let tail: Vec<String> = r
                .iter()
                .rev()
                .take(8)
                .map(|(s, v)| format!("{s}: {v:?}"))
                .collect();
            return Err(format!(
                "{what}: not every node served for {n} s in a row within {limit:?}; last rows: {tail:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn contract(db: &'static dyn Database, bin_dir: Option<&str>) -> Result<(), String> {
    require_lab("nft", "nftables");
    db.check_installed(bin_dir.map(Path::new))
        .map_err(|e| format!("{e} (or run .ci/run)"))?;
    let name = db.name();
    let lab = lab_name(&format!("c-{}", &name[..name.len().min(6)]));
    let _lab_guard = LabGuard(lab.clone());
    let out = out_dir(&format!("contract-{name}"));

    // 1. It comes up and is steady.
    let mut up = vec!["up", name, "--lab", &lab, "--ready-timeout", "120s"];
    if let Some(d) = bin_dir {
        up.extend(["--bin-dir", d]);
    }
    let (code, stdout, stderr) = run(&up);
    check(code == 0, || {
        format!("perseus up {name}: exit {code}\n{stdout}{stderr}")
    })?;
    let links = links_of(&lab);
    let watch = perseus()
        .args(["watch", "--lab", &lab, "--write", "cas", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start perseus watch: {e}"))?;
    let mut watch = WatchGuard(watch);
    let table = out.join("client.log");
    all_serve_for(
        &table,
        3,
        Duration::from_secs(60),
        "steady before the fault",
    )?;

    // 2. A node that does not lead is cut off.
    let target = if db.leadership().is_some() {
        "follower"
    } else {
        "n2"
    };
    let (code, stdout, stderr) = run(&["isolate", target, "--lab", &lab]);
    check(code == 0, || {
        format!("perseus isolate {target}: exit {code}\n{stdout}{stderr}")
    })?;
    let node = stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.strip_prefix('n'))
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| format!("which node was isolated: {stdout}"))?
        - 1;
    let cut_at = rows(&table).last().map_or(0, |r| r.0);

    // 3. After the database's timeouts, its client sees what the documentation says.
    let promise = db.cut_off();
    let settled = cut_at + promise.settles.as_secs() + 2;
    let watched = 6;
    let t = Instant::now();
    while rows(&table).last().map_or(0, |r| r.0) < settled + watched {
        check(
            t.elapsed() < promise.settles + Duration::from_secs(60),
            || "the table stopped growing".into(),
        )?;
        std::thread::sleep(Duration::from_millis(500));
    }
    let late: Vec<Row> = rows(&table)
        .into_iter()
        .filter(|(s, _)| *s > settled && *s <= settled + watched)
        .collect();
    check(late.len() >= watched as usize - 1, || {
        format!("rows after the cut settled: {late:?}")
    })?;
    for (second, serving) in &late {
        check(serving[node] == promise.serves, || {
            format!(
                "second {second}: n{}'s client {} while cut off, but {} documents that it {} ({}); rows: {late:?}",
                node + 1,
                if serving[node] { "served" } else { "did not serve" },
                name,
                if promise.serves { "serves" } else { "does not" },
                promise.source
            )
        })?;
        for (i, s) in serving.iter().enumerate() {
            check(i == node || *s, || {
                format!(
                    "second {second}: n{} did not serve while only n{} was cut off; rows: {late:?}",
                    i + 1,
                    node + 1
                )
            })?;
        }
    }

    // 4. It rejoins and everyone serves again.
    let n = format!("n{}", node + 1);
    let (code, stdout, stderr) = run(&["rejoin", &n, "--lab", &lab]);
    check(code == 0, || {
        format!("perseus rejoin {n}: exit {code}\n{stdout}{stderr}")
    })?;
    all_serve_for(&table, 3, Duration::from_secs(120), "after the rejoin")?;

    // 5. The watch ends cleanly: nothing lost, nothing stale.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watch.0.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .map_err(|e| format!("stop the watch: {e}"))?;
    let status = watch.0.wait().map_err(|e| e.to_string())?;
    let mut printed = String::new();
    if let Some(o) = watch.0.stdout.as_mut() {
        let _ = std::io::Read::read_to_string(o, &mut printed);
    }
    check(status.success(), || {
        format!("the watch ended with {status}: lost writes or stale reads?\n{printed}")
    })?;
    let summary: serde_json::Value = std::fs::read_to_string(out.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or("the watch wrote no summary.json")?;
    check(
        summary["lost_acknowledged_writes"] == 0 && summary["correctness"]["violations"] == 0,
        || format!("lost or stale: {}", summary["correctness"]),
    )?;

    // 6. Down leaves nothing.
    let (code, stdout, stderr) = run(&["down", "--lab", &lab]);
    check(code == 0, || {
        format!("perseus down: exit {code}\n{stdout}{stderr}")
    })?;
    let left = leftovers(&lab, &links);
    check(left.is_empty(), || format!("left behind: {left:?}"))?;
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}
