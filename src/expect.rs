//! Expectations on a run's figures, for a gate in CI: `downtime_on_isolation_ms <= 2000`,
//! `p90(recovery_time_ms) < 5000`, `lost_acknowledged_writes == 0`; and the comparison of a
//! run with a baseline run. Pure: the figures come in as values per run.
//!
//! Grammar: `[STAT(]KEY[)] OP NUMBER`, where STAT is `min`, `median`, `p90` or `max` over the
//! runs of a repeat (without one, the bound holds for every run), KEY a figure
//! (`<metric>_ms`, `<metric>_s`, `lost_acknowledged_writes`, `lost_to_late_writes`,
//! `violations`), OP one of `<=`, `<`, `>=`, `>`, `==`, `!=`, and NUMBER a whole number
//! (`_` may group digits).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Every figure an expectation can name: each metric of [`crate::analysis::METRICS`] as
/// `<key>_ms` and `<key>_s`, then what was lost and the violations (the keys of
/// `report::summary::Summary::figures`).
pub fn figure_keys() -> Vec<String> {
    let mut keys: Vec<String> = crate::analysis::METRICS
        .iter()
        .flat_map(|m| [format!("{}_ms", m.key), format!("{}_s", m.key)])
        .collect();
    keys.extend(
        [
            "lost_acknowledged_writes",
            "lost_to_late_writes",
            "violations",
            "outside_expected",
        ]
        .map(String::from),
    );
    keys
}

/// Which value of the runs an expectation bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// Every run's own value.
    Each,
    Min,
    Median,
    P90,
    Max,
}

impl Stat {
    const NAMED: [(Stat, &'static str); 4] = [
        (Stat::Min, "min"),
        (Stat::Median, "median"),
        (Stat::P90, "p90"),
        (Stat::Max, "max"),
    ];

    /// The value over `values` (nearest rank, as the repeat's summary computes it);
    /// `None` if no run has one.
    pub fn of(self, values: &[u64]) -> Option<u64> {
        let mut v = values.to_vec();
        v.sort_unstable();
        let rank = |q: f64| {
            let r = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
            v.get(r - 1).copied()
        };
        match self {
            Stat::Each | Stat::Max => v.last().copied(),
            Stat::Min => v.first().copied(),
            Stat::Median => rank(0.5),
            Stat::P90 => rank(0.9),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Le,
    Lt,
    Ge,
    Gt,
    Eq,
    Ne,
}

impl Op {
    /// Longest first, so `<=` is not read as `<`.
    const ALL: [(Op, &'static str); 6] = [
        (Op::Le, "<="),
        (Op::Ge, ">="),
        (Op::Eq, "=="),
        (Op::Ne, "!="),
        (Op::Lt, "<"),
        (Op::Gt, ">"),
    ];

    fn holds(self, a: u64, b: u64) -> bool {
        match self {
            Op::Le => a <= b,
            Op::Lt => a < b,
            Op::Ge => a >= b,
            Op::Gt => a > b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }

    fn text(self) -> &'static str {
        Op::ALL
            .iter()
            .find(|(o, _)| *o == self)
            .map_or("?", |p| p.1)
    }
}

/// One expectation on a figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub stat: Stat,
    pub key: String,
    pub op: Op,
    pub bound: u64,
}

impl FromStr for Expectation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let form = "write KEY OP NUMBER, e.g. 'downtime_on_isolation_ms <= 2000' or 'p90(recovery_time_ms) < 5000'";
        let (pos, op, sym) = Op::ALL
            .iter()
            .filter_map(|(op, sym)| text.find(sym).map(|p| (p, *op, *sym)))
            .min_by_key(|(p, _, sym)| (*p, usize::MAX - sym.len()))
            .ok_or_else(|| format!("'{text}' has no comparison: {form}"))?;
        let (lhs, rhs) = (text[..pos].trim(), text[pos + sym.len()..].trim());
        let digits = rhs.replace('_', "");
        let bound = digits
            .parse::<u64>()
            .ok()
            .filter(|_| digits.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| format!("'{rhs}' in '{text}' is not a whole number: {form}"))?;
        let (stat, key) = match lhs.split_once('(') {
            Some((f, rest)) => {
                let key = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("'{lhs}' in '{text}' lacks its ')': {form}"))?;
                let stat = Stat::NAMED
                    .iter()
                    .find(|(_, n)| *n == f.trim())
                    .map(|(s, _)| *s)
                    .ok_or_else(|| {
                        format!(
                            "'{}' in '{text}' is not one of min, median, p90, max",
                            f.trim()
                        )
                    })?;
                (stat, key.trim())
            }
            None => (Stat::Each, lhs),
        };
        if !figure_keys().iter().any(|k| k == key) {
            return Err(format!(
                "'{key}' in '{text}' is not a figure; the figures are: {}",
                figure_keys().join(", ")
            ));
        }
        Ok(Expectation {
            stat,
            key: key.to_string(),
            op,
            bound,
        })
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            Named(self.stat, &self.key),
            self.op.text(),
            self.bound
        )
    }
}

