//! `photomesh demo`: the whole product on one machine, with no setup.
//!
//! In a fresh temporary directory it creates three devices — a phone (`full`), a laptop
//! (`full`, which founds the mesh) and a NAS (`vault`) — each with its own home, pairs the
//! phone and the NAS through a QR code PNG *file* that the laptop's `pair` writes and
//! `join --qr` reads, runs the three nodes, drops a camera roll of sample photos
//! ([`crate::demo::samples::write_demo_library`]) into the phone's folder, and shows them
//! replicate, with a line or bar per device. Then it prints each device's `status`, stops the
//! nodes and removes the directory — also when it fails or is interrupted (`Workspace`'s
//! `Drop`), unless asked to keep it.
//!
//! Every device is a child process of the same binary (the `exe` given, normally
//! `std::env::current_exe()`), driven through the ordinary command line — the demo uses no
//! private door into the node. Progress is read from each home's index, as `status` does.
//!
//! The phone's photos are recorded by its node's folder watcher, with no command run. The
//! nodes meet at the laptop's loopback address (`[peers] addresses`) with mDNS off: on one
//! machine that is certain to work, where multicast may not be (a container, a VPN).

pub mod samples;

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};

use crate::lock::Mutex;
use std::time::{Duration, Instant};

use crate::home::Home;

/// How long the demo waits for the photos to reach every device before it gives up.
pub const REPLICATION_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the demo waits for one step (a node to listen, a device to join).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the progress display reads the devices' indexes.
pub const POLL: Duration = Duration::from_millis(200);

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Its directory or a file in it could not be made.
    #[error("cannot prepare the demo directory {path}: {source} (choose another with --dir)")]
    Setup {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The sample photos could not be written.
    #[error(transparent)]
    Samples(#[from] crate::demo::samples::SampleError),
    /// A device's command failed; its output says why.
    #[error("the {device}'s `photomesh {command}` failed:\n{output}")]
    Step {
        /// The device.
        device: &'static str,
        /// The command.
        command: String,
        /// What it printed.
        output: String,
    },
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
    /// A device's index could not be read.
    #[error("cannot read the {device}'s index: {problem}")]
    Read {
        /// The device.
        device: &'static str,
        /// What went wrong.
        problem: String,
    },
    /// Ctrl-C or SIGTERM.
    #[error("interrupted")]
    Interrupted,
}

/// What the demo is asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `photomesh` binary the devices run.
    pub exe: PathBuf,
    /// The directory in which the demo's own temporary directory is made.
    pub parent: PathBuf,
    /// Keep the temporary directory (and say where) instead of removing it.
    pub keep: bool,
    /// How many photos the phone takes (a short video comes on top).
    pub photos: usize,
}

/// How it went.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The photos and videos the phone recorded.
    pub items: u64,
    /// Whether every item reached every device, with the replica goal met everywhere.
    pub complete: bool,
    /// The demo's directory.
    pub dir: PathBuf,
    /// Whether it was kept (otherwise it is gone).
    pub kept: bool,
}

/// One of the demo's devices.
#[derive(Debug, Clone)]
struct Device {
    name: &'static str,
    role: &'static str,
    home: PathBuf,
}

