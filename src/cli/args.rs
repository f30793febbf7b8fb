//! The command line's grammar: the derived commands and their flags, and one command per
//! fault of the registry. Parsing only: what a command does is in the parent module.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use perseus::clock::parse_duration;
use perseus::fault::Target;
use perseus::lab;
use perseus::record::export::Format;
use perseus::scenario::Repeat;
use perseus::workload::{ReadFrom, WriteMode};
use std::path::PathBuf;
use std::time::Duration;

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
  5    an expectation did not hold (perseus check, or a scenario's expect list)
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
    /// The disk layer to serve, if that is what was asked: it runs with no async runtime
    /// and takes its signals itself.
    pub fn disk_layer(&self) -> Option<&DiskLayerArgs> {
        match self {
            Invocation::Command(c) => match c.as_ref() {
                Command::DiskLayer(a) => Some(a),
                _ => None,
            },
            Invocation::Fault { .. } => None,
        }
    }

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
    Run(Box<RunArgs>),
    /// Bring up a lab: a cluster of real database nodes, each in its own network namespace
    Up(UpArgs),
    /// Remove a lab: every process, namespace, link and rule it made (also after a crash)
    Down(DownArgs),
    /// Show labs: nodes, addresses, processes, leader, faults in force
    Status(StatusArgs),
    /// Undo every fault in force in the lab, or every fault Perseus made over SSH on a
    /// cluster's machines (--cluster FILE), also those a killed run left
    Heal(HealArgs),
    /// Put an event into every running watch of the lab, now: a fault marker if it starts
    /// with a fault verb ("isolating n2", "rejoining n2"), else a free mark. For faults made
    /// by your own scripts.
    Mark(MarkArgs),
    /// Run the seed's client against a lab (or a cluster Perseus did not start: --cluster,
    /// --db/--node) and print the per-second table until Ctrl-C
    Watch(WatchArgs),
    /// Rebuild client.log, summary.json and the metrics of a results directory from its record
    Report(ReportArgs),
    /// Write a run's record as plain history for other checkers: JSON Lines or CSV, one
    /// event a line (operations with node names, start and end, outcome, value; faults;
    /// marks)
    Export(ExportArgs),
    /// Put runs side by side: the seed's table (terminal and markdown) and compare.html
    Compare(CompareArgs),
    /// Gate a run in CI: check its figures against expectations (--expect, or the
    /// scenario's own) or a baseline run; exit 5 if one does not hold
    Check(CheckArgs),
    /// Regenerate the seed's table: every database × scenario, each run --repeat times on a
    /// fresh lab, into one directory with table.md and table.html; run it again with the
    /// same flags to continue a stopped one
    Matrix(MatrixArgs),
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
    /// Print the JSON Schema of a document Perseus writes: summary (a run's summary.json),
    /// repeat (a --repeat's), check or compare (their --json); the same as docs/schema/
    Schema {
        #[arg(value_enum)]
        document: SchemaDoc,
    },
    /// Serve one node's disk layer (started by a lab made with --disk faulty; not for use
    /// by hand)
    #[command(hide = true)]
    DiskLayer(DiskLayerArgs),
}

