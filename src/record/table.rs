//! The seed's per-second table: successes and errors per node in each second, with the
//! fault markers between the rows.
//!
//! ```text
//! #legend: time|n1|n2|n3|n1:err|n2:err|n3:err
//! 1 14 36 22 0 0 0 2026/11/24 13:35:05     (fields separated by tabs)
//! # isolating n2
//! ```
//! Row `k` covers `[k-1, k)` seconds after the record's origin. A success is a completed
//! increment (its write acknowledged); an error is an operation that failed or timed out;
//! both are counted in the second in which they ended. A marker stands before the row of
//! the second in which its event happened. The same [`Tabulator`] renders the live table
//! and rebuilds it from a record, so both are identical.

use super::{Event, Op};
use crate::clock::format_wall;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// One second of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based: row `k` covers `[k-1, k)` seconds.
    pub second: u64,
    pub ok: Vec<u32>,
    pub err: Vec<u32>,
    /// The wall clock at the end of the second, as printed.
    pub wall: String,
}

impl Row {
    /// The nodes (bit `i` = node `i`) that completed at least one increment in this second.
    pub fn serving(&self) -> u64 {
        self.ok
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// The serving nodes none of whose requests failed or timed out in this second.
    pub fn steady(&self) -> u64 {
        self.serving()
            & self
                .err
                .iter()
                .enumerate()
                .filter(|(_, n)| **n == 0)
                .fold(0, |m, (i, _)| m | 1 << i)
    }

    pub fn render(&self) -> String {
        let mut s = self.second.to_string();
        for n in self.ok.iter().chain(&self.err) {
            s.push('\t');
            s.push_str(&n.to_string());
        }
        s.push('\t');
        s.push_str(&self.wall);
        s
    }
}

/// A line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Row(Row),
    /// `# isolating n2`: the verb and the target.
    Marker {
        verb: String,
        target: String,
    },
    /// `...`: rows left out: in logs published by hand, like the seed's, and where no
    /// operation ended for longer than [`MAX_EMPTY_ROWS`] seconds.
    Gap,
}

impl Line {
    pub fn render(&self) -> String {
        match self {
            Line::Row(r) => r.render(),
            Line::Marker { verb, target } => format!("# {verb} {target}"),
            Line::Gap => "...".into(),
        }
    }
}

/// The legend line for these node names.
pub fn legend(nodes: &[String]) -> String {
    let ok = nodes.join("|");
    let err: Vec<String> = nodes.iter().map(|n| format!("{n}:err")).collect();
    format!("#legend: time|{ok}|{}", err.join("|"))
}

/// A whole table: node names and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub nodes: Vec<String>,
    pub lines: Vec<Line>,
}

impl Table {
    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.lines.iter().filter_map(|l| match l {
            Line::Row(r) => Some(r),
            _ => None,
        })
    }

    pub fn render(&self) -> String {
        let mut s = legend(&self.nodes);
        s.push('\n');
        for l in &self.lines {
            s.push_str(&l.render());
            s.push('\n');
        }
        s
    }

    /// Parses a table in the seed's format (the legend first; `...` for rows left out).
    pub fn parse(text: &str, path: &Path) -> Result<Table> {
        let malformed = |line: usize, why: &str| Error::Malformed {
            what: "client log".into(),
            path: path.to_path_buf(),
            line,
            why: why.into(),
        };
        let mut nodes: Option<Vec<String>> = None;
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let no = i + 1;
            let line = raw.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(legend) = line.strip_prefix("#legend:") {
                let cols: Vec<&str> = legend.trim().split('|').collect();
                if cols.len() < 3 || cols[0] != "time" || !(cols.len() - 1).is_multiple_of(2) {
                    return Err(malformed(no, "legend is not time|nodes...|node:err..."));
                }
                let n = (cols.len() - 1) / 2;
                if let Some(e) = cols[1..=n]
                    .iter()
                    .find_map(|c| crate::nodeset::check_name(c).err())
                {
                    return Err(malformed(no, &e));
                }
                if n > super::MAX_NODES {
                    return Err(malformed(
                        no,
                        &format!("{n} nodes: at most {} are supported", super::MAX_NODES),
                    ));
                }
                nodes = Some(cols[1..=n].iter().map(|s| s.to_string()).collect());
                continue;
            }
            let Some(names) = &nodes else {
                return Err(malformed(no, "a line comes before the #legend line"));
            };
            if line == "..." {
                lines.push(Line::Gap);
            } else if let Some(marker) = line.strip_prefix('#') {
                let mut words = marker.split_whitespace();
                let verb = words.next().unwrap_or_default().to_string();
                let target = words.collect::<Vec<_>>().join(" ");
                lines.push(Line::Marker { verb, target });
            } else {
                let cols: Vec<&str> = line.split('\t').collect();
                let n = names.len();
                if cols.len() < 1 + 2 * n {
                    return Err(malformed(
                        no,
                        &format!("expected {} tab-separated columns", 2 + 2 * n),
                    ));
                }
                let num = |s: &str| {
                    s.trim()
                        .parse::<u32>()
                        .map_err(|_| malformed(no, "not a number"))
                };
                let second = cols[0]
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| malformed(no, "time is not a number"))?;
                if second == 0 || second > crate::clock::MAX_DURATION.as_secs() {
                    return Err(malformed(
                        no,
                        "time must count seconds from 1, up to a year",
                    ));
                }
                let ok = cols[1..=n]
                    .iter()
                    .map(|s| num(s))
                    .collect::<Result<Vec<_>>>()?;
                let err = cols[n + 1..=2 * n]
                    .iter()
                    .map(|s| num(s))
                    .collect::<Result<Vec<_>>>()?;
                let wall = cols
                    .get(2 * n + 1)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                lines.push(Line::Row(Row {
                    second,
                    ok,
                    err,
                    wall,
                }));
            }
        }
        let nodes = nodes.ok_or_else(|| malformed(1, "no #legend line"))?;
        Ok(Table { nodes, lines })
    }
}

