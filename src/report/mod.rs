//! What a run shows: the metrics table in the terminal, `summary.json`, and the per-second
//! table rebuilt from the record.

pub mod compare;
pub mod expected;
pub mod html;
pub mod json;
pub mod matrix;
pub mod repeat;
pub mod summary;
pub mod svg;

use crate::analysis::correctness::{self, Correctness, ViolationKind};
use crate::analysis::{Analysis, FaultWindow, Figures, METRICS};
use crate::error::Result;
use crate::spec::Spec;
use serde_json::{json, Value};
use std::path::Path;

pub const SUMMARY_FILE: &str = "summary.json";
pub const HTML_FILE: &str = "report.html";
pub const MARKDOWN_FILE: &str = "report.md";

/// The six metrics of `f` in the seed's order: (key, label, µs or `None` for n/a).
pub(crate) fn rows(f: &Figures) -> [(&'static str, &'static str, Option<u64>); 6] {
    METRICS.map(|m| (m.key, m.label, (m.value)(f)))
}

fn secs(us: Option<u64>) -> Value {
    us.map_or(Value::Null, |v| json!(v / 1_000_000))
}

fn millis(us: Option<u64>) -> Value {
    us.map_or(Value::Null, |v| json!((v + 500) / 1000))
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "n/a".into(),
        v => v.to_string(),
    }
}

/// A fault interval in words: `n2 isolated at 32.0 s, rejoined at 92.0 s`.
pub fn window_line(w: &FaultWindow) -> String {
    let at = w.start_us as f64 / 1e6;
    match w.end_us {
        Some(r) => format!(
            "{} {} at {at:.1} s, {} at {:.1} s",
            w.target,
            w.kind.started,
            w.kind.ended,
            r as f64 / 1e6
        ),
        None => format!(
            "{} {} at {at:.1} s, never {}",
            w.target, w.kind.started, w.kind.ended
        ),
    }
}

/// The fault the metrics are about, in words.
pub fn fault_line(a: &Analysis) -> String {
    match &a.window {
        None => "no fault in this record: no metrics".into(),
        Some(w) => window_line(w),
    }
}

/// `179789` → `179,789`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The data lost, in one line: `lost acknowledged writes: 179,789 (n1's key 152,158 · n2's
/// 13,166 · n3's 14,465): 179,789 rolled back`, or `lost acknowledged writes: none`; with
/// no final read, a loss found by none is not called none.
pub fn loss_line(a: &Analysis) -> String {
    let c = &a.correctness;
    if c.lost_acknowledged_writes == 0 {
        return if c.final_reads == 0 && c.reads_checked > 0 {
            "lost acknowledged writes: none found, but no final read succeeded: writes \
             acknowledged after a key's last successful read are unchecked"
                .into()
        } else {
            "lost acknowledged writes: none".into()
        };
    }
    let by_key: Vec<String> = a
        .header
        .nodes
        .iter()
        .zip(&c.lost_by_key)
        .filter(|(_, n)| **n > 0)
        .enumerate()
        .map(|(i, (node, n))| {
            let whose = if i == 0 { "'s key" } else { "'s" };
            format!("{node}{whose} {}", thousands(*n))
        })
        .collect();
    let by_kind: Vec<String> = c
        .lost_by_kind
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{} {}", thousands(*n), loss_cause(*kind)))
        .collect();
    format!(
        "lost acknowledged writes: {} ({}): {}",
        thousands(c.lost_acknowledged_writes),
        by_key.join(" · "),
        by_kind.join(" · ")
    )
}

/// How acknowledged writes were lost, by the kind of read that found them gone.
pub fn loss_cause(kind: ViolationKind) -> &'static str {
    match kind {
        ViolationKind::StaleRead => "rolled back (the database went back to older data)",
        ViolationKind::LateWrite => {
            "overwritten by late writes (timed-out writes that took effect later)"
        }
        ViolationKind::LostWrite => "missing from the final reads",
        ViolationKind::Phantom => "replaced by values no write made",
    }
}

