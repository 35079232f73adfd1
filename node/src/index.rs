//! The SQLite index: records, photos, blobs, source files, folders and scan history.
//!
//! One SQLite file in WAL mode, opened with `foreign_keys` on. The schema is created by
//! numbered migrations tracked in `PRAGMA user_version`; each runs in a transaction, so an
//! index is always at one version or the next, never between. The sealed records are the
//! truth (they are what replicates); the `photos` table is a query-friendly copy of the few
//! fields that listing and status need, filled when a record is added.
//!
//! The index never holds photo content: only hashes, lengths, verification data (bao
//! outboards) and the sealed records.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use photomesh_protocol::record::{PhotoRecord, RecordId};
use photomesh_protocol::seal::BlobId;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};

/// Why the index refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file is not a SQLite database or is damaged.
    #[error(
        "the index {path} is damaged ({detail}). Nothing was changed. Your photos are untouched; \
         move the file aside and run `photomesh scan` to rebuild the index of this device's folders"
    )]
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The index was written by a newer photomesh.
    #[error(
        "the index {path} has schema version {found}, newer than this photomesh ({known}); upgrade photomesh"
    )]
    TooNew {
        /// The index file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// Any other SQLite error.
    #[error("index: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The schema, one entry per version: entry `i` takes the index from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE folders (
        label TEXT PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at_ms INTEGER NOT NULL
    );
    -- Every sealed record this device holds: the replicated truth.
    CREATE TABLE records (
        record_id BLOB PRIMARY KEY,
        sealed BLOB NOT NULL,
        received_at_ms INTEGER NOT NULL
    );
    -- Query-friendly fields of the photo records this device can read.
    CREATE TABLE photos (
        record_id BLOB PRIMARY KEY REFERENCES records(record_id),
        folder TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        plaintext_hash BLOB NOT NULL,
        blob_id BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX photos_by_path ON photos(folder, path, created_at_ms);
    CREATE INDEX photos_by_blob ON photos(blob_id);
    -- Blobs known to this device, with their verification data; `stored` = in the blob store.
    CREATE TABLE blobs (
        blob_id BLOB PRIMARY KEY,
        sealed_len INTEGER NOT NULL,
        outboard BLOB NOT NULL,
        stored INTEGER NOT NULL DEFAULT 0
    );
    -- Original files in this device's folders, as last scanned.
    CREATE TABLE sources (
        folder TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_s INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        record_id BLOB NOT NULL REFERENCES records(record_id),
        PRIMARY KEY (folder, path)
    );
    CREATE TABLE scans (
        scan_id INTEGER PRIMARY KEY,
        started_at_ms INTEGER NOT NULL,
        finished_at_ms INTEGER,
        files_seen INTEGER NOT NULL DEFAULT 0,
        new_files INTEGER NOT NULL DEFAULT 0,
        changed_files INTEGER NOT NULL DEFAULT 0,
        unchanged_files INTEGER NOT NULL DEFAULT 0,
        missing_files INTEGER NOT NULL DEFAULT 0,
        bytes_read INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE scan_problems (
        scan_id INTEGER NOT NULL REFERENCES scans(scan_id),
        path TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    ",
    // Version 2: membership. Membership records live in `records` with the photo records
    // (they replicate the same way; they start with the bytes `pmmr`).
    "
    CREATE TABLE devices_seen (
        device_id BLOB PRIMARY KEY,
        last_seen_ms INTEGER NOT NULL,
        address TEXT,
        has_aes INTEGER
    );
    ",
    // Version 3: configured peers (addresses beyond the LAN, and for tests).
    "
    CREATE TABLE peers (
        address TEXT PRIMARY KEY,
        added_at_ms INTEGER NOT NULL
    );
    -- What each peer was last seen to hold (from the blob-set reconciliation with it).
    CREATE TABLE peer_blobs (
        device_id BLOB NOT NULL,
        blob_id BLOB NOT NULL,
        PRIMARY KEY (device_id, blob_id)
    ) WITHOUT ROWID;
    CREATE INDEX peer_blobs_by_blob ON peer_blobs(blob_id);
    -- Addresses of members that other members told this device about.
    CREATE TABLE learned_addresses (
        device_id BLOB PRIMARY KEY,
        address TEXT NOT NULL,
        learned_at_ms INTEGER NOT NULL
    );
    CREATE TABLE peer_sync (
        device_id BLOB PRIMARY KEY,
        synced_at_ms INTEGER NOT NULL
    );
    ",
    // Version 4: peers caught sending bad blob data, and who added each photo (for the
    // `own` hold policy).
    "
    CREATE TABLE bad_peers (
        device_id BLOB NOT NULL,
        at_ms INTEGER NOT NULL,
        blob_id BLOB NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX bad_peers_by_device ON bad_peers(device_id, at_ms);
    ALTER TABLE photos ADD COLUMN added_by BLOB;
    CREATE INDEX photos_by_adder ON photos(added_by);
    -- Serving an original looks its source up by record, once per blob.
    CREATE INDEX sources_by_record ON sources(record_id);
    ",
    // Version 5: the membership records (read each time the index changes, to reload the
    // trust set, and for every hello) through a partial index, not a scan of every record.
    "
    CREATE INDEX records_membership ON records(record_id) WHERE substr(sealed, 1, 4) = X'706d6d72';
    ",
];

/// A configured photo folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Folder {
    /// The folder's label: its name in records and on other devices.
    pub label: String,
    /// Where it is on this device.
    pub path: PathBuf,
}

/// An original file as last scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    /// Path relative to the folder.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime_s: i64,
    /// Modification time, nanoseconds within the second.
    pub mtime_ns: u32,
    /// Inode number.
    pub inode: u64,
    /// The record that describes this version.
    pub record_id: RecordId,
}

/// What one scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanSummary {
    /// When the scan started (ms since the epoch).
    pub started_at_ms: u64,
    /// When it finished, if it did.
    pub finished_at_ms: Option<u64>,
    /// Photo and video files seen.
    pub files_seen: u64,
    /// Files recorded for the first time.
    pub new_files: u64,
    /// Files whose content changed and got a new record.
    pub changed_files: u64,
    /// Files skipped because size, mtime and inode were unchanged.
    pub unchanged_files: u64,
    /// Previously recorded files no longer found.
    pub missing_files: u64,
    /// Bytes read to hash and seal.
    pub bytes_read: u64,
    /// Files that could not be read, with the reason.
    pub problems: Vec<ScanProblem>,
}

