//! Faults: what a network fault does to the links between nodes ([`verdict`], with the
//! partition maths of [`grudge`]), the nftables tables that carry it ([`nft`]), and the
//! faults themselves, one file each, written against a node transport
//! ([`crate::hosts::Transport`]) and never against a lab or SSH. An [`Action`] is a fault as
//! scenario files and commands write it (`kill leader`, `partition n1|n2 n3`, `heal`);
//! starting one on a transport writes its markers into the record's event log and returns
//! what is [`InForce`], which is all it takes to undo it. What is in force can also be read
//! back from the nodes themselves ([`in_force`]), so `perseus heal` works from any terminal.

pub mod disk_error;
pub mod disk_full;
pub mod disk_slow;
pub mod disk_stall;
pub mod grudge;
pub mod isolate;
pub mod kill;
pub mod lose_unsynced;
pub mod loss;
pub mod nft;
pub mod one_way;
pub mod partition;
pub mod pause;
pub mod probe;
pub mod refuse;
pub mod target;
pub mod throttle;
pub mod verdict;

use crate::db::Database;
use crate::disk::Mode;
use crate::error::{Error, Result};
pub use crate::hosts::ProcessOp;
use crate::hosts::{self, Change, Probe, Transport};
use crate::lab::events;
use crate::record::faults::{self, FaultKind};
use std::time::Duration;
pub use target::Target;

/// How long a probe waits for a connection.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// One kind of fault: how actions name it and its arguments, what it changes on a node and
/// how that is undone, whatever transport carries it ([`hosts::Transport`]). [`FAULTS`]
/// lists every one; commands, scenario files, `status`, `heal` and the README's fault table
/// all come from it.
pub trait Fault: Send + Sync {
    /// Its marker vocabulary; its `name` is how actions and commands call it.
    fn kind(&self) -> &'static FaultKind;
    /// One line for `--help` and the README.
    fn about(&self) -> &'static str;
    /// The command that undoes it on its own, with one line for `--help` (`rejoin`, …);
    /// `None`: only `heal` undoes it.
    fn undone_by(&self) -> Option<(&'static str, &'static str)> {
        None
    }
    /// What may follow its name in an action on three nodes `n1` … `n3`, as an example for
    /// help and for the tests every fault goes through.
    fn example(&self) -> &'static str {
        "n2"
    }
    /// What follows its name in an action, for help and for its command's arguments.
    fn params(&self) -> &'static [ParamDoc] {
        &[TARGET_PARAM]
    }
    /// Parses what follows its name in an action: its target, and the rest as its own
    /// parameter, in the form it reads back ([`Param`]).
    fn parse(&self, args: &[&str]) -> std::result::Result<(Target, Param), String> {
        Ok((one_target(self.kind().name, args)?, Param::default()))
    }
    /// The action as text, as [`Fault::parse`] reads it back.
    fn render(&self, target: &Target, param: &Param) -> String {
        match param.text() {
            "" => format!("{} {target}", self.kind().name),
            p => format!("{} {target} {p}", self.kind().name),
        }
    }
    /// The nodes it holds and the target text of its markers, once the action's target is
    /// resolved to `nodes` among the nodes called `names`.
    fn place(
        &self,
        names: &[String],
        nodes: Vec<usize>,
        param: &Param,
    ) -> Result<(Vec<usize>, String)> {
        let mut text = nodes
            .iter()
            .map(|i| names[*i].as_str())
            .collect::<Vec<_>>()
            .join(" ");
        if !param.text().is_empty() {
            text.push(' ');
            text.push_str(param.text());
        }
        Ok((nodes, text))
    }
    /// What it acts on, and so what a transport must be able to do to carry it.
    fn acts_on(&self) -> ActsOn {
        ActsOn::Rules
    }
    /// Whether it acts on the node's traffic with its clients as well (cuts or slows it),
    /// and so on the connection that loads its changes, which the transport must then
    /// spare ([`Topology::keep`]).
    fn reaches_clients(&self) -> bool {
        false
    }
    /// What it does to the links between the nodes called `names` (and anyone else),
    /// placed as `f`: each a one-way link with its verdict ([`verdict`]). `None` for a
    /// fault that is no set of links.
    fn links(
        &self,
        _names: &[String],
        _f: &InForce,
        _param: &Param,
    ) -> Option<Result<Vec<verdict::Link>>> {
        None
    }
    /// The nftables ruleset that puts it in force on `node`, as table `table`, whatever
    /// carries the rules there: by default, the links of [`Fault::links`] that `node`
    /// judges. `None` for a fault that does not act through rules alone.
    fn rules(
        &self,
        topology: &Topology,
        f: &InForce,
        param: &Param,
        node: usize,
        table: &str,
    ) -> Option<Result<String>> {
        let links = self.links(&topology.names, f, param)?;
        Some(links.map(|links| {
            verdict::render(
                table,
                &f.target,
                node,
                &links,
                &f.nodes,
                &topology.addrs,
                topology.keep,
            )
        }))
    }
    /// The script (run as root in `node`'s network namespace) that puts it in force there,
    /// and what it reads on its standard input; it loads table `table`, with the target
    /// text as its comment, whatever else it does. By default: its [`Fault::rules`].
    /// `None` for a fault on processes.
    fn put(
        &self,
        topology: &Topology,
        f: &InForce,
        param: &Param,
        node: usize,
        table: &str,
    ) -> Option<Result<(String, String)>> {
        let rules = self.rules(topology, f, param, node, table)?;
        Some(rules.map(|r| (hosts::load_table(table), r)))
    }
    /// The script that undoes what [`Fault::put`] did on a node, found in force as table
    /// `table`; it fails if anything of it is left. By default it removes the table.
    fn undo(&self, table: &str) -> String {
        hosts::remove_table(table)
    }
    /// Connection attempts that come out as they say once it is in force on `node` of
    /// `n` nodes, tried where the transport can try them; a fault whose attempts fail is
    /// not in force.
    fn probes(&self, _node: usize, _n: usize) -> Vec<Probe> {
        Vec::new()
    }
    /// The mode it puts its nodes' disks in, for a fault on disks ([`ActsOn::Disk`]).
    fn disk_mode(&self, _param: &Param) -> Option<Mode> {
        None
    }
    /// Its parameter, if a disk in `mode` is in its hands: how it is read back from the
    /// disks.
    fn disk_param(&self, _mode: Mode) -> Option<Param> {
        None
    }
}

