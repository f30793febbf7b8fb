//! Which server acknowledged each client's writes, second by second: for clients that
//! follow a primary (the record's `@k`), a failover shows as a client moving to another
//! server, and a split brain as two servers acknowledging writes in the same seconds.

use crate::record::{Kind, Op, Outcome};
use std::collections::BTreeMap;

/// The servers that acknowledged writes, per client and second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served {
    /// Per client (node index): second (row of the table) → the server that acknowledged
    /// most of its writes in that second. Empty when the record names no serving node.
    pub by_client: Vec<BTreeMap<u64, usize>>,
    /// Seconds in which more than one server acknowledged writes (of any client).
    pub seconds_with_two_servers: Vec<u64>,
}

/// Follows a record's writes; memory grows with the seconds of the record, not its
/// operations.
#[derive(Debug, Clone)]
pub struct ServedTracker {
    /// client → second → acknowledged writes per server.
    counts: Vec<BTreeMap<u64, Vec<u32>>>,
    /// Per client, its latest second and its counts so far, not yet in `counts`.
    hot: Vec<(u64, Vec<u32>)>,
    nodes: usize,
    /// Whether any write named its server; the record leaves it out when a client's own
    /// node answered, and clients that never move name none.
    any_named: bool,
}

impl ServedTracker {
    pub fn new(nodes: usize) -> Self {
        ServedTracker {
            counts: vec![BTreeMap::new(); nodes],
            hot: vec![(0, vec![0; nodes]); nodes],
            nodes,
            any_named: false,
        }
    }

    pub fn op(&mut self, op: &Op) {
        if !(op.is_writer() && op.kind == Kind::Write && op.outcome == Outcome::Ok) {
            return;
        }
        self.any_named |= op.served_by.is_some();
        let server = op.served_by.unwrap_or(op.node);
        if server >= self.nodes {
            return;
        }
        let second = op.end_us() / 1_000_000 + 1;
        // A client's writes end second after second: its counts are kept apart until the
        // next second comes.
        if self.hot[op.node].0 != second {
            self.cool(op.node);
            self.hot[op.node].0 = second;
        }
        let per = &mut self.hot[op.node].1;
        per[server] = per[server].saturating_add(1);
    }

    /// Adds a client's latest second's counts to the rest.
    fn cool(&mut self, client: usize) {
        let (second, per) = &mut self.hot[client];
        if per.iter().any(|n| *n > 0) {
            let into = self.counts[client]
                .entry(*second)
                .or_insert_with(|| vec![0; per.len()]);
            for (sum, n) in into.iter_mut().zip(per.iter_mut()) {
                *sum = sum.saturating_add(std::mem::take(n));
            }
        }
    }

    pub fn finish(mut self) -> Served {
        for client in 0..self.nodes {
            self.cool(client);
        }
        if !self.any_named {
            return Served::default();
        }
        let mut servers_by_second: BTreeMap<u64, u64> = BTreeMap::new();
        let by_client = self
            .counts
            .into_iter()
            .map(|seconds| {
                seconds
                    .into_iter()
                    .map(|(s, per)| {
                        let mask = servers_by_second.entry(s).or_default();
                        for (k, n) in per.iter().enumerate() {
                            if *n > 0 {
                                *mask |= 1 << k;
                            }
                        }
                        let most = (0..per.len()).max_by_key(|k| per[*k]).unwrap_or(0);
                        (s, most)
                    })
                    .collect()
            })
            .collect();
        Served {
            by_client,
            seconds_with_two_servers: servers_by_second
                .into_iter()
                .filter(|(_, mask)| mask.count_ones() > 1)
                .map(|(s, _)| s)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(node: usize, end_s: f64, server: Option<usize>) -> Op {
        Op {
            node,
            key: None,
            kind: Kind::Write,
            start_us: (end_s * 1e6) as u64 - 10,
            duration_us: 10,
            outcome: Outcome::Ok,
            value: Some(1),
            error: None,
            attempt: None,
            revision: None,
            served_by: server,
        }
    }

    #[test]
    fn a_split_brain_shows_as_two_servers_acknowledging_in_the_same_seconds() {
        let mut t = ServedTracker::new(3);
        for s in 0..10 {
            let at = s as f64 + 0.5;
            // n1's client stays on n1 (its own node: the record names none); n2's and n3's
            // move from n1 to n2 from second 4 on.
            t.op(&write(0, at, None));
            let primary = if s < 3 { 0 } else { 1 };
            t.op(&write(1, at, (primary != 1).then_some(primary)));
            t.op(&write(2, at, Some(primary)));
        }
        let served = t.finish();
        assert_eq!(served.by_client[0].get(&1), Some(&0));
        assert_eq!(served.by_client[1].get(&3), Some(&0));
        assert_eq!(served.by_client[1].get(&4), Some(&1));
        assert_eq!(
            served.seconds_with_two_servers,
            (4..=10).collect::<Vec<_>>()
        );
    }

    /// Writes that reach the tracker with their seconds out of order count as in order.
    #[test]
    fn writes_out_of_order_count_in_their_own_second() {
        let mut t = ServedTracker::new(2);
        let mut expected = std::collections::BTreeMap::<(usize, u64), [u32; 2]>::new();
        for i in 0..2_000u64 {
            let at = (i % 13) as f64 * 0.7 + (i / 13) as f64 * 0.01 + 0.5;
            let (client, server) = ((i % 2) as usize, (i % 5 == 0) as usize);
            t.op(&write(client, at, Some(server)));
            let second = (at * 1e6) as u64 / 1_000_000 + 1;
            expected.entry((client, second)).or_default()[server] += 1;
        }
        let served = t.finish();
        for ((client, second), per) in expected {
            // The last of equals, as `max_by_key` gives.
            let most = if per[1] >= per[0] { 1 } else { 0 };
            assert_eq!(served.by_client[client].get(&second), Some(&most));
        }
    }

    #[test]
    fn clients_that_never_name_a_server_have_no_serving_chart() {
        let mut t = ServedTracker::new(3);
        for node in 0..3 {
            t.op(&write(node, 1.5, None));
        }
        assert_eq!(t.finish(), Served::default());
    }
}
