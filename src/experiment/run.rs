//! `perseus run`: one experiment, unattended.

use crate::analysis::{self, Analysis};
use crate::cluster::Cluster;
use crate::db::{self, Database};
use crate::error::{Error, Result};
use crate::lab::{self, process, LabState};
use crate::report;
use crate::schedule;
use crate::spec::Spec;
use crate::watch::{Echo, Watch};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How many complete seconds every node must serve before the cluster counts as steady.
pub const STEADY_SECONDS: usize = 2;
/// How long the final reads (every key through every node, after the timeline) may retry.
pub const FINAL_READS_WITHIN: Duration = Duration::from_secs(15);

/// What a run leaves behind.
pub struct RunOutcome {
    pub dir: PathBuf,
    pub analysis: Analysis,
    /// Why the run stopped before its scenario ended (its record grew too large), if it
    /// did: the results cover the run until then.
    pub stopped_early: Option<String>,
}

/// Removes the lab when dropped, whatever happened (a panic included), unless it is kept.
struct LabGuard(String);

impl LabGuard {
    /// Leaves the lab up.
    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        if let Ok(state) = LabState::load(&self.0) {
            let _ = lab::destroy(&state);
        }
    }
}

/// Runs one experiment:
/// 1. checks the spec, root and the database's binaries, before creating anything;
/// 2. saves the spec into `dir`;
/// 3. brings a lab up (namespaces, bridge, the database on every node) and waits until the
///    cluster is ready;
/// 4. starts the workload and waits until every node serves it (steady);
/// 5. plays the scenario (by default the seed's: before, isolate, during, rejoin, after),
///    and heals whatever is still in force at its end;
/// 6. reads every key through every node once (the final reads, for the correctness
///    checks), stops the workload (the record ends cleanly), copies the servers' logs into
///    `dir/logs`, and tears the lab down;
/// 7. analyses the record and writes `summary.json` and `client.log`.
///
/// Steps 6 and 7 happen on success, on error and when `stop` fires (Ctrl-C); the error, if
/// any, is returned after them.
pub async fn run(
    spec: &Spec,
    dir: &Path,
    lab_name: &str,
    stop: CancellationToken,
    say: impl Fn(String) + Copy,
    echo: Option<Echo>,
) -> Result<RunOutcome> {
    let db = check(spec, lab_name, say)?;
    std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
    spec.save(&dir.join("spec.json"))?;
    let (mut state, guard) = create(spec, db, lab_name, None)?;
    let mut out = Output {
        dir,
        echo,
        watch: None,
    };
    let result = match bring_up(spec, db, &mut state, &stop, say).await {
        Ok(version) => one_experiment(spec, db, &state, version, &stop, &mut out, say).await,
        Err(e) => Err(e),
    };
    let mut teardown = finish(out.watch, &state, db, dir).await;
    let t = Instant::now();
    if let Err(e) = lab::destroy(&state) {
        teardown.push(e);
    }
    drop(guard);
    say(format!("lab torn down in {} ms", t.elapsed().as_millis()));
    outcome(dir, result, teardown)
}

/// What a run in `dir` left, once it is over: its results if it wrote any; else its own
/// error (`result`); else the first error of its teardown.
fn outcome(dir: &Path, result: Result<Option<String>>, teardown: Vec<Error>) -> Result<RunOutcome> {
    let analysis = results(dir)?;
    let stopped_early = result?;
    if let Some(e) = teardown.into_iter().next() {
        return Err(e);
    }
    Ok(RunOutcome {
        dir: dir.to_path_buf(),
        analysis: analysis.ok_or_else(|| record_gone(dir))?,
        stopped_early,
    })
}

/// A lab kept up across runs (`perseus run --repeat N --same-lab`): brought up once; each
/// run then waits until every node serves steadily again, plays the scenario, reads every
/// key and writes its results into a directory of its own. Removed by [`KeptLab::down`], or
/// when dropped (on an error, a panic or Ctrl-C).
pub struct KeptLab {
    state: LabState,
    db: &'static dyn Database,
    version: Option<String>,
    guard: LabGuard,
}

