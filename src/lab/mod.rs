//! A lab: the hosts of one test cluster on this machine, and what runs on them.
//!
//! Each node is a network namespace with its own address; a switch (a bridge in a namespace
//! of its own, see [`net`]) joins them and the host, where the clients run. The lab's state
//! is kept on disk (`$PERSEUS_HOME/labs/NAME/`, default `/var/lib/perseus`), written before
//! anything is created, so `perseus down` can remove every process, namespace and link of a
//! lab even after perseus itself was killed.

pub mod containers;
pub mod disks;
pub mod events;
pub mod layout;
pub mod net;
pub mod process;

use crate::error::{Error, Result};
pub use layout::{Layout, NodeLayout, ProcessSpec};
use net::Subnet;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The lab used when none is named.
pub const DEFAULT_LAB: &str = "default";
/// Most nodes one lab can have.
pub const MAX_NODES: usize = 32;

/// Where labs keep their state and data: `$PERSEUS_HOME`, default `/var/lib/perseus`.
pub fn home() -> PathBuf {
    std::env::var_os("PERSEUS_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/perseus"))
}

fn labs_dir() -> PathBuf {
    home().join("labs")
}

/// A process the lab started on a node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessState {
    pub name: String,
    pub pid: i32,
    /// Tells this process apart from a later one with the same pid.
    pub start_time: u64,
    pub log: PathBuf,
    /// The container it runs in, in a container lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// One host of the lab.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeState {
    pub name: String,
    pub netns: String,
    pub addr: Ipv4Addr,
    /// The switch's side of the node's veth pair (on the host, in labs without a switch).
    pub veth: String,
    pub dir: PathBuf,
    pub processes: Vec<ProcessState>,
    /// The layer its data directory sits on, in a lab made with `--disk faulty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<disks::DiskLayer>,
}

/// Everything `down` needs to remove a lab, and everything a client needs to reach it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LabState {
    pub name: String,
    pub database: String,
    pub subnet: String,
    /// The host's link to the lab's network, which carries `host_addr`: the host's end of
    /// its veth pair to the switch (the bridge itself, in labs without a switch).
    pub bridge: String,
    pub host_addr: Ipv4Addr,
    /// The namespace of the lab's switch. Labs made before it existed have their bridge on
    /// the host, and none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<String>,
    pub nodes: Vec<NodeState>,
    pub created_unix_ms: i64,
    pub perseus_version: String,
    /// Where the user keeps binaries no package installs (`--bin-dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<PathBuf>,
    /// The password of this lab's servers, where they take one (random; this file is
    /// readable by root only). Empty in labs made before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// The server settings the user changed (`--set`), by knob name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub settings: std::collections::BTreeMap<String, String>,
    /// The engine whose containers are the nodes; `None`: the nodes are namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<containers::ContainerLab>,
}

/// What a lab's nodes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hosts {
    /// Network namespaces on this machine, running its installed binaries.
    Namespaces,
    /// Containers of `image`, run by the engine; `also`: the other images some of the
    /// database's servers run from (`Database::images`).
    Containers {
        engine: crate::containers::Flavour,
        image: String,
        also: Vec<String>,
    },
}

impl LabState {
    pub fn dir(&self) -> PathBuf {
        labs_dir().join(&self.name)
    }

