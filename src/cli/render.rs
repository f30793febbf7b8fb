//! What the terminal shows: the live table's echo, progress lines, the tables of `list` and
//! `status`, and the verdicts of `check`. Rendering only: the values come from the parent
//! module and the library.

use super::args::ListWhat;
use anyhow::Result;
use perseus::db::{self, Health};
use perseus::fault::InForce;
use perseus::lab::{process, LabState};

/// The live table's echo: standard output, until it closes (`perseus run etcd | head`).
pub fn stdout_echo() -> perseus::watch::Echo {
    Box::new(|text: &str| {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        out.write_all(perseus::terminal::printable(text).as_bytes())
            .and_then(|_| out.flush())
            .is_ok()
    })
}

/// Progress and errors, on standard error; a closed stream never stops the command.
pub fn say(line: String) {
    use std::io::Write as _;
    let line = perseus::terminal::printable(&line);
    let _ = writeln!(std::io::stderr(), "perseus: {line}");
}

/// `perseus list`: the databases (with their packages and whether they are installed), the
/// built-in scenarios, or the faults, from their registries; as JSON (format `perseus-list`)
/// with `json`.
pub fn list(what: ListWhat, json: bool) -> Result<()> {
    if json {
        super::json(&list_json(what)?);
        return Ok(());
    }
    if let ListWhat::Scenarios = what {
        for (name, _) in perseus::scenario::BUILT_IN {
            let sc = perseus::scenario::Scenario::load(name, None)?;
            outln!("{name:<20}{}\n{:<20}{}", sc.description, "", sc.outline());
        }
        outln!("\nperseus run DB --scenario NAME|FILE.toml; a scenario file is TOML: see scenarios/ and the README");
        return Ok(());
    }
    if let ListWhat::Settings = what {
        let rows: Vec<[String; 4]> = db::REGISTRY
            .iter()
            .flat_map(|d| {
                d.knobs().iter().map(|k| {
                    [
                        d.name().to_string(),
                        k.name.to_string(),
                        k.default.to_string(),
                        k.about.to_string(),
                    ]
                })
            })
            .collect();
        let header = ["database", "setting", "preset", "what it governs"].map(String::from);
        outln!("{}", columns(std::iter::once(&header).chain(&rows)));
        outln!("\nperseus run DB --set NAME=VALUE (repeatable); perseus up DB --set NAME=VALUE");
        return Ok(());
    }
    if let ListWhat::Faults = what {
        let rows: Vec<[String; 4]> = perseus::fault::FAULTS
            .iter()
            .map(|f| {
                let k = f.kind();
                let params: Vec<&str> = f.params().iter().map(|p| p.name).collect();
                let undo = match f.undone_by() {
                    Some((word, _)) => format!("{word} NODE, heal"),
                    None => "heal".into(),
                };
                [
                    format!("{} {}", k.name, params.join(" ")),
                    format!("{} / {}", k.starting, k.started),
                    undo,
                    f.about().to_string(),
                ]
            })
            .collect();
        let header = ["action", "markers", "undone by", "about"].map(String::from);
        outln!("{}", columns(std::iter::once(&header).chain(&rows)));
        outln!("\nfrom any terminal: perseus ACTION [--lab NAME]; in a scenario: faults = [\"ACTION\"]");
        return Ok(());
    }
    let rows: Vec<[String; 7]> = db::REGISTRY
        .iter()
        .map(|d| {
            let mut needs: Vec<String> = d.binaries().iter().map(|(_, p)| p.to_string()).collect();
            needs.dedup();
            let mut installed = if d.check_installed(None).is_ok() {
                "yes".to_string()
            } else {
                "no".to_string()
            };
            if let Some(p) = d.npm_package() {
                needs.push(format!("+ {} (npm)", p.spec));
                if !p.installed() {
                    installed += &format!(" (first run installs {} with npm)", p.spec);
                }
            }
            [
                d.name().to_string(),
                d.client().to_string(),
                db::backends(*d).to_string(),
                needs.join(" "),
                installed,
                if d.run_here() {
                    "yes"
                } else {
                    "not on this project's machines"
                }
                .to_string(),
                d.about().to_string(),
            ]
        })
        .collect();
    let header = [
        "database",
        "client",
        "backend",
        "needs",
        "installed",
        "run here",
        "about",
    ]
    .map(String::from);
    outln!("{}", columns(std::iter::once(&header).chain(&rows)));
    let rows: Vec<[String; 3]> = db::PROTOCOLS
        .iter()
        .map(|d| {
            [
                d.name().to_string(),
                d.client_port().to_string(),
                d.about().to_string(),
            ]
        })
        .collect();
    let header = ["protocol", "port", "about"].map(String::from);
    outln!("\n{}", columns(std::iter::once(&header).chain(&rows)));
    outln!("a protocol starts nothing: name it as the database of a cluster file (database = \"postgres\") to measure a cluster you run, each node's client talking to that node only");
    Ok(())
}

