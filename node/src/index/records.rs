//! The replicated record set, and the query tables a `full` device fills from the photo
//! records it can open.

use photomesh_protocol::keys::KeyRing;
use photomesh_protocol::record::{MoveRecord, PhotoRecord, RecordId};
use photomesh_protocol::seal::BlobId;
use rusqlite::{OptionalExtension, params};

use super::blob_id_from;
use super::stored::{FIELDS_OF_COMPACT, PHOTO_COLUMNS, StoredRecord, fields_suffice};
use super::{Index, IndexError};

/// A photo version the index knows.
#[derive(Debug, Clone)]
pub struct PhotoRow {
    /// The record's ID.
    pub record_id: RecordId,
    /// The record.
    pub record: StoredRecord,
}

impl PhotoRow {
    /// A row of `r.record_id, r.sealed`, then [`PHOTO_COLUMNS`].
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let record_id = RecordId(blob_id_from(row.get(0)?)?);
        Ok(Self {
            record_id,
            record: StoredRecord::read(row, 1, record_id)?,
        })
    }
}

/// Every membership record (they start with `pmmr`), through the partial index
/// `records_membership`, whose `WHERE` this repeats word for word so that SQLite uses it.
pub(super) const MEMBERSHIP_RECORDS: &str =
    "SELECT sealed FROM records WHERE substr(sealed, 1, 4) = X'706d6d72' ORDER BY record_id";

/// The current photo at a path (see [`Index::current_photo_at`]): found through
/// `photos_by_path`, once per file a scan has no source row for.
pub(super) const CURRENT_PHOTO_AT: &str =
    "SELECT p.record_id, p.plaintext_hash, p.blob_id FROM photos p
     WHERE p.folder = ?1 AND p.path = ?2
       AND NOT EXISTS (SELECT 1 FROM moves m WHERE m.folder = p.folder AND m.path = p.path
                                              AND m.at_ms >= p.created_at_ms)
     ORDER BY p.created_at_ms DESC LIMIT 1";

/// Whether a photo record has plaintext hash `?1`: through `photos_by_hash`, which holds the
/// first 8 bytes of each hash (those are compared first, as the index is on them).
pub(super) const PHOTO_WITH_HASH: &str = "SELECT 1 FROM photo_rows
     WHERE substr(plaintext_hash, 1, 8) = substr(?1, 1, 8) AND plaintext_hash = ?1";

/// The condition on `photos p` that makes it a photo of the library now: the newest record of
/// its path not in the trash, and not moved away since.
pub(super) const CURRENT: &str = "p.created_at_ms = (SELECT MAX(q.created_at_ms) FROM photos q
                                      WHERE q.folder = p.folder AND q.path = p.path
                                        AND NOT EXISTS (SELECT 1 FROM trash t
                                                        WHERE t.record_id = q.record_id))
       AND NOT EXISTS (SELECT 1 FROM trash t WHERE t.record_id = p.record_id)
       AND NOT EXISTS (SELECT 1 FROM moves m WHERE m.folder = p.folder AND m.path = p.path
                                              AND m.at_ms >= p.created_at_ms)";

/// The photos device `?1` added: those of the classes it added (`photo_classes`, a few
/// rows), through `photos_by_class`. No index on the adder is kept: that is 19 bytes a record.
pub(super) const ADDED_BY: &str = "class IN (SELECT class FROM photo_classes WHERE added_by = ?1)";

/// Every lifecycle record (they start with `pmlc`), through the partial index
/// `records_lifecycle`, whose `WHERE` this repeats word for word so that SQLite uses it.
pub(super) const LIFECYCLE_RECORDS: &str =
    "SELECT sealed FROM records WHERE substr(sealed, 1, 4) = X'706d6c63' ORDER BY record_id";

