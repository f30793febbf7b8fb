//! The timeline that applies faults while the workload runs: a scenario's phases, in order.

use crate::db::Database;
use crate::error::{Error, Result};
use crate::fault::{self, Action, InForce, Rng};
use crate::lab::{events, LabState};
use crate::scenario::Scenario;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The marks that say whether a fault hit a cluster that had finished warming up.
pub const WARM: &str = "warmed-up";
pub const NOT_WARM: &str = "not-warmed-up";

async fn wait(d: Duration, stop: &CancellationToken) -> Result<()> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = stop.cancelled() => Err(Error::Interrupted),
    }
}

/// Plays `scenario`: each phase's actions at its start, then its duration. Before the first
/// fault, marks whether the database had warmed up. When the last phase ends, whatever is
/// still in force is healed. `say` hears each action. If `stop` fires, returns `Interrupted`
/// at once; faults in force stay until the lab is torn down (which removes them).
pub async fn play(
    scenario: &Scenario,
    lab: &LabState,
    db: &'static dyn Database,
    rng: &mut Rng,
    stop: &CancellationToken,
    say: impl Fn(String),
) -> Result<()> {
    let mut in_force: Vec<InForce> = Vec::new();
    let mut marked = false;
    for phase in &scenario.phases {
        for action in &phase.faults {
            if !marked && matches!(action, Action::Start { .. }) {
                let warm = db.warmed_up(&lab.layout()).await.is_ok();
                events::append(&lab.dir(), events::MARK, if warm { WARM } else { NOT_WARM })?;
                marked = true;
            }
            match action {
                Action::Start { .. } => {
                    let f = fault::start(action, lab, db, rng).await?;
                    say(format!(
                        "{}: {action} → {} {}",
                        phase.name, f.kind.started, f.target
                    ));
                    in_force.push(f);
                }
                Action::End { fault, target } => {
                    let nodes = fault::resolve(target, lab, db, rng).await?;
                    let (ending, kept): (Vec<InForce>, Vec<InForce>) =
                        in_force.into_iter().partition(|f| {
                            f.kind == fault.kind() && f.nodes.iter().any(|n| nodes.contains(n))
                        });
                    in_force = kept;
                    for f in ending {
                        say(format!(
                            "{}: {action} → {} {}",
                            phase.name, f.kind.ending, f.target
                        ));
                        fault::end(&f, lab, db).await?;
                    }
                }
                Action::Heal => heal(&mut in_force, lab, db, &say).await?,
            }
        }
        wait(phase.duration, stop).await?;
    }
    heal(&mut in_force, lab, db, &say).await
}

/// Undoes every fault in `in_force`, the latest first.
async fn heal(
    in_force: &mut Vec<InForce>,
    lab: &LabState,
    db: &'static dyn Database,
    say: &impl Fn(String),
) -> Result<()> {
    while let Some(f) = in_force.pop() {
        say(format!("heal → {} {}", f.kind.ending, f.target));
        fault::end(&f, lab, db).await?;
    }
    Ok(())
}