/// What `perseus list --json` prints.
fn list_json(what: ListWhat) -> Result<serde_json::Value> {
    use serde_json::json;
    let (name, items): (&str, Vec<serde_json::Value>) = match what {
        ListWhat::Databases => (
            "databases",
            db::REGISTRY
                .iter()
                .map(|d| {
                    let mut packages: Vec<&str> = d.binaries().iter().map(|(_, p)| *p).collect();
                    packages.dedup();
                    json!({
                        "name": d.name(),
                        "client": d.client(),
                        "backends": db::backends(*d),
                        "packages": packages,
                        "installed": d.check_installed(None).is_ok(),
                        "npm": d.npm_package().map(|p| json!({
                            "package": p.spec,
                            "installed": p.installed(),
                        })),
                        "about": d.about(),
                        "leader": d.leadership().is_some(),
                        "settings": d.knobs().iter().map(|k| json!({
                            "name": k.name,
                            "default": k.default,
                            "about": k.about,
                        })).collect::<Vec<_>>(),
                        "failover_model": d.failover().is_some(),
                        "run_here": d.run_here(),
                        "protocol": false,
                    })
                })
                .chain(db::PROTOCOLS.iter().map(|d| {
                    json!({
                        "name": d.name(),
                        "port": d.client_port(),
                        "about": d.about(),
                        "protocol": true,
                    })
                }))
                .collect(),
        ),
        ListWhat::Settings => (
            "settings",
            db::REGISTRY
                .iter()
                .flat_map(|d| {
                    d.knobs().iter().map(|k| {
                        json!({"database": d.name(), "name": k.name, "default": k.default, "about": k.about})
                    })
                })
                .collect(),
        ),
        ListWhat::Scenarios => (
            "scenarios",
            perseus::scenario::BUILT_IN
                .iter()
                .map(|(name, _)| {
                    let sc = perseus::scenario::Scenario::load(name, None)?;
                    Ok(json!({
                        "name": name,
                        "description": sc.description,
                        "outline": sc.outline(),
                    }))
                })
                .collect::<Result<_>>()?,
        ),
        ListWhat::Faults => (
            "faults",
            perseus::fault::FAULTS
                .iter()
                .map(|f| {
                    let k = f.kind();
                    json!({
                        "name": k.name,
                        "params": f.params().iter().map(|p| p.name).collect::<Vec<_>>(),
                        "markers": [k.starting, k.started, k.ending, k.ended],
                        "undone_by": f.undone_by().map(|(word, _)| word),
                        "about": f.about(),
                    })
                })
                .collect(),
        ),
    };
    Ok(json!({"format": "perseus-list", "version": 1, "what": name, "items": items}))
}

/// `perseus status --json`: one lab as JSON, with what [`lab_status`] shows.
pub fn lab_json(
    state: &LabState,
    health: Option<&(Health, Option<usize>)>,
    in_force: Option<&[InForce]>,
    does: Option<&[String]>,
) -> serde_json::Value {
    use serde_json::json;
    let up_s = (perseus::clock::unix_ms() - state.created_unix_ms).max(0) as u64 / 1000;
    let nodes: Vec<serde_json::Value> = state
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({
                "name": n.name,
                "address": n.addr.to_string(),
                "namespace": n.netns,
                "processes": n.processes.iter().map(|p| json!({
                    "name": p.name,
                    "pid": p.pid,
                    "alive": process::is_alive(p.pid, p.start_time),
                })).collect::<Vec<_>>(),
                "faults": in_force.map(|all| all
                    .iter()
                    .filter(|f| f.nodes.contains(&i))
                    .map(|f| format!("{} {}", f.kind.started, f.target))
                    .collect::<Vec<_>>()),
                "rules_do": does.and_then(|d| d.get(i)).filter(|d| !d.is_empty()),
            })
        })
        .collect();
    json!({
        "name": state.name,
        "database": state.database,
        "subnet": state.subnet.to_string(),
        "up_s": up_s,
        "nodes": nodes,
        "leader": health.and_then(|(_, l)| l.map(|i| state.nodes[i].name.clone())),
        "ready": health.map(|(h, _)| h.ready),
        "why": health.filter(|(h, _)| !h.ready).map(|(h, _)| h.why.clone()),
        "containers": state.containers.as_ref().map(|c| json!({
            "engine": c.engine,
            "socket": c.socket,
            "image": c.image,
            "image_id": c.image_id,
            "digest": c.digest,
            "network": c.network,
        })),
    })
}

