//! Correctness from the record alone: lost acknowledged writes, and what each anomalous
//! read was.
//!
//! Each key has one writer (its node's client), whose writes set values 1, 2, 3, … in
//! order, each tagged with the number of its write attempt (unique per key), so a read
//! names the exact write it returned. For every key, a successful read must return the last
//! write acknowledged *before the read began*, or a later one (an absent key counts as 0).
//! A read that returns an older write is one of:
//! - **stale read**: an older *acknowledged* write (or, in a record without attempt numbers,
//!   a lower value): the database served old data. This covers the writer's own reads (its
//!   increments then start again from old data) and any observer's.
//! - **late write**: the write of an attempt that had timed out (`unknown`) before the
//!   acknowledged one was even sent. Legal under linearizability (a timed-out write may
//!   take effect at any later time), but for a read → increment → write client it is a lost
//!   update: the acknowledged increments it overwrote are lost. Where the database stamps
//!   changes (etcd's revision), a read whose stamp is *older* than the acknowledged write's
//!   is a stale read instead: the timed-out write had landed in time, and the read is old.
//! - **phantom**: a write that definitely failed, or, in the final reads, a value or
//!   attempt no write ever carried.
//!
//! After the run, once every fault is healed, every node reads every key once (the *final
//! reads*, after the `final-reads` mark). A final value older than the last acknowledged
//! write is a **lost write** (or a late write, as above).
//!
//! **Lost acknowledged writes** are counted, not only flagged: every time the key's writer
//! (or a final read) sees the value drop below acknowledged values, each acknowledged
//! increment above what it saw is lost, once, and counted under the kind of the read that
//! found it. The writer then goes on from the lower value, re-writing the same numbers;
//! those count afresh and do not hide the loss. Observers' reads count as stale reads, not
//! as losses: a later read may still see the value.
//!
//! An unknown write may or may not have happened: it never makes a later read stale and it
//! raises the upper bound of the final value. Reads that failed or timed out check nothing.
//! Not checked: reads that took longer than [`HORIZON_US`], ordering between different keys,
//! and anything about failed reads.
//!
//! The checker keeps the last [`HORIZON_US`] of writes per key, and the attempt numbers of
//! timed-out writes (one per timeout), so its memory does not grow with the run's length at
//! a steady rate. It also keeps at most [`MAX_KEPT`] entries over all keys, whatever the
//! record holds, a quarter each for writes, timeouts, failures and gaps between acknowledged
//! values: past that, a read that began before the oldest write still kept is not judged,
//! nor a read that returned an attempt older than the timeouts forgotten, and losses below
//! the gaps forgotten are not counted. It never reports an anomaly it could not prove.

use super::Phase;
use crate::record::{Kind, Op, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How far back acknowledged writes are kept to judge a read; a read longer than this is
/// not judged.
pub const HORIZON_US: u64 = 60_000_000;

/// The most writes, timeouts, failures and gaps the checker keeps, over all keys, a quarter
/// of them each (under 48 MiB).
pub const MAX_KEPT: usize = 1 << 20;

/// How far past the horizon writes may stay before they are dropped.
const PRUNE_SLACK_US: u64 = 1_000_000;
/// How many anomalies (and losses) are kept with their details, per phase.
pub const EXAMPLES: usize = 10;

/// What an anomalous read was (see the module's documentation).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    StaleRead,
    LateWrite,
    LostWrite,
    Phantom,
}

impl ViolationKind {
    pub const ALL: [ViolationKind; 4] = [
        ViolationKind::StaleRead,
        ViolationKind::LateWrite,
        ViolationKind::LostWrite,
        ViolationKind::Phantom,
    ];

    /// Whether it breaks the database's own guarantee (a late write does not).
    pub fn is_violation(self) -> bool {
        self != ViolationKind::LateWrite
    }

    /// Its name in prose: `stale read`.
    pub fn words(self) -> &'static str {
        match self {
            ViolationKind::StaleRead => "stale read",
            ViolationKind::LateWrite => "late write",
            ViolationKind::LostWrite => "lost write",
            ViolationKind::Phantom => "phantom",
        }
    }
}

