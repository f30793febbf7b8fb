//! Metrics computed from a record: the seed's six, in whole seconds from the per-second
//! table and in milliseconds from the operation history.
//!
//! # Definitions
//! Both forms start from a time line of *segments*, each with the set of nodes that were
//! **serving** during it and the set that were **steady**:
//! - whole seconds: one segment per row of the table; a node serves in a row if it completed
//!   at least one increment in that second, and is steady in it if, besides, none of its
//!   requests failed or timed out in that second (rows left out of a published log are no
//!   segment at all: they count for nothing);
//! - milliseconds: a node is **dark** from one completed increment to its next one when the
//!   two are more than [`DARK_GAP_US`] apart (and from the start, or to the end, of the record
//!   likewise); otherwise it serves. It is steady when it serves and no request of it is
//!   on its way to failing: from the start to the end of every failed or timed-out request
//!   it is not.
//!
//! The fault window comes from the first `isolating X` event and the next `rejoining X`.
//! The **isolation phase** runs from the isolation to the rejoin, the **recovery phase** from
//! the rejoin to the end of the record (whole seconds: from the start of the row in which
//! the event happened). `C` is the set of nodes that stayed connected (all but `X`).
//! - **downtime** (on isolation / on recovery): time in the phase when no node served;
//! - **partial downtime**: time in the phase when some node served but not every node of `C`
//!   (with 3 nodes: exactly one of the two connected nodes served);
//! - **disturbance time**: from the isolation to the start of the last stretch of the
//!   isolation phase in which every node of `C` is steady without a break to the phase's
//!   end; 0 if `C` never stopped being steady; `None` (n/a) if the phase ended with some node
//!   of `C` not steady;
//! - **recovery time**: the same from the rejoin, for every node (the rejoined one included),
//!   over the recovery phase.
//!
//! Steady is the seed's word ("until two nodes became steady"): a client that completes
//! increments but also sees requests time out is not steady. Perseus counted such a second as
//! steady until `summary.json` version 2; that *lenient* reading of disturbance and recovery time is kept
//! beside each interval ([`Interval::lenient_seconds`], [`Interval::lenient_precise`]) so
//! reports can show both where they differ. The seed's own TiDB excerpt has no row in which
//! a node both served and erred, so both readings give its figures.

use crate::error::Result;
pub mod correctness;
pub mod latency;
pub mod servers;

use crate::record::faults::{self, FaultKind};
use crate::record::table::{Line, Table, Tabulator};
use crate::record::{Event, FaultEvent, Header, Outcome, Reader};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Two completed increments of one node further apart than this leave it dark in between.
pub const DARK_GAP_US: u64 = 500_000;

pub use crate::nodeset::{all_nodes, NodeSet};

/// A stretch of time during which the same nodes served, and the same were steady.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start_us: u64,
    pub end_us: u64,
    pub serving: NodeSet,
    /// The serving nodes none of whose requests was failing (a subset of `serving`).
    pub steady: NodeSet,
}

/// `segments` read leniently: every serving node counts as steady.
pub fn lenient(segments: &[Segment]) -> Vec<Segment> {
    segments
        .iter()
        .map(|s| Segment {
            steady: s.serving,
            ..*s
        })
        .collect()
}

/// A fault interval: from a fault's start marker (`isolating n2`) to its end marker
/// (`rejoining n2`), if it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultWindow {
    pub kind: &'static FaultKind,
    /// The target text of its markers.
    pub target: String,
    /// The nodes it takes out of service; the others are expected to keep serving.
    pub affected: NodeSet,
    pub start_us: u64,
    pub end_us: Option<u64>,
    /// The start of the next fault after this one ended: where its recovery phase stops.
    pub next_us: Option<u64>,
}

/// One fault interval with its figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub window: FaultWindow,
    /// Whole seconds, from the table.
    pub seconds: Figures,
    /// From the operation history.
    pub precise: Figures,
    /// Whole seconds, counting a node that served as steady even while requests of it
    /// failed (as `summary.json` version 1 did; see the module's definitions).
    pub lenient_seconds: Figures,
    /// Milliseconds, likewise.
    pub lenient_precise: Figures,
    /// Acknowledged increments found lost from this fault's start until the next fault's
    /// (for the last, until the end, the final reads included).
    pub lost_acknowledged_writes: u64,
}

/// The seed's six figures, in microseconds. `None`: not applicable (never steady, or no rejoin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Figures {
    pub downtime_on_isolation: u64,
    pub partial_downtime_on_isolation: u64,
    pub disturbance_time: Option<u64>,
    pub downtime_on_recovery: Option<u64>,
    pub partial_downtime_on_recovery: Option<u64>,
    pub recovery_time: Option<u64>,
}

/// One of the seed's figures: how every output names it, and where it is in [`Figures`].
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Its key in `summary.json` (with `_s` and `_ms`).
    pub key: &'static str,
    /// Its name in the terminal and the report: `downtime on isolation`.
    pub label: &'static str,
    /// Its short name, for the columns of `compare`.
    pub short: &'static str,
    /// Its narrowest name, for the terminal's table of each fault.
    pub column: &'static str,
    /// Its value in a run (µs; `None`: not applicable).
    pub value: fn(&Figures) -> Option<u64>,
}

