//! What `--json` prints and `--csv` writes: each JSON document typed, with a `format` and a
//! `version`, and a JSON Schema of each in `docs/schema/` ([`schemas`]); CSV for the
//! tables of `compare` and `matrix`.

use super::matrix::Row;
use super::repeat::Repeat;
use super::summary::Summary;
use crate::analysis::METRICS;
use serde::{Deserialize, Serialize};

/// `perseus check --json`: every expectation's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckReport {
    /// Always `perseus-check`.
    pub format: String,
    pub version: u32,
    /// The results directory checked.
    pub dir: String,
    /// How many runs it holds (1, or a repeat's N).
    pub runs: usize,
    /// Whether every expectation, and the baseline if any, held.
    pub passed: bool,
    /// Each expectation in order, with why it failed.
    pub expectations: Vec<CheckedExpectation>,
    /// The comparison with a baseline, if one was given.
    pub baseline: Option<CheckedBaseline>,
}

/// One expectation's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckedExpectation {
    pub expectation: String,
    pub ok: bool,
    /// Why it failed, in one line; `null` when it held.
    pub why: Option<String>,
}

/// A baseline's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckedBaseline {
    pub dir: String,
    /// How many figures were compared.
    pub compared: usize,
    /// The figures beyond the baseline's bounds, each with why.
    pub failed: Vec<CheckedExpectation>,
}

impl CheckReport {
    pub const FORMAT: &'static str = "perseus-check";
    pub const VERSION: u32 = 1;

    /// The report of checking `dir` (`runs` runs): `expectations` with the ones of them
    /// that `failed`, and a baseline's `(dir, compared, failed)` if one was given.
    pub fn new(
        dir: &std::path::Path,
        runs: usize,
        expectations: &[crate::expect::Expectation],
        failed: &[crate::expect::Failure],
        baseline: Option<(&std::path::Path, usize, &[crate::expect::Failure])>,
    ) -> CheckReport {
        let verdict = |f: &crate::expect::Failure| CheckedExpectation {
            expectation: f.expectation.clone(),
            ok: false,
            why: Some(f.why.clone()),
        };
        let expectations: Vec<CheckedExpectation> = expectations
            .iter()
            .map(|e| {
                let text = e.to_string();
                match failed.iter().find(|f| f.expectation == text) {
                    Some(f) => verdict(f),
                    None => CheckedExpectation {
                        expectation: text,
                        ok: true,
                        why: None,
                    },
                }
            })
            .collect();
        let baseline = baseline.map(|(d, compared, failed)| CheckedBaseline {
            dir: d.display().to_string(),
            compared,
            failed: failed.iter().map(verdict).collect(),
        });
        CheckReport {
            format: Self::FORMAT.into(),
            version: Self::VERSION,
            dir: dir.display().to_string(),
            runs,
            passed: expectations.iter().all(|e| e.ok)
                && baseline.as_ref().is_none_or(|b| b.failed.is_empty()),
            expectations,
            baseline,
        }
    }
}

/// `perseus compare --json`: the runs compared, each with its summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Comparison {
    /// Always `perseus-compare`.
    pub format: String,
    pub version: u32,
    pub runs: Vec<ComparedRun>,
}

/// One run of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ComparedRun {
    /// The results directory's name.
    pub name: String,
    pub summary: Summary,
}

impl Comparison {
    pub const FORMAT: &'static str = "perseus-compare";
    pub const VERSION: u32 = 1;

    pub fn of(runs: &[super::compare::Compared]) -> Comparison {
        Comparison {
            format: Self::FORMAT.into(),
            version: Self::VERSION,
            runs: runs
                .iter()
                .map(|r| ComparedRun {
                    name: r.name.clone(),
                    summary: r.summary.clone(),
                })
                .collect(),
        }
    }
}

/// The JSON Schema of every document Perseus writes or prints, by file name in
/// `docs/schema/`.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    let value = |s: schemars::Schema| serde_json::to_value(s).expect("a schema serialises");
    vec![
        ("summary.schema.json", value(schemars::schema_for!(Summary))),
        ("repeat.schema.json", value(schemars::schema_for!(Repeat))),
        (
            "check.schema.json",
            value(schemars::schema_for!(CheckReport)),
        ),
        (
            "compare.schema.json",
            value(schemars::schema_for!(Comparison)),
        ),
    ]
}

/// One CSV field: quoted where it holds a comma, a quote or a line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn line(fields: &[String]) -> String {
    let mut l = fields
        .iter()
        .map(|f| field(f))
        .collect::<Vec<_>>()
        .join(",");
    l.push('\n');
    l
}

