//! Every fault kind on a real etcd lab, from a scenario file, with its observable effect.

use crate::support::*;

/// `tests/fixtures/every-fault.toml` on a namespace lab, with `--write cas`: each fault
/// has its effect (see [`every_fault_effects`]).
#[test]
fn every_fault_kind_has_its_effect_on_etcd() {
    require_lab("etcd", "etcd-server");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/every-fault.toml"
    );
    let r = run_scenario_expecting(
        "etcd",
        "faults",
        &["--scenario", scenario, "--write", "cas"],
        &[0],
    );
    every_fault_effects(&r, true);
    let _ = std::fs::remove_dir_all(&r.out);
}
