//! Sets of nodes as bits: what the analysis says served, and what a partition cuts.

/// A bit set of node indices (bit `i` = node `i`); at most 64 nodes.
pub type NodeSet = u64;

/// Every node of `n`.
pub fn all_nodes(n: usize) -> NodeSet {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}
