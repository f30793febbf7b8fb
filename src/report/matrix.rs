//! `perseus matrix`: the seed's table regenerated, one row per database and scenario, each
//! cell the distribution of that figure over the repeated runs of that row.

use super::repeat::{Repeat, Stats};
use super::svg::esc;
use crate::analysis::METRICS;
use crate::db::failover::{DISTURBANCE, DOWNTIME, DOWNTIME_ON_RECOVERY, RECOVERY};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a matrix is: saved as `matrix.json` in its directory, so that running it again
/// continues it (and a different one is refused there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub databases: Vec<String>,
    /// The scenarios by the name or file the user gave.
    pub scenarios: Vec<String>,
    pub repeat: u32,
    /// Every other setting of the runs, as `perseus run` flags would give them.
    pub settings: String,
}

impl Plan {
    /// Saves the plan in `dir`, or checks that `dir` holds the same one.
    pub fn begin(&self, dir: &Path) -> Result<()> {
        let path = dir.join("matrix.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let saved: Option<Plan> = serde_json::from_str(&text).ok();
            if saved.as_ref() != Some(self) {
                return Err(Error::Invalid(format!(
                    "{} holds another matrix (its matrix.json differs); choose another --out",
                    dir.display()
                )));
            }
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
        let json = serde_json::to_string_pretty(self).expect("a plan serialises");
        crate::files::write(&path, json + "\n")
    }
}

/// What a matrix runs, from its flags or from a `--matrix FILE`: every database × scenario
/// × sweep of settings, each with its phases.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description {
    pub databases: Vec<String>,
    pub scenarios: Vec<String>,
    pub repeat: u32,
    /// Every scenario's phase durations, in order (empty: the scenarios' own).
    pub phases: Vec<Duration>,
    /// Settings to sweep (`--set NAME=V1,V2`): each applies to the databases that have it,
    /// and each of its values makes rows of their own.
    pub sweep: BTreeMap<String, Vec<String>>,
    /// What one database does differently, by name.
    pub per_db: BTreeMap<String, PerDatabase>,
}

/// A database's own part of a matrix file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerDatabase {
    /// Its phase durations (`["10s", "60s", "60s"]`), over the matrix's.
    #[serde(default, deserialize_with = "durations")]
    pub phases: Vec<Duration>,
    /// Settings for it alone: a value, or a list of values to sweep.
    #[serde(default)]
    pub set: BTreeMap<String, OneOrMany>,
}

/// A setting's value, or values to sweep: a string, number or boolean, or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany(Vec<String>);

impl OneOrMany {
    fn values(&self) -> Vec<String> {
        self.0.clone()
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use toml::Value;
        let scalar = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Integer(i) => Some(i.to_string()),
            Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        };
        let bad = || {
            serde::de::Error::custom(
                "a setting takes a value or a list of values (quote a name with a dot: \"gcache.size\" = \"128M\")",
            )
        };
        match Value::deserialize(d)? {
            Value::Array(items) => items
                .iter()
                .map(|i| scalar(i).ok_or_else(bad))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(OneOrMany),
            v => scalar(&v).map(|s| OneOrMany(vec![s])).ok_or_else(bad),
        }
    }
}

fn durations<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<Duration>, D::Error> {
    let texts: Vec<String> = Vec::deserialize(d)?;
    texts
        .iter()
        .map(|t| crate::clock::parse_duration(t).map_err(serde::de::Error::custom))
        .collect()
}

/// A matrix file (`perseus matrix --matrix FILE`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    databases: Vec<String>,
    #[serde(default = "isolate")]
    scenarios: Vec<String>,
    #[serde(default = "three")]
    repeat: u32,
    #[serde(default, deserialize_with = "durations")]
    phases: Vec<Duration>,
    #[serde(default)]
    set: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    db: BTreeMap<String, PerDatabase>,
}

fn isolate() -> Vec<String> {
    vec!["isolate".into()]
}

fn three() -> u32 {
    3
}

