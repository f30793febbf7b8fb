//! The seed's workload: one client per node, one key per client, a loop of
//! read → increment → write. Optionally, per node, an observer that reads every node's key
//! through that node; and, at the end of a run, one read of every key through every node.

use crate::clock::monotonic_ns;
use crate::db::{Cell, Client, ClientError, Database, Found};
use crate::lab::Layout;
use crate::record::{Event, Kind, Op, Outcome};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How observers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum ReadFrom {
    /// The database's default read (linearizable where it offers that).
    Linearizable,
    /// The cheapest read the node can answer alone, which may be stale (etcd: serializable).
    Any,
}

/// How a writer writes its incremented value back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum WriteMode {
    /// Set the key whatever it holds now, as the seed did.
    #[default]
    Blind,
    /// Set it only if it still holds what was read (compare-and-set): a write that would
    /// overwrite a change made since the read fails instead.
    Cas,
}

/// The names of a closed set of choices, as the command line, spec files and records
/// spell them; parsing and serialisation go through them.
macro_rules! named_choices {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every choice, in the order help lists them.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                $ty::ALL.iter().copied().find(|c| c.name() == s).ok_or_else(|| {
                    let names: Vec<&str> = $ty::ALL.iter().map(|c| c.name()).collect();
                    format!("'{s}' is not one of: {}", names.join(", "))
                })
            }
        }

        impl TryFrom<String> for $ty {
            type Error = String;

            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }

        impl From<$ty> for &'static str {
            fn from(c: $ty) -> &'static str {
                c.name()
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_choices!(ReadFrom { Linearizable => "linearizable", Any => "any" });
named_choices!(WriteMode { Blind => "blind", Cas => "cas" });

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
    /// How writers write.
    pub write: WriteMode,
    /// Each writer starts at most this many read → increment → write cycles a second;
    /// `None`: one after another, as fast as the database answers.
    pub rate: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(1),
            backoff: Duration::from_millis(100),
            observers: None,
            write: WriteMode::Blind,
            rate: None,
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

/// How one request ended, as the record keeps it.
#[derive(Default)]
struct Ended {
    /// The cell read or written.
    cell: Option<Cell>,
    revision: Option<i64>,
    error: Option<String>,
    served_by: Option<usize>,
}