    fn state_file(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Loads a lab by name. The name is checked first (so no name reaches outside
    /// `$PERSEUS_HOME/labs`), and the state must carry that same name.
    pub fn load(name: &str) -> Result<LabState> {
        validate_name(name)?;
        let dir = labs_dir().join(name);
        let text = std::fs::read_to_string(Self::state_file(&dir)).map_err(|_| {
            let labs = list();
            Error::NoSuchLab {
                name: name.to_string(),
                hint: if labs.is_empty() {
                    "; there are no labs (start one with: perseus up etcd)".into()
                } else {
                    format!("; labs here: {} (use --lab NAME)", labs.join(", "))
                },
            }
        })?;
        let state: LabState = serde_json::from_str(&text).map_err(|e| Error::Malformed {
            what: "lab state".into(),
            path: Self::state_file(&dir),
            line: e.line(),
            why: e.to_string(),
        })?;
        if state.name != name {
            return Err(Error::Malformed {
                what: "lab state".into(),
                path: Self::state_file(&dir),
                line: 1,
                why: format!(
                    "it names lab '{}', not '{name}'; remove {} by hand if it is not a lab",
                    state.name,
                    dir.display()
                ),
            });
        }
        Ok(state)
    }

    /// Takes this lab's lock, which every change to its faults and processes holds from
    /// reading the lab to writing it back: commands from several terminals take turns.
    pub fn lock(&self) -> Result<Lock> {
        Ok(lock_file(&self.dir().join("lock"), true)?.expect("a waiting lock is taken"))
    }

    /// Writes the state (root-only: it holds the lab's password) through a file of this
    /// process's own, renamed into place, so concurrent writers never mix their bytes.
    fn save(&self) -> Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        let path = Self::state_file(&self.dir());
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let json = serde_json::to_string_pretty(self).expect("state serialises");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .and_then(|mut f| f.write_all(json.as_bytes()))
            .map_err(Error::io(format!("write {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(Error::io(format!("write {}", path.display())))
    }

    /// The index of the node called `name`.
    pub fn node_index(&self, name: &str) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| Error::NoSuchNode {
                node: name.to_string(),
                lab: self.name.clone(),
                nodes: self.node_names().join(", "),
            })
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// What a database needs to know of the lab.
    pub fn layout(&self) -> Layout {
        Layout {
            lab: self.name.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeLayout {
                    name: n.name.clone(),
                    addr: n.addr,
                    dir: n.dir.clone(),
                    port: None,
                    also: Vec::new(),
                })
                .collect(),
            bin_dir: self.bin_dir.clone(),
            credentials: None,
            secret: (!self.secret.is_empty()).then(|| self.secret.clone()),
            settings: self.settings.clone(),
            image: self.containers.as_ref().map(|c| c.image.clone()),
        }
    }

    /// Copies every process log of the lab into `dest` as `NODE-PROCESS.log`.
    pub fn collect_logs(&self, dest: &Path) -> Result<()> {
        self.save_logs();
        std::fs::create_dir_all(dest).map_err(Error::io(format!("create {}", dest.display())))?;
        for node in &self.nodes {
            for p in &node.processes {
                let to = dest.join(format!("{}-{}.log", node.name, p.name));
                if p.log.exists() {
                    std::fs::copy(&p.log, &to)
                        .map_err(Error::io(format!("copy {}", p.log.display())))?;
                }
            }
        }
        Ok(())
    }
}

/// The names of the labs on this machine.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(labs_dir())
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Lab names are short and plain, since they name namespaces and directories.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 24
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "lab name '{name}': use 1 to 24 of a-z, 0-9 and '-' (not first)"
        )))
    }
}

/// An exclusive lock on a file (flock), held until dropped.
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<File>);

/// Takes the exclusive lock on `path` (created if missing), waiting for it if `wait`, else
/// returning `None` when another process holds it.
pub fn lock_file(path: &Path, wait: bool) -> Result<Option<Lock>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(Error::io(format!("open {}", path.display())))?;
    let how = if wait {
        nix::fcntl::FlockArg::LockExclusive
    } else {
        nix::fcntl::FlockArg::LockExclusiveNonblock
    };
    match nix::fcntl::Flock::lock(file, how) {
        Ok(l) => Ok(Some(Lock(l))),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) if !wait => Ok(None),
        Err((_, e)) => Err(Error::io(format!("lock {}", path.display()))(e.into())),
    }
}

/// Holds the machine-wide lock that makes creating and removing labs one at a time.
fn lock() -> Result<Lock> {
    let dir = labs_dir();
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
    Ok(lock_file(&dir.join(".lock"), true)?.expect("a waiting lock is taken"))
}

fn subnets_of_labs() -> Vec<String> {
    list()
        .iter()
        .filter_map(|n| LabState::load(n).ok())
        .map(|s| s.subnet)
        .collect()
}

