//! Network faults as what they do to links, as turmoil's topology is one map of links: a
//! network fault is a set of one-way links `from → to`, each with a verdict (dropped,
//! rejected at once, or a share lost). One renderer turns the links into the nftables
//! rules of each node ([`render`]); one reader turns the rules in force back into links
//! ([`read`]), so what a table does can be said from the table itself ([`describe`]).
//!
//! Each link is judged once, by one node's rules: its sender's, if the sender holds the
//! fault, else its receiver's. So `isolate n2` is all in n2's table, both ways; `loss n2`
//! loses each packet once, whichever way it goes; a partition's nodes each drop what they
//! send across.

use std::net::{IpAddr, Ipv4Addr};

/// What happens to the packets of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Dropped: the sender hears nothing (connections time out).
    Drop,
    /// Answered at once: a TCP reset, or an ICMP port-unreachable (connections fail fast).
    Reject,
    /// This share of the packets dropped, at random, 1 to 100 %.
    Lose(u8),
}

/// One end of a link: a node, or anyone else but the node itself (its clients, the host;
/// loopback never).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum End {
    Node(usize),
    Anyone,
}

/// Packets sent by `from` to `to` meet `verdict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Link {
    pub from: End,
    pub to: End,
    pub verdict: Verdict,
}

/// The links both ways between `a` and `b`.
pub fn both(a: End, b: End, verdict: Verdict) -> [Link; 2] {
    [
        Link {
            from: a,
            to: b,
            verdict,
        },
        Link {
            from: b,
            to: a,
            verdict,
        },
    ]
}

/// The links both ways between `node` and each of `peers`.
pub fn with_peers(node: usize, peers: impl IntoIterator<Item = usize>, v: Verdict) -> Vec<Link> {
    peers
        .into_iter()
        .flat_map(|p| both(End::Node(node), End::Node(p), v))
        .collect()
}

/// The node whose rules judge `link`, among the nodes that hold the fault (`holders`).
pub fn judge(link: &Link, holders: &[usize]) -> Option<usize> {
    match (link.from, link.to) {
        (End::Node(a), _) if holders.contains(&a) => Some(a),
        (_, End::Node(b)) if holders.contains(&b) => Some(b),
        _ => None,
    }
}

/// The rule lines that give packets matched by `selector` their verdict.
fn verdict_lines(selector: &str, v: Verdict) -> Vec<String> {
    match v {
        Verdict::Drop => vec![format!("{selector} drop")],
        Verdict::Lose(p) => vec![format!("{selector} numgen random mod 100 < {p} drop")],
        // The answers themselves pass: a reset made for a peer's packet leaves through the
        // output chain, and one made for a local packet comes back in through the input
        // chain, from the peer's address.
        Verdict::Reject => vec![
            format!("{selector} tcp flags & rst == rst accept"),
            format!("{selector} icmp type destination-unreachable accept"),
            format!("{selector} meta l4proto tcp reject with tcp reset"),
            format!("{selector} reject with icmpx type port-unreachable"),
        ],
    }
}

/// The nftables ruleset (for `nft -f`) of table `inet <table>`, commented `comment`, that
/// carries on `node` the links it judges among `links` (see [`judge`]); `addrs` are the
/// nodes' addresses, and `keep` a connection (the far end's address and this side's TCP
/// port) that a link with anyone leaves open both ways.
pub fn render(
    table: &str,
    comment: &str,
    node: usize,
    links: &[Link],
    holders: &[usize],
    addrs: &[Vec<Ipv4Addr>],
    keep: Option<(IpAddr, u16)>,
) -> String {
    let mine: Vec<&Link> = links
        .iter()
        .filter(|l| judge(l, holders) == Some(node))
        .collect();
    let mut r = super::nft::table_head(table, comment);
    for (hook, outbound) in [("input", false), ("output", true)] {
        let (dir, iface) = if outbound {
            ("daddr", "oifname")
        } else {
            ("saddr", "iifname")
        };
        // Of this direction's links, the other end of each, by verdict.
        let mut by_verdict: std::collections::BTreeMap<Verdict, (Vec<Ipv4Addr>, bool)> =
            Default::default();
        for l in &mine {
            let (me, other) = if outbound {
                (l.from, l.to)
            } else {
                (l.to, l.from)
            };
            if me != End::Node(node) {
                continue;
            }
            let entry = by_verdict.entry(l.verdict).or_default();
            match other {
                End::Node(o) => entry.0.extend(addrs[o].iter().copied()),
                End::Anyone => entry.1 = true,
            }
        }
        if by_verdict.is_empty() {
            continue;
        }
        let mut lines = Vec::new();
        for (v, (peers, anyone)) in by_verdict {
            if !peers.is_empty() {
                let set: Vec<String> = peers.iter().map(|a| a.to_string()).collect();
                lines.extend(verdict_lines(
                    &format!("ip {dir} {{ {} }}", set.join(", ")),
                    v,
                ));
            }
            if anyone {
                if let Some((addr, port)) = keep {
                    let family = if addr.is_ipv4() { "ip" } else { "ip6" };
                    let (port_dir, at) = if outbound {
                        ("sport", "daddr")
                    } else {
                        ("dport", "saddr")
                    };
                    lines.push(format!("{family} {at} {addr} tcp {port_dir} {port} accept"));
                }
                lines.extend(verdict_lines(&format!("{iface} != \"lo\""), v));
            }
        }
        r.push_str(&format!(
            "\tchain {hook} {{\n\t\ttype filter hook {hook} priority filter; policy accept;\n\t\t{}\n\t}}\n",
            lines.join("\n\t\t")
        ));
    }
    r.push_str("}\n");
    r
}

