//! Which node a fault hits, as commands and scenarios name it.

use serde::{Deserialize, Serialize};

/// Which node a fault hits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A node by name (`n2`).
    Node(String),
    /// The node the database reports as leader when the fault starts.
    Leader,
    /// The first node (in name order) that is not the leader when the fault starts.
    Follower,
    /// A node picked at random (from the spec's seed, so a run repeats exactly).
    Random,
    /// Every node.
    All,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "leader" => Ok(Target::Leader),
            "follower" => Ok(Target::Follower),
            "random" => Ok(Target::Random),
            "all" => Ok(Target::All),
            "" => {
                Err("a target is a node name (n1, n2, ...), leader, follower, random or all".into())
            }
            n => Ok(Target::Node(n.to_string())),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node(n) => f.write_str(n),
            Target::Leader => f.write_str("leader"),
            Target::Follower => f.write_str("follower"),
            Target::Random => f.write_str("random"),
            Target::All => f.write_str("all"),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