fn choose_subnet(requested: Option<Subnet>) -> Result<Subnet> {
    let taken = subnets_of_labs();
    if let Some(s) = requested {
        if taken.contains(&s.to_string()) {
            return Err(Error::SubnetInUse {
                subnet: s.to_string(),
                by: "another perseus lab".into(),
            });
        }
        if let Some(by) = net::subnet_user(&s)? {
            return Err(Error::SubnetInUse {
                subnet: s.to_string(),
                by,
            });
        }
        return Ok(s);
    }
    for index in 1..512 {
        let s = Subnet::from_index(index);
        if !taken.contains(&s.to_string()) && net::subnet_user(&s)?.is_none() {
            return Ok(s);
        }
    }
    Err(Error::NoFreeSubnet)
}

/// Creates a lab's hosts (no database yet): namespaces (or containers, as `hosts` says),
/// addresses, network. `settings`: the server settings the user changed, for the database
/// to read from the lab's layout. On any error, whatever was made is removed again.
pub fn create(
    name: &str,
    database: &str,
    nodes: usize,
    subnet: Option<Subnet>,
    bin_dir: Option<&Path>,
    settings: &std::collections::BTreeMap<String, String>,
    hosts: &Hosts,
) -> Result<LabState> {
    process::require_root("creating a lab")?;
    validate_name(name)?;
    if !(1..=MAX_NODES).contains(&nodes) {
        return Err(Error::Invalid(format!(
            "--nodes {nodes}: a lab has 1 to {MAX_NODES} nodes"
        )));
    }
    // The engine and the image are checked before anything is made.
    let containers = match hosts {
        Hosts::Namespaces => None,
        Hosts::Containers {
            engine,
            image,
            also,
        } => {
            if let Some(e) = containers::refuses(bin_dir) {
                return Err(e);
            }
            Some(containers::check(*engine, image, also, name)?)
        }
    };
    let _lock = lock()?;
    let dir = labs_dir().join(name);
    if dir.exists() {
        return Err(Error::LabExists(name.to_string()));
    }
    let subnet = choose_subnet(subnet)?;
    let tag = format!("prs{}", subnet.index());
    let state = LabState {
        name: name.to_string(),
        database: database.to_string(),
        subnet: subnet.to_string(),
        bridge: format!("{tag}h"),
        host_addr: subnet.host_addr(),
        // A container lab's network is the engine's bridge on the host.
        switch: containers.is_none().then(|| format!("perseus-{name}-sw")),
        nodes: (0..nodes)
            .map(|i| NodeState {
                name: format!("n{}", i + 1),
                netns: format!("perseus-{name}-n{}", i + 1),
                addr: subnet.node_addr(i),
                veth: format!("n{}", i + 1),
                dir: dir.join(format!("n{}", i + 1)),
                processes: Vec::new(),
                disk: None,
            })
            .collect(),
        created_unix_ms: crate::clock::unix_ms(),
        perseus_version: env!("CARGO_PKG_VERSION").to_string(),
        bin_dir: bin_dir.map(Path::to_path_buf),
        secret: crate::files::random_hex::<16>()?,
        settings: settings.clone(),
        containers,
    };
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
    // The state goes to disk before anything else exists, so `down` can always clean up.
    state.save()?;
    let made = (|| {
        for n in &state.nodes {
            std::fs::create_dir_all(&n.dir)
                .map_err(Error::io(format!("create {}", n.dir.display())))?;
        }
        if state.containers.is_some() {
            return containers::create_nodes(&state);
        }
        let switch = state.switch.as_deref().expect("a new lab has a switch");
        net::create_switch(switch, &state.bridge, &subnet)?;
        for n in &state.nodes {
            net::create_node(&n.netns, &n.veth, switch, n.addr)?;
        }
        Ok(())
    })();
    if let Err(e) = made {
        let _ = destroy_locked(&state);
        return Err(e);
    }
    Ok(state)
}

