//! Sick disks: a node's data directory can sit on a layer Perseus serves (FUSE), which
//! passes every operation through to the real directory until a fault tells it to stall,
//! slow down, fail, be full, or lose what was written and never synced ([`Mode`],
//! [`fs`]). Each layer is one `perseus disk-layer` process, told what to do over a unix
//! socket beside the node's directory, one line each way ([`ask`]).

pub mod fs;
pub mod mode;
pub mod unsynced;

use crate::error::{Error, Result};
pub use mode::Mode;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// How a layer's answer to a request it cannot take begins (a mode's own text never does).
const REFUSED: &str = "refused: ";

/// How long an answer from a layer may take: a stalled disk still answers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A request to a layer, as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Its mode now.
    Mode,
    /// Behave as `Mode` says from now on.
    Set(Mode),
    /// Forget every unsynced write (a power cut); answers how many bytes.
    DropUnsynced,
    /// Unmount and exit.
    Stop,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Mode => f.write_str("mode"),
            Request::Set(m) => write!(f, "set {m}"),
            Request::DropUnsynced => f.write_str("drop-unsynced"),
            Request::Stop => f.write_str("stop"),
        }
    }
}

impl std::str::FromStr for Request {
    type Err = String;

    fn from_str(line: &str) -> std::result::Result<Request, String> {
        match line.trim() {
            "mode" => Ok(Request::Mode),
            "drop-unsynced" => Ok(Request::DropUnsynced),
            "stop" => Ok(Request::Stop),
            l => match l.strip_prefix("set ") {
                Some(m) => m.parse().map(Request::Set),
                None => Err(format!("unknown request '{l}'")),
            },
        }
    }
}

/// Sends `request` to the layer listening on `socket`, and returns its answer.
pub fn ask(socket: &Path, request: &Request) -> Result<String> {
    let why = |e: std::io::Error| {
        Error::Disk(format!(
            "{} ({}): {e}; is the node's disk layer running?",
            socket.display(),
            request
        ))
    };
    let mut s = UnixStream::connect(socket).map_err(why)?;
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(why)?;
    s.set_write_timeout(Some(ANSWER_TIMEOUT)).map_err(why)?;
    writeln!(s, "{request}").map_err(why)?;
    let mut line = String::new();
    BufReader::new(s.take_limited())
        .read_line(&mut line)
        .map_err(why)?;
    match line.trim_end().strip_prefix(REFUSED) {
        Some(e) => Err(Error::Disk(format!("{}: {e}", socket.display()))),
        None if line.is_empty() => Err(Error::Disk(format!(
            "{}: no answer to {request}",
            socket.display()
        ))),
        None => Ok(line.trim_end().to_string()),
    }
}

/// At most one short line is read from a layer.
trait TakeLimited {
    fn take_limited(self) -> std::io::Take<UnixStream>;
}

impl TakeLimited for UnixStream {
    fn take_limited(self) -> std::io::Take<UnixStream> {
        std::io::Read::take(self, 4096)
    }
}

/// Mounts a layer over `backing` at `mount` and serves it, with its control socket at
/// `socket`, until a `stop` request or SIGTERM/SIGINT; then it lets stalled operations go,
/// removes the socket and unmounts (lazily: what still has a file open there gets errors
/// once this process exits, which it should at once).
pub fn serve(backing: &Path, mount: &Path, socket: &Path) -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    // Signals are taken by one thread, which asks this layer to stop like anyone else.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals
        .thread_block()
        .map_err(|e| Error::Disk(format!("blocking signals: {e}")))?;
    let (layer, handle) =
        fs::Layer::new(backing).map_err(|e| Error::Disk(format!("{}: {e}", backing.display())))?;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("perseus".into()),
        fuser::MountOption::Subtype("perseus".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    config.acl = fuser::SessionACL::All;
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .map_err(|e| Error::Disk(format!("{}: {e}", socket.display())))?;
    let session = fuser::spawn_mount(layer, mount, &config).map_err(|e| {
        let _ = std::fs::remove_file(socket);
        Error::Disk(format!(
            "mounting {} over {}: {e}; a disk layer needs /dev/fuse and root",
            mount.display(),
            backing.display()
        ))
    })?;
    let stopper = socket.to_path_buf();
    std::thread::spawn(move || {
        if signals.wait().is_ok() {
            let _ = ask(&stopper, &Request::Stop);
        }
    });
    // Unmounted from outside (`perseus down` after its lab's state was lost): nothing is
    // left to serve.
    let (watched, sock) = (mount.to_path_buf(), socket.to_path_buf());
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        if !mounted(&watched) {
            let _ = std::fs::remove_file(&sock);
            std::process::exit(0);
        }
    });
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        if answer(conn, &handle) {
            break;
        }
    }
    handle.control.set(Mode::Healthy);
    let _ = std::fs::remove_file(socket);
    // Detached at once, even with files open in it: whatever still uses it fails when
    // this process ends and the kernel aborts the connection. What is unsynced then is
    // gone with the lab it belongs to.
    let detached = nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH);
    std::mem::forget(session);
    match detached {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => Ok(()),
        Err(e) => Err(Error::Disk(format!("unmounting {}: {e}", mount.display()))),
    }
}

/// Whether a file system other than its parent's is mounted at `path`.
fn mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        (Ok(m), Some(Ok(p))) => m.dev() != p.dev(),
        // A dead connection answers stat with an error: still mounted.
        (Err(_), _) => true,
        _ => false,
    }
}

/// Answers one connection; true if it asked the layer to stop.
fn answer(conn: UnixStream, handle: &fs::Handle) -> bool {
    let _ = conn.set_read_timeout(Some(ANSWER_TIMEOUT));
    let mut line = String::new();
    let Ok(clone) = conn.try_clone() else {
        return false;
    };
    if BufReader::new(clone.take_limited())
        .read_line(&mut line)
        .is_err()
    {
        return false;
    }
    let (reply, stop) = match line.parse::<Request>() {
        Ok(Request::Mode) => (handle.control.mode().to_string(), false),
        Ok(Request::Set(m)) => {
            handle.control.set(m);
            ("ok".to_string(), false)
        }
        Ok(Request::DropUnsynced) => (format!("dropped {}", handle.drop_unsynced()), false),
        Ok(Request::Stop) => ("ok".to_string(), true),
        Err(e) => (format!("{REFUSED}{e}"), false),
    };
    let mut conn = conn;
    let _ = writeln!(conn, "{reply}");
    stop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_back_as_they_are_written() {
        for r in [
            Request::Mode,
            Request::Set(Mode::Slow(Duration::from_millis(100))),
            Request::Set(Mode::Healthy),
            Request::DropUnsynced,
            Request::Stop,
        ] {
            assert_eq!(r.to_string().parse::<Request>(), Ok(r));
        }
        assert!("set sick".parse::<Request>().is_err());
        assert!("format c:".parse::<Request>().is_err());
    }
}
