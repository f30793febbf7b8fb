//! A cluster Perseus did not start (in containers, on other machines, from TiUP): its nodes'
//! endpoints, the client's credentials, and the user's own commands for faults. Perseus
//! measures it exactly as a lab, and owns nothing of it but an event log under
//! `$PERSEUS_HOME/clusters/NAME/` (where `perseus mark --cluster NAME` writes).
//!
//! # Cluster file (TOML)
//! ```toml
//! name = "tidb"                    # optional; default: the file's name without .toml
//! database = "tidb"                # the client to use: perseus list shows them
//! user = "root"                    # where the database needs credentials
//! password_env = "TIDB_PASSWORD"   # the password is read from this variable, never the file
//!
//! [[node]]
//! name = "tidb1"
//! address = "10.0.0.1:4000"        # host or IPv4 address, and the client port
//!
//! [faults]                         # commands for `perseus run --cluster`, run with sh -c
//! isolate = "docker exec {node} /tidb/isolate.sh"
//! rejoin = "docker exec {node} /tidb/rejoin.sh"
//! ```
//! Templates: `{node}` (the node's name), `{host}`, `{port}`, `{address}` (host:port).
//!
//! Or Perseus makes the faults itself, over SSH (see `hosts::ssh`): every node says how to reach
//! its machine, and nothing else is needed there but `sshd` and `nft`.
//! ```toml
//! ssh_config = "machines.ssh"      # optional: an OpenSSH config file (ssh -F); default: yours
//! lease = "30s"                    # optional: how long past the scenario's planned end a
//!                                  # fault outlives a Perseus that died [default: 30s]
//! [[node]]
//! name = "n1"
//! address = "10.0.0.5:2379"
//! ssh = "root@10.0.0.5"            # ssh's destination; port, user, key from the ssh config
//! netns = "db"                     # optional: the rules go into this network namespace there
//! service = "etcd"                 # for kill/restart and pause/resume: its systemd unit, or
//! # process = "etcd --name n1"     # a text of its command line, and for restart
//! # start = "systemctl start etcd" # the command that starts it again
//! ```

use crate::error::{Error, Result};
use crate::lab::{Layout, NodeLayout};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The actions a cluster file may give commands for: each fault kind's start and end.
/// The fault actions a cluster file can give commands for: every fault that takes one
/// node (the command's `{host}` and `{node}` say which), the words that undo them, and
/// `heal` (which undoes the others).
pub fn actions() -> Vec<&'static str> {
    let mut all = Vec::new();
    for f in crate::fault::FAULTS.iter().filter(|f| takes_one_node(**f)) {
        all.push(f.kind().name);
        if let Some((word, _)) = f.undone_by() {
            all.push(word);
        }
    }
    all.push("heal");
    all
}

/// Whether a fault takes nothing but a target, as a user's command can.
fn takes_one_node(f: &dyn crate::fault::Fault) -> bool {
    f.params() == [crate::fault::TARGET_PARAM]
}

/// Longest time a fault command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Option<String>,
    database: toml::Spanned<String>,
    user: Option<String>,
    password_env: Option<toml::Spanned<String>>,
    #[serde(default)]
    node: Vec<RawNode>,
    #[serde(default)]
    faults: BTreeMap<toml::Spanned<String>, String>,
    ssh_config: Option<String>,
    lease: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: toml::Spanned<String>,
    address: toml::Spanned<String>,
    ssh: Option<toml::Spanned<String>>,
    netns: Option<toml::Spanned<String>>,
    service: Option<toml::Spanned<String>>,
    process: Option<toml::Spanned<String>>,
    start: Option<toml::Spanned<String>>,
}

/// One node of a cluster: its name, and the address and port its client connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    /// As the user wrote it (a host name or an address).
    pub host: String,
    pub addr: Ipv4Addr,
    pub port: u16,
    /// How to reach its machine: ssh's destination (`user@host`), where Perseus makes the
    /// faults itself.
    pub ssh: Option<String>,
    /// The network namespace on that machine the node's rules go into; `None`: the host's.
    pub netns: Option<String>,
    /// How Perseus finds the server's processes on that machine, for kill and pause.
    pub server: Option<Server>,
    /// The node's other addresses, where it is several hosts (a group of containers).
    pub also: Vec<Ipv4Addr>,
}

pub use crate::hosts::ssh::Server;

