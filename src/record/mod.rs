//! The record: every operation and every fault event of a run, streamed to disk as it
//! happens, and everything after the fact is computed from it.
//!
//! # Format (`record.bin.zst`, version 4)
//! A header line, `H {json}` (the format version, database, node names, `t0` as Unix ms and as
//! monotonic ns), then every event in a binary encoding ([`binary`]: a typical operation in
//! six bytes, each field relative to the one before it), the whole compressed as a
//! sequence of zstd frames, one per flush (at least once a second), each holding whole
//! events: a writer killed in the middle of a frame leaves a record that reads back to its
//! last whole event. Times are microseconds since the record's origin `t0` on the
//! system-wide monotonic clock. `perseus export` writes the events as JSON Lines or CSV for
//! other tools, or as a text record (below).
//!
//! # Text (`record.txt`, version 3, and everything before version 4)
//! Records of versions 1 to 3 are UTF-8 text, plain or compressed the same way
//! (`record.txt.zst`); they still read, and a plain record is still written as text. One
//! event per line, fields separated by single spaces:
//!
//! | line | meaning |
//! |---|---|
//! | `H {json}` | header, first line |
//! | `X <id> <text>` | defines error text number `id`; written once, before the first operation that uses it |
//! | `<node> <r\|w> <start> <duration> <o\|f\|u> <value\|-> [<error id>]` | an operation of a node's writer: node index (0-based, into the header's nodes), read or write, start and duration, outcome ok / fail / unknown, the value read (`-`: key absent or no value) or written |
//! | `… <value>#<attempt> …` | the value with the number of the write attempt that set it (a write: its own number; a read: the attempt it returned); `<value>#` when the attempt is the value (as it is until a write fails) |
//! | `… @<node>` | optional field of an operation: the node whose server answered, when the client was sent on from `node` to another (e.g. to the primary) |
//! | `… ^<revision>` | optional last field of an operation: the database's stamp of the change (a write: the one it made; a read: the one that last set the key), e.g. etcd's revision |
//! | `<node>:<key> r …` | a read through `node` of node `key`'s key by a reader that is not the writer (an observer, or a final read); the rest as above |
//! | `F <t> <verb> <target>` | a fault event, e.g. `F 30000412 isolating n2` (verbs: isolating, isolated, rejoining, rejoined) |
//! | `M <t> <text>` | a free-form mark |
//! | `E <t>` | the record ended cleanly at `t` (absent if the writer was killed) |
//!
//! Version 1 has no attempts, version 2 no `<value>#` short form. In a binary record the
//! events other than operations are these lines too, after a tag byte and a length.
//!
//! An operation is `unknown` when it timed out or its connection broke after the request
//! was sent: it may or may not have taken effect. The writer flushes at least once a second,
//! so a crash loses at most the last second. Where a malformed record is reported at
//! "line N", N counts the entries of a binary record as a text one counts its lines (the
//! header is line 1).

pub mod binary;
pub mod export;
pub mod faults;
pub mod synthetic;
pub mod table;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The per-second table written beside every record (the seed's client log).
pub const TABLE_FILE: &str = "client.log";

/// The marks (`M` lines) Perseus itself writes and the analysis reads.
pub mod marks {
    /// Precedes the final reads: every node reads every key once.
    pub const FINAL_READS: &str = "final-reads";
    /// `stopped-early <why>`: the run or watch stopped before its end because its record
    /// had to stop growing (its size limit, or the disk nearly full).
    pub const STOPPED_EARLY: &str = "stopped-early";
    /// Before the first fault: the database had warmed up, or had not.
    pub const WARM: &str = "warmed-up";
    pub const NOT_WARM: &str = "not-warmed-up";
    /// Before each fault a lab starts, where the database has a leader: `leader n1`, or
    /// `leader none` while no node leads.
    pub const LEADER: &str = "leader";
    /// The text of [`LEADER`]'s mark.
    pub fn leader(node: Option<&str>) -> String {
        format!("{LEADER} {}", node.unwrap_or("none"))
    }
}

/// The version of the compressed binary record (what `perseus run` and `watch` write).
pub const FORMAT_VERSION: u32 = 4;
/// The version of a plain record, which is text.
pub const TEXT_VERSION: u32 = 3;
/// The oldest format version this reader takes.
pub const OLDEST_VERSION: u32 = 1;
/// The plain record's name in a results directory (what early versions wrote).
pub const FILE_NAME: &str = "record.txt";
/// The compressed record's name: what `perseus run` and `watch` write.
pub const COMPRESSED_FILE_NAME: &str = "record.bin.zst";
/// The compressed text record's name (what versions before 4 wrote).
pub const COMPRESSED_TEXT_FILE_NAME: &str = "record.txt.zst";

/// The record of results directory `dir` (of any version), or an error saying to give one.
pub fn in_results(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    for name in [COMPRESSED_FILE_NAME, COMPRESSED_TEXT_FILE_NAME, FILE_NAME] {
        let record = dir.join(name);
        if record.exists() {
            return Ok(record);
        }
    }
    Err(Error::Invalid(format!(
        "{} has no record ({COMPRESSED_FILE_NAME}, {COMPRESSED_TEXT_FILE_NAME} or {FILE_NAME}): give a results directory of perseus run or watch",
        dir.display()
    )))
}

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Read,
    Write,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It happened, and the server said so.
    Ok,
    /// It did not happen (the server refused it, or it was never sent).
    Fail,
    /// Timed out or the connection broke after sending: it may or may not have happened.
    Unknown,
}

/// One request of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The node the request went to.
    pub node: usize,
    /// Whose key it read, for a read of another key than the node's own by a reader that
    /// is not the node's writer (an observer, or the final reads); `None` for the node's
    /// own read → increment → write client.
    pub key: Option<usize>,
    pub kind: Kind,
    pub start_us: u64,
    pub duration_us: u64,
    pub outcome: Outcome,
    /// The value read (`None`: the key is absent) or the value written.
    pub value: Option<i64>,
    /// The write attempt that set `value`: a write's own number, or the one a read returned
    /// (`None`: not known, e.g. a record of version 1). Unique per key.
    pub attempt: Option<u64>,
    /// The database's stamp of the change: made by a write, or found by a read (etcd's
    /// revision, ZooKeeper's zxid); `None` where the database has none.
    pub revision: Option<i64>,
    pub error: Option<std::sync::Arc<str>>,
    /// The node whose server answered, where the client was sent on to another node than
    /// `node` (e.g. to the primary); `None`: `node` itself, or not known.
    pub served_by: Option<usize>,
}

impl Op {
    pub fn end_us(&self) -> u64 {
        self.start_us.saturating_add(self.duration_us)
    }

    /// A completed increment: the write of a read → increment → write cycle succeeded.
    pub fn is_success(&self) -> bool {
        self.kind == Kind::Write && self.outcome == Outcome::Ok
    }

