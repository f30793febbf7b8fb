//! The lab's network: an address range from 198.18.0.0/15 (the range reserved for test
//! labs), a switch (a bridge in a network namespace of its own), and one namespace per node
//! joined to it by a veth pair. The host joins the switch by a veth pair too: the clients
//! run on the host and reach every node through it.
//!
//! The bridge is not on the host because a bridge there hands every frame between two
//! nodes to the host's firewall (`bridge-nf-call-iptables`), whose `FORWARD` policy is
//! Docker's `DROP` wherever Docker runs. In a namespace of its own the bridge sees only
//! that namespace's firewall, which is empty: the lab's traffic never depends on the
//! host's rules, whenever they change, and Perseus changes none of them.

use super::process::run_host;
use crate::error::{Error, Result};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

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

/// The bridge's name inside the switch's namespace.
const SWITCH_BRIDGE: &str = "br0";
/// The name, inside the switch's namespace, of the port that leads to the host.
const SWITCH_HOST_PORT: &str = "host";

/// Creates the switch: namespace `switch` with a bridge, joined to the host by the veth
/// `host_link`, which carries the host's lab address.
pub fn create_switch(switch: &str, host_link: &str, subnet: &Subnet) -> Result<()> {
    run_host("ip", &["netns", "add", switch])?;
    run_host(
        "ip",
        &["-n", switch, "link", "add", SWITCH_BRIDGE, "type", "bridge"],
    )?;
    run_host("ip", &["-n", switch, "link", "set", SWITCH_BRIDGE, "up"])?;
    run_host(
        "ip",
        &[
            "link",
            "add",
            host_link,
            "type",
            "veth",
            "peer",
            "name",
            SWITCH_HOST_PORT,
            "netns",
            switch,
        ],
    )?;
    attach(switch, SWITCH_HOST_PORT)?;
    let host = format!("{}/24", subnet.host_addr());
    run_host("ip", &["addr", "add", &host, "dev", host_link])?;
    run_host("ip", &["link", "set", host_link, "up"])?;
    Ok(())
}

/// Puts port `port` of the switch on its bridge and brings it up.
fn attach(switch: &str, port: &str) -> Result<()> {
    run_host(
        "ip",
        &[
            "-n",
            switch,
            "link",
            "set",
            port,
            "master",
            SWITCH_BRIDGE,
            "up",
        ],
    )
    .map(|_| ())
}

/// Creates a node's namespace, with `eth0` at `addr` joined to the switch through its port
/// `port`.
pub fn create_node(netns: &str, port: &str, switch: &str, addr: Ipv4Addr) -> Result<()> {
    run_host("ip", &["netns", "add", netns])?;
    run_host(
        "ip",
        &[
            "-n", switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns",
            netns,
        ],
    )?;
    attach(switch, port)?;
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

/// Removes a network namespace; already gone is fine. Its links go with it (some time
/// later: a link whose name must be free again at once is removed first).
pub fn remove_netns(netns: &str) -> Result<()> {
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

/// What a TCP connection attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Someone accepted it.
    Connected,
    /// The address answered that nothing listens there: the path works.
    Refused,
    /// No answer, or an error on the way (timed out, unreachable, …): the path does not work.
    Lost(String),
}

/// Tries a TCP connection to `to` for at most `timeout`, from inside `netns` (or from the
/// host, if `None`).
pub fn reach(netns: Option<&str>, to: SocketAddr, timeout: Duration) -> Result<Reach> {
    let ns = match netns {
        Some(n) => Some(
            std::fs::File::open(super::process::netns_path(n))
                .map_err(Error::io(format!("open namespace {n}")))?,
        ),
        None => None,
    };
    // setns changes only the calling thread's namespace: do it on a thread of its own.
    std::thread::spawn(move || {
        if let Some(ns) = ns {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io("enter namespace")(e.into()))?;
        }
        Ok(match TcpStream::connect_timeout(&to, timeout) {
            Ok(_) => Reach::Connected,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Reach::Refused,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                Reach::Lost(format!("no answer within {} ms", timeout.as_millis()))
            }
            Err(e) => Reach::Lost(e.to_string()),
        })
    })
    .join()
    .unwrap_or_else(|_| Err(Error::Invalid("probe thread panicked".into())))
}

/// The first path between two nodes that does not carry a connection to `port`, as
/// "n1 cannot reach n2 at 198.18.1.2:2380 (no answer within 1000 ms)"; `None` if every
/// node reaches every other (a refused connection reaches). `nodes`: (name, namespace,
/// address) of each node.
pub fn first_lost_path(
    nodes: &[(String, String, Ipv4Addr)],
    port: u16,
    timeout: Duration,
) -> Result<Option<String>> {
    for (from, netns, _) in nodes {
        for (to, _, addr) in nodes.iter().filter(|n| n.0 != *from) {
            let at = SocketAddr::from((*addr, port));
            if let Reach::Lost(why) = reach(Some(netns), at, timeout)? {
                return Ok(Some(format!("{from} cannot reach {to} at {at} ({why})")));
            }
        }
    }
    Ok(None)
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
