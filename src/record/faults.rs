//! The vocabulary of fault events in a record: each kind of fault writes a marker when it
//! starts (`isolating n2`), when it is in force (`isolated n2`), when it is being undone
//! (`rejoining n2`) and when it is undone (`rejoined n2`). The seed's isolate / rejoin
//! markers are the first kind.

/// One kind of fault and its four marker verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultKind {
    /// Its name in scenario files and commands (`isolate`, `kill`, …).
    pub name: &'static str,
    pub starting: &'static str,
    pub started: &'static str,
    pub ending: &'static str,
    pub ended: &'static str,
    /// Which nodes it takes out of service (the others are expected to keep serving).
    pub affects: Affects,
    /// Whether it is the seed's fault: its targets cut off from their peers while their
    /// clients still reach them. The databases' failover models, and the report's words
    /// for it ("n2 was cut off from its peers"), are about this fault.
    pub cuts_off_from_peers: bool,
}

/// Which nodes a fault takes out of service, from the target text of its markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affects {
    /// The nodes named in the target (`n2`, `n1 n3`).
    Named,
    /// Every node outside the largest group of a partition (`n1|n2 n3` → n1).
    OutsideLargestGroup,
    /// None: every node is expected to keep serving (e.g. packet loss).
    Nothing,
}

/// The verb of the event that withdraws a fault whose start failed: its target is the
/// starting marker it withdraws (`aborted isolating n2`). The analysis drops that fault.
pub const ABORTED: &str = "aborted";

pub const KINDS: &[FaultKind] = &[
    FaultKind {
        name: "isolate",
        starting: "isolating",
        started: "isolated",
        ending: "rejoining",
        ended: "rejoined",
        affects: Affects::Named,
        cuts_off_from_peers: true,
    },
    FaultKind {
        name: "isolate-all",
        starting: "isolating-all",
        started: "isolated-all",
        ending: "rejoining-all",
        ended: "rejoined-all",
        affects: Affects::Named,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "refuse",
        starting: "refusing",
        started: "refused",
        ending: "accepting",
        ended: "accepted",
        affects: Affects::Named,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "partition",
        starting: "partitioning",
        started: "partitioned",
        ending: "healing-partition",
        ended: "healed-partition",
        affects: Affects::OutsideLargestGroup,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "one-way",
        starting: "cutting-outbound",
        started: "cut-outbound",
        ending: "restoring-outbound",
        ended: "restored-outbound",
        affects: Affects::Named,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "loss",
        starting: "degrading",
        started: "degraded",
        ending: "restoring",
        ended: "restored",
        affects: Affects::Nothing,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "throttle",
        starting: "throttling",
        started: "throttled",
        ending: "unthrottling",
        ended: "unthrottled",
        affects: Affects::Nothing,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "kill",
        starting: "killing",
        started: "killed",
        ending: "restarting",
        ended: "restarted",
        affects: Affects::Named,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "disk-stall",
        starting: "stalling-disk",
        started: "stalled-disk",
        ending: "unstalling-disk",
        ended: "unstalled-disk",
        affects: Affects::Named,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "disk-slow",
        starting: "slowing-disk",
        started: "slowed-disk",
        ending: "unslowing-disk",
        ended: "unslowed-disk",
        affects: Affects::Named,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "disk-error",
        starting: "failing-disk",
        started: "failed-disk",
        ending: "mending-disk",
        ended: "mended-disk",
        affects: Affects::Named,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "disk-full",
        starting: "filling-disk",
        started: "filled-disk",
        ending: "emptying-disk",
        ended: "emptied-disk",
        affects: Affects::Named,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "lose-unsynced",
        starting: "cutting-power",
        started: "cut-power",
        ending: "restoring-power",
        ended: "restored-power",
        affects: Affects::Named,
        cuts_off_from_peers: false,
    },
    FaultKind {
        name: "pause",
        starting: "pausing",
        started: "paused",
        ending: "resuming",
        ended: "resumed",
        affects: Affects::Named,
        cuts_off_from_peers: false,
    },
];

/// The kind whose start marker is `verb`.
pub fn by_starting(verb: &str) -> Option<&'static FaultKind> {
    KINDS.iter().find(|k| k.starting == verb)
}

/// The kind called `name`.
pub fn by_name(name: &str) -> Option<&'static FaultKind> {
    KINDS.iter().find(|k| k.name == name)
}

/// The kind called `name`, which must be one of [`KINDS`].
pub fn named(name: &str) -> &'static FaultKind {
    by_name(name).unwrap_or_else(|| panic!("'{name}' is not a fault kind of the record"))
}

/// Whether a fault event can be recorded as it is: its verb lowercase letters and '-',
/// its target printable ASCII without `<`, `>`, `&`, `` ` ``, quotes or backslashes, for
/// markers reach client logs, pages and tables as they are. The error says what is allowed.
pub fn check_event(verb: &str, target: &str) -> Result<(), String> {
    let verb_ok = !verb.is_empty() && verb.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    let target_ok = target
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && !b"<>&`\"'\\".contains(&b));
    if verb_ok && target_ok {
        Ok(())
    } else {
        Err("a fault event's verb is lowercase letters and '-', and its target printable ASCII without < > & ` \" ' \\".into())
    }
}

/// The nodes (indices into `nodes`) a fault with this target takes out of service.
pub fn affected(kind: &FaultKind, target: &str, nodes: &[String]) -> Vec<usize> {
    let index = |name: &str| nodes.iter().position(|n| n == name);
    match kind.affects {
        Affects::Nothing => Vec::new(),
        Affects::Named => target.split_whitespace().filter_map(index).collect(),
        Affects::OutsideLargestGroup => {
            let groups: Vec<Vec<usize>> = target
                .split('|')
                .map(|g| g.split_whitespace().filter_map(index).collect())
                .collect();
            let largest = groups.iter().map(Vec::len).max().unwrap_or(0);
            // The first of the largest groups stays in service.
            let keep = groups.iter().position(|g| g.len() == largest);
            groups
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != keep)
                .flat_map(|(_, g)| g.iter().copied())
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<String> {
        (1..=5).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn the_seeds_markers_are_the_isolate_kind() {
        let k = by_starting("isolating").unwrap();
        assert_eq!(
            (k.name, k.started, k.ending, k.ended),
            ("isolate", "isolated", "rejoining", "rejoined")
        );
        let mut verbs: Vec<&str> = KINDS
            .iter()
            .flat_map(|k| [k.starting, k.started, k.ending, k.ended])
            .collect();
        let n = verbs.len();
        verbs.sort();
        verbs.dedup();
        assert_eq!(verbs.len(), n, "every verb names one thing");
    }

    #[test]
    fn affected_nodes_follow_the_kind() {
        assert_eq!(
            affected(by_name("kill").unwrap(), "n2 n4", &nodes()),
            vec![1, 3]
        );
        assert_eq!(
            affected(by_name("partition").unwrap(), "n1 n2|n3 n4 n5", &nodes()),
            vec![0, 1]
        );
        assert_eq!(
            affected(by_name("loss").unwrap(), "n2 30%", &nodes()),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn a_fault_event_is_plain_words_and_printable_ascii() {
        assert!(check_event("isolating", "n2").is_ok());
        assert!(check_event("partitioning", "n1|n2 n3").is_ok());
        assert!(check_event("losing", "n2 30%").is_ok());
        assert!(check_event("isolating", "n2<script>").is_err());
        assert!(check_event("isolating", "n2\u{1b}[2J").is_err());
        assert!(check_event("Isolating", "n2").is_err());
        assert!(check_event("", "n2").is_err());
    }
}
