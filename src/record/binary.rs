//! The binary body of a record of format 4: every event after the header line as a few
//! bytes, each field relative to what came before it, so that a record is small before it
//! is compressed and is read without parsing text.
//!
//! # Encoding
//! Integers are LEB128 varints; signed ones (`s`) zigzag-encoded first. Differences wrap
//! (they are taken and undone modulo 2⁶⁴), so every value round-trips.
//!
//! An operation starts with a byte whose high bit is set:
//!
//! | bits of byte 0 | meaning |
//! |---|---|
//! | 7 | 1: an operation |
//! | 0 | kind: 0 read, 1 write |
//! | 1–2 | outcome: 0 ok, 1 fail, 2 unknown |
//! | 3–4 | value: 0 none, 1 a value whose attempt is the value, 2 a value without an attempt, 3 a value and an attempt |
//! | 5 | an error id follows |
//! | 6 | a revision follows |
//!
//! Byte 1 is the node (bits 0–5), bit 6 says a key byte follows (a read of another node's key
//! by a reader that is not the writer), bit 7 that a serving-node byte follows. Then, in this
//! order: the key byte; the start as `s` from the end of the previous operation of the same
//! node and key (0 before the first); the duration; the value as `s` from the key's previous
//! value (0 before the first); the attempt as `s` from the value; the error id; the serving
//! node byte; the revision as `s` from the previous revision in the record (0 before the
//! first).
//!
//! Any other event is a byte below 0x80 — its text line's tag (`X`, `F`, `M`, `E`) — a
//! varint length, and that many bytes of UTF-8: the rest of the text line after the tag and
//! its space, as in format 3.

use super::{Kind, Op, Outcome, MAX_NODES};
use std::collections::HashMap;
use std::sync::Arc;

/// The longest text after a tag (an error text, a mark): longer is malformed.
pub const MAX_TEXT: usize = 1 << 16;

/// The most bytes an operation takes.
pub const MAX_OP: usize = 2 + 1 + 4 * 10 + 5 + 1 + 10;

/// The operation tag's bit.
const OP: u8 = 0x80;
const VALUE_IS_ATTEMPT: u8 = 1;
const VALUE_ONLY: u8 = 2;
const VALUE_AND_ATTEMPT: u8 = 3;
const ERROR: u8 = 1 << 5;
const REVISION: u8 = 1 << 6;
const KEY: u8 = 1 << 6;
const SERVED: u8 = 1 << 7;

/// What the fields of an operation are taken relative to: the same on both sides, as long
/// as both see the same operations in the same order.
#[derive(Debug, Clone)]
pub struct Context {
    nodes: usize,
    /// Per node and key (`node * (nodes + 1) + key + 1`, 0 for the node's own): the end of
    /// its previous operation.
    last_end: Vec<u64>,
    /// Per key: the previous value read or written.
    last_value: Vec<i64>,
    last_revision: i64,
}

impl Context {
    /// For a record of `nodes` nodes (at most [`MAX_NODES`]).
    pub fn new(nodes: usize) -> Self {
        Context {
            nodes,
            last_end: vec![0; nodes * (nodes + 1)],
            last_value: vec![0; nodes],
            last_revision: 0,
        }
    }

    fn stream(&self, node: usize, key: Option<usize>) -> usize {
        node * (self.nodes + 1) + key.map_or(0, |k| k + 1)
    }

