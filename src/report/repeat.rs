//! Repeated runs of one spec (`perseus run --repeat N`): each figure's distribution over
//! the runs, as `summary.json`, `report.md` and `report.html` of the directory that holds
//! the runs (`DIR/1`, `DIR/2`, …).

use super::summary::Summary;
use super::svg::esc;
use super::{thousands, SUMMARY_FILE};
use crate::analysis::METRICS;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The value of `format` in a repeat's `summary.json`.
pub const FORMAT: &str = "perseus-repeat";
/// The version of the repeat summary's layout (2: `repeat_version` is `version`; the runs'
/// roles and expected ranges; the runs' figures of summary version 2). The JSON Schema is
/// `docs/schema/repeat.schema.json`.
pub const REPEAT_VERSION: u32 = 2;

/// One figure over the runs. Quantiles are nearest-rank over the runs that have a value:
/// the median is the value at rank ⌈n/2⌉, p90 at ⌈0.9 n⌉ of the n sorted values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Stats {
    pub min: Option<u64>,
    pub median: Option<u64>,
    pub p90: Option<u64>,
    pub max: Option<u64>,
    /// Every run's value, in run order; `null`: not applicable in that run.
    pub values: Vec<Option<u64>>,
}

impl Stats {
    pub fn of(values: Vec<Option<u64>>) -> Stats {
        use crate::expect::Stat;
        let v: Vec<u64> = values.iter().flatten().copied().collect();
        Stats {
            min: Stat::Min.of(&v),
            median: Stat::Median.of(&v),
            p90: Stat::P90.of(&v),
            max: Stat::Max.of(&v),
            values,
        }
    }
}

/// The aggregate of repeated runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Repeat {
    /// Always [`FORMAT`]: what tells this file from one run's summary.
    pub format: String,
    #[serde(alias = "repeat_version")]
    pub version: u32,
    pub database: String,
    /// Every version the runs reported, once each.
    pub database_versions: Vec<String>,
    pub write: String,
    /// The runs' directories, relative to this one, in run order.
    pub runs: Vec<String>,
    /// Each figure of [`Summary::figures`] by key.
    pub figures: BTreeMap<String, Stats>,
    /// What the node each run's first fault hit was (`leader`, `follower`), in run order;
    /// `null`: not known.
    #[serde(default)]
    pub roles: Vec<Option<String>>,
    /// The figures a failover model bounds (`report::expected`), by key, over the runs.
    #[serde(default)]
    pub expected: BTreeMap<String, ExpectedRuns>,
}

/// One figure against its expected range over the runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExpectedRuns {
    /// Each run's range `[low, high]` in milliseconds, in run order; `null`: no model spoke.
    pub ranges: Vec<Option<[u64; 2]>>,
    /// The runs (by directory name) whose value fell outside their range.
    pub outside: Vec<String>,
    /// Why, once per distinct reason.
    pub why: Vec<String>,
    pub source: String,
}

/// Each bounded figure over `summaries` (run `names[k]` is `summaries[k]`).
fn expected_runs(summaries: &[Summary], names: &[String]) -> BTreeMap<String, ExpectedRuns> {
    let mut out: BTreeMap<String, ExpectedRuns> = BTreeMap::new();
    for (k, s) in summaries.iter().enumerate() {
        for e in &s.expected {
            let runs = out.entry(e.figure.clone()).or_insert_with(|| ExpectedRuns {
                ranges: vec![None; summaries.len()],
                outside: Vec::new(),
                why: Vec::new(),
                source: e.source.clone(),
            });
            runs.ranges[k] = Some([e.low_ms, e.high_ms]);
            if !e.within {
                runs.outside.push(names[k].clone());
            }
            if !runs.why.contains(&e.why) {
                runs.why.push(e.why.clone());
            }
        }
    }
    out
}

