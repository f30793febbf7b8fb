//! Perseus: what clients of a distributed database see when a node is cut off from its
//! peers, and when it comes back.
//!
//! Data flows one way: [`spec`] → [`lab`] → [`db`] + [`workload`] + [`schedule`] →
//! [`record`] → [`analysis`] → [`report`]. [`run`] is the orchestrator; [`watch`] runs the
//! workload against a lab and records it.

pub mod analysis;
pub mod clock;
pub mod cluster;
pub mod containers;
pub mod db;
pub mod disk;
pub mod error;
pub mod expect;
pub mod experiment;
pub mod fault;
pub mod files;
pub mod hosts;
pub mod lab;
pub mod nodeset;
pub mod record;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod size;
pub mod spec;
pub mod terminal;
pub mod watch;
pub mod workload;

pub use error::{Error, Result};