/// One cell of a matrix: a row of its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub database: String,
    pub scenario: String,
    pub phases: Vec<Duration>,
    /// The settings of this row (from the sweep and the database's own).
    pub set: crate::db::knob::Overrides,
    /// What tells this row from the others of its database and scenario: the swept
    /// settings, `name=value …`; empty without a sweep.
    pub variant: String,
}

impl Cell {
    /// The row's name in the table and in its directory's name: `scenario` or
    /// `scenario name=value`.
    pub fn label(&self) -> String {
        if self.variant.is_empty() {
            self.scenario.clone()
        } else {
            format!("{} {}", self.scenario, self.variant)
        }
    }

    /// The row's directory in the matrix's `dir`: `DATABASE-SCENARIO[-name=value…]`.
    pub fn dir(&self, dir: &Path) -> PathBuf {
        let mut name = format!("{}-{}", self.database, self.scenario);
        if !self.variant.is_empty() {
            name.push('-');
            name.push_str(&self.variant.replace(' ', "-"));
        }
        dir.join(name)
    }
}

impl Description {
    /// Reads a matrix file: `databases`, `scenarios`, `repeat`, `phases`, `set` (a value or
    /// a list to sweep, for every database that has the setting) and, per database,
    /// `[db.NAME]` with its own `phases` and `set`.
    pub fn from_toml(text: &str, path: &Path) -> Result<Description> {
        let f: File = toml::from_str(text).map_err(|e| Error::Malformed {
            what: "matrix file".into(),
            path: path.to_path_buf(),
            line: e
                .span()
                .map_or(0, |s| text[..s.start].lines().count().max(1)),
            why: e.message().to_string(),
        })?;
        if !(1..=1000).contains(&f.repeat) {
            return Err(Error::Invalid(format!(
                "{}: repeat = {}: 1 to 1000 runs per row",
                path.display(),
                f.repeat
            )));
        }
        for name in f.db.keys() {
            if !f.databases.contains(name) {
                return Err(Error::Invalid(format!(
                    "{}: [db.{name}], but {name} is not in databases",
                    path.display()
                )));
            }
        }
        Ok(Description {
            databases: f.databases,
            scenarios: f.scenarios,
            repeat: f.repeat,
            phases: f.phases,
            sweep: f.set.iter().map(|(k, v)| (k.clone(), v.values())).collect(),
            per_db: f.db,
        })
    }

    /// Every cell, database by database, scenario by scenario, then each combination of the
    /// swept values that database has. A swept setting no database of the matrix has is an
    /// error, as is a database's own setting it does not have.
    pub fn cells(&self) -> Result<Vec<Cell>> {
        let mut out = Vec::new();
        let mut used: std::collections::BTreeSet<String> = Default::default();
        for name in &self.databases {
            let db = crate::db::preset(name)?;
            let has = |k: &str| db.knobs().iter().any(|n| n.name == k);
            let own = self.per_db.get(name).cloned().unwrap_or_default();
            // The combinations of this database's swept settings, in name order.
            let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
            let mut sweeps: BTreeMap<String, Vec<String>> = self
                .sweep
                .iter()
                .filter(|(k, _)| has(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in &own.set {
                if !has(k) {
                    return Err(Error::Invalid(format!(
                        "[db.{name}] set {k}: {name} has no such setting (perseus list settings)"
                    )));
                }
                sweeps.insert(k.clone(), v.values());
            }
            for (k, values) in &sweeps {
                used.insert(k.clone());
                if values.is_empty() {
                    return Err(Error::Invalid(format!("set {k}: no values")));
                }
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        values.iter().map(move |v| {
                            let mut c = c.clone();
                            c.push((k.clone(), v.clone()));
                            c
                        })
                    })
                    .collect();
            }
            for scenario in &self.scenarios {
                for combo in &combos {
                    let set: crate::db::knob::Overrides = combo.iter().cloned().collect();
                    crate::db::knob::check(name, db.knobs(), &set)?;
                    let variant = combo
                        .iter()
                        .filter(|(k, _)| sweeps.get(k).is_some_and(|v| v.len() > 1))
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ");
                    out.push(Cell {
                        database: name.clone(),
                        scenario: scenario.clone(),
                        phases: if own.phases.is_empty() {
                            self.phases.clone()
                        } else {
                            own.phases.clone()
                        },
                        set,
                        variant,
                    });
                }
            }
        }
        if let Some(k) = self.sweep.keys().find(|k| !used.contains(*k)) {
            return Err(Error::Invalid(format!(
                "--set {k}: none of {} has this setting (perseus list settings)",
                self.databases.join(", ")
            )));
        }
        Ok(out)
    }
}