impl Repeat {
    /// The aggregate of the runs in `dir`'s subdirectories `names`, from their summaries.
    pub fn of(dir: &Path, names: &[String]) -> Result<Repeat> {
        let mut summaries = Vec::new();
        for name in names {
            let path = dir.join(name).join(SUMMARY_FILE);
            summaries.push(Summary::load(&path)?);
        }
        let first = summaries
            .first()
            .ok_or_else(|| Error::Invalid(format!("{}: no runs to aggregate", dir.display())))?;
        // Figures of different summary versions do not mean the same (version 2 changed
        // what steady is): never put them in one distribution.
        if let Some((k, s)) = summaries
            .iter()
            .enumerate()
            .find(|(_, s)| s.version != first.version)
        {
            return Err(Error::Invalid(format!(
                "{}: run {} has summary version {} and run {} version {}; rebuild every run with perseus report {}",
                dir.display(),
                names[0],
                first.version,
                names[k],
                s.version,
                dir.display()
            )));
        }
        let mut versions: Vec<String> = summaries
            .iter()
            .filter_map(|s| s.database_version.clone())
            .collect();
        versions.sort();
        versions.dedup();
        let per_run: Vec<BTreeMap<String, Option<u64>>> =
            summaries.iter().map(|s| s.figures()).collect();
        let keys: Vec<String> = per_run[0].keys().cloned().collect();
        let figures = keys
            .into_iter()
            .map(|k| {
                let values = per_run
                    .iter()
                    .map(|f| f.get(&k).copied().flatten())
                    .collect();
                (k, Stats::of(values))
            })
            .collect();
        Ok(Repeat {
            format: FORMAT.into(),
            version: REPEAT_VERSION,
            database: first.database.clone(),
            database_versions: versions,
            write: first.write.clone(),
            runs: names.to_vec(),
            figures,
            roles: summaries
                .iter()
                .map(|s| s.fault.as_ref().and_then(|f| f.role.clone()))
                .collect(),
            expected: expected_runs(&summaries, names),
        })
    }

    /// Reads a repeat's `summary.json`.
    pub fn load(path: &Path) -> Result<Repeat> {
        let text = crate::files::read_text(path)?;
        let repeat: Repeat = serde_json::from_str(&text).map_err(|e| Error::Malformed {
            what: "repeat summary".into(),
            path: path.to_path_buf(),
            line: e.line(),
            why: e.to_string(),
        })?;
        super::summary::check_version(repeat.version, REPEAT_VERSION, "repeat summary", path)?;
        Ok(repeat)
    }