impl KeptLab {
    /// Checks `spec` as [`run`] does, then makes the lab `lab_name` and starts the database
    /// on it.
    pub async fn up(
        spec: &Spec,
        lab_name: &str,
        stop: &CancellationToken,
        say: impl Fn(String) + Copy,
    ) -> Result<KeptLab> {
        let db = check(spec, lab_name, say)?;
        let (mut state, guard) = create(spec, db, lab_name, None)?;
        let version = bring_up(spec, db, &mut state, stop, say).await?;
        Ok(KeptLab {
            state,
            db,
            version,
            guard,
        })
    }

    /// One run of `spec` on the lab into `dir` (steps 4 to 7 of [`run`], the lab staying up).
    pub async fn run(
        &mut self,
        spec: &Spec,
        dir: &Path,
        stop: CancellationToken,
        say: impl Fn(String) + Copy,
        echo: Option<Echo>,
    ) -> Result<RunOutcome> {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
        spec.save(&dir.join("spec.json"))?;
        let mut out = Output {
            dir,
            echo,
            watch: None,
        };
        let version = self.version.clone();
        let result =
            one_experiment(spec, self.db, &self.state, version, &stop, &mut out, say).await;
        let teardown = finish(out.watch, &self.state, self.db, dir).await;
        outcome(dir, result, teardown)
    }

    /// Tears the lab down.
    pub fn down(self, say: impl Fn(String)) -> Result<()> {
        let t = Instant::now();
        let done = lab::destroy(&self.state);
        drop(self.guard);
        say(format!("lab torn down in {} ms", t.elapsed().as_millis()));
        done
    }
}

/// What every command that starts a database checks before it makes anything: root (for
/// `what`), the database, the settings it is given, and, on this machine's own servers
/// (`backend` lab), its binaries (its npm package is installed on first use, which `say`
/// hears). A container backend's image is checked as its lab is made.
pub fn preflight(
    database: &str,
    bin_dir: Option<&Path>,
    set: &crate::db::knob::Overrides,
    backend: crate::spec::Backend,
    what: &str,
    say: impl Fn(String),
) -> Result<&'static dyn Database> {
    let db = db::preset(database)?;
    process::require_root(what)?;
    crate::db::knob::check(db.name(), db.knobs(), set)?;
    if backend == crate::spec::Backend::Lab {
        if let Some(done) = db::ensure_installed(db, bin_dir)? {
            say(done);
        }
    }
    Ok(db)
}

/// Step 1 of [`run`]: the spec, the [`preflight`] and a free lab name, before anything else
/// is made.
fn check(spec: &Spec, lab_name: &str, say: impl Fn(String)) -> Result<&'static dyn Database> {
    spec.validate()?;
    let db = preflight(
        &spec.database,
        spec.bin_dir.as_deref(),
        &spec.set,
        spec.backend,
        "perseus run",
        say,
    )?;
    lab::validate_name(lab_name)?;
    if LabState::load(lab_name).is_ok() {
        return Err(Error::LabExists(lab_name.to_string()));
    }
    if spec.disk != crate::spec::Disk::Faulty {
        let scenario = spec.scenario();
        let on_disk = scenario.phases.iter().flat_map(|p| &p.faults).find(|a| {
            matches!(a, crate::fault::Action::Start { fault, .. }
                if fault.acts_on() == crate::fault::ActsOn::Disk)
        });
        if let Some(action) = on_disk {
            return Err(Error::Invalid(format!(
                "scenario {}: '{action}' needs the nodes' data on a disk layer: add --disk faulty",
                scenario.name
            )));
        }
    }
    // The engine and the image too, before the results directory is made.
    if let lab::Hosts::Containers {
        engine,
        image,
        also,
    } = spec.hosts(db)?
    {
        lab::containers::check(engine, &image, &also, lab_name)?;
    }
    Ok(db)
}

