//! `perseus matrix`: every database × scenario (× swept setting) repeated on a lab of its
//! own, and the seed's table of their figures. Everything is checked before the first lab
//! starts; a row a database cannot play is skipped and said under the table; lost writes
//! or a failed expectation in a row are findings, and the matrix goes on.

use super::repeat::{self, Subject};
use super::run::{judge, Judged};
use crate::analysis::Analysis;
use crate::error::{Error, Result};
use crate::report::{self, matrix::Cell, matrix::Description, matrix::Plan, matrix::Row};
use crate::spec::{Flags, Spec};
use crate::watch::Echo;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The rows of a matrix, checked: each cell's spec, and the rows a database cannot play.
#[derive(Debug)]
pub struct Planned {
    pub cells: Vec<(Cell, Spec)>,
    /// `database × scenario: why`, for each row left out.
    pub skipped: Vec<String>,
}

/// The rows of `described`, each a spec with `flags` over it (the workload's settings, the
/// timeout, the binaries), every database through the [`preflight`](super::run::preflight)
/// before anything runs.
pub fn plan(described: &Description, flags: &Flags, say: impl Fn(String)) -> Result<Planned> {
    for name in &described.databases {
        // Each row's own settings are checked with its spec, below.
        let none = Default::default();
        super::run::preflight(
            name,
            flags.bin_dir.as_deref(),
            &none,
            flags.backend.unwrap_or_default(),
            "perseus matrix",
            &say,
        )?;
    }
    let mut planned = Planned {
        cells: Vec::new(),
        skipped: Vec::new(),
    };
    for mut cell in described.cells()? {
        let mut scenario = crate::scenario::Scenario::load(&cell.scenario, Some(3))?;
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
                )));
            }
            for (p, d) in scenario.phases.iter_mut().zip(&cell.phases) {
                p.duration = *d;
            }
        }
        let mut spec = Spec {
            database: name.clone(),
            scenario: Some(scenario),
            set: cell.set.clone(),
            ..Spec::default()
        };
        flags.apply(&mut spec, false)?;
        // A scenario a database cannot play (the leader of one where no node leads) is a
        // row it does not have, said once here and under the table.
        match spec.validate() {
            Ok(()) => planned.cells.push((cell, spec)),
            Err(e @ Error::Invalid(_)) => {
                say(format!("skipping {name} × {}: {e}", cell.label()));
                planned
                    .skipped
                    .push(format!("{name} × {}: {e}", cell.label()));
            }
            Err(e) => return Err(e),
        }
    }
    if planned.cells.is_empty() {
        return Err(Error::Invalid(
            "no database can play any of the scenarios".into(),
        ));
    }
    Ok(planned)
}

/// The plan saved in the matrix's directory, so that runs of another matrix are never
/// mixed into it: its databases, scenarios, repeat and `flags`, and its rows where they are
/// more than databases × scenarios (sweeps, a database's own phases).
fn saved_plan(described: &Description, planned: &Planned, flags: &Flags) -> Plan {
    let phases: Vec<String> = described
        .phases
        .iter()
        .map(|d| crate::clock::format_duration(*d))
        .collect();
    let plain = described.sweep.is_empty() && described.per_db.is_empty();
    let rows = if plain {
        String::new()
    } else {
        let rows: Vec<String> = planned
            .cells
            .iter()
            .map(|(c, _)| {
                let p: Vec<String> = c
                    .phases
                    .iter()
                    .map(|d| crate::clock::format_duration(*d))
                    .collect();
                format!("{}:{}:{}:{:?}", c.database, c.label(), p.join(","), c.set)
            })
            .collect();
        format!(" rows={}", rows.join(";"))
    };
    Plan {
        databases: described.databases.clone(),
        scenarios: described.scenarios.clone(),
        repeat: described.repeat,
        settings: format!(
            "phases={} timeout={:?} write={} observers={:?}{}{}",
            phases.join(","),
            flags.timeout,
            flags.write.unwrap_or_default(),
            flags.observers,
            flags.rate.map_or(String::new(), |r| format!(" rate={r}/s")),
            rows
        ),
    }
}