/// The most rows in a row with nothing in them (no operation ended, no marker) that a table
/// shows; the rest of such a stretch is one `...` line. A table's length thus follows the
/// seconds that have events, not the span of its record.
pub const MAX_EMPTY_ROWS: u64 = 60;

/// Folds events into table lines, emitting each row once its second is over.
pub struct Tabulator {
    nodes: usize,
    t0_unix_ms: i64,
    /// Counts of seconds not yet emitted, by 1-based second.
    pending: BTreeMap<u64, (Vec<u32>, Vec<u32>)>,
    /// The latest second's counts so far, not yet in `pending` (ops end second after
    /// second).
    hot: (u64, Vec<u32>, Vec<u32>),
    /// Markers not yet emitted: (second they belong before, verb, target).
    markers: std::collections::VecDeque<(u64, String, String)>,
    next_second: u64,
    /// Rows with nothing in them emitted (or left out) since the last one with something.
    empty: u64,
}

impl Tabulator {
    pub fn new(nodes: usize, t0_unix_ms: i64) -> Self {
        Tabulator {
            nodes,
            t0_unix_ms,
            pending: BTreeMap::new(),
            hot: (0, vec![0; nodes], vec![0; nodes]),
            markers: Default::default(),
            next_second: 1,
            empty: 0,
        }
    }

    fn second_of(t_us: u64) -> u64 {
        t_us / 1_000_000 + 1
    }

    pub fn add(&mut self, event: &Event) {
        match event {
            Event::Op(op) => self.add_op(op),
            Event::Fault(f) => {
                let second = Self::second_of(f.t_us).max(self.next_second);
                self.markers
                    .push_back((second, f.verb.clone(), f.target.clone()));
            }
            Event::Mark { .. } | Event::End { .. } => {}
        }
    }

    fn add_op(&mut self, op: &Op) {
        if !op.is_writer() || (!op.is_success() && !op.is_error()) {
            return;
        }
        // An op that ends in a second already emitted (rare: it reached us late) counts in
        // the next row still open, so no operation is lost from the table.
        let second = Self::second_of(op.end_us()).max(self.next_second);
        if self.hot.0 != second {
            self.cool();
            self.hot.0 = second;
        }
        if op.is_success() {
            self.hot.1[op.node] += 1;
        } else {
            self.hot.2[op.node] += 1;
        }
    }

    /// Adds the latest second's counts to the pending ones.
    fn cool(&mut self) {
        let (second, ok, err) = &mut self.hot;
        if ok.iter().chain(err.iter()).all(|n| *n == 0) {
            return;
        }
        let n = self.nodes;
        let counts = self
            .pending
            .entry(*second)
            .or_insert_with(|| (vec![0; n], vec![0; n]));
        for (sum, k) in counts.0.iter_mut().zip(ok.iter_mut()) {
            *sum += std::mem::take(k);
        }
        for (sum, k) in counts.1.iter_mut().zip(err.iter_mut()) {
            *sum += std::mem::take(k);
        }
    }