    /// Writes `summary.json`, `report.md` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("a repeat serialises");
        crate::files::write(&dir.join(SUMMARY_FILE), json + "\n")?;
        crate::files::write(&dir.join(super::MARKDOWN_FILE), self.markdown())?;
        crate::files::write(&dir.join(super::HTML_FILE), page(self))
    }

    /// The distribution of every figure, one row each, as a markdown table.
    pub fn markdown(&self) -> String {
        let mut t = format!(
            "# {}, {} runs ({} writes)\n\n{}\n\n| figure | min | median | p90 | max | runs |\n|---|---:|---:|---:|---:|---|\n",
            super::md(&self.database),
            self.runs.len(),
            super::md(&self.write),
            super::md(&self.database_versions.join(", "))
        );
        for (label, key) in rows() {
            if let Some(s) = self.figures.get(&key) {
                let cells = [s.min, s.median, s.p90, s.max].map(show);
                let values: Vec<String> = s.values.iter().map(|v| show(*v)).collect();
                t.push_str(&format!(
                    "| {label} | {} | {} | {} | {} | {} |\n",
                    cells[0],
                    cells[1],
                    cells[2],
                    cells[3],
                    values.join(" ")
                ));
            }
        }
        for line in self.expected_text().lines() {
            match line.strip_prefix("- ") {
                Some(item) => t.push_str(&format!("- {}\n", super::md(item))),
                None => t.push_str(&format!("{}\n", super::md(line))),
            }
        }
        t
    }

    /// The bounded figures against their ranges, a few lines (nothing without a model).
    pub fn expected_text(&self) -> String {
        if self.expected.is_empty() {
            return String::new();
        }
        let roles: Vec<String> = self
            .runs
            .iter()
            .zip(&self.roles)
            .map(|(n, r)| format!("{n}: {}", r.as_deref().unwrap_or("no leader")))
            .collect();
        let mut t = format!(
            "\nAgainst {}'s failover model (the node cut off in each run was {}):\n\n",
            self.database,
            roles.join(", ")
        );
        let mut whys: Vec<&str> = Vec::new();
        for (key, e) in &self.expected {
            let ranges: Vec<String> = e
                .ranges
                .iter()
                .map(|r| r.map_or("-".into(), |[lo, hi]| super::expected::range_s(lo, hi)))
                .collect();
            t.push_str(&format!(
                "- {key}: expected (s) {}; {}\n",
                ranges.join(" "),
                if e.outside.is_empty() {
                    "every run within".to_string()
                } else {
                    format!("OUTSIDE in run {}", e.outside.join(", "))
                }
            ));
            for w in &e.why {
                if !whys.contains(&w.as_str()) {
                    whys.push(w);
                }
            }
        }
        for w in whys {
            t.push_str(&format!("- why: {w}\n"));
        }
        let mut sources: Vec<&str> = Vec::new();
        for e in self.expected.values() {
            if !sources.contains(&e.source.as_str()) {
                sources.push(&e.source);
                t.push_str(&format!("- source: {}\n", e.source));
            }
        }
        t
    }

    /// The terminal's table: each figure's min, median, p90 and max.
    pub fn terminal(&self) -> String {
        let mut t = format!(
            "{} runs of {} ({} writes)\n{:<44}{:>10}{:>10}{:>10}{:>10}\n",
            self.runs.len(),
            self.database,
            self.write,
            "figure",
            "min",
            "median",
            "p90",
            "max"
        );
        for (label, key) in rows() {
            if let Some(s) = self.figures.get(&key) {
                let [a, b, c, d] = [s.min, s.median, s.p90, s.max].map(show);
                t.push_str(&format!("{label:<44}{a:>10}{b:>10}{c:>10}{d:>10}\n"));
            }
        }
        for line in self.expected_text().lines() {
            match line.strip_prefix("- ") {
                Some(item) => t.push_str(&format!("- {}\n", super::md(item))),
                None => t.push_str(&format!("{}\n", super::md(line))),
            }
        }
        t
    }
}

fn show(v: Option<u64>) -> String {
    v.map_or("n/a".into(), thousands)
}

/// The figures in the order tables show them, with their labels: each metric in
/// milliseconds, then what was lost and the violations.
pub fn rows() -> Vec<(String, String)> {
    let mut r: Vec<(String, String)> = METRICS
        .iter()
        .map(|m| (format!("{} (ms)", m.label), format!("{}_ms", m.key)))
        .collect();
    r.extend(
        [
            ("lost acknowledged writes", "lost_acknowledged_writes"),
            ("of them overwritten by late writes", "lost_to_late_writes"),
            ("violations", "violations"),
            ("figures outside their expected range", "outside_expected"),
        ]
        .map(|(l, k)| (l.to_string(), k.to_string())),
    );
    r
}

/// The figures of a results directory: of its one run, or of every run of a repeat.
pub fn figures_of(dir: &Path) -> Result<crate::expect::Figures> {
    let path = dir.join(SUMMARY_FILE);
    if !path.exists() {
        return Err(Error::Invalid(format!(
            "{} has no {SUMMARY_FILE}: give a results directory of perseus run (perseus report DIR writes it from the record)",
            dir.display()
        )));
    }
    let text = crate::files::read_text(&path)?;
    let is_repeat = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .is_some_and(|v| v["format"] == FORMAT);
    if is_repeat {
        let r = Repeat::load(&path)?;
        return Ok(crate::expect::Figures {
            runs: r.runs,
            values: r.figures.into_iter().map(|(k, s)| (k, s.values)).collect(),
        });
    }
    let s = Summary::load(&path)?;
    let name = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(crate::expect::Figures {
        runs: vec![name],
        values: s.figures().into_iter().map(|(k, v)| (k, vec![v])).collect(),
    })
}

