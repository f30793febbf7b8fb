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
pub mod target;

use crate::db::Database;
use crate::error::{Error, Result};
use crate::lab::{events, LabState};
use crate::record::faults::{self, FaultKind};
pub use target::Target;

/// A fault to start or undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a fault of `kind` on `target` (for `loss`, with `percent`; for `partition`, on
    /// `groups`: a shape name or groups such as `n1|n2 n3`).
    Start {
        kind: &'static FaultKind,
        target: Target,
        percent: u8,
        groups: String,
    },
    /// Undo the faults of `kind` in force on `target` (`rejoin n2`, `restart all`).
    End {
        kind: &'static FaultKind,
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

/// The commands that undo a kind, as actions name them.
const UNDO_WORDS: [(&str, &str); 4] = [
    ("rejoin", "isolate"),
    ("rejoin-all", "isolate-all"),
    ("restart", "kill"),
    ("resume", "pause"),
];

impl std::str::FromStr for Action {
    type Err = String;

    /// `isolate T`, `isolate-all T`, `one-way T`, `kill T`, `pause T`, `loss T 30%`,
    /// `partition halves|ring|bridge|GROUPS`, `rejoin T`, `rejoin-all T`, `restart T`,
    /// `resume T`, `heal`; T is a node name, `leader`, `follower`, `random` or `all`.
    fn from_str(text: &str) -> std::result::Result<Action, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let Some((&verb, args)) = words.split_first() else {
            return Err("an empty fault".into());
        };
        let target = |args: &[&str]| -> std::result::Result<Target, String> {
            match args {
                [t] => t.parse(),
                [t, ..] if verb == "loss" => t.parse(),
                _ => Err(format!(
                    "'{verb}' takes one target: a node name, leader, follower, random or all"
                )),
            }
        };
        if verb == "heal" {
            return if args.is_empty() {
                Ok(Action::Heal)
            } else {
                Err("'heal' takes nothing: it undoes every fault in force".into())
            };
        }
        if let Some((_, kind)) = UNDO_WORDS.iter().find(|(w, _)| *w == verb) {
            let target = target(args)?;
            if matches!(target, Target::Leader | Target::Follower | Target::Random) {
                return Err(format!("'{verb} {target}' is ambiguous once the fault is in force: name the node, or use 'all' or 'heal'"));
            }
            return Ok(Action::End {
                kind: faults::by_name(kind).expect("undo words name kinds"),
                target,
            });
        }
        let kind = faults::by_name(verb).ok_or_else(|| {
            let known: Vec<&str> = faults::KINDS.iter().map(|k| k.name).collect();
            format!(
                "unknown fault '{verb}'; faults: {}, and rejoin, restart, resume, heal",
                known.join(", ")
            )
        })?;
        match kind.name {
            "partition" => {
                if args.is_empty() {
                    return Err("'partition' takes a shape (halves, ring, bridge) or groups such as n1|n2 n3".into());
                }
                Ok(Action::Start {
                    kind,
                    target: Target::All,
                    percent: 0,
                    groups: args.join(" "),
                })
            }
            "loss" => {
                let percent = match args {
                    [_, p] => p
                        .trim_end_matches('%')
                        .parse::<u8>()
                        .ok()
                        .filter(|p| (1..=100).contains(p))
                        .ok_or_else(|| format!("'{p}' is not a percentage from 1% to 100%"))?,
                    _ => {
                        return Err(
                            "'loss' takes a target and a percentage, e.g. loss n2 30%".into()
                        )
                    }
                };
                Ok(Action::Start {
                    kind,
                    target: target(args)?,
                    percent,
                    groups: String::new(),
                })
            }
            _ => Ok(Action::Start {
                kind,
                target: target(args)?,
                percent: 0,
                groups: String::new(),
            }),
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Start { kind, groups, .. } if kind.name == "partition" => {
                write!(f, "partition {groups}")
            }
            Action::Start {
                kind,
                target,
                percent,
                ..
            } if kind.name == "loss" => write!(f, "loss {target} {percent}%"),
            Action::Start { kind, target, .. } => write!(f, "{} {target}", kind.name),
            Action::End { kind, target } => {
                let word = UNDO_WORDS
                    .iter()
                    .find(|(_, k)| *k == kind.name)
                    .map_or("heal", |(w, _)| *w);
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
    let leader = || async {
        db.health(&lab.layout()).await.leader.ok_or_else(|| {
            Error::Database(format!(
                "{} reports no leader right now, so '{target}' names no node",
                db.name()
            ))
        })
    };
    Ok(match target {
        Target::Node(n) => vec![lab.node_index(n)?],
        Target::Leader => vec![leader().await?],
        Target::Follower => {
            let l = leader().await?;
            vec![if l == 0 {
                1.min(lab.nodes.len() - 1)
            } else {
                0
            }]
        }
        Target::Random => vec![rng.below(lab.nodes.len())],
        Target::All => (0..lab.nodes.len()).collect(),
    })
}

fn names(lab: &LabState, nodes: &[usize]) -> String {
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
    db: &dyn Database,
    rng: &mut Rng,
) -> Result<InForce> {
    // Under the lab's lock, from the lab as it is on disk now (another command, or an
    // earlier restart, may have changed its processes since `lab` was read).
    let _lock = lab.lock()?;
    let lab = &LabState::load(&lab.name)?;
    let Action::Start {
        kind,
        target,
        percent,
        groups,
    } = action
    else {
        return Err(Error::Invalid(format!("'{action}' does not start a fault")));
    };
    let (nodes, text, grudge) = if kind.name == "partition" {
        let g = partition::grudge(lab, groups)?;
        let nodes = (0..lab.nodes.len()).filter(|i| g.0[*i] != 0).collect();
        (nodes, g.describe(&lab.node_names()), Some(g))
    } else {
        let nodes = resolve(target, lab, db, rng).await?;
        let mut text = names(lab, &nodes);
        if kind.name == "loss" {
            text.push_str(&format!(" {percent}%"));
        }
        (nodes, text, None)
    };
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
    let (l, f2, port, percent) = (lab.clone(), f.clone(), db.client_port(), *percent);
    let done = tokio::task::spawn_blocking(move || match f2.kind.name {
        "isolate" => isolate::isolate(&l, &f2, port),
        "isolate-all" => isolate::isolate_all(&l, &f2, port),
        "partition" => {
            partition::apply(&l, &f2, grudge.as_ref().expect("a partition has a grudge"))
        }
        "one-way" => one_way::apply(&l, &f2),
        "loss" => loss::apply(&l, &f2, percent),
        "kill" => kill::apply(&l, &f2),
        "pause" => pause::apply(&l, &f2),
        other => Err(Error::Invalid(format!("no fault '{other}'"))),
    })
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

async fn undo(f: &InForce, lab: &LabState, db: &dyn Database) -> Result<()> {
    match f.kind.name {
        // It waits for the restarted processes to stay up: off the runtime's threads.
        "kill" => tokio::task::block_in_place(|| kill::restart(&lab.name, f, db)),
        _ => {
            let (l, f) = (lab.clone(), f.clone());
            tokio::task::spawn_blocking(move || match f.kind.name {
                "pause" => pause::undo(&l, &f),
                _ => nft_undo(&l, &f),
            })
            .await
            .map_err(|e| Error::Invalid(format!("fault task failed: {e}")))?
        }
    }
}

/// The nftables table that holds a network fault of this kind.
pub fn table(kind: &FaultKind) -> String {
    format!("perseus_{}", kind.name.replace('-', "_"))
}

/// Removes a network fault's table from each of its nodes and checks none is left.
fn nft_undo(lab: &LabState, f: &InForce) -> Result<()> {
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
            let Some(kind) = faults::KINDS.iter().find(|k| table(k) == name) else {
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
    for (kind, nodes) in [("pause", pause::paused(lab)), ("kill", kill::killed(lab))] {
        for node in nodes {
            found.push(InForce {
                kind: faults::by_name(kind).expect("known kind"),
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
        Action::End { kind, target } => {
            let nodes = resolve(target, lab, db, rng).await?;
            let matching: Vec<InForce> = in_force(lab)?
                .into_iter()
                .filter(|f| f.kind == *kind && f.nodes.iter().any(|n| nodes.contains(n)))
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
}
