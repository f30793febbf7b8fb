//! A compose project Perseus did not start, as a transport: its nodes are groups of the
//! project's running containers, found by compose's own labels (a service per node, or
//! several, as the seed's TiDB layout makes `pd1`, `tikv1` and `tidb1` one node). A
//! change goes into the network namespace of every container of the node, entered from
//! this machine by the container's pid, so the images need no `nft` and no `NET_ADMIN`;
//! kill, restart, pause and resume go through the engine. Nothing of the project is ever
//! removed: only the changes Perseus made are undone.

use super::{Change, Guard, ProcessOp, Processes, Transport};
use crate::containers::{Engine, Flavour};
use crate::error::{Error, Result};
use crate::lab::{process, Layout};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Where a compose project's nodes are: the engine, the project, and each node's
/// containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compose {
    pub engine: Flavour,
    pub socket: String,
    pub project: String,
    /// Each node's containers, by name; the first is the one its client connects to.
    pub containers: Vec<Vec<String>>,
}

/// A node found in a project: its name, its client's address, and its other addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub addr: Ipv4Addr,
    pub also: Vec<Ipv4Addr>,
}

/// The project a `--compose` argument names: a project's name, or its compose file (the
/// project is then named after the file's directory, as compose names it).
fn candidates(arg: &str) -> Vec<String> {
    let path = Path::new(arg);
    if !path.is_file() {
        return vec![arg.to_string()];
    }
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .map(|d| d.to_string_lossy().to_lowercase())
        })
        .unwrap_or_default();
    // Compose v2 keeps letters, digits, `-` and `_`; v1 kept letters and digits only.
    let v2: String = dir
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    let v1: String = dir.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    vec![v2, v1]
}

/// Parses `--group NAME=SERVICE[,SERVICE…]`.
pub fn parse_group(text: &str) -> std::result::Result<(String, Vec<String>), String> {
    let (name, services) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}': expected NAME=SERVICE[,SERVICE…]"))?;
    crate::nodeset::check_name(name).map_err(|e| format!("'{text}': {e}"))?;
    let services: Vec<String> = services
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if services.is_empty() {
        return Err(format!("'{text}': name at least one service"));
    }
    Ok((name.to_string(), services))
}

/// The nodes of the compose project `arg` (a name or a compose file) on the engine of
/// `flavour`: one per group of `groups` (`NAME`, its services), or, with none, one per
/// service, named after it, in order of name.
pub fn find(
    flavour: Flavour,
    arg: &str,
    groups: &[(String, Vec<String>)],
) -> Result<(Compose, Vec<Found>)> {
    let engine = Engine::connect(flavour, None)?;
    let mut project = None;
    let tried = candidates(arg);
    for name in tried.clone() {
        let members = engine.project(&name)?;
        if !members.is_empty() {
            project = Some((name, members));
            break;
        }
    }
    let Some((project, members)) = project else {
        let running = engine.projects()?;
        return Err(Error::Invalid(format!(
            "--compose {arg}: no running containers of compose project {}; {}",
            tried.join(" or "),
            if running.is_empty() {
                "none runs here (start it with docker compose up -d)".to_string()
            } else {
                format!("projects running here: {}", running.join(", "))
            }
        )));
    };
    let services: Vec<String> = {
        let mut s: Vec<String> = members.iter().map(|m| m.service.clone()).collect();
        s.sort();
        s.dedup();
        s
    };
    let groups: Vec<(String, Vec<String>)> = if groups.is_empty() {
        services
            .iter()
            .map(|s| (s.clone(), vec![s.clone()]))
            .collect()
    } else {
        groups.to_vec()
    };
    let mut containers = Vec::new();
    let mut found = Vec::new();
    for (name, wanted) in &groups {
        let mut mine = Vec::new();
        for service in wanted {
            let of: Vec<_> = members.iter().filter(|m| &m.service == service).collect();
            if of.is_empty() {
                return Err(Error::Invalid(format!(
                    "--group {name}: project {project} has no running service '{service}'; its services: {}",
                    services.join(", ")
                )));
            }
            mine.extend(of);
        }
        let mut addrs = mine.iter().flat_map(|m| m.addrs.iter().copied());
        let Some(addr) = addrs.next() else {
            return Err(Error::Invalid(format!(
                "node {name}: its containers have no IPv4 address (network_mode host or none?)"
            )));
        };
        let mut also: Vec<Ipv4Addr> = addrs.filter(|a| *a != addr).collect();
        also.dedup();
        containers.push(mine.iter().map(|m| m.name.clone()).collect());
        found.push(Found {
            name: name.clone(),
            addr,
            also,
        });
    }
    Ok((
        Compose {
            engine: flavour,
            socket: engine.socket().to_string(),
            project,
            containers,
        },
        found,
    ))
}

/// A compose project's nodes, reached through the engine and their containers'
/// namespaces.
pub struct ComposeHost {
    compose: Compose,
    layout: Layout,
    events: Option<PathBuf>,
    engine: Engine,
}

impl ComposeHost {
    /// The nodes of `compose`, whose clients `layout` describes; fault markers go to the
    /// event log in `events`, if any.
    pub fn new(compose: Compose, layout: Layout, events: Option<PathBuf>) -> Result<ComposeHost> {
        let engine = Engine::connect(compose.engine, Some(&compose.socket))?;
        Ok(ComposeHost {
            compose,
            layout,
            events,
            engine,
        })
    }