/// The seed's six figures, in its order: every table, page and file that shows them
/// iterates this list.
pub const METRICS: [Metric; 6] = [
    Metric {
        key: "downtime_on_isolation",
        label: "downtime on isolation",
        short: "downtime on isolation",
        column: "down",
        value: |f| Some(f.downtime_on_isolation),
    },
    Metric {
        key: "partial_downtime_on_isolation",
        label: "partial downtime on isolation",
        short: "partial on isolation",
        column: "partial",
        value: |f| Some(f.partial_downtime_on_isolation),
    },
    Metric {
        key: "disturbance_time",
        label: "disturbance time",
        short: "disturbance",
        column: "disturb",
        value: |f| f.disturbance_time,
    },
    Metric {
        key: "downtime_on_recovery",
        label: "downtime on recovery",
        short: "downtime on recovery",
        column: "down after",
        value: |f| f.downtime_on_recovery,
    },
    Metric {
        key: "partial_downtime_on_recovery",
        label: "partial downtime on recovery",
        short: "partial on recovery",
        column: "partial aft",
        value: |f| f.partial_downtime_on_recovery,
    },
    Metric {
        key: "recovery_time",
        label: "recovery time",
        short: "recovery",
        column: "recovery",
        value: |f| f.recovery_time,
    },
];

impl Figures {
    /// The figures in [`METRICS`] order (µs; `None`: n/a).
    pub fn values(&self) -> [Option<u64>; 6] {
        METRICS.map(|m| (m.value)(self))
    }
}

fn overlap(seg: &Segment, a: u64, b: u64) -> u64 {
    seg.end_us.min(b).saturating_sub(seg.start_us.max(a))
}

/// Time in `[a, b)` covered by segments for which `pred(serving)` holds.
pub fn time_where(segments: &[Segment], a: u64, b: u64, pred: impl Fn(NodeSet) -> bool) -> u64 {
    segments
        .iter()
        .filter(|s| pred(s.serving))
        .map(|s| overlap(s, a, b))
        .sum()
}

/// Time from `a` until every node of `expected` is steady through to `b`: `Some(0)` if
/// they never stopped, `None` if the phase ends with one of them not steady.
pub fn settle_time(segments: &[Segment], a: u64, b: u64, expected: NodeSet) -> Option<u64> {
    let mut last_bad_end = None;
    let mut good_after = false;
    for s in segments.iter().filter(|s| overlap(s, a, b) > 0) {
        if s.steady & expected != expected {
            last_bad_end = Some(s.end_us.min(b));
            good_after = false;
        } else {
            good_after = true;
        }
    }
    match last_bad_end {
        None => Some(0),
        Some(end) if good_after => Some(end - a),
        Some(_) => None,
    }
}

/// The seed's six figures for one fault window over a time line ending at `end_us`: the
/// "isolation" phase is the fault's interval, the "recovery" phase runs from its end to
/// the next fault (or the end of the time line). `margin_us`: how long before the next
/// fault the time line can no longer tell serving from dark (a node is only known to be
/// dark once its silence exceeds the dark gap), so the recovery phase stops that much
/// earlier when a next fault cuts it.
pub fn seed_figures(
    segments: &[Segment],
    nodes: usize,
    w: &FaultWindow,
    end_us: u64,
    margin_us: u64,
) -> Figures {
    let all = all_nodes(nodes);
    let connected = all & !w.affected;
    let partial = |s: NodeSet| s != 0 && s & connected != connected;
    let iso_end = w.end_us.unwrap_or(end_us).max(w.start_us);
    let mut f = Figures {
        downtime_on_isolation: time_where(segments, w.start_us, iso_end, |s| s == 0),
        partial_downtime_on_isolation: time_where(segments, w.start_us, iso_end, partial),
        disturbance_time: settle_time(segments, w.start_us, iso_end, connected),
        ..Figures::default()
    };
    if let Some(r) = w.end_us {
        let end = w
            .next_us
            .map_or(end_us, |n| n.saturating_sub(margin_us))
            .min(end_us)
            .max(r);
        f.downtime_on_recovery = Some(time_where(segments, r, end, |s| s == 0));
        f.partial_downtime_on_recovery = Some(time_where(segments, r, end, partial));
        f.recovery_time = settle_time(segments, r, end, all);
    }
    f
}

/// One segment per row of a table (rows are whole seconds: row `k` is `[k-1, k)`).
pub fn segments_from_rows<'a>(
    rows: impl Iterator<Item = &'a crate::record::table::Row>,
) -> Vec<Segment> {
    rows.map(|r| Segment {
        start_us: (r.second - 1) * 1_000_000,
        end_us: r.second * 1_000_000,
        serving: r.serving(),
        steady: r.steady(),
    })
    .collect()
}

/// Every fault interval of a record: each start marker paired with the next end marker
/// of the same kind and target.
pub fn fault_windows<'a>(
    nodes: &[String],
    events: impl IntoIterator<Item = &'a FaultEvent>,
) -> Vec<FaultWindow> {
    let mut pairing = WindowPairing::default();
    for e in events {
        pairing.event(nodes, e);
    }
    pairing.windows()
}

/// The first fault interval of a record, if any.
pub fn fault_window<'a>(
    nodes: &[String],
    events: impl IntoIterator<Item = &'a FaultEvent>,
) -> Option<FaultWindow> {
    fault_windows(nodes, events).into_iter().next()
}

