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

/// `text` compressed as Perseus compresses a record (frames with their checksums).
fn compressed(text: impl FnOnce(&mut dyn std::io::Write)) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
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
