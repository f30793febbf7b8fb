//! A lab whose nodes are containers (`--backend docker` or `podman`).
//!
//! Each node is a small *sandbox* container that holds the node's network namespace and
//! address on a network Perseus makes (198.18.0.0/15, never a private range), and one
//! container per server process of the database, made from the preset's image (or
//! `--image`), that joins the sandbox's namespace, as a Kubernetes pod does. The node's
//! directory is bind-mounted at the same path, so its data outlives its server's container:
//! a kill and a restart start the server again on the same data, in the same namespace
//! and at the same address, with the faults in force there untouched.
//!
//! The sandbox's namespace is named like a lab node's (`ip netns attach`), so faults,
//! probes and every other part of Perseus reach it as they reach a namespace lab's node.
//! Everything made carries the label `perseus.lab=NAME`: [`destroy`] removes by label.

use super::{LabState, ProcessSpec, ProcessState};
use crate::containers::{Container, Engine, Flavour, Net};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// What a container lab needs to reach its engine and name what it made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerLab {
    pub engine: Flavour,
    /// The engine's socket (`unix://PATH`), as used when the lab was made.
    pub socket: String,
    /// The image of the servers, as given, with its id and registry digest.
    pub image: String,
    pub image_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The other images some servers run from, as given, each checked to be there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// The network Perseus made for the lab.
    pub network: String,
}

/// The engine and images of a new container lab (`image`, and `also` for the servers that
/// run from others), checked before anything is made.
pub fn check(flavour: Flavour, image: &str, also: &[String], lab: &str) -> Result<ContainerLab> {
    let engine = Engine::connect(flavour, None)?;
    let found = engine.image(image)?;
    for other in also {
        engine.image(other)?;
    }
    engine.sandbox_image()?;
    Ok(ContainerLab {
        engine: flavour,
        socket: engine.socket().to_string(),
        image: image.to_string(),
        image_id: found.id,
        digest: found.digest,
        also: also.to_vec(),
        network: format!("perseus-{lab}"),
    })
}

fn engine(c: &ContainerLab) -> Result<Engine> {
    Engine::connect(c.engine, Some(&c.socket))
}

fn of(state: &LabState) -> &ContainerLab {
    state
        .containers
        .as_ref()
        .expect("only a container lab is asked")
}

/// What a sandbox mounts of this machine, read-only, to run its `sleep`: the program and
/// the loader and libraries it needs, wherever this machine keeps them.
const SANDBOX_BINDS: [&str; 3] = ["/usr:/usr:ro", "/lib:/lib:ro", "/lib64:/lib64:ro"];

/// The container that holds node `node`'s namespace.
pub fn sandbox(state: &LabState, node: usize) -> String {
    format!("perseus-{}-{}", state.name, state.nodes[node].name)
}

/// The container of process `process` of node `node`.
pub fn server(state: &LabState, node: usize, process: &str) -> String {
    format!("{}-{process}", sandbox(state, node))
}

/// Makes the lab's network and each node's sandbox, and names each sandbox's network
/// namespace as the node's.
pub(super) fn create_nodes(state: &LabState) -> Result<()> {
    let c = of(state);
    let engine = engine(c)?;
    engine.create_network(
        &c.network,
        &state.name,
        &state.subnet,
        state.host_addr,
        &state.bridge,
    )?;
    let image = engine.sandbox_image()?;
    for (i, n) in state.nodes.iter().enumerate() {
        let pid = engine.run(&Container {
            name: sandbox(state, i),
            lab: state.name.clone(),
            image: image.clone(),
            command: vec!["/usr/bin/sleep".into(), "infinity".into()],
            env: Vec::new(),
            user: None,
            workdir: None,
            binds: SANDBOX_BINDS
                .iter()
                .filter(|b| std::path::Path::new(b.split(':').next().unwrap_or("")).exists())
                .map(|b| b.to_string())
                .collect(),
            net: Net::Own {
                network: c.network.clone(),
                addr: n.addr,
            },
            hostname: Some(n.name.clone()),
        })?;
        super::process::run_host("ip", &["netns", "attach", &n.netns, &pid.to_string()])?;
    }
    Ok(())
}