impl serde::Serialize for Expectation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Expectation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The figures of one run, or of every run of a repeat: each key's value per run (`None`:
/// not applicable in that run), with the runs' names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub runs: Vec<String>,
    pub values: BTreeMap<String, Vec<Option<u64>>>,
}

/// An expectation that did not hold, and why, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub expectation: String,
    pub why: String,
}

impl Expectation {
    /// Whether it holds for `figures`; `Err`: why not. A figure that a run did not measure
    /// (no rejoin, say) fails it: a gate passes on evidence only.
    pub fn check(&self, figures: &Figures) -> Result<(), String> {
        let values = figures.values.get(&self.key).ok_or_else(|| {
            let keys: Vec<&str> = figures.values.keys().map(|k| k.as_str()).collect();
            format!(
                "no figure '{}'; the figures are: {}",
                self.key,
                keys.join(", ")
            )
        })?;
        let run = |i: usize| {
            figures
                .runs
                .get(i)
                .map_or_else(|| format!("run {}", i + 1), |r| format!("run {r}"))
        };
        if let Some(i) = values.iter().position(|v| v.is_none()) {
            return Err(format!("{}: not measured in {}", self.key, run(i)));
        }
        let all: Vec<u64> = values.iter().flatten().copied().collect();
        if all.is_empty() {
            return Err(format!("{}: no run measured it", self.key));
        }
        if self.stat == Stat::Each {
            for (i, v) in all.iter().enumerate() {
                if !self.op.holds(*v, self.bound) {
                    let whose = if all.len() == 1 {
                        String::new()
                    } else {
                        format!(" in {}", run(i))
                    };
                    return Err(format!("{} was {v}{whose}", self.key));
                }
            }
            return Ok(());
        }
        let v = self.stat.of(&all).expect("values present");
        if self.op.holds(v, self.bound) {
            Ok(())
        } else {
            Err(format!(
                "{} was {v} over {} runs ({all:?})",
                Named(self.stat, &self.key),
                all.len()
            ))
        }
    }
}

/// A figure as an expectation names it: `key`, or `stat(key)`.
struct Named<'a>(Stat, &'a str);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Stat::NAMED.iter().find(|(s, _)| *s == self.0) {
            Some((_, name)) => write!(f, "{name}({})", self.1),
            None => f.write_str(self.1),
        }
    }
}

/// Checks every expectation; the ones that failed, in order.
pub fn check(expectations: &[Expectation], figures: &Figures) -> Vec<Failure> {
    expectations
        .iter()
        .filter_map(|e| {
            e.check(figures).err().map(|why| Failure {
                expectation: e.to_string(),
                why,
            })
        })
        .collect()
}

/// The figures a baseline bounds: every metric in milliseconds, and what was lost.
fn baselined(key: &str) -> bool {
    key.ends_with("_ms")
        || matches!(
            key,
            "lost_acknowledged_writes" | "lost_to_late_writes" | "violations"
        )
}

/// Compares `run` with `baseline`: each millisecond figure's median may not exceed the
/// baseline's worst run by more than `tolerance` (a fraction) of the baseline's median,
/// so a baseline that spreads widely allows as much; what was lost and the violations may
/// not exceed the baseline's worst run at all. Figures that either side did not measure
/// are left out.
pub fn against_baseline(run: &Figures, baseline: &Figures, tolerance: f64) -> Baseline {
    let mut failed = Vec::new();
    let mut compared = 0;
    for (key, values) in &run.values {
        let Some(base) = baseline.values.get(key).filter(|_| baselined(key)) else {
            continue;
        };
        let ours: Vec<u64> = values.iter().flatten().copied().collect();
        let theirs: Vec<u64> = base.iter().flatten().copied().collect();
        let (Some(median), Some(worst), Some(base_median)) = (
            Stat::Median.of(&ours),
            Stat::Max.of(&theirs),
            Stat::Median.of(&theirs),
        ) else {
            continue;
        };
        compared += 1;
        let (limit, how) = if key.ends_with("_ms") {
            let slack = (base_median as f64 * tolerance).round() as u64;
            (
                worst.saturating_add(slack),
                format!(
                    "the baseline's worst run {worst} + {:.0}% of its median {base_median}",
                    tolerance * 100.0
                ),
            )
        } else {
            (worst, format!("the baseline's worst run {worst}"))
        };
        if median > limit {
            failed.push(Failure {
                expectation: format!("median({key}) <= {limit} (baseline)"),
                why: format!(
                    "median({key}) was {median} over {} runs, above {how}",
                    ours.len()
                ),
            });
        }
    }
    Baseline { compared, failed }
}

