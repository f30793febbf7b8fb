//! Helpers: the binary, a lab that is removed whatever happens, and a check that nothing of
//! a lab is left on the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn perseus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_perseus"))
}

/// Runs perseus with `args`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = perseus().args(args).output().expect("run perseus");
    split(out)
}

pub fn split(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Fails the test (never skips it) unless this machine can run labs of `db`.
pub fn require_lab(binary: &str, package: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "integration tests need root (network namespaces, nftables): run them as root, e.g. via .ci/run"
    );
    for (bin, pkg) in [(binary, package), ("nft", "nftables"), ("ip", "iproute2")] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .any(|d| d.join(bin).exists());
        assert!(
            found,
            "{bin} is missing: apt-get install {pkg} (or run .ci/run)"
        );
    }
}

/// A unique lab name for this test process.
pub fn lab_name(tag: &str) -> String {
    format!("it-{tag}-{}", std::process::id())
}

pub fn lab_dir(lab: &str) -> PathBuf {
    Path::new("/var/lib/perseus/labs").join(lab)
}

/// Removes these files and directories when dropped, also when the test panics midway.
pub struct Removed(pub Vec<PathBuf>);

impl Drop for Removed {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
        }
    }
}

/// Removes the lab when dropped, also when the test panics midway.
pub struct LabGuard(pub String);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if lab_dir(&self.0).exists() {
            let _ = perseus().args(["down", "--lab", &self.0]).output();
        }
    }
}

/// Live processes (not zombies) whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if cmdline.contains(needle) && !zombie && pid != std::process::id().to_string() {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Everything of lab `lab` still on the machine: namespaces, links, processes, mounts,
/// state, and perseus nftables tables on the host. Empty when the lab is fully gone.
pub fn leftovers(lab: &str, links: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    for e in std::fs::read_dir("/run/netns")
        .map(|d| d.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!("perseus-{lab}-")) {
            left.push(format!("namespace {n}"));
        }
    }
    for l in links {
        if Path::new("/sys/class/net").join(l).exists() {
            left.push(format!("link {l}"));
        }
    }
    for p in processes_mentioning(&format!("labs/{lab}/")) {
        left.push(format!("process {p}"));
    }
    let dir = lab_dir(lab);
    for m in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(&dir))
    {
        left.push(format!("mount {m}"));
    }
    if dir.exists() {
        left.push(format!("state {}", dir.display()));
    }
    let host = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft");
    for t in String::from_utf8_lossy(&host.stdout).lines() {
        if t.contains("perseus") {
            left.push(format!("host nft {t}"));
        }
    }
    left
}

/// The links a lab made on the host, read from its state.
pub fn links_of(lab: &str) -> Vec<String> {
    let text = std::fs::read_to_string(lab_dir(lab).join("state.json")).expect("lab state");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut links = vec![v["bridge"].as_str().unwrap().to_string()];
    // A lab with a switch has its nodes' veths in the switch's namespace, not on the host.
    if v.get("switch").is_none() {
        for n in v["nodes"].as_array().unwrap() {
            links.push(n["veth"].as_str().unwrap().to_string());
        }
    }
    links
}

/// The pids of the database processes a lab started, read from its state.
pub fn pids_of(lab: &str) -> Vec<i32> {
    let text = std::fs::read_to_string(lab_dir(lab).join("state.json")).expect("lab state");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["processes"].as_array().unwrap().clone())
        .map(|p| p["pid"].as_i64().unwrap() as i32)
        .collect()
}

