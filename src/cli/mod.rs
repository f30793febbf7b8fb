//! The command line: [`args`] parses it into a command, this module carries the command out
//! through the library, and [`render`] shows what it returned.

use anyhow::{Context, Result};
use perseus::db;
use perseus::fault::Action;
use perseus::lab::{self, process, LabState};
use perseus::spec::Spec;
use perseus::watch::{Servers, Watch};
use perseus::workload::Settings;
use perseus::{analysis, report, Error};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Whether standard output carries a document (`--json`, `--csv`): then what is written
/// for people goes to standard error.
static MACHINE_OUTPUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn machine_output() -> bool {
    MACHINE_OUTPUT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Writes text for people: to standard output, or standard error while standard output
/// carries a document. A closed pipe (`perseus list | head -1`) ends the output, never the
/// command: a run goes on recording and tears its lab down.
fn human(args: std::fmt::Arguments) {
    use std::io::Write as _;
    let text = args.to_string();
    let text = perseus::terminal::printable(&text);
    let _ = if machine_output() {
        std::io::stderr().write_all(text.as_bytes())
    } else {
        std::io::stdout().write_all(text.as_bytes())
    };
}

/// Writes a line for people (see [`human`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        crate::cli::human(format_args!("{}\n", format_args!($($arg)*)));
    }};
}

/// [`outln!`] without the newline.
macro_rules! out {
    ($($arg:tt)*) => {{
        crate::cli::human(format_args!($($arg)*));
    }};
}

/// Prints a document on standard output (`--json`, `--csv`).
fn document(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// Prints `value` as JSON on standard output.
fn json<T: serde::Serialize>(value: &T) {
    document(&(serde_json::to_string_pretty(value).expect("a document serialises") + "\n"));
}

/// Prints the `summary.json` of results directory `dir` (one run's or a repeat's) as it is.
fn json_summary(dir: &Path) -> Result<()> {
    let path = dir.join(report::SUMMARY_FILE);
    let text = perseus::files::read_text(&path)?;
    document(&text);
    Ok(())
}

mod args;
mod render;

pub use args::{command, parse, Invocation};
use args::{
    observers, BenchCommand, CheckArgs, Command, CompareArgs, DownArgs, ExportArgs, LabArg,
    MarkArgs, MatrixArgs, RunArgs, UpArgs, WatchArgs,
};
pub use render::say;
use render::{list, stdout_echo};

/// The live table's echo: standard output, or standard error while it carries a document.
fn echo() -> perseus::watch::Echo {
    if machine_output() {
        Box::new(|text: &str| {
            use std::io::Write as _;
            std::io::stderr().write_all(text.as_bytes()).is_ok()
        })
    } else {
        stdout_echo()
    }
}

fn stamp() -> String {
    chrono::Local::now().format("%Y%m%d-%H%M%S").to_string()
}

pub async fn dispatch(invocation: Invocation, stop: CancellationToken) -> Result<()> {
    let cmd = match invocation {
        Invocation::Fault { action, lab } => return fault(&lab, &action).await,
        Invocation::Command(c) => *c,
    };
    let machine = match &cmd {
        Command::Run(a) => a.json,
        Command::Report(a) => a.json,
        Command::Compare(a) => a.json || a.csv,
        Command::Check(a) => a.json,
        Command::Status(a) => a.json,
        Command::List(a) => a.json,
        _ => false,
    };
    MACHINE_OUTPUT.store(machine, std::sync::atomic::Ordering::Relaxed);
    match cmd {
        Command::Run(a) => run(a, stop).await,
        Command::Up(a) => up(a, stop).await,
        Command::Down(a) => down(a),
        Command::Status(a) => match &a.cluster {
            Some(file) => remote_status(file, a.json).await,
            None => status(&a.lab.lab, a.json).await,
        },
        Command::Heal(a) => match &a.cluster {
            Some(file) => remote_heal(file).await,
            None => fault(&a.lab, "heal").await,
        },
        Command::Mark(a) => mark(&a),
        Command::Watch(a) => watch(a, stop).await,
        Command::Report(a) => {
            let done = report_cmd(&a.path);
            if a.json && a.path.is_dir() {
                json_summary(&a.path)?;
            }
            done
        }
        Command::Export(a) => tokio::task::block_in_place(|| export(&a, &stop)),
        Command::Compare(a) => compare(a),
        Command::Check(a) => check(&a),
        Command::Matrix(a) => matrix(a, stop).await,
        Command::List(a) => list(a.what, a.json),
        Command::Bench(b) => bench(b, stop).await,
        Command::Completions { shell } => {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut command(), "perseus", &mut text);
            out!("{}", String::from_utf8_lossy(&text));
            Ok(())
        }
        Command::Man => {
            let mut text = Vec::new();
            clap_mangen::Man::new(command())
                .render(&mut text)
                .context("render the man page")?;
            out!("{}", String::from_utf8_lossy(&text));
            Ok(())
        }
        Command::Schema { document: d } => {
            let name = match d {
                args::SchemaDoc::Summary => "summary.schema.json",
                args::SchemaDoc::Repeat => "repeat.schema.json",
                args::SchemaDoc::Check => "check.schema.json",
                args::SchemaDoc::Compare => "compare.schema.json",
            };
            let (_, schema) = report::json::schemas()
                .into_iter()
                .find(|(n, _)| *n == name)
                .expect("every document has a schema");
            json(&schema);
            Ok(())
        }
    }
}