impl Stamp {
    fn op(&self, kind: Kind, start_ns: u64, outcome: Outcome, ended: Ended) -> Event {
        let end = monotonic_ns();
        Event::Op(Op {
            node: self.node,
            key: self.key,
            kind,
            start_us: start_ns.saturating_sub(self.t0_ns) / 1000,
            duration_us: end.saturating_sub(start_ns) / 1000,
            outcome,
            value: ended.cell.map(|c| c.value),
            attempt: ended.cell.map(|c| c.attempt).filter(|a| *a > 0),
            revision: ended.revision,
            error: ended.error.map(Into::into),
            served_by: ended.served_by.filter(|s| *s != self.node),
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

/// What every client of one watch shares.
#[derive(Clone)]
pub struct Context {
    pub db: &'static dyn Database,
    pub layout: Arc<Layout>,
    /// The record's origin on the monotonic clock.
    pub t0_ns: u64,
    pub settings: Settings,
    /// Where every request goes as it ends.
    pub events: mpsc::Sender<Event>,
}

impl Context {
    async fn send(&self, event: Event) {
        // Only fails once the recorder is gone, at the very end: nothing left to record.
        let _ = self.events.send(event).await;
    }

    /// The client of a loop, connected on demand. A failed connection is recorded as a
    /// failed read (nothing was sent).
    async fn connected<'a>(
        &self,
        client: &'a mut Option<Box<dyn Client>>,
        stamp: Stamp,
    ) -> Option<&'a mut Box<dyn Client>> {
        if client.is_none() {
            let start = monotonic_ns();
            match self
                .db
                .connect(&self.layout, stamp.node, self.settings.timeout)
                .await
            {
                Ok(c) => *client = Some(c),
                Err(e) => {
                    let ended = Ended {
                        error: Some(e.text),
                        ..Ended::default()
                    };
                    self.send(stamp.op(Kind::Read, start, Outcome::Fail, ended))
                        .await;
                    return None;
                }
            }
        }
        client.as_mut()
    }

    /// One read, recorded; what it found if it succeeded.
    async fn read(
        &self,
        c: &mut Box<dyn Client>,
        key: &str,
        any: bool,
        stamp: Stamp,
    ) -> Option<Found> {
        let timeout = self.settings.timeout;
        let start = monotonic_ns();
        let r = if any {
            tokio::time::timeout(timeout, c.read_any(key)).await
        } else {
            tokio::time::timeout(timeout, c.read(key)).await
        };
        let served_by = self.served_by(c.as_ref());
        match outcome_of(r, timeout) {
            Ok(found) => {
                let ended = Ended {
                    cell: found.cell,
                    revision: found.revision,
                    error: None,
                    served_by,
                };
                self.send(stamp.op(Kind::Read, start, Outcome::Ok, ended))
                    .await;
                Some(found)
            }
            Err((outcome, text)) => {
                let ended = Ended {
                    error: Some(text),
                    served_by,
                    ..Ended::default()
                };
                self.send(stamp.op(Kind::Read, start, outcome, ended)).await;
                None
            }
        }
    }

    /// The node whose server answered `c`'s last request, if the client says.
    fn served_by(&self, c: &dyn Client) -> Option<usize> {
        let addr = c.server()?;
        self.layout.nodes.iter().position(|n| n.addr == addr)
    }

    async fn pause(&self, stop: &CancellationToken) {
        tokio::select! {
            _ = tokio::time::sleep(self.settings.backoff) => {}
            _ = stop.cancelled() => {}
        }
    }

    fn stamp(&self, node: usize, key: Option<usize>) -> Stamp {
        Stamp {
            t0_ns: self.t0_ns,
            node,
            key,
        }
    }
}

/// Runs node `node`'s client until `stop` fires: connects (again after any error), then
/// reads its key, adds one and writes it back (blindly or by compare-and-set, as the
/// settings say). Every request is recorded as it ends. A request in flight when `stop`
/// fires is finished (at most the request timeout) and recorded, so no request is left out
/// of the record.
///
/// Every write attempt gets its own number, stored with the value: one above any attempt
/// number the writer has read, so numbers stay unique per key across runs on the same data.
pub async fn increment_loop(cx: Context, node: usize, stop: CancellationToken) {
    let key = cx.db.key(&cx.layout, node);
    let stamp = cx.stamp(node, None);
    let timeout = cx.settings.timeout;
    let mut client: Option<Box<dyn Client>> = None;
    let mut next_attempt: u64 = 1;
    // A cycle starts on each tick; a cycle longer than a tick delays the next, not more.
    let mut ticks = cx.settings.rate.map(|r| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(r.max(1))));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    while !stop.is_cancelled() {
        if let Some(t) = ticks.as_mut() {
            tokio::select! {
                _ = t.tick() => {}
                _ = stop.cancelled() => break,
            }
        }
        let ok = async {
            let c = cx.connected(&mut client, stamp).await?;
            let found = cx.read(c, &key, false, stamp).await?;
            let read = found.cell.unwrap_or_default();
            next_attempt = next_attempt.max(read.attempt.saturating_add(1));
            let cell = Cell {
                value: read.value.saturating_add(1),
                attempt: next_attempt,
            };
            next_attempt = next_attempt.saturating_add(1);
            let start = monotonic_ns();
            let write = match cx.settings.write {
                WriteMode::Blind => tokio::time::timeout(timeout, c.write(&key, cell)).await,
                WriteMode::Cas => {
                    tokio::time::timeout(timeout, c.compare_and_set(&key, &found, cell)).await
                }
            };
            let served_by = cx.served_by(c.as_ref());
            let (outcome, ended) = match outcome_of(write, timeout) {
                Ok(w) => (
                    Outcome::Ok,
                    Ended {
                        cell: Some(cell),
                        revision: w.revision,
                        error: None,
                        served_by,
                    },
                ),
                Err((outcome, text)) => (
                    outcome,
                    Ended {
                        cell: Some(cell),
                        revision: None,
                        error: Some(text),
                        served_by,
                    },
                ),
            };
            // A failed compare is an answer, not a fault: read again at once.
            let answered =
                outcome == Outcome::Ok || ended.error.as_deref() == Some(crate::db::COMPARE_FAILED);
            cx.send(stamp.op(Kind::Write, start, outcome, ended)).await;
            answered.then_some(())
        }
        .await;
        if ok.is_none() {
            client = None;
            cx.pause(&stop).await;
        }
    }
}

/// Runs node `node`'s observer until `stop` fires: reads every node's key through this
/// node, in turn, the way `how` says; it never writes.
pub async fn observe_loop(cx: Context, node: usize, how: ReadFrom, stop: CancellationToken) {
    let keys: Vec<String> = (0..cx.layout.nodes.len())
        .map(|k| cx.db.key(&cx.layout, k))
        .collect();
    let mut client: Option<Box<dyn Client>> = None;
    let mut k = 0;
    while !stop.is_cancelled() {
        let stamp = cx.stamp(node, Some(k));
        let ok = match cx.connected(&mut client, stamp).await {
            Some(c) => cx
                .read(c, &keys[k], how == ReadFrom::Any, stamp)
                .await
                .is_some(),
            None => false,
        };
        k = (k + 1) % keys.len();
        if !ok {
            client = None;
            cx.pause(&stop).await;
        }
    }
}

/// Reads every key once through node `node` (the final reads), retrying each until it
/// succeeds or `deadline` passes. Returns how many keys it could not read.
pub async fn final_reads(cx: Context, node: usize, deadline: Instant) -> usize {
    let mut client: Option<Box<dyn Client>> = None;
    let mut missed = 0;
    for k in 0..cx.layout.nodes.len() {
        let key = cx.db.key(&cx.layout, k);
        let stamp = cx.stamp(node, Some(k));
        loop {
            let done = match cx.connected(&mut client, stamp).await {
                Some(c) => cx.read(c, &key, false, stamp).await.is_some(),
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
            tokio::time::sleep(cx.settings.backoff).await;
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
