//! The lab's network: an address range from 198.18.0.0/15 (the range reserved for test
//! labs), a bridge on the host, and one namespace per node joined to it by a veth pair.
//! The client runs on the host side and reaches every node through the bridge.

use super::process::run_host;
use crate::error::{Error, Result};
use std::net::Ipv4Addr;

/// A /24 inside 198.18.0.0/15.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// 18 or 19.
    pub second: u8,
    pub third: u8,
}

impl Subnet {
    /// Subnet number `index` (0..512) of 198.18.0.0/15.
    pub fn from_index(index: u16) -> Subnet {
        Subnet {
            second: 18 + (index / 256) as u8,
            third: (index % 256) as u8,
        }
    }

    /// Short and unique per subnet: names the lab's interfaces.
    pub fn index(&self) -> u16 {
        (self.second as u16 - 18) * 256 + self.third as u16
    }

    /// Parses `198.18.X.0/24` or `198.19.X.0/24`.
    pub fn parse(text: &str) -> Result<Subnet> {
        let bad = || {
            Error::Invalid(format!(
                "--subnet {text}: give a /24 inside 198.18.0.0/15, e.g. 198.18.7.0/24"
            ))
        };
        let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let o = addr.octets();
        if prefix != "24" || o[0] != 198 || !(18..=19).contains(&o[1]) || o[3] != 0 {
            return Err(bad());
        }
        Ok(Subnet {
            second: o[1],
            third: o[2],
        })
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, self.second, self.third, 0)
    }

    /// The address of node `i` (0-based): .1, .2, ...
    pub fn node_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, self.second, self.third, i as u8 + 1)
    }

    /// The host's address on the lab bridge.
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, self.second, self.third, 254)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/24", self.network())
    }
}

/// Whether two IPv4 networks share any address.
pub fn overlaps(a: Ipv4Addr, a_len: u8, b: Ipv4Addr, b_len: u8) -> bool {
    let len = a_len.min(b_len).min(32);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(a) & mask == u32::from(b) & mask
}

/// Networks the host already uses, from `ip -o -4 addr` and `ip -4 route` output, with the
/// interface or route that uses each.
pub fn networks_in_use(addr_output: &str, route_output: &str) -> Vec<(Ipv4Addr, u8, String)> {
    let parse = |tok: &str| -> Option<(Ipv4Addr, u8)> {
        let (ip, len) = tok.split_once('/').unwrap_or((tok, "32"));
        Some((ip.parse().ok()?, len.parse().ok()?))
    };
    let mut out = Vec::new();
    for line in addr_output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(pos) = words.iter().position(|w| *w == "inet") {
            if let Some((ip, len)) = words.get(pos + 1).and_then(|t| parse(t)) {
                let dev = words.get(1).unwrap_or(&"?").trim_end_matches(':');
                out.push((ip, len, format!("address {ip}/{len} on {dev}")));
            }
        }
    }
    for line in route_output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        if *first == "default" {
            continue;
        }
        let tok = if [
            "local",
            "broadcast",
            "unicast",
            "blackhole",
            "unreachable",
            "prohibit",
        ]
        .contains(first)
        {
            words.get(1).copied().unwrap_or("")
        } else {
            first
        };
        if let Some((ip, len)) = parse(tok) {
            out.push((ip, len, format!("route {}", line.trim())));
        }
    }
    out
}

/// What on the host already uses `subnet`, if anything.
pub fn subnet_user(subnet: &Subnet) -> Result<Option<String>> {
    let addrs = run_host("ip", &["-o", "-4", "addr", "show"])?;
    let routes = run_host("ip", &["-4", "route", "show", "table", "all"])?;
    Ok(networks_in_use(&addrs, &routes)
        .into_iter()
        .find(|(ip, len, _)| overlaps(*ip, *len, subnet.network(), 24))
        .map(|(_, _, by)| by))
}