    fn update(&mut self, op: &Op) {
        let s = self.stream(op.node, op.key);
        self.last_end[s] = op.start_us.wrapping_add(op.duration_us);
        if let Some(v) = op.value {
            self.last_value[op.key_owner()] = v;
        }
        if let Some(r) = op.revision {
            self.last_revision = r;
        }
    }
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn put(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends `op` to `out`, with `error_id` its error text's number (defined before), and
/// moves `cx` on past it. `op`'s nodes must be below the context's node count.
pub fn encode_op(cx: &mut Context, op: &Op, error_id: Option<u32>, out: &mut Vec<u8>) {
    let value_form = match (op.value, op.attempt) {
        (None, _) => 0,
        (Some(v), Some(a)) if u64::try_from(v) == Ok(a) => VALUE_IS_ATTEMPT,
        (Some(_), None) => VALUE_ONLY,
        (Some(_), Some(_)) => VALUE_AND_ATTEMPT,
    };
    let outcome = match op.outcome {
        Outcome::Ok => 0,
        Outcome::Fail => 1,
        Outcome::Unknown => 2,
    };
    let b0 = OP
        | (op.kind == Kind::Write) as u8
        | outcome << 1
        | value_form << 3
        | if error_id.is_some() { ERROR } else { 0 }
        | if op.revision.is_some() { REVISION } else { 0 };
    let b1 = op.node as u8
        | if op.key.is_some() { KEY } else { 0 }
        | if op.served_by.is_some() { SERVED } else { 0 };
    out.push(b0);
    out.push(b1);
    if let Some(k) = op.key {
        out.push(k as u8);
    }
    let after = cx.last_end[cx.stream(op.node, op.key)];
    put(out, zigzag(op.start_us.wrapping_sub(after) as i64));
    put(out, op.duration_us);
    if let Some(v) = op.value {
        put(out, zigzag(v.wrapping_sub(cx.last_value[op.key_owner()])));
        if value_form == VALUE_AND_ATTEMPT {
            let a = op.attempt.unwrap_or(0) as i64;
            put(out, zigzag(a.wrapping_sub(v)));
        }
    }
    if let Some(id) = error_id {
        put(out, id as u64);
    }
    if let Some(s) = op.served_by {
        out.push(s as u8);
    }
    if let Some(r) = op.revision {
        put(out, zigzag(r.wrapping_sub(cx.last_revision)));
    }
    cx.update(op);
}

/// Appends an event other than an operation: its text line's `tag` and what follows the
/// tag's space (at most [`MAX_TEXT`] bytes; the writer shortens longer text).
pub fn encode_text(tag: u8, rest: &str, out: &mut Vec<u8>) {
    debug_assert!(tag < OP);
    let mut end = rest.len().min(MAX_TEXT);
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    out.push(tag);
    put(out, end as u64);
    out.extend_from_slice(&rest.as_bytes()[..end]);
}

/// One entry of a binary body, as read from the front of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    /// An operation (pushed onto the caller's events), with its error id; and the bytes it
    /// took.
    Op(Option<u32>, usize),
    /// A text event: its tag, its text and the bytes it took.
    Text(u8, &'a str, usize),
    /// The slice ends before the entry does: more bytes are needed.
    Incomplete,
}

/// Why bytes are not an entry.
pub type Malformed = &'static str;

/// The error texts defined so far, by id.
pub type Errors = HashMap<u32, Arc<str>>;

/// Why an entry could not be read: the slice ended, or the bytes are wrong.
enum Stop {
    Short,
    Bad(Malformed),
}

/// A cursor over the front of a slice; running off its end is [`Entry::Incomplete`].
struct Bytes<'a> {
    b: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    #[inline(always)]
    fn byte(&mut self) -> Result<u8, Stop> {
        let b = *self.b.get(self.at).ok_or(Stop::Short)?;
        self.at += 1;
        Ok(b)
    }

    /// A varint of at most 10 bytes that fits 64 bits; `what` is wrong otherwise.
    #[inline(always)]
    fn varint(&mut self, what: Malformed) -> Result<u64, Stop> {
        let first = self.byte()?;
        if first < 0x80 {
            return Ok(first as u64);
        }
        let mut n = (first & 0x7f) as u64;
        for i in 1..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(Stop::Bad(what));
            }
            n |= ((b & 0x7f) as u64) << (7 * i);
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(Stop::Bad(what))
    }

    #[inline(always)]
    fn signed(&mut self, what: Malformed) -> Result<i64, Stop> {
        self.varint(what).map(unzigzag)
    }
}

/// Reads the entry at the front of `bytes` against `cx`, which moves on past an operation
/// only when it is whole and well-formed; an operation is pushed onto `out`.
#[inline]
pub fn decode<'a>(
    cx: &mut Context,
    errors: &Errors,
    bytes: &'a [u8],
    out: &mut Vec<super::Event>,
) -> Result<Entry<'a>, Malformed> {
    let mut c = Bytes { b: bytes, at: 0 };
    match decode_in(cx, errors, &mut c, out) {
        Ok(entry) => Ok(entry),
        Err(Stop::Short) => Ok(Entry::Incomplete),
        Err(Stop::Bad(why)) => Err(why),
    }
}