/// A cluster Perseus did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    pub database: String,
    pub nodes: Vec<Endpoint>,
    /// User and password, where given.
    pub credentials: Option<(String, String)>,
    /// Action name → command template.
    pub commands: BTreeMap<String, String>,
    /// The OpenSSH config file to use (`ssh -F`); `None`: the user's own.
    pub ssh_config: Option<PathBuf>,
    /// How long past the scenario's planned end a fault made over SSH outlives a Perseus
    /// that can no longer undo it.
    pub lease: Duration,
    /// The compose project whose containers are the nodes, where Perseus makes the
    /// faults itself in their namespaces.
    pub compose: Option<crate::hosts::compose::Compose>,
}

/// The lease of a fault made over SSH when the file names none.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// An ssh destination (`user@host`, `host`, a config alias): a word that cannot be taken for
/// an option.
fn check_ssh(dest: &str) -> std::result::Result<(), String> {
    if !dest.is_empty()
        && dest.len() <= 255
        && !dest.starts_with('-')
        && dest.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '-' | '_' | ':' | '[' | ']')
        })
    {
        Ok(())
    } else {
        Err(format!(
            "ssh = \"{dest}\": give ssh's destination, e.g. root@10.0.0.5 or an alias of your ssh config (letters, digits, @ . - _ :)"
        ))
    }
}

/// A systemd unit's name.
fn check_service(name: &str) -> std::result::Result<(), String> {
    if !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '-' | '_' | ':' | '\\'))
    {
        Ok(())
    } else {
        Err(format!(
            "service = \"{name}\": a systemd unit's name is letters, digits and @ . - _ : \\"
        ))
    }
}

/// A text of one line, at most `max` characters.
fn check_line(key: &str, text: &str, max: usize) -> std::result::Result<(), String> {
    if text.trim().is_empty() || text.len() > max || text.chars().any(|c| c.is_control()) {
        Err(format!("{key} = must be one line of 1 to {max} characters"))
    } else {
        Ok(())
    }
}

/// A node's server as the file describes it: `service`, or `process` (and `start`).
fn server_of(
    n: &RawNode,
    at: impl Fn(std::ops::Range<usize>) -> usize,
) -> std::result::Result<Option<Server>, (usize, String)> {
    let err = |s: &toml::Spanned<String>, e: String| (at(s.span()), e);
    match (&n.service, &n.process, &n.start) {
        (Some(s), Some(_), _) => Err(err(s, "give service = or process =, not both".into())),
        (Some(s), None, Some(st)) => Err(err(
            st,
            format!(
                "start = goes with process =; a service starts with systemctl start {}",
                s.get_ref()
            ),
        )),
        (Some(s), None, None) => {
            check_service(s.get_ref()).map_err(|e| err(s, e))?;
            Ok(Some(Server::Service(s.get_ref().clone())))
        }
        (None, Some(p), start) => {
            check_line("process", p.get_ref(), 200).map_err(|e| err(p, e))?;
            if let Some(st) = start {
                check_line("start", st.get_ref(), 1000).map_err(|e| err(st, e))?;
            }
            Ok(Some(Server::Process {
                pattern: p.get_ref().clone(),
                start: start.as_ref().map(|s| s.get_ref().clone()),
            }))
        }
        (None, None, Some(st)) => Err(err(st, "start = goes with process =".into())),
        (None, None, None) => Ok(None),
    }
}

/// A network namespace's name, as `ip netns` takes it.
fn check_netns(name: &str) -> std::result::Result<(), String> {
    if !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        Ok(())
    } else {
        Err(format!(
            "netns = \"{name}\": a namespace name is letters, digits, '.', '-' and '_'"
        ))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Resolves `host:port` to an IPv4 address and port.
fn resolve(address: &str) -> std::result::Result<(String, Ipv4Addr, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("'{address}' has no port (HOST:PORT)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' in '{address}' is not a port"))?;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}"))?
        .find_map(|a| match a {
            SocketAddr::V4(v4) => Some(*v4.ip()),
            SocketAddr::V6(_) => None,
        })
        .ok_or_else(|| format!("'{host}' has no IPv4 address"))?;
    Ok((host.to_string(), addr, port))
}

impl Cluster {
    /// Reads a cluster file; every mistake is reported with its line. The password is read
    /// from the variable `password_env` names.
    pub fn load(path: &Path) -> Result<Cluster> {
        let text = std::fs::read_to_string(path)
            .map_err(Error::io(format!("read cluster file {}", path.display())))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cluster".into());
        Cluster::parse(&text, path, &stem, |v| std::env::var(v).ok())
    }

