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
use photomesh::clock::now_ms;
use photomesh::home::{Home, default_home};
use photomesh::index::{Folder, ScanSummary};
use photomesh::library::progress::Reporter;
use photomesh_protocol::membership::Role;

/// photomesh: a peer-to-peer photo backup mesh with no server and no account.
#[derive(Parser)]
#[command(version, about, max_term_width = 100)]
struct Cli {
    /// The node's home directory [default: the platform's data directory, e.g.
    /// ~/.local/share/photomesh].
    #[arg(long, global = true, env = "PHOTOMESH_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// The configuration file [default: HOME/config.toml; absent means every default].
    #[arg(long, global = true, env = "PHOTOMESH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// What is logged to standard error: error, warn, info, debug or trace, or a filter such
    /// as photomesh=debug,quinn=warn [default: `[log] level` in the file, else warn].
    #[arg(long, global = true, env = "PHOTOMESH_LOG", value_name = "LEVEL")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new device: keys, library key and index, in a new home.
    Init {
        /// A name for this device, shown to the other devices (e.g. "laptop") [default:
        /// `[node] name` in the configuration file].
        #[arg(long)]
        name: Option<String>,
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
        #[arg(long, default_value = "10m", value_parser = photomesh::home::config::parse_duration)]
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
        /// Where to listen [default: `[node] listen` in the configuration file, else
        /// 0.0.0.0:7447].
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Which blobs to keep copies of: `all`, or only the photos this device added
        /// (`own`, for a device short of space; its originals are still served). A vault
        /// holds all. [default: `[storage] hold` in the configuration file, else all]
        #[arg(long, value_name = "all|own")]
        hold: Option<String>,
    },
    /// The configuration file: show the effective settings, or write a documented default.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Try photomesh with no setup: three devices (phone, laptop, NAS) on this machine pair
    /// by QR code, and the phone's new photos replicate to the others. Removes everything
    /// it made when it ends.
    Demo {
        /// Where to make the demo's temporary directory [default: the system's temporary
        /// directory].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Keep the demo's directory (the three homes and the photos) and say where.
        #[arg(long)]
        keep: bool,
        /// How many photos the phone takes (a short video comes on top).
        #[arg(long, default_value_t = 36, value_parser = clap::value_parser!(u16).range(1..=1000))]
        photos: u16,
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
enum ConfigCommand {
    /// Print the effective configuration as TOML, with where each value came from (a flag,
    /// the file, or the default).
    Show,
    /// Write a fully commented default configuration file (HOME/config.toml, or the file
    /// --config names). Refuses to overwrite one.
    Init,
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

/// Starts logging to standard error at `level` (already checked by the config module).
fn init_logging(level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs a command; `Ok(false)` means it ran but found problems.
fn run(cli: Cli) -> Result<bool> {
    if let Command::Demo { dir, keep, photos } = cli.command {
        // The demo's devices each read their own home's configuration; the demo itself has
        // no home.
        let level = cli.log_level.unwrap_or_else(|| "warn".into());
        photomesh::home::config::check_log_level(&level)
            .map_err(|problem| anyhow::anyhow!("--log-level (or PHOTOMESH_LOG): {problem}"))?;
        init_logging(&level);
        return demo(dir, keep, photos);
    }
    let home_path = match cli.home {
        Some(h) => h,
        None => default_home()?,
    };
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| home_path.join(photomesh::home::config::FILE_NAME));
    let overrides = photomesh::home::config::Overrides {
        listen: match &cli.command {
            Command::Run { listen, .. } => *listen,
            _ => None,
        },
        name: match &cli.command {
            Command::Init { name, .. } => name.clone(),
            _ => None,
        },
        log_level: cli.log_level.clone(),
    };
    let loaded = photomesh::home::config::Loaded::load(&config_path, overrides)?;
    init_logging(&loaded.config.log.level);
    match &cli.command {
        Command::Config(ConfigCommand::Show) => {
            print!("{}", loaded.show());
            return Ok(true);
        }
        Command::Config(ConfigCommand::Init) => {
            photomesh::home::config::write_default(&config_path)?;
            println!(
                "Wrote {}: every setting, documented and commented out at its default.",
                config_path.display()
            );
            return Ok(true);
        }
        _ => {}
    }
    if let Command::Init { recover, .. } = &cli.command {
        let Some(name) = loaded.config.node.name.as_deref() else {
            bail!(
                "give the device a name with --name NAME (or `name` under [node] in {})",
                config_path.display()
            );
        };
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
        Command::Init { .. } | Command::Config(_) | Command::Demo { .. } => {
            unreachable!("handled above")
        }
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
            let options = photomesh::mesh::pairing::PairOptions {
                role,
                expires_in: expires,
                listen,
                png: png.as_deref(),
            };
            let joined = runtime()?.block_on(photomesh::mesh::pairing::pair(
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
            let code = photomesh::mesh::pairing::read_code(code.as_deref(), qr.as_deref())?;
            let name = home.device_name()?;
            let joined = runtime()?.block_on(photomesh::mesh::pairing::join(
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
            let mut devices = photomesh::mesh::devices(&home)?;
            let live = live_status(&home_path);
            photomesh::library::status::apply_live_devices(&mut devices, live.as_ref());
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else {
                for d in &devices {
                    let seen = if d.this_device {
                        "this device".to_owned()
                    } else if let Some(c) = &d.connection {
                        format!(
                            "connected via {} since {}",
                            c.address,
                            utc(c.since_ms as i64)
                        )
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
                if live.is_none() {
                    println!(
                        "(photomesh is not running on this home: no live connections to show)"
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
            println!("{}", photomesh::mesh::qr::to_terminal(&phrase)?);
            println!("Recovery phrase: {phrase}");
            if let Some(png) = png {
                photomesh::mesh::qr::write_png(&phrase, &png)?;
                println!("QR code written to {}", png.display());
            }
            home.index
                .set_meta("recovery_exported_at_ms", &now_ms().to_string())?;
            Ok(true)
        }
        Command::Run { hold, .. } => {
            let hold = hold.unwrap_or_else(|| loaded.config.storage.hold.name().to_owned());
            let policy = photomesh::replicate::held::HoldPolicy::parse(&hold).ok_or_else(|| {
                anyhow::anyhow!("--hold {hold:?}: say `all` (the default) or `own`")
            })?;
            policy.set(&home).map_err(|e| anyhow::anyhow!(e))?;
            drop(home);
            let config = &loaded.config;
            let options = photomesh::daemon::RunOptions {
                listen: config.node.listen,
                peers: configured_peers(&config.peers.addresses),
                discovery: photomesh::net::discovery::Settings {
                    advertise: config.discovery.advertise,
                    browse: config.discovery.browse,
                },
                watch: config
                    .watch
                    .enabled
                    .then(|| photomesh::library::watch::WatchOptions {
                        rescan_every: config.watch.rescan_interval,
                        ..Default::default()
                    }),
            };
            runtime()?.block_on(photomesh::daemon::run(
                &home_path,
                options,
                |node| {
                    println!("photomesh is running; listening on {}", node.local_addr());
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
            let summary = photomesh::library::scan::scan(&home, &mut Reporter::for_stderr())?;
            // A node running on this home tells its peers at once (nothing if none runs).
            if let Err(e) = photomesh::net::control::ask(&home_path, "announce") {
                tracing::debug!("could not tell the running node: {e}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print_scan(&summary);
            }
            Ok(summary.problems.is_empty())
        }
        Command::Status { json } => {
            let goal = loaded
                .config
                .status
                .replica_goal
                .map_or(photomesh::library::status::DEFAULT_REPLICA_GOAL, u64::from);
            let mut status = photomesh::library::status::status_with_goal(&home, goal)?;
            photomesh::library::status::apply_live(&mut status, live_status(&home_path));
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(true)
        }
        Command::Photos { folder, json } => {
            let (photos, unreadable) =
                photomesh::library::status::photos(&home, folder.as_deref())?;
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
            let home = fetch_for_restore(home, folder.as_deref())?;
            let report = photomesh::library::restore::restore(
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
            let report = photomesh::library::verify::verify(&home, &mut Reporter::for_stderr())?;
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

/// What the node running on this home reports live, or `None` if none runs (a node that
/// cannot be asked is reported on standard error and treated as not running).
fn live_status(home: &Path) -> Option<photomesh::net::control::LiveStatus> {
    match photomesh::net::control::live_status(home) {
        Ok(live) => live,
        Err(e) => {
            eprintln!("warning: {e}");
            None
        }
    }
}

/// Resolves the configuration's peer addresses; one that does not resolve now is left out
/// with a warning (the device may be away), not a reason to stop the node.
fn configured_peers(addresses: &[String]) -> Vec<SocketAddr> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for a in addresses {
        match a.to_socket_addrs() {
            Ok(resolved) => out.extend(resolved),
            Err(e) => tracing::warn!("the configured peer {a:?} does not resolve: {e}"),
        }
    }
    out
}

/// `photomesh demo`: runs it, and stops it cleanly on Ctrl-C.
fn demo(dir: Option<PathBuf>, keep: bool, photos: u16) -> Result<bool> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let cancel = Arc::new(AtomicBool::new(false));
    let signal_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let flag = cancel.clone();
    std::thread::spawn(move || {
        signal_runtime.block_on(shutdown_signal());
        flag.store(true, Ordering::Relaxed);
    });
    let options = photomesh::demo::DemoOptions {
        exe: std::env::current_exe().context("cannot find the photomesh binary to run")?,
        parent: dir.unwrap_or_else(std::env::temp_dir),
        keep,
        photos: usize::from(photos),
    };
    let outcome = photomesh::demo::run(&options, &cancel)?;
    if outcome.complete {
        println!(
            "Demo complete: all {} photos and videos reached the phone, the laptop and the NAS.",
            outcome.items
        );
        println!("Next: `photomesh init --name NAME` on your own devices; see README.md.");
    } else {
        println!("Demo FAILED: not every photo reached every device.");
    }
    Ok(outcome.complete)
}

/// Before a restore on a device that reads the records: fetches from the members the blobs
/// of the photos to restore that this device does not hold, with progress on stderr.
fn fetch_for_restore(home: Home, folder: Option<&str>) -> Result<Home> {
    use photomesh_protocol::record::Record;
    if home.keys.current().is_none() {
        return Ok(home);
    }
    let held = photomesh::replicate::held::HeldBlobs::load(&home)?;
    let wanted: Vec<_> = home
        .index
        .latest_photos(folder)?
        .iter()
        .filter_map(|row| match Record::open(&row.sealed, &home.keys) {
            Ok(Record::Photo(p)) => Some(p.blob_id),
            Err(_) => None,
        })
        .filter(|b| !held.contains(b))
        .collect();
    if wanted.is_empty() {
        return Ok(home);
    }
    // A node running on this home already holds the connections to the members (a second
    // connection from this device would be refused as a duplicate): it fetches for us.
    let blobs: Vec<String> = wanted.iter().map(|b| b.to_hex()).collect();
    let home_path = home.path.clone();
    if photomesh::net::control::ask_with(
        &home_path,
        "fetch",
        serde_json::json!({ "blobs": blobs }),
    )?
    .is_some()
    {
        fetch_through_node(&home_path, wanted.len())?;
        return Ok(home);
    }
    let home = tokio::sync::Mutex::new(home);
    let progress = |done: usize, of: usize| {
        eprintln!("Fetching from the mesh the photos this device does not hold: {done} of {of}");
    };
    let report = runtime()?.block_on(
        photomesh::replicate::restore_fetch::fetch_missing_for_restore(&home, &wanted, &progress),
    )?;
    for problem in &report.unreachable {
        eprintln!("  could not fetch from {problem}");
    }
    Ok(home.into_inner())
}

/// Follows the fetch the running node does for a restore, with progress on stderr, until it
/// ends.
fn fetch_through_node(home: &Path, wanted: usize) -> Result<()> {
    let mut shown = usize::MAX;
    loop {
        let job: photomesh::daemon::FetchJob =
            match photomesh::net::control::ask(home, "fetch_progress")? {
                Some(v) => serde_json::from_value(v)
                    .context("the running node's answer to fetch_progress")?,
                None => bail!("the node running on this home stopped during the fetch"),
            };
        if job.fetched != shown {
            shown = job.fetched;
            eprintln!(
                "Fetching from the mesh (through the running node) the photos this device does \
                 not hold: {} of {wanted}",
                job.fetched
            );
        }
        if !job.running {
            for problem in &job.problems {
                eprintln!("  could not fetch from {problem}");
            }
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
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

impl photomesh::mesh::pairing::PairObserver for PrintPairing {
    fn ready(
        &mut self,
        code: &photomesh_protocol::pairing::PairingCode,
        text: &str,
        listening: SocketAddr,
    ) {
        if let Ok(qr) = photomesh::mesh::qr::to_terminal(text) {
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

fn print_status(s: &photomesh::library::status::Status) {
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
    match &s.listening {
        Some(addr) => println!(
            "Node     running, listening on {addr}, {} connection{} open",
            s.open_connections.unwrap_or(0),
            if s.open_connections == Some(1) {
                ""
            } else {
                "s"
            }
        ),
        None => println!(
            "Node     not running: this is what the home records (start it with `photomesh run`)"
        ),
    }
    if !s.peers.is_empty() {
        println!("Devices");
        for p in &s.peers {
            let state = if let Some(c) = &p.connection {
                format!("online via {} since {}", c.address, utc(c.since_ms as i64))
            } else if p.online {
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
    if !s.transfers.is_empty() {
        println!("Transfers");
        for t in &s.transfers {
            println!(
                "  {}",
                photomesh::library::status::describe_transfer(t, &s.peers)
            );
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