async fn run(a: RunArgs, stop: CancellationToken) -> Result<()> {
    if let Some(file) = &a.cluster {
        return run_cluster(&a, file, stop).await;
    }
    let mut spec = match &a.spec {
        Some(path) => Spec::load(path)?,
        None => Spec::default(),
    };
    match (&a.database, &a.spec) {
        (Some(d), _) => spec.database = d.clone(),
        (None, None) => {
            return Err(Error::Invalid(
                "name a database (perseus run etcd) or a saved spec (--spec FILE)".into(),
            )
            .into())
        }
        (None, Some(_)) => {}
    }
    if let Some(n) = a.nodes {
        spec.nodes = n;
    }
    if a.bin_dir.is_some() {
        spec.bin_dir = a.bin_dir.clone();
    }
    if a.skip_warmup {
        spec.skip_warmup = true;
    }
    spec.set.extend(a.set.iter().cloned());
    let nodes = spec.nodes;
    apply(&a, &mut spec, Some(nodes))?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-{}", spec.database, stamp())));
    let lab_name = a
        .lab
        .clone()
        .unwrap_or_else(|| format!("run-{}", std::process::id()));
    let subject = if a.same_lab {
        Subject::KeptLab(lab_name, None)
    } else {
        Subject::Lab(lab_name)
    };
    let done = runs(&spec, subject, &out, a.repeat, stop).await;
    json_after(a.json, &out, done)
}

/// With `--json`: the results' summary on standard output, if the run got that far,
/// whatever its verdict; then the verdict.
fn json_after(json: bool, out: &Path, done: Result<()>) -> Result<()> {
    if json && out.join(report::SUMMARY_FILE).exists() {
        json_summary(out)?;
    }
    done
}

/// `perseus run --cluster FILE`: the seed's timeline on a cluster Perseus did not start.
async fn run_cluster(a: &RunArgs, file: &Path, stop: CancellationToken) -> Result<()> {
    let cluster = perseus::cluster::Cluster::load(file)?;
    let mut spec = Spec {
        database: cluster.database.clone(),
        nodes: cluster.nodes.len(),
        ..Spec::default()
    };
    spec.timeline.isolate =
        perseus::fault::Target::Node(cluster.nodes[1.min(cluster.nodes.len() - 1)].name.clone());
    // Node names are the cluster's: a scenario is checked against it before anything starts.
    apply(a, &mut spec, None)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-{}", cluster.name, stamp())));
    let done = runs(
        &spec,
        Subject::Cluster(Box::new(cluster)),
        &out,
        a.repeat,
        stop,
    )
    .await;
    json_after(a.json, &out, done)
}

/// What a run runs on: a lab it makes (and removes) under this name, a lab made once under
/// this name and kept for every run of a repeat (`--same-lab`; made at the first run that
/// needs it), or a cluster Perseus did not start.
enum Subject {
    Lab(String),
    KeptLab(String, Option<Box<perseus::run::KeptLab>>),
    Cluster(Box<perseus::cluster::Cluster>),
}

impl Subject {
    /// Tears a kept lab down, if one was made.
    fn done(self) -> Result<()> {
        if let Subject::KeptLab(_, Some(lab)) = self {
            lab.down(say)?;
        }
        Ok(())
    }
}

/// One run of `spec` on `subject` into `dir`, its table echoed as it grows.
async fn one_run(
    spec: &Spec,
    subject: &mut Subject,
    dir: &Path,
    stop: CancellationToken,
) -> perseus::Result<perseus::run::RunOutcome> {
    match subject {
        Subject::KeptLab(name, kept) => {
            let lab = match kept {
                Some(lab) => lab,
                None => kept.insert(Box::new(
                    perseus::run::KeptLab::up(spec, name, &stop, say).await?,
                )),
            };
            lab.run(spec, dir, stop, say, Some(echo())).await
        }
        Subject::Lab(lab) => perseus::run::run(spec, dir, lab, stop, say, Some(echo())).await,
        Subject::Cluster(c) => {
            perseus::run::run_cluster(spec, c, dir, stop, say, Some(echo())).await
        }
    }
}

/// `repeat` runs of `spec` (one if `None`): a single run into `out`, or runs into
/// `out/1` … `out/N` and their distribution into `out`. Every run is made even if an
/// earlier one lost writes; the exit code says so at the end. An error or Ctrl-C stops the
/// repeat, after writing the distribution of the runs that ended.
async fn runs(
    spec: &Spec,
    mut subject: Subject,
    out: &Path,
    repeat: Option<u32>,
    stop: CancellationToken,
) -> Result<()> {
    let Some(n) = repeat else {
        let outcome = one_run(spec, &mut subject, out, stop).await;
        subject.done()?;
        let outcome = outcome?;
        let verdict = conclude(
            &outcome.analysis,
            &outcome.dir,
            &format!("results: {}", outcome.dir.display()),
        );
        if let Some(why) = outcome.stopped_early {
            verdict?;
            return Err(Error::StoppedEarly {
                why,
                dir: outcome.dir,
            }
            .into());
        }
        return gate(spec, out, verdict);
    };
    let spec = &resume(spec, out)?;
    let started = Instant::now();
    let mut done: Vec<String> = Vec::new();
    let mut ran = 0;
    let mut failed: Option<anyhow::Error> = None;
    let (mut lost, mut violations) = (0, 0);
    for (name, dir) in report::repeat::run_dirs(out, n as usize) {
        if let Ok(mut s) = report::summary::Summary::load(&dir.join(report::SUMMARY_FILE)) {
            // A run an older Perseus finished is analysed again from its record, so every
            // run of the distribution reads its figures the same way.
            if s.version < report::summary::SUMMARY_VERSION {
                let record = perseus::record::in_results(&dir)?;
                let a = analysis::analyse(&record)?;
                report::write_results(&dir, &a)?;
                s = report::summary::of(&a);
            }
            say(format!(
                "run {name} of {n}: done already ({})",
                dir.display()
            ));
            lost += s.lost_acknowledged_writes;
            violations += s.correctness.violations;
            done.push(name);
            continue;
        }
        if dir.exists() {
            say(format!(
                "run {name} of {n}: removing what a stopped run left in {}",
                dir.display()
            ));
            std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
        }
        let eta = match ran {
            0 => String::new(),
            k => {
                let left = started.elapsed() / k * (n - done.len() as u32);
                format!(
                    ", about {} left",
                    perseus::clock::format_duration(Duration::from_secs(left.as_secs()))
                )
            }
        };
        say(format!("run {name} of {n}{eta}: {}", dir.display()));
        ran += 1;
        match one_run(spec, &mut subject, &dir, stop.clone()).await {
            Ok(outcome) => {
                out!("\n{}", report::terminal_summary(&outcome.analysis));
                let c = &outcome.analysis.correctness;
                lost += c.lost_acknowledged_writes;
                violations += c.violations;
                done.push(name.clone());
                if let Some(why) = outcome.stopped_early {
                    let e = Error::StoppedEarly {
                        why,
                        dir: outcome.dir,
                    };
                    failed = Some(anyhow::Error::new(e).context(format!("run {name} of {n}")));
                    break;
                }
            }
            Err(e) => {
                failed = Some(anyhow::Error::new(e).context(format!("run {name} of {n}")));
                break;
            }
        }
    }
    let down = subject.done();
    if !done.is_empty() {
        let r = report::repeat::Repeat::of(out, &done)?;
        r.write(out)?;
        out!("\n{}", r.terminal());
        outln!(
            "results: {} (the runs in {}/1 … {}/{})",
            out.display(),
            out.display(),
            out.display(),
            done.len()
        );
    }
    if let Some(e) = failed {
        return Err(e);
    }
    down?;
    gate(
        spec,
        out,
        verdict(lost, violations, out.join(report::SUMMARY_FILE)),
    )
}

