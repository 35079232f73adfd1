//! The configuration file: `<home>/config.toml` (or the file `--config` names), TOML, every
//! field optional.
//!
//! A setting comes from the command line if a flag gives it, else from the file, else from
//! its default ([`Source`]). An absent file means every default. An unknown key, or a value
//! that does not fit, is an error that names the file, the key and what is allowed — a typo
//! never silently falls back to a default.
//!
//! This module parses, validates and describes the settings; it does not act on them. The
//! command line (`main.rs`) wires `node.listen`, `peers.addresses` and `log.level` into the
//! node; the other sections are parsed and exposed here for the parts that use them
//! (discovery, the folder watcher, storage, status).
//!
//! [`FIELDS`] lists every key with its documentation: `photomesh config init` writes it as a
//! fully commented default file, and `photomesh config show` prints the effective values
//! with where each came from.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

mod fields;
pub use fields::{FIELDS, Field, default_file, write_default};

/// The configuration file's name inside a home.
pub const FILE_NAME: &str = "config.toml";

/// Why the configuration could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value that does not fit.
    #[error(
        "the configuration file {path} is not valid: {problem}\n\
         (`photomesh --config NEW.toml config init` writes a documented example of every setting)"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key, its line, and what is allowed.
        problem: String,
    },
    /// A flag's value does not fit.
    #[error("{flag}: {problem}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// `config init` would overwrite an existing file.
    #[error("{0} already exists; photomesh does not overwrite it (remove it first, or edit it)")]
    Exists(PathBuf),
    /// The file could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: std::io::Error,
    },
    /// The folder the file would go in does not exist: no home there yet.
    #[error(
        "{0} does not exist: run `photomesh init` first to make the home there (it writes no \
         configuration file; `config init` then adds one), or give --config a path in an \
         existing folder"
    )]
    NoHome(PathBuf),
}

/// Every setting. Each field says what its default is; an `Option` field says what `None`
/// means.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[node]`: this device.
    pub node: NodeConfig,
    /// `[peers]`: addresses to dial.
    pub peers: PeersConfig,
    /// `[folders]`: what in the folders is backed up.
    pub folders: FoldersConfig,
    /// `[discovery]`: finding the mesh's devices on the LAN (mDNS).
    pub discovery: DiscoveryConfig,
    /// `[watch]`: noticing new photos in the folders.
    pub watch: WatchConfig,
    /// `[storage]`: which blobs this device keeps.
    pub storage: StorageConfig,
    /// `[scrub]`: re-verifying what this device stores.
    pub scrub: ScrubConfig,
    /// `[drill]`: restore drills.
    pub drill: DrillConfig,
    /// `[nat]`: being reached from beyond the home router.
    pub nat: NatConfig,
    /// `[web]`: the page the running node serves.
    pub web: WebConfig,
    /// `[trash]`: how long deleted photos are kept.
    pub trash: TrashConfig,
    /// `[versions]`: which earlier versions of edited photos are kept.
    pub versions: VersionsConfig,
    /// `[status]`: what `status` measures against.
    pub status: StatusConfig,
    /// `[log]`: what the node logs.
    pub log: LogConfig,
}

/// `[node]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Where `photomesh run` listens (`--listen`). Default `[::]:7447`: every address, IPv6
    /// and IPv4 (IPv4 alone where there is no IPv6).
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// The name `photomesh init` gives the device when `--name` is not given. `None`: `init`
    /// needs `--name`.
    pub name: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: crate::daemon::DEFAULT_LISTEN,
            name: None,
        }
    }
}

/// `[peers]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeersConfig {
    /// Addresses (`host:port`) where devices of the mesh run, dialled by the running node in
    /// addition to those added with `photomesh peer add`. Default: none.
    #[serde(deserialize_with = "host_ports")]
    pub addresses: Vec<String>,
}

impl PeersConfig {
    /// Resolves the configured addresses; one that does not resolve now is left out with a
    /// warning (the device may be away), not a reason to stop the node.
    pub fn resolve(&self) -> Vec<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        let mut out = Vec::new();
        for a in &self.addresses {
            match a.to_socket_addrs() {
                Ok(resolved) => out.extend(resolved),
                Err(e) => tracing::warn!("the configured peer {a:?} does not resolve: {e}"),
            }
        }
        out
    }
}

