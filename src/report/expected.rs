//! Measured next to expected: the isolation and recovery figures of a run beside the
//! ranges its database's failover model (`db::failover`) derives from the settings the
//! record saved. A model speaks only of one node of three or more cut off from its peers
//! (`isolate`), in a lab Perseus started (a cluster's settings are not known).

use crate::analysis::Analysis;
use crate::db::failover::Role;
use crate::record::marks;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One figure with its expected range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExpectedFigure {
    /// A figure key of `summary.json` (`downtime_on_isolation_ms`).
    pub figure: String,
    pub low_ms: u64,
    pub high_ms: u64,
    /// `null`: not applicable (not steady again by the end of the isolation).
    pub measured_ms: Option<u64>,
    /// Whether the measurement fits the range, cut to the isolation's length (a figure
    /// cannot outlast it; n/a fits a range that reaches past it).
    pub within: bool,
    /// How the range follows from the database's settings.
    pub why: String,
    /// Where the database's documentation describes what the model assumes.
    pub source: String,
}

impl ExpectedFigure {
    /// `measured 10.5 s; expected 9.0–13.0 s (…)`, with `OUTSIDE` first when it is.
    pub fn describe(&self) -> String {
        let s = |ms: u64| format!("{:.1}", ms as f64 / 1000.0);
        format!(
            "{}measured {}; expected {} s: {}",
            if self.within { "" } else { "OUTSIDE: " },
            self.measured_ms
                .map_or("n/a".to_string(), |m| format!("{} s", s(m))),
            range_s(self.low_ms, self.high_ms),
            self.why
        )
    }
}

/// A range in seconds with one decimal: `0.9–3.2`, or `0.0` where it is one value.
pub fn range_s(low_ms: u64, high_ms: u64) -> String {
    let s = |ms: u64| format!("{:.1}", ms as f64 / 1000.0);
    if low_ms == high_ms {
        s(low_ms)
    } else {
        format!("{}–{}", s(low_ms), s(high_ms))
    }
}

/// The role of the node the first fault cut off: from the last `leader` mark before it.
pub fn role(a: &Analysis) -> Role {
    match &a.window {
        Some(w) => role_at(a, w),
        None => Role::Unknown,
    }
}

/// What the nodes fault `w` hit were just before it started, from the last leader mark
/// before it (see [`role`]): the leader alone, followers only, or unknown (no mark, or the
/// leader among others).
pub fn role_at(a: &Analysis, w: &crate::analysis::FaultWindow) -> Role {
    let mark = a.marks.iter().rev().find_map(|(t, m)| {
        let who = m.strip_prefix(marks::LEADER)?.strip_prefix(' ')?;
        (*t <= w.start_us).then_some(who)
    });
    match mark.and_then(|who| a.header.nodes.iter().position(|n| n == who)) {
        Some(i) if w.affected == 1 << i => Role::Leader,
        // Followers only; a fault on the leader and others is neither.
        Some(i) if w.affected & (1 << i) == 0 => Role::Follower,
        _ => Role::Unknown,
    }
}

/// The role's name in `summary.json`.
pub fn role_name(role: Role) -> Option<String> {
    match role {
        Role::Leader => Some("leader".into()),
        Role::Follower => Some("follower".into()),
        Role::Unknown => None,
    }
}

/// The expected ranges of `a`'s first fault, each with the measured value from `metrics`
/// (`summary.json`'s figures): the isolation figures, and the recovery figures once it
/// ended; empty where no model speaks.
pub fn of(a: &Analysis, metrics: &BTreeMap<String, Option<u64>>) -> Vec<ExpectedFigure> {
    let Some(w) = &a.window else {
        return Vec::new();
    };
    let one_of_three = w.affected.count_ones() == 1 && a.header.nodes.len() >= 3;
    let (Some(timeout), true) = (
        a.header.timeout_ms,
        w.kind.cuts_off_from_peers && one_of_three,
    ) else {
        return Vec::new();
    };
    let Some(model) = crate::db::find(&a.header.database)
        .ok()
        .and_then(|db| db.failover())
    else {
        return Vec::new();
    };
    let (role, timeout) = (role(a), Duration::from_millis(timeout));
    let iso_end = w.end_us.unwrap_or(a.end_us);
    let mut out = Vec::new();
    if let Some(e) = model.expect(&a.header.settings, role, timeout) {
        out.extend(measured(&e, metrics, iso_end.saturating_sub(w.start_us)));
    }
    if let Some(rejoined) = w.end_us {
        let isolated = Duration::from_micros(rejoined.saturating_sub(w.start_us));
        let phase_end = w.next_us.unwrap_or(a.end_us).min(a.end_us);
        if let Some(e) = model.rejoin(&a.header.settings, role, isolated, timeout) {
            out.extend(measured(&e, metrics, phase_end.saturating_sub(rejoined)));
        }
    }
    out
}