#[inline(always)]
fn decode_in<'a>(
    cx: &mut Context,
    errors: &Errors,
    c: &mut Bytes<'a>,
    out: &mut Vec<super::Event>,
) -> Result<Entry<'a>, Stop> {
    let b0 = c.byte()?;
    if b0 < OP {
        if !matches!(b0, b'X' | b'F' | b'M' | b'E') {
            return Err(Stop::Bad("unknown entry"));
        }
        let len = c.varint("bad text length")?;
        if len > MAX_TEXT as u64 {
            return Err(Stop::Bad("text longer than 64 KiB"));
        }
        let start = c.at;
        let end = start + len as usize;
        let text = c.b.get(start..end).ok_or(Stop::Short)?;
        let text = std::str::from_utf8(text).map_err(|_| Stop::Bad("not UTF-8"))?;
        return Ok(Entry::Text(b0, text, end));
    }
    let b1 = c.byte()?;
    let n = cx.nodes;
    let node = (b1 & 0x3f) as usize;
    if node >= n {
        return Err(Stop::Bad("node index is not in the header"));
    }
    let key = if b1 & KEY != 0 {
        let k = c.byte()? as usize;
        if k >= n {
            return Err(Stop::Bad("key index is not in the header"));
        }
        Some(k)
    } else {
        None
    };
    let kind = if b0 & 1 == 1 { Kind::Write } else { Kind::Read };
    let outcome = match (b0 >> 1) & 3 {
        0 => Outcome::Ok,
        1 => Outcome::Fail,
        2 => Outcome::Unknown,
        _ => return Err(Stop::Bad("bad outcome")),
    };
    let stream = cx.stream(node, key);
    let start_us = cx.last_end[stream].wrapping_add(c.signed("bad start")? as u64);
    let duration_us = c.varint("bad duration")?;
    let end_us = start_us
        .checked_add(duration_us)
        .ok_or(Stop::Bad("bad duration"))?;
    let value_form = (b0 >> 3) & 3;
    let owner = key.unwrap_or(node);
    let (value, attempt) = if value_form == 0 {
        (None, None)
    } else {
        let v = cx.last_value[owner].wrapping_add(c.signed("bad value")?);
        let attempt = match value_form {
            VALUE_IS_ATTEMPT => Some(u64::try_from(v).map_err(|_| Stop::Bad("bad attempt"))?),
            VALUE_ONLY => None,
            _ => Some(v.wrapping_add(c.signed("bad attempt")?) as u64),
        };
        (Some(v), attempt)
    };
    let (error_id, error) = if b0 & ERROR != 0 {
        let id = c.varint("bad error id")?;
        let id = u32::try_from(id).map_err(|_| Stop::Bad("bad error id"))?;
        let text = errors.get(&id).ok_or(Stop::Bad("undefined error id"))?;
        (Some(id), Some(text.clone()))
    } else {
        (None, None)
    };
    let served_by = if b1 & SERVED != 0 {
        let s = c.byte()? as usize;
        if s >= n {
            return Err(Stop::Bad("serving node is not in the header"));
        }
        Some(s)
    } else {
        None
    };
    let revision = if b0 & REVISION != 0 {
        let r = cx.last_revision.wrapping_add(c.signed("bad revision")?);
        cx.last_revision = r;
        Some(r)
    } else {
        None
    };
    // Whole and well-formed: the context moves on.
    cx.last_end[stream] = end_us;
    if let Some(v) = value {
        cx.last_value[owner] = v;
    }
    out.push(super::Event::Op(Op {
        node,
        key,
        kind,
        start_us,
        duration_us,
        outcome,
        value,
        attempt,
        revision,
        error,
        served_by,
    }));
    Ok(Entry::Op(error_id, c.at))
}