/// `[folders]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FoldersConfig {
    /// Ignore patterns: what in the folders is not backed up (see [`crate::ignore`]).
    /// Default [`crate::ignore::DEFAULT_IGNORE`]; a list given replaces it.
    #[serde(deserialize_with = "ignore_patterns")]
    pub ignore: Vec<String>,
}

impl Default for FoldersConfig {
    fn default() -> Self {
        Self {
            ignore: crate::ignore::DEFAULT_IGNORE
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
        }
    }
}

impl FoldersConfig {
    /// The compiled patterns (checked when the file was read).
    pub fn selection(&self) -> crate::ignore::Selection {
        crate::ignore::Selection::new(&self.ignore).unwrap_or_default()
    }
}

fn ignore_patterns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    crate::ignore::Selection::new(&list).map_err(serde::de::Error::custom)?;
    Ok(list)
}

/// `[discovery]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Announce this device on the LAN by mDNS. Default `true`.
    pub advertise: bool,
    /// Look for the mesh's devices on the LAN by mDNS and dial them. Default `true`.
    pub browse: bool,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            advertise: true,
            browse: true,
        }
    }
}

/// `[watch]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Watch the folders while the node runs, recording new and changed photos as they
    /// appear. Default `true`.
    pub enabled: bool,
    /// How often the running node rescans every folder in full, to catch what the watcher
    /// missed. Default one hour.
    #[serde(deserialize_with = "duration")]
    pub rescan_interval: Duration,
    /// What a photo deleted from a watched folder on the device that added it means:
    /// `keep` (only that this device no longer has its original; the default) or `trash`
    /// (it goes to the mesh's trash).
    pub deletions: Deletions,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rescan_interval: Duration::from_secs(3600),
            deletions: Deletions::Keep,
        }
    }
}

/// What a deletion in a watched folder means (`[watch] deletions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Deletions {
    /// Nothing is deleted from the mesh: the copies are kept (and fetched back).
    #[default]
    Keep,
    /// The photo goes to the mesh's trash, recoverable for the retention.
    Trash,
}

impl Deletions {
    /// The name in the file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Trash => "trash",
        }
    }
}

impl<'de> Deserialize<'de> for Deletions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "keep" => Ok(Self::Keep),
            "trash" => Ok(Self::Trash),
            other => Err(serde::de::Error::custom(format!(
                "{other:?} is not \"keep\" or \"trash\""
            ))),
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Which photos this device keeps a copy of. Default [`Hold::All`].
    pub hold: Hold,
    /// Free space the node leaves on the blob store's disk: it fetches no blob that would
    /// eat into it. `None`: 5% of the disk, at most 1 GiB.
    #[serde(deserialize_with = "size")]
    pub reserve: Option<u64>,
    /// The most bytes of blobs this device stores for the mesh (a vault at a friend's
    /// house). `None`: no cap but the disk.
    #[serde(deserialize_with = "size")]
    pub max_bytes: Option<u64>,
    /// How many verified copies on other devices a photo needs before `free-up-space`
    /// removes its original here (and `status` counts a released one safe). Default
    /// [`DEFAULT_FREE_UP_COPIES`]; at least 1.
    #[serde(deserialize_with = "free_up_copies")]
    pub free_up_copies: u32,
}

/// `[storage] free_up_copies` unless configured: two verified copies on other devices.
pub const DEFAULT_FREE_UP_COPIES: u32 = 2;

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            hold: Hold::default(),
            reserve: None,
            max_bytes: None,
            free_up_copies: DEFAULT_FREE_UP_COPIES,
        }
    }
}

fn free_up_copies<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = i64::deserialize(d)?;
    match u32::try_from(n) {
        Ok(copies) if copies >= 1 => Ok(copies),
        _ => Err(serde::de::Error::custom(format!(
            "{n} is not a number of copies: use a whole number from 1 (at least one verified \
             copy on another device before an original is removed here; the default is 2)"
        ))),
    }
}

