//! The seed's workload: one client per node, one key per client, a loop of
//! read → increment → write. Optionally, per node, an observer that reads every node's key
//! through that node; and, at the end of a run, one read of every key through every node.

use crate::clock::monotonic_ns;
use crate::db::{Client, ClientError, Database, Layout};
use crate::record::{Event, Kind, Op, Outcome};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How observers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// The database's default read (linearizable where it offers that).
    Linearizable,
    /// The cheapest read the node can answer alone, which may be stale (etcd: serializable).
    Any,
}

/// How the clients behave.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Longest wait for one request; past it the request is `unknown`.
    pub timeout: Duration,
    /// Pause after a failed request before the next attempt, so a node that refuses
    /// connections at once is not hammered.
    pub backoff: Duration,
    /// Observers, one per node, reading the way given; none if `None`.
    pub observers: Option<ReadFrom>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(1),
            backoff: Duration::from_millis(100),
            observers: None,
        }
    }
}

/// Stamps requests of one client against the record's origin.
#[derive(Clone, Copy)]
struct Stamp {
    t0_ns: u64,
    node: usize,
    key: Option<usize>,
}

impl Stamp {
    fn op(
        &self,
        kind: Kind,
        start_ns: u64,
        outcome: Outcome,
        value: Option<i64>,
        error: Option<String>,
    ) -> Event {
        let end = monotonic_ns();
        Event::Op(Op {
            node: self.node,
            key: self.key,
            kind,
            start_us: start_ns.saturating_sub(self.t0_ns) / 1000,
            duration_us: end.saturating_sub(start_ns) / 1000,
            outcome,
            value,
            error,
        })
    }
}

/// Maps a request's result (within its timeout) to a value or to an outcome and error text.
fn outcome_of<T>(
    r: Result<Result<T, ClientError>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> Result<T, (Outcome, String)> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.definite => Err((Outcome::Fail, e.text)),
        Ok(Err(e)) => Err((Outcome::Unknown, e.text)),
        Err(_) => Err((
            Outcome::Unknown,
            format!("timed out after {}", crate::clock::format_duration(timeout)),
        )),
    }
}

/// The client of a loop, connected on demand. A failed connection is recorded as a failed
/// read (nothing was sent).
async fn connected<'a>(
    client: &'a mut Option<Box<dyn Client>>,
    db: &'static dyn Database,
    layout: &Layout,
    stamp: Stamp,
    settings: Settings,
    events: &mpsc::Sender<Event>,
) -> Option<&'a mut Box<dyn Client>> {
    if client.is_none() {
        let start = monotonic_ns();
        match db.connect(layout, stamp.node, settings.timeout).await {
            Ok(c) => *client = Some(c),
            Err(e) => {
                let _ = events
                    .send(stamp.op(Kind::Read, start, Outcome::Fail, None, Some(e.text)))
                    .await;
                return None;
            }
        }
    }
    client.as_mut()
}

/// One read, recorded; `Some(value)` if it succeeded.
async fn read(
    c: &mut Box<dyn Client>,
    key: &str,
    any: bool,
    stamp: Stamp,
    settings: Settings,
    events: &mpsc::Sender<Event>,
) -> Option<Option<i64>> {
    let start = monotonic_ns();
    let r = if any {
        tokio::time::timeout(settings.timeout, c.read_any(key)).await
    } else {
        tokio::time::timeout(settings.timeout, c.read(key)).await
    };
    match outcome_of(r, settings.timeout) {
        Ok(v) => {
            let _ = events
                .send(stamp.op(Kind::Read, start, Outcome::Ok, v, None))
                .await;
            Some(v)
        }
        Err((outcome, text)) => {
            let _ = events
                .send(stamp.op(Kind::Read, start, outcome, None, Some(text)))
                .await;
            None
        }
    }
}

async fn pause(settings: Settings, stop: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(settings.backoff) => {}
        _ = stop.cancelled() => {}
    }
}

