//! The plain data of a test, with the seed's defaults. Saved as `spec.json` in every
//! results directory; `perseus run --spec FILE` runs it again.

use crate::clock::duration_text;
use crate::error::{Error, Result};
use crate::fault::Target;
use crate::scenario::Timeline;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// Everything that defines a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Spec {
    pub database: String,
    pub nodes: usize,
    pub timeline: Timeline,
    /// Longest wait for one request of the workload.
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
    /// Longest wait for the cluster to be ready after its processes start.
    #[serde(with = "duration_text")]
    pub ready_timeout: Duration,
    /// Longest wait, once ready, for every node to serve the workload before any fault.
    #[serde(with = "duration_text")]
    pub steady_timeout: Duration,
    /// Start the faults without waiting for the database to warm up (e.g. TiDB regions
    /// fully replicated): to reproduce what happens to a cluster hit while still warming up.
    pub skip_warmup: bool,
    /// The faults and their timing; `None`: the seed's, from `timeline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<crate::scenario::Scenario>,
    /// Picks the `random` targets; saved, so the run repeats exactly.
    pub seed: u64,
    /// Observers (one per node, reading every key through that node) and how they read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observers: Option<crate::workload::ReadFrom>,
    /// How writers write: blindly (the seed's way) or by compare-and-set.
    pub write: crate::workload::WriteMode,
    /// Where the user keeps binaries that no package installs (e.g. TiDB's from TiUP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<std::path::PathBuf>,
    /// Each node's client at most this many cycles a second; `None`: as fast as answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// Server settings to change from the preset's (`--set NAME=VALUE`), by knob name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub set: crate::db::knob::Overrides,
    /// The most bytes the record may take: the run stops early, cleanly, when it gets
    /// there; `None`: no limit but the disk's (see `watch::MIN_FREE_BYTES`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_record_bytes: Option<u64>,
    /// Where the nodes run: namespaces on this machine, or containers.
    #[serde(default, skip_serializing_if = "Backend::is_lab")]
    pub backend: Backend,
    /// The servers' image, on a container backend; `None`: the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// What the nodes' data sits on (`--disk`).
    #[serde(default, skip_serializing_if = "Disk::is_plain")]
    pub disk: Disk,
}

/// What a lab's nodes keep their data on (`--disk`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Disk {
    /// The machine's own file system: disk faults cannot reach it.
    #[default]
    Plain,
    /// A layer Perseus serves over it, which the disk faults make sick.
    Faulty,
}

impl Disk {
    fn is_plain(&self) -> bool {
        *self == Disk::Plain
    }
}

impl std::str::FromStr for Disk {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Disk, String> {
        match s {
            "plain" => Ok(Disk::Plain),
            "faulty" => Ok(Disk::Faulty),
            _ => Err(format!("'{s}' is not one of: plain, faulty")),
        }
    }
}

/// Where a lab's nodes run (`--backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Network namespaces on this machine, running its installed servers.
    #[default]
    Lab,
    /// Containers, through a Docker engine.
    Docker,
    /// Containers, through Podman's Docker-compatible API.
    Podman,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Lab, Backend::Docker, Backend::Podman];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Lab => "lab",
            Backend::Docker => "docker",
            Backend::Podman => "podman",
        }
    }

    fn is_lab(&self) -> bool {
        *self == Backend::Lab
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Backend, String> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| format!("'{s}' is not one of: lab, docker, podman"))
    }
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            database: "etcd".into(),
            nodes: 3,
            timeline: Timeline::default(),
            request_timeout: Duration::from_secs(1),
            ready_timeout: Duration::from_secs(60),
            steady_timeout: Duration::from_secs(60),
            skip_warmup: false,
            scenario: None,
            seed: 0,
            observers: None,
            write: crate::workload::WriteMode::Blind,
            bin_dir: None,
            set: Default::default(),
            rate: None,
            max_record_bytes: None,
            backend: Backend::Lab,
            image: None,
            disk: Disk::Plain,
        }
    }
}

impl Spec {
    /// How the workload's clients behave in a run of this spec.
    pub fn settings(&self) -> crate::workload::Settings {
        crate::workload::Settings {
            timeout: self.request_timeout,
            observers: self.observers,
            write: self.write,
            rate: self.rate,
            ..crate::workload::Settings::default()
        }
    }

