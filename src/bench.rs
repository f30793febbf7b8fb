//! `perseus bench`: measurements of Perseus itself, each taken side by side in one run, for
//! BENCHMARKS.md. Nothing here asserts a speed; it measures and prints.

use perseus::analysis;
use perseus::db::{resp, Database};
use perseus::error::{Error, Result};
use perseus::fault::{self, nft, Action, Rng};
use perseus::lab::Layout;
use perseus::lab::{self, process, LabState};
use perseus::record::{Event, Header, Writer};
use perseus::report;
use std::path::Path;
use std::time::{Duration, Instant};

/// Peak resident memory of this process so far (VmHWM), in KiB.
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// The CPU time this process has used so far (user and system), in seconds; /proc counts
/// it in ticks of 1/100 s (USER_HZ).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
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

/// What [`report`] generates, and where it keeps it.
pub struct Generated {
    pub seconds: u64,
    pub rate: u64,
    /// A fault interval every so many seconds (`None`: one, in the middle third).
    pub fault_every: Option<u64>,
    /// Keep the record and its report in this new directory.
    pub keep: Option<std::path::PathBuf>,
}

/// Generates a record and times its full report (analysis, client.log, summary.json,
/// report.html, report.md). Prints one line per figure.
pub fn report(g: Generated) -> Result<()> {
    let scratch = perseus::files::Scratch::new("bench-report")?;
    let dir = match &g.keep {
        Some(keep) => {
            if keep.exists() {
                return Err(Error::Invalid(format!(
                    "{} exists already: give --keep a directory to create",
                    keep.display()
                )));
            }
            keep.clone()
        }
        None => scratch.path().join("run"),
    };
    let t = Instant::now();
    let period = g.fault_every.unwrap_or(g.seconds);
    let made = perseus::record::synthetic::synthetic_loop(&dir, g.seconds, g.rate, period);
    let ops = match made {
        Ok(ops) => ops,
        Err(e) => {
            // Nothing half-made is kept.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let gen = t.elapsed();
    let record = perseus::record::in_results(&dir)?;
    let bytes = std::fs::metadata(&record).map(|m| m.len()).unwrap_or(0);
    println!(
        "record: {} s at {} ops/s = {ops} operations, {} faults, {bytes} bytes, {:.1} bytes/op (written in {:.2} s)",
        g.seconds,
        g.rate,
        g.seconds / period.clamp(1, g.seconds.max(1)),
        bytes as f64 / ops as f64,
        gen.as_secs_f64()
    );
    time_report(&record, &dir)?;
    if let Some(keep) = &g.keep {
        println!("kept in {}", keep.display());
    }
    Ok(())
}

/// Times the full report of the record of an existing results directory `from` (left as
/// it is; the report files go to a scratch directory). Prints one line per figure.
pub fn report_of(from: &Path) -> Result<()> {
    let record = perseus::record::in_results(from)?;
    let bytes = std::fs::metadata(&record).map(|m| m.len()).unwrap_or(0);
    let scratch = perseus::files::Scratch::new("bench-report")?;
    println!("record: {}, {bytes} bytes", record.display());
    let a = time_report(&record, scratch.path())?;
    let ops: u64 = a.ops.iter().map(|n| n.ok + n.fail + n.unknown).sum();
    println!(
        "{ops} operations over {:.0} s, {:.1} bytes/op, {} fault intervals",
        a.end_us as f64 / 1e6,
        bytes as f64 / ops.max(1) as f64,
        a.intervals.len()
    );
    Ok(())
}

/// Analyses `record` and writes its report into `dir`, printing the times, the page size
/// and the peak memory.
fn time_report(record: &Path, dir: &Path) -> Result<analysis::Analysis> {
    let t = Instant::now();
    let a = analysis::analyse(record)?;
    let analysed = t.elapsed();
    report::write_results(dir, &a)?;
    let total = t.elapsed();
    let page = std::fs::metadata(dir.join(report::HTML_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "report: analysis {:.2} s, all files {:.2} s; report.html {} KiB; peak RSS {} MiB",
        analysed.as_secs_f64(),
        total.as_secs_f64(),
        page / 1024,
        peak_rss_kib() / 1024
    );
    Ok(a)
}

/// A database of one Redis server on loopback, for [`client`]: not a lab database.
struct LoopbackRedis(std::net::SocketAddr);

#[async_trait::async_trait]
impl Database for LoopbackRedis {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn about(&self) -> &'static str {
        "one Redis server on loopback"
    }
    fn binaries(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("redis-server", "redis-server"),
            ("redis-benchmark", "redis-tools"),
        ]
    }
    fn client_port(&self) -> u16 {
        self.0.port()
    }
    fn processes(&self, _: &Layout, _: usize) -> Vec<perseus::lab::ProcessSpec> {
        Vec::new()
    }
    fn cut_off(&self) -> perseus::db::CutOff {
        perseus::db::CutOff {
            serves: true,
            settles: Duration::ZERO,
            source: "not a cluster: one server on loopback, for benchmarks",
        }
    }
    async fn health(&self, _: &Layout) -> perseus::db::Health {
        perseus::db::Health::default()
    }
    async fn connect(
        &self,
        _: &Layout,
        _: usize,
        timeout: Duration,
    ) -> std::result::Result<Box<dyn perseus::db::Client>, perseus::db::ClientError> {
        let c = resp::Conn::connect(self.0, timeout)
            .await
            .map_err(perseus::db::ClientError::definite)?;
        Ok(Box::new(resp::PlainClient(c)))
    }
}

/// A `redis-server` on loopback for the length of a benchmark; killed when dropped.
struct LocalRedis {
    child: std::process::Child,
    dir: std::path::PathBuf,
    addr: std::net::SocketAddr,
}

impl LocalRedis {
    async fn start() -> Result<LocalRedis> {
        let dir = perseus::files::private_dir("bench-redis")?;
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
        // A free port: the kernel's choice, released just before the server takes it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(Error::io("find a free port"))?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(Error::io("start redis-server"))?;
        let server = LocalRedis {
            child,
            dir,
            addr: ([127, 0, 0, 1], port).into(),
        };
        let t = Instant::now();
        loop {
            if let Ok(mut c) = resp::Conn::connect(server.addr, Duration::from_millis(200)).await {
                if c.call(&[b"PING"]).await.is_ok() {
                    return Ok(server);
                }
            }
            if t.elapsed() > Duration::from_secs(5) {
                return Err(Error::Invalid(
                    "redis-server did not answer within 5 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-benchmark -c 1 -P 1` for `requests` of each of SET and GET: requests a second.
fn redis_benchmark(addr: std::net::SocketAddr, requests: u64) -> Result<(f64, f64)> {
    let out = process::run_host(
        "redis-benchmark",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
            "-c",
            "1",
            "-P",
            "1",
            "-t",
            "set,get",
            "-n",
            &requests.to_string(),
            "--csv",
        ],
    )?;
    // "test","rps",…  then one line per test: "SET","41322.31",…
    let rate = |test: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("\"{test}\"")))
            .and_then(|l| l.split(',').nth(1))
            .and_then(|v| v.trim_matches('"').parse::<f64>().ok())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no {test} rate in redis-benchmark's output:\n{out}"
                ))
            })
    };
    Ok((rate("SET")?, rate("GET")?))
}