/// `text` with its first letter in upper case, to open a sentence.
pub fn sentence_case(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The checks' verdict without the data lost: `no violation in 62531 reads checked and 9
/// final reads`, with the kinds when there are violations, and late writes (legal for the
/// database) after it.
pub fn verdict(c: &Correctness) -> String {
    let kinds = |violations: bool| -> Vec<String> {
        c.by_kind
            .iter()
            .filter(|(k, n)| **n > 0 && k.is_violation() == violations)
            .map(|(k, n)| {
                format!(
                    "{} {}{}",
                    thousands(*n),
                    k.words(),
                    if *n == 1 { "" } else { "s" }
                )
            })
            .collect()
    };
    let mut s = match c.violations {
        0 => "no violation".to_string(),
        n => format!(
            "{} violation{} ({})",
            thousands(n),
            if n == 1 { "" } else { "s" },
            kinds(true).join(", ")
        ),
    };
    s.push_str(&format!(
        " in {} reads checked and {} final reads",
        c.reads_checked, c.final_reads
    ));
    let late = kinds(false);
    if !late.is_empty() {
        s.push_str(&format!(
            "; {} (legal for the database: a timed-out write took effect after newer ones)",
            late.join(", ")
        ));
    }
    s
}

/// The run in one sentence, from the millisecond figures: what a person should take away.
pub fn summary_sentence(a: &Analysis) -> String {
    let lost = a.correctness.lost_acknowledged_writes;
    let loss = if lost > 0 {
        format!(
            "{}. The database acknowledged these increments, and they are gone. ",
            sentence_case(&loss_line(a))
        )
    } else {
        String::new()
    };
    let (Some(w), Some(f)) = (&a.window, a.precise) else {
        return format!("{loss}No fault in this record.");
    };
    let s = |us: u64| format!("{:.1} s", us as f64 / 1e6);
    let mut out = if w.kind.cuts_off_from_peers {
        format!(
            "{} was cut off from its peers at {}",
            w.target,
            s(w.start_us)
        )
    } else {
        format!("{} {} at {}", w.target, w.kind.started, s(w.start_us))
    };
    out.push_str(&match (f.downtime_on_isolation, f.disturbance_time) {
        (0, Some(0)) => "; the other nodes kept serving without a break".to_string(),
        (0, Some(d)) => format!("; no stall for everyone, the other nodes served steadily again after {}", s(d)),
        (down, Some(d)) => format!("; every client stalled {} in all, the other nodes served steadily again after {}", s(down), s(d)),
        (down, None) => format!("; every client stalled {} in all, and the other nodes never served steadily until the rejoin", s(down)),
    });
    match (w.end_us, f.downtime_on_recovery, f.recovery_time) {
        (Some(r), Some(down), Some(rec)) => {
            let stall = if down > 0 {
                format!(", every client stalled {} after it", s(down))
            } else {
                String::new()
            };
            out.push_str(&format!(
                ". It rejoined at {}{stall}; all nodes served steadily {} after the rejoin.",
                s(r),
                s(rec)
            ));
        }
        (Some(r), _, None) => out.push_str(&format!(
            ". It rejoined at {}; not every node was serving steadily by the end of the record.",
            s(r)
        )),
        _ => out.push_str(". It never rejoined."),
    }
    format!("{loss}{out}")
}

/// Text from a record, a summary or a server as Markdown shows it, literally: no HTML, no
/// entity, no table cell break, no emphasis, link or code span, and on one line.
pub fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push(char::REPLACEMENT_CHARACTER),
            c => out.push(c),
        }
    }
    out
}

/// `text` as a fenced code block that nothing in it can close.
pub fn md_code(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}\n{}{fence}\n", crate::terminal::printable(text))
}

/// The seed's table header in markdown: the database, the six metrics, the data lost and
/// the version.
pub fn markdown_header() -> String {
    let mut titles = vec!["Database".to_string()];
    titles.extend(METRICS.iter().map(|m| sentence_case(m.label)));
    titles.push("Lost acknowledged writes".into());
    titles.push("Version".into());
    format!(
        "| {} |\n|{}\n",
        titles.join(" | "),
        "---|".repeat(titles.len())
    )
}

/// The run's row in the seed's table (whole seconds, milliseconds in parentheses).
pub fn markdown_row(s: &summary::Summary) -> String {
    let mut row = format!("| {} ", md(&s.database));
    for m in METRICS {
        let cell = match s.metric(m.key) {
            (Some(secs), Some(ms)) => format!("{secs} ({ms} ms)"),
            _ => "n/a".into(),
        };
        row.push_str(&format!("| {cell} "));
    }
    row.push_str(&format!(
        "| {} | {} |\n",
        thousands(s.lost_acknowledged_writes),
        md(s.database_version.as_deref().unwrap_or_default())
    ));
    row
}

