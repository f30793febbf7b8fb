//! The lab's event log: fault commands append their events here (`perseus isolate` from
//! any terminal, or the run's own timeline), and every running watch reads them into its
//! record. One line per event: `<monotonic ns> <verb> <target>`.

use crate::clock::monotonic_ns;
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

fn path(lab_dir: &Path) -> PathBuf {
    lab_dir.join("events")
}

/// The verb of a free-form mark (its text is the rest of the line), as opposed to a fault event.
pub const MARK: &str = "mark";

/// An event read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabEvent {
    pub monotonic_ns: u64,
    pub verb: String,
    pub target: String,
}

/// Appends an event stamped now; returns the stamp. An event is one line: text with a
/// line break or another control character is refused (it could forge other events).
pub fn append(lab_dir: &Path, verb: &str, target: &str) -> Result<u64> {
    if let Some(c) = verb.chars().chain(target.chars()).find(|c| c.is_control()) {
        return Err(Error::Invalid(format!(
            "an event is one line of text: {c:?} is not allowed in '{verb} {target}'",
        )));
    }
    if verb.is_empty() || verb.contains(' ') {
        return Err(Error::Invalid(format!(
            "an event starts with one word: '{verb}'"
        )));
    }
    let p = path(lab_dir);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .map_err(Error::io(format!("open {}", p.display())))?;
    let t = monotonic_ns();
    // One write of one short line: appends from several processes never interleave.
    f.write_all(format!("{t} {verb} {target}\n").as_bytes())
        .map_err(Error::io(format!("write {}", p.display())))?;
    Ok(t)
}

/// Reads the events appended after it was opened.
pub struct Tail {
    file: File,
    partial: String,
}

impl Tail {
    pub fn open(lab_dir: &Path) -> Result<Tail> {
        let p = path(lab_dir);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&p)
            .map_err(Error::io(format!("open {}", p.display())))?;
        file.seek(SeekFrom::End(0))
            .map_err(Error::io(format!("seek {}", p.display())))?;
        Ok(Tail {
            file,
            partial: String::new(),
        })
    }

    /// The complete event lines appended since the last call.
    pub fn poll(&mut self) -> Vec<LabEvent> {
        let mut buf = String::new();
        if self.file.read_to_string(&mut buf).is_err() {
            return Vec::new();
        }
        self.partial.push_str(&buf);
        let mut out = Vec::new();
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            let mut words = line.trim_end().splitn(3, ' ');
            if let (Some(t), Some(verb)) = (words.next().and_then(|t| t.parse().ok()), words.next())
            {
                out.push(LabEvent {
                    monotonic_ns: t,
                    verb: verb.to_string(),
                    target: words.next().unwrap_or("").to_string(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_line_and_cannot_forge_another() {
        let dir = std::env::temp_dir().join(format!("perseus-events-forge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (verb, target) in [
            ("mark", "ok\n123 isolating n2"),
            ("isolating", "n2\r"),
            ("mark", "bell\u{7}"),
            ("two words", "n2"),
            ("", "n2"),
        ] {
            assert!(append(&dir, verb, target).is_err(), "{verb:?} {target:?}");
        }
        append(&dir, "mark", "a free mark with spaces").unwrap();
        let text = std::fs::read_to_string(path(&dir)).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_tail_sees_only_events_appended_after_it_opened() {
        let dir = std::env::temp_dir().join(format!("perseus-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        append(&dir, "isolating", "n1").unwrap();
        let mut tail = Tail::open(&dir).unwrap();
        assert!(tail.poll().is_empty());
        let t = append(&dir, "isolated", "n2").unwrap();
        let got = tail.poll();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].monotonic_ns, t);
        assert_eq!(
            (got[0].verb.as_str(), got[0].target.as_str()),
            ("isolated", "n2")
        );
        assert!(tail.poll().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