    /// The scenario this spec runs: its own, or the seed's built from `timeline`.
    pub fn scenario(&self) -> crate::scenario::Scenario {
        self.scenario
            .clone()
            .unwrap_or_else(|| crate::scenario::Scenario::from_timeline(&self.timeline))
    }

    /// What the nodes of a lab for this spec are, running `db`: a container backend
    /// needs an image, the one given or the preset's.
    pub fn hosts(&self, db: &dyn crate::db::Database) -> Result<crate::lab::Hosts> {
        if self.disk == Disk::Faulty {
            if self.backend != Backend::Lab {
                return Err(Error::Invalid(
                    "--disk faulty runs on --backend lab only, for now: a container's data directory is not served by Perseus yet".into(),
                ));
            }
            if db.data_dir().is_none() {
                return Err(Error::Invalid(format!(
                    "--disk faulty: {} keeps its data in more than one directory, which no disk layer serves yet",
                    db.name()
                )));
            }
            if let Some(e) = crate::lab::disks::refuses() {
                return Err(e);
            }
        }
        let engine = match self.backend {
            Backend::Lab => {
                if self.image.is_some() {
                    return Err(Error::Invalid(
                        "--image needs a container backend: add --backend docker (or podman)"
                            .into(),
                    ));
                }
                return Ok(crate::lab::Hosts::Namespaces);
            }
            Backend::Docker => crate::containers::Flavour::Docker,
            Backend::Podman => crate::containers::Flavour::Podman,
        };
        let image = match (&self.image, db.image()) {
            (Some(i), _) => i.clone(),
            (None, Some(i)) => i.to_string(),
            (None, None) => {
                return Err(Error::Invalid(format!(
                    "{} has no container image of its own yet; name one with --image IMAGE",
                    db.name()
                )))
            }
        };
        let also = db.images(&image);
        Ok(crate::lab::Hosts::Containers {
            engine,
            image,
            also,
        })
    }

    /// Reads a saved spec; a mistake (a misspelt field, a fault action that does not parse)
    /// is an error with its line, never dropped.
    pub fn load(path: &Path) -> Result<Spec> {
        let text = crate::files::read_text(path)?;
        let malformed = |line: usize, why: String| Error::Malformed {
            what: "spec".into(),
            path: path.to_path_buf(),
            line,
            why,
        };
        let spec: Spec = serde_json::from_str(&text).map_err(|e| {
            // An action that does not parse is reported where its text is: serde's position
            // is past the string, often on the next line.
            let why = e.to_string();
            let line = why
                .split('\'')
                .nth(1)
                .and_then(|action| text.find(&format!("\"{action}\"")))
                .map_or(e.line(), |at| text[..at].matches('\n').count() + 1);
            malformed(line, why)
        })?;
        Ok(spec)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("spec serialises");
        crate::files::write(path, json + "\n")
    }

    /// Checks what can be checked before anything is created.
    pub fn validate(&self) -> Result<()> {
        let db = crate::db::find(&self.database)?;
        let t = &self.timeline.isolate;
        if matches!(t, Target::Leader | Target::Follower) && db.leadership().is_none() {
            return Err(Error::Invalid(format!(
                "--isolate {t}: {} has no leader (every node takes writes); name a node, e.g. --isolate n2",
                self.database
            )));
        }
        if let Some(s) = &self.scenario {
            if s.needs_leader() && db.leadership().is_none() {
                return Err(Error::Invalid(format!(
                    "scenario {} names the leader, but {} has none (every node takes writes): name nodes instead",
                    s.name, self.database
                )));
            }
        }
        crate::db::knob::check(&self.database, db.knobs(), &self.set)?;
        if !(1..=crate::lab::MAX_NODES).contains(&self.nodes) {
            return Err(Error::Invalid(format!(
                "--nodes {}: a lab has 1 to {} nodes",
                self.nodes,
                crate::lab::MAX_NODES
            )));
        }
        if self.nodes < 2 {
            return Err(Error::Invalid(
                "isolating a node needs at least 2 nodes (--nodes 3 is the seed's)".into(),
            ));
        }
        if let Target::Node(n) = &self.timeline.isolate {
            let names: Vec<String> = (1..=self.nodes).map(|i| format!("n{i}")).collect();
            if !names.contains(n) {
                return Err(Error::Invalid(format!(
                    "--isolate {n}: no such node; this run's nodes are {} (or use --isolate leader)",
                    names.join(", ")
                )));
            }
        }
        if self.request_timeout.is_zero() {
            return Err(Error::Invalid("--timeout must be more than 0".into()));
        }
        Ok(())
    }
}