/// Makes the lab's hosts (in `subnet`, or a free range), with a guard that removes them
/// when dropped.
fn create(
    spec: &Spec,
    db: &dyn Database,
    lab_name: &str,
    subnet: Option<lab::net::Subnet>,
) -> Result<(LabState, LabGuard)> {
    let state = lab::create(
        lab_name,
        db.name(),
        spec.nodes,
        subnet,
        spec.bin_dir.as_deref(),
        &spec.set,
        &spec.hosts(db)?,
    )?;
    let guard = LabGuard(lab_name.to_string());
    let mut state = state;
    if spec.disk == crate::spec::Disk::Faulty {
        // Checked by `Spec::hosts`: a preset with one data directory.
        let data = db.data_dir().unwrap_or("data");
        lab::disks::mount(&mut state, data)?;
    }
    Ok((state, guard))
}

/// A lab `perseus up` made and left running.
#[derive(Debug)]
pub struct Up {
    pub state: LabState,
    /// How long the database took to be ready.
    pub took: Duration,
    /// The version its servers report, and the node that leads, where one does.
    pub version: Option<String>,
    pub leader: Option<usize>,
}

/// `perseus up`: the [`preflight`], then the lab `lab_name` (in `subnet` if given) with
/// the database of `spec` started on its nodes and ready. A lab whose database does not
/// start (or that `stop` interrupts) is removed again.
pub async fn up(
    spec: &Spec,
    lab_name: &str,
    subnet: Option<lab::net::Subnet>,
    stop: &CancellationToken,
    say: impl Fn(String) + Copy,
) -> Result<Up> {
    let db = preflight(
        &spec.database,
        spec.bin_dir.as_deref(),
        &spec.set,
        spec.backend,
        "perseus up",
        say,
    )?;
    let (mut state, guard) = create(spec, db, lab_name, subnet)?;
    say(format!(
        "starting {} {} nodes in lab {} ({}) …",
        state.nodes.len(),
        db.name(),
        state.name,
        state.subnet
    ));
    let took = tokio::select! {
        r = db::start(&mut state, db, spec.ready_timeout) => r?,
        _ = stop.cancelled() => return Err(Error::Interrupted),
    };
    guard.keep();
    let layout = state.layout();
    let version = db.health(&layout).await.version;
    let leader = match db.leadership() {
        Some(l) => l.leader(&layout).await,
        None => None,
    };
    Ok(Up {
        state,
        took,
        version,
        leader,
    })
}

/// A scenario's expectations, checked on the results in a directory.
#[derive(Debug)]
pub struct Judged {
    pub expect: Vec<crate::expect::Expectation>,
    pub failed: Vec<crate::expect::Failure>,
    /// How many runs the figures come from.
    pub runs: usize,
}

/// The expectations of `spec`'s scenario checked on the results in `out` (one run or a
/// repeat); `None` if it has none.
pub fn judge(spec: &Spec, out: &Path) -> Result<Option<Judged>> {
    let expect = spec
        .scenario
        .as_ref()
        .map(|s| s.expect.clone())
        .unwrap_or_default();
    if expect.is_empty() {
        return Ok(None);
    }
    let figures = report::repeat::figures_of(out)?;
    let failed = crate::expect::check(&expect, &figures);
    Ok(Some(Judged {
        expect,
        failed,
        runs: figures.runs.len(),
    }))
}

/// After a run's experiment, whatever happened: stops the watch (the record ends), copies
/// the servers' logs and configuration into `dir`. Returns what failed.
async fn finish(
    watch: Option<Watch>,
    state: &LabState,
    db: &dyn Database,
    dir: &Path,
) -> Vec<Error> {
    let mut failed = Vec::new();
    if let Some(w) = watch {
        if let Err(e) = w.stop().await {
            failed.push(e);
        }
    }
    if let Err(e) = state.collect_logs(&dir.join("logs")) {
        failed.push(e);
    }
    if let Err(e) = save_config(state, db, &dir.join("config")) {
        failed.push(e);
    }
    // A container lab's image, its digest and each container's command line.
    if let Some(manifest) = lab::containers::manifest(state) {
        let path = dir.join("containers.json");
        let text = serde_json::to_string_pretty(&manifest).expect("JSON values serialise");
        if let Err(e) = crate::files::write(&path, text + "\n") {
            failed.push(e);
        }
    }
    failed
}

