//! Every network fault of the registry, through real nftables: each node's rules, loaded in
//! a namespace of their own and listed back by `nft`, read as the very links the fault says
//! it cuts. `nft` lists rules in its own way (one address without braces, `reject` bare),
//! so this is the round trip `status` depends on.

use crate::support::*;
use perseus::fault::{self, verdict, Topology};
use std::process::{Command, Stdio};

/// A network namespace of this test, removed when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("perseus-vt-{}", std::process::id());
        let s = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(s.success(), "ip netns add {name}");
        Netns(name)
    }

    fn nft(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut c = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        c.stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or("").as_bytes())
            .unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn every_network_fault_reads_back_from_real_nftables_as_the_links_it_cuts() {
    require_lab("ip", "iproute2");
    let ns = Netns::new();
    let topology = Topology {
        names: (1..=3).map(|i| format!("n{i}")).collect(),
        // n3 is two hosts (a node of two containers): its peers' rules name both.
        addrs: (1..=3)
            .map(|i| {
                let mut a = vec![std::net::Ipv4Addr::new(198, 18, 1, i)];
                if i == 3 {
                    a.push(std::net::Ipv4Addr::new(198, 18, 1, 13));
                }
                a
            })
            .collect(),
        keep: Some(("198.18.1.254".parse().unwrap(), 22)),
    };
    let mut checked = Vec::new();
    for f in fault::FAULTS {
        let (param, placed) = fault::example(*f, &topology.names).unwrap();
        let nodes = placed.nodes.clone();
        let Some(links) = f.links(&topology.names, &placed, &param) else {
            continue;
        };
        let mut want = links.unwrap();
        want.sort();
        want.dedup();
        let table = fault::table(f.kind());
        let mut back = Vec::new();
        for &h in &nodes {
            let rules = f
                .rules(&topology, &placed, &param, h, &table)
                .unwrap()
                .unwrap();
            ns.nft(&["-f", "-"], Some(&rules));
            let listing = ns.nft(&["list", "table", "inet", &table], None);
            ns.nft(&["delete", "table", "inet", &table], None);
            back.extend(verdict::read(&listing, h, &topology.addrs));
        }
        back.sort();
        assert_eq!(back, want, "{}: as nft lists its rules", f.kind().name);
        checked.push(f.kind().name);
    }
    assert_eq!(
        checked,
        [
            "isolate",
            "isolate-all",
            "refuse",
            "partition",
            "one-way",
            "loss"
        ]
    );
}