/// The spec of the repeat in `out`: `spec`, saved there if `out` holds no repeat yet; the
/// saved one (with its seed) if `out` holds a repeat of the same experiment, whose finished
/// runs then count; an error if it holds another.
fn resume(spec: &Spec, out: &Path) -> Result<Spec> {
    let path = out.join("spec.json");
    if !path.exists() {
        std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
        spec.save(&path)?;
        return Ok(spec.clone());
    }
    let saved = Spec::load(&path)?;
    let unseeded = |s: &Spec| Spec {
        seed: 0,
        ..s.clone()
    };
    if unseeded(&saved) != unseeded(spec) {
        return Err(Error::Invalid(format!(
            "{} holds runs of another experiment (its spec.json differs); choose another --out, or repeat that one with --spec {}",
            out.display(),
            path.display()
        ))
        .into());
    }
    Ok(saved)
}

/// Checks the scenario's expectations on the results in `out`, if it has any: a failed one
/// is the outcome (exit 5); otherwise `verdict` stands.
fn gate(spec: &Spec, out: &Path, verdict: Result<()>) -> Result<()> {
    let expect = spec
        .scenario
        .as_ref()
        .map(|s| s.expect.clone())
        .unwrap_or_default();
    if expect.is_empty() {
        return verdict;
    }
    let figures = report::repeat::figures_of(out)?;
    let failed = perseus::expect::check(&expect, &figures);
    outln!("\nthe scenario's expectations:");
    render::verdicts(&expect, &failed, None, figures.runs.len());
    if failed.is_empty() {
        return verdict;
    }
    Err(Error::Expectations {
        failed: failed.len(),
        total: expect.len(),
    }
    .into())
}

/// What the flags of `perseus run` set, over `spec` (a saved one, or the defaults); a
/// scenario's nodes are checked against `nodes` if given. A run without a seed of its own
/// (from --seed or the saved spec) gets a fresh one.
fn apply(a: &RunArgs, spec: &mut Spec, nodes: Option<usize>) -> Result<()> {
    if let Some(t) = &a.isolate {
        spec.timeline.isolate = t.clone();
    }
    for (field, value) in [
        (&mut spec.timeline.before, a.before),
        (&mut spec.timeline.during, a.during),
        (&mut spec.timeline.after, a.after),
        (&mut spec.request_timeout, a.timeout),
    ] {
        if let Some(v) = value {
            *field = v;
        }
    }
    if let Some(o) = observers(&a.workload) {
        spec.observers = Some(o);
    }
    if let Some(r) = a.workload.rate {
        spec.rate = Some(r);
    }
    if let Some(w) = a.workload.write {
        spec.write = w;
    }
    if let Some(name) = &a.scenario {
        spec.scenario = Some(perseus::scenario::Scenario::load(name, nodes)?);
    }
    if let Some(max) = a.max_record_size {
        spec.max_record_bytes = Some(max);
    }
    if let Some(r) = a.loop_passes {
        let mut looped = spec.scenario();
        looped.repeat = r;
        spec.scenario = Some(looped);
    }
    if let Some(seed) = a.seed {
        spec.seed = seed;
    } else if a.spec.is_none() {
        spec.seed = perseus::clock::monotonic_ns() ^ perseus::clock::unix_ms() as u64;
    }
    Ok(())
}

/// Prints the end-of-run summary and the line after it; fails (with its own exit code) if
/// the record shows lost acknowledged writes or correctness violations.
fn conclude(analysis: &perseus::analysis::Analysis, dir: &Path, last: &str) -> Result<()> {
    out!("\n{}", report::terminal_summary(analysis));
    outln!("{last}");
    let c = &analysis.correctness;
    verdict(
        c.lost_acknowledged_writes,
        c.violations,
        dir.join(report::SUMMARY_FILE),
    )
}

/// Fails (exit 4) if anything was lost or violated, pointing at the file that says where.
fn verdict(lost: u64, violations: u64, summary: PathBuf) -> Result<()> {
    if lost == 0 && violations == 0 {
        return Ok(());
    }
    Err(Error::Violations {
        lost,
        violations,
        summary,
    }
    .into())
}

