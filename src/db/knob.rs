//! Server settings a preset documents and lets the user change (`--set NAME=VALUE`): the
//! ones that govern failover and catch-up. Each preset lists its own ([`Database::knobs`]);
//! a lab keeps the values it was asked for, and the preset writes the effective value of
//! each into its servers' configuration.
//!
//! [`Database::knobs`]: super::Database::knobs

use crate::error::{Error, Result};
use crate::lab::Layout;
use std::collections::BTreeMap;

/// What a value may look like. Values go into configuration files and command lines, so
/// each kind admits only what it needs (no spaces, quotes or line breaks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number: `1000`.
    Number,
    /// An ISO 8601 duration in seconds, as Galera writes them: `PT5S`, `PT0.5S`.
    IsoSeconds,
    /// `true` or `false`.
    Bool,
    /// A size: a whole number with an optional `K`, `M` or `G`: `64M`.
    Size,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

impl Kind {
    /// Whether `value` is a value of this kind.
    pub fn admits(self, value: &str) -> bool {
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
        match self {
            Kind::Number => digits(value),
            Kind::IsoSeconds => iso_ms(value).is_some(),
            Kind::Bool => matches!(value, "true" | "false"),
            Kind::Size => digits(value.trim_end_matches(['K', 'M', 'G'])),
            Kind::OneOf(words) => words.contains(&value),
        }
    }

    /// What a value of this kind looks like, for an error.
    pub fn shape(self) -> String {
        match self {
            Kind::Number => "a whole number".into(),
            Kind::IsoSeconds => "an ISO 8601 duration in seconds, such as PT5S or PT0.5S".into(),
            Kind::Bool => "true or false".into(),
            Kind::Size => "a size such as 64M".into(),
            Kind::OneOf(words) => format!("one of {}", words.join(", ")),
        }
    }
}

/// An ISO 8601 duration in seconds (`PT5S`, `PT0.5S`) in milliseconds.
pub fn iso_ms(value: &str) -> Option<u64> {
    let secs = value.strip_prefix("PT")?.strip_suffix('S')?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
    let ok = |s: &str, max: usize| s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !ok(whole, 9) || !ok(frac, 3) {
        return None;
    }
    let ms: u64 = format!("{frac:0<3}").parse().ok()?;
    Some(whole.parse::<u64>().ok()? * 1000 + ms)
}

/// One setting a preset lets the user change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knob {
    /// Its name as the database's own configuration spells it.
    pub name: &'static str,
    /// The value the preset starts the servers with.
    pub default: &'static str,
    pub kind: Kind,
    /// What it governs, in a few words.
    pub about: &'static str,
}

/// The values the user asked for, by knob name (`--set`).
pub type Overrides = BTreeMap<String, String>;

/// Checks `overrides` against `knobs`: every name a knob's, every value of its kind.
pub fn check(database: &str, knobs: &[Knob], overrides: &Overrides) -> Result<()> {
    for (name, value) in overrides {
        let name = name.escape_debug().to_string();
        let Some(k) = knobs.iter().find(|k| k.name == name) else {
            let names: Vec<&str> = knobs.iter().map(|k| k.name).collect();
            return Err(Error::Invalid(if names.is_empty() {
                format!("--set {name}: {database} has no settings to change")
            } else {
                format!(
                    "--set {name}: {database} has no such setting; its settings: {} (perseus list settings)",
                    names.join(", ")
                )
            }));
        };
        if !k.kind.admits(value) {
            return Err(Error::Invalid(format!(
                "--set {name}={}: {name} takes {}",
                value.escape_debug(),
                k.kind.shape()
            )));
        }
    }
    Ok(())
}

/// The value of `knob` in `layout`'s lab: the user's, or the preset's default.
pub fn value<'a>(layout: &'a Layout, knob: &'a Knob) -> &'a str {
    layout
        .settings
        .get(knob.name)
        .map_or(knob.default, String::as_str)
}

/// The effective value of every knob in `layout`'s lab.
pub fn effective(layout: &Layout, knobs: &[Knob]) -> BTreeMap<String, String> {
    knobs
        .iter()
        .map(|k| (k.name.to_string(), value(layout, k).to_string()))
        .collect()
}