    /// The index of the node whose key this request touched.
    pub fn key_owner(&self) -> usize {
        self.key.unwrap_or(self.node)
    }

    /// Whether the request came from the node's writer (the seed's client).
    pub fn is_writer(&self) -> bool {
        self.key.is_none()
    }

    pub fn is_error(&self) -> bool {
        self.outcome != Outcome::Ok
    }
}

/// A fault event on the record's time line, e.g. `isolating n2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultEvent {
    pub t_us: u64,
    pub verb: String,
    pub target: String,
}

impl FaultEvent {
    /// The marker line of the per-second table, as the seed wrote it: `# isolating n2`.
    pub fn marker(&self) -> String {
        format!("# {} {}", self.verb, self.target)
    }
}

/// One line of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Op(Op),
    Fault(FaultEvent),
    Mark { t_us: u64, text: String },
    End { t_us: u64 },
}

/// The first line of every record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub database: String,
    /// The server version, as the servers reported it at the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_version: Option<String>,
    pub nodes: Vec<String>,
    /// The nodes' addresses, in the order of `nodes` (empty if unknown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// How the writers wrote: `blind` or `cas` (absent in records of format 1: blind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<String>,
    /// The effective value of every server setting the preset documents (`db::knob`), as
    /// Perseus started the servers; absent for a cluster Perseus did not start.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub settings: std::collections::BTreeMap<String, String>,
    /// The clients' request timeout in milliseconds (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The cap on each writer's cycles a second (`--rate`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// The origin `t0` on the wall clock.
    pub t0_unix_ms: i64,
    /// The origin `t0` on the monotonic clock.
    pub t0_monotonic_ns: u64,
}

impl Header {
    pub fn new(database: &str, nodes: Vec<String>, t0_unix_ms: i64, t0_monotonic_ns: u64) -> Self {
        Header {
            format: "perseus-record".into(),
            version: FORMAT_VERSION,
            database: database.into(),
            database_version: None,
            nodes,
            addresses: Vec::new(),
            write: None,
            settings: Default::default(),
            timeout_ms: None,
            rate: None,
            t0_unix_ms,
            t0_monotonic_ns,
        }
    }

    /// Converts a monotonic timestamp to record time (0 if it is before `t0`).
    pub fn relative_us(&self, monotonic_ns: u64) -> u64 {
        monotonic_ns.saturating_sub(self.t0_monotonic_ns) / 1000
    }
}

/// Turns events into a record's bytes: text lines (format 3) or binary entries (format 4).
/// An error text is defined the first time an operation carries it.
struct Encoder {
    /// For a binary record: what its operations are encoded relative to.
    binary: Option<binary::Context>,
    errors: HashMap<std::sync::Arc<str>, u32>,
}

impl Encoder {
    fn new(binary: bool, nodes: usize) -> Self {
        Encoder {
            binary: binary.then(|| binary::Context::new(nodes)),
            errors: HashMap::new(),
        }
    }

    /// The header line, with this form's version (whatever `header` says).
    fn header(&self, header: &Header, out: &mut Vec<u8>) {
        let version = if self.binary.is_some() {
            FORMAT_VERSION
        } else {
            TEXT_VERSION
        };
        let header = Header {
            version,
            ..header.clone()
        };
        let json = serde_json::to_string(&header).expect("header serialises");
        out.extend_from_slice(b"H ");
        out.extend_from_slice(json.as_bytes());
        out.push(b'\n');
    }

    fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
        match event {
            Event::Op(op) => self.op(op, out),
            Event::Fault(f) => self.text(
                b'F',
                format_args!("{} {} {}", f.t_us, f.verb, f.target),
                out,
            ),
            Event::Mark { t_us, text } => {
                self.text(b'M', format_args!("{t_us} {}", one_line(text)), out)
            }
            Event::End { t_us } => self.text(b'E', format_args!("{t_us}"), out),
        }
    }

    /// An event other than an operation: its line `tag rest` in a text record.
    fn text(&self, tag: u8, rest: std::fmt::Arguments, out: &mut Vec<u8>) {
        if self.binary.is_some() {
            binary::encode_text(tag, &rest.to_string(), out);
        } else {
            out.push(tag);
            out.push(b' ');
            out.write_fmt(rest)
                .expect("writing into memory cannot fail");
            out.push(b'\n');
        }
    }

    fn op(&mut self, op: &Op, out: &mut Vec<u8>) {
        let error_id = match &op.error {
            None => None,
            Some(text) => Some(match self.errors.get(text) {
                Some(id) => *id,
                None => {
                    let id = self.errors.len() as u32;
                    self.errors.insert(text.clone(), id);
                    self.text(b'X', format_args!("{id} {}", one_line(text)), out);
                    id
                }
            }),
        };
        if let Some(cx) = &mut self.binary {
            binary::encode_op(cx, op, error_id, out);
            return;
        }
        let kind = match op.kind {
            Kind::Read => 'r',
            Kind::Write => 'w',
        };
        let outcome = match op.outcome {
            Outcome::Ok => 'o',
            Outcome::Fail => 'f',
            Outcome::Unknown => 'u',
        };
        let value = Value(op.value, op.attempt);
        let who = Who(op.node, op.key);
        let served = Served(op.served_by);
        let revision = Revision(op.revision);
        let start = op.start_us;
        let duration = op.duration_us;
        match error_id {
            None => writeln!(
                out,
                "{who} {kind} {start} {duration} {outcome} {value}{served}{revision}"
            ),
            Some(id) => writeln!(
                out,
                "{who} {kind} {start} {duration} {outcome} {value} {id}{served}{revision}"
            ),
        }
        .expect("writing into memory cannot fail");
    }
}