    /// Emits every row whose second ended at or before `t_us` (record time), each preceded
    /// by the markers of its second; past [`MAX_EMPTY_ROWS`] empty rows in a row, one `...`
    /// stands for the rest of them.
    pub fn emit_until(&mut self, t_us: u64) -> Vec<Line> {
        self.cool();
        self.markers.make_contiguous().sort_by_key(|m| m.0);
        let mut out = Vec::new();
        let last = t_us / 1_000_000;
        while self.next_second <= last {
            let s = self.next_second;
            let marked = self.markers.front().is_some_and(|m| m.0 <= s);
            let counts = self.pending.remove(&s);
            if counts.is_none() && !marked {
                self.empty = self.empty.saturating_add(1);
                if self.empty > MAX_EMPTY_ROWS {
                    if self.empty == MAX_EMPTY_ROWS + 1 {
                        out.push(Line::Gap);
                    }
                    // Straight on to the next second with something in it.
                    let next = [
                        self.pending.keys().next().copied(),
                        self.markers.front().map(|m| m.0),
                    ]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(u64::MAX)
                    .clamp(s + 1, last + 1);
                    self.empty = self.empty.saturating_add(next - s - 1);
                    self.next_second = next;
                    continue;
                }
            } else {
                self.empty = 0;
            }
            while self.markers.front().is_some_and(|m| m.0 <= s) {
                let (_, verb, target) = self.markers.pop_front().expect("a marker");
                out.push(Line::Marker { verb, target });
            }
            let (ok, err) = counts.unwrap_or_else(|| (vec![0; self.nodes], vec![0; self.nodes]));
            out.push(Line::Row(Row {
                second: s,
                ok,
                err,
                wall: format_wall(
                    self.t0_unix_ms
                        .saturating_add((s as i64).saturating_mul(1000)),
                ),
            }));
            self.next_second += 1;
        }
        out
    }

    /// Markers still waiting for their row (e.g. at the very end of a record).
    pub fn flush_markers(&mut self) -> Vec<Line> {
        self.markers.make_contiguous().sort_by_key(|m| m.0);
        self.markers
            .drain(..)
            .map(|(_, verb, target)| Line::Marker { verb, target })
            .collect()
    }
}

/// Rebuilds the table of a record file: every complete second, with its markers.
pub fn from_record(path: &Path) -> Result<Table> {
    let reader = super::Reader::open(path)?;
    let header = reader.header().clone();
    let mut tab = Tabulator::new(header.nodes.len(), header.t0_unix_ms);
    let mut last_us = 0;
    for event in reader {
        let event = event?;
        last_us = last_us.max(event_time(&event));
        tab.add(&event);
    }
    let mut lines = tab.emit_until(last_us);
    lines.extend(tab.flush_markers());
    Ok(Table {
        nodes: header.nodes,
        lines,
    })
}

