//! Syncthing across a [`Link`]: the baseline of the replication bench's LAN case (a-lan),
//! where each tool's two ends sit in their own network namespace.
//!
//! `shared/bench/syncthing-baseline.sh` binds every address to 127.0.0.1, so it cannot put
//! its instances on either side of a link; this runs the same replication the same way
//! (Debian's `syncthing`, a send-only folder on a hard-linked copy of the library, a
//! receive-only one on the other end, TCP only, discovery, relays, NAT traversal, reports and
//! upgrades off) with instance A in host 0's namespace and B in host 1's, talking over the
//! veth. Each instance's REST API listens on its namespace's loopback and is reached with
//! `ip netns exec … curl`. It times and measures what the script does: scan, transfer, both
//! instances' CPU during the transfer, their peak RSS, and checks every file arrived intact.
//! Like the script, it installs Debian's `syncthing` and `curl` when they are missing (root).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::netns::{Host, Link};

/// One Syncthing replication's figures.
#[derive(Debug, Clone, Copy)]
pub struct SyncthingRun {
    /// Seconds until the sender had scanned the library.
    pub scan_s: f64,
    /// Seconds from the receiver's folder being added until it held every file.
    pub transfer_s: f64,
    /// utime + stime of both instances over the transfer, in seconds.
    pub cpu_s: f64,
    /// The sender's peak RSS (`VmHWM`), in KiB.
    pub rss_sender_kb: f64,
    /// The receiver's peak RSS, in KiB.
    pub rss_receiver_kb: f64,
}

/// The port every instance's REST API listens on, on its namespace's loopback.
const GUI: &str = "127.0.0.1:8384";
/// The port each instance listens on for the other, on its link address.
const SYNC_PORT: u16 = 22000;
/// How long a scan or a transfer may take before the run is given up.
const LIMIT: Duration = Duration::from_secs(3600);

/// Replicates `library` (`files` files) from host 0 to host 1 of `link` with
/// Syncthing, in a new directory under `work`.
pub fn replicate_over(
    link: &Link,
    library: &Path,
    work: &Path,
    files: u64,
) -> Result<SyncthingRun> {
    install()?;
    fs::create_dir_all(work)?;
    let (src, dst) = (work.join("src"), work.join("dst"));
    let copied = Command::new("cp")
        .arg("-al")
        .arg(library)
        .arg(&src)
        .status()
        .context("running cp")?;
    if !copied.success() {
        bail!(
            "could not hard-link {} into {}",
            library.display(),
            src.display()
        );
    }
    fs::create_dir_all(src.join(".stfolder"))?;
    fs::create_dir_all(dst.join(".stfolder"))?;
    let key = format!("bench-{}", std::process::id());
    let a = Instance::start(link.host(0), &work.join("hA"), &key)?;
    let b = Instance::start(link.host(1), &work.join("hB"), &key)?;
    a.post("/rest/config/devices", &b.device_entry())?;
    b.post("/rest/config/devices", &a.device_entry())?;
    wait(Duration::from_secs(120), "the instances to connect", || {
        let c = a.get("/rest/system/connections")?;
        Ok(c["connections"][&b.id]["connected"] == true)
    })?;
    let folder = |path: &Path, kind: &str| {
        serde_json::json!({
            "id": "bench", "label": "bench", "path": path, "type": kind,
            "fsWatcherEnabled": false, "rescanIntervalS": 86400, "caseSensitiveFS": false,
            "devices": [{"deviceID": a.id}, {"deviceID": b.id}],
        })
    };
    let start = Instant::now();
    a.post("/rest/config/folders", &folder(&src, "sendonly"))?;
    wait(LIMIT, "A's scan", || a.done(files))?;
    let scan_s = start.elapsed().as_secs_f64();
    let cpu_before = a.cpu_s()? + b.cpu_s()?;
    let start = Instant::now();
    b.post("/rest/config/folders", &folder(&dst, "receiveonly"))?;
    wait(LIMIT, "the transfer", || b.done(files))?;
    let transfer_s = start.elapsed().as_secs_f64();
    let cpu_s = a.cpu_s()? + b.cpu_s()? - cpu_before;
    let (rss_sender_kb, rss_receiver_kb) = (a.peak_rss_kb()?, b.peak_rss_kb()?);
    drop((a, b));
    same_tree(&src, &dst)?;
    Ok(SyncthingRun {
        scan_s,
        transfer_s,
        cpu_s,
        rss_sender_kb,
        rss_receiver_kb,
    })
}

