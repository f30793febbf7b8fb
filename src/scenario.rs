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
//!
//! A soak plays the phases again and again, back to back: `repeat = 3` (three passes) or
//! `until = "24h"` (passes start while one more ends within 24 h of the first's start) at
//! the top of the file, or `perseus run --loop 3|24h`. Each pass starts healed.

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
    (
        "disk-stall-leader",
        include_str!("../scenarios/disk-stall-leader.toml"),
    ),
    ("power-cut", include_str!("../scenarios/power-cut.toml")),
];

/// How often a scenario's phases play, back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Repeat {
    /// One pass (every scenario's default).
    #[default]
    Once,
    /// This many passes.
    Times(u32),
    /// Passes start while one more ends within this long of the first pass's start (at
    /// least one pass).
    Until(#[serde(with = "duration_text")] Duration),
}

/// The most passes a scenario may ask for.
pub const MAX_PASSES: u32 = 1_000_000;

impl Repeat {
    /// `3` (passes) or a duration (`24h`), as `--loop` takes it.
    pub fn parse(text: &str) -> std::result::Result<Repeat, String> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u32>() {
                Ok(n) if (1..=MAX_PASSES).contains(&n) => Ok(Repeat::Times(n)),
                _ => Err(format!("'{text}': a number of passes is 1 to {MAX_PASSES}")),
            };
        }
        match parse_duration(text) {
            Ok(d) if !d.is_zero() => Ok(Repeat::Until(d)),
            _ => Err(format!(
                "'{text}': give a number of passes (3) or how long to loop (24h, 90m)"
            )),
        }
    }

    fn is_once(&self) -> bool {
        *self == Repeat::Once
    }

    /// Whether another pass starts after `done` passes, `elapsed` since the first began,
    /// when one pass is planned to last `pass`.
    pub fn another(&self, done: u32, elapsed: Duration, pass: Duration) -> bool {
        match *self {
            Repeat::Once => false,
            Repeat::Times(n) => done < n,
            Repeat::Until(d) => elapsed + pass <= d,
        }
    }

    /// How many passes are planned (for `Until`, as if each lasted `pass` exactly).
    pub fn planned(&self, pass: Duration) -> u32 {
        match *self {
            Repeat::Once => 1,
            Repeat::Times(n) => n,
            Repeat::Until(d) => {
                let n = d.as_nanos() / pass.as_nanos().max(1);
                n.clamp(1, MAX_PASSES as u128) as u32
            }
        }
    }
}