/// A fresh results directory under the system temp dir.
pub fn out_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("perseus-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The record in results directory `dir` as plain text (format 3: run and watch write it
/// binary and compressed).
pub fn record_text(dir: &Path) -> String {
    let path = perseus::record::in_results(dir).expect("a record in the results");
    let reader = perseus::record::Reader::open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut text = Vec::new();
    perseus::record::export::export(
        reader,
        perseus::record::export::Format::Text,
        &mut text,
        &|| false,
    )
    .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    String::from_utf8(text).expect("the text record is UTF-8")
}

/// Rows of a client log between two markers, as (second, ok per node).
pub fn table(path: &Path) -> perseus::record::table::Table {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    perseus::record::table::Table::parse(&text, path).expect("client.log parses")
}

/// The second of the row that follows marker `verb target`.
pub fn marker_row(t: &perseus::record::table::Table, verb: &str) -> u64 {
    use perseus::record::table::Line;
    let pos = t
        .lines
        .iter()
        .position(|l| matches!(l, Line::Marker { verb: v, .. } if v == verb));
    row_after(t, pos, verb)
}

/// The row that follows the last `# VERB` marker of a table (as [`marker_row`]).
pub fn last_marker_row(t: &perseus::record::table::Table, verb: &str) -> u64 {
    use perseus::record::table::Line;
    let pos = t
        .lines
        .iter()
        .rposition(|l| matches!(l, Line::Marker { verb: v, .. } if v == verb));
    row_after(t, pos, verb)
}

fn row_after(t: &perseus::record::table::Table, marker: Option<usize>, verb: &str) -> u64 {
    use perseus::record::table::Line;
    let pos =
        marker.unwrap_or_else(|| panic!("no '# {verb}' marker in the table:\n{}", t.render()));
    t.lines[pos..]
        .iter()
        .find_map(|l| match l {
            Line::Row(r) => Some(r.second),
            _ => None,
        })
        .unwrap_or(u64::MAX)
}

/// What `perseus run` left: its table, summary and directory.
pub struct RunResult {
    pub out: PathBuf,
    pub stdout: String,
    /// What the run said on standard error (progress, each action); empty for results
    /// loaded from a directory.
    pub stderr: String,
    pub table: perseus::record::table::Table,
    pub summary: serde_json::Value,
    _removes: Results,
}

/// Removes a run's results directory when dropped, also when the test fails; a failing
/// test first prints the run's client log, which is all CI keeps of it.
struct Results(PathBuf);

impl Drop for Results {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.0.join("client.log")) {
                eprintln!("client.log of the failed run:\n{log}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl RunResult {
    /// Loads the results a run wrote into `out`; the directory is removed when the result
    /// is dropped.
    pub fn load(out: PathBuf, stdout: String) -> RunResult {
        RunResult::owning(Results(out), stdout)
    }

    fn owning(removes: Results, stdout: String) -> RunResult {
        let out = removes.0.clone();
        let table = table(&out.join("client.log"));
        let summary =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        RunResult {
            out,
            stdout,
            stderr: String::new(),
            table,
            summary,
            _removes: removes,
        }
    }

    /// Rows following the seed's markers: isolating, isolated, rejoining, rejoined (in
    /// time order).
    pub fn isolate_marks(&self) -> [u64; 4] {
        let marks =
            ["isolating", "isolated", "rejoining", "rejoined"].map(|m| marker_row(&self.table, m));
        assert!(
            marks.windows(2).all(|w| w[0] <= w[1]),
            "markers in time order: {marks:?}"
        );
        marks
    }

    /// Rows with `from <= second < to`.
    pub fn rows_between(&self, from: u64, to: u64) -> Vec<&perseus::record::table::Row> {
        self.table
            .rows()
            .filter(|r| r.second >= from && r.second < to)
            .collect()
    }

    /// Asserts that the rows with `from <= second < to` exist and that in each exactly
    /// the nodes marked in `expected` completed an increment.
    pub fn assert_serving(&self, from: u64, to: u64, expected: &[bool], what: &str) {
        let rows = self.rows_between(from, to);
        assert!(!rows.is_empty(), "{what}: no rows from {from} to {to}");
        for row in rows {
            assert_eq!(serving(row), expected, "{what}: {}", row.render());
        }
    }

    pub fn last_second(&self) -> u64 {
        self.table.rows().last().map_or(0, |r| r.second)
    }
}

/// Which nodes completed an increment in a row.
pub fn serving(r: &perseus::record::table::Row) -> Vec<bool> {
    r.ok.iter().map(|n| *n > 0).collect()
}

/// Runs `perseus run DB ARGS… --lab … --out …`, asserts it succeeded, left nothing behind
/// and wrote its results, and loads them.
pub fn run_scenario(db: &str, tag: &str, args: &[&str]) -> RunResult {
    run_scenario_expecting(db, tag, args, &[0])
}

/// As [`run_scenario`], for a run that must end with one of the exit codes `codes`.
pub fn run_scenario_expecting(db: &str, tag: &str, args: &[&str], codes: &[i32]) -> RunResult {
    let lab = lab_name(tag);
    let _guard = LabGuard(lab.clone());
    let out = out_dir(tag);
    let removes = Results(out.clone());
    let mut all = vec!["run", db];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--lab", &lab, "--out", out.to_str().unwrap()]);
    let (code, stdout, stderr) = run(&all);
    assert!(
        codes.contains(&code),
        "perseus run {db} ended with {code}:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("recovery time"),
        "the metrics table is printed:\n{stdout}"
    );
    let left = leftovers(&lab, &[]);
    assert!(left.is_empty(), "left behind: {left:?}");
    for f in ["spec.json", "record.bin.zst", "client.log", "summary.json"] {
        assert!(out.join(f).exists(), "{f} in the results");
    }
    let mut r = RunResult::owning(removes, stdout);
    r.stderr = stderr;
    r
}

/// What the writes of a run's record show of the write attempts.
#[derive(Debug)]
pub struct Attempts {
    /// Acknowledged writes per node's writer.
    pub acknowledged: Vec<u64>,
    /// Writes refused because the key had changed since it was read (compare-and-set).
    pub compare_failed: u64,
    /// Whether every acknowledged write carried the database's revision.
    pub all_revised: bool,
}

impl RunResult {
    /// Reads the record's writes and checks what holds for every run: each carries an
    /// attempt number, and each writer's numbers rise strictly (unique per key); a failed
    /// compare is a definite failure.
    pub fn attempts(&self) -> Attempts {
        use perseus::record::{Event, Kind, Outcome, Reader};
        let reader = Reader::open(&self.out.join("record.bin.zst")).expect("the record opens");
        let n = reader.header().nodes.len();
        let mut last = vec![0u64; n];
        let mut a = Attempts {
            acknowledged: vec![0; n],
            compare_failed: 0,
            all_revised: true,
        };
        for e in reader {
            let Event::Op(o) = e.expect("the record parses") else {
                continue;
            };
            if o.kind != Kind::Write {
                continue;
            }
            let attempt = o.attempt.expect("every write carries its attempt");
            assert!(
                attempt > last[o.node],
                "n{}'s attempts rise: {attempt} after {}",
                o.node + 1,
                last[o.node]
            );
            last[o.node] = attempt;
            if o.error.as_deref() == Some(perseus::db::COMPARE_FAILED) {
                assert_eq!(o.outcome, Outcome::Fail, "a failed compare is definite");
                a.compare_failed += 1;
            }
            if o.outcome == Outcome::Ok {
                a.acknowledged[o.node] += 1;
                a.all_revised &= o.revision.is_some();
            }
        }
        a
    }

    /// The run's write mode, as its spec.json saved it.
    pub fn write_mode(&self) -> String {
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(self.out.join("spec.json")).unwrap())
                .unwrap();
        spec["write"].as_str().unwrap_or("?").to_string()
    }

    /// Which node's server answered each successful write of node `node`'s writer that
    /// started within `[from_s, to_s)` seconds of the record's origin, as a set.
    pub fn writes_served_by(&self, node: usize, from_s: u64, to_s: u64) -> Vec<usize> {
        use perseus::record::{Event, Kind, Outcome, Reader};
        let mut served: Vec<usize> = Reader::open(&self.out.join("record.bin.zst"))
            .expect("the record opens")
            .filter_map(|e| match e.expect("the record parses") {
                Event::Op(o)
                    if o.node == node
                        && o.key.is_none()
                        && o.kind == Kind::Write
                        && o.outcome == Outcome::Ok
                        && o.start_us >= from_s * 1_000_000
                        && o.start_us < to_s * 1_000_000 =>
                {
                    Some(o.served_by.unwrap_or(node))
                }
                _ => None,
            })
            .collect();
        served.sort();
        served.dedup();
        served
    }

    /// Asserts that in the run's last 5 s every node's writes were answered by `primary`.
    pub fn assert_all_end_on(&self, primary: &[usize]) {
        let last = self.last_second();
        let nodes = self.table.rows().next().map_or(0, |r| r.ok.len());
        assert!(nodes > 0, "the run has rows");
        for node in 0..nodes {
            assert_eq!(
                self.writes_served_by(node, last - 5, last),
                primary,
                "n{}'s writes at the end go to the new primary",
                node + 1
            );
        }
    }
}

/// n2 throttled to 100 kbit/s (`throttle`, a tbf qdisc on its links): its own client gets at
/// most a fifth of its rate before the faults (`before`), while n1 and n3 serve throughout.
pub fn throttled(rows: &[&perseus::record::table::Row], before: &[&perseus::record::table::Row]) {
    assert!(rows.len() >= 3, "only {} rows throttled", rows.len());
    let mean = |rows: &[&perseus::record::table::Row], i: usize| {
        rows.iter().map(|r| r.ok[i] as f64).sum::<f64>() / rows.len().max(1) as f64
    };
    assert!(
        mean(rows, 1) <= 0.2 * mean(before, 1),
        "throttled n2 still completes {:.0}/s (before: {:.0}/s)",
        mean(rows, 1),
        mean(before, 1)
    );
    for x in rows {
        assert!(
            x.ok[0] > 0 && x.ok[2] > 0,
            "n1 and n3 serve while n2 is throttled: {}",
            x.render()
        );
    }
}

/// A node whose requests hang fails once per timeout: every 1.1 s (1 s timeout, 100 ms
/// pause) while it still accepts connections, up to every 2.2 s when connecting to it
/// times out too. So an occasional second holds no error: count them over the stretch, in
/// at least `share` of its seconds.
fn times_out(rows: &[&perseus::record::table::Row], node: usize, share: f64, what: &str) {
    let errors: u32 = rows.iter().map(|r| r.err[node]).sum();
    assert!(
        errors >= 1 && errors as f64 >= share * rows.len() as f64,
        "{what}: {errors} errors in {} seconds",
        rows.len()
    );
}

/// Asserts each fault of `tests/fixtures/every-fault.toml` had its effect on an etcd run
/// with `--write cas`. The scenario plays, on one cluster: pause n2, kill n2 (then restart),
/// one-way n2, 30 % loss on every link, n2 throttled, partition n1|n2 n3, isolate n1, refuse n3,
/// isolate-all n3; each healed before the next. Each effect is checked in the rows after its marker, a few
/// seconds in (time for etcd to elect a new leader where the fault hit it):
/// - paused n2: its client completes nothing and times out; n1 and n3 serve from the
///   second they have a leader (an election, if n2 led) until it resumes;
/// - killed n2: its client fails (fast, with refused connections, several errors a second,
///   if `killed_refuses`); after the restart it serves again;
/// - one-way n2: n2 hears its peers but cannot take part: nothing completes through it;
/// - 30 % loss everywhere: throughput drops, the cluster is not stopped (an election may
///   cost a second or two);
/// - n2 throttled to 100 kbit/s: its client gets at most a fifth of what it got before,
///   n1 and n3 serve;
/// - partition n1|n2 n3: the minority n1 completes nothing, the majority serves;
/// - isolate n1: n1 completes nothing, n2 and n3 serve;
/// - refuse n3: the same, with its peers' connections reset at once instead of dropped;
/// - isolate-all n3: its client cannot reach it at all; n1 and n2 serve;
/// - at the end all serve: the last phase is long enough for the election that n3's
///   rejoin can force (the lab runs etcd without pre-vote, so a node that was cut off
///   comes back with a higher term and deposes the leader: up to 3 s with nobody serving,
///   seen in CI); one metrics interval per fault;
/// - with `--write cas` (a transaction on the key's `mod_revision`) nothing is lost: a write
///   that timed out while n2 was paused can still take effect when it resumes
///   (docs/findings/etcd-pause-late-write.md), but it then fails its compare instead of
///   overwriting newer increments. No anomaly of any kind.
///
/// `killed_refuses`: whether a killed n2's address still answers (refusing connections at
/// once), as where its network outlives its server (a lab's namespace, a container lab's
/// sandbox); in a compose project the killed container takes its address with it, and
/// n2's client only times out.
pub fn every_fault_effects(r: &RunResult, killed_refuses: bool) {
    use perseus::record::table::Row;
    let t = &r.table;
    let row = |verb: &str| marker_row(t, verb);
    let check = |from, to, what: &str, ok: &dyn Fn(&perseus::record::table::Row) -> bool| {
        check_rows(r, from, to, what, ok)
    };
    pause_effects(r);
    kill_effects(r, killed_refuses);
    check(
        row("restarted") + 4,
        row("cutting-outbound"),
        "restarted n2 serves again",
        &|x| x.ok.iter().all(|n| *n > 0),
    );
    check(
        row("cut-outbound") + 4,
        row("restoring-outbound"),
        "one-way n2 cannot take part",
        &|x| x.ok[1] == 0 && x.ok[0] > 0 && x.ok[2] > 0,
    );
    // 30 % of the packets on every link lost: throughput drops, but the cluster is not
    // stopped (an election under loss may leave a second or two with nobody serving).
    let lossy = r.rows_between(row("degraded"), row("restoring"));
    let before = r.rows_between(2, row("pausing"));
    assert!(lossy.len() >= 5, "{} rows under loss", lossy.len());
    let stopped = lossy
        .iter()
        .filter(|x| x.ok.iter().all(|n| *n == 0))
        .count();
    assert!(stopped <= 2, "loss stopped everyone for {stopped} seconds");
    let total = |rows: &[&Row]| {
        rows.iter()
            .map(|x| x.ok.iter().sum::<u32>() as f64)
            .sum::<f64>()
            / rows.len().max(1) as f64
    };
    assert!(
        total(&lossy) < 0.7 * total(&before),
        "loss lowers throughput: {:.0}/s under loss, {:.0}/s before",
        total(&lossy),
        total(&before)
    );
    throttled(
        &r.rows_between(row("throttled") + 2, row("unthrottling")),
        &before,
    );
    check(
        row("partitioned") + 4,
        row("healing-partition"),
        "minority n1 stops, majority serves",
        &|x| x.ok[0] == 0 && x.ok[1] > 0 && x.ok[2] > 0,
    );
    check(
        row("isolated") + 4,
        row("rejoining"),
        "isolated n1 completes nothing, n2 and n3 serve",
        &|x| x.ok[0] == 0 && x.ok[1] > 0 && x.ok[2] > 0,
    );
    check(
        row("refused") + 4,
        row("accepting"),
        "refused n3 completes nothing, n1 and n2 serve",
        &|x| x.ok[2] == 0 && x.ok[0] > 0 && x.ok[1] > 0,
    );
    check(
        row("isolated-all") + 3,
        row("rejoining-all"),
        "n3 cut off from its client too",
        &|x| x.ok[2] == 0 && x.ok[0] > 0 && x.ok[1] > 0,
    );
    times_out(
        &r.rows_between(row("isolated-all") + 3, row("rejoining-all")),
        2,
        0.4,
        "n3 cut off",
    );
    let last = r.last_second();
    check(last - 2, last + 1, "all serve at the end", &|x| {
        x.ok.iter().all(|n| *n > 0)
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
            "pause",
            "kill",
            "one-way",
            "loss",
            "throttle",
            "partition",
            "isolate",
            "refuse",
            "isolate-all"
        ]
    );
    assert_no_anomaly(r);
    assert_eq!(r.write_mode(), "cas");
    let attempts = r.attempts();
    assert!(
        attempts.acknowledged.iter().all(|n| *n > 10) && attempts.all_revised,
        "{attempts:?}"
    );
}

/// Asserts that rows `from..to` of a run are at least 2 and each passes `ok`.
pub fn check_rows(
    r: &RunResult,
    from: u64,
    to: u64,
    what: &str,
    ok: &dyn Fn(&perseus::record::table::Row) -> bool,
) {
    let rows = r.rows_between(from, to);
    assert!(rows.len() >= 2, "{what}: only {} rows", rows.len());
    for x in rows {
        assert!(ok(x), "{what}: {}", x.render());
    }
}

/// `pause n2` for 10 s, then `heal`: from the first second in which n1 and n3 serve (at
/// once if n2 followed, after an election if it led), at least 3 s before the resume, n2
/// completes nothing while they serve, and n2's client times out in at least half of the
/// paused seconds.
pub fn pause_effects(r: &RunResult) {
    let t = &r.table;
    let row = |verb: &str| marker_row(t, verb);
    let check = |from, to, what: &str, ok: &dyn Fn(&perseus::record::table::Row) -> bool| {
        check_rows(r, from, to, what, ok)
    };
    // The others serve once they have a leader: at once if n2 followed; if it led, after
    // an election, seen to take over 5 s (etcd's followers ignore a candidate while they
    // still count on the leader they heard last).
    let resuming = row("resuming");
    let settled = r
        .rows_between(row("paused") + 1, resuming)
        .into_iter()
        .find(|x| x.ok[0] > 0 && x.ok[2] > 0)
        .map_or(resuming, |x| x.second);
    assert!(
        settled + 3 <= resuming,
        "n1 and n3 serve again from second {settled}, n2 resumes at {resuming}"
    );
    check(settled, resuming, "paused n2 hangs, others serve", &|x| {
        x.ok[1] == 0 && x.ok[0] > 0 && x.ok[2] > 0
    });
    // Half the seconds at least: on a loaded machine a timed-out request and the next
    // one's start can straddle a second (2 errors in 3 seconds, seen in CI).
    times_out(
        &r.rows_between(row("paused") + 3, row("resuming")),
        1,
        0.5,
        "paused n2",
    );
}

/// `kill n2`, then `restart n2`: n2 fails while n1 and n3 serve (refused at once where
/// `killed_refuses`, see [`every_fault_effects`]).
pub fn kill_effects(r: &RunResult, killed_refuses: bool) {
    let t = &r.table;
    let row = |verb: &str| marker_row(t, verb);
    let check = |from, to, what: &str, ok: &dyn Fn(&perseus::record::table::Row) -> bool| {
        check_rows(r, from, to, what, ok)
    };
    check(
        row("killed") + 2,
        row("restarting"),
        "killed n2 fails, others serve",
        &|x| x.ok[1] == 0 && (!killed_refuses || x.err[1] >= 3) && x.ok[0] > 0 && x.ok[2] > 0,
    );
}

/// Asserts a run's record shows no anomaly of any kind and no acknowledged write lost.
pub fn assert_no_anomaly(r: &RunResult) {
    let c = &r.summary["correctness"];
    assert_eq!(
        c["by_kind"],
        serde_json::json!({"stale-read": 0, "late-write": 0, "lost-write": 0, "phantom": 0}),
        "{c}"
    );
    assert_eq!(r.summary["lost_acknowledged_writes"], 0, "{c}");
}

/// Starts `perseus ARGS` (standard output piped, standard error to `err_path`) and waits,
/// at most 90 s, until it says every node serves steadily; a run that ends or does not
/// get there first is killed and fails the test with what it said.
pub fn run_until_steady(args: &[&str], err_path: &Path) -> std::process::Child {
    use std::time::{Duration, Instant};
    let mut run = perseus()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(err_path).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !std::fs::read_to_string(err_path)
        .unwrap_or_default()
        .contains("steady after")
    {
        if t.elapsed() > Duration::from_secs(90) || run.try_wait().unwrap().is_some() {
            let _ = run.kill();
            panic!(
                "the run did not get steady: {}",
                std::fs::read_to_string(err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    run
}