#[derive(Args)]
pub struct DiskLayerArgs {
    /// The real directory that holds the node's data
    #[arg(long)]
    pub backing: PathBuf,
    /// Where the layer shows it: the node's data directory
    #[arg(long)]
    pub mount: PathBuf,
    /// The layer's control socket
    #[arg(long)]
    pub socket: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SchemaDoc {
    Summary,
    Repeat,
    Check,
    Compare,
}

#[derive(Args)]
pub struct HealArgs {
    #[command(flatten)]
    pub lab: LabArg,
    /// A cluster file whose nodes say ssh =: remove every nftables table Perseus made on
    /// their machines, and continue the servers the file names there
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub lab: LabArg,
    /// A cluster file whose nodes say ssh =: show the faults Perseus made that are in force
    /// on their machines
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<std::path::PathBuf>,
    /// Print the labs as JSON (format perseus-status)
    #[arg(long)]
    pub json: bool,
}

impl Command {
    /// What the first Ctrl-C does to the command, for the line that says so.
    pub fn on_interrupt(&self) -> &'static str {
        match self {
            Command::Run(_) | Command::Up(_) | Command::Matrix(_) => {
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
                | Command::Check(_)
                | Command::List(_)
                | Command::Status(_)
                | Command::Completions { .. }
                | Command::Man
                | Command::Schema { .. }
        )
    }
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Generate a record (or take a run's) and time its report; bytes per operation, page
    /// size, peak memory
    ///
    /// The generated record is a 3-node etcd history whose times jitter as a real client's
    /// do. `--from` times the report of a real run's record instead, e.g. an hour of
    /// `perseus run redis-sentinel --loop 1h`.
    Report {
        /// Length of the generated record (of its time line, not of the generation)
        #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_duration)]
        length: Duration,
        /// Operations per second in the record
        #[arg(long, default_value_t = 5000, value_name = "OPS")]
        rate: u64,
        /// Isolate n2 for the middle third of every such stretch (a looped scenario: one
        /// fault interval each); default: once, in the middle third of the record
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        fault_every: Option<Duration>,
        /// Write the record and its report into DIR (which must not exist) and keep them,
        /// to report or profile again; default: a scratch directory, removed after
        #[arg(long, value_name = "DIR", conflicts_with = "from")]
        keep: Option<PathBuf>,
        /// Time the report of this results directory's record (of perseus run or watch)
        /// instead of a generated one; the report files are written to a scratch
        /// directory, and DIR is not changed
        #[arg(long, value_name = "DIR", conflicts_with_all = ["length", "rate", "fault_every"])]
        from: Option<PathBuf>,
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
        /// Also time a container lab (--backend docker or podman) in each round, right
        /// after the namespace lab, to compare them in the same run
        #[command(flatten)]
        hosts: HostsArgs,
    },
    /// The disk layer's cost (--disk faulty): operations a second of the seed's workload on
    /// a lab whose nodes' data sits on the layer, against the same lab on the plain disk,
    /// alternating in each round
    Disk {
        /// The database to measure (perseus list shows them)
        database: String,
        /// How long the workload runs on each lab
        #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
        length: std::time::Duration,
        /// How many rounds of plain then layered
        #[arg(long, default_value_t = 3, value_name = "N")]
        rounds: usize,
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
    /// Print the list as JSON (format perseus-list)
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ListWhat {
    Databases,
    Scenarios,
    /// Every database's settings that --set changes, with the preset's values
    Settings,
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
pub struct MatrixArgs {
    /// The databases, comma-separated (perseus list shows them)
    #[arg(
        long,
        value_name = "DB,…",
        value_delimiter = ',',
        required_unless_present = "matrix"
    )]
    pub db: Vec<String>,
    /// A matrix file (TOML) instead of --db, --scenario, --repeat, --phases and --set:
    /// databases, scenarios, repeat, phases, set, and per database [db.NAME] its own phases
    /// and set (a value, or a list of values to sweep); see the README
    #[arg(long, value_name = "FILE", conflicts_with_all = ["db", "scenario", "repeat", "phases", "set"])]
    pub matrix: Option<PathBuf>,
    /// Sweep a server setting, NAME=V1,V2,… (repeatable): every database that has it gets a
    /// row per value (perseus list settings)
    #[arg(long = "set", value_name = "NAME=V1,V2", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,
    /// The scenarios, comma-separated: built-in names (perseus list scenarios) or TOML files
    /// [default: isolate]
    #[arg(long, value_name = "NAME|FILE,…", value_delimiter = ',')]
    pub scenario: Vec<String>,
    /// Runs per database and scenario [default: 3]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: Option<u32>,
    /// The durations of every scenario's phases, in order, comma-separated (e.g. 10s,20s,20s
    /// for the three phases of isolate), to shorten them [default: the scenarios' own]
    #[arg(long, value_name = "DURATION,…", value_delimiter = ',', value_parser = parse_duration)]
    pub phases: Vec<Duration>,
    /// Longest wait for one request [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Where binaries no package installs live, for databases that need them (TiDB's
    /// pd-server, tikv-server, tidb-server)
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    #[command(flatten)]
    pub hosts: HostsArgs,
    #[command(flatten)]
    pub disk: DiskArg,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// The matrix's directory: a directory per row (DATABASE-SCENARIO/1 … N), table.md,
    /// table.html [default: runs/matrix-YYYYmmdd-HHMMSS]
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct CheckArgs {
    /// A results directory of perseus run (one run, or the directory of a --repeat)
    pub dir: PathBuf,
    /// An expectation, [STAT(]FIGURE[)] OP NUMBER: 'downtime_on_isolation_ms <= 2000',
    /// 'p90(recovery_time_ms) < 5000', 'lost_acknowledged_writes == 0'. FIGURE: a metric as
    /// <key>_ms or <key>_s, lost_acknowledged_writes, lost_to_late_writes, violations; a
    /// bare FIGURE holds for every run, STAT (min, median, p90, max) over the runs of a
    /// repeat; outside_expected counts the figures outside the range the database's failover
    /// model expects. Repeatable [default: the scenario's expect list]
    #[arg(long, value_name = "EXPR", value_parser = parse_expectation)]
    pub expect: Vec<perseus::expect::Expectation>,
    /// A results directory to compare with (best a --repeat): each metric's median (ms) may
    /// exceed the baseline's worst run by --tolerance of its median; lost writes and
    /// violations may not exceed its worst run at all
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    /// With --baseline: how far above the baseline's worst run a median may be, as a share
    /// of the baseline's median
    #[arg(long, value_name = "PERCENT", default_value = "20%", value_parser = parse_percent, requires = "baseline")]
    pub tolerance: f64,
    /// Print the verdicts as JSON (format perseus-check) instead of lines; the exit code is
    /// the same
    #[arg(long)]
    pub json: bool,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err("a setting is NAME=VALUE, e.g. election-timeout=500".into()),
    }
}

fn parse_expectation(text: &str) -> Result<perseus::expect::Expectation, String> {
    text.parse()
}

/// `20%` (or `20`) as 0.2.
fn parse_percent(text: &str) -> Result<f64, String> {
    let n = text.trim().trim_end_matches('%');
    match n.parse::<f64>() {
        Ok(p) if (0.0..=1000.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!("'{text}' is not a percentage from 0% to 1000%")),
    }
}

#[derive(Args)]
pub struct CompareArgs {
    /// Results directories of perseus run (each with its record)
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Where to write the comparison page; compare.md is written beside it
    #[arg(long, default_value = "compare.html")]
    pub out: PathBuf,
    /// Print the runs' summaries as JSON (format perseus-compare) instead of the tables
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print a CSV row per run (every figure a column) instead of the tables
    #[arg(long)]
    pub csv: bool,
}

/// A compose project Perseus did not start: `--compose` and `--group`.
#[derive(Args, Clone, Default)]
pub struct ComposeArgs {
    /// Measure a compose project Perseus did not start: its name, or its compose file. Its
    /// running containers are found by compose's labels, each service a node named after
    /// it (or as --group says); Perseus makes every fault itself in their network
    /// namespaces, and removes nothing of the project. The engine is --backend's (docker
    /// unless podman)
    #[arg(long, value_name = "PROJECT|FILE")]
    pub compose: Option<String>,
    /// With --compose: a node made of several services, NAME=SERVICE[,SERVICE…] (e.g.
    /// n1=pd1,tikv1,tidb1); once per node, and then only these are nodes
    #[arg(long, value_name = "NAME=SERVICE,…", requires = "compose", value_parser = perseus::hosts::compose::parse_group)]
    pub group: Vec<(String, Vec<String>)>,
}

/// Where a lab's nodes run: `--backend` and `--image`.
#[derive(Args, Clone, Default)]
pub struct HostsArgs {
    /// Where the nodes run: lab (network namespaces on this machine, running its installed
    /// servers), docker or podman (a container per server, from the preset's image or
    /// --image, on a network Perseus makes in 198.18.0.0/15; the engine's socket is
    /// DOCKER_HOST's, or CONTAINER_HOST's for podman, else the usual one) [default: lab]
    #[arg(long, value_name = "lab|docker|podman")]
    pub backend: Option<perseus::spec::Backend>,
    /// The servers' image on a container backend, e.g. to measure an older version; it
    /// must be there already (docker pull IMAGE) [default: the preset's, in perseus list]
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
}

#[derive(Args)]
pub struct DiskArg {
    /// What each node's data directory sits on: plain (this machine's file system), or
    /// faulty (a layer Perseus serves over it, which disk-stall, disk-slow, disk-error,
    /// disk-full and lose-unsynced make sick; writes are held in memory until synced, as
    /// a kernel's page cache holds them) [default: plain]
    #[arg(long, value_name = "plain|faulty")]
    pub disk: Option<perseus::spec::Disk>,
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
    #[command(flatten)]
    pub hosts: HostsArgs,
    #[command(flatten)]
    pub disk: DiskArg,
    #[command(flatten)]
    pub compose: ComposeArgs,
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
    /// Play the scenario (or the seed's timeline) again and again, back to back: N passes
    /// (3), or for a time (24h: a pass starts while it can end within it). Each pass
    /// starts healed; each fault gets its own figures, and the summary their spread
    /// (median, p90, max) [default: the scenario's repeat or until, else once]
    #[arg(long = "loop", value_name = "N|DURATION", value_parser = Repeat::parse)]
    pub loop_passes: Option<Repeat>,
    /// Stop the run early, cleanly, when its record reaches this size (500M, 10G): the
    /// results then cover the run until that point and the exit code is 1. Whatever the
    /// limit, a run stops once the record's disk has less than 256 MB free
    /// [default: no limit]
    #[arg(long, value_name = "SIZE", value_parser = perseus::size::parse_size)]
    pub max_record_size: Option<u64>,
    /// Seed for `random` targets [default: a fresh one, saved in spec.json]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run against a cluster Perseus did not start, described by a cluster file (nodes,
    /// client, credentials, and your own fault commands, or ssh = per node for faults
    /// Perseus makes itself over SSH; see the README); --isolate names one of its nodes (or,
    /// over SSH, leader or follower) [default: the second]; a --scenario names its nodes too
    #[arg(long, value_name = "FILE", conflicts_with_all = ["database", "nodes", "lab", "bin_dir", "skip_warmup", "spec", "set", "backend", "image", "compose"])]
    pub cluster: Option<PathBuf>,
    /// Run the same spec N times, each on a fresh lab, into DIR/1 … DIR/N; DIR gets each
    /// figure's distribution over the runs (min, median, p90, max and every run's value) in
    /// summary.json, report.md and report.html [default: 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: Option<u32>,
    /// With --repeat: bring the lab up once and run every repeat on it, each once every
    /// node serves steadily again (faster; the runs then share the database's history)
    #[arg(long, requires = "repeat", conflicts_with = "cluster")]
    pub same_lab: bool,
    /// Change a server setting from the preset's, NAME=VALUE (repeatable): the ones that
    /// govern failover and catch-up, e.g. election-timeout=500 for etcd,
    /// innodb_flush_log_at_trx_commit=2 for Galera; perseus list settings shows them all
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,
    /// Print the results as JSON on standard output (DIR's summary.json: one run's, or the
    /// repeat's); the live table and progress go to standard error
    #[arg(long)]
    pub json: bool,
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
    #[arg(long, value_name = "HOW", value_parser = choices(ReadFrom::ALL, ReadFrom::name))]
    pub read_from: Option<ReadFrom>,
    /// How each writer writes its incremented value back: blind (set it, as the seed did)
    /// or cas (compare-and-set: only if the key still holds what was read; a failed compare
    /// counts as an error, and a timed-out write can no longer land late over newer ones)
    /// [default: blind]
    #[arg(long, value_name = "MODE", value_parser = choices(WriteMode::ALL, WriteMode::name))]
    pub write: Option<WriteMode>,
    /// Cap each node's client at this many read → increment → write cycles a second
    /// (500/s, or 500), to reproduce a slower client such as the seed's; the report states
    /// the rate achieved [default: as fast as the database answers]
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    pub rate: Option<u32>,
}

fn parse_rate(text: &str) -> Result<u32, String> {
    let n = text.strip_suffix("/s").unwrap_or(text);
    match n.parse::<u32>() {
        Ok(r) if (1..=1_000_000).contains(&r) => Ok(r),
        _ => Err("a rate is cycles a second per node, 1 to 1000000: 500/s".into()),
    }
}

/// A parser for one of a closed set of choices, which help lists as possible values.
fn choices<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(all.iter().map(|c| name(*c))).map(move |s| {
        *all.iter()
            .find(|c| name(**c) == s)
            .expect("a listed choice")
    })
}

/// The observers the flags ask for.
pub fn observers(o: &WorkloadArgs) -> Option<ReadFrom> {
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
    #[command(flatten)]
    pub hosts: HostsArgs,
    #[command(flatten)]
    pub disk: DiskArg,
    /// Change a server setting from the preset's, NAME=VALUE (repeatable): the ones that
    /// govern failover and catch-up, e.g. election-timeout=500 for etcd,
    /// innodb_flush_log_at_trx_commit=2 for Galera; perseus list settings shows them all
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,
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
    /// Watch a cluster Perseus did not start with this database's client (with --node, or
    /// --compose)
    #[arg(long, value_name = "DB")]
    pub db: Option<String>,
    /// A node of that cluster, as NAME=HOST:PORT; once per node
    #[arg(long, value_name = "NAME=HOST:PORT", requires = "db")]
    pub node: Vec<String>,
    #[command(flatten)]
    pub compose: ComposeArgs,
    /// With --compose: the engine, docker or podman [default: docker]
    #[arg(long, value_name = "docker|podman", requires = "compose")]
    pub backend: Option<perseus::spec::Backend>,
    /// The name `perseus mark --cluster NAME` reaches this watch by (with --db)
    #[arg(long, default_value = "external", requires = "db")]
    pub name: String,
    /// Longest wait for one request; past it the request counts as unknown
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Results directory for the record and the table [default: runs/watch-LAB-YYYYmmdd-HHMMSS]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Stop the watch, cleanly, when its record reaches this size (500M, 10G); whatever
    /// the limit, it stops once the record's disk has less than 256 MB free [default: no
    /// limit]
    #[arg(long, value_name = "SIZE", value_parser = perseus::size::parse_size)]
    pub max_record_size: Option<u64>,
    #[command(flatten)]
    pub workload: WorkloadArgs,
}

#[derive(Args)]
pub struct ExportArgs {
    /// A results directory, or a record file (record.bin.zst, or an older record.txt.zst or
    /// record.txt)
    pub path: PathBuf,
    /// jsonl: the header, then one JSON object per event; csv: one row per event under a
    /// header row; text: the record as plain text, a line per event (format 3, which
    /// perseus report reads too)
    #[arg(long, default_value = "jsonl", value_name = "FORMAT",
          value_parser = choices(Format::ALL, Format::name))]
    pub format: Format,
    /// Write into FILE (whole, or not at all) instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct ReportArgs {
    /// A results directory (with its record, compressed or plain), or a client log in the seed's format
    pub path: PathBuf,
    /// Print the rewritten summary.json on standard output instead of the tables
    #[arg(long)]
    pub json: bool,
}
