//! The folders a device backs up and the source files found in them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use photomesh_protocol::record::RecordId;
use photomesh_protocol::seal::BlobId;
use rusqlite::{OptionalExtension, params};

use super::blob_id_from;
use super::{Index, IndexError, path_text};

/// The source file at path `?2` of folder `?1`, through the photo rows there (any number of
/// versions; one at most has a source).
const AT_PATH: &str = "photo IN (SELECT rid FROM photo_rows WHERE folder = ?1 AND path = ?2)";

/// The paths at or under `?2` (a file, or a folder's files) of folder `?1`: one range of
/// `photos_by_path`, `[?2, ?2 + "0")`, which holds `?2`, `?2/…` and only names that go on
/// with a character below '/' (filtered out).
macro_rules! at_or_under {
    () => {
        "folder = ?1 AND path >= ?2 AND path < ?2 || '0' AND (path = ?2 OR path >= ?2 || '/')"
    };
}

/// Marks the sources at or under path `?2` of folder `?1` gone since `?3`.
pub(super) const MARK_SOURCES_GONE: &str = concat!(
    "UPDATE source_files SET gone_since_ms = ?3
     WHERE gone_since_ms IS NULL AND photo IN (SELECT rid FROM photo_rows WHERE ",
    at_or_under!(),
    ")"
);

/// The sources at or under path `?2` of folder `?1` found gone (not damaged or released).
pub(super) const GONE_UNDER: &str = concat!(
    "SELECT path FROM sources
     WHERE gone_since_ms IS NOT NULL AND damaged = 0 AND released_at_ms IS NULL AND ",
    at_or_under!()
);

/// The sources with size `?1` and plaintext hash `?2`, but released ones (see
/// [`Index::sources_with_content`]):
/// asked for every new file a scan records, so found through `photos_by_hash` (which holds
/// the first 8 bytes of each hash: those are compared first, as the index is on them).
pub(super) const SOURCES_WITH_CONTENT: &str =
    "SELECT s.path, s.size, s.mtime_s, s.mtime_ns, s.inode, s.record_id,
            s.gone_since_ms IS NOT NULL, s.folder, f.path
     FROM sources s JOIN photo_rows p ON p.rid = s.photo JOIN folders f ON f.label = s.folder
     WHERE substr(p.plaintext_hash, 1, 8) = substr(?2, 1, 8) AND p.plaintext_hash = ?2
       AND s.size = ?1 AND s.released_at_ms IS NULL";

/// The sources gone or damaged, but released ones and those of photos in the trash.
const GONE_SOURCES: &str = "SELECT s.folder, s.path, s.gone_since_ms, p.blob_id, s.damaged
     FROM sources s JOIN photo_rows p ON p.rid = s.photo
     WHERE s.gone_since_ms IS NOT NULL AND s.released_at_ms IS NULL
       AND NOT EXISTS (SELECT 1 FROM trash t WHERE t.record_id = s.record_id)";

/// The first `?1` of them found gone, walking `sources_lost` in order.
pub(super) const FIRST_GONE_SOURCES: &str =
    "SELECT s.folder, s.path, s.gone_since_ms, p.blob_id, s.damaged
     FROM sources s JOIN photo_rows p ON p.rid = s.photo
     WHERE s.gone_since_ms IS NOT NULL AND s.released_at_ms IS NULL
       AND NOT EXISTS (SELECT 1 FROM trash t WHERE t.record_id = s.record_id)
     ORDER BY s.gone_since_ms LIMIT ?1";

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
    /// Whether the file was found gone from its folder (by a scan or the watcher) since.
    pub gone: bool,
}

/// The `meta` key counting the times sources were found gone: a running node's held set,
/// which holds every original that is there, reloads when it changes.
pub const GONE_VERSION: &str = "sources_gone_version";

/// A recorded original no longer held: gone from its folder, or damaged in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoneSource {
    /// Its folder's label.
    pub folder: String,
    /// Its path in the folder.
    pub path: String,
    /// Since when (ms since the epoch).
    pub since_ms: u64,
    /// Its recorded content.
    pub blob: BlobId,
    /// There, but its content no longer matches its record.
    pub damaged: bool,
}