/// Perseus's own client loop (read → increment → write, every request recorded to a
/// record file) against `addr` for `length`: requests a second.
async fn perseus_rate(addr: std::net::SocketAddr, length: Duration, dir: &Path) -> Result<f64> {
    use perseus::workload::{self, Context, Settings};
    let db: &'static dyn Database = Box::leak(Box::new(LoopbackRedis(addr)));
    let layout = Layout {
        lab: "bench".into(),
        nodes: vec![perseus::lab::NodeLayout {
            name: "n1".into(),
            addr: std::net::Ipv4Addr::LOCALHOST,
            dir: dir.to_path_buf(),
            port: None,
            also: Vec::new(),
        }],
        bin_dir: None,
        credentials: None,
        settings: Default::default(),
        secret: None,
        image: None,
    };
    let t0_ns = perseus::clock::monotonic_ns();
    let header = Header::new("redis", vec!["n1".into()], perseus::clock::unix_ms(), t0_ns);
    let mut writer = Writer::create(&dir.join(perseus::record::COMPRESSED_FILE_NAME), &header)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Event>(1 << 16);
    // The same batching as the watch's recorder (see `watch::record_loop`).
    let recorder = tokio::spawn(async move {
        let mut ops = 0u64;
        let mut batch = Vec::with_capacity(4096);
        loop {
            tokio::time::sleep(perseus::watch::DRAIN).await;
            if rx.recv_many(&mut batch, usize::MAX).await == 0 {
                break;
            }
            for e in batch.drain(..) {
                writer.write(&e)?;
                ops += 1;
            }
        }
        writer.flush()?;
        Ok::<u64, Error>(ops)
    });
    let cx = Context {
        db,
        layout: std::sync::Arc::new(layout),
        t0_ns,
        settings: Settings::default(),
        events: tx,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let before = commands_processed(addr).await?;
    let t = Instant::now();
    let client = tokio::spawn(workload::increment_loop(cx, 0, stop.clone()));
    tokio::time::sleep(length).await;
    stop.cancel();
    let _ = client.await;
    let elapsed = t.elapsed();
    let ops = recorder
        .await
        .map_err(|e| Error::Invalid(format!("recorder failed: {e}")))??;
    // The server's own count, so the rate is not just ours to claim (its INFO adds one).
    let served = commands_processed(addr).await? - before - 1;
    if served.abs_diff(ops) > 2 {
        return Err(Error::Invalid(format!(
            "Perseus recorded {ops} requests but the server processed {served}"
        )));
    }
    Ok(ops as f64 / elapsed.as_secs_f64())
}

/// The server's `total_commands_processed`.
async fn commands_processed(addr: std::net::SocketAddr) -> Result<u64> {
    let mut c = resp::Conn::connect(addr, Duration::from_secs(1))
        .await
        .map_err(Error::Invalid)?;
    let info = c
        .call(&[b"INFO", b"stats"])
        .await
        .map_err(|e| Error::Invalid(format!("INFO: {e}")))?;
    info.text()
        .and_then(|t| resp::info_fields(&t).remove("total_commands_processed"))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Invalid("no total_commands_processed in INFO".into()))
}