/// The time of an event on the record's time line (the end, for an operation).
pub fn event_time(event: &Event) -> u64 {
    match event {
        Event::Op(op) => op.end_us(),
        Event::Fault(f) => f.t_us,
        Event::Mark { t_us, .. } | Event::End { t_us } => *t_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FaultEvent, Kind, Outcome};

    fn write(node: usize, end_us: u64, outcome: Outcome) -> Event {
        Event::Op(Op {
            node,
            key: None,
            kind: Kind::Write,
            start_us: end_us - 10,
            duration_us: 10,
            outcome,
            value: Some(1),
            error: None,
            attempt: None,
            revision: None,
            served_by: None,
        })
    }

    /// Operations that reach the table late, seconds out of order, still count in their
    /// own second's row (or the next still open), and an emit in between loses none.
    #[test]
    fn late_operations_count_in_their_second_however_they_interleave() {
        let mut t = Tabulator::new(3, 0);
        let mut expected = std::collections::BTreeMap::<(u64, usize), u32>::new();
        let mut lines = Vec::new();
        for i in 0..3_000u64 {
            // Mostly in order, one in seven a few seconds late.
            let late = if i % 7 == 3 { 2_500_000 } else { 0 };
            let end = (i * 10_000).saturating_sub(late) + 11;
            let node = (i % 3) as usize;
            t.add(&write(node, end, Outcome::Ok));
            *expected.entry((end / 1_000_000 + 1, node)).or_default() += 1;
            if i == 1_500 {
                lines.extend(t.emit_until(10_000_000));
            }
        }
        lines.extend(t.emit_until(40_000_000));
        let rows: Vec<&Row> = lines
            .iter()
            .filter_map(|l| match l {
                Line::Row(r) => Some(r),
                _ => None,
            })
            .collect();
        let total: u32 = rows.iter().flat_map(|r| r.ok.iter()).sum();
        assert_eq!(total, 3_000, "no operation is lost");
        // Seconds after the emit hold exactly their own operations.
        for r in rows.iter().filter(|r| r.second > 12) {
            for node in 0..3 {
                let want = expected.get(&(r.second, node)).copied().unwrap_or(0);
                assert_eq!(r.ok[node], want, "second {} n{}", r.second, node + 1);
            }
        }
    }

    #[test]
    fn rows_count_successes_and_errors_per_second_with_markers_before_their_row() {
        let mut t = Tabulator::new(2, 0);
        t.add(&write(0, 100_000, Outcome::Ok));
        t.add(&write(1, 900_000, Outcome::Ok));
        t.add(&write(1, 999_999, Outcome::Unknown));
        t.add(&Event::Fault(FaultEvent {
            t_us: 1_500_000,
            verb: "isolating".into(),
            target: "n2".into(),
        }));
        t.add(&write(0, 1_000_000, Outcome::Ok));
        assert!(t.emit_until(999_999).is_empty(), "no second is over yet");
        let lines: Vec<String> = t.emit_until(2_000_000).iter().map(Line::render).collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("1\t1\t1\t0\t1\t"), "{}", lines[0]);
        assert_eq!(lines[1], "# isolating n2");
        assert!(lines[2].starts_with("2\t1\t0\t0\t0\t"), "{}", lines[2]);
    }

    #[test]
    fn the_seed_log_parses_with_its_gaps_and_renders_back() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/seed-tidb.log"
        ));
        let text = std::fs::read_to_string(path).unwrap();
        let table = Table::parse(&text, path).unwrap();
        assert_eq!(table.nodes, vec!["tidb1", "tidb2", "tidb3"]);
        assert_eq!(table.rows().count(), 38);
        assert_eq!(table.lines.iter().filter(|l| **l == Line::Gap).count(), 9);
        let rendered = table.render();
        assert_eq!(rendered.trim_end(), text.trim_end());
    }

    #[test]
    fn a_table_without_legend_is_rejected_with_the_line() {
        let err = Table::parse("1\t2\t3\n", Path::new("x.log"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    /// A record that spans months gets a row for each second with something in it, up to
    /// [`MAX_EMPTY_ROWS`] empty rows after it and one `...`, whether emitted at once or
    /// second by second as a watch does.
    #[test]
    fn empty_stretches_become_one_gap_line_after_a_minute_of_rows() {
        let day = 86_400_000_000u64;
        let events: Vec<Event> = (0..5)
            .map(|i| write(0, i * day + 500_000, Outcome::Ok))
            .chain([Event::Fault(FaultEvent {
                t_us: 2 * day + 10_000_000,
                verb: "isolating".into(),
                target: "n2".into(),
            })])
            .collect();
        let mut at_once = Tabulator::new(2, 0);
        for e in &events {
            at_once.add(e);
        }
        let lines = at_once.emit_until(4 * day + 1_000_000);
        let rows = lines.iter().filter(|l| matches!(l, Line::Row(_))).count();
        let gaps = lines.iter().filter(|l| **l == Line::Gap).count();
        // Days 0–4 have a row each; days 0–3 are followed by 60 empty rows and a gap, but
        // the marker 10 s into day 2 gets its row, which 60 empty rows and a gap follow.
        assert_eq!((rows, gaps), (5 + 3 * 60 + 9 + 1 + 60, 4));
        assert!(lines.contains(&Line::Marker {
            verb: "isolating".into(),
            target: "n2".into()
        }));
        // The same, emitted second by second through the first two days.
        let mut live = Tabulator::new(2, 0);
        let mut second_by_second = Vec::new();
        for e in &events {
            live.add(e);
        }
        for s in 1..=(day / 1_000_000 + 100) {
            second_by_second.extend(live.emit_until(s * 1_000_000));
        }
        second_by_second.extend(live.emit_until(4 * day + 1_000_000));
        assert_eq!(second_by_second, lines);
    }
}