/// What a fault acts on on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActsOn {
    /// The node's network: a change in its namespace ([`Fault::put`]).
    Rules,
    /// The node's server processes: signalled, stopped and started.
    Processes(ProcessOp),
    /// The node's disk ([`hosts::Disks`]): its mode set ([`Fault::disk_mode`]). A power
    /// cut ([`Mode::Cut`]) also kills the servers and drops what was unsynced. Undoing any
    /// of them starts again the servers of its nodes that are not running (killed by the
    /// cut, or exited on a failed write).
    Disk,
}

/// What a network fault's rules are written against: every node's name and address, in
/// order, and a connection the rules must leave open (the SSH session that loads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub names: Vec<String>,
    /// Each node's addresses: a node made of several hosts has more than one.
    pub addrs: Vec<Vec<std::net::Ipv4Addr>>,
    /// The connection that carries the changes (its far end's address and this side's
    /// TCP port), which a fault that reaches the clients must spare.
    pub keep: Option<(std::net::IpAddr, u16)>,
}

impl Topology {
    /// The nodes of `layout`, keeping `keep` open.
    pub fn of(layout: &crate::lab::Layout, keep: Option<(std::net::IpAddr, u16)>) -> Topology {
        Topology {
            names: layout.nodes.iter().map(|n| n.name.clone()).collect(),
            addrs: layout.addresses(),
            keep,
        }
    }

    /// The addresses of every node but `node`, and but the nodes of `skip`.
    pub fn peers(&self, node: usize, skip: &[usize]) -> Vec<std::net::Ipv4Addr> {
        (0..self.addrs.len())
            .filter(|i| *i != node && !skip.contains(i))
            .flat_map(|i| self.addrs[i].iter().copied())
            .collect()
    }
}

impl std::fmt::Debug for dyn Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind().name)
    }
}