    /// Parses a cluster file's text; `env` looks variables up.
    pub fn parse(
        text: &str,
        origin: &Path,
        default_name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Cluster> {
        let malformed = |line: usize, why: String| Error::Malformed {
            what: "cluster file".into(),
            path: origin.to_path_buf(),
            line,
            why,
        };
        let raw: RawCluster = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            malformed(line, e.message().to_string())
        })?;
        let at = |s: std::ops::Range<usize>| line_of(text, s.start);
        crate::db::find(raw.database.get_ref())
            .map_err(|e| malformed(at(raw.database.span()), e.to_string()))?;
        if raw.node.len() > crate::record::MAX_NODES {
            return Err(malformed(
                1,
                format!(
                    "{} nodes: at most {} are supported",
                    raw.node.len(),
                    crate::record::MAX_NODES
                ),
            ));
        }
        if raw.node.is_empty() {
            return Err(malformed(
                1,
                "no [[node]]: list every node with its address".into(),
            ));
        }
        let mut nodes = Vec::new();
        for n in &raw.node {
            crate::nodeset::check_name(n.name.get_ref())
                .map_err(|e| malformed(at(n.name.span()), e))?;
            if nodes.iter().any(|m: &Endpoint| m.name == *n.name.get_ref()) {
                return Err(malformed(
                    at(n.name.span()),
                    format!("node '{}' is listed twice", n.name.get_ref()),
                ));
            }
            let (host, addr, port) =
                resolve(n.address.get_ref()).map_err(|e| malformed(at(n.address.span()), e))?;
            if let Some(d) = &n.ssh {
                check_ssh(d.get_ref()).map_err(|e| malformed(at(d.span()), e))?;
            }
            if let Some(ns) = &n.netns {
                check_netns(ns.get_ref()).map_err(|e| malformed(at(ns.span()), e))?;
                if n.ssh.is_none() {
                    return Err(malformed(
                        at(ns.span()),
                        "netns = needs ssh = on the same node: Perseus reaches namespaces over SSH"
                            .into(),
                    ));
                }
            }
            let server = server_of(n, at).map_err(|(line, why)| malformed(line, why))?;
            if server.is_some() && n.ssh.is_none() {
                return Err(malformed(
                    at(n.name.span()),
                    format!(
                        "node '{}': service, process and start need ssh = (Perseus reaches the server over SSH)",
                        n.name.get_ref()
                    ),
                ));
            }
            nodes.push(Endpoint {
                name: n.name.get_ref().clone(),
                host,
                addr,
                port,
                ssh: n.ssh.as_ref().map(|d| d.get_ref().clone()),
                netns: n.netns.as_ref().map(|d| d.get_ref().clone()),
                server,
                also: Vec::new(),
            });
        }
        let with_ssh = raw.node.iter().filter(|n| n.ssh.is_some()).count();
        if with_ssh != 0 && with_ssh != raw.node.len() {
            let first = raw
                .node
                .iter()
                .find(|n| n.ssh.is_none())
                .expect("one has none");
            return Err(malformed(
                at(first.name.span()),
                format!(
                    "node '{}' has no ssh =: give every node its ssh destination, or none (then faults come from [faults] commands)",
                    first.name.get_ref()
                ),
            ));
        }
        let lease = match &raw.lease {
            None => DEFAULT_LEASE,
            Some(l) => crate::clock::parse_duration(l.get_ref())
                .map_err(|e| malformed(at(l.span()), format!("lease: {e}")))?,
        };
        let credentials = match (&raw.user, &raw.password_env) {
            (None, None) => None,
            (Some(user), None) => Some((user.clone(), String::new())),
            (user, Some(var)) => {
                let password = env(var.get_ref()).ok_or_else(|| {
                    malformed(
                        at(var.span()),
                        format!(
                            "the password variable {} is not set; export it first",
                            var.get_ref()
                        ),
                    )
                })?;
                Some((user.clone().unwrap_or_else(|| "root".into()), password))
            }
        };
        let mut commands = BTreeMap::new();
        for (action, command) in raw.faults {
            let known = actions();
            if !known.contains(&action.get_ref().as_str()) {
                return Err(malformed(
                    at(action.span()),
                    format!(
                        "unknown fault action '{}'; known: {}",
                        action.get_ref(),
                        known.join(", ")
                    ),
                ));
            }
            commands.insert(action.into_inner(), command);
        }
        let name = raw.name.unwrap_or_else(|| default_name.to_string());
        crate::lab::validate_name(&name)?;
        Ok(Cluster {
            name,
            database: raw.database.into_inner(),
            nodes,
            credentials,
            commands,
            ssh_config: raw.ssh_config.map(|f| {
                // Relative to the cluster file, as a user reads it.
                let f = PathBuf::from(f);
                match origin.parent() {
                    Some(dir) if f.is_relative() => dir.join(f),
                    _ => f,
                }
            }),
            lease,
            compose: None,
        })
    }

    /// A cluster from the command line: `NAME=HOST:PORT` per node, no fault commands.
    pub fn from_args(name: &str, database: &str, nodes: &[String]) -> Result<Cluster> {
        crate::db::find(database)?;
        crate::lab::validate_name(name)?;
        if nodes.is_empty() {
            return Err(Error::Invalid(
                "no --node: give every node as --node NAME=HOST:PORT".into(),
            ));
        }
        if nodes.len() > crate::record::MAX_NODES {
            return Err(Error::Invalid(format!(
                "{} nodes: at most {} are supported",
                nodes.len(),
                crate::record::MAX_NODES
            )));
        }
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for n in nodes {
            let (node, address) = n
                .split_once('=')
                .ok_or_else(|| Error::Invalid(format!("--node {n}: expected NAME=HOST:PORT")))?;
            crate::nodeset::check_name(node)
                .map_err(|e| Error::Invalid(format!("--node {n}: {e}")))?;
            if endpoints.iter().any(|e| e.name == node) {
                return Err(Error::Invalid(format!("node '{node}' is given twice")));
            }
            let (host, addr, port) =
                resolve(address).map_err(|e| Error::Invalid(format!("--node {n}: {e}")))?;
            endpoints.push(Endpoint {
                name: node.to_string(),
                host,
                addr,
                port,
                ssh: None,
                netns: None,
                server: None,
                also: Vec::new(),
            });
        }
        Ok(Cluster {
            name: name.to_string(),
            database: database.to_string(),
            nodes: endpoints,
            credentials: None,
            commands: BTreeMap::new(),
            ssh_config: None,
            lease: DEFAULT_LEASE,
            compose: None,
        })
    }

    /// The cluster of compose project `arg` (its name, or its compose file) on the engine of
    /// `engine`, measured with `database`'s client at its usual port: a node per group of
    /// `groups` (`NAME`, its services), or per service. Perseus makes the faults itself.
    pub fn of_compose(
        database: &str,
        arg: &str,
        engine: crate::containers::Flavour,
        groups: &[(String, Vec<String>)],
    ) -> Result<Cluster> {
        let db = crate::db::find(database)?;
        let (compose, found) = crate::hosts::compose::find(engine, arg, groups)?;
        // The event log's name: the project's, as a lab name can be.
        let name: String = compose
            .project
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .skip_while(|c| *c == '-')
            .take(24)
            .collect();
        crate::lab::validate_name(&name)?;
        if found.len() > crate::record::MAX_NODES {
            return Err(Error::Invalid(format!(
                "{} nodes: at most {} are supported",
                found.len(),
                crate::record::MAX_NODES
            )));
        }
        let nodes = found
            .into_iter()
            .map(|f| Endpoint {
                host: f.addr.to_string(),
                name: f.name,
                addr: f.addr,
                port: db.client_port(),
                ssh: None,
                netns: None,
                server: None,
                also: f.also,
            })
            .collect();
        Ok(Cluster {
            name,
            database: database.to_string(),
            nodes,
            credentials: None,
            commands: BTreeMap::new(),
            ssh_config: None,
            lease: DEFAULT_LEASE,
            compose: Some(compose),
        })
    }

    /// Its nodes' machines, as Perseus reaches them over SSH.
    pub fn machines(&self) -> Vec<crate::hosts::ssh::Machine> {
        self.nodes
            .iter()
            .map(|n| crate::hosts::ssh::Machine {
                dest: n.ssh.clone().unwrap_or_default(),
                netns: n.netns.clone(),
                server: n.server.clone(),
            })
            .collect()
    }

    /// Its machines over SSH, not connected yet; marks go into its event log while a run
    /// holds it, and `say` hears each command. `scenario`: how long the faults are planned
    /// to last.
    pub fn ssh_host<'a>(
        &self,
        scenario: Duration,
        say: impl Fn(String) + 'a,
    ) -> crate::hosts::ssh::SshHost<'a> {
        let dir = self.dir();
        crate::hosts::ssh::SshHost::new(
            self.layout(),
            self.machines(),
            crate::hosts::ssh::Lease {
                scenario,
                past_end: self.lease,
            },
            dir.exists().then_some(dir),
            say,
        )
    }

    /// Whether Perseus makes the faults itself, over SSH (every node says `ssh =`).
    pub fn over_ssh(&self) -> bool {
        self.nodes.iter().all(|n| n.ssh.is_some())
    }

    /// Where the cluster's event log lives: `$PERSEUS_HOME/clusters/NAME`.
    pub fn dir(&self) -> PathBuf {
        clusters_dir().join(&self.name)
    }

    /// What the database's client needs to know: every node's address and port.
    pub fn layout(&self) -> Layout {
        Layout {
            lab: self.name.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeLayout {
                    name: n.name.clone(),
                    addr: n.addr,
                    dir: self.dir(),
                    port: Some(n.port),
                    also: n.also.clone(),
                })
                .collect(),
            bin_dir: None,
            credentials: self.credentials.clone(),
            secret: None,
            settings: Default::default(),
            image: None,
        }
    }

    pub fn node_index(&self, name: &str) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| Error::NoSuchNode {
                node: name.to_string(),
                lab: self.name.clone(),
                nodes: self
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Fails, naming the first node that does not accept a TCP connection within `timeout`.
    pub async fn check_reachable(&self, timeout: Duration) -> Result<()> {
        let probes = self.nodes.iter().map(|n| async move {
            let to = SocketAddr::from((n.addr, n.port));
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(to)).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("{} ({}:{}): {e}", n.name, n.host, n.port)),
                Err(_) => Some(format!(
                    "{} ({}:{}): no answer within {} s",
                    n.name,
                    n.host,
                    n.port,
                    timeout.as_secs()
                )),
            }
        });
        let failed: Vec<String> = futures::future::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .collect();
        match failed.first() {
            None => Ok(()),
            Some(_) => Err(Error::Unreachable(failed.join("; "))),
        }
    }

    /// The command for `action` on node `node`, templated; `None` if the file gives none.
    pub fn command(&self, action: &str, node: usize) -> Option<String> {
        let n = &self.nodes[node];
        self.commands.get(action).map(|t| {
            t.replace("{node}", &n.name)
                .replace("{host}", &n.host)
                .replace("{port}", &n.port.to_string())
                .replace("{address}", &format!("{}:{}", n.host, n.port))
        })
    }
}