/// One row of the table.
pub struct Row {
    pub database: String,
    /// The scenario, with the swept settings of the row if any.
    pub scenario: String,
    /// Its directory's name in the matrix's (see [`Cell::dir`]).
    pub dir: String,
    pub repeat: Repeat,
}

/// A cell: the median of the figure in seconds with its range over the runs,
/// `median (min–max)`; just the value when every run agrees; `; n/a ×k` after it when k runs
/// did not measure it, `n/a` when none did.
fn seconds(s: Option<&Stats>) -> String {
    let Some(s) = s else {
        return "n/a".into();
    };
    let f = |ms: u64| format!("{:.1}", ms as f64 / 1000.0);
    let missing = s.values.iter().filter(|v| v.is_none()).count();
    let cell = match (s.median, s.min, s.max) {
        // Runs that differ by less than the tenth of a second shown agree.
        (Some(m), Some(lo), Some(hi)) if f(lo) == f(hi) => f(m),
        (Some(m), Some(lo), Some(hi)) => format!("{} ({}–{})", f(m), f(lo), f(hi)),
        _ => return "n/a".into(),
    };
    // Runs without a value (never steady again) are said, not left out silently.
    match missing {
        0 => cell,
        k => format!("{cell}; n/a ×{k}"),
    }
}

fn count(s: Option<&Stats>) -> String {
    match s.map(|s| (s.median, s.min, s.max)) {
        Some((Some(m), Some(lo), Some(hi))) if lo == hi => super::thousands(m),
        Some((Some(m), Some(lo), Some(hi))) => format!(
            "{} ({}–{})",
            super::thousands(m),
            super::thousands(lo),
            super::thousands(hi)
        ),
        _ => "n/a".into(),
    }
}

/// The header and the cells of each row.
fn cells(rows: &[Row]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header: Vec<String> = ["database", "version", "scenario", "runs"]
        .map(String::from)
        .to_vec();
    header.extend(METRICS.iter().map(|m| format!("{} (s)", m.short)));
    header.push("lost ack. writes".into());
    header.push("expected (s)".into());
    let body = rows
        .iter()
        .map(|r| {
            let f = &r.repeat.figures;
            let mut c = vec![
                r.database.clone(),
                r.repeat.database_versions.join(", "),
                r.scenario.clone(),
                r.repeat.runs.len().to_string(),
            ];
            c.extend(METRICS.iter().map(|m| {
                let key = format!("{}_ms", m.key);
                let outside = r.repeat.expected.get(&key).map_or(0, |e| e.outside.len());
                let cell = seconds(f.get(&key));
                if outside > 0 {
                    format!("{cell} †{outside}")
                } else {
                    cell
                }
            }));
            c.push(count(f.get("lost_acknowledged_writes")));
            c.push(expected_cell(&r.repeat));
            c
        })
        .collect();
    (header, body)
}

