//! Labs and clusters by hand: `up`, `down`, `status`, `heal`, a fault from any terminal,
//! and `watch`.

use super::*;

pub(super) async fn up(a: UpArgs, stop: CancellationToken) -> Result<()> {
    let subnet = a
        .subnet
        .as_deref()
        .map(lab::net::Subnet::parse)
        .transpose()?;
    let spec = Spec {
        database: a.database.clone(),
        nodes: a.nodes,
        bin_dir: a.bin_dir.clone(),
        set: a.set.iter().cloned().collect(),
        ready_timeout: a.ready_timeout,
        backend: a.hosts.backend.unwrap_or_default(),
        image: a.hosts.image.clone(),
        disk: a.disk.disk.unwrap_or_default(),
        ..Spec::default()
    };
    let up = perseus::experiment::run::up(&spec, &a.lab.lab, subnet, &stop, say).await?;
    let db = db::find(&a.database)?;
    let state = &up.state;
    outln!(
        "lab {}: {} {} nodes ready in {:.1} s{}",
        state.name,
        state.nodes.len(),
        db.name(),
        up.took.as_secs_f64(),
        up.version
            .as_ref()
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default()
    );
    for (i, n) in state.nodes.iter().enumerate() {
        let lead = if up.leader == Some(i) { "  leader" } else { "" };
        outln!("  {}  {}:{}{lead}", n.name, n.addr, db.client_port());
    }
    let flag = if state.name == lab::DEFAULT_LAB {
        String::new()
    } else {
        format!(" --lab {}", state.name)
    };
    outln!("next: perseus watch{flag}   (and in another terminal: perseus isolate n2{flag}, perseus rejoin n2{flag})");
    outln!("done: perseus down{flag}");
    Ok(())
}

pub(super) fn down(a: DownArgs) -> Result<()> {
    let names = if a.all {
        lab::list()
    } else {
        vec![a.lab.lab.clone()]
    };
    if a.all && names.is_empty() {
        outln!("no labs");
        return Ok(());
    }
    // With --all, one lab that cannot be removed does not keep the others.
    let mut failed = Vec::new();
    for name in &names {
        let t = Instant::now();
        match lab::down(name) {
            Ok(Some(state)) => outln!(
                "lab {name} removed ({} nodes, their processes, namespaces and rules, host link {}) in {} ms",
                state.nodes.len(),
                state.bridge,
                t.elapsed().as_millis()
            ),
            Ok(None) => outln!("lab {name} removed (it had no state yet: nothing else was made)"),
            Err(e) if !a.all => return Err(e.into()),
            Err(e) => {
                say(format!("lab {name} not removed: {e}"));
                failed.push(name.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{} of {} labs not removed: {} (see above)",
            failed.len(),
            names.len(),
            failed.join(", ")
        ))
    }
}

/// The node that leads now, for databases where one does.
async fn leader_of(db: &dyn perseus::db::Database, layout: &perseus::lab::Layout) -> Option<usize> {
    db.leadership()?.leader(layout).await
}

/// A cluster file whose nodes Perseus reaches over SSH.
fn ssh_cluster(file: &std::path::Path) -> Result<perseus::cluster::Cluster> {
    let cluster = perseus::cluster::Cluster::load(file)?;
    if !cluster.over_ssh() {
        return Err(Error::Invalid(format!(
            "{}: no node says ssh =, so Perseus made no fault on its machines (your [faults] commands undo their own)",
            file.display()
        ))
        .into());
    }
    Ok(cluster)
}

/// The machines of a cluster file over SSH, connected (sockets in `sockets`).
async fn ssh_host<'a>(
    cluster: &perseus::cluster::Cluster,
    sockets: &std::path::Path,
) -> Result<perseus::hosts::ssh::SshHost<'a>> {
    let mut host = cluster.ssh_host(Duration::ZERO, |_| {});
    host.connect(cluster.ssh_config.as_deref(), sockets).await?;
    Ok(host)
}