/// A cluster's event log directory, held by the one watch of the cluster that runs; removed
/// when dropped.
pub struct EventLog(PathBuf);

impl EventLog {
    pub fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Cluster {
    /// Gets the cluster ready to be watched with `db`'s client: claims its event log (refused
    /// while another watch holds it), checks that every node is reachable, and creates the
    /// table where the database needs one. Returns the log and the server version, if the
    /// database reports one within 2 s.
    pub async fn attach(
        &self,
        db: &'static dyn crate::db::Database,
    ) -> Result<(EventLog, Option<String>)> {
        let dir = self.dir();
        if dir.exists() {
            return Err(Error::Invalid(format!(
                "a watch of cluster '{}' is running already (or was killed: remove {})",
                self.name,
                dir.display()
            )));
        }
        self.check_reachable(Duration::from_secs(2)).await?;
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
        let log = EventLog(dir);
        let layout = self.layout();
        db.setup(&layout).await?;
        let version = tokio::time::timeout(Duration::from_secs(2), db.health(&layout))
            .await
            .ok()
            .and_then(|h| h.version);
        Ok((log, version))
    }
}

/// Where external clusters keep their event logs.
pub fn clusters_dir() -> PathBuf {
    crate::lab::home().join("clusters")
}

/// What a fault command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    pub command: String,
    /// Its exit status (`None`: killed by a signal, or timed out).
    pub status: Option<i32>,
    /// Its standard output and error, trimmed.
    pub output: String,
    pub took: Duration,
}

