//! Checks that a fault is really in force: TCP connection attempts from inside namespaces.

use crate::error::{Error, Result};
use crate::lab::process::netns_path;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Whether a TCP connection to `to` succeeds within `timeout`, tried from inside `netns`
/// (or from the host, if `None`).
pub fn can_connect(netns: Option<&str>, to: SocketAddr, timeout: Duration) -> Result<bool> {
    let ns = match netns {
        Some(n) => {
            Some(File::open(netns_path(n)).map_err(Error::io(format!("open namespace {n}")))?)
        }
        None => None,
    };
    // setns changes only the calling thread's namespace: do it on a thread of its own.
    std::thread::spawn(move || {
        if let Some(ns) = ns {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io("enter namespace")(e.into()))?;
        }
        Ok(TcpStream::connect_timeout(&to, timeout).is_ok())
    })
    .join()
    .unwrap_or_else(|_| Err(Error::Invalid("probe thread panicked".into())))
}
