//! `summary.json`: the run at a glance, as a typed, versioned shape that `perseus compare`,
//! the tests and any CI script read back.

use crate::analysis::correctness::{Loss, Violation, ViolationKind};
use crate::analysis::{Analysis, NodeOps, Phase, METRICS};
use crate::record::marks;
use crate::report::expected::{self, ExpectedFigure};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The value of `format` in one run's `summary.json`.
pub const FORMAT: &str = "perseus-summary";

/// The shape of `summary.json`. Within a version fields are only added, never renamed,
/// removed or given another meaning. Version 2: disturbance and recovery time count a node
/// as steady only while none of its requests fails (version 1 counted any node that
/// served; that reading is now `lenient`); `format` is new and `summary_version` is
/// `version`. The JSON Schema is `docs/schema/summary.schema.json`.
pub const SUMMARY_VERSION: u32 = 2;

/// The figures whose lenient reading `summary.json` keeps (see `analysis`'s definitions).
pub const LENIENT: [&str; 2] = ["disturbance_time", "recovery_time"];

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// Always `perseus-summary` (absent in version 1): what tells this file from a
    /// repeat's.
    #[serde(default = "format")]
    pub format: String,
    /// [`SUMMARY_VERSION`] when written (`summary_version` in version 1; absent in files
    /// older than that field: 1).
    #[serde(default = "first_version", alias = "summary_version")]
    pub version: u32,
    pub perseus_version: String,
    pub database: String,
    pub database_version: Option<String>,
    pub nodes: Vec<String>,
    pub started_unix_ms: i64,
    pub duration_ms: u64,
    /// Whether the record ended cleanly (its writer was not killed).
    pub record_complete: bool,
    /// Why the run or watch stopped before its end, if it did: its record had to stop
    /// growing (`--max-record-size`, or the disk nearly full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
    /// How the writers wrote: `blind` or `cas`.
    #[serde(default = "blind")]
    pub write: String,
    /// The effective value of every server setting the preset documents (`perseus list
    /// settings`), as Perseus started the servers; empty for a cluster it did not start.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    pub lost_acknowledged_writes: u64,
    /// The first fault, whose figures are `metrics`.
    pub fault: Option<FaultSummary>,
    /// Every fault with its own figures.
    pub intervals: Vec<IntervalSummary>,
    /// The faults of each kind on each target (the role of the node hit, `leader` or
    /// `follower`, where the database reports one), their figures' distribution over them
    /// (a looped scenario's passes): one entry per kind and target, in order of first
    /// appearance.
    #[serde(default)]
    pub each_fault: Vec<FaultSpread>,
    /// Each metric of [`METRICS`] as `<key>_s` (whole seconds, from the per-second table)
    /// and `<key>_ms` (from the operation history); `null`: not applicable.
    pub metrics: BTreeMap<String, Option<u64>>,
    /// [`LENIENT`]'s figures as `<key>_s` and `<key>_ms`, counting a node that served as
    /// steady even while requests of it failed (version 1's reading).
    #[serde(default)]
    pub lenient: BTreeMap<String, Option<u64>>,
    /// Operation counts by node name.
    pub operations: BTreeMap<String, NodeOps>,
    /// The cap on each client's cycles a second (`--rate`); `null`: none.
    #[serde(default)]
    pub rate_cap: Option<u32>,
    /// Completed increments a second by node name, over the whole record (rounded).
    #[serde(default)]
    pub rate_achieved: BTreeMap<String, u64>,
    pub correctness: CorrectnessSummary,
    /// Errors by node name, phase and code.
    pub errors_by_phase: BTreeMap<String, BTreeMap<Phase, BTreeMap<String, u64>>>,
    /// The isolation and recovery figures beside the ranges the database's failover model
    /// expects (`report::expected`); empty where no model speaks.
    #[serde(default)]
    pub expected: Vec<ExpectedFigure>,
}

fn format() -> String {
    FORMAT.into()
}

/// Fails unless `version` is one this build reads: 1 to `newest`.
pub fn check_version(
    version: u32,
    newest: u32,
    what: &str,
    path: &std::path::Path,
) -> crate::error::Result<()> {
    if (1..=newest).contains(&version) {
        return Ok(());
    }
    Err(crate::error::Error::Malformed {
        what: what.into(),
        path: path.to_path_buf(),
        line: 1,
        why: format!(
            "version {version}: this perseus ({}) reads versions 1 to {newest}; a newer perseus wrote it, or it is not Perseus's",
            env!("CARGO_PKG_VERSION")
        ),
    })
}

