//! Checks that a fault is really in force: TCP connection attempts from inside namespaces.

use crate::error::Result;
use crate::lab::net::{reach, Reach};
use std::net::SocketAddr;
use std::time::Duration;

/// Whether a TCP connection to `to` succeeds within `timeout`, tried from inside `netns`
/// (or from the host, if `None`).
pub fn can_connect(netns: Option<&str>, to: SocketAddr, timeout: Duration) -> Result<bool> {
    Ok(reach(netns, to, timeout)? == Reach::Connected)
}