/// The free space kept on the blob store's disk unless configured: 5% of the disk, at most
/// 1 GiB.
pub fn default_reserve(disk_bytes: u64) -> u64 {
    (disk_bytes / 20).min(1 << 30)
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let s = String::deserialize(d)?;
    parse_size(&s).map(Some).map_err(serde::de::Error::custom)
}

/// Parses a size such as `1G`, `512M`, `64K` (powers of 1024; `GiB`, `MB`… are read the same)
/// or a bare number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || {
        format!("{s:?} is not a size: write a number with K, M or G, such as \"1G\" or \"500M\"")
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift).ok_or_else(bad)
}

/// A size as the configuration writes it: `1G`, `512M`, or bytes.
pub fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// A full scrub pass every 30 days unless configured (`[scrub] period`): a copy counts towards
/// the replica goal only if its device verified it within the period.
pub const DEFAULT_SCRUB_PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// `[scrub]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrubConfig {
    /// How often every stored blob is re-verified. Default 30 days.
    #[serde(deserialize_with = "duration")]
    pub period: Duration,
    /// At most this many bytes a second read by the scrub. Default 10 MiB.
    #[serde(deserialize_with = "size")]
    pub max_rate: Option<u64>,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        Self {
            period: DEFAULT_SCRUB_PERIOD,
            max_rate: Some(10 << 20),
        }
    }
}

/// `[nat]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatConfig {
    /// Whether the running node asks the router to map its port (PCP, else NAT-PMP), so
    /// that devices beyond the router reach it. Default false.
    pub map_port: bool,
    /// The router to ask; default: the default gateway.
    pub gateway: Option<std::net::IpAddr>,
}

/// `[web]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Whether `photomesh run` serves the page. Default true.
    pub enabled: bool,
    /// Where the page is served. Default `127.0.0.1:8470`, this computer only; any other
    /// address needs a password (`photomesh web password`).
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Host names the page answers to besides IP addresses, `localhost` and this computer's
    /// own name (with and without `.local`): a guard against DNS rebinding.
    pub hosts: Vec<String>,
    /// Where photos added from a browser go (in a folder per phone) unless a folder
    /// labelled `Uploads` exists. `None`: `HOME/Uploads`.
    pub uploads: Option<PathBuf>,
}

/// Where the page is served unless configured.
pub const DEFAULT_WEB_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8470);

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: DEFAULT_WEB_LISTEN,
            hosts: Vec::new(),
            uploads: None,
        }
    }
}

/// `[drill]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrillConfig {
    /// How often the running node runs a restore drill by itself; zero: never. Default 30
    /// days.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
}

impl Default for DrillConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30 * 86_400),
        }
    }
}

/// `[trash]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrashConfig {
    /// How long a deleted photo stays in the trash before this device purges it. Default 60
    /// days.
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
    /// How long after it hears of a purge signed by another device (`trash empty`, expired
    /// versions) this device waits before dropping its copies: time to revoke a stolen
    /// device before its word destroys anything. Default one day.
    #[serde(deserialize_with = "duration")]
    pub purge_hold: Duration,
}

/// A purge signed by another device is held this long unless configured (`[trash]
/// purge_hold`).
pub const DEFAULT_PURGE_HOLD: Duration = Duration::from_secs(86_400);

/// `[versions]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VersionsConfig {
    /// Which earlier versions of an edited photo are kept. Default all.
    pub keep: Keep,
}

/// Which earlier versions of an edited photo are kept (`[versions] keep`); the newest always is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Keep {
    /// Every version (the default).
    #[default]
    All,
    /// The newest N versions (the current one included).
    Newest(u32),
    /// Versions replaced by a newer one less than this long ago.
    For(Duration),
}

impl Keep {
    /// The value as the file writes it.
    pub fn name(self) -> String {
        match self {
            Self::All => "all".into(),
            Self::Newest(n) => n.to_string(),
            Self::For(d) => format_duration(d),
        }
    }

