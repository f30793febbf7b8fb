//! A watch: the workload against a lab's nodes, recorded as it happens and shown as the
//! seed's per-second table. Fault events that any process appends to the lab's event log
//! land in the same record and table.

use crate::clock::{monotonic_ns, unix_ms};
use crate::db::Database;
use crate::error::{Error, Result};
use crate::lab::events;
use crate::lab::Layout;
use crate::record::table::{legend, Line, Row, Tabulator};
use crate::record::{self, Event, FaultEvent, Header};
use crate::workload::{self, Settings};
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The per-second table's file in a results directory.
/// How long after a second ends its row waits for late operations and markers.
const GRACE: Duration = Duration::from_millis(200);
/// How often the recorder takes the events queued by the clients.
pub const DRAIN: Duration = Duration::from_millis(10);
/// How often the lab's event log is read.
const EVENT_POLL: Duration = Duration::from_millis(10);

/// The least free space the record's file system must keep: below it, the record stops
/// growing (see [`Watch::record_full`]).
pub const MIN_FREE_BYTES: u64 = 256 << 20;
/// How often the recorder looks at the free space.
const FREE_SPACE_EVERY: u64 = 10;

/// How big a watch's record is, and when it must stop growing.
pub struct RecordUsage {
    /// Bytes in the record file so far.
    bytes: std::sync::atomic::AtomicU64,
    /// Operations recorded so far.
    ops: std::sync::atomic::AtomicU64,
    /// The most bytes the record may take (`u64::MAX`: no limit).
    max_bytes: std::sync::atomic::AtomicU64,
    /// Bytes free on the record's file system, at the last look.
    free: std::sync::atomic::AtomicU64,
    /// Cancelled when the record reached its limit or the disk its floor.
    full: CancellationToken,
    why: Mutex<Option<String>>,
}

impl RecordUsage {
    fn new() -> RecordUsage {
        RecordUsage {
            bytes: 0.into(),
            ops: 0.into(),
            max_bytes: u64::MAX.into(),
            free: u64::MAX.into(),
            full: CancellationToken::new(),
            why: Mutex::new(None),
        }
    }

    /// One line for the terminal: the record's size, bytes per operation and free space.
    pub fn line(&self) -> String {
        let (bytes, ops) = (self.bytes(), self.ops());
        let free = match self.free.load(std::sync::atomic::Ordering::Relaxed) {
            u64::MAX => String::new(),
            f => format!(", {} free", crate::size::format_size(f)),
        };
        format!(
            "record: {}, {ops} operations, {:.1} bytes each{free}",
            crate::size::format_size(bytes),
            bytes as f64 / ops.max(1) as f64
        )
    }

    /// Bytes in the record file so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Operations recorded so far.
    pub fn ops(&self) -> u64 {
        self.ops.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Why the record stopped growing, once it did.
    pub fn why_full(&self) -> Option<String> {
        self.why.lock().expect("record usage").clone()
    }

    /// Notes the record's size after a flush, and cancels `full` once the record must stop
    /// growing.
    fn update(&self, bytes: u64, ops: u64, free: Option<u64>) {
        use std::sync::atomic::Ordering::Relaxed;
        self.bytes.store(bytes, Relaxed);
        self.ops.store(ops, Relaxed);
        if let Some(f) = free {
            self.free.store(f, Relaxed);
        }
        if self.full.is_cancelled() {
            return;
        }
        let max = self.max_bytes.load(Relaxed);
        let why = if bytes >= max {
            Some(format!(
                "the record reached {}, its --max-record-size",
                crate::size::format_size(max)
            ))
        } else {
            free.filter(|f| *f < MIN_FREE_BYTES).map(|f| {
                format!(
                    "the disk that holds the record has {} free, less than the {} Perseus keeps free",
                    crate::size::format_size(f),
                    crate::size::format_size(MIN_FREE_BYTES)
                )
            })
        };
        if let Some(why) = why {
            *self.why.lock().expect("record usage") = Some(why);
            self.full.cancel();
        }
    }
}

/// Bytes available to an unprivileged writer on the file system that holds `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    Some((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
}

/// A running watch. Stop it with [`Watch::stop`] to end the record cleanly.
pub struct Watch {
    stop_clients: CancellationToken,
    stop_tail: CancellationToken,
    clients: Vec<JoinHandle<()>>,
    tail: JoinHandle<()>,
    recorder: JoinHandle<Result<()>>,
    recent: Arc<Mutex<VecDeque<Row>>>,
    usage: Arc<RecordUsage>,
    /// For the final reads; its sender is dropped when the watch stops, which ends the
    /// recorder.
    cx: workload::Context,
    pub record_path: PathBuf,
    /// Held while the watch runs (see [`Watch::start`]).
    _claim: crate::lab::Lock,
}

/// What the servers a watch runs against are, for the record's header.
#[derive(Debug, Clone, Default)]
pub struct Servers {
    /// Their version, as they report it.
    pub version: Option<String>,
    /// The effective value of every setting the preset documents (`db::knob`), where
    /// Perseus started them; empty for a cluster Perseus did not start.
    pub settings: std::collections::BTreeMap<String, String>,
}

