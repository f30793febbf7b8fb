//! nftables rules inside a node's namespace. Every table Perseus makes is named
//! `perseus_<fault>` and carries, as its comment, the target text of the fault's markers,
//! so the faults in force can be read back from the namespaces themselves.

use crate::error::Result;
use crate::lab::process::run_in;
use std::net::Ipv4Addr;

/// Which packets between a node and some peers a rule set drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Everything, both ways.
    Both,
    /// Only what the node sends to them (it still hears them).
    Outbound,
    /// Everything, both ways, answered at once: a TCP reset, or an ICMP port-unreachable
    /// for other packets, so connections fail fast instead of timing out.
    Refuse,
}

/// A new table: loading it fails if a table of that name is already there (a fault is
/// never put in force twice; see `fault::start`). Creating it alone takes half the time of
/// replacing an old one in the same transaction.
fn table_head(table: &str, comment: &str) -> String {
    format!(
        "table inet {table} {{\n\tcomment \"{}\"\n",
        comment.replace('"', "'")
    )
}

/// A ruleset of one table with no rules: it marks a change made outside nftables (a qdisc)
/// as in force, with `comment` as its target text.
pub fn marker_table(table: &str, comment: &str) -> String {
    let mut r = table_head(table, comment);
    r.push_str("}\n");
    r
}

fn chain(name: &str, rule: &str) -> String {
    format!("\tchain {name} {{\n\t\ttype filter hook {name} priority filter; policy accept;\n\t\t{rule}\n\t}}\n")
}

/// A ruleset (for `nft -f`) in table `inet <table>` that drops packets between this
/// namespace and `peers` as `what` says.
pub fn peer_rules(table: &str, comment: &str, peers: &[Ipv4Addr], what: Drop) -> String {
    let set: Vec<String> = peers.iter().map(|a| a.to_string()).collect();
    let set = set.join(", ");
    let rules = |dir: &str| match what {
        // The answers themselves pass: a reset made for a peer's packet leaves through the
        // output chain, and one made for a local packet comes back in through the input
        // chain, from the peer's address.
        Drop::Refuse => [
            format!("ip {dir} {{ {set} }} tcp flags & rst == rst accept"),
            format!("ip {dir} {{ {set} }} icmp type destination-unreachable accept"),
            format!("ip {dir} {{ {set} }} meta l4proto tcp reject with tcp reset"),
            format!("ip {dir} {{ {set} }} reject with icmpx type port-unreachable"),
        ]
        .join("\n\t\t"),
        _ => format!("ip {dir} {{ {set} }} drop"),
    };
    let mut r = table_head(table, comment);
    if what != Drop::Outbound {
        r.push_str(&chain("input", &rules("saddr")));
    }
    r.push_str(&chain("output", &rules("daddr")));
    r.push_str("}\n");
    r
}

/// A ruleset that drops `percent`% of the packets sent to `to` and of those received from
/// `from`, at random.
pub fn loss_rules(
    table: &str,
    comment: &str,
    to: &[Ipv4Addr],
    from: &[Ipv4Addr],
    percent: u8,
) -> String {
    let set = |a: &[Ipv4Addr]| {
        a.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verdict = format!("numgen random mod 100 < {percent} drop");
    let mut r = table_head(table, comment);
    if !from.is_empty() {
        r.push_str(&chain(
            "input",
            &format!("ip saddr {{ {} }} {verdict}", set(from)),
        ));
    }
    if !to.is_empty() {
        r.push_str(&chain(
            "output",
            &format!("ip daddr {{ {} }} {verdict}", set(to)),
        ));
    }
    r.push_str("}\n");
    r
}

/// A ruleset that drops every packet in and out of the namespace but loopback: the node is
/// cut off from its peers and from the clients.
pub fn everything_rules(table: &str, comment: &str) -> String {
    let mut r = table_head(table, comment);
    r.push_str(&chain("input", "iifname != \"lo\" drop"));
    r.push_str(&chain("output", "oifname != \"lo\" drop"));
    r.push_str("}\n");
    r
}

/// As [`everything_rules`], but the connection `keep` (the peer's address and this side's
/// TCP port) still passes both ways: the SSH session that puts the rules in force and takes
/// them out again.
pub fn everything_but_rules(table: &str, comment: &str, keep: (std::net::IpAddr, u16)) -> String {
    let (addr, port) = keep;
    let family = if addr.is_ipv4() { "ip" } else { "ip6" };
    let mut r = table_head(table, comment);
    r.push_str(&chain(
        "input",
        &format!("{family} saddr {addr} tcp dport {port} accept\n\t\tiifname != \"lo\" drop"),
    ));
    r.push_str(&chain(
        "output",
        &format!("{family} daddr {addr} tcp sport {port} accept\n\t\toifname != \"lo\" drop"),
    ));
    r.push_str("}\n");
    r
}

/// Loads a ruleset in `netns`; it is in force when this returns.
pub fn apply(netns: &str, ruleset: &str) -> Result<()> {
    run_in(netns, "nft", &["-f", "-"], Some(ruleset)).map(|_| ())
}

/// The inet tables in `netns` whose names start with `perseus`, with their comments.
pub fn our_tables(netns: &str) -> Result<Vec<(String, String)>> {
    let out = run_in(netns, "nft", &["list", "ruleset"], None)?;
    Ok(parse_tables(&out))
}

/// The `perseus` inet tables of a ruleset listing, with their comments.
pub fn parse_tables(ruleset: &str) -> Vec<(String, String)> {
    let mut tables = Vec::new();
    let mut lines = ruleset.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("table inet ")
            .and_then(|l| l.strip_suffix(" {"))
        else {
            continue;
        };
        if !name.starts_with("perseus") {
            continue;
        }
        let comment = lines
            .peek()
            .and_then(|l| l.trim().strip_prefix("comment \""))
            .and_then(|c| c.strip_suffix('"'))
            .unwrap_or("")
            .to_string();
        tables.push((name.to_string(), comment));
    }
    tables
}

