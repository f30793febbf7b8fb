//! Faults: what to cut (pure partition maths, [`grudge`]), how to cut it in a node's
//! namespace ([`nft`]), how to check it is cut ([`probe`]), and the faults themselves, one
//! file each. An [`Action`] is a fault as scenario files and commands write it
//! (`kill leader`, `partition n1|n2 n3`, `heal`); starting one writes its markers into the
//! lab's event log and returns what is [`InForce`], which is all it takes to undo it. What is
//! in force can also be read back from the lab itself ([`in_force`]), so `perseus heal` works
//! from any terminal.

pub mod grudge;
pub mod isolate;
pub mod kill;
pub mod loss;
pub mod nft;
pub mod one_way;
pub mod partition;
pub mod pause;
pub mod probe;
pub mod refuse;
pub mod target;

use crate::db::Database;
use crate::error::{Error, Result};
use crate::lab::{events, LabState};
use crate::record::faults::{self, FaultKind};
pub use target::Target;

/// One kind of fault: how actions name it and its arguments, how it is put in force on a
/// lab and undone, and how it is found in force. [`FAULTS`] lists every one; commands,
/// scenario files, `status`, `heal` and the README's fault table all come from it.
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
    /// What follows its name in an action, for help and for its command's arguments.
    fn params(&self) -> &'static [ParamDoc] {
        &[TARGET_PARAM]
    }
    /// Parses what follows its name in an action.
    fn parse(&self, args: &[&str]) -> std::result::Result<(Target, Param), String> {
        Ok((one_target(self.kind().name, args)?, Param::None))
    }
    /// The action as text, as [`Fault::parse`] reads it back.
    fn render(&self, target: &Target, _param: &Param) -> String {
        format!("{} {target}", self.kind().name)
    }
    /// The nodes it holds and the target text of its markers, once the action's target is
    /// resolved to `nodes`.
    fn place(
        &self,
        lab: &LabState,
        nodes: Vec<usize>,
        _param: &Param,
    ) -> Result<(Vec<usize>, String)> {
        let text = names(lab, &nodes);
        Ok((nodes, text))
    }
    /// Puts it in force on the nodes of `f` and checks it is, where it can; may block.
    /// `port`: the database's client port, for checks by connection.
    fn apply(&self, lab: &LabState, f: &InForce, param: &Param, port: u16) -> Result<()>;
    /// Undoes it on the nodes of `f`, and checks nothing of it is left; may block. By
    /// default it removes its nftables table ([`table`]).
    fn undo(&self, lab: &LabState, f: &InForce, _db: &dyn Database) -> Result<()> {
        nft_undo(lab, f)
    }
    /// The nodes where the state of their processes shows it in force (paused, killed);
    /// `None` for faults that live in nftables tables, found by [`table`].
    fn held_by_processes(&self, _lab: &LabState) -> Option<Vec<usize>> {
        None
    }
    /// What it acts on, and so what a transport must be able to do to carry it.
    fn acts_on(&self) -> ActsOn {
        ActsOn::Rules
    }
    /// Whether its rules cut the node off from its clients as well, and so from the
    /// connection that loads them, which the transport must then keep
    /// ([`Topology::keep`]).
    fn cuts_clients(&self) -> bool {
        false
    }
    /// The nftables ruleset that puts it in force on `node`, as table `table`, whatever
    /// carries the rules there (a lab's namespace, a machine over SSH); `None` for a fault
    /// that acts on processes instead.
    fn rules(
        &self,
        _topology: &Topology,
        _f: &InForce,
        _param: &Param,
        _node: usize,
        _table: &str,
    ) -> Option<Result<String>> {
        None
    }
}

/// What a fault acts on on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActsOn {
    /// The node's network: an nftables table in its namespace ([`Fault::rules`]).
    Rules,
    /// The node's server processes: signalled, stopped and started.
    Processes(ProcessOp),
}

/// What a fault on processes does to a node's server, until it is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessOp {
    /// Freezes it (SIGSTOP), and thaws it again (SIGCONT).
    Pause,
    /// Kills it (SIGKILL), and starts it again: the transport must know how.
    Kill,
}

/// What a network fault's rules are written against: every node's name and address, in
/// order, and a connection the rules must leave open (the SSH session that loads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub names: Vec<String>,
    pub addrs: Vec<std::net::Ipv4Addr>,
    pub keep: Option<(std::net::IpAddr, u16)>,
}

impl Topology {
    /// The nodes of `layout`, keeping `keep` open.
    pub fn of(layout: &crate::lab::Layout, keep: Option<(std::net::IpAddr, u16)>) -> Topology {
        Topology {
            names: layout.nodes.iter().map(|n| n.name.clone()).collect(),
            addrs: layout.nodes.iter().map(|n| n.addr).collect(),
            keep,
        }
    }

