//! The home directory: where a node keeps its keys, its index and its blobs.
//!
//! ```text
//! HOME/
//!   device.key      the device's Ed25519 and X25519 secrets (mode 0600)
//!   library.keys    every epoch of the library key this device holds (mode 0600)
//!   recovery.key    the recovery phrase's seed, on the device that made it (mode 0600)
//!   index.sqlite    the SQLite index (WAL mode; -wal and -shm beside it)
//!   blobs/          the content-addressed blob store
//! ```
//!
//! Key files are small text files (`key value` lines) so an operator can see what they are;
//! they are written to a temporary file, fsynced and renamed, so a crash never leaves half a
//! key. The home is chosen by `--home`, else `PHOTOMESH_HOME`, else the platform's data
//! directory.

pub mod config;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use photomesh_protocol::identity::DeviceKeys;
use photomesh_protocol::keys::{KeyRing, LibraryKey};
use photomesh_protocol::recovery::RecoveryKey;

use crate::blob::store::{BlobStore, BlobStoreError};
use crate::index::{Index, IndexError};

const DEVICE_KEY_FILE: &str = "device.key";
/// The file in a home that holds the recovery key, on the device that made it.
pub const RECOVERY_KEY_FILE: &str = "recovery.key";
/// The file in a home that holds the library key ring.
pub const LIBRARY_KEYS_FILE: &str = "library.keys";
const INDEX_FILE: &str = "index.sqlite";
const BLOBS_DIR: &str = "blobs";

/// Why a home could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// `init` found something already there.
    #[error(
        "{0} already exists and is not empty; photomesh will not touch it. \
         Choose another --home, or remove it yourself if it is a home you no longer need"
    )]
    Exists(PathBuf),
    /// `init` found a home already there.
    #[error(
        "{0} already exists and is a photomesh home; photomesh will not touch it. Use it as it is \
         (`photomesh --home {0} status`); if its index is damaged, run \
         `photomesh --home {0} repair-index`"
    )]
    IsHome(PathBuf),
    /// There is no home at the path.
    #[error("no photomesh home at {0}; create one with `photomesh init --name NAME`")]
    Missing(PathBuf),
    /// A key file is damaged.
    #[error("{path} is damaged ({problem}); restore it from a backup of this home")]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// No platform data directory and no `--home`.
    #[error("cannot tell where to keep photomesh's data: pass --home DIR or set PHOTOMESH_HOME")]
    NoDefault,
    /// The OS random generator failed.
    #[error("the system's random number generator failed: {0}")]
    Random(String),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The index could not be opened.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The blob store could not be opened.
    #[error(transparent)]
    BlobStore(#[from] BlobStoreError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The default home: `$XDG_DATA_HOME/photomesh` or the platform's equivalent.
pub fn default_home() -> Result<PathBuf, HomeError> {
    dirs::data_dir()
        .map(|d| d.join("photomesh"))
        .ok_or(HomeError::NoDefault)
}

/// An opened home: the device's keys, its library keys, its index and its blob store.
pub struct Home {
    /// The home directory.
    pub path: PathBuf,
    /// This device's secret keys.
    pub device: DeviceKeys,
    /// The library key epochs this device holds.
    pub keys: KeyRing,
    /// The SQLite index.
    pub index: Index,
    /// The blob store.
    pub blobs: BlobStore,
}

/// 32 bytes from the OS's cryptographic generator.
pub fn random32() -> Result<[u8; 32], HomeError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| HomeError::Random(e.to_string()))?;
    Ok(bytes)
}

impl Home {
    /// Creates a new home with fresh device keys and either a fresh library key or, when
    /// recovering, the given key ring. Refuses a path that exists and holds anything but a
    /// `config.toml`. A new device is made by [`crate::mesh::create_device`], which also
    /// founds its mesh of one.
    pub fn create(
        path: &Path,
        name: &str,
        recovered: Option<KeyRing>,
        now_ms: u64,
    ) -> Result<Self, HomeError> {
        let device = DeviceKeys::from_secrets(random32()?, random32()?);
        Self::create_with(path, name, device, recovered, now_ms)
    }