/// Client overhead: against one `redis-server` on loopback, `redis-benchmark -c 1 -P 1`
/// (SET and GET, one connection, one request at a time) and Perseus's client loop (GET then
/// SET, one connection, every request recorded), alternating, `rounds` times each.
pub async fn client(length: Duration, rounds: usize) -> Result<()> {
    for (binary, package) in LoopbackRedis(([127, 0, 0, 1], 0).into()).binaries() {
        if process::find_program(binary).is_none() {
            return Err(Error::MissingBinary {
                binary: binary.to_string(),
                how: format!("install it with: apt-get install {package}"),
            });
        }
    }
    let server = LocalRedis::start().await?;
    let record_dir = server.dir.join("record");
    std::fs::create_dir_all(&record_dir).map_err(Error::io("create the record directory"))?;
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        // About `length` of redis-benchmark too: its rate from a short first pass.
        let (set, get) = redis_benchmark(server.addr, 20_000)?;
        let per_test = ((set + get) / 2.0 * length.as_secs_f64() / 2.0) as u64;
        let (set, get) = redis_benchmark(server.addr, per_test.max(10_000))?;
        // The rate of alternating GET and SET requests at redis-benchmark's speeds.
        let pair_rate = 2.0 / (1.0 / set + 1.0 / get);
        let ours = perseus_rate(server.addr, length, &record_dir).await?;
        let ratio = ours / pair_rate;
        ratios.push(ratio);
        println!(
            "round {round}: redis-benchmark -c 1 -P 1: SET {set:.0}/s, GET {get:.0}/s (alternating: {pair_rate:.0}/s); perseus GET+SET: {ours:.0}/s = {:.1} %",
            ratio * 100.0
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median of {rounds}: perseus reaches {:.1} % of redis-benchmark's rate",
        ratios[ratios.len() / 2] * 100.0
    );
    Ok(())
}