    /// The addresses of every node but `node`, and but the nodes of `skip`.
    pub fn peers(&self, node: usize, skip: &[usize]) -> Vec<std::net::Ipv4Addr> {
        (0..self.addrs.len())
            .filter(|i| *i != node && !skip.contains(i))
            .map(|i| self.addrs[i])
            .collect()
    }
}

/// Loads `fault`'s rules on every node of `f` in the lab.
pub fn load_rules(fault: &dyn Fault, lab: &LabState, f: &InForce, param: &Param) -> Result<()> {
    let topology = Topology::of(&lab.layout(), None);
    for &node in &f.nodes {
        let rules = fault
            .rules(&topology, f, param, node, &table(f.kind))
            .unwrap_or_else(|| {
                Err(Error::Invalid(format!(
                    "{} is no network fault",
                    f.kind.name
                )))
            })?;
        nft::apply(&lab.nodes[node].netns, &rules)?;
    }
    Ok(())
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
    &kill::Kill,
    &pause::Pause,
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

/// What a fault takes besides its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    None,
    /// A share of packets, 1 to 100 (`loss`).
    Percent(u8),
    /// Groups (`n1|n2 n3`) or a shape name (`partition`).
    Groups(String),
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

/// The nodes a target names now (`leader` and `follower` as the database reports them).
pub async fn resolve(
    target: &Target,
    lab: &LabState,
    db: &dyn Database,
    rng: &mut Rng,
) -> Result<Vec<usize>> {
    resolve_in(target, &lab.layout(), db, rng).await
}

/// [`resolve`] among the nodes of `layout` (a lab's, or a cluster's that Perseus did not
/// start).
pub async fn resolve_in(
    target: &Target,
    layout: &crate::lab::Layout,
    db: &dyn Database,
    rng: &mut Rng,
) -> Result<Vec<usize>> {
    let n = layout.nodes.len();
    let leader = || async {
        let found = match db.leadership() {
            Some(l) => l.leader(layout).await,
            None => None,
        };
        found.ok_or_else(|| {
            Error::Database(format!(
                "{} reports no leader right now, so '{target}' names no node",
                db.name()
            ))
        })
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

/// The nodes' names, space-separated: the target text of most markers.
pub fn names(lab: &LabState, nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|i| lab.nodes[*i].name.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Starts a fault: writes its starting marker, puts it in force (checked where it can be),
/// writes its started marker. On error, whatever was put in place is undone again.
pub async fn start(
    action: &Action,
    lab: &LabState,
    db: &'static dyn Database,
    rng: &mut Rng,
) -> Result<InForce> {
    // Under the lab's lock, from the lab as it is on disk now (another command, or an
    // earlier restart, may have changed its processes since `lab` was read).
    let _lock = lab.lock()?;
    let lab = &LabState::load(&lab.name)?;
    let Action::Start {
        fault,
        target,
        param,
    } = action
    else {
        return Err(Error::Invalid(format!("'{action}' does not start a fault")));
    };
    let kind = fault.kind();
    let resolved = resolve(target, lab, db, rng).await?;
    let (nodes, text) = fault.place(lab, resolved, param)?;
    let f = InForce {
        kind,
        target: text,
        nodes,
    };
    let clash = in_force(lab)?
        .into_iter()
        .find(|o| o.kind == f.kind && o.nodes.iter().any(|n| f.nodes.contains(n)));
    if let Some(old) = clash {
        return Err(Error::Invalid(format!(
            "{} {} is in force already: undo it first (perseus heal)",
            old.target, old.kind.started
        )));
    }
    events::append(&lab.dir(), kind.starting, &f.target)?;
    let (l, f2, port, param, fault) = (
        lab.clone(),
        f.clone(),
        db.client_port(),
        param.clone(),
        *fault,
    );
    let done = tokio::task::spawn_blocking(move || fault.apply(&l, &f2, &param, port))
        .await
        .map_err(|e| Error::Invalid(format!("fault task failed: {e}")))?;
    if let Err(e) = done {
        let _ = undo(&f, lab, db).await;
        // The starting marker is in the record: say the fault never was.
        let _ = events::append(
            &lab.dir(),
            faults::ABORTED,
            &format!("{} {}", kind.starting, f.target),
        );
        return Err(e);
    }
    events::append(&lab.dir(), kind.started, &f.target)?;
    Ok(f)
}

/// Undoes a fault in force: writes its ending marker, undoes it, writes its ended marker.
pub async fn end(f: &InForce, lab: &LabState, db: &'static dyn Database) -> Result<()> {
    let _lock = lab.lock()?;
    let lab = &LabState::load(&lab.name)?;
    // Only what is still in force is undone: another command may have undone all or part
    // of it meanwhile (`restart n1` after `kill all`).
    let mut still: Vec<usize> = in_force(lab)?
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
    events::append(&lab.dir(), f.kind.ending, &f.target)?;
    undo(f, lab, db).await?;
    events::append(&lab.dir(), f.kind.ended, &f.target)?;
    Ok(())
}

async fn undo(f: &InForce, lab: &LabState, db: &'static dyn Database) -> Result<()> {
    let (l, f) = (lab.clone(), f.clone());
    tokio::task::spawn_blocking(move || f.fault().undo(&l, &f, db))
        .await
        .map_err(|e| Error::Invalid(format!("fault task failed: {e}")))?
}

/// The nftables table that holds a network fault of this kind.
pub fn table(kind: &FaultKind) -> String {
    format!("perseus_{}", kind.name.replace('-', "_"))
}

/// Removes a network fault's table from each of its nodes and checks none is left.
pub fn nft_undo(lab: &LabState, f: &InForce) -> Result<()> {
    let t = table(f.kind);
    for &i in &f.nodes {
        let netns = &lab.nodes[i].netns;
        nft::remove(netns, &t)?;
        if nft::our_tables(netns)?.iter().any(|(name, _)| *name == t) {
            return Err(Error::FaultNotInForce(format!(
                "table inet {t} is still in {}'s namespace",
                lab.nodes[i].name
            )));
        }
    }
    Ok(())
}

/// The faults in force in a lab, read from its namespaces (rule tables and their comments)
/// and its processes (paused or gone).
pub fn in_force(lab: &LabState) -> Result<Vec<InForce>> {
    let mut found: Vec<InForce> = Vec::new();
    for (i, node) in lab.nodes.iter().enumerate() {
        for (name, comment) in nft::our_tables(&node.netns)? {
            let Some(kind) = FAULTS.iter().map(|f| f.kind()).find(|k| table(k) == name) else {
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
    // One per node: a process state cannot tell `kill n2` + `kill n3` from `kill all`, and
    // the per-node commands are the common case (their end markers must pair with them).
    for fault in FAULTS {
        for node in fault.held_by_processes(lab).unwrap_or_default() {
            found.push(InForce {
                kind: fault.kind(),
                target: lab.nodes[node].name.clone(),
                nodes: vec![node],
            });
        }
    }
    Ok(found)
}

/// Runs an action: starts a fault, or undoes the matching faults in force (`rejoin n2`,
/// `heal`), reading what is in force from the lab. Returns what was started or undone.
pub async fn act(
    action: &Action,
    lab: &LabState,
    db: &'static dyn Database,
    rng: &mut Rng,
) -> Result<Vec<InForce>> {
    match action {
        Action::Start { .. } => Ok(vec![start(action, lab, db, rng).await?]),
        Action::End { fault, target } => {
            let nodes = resolve(target, lab, db, rng).await?;
            let matching: Vec<InForce> = in_force(lab)?
                .into_iter()
                .filter(|f| f.kind == fault.kind() && f.nodes.iter().any(|n| nodes.contains(n)))
                .collect();
            for f in &matching {
                end(f, lab, db).await?;
            }
            Ok(matching)
        }
        Action::Heal => {
            let all = in_force(lab)?;
            for f in all.iter().rev() {
                end(f, lab, db).await?;
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

    /// Every network fault of the registry writes its rules from a topology alone, so any
    /// transport that loads rules carries it (a lab, SSH); each ruleset is the fault's own
    /// table, read back by name and target.
    #[test]
    fn every_network_fault_is_rules_written_once_for_every_transport() {
        let topology = Topology {
            names: (1..=3).map(|i| format!("n{i}")).collect(),
            addrs: (1..=3)
                .map(|i| std::net::Ipv4Addr::new(198, 18, 1, i))
                .collect(),
            keep: Some(("198.18.1.254".parse().unwrap(), 22)),
        };
        for fault in FAULTS {
            let (param, target, nodes) = match fault.kind().name {
                "loss" => (Param::Percent(30), "n2 30%", vec![1]),
                "partition" => (Param::Groups("n1|n2 n3".into()), "n1|n2 n3", vec![0, 1, 2]),
                _ => (Param::None, "n2", vec![1]),
            };
            let f = InForce {
                kind: fault.kind(),
                target: target.into(),
                nodes: nodes.clone(),
            };
            let t = table(fault.kind());
            let rules = fault.rules(&topology, &f, &param, nodes[0], &t);
            match fault.acts_on() {
                ActsOn::Processes(_) => assert!(rules.is_none(), "{fault:?}"),
                ActsOn::Rules => {
                    let rules = rules.expect("a network fault has rules").unwrap();
                    let tables = nft::parse_tables(&rules);
                    assert_eq!(tables.len(), 1, "{fault:?}: {rules}");
                    assert_eq!(tables[0].0, t, "{fault:?}");
                    // Only a fault that cuts the clients leaves the kept session open.
                    assert_eq!(
                        rules.contains("198.18.1.254"),
                        fault.cuts_clients(),
                        "{fault:?}: {rules}"
                    );
                }
            }
        }
    }
}