/// `report.md`: the row in the seed's table, and the run in a few lines.
pub fn markdown(a: &Analysis) -> String {
    let s = summary::of(a);
    let expected = expected_lines(&s);
    let settings = settings_text(&a.header)
        .map(|t| md(&format!("Server settings (* changed with --set): {t}.")) + "\n\n")
        .unwrap_or_default()
        + &md(&format!(
            "Increments a second per client, over the run: {}.",
            rate_text(&s)
        ));
    format!(
        "{}{}\n{}\n\n{} Correctness: {}\n\n{settings}\n{}",
        markdown_header(),
        markdown_row(&s),
        md(&summary_sentence(a)),
        md(&format!("{}.", sentence_case(&loss_line(a)))),
        md(&format!("{}.", verdict(&a.correctness))),
        if expected.is_empty() {
            String::new()
        } else {
            format!("\n{}", md_code(&expected))
        }
    )
}

/// The rate each client achieved, `n1 498/s, …`, with the cap if there was one.
pub fn rate_text(s: &summary::Summary) -> String {
    let per: Vec<String> = s
        .rate_achieved
        .iter()
        .map(|(n, r)| format!("{n} {r}/s"))
        .collect();
    match s.rate_cap {
        Some(cap) => format!("{} (capped at {cap}/s)", per.join(", ")),
        None => per.join(", "),
    }
}

/// The server settings a record saved, `name value` each, a `*` on those the user changed
/// from the preset's (`--set`); `None` where the record has none (a cluster Perseus did not
/// start, or a record older than them).
pub fn settings_text(h: &crate::record::Header) -> Option<String> {
    if h.settings.is_empty() {
        return None;
    }
    let knobs = crate::db::find(&h.database).map_or(&[][..], |d| d.knobs());
    let changed = |name: &str, value: &str| {
        knobs
            .iter()
            .find(|k| k.name == name)
            .is_some_and(|k| k.default != value)
    };
    let all: Vec<String> = h
        .settings
        .iter()
        .map(|(k, v)| format!("{k} {v}{}", if changed(k, v) { " *" } else { "" }))
        .collect();
    Some(all.join(", "))
}

/// The isolation and recovery figures beside the ranges the database's failover model
/// expects, a few lines (nothing where no model speaks).
pub fn expected_lines(s: &summary::Summary) -> String {
    if s.expected.is_empty() {
        return String::new();
    }
    let role = match s.fault.as_ref().and_then(|f| f.role.as_deref()) {
        Some(role) => format!("{} was {role}", s.fault.as_ref().map_or("", |f| &f.target)),
        None => "no node led".into(),
    };
    let mut out = format!("against {}'s failover model ({role}):\n", s.database);
    let mut whys: Vec<&str> = Vec::new();
    let mut sources: Vec<&str> = Vec::new();
    for e in &s.expected {
        let key = e.figure.strip_suffix("_ms").unwrap_or(&e.figure);
        let label = METRICS
            .iter()
            .find(|m| m.key == key)
            .map_or(key, |m| m.label);
        out.push_str(&format!(
            "  {label:<24}{}measured {}, expected {} s\n",
            if e.within { "" } else { "OUTSIDE: " },
            e.measured_ms
                .map_or("n/a".into(), |m| format!("{:.1} s", m as f64 / 1000.0)),
            expected::range_s(e.low_ms, e.high_ms)
        ));
        if !whys.contains(&e.why.as_str()) {
            whys.push(&e.why);
        }
        if !sources.contains(&e.source.as_str()) {
            sources.push(&e.source);
        }
    }
    for why in whys {
        out.push_str(&format!("  why: {why}\n"));
    }
    for source in sources {
        out.push_str(&format!("  source: {source}\n"));
    }
    out
}

/// The metrics table for the terminal: whole seconds (from the per-second table) and
/// milliseconds (from the operation history).
pub fn metrics_table(a: &Analysis) -> String {
    let mut s = format!("{}\n", fault_line(a));
    let (Some(sec), Some(ms)) = (a.seconds, a.precise) else {
        return s;
    };
    s.push_str(&format!(
        "{:<32}{:>9}{:>14}\n",
        "metric", "seconds", "milliseconds"
    ));
    for ((_, label, a), (_, _, b)) in rows(&sec).iter().zip(rows(&ms).iter()) {
        s.push_str(&format!(
            "{label:<32}{:>9}{:>14}\n",
            text(&secs(*a)),
            text(&millis(*b))
        ));
    }
    s.push_str(&lenient_line(a));
    s
}