fn first_version() -> u32 {
    1
}

fn blind() -> String {
    "blind".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FaultSummary {
    pub kind: String,
    pub target: String,
    pub at_ms: u64,
    pub end_at_ms: Option<u64>,
    /// Whether the database had warmed up when it started; `null`: not known.
    pub warmed_up: Option<bool>,
    /// What the node it hit was just before: `leader` or `follower`; `null`: not known
    /// (no node led, the database has no leader, or the run did not ask).
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IntervalSummary {
    pub kind: String,
    pub target: String,
    /// What the node it hit was just before: `leader` or `follower`; `null`: not known.
    #[serde(default)]
    pub role: Option<String>,
    pub at_ms: u64,
    pub end_at_ms: Option<u64>,
    /// The six figures (`…_s`, `…_ms`), and `lost_acknowledged_writes`: the acknowledged
    /// increments found lost from this fault's start until the next fault's (for the
    /// last, until the end, the final reads included).
    pub metrics: BTreeMap<String, Option<u64>>,
}

/// The key of an interval's lost writes among its `metrics`.
pub const LOST: &str = "lost_acknowledged_writes";

/// The faults of one kind on one target, and each figure's spread over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FaultSpread {
    pub kind: String,
    /// The role of the nodes hit (`leader`, `follower`) where the database reports one:
    /// a fault on whichever node led counts as one target; else the node.
    pub target: String,
    /// How many such faults the run had.
    pub count: u64,
    /// Each figure of the intervals' `metrics`, over the intervals that have a value.
    pub metrics: BTreeMap<String, Spread>,
}

/// One figure over several faults; quantiles are nearest-rank (the median is the value
/// at rank ⌈n/2⌉ of the n sorted values, p90 at ⌈0.9 n⌉); `null`: no fault had a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Spread {
    pub min: Option<u64>,
    pub median: Option<u64>,
    pub p90: Option<u64>,
    pub max: Option<u64>,
}

impl Spread {
    pub fn of(values: &[u64]) -> Spread {
        use crate::expect::Stat;
        Spread {
            min: Stat::Min.of(values),
            median: Stat::Median.of(values),
            p90: Stat::P90.of(values),
            max: Stat::Max.of(values),
        }
    }
}

/// The intervals grouped by kind and target (the role of the node hit, where known), in
/// order of first appearance.
pub fn spreads(intervals: &[IntervalSummary]) -> Vec<FaultSpread> {
    let mut groups: Vec<(&str, &str, Vec<&IntervalSummary>)> = Vec::new();
    for i in intervals {
        let target = i.role.as_deref().unwrap_or(&i.target);
        match groups
            .iter_mut()
            .find(|(k, t, _)| *k == i.kind && *t == target)
        {
            Some(g) => g.2.push(i),
            None => groups.push((&i.kind, target, vec![i])),
        }
    }
    groups
        .into_iter()
        .map(|(kind, target, members)| {
            let keys = members[0].metrics.keys();
            let metrics = keys
                .map(|k| {
                    let values: Vec<u64> = members
                        .iter()
                        .filter_map(|m| m.metrics.get(k).copied().flatten())
                        .collect();
                    (k.clone(), Spread::of(&values))
                })
                .collect();
            FaultSpread {
                kind: kind.into(),
                target: target.into(),
                count: members.len() as u64,
                metrics,
            }
        })
        .collect()
}

/// The correctness checks, with nodes by name (see `analysis::correctness::Correctness`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CorrectnessSummary {
    pub reads_checked: u64,
    pub final_reads: u64,
    pub violations: u64,
    pub by_kind: BTreeMap<ViolationKind, u64>,
    pub by_reader: BTreeMap<String, BTreeMap<Phase, u64>>,
    pub by_second: BTreeMap<u64, u64>,
    pub examples: Vec<Violation>,
    pub lost_acknowledged_writes: u64,
    pub lost_by_key: BTreeMap<String, u64>,
    pub lost_by_kind: BTreeMap<ViolationKind, u64>,
    pub lost_by_phase: BTreeMap<Phase, u64>,
    pub lost_by_second: BTreeMap<u64, u64>,
    pub losses: Vec<Loss>,
}