/// Pairs fault markers into intervals as they come, in time and memory linear in the
/// markers: a start marker ends at the first later end marker of its kind and target,
/// and is no interval at all if an `aborted` marker of it comes first.
#[derive(Debug, Default)]
pub struct WindowPairing {
    /// Every start marker's interval, in order, and whether it was aborted.
    started: Vec<(FaultWindow, bool)>,
    /// Open intervals by the marker that ends them: (verb, target) → indices.
    by_end: HashMap<(&'static str, String), Vec<usize>>,
    /// Open intervals by the `aborted` target that cancels them: `verb target` → indices.
    by_abort: HashMap<String, Vec<usize>>,
    /// Started intervals before this index were all aborted.
    first: usize,
}

impl WindowPairing {
    /// Takes the next fault marker of the record.
    pub fn event(&mut self, nodes: &[String], e: &FaultEvent) {
        let ending = faults::KINDS
            .iter()
            .find(|k| k.ending == e.verb)
            .map(|k| k.ending);
        if let Some(ids) = ending.and_then(|v| self.by_end.remove(&(v, e.target.clone()))) {
            for i in ids {
                let (w, aborted) = &mut self.started[i];
                if !*aborted && w.end_us.is_none() {
                    w.end_us = Some(e.t_us);
                }
            }
        }
        if e.verb == faults::ABORTED {
            for i in self.by_abort.remove(&e.target).unwrap_or_default() {
                let (w, aborted) = &mut self.started[i];
                if w.end_us.is_none() {
                    *aborted = true;
                }
            }
            while self.started.get(self.first).is_some_and(|(_, a)| *a) {
                self.first += 1;
            }
        }
        if let Some(kind) = faults::by_starting(&e.verb) {
            let i = self.started.len();
            self.started.push((
                FaultWindow {
                    kind,
                    target: e.target.clone(),
                    affected: faults::affected(kind, &e.target, nodes)
                        .iter()
                        .fold(0, |m, i| m | 1 << i),
                    start_us: e.t_us,
                    end_us: None,
                    next_us: None,
                },
                false,
            ));
            self.by_end
                .entry((kind.ending, e.target.clone()))
                .or_default()
                .push(i);
            self.by_abort
                .entry(format!("{} {}", e.verb, e.target))
                .or_default()
                .push(i);
        }
    }

    /// The first interval as far as the markers so far tell (without `next_us`).
    pub fn first(&self) -> Option<&FaultWindow> {
        self.started.get(self.first).map(|(w, _)| w)
    }

    /// Every interval, each with the start of the next fault after it ended.
    pub fn windows(self) -> Vec<FaultWindow> {
        let mut out: Vec<FaultWindow> = self
            .started
            .into_iter()
            .filter(|(_, aborted)| !aborted)
            .map(|(w, _)| w)
            .collect();
        let mut starts: Vec<u64> = out.iter().map(|w| w.start_us).collect();
        starts.sort_unstable();
        for w in &mut out {
            w.next_us = w.end_us.and_then(|e| {
                let i = starts.partition_point(|s| *s < e);
                starts.get(i).copied()
            });
        }
        out
    }
}

/// Where each row of a table stands in time, with markers at the start of the row after them.
fn table_fault_events(table: &Table) -> Vec<FaultEvent> {
    let mut events = Vec::new();
    let mut pending = Vec::new();
    for line in &table.lines {
        match line {
            Line::Marker { verb, target } => pending.push((verb.clone(), target.clone())),
            Line::Row(r) => {
                for (verb, target) in pending.drain(..) {
                    events.push(FaultEvent {
                        t_us: (r.second - 1) * 1_000_000,
                        verb,
                        target,
                    });
                }
            }
            Line::Gap => {}
        }
    }
    events
}

/// Aligns a time down to the start of its row.
fn row_start(t_us: u64) -> u64 {
    t_us / 1_000_000 * 1_000_000
}

/// A window with its times aligned down to the start of their rows.
fn row_aligned(w: &FaultWindow) -> FaultWindow {
    FaultWindow {
        start_us: row_start(w.start_us),
        end_us: w.end_us.map(row_start),
        next_us: w.next_us.map(row_start),
        ..w.clone()
    }
}

/// The seed's figures in whole seconds from a table (a live one, or a published log), for
/// its first fault.
pub fn figures_from_table(table: &Table) -> Option<(FaultWindow, Figures)> {
    let events = table_fault_events(table);
    let w = row_aligned(&fault_window(&table.nodes, &events)?);
    let segments = segments_from_rows(table.rows());
    let end = segments.last().map_or(0, |s| s.end_us);
    let f = seed_figures(&segments, table.nodes.len(), &w, end, 0);
    Some((w, f))
}

/// Follows each node's completed increments and failed requests, and collects the
/// stretches in which it was dark, and those in which a request of it was failing.
#[derive(Debug, Clone)]
pub struct DarkTracker {
    last_ok: Vec<u64>,
    dark: Vec<Vec<(u64, u64)>>,
    failing: Vec<Vec<(u64, u64)>>,
}

impl DarkTracker {
    /// Every node starts at the record's origin, dark until its first increment.
    pub fn new(nodes: usize) -> Self {
        DarkTracker {
            last_ok: vec![0; nodes],
            dark: vec![Vec::new(); nodes],
            failing: vec![Vec::new(); nodes],
        }
    }

    /// A request of `node`'s client that failed or timed out, from `start_us` to `end_us`.
    pub fn failure(&mut self, node: usize, start_us: u64, end_us: u64) {
        let f = &mut self.failing[node];
        // Requests of one client follow each other: merge what touches the last one.
        match f.last_mut() {
            Some(last) if start_us <= last.1 => last.1 = last.1.max(end_us),
            _ => f.push((start_us, end_us.max(start_us))),
        }
    }

    /// A completed increment of `node` at `t_us` (per node, in time order).
    pub fn success(&mut self, node: usize, t_us: u64) {
        let last = self.last_ok[node];
        if t_us > last + DARK_GAP_US {
            self.dark[node].push((last, t_us));
        }
        self.last_ok[node] = self.last_ok[node].max(t_us);
    }