/// One write, as a read is judged against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WriteRef {
    pub value: i64,
    /// Its attempt number, where the record has them.
    pub attempt: Option<u64>,
    pub start_us: u64,
    pub end_us: u64,
    /// The database's stamp of the change, where it has one.
    pub revision: Option<i64>,
}

/// One anomalous read, with the writes involved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The attempt it returned, where the record has it.
    pub read_attempt: Option<u64>,
    /// The stamp of the change it returned, where the database has one.
    pub read_revision: Option<i64>,
    /// The acknowledged write the read should have seen (or a later one).
    pub acknowledged: Option<WriteRef>,
    /// For a late write: the timed-out attempt whose value the read returned.
    pub late: Option<WriteRef>,
    /// The highest value any write tried to set (for a phantom).
    pub highest_attempted: Option<i64>,
}

/// Acknowledged writes found gone: a read by the key's writer (or a final read) returned
/// less than values whose writes had been acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Loss {
    pub phase: Phase,
    /// The node whose key it is.
    pub key: usize,
    /// The node the read went through.
    pub reader: usize,
    /// Whether it was a final read (else the key's writer's own read).
    pub final_read: bool,
    /// What the read that found the loss was: a stale read (the database went back to
    /// older data), a late write (a timed-out write overwrote newer ones) or a lost write.
    pub kind: ViolationKind,
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
    /// Anomalies that break the database's own guarantee: every kind but late writes.
    pub violations: u64,
    /// Anomalies by kind, every kind, zeros included.
    pub by_kind: BTreeMap<ViolationKind, u64>,
    /// Violations (not late writes) by the node the read went through, then by phase.
    pub by_reader: Vec<BTreeMap<Phase, u64>>,
    /// Violations (not late writes) by the second (row of the table) in which the read ended.
    pub by_second: BTreeMap<u64, u64>,
    /// The first [`EXAMPLES`] anomalies of each phase.
    pub examples: Vec<Violation>,
    /// Acknowledged writes lost, in all (see [`Loss`]).
    pub lost_acknowledged_writes: u64,
    /// The same by key (the node whose key it is).
    pub lost_by_key: Vec<u64>,
    /// The same by the kind of read that found them, every kind included.
    pub lost_by_kind: BTreeMap<ViolationKind, u64>,
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

    /// Forgets the lowest runs when there are more than `cap`, keeping the newest half.
    fn bound(&mut self, cap: usize) {
        if self.0.len() > cap.max(2) {
            self.0.drain(..self.0.len() - cap.max(2) / 2);
        }
    }
}

/// What the record says of one write attempt, as a read that returned it is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttemptStatus {
    /// Before the record's first write of the key: a value from before the run.
    Before,
    Acknowledged,
    /// It timed out: it may take effect at any time.
    Unknown(WriteRef),
    /// It definitely failed.
    Failed,
    /// No write of the record carried it (yet: a read can end before a write in flight).
    NotYet,
    /// It may have timed out, but the checker no longer keeps that far back.
    Forgotten,
}

#[derive(Debug, Default, Clone)]
struct KeyState {
    /// Acknowledged writes of the last horizon, in end order.
    recent: VecDeque<WriteRef>,
    /// The last acknowledged write older than the horizon.
    baseline: Option<WriteRef>,
    highest_attempted: Option<i64>,
    /// The lowest and highest attempt numbers the key's writes carried.
    first_attempt: Option<u64>,
    last_attempt: Option<u64>,
    /// Writes that timed out, by attempt (whole run: one per timeout).
    unknown: BTreeMap<u64, WriteRef>,
    /// Attempts that definitely failed in the last horizon: (end, attempt), in order.
    failed: VecDeque<(u64, u64)>,
    present: Present,
    /// Reads that began at or before this were not judged: writes acknowledged by then
    /// were forgotten for lack of room.
    forgotten_until_us: Option<u64>,
    /// Timed-out attempts below this were forgotten for lack of room.
    unknown_forgotten_below: u64,
}

impl KeyState {
    /// The last write acknowledged before `t`.
    fn acknowledged_before(&self, t: u64) -> Option<WriteRef> {
        self.recent
            .iter()
            .rev()
            .find(|w| w.end_us < t)
            .copied()
            .or(self.baseline)
    }

