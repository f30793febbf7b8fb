//! Outputs that cannot clobber, tear or take over the terminal: `export --out` and result
//! files never replace what is not a regular file, use a temporary file nobody can plant,
//! and stop on a signal with nothing left behind; text from a record is printed escaped.

use crate::support::*;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const RECORD: &str = "tests/corpus/record-etcd-isolate-leader.txt";

/// A private directory for one test, removed when dropped.
fn scratch(tag: &str) -> (PathBuf, Removed) {
    let dir = out_dir(&format!("hostile-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (dir.clone(), Removed(vec![dir]))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Runs perseus with `args`, killing it if it has not ended within 30 s.
fn run_bounded(args: &[&str]) -> (Option<i32>, String) {
    let mut child = perseus()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            return (None, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A pipe at the target is written into as it stands (someone reads it), never replaced;
/// a symbolic link at the target is refused and what it points to is untouched.
#[test]
fn export_writes_into_a_pipe_and_refuses_a_link() {
    let (dir, _removed) = scratch("pipe");
    let fifo = dir.join("out.csv");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // The test holds the pipe open for reading (and writing, so opening it never blocks),
    // with room for the whole export, and reads what is in it once the export has ended.
    let pipe = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap()
    };
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain fcntl on a descriptor this test owns.
        unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    }
    let (code, stderr) = run_bounded(&[
        "export",
        RECORD,
        "--format",
        "csv",
        "--out",
        fifo.to_str().unwrap(),
    ]);
    let mut read = Vec::new();
    let _ = std::io::Read::read_to_end(&mut &pipe, &mut read);
    let read = String::from_utf8_lossy(&read);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        read.starts_with("event,t_us,"),
        "the reader got the CSV: {read:.80}"
    );
    assert!(is_fifo(&fifo), "the pipe is still a pipe");
    assert_eq!(entries(&dir), ["out.csv"], "nothing else made");

    let precious = dir.join("precious");
    std::fs::write(&precious, "keep").unwrap();
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    let (code, stderr) = run_bounded(&["export", RECORD, "--out", link.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("is a symbolic link"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(entries(&dir), ["link.csv", "out.csv", "precious"]);
}

/// What another user could plant beside the target under the old temporary name (a pipe
/// that would hang the export, or a file they own) is not used: the export finishes and
/// leaves the planted entry alone.
#[test]
fn export_does_not_use_a_temporary_name_someone_planted() {
    let (dir, _removed) = scratch("planted");
    let out = dir.join("out.jsonl");
    let planted = dir.join(".out.jsonl.part");
    nix::unistd::mkfifo(&planted, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let (code, stderr) = run_bounded(&["export", RECORD, "--out", out.to_str().unwrap()]);
    assert_eq!(
        code,
        Some(0),
        "the export did not hang on a planted pipe: {stderr}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let first = text.lines().next().unwrap_or_default();
    assert!(first.contains("\"event\":\"header\""), "{first}");
    assert!(is_fifo(&planted), "the planted pipe is left alone");
    assert_eq!(entries(&dir), [".out.jsonl.part", "out.jsonl"]);
}

/// SIGTERM in the middle of a long export ends it with exit 130, and neither the output nor
/// its temporary file is left.
#[test]
fn export_stops_on_sigterm_and_leaves_nothing() {
    let (dir, _removed) = scratch("sigterm");
    // A text record of 3 million reads: long enough to export that a signal lands midway.
    let record = dir.join("big.txt");
    {
        let head = std::fs::read_to_string(RECORD).unwrap();
        let mut w = std::io::BufWriter::new(std::fs::File::create(&record).unwrap());
        w.write_all(head.lines().next().unwrap().as_bytes())
            .unwrap();
        w.write_all(b"\n").unwrap();
        for i in 0..3_000_000u64 {
            writeln!(w, "{} r {} 100 o -", i % 3, 1000 + i * 10).unwrap();
        }
    }
    let out = dir.join("big.csv");
    let mut child = perseus()
        .args([
            "export",
            record.to_str().unwrap(),
            "--format",
            "csv",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let part = |dir: &Path| entries(dir).into_iter().any(|n| n.starts_with(".big.csv."));
    let t = Instant::now();
    while !part(&dir) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export ended before it could be stopped: make the record larger"
        );
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no temporary file appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("the export went on for 15 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(130), "{stderr}");
    assert_eq!(entries(&dir), ["big.txt"], "no output, no temporary file");
}

/// A results file is replaced whole: `check` reading `summary.json` while `report` rewrites
/// it again and again never sees half of it.
#[test]
fn a_summary_being_rewritten_is_never_read_torn() {
    let (dir, _removed) = scratch("torn");
    let results = dir.join("run");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::copy(RECORD, results.join("record.txt")).unwrap();
    let (code, stderr) = run_bounded(&["report", results.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        results.join("summary.json").exists(),
        "{:?}",
        entries(&results)
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (results, stop) = (results.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 200 {
                let out = perseus().arg("report").arg(&results).output().unwrap();
                assert!(out.status.success());
                n += 1;
            }
        })
    };
    let t = Instant::now();
    let mut reads = 0;
    while t.elapsed() < Duration::from_secs(10) {
        let out = perseus()
            .arg("check")
            .arg(&results)
            .args(["--expect", "lost_acknowledged_writes == 0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "check read a torn summary.json after {reads} good reads: {stderr}"
        );
        reads += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(reads >= 20, "{reads} reads");
    let left: Vec<String> = entries(&results)
        .into_iter()
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A pipe planted where `report` writes its page is refused with a one-line error, not
/// waited on for ever; the pipe stays as it was.
#[test]
fn report_refuses_a_pipe_where_its_page_goes() {
    let (dir, _removed) = scratch("report-fifo");
    std::fs::copy(RECORD, dir.join("record.txt")).unwrap();
    let page = dir.join("report.html");
    nix::unistd::mkfifo(&page, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let (code, stderr) = run_bounded(&["report", dir.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("report.html is a pipe"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(is_fifo(&page));
}

/// Control characters in a record (an error text a server sent, a mark) reach the terminal
/// as visible escapes: a record cannot clear the screen, retitle the window or print a
/// coloured verdict of its own.
#[test]
fn control_characters_from_a_record_are_printed_as_escapes() {
    let (dir, _removed) = scratch("escapes");
    let hostile = "\x1b]0;pwned\x07\x1b[2J\x1b[31mfake: every expectation holds\u{9b}0m";
    let record = std::fs::read_to_string(RECORD).unwrap().replacen(
        "X 0 timed out after 1s",
        &format!("X 0 {hostile}"),
        1,
    );
    assert!(record.contains(hostile));
    std::fs::write(dir.join("record.txt"), record).unwrap();
    let out = perseus().arg("report").arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .contains("\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mfake: every expectation holds\\u{9b}0m"),
        "the error text is shown, escaped:\n{stdout}"
    );
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let bad: Vec<char> = text
            .chars()
            .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
            .collect();
        assert!(bad.is_empty(), "{name} has control characters {bad:?}");
    }
}