/// What a command line sets over a spec (a saved one, or the defaults): each field given
/// replaces the spec's own, `set` adds to its settings. `perseus run` and `perseus matrix`
/// apply theirs the same way ([`Flags::apply`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub database: Option<String>,
    pub nodes: Option<usize>,
    pub bin_dir: Option<std::path::PathBuf>,
    pub skip_warmup: bool,
    pub set: Vec<(String, String)>,
    pub isolate: Option<Target>,
    pub before: Option<Duration>,
    pub during: Option<Duration>,
    pub after: Option<Duration>,
    pub timeout: Option<Duration>,
    pub observers: Option<crate::workload::ReadFrom>,
    pub rate: Option<u32>,
    pub write: Option<crate::workload::WriteMode>,
    /// A scenario's name or file.
    pub scenario: Option<String>,
    pub max_record_bytes: Option<u64>,
    /// How often the scenario plays (`--loop`).
    pub loop_passes: Option<crate::scenario::Repeat>,
    pub seed: Option<u64>,
    pub backend: Option<Backend>,
    pub image: Option<String>,
    pub disk: Option<Disk>,
}

impl Flags {
    /// Sets these flags over `spec`; a scenario they name is loaded and its nodes checked
    /// against the spec's number of nodes, unless `check_nodes` is false (a cluster's
    /// nodes have their own names, checked against it later).
    pub fn apply(&self, spec: &mut Spec, check_nodes: bool) -> Result<()> {
        if let Some(d) = &self.database {
            spec.database = d.clone();
        }
        if let Some(n) = self.nodes {
            spec.nodes = n;
        }
        if self.bin_dir.is_some() {
            spec.bin_dir = self.bin_dir.clone();
        }
        spec.skip_warmup |= self.skip_warmup;
        spec.set.extend(self.set.iter().cloned());
        if let Some(t) = &self.isolate {
            spec.timeline.isolate = t.clone();
        }
        for (field, value) in [
            (&mut spec.timeline.before, self.before),
            (&mut spec.timeline.during, self.during),
            (&mut spec.timeline.after, self.after),
            (&mut spec.request_timeout, self.timeout),
        ] {
            if let Some(v) = value {
                *field = v;
            }
        }
        if self.observers.is_some() {
            spec.observers = self.observers;
        }
        if self.rate.is_some() {
            spec.rate = self.rate;
        }
        if let Some(w) = self.write {
            spec.write = w;
        }
        if let Some(name) = &self.scenario {
            let nodes = check_nodes.then_some(spec.nodes);
            spec.scenario = Some(crate::scenario::Scenario::load(name, nodes)?);
        }
        if self.max_record_bytes.is_some() {
            spec.max_record_bytes = self.max_record_bytes;
        }
        if let Some(r) = self.loop_passes {
            let mut looped = spec.scenario();
            looped.repeat = r;
            spec.scenario = Some(looped);
        }
        if let Some(seed) = self.seed {
            spec.seed = seed;
        }
        if let Some(b) = self.backend {
            spec.backend = b;
        }
        if self.image.is_some() {
            spec.image = self.image.clone();
        }
        if let Some(d) = self.disk {
            spec.disk = d;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk layer serves one data directory of a namespace lab's nodes: a container
    /// backend, or a preset with two (TiDB's PD and TiKV), is refused.
    #[test]
    fn a_faulty_disk_needs_a_namespace_lab_and_one_data_directory() {
        let spec = |database: &str, backend| Spec {
            database: database.into(),
            backend,
            image: (backend != Backend::Lab).then(|| "x".into()),
            disk: Disk::Faulty,
            ..Spec::default()
        };
        let tidb = crate::db::find("tidb").unwrap();
        let e = spec("tidb", Backend::Lab).hosts(tidb).unwrap_err();
        assert!(e.to_string().contains("more than one directory"), "{e}");
        let etcd = crate::db::find("etcd").unwrap();
        let e = spec("etcd", Backend::Docker).hosts(etcd).unwrap_err();
        assert!(e.to_string().contains("--backend lab"), "{e}");
        assert_eq!("faulty".parse(), Ok(Disk::Faulty));
        assert!("broken".parse::<Disk>().is_err());
    }

    /// A container backend takes the image given, else the preset's; a preset without one
    /// needs `--image`, and `--image` needs a container backend.
    #[test]
    fn the_hosts_of_a_spec_follow_its_backend_and_image() {
        use crate::containers::Flavour;
        use crate::lab::Hosts;
        let etcd = crate::db::find("etcd").unwrap();
        let galera = crate::db::find("galera").unwrap();
        let spec = |backend, image: Option<&str>| Spec {
            backend,
            image: image.map(String::from),
            ..Spec::default()
        };
        assert_eq!(
            spec(Backend::Lab, None).hosts(etcd).unwrap(),
            Hosts::Namespaces
        );
        let e = spec(Backend::Lab, Some("x")).hosts(etcd).unwrap_err();
        assert!(e.to_string().contains("--backend docker"), "{e}");
        assert_eq!(
            spec(Backend::Docker, None).hosts(etcd).unwrap(),
            Hosts::Containers {
                engine: Flavour::Docker,
                image: etcd.image().unwrap().into(),
                also: Vec::new(),
            }
        );
        assert_eq!(
            spec(Backend::Podman, Some("mine:1")).hosts(galera).unwrap(),
            Hosts::Containers {
                engine: Flavour::Podman,
                image: "mine:1".into(),
                also: Vec::new(),
            }
        );
        let e = spec(Backend::Docker, None).hosts(galera).unwrap_err();
        assert!(e.to_string().contains("--image IMAGE"), "{e}");
        assert_eq!("docker".parse::<Backend>(), Ok(Backend::Docker));
        assert!("vm"
            .parse::<Backend>()
            .unwrap_err()
            .contains("lab, docker, podman"));
        // Saved specs keep the backend; a lab's spec reads as before.
        let saved = serde_json::to_string(&spec(Backend::Docker, Some("i"))).unwrap();
        assert!(saved.contains(r#""backend":"docker""#) && saved.contains(r#""image":"i""#));
        let plain = serde_json::to_string(&Spec::default()).unwrap();
        assert!(
            !plain.contains("backend") && !plain.contains("image"),
            "{plain}"
        );
    }

    #[test]
    fn the_default_is_the_seeds_experiment_and_round_trips() {
        let s = Spec::default();
        assert_eq!(s.timeline.before, Duration::from_secs(30));
        assert_eq!(s.timeline.isolate, Target::Node("n2".into()));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"before\":\"30s\""), "{json}");
        assert!(json.contains("\"isolate\":\"n2\""), "{json}");
        assert_eq!(serde_json::from_str::<Spec>(&json).unwrap(), s);
        s.validate().unwrap();
    }

    #[test]
    fn a_node_outside_the_lab_is_refused_before_anything_starts() {
        let mut s = Spec::default();
        s.timeline.isolate = Target::Node("n7".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("n7") && e.contains("n1, n2, n3"), "{e}");
        s.timeline.isolate = Target::Leader;
        s.validate().unwrap();
        s.database = "mongo".into();
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("known databases: etcd"));
    }

    #[test]
    fn an_unknown_field_in_a_spec_file_is_an_error() {
        assert!(serde_json::from_str::<Spec>(r#"{"databse":"etcd"}"#).is_err());
        let s: Spec = serde_json::from_str(r#"{"nodes":5}"#).unwrap();
        assert_eq!((s.nodes, s.database.as_str()), (5, "etcd"));
    }

    /// A saved spec whose scenario holds an action that does not parse is refused with its
    /// line; it used to be dropped, and the run played without it.
    #[test]
    fn a_mistyped_action_in_a_saved_spec_is_an_error_with_its_line() {
        let spec = Spec {
            scenario: Some(crate::scenario::Scenario::load("kill-leader", Some(3)).unwrap()),
            ..Spec::default()
        };
        let dir = std::env::temp_dir().join(format!("perseus-spec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spec.json");
        spec.save(&path).unwrap();
        assert!(Spec::load(&path).is_ok());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"kill leader\""));
        std::fs::write(&path, text.replace("\"kill leader\"", "\"kil leader\"")).unwrap();
        let e = Spec::load(&path).unwrap_err().to_string();
        let line = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .position(|l| l.contains("kil leader"))
            .unwrap()
            + 1;
        assert!(
            e.contains(&format!("line {line}")) && e.contains("unknown fault 'kil'"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