impl PartialEq for dyn Fault {
    fn eq(&self, other: &Self) -> bool {
        self.kind().name == other.kind().name
    }
}

impl Eq for dyn Fault {}

/// Every fault, in the order `--help`, `perseus list faults` and the README show them.
pub static FAULTS: &[&dyn Fault] = &[
    &isolate::Isolate,
    &isolate::IsolateAll,
    &refuse::Refuse,
    &partition::Partition,
    &one_way::OneWay,
    &loss::Loss,
    &throttle::Throttle,
    &kill::Kill,
    &pause::Pause,
    &disk_stall::DiskStall,
    &disk_slow::DiskSlow,
    &disk_error::DiskError,
    &disk_full::DiskFull,
    &lose_unsynced::LoseUnsynced,
];

/// The fault called `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Fault> {
    FAULTS.iter().copied().find(|f| f.kind().name == name)
}

/// The fault whose marker vocabulary is `kind`.
pub fn of_kind(kind: &FaultKind) -> &'static dyn Fault {
    by_name(kind.name).expect("every marker kind has its fault (a test checks)")
}

/// One parameter of a fault, as help shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamDoc {
    /// Its placeholder: `NODE`, `PERCENT`.
    pub name: &'static str,
    pub help: &'static str,
    /// Whether it takes one word or more (the last parameter only).
    pub many: bool,
}

/// The usual parameter: one target.
pub const TARGET_PARAM: ParamDoc = ParamDoc {
    name: "NODE",
    help:
        "the target: n1, n2, …, leader or follower (as the database names them now), random, or all",
    many: false,
};

/// One target, the only argument of most faults.
pub fn one_target(verb: &str, args: &[&str]) -> std::result::Result<Target, String> {
    match args {
        [t] => t.parse(),
        _ => Err(format!(
            "'{verb}' takes one target: a node name, leader, follower, random or all"
        )),
    }
}

/// What a fault takes besides its target, in the one form its own [`Fault::parse`] wrote
/// (`30%`, `n1|n2 n3`, `100kbit`): each fault reads it back into its own typed value, as
/// Toxiproxy's toxics decode their own attributes. Empty for most faults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Param(String);

impl Param {
    /// A parameter in its fault's own form.
    pub fn new(text: impl Into<String>) -> Param {
        Param(text.into())
    }

    pub fn text(&self) -> &str {
        &self.0
    }
}

/// A fault to start or undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start `fault` on `target`, with what else it takes.
    Start {
        fault: &'static dyn Fault,
        target: Target,
        param: Param,
    },
    /// Undo the faults of its kind in force on `target` (`rejoin n2`, `restart all`).
    End {
        fault: &'static dyn Fault,
        target: Target,
    },
    /// Undo every fault in force.
    Heal,
}

/// A fault in force: what its markers say and the nodes it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce {
    pub kind: &'static FaultKind,
    /// The target text of its markers (`n2`, `n2 30%`, `n1|n2 n3`).
    pub target: String,
    pub nodes: Vec<usize>,
}

impl InForce {
    pub fn fault(&self) -> &'static dyn Fault {
        of_kind(self.kind)
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    /// A fault's name and its arguments (`isolate n2`, `loss n2 30%`, `partition halves`),
    /// the word that undoes one and a target (`rejoin n2`, `restart all`), or `heal`; a
    /// target is a node name, `leader`, `follower`, `random` or `all`.
    fn from_str(text: &str) -> std::result::Result<Action, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let Some((&verb, args)) = words.split_first() else {
            return Err("an empty fault".into());
        };
        if verb == "heal" {
            return if args.is_empty() {
                Ok(Action::Heal)
            } else {
                Err("'heal' takes nothing: it undoes every fault in force".into())
            };
        }
        if let Some(fault) = FAULTS
            .iter()
            .copied()
            .find(|f| f.undone_by().is_some_and(|(w, _)| w == verb))
        {
            let target = one_target(verb, args)?;
            if matches!(target, Target::Leader | Target::Follower | Target::Random) {
                return Err(format!("'{verb} {target}' is ambiguous once the fault is in force: name the node, or use 'all' or 'heal'"));
            }
            return Ok(Action::End { fault, target });
        }
        let fault = by_name(verb).ok_or_else(|| {
            let known: Vec<&str> = FAULTS.iter().map(|f| f.kind().name).collect();
            let undo: Vec<&str> = FAULTS
                .iter()
                .filter_map(|f| f.undone_by().map(|(w, _)| w))
                .collect();
            format!(
                "unknown fault '{verb}'; faults: {}, and {}, heal",
                known.join(", "),
                undo.join(", ")
            )
        })?;
        let (target, param) = fault.parse(args)?;
        Ok(Action::Start {
            fault,
            target,
            param,
        })
    }
}

impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("'{text}': {e}")))
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Start {
                fault,
                target,
                param,
            } => f.write_str(&fault.render(target, param)),
            Action::End { fault, target } => {
                let word = fault.undone_by().map_or("heal", |(w, _)| w);
                write!(f, "{word} {target}")
            }
            Action::Heal => f.write_str("heal"),
        }
    }
}

/// A small seeded generator for `random` targets, so a run can be repeated exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// A number in `0..n` (splitmix64).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// How long `leader` and `follower` wait for the database to name a leader.
const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The nodes a target names now among the nodes of `layout` (`leader` and `follower` as
/// the database reports them, once it names a leader, within [`LEADER_WAIT`]).
pub async fn resolve_in(
    target: &Target,
    layout: &crate::lab::Layout,
    db: &dyn Database,
    rng: &mut Rng,
) -> Result<Vec<usize>> {
    let n = layout.nodes.len();
    // A leader is waited for a while: a fault just healed may have cost an election.
    let leader = || async {
        let Some(l) = db.leadership() else {
            return Err(Error::Database(format!(
                "{} has no leader, so '{target}' names no node",
                db.name()
            )));
        };
        let deadline = std::time::Instant::now() + LEADER_WAIT;
        loop {
            if let Some(found) = l.leader(layout).await {
                return Ok(found);
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Database(format!(
                    "{} reported no leader for {} s, so '{target}' names no node",
                    db.name(),
                    LEADER_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    };
    Ok(match target {
        Target::Node(name) => vec![layout
            .nodes
            .iter()
            .position(|m| m.name == *name)
            .ok_or_else(|| Error::NoSuchNode {
                node: name.clone(),
                lab: layout.lab.clone(),
                nodes: layout
                    .nodes
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?],
        Target::Leader => vec![leader().await?],
        Target::Follower => {
            let l = leader().await?;
            vec![if l == 0 { 1.min(n - 1) } else { 0 }]
        }
        Target::Random => vec![rng.below(n)],
        Target::All => (0..n).collect(),
    })
}

/// Writes an event into `host`'s record, where it keeps one.
fn mark(host: &dyn Transport, verb: &str, text: &str) -> Result<()> {
    match host.events_dir() {
        Some(dir) => events::append(&dir, verb, text).map(|_| ()),
        None => Ok(()),
    }
}

/// The nodes' names, in order.
fn names_of(host: &dyn Transport) -> Vec<String> {
    host.layout().nodes.into_iter().map(|n| n.name).collect()
}

/// Starts a fault on `host`: writes its starting marker, puts it in force (checked where
/// the transport can), writes its started marker. On error, whatever was put in place is
/// undone again and the start is withdrawn from the record.
pub async fn start(
    action: &Action,
    host: &mut dyn Transport,
    db: &'static dyn Database,
    rng: &mut Rng,
) -> Result<InForce> {
    let _guard = host.begin().await?;
    let Action::Start {
        fault,
        target,
        param,
    } = action
    else {
        return Err(Error::Invalid(format!("'{action}' does not start a fault")));
    };
    let kind = fault.kind();
    let resolved = resolve_in(target, &host.layout(), db, rng).await?;
    let (nodes, text) = fault.place(&names_of(host), resolved, param)?;
    let f = InForce {
        kind,
        target: text,
        nodes,
    };
    let clash = in_force(host).await?.into_iter().find(|o| {
        // A disk has one mode at a time.
        let same = o.kind == f.kind
            || (o.fault().acts_on() == ActsOn::Disk && fault.acts_on() == ActsOn::Disk);
        same && o.nodes.iter().any(|n| f.nodes.contains(n))
    });
    if let Some(old) = clash {
        return Err(Error::Invalid(format!(
            "{} {} is in force already: undo it first (perseus heal)",
            old.target, old.kind.started
        )));
    }
    mark(host, kind.starting, &f.target)?;
    if let Err(e) = put_in_force(*fault, host, &f, param, db.client_port()).await {
        let _ = take_away(&f, host).await;
        // The starting marker is in the record: say the fault never was.
        let _ = mark(
            host,
            faults::ABORTED,
            &format!("{} {}", kind.starting, f.target),
        );
        return Err(e);
    }
    mark(host, kind.started, &f.target)?;
    Ok(f)
}

/// The transport's ability to make disks sick, which `fault` needs.
fn disks_for<'h>(
    host: &'h mut dyn Transport,
    fault: &dyn Fault,
) -> Result<&'h mut dyn hosts::Disks> {
    host.disks().ok_or_else(|| {
        Error::Invalid(format!(
            "{}: this transport cannot reach the nodes' disks",
            fault.kind().name
        ))
    })
}

/// The transport's ability to stop and start servers, which `fault` needs.
fn processes_for<'h>(
    host: &'h mut dyn Transport,
    fault: &dyn Fault,
) -> Result<&'h mut dyn hosts::Processes> {
    host.processes().ok_or_else(|| {
        Error::Invalid(format!(
            "{}: this transport cannot stop or start the servers",
            fault.kind().name
        ))
    })
}

/// Puts `f` in force on each of its nodes, then tries its probes.
async fn put_in_force(
    fault: &'static dyn Fault,
    host: &mut dyn Transport,
    f: &InForce,
    param: &Param,
    port: u16,
) -> Result<()> {
    match fault.acts_on() {
        ActsOn::Processes(op) => return processes_for(host, fault)?.stop(&f.nodes, op).await,
        ActsOn::Disk => {
            let mode = fault.disk_mode(param).ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: no disk mode in '{}'",
                    f.kind.name,
                    param.text()
                ))
            })?;
            if mode == Mode::Cut {
                // Killed first: nothing written after the cut reaches the disk.
                processes_for(host, fault)?
                    .stop(&f.nodes, ProcessOp::Kill)
                    .await?;
                let dropped = disks_for(host, fault)?.drop_unsynced(&f.nodes).await?;
                // What the cut lost goes into the record beside its markers.
                let names = names_of(host);
                let lost: Vec<String> = f
                    .nodes
                    .iter()
                    .zip(&dropped)
                    .map(|(&i, b)| format!("{} {b}", names[i]))
                    .collect();
                mark(
                    host,
                    events::MARK,
                    &format!("unsynced bytes dropped: {}", lost.join(", ")),
                )?;
            }
            return disks_for(host, fault)?.set(&f.nodes, mode).await;
        }
        ActsOn::Rules => {}
    }
    let layout = host.layout();
    for &node in &f.nodes {
        let keep = if fault.reaches_clients() {
            host.kept(node).await?
        } else {
            None
        };
        let topology = Topology::of(&layout, keep);
        let table = host.table(&table(f.kind));
        let (put, stdin) = fault
            .put(&topology, f, param, node, &table)
            .unwrap_or_else(|| {
                Err(Error::Invalid(format!(
                    "{} is no network fault",
                    f.kind.name
                )))
            })?;
        let undo = fault.undo(&table);
        let change = Change {
            table,
            put,
            stdin,
            undo,
        };
        host.put(node, &change).await?;
    }
    let n = layout.nodes.len();
    let probes: Vec<Probe> = f.nodes.iter().flat_map(|&i| fault.probes(i, n)).collect();
    if probes.is_empty() {
        return Ok(());
    }
    let Some(outcomes) = host.probe(&probes, port, PROBE_TIMEOUT).await else {
        return Ok(());
    };
    let name = |i: Option<usize>| i.map_or("client", |i| layout.nodes[i].name.as_str());
    for (p, got) in probes.iter().zip(outcomes?) {
        if got != p.connects {
            let what = format!("{} → {}", name(p.from), name(Some(p.to)));
            return Err(Error::FaultNotInForce(if p.connects {
                format!(
                    "{what} cannot connect, but must still once {} is in force",
                    f.kind.name
                )
            } else {
                format!("{what} still connects after the rules went in")
            }));
        }
    }
    Ok(())
}

