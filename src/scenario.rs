//! Scenarios: named phases, each with a duration and the fault actions that run at its
//! start. Written in TOML:
//!
//! ```toml
//! description = "The leader killed, then started again."
//!
//! [[phase]]
//! name = "before"
//! duration = "30s"
//!
//! [[phase]]
//! name = "killed"
//! duration = "60s"
//! faults = ["kill leader"]      # see fault::Action for every action
//!
//! [[phase]]
//! name = "after"
//! duration = "60s"
//! faults = ["heal"]             # undo every fault in force
//! ```
//! Whatever is still in force when the last phase ends is healed. Built-in scenarios live
//! in `scenarios/` and are compiled in.

use crate::clock::duration_text;
use crate::clock::{format_duration, parse_duration};
use crate::error::{Error, Result};
use crate::fault::Action;
use crate::fault::Target;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The seed's timeline: steady `before`, isolate, `during`, rejoin, `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    pub isolate: Target,
    #[serde(with = "duration_text")]
    pub before: Duration,
    #[serde(with = "duration_text")]
    pub during: Duration,
    #[serde(with = "duration_text")]
    pub after: Duration,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            isolate: Target::Node("n2".into()),
            before: Duration::from_secs(30),
            during: Duration::from_secs(60),
            after: Duration::from_secs(60),
        }
    }
}

/// The built-in scenarios: (name, TOML).
pub const BUILT_IN: &[(&str, &str)] = &[
    ("isolate", include_str!("../scenarios/isolate.toml")),
    (
        "isolate-leader",
        include_str!("../scenarios/isolate-leader.toml"),
    ),
    ("kill-leader", include_str!("../scenarios/kill-leader.toml")),
    (
        "pause-leader",
        include_str!("../scenarios/pause-leader.toml"),
    ),
    (
        "split-halves",
        include_str!("../scenarios/split-halves.toml"),
    ),
    ("one-way", include_str!("../scenarios/one-way.toml")),
    (
        "flaky-network",
        include_str!("../scenarios/flaky-network.toml"),
    ),
    (
        "rolling-isolation",
        include_str!("../scenarios/rolling-isolation.toml"),
    ),
];

