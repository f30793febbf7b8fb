//! The library's typed errors and the exit codes they map to.

use std::path::PathBuf;

/// Exit codes of the `perseus` binary.
pub mod exit {
    /// Everything asked for was done.
    pub const OK: i32 = 0;
    /// Something failed while running (a node did not come up, a command failed).
    pub const FAILURE: i32 = 1;
    /// The command line or an input file was wrong.
    pub const USAGE: i32 = 2;
    /// The machine lacks something: root, a binary, a free address range.
    pub const ENVIRONMENT: i32 = 3;
    /// The run completed, and its record shows correctness violations (stale reads, lost
    /// writes): see `summary.json`.
    pub const VIOLATIONS: i32 = 4;
    /// An expectation on the figures did not hold (`perseus check`, or a scenario's
    /// `expect`).
    pub const EXPECTATIONS: i32 = 5;
    /// Stopped by Ctrl-C or SIGTERM (after cleaning up).
    pub const INTERRUPTED: i32 = 130;
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown database '{name}'; known databases: {known} (perseus list shows them)")]
    UnknownDatabase { name: String, known: String },

    #[error("{binary} not found; {how}")]
    MissingBinary { binary: String, how: String },

    #[error("{what} needs root (network namespaces and nftables); run it again with sudo")]
    NotRoot { what: String },

    #[error("lab '{0}' already exists; use it, or remove it first with: perseus down --lab {0}")]
    LabExists(String),

    #[error("no lab named '{name}'{hint}")]
    NoSuchLab { name: String, hint: String },

    #[error("no node '{node}' in lab '{lab}'; its nodes are: {nodes}")]
    NoSuchNode {
        node: String,
        lab: String,
        nodes: String,
    },

    #[error("address range {subnet} is already in use on this host ({by}); choose another with --subnet, inside 198.18.0.0/15")]
    SubnetInUse { subnet: String, by: String },

    #[error(
        "no free /24 left in 198.18.0.0/15 for a new lab; remove old labs with: perseus down --all"
    )]
    NoFreeSubnet,

    #[error("node {node} did not become ready within {secs} s ({why}); last lines of {}:\n{tail}", log.display())]
    NodeNotReady {
        node: String,
        secs: u64,
        why: String,
        log: PathBuf,
        tail: String,
    },

    #[error("node {node} did not become ready within {secs} s: {path}, so the lab's network drops traffic between its nodes; something on this machine changed the lab's namespaces, links or rules while it came up (`perseus status` lists the labs)")]
    NodesCutOff {
        node: String,
        secs: u64,
        path: String,
    },

    #[error("the cluster did not become steady within {secs} s ({why})")]
    NotSteady { secs: u64, why: String },

    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Invalid(String),

    /// The container engine (Docker, or Podman's Docker-compatible API) could not be
    /// reached, or refused what was asked.
    #[error("container engine: {0}")]
    Engine(String),

    #[error("fault check failed: {0}")]
    FaultNotInForce(String),

    /// A node's disk layer could not be mounted, reached or told what to do.
    #[error("disk layer: {0}")]
    Disk(String),

    #[error("{0}")]
    Database(String),

    #[error("malformed {what} {}: line {line}: {why}", path.display())]
    Malformed {
        what: String,
        path: PathBuf,
        line: usize,
        why: String,
    },

    #[error("not reachable: {0}; check the addresses and that the cluster is up")]
    Unreachable(String),

    #[error("fault command failed, the run stopped: {0}")]
    FaultCommand(String),

    #[error("interrupted; the lab was torn down")]
    Interrupted,

    #[error("stopped early: {why}; the results of the run until then are in {dir}")]
    StoppedEarly {
        why: String,
        dir: std::path::PathBuf,
    },

    #[error("{lost} acknowledged writes lost and {violations} correctness violations (stale reads, lost writes, phantoms) in the record: see correctness in {summary}")]
    Violations {
        lost: u64,
        violations: u64,
        summary: PathBuf,
    },

    #[error("{failed} of {total} expectations did not hold")]
    Expectations { failed: usize, total: usize },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::UnknownDatabase { .. }
            | Error::NoSuchLab { .. }
            | Error::NoSuchNode { .. }
            | Error::LabExists(_)
            | Error::Invalid(_)
            | Error::Malformed { .. } => exit::USAGE,
            Error::MissingBinary { .. }
            | Error::NotRoot { .. }
            | Error::SubnetInUse { .. }
            | Error::NoFreeSubnet
            | Error::Unreachable(_)
            | Error::NodesCutOff { .. }
            | Error::Engine(_)
            | Error::Disk(_) => exit::ENVIRONMENT,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Violations { .. } => exit::VIOLATIONS,
            Error::Expectations { .. } => exit::EXPECTATIONS,
            _ => exit::FAILURE,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