/// Undoes whatever of `f` is in force on its nodes.
async fn take_away(f: &InForce, host: &mut dyn Transport) -> Result<()> {
    let fault = f.fault();
    match fault.acts_on() {
        ActsOn::Processes(op) => return processes_for(host, fault)?.resume(&f.nodes, op).await,
        ActsOn::Disk => {
            disks_for(host, fault)?.set(&f.nodes, Mode::Healthy).await?;
            // The disk is well again: a server it stopped (cut power, or a server that
            // exited on a failed write) starts again, as a supervisor would start it.
            let stopped: Vec<usize> = processes_for(host, fault)?
                .held(ProcessOp::Kill)
                .await?
                .into_iter()
                .filter(|i| f.nodes.contains(i))
                .collect();
            if !stopped.is_empty() {
                processes_for(host, fault)?
                    .resume(&stopped, ProcessOp::Kill)
                    .await?;
            }
            return Ok(());
        }
        ActsOn::Rules => {}
    }
    for &node in &f.nodes {
        let out = host.read(node, hosts::LIST_RULESET).await?;
        for (t, _) in nft::parse_tables(&out) {
            if kind_of_table(&t) == Some(f.kind) {
                host.undo(node, &t, &fault.undo(&t)).await?;
            }
        }
    }
    Ok(())
}

