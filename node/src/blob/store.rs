//! The content-addressed store of sealed blobs a replica holds.
//!
//! A blob lives at `blobs/<first two hex digits>/<blob ID in hex>`. It is written to a
//! temporary file in `blobs/tmp/`, hashed as it is written, fsynced, and renamed into place
//! only when its BLAKE3 hash equals the ID it was offered under: a crash or a bad sender never
//! leaves a half-written or wrong blob under an ID. Reads verify the hash again, so a blob
//! that rotted on disk is reported, never served as good.
//!
//! Blobs received from peers, already verified chunk group by chunk group, take a faster
//! path: each is staged in a hidden file beside where it will live (`stage`), and a batch is
//! made durable at once (`commit_staged`: `syncfs`, the renames, `syncfs` again), so storing
//! thousands of small blobs does not cost an fsync each. Staged files of a process that is
//! gone are cleared at `open`, like temporary files.
//!
//! A source device does not put its own photos here (it serves them from the originals);
//! this store is for the replicas that other devices send.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use photomesh_protocol::seal::BlobId;

/// Why the blob store refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum BlobStoreError {
    /// Reading or writing the store failed.
    #[error("blob store at {path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The bytes offered do not hash to the ID they were offered under; nothing was stored.
    #[error("the data offered as blob {expected} hashes to {found}; it was not stored")]
    WrongContent {
        /// The ID the data was offered under.
        expected: BlobId,
        /// What it actually hashes to.
        found: BlobId,
    },
    /// A stored blob no longer matches its ID: disk corruption.
    #[error("stored blob {0} is corrupt (its content no longer matches its ID)")]
    Corrupt(BlobId),
    /// The store holds no blob with that ID.
    #[error("blob {0} is not in the store")]
    Missing(BlobId),
}

/// Removes the files in `dir` that `pick` names and whose writer (the process ID their name
/// ends in) is no longer running.
fn clear_dead_writers(dir: &Path, pick: impl Fn(&str) -> bool) -> Result<(), BlobStoreError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !pick(name) {
            continue;
        }
        let writer_alive = path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| Path::new("/proc").join(pid.to_string()).exists());
        if !writer_alive {
            let _ = fs::remove_file(path);
        }
    }
    Ok(())
}

/// A verified blob written to a temporary file, waiting for [`BlobStore::commit_staged`].
#[derive(Debug)]
pub struct Staged {
    /// The blob.
    pub blob_id: BlobId,
    tmp: PathBuf,
}

