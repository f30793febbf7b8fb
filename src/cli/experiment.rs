//! `perseus run`, `perseus matrix` and `perseus check`: flags over a spec, the library's
//! experiments, and their summaries, distributions, tables and verdicts printed.

use super::*;

pub(super) async fn run(a: RunArgs, stop: CancellationToken) -> Result<()> {
    if let Some(file) = &a.cluster {
        return run_cluster(&a, perseus::cluster::Cluster::load(file)?, stop).await;
    }
    if let Some(project) = &a.compose.compose {
        let Some(database) = &a.database else {
            return Err(Error::Invalid(format!(
                "--compose {project}: name the database whose client to use (perseus run etcd --compose {project})"
            ))
            .into());
        };
        let cluster = perseus::cluster::Cluster::of_compose(
            database,
            project,
            engine_of(a.hosts.backend)?,
            &a.compose.group,
        )?;
        return run_cluster(&a, cluster, stop).await;
    }
    let mut spec = match &a.spec {
        Some(path) => Spec::load(path)?,
        None if a.database.is_none() => {
            return Err(Error::Invalid(
                "name a database (perseus run etcd) or a saved spec (--spec FILE)".into(),
            )
            .into())
        }
        None => Spec::default(),
    };
    flags(&a).apply(&mut spec, true)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-{}", spec.database, stamp())));
    let lab_name = a
        .lab
        .clone()
        .unwrap_or_else(|| format!("run-{}", std::process::id()));
    let subject = if a.same_lab {
        Subject::KeptLab(lab_name, None)
    } else {
        Subject::Lab(lab_name)
    };
    let done = runs(&spec, subject, &out, a.repeat, stop).await;
    json_after(a.json, &out, done)
}

/// What the flags of `perseus run` set over a spec. A run without a seed of its own (from
/// --seed or a saved spec) gets a fresh one.
fn flags(a: &RunArgs) -> Flags {
    Flags {
        database: a.database.clone(),
        nodes: a.nodes,
        bin_dir: a.bin_dir.clone(),
        skip_warmup: a.skip_warmup,
        set: a.set.clone(),
        isolate: a.isolate.clone(),
        before: a.before,
        during: a.during,
        after: a.after,
        timeout: a.timeout,
        observers: observers(&a.workload),
        rate: a.workload.rate,
        write: a.workload.write,
        scenario: a.scenario.clone(),
        max_record_bytes: a.max_record_size,
        loop_passes: a.loop_passes,
        seed: a.seed.or_else(|| {
            a.spec
                .is_none()
                .then(|| perseus::clock::monotonic_ns() ^ perseus::clock::unix_ms() as u64)
        }),
        backend: a.hosts.backend,
        image: a.hosts.image.clone(),
        disk: a.disk.disk,
    }
}

/// With `--json`: the results' summary on standard output, if the run got that far,
/// whatever its verdict; then the verdict.
fn json_after(json: bool, out: &Path, done: Result<()>) -> Result<()> {
    if json && out.join(report::SUMMARY_FILE).exists() {
        json_summary(out)?;
    }
    done
}

/// The engine `--backend` names for a compose project: Docker's unless Podman's.
pub(super) fn engine_of(
    backend: Option<perseus::spec::Backend>,
) -> Result<perseus::containers::Flavour> {
    use perseus::spec::Backend;
    match backend {
        None | Some(Backend::Docker) => Ok(perseus::containers::Flavour::Docker),
        Some(Backend::Podman) => Ok(perseus::containers::Flavour::Podman),
        Some(Backend::Lab) => Err(Error::Invalid(
            "--compose takes --backend docker or podman: a compose project's nodes are containers"
                .into(),
        )
        .into()),
    }
}

/// `perseus run --cluster FILE` or `--compose PROJECT`: the seed's timeline on a cluster
/// Perseus did not start.
async fn run_cluster(
    a: &RunArgs,
    cluster: perseus::cluster::Cluster,
    stop: CancellationToken,
) -> Result<()> {
    let mut spec = Spec {
        database: cluster.database.clone(),
        nodes: cluster.nodes.len(),
        ..Spec::default()
    };
    spec.timeline.isolate =
        perseus::fault::Target::Node(cluster.nodes[1.min(cluster.nodes.len() - 1)].name.clone());
    // The cluster's own database and nodes; a scenario's node names are checked against
    // the cluster before anything starts.
    let lab_only = Flags {
        database: None,
        nodes: None,
        bin_dir: None,
        skip_warmup: false,
        set: Vec::new(),
        ..flags(a)
    };
    lab_only.apply(&mut spec, false)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-{}", cluster.name, stamp())));
    let done = runs(
        &spec,
        Subject::Cluster(Box::new(cluster)),
        &out,
        a.repeat,
        stop,
    )
    .await;
    json_after(a.json, &out, done)
}