/// Writes a record: compressed and binary (format 4) for a path ending in `.zst`, plain text
/// (format 3) otherwise. Only whole events ever reach the file: a process killed at any
/// moment leaves a record that reads back to its last flush (or to its last whole line).
pub struct Writer {
    file: File,
    /// Whole events not yet in the file.
    buf: Vec<u8>,
    encoder: Encoder,
    /// How much to buffer before writing, between flushes.
    chunk: usize,
    /// For a compressed record: the compressor and its output, reused for every frame.
    zstd: Option<(zstd::bulk::Compressor<'static>, Vec<u8>)>,
    /// Bytes in the file so far.
    written: u64,
    path: PathBuf,
}

/// How much the writer buffers before it writes a plain record, between flushes.
const WRITE_CHUNK: usize = 1 << 16;
/// The same for a compressed record: a frame per MiB of events, or per flush if sooner.
const FRAME_CHUNK: usize = 1 << 20;
/// zstd's level for records: its fastest that still finds the repeats of record lines.
const ZSTD_LEVEL: i32 = 1;

impl Writer {
    /// Creates the file (truncating an old one) and writes the header, at once: a record
    /// whose writer dies in its first second still has its header. A path ending in
    /// `.zst` gets a compressed binary record. The header's version is the form's
    /// ([`FORMAT_VERSION`] or [`TEXT_VERSION`]), whatever `header` says.
    pub fn create(path: &Path, header: &Header) -> Result<Self> {
        let compressed = path.extension().is_some_and(|e| e == "zst");
        if compressed && header.nodes.len() > MAX_NODES {
            return Err(Error::Invalid(format!(
                "{} nodes: a record has at most {MAX_NODES}",
                header.nodes.len()
            )));
        }
        let file = crate::files::create(path)?;
        let zstd = if compressed {
            let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL)
                .map_err(Error::io(format!("compress {}", path.display())))?;
            // Each frame carries its checksum: a corrupt record is an error, not events.
            c.include_checksum(true)
                .map_err(Error::io(format!("compress {}", path.display())))?;
            Some((c, Vec::new()))
        } else {
            None
        };
        let chunk = if compressed { FRAME_CHUNK } else { WRITE_CHUNK };
        let mut w = Writer {
            file,
            buf: Vec::with_capacity(chunk + 256),
            encoder: Encoder::new(compressed, header.nodes.len()),
            chunk,
            zstd,
            written: 0,
            path: path.to_path_buf(),
        };
        w.encoder.header(header, &mut w.buf);
        w.flush()?;
        Ok(w)
    }

    pub fn write(&mut self, event: &Event) -> Result<()> {
        self.encoder.event(event, &mut self.buf);
        if self.buf.len() >= self.chunk {
            self.flush()?;
        }
        Ok(())
    }

    /// Pushes buffered events to the file (as one frame, compressed).
    pub fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let io = || Error::io(format!("write {}", self.path.display()));
        let bytes: &[u8] = match &mut self.zstd {
            Some((c, out)) => {
                out.clear();
                out.reserve(zstd::zstd_safe::compress_bound(self.buf.len()));
                c.compress_to_buffer(&self.buf, out).map_err(io())?;
                out
            }
            None => &self.buf,
        };
        let written = self.file.write_all(bytes);
        self.written += bytes.len() as u64;
        self.buf.clear();
        written.map_err(io())
    }

    /// How many bytes the file holds so far (buffered events not counted).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The record's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How many events a long write goes between two looks at whether it must stop.
const STOP_CHECK: u64 = 4096;

/// Writes the events of `reader` to `out` as a plain text record (format 3), which
/// `perseus report` reads too; returns how many events it wrote. Once `stop` says so, it
/// ends with [`Error::Interrupted`].
pub fn write_text(reader: Reader, out: &mut dyn Write, stop: &dyn Fn() -> bool) -> Result<u64> {
    let io = |e: std::io::Error| Error::io("write the text record".to_string())(e);
    let mut encoder = Encoder::new(false, reader.header().nodes.len());
    let mut buf = Vec::with_capacity(WRITE_CHUNK + 256);
    encoder.header(reader.header(), &mut buf);
    let mut n = 0;
    for event in reader {
        encoder.event(&event?, &mut buf);
        n += 1;
        if n % STOP_CHECK == 0 && stop() {
            return Err(Error::Interrupted);
        }
        if buf.len() >= WRITE_CHUNK {
            out.write_all(&buf).map_err(io)?;
            buf.clear();
        }
    }
    out.write_all(&buf).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(n)
}

struct Who(usize, Option<usize>);

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(k) => write!(f, "{}:{k}", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// The optional serving-node field, with its leading space.
struct Served(Option<usize>);

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(k) => write!(f, " @{k}"),
            None => Ok(()),
        }
    }
}

/// The optional revision field, with its leading space.
struct Revision(Option<i64>);

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(r) => write!(f, " ^{r}"),
            None => Ok(()),
        }
    }
}

struct Value(Option<i64>, Option<u64>);

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.0, self.1) {
            (Some(v), Some(a)) if u64::try_from(v) == Ok(a) => write!(f, "{v}#"),
            (Some(v), Some(a)) => write!(f, "{v}#{a}"),
            (Some(v), None) => write!(f, "{v}"),
            (None, _) => f.write_str("-"),
        }
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r', '\t'], " ")
}

/// Reads a record back, of any version, plain or compressed, one event at a time (memory
/// does not grow with the record).
pub struct Reader {
    input: Box<dyn BufRead + Send>,
    /// Set when a compressed record ends in the middle of a frame.
    cut_frame: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// A line or entry the input's buffer holds only the start of, gathered here.
    straddling: Vec<u8>,
    /// A binary record was malformed: nothing after the error can be read.
    failed: bool,
    cut_line: bool,
    lines: Lines,
}

/// Turns the record's lines into events; what a line means may rest on the lines before
/// it (error definitions, the latest time).
struct Lines {
    header: Header,
    /// For a binary record (version 4 on): what its operations are relative to.
    binary: Option<binary::Context>,
    errors: binary::Errors,
    /// The bytes of the error texts in `errors`.
    error_bytes: usize,
    /// Fault events and marks so far, and the bytes of their texts.
    markers: usize,
    marker_bytes: usize,
    path: PathBuf,
    line_no: usize,
    /// The latest time of any event so far.
    latest_us: u64,
}

/// The largest zstd window a record's frame may ask for (8 MiB).
const MAX_WINDOW_LOG: u32 = 23;

/// The first bytes of every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A compressed record's text: a frame cut short at the end of the file (its writer was
/// killed while writing it) ends the text where its whole blocks end, and is noted in
/// `cut`.
struct Frames<R: BufRead> {
    inner: zstd::stream::read::Decoder<'static, R>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<R: BufRead> std::io::Read for Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.cut.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(0)
            }
            // zstd's own errors are the data's: a corrupt frame, a window past the limit.
            Err(e) if e.kind() == std::io::ErrorKind::Other => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("corrupt compressed data ({e})"),
            )),
            other => other,
        }
    }
}