    /// The pids of node `node`'s running containers; a container that is not running has
    /// no namespace to enter.
    async fn pids(&self, node: usize) -> Result<Vec<(String, Option<i32>)>> {
        let mut out = Vec::new();
        for name in &self.compose.containers[node] {
            let state = self.engine.state(name)?;
            out.push((
                name.clone(),
                state.filter(|s| s.running).and_then(|s| s.pid),
            ));
        }
        Ok(out)
    }

    /// Runs `script` in the namespace of every running container of `node`; returns what
    /// the first printed. A container that does not run fails unless `skip_stopped`.
    async fn sh(
        &self,
        node: usize,
        script: &str,
        stdin: &str,
        skip_stopped: bool,
    ) -> Result<String> {
        let mut first = None;
        for (name, pid) in self.pids(node).await? {
            let Some(pid) = pid else {
                if skip_stopped {
                    continue;
                }
                return Err(Error::FaultNotInForce(format!(
                    "{}: container {name} is not running, so its network cannot be changed",
                    self.layout.nodes[node].name
                )));
            };
            let (script, stdin) = (script.to_string(), stdin.to_string());
            let out = tokio::task::spawn_blocking(move || {
                process::run_in_process(pid, "sh", &["-c", &script], Some(&stdin))
            })
            .await
            .map_err(|e| Error::Invalid(format!("compose task failed: {e}")))??;
            first.get_or_insert(out);
        }
        Ok(first.unwrap_or_default())
    }
}

#[async_trait::async_trait(?Send)]
impl Transport for ComposeHost {
    fn layout(&self) -> Layout {
        self.layout.clone()
    }

    fn events_dir(&self) -> Option<PathBuf> {
        self.events.clone()
    }

    async fn begin(&mut self) -> Result<Guard> {
        Ok(Box::new(()))
    }

    /// The prefix: a change lives in its containers' namespaces, which `heal` reads.
    fn table(&mut self, prefix: &str) -> String {
        prefix.to_string()
    }

    /// None: the namespaces are entered from this machine.
    async fn kept(&mut self, _node: usize) -> Result<Option<(IpAddr, u16)>> {
        Ok(None)
    }

    async fn put(&mut self, node: usize, change: &Change) -> Result<()> {
        self.sh(node, &change.put, &change.stdin, false)
            .await
            .map(|_| ())
    }

    /// In every running container of the node: a stopped one's namespace is gone, and the
    /// change with it.
    async fn undo(&mut self, node: usize, _table: &str, undo: &str) -> Result<()> {
        self.sh(node, undo, "", true).await.map(|_| ())
    }

    async fn read(&mut self, node: usize, script: &str) -> Result<String> {
        self.sh(node, script, "", true).await
    }

    fn processes(&mut self) -> Option<&mut dyn Processes> {
        Some(self)
    }
}

#[async_trait::async_trait(?Send)]
impl Processes for ComposeHost {
    /// None: the engine stops and starts any container as it was made.
    fn refuses(&self, _node: usize, _op: ProcessOp) -> Option<String> {
        None
    }

    /// Every container of the nodes, killed (SIGKILL) or frozen.
    async fn stop(&mut self, nodes: &[usize], op: ProcessOp) -> Result<()> {
        for &i in nodes {
            for name in &self.compose.containers[i] {
                match op {
                    ProcessOp::Kill => self.engine.kill(name)?,
                    ProcessOp::Pause => self.engine.pause(name, true)?,
                }
            }
        }
        Ok(())
    }

    /// Started again as they were made, or thawed. A container started again has a new
    /// network namespace: no change of Perseus's is in force there.
    async fn resume(&mut self, nodes: &[usize], op: ProcessOp) -> Result<()> {
        for &i in nodes {
            for name in &self.compose.containers[i] {
                match op {
                    ProcessOp::Kill => {
                        self.engine.start(name)?;
                    }
                    ProcessOp::Pause => self.engine.pause(name, false)?,
                }
            }
        }
        Ok(())
    }

    /// Paused: a node with a paused container. Killed: a node none of whose containers
    /// runs.
    async fn held(&mut self, op: ProcessOp) -> Result<Vec<usize>> {
        let mut held = Vec::new();
        for (i, names) in self.compose.containers.iter().enumerate() {
            let mut states = Vec::new();
            for name in names {
                states.push(self.engine.state(name)?);
            }
            let hit = match op {
                ProcessOp::Pause => states.iter().any(|s| s.is_some_and(|s| s.paused)),
                ProcessOp::Kill => states.iter().all(|s| !s.is_some_and(|s| s.running)),
            };
            if hit {
                held.push(i);
            }
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_names_its_node_and_services() {
        assert_eq!(
            parse_group("n1=pd1, tikv1,tidb1"),
            Ok((
                "n1".into(),
                vec!["pd1".into(), "tikv1".into(), "tidb1".into()]
            ))
        );
        assert!(parse_group("n1").unwrap_err().contains("NAME=SERVICE"));
        assert!(parse_group("n1=,").unwrap_err().contains("at least one"));
    }

    #[test]
    fn a_compose_file_names_its_project_after_its_directory() {
        let dir = std::env::temp_dir().join(format!("Seed_Tidb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("docker-compose.yml");
        std::fs::write(&file, "services: {}\n").unwrap();
        let c = candidates(file.to_str().unwrap());
        let id = std::process::id();
        assert_eq!(c, [format!("seed_tidb-{id}"), format!("seedtidb{id}")]);
        assert_eq!(candidates("myproject"), ["myproject"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
