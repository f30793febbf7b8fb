//! The disk layer on its own (`perseus disk-layer`, a real FUSE mount): what goes through
//! it reads back as from a plain directory; a power cut drops exactly what was never
//! synced; each mode does what it says; and it leaves nothing mounted when it stops.

use crate::support::*;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A layer served over a backing directory of its own; stopped and unmounted when dropped.
struct Layer {
    dir: PathBuf,
    child: Child,
}

impl Layer {
    fn start(tag: &str) -> Layer {
        assert!(
            nix::unistd::geteuid().is_root() && Path::new("/dev/fuse").exists(),
            "the disk layer tests need root and /dev/fuse"
        );
        let dir = std::env::temp_dir().join(format!("perseus-dl-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for d in ["back", "mnt"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let child = perseus()
            .args(["disk-layer", "--backing"])
            .arg(dir.join("back"))
            .arg("--mount")
            .arg(dir.join("mnt"))
            .arg("--socket")
            .arg(dir.join("ctl"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start perseus disk-layer");
        let layer = Layer { dir, child };
        let started = Instant::now();
        while !layer.mounted() || layer.ask("mode").is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the layer did not mount"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        layer
    }

    fn mnt(&self) -> PathBuf {
        self.dir.join("mnt")
    }

    fn back(&self) -> PathBuf {
        self.dir.join("back")
    }

    fn mounted(&self) -> bool {
        let m = self.mnt();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(m.to_str().unwrap()))
    }

    /// The layer's answer to `request`, as `perseus` itself asks.
    fn ask(&self, request: &str) -> Option<String> {
        let r: perseus::disk::Request = request.parse().unwrap();
        perseus::disk::ask(&self.dir.join("ctl"), &r).ok()
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        let _ = self.ask("set healthy");
        let _ = self.ask("stop");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.mounted() {
            let _ = nix::mount::umount2(&self.mnt(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The same operations on a plain directory and through the layer, with the results
/// compared: file contents, sizes, names, kinds and modes.
fn exercise(root: &Path) -> Vec<String> {
    let mut seen = Vec::new();
    let p = |n: &str| root.join(n);
    fs::write(p("a"), b"hello world").unwrap();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(p("a"))
        .unwrap();
    f.seek(SeekFrom::Start(6)).unwrap();
    f.write_all(b"WORLD, and more").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    seen.push(s);
    f.set_len(8).unwrap();
    // A hole: written past the end.
    f.seek(SeekFrom::Start(20)).unwrap();
    f.write_all(b"!").unwrap();
    drop(f);
    seen.push(format!("{:?}", fs::read(p("a")).unwrap()));
    let mut app = OpenOptions::new().append(true).open(p("a")).unwrap();
    app.write_all(b"tail").unwrap();
    drop(app);
    seen.push(format!("{:?}", fs::read(p("a")).unwrap()));
    fs::create_dir(p("d")).unwrap();
    fs::rename(p("a"), p("d/b")).unwrap();
    fs::hard_link(p("d/b"), p("c")).unwrap();
    std::os::unix::fs::symlink("d/b", p("l")).unwrap();
    fs::set_permissions(p("c"), fs::Permissions::from_mode(0o600)).unwrap();
    seen.push(
        fs::read_to_string(p("l"))
            .unwrap_or_default()
            .len()
            .to_string(),
    );
    fs::write(p("d/new"), b"x").unwrap();
    fs::rename(p("d/new"), p("d/b")).unwrap();
    seen.push(fs::read_to_string(p("d/b")).unwrap());
    seen.push(fs::read_to_string(p("c")).unwrap().len().to_string());
    fs::remove_file(p("c")).unwrap();
    let mut names: Vec<String> = walk(root);
    names.sort();
    seen.extend(names);
    seen
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        out.push(format!(
            "{} {:o} {} {}",
            e.file_name().to_string_lossy(),
            m.mode(),
            if m.is_dir() { 0 } else { m.size() },
            m.nlink()
        ));
        if m.is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[test]
fn what_goes_through_the_layer_reads_back_as_from_a_plain_directory() {
    let layer = Layer::start("plain");
    let plain = layer.dir.join("plain");
    fs::create_dir_all(&plain).unwrap();
    assert_eq!(exercise(&layer.mnt()), exercise(&plain));
    // Nothing synced: the backing directory has the names, metadata passes straight
    // through, but none of the data.
    assert!(layer.back().join("d/b").exists());
    assert_eq!(fs::metadata(layer.back().join("d/b")).unwrap().len(), 0);
    assert_eq!(layer.ask("mode").as_deref(), Some("healthy"));
}

#[test]
fn a_power_cut_drops_exactly_what_was_never_synced() {
    let layer = Layer::start("cut");
    let m = layer.mnt();
    // Synced by fsync, then more written and not synced.
    let mut f = fs::File::create(m.join("log")).unwrap();
    f.write_all(b"synced;").unwrap();
    f.sync_all().unwrap();
    f.write_all(b"lost").unwrap();
    drop(f);
    // Written through O_DSYNC: synced as written.
    let mut d = OpenOptions::new()
        .create(true)
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(m.join("dsync"))
        .unwrap();
    d.write_all(b"kept").unwrap();
    drop(d);
    // Never synced at all.
    fs::write(m.join("never"), b"gone").unwrap();
    assert_eq!(fs::read(m.join("log")).unwrap(), b"synced;lost");
    let dropped = layer.ask("drop-unsynced").unwrap();
    assert_eq!(dropped, "dropped 8", "'lost' and 'gone'");
    assert_eq!(fs::read(m.join("log")).unwrap(), b"synced;");
    assert_eq!(fs::read(m.join("dsync")).unwrap(), b"kept");
    assert_eq!(
        fs::read(m.join("never")).unwrap(),
        b"",
        "the file is there, empty"
    );
    assert_eq!(layer.ask("drop-unsynced").as_deref(), Some("dropped 0"));
}

#[test]
fn each_mode_does_what_it_says_and_heals() {
    let layer = Layer::start("modes");
    let m = layer.mnt();
    fs::write(m.join("f"), b"data").unwrap();
    let write = |p: &Path| -> std::io::Result<()> {
        let mut f = OpenOptions::new().append(true).open(p)?;
        f.write_all(b"x")?;
        f.sync_data()
    };

    layer.ask("set full").unwrap();
    let e = fs::write(m.join("g"), b"y").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    assert_eq!(fs::read(m.join("f")).unwrap(), b"data", "reads still work");

    layer.ask("set error 100%").unwrap();
    let e = write(&m.join("f")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");

    layer.ask("set slow 300ms").unwrap();
    let t = Instant::now();
    write(&m.join("f")).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "a write and a sync each wait 300 ms: {:?}",
        t.elapsed()
    );

    // A stalled disk holds a reader until the mode changes.
    layer.ask("set stall").unwrap();
    let path = m.join("f");
    let reader = std::thread::spawn(move || fs::read(path).map(|b| b.len()));
    std::thread::sleep(Duration::from_secs(1));
    assert!(!reader.is_finished(), "a read went through a stalled disk");
    assert_eq!(layer.ask("mode").as_deref(), Some("stall"));
    layer.ask("set healthy").unwrap();
    assert_eq!(
        reader.join().unwrap().unwrap(),
        5,
        "data and the slow write's x (the failed one wrote nothing)"
    );
}

/// A layer that is stopped lets stalled operations go and unmounts.
#[test]
fn a_stopped_layer_lets_go_and_leaves_no_mount() {
    let mut layer = Layer::start("stop");
    let m = layer.mnt();
    fs::write(m.join("f"), b"data").unwrap();
    layer.ask("set stall").unwrap();
    let path = m.join("f");
    let reader = std::thread::spawn(move || fs::read(path));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(layer.ask("stop").as_deref(), Some("ok"));
    let _ = reader.join().unwrap();
    let started = Instant::now();
    while layer.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the layer did not exit"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!layer.mounted(), "still mounted after stop");
    assert!(!layer.dir.join("ctl").exists(), "its socket is removed");
}