    /// Parses "all", a count of versions (at least 1) or a duration.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "all" {
            return Ok(Self::All);
        }
        if let Ok(n) = s.parse::<u32>() {
            return match n {
                0 => Err("keep at least 1 version (the photo as it is now)".into()),
                n => Ok(Self::Newest(n)),
            };
        }
        match parse_duration(s) {
            Ok(d) if !d.is_zero() => Ok(Self::For(d)),
            _ => Err(format!(
                "{s:?} is not \"all\", a number of versions or a duration such as \"90d\""
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Deleted photos stay in the trash this long unless configured (`[trash] retention`).
pub const DEFAULT_TRASH_RETENTION: Duration = Duration::from_secs(60 * 86_400);

impl Default for TrashConfig {
    fn default() -> Self {
        Self {
            retention: DEFAULT_TRASH_RETENTION,
            purge_hold: DEFAULT_PURGE_HOLD,
        }
    }
}

/// Which photos a device keeps a copy of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Hold {
    /// A copy of every photo of the mesh (a laptop, a NAS).
    #[default]
    All,
    /// Only this device's own photos, from its folders (a phone short of space).
    Own,
}

impl Hold {
    /// The name in the file.
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Own => "own",
        }
    }
}

impl<'de> Deserialize<'de> for Hold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "all" => Ok(Self::All),
            "own" => Ok(Self::Own),
            _ => Err(serde::de::Error::custom(format!(
                "{s:?} is not a hold setting: use \"all\" (a copy of every photo) or \"own\" \
                 (only this device's own photos)"
            ))),
        }
    }
}

/// `[status]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// How many verified copies on distinct devices make a photo safe. `None`: 3, or every
    /// member if the mesh has fewer.
    #[serde(deserialize_with = "replica_goal")]
    pub replica_goal: Option<u32>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// What is logged to standard error (`--log-level`, `PHOTOMESH_LOG`): `error`, `warn`,
    /// `info`, `debug` or `trace`, or a filter such as `photomesh=debug,quinn=warn`. Default
    /// `warn`.
    #[serde(deserialize_with = "log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "warn".into(),
        }
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Nothing set it.
    Default,
    /// The configuration file.
    File,
    /// A command-line flag (or its environment variable), named.
    Flag(&'static str),
}

/// The effective configuration: the file's settings with the flags applied, and where each
/// came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings.
    pub config: Config,
    /// The file they were read from (which may not exist).
    pub path: PathBuf,
    /// Whether the file exists.
    pub file_exists: bool,
    /// The keys (`section.key`) the file sets.
    file_keys: BTreeSet<String>,
    /// The keys flags set, with the flag's name.
    flag_keys: Vec<(String, &'static str)>,
}

/// The settings flags can give, which win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `run --listen`.
    pub listen: Option<SocketAddr>,
    /// `init --name`.
    pub name: Option<String>,
    /// `--log-level` or `PHOTOMESH_LOG`.
    pub log_level: Option<String>,
}