/// The expected ranges of a row's downtime on isolation and disturbance, `low–high / low–high`
/// in seconds, then after ` · ` those of its downtime on recovery and recovery time where a
/// model bounds them (`—` for one it does not); each distinct cell once with its number of
/// runs where they differ; `—` where no model spoke.
fn expected_cell(r: &Repeat) -> String {
    use super::expected::range_s;
    let range = |key: &str, k: usize| -> Option<String> {
        let [lo, hi] = r
            .expected
            .get(&format!("{key}_ms"))?
            .ranges
            .get(k)
            .copied()
            .flatten()?;
        Some(range_s(lo, hi))
    };
    let mut pairs: Vec<(String, usize)> = Vec::new();
    for k in 0..r.runs.len() {
        let (Some(d), Some(t)) = (range(DOWNTIME, k), range(DISTURBANCE, k)) else {
            continue;
        };
        let mut pair = format!("{d} / {t}");
        let (rd, rt) = (range(DOWNTIME_ON_RECOVERY, k), range(RECOVERY, k));
        if rd.is_some() || rt.is_some() {
            let dash = || "—".to_string();
            pair.push_str(&format!(
                " · {} / {}",
                rd.unwrap_or_else(dash),
                rt.unwrap_or_else(dash)
            ));
        }
        match pairs.iter_mut().find(|(p, _)| *p == pair) {
            Some((_, n)) => *n += 1,
            None => pairs.push((pair, 1)),
        }
    }
    match pairs.len() {
        0 => "—".into(),
        1 => pairs.remove(0).0,
        _ => pairs
            .iter()
            .map(|(p, n)| format!("{p} ×{n}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Under the table: what the expected column and the † marks mean, and each database's
/// model in a sentence with its source.
fn expected_notes(rows: &[Row]) -> String {
    let mut models: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for r in rows {
        for e in r.repeat.expected.values() {
            let db = &r.repeat.database;
            let i = match models.iter().position(|(d, _, _)| d == db) {
                Some(i) => i,
                None => {
                    models.push((db.clone(), Vec::new(), Vec::new()));
                    models.len() - 1
                }
            };
            for w in &e.why {
                if !models[i].1.contains(w) {
                    models[i].1.push(w.clone());
                }
            }
            if !models[i].2.contains(&e.source) {
                models[i].2.push(e.source.clone());
            }
        }
    }
    if models.is_empty() {
        return String::new();
    }
    let mut t = "\nExpected: the range of downtime on isolation / disturbance, and after ` · ` of downtime on recovery / recovery time (— where the model gives none), that the database's failover model derives from the timeouts it ran with, from what the node cut off was (leader or not) and from how long it was cut off, per run; ×k: k runs had that range. †k: k runs fell outside their range (the row's report.md names them).\n\n".to_string();
    for (db, whys, sources) in models {
        t.push_str(&format!(
            "- {db} ({}): {}.\n",
            sources.join("; "),
            whys.join("; ")
        ));
    }
    t
}

/// The table in markdown, under a line that says where and when it was measured.
pub fn markdown(rows: &[Row], machine: &str, date: &str) -> String {
    let (header, body) = cells(rows);
    let mut t = format!(
        "Measured on {machine}, {date}. Each cell: median (min–max) over the runs, in seconds (from the operation history); lost ack. writes: acknowledged writes the database no longer held.\n\n| {} |\n|{}|\n",
        header.join(" | "),
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if i < 3 { "---" } else { "---:" })
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in body {
        let row: Vec<String> = row.iter().map(|c| super::md(c)).collect();
        t.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    t.push_str(&expected_notes(rows));
    t
}

/// The table as a page, each row linked to its repeat's report.
pub fn html(rows: &[Row], machine: &str, date: &str) -> String {
    let (header, body) = cells(rows);
    let mut b = format!(
        "<h1>Perseus: the seed's table</h1><p class=\"lead\">Measured on {}, {}. Each cell: median (min–max) over the runs, in seconds.</p><table><tr>",
        esc(machine),
        esc(date)
    );
    for h in &header {
        b.push_str(&format!("<th>{}</th>", esc(h)));
    }
    b.push_str("</tr>");
    for (r, cells) in rows.iter().zip(body) {
        b.push_str("<tr>");
        for (i, c) in cells.iter().enumerate() {
            if i == 2 {
                b.push_str(&format!(
                    "<td><a href=\"{}/report.html\">{}</a></td>",
                    esc(&r.dir),
                    esc(c)
                ));
            } else {
                b.push_str(&format!("<td>{}</td>", esc(c)));
            }
        }
        b.push_str("</tr>");
    }
    b.push_str("</table>");
    let notes = expected_notes(rows);
    if !notes.is_empty() {
        b.push_str(&format!("<pre>{}</pre>", esc(notes.trim())));
    }
    super::html::page("Perseus: the seed's table", &b)
}

/// This machine in a few words: processor, cores and memory (from `/proc`).
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("an unknown processor".to_string(), |(_, m)| {
            m.trim().to_string()
        });
    let cores = cpu.lines().filter(|l| l.starts_with("processor")).count();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(String::new(), |kib| {
            format!(", {} GiB", (kib + (1 << 19)) >> 20)
        });
    format!("{model}, {cores} cores{mem}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn repeat(values: &[(&str, Vec<Option<u64>>)]) -> Repeat {
        Repeat {
            format: super::super::repeat::FORMAT.into(),
            version: 2,
            database: "etcd".into(),
            database_versions: vec!["3.4.23".into()],
            write: "blind".into(),
            runs: vec!["1".into(), "2".into(), "3".into()],
            roles: vec![Some("leader".into()); 3],
            expected: BTreeMap::new(),
            figures: values
                .iter()
                .map(|(k, v)| (k.to_string(), Stats::of(v.clone())))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_cell_is_the_median_with_its_range_in_seconds() {
        let r = repeat(&[
            (
                "downtime_on_isolation_ms",
                vec![Some(1662), Some(2100), Some(1200)],
            ),
            ("recovery_time_ms", vec![Some(3000), Some(2980), Some(3040)]),
            (
                "downtime_on_recovery_ms",
                vec![Some(1000), None, Some(3000)],
            ),
            ("disturbance_time_ms", vec![None, None, None]),
            ("lost_acknowledged_writes", vec![Some(0), Some(12), Some(0)]),
        ]);
        let rows = [Row {
            database: "etcd".into(),
            scenario: "isolate-leader".into(),
            dir: "etcd-isolate-leader".into(),
            repeat: r,
        }];
        let md = markdown(&rows, "a test machine", "2026-11-30");
        let line = md.lines().last().unwrap();
        assert!(
            line.starts_with("| etcd | 3.4.23 | isolate-leader | 3 | 1.7 (1.2–2.1) |"),
            "{line}"
        );
        assert!(
            line.contains("| 3.0 |"),
            "every run agrees: one value: {line}"
        );
        assert!(line.contains("| n/a |"), "{line}");
        assert!(line.contains("| 1.0 (1.0–3.0); n/a ×1 |"), "{line}");
        assert!(line.ends_with("| 0 (0–12) | — |"), "no model: {line}");
        assert!(md.starts_with("Measured on a test machine, 2026-11-30."));
        let page = html(&rows, "m", "d");
        assert!(page.contains("href=\"etcd-isolate-leader/report.html\""));
    }

    /// The expected column pairs each run's ranges; a figure outside its range is marked
    /// with the number of runs, and the notes say each database's model.
    #[test]
    fn expected_ranges_and_runs_outside_them_show_in_the_table() {
        use super::super::repeat::ExpectedRuns;
        let mut r = repeat(&[
            (
                "downtime_on_isolation_ms",
                vec![Some(0), Some(1900), Some(0)],
            ),
            ("disturbance_time_ms", vec![Some(0), Some(6700), Some(0)]),
        ]);
        let runs = |ranges: Vec<Option<[u64; 2]>>, outside: &[&str]| ExpectedRuns {
            ranges,
            outside: outside.iter().map(|s| s.to_string()).collect(),
            why: vec!["the followers campaign".into()],
            source: "https://etcd.io/docs/v3.4/tuning/".into(),
        };
        let ranges = vec![Some([0, 0]), Some([900, 3200]), Some([0, 0])];
        r.expected = [
            (
                "downtime_on_isolation_ms".to_string(),
                runs(ranges.clone(), &[]),
            ),
            ("disturbance_time_ms".to_string(), runs(ranges, &["2"])),
        ]
        .into();
        let rows = [Row {
            database: "etcd".into(),
            scenario: "isolate".into(),
            dir: "etcd-isolate".into(),
            repeat: r,
        }];
        let md = markdown(&rows, "m", "d");
        let line = md.lines().find(|l| l.starts_with("| etcd")).unwrap();
        assert!(
            line.ends_with("| 0.0 / 0.0 ×2; 0.9–3.2 / 0.9–3.2 ×1 |"),
            "{line}"
        );
        assert!(line.contains("| 0.0 (0.0–6.7) †1 |"), "{line}");
        assert!(
            line.contains("| 0.0 (0.0–1.9) |"),
            "within: no mark: {line}"
        );
        assert!(md.contains("- etcd (https://etcd.io/docs/v3.4/tuning/): the followers campaign."));
    }

    /// A matrix file: a database's own phases, a sweep for the database that has the
    /// setting, and rows named by their swept values.
    #[test]
    fn a_matrix_file_sweeps_settings_and_gives_each_database_its_phases() {
        let text = r#"
databases = ["etcd", "galera"]
scenarios = ["isolate"]
repeat = 2
phases = ["10s", "20s", "20s"]

[db.galera]
phases = ["10s", "60s", "60s"]
set = { innodb_flush_log_at_trx_commit = [1, 2], "gcache.size" = "128M" }
"#;
        let d = Description::from_toml(text, Path::new("m.toml")).unwrap();
        assert_eq!(d.repeat, 2);
        let cells = d.cells().unwrap();
        let labels: Vec<String> = cells
            .iter()
            .map(|c| format!("{} {}", c.database, c.label()))
            .collect();
        assert_eq!(
            labels,
            [
                "etcd isolate",
                "galera isolate innodb_flush_log_at_trx_commit=1",
                "galera isolate innodb_flush_log_at_trx_commit=2",
            ]
        );
        assert_eq!(cells[0].phases[1], Duration::from_secs(20));
        assert_eq!(cells[1].phases[1], Duration::from_secs(60));
        assert_eq!(
            cells[2].set["gcache.size"], "128M",
            "a single value is set, not swept"
        );
        assert_eq!(
            cells[2].dir(Path::new("m")),
            Path::new("m/galera-isolate-innodb_flush_log_at_trx_commit=2")
        );
        assert_eq!(cells[0].dir(Path::new("m")), Path::new("m/etcd-isolate"));

        // The same sweep from flags; a setting nobody has, or a bad value, is refused.
        let flags = |k: &str, v: &[&str]| Description {
            databases: vec!["etcd".into(), "zookeeper".into()],
            scenarios: vec!["isolate".into()],
            repeat: 1,
            sweep: [(k.to_string(), v.iter().map(|s| s.to_string()).collect())].into(),
            ..Description::default()
        };
        let cells = flags("syncLimit", &["2", "5"]).cells().unwrap();
        assert_eq!(cells.len(), 3, "etcd once, ZooKeeper per value");
        let e = flags("nope", &["1"]).cells().unwrap_err().to_string();
        assert!(
            e.contains("none of etcd, zookeeper has this setting"),
            "{e}"
        );
        let e = flags("syncLimit", &["x"]).cells().unwrap_err().to_string();
        assert!(e.contains("syncLimit takes a whole number"), "{e}");
        for (bad, says) in [
            ("databases = [\"etcd\"]\nrepeats = 2\n", "unknown field"),
            (
                "databases = [\"etcd\"]\n[db.galera]\n",
                "galera is not in databases",
            ),
            ("databases = [\"etcd\"]\nphases = [\"soon\"]\n", "soon"),
            (
                "databases = [\"galera\"]\n[db.galera]\nset = { gcache.size = \"1M\" }\n",
                "quote a name with a dot",
            ),
        ] {
            let e = Description::from_toml(bad, Path::new("m.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_directory_holds_one_plan() {
        let dir = std::env::temp_dir().join(format!("perseus-matrix-test-{}", std::process::id()));
        let plan = Plan {
            databases: vec!["etcd".into()],
            scenarios: vec!["isolate".into()],
            repeat: 2,
            settings: "--write cas".into(),
        };
        plan.begin(&dir).unwrap();
        plan.begin(&dir).unwrap();
        let other = Plan {
            repeat: 3,
            ..plan.clone()
        };
        let e = other.begin(&dir).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(e.contains("holds another matrix"), "{e}");
    }
}