/// Text read ahead on a thread of its own (a compressed record's decompression), a few
/// chunks ahead of whoever reads it; the thread ends at the end of the text, at an error
/// (passed on to the reader), or when the reader is dropped.
struct Prefetch {
    chunks: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Prefetch {
    const CHUNK: usize = 1 << 18;

    fn spawn(mut inner: impl std::io::Read + Send + 'static) -> Result<Prefetch> {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        std::thread::Builder::new()
            .name("record-inflate".into())
            .spawn(move || loop {
                let mut chunk = vec![0; Self::CHUNK];
                let mut filled = 0;
                let read = loop {
                    match inner.read(&mut chunk[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == chunk.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                chunk.truncate(filled);
                let last = filled < Self::CHUNK || read.is_err();
                let sent = match read {
                    Ok(()) => tx.send(Ok(chunk)),
                    // An empty chunk would read as the end of the text, hiding the error.
                    Err(e) if chunk.is_empty() => tx.send(Err(e)),
                    Err(e) => tx.send(Ok(chunk)).and_then(|_| tx.send(Err(e))),
                };
                if sent.is_err() || last {
                    return;
                }
            })
            .map_err(Error::io("start a thread to read the record".to_string()))?;
        Ok(Prefetch {
            chunks: rx,
            chunk: Vec::new(),
            at: 0,
        })
    }
}

impl std::io::Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The chunks are the buffer: lines are read where the decompressing thread put them.
impl BufRead for Prefetch {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.at == self.chunk.len() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) if chunk.is_empty() => break,
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The thread ended after the last chunk.
                Err(_) => break,
            }
        }
        Ok(&self.chunk[self.at..])
    }

    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.chunk.len());
    }
}

/// The most nodes a record (and so a lab, a cluster, a client log) may have: node sets are
/// 64-bit masks.
pub const MAX_NODES: usize = 64;

/// The longest header line a record may have; Perseus's are a few KiB.
pub const MAX_HEADER: u64 = 1 << 20;
/// The longest line (or binary entry) a record may have; an error text is the longest part
/// of one, and no server's is near it.
pub const MAX_LINE: u64 = 1 << 20;
/// The most error texts a record may define, and the most bytes they may hold together:
/// what its reader keeps for the whole record.
pub const MAX_ERRORS: usize = 1 << 20;
pub const MAX_ERROR_BYTES: usize = 64 << 20;

/// The most fault events and marks a record may hold, and the most bytes their texts may
/// hold together: the analysis keeps every one (a fault a minute with its leader mark is
/// 13 days).
pub const MAX_MARKERS: usize = 1 << 16;
pub const MAX_MARKER_BYTES: usize = 16 << 20;

/// How far an event may lie beyond every event before it (see [`Reader`]).
pub const MAX_JUMP_US: u64 = 24 * 3_600_000_000;

