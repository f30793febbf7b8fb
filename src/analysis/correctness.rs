//! Correctness from the record alone: lost acknowledged writes and stale reads.
//!
//! Each key has one writer (its node's client), whose writes set values 1, 2, 3, … in
//! order. What is checked, for every key:
//! - **stale read**: a successful read must return at least the value of the last write to
//!   that key acknowledged *before the read began* (an absent key counts as 0). This covers
//!   the writer's own reads (a lost update) and any observer's reads (a stale read).
//! - after the run, once every fault is healed, every node reads every key once (the
//!   *final reads*, after the `final-reads` mark):
//!   - **lost write**: a final value below the last acknowledged write;
//!   - **phantom value**: a final value above the highest value any write tried to set
//!     (acknowledged or unknown) — a value nobody wrote.
//!
//! **Lost acknowledged writes** are counted, not only flagged: every time the key's writer
//! (or a final read) sees the value drop below acknowledged values, each acknowledged
//! increment above what it saw is lost, once. The writer then goes on from the lower value,
//! re-writing the same numbers; those count afresh and do not hide the loss. Observers'
//! reads count as stale reads, not as losses: a later read may still see the value.
//!
//! An unknown write (timed out) may or may not have happened: it never makes a read stale
//! and it raises the upper bound of the final value. Reads that failed or timed out check
//! nothing. Not checked: reads that took longer than [`HORIZON_US`], ordering between
//! different keys, and anything about failed reads.
//!
//! The checker keeps only the last [`HORIZON_US`] of acknowledged writes per key, so its
//! memory does not grow with the length of a run.

use super::Phase;
use crate::record::{Kind, Op, Outcome};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// How far back acknowledged writes are kept to judge a read; a read longer than this is
/// not judged.
pub const HORIZON_US: u64 = 60_000_000;
/// The mark that precedes the final reads in a record.
pub const FINAL_READS_MARK: &str = "final-reads";
/// How many violations are kept with their details, per phase.
pub const EXAMPLES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    StaleRead,
    LostWrite,
    PhantomValue,
}

/// One violation, with the operations involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub phase: Phase,
    /// The node whose key it is.
    pub key: usize,
    /// The node the read went through.
    pub reader: usize,
    /// Whether the read was the key's writer's own (else an observer or a final read).
    pub by_writer: bool,
    pub read_start_us: u64,
    pub read_end_us: u64,
    /// What the read returned (`None`: key absent).
    pub read_value: Option<i64>,
    /// The acknowledged write the read should have seen: (value, end).
    pub acknowledged: Option<(i64, u64)>,
    /// The highest value any write tried to set (for a phantom value).
    pub highest_attempted: Option<i64>,
}

/// Acknowledged writes found gone: a read by the key's writer (or a final read) returned
/// less than values whose writes had been acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Loss {
    pub phase: Phase,
    /// The node whose key it is.
    pub key: usize,
    /// The node the read went through.
    pub reader: usize,
    /// Whether it was a final read (else the key's writer's own read).
    pub final_read: bool,
    pub read_start_us: u64,
    pub read_end_us: u64,
    /// What the read returned (an absent key counts as 0).
    pub read_value: i64,
    /// The highest acknowledged value still believed present before the read.
    pub highest_acknowledged: i64,
    /// How many acknowledged increments above `read_value` vanished.
    pub lost: u64,
}