impl std::fmt::Display for Repeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repeat::Once => f.write_str("once"),
            Repeat::Times(n) => write!(f, "{n} passes"),
            Repeat::Until(d) => write!(f, "passes for {}", format_duration(*d)),
        }
    }
}

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
    /// How often the phases play, back to back.
    #[serde(default, skip_serializing_if = "Repeat::is_once")]
    pub repeat: Repeat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    description: String,
    phase: Vec<RawPhase>,
    #[serde(default)]
    expect: Vec<toml::Spanned<String>>,
    repeat: Option<toml::Spanned<i64>>,
    until: Option<toml::Spanned<String>>,
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
        let repeat = match (&raw.repeat, &raw.until) {
            (Some(_), Some(u)) => {
                return Err(malformed(
                    line_of(text, u.span().start),
                    "repeat and until: give one of them".into(),
                ))
            }
            (Some(n), None) => match u32::try_from(*n.get_ref()) {
                Ok(k) if (1..=MAX_PASSES).contains(&k) => Repeat::Times(k),
                _ => {
                    return Err(malformed(
                        line_of(text, n.span().start),
                        format!(
                            "repeat = {}: a number of passes is 1 to {MAX_PASSES}",
                            n.get_ref()
                        ),
                    ))
                }
            },
            (None, Some(u)) => match Repeat::parse(u.get_ref()) {
                Ok(r @ Repeat::Until(_)) => r,
                _ => {
                    return Err(malformed(
                        line_of(text, u.span().start),
                        format!("until = \"{}\": not a duration (24h, 90m)", u.get_ref()),
                    ))
                }
            },
            (None, None) => Repeat::Once,
        };
        Ok(Scenario {
            name: name.to_string(),
            description: raw.description,
            phases,
            expect,
            repeat,
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
                        param: crate::fault::Param::default(),
                    }],
                },
                Phase {
                    name: "after".into(),
                    duration: t.after,
                    faults: vec![Action::Heal],
                },
            ],
            expect: Vec::new(),
            repeat: Repeat::Once,
        }
    }

    /// How long one pass of the phases lasts.
    pub fn pass_length(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// How long every planned pass lasts together (for `until`, that time: a pass starts
    /// only if planned to end within it).
    pub fn total(&self) -> Duration {
        let pass = self.pass_length();
        match self.repeat {
            Repeat::Until(d) => d.max(pass),
            r => pass * r.planned(pass),
        }
    }

    /// One line per phase, for `perseus list scenarios`, with the repeat if any.
    pub fn outline(&self) -> String {
        let repeat = if self.repeat.is_once() {
            String::new()
        } else {
            format!(" (again and again: {})", self.repeat)
        };
        let phases = self
            .phases
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
            .join(" → ");
        phases + &repeat
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
        // The fault places itself among the nodes, which checks its parameter against them
        // (a partition's groups).
        Action::Start {
            fault,
            target,
            param,
        } => {
            let on = match target {
                Target::Node(n) => {
                    known(n)?;
                    vec![names.iter().position(|m| m == n).unwrap_or(0)]
                }
                _ => (0..nodes).collect(),
            };
            fault
                .place(&names, on, param)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Action::End {
            target: Target::Node(n),
            ..
        } => known(n),
        _ => Ok(()),
    }
}

/// Checks, before anything starts, that `host` can carry every fault of `scenario`: its
/// targets name its nodes, its parameters fit them, and its servers can be stopped where a
/// fault stops them.
pub fn check_on(scenario: &Scenario, host: &mut dyn crate::hosts::Transport) -> Result<()> {
    let layout = host.layout();
    let names: Vec<String> = layout.nodes.iter().map(|n| n.name.clone()).collect();
    let index = |n: &str| {
        names
            .iter()
            .position(|m| m == n)
            .ok_or_else(|| Error::NoSuchNode {
                node: n.to_string(),
                lab: layout.lab.clone(),
                nodes: names.join(", "),
            })
    };
    for phase in &scenario.phases {
        for action in &phase.faults {
            let (fault, target) = match action {
                Action::Start { fault, target, .. } | Action::End { fault, target } => {
                    (*fault, target)
                }
                Action::Heal => continue,
            };
            let nodes: Vec<usize> = match target {
                Target::Node(n) => vec![index(n)?],
                _ => (0..names.len()).collect(),
            };
            if let Action::Start { param, .. } = action {
                fault.place(&names, nodes.clone(), param)?;
            }
            if fault.acts_on() == crate::fault::ActsOn::Disk {
                let Some(d) = host.disks() else {
                    return Err(Error::Invalid(format!(
                        "phase '{}': '{action}': this cluster's transport cannot reach its nodes' disks",
                        phase.name
                    )));
                };
                if let Some(why) = nodes.iter().find_map(|&i| d.refuses(i)) {
                    return Err(Error::Invalid(format!(
                        "phase '{}': '{action}': {why}",
                        phase.name
                    )));
                }
            }
            let op = match fault.acts_on() {
                crate::fault::ActsOn::Processes(op) => Some(op),
                // A power cut kills the servers, and starts them again.
                crate::fault::ActsOn::Disk
                    if fault.disk_mode(&Default::default()) == Some(crate::disk::Mode::Cut) =>
                {
                    Some(crate::fault::ProcessOp::Kill)
                }
                _ => None,
            };
            if let Some(op) = op {
                let Some(p) = host.processes() else {
                    return Err(Error::Invalid(format!(
                        "phase '{}': '{action}': this cluster's transport cannot stop or start its servers",
                        phase.name
                    )));
                };
                if let Some(why) = nodes.iter().find_map(|&i| p.refuses(i, op)) {
                    return Err(Error::Invalid(format!(
                        "phase '{}': '{action}': {why}",
                        phase.name
                    )));
                }
            }
        }
    }
    Ok(())
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
    fn a_scenario_repeats_by_count_or_until_a_time() {
        let base = "[[phase]]\nname = \"a\"\nduration = \"5s\"\nfaults = [\"isolate n2\"]\n";
        let parse =
            |top: &str| Scenario::parse("t", &format!("{top}{base}"), Path::new("t.toml"), Some(3));
        let s = parse("repeat = 3\n").unwrap();
        assert_eq!(s.repeat, Repeat::Times(3));
        assert_eq!(s.total(), Duration::from_secs(15));
        assert!(
            s.outline().ends_with("(again and again: 3 passes)"),
            "{}",
            s.outline()
        );
        let s = parse("until = \"1m\"\n").unwrap();
        assert_eq!(s.repeat, Repeat::Until(Duration::from_secs(60)));
        assert_eq!(s.total(), Duration::from_secs(60));
        assert_eq!(parse("").unwrap().repeat, Repeat::Once);
        for (top, line, why) in [
            ("repeat = 0\n", 1, "1 to"),
            ("repeat = -2\n", 1, "1 to"),
            ("until = \"soon\"\n", 1, "not a duration"),
            ("repeat = 2\nuntil = \"1h\"\n", 2, "give one"),
        ] {
            let e = parse(top).unwrap_err().to_string();
            assert!(
                e.contains(&format!("line {line}")) && e.contains(why),
                "{top}: {e}"
            );
        }
        // A saved spec keeps the repeat.
        let json = serde_json::to_string(&parse("until = \"2h\"\n").unwrap()).unwrap();
        assert!(json.contains("\"repeat\":{\"until\":\"2h\"}"), "{json}");
        let back: Scenario = serde_json::from_str(&json).unwrap();
        assert_eq!(back.repeat, Repeat::Until(Duration::from_secs(7200)));
    }

    #[test]
    fn loop_takes_passes_or_a_duration_and_decides_each_next_pass() {
        assert_eq!(Repeat::parse("3"), Ok(Repeat::Times(3)));
        assert_eq!(
            Repeat::parse("24h"),
            Ok(Repeat::Until(Duration::from_secs(86_400)))
        );
        for bad in ["0", "", "-1", "3x", "0s", "99999999999"] {
            assert!(Repeat::parse(bad).is_err(), "{bad}");
        }
        let s = Duration::from_secs;
        assert!(Repeat::Times(3).another(2, s(1000), s(10)));
        assert!(!Repeat::Times(3).another(3, s(0), s(10)));
        assert!(!Repeat::Once.another(1, s(0), s(10)));
        // Until: another pass only if it ends in time, measured, not planned.
        assert!(Repeat::Until(s(60)).another(1, s(50), s(10)));
        assert!(!Repeat::Until(s(60)).another(5, s(51), s(10)));
        assert_eq!(Repeat::Until(s(65)).planned(s(10)), 6);
        assert_eq!(Repeat::Until(s(5)).planned(s(10)), 1);
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