/// A recorded original that is there, of its photo's current version (not in the trash):
/// what `free-up-space` may release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentSource {
    /// Its folder's label.
    pub folder: String,
    /// Its folder's path.
    pub root: PathBuf,
    /// The file as last scanned.
    pub source: SourceRow,
    /// Its recorded content.
    pub blob: BlobId,
    /// The recorded hash of its plaintext.
    pub plaintext_hash: [u8; 32],
    /// When its record was made (ms since the epoch).
    pub recorded_at_ms: u64,
}

/// Per-folder totals of the files currently recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FolderStats {
    /// The folder's label.
    pub label: String,
    /// Where it is.
    pub path: PathBuf,
    /// Files recorded in it that are there (not found gone).
    pub photos: u64,
    /// Their total size.
    pub bytes: u64,
}

impl Index {
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
            ix.conn.execute(
                "DELETE FROM source_files
                 WHERE photo IN (SELECT rid FROM photo_rows WHERE folder = ?1)",
                [label],
            )?;
            Ok(ix
                .conn
                .execute("DELETE FROM folders WHERE label = ?1", [label])?
                == 1)
        })
    }

    /// The source files of a folder as last scanned, by relative path.
    pub fn sources(&self, folder: &str) -> Result<HashMap<String, SourceRow>, IndexError> {
        let mut stmt = self.conn.prepare(
            "SELECT path, size, mtime_s, mtime_ns, inode, record_id, gone_since_ms IS NOT NULL
             FROM sources WHERE folder = ?1",
        )?;
        let rows = stmt.query_map([folder], source_row)?;
        let mut map = HashMap::new();
        for row in rows {
            let row = row?;
            map.insert(row.path.clone(), row);
        }
        Ok(map)
    }

    /// At most `limit` source files of a folder whose paths follow `after`, in path order,
    /// each with whether it was released by `free-up-space`: a scan reads them a page at a
    /// time beside its walk ([`crate::library::scan`]).
    pub fn sources_after(
        &self,
        folder: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(SourceRow, bool)>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, size, mtime_s, mtime_ns, inode, record_id, gone_since_ms IS NOT NULL,
                    released_at_ms IS NOT NULL
             FROM sources WHERE folder = ?1 AND path > ?2 ORDER BY path LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![folder, after, limit as i64], |r| {
            Ok((source_row(r)?, r.get(7)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The source that is there (not found gone or damaged) following `after` in
    /// (folder, path) order — the scrub's next original — with its folder's path.
    pub fn next_source(
        &self,
        after: Option<(&str, &str)>,
    ) -> Result<Option<(String, PathBuf, SourceRow)>, IndexError> {
        let (folder, path) = after.unwrap_or(("", ""));
        Ok(self
            .conn
            .prepare_cached(
                "SELECT s.path, s.size, s.mtime_s, s.mtime_ns, s.inode, s.record_id,
                        s.gone_since_ms IS NOT NULL, s.folder, f.path
                 FROM sources s JOIN folders f ON f.label = s.folder
                 WHERE s.gone_since_ms IS NULL AND (s.folder, s.path) > (?1, ?2)
                 ORDER BY s.folder, s.path LIMIT 1",
            )?
            .query_row(params![folder, path], |r| {
                Ok((
                    r.get::<_, String>(7)?,
                    PathBuf::from(r.get::<_, String>(8)?),
                    source_row(r)?,
                ))
            })
            .optional()?)
    }

    /// How many sources are there (not found gone or damaged): the folders' tallies.
    pub fn present_source_count(&self) -> Result<u64, IndexError> {
        Ok(self
            .conn
            .prepare_cached("SELECT COALESCE(SUM(photos), 0) FROM folder_tallies")?
            .query_row([], |r| r.get::<_, i64>(0))?
            .max(0) as u64)
    }

    /// One source file of a folder as last scanned, if it was.
    pub fn source(&self, folder: &str, path: &str) -> Result<Option<SourceRow>, IndexError> {
        Ok(self
            .conn
            .query_row(
                "SELECT path, size, mtime_s, mtime_ns, inode, record_id,
                        gone_since_ms IS NOT NULL
                 FROM sources WHERE folder = ?1 AND path = ?2",
                params![folder, path],
                source_row,
            )
            .optional()?)
    }

    /// Records (or re-records) a source file whose content was just hashed: it is verified
    /// now. Its record must be a photo at its path (the file's size is the record's); a
    /// source there of another record goes.
    pub fn put_source(&self, folder: &str, row: &SourceRow) -> Result<(), IndexError> {
        self.within_savepoint(|| {
            // The file an earlier record at the path described, if another.
            self.conn
                .prepare_cached(&format!(
                    "DELETE FROM source_files WHERE {AT_PATH}
                       AND photo IS NOT (SELECT rowid FROM records WHERE record_id = ?3)"
                ))?
                .execute(params![folder, row.path, &row.record_id.0[..]])?;
            let put = self
                .conn
                .prepare_cached(
                    "INSERT INTO source_files (photo, mtime_s, mtime_ns, inode, verified_at_ms)
                     SELECT rid, ?4, ?5, ?6, ?7 FROM photos
                     WHERE record_id = ?3 AND folder = ?1 AND path = ?2
                     ON CONFLICT (photo) DO UPDATE SET mtime_s = excluded.mtime_s,
                       mtime_ns = excluded.mtime_ns, inode = excluded.inode,
                       gone_since_ms = NULL, verified_at_ms = excluded.verified_at_ms,
                       damaged = 0, released_at_ms = NULL",
                )?
                .execute(params![
                    folder,
                    row.path,
                    &row.record_id.0[..],
                    row.mtime_s,
                    i64::from(row.mtime_ns),
                    row.inode as i64,
                    crate::clock::now_ms() as i64,
                ])?;
            if put == 0 {
                return Err(IndexError::NoPhotoAt {
                    folder: folder.to_owned(),
                    path: row.path.clone(),
                });
            }
            Ok(())
        })
    }

    /// Marks a source whose content no longer matches its record, although its size and
    /// modification time do, as damaged: no longer held, and not taken back by a scan until
    /// the file changes.
    pub fn mark_source_damaged(
        &self,
        folder: &str,
        path: &str,
        now_ms: u64,
    ) -> Result<(), IndexError> {
        self.conn
            .prepare_cached(&format!(
                "UPDATE source_files
                 SET gone_since_ms = COALESCE(gone_since_ms, ?3), damaged = 1 WHERE {AT_PATH}"
            ))?
            .execute(params![folder, path, now_ms as i64])?;
        self.bump_gone_version()
    }

    /// Notes that a source's content was found to match its record at `at_ms`.
    pub fn set_source_verified(
        &self,
        folder: &str,
        path: &str,
        at_ms: u64,
    ) -> Result<(), IndexError> {
        self.conn
            .prepare_cached(&format!(
                "UPDATE source_files SET verified_at_ms = ?3 WHERE {AT_PATH}"
            ))?
            .execute(params![folder, path, at_ms as i64])?;
        Ok(())
    }

    /// Marks the sources at `paths` of a folder (and, for a path that was a folder, every
    /// source under it) as gone from their folder since `now_ms`. Returns how many were
    /// not marked before.
    pub fn mark_sources_gone(
        &self,
        folder: &str,
        paths: &[&str],
        now_ms: u64,
    ) -> Result<usize, IndexError> {
        let mut stmt = self.conn.prepare_cached(MARK_SOURCES_GONE)?;
        let mut marked = 0;
        for path in paths {
            marked += stmt.execute(params![folder, path, now_ms as i64])?;
        }
        if marked > 0 {
            self.bump_gone_version()?;
        }
        Ok(marked)
    }

    /// Marks every source whose recorded content is `blob_id` as gone from its folder: a
    /// reader found it missing or no longer as recorded (a rescan records it again if it is
    /// there, changed). Returns how many were marked.
    pub fn mark_originals_gone(&self, blob_id: &BlobId, now_ms: u64) -> Result<usize, IndexError> {
        let marked = self
            .conn
            .prepare_cached(
                "UPDATE source_files SET gone_since_ms = ?2
                 WHERE gone_since_ms IS NULL
                   AND photo IN (SELECT rid FROM photo_rows
                                 WHERE substr(blob_id, 1, 8) = substr(?1, 1, 8) AND blob_id = ?1)",
            )?
            .execute(params![&blob_id.0[..], now_ms as i64])?;
        if marked > 0 {
            self.bump_gone_version()?;
        }
        Ok(marked)
    }

    /// The sources found gone from their folders or damaged, but for photos in the trash and
    /// originals released by `free-up-space`.
    pub fn gone_sources(&self) -> Result<Vec<GoneSource>, IndexError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{GONE_SOURCES} ORDER BY s.folder, s.path"))?;
        let rows = stmt.query_map([], gone_source)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The first `limit` of [`Self::gone_sources`] to be found gone (through
    /// `sources_lost`, reading only those), in (folder, path) order.
    pub fn first_gone_sources(&self, limit: usize) -> Result<Vec<GoneSource>, IndexError> {
        let mut stmt = self.conn.prepare_cached(FIRST_GONE_SOURCES)?;
        let rows = stmt.query_map([limit.min(i64::MAX as usize) as i64], gone_source)?;
        let mut gone: Vec<GoneSource> = rows.collect::<Result<_, _>>()?;
        gone.sort_by(|a, b| (&a.folder, &a.path).cmp(&(&b.folder, &b.path)));
        Ok(gone)
    }

    /// The recorded originals at `path` of a folder, or under it, found gone (not damaged, not
    /// released by `free-up-space`).
    pub fn gone_under(&self, folder: &str, path: &str) -> Result<Vec<String>, IndexError> {
        let mut stmt = self.conn.prepare_cached(GONE_UNDER)?;
        let rows = stmt.query_map(params![folder, path], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether any recorded original is gone from its folder (released ones are not).
    pub fn has_gone_sources(&self) -> Result<bool, IndexError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sources
                            WHERE gone_since_ms IS NOT NULL AND released_at_ms IS NULL)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Marks a source found in its folder again (gone, or released by `free-up-space`) as
    /// there: held again, so a running node's held set reloads.
    pub fn mark_source_back(&self, folder: &str, path: &str) -> Result<(), IndexError> {
        let back = self
            .conn
            .prepare_cached(&format!(
                "UPDATE source_files SET gone_since_ms = NULL, released_at_ms = NULL
                 WHERE {AT_PATH} AND damaged = 0 AND gone_since_ms IS NOT NULL"
            ))?
            .execute(params![folder, path])?;
        if back > 0 {
            self.bump_gone_version()?;
        }
        Ok(())
    }

    /// Forgets the source at a path (its photo moved away: the move record keeps it).
    pub fn remove_source(&self, folder: &str, path: &str) -> Result<(), IndexError> {
        self.conn
            .prepare_cached(&format!("DELETE FROM source_files WHERE {AT_PATH}"))?
            .execute(params![folder, path])?;
        self.bump_gone_version()
    }

    /// Tells a running node that what this device holds changed beside it (originals gone
    /// or back, copies re-verified): its held set reloads.
    pub fn bump_gone_version(&self) -> Result<(), IndexError> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, '1')
                 ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            )?
            .execute([GONE_VERSION])?;
        Ok(())
    }

    /// The sources whose size and plaintext hash are these: (folder label, folder path,
    /// row). When one of them is gone, a new file with the same content is that photo, moved.
    pub fn sources_with_content(
        &self,
        size: u64,
        plaintext_hash: &[u8; 32],
    ) -> Result<Vec<(String, PathBuf, SourceRow)>, IndexError> {
        let mut stmt = self.conn.prepare_cached(SOURCES_WITH_CONTENT)?;
        let rows = stmt.query_map(params![size as i64, &plaintext_hash[..]], |r| {
            Ok((
                r.get::<_, String>(7)?,
                PathBuf::from(r.get::<_, String>(8)?),
                source_row(r)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The originals that are there and are their photos' current versions, in one folder or
    /// every one, in (folder, path) order.
    pub fn current_sources(&self, folder: Option<&str>) -> Result<Vec<CurrentSource>, IndexError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT s.path, s.size, s.mtime_s, s.mtime_ns, s.inode, s.record_id,
                    s.gone_since_ms IS NOT NULL, s.folder, f.path, p.blob_id, p.plaintext_hash,
                    p.created_at_ms
             FROM sources s JOIN photos p ON p.rid = s.photo JOIN folders f ON f.label = s.folder
             WHERE s.gone_since_ms IS NULL AND (?1 IS NULL OR s.folder = ?1) AND {}
             ORDER BY s.folder, s.path",
            super::records::CURRENT
        ))?;
        let rows = stmt.query_map([folder], |r| {
            Ok(CurrentSource {
                source: source_row(r)?,
                folder: r.get(7)?,
                root: PathBuf::from(r.get::<_, String>(8)?),
                blob: BlobId(blob_id_from(r.get(9)?)?),
                plaintext_hash: blob_id_from(r.get(10)?)?,
                recorded_at_ms: r.get::<_, i64>(11)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks the original at `folder`/`path`, there and still recorded as `record_id`, as
    /// released by `free-up-space` at `now_ms`, just before its file is removed: no longer
    /// held (a running node's held set reloads), and no loss. Returns `false` if the row
    /// changed meanwhile (a scan recorded an edit), and nothing was marked.
    pub fn release_source(
        &self,
        folder: &str,
        path: &str,
        record_id: &RecordId,
        now_ms: u64,
    ) -> Result<bool, IndexError> {
        let marked = self
            .conn
            .prepare_cached(
                "UPDATE source_files SET gone_since_ms = ?4, released_at_ms = ?4
                 WHERE photo = (SELECT rid FROM photos
                                WHERE record_id = ?3 AND folder = ?1 AND path = ?2)
                   AND gone_since_ms IS NULL",
            )?
            .execute(params![folder, path, &record_id.0[..], now_ms as i64])?;
        if marked > 0 {
            self.bump_gone_version()?;
        }
        Ok(marked > 0)
    }

    /// Takes back the release of an original whose file could not be removed after all: it
    /// is there, and held again.
    pub fn unrelease_source(&self, folder: &str, path: &str) -> Result<(), IndexError> {
        self.conn
            .prepare_cached(&format!(
                "UPDATE source_files SET gone_since_ms = NULL, released_at_ms = NULL
                 WHERE {AT_PATH} AND released_at_ms IS NOT NULL"
            ))?
            .execute(params![folder, path])?;
        self.bump_gone_version()
    }

    /// The paths of a folder's released originals (a scan does not count them missing).
    pub fn released_paths(&self, folder: &str) -> Result<HashSet<String>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path FROM sources WHERE folder = ?1 AND released_at_ms IS NOT NULL",
        )?;
        let rows = stmt.query_map([folder], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The blobs of every released original: this device gave their space back on purpose,
    /// so a running node does not fetch them again (`photomesh restore` does).
    pub fn released_blobs(&self) -> Result<HashSet<BlobId>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.blob_id FROM sources s JOIN photo_rows p ON p.rid = s.photo
             WHERE s.released_at_ms IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| Ok(BlobId(blob_id_from(r.get(0)?)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The released originals of photos still current (not edited since, not in the trash):
    /// their records and sizes.
    pub fn released_photos(&self) -> Result<Vec<(RecordId, u64)>, IndexError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT s.record_id, s.size FROM sources s JOIN photos p ON p.rid = s.photo
             WHERE s.released_at_ms IS NOT NULL AND {}",
            super::records::CURRENT
        ))?;
        let rows = stmt.query_map([], super::blobs::record_and_number)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Photo count and bytes of each folder's currently recorded files (its tally).
    pub fn folder_stats(&self) -> Result<Vec<FolderStats>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.label, f.path, COALESCE(t.photos, 0), COALESCE(t.bytes, 0)
             FROM folders f LEFT JOIN folder_tallies t ON t.folder = f.label
             ORDER BY f.label",
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

/// A gone source, selected as `folder, path, gone_since_ms, blob_id, damaged`.
fn gone_source(r: &rusqlite::Row<'_>) -> rusqlite::Result<GoneSource> {
    Ok(GoneSource {
        folder: r.get(0)?,
        path: r.get(1)?,
        since_ms: r.get::<_, i64>(2)?.max(0) as u64,
        blob: BlobId(blob_id_from(r.get(3)?)?),
        damaged: r.get(4)?,
    })
}

/// A `sources` row, selected as `path, size, mtime_s, mtime_ns, inode, record_id, gone`.
fn source_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SourceRow> {
    Ok(SourceRow {
        path: r.get(0)?,
        size: r.get::<_, i64>(1)? as u64,
        mtime_s: r.get(2)?,
        mtime_ns: r.get::<_, i64>(3)? as u32,
        inode: r.get::<_, i64>(4)? as u64,
        record_id: RecordId(blob_id_from(r.get(5)?)?),
        gone: r.get(6)?,
    })
}
