//! Bandwidth: everything a node sends goes through a token bucket (`tc` qdisc `tbf`) on
//! each of its links to its peers, so its peers and its clients hear it at most at the rate
//! given. Only the connection that carries Perseus's own changes (an SSH session) is
//! spared: a starved session would leave the node out of reach. Its own nftables table
//! marks it in force, and steers that connection past the bucket.

use super::{nft, Fault, InForce, Param, ParamDoc, Target, Topology, TARGET_PARAM};
use crate::error::Result;
use crate::record::faults::{named, FaultKind};

/// The handle of the root qdiscs that the change loading table `table` adds: one of its
/// own per table (SSH's tables are unique per change), so an undo, a dead run's late
/// switch included, only ever removes its own qdiscs, and never anyone else's.
fn handle(table: &str) -> String {
    // FNV-1a, folded into 0x1000..=0xefff, clear of tc's usual small handles and ffff.
    let h = table.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("{:x}:", 0x1000 + h % 0xe000)
}

/// How long a packet may wait in the bucket before it is dropped.
const LATENCY: &str = "400ms";

/// The smallest bucket, in bytes: 32 kbit, as `tc`'s own examples use.
const MIN_BURST: u64 = 4096;

/// The minor numbers of the root's classes: the kept connection's, and everything else's.
const SPARED: &str = "1";
const SHAPED: &str = "2";

/// The rate of both classes, which only sort: above what any link here carries.
const SORT_RATE: &str = "10gbit";

/// The marker table of target text `comment`; with a kept connection, a rule that puts
/// its packets in the spared class of the root of handle `h`.
fn rules(table: &str, comment: &str, keep: Option<(std::net::IpAddr, u16)>, h: &str) -> String {
    let Some((addr, port)) = keep else {
        return nft::marker_table(table, comment);
    };
    let family = if addr.is_ipv4() { "ip" } else { "ip6" };
    let mut r = nft::table_head(table, comment);
    r.push_str(&format!(
        "\tchain output {{\n\t\ttype filter hook output priority filter; policy accept;\n\t\t{family} daddr {addr} tcp sport {port} meta priority set {h}{SPARED}\n\t}}\n}}\n"
    ));
    r
}

/// `throttle NODE RATE`, undone by `heal`.
pub struct Throttle;

impl Fault for Throttle {
    fn kind(&self) -> &'static FaultKind {
        named("throttle")
    }
    fn about(&self) -> &'static str {
        "Cap what a node sends, to peers and clients alike, at a rate (a tbf qdisc on its links)"
    }
    fn example(&self) -> &'static str {
        "n2 100kbit"
    }
    fn params(&self) -> &'static [ParamDoc] {
        &[
            TARGET_PARAM,
            ParamDoc {
                name: "RATE",
                help: "bits a second: a number and kbit, mbit or gbit, e.g. 100kbit",
                many: false,
            },
        ]
    }
    /// Its clients hear it through the bucket too.
    fn reaches_clients(&self) -> bool {
        true
    }
    fn parse(&self, args: &[&str]) -> std::result::Result<(Target, Param), String> {
        let [target, rate] = args else {
            return Err("'throttle' takes a target and a rate, e.g. throttle n2 100kbit".into());
        };
        let bits = parse_rate(rate)?;
        Ok((target.parse()?, Param::new(render_rate(bits))))
    }
    /// The marker table (with the rule that steers the kept connection past the bucket),
    /// then on every link that leads to a peer a root that sends that connection one way
    /// and everything else through the bucket.
    fn put(
        &self,
        topology: &Topology,
        f: &InForce,
        param: &Param,
        node: usize,
        table: &str,
    ) -> Option<Result<(String, String)>> {
        let bits = parse_rate(param.text()).unwrap_or(1_000_000);
        let peers: Vec<String> = topology
            .peers(node, &[])
            .iter()
            .map(|a| a.to_string())
            .collect();
        let h = handle(table);
        // htb only sorts: both its classes are far faster than any link here, and the
        // bucket under the default one does the throttling.
        let script = format!(
            "{load}devs=$(for a in {peers}; do ip -o route get \"$a\" | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'; done | grep -vx lo | sort -u)\n\
             [ -n \"$devs\" ] || {{ echo \"no link leads to the peers\" >&2; exit 1; }}\n\
             for d in $devs; do \
             tc qdisc add dev \"$d\" root handle {h} htb default {SHAPED} && \
             tc class add dev \"$d\" parent {h} classid {h}{SPARED} htb rate {SORT_RATE} quantum 1514 && \
             tc class add dev \"$d\" parent {h} classid {h}{SHAPED} htb rate {SORT_RATE} quantum 1514 && \
             tc qdisc add dev \"$d\" parent {h}{SHAPED} tbf rate {bits}bit burst {burst} latency {LATENCY} || exit 1; done\n",
            load = crate::hosts::load_table(table),
            peers = peers.join(" "),
            burst = burst(bits),
        );
        Some(Ok((script, rules(table, &f.target, topology.keep, &h))))
    }
    /// Every root of its handle on any link (its bucket goes with it), then its table.
    fn undo(&self, table: &str) -> String {
        let handle = handle(table);
        format!(
            "for d in $(ip -o link show | sed -n 's/^[0-9]*: \\([^:@]*\\).*/\\1/p'); do \
             if tc qdisc show dev \"$d\" | grep -q '^qdisc htb {handle} root'; then tc qdisc del dev \"$d\" root; fi; done\n\
             if tc qdisc show | grep -q '^qdisc htb {handle} '; then echo 'an htb qdisc {handle} is still there' >&2; exit 1; fi\n{}",
            crate::hosts::remove_table(table)
        )
    }
}