fn number(v: Option<u64>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

/// `perseus compare --csv`: a row per run, every figure of [`Summary::figures`] as a
/// column (empty: not applicable), after the run's name, database, version, write mode,
/// fault and the role of the node it hit.
pub fn compare_csv(runs: &[super::compare::Compared]) -> String {
    let keys: Vec<String> = runs
        .first()
        .map(|r| r.summary.figures().into_keys().collect())
        .unwrap_or_default();
    let mut header: Vec<String> = [
        "run", "database", "version", "write", "fault", "target", "role",
    ]
    .map(String::from)
    .to_vec();
    header.extend(keys.iter().cloned());
    let mut t = line(&header);
    for r in runs {
        let s = &r.summary;
        let fault = s.fault.as_ref();
        let mut row = vec![
            r.name.clone(),
            s.database.clone(),
            s.database_version.clone().unwrap_or_default(),
            s.write.clone(),
            fault.map_or(String::new(), |f| f.kind.clone()),
            fault.map_or(String::new(), |f| f.target.clone()),
            fault.and_then(|f| f.role.clone()).unwrap_or_default(),
        ];
        let figures = s.figures();
        row.extend(
            keys.iter()
                .map(|k| number(figures.get(k).copied().flatten())),
        );
        t.push_str(&line(&row));
    }
    t
}

/// `table.csv` of a matrix: a row per database and scenario; for each metric (ms) and the
/// lost acknowledged writes, the median, min and max over the runs; the runs outside the
/// expected range of each bounded figure.
pub fn matrix_csv(rows: &[Row]) -> String {
    let mut keys: Vec<String> = METRICS.iter().map(|m| format!("{}_ms", m.key)).collect();
    keys.push("lost_acknowledged_writes".into());
    let mut header: Vec<String> = ["database", "version", "scenario", "runs"]
        .map(String::from)
        .to_vec();
    for k in &keys {
        for stat in ["median", "min", "max"] {
            header.push(format!("{k}_{stat}"));
        }
    }
    let bounded: Vec<String> = [
        crate::db::failover::DOWNTIME,
        crate::db::failover::DISTURBANCE,
        crate::db::failover::DOWNTIME_ON_RECOVERY,
        crate::db::failover::RECOVERY,
    ]
    .iter()
    .map(|k| format!("{k}_ms"))
    .collect();
    for k in &bounded {
        header.push(format!("{k}_runs_outside_expected"));
    }
    let mut t = line(&header);
    for r in rows {
        let mut row = vec![
            r.database.clone(),
            r.repeat.database_versions.join(" "),
            r.scenario.clone(),
            r.repeat.runs.len().to_string(),
        ];
        for k in &keys {
            let s = r.repeat.figures.get(k);
            row.push(number(s.and_then(|s| s.median)));
            row.push(number(s.and_then(|s| s.min)));
            row.push(number(s.and_then(|s| s.max)));
        }
        for k in &bounded {
            row.push(
                r.repeat
                    .expected
                    .get(k)
                    .map_or(String::new(), |e| e.outside.len().to_string()),
            );
        }
        t.push_str(&line(&row));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schemas in `docs/schema/` are the ones the types make: a change of a document's
    /// shape changes its committed schema in the same commit.
    #[test]
    fn the_committed_schemas_are_the_types_own() {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema"));
        for (file, schema) in schemas() {
            let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            assert!(
                committed == text,
                "docs/schema/{file} differs from the type's schema: write it anew with \
                 `perseus schema {} > docs/schema/{file}`",
                file.trim_end_matches(".schema.json")
            );
        }
    }

    #[test]
    fn csv_fields_are_quoted_where_they_must_be() {
        assert_eq!(field("etcd"), "etcd");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(line(&["x".into(), "".into(), "1,2".into()]), "x,,\"1,2\"\n");
    }

    /// A check's report says which expectation failed and why, and passes only when all
    /// held, the baseline's too.
    #[test]
    fn a_check_report_passes_only_when_everything_held() {
        let e: Vec<crate::expect::Expectation> =
            ["violations == 0", "max(recovery_time_ms) < 5000"]
                .iter()
                .map(|t| t.parse().unwrap())
                .collect();
        let failed = [crate::expect::Failure {
            expectation: e[1].to_string(),
            why: "max 6100 is not < 5000".into(),
        }];
        let dir = std::path::Path::new("runs/x");
        let r = CheckReport::new(dir, 3, &e, &failed, None);
        assert!(!r.passed);
        assert!(r.expectations[0].ok && r.expectations[0].why.is_none());
        assert_eq!(
            r.expectations[1].why.as_deref(),
            Some("max 6100 is not < 5000")
        );
        let r = CheckReport::new(dir, 3, &e[..1], &[], Some((dir, 14, &failed)));
        assert!(!r.passed, "the baseline failed");
        let r = CheckReport::new(dir, 3, &e[..1], &[], Some((dir, 14, &[])));
        assert!(r.passed);
        assert_eq!((r.format.as_str(), r.version), (CheckReport::FORMAT, 1));
    }
}