/// The outcome of the checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Correctness {
    pub reads_checked: u64,
    pub final_reads: u64,
    pub violations: u64,
    /// Every kind, zeros included.
    pub by_kind: BTreeMap<ViolationKind, u64>,
    /// Violations by the node the read went through, then by phase.
    pub by_reader: Vec<BTreeMap<Phase, u64>>,
    /// Violations by the second (row of the table) in which the read ended.
    pub by_second: BTreeMap<u64, u64>,
    /// The first [`EXAMPLES`] violations of each phase.
    pub examples: Vec<Violation>,
    /// Acknowledged writes lost, in all (see [`Loss`]).
    pub lost_acknowledged_writes: u64,
    /// The same by key (the node whose key it is).
    pub lost_by_key: Vec<u64>,
    /// The same by phase, every phase included.
    pub lost_by_phase: BTreeMap<Phase, u64>,
    /// The same by the second (row of the table) in which the read that found it ended.
    pub lost_by_second: BTreeMap<u64, u64>,
    /// The first [`EXAMPLES`] losses of each phase.
    pub losses: Vec<Loss>,
}

/// The acknowledged values of a key believed to be in the database: sorted, disjoint runs of
/// consecutive values. A writer's increments extend one run; a value that was attempted but
/// never acknowledged leaves a gap. Its size grows with the gaps, not with the run's length.
#[derive(Debug, Default, Clone)]
struct Present(Vec<(i64, i64)>);

impl Present {
    /// `v` was acknowledged: it (and nothing above it) is present now. Returns how many
    /// acknowledged values at or above `v` that overwrote.
    fn acknowledge(&mut self, v: i64) -> u64 {
        let lost = self.keep_up_to(v.saturating_sub(1));
        match self.0.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(v) => *end = v,
            _ => self.0.push((v, v)),
        }
        lost
    }

    /// The value is `g` now: every value above it is gone. Returns how many there were.
    fn keep_up_to(&mut self, g: i64) -> u64 {
        let mut lost = 0u64;
        while let Some(&(start, end)) = self.0.last() {
            if end <= g {
                break;
            }
            if start > g {
                lost = lost.saturating_add(end.abs_diff(start).saturating_add(1));
                self.0.pop();
            } else {
                lost = lost.saturating_add(end.abs_diff(g));
                self.0.last_mut().expect("a run").1 = g;
                break;
            }
        }
        lost
    }

    fn highest(&self) -> Option<i64> {
        self.0.last().map(|r| r.1)
    }
}

#[derive(Debug, Default, Clone)]
struct KeyState {
    /// Acknowledged writes of the last horizon: (end, value), in end order.
    recent: VecDeque<(u64, i64)>,
    /// The last acknowledged write older than the horizon.
    baseline: Option<(u64, i64)>,
    highest_attempted: Option<i64>,
    present: Present,
}

impl KeyState {
    /// The last write acknowledged before `t`.
    fn acknowledged_before(&self, t: u64) -> Option<(u64, i64)> {
        self.recent
            .iter()
            .rev()
            .find(|(end, _)| *end < t)
            .copied()
            .or(self.baseline)
    }

    fn last_acknowledged(&self) -> Option<(u64, i64)> {
        self.recent.back().copied().or(self.baseline)
    }

    fn prune(&mut self, now: u64) {
        while let Some(&(end, v)) = self.recent.front() {
            if end + HORIZON_US >= now {
                break;
            }
            self.baseline = Some((end, v));
            self.recent.pop_front();
        }
    }
}

/// Follows the operations of a record (in record order) and collects violations.
#[derive(Debug, Clone)]
pub struct Checker {
    keys: Vec<KeyState>,
    finals: bool,
    result: Correctness,
}

impl Checker {
    pub fn new(nodes: usize) -> Self {
        use ViolationKind::*;
        Checker {
            keys: vec![KeyState::default(); nodes],
            finals: false,
            result: Correctness {
                by_kind: [StaleRead, LostWrite, PhantomValue]
                    .into_iter()
                    .map(|k| (k, 0))
                    .collect(),
                by_reader: vec![BTreeMap::new(); nodes],
                lost_by_key: vec![0; nodes],
                lost_by_phase: [Phase::Before, Phase::During, Phase::After]
                    .into_iter()
                    .map(|p| (p, 0))
                    .collect(),
                ..Correctness::default()
            },
        }
    }