/// The run directories of a repeat in `dir`: `1`, `2`, … `n`.
pub fn run_dirs(dir: &Path, n: usize) -> Vec<(String, PathBuf)> {
    (1..=n)
        .map(|k| (k.to_string(), dir.join(k.to_string())))
        .collect()
}

/// Repeated runs: each figure's distribution as a table, and a strip plot per figure with
/// one dot per run that links to that run's own report.
fn page(r: &Repeat) -> String {
    use std::fmt::Write as _;
    let mut b = format!(
        "<h1>Perseus: {} runs of {}</h1><p class=\"lead\">{} ({} writes). Quantiles are nearest-rank over the runs; a run's value is on its dot and in the last column.</p>",
        r.runs.len(),
        esc(&r.database),
        esc(&r.database_versions.join(", ")),
        esc(&r.write)
    );
    b.push_str("<table><tr><th>figure</th><th class=\"num\">min</th><th class=\"num\">median</th><th class=\"num\">p90</th><th class=\"num\">max</th><th>runs</th></tr>");
    let show = |v: Option<u64>| v.map_or("n/a".to_string(), super::thousands);
    for (label, key) in rows() {
        let Some(s) = r.figures.get(&key) else {
            continue;
        };
        let _ = write!(b, "<tr><td>{}</td>", esc(&label));
        for v in [s.min, s.median, s.p90, s.max] {
            let _ = write!(b, "<td class=\"num\">{}</td>", show(v));
        }
        let links: Vec<String> = r
            .runs
            .iter()
            .zip(&s.values)
            .map(|(run, v)| format!("<a href=\"{}/report.html\">{}</a>", esc(run), show(*v)))
            .collect();
        let _ = write!(b, "<td>{}</td></tr>", links.join(" "));
    }
    b.push_str("</table><h2>Every run, per figure</h2>");
    for (label, key) in rows() {
        if let Some(s) = r.figures.get(&key) {
            b.push_str(&strip_plot(&label, &r.runs, s));
        }
    }
    super::html::page(
        &format!("Perseus: {} runs of {}", r.runs.len(), r.database),
        &b,
    )
}

