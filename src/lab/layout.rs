//! What a database is told of the lab (or cluster) it runs in, and the processes it asks
//! the lab to start.

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// What a database is told of the lab it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub lab: String,
    pub nodes: Vec<NodeLayout>,
    /// Where the user keeps binaries no package installs (`--bin-dir`).
    pub bin_dir: Option<PathBuf>,
    /// The client's user and password, for a cluster Perseus did not start; `None`: the
    /// account the database's preset makes.
    pub credentials: Option<(String, String)>,
    /// A password made for this lab alone (random, kept in the lab's state, readable by
    /// root only), for presets whose servers take one; `None` outside a lab.
    pub secret: Option<String>,
    /// The server settings the user changed (`--set`), by knob name (`db::knob`); empty
    /// outside a lab.
    pub settings: std::collections::BTreeMap<String, String>,
    /// The image the servers run from, in a container lab (whose image may know users this
    /// machine does not); `None` elsewhere.
    pub image: Option<String>,
}

/// One node: its name, its address, and a directory of its own for data and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    pub name: String,
    pub addr: Ipv4Addr,
    pub dir: PathBuf,
    /// The port clients connect to, for a cluster Perseus did not start; `None`: the
    /// database's own.
    pub port: Option<u16>,
    /// Its other addresses, where it is more than one host (a node made of several
    /// containers): its peers' traffic may come from any of them.
    pub also: Vec<Ipv4Addr>,
}

impl Layout {
    /// A 3-node lab at 198.18.1.1-3 with directories /x/n1-3, for tests of command lines.
    #[cfg(test)]
    pub fn for_tests(bin_dir: Option<&str>) -> Layout {
        Layout {
            lab: "t".into(),
            nodes: (1..=3)
                .map(|i| NodeLayout {
                    name: format!("n{i}"),
                    addr: format!("198.18.1.{i}").parse().expect("an address"),
                    dir: PathBuf::from(format!("/x/n{i}")),
                    port: None,
                    also: Vec::new(),
                })
                .collect(),
            bin_dir: bin_dir.map(PathBuf::from),
            credentials: None,
            secret: None,
            settings: Default::default(),
            image: None,
        }
    }

    /// Whether the servers run in containers.
    pub fn containers(&self) -> bool {
        self.image.is_some()
    }

    /// Hands `path` and everything under it to the system user `user`, whom its server
    /// runs as. In containers, where this machine may lack that user (the image has its
    /// own), it is left as it is: the server then runs as the image's user.
    pub fn give(&self, path: &std::path::Path, user: &str) -> crate::error::Result<()> {
        if self.containers() && crate::files::user_ids(user).is_err() {
            return Ok(());
        }
        crate::files::chown_tree(path, user)
    }

    /// The lab's password if it has one, else `default` (a cluster Perseus did not start
    /// names its own account; see [`Layout::credentials`]).
    pub fn secret_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.secret.as_deref().unwrap_or(default)
    }

    /// The port clients of node `node` connect to: its own if given, else `default`.
    pub fn port(&self, node: usize, default: u16) -> u16 {
        self.nodes[node].port.unwrap_or(default)
    }

    /// Every node's addresses: its own, then its others ([`NodeLayout::also`]).
    pub fn addresses(&self) -> Vec<Vec<Ipv4Addr>> {
        self.nodes
            .iter()
            .map(|n| {
                std::iter::once(n.addr)
                    .chain(n.also.iter().copied())
                    .collect()
            })
            .collect()
    }

    /// The address and port clients of node `node` connect to.
    pub fn client_addr(&self, node: usize, default_port: u16) -> std::net::SocketAddr {
        (self.nodes[node].addr, self.port(node, default_port)).into()
    }

    /// The client's user and password: the given ones if any, else `default`.
    pub fn credentials<'a>(&'a self, default: (&'a str, &'a str)) -> (&'a str, &'a str) {
        match &self.credentials {
            Some((u, p)) => (u, p),
            None => default,
        }
    }
}

/// A process to start on a node, inside its namespace, in its directory. Its standard
/// output and error go to `<node dir>/<name>.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    pub name: String,
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The system user it runs as (root if `None`).
    pub user: Option<String>,
    /// In a container lab, the image it runs from where not the lab's own (a database of
    /// several components, each with an image); `None`: the lab's.
    pub image: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user this machine lacks is an error on its own servers, and no matter in
    /// containers, whose image has its own users.
    #[test]
    fn a_missing_user_matters_only_outside_containers() {
        let dir = std::env::temp_dir().join(format!("perseus-give-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut layout = Layout::for_tests(None);
        let e = layout.give(&dir, "no-such-user-here").unwrap_err();
        assert!(e.to_string().contains("no system user"), "{e}");
        layout.image = Some("img:1".into());
        layout.give(&dir, "no-such-user-here").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
