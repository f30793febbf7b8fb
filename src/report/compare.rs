//! `perseus compare`: runs side by side, from what each run wrote (its `summary.json` and
//! its per-second table), without analysing its record again.

use super::html::PerSecond;
use super::summary::{self, Summary};
use super::{markdown_header, markdown_row, svg::esc, thousands, SUMMARY_FILE};
use crate::analysis::{self, METRICS};
use crate::error::Result;
use crate::record::table::{self, Table};
use std::path::Path;

/// One run as compare shows it.
pub struct Compared {
    /// The results directory's name.
    pub name: String,
    pub summary: Summary,
    /// The per-second table.
    pub table: Table,
}

impl Compared {
    /// Reads a results directory: its summary and table as the run wrote them. A directory
    /// without them (a run killed before its results, or a watch) is analysed from its
    /// record instead, in memory; nothing is written into it.
    pub fn load(dir: &Path) -> Result<Compared> {
        let record = crate::record::in_results(dir)?;
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let written = Summary::load(&dir.join(SUMMARY_FILE)).ok();
        let table_path = dir.join(crate::record::TABLE_FILE);
        let written_table = crate::files::read_text(&table_path)
            .ok()
            .and_then(|text| Table::parse(&text, &table_path).ok());
        let (summary, table) = match (written, written_table) {
            (Some(s), Some(t)) => (s, t),
            (Some(s), None) => (s, table::from_record(&record)?),
            (None, _) => {
                let a = analysis::analyse(&record)?;
                (summary::of(&a), a.table)
            }
        };
        Ok(Compared {
            name,
            summary,
            table,
        })
    }

    /// Where its first fault started, in seconds since its start (0 without a fault): the
    /// point compare aligns runs on.
    pub fn offset_s(&self) -> f64 {
        self.summary
            .fault
            .as_ref()
            .map_or(0.0, |f| f.at_ms as f64 / 1000.0)
    }

    /// What its per-second chart shows.
    pub fn per_second(&self) -> PerSecond<'_> {
        let started = |kind: &str| {
            crate::record::faults::KINDS
                .iter()
                .find(|k| k.name == kind)
                .map_or(kind, |k| k.started)
                .to_string()
        };
        PerSecond {
            nodes: &self.summary.nodes,
            table: &self.table,
            faults: self
                .summary
                .intervals
                .iter()
                .map(|i| {
                    (
                        i.at_ms as f64 / 1000.0,
                        i.end_at_ms.map(|e| e as f64 / 1000.0),
                        format!("{} {}", i.target, started(&i.kind)),
                    )
                })
                .collect(),
            end: self.summary.duration_ms as f64 / 1000.0,
        }
    }
}

/// The runs' figures as three tables: for the terminal, in markdown, and in HTML.
pub struct Tables {
    pub text: String,
    pub markdown: String,
    pub html: String,
}

/// The seed's figures of every run, with its write mode and what it lost.
pub fn tables(runs: &[Compared]) -> Tables {
    let labels: Vec<&str> = METRICS
        .iter()
        .map(|m| m.short)
        .chain(["lost ack. writes", "by late writes"])
        .collect();
    let mut text = format!("{:<28}{:<16}{:<7}", "run", "database", "write");
    for l in &labels {
        text.push_str(&format!("{l:>24}"));
    }
    text.push('\n');
    let mut markdown = markdown_header();
    let mut html =
        String::from("<table><tr><th>run</th><th>database</th><th>version</th><th>write</th>");
    for l in &labels[..METRICS.len()] {
        html.push_str(&format!("<th class=\"num\">{l} (s / ms)</th>"));
    }
    html.push_str("<th class=\"num\">lost acknowledged writes</th>");
    html.push_str("<th class=\"num\">of them overwritten by late writes</th>");
    html.push_str("</tr>");
    for r in runs {
        let s = &r.summary;
        let mut cells: Vec<String> = METRICS
            .iter()
            .map(|m| match s.metric(m.key) {
                (Some(secs), Some(ms)) => format!("{secs} s / {ms} ms"),
                _ => "n/a".into(),
            })
            .collect();
        cells.push(thousands(s.lost_acknowledged_writes));
        cells.push(thousands(s.lost_to_late_writes()));
        text.push_str(&format!("{:<28}{:<16}{:<7}", r.name, s.database, s.write));
        for c in &cells {
            text.push_str(&format!("{c:>24}"));
        }
        text.push('\n');
        markdown.push_str(&markdown_row(s));
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&r.name),
            esc(&s.database),
            esc(&s.database_version.clone().unwrap_or_default()),
            esc(&s.write)
        ));
        for c in &cells {
            html.push_str(&format!("<td class=\"num\">{c}</td>"));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    Tables {
        text,
        markdown,
        html,
    }
}

/// Runs side by side: the seed's table, and each run's throughput on one time axis (seconds
/// since its first fault).
pub fn page(runs: &[Compared], table_html: &str) -> String {
    let offset = |r: &Compared| r.offset_s();
    let lo = runs.iter().map(|r| -offset(r)).fold(0.0f64, f64::min);
    let hi = runs
        .iter()
        .map(|r| r.per_second().end - offset(r))
        .fold(1.0f64, f64::max);
    let mut b = String::from("<h1>Perseus: runs compared</h1>");
    b.push_str(table_html);
    b.push_str("<h2>Completed increments per second, aligned on the isolation</h2>");
    for (i, r) in runs.iter().enumerate() {
        let title = format!(
            "{}: {} {}",
            r.name,
            r.summary.database,
            r.summary.database_version.clone().unwrap_or_default()
        );
        b.push_str(
            &super::html::per_second_chart(
                &r.per_second(),
                &format!("run-{i}"),
                &title,
                false,
                offset(r),
                (lo, hi),
                200.0,
            )
            .render(),
        );
    }
    super::html::page("Perseus: runs compared", &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compare reads what a run wrote; without it, it analyses the record, to the same
    /// figures and table, and writes nothing into the directory.
    #[test]
    fn a_run_reads_back_from_its_results_or_else_from_its_record() {
        let dir = std::env::temp_dir().join(format!("perseus-compare-test-{}", std::process::id()));
        crate::record::synthetic::synthetic_record(&dir, 30, 50).unwrap();
        let a = analysis::analyse(&crate::record::in_results(&dir).unwrap()).unwrap();
        let fresh = Compared::load(&dir).unwrap();
        assert!(!dir.join(SUMMARY_FILE).exists(), "nothing written");
        super::super::write_results(&dir, &a).unwrap();
        // A summary that differs from the record shows it was read, not recomputed.
        let mut s = summary::of(&a);
        s.lost_acknowledged_writes = 4242;
        crate::files::write(&dir.join(SUMMARY_FILE), serde_json::to_string(&s).unwrap()).unwrap();
        let written = Compared::load(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);

        assert_eq!(written.summary.lost_acknowledged_writes, 4242);
        assert_eq!(fresh.summary, summary::of(&a));
        assert_eq!(written.table.render(), a.table.render());
        assert_eq!(fresh.table.render(), a.table.render());
        assert!(written.offset_s() > 0.0, "the synthetic record has a fault");
        let chart = written.per_second();
        assert_eq!(chart.faults.len(), a.intervals.len());
        assert!(chart.faults[0]
            .2
            .ends_with(a.intervals[0].window.kind.started));
        let t = tables(&[written, fresh]);
        assert!(t.text.contains("4,242"), "{}", t.text);
        assert_eq!(t.markdown.lines().count(), 4, "{}", t.markdown);
    }
}
