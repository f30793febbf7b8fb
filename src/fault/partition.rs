//! Partition maths: which node drops traffic from which. Pure; no packets involved.

use crate::analysis::NodeSet;

/// For each node, the peers whose traffic it drops, in both directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grudge(pub Vec<NodeSet>);

impl Grudge {
    /// Node `target` cut off from every other node; the others keep talking among
    /// themselves. Only the target holds rules: it drops what comes from and goes to its
    /// peers, which is the seed's `isolate.sh`.
    pub fn isolate(target: usize, nodes: usize) -> Grudge {
        let mut g = vec![0; nodes];
        g[target] = crate::analysis::all_nodes(nodes) & !(1 << target);
        Grudge(g)
    }

    /// The nodes `node` drops.
    pub fn drops(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        let set = self.0[node];
        (0..self.0.len()).filter(move |i| set & (1 << i) != 0)
    }

    /// Whether `a` and `b` can still exchange packets.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.0[a] & (1 << b) == 0 && self.0[b] & (1 << a) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolating_one_node_cuts_it_from_every_peer_and_no_one_else() {
        let g = Grudge::isolate(1, 3);
        assert_eq!(g.drops(1).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(g.drops(0).count(), 0);
        assert!(!g.connected(0, 1) && !g.connected(1, 2) && !g.connected(2, 1));
        assert!(g.connected(0, 2));
        let g5 = Grudge::isolate(4, 5);
        assert!((0..4).all(|i| !g5.connected(i, 4)));
        assert!((0..4).all(|i| (0..4).all(|j| g5.connected(i, j))));
    }
}