/// Where they differ, disturbance and recovery time read leniently (a node that served
/// counts as steady even while requests of it failed), one line; else nothing.
pub fn lenient_line(a: &Analysis) -> String {
    let (Some(sec), Some(ms), Some((lsec, lms))) = (a.seconds, a.precise, a.lenient) else {
        return String::new();
    };
    let differ: Vec<String> = METRICS
        .iter()
        .filter(|m| summary::LENIENT.contains(&m.key))
        .filter(|m| ((m.value)(&sec), (m.value)(&ms)) != ((m.value)(&lsec), (m.value)(&lms)))
        .map(|m| {
            format!(
                "{} {} s / {} ms",
                m.label,
                text(&secs((m.value)(&lsec))),
                text(&millis((m.value)(&lms)))
            )
        })
        .collect();
    if differ.is_empty() {
        return String::new();
    }
    format!(
        "(with failing requests counted as steady: {})\n",
        differ.join(", ")
    )
}

/// Errors per node and phase, by code: `n2 during: 1047 ×134, timed out after 1s ×5`.
pub fn errors_table(a: &Analysis) -> String {
    let mut s = String::new();
    for (node, phases) in a.header.nodes.iter().zip(&a.errors) {
        for (phase, codes) in phases {
            let mut codes: Vec<(&String, &u64)> = codes.iter().collect();
            codes.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
            let list: Vec<String> = codes.iter().map(|(c, n)| format!("{c} ×{n}")).collect();
            let phase = serde_json::to_value(phase).expect("phase serialises");
            s.push_str(&format!(
                "errors {node} {}: {}\n",
                phase.as_str().unwrap_or("?"),
                list.join(", ")
            ));
        }
    }
    s
}

/// A loss in words: `n2's writer read 94259 through n2 [31.204 s – 31.210 s]: 152158
/// acknowledged increments above it, up to 246417, were gone`.
pub fn describe_loss(l: &correctness::Loss, nodes: &[String]) -> String {
    let at = |us: u64| format!("{:.3} s", us as f64 / 1e6);
    let who = if l.final_read {
        format!("a final read of {}'s key", nodes[l.key])
    } else {
        format!("{}'s writer", nodes[l.key])
    };
    format!(
        "{who} read {} through {} [{} – {}] ({}): {} acknowledged increments above it, up to {}, were gone",
        l.read_value,
        nodes[l.reader],
        at(l.read_start_us),
        at(l.read_end_us),
        l.kind.words(),
        thousands(l.lost),
        l.highest_acknowledged
    )
}

/// The correctness checks in a few lines: the data lost, the violations, and examples.
pub fn correctness_lines(a: &Analysis) -> String {
    let c = &a.correctness;
    let mut s = format!("{}\n", loss_line(a));
    for l in &c.losses {
        s.push_str(&format!("  {}\n", describe_loss(l, &a.header.nodes)));
    }
    s.push_str(&format!("correctness: {}\n", verdict(c)));
    for v in &c.examples {
        s.push_str(&format!(
            "  {}\n",
            correctness::describe(v, &a.header.nodes)
        ));
    }
    let anomalies: u64 = c.by_kind.values().sum();
    if anomalies > c.examples.len() as u64 {
        s.push_str(&format!(
            "  … and {} more (summary.json)\n",
            anomalies - c.examples.len() as u64
        ));
    }
    s
}

/// Everything the terminal shows at the end of a run or watch; data loss first, if any.
pub fn terminal_summary(a: &Analysis) -> String {
    let headline = if a.correctness.lost_acknowledged_writes > 0 {
        format!("DATA LOSS: {}\n", loss_line(a))
    } else {
        String::new()
    };
    let s = summary::of(a);
    let rate = match s.rate_cap {
        Some(_) => format!("increments a second: {}\n", rate_text(&s)),
        None => String::new(),
    };
    format!(
        "{headline}{}{rate}{}{}{}{}{}",
        metrics_table(a),
        expected_lines(&s),
        intervals_table(a),
        spread_table(&s),
        errors_table(a),
        correctness_lines(a)
    )
}

/// The most faults the terminal lists one by one; past it, only their spread.
pub const MAX_LISTED_FAULTS: usize = 12;

