//! Results read back: `export`, `report` and `compare`.

use super::*;

/// `perseus export`: the record of a results directory (or a record file) as JSON Lines or
/// CSV, on standard output or into a file that appears whole or not at all; `stop` ends it
/// (with nothing left of the file).
pub(super) fn export(a: &ExportArgs, stop: &CancellationToken) -> Result<()> {
    let stopped = &|| stop.is_cancelled();
    use perseus::record::{export, Reader};
    let record = if a.path.is_dir() {
        perseus::record::in_results(&a.path)?
    } else {
        a.path.clone()
    };
    let reader = Reader::open(&record)?;
    match &a.out {
        Some(file) => {
            use perseus::files::{Output, Streams};
            let mut out = Output::create(file, Streams::Allow)?;
            let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut out);
            let n = export::export(reader, a.format, &mut w, stopped)?;
            drop(w);
            out.commit()?;
            say(format!(
                "{} events of {} into {}",
                report::thousands(n),
                record.display(),
                file.display()
            ));
        }
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            match export::export(reader, a.format, &mut w, stopped) {
                Ok(_) => {}
                // A reader that stopped early (head, a closed pipe) ends the output only.
                Err(perseus::Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// `perseus report DIR` on the directory of a repeat: every run's results from its record,
/// then the distribution over the runs.
fn report_repeat(dir: &Path) -> Result<()> {
    let mut names = Vec::new();
    let (mut lost, mut violations) = (0, 0);
    for k in 1.. {
        let run = dir.join(k.to_string());
        let Ok(record) = perseus::record::in_results(&run) else {
            break;
        };
        let a = analysis::analyse(&record)?;
        report::write_results(&run, &a)?;
        lost += a.correctness.lost_acknowledged_writes;
        violations += a.correctness.violations;
        names.push(k.to_string());
    }
    let r = report::repeat::Repeat::of(dir, &names)?;
    r.write(dir)?;
    out!("{}", r.terminal());
    outln!(
        "rewrote the results of {} runs and their distribution in {}",
        names.len(),
        dir.join(report::SUMMARY_FILE).display()
    );
    verdict(lost, violations, dir.join(report::SUMMARY_FILE))
}

pub(super) fn report_cmd(path: &Path) -> Result<()> {
    if path.is_file() {
        // A client log in the seed's format: whole-second metrics only.
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let table = perseus::record::table::Table::parse(&text, path)?;
        let Some((w, f)) = analysis::figures_from_table(&table) else {
            outln!("no fault marker in {}: no metrics", path.display());
            if machine_output() {
                json(
                    &serde_json::json!({"format": "perseus-log-figures", "version": 1, "fault": null, "metrics": {}}),
                );
            }
            return Ok(());
        };
        if machine_output() {
            let metrics: serde_json::Map<String, serde_json::Value> = analysis::METRICS
                .iter()
                .map(|m| {
                    (
                        format!("{}_s", m.key),
                        (m.value)(&f).map(|us| us / 1_000_000).into(),
                    )
                })
                .collect();
            json(&serde_json::json!({
                "format": "perseus-log-figures",
                "version": 1,
                "fault": {"kind": w.kind.name, "target": w.target, "row": w.start_us / 1_000_000 + 1},
                "metrics": metrics,
            }));
        }
        outln!(
            "{} {} in row {}",
            w.target,
            w.kind.started,
            w.start_us / 1_000_000 + 1
        );
        let show = |v: Option<u64>| v.map_or("n/a".to_string(), |us| (us / 1_000_000).to_string());
        outln!("{:<32}{:>9}", "metric", "seconds");
        for m in analysis::METRICS {
            outln!("{:<32}{:>9}", m.label, show((m.value)(&f)));
        }
        if table.lines.contains(&perseus::record::table::Line::Gap) {
            outln!("(rows left out of the log, '...', count for nothing)");
        }
        return Ok(());
    }
    if perseus::record::in_results(path).is_err()
        && perseus::record::in_results(&path.join("1")).is_ok()
    {
        return report_repeat(path);
    }
    let record = perseus::record::in_results(path)?;
    let analysis = analysis::analyse(&record)?;
    report::write_results(path, &analysis)?;
    let rewrote = format!(
        "rewrote {} and {}",
        path.join("client.log").display(),
        path.join(report::SUMMARY_FILE).display()
    );
    conclude(&analysis, path, &rewrote)?;
    Ok(())
}

pub(super) fn compare(a: CompareArgs) -> Result<()> {
    // Checked before any analysis or output, so nothing is printed for a page that cannot
    // be written.
    let parent = a.out.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent.filter(|d| !d.is_dir()) {
        return Err(Error::Invalid(format!(
            "--out {}: no directory {}; create it first or choose another path",
            a.out.display(),
            dir.display()
        ))
        .into());
    }
    let runs = a
        .dirs
        .iter()
        .map(|d| report::compare::Compared::load(d))
        .collect::<perseus::Result<Vec<_>>>()?;
    let tables = report::compare::tables(&runs);
    if !machine_output() {
        out!("{}\n{}", tables.text, tables.markdown);
    }
    perseus::files::write(&a.out, report::compare::page(&runs, &tables.html))?;
    let md = a.out.with_extension("md");
    perseus::files::write(&md, &tables.markdown)?;
    outln!("wrote {} and {}", a.out.display(), md.display());
    if a.json {
        json(&report::json::Comparison::of(&runs));
    } else if a.csv {
        document(&report::json::compare_csv(&runs));
    }
    Ok(())
}
