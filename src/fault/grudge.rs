//! Partition maths: which node drops traffic from which. Pure; no packets involved.

use crate::nodeset::{all_nodes, NodeSet};

/// For each node, the peers whose traffic it drops (in both directions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grudge(pub Vec<NodeSet>);

/// A named partition shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A majority and a minority: the first ⌈n/2⌉ nodes | the rest.
    Halves,
    /// Each node sees its neighbours on a ring, nobody sees everyone: overlapping majorities.
    Ring,
    /// Two halves and one node in the middle that sees both sides.
    Bridge,
}

impl Shape {
    pub fn parse(name: &str) -> Option<Shape> {
        match name {
            "halves" => Some(Shape::Halves),
            "ring" => Some(Shape::Ring),
            "bridge" => Some(Shape::Bridge),
            _ => None,
        }
    }
}

fn bit(i: usize) -> NodeSet {
    1 << i
}

impl Grudge {
    /// Nobody drops anything.
    pub fn none(nodes: usize) -> Grudge {
        Grudge(vec![0; nodes])
    }

    /// Node `target` cut off from every other node; the others keep talking among
    /// themselves. Only the target holds rules: it drops what comes from and goes to its
    /// peers, which is the seed's `isolate.sh`.
    pub fn isolate(target: usize, nodes: usize) -> Grudge {
        let mut g = Grudge::none(nodes);
        g.0[target] = all_nodes(nodes) & !bit(target);
        g
    }

    /// Groups that cannot reach each other; a node in no group is cut off from everyone.
    pub fn groups(groups: &[Vec<usize>], nodes: usize) -> Grudge {
        let mut g = Grudge::none(nodes);
        let all = all_nodes(nodes);
        for i in 0..nodes {
            let mine = groups
                .iter()
                .find(|grp| grp.contains(&i))
                .map_or(bit(i), |grp| grp.iter().fold(0, |m, j| m | bit(*j)));
            g.0[i] = all & !mine;
        }
        g
    }

    /// A named shape over `nodes` nodes (in node order).
    pub fn shape(shape: Shape, nodes: usize) -> Grudge {
        match shape {
            Shape::Halves => {
                let big = nodes.div_ceil(2);
                Grudge::groups(&[(0..big).collect(), (big..nodes).collect()], nodes)
            }
            Shape::Ring => {
                // Each node talks to its two neighbours (and itself): with 5 nodes every
                // node sees a majority of 3, but no two nodes see the same majority.
                let mut g = Grudge::none(nodes);
                let all = all_nodes(nodes);
                for i in 0..nodes {
                    let near = bit(i) | bit((i + 1) % nodes) | bit((i + nodes - 1) % nodes);
                    g.0[i] = all & !near;
                }
                g
            }
            Shape::Bridge => {
                // [0 .. mid) | mid | (mid .. n): the middle node sees both sides.
                let mid = nodes / 2;
                let mut g = Grudge::none(nodes);
                for i in 0..nodes {
                    for j in 0..nodes {
                        let apart = (i < mid && j > mid) || (i > mid && j < mid);
                        if apart {
                            g.0[i] |= bit(j);
                        }
                    }
                }
                g
            }
        }
    }

    /// The nodes `node` drops.
    pub fn drops(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        let set = self.0[node];
        (0..self.0.len()).filter(move |i| set & bit(*i) != 0)
    }

    /// Whether `a` and `b` can still exchange packets.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.0[a] & bit(b) == 0 && self.0[b] & bit(a) == 0
    }

    /// The groups of a partition in the seed's notation: `n1 n2|n3` (connected components).
    pub fn describe(&self, names: &[String]) -> String {
        let n = self.0.len();
        let mut seen = 0;
        let mut groups = Vec::new();
        for i in 0..n {
            if seen & bit(i) != 0 {
                continue;
            }
            let members: Vec<usize> = (i..n)
                .filter(|&j| seen & bit(j) == 0 && (i == j || self.connected(i, j)))
                .collect();
            seen |= members.iter().fold(0, |m, j| m | bit(*j));
            let members: Vec<&str> = members.iter().map(|j| names[*j].as_str()).collect();
            groups.push(members.join(" "));
        }
        groups.join("|")
    }
}

/// Parses groups written as `n1 n2|n3` (node names separated by spaces, groups by `|`).
pub fn parse_groups(text: &str, names: &[String]) -> Result<Vec<Vec<usize>>, String> {
    let mut groups = Vec::new();
    let mut seen = Vec::new();
    for part in text.split('|') {
        let mut group = Vec::new();
        for name in part.split_whitespace() {
            let i = names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| format!("no node '{name}' (nodes: {})", names.join(", ")))?;
            if seen.contains(&i) {
                return Err(format!("{name} is in two groups"));
            }
            seen.push(i);
            group.push(i);
        }
        if group.is_empty() {
            return Err(format!("empty group in '{text}'"));
        }
        groups.push(group);
    }
    if groups.len() < 2 {
        return Err(format!(
            "'{text}' has one group: separate groups with '|', e.g. n1|n2 n3"
        ));
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

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

    #[test]
    fn groups_cut_exactly_across_groups() {
        let g = Grudge::groups(&parse_groups("n1|n2 n3", &names(3)).unwrap(), 3);
        assert!(g.connected(1, 2));
        assert!(!g.connected(0, 1) && !g.connected(0, 2));
        assert_eq!(g.describe(&names(3)), "n1|n2 n3");
        assert!(parse_groups("n1 n2", &names(3))
            .unwrap_err()
            .contains("one group"));
        assert!(parse_groups("n1|n9", &names(3))
            .unwrap_err()
            .contains("no node 'n9'"));
        assert!(parse_groups("n1|n1 n2", &names(3))
            .unwrap_err()
            .contains("two groups"));
    }

    #[test]
    fn halves_are_a_majority_and_a_minority() {
        let g = Grudge::shape(Shape::Halves, 5);
        assert_eq!(g.describe(&names(5)), "n1 n2 n3|n4 n5");
        assert_eq!(
            Grudge::shape(Shape::Halves, 3).describe(&names(3)),
            "n1 n2|n3"
        );
    }

    #[test]
    fn a_ring_of_5_gives_every_node_a_majority_and_no_two_the_same() {
        let g = Grudge::shape(Shape::Ring, 5);
        let sees = |i: usize| -> Vec<usize> { (0..5).filter(|&j| g.connected(i, j)).collect() };
        for i in 0..5 {
            assert_eq!(sees(i).len(), 3, "n{} sees a majority", i + 1);
        }
        assert_eq!(sees(0), vec![0, 1, 4]);
        assert!((0..5).all(|i| (0..5).all(|j| i == j || sees(i) != sees(j))));
    }

    #[test]
    fn a_bridge_node_sees_both_sides_which_do_not_see_each_other() {
        let g = Grudge::shape(Shape::Bridge, 5);
        assert!((0..5).all(|j| g.connected(2, j)), "n3 is the bridge");
        assert!(g.connected(0, 1) && g.connected(3, 4));
        assert!(!g.connected(0, 3) && !g.connected(1, 4));
    }
}