/// With more than one fault: the six figures of each (milliseconds), as long as there are
/// at most [`MAX_LISTED_FAULTS`].
pub fn intervals_table(a: &Analysis) -> String {
    if a.intervals.len() < 2 {
        return String::new();
    }
    if a.intervals.len() > MAX_LISTED_FAULTS {
        return format!(
            "{} faults: each one's figures are in summary.json (intervals), their spread below\n",
            a.intervals.len()
        );
    }
    let mut s = format!("{:<44}", "each fault (ms)");
    for m in METRICS {
        s.push_str(&format!("{:>12}", m.column));
    }
    s.push_str(&format!("{:>8}\n", "lost"));
    for i in &a.intervals {
        s.push_str(&format!("{:<44}", window_line(&i.window)));
        for v in i.precise.values() {
            s.push_str(&format!("{:>12}", text(&millis(v))));
        }
        s.push_str(&format!("{:>8}\n", i.lost_acknowledged_writes));
    }
    s
}

/// Where a kind of fault hit the same target more than once (a looped scenario): each
/// figure's median, p90 and max over those faults (milliseconds).
pub fn spread_table(s: &summary::Summary) -> String {
    let repeated: Vec<&summary::FaultSpread> =
        s.each_fault.iter().filter(|f| f.count > 1).collect();
    if repeated.is_empty() {
        return String::new();
    }
    let mut t = format!("{:<44}", "faults that repeat (ms)");
    for m in METRICS {
        t.push_str(&format!("{:>12}", m.column));
    }
    t.push_str(&format!("{:>8}\n", "lost"));
    for f in repeated {
        let name = format!("{} {}, {} times", f.kind, f.target, f.count);
        for (k, stat) in ["median", "p90", "max"].into_iter().enumerate() {
            let head = if k == 0 { name.as_str() } else { "" };
            t.push_str(&format!("{head:<36}{stat:>8}"));
            for (key, width) in spread_columns() {
                t.push_str(&format!("{:>width$}", spread_cell(f, &key, stat)));
            }
            t.push('\n');
        }
    }
    t
}

/// The keys of a [`summary::FaultSpread`]'s columns, with their widths on the terminal:
/// the six figures in milliseconds, then the lost writes.
pub(crate) fn spread_columns() -> impl Iterator<Item = (String, usize)> {
    METRICS
        .iter()
        .map(|m| (format!("{}_ms", m.key), 12))
        .chain([(summary::LOST.to_string(), 8)])
}

/// One statistic (`median`, `p90` or `max`) of one figure of a fault's spread, as text.
pub(crate) fn spread_cell(f: &summary::FaultSpread, key: &str, stat: &str) -> String {
    let v = f.metrics.get(key).and_then(|x| match stat {
        "median" => x.median,
        "p90" => x.p90,
        _ => x.max,
    });
    v.map_or("n/a".into(), |x| x.to_string())
}

/// `summary.json` as JSON (see [`summary::Summary`]).
pub fn summary(a: &Analysis) -> Value {
    serde_json::to_value(summary::of(a)).expect("a summary serialises")
}