/// Brings a lab of `db` up and down `repeat` times; prints each time to ready and to gone.
/// With `beside` (a container lab), each round also brings one of those up and down right
/// after the namespace lab, for a comparison within the same run.
pub async fn lab(
    db: &'static dyn Database,
    nodes: usize,
    repeat: usize,
    beside: Option<lab::Hosts>,
) -> Result<()> {
    perseus::experiment::run::preflight(
        db.name(),
        None,
        &Default::default(),
        perseus::spec::Backend::Lab,
        "perseus bench lab",
        |_| {},
    )?;
    let mut kinds = vec![("namespaces", lab::Hosts::Namespaces)];
    if let Some(hosts) = beside {
        kinds.push(("containers", hosts));
    }
    let mut up = vec![Vec::new(); kinds.len()];
    let mut down = vec![Vec::new(); kinds.len()];
    for i in 0..repeat {
        for (k, (kind, hosts)) in kinds.iter().enumerate() {
            let name = format!("bench-{}-{i}{k}", std::process::id());
            let t = Instant::now();
            let mut state = lab::create(
                &name,
                db.name(),
                nodes,
                None,
                None,
                &Default::default(),
                hosts,
            )?;
            let started = perseus::db::start(&mut state, db, Duration::from_secs(120)).await;
            let ready = t.elapsed();
            let t = Instant::now();
            lab::destroy(&state)?;
            let gone = t.elapsed();
            started?;
            println!(
                "{} {nodes} nodes in {kind}: ready in {:.2} s, torn down in {:.2} s",
                db.name(),
                ready.as_secs_f64(),
                gone.as_secs_f64()
            );
            up[k].push(ready);
            down[k].push(gone);
        }
    }
    for (k, (kind, _)) in kinds.iter().enumerate() {
        up[k].sort();
        down[k].sort();
        println!(
            "median of {repeat} in {kind}: ready {:.2} s, teardown {:.2} s",
            up[k][repeat / 2].as_secs_f64(),
            down[k][repeat / 2].as_secs_f64()
        );
    }
    Ok(())
}

