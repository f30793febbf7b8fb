//! `report.html` and `compare.html`: self-contained pages (inline CSS and SVG, no script,
//! nothing fetched), readable at 1280 px.

use super::svg::{esc, node_color, Band, Chart, Series, Style};
use super::{rows, summary_sentence};
use crate::analysis::{Analysis, Phase, METRICS};
use crate::record::table::Table;
use crate::spec::Spec;
use std::fmt::Write;

const CSS: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1240px; color: #222; padding: 0 12px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
p.lead { font-size: 16px; margin-top: 4px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ccc; padding: 3px 10px; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.chart { display: block; margin: 6px 0 18px; background: #fff; }
.chart .title { font-weight: 600; font-size: 13px; }
.chart .tick, .chart .legend text, .chart .band text { font-size: 11px; fill: #444; }
.chart .label { font-size: 12px; fill: #222; }
.chart .grid { stroke: #e6e6e6; } .chart .axis { stroke: #888; }
.chart .band rect { fill: #d62728; fill-opacity: 0.10; } .chart .band text { fill: #a01010; }
.small { color: #666; font-size: 12px; }
.bad { color: #b00; font-weight: 600; } .good { color: #060; }
"#;

/// Fault intervals of a record as shaded bands (to the end of the record if a fault never
/// ended), in seconds minus `offset`.
pub fn bands(a: &Analysis, offset: f64) -> Vec<Band> {
    PerSecond::of(a).bands(offset)
}

fn x_range(a: &Analysis, offset: f64) -> (f64, f64) {
    (-offset, a.end_us as f64 / 1e6 - offset)
}

/// What a per-second chart shows of a run: its nodes, its table, its faults (from, to,
/// label; in seconds since the start) and its end.
pub struct PerSecond<'a> {
    pub nodes: &'a [String],
    pub table: &'a Table,
    pub faults: Vec<(f64, Option<f64>, String)>,
    pub end: f64,
}

impl<'a> PerSecond<'a> {
    pub fn of(a: &'a Analysis) -> Self {
        PerSecond {
            nodes: &a.header.nodes,
            table: &a.table,
            faults: a
                .intervals
                .iter()
                .map(|i| {
                    (
                        i.window.start_us as f64 / 1e6,
                        i.window.end_us.map(|e| e as f64 / 1e6),
                        format!("{} {}", i.window.target, i.window.kind.started),
                    )
                })
                .collect(),
            end: a.end_us as f64 / 1e6,
        }
    }

    fn bands(&self, offset: f64) -> Vec<Band> {
        self.faults
            .iter()
            .map(|(from, to, label)| Band {
                from: from - offset,
                to: to.unwrap_or(self.end) - offset,
                label: label.clone(),
            })
            .collect()
    }
}

/// Successes per second per node (`errors` false) or errors per second per node.
pub fn per_second_chart(
    run: &PerSecond,
    id: &str,
    title: &str,
    errors: bool,
    offset: f64,
    range: (f64, f64),
    height: f64,
) -> Chart {
    let series = run
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Series {
            label: n.clone(),
            node: n.clone(),
            color: node_color(i),
            style: Style::Line,
            points: run
                .table
                .rows()
                .map(|r| {
                    let v = if errors { r.err[i] } else { r.ok[i] };
                    (r.second as f64 - 0.5 - offset, Some(v as f64))
                })
                .collect(),
        })
        .collect();
    Chart {
        id: id.into(),
        title: title.into(),
        x_label: if offset == 0.0 {
            "seconds since the start".into()
        } else {
            "seconds since the isolation".into()
        },
        y_label: if errors {
            "errors / s".into()
        } else {
            "increments / s".into()
        },
        width: 1200.0,
        height,
        x_range: range,
        series,
        bands: run.bands(offset),
    }
}

/// Latency of one node: median, 99th percentile and maximum per second (ms), and a dot
/// for every second with requests that timed out or lost their connection (at the max).
fn latency_chart(a: &Analysis, node: usize) -> Chart {
    let name = &a.header.nodes[node];
    let color = node_color(node);
    let pick = |f: fn(&crate::analysis::latency::Stat) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        a.latency
            .iter()
            .map(|s| (s.second as f64 - 0.5, s.nodes[node].as_ref().and_then(f)))
            .collect()
    };
    let series = vec![
        Series {
            label: "p50".into(),
            node: name.clone(),
            color,
            style: Style::Line,
            points: pick(|s| Some(s.p50_us as f64 / 1000.0)),
        },
        Series {
            label: "p99".into(),
            node: name.clone(),
            color,
            style: Style::Dashed,
            points: pick(|s| Some(s.p99_us as f64 / 1000.0)),
        },
        Series {
            label: "max".into(),
            node: name.clone(),
            color,
            style: Style::Dotted,
            points: pick(|s| Some(s.max_us as f64 / 1000.0)),
        },
        Series {
            label: "timed out / unknown".into(),
            node: name.clone(),
            color: "#b00000",
            style: Style::Dots,
            points: pick(|s| (s.unknown > 0).then_some(s.max_us as f64 / 1000.0)),
        },
    ];
    Chart {
        id: format!("latency-{name}"),
        title: format!("{name}: request latency per second"),
        x_label: "seconds since the start".into(),
        y_label: "ms".into(),
        width: 1200.0,
        height: 190.0,
        x_range: x_range(a, 0.0),
        series,
        bands: bands(a, 0.0),
    }
}

/// The seconds a per-second chart has points for, in order: the table's rows and `more`
/// (so a chart costs what the table does, not the record's span).
fn row_seconds(a: &Analysis, more: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut seconds: Vec<u64> = a.table.rows().map(|r| r.second).chain(more).collect();
    seconds.sort_unstable();
    seconds.dedup();
    seconds
}

/// A per-second count on the run's time line, faults shaded.
fn count_chart(
    a: &Analysis,
    id: &str,
    title: &str,
    y_label: &str,
    by_second: &std::collections::BTreeMap<u64, u64>,
) -> Chart {
    let seconds = row_seconds(a, by_second.keys().copied());
    Chart {
        id: id.into(),
        title: title.into(),
        x_label: "seconds since the start".into(),
        y_label: y_label.into(),
        width: 1200.0,
        height: 200.0,
        x_range: x_range(a, 0.0),
        series: vec![Series {
            label: y_label.split(' ').next().unwrap_or(id).into(),
            node: "all".into(),
            color: "#b00000",
            style: Style::Line,
            points: seconds
                .iter()
                .map(|s| {
                    (
                        *s as f64 - 0.5,
                        Some(*by_second.get(s).unwrap_or(&0) as f64),
                    )
                })
                .collect(),
        }],
        bands: bands(a, 0.0),
    }
}

/// Which server acknowledged each client's writes, per second (y: the server, n1 = 1),
/// for clients that follow a primary; each client's line is nudged apart from the others
/// so that clients on the same server stay visible.
fn served_chart(a: &Analysis) -> Chart {
    let n = a.header.nodes.len();
    let rows = row_seconds(a, a.served.by_client.iter().flat_map(|c| c.keys().copied()));
    let series = a
        .served
        .by_client
        .iter()
        .enumerate()
        .map(|(c, seconds)| {
            let nudge = (c as f64 - (n as f64 - 1.0) / 2.0) * 0.06;
            Series {
                label: format!("{}'s client", a.header.nodes[c]),
                node: a.header.nodes[c].clone(),
                color: node_color(c),
                style: Style::Line,
                points: rows
                    .iter()
                    .map(|s| {
                        (
                            *s as f64 - 0.5,
                            seconds.get(s).map(|k| *k as f64 + 1.0 + nudge),
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    let names: Vec<String> = a
        .header
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{} = {n}", i + 1))
        .collect();
    Chart {
        id: "served".into(),
        title: "Which server acknowledged each client's writes".into(),
        x_label: "seconds since the start".into(),
        y_label: format!("server ({})", names.join(", ")),
        width: 1200.0,
        height: 200.0,
        x_range: x_range(a, 0.0),
        series,
        bands: bands(a, 0.0),
    }
}

/// The serving-node chart and what it shows, if the record names serving nodes.
fn served_html(a: &Analysis) -> String {
    if a.served.by_client.iter().all(|c| c.is_empty()) {
        return String::new();
    }
    let two = &a.served.seconds_with_two_servers;
    let note = if two.is_empty() {
        r#"<p class="small">One server acknowledged every write in each second.</p>"#.to_string()
    } else {
        format!(
            r#"<p class="bad">In {} seconds (from second {} to {}), two or more servers acknowledged writes: a split brain, or a failover within that second.</p>"#,
            two.len(),
            two[0],
            two[two.len() - 1]
        )
    };
    format!("{}{note}", served_chart(a).render())
}

fn metrics_html(a: &Analysis) -> String {
    let (Some(sec), Some(ms)) = (a.seconds, a.precise) else {
        return "<p>No isolation in this record: no metrics.</p>".into();
    };
    let mut s = String::from(
        r#"<table class="metrics"><tr><th>metric</th><th class="num">seconds</th><th class="num">milliseconds</th></tr>"#,
    );
    for ((_, label, x), (_, _, y)) in rows(&sec).iter().zip(rows(&ms).iter()) {
        let secs = x.map_or("n/a".to_string(), |v| (v / 1_000_000).to_string());
        let millis = y.map_or("n/a".to_string(), |v| ((v + 500) / 1000).to_string());
        let _ = write!(
            s,
            r#"<tr><td>{label}</td><td class="num">{secs}</td><td class="num">{millis}</td></tr>"#
        );
    }
    s.push_str("</table>");
    let lenient = super::lenient_line(a);
    if !lenient.is_empty() {
        let _ = write!(s, r#"<p class="small">{}</p>"#, esc(lenient.trim()));
    }
    s.push_str(&loss_html(a));
    s
}

/// The data lost, right under the six metrics: red with its breakdown if any, else green.
fn loss_html(a: &Analysis) -> String {
    let line = esc(&super::loss_line(a));
    if a.correctness.lost_acknowledged_writes == 0 {
        format!(r#"<p class="good" id="loss">{line}</p>"#)
    } else {
        format!(r#"<p class="bad" id="loss">{line}</p>"#)
    }
}

/// With more than one fault: each one's figures (up to [`super::MAX_LISTED_FAULTS`]), the
/// spread of those that repeat, and every fault's figures over the run's time.
fn intervals_html(a: &Analysis, summary: &super::summary::Summary) -> String {
    if a.intervals.len() < 2 {
        return String::new();
    }
    let mut s = if a.intervals.len() <= super::MAX_LISTED_FAULTS {
        each_fault_html(a)
    } else {
        format!(
            r#"<p id="each-fault">{} faults: each one's figures are in summary.json (<code>intervals</code>); their spread and their course follow.</p>"#,
            a.intervals.len()
        )
    };
    let repeated: Vec<_> = summary.each_fault.iter().filter(|f| f.count > 1).collect();
    if repeated.is_empty() {
        return s;
    }
    s.push_str(r#"<h3>Faults that repeat (milliseconds)</h3><table class="spread"><tr><th>fault</th><th></th>"#);
    for m in METRICS {
        let _ = write!(s, r#"<th class="num">{}</th>"#, m.label);
    }
    s.push_str(r#"<th class="num">lost acknowledged writes</th></tr>"#);
    for f in repeated {
        for (k, stat) in ["median", "p90", "max"].into_iter().enumerate() {
            let head = if k == 0 {
                format!("{} {}, {} times", f.kind, f.target, f.count)
            } else {
                String::new()
            };
            let _ = write!(s, "<tr><td>{}</td><td>{stat}</td>", esc(&head));
            for (key, _) in super::spread_columns() {
                let cell = super::spread_cell(f, &key, stat);
                let _ = write!(s, r#"<td class="num">{cell}</td>"#);
            }
            s.push_str("</tr>");
        }
    }
    s.push_str("</table>");
    let series = METRICS
        .iter()
        .enumerate()
        .map(|(k, m)| Series {
            label: m.short.into(),
            node: m.key.into(),
            color: node_color(k),
            style: Style::Dots,
            points: a
                .intervals
                .iter()
                .map(|i| {
                    let v = (m.value)(&i.precise).map(|us| us as f64 / 1000.0);
                    (i.window.start_us as f64 / 1e6, v)
                })
                .collect(),
        })
        .collect();
    let chart = Chart {
        id: "each-fault-over-time".into(),
        title: "Each fault's figures, at its start".into(),
        x_label: "seconds since the start".into(),
        y_label: "ms".into(),
        width: 1200.0,
        height: 260.0,
        x_range: x_range(a, 0.0),
        series,
        bands: Vec::new(),
    };
    s.push_str(&chart.render());
    s
}

/// Each fault's figures, a row each.
fn each_fault_html(a: &Analysis) -> String {
    let mut s = String::from(
        r#"<h3>Each fault (milliseconds)</h3><table class="intervals"><tr><th>fault</th>"#,
    );
    for (_, label, _) in rows(&a.intervals[0].precise) {
        let _ = write!(s, r#"<th class="num">{label}</th>"#);
    }
    s.push_str(r#"<th class="num">lost acknowledged writes</th></tr>"#);
    for i in &a.intervals {
        let _ = write!(s, "<tr><td>{}</td>", esc(&super::window_line(&i.window)));
        for (_, _, v) in rows(&i.precise) {
            let cell = v.map_or("n/a".to_string(), |v| ((v + 500) / 1000).to_string());
            let _ = write!(s, r#"<td class="num">{cell}</td>"#);
        }
        let _ = write!(
            s,
            r#"<td class="num">{}</td></tr>"#,
            i.lost_acknowledged_writes
        );
    }
    s.push_str("</table>");
    s
}

fn errors_html(a: &Analysis) -> String {
    let mut s = String::from(
        r#"<table class="errors"><tr><th>node</th><th>phase</th><th>error (code)</th><th class="num">count</th></tr>"#,
    );
    let mut any = false;
    for (i, (node, phases)) in a.header.nodes.iter().zip(&a.errors).enumerate() {
        // A code's message: the first full error text that starts with it.
        let text = |code: &str| -> String {
            a.ops[i]
                .errors
                .keys()
                .find(|t| t.starts_with(code))
                .cloned()
                .unwrap_or_else(|| code.to_string())
        };
        for (phase, codes) in phases {
            let mut codes: Vec<_> = codes.iter().collect();
            codes.sort_by(|x, y| y.1.cmp(x.1));
            for (code, n) in codes {
                any = true;
                let phase = match phase {
                    Phase::Before => "before",
                    Phase::During => "during",
                    Phase::After => "after",
                };
                let _ = write!(
                    s,
                    r#"<tr><td>{}</td><td>{phase}</td><td>{}</td><td class="num">{n}</td></tr>"#,
                    esc(node),
                    esc(&text(code))
                );
            }
        }
    }
    s.push_str("</table>");
    if any {
        s
    } else {
        "<p>No request failed.</p>".into()
    }
}

fn correctness_html(a: &Analysis) -> String {
    let c = &a.correctness;
    let mut s = loss_html(a);
    if !c.losses.is_empty() {
        s.push_str("<ul>");
        for l in &c.losses {
            let _ = write!(
                s,
                "<li>{}</li>",
                esc(&super::describe_loss(l, &a.header.nodes))
            );
        }
        s.push_str("</ul>");
    }
    let class = if c.violations == 0 { "good" } else { "bad" };
    let _ = write!(
        s,
        r#"<p class="{class}">{}.</p>"#,
        esc(&super::sentence_case(&super::verdict(c)))
    );
    if !c.examples.is_empty() {
        s.push_str("<ul>");
        for v in &c.examples {
            let _ = write!(
                s,
                "<li>{}</li>",
                esc(&crate::analysis::correctness::describe(v, &a.header.nodes))
            );
        }
        s.push_str("</ul>");
    }
    s
}

fn spec_html(a: &Analysis, spec: Option<&Spec>) -> String {
    let h = &a.header;
    let mut rows: Vec<(String, String)> = vec![
        (
            "database".into(),
            format!(
                "{} {}",
                h.database,
                h.database_version.clone().unwrap_or_default()
            ),
        ),
        (
            "nodes".into(),
            h.nodes
                .iter()
                .enumerate()
                .map(|(i, n)| match h.addresses.get(i) {
                    Some(addr) => format!("{n} ({addr})"),
                    None => n.clone(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("started".into(), crate::clock::format_wall(h.t0_unix_ms)),
        (
            "increments a second".into(),
            super::rate_text(&super::summary::of(a)),
        ),
        (
            "server settings".into(),
            super::settings_text(h)
                .unwrap_or_else(|| "not known (a cluster Perseus did not start)".into()),
        ),
        (
            "writes".into(),
            match h.write.as_deref() {
                Some("cas") => "compare-and-set (--write cas)".into(),
                _ => "blind, as the seed's (--write blind)".into(),
            },
        ),
        (
            "record".into(),
            format!(
                "{:.1} s{}",
                a.end_us as f64 / 1e6,
                if a.ended_cleanly {
                    ""
                } else {
                    " (ended abruptly)"
                }
            ),
        ),
    ];
    if let Some(why) = a.stopped_early() {
        rows.push(("stopped early".into(), why.to_string()));
    }
    if let Some(s) = spec {
        // What was played: the scenario of the run, or the seed's timeline as one.
        let scenario = s.scenario();
        let name = if scenario.name.is_empty() {
            String::new()
        } else {
            format!("{}: ", scenario.name)
        };
        rows.push(("scenario".into(), format!("{name}{}", scenario.outline())));
        rows.push(("seed".into(), s.seed.to_string()));
        rows.push((
            "request timeout".into(),
            crate::clock::format_duration(s.request_timeout),
        ));
    }
    rows.push(("perseus".into(), env!("CARGO_PKG_VERSION").into()));
    let mut s = String::from("<table class=\"spec\">");
    for (k, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
    }
    s.push_str("</table>");
    s
}

pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>{body}</body></html>\n",
        esc(title)
    )
}

/// The report of one run.
pub fn report(a: &Analysis, spec: Option<&Spec>) -> String {
    let h = &a.header;
    let title = format!(
        "Perseus: {} {}",
        h.database,
        h.database_version.clone().unwrap_or_default()
    );
    let mut b = format!(
        "<h1>{}</h1><p class=\"lead\">{}</p>",
        esc(&title),
        esc(&summary_sentence(a))
    );
    b.push_str("<h2>Metrics</h2>");
    b.push_str(&metrics_html(a));
    let summary = crate::report::summary::of(a);
    b.push_str(&intervals_html(a, &summary));
    let expected = crate::report::expected_lines(&summary);
    if !expected.is_empty() {
        b.push_str(&format!("<pre>{}</pre>", esc(&expected)));
    }
    b.push_str(r#"<p class="small">Whole seconds: from the per-second table, as the original Perseus counted. Milliseconds: from every request, a node being dark between two completed increments more than 500 ms apart. Disturbance and recovery time run until the nodes are steady: serving, with no request failing or timing out.</p>"#);
    b.push_str("<h2>What the clients saw</h2>");
    let range = x_range(a, 0.0);
    b.push_str(
        &per_second_chart(
            &PerSecond::of(a),
            "throughput",
            "Completed increments per second, per node",
            false,
            0.0,
            range,
            300.0,
        )
        .render(),
    );
    b.push_str(
        &per_second_chart(
            &PerSecond::of(a),
            "errors",
            "Errors per second, per node (failed or timed out)",
            true,
            0.0,
            range,
            220.0,
        )
        .render(),
    );
    b.push_str(&served_html(a));
    b.push_str("<h2>Latency</h2>");
    for i in 0..h.nodes.len() {
        b.push_str(&latency_chart(a, i).render());
    }
    b.push_str("<h2>Errors by node, phase and code</h2>");
    b.push_str(&errors_html(a));
    b.push_str("<h2>Correctness</h2>");
    if a.correctness.lost_acknowledged_writes > 0 {
        b.push_str(
            &count_chart(
                a,
                "lost",
                "Acknowledged writes found lost, per second",
                "lost writes / s",
                &a.correctness.lost_by_second,
            )
            .render(),
        );
    }
    if a.correctness.violations > 0 {
        b.push_str(
            &count_chart(
                a,
                "violations",
                "Correctness violations per second (stale reads, lost writes, phantoms)",
                "violations / s",
                &a.correctness.by_second,
            )
            .render(),
        );
    }
    b.push_str(&correctness_html(a));
    b.push_str("<h2>Run</h2>");
    b.push_str(&spec_html(a, spec));
    page(&title, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long run with many faults of one kind: the page and the terminal give their
    /// spread and their course instead of a row each, and the page stays small.
    #[test]
    fn many_repeated_faults_are_summarised_not_listed() {
        let dir = std::env::temp_dir().join(format!("perseus-html-loop-{}", std::process::id()));
        crate::record::synthetic::synthetic_loop(&dir, 3_000, 60, 30).unwrap();
        let a = crate::analysis::analyse(&crate::record::in_results(&dir).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(a.intervals.len(), 100);
        let summary = crate::report::summary::of(&a);
        assert_eq!(summary.each_fault.len(), 1);
        assert_eq!(summary.each_fault[0].count, 100);
        let page = report(&a, None);
        assert!(page.contains("100 faults: each one's figures are in summary.json"));
        assert!(
            !page.contains(r#"<table class="intervals">"#),
            "no row per fault"
        );
        assert!(page.contains("isolate n2, 100 times"), "the spread");
        let chart = &page[page.find(r#"id="each-fault-over-time""#).unwrap()..];
        let chart = &chart[..chart.find("</svg>").unwrap()];
        let figures: usize = a
            .intervals
            .iter()
            .map(|i| {
                METRICS
                    .iter()
                    .filter(|m| (m.value)(&i.precise).is_some())
                    .count()
            })
            .sum();
        assert!(figures >= 300, "{figures} figures with a value");
        assert_eq!(
            chart.matches("<circle").count(),
            figures,
            "a dot per fault and figure it has"
        );
        // 3,000 seconds: every line thinned to the limit.
        assert!(page.len() < 1_000_000, "{} bytes", page.len());
        let terminal = crate::report::terminal_summary(&a);
        assert!(terminal.contains("100 faults"), "{terminal}");
        assert!(terminal.contains("isolate n2, 100 times"), "{terminal}");
    }

    /// The "Run" table names what was played: the scenario's phases and actions, and the seed.
    #[test]
    fn the_run_table_shows_the_scenario_played_and_the_seed() {
        let dir = std::env::temp_dir().join(format!("perseus-html-test-{}", std::process::id()));
        crate::record::synthetic::synthetic_record(&dir, 30, 50).unwrap();
        let a = crate::analysis::analyse(&crate::record::in_results(&dir).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);

        let mut spec = Spec {
            seed: 4242,
            ..Spec::default()
        };
        spec.scenario = Some(crate::scenario::Scenario::load("kill-leader", Some(3)).unwrap());
        let page = report(&a, Some(&spec));
        let run = &page[page.find("<h2>Run</h2>").unwrap()..];
        assert!(run.contains("kill-leader: "), "the scenario's name");
        assert!(run.contains("[kill leader]"), "its actions");
        assert!(!run.contains("isolate n2"), "not the default timeline");
        assert!(run.contains("<th>seed</th><td>4242</td>"), "the seed");

        let page = report(&a, Some(&Spec::default()));
        let run = &page[page.find("<h2>Run</h2>").unwrap()..];
        assert!(
            run.contains("[isolate n2]"),
            "the seed's timeline, as played"
        );
    }
}