/// A file a scan could not record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScanProblem {
    /// The file's full path.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Per-folder totals of the files currently recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FolderStats {
    /// The folder's label.
    pub label: String,
    /// Where it is.
    pub path: PathBuf,
    /// Photo and video files recorded in it.
    pub photos: u64,
    /// Their total size.
    pub bytes: u64,
}

/// A photo version the index knows: the query fields plus its sealed record.
#[derive(Debug, Clone)]
pub struct PhotoRow {
    /// The record's ID.
    pub record_id: RecordId,
    /// The sealed record bytes.
    pub sealed: Vec<u8>,
}

/// A peer caught sending blob data that does not match the blob's ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPeer {
    /// The device.
    pub device: photomesh_protocol::identity::DeviceId,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// The blob it was sending.
    pub blob: BlobId,
    /// What failed.
    pub reason: String,
}

/// The open index.
pub struct Index {
    conn: Connection,
    path: PathBuf,
}

/// The original files whose recorded content is blob `?1` (see [`Index::originals_of`]).
const ORIGINALS_OF: &str = "SELECT f.path, s.path, r.sealed FROM sources s
     JOIN photos p USING (record_id)
     JOIN records r USING (record_id)
     JOIN folders f ON f.label = s.folder
     WHERE p.blob_id = ?1";

/// What the index knows of a blob.
#[derive(Debug)]
pub struct BlobInfo {
    /// Its sealed length.
    pub sealed_len: u64,
    /// Its bao outboard.
    pub outboard: Vec<u8>,
    /// Whether the blob store holds it.
    pub stored: bool,
}

/// Every membership record (they start with `pmmr`), through the partial index
/// `records_membership`, whose `WHERE` this repeats word for word so that SQLite uses it.
const MEMBERSHIP_RECORDS: &str =
    "SELECT sealed FROM records WHERE substr(sealed, 1, 4) = X'706d6d72' ORDER BY record_id";

fn blob_id_from(bytes: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "an ID column does not hold 32 bytes".into(),
        )
    })
}

impl Index {
    /// Creates a new index file and brings it to the current schema.
    pub fn create(path: &Path) -> Result<Self, IndexError> {
        let conn = Connection::open(path)?;
        Self::setup(conn, path)
    }

