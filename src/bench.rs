//! `perseus bench`: measurements of Perseus itself, each taken side by side in one run, for
//! BENCHMARKS.md. Nothing here asserts a speed; it measures and prints.

use crate::analysis;
use crate::db::Database;
use crate::error::{Error, Result};
use crate::fault::{self, nft, Action, Rng};
use crate::lab::{self, process, LabState};
use crate::record::{Event, FaultEvent, Header, Kind, Op, Outcome, Writer};
use crate::report;
use std::path::Path;
use std::time::{Duration, Instant};

/// Peak resident memory of this process so far (VmHWM), in KiB.
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Resident memory of a process now (VmRSS), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The operation lines of a record and its size, read in a streaming pass.
pub fn count_ops(record: &Path) -> Result<(u64, u64)> {
    use std::io::BufRead;
    let file =
        std::fs::File::open(record).map_err(Error::io(format!("open {}", record.display())))?;
    let mut input = std::io::BufReader::new(file);
    let (mut ops, mut bytes, mut line) = (0u64, 0u64, Vec::with_capacity(128));
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(Error::io("read record"))?;
        if n == 0 {
            return Ok((ops, bytes));
        }
        bytes += n as u64;
        if line.first().is_some_and(u8::is_ascii_digit) {
            ops += 1;
        }
    }
}

/// Writes a synthetic record: 3 nodes, `seconds` long, `rate` operations a second in all
/// (reads and writes of read → increment → write cycles), n2 isolated for the middle third
/// with one timeout a second. Returns the number of operations.
pub fn synthetic_record(dir: &Path, seconds: u64, rate: u64) -> Result<u64> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
    let header = Header::new(
        "etcd",
        vec!["n1".into(), "n2".into(), "n3".into()],
        crate::clock::unix_ms(),
        0,
    );
    let mut w = Writer::create(&dir.join(crate::record::FILE_NAME), &header)?;
    let (iso, rejoin) = (seconds / 3 * 1_000_000, 2 * seconds / 3 * 1_000_000);
    let step = 1_000_000 / (rate / 3).max(1);
    let mut values = [0i64; 3];
    // Each node alternates read, write (a read → increment → write cycle).
    let mut writes_next = [false; 3];
    let mut ops = 0u64;
    let fault = |t_us, verb: &str| {
        Event::Fault(FaultEvent {
            t_us,
            verb: verb.into(),
            target: "n2".into(),
        })
    };
    let mut t = 0;
    let mut fault_at = [(iso, "isolating"), (rejoin, "rejoining")]
        .into_iter()
        .peekable();
    while t < seconds * 1_000_000 {
        if let Some((at, verb)) = fault_at.peek().copied() {
            if t >= at {
                w.write(&fault(at, verb))?;
                fault_at.next();
            }
        }
        for (node, value) in values.iter_mut().enumerate() {
            let isolated = node == 1 && (iso..rejoin).contains(&t);
            if isolated {
                if t % 1_000_000 < step {
                    w.write(&Event::Op(Op {
                        node,
                        key: None,
                        kind: Kind::Read,
                        start_us: t,
                        duration_us: 1_000_000,
                        outcome: Outcome::Unknown,
                        value: None,
                        error: Some("timed out after 1s".into()),
                    }))?;
                    ops += 1;
                }
                continue;
            }
            let kind = if writes_next[node] {
                Kind::Write
            } else {
                Kind::Read
            };
            writes_next[node] = !writes_next[node];
            if kind == Kind::Write {
                *value += 1;
            }
            let v = Some(*value);
            w.write(&Event::Op(Op {
                node,
                key: None,
                kind,
                start_us: t,
                duration_us: 1_500 + (t % 700),
                outcome: Outcome::Ok,
                value: v,
                error: None,
            }))?;
            ops += 1;
        }
        t += step;
    }
    w.write(&Event::End {
        t_us: seconds * 1_000_000,
    })?;
    w.flush()?;
    Ok(ops)
}