    /// Operations from now on are final reads.
    pub fn final_reads_begin(&mut self) {
        self.finals = true;
    }

    /// Judges one operation; `phase` is where it stands relative to the fault.
    pub fn op(&mut self, op: &Op, phase: Phase) {
        let k = op.key_owner();
        let key = &mut self.keys[k];
        match (op.kind, op.outcome) {
            (Kind::Write, Outcome::Ok) => {
                if let Some(v) = op.value {
                    key.recent.push_back((op.end_us(), v));
                    key.highest_attempted = key.highest_attempted.max(Some(v));
                    let highest = key.present.highest();
                    let lost = key.present.acknowledge(v);
                    if lost > 0 {
                        // A blind write below acknowledged values: they are overwritten.
                        let got = v.saturating_sub(1);
                        self.loss(op, phase, got, highest.unwrap_or(got), lost);
                    }
                }
            }
            (Kind::Read, Outcome::Ok) if op.is_writer() || self.finals => {
                let got = op.value.unwrap_or(0);
                let highest = key.present.highest();
                let lost = key.present.keep_up_to(got);
                if lost > 0 {
                    self.loss(op, phase, got, highest.unwrap_or(got), lost);
                }
                self.judge_read(op, phase);
            }
            (Kind::Write, Outcome::Unknown) => {
                key.highest_attempted = key.highest_attempted.max(op.value);
            }
            (Kind::Read, Outcome::Ok) => self.judge_read(op, phase),
            _ => {}
        }
        self.keys[k].prune(op.end_us());
    }

    /// Records acknowledged increments found gone by `op`, which saw `got`.
    fn loss(&mut self, op: &Op, phase: Phase, got: i64, highest: i64, lost: u64) {
        let r = &mut self.result;
        r.lost_acknowledged_writes = r.lost_acknowledged_writes.saturating_add(lost);
        let k = op.key_owner();
        r.lost_by_key[k] = r.lost_by_key[k].saturating_add(lost);
        *r.lost_by_phase.entry(phase).or_default() += lost;
        *r.lost_by_second
            .entry(op.end_us() / 1_000_000 + 1)
            .or_default() += lost;
        if r.losses.iter().filter(|l| l.phase == phase).count() < EXAMPLES {
            r.losses.push(Loss {
                phase,
                key: k,
                reader: op.node,
                final_read: self.finals,
                read_start_us: op.start_us,
                read_end_us: op.end_us(),
                read_value: got,
                highest_acknowledged: highest,
                lost,
            });
        }
    }

    /// Judges a successful read for stale reads, lost writes and phantom values.
    fn judge_read(&mut self, op: &Op, phase: Phase) {
        let k = op.key_owner();
        let key = &self.keys[k];
        match (op.kind, op.outcome) {
            (Kind::Read, Outcome::Ok) if op.duration_us <= HORIZON_US => {
                let got = op.value.unwrap_or(0);
                let mut found = Vec::new();
                if self.finals {
                    self.result.final_reads += 1;
                    let last = key.last_acknowledged();
                    if last.is_some_and(|(_, v)| got < v) {
                        found.push((ViolationKind::LostWrite, last, None));
                    }
                    if got > key.highest_attempted.unwrap_or(0) {
                        found.push((ViolationKind::PhantomValue, None, key.highest_attempted));
                    }
                } else {
                    self.result.reads_checked += 1;
                    let due = key.acknowledged_before(op.start_us);
                    if due.is_some_and(|(_, v)| got < v) {
                        found.push((ViolationKind::StaleRead, due, None));
                    }
                }
                for (kind, ack, highest) in found {
                    self.violation(Violation {
                        kind,
                        phase,
                        key: k,
                        reader: op.node,
                        by_writer: op.is_writer(),
                        read_start_us: op.start_us,
                        read_end_us: op.end_us(),
                        read_value: op.value,
                        acknowledged: ack.map(|(end, v)| (v, end)),
                        highest_attempted: highest,
                    });
                }
            }
            _ => {}
        }
    }