impl Servers {
    /// The servers Perseus started `db` on in the lab of `layout`, reporting `version`.
    pub fn of_lab(db: &dyn Database, layout: &Layout, version: Option<String>) -> Servers {
        Servers {
            version,
            settings: crate::db::knob::effective(layout, db.knobs()),
        }
    }
}

/// Where the per-second table goes as it grows, besides `client.log` (the terminal, for
/// the binary): each call gets whole lines; returning `false` (a closed pipe) stops the
/// echo, not the watch.
pub type Echo = Box<dyn FnMut(&str) -> bool + Send>;

impl Watch {
    /// Starts one client per node of `layout` (a lab's, or a cluster's that Perseus did not
    /// start), writing the record (`record.bin.zst`) and `client.log` into `dir` (created
    /// if needed). Fault events and marks appended to the event log in `events_dir` go into
    /// the record as they come. The table also goes to `echo`, if any.
    pub fn start(
        db: &'static dyn Database,
        layout: Layout,
        events_dir: &Path,
        settings: Settings,
        dir: &Path,
        echo: Option<Echo>,
        servers: Servers,
    ) -> Result<Watch> {
        // One watch per lab (or cluster): two would write the same keys, and each would
        // read the other's writes as lost updates.
        let claim =
            crate::lab::lock_file(&events_dir.join("watch.lock"), false)?.ok_or_else(|| {
                Error::Invalid(format!(
                    "a watch of this lab is running already ({}): stop it first",
                    events_dir.display()
                ))
            })?;
        std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
        let t0_ns = monotonic_ns();
        let names = layout.nodes.iter().map(|n| n.name.clone()).collect();
        let mut header = Header::new(db.name(), names, unix_ms(), t0_ns);
        header.database_version = servers.version;
        header.settings = servers.settings;
        header.timeout_ms = Some(crate::clock::ms(settings.timeout));
        header.rate = settings.rate;
        header.write = Some(settings.write.name().to_string());
        header.addresses = (0..layout.nodes.len())
            .map(|i| layout.client_addr(i, db.client_port()).to_string())
            .collect();
        let record_path = dir.join(record::COMPRESSED_FILE_NAME);
        let writer = record::Writer::create(&record_path, &header)?;
        let table_path = dir.join(crate::record::TABLE_FILE);
        let table = crate::files::create(&table_path)?;
        let mut tail = events::Tail::open(events_dir)?;

        let (tx, rx) = mpsc::channel::<Event>(1 << 16);
        let stop_clients = CancellationToken::new();
        let stop_tail = CancellationToken::new();
        let recent = Arc::new(Mutex::new(VecDeque::new()));
        let cx = workload::Context {
            db,
            layout: Arc::new(layout),
            t0_ns,
            settings,
            events: tx.clone(),
        };
        let n = cx.layout.nodes.len();
        let mut clients: Vec<JoinHandle<()>> = (0..n)
            .map(|i| {
                tokio::spawn(workload::increment_loop(
                    cx.clone(),
                    i,
                    stop_clients.clone(),
                ))
            })
            .collect();
        if let Some(how) = settings.observers {
            for i in 0..n {
                clients.push(tokio::spawn(workload::observe_loop(
                    cx.clone(),
                    i,
                    how,
                    stop_clients.clone(),
                )));
            }
        }
        let tail = {
            let tx = tx.clone();
            let stop = stop_tail.clone();
            let header = header.clone();
            tokio::spawn(async move {
                loop {
                    let stopping = stop.is_cancelled();
                    for e in tail.poll() {
                        let t_us = header.relative_us(e.monotonic_ns);
                        let event = if e.verb == events::MARK {
                            Event::Mark {
                                t_us,
                                text: e.target,
                            }
                        } else {
                            Event::Fault(FaultEvent {
                                t_us,
                                verb: e.verb,
                                target: e.target,
                            })
                        };
                        let _ = tx.send(event).await;
                    }
                    if stopping {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(EVENT_POLL) => {}
                        _ = stop.cancelled() => {}
                    }
                }
            })
        };
        let usage = Arc::new(RecordUsage::new());
        let recorder = tokio::spawn(record_loop(
            header,
            writer,
            table,
            rx,
            echo,
            recent.clone(),
            usage.clone(),
        ));
        Ok(Watch {
            stop_clients,
            stop_tail,
            clients,
            tail,
            recorder,
            recent,
            usage,
            cx,
            record_path,
            _claim: claim,
        })
    }