    /// Refuses a path where [`Home::create`] could not make a home.
    pub fn check_free(path: &Path) -> Result<(), HomeError> {
        if path.join(DEVICE_KEY_FILE).exists() {
            return Err(HomeError::IsHome(path.to_owned()));
        }
        match fs::read_dir(path) {
            Ok(entries) => {
                // A configuration file written before `init` (e.g. with `[node] name`) is
                // welcome; anything else means the home is in use.
                let mut others = entries.filter(|e| {
                    e.as_ref()
                        .map_or(true, |e| e.file_name() != crate::home::config::FILE_NAME)
                });
                if others.next().is_some() {
                    return Err(HomeError::Exists(path.to_owned()));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                return Err(HomeError::Exists(path.to_owned()));
            }
            Err(e) => return Err(io_err(path)(e)),
        }
        Ok(())
    }

    /// [`Home::create`] with device keys made beforehand (a recovery signs the device's
    /// introduction before its home exists).
    pub fn create_with(
        path: &Path,
        name: &str,
        device: DeviceKeys,
        recovered: Option<KeyRing>,
        now_ms: u64,
    ) -> Result<Self, HomeError> {
        Self::check_free(path)?;
        fs::create_dir_all(path).map_err(io_err(path))?;
        // The index names every file and its plaintext hash: created private, not 0644.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path.join(INDEX_FILE))
            .map_err(io_err(&path.join(INDEX_FILE)))?;
        let keys = match recovered {
            Some(ring) => ring,
            None => KeyRing::new(LibraryKey::new(1, random32()?)),
        };
        write_secret_file(&path.join(DEVICE_KEY_FILE), &encode_device_key(&device))?;
        write_secret_file(&path.join(LIBRARY_KEYS_FILE), &encode_key_ring(&keys))?;
        let index = Index::create(&path.join(INDEX_FILE))?;
        index.set_meta("device_name", name)?;
        index.set_meta("created_at_ms", &now_ms.to_string())?;
        let blobs = BlobStore::open(path.join(BLOBS_DIR))?;
        make_private(path);
        let home = Self {
            path: path.to_owned(),
            device,
            keys,
            index,
            blobs,
        };
        Ok(home)
    }

    /// A fresh library key for the next epoch, added to the ring and saved (after a
    /// revocation). Returns the new epoch.
    pub fn rotate_library_key(&mut self) -> Result<u32, HomeError> {
        let next = self.keys.current().map_or(1, |k| k.epoch() + 1);
        self.keys
            .insert(LibraryKey::new(next, random32()?))
            .map_err(|e| HomeError::BadKeyFile {
                path: self.path.join(LIBRARY_KEYS_FILE),
                problem: e.to_string(),
            })?;
        self.save_keys()?;
        Ok(next)
    }

    /// Opens an existing home.
    pub fn open(path: &Path) -> Result<Self, HomeError> {
        let device_path = path.join(DEVICE_KEY_FILE);
        if !device_path.exists() {
            return Err(HomeError::Missing(path.to_owned()));
        }
        let device = decode_device_key(&device_path)?;
        let keys = decode_key_ring(&path.join(LIBRARY_KEYS_FILE))?;
        make_private(path);
        let index = Index::open(&path.join(INDEX_FILE))?;
        let blobs = BlobStore::open(path.join(BLOBS_DIR))?;
        Ok(Self {
            path: path.to_owned(),
            device,
            keys,
            index,
            blobs,
        })
    }

    /// Opens an existing home with a new, empty index at `index_file` (which must not exist)
    /// in place of its own, which is not opened: for `repair-index`, which builds the new
    /// index there and then puts it in place with [`replace_index`]. The keys and the blob
    /// store are the home's.
    pub fn with_new_index(path: &Path, index_file: &Path) -> Result<Self, HomeError> {
        let device_path = path.join(DEVICE_KEY_FILE);
        if !device_path.exists() {
            return Err(HomeError::Missing(path.to_owned()));
        }
        let device = decode_device_key(&device_path)?;
        let keys = decode_key_ring(&path.join(LIBRARY_KEYS_FILE))?;
        make_private(path);
        // The index names every file and its plaintext hash: created private.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(index_file)
            .map_err(io_err(index_file))?;
        let index = Index::create(index_file)?;
        let blobs = BlobStore::open(path.join(BLOBS_DIR))?;
        Ok(Self {
            path: path.to_owned(),
            device,
            keys,
            index,
            blobs,
        })
    }

    /// Reads `library.keys` again, for a handle that lives beside others (the page's): the
    /// running node or a command may have added an epoch (a revocation, a key share) since
    /// this handle read it. Returns whether the ring changed.
    pub fn reload_keys(&mut self) -> Result<bool, HomeError> {
        let keys = decode_key_ring(&self.path.join(LIBRARY_KEYS_FILE))?;
        let changed = keys != self.keys;
        self.keys = keys;
        Ok(changed)
    }

    /// Writes the key ring back to `library.keys` (atomically), after it changed.
    pub fn save_keys(&self) -> Result<(), HomeError> {
        write_secret_file(
            &self.path.join(LIBRARY_KEYS_FILE),
            &encode_key_ring(&self.keys),
        )
    }

    /// The recovery key this device made (`recovery.key`), if it made one.
    pub fn recovery_key(&self) -> Result<Option<RecoveryKey>, HomeError> {
        let path = self.path.join(RECOVERY_KEY_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let lines = read_key_lines(&path)?;
        let find = |name: &str| {
            lines
                .iter()
                .find(|l| l.first().map(String::as_str) == Some(name))
                .and_then(|l| l.get(1))
        };
        let seed = parse_secret(&path, find("seed"))?;
        let founder = find("founder")
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| HomeError::BadKeyFile {
                path: path.clone(),
                problem: "the `founder` line is not a device ID".into(),
            })?;
        Ok(Some(RecoveryKey::new(seed, founder)))
    }

    /// Writes `recovery.key` (atomically). One of another mesh (`repair-index` founded a new
    /// mesh of one, say) is first moved aside to `recovery.key.replaced`, not lost: its phrase
    /// may be the only way back into that mesh.
    pub fn save_recovery_key(&self, key: &RecoveryKey) -> Result<(), HomeError> {
        if let Ok(Some(old)) = self.recovery_key()
            && old.founder() != key.founder()
        {
            let from = self.path.join(RECOVERY_KEY_FILE);
            let to = self.path.join(format!("{RECOVERY_KEY_FILE}.replaced"));
            fs::rename(&from, &to).map_err(io_err(&from))?;
        }
        write_secret_file(
            &self.path.join(RECOVERY_KEY_FILE),
            &format!(
                "# photomesh recovery key: whoever has this can rejoin the mesh and read \
                 every photo\nversion 1\nseed {}\nfounder {}\n",
                hex::encode(key.seed()),
                key.founder()
            ),
        )
    }

    /// Removes `recovery.key` (after joining another mesh, whose recovery key this device did
    /// not make).
    pub fn forget_recovery_key(&self) -> Result<(), HomeError> {
        let path = self.path.join(RECOVERY_KEY_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    /// The device's name, as given to `init`.
    pub fn device_name(&self) -> Result<String, IndexError> {
        Ok(self.index.meta("device_name")?.unwrap_or_default())
    }
}

/// The index file of the home at `home`.
pub fn index_file(home: &Path) -> PathBuf {
    home.join(INDEX_FILE)
}

/// Puts the closed index `new` in place of the home's index, which is moved aside (with its
/// WAL and shared-memory files) to `index.sqlite.damaged-YYYYMMDDTHHMMSSZ`, never written to
/// or deleted. Returns where it went (`None` when there was none).
pub fn replace_index(home: &Path, new: &Path, now_ms: u64) -> Result<Option<PathBuf>, HomeError> {
    let index = index_file(home);
    let [y, mo, d, h, mi, s] = crate::clock::utc_fields(now_ms as i64);
    let stamp = format!("{INDEX_FILE}.damaged-{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z");
    // A second repair within the same second gets a name of its own.
    let aside = (1..)
        .map(|n| match n {
            1 => home.join(&stamp),
            n => home.join(format!("{stamp}-{n}")),
        })
        .find(|p| fs::symlink_metadata(p).is_err())
        .unwrap_or_else(|| home.join(&stamp));
    let moved = match fs::symlink_metadata(&index) {
        Ok(_) => {
            // The WAL and shared-memory files first: no WAL is ever left beside the new
            // index, and the old one keeps its WAL under its new name.
            for suffix in ["-wal", "-shm"] {
                let from = home.join(format!("{INDEX_FILE}{suffix}"));
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                match fs::rename(&from, &to) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&from)(e)),
                }
            }
            fs::rename(&index, &aside).map_err(io_err(&index))?;
            Some(aside)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&index)(e)),
    };
    // Closed, the new index has no WAL left; if it has, it goes with it.
    for suffix in ["-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", new.display()));
        let to = home.join(format!("{INDEX_FILE}{suffix}"));
        match fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&from)(e)),
        }
    }
    fs::rename(new, &index).map_err(io_err(&index))?;
    File::open(home)
        .and_then(|d| d.sync_all())
        .map_err(io_err(home))?;
    Ok(moved)
}