impl Summary {
    /// A metric of [`METRICS`] by key, in whole seconds and in milliseconds.
    pub fn metric(&self, key: &str) -> (Option<u64>, Option<u64>) {
        let get = |unit: &str| {
            self.metrics
                .get(&format!("{key}_{unit}"))
                .copied()
                .flatten()
        };
        (get("s"), get("ms"))
    }

    /// Reads a run's `summary.json`.
    pub fn load(path: &std::path::Path) -> crate::error::Result<Summary> {
        use crate::error::Error;
        let text = crate::files::read_text(path)?;
        let summary: Summary = serde_json::from_str(&text).map_err(|e| Error::Malformed {
            what: "summary".into(),
            path: path.to_path_buf(),
            line: e.line(),
            why: e.to_string(),
        })?;
        check_version(summary.version, SUMMARY_VERSION, "summary", path)?;
        Ok(summary)
    }

    /// Every figure a gate or a distribution can name, by key: each metric of [`METRICS`]
    /// as `<key>_s` and `<key>_ms` (`None`: not applicable), `lost_acknowledged_writes`,
    /// `lost_to_late_writes`, `violations`, and `outside_expected` (how many figures fell
    /// outside the range the database's failover model expects; 0 where none speaks).
    pub fn figures(&self) -> BTreeMap<String, Option<u64>> {
        let mut f = BTreeMap::new();
        for m in METRICS {
            let (s, ms) = self.metric(m.key);
            f.insert(format!("{}_s", m.key), s);
            f.insert(format!("{}_ms", m.key), ms);
        }
        f.insert(
            "lost_acknowledged_writes".into(),
            Some(self.lost_acknowledged_writes),
        );
        f.insert(
            "lost_to_late_writes".into(),
            Some(self.lost_to_late_writes()),
        );
        f.insert("violations".into(), Some(self.correctness.violations));
        f.insert(
            "outside_expected".into(),
            Some(self.expected.iter().filter(|e| !e.within).count() as u64),
        );
        f
    }

    /// What was lost to late writes.
    pub fn lost_to_late_writes(&self) -> u64 {
        self.correctness
            .lost_by_kind
            .get(&ViolationKind::LateWrite)
            .copied()
            .unwrap_or(0)
    }
}

/// The metrics of `s` and `ms` (µs) under their keys, in seconds and milliseconds.
fn metrics(
    s: &crate::analysis::Figures,
    ms: &crate::analysis::Figures,
) -> BTreeMap<String, Option<u64>> {
    let mut m = BTreeMap::new();
    for (metric, (x, y)) in METRICS.iter().zip(s.values().into_iter().zip(ms.values())) {
        m.insert(format!("{}_s", metric.key), x.map(|v| v / 1_000_000));
        m.insert(format!("{}_ms", metric.key), y.map(|v| (v + 500) / 1000));
    }
    m
}