/// A model's ranges beside the measured figures, judged over a phase of `phase_us`.
fn measured(
    expected: &crate::db::failover::Expected,
    metrics: &BTreeMap<String, Option<u64>>,
    phase_us: u64,
) -> Vec<ExpectedFigure> {
    // A figure cannot outlast its phase: a range beyond it is cut to it, and a figure
    // still under way when the phase ended (n/a) is within a range that reaches past it.
    let phase_ms = (phase_us / 1000).max(1);
    expected
        .bounds
        .iter()
        .map(|b| {
            let figure = format!("{}_ms", b.figure);
            let measured_ms = metrics.get(&figure).copied().flatten();
            let (low_ms, high_ms) = (crate::clock::ms(b.low), crate::clock::ms(b.high));
            let (lo, hi) = (low_ms.min(phase_ms), high_ms.min(phase_ms));
            let within = match measured_ms {
                Some(m) => (lo..=hi).contains(&m),
                None => high_ms > phase_ms,
            };
            ExpectedFigure {
                within,
                figure,
                low_ms,
                high_ms,
                measured_ms,
                why: b.why.clone(),
                source: expected.source.to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Database;

    /// The synthetic record: etcd, n2 cut off for the middle third, n1 and n3 serving
    /// throughout. Its role comes from the last `leader` mark before the cut.
    #[test]
    fn the_role_comes_from_the_leader_mark_and_decides_the_range() {
        let dir =
            std::env::temp_dir().join(format!("perseus-expected-test-{}", std::process::id()));
        crate::record::synthetic::synthetic_record(&dir, 30, 60).unwrap();
        let mut a = crate::analysis::analyse(&crate::record::in_results(&dir).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let figures = crate::report::summary::of(&a).metrics;
        assert!(
            of(&a, &figures).is_empty(),
            "no settings in the record: no model"
        );

        a.header.settings = crate::db::knob::effective(
            &crate::lab::Layout::for_tests(None),
            crate::db::etcd::Etcd.knobs(),
        );
        a.header.timeout_ms = Some(1000);
        let start = a.window.as_ref().unwrap().start_us;
        assert_eq!(role(&a), Role::Unknown);
        assert!(of(&a, &figures).is_empty(), "etcd's model needs the role");

        a.marks.push((start - 1, marks::leader(Some("n1"))));
        assert_eq!(role(&a), Role::Follower);
        let e = of(&a, &figures);
        let names: Vec<&str> = e.iter().map(|e| e.figure.as_str()).collect();
        assert_eq!(
            names,
            [
                "downtime_on_isolation_ms",
                "disturbance_time_ms",
                "downtime_on_recovery_ms"
            ],
            "the isolation's figures, then the rejoin's etcd bounds"
        );
        assert!(e[..2].iter().all(|e| e.within && e.high_ms == 0), "{e:?}");
        // Cut off for 10 s without pre-vote, the follower's return deposes the leader:
        // everyone dark for an election; the synthetic record has nobody dark.
        assert_eq!((e[2].low_ms, e[2].high_ms, e[2].within), (900, 5100, false));
        a.header.settings.insert("pre-vote".into(), "true".into());
        assert!(
            of(&a, &figures)[2].within,
            "with pre-vote: 0 expected, 0 measured"
        );
        a.header.settings.insert("pre-vote".into(), "false".into());
        let mut unended = a.clone();
        unended.window.as_mut().unwrap().end_us = None;
        assert_eq!(
            of(&unended, &figures).len(),
            2,
            "no rejoin: no recovery range"
        );

        a.marks.push((start, marks::leader(Some("n2"))));
        assert_eq!(role(&a), Role::Leader);
        let mut several = a.clone();
        several.window.as_mut().unwrap().affected = 0b111;
        assert_eq!(role(&several), Role::Unknown, "the leader among others");
        several.window.as_mut().unwrap().affected = 0b101;
        assert_eq!(role(&several), Role::Follower, "followers only");
        let e = of(&a, &figures);
        let d = e
            .iter()
            .find(|e| e.figure == "downtime_on_isolation_ms")
            .unwrap();
        assert_eq!((d.low_ms, d.high_ms, d.measured_ms), (900, 3200, Some(0)));
        assert!(!d.within, "0 s is less than an election: outside");
        assert!(d
            .describe()
            .starts_with("OUTSIDE: measured 0.0 s; expected 0.9–3.2 s"));

        // ZooKeeper's leader: 9–13 s, longer than this 10 s isolation. A figure that lasts
        // the whole isolation fits; a disturbance still under way at its end (n/a) too.
        a.header.database = "zookeeper".into();
        a.header.settings = crate::db::knob::effective(
            &crate::lab::Layout::for_tests(None),
            crate::db::zookeeper::Zookeeper.knobs(),
        );
        let mut whole = figures.clone();
        whole.insert("downtime_on_isolation_ms".into(), Some(10_000));
        whole.insert("disturbance_time_ms".into(), None);
        let e = of(&a, &whole);
        assert_eq!((e[0].low_ms, e[0].high_ms), (9000, 13_000));
        assert!(e.iter().all(|e| e.within), "{e:?}");
        whole.insert("downtime_on_isolation_ms".into(), Some(8000));
        assert!(!of(&a, &whole)[0].within, "8 s is short of 9 s");
        a.header.database = "etcd".into();

        a.marks.push((start + 1, marks::leader(Some("n3"))));
        assert_eq!(
            role(&a),
            Role::Leader,
            "a mark after the cut does not count"
        );
        a.marks.push((start, marks::leader(None)));
        assert_eq!(role(&a), Role::Unknown, "no leader");
    }
}