impl Index {
    /// Adds a record's bytes to the record set (a no-op if it is already there). Returns
    /// whether it is new.
    pub fn add_record(
        &self,
        record_id: &RecordId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<bool, IndexError> {
        let added = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO records (record_id, sealed, received_at_ms)
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&record_id.0[..], bytes, now_ms as i64])?;
        Ok(added == 1)
    }

    /// Sealed photo and move records after row `after` that are kept sealed, not opened
    /// into the query tables (a vault's, or of an epoch this device did not hold when they
    /// came), at most `limit`, in order: `(rowid, record ID, bytes)`.
    pub fn unopened_records(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, RecordId, Vec<u8>)>, IndexError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.rowid, r.record_id, r.sealed FROM records r
             WHERE r.rowid > ?1 AND substr(r.sealed, 1, 4) = CAST('pmsr' AS BLOB)
               AND NOT EXISTS (SELECT 1 FROM photo_rows p WHERE p.rid = r.rowid)
               AND NOT EXISTS (SELECT 1 FROM moves m WHERE m.record_id = r.record_id)
             ORDER BY r.rowid LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit], |r| {
            Ok((
                r.get(0)?,
                RecordId(super::blob_id_from(r.get(1)?)?),
                r.get(2)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records added after row `after` (the table's rowid), in order.
    pub fn records_after(&self, after: i64) -> Result<Vec<(i64, StoredRecord)>, IndexError> {
        self.records_page(after, i64::MAX)
    }

    /// [`Index::records_after`], at most `limit` of them: a million records are read a page
    /// at a time, not held at once.
    pub fn records_page(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, StoredRecord)>, IndexError> {
        // Only a record kept as its photo's fields looks its photo up.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT r.rowid, r.record_id, r.sealed, {PHOTO_COLUMNS} FROM records r
             {FIELDS_OF_COMPACT} WHERE r.rowid > ?1 ORDER BY r.rowid LIMIT ?2"
        ))?;
        let rows = stmt.query_map([after, limit], |r| {
            let id = RecordId(blob_id_from(r.get(1)?)?);
            Ok((r.get(0)?, StoredRecord::read(r, 2, id)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many records the set holds (photo and membership, readable or not): a tally,
    /// kept as records are added.
    pub fn record_count(&self) -> Result<u64, IndexError> {
        Ok(self
            .conn
            .prepare_cached("SELECT n FROM tallies WHERE name = 'records'")?
            .query_row([], |r| r.get::<_, i64>(0))
            .optional()?
            .unwrap_or(0)
            .max(0) as u64)
    }

    /// The bytes of every membership record.
    pub fn membership_records(&self) -> Result<Vec<Vec<u8>>, IndexError> {
        let mut stmt = self.conn.prepare_cached(MEMBERSHIP_RECORDS)?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
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

    /// Adds a sealed photo record and its query fields (a no-op if it is already there).
    /// When its fields, sealed again with the key `keys` holds for its epoch, give `sealed`
    /// exactly, they are all that is kept (`index/stored.rs`).
    pub fn add_photo_record(
        &self,
        record_id: &RecordId,
        sealed: &[u8],
        photo: &PhotoRecord,
        keys: &KeyRing,
        now_ms: u64,
    ) -> Result<(), IndexError> {
        let once = fields_suffice(sealed, photo, keys);
        self.within_savepoint(|| {
            let kept: &[u8] = if once.is_some() { &[] } else { sealed };
            let new = self.add_record(record_id, kept, now_ms)?;
            let capture = photo.capture_time;
            let added = self
                .conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO photo_rows
                   (rid, folder, path, size, plaintext_hash, blob_id, created_at_ms,
                    added_by, media_type, mtime_s, mtime_ns, capture_s, capture_offset,
                    blob_epoch, seal_epoch)
                 SELECT rowid, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15
                 FROM records WHERE record_id = ?1",
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
                    photo.media_type.name(),
                    photo.mtime.seconds,
                    photo.mtime.nanos,
                    capture.map(|c| c.local_seconds),
                    capture.and_then(|c| c.utc_offset_minutes),
                    photo.blob_epoch,
                    once,
                ])?;
            let set_sealed = |bytes: &[u8]| -> Result<(), IndexError> {
                self.conn
                    .prepare_cached("UPDATE records SET sealed = ?2 WHERE record_id = ?1")?
                    .execute(params![&record_id.0[..], bytes])?;
                Ok(())
            };
            match (once, new, added) {
                // Kept sealed before (it came before its key, say); its fields, checked
                // just now, now seal it again.
                (Some(_), false, 1) => set_sealed(&[])?,
                // A photo row was there without a record row: never, with foreign keys on;
                // the bytes stay, whatever that row holds.
                (Some(_), true, 0) => set_sealed(sealed)?,
                _ => {}
            }
            Ok(())
        })
    }

    /// Adds a sealed move record and its query fields (a no-op if it is already there): the
    /// photo at its old place is no longer current.
    pub fn add_move_record(
        &self,
        record_id: &RecordId,
        sealed: &[u8],
        moved: &MoveRecord,
        now_ms: u64,
    ) -> Result<(), IndexError> {
        self.add_record(record_id, sealed, now_ms)?;
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO moves (record_id, folder, path, at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                &record_id.0[..],
                moved.folder,
                moved.path,
                moved.created_at_ms as i64,
            ])?;
        Ok(())
    }

    /// A record, if the index holds it.
    pub fn record(&self, record_id: &RecordId) -> Result<Option<StoredRecord>, IndexError> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT r.sealed, {PHOTO_COLUMNS} FROM records r
                 LEFT JOIN photo_rows p ON p.rid = r.rowid WHERE r.record_id = ?1"
            ))?
            .query_row([&record_id.0[..]], |r| StoredRecord::read(r, 0, *record_id))
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

    /// The newest record of every photo path that has not moved away since, optionally in
    /// one folder only: the photos of the library.
    pub fn latest_photos(&self, folder: Option<&str>) -> Result<Vec<PhotoRow>, IndexError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.record_id, r.sealed, {PHOTO_COLUMNS} FROM photos p
             JOIN records r USING (record_id)
             WHERE (?1 IS NULL OR p.folder = ?1) AND {CURRENT}
             ORDER BY p.folder, p.path"
        ))?;
        let rows = stmt.query_map([folder], PhotoRow::read)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Which of `hashes` (plaintext BLAKE3 hashes) some photo record has: what a browser
    /// need not upload. One search of `photos_by_hash` each ([`PHOTO_WITH_HASH`]).
    pub fn known_plaintext_hashes(
        &self,
        hashes: &[[u8; 32]],
    ) -> Result<std::collections::HashSet<[u8; 32]>, IndexError> {
        let mut stmt = self.conn.prepare_cached(PHOTO_WITH_HASH)?;
        let mut known = std::collections::HashSet::new();
        for hash in hashes {
            if stmt.exists([&hash[..]])? {
                known.insert(*hash);
            }
        }
        Ok(known)
    }

    /// The current record of the photos added last, newest first: at most `limit`.
    pub fn newest_photos(&self, limit: usize) -> Result<Vec<PhotoRow>, IndexError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.record_id, r.sealed, {PHOTO_COLUMNS} FROM photos p
             JOIN records r USING (record_id)
             WHERE {CURRENT}
             ORDER BY p.created_at_ms DESC, p.folder, p.path LIMIT ?1"
        ))?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], PhotoRow::read)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Photo records this device added after `after_ms` (what the watcher recorded since a
    /// scan).
    pub fn photos_added_after(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
        after_ms: u64,
    ) -> Result<u64, IndexError> {
        Ok(self.conn.query_row(
            &format!("SELECT COUNT(*) FROM photo_rows WHERE {ADDED_BY} AND created_at_ms > ?2"),
            params![&device.as_bytes()[..], after_ms as i64],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// How many photo records (every version) the index holds: the sum of their classes.
    pub fn photo_record_count(&self) -> Result<u64, IndexError> {
        Ok(self
            .conn
            .prepare_cached("SELECT COALESCE(SUM(photos), 0) FROM photo_classes")?
            .query_row([], |r| r.get::<_, i64>(0))?
            .max(0) as u64)
    }

    /// The last row of `records`.
    pub fn last_record_row(&self) -> Result<i64, IndexError> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(rowid), 0) FROM records", [], |r| {
                r.get(0)
            })?)
    }

    /// The photo at `folder`/`path` now (its newest record, not moved away since): its
    /// record, plaintext hash and blob. A scan asks for a file it has no source row for: when its content
    /// is that, the file is that photo, already recorded (after `repair-index`, or a folder
    /// removed and added again).
    pub fn current_photo_at(
        &self,
        folder: &str,
        path: &str,
    ) -> Result<Option<(RecordId, [u8; 32], BlobId)>, IndexError> {
        Ok(self
            .conn
            .prepare_cached(CURRENT_PHOTO_AT)?
            .query_row([folder, path], |r| {
                Ok((
                    RecordId(blob_id_from(r.get(0)?)?),
                    blob_id_from(r.get(1)?)?,
                    BlobId(blob_id_from(r.get(2)?)?),
                ))
            })
            .optional()?)
    }

    /// The folder labels of the photos `device` added, in order.
    pub fn folders_added_by(
        &self,
        device: &photomesh_protocol::identity::DeviceId,
    ) -> Result<Vec<String>, IndexError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT DISTINCT folder FROM photo_rows WHERE {ADDED_BY} ORDER BY folder"
        ))?;
        let rows = stmt.query_map([&device.as_bytes()[..]], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Photo records indexed before the index kept who added them or their kind: (record
    /// ID, sealed).
    pub fn photos_without_adder(&self) -> Result<Vec<PhotoRow>, IndexError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT r.record_id, r.sealed, {PHOTO_COLUMNS} FROM photo_rows p
             JOIN records r ON r.rowid = p.rid
             WHERE p.added_by IS NULL OR p.media_type IS NULL"
        ))?;
        let rows = stmt.query_map([], PhotoRow::read)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Fills in who added a photo record, and its kind, indexed before they were kept.
    pub fn set_added_by(
        &self,
        record_id: &RecordId,
        photo: &PhotoRecord,
    ) -> Result<(), IndexError> {
        self.conn.execute(
            "UPDATE photo_rows SET added_by = ?2, media_type = ?3
             WHERE rid = (SELECT rowid FROM records WHERE record_id = ?1)",
            params![
                &record_id.0[..],
                &photo.added_by.as_bytes()[..],
                photo.media_type.name()
            ],
        )?;
        Ok(())
    }
}