/// `repeat` runs of `spec` (one if `None`) into `out`, as the library makes them; prints
/// each run's summary, the distribution, and the verdict.
async fn runs(
    spec: &Spec,
    mut subject: Subject,
    out: &Path,
    repeat: Option<u32>,
    stop: CancellationToken,
) -> Result<()> {
    let Some(n) = repeat else {
        let outcome = subject.run(spec, out, stop, say, Some(echo())).await;
        subject.done(say)?;
        let outcome = outcome?;
        let verdict = conclude(
            &outcome.analysis,
            &outcome.dir,
            &format!("results: {}", outcome.dir.display()),
        );
        if let Some(why) = outcome.stopped_early {
            verdict?;
            return Err(Error::StoppedEarly {
                why,
                dir: outcome.dir,
            }
            .into());
        }
        return gate(spec, out, verdict);
    };
    let ran = |a: &perseus::analysis::Analysis| out!("\n{}", report::terminal_summary(a));
    let r =
        perseus::experiment::repeat::repeat(spec, subject, out, n, stop, say, || Some(echo()), ran)
            .await?;
    repeated(out, &r);
    if let Some((name, e)) = r.failed {
        return Err(anyhow::Error::new(e).context(format!("run {name} of {n}")));
    }
    gate(
        spec,
        out,
        verdict(r.lost, r.violations, out.join(report::SUMMARY_FILE)),
    )
}

/// Prints a repeat's distribution and where its runs are.
pub(super) fn repeated(out: &Path, r: &perseus::experiment::repeat::Repeated) {
    if let Some(d) = &r.repeat {
        out!("\n{}", d.terminal());
        outln!(
            "results: {} (the runs in {}/1 … {}/{})",
            out.display(),
            out.display(),
            out.display(),
            r.done.len()
        );
    }
}

/// Checks the scenario's expectations on the results in `out`, if it has any: a failed one
/// is the outcome (exit 5); otherwise `verdict` stands.
fn gate(spec: &Spec, out: &Path, verdict: Result<()>) -> Result<()> {
    let Some(j) = perseus::experiment::run::judge(spec, out)? else {
        return verdict;
    };
    judged(&j);
    if j.failed.is_empty() {
        return verdict;
    }
    Err(Error::Expectations {
        failed: j.failed.len(),
        total: j.expect.len(),
    }
    .into())
}

/// Prints how a scenario's expectations fared.
pub(super) fn judged(j: &perseus::experiment::run::Judged) {
    outln!("\nthe scenario's expectations:");
    render::verdicts(&j.expect, &j.failed, None, j.runs);
}

/// Prints the end-of-run summary and the line after it; fails (with its own exit code) if
/// the record shows lost acknowledged writes or correctness violations.
pub(super) fn conclude(
    analysis: &perseus::analysis::Analysis,
    dir: &Path,
    last: &str,
) -> Result<()> {
    out!("\n{}", report::terminal_summary(analysis));
    outln!("{last}");
    let c = &analysis.correctness;
    verdict(
        c.lost_acknowledged_writes,
        c.violations,
        dir.join(report::SUMMARY_FILE),
    )
}

/// Fails (exit 4) if anything was lost or violated, pointing at the file that says where.
pub(super) fn verdict(lost: u64, violations: u64, summary: PathBuf) -> Result<()> {
    if lost == 0 && violations == 0 {
        return Ok(());
    }
    Err(Error::Violations {
        lost,
        violations,
        summary,
    }
    .into())
}