/// The verdict a rule's action gives, if it gives one (`accept` gives none: it only lets a
/// reset, an ICMP answer or a kept connection through).
fn verdict_of(action: &str) -> Option<Verdict> {
    let action = action.trim();
    if let Some(rest) = action.strip_prefix("numgen random mod 100 < ") {
        return rest
            .strip_suffix(" drop")
            .and_then(|p| p.trim().parse().ok())
            .map(Verdict::Lose);
    }
    if action == "drop" {
        return Some(Verdict::Drop);
    }
    if action.starts_with("reject") || action.starts_with("meta l4proto tcp reject") {
        return Some(Verdict::Reject);
    }
    None
}

/// The links that the rules of `listing` (one table of node `node`, as `nft list` prints
/// it) carry; `addrs` are the nodes' addresses. Rules this renderer does not write are
/// not links, and are left out.
pub fn read(listing: &str, node: usize, addrs: &[Vec<Ipv4Addr>]) -> Vec<Link> {
    let me = End::Node(node);
    let mut links = Vec::new();
    let mut outbound = None;
    for line in listing.lines().map(str::trim) {
        if line.starts_with("chain input") {
            outbound = Some(false);
            continue;
        }
        if line.starts_with("chain output") {
            outbound = Some(true);
            continue;
        }
        let Some(out) = outbound else { continue };
        let (ends, action): (Vec<End>, &str) =
            if let Some(rest) = line.strip_prefix(if out { "ip daddr " } else { "ip saddr " }) {
                let (set, action) = match rest.strip_prefix('{') {
                    Some(r) => match r.split_once('}') {
                        Some((set, action)) => (set, action),
                        None => continue,
                    },
                    None => match rest.split_once(' ') {
                        Some(pair) => pair,
                        None => continue,
                    },
                };
                let ends = set
                    .split(',')
                    .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
                    .filter_map(|a| addrs.iter().position(|x| x.contains(&a)))
                    .map(End::Node)
                    .collect();
                (ends, action)
            } else if let Some(action) = line.strip_prefix(if out {
                "oifname != \"lo\" "
            } else {
                "iifname != \"lo\" "
            }) {
                (vec![End::Anyone], action)
            } else {
                continue;
            };
        let Some(verdict) = verdict_of(action) else {
            continue;
        };
        for other in ends {
            let (from, to) = if out { (me, other) } else { (other, me) };
            links.push(Link { from, to, verdict });
        }
    }
    links.sort();
    links.dedup();
    links
}

