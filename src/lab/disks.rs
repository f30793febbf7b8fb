//! The disk layers of a lab made with `--disk faulty`: each node's data directory is a
//! FUSE mount served by a `perseus disk-layer` process of its own ([`crate::disk`]), over
//! a backing directory in the lab's directory. Nothing of them outlives the lab: tearing
//! it down lets stalled operations go, stops the layers and unmounts whatever is left
//! under the lab's directory, also after Perseus itself was killed.

use super::{process, LabState};
use crate::disk::{self, Mode, Request};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a new layer may take to mount and answer.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(10);

/// One node's disk layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DiskLayer {
    pub pid: i32,
    pub start_time: u64,
    /// Where the node's data really is.
    pub backing: PathBuf,
    /// Where its servers see it: their data directory.
    pub mount: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl DiskLayer {
    fn ask(&self, request: &Request) -> Result<String> {
        disk::ask(&self.socket, request)
    }
}

/// Why disk layers cannot be made here, if they cannot.
pub fn refuses() -> Option<Error> {
    (!Path::new("/dev/fuse").exists()).then(|| {
        Error::Disk(
            "/dev/fuse is missing, so no node's disk can be served here: load the fuse module (modprobe fuse), or run without --disk faulty".into(),
        )
    })
}

/// Puts a layer under each node's data directory `data` (a name inside its directory),
/// mounted and answering when this returns. The state is saved as each layer starts.
pub fn mount(state: &mut LabState, data: &str) -> Result<()> {
    if let Some(e) = refuses() {
        return Err(e);
    }
    let exe = std::env::current_exe().map_err(Error::io("find the perseus binary"))?;
    let dir = state.dir().join("disks");
    std::fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
    for i in 0..state.nodes.len() {
        let name = state.nodes[i].name.clone();
        let layer = DiskLayer {
            pid: 0,
            start_time: 0,
            backing: dir.join(&name),
            mount: state.nodes[i].dir.join(data),
            socket: dir.join(format!("{name}.sock")),
            log: dir.join(format!("{name}.log")),
        };
        for d in [&layer.backing, &layer.mount] {
            std::fs::create_dir_all(d).map_err(Error::io(format!("create {}", d.display())))?;
        }
        let log = std::fs::File::create(&layer.log)
            .map_err(Error::io(format!("create {}", layer.log.display())))?;
        let err = log
            .try_clone()
            .map_err(Error::io(format!("open {}", layer.log.display())))?;
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(&exe)
            .arg("disk-layer")
            .arg("--backing")
            .arg(&layer.backing)
            .arg("--mount")
            .arg(&layer.mount)
            .arg("--socket")
            .arg(&layer.socket)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Its own group: a Ctrl-C at Perseus's terminal stops the run, which stops
            // the layers in order, after the servers above them.
            .process_group(0)
            .spawn()
            .map_err(Error::io(format!("start {} disk-layer", exe.display())))?;
        let pid = child.id() as i32;
        std::thread::spawn(move || child.wait());
        state.nodes[i].disk = Some(DiskLayer {
            pid,
            start_time: process::start_time(pid).unwrap_or(0),
            ..layer
        });
        state.save()?;
    }
    for n in &state.nodes {
        let Some(layer) = &n.disk else { continue };
        let started = Instant::now();
        loop {
            let mounted = mounts_under(&layer.mount).contains(&layer.mount);
            if mounted && layer.ask(&Request::Mode).is_ok() {
                break;
            }
            if started.elapsed() > MOUNT_TIMEOUT || !process::is_alive(layer.pid, layer.start_time)
            {
                return Err(Error::Disk(format!(
                    "{}'s disk layer did not mount {} within {} s; last lines of {}:\n{}",
                    n.name,
                    layer.mount.display(),
                    MOUNT_TIMEOUT.as_secs(),
                    layer.log.display(),
                    process::tail(&layer.log, 10)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Lets every stalled operation go (each layer healthy again), so the servers above can
/// be stopped. Layers that are gone are passed over.
pub fn release(state: &LabState) {
    for layer in state.nodes.iter().filter_map(|n| n.disk.as_ref()) {
        let _ = layer.ask(&Request::Set(Mode::Healthy));
    }
}

/// Stops every layer of the lab and unmounts whatever FUSE mount of Perseus's is left
/// under the lab's directory (a layer killed with SIGKILL leaves its mount behind).
pub fn unmount(state: &LabState) -> Result<()> {
    let layers: Vec<&DiskLayer> = state.nodes.iter().filter_map(|n| n.disk.as_ref()).collect();
    for layer in &layers {
        let _ = layer.ask(&Request::Stop);
    }
    let mut alive: Vec<(i32, u64)> = layers
        .iter()
        .filter(|l| process::is_alive(l.pid, l.start_time))
        .map(|l| (l.pid, l.start_time))
        .collect();
    // And any layer of this lab its state does not know (Perseus killed as it started one).
    alive.extend(strays(&state.dir().join("disks")));
    alive.sort_unstable();
    alive.dedup();
    process::stop_all(&alive, Duration::from_secs(3));
    for m in mounts_under(&state.dir()) {
        nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| Error::Disk(format!("unmounting {}: {e}", m.display())))?;
    }
    Ok(())
}

/// The `perseus disk-layer` processes whose socket is in `dir`, with their start times.
fn strays(dir: &Path) -> Vec<(i32, u64)> {
    let needle = format!("--socket\0{}/", dir.display());
    std::fs::read_dir("/proc")
        .map(|d| d.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("\0disk-layer\0") && c.contains(&needle)
            })
        })
        .filter_map(|pid| process::start_time(pid).map(|t| (pid, t)))
        .collect()
}

/// Each node's disk mode now ([`Mode::Healthy`] for a node without a layer).
pub fn modes(state: &LabState) -> Result<Vec<Mode>> {
    state
        .nodes
        .iter()
        .map(|n| match &n.disk {
            None => Ok(Mode::Healthy),
            Some(l) => l
                .ask(&Request::Mode)?
                .parse()
                .map_err(|e: String| Error::Disk(format!("{}'s disk layer: {e}", n.name))),
        })
        .collect()
}

/// Sets the mode of the layers of `nodes`.
pub fn set(state: &LabState, nodes: &[usize], mode: Mode) -> Result<()> {
    for &i in nodes {
        layer(state, i)?.ask(&Request::Set(mode))?;
    }
    Ok(())
}

/// Drops what the layers of `nodes` hold unsynced; returns how many bytes each dropped.
pub fn drop_unsynced(state: &LabState, nodes: &[usize]) -> Result<Vec<u64>> {
    nodes
        .iter()
        .map(|&i| {
            let answer = layer(state, i)?.ask(&Request::DropUnsynced)?;
            answer
                .strip_prefix("dropped ")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| Error::Disk(format!("unexpected answer '{answer}' to a drop")))
        })
        .collect()
}

/// Node `i`'s layer, or why a disk fault cannot reach it.
pub fn layer(state: &LabState, i: usize) -> Result<&DiskLayer> {
    state.nodes[i].disk.as_ref().ok_or_else(|| {
        Error::Invalid(format!(
            "{} has no disk layer: make the lab with --disk faulty",
            state.nodes[i].name
        ))
    })
}

/// Perseus's FUSE mounts at or under `dir` (from `/proc/self/mountinfo`), deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = ours(&info)
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found
}

/// The mount points of Perseus's layers in a `mountinfo` listing: file system type
/// `fuse` (or `fuse.perseus`), source `perseus`.
fn ours(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut r = right.split(' ');
            let (fstype, source) = (r.next()?, r.next()?);
            let ours = (fstype == "fuse" || fstype == "fuse.perseus") && source == "perseus";
            ours.then(|| unescape(left.split(' ').nth(4)?))?
        })
        .collect()
}

/// A mountinfo path, whose space, tab, newline and backslash are written in octal.
fn unescape(field: &str) -> Option<PathBuf> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            out.push(u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).ok()?, 8).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_perseus_fuse_mounts_are_ours_and_their_paths_are_unescaped() {
        let info = "\
36 25 0:32 / /var/lib/perseus/labs/a/n1/data rw,nosuid - fuse perseus rw,user_id=0
37 25 0:33 / /var/lib/perseus/labs/a\\040b/n2/data rw - fuse.perseus perseus rw
38 25 0:34 / /home/x/mnt rw - fuse.sshfs host:/ rw
39 25 0:35 / /var/lib/perseus/labs/a/n3/data rw - fuse bindfs rw
";
        assert_eq!(
            ours(info),
            vec![
                PathBuf::from("/var/lib/perseus/labs/a/n1/data"),
                PathBuf::from("/var/lib/perseus/labs/a b/n2/data"),
            ]
        );
    }
}
