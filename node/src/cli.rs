//! The command line's verbs: each file of `cli/` reads its arguments, makes one library call
//! and prints the result. This file loads the configuration and the home and dispatches.
//!
//! Exit codes: 0 when the command did what was asked and found nothing wrong; 1 when it ran
//! but found problems (files it could not read, items that failed verification, photos it
//! could not restore); 2 when it could not run (bad arguments, no home, a damaged index).

/// `println!` that hands back the write's error instead of panicking, so that a closed pipe
/// (`photomesh photos | head -1`) ends the command quietly, as ripgrep does (see `main`).
macro_rules! out {
    () => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock())
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        // One line: names and paths in it came from the network or from files, so none of
        // their control characters (a newline, an escape sequence) reaches the terminal.
        writeln!(std::io::stdout().lock(), "{}", photomesh::shown::escaped(&format!($($arg)*), false))
    }};
}

/// [`out!`] for a block of lines this program made (JSON, a QR code): its own newlines kept,
/// every other control character escaped.
macro_rules! out_block {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), "{}", photomesh::shown::escaped(&format!($($arg)*), true))
    }};
}

/// `eprintln!`, escaped as [`out!`] is.
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("{}", photomesh::shown::escaped(&format!($($arg)*), true))
    };
}

/// `print!` as [`out!`] is `println!`.
macro_rules! out_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), "{}", photomesh::shown::escaped(&format!($($arg)*), true))
    }};
}

pub mod args;
mod demo;
mod devices;
mod drill;
mod folder;
mod format;
mod free_up;
mod pair;
mod peer;
mod repair;
mod restore;
mod run;
mod scan;
mod status;
mod trash;
mod web;

use std::path::Path;

use anyhow::{Context, Result, bail};
use photomesh::clock::now_ms;
use photomesh::home::config::{self, Loaded, Overrides};
use photomesh::home::{Home, default_home};

use args::{Cli, Command, ConfigCommand, PeerCommand, RecoveryCommand, WebCommand};

/// Runs a command; `Ok(false)` means it ran but found problems.
pub fn run(cli: Cli) -> Result<bool> {
    if let Command::Demo { dir, keep, photos } = cli.command {
        // The demo's devices each read their own home's configuration; the demo itself has
        // no home.
        let level = cli.log_level.unwrap_or_else(|| "warn".into());
        config::check_log_level(&level)
            .map_err(|problem| anyhow::anyhow!("--log-level (or PHOTOMESH_LOG): {problem}"))?;
        init_logging(&level);
        return demo::demo(dir, keep, photos);
    }
    let home_path = match cli.home {
        Some(h) => h,
        None => default_home()?,
    };
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| home_path.join(config::FILE_NAME));
    let overrides = Overrides {
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
    let loaded = Loaded::load(&config_path, overrides)?;
    init_logging(&loaded.config.log.level);
    match cli.command {
        Command::Config(ConfigCommand::Show) => {
            out_part!("{}", loaded.show())?;
            Ok(true)
        }
        Command::Config(ConfigCommand::Init) => {
            config::write_default(&config_path)?;
            out!(
                "Wrote {}: every setting, documented and commented out at its default.",
                config_path.display()
            )?;
            Ok(true)
        }
        Command::Init { recover, from, .. } => {
            init(&home_path, &config_path, &loaded, recover, from)
        }
        // Before the home is opened: its index may not open.
        Command::RepairIndex { name, json } => {
            let name = name.or_else(|| loaded.config.node.name.clone());
            repair::repair_index(&home_path, name.as_deref(), json)
        }
        Command::Demo { .. } => unreachable!("handled above: the demo has no home"),
        command => {
            let home = Home::open(&home_path)?;
            with_home(command, home, &home_path, &loaded)
        }
    }
}