/// Starts nodes again after their processes were killed, all at once (as after a power
/// cut): each `(i, specs)` is node `i` with its database's restart command lines, on the
/// same data directories, logs appended to. Fails if one does not stay up.
pub fn restart_nodes(state: &mut LabState, nodes: &[(usize, Vec<ProcessSpec>)]) -> Result<()> {
    // A server that cannot start again exits at once. Right after a kill that is often
    // only for a moment (its port is still held for a second or two), so it is tried
    // again for a while; a restart that never stays up is an error, not a node counted as
    // running.
    let started = Instant::now();
    let mut pending: Vec<&(usize, Vec<ProcessSpec>)> = nodes.iter().collect();
    loop {
        for (i, specs) in &pending {
            // What an earlier attempt left running (one process of several) goes first.
            let left: Vec<(i32, u64)> = state.nodes[*i]
                .processes
                .iter()
                .filter(|p| process::is_alive(p.pid, p.start_time))
                .map(|p| (p.pid, p.start_time))
                .collect();
            process::kill_all(&left, Duration::from_secs(2));
            state.nodes[*i].processes.clear();
            for spec in specs {
                state.spawn(*i, spec)?;
            }
        }
        std::thread::sleep(RESTART_SETTLE);
        let exited = |i: usize| {
            state.nodes[i]
                .processes
                .iter()
                .find(|p| !process::is_alive(p.pid, p.start_time))
                .cloned()
        };
        pending.retain(|(i, _)| exited(*i).is_some());
        let Some((i, _)) = pending.first() else {
            return Ok(());
        };
        if started.elapsed() >= RESTART_PATIENCE {
            let p = exited(*i).expect("a pending node has an exited process");
            return Err(Error::NodeNotReady {
                node: state.nodes[*i].name.clone(),
                secs: started.elapsed().as_secs(),
                why: format!("{} exited right after each restart", p.name),
                tail: process::tail(&p.log, 15),
                log: p.log,
            });
        }
        std::thread::sleep(Duration::from_millis(700));
    }
}

/// How long a restarted process must stay up to count as restarted.
const RESTART_SETTLE: Duration = Duration::from_millis(300);
/// How long a restart is tried again while its processes exit at once.
const RESTART_PATIENCE: Duration = Duration::from_secs(5);

/// Removes everything of a lab: its processes, namespaces (and with them their nftables
/// rules and links), the host's link to it and its directory. Safe to call again, and on a
/// half-made lab.
pub fn destroy(state: &LabState) -> Result<()> {
    let _lock = lock()?;
    destroy_locked(state)
}