/// Installs Debian's `syncthing` and `curl` if either is missing.
fn install() -> Result<()> {
    let missing: Vec<&str> = ["syncthing", "curl"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let install = [&["install", "-y", "-q"][..], &missing].concat();
    // As the script does: install, and if that fails, update the lists and try again.
    let installed = apt(&install) || (apt(&["update", "-q"]) && apt(&install));
    if !installed {
        bail!("cannot install {} (apt-get, as root)", missing.join(" "));
    }
    Ok(())
}

/// A running Syncthing in a namespace. Shut down on drop.
struct Instance {
    host: Host,
    key: String,
    id: String,
    child: std::process::Child,
    /// The process doing the work (the child itself, or the worker a monitor started).
    pid: u32,
}

impl Instance {
    fn start(host: &Host, home: &Path, key: &str) -> Result<Self> {
        let made = Command::new("syncthing")
            .arg("generate")
            .arg(format!("--home={}", home.display()))
            .arg("--no-default-folder")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running syncthing (the Syncthing baseline script installs it)")?;
        if !made.success() {
            bail!("syncthing generate failed for {}", home.display());
        }
        let config = home.join("config.xml");
        let xml = fs::read_to_string(&config)?;
        let listen = format!("tcp://{}:{SYNC_PORT}", host.address);
        fs::write(&config, lan_only(&xml, &listen)?)?;
        let out = Command::new("syncthing")
            .arg("serve")
            .arg(format!("--home={}", home.display()))
            .arg("--device-id")
            .output()?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if id.is_empty() {
            bail!("syncthing printed no device ID for {}", home.display());
        }
        let log = fs::File::create(home.join("log.txt"))?;
        let child = host
            .command("syncthing")
            .arg("serve")
            .arg(format!("--home={}", home.display()))
            .args(["--no-browser", "--no-restart", "--no-upgrade"])
            .arg(format!("--gui-address=http://{GUI}"))
            .arg(format!("--gui-apikey={key}"))
            .envs([
                ("STNODEFAULTFOLDER", "1"),
                ("STNOUPGRADE", "1"),
                ("STNORESTART", "1"),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting syncthing")?;
        let mut instance = Self {
            host: host.clone(),
            key: key.to_owned(),
            id,
            pid: child.id(),
            child,
        };
        wait(Duration::from_secs(60), "Syncthing to answer", || {
            Ok(instance
                .get("/rest/system/ping")
                .is_ok_and(|v| v["ping"] == "pong"))
        })?;
        if let Some(worker) = child_of(instance.pid) {
            instance.pid = worker;
        }
        Ok(instance)
    }

    /// This instance as the other one's device entry.
    fn device_entry(&self) -> serde_json::Value {
        serde_json::json!({
            "deviceID": self.id,
            "name": self.host.netns,
            "addresses": [format!("tcp://{}:{SYNC_PORT}", self.host.address)],
        })
    }

    /// Whether the folder holds all `files` and has nothing left to do.
    fn done(&self, files: u64) -> Result<bool> {
        let s = self.get("/rest/db/status?folder=bench")?;
        Ok(s["state"] == "idle"
            && s["needFiles"] == 0
            && s["localFiles"] == files
            && s["globalFiles"] == files
            && s["localBytes"] == s["globalBytes"])
    }

    fn get(&self, path: &str) -> Result<serde_json::Value> {
        self.api("GET", path, None)
    }

    fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        self.api("POST", path, Some(body))
    }

    fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let mut curl = self.host.command("curl");
        curl.args(["-sS", "-f", "-m", "30", "-X", method])
            .args(["-H", &format!("X-API-Key: {}", self.key)]);
        if let Some(body) = body {
            curl.args([
                "-H",
                "Content-Type: application/json",
                "-d",
                &body.to_string(),
            ]);
        }
        let out = curl.arg(format!("http://{GUI}{path}")).output()?;
        if !out.status.success() {
            bail!(
                "{method} {path}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn cpu_s(&self) -> Result<f64> {
        crate::bench::cpu_seconds(self.pid)
    }

    fn peak_rss_kb(&self) -> Result<f64> {
        crate::bench::peak_rss_kb(self.pid)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.post("/rest/system/shutdown", &serde_json::Value::Null);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `config.xml` with Syncthing listening on `listen` only and every way off the machine
/// (global and local discovery, relays, NAT traversal, STUN, reports, upgrades) off.
fn lan_only(xml: &str, listen: &str) -> Result<String> {
    let mut xml = xml.to_owned();
    for (tag, value) in [
        ("listenAddress", listen),
        ("globalAnnounceEnabled", "false"),
        ("localAnnounceEnabled", "false"),
        ("relaysEnabled", "false"),
        ("natEnabled", "false"),
        ("startBrowser", "false"),
        ("urAccepted", "-1"),
        ("urSeen", "3"),
        ("autoUpgradeIntervalH", "0"),
        ("crashReportingEnabled", "false"),
        ("stunKeepaliveStartS", "0"),
        ("stunKeepaliveMinS", "0"),
        ("announceLANAddresses", "false"),
    ] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let Some(at) = xml.find(&open) else {
            bail!("Syncthing's config.xml has no <{tag}>: another version of Syncthing?");
        };
        let inner = at + open.len();
        let end = inner + xml[inner..].find(&close).context("unclosed tag")?;
        xml.replace_range(inner..end, value);
    }
    Ok(xml)
}

/// A child process of `pid`, if it has one (Syncthing's monitor starts a worker, from any of
/// its threads).
fn child_of(pid: u32) -> Option<u32> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .find_map(|children| children.split_whitespace().next()?.parse().ok())
}

/// Polls `check` every 200 ms until it says yes; fails after `limit`, naming `what` (and
/// the last error, if the check failed).
fn wait(limit: Duration, what: &str, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let end = Instant::now() + limit;
    loop {
        let last = match check() {
            Ok(true) => return Ok(()),
            Ok(false) => None,
            Err(e) => Some(e),
        };
        if Instant::now() >= end {
            bail!(
                "Syncthing: gave up waiting for {what} after {} s{}",
                limit.as_secs(),
                last.map_or(String::new(), |e| format!(" ({e:#})"))
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Checks that `dst` holds every file of `src` (but `.stfolder`) with the same bytes.
fn same_tree(src: &Path, dst: &Path) -> Result<()> {
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    let mut files = 0u64;
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(src.join(&rel))? {
            let entry = entry?;
            let name = rel.join(entry.file_name());
            if name == Path::new(".stfolder") {
                continue;
            }
            if entry.file_type()?.is_dir() {
                stack.push(name);
            } else {
                let copy = fs::read(dst.join(&name))
                    .with_context(|| format!("Syncthing's copy of {}", name.display()))?;
                if fs::read(src.join(&name))? != copy {
                    bail!("Syncthing's copy of {} differs", name.display());
                }
                files += 1;
            }
        }
    }
    if files == 0 {
        bail!("Syncthing replicated an empty library");
    }
    Ok(())
}