/// The knob called `name` of `knobs` (a preset's own list: a missing one is a bug).
pub fn named(knobs: &'static [Knob], name: &str) -> &'static Knob {
    knobs
        .iter()
        .find(|k| k.name == name)
        .unwrap_or_else(|| panic!("no knob {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Database;

    /// Every preset's defaults are values of their own kind, each name once; and a value
    /// set in the lab reaches that preset's configuration.
    #[test]
    fn every_preset_writes_the_values_it_is_given() {
        for db in crate::db::REGISTRY {
            let mut names: Vec<&str> = db.knobs().iter().map(|k| k.name).collect();
            for k in db.knobs() {
                assert!(k.kind.admits(k.default), "{} {}", db.name(), k.name);
            }
            names.sort();
            names.dedup();
            assert_eq!(names.len(), db.knobs().len(), "{}", db.name());
        }
        let mut layout = Layout::for_tests(None);
        layout.settings = [
            ("election-timeout", "500"),
            ("innodb_flush_log_at_trx_commit", "2"),
            ("evs.suspect_timeout", "PT3S"),
            ("syncLimit", "3"),
            ("ttl", "20"),
            ("down-after-milliseconds", "1000"),
            ("min-replicas-to-write", "1"),
            ("raft-election-timeout-ticks", "5"),
            ("lease", "5"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        let etcd = crate::db::etcd::Etcd.processes(&layout, 0);
        assert!(etcd[0].args.contains(&"--election-timeout=500".to_string()));
        let galera = crate::db::galera::config(&layout, 0);
        assert!(
            galera.contains("\ninnodb_flush_log_at_trx_commit=2\n"),
            "{galera}"
        );
        assert!(galera.contains(";evs.suspect_timeout=PT3S;"), "{galera}");
        assert!(crate::db::zookeeper::config(&layout, 0).contains("\nsyncLimit=3\n"));
        assert!(crate::db::patroni::config(&layout, 0).contains("\n    ttl: 20\n"));
        assert!(crate::db::redis_sentinel::sentinel_config(&layout, 0)
            .contains("sentinel down-after-milliseconds perseus 1000\n"));
        assert!(crate::db::redis_sentinel::redis_config(&layout, 0)
            .contains("min-replicas-to-write 1\n"));
        assert!(
            crate::db::tidb::tikv_config(&layout).contains("\nraft-election-timeout-ticks = 5\n")
        );
        assert!(crate::db::tidb::pd_config(&layout).starts_with("lease = 5\n"));
    }

    #[test]
    fn iso_durations_read_in_milliseconds() {
        assert_eq!(iso_ms("PT5S"), Some(5000));
        assert_eq!(iso_ms("PT0.5S"), Some(500));
        assert_eq!(iso_ms("PT1.25S"), Some(1250));
        for bad in [
            "5S",
            "PT5",
            "PTS",
            "PT.5S",
            "PT1.2345S",
            "PT-1S",
            "PT1e3S",
            "PT5S;x=1",
        ] {
            assert_eq!(iso_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_admit_only_their_kind() {
        const KNOBS: &[Knob] = &[
            Knob {
                name: "ttl",
                default: "30",
                kind: Kind::Number,
                about: "",
            },
            Knob {
                name: "mode",
                default: "a",
                kind: Kind::OneOf(&["a", "b"]),
                about: "",
            },
        ];
        let set = |n: &str, v: &str| -> Overrides { [(n.to_string(), v.to_string())].into() };
        assert!(check("x", KNOBS, &set("ttl", "10")).is_ok());
        assert!(check("x", KNOBS, &set("mode", "b")).is_ok());
        for (n, v, says) in [
            ("ttl", "10\nrequirepass x", "takes a whole number"),
            ("ttl", "", "takes a whole number"),
            ("mode", "c", "one of a, b"),
            ("nope", "1", "its settings: ttl, mode"),
        ] {
            let e = check("x", KNOBS, &set(n, v)).unwrap_err().to_string();
            assert!(e.contains(says), "{n}={v:?}: {e}");
        }
        assert!(Kind::Size.admits("64M") && !Kind::Size.admits("64MB"));
        assert!(Kind::Bool.admits("false") && !Kind::Bool.admits("no"));
    }
}