impl CommandOutcome {
    pub fn succeeded(&self) -> bool {
        self.status == Some(0)
    }

    /// One line for the record: the command, its status, the start of its output.
    pub fn summary(&self) -> String {
        let status = match self.status {
            Some(s) => format!("exit {s}"),
            None => "no exit status (killed or timed out)".into(),
        };
        let output: String = self
            .output
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        format!(
            "command `{}` → {status} after {} ms{}",
            self.command.replace(|c: char| c.is_control(), " "),
            self.took.as_millis(),
            if output.is_empty() {
                String::new()
            } else {
                format!(": {output}")
            }
        )
    }
}

/// Runs `command` with `sh -c`, at most `timeout`; its output is captured. The command
/// runs in a process group of its own: past the timeout the whole group is killed, so
/// nothing it started acts after Perseus has given up on it.
pub async fn run_command(command: &str, timeout: Duration) -> Result<CommandOutcome> {
    let t = Instant::now();
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::io(format!("start `{command}`")))?;
    let group = child
        .id()
        .map(|pid| nix::unistd::Pid::from_raw(-(pid as i32)));
    let (status, output) = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status.code(), text.trim().to_string())
        }
        Ok(Err(e)) => return Err(Error::io(format!("run `{command}`"))(e)),
        Err(_) => {
            if let Some(group) = group {
                let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            }
            (None, format!("timed out after {} s", timeout.as_secs_f64()))
        }
    };
    Ok(CommandOutcome {
        command: command.to_string(),
        status,
        output,
        took: t.elapsed(),
    })
}