impl Reader {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::io(format!("open {}", path.display())))?;
        let regular = file
            .metadata()
            .map_err(Error::io(format!("open {}", path.display())))?
            .is_file();
        if !regular {
            return Err(Error::Invalid(format!(
                "{} is not a regular file: a record is one; give the file perseus run or watch wrote",
                path.display()
            )));
        }
        let mut raw = BufReader::with_capacity(1 << 16, file);
        let cut_frame = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let compressed = raw
            .fill_buf()
            .map_err(Error::io(format!("read {}", path.display())))?
            .starts_with(&ZSTD_MAGIC);
        let mut input: Box<dyn BufRead + Send> = if compressed {
            let mut frames = zstd::stream::read::Decoder::with_buffer(raw)
                .map_err(Error::io(format!("read {}", path.display())))?;
            // The writer's frames hold at most a MiB: a frame asking for a larger window
            // is not one of them, and must not make the reader allocate it.
            frames
                .window_log_max(MAX_WINDOW_LOG)
                .map_err(Error::io(format!("read {}", path.display())))?;
            let frames = Frames {
                inner: frames,
                cut: cut_frame.clone(),
            };
            Box::new(Prefetch::spawn(frames)?)
        } else {
            Box::new(raw)
        };
        let malformed = |why: &str| Error::Malformed {
            what: "record".into(),
            path: path.to_path_buf(),
            line: 1,
            why: why.into(),
        };
        let mut first = Vec::new();
        std::io::Read::take(&mut input, MAX_HEADER + 1)
            .read_until(b'\n', &mut first)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => malformed(&e.to_string()),
                _ => Error::io(format!("read {}", path.display()))(e),
            })?;
        if first.is_empty() {
            return Err(malformed("empty file"));
        }
        if first.len() as u64 > MAX_HEADER {
            return Err(malformed(&format!(
                "the header is longer than {} KiB: this is not a record Perseus wrote",
                MAX_HEADER >> 10
            )));
        }
        let first = String::from_utf8_lossy(&first);
        let first = first.trim_end();
        let json = first
            .strip_prefix("H ")
            .ok_or_else(|| malformed("the first line is not a header (H {...})"))?;
        let header: Header =
            serde_json::from_str(json).map_err(|e| malformed(&format!("bad header: {e}")))?;
        if header.nodes.is_empty() || header.nodes.len() > MAX_NODES {
            return Err(malformed(&format!(
                "{} nodes: a record has 1 to {MAX_NODES}",
                header.nodes.len()
            )));
        }
        if let Some(e) = header
            .nodes
            .iter()
            .find_map(|n| crate::nodeset::check_name(n).err())
        {
            return Err(malformed(&e));
        }
        if header.format != "perseus-record"
            || !(OLDEST_VERSION..=FORMAT_VERSION).contains(&header.version)
        {
            return Err(malformed(&format!(
                "format {} version {} is not one this perseus reads (perseus-record {OLDEST_VERSION} to {FORMAT_VERSION})",
                header.format, header.version
            )));
        }
        Ok(Reader {
            input,
            cut_frame,
            straddling: Vec::with_capacity(128),
            failed: false,
            cut_line: false,
            lines: Lines {
                binary: (header.version >= 4).then(|| binary::Context::new(header.nodes.len())),
                header,
                errors: HashMap::new(),
                error_bytes: 0,
                markers: 0,
                marker_bytes: 0,
                path: path.to_path_buf(),
                line_no: 1,
                latest_us: 0,
            },
        })
    }

    pub fn header(&self) -> &Header {
        &self.lines.header
    }

    /// Calls `beside` and `f` with every event, in the record's order: `f` on the caller's
    /// thread, `beside` on a thread of its own that reads (decompresses and decodes) the
    /// events a batch ahead, so that the work is shared by two cores. Stops at the first
    /// error, the record's or `f`'s, and returns it.
    pub fn for_each_in_background(
        self,
        mut beside: impl FnMut(&Event) + Send,
        mut f: impl FnMut(&Event) -> Result<()>,
    ) -> Result<()> {
        // Batches large enough that handing one over (a wake-up of the other thread) costs
        // little beside the work on it.
        const BATCH: usize = 2048;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Event>>>(16);
        // Batches go back to the reading thread once used, and are filled again.
        let (used_tx, used) = std::sync::mpsc::sync_channel::<Vec<Event>>(32);
        let mut reader = self;
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("record-reader".into())
                .spawn_scoped(scope, move || loop {
                    let mut batch = used
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                    let end = match reader.fill(&mut batch, BATCH) {
                        Ok(true) => None,
                        Ok(false) => Some(Ok(())),
                        Err(e) => Some(Err(e)),
                    };
                    batch.iter().for_each(&mut beside);
                    if tx.send(Ok(batch)).is_err() {
                        return;
                    }
                    match end {
                        None => {}
                        Some(Ok(())) => return,
                        Some(Err(e)) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                })
                .map_err(Error::io("start a thread to read the record".to_string()))?;
            // `rx` is dropped on an error here, which stops the reading thread.
            for batch in rx {
                let mut batch = batch?;
                for event in &batch {
                    f(event)?;
                }
                batch.clear();
                let _ = used_tx.try_send(batch);
            }
            Ok(())
        })
    }

    /// Appends the next events to `batch` until it holds `max`; false once the record has
    /// ended.
    pub fn fill(&mut self, batch: &mut Vec<Event>, max: usize) -> Result<bool> {
        while batch.len() < max {
            if self.lines.binary.is_some() && self.straddling.is_empty() && !self.failed {
                // Whole entries are decoded straight from the input's buffer while the
                // longest operation fits in what is left of it.
                let available = match self.input.fill_buf() {
                    Ok(available) => available,
                    Err(e) => {
                        self.failed = true;
                        return Err(self.lines.read_error(e));
                    }
                };
                let mut at = 0;
                let mut failed = None;
                while batch.len() < max && available.len() - at >= binary::MAX_OP {
                    match self.lines.entry(&available[at..], batch) {
                        Ok(Entry::Used(used)) => at += used,
                        Ok(Entry::Incomplete) => break,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                self.input.consume(at);
                if let Some(e) = failed {
                    self.failed = true;
                    return Err(e);
                }
                if at > 0 {
                    continue;
                }
            }
            if self.lines.binary.is_some() {
                match self.next_entry(batch) {
                    Some(Ok(())) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Ok(false),
                }
                continue;
            }
            match self.next() {
                Some(Ok(event)) => batch.push(event),
                Some(Err(e)) => return Err(e),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Whether the record's last line was cut short (and dropped): its writer was killed.
    pub fn cut_line(&self) -> bool {
        self.cut_line || self.cut_frame.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Lines {
    /// The error for a failed read of the record: malformed where its compressed data is
    /// (see [`Frames`]), else the machine's.
    fn read_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::InvalidData {
            self.malformed(e.to_string())
        } else {
            Error::io(format!("read {}", self.path.display()))(e)
        }
    }

    fn malformed(&self, why: impl Into<String>) -> Error {
        Error::Malformed {
            what: "record".into(),
            path: self.path.clone(),
            line: self.line_no,
            why: why.into(),
        }
    }

    /// Parses a line other than an operation.
    fn parse_text(&mut self, line: &str) -> Result<Option<Event>> {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        if tag == "F" || tag == "M" {
            self.markers += 1;
            self.marker_bytes += rest.len();
            if self.markers > MAX_MARKERS || self.marker_bytes > MAX_MARKER_BYTES {
                return Err(self.malformed(format!(
                    "more fault events and marks than a record may hold ({MAX_MARKERS}, {} MiB)",
                    MAX_MARKER_BYTES >> 20
                )));
            }
        }
        let num = |s: Option<&str>, what: &str| -> Result<u64> {
            s.and_then(|s| s.parse().ok())
                .ok_or_else(|| self.malformed(format!("bad {what}")))
        };
        match tag {
            "" => Ok(None),
            "X" => {
                let (id, text) = rest
                    .split_once(' ')
                    .ok_or_else(|| self.malformed("bad error definition"))?;
                let id = num(Some(id), "error id")? as u32;
                self.error_bytes += text.len();
                if let Some(old) = self.errors.insert(id, text.into()) {
                    self.error_bytes -= old.len();
                }
                if self.errors.len() > MAX_ERRORS || self.error_bytes > MAX_ERROR_BYTES {
                    return Err(self.malformed(format!(
                        "more error texts than a record may hold ({MAX_ERRORS} texts, {} MiB)",
                        MAX_ERROR_BYTES >> 20
                    )));
                }
                Ok(None)
            }
            "F" => {
                let mut f = rest.splitn(3, ' ');
                let t_us = num(f.next(), "time")?;
                let verb = f.next().unwrap_or("").to_string();
                let target = f.next().unwrap_or("").to_string();
                if verb.is_empty() {
                    return Err(self.malformed("fault event without a verb"));
                }
                faults::check_event(&verb, &target).map_err(|e| self.malformed(e))?;
                Ok(Some(Event::Fault(FaultEvent { t_us, verb, target })))
            }
            "M" => {
                let (t, text) = rest.split_once(' ').unwrap_or((rest, ""));
                Ok(Some(Event::Mark {
                    t_us: num(Some(t), "time")?,
                    text: text.to_string(),
                }))
            }
            "E" => Ok(Some(Event::End {
                t_us: num(Some(rest), "time")?,
            })),
            _ => Err(self.malformed("unknown line")),
        }
    }

    /// Parses an operation line (ASCII only: no text but an error id), in one pass.
    fn parse_op(&self, line: &[u8]) -> Result<Event> {
        let bad = |what: &str| self.malformed(format!("bad {what}"));
        let n = self.header.nodes.len() as u64;
        let mut c = Cursor(line);
        let (node, key) = match c.number() {
            Some((node, Some(b' '))) => (node, None),
            Some((node, Some(b':'))) => match c.number() {
                Some((key, Some(b' '))) => (node, Some(key)),
                _ => return Err(bad("key")),
            },
            _ => return Err(bad("node")),
        };
        if node >= n || key.is_some_and(|k| k >= n) {
            let who = key.map_or(node.to_string(), |k| format!("{node}:{k}"));
            return Err(self.malformed(format!("node index {who} is not in the header")));
        }
        let kind = match c.flag() {
            Some(b'r') => Kind::Read,
            Some(b'w') => Kind::Write,
            _ => return Err(bad("operation kind")),
        };
        let start_us = c.field().ok_or_else(|| bad("start"))?;
        let duration_us = c.field().ok_or_else(|| bad("duration"))?;
        if start_us.checked_add(duration_us).is_none() {
            return Err(bad("duration"));
        }
        let outcome = match c.flag() {
            Some(b'o') => Outcome::Ok,
            Some(b'f') => Outcome::Fail,
            Some(b'u') => Outcome::Unknown,
            _ => return Err(bad("outcome")),
        };
        // The value: `-`, `v`, `v#` (the attempt is the value) or `v#attempt`; `more`:
        // another field follows.
        let (value, attempt, mut more) = match c.0 {
            [b'-'] | [b'-', b' ', ..] => {
                let more = c.0.len() > 1;
                c.0 = &c.0[c.0.len().min(2)..];
                (None, None, more)
            }
            _ => match c.signed().ok_or_else(|| bad("value"))? {
                (value, Some(b'#')) => match c.0 {
                    [] | [b' ', ..] => {
                        let attempt = u64::try_from(value).map_err(|_| bad("attempt"))?;
                        let more = !c.0.is_empty();
                        c.0 = &c.0[c.0.len().min(1)..];
                        (Some(value), Some(attempt), more)
                    }
                    _ => match c.number() {
                        Some((attempt, stop @ (None | Some(b' ')))) => {
                            (Some(value), Some(attempt), stop.is_some())
                        }
                        _ => return Err(bad("attempt")),
                    },
                },
                (value, stop @ (None | Some(b' '))) => (Some(value), None, stop.is_some()),
                _ => return Err(bad("value")),
            },
        };
        let mut served_by = None;
        let mut error = None;
        let mut revision = None;
        if more && !matches!(c.0.first(), Some(b'@' | b'^')) {
            let (id, stop) = match c.number() {
                Some((id, stop @ (None | Some(b' ')))) => (id as u32, stop),
                _ => return Err(bad("error id")),
            };
            error = Some(
                self.errors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| self.malformed("undefined error id"))?,
            );
            more = stop.is_some();
        }
        if more && c.0.first() == Some(&b'@') {
            c.0 = &c.0[1..];
            let (k, stop) = match c.number() {
                Some((k, stop @ (None | Some(b' ')))) => (k, stop),
                _ => return Err(bad("serving node")),
            };
            if k >= n {
                return Err(self.malformed("serving node is not in the header"));
            }
            served_by = Some(k as usize);
            more = stop.is_some();
        }
        if more {
            c.0 = c.0.strip_prefix(b"^").ok_or_else(|| bad("revision"))?;
            revision = match c.signed() {
                Some((rev, None)) => Some(rev),
                Some((_, Some(b' '))) => return Err(self.malformed("unknown line")),
                _ => return Err(bad("revision")),
            };
        }
        Ok(Event::Op(Op {
            node: node as usize,
            key: key.map(|k| k as usize),
            kind,
            start_us,
            duration_us,
            outcome,
            value,
            attempt,
            revision,
            error,
            served_by,
        }))
    }
}

/// What is left of an operation line, read from the left a field at a time.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    /// A decimal number of ASCII digits that fits a u64 (up to `u64::MAX`, 20 digits), and
    /// the byte after it (`None`: the line ended), which is consumed too; `None` if no digit
    /// comes first or the number is larger.
    fn number(&mut self) -> Option<(u64, Option<u8>)> {
        let mut n = 0u64;
        let mut len = 0;
        while let Some(d @ b'0'..=b'9') = self.0.get(len) {
            n = n.checked_mul(10)?.checked_add((d - b'0') as u64)?;
            len += 1;
        }
        if len == 0 {
            return None;
        }
        let stop = self.0.get(len).copied();
        self.0 = &self.0[(len + stop.is_some() as usize)..];
        Some((n, stop))
    }

    /// A number with an optional minus sign that fits an i64, and the byte after it.
    fn signed(&mut self) -> Option<(i64, Option<u8>)> {
        match self.0.split_first() {
            Some((b'-', rest)) => {
                self.0 = rest;
                let (n, stop) = self.number()?;
                Some((0i64.checked_sub_unsigned(n)?, stop))
            }
            _ => {
                let (n, stop) = self.number()?;
                Some((i64::try_from(n).ok()?, stop))
            }
        }
    }

    /// A number followed by a space (another field comes).
    fn field(&mut self) -> Option<u64> {
        match self.number()? {
            (n, Some(b' ')) => Some(n),
            _ => None,
        }
    }

    /// A one-byte field followed by a space.
    fn flag(&mut self) -> Option<u8> {
        match self.0 {
            [b, b' ', rest @ ..] => {
                self.0 = rest;
                Some(*b)
            }
            _ => None,
        }
    }
}

impl Lines {
    /// The event of one line (its end of line removed); `None` for a line that defines
    /// rather than records (an error text) or is empty.
    fn event(&mut self, mut line: &[u8]) -> Result<Option<Event>> {
        self.line_no += 1;
        while let [rest @ .., b'\r'] = line {
            line = rest;
        }
        let event = if line.first().is_some_and(u8::is_ascii_digit) {
            self.parse_op(line)?
        } else {
            match std::str::from_utf8(line) {
                Ok(text) => match self.parse_text(text)? {
                    Some(event) => event,
                    None => return Ok(None),
                },
                Err(_) => return Err(self.malformed("not UTF-8")),
            }
        };
        self.accept(event).map(Some)
    }

    /// Reads the entry at the front of a binary record's `bytes`; an event is pushed onto
    /// `out`.
    #[inline]
    fn entry(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<Entry> {
        let cx = self.binary.as_mut().expect("a binary record");
        match binary::decode(cx, &self.errors, bytes, out) {
            Ok(binary::Entry::Incomplete) => Ok(Entry::Incomplete),
            Ok(binary::Entry::Op(_, used)) => {
                self.line_no += 1;
                let t = out.last().map_or(0, crate::record::table::event_time);
                if let Err(e) = self.plausible(t) {
                    out.pop();
                    return Err(e);
                }
                Ok(Entry::Used(used))
            }
            Ok(binary::Entry::Text(tag, text, used)) => {
                self.line_no += 1;
                let line = format!("{} {text}", tag as char);
                if let Some(event) = self.parse_text(&line)? {
                    out.push(self.accept(event)?);
                }
                Ok(Entry::Used(used))
            }
            Err(why) => {
                self.line_no += 1;
                Err(self.malformed(why))
            }
        }
    }

    /// `event` if its time is plausible after the events before it.
    fn accept(&mut self, event: Event) -> Result<Event> {
        self.plausible(crate::record::table::event_time(&event))?;
        Ok(event)
    }

    /// Whether an event at `t` is plausible after the events before it (and if so, `t` is
    /// the latest time now).
    #[inline]
    fn plausible(&mut self, t: u64) -> Result<()> {
        // Times move on by seconds between lines (clients complete or time out all the
        // time): a line a day ahead of everything before it is corrupt, and taking it would
        // stretch every per-second series over its bogus length.
        if t > self.latest_us.saturating_add(MAX_JUMP_US) {
            return Err(self.malformed(format!(
                "time {t} µs is more than {} s after anything before it",
                MAX_JUMP_US / 1_000_000
            )));
        }
        self.latest_us = self.latest_us.max(t);
        Ok(())
    }
}

/// What the front of a binary record's bytes held.
enum Entry {
    /// An entry (an event, or an error text's definition), and the bytes it took.
    Used(usize),
    /// The start of an entry: more bytes are needed.
    Incomplete,
}

impl Reader {
    /// Pushes the next event of a binary record onto `out`; `None` at its end, and after an
    /// error (the entries after a malformed one cannot be told apart).
    fn next_entry(&mut self, out: &mut Vec<Event>) -> Option<Result<()>> {
        if self.failed {
            return None;
        }
        let had = out.len();
        loop {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(self.lines.read_error(e)));
                }
            };
            // Most entries are read where they lie in the input's buffer; one that runs
            // on into the next buffer is gathered in `straddling` first.
            let gathered = self.straddling.len();
            let (entry, taken) = if gathered == 0 {
                if available.is_empty() {
                    return None;
                }
                (self.lines.entry(available, out), available.len())
            } else {
                if available.is_empty() {
                    // The record ends inside an entry: its writer was stopped while writing
                    // it (or its last frame was cut). It is dropped, as a cut line is.
                    self.lines.line_no += 1;
                    self.cut_line = true;
                    self.straddling.clear();
                    return None;
                }
                let take = available.len().min(gathered.max(128));
                self.straddling.extend_from_slice(&available[..take]);
                (self.lines.entry(&self.straddling, out), take)
            };
            match entry {
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                Ok(Entry::Incomplete) => {
                    if gathered == 0 {
                        self.straddling.extend_from_slice(available);
                    }
                    self.input.consume(taken);
                }
                Ok(Entry::Used(used)) => {
                    self.input.consume(used - gathered);
                    self.straddling.clear();
                    if out.len() > had {
                        return Some(Ok(()));
                    }
                }
            }
        }
    }
}

impl Iterator for Reader {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.lines.binary.is_some() {
            let mut one = Vec::with_capacity(1);
            return match self.next_entry(&mut one)? {
                Ok(()) => one.pop().map(Ok),
                Err(e) => Some(Err(e)),
            };
        }
        loop {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(e) => return Some(Err(self.lines.read_error(e))),
            };
            if available.is_empty() {
                return None;
            }
            // Most lines are parsed where they lie in the input's buffer.
            let parsed = match memchr::memchr(b'\n', available) {
                Some(end) => {
                    let parsed = self.lines.event(&available[..end]);
                    self.input.consume(end + 1);
                    parsed
                }
                None => {
                    self.straddling.clear();
                    if let Err(e) = std::io::Read::take(&mut self.input, MAX_LINE + 1)
                        .read_until(b'\n', &mut self.straddling)
                    {
                        return Some(Err(self.lines.read_error(e)));
                    }
                    if self.straddling.len() as u64 > MAX_LINE {
                        self.lines.line_no += 1;
                        return Some(Err(self.lines.malformed(format!(
                            "a line longer than {} KiB: this is not a record Perseus wrote",
                            MAX_LINE >> 10
                        ))));
                    }
                    if self.straddling.pop() != Some(b'\n') {
                        // A last line without its end: the writer was stopped while writing
                        // it. It is dropped; the record then has no end line, and reads as
                        // ended abruptly.
                        self.lines.line_no += 1;
                        self.cut_line = true;
                        return None;
                    }
                    self.lines.event(&self.straddling)
                }
            };
            match parsed {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        node: usize,
        kind: Kind,
        outcome: Outcome,
        value: Option<i64>,
        error: Option<&str>,
    ) -> Op {
        Op {
            node,
            key: None,
            kind,
            start_us: 1_000 + node as u64,
            duration_us: 250,
            outcome,
            value,
            error: error.map(Into::into),
            attempt: None,
            revision: None,
            served_by: None,
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let dir = std::env::temp_dir().join(format!("perseus-record-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let header = Header::new(
            "etcd",
            vec!["n1".into(), "n2".into()],
            1_700_000_000_000,
            42,
        );
        let events = vec![
            Event::Op(op(0, Kind::Read, Outcome::Ok, None, None)),
            Event::Op(op(0, Kind::Write, Outcome::Ok, Some(1), None)),
            Event::Op(op(
                1,
                Kind::Read,
                Outcome::Unknown,
                None,
                Some("timed out\nafter 1s"),
            )),
            Event::Op(op(
                1,
                Kind::Read,
                Outcome::Fail,
                None,
                Some("timed out\nafter 1s"),
            )),
            Event::Op(Op {
                key: Some(0),
                ..op(1, Kind::Read, Outcome::Ok, Some(7), None)
            }),
            Event::Op(Op {
                served_by: Some(0),
                ..op(1, Kind::Write, Outcome::Ok, Some(8), None)
            }),
            Event::Op(Op {
                served_by: Some(1),
                ..op(0, Kind::Write, Outcome::Fail, Some(9), Some("READONLY"))
            }),
            Event::Op(Op {
                attempt: Some(12),
                ..op(1, Kind::Write, Outcome::Ok, Some(12), None)
            }),
            Event::Op(Op {
                attempt: Some(13),
                ..op(1, Kind::Read, Outcome::Ok, Some(12), None)
            }),
            Event::Fault(FaultEvent {
                t_us: 5,
                verb: "isolating".into(),
                target: "n2".into(),
            }),
            Event::Mark {
                t_us: 6,
                text: "hello world".into(),
            },
            Event::End { t_us: 7 },
        ];
        let mut expected = events.clone();
        for e in &mut expected {
            if let Event::Op(o) = e {
                o.error = o.error.as_ref().map(|t| t.replace('\n', " ").into());
            }
        }
        for (path, version) in [
            (path.clone(), TEXT_VERSION),
            (dir.join(COMPRESSED_FILE_NAME), FORMAT_VERSION),
        ] {
            let mut w = Writer::create(&path, &header).unwrap();
            for e in &events {
                w.write(e).unwrap();
            }
            w.flush().unwrap();
            if version == TEXT_VERSION {
                let text = std::fs::read_to_string(&path).unwrap();
                assert_eq!(text.matches("X 0 timed out after 1s").count(), 1, "{text}");
                assert!(text.contains(" w 1001 250 o 8 @0\n"), "{text}");
                assert!(text.contains(" w 1000 250 f 9 1 @1\n"), "{text}");
                assert!(text.contains(" w 1001 250 o 12#\n"), "{text}");
                assert!(text.contains(" r 1001 250 o 12#13\n"), "{text}");
            }
            let r = Reader::open(&path).unwrap();
            assert_eq!(
                r.header(),
                &Header {
                    version,
                    ..header.clone()
                }
            );
            let back: Vec<Event> = r.map(|e| e.unwrap()).collect();
            assert_eq!(back, expected, "version {version}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_operation_line_stays_short() {
        let dir = std::env::temp_dir().join(format!("perseus-record-size-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let header = Header::new("etcd", vec!["n1".into()], 0, 0);
        let mut w = Writer::create(&path, &header).unwrap();
        let mut o = op(0, Kind::Write, Outcome::Ok, Some(123_456), None);
        o.start_us = 3_599_000_000;
        w.write(&Event::Op(o)).unwrap();
        w.flush().unwrap();
        let len = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .len();
        assert!(len < 32, "an op line is {len} bytes");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_broken_line_is_reported_with_its_number() {
        let dir = std::env::temp_dir().join(format!("perseus-record-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let header = Header {
            version: TEXT_VERSION,
            ..Header::new("etcd", vec!["n1".into()], 0, 0)
        };
        let json = serde_json::to_string(&header).unwrap();
        std::fs::write(&path, format!("H {json}\n0 w 1 2 o 3\n0 q 1 2 o 3\n")).unwrap();
        let results: Vec<_> = Reader::open(&path).unwrap().collect();
        assert!(results[0].is_ok());
        let err = results[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    fn temp_record(tag: &str) -> (PathBuf, Header) {
        let dir = std::env::temp_dir().join(format!("perseus-record-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = Header::new(
            "etcd",
            vec!["n1".into(), "n2".into()],
            1_700_000_000_000,
            42,
        );
        (dir.join(FILE_NAME), header)
    }

    /// A writer killed at any moment (here: dropped without a flush) leaves its header and
    /// whole lines only, and the record reads back to its last whole line.
    #[test]
    fn a_killed_writer_leaves_the_header_and_whole_lines_only() {
        let (path, header) = temp_record("killed");
        let mut w = Writer::create(&path, &header).unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert!(
            on_disk.starts_with(b"H {") && on_disk.ends_with(b"\n"),
            "the header is on disk at once"
        );
        for i in 0..20_000 {
            let mut o = op(i % 2, Kind::Write, Outcome::Ok, Some(i as i64), None);
            o.start_us = i as u64 * 100;
            w.write(&Event::Op(o)).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk.len() > 100_000, "whole chunks were written");
        assert!(on_disk.ends_with(b"\n"), "only whole lines reach the file");
        drop(w);
        let events = Reader::open(&path)
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .unwrap();
        assert!(
            events.len() > 1000 && events.len() < 20_000,
            "{}",
            events.len()
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// The compressed record holds the same events as the plain one in a fraction of the
    /// bytes, and one whose last frame was cut anywhere reads back to a whole line.
    #[test]
    fn a_compressed_record_reads_as_the_plain_one_and_survives_a_cut_frame() {
        let (plain, header) = temp_record("zstd");
        let packed = plain.with_file_name(COMPRESSED_FILE_NAME);
        let mut events = Vec::new();
        for i in 0..30_000u64 {
            let mut o = op((i % 2) as usize, Kind::Write, Outcome::Ok, None, None);
            o.value = Some((i / 2) as i64);
            o.attempt = Some(i / 2 + 1);
            o.start_us = i * 37 + (i * 7919) % 500;
            o.duration_us = 200 + (i * 104_729) % 900;
            events.push(Event::Op(o));
        }
        let mut frames = Vec::new();
        for path in [&plain, &packed] {
            let mut w = Writer::create(path, &header).unwrap();
            for (i, e) in events.iter().enumerate() {
                w.write(e).unwrap();
                if i % 10_000 == 9_999 {
                    w.flush().unwrap();
                    frames.push(w.bytes_written());
                }
            }
        }
        let read = |path: &Path| {
            let mut r = Reader::open(path).unwrap();
            let back: Vec<Event> = r.by_ref().collect::<Result<_>>().unwrap();
            (back, r.cut_line())
        };
        assert_eq!(read(&plain), (events.clone(), false));
        assert_eq!(read(&packed), (events.clone(), false));
        let (plain_len, packed_len) = (
            std::fs::metadata(&plain).unwrap().len(),
            std::fs::metadata(&packed).unwrap().len(),
        );
        assert!(
            packed_len * 4 < plain_len,
            "{packed_len} bytes compressed, {plain_len} plain"
        );
        let bytes = std::fs::read(&packed).unwrap();
        let last_frame = frames[frames.len() - 2] as usize..bytes.len();
        for cut in [
            last_frame.start + 3,
            last_frame.start + 200,
            // The last byte of the last block (a frame ends with its 4-byte checksum).
            bytes.len() - 5,
        ] {
            std::fs::write(&packed, &bytes[..cut]).unwrap();
            let (back, cut_line) = read(&packed);
            assert!(cut_line, "cut at {cut}");
            assert!(
                back.len() >= 20_000 && back.len() < events.len(),
                "cut at {cut}: {} events",
                back.len()
            );
            assert_eq!(back[..], events[..back.len()]);
        }
        let _ = std::fs::remove_dir_all(plain.parent().unwrap());
    }

    #[test]
    fn a_last_line_cut_short_is_dropped_and_the_record_reads() {
        let (path, header) = temp_record("cut");
        let mut w = Writer::create(&path, &header).unwrap();
        w.write(&Event::Op(op(0, Kind::Write, Outcome::Ok, Some(1), None)))
            .unwrap();
        w.flush().unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"1 w 12204411 10").unwrap();
        let mut r = Reader::open(&path).unwrap();
        let events: Vec<Event> = r.by_ref().collect::<Result<_>>().unwrap();
        assert_eq!(events.len(), 1);
        assert!(r.cut_line());
        // A malformed line that is not the last is still an error.
        f.write_all(b"\n0 r 5 5 o 1\n").unwrap();
        assert!(Reader::open(&path)
            .unwrap()
            .collect::<Result<Vec<_>>>()
            .is_err());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn values_at_the_ends_of_i64_parse_and_beyond_them_are_errors() {
        let signed = |text: &[u8]| Cursor(text).signed().map(|(n, _)| n);
        assert_eq!(signed(b"99999999999999999999"), None);
        assert_eq!(signed(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(signed(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(signed(b"9223372036854775808"), None);
        assert_eq!(signed(b"-9999999999999999999"), None);
        // Unsigned fields (an attempt, a revision) read back up to u64::MAX, as written.
        let unsigned = |text: &[u8]| Cursor(text).number().map(|(n, _)| n);
        assert_eq!(unsigned(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(unsigned(b"18446744073709551616"), None);
        assert_eq!(unsigned(b"00000000000000000000001"), Some(1));
    }

    /// One bogus time far ahead of the rest (which would stretch every per-second series
    /// over it) or an operation ending past the clock's range is a malformed record.
    #[test]
    fn a_time_far_beyond_the_record_is_malformed_not_a_runaway() {
        let (path, header) = temp_record("jump");
        let mut w = Writer::create(&path, &header).unwrap();
        w.write(&Event::Op(op(0, Kind::Write, Outcome::Ok, Some(1), None)))
            .unwrap();
        w.flush().unwrap();
        for bogus in ["M 10000000000000 x\n", "0 w 18446744073709551615 5 o 1\n"] {
            let mut text = std::fs::read_to_string(&path).unwrap();
            text.push_str(bogus);
            let bad = path.with_extension("bad");
            std::fs::write(&bad, text).unwrap();
            let e = Reader::open(&bad)
                .unwrap()
                .collect::<Result<Vec<_>>>()
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 3"), "{bogus}: {e}");
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