/// Makes the home, its blob store and its index (with SQLite's WAL and shared-memory files,
/// which take the index's mode when SQLite makes them) private to their owner: homes made
/// before this was done had them 0755 and 0644. Only warns when it cannot (a home on a file
/// system without modes, or owned by another user): the home still works.
fn make_private(home: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let index = home.join(INDEX_FILE);
    let wanted = [
        (home.to_owned(), 0o700),
        (home.join(BLOBS_DIR), 0o700),
        (index.clone(), 0o600),
        (index.with_extension("sqlite-wal"), 0o600),
        (index.with_extension("sqlite-shm"), 0o600),
    ];
    for (path, mode) in wanted {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.permissions().mode() & 0o777 == mode || meta.file_type().is_symlink() {
            continue;
        }
        if let Err(e) = fs::set_permissions(&path, fs::Permissions::from_mode(mode)) {
            tracing::warn!(
                "cannot make {} private to its owner (mode {mode:o}): {e}",
                path.display()
            );
        }
    }
}

/// Writes a file readable only by its owner, atomically.
fn write_secret_file(path: &Path, contents: &str) -> Result<(), HomeError> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(contents.as_bytes()).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

fn encode_device_key(keys: &DeviceKeys) -> String {
    format!(
        "# photomesh device key: keep secret, never copy to another device\n\
         version 1\nsigning {}\nnoise {}\n",
        hex::encode(keys.signing_secret()),
        hex::encode(keys.noise_secret())
    )
}