/// The action that undoes a fault of kind `kind` (`isolate` → `rejoin`; `heal` for those
/// only `heal` undoes).
pub fn end_action(kind: &crate::record::faults::FaultKind) -> &'static str {
    crate::fault::of_kind(kind)
        .undone_by()
        .map_or("heal", |(w, _)| w)
}

/// The node a scenario's target names; the user's commands take node names only.
fn target_node(cluster: &Cluster, target: &crate::fault::Target) -> Result<usize> {
    match target {
        crate::fault::Target::Node(name) => cluster.node_index(name),
        other => Err(Error::Invalid(format!(
            "a cluster Perseus did not start takes faults on named nodes only, not '{other}'"
        ))),
    }
}

/// Checks, before anything starts, that `scenario` names only nodes of the cluster and that
/// the cluster file gives a command for each of its actions.
pub fn check_scenario(cluster: &Cluster, scenario: &crate::scenario::Scenario) -> Result<()> {
    use crate::fault::Action;
    let mut needed = Vec::new();
    for phase in &scenario.phases {
        for action in &phase.faults {
            match action {
                Action::Start { fault, target, .. } => {
                    if !takes_one_node(*fault) {
                        return Err(Error::Invalid(format!(
                            "phase '{}': '{action}': a cluster Perseus did not start takes faults on one named node (its command gets {{host}} and {{node}}); {} takes more",
                            phase.name,
                            fault.kind().name
                        )));
                    }
                    target_node(cluster, target)?;
                    needed.push(fault.kind().name);
                    needed.push(end_action(fault.kind()));
                }
                Action::End { fault, target } => {
                    target_node(cluster, target)?;
                    needed.push(end_action(fault.kind()));
                }
                Action::Heal => {}
            }
        }
    }
    for action in needed {
        if !cluster.commands.contains_key(action) {
            return Err(Error::Invalid(format!(
                "the cluster file gives no command for '{action}'; add it under [faults], e.g. {action} = \"ssh {{host}} sudo /usr/local/bin/{action}.sh\""
            )));
        }
    }
    Ok(())
}

/// Runs the command for `action` on node `node`, between the markers `before` and `after`
/// (e.g. `isolating` / `isolated`) in the cluster's event log; its outcome goes into the
/// record as a mark. A command that fails (non-zero, killed, timed out) is an error, and
/// `after` is not written.
async fn act(
    cluster: &Cluster,
    action: &str,
    node: usize,
    before: &str,
    after: &str,
    say: &impl Fn(String),
) -> Result<()> {
    use crate::lab::events;
    let dir = cluster.dir();
    let name = &cluster.nodes[node].name;
    let command = cluster
        .command(action, node)
        .ok_or_else(|| Error::Invalid(format!("no command for '{action}'")))?;
    events::append(&dir, before, name)?;
    let outcome = run_command(&command, COMMAND_TIMEOUT).await?;
    events::append(&dir, events::MARK, &outcome.summary())?;
    say(outcome.summary());
    if !outcome.succeeded() {
        if crate::record::faults::by_starting(before).is_some() {
            // A start that failed may have done part of its work: undo it, as well as the
            // user's command can, and withdraw the fault from the record.
            let end = crate::record::faults::by_starting(before).expect("a starting verb");
            if let Some(undo) = cluster.command(end_action(end), node) {
                let undone = run_command(&undo, COMMAND_TIMEOUT).await?;
                events::append(&dir, events::MARK, &undone.summary())?;
                say(undone.summary());
            }
            events::append(
                &dir,
                crate::record::faults::ABORTED,
                &format!("{before} {name}"),
            )?;
        }
        return Err(Error::FaultCommand(outcome.summary()));
    }
    events::append(&dir, after, name)?;
    Ok(())
}

/// Faults through the cluster file's commands, on one named node each (see
/// [`check_scenario`]); `say` hears each command's outcome. Faults still in force when the
/// play stops early are undone with the user's commands, as well as they can.
pub struct Commands<'a, S: Fn(String)> {
    pub cluster: &'a Cluster,
    pub say: S,
}