    fn last_acknowledged(&self) -> Option<WriteRef> {
        self.recent.back().copied().or(self.baseline)
    }

    /// Keeps at most `cap` writes, timeouts, failures and gaps: the oldest go first.
    fn bound(&mut self, cap: usize) {
        let cap = cap.max(2);
        if self.recent.len() > cap {
            let drop = self.recent.len() - cap / 2;
            for w in self.recent.drain(..drop) {
                self.forgotten_until_us = self.forgotten_until_us.max(Some(w.end_us));
                self.baseline = Some(w);
            }
        }
        if self.unknown.len() > cap {
            while self.unknown.len() > cap / 2 {
                let (a, _) = self.unknown.pop_first().expect("a timeout");
                self.unknown_forgotten_below = self.unknown_forgotten_below.max(a + 1);
            }
        }
        if self.failed.len() > cap {
            self.failed.drain(..self.failed.len() - cap / 2);
        }
        self.present.bound(cap);
    }

    /// Whether a read that began at `start_us` can be judged with the writes kept.
    fn judges(&self, start_us: u64) -> bool {
        self.forgotten_until_us.is_none_or(|t| start_us > t)
    }

    fn prune(&mut self, now: u64) {
        // Writes go a second past the horizon before they go, then all at once: the same
        // answers (the writes are in end order, and the newest gone is the baseline), with
        // the front of the queue looked at in the cache.
        if self
            .recent
            .front()
            .is_some_and(|w| w.end_us.saturating_add(HORIZON_US + PRUNE_SLACK_US) < now)
        {
            while let Some(&w) = self.recent.front() {
                if w.end_us.saturating_add(HORIZON_US) >= now {
                    break;
                }
                self.baseline = Some(w);
                self.recent.pop_front();
            }
        }
        while let Some(&(end, _)) = self.failed.front() {
            if end.saturating_add(HORIZON_US) >= now {
                break;
            }
            self.failed.pop_front();
        }
    }

    /// Notes a write's attempt number.
    fn attempted(&mut self, op: &Op) {
        if let Some(a) = op.attempt {
            self.first_attempt = Some(self.first_attempt.map_or(a, |f| f.min(a)));
            self.last_attempt = self.last_attempt.max(Some(a));
            let write = WriteRef::of(op);
            match op.outcome {
                Outcome::Unknown => {
                    self.unknown.insert(a, write);
                }
                Outcome::Fail => self.failed.push_back((op.end_us(), a)),
                Outcome::Ok => {}
            }
        }
    }

    fn status(&self, a: u64) -> AttemptStatus {
        match (self.first_attempt, self.last_attempt) {
            (Some(first), Some(last)) if a >= first => {
                if let Some(w) = self.unknown.get(&a) {
                    AttemptStatus::Unknown(*w)
                } else if self.failed.binary_search_by_key(&a, |(_, f)| *f).is_ok() {
                    AttemptStatus::Failed
                } else if a > last {
                    AttemptStatus::NotYet
                } else if a < self.unknown_forgotten_below {
                    AttemptStatus::Forgotten
                } else {
                    AttemptStatus::Acknowledged
                }
            }
            _ => AttemptStatus::Before,
        }
    }

    /// What a read that returned `op`'s cell was, measured against `due`, the write it
    /// should have seen (or a later one); `None` if the read is fine.
    fn judge(&self, op: &Op, due: Option<WriteRef>) -> Option<(ViolationKind, Option<WriteRef>)> {
        let got = op.value.unwrap_or(0);
        let status = op.attempt.map(|a| self.status(a));
        match status {
            Some(AttemptStatus::Failed) => return Some((ViolationKind::Phantom, None)),
            Some(AttemptStatus::Forgotten) => return None,
            _ => {}
        }
        let due = due?;
        let (Some(a), Some(ad)) = (op.attempt, due.attempt) else {
            // No attempt numbers (an older record, or a value from before the run).
            return (got < due.value).then_some((ViolationKind::StaleRead, None));
        };
        if a >= ad {
            return None;
        }
        match status {
            Some(AttemptStatus::Unknown(late)) => match (op.revision, due.revision) {
                // The change read is older than the acknowledged write: the timed-out
                // write had landed before it, and this read is old.
                (Some(r), Some(rd)) if r < rd => Some((ViolationKind::StaleRead, Some(late))),
                _ => Some((ViolationKind::LateWrite, Some(late))),
            },
            _ => Some((ViolationKind::StaleRead, None)),
        }
    }
}