fn encode_key_ring(ring: &KeyRing) -> String {
    let mut s = String::from(
        "# photomesh library keys: whoever has these can read every photo\nversion 1\n",
    );
    for key in ring.iter() {
        s.push_str(&format!(
            "epoch {} {}\n",
            key.epoch(),
            hex::encode(key.secret())
        ));
    }
    s
}

/// Reads `key value…` lines, checking the version line.
fn read_key_lines(path: &Path) -> Result<Vec<Vec<String>>, HomeError> {
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let bad = |problem: &str| HomeError::BadKeyFile {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    let lines: Vec<Vec<String>> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    match lines
        .first()
        .map(|l| l.iter().map(String::as_str).collect::<Vec<_>>())
    {
        Some(v) if v == ["version", "1"] => Ok(lines[1..].to_vec()),
        _ => Err(bad("missing or unknown `version` line")),
    }
}

fn parse_secret(path: &Path, hex_text: Option<&String>) -> Result<[u8; 32], HomeError> {
    let bytes = hex_text
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    bytes.ok_or_else(|| HomeError::BadKeyFile {
        path: path.to_owned(),
        problem: "a key is not 64 hex digits".into(),
    })
}

fn decode_device_key(path: &Path) -> Result<DeviceKeys, HomeError> {
    let lines = read_key_lines(path)?;
    let find = |name: &str| {
        lines
            .iter()
            .find(|l| l.first().map(String::as_str) == Some(name))
            .and_then(|l| l.get(1))
    };
    Ok(DeviceKeys::from_secrets(
        parse_secret(path, find("signing"))?,
        parse_secret(path, find("noise"))?,
    ))
}

fn decode_key_ring(path: &Path) -> Result<KeyRing, HomeError> {
    let mut ring = KeyRing::default();
    for line in read_key_lines(path)? {
        let epoch = match (line.first().map(String::as_str), line.get(1)) {
            (Some("epoch"), Some(e)) => e.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| HomeError::BadKeyFile {
            path: path.to_owned(),
            problem: "a line is not `epoch N KEY`".into(),
        })?;
        let secret = parse_secret(path, line.get(2))?;
        ring.insert(LibraryKey::new(epoch, secret))
            .map_err(|e| HomeError::BadKeyFile {
                path: path.to_owned(),
                problem: e.to_string(),
            })?;
    }
    // An empty ring is a vault's: it holds no library key by design.
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_then_open_gives_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let home_path = dir.path().join("home");
        let home = Home::create(&home_path, "laptop", None, 1).unwrap();
        let id = home.device.device_id();
        let epoch_key = home.keys.current().unwrap().clone();
        drop(home);
        let home = Home::open(&home_path).unwrap();
        assert_eq!(home.device.device_id(), id);
        assert_eq!(home.keys.current(), Some(&epoch_key));
        assert_eq!(home.device_name().unwrap(), "laptop");
        for f in [DEVICE_KEY_FILE, LIBRARY_KEYS_FILE] {
            let mode = fs::metadata(home_path.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }

    #[test]
    fn the_home_and_its_index_are_private_and_old_homes_are_mended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home");
        let home = Home::create(&path, "laptop", None, 1).unwrap();
        home.index.set_meta("x", "y").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let index = path.join(INDEX_FILE);
        let wal = index.with_extension("sqlite-wal");
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(&path.join(BLOBS_DIR)), 0o700);
        assert_eq!(mode(&index), 0o600);
        assert_eq!(mode(&wal), 0o600, "SQLite gives the WAL the index's mode");
        drop(home);
        // A home made by an older build: world-readable. Opening it mends it, before SQLite
        // makes a new WAL from the index's mode.
        for (p, m) in [(&path, 0o755), (&index, 0o644)] {
            fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
        }
        let home = Home::open(&path).unwrap();
        home.index.set_meta("x", "z").unwrap();
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(&index), 0o600);
        assert_eq!(mode(&wal), 0o600);
    }

    #[test]
    fn init_refuses_an_existing_home() {
        let dir = tempfile::tempdir().unwrap();
        Home::create(dir.path(), "a", None, 1).unwrap();
        assert!(matches!(
            Home::create(dir.path(), "b", None, 1),
            Err(HomeError::IsHome(_))
        ));
        assert_eq!(Home::open(dir.path()).unwrap().device_name().unwrap(), "a");
    }

    #[test]
    fn damaged_key_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        Home::create(dir.path(), "a", None, 1).unwrap();
        fs::write(dir.path().join(LIBRARY_KEYS_FILE), "version 1\nepoch x y\n").unwrap();
        let err = Home::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("library.keys"), "{err}");
    }

    #[test]
    fn rotation_adds_an_epoch_and_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let mut home = Home::create(dir.path(), "a", None, 1).unwrap();
        let first = home.keys.current().unwrap().clone();
        assert_eq!(home.rotate_library_key().unwrap(), 2);
        let home = Home::open(dir.path()).unwrap();
        assert_eq!(home.keys.current().unwrap().epoch(), 2);
        assert_eq!(home.keys.get(1), Some(&first));
    }
}
