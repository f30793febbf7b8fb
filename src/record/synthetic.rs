//! A generated record of the seed's experiment, for benchmarks and tests of everything that
//! reads records: no database, no lab.

use super::{Event, FaultEvent, Header, Kind, Op, Outcome, Writer};
use crate::error::{Error, Result};
use std::path::Path;

/// Writes a synthetic record: 3 nodes, `seconds` long, `rate` operations a second in all
/// (reads and writes of read → increment → write cycles), n2 isolated for the middle third
/// with one timeout a second. Returns the number of operations.
pub fn synthetic_record(dir: &Path, seconds: u64, rate: u64) -> Result<u64> {
    synthetic_loop(dir, seconds, rate, seconds)
}

/// As [`synthetic_record`], with n2 isolated for the middle third of every `period`
/// seconds (a looped scenario): `seconds / period` faults.
pub fn synthetic_loop(dir: &Path, seconds: u64, rate: u64, period: u64) -> Result<u64> {
    let period = period.clamp(1, seconds.max(1));
    std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
    let header = Header::new(
        "etcd",
        vec!["n1".into(), "n2".into(), "n3".into()],
        crate::clock::unix_ms(),
        0,
    );
    let mut w = Writer::create(&dir.join(super::COMPRESSED_FILE_NAME), &header)?;
    let windows: Vec<(u64, u64)> = (0..seconds / period)
        .map(|k| {
            let base = k * period * 1_000_000;
            (
                base + period / 3 * 1_000_000,
                base + 2 * period / 3 * 1_000_000,
            )
        })
        .collect();
    let step = 1_000_000 / (rate / 3).max(1);
    let mut values = [0i64; 3];
    // Each node alternates read, write (a read → increment → write cycle).
    let mut writes_next = [false; 3];
    let mut ops = 0u64;
    let fault = |t_us, verb: &str| {
        Event::Fault(FaultEvent {
            t_us,
            verb: verb.into(),
            target: "n2".into(),
        })
    };
    let mut jitter = Jitter(0x9e37_79b9_7f4a_7c15);
    let mut t = 0;
    // The window in force at `t`, or the next one.
    let mut window = 0;
    let mut fault_at = windows
        .iter()
        .flat_map(|(iso, rejoin)| [(*iso, "isolating"), (*rejoin, "rejoining")])
        .peekable();
    while t < seconds * 1_000_000 {
        if let Some((at, verb)) = fault_at.peek().copied() {
            if t >= at {
                w.write(&fault(at, verb))?;
                fault_at.next();
            }
        }
        while windows.get(window).is_some_and(|(_, r)| t >= *r) {
            window += 1;
        }
        for (node, value) in values.iter_mut().enumerate() {
            let isolated = node == 1 && windows.get(window).is_some_and(|(i, _)| t >= *i);
            if isolated {
                if t % 1_000_000 < step {
                    w.write(&Event::Op(Op {
                        node,
                        key: None,
                        kind: Kind::Read,
                        start_us: t,
                        duration_us: 1_000_000,
                        outcome: Outcome::Unknown,
                        value: None,
                        error: Some("timed out after 1s".into()),
                        attempt: None,
                        revision: None,
                        served_by: None,
                    }))?;
                    ops += 1;
                }
                continue;
            }
            let kind = if writes_next[node] {
                Kind::Write
            } else {
                Kind::Read
            };
            writes_next[node] = !writes_next[node];
            if kind == Kind::Write {
                *value += 1;
            }
            let v = Some(*value);
            w.write(&Event::Op(Op {
                node,
                key: None,
                kind,
                // Jittered as a real client's are (a record of evenly spaced, equally long
                // requests would compress far better than any real one).
                start_us: t + jitter.next() % step.max(1),
                duration_us: step / 2 + jitter.next() % step.max(1),
                outcome: Outcome::Ok,
                value: v,
                error: None,
                // As the workload numbers them: every write a new attempt, every read the
                // attempt it saw (here each value's own, as no write fails).
                attempt: u64::try_from(*value).ok().filter(|a| *a > 0),
                revision: None,
                served_by: None,
            }))?;
            ops += 1;
        }
        t += step;
    }
    w.write(&Event::End {
        t_us: seconds * 1_000_000,
    })?;
    w.flush()?;
    Ok(ops)
}

/// A fixed sequence of pseudo-random numbers (xorshift64): the same record every time.
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 >> 32
    }
}
