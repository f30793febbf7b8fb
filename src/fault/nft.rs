//! nftables rules inside a node's namespace. Every table Perseus makes is named
//! `perseus_<fault>`, so what is ours can be found and removed.

use crate::error::Result;
use crate::lab::process::run_in;
use std::net::Ipv4Addr;

/// A ruleset (for `nft -f`) that drops every packet between this namespace and `peers`,
/// in table `inet <table>`. Replaces an older table of that name in the same transaction.
pub fn drop_peers_rules(table: &str, peers: &[Ipv4Addr]) -> String {
    let set: Vec<String> = peers.iter().map(|a| a.to_string()).collect();
    let set = set.join(", ");
    format!(
        "table inet {table}\n\
         delete table inet {table}\n\
         table inet {table} {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy accept;\n\
         \t\tip saddr {{ {set} }} drop\n\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority filter; policy accept;\n\
         \t\tip daddr {{ {set} }} drop\n\
         \t}}\n\
         }}\n"
    )
}

/// Loads a ruleset in `netns`; it is in force when this returns.
pub fn apply(netns: &str, ruleset: &str) -> Result<()> {
    run_in(netns, "nft", &["-f", "-"], Some(ruleset)).map(|_| ())
}

/// The inet tables in `netns` whose names start with `perseus`.
pub fn our_tables(netns: &str) -> Result<Vec<String>> {
    let out = run_in(netns, "nft", &["list", "tables"], None)?;
    Ok(out
        .lines()
        .filter_map(|l| l.strip_prefix("table inet "))
        .filter(|t| t.starts_with("perseus"))
        .map(|t| t.trim().to_string())
        .collect())
}

/// Removes table `inet <table>` from `netns` if it is there.
pub fn remove(netns: &str, table: &str) -> Result<()> {
    if our_tables(netns)?.iter().any(|t| t == table) {
        run_in(netns, "nft", &["delete", "table", "inet", table], None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_isolation_rules_drop_both_directions_for_every_peer() {
        let peers: Vec<Ipv4Addr> =
            vec!["198.18.1.1".parse().unwrap(), "198.18.1.3".parse().unwrap()];
        let r = drop_peers_rules("perseus_isolate", &peers);
        assert!(r.starts_with("table inet perseus_isolate\ndelete table inet perseus_isolate\n"));
        assert!(r.contains("type filter hook input priority filter; policy accept;"));
        assert!(r.contains("ip saddr { 198.18.1.1, 198.18.1.3 } drop"));
        assert!(r.contains("type filter hook output priority filter; policy accept;"));
        assert!(r.contains("ip daddr { 198.18.1.1, 198.18.1.3 } drop"));
        assert!(
            !r.contains("198.18.1.2"),
            "the node itself and the host are untouched"
        );
    }
}
