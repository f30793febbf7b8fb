//! The command line: flags → a spec or a lab action. No logic of its own.

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use perseus::clock::parse_duration;
use perseus::db;
use perseus::fault::Action;
use perseus::fault::Target;
use perseus::lab::{self, process, LabState};
use perseus::spec::Spec;
use perseus::watch::Watch;
use perseus::workload::{ReadFrom, Settings, WriteMode};
use perseus::{analysis, report, Error};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Writes a line to standard output. A closed pipe (`perseus list | head -1`) ends the
/// output, never the command: a run goes on recording and tears its lab down.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// [`outln!`] without the newline.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

const ABOUT: &str = "What do your clients see when a database node is cut off from its peers, and when it comes back?";

const LONG_ABOUT: &str = "\
What do your clients see when a database node is cut off from its peers, and when it comes back?

Perseus brings up a real cluster in network namespaces on this machine, runs one client per
node (read -> increment -> write on a key of its own, as the original Perseus experiment),
cuts a node off from its peers with nftables, lets it rejoin, and measures from the full
operation record: downtime, partial downtime, disturbance time and recovery time.

Quick start (as root):
  perseus run etcd                      the whole experiment, unattended (about 2.5 minutes)
  perseus run etcd --isolate leader --before 10s --during 20s --after 20s

By hand, in two terminals:
  perseus up etcd                       a 3-node lab
  perseus watch                         the per-second table (Ctrl-C stops it)
  perseus isolate n2 / perseus rejoin n2
  perseus down                          removes everything the lab made";

const AFTER_LONG_HELP: &str = "\
Arguments:
  DURATION  30s, 1m30s, 500ms, 2h, or a number of seconds (at most a year)
  NODE      a node name (n1, n2, ...), leader or follower (as the database names them when
            the fault starts), random (from the run's seed), or all

Environment:
  PERSEUS_HOME  where labs keep their state (labs/NAME) and watches of clusters Perseus did
                not start their event logs (clusters/NAME) [default: /var/lib/perseus]
  PERSEUS_LAB   the lab commands act on when --lab is not given [default: default]

Exit codes:
  0    done
  1    failed while running (a node did not come up, a fault command failed)
  2    bad input (unknown database, node or lab; a malformed file or flag)
  3    the machine lacks something (root, a binary, a free address range)
  4    the run completed, and its record shows lost acknowledged writes or correctness
       violations
  130  interrupted (after cleaning up; a second Ctrl-C aborts at once)

More: the README, and perseus help COMMAND.";

#[derive(Parser)]
#[command(
    name = "perseus",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What the command line asks for: a derived command, or a fault from the registry.
pub enum Invocation {
    Command(Box<Command>),
    /// A fault action (`isolate n2`, `loss n2 30%`, `rejoin n2`) on a lab.
    Fault {
        action: String,
        lab: LabArg,
    },
}

impl Invocation {
    pub fn stops_at_once(&self) -> bool {
        match self {
            Invocation::Command(c) => c.stops_at_once(),
            Invocation::Fault { .. } => false,
        }
    }

    pub fn on_interrupt(&self) -> &'static str {
        match self {
            Invocation::Command(c) => c.on_interrupt(),
            Invocation::Fault { .. } => "interrupted: stopping …; Ctrl-C again aborts at once",
        }
    }
}

/// The command line: the derived commands, and one command per fault of the registry
/// ([`perseus::fault::FAULTS`]) and per word that undoes one, listed after `status`.
pub fn command() -> clap::Command {
    let mut c = Cli::command();
    let mut faults: Vec<clap::Command> = Vec::new();
    for f in perseus::fault::FAULTS {
        faults.push(fault_command(f.kind().name, f.about(), f.params()));
        if let Some((word, about)) = f.undone_by() {
            faults.push(fault_command(word, about, &[perseus::fault::TARGET_PARAM]));
        }
    }
    let derived: Vec<String> = c
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let mut order = 0;
    for name in derived {
        c = c.mut_subcommand(&name, |s| s.display_order(order));
        order += 1;
        if name == "status" {
            for f in faults.drain(..) {
                c = c.subcommand(f.display_order(order));
                order += 1;
            }
        }
    }
    c
}