    /// Opens an existing index, migrating it forward if it is older than this build.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| corrupt(path, e))?;
        Self::setup(conn, path)
    }

    fn setup(conn: Connection, path: &Path) -> Result<Self, IndexError> {
        let map = |e| corrupt(path, e);
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(map)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(map)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(map)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(map)?;
        // One plan per statement, made when it is prepared. Without it SQLite (3.54) marks
        // the parameters of joins as plan-relevant and re-prepares a cached statement each
        // time a new value is bound: `originals_of` was parsed and planned again for every
        // blob served (a quarter of the serving node's CPU in the small-file bench). This
        // index keeps no statistics for bound values to steer plans anyway.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(map)?;
        let index = Self {
            conn,
            path: path.to_owned(),
        };
        index.migrate()?;
        Ok(index)
    }

    fn migrate(&self) -> Result<(), IndexError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| corrupt(&self.path, e))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(IndexError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The index's schema version.
    pub fn schema_version(&self) -> Result<i64, IndexError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Runs SQLite's integrity check; `Ok(None)` when the file is sound.
    pub fn integrity_problem(&self) -> Result<Option<String>, IndexError> {
        let result: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| corrupt(&self.path, e))?;
        Ok((result != "ok").then_some(result))
    }

    /// Runs `f` in one transaction: all of its writes land, or none.
    pub fn transaction<T, E: From<IndexError>>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(IndexError::from)?;
        let value = f(self)?;
        tx.commit().map_err(IndexError::from)?;
        Ok(value)
    }

    /// A value from the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, IndexError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a value in the `meta` table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// Adds a folder. Returns `false` if the label or the path is already taken.
    pub fn add_folder(&self, folder: &Folder, now_ms: u64) -> Result<bool, IndexError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO folders (label, path, added_at_ms) VALUES (?1, ?2, ?3)",
            params![folder.label, path_text(&folder.path), now_ms as i64],
        )?;
        Ok(n == 1)
    }

    /// Every configured folder, by label.
    pub fn folders(&self) -> Result<Vec<Folder>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT label, path FROM folders ORDER BY label")?;
        let rows = stmt.query_map([], |r| {
            Ok(Folder {
                label: r.get(0)?,
                path: PathBuf::from(r.get::<_, String>(1)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stops watching a folder: forgets its source files, keeps every record.
    /// Returns `false` if there was no such folder.
    pub fn remove_folder(&self, label: &str) -> Result<bool, IndexError> {
        self.transaction(|ix| -> Result<bool, IndexError> {
            ix.conn
                .execute("DELETE FROM sources WHERE folder = ?1", [label])?;
            Ok(ix
                .conn
                .execute("DELETE FROM folders WHERE label = ?1", [label])?
                == 1)
        })
    }

    /// The source files of a folder as last scanned, by relative path.
    pub fn sources(&self, folder: &str) -> Result<HashMap<String, SourceRow>, IndexError> {
        let mut stmt = self.conn.prepare(
            "SELECT path, size, mtime_s, mtime_ns, inode, record_id FROM sources WHERE folder = ?1",
        )?;
        let rows = stmt.query_map([folder], |r| {
            Ok(SourceRow {
                path: r.get(0)?,
                size: r.get::<_, i64>(1)? as u64,
                mtime_s: r.get(2)?,
                mtime_ns: r.get::<_, i64>(3)? as u32,
                inode: r.get::<_, i64>(4)? as u64,
                record_id: RecordId(blob_id_from(r.get(5)?)?),
            })
        })?;
        let mut map = HashMap::new();
        for row in rows {
            let row = row?;
            map.insert(row.path.clone(), row);
        }
        Ok(map)
    }

    /// One source file of a folder as last scanned, if it was.
    pub fn source(&self, folder: &str, path: &str) -> Result<Option<SourceRow>, IndexError> {
        Ok(self
            .conn
            .query_row(
                "SELECT path, size, mtime_s, mtime_ns, inode, record_id FROM sources
                 WHERE folder = ?1 AND path = ?2",
                params![folder, path],
                |r| {
                    Ok(SourceRow {
                        path: r.get(0)?,
                        size: r.get::<_, i64>(1)? as u64,
                        mtime_s: r.get(2)?,
                        mtime_ns: r.get::<_, i64>(3)? as u32,
                        inode: r.get::<_, i64>(4)? as u64,
                        record_id: RecordId(blob_id_from(r.get(5)?)?),
                    })
                },
            )
            .optional()?)
    }

    /// Records (or re-records) a source file.
    pub fn put_source(&self, folder: &str, row: &SourceRow) -> Result<(), IndexError> {
        self.conn
            .prepare_cached(
                "INSERT INTO sources (folder, path, size, mtime_s, mtime_ns, inode, record_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(folder, path) DO UPDATE SET size = excluded.size,
               mtime_s = excluded.mtime_s, mtime_ns = excluded.mtime_ns,
               inode = excluded.inode, record_id = excluded.record_id",
            )?
            .execute(params![
                folder,
                row.path,
                row.size as i64,
                row.mtime_s,
                i64::from(row.mtime_ns),
                row.inode as i64,
                &row.record_id.0[..],
            ])?;
        Ok(())
    }

    /// Adds a record's bytes to the record set (a no-op if it is already there).
    pub fn add_record(
        &self,
        record_id: &RecordId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<(), IndexError> {
        self.conn.prepare_cached(
            "INSERT OR IGNORE INTO records (record_id, sealed, received_at_ms) VALUES (?1, ?2, ?3)")?.execute(
            params![&record_id.0[..], bytes, now_ms as i64],
        )?;
        Ok(())
    }

    /// Records added after row `after` (the table's rowid), in order: `(rowid, bytes)`.
    pub fn records_after(&self, after: i64) -> Result<Vec<(i64, Vec<u8>)>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT rowid, sealed FROM records WHERE rowid > ?1 ORDER BY rowid")?;
        let rows = stmt.query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many records the set holds (photo and membership, readable or not).
    pub fn record_count(&self) -> Result<u64, IndexError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Adds a configured peer address. Returns `false` if it was already there.
    pub fn add_peer(&self, address: &str, now_ms: u64) -> Result<bool, IndexError> {
        Ok(self.conn.execute(
            "INSERT OR IGNORE INTO peers (address, added_at_ms) VALUES (?1, ?2)",
            params![address, now_ms as i64],
        )? == 1)
    }

    /// Every configured peer address.
    pub fn peers(&self) -> Result<Vec<String>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT address FROM peers ORDER BY address")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The bytes of every membership record.
    pub fn membership_records(&self) -> Result<Vec<Vec<u8>>, IndexError> {
        let mut stmt = self.conn.prepare_cached(MEMBERSHIP_RECORDS)?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Remembers that a device was just seen (connected), where, and whether it has AES
    /// instructions (which picks the cipher suite for the next connection).
    pub fn set_seen(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
        now_ms: u64,
        address: Option<&str>,
        has_aes: Option<bool>,
    ) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT INTO devices_seen (device_id, last_seen_ms, address, has_aes)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(device_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,
               address = COALESCE(excluded.address, devices_seen.address),
               has_aes = COALESCE(excluded.has_aes, devices_seen.has_aes)",
            params![&device.as_bytes()[..], now_ms as i64, address, has_aes],
        )?;
        Ok(())
    }

    /// Whether a device was last seen to have AES instructions (`None`: not known).
    pub fn has_aes(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<bool>, IndexError> {
        Ok(self
            .conn
            .query_row(
                "SELECT has_aes FROM devices_seen WHERE device_id = ?1",
                [&device.as_bytes()[..]],
                |r| r.get::<_, Option<bool>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Removes a membership record (when this device leaves its own one-device mesh to join
    /// another). Photo records are never removed.
    pub fn remove_membership_record(&self, record_id: &RecordId) -> Result<(), IndexError> {
        self.conn.execute(
            "DELETE FROM records WHERE record_id = ?1 AND substr(sealed, 1, 4) = X'706d6d72'",
            [&record_id.0[..]],
        )?;
        Ok(())
    }

    /// SQLite's data version: it changes when another connection commits to the file.
    pub fn data_version(&self) -> Result<i64, IndexError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// When a device was last seen, and at which address.
    pub fn seen(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<(u64, Option<String>)>, IndexError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_seen_ms, address FROM devices_seen WHERE device_id = ?1",
                [&device.as_bytes()[..]],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
    }

    /// Adds a sealed photo record and its query fields (a no-op if it is already there).
    pub fn add_photo_record(
        &self,
        record_id: &RecordId,
        sealed: &[u8],
        photo: &PhotoRecord,
        now_ms: u64,
    ) -> Result<(), IndexError> {
        self.add_record(record_id, sealed, now_ms)?;
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO photos
               (record_id, folder, path, size, plaintext_hash, blob_id, created_at_ms, added_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                &record_id.0[..],
                photo.folder,
                photo.path,
                photo.size as i64,
                &photo.plaintext_hash[..],
                &photo.blob_id.0[..],
                photo.created_at_ms as i64,
                &photo.added_by.as_bytes()[..],
            ])?;
        Ok(())
    }

    /// The sealed bytes of a record.
    pub fn sealed_record(&self, record_id: &RecordId) -> Result<Option<Vec<u8>>, IndexError> {
        Ok(self
            .conn
            .prepare_cached("SELECT sealed FROM records WHERE record_id = ?1")?
            .query_row([&record_id.0[..]], |r| r.get(0))
            .optional()?)
    }

    /// The plaintext hash a photo record names, if the index holds that record.
    pub fn plaintext_hash_of(&self, record_id: &RecordId) -> Result<Option<[u8; 32]>, IndexError> {
        let hash: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT plaintext_hash FROM photos WHERE record_id = ?1",
                [&record_id.0[..]],
                |r| r.get(0),
            )
            .optional()?;
        Ok(hash.and_then(|h| <[u8; 32]>::try_from(h).ok()))
    }

    /// The newest record of every photo path, optionally in one folder only.
    pub fn latest_photos(&self, folder: Option<&str>) -> Result<Vec<PhotoRow>, IndexError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.record_id, r.sealed FROM photos p JOIN records r USING (record_id)
             WHERE (?1 IS NULL OR p.folder = ?1)
               AND p.created_at_ms = (SELECT MAX(q.created_at_ms) FROM photos q
                                      WHERE q.folder = p.folder AND q.path = p.path)
             ORDER BY p.folder, p.path",
        )?;
        let rows = stmt.query_map([folder], |r| {
            Ok(PhotoRow {
                record_id: RecordId(blob_id_from(r.get(0)?)?),
                sealed: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many photo records (every version) the index holds.
    pub fn photo_record_count(&self) -> Result<u64, IndexError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM photos", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Remembers a blob's verification data (a no-op if it is already known).
    pub fn add_blob(
        &self,
        blob_id: &BlobId,
        sealed_len: u64,
        outboard: &[u8],
    ) -> Result<(), IndexError> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO blobs (blob_id, sealed_len, outboard) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&blob_id.0[..], sealed_len as i64, outboard])?;
        Ok(())
    }

    /// Marks whether the blob store holds a blob.
    pub fn set_blob_stored(&self, blob_id: &BlobId, stored: bool) -> Result<(), IndexError> {
        self.conn
            .prepare_cached("UPDATE blobs SET stored = ?2 WHERE blob_id = ?1")?
            .execute(params![&blob_id.0[..], stored])?;
        Ok(())
    }

    /// Whether the blob store is known to hold a blob.
    pub fn blob_stored(&self, blob_id: &BlobId) -> Result<bool, IndexError> {
        Ok(self
            .conn
            .prepare_cached("SELECT stored FROM blobs WHERE blob_id = ?1")?
            .query_row([&blob_id.0[..]], |r| r.get(0))
            .optional()?
            .unwrap_or(false))
    }

    /// Every blob this device holds: stored replicas, and blobs of its own originals.
    pub fn held_blobs(&self) -> Result<Vec<BlobId>, IndexError> {
        let mut stmt = self.conn.prepare(
            "SELECT blob_id FROM blobs WHERE stored = 1
             UNION
             SELECT p.blob_id FROM sources s JOIN photos p USING (record_id)
             ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| Ok(BlobId(blob_id_from(r.get(0)?)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records blobs whose bytes are durable in the blob store, with their verification
    /// data, in one transaction.
    pub fn add_stored_blobs<'a>(
        &self,
        blobs: impl IntoIterator<Item = (&'a BlobId, u64, &'a [u8])>,
    ) -> Result<(), IndexError> {
        self.transaction(|ix| -> Result<(), IndexError> {
            let mut insert = ix.conn.prepare(
                "INSERT INTO blobs (blob_id, sealed_len, outboard, stored) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT(blob_id) DO UPDATE SET stored = 1",
            )?;
            for (id, len, outboard) in blobs {
                insert.execute(params![&id.0[..], len as i64, outboard])?;
            }
            Ok(())
        })
    }

    /// The blobs of this device's own originals whose records were added after row `after`
    /// of `records`, and the last such row (or `after`).
    pub fn originals_after(&self, after: i64) -> Result<(i64, Vec<BlobId>), IndexError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.rowid, p.blob_id FROM sources s JOIN photos p USING (record_id)
             JOIN records r USING (record_id) WHERE r.rowid > ?1",
        )?;
        let rows = stmt.query_map([after], |r| {
            Ok((r.get::<_, i64>(0)?, BlobId(blob_id_from(r.get(1)?)?)))
        })?;
        let mut mark = after;
        let mut out = Vec::new();
        for row in rows {
            let (rowid, blob) = row?;
            mark = mark.max(rowid);
            out.push(blob);
        }
        Ok((mark, out))
    }

    /// The last row of `records`.
    pub fn last_record_row(&self) -> Result<i64, IndexError> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(rowid), 0) FROM records", [], |r| {
                r.get(0)
            })?)
    }

    /// The blobs of the photos a device added.
    pub fn blobs_added_by(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<std::collections::HashSet<BlobId>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT blob_id FROM photos WHERE added_by = ?1")?;
        let rows = stmt.query_map([&device.as_bytes()[..]], |r| {
            Ok(BlobId(blob_id_from(r.get(0)?)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Photo records indexed before the index kept who added them: (record ID, sealed).
    pub fn photos_without_adder(&self) -> Result<Vec<PhotoRow>, IndexError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.record_id, r.sealed FROM photos p JOIN records r USING (record_id)
             WHERE p.added_by IS NULL",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PhotoRow {
                record_id: RecordId(blob_id_from(r.get(0)?)?),
                sealed: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Fills in who added a photo record indexed before that was kept.
    pub fn set_added_by(
        &self,
        record_id: &RecordId,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<(), IndexError> {
        self.conn.execute(
            "UPDATE photos SET added_by = ?2 WHERE record_id = ?1",
            params![&record_id.0[..], &device.as_bytes()[..]],
        )?;
        Ok(())
    }

    /// Records that a peer sent blob data that failed verification.
    pub fn record_bad_peer(&self, bad: &BadPeer) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT INTO bad_peers (device_id, at_ms, blob_id, reason) VALUES (?1, ?2, ?3, ?4)",
            params![
                &bad.device.as_bytes()[..],
                bad.at_ms as i64,
                &bad.blob.0[..],
                bad.reason
            ],
        )?;
        Ok(())
    }

    /// The last time a peer was caught sending bad blob data, if ever.
    pub fn last_bad(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<BadPeer>, IndexError> {
        let row: Option<(i64, Vec<u8>, String)> = self
            .conn
            .query_row(
                "SELECT at_ms, blob_id, reason FROM bad_peers WHERE device_id = ?1
                 ORDER BY at_ms DESC LIMIT 1",
                [&device.as_bytes()[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((at_ms, blob, reason)) = row else {
            return Ok(None);
        };
        Ok(Some(BadPeer {
            device: *device,
            at_ms: at_ms as u64,
            blob: BlobId(blob_id_from(blob)?),
            reason,
        }))
    }

    /// A known blob's sealed length, bao outboard, and whether the blob store holds it.
    pub fn blob_info(&self, blob_id: &BlobId) -> Result<Option<BlobInfo>, IndexError> {
        Ok(self
            .conn
            .prepare_cached("SELECT sealed_len, outboard, stored FROM blobs WHERE blob_id = ?1")?
            .query_row([&blob_id.0[..]], |r| {
                Ok(BlobInfo {
                    sealed_len: r.get::<_, i64>(0)? as u64,
                    outboard: r.get(1)?,
                    stored: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// The original files on this device whose recorded content is this blob: their full
    /// paths and the sealed records that describe them. A source asks this for every blob it
    /// serves, so it is found through indexes (`photos_by_blob`, `sources_by_record`).
    pub fn originals_of(&self, blob_id: &BlobId) -> Result<Vec<(PathBuf, Vec<u8>)>, IndexError> {
        let mut stmt = self.conn.prepare_cached(ORIGINALS_OF)?;
        let rows = stmt.query_map([&blob_id.0[..]], |r| {
            let folder: String = r.get(0)?;
            let rel: String = r.get(1)?;
            Ok((Path::new(&folder).join(rel), r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every member address this device has seen, by device.
    pub fn seen_addresses(
        &self,
    ) -> Result<Vec<(photomesh_protocol::identity::DeviceId, String)>, IndexError> {
        let mut stmt = self.conn.prepare(
            "SELECT device_id, address FROM devices_seen WHERE address IS NOT NULL
             ORDER BY last_seen_ms DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, address) = row?;
            if let Ok(id) = <[u8; 20]>::try_from(id) {
                out.push((
                    photomesh_protocol::identity::DeviceId::from_bytes(id),
                    address,
                ));
            }
        }
        Ok(out)
    }

    /// Remembers an address another member gave for a device.
    pub fn learn_address(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
        address: &str,
        now_ms: u64,
    ) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT INTO learned_addresses (device_id, address, learned_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(device_id) DO UPDATE SET address = excluded.address,
               learned_at_ms = excluded.learned_at_ms",
            params![&device.as_bytes()[..], address, now_ms as i64],
        )?;
        Ok(())
    }

    /// The address another member last gave for a device.
    pub fn learned_address(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<String>, IndexError> {
        Ok(self
            .conn
            .query_row(
                "SELECT address FROM learned_addresses WHERE device_id = ?1",
                [&device.as_bytes()[..]],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Replaces what a peer is known to hold, and notes when it was last synced.
    pub fn set_peer_blobs(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
        blobs: impl Iterator<Item = BlobId>,
        now_ms: u64,
    ) -> Result<(), IndexError> {
        self.transaction(|ix| -> Result<(), IndexError> {
            let id = &device.as_bytes()[..];
            ix.conn
                .execute("DELETE FROM peer_blobs WHERE device_id = ?1", [id])?;
            let mut insert = ix
                .conn
                .prepare("INSERT OR IGNORE INTO peer_blobs (device_id, blob_id) VALUES (?1, ?2)")?;
            for blob in blobs {
                insert.execute(params![id, &blob.0[..]])?;
            }
            ix.conn.execute(
                "INSERT INTO peer_sync (device_id, synced_at_ms) VALUES (?1, ?2)
                 ON CONFLICT(device_id) DO UPDATE SET synced_at_ms = excluded.synced_at_ms",
                params![id, now_ms as i64],
            )?;
            Ok(())
        })
    }

    /// The devices known to hold a blob.
    pub fn blob_holders(
        &self,
        blob_id: &BlobId,
    ) -> Result<Vec<photomesh_protocol::identity::DeviceId>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT device_id FROM peer_blobs WHERE blob_id = ?1")?;
        let rows = stmt.query_map([&blob_id.0[..]], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(bytes) = <[u8; 20]>::try_from(row?) {
                out.push(photomesh_protocol::identity::DeviceId::from_bytes(bytes));
            }
        }
        Ok(out)
    }

    /// How many blobs a peer is known to hold, and when it was last synced.
    pub fn peer_sync(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Option<(u64, u64)>, IndexError> {
        let id = &device.as_bytes()[..];
        let synced: Option<i64> = self
            .conn
            .query_row(
                "SELECT synced_at_ms FROM peer_sync WHERE device_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(synced) = synced else {
            return Ok(None);
        };
        let count: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM peer_blobs WHERE device_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        Ok(Some((count as u64, synced as u64)))
    }

    /// Every blob the blob store should hold.
    pub fn stored_blobs(&self) -> Result<Vec<BlobId>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT blob_id FROM blobs WHERE stored = 1 ORDER BY blob_id")?;
        let rows = stmt.query_map([], |r| Ok(BlobId(blob_id_from(r.get(0)?)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Starts a scan's history entry.
    pub fn begin_scan(&self, now_ms: u64) -> Result<i64, IndexError> {
        self.conn.execute(
            "INSERT INTO scans (started_at_ms) VALUES (?1)",
            [now_ms as i64],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a problem a scan met.
    pub fn add_scan_problem(&self, scan_id: i64, problem: &ScanProblem) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT INTO scan_problems (scan_id, path, reason) VALUES (?1, ?2, ?3)",
            params![scan_id, problem.path, problem.reason],
        )?;
        Ok(())
    }

    /// Writes a scan's counters (called as it goes and when it ends).
    pub fn update_scan(&self, scan_id: i64, s: &ScanSummary) -> Result<(), IndexError> {
        self.conn.execute(
            "UPDATE scans SET finished_at_ms = ?2, files_seen = ?3, new_files = ?4,
               changed_files = ?5, unchanged_files = ?6, missing_files = ?7, bytes_read = ?8
             WHERE scan_id = ?1",
            params![
                scan_id,
                s.finished_at_ms.map(|t| t as i64),
                s.files_seen as i64,
                s.new_files as i64,
                s.changed_files as i64,
                s.unchanged_files as i64,
                s.missing_files as i64,
                s.bytes_read as i64,
            ],
        )?;
        Ok(())
    }

    /// The most recent scan, with its problems.
    pub fn last_scan(&self) -> Result<Option<ScanSummary>, IndexError> {
        let row = self
            .conn
            .query_row(
                "SELECT scan_id, started_at_ms, finished_at_ms, files_seen, new_files,
                        changed_files, unchanged_files, missing_files, bytes_read
                 FROM scans ORDER BY scan_id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        ScanSummary {
                            started_at_ms: r.get::<_, i64>(1)? as u64,
                            finished_at_ms: r.get::<_, Option<i64>>(2)?.map(|t| t as u64),
                            files_seen: r.get::<_, i64>(3)? as u64,
                            new_files: r.get::<_, i64>(4)? as u64,
                            changed_files: r.get::<_, i64>(5)? as u64,
                            unchanged_files: r.get::<_, i64>(6)? as u64,
                            missing_files: r.get::<_, i64>(7)? as u64,
                            bytes_read: r.get::<_, i64>(8)? as u64,
                            problems: Vec::new(),
                        },
                    ))
                },
            )
            .optional()?;
        let Some((scan_id, mut summary)) = row else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare("SELECT path, reason FROM scan_problems WHERE scan_id = ?1 ORDER BY rowid")?;
        summary.problems = stmt
            .query_map([scan_id], |r| {
                Ok(ScanProblem {
                    path: r.get(0)?,
                    reason: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some(summary))
    }

    /// Photo count and bytes of each folder's currently recorded files.
    pub fn folder_stats(&self) -> Result<Vec<FolderStats>, IndexError> {
        let mut stmt = self.conn.prepare(
            "SELECT f.label, f.path, COUNT(s.path), COALESCE(SUM(s.size), 0)
             FROM folders f LEFT JOIN sources s ON s.folder = f.label
             GROUP BY f.label ORDER BY f.label",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(FolderStats {
                label: r.get(0)?,
                path: PathBuf::from(r.get::<_, String>(1)?),
                photos: r.get::<_, i64>(2)? as u64,
                bytes: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn corrupt(path: &Path, e: rusqlite::Error) -> IndexError {
    IndexError::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_a_blobs_originals_reads_no_table_whole() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        let plan = plan(&ix, ORIGINALS_OF, [&[0u8; 32][..]]);
        assert!(!plan.is_empty());
        // Every step is an index search; a `SCAN` would read a table once per blob served.
        assert!(
            plan.iter().all(|step| step.starts_with("SEARCH")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_cached_statement_is_not_prepared_again_for_each_new_value() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        for b in 0..5u8 {
            ix.originals_of(&BlobId([b; 32])).unwrap();
        }
        let stmt = ix.conn.prepare_cached(ORIGINALS_OF).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::Run), 5);
        // Without the planner stability setting SQLite re-prepares this join on each of the
        // four later bindings.
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    /// The steps of SQLite's plan for `sql` with `params`.
    fn plan(ix: &Index, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
        let mut stmt = ix
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        stmt.query_map(params, |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn membership_records_are_read_from_their_own_index() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        let steps = plan(&ix, MEMBERSHIP_RECORDS, []);
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(
            steps[0].contains("USING INDEX records_membership"),
            "{steps:?}"
        );
        // And it finds them: a membership record among photo records.
        let id = |b: u8| RecordId([b; 32]);
        ix.add_record(&id(1), b"not membership", 0).unwrap();
        ix.add_record(&id(2), b"pmmr and the rest", 0).unwrap();
        ix.add_record(&id(3), b"pmm", 0).unwrap();
        assert_eq!(
            ix.membership_records().unwrap(),
            vec![b"pmmr and the rest".to_vec()]
        );
    }

    #[test]
    fn migrations_run_once_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let ix = Index::create(&path).unwrap();
        assert_eq!(ix.schema_version().unwrap(), MIGRATIONS.len() as i64);
        ix.set_meta("k", "v").unwrap();
        drop(ix);
        let ix = Index::open(&path).unwrap();
        assert_eq!(ix.meta("k").unwrap().as_deref(), Some("v"));
        assert_eq!(ix.integrity_problem().unwrap(), None);
    }

    #[test]
    fn an_index_from_version_1_is_migrated_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO folders (label, path, added_at_ms) VALUES ('old', '/old', 1)",
                [],
            )
            .unwrap();
        }
        let ix = Index::open(&path).unwrap();
        assert_eq!(ix.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(ix.folders().unwrap()[0].label, "old");
        let device = photomesh_protocol::identity::DeviceId::from_bytes([1; 20]);
        ix.set_seen(&device, 5, Some("127.0.0.1:1"), Some(true))
            .unwrap();
        assert_eq!(ix.has_aes(&device).unwrap(), Some(true));
        assert_eq!(
            ix.seen(&device).unwrap(),
            Some((5, Some("127.0.0.1:1".into())))
        );
    }

    #[test]
    fn a_newer_index_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        Index::create(&path)
            .unwrap()
            .conn
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            Index::open(&path),
            Err(IndexError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_reported_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        std::fs::write(&path, vec![0x55; 8192]).unwrap();
        let err = Index::open(&path).err().unwrap();
        assert!(matches!(err, IndexError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("index.sqlite"));
        // Nothing was written over the damaged file.
        assert_eq!(std::fs::read(&path).unwrap(), vec![0x55; 8192]);
    }

    #[test]
    fn folders_add_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("i.sqlite")).unwrap();
        let f = Folder {
            label: "camera".into(),
            path: "/photos/camera".into(),
        };
        assert!(ix.add_folder(&f, 1).unwrap());
        assert!(!ix.add_folder(&f, 1).unwrap());
        assert_eq!(ix.folders().unwrap(), vec![f]);
        assert!(ix.remove_folder("camera").unwrap());
        assert!(!ix.remove_folder("camera").unwrap());
        assert!(ix.folders().unwrap().is_empty());
    }
}