impl Loaded {
    /// Reads `path` (absent: every default) and applies `overrides`.
    pub fn load(path: &Path, overrides: Overrides) -> Result<Self, ConfigError> {
        let (config, file_exists, file_keys) = match std::fs::read_to_string(path) {
            Ok(text) => {
                let (config, keys) = parse(&text).map_err(|problem| ConfigError::Invalid {
                    path: path.to_owned(),
                    problem,
                })?;
                (config, true, keys)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (Config::default(), false, BTreeSet::new())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut loaded = Self {
            config,
            path: path.to_owned(),
            file_exists,
            file_keys,
            flag_keys: Vec::new(),
        };
        loaded.apply(overrides)?;
        Ok(loaded)
    }

    fn apply(&mut self, overrides: Overrides) -> Result<(), ConfigError> {
        if let Some(listen) = overrides.listen {
            self.config.node.listen = listen;
            self.flag_keys.push(("node.listen".into(), "--listen"));
        }
        if let Some(name) = overrides.name {
            self.config.node.name = Some(name);
            self.flag_keys.push(("node.name".into(), "--name"));
        }
        if let Some(level) = overrides.log_level {
            check_log_level(&level).map_err(|problem| ConfigError::Flag {
                flag: "--log-level (or PHOTOMESH_LOG)",
                problem,
            })?;
            self.config.log.level = level;
            self.flag_keys
                .push(("log.level".into(), "--log-level (or PHOTOMESH_LOG)"));
        }
        Ok(())
    }

    /// Where the setting `key` (`section.key`) came from.
    pub fn source(&self, key: &str) -> Source {
        if let Some((_, flag)) = self.flag_keys.iter().find(|(k, _)| k == key) {
            Source::Flag(flag)
        } else if self.file_keys.contains(key) {
            Source::File
        } else {
            Source::Default
        }
    }

    /// The effective configuration as TOML, each value commented with where it came from
    /// (what `photomesh config show` prints).
    pub fn show(&self) -> String {
        let mut out = String::new();
        let file_note = if self.file_exists {
            ""
        } else {
            " (absent: defaults apply)"
        };
        out.push_str(&format!(
            "# Effective configuration; file: {}{file_note}\n",
            self.path.display()
        ));
        let mut section = "";
        for field in FIELDS {
            if field.section != section {
                section = field.section;
                out.push_str(&format!("\n[{section}]\n"));
            }
            let key = format!("{}.{}", field.section, field.key);
            let from = match self.source(&key) {
                Source::Default => "default".to_owned(),
                Source::File => "from the file".to_owned(),
                Source::Flag(flag) => format!("from {flag}"),
            };
            match (field.value)(&self.config) {
                Some(value) => out.push_str(&format!("{} = {value}  # {from}\n", field.key)),
                None => out.push_str(&format!("# {} is not set  ({})\n", field.key, field.unset)),
            }
        }
        out
    }
}

/// Parses a configuration file's text; also returns the keys (`section.key`) it sets.
/// The error names the key, its line and what is allowed.
pub fn parse(text: &str) -> Result<(Config, BTreeSet<String>), String> {
    let config: Config = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut keys = BTreeSet::new();
    for (section, value) in &table {
        if let toml::Value::Table(t) = value {
            for key in t.keys() {
                keys.insert(format!("{section}.{key}"));
            }
        }
    }
    Ok((config, keys))
}

/// Parses a duration such as `90s`, `10m`, `1h` or `1d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like \"30s\", \"10m\", \"1h\" or \"1d\"");
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// A duration the way [`parse_duration`] reads it, in the largest whole unit.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Checks a log level: a level, or comma-separated `target=level` directives. (Stricter than
/// `EnvFilter`, which takes a bare misspelt level for a target name and then logs nothing.)
pub fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let bad = || {
        format!(
            "{level:?} is not a log level: use \"error\", \"warn\", \"info\", \"debug\" or \
             \"trace\", or a filter such as \"photomesh=debug,quinn=warn\""
        )
    };
    for directive in level.split(',') {
        let level = match directive.split_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level,
            Some(_) => return Err(bad()),
            None => directive,
        };
        if !LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            return Err(bad());
        }
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .map(drop)
        .map_err(|_| bad())
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{s:?} is not an address: use IP:PORT, such as \"0.0.0.0:7447\" (every interface) \
             or \"127.0.0.1:0\" (loopback, any free port)"
        ))
    })
}

fn host_ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    for a in &list {
        check_host_port(a).map_err(serde::de::Error::custom)?;
    }
    Ok(list)
}

/// Checks that `a` has the form `host:port` (it is resolved when dialled).
pub fn check_host_port(a: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "{a:?} is not a peer address: use \"host:port\", such as \"192.168.1.20:7447\" or \
             \"nas.local:7447\""
        )
    };
    if a.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = a.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
        return Err(bad());
    }
    port.parse::<u16>().map_err(|_| bad())?;
    Ok(())
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let value = parse_duration(&s).map_err(serde::de::Error::custom)?;
    if value.is_zero() {
        return Err(serde::de::Error::custom(
            "the interval must be at least 1s (e.g. \"1h\")",
        ));
    }
    Ok(value)
}

