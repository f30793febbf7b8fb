//! The container engine Perseus drives: Docker, or Podman through its Docker-compatible
//! API, spoken over the engine's socket (never by parsing a CLI's output).
//!
//! Everything Perseus makes through it (containers, networks, volumes) carries the label
//! [`LAB_LABEL`]`=NAME`, so a lab's containers are found and removed by label, also after
//! Perseus was killed before it wrote them down. The calls block: they run on a small
//! runtime of the engine's own, so they can be made from code that is not async.

use crate::error::{Error, Result};
use bollard::query_parameters as q;
use bollard::Docker;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The label on everything Perseus makes, with its lab's name as the value.
pub const LAB_LABEL: &str = "perseus.lab";

/// The image of the containers that hold a node's network namespace (see
/// [`Engine::sandbox_image`]).
pub const SANDBOX_IMAGE: &str = "perseus-sandbox:1";

/// Which engine answers on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    Docker,
    Podman,
}

impl Flavour {
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Docker => "docker",
            Flavour::Podman => "podman",
        }
    }

    /// The socket used when none is given (`DOCKER_HOST` or `CONTAINER_HOST` give one).
    fn default_socket(self) -> String {
        match self {
            Flavour::Docker => std::env::var("DOCKER_HOST")
                .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string()),
            Flavour::Podman => std::env::var("CONTAINER_HOST")
                .or_else(|_| std::env::var("DOCKER_HOST"))
                .unwrap_or_else(|_| "unix:///run/podman/podman.sock".to_string()),
        }
    }
}

/// An image found in the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image's id (`sha256:…`).
    pub id: String,
    /// Its registry digest (`NAME@sha256:…`), where it came from a registry.
    pub digest: Option<String>,
}

/// Where a new container's network comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    /// Its own namespace, on `network` at `addr`.
    Own { network: String, addr: Ipv4Addr },
    /// The namespace of the running container named here.
    Of(String),
}

/// A container to make and start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    /// The lab it belongs to: the value of its [`LAB_LABEL`].
    pub lab: String,
    pub image: String,
    /// The program and its arguments, in place of the image's own entry point and command.
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `uid:gid`, or `None` for the image's own user.
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// `HOST:CONTAINER[:ro]` bind mounts.
    pub binds: Vec<String>,
    pub net: Net,
    pub hostname: Option<String>,
}

/// A container's state as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub running: bool,
    pub paused: bool,
    /// Its main process on this machine, while it runs.
    pub pid: Option<i32>,
}

/// What carried a lab's label, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labelled {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

impl Labelled {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

/// A running container of a compose project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// Its service (`com.docker.compose.service`).
    pub service: String,
    /// Its addresses, by network name.
    pub addrs: Vec<Ipv4Addr>,
}

/// The label compose puts on a project's containers, with the project's name.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label compose puts on a container, with its service's name.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";

/// A connection to the engine.
pub struct Engine {
    docker: Docker,
    socket: String,
    flavour: Flavour,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The engine's reply to a failed call, in one line.
fn why(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as B;
    let text = match e {
        B::DockerResponseServerError { message, .. } => message.clone(),
        B::IOError { err } => err.to_string(),
        B::SocketNotFoundError(p) => format!("no socket at {p}"),
        other => other.to_string(),
    };
    // An engine's reply is text from outside: one line, with nothing a terminal acts on.
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::terminal::printable(&line).into_owned()
}

fn status(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn label_filter(lab: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{LAB_LABEL}={lab}")])])
}

impl Engine {
    /// Connects to the engine of `flavour` at `socket` (`unix://PATH`; `None`: the
    /// environment's `DOCKER_HOST`/`CONTAINER_HOST`, else the engine's usual socket), and
    /// checks it answers.
    pub fn connect(flavour: Flavour, socket: Option<&str>) -> Result<Engine> {
        let socket = socket
            .map(str::to_string)
            .unwrap_or_else(|| flavour.default_socket());
        let Some(path) = socket.strip_prefix("unix://") else {
            return Err(Error::Engine(format!(
                "{socket}: only a local engine socket (unix://PATH) is supported"
            )));
        };
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Engine(format!(
                    "no {} engine answers at {path}: start it (e.g. systemctl start {}), or point {} at its socket",
                    flavour.name(),
                    flavour.name(),
                    if flavour == Flavour::Docker { "DOCKER_HOST" } else { "CONTAINER_HOST" },
                )))
            }
            _ => {}
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("perseus-engine")
            .enable_all()
            .build()
            .map_err(Error::io("start the container engine's runtime"))?;
        let docker = Docker::connect_with_unix(&socket, 120, bollard::API_DEFAULT_VERSION)
            .map_err(|e| Error::Engine(format!("{socket}: {}", why(&e))))?;
        let mut engine = Engine {
            docker,
            socket: socket.clone(),
            flavour,
            rt: Some(rt),
        };
        let docker = engine.docker.clone();
        let negotiated = engine.block(async move { docker.negotiate_version().await });
        engine.docker = negotiated.map_err(|e| {
            let w = why(&e);
            Error::Engine(if w.contains("ermission denied") {
                format!("permission denied on {path}: run as root, or as a member of the group that owns it")
            } else {
                format!("no {} engine answers at {path} ({w})", flavour.name())
            })
        })?;
        Ok(engine)
    }