impl Staged {
    /// Removes a staged blob that will not be committed.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// A folder of sealed blobs named by their IDs.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobStoreError + '_ {
    move |source| BlobStoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl BlobStore {
    /// Opens (creating if needed) the store in `root`, and clears temporary files that a
    /// process which is no longer running left behind. (Temporary files carry the writer's
    /// process ID, so a command run beside a running node never removes its work.)
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, BlobStoreError> {
        let root = root.into();
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        clear_dead_writers(&tmp, |_| true)?;
        // Staged blobs (hidden files beside where they would live) of dead processes.
        for entry in fs::read_dir(&root).map_err(io_err(&root))? {
            let path = entry.map_err(io_err(&root))?.path();
            let prefix = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if prefix.len() == 2 && path.is_dir() {
                clear_dead_writers(&path, |name| name.starts_with('.'))?;
            }
        }
        Ok(Self { root })
    }

    /// Where the blob with this ID lives (whether or not it is there).
    pub fn path_of(&self, blob_id: &BlobId) -> PathBuf {
        let hex = blob_id.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Moves a blob whose stored copy failed its check out of the store, into
    /// `quarantine/` (kept for inspection, never served: nothing reads from there). A blob
    /// that is not there at all is fine. Returns where it went, if anywhere.
    pub fn quarantine(&self, blob_id: &BlobId) -> Result<Option<PathBuf>, BlobStoreError> {
        let from = self.path_of(blob_id);
        let dir = self.root.join("quarantine");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let to = dir.join(blob_id.to_hex());
        match fs::rename(&from, &to) {
            Ok(()) => Ok(Some(to)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&from)(e)),
        }
    }

    /// Removes a blob the mesh purged (its photos left the trash for good). A blob that is
    /// not there is fine. Returns the bytes freed.
    pub fn remove(&self, blob_id: &BlobId) -> Result<u64, BlobStoreError> {
        let path = self.path_of(blob_id);
        let len = match fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&path)(e)),
        };
        match fs::remove_file(&path) {
            Ok(()) => Ok(len),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Bytes free for this process on the store's file system.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        Ok(self.space()?.0)
    }

    /// Bytes free for this process, and the size of, the store's file system.
    pub fn space(&self) -> std::io::Result<(u64, u64)> {
        let st = rustix::fs::statvfs(&self.root)?;
        Ok((
            st.f_bavail.saturating_mul(st.f_frsize),
            st.f_blocks.saturating_mul(st.f_frsize),
        ))
    }

    /// Whether the store holds the blob (without verifying it).
    pub fn contains(&self, blob_id: &BlobId) -> bool {
        self.path_of(blob_id).is_file()
    }

    /// Stores the bytes read from `data` as `blob_id`, if and only if they hash to it.
    /// Returns the number of bytes stored.
    pub fn put(&self, blob_id: &BlobId, mut data: impl Read) -> Result<u64, BlobStoreError> {
        let tmp_dir = self.root.join("tmp");
        // Unique per write: the blob, a counter, and (last, read by `open`) the process ID.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = tmp_dir.join(format!("{}-{n}.{}", blob_id.to_hex(), std::process::id()));
        let result = (|| {
            let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut len = 0u64;
            loop {
                let n = match data.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err(&tmp)(e)),
                };
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io_err(&tmp))?;
                len += n as u64;
            }
            let found = BlobId(*hasher.finalize().as_bytes());
            if found != *blob_id {
                return Err(BlobStoreError::WrongContent {
                    expected: *blob_id,
                    found,
                });
            }
            file.sync_all().map_err(io_err(&tmp))?;
            let dest = self.path_of(blob_id);
            let dir = dest.parent().unwrap_or(&self.root).to_owned();
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(&dir))?;
            Ok(len)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// A new staging file name for a blob: hidden, beside where the blob will live (so
    /// concurrent writers spread over the 256 prefix folders rather than contend for one),
    /// ending in this process's ID so that [`BlobStore::open`] clears it once the process
    /// is gone.
    fn staging_path(&self, blob_id: &BlobId) -> Result<PathBuf, BlobStoreError> {
        let tmp = self.staging_name(blob_id);
        let dir = tmp.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        Ok(tmp)
    }

    /// [`BlobStore::staging_path`] without making its folder.
    fn staging_name(&self, blob_id: &BlobId) -> PathBuf {
        static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dest = self.path_of(blob_id);
        let dir = dest.parent().unwrap_or(&self.root);
        dir.join(format!(".{}-s{n}.{}", blob_id.to_hex(), std::process::id()))
    }

    /// Writes bytes already verified against `blob_id` to a temporary file, past the page
    /// cache where the filesystem allows ([`crate::blob::direct`]), without flushing it:
    /// [`BlobStore::commit_staged`] makes a whole batch durable at once.
    pub fn stage(
        &self,
        blob_id: &BlobId,
        data: &crate::blob::direct::Aligned,
    ) -> Result<Staged, BlobStoreError> {
        // The prefix folder is made only when the file cannot be created without it: a
        // folder that exists costs no `mkdir` for every blob.
        let tmp = self.staging_name(blob_id);
        let mut created = crate::blob::direct::DirectFile::create_with(&tmp, data);
        if created
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
            && let Some(dir) = tmp.parent()
        {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
            created = crate::blob::direct::DirectFile::create_with(&tmp, data);
        }
        if let Err(e) = created {
            // A full disk must not leave a half-written file behind for every try.
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&tmp)(e));
        }
        Ok(Staged {
            blob_id: *blob_id,
            tmp,
        })
    }

    /// Takes a file already verified as a whole against `blob_id` (moved, not copied), for
    /// [`BlobStore::commit_staged`].
    pub fn stage_file(&self, blob_id: &BlobId, file: &Path) -> Result<Staged, BlobStoreError> {
        let tmp = self.staging_path(blob_id)?;
        fs::rename(file, &tmp).map_err(io_err(&tmp))?;
        Ok(Staged {
            blob_id: *blob_id,
            tmp,
        })
    }

    /// Makes staged blobs durable and moves them into place: one filesystem flush for the
    /// whole batch, the renames, and one more flush so the renames are durable too. A blob
    /// is in place only once its bytes were durable; when this returns they all are.
    pub fn commit_staged(&self, staged: &[&Staged]) -> Result<(), BlobStoreError> {
        if staged.is_empty() {
            return Ok(());
        }
        self.sync_filesystem()?;
        for s in staged {
            let dest = self.path_of(&s.blob_id);
            fs::rename(&s.tmp, &dest).map_err(io_err(&dest))?;
        }
        self.sync_filesystem()
    }

    /// Flushes everything written to the filesystem that holds the store.
    fn sync_filesystem(&self) -> Result<(), BlobStoreError> {
        let dir = File::open(&self.root).map_err(io_err(&self.root))?;
        rustix::fs::syncfs(&dir).map_err(|e| io_err(&self.root)(e.into()))
    }

    /// Opens a stored blob after checking its whole content against its ID; the returned
    /// file is positioned at the start.
    pub fn open_verified(&self, blob_id: &BlobId) -> Result<File, BlobStoreError> {
        let path = self.path_of(blob_id);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobStoreError::Missing(*blob_id));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(&mut file).map_err(io_err(&path))?;
        if hasher.finalize().as_bytes() != &blob_id.0 {
            return Err(BlobStoreError::Corrupt(*blob_id));
        }
        file.seek(SeekFrom::Start(0)).map_err(io_err(&path))?;
        Ok(file)
    }

    /// Checks a stored blob against its ID.
    pub fn verify(&self, blob_id: &BlobId) -> Result<(), BlobStoreError> {
        self.open_verified(blob_id).map(drop)
    }

    /// Checks a stored blob against its ID, reading at most `rate` bytes a second (the
    /// scrub's pace; it sleeps this thread).
    pub fn verify_paced(&self, blob_id: &BlobId, rate: u64) -> Result<(), BlobStoreError> {
        let path = self.path_of(blob_id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobStoreError::Missing(*blob_id));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_reader(crate::pace::Paced::new(file, rate))
            .map_err(io_err(&path))?;
        if hasher.finalize().as_bytes() != &blob_id.0 {
            return Err(BlobStoreError::Corrupt(*blob_id));
        }
        Ok(())
    }

    /// Reads a stored blob whole, checks it against its ID (the root of its bao tree is its
    /// BLAKE3 hash) and returns its length and bao outboard: what the index keeps of a blob.
    pub fn outboard_verified(&self, blob_id: &BlobId) -> Result<(u64, Vec<u8>), BlobStoreError> {
        let path = self.path_of(blob_id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobStoreError::Missing(*blob_id));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let len = file.metadata().map_err(io_err(&path))?.len();
        let tree = bao_tree::BaoTree::new(len, crate::blob::sealed::OUTBOARD_BLOCK_SIZE);
        let mut outboard = Vec::new();
        let root = bao_tree::io::sync::outboard_post_order(
            io::BufReader::with_capacity(1 << 20, file),
            tree,
            &mut outboard,
        )
        .map_err(io_err(&path))?;
        if root.as_bytes() != &blob_id.0 {
            return Err(BlobStoreError::Corrupt(*blob_id));
        }
        Ok((len, outboard))
    }

    /// Every blob in the store (files named by a blob ID under the folder of its first two
    /// hex digits; temporary, staged and quarantined files are not blobs), with its size.
    pub fn list(&self) -> Result<Vec<(BlobId, u64)>, BlobStoreError> {
        let mut found = Vec::new();
        for dir in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let dir = dir.map_err(io_err(&self.root))?.path();
            let prefix = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if prefix.len() != 2 || !dir.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let entry = entry.map_err(io_err(&dir))?;
                let name = entry.file_name();
                let Some(blob_id) = name.to_str().and_then(|n| {
                    let mut id = [0u8; 32];
                    hex::decode_to_slice(n, &mut id).ok()?;
                    let id = BlobId(id);
                    // Exactly where `path_of` puts it.
                    (n.starts_with(prefix) && n == id.to_hex()).then_some(id)
                }) else {
                    continue;
                };
                let meta = entry.metadata().map_err(io_err(&entry.path()))?;
                if meta.is_file() {
                    found.push((blob_id, meta.len()));
                }
            }
        }
        found.sort_by_key(|(id, _)| id.0);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_verifies_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs")).unwrap();
        let data = vec![7u8; 300_000];
        let id = BlobId::of_sealed(&data);
        assert_eq!(store.put(&id, &data[..]).unwrap(), 300_000);
        let mut back = Vec::new();
        store
            .open_verified(&id)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn wrong_content_is_not_stored_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs")).unwrap();
        let id = BlobId::of_sealed(b"the real thing");
        assert!(matches!(
            store.put(&id, &b"something else"[..]),
            Err(BlobStoreError::WrongContent { .. })
        ));
        assert!(!store.contains(&id));
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn only_temporary_files_of_dead_writers_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        BlobStore::open(&root).unwrap();
        let live = root.join(format!("tmp/abc.{}", std::process::id()));
        // PIDs are below 2^22 on Linux, so this one is not running.
        let dead = root.join("tmp/abc.4294967");
        fs::write(&live, b"in progress").unwrap();
        fs::write(&dead, b"left by a crash").unwrap();
        BlobStore::open(&root).unwrap();
        assert!(live.exists());
        assert!(!dead.exists());
    }

    #[test]
    fn staged_blobs_are_in_place_only_after_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs")).unwrap();
        let a = b"first blob".to_vec();
        let b = vec![3u8; 70_000];
        let other = dir.path().join("received");
        fs::write(&other, &b).unwrap();
        let (ida, idb) = (BlobId::of_sealed(&a), BlobId::of_sealed(&b));
        let mut buf = crate::blob::direct::Pool::new(0).take(a.len());
        buf.bytes_mut().copy_from_slice(&a);
        let staged = [
            store.stage(&ida, &buf).unwrap(),
            store.stage_file(&idb, &other).unwrap(),
        ];
        assert!(!store.contains(&ida) && !store.contains(&idb));
        assert!(!other.exists());
        store
            .commit_staged(&staged.iter().collect::<Vec<_>>())
            .unwrap();
        store.verify(&ida).unwrap();
        store.verify(&idb).unwrap();
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn rot_on_disk_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs")).unwrap();
        let data = b"sealed bytes".to_vec();
        let id = BlobId::of_sealed(&data);
        store.put(&id, &data[..]).unwrap();
        let mut rotten = data.clone();
        rotten[3] ^= 1;
        fs::write(store.path_of(&id), rotten).unwrap();
        assert!(matches!(store.verify(&id), Err(BlobStoreError::Corrupt(_))));
        let other = BlobId([9; 32]);
        assert!(matches!(
            store.verify(&other),
            Err(BlobStoreError::Missing(_))
        ));
    }
}
