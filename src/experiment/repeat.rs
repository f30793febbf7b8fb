//! `perseus run --repeat N`: the same experiment N times, into `OUT/1` … `OUT/N`, and the
//! distribution of its figures into `OUT`. A repeat resumes: runs whose results are there
//! already count, what a stopped run left is removed and run again.

use super::run::{self, KeptLab, RunOutcome};
use crate::analysis::{self, Analysis};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::report;
use crate::spec::Spec;
use crate::watch::Echo;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What a run runs on: a lab it makes (and removes) under this name, a lab made once under
/// this name and kept for every run of a repeat (`--same-lab`; made at the first run that
/// needs it), or a cluster Perseus did not start.
pub enum Subject {
    Lab(String),
    KeptLab(String, Option<Box<KeptLab>>),
    Cluster(Box<Cluster>),
}

impl Subject {
    /// Tears a kept lab down, if one was made.
    pub fn done(self, say: impl Fn(String)) -> Result<()> {
        if let Subject::KeptLab(_, Some(lab)) = self {
            lab.down(say)?;
        }
        Ok(())
    }

    /// One run of `spec` on it into `dir`.
    pub async fn run(
        &mut self,
        spec: &Spec,
        dir: &Path,
        stop: CancellationToken,
        say: impl Fn(String) + Copy,
        echo: Option<Echo>,
    ) -> Result<RunOutcome> {
        match self {
            Subject::KeptLab(name, kept) => {
                let lab = match kept {
                    Some(lab) => lab,
                    None => kept.insert(Box::new(KeptLab::up(spec, name, &stop, say).await?)),
                };
                lab.run(spec, dir, stop, say, echo).await
            }
            Subject::Lab(lab) => run::run(spec, dir, lab, stop, say, echo).await,
            Subject::Cluster(c) => run::run_cluster(spec, c, dir, stop, say, echo).await,
        }
    }
}

/// What a repeat did.
#[derive(Debug)]
pub struct Repeated {
    /// The runs whose results are in the repeat's directory (`1`, `2`, …), done now or
    /// before.
    pub done: Vec<String>,
    /// Acknowledged writes lost, and correctness violations, over those runs.
    pub lost: u64,
    pub violations: u64,
    /// The distribution of their figures, written into the repeat's directory, if any run
    /// ended.
    pub repeat: Option<report::repeat::Repeat>,
    /// The run that stopped the repeat (its name), and why: an error, Ctrl-C, or a run that
    /// stopped early.
    pub failed: Option<(String, Error)>,
}

/// The spec of the repeat in `out`: `spec`, saved there if `out` holds no repeat yet; the
/// saved one (with its seed) if `out` holds a repeat of the same experiment, whose finished
/// runs then count; an error if it holds another.
pub fn resume(spec: &Spec, out: &Path) -> Result<Spec> {
    let path = out.join("spec.json");
    if !path.exists() {
        std::fs::create_dir_all(out).map_err(Error::io(format!("create {}", out.display())))?;
        spec.save(&path)?;
        return Ok(spec.clone());
    }
    let saved = Spec::load(&path)?;
    let unseeded = |s: &Spec| Spec {
        seed: 0,
        ..s.clone()
    };
    if unseeded(&saved) != unseeded(spec) {
        return Err(Error::Invalid(format!(
            "{} holds runs of another experiment (its spec.json differs); choose another --out, or repeat that one with --spec {}",
            out.display(),
            path.display()
        )));
    }
    Ok(saved)
}

/// `n` runs of `spec` on `subject`, into `out/1` … `out/N`, and their distribution into
/// `out` (see the module's documentation). Every run is made even if an earlier one lost
/// writes; an error or Ctrl-C stops the repeat, after writing the distribution of the runs
/// that ended. `ran` hears each run's analysis as it ends; `echo` gives each run's live
/// table its way out. A kept lab is torn down at the end, whatever happened.
#[allow(clippy::too_many_arguments)] // what it runs, where, and the three ways it reports
pub async fn repeat(
    spec: &Spec,
    mut subject: Subject,
    out: &Path,
    n: u32,
    stop: CancellationToken,
    say: impl Fn(String) + Copy,
    echo: impl Fn() -> Option<Echo>,
    ran: impl Fn(&Analysis),
) -> Result<Repeated> {
    let spec = &resume(spec, out)?;
    let started = Instant::now();
    let mut r = Repeated {
        done: Vec::new(),
        lost: 0,
        violations: 0,
        repeat: None,
        failed: None,
    };
    let mut fresh = 0;
    for (name, dir) in report::repeat::run_dirs(out, n as usize) {
        if let Ok(mut s) = report::summary::Summary::load(&dir.join(report::SUMMARY_FILE)) {
            // A run an older Perseus finished is analysed again from its record, so every
            // run of the distribution reads its figures the same way.
            if s.version < report::summary::SUMMARY_VERSION {
                let record = crate::record::in_results(&dir)?;
                let a = analysis::analyse(&record)?;
                report::write_results(&dir, &a)?;
                s = report::summary::of(&a);
            }
            say(format!(
                "run {name} of {n}: done already ({})",
                dir.display()
            ));
            r.lost += s.lost_acknowledged_writes;
            r.violations += s.correctness.violations;
            r.done.push(name);
            continue;
        }
        if dir.exists() {
            say(format!(
                "run {name} of {n}: removing what a stopped run left in {}",
                dir.display()
            ));
            std::fs::remove_dir_all(&dir)
                .map_err(Error::io(format!("remove {}", dir.display())))?;
        }
        let eta = match fresh {
            0 => String::new(),
            k => {
                let left = started.elapsed() / k * (n - r.done.len() as u32);
                format!(
                    ", about {} left",
                    crate::clock::format_duration(Duration::from_secs(left.as_secs()))
                )
            }
        };
        say(format!("run {name} of {n}{eta}: {}", dir.display()));
        fresh += 1;
        match subject.run(spec, &dir, stop.clone(), say, echo()).await {
            Ok(outcome) => {
                ran(&outcome.analysis);
                let c = &outcome.analysis.correctness;
                r.lost += c.lost_acknowledged_writes;
                r.violations += c.violations;
                r.done.push(name.clone());
                if let Some(why) = outcome.stopped_early {
                    let e = Error::StoppedEarly {
                        why,
                        dir: outcome.dir,
                    };
                    r.failed = Some((name, e));
                    break;
                }
            }
            Err(e) => {
                r.failed = Some((name, e));
                break;
            }
        }
    }
    let down = subject.done(say);
    if !r.done.is_empty() {
        let d = report::repeat::Repeat::of(out, &r.done)?;
        d.write(out)?;
        r.repeat = Some(d);
    }
    if r.failed.is_none() {
        down?;
    }
    Ok(r)
}