    /// The time line up to `end_us` as segments of constant serving sets.
    pub fn segments(mut self, end_us: u64) -> Vec<Segment> {
        let n = self.last_ok.len();
        for node in 0..n {
            if end_us > self.last_ok[node] + DARK_GAP_US {
                self.dark[node].push((self.last_ok[node], end_us));
            }
        }
        let mut cuts: Vec<u64> = vec![0, end_us];
        for d in self.dark.iter().chain(&self.failing).flatten() {
            cuts.push(d.0.min(end_us));
            cuts.push(d.1.min(end_us));
        }
        cuts.sort_unstable();
        cuts.dedup();
        // Each node's stretches are in time order: walk them with one cursor per node.
        let mut at_dark = vec![0; n];
        let mut at_failing = vec![0; n];
        let inside = |list: &[(u64, u64)], at: &mut usize, t: u64| {
            while *at < list.len() && list[*at].1 <= t {
                *at += 1;
            }
            *at < list.len() && list[*at].0 <= t
        };
        let mut segments: Vec<Segment> = Vec::with_capacity(cuts.len());
        for pair in cuts.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let mid = a + (b - a) / 2;
            let (mut serving, mut steady) = (0, 0);
            for i in 0..n {
                if !inside(&self.dark[i], &mut at_dark[i], mid) {
                    serving |= 1 << i;
                    if !inside(&self.failing[i], &mut at_failing[i], mid) {
                        steady |= 1 << i;
                    }
                }
            }
            match segments.last_mut() {
                Some(last) if last.serving == serving && last.steady == steady => last.end_us = b,
                _ => segments.push(Segment {
                    start_us: a,
                    end_us: b,
                    serving,
                    steady,
                }),
            }
        }
        segments
    }
}

/// Counts of one node's operations.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct NodeOps {
    pub increments: u64,
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
    /// Errors by text, most frequent first in reports.
    pub errors: BTreeMap<String, u64>,
}

/// Where an error stands relative to the fault window.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Before,
    During,
    After,
}

impl Phase {
    pub fn of(t_us: u64, window: Option<&FaultWindow>) -> Phase {
        match window {
            Some(w) if t_us >= w.start_us => match w.end_us {
                Some(r) if t_us >= r => Phase::After,
                _ => Phase::During,
            },
            _ => Phase::Before,
        }
    }
}

/// What an error is counted under: the server's code where the text starts with one
/// (`1047 WSREP has not…` → `1047`), else the whole text.
pub fn error_code(text: &str) -> &str {
    match text.split_once(' ') {
        Some((code, _)) if !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()) => code,
        _ => text,
    }
}

/// The most distinct error texts (or codes) counted apart, per node (and phase); the rest
/// count together under [`OTHER_ERRORS`]. Servers have a few dozen at most.
pub const MAX_ERROR_KINDS: usize = 100;
/// What errors past [`MAX_ERROR_KINDS`] count under.
pub const OTHER_ERRORS: &str = "(other errors)";

/// Counts one error under its text, or under [`OTHER_ERRORS`] once there are
/// [`MAX_ERROR_KINDS`] texts.
fn count_error(counts: &mut BTreeMap<String, u64>, text: &str) {
    if let Some(n) = counts.get_mut(text) {
        *n += 1;
    } else if counts.len() < MAX_ERROR_KINDS {
        counts.insert(text.to_string(), 1);
    } else {
        *counts.entry(OTHER_ERRORS.to_string()).or_default() += 1;
    }
}

/// Errors counted by node, phase and code: `[node][phase] → code → count`.
pub type ErrorsByPhase = Vec<BTreeMap<Phase, BTreeMap<String, u64>>>;

/// Everything Perseus computes from one record.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub header: Header,
    pub table: Table,
    pub faults: Vec<FaultEvent>,
    /// Every fault interval with its figures, in order.
    pub intervals: Vec<Interval>,
    /// Free-form marks: (time, text).
    pub marks: Vec<(u64, String)>,
    pub window: Option<FaultWindow>,
    /// Whole seconds, from the table.
    pub seconds: Option<Figures>,
    /// Milliseconds (µs precision), from the operation history.
    pub precise: Option<Figures>,
    /// The lenient reading of both (see [`Interval::lenient_seconds`]).
    pub lenient: Option<(Figures, Figures)>,
    pub ops: Vec<NodeOps>,
    pub errors: ErrorsByPhase,
    pub correctness: correctness::Correctness,
    /// The writers' request latency per node per second.
    pub latency: Vec<latency::LatencySecond>,
    /// Which server acknowledged each client's writes, per second (clients that follow a
    /// primary).
    pub served: servers::Served,
    /// The end of the record (its `E` line, or its last event).
    pub end_us: u64,
    /// False if the record has no `E` line (its writer was stopped abruptly).
    pub ended_cleanly: bool,
}

/// The losses found from `from_us` until `until_us` (`None`: the end), by the fault event
/// that each came after: `lost_after_events[k]` were found after `faults[k - 1]`.
fn lost_in(
    faults: &[FaultEvent],
    lost_after_events: &[u64],
    from_us: u64,
    until_us: Option<u64>,
) -> u64 {
    faults
        .iter()
        .zip(&lost_after_events[1..])
        .filter(|(f, _)| f.t_us >= from_us && until_us.is_none_or(|u| f.t_us < u))
        .map(|(_, lost)| lost)
        .sum()
}

impl Analysis {
    /// Why the run or watch stopped early, from its record's `stopped-early` mark.
    pub fn stopped_early(&self) -> Option<&str> {
        self.marks.iter().find_map(|(_, text)| {
            text.strip_prefix(crate::record::marks::STOPPED_EARLY)?
                .strip_prefix(' ')
        })
    }
}