/// A phase: how long it lasts and what happens at its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    #[serde(with = "duration_text")]
    pub duration: Duration,
    /// Fault actions, in order, saved as their text (`isolate n2`); a saved action that does
    /// not parse fails the whole load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub phases: Vec<Phase>,
    /// What the run's figures must meet (`recovery_time_ms <= 5000`); `perseus run` and
    /// `perseus check` fail with exit 5 when one does not hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<crate::expect::Expectation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    description: String,
    phase: Vec<RawPhase>,
    #[serde(default)]
    expect: Vec<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    name: toml::Spanned<String>,
    duration: toml::Spanned<String>,
    #[serde(default)]
    faults: Vec<toml::Spanned<String>>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Scenario {
    /// Reads a scenario from TOML; every mistake is reported with its line. With `nodes`,
    /// node names must be among n1..n`nodes`.
    pub fn parse(name: &str, text: &str, origin: &Path, nodes: Option<usize>) -> Result<Scenario> {
        let malformed = |line: usize, why: String| Error::Malformed {
            what: "scenario".into(),
            path: origin.to_path_buf(),
            line,
            why,
        };
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            malformed(line, e.message().to_string())
        })?;
        if raw.phase.is_empty() {
            return Err(malformed(1, "no [[phase]]".into()));
        }
        let mut phases = Vec::new();
        for p in raw.phase {
            let at = |s: &std::ops::Range<usize>| line_of(text, s.start);
            let duration = parse_duration(p.duration.get_ref())
                .map_err(|e| malformed(at(&p.duration.span()), e))?;
            let mut faults = Vec::new();
            for f in &p.faults {
                let action: Action = f.get_ref().parse().map_err(|e: String| {
                    malformed(at(&f.span()), format!("'{}': {e}", f.get_ref()))
                })?;
                if let Some(n) = nodes {
                    check_nodes(&action, n).map_err(|e| malformed(at(&f.span()), e))?;
                }
                faults.push(action);
            }
            phases.push(Phase {
                name: p.name.into_inner(),
                duration,
                faults,
            });
        }
        let mut expect = Vec::new();
        for e in &raw.expect {
            expect.push(
                e.get_ref()
                    .parse()
                    .map_err(|why| malformed(line_of(text, e.span().start), why))?,
            );
        }
        Ok(Scenario {
            name: name.to_string(),
            description: raw.description,
            phases,
            expect,
        })
    }

    /// A built-in scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str, nodes: Option<usize>) -> Result<Scenario> {
        if let Some((name, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(
                name,
                text,
                Path::new(&format!("scenarios/{name}.toml")),
                nodes,
            );
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
            return Err(Error::Invalid(format!(
                "--scenario {name_or_path}: no such file, and no built-in scenario of that name ({})",
                names.join(", ")
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(Error::io(format!("read {}", path.display())))?;
        let name = path
            .file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
        Scenario::parse(&name, &text, path, nodes)
    }

    /// The seed's timeline as a scenario: before, isolate the target, during, heal, after.
    pub fn from_timeline(t: &Timeline) -> Scenario {
        Scenario {
            name: "isolate".into(),
            description: format!(
                "{} cut off from its peers, then back (the seed's experiment)",
                t.isolate
            ),
            phases: vec![
                Phase {
                    name: "before".into(),
                    duration: t.before,
                    faults: vec![],
                },
                Phase {
                    name: "isolated".into(),
                    duration: t.during,
                    faults: vec![Action::Start {
                        fault: &crate::fault::isolate::Isolate,
                        target: t.isolate.clone(),
                        param: crate::fault::Param::None,
                    }],
                },
                Phase {
                    name: "after".into(),
                    duration: t.after,
                    faults: vec![Action::Heal],
                },
            ],
            expect: Vec::new(),
        }
    }

    pub fn total(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// One line per phase, for `perseus list scenarios`.
    pub fn outline(&self) -> String {
        self.phases
            .iter()
            .map(|p| {
                let faults = if p.faults.is_empty() {
                    String::new()
                } else {
                    let texts: Vec<String> = p.faults.iter().map(|a| a.to_string()).collect();
                    format!(" [{}]", texts.join(", "))
                };
                format!("{} {}{faults}", p.name, format_duration(p.duration))
            })
            .collect::<Vec<_>>()
            .join(" → ")
    }

    /// Whether any action names the leader (then the database must have one).
    pub fn needs_leader(&self) -> bool {
        self.phases.iter().flat_map(|p| &p.faults).any(|a| match a {
            Action::Start { target, .. } | Action::End { target, .. } => {
                matches!(target, Target::Leader | Target::Follower)
            }
            Action::Heal => false,
        })
    }
}

/// Fails if an action names a node outside n1..n`nodes`.
fn check_nodes(action: &Action, nodes: usize) -> std::result::Result<(), String> {
    let names: Vec<String> = (1..=nodes).map(|i| format!("n{i}")).collect();
    let known = |n: &str| -> std::result::Result<(), String> {
        if names.iter().any(|m| m == n) {
            Ok(())
        } else {
            Err(format!(
                "no node '{n}' in a {nodes}-node lab ({})",
                names.join(", ")
            ))
        }
    };
    match action {
        Action::Start {
            param: crate::fault::Param::Groups(groups),
            ..
        } => {
            if crate::fault::grudge::Shape::parse(groups.trim()).is_some() {
                return Ok(());
            }
            crate::fault::grudge::parse_groups(groups, &names).map(|_| ())
        }
        Action::Start {
            target: Target::Node(n),
            ..
        }
        | Action::End {
            target: Target::Node(n),
            ..
        } => known(n),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_reads_for_3_nodes() {
        for (name, text) in BUILT_IN {
            let s = Scenario::parse(name, text, Path::new(name), Some(3))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!s.phases.is_empty() && !s.description.is_empty(), "{name}");
        }
        assert!(Scenario::load("kill-leader", Some(3))
            .unwrap()
            .needs_leader());
        assert!(!Scenario::load("split-halves", Some(3))
            .unwrap()
            .needs_leader());
    }

    #[test]
    fn mistakes_are_reported_with_their_line() {
        let err = |text: &str| {
            Scenario::parse("t", text, Path::new("t.toml"), Some(3))
                .unwrap_err()
                .to_string()
        };
        let unknown_node = "[[phase]]\nname = \"a\"\nduration = \"5s\"\nfaults = [\"kill n7\"]\n";
        let e = err(unknown_node);
        assert!(
            e.contains("t.toml: line 4") && e.contains("no node 'n7'"),
            "{e}"
        );
        let negative = "[[phase]]\nname = \"a\"\nduration = \"-5s\"\n";
        let e = err(negative);
        assert!(e.contains("line 3") && e.contains("not a duration"), "{e}");
        let unknown_fault = "[[phase]]\nname = \"a\"\nduration = \"5s\"\n\n[[phase]]\nname = \"b\"\nduration = \"5s\"\nfaults = [\"heal\",\n  \"explode n1\"]\n";
        let e = err(unknown_fault);
        assert!(
            e.contains("line 9") && e.contains("unknown fault 'explode'"),
            "{e}"
        );
        let typo = "[[phase]]\nname = \"a\"\nduraton = \"5s\"\n";
        let e = err(typo);
        assert!(e.contains("line 3") && e.contains("duraton"), "{e}");
        let e = err("description = \"x\"\n");
        assert!(e.contains("phase"), "{e}");
    }

    #[test]
    fn the_default_timeline_is_the_seeds_isolate_scenario() {
        let s = Scenario::from_timeline(&Timeline::default());
        assert_eq!(
            s.outline(),
            "before 30s → isolated 1m [isolate n2] → after 1m [heal]"
        );
        assert_eq!(s.total(), Duration::from_secs(150));
    }
}
