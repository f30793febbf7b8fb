//! Nodes by name and sets of nodes as bits: what the analysis says served, and what a
//! partition cuts.

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

/// A node's name, as every file and page of Perseus carries it (markers, file names, the
/// client log's legend, tables): 1 to 32 letters, digits, '-', '_' or '.'. The error says
/// so, naming the name.
pub fn check_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(())
    } else {
        Err(format!(
            "node name '{}': use up to 32 letters, digits, '-', '_' or '.'",
            name.chars().take(64).collect::<String>().escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_name_is_short_and_plain() {
        for ok in ["n1", "tidb-2", "db_3.lab"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "n1|n2", "<b>", "n 1", "n1\n", &"x".repeat(33)] {
            let e = check_name(bad).unwrap_err();
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }
}