/// What `links` do, in words (`n2 → n1, n3 dropped; n1, n3 → n2 dropped`): each sender,
/// the receivers its packets meet one verdict on, and the verdict.
pub fn describe(links: &[Link], names: &[String]) -> String {
    let name = |e: End| match e {
        End::Node(i) => names.get(i).cloned().unwrap_or_else(|| format!("#{i}")),
        End::Anyone => "anyone".to_string(),
    };
    let mut groups: Vec<(Vec<End>, Vec<End>, Verdict)> = Vec::new();
    let mut sorted = links.to_vec();
    sorted.sort();
    // Receivers per (sender, verdict), then senders that share their receivers.
    let mut per_sender: Vec<(End, Verdict, Vec<End>)> = Vec::new();
    for l in sorted {
        match per_sender
            .iter_mut()
            .find(|(f, v, _)| *f == l.from && *v == l.verdict)
        {
            Some((_, _, tos)) => tos.push(l.to),
            None => per_sender.push((l.from, l.verdict, vec![l.to])),
        }
    }
    for (from, v, tos) in per_sender {
        match groups.iter_mut().find(|(_, t, gv)| *t == tos && *gv == v) {
            Some((froms, _, _)) => froms.push(from),
            None => groups.push((vec![from], tos, v)),
        }
    }
    let list = |ends: &[End]| ends.iter().map(|e| name(*e)).collect::<Vec<_>>().join(", ");
    groups
        .iter()
        .map(|(froms, tos, v)| {
            let what = match v {
                Verdict::Drop => "dropped".to_string(),
                Verdict::Reject => "rejected".to_string(),
                Verdict::Lose(p) => format!("{p}% lost"),
            };
            format!("{} → {} {what}", list(froms), list(tos))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u8) -> Vec<Vec<Ipv4Addr>> {
        (1..=n)
            .map(|i| vec![Ipv4Addr::new(198, 18, 1, i)])
            .collect()
    }

    /// A node of several hosts is cut off by every one of its addresses, and the rules
    /// that name them all read back as one link to that node.
    #[test]
    fn a_node_of_several_hosts_is_judged_by_all_its_addresses() {
        let mut a = addrs(3);
        a[2].push(Ipv4Addr::new(198, 18, 1, 13));
        let links = with_peers(0, [1, 2], Verdict::Drop);
        let r = render("t", "n1", 0, &links, &[0], &a, None);
        assert!(
            r.contains("ip saddr { 198.18.1.2, 198.18.1.3, 198.18.1.13 } drop"),
            "{r}"
        );
        let mut back = read(&r, 0, &a);
        back.sort();
        let mut want = links.clone();
        want.sort();
        assert_eq!(back, want);
    }

    /// Renders `links` on every holder and reads each node's rules back: the same links,
    /// each judged once.
    fn round_trip(links: &[Link], holders: &[usize], n: u8) -> Vec<Link> {
        let a = addrs(n);
        let mut back: Vec<Link> = holders
            .iter()
            .flat_map(|&h| read(&render("t", "c", h, links, holders, &a, None), h, &a))
            .collect();
        back.sort();
        back
    }

    fn sorted(mut links: Vec<Link>) -> Vec<Link> {
        links.sort();
        links.dedup();
        links
    }

    #[test]
    fn every_shape_of_links_reads_back_as_it_was_written() {
        let cases: Vec<(Vec<Link>, Vec<usize>)> = vec![
            // isolate n2, refuse n2, one-way n2
            (with_peers(1, [0, 2], Verdict::Drop), vec![1]),
            (with_peers(1, [0, 2], Verdict::Reject), vec![1]),
            (
                [0, 2]
                    .map(|p| Link {
                        from: End::Node(1),
                        to: End::Node(p),
                        verdict: Verdict::Drop,
                    })
                    .to_vec(),
                vec![1],
            ),
            // loss on every node, and on one
            (
                sorted(
                    (0..3)
                        .flat_map(|i| {
                            with_peers(i, (0..3).filter(move |p| *p != i), Verdict::Lose(30))
                        })
                        .collect(),
                ),
                vec![0, 1, 2],
            ),
            (with_peers(1, [0, 2], Verdict::Lose(5)), vec![1]),
            // a partition n1 | n2 n3
            (
                sorted([with_peers(0, [1, 2], Verdict::Drop)].concat()),
                vec![0, 1, 2],
            ),
            // isolate-all n2
            (
                both(End::Node(1), End::Anyone, Verdict::Drop).to_vec(),
                vec![1],
            ),
        ];
        for (links, holders) in cases {
            assert_eq!(
                round_trip(&links, &holders, 3),
                sorted(links.clone()),
                "{links:?}"
            );
        }
    }

    #[test]
    fn each_link_is_judged_once_by_its_sender_if_it_holds_the_fault_else_its_receiver() {
        let l = Link {
            from: End::Node(0),
            to: End::Node(1),
            verdict: Verdict::Lose(30),
        };
        assert_eq!(judge(&l, &[0, 1]), Some(0));
        assert_eq!(judge(&l, &[1]), Some(1));
        assert_eq!(judge(&l, &[2]), None);
        let a = addrs(3);
        let r = render(
            "perseus_loss",
            "n2 30%",
            1,
            &with_peers(1, [0, 2], Verdict::Lose(30)),
            &[1],
            &a,
            None,
        );
        assert!(
            r.contains("ip saddr { 198.18.1.1, 198.18.1.3 } numgen random mod 100 < 30 drop"),
            "{r}"
        );
        assert!(
            r.contains("ip daddr { 198.18.1.1, 198.18.1.3 } numgen random mod 100 < 30 drop"),
            "{r}"
        );
        // With every node holding it, nobody judges what it receives.
        let all: Vec<Link> = (0..3)
            .flat_map(|i| with_peers(i, (0..3).filter(move |p| *p != i), Verdict::Lose(30)))
            .collect();
        assert!(!render("t", "c", 0, &all, &[0, 1, 2], &a, None).contains("hook input"));
    }

    #[test]
    fn refusal_lets_its_own_answers_through_before_it_rejects() {
        let r = render(
            "perseus_refuse",
            "n2",
            1,
            &with_peers(1, [0, 2], Verdict::Reject),
            &[1],
            &addrs(3),
            None,
        );
        for dir in ["saddr", "daddr"] {
            assert!(r.contains(&format!(
                "ip {dir} {{ 198.18.1.1, 198.18.1.3 }} meta l4proto tcp reject with tcp reset"
            )));
        }
        assert!(!r.contains("drop"), "{r}");
        assert!(r.find("tcp flags & rst == rst accept") < r.find("reject with tcp reset"));
        assert!(
            !r.contains("198.18.1.2"),
            "the node itself is untouched: {r}"
        );
    }

    #[test]
    fn a_link_with_anyone_keeps_the_connection_that_carries_the_rules() {
        let links = both(End::Node(1), End::Anyone, Verdict::Drop);
        let r = render(
            "t",
            "n2",
            1,
            &links,
            &[1],
            &addrs(3),
            Some(("10.0.0.9".parse().unwrap(), 22)),
        );
        assert!(
            r.contains("ip saddr 10.0.0.9 tcp dport 22 accept\n\t\tiifname != \"lo\" drop"),
            "{r}"
        );
        assert!(
            r.contains("ip daddr 10.0.0.9 tcp sport 22 accept\n\t\toifname != \"lo\" drop"),
            "{r}"
        );
        let r6 = render(
            "t",
            "n2",
            1,
            &links,
            &[1],
            &addrs(3),
            Some(("fd00::9".parse().unwrap(), 2222)),
        );
        assert!(
            r6.contains("ip6 saddr fd00::9 tcp dport 2222 accept"),
            "{r6}"
        );
        let plain = render("t", "n2", 1, &links, &[1], &addrs(3), None);
        assert!(!plain.contains("accept\n"), "{plain}");
    }

    /// What `nft list` prints differs from what was loaded: one address without braces, a
    /// bare `reject`, a blank line between chains. It still reads back.
    #[test]
    fn rules_read_back_as_nft_lists_them() {
        let listing = "table inet perseus_x {\n\tcomment \"n2\"\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip saddr { 198.18.1.1, 198.18.1.3 } tcp flags & rst == rst accept\n\t\tip saddr { 198.18.1.1, 198.18.1.3 } reject\n\t\tip saddr 198.18.1.9 numgen random mod 100 < 30 drop\n\t\tip saddr 198.18.1.7 tcp dport 22 accept\n\t\tiifname != \"lo\" drop\n\t}\n\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tip daddr 198.18.1.1 drop\n\t}\n}\n";
        let back = read(listing, 1, &addrs(3));
        let n = End::Node;
        assert_eq!(
            back,
            sorted(vec![
                Link {
                    from: n(0),
                    to: n(1),
                    verdict: Verdict::Reject
                },
                Link {
                    from: n(2),
                    to: n(1),
                    verdict: Verdict::Reject
                },
                Link {
                    from: End::Anyone,
                    to: n(1),
                    verdict: Verdict::Drop
                },
                Link {
                    from: n(1),
                    to: n(0),
                    verdict: Verdict::Drop
                },
            ])
        );
    }

    #[test]
    fn links_are_said_by_sender_and_receivers() {
        let names: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
        assert_eq!(
            describe(&with_peers(1, [0, 2], Verdict::Drop), &names),
            "n1, n3 → n2 dropped; n2 → n1, n3 dropped"
        );
        assert_eq!(
            describe(&both(End::Node(1), End::Anyone, Verdict::Lose(5)), &names),
            "n2 → anyone 5% lost; anyone → n2 5% lost"
        );
    }
}
