//! The `photomesh` command line: parses arguments, calls the library, prints results.
//!
//! Exit codes: 0 when the command did what was asked and found nothing wrong; 1 when it ran
//! but found problems (files it could not read, items that failed verification, photos it
//! could not restore); 2 when it could not run (bad arguments, no home, a damaged index).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use photomesh::home::{Home, default_home};
use photomesh::index::{Folder, ScanSummary};
use photomesh::progress::Reporter;
use photomesh::scan::now_ms;
use photomesh_protocol::membership::Role;

/// photomesh: a peer-to-peer photo backup mesh with no server and no account.
#[derive(Parser)]
#[command(version, about, max_term_width = 100)]
struct Cli {
    /// The node's home directory [default: the platform's data directory, e.g.
    /// ~/.local/share/photomesh].
    #[arg(long, global = true, env = "PHOTOMESH_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new device: keys, library key and index, in a new home.
    Init {
        /// A name for this device, shown to the other devices (e.g. "laptop").
        #[arg(long)]
        name: String,
        /// Start from a recovery phrase (from `recovery-key export`) instead of a new
        /// library key.
        #[arg(long, value_name = "PHRASE")]
        recover: Option<String>,
    },
    /// Invite a device into the mesh: show a QR code and wait for it to join.
    Pair {
        /// The role offered to the new device.
        #[arg(long, value_enum, default_value = "full")]
        role: RoleArg,
        /// Also write the QR code to this PNG file.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
        /// How long the code works (e.g. 90s, 10m, 1h).
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        expires: std::time::Duration,
        /// Where to listen for the new device.
        #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR")]
        listen: SocketAddr,
    },
    /// Join a mesh with the code another device shows.
    Join {
        /// The pairing code's text.
        #[arg(required_unless_present = "qr")]
        code: Option<String>,
        /// Read the code from a photo or screenshot of the QR code (PNG).
        #[arg(long, value_name = "FILE", conflicts_with = "code")]
        qr: Option<PathBuf>,
        /// Leave the mesh this device belongs to now (if any) to join this one.
        #[arg(long)]
        leave_current_mesh: bool,
    },
    /// List the devices of the mesh.
    Devices {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Expel a device (a lost phone): every member refuses it from then on, and the library
    /// key rotates so it cannot read what is added later.
    Revoke {
        /// The device ID (from `photomesh devices`).
        device: String,
    },
    /// The recovery key: the only way back if every full device is lost.
    #[command(subcommand, name = "recovery-key")]
    RecoveryKey(RecoveryCommand),
    /// Run the node: accept connections from the mesh's devices until stopped.
    Run {
        /// Where to listen.
        #[arg(long, default_value = "0.0.0.0:7447", value_name = "ADDR")]
        listen: SocketAddr,
        /// Which blobs to keep copies of: `all`, or only the photos this device added
        /// (`own`, for a device short of space; its originals are still served). A vault
        /// holds all.
        #[arg(long, default_value = "all", value_name = "all|own")]
        hold: String,
    },
    /// Configure the addresses of peers beyond the LAN.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Check that a device of the mesh answers at an address.
    Ping {
        /// The address (HOST:PORT).
        address: SocketAddr,
        /// The device expected there [default: whichever member it is].
        #[arg(long, value_name = "DEVICE_ID")]
        device: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Manage the photo folders this device backs up.
    #[command(subcommand)]
    Folder(FolderCommand),
    /// Record new and changed photos in every folder.
    Scan {
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show this device, its folders, its library and the last scan.
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the photos in the library (the newest version of each).
    Photos {
        /// Only this folder.
        #[arg(long, value_name = "LABEL")]
        folder: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write every photo back to a folder, checked against its record.
    Restore {
        /// Where to write the photos (created if needed; existing files are never
        /// overwritten).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Restore only this folder, straight into DIR (otherwise into DIR/LABEL/).
        #[arg(long, value_name = "LABEL")]
        folder: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every original and stored blob against its record.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PeerCommand {
    /// Add an address (HOST:PORT) where a device of the mesh runs; the node dials it.
    Add {
        /// The address.
        address: String,
    },
    /// List the configured addresses.
    List,
}

#[derive(Subcommand)]
enum RecoveryCommand {
    /// Print the recovery phrase (and its QR code). Anyone who has it can read every photo.
    Export {
        /// Also write the QR code to this PNG file.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
        /// Print it again although it was exported before.
        #[arg(long)]
        again: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    /// Holds the library key: reads, adds, restores, pairs and revokes.
    Full,
    /// Stores ciphertext only and can read nothing.
    Vault,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 10m or 1h"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?} is not a duration like 90s, 10m or 1h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Subcommand)]
enum FolderCommand {
    /// Start backing up a folder.
    Add {
        /// The folder.
        path: PathBuf,
        /// Its label: its name on every device [default: the folder's own name].
        #[arg(long)]
        label: Option<String>,
    },
    /// List the folders.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop backing up a folder. Its files and everything already recorded are kept.
    Remove {
        /// The folder's label.
        label: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PHOTOMESH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a command; `Ok(false)` means it ran but found problems.
fn run(cli: Cli) -> Result<bool> {
    let home_path = match cli.home {
        Some(h) => h,
        None => default_home()?,
    };
    if let Command::Init { name, recover } = &cli.command {
        let recovered = match recover {
            Some(phrase) => Some(
                photomesh_protocol::keys::KeyRing::from_recovery_phrase(phrase)
                    .context("the recovery phrase was not accepted")?,
            ),
            None => None,
        };
        let home = Home::init(&home_path, name, recovered, now_ms())?;
        println!("Created device {:?} in {}", name, home_path.display());
        println!("Device ID: {}", home.device.device_id());
        println!("Next: photomesh folder add PATH, then photomesh scan");
        return Ok(true);
    }
    let home = Home::open(&home_path)?;
    match cli.command {
        Command::Init { .. } => unreachable!("handled above"),
        Command::Pair {
            role,
            png,
            expires,
            listen,
        } => {
            let role = match role {
                RoleArg::Full => Role::Full,
                RoleArg::Vault => Role::Vault,
            };
            let options = photomesh::pairing::PairOptions {
                role,
                expires_in: expires,
                listen,
                png: png.as_deref(),
            };
            let joined = runtime()?.block_on(photomesh::pairing::pair(
                &home,
                options,
                &mut PrintPairing { png: png.clone() },
            ))?;
            println!(
                "Joined: {} ({}) as a {} device.",
                joined.name, joined.device_id, joined.role
            );
            Ok(true)
        }
        Command::Join {
            code,
            qr,
            leave_current_mesh,
        } => {
            let mut home = home;
            let code = photomesh::pairing::read_code(code.as_deref(), qr.as_deref())?;
            let name = home.device_name()?;
            let joined = runtime()?.block_on(photomesh::pairing::join(
                &mut home,
                &code,
                leave_current_mesh,
                &name,
            ))?;
            println!(
                "Joined the mesh as a {} device. Members: {}.",
                joined.role,
                joined.members.join(", ")
            );
            if joined.role == "vault" {
                println!("This device holds no library key: it stores photos it cannot read.");
            }
            Ok(true)
        }
        Command::Devices { json } => {
            let devices = photomesh::mesh::devices(&home)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else {
                for d in &devices {
                    let seen = if d.this_device {
                        "this device".to_owned()
                    } else {
                        d.last_seen_ms
                            .map(|t| format!("seen {}", utc(t as i64)))
                            .unwrap_or_else(|| "never seen".into())
                    };
                    let by = d
                        .introduced_by_name
                        .clone()
                        .unwrap_or_else(|| d.introduced_by.clone());
                    println!(
                        "{:<16} {:<5} {}  introduced by {}, {}{}",
                        d.name,
                        d.role,
                        d.device_id,
                        by,
                        seen,
                        if d.revoked { "  REVOKED" } else { "" }
                    );
                }
            }
            Ok(true)
        }
        Command::Revoke { device } => {
            let mut home = home;
            let id: photomesh_protocol::identity::DeviceId = device
                .parse()
                .with_context(|| format!("{device:?} is not a device ID"))?;
            let epoch = photomesh::mesh::revoke(&mut home, &id, now_ms())?;
            println!(
                "Revoked {id}. Every member will refuse it as soon as it hears of this. \
                 New photos are sealed with key epoch {epoch}, which it never had."
            );
            Ok(true)
        }
        Command::RecoveryKey(RecoveryCommand::Export { png, again }) => {
            if home.keys.current().is_none() {
                bail!(
                    "this device holds no library key (it is a vault); export the recovery key on a full device"
                );
            }
            if home.index.meta("recovery_exported_at_ms")?.is_some() && !again {
                bail!("the recovery key was already exported; pass --again to print it again");
            }
            let phrase = home.keys.to_recovery_phrase();
            println!("RECOVERY KEY — read this first.");
            println!(
                "Whoever has this phrase can read every photo in the library. Write it on paper and"
            );
            println!(
                "keep it somewhere safe, away from your devices. It is the only way back if every full"
            );
            println!(
                "device is lost: losing it and all devices loses the photos. photomesh keeps no copy."
            );
            println!();
            println!("{}", photomesh::qr::to_terminal(&phrase)?);
            println!("Recovery phrase: {phrase}");
            if let Some(png) = png {
                photomesh::qr::write_png(&phrase, &png)?;
                println!("QR code written to {}", png.display());
            }
            home.index
                .set_meta("recovery_exported_at_ms", &now_ms().to_string())?;
            Ok(true)
        }
        Command::Run { listen, hold } => {
            let policy = photomesh::blobs::HoldPolicy::parse(&hold).ok_or_else(|| {
                anyhow::anyhow!("--hold {hold:?}: say `all` (the default) or `own`")
            })?;
            policy.set(&home).map_err(|e| anyhow::anyhow!(e))?;
            drop(home);
            runtime()?.block_on(photomesh::daemon::run(
                &home_path,
                listen,
                |addr| {
                    println!("photomesh is running; listening on {addr}");
                },
                shutdown_signal(),
            ))?;
            Ok(true)
        }
        Command::Peer(PeerCommand::Add { address }) => {
            use std::net::ToSocketAddrs;
            let resolved: Vec<SocketAddr> = address
                .to_socket_addrs()
                .with_context(|| {
                    format!(
                        "{address:?} is not an address like 192.168.1.20:7447 or nas.local:7447"
                    )
                })?
                .collect();
            let Some(first) = resolved.first() else {
                bail!("{address:?} resolves to no address");
            };
            if home.index.add_peer(&first.to_string(), now_ms())? {
                println!("Added peer {first}. A running node dials it within a second.");
            } else {
                println!("{first} was already a configured peer.");
            }
            Ok(true)
        }
        Command::Peer(PeerCommand::List) => {
            for p in home.index.peers()? {
                println!("{p}");
            }
            Ok(true)
        }
        Command::Ping {
            address,
            device,
            json,
        } => {
            let device = device
                .map(|d| {
                    d.parse()
                        .with_context(|| format!("{d:?} is not a device ID"))
                })
                .transpose()?;
            let pong = runtime()?.block_on(photomesh::daemon::ping(&home, address, device))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&pong)?);
            } else {
                println!(
                    "{} ({}) answered at {} in {:.1} ms",
                    pong.name, pong.device_id, pong.address, pong.round_trip_ms
                );
            }
            Ok(true)
        }
        Command::Folder(cmd) => folder(&home, cmd),
        Command::Scan { json } => {
            let summary = photomesh::scan::scan(&home, &mut Reporter::for_stderr())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print_scan(&summary);
            }
            Ok(summary.problems.is_empty())
        }
        Command::Status { json } => {
            let status = photomesh::status::status(&home)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(true)
        }
        Command::Photos { folder, json } => {
            let (photos, unreadable) = photomesh::status::photos(&home, folder.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&photos)?);
            } else {
                for p in &photos {
                    let taken = p
                        .capture_local_seconds
                        .map(|s| utc(s.saturating_mul(1000)).replace(" UTC", ""))
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{:<5} {:>10}  {:<16}  {}/{}",
                        p.media_type,
                        bytes(p.size),
                        taken,
                        p.folder,
                        p.path
                    );
                }
                println!("{} photos", photos.len());
            }
            if unreadable > 0 {
                eprintln!("{unreadable} records could not be opened with this device's keys");
            }
            Ok(unreadable == 0)
        }
        Command::Restore { to, folder, json } => {
            let report = photomesh::restore::restore(
                &home,
                &to,
                folder.as_deref(),
                &mut Reporter::for_stderr(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "Restored {} photos ({}) to {}; {} already there.",
                    report.restored,
                    bytes(report.bytes),
                    to.display(),
                    report.already_present
                );
                for n in &report.not_restored {
                    println!("  not restored: {}: {}", n.path, n.reason);
                }
            }
            Ok(report.not_restored.is_empty())
        }
        Command::Verify { json } => {
            let report = photomesh::verify::verify(&home, &mut Reporter::for_stderr())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "Checked {} originals and {} stored blobs: {}",
                    report.sources_checked,
                    report.blobs_checked,
                    if report.is_clean() {
                        "all good.".to_owned()
                    } else {
                        format!("{} problems.", report.findings.len())
                    }
                );
                for f in &report.findings {
                    println!("  {:?}: {}: {}", f.kind, f.item, f.detail);
                }
            }
            Ok(report.is_clean())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Prints what `pair` shows: the QR code, the text code, and failed attempts.
struct PrintPairing {
    png: Option<PathBuf>,
}

impl photomesh::pairing::PairObserver for PrintPairing {
    fn ready(
        &mut self,
        code: &photomesh_protocol::pairing::PairingCode,
        text: &str,
        listening: SocketAddr,
    ) {
        if let Ok(qr) = photomesh::qr::to_terminal(text) {
            println!("{qr}");
        }
        println!("Scan the QR code with the new device, or type this there: photomesh join CODE");
        println!("Code: {text}");
        if let Some(png) = &self.png {
            println!("QR code written to {}", png.display());
        }
        let addresses: Vec<String> = code.addresses.iter().map(ToString::to_string).collect();
        println!(
            "Offering the {} role; listening on {listening} (addresses in the code: {}); the code works once, until {}.",
            code.role.name(),
            addresses.join(", "),
            utc(code.expires_at as i64 * 1000)
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }

    fn attempt_failed(&mut self, why: &str) {
        eprintln!("{why}; still waiting");
    }
}

fn folder(home: &Home, cmd: FolderCommand) -> Result<bool> {
    match cmd {
        FolderCommand::Add { path, label } => {
            let meta = std::fs::metadata(&path).with_context(|| {
                format!(
                    "cannot add {}: it does not exist or cannot be read",
                    path.display()
                )
            })?;
            if !meta.is_dir() {
                bail!("cannot add {}: it is a file, not a folder", path.display());
            }
            let path = path
                .canonicalize()
                .with_context(|| format!("cannot resolve {}", path.display()))?;
            let label = match label {
                Some(l) => l,
                None => path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "root".into()),
            };
            if label.is_empty() || label.contains('/') || label.starts_with('.') {
                bail!(
                    "the label {label:?} is not usable: use a plain name without '/' or a leading '.'"
                );
            }
            for existing in home.index.folders()? {
                if path.starts_with(&existing.path) || existing.path.starts_with(&path) {
                    bail!(
                        "{} overlaps the folder {:?} ({}): a photo must belong to one folder only",
                        path.display(),
                        existing.label,
                        existing.path.display()
                    );
                }
                if existing.label == label {
                    bail!(
                        "the label {label:?} is already used by {}; choose another with --label",
                        existing.path.display()
                    );
                }
            }
            home.index.add_folder(
                &Folder {
                    label: label.clone(),
                    path: path.clone(),
                },
                now_ms(),
            )?;
            println!(
                "Added folder {label:?} ({}). Run `photomesh scan` to record its photos.",
                path.display()
            );
            Ok(true)
        }
        FolderCommand::List { json } => {
            let folders = home.index.folders()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&folders)?);
            } else if folders.is_empty() {
                println!("No folders yet: add one with `photomesh folder add PATH`.");
            } else {
                for f in folders {
                    let note = if f.path.is_dir() { "" } else { "  (not found)" };
                    println!("{:<16} {}{note}", f.label, f.path.display());
                }
            }
            Ok(true)
        }
        FolderCommand::Remove { label } => {
            if !home.index.remove_folder(&label)? {
                bail!(
                    "there is no folder labelled {label:?}; `photomesh folder list` shows the labels"
                );
            }
            println!(
                "Removed folder {label:?}. Its files were not touched, and its photos stay in the library."
            );
            Ok(true)
        }
    }
}

fn print_scan(s: &ScanSummary) {
    println!(
        "Scanned {} photos and videos: {} new, {} changed, {} unchanged, {} missing, {} unreadable ({} read).",
        s.files_seen,
        s.new_files,
        s.changed_files,
        s.unchanged_files,
        s.missing_files,
        s.problems.len(),
        bytes(s.bytes_read)
    );
    for p in &s.problems {
        println!("  {}: {}", p.path, p.reason);
    }
}

fn print_status(s: &photomesh::status::Status) {
    println!("Device   {} ({})", s.device_name, s.device_id);
    println!("Home     {}", s.home);
    if let Some(epoch) = s.key_epoch {
        println!(
            "Library  {} photo records ({} records in all), key epoch {epoch}",
            s.photo_records, s.records
        );
    } else {
        println!(
            "Library  {} records, all sealed: this device holds no library key",
            s.records
        );
    }
    if s.folders.is_empty() {
        println!("Folders  none: add one with `photomesh folder add PATH`");
    } else {
        println!("Folders");
        for f in &s.folders {
            let note = if Path::new(&f.path).is_dir() {
                ""
            } else {
                "  (not found)"
            };
            println!(
                "  {:<16} {:>7} photos {:>10}   {}{note}",
                f.label,
                f.photos,
                bytes(f.bytes),
                f.path.display()
            );
        }
    }
    if let Some(safety) = &s.safety {
        println!(
            "Safety   {} of {} photos ({}) have {} verified copies on distinct devices; {} below",
            safety.at_goal,
            safety.photos,
            bytes(safety.bytes),
            safety.replica_goal,
            safety.below_goal.len()
        );
        for b in safety.below_goal.iter().take(20) {
            println!(
                "  {} cop{}: {}/{}",
                b.copies,
                if b.copies == 1 { "y" } else { "ies" },
                b.folder,
                b.path
            );
        }
        if safety.below_goal.len() > 20 {
            println!(
                "  … and {} more (photomesh status --json lists them all)",
                safety.below_goal.len() - 20
            );
        }
    }
    if !s.peers.is_empty() {
        println!("Devices");
        for p in &s.peers {
            let state = if p.online {
                "online".to_owned()
            } else {
                p.last_sync_ms
                    .map(|t| format!("last synced {}", utc(t as i64)))
                    .unwrap_or_else(|| "never synced".into())
            };
            println!(
                "  {:<16} {:<5} {:>7} blobs  {}",
                p.name, p.role, p.blobs_held, state
            );
            if let Some(bad) = &p.bad_data {
                println!(
                    "    sent bad data for blob {} at {}: {}{}",
                    &bad.blob[..16],
                    utc(bad.at_ms as i64),
                    bad.reason,
                    if bad.avoided {
                        " (not asked for blobs for now)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    println!(
        "Holds    {}",
        if s.hold == "own" {
            "only the photos this device added (`run --hold own`)"
        } else {
            "every photo of the library"
        }
    );
    match &s.last_scan {
        None => println!("Last scan  never: run `photomesh scan`"),
        Some(scan) => {
            print!("Last scan  {}: ", utc(scan.started_at_ms as i64));
            if scan.finished_at_ms.is_none() {
                print!("(did not finish) ");
            }
            print_scan(scan);
        }
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

/// Formats milliseconds since the epoch as `YYYY-MM-DD HH:MM UTC`.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