/// One figure's values on a line, a dot per run (linked to its report), the median marked.
fn strip_plot(label: &str, runs: &[String], s: &Stats) -> String {
    use std::fmt::Write as _;
    let (w, h, left, right) = (900.0, 54.0, 16.0, 16.0);
    let hi = s.max.unwrap_or(0).max(1) as f64;
    let x = |v: u64| left + (w - left - right) * v as f64 / hi;
    let mut svg = format!(
        "<svg class=\"chart\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{0}\"><text class=\"title\" x=\"{left}\" y=\"14\">{0}</text><line class=\"axis\" x1=\"{left}\" y1=\"34\" x2=\"{1}\" y2=\"34\"/><text class=\"tick\" x=\"{left}\" y=\"50\">0</text><text class=\"tick\" x=\"{1}\" y=\"50\" text-anchor=\"end\">{2}</text>",
        esc(label),
        w - right,
        super::thousands(hi as u64)
    );
    if let Some(m) = s.median {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{0:.1}\" y1=\"22\" x2=\"{0:.1}\" y2=\"46\" stroke-dasharray=\"3 2\"/>",
            x(m)
        );
    }
    for (run, v) in runs.iter().zip(&s.values) {
        if let Some(v) = v {
            let _ = write!(
                svg,
                "<a href=\"{0}/report.html\"><circle cx=\"{1:.1}\" cy=\"34\" r=\"5\" fill=\"{2}\" fill-opacity=\"0.6\"><title>run {0}: {3}</title></circle></a>",
                esc(run),
                x(*v),
                super::svg::node_color(0),
                super::thousands(*v)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_over_the_runs_that_have_a_value() {
        let s = Stats::of(vec![Some(30), None, Some(10), Some(20), Some(40)]);
        assert_eq!(
            (s.min, s.median, s.p90, s.max),
            (Some(10), Some(20), Some(40), Some(40))
        );
        assert_eq!(s.values[1], None, "values keep run order and gaps");
        let one = Stats::of(vec![Some(7)]);
        assert_eq!(
            (one.min, one.median, one.p90, one.max),
            (Some(7), Some(7), Some(7), Some(7))
        );
        let ten = Stats::of((1..=10).map(Some).collect());
        assert_eq!((ten.median, ten.p90), (Some(5), Some(9)));
        let none = Stats::of(vec![None, None]);
        assert_eq!((none.min, none.median, none.max), (None, None, None));
    }

    /// The aggregate of three runs holds each run's own figures, in run order.
    #[test]
    fn a_repeat_aggregates_its_runs_summaries() {
        let dir = std::env::temp_dir().join(format!("perseus-repeat-test-{}", std::process::id()));
        let mut written = Vec::new();
        for (k, (len, lost)) in [(30, 0), (40, 5), (35, 2)].into_iter().enumerate() {
            let run = dir.join((k + 1).to_string());
            crate::record::synthetic::synthetic_record(&run, len, 50).unwrap();
            let a = crate::analysis::analyse(&crate::record::in_results(&run).unwrap()).unwrap();
            let mut s = super::super::summary::of(&a);
            s.lost_acknowledged_writes = lost;
            crate::files::write(&run.join(SUMMARY_FILE), serde_json::to_string(&s).unwrap())
                .unwrap();
            written.push(s);
        }
        let names: Vec<String> = run_dirs(&dir, 3).into_iter().map(|(n, _)| n).collect();
        let r = Repeat::of(&dir, &names).unwrap();
        r.write(&dir).unwrap();
        let back = Repeat::load(&dir.join(SUMMARY_FILE)).unwrap();
        let page = std::fs::read_to_string(dir.join(super::super::HTML_FILE)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);

        assert_eq!(back, r, "summary.json reads back as written");
        assert_eq!(r.format, FORMAT);
        assert_eq!(r.runs, ["1", "2", "3"]);
        let lost = &r.figures["lost_acknowledged_writes"];
        assert_eq!(lost.values, [Some(0), Some(5), Some(2)]);
        assert_eq!(
            (lost.min, lost.median, lost.max),
            (Some(0), Some(2), Some(5))
        );
        let mut keys = crate::expect::figure_keys();
        keys.sort();
        assert_eq!(
            written[0].figures().into_keys().collect::<Vec<_>>(),
            keys,
            "expectations name exactly the summary's figures"
        );
        for (k, s) in written.iter().enumerate() {
            for (key, v) in s.figures() {
                assert_eq!(r.figures[&key].values[k], v, "run {} {key}", k + 1);
            }
        }
        assert!(
            page.contains("href=\"2/report.html\""),
            "points link to their runs"
        );
        assert!(r
            .markdown()
            .contains("| lost acknowledged writes | 0 | 2 | 5 | 5 | 0 5 2 |"));
        assert!(r.terminal().contains("3 runs of"));

        // A run of another summary version is refused, with what to do.
        let mut old = written[1].clone();
        old.version = 1;
        for (name, s) in [("1", &written[0]), ("2", &old)] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            crate::files::write(
                &dir.join(name).join(SUMMARY_FILE),
                serde_json::to_string(s).unwrap(),
            )
            .unwrap();
        }
        let e = Repeat::of(&dir, &names[..2]).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            e.contains("run 2 version 1") && e.contains("perseus report"),
            "{e}"
        );
    }
}
