//! The seed's workload: one client per node, one key per client, a loop of
//! read → increment → write.

use crate::clock::monotonic_ns;
use crate::db::{Client, ClientError, Database, Layout};
use crate::record::{Event, Kind, Op, Outcome};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How the client loop behaves.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Longest wait for one request; past it the request is `unknown`.
    pub timeout: Duration,
    /// Pause after a failed request before the next attempt, so a node that refuses
    /// connections at once is not hammered.
    pub backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(1),
            backoff: Duration::from_millis(100),
        }
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
    let mut client: Option<Box<dyn Client>> = None;
    let record = |kind, start: u64, outcome, value, error: Option<String>| {
        let end = monotonic_ns();
        Event::Op(Op {
            node,
            kind,
            start_us: start.saturating_sub(t0_ns) / 1000,
            duration_us: end.saturating_sub(start) / 1000,
            outcome,
            value,
            error,
        })
    };
    while !stop.is_cancelled() {
        let ok = async {
            let c = match client.as_mut() {
                Some(c) => c,
                None => {
                    let start = monotonic_ns();
                    match db.connect(&layout, node, settings.timeout).await {
                        Ok(c) => client.insert(c),
                        Err(e) => {
                            let op = record(Kind::Read, start, Outcome::Fail, None, Some(e.text));
                            let _ = events.send(op).await;
                            return false;
                        }
                    }
                }
            };
            let start = monotonic_ns();
            let read = tokio::time::timeout(settings.timeout, c.read(&key)).await;
            let value = match outcome_of(read, settings.timeout) {
                Ok(v) => {
                    let _ = events
                        .send(record(Kind::Read, start, Outcome::Ok, v, None))
                        .await;
                    v.unwrap_or(0) + 1
                }
                Err((outcome, text)) => {
                    let _ = events
                        .send(record(Kind::Read, start, outcome, None, Some(text)))
                        .await;
                    return false;
                }
            };
            let start = monotonic_ns();
            let write = tokio::time::timeout(settings.timeout, c.write(&key, value)).await;
            match outcome_of(write, settings.timeout) {
                Ok(()) => {
                    let _ = events
                        .send(record(Kind::Write, start, Outcome::Ok, Some(value), None))
                        .await;
                    true
                }
                Err((outcome, text)) => {
                    let _ = events
                        .send(record(Kind::Write, start, outcome, Some(value), Some(text)))
                        .await;
                    false
                }
            }
        }
        .await;
        if !ok {
            client = None;
            tokio::select! {
                _ = tokio::time::sleep(settings.backoff) => {}
                _ = stop.cancelled() => {}
            }
        }
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
