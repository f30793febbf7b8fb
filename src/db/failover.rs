//! What a database's own timeouts imply for the isolation of one node and for its return:
//! the settings that govern its failover and catch-up, as Perseus starts it, and a small
//! model per database that turns them into expected ranges for the isolation figures and
//! the recovery figures. The report puts each measured figure next to its range and flags
//! it when it falls outside.

use std::collections::BTreeMap;
use std::time::Duration;

/// The server settings a record saved: each knob's effective value (`db::knob`), as the
/// database's own configuration writes it.
pub type Settings = BTreeMap<String, String>;

/// The isolation figures a model bounds (keys of `analysis::METRICS`).
pub const DOWNTIME: &str = "downtime_on_isolation";
pub const DISTURBANCE: &str = "disturbance_time";
/// The recovery figures a model bounds (keys of `analysis::METRICS`).
pub const DOWNTIME_ON_RECOVERY: &str = "downtime_on_recovery";
pub const RECOVERY: &str = "recovery_time";

/// What the isolated node was when it was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It led (the database reported it as leader just before the cut).
    Leader,
    /// Another node led.
    Follower,
    /// Not known: no node led, the database has no leader, or nobody asked.
    Unknown,
}

/// An expected range for one figure, in the figure's millisecond form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// A key of `analysis::METRICS`.
    pub figure: &'static str,
    pub low: Duration,
    pub high: Duration,
    /// How the range follows from the settings, for the report (one sentence).
    pub why: String,
}

/// A model's answer: the ranges, and where the database's documentation says what the
/// model assumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub bounds: Vec<Bound>,
    pub source: &'static str,
}

/// An optional ability: the database's failover is governed by timeouts Perseus sets when
/// it starts it, and its documentation says what they imply when one node of three is cut
/// off from its peers while every client still reaches its own node.
pub trait Failover: Send + Sync {
    /// The expected ranges for a node in `role` cut off from its peers, from `settings` (as a
    /// record saved them) and the client's request timeout; `None` where the model has
    /// nothing to say (a setting missing, a role it needs but does not know).
    fn expect(&self, settings: &Settings, role: Role, client_timeout: Duration)
        -> Option<Expected>;

    /// The expected ranges of the recovery figures ([`DOWNTIME_ON_RECOVERY`], [`RECOVERY`])
    /// when that node, cut off for `isolated`, rejoins, from the same inputs; a figure the
    /// documentation gives no bound for is left out (and its reason said in another's
    /// `why`); `None` where the model has nothing to say.
    fn rejoin(
        &self,
        settings: &Settings,
        role: Role,
        isolated: Duration,
        client_timeout: Duration,
    ) -> Option<Expected>;
}

/// A setting in milliseconds: a whole number of units of `unit_ms` milliseconds, or an
/// ISO 8601 duration (`PT5S`); `None` if missing or neither.
pub fn ms(settings: &Settings, name: &str, unit_ms: u64) -> Option<Duration> {
    let v = settings.get(name)?;
    let ms = match v.parse::<u64>() {
        Ok(n) => n.checked_mul(unit_ms)?,
        Err(_) => super::knob::iso_ms(v)?,
    };
    Some(Duration::from_millis(ms))
}

/// A setting that is a whole number (a count, such as ZooKeeper's `syncLimit`).
pub fn count(settings: &Settings, name: &str) -> Option<u32> {
    settings.get(name)?.parse().ok()
}

/// The same range for both isolation figures: where no connected node serves until the
/// failover ends, it ends the downtime and the disturbance alike.
pub fn both(low: Duration, high: Duration, why: String) -> Vec<Bound> {
    [DOWNTIME, DISTURBANCE]
        .into_iter()
        .map(|figure| Bound {
            figure,
            low,
            high,
            why: why.clone(),
        })
        .collect()
}

/// Nothing stops: the connected nodes keep a leader and a majority.
pub fn unaffected(why: &str) -> Vec<Bound> {
    both(Duration::ZERO, Duration::ZERO, why.to_string())
}

/// The recovery figures: no node stops after the rejoin, from `downtime` (`low`, `high`),
/// and every node serves steadily again within `recovery` (`low`, `high`).
pub fn after(
    downtime: (Duration, Duration),
    recovery: (Duration, Duration),
    why: String,
) -> Vec<Bound> {
    vec![
        Bound {
            figure: DOWNTIME_ON_RECOVERY,
            low: downtime.0,
            high: downtime.1,
            why: why.clone(),
        },
        Bound {
            figure: RECOVERY,
            low: recovery.0,
            high: recovery.1,
            why,
        },
    ]
}

