//! What a file was written but has not synced: byte ranges over its backing file, which
//! reads see, a sync writes to the backing file, and a power cut drops.

use std::collections::BTreeMap;

/// A file's unsynced writes: disjoint ranges, each its start and its bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unsynced {
    ranges: BTreeMap<u64, Vec<u8>>,
    bytes: u64,
}

impl Unsynced {
    /// Records `data` written at `offset`, over whatever was written there before.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        // The ranges that overlap or touch [offset, end]: contiguous, as they are disjoint.
        let mut touching: Vec<u64> = self
            .ranges
            .range(..=end)
            .rev()
            .take_while(|(s, v)| **s + v.len() as u64 >= offset)
            .map(|(s, _)| *s)
            .collect();
        touching.reverse();
        let start = touching.first().map_or(offset, |s| (*s).min(offset));
        // The first range is extended in place when it starts the union: an append to the
        // end of a log costs its own bytes, not the log's.
        let extended = touching.first() == Some(&start);
        let mut merged = if extended {
            self.take(start)
        } else {
            Vec::new()
        };
        for s in &touching[usize::from(extended)..] {
            let v = self.take(*s);
            place(&mut merged, (s - start) as usize, &v);
        }
        place(&mut merged, (offset - start) as usize, data);
        self.bytes += merged.len() as u64;
        self.ranges.insert(start, merged);
    }

    fn take(&mut self, start: u64) -> Vec<u8> {
        let v = self.ranges.remove(&start).unwrap_or_default();
        self.bytes -= v.len() as u64;
        v
    }

    /// Where the last unsynced byte ends (0 if none).
    pub fn end(&self) -> u64 {
        self.ranges
            .last_key_value()
            .map_or(0, |(s, v)| s + v.len() as u64)
    }

    /// How many bytes are unsynced.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// `buf`, read from the backing file at `offset`, as the file reads with these writes
    /// over it: `len` bytes at most, and none past `size`, the file's size.
    pub fn read_over(&self, offset: u64, buf: &mut Vec<u8>, len: usize, size: u64) {
        let n = (size.saturating_sub(offset)).min(len as u64) as usize;
        buf.resize(n, 0);
        let end = offset + n as u64;
        let first = self
            .ranges
            .range(..=offset)
            .next_back()
            .map_or(offset, |(s, _)| *s);
        for (s, v) in self.ranges.range(first..end) {
            let (from, to) = ((*s).max(offset), (s + v.len() as u64).min(end));
            if from < to {
                buf[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&v[(from - s) as usize..(to - s) as usize]);
            }
        }
    }

    /// Forgets what lies at or past `size` (the file was cut there).
    pub fn truncate(&mut self, size: u64) {
        let past: Vec<u64> = self.ranges.range(size..).map(|(s, _)| *s).collect();
        for s in past {
            self.take(s);
        }
        if let Some((s, v)) = self.ranges.range_mut(..size).next_back() {
            let keep = (size - s) as usize;
            if v.len() > keep {
                self.bytes -= (v.len() - keep) as u64;
                v.truncate(keep);
            }
        }
    }

    /// Every range, in order, for a sync to write; none is left.
    pub fn drain(&mut self) -> Vec<(u64, Vec<u8>)> {
        self.bytes = 0;
        std::mem::take(&mut self.ranges).into_iter().collect()
    }
}

/// Writes `data` into `buf` at `at`, growing it as needed.
fn place(buf: &mut Vec<u8>, at: usize, data: &[u8]) {
    if buf.len() < at + data.len() {
        buf.resize(at + data.len(), 0);
    }
    buf[at..at + data.len()].copy_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file as a plain byte vector: what the overlay must read like.
    fn model(base: &[u8], writes: &[(u64, &[u8])]) -> Vec<u8> {
        let mut f = base.to_vec();
        for (o, d) in writes {
            place(&mut f, *o as usize, d);
        }
        f
    }

    fn read_all(u: &Unsynced, base: &[u8]) -> Vec<u8> {
        let size = (base.len() as u64).max(u.end());
        let mut buf = base.to_vec();
        u.read_over(0, &mut buf, usize::MAX, size);
        buf
    }

    #[test]
    fn reads_see_writes_in_the_order_they_came_whatever_they_overlap() {
        let base = b"0123456789".to_vec();
        let cases: &[&[(u64, &[u8])]] = &[
            &[(2, b"ab")],
            &[(8, b"abcdef")],
            &[(14, b"xy")],
            &[(2, b"ab"), (4, b"cd")],
            &[(4, b"cd"), (2, b"ab")],
            &[(2, b"abcdef"), (3, b"X")],
            &[(3, b"X"), (2, b"abcdef")],
            &[(1, b"a"), (5, b"b"), (9, b"c"), (0, b"ZZZZZZZZZZZZ")],
            &[(1, b"a"), (5, b"b"), (4, b"QQ")],
        ];
        for writes in cases {
            let mut u = Unsynced::default();
            for (o, d) in *writes {
                u.write(*o, d);
            }
            assert_eq!(read_all(&u, &base), model(&base, writes), "{writes:?}");
            // Ranges stay disjoint and the count of bytes agrees with them.
            let total: u64 = u.ranges.values().map(|v| v.len() as u64).sum();
            assert_eq!(u.bytes(), total, "{writes:?}");
            let mut last_end = 0;
            for (s, v) in &u.ranges {
                assert!(*s >= last_end, "{writes:?}: {:?}", u.ranges.keys());
                last_end = s + v.len() as u64;
            }
        }
    }

    #[test]
    fn a_read_in_the_middle_sees_only_its_part_and_stops_at_the_files_end() {
        let mut u = Unsynced::default();
        u.write(4, b"abcd");
        let base = b"0123456789";
        let mut buf = base[3..6].to_vec();
        u.read_over(3, &mut buf, 3, 10);
        assert_eq!(buf, b"3ab");
        // Past the backing file's end: the unsynced bytes and zeros in the hole.
        let mut u = Unsynced::default();
        u.write(12, b"xy");
        let mut buf = Vec::new();
        u.read_over(10, &mut buf, 100, 14);
        assert_eq!(buf, b"\0\0xy");
    }

    #[test]
    fn appends_grow_one_range() {
        let mut u = Unsynced::default();
        for i in 0..1000u64 {
            u.write(i * 8, b"abcdefgh");
        }
        assert_eq!(u.ranges.len(), 1);
        assert_eq!(u.bytes(), 8000);
        assert_eq!(u.end(), 8000);
    }

    #[test]
    fn a_cut_forgets_what_lies_past_it_and_a_sync_takes_everything() {
        let mut u = Unsynced::default();
        u.write(0, b"abcd");
        u.write(10, b"efgh");
        u.truncate(2);
        assert_eq!(u.end(), 2);
        assert_eq!(u.bytes(), 2);
        u.write(10, b"ij");
        let drained = u.drain();
        assert_eq!(drained, vec![(0, b"ab".to_vec()), (10, b"ij".to_vec())]);
        assert!(u.is_empty());
        assert_eq!(u.bytes(), 0);
    }
}