fn destroy_locked(state: &LabState) -> Result<()> {
    if state.containers.is_some() {
        containers::destroy(state)?;
        let dir = state.dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(Error::io(format!("remove {}", dir.display())))?;
        }
        return Ok(());
    }
    let mut pids: Vec<(i32, u64)> = Vec::new();
    for node in &state.nodes {
        pids.extend(node.processes.iter().map(|p| (p.pid, p.start_time)));
        for pid in process::pids_in(&node.netns) {
            if let Some(t) = process::start_time(pid) {
                pids.push((pid, t));
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    // A server waiting on a stalled disk cannot be stopped until the disk lets it go.
    disks::release(state);
    // Short grace: the data goes with the lab, and a leader whose peers are already gone
    // would otherwise spend seconds trying to hand its leadership over.
    process::stop_all(&pids, Duration::from_millis(500));
    let mut first_error = None;
    let mut note = |r: Result<()>| {
        if let Err(e) = r {
            first_error.get_or_insert(e);
        }
    };
    // The layers go once nothing above them runs, and before the directory they sit in.
    note(disks::unmount(state));
    // Links on the host go before the namespaces: a deleted namespace takes its links with
    // it only some time later, and the host's names must be free for the next lab at once.
    if state.switch.is_none() {
        for node in &state.nodes {
            note(net::remove_link(&node.veth));
        }
    }
    note(net::remove_link(&state.bridge));
    for node in &state.nodes {
        note(net::remove_netns(&node.netns));
    }
    if let Some(switch) = &state.switch {
        note(net::remove_netns(switch));
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let dir = state.dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(Error::io(format!("remove {}", dir.display())))?;
    }
    Ok(())
}

/// Removes the lab called `name`, whatever state it is in. A lab directory without a state
/// file (a crash before the state was first saved, when nothing else had been made yet) is
/// removed too; then there is no state to return.
pub fn down(name: &str) -> Result<Option<LabState>> {
    validate_name(name)?;
    process::require_root("removing a lab")?;
    let dir = labs_dir().join(name);
    if dir.is_dir() && !LabState::state_file(&dir).exists() {
        let _lock = lock()?;
        std::fs::remove_dir_all(&dir).map_err(Error::io(format!("remove {}", dir.display())))?;
        return Ok(None);
    }
    let state = LabState::load(name)?;
    destroy(&state)?;
    Ok(Some(state))
}

impl LabState {
    /// Starts one process on node `i`, in its namespace and directory, and records it. Its
    /// output is appended to `<node dir>/<name>.log`.
    pub fn spawn(&mut self, i: usize, spec: &ProcessSpec) -> Result<()> {
        if self.containers.is_some() {
            let started = containers::spawn(self, i, spec)?;
            self.nodes[i].processes.push(started);
            return self.save();
        }
        let state = self;
        use std::os::unix::fs::OpenOptionsExt;
        let node = &state.nodes[i];
        let log = node.dir.join(format!("{}.log", spec.name));
        // The node's directory may belong to its server's user: no link of theirs is followed.
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&log)
            .map_err(Error::io(format!("open {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(Error::io(format!("open {}", log.display())))?;
        let program = process::find_program(&spec.program)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.program.clone());
        let user = spec.user.as_deref().map(process::user_ids).transpose()?;
        let mut cmd = process::command_in(&node.netns, &program, true, user)?;
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&node.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut child = cmd.spawn().map_err(|e| Error::Command {
            command: format!("{} (node {})", spec.program, node.name),
            stderr: e.to_string(),
        })?;
        let pid = child.id() as i32;
        // Reap it whenever it ends, so it never lingers as a zombie while we run.
        std::thread::spawn(move || child.wait());
        let start_time = process::start_time(pid).unwrap_or(0);
        state.nodes[i].processes.push(ProcessState {
            name: spec.name.clone(),
            pid,
            start_time,
            log,
            container: None,
        });
        state.save()
    }

    /// Fails, naming the node and showing its log, if a process of the lab has exited;
    /// `started`: when the processes were started, for the message.
    pub fn check_alive(&self, started: Instant) -> Result<()> {
        let state = self;
        for node in &state.nodes {
            for p in &node.processes {
                if !process::is_alive(p.pid, p.start_time) {
                    self.save_logs();
                    return Err(Error::NodeNotReady {
                        node: node.name.clone(),
                        secs: started.elapsed().as_secs(),
                        why: format!("{} exited", p.name),
                        log: p.log.clone(),
                        tail: process::tail(&p.log, 15),
                    });
                }
            }
        }
        Ok(())
    }

    /// The first path between two nodes that does not carry a TCP connection to `port`
    /// within `timeout`, as "n1 cannot reach n2 at 198.18.1.2:2380 (…)"; `None` if every
    /// node reaches every other (a refused connection counts as reached).
    pub fn lost_path(&self, port: u16, timeout: Duration) -> Result<Option<String>> {
        let nodes: Vec<_> = self
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.netns.clone(), n.addr))
            .collect();
        net::first_lost_path(&nodes, port, timeout)
    }

    /// Writes a container lab's server output to the processes' log files (a namespace
    /// lab's servers write there themselves).
    pub fn save_logs(&self) {
        if self.containers.is_some() {
            containers::save_logs(self);
        }
    }

    /// The error for node `i` not ready within `timeout`, with `why` and its log's tail.
    pub fn not_ready(&self, i: usize, timeout: Duration, why: String) -> Error {
        self.save_logs();
        let state = self;
        let log = state.nodes[i]
            .processes
            .first()
            .map(|p| p.log.clone())
            .unwrap_or_default();
        Error::NodeNotReady {
            node: state.nodes[i].name.clone(),
            secs: timeout.as_secs(),
            why,
            tail: process::tail(&log, 15),
            log,
        }
    }
}