    /// Stops the record growing past `bytes` (see [`Watch::record_full`]).
    pub fn limit_record(&self, bytes: u64) {
        self.usage
            .max_bytes
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Cancelled once the record reached its limit, or its disk has less than
    /// [`MIN_FREE_BYTES`] free: whoever runs the watch should then stop it (the record
    /// goes on, so that it ends cleanly).
    pub fn record_full(&self) -> CancellationToken {
        self.usage.full.clone()
    }

    /// The record's size as it grows.
    pub fn usage(&self) -> &RecordUsage {
        &self.usage
    }

    /// Whether every node completed at least one increment in each of the last `seconds`
    /// complete seconds.
    pub fn is_steady(&self, seconds: usize) -> bool {
        let recent = self.recent.lock().expect("recent rows");
        recent.len() >= seconds
            && recent
                .iter()
                .rev()
                .take(seconds)
                .all(|r| r.ok.iter().all(|n| *n > 0))
    }

    /// The nodes that completed no increment in the last complete second.
    pub fn silent_nodes(&self) -> Vec<usize> {
        let recent = self.recent.lock().expect("recent rows");
        recent
            .back()
            .map(|r| {
                r.ok.iter()
                    .enumerate()
                    .filter(|(_, n)| **n == 0)
                    .map(|(i, _)| i)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops the writers and observers (each finishes and records its request in flight),
    /// then reads every key once through every node, retrying for at most `within`: the
    /// final reads, after a `final-reads` mark. Returns how many reads never succeeded.
    pub async fn final_reads(&mut self, within: Duration) -> usize {
        self.stop_clients.cancel();
        for c in self.clients.drain(..) {
            let _ = c.await;
        }
        self.mark(crate::record::marks::FINAL_READS.into()).await;
        let deadline = std::time::Instant::now() + within;
        let reads = (0..self.cx.layout.nodes.len())
            .map(|i| workload::final_reads(self.cx.clone(), i, deadline));
        futures::future::join_all(reads).await.into_iter().sum()
    }

    /// Puts a mark (an `M` line) into the record, at this instant.
    pub async fn mark(&self, text: String) {
        let t_us = monotonic_ns().saturating_sub(self.cx.t0_ns) / 1000;
        let _ = self.cx.events.send(Event::Mark { t_us, text }).await;
    }

    /// Stops the clients (each finishes and records its request in flight), takes the last
    /// fault events, and ends the record.
    pub async fn stop(self) -> Result<()> {
        self.stop_clients.cancel();
        for c in self.clients {
            let _ = c.await;
        }
        drop(self.cx);
        self.stop_tail.cancel();
        let _ = self.tail.await;
        self.recorder
            .await
            .map_err(|e| Error::Invalid(format!("recorder task failed: {e}")))?
    }
}

async fn record_loop(
    header: Header,
    mut writer: record::Writer,
    mut table: File,
    mut rx: mpsc::Receiver<Event>,
    echo: Option<Echo>,
    recent: Arc<Mutex<VecDeque<Row>>>,
    usage: Arc<RecordUsage>,
) -> Result<()> {
    let dir = writer.path().parent().map(Path::to_path_buf);
    let mut ops = 0u64;
    let mut tab = Tabulator::new(header.nodes.len(), header.t0_unix_ms);
    let t0 = tokio::time::Instant::now()
        - Duration::from_nanos(monotonic_ns().saturating_sub(header.t0_monotonic_ns));
    // The table is echoed until that fails (a closed pipe: `perseus run etcd | head`); the
    // record and client.log go on regardless.
    let mut echo = echo;
    let show = |lines: Vec<Line>, table: &mut File, echo: &mut Option<Echo>| -> Result<()> {
        let mut text = String::new();
        for l in &lines {
            text.push_str(&l.render());
            text.push('\n');
            if let Line::Row(r) = l {
                let mut recent = recent.lock().expect("recent rows");
                recent.push_back(r.clone());
                if recent.len() > 16 {
                    recent.pop_front();
                }
            }
        }
        table
            .write_all(text.as_bytes())
            .map_err(Error::io("write client.log"))?;
        if echo.as_mut().is_some_and(|e| !e(&text)) {
            *echo = None;
        }
        Ok(())
    };
    let legend = format!("{}\n", legend(&header.nodes));
    table
        .write_all(legend.as_bytes())
        .map_err(Error::io("write client.log"))?;
    if echo.as_mut().is_some_and(|e| !e(&legend)) {
        echo = None;
    }
    let mut second = 1u64;
    let mut open = true;
    while open {
        // Events are taken in batches, not one by one as they come: a recorder waiting on
        // the channel would be woken by every request, and those wake-ups cost the clients
        // a good part of their rate (`perseus bench client`).
        let tick = t0 + Duration::from_secs(second) + GRACE;
        tokio::time::sleep_until((tokio::time::Instant::now() + DRAIN).min(tick)).await;
        loop {
            match rx.try_recv() {
                Ok(e) => {
                    writer.write(&e)?;
                    ops += u64::from(matches!(e, Event::Op(_)));
                    tab.add(&e);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if open && tokio::time::Instant::now() >= tick {
            show(tab.emit_until(second * 1_000_000), &mut table, &mut echo)?;
            writer.flush()?;
            let free = match &dir {
                Some(d) if second % FREE_SPACE_EVERY == 1 => free_bytes(d),
                _ => None,
            };
            usage.update(writer.bytes_written(), ops, free);
            second += 1;
        }
    }
    let end_us = header.relative_us(monotonic_ns());
    writer.write(&Event::End { t_us: end_us })?;
    writer.flush()?;
    let mut lines = tab.emit_until(end_us);
    lines.extend(tab.flush_markers());
    show(lines, &mut table, &mut echo)
}
