//! The README's two commands are what a new user runs: they must stay what `.ci/run` and
//! `tools/fresh-debian-check` run.

use std::path::Path;

/// The README's fenced `sh` blocks, in order.
fn sh_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in readme.lines() {
        match (&mut current, line) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(lines), "```") => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            (Some(lines), l) => lines.push(l),
            (None, _) => {}
        }
    }
    blocks
}

/// The packages an `apt-get install` in `command` names.
fn packages(command: &str) -> Vec<&str> {
    let start = command.find("apt-get install").expect("an apt-get install");
    command[start..]
        .split("&&")
        .next()
        .unwrap()
        .split_whitespace()
        .skip(2)
        .filter(|w| !w.starts_with('-'))
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_readme_test_command_is_what_ci_runs() {
    let readme = read("README.md");
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= 2, "the README starts with two sh blocks");
    let test = &blocks[1];
    assert!(
        !test.contains('\n') && test.contains("cargo nextest run"),
        "the second block is the one-line test command: {test}"
    );
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == test),
        ".ci/run runs the README's test command verbatim:\n{test}"
    );
    assert!(
        test.starts_with("apt-get update && "),
        "a fresh machine has no package lists yet: {test}"
    );
    assert!(
        test.contains("command -v cargo-nextest")
            && test.contains("cargo install --locked --debug cargo-nextest"),
        "cargo-nextest is not part of a stock Rust install (a debug build: minutes faster to make, as fast to run tests): {test}"
    );
}

#[test]
fn the_readme_first_command_builds_and_runs_from_nothing() {
    let readme = read("README.md");
    let blocks = sh_blocks(&readme);
    let (first, test) = (&blocks[0], &blocks[1]);
    assert!(
        !first.contains('\n') && first.contains("perseus run etcd"),
        "the first block is the one-line main job: {first}"
    );
    assert!(first.starts_with("apt-get update && "), "{first}");
    let (needs, tests_install) = (packages(first), packages(test));
    // A C linker, and protoc with the well-known .proto files (the etcd client's build).
    for p in [
        "gcc",
        "libc6-dev",
        "protobuf-compiler",
        "libprotobuf-dev",
        "ca-certificates",
        "nftables",
        "iproute2",
        "etcd-server",
    ] {
        assert!(
            needs.contains(&p),
            "the first command installs {p}: {first}"
        );
        assert!(
            tests_install.contains(&p),
            "the test command installs {p}: {test}"
        );
    }
}

#[test]
fn the_readme_links_what_the_repository_holds() {
    let readme = read("README.md");
    assert!(
        !readme.contains("../shared"),
        "the README points only at what a clone has"
    );
    for (link, path) in [
        ("ARCHITECTURE.md", "ARCHITECTURE.md"),
        ("docs/findings", "docs/findings"),
    ] {
        assert!(
            readme.contains(&format!("]({link}")),
            "the README links {link}"
        );
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(path).exists(),
            "{path} exists"
        );
    }
}

/// The README's fault table and `tests/fixtures/every-fault.toml` (or, for the disk faults,
/// `disk-faults.toml`) cover every fault of the registry: a fault added to `fault::FAULTS`
/// without its row, or without a phase that exercises it on a real lab, fails here.
#[test]
fn the_readme_fault_table_and_the_every_fault_scenario_cover_every_fault() {
    let readme = read("README.md");
    let table: Vec<&str> = readme
        .split("## Faults and scenarios")
        .nth(1)
        .expect("a Faults and scenarios section")
        .lines()
        .skip_while(|l| !l.starts_with("| fault (action)"))
        .take_while(|l| l.starts_with('|'))
        .collect();
    let fixture = |name: &str| {
        let path = format!("tests/fixtures/{name}.toml");
        perseus::scenario::Scenario::parse(name, &read(&path), Path::new(&path), Some(3)).unwrap()
    };
    let (every, disks) = (fixture("every-fault"), fixture("disk-faults"));
    for f in perseus::fault::FAULTS {
        let k = f.kind();
        let row = table
            .iter()
            .find(|l| l.starts_with(&format!("| `{} ", k.name)))
            .unwrap_or_else(|| panic!("no README row for '{}'", k.name));
        assert!(
            row.contains(&format!("`{}` / `{}`", k.starting, k.started)),
            "the row of '{}' names its markers: {row}",
            k.name
        );
        let undo = f.undone_by().map_or("heal", |(w, _)| w);
        assert!(
            row.contains(&format!("`{undo}")),
            "the row of '{}' says it is undone by {undo}: {row}",
            k.name
        );
        // A disk fault needs a lab made with --disk faulty: it has a scenario of its own.
        let (scenario, name) = if f.acts_on() == perseus::fault::ActsOn::Disk {
            (&disks, "disk-faults")
        } else {
            (&every, "every-fault")
        };
        let played =
            scenario.phases.iter().flat_map(|p| &p.faults).any(
                |a| matches!(a, perseus::fault::Action::Start { fault, .. } if fault.kind() == k),
            );
        assert!(played, "{name}.toml has no phase with '{}'", k.name);
    }
    assert_eq!(
        table.len() - 2,
        perseus::fault::FAULTS.len() + 1,
        "one row per fault, and heal"
    );
}