/// Saves the servers' configuration as they were started into `dest`: each node's
/// configuration files (`NODE-FILE`, from its directory and the one below) and the command
/// line of each of its processes (`NODE-PROCESS.command`), with the lab's password blanked
/// out.
fn save_config(state: &LabState, db: &dyn Database, dest: &Path) -> Result<()> {
    const KINDS: [&str; 6] = ["cnf", "cfg", "conf", "yml", "yaml", "toml"];
    std::fs::create_dir_all(dest).map_err(Error::io(format!("create {}", dest.display())))?;
    let layout = state.layout();
    let redact = |text: String| match &layout.secret {
        Some(secret) if !secret.is_empty() => text.replace(secret.as_str(), "<the lab's password>"),
        _ => text,
    };
    for (i, node) in state.nodes.iter().enumerate() {
        let mut files = Vec::new();
        let entries = |d: &Path| -> Vec<PathBuf> {
            std::fs::read_dir(d)
                .map(|r| r.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        };
        for p in entries(&node.dir) {
            if p.is_dir() {
                files.extend(entries(&p).into_iter().filter(|f| f.is_file()));
            } else {
                files.push(p);
            }
        }
        for f in files {
            let is_config = f
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| KINDS.contains(&e));
            let small = f
                .metadata()
                .is_ok_and(|m| m.is_file() && m.len() <= 64 * 1024);
            if !(is_config && small) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            let name = f
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            crate::files::write(&dest.join(format!("{}-{name}", node.name)), redact(text))?;
        }
        for p in db.processes(&layout, i) {
            let line = std::iter::once(p.program.clone())
                .chain(p.args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            crate::files::write(
                &dest.join(format!("{}-{}.command", node.name, p.name)),
                redact(line) + "\n",
            )?;
        }
    }
    Ok(())
}

/// Where a run's results go: its directory, the echo of its table (until the watch takes
/// it), and its watch once started (for the caller to stop, whatever happened).
struct Output<'a> {
    dir: &'a Path,
    echo: Option<Echo>,
    watch: Option<Watch>,
}

/// What a run's workload runs against: a lab's nodes or a cluster's.
struct Subject {
    layout: crate::lab::Layout,
    /// The event log that fault markers and marks reach the record through.
    events_dir: PathBuf,
    servers: crate::watch::Servers,
    /// Wait, once steady, until the database has warmed up (labs, unless --skip-warmup).
    wait_warm: bool,
}

/// The part of a run that every subject shares: the workload, steady, warm (if asked), the
/// scenario on `backend`, the final reads. The watch is left in `out` for the caller to stop.
async fn experiment(
    spec: &Spec,
    db: &'static dyn Database,
    subject: Subject,
    backend: &mut dyn schedule::Backend,
    stop: &CancellationToken,
    out: &mut Output<'_>,
    say: impl Fn(String) + Copy,
) -> Result<Option<String>> {
    let w = out.watch.insert(Watch::start(
        db,
        subject.layout.clone(),
        &subject.events_dir,
        spec.settings(),
        out.dir,
        out.echo.take(),
        subject.servers,
    )?);
    wait_steady(w, &subject.layout, spec.steady_timeout, stop, say).await?;
    if subject.wait_warm {
        wait_warm(spec, db, &subject.layout, stop, say).await?;
    }
    if let Some(max) = spec.max_record_bytes {
        w.limit_record(max);
    }
    // The scenario ends early, healed, when the record is full; a long one says how big
    // the record is as it goes.
    let full = w.record_full();
    let scenario = spec.scenario();
    let long = scenario.total() > USAGE_EVERY;
    let usage_lines = async {
        if !long {
            return std::future::pending::<()>().await;
        }
        let start = tokio::time::Instant::now() + USAGE_EVERY;
        let mut every = tokio::time::interval_at(start, USAGE_EVERY);
        loop {
            every.tick().await;
            say(w.usage().line());
        }
    };
    let ended_early = tokio::select! {
        r = schedule::play(&scenario, backend, stop, &full, say) => r?,
        _ = usage_lines => unreachable!("the usage lines never end"),
    };
    let stopped_early = match ended_early {
        true => {
            let why = w.usage().why_full().unwrap_or_default();
            say(format!("stopped the scenario early: {why}"));
            w.mark(format!("{} {why}", crate::record::marks::STOPPED_EARLY))
                .await;
            Some(why)
        }
        false => None,
    };
    let missed = w.final_reads(FINAL_READS_WITHIN).await;
    if missed > 0 {
        say(format!(
            "{missed} final reads did not succeed within {} s",
            FINAL_READS_WITHIN.as_secs()
        ));
    }
    say(w.usage().line());
    Ok(stopped_early)
}