/// `perseus matrix`: every database × scenario as a repeat, then the seed's table. Each
/// row's runs are made even if an earlier row lost writes; the exit code says so at the end.
pub(super) async fn matrix(a: MatrixArgs, stop: CancellationToken) -> Result<()> {
    use report::matrix::Description;
    let described = match &a.matrix {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("read {}", file.display()))?;
            Description::from_toml(&text, file)?
        }
        None => Description {
            databases: a.db.clone(),
            scenarios: if a.scenario.is_empty() {
                vec!["isolate".into()]
            } else {
                a.scenario.clone()
            },
            repeat: a.repeat.unwrap_or(3),
            phases: a.phases.clone(),
            sweep: a
                .set
                .iter()
                .map(|(k, v)| (k.clone(), v.split(',').map(String::from).collect()))
                .collect(),
            per_db: Default::default(),
        },
    };
    let flags = Flags {
        bin_dir: a.bin_dir.clone(),
        timeout: a.timeout,
        observers: observers(&a.workload),
        rate: a.workload.rate,
        write: a.workload.write,
        backend: a.hosts.backend,
        image: a.hosts.image.clone(),
        disk: a.disk.disk,
        ..Flags::default()
    };
    let planned = perseus::experiment::matrix::plan(&described, &flags, say)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("matrix-{}", stamp())));
    let ran = |a: &perseus::analysis::Analysis| out!("\n{}", report::terminal_summary(a));
    let row = |dir: &Path,
               r: &perseus::experiment::repeat::Repeated,
               j: Option<&perseus::experiment::run::Judged>| {
        repeated(dir, r);
        if let Some(j) = j {
            judged(j);
        }
    };
    let played = perseus::experiment::matrix::play(
        &described,
        &planned,
        &flags,
        &out,
        stop,
        say,
        || Some(echo()),
        ran,
        row,
    )
    .await
    .map_err(|(at, e)| anyhow::Error::new(e).context(at))?;
    out!("\n{}", played.markdown);
    if let [md, html, csv] = played.files.as_slice() {
        outln!(
            "wrote {}, {} and {}",
            md.display(),
            html.display(),
            csv.display()
        );
    }
    // Data loss leads the verdict of the whole matrix, then its expectations.
    verdict(played.lost, played.violations, out.join("table.md"))?;
    match played.expectations {
        (0, _) => Ok(()),
        (failed, total) => Err(Error::Expectations { failed, total }.into()),
    }
}

/// `perseus check`: the run's figures against expectations or a baseline.
pub(super) fn check(a: &CheckArgs) -> Result<()> {
    let figures = report::repeat::figures_of(&a.dir)?;
    let mut expectations = a.expect.clone();
    if expectations.is_empty() && a.baseline.is_none() {
        expectations = saved_expectations(&a.dir);
        if expectations.is_empty() {
            return Err(Error::Invalid(format!(
                "nothing to check {} against: give --expect 'FIGURE OP NUMBER' or --baseline DIR (or run a scenario with an expect list)",
                a.dir.display()
            ))
            .into());
        }
    }
    let mut failed = perseus::expect::check(&expectations, &figures);
    let mut total = expectations.len();
    let mut baseline = None;
    let mut base_failed = Vec::new();
    if let Some(dir) = &a.baseline {
        let base = report::repeat::figures_of(dir)?;
        let b = perseus::expect::against_baseline(&figures, &base, a.tolerance);
        total += b.compared;
        baseline = Some((dir.as_path(), b.compared, b.failed.is_empty()));
        base_failed = b.failed.clone();
        failed.extend(b.failed);
    }
    if a.json {
        let own: Vec<perseus::expect::Failure> = failed
            .iter()
            .filter(|f| !base_failed.contains(f))
            .cloned()
            .collect();
        json(&report::json::CheckReport::new(
            &a.dir,
            figures.runs.len(),
            &expectations,
            &own,
            baseline.map(|(d, n, _)| (d, n, base_failed.as_slice())),
        ));
    } else {
        render::verdicts(&expectations, &failed, baseline, figures.runs.len());
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Expectations {
        failed: failed.len(),
        total,
    }
    .into())
}

/// The expectations of the scenario a results directory was run with (its spec.json, or
/// that of its first run for a repeat); none if it has none.
fn saved_expectations(dir: &Path) -> Vec<perseus::expect::Expectation> {
    [dir.join("spec.json"), dir.join("1").join("spec.json")]
        .iter()
        .find_map(|p| Spec::load(p).ok())
        .and_then(|s| s.scenario)
        .map(|s| s.expect)
        .unwrap_or_default()
}