/// The demo's directory and its running nodes: dropping it stops the nodes and removes the
/// directory (unless it is to be kept), whatever happened before.
struct Workspace {
    root: PathBuf,
    keep: bool,
    children: Vec<Running>,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // All at once: a node takes a moment to close its connections cleanly.
        for child in &mut self.children {
            child.terminate();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in &mut self.children {
            child.reap(deadline);
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A device's command running in the background, whose output lines are collected.
struct Running {
    device: &'static str,
    child: Child,
    lines: Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Waits for an output line that `matches`, and returns it.
    fn wait_for_line(
        &mut self,
        what: &str,
        cancel: &AtomicBool,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String, DemoError> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(DemoError::Interrupted);
            }
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if matches(&line) => return Ok(line),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    return Err(self.failure(what));
                }
            }
            if Instant::now() > deadline {
                return Err(DemoError::Timeout(format!(
                    "the {} did not {what} within {STEP_TIMEOUT:?}; it printed:\n{}",
                    self.device,
                    self.output()
                )));
            }
        }
    }

    /// Waits for the process to end; an error unless it ended well.
    fn wait_success(&mut self, what: &str, cancel: &AtomicBool) -> Result<(), DemoError> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(DemoError::Interrupted);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return if status.success() {
                    Ok(())
                } else {
                    Err(self.failure(what))
                };
            }
            if Instant::now() > deadline {
                return Err(DemoError::Timeout(format!(
                    "the {} did not {what} within {STEP_TIMEOUT:?}",
                    self.device
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        self.seen.lock().join("\n")
    }

    fn failure(&self, what: &str) -> DemoError {
        // Give the reader threads a moment to collect the last lines.
        std::thread::sleep(Duration::from_millis(100));
        DemoError::Step {
            device: self.device,
            command: what.to_owned(),
            output: self.output(),
        }
    }

    /// Asks the process to stop with SIGTERM: a node shuts down cleanly.
    fn terminate(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Waits for the process to end until `deadline`, then kills it.
    fn reap(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the demo. Progress and results go to standard output. `cancel` is set on Ctrl-C;
/// the demo then stops the nodes, removes its directory and returns
/// [`DemoError::Interrupted`].
pub fn run(options: &DemoOptions, cancel: &AtomicBool) -> Result<Outcome, DemoError> {
    let root = make_root(&options.parent)?;
    let mut ws = Workspace {
        root: root.clone(),
        keep: options.keep,
        children: Vec::new(),
    };
    let result = run_in(&mut ws, options, cancel);
    let kept = options.keep;
    // Stop the nodes and remove the directory now, so the last line can say so.
    drop(ws);
    match result {
        Ok((items, complete)) => {
            if kept {
                say(&format!(
                    "Kept the demo directory {} (each device's home is in it).",
                    root.display()
                ));
            } else {
                say(&format!(
                    "Stopped the nodes and removed {}.",
                    root.display()
                ));
            }
            Ok(Outcome {
                items,
                complete,
                dir: root,
                kept,
            })
        }
        Err(e) => {
            if kept {
                eprintln!("The demo directory is kept: {}", root.display());
            }
            Err(e)
        }
    }
}

fn run_in(
    ws: &mut Workspace,
    options: &DemoOptions,
    cancel: &AtomicBool,
) -> Result<(u64, bool), DemoError> {
    let root = ws.root.clone();
    say(&format!(
        "photomesh demo: three devices on this machine, in {}",
        root.display()
    ));
    let device = |name, role| Device {
        name,
        role,
        home: root.join(name),
    };
    let (laptop, phone, nas) = (
        device("laptop", "full"),
        device("phone", "full"),
        device("nas", "vault"),
    );
    let exe = &options.exe;

    // 1. Three new devices; the laptop founds the mesh.
    heading("1. Three new devices");
    for d in [&laptop, &phone, &nas] {
        command(exe, d, &["init", "--name", d.name], cancel)?;
        say(&format!("  {:<7} created in {}", d.name, d.home.display()));
    }

    // 2. Pairing by QR code file.
    heading("2. Pairing: the laptop shows a QR code, the phone and the NAS scan it");
    for d in [&phone, &nas] {
        pair(ws, exe, &laptop, d, cancel)?;
    }

    // 3. The phone's camera folder.
    let camera = root.join("phone-camera");
    std::fs::create_dir_all(&camera).map_err(|source| DemoError::Setup {
        path: camera.clone(),
        source,
    })?;
    command(
        exe,
        &phone,
        &[
            "folder",
            "add",
            &camera.to_string_lossy(),
            "--label",
            "Camera",
        ],
        cancel,
    )?;

    // 4. The nodes run; the laptop first, so the others know where it listens.
    heading("3. The nodes run");
    write_config(&laptop, None)?;
    let laptop_addr = start_node(ws, exe, &laptop, cancel)?;
    for d in [&phone, &nas] {
        // On one machine the nodes meet on loopback at the laptop's address; at home, LAN
        // discovery (mDNS) does this with nothing configured.
        write_config(d, Some(laptop_addr))?;
        start_node(ws, exe, d, cancel)?;
    }

    // 5. The phone takes photos.
    heading("4. The phone takes photos");
    let items = take_photos(&camera, options.photos)?;

    // 6. Replication, with progress.
    heading("5. Replication");
    let started = Instant::now();
    let complete = watch_replication(&[&phone, &laptop, &nas], items, cancel)?;
    if complete {
        say(&format!(
            "  Every photo is on every device, with 3 verified copies, after {:.1} s.",
            started.elapsed().as_secs_f64()
        ));
    }

    // 7. Each device's status, as `photomesh status` shows it.
    for d in [&phone, &laptop, &nas] {
        heading(&format!("$ photomesh status   (on the {})", d.name));
        print!("{}", command(exe, d, &["status"], cancel)?);
    }
    println!();
    if !complete {
        say(&format!(
            "NOT every photo reached every device within {REPLICATION_TIMEOUT:?}."
        ));
    }
    Ok((items, complete))
}

/// Pairs device `d` with the laptop through a QR code PNG file that `pair` writes and
/// `join --qr` reads.
fn pair(
    ws: &mut Workspace,
    exe: &Path,
    laptop: &Device,
    d: &Device,
    cancel: &AtomicBool,
) -> Result<(), DemoError> {
    let png = ws.root.join(format!("pair-{}.png", d.name));
    let png_arg = png.to_string_lossy().into_owned();
    let mut pair = spawn(
        exe,
        laptop,
        &[
            "pair",
            "--role",
            d.role,
            "--png",
            &png_arg,
            "--listen",
            "127.0.0.1:0",
            "--expires",
            "2m",
        ],
    )?;
    let result = (|| {
        pair.wait_for_line("show a pairing code", cancel, |l| {
            l.starts_with("QR code written to")
        })?;
        command(exe, d, &["join", "--qr", &png_arg], cancel)?;
        pair.wait_success("pair", cancel)
    })();
    ws.children.push(pair);
    result?;
    say(&format!(
        "  {:<7} joined as a {} device (QR code {})",
        d.name,
        d.role,
        png.display()
    ));
    Ok(())
}

/// Writes the demo's camera roll into `camera`; returns how many files (photos and a video).
fn take_photos(camera: &Path, photos: usize) -> Result<u64, DemoError> {
    let files = crate::demo::samples::write_demo_library(camera, photos, 2024)?;
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let items = files.len() as u64;
    say(&format!(
        "  {} photos and a video ({:.1} MB) written to {}",
        items - 1,
        bytes as f64 / 1e6,
        camera.display()
    ));
    say("  The phone's node watches its camera folder: it records each photo once the file is");
    say("  complete and tells the others, which start fetching at once. No command is run.");
    Ok(items)
}

/// Makes a fresh directory `photomesh-demo-XXXXXXXX` in `parent`.
fn make_root(parent: &Path) -> Result<PathBuf, DemoError> {
    let setup = |path: &Path| {
        let path = path.to_owned();
        move |source| DemoError::Setup { path, source }
    };
    std::fs::create_dir_all(parent).map_err(setup(parent))?;
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix).map_err(|e| DemoError::Setup {
        path: parent.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let root = parent.join(format!("photomesh-demo-{}", hex::encode(suffix)));
    std::fs::create_dir(&root).map_err(setup(&root))?;
    Ok(root)
}

/// Writes the device's `config.toml`: listen on loopback (the page too, on a port of its
/// own), and dial `peer` if given.
fn write_config(device: &Device, peer: Option<SocketAddr>) -> Result<(), DemoError> {
    let mut text = String::from(
        "# Written by photomesh demo.\n[node]\nlisten = \"127.0.0.1:0\"\n\n[discovery]\n\
         advertise = false\nbrowse = false\n\n[web]\nlisten = \"127.0.0.1:0\"\n",
    );
    if let Some(peer) = peer {
        text.push_str(&format!("\n[peers]\naddresses = [\"{peer}\"]\n"));
    }
    let path = device.home.join(crate::home::config::FILE_NAME);
    std::fs::write(&path, text).map_err(|source| DemoError::Setup { path, source })
}

/// Starts `photomesh run` for `device` and returns where it listens.
fn start_node(
    ws: &mut Workspace,
    exe: &Path,
    device: &Device,
    cancel: &AtomicBool,
) -> Result<SocketAddr, DemoError> {
    let mut node = spawn(exe, device, &["run"])?;
    // `run` says where it listens, then where its page is (or, before or after, a warning
    // that it has none: then the demo goes on without it).
    let mut page = None;
    let mut listening = None;
    while listening.is_none() || page.is_none() {
        let line = node.wait_for_line("start its node (photomesh run)", cancel, |l| {
            l.contains("listening on") || l.contains("page")
        });
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                ws.children.push(node);
                return Err(e);
            }
        };
        if line.contains("listening on") {
            listening = Some(line);
        } else {
            page = Some(line.strip_prefix("The page: ").map(str::to_owned));
        }
    }
    ws.children.push(node);
    let line = listening.unwrap_or_default();
    let addr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| DemoError::Step {
            device: device.name,
            command: "run".into(),
            output: format!("no address in {line:?}"),
        })?;
    match page.flatten() {
        Some(page) => say(&format!(
            "  {:<7} listening on {addr}; its page: {page}",
            device.name
        )),
        None => say(&format!("  {:<7} listening on {addr}", device.name)),
    }
    Ok(addr)
}

/// One device's state, as the progress display shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeviceState {
    records: u64,
    held: u64,
    /// Photos with the replica goal met, of the photos it can read (`None` for a vault).
    safety: Option<(u64, u64, u64)>,
}

fn read_state(device: &Device) -> Result<DeviceState, DemoError> {
    let read = |problem: String| DemoError::Read {
        device: device.name,
        problem,
    };
    let home = Home::open(&device.home).map_err(|e| read(e.to_string()))?;
    let records = home.index.record_count().map_err(|e| read(e.to_string()))?;
    let held: BTreeSet<_> = home
        .index
        .held_blobs()
        .map_err(|e| read(e.to_string()))?
        .into_iter()
        .map(|(blob, _)| blob)
        .collect();
    let status = crate::library::status::status(&home).map_err(|e| read(e.to_string()))?;
    Ok(DeviceState {
        records,
        held: held.len() as u64,
        safety: status.safety.map(|s| (s.at_goal, s.photos, s.replica_goal)),
    })
}

/// Shows each device's progress until every item is everywhere with its copies, the
/// timeout passes, or the demo is interrupted. Returns whether it completed.
fn watch_replication(
    devices: &[&Device],
    items: u64,
    cancel: &AtomicBool,
) -> Result<bool, DemoError> {
    let deadline = Instant::now() + REPLICATION_TIMEOUT;
    let mut display = Display::new(devices, items);
    loop {
        if cancel.load(Ordering::Relaxed) {
            display.finish();
            return Err(DemoError::Interrupted);
        }
        let states = devices
            .iter()
            .map(|d| read_state(d))
            .collect::<Result<Vec<_>, _>>()?;
        // The phone's record count is the whole library: every device must reach it.
        let want_records = states.first().map_or(0, |s| s.records);
        display.show(&states, want_records);
        let complete = states.iter().all(|s| {
            s.records == want_records
                && s.held == items
                && s.safety.is_none_or(|(at_goal, photos, goal)| {
                    photos == items && at_goal == items && goal == 3
                })
        });
        if complete || Instant::now() > deadline {
            display.finish();
            return Ok(complete);
        }
        std::thread::sleep(POLL);
    }
}

/// A bar per device on a terminal; otherwise a line per device whenever it changes.
enum Display {
    Bars(Vec<indicatif::ProgressBar>),
    Lines(Vec<&'static str>, Vec<Option<DeviceState>>, u64),
}

impl Display {
    fn new(devices: &[&Device], items: u64) -> Self {
        let names: Vec<&'static str> = devices.iter().map(|d| d.name).collect();
        if !std::io::stdout().is_terminal() {
            return Self::Lines(names, vec![None; devices.len()], items);
        }
        let multi =
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stdout());
        let style = indicatif::ProgressStyle::with_template(
            "  {prefix:<7} [{bar:30}] {pos:>3}/{len} held  {msg}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let bars = devices
            .iter()
            .map(|d| {
                let bar = multi.add(indicatif::ProgressBar::new(items));
                bar.set_style(style.clone());
                bar.set_prefix(d.name);
                bar
            })
            .collect();
        Self::Bars(bars)
    }

    fn show(&mut self, states: &[DeviceState], want_records: u64) {
        match self {
            Self::Bars(bars) => {
                for (bar, state) in bars.iter().zip(states) {
                    bar.set_position(state.held);
                    bar.set_message(describe(state, want_records));
                }
            }
            Self::Lines(names, last, items) => {
                for ((name, last), state) in names.iter().zip(last.iter_mut()).zip(states) {
                    if last.as_ref() != Some(state) {
                        say(&format!(
                            "  {name:<7} {:>3}/{items} held  {}",
                            state.held,
                            describe(state, want_records)
                        ));
                        *last = Some(state.clone());
                    }
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Self::Bars(bars) = self {
            for bar in bars {
                bar.finish();
            }
        }
    }
}

fn describe(state: &DeviceState, want_records: u64) -> String {
    let copies = match state.safety {
        Some((_, 0, _)) => "no photo records yet".to_owned(),
        Some((at_goal, photos, goal)) => format!("{at_goal}/{photos} with {goal} copies"),
        None => "sealed: a vault reads nothing".to_owned(),
    };
    format!("{:>3}/{want_records} records  {copies}", state.records)
}

/// Runs a device's command to the end; its standard output, or an error with all it said.
fn command(
    exe: &Path,
    device: &Device,
    args: &[&str],
    cancel: &AtomicBool,
) -> Result<String, DemoError> {
    if cancel.load(Ordering::Relaxed) {
        return Err(DemoError::Interrupted);
    }
    let out = base_command(exe, device, args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| DemoError::Setup {
            path: exe.to_owned(),
            source,
        })?;
    if cancel.load(Ordering::Relaxed) {
        return Err(DemoError::Interrupted);
    }
    if !out.status.success() {
        return Err(DemoError::Step {
            device: device.name,
            command: args.join(" "),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts a device's command in the background, collecting its output lines.
fn spawn(exe: &Path, device: &Device, args: &[&str]) -> Result<Running, DemoError> {
    let mut child = base_command(exe, device, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| DemoError::Setup {
            path: exe.to_owned(),
            source,
        })?;
    let (tx, lines) = std::sync::mpsc::channel();
    let seen = Arc::new(Mutex::new("the lines the demo saw", Vec::new()));
    let streams: [Option<Box<dyn std::io::Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ];
    for stream in streams.into_iter().flatten() {
        let (tx, seen) = (tx.clone(), seen.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                {
                    let mut seen = seen.lock();
                    seen.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
    }
    Ok(Running {
        device: device.name,
        child,
        lines,
        seen,
    })
}

fn base_command(exe: &Path, device: &Device, args: &[&str]) -> Command {
    let mut command = Command::new(exe);
    command
        .arg("--home")
        .arg(&device.home)
        .args(args)
        .env_remove("PHOTOMESH_HOME")
        .env("NO_COLOR", "1");
    command
}

fn heading(text: &str) {
    println!();
    println!("{text}");
}

fn say(text: &str) {
    println!("{text}");
}
