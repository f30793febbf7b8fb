//! The report in a real browser: headless Chromium (Debian `chromium`) loads report.html
//! from a record, with no console error and one throughput series per node.

use crate::support::*;
use std::process::Command;

#[test]
fn the_report_loads_in_chromium_with_a_series_per_node_and_no_console_error() {
    let chromium = ["chromium", "chromium-browser"]
        .iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is missing: apt-get install chromium (or run .ci/run)");
    let dir = out_dir("report");
    // 60 s, 300 ops/s; n2 isolated from 20 s to 40 s (timing out once a second meanwhile).
    perseus::record::synthetic::synthetic_record(&dir, 60, 300).unwrap();
    let (code, stdout, stderr) = run(&["report", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("downtime on isolation"), "{stdout}");
    let profile = dir.join("chromium-profile");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", dir.join("report.html").display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(
            !page.contains(external),
            "the page must open offline, but has {external}"
        );
    }
    let throughput = dom
        .split(r#"<svg id="throughput""#)
        .nth(1)
        .expect("the browser's DOM has the throughput chart")
        .split("</svg>")
        .next()
        .unwrap();
    for node in ["n1", "n2", "n3"] {
        assert_eq!(
            throughput
                .matches(&format!(r#"class="series" data-node="{node}""#))
                .count(),
            1,
            "one throughput series for {node}"
        );
    }
    assert_eq!(throughput.matches(r#"class="series""#).count(), 3);
    assert!(
        throughput.contains("n2 isolated"),
        "the isolation is shaded and labelled"
    );
    assert!(
        dom.contains("n2 was cut off from its peers at 20.0 s"),
        "the summary sentence"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