/// An error, with where in the matrix it happened.
fn at(what: &str) -> impl FnOnce(Error) -> (String, Error) + '_ {
    move |e| (what.to_string(), e)
}

/// What a matrix did.
pub struct Played {
    pub rows: Vec<Row>,
    /// The seed's table (with the rows left out under it), as written into `table.md`.
    pub markdown: String,
    /// The tables written: markdown, HTML, CSV.
    pub files: Vec<PathBuf>,
    /// Lost writes or violations over every row, where a row had any.
    pub lost: u64,
    pub violations: u64,
    /// Expectations that did not hold, and all there were, over every row.
    pub expectations: (usize, usize),
}

/// Plays every row of `planned` into `out` (a directory per row, each a repeat on a lab of
/// its own), then writes the table. `ran` hears each run's analysis, `row` each row's
/// directory, repeat and expectations once it ends; `echo` gives each run's live table its
/// way out. A run that fails stops the
/// matrix: its error comes back with the row and run it stopped.
#[allow(clippy::too_many_arguments)]
pub async fn play(
    described: &Description,
    planned: &Planned,
    flags: &Flags,
    out: &Path,
    stop: CancellationToken,
    say: impl Fn(String) + Copy,
    echo: impl Fn() -> Option<Echo>,
    ran: impl Fn(&Analysis),
    row: impl Fn(&Path, &repeat::Repeated, Option<&Judged>),
) -> std::result::Result<Played, (String, Error)> {
    saved_plan(described, planned, flags)
        .begin(out)
        .map_err(at("the plan"))?;
    let lab = format!("mx-{}", std::process::id());
    let mut played = Played {
        rows: Vec::new(),
        markdown: String::new(),
        files: Vec::new(),
        lost: 0,
        violations: 0,
        expectations: (0, 0),
    };
    let n = planned.cells.len();
    for (i, (cell, spec)) in planned.cells.iter().enumerate() {
        let scenario = cell.label();
        let dir = cell.dir(out);
        let label = format!("row {} of {n}: {} × {scenario}", i + 1, spec.database);
        say(format!("{label}, {} runs", described.repeat));
        let r = repeat::repeat(
            spec,
            Subject::Lab(lab.clone()),
            &dir,
            described.repeat,
            stop.clone(),
            say,
            &echo,
            &ran,
        )
        .await
        .map_err(at(&label))?;
        if let Some((name, e)) = r.failed {
            return Err((format!("{label}, run {name} of {}", described.repeat), e));
        }
        played.lost += r.lost;
        played.violations += r.violations;
        let judged = judge(spec, &dir).map_err(at(&label))?;
        if let Some(j) = &judged {
            played.expectations.0 += j.failed.len();
            played.expectations.1 += j.expect.len();
        }
        row(&dir, &r, judged.as_ref());
        played.rows.push(Row {
            database: spec.database.clone(),
            scenario,
            dir: dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            repeat: r.repeat.ok_or_else(|| {
                (
                    label.clone(),
                    Error::Invalid(format!("{}: no run ended", dir.display())),
                )
            })?,
        });
    }
    write_tables(&mut played, &planned.skipped, out).map_err(at("the table"))?;
    Ok(played)
}

/// Writes the seed's table of `played` into `out` as markdown, HTML and CSV.
fn write_tables(played: &mut Played, skipped: &[String], out: &Path) -> Result<()> {
    let machine = report::matrix::machine();
    let date = chrono::Local::now().format("%Y-%m-%d").to_string();
    let mut md = report::matrix::markdown(&played.rows, &machine, &date);
    for s in skipped {
        md.push_str(&format!("\nNot played: {s}\n"));
    }
    let files = ["table.md", "table.html", "table.csv"].map(|f| out.join(f));
    crate::files::write(&files[0], &md)?;
    crate::files::write(
        &files[1],
        report::matrix::html(&played.rows, &machine, &date),
    )?;
    crate::files::write(&files[2], report::json::matrix_csv(&played.rows))?;
    played.markdown = md;
    played.files = files.to_vec();
    Ok(())
}