fn replica_goal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n = i64::deserialize(d)?;
    match u32::try_from(n) {
        Ok(goal) if goal >= 1 => Ok(Some(goal)),
        _ => Err(serde::de::Error::custom(format!(
            "{n} is not a replica goal: use a whole number from 1 (or leave it unset for 3, or \
             every member if the mesh has fewer)"
        ))),
    }
}

fn log_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_log_level(&s).map_err(serde::de::Error::custom)?;
    Ok(s)
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, overrides: Overrides) -> Result<Loaded, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, text).unwrap();
        Loaded::load(&path, overrides)
    }

    fn error(text: &str) -> String {
        load(text, Overrides::default()).unwrap_err().to_string()
    }

    #[test]
    fn an_absent_file_means_every_default() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = Loaded::load(&dir.path().join(FILE_NAME), Overrides::default()).unwrap();
        assert!(!loaded.file_exists);
        assert_eq!(loaded.config, Config::default());
        assert_eq!(loaded.config.node.listen.to_string(), "[::]:7447");
        assert_eq!(loaded.config.storage.hold, Hold::All);
        assert_eq!(loaded.config.status.replica_goal, None);
        assert_eq!(loaded.source("node.listen"), Source::Default);
    }

    #[test]
    fn ignore_patterns_default_to_os_litter_and_a_bad_one_is_named() {
        let defaults = Config::default();
        assert!(defaults.folders.ignore.iter().any(|p| p == ".DS_Store"));
        assert!(defaults.folders.selection().ignores("Thumbs.db"));
        let loaded = load("[folders]\nignore = [\"*.tmp\"]\n", Overrides::default()).unwrap();
        let selection = loaded.config.folders.selection();
        assert!(selection.ignores("a/b.tmp"));
        assert!(
            !selection.ignores(".DS_Store"),
            "a list replaces the default"
        );
        assert!(
            loaded
                .show()
                .contains("ignore = [\"*.tmp\"]  # from the file")
        );
        let e = error("[folders]\nignore = [\"/\"]\n");
        assert!(e.contains("folder remove"), "{e}");
    }

    #[test]
    fn every_field_parses() {
        let loaded = load(
            r#"
            [node]
            listen = "127.0.0.1:0"
            name = "nas"
            [peers]
            addresses = ["192.168.1.20:7447", "nas.local:7447", "[::1]:9"]
            [discovery]
            advertise = false
            browse = false
            [watch]
            enabled = false
            rescan_interval = "10m"
            [storage]
            hold = "own"
            reserve = "512M"
            max_bytes = "2T"
            [status]
            replica_goal = 2
            [log]
            level = "photomesh=debug,quinn=warn"
            "#,
            Overrides::default(),
        )
        .unwrap();
        let c = &loaded.config;
        assert_eq!(c.node.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.node.name.as_deref(), Some("nas"));
        assert_eq!(c.peers.addresses.len(), 3);
        assert!(!c.discovery.advertise && !c.discovery.browse && !c.watch.enabled);
        assert_eq!(c.watch.rescan_interval, Duration::from_secs(600));
        assert_eq!(c.storage.hold, Hold::Own);
        assert_eq!(c.storage.reserve, Some(512 << 20));
        assert_eq!(c.storage.max_bytes, Some(2 << 40));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert_eq!(format_size(512 << 20), "512M");
        assert_eq!(default_reserve(10_000_000_000), 500_000_000);
        assert_eq!(default_reserve(1 << 40), 1 << 30);
        assert_eq!(c.status.replica_goal, Some(2));
        assert_eq!(c.log.level, "photomesh=debug,quinn=warn");
        assert_eq!(loaded.source("watch.enabled"), Source::File);
    }

    #[test]
    fn a_flag_wins_over_the_file_which_wins_over_the_default() {
        let text = "[node]\nlisten = \"127.0.0.1:1000\"\n[log]\nlevel = \"info\"\n";
        let from_file = load(text, Overrides::default()).unwrap();
        assert_eq!(from_file.config.node.listen.port(), 1000);
        assert_eq!(from_file.config.log.level, "info");
        assert_eq!(from_file.source("node.listen"), Source::File);
        assert_eq!(from_file.source("discovery.browse"), Source::Default);

        let overrides = Overrides {
            listen: Some("127.0.0.1:2000".parse().unwrap()),
            name: None,
            log_level: Some("debug".into()),
        };
        let flagged = load(text, overrides).unwrap();
        assert_eq!(flagged.config.node.listen.port(), 2000);
        assert_eq!(flagged.config.log.level, "debug");
        assert_eq!(flagged.source("node.listen"), Source::Flag("--listen"));
        let shown = flagged.show();
        assert!(
            shown.contains("listen = \"127.0.0.1:2000\"  # from --listen"),
            "{shown}"
        );
        assert!(shown.contains("browse = true  # default"), "{shown}");
    }

    #[test]
    fn an_unknown_key_names_the_file_the_key_and_what_is_allowed() {
        let e = error("[node]\nlisten = \"127.0.0.1:0\"\nlisen = \"x\"\n");
        assert!(e.contains(FILE_NAME), "{e}");
        assert!(e.contains("lisen"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("`listen`") && e.contains("`name`"), "{e}");
        let e = error("[nodes]\n");
        assert!(e.contains("nodes") && e.contains("`discovery`"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_allowed() {
        for (text, key, allowed) in [
            ("[node]\nlisten = \"localhost\"\n", "listen", "IP:PORT"),
            ("[peers]\naddresses = [\"nas\"]\n", "addresses", "host:port"),
            (
                "[peers]\naddresses = [\"nas:99999\"]\n",
                "addresses",
                "host:port",
            ),
            (
                "[watch]\nrescan_interval = \"soon\"\n",
                "rescan_interval",
                "\"10m\"",
            ),
            (
                "[watch]\nrescan_interval = \"0s\"\n",
                "rescan_interval",
                "at least 1s",
            ),
            ("[watch]\nenabled = \"yes\"\n", "enabled", "bool"),
            ("[storage]\nhold = \"some\"\n", "hold", "\"own\""),
            ("[status]\nreplica_goal = 0\n", "replica_goal", "from 1"),
            (
                "[storage]\nfree_up_copies = 0\n",
                "free_up_copies",
                "from 1",
            ),
            ("[log]\nlevel = \"loud=\"\n", "level", "\"debug\""),
            ("[log]\nlevel = \"verbose\"\n", "level", "\"debug\""),
        ] {
            let e = error(text);
            assert!(e.contains(FILE_NAME), "{text}: {e}");
            assert!(e.contains(key), "{text}: {e}");
            assert!(e.contains(allowed), "{text}: {e}");
        }
    }

    #[test]
    fn a_bad_log_level_flag_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            log_level: Some("loud=".into()),
            ..Overrides::default()
        };
        let e = Loaded::load(&dir.path().join(FILE_NAME), overrides).unwrap_err();
        assert!(e.to_string().contains("--log-level"), "{e}");
    }

    #[test]
    fn the_commented_default_file_documents_every_field_and_parses_to_the_defaults() {
        let text = default_file();
        for field in FIELDS {
            assert!(
                text.contains(&format!("# {} =", field.key)),
                "{} missing",
                field.key
            );
        }
        let (config, keys) = parse(&text).unwrap();
        assert_eq!(config, Config::default());
        assert!(keys.is_empty());
        // Uncommenting every setting gives the defaults too.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") => format!("{rest}\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        let (config, keys) = parse(&uncommented).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(keys.len(), FIELDS.len() - 6, "all but the six unset ones");
    }

    #[test]
    fn config_init_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        write_default(&path).unwrap();
        let e = write_default(&path).unwrap_err();
        assert!(matches!(e, ConfigError::Exists(_)), "{e}");
    }

    #[test]
    fn durations_read_and_print_alike() {
        for (s, secs) in [
            ("90s", 90),
            ("10m", 600),
            ("1h", 3600),
            ("2d", 172_800),
            ("5", 5),
        ] {
            assert_eq!(parse_duration(s).unwrap(), Duration::from_secs(secs));
        }
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "90m");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }
}
