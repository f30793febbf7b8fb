//! Request latency per node per second: median, 99th percentile, maximum, and how many
//! requests timed out. Seconds are closed (and their samples dropped) a few seconds after
//! they end, so memory stays flat however long the record is.

use crate::record::{Op, Outcome};
use serde::Serialize;
use std::collections::BTreeMap;

/// Seconds this far behind the newest operation are closed.
const CLOSE_AFTER_S: u64 = 5;

/// One node's requests in one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stat {
    pub count: u32,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Requests that ended unknown (timed out or connection lost).
    pub unknown: u32,
}

/// Latency of every node in one second (row `second` of the table: `[second-1, second)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatencySecond {
    pub second: u64,
    /// `None` where the node ended no request in that second.
    pub nodes: Vec<Option<Stat>>,
}

/// One second's samples of every node: durations, and how many ended unknown.
type Samples = Vec<(Vec<u32>, u32)>;

/// Collects the writers' requests by the second in which they ended.
#[derive(Debug, Clone)]
pub struct LatencyTracker {
    nodes: usize,
    open: BTreeMap<u64, Samples>,
    /// The latest operation's second, apart from `open` (most operations end in the same
    /// second as the one before).
    hot: Option<(u64, Samples)>,
    closed: Vec<LatencySecond>,
}

/// The `p` quantile (nearest rank) of `samples`, reordering them (linear time, no sort).
fn percentile(samples: &mut [u32], p: f64) -> u64 {
    let i = (((samples.len() as f64 - 1.0) * p).round() as usize).min(samples.len() - 1);
    *samples.select_nth_unstable(i).1 as u64
}

impl LatencyTracker {
    pub fn new(nodes: usize) -> Self {
        LatencyTracker {
            nodes,
            open: BTreeMap::new(),
            hot: None,
            closed: Vec::new(),
        }
    }

    pub fn op(&mut self, op: &Op) {
        let second = op.end_us() / 1_000_000 + 1;
        let sample = |slot: &mut (Vec<u32>, u32)| {
            slot.0.push(op.duration_us.min(u32::MAX as u64) as u32);
            if op.outcome == Outcome::Unknown {
                slot.1 += 1;
            }
        };
        if let Some((s, nodes)) = &mut self.hot {
            if *s == second {
                // Nothing to close: the second before it was the same.
                sample(&mut nodes[op.node]);
                return;
            }
        }
        self.cool();
        let n = self.nodes;
        sample(
            &mut self
                .open
                .entry(second)
                .or_insert_with(|| vec![(Vec::new(), 0); n])[op.node],
        );
        while let Some((&first, _)) = self.open.first_key_value() {
            if first + CLOSE_AFTER_S >= second {
                break;
            }
            self.close_first();
        }
        self.hot = self.open.remove(&second).map(|nodes| (second, nodes));
    }

    /// Puts the hot second back among the open ones.
    fn cool(&mut self) {
        if let Some((second, nodes)) = self.hot.take() {
            self.open.insert(second, nodes);
        }
    }

    fn close_first(&mut self) {
        let Some((second, nodes)) = self.open.pop_first() else {
            return;
        };
        let nodes = nodes
            .into_iter()
            .map(|(mut d, unknown)| {
                if d.is_empty() {
                    return None;
                }
                let max_us = *d.iter().max().expect("not empty") as u64;
                Some(Stat {
                    count: d.len() as u32,
                    p50_us: percentile(&mut d, 0.5),
                    p99_us: percentile(&mut d, 0.99),
                    max_us,
                    unknown,
                })
            })
            .collect();
        self.closed.push(LatencySecond { second, nodes });
    }

    /// Every second, in order.
    pub fn finish(mut self) -> Vec<LatencySecond> {
        self.cool();
        while !self.open.is_empty() {
            self.close_first();
        }
        self.closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Kind;

    fn op(node: usize, end_us: u64, duration_us: u64, outcome: Outcome) -> Op {
        Op {
            node,
            key: None,
            kind: Kind::Read,
            start_us: end_us - duration_us,
            duration_us,
            outcome,
            value: None,
            error: None,
            attempt: None,
            revision: None,
            served_by: None,
        }
    }

    #[test]
    fn percentiles_per_node_per_second_with_timeouts_counted() {
        let mut t = LatencyTracker::new(2);
        for i in 1..=100u64 {
            t.op(&op(0, 1_000_000 + i * 1000, i * 10, Outcome::Ok));
        }
        t.op(&op(1, 1_500_000, 1_000_000, Outcome::Unknown));
        for s in 3..20u64 {
            t.op(&op(0, s * 1_000_000, 5, Outcome::Ok));
        }
        assert!(
            t.open.len() <= CLOSE_AFTER_S as usize + 1,
            "old seconds are closed"
        );
        let rows = t.finish();
        let second2 = rows.iter().find(|r| r.second == 2).unwrap();
        let n1 = second2.nodes[0].unwrap();
        assert_eq!(
            (n1.count, n1.p50_us, n1.p99_us, n1.max_us, n1.unknown),
            (100, 510, 990, 1000, 0)
        );
        let n2 = second2.nodes[1].unwrap();
        assert_eq!((n2.count, n2.max_us, n2.unknown), (1, 1_000_000, 1));
        assert!(rows.windows(2).all(|w| w[0].second < w[1].second));
    }

    /// Requests that end out of order, within the seconds still open, are counted in their
    /// own second.
    #[test]
    fn requests_out_of_order_count_in_their_own_second() {
        let mut t = LatencyTracker::new(1);
        let mut expected = BTreeMap::<u64, u32>::new();
        for i in 0..5_000u64 {
            // A request ending up to 3 s before the one seen last.
            let end = i * 2_000 + 3_000_000 - (i * 7_919 % 3) * 1_000_000;
            t.op(&op(0, end, 5, Outcome::Ok));
            *expected.entry(end / 1_000_000 + 1).or_default() += 1;
        }
        let rows = t.finish();
        let counted: BTreeMap<u64, u32> = rows
            .iter()
            .filter_map(|r| r.nodes[0].map(|s| (r.second, s.count)))
            .collect();
        assert_eq!(counted, expected);
    }
}