/// What [`against_baseline`] found: how many figures it compared, and the ones above
/// their bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    pub compared: usize,
    pub failed: Vec<Failure>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(pairs: &[(&str, &[Option<u64>])]) -> Figures {
        let n = pairs.first().map_or(0, |p| p.1.len());
        Figures {
            runs: (1..=n).map(|k| k.to_string()).collect(),
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn expectations_parse_and_print_back() {
        for text in [
            "downtime_on_isolation_ms <= 2000",
            "p90(recovery_time_ms) < 5000",
            "lost_acknowledged_writes == 0",
            "max(violations) != 3",
            "median(disturbance_time_s) >= 1",
            "min(recovery_time_ms) > 10",
        ] {
            let e: Expectation = text.parse().unwrap();
            assert_eq!(e.to_string(), text);
        }
        let e: Expectation = " p90( recovery_time_ms )<=1_000 ".parse().unwrap();
        assert_eq!(
            (e.stat, e.key.as_str(), e.op, e.bound),
            (Stat::P90, "recovery_time_ms", Op::Le, 1000)
        );
        for (bad, says) in [
            ("downtime_on_isolation_ms", "no comparison"),
            ("downtime_on_isolation_ms <= 2s", "not a whole number"),
            ("downtime_on_isolation_ms <= -1", "not a whole number"),
            ("p99(recovery_time_ms) < 5", "not one of min, median, p90, max"),
            ("p90(recovery_time_ms < 5", "lacks its ')'"),
            ("Downtime <= 5", "'Downtime' in 'Downtime <= 5' is not a figure; the figures are: downtime_on_isolation_ms, "),
            ("<= 5", "is not a figure"),
            ("nonsense_ms < 1", "is not a figure"),
        ] {
            let e = bad.parse::<Expectation>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bare_key_bounds_every_run_and_a_stat_bounds_the_runs_together() {
        let f = figures(&[
            ("recovery_time_ms", &[Some(1000), Some(3000), Some(2000)]),
            ("lost_acknowledged_writes", &[Some(0), Some(0), Some(0)]),
            ("downtime_on_recovery_ms", &[Some(5), None, Some(5)]),
        ]);
        let check = |t: &str| t.parse::<Expectation>().unwrap().check(&f);
        assert_eq!(
            check("recovery_time_ms <= 2500"),
            Err("recovery_time_ms was 3000 in run 2".into())
        );
        assert_eq!(check("median(recovery_time_ms) <= 2000"), Ok(()));
        assert!(check("max(recovery_time_ms) < 3000")
            .unwrap_err()
            .contains("max(recovery_time_ms) was 3000 over 3 runs"));
        assert_eq!(check("lost_acknowledged_writes == 0"), Ok(()));
        assert_eq!(
            check("downtime_on_recovery_ms <= 10"),
            Err("downtime_on_recovery_ms: not measured in run 2".into())
        );
        let failed = super::check(
            &[
                "recovery_time_ms < 9999".parse().unwrap(),
                "min(recovery_time_ms) > 1000".parse().unwrap(),
            ],
            &f,
        );
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].expectation, "min(recovery_time_ms) > 1000");
    }

    #[test]
    fn a_baseline_at_the_largest_figure_does_not_wrap_around() {
        let base = figures(&[("recovery_time_ms", &[Some(u64::MAX), Some(200)])]);
        let run = figures(&[("recovery_time_ms", &[Some(5000)])]);
        let b = against_baseline(&run, &base, 0.2);
        assert_eq!(
            (b.compared, b.failed),
            (1, vec![]),
            "the limit stays at the top"
        );
    }

    #[test]
    fn a_baseline_allows_its_own_spread_plus_the_tolerance() {
        let base = figures(&[
            ("recovery_time_ms", &[Some(1000), Some(2000), Some(1500)]),
            ("recovery_time_s", &[Some(1), Some(2), Some(1)]),
            ("lost_acknowledged_writes", &[Some(0), Some(2), Some(0)]),
        ]);
        // Limit: worst 2000 + 10% of median 1500 = 2150.
        let ok = figures(&[
            ("recovery_time_ms", &[Some(2100), Some(2150), Some(900)]),
            ("recovery_time_s", &[Some(9), Some(9), Some(9)]),
            ("lost_acknowledged_writes", &[Some(2), Some(2), Some(2)]),
        ]);
        let b = against_baseline(&ok, &base, 0.1);
        assert_eq!(
            (b.compared, b.failed),
            (2, vec![]),
            "seconds are not baselined"
        );
        let worse = figures(&[
            ("recovery_time_ms", &[Some(2200), Some(2200), Some(900)]),
            ("lost_acknowledged_writes", &[Some(3), Some(3), Some(0)]),
        ]);
        let failed = against_baseline(&worse, &base, 0.1).failed;
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert!(failed.iter().any(|f| f.why.contains("median(recovery_time_ms) was 2200 over 3 runs, above the baseline's worst run 2000 + 10% of its median 1500")), "{failed:?}");
        assert!(
            failed
                .iter()
                .any(|f| f.why.contains("median(lost_acknowledged_writes) was 3")),
            "{failed:?}"
        );
    }
}