/// Bits a second from `100kbit`, `2mbit`, `1gbit` or `9600bit`: at least 1 kbit.
fn parse_rate(text: &str) -> std::result::Result<u64, String> {
    let lower = text.to_ascii_lowercase();
    let digits = lower.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = lower.split_at(digits);
    let scale: u64 = match unit {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        _ => 0,
    };
    n.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|b| (1_000..=100_000_000_000).contains(b))
        .ok_or_else(|| {
            format!("'{text}' is not a rate from 1kbit to 100gbit: a number and bit, kbit, mbit or gbit, e.g. 100kbit")
        })
}

/// A rate in the largest unit that writes it whole.
fn render_rate(bits: u64) -> String {
    for (scale, unit) in [
        (1_000_000_000, "gbit"),
        (1_000_000, "mbit"),
        (1_000, "kbit"),
    ] {
        if bits.is_multiple_of(scale) {
            return format!("{}{unit}", bits / scale);
        }
    }
    format!("{bits}bit")
}

/// The bucket for `bits` a second: 10 ms of traffic, and never less than [`MIN_BURST`].
fn burst(bits: u64) -> u64 {
    (bits / 8 / 100).max(MIN_BURST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_in_tc_units_and_written_back_in_one_form() {
        assert_eq!(parse_rate("100kbit"), Ok(100_000));
        assert_eq!(parse_rate("2MBIT"), Ok(2_000_000));
        assert_eq!(parse_rate("9600bit"), Ok(9_600));
        for bad in [
            "", "kbit", "100", "100kb", "1.5mbit", "999bit", "200gbit", "-1kbit",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(render_rate(100_000), "100kbit");
        assert_eq!(render_rate(2_000_000), "2mbit");
        assert_eq!(render_rate(9_600), "9600bit");
        let (_, p) = Throttle.parse(&["n2", "1000kbit"]).unwrap();
        assert_eq!(p.text(), "1mbit");
        assert!(Throttle.parse(&["n2"]).unwrap_err().contains("a rate"));
    }

    #[test]
    fn the_bucket_holds_ten_milliseconds_and_never_less_than_32_kbit() {
        assert_eq!(burst(100_000), MIN_BURST);
        assert_eq!(burst(1_000_000_000), 1_250_000);
    }

    #[test]
    fn the_change_caps_every_link_to_a_peer_and_its_undo_finds_them_by_handle() {
        let topology = Topology {
            names: vec!["n1".into(), "n2".into()],
            addrs: vec![
                vec!["198.18.1.1".parse().unwrap()],
                vec!["198.18.1.2".parse().unwrap()],
            ],
            keep: Some(("198.18.1.254".parse().unwrap(), 22)),
        };
        let f = InForce {
            kind: Throttle.kind(),
            target: "n2 100kbit".into(),
            nodes: vec![1],
        };
        let (script, rules) = Throttle
            .put(&topology, &f, &Param::new("100kbit"), 1, "perseus_throttle")
            .unwrap()
            .unwrap();
        assert!(
            script.contains("for a in 198.18.1.1; do ip -o route get"),
            "{script}"
        );
        let h = handle("perseus_throttle");
        assert!(
            script.contains(&format!(
                "parent {h}2 tbf rate 100000bit burst 4096 latency 400ms"
            )),
            "{script}"
        );
        assert!(
            script.contains(&format!("root handle {h} htb default 2")),
            "{script}"
        );
        assert_eq!(
            nft::parse_tables(&rules),
            vec![("perseus_throttle".to_string(), "n2 100kbit".to_string())]
        );
        // The kept session (from the host's SSH port 22) goes to the spared class.
        assert!(
            rules.contains(&format!(
                "ip daddr 198.18.1.254 tcp sport 22 meta priority set {h}1"
            )),
            "{rules}"
        );
        let bare = Topology {
            keep: None,
            ..topology
        };
        let (_, rules) = Throttle
            .put(&bare, &f, &Param::new("100kbit"), 1, "perseus_throttle")
            .unwrap()
            .unwrap();
        assert_eq!(rules, nft::marker_table("perseus_throttle", "n2 100kbit"));
        let undo = Throttle.undo("perseus_throttle");
        assert!(
            undo.contains(&format!("'^qdisc htb {h} root'"))
                && undo.contains("nft delete table inet perseus_throttle"),
            "{undo}"
        );
    }

    /// A late switch of a dead run removes its own qdiscs only: each table has its handle.
    #[test]
    fn each_table_has_a_handle_of_its_own_in_tcs_range() {
        let tables: Vec<String> = (0..2000u32)
            .map(|i| format!("perseus_throttle_{:08x}", i.wrapping_mul(2_654_435_761)))
            .collect();
        let handles: std::collections::BTreeSet<String> =
            tables.iter().map(|t| handle(t)).collect();
        // Almost all distinct (57,344 handles to share), and stable.
        assert!(handles.len() > 1950, "{} distinct of 2000", handles.len());
        assert_eq!(handle(&tables[0]), handle(&tables[0]));
        for h in &handles {
            let n = u32::from_str_radix(h.trim_end_matches(':'), 16).unwrap();
            assert!((0x1000..=0xefff).contains(&n), "{h}");
        }
        assert!(!Throttle.undo(&tables[0]).contains(&handle(&tables[1])));
    }
}
