//! The command line's grammar: every verb, flag and default, as clap reads them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// photomesh: a peer-to-peer photo backup mesh with no server and no account.
#[derive(Parser)]
#[command(version, about, max_term_width = 100)]
pub struct Cli {
    /// The node's home directory [default: the platform's data directory, e.g.
    /// ~/.local/share/photomesh].
    #[arg(long, global = true, env = "PHOTOMESH_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// The configuration file [default: HOME/config.toml; absent means every default].
    #[arg(long, global = true, env = "PHOTOMESH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What is logged to standard error: error, warn, info, debug or trace, or a filter such
    /// as photomesh=debug,quinn=warn [default: `[log] level` in the file, else warn].
    #[arg(long, global = true, env = "PHOTOMESH_LOG", value_name = "LEVEL")]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a new device: keys, library key and index, in a new home.
    Init {
        /// A name for this device, shown to the other devices (e.g. "laptop") [default:
        /// `[node] name` in the configuration file].
        #[arg(long)]
        name: Option<String>,
        /// Rejoin the mesh of a recovery phrase (from `recovery-key export`), through the
        /// member at --from, instead of founding a new mesh.
        #[arg(long, value_name = "PHRASE")]
        recover: Option<String>,
        /// The address of a surviving member (a vault is enough), HOST:PORT, for --recover.
        #[arg(long, value_name = "HOST:PORT", requires = "recover")]
        from: Option<String>,
    },
    /// Invite a device into the mesh: show a QR code and wait for it to join.
    Pair {
        /// The role offered to the new device.
        #[arg(long, value_enum, default_value = "full")]
        role: RoleArg,
        /// Also write the QR code to this PNG file.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
        /// How long the code works, from 1m to 7d (e.g. 90s, 10m, 1h).
        #[arg(long, default_value = "10m", value_parser = parse_code_lifetime)]
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
    /// Rename a device, on every device of the mesh (a full device renames any member; any
    /// device renames itself).
    Rename {
        /// The device: its ID, or its name now (from `photomesh devices`).
        device: String,
        /// Its new name.
        name: String,
    },
    /// The page the running node serves (`[web]`).
    #[command(subcommand)]
    Web(WebCommand),
    /// Open the running node's page in this computer's browser.
    Open {
        /// Only print the page's address.
        #[arg(long)]
        print: bool,
    },
    /// The recovery key: the only way back if every full device is lost.
    #[command(subcommand, name = "recovery-key")]
    RecoveryKey(RecoveryCommand),
    /// Run the node: accept connections from the mesh's devices until stopped.
    Run {
        /// Where to listen [default: `[node] listen` in the configuration file, else
        /// [::]:7447, every IPv6 and IPv4 address].
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Which blobs to keep copies of: `all`, or only the photos this device added
        /// (`own`, for a device short of space; its originals are still served). A vault
        /// holds all. [default: `[storage] hold` in the configuration file, else all]
        #[arg(long, value_name = "all|own")]
        hold: Option<String>,
        /// Where to serve the page [default: `[web] listen` in the configuration file, else
        /// 127.0.0.1:8470].
        #[arg(long, value_name = "ADDR")]
        web: Option<SocketAddr>,
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
        /// Only where this photo's copies are and when each was last verified
        /// (`LABEL/PATH`, as `photomesh photos` prints it).
        #[arg(long, value_name = "LABEL/PATH")]
        photo: Option<String>,
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
        /// Only photos taken (or, without a capture time, modified) on or after this local
        /// date: YYYY-MM-DD or "YYYY-MM-DD HH:MM:SS".
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only photos taken (or modified) before this local date.
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Only these photos or folders: LABEL/PATH, or a PATH within the folders, or a
        /// folder above either. Repeat for several.
        #[arg(long = "path", value_name = "PATH")]
        paths: Vec<String>,
        /// Version N of each photo instead of the newest (`photomesh versions` numbers them,
        /// 1 the first recorded), at the photo's own path.
        #[arg(long, value_name = "N", conflicts_with = "all_versions")]
        version: Option<usize>,
        /// Every version of each photo: the newest at its path, each earlier one beside it
        /// as NAME.vN.EXT.
        #[arg(long)]
        all_versions: bool,
        /// Say what would be written and where its bytes would come from; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put photos in the mesh's trash (every version of each), on every device: kept for
    /// `[trash] retention` (60 days), then purged. Your files in the folders are not touched.
    Delete {
        /// The photos: LABEL/PATH as `photomesh photos` lists them, a folder above them, or a
        /// record ID.
        photos: Vec<String>,
        /// Every photo of this folder (with --since/--until/--path: only those there).
        #[arg(long, value_name = "LABEL")]
        folder: Option<String>,
        /// Only photos taken (or, without a capture time, modified) on or after this local
        /// date: YYYY-MM-DD or "YYYY-MM-DD HH:MM:SS".
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only photos taken (or modified) before this local date.
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Also remove their files from this device's folders (only files still as recorded).
        #[arg(long)]
        originals: bool,
        /// Say what would go to the trash; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The mesh's trash: list it, take photos back out of it, or empty it.
    #[command(subcommand)]
    Trash(TrashCommand),
    /// List the versions of a photo (each edit recorded is one), numbered from 1.
    Versions {
        /// The photo: LABEL/PATH, as `photomesh photos` lists it.
        photo: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Free space on this device: remove from its folders the originals of photos that have
    /// at least `[storage] free_up_copies` (2) verified copies on other devices. The photos
    /// stay in the library on every device; `photomesh restore` brings them back.
    #[command(name = "free-up-space")]
    FreeUpSpace {
        /// Only this folder.
        #[arg(long, value_name = "LABEL")]
        folder: Option<String>,
        /// Only photos recorded at least this long ago: 90s, 10m, 24h, 60d.
        #[arg(long, value_name = "DURATION", default_value = "24h",
              value_parser = photomesh::home::config::parse_duration)]
        older_than: std::time::Duration,
        /// Say what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore drill: fetch a random sample of photos from every other device (vaults too)
    /// and check each as a restore would, writing nothing. Needs the node running.
    Drill {
        /// Photos checked on each device.
        #[arg(long, default_value_t = 8)]
        sample: usize,
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
    /// Rebuild a damaged index: move it aside, keep what can still be read (folders,
    /// settings, peers, the sealed records) and register every blob that verifies. The keys
    /// and your photos are not touched. Refuses while a node runs on the home.
    #[command(name = "repair-index")]
    RepairIndex {
        /// The device's name, if it cannot be recovered from the old index [default:
        /// `[node] name` in the configuration file].
        #[arg(long)]
        name: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum PeerCommand {
    /// Add an address (HOST:PORT) where a device of the mesh runs; the node dials it.
    Add {
        /// The address.
        address: String,
    },
    /// List the configured addresses.
    List,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration as TOML, with where each value came from (a flag,
    /// the file, or the default).
    Show,
    /// Write a fully commented default configuration file (HOME/config.toml, or the file
    /// --config names). Refuses to overwrite one.
    Init,
}

#[derive(Subcommand)]
pub enum WebCommand {
    /// Set the page's password (needed to serve it beyond this computer). Asked for twice on
    /// a terminal; otherwise read as one line from standard input.
    Password,
}

#[derive(Subcommand)]
pub enum RecoveryCommand {
    /// Print the recovery phrase (and its QR code). Anyone who has it can read every photo.
    Export {
        /// Also write the QR code to this PNG file.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
        /// Print it again although it was exported before.
        #[arg(long)]
        again: bool,
    },
    /// Make a new recovery phrase; the old one stops working (e.g. it was seen by someone).
    Rotate {
        /// Also write the new phrase's QR code to this PNG file.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    /// Holds the library key: reads, adds, restores, pairs and revokes.
    Full,
    /// Stores ciphertext only and can read nothing.
    Vault,
}

#[derive(Subcommand)]
pub enum TrashCommand {
    /// What is in the trash, and when each photo leaves it for good.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take photos out of the trash, on every device (every version of each).
    Restore {
        /// The photos: LABEL/PATH as `trash list` shows them, a folder above them, or a
        /// record ID.
        photos: Vec<String>,
        /// Every photo in the trash.
        #[arg(long)]
        all: bool,
        /// Say what would come back; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Purge the trash now, on every device: all of it, or what has been in it this long
    /// (e.g. 30d). This cannot be undone.
    Empty {
        /// Only photos in the trash for at least this long: 90s, 10m, 24h, 60d.
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        /// Say what would be purged; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum FolderCommand {
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

/// `pair --expires`: a duration from [`MIN_LIFETIME_S`] to [`MAX_LIFETIME_S`], so the code
/// carries exactly the expiry shown and a forgotten invitation does not stay open for long.
///
/// [`MIN_LIFETIME_S`]: photomesh_protocol::pairing::MIN_LIFETIME_S
/// [`MAX_LIFETIME_S`]: photomesh_protocol::pairing::MAX_LIFETIME_S
fn parse_code_lifetime(s: &str) -> Result<std::time::Duration, String> {
    use photomesh_protocol::pairing::{MAX_LIFETIME_S, MIN_LIFETIME_S};
    let d = photomesh::home::config::parse_duration(s)?;
    if d.as_secs() < MIN_LIFETIME_S {
        Err(format!(
            "a pairing code works for at least {MIN_LIFETIME_S} seconds (1m), long enough to scan it"
        ))
    } else if d.as_secs() > MAX_LIFETIME_S {
        Err(format!(
            "a pairing code works for at most 7 days ({MAX_LIFETIME_S} seconds); make a new one when it is needed"
        ))
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_lives_between_a_minute_and_a_week() {
        assert!(parse_code_lifetime("59s").unwrap_err().contains("at least"));
        assert_eq!(parse_code_lifetime("1m").unwrap().as_secs(), 60);
        assert_eq!(parse_code_lifetime("7d").unwrap().as_secs(), 7 * 86_400);
        assert!(
            parse_code_lifetime("8d")
                .unwrap_err()
                .contains("at most 7 days")
        );
        assert!(
            parse_code_lifetime("99999d")
                .unwrap_err()
                .contains("at most")
        );
        assert!(parse_code_lifetime("soon").is_err());
    }
}