async fn up(a: UpArgs, stop: CancellationToken) -> Result<()> {
    let db = db::find(&a.database)?;
    process::require_root("perseus up")?;
    if let Some(done) = db::ensure_installed(db, a.bin_dir.as_deref())? {
        say(done);
    }
    let subnet = a
        .subnet
        .as_deref()
        .map(lab::net::Subnet::parse)
        .transpose()?;
    let set: perseus::db::knob::Overrides = a.set.iter().cloned().collect();
    perseus::db::knob::check(db.name(), db.knobs(), &set)?;
    let mut state = lab::create(
        &a.lab.lab,
        db.name(),
        a.nodes,
        subnet,
        a.bin_dir.as_deref(),
        &set,
    )?;
    say(format!(
        "starting {} {} nodes in lab {} ({}) …",
        state.nodes.len(),
        db.name(),
        state.name,
        state.subnet
    ));
    let started = tokio::select! {
        r = db::start(&mut state, db, a.ready_timeout) => r,
        _ = stop.cancelled() => Err(Error::Interrupted),
    };
    let took = match started {
        Ok(t) => t,
        Err(e) => {
            lab::destroy(&state).context("removing the lab after the failed start")?;
            return Err(e.into());
        }
    };
    let health = db.health(&state.layout()).await;
    let leader = leader_of(db, &state.layout()).await;
    outln!(
        "lab {}: {} {} nodes ready in {:.1} s{}",
        state.name,
        state.nodes.len(),
        db.name(),
        took.as_secs_f64(),
        health
            .version
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default()
    );
    for (i, n) in state.nodes.iter().enumerate() {
        let lead = if leader == Some(i) { "  leader" } else { "" };
        outln!("  {}  {}:{}{lead}", n.name, n.addr, db.client_port());
    }
    let flag = if state.name == lab::DEFAULT_LAB {
        String::new()
    } else {
        format!(" --lab {}", state.name)
    };
    outln!("next: perseus watch{flag}   (and in another terminal: perseus isolate n2{flag}, perseus rejoin n2{flag})");
    outln!("done: perseus down{flag}");
    Ok(())
}

fn down(a: DownArgs) -> Result<()> {
    let names = if a.all {
        lab::list()
    } else {
        vec![a.lab.lab.clone()]
    };
    if a.all && names.is_empty() {
        outln!("no labs");
        return Ok(());
    }
    // With --all, one lab that cannot be removed does not keep the others.
    let mut failed = Vec::new();
    for name in &names {
        let t = Instant::now();
        match lab::down(name) {
            Ok(Some(state)) => outln!(
                "lab {name} removed ({} nodes, their processes, namespaces and rules, host link {}) in {} ms",
                state.nodes.len(),
                state.bridge,
                t.elapsed().as_millis()
            ),
            Ok(None) => outln!("lab {name} removed (it had no state yet: nothing else was made)"),
            Err(e) if !a.all => return Err(e.into()),
            Err(e) => {
                say(format!("lab {name} not removed: {e}"));
                failed.push(name.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{} of {} labs not removed: {} (see above)",
            failed.len(),
            names.len(),
            failed.join(", ")
        ))
    }
}

/// The node that leads now, for databases where one does.
async fn leader_of(db: &dyn perseus::db::Database, layout: &perseus::lab::Layout) -> Option<usize> {
    db.leadership()?.leader(layout).await
}

/// A cluster file whose nodes Perseus reaches over SSH.
fn ssh_cluster(file: &std::path::Path) -> Result<perseus::cluster::Cluster> {
    let cluster = perseus::cluster::Cluster::load(file)?;
    if !cluster.over_ssh() {
        return Err(Error::Invalid(format!(
            "{}: no node says ssh =, so Perseus made no fault on its machines (your [faults] commands undo their own)",
            file.display()
        ))
        .into());
    }
    Ok(cluster)
}

/// The machines of a cluster file over SSH, connected (sockets in `sockets`).
async fn ssh_host<'a>(
    cluster: &perseus::cluster::Cluster,
    sockets: &std::path::Path,
) -> Result<perseus::hosts::ssh::SshHost<'a>> {
    let mut host = cluster.ssh_host(Duration::ZERO, |_| {});
    host.connect(cluster.ssh_config.as_deref(), sockets).await?;
    Ok(host)
}

async fn remote_heal(file: &std::path::Path) -> Result<()> {
    let cluster = ssh_cluster(file)?;
    let db = db::find(&cluster.database)?;
    let sockets = perseus::files::Scratch::new("ssh")?;
    let mut host = ssh_host(&cluster, sockets.path()).await?;
    let tables = perseus::fault::tables(&mut host).await?;
    let mut rng = perseus::fault::Rng::new(perseus::clock::monotonic_ns());
    let healed = perseus::fault::act(&Action::Heal, &mut host, db, &mut rng).await?;
    for (i, (node, tables)) in tables.iter().enumerate() {
        let mut undone: Vec<String> = tables
            .iter()
            .map(|(t, _)| format!("removed table {t}"))
            .collect();
        for f in healed.iter().filter(|f| f.nodes.contains(&i)) {
            if f.fault().acts_on() != perseus::fault::ActsOn::Rules {
                undone.push(format!("{} its server", f.kind.ended));
            }
        }
        if undone.is_empty() {
            outln!("{node}: no fault of Perseus's in force");
        } else {
            outln!("{node}: {}", undone.join(", "));
        }
    }
    Ok(())
}