/// Starts `spec` on node `i` in a container of its own, in the node's namespace and
/// directory; a container of the same name left from before goes first.
pub(super) fn spawn(state: &LabState, i: usize, spec: &ProcessSpec) -> Result<ProcessState> {
    let c = of(state);
    let engine = engine(c)?;
    let node = &state.nodes[i];
    let name = server(state, i, &spec.name);
    let log = node.dir.join(format!("{}.log", spec.name));
    // A container left from before (a killed server's) goes; what it wrote is kept.
    if engine.state(&name)?.is_some() {
        use std::io::Write;
        let text = engine.logs(&name, 0)?;
        let earlier = earlier_log(&log);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&earlier)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(Error::io(format!("write {}", earlier.display())))?;
        engine.remove(&name)?;
    }
    // The server runs as its system user's ids on this machine, which own its directory
    // (`Layout::give`); as the image's own user where this machine has no such user.
    let user = match &spec.user {
        Some(u) => crate::files::user_ids(u)
            .ok()
            .map(|(uid, gid)| format!("{uid}:{gid}")),
        None => Some("0:0".into()),
    };
    let dir = node.dir.to_string_lossy().into_owned();
    let mut command = vec![spec.program.clone()];
    command.extend(spec.args.iter().cloned());
    let pid = engine.run(&Container {
        name: name.clone(),
        lab: state.name.clone(),
        image: spec.image.clone().unwrap_or_else(|| c.image.clone()),
        command,
        env: spec.env.clone(),
        user,
        workdir: Some(dir.clone()),
        binds: vec![format!("{dir}:{dir}")],
        net: Net::Of(sandbox(state, i)),
        hostname: None,
    })?;
    Ok(ProcessState {
        name: spec.name.clone(),
        pid,
        start_time: super::process::start_time(pid).unwrap_or(0),
        log,
        container: Some(name),
    })
}

/// Where the output of a process's earlier containers (before a restart) is kept.
fn earlier_log(log: &std::path::Path) -> std::path::PathBuf {
    log.with_extension("earlier.log")
}

/// Writes each server's output, of its earlier containers and its current one, to its
/// process's log file, for the messages and results that show a log.
pub(super) fn save_logs(state: &LabState) {
    let Ok(engine) = engine(of(state)) else {
        return;
    };
    for p in state.nodes.iter().flat_map(|n| &n.processes) {
        if let Some(name) = &p.container {
            if let Ok(text) = engine.logs(name, 0) {
                let mut all = std::fs::read(earlier_log(&p.log)).unwrap_or_default();
                all.extend_from_slice(text.as_bytes());
                let _ = std::fs::write(&p.log, all);
            }
        }
    }
}

/// Removes everything of the lab the engine holds (by its label) and the names of the
/// nodes' namespaces.
pub(super) fn destroy(state: &LabState) -> Result<()> {
    let engine = engine(of(state))?;
    engine.remove_lab(&state.name)?;
    for n in &state.nodes {
        super::net::remove_netns(&n.netns)?;
    }
    Ok(())
}

/// The server containers of node `i`.
fn servers(state: &LabState, i: usize) -> Vec<String> {
    state.nodes[i]
        .processes
        .iter()
        .filter_map(|p| p.container.clone())
        .collect()
}

/// Kills (`kill`) or else freezes the servers of `nodes` through the engine; the
/// sandboxes, and with them the nodes' namespaces, stay.
pub fn stop(state: &LabState, nodes: &[usize], kill: bool) -> Result<()> {
    let engine = engine(of(state))?;
    for &i in nodes {
        for name in servers(state, i) {
            if kill {
                engine.kill(&name)?;
            } else {
                engine.pause(&name, true)?;
            }
        }
    }
    Ok(())
}

/// Thaws the servers of `nodes`.
pub fn thaw(state: &LabState, nodes: &[usize]) -> Result<()> {
    let engine = engine(of(state))?;
    for &i in nodes {
        for name in servers(state, i) {
            engine.pause(&name, false)?;
        }
    }
    Ok(())
}

/// The nodes with a paused server.
pub fn paused(state: &LabState) -> Result<Vec<usize>> {
    let engine = engine(of(state))?;
    let mut held = Vec::new();
    for i in 0..state.nodes.len() {
        for name in servers(state, i) {
            if engine.state(&name)?.is_some_and(|s| s.paused) {
                held.push(i);
                break;
            }
        }
    }
    Ok(held)
}

/// What the results say of a container lab: the engine, the image with its id and
/// digest, and each container with its command line.
pub fn manifest(state: &LabState) -> Option<serde_json::Value> {
    let c = state.containers.as_ref()?;
    let engine = engine(c).ok();
    let containers: Vec<serde_json::Value> = state
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            n.processes.iter().filter_map(move |p| {
                let name = p.container.clone()?;
                Some((i, name))
            })
        })
        .map(|(i, name)| {
            let command = engine
                .as_ref()
                .and_then(|e| e.command(&name).ok())
                .unwrap_or_default();
            serde_json::json!({
                "node": state.nodes[i].name,
                "container": name,
                "command": command,
            })
        })
        .collect();
    Some(serde_json::json!({
        "engine": c.engine,
        "image": c.image,
        "image_id": c.image_id,
        "digest": c.digest,
        "also": c.also,
        "network": c.network,
        "subnet": state.subnet,
        "containers": containers,
    }))
}

/// Why `--backend` with containers cannot run this preset as asked, if it cannot.
pub fn refuses(bin_dir: Option<&std::path::Path>) -> Option<Error> {
    bin_dir.map(|d| {
        Error::Invalid(format!(
            "--bin-dir {}: a container lab runs the binaries of its image; give the image with --image instead",
            d.display()
        ))
    })
}