/// The disk layer's cost: in each of `rounds`, a 3-node lab of `db` on the plain disk, then
/// one with `--disk faulty`, each running the seed's workload for `length` once ready;
/// prints each lab's operations a second and the medians.
pub async fn disk(
    db: &'static dyn Database,
    length: Duration,
    rounds: usize,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<()> {
    let kinds = [perseus::spec::Disk::Plain, perseus::spec::Disk::Faulty];
    let mut rates = vec![Vec::new(); kinds.len()];
    for round in 0..rounds {
        for (k, disk) in kinds.iter().enumerate() {
            let spec = perseus::spec::Spec {
                database: db.name().into(),
                disk: *disk,
                ..Default::default()
            };
            let name = format!("bench-disk-{}-{round}{k}", std::process::id());
            let up = perseus::experiment::run::up(&spec, &name, None, stop, |_| {}).await?;
            let measured = async {
                let scratch = perseus::files::Scratch::new("bench-disk")?;
                let w = perseus::watch::Watch::start(
                    db,
                    up.state.layout(),
                    &up.state.dir(),
                    perseus::workload::Settings::default(),
                    &scratch.path().join("run"),
                    None,
                    perseus::watch::Servers::of_lab(db, &up.state.layout(), None),
                )?;
                // The first seconds are the clients connecting: counted from a steady start.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let (t, first) = (Instant::now(), w.usage().ops());
                tokio::select! {
                    _ = tokio::time::sleep(length) => {}
                    _ = stop.cancelled() => {}
                }
                let rate = (w.usage().ops() - first) as f64 / t.elapsed().as_secs_f64();
                w.stop().await?;
                Ok::<f64, perseus::Error>(rate)
            }
            .await;
            lab::destroy(&up.state)?;
            let rate = measured?;
            if stop.is_cancelled() {
                return Err(perseus::Error::Interrupted);
            }
            println!(
                "{} on the {} disk: {rate:.0} operations/s",
                db.name(),
                disk_name(*disk)
            );
            rates[k].push(rate);
        }
    }
    for (k, disk) in kinds.iter().enumerate() {
        rates[k].sort_by(f64::total_cmp);
        println!(
            "median of {rounds} on the {} disk: {:.0} operations/s",
            disk_name(*disk),
            rates[k][rounds / 2]
        );
    }
    Ok(())
}

fn disk_name(d: perseus::spec::Disk) -> &'static str {
    match d {
        perseus::spec::Disk::Plain => "plain",
        perseus::spec::Disk::Faulty => "faulty (layered)",
    }
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
        // The table of an ordinary isolation of this node (with counters): if this bench is
        // killed midway, `perseus status` shows the isolation and `perseus heal` undoes it.
        let table = fault::table(perseus::record::faults::by_name("isolate").expect("a kind"));
        let links = fault::verdict::with_peers(
            node,
            (0..state.nodes.len()).filter(|i| *i != node),
            fault::verdict::Verdict::Drop,
        );
        let addrs = state.layout().addresses();
        let rules = fault::verdict::render(&table, &me.name, node, &links, &[node], &addrs, None)
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
            let out = process::run_in(&me.netns, "nft", &["list", "table", "inet", &table], None)?;
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
        nft::remove(&me.netns, &table)?;
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
    let mut host = perseus::hosts::lab::LabHost::new(state.clone(), db);
    let t = Instant::now();
    let f = fault::start(&action, &mut host, db, &mut rng).await?;
    let whole = t.elapsed();
    fault::end(&f, &mut host).await?;
    println!(
        "perseus isolate (with its connection check): {:.1} ms",
        ms(&whole)
    );
    Ok(())
}

/// Watches a running lab for `length` (or until `stop`), printing memory, operations and
/// record bytes per operation every minute.
pub async fn watch(
    state: &LabState,
    db: &'static dyn Database,
    length: Duration,
    stop: tokio_util::sync::CancellationToken,
) -> Result<()> {
    // A private directory: this runs as root, and /tmp is everyone's.
    let scratch = perseus::files::Scratch::new("bench-watch")?;
    let out = scratch.path().join("run");
    let w = perseus::watch::Watch::start(
        db,
        state.layout(),
        &state.dir(),
        perseus::workload::Settings::default(),
        &out,
        None,
        perseus::watch::Servers::of_lab(db, &state.layout(), None),
    )?;
    let t = Instant::now();
    let (mut last_cpu, mut last_ops) = (cpu_seconds(), 0);
    while t.elapsed() < length && !stop.is_cancelled() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stop.cancelled() => {}
        }
        let rss = rss_kib(std::process::id());
        let usage = w.usage();
        let (ops, bytes) = (usage.ops(), usage.bytes());
        let cpu = cpu_seconds();
        println!(
            "{:>5.1} min: RSS {:.1} MiB, {ops} operations, {:.1} record bytes/op, {:.2} µs of CPU per operation this minute",
            t.elapsed().as_secs_f64() / 60.0,
            rss as f64 / 1024.0,
            bytes as f64 / ops.max(1) as f64,
            (cpu - last_cpu) * 1e6 / (ops - last_ops).max(1) as f64
        );
        (last_cpu, last_ops) = (cpu, ops);
    }
    w.stop().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synthetic_record_analyses_to_the_isolation_it_holds() {
        let dir = std::env::temp_dir().join(format!("perseus-bench-test-{}", std::process::id()));
        let ops = perseus::record::synthetic::synthetic_record(&dir, 30, 600).unwrap();
        assert!(ops > 15_000, "{ops}");
        let a = analysis::analyse(&perseus::record::in_results(&dir).unwrap()).unwrap();
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
