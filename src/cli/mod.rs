//! The command line: [`args`] parses it into a command, this module carries the command out
//! through the library, and [`render`] shows what it returned.

use anyhow::{Context, Result};
use perseus::db;
use perseus::experiment::Subject;
use perseus::fault::Action;
use perseus::lab::{self, process, LabState};
use perseus::spec::{Flags, Spec};
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
mod experiment;
mod labs;
mod render;
mod results;

pub use args::{command, parse, Invocation};
use args::{
    observers, BenchCommand, CheckArgs, Command, CompareArgs, DownArgs, ExportArgs, LabArg,
    MarkArgs, MatrixArgs, RunArgs, UpArgs, WatchArgs,
};
use experiment::{check, conclude, matrix, run, verdict};
use labs::{down, fault, remote_heal, remote_status, status, up, watch};
pub use render::say;
use render::{list, stdout_echo};
use results::{compare, export, report_cmd};

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
        Command::Run(a) => run(*a, stop).await,
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
        // Served by `main` before any runtime starts.
        Command::DiskLayer(a) => Ok(perseus::disk::serve(&a.backing, &a.mount, &a.socket)?),
    }
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
        BenchCommand::Disk {
            database,
            length,
            rounds,
        } => bench::disk(db::preset(&database)?, length, rounds.max(1), &stop).await?,
        BenchCommand::Lab {
            database,
            nodes,
            repeat,
            hosts,
        } => {
            let db = db::preset(&database)?;
            let spec = perseus::spec::Spec {
                backend: hosts.backend.unwrap_or_default(),
                image: hosts.image,
                ..Default::default()
            };
            let beside = match spec.hosts(db)? {
                lab::Hosts::Namespaces => None,
                containers => Some(containers),
            };
            bench::lab(db, nodes, repeat.max(1), beside).await?
        }
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