/// The verbs that work on an existing home.
fn with_home(command: Command, home: Home, home_path: &Path, loaded: &Loaded) -> Result<bool> {
    match command {
        Command::Pair {
            role,
            png,
            expires,
            listen,
        } => pair::pair(&home, role, png, expires, listen),
        Command::Join {
            code,
            qr,
            leave_current_mesh,
        } => pair::join(home, code, qr.as_deref(), leave_current_mesh),
        Command::Devices { json } => devices::devices(&home, home_path, json),
        Command::Revoke { device } => devices::revoke(home, &device),
        Command::Rename { device, name } => devices::rename(&home, &device, &name),
        Command::RecoveryKey(RecoveryCommand::Rotate { png }) => {
            devices::rotate_recovery_key(home, png)
        }
        Command::RecoveryKey(RecoveryCommand::Export { png, again }) => {
            devices::export_recovery_key(&home, png, again)
        }
        Command::Run { hold, web, .. } => run::run(home, home_path, &loaded.config, hold, web),
        Command::Peer(PeerCommand::Add { address }) => peer::add(&home, &address),
        Command::Peer(PeerCommand::List) => peer::list(&home),
        Command::Ping {
            address,
            device,
            json,
        } => peer::ping(&home, address, device, json),
        Command::Folder(cmd) => folder::folder(&home, cmd),
        Command::Scan { json } => scan::scan(&home, home_path, &loaded.config, json),
        Command::Status { photo: None, json } => {
            status::status(&home, home_path, &loaded.config, json)
        }
        Command::Status {
            photo: Some(photo),
            json,
        } => status::photo(&home, &loaded.config, &photo, json),
        Command::Photos { folder, json } => status::photos(&home, folder.as_deref(), json),
        Command::Restore {
            to,
            folder,
            since,
            until,
            paths,
            version,
            all_versions,
            dry_run,
            json,
        } => {
            let mut selection = restore::selection(folder, since, until, paths)?;
            selection.versions = match (version, all_versions) {
                (Some(0), _) => bail!("--version counts from 1 (`photomesh versions` lists them)"),
                (Some(n), _) => photomesh::library::restore::Versions::Number(n),
                (None, true) => photomesh::library::restore::Versions::All,
                (None, false) => photomesh::library::restore::Versions::Newest,
            };
            restore::restore(
                &home,
                home_path,
                &loaded.config,
                &to,
                &selection,
                dry_run,
                json,
            )
        }
        Command::Delete {
            photos,
            folder,
            since,
            until,
            originals,
            dry_run,
            json,
        } => trash::delete(
            &home,
            home_path,
            &loaded.config,
            trash::DeleteArgs {
                photos,
                folder,
                since,
                until,
                originals,
                dry_run,
                json,
            },
        ),
        Command::Trash(cmd) => trash::trash(&home, home_path, &loaded.config, cmd),
        Command::Versions { photo, json } => status::versions(&home, &photo, json),
        Command::FreeUpSpace {
            folder,
            older_than,
            dry_run,
            json,
        } => free_up::free_up_space(
            &home,
            home_path,
            &loaded.config,
            free_up::FreeUpArgs {
                folder,
                older_than,
                dry_run,
                json,
            },
        ),
        Command::Verify { json } => restore::verify(&home, json),
        Command::Drill { sample, json } => drill::drill(home_path, sample, json),
        Command::Web(WebCommand::Password) => web::password(home_path),
        Command::Open { print } => web::open(&loaded.config, print),
        Command::Init { .. }
        | Command::Config(_)
        | Command::Demo { .. }
        | Command::RepairIndex { .. } => {
            unreachable!("handled before the home is opened")
        }
    }
}

/// `photomesh init`: a new device in a new home.
fn init(
    home_path: &Path,
    config_path: &Path,
    loaded: &Loaded,
    recover: Option<String>,
    from: Option<String>,
) -> Result<bool> {
    use photomesh_protocol::recovery::Phrase;
    let Some(name) = loaded.config.node.name.as_deref() else {
        bail!(
            "give the device a name with --name NAME (or `name` under [node] in {})",
            config_path.display()
        );
    };
    let recovered = match recover {
        Some(phrase) => {
            match Phrase::parse(&phrase).context("the recovery phrase was not accepted")? {
                Phrase::KeyRing(ring) => Some(ring),
                Phrase::Recovery(key) => {
                    let Some(from) = from else {
                        bail!(
                            "the recovery phrase rejoins its mesh through a device of it that \
                             survives (an offsite vault is enough): add --from HOST:PORT, its \
                             address"
                        );
                    };
                    return devices::recover(home_path, name, &key, &from);
                }
            }
        }
        None => None,
    };
    let home = photomesh::mesh::create_device(home_path, name, recovered, now_ms())?;
    out!("Created device {:?} in {}", name, home_path.display())?;
    out!("Device ID: {}", home.device.device_id())?;
    out!("Next: photomesh folder add PATH, then photomesh scan")?;
    out!(
        "And write down the recovery phrase (the only way back if every full device is lost): \
         photomesh recovery-key export"
    )?;
    Ok(true)
}

/// Starts logging to standard error at `level` (already checked by the config module). When
/// standard error is the journal, lines carry no timestamp: the journal adds its own (and
/// colour is off, as for any standard error that is no terminal). Every field is escaped
/// (`photomesh::shown`): what a peer or a file put in a message stays on its one line.
fn init_logging(level: &str) {
    let journal = photomesh::daemon::notify::stderr_is_journal();
    let subscriber = tracing_subscriber::fmt()
        .fmt_fields(photomesh::shown::log_fields())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if journal {
        subscriber.without_time().init();
    } else {
        subscriber.init();
    }
}
/// What the node running on this home reports live, or `None` if none runs (a node that
/// cannot be asked is reported on standard error and treated as not running).
pub(crate) fn live_status(home: &Path) -> Option<photomesh::net::control::LiveStatus> {
    match photomesh::net::control::live_status(home) {
        Ok(live) => live,
        Err(e) => {
            say!("warning: {e}");
            None
        }
    }
}
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Resolves on SIGINT or SIGTERM. Both are taken from their default action (ending the
/// process) here, when called, not when the future is first polled: a node that has said it
/// is listening must stop cleanly on a signal that comes at once. Needs a runtime entered.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let next = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            () = next(int) => {}
            () = next(term) => {}
        }
    }
}