/// One fault's command: its parameters, then `--lab`.
fn fault_command(
    name: &'static str,
    about: &'static str,
    params: &'static [perseus::fault::ParamDoc],
) -> clap::Command {
    let mut c = clap::Command::new(name).about(about);
    for p in params {
        let mut arg = clap::Arg::new(p.name)
            .value_name(p.name)
            .help(p.help)
            .required(true);
        if p.many {
            arg = arg.num_args(1..);
        }
        c = c.arg(arg);
    }
    LabArg::augment_args(c)
}

/// Parses the command line (exits with clap's message and code 2 on a mistake).
pub fn parse() -> Invocation {
    let matches = command().get_matches();
    if let Some((name, sub)) = matches.subcommand() {
        let fault = perseus::fault::FAULTS
            .iter()
            .find(|f| f.kind().name == name || f.undone_by().is_some_and(|(w, _)| w == name));
        if let Some(f) = fault {
            let params = if f.kind().name == name {
                f.params()
            } else {
                &[perseus::fault::TARGET_PARAM]
            };
            let mut words = vec![name.to_string()];
            for p in params {
                words.extend(
                    sub.get_many::<String>(p.name)
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
            }
            let lab = LabArg::from_arg_matches(sub).unwrap_or_else(|e| e.exit());
            return Invocation::Fault {
                action: words.join(" "),
                lab,
            };
        }
    }
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => Invocation::Command(Box::new(cli.command)),
        Err(e) => e.exit(),
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the experiment unattended: lab up, workload, isolate, rejoin, metrics, lab down
    Run(RunArgs),
    /// Bring up a lab: a cluster of real database nodes, each in its own network namespace
    Up(UpArgs),
    /// Remove a lab: every process, namespace, link and rule it made (also after a crash)
    Down(DownArgs),
    /// Show labs: nodes, addresses, processes, leader, faults in force
    Status(LabArg),
    /// Undo every fault in force in the lab
    Heal(LabArg),
    /// Put an event into every running watch of the lab, now: a fault marker if it starts
    /// with a fault verb ("isolating n2", "rejoining n2"), else a free mark. For faults made
    /// by your own scripts.
    Mark(MarkArgs),
    /// Run the seed's client against a lab (or a cluster Perseus did not start: --cluster,
    /// --db/--node) and print the per-second table until Ctrl-C
    Watch(WatchArgs),
    /// Rebuild client.log, summary.json and the metrics of a results directory from its record
    Report(ReportArgs),
    /// Put runs side by side: the seed's table (terminal and markdown) and compare.html
    Compare(CompareArgs),
    /// List the databases Perseus can run (with the packages they need), the scenarios, or
    /// the faults
    List(ListArgs),
    /// Measure Perseus itself (for BENCHMARKS.md): report speed, lab times, fault latency,
    /// memory of a long watch
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print a shell completion script, e.g. perseus completions bash >
    /// /etc/bash_completion.d/perseus
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. perseus man > /usr/local/share/man/man1/perseus.1
    Man,
}

impl Command {
    /// What the first Ctrl-C does to the command, for the line that says so.
    pub fn on_interrupt(&self) -> &'static str {
        match self {
            Command::Run(_) | Command::Up(_) => {
                "interrupted: stopping and tearing down …; Ctrl-C again aborts at once \
                 (then remove what is left with perseus down --lab NAME; perseus status lists the labs)"
            }
            Command::Watch(_) => {
                "stopping the watch and writing its results …; Ctrl-C again aborts at once"
            }
            _ => "interrupted: stopping …; Ctrl-C again aborts at once",
        }
    }

    /// Whether the command has nothing to clean up: then the first Ctrl-C (or SIGTERM) ends
    /// it at once. The others stop, tear down what they made, and then end.
    pub fn stops_at_once(&self) -> bool {
        matches!(
            self,
            Command::Report(_)
                | Command::Compare(_)
                | Command::List(_)
                | Command::Status(_)
                | Command::Completions { .. }
                | Command::Man
        )
    }
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Generate a record and time its report; bytes per operation, page size, peak memory
    Report {
        /// Length of the generated record (of its time line, not of the generation)
        #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_duration)]
        length: Duration,
        /// Operations per second in the record
        #[arg(long, default_value_t = 5000, value_name = "OPS")]
        rate: u64,
    },
    /// Bring a lab up and down several times: time to ready, time to gone
    Lab {
        /// The database to bring up (perseus list shows them)
        database: String,
        /// Nodes per lab
        #[arg(long, default_value_t = 3, value_name = "N")]
        nodes: usize,
        /// How many times to bring the lab up and down
        #[arg(long, default_value_t = 5, value_name = "N")]
        repeat: usize,
    },
    /// Client overhead: Perseus's client loop against one local redis-server, side by side
    /// with `redis-benchmark -c 1 -P 1` (needs redis-server and redis-tools)
    Client {
        /// How long each side runs per round
        #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
        length: Duration,
        /// Rounds of both sides, alternating (the report gives the median)
        #[arg(long, default_value_t = 3, value_name = "N")]
        rounds: usize,
    },
    /// In a running lab: isolate → rules in force → first dropped peer packet
    Fault {
        #[command(flatten)]
        lab: LabArg,
        /// The node to isolate and rejoin each time
        #[arg(long, default_value = "n2", value_name = "NODE")]
        node: String,
        /// How many isolations to time
        #[arg(long, default_value_t = 20, value_name = "N")]
        repeat: usize,
    },
    /// Watch a running lab for a while; print memory, operations and record bytes per
    /// operation every minute
    Watch {
        #[command(flatten)]
        lab: LabArg,
        /// How long to watch
        #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = parse_duration)]
        length: Duration,
    },
}