impl WriteRef {
    fn of(op: &Op) -> WriteRef {
        WriteRef {
            value: op.value.unwrap_or(0),
            attempt: op.attempt,
            start_us: op.start_us,
            end_us: op.end_us(),
            revision: op.revision,
        }
    }
}

/// Follows the operations of a record (in record order) and collects anomalies and losses.
#[derive(Debug, Clone)]
pub struct Checker {
    keys: Vec<KeyState>,
    finals: bool,
    result: Correctness,
}

impl Checker {
    pub fn new(nodes: usize) -> Self {
        let kinds = || ViolationKind::ALL.into_iter().map(|k| (k, 0)).collect();
        Checker {
            keys: vec![KeyState::default(); nodes],
            finals: false,
            result: Correctness {
                by_kind: kinds(),
                lost_by_kind: kinds(),
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
        if op.kind == Kind::Write {
            key.attempted(op);
        }
        match (op.kind, op.outcome) {
            (Kind::Write, Outcome::Ok) => {
                if let Some(v) = op.value {
                    // Of writes that ended at the same time, a read is judged against the
                    // last only.
                    if key.recent.back().is_some_and(|w| w.end_us == op.end_us()) {
                        key.recent.pop_back();
                    }
                    key.recent.push_back(WriteRef::of(op));
                    key.highest_attempted = key.highest_attempted.max(Some(v));
                    let highest = key.present.highest();
                    let lost = key.present.acknowledge(v);
                    if lost > 0 {
                        // A blind write below acknowledged values: they are overwritten.
                        let got = v.saturating_sub(1);
                        let kind = ViolationKind::LostWrite;
                        self.loss(op, phase, kind, got, highest.unwrap_or(got), lost);
                    }
                }
            }
            (Kind::Read, Outcome::Ok) if op.duration_us <= HORIZON_US => self.read(op, phase),
            (Kind::Write, Outcome::Unknown) => {
                key.highest_attempted = key.highest_attempted.max(op.value);
            }
            _ => {}
        }
        let cap = MAX_KEPT / (4 * self.keys.len().max(1));
        self.keys[k].prune(op.end_us());
        self.keys[k].bound(cap);
    }

    /// Judges a successful read, and counts the acknowledged writes it finds gone.
    fn read(&mut self, op: &Op, phase: Phase) {
        let k = op.key_owner();
        let key = &self.keys[k];
        let got = op.value.unwrap_or(0);
        let (found, due) = if self.finals {
            self.result.final_reads += 1;
            let last = key.last_acknowledged();
            let mut found = key.judge(op, last).map(|(kind, late)| match kind {
                ViolationKind::StaleRead => (ViolationKind::LostWrite, late),
                other => (other, late),
            });
            let phantom = match op.attempt.map(|a| key.status(a)) {
                Some(AttemptStatus::NotYet) => true,
                Some(_) => false,
                None => got > key.highest_attempted.unwrap_or(0),
            };
            if phantom && found.is_none() {
                found = Some((ViolationKind::Phantom, None));
            }
            (found, last)
        } else if key.judges(op.start_us) {
            self.result.reads_checked += 1;
            let due = key.acknowledged_before(op.start_us);
            (key.judge(op, due), due)
        } else {
            (None, None)
        };
        if op.is_writer() || self.finals {
            let key = &mut self.keys[k];
            let highest = key.present.highest();
            let lost = key.present.keep_up_to(got);
            if lost > 0 {
                let kind = match found {
                    Some((kind, _)) if kind != ViolationKind::Phantom => kind,
                    _ if self.finals => ViolationKind::LostWrite,
                    _ => ViolationKind::StaleRead,
                };
                self.loss(op, phase, kind, got, highest.unwrap_or(got), lost);
            }
        }
        if let Some((kind, late)) = found {
            let key = &self.keys[k];
            self.violation(Violation {
                kind,
                phase,
                key: k,
                reader: op.node,
                by_writer: op.is_writer(),
                read_start_us: op.start_us,
                read_end_us: op.end_us(),
                read_value: op.value,
                read_attempt: op.attempt,
                read_revision: op.revision,
                acknowledged: due,
                late,
                highest_attempted: (kind == ViolationKind::Phantom)
                    .then_some(key.highest_attempted)
                    .flatten(),
            });
        }
    }

    /// Records acknowledged increments found gone by `op`, which saw `got`.
    fn loss(
        &mut self,
        op: &Op,
        phase: Phase,
        kind: ViolationKind,
        got: i64,
        highest: i64,
        lost: u64,
    ) {
        let r = &mut self.result;
        r.lost_acknowledged_writes = r.lost_acknowledged_writes.saturating_add(lost);
        let k = op.key_owner();
        r.lost_by_key[k] = r.lost_by_key[k].saturating_add(lost);
        *r.lost_by_kind.entry(kind).or_default() += lost;
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
                kind,
                read_start_us: op.start_us,
                read_end_us: op.end_us(),
                read_value: got,
                highest_acknowledged: highest,
                lost,
            });
        }
    }

    fn violation(&mut self, v: Violation) {
        *self.result.by_kind.entry(v.kind).or_default() += 1;
        if v.kind.is_violation() {
            self.result.violations += 1;
            *self.result.by_reader[v.reader].entry(v.phase).or_default() += 1;
            *self
                .result
                .by_second
                .entry(v.read_end_us / 1_000_000 + 1)
                .or_default() += 1;
        }
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

    /// Acknowledged increments found lost so far.
    pub fn lost(&self) -> u64 {
        self.result.lost_acknowledged_writes
    }

    pub fn finish(self) -> Correctness {
        self.result
    }
}