/// Removes table `inet <table>` from `netns` if it is there.
pub fn remove(netns: &str, table: &str) -> Result<()> {
    if our_tables(netns)?.iter().any(|(t, _)| t == table) {
        run_in(netns, "nft", &["delete", "table", "inet", table], None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers() -> Vec<Ipv4Addr> {
        vec!["198.18.1.1".parse().unwrap(), "198.18.1.3".parse().unwrap()]
    }

    #[test]
    fn isolation_drops_both_directions_for_every_peer() {
        let r = peer_rules("perseus_isolate", "n2", &peers(), Drop::Both);
        assert!(r.starts_with("table inet perseus_isolate {\n\tcomment \"n2\"\n"));
        assert!(r.contains("comment \"n2\""));
        assert!(r.contains("type filter hook input priority filter; policy accept;"));
        assert!(r.contains("ip saddr { 198.18.1.1, 198.18.1.3 } drop"));
        assert!(r.contains("ip daddr { 198.18.1.1, 198.18.1.3 } drop"));
        assert!(
            !r.contains("198.18.1.2"),
            "the node itself and the host are untouched"
        );
    }

    #[test]
    fn refusal_answers_every_peer_packet_both_ways() {
        let r = peer_rules("perseus_refuse", "n2", &peers(), Drop::Refuse);
        for dir in ["saddr", "daddr"] {
            assert!(r.contains(&format!(
                "ip {dir} {{ 198.18.1.1, 198.18.1.3 }} meta l4proto tcp reject with tcp reset"
            )));
            assert!(r.contains(&format!(
                "ip {dir} {{ 198.18.1.1, 198.18.1.3 }} reject with icmpx type port-unreachable"
            )));
        }
        assert!(!r.contains("drop"), "{r}");
        assert!(
            r.find("tcp flags & rst == rst accept") < r.find("reject with tcp reset"),
            "resets pass before anything is rejected: {r}"
        );
    }

    #[test]
    fn one_way_drops_only_outbound_and_loss_drops_a_share() {
        let r = peer_rules("perseus_one_way", "n2", &peers(), Drop::Outbound);
        assert!(!r.contains("hook input"));
        assert!(r.contains("ip daddr { 198.18.1.1, 198.18.1.3 } drop"));
        let r = loss_rules("perseus_loss", "n2 30%", &peers(), &peers()[..1], 30);
        assert!(r.contains("ip saddr { 198.18.1.1 } numgen random mod 100 < 30 drop"));
        assert!(r.contains("ip daddr { 198.18.1.1, 198.18.1.3 } numgen random mod 100 < 30 drop"));
        let all_targets = loss_rules("perseus_loss", "all 30%", &peers(), &[], 30);
        assert!(
            !all_targets.contains("hook input"),
            "every peer judges its own packets"
        );
        let r = everything_rules("perseus_isolate_all", "n2");
        assert!(r.contains("iifname != \"lo\" drop") && r.contains("oifname != \"lo\" drop"));
        let r = everything_but_rules(
            "perseus_isolate_all_1",
            "n2",
            ("10.0.0.9".parse().unwrap(), 22),
        );
        assert!(
            r.contains("ip saddr 10.0.0.9 tcp dport 22 accept\n\t\tiifname != \"lo\" drop"),
            "{r}"
        );
        assert!(
            r.contains("ip daddr 10.0.0.9 tcp sport 22 accept\n\t\toifname != \"lo\" drop"),
            "{r}"
        );
        let r6 = everything_but_rules("t", "n2", ("fd00::9".parse().unwrap(), 2222));
        assert!(
            r6.contains("ip6 saddr fd00::9 tcp dport 2222 accept"),
            "{r6}"
        );
    }

    #[test]
    fn tables_are_read_back_with_their_comments() {
        let listing = "table inet perseus_loss {\n\tcomment \"n2 30%\"\n\tchain input {\n\t}\n}\ntable inet other {\n}\ntable inet perseus_isolate {\n\tchain input {\n\t}\n}\n";
        assert_eq!(
            parse_tables(listing),
            vec![
                ("perseus_loss".to_string(), "n2 30%".to_string()),
                ("perseus_isolate".to_string(), String::new())
            ]
        );
    }
}