/// Generates a record and times its full report (analysis, client.log, summary.json,
/// report.html, report.md). Prints one line per figure.
pub fn report(seconds: u64, rate: u64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("perseus-bench-report-{}", std::process::id()));
    let t = Instant::now();
    let ops = synthetic_record(&dir, seconds, rate)?;
    let gen = t.elapsed();
    let record = dir.join(crate::record::FILE_NAME);
    let bytes = std::fs::metadata(&record).map(|m| m.len()).unwrap_or(0);
    let t = Instant::now();
    let a = analysis::analyse(&record)?;
    let analysed = t.elapsed();
    report::write_results(&dir, &a)?;
    let total = t.elapsed();
    let page = std::fs::metadata(dir.join(report::HTML_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("record: {seconds} s at {rate} ops/s = {ops} operations, {bytes} bytes, {:.1} bytes/op (written in {:.2} s)", bytes as f64 / ops as f64, gen.as_secs_f64());
    println!(
        "report: analysis {:.2} s, all files {:.2} s; report.html {} KiB; peak RSS {} MiB",
        analysed.as_secs_f64(),
        total.as_secs_f64(),
        page / 1024,
        peak_rss_kib() / 1024
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Brings a lab of `db` up and down `repeat` times; prints each time to ready and to gone.
pub async fn lab(db: &'static dyn Database, nodes: usize, repeat: usize) -> Result<()> {
    process::require_root("perseus bench lab")?;
    db.check_installed(None)?;
    let mut up = Vec::new();
    let mut down = Vec::new();
    for i in 0..repeat {
        let name = format!("bench-{}-{i}", std::process::id());
        let t = Instant::now();
        let mut state = lab::create(&name, db.name(), nodes, None, None)?;
        let started = lab::start_database(&mut state, db, Duration::from_secs(120)).await;
        let ready = t.elapsed();
        let t = Instant::now();
        lab::destroy(&state)?;
        let gone = t.elapsed();
        started?;
        println!(
            "{} {nodes} nodes: ready in {:.2} s, torn down in {:.2} s",
            db.name(),
            ready.as_secs_f64(),
            gone.as_secs_f64()
        );
        up.push(ready);
        down.push(gone);
    }
    up.sort();
    down.sort();
    println!(
        "median of {repeat}: ready {:.2} s, teardown {:.2} s",
        up[up.len() / 2].as_secs_f64(),
        down[down.len() / 2].as_secs_f64()
    );
    Ok(())
}

/// In a running lab, times `isolate NODE` from the command to the rules in force (nft has
/// loaded them), and to the first dropped peer packet (a connection attempt from a peer,
/// counted by a probe rule in the same hook); then heals. Repeats `repeat` times.
pub async fn fault_latency(
    state: &LabState,
    db: &'static dyn Database,
    node: usize,
    repeat: usize,
) -> Result<()> {
    process::require_root("perseus bench fault")?;
    let peer = (node + 1) % state.nodes.len();
    let mut in_force = Vec::new();
    let mut first_drop = Vec::new();
    for _ in 0..repeat {
        let me = &state.nodes[node];
        let peers: Vec<_> = (0..state.nodes.len())
            .filter(|i| *i != node)
            .map(|i| state.nodes[i].addr)
            .collect();
        let rules = nft::peer_rules("perseus_bench", "bench", &peers, nft::Drop::Both)
            .replace("} drop", "} counter drop");
        let t = Instant::now();
        nft::apply(&me.netns, &rules)?;
        let applied = t.elapsed();
        // A SYN from a peer: the first packet the new rules must drop.
        let (ns, to) = (
            state.nodes[peer].netns.clone(),
            std::net::SocketAddr::from((me.addr, db.client_port())),
        );
        std::thread::spawn(move || {
            fault::probe::can_connect(Some(&ns), to, Duration::from_millis(200))
        });
        loop {
            let out = process::run_in(
                &me.netns,
                "nft",
                &["list", "table", "inet", "perseus_bench"],
                None,
            )?;
            if out
                .lines()
                .any(|l| l.contains("counter packets") && !l.contains("counter packets 0 "))
            {
                break;
            }
            if t.elapsed() > Duration::from_secs(2) {
                return Err(Error::FaultNotInForce(
                    "no peer packet was dropped within 2 s".into(),
                ));
            }
        }
        let dropped = t.elapsed();
        nft::remove(&me.netns, "perseus_bench")?;
        in_force.push(applied);
        first_drop.push(dropped);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    in_force.sort();
    first_drop.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    println!(
        "isolate {} ({} runs): rules in force after {:.1} ms (median; min {:.1}, max {:.1}); first peer packet dropped after {:.1} ms (median; max {:.1})",
        state.nodes[node].name,
        repeat,
        ms(&in_force[repeat / 2]),
        ms(&in_force[0]),
        ms(&in_force[repeat - 1]),
        ms(&first_drop[repeat / 2]),
        ms(&first_drop[repeat - 1]),
    );
    // The product path too: the whole `isolate` action, its check included, and its undo.
    let mut rng = Rng::new(1);
    let action: Action = format!("isolate {}", state.nodes[node].name)
        .parse()
        .map_err(Error::Invalid)?;
    let t = Instant::now();
    let f = fault::start(&action, state, db, &mut rng).await?;
    let whole = t.elapsed();
    fault::end(&f, state, db).await?;
    println!(
        "perseus isolate (with its connection check): {:.1} ms",
        ms(&whole)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synthetic_record_analyses_to_the_isolation_it_holds() {
        let dir = std::env::temp_dir().join(format!("perseus-bench-test-{}", std::process::id()));
        let ops = synthetic_record(&dir, 30, 600).unwrap();
        assert!(ops > 15_000, "{ops}");
        let a = analysis::analyse(&dir.join(crate::record::FILE_NAME)).unwrap();
        let w = a.window.unwrap();
        assert_eq!(
            (w.target.as_str(), w.start_us, w.end_us),
            ("n2", 10_000_000, Some(20_000_000))
        );
        assert_eq!(a.precise.unwrap().downtime_on_isolation, 0);
        assert_eq!(a.correctness.violations, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