async fn remote_status(file: &std::path::Path, as_json: bool) -> Result<()> {
    let cluster = ssh_cluster(file)?;
    let sockets = perseus::files::Scratch::new("ssh")?;
    let mut host = ssh_host(&cluster, sockets.path()).await?;
    let tables = perseus::fault::tables(&mut host).await?;
    if as_json {
        let nodes: Vec<serde_json::Value> = tables
            .iter()
            .map(|(node, t)| {
                serde_json::json!({
                    "name": node,
                    "tables": t.iter().map(|(name, target)| serde_json::json!({
                        "table": name, "target": target,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "format": "perseus-cluster-status",
                "version": 1,
                "cluster": cluster.name,
                "nodes": nodes,
            }))?
        );
        return Ok(());
    }
    for (node, t) in tables {
        if t.is_empty() {
            outln!("{node}: no fault of Perseus's in force");
        }
        for (name, target) in t {
            outln!("{node}: {name} ({target}) in force");
        }
    }
    Ok(())
}

async fn status(name: &str, as_json: bool) -> Result<()> {
    let names = lab::list();
    let mut labs = Vec::new();
    if names.is_empty() {
        outln!("no labs (start one with: perseus up etcd)");
    }
    let names: Vec<String> = if names.iter().any(|n| n == name) {
        vec![name.to_string()]
    } else {
        names
    };
    for name in names {
        let state = LabState::load(&name)?;
        let db = db::find(&state.database).ok();
        let health = match db {
            Some(db) => Some((
                db.health(&state.layout()).await,
                leader_of(db, &state.layout()).await,
            )),
            None => None,
        };
        let mut host = match db {
            Some(db) => perseus::hosts::lab::LabHost::new(state.clone(), db),
            None => perseus::hosts::lab::LabHost::reading(state.clone()),
        };
        let in_force = perseus::fault::in_force(&mut host).await;
        if as_json {
            labs.push(render::lab_json(
                &state,
                health.as_ref(),
                in_force.as_deref().ok(),
            ));
        } else {
            render::lab_status(&state, health.as_ref(), in_force.as_deref().ok());
        }
    }
    if as_json {
        json(&serde_json::json!({"format": "perseus-status", "version": 1, "labs": labs}));
    }
    Ok(())
}

/// Runs one fault action on a lab, from any terminal; the markers reach every watch.
async fn fault(lab: &LabArg, text: &str) -> Result<()> {
    let action: Action = text
        .parse()
        .map_err(|e: String| Error::Invalid(format!("{text}: {e}")))?;
    process::require_root("changing faults")?;
    let state = LabState::load(&lab.lab)?;
    let db = db::find(&state.database)?;
    let t = Instant::now();
    let mut rng = perseus::fault::Rng::new(perseus::clock::monotonic_ns());
    let mut host = perseus::hosts::lab::LabHost::new(state.clone(), db);
    let done = perseus::fault::act(&action, &mut host, db, &mut rng).await?;
    let ms = t.elapsed().as_millis();
    match (&action, done.as_slice()) {
        (Action::Start { .. }, [f]) if f.kind.cuts_off_from_peers => {
            let peers: Vec<&str> = (0..state.nodes.len())
                .filter(|i| !f.nodes.contains(i))
                .map(|i| state.nodes[i].name.as_str())
                .collect();
            outln!(
                "isolated {} from {} in {ms} ms: its traffic with every peer is dropped; the client still reaches it",
                f.target,
                peers.join(", ")
            )
        }
        (Action::Start { .. }, [f]) => outln!("{} {} in {ms} ms", f.kind.started, f.target),
        (_, []) => outln!("nothing to undo: no such fault in force ({text})"),
        (_, undone) => {
            for f in undone {
                outln!(
                    "{} {} in {ms} ms: no rule or stopped process of that fault is left",
                    f.kind.ended,
                    f.target
                );
            }
        }
    }
    Ok(())
}

async fn watch(a: WatchArgs, stop: CancellationToken) -> Result<()> {
    let cluster = match (&a.cluster, &a.db) {
        (Some(file), _) => Some(perseus::cluster::Cluster::load(file)?),
        (None, Some(db)) => Some(perseus::cluster::Cluster::from_args(&a.name, db, &a.node)?),
        (None, None) => None,
    };
    let out_for = |name: &str| {
        a.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(format!("watch-{name}-{}", stamp())))
    };
    match cluster {
        // A cluster Perseus did not start: its event log lives while the watch does, and
        // `perseus mark --cluster NAME` reaches it.
        Some(cluster) => {
            let db = db::find(&cluster.database)?;
            let (events, version) = cluster.attach(db).await?;
            let out = out_for(&cluster.name);
            say(format!(
                "watching {} ({}); mark faults from another terminal with: perseus mark --cluster {} \"isolating {}\"",
                cluster.name,
                cluster.database,
                cluster.name,
                cluster.nodes[0].name
            ));
            let watched = watch_until(
                db,
                cluster.layout(),
                events.dir(),
                &a,
                &out,
                Servers {
                    version,
                    ..Default::default()
                },
                stop,
            )
            .await;
            drop(events);
            watched
        }
        None => {
            let state = LabState::load(&a.lab.lab)?;
            let db = db::find(&state.database)?;
            let version = db.health(&state.layout()).await.version;
            let out = out_for(&state.name);
            watch_until(
                db,
                state.layout(),
                &state.dir(),
                &a,
                &out,
                Servers::of_lab(db, &state.layout(), version),
                stop,
            )
            .await
        }
    }
}

/// The seed's client on `layout`, as `a` asks, until `stop` fires (Ctrl-C) or the record
/// is full, the table echoed to the terminal; then the results and the verdict.
async fn watch_until(
    db: &'static dyn perseus::db::Database,
    layout: perseus::lab::Layout,
    events_dir: &Path,
    a: &WatchArgs,
    out: &Path,
    servers: Servers,
    stop: CancellationToken,
) -> Result<()> {
    let settings = Settings {
        timeout: a.timeout,
        observers: observers(&a.workload),
        write: a.workload.write.unwrap_or_default(),
        rate: a.workload.rate,
        ..Settings::default()
    };
    let w = Watch::start(
        db,
        layout,
        events_dir,
        settings,
        out,
        Some(stdout_echo()),
        servers,
    )?;
    if let Some(max) = a.max_record_size {
        w.limit_record(max);
    }
    let full = w.record_full();
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = full.cancelled() => {}
    }
    let stopped_early = w.usage().why_full();
    if let Some(why) = &stopped_early {
        w.mark(format!("{} {why}", perseus::record::marks::STOPPED_EARLY))
            .await;
    }
    say(w.usage().line());
    w.stop().await?;
    let analysis = analysis::analyse(&perseus::record::in_results(out)?)?;
    report::write_results(out, &analysis)?;
    let verdict = conclude(&analysis, out, &format!("results: {}", out.display()));
    match stopped_early {
        Some(why) => {
            verdict?;
            Err(Error::StoppedEarly {
                why,
                dir: out.to_path_buf(),
            }
            .into())
        }
        None => verdict,
    }
}

/// `perseus export`: the record of a results directory (or a record file) as JSON Lines or
/// CSV, on standard output or into a file that appears whole or not at all; `stop` ends it
/// (with nothing left of the file).
fn export(a: &ExportArgs, stop: &CancellationToken) -> Result<()> {
    let stopped = &|| stop.is_cancelled();
    use perseus::record::{export, Reader};
    let record = if a.path.is_dir() {
        perseus::record::in_results(&a.path)?
    } else {
        a.path.clone()
    };
    let reader = Reader::open(&record)?;
    match &a.out {
        Some(file) => {
            use perseus::files::{Output, Streams};
            let mut out = Output::create(file, Streams::Allow)?;
            let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut out);
            let n = export::export(reader, a.format, &mut w, stopped)?;
            drop(w);
            out.commit()?;
            say(format!(
                "{} events of {} into {}",
                report::thousands(n),
                record.display(),
                file.display()
            ));
        }
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            match export::export(reader, a.format, &mut w, stopped) {
                Ok(_) => {}
                // A reader that stopped early (head, a closed pipe) ends the output only.
                Err(perseus::Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// `perseus report DIR` on the directory of a repeat: every run's results from its record,
/// then the distribution over the runs.
fn report_repeat(dir: &Path) -> Result<()> {
    let mut names = Vec::new();
    let (mut lost, mut violations) = (0, 0);
    for k in 1.. {
        let run = dir.join(k.to_string());
        let Ok(record) = perseus::record::in_results(&run) else {
            break;
        };
        let a = analysis::analyse(&record)?;
        report::write_results(&run, &a)?;
        lost += a.correctness.lost_acknowledged_writes;
        violations += a.correctness.violations;
        names.push(k.to_string());
    }
    let r = report::repeat::Repeat::of(dir, &names)?;
    r.write(dir)?;
    out!("{}", r.terminal());
    outln!(
        "rewrote the results of {} runs and their distribution in {}",
        names.len(),
        dir.join(report::SUMMARY_FILE).display()
    );
    verdict(lost, violations, dir.join(report::SUMMARY_FILE))
}

fn report_cmd(path: &Path) -> Result<()> {
    if path.is_file() {
        // A client log in the seed's format: whole-second metrics only.
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let table = perseus::record::table::Table::parse(&text, path)?;
        let Some((w, f)) = analysis::figures_from_table(&table) else {
            outln!("no fault marker in {}: no metrics", path.display());
            if machine_output() {
                json(
                    &serde_json::json!({"format": "perseus-log-figures", "version": 1, "fault": null, "metrics": {}}),
                );
            }
            return Ok(());
        };
        if machine_output() {
            let metrics: serde_json::Map<String, serde_json::Value> = analysis::METRICS
                .iter()
                .map(|m| {
                    (
                        format!("{}_s", m.key),
                        (m.value)(&f).map(|us| us / 1_000_000).into(),
                    )
                })
                .collect();
            json(&serde_json::json!({
                "format": "perseus-log-figures",
                "version": 1,
                "fault": {"kind": w.kind.name, "target": w.target, "row": w.start_us / 1_000_000 + 1},
                "metrics": metrics,
            }));
        }
        outln!(
            "{} {} in row {}",
            w.target,
            w.kind.started,
            w.start_us / 1_000_000 + 1
        );
        let show = |v: Option<u64>| v.map_or("n/a".to_string(), |us| (us / 1_000_000).to_string());
        outln!("{:<32}{:>9}", "metric", "seconds");
        for m in analysis::METRICS {
            outln!("{:<32}{:>9}", m.label, show((m.value)(&f)));
        }
        if table.lines.contains(&perseus::record::table::Line::Gap) {
            outln!("(rows left out of the log, '...', count for nothing)");
        }
        return Ok(());
    }
    if perseus::record::in_results(path).is_err()
        && perseus::record::in_results(&path.join("1")).is_ok()
    {
        return report_repeat(path);
    }
    let record = perseus::record::in_results(path)?;
    let analysis = analysis::analyse(&record)?;
    report::write_results(path, &analysis)?;
    let rewrote = format!(
        "rewrote {} and {}",
        path.join("client.log").display(),
        path.join(report::SUMMARY_FILE).display()
    );
    conclude(&analysis, path, &rewrote)?;
    Ok(())
}

fn compare(a: CompareArgs) -> Result<()> {
    // Checked before any analysis or output, so nothing is printed for a page that cannot
    // be written.
    let parent = a.out.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent.filter(|d| !d.is_dir()) {
        return Err(Error::Invalid(format!(
            "--out {}: no directory {}; create it first or choose another path",
            a.out.display(),
            dir.display()
        ))
        .into());
    }
    let runs = a
        .dirs
        .iter()
        .map(|d| report::compare::Compared::load(d))
        .collect::<perseus::Result<Vec<_>>>()?;
    let tables = report::compare::tables(&runs);
    if !machine_output() {
        out!("{}\n{}", tables.text, tables.markdown);
    }
    perseus::files::write(&a.out, report::compare::page(&runs, &tables.html))?;
    let md = a.out.with_extension("md");
    perseus::files::write(&md, &tables.markdown)?;
    outln!("wrote {} and {}", a.out.display(), md.display());
    if a.json {
        json(&report::json::Comparison::of(&runs));
    } else if a.csv {
        document(&report::json::compare_csv(&runs));
    }
    Ok(())
}

/// `perseus matrix`: every database × scenario as a repeat, then the seed's table. Each
/// row's runs are made even if an earlier row lost writes; the exit code says so at the end.
async fn matrix(a: MatrixArgs, stop: CancellationToken) -> Result<()> {
    use report::matrix::{Description, Plan, Row};
    process::require_root("perseus matrix")?;
    let described = match &a.matrix {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("read {}", file.display()))?;
            Description::from_toml(&text, file)?
        }
        None => Description {
            databases: a.db.clone(),
            scenarios: if a.scenario.is_empty() {
                vec!["isolate".into()]
            } else {
                a.scenario.clone()
            },
            repeat: a.repeat.unwrap_or(3),
            phases: a.phases.clone(),
            sweep: a
                .set
                .iter()
                .map(|(k, v)| (k.clone(), v.split(',').map(String::from).collect()))
                .collect(),
            per_db: Default::default(),
        },
    };
    // Everything is checked before the first lab starts.
    let mut cells = Vec::new();
    let mut skipped = Vec::new();
    for name in &described.databases {
        if let Some(done) = db::ensure_installed(db::find(name)?, a.bin_dir.as_deref())? {
            say(done);
        }
    }
    for mut cell in described.cells()? {
        let mut scenario = perseus::scenario::Scenario::load(&cell.scenario, Some(3))?;
        // Rows are named by the scenario's own name (a file's stem), not the path given.
        cell.scenario = scenario.name.clone();
        let name = &cell.database;
        if !cell.phases.is_empty() {
            if cell.phases.len() != scenario.phases.len() {
                return Err(Error::Invalid(format!(
                    "{} phase durations for {name}, but scenario {} has {} phases",
                    cell.phases.len(),
                    scenario.name,
                    scenario.phases.len()
                ))
                .into());
            }
            for (p, d) in scenario.phases.iter_mut().zip(&cell.phases) {
                p.duration = *d;
            }
        }
        let mut spec = Spec {
            database: name.clone(),
            scenario: Some(scenario),
            observers: observers(&a.workload),
            write: a.workload.write.unwrap_or_default(),
            rate: a.workload.rate,
            set: cell.set.clone(),
            bin_dir: a.bin_dir.clone(),
            ..Spec::default()
        };
        if let Some(t) = a.timeout {
            spec.request_timeout = t;
        }
        // A scenario a database cannot play (the leader of one where no node leads)
        // is a row it does not have, said once here and under the table.
        match spec.validate() {
            Ok(()) => cells.push((cell, spec)),
            Err(e @ Error::Invalid(_)) => {
                say(format!("skipping {name} × {}: {e}", cell.label()));
                skipped.push(format!("{name} × {}: {e}", cell.label()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if cells.is_empty() {
        return Err(Error::Invalid("no database can play any of the scenarios".into()).into());
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("matrix-{}", stamp())));
    let phases: Vec<String> = described
        .phases
        .iter()
        .map(|d| perseus::clock::format_duration(*d))
        .collect();
    // The rows that are more than databases × scenarios (sweeps, a database's own phases)
    // are part of the plan, so a matrix with other rows is refused in this directory.
    let plain = described.sweep.is_empty() && described.per_db.is_empty();
    Plan {
        databases: described.databases.clone(),
        scenarios: described.scenarios.clone(),
        repeat: described.repeat,
        settings: format!(
            "phases={} timeout={:?} write={} observers={:?}{}{}",
            phases.join(","),
            a.timeout,
            a.workload.write.unwrap_or_default(),
            observers(&a.workload),
            a.workload
                .rate
                .map_or(String::new(), |r| format!(" rate={r}/s")),
            if plain {
                String::new()
            } else {
                let rows: Vec<String> = cells
                    .iter()
                    .map(|(c, _)| {
                        let p: Vec<String> = c
                            .phases
                            .iter()
                            .map(|d| perseus::clock::format_duration(*d))
                            .collect();
                        format!("{}:{}:{}:{:?}", c.database, c.label(), p.join(","), c.set)
                    })
                    .collect();
                format!(" rows={}", rows.join(";"))
            }
        ),
    }
    .begin(&out)?;
    let lab = format!("mx-{}", std::process::id());
    let mut rows = Vec::new();
    let mut bad = None;
    for (i, (cell, spec)) in cells.iter().enumerate() {
        let scenario = cell.label();
        let dir = cell.dir(&out);
        say(format!(
            "row {} of {}: {} × {scenario}, {} runs",
            i + 1,
            cells.len(),
            spec.database,
            described.repeat
        ));
        let subject = Subject::Lab(lab.clone());
        if let Err(e) = runs(spec, subject, &dir, Some(described.repeat), stop.clone()).await {
            // Lost writes or a failed expectation are findings: the matrix goes on.
            match e.downcast_ref::<Error>() {
                Some(Error::Violations { .. }) | Some(Error::Expectations { .. }) => bad = Some(e),
                _ => return Err(e),
            }
        }
        rows.push(Row {
            database: spec.database.clone(),
            scenario,
            dir: dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            repeat: report::repeat::Repeat::load(&dir.join(report::SUMMARY_FILE))?,
        });
    }
    let machine = report::matrix::machine();
    let date = chrono::Local::now().format("%Y-%m-%d").to_string();
    let mut md = report::matrix::markdown(&rows, &machine, &date);
    for s in &skipped {
        md.push_str(&format!("\nNot played: {s}\n"));
    }
    perseus::files::write(&out.join("table.md"), &md)?;
    perseus::files::write(
        &out.join("table.html"),
        report::matrix::html(&rows, &machine, &date),
    )?;
    perseus::files::write(&out.join("table.csv"), report::json::matrix_csv(&rows))?;
    out!("\n{md}");
    outln!(
        "wrote {}, {} and {}",
        out.join("table.md").display(),
        out.join("table.html").display(),
        out.join("table.csv").display()
    );
    match bad {
        // Whatever row failed last, the verdict is the whole matrix's.
        Some(e) if matches!(e.downcast_ref::<Error>(), Some(Error::Violations { .. })) => {
            let total = |key: &str| -> u64 {
                rows.iter()
                    .filter_map(|r| r.repeat.figures.get(key))
                    .flat_map(|s| s.values.iter().flatten())
                    .sum()
            };
            verdict(
                total("lost_acknowledged_writes"),
                total("violations"),
                out.join("table.md"),
            )
        }
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `perseus check`: the run's figures against expectations or a baseline.
fn check(a: &CheckArgs) -> Result<()> {
    let figures = report::repeat::figures_of(&a.dir)?;
    let mut expectations = a.expect.clone();
    if expectations.is_empty() && a.baseline.is_none() {
        expectations = saved_expectations(&a.dir);
        if expectations.is_empty() {
            return Err(Error::Invalid(format!(
                "nothing to check {} against: give --expect 'FIGURE OP NUMBER' or --baseline DIR (or run a scenario with an expect list)",
                a.dir.display()
            ))
            .into());
        }
    }
    let mut failed = perseus::expect::check(&expectations, &figures);
    let mut total = expectations.len();
    let mut baseline = None;
    let mut base_failed = Vec::new();
    if let Some(dir) = &a.baseline {
        let base = report::repeat::figures_of(dir)?;
        let b = perseus::expect::against_baseline(&figures, &base, a.tolerance);
        total += b.compared;
        baseline = Some((dir.as_path(), b.compared, b.failed.is_empty()));
        base_failed = b.failed.clone();
        failed.extend(b.failed);
    }
    if a.json {
        let own: Vec<perseus::expect::Failure> = failed
            .iter()
            .filter(|f| !base_failed.contains(f))
            .cloned()
            .collect();
        json(&report::json::CheckReport::new(
            &a.dir,
            figures.runs.len(),
            &expectations,
            &own,
            baseline.map(|(d, n, _)| (d, n, base_failed.as_slice())),
        ));
    } else {
        render::verdicts(&expectations, &failed, baseline, figures.runs.len());
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Expectations {
        failed: failed.len(),
        total,
    }
    .into())
}

/// The expectations of the scenario a results directory was run with (its spec.json, or
/// that of its first run for a repeat); none if it has none.
fn saved_expectations(dir: &Path) -> Vec<perseus::expect::Expectation> {
    [dir.join("spec.json"), dir.join("1").join("spec.json")]
        .iter()
        .find_map(|p| Spec::load(p).ok())
        .and_then(|s| s.scenario)
        .map(|s| s.expect)
        .unwrap_or_default()
}

async fn bench(b: BenchCommand, stop: CancellationToken) -> Result<()> {
    use crate::bench;
    match b {
        BenchCommand::Report {
            length,
            rate,
            fault_every,
            keep,
            from,
        } => match from {
            Some(dir) => bench::report_of(&dir)?,
            None => bench::report(bench::Generated {
                seconds: length.as_secs(),
                rate,
                fault_every: fault_every.map(|d| d.as_secs()),
                keep,
            })?,
        },
        BenchCommand::Lab {
            database,
            nodes,
            repeat,
        } => bench::lab(db::find(&database)?, nodes, repeat.max(1)).await?,
        BenchCommand::Client { length, rounds } => bench::client(length, rounds.max(1)).await?,
        BenchCommand::Fault { lab, node, repeat } => {
            let state = LabState::load(&lab.lab)?;
            let db = db::find(&state.database)?;
            let i = state.node_index(&node)?;
            bench::fault_latency(&state, db, i, repeat.max(1)).await?
        }
        BenchCommand::Watch { lab, length } => {
            let state = LabState::load(&lab.lab)?;
            let db = db::find(&state.database)?;
            bench::watch(&state, db, length, stop).await?;
        }
    }
    Ok(())
}

fn mark(a: &MarkArgs) -> Result<()> {
    let dir = match &a.cluster {
        Some(name) => {
            lab::validate_name(name)?;
            let dir = perseus::cluster::clusters_dir().join(name);
            if !dir.is_dir() {
                return Err(Error::Invalid(format!(
                    "no watch of cluster '{name}' is running (start one with perseus watch --cluster FILE)"
                ))
                .into());
            }
            dir
        }
        None => LabState::load(&a.lab.lab)?.dir(),
    };
    let text = a.text.join(" ");
    let (verb, target) = text.split_once(' ').unwrap_or((text.as_str(), ""));
    let is_fault = perseus::record::faults::KINDS
        .iter()
        .any(|k| [k.starting, k.started, k.ending, k.ended].contains(&verb));
    if is_fault {
        perseus::record::faults::check_event(verb, target).map_err(Error::Invalid)?;
        perseus::lab::events::append(&dir, verb, target)?;
        outln!("marked: # {verb} {target}");
    } else {
        perseus::lab::events::append(&dir, perseus::lab::events::MARK, &text)?;
        outln!("marked: {text}");
    }
    Ok(())
}
