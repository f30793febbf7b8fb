//! Small hostile records that once took gigabytes: every reader is bounded, and `report`
//! refuses them with a one-line error in bounded memory (SECURITY.md: peak RSS under
//! 256 MiB for any input). The peak is the child's own, from `wait4`.

use crate::support::*;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What SECURITY.md promises of any input.
const PEAK_KIB: i64 = 256 * 1024;

const HEADER: &str = r#"H {"format":"perseus-record","version":1,"database":"etcd","nodes":["n1","n2","n3"],"addresses":["198.18.1.1:2379","198.18.1.2:2379","198.18.1.3:2379"],"t0_unix_ms":1796040129825,"t0_monotonic_ns":2208138824816}"#;

/// Runs `perseus ARGS`, killed after 60 s; its exit code (None if killed), standard error
/// and peak resident memory in KiB.
fn run_measured(args: &[&str]) -> (Option<i32>, String, i64) {
    let err = std::env::temp_dir().join(format!(
        "perseus-it-measured-{}-{:?}.err",
        std::process::id(),
        std::thread::current().id()
    ));
    let _removed = Removed(vec![err.clone()]);
    #[allow(clippy::zombie_processes)]
    let child = perseus()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let t = Instant::now();
    let mut status = 0;
    // SAFETY: wait4 on our own child, with buffers owned by this frame.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if t.elapsed() > Duration::from_secs(60) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            let stderr = std::fs::read_to_string(&err).unwrap_or_default();
            return (None, stderr, usage.ru_maxrss);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Reaped above by wait4.
    std::mem::forget(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (
        code,
        std::fs::read_to_string(&err).unwrap_or_default(),
        usage.ru_maxrss,
    )
}

/// A results directory holding `record` as `name`, removed when dropped.
fn results(tag: &str, name: &str, record: &[u8]) -> (PathBuf, Removed) {
    let dir = out_dir(&format!("hostile-record-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), record).unwrap();
    (dir.clone(), Removed(vec![dir]))
}

/// `text` compressed as Perseus compresses a record (frames with their checksums), as
/// small as zstd makes it.
fn compressed(text: impl FnOnce(&mut dyn std::io::Write)) -> Vec<u8> {
    compressed_at(19, text)
}

/// `text` compressed at zstd's `level`.
fn compressed_at(level: i32, text: impl FnOnce(&mut dyn std::io::Write)) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level).unwrap();
    enc.include_checksum(true).unwrap();
    text(&mut enc);
    enc.finish().unwrap()
}

/// Asserts `perseus report DIR` refuses the record in `dir` with a one-line error that
/// contains `why`, exit 2, within the memory promise.
fn assert_refused(dir: &Path, why: &str) {
    let (code, stderr, peak) = run_measured(&["report", dir.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(why), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(peak < PEAK_KIB, "peak {peak} KiB: {stderr}");
    eprintln!("{why}: refused with a peak of {} MiB", peak / 1024);
}

#[test]
fn a_header_line_of_gigabytes_is_refused_in_bounded_memory() {
    // 1.5 GB of header, 50 KB compressed.
    let record = compressed(|w| {
        w.write_all(b"H {\"format\":\"perseus-record\",\"x\":\"")
            .unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..1500 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(b"\"}\n").unwrap();
    });
    assert!(record.len() < 200_000, "{} bytes", record.len());
    let (dir, _removed) = results("header", "record.txt.zst", &record);
    assert_refused(&dir, "the header is longer than 1024 KiB");
}

#[test]
fn error_texts_of_gigabytes_are_refused_in_bounded_memory() {
    // 25,000 error texts of 64 KiB each: 1.6 GB, a few hundred KB compressed.
    let record = compressed(|w| {
        writeln!(w, "{HEADER}").unwrap();
        let text = "e".repeat(64 << 10);
        for id in 0..25_000 {
            writeln!(w, "X {id} {text}").unwrap();
        }
    });
    let (dir, _removed) = results("errors", "record.txt.zst", &record);
    assert_refused(&dir, "more error texts than a record may hold");
}

#[test]
fn a_line_of_gigabytes_is_refused_in_bounded_memory() {
    let record = compressed(|w| {
        writeln!(w, "{HEADER}").unwrap();
        writeln!(w, "0 r 509 1565 o -").unwrap();
        w.write_all(b"M 600 ").unwrap();
        let chunk = vec![b'm'; 1 << 20];
        for _ in 0..1500 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(b"\n").unwrap();
    });
    let (dir, _removed) = results("line", "record.txt.zst", &record);
    assert_refused(&dir, "a line longer than 1024 KiB");
}

#[test]
fn a_record_that_is_no_regular_file_is_refused_at_once() {
    for name in ["record.bin.zst", "record.txt"] {
        let dir = out_dir(&format!("hostile-record-zero-{}", name.len()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _removed = Removed(vec![dir.clone()]);
        std::os::unix::fs::symlink("/dev/zero", dir.join(name)).unwrap();
        assert_refused(&dir, "is not a regular file");
    }
}

#[test]
fn a_corrupt_or_oversized_zstd_frame_is_a_malformed_record() {
    // A frame that asks for a 128 MiB window, and a frame whose data is garbage.
    let mut big_window = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    big_window.window_log(27).unwrap();
    big_window.long_distance_matching(true).unwrap();
    writeln!(big_window, "{HEADER}").unwrap();
    let mut noise = 1u64;
    let mut text = Vec::new();
    for _ in 0..(1 << 20) {
        noise = noise.wrapping_mul(6364136223846793005).wrapping_add(1);
        text.push(b'a' + (noise >> 60) as u8);
    }
    // The same megabyte twice, 64 MiB apart, so the encoder needs its whole window.
    big_window.write_all(&text).unwrap();
    big_window.write_all(&vec![b'\n'; 64 << 20]).unwrap();
    big_window.write_all(&text).unwrap();
    let big_window = big_window.finish().unwrap();
    let (dir, _removed) = results("window", "record.txt.zst", &big_window);
    assert_refused(&dir, "corrupt compressed data");

    let mut corrupt = compressed(|w| {
        writeln!(w, "{HEADER}").unwrap();
        for i in 0..20_000 {
            writeln!(w, "{} r {} 100 o -", i % 3, 1000 + i * 10).unwrap();
        }
    });
    let n = corrupt.len();
    for b in &mut corrupt[n / 2..n / 2 + 64] {
        *b ^= 0x5a;
    }
    let (dir, _removed) = results("corrupt", "record.txt.zst", &corrupt);
    let (code, stderr, _) = run_measured(&["report", dir.to_str().unwrap()]);
    assert_eq!(
        code,
        Some(2),
        "a corrupt frame is the record's fault: {stderr}"
    );
    assert!(stderr.contains("malformed record"), "{stderr}");
    assert!(stderr.contains("corrupt compressed data"), "{stderr}");
}

/// Runs `perseus report` on the record in `dir`; asserts exit `code` within the memory
/// promise and returns its standard error.
fn assert_reported(dir: &Path, code: i32) -> String {
    let (got, stderr, peak) = run_measured(&["report", dir.to_str().unwrap()]);
    assert_eq!(got, Some(code), "{stderr}");
    assert!(peak < PEAK_KIB, "peak {peak} KiB: {stderr}");
    eprintln!("reported with a peak of {} MiB", peak / 1024);
    stderr
}

#[test]
fn millions_of_writes_at_one_instant_are_judged_in_bounded_memory() {
    // 6 M acknowledged writes that all end at the same microsecond, then one more writes and
    // reads a second later: the checker once kept all 6 M (over 400 MiB), for its window is
    // 60 s long.
    let record = compressed_at(1, |w| {
        writeln!(w, "{HEADER}").unwrap();
        let mut w = std::io::BufWriter::new(w);
        for i in 1..=6_000_000u64 {
            writeln!(w, "0 w 1000 10 o {i}").unwrap();
        }
        writeln!(w, "0 w 1000000 10 o 6000001").unwrap();
        writeln!(w, "0 r 1000020 10 o 6000001").unwrap();
        writeln!(w, "1:0 r 1000030 10 o 6000000").unwrap();
        writeln!(w, "E 2000000").unwrap();
    });
    let (dir, _removed) = results("instant", "record.txt.zst", &record);
    assert_reported(&dir, 4);
    // The one stale read (n2's reader saw 6000000 after 6000001 was acknowledged) is
    // still found.
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["correctness"]["violations"], 1, "{summary:#}");
}

#[test]
fn a_record_spanning_months_costs_by_its_events_not_its_span() {
    // 1,000 operations a day apart (about 20 KB): once 2.7 GB and an abort in the table,
    // which had a row for every second in between.
    let record = compressed(|w| {
        writeln!(w, "{HEADER}").unwrap();
        writeln!(w, "F 500 isolating n2").unwrap();
        for i in 0..1_000u64 {
            let t = i * 86_400_000_000;
            writeln!(w, "0 w {t} 10 o {}", i + 1).unwrap();
            // A stale read every day, so the per-second charts of violations have points.
            writeln!(w, "0 r {} 10 o -", t + 20).unwrap();
        }
        writeln!(w, "E {}", 999 * 86_400_000_000u64 + 100).unwrap();
    });
    let (dir, _removed) = results("span", "record.txt.zst", &record);
    assert_reported(&dir, 4);
    let log = std::fs::read_to_string(dir.join("client.log")).unwrap();
    let rows = log.lines().filter(|l| !l.starts_with('#')).count();
    // A row for each day's second, up to 60 empty ones after it, and one `...`.
    assert!(rows <= 1_000 * 62 + 1, "{rows} lines in client.log");
    assert!(log.lines().any(|l| l == "..."), "the gaps are marked");
}

#[test]
fn fault_events_are_paired_in_linear_time_and_bounded_in_number() {
    // 10,000 starts of one fault, none ended: pairing them once took time cubic in their
    // number (3,000 took 33 s; it looked for each start's end among all later events, for
    // every event), past the 60 s this test waits.
    let record = compressed(|w| {
        writeln!(w, "{HEADER}").unwrap();
        for i in 1..=10_000u64 {
            writeln!(w, "F {} isolating n2", i * 1000).unwrap();
        }
        writeln!(w, "0 w 10000000 10 o 1").unwrap();
        writeln!(w, "E 10100000").unwrap();
    });
    let (dir, _removed) = results("faults", "record.txt.zst", &record);
    assert_reported(&dir, 0);
    // More fault events and marks than a record may hold.
    let record = compressed(|w| {
        writeln!(w, "{HEADER}").unwrap();
        for i in 0..=65_536u64 {
            writeln!(w, "M {} note", i * 1000).unwrap();
        }
    });
    let (dir, _removed) = results("marks", "record.txt.zst", &record);
    assert_refused(&dir, "more fault events and marks than a record may hold");
}

#[test]
fn text_from_a_record_reaches_report_md_and_client_log_only_as_text() {
    // A database name and version with HTML, a cell break and a code span.
    let record = format!(
        "{}\n0 w 2000 10 o 1\nF 1000000 isolating n2\n0 w 3000000 10 o 2\nE 4000000\n",
        HEADER.replace(
            r#""database":"etcd""#,
            r#""database":"<img src=x onerror=alert(1)>|`x`","database_version":"3.5|<b>""#
        )
    );
    let (dir, _removed) = results("markdown", "record.txt", record.as_bytes());
    assert_reported(&dir, 0);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains(r"\<img src=x onerror=alert(1)\>\|\`x\`"),
        "{md}"
    );
    // Every `<`, `>` and `|` that came from the record is escaped: the row has as many
    // cell breaks as the header.
    let bare = |text: &str, c: u8| {
        let b = text.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] == c && (i == 0 || b[i - 1] != b'\\'))
            .count()
    };
    assert_eq!(bare(&md, b'<') + bare(&md, b'>'), 0, "{md}");
    let (header, row) = (md.lines().next().unwrap(), md.lines().nth(2).unwrap());
    assert_eq!(bare(row, b'|'), bare(header, b'|'), "{row}");
    // A node name or a fault target that would break the log's legend or carry markup is
    // a malformed record, not a page.
    for (tag, record) in [
        (
            "node",
            format!(
                "{}\n0 w 2000 10 o 1\n",
                HEADER.replace(r#""n2""#, r#""n2|<b>""#)
            ),
        ),
        ("target", format!("{HEADER}\nF 1000 isolating n2<script>\n")),
    ] {
        let (dir, _removed) = results(tag, "record.txt", record.as_bytes());
        let (code, stderr, _) = run_measured(&["report", dir.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("malformed record"), "{stderr}");
        assert!(!dir.join("client.log").exists(), "nothing half-made");
    }
}

#[test]
fn thousands_of_distinct_error_texts_on_every_node_are_counted_in_bounded_memory() {
    // 5,000 error texts of 300 bytes, each failing a request on each of 64 nodes (about
    // 200 KB compressed): every node once counted every text apart, in every output (20,000
    // texts took 3.8 GB, 490 s and an 800 MB summary.json).
    let nodes: Vec<String> = (1..=64).map(|i| format!("\"n{i}\"")).collect();
    let header = HEADER
        .replace(r#"["n1","n2","n3"]"#, &format!("[{}]", nodes.join(",")))
        .replace(
            r#"["198.18.1.1:2379","198.18.1.2:2379","198.18.1.3:2379"]"#,
            "[]",
        );
    let record = compressed_at(3, |w| {
        writeln!(w, "{header}").unwrap();
        let mut w = std::io::BufWriter::new(w);
        for e in 0..5_000 {
            writeln!(w, "X {e} {}", format!("{e:06}").repeat(50)).unwrap();
            for n in 0..64 {
                writeln!(w, "{n} w 1000 10 f - {e}").unwrap();
            }
        }
        writeln!(w, "E 2000").unwrap();
    });
    let (dir, _removed) = results("error-kinds", "record.txt.zst", &record);
    assert_reported(&dir, 0);
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    assert!(summary.len() < 8 << 20, "{} bytes", summary.len());
    assert!(
        summary.contains("(other errors)"),
        "the rest are counted together"
    );
}