/// Writes `summary.json`, `client.log` (rebuilt from the record), `report.html` and
/// `report.md` into `dir` (with the run's `spec.json`, if it has one, in the report).
pub fn write_results(dir: &Path, a: &Analysis) -> Result<()> {
    let spec = Spec::load(&dir.join("spec.json")).ok();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        crate::files::write(&path, text)
    };
    write(HTML_FILE, html::report(a, spec.as_ref()))?;
    write(MARKDOWN_FILE, markdown(a))?;
    let path = dir.join(SUMMARY_FILE);
    let json = serde_json::to_string_pretty(&summary::of(a)).expect("a summary serialises");
    crate::files::write(&path, json + "\n")?;
    let path = dir.join(crate::record::TABLE_FILE);
    crate::files::write(&path, a.table.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis() -> Analysis {
        let dir = std::env::temp_dir().join(format!("perseus-report-test-{}", std::process::id()));
        crate::record::synthetic::synthetic_record(&dir, 30, 50).unwrap();
        let a = crate::analysis::analyse(&crate::record::in_results(&dir).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        a
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(179_789), "179,789");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    /// Data loss leads every verdict: the terminal, the report's first sentence, report.md,
    /// and summary.json has the number whether or not anything was lost.
    #[test]
    fn data_loss_leads_the_verdict_everywhere() {
        let mut a = analysis();
        assert_eq!(a.correctness.lost_acknowledged_writes, 0);
        assert_eq!(summary(&a)["lost_acknowledged_writes"], json!(0));
        assert!(correctness_lines(&a).starts_with("lost acknowledged writes: none"));
        assert!(!terminal_summary(&a).contains("DATA LOSS"));
        let mut unread = a.clone();
        (
            unread.correctness.final_reads,
            unread.correctness.reads_checked,
        ) = (0, 5);
        assert!(loss_line(&unread).contains("no final read succeeded"));

        a.correctness.lost_acknowledged_writes = 179_789;
        a.correctness.lost_by_key = vec![152_158, 13_166, 14_465];
        a.correctness
            .lost_by_kind
            .insert(ViolationKind::StaleRead, 177_515);
        a.correctness
            .lost_by_kind
            .insert(ViolationKind::LateWrite, 2_274);
        let line =
            "lost acknowledged writes: 179,789 (n1's key 152,158 · n2's 13,166 · n3's 14,465): \
             177,515 rolled back (the database went back to older data) · \
             2,274 overwritten by late writes (timed-out writes that took effect later)";
        assert_eq!(loss_line(&a), line);
        assert!(terminal_summary(&a).starts_with(&format!("DATA LOSS: {line}\n")));
        assert!(summary_sentence(&a).starts_with("Lost acknowledged writes: 179,789"));
        let md = markdown(&a);
        assert!(md.contains("| Lost acknowledged writes |"), "{md}");
        assert!(md.contains("| 179,789 |"), "{md}");
        let json = summary(&a);
        assert_eq!(json["lost_acknowledged_writes"], json!(179_789));
        assert_eq!(json["correctness"]["lost_by_key"]["n2"], json!(13_166));
        assert_eq!(
            json["correctness"]["by_kind"],
            json!({"stale-read": 0, "late-write": 0, "lost-write": 0, "phantom": 0})
        );
        assert_eq!(
            json["correctness"]["lost_by_kind"],
            json!({"stale-read": 177_515, "late-write": 2_274, "lost-write": 0, "phantom": 0})
        );
        let page = html::report(&a, None);
        let lead = page.split("<p class=\"lead\">").nth(1).unwrap();
        assert!(
            lead.starts_with("Lost acknowledged writes: 179,789"),
            "{lead}"
        );
        assert!(page.contains(r#"<p class="bad" id="loss">"#));
    }

    #[test]
    fn the_verdict_names_each_kind_and_keeps_late_writes_apart() {
        let mut c = analysis().correctness;
        assert!(
            verdict(&c).starts_with("no violation in "),
            "{}",
            verdict(&c)
        );
        c.by_kind.insert(ViolationKind::LateWrite, 1);
        let v = verdict(&c);
        assert!(
            v.starts_with("no violation in ") && v.contains("; 1 late write (legal"),
            "{v}"
        );
        c.violations = 3;
        c.by_kind.insert(ViolationKind::StaleRead, 2);
        c.by_kind.insert(ViolationKind::Phantom, 1);
        let v = verdict(&c);
        assert!(
            v.starts_with("3 violations (2 stale reads, 1 phantom) in "),
            "{v}"
        );
        assert_eq!(sentence_case("lost x"), "Lost x");
        assert_eq!(sentence_case(""), "");
    }

    /// Every output shows every metric of the registry: summary.json both forms, the
    /// markdown header, the terminal table.
    #[test]
    fn every_output_shows_every_metric() {
        let a = analysis();
        let json = summary(&a);
        let header = markdown_header();
        let terminal = metrics_table(&a);
        for m in METRICS {
            for unit in ["s", "ms"] {
                assert!(
                    json["metrics"].get(format!("{}_{unit}", m.key)).is_some(),
                    "{} in summary.json",
                    m.key
                );
            }
            assert!(header.contains(&sentence_case(m.label)), "{header}");
            assert!(terminal.contains(m.label), "{terminal}");
        }
        assert_eq!(
            header.lines().next().unwrap().matches('|').count(),
            METRICS.len() + 4
        );
    }

    /// Text from a record shows in Markdown as it is: no tag, entity, cell break, emphasis,
    /// code span or line break of its own, and a code block it cannot close.
    #[test]
    fn markdown_shows_hostile_text_literally() {
        assert_eq!(
            md("<img src=x onerror=alert(1)>|*a*_b_ `c` [d](e) &amp; \\ ~f~ #g !h\nnext\x1b"),
            "\\<img src=x onerror=alert(1)\\>\\|\\*a\\*\\_b\\_ \\`c\\` \\[d\\](e) \\&amp; \\\\ \\~f\\~ \\#g \\!h next\u{fffd}"
        );
        assert_eq!(md("etcd 3.5.16"), "etcd 3.5.16");
        let block = md_code("a ```` b\n");
        assert!(
            block.starts_with("`````\n") && block.ends_with("\n`````\n"),
            "{block}"
        );
    }
}