/// Runs node `node`'s client until `stop` fires: connects (again after any error), then
/// reads its key, adds one and writes it back. Every request goes to `events` as an
/// [`Op`] stamped against `t0_ns`. A request in flight when `stop` fires is finished (at
/// most `settings.timeout`) and recorded, so no request is left out of the record.
pub async fn increment_loop(
    db: &'static dyn Database,
    layout: Arc<Layout>,
    node: usize,
    t0_ns: u64,
    settings: Settings,
    events: mpsc::Sender<Event>,
    stop: CancellationToken,
) {
    let key = db.key(&layout, node);
    let stamp = Stamp {
        t0_ns,
        node,
        key: None,
    };
    let mut client: Option<Box<dyn Client>> = None;
    while !stop.is_cancelled() {
        let ok = async {
            let c = connected(&mut client, db, &layout, stamp, settings, &events).await?;
            let value = read(c, &key, false, stamp, settings, &events)
                .await?
                .unwrap_or(0)
                + 1;
            let start = monotonic_ns();
            let write = tokio::time::timeout(settings.timeout, c.write(&key, value)).await;
            let (outcome, error) = match outcome_of(write, settings.timeout) {
                Ok(()) => (Outcome::Ok, None),
                Err((outcome, text)) => (outcome, Some(text)),
            };
            let _ = events
                .send(stamp.op(Kind::Write, start, outcome, Some(value), error))
                .await;
            (outcome == Outcome::Ok).then_some(())
        }
        .await;
        if ok.is_none() {
            client = None;
            pause(settings, &stop).await;
        }
    }
}

/// Runs node `node`'s observer until `stop` fires: reads every node's key through this
/// node, in turn, the way `how` says; it never writes.
pub async fn observe_loop(
    db: &'static dyn Database,
    layout: Arc<Layout>,
    node: usize,
    t0_ns: u64,
    settings: Settings,
    how: ReadFrom,
    events: mpsc::Sender<Event>,
    stop: CancellationToken,
) {
    let keys: Vec<String> = (0..layout.nodes.len())
        .map(|k| db.key(&layout, k))
        .collect();
    let mut client: Option<Box<dyn Client>> = None;
    let mut k = 0;
    while !stop.is_cancelled() {
        let stamp = Stamp {
            t0_ns,
            node,
            key: Some(k),
        };
        let ok = match connected(&mut client, db, &layout, stamp, settings, &events).await {
            Some(c) => read(c, &keys[k], how == ReadFrom::Any, stamp, settings, &events)
                .await
                .is_some(),
            None => false,
        };
        k = (k + 1) % keys.len();
        if !ok {
            client = None;
            pause(settings, &stop).await;
        }
    }
}

/// Reads every key once through node `node` (the final reads), retrying each until it
/// succeeds or `deadline` passes. Returns how many keys it could not read.
pub async fn final_reads(
    db: &'static dyn Database,
    layout: Arc<Layout>,
    node: usize,
    t0_ns: u64,
    settings: Settings,
    events: mpsc::Sender<Event>,
    deadline: Instant,
) -> usize {
    let mut client: Option<Box<dyn Client>> = None;
    let mut missed = 0;
    for k in 0..layout.nodes.len() {
        let key = db.key(&layout, k);
        let stamp = Stamp {
            t0_ns,
            node,
            key: Some(k),
        };
        loop {
            let done = match connected(&mut client, db, &layout, stamp, settings, &events).await {
                Some(c) => read(c, &key, false, stamp, settings, &events)
                    .await
                    .is_some(),
                None => false,
            };
            if done {
                break;
            }
            client = None;
            if Instant::now() >= deadline {
                missed += 1;
                break;
            }
            tokio::time::sleep(settings.backoff).await;
        }
    }
    missed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_unknown_and_a_refusal_is_a_failure() {
        let t = Duration::from_secs(1);
        let ok: Result<Result<i32, ClientError>, _> = Ok(Ok(3));
        assert_eq!(outcome_of(ok, t), Ok(3));
        let refused: Result<Result<i32, ClientError>, _> =
            Ok(Err(ClientError::definite("no leader")));
        assert_eq!(
            outcome_of(refused, t),
            Err((Outcome::Fail, "no leader".into()))
        );
        let lost: Result<Result<i32, ClientError>, _> = Ok(Err(ClientError::indefinite("reset")));
        assert_eq!(outcome_of(lost, t), Err((Outcome::Unknown, "reset".into())));
    }
}
