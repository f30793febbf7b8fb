//! The timeline that applies faults while the workload runs.

use crate::db::Database;
use crate::error::{Error, Result};
use crate::fault::isolate;
use crate::lab::LabState;
use crate::spec::{Target, Timeline};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The marks that say whether a fault hit a cluster that had finished warming up.
pub const WARM: &str = "warmed-up";
pub const NOT_WARM: &str = "not-warmed-up";

/// Resolves a target to a node index now (`leader`: the node the database reports).
pub async fn resolve(target: &Target, lab: &LabState, db: &dyn Database) -> Result<usize> {
    let leader = || async {
        db.health(&lab.layout()).await.leader.ok_or_else(|| {
            Error::Database(format!(
                "{} reports no leader right now, so '{target}' names no node",
                db.name()
            ))
        })
    };
    match target {
        Target::Node(n) => lab.node_index(n),
        Target::Leader => leader().await,
        Target::Follower => {
            let l = leader().await?;
            Ok(if l == 0 { 1 } else { 0 }.min(lab.nodes.len() - 1))
        }
    }
}

async fn wait(d: Duration, stop: &CancellationToken) -> Result<()> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = stop.cancelled() => Err(Error::Interrupted),
    }
}

/// Plays the seed's timeline: `before`, isolate the target, `during`, rejoin, `after`.
/// `say` hears each step. If `stop` fires, returns `Interrupted` at once; a fault in force
/// stays until the lab is torn down (which removes its namespaces and rules).
pub async fn play(
    t: &Timeline,
    lab: &LabState,
    db: &dyn Database,
    stop: &CancellationToken,
    say: impl Fn(String),
) -> Result<()> {
    wait(t.before, stop).await?;
    let node = resolve(&t.isolate, lab, db).await?;
    let name = lab.nodes[node].name.clone();
    let warm = db.warmed_up(&lab.layout()).await.is_ok();
    crate::lab::events::append(
        &lab.dir(),
        crate::lab::events::MARK,
        if warm { WARM } else { NOT_WARM },
    )?;
    let how = match t.isolate {
        Target::Leader => " (the leader)",
        Target::Follower => " (a follower)",
        Target::Node(_) => "",
    };
    say(format!("isolating {name}{how}"));
    let (l, port) = (lab.clone(), db.client_port());
    tokio::task::spawn_blocking(move || isolate::isolate(&l, node, port))
        .await
        .map_err(|e| Error::Invalid(format!("isolate task failed: {e}")))??;
    wait(t.during, stop).await?;
    say(format!("rejoining {name}"));
    let l = lab.clone();
    tokio::task::spawn_blocking(move || isolate::rejoin(&l, node))
        .await
        .map_err(|e| Error::Invalid(format!("rejoin task failed: {e}")))??;
    wait(t.after, stop).await
}