/// The summary of an analysed record.
pub fn of(a: &Analysis) -> Summary {
    let by_name = |values: &[u64]| -> BTreeMap<String, u64> {
        a.header
            .nodes
            .iter()
            .cloned()
            .zip(values.iter().copied())
            .collect()
    };
    let c = &a.correctness;
    let fault = a.window.as_ref().map(|w| {
        // The last warm-up mark at or before the fault: did it hit a warmed-up cluster?
        let warmed_up = a
            .marks
            .iter()
            .rev()
            .find(|(t, m)| *t <= w.start_us && (m == marks::WARM || m == marks::NOT_WARM))
            .map(|(_, m)| m == marks::WARM);
        FaultSummary {
            kind: w.kind.name.into(),
            target: w.target.clone(),
            at_ms: w.start_us / 1000,
            end_at_ms: w.end_us.map(|r| r / 1000),
            warmed_up,
            role: expected::role_name(expected::role(a)),
        }
    });
    let figures = match (a.seconds, a.precise) {
        (Some(s), Some(ms)) => metrics(&s, &ms),
        _ => BTreeMap::new(),
    };
    let intervals: Vec<IntervalSummary> = a
        .intervals
        .iter()
        .map(|i| IntervalSummary {
            kind: i.window.kind.name.into(),
            target: i.window.target.clone(),
            role: expected::role_name(expected::role_at(a, &i.window)),
            at_ms: i.window.start_us / 1000,
            end_at_ms: i.window.end_us.map(|r| r / 1000),
            metrics: {
                let mut m = metrics(&i.seconds, &i.precise);
                m.insert(LOST.into(), Some(i.lost_acknowledged_writes));
                m
            },
        })
        .collect();
    Summary {
        format: FORMAT.into(),
        version: SUMMARY_VERSION,
        perseus_version: env!("CARGO_PKG_VERSION").into(),
        database: a.header.database.clone(),
        database_version: a.header.database_version.clone(),
        nodes: a.header.nodes.clone(),
        started_unix_ms: a.header.t0_unix_ms,
        duration_ms: a.end_us / 1000,
        record_complete: a.ended_cleanly,
        stopped_early: a.stopped_early().map(str::to_string),
        write: a.header.write.clone().unwrap_or_else(blind),
        settings: a.header.settings.clone(),
        lost_acknowledged_writes: c.lost_acknowledged_writes,
        fault,
        each_fault: spreads(&intervals),
        intervals,
        expected: expected::of(a, &figures),
        metrics: figures,
        lenient: match a.lenient {
            Some((s, ms)) => metrics(&s, &ms)
                .into_iter()
                .filter(|(k, _)| {
                    LENIENT
                        .iter()
                        .any(|l| k.strip_prefix(l).is_some_and(|u| u == "_s" || u == "_ms"))
                })
                .collect(),
            None => BTreeMap::new(),
        },
        operations: a
            .header
            .nodes
            .iter()
            .cloned()
            .zip(a.ops.iter().cloned())
            .collect(),
        rate_cap: a.header.rate,
        rate_achieved: a
            .header
            .nodes
            .iter()
            .cloned()
            .zip(
                a.ops
                    .iter()
                    .map(|o| (o.increments * 1_000_000 + a.end_us / 2) / a.end_us.max(1)),
            )
            .collect(),
        correctness: CorrectnessSummary {
            reads_checked: c.reads_checked,
            final_reads: c.final_reads,
            violations: c.violations,
            by_kind: c.by_kind.clone(),
            by_reader: a
                .header
                .nodes
                .iter()
                .cloned()
                .zip(c.by_reader.iter().cloned())
                .filter(|(_, phases)| !phases.is_empty())
                .collect(),
            by_second: c.by_second.clone(),
            examples: c.examples.clone(),
            lost_acknowledged_writes: c.lost_acknowledged_writes,
            lost_by_key: by_name(&c.lost_by_key),
            lost_by_kind: c.lost_by_kind.clone(),
            lost_by_phase: c.lost_by_phase.clone(),
            lost_by_second: c.lost_by_second.clone(),
            losses: c.losses.clone(),
        },
        errors_by_phase: a
            .header
            .nodes
            .iter()
            .cloned()
            .zip(a.errors.iter().cloned())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_back_as_written_and_an_older_one_reads_with_defaults() {
        let dir = std::env::temp_dir().join(format!("perseus-summary-test-{}", std::process::id()));
        crate::record::synthetic::synthetic_record(&dir, 30, 50).unwrap();
        let a = crate::analysis::analyse(&crate::record::in_results(&dir).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let s = of(&a);
        let text = serde_json::to_string_pretty(&s).unwrap();
        let back: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        assert_eq!((s.format.as_str(), s.version), (FORMAT, SUMMARY_VERSION));
        assert!(text.contains("\"format\": \"perseus-summary\""));
        assert_eq!(s.metric("downtime_on_isolation"), (Some(0), Some(0)));
        assert!(METRICS
            .iter()
            .all(|m| s.metrics.contains_key(&format!("{}_ms", m.key))));

        // Written before the shape had a version or the write mode (2026-11-30).
        let old: Summary = serde_json::from_str(include_str!(
            "../../docs/findings/etcd-pause-late-write-summary.json"
        ))
        .unwrap();
        assert_eq!((old.version, old.write.as_str()), (1, "blind"));
        assert_eq!(old.lost_to_late_writes(), 2307);
        assert_eq!(old.lost_acknowledged_writes, 2307);
    }
}