/// How often a run longer than this says how big its record is.
const USAGE_EVERY: Duration = Duration::from_secs(600);

/// Starts the database on every node of the lab and waits until it is ready; returns the
/// version the servers report.
async fn bring_up(
    spec: &Spec,
    db: &'static dyn Database,
    state: &mut LabState,
    stop: &CancellationToken,
    say: impl Fn(String) + Copy,
) -> Result<Option<String>> {
    say(format!(
        "starting {} {} nodes in lab {} ({}) …",
        spec.nodes,
        db.name(),
        state.name,
        state.subnet
    ));
    let took = tokio::select! {
        r = db::start(state, db, spec.ready_timeout) => r?,
        _ = stop.cancelled() => return Err(Error::Interrupted),
    };
    let health = db.health(&state.layout()).await;
    let addrs: Vec<String> = state
        .nodes
        .iter()
        .map(|n| format!("{}={}", n.name, n.addr))
        .collect();
    say(format!(
        "{} {} nodes ready in {:.1} s ({}){}",
        spec.nodes,
        db.name(),
        took.as_secs_f64(),
        addrs.join(" "),
        health
            .version
            .as_ref()
            .map(|v| format!(", version {v}"))
            .unwrap_or_default()
    ));
    Ok(health.version)
}

/// The experiment on a lab whose database is up (see [`experiment`]).
async fn one_experiment(
    spec: &Spec,
    db: &'static dyn Database,
    state: &LabState,
    version: Option<String>,
    stop: &CancellationToken,
    out: &mut Output<'_>,
    say: impl Fn(String) + Copy,
) -> Result<Option<String>> {
    let subject = Subject {
        layout: state.layout(),
        events_dir: state.dir(),
        servers: crate::watch::Servers::of_lab(db, &state.layout(), version),
        wait_warm: !spec.skip_warmup,
    };
    let mut host = crate::hosts::lab::LabHost::new(state.clone(), db);
    let mut backend = schedule::OnHost {
        host: &mut host,
        db,
        rng: crate::fault::Rng::new(spec.seed),
        mark_warm: true,
        undo_on_stop: false,
    };
    experiment(spec, db, subject, &mut backend, stop, out, say).await
}

/// The error of a run whose record was removed while it ran (it is written all along).
fn record_gone(dir: &Path) -> Error {
    Error::Invalid(format!(
        "{} was removed while the run wrote it: no results",
        dir.join(crate::record::COMPRESSED_FILE_NAME).display()
    ))
}

/// Analyses the record in `dir`, if the run got as far as writing one, and writes the
/// results beside it.
fn results(dir: &Path) -> Result<Option<Analysis>> {
    let Ok(record) = crate::record::in_results(dir) else {
        return Ok(None);
    };
    let a = analysis::analyse(&record)?;
    report::write_results(dir, &a)?;
    Ok(Some(a))
}

