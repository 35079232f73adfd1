//! The SQLite index: records, photos, blobs, source files, folders and scan history.
//!
//! One SQLite file in WAL mode, opened with `foreign_keys` on. The schema is created by
//! numbered migrations tracked in `PRAGMA user_version`; each runs in a transaction, so an
//! index is always at one version or the next, never between. The sealed records are the
//! truth (they are what replicates); the `photos` table holds the fields of each photo record
//! this device opened, for queries, and those fields are all that is kept of a record that
//! they seal again byte for byte (`stored.rs`).
//!
//! The index never holds photo content: only hashes, lengths, verification data (bao
//! outboards) and the sealed records.

#[macro_use]
mod stored;
mod blobs;
mod folders;
mod peers;
mod records;
mod salvage;
mod scans;
mod schema;
mod tallies;
mod trash;

pub use blobs::{BlobInfo, OriginalRow};
pub use folders::{CurrentSource, Folder, FolderStats, GONE_VERSION, GoneSource, SourceRow};
pub use peers::{BadPeer, PeerReport};
pub use records::PhotoRow;
#[cfg(test)]
pub(crate) use salvage::testing;
pub use salvage::{Salvage, Salvaged, SeenRow};
pub use scans::{LeftOut, ScanProblem, ScanSummary};
pub use stored::StoredRecord;
pub use tallies::{ClassPhoto, PhotoClass};
pub use trash::{TrashRow, Trashed, Version};

use schema::MIGRATIONS;

use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension};

/// Why the index refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file is not a SQLite database or is damaged: found when it was opened, or by any
    /// later query that met a damaged page (SQLite's `SQLITE_CORRUPT` or `SQLITE_NOTADB`).
    #[error(
        "the index {path} is damaged ({detail}). Your photos are untouched. Run \
         `photomesh repair-index` (with no node running on this home): it moves the damaged \
         file aside and builds a new index from what can still be read"
    )]
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The index file is not there.
    #[error(
        "the index {0} is missing; run `photomesh repair-index` (with no node running on this \
         home) to make a new one from the keys and blobs this home still holds"
    )]
    Missing(PathBuf),
    /// The index is there but could not be opened (permissions, a full disk, a lock).
    #[error("cannot open the index {path}: {source}")]
    Open {
        /// The index file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
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
    /// A file was to be linked to a record that is not a photo at its path: a bug, caught
    /// before it mixed two files up.
    #[error(
        "index: no photo record at {folder}/{path} to link the file there to; run \
         `photomesh scan` again, and report this if it persists"
    )]
    NoPhotoAt {
        /// The folder's label.
        folder: String,
        /// The file's path in it.
        path: String,
    },
    /// Any other SQLite error.
    #[error("index: {0}")]
    Sqlite(#[source] rusqlite::Error),
}

impl From<rusqlite::Error> for IndexError {
    /// A query that meets a damaged page fails with SQLite's own words, naming no file; it
    /// becomes [`IndexError::Corrupt`], naming the index this process has open.
    fn from(e: rusqlite::Error) -> Self {
        if is_damage(&e) {
            IndexError::Corrupt {
                path: open_files::named(),
                detail: e.to_string(),
            }
        } else {
            IndexError::Sqlite(e)
        }
    }
}

/// A 32-byte ID (blob, record, hash) read from a column, or a conversion error naming it.
fn blob_id_from(bytes: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "an ID column does not hold 32 bytes".into(),
        )
    })
}

/// The open index.
pub struct Index {
    conn: Connection,
    path: PathBuf,
}

impl Index {
    /// Creates a new index file and brings it to the current schema.
    pub fn create(path: &Path) -> Result<Self, IndexError> {
        let conn = Connection::open(path)?;
        Self::setup(conn, path)
    }

