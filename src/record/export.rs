//! The record as plain history for other tools: JSON Lines or CSV, one event a line, with
//! node names instead of indexes and error texts inline.
//!
//! JSON Lines: the first line is the header (`{"event":"header",…}`, the record's own);
//! then one object per event:
//! - `{"event":"op","node":"n1","key":"n1","f":"read|write","start_us":…,"end_us":…,
//!   "outcome":"ok|fail|unknown","value":…,"attempt":…,"revision":…,"served_by":…,
//!   "error":…}` (absent fields: not known for that operation);
//! - `{"event":"fault","t_us":…,"verb":"isolating","target":"n2"}`;
//! - `{"event":"mark","t_us":…,"text":…}` and `{"event":"end","t_us":…}`.
//!
//! CSV: a header row, then one row per event with the columns of [`CSV_COLUMNS`]; a fault's
//! `text` is `verb target`.
//!
//! Text: the record itself as a plain text record (format 3, described in [`super`]): one
//! line per event, node indexes and error ids as the record has them; `perseus report`
//! reads it as it reads the compressed record.

use super::{Event, Header, Kind, Outcome, Reader};
use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Write;

/// The forms `perseus export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Text,
}

impl Format {
    pub const ALL: &'static [Format] = &[Format::Jsonl, Format::Csv, Format::Text];

    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Text => "text",
        }
    }
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: &str =
    "event,t_us,end_us,node,key,f,outcome,value,attempt,revision,served_by,error,text";

#[derive(Serialize)]
struct OpLine<'a> {
    event: &'static str,
    node: &'a str,
    key: &'a str,
    f: &'static str,
    start_us: u64,
    end_us: u64,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempt: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    served_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Read => "read",
        Kind::Write => "write",
    }
}

fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Unknown => "unknown",
    }
}

/// Writes every event of the record `reader` reads to `out` in `format`; returns how many
/// events it wrote. A record cut short by a killed writer exports up to its last whole
/// line; a malformed one stops the export with its error. Once `stop` says so, the export
/// ends with [`Error::Interrupted`].
pub fn export(
    reader: Reader,
    format: Format,
    out: &mut dyn Write,
    stop: &dyn Fn() -> bool,
) -> Result<u64> {
    if format == Format::Text {
        return super::write_text(reader, out, stop);
    }
    let header = reader.header().clone();
    let io = |e: std::io::Error| Error::io("write the export".to_string())(e);
    match format {
        Format::Jsonl => {
            let mut h = serde_json::to_value(&header).expect("a header serialises");
            h.as_object_mut()
                .expect("a header is an object")
                .insert("event".into(), "header".into());
            serde_json::to_writer(&mut *out, &h).expect("a header serialises");
            out.write_all(b"\n").map_err(io)?;
        }
        Format::Csv => writeln!(out, "{CSV_COLUMNS}").map_err(io)?,
        Format::Text => unreachable!("written above"),
    }
    let mut n = 0;
    for event in reader {
        let event = event?;
        match format {
            Format::Jsonl => jsonl(&header, &event, out).map_err(io)?,
            Format::Csv => csv(&header, &event, out).map_err(io)?,
            Format::Text => unreachable!("written above"),
        }
        n += 1;
        if n % super::STOP_CHECK == 0 && stop() {
            return Err(Error::Interrupted);
        }
    }
    out.flush().map_err(io)?;
    Ok(n)
}

fn jsonl(h: &Header, e: &Event, out: &mut dyn Write) -> std::io::Result<()> {
    let node = |i: usize| h.nodes[i].as_str();
    match e {
        Event::Op(o) => serde_json::to_writer(
            &mut *out,
            &OpLine {
                event: "op",
                node: node(o.node),
                key: node(o.key_owner()),
                f: kind(o.kind),
                start_us: o.start_us,
                end_us: o.end_us(),
                outcome: outcome(o.outcome),
                value: o.value,
                attempt: o.attempt,
                revision: o.revision,
                served_by: o.served_by.map(node),
                error: o.error.as_deref(),
            },
        )?,
        Event::Fault(f) => serde_json::to_writer(
            &mut *out,
            &serde_json::json!({"event": "fault", "t_us": f.t_us, "verb": f.verb, "target": f.target}),
        )?,
        Event::Mark { t_us, text } => serde_json::to_writer(
            &mut *out,
            &serde_json::json!({"event": "mark", "t_us": t_us, "text": text}),
        )?,
        Event::End { t_us } => serde_json::to_writer(
            &mut *out,
            &serde_json::json!({"event": "end", "t_us": t_us}),
        )?,
    }
    out.write_all(b"\n")
}