/// Reads a record once and computes the table, the metrics and the operation counts.
pub fn analyse(path: &Path) -> Result<Analysis> {
    let reader = Reader::open(path)?;
    let header = reader.header().clone();
    let n = header.nodes.len();
    let mut tab = Tabulator::new(n, header.t0_unix_ms);
    let mut dark = DarkTracker::new(n);
    let mut faults = Vec::new();
    let mut marks = Vec::new();
    let mut ops = vec![NodeOps::default(); n];
    let mut end_us = 0;
    let mut ended_cleanly = false;
    let mut errors: ErrorsByPhase = vec![BTreeMap::new(); n];
    let mut checker = correctness::Checker::new(n);
    let mut latency = latency::LatencyTracker::new(n);
    let mut served = servers::ServedTracker::new(n);
    // The fault window as known so far in the record (for the checker's phases).
    let mut pairing = WindowPairing::default();
    let mut live_window: Option<FaultWindow> = None;
    // Losses found after k fault events and before the next, at index k.
    let mut lost_after_events: Vec<u64> = vec![0];
    // The table and who served beside the reading (about half the work); the rest here.
    let beside = |event: &Event| {
        if let Event::Op(op) = event {
            if op.is_writer() {
                served.op(op);
            }
        }
        tab.add(event);
    };
    reader.for_each_in_background(beside, |event| {
        end_us = end_us.max(crate::record::table::event_time(event));
        match event {
            Event::Op(op) => {
                let lost = checker.lost();
                checker.op(op, Phase::of(op.end_us(), live_window.as_ref()));
                lost_after_events[faults.len()] += checker.lost() - lost;
            }
            Event::Fault(f) => {
                faults.push(f.clone());
                lost_after_events.push(0);
                pairing.event(&header.nodes, f);
                live_window = pairing.first().cloned();
            }
            _ => {}
        }
        match event {
            Event::Op(op) if !op.is_writer() => {}
            Event::Op(op) => {
                latency.op(op);
                let o = &mut ops[op.node];
                match op.outcome {
                    Outcome::Ok => o.ok += 1,
                    Outcome::Fail => o.fail += 1,
                    Outcome::Unknown => o.unknown += 1,
                }
                if op.is_success() {
                    o.increments += 1;
                    dark.success(op.node, op.end_us());
                } else if op.is_error() {
                    dark.failure(op.node, op.start_us, op.end_us());
                }
                if let Some(e) = &op.error {
                    count_error(&mut o.errors, e);
                    let phase = Phase::of(op.end_us(), live_window.as_ref());
                    count_error(errors[op.node].entry(phase).or_default(), error_code(e));
                }
            }
            Event::Fault(_) => {}
            Event::End { .. } => ended_cleanly = true,
            Event::Mark { t_us, text } => {
                if text == crate::record::marks::FINAL_READS {
                    checker.final_reads_begin();
                }
                marks.push((*t_us, text.clone()))
            }
        }
        Ok(())
    })?;
    let mut lines = tab.emit_until(end_us);
    lines.extend(tab.flush_markers());
    let table = Table {
        nodes: header.nodes.clone(),
        lines,
    };
    let windows = pairing.windows();
    let window = windows.first().cloned();
    // The experiment's time line ends where the clients stopped: the final reads that follow
    // are the checker's, not the workload's, and may take a while (a read through another
    // node's proposer competes for the key in Gryadka), which is no outage.
    let clients_end_us = marks
        .iter()
        .find(|(_, text)| text == crate::record::marks::FINAL_READS)
        .map_or(end_us, |(t, _)| (*t).min(end_us));
    let rows: Vec<Segment> = segments_from_rows(table.rows())
        .into_iter()
        .filter(|s| s.start_us < clients_end_us)
        .collect();
    let rows_end = rows.last().map_or(0, |s| s.end_us);
    let dark = dark.segments(clients_end_us);
    let intervals: Vec<Interval> = windows
        .iter()
        .enumerate()
        .map(|(k, w)| Interval {
            lost_acknowledged_writes: lost_in(
                &faults,
                &lost_after_events,
                w.start_us,
                windows.get(k + 1).map(|next| next.start_us),
            ),
            window: w.clone(),
            seconds: seed_figures(&rows, n, &row_aligned(w), rows_end, 0),
            precise: seed_figures(&dark, n, w, clients_end_us, DARK_GAP_US),
            lenient_seconds: seed_figures(&lenient(&rows), n, &row_aligned(w), rows_end, 0),
            lenient_precise: seed_figures(&lenient(&dark), n, w, clients_end_us, DARK_GAP_US),
        })
        .collect();
    let seconds = intervals.first().map(|i| i.seconds);
    let precise = intervals.first().map(|i| i.precise);
    let lenient = intervals
        .first()
        .map(|i| (i.lenient_seconds, i.lenient_precise));
    Ok(Analysis {
        header,
        table,
        faults,
        intervals,
        marks,
        window,
        seconds,
        precise,
        lenient,
        ops,
        errors,
        correctness: checker.finish(),
        latency: latency.finish(),
        served: served.finish(),
        end_us,
        ended_cleanly,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn seed_table() -> Table {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/seed-tidb.log"
        ));
        Table::parse(&std::fs::read_to_string(path).unwrap(), path).unwrap()
    }

    /// A record whose clients stop at 20 s, after n2's isolation from 5 to 10 s, and whose
    /// final reads then take 2 s (as they do where reads compete for the key).
    fn record_with_slow_final_reads(dir: &Path) -> std::path::PathBuf {
        use crate::record::{Event, FaultEvent, Header, Kind, Op, Outcome, Writer};
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(crate::record::FILE_NAME);
        let header = Header::new(
            "gryadka",
            vec!["n1".into(), "n2".into(), "n3".into()],
            crate::clock::unix_ms(),
            0,
        );
        let mut w = Writer::create(&path, &header).unwrap();
        let fault = |t_us, verb: &str| {
            Event::Fault(FaultEvent {
                t_us,
                verb: verb.into(),
                target: "n2".into(),
            })
        };
        let op = |node, start_us, ok: bool| {
            Event::Op(Op {
                node,
                key: None,
                kind: Kind::Write,
                start_us,
                duration_us: 1_000,
                outcome: if ok { Outcome::Ok } else { Outcome::Fail },
                value: ok.then_some(1),
                error: (!ok).then(|| "NO".into()),
                attempt: Some(start_us),
                revision: None,
                served_by: None,
            })
        };
        for t in (0..20 * S).step_by(100_000) {
            if t == 5 * S {
                w.write(&fault(t, "isolating")).unwrap();
            }
            if t == 10 * S {
                w.write(&fault(t, "rejoining")).unwrap();
            }
            for node in 0..3 {
                let isolated = node == 1 && (5 * S..12 * S).contains(&t);
                w.write(&op(node, t, !isolated)).unwrap();
            }
        }
        w.write(&Event::Mark {
            t_us: 20 * S,
            text: crate::record::marks::FINAL_READS.into(),
        })
        .unwrap();
        w.write(&Event::End { t_us: 22 * S }).unwrap();
        w.flush().unwrap();
        path
    }

    /// n1's writer increments its key every 100 ms while n2 is isolated twice (5–8 s and
    /// 12–15 s); at 14 s n1 reads a value from before the first fault.
    #[test]
    fn each_interval_has_the_losses_found_after_its_start() {
        use crate::record::{Event, FaultEvent, Header, Kind, Op, Outcome, Writer};
        let dir = std::env::temp_dir().join(format!("perseus-lost-each-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(crate::record::FILE_NAME);
        let header = Header::new("etcd", vec!["n1".into(), "n2".into()], 0, 0);
        let mut w = Writer::create(&path, &header).unwrap();
        let op = |kind, start_us, value: i64| {
            Event::Op(Op {
                node: 0,
                key: None,
                kind,
                start_us,
                duration_us: 1_000,
                outcome: Outcome::Ok,
                value: Some(value),
                error: None,
                attempt: Some(value as u64),
                revision: None,
                served_by: None,
            })
        };
        let mut value = 0;
        for t in (0..20 * S).step_by(100_000) {
            for (at, verb) in [
                (5, "isolating"),
                (8, "rejoining"),
                (12, "isolating"),
                (15, "rejoining"),
            ] {
                if t == at * S {
                    let target = "n2".into();
                    w.write(&Event::Fault(FaultEvent {
                        t_us: t,
                        verb: verb.into(),
                        target,
                    }))
                    .unwrap();
                }
            }
            let read = if t == 14 * S { 3 } else { value };
            w.write(&op(Kind::Read, t, read)).unwrap();
            value = read + 1;
            w.write(&op(Kind::Write, t + 2_000, value)).unwrap();
        }
        w.write(&Event::End { t_us: 20 * S }).unwrap();
        w.flush().unwrap();
        let a = analyse(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let lost = a.correctness.lost_acknowledged_writes;
        assert!(lost > 100, "{lost} lost");
        let each: Vec<u64> = a
            .intervals
            .iter()
            .map(|i| i.lost_acknowledged_writes)
            .collect();
        assert_eq!(each, [0, lost]);
    }

    #[test]
    fn losses_before_the_first_fault_belong_to_no_interval() {
        let fault = |t_us| FaultEvent {
            t_us,
            verb: "isolating".into(),
            target: "n2".into(),
        };
        let faults = [fault(10), fault(20), fault(30)];
        // 5 before any fault, then 1, 2 and 4 after each.
        let lost = [5, 1, 2, 4];
        assert_eq!(lost_in(&faults, &lost, 10, Some(30)), 3);
        assert_eq!(lost_in(&faults, &lost, 30, None), 4);
        assert_eq!(lost_in(&faults, &lost, 0, None), 7);
    }

    /// The figures end where the clients stopped: the checker's final reads after them are
    /// no outage, however long they take.
    #[test]
    fn the_final_reads_are_not_part_of_the_recovery() {
        let dir = std::env::temp_dir().join(format!("perseus-final-reads-{}", std::process::id()));
        let a = analyse(&record_with_slow_final_reads(&dir)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let precise = a.precise.unwrap();
        assert_eq!(precise.downtime_on_recovery, Some(0));
        // n2 fails until 12 s, and is steady from its first success, which ends 1 ms later.
        assert_eq!(precise.recovery_time, Some(2_001_000));
        let seconds = a.seconds.unwrap();
        assert_eq!(seconds.downtime_on_recovery, Some(0));
        assert_eq!(seconds.recovery_time, Some(2 * S));
    }

    /// The seed's TiDB excerpt, over the rows it shows (its `...` gaps count for nothing).
    /// Isolation in row 163, rejoin in row 262 (tidb2). During isolation: rows 165, 166, 183
    /// shown at zero (3 s of downtime shown), rows 184, 185, 222, 223 with only tidb3 serving
    /// (4 s partial), tidb1 and tidb3 steady from row 224 (disturbance 224-1 - 162 = 61 s).
    /// After the rejoin: rows 273, 277, 279, 288, 300, 321, 322 at zero (7 s), row 278 with
    /// only tidb1 (1 s), all three steady from row 324 (recovery 323 - 261 = 62 s).
    #[test]
    fn the_seed_excerpt_gives_the_figures_its_rows_show() {
        let (w, f) = figures_from_table(&seed_table()).unwrap();
        assert_eq!(
            (w.kind.name, w.target.as_str(), w.affected),
            ("isolate", "tidb2", 0b010)
        );
        assert_eq!(w.start_us, 162 * S);
        assert_eq!(w.end_us, Some(261 * S));
        assert_eq!(f.downtime_on_isolation, 3 * S);
        assert_eq!(f.partial_downtime_on_isolation, 4 * S);
        assert_eq!(f.disturbance_time, Some(61 * S));
        assert_eq!(f.downtime_on_recovery, Some(7 * S));
        assert_eq!(f.partial_downtime_on_recovery, Some(S));
        assert_eq!(f.recovery_time, Some(62 * S));
    }

    fn isolation() -> FaultWindow {
        FaultWindow {
            kind: faults::by_name("isolate").unwrap(),
            target: "n2".into(),
            affected: 0b010,
            start_us: 0,
            end_us: None,
            next_us: None,
        }
    }

    fn seg(a: u64, b: u64, serving: NodeSet) -> Segment {
        Segment {
            start_us: a * S,
            end_us: b * S,
            serving,
            steady: serving,
        }
    }

    #[test]
    fn a_clean_isolation_has_no_downtime_and_settles_at_once() {
        // n2 (bit 1) dark from 10 s to 21 s, everybody else serving throughout.
        let segments = vec![seg(0, 10, 0b111), seg(10, 21, 0b101), seg(21, 40, 0b111)];
        let w = FaultWindow {
            affected: 0b010,
            start_us: 10 * S,
            end_us: Some(20 * S),
            ..isolation()
        };
        let f = seed_figures(&segments, 3, &w, 40 * S, 0);
        assert_eq!(f.downtime_on_isolation, 0);
        assert_eq!(f.partial_downtime_on_isolation, 0);
        assert_eq!(f.disturbance_time, Some(0));
        assert_eq!(f.downtime_on_recovery, Some(0));
        assert_eq!(f.partial_downtime_on_recovery, Some(0));
        assert_eq!(f.recovery_time, Some(S));
    }

    #[test]
    fn a_stall_then_one_node_then_steady() {
        let segments = vec![
            seg(0, 10, 0b111),
            seg(10, 12, 0b000), // everybody stalls 2 s
            seg(12, 13, 0b100), // only n3
            seg(13, 20, 0b101), // n1 and n3 steady
            seg(20, 25, 0b000), // stall after the rejoin
            seg(25, 30, 0b111),
        ];
        let w = FaultWindow {
            affected: 0b010,
            start_us: 10 * S,
            end_us: Some(20 * S),
            ..isolation()
        };
        let f = seed_figures(&segments, 3, &w, 30 * S, 0);
        assert_eq!(f.downtime_on_isolation, 2 * S);
        assert_eq!(f.partial_downtime_on_isolation, S);
        assert_eq!(f.disturbance_time, Some(3 * S));
        assert_eq!(f.downtime_on_recovery, Some(5 * S));
        assert_eq!(f.partial_downtime_on_recovery, Some(0));
        assert_eq!(f.recovery_time, Some(5 * S));
    }

    #[test]
    fn never_steady_is_not_applicable_and_no_rejoin_has_no_recovery() {
        let segments = vec![seg(0, 10, 0b111), seg(10, 30, 0b100)];
        let w = FaultWindow {
            affected: 0b010,
            start_us: 10 * S,
            end_us: None,
            ..isolation()
        };
        let f = seed_figures(&segments, 3, &w, 30 * S, 0);
        assert_eq!(f.partial_downtime_on_isolation, 20 * S);
        assert_eq!(f.disturbance_time, None);
        assert_eq!(f.downtime_on_recovery, None);
        assert_eq!(f.recovery_time, None);
    }

    #[test]
    fn dark_stretches_come_from_gaps_between_increments() {
        let mut d = DarkTracker::new(2);
        for t in (0..=100).map(|i| i * 10_000) {
            d.success(0, t); // n1 every 10 ms until 1 s
            d.success(1, t);
        }
        d.success(0, 3 * S); // n1 silent for 2 s
        for t in (101..=300).map(|i| i * 10_000) {
            d.success(1, t);
        }
        let segs = d.segments(3 * S);
        assert_eq!(
            segs,
            vec![
                Segment {
                    start_us: 0,
                    end_us: S,
                    serving: 0b11,
                    steady: 0b11
                },
                Segment {
                    start_us: S,
                    end_us: 3 * S,
                    serving: 0b10,
                    steady: 0b10
                },
            ]
        );
        // A node silent at the end of the record is dark to the end.
        let mut d = DarkTracker::new(1);
        d.success(0, 100_000);
        let segs = d.segments(2 * S);
        assert_eq!(segs.last().unwrap().serving, 0);
        assert_eq!(segs.last().unwrap().start_us, 100_000);
    }

    /// A node that serves but whose request fails is not steady while it fails: the
    /// disturbance runs to the end of that failure, the lenient reading ignores it.
    #[test]
    fn a_failing_request_is_not_steady_and_the_lenient_reading_ignores_it() {
        let mut d = DarkTracker::new(3);
        for t in (0..=300).map(|i| i * 10_000) {
            for node in 0..3 {
                if node == 1 && (100..200).contains(&(t / 10_000)) {
                    continue; // n2 cut off from 1 s to 2 s
                }
                d.success(node, t);
            }
        }
        // n1's request refused in 5 ms at 1.5 s, between two increments.
        d.failure(0, 1_500_000, 1_505_000);
        let segs = d.segments(3 * S);
        let failing = segs
            .iter()
            .find(|s| s.start_us == 1_500_000)
            .expect("a cut where the failure starts");
        assert_eq!(
            (failing.end_us, failing.serving, failing.steady),
            (1_505_000, 0b101, 0b100)
        );
        let w = FaultWindow {
            start_us: S,
            end_us: Some(2 * S),
            ..isolation()
        };
        let f = seed_figures(&segs, 3, &w, 3 * S, 0);
        assert_eq!(f.downtime_on_isolation, 0);
        assert_eq!(f.partial_downtime_on_isolation, 0, "n1 served throughout");
        assert_eq!(
            f.disturbance_time,
            Some(505_000),
            "steady after the failure ended"
        );
        let f = seed_figures(&lenient(&segs), 3, &w, 3 * S, 0);
        assert_eq!(f.disturbance_time, Some(0));

        // Whole seconds: a row with an error is not steady for that node.
        let row = crate::record::table::Row {
            second: 2,
            ok: vec![50, 0, 48],
            err: vec![1, 3, 0],
            wall: String::new(),
        };
        assert_eq!((row.serving(), row.steady()), (0b101, 0b100));
    }

    #[test]
    fn errors_are_counted_under_the_servers_code_and_their_phase() {
        assert_eq!(error_code("1047 WSREP has not yet prepared node"), "1047");
        assert_eq!(error_code("2013 lost connection: reset"), "2013");
        assert_eq!(error_code("timed out after 1s"), "timed out after 1s");
        assert_eq!(
            error_code("Unavailable: etcdserver: no leader"),
            "Unavailable: etcdserver: no leader"
        );
        let w = FaultWindow {
            affected: 0b010,
            start_us: 10,
            end_us: Some(20),
            ..isolation()
        };
        assert_eq!(Phase::of(9, Some(&w)), Phase::Before);
        assert_eq!(Phase::of(10, Some(&w)), Phase::During);
        assert_eq!(Phase::of(20, Some(&w)), Phase::After);
        assert_eq!(Phase::of(99, None), Phase::Before);
    }

    fn three_nodes() -> Vec<String> {
        ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect()
    }

    fn ev(t_us: u64, verb: &str, target: &str) -> FaultEvent {
        FaultEvent {
            t_us,
            verb: verb.into(),
            target: target.into(),
        }
    }

    /// A fault whose start failed and was withdrawn (`aborted isolating n2`) is no interval.
    #[test]
    fn an_aborted_start_is_no_fault() {
        let nodes = three_nodes();
        let events = [
            ev(5, "isolating", "n2"),
            ev(6, "aborted", "isolating n2"),
            ev(8, "isolating", "n3"),
            ev(9, "isolated", "n3"),
            ev(12, "rejoining", "n3"),
        ];
        let windows = fault_windows(&nodes, &events);
        assert_eq!(windows.len(), 1);
        assert_eq!((windows[0].target.as_str(), windows[0].start_us), ("n3", 8));
    }

    #[test]
    fn the_window_pairs_isolating_with_the_next_rejoining_of_the_same_node() {
        let nodes = three_nodes();
        let events = [
            ev(5, "isolating", "n3"),
            ev(6, "isolated", "n3"),
            ev(9, "rejoining", "n1"),
            ev(10, "rejoining", "n3"),
            ev(12, "rejoining", "n3"),
        ];
        let w = fault_window(&nodes, &events).unwrap();
        assert_eq!(
            (w.target.as_str(), w.affected, w.start_us, w.end_us),
            ("n3", 0b100, 5, Some(10))
        );
        let windows = fault_windows(
            &nodes,
            &[
                ev(1, "killing", "n1"),
                ev(3, "restarting", "n1"),
                ev(7, "partitioning", "n1|n2 n3"),
            ],
        );
        assert_eq!(windows.len(), 2);
        assert_eq!(
            (
                windows[0].kind.name,
                windows[0].affected,
                windows[0].next_us
            ),
            ("kill", 0b001, Some(7))
        );
        assert_eq!(
            (windows[1].kind.name, windows[1].affected, windows[1].end_us),
            ("partition", 0b001, None)
        );
    }

    /// The pairing gives what its definition says (each start with the first later end or
    /// abort of it), on generated marker sequences, aborts and stray ends included.
    #[test]
    fn windows_pair_as_the_definition_says_however_markers_interleave() {
        fn by_definition(nodes: &[String], events: &[FaultEvent]) -> Vec<FaultWindow> {
            let mut out = Vec::new();
            for (i, e) in events.iter().enumerate() {
                let Some(kind) = faults::by_starting(&e.verb) else {
                    continue;
                };
                let end = events[i + 1..].iter().find(|g| {
                    (g.verb == kind.ending && g.target == e.target)
                        || (g.verb == faults::ABORTED
                            && g.target == format!("{} {}", e.verb, e.target))
                });
                if end.is_some_and(|g| g.verb == faults::ABORTED) {
                    continue;
                }
                out.push(FaultWindow {
                    kind,
                    target: e.target.clone(),
                    affected: faults::affected(kind, &e.target, nodes)
                        .iter()
                        .fold(0, |m, i| m | 1 << i),
                    start_us: e.t_us,
                    end_us: end.map(|g| g.t_us),
                    next_us: None,
                });
            }
            let starts: Vec<u64> = out.iter().map(|w| w.start_us).collect();
            for w in &mut out {
                w.next_us = w
                    .end_us
                    .and_then(|e| starts.iter().copied().filter(|s| *s >= e).min());
            }
            out
        }
        let nodes = three_nodes();
        let verbs = [
            "isolating",
            "rejoining",
            "killing",
            "restarting",
            "aborted",
            "isolated",
        ];
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..300 {
            let len = next(12) as usize;
            let events: Vec<FaultEvent> = (0..len)
                .map(|_| {
                    let verb = verbs[next(verbs.len() as u64) as usize];
                    let node = format!("n{}", next(3) + 1);
                    let target = if verb == "aborted" {
                        format!("{} {node}", ["isolating", "killing"][next(2) as usize])
                    } else {
                        node
                    };
                    ev(next(20), verb, &target)
                })
                .collect();
            let mut pairing = WindowPairing::default();
            for e in &events {
                pairing.event(&nodes, e);
                let so_far = by_definition(
                    &nodes,
                    &events[..=events.iter().position(|x| std::ptr::eq(x, e)).unwrap()],
                );
                assert_eq!(
                    pairing.first().map(|w| (w.start_us, w.end_us)),
                    so_far.first().map(|w| (w.start_us, w.end_us)),
                    "{events:?}"
                );
            }
            assert_eq!(
                pairing.windows(),
                by_definition(&nodes, &events),
                "{events:?}"
            );
        }
    }
}