/// A duration as the report writes it in a model's reason: `1000 ms`, `10 s`.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 10_000 && ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_scale_to_milliseconds_and_a_missing_one_is_none() {
        let s: Settings = [("ttl", "30"), ("tickTime", "2000"), ("evs.x", "PT0.5S")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(ms(&s, "ttl", 1000), Some(Duration::from_secs(30)));
        assert_eq!(ms(&s, "tickTime", 1), Some(Duration::from_millis(2000)));
        assert_eq!(ms(&s, "evs.x", 1), Some(Duration::from_millis(500)));
        assert_eq!(ms(&s, "syncLimit", 1), None);
        assert_eq!(count(&s, "ttl"), Some(30));
        assert_eq!(show(Duration::from_millis(1000)), "1000 ms");
        assert_eq!(show(Duration::from_secs(30)), "30 s");
        assert_eq!(show(Duration::from_millis(12_500)), "12500 ms");
    }

    /// Every model reads the settings its database is started with, bounds both isolation
    /// figures with low ≤ high, and says nothing when a setting is missing.
    #[test]
    fn every_model_speaks_from_its_own_settings() {
        let timeout = Duration::from_secs(1);
        let mut models = 0;
        for db in crate::db::REGISTRY {
            let Some(f) = db.failover() else { continue };
            models += 1;
            let layout = crate::lab::Layout::for_tests(None);
            let settings = crate::db::knob::effective(&layout, db.knobs());
            for role in [Role::Leader, Role::Follower] {
                let e = f
                    .expect(&settings, role, timeout)
                    .unwrap_or_else(|| panic!("{} {role:?}: no model", db.name()));
                assert!(e.source.starts_with("https://"), "{}", db.name());
                let figures: Vec<&str> = e.bounds.iter().map(|b| b.figure).collect();
                assert_eq!(figures, [DOWNTIME, DISTURBANCE], "{}", db.name());
                for b in &e.bounds {
                    assert!(b.low <= b.high, "{} {role:?} {b:?}", db.name());
                    assert!(!b.why.is_empty());
                }
            }
            assert_eq!(
                f.expect(&Settings::new(), Role::Leader, timeout),
                None,
                "{}: a record without settings gets no range",
                db.name()
            );
            // The other side: each model bounds the downtime on recovery, and the recovery
            // time where its documentation allows, for a node cut off for 30 s.
            let isolated = Duration::from_secs(30);
            for role in [Role::Leader, Role::Follower] {
                let e = f
                    .rejoin(&settings, role, isolated, timeout)
                    .unwrap_or_else(|| panic!("{} {role:?}: no recovery model", db.name()));
                assert!(e.source.starts_with("https://"), "{}", db.name());
                let figures: Vec<&str> = e.bounds.iter().map(|b| b.figure).collect();
                assert_eq!(figures[0], DOWNTIME_ON_RECOVERY, "{}", db.name());
                assert!(figures[1..].iter().all(|f| *f == RECOVERY), "{figures:?}");
                for b in &e.bounds {
                    assert!(b.low <= b.high, "{} {role:?} {b:?}", db.name());
                    assert!(!b.why.is_empty());
                }
            }
            assert_eq!(
                f.rejoin(&Settings::new(), Role::Leader, isolated, timeout),
                None,
                "{}: a record without settings gets no recovery range",
                db.name()
            );
        }
        assert!(
            models >= 7,
            "etcd, Galera, Gryadka, NATS, Patroni, Redis Sentinel, ZooKeeper"
        );
    }

    /// The figures of the models, worked out by hand from each database's defaults.
    #[test]
    fn the_models_give_the_documented_ranges() {
        let range = |name: &str, role: Role, figure: &str| {
            let db = crate::db::find(name).unwrap();
            let settings =
                crate::db::knob::effective(&crate::lab::Layout::for_tests(None), db.knobs());
            let e = db
                .failover()
                .unwrap()
                .expect(&settings, role, Duration::from_secs(1))
                .unwrap();
            let b = e.bounds.iter().find(|b| b.figure == figure).unwrap();
            (b.low.as_millis() as u64, b.high.as_millis() as u64)
        };
        // etcd: one to two election timeouts (1000 ms) after the last heartbeat (100 ms),
        // plus a request timeout.
        assert_eq!(range("etcd", Role::Leader, DOWNTIME), (900, 3200));
        assert_eq!(range("etcd", Role::Follower, DOWNTIME), (0, 0));
        // ZooKeeper: syncLimit 5 × tickTime 2000, less half a tick, to plus a tick and a
        // request timeout.
        assert_eq!(
            range("zookeeper", Role::Leader, DISTURBANCE),
            (9000, 13_000)
        );
        // Galera: whichever node, suspect 5 s, to plus a check, a resend and a timeout.
        assert_eq!(range("galera", Role::Unknown, DOWNTIME), (5000, 7500));
        // Patroni: promoted within ttl ± loop_wait (+ a timeout); demoted after
        // retry_timeout to retry_timeout + loop_wait.
        assert_eq!(
            range("patroni", Role::Leader, DISTURBANCE),
            (20_000, 41_000)
        );
        assert_eq!(range("patroni", Role::Leader, DOWNTIME), (0, 31_000));
        // Redis Sentinel: a primary always takes writes; the cost is lost writes.
        assert_eq!(range("redis-sentinel", Role::Leader, DOWNTIME), (0, 0));
        assert_eq!(range("redis-sentinel", Role::Unknown, DISTURBANCE), (0, 0));
    }

    /// The recovery side, worked out by hand from each database's defaults (a 30 s
    /// isolation, a 1 s client timeout) and from the settings that change it.
    #[test]
    fn the_recovery_models_give_the_documented_ranges() {
        let range = |name: &str, set: &[(&str, &str)], role: Role, secs: u64, figure: &str| {
            let db = crate::db::find(name).unwrap();
            let mut settings =
                crate::db::knob::effective(&crate::lab::Layout::for_tests(None), db.knobs());
            for (k, v) in set {
                settings.insert(k.to_string(), v.to_string());
            }
            let e = db.failover().unwrap().rejoin(
                &settings,
                role,
                Duration::from_secs(secs),
                Duration::from_secs(1),
            )?;
            let b = e.bounds.iter().find(|b| b.figure == figure)?;
            Some((b.low.as_millis() as u64, b.high.as_millis() as u64))
        };
        let ms = |a: u64, b: u64| Some((a, b));
        // etcd 3.4 without pre-vote: the returning node's term deposes the leader, one or
        // two elections of 1 s after a 100 ms heartbeat, plus a timeout; with it, nothing.
        for role in [Role::Leader, Role::Follower] {
            assert_eq!(
                range("etcd", &[], role, 30, DOWNTIME_ON_RECOVERY),
                ms(900, 5100)
            );
            let pv = [("pre-vote", "true")];
            assert_eq!(range("etcd", &pv, role, 30, DOWNTIME_ON_RECOVERY), ms(0, 0));
            assert_eq!(range("etcd", &[], role, 30, RECOVERY), None, "catch-up");
        }
        assert_eq!(
            range("etcd", &[], Role::Follower, 1, DOWNTIME_ON_RECOVERY),
            ms(0, 0),
            "cut off shorter than an election: it never campaigned"
        );
        // ZooKeeper: nobody stops; the returning server's next round of votes comes at
        // most 30 s later (the wait doubles up to 60 s), then it syncs within initLimit
        // 10 × tickTime 2 s.
        assert_eq!(
            range("zookeeper", &[], Role::Follower, 30, DOWNTIME_ON_RECOVERY),
            ms(0, 0)
        );
        assert_eq!(
            range("zookeeper", &[], Role::Leader, 30, RECOVERY),
            ms(0, 51_000)
        );
        assert_eq!(
            range("zookeeper", &[], Role::Leader, 300, RECOVERY),
            ms(0, 81_000)
        );
        // Galera: a view change, joins resent every 1 s, installed within 7.5 s; IST has
        // no bound.
        assert_eq!(
            range("galera", &[], Role::Unknown, 30, DOWNTIME_ON_RECOVERY),
            ms(0, 9500)
        );
        assert_eq!(range("galera", &[], Role::Unknown, 30, RECOVERY), None);
        // Patroni: replaced after ttl 30 s + loop_wait 10 s, the old primary returns as a
        // replica; before that it may take its key back on its next round.
        assert_eq!(range("patroni", &[], Role::Leader, 60, RECOVERY), ms(0, 0));
        assert_eq!(
            range("patroni", &[], Role::Leader, 30, DOWNTIME_ON_RECOVERY),
            ms(0, 11_000)
        );
        assert_eq!(
            range("patroni", &[], Role::Follower, 30, RECOVERY),
            ms(0, 0)
        );
        // Redis Sentinel: nobody stops either way.
        assert_eq!(
            range("redis-sentinel", &[], Role::Leader, 30, RECOVERY),
            ms(0, 0)
        );
        // NATS: no pre-vote, so one election of up to 9 s + 0.8 s campaign + 1 s heartbeat
        // + a timeout, and a route's reconnection of 1 s before it.
        assert_eq!(
            range("nats", &[], Role::Follower, 30, DOWNTIME_ON_RECOVERY),
            ms(0, 11_800)
        );
        assert_eq!(
            range("nats", &[], Role::Leader, 30, RECOVERY),
            ms(0, 12_800)
        );
        // Gryadka: TCP's retransmission that follows the rejoin, within the isolation's
        // length plus 200 ms, and two timeouts.
        assert_eq!(
            range("gryadka", &[], Role::Unknown, 30, RECOVERY),
            ms(0, 32_200)
        );
        assert_eq!(
            range("gryadka", &[], Role::Unknown, 20, DOWNTIME_ON_RECOVERY),
            ms(0, 0)
        );
    }

    #[test]
    fn the_bounded_figures_are_metrics() {
        let keys: Vec<&str> = crate::analysis::METRICS.iter().map(|m| m.key).collect();
        assert!(keys.contains(&DOWNTIME) && keys.contains(&DISTURBANCE));
        assert!(keys.contains(&DOWNTIME_ON_RECOVERY) && keys.contains(&RECOVERY));
    }
}