#[async_trait::async_trait(?Send)]
impl<S: Fn(String)> crate::schedule::Backend for Commands<'_, S> {
    async fn start(&mut self, action: &crate::fault::Action) -> Result<crate::fault::InForce> {
        let crate::fault::Action::Start { fault, target, .. } = action else {
            return Err(Error::Invalid(format!("'{action}' does not start a fault")));
        };
        let kind = fault.kind();
        let node = target_node(self.cluster, target)?;
        act(
            self.cluster,
            kind.name,
            node,
            kind.starting,
            kind.started,
            &self.say,
        )
        .await?;
        Ok(crate::fault::InForce {
            kind,
            target: self.cluster.nodes[node].name.clone(),
            nodes: vec![node],
        })
    }

    async fn resolve(&mut self, target: &crate::fault::Target) -> Result<Vec<usize>> {
        Ok(vec![target_node(self.cluster, target)?])
    }

    async fn end(&mut self, f: &crate::fault::InForce) -> Result<()> {
        for &node in &f.nodes {
            act(
                self.cluster,
                end_action(f.kind),
                node,
                f.kind.ending,
                f.kind.ended,
                &self.say,
            )
            .await?;
        }
        Ok(())
    }

    fn undoes_on_stop(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Cluster> {
        Cluster::parse(text, Path::new("c.toml"), "c", |v| {
            (v == "PW").then(|| "secret".to_string())
        })
    }

    const GOOD: &str = r#"
name = "tidb"
database = "tidb"
user = "root"
password_env = "PW"

[[node]]
name = "tidb1"
address = "127.0.0.1:4000"

[[node]]
name = "tidb2"
address = "localhost:4001"

[faults]
isolate = "docker exec {node} /tidb/isolate.sh {host} {port}"
rejoin = "ssh {address} rejoin"
"#;

    #[test]
    fn a_cluster_file_gives_endpoints_credentials_and_templated_commands() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.name, "tidb");
        assert_eq!(c.nodes[1].addr, Ipv4Addr::LOCALHOST);
        assert_eq!(
            (c.nodes[1].host.as_str(), c.nodes[1].port),
            ("localhost", 4001)
        );
        assert_eq!(c.credentials, Some(("root".into(), "secret".into())));
        assert_eq!(
            c.command("isolate", 0).unwrap(),
            "docker exec tidb1 /tidb/isolate.sh 127.0.0.1 4000"
        );
        assert_eq!(c.command("rejoin", 1).unwrap(), "ssh localhost:4001 rejoin");
        assert_eq!(c.command("kill", 0), None);
        let l = c.layout();
        assert_eq!(l.client_addr(1, 1), "127.0.0.1:4001".parse().unwrap());
        assert_eq!(l.credentials(("a", "b")), ("root", "secret"));
    }

    #[test]
    fn mistakes_in_a_cluster_file_are_reported_with_their_line() {
        let line = |text: &str| match parse(text) {
            Err(Error::Malformed { line, why, .. }) => (line, why),
            other => panic!("expected a malformed file, got {other:?}"),
        };
        let (l, why) =
            line("database = \"nosuch\"\n[[node]]\nname=\"a\"\naddress=\"127.0.0.1:1\"\n");
        assert_eq!(l, 1);
        assert!(why.contains("unknown database"), "{why}");
        let (l, why) =
            line("database = \"etcd\"\n[[node]]\nname = \"a\"\naddress = \"127.0.0.1\"\n");
        assert_eq!(l, 4);
        assert!(why.contains("no port"), "{why}");
        let (l, why) = line(&GOOD.replace("isolate =", "isolat ="));
        assert!(why.contains("unknown fault action 'isolat'"), "{why}");
        assert_eq!(l, 16);
        let (_, why) = line(&GOOD.replace("\"PW\"", "\"NOPE\""));
        assert!(why.contains("NOPE is not set"), "{why}");
        let (_, why) = line("database = \"etcd\"\n");
        assert!(why.contains("no [[node]]"), "{why}");
        let (l, why) = line("database = \"etcd\"\nport = 3\n");
        assert_eq!(l, 2);
        assert!(why.contains("unknown field"), "{why}");
    }

    #[test]
    fn nodes_reached_over_ssh_are_checked_words_and_all_or_none() {
        let two = |a: &str, b: &str| {
            format!(
                "database = \"etcd\"\nssh_config = \"m.ssh\"\nlease = \"5s\"\n\
                 [[node]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n{a}\n\
                 [[node]]\nname = \"b\"\naddress = \"127.0.0.1:2\"\n{b}\n"
            )
        };
        let c = parse(&two(
            "ssh = \"root@10.0.0.5\"\nnetns = \"db\"",
            "ssh = \"b-host\"",
        ))
        .unwrap();
        assert!(c.over_ssh());
        assert_eq!(c.nodes[0].ssh.as_deref(), Some("root@10.0.0.5"));
        assert_eq!(c.nodes[0].netns.as_deref(), Some("db"));
        assert_eq!(c.lease, Duration::from_secs(5));
        assert_eq!(c.ssh_config, Some(PathBuf::from("m.ssh")));
        assert!(!parse(GOOD).unwrap().over_ssh());
        let why = |text: &str| match parse(text) {
            Err(Error::Malformed { line, why, .. }) => (line, why),
            other => panic!("expected a malformed file, got {other:?}"),
        };
        let (l, w) = why(&two("ssh = \"-oProxyCommand=sh\"", "ssh = \"b\""));
        assert!(w.contains("ssh's destination") && l == 7, "{l}: {w}");
        let (_, w) = why(&two("ssh = \"root@h; rm -rf /\"", "ssh = \"b\""));
        assert!(w.contains("ssh's destination"), "{w}");
        let (_, w) = why(&two("ssh = \"a\"", ""));
        assert!(w.contains("node 'b' has no ssh ="), "{w}");
        let (_, w) = why(&two("netns = \"db\"", ""));
        assert!(w.contains("netns = needs ssh ="), "{w}");
        let (_, w) = why(&two("ssh = \"a\"\nnetns = \"x y\"", "ssh = \"b\""));
        assert!(w.contains("namespace name"), "{w}");
        let (_, w) = why(&two("ssh = \"a\"", "ssh = \"b\"").replace("5s", "soon"));
        assert!(w.contains("lease"), "{w}");
    }

    #[test]
    fn nodes_on_the_command_line_are_name_equals_host_colon_port() {
        let c = Cluster::from_args("x", "etcd", &["a=127.0.0.1:2379".into()]).unwrap();
        assert_eq!(c.nodes[0].port, 2379);
        assert!(Cluster::from_args("x", "etcd", &["a:127.0.0.1:2379".into()]).is_err());
        assert!(Cluster::from_args("x", "etcd", &[]).is_err());
        assert!(Cluster::from_args("x", "nosuch", &["a=127.0.0.1:1".into()]).is_err());
    }

    #[test]
    fn a_scenario_must_name_the_clusters_nodes_and_have_a_command_for_each_action() {
        let c = parse(GOOD).unwrap();
        let scenario = |faults: &str| {
            let text = format!("[[phase]]\nname = \"a\"\nduration = \"1s\"\nfaults = [{faults}]\n");
            crate::scenario::Scenario::parse("s", &text, Path::new("s.toml"), None).unwrap()
        };
        assert!(check_scenario(&c, &scenario("\"isolate tidb2\", \"heal\"")).is_ok());
        let e = check_scenario(&c, &scenario("\"kill tidb2\"")).unwrap_err();
        assert!(e.to_string().contains("no command for 'kill'"), "{e}");
        let e = check_scenario(&c, &scenario("\"isolate n2\"")).unwrap_err();
        assert!(e.to_string().contains("no node 'n2'"), "{e}");
        let e = check_scenario(&c, &scenario("\"isolate leader\"")).unwrap_err();
        assert!(e.to_string().contains("named nodes only"), "{e}");
    }

    #[tokio::test]
    async fn a_command_reports_its_status_and_output() {
        let ok = run_command("echo hello; echo oops >&2", COMMAND_TIMEOUT)
            .await
            .unwrap();
        assert!(ok.succeeded());
        assert_eq!(ok.output, "hello\noops");
        let bad = run_command("exit 3", COMMAND_TIMEOUT).await.unwrap();
        assert_eq!(bad.status, Some(3));
        assert!(bad.summary().contains("exit 3"), "{}", bad.summary());
        let slow = run_command("sleep 5", Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(slow.status, None);
    }

    /// Past the timeout, everything the command started is killed, not only its shell.
    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed_with_everything_it_started() {
        let tag = format!("31.{}", std::process::id());
        let o = run_command(
            &format!("sleep {tag} & sleep {tag}"),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        assert_eq!(o.status, None);
        assert!(o.output.contains("timed out"), "{}", o.output);
        std::thread::sleep(Duration::from_millis(200));
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&format!("sleep {tag}")))
            .collect();
        assert!(left.is_empty(), "still running: {left:?}");
    }
}
