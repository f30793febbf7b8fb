//! One record, as `perseus report` takes it: read, analysed, and written as report.md and
//! report.html in memory. The first byte picks the file's form (text or binary, plain or
//! compressed); the rest is the file. Any input must give a value or an error: a panic, an
//! abort (an allocation past the memory limit) or a hang is a finding.

use std::io::Write as _;

/// The file names that give each form of record.
const FORMS: [&str; 4] = [
    "record.txt",
    "record.txt.zst",
    "record.bin",
    "record.bin.zst",
];

fn main() {
    let dir = std::env::temp_dir().join(format!("perseus-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    afl::fuzz!(|data: &[u8]| {
        let Some((&form, bytes)) = data.split_first() else {
            return;
        };
        let name = FORMS[usize::from(form % 4)];
        for old in FORMS {
            let _ = std::fs::remove_file(dir.join(old));
        }
        let path = dir.join(name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(bytes))
            .expect("write the input");
        if let Ok(a) = perseus::analysis::analyse(&path) {
            let _ = perseus::report::markdown(&a);
            let _ = perseus::report::summary(&a);
        }
    });
}