    fn violation(&mut self, v: Violation) {
        self.result.violations += 1;
        *self.result.by_kind.entry(v.kind).or_default() += 1;
        *self.result.by_reader[v.reader].entry(v.phase).or_default() += 1;
        *self
            .result
            .by_second
            .entry(v.read_end_us / 1_000_000 + 1)
            .or_default() += 1;
        if self
            .result
            .examples
            .iter()
            .filter(|e| e.phase == v.phase)
            .count()
            < EXAMPLES
        {
            self.result.examples.push(v);
        }
    }

    pub fn finish(self) -> Correctness {
        self.result
    }
}

/// One line per violation, for the terminal.
pub fn describe(v: &Violation, nodes: &[String]) -> String {
    let at = |us: u64| format!("{:.3} s", us as f64 / 1e6);
    let value = |v: Option<i64>| v.map_or("nothing".to_string(), |v| v.to_string());
    let who = if v.by_writer {
        "its writer"
    } else {
        "a reader"
    };
    let phase = match v.phase {
        Phase::Before => "before the fault",
        Phase::During => "during the fault",
        Phase::After => "after the fault",
    };
    let read = format!(
        "{who} read {}'s key through {} [{} – {}] and got {}",
        nodes[v.key],
        nodes[v.reader],
        at(v.read_start_us),
        at(v.read_end_us),
        value(v.read_value)
    );
    match v.kind {
        ViolationKind::StaleRead | ViolationKind::LostWrite => {
            let (w, end) = v.acknowledged.unwrap_or((0, 0));
            let kind = if v.kind == ViolationKind::StaleRead {
                "stale read"
            } else {
                "lost write"
            };
            format!(
                "{kind} {phase}: {read}, but the write of {w} was acknowledged at {}",
                at(end)
            )
        }
        ViolationKind::PhantomValue => format!(
            "phantom value {phase}: {read}, above any value written ({})",
            value(v.highest_attempted)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        node: usize,
        key: Option<usize>,
        kind: Kind,
        start: u64,
        end: u64,
        outcome: Outcome,
        value: Option<i64>,
    ) -> Op {
        Op {
            node,
            key,
            kind,
            start_us: start,
            duration_us: end - start,
            outcome,
            value,
            error: None,
            served_by: None,
        }
    }

    fn w(start: u64, end: u64, outcome: Outcome, v: i64) -> Op {
        op(0, None, Kind::Write, start, end, outcome, Some(v))
    }

    fn observe(node: usize, start: u64, end: u64, v: Option<i64>) -> Op {
        op(node, Some(0), Kind::Read, start, end, Outcome::Ok, v)
    }

    fn check(ops: &[Op], finals: &[Op]) -> Correctness {
        let mut c = Checker::new(3);
        for o in ops {
            c.op(o, Phase::Before);
        }
        c.final_reads_begin();
        for o in finals {
            c.op(o, Phase::Before);
        }
        c.finish()
    }

    #[test]
    fn a_read_older_than_an_acknowledged_write_is_stale() {
        let r = check(
            &[
                w(0, 10, Outcome::Ok, 1),
                w(20, 30, Outcome::Ok, 2),
                observe(1, 40, 50, Some(1)),
            ],
            &[],
        );
        assert_eq!(r.violations, 1);
        let v = &r.examples[0];
        assert_eq!(
            (v.kind, v.key, v.reader, v.read_value, v.acknowledged),
            (ViolationKind::StaleRead, 0, 1, Some(1), Some((2, 30)))
        );
        assert_eq!(r.by_reader[1].get(&Phase::Before), Some(&1));
        assert_eq!(
            r.by_second.get(&1),
            Some(&1),
            "the read ended in the first second"
        );
        assert!(describe(v, &["n1".into(), "n2".into(), "n3".into()])
            .starts_with("stale read before the fault: a reader read n1's key through n2"));
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        // The write of 2 ends after the read began: 1 and 2 are both legal.
        let r = check(
            &[
                w(0, 10, Outcome::Ok, 1),
                w(20, 45, Outcome::Ok, 2),
                observe(1, 40, 50, Some(1)),
                observe(2, 41, 44, Some(2)),
            ],
            &[],
        );
        assert_eq!(r.violations, 0);
        assert_eq!(r.reads_checked, 2);
    }

    #[test]
    fn the_writers_own_read_must_see_its_last_acknowledged_write() {
        let own_read = op(0, None, Kind::Read, 40, 50, Outcome::Ok, None);
        let r = check(&[w(0, 10, Outcome::Ok, 1), own_read], &[]);
        assert_eq!(r.by_kind.get(&ViolationKind::StaleRead), Some(&1));
        assert!(r.examples[0].by_writer);
    }

    #[test]
    fn unknown_writes_that_did_or_did_not_happen_are_both_legal() {
        let history = [
            w(0, 10, Outcome::Ok, 1),
            w(20, 1_000_020, Outcome::Unknown, 2),
        ];
        for seen in [1, 2] {
            let r = check(&history, &[observe(1, 2_000_000, 2_000_010, Some(seen))]);
            assert_eq!(r.violations, 0, "final value {seen}");
            assert_eq!(r.final_reads, 1);
        }
    }

    #[test]
    fn a_final_value_below_the_acknowledged_or_above_any_written_is_a_violation() {
        let history = [
            w(0, 10, Outcome::Ok, 1),
            w(20, 30, Outcome::Ok, 2),
            w(40, 50, Outcome::Unknown, 3),
        ];
        let r = check(
            &history,
            &[observe(1, 100, 110, Some(1)), observe(2, 100, 110, Some(4))],
        );
        assert_eq!(r.by_kind.get(&ViolationKind::LostWrite), Some(&1));
        assert_eq!(r.by_kind.get(&ViolationKind::PhantomValue), Some(&1));
        let r = check(
            &history,
            &[observe(1, 100, 110, Some(3)), observe(2, 100, 110, Some(2))],
        );
        assert_eq!(r.violations, 0);
    }

    #[test]
    fn failed_reads_judge_nothing_and_memory_stays_within_the_horizon() {
        let mut c = Checker::new(1);
        for i in 0..10_000u64 {
            c.op(
                &w(i * 100_000, i * 100_000 + 10, Outcome::Ok, i as i64 + 1),
                Phase::Before,
            );
        }
        assert!(c.keys[0].recent.len() <= (HORIZON_US / 100_000) as usize + 1);
        c.op(
            &op(
                0,
                Some(0),
                Kind::Read,
                999_900_000,
                999_900_100,
                Outcome::Fail,
                None,
            ),
            Phase::After,
        );
        c.op(
            &observe(0, 999_900_000, 999_900_100, Some(10_000)),
            Phase::After,
        );
        let r = c.finish();
        assert_eq!((r.violations, r.reads_checked), (0, 1));
    }
    fn own_read(t: u64, v: i64) -> Op {
        op(0, None, Kind::Read, t, t + 5, Outcome::Ok, Some(v))
    }

    /// The writer's loop from `from` to `to` inclusive, every write acknowledged, starting at
    /// time `t` (each step 100 µs).
    fn increments(from: i64, to: i64, t: u64) -> Vec<Op> {
        (from..=to)
            .flat_map(|v| {
                let at = t + (v - from) as u64 * 100;
                [own_read(at, v - 1), w(at + 10, at + 20, Outcome::Ok, v)]
            })
            .collect()
    }

    #[test]
    fn a_drop_seen_by_the_writer_counts_every_acknowledged_increment_above_it_once() {
        // Redis-like: 1..=100 acknowledged; the writer then reads 40 (a failover lost the
        // rest) and goes on from there, re-writing 41..=120.
        let mut ops = increments(1, 100, 0);
        ops.extend(increments(41, 120, 1_000_000));
        let r = check(&ops, &[observe(1, 9_000_000, 9_000_010, Some(120))]);
        assert_eq!(r.lost_acknowledged_writes, 60);
        assert_eq!(r.lost_by_key, vec![60, 0, 0]);
        assert_eq!(r.lost_by_phase.get(&Phase::Before), Some(&60));
        assert_eq!(r.lost_by_phase.get(&Phase::During), Some(&0));
        assert_eq!(r.losses.len(), 1);
        let l = &r.losses[0];
        assert_eq!(
            (l.read_value, l.highest_acknowledged, l.lost, l.final_read),
            (40, 100, 60, false)
        );
        assert_eq!(
            r.by_kind.get(&ViolationKind::StaleRead),
            Some(&1),
            "the same read is a stale read"
        );
    }

    #[test]
    fn a_timed_out_write_landing_late_overwrites_the_acknowledged_ones_above_it() {
        // etcd-like: 1456 timed out, was retried and acknowledged, the writer went on to
        // 3730; then the first attempt of 1456 was applied, and the writer read 1456.
        let mut ops = increments(1, 1455, 0);
        ops.push(w(200_000, 1_200_000, Outcome::Unknown, 1456));
        ops.extend(increments(1456, 3730, 1_300_000));
        ops.push(own_read(9_000_000, 1456));
        let r = check(&ops, &[]);
        assert_eq!(r.lost_acknowledged_writes, 3730 - 1456);
    }

    #[test]
    fn a_stale_read_by_an_observer_is_not_a_loss() {
        let ops = [
            increments(1, 100, 0),
            vec![observe(1, 50_000, 50_010, Some(40))],
        ]
        .concat();
        let r = check(&ops, &[observe(2, 9_000_000, 9_000_010, Some(100))]);
        assert_eq!(r.by_kind.get(&ViolationKind::StaleRead), Some(&1));
        assert_eq!(r.lost_acknowledged_writes, 0);
        assert_eq!(
            r.by_kind.get(&ViolationKind::PhantomValue),
            Some(&0),
            "every kind is listed, zeros included"
        );
    }

    #[test]
    fn final_reads_below_the_acknowledged_count_the_loss_once() {
        let ops = increments(1, 10, 0);
        let low = |n| observe(n, 9_000_000, 9_000_010, Some(7));
        let r = check(&ops, &[low(0), low(1), low(2)]);
        assert_eq!(r.lost_acknowledged_writes, 3);
        assert_eq!(r.by_kind.get(&ViolationKind::LostWrite), Some(&3));
        assert!(r.losses[0].final_read);
    }

    #[test]
    fn values_attempted_but_never_acknowledged_are_not_counted_as_lost() {
        // 6 timed out (it did happen: the writer read 6), 7 and 8 acknowledged, then the
        // value is 5 again: 7 and 8 were lost, 6 was never acknowledged.
        let mut ops = increments(1, 5, 0);
        ops.push(w(10_000, 1_010_000, Outcome::Unknown, 6));
        ops.push(own_read(1_020_000, 6));
        ops.push(w(1_020_010, 1_020_020, Outcome::Ok, 7));
        ops.push(own_read(1_020_030, 7));
        ops.push(w(1_020_040, 1_020_050, Outcome::Ok, 8));
        ops.push(own_read(1_020_060, 5));
        let r = check(&ops, &[]);
        assert_eq!(r.lost_acknowledged_writes, 2);
    }

    #[test]
    fn hostile_values_count_without_overflow() {
        let ops = [
            w(0, 10, Outcome::Ok, i64::MIN),
            w(20, 30, Outcome::Ok, i64::MAX),
            own_read(40, i64::MIN),
        ];
        let r = check(&ops, &[]);
        assert_eq!(r.lost_acknowledged_writes, 1);
    }
}