/// Undoes a fault in force on `host`: writes its ending marker, undoes it, writes its
/// ended marker. Only what is still in force is undone.
pub async fn end(f: &InForce, host: &mut dyn Transport) -> Result<()> {
    let _guard = host.begin().await?;
    // Another command may have undone all or part of it meanwhile (`restart n1` after
    // `kill all`).
    let mut still: Vec<usize> = in_force(host)
        .await?
        .into_iter()
        .filter(|g| g.kind == f.kind)
        .flat_map(|g| g.nodes)
        .filter(|n| f.nodes.contains(n))
        .collect();
    still.sort_unstable();
    still.dedup();
    if still.is_empty() {
        return Ok(());
    }
    let f = &InForce {
        nodes: still,
        ..f.clone()
    };
    mark(host, f.kind.ending, &f.target)?;
    take_away(f, host).await?;
    mark(host, f.kind.ended, &f.target)
}

/// `fault`'s [`Fault::example`] placed among the nodes called `names`: the action, and
/// what it holds once started.
pub fn example(fault: &'static dyn Fault, names: &[String]) -> Result<(Param, InForce)> {
    let text = format!("{} {}", fault.kind().name, fault.example());
    let action: Action = text
        .parse()
        .map_err(|e: String| Error::Invalid(format!("{text}: {e}")))?;
    let Action::Start { target, param, .. } = action else {
        return Err(Error::Invalid(format!("{text} starts no fault")));
    };
    let nodes = match &target {
        Target::Node(n) => vec![names.iter().position(|m| m == n).unwrap_or(0)],
        _ => (0..names.len()).collect(),
    };
    let (nodes, target) = fault.place(names, nodes, &param)?;
    let f = InForce {
        kind: fault.kind(),
        target,
        nodes,
    };
    Ok((param, f))
}

/// The nftables table that holds a fault of this kind (a transport may add a suffix).
pub fn table(kind: &FaultKind) -> String {
    format!("perseus_{}", kind.name.replace('-', "_"))
}

/// The kind of fault whose table is called `name`: its [`table`], or that and a suffix
/// of `_` and 8 hex digits.
pub fn kind_of_table(name: &str) -> Option<&'static FaultKind> {
    let base = match name.rsplit_once('_') {
        Some((base, suffix))
            if suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            base
        }
        _ => name,
    };
    FAULTS.iter().map(|f| f.kind()).find(|k| table(k) == base)
}