const _: () = assert!(MAX_NODES <= 64, "a node index fits bits 0-5 of byte 1");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Event;

    fn op(node: usize, start_us: u64, value: Option<i64>) -> Op {
        Op {
            node,
            key: None,
            kind: Kind::Write,
            start_us,
            duration_us: 700,
            outcome: Outcome::Ok,
            value,
            attempt: value.map(|v| v as u64),
            revision: None,
            error: None,
            served_by: None,
        }
    }

    fn round_trip(ops: &[(Op, Option<u32>)]) -> Vec<u8> {
        let errors: Errors = [(0, "timed out".into()), (2, "x".into())].into();
        let mut out = Vec::new();
        let mut cx = Context::new(3);
        for (op, id) in ops {
            encode_op(&mut cx, op, *id, &mut out);
        }
        let mut cx = Context::new(3);
        let mut at = 0;
        let mut events = Vec::new();
        for (op, id) in ops {
            match decode(&mut cx, &errors, &out[at..], &mut events).unwrap() {
                Entry::Op(back_id, used) => {
                    let mut want = op.clone();
                    want.error = id.and_then(|i| errors.get(&i).cloned());
                    assert_eq!(events.pop(), Some(Event::Op(want)));
                    assert_eq!(back_id, *id);
                    at += used;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(at, out.len());
        out
    }

    #[test]
    fn a_steady_write_takes_a_few_bytes() {
        // Each node's writer sends its next request a few µs after the last one ended.
        let ops: Vec<(Op, Option<u32>)> = (0..99)
            .map(|i| {
                let (node, nth) = (i % 3, i as u64 / 3);
                let start = node as u64 * 100 + nth * (700 + 5);
                (op(node, start, Some(5_000 + nth as i64)), None)
            })
            .collect();
        let bytes = round_trip(&ops);
        assert!(
            bytes.len() <= 99 * 6 + 9,
            "{} bytes for 99 writes",
            bytes.len()
        );
    }

    #[test]
    fn every_field_at_its_ends_round_trips() {
        let mut ops = Vec::new();
        for v in [i64::MIN, -1, 0, 1, i64::MAX] {
            for a in [None, Some(0), Some(u64::MAX), Some(v as u64)] {
                ops.push((
                    Op {
                        key: Some(2),
                        kind: Kind::Read,
                        outcome: Outcome::Unknown,
                        value: Some(v),
                        attempt: a,
                        revision: Some(v.wrapping_mul(3)),
                        served_by: Some(1),
                        duration_us: u64::MAX / 2,
                        ..op(1, u64::MAX / 2, Some(v))
                    },
                    Some(2),
                ));
                ops.push((op(0, 0, None), Some(0)));
                ops.push((
                    Op {
                        outcome: Outcome::Fail,
                        ..op(2, 17, Some(v))
                    },
                    None,
                ));
            }
        }
        round_trip(&ops);
    }

    #[test]
    fn a_cut_entry_is_incomplete_and_leaves_the_context_as_it_was() {
        let mut out = Vec::new();
        let mut cx = Context::new(3);
        encode_op(&mut cx, &op(1, 5, Some(300)), None, &mut out);
        let first = out.len();
        encode_op(&mut cx, &op(1, 6_000, Some(301)), Some(0), &mut out);
        encode_text(b'M', "hello", &mut out);
        let errors: Errors = [(0, Arc::from("e"))].into();
        let mut cx = Context::new(3);
        let mut events = Vec::new();
        let Entry::Op(_, used) = decode(&mut cx, &errors, &out, &mut events).unwrap() else {
            panic!()
        };
        assert_eq!(used, first);
        let rest = &out[first..];
        let before = cx.clone();
        for cut in 0..rest.len() {
            match decode(&mut cx, &errors, &rest[..cut], &mut events).unwrap() {
                Entry::Incomplete => {}
                Entry::Op(..) => {
                    let Some(Event::Op(o)) = events.pop() else {
                        panic!()
                    };
                    assert_eq!(o.start_us, 6_000);
                    break;
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(events.len(), 1);
            assert_eq!(cx.last_end, before.last_end);
        }
    }

    #[test]
    fn nodes_beyond_the_header_unknown_tags_and_long_varints_are_malformed() {
        let errors = Errors::new();
        let mut cx = Context::new(2);
        let mut events = Vec::new();
        let mut decode = |cx: &mut Context, errors: &Errors, bytes: &'static [u8]| {
            decode(cx, errors, bytes, &mut events)
        };
        assert!(decode(&mut cx, &errors, &[0x81, 2, 0, 0, 0]).is_err());
        assert!(decode(&mut cx, &errors, &[0x81, 0x40 | 1, 5, 0, 0]).is_err());
        assert!(decode(&mut cx, &errors, b"Q\x01x").is_err());
        assert!(decode(&mut cx, &errors, &[0x80 | 3 << 1, 0, 0, 0]).is_err());
        let long: &'static [u8] = &[
            0x81, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert!(decode(&mut cx, &errors, long).is_err());
        assert!(decode(&mut cx, &errors, &[0x81 | ERROR, 0, 0, 0, 0, 7]).is_err());
        assert_eq!(decode(&mut cx, &errors, b"M\x05hel"), Ok(Entry::Incomplete));
        assert_eq!(
            decode(&mut cx, &errors, b"M\x05hello"),
            Ok(Entry::Text(b'M', "hello", 7))
        );
    }
}
