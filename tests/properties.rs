//! Property tests over everything Perseus reads from outside: records, client logs, scenario
//! and cluster files, spec files, durations and Redis replies. Whatever the input, the answer
//! is a value or an error, never a panic; and what Perseus writes, it reads back.
//!
//! proptest drives these on every test run: inputs generated from the shapes of the real
//! ones, and real files of `tests/corpus/` (excerpts of real records, client logs, scenario,
//! cluster and spec files, Redis replies, and `record-audit-*`, small versions of the
//! records an audit found taking gigabytes or markup into pages) mutated at random. The
//! full-size audit records, with each reader's peak memory, are
//! `tests/integration/hostile_records.rs`; coverage-guided fuzzing is `fuzz/` (SECURITY.md). Each property runs its cases on every
//! `cargo nextest run`; set PROPTEST_CASES to run more. A failing input is saved in
//! `tests/properties.proptest-regressions` and tried first from then on: commit it.

use perseus::record::{Event, Header, Kind, Op, Outcome, Reader, Writer};
use proptest::prelude::*;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A file of its own per case.
fn scratch(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("perseus-prop-{}-{tag}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn header() -> Header {
    Header::new(
        "etcd",
        vec!["n1".into(), "n2".into(), "n3".into()],
        1_700_000_000_000,
        42,
    )
}

/// Record lines that look like the real ones, with fields drawn wide (huge, negative,
/// missing, out of range), mixed with arbitrary text.
fn record_line() -> impl Strategy<Value = String> {
    let node = prop_oneof![
        Just("0".to_string()),
        Just("2:1".to_string()),
        "[0-9:]{1,6}"
    ];
    let num = prop_oneof![any::<u64>().prop_map(|n| n.to_string()), "[0-9-]{0,22}"];
    prop_oneof![
        (
            node,
            "[rwx]",
            num.clone(),
            num.clone(),
            "[ofuz]",
            num.clone(),
            "( [0-9]{1,3})?( @[0-9]{1,2})?"
        )
            .prop_map(|(n, k, s, d, o, v, rest)| format!("{n} {k} {s} {d} {o} {v}{rest}")),
        (num.clone(), "[a-z-]{0,12}", "[ -~]{0,20}").prop_map(|(t, v, x)| format!("F {t} {v} {x}")),
        (num.clone(), "[ -~]{0,30}").prop_map(|(t, x)| format!("M {t} {x}")),
        num.clone().prop_map(|t| format!("E {t}")),
        ("[0-9]{1,12}", "[ -~]{0,30}").prop_map(|(i, x)| format!("X {i} {x}")),
        "[ -~]{0,40}",
        proptest::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_record_reads_to_values_or_an_error(lines in proptest::collection::vec(record_line(), 0..40), cut in any::<bool>()) {
        let dir = scratch("record");
        let path = dir.join("record.txt");
        let mut w = Writer::create(&path, &header()).unwrap();
        w.flush().unwrap();
        drop(w);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        let mut text = lines.join("\n");
        if !cut { text.push('\n'); }
        f.write_all(text.as_bytes()).unwrap();
        drop(f);
        for event in Reader::open(&path).unwrap() {
            if event.is_err() { break; }
        }
        // The analysis of whatever reads is a value or an error too.
        let _ = perseus::analysis::analyse(&path);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn operations_written_read_back_as_they_were(ops in proptest::collection::vec(
        (0usize..3, proptest::option::of(0usize..3), any::<bool>(), 0u64..u64::MAX / 4, 0u64..u64::MAX / 4, 0u8..3, proptest::option::of(any::<i64>()), proptest::option::of("[ -~]{1,20}"), proptest::option::of(0usize..3), proptest::option::of(0u64..u64::MAX / 2), proptest::option::of(any::<i64>())),
        1..30,
    )) {
        let dir = scratch("roundtrip");
        let path = dir.join("record.txt");
        let mut w = Writer::create(&path, &header()).unwrap();
        let mut written = Vec::new();
        // Start times in order, each within a second of the one before (as a record's are).
        let mut t = 0u64;
        for (node, key, write, step, duration, outcome, value, error, served_by, attempt, revision) in ops {
            t += step % 1_000_000;
            let op = Op {
                node,
                key,
                kind: if write { Kind::Write } else { Kind::Read },
                start_us: t,
                duration_us: duration % 1_000_000,
                outcome: [Outcome::Ok, Outcome::Fail, Outcome::Unknown][outcome as usize],
                value,
                error: error.map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).map(Into::into),
                // An attempt is written with a value, never alone.
                attempt: value.and(attempt),
                revision,
                served_by,
            };
            w.write(&Event::Op(op.clone())).unwrap();
            written.push(Event::Op(op));
        }
        w.flush().unwrap();
        let read: Vec<Event> = Reader::open(&path).unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&read, &written);
        // The binary record (what run and watch write) reads back the same.
        let packed = dir.join("record.bin.zst");
        let mut w = Writer::create(&packed, &header()).unwrap();
        for e in &written {
            w.write(e).unwrap();
        }
        w.flush().unwrap();
        let read: Vec<Event> = Reader::open(&packed).unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(read, written);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Arbitrary bytes after a binary record's header: events or one error, never a
    /// panic, and never an error read again and again (the reader ends after it).
    #[test]
    fn any_binary_body_reads_to_values_or_an_error(body in proptest::collection::vec(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..12),
            // Operation-like entries: a tag with the op bit, a node byte, small varints.
            (0x80u8..=0xff, 0u8..8, proptest::collection::vec(0u8..0x90, 0..10))
                .prop_map(|(b0, b1, rest)| [vec![b0, b1], rest].concat()),
            ("[XFME]", 0u8..40, "[ -~]{0,40}")
                .prop_map(|(t, len, text)| [t.into_bytes(), vec![len], text.into_bytes()].concat()),
        ],
        0..40,
    ), compressed in any::<bool>()) {
        let dir = scratch("binary");
        let packed = dir.join("record.bin.zst");
        Writer::create(&packed, &header()).unwrap();
        let head = zstd::stream::decode_all(&std::fs::read(&packed).unwrap()[..]).unwrap();
        let bytes = [head, body.concat()].concat();
        let path = if compressed {
            std::fs::write(&packed, zstd::bulk::compress(&bytes, 1).unwrap()).unwrap();
            packed
        } else {
            let plain = dir.join("record.bin");
            std::fs::write(&plain, &bytes).unwrap();
            plain
        };
        let mut errors = 0;
        for event in Reader::open(&path).unwrap().take(10_000) {
            if event.is_err() { errors += 1; }
        }
        prop_assert!(errors <= 1, "{} errors", errors);
        let _ = perseus::analysis::analyse(&path);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn any_client_log_parses_to_a_table_or_an_error(text in "(#legend: time\\|n1\\|n2\\|n1:err\\|n2:err\n)?([0-9\t -~]{0,40}\n){0,30}") {
        if let Ok(t) = perseus::record::table::Table::parse(&text, Path::new("client.log")) {
            let _ = perseus::analysis::figures_from_table(&t);
        }
    }

    #[test]
    fn any_scenario_file_parses_or_names_its_mistake(text in "(\\[\\[phase\\]\\]\nname = \"[a-z ]{0,8}\"\nduration = \"[0-9a-z.e-]{0,8}\"\n(faults = \\[(\"[a-z0-9|% -]{0,16}\",? ?){0,3}\\]\n)?){0,4}[ -~\n]{0,20}", nodes in proptest::option::of(0usize..70)) {
        let _ = perseus::scenario::Scenario::parse("prop", &text, Path::new("prop.toml"), nodes);
    }

    #[test]
    fn any_cluster_file_parses_or_names_its_mistake(text in "(name = \"[a-z./-]{0,10}\"\n)?(database = \"[a-z-]{0,14}\"\n)?(\\[\\[node\\]\\]\nname = \"[a-z0-9./-]{0,8}\"\naddress = \"[0-9a-z.:]{0,24}\"\n){0,4}(\\[faults\\]\n([a-z-]{1,10} = \"[ -~]{0,20}\"\n){0,3})?") {
        let _ = perseus::cluster::Cluster::parse(&text, Path::new("c.toml"), "c", |_| None);
    }

    #[test]
    fn any_spec_file_loads_or_names_its_mistake(text in "\\{[ -~\n]{0,120}\\}") {
        let dir = scratch("spec");
        let path = dir.join("spec.json");
        std::fs::write(&path, &text).unwrap();
        if let Ok(spec) = perseus::spec::Spec::load(&path) {
            let _ = spec.validate();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn any_duration_text_is_a_bounded_duration_or_an_error(text in "[0-9a-z. e+-]{0,24}") {
        if let Ok(d) = perseus::clock::parse_duration(&text) {
            prop_assert!(d <= perseus::clock::MAX_DURATION);
        }
    }

    #[test]
    fn any_redis_reply_reads_to_a_value_or_an_error(bytes in proptest::collection::vec(
        prop_oneof![
            Just(b"\r\n".to_vec()),
            "[+:$*-][0-9-]{0,20}".prop_map(|s| s.into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ],
        0..20,
    )) {
        let bytes = bytes.concat();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = rt.block_on(async {
            let mut r = tokio::io::BufReader::new(bytes.as_slice());
            perseus::db::resp::read_reply(&mut r).await
        });
    }
}

/// The files of `tests/corpus/` whose names start with `prefix`.
fn corpus(prefix: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no tests/corpus/{prefix}*");
    files
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// One edit of a file: flip a byte, cut a stretch, repeat a stretch, insert bytes, or end
/// the file early; positions and lengths are fractions of the file.
#[derive(Debug, Clone)]
enum Edit {
    Flip(f64, u8),
    Cut(f64, f64),
    Repeat(f64, f64),
    Insert(f64, Vec<u8>),
    End(f64),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let at = 0.0f64..1.0;
    let small = 0.0f64..0.05;
    proptest::collection::vec(
        prop_oneof![
            (at.clone(), any::<u8>()).prop_map(|(a, b)| Edit::Flip(a, b)),
            (at.clone(), small.clone()).prop_map(|(a, l)| Edit::Cut(a, l)),
            (at.clone(), small).prop_map(|(a, l)| Edit::Repeat(a, l)),
            (
                at.clone(),
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 1..12),
                    "[0-9 \n:@-]{1,12}".prop_map(String::into_bytes),
                ]
            )
                .prop_map(|(a, b)| Edit::Insert(a, b)),
            at.prop_map(Edit::End),
        ],
        1..8,
    )
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    let pos = |f: f64, len: usize| ((f * len as f64) as usize).min(len);
    for e in edits {
        let n = bytes.len();
        match e {
            Edit::Flip(a, b) if n > 0 => {
                let i = pos(*a, n - 1);
                bytes[i] ^= b | 1;
            }
            Edit::Cut(a, l) => {
                let (i, k) = (pos(*a, n), pos(*l, n));
                bytes.drain(i..(i + k).min(n));
            }
            Edit::Repeat(a, l) => {
                let (i, k) = (pos(*a, n), pos(*l, n));
                let piece = bytes[i..(i + k).min(n)].to_vec();
                bytes.splice(i..i, piece);
            }
            Edit::Insert(a, b) => {
                let i = pos(*a, n);
                bytes.splice(i..i, b.iter().copied());
            }
            Edit::End(a) => bytes.truncate(pos(*a, n)),
            Edit::Flip(..) => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn real_records_mutated_read_to_values_or_an_error(pick in any::<prop::sample::Index>(), edits in edits()) {
        let files = corpus("record-");
        let bytes = apply(files[pick.index(files.len())].clone(), &edits);
        let dir = scratch("mutated-record");
        let path = dir.join("record.txt");
        std::fs::write(&path, &bytes).unwrap();
        let mut events = 0u64;
        if let Ok(reader) = Reader::open(&path) {
            for event in reader {
                if event.is_err() { break; }
                events += 1;
            }
        }
        if let Ok(a) = perseus::analysis::analyse(&path) {
            // The table costs by the events, not by the span they cover (the audit's
            // records span months, and once had a row for every second of them).
            let lines = a.table.lines.len() as u64;
            let bound = (events + 1) * (perseus::record::table::MAX_EMPTY_ROWS + 3);
            prop_assert!(lines <= bound, "{lines} table lines for {events} events");
            // Nothing of the record is markup in report.md.
            let md = perseus::report::markdown(&a);
            let b = md.as_bytes();
            prop_assert!(
                (0..b.len()).all(|i| b[i] != b'<' || (i > 0 && b[i - 1] == b'\\')),
                "{md}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The same for compressed records: a real record in two zstd frames, its bytes
    /// mutated (a frame's header, a block, a checksum, a cut).
    #[test]
    fn real_records_compressed_and_mutated_read_to_values_or_an_error(pick in any::<prop::sample::Index>(), edits in edits()) {
        let files = corpus("record-");
        let plain = &files[pick.index(files.len())];
        let half = plain.len() / 2;
        let mut packed = zstd::bulk::compress(&plain[..half], 1).unwrap();
        packed.extend(zstd::bulk::compress(&plain[half..], 1).unwrap());
        let bytes = apply(packed, &edits);
        let dir = scratch("mutated-zstd");
        let path = dir.join("record.txt.zst");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(reader) = Reader::open(&path) {
            for event in reader {
                if event.is_err() { break; }
            }
        }
        let _ = perseus::analysis::analyse(&path);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The same for binary records: a real record turned binary, its decompressed bytes
    /// mutated, read plain and compressed.
    #[test]
    fn real_records_made_binary_and_mutated_read_to_values_or_an_error(pick in any::<prop::sample::Index>(), edits in edits(), compressed in any::<bool>()) {
        let files = corpus("record-");
        let plain = &files[pick.index(files.len())];
        let dir = scratch("mutated-binary");
        let text = dir.join("record.txt");
        std::fs::write(&text, plain).unwrap();
        let packed = dir.join("record.bin.zst");
        let reader = Reader::open(&text).unwrap();
        let mut w = Writer::create(&packed, reader.header()).unwrap();
        for event in reader {
            w.write(&event.unwrap()).unwrap();
        }
        w.flush().unwrap();
        let binary = zstd::stream::decode_all(&std::fs::read(&packed).unwrap()[..]).unwrap();
        let bytes = apply(binary, &edits);
        let path = if compressed {
            std::fs::write(&packed, zstd::bulk::compress(&bytes, 1).unwrap()).unwrap();
            packed
        } else {
            let path = dir.join("record.bin");
            std::fs::write(&path, &bytes).unwrap();
            path
        };
        if let Ok(reader) = Reader::open(&path) {
            for event in reader {
                if event.is_err() { break; }
            }
        }
        let _ = perseus::analysis::analyse(&path);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn real_text_files_mutated_parse_or_name_their_mistake(pick in any::<prop::sample::Index>(), edits in edits()) {
        let kinds = ["client-", "scenario-", "cluster-", "spec-"];
        let kind = kinds[pick.index(kinds.len())];
        let files = corpus(kind);
        let bytes = apply(files[pick.index(files.len())].clone(), &edits);
        let text = String::from_utf8_lossy(&bytes);
        match kind {
            "client-" => {
                if let Ok(t) = perseus::record::table::Table::parse(&text, Path::new("client.log")) {
                    let _ = perseus::analysis::figures_from_table(&t);
                }
            }
            "scenario-" => {
                let _ = perseus::scenario::Scenario::parse("corpus", &text, Path::new("s.toml"), Some(3));
            }
            "cluster-" => {
                let _ = perseus::cluster::Cluster::parse(&text, Path::new("c.toml"), "c", |_| Some(String::new()));
            }
            _ => {
                let dir = scratch("mutated-spec");
                let path = dir.join("spec.json");
                std::fs::write(&path, &bytes).unwrap();
                if let Ok(spec) = perseus::spec::Spec::load(&path) {
                    let _ = spec.validate();
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    #[test]
    fn real_redis_replies_mutated_read_to_a_value_or_an_error(pick in any::<prop::sample::Index>(), edits in edits()) {
        let files = corpus("resp-");
        let bytes = apply(files[pick.index(files.len())].clone(), &edits);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _ = rt.block_on(async {
            let mut r = tokio::io::BufReader::new(bytes.as_slice());
            perseus::db::resp::read_reply(&mut r).await
        });
    }
}

/// The corpus itself reads cleanly: the mutations start from valid files.
#[test]
fn the_corpus_is_valid_input() {
    for bytes in corpus("record-") {
        let dir = scratch("corpus-record");
        let path = dir.join("record.txt");
        std::fs::write(&path, &bytes).unwrap();
        let a = perseus::analysis::analyse(&path).unwrap();
        assert!(a.ended_cleanly && a.window.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
    for bytes in corpus("client-") {
        let t = perseus::record::table::Table::parse(
            &String::from_utf8(bytes).unwrap(),
            Path::new("c.log"),
        )
        .unwrap();
        assert!(perseus::analysis::figures_from_table(&t).is_some());
    }
    for bytes in corpus("scenario-") {
        perseus::scenario::Scenario::parse(
            "c",
            &String::from_utf8(bytes).unwrap(),
            Path::new("s.toml"),
            Some(3),
        )
        .unwrap();
    }
    for bytes in corpus("cluster-") {
        perseus::cluster::Cluster::parse(
            &String::from_utf8(bytes).unwrap(),
            Path::new("c.toml"),
            "c",
            |_| Some(String::new()),
        )
        .unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for bytes in corpus("resp-") {
        rt.block_on(async {
            let mut r = tokio::io::BufReader::new(bytes.as_slice());
            perseus::db::resp::read_reply(&mut r).await
        })
        .unwrap();
    }
}

/// Inputs that made debug builds panic before: a client log row at second 0, a record of
/// more nodes than a node set holds, a value of i64::MIN.
#[test]
fn inputs_that_once_panicked_are_errors_or_values() {
    let log = "#legend: time|n1|n2|n1:err|n2:err\n# isolating n2\n0\t1\t1\t0\t0\n# rejoining n2\n2\t1\t1\t0\t0\n";
    let e = perseus::record::table::Table::parse(log, Path::new("client.log")).unwrap_err();
    assert!(e.to_string().contains("line 3"), "{e}");

    let dir = scratch("regressions");
    let nodes: Vec<String> = (1..=70).map(|i| format!("n{i}")).collect();
    let path = dir.join("record.txt");
    let h = Header::new("etcd", nodes.clone(), 0, 0);
    Writer::create(&path, &h).unwrap();
    let e = Reader::open(&path).err().expect("70 nodes are refused");
    assert!(e.to_string().contains("70 nodes"), "{e}");

    let mut w = Writer::create(&path, &header()).unwrap();
    for (i, v) in [i64::MIN, i64::MAX, i64::MIN].into_iter().enumerate() {
        w.write(&Event::Op(Op {
            node: 0,
            key: None,
            kind: if i == 2 { Kind::Read } else { Kind::Write },
            start_us: 10 * i as u64,
            duration_us: 5,
            outcome: Outcome::Ok,
            value: Some(v),
            error: None,
            attempt: None,
            revision: None,
            served_by: None,
        }))
        .unwrap();
    }
    w.flush().unwrap();
    let a = perseus::analysis::analyse(&path).unwrap();
    assert_eq!(a.correctness.lost_acknowledged_writes, 1);
    let _ = std::fs::remove_dir_all(&dir);
}
