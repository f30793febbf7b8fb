//! `perseus run --cluster FILE` over SSH, with no fault commands: the lab stands in for
//! machines. Each lab node runs an `sshd` of its own (Debian's `openssh-server`, a host key
//! and an authorised key made for the test), and the cluster file names the nodes by their
//! addresses and `ssh = "root@ADDRESS"`, so every fault goes through SSH only.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An sshd in every node's namespace, and the keys and configs they and the client use;
/// all of it goes when dropped.
struct Machines {
    lab: String,
    dir: PathBuf,
    sshds: Vec<Child>,
    made_run_sshd: bool,
    netns: Vec<String>,
    addrs: Vec<String>,
    /// Each node's database process as the lab started it: its pid, user and command line.
    servers: Vec<(i32, String, Vec<String>)>,
}

impl Machines {
    fn start(lab: &str) -> Machines {
        require_lab("/usr/sbin/sshd", "openssh-server");
        require_lab("ssh-keygen", "openssh-client");
        let dir = out_dir(&format!("ssh-{lab}"));
        std::fs::create_dir_all(&dir).unwrap();
        let keygen = |name: &str| {
            let s = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "perseus-test", "-f"])
                .arg(dir.join(name))
                .status()
                .expect("ssh-keygen");
            assert!(s.success(), "ssh-keygen {name}");
        };
        keygen("host_key");
        keygen("id");
        std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
        // sshd's privilege separation directory, made by the package's service otherwise.
        let made_run_sshd = !Path::new("/run/sshd").exists();
        if made_run_sshd {
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(lab_dir(lab).join("state.json")).unwrap(),
        )
        .unwrap();
        let mut m = Machines {
            lab: lab.to_string(),
            servers: Vec::new(),
            dir: dir.clone(),
            sshds: Vec::new(),
            made_run_sshd,
            netns: Vec::new(),
            addrs: Vec::new(),
        };
        for n in state["nodes"].as_array().unwrap() {
            let (name, netns, addr) = (
                n["name"].as_str().unwrap(),
                n["netns"].as_str().unwrap().to_string(),
                n["addr"].as_str().unwrap().to_string(),
            );
            let config = dir.join(format!("sshd-{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "ListenAddress {addr}\nPort 22\nHostKey {d}/host_key\n\
                     AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                     StrictModes no\nPidFile none\nLogLevel ERROR\n",
                    d = dir.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.join(format!("sshd-{name}.log"))).unwrap();
            m.sshds.push(
                Command::new("ip")
                    .args(["netns", "exec", &netns, "/usr/sbin/sshd", "-D", "-e", "-f"])
                    .arg(&config)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("sshd"),
            );
            m.netns.push(netns);
            m.addrs.push(addr);
            let pid = n["processes"][0]["pid"].as_i64().unwrap() as i32;
            let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
                .unwrap()
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            use std::os::unix::fs::MetadataExt;
            let uid = std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
            let user = Command::new("id")
                .args(["-nu", &uid.to_string()])
                .output()
                .unwrap();
            let user = String::from_utf8_lossy(&user.stdout).trim().to_string();
            m.servers.push((pid, user, argv));
        }
        std::fs::write(
            dir.join("ssh_config"),
            format!(
                "Host *\n  User root\n  IdentityFile {d}/id\n  IdentitiesOnly yes\n  \
                 UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  LogLevel ERROR\n",
                d = dir.display()
            ),
        )
        .unwrap();
        for a in &m.addrs {
            let to: std::net::SocketAddr = format!("{a}:22").parse().unwrap();
            let t = Instant::now();
            while std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_err() {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "sshd on {a} did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        m
    }

    /// A cluster file for `db` on these machines, named `name`, its faults over SSH.
    fn cluster_file(&self, name: &str, db: &str, port: u16, lease: &str) -> PathBuf {
        self.cluster_file_with(name, db, port, lease, false)
    }

    /// The same; with `servers`, each node also names its server (`process =`, a text of its
    /// command line, and `start =`, the lab's own command line run as the lab ran it), for
    /// kill and pause over SSH.
    fn cluster_file_with(
        &self,
        name: &str,
        db: &str,
        port: u16,
        lease: &str,
        servers: bool,
    ) -> PathBuf {
        let mut text = format!(
            "name = \"{name}\"\ndatabase = \"{db}\"\nssh_config = \"ssh_config\"\nlease = \"{lease}\"\n"
        );
        for (i, a) in self.addrs.iter().enumerate() {
            text.push_str(&format!(
                "\n[[node]]\nname = \"n{}\"\naddress = \"{a}:{port}\"\nssh = \"root@{a}\"\n",
                i + 1
            ));
            if servers {
                let (_, user, argv) = &self.servers[i];
                let quoted: Vec<String> = argv.iter().map(|a| format!("'{a}'")).collect();
                let log = lab_dir(&self.lab)
                    .join(format!("n{}", i + 1))
                    .join("restarted.log");
                text.push_str(&format!(
                    "process = \"labs/{}/n{}/\"\nstart = \"runuser -u {user} -- {} >>{} 2>&1\"\n",
                    self.lab,
                    i + 1,
                    quoted.join(" "),
                    log.display()
                ));
            }
        }
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The Perseus tables in node `i`'s namespace, read there directly.
    fn tables(&self, i: usize) -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns[i], "nft", "list", "tables"])
            .output()
            .expect("nft");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("perseus"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Machines {
    fn drop(&mut self) {
        // A server started again over SSH is not the lab's: it goes here.
        let original: Vec<String> = self.servers.iter().map(|s| s.0.to_string()).collect();
        for p in processes_mentioning(&format!("labs/{}/n", self.lab)) {
            let pid = p.split(':').next().unwrap_or("").to_string();
            if !original.contains(&pid) && p.contains("--data-dir") {
                let _ = Command::new("kill").args(["-9", &pid]).status();
            }
        }
        for c in &mut self.sshds {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.made_run_sshd {
            let _ = std::fs::remove_dir("/run/sshd");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Brings an etcd lab up for `tag`, with sshd on its nodes.
fn etcd_machines(tag: &str) -> (LabGuard, String, Machines) {
    require_lab("etcd", "etcd-server");
    let lab = lab_name(tag);
    let guard = LabGuard(lab.clone());
    let (code, out, err) = run(&["up", "etcd", "--lab", &lab]);
    assert_eq!(code, 0, "perseus up etcd:\n{out}\n{err}");
    let m = Machines::start(&lab);
    (guard, lab, m)
}

/// The whole experiment through SSH: the leader, found through the database's client,
/// isolated by a table loaded over SSH (each load's round trip in the record), the same
/// effects as in the lab (a new leader within seconds, everyone serving again after the
/// rejoin, nothing lost), and nothing left on the machines.
#[test]
fn run_over_ssh_isolates_the_leader_with_no_fault_commands() {
    let (_guard, lab, m) = etcd_machines("sshrun");
    let file = m.cluster_file(&format!("s{}", std::process::id()), "etcd", 2379, "30s");
    let out = out_dir("ssh-run");
    let (code, stdout, stderr) = run(&[
        "run",
        "--cluster",
        file.to_str().unwrap(),
        "--isolate",
        "leader",
        "--before",
        "3s",
        "--during",
        "8s",
        "--after",
        "8s",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        code, 0,
        "perseus run --cluster over ssh:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("loaded table inet perseus_isolate_")
            && stderr.contains("removed table inet perseus_isolate_"),
        "{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["fault"]["role"], "leader", "{}", summary["fault"]);
    let down = summary["metrics"]["downtime_on_isolation_ms"]
        .as_u64()
        .unwrap();
    assert!(
        (200..6_000).contains(&down),
        "the leader's isolation stops everyone for about one election: {down} ms"
    );
    assert_eq!(summary["correctness"]["violations"], 0);
    assert_eq!(summary["lost_acknowledged_writes"], 0);
    let t = table(&out.join("client.log"));
    let last = t.rows().last().unwrap();
    assert!(serving(last).iter().all(|s| *s), "{}", last.render());
    let record = record_text(&out);
    assert!(
        record.contains("loaded table inet perseus_isolate_") && record.contains(" ms"),
        "each remote command's round trip is in the record"
    );
    for i in 0..3 {
        assert!(m.tables(i).is_empty(), "n{} keeps {:?}", i + 1, m.tables(i));
    }
    assert!(
        processes_mentioning("ControlMaster=yes").is_empty(),
        "no ssh master left"
    );
    let _ = std::fs::remove_dir_all(&out);
    drop(lab);
}

/// Perseus killed mid-fault: the table stays (nothing undid it), and the dead man's switch
/// removes it by itself within the lease; a second kill, then `heal --cluster`, leaves no
/// table at once; `status --cluster` reads what is in force.
#[test]
fn a_killed_run_over_ssh_heals_itself_and_heal_cluster_removes_what_is_left() {
    let (_guard, _lab, m) = etcd_machines("sshkill");
    let name = format!("k{}", std::process::id());
    let file = m.cluster_file(&name, "etcd", 2379, "2s");
    let cluster_dir = Path::new("/var/lib/perseus/clusters").join(&name);
    let out = out_dir("ssh-kill");
    let start = |during: &str| -> (Child, Instant) {
        let _ = std::fs::remove_dir_all(&cluster_dir);
        let _ = std::fs::remove_dir_all(&out);
        let child = perseus()
            .args([
                "run",
                "--cluster",
                file.to_str().unwrap(),
                "--isolate",
                "n2",
            ])
            .args(["--before", "1s", "--during", during, "--after", "1s"])
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("perseus run");
        // Until n2's table is in force.
        let t = Instant::now();
        while m.tables(1).is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "n2 was never isolated"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        (child, Instant::now())
    };
    let kill = |mut c: Child| {
        c.kill().unwrap();
        c.wait().unwrap();
    };

    // 1. Killed: the switch heals n2 within the lease (the scenario's planned end + 2 s).
    let (child, isolated_at) = start("4s");
    kill(child);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(m.tables(1).len(), 1, "the table outlives the killed run");
    let (code, status, err) = run(&["status", "--cluster", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        status.contains("n2: perseus_isolate_") && status.contains("(n2) in force"),
        "{status}"
    );
    while !m.tables(1).is_empty() {
        assert!(
            isolated_at.elapsed() < Duration::from_secs(15),
            "the switch did not heal n2 within the lease: {:?}",
            m.tables(1)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        isolated_at.elapsed() > Duration::from_secs(3),
        "not before the lease: {:?}",
        isolated_at.elapsed()
    );

    // 2. Killed again, with a long lease ahead: heal --cluster removes the table at once.
    let (child, _) = start("60s");
    kill(child);
    let (code, healed, err) = run(&["heal", "--cluster", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        healed.contains("n2: removed table perseus_isolate_"),
        "{healed}"
    );
    for i in 0..3 {
        assert!(m.tables(i).is_empty(), "n{} keeps {:?}", i + 1, m.tables(i));
    }
    assert!(
        processes_mentioning("ControlMaster=yes").is_empty(),
        "no ssh master left"
    );
    let _ = std::fs::remove_dir_all(&cluster_dir);
    let _ = std::fs::remove_dir_all(&out);
}

/// Every fault of the registry over SSH, from the lab's own scenario of every fault
/// (`tests/fixtures/every-fault.toml`), each with the effect it has in the lab
/// (`etcd_faults`): the contract a transport keeps. Paused n2 hangs; killed n2 fails fast
/// and, started again with the file's `start`, serves again; one-way n2 cannot take part;
/// 30 % loss everywhere lowers throughput without stopping the cluster; n2 throttled to
/// 100 kbit/s serves its client a fifth at most; the minority of a partition stops;
/// isolated n1 and refused n3 complete nothing; isolate-all n3 cuts its client off too,
/// while the SSH session that made it survives to undo it. All serve at the end, nothing is
/// lost, no table is left.
#[test]
fn every_fault_over_ssh_has_its_effect() {
    let (_guard, _lab, m) = etcd_machines("sshall");
    let file = m.cluster_file_with(
        &format!("a{}", std::process::id()),
        "etcd",
        2379,
        "30s",
        true,
    );
    // The lab's own list of every fault (`etcd_faults`), which the README test keeps
    // whole: a fault added to the registry is played over SSH too.
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/every-fault.toml");
    let out = out_dir("ssh-all");
    let (code, stdout, stderr) = run(&[
        "run",
        "--cluster",
        file.to_str().unwrap(),
        "--scenario",
        scenario.to_str().unwrap(),
        "--write",
        "cas",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // The lab's assertions, each fault's effect as in a namespace lab.
    let r = RunResult::load(out.clone(), stdout);
    every_fault_effects(&r, true);
    for i in 0..3 {
        assert!(m.tables(i).is_empty(), "n{} keeps {:?}", i + 1, m.tables(i));
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// A fault a transport cannot carry is refused when the scenario is checked, with its
/// reason, before any machine is reached: here `kill` and `pause` over SSH on nodes whose
/// file names no server (nothing listens at these addresses; nothing is left behind).
#[test]
fn a_fault_the_transport_cannot_carry_is_refused_before_anything_starts() {
    let dir = out_dir("ssh-refused");
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("refused{}", std::process::id());
    let mut text = format!("name = \"{name}\"\ndatabase = \"etcd\"\n");
    for i in 1..=3 {
        text.push_str(&format!(
            "\n[[node]]\nname = \"n{i}\"\naddress = \"198.18.251.{i}:2379\"\nssh = \"root@198.18.251.{i}\"\n"
        ));
    }
    let file = dir.join("machines.toml");
    std::fs::write(&file, text).unwrap();
    for (fault, needs) in [
        ("kill n2", "start = \"COMMAND\""),
        ("pause all", "process = \"TEXT OF ITS COMMAND LINE\""),
    ] {
        let scenario = dir.join("s.toml");
        std::fs::write(
            &scenario,
            format!("[[phase]]\nname = \"hit\"\nduration = \"1s\"\nfaults = [\"{fault}\"]\n"),
        )
        .unwrap();
        let t = std::time::Instant::now();
        let (code, stdout, stderr) = run(&[
            "run",
            "--cluster",
            file.to_str().unwrap(),
            "--scenario",
            scenario.to_str().unwrap(),
            "--out",
            dir.join("out").to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{fault}: {stdout}\n{stderr}");
        assert!(
            stderr.contains("phase 'hit'") && stderr.contains(needs) && stderr.lines().count() == 1,
            "{fault}: {stderr}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "refused before reaching anything"
        );
        assert!(!dir.join("out").exists(), "{fault}: nothing made");
        assert!(
            !Path::new("/var/lib/perseus/clusters").join(&name).exists(),
            "{fault}: no event log claimed"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