/// Creates the bridge with the host's lab address.
pub fn create_bridge(bridge: &str, subnet: &Subnet) -> Result<()> {
    run_host("ip", &["link", "add", bridge, "type", "bridge"])?;
    let host = format!("{}/24", subnet.host_addr());
    run_host("ip", &["addr", "add", &host, "dev", bridge])?;
    run_host("ip", &["link", "set", bridge, "up"])?;
    Ok(())
}

/// Creates a node's namespace, with `eth0` at `addr` joined to `bridge` through `veth`.
pub fn create_node(netns: &str, veth: &str, bridge: &str, addr: Ipv4Addr) -> Result<()> {
    run_host("ip", &["netns", "add", netns])?;
    run_host(
        "ip",
        &[
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ],
    )?;
    run_host("ip", &["link", "set", veth, "master", bridge, "up"])?;
    let cidr = format!("{addr}/24");
    run_host("ip", &["-n", netns, "addr", "add", &cidr, "dev", "eth0"])?;
    run_host("ip", &["-n", netns, "link", "set", "eth0", "up"])?;
    run_host("ip", &["-n", netns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Whether a network interface of this name exists on the host.
pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Removes a node's veth pair and namespace; already gone is fine. The veth goes first:
/// a deleted namespace takes its links with it only some time later.
pub fn remove_node(netns: &str, veth: &str) -> Result<()> {
    remove_link(veth)?;
    if super::process::netns_path(netns).exists() {
        run_host("ip", &["netns", "del", netns])?;
    }
    Ok(())
}

/// Removes a host link if it exists; already gone is fine.
pub fn remove_link(name: &str) -> Result<()> {
    if !link_exists(name) {
        return Ok(());
    }
    match run_host("ip", &["link", "del", name]) {
        Err(_) if !link_exists(name) => Ok(()),
        other => other.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_stay_inside_the_lab_range() {
        let s = Subnet::parse("198.19.7.0/24").unwrap();
        assert_eq!(s.index(), 256 + 7);
        assert_eq!(Subnet::from_index(s.index()), s);
        assert_eq!(s.node_addr(0), Ipv4Addr::new(198, 19, 7, 1));
        assert_eq!(s.host_addr(), Ipv4Addr::new(198, 19, 7, 254));
        for bad in [
            "10.0.0.0/24",
            "198.20.1.0/24",
            "198.18.1.0/16",
            "198.18.1.5/24",
            "x",
        ] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap_is_decided_by_the_shorter_prefix() {
        let net = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(overlaps(net("198.18.0.0"), 15, net("198.19.3.0"), 24));
        assert!(overlaps(net("198.18.3.254"), 32, net("198.18.3.0"), 24));
        assert!(!overlaps(net("198.18.4.0"), 24, net("198.18.3.0"), 24));
        assert!(!overlaps(net("10.0.0.0"), 8, net("198.18.3.0"), 24));
    }

    #[test]
    fn networks_in_use_reads_ip_output() {
        let addrs = "1: lo    inet 127.0.0.1/8 scope host lo\\\n3: prs1    inet 198.18.1.254/24 brd 198.18.1.255 scope global prs1\n";
        let routes = "default via 10.0.0.1 dev eth0\n198.18.9.0/24 dev foo proto kernel\nlocal 198.18.1.254 dev prs1 table local\n";
        let nets = networks_in_use(addrs, routes);
        let s1 = Subnet::parse("198.18.1.0/24").unwrap();
        let s9 = Subnet::parse("198.18.9.0/24").unwrap();
        let s5 = Subnet::parse("198.18.5.0/24").unwrap();
        let used = |s: Subnet| {
            nets.iter()
                .any(|(ip, l, _)| overlaps(*ip, *l, s.network(), 24))
        };
        assert!(used(s1));
        assert!(used(s9));
        assert!(!used(s5));
        assert!(nets.iter().any(|n| n.2.contains("on prs1")));
    }
}
