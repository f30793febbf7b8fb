//! The timeline that applies faults while the workload runs: a scenario's phases, in order.

use crate::db::Database;
use crate::error::{Error, Result};
use crate::fault::{self, Action, InForce, Rng, Target};
use crate::hosts::Transport;
use crate::lab::events;
use crate::record::marks;
use crate::scenario::Scenario;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Waits `d`; `true` if `end` fired first, `Interrupted` if `stop` did.
async fn wait(d: Duration, stop: &CancellationToken, end: &CancellationToken) -> Result<bool> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(false),
        _ = end.cancelled() => Ok(true),
        _ = stop.cancelled() => Err(Error::Interrupted),
    }
}

/// Where a scenario's faults are put in force: by Perseus on a transport ([`OnHost`]), or on
/// a cluster Perseus did not start, through its file's commands (`cluster::Commands`).
#[async_trait::async_trait(?Send)]
pub trait Backend {
    /// Runs once, before the first fault starts.
    async fn before_first_fault(&mut self) -> Result<()> {
        Ok(())
    }
    /// Puts the fault `action` starts in force; returns what is in force.
    async fn start(&mut self, action: &Action) -> Result<InForce>;
    /// The nodes `target` names now (for the faults an `End` action undoes).
    async fn resolve(&mut self, target: &Target) -> Result<Vec<usize>>;
    /// Undoes a fault in force.
    async fn end(&mut self, f: &InForce) -> Result<()>;
    /// Whether faults still in force when the play stops early (an error, or `stop`) are
    /// undone before it returns; `false` where tearing down removes them anyway.
    fn undoes_on_stop(&self) -> bool;
}

/// Plays `scenario` on `backend`: each phase's actions at its start, then its duration;
/// again and again as its repeat asks, each pass after the first starting healed. When the
/// last phase ends, whatever is still in force is healed. `say` hears each action.
/// If `end` fires, the play ends at once as if its last phase had ended, and returns
/// `true`. If `stop` fires, returns `Interrupted` (after undoing what is in force, if the
/// backend asks for it).
pub async fn play(
    scenario: &Scenario,
    backend: &mut dyn Backend,
    stop: &CancellationToken,
    end: &CancellationToken,
    say: impl Fn(String),
) -> Result<bool> {
    let mut in_force: Vec<InForce> = Vec::new();
    let played = play_phases(scenario, backend, (stop, end), &say, &mut in_force).await;
    if played.is_ok() || backend.undoes_on_stop() {
        let healed = heal(&mut in_force, backend, &say, "end").await;
        return played.and_then(|ended| healed.map(|_| ended));
    }
    played
}

/// The play's two ways to end before its time: `Interrupted`, and early but whole.
type Ends<'a> = (&'a CancellationToken, &'a CancellationToken);

async fn play_phases(
    scenario: &Scenario,
    backend: &mut dyn Backend,
    ends: Ends<'_>,
    say: &impl Fn(String),
    in_force: &mut Vec<InForce>,
) -> Result<bool> {
    let mut first = true;
    let started = tokio::time::Instant::now();
    let pass_length = scenario.pass_length();
    let mut pass = 1u32;
    loop {
        if play_pass(scenario, pass, backend, ends, say, in_force, &mut first).await? {
            return Ok(true);
        }
        if !scenario
            .repeat
            .another(pass, started.elapsed(), pass_length)
        {
            return Ok(false);
        }
        heal(in_force, backend, say, &format!("pass {pass} over")).await?;
        pass += 1;
    }
}

/// Plays the phases once (pass number `pass`); `true` if it ended early.
async fn play_pass(
    scenario: &Scenario,
    pass: u32,
    backend: &mut dyn Backend,
    (stop, end): Ends<'_>,
    say: &impl Fn(String),
    in_force: &mut Vec<InForce>,
    first: &mut bool,
) -> Result<bool> {
    let looping = scenario.repeat != crate::scenario::Repeat::Once;
    for phase in &scenario.phases {
        let name = if looping {
            format!("pass {pass}, {}", phase.name)
        } else {
            phase.name.clone()
        };
        for action in &phase.faults {
            if *first && matches!(action, Action::Start { .. }) {
                backend.before_first_fault().await?;
                *first = false;
            }
            match action {
                Action::Start { .. } => {
                    let f = backend.start(action).await?;
                    say(format!(
                        "{name}: {action} → {} {}",
                        f.kind.started, f.target
                    ));
                    in_force.push(f);
                }
                Action::End { fault, target } => {
                    let nodes = backend.resolve(target).await?;
                    let (ending, kept): (Vec<InForce>, Vec<InForce>) =
                        std::mem::take(in_force).into_iter().partition(|f| {
                            f.kind == fault.kind() && f.nodes.iter().any(|n| nodes.contains(n))
                        });
                    *in_force = kept;
                    for f in ending {
                        say(format!("{name}: {action} → {} {}", f.kind.ending, f.target));
                        backend.end(&f).await?;
                    }
                }
                Action::Heal => heal(in_force, backend, say, &name).await?,
            }
        }
        if wait(phase.duration, stop, end).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Undoes every fault in `in_force`, the latest first; `say` hears each, after `when` (the
/// phase, or the point in the play).
async fn heal(
    in_force: &mut Vec<InForce>,
    backend: &mut dyn Backend,
    say: &impl Fn(String),
    when: &str,
) -> Result<()> {
    while let Some(f) = in_force.pop() {
        say(format!("{when}: heal → {} {}", f.kind.ending, f.target));
        backend.end(&f).await?;
    }
    Ok(())
}

/// Faults Perseus makes itself, on whatever transport reaches the nodes (a lab's
/// namespaces, SSH): [`fault`]'s one way of starting and undoing them. Before the first
/// fault it marks, where asked, whether the database had warmed up.
pub struct OnHost<'a> {
    pub host: &'a mut dyn Transport,
    pub db: &'static dyn Database,
    pub rng: Rng,
    /// Whether to mark, before the first fault, if the database had warmed up.
    pub mark_warm: bool,
    /// Whether faults still in force when the play stops early are undone then; `false`
    /// where tearing the cluster down removes them anyway (a lab).
    pub undo_on_stop: bool,
}

impl OnHost<'_> {
    fn mark(&self, text: &str) -> Result<()> {
        match self.host.events_dir() {
            Some(dir) => events::append(&dir, events::MARK, text).map(|_| ()),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait(?Send)]
impl Backend for OnHost<'_> {
    async fn before_first_fault(&mut self) -> Result<()> {
        if !self.mark_warm {
            return Ok(());
        }
        let warm = match self.db.warm_up() {
            Some(w) => w.warmed_up(&self.host.layout()).await.is_ok(),
            None => true,
        };
        self.mark(if warm { marks::WARM } else { marks::NOT_WARM })
    }

    /// Marks which node leads just before the fault starts (where one can), so that the
    /// report knows the role of the node it hits.
    async fn start(&mut self, action: &Action) -> Result<InForce> {
        if let Some(l) = self.db.leadership() {
            let layout = self.host.layout();
            let leader = l.leader(&layout).await;
            let name = leader.map(|i| layout.nodes[i].name.as_str());
            self.mark(&marks::leader(name))?;
        }
        fault::start(action, self.host, self.db, &mut self.rng).await
    }

    async fn resolve(&mut self, target: &Target) -> Result<Vec<usize>> {
        fault::resolve_in(target, &self.host.layout(), self.db, &mut self.rng).await
    }

    async fn end(&mut self, f: &InForce) -> Result<()> {
        fault::end(f, self.host).await
    }

    fn undoes_on_stop(&self) -> bool {
        self.undo_on_stop
    }
}