/// Waits, at most `within`, until every node has served the workload for
/// [`STEADY_SECONDS`] complete seconds.
async fn wait_steady(
    w: &Watch,
    layout: &crate::lab::Layout,
    within: Duration,
    stop: &CancellationToken,
    say: impl Fn(String),
) -> Result<()> {
    let t = Instant::now();
    while !w.is_steady(STEADY_SECONDS) {
        if t.elapsed() > within {
            let silent: Vec<&str> = w
                .silent_nodes()
                .iter()
                .map(|i| layout.nodes[*i].name.as_str())
                .collect();
            return Err(Error::NotSteady {
                secs: within.as_secs(),
                why: format!("no increment in the last second from {}", silent.join(", ")),
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.cancelled() => return Err(Error::Interrupted),
        }
    }
    say(format!(
        "every node serves; steady after {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Runs one experiment on a cluster Perseus did not start, with the user's own fault
/// commands or, where every node says `ssh =`, faults Perseus makes over SSH (`hosts::ssh`):
/// checks the scenario against the cluster file and every node's reachability
/// before anything starts; creates the table where the database needs one; starts the
/// workload, waits until every node serves, plays the scenario (undoing what is in force
/// at its end, or when a command fails or `stop` fires), reads every key through every
/// node, and writes the results into `dir`. The cluster's event log is removed at the end.
pub async fn run_cluster(
    spec: &Spec,
    cluster: &Cluster,
    dir: &Path,
    stop: CancellationToken,
    say: impl Fn(String) + Copy,
    echo: Option<Echo>,
) -> Result<RunOutcome> {
    let db = db::find(&cluster.database)?;
    let scenario = spec.scenario();
    let length = scenario.total();
    let mut ssh = cluster.over_ssh().then(|| cluster.ssh_host(length, say));
    let mut compose = match &cluster.compose {
        Some(c) => Some(crate::hosts::compose::ComposeHost::new(
            c.clone(),
            cluster.layout(),
            Some(cluster.dir()),
        )?),
        None => None,
    };
    match (&mut ssh, &mut compose) {
        (Some(host), _) => crate::scenario::check_on(&scenario, host)?,
        (None, Some(host)) => crate::scenario::check_on(&scenario, host)?,
        (None, None) => crate::cluster::check_scenario(cluster, &scenario)?,
    }
    let (events, version) = cluster.attach(db).await?;
    std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
    spec.save(&dir.join("spec.json"))?;
    let subject = Subject {
        layout: cluster.layout(),
        events_dir: events.dir().to_path_buf(),
        servers: crate::watch::Servers {
            version,
            ..Default::default()
        },
        wait_warm: false,
    };
    let mut out = Output {
        dir,
        echo,
        watch: None,
    };
    let result = if let Some(mut host) = ssh {
        host.record_into(events.dir());
        match host
            .connect(cluster.ssh_config.as_deref(), events.dir())
            .await
        {
            Ok(()) => on_host(&mut host, spec, db, subject, &stop, &mut out, say).await,
            Err(e) => Err(e),
        }
    } else if let Some(mut host) = compose {
        on_host(&mut host, spec, db, subject, &stop, &mut out, say).await
    } else {
        let mut backend = crate::cluster::Commands { cluster, say };
        experiment(spec, db, subject, &mut backend, &stop, &mut out, say).await
    };
    let stopped = match out.watch {
        Some(w) => w.stop().await,
        None => Ok(()),
    };
    drop(events);
    outcome(dir, result, stopped.err().into_iter().collect())
}

/// One experiment on a cluster Perseus did not start, whose faults it makes itself through
/// `host`; what is in force when the experiment stops is undone.
async fn on_host(
    host: &mut dyn crate::hosts::Transport,
    spec: &Spec,
    db: &'static dyn Database,
    subject: Subject,
    stop: &CancellationToken,
    out: &mut Output<'_>,
    say: impl Fn(String) + Copy,
) -> Result<Option<String>> {
    let mut backend = schedule::OnHost {
        host,
        db,
        rng: crate::fault::Rng::new(spec.seed),
        mark_warm: false,
        undo_on_stop: true,
    };
    experiment(spec, db, subject, &mut backend, stop, out, say).await
}

/// Waits, at most the steady timeout, until the database reports it has warmed up.
async fn wait_warm(
    spec: &Spec,
    db: &'static dyn Database,
    layout: &crate::lab::Layout,
    stop: &CancellationToken,
    say: impl Fn(String),
) -> Result<()> {
    let t = Instant::now();
    let Some(warm_up) = db.warm_up() else {
        return Ok(());
    };
    while let Err(why) = warm_up.warmed_up(layout).await {
        if t.elapsed() > spec.steady_timeout {
            return Err(Error::NotSteady {
                secs: spec.steady_timeout.as_secs(),
                why: format!("not warmed up: {why} (--skip-warmup starts the faults anyway)"),
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.cancelled() => return Err(Error::Interrupted),
        }
    }
    if t.elapsed() > Duration::from_millis(500) {
        say(format!(
            "warmed up after {:.1} s more",
            t.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}
