//! Bringing a database up on a lab's nodes.

use super::Database;
use crate::error::{Error, Result};
use crate::lab::LabState;
use std::time::{Duration, Instant};

/// Starts the database on every node and waits, at most `timeout`, until it is ready.
/// Returns how long that took. On error the caller tears the lab down.
pub async fn start(state: &mut LabState, db: &dyn Database, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let deadline = started + timeout;
    let layout = state.layout();
    db.prepare(&layout)?;
    for i in 0..state.nodes.len() {
        for spec in db.processes(&layout, i) {
            state.spawn(i, &spec)?;
        }
        if let Some(staged) = db.staged_start() {
            loop {
                state.check_alive(started)?;
                match staged.node_ready(&layout, i).await {
                    Ok(()) => break,
                    Err(why) if Instant::now() >= deadline => {
                        return Err(not_ready(state, db, i, timeout, why));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    }
    loop {
        state.check_alive(started)?;
        match db.form(&layout).await {
            Ok(()) => break,
            Err(why) if Instant::now() >= deadline => {
                return Err(not_ready(state, db, 0, timeout, why));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    loop {
        state.check_alive(started)?;
        let health = db.health(&layout).await;
        if health.ready {
            db.setup(&layout).await?;
            return Ok(started.elapsed());
        }
        if Instant::now() >= deadline {
            let i = health.not_ready.first().copied().unwrap_or(0);
            return Err(not_ready(state, db, i, timeout, health.why));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The error for node `i` not ready within `timeout`: that some node cannot reach another
/// on the database's peer port, if one cannot, since then the servers are not at fault;
/// else what the database waited for and its last answer, `why`, with the node's log.
fn not_ready(
    state: &LabState,
    db: &dyn Database,
    i: usize,
    timeout: Duration,
    why: String,
) -> Error {
    match state.lost_path(db.peer_port(), PROBE_TIMEOUT) {
        Ok(Some(path)) => Error::NodesCutOff {
            node: state.nodes[i].name.clone(),
            secs: timeout.as_secs(),
            path,
        },
        _ => state.not_ready(i, timeout, waited_for(db.ready_when(), &why)),
    }
}

/// The reason a start gave up: what the database waited for, where it says, and the last
/// answer.
fn waited_for(ready_when: &str, why: &str) -> String {
    if ready_when.is_empty() {
        why.to_string()
    } else {
        format!("waiting for {ready_when}; last answer: {why}")
    }
}

/// How long a probe between two nodes waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_that_gives_up_says_what_it_waited_for_and_the_last_answer() {
        assert_eq!(
            waited_for("every member to answer isMaster", "n2: connection refused"),
            "waiting for every member to answer isMaster; last answer: n2: connection refused"
        );
        assert_eq!(waited_for("", "n2: refused"), "n2: refused");
    }
}