    /// The socket this engine answers on, as `unix://PATH`.
    pub fn socket(&self) -> &str {
        &self.socket
    }

    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// Runs a call on the engine's runtime and waits for it.
    fn block<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let handle = self
            .rt
            .as_ref()
            .expect("the engine's runtime lives as long as it")
            .spawn(f);
        futures::executor::block_on(handle).expect("an engine call does not panic")
    }

    /// The image `name`, which must be here already: Perseus pulls nothing.
    pub fn image(&self, name: &str) -> Result<Image> {
        let (docker, n) = (self.docker.clone(), name.to_string());
        match self.block(async move { docker.inspect_image(&n).await }) {
            Ok(i) => Ok(Image {
                id: i.id.unwrap_or_default(),
                digest: i.repo_digests.and_then(|d| d.into_iter().next()),
            }),
            Err(e) if status(&e) == Some(404) => Err(Error::Engine(format!(
                "image {name} is not here; run `{} pull {name}` (or build it), then run again",
                self.flavour.name()
            ))),
            Err(e) => Err(Error::Engine(format!("image {name}: {}", why(&e)))),
        }
    }

    /// The image of the containers that only hold a node's network namespace and address
    /// while its servers come and go: an empty root, made here once, whose one process is
    /// this machine's `sleep` (its `/usr` is mounted read-only), so no image from a
    /// registry is needed for it.
    pub fn sandbox_image(&self) -> Result<String> {
        if self.image(SANDBOX_IMAGE).is_ok() {
            return Ok(SANDBOX_IMAGE.to_string());
        }
        let docker = self.docker.clone();
        let made = self.block(async move {
            use futures::StreamExt;
            let (repo, tag) = SANDBOX_IMAGE.split_once(':').expect("a tag");
            let options = q::CreateImageOptionsBuilder::new()
                .from_src("-")
                .repo(repo)
                .tag(tag)
                .build();
            // An empty tar archive: two blocks of zeros, padded to a record.
            let body = bollard::body_full(bytes::Bytes::from(vec![0u8; 10240]));
            let mut replies = docker.create_image(Some(options), Some(body), None);
            while let Some(reply) = replies.next().await {
                reply?;
            }
            Ok::<(), bollard::errors::Error>(())
        });
        made.map_err(|e| Error::Engine(format!("make image {SANDBOX_IMAGE}: {}", why(&e))))?;
        Ok(SANDBOX_IMAGE.to_string())
    }

    /// Makes a bridge network `name` of lab `lab` on `subnet` (`A.B.C.D/N`), whose host
    /// side is the link `bridge` with address `gateway`. Its nodes are not masqueraded:
    /// they reach nothing beyond this machine.
    pub fn create_network(
        &self,
        name: &str,
        lab: &str,
        subnet: &str,
        gateway: Ipv4Addr,
        bridge: &str,
    ) -> Result<()> {
        let request = bollard::models::NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            ipam: Some(bollard::models::Ipam {
                config: Some(vec![bollard::models::IpamConfig {
                    subnet: Some(subnet.to_string()),
                    gateway: Some(gateway.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            options: Some(HashMap::from([
                ("com.docker.network.bridge.name".into(), bridge.to_string()),
                (
                    "com.docker.network.bridge.enable_ip_masquerade".into(),
                    "false".into(),
                ),
            ])),
            labels: Some(HashMap::from([(LAB_LABEL.into(), lab.to_string())])),
            ..Default::default()
        };
        let docker = self.docker.clone();
        self.block(async move { docker.create_network(request).await })
            .map_err(|e| Error::Engine(format!("create network {name} ({subnet}): {}", why(&e))))?;
        Ok(())
    }

    /// Makes and starts `c`; returns its main process's pid on this machine.
    pub fn run(&self, c: &Container) -> Result<i32> {
        let mut host = bollard::models::HostConfig {
            binds: Some(c.binds.clone()),
            ..Default::default()
        };
        let mut networking = None;
        match &c.net {
            Net::Own { network, addr } => {
                host.network_mode = Some(network.clone());
                networking = Some(bollard::models::NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(
                        network.clone(),
                        bollard::models::EndpointSettings {
                            ipam_config: Some(bollard::models::EndpointIpamConfig {
                                ipv4_address: Some(addr.to_string()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    )])),
                });
            }
            Net::Of(other) => host.network_mode = Some(format!("container:{other}")),
        }
        let (program, args) = c.command.split_first().expect("a command has a program");
        let body = bollard::models::ContainerCreateBody {
            image: Some(c.image.clone()),
            entrypoint: Some(vec![program.clone()]),
            cmd: Some(args.to_vec()),
            env: Some(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: c.user.clone(),
            working_dir: c.workdir.clone(),
            hostname: c.hostname.clone(),
            labels: Some(HashMap::from([(LAB_LABEL.into(), c.lab.clone())])),
            host_config: Some(host),
            networking_config: networking,
            ..Default::default()
        };
        let (docker, name) = (self.docker.clone(), c.name.clone());
        let made = self.block(async move {
            let options = q::CreateContainerOptionsBuilder::new().name(&name).build();
            docker.create_container(Some(options), body).await?;
            docker
                .start_container(&name, None::<q::StartContainerOptions>)
                .await?;
            docker
                .inspect_container(&name, None::<q::InspectContainerOptions>)
                .await
        });
        let inspected =
            made.map_err(|e| Error::Engine(format!("start container {}: {}", c.name, why(&e))))?;
        let state = inspected.state.unwrap_or_default();
        match state.pid.filter(|&p| p > 0) {
            Some(pid) if state.running == Some(true) => Ok(pid as i32),
            _ => Err(Error::Engine(format!(
                "container {} exited as it started: {}",
                c.name,
                self.logs(&c.name, 15).unwrap_or_default().trim()
            ))),
        }
    }

    /// Container `name`'s state; `None` if there is no such container.
    pub fn state(&self, name: &str) -> Result<Option<State>> {
        let (docker, n) = (self.docker.clone(), name.to_string());
        match self.block(async move {
            docker
                .inspect_container(&n, None::<q::InspectContainerOptions>)
                .await
        }) {
            Ok(i) => {
                let s = i.state.unwrap_or_default();
                Ok(Some(State {
                    running: s.running == Some(true),
                    paused: s.paused == Some(true),
                    pid: s.pid.filter(|&p| p > 0).map(|p| p as i32),
                }))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(Error::Engine(format!("inspect {name}: {}", why(&e)))),
        }
    }

    /// The command line container `name` runs: its program and arguments.
    pub fn command(&self, name: &str) -> Result<Vec<String>> {
        let (docker, n) = (self.docker.clone(), name.to_string());
        let i = self
            .block(async move {
                docker
                    .inspect_container(&n, None::<q::InspectContainerOptions>)
                    .await
            })
            .map_err(|e| Error::Engine(format!("inspect {name}: {}", why(&e))))?;
        Ok(i.path
            .into_iter()
            .chain(i.args.unwrap_or_default())
            .collect())
    }

    /// The running containers of compose project `project`, by name; containers of other
    /// projects and of none are not among them.
    pub fn project(&self, project: &str) -> Result<Vec<Member>> {
        let docker = self.docker.clone();
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{PROJECT_LABEL}={project}")],
        )]);
        let found = self.block(async move {
            docker
                .list_containers(Some(
                    q::ListContainersOptionsBuilder::new()
                        .filters(&filters)
                        .build(),
                ))
                .await
        });
        let found =
            found.map_err(|e| Error::Engine(format!("list project {project}: {}", why(&e))))?;
        let mut members: Vec<Member> = found
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                let mut networks: Vec<(String, bollard::models::EndpointSettings)> = c
                    .network_settings
                    .and_then(|n| n.networks)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                networks.sort_by(|a, b| a.0.cmp(&b.0));
                Member {
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    service: labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
                    addrs: networks
                        .into_iter()
                        .filter_map(|(_, e)| e.ip_address?.parse().ok())
                        .collect(),
                }
            })
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(members)
    }

    /// The compose projects with a running container.
    pub fn projects(&self) -> Result<Vec<String>> {
        let docker = self.docker.clone();
        let filters = HashMap::from([("label".to_string(), vec![PROJECT_LABEL.to_string()])]);
        let found = self.block(async move {
            docker
                .list_containers(Some(
                    q::ListContainersOptionsBuilder::new()
                        .filters(&filters)
                        .build(),
                ))
                .await
        });
        let mut names: Vec<String> = found
            .map_err(|e| Error::Engine(format!("list compose projects: {}", why(&e))))?
            .into_iter()
            .filter_map(|c| c.labels?.get(PROJECT_LABEL).cloned())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Starts the stopped container `name` again, as it was made; returns its main
    /// process's pid.
    pub fn start(&self, name: &str) -> Result<i32> {
        let (docker, n) = (self.docker.clone(), name.to_string());
        let started = self.block(async move {
            docker
                .start_container(&n, None::<q::StartContainerOptions>)
                .await
        });
        match started {
            // Already running (304): as asked.
            Err(e) if status(&e) != Some(304) => {
                return Err(Error::Engine(format!("start {name}: {}", why(&e))))
            }
            _ => {}
        }
        match self.state(name)? {
            Some(State {
                running: true,
                pid: Some(pid),
                ..
            }) => Ok(pid),
            _ => Err(Error::Engine(format!(
                "container {name} exited as it started again: {}",
                self.logs(name, 15).unwrap_or_default().trim()
            ))),
        }
    }

    /// Kills container `name` (SIGKILL), if it runs; done when it has stopped.
    pub fn kill(&self, name: &str) -> Result<()> {
        let (docker, n) = (self.docker.clone(), name.to_string());
        let killed = self.block(async move {
            let options = q::KillContainerOptionsBuilder::new().signal("KILL").build();
            docker.kill_container(&n, Some(options)).await
        });
        match killed {
            Ok(()) => {}
            // Not running (409), or gone (404): nothing to kill.
            Err(e) if matches!(status(&e), Some(404 | 409)) => return Ok(()),
            Err(e) => return Err(Error::Engine(format!("kill {name}: {}", why(&e)))),
        }
        let t = Instant::now();
        while self.state(name)?.is_some_and(|s| s.running) {
            if t.elapsed() > Duration::from_secs(10) {
                return Err(Error::Engine(format!(
                    "container {name} still runs 10 s after it was killed"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Freezes (`true`) or thaws (`false`) every process of container `name`.
    pub fn pause(&self, name: &str, freeze: bool) -> Result<()> {
        let (docker, n) = (self.docker.clone(), name.to_string());
        let done = self.block(async move {
            if freeze {
                docker.pause_container(&n).await
            } else {
                docker.unpause_container(&n).await
            }
        });
        done.map_err(|e| {
            Error::Engine(format!(
                "{} {name}: {}",
                if freeze { "pause" } else { "unpause" },
                why(&e)
            ))
        })
    }

    /// Removes container `name` whatever its state, with its anonymous volumes; no error
    /// if it is not there.
    pub fn remove(&self, name: &str) -> Result<()> {
        let (docker, n) = (self.docker.clone(), name.to_string());
        let done = self.block(async move {
            let options = q::RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            docker.remove_container(&n, Some(options)).await
        });
        match done {
            Err(e) if status(&e) != Some(404) => Err(Error::Engine(format!(
                "remove container {name}: {}",
                why(&e)
            ))),
            _ => Ok(()),
        }
    }

    /// The last `lines` lines container `name` wrote to its standard output and error.
    pub fn logs(&self, name: &str, lines: usize) -> Result<String> {
        let (docker, n) = (self.docker.clone(), name.to_string());
        let tail = if lines == 0 {
            "all".to_string()
        } else {
            lines.to_string()
        };
        let out = self.block(async move {
            use futures::StreamExt;
            let options = q::LogsOptionsBuilder::new()
                .stdout(true)
                .stderr(true)
                .tail(&tail)
                .build();
            let mut stream = docker.logs(&n, Some(options));
            let mut text = Vec::new();
            while let Some(part) = stream.next().await {
                text.extend_from_slice(&part?.into_bytes());
            }
            Ok::<_, bollard::errors::Error>(text)
        });
        out.map(|t| String::from_utf8_lossy(&t).into_owned())
            .map_err(|e| Error::Engine(format!("logs of {name}: {}", why(&e))))
    }

    /// What carries lab `lab`'s label now (`None`: any lab's), with each name prefixed by
    /// its lab where `lab` is `None` (`LAB/NAME`).
    pub fn labelled(&self, lab: Option<&str>) -> Result<Labelled> {
        let docker = self.docker.clone();
        let filters = match lab {
            Some(l) => label_filter(l),
            None => HashMap::from([("label".to_string(), vec![LAB_LABEL.to_string()])]),
        };
        let found = self.block(async move {
            let containers = docker
                .list_containers(Some(
                    q::ListContainersOptionsBuilder::new()
                        .all(true)
                        .filters(&filters)
                        .build(),
                ))
                .await?;
            let networks = docker
                .list_networks(Some(
                    q::ListNetworksOptionsBuilder::new()
                        .filters(&filters)
                        .build(),
                ))
                .await?;
            let volumes = docker
                .list_volumes(Some(
                    q::ListVolumesOptionsBuilder::new()
                        .filters(&filters)
                        .build(),
                ))
                .await?;
            Ok::<_, bollard::errors::Error>((containers, networks, volumes))
        });
        let (containers, networks, volumes) =
            found.map_err(|e| Error::Engine(format!("list what Perseus made: {}", why(&e))))?;
        let named = |labels: Option<&HashMap<String, String>>, name: String| match lab {
            Some(_) => name,
            None => format!(
                "{}/{name}",
                labels
                    .and_then(|l| l.get(LAB_LABEL))
                    .map(String::as_str)
                    .unwrap_or("?")
            ),
        };
        Ok(Labelled {
            containers: containers
                .into_iter()
                .map(|c| {
                    let name = c
                        .names
                        .as_ref()
                        .and_then(|n| n.first())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_else(|| c.id.clone().unwrap_or_default());
                    named(c.labels.as_ref(), name)
                })
                .collect(),
            networks: networks
                .into_iter()
                .map(|n| named(n.labels.as_ref(), n.name.unwrap_or_default()))
                .collect(),
            volumes: volumes
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| named(Some(&v.labels), v.name))
                .collect(),
        })
    }

    /// Removes every container, network and volume of lab `lab`, found by its label:
    /// containers first, as the others are in use while they run.
    pub fn remove_lab(&self, lab: &str) -> Result<()> {
        let found = self.labelled(Some(lab))?;
        for c in &found.containers {
            self.remove(c)?;
        }
        for n in found.networks {
            let docker = self.docker.clone();
            let name = n.clone();
            match self.block(async move { docker.remove_network(&name).await }) {
                Err(e) if status(&e) != Some(404) => {
                    return Err(Error::Engine(format!("remove network {n}: {}", why(&e))))
                }
                _ => {}
            }
        }
        for v in found.volumes {
            let docker = self.docker.clone();
            let name = v.clone();
            match self.block(async move {
                docker
                    .remove_volume(&name, None::<q::RemoveVolumeOptions>)
                    .await
            }) {
                Err(e) if status(&e) != Some(404) => {
                    return Err(Error::Engine(format!("remove volume {v}: {}", why(&e))))
                }
                _ => {}
            }
        }
        Ok(())
    }
}