/// The faults in force on `host`, read from its nodes (their tables and comments) and
/// from its servers' processes (paused or gone), as far as the transport can tell.
pub async fn in_force(host: &mut dyn Transport) -> Result<Vec<InForce>> {
    let names = names_of(host);
    let mut found: Vec<InForce> = Vec::new();
    for i in 0..names.len() {
        let out = host.read(i, hosts::LIST_RULESET).await?;
        for (name, comment) in nft::parse_tables(&out) {
            let Some(kind) = kind_of_table(&name) else {
                continue;
            };
            match found
                .iter_mut()
                .find(|f| f.kind == kind && f.target == comment)
            {
                Some(f) => f.nodes.push(i),
                None => found.push(InForce {
                    kind,
                    target: comment,
                    nodes: vec![i],
                }),
            }
        }
    }
    // One per node, as for processes below. A node whose power is cut is that fault's,
    // not a kill's.
    let mut cut = Vec::new();
    if let Some(d) = host.disks() {
        for (i, mode) in d.modes().await?.into_iter().enumerate() {
            let Some((fault, param)) = FAULTS
                .iter()
                .find_map(|f| f.disk_param(mode).map(|p| (*f, p)))
            else {
                continue;
            };
            if mode == Mode::Cut {
                cut.push(i);
            }
            let (nodes, target) = fault.place(&names, vec![i], &param)?;
            found.push(InForce {
                kind: fault.kind(),
                target,
                nodes,
            });
        }
    }
    // One per node: a process state cannot tell `kill n2` + `kill n3` from `kill all`, and
    // the per-node commands are the common case (their end markers must pair with them).
    if let Some(p) = host.processes() {
        for fault in FAULTS {
            let ActsOn::Processes(op) = fault.acts_on() else {
                continue;
            };
            for node in p.held(op).await? {
                if op == ProcessOp::Kill && cut.contains(&node) {
                    continue;
                }
                found.push(InForce {
                    kind: fault.kind(),
                    target: names[node].clone(),
                    nodes: vec![node],
                });
            }
        }
    }
    Ok(found)
}

/// A table of Perseus's fault in force on a node, as read back from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInForce {
    pub name: String,
    /// Its comment: the target text of its fault's markers.
    pub target: String,
    /// What its rules do, in words, read from the rules themselves ([`verdict::read`]);
    /// empty for a table that only marks a change outside nftables (`throttle`'s).
    pub does: String,
}

/// The tables of Perseus's faults in force on every node of `host`, by node name.
pub async fn tables(host: &mut dyn Transport) -> Result<Vec<(String, Vec<TableInForce>)>> {
    let layout = host.layout();
    let names: Vec<String> = layout.nodes.iter().map(|n| n.name.clone()).collect();
    let addrs = layout.addresses();
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let listing = host.read(i, hosts::LIST_RULESET).await?;
        let comments = nft::parse_tables(&listing);
        let ours = nft::table_texts(&listing)
            .into_iter()
            .filter(|(t, _)| kind_of_table(t).is_some())
            .map(|(t, text)| TableInForce {
                target: comments
                    .iter()
                    .find(|(c, _)| *c == t)
                    .map(|(_, c)| c.clone())
                    .unwrap_or_default(),
                does: verdict::describe(&verdict::read(&text, i, &addrs), &names),
                name: t,
            })
            .collect();
        out.push((name.clone(), ours));
    }
    Ok(out)
}