#[derive(Args)]
pub struct ListArgs {
    /// What to list
    #[arg(value_enum, default_value = "databases")]
    pub what: ListWhat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ListWhat {
    Databases,
    Scenarios,
    /// Every fault: its action, markers, and what undoes it
    Faults,
}

#[derive(Args)]
pub struct MarkArgs {
    /// The event: "VERB TARGET", e.g. "isolating n2"
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
    #[command(flatten)]
    pub lab: LabArg,
    /// Mark a running watch of a cluster Perseus did not start (its name: the cluster
    /// file's `name`, or watch --name)
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
}

#[derive(Args)]
pub struct CompareArgs {
    /// Results directories of perseus run (each with record.txt)
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Where to write the comparison page; compare.md is written beside it
    #[arg(long, default_value = "compare.html")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct LabArg {
    /// The lab to act on
    #[arg(long, env = "PERSEUS_LAB", default_value = lab::DEFAULT_LAB)]
    pub lab: String,
}

#[derive(Args)]
pub struct RunArgs {
    /// Database to test (perseus list shows them); optional with --spec
    pub database: Option<String>,
    /// Number of nodes [default: 3]
    #[arg(long, value_name = "N")]
    pub nodes: Option<usize>,
    /// Node to isolate: n1, n2, …, leader or follower (as the database names them when the
    /// fault starts), random (from --seed) [default: n2, as the seed]
    #[arg(long, value_name = "NODE")]
    pub isolate: Option<Target>,
    /// Time from steady workload to the isolation [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub before: Option<Duration>,
    /// Time the node stays isolated [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub during: Option<Duration>,
    /// Time after the rejoin [default: 60s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub after: Option<Duration>,
    /// Longest wait for one request; past it the request counts as unknown [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Results directory [default: runs/DATABASE-YYYYmmdd-HHMMSS]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run a saved spec (spec.json of an earlier run); flags given as well override it
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Name of the lab the run creates (and removes) [default: run-PID]
    #[arg(long)]
    pub lab: Option<String>,
    /// Where binaries no package installs live (TiDB's pd-server, tikv-server, tidb-server)
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Start the faults without waiting for the database to warm up (TiDB: regions fully
    /// replicated), to see what a fault does to a cluster that is still warming up
    #[arg(long)]
    pub skip_warmup: bool,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Faults and timing from a scenario: a built-in name (perseus list scenarios) or a
    /// TOML file; replaces --isolate, --before, --during and --after
    #[arg(long, value_name = "NAME|FILE", conflicts_with_all = ["isolate", "before", "during", "after"])]
    pub scenario: Option<String>,
    /// Seed for `random` targets [default: a fresh one, saved in spec.json]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run against a cluster Perseus did not start, described by a cluster file (nodes,
    /// client, credentials, your own fault commands; see the README); --isolate names one
    /// of its nodes [default: the second]; a --scenario names its nodes too
    #[arg(long, value_name = "FILE", conflicts_with_all = ["database", "nodes", "lab", "bin_dir", "skip_warmup", "spec"])]
    pub cluster: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct WorkloadArgs {
    /// Add an observer per node: a read-only client that reads every node's key through
    /// that node, so the correctness checks catch stale reads
    #[arg(long)]
    pub observers: bool,
    /// How observers read: linearizable (the database's default read) or any (the
    /// cheapest read a node answers alone, e.g. etcd's serializable read); any implies
    /// --observers
    #[arg(long, value_enum, value_name = "HOW")]
    pub read_from: Option<ReadFrom>,
    /// How each writer writes its incremented value back: blind (set it, as the seed did)
    /// or cas (compare-and-set: only if the key still holds what was read; a failed compare
    /// counts as an error, and a timed-out write can no longer land late over newer ones)
    /// [default: blind]
    #[arg(long, value_enum, value_name = "MODE")]
    pub write: Option<WriteMode>,
}

/// The observers the flags ask for.
fn observers(o: &WorkloadArgs) -> Option<ReadFrom> {
    match (o.observers, o.read_from) {
        (_, Some(how)) => Some(how),
        (true, None) => Some(ReadFrom::Linearizable),
        (false, None) => None,
    }
}

#[derive(Args)]
pub struct UpArgs {
    /// Database to run (perseus list shows them)
    pub database: String,
    /// Number of nodes
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    #[command(flatten)]
    pub lab: LabArg,
    /// Address range: a /24 inside 198.18.0.0/15 [default: the first free one]
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// Longest wait for the cluster to be ready
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    pub ready_timeout: Duration,
    /// Where binaries no package installs live (TiDB's pd-server, tikv-server, tidb-server)
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub lab: LabArg,
    /// Remove every lab on this machine
    #[arg(long)]
    pub all: bool,
}

#[derive(Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub lab: LabArg,
    /// Watch a cluster Perseus did not start, described by a cluster file (see the README)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["db", "node"])]
    pub cluster: Option<PathBuf>,
    /// Watch a cluster Perseus did not start with this database's client (with --node)
    #[arg(long, value_name = "DB", requires = "node")]
    pub db: Option<String>,
    /// A node of that cluster, as NAME=HOST:PORT; once per node
    #[arg(long, value_name = "NAME=HOST:PORT", requires = "db")]
    pub node: Vec<String>,
    /// The name `perseus mark --cluster NAME` reaches this watch by (with --db)
    #[arg(long, default_value = "external", requires = "db")]
    pub name: String,
    /// Longest wait for one request; past it the request counts as unknown
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Results directory for the record and the table [default: runs/watch-LAB-YYYYmmdd-HHMMSS]
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub workload: WorkloadArgs,
}

#[derive(Args)]
pub struct ReportArgs {
    /// A results directory (with record.txt), or a client log in the seed's format
    pub path: PathBuf,
}

fn stamp() -> String {
    chrono::Local::now().format("%Y%m%d-%H%M%S").to_string()
}

/// The live table's echo: standard output, until it closes (`perseus run etcd | head`).
fn stdout_echo() -> perseus::watch::Echo {
    Box::new(|text: &str| {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .is_ok()
    })
}

/// Progress and errors, on standard error; a closed stream never stops the command.
pub fn say(line: String) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "perseus: {line}");
}