    /// Opens an existing index, migrating it forward if it is older than this build.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        // SQLite would say only "unable to open database file".
        if !path.exists() {
            return Err(IndexError::Missing(path.to_owned()));
        }
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| at_open(path, e))?;
        Self::setup(conn, path)
    }

    /// A second, read-only connection to an open index (which has brought the file to the
    /// current schema): it reads what the writer last committed, and never waits for a
    /// write in progress (WAL mode).
    pub fn open_reader(path: &Path) -> Result<Self, IndexError> {
        let map = |e| at_open(path, e);
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(map)?;
        // Never waits: a read that finds the file locked (the writer checkpointing, in
        // this same process) fails at once, and its caller reads another way. SQLite's
        // busy handler would sleep on the calling thread, an async one.
        conn.busy_timeout(std::time::Duration::ZERO).map_err(map)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(map)?;
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(map)?;
        Ok(Self {
            conn,
            path: open_files::opened(path),
        })
    }

    fn setup(conn: Connection, path: &Path) -> Result<Self, IndexError> {
        let map = |e| at_open(path, e);
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
            path: open_files::opened(path),
        };
        index.migrate()?;
        // Temporary tables, statement journals and the rows an `INSERT … SELECT` gathers
        // before its triggers run stay in memory: the triggers that keep `status`'s counts
        // (schema version 12) made each statement of a scan write some forty pages to a
        // temporary file otherwise. After the migrations, whose one-off statements may be
        // large.
        index
            .conn
            .pragma_update(None, "temp_store", "MEMORY")
            .map_err(map)?;
        Ok(index)
    }

    fn migrate(&self) -> Result<(), IndexError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| at_open(&self.path, e))?;
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

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs SQLite's quick integrity check (every page of the file is read: a second or so
    /// per hundred megabytes); `Ok(None)` when the file is sound, else what is wrong (the
    /// first problems SQLite lists, or the error that stopped the check).
    pub fn integrity_problem(&self) -> Result<Option<String>, IndexError> {
        check(&self.conn, "quick_check")
    }

    /// Runs `f` in one transaction: all of its writes land, or none. The write lock is taken
    /// at the start (waiting out another process's writes): a transaction that read first
    /// and then wrote would fail at once if another process wrote in between.
    pub fn transaction<T, E: From<IndexError>>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(IndexError::from)?;
        let value = f(self)?;
        tx.commit().map_err(IndexError::from)?;
        Ok(value)
    }

    /// Runs `f`'s statements all or none, inside a transaction or not (a savepoint).
    fn within_savepoint<T>(
        &self,
        f: impl FnOnce() -> Result<T, IndexError>,
    ) -> Result<T, IndexError> {
        self.conn.execute_batch("SAVEPOINT within")?;
        match f() {
            Ok(value) => {
                self.conn.execute_batch("RELEASE within")?;
                Ok(value)
            }
            Err(e) => {
                // The error that counts is `f`'s; the savepoint goes either way.
                let _ = self
                    .conn
                    .execute_batch("ROLLBACK TO within; RELEASE within");
                Err(e)
            }
        }
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

    /// Removes a value from the `meta` table.
    pub fn delete_meta(&self, key: &str) -> Result<(), IndexError> {
        self.conn
            .execute("DELETE FROM meta WHERE key = ?1", [key])?;
        Ok(())
    }

    /// SQLite's data version: it changes when another connection commits to the file.
    pub fn data_version(&self) -> Result<i64, IndexError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
impl Index {
    /// Counts SQLite's virtual-machine steps from now on, in the returned counter: the
    /// progress handler runs at every loop's turn, so the count grows with every row read.
    pub(crate) fn count_steps(&mut self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        use std::sync::atomic::{AtomicU64, Ordering};
        let steps = std::sync::Arc::new(AtomicU64::new(0));
        let counter = std::sync::Arc::clone(&steps);
        self.conn
            .progress_handler(
                1,
                Some(move || {
                    counter.fetch_add(1, Ordering::Relaxed);
                    false
                }),
            )
            .expect("a progress handler is set on an open connection");
        steps
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        open_files::closed(&self.path);
    }
}

/// The index files this process has open, so that a damage error raised where only SQLite's
/// error is at hand (any query, through `?`) names the file. A process works on one home, so
/// this is one file; when several are open (tests), the error names them all.
mod open_files {
    use std::path::{Path, PathBuf};

    use crate::lock::Mutex;

    static OPEN: Mutex<Vec<PathBuf>> = Mutex::new("the open index files", Vec::new());

    /// Notes that `path` is open; returns it.
    pub(super) fn opened(path: &Path) -> PathBuf {
        OPEN.lock().push(path.to_owned());
        path.to_owned()
    }

    /// Notes that one opening of `path` is closed.
    pub(super) fn closed(path: &Path) {
        let mut open = OPEN.lock();
        if let Some(at) = open.iter().position(|p| p == path) {
            open.swap_remove(at);
        }
    }

    /// The open index file, or every one (joined by " or ") when several are open.
    pub(super) fn named() -> PathBuf {
        let mut open = OPEN.lock().clone();
        open.sort();
        open.dedup();
        match open.as_slice() {
            [one] => one.clone(),
            [] => PathBuf::from("index.sqlite"),
            several => PathBuf::from(
                several
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            ),
        }
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// SQLite's `quick_check` or `integrity_check` (`pragma`) of the file `conn` has open: `None`
/// when it is sound, else the first problems it lists, or the damage that stopped it.
fn check(conn: &Connection, pragma: &str) -> Result<Option<String>, IndexError> {
    let checked = (|| {
        let mut stmt = conn.prepare(&format!("PRAGMA {pragma}(5)"))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<Vec<String>, _>>()
    })();
    match checked {
        Ok(lines) if lines == ["ok"] => Ok(None),
        Ok(lines) => Ok(Some(lines.join("; "))),
        Err(e) if is_damage(&e) => Ok(Some(e.to_string())),
        Err(e) => Err(IndexError::Sqlite(e)),
    }
}

/// Whether SQLite said the file is damaged or is not a database.
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// An error met while opening the index at `path`: damage, or why it could not be opened.
fn at_open(path: &Path, e: rusqlite::Error) -> IndexError {
    if is_damage(&e) {
        IndexError::Corrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        }
    } else {
        IndexError::Open {
            path: path.to_owned(),
            source: e,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use photomesh_protocol::record::RecordId;
    use photomesh_protocol::seal::BlobId;

    use super::blobs::ORIGINALS_OF;
    use super::records::MEMBERSHIP_RECORDS;
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

    /// Adds a photo record of `folder/path` (`n` makes its ID, content and blob) and returns
    /// its ID: what a source there is linked to.
    pub(crate) fn add_photo_at(ix: &Index, folder: &str, path: &str, n: u64) -> RecordId {
        use photomesh_protocol::record::{FileTime, MediaType, PhotoRecord};
        let hash = *blake3::hash(format!("{folder}/{path} {n}").as_bytes()).as_bytes();
        let photo = PhotoRecord {
            folder: folder.into(),
            path: path.into(),
            size: n,
            mtime: FileTime {
                seconds: 1,
                nanos: 0,
            },
            capture_time: None,
            media_type: MediaType::Jpeg,
            plaintext_hash: hash,
            blob_id: BlobId(hash),
            blob_epoch: 1,
            added_by: photomesh_protocol::identity::DeviceId::from_bytes([1; 20]),
            created_at_ms: 1,
        };
        let id = RecordId(hash);
        ix.add_photo_record(
            &id,
            b"pmsr sealed",
            &photo,
            &photomesh_protocol::keys::KeyRing::default(),
            1,
        )
        .unwrap();
        id
    }

    /// The steps of SQLite's plan for `sql` with `params`.
    pub(super) fn plan(ix: &Index, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
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
    fn sets_that_grow_with_the_library_are_read_in_order_not_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        let page = rusqlite::params![vec![0u8; 20], vec![0u8; 32], 10];
        for steps in [
            plan(&ix, super::blobs::STORED_IN_ORDER, []),
            plan(&ix, super::blobs::ORIGINALS_IN_ORDER, []),
            plan(&ix, super::peers::PEER_BLOBS_AFTER, page),
        ] {
            // A sorter holds every row it sorts (in memory: `temp_store` is MEMORY). One for
            // the last term only holds the rows that share the others: the IDs of one
            // 8-byte prefix in `ORIGINALS_IN_ORDER`.
            assert!(
                steps
                    .iter()
                    .all(|s| !s.contains("TEMP B-TREE") || s.contains("LAST TERM OF ORDER BY")),
                "{steps:?}"
            );
        }
    }

    #[test]
    fn a_new_file_s_content_is_looked_up_by_hash_not_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        let steps = plan(
            &ix,
            super::folders::SOURCES_WITH_CONTENT,
            rusqlite::params![1i64, vec![0u8; 32]],
        );
        assert!(
            steps
                .iter()
                .any(|s| s.contains("USING INDEX photos_by_hash")),
            "{steps:?}"
        );
    }

    #[test]
    fn the_photo_at_a_path_is_found_through_the_path_index() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        let steps = plan(&ix, super::records::CURRENT_PHOTO_AT, ["camera", "a.jpg"]);
        assert!(steps.iter().all(|s| !s.starts_with("SCAN")), "{steps:?}");
        assert!(
            steps
                .iter()
                .any(|s| s.contains("USING INDEX photos_by_path")),
            "{steps:?}"
        );
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
    fn an_index_from_version_10_keeps_its_blobs_outboards_and_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        let device = photomesh_protocol::identity::DeviceId::from_bytes([1; 20]);
        let (big, small) = (BlobId([2; 32]), BlobId([3; 32]));
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..10] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 10).unwrap();
            conn.execute("INSERT INTO folders VALUES ('camera', '/camera', 1)", [])
                .unwrap();
            let mut blob = conn
                .prepare("INSERT INTO blobs VALUES (?1, ?2, ?3, ?4, ?5)")
                .unwrap();
            blob.execute(rusqlite::params![&big.0[..], 40_000, vec![9u8; 128], 1, 7])
                .unwrap();
            blob.execute(rusqlite::params![&small.0[..], 100, Vec::<u8>::new(), 0, 0])
                .unwrap();
            for (n, blob) in [(4u8, big), (5, small)] {
                let (record, hash) = ([n; 32], [n + 10; 32]);
                conn.execute("INSERT INTO records VALUES (?1, X'00', 1)", [&record[..]])
                    .unwrap();
                conn.execute(
                    "INSERT INTO photos (record_id, folder, path, size, plaintext_hash, blob_id,
                                         created_at_ms, added_by, media_type)
                     VALUES (?1, 'camera', ?2, 10, ?3, ?4, 1, ?5, 'jpeg')",
                    rusqlite::params![
                        &record[..],
                        format!("{n}.jpg"),
                        &hash[..],
                        &blob.0[..],
                        &device.as_bytes()[..]
                    ],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO sources (folder, path, size, mtime_s, mtime_ns, inode, record_id)
                     VALUES ('camera', ?1, 10, 1, 0, ?2, ?3)",
                    rusqlite::params![format!("{n}.jpg"), n, &record[..]],
                )
                .unwrap();
            }
        }
        let ix = Index::open(&path).unwrap();
        assert_eq!(ix.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let info = ix.blob_info(&big).unwrap().unwrap();
        assert_eq!((info.sealed_len, info.stored), (40_000, true));
        assert_eq!(info.outboard, vec![9u8; 128]);
        let info = ix.blob_info(&small).unwrap().unwrap();
        assert_eq!((info.sealed_len, info.stored), (100, false));
        assert!(info.outboard.is_empty());
        assert_eq!(ix.stored_blobs().unwrap(), vec![big]);
        assert_eq!(ix.held_verified_since().unwrap(), Some(0));
        assert_eq!(ix.blobs_added_by(&device).unwrap(), [big, small].into());
        assert_eq!(ix.photos_added_after(&device, 0).unwrap(), 2);
        let found = ix.sources_with_content(10, &[14; 32]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].2.record_id, RecordId([4; 32]));
        // Blobs known from now on keep their outboards as those did.
        ix.add_blob(&BlobId([6; 32]), 50_000, &[8; 64]).unwrap();
        assert_eq!(
            ix.blob_info(&BlobId([6; 32])).unwrap().unwrap().outboard,
            vec![8u8; 64]
        );
        assert_eq!(ix.integrity_problem().unwrap(), None);
    }

    #[test]
    fn an_index_from_version_13_keeps_its_sources_as_rows_of_their_photos() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..13] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 13).unwrap();
            conn.execute("INSERT INTO folders VALUES ('camera', '/camera', 1)", [])
                .unwrap();
            // 4 and 5 are photos at their sources' paths; 6's source names another path.
            for n in [4u8, 5, 6] {
                let record = [n; 32];
                conn.execute("INSERT INTO records VALUES (?1, X'00', 1)", [&record[..]])
                    .unwrap();
                conn.execute(
                    "INSERT INTO photos (record_id, folder, path, size, plaintext_hash, blob_id,
                                         created_at_ms, media_type)
                     VALUES (?1, 'camera', ?2, ?3, ?1, ?1, 1, 'jpeg')",
                    rusqlite::params![&record[..], format!("{n}.jpg"), 100 * u32::from(n)],
                )
                .unwrap();
                let at = if n == 6 {
                    "elsewhere.jpg".into()
                } else {
                    format!("{n}.jpg")
                };
                conn.execute(
                    "INSERT INTO sources (folder, path, size, mtime_s, mtime_ns, inode, record_id,
                                         gone_since_ms, verified_at_ms)
                     VALUES ('camera', ?1, ?2, 7, 8, ?3, ?4, ?5, 9)",
                    rusqlite::params![
                        at,
                        100 * u32::from(n),
                        n,
                        &record[..],
                        (n == 5).then_some(50)
                    ],
                )
                .unwrap();
            }
        }
        let ix = Index::open(&path).unwrap();
        let sources = ix.sources("camera").unwrap();
        assert_eq!(sources.len(), 2, "{sources:?}");
        let four = &sources["4.jpg"];
        assert_eq!(
            (
                four.size,
                four.mtime_s,
                four.mtime_ns,
                four.inode,
                four.gone
            ),
            (400, 7, 8, 4, false)
        );
        assert_eq!(four.record_id, RecordId([4; 32]));
        assert!(sources["5.jpg"].gone);
        // The tallies count what is there: 4.jpg alone.
        let stats = ix.folder_stats().unwrap();
        assert_eq!((stats[0].photos, stats[0].bytes), (1, 400));
        assert_eq!(ix.held_verified_since().unwrap(), Some(9));
        // The file whose source was dropped is linked again when a scan finds it.
        ix.put_source(
            "camera",
            &folders::SourceRow {
                path: "6.jpg".into(),
                size: 600,
                mtime_s: 1,
                mtime_ns: 0,
                inode: 6,
                record_id: RecordId([6; 32]),
                gone: false,
            },
        )
        .unwrap();
        assert_eq!(ix.folder_stats().unwrap()[0].photos, 2);
        assert_eq!(ix.integrity_problem().unwrap(), None);
    }

    #[test]
    fn a_source_is_a_photo_at_its_path_and_one_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        ix.add_folder(
            &folders::Folder {
                label: "camera".into(),
                path: "/camera".into(),
            },
            1,
        )
        .unwrap();
        let row = |path: &str, record_id| folders::SourceRow {
            path: path.into(),
            size: 0,
            mtime_s: 1,
            mtime_ns: 0,
            inode: 1,
            record_id,
            gone: false,
        };
        let first = add_photo_at(&ix, "camera", "a.jpg", 10);
        ix.put_source("camera", &row("a.jpg", first)).unwrap();
        // An edit: a new version at the path, and the file is that one now.
        let edit = add_photo_at(&ix, "camera", "a.jpg", 20);
        ix.put_source("camera", &row("a.jpg", edit)).unwrap();
        let sources = ix.sources("camera").unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!(
            (sources["a.jpg"].record_id, sources["a.jpg"].size),
            (edit, 20)
        );
        let stats = ix.folder_stats().unwrap();
        assert_eq!((stats[0].photos, stats[0].bytes), (1, 20));
        // A record of another path is refused, and changes nothing.
        assert!(matches!(
            ix.put_source("camera", &row("b.jpg", edit)),
            Err(IndexError::NoPhotoAt { path, .. }) if path == "b.jpg"
        ));
        assert_eq!(ix.sources("camera").unwrap().len(), 1);
        assert_eq!(ix.source("camera", "b.jpg").unwrap(), None);
    }

    #[test]
    fn a_path_and_what_is_under_it_are_one_range_of_the_path_index() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        for (sql, n) in [(folders::MARK_SOURCES_GONE, 3), (folders::GONE_UNDER, 2)] {
            let steps = plan(&ix, sql, rusqlite::params_from_iter(vec!["a"; n]));
            assert!(
                steps
                    .iter()
                    .any(|s| s.contains("photos_by_path (folder=? AND path>? AND path<?)")),
                "{sql}: {steps:?}"
            );
        }
    }

    #[test]
    fn lookups_by_adder_and_blob_read_no_table_whole() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        let adder = format!("SELECT blob_id FROM photo_rows WHERE {}", records::ADDED_BY);
        let steps = plan(&ix, &adder, [&[1u8; 20][..]]);
        assert!(
            steps
                .iter()
                .any(|s| s.starts_with("SEARCH photo_rows USING INDEX photos_by_c"))
                && !steps.iter().any(|s| s.starts_with("SCAN photo_rows")),
            "{steps:?}"
        );
        let steps = plan(&ix, blobs::BLOB_INFO, [&[1u8; 32][..]]);
        assert!(steps.iter().all(|s| s.starts_with("SEARCH")), "{steps:?}");
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

    #[test]
    fn a_member_is_dialled_where_this_device_saw_it_else_where_others_did() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("i.sqlite")).unwrap();
        let device = photomesh_protocol::identity::DeviceId::from_bytes([4; 20]);
        assert_eq!(ix.last_known_address(&device).unwrap(), None);
        ix.learn_address(&device, "192.0.2.7:7447", 1).unwrap();
        let learned = "192.0.2.7:7447".parse().ok();
        assert_eq!(ix.last_known_address(&device).unwrap(), learned);
        ix.set_seen(&device, 2, Some("192.0.2.9:7447"), None)
            .unwrap();
        let seen = "192.0.2.9:7447".parse().ok();
        assert_eq!(ix.last_known_address(&device).unwrap(), seen);
        ix.add_peer("nas.invalid:7447", 3).unwrap();
        ix.add_peer("192.0.2.1:7447", 3).unwrap();
        assert_eq!(
            ix.peer_addresses().unwrap(),
            vec!["192.0.2.1:7447".parse().unwrap()],
            "a name that is not an address is left out"
        );
    }
}