/// A CSV field: quoted when it holds a comma, a quote or a line break. Text that a
/// spreadsheet would take for a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, as OWASP advises against CSV injection.
fn field(text: &str) -> std::borrow::Cow<'_, str> {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let text: std::borrow::Cow<'_, str> = if formula {
        format!("'{text}").into()
    } else {
        text.into()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text
    }
}

fn csv(h: &Header, e: &Event, out: &mut dyn Write) -> std::io::Result<()> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    match e {
        Event::Op(o) => writeln!(
            out,
            "op,{},{},{},{},{},{},{},{},{},{},{},",
            o.start_us,
            o.end_us(),
            field(&h.nodes[o.node]),
            field(&h.nodes[o.key_owner()]),
            kind(o.kind),
            outcome(o.outcome),
            opt(o.value.map(|v| v.to_string())),
            opt(o.attempt.map(|v| v.to_string())),
            opt(o.revision.map(|v| v.to_string())),
            field(&opt(o.served_by.map(|i| h.nodes[i].clone()))),
            field(o.error.as_deref().unwrap_or("")),
        ),
        Event::Fault(f) => writeln!(
            out,
            "fault,{},,,,,,,,,,,{}",
            f.t_us,
            field(&format!("{} {}", f.verb, f.target))
        ),
        Event::Mark { t_us, text } => writeln!(out, "mark,{t_us},,,,,,,,,,,{}", field(text)),
        Event::End { t_us } => writeln!(out, "end,{t_us},,,,,,,,,,,"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FaultEvent, Op, Writer, COMPRESSED_FILE_NAME};

    fn record(tag: &str) -> (std::path::PathBuf, Vec<Event>) {
        let dir = std::env::temp_dir().join(format!("perseus-export-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(COMPRESSED_FILE_NAME);
        let header = Header::new("etcd", vec!["n1".into(), "n2".into()], 0, 0);
        let events = vec![
            Event::Op(Op {
                node: 1,
                key: None,
                kind: Kind::Write,
                start_us: 100,
                duration_us: 50,
                outcome: Outcome::Ok,
                value: Some(3),
                error: None,
                attempt: Some(3),
                revision: Some(17),
                served_by: Some(0),
            }),
            Event::Op(Op {
                node: 0,
                key: Some(1),
                kind: Kind::Read,
                start_us: 120,
                duration_us: 1_000_000,
                outcome: Outcome::Unknown,
                value: None,
                error: Some("timed out, \"deadline\"".into()),
                attempt: None,
                revision: None,
                served_by: None,
            }),
            Event::Fault(FaultEvent {
                t_us: 130,
                verb: "isolating".into(),
                target: "n2".into(),
            }),
            Event::End { t_us: 2_000_000 },
        ];
        let mut w = Writer::create(&path, &header).unwrap();
        for e in &events {
            w.write(e).unwrap();
        }
        w.flush().unwrap();
        (path, events)
    }

    fn exported(path: &std::path::Path, format: Format) -> (u64, String) {
        let mut out = Vec::new();
        let n = export(Reader::open(path).unwrap(), format, &mut out, &|| false).unwrap();
        (n, String::from_utf8(out).unwrap())
    }

    #[test]
    fn jsonl_has_the_header_then_every_event_with_node_names() {
        let (path, events) = record("jsonl");
        let (n, text) = exported(&path, Format::Jsonl);
        assert_eq!(n, events.len() as u64);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), events.len() + 1);
        assert_eq!(lines[0]["event"], "header");
        assert_eq!(lines[0]["nodes"], serde_json::json!(["n1", "n2"]));
        let w = &lines[1];
        assert_eq!(
            (&w["node"], &w["key"], &w["f"], &w["outcome"]),
            (&"n2".into(), &"n2".into(), &"write".into(), &"ok".into())
        );
        assert_eq!(
            (w["value"].as_i64(), w["end_us"].as_u64()),
            (Some(3), Some(150))
        );
        assert_eq!(w["served_by"], "n1");
        assert!(w.get("error").is_none());
        let r = &lines[2];
        assert_eq!((&r["node"], &r["key"]), (&"n1".into(), &"n2".into()));
        assert_eq!(r["error"], "timed out, \"deadline\"");
        assert_eq!(lines[3]["verb"], "isolating");
        assert_eq!(lines[4]["event"], "end");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn csv_rows_have_every_column_and_quote_what_needs_it() {
        let (path, _) = record("csv");
        let (_, text) = exported(&path, Format::Csv);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_COLUMNS);
        assert_eq!(lines[1], "op,100,150,n2,n2,write,ok,3,3,17,n1,,");
        assert_eq!(
            lines[2],
            "op,120,1000120,n1,n2,read,unknown,,,,,\"timed out, \"\"deadline\"\"\","
        );
        assert_eq!(lines[3], "fault,130,,,,,,,,,,,isolating n2");
        assert_eq!(lines[4], "end,2000000,,,,,,,,,,,");
        let columns = CSV_COLUMNS.split(',').count();
        for l in [lines[1], lines[3], lines[4]] {
            assert_eq!(l.split(',').count(), columns, "{l}");
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// The text export of a binary record is a plain record of the same events.
    #[test]
    fn csv_fields_keep_their_columns_and_are_never_formulas() {
        assert_eq!(field("n2,\"x\""), "\"n2,\"\"x\"\"\"");
        assert_eq!(
            field("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        for bad in ["+1", "-1", "@SUM(A1)", "\tx"] {
            assert_eq!(field(bad), format!("'{bad}"), "{bad}");
        }
        assert_eq!(field("timed out after 1s"), "timed out after 1s");
        // A row whose node name has a comma and a quote still has every column.
        let header: Header = serde_json::from_value(serde_json::json!({
            "format": "perseus-record", "version": 1, "database": "etcd",
            "nodes": ["n1", "n2,\"x\""], "addresses": ["a", "b"],
            "t0_unix_ms": 0, "t0_monotonic_ns": 0
        }))
        .unwrap();
        let op = Op {
            node: 1,
            key: None,
            kind: Kind::Read,
            start_us: 1,
            duration_us: 2,
            outcome: Outcome::Ok,
            value: None,
            attempt: None,
            revision: None,
            served_by: Some(1),
            error: Some("=cmd".into()),
        };
        let mut out = Vec::new();
        csv(&header, &Event::Op(op), &mut out).unwrap();
        let row = String::from_utf8(out).unwrap();
        let columns = |line: &str| {
            let (mut n, mut quoted) = (1, false);
            for c in line.chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => n += 1,
                    _ => {}
                }
            }
            n
        };
        assert_eq!(columns(row.trim_end()), columns(CSV_COLUMNS), "{row}");
        assert!(row.contains(",'=cmd"), "{row}");
    }

    #[test]
    fn text_is_a_plain_record_of_the_same_events() {
        let (path, events) = record("text");
        let (n, text) = exported(&path, Format::Text);
        assert_eq!(n, events.len() as u64);
        assert!(
            text.starts_with("H {\"format\":\"perseus-record\",\"version\":3,"),
            "{text}"
        );
        assert!(text.contains("\n1 w 100 50 o 3# @0 ^17\n"), "{text}");
        assert!(
            text.contains("\nX 0 timed out, \"deadline\"\n0:1 r 120 1000000 u - 0\n"),
            "{text}"
        );
        let plain = path.with_file_name(crate::record::FILE_NAME);
        std::fs::write(&plain, &text).unwrap();
        let back: Vec<Event> = Reader::open(&plain)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(back, events);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