/// Runs an action on `host`: starts a fault, or undoes the matching faults in force
/// (`rejoin n2`, `heal`), reading what is in force from the nodes. Returns what was
/// started or undone.
pub async fn act(
    action: &Action,
    host: &mut dyn Transport,
    db: &'static dyn Database,
    rng: &mut Rng,
) -> Result<Vec<InForce>> {
    match action {
        Action::Start { .. } => Ok(vec![start(action, host, db, rng).await?]),
        Action::End { fault, target } => {
            let nodes = resolve_in(target, &host.layout(), db, rng).await?;
            let matching: Vec<InForce> = in_force(host)
                .await?
                .into_iter()
                .filter(|f| f.kind == fault.kind() && f.nodes.iter().any(|n| nodes.contains(n)))
                .collect();
            for f in &matching {
                end(f, host).await?;
            }
            Ok(matching)
        }
        Action::Heal => {
            let all = in_force(host).await?;
            for f in all.iter().rev() {
                end(f, host).await?;
            }
            Ok(all)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_and_print_back() {
        for text in [
            "isolate n2",
            "isolate leader",
            "isolate-all follower",
            "one-way n1",
            "kill random",
            "pause all",
            "loss n2 30%",
            "partition halves",
            "partition n1|n2 n3",
            "rejoin n2",
            "restart all",
            "resume n3",
            "heal",
        ] {
            let a: Action = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(a.to_string(), text);
        }
    }

    #[test]
    fn bad_actions_say_what_is_wrong() {
        let err = |t: &str| t.parse::<Action>().unwrap_err();
        assert!(err("explode n2").contains("unknown fault 'explode'"));
        assert!(err("loss n2").contains("percentage"));
        assert!(err("loss n2 300%").contains("not a percentage"));
        assert!(err("kill").contains("one target"));
        assert!(err("restart leader").contains("ambiguous"));
        assert!(err("partition").contains("shape"));
        assert!(err("heal n2").contains("takes nothing"));
    }

    #[test]
    fn a_seed_gives_the_same_random_targets() {
        let picks = |seed| {
            let mut r = Rng::new(seed);
            (0..20).map(|_| r.below(5)).collect::<Vec<_>>()
        };
        assert_eq!(picks(7), picks(7));
        assert_ne!(picks(7), picks(8));
        assert!(picks(7).iter().all(|p| *p < 5));
    }

    /// Every network fault of the registry writes its change from a topology alone, so any
    /// transport carries it (a lab, SSH); each change loads the fault's own table, which
    /// its undo removes and which names its kind when read back, suffix or not.
    #[test]
    fn every_network_fault_is_one_change_written_once_for_every_transport() {
        let topology = Topology {
            names: (1..=3).map(|i| format!("n{i}")).collect(),
            addrs: (1..=3)
                .map(|i| vec![std::net::Ipv4Addr::new(198, 18, 1, i)])
                .collect(),
            keep: Some(("198.18.1.254".parse().unwrap(), 22)),
        };
        for fault in FAULTS {
            let (param, f) = example(*fault, &topology.names).unwrap();
            let nodes = f.nodes.clone();
            let t = format!("{}_0000abcd", table(fault.kind()));
            assert_eq!(kind_of_table(&t), Some(fault.kind()), "{t}");
            assert_eq!(kind_of_table(&table(fault.kind())), Some(fault.kind()));
            let put = fault.put(&topology, &f, &param, nodes[0], &t);
            match fault.acts_on() {
                ActsOn::Processes(_) | ActsOn::Disk => assert!(put.is_none(), "{fault:?}"),
                ActsOn::Rules => {
                    let (script, rules) = put.expect("a network fault has a change").unwrap();
                    assert!(
                        script.contains(&format!("nft list table inet {t}")),
                        "{fault:?}: {script}"
                    );
                    assert!(
                        fault
                            .undo(&t)
                            .contains(&format!("nft delete table inet {t}")),
                        "{fault:?}"
                    );
                    let tables = nft::parse_tables(&rules);
                    assert_eq!(tables.len(), 1, "{fault:?}: {rules}");
                    assert_eq!(tables[0].0, t, "{fault:?}");
                    // Only a fault that reaches the clients spares the kept session.
                    assert_eq!(
                        rules.contains("198.18.1.254"),
                        fault.reaches_clients(),
                        "{fault:?}: {rules}"
                    );
                    // What its rules do reads back as the links it says it cuts, each
                    // judged once, on whichever node holds it.
                    if let Some(links) = fault.links(&topology.names, &f, &param) {
                        let mut want = links.unwrap();
                        want.sort();
                        want.dedup();
                        let mut back: Vec<verdict::Link> = f
                            .nodes
                            .iter()
                            .flat_map(|&h| {
                                let r = fault.rules(&topology, &f, &param, h, &t).unwrap().unwrap();
                                verdict::read(&r, h, &topology.addrs)
                            })
                            .collect();
                        back.sort();
                        assert_eq!(back, want, "{fault:?}");
                        assert!(!want.is_empty(), "{fault:?}");
                    }
                }
            }
        }
    }
}