pub(super) async fn remote_heal(file: &std::path::Path) -> Result<()> {
    let cluster = ssh_cluster(file)?;
    let db = db::find(&cluster.database)?;
    let sockets = perseus::files::Scratch::new("ssh")?;
    let mut host = ssh_host(&cluster, sockets.path()).await?;
    let tables = perseus::fault::tables(&mut host).await?;
    let mut rng = perseus::fault::Rng::new(perseus::clock::monotonic_ns());
    let healed = perseus::fault::act(&Action::Heal, &mut host, db, &mut rng).await?;
    for (i, (node, tables)) in tables.iter().enumerate() {
        let mut undone: Vec<String> = tables
            .iter()
            .map(|t| format!("removed table {}", t.name))
            .collect();
        for f in healed.iter().filter(|f| f.nodes.contains(&i)) {
            if matches!(f.fault().acts_on(), perseus::fault::ActsOn::Processes(_)) {
                undone.push(format!("{} its server", f.kind.ended));
            }
        }
        if undone.is_empty() {
            outln!("{node}: no fault of Perseus's in force");
        } else {
            outln!("{node}: {}", undone.join(", "));
        }
    }
    Ok(())
}

pub(super) async fn remote_status(file: &std::path::Path, as_json: bool) -> Result<()> {
    let cluster = ssh_cluster(file)?;
    let sockets = perseus::files::Scratch::new("ssh")?;
    let mut host = ssh_host(&cluster, sockets.path()).await?;
    let tables = perseus::fault::tables(&mut host).await?;
    if as_json {
        let nodes: Vec<serde_json::Value> = tables
            .iter()
            .map(|(node, t)| {
                serde_json::json!({
                    "name": node,
                    "tables": t.iter().map(|t| serde_json::json!({
                        "table": t.name, "target": t.target, "does": t.does,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "format": "perseus-cluster-status",
                "version": 1,
                "cluster": cluster.name,
                "nodes": nodes,
            }))?
        );
        return Ok(());
    }
    for (node, t) in tables {
        if t.is_empty() {
            outln!("{node}: no fault of Perseus's in force");
        }
        for t in t {
            let does = if t.does.is_empty() {
                String::new()
            } else {
                format!(": {}", t.does)
            };
            outln!("{node}: {} ({}) in force{does}", t.name, t.target);
        }
    }
    Ok(())
}

pub(super) async fn status(name: &str, as_json: bool) -> Result<()> {
    let names = lab::list();
    let mut labs = Vec::new();
    if names.is_empty() {
        outln!("no labs (start one with: perseus up etcd)");
    }
    let names: Vec<String> = if names.iter().any(|n| n == name) {
        vec![name.to_string()]
    } else {
        names
    };
    for name in names {
        let state = LabState::load(&name)?;
        let db = db::find(&state.database).ok();
        let health = match db {
            Some(db) => Some((
                db.health(&state.layout()).await,
                leader_of(db, &state.layout()).await,
            )),
            None => None,
        };
        let mut host = match db {
            Some(db) => perseus::hosts::lab::LabHost::new(state.clone(), db),
            None => perseus::hosts::lab::LabHost::reading(state.clone()),
        };
        let in_force = perseus::fault::in_force(&mut host).await;
        // What each node's rules do, read from the rules themselves.
        let does: Option<Vec<String>> = perseus::fault::tables(&mut host).await.ok().map(|t| {
            t.into_iter()
                .map(|(_, tables)| {
                    let d: Vec<String> = tables
                        .into_iter()
                        .map(|t| t.does)
                        .filter(|d| !d.is_empty())
                        .collect();
                    d.join("; ")
                })
                .collect()
        });
        if as_json {
            labs.push(render::lab_json(
                &state,
                health.as_ref(),
                in_force.as_deref().ok(),
                does.as_deref(),
            ));
        } else {
            render::lab_status(
                &state,
                health.as_ref(),
                in_force.as_deref().ok(),
                does.as_deref(),
            );
        }
    }
    if as_json {
        json(&serde_json::json!({"format": "perseus-status", "version": 1, "labs": labs}));
    }
    Ok(())
}

/// Runs one fault action on a lab, from any terminal; the markers reach every watch.
pub(super) async fn fault(lab: &LabArg, text: &str) -> Result<()> {
    let action: Action = text
        .parse()
        .map_err(|e: String| Error::Invalid(format!("{text}: {e}")))?;
    process::require_root("changing faults")?;
    let state = LabState::load(&lab.lab)?;
    let db = db::find(&state.database)?;
    let t = Instant::now();
    let mut rng = perseus::fault::Rng::new(perseus::clock::monotonic_ns());
    let mut host = perseus::hosts::lab::LabHost::new(state.clone(), db);
    let done = perseus::fault::act(&action, &mut host, db, &mut rng).await?;
    let ms = t.elapsed().as_millis();
    match (&action, done.as_slice()) {
        (Action::Start { .. }, [f]) if f.kind.cuts_off_from_peers => {
            let peers: Vec<&str> = (0..state.nodes.len())
                .filter(|i| !f.nodes.contains(i))
                .map(|i| state.nodes[i].name.as_str())
                .collect();
            outln!(
                "isolated {} from {} in {ms} ms: its traffic with every peer is dropped; the client still reaches it",
                f.target,
                peers.join(", ")
            )
        }
        (Action::Start { .. }, [f]) => outln!("{} {} in {ms} ms", f.kind.started, f.target),
        (_, []) => outln!("nothing to undo: no such fault in force ({text})"),
        (_, undone) => {
            for f in undone {
                outln!(
                    "{} {} in {ms} ms: no rule, stopped process or sick disk of that fault is left",
                    f.kind.ended,
                    f.target
                );
            }
        }
    }
    Ok(())
}

pub(super) async fn watch(a: WatchArgs, stop: CancellationToken) -> Result<()> {
    let cluster = match (&a.cluster, &a.db) {
        (Some(file), _) => Some(perseus::cluster::Cluster::load(file)?),
        (None, Some(db)) if a.compose.compose.is_some() => {
            Some(perseus::cluster::Cluster::of_compose(
                db,
                a.compose.compose.as_deref().unwrap_or_default(),
                super::experiment::engine_of(a.backend)?,
                &a.compose.group,
            )?)
        }
        (None, Some(db)) => Some(perseus::cluster::Cluster::from_args(&a.name, db, &a.node)?),
        (None, None) => None,
    };
    let out_for = |name: &str| {
        a.out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(format!("watch-{name}-{}", stamp())))
    };
    match cluster {
        // A cluster Perseus did not start: its event log lives while the watch does, and
        // `perseus mark --cluster NAME` reaches it.
        Some(cluster) => {
            let db = db::find(&cluster.database)?;
            let (events, version) = cluster.attach(db).await?;
            let out = out_for(&cluster.name);
            say(format!(
                "watching {} ({}); mark faults from another terminal with: perseus mark --cluster {} \"isolating {}\"",
                cluster.name,
                cluster.database,
                cluster.name,
                cluster.nodes[0].name
            ));
            let watched = watch_until(
                db,
                cluster.layout(),
                events.dir(),
                &a,
                &out,
                Servers {
                    version,
                    ..Default::default()
                },
                stop,
            )
            .await;
            drop(events);
            watched
        }
        None => {
            let state = LabState::load(&a.lab.lab)?;
            let db = db::find(&state.database)?;
            let version = db.health(&state.layout()).await.version;
            let out = out_for(&state.name);
            watch_until(
                db,
                state.layout(),
                &state.dir(),
                &a,
                &out,
                Servers::of_lab(db, &state.layout(), version),
                stop,
            )
            .await
        }
    }
}

/// The seed's client on `layout`, as `a` asks, until `stop` fires (Ctrl-C) or the record
/// is full, the table echoed to the terminal; then the results and the verdict.
async fn watch_until(
    db: &'static dyn perseus::db::Database,
    layout: perseus::lab::Layout,
    events_dir: &Path,
    a: &WatchArgs,
    out: &Path,
    servers: Servers,
    stop: CancellationToken,
) -> Result<()> {
    let settings = Settings {
        timeout: a.timeout,
        observers: observers(&a.workload),
        write: a.workload.write.unwrap_or_default(),
        rate: a.workload.rate,
        ..Settings::default()
    };
    let w = Watch::start(
        db,
        layout,
        events_dir,
        settings,
        out,
        Some(stdout_echo()),
        servers,
    )?;
    if let Some(max) = a.max_record_size {
        w.limit_record(max);
    }
    let full = w.record_full();
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = full.cancelled() => {}
    }
    let stopped_early = w.usage().why_full();
    if let Some(why) = &stopped_early {
        w.mark(format!("{} {why}", perseus::record::marks::STOPPED_EARLY))
            .await;
    }
    say(w.usage().line());
    w.stop().await?;
    let analysis = analysis::analyse(&perseus::record::in_results(out)?)?;
    report::write_results(out, &analysis)?;
    let verdict = conclude(&analysis, out, &format!("results: {}", out.display()));
    match stopped_early {
        Some(why) => {
            verdict?;
            Err(Error::StoppedEarly {
                why,
                dir: out.to_path_buf(),
            }
            .into())
        }
        None => verdict,
    }
}