/// One line per anomaly, for the terminal.
pub fn describe(v: &Violation, nodes: &[String]) -> String {
    let at = |us: u64| format!("{:.3} s", us as f64 / 1e6);
    let cell = |value: Option<i64>, attempt: Option<u64>| match (value, attempt) {
        (None, _) => "nothing".to_string(),
        (Some(v), Some(a)) => format!("{v} (attempt {a})"),
        (Some(v), None) => v.to_string(),
    };
    let rev = |r: Option<i64>| r.map(|r| format!(", revision {r}")).unwrap_or_default();
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
        "{who} read {}'s key through {} [{} – {}] and got {}{}",
        nodes[v.key],
        nodes[v.reader],
        at(v.read_start_us),
        at(v.read_end_us),
        cell(v.read_value, v.read_attempt),
        rev(v.read_revision)
    );
    let acked = v
        .acknowledged
        .map(|w| {
            format!(
                "the write of {}{} was acknowledged at {}",
                cell(Some(w.value), w.attempt),
                rev(w.revision),
                at(w.end_us)
            )
        })
        .unwrap_or_default();
    let timed_out = v
        .late
        .map(|w| {
            format!(
                "attempt {} had timed out at {}",
                w.attempt.unwrap_or(0),
                at(w.end_us)
            )
        })
        .unwrap_or_default();
    match v.kind {
        ViolationKind::StaleRead if v.late.is_some() => format!(
            "stale read {phase}: {read}, but {acked}; {timed_out}, and its revision shows it landed before"
        ),
        ViolationKind::StaleRead | ViolationKind::LostWrite => {
            format!("{} {phase}: {read}, but {acked}", v.kind.words())
        }
        ViolationKind::LateWrite => {
            let evidence = match (v.read_revision, v.acknowledged.and_then(|w| w.revision)) {
                (Some(r), Some(rd)) => format!(
                    " (revision {r} is newer than {rd}: it landed after)"
                ),
                _ => String::new(),
            };
            format!(
                "late write {phase}: {read}; {timed_out} before {acked}, and took effect later{evidence}"
            )
        }
        ViolationKind::Phantom => match v.read_attempt {
            Some(a) => format!("phantom {phase}: {read}, but attempt {a} failed or was never made"),
            None => format!(
                "phantom {phase}: {read}, above any value written ({})",
                v.highest_attempted
                    .map_or("nothing".to_string(), |h| h.to_string())
            ),
        },
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
            attempt: None,
            revision: None,
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
            (v.kind, v.key, v.reader, v.read_value),
            (ViolationKind::StaleRead, 0, 1, Some(1))
        );
        assert_eq!(v.acknowledged.map(|w| (w.value, w.end_us)), Some((2, 30)));
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
        assert_eq!(r.by_kind.get(&ViolationKind::Phantom), Some(&1));
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
        assert!(c.keys[0].recent.len() <= ((HORIZON_US + PRUNE_SLACK_US) / 100_000) as usize + 1);
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
            r.by_kind.get(&ViolationKind::Phantom),
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

    /// A write (or read) carrying attempt `a` and revision `rev`.
    fn tagged(mut o: Op, a: u64, rev: Option<i64>) -> Op {
        o.attempt = Some(a);
        o.revision = rev;
        o
    }

    /// The writer's loop with attempt numbers equal to the values and revisions 1000 above.
    fn tagged_increments(from: i64, to: i64, t: u64) -> Vec<Op> {
        increments(from, to, t)
            .into_iter()
            .map(|o| {
                let v = o.value.unwrap_or(0);
                let rev = Some(1000 + v);
                if v == 0 {
                    o
                } else {
                    tagged(o, v as u64, rev)
                }
            })
            .collect()
    }

    #[test]
    fn a_timed_out_attempt_read_after_newer_acknowledged_ones_is_a_late_write() {
        // etcd's case: attempt 101 (value 101) timed out; the writer read 100 again, its
        // attempt 102 set 101 and was acknowledged, and it went on to 140 (attempt 141);
        // then attempt 101 landed, at revision 2000, newer than every acknowledged write.
        let mut ops = tagged_increments(1, 100, 0);
        ops.push(tagged(
            w(20_000, 1_020_000, Outcome::Unknown, 101),
            101,
            None,
        ));
        ops.push(tagged(own_read(1_030_000, 100), 100, Some(1100)));
        for (i, v) in (101..=140).enumerate() {
            let t = 1_040_000 + i as u64 * 100;
            if v > 101 {
                ops.push(tagged(own_read(t, v - 1), v as u64, Some(1001 + v)));
            }
            ops.push(tagged(
                w(t + 10, t + 20, Outcome::Ok, v),
                v as u64 + 1,
                Some(1001 + v),
            ));
        }
        ops.push(tagged(own_read(2_000_000, 101), 101, Some(2000)));
        let r = check(&ops, &[]);
        assert_eq!(r.by_kind[&ViolationKind::LateWrite], 1);
        assert_eq!(r.violations, 0, "a late write is legal for the database");
        assert_eq!(r.lost_acknowledged_writes, 140 - 101);
        assert_eq!(r.lost_by_kind[&ViolationKind::LateWrite], 39);
        let v = r
            .examples
            .iter()
            .find(|v| v.kind == ViolationKind::LateWrite)
            .unwrap();
        assert_eq!(v.late.and_then(|l| l.attempt), Some(101));
        let text = describe(v, &["n1".into(), "n2".into(), "n3".into()]);
        assert!(
            text.starts_with("late write before the fault: its writer read n1's key")
                && text.contains("attempt 101 had timed out")
                && text.contains("revision 2000 is newer than 1141"),
            "{text}"
        );
    }

    #[test]
    fn a_timed_out_attempt_whose_revision_is_older_than_the_acknowledged_is_a_stale_read() {
        let mut ops = tagged_increments(1, 10, 0);
        ops.push(tagged(w(20_000, 1_020_000, Outcome::Unknown, 11), 11, None));
        ops.push(tagged(own_read(1_030_000, 11), 11, Some(1011)));
        ops.push(tagged(
            w(1_030_010, 1_030_020, Outcome::Ok, 12),
            12,
            Some(1012),
        ));
        // An observer then reads attempt 11 at its own (older) revision: the database
        // served old data.
        ops.push(tagged(
            observe(1, 1_040_000, 1_040_010, Some(11)),
            11,
            Some(1011),
        ));
        let r = check(&ops, &[]);
        assert_eq!(
            (
                r.by_kind[&ViolationKind::StaleRead],
                r.by_kind[&ViolationKind::LateWrite]
            ),
            (1, 0)
        );
        assert_eq!(
            r.lost_acknowledged_writes, 0,
            "an observer's read loses nothing"
        );
    }

    #[test]
    fn an_older_acknowledged_attempt_is_a_stale_read_and_its_loss_is_counted_under_it() {
        let mut ops = tagged_increments(1, 50, 0);
        ops.push(tagged(own_read(1_000_000, 20), 20, None));
        let r = check(&ops, &[]);
        assert_eq!(r.by_kind[&ViolationKind::StaleRead], 1);
        assert_eq!(r.lost_by_kind[&ViolationKind::StaleRead], 30);
        assert_eq!(r.losses[0].kind, ViolationKind::StaleRead);
    }

    #[test]
    fn a_failed_attempt_that_shows_up_is_a_phantom_and_so_is_an_attempt_never_made() {
        let mut ops = tagged_increments(1, 5, 0);
        ops.push(tagged(w(10_000, 10_100, Outcome::Fail, 6), 6, None));
        ops.push(tagged(observe(1, 10_200, 10_300, Some(6)), 6, None));
        let r = check(
            &ops,
            &[tagged(observe(2, 20_000, 20_010, Some(9)), 9, None)],
        );
        assert_eq!(r.by_kind[&ViolationKind::Phantom], 2);
        assert_eq!(r.violations, 2);
    }

    #[test]
    fn a_value_from_before_the_run_is_not_judged_until_the_writer_writes() {
        // The previous run left 70 (attempt 90); this run's writer goes on from attempt 91.
        let ops = vec![
            tagged(observe(1, 0, 10, Some(70)), 90, None),
            tagged(own_read(20, 70), 90, None),
            tagged(w(30, 40, Outcome::Ok, 71), 91, None),
            tagged(observe(2, 50, 60, Some(71)), 91, None),
        ];
        let r = check(&ops, &[tagged(observe(2, 100, 110, Some(71)), 91, None)]);
        assert_eq!((r.violations, r.lost_acknowledged_writes), (0, 0));
        let stale = check(&ops, &[tagged(observe(2, 100, 110, Some(70)), 90, None)]);
        assert_eq!(stale.by_kind[&ViolationKind::LostWrite], 1);
    }

    /// Millions of writes at one instant, or at distinct ones, keep the checker's memory
    /// bounded by count; what it can no longer judge it does not judge, and what it still
    /// can it still finds.
    #[test]
    fn the_checker_keeps_a_bounded_number_of_writes_and_judges_only_what_it_kept() {
        let kept = |c: &Checker| {
            c.keys
                .iter()
                .map(|k| k.recent.len() + k.unknown.len() + k.failed.len() + k.present.0.len())
                .sum::<usize>()
        };
        // At one instant: only the last is needed to judge any read.
        let mut c = Checker::new(3);
        for v in 1..=2_000_000 {
            c.op(&w(1_000, 1_010, Outcome::Ok, v), Phase::Before);
        }
        assert!(kept(&c) < 16, "{} kept", kept(&c));
        c.op(&observe(1, 2_000, 2_010, Some(1_999_999)), Phase::Before);
        assert_eq!(c.result.violations, 1, "the stale read is still found");
        // At distinct instants, with a gap between every two acknowledged values.
        let mut c = Checker::new(3);
        let n = 3 * MAX_KEPT as i64;
        for v in 1..=n {
            c.op(
                &w(v as u64 * 10, v as u64 * 10 + 5, Outcome::Ok, 2 * v),
                Phase::Before,
            );
        }
        assert!(kept(&c) <= MAX_KEPT / 4 + 4, "{} kept", kept(&c));
        // A read that began before the oldest write kept is not judged; a later one is.
        let end = n as u64 * 10 + 5;
        c.op(&observe(1, 20, end + 10, Some(2)), Phase::Before);
        assert_eq!((c.result.reads_checked, c.result.violations), (0, 0));
        c.op(
            &observe(1, end + 1, end + 10, Some(2 * n - 2)),
            Phase::Before,
        );
        assert_eq!((c.result.reads_checked, c.result.violations), (1, 1));
    }
}