pub async fn dispatch(invocation: Invocation, stop: CancellationToken) -> Result<()> {
    let cmd = match invocation {
        Invocation::Fault { action, lab } => return fault(&lab, &action).await,
        Invocation::Command(c) => *c,
    };
    match cmd {
        Command::Run(a) => run(a, stop).await,
        Command::Up(a) => up(a, stop).await,
        Command::Down(a) => down(a),
        Command::Status(a) => status(&a.lab).await,
        Command::Heal(a) => fault(&a, "heal").await,
        Command::Mark(a) => mark(&a),
        Command::Watch(a) => watch(a, stop).await,
        Command::Report(a) => report_cmd(&a.path),
        Command::Compare(a) => compare(a),
        Command::List(a) => list(a.what),
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
    if let Some(t) = a.isolate {
        spec.timeline.isolate = t;
    }
    if let Some(d) = a.before {
        spec.timeline.before = d;
    }
    if let Some(d) = a.during {
        spec.timeline.during = d;
    }
    if let Some(d) = a.after {
        spec.timeline.after = d;
    }
    if let Some(d) = a.timeout {
        spec.request_timeout = d;
    }
    if a.bin_dir.is_some() {
        spec.bin_dir = a.bin_dir;
    }
    if a.skip_warmup {
        spec.skip_warmup = true;
    }
    if let Some(o) = observers(&a.workload) {
        spec.observers = Some(o);
    }
    if let Some(w) = a.workload.write {
        spec.write = w;
    }
    if let Some(name) = &a.scenario {
        spec.scenario = Some(perseus::scenario::Scenario::load(name, Some(spec.nodes))?);
    }
    if let Some(seed) = a.seed {
        spec.seed = seed;
    } else if a.spec.is_none() {
        spec.seed = perseus::clock::monotonic_ns() ^ perseus::clock::unix_ms() as u64;
    }
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-{}", spec.database, stamp())));
    let lab_name = a
        .lab
        .unwrap_or_else(|| format!("run-{}", std::process::id()));
    let outcome = perseus::run::run(&spec, &out, &lab_name, stop, say, Some(stdout_echo())).await?;
    conclude(
        &outcome.analysis,
        &outcome.dir,
        &format!("results: {}", outcome.dir.display()),
    )
}

/// `perseus run --cluster FILE`: the seed's timeline on a cluster Perseus did not start.
async fn run_cluster(a: &RunArgs, file: &Path, stop: CancellationToken) -> Result<()> {
    let cluster = perseus::cluster::Cluster::load(file)?;
    let mut spec = Spec {
        database: cluster.database.clone(),
        nodes: cluster.nodes.len(),
        ..Spec::default()
    };
    spec.timeline.isolate = match &a.isolate {
        Some(t) => t.clone(),
        None => {
            perseus::fault::Target::Node(cluster.nodes[1.min(cluster.nodes.len() - 1)].name.clone())
        }
    };
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
    if let Some(w) = a.workload.write {
        spec.write = w;
    }
    if let Some(name) = &a.scenario {
        // Node names are the cluster's: checked against it before anything starts.
        spec.scenario = Some(perseus::scenario::Scenario::load(name, None)?);
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-{}", cluster.name, stamp())));
    let outcome =
        perseus::run::run_cluster(&spec, &cluster, &out, stop, say, Some(stdout_echo())).await?;
    conclude(
        &outcome.analysis,
        &outcome.dir,
        &format!("results: {}", outcome.dir.display()),
    )
}

/// Prints the end-of-run summary and the line after it; fails (with its own exit code) if
/// the record shows lost acknowledged writes or correctness violations.
fn conclude(analysis: &perseus::analysis::Analysis, dir: &Path, last: &str) -> Result<()> {
    out!("\n{}", report::terminal_summary(analysis));
    outln!("{last}");
    let c = &analysis.correctness;
    if c.violations == 0 && c.lost_acknowledged_writes == 0 {
        return Ok(());
    }
    Err(Error::Violations {
        lost: c.lost_acknowledged_writes,
        violations: c.violations,
        summary: dir.join(report::SUMMARY_FILE),
    }
    .into())
}

async fn up(a: UpArgs, stop: CancellationToken) -> Result<()> {
    let db = db::find(&a.database)?;
    process::require_root("perseus up")?;
    db.check_installed(a.bin_dir.as_deref())?;
    let subnet = a
        .subnet
        .as_deref()
        .map(lab::net::Subnet::parse)
        .transpose()?;
    let mut state = lab::create(&a.lab.lab, db.name(), a.nodes, subnet, a.bin_dir.as_deref())?;
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
        let lead = if health.leader == Some(i) {
            "  leader"
        } else {
            ""
        };
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
                "lab {name} removed ({} nodes, their processes, namespaces and rules, bridge {}) in {} ms",
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

async fn status(name: &str) -> Result<()> {
    let names = lab::list();
    if names.is_empty() {
        outln!("no labs (start one with: perseus up etcd)");
        return Ok(());
    }
    let names: Vec<String> = if names.iter().any(|n| n == name) {
        vec![name.to_string()]
    } else {
        names
    };
    for name in names {
        let state = LabState::load(&name)?;
        let up_for = (perseus::clock::unix_ms() - state.created_unix_ms).max(0) as u64 / 1000;
        outln!(
            "lab {}: {}, {} nodes, {}, up {}",
            state.name,
            state.database,
            state.nodes.len(),
            state.subnet,
            perseus::clock::format_duration(Duration::from_secs(up_for))
        );
        let db = db::find(&state.database).ok();
        let health = match db {
            Some(db) => Some(db.health(&state.layout()).await),
            None => None,
        };
        outln!(
            "  {:<5}{:<15}{:<28}{:<24}faults",
            "node",
            "address",
            "namespace",
            "processes"
        );
        let in_force = perseus::fault::in_force(&state);
        for (i, n) in state.nodes.iter().enumerate() {
            let procs: Vec<String> = n
                .processes
                .iter()
                .map(|p| {
                    let alive = if process::is_alive(p.pid, p.start_time) {
                        ""
                    } else {
                        " (gone)"
                    };
                    format!("{} {}{alive}", p.name, p.pid)
                })
                .collect();
            let faults = match &in_force {
                Ok(all) => {
                    let here: Vec<String> = all
                        .iter()
                        .filter(|f| f.nodes.contains(&i))
                        .map(|f| format!("{} {}", f.kind.started, f.target))
                        .collect();
                    if here.is_empty() {
                        "-".to_string()
                    } else {
                        here.join("; ")
                    }
                }
                Err(_) => "? (namespace missing)".to_string(),
            };
            let procs = if procs.is_empty() {
                "-".to_string()
            } else {
                procs.join(", ")
            };
            outln!(
                "  {:<5}{:<15}{:<28}{:<24}{faults}",
                n.name,
                n.addr.to_string(),
                n.netns,
                procs
            );
        }
        if let Some(h) = health {
            let leader = h
                .leader
                .map(|i| state.nodes[i].name.clone())
                .unwrap_or_else(|| "none".into());
            let ready = if h.ready {
                "ready".to_string()
            } else {
                format!("not ready: {}", h.why)
            };
            outln!("  leader: {leader}; {ready}");
        }
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
    let done = perseus::fault::act(&action, &state, db, &mut rng).await?;
    let ms = t.elapsed().as_millis();
    match (&action, done.as_slice()) {
        (Action::Start { .. }, [f]) if f.kind.name == "isolate" => {
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
    let settings = Settings {
        timeout: a.timeout,
        observers: observers(&a.workload),
        write: a.workload.write.unwrap_or_default(),
        ..Settings::default()
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
                settings,
                &out,
                version,
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
                settings,
                &out,
                version,
                stop,
            )
            .await
        }
    }
}

/// The seed's client on `layout` until `stop` fires (Ctrl-C), the table echoed to the
/// terminal; then the results and the verdict.
async fn watch_until(
    db: &'static dyn perseus::db::Database,
    layout: perseus::lab::Layout,
    events_dir: &Path,
    settings: Settings,
    out: &Path,
    version: Option<String>,
    stop: CancellationToken,
) -> Result<()> {
    let w = Watch::start(
        db,
        layout,
        events_dir,
        settings,
        out,
        Some(stdout_echo()),
        version,
    )?;
    stop.cancelled().await;
    w.stop().await?;
    let analysis = analysis::analyse(&out.join(perseus::record::FILE_NAME))?;
    report::write_results(out, &analysis)?;
    conclude(&analysis, out, &format!("results: {}", out.display()))
}

fn report_cmd(path: &Path) -> Result<()> {
    if path.is_file() {
        // A client log in the seed's format: whole-second metrics only.
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let table = perseus::record::table::Table::parse(&text, path)?;
        let Some((w, f)) = analysis::figures_from_table(&table) else {
            outln!("no fault marker in {}: no metrics", path.display());
            return Ok(());
        };
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
    let record = path.join(perseus::record::FILE_NAME);
    if !record.exists() {
        return Err(Error::Invalid(format!(
            "{} has no {}: give a results directory of perseus run or watch",
            path.display(),
            perseus::record::FILE_NAME
        ))
        .into());
    }
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

fn list(what: ListWhat) -> Result<()> {
    if let ListWhat::Scenarios = what {
        for (name, _) in perseus::scenario::BUILT_IN {
            let sc = perseus::scenario::Scenario::load(name, None)?;
            outln!("{name:<20}{}\n{:<20}{}", sc.description, "", sc.outline());
        }
        outln!("\nperseus run DB --scenario NAME|FILE.toml; a scenario file is TOML: see scenarios/ and the README");
        return Ok(());
    }
    if let ListWhat::Faults = what {
        let rows: Vec<[String; 4]> = perseus::fault::FAULTS
            .iter()
            .map(|f| {
                let k = f.kind();
                let params: Vec<&str> = f.params().iter().map(|p| p.name).collect();
                let undo = match f.undone_by() {
                    Some((word, _)) => format!("{word} NODE, heal"),
                    None => "heal".into(),
                };
                [
                    format!("{} {}", k.name, params.join(" ")),
                    format!("{} / {}", k.starting, k.started),
                    undo,
                    f.about().to_string(),
                ]
            })
            .collect();
        let header = ["action", "markers", "undone by", "about"].map(String::from);
        outln!("{}", columns(std::iter::once(&header).chain(&rows)));
        outln!("\nfrom any terminal: perseus ACTION [--lab NAME]; in a scenario: faults = [\"ACTION\"]");
        return Ok(());
    }
    let rows: Vec<[String; 4]> = db::REGISTRY
        .iter()
        .map(|d| {
            let mut needs: Vec<&str> = d.binaries().iter().map(|(_, p)| *p).collect();
            needs.dedup();
            let installed = if d.check_installed(None).is_ok() {
                "yes"
            } else {
                "no"
            };
            [
                d.name().to_string(),
                needs.join(" "),
                installed.to_string(),
                d.about().to_string(),
            ]
        })
        .collect();
    let header = ["database", "needs", "installed", "about"].map(String::from);
    outln!("{}", columns(std::iter::once(&header).chain(&rows)));
    Ok(())
}

/// Rows as text columns, each as wide as its widest cell plus two spaces (the last column
/// is not padded).
fn columns<'a, const N: usize>(rows: impl Iterator<Item = &'a [String; N]> + Clone) -> String {
    let mut widths = [0; N];
    for row in rows.clone() {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let lines: Vec<String> = rows
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == N {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            line
        })
        .collect();
    lines.join("\n")
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
    let mut runs = Vec::new();
    for dir in &a.dirs {
        let record = dir.join(perseus::record::FILE_NAME);
        if !record.exists() {
            return Err(Error::Invalid(format!(
                "{} has no {}: give results directories of perseus run",
                dir.display(),
                perseus::record::FILE_NAME
            ))
            .into());
        }
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        runs.push((name, analysis::analyse(&record)?));
    }
    let labels: Vec<&str> = analysis::METRICS
        .iter()
        .map(|m| m.short)
        .chain(["lost ack. writes", "by late writes"])
        .collect();
    let mut text = format!("{:<28}{:<16}{:<7}", "run", "database", "write");
    for l in &labels {
        text.push_str(&format!("{l:>24}"));
    }
    text.push('\n');
    let mut markdown = report::markdown_header();
    let mut html =
        String::from("<table><tr><th>run</th><th>database</th><th>version</th><th>write</th>");
    for l in &labels[..analysis::METRICS.len()] {
        html.push_str(&format!("<th class=\"num\">{l} (s / ms)</th>"));
    }
    html.push_str("<th class=\"num\">lost acknowledged writes</th>");
    html.push_str("<th class=\"num\">of them overwritten by late writes</th>");
    html.push_str("</tr>");
    for (name, an) in &runs {
        let s = report::summary::of(an);
        let mut cells: Vec<String> = analysis::METRICS
            .iter()
            .map(|m| match s.metric(m.key) {
                (Some(secs), Some(ms)) => format!("{secs} s / {ms} ms"),
                _ => "n/a".into(),
            })
            .collect();
        cells.push(report::thousands(s.lost_acknowledged_writes));
        cells.push(report::thousands(s.lost_to_late_writes()));
        text.push_str(&format!("{name:<28}{:<16}{:<7}", s.database, s.write));
        for c in &cells {
            text.push_str(&format!("{c:>24}"));
        }
        text.push('\n');
        markdown.push_str(&report::markdown_row(&s));
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            report::svg::esc(name),
            report::svg::esc(&s.database),
            report::svg::esc(&s.database_version.clone().unwrap_or_default()),
            report::svg::esc(&s.write)
        ));
        for c in &cells {
            html.push_str(&format!("<td class=\"num\">{c}</td>"));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    out!("{text}\n{markdown}");
    perseus::files::write(&a.out, report::html::compare(&runs, &html))?;
    let md = a.out.with_extension("md");
    perseus::files::write(&md, &markdown)?;
    outln!("wrote {} and {}", a.out.display(), md.display());
    Ok(())
}

async fn bench(b: BenchCommand, stop: CancellationToken) -> Result<()> {
    use crate::bench;
    match b {
        BenchCommand::Report { length, rate } => bench::report(length.as_secs(), rate)?,
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
            // A private directory: this runs as root, and /tmp is everyone's.
            let scratch = perseus::files::Scratch::new("bench-watch")?;
            let out = scratch.path().join("run");
            let w = Watch::start(
                db,
                state.layout(),
                &state.dir(),
                Settings::default(),
                &out,
                None,
                None,
            )?;
            let t = Instant::now();
            while t.elapsed() < length && !stop.is_cancelled() {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    _ = stop.cancelled() => {}
                }
                // Memory first: counting the operations below must not be measured.
                let rss = bench::rss_kib(std::process::id());
                let record = out.join(perseus::record::FILE_NAME);
                let (ops, bytes) = bench::count_ops(&record)?;
                outln!(
                    "{:>5.1} min: RSS {:.1} MiB, {ops} operations, {:.1} record bytes/op",
                    t.elapsed().as_secs_f64() / 60.0,
                    rss as f64 / 1024.0,
                    bytes as f64 / ops.max(1) as f64
                );
            }
            w.stop().await?;
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
        perseus::lab::events::append(&dir, verb, target)?;
        outln!("marked: # {verb} {target}");
    } else {
        perseus::lab::events::append(&dir, perseus::lab::events::MARK, &text)?;
        outln!("marked: {text}");
    }
    Ok(())
}