/// Rows as text columns, each as wide as its widest cell plus two spaces (the last column
/// is not padded).
pub fn columns<'a, const N: usize>(rows: impl Iterator<Item = &'a [String; N]> + Clone) -> String {
    let mut widths = [0; N];
    for row in rows.clone() {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let lines: Vec<String> = rows
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == N {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            line
        })
        .collect();
    lines.join("\n")
}

/// One lab: its database, size and age, then the table of its nodes (addresses, namespaces,
/// processes, faults in force) and its leader and readiness. `health`: what the database's probe found, with the node that
/// leads; `None` if the database is unknown. `in_force`: `None` if it could not be read.
/// `does`: what each node's rules do, in words, read back from them.
pub fn lab_status(
    state: &LabState,
    health: Option<&(Health, Option<usize>)>,
    in_force: Option<&[InForce]>,
    does: Option<&[String]>,
) {
    let up_for = (perseus::clock::unix_ms() - state.created_unix_ms).max(0) as u64 / 1000;
    outln!(
        "lab {}: {}, {} nodes, {}, up {}",
        state.name,
        state.database,
        state.nodes.len(),
        state.subnet,
        perseus::clock::format_duration(std::time::Duration::from_secs(up_for))
    );
    if let Some(c) = &state.containers {
        outln!(
            "  containers of {} ({}) on network {}, {} engine at {}",
            c.image,
            c.digest.as_deref().unwrap_or(&c.image_id),
            c.network,
            c.engine.name(),
            c.socket
        );
    }
    if let Some(d) = state.nodes.iter().find_map(|n| n.disk.as_ref()) {
        outln!(
            "  disks: each node's {} is a layer Perseus serves (--disk faulty), over {}",
            d.mount
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            d.backing.parent().unwrap_or(&d.backing).display()
        );
    }
    outln!(
        "  {:<5}{:<15}{:<28}{:<24}faults",
        "node",
        "address",
        "namespace",
        "processes"
    );
    for (i, n) in state.nodes.iter().enumerate() {
        let procs: Vec<String> = n
            .processes
            .iter()
            .map(|p| {
                let alive = if process::is_alive(p.pid, p.start_time) {
                    ""
                } else {
                    " (gone)"
                };
                format!("{} {}{alive}", p.name, p.pid)
            })
            .collect();
        let faults = match in_force {
            Some(all) => {
                let here: Vec<String> = all
                    .iter()
                    .filter(|f| f.nodes.contains(&i))
                    .map(|f| format!("{} {}", f.kind.started, f.target))
                    .collect();
                match does.and_then(|d| d.get(i)).filter(|d| !d.is_empty()) {
                    _ if here.is_empty() => "-".to_string(),
                    Some(d) => format!("{} ({d})", here.join("; ")),
                    None => here.join("; "),
                }
            }
            None => "? (namespace missing)".to_string(),
        };
        let procs = if procs.is_empty() {
            "-".to_string()
        } else {
            procs.join(", ")
        };
        outln!(
            "  {:<5}{:<15}{:<28}{:<24}{faults}",
            n.name,
            n.addr.to_string(),
            n.netns,
            procs
        );
    }
    if let Some((h, leader)) = health {
        let leader = leader
            .map(|i| state.nodes[i].name.clone())
            .unwrap_or_else(|| "none".into());
        let ready = if h.ready {
            "ready".to_string()
        } else {
            format!("not ready: {}", h.why)
        };
        outln!("  leader: {leader}; {ready}");
    }
}

/// A line per expectation (`ok` or `FAIL` with why), then the baseline's verdict (`dir`,
/// figures compared, whether all were within bounds) and its failures, and a last line if
/// everything held.
pub fn verdicts(
    expectations: &[perseus::expect::Expectation],
    failed: &[perseus::expect::Failure],
    baseline: Option<(&std::path::Path, usize, bool)>,
    runs: usize,
) {
    for e in expectations {
        let text = e.to_string();
        match failed.iter().find(|f| f.expectation == text) {
            Some(f) => outln!("FAIL  {text}: {}", f.why),
            None => outln!("ok    {text}"),
        }
    }
    if let Some((dir, compared, true)) = baseline {
        outln!(
            "ok    {compared} figures within the baseline {}",
            dir.display()
        );
    }
    for f in failed {
        if !expectations.iter().any(|e| e.to_string() == f.expectation) {
            outln!("FAIL  {}: {}", f.expectation, f.why);
        }
    }
    let runs = if runs == 1 {
        "1 run".to_string()
    } else {
        format!("{runs} runs")
    };
    if failed.is_empty() {
        outln!("every expectation holds ({runs})");
    }
}
