//! What `status` counts, kept as the index changes (schema version 12): each photo record's
//! class — the facts `status` counts it by — with the records and bytes of each class, and
//! tallies of the records, the stored blobs, the sources there in each folder and the blobs
//! each peer holds. Triggers keep them, so these queries read a few small rows whatever the
//! number of photos. Where a figure depends on the time (a copy whose check is overdue, a
//! photo recorded lately), only the records it concerns are read, through an index.

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::record::RecordId;
use photomesh_protocol::seal::BlobId;
use rusqlite::{OptionalExtension, params};

use super::blob_id_from;
use super::stored::{PHOTO_COLUMNS, StoredRecord};
use super::{Index, IndexError};

/// The statements `status` runs on every call, for the query-plan test.
#[cfg(test)]
pub(super) const STATUS_QUERIES: &[&str] = &[
    CLASSES,
    PHOTOS_OF_CLASS,
    OVERDUE_IN_CLASS,
    CHECKED_OF_CLASS,
    OVERDUE_OF_CLASS,
    RECORDED_AFTER,
    FIRST_RECORD_CLASS,
    HELD_VERIFIED_AT,
];

const CLASSES: &str = "SELECT class, facts, kind, added_by, holders, photos, bytes
     FROM photo_classes WHERE photos > 0 ORDER BY class";

/// The bits of `photo_classes.facts`, as the view `photo_attrs` sets them.
mod facts {
    /// In the trash (or purged).
    pub(super) const TRASHED: i64 = 1;
    /// Moved away from its path since it was made.
    pub(super) const MOVED_AWAY: i64 = 2;
    /// The newest version at its path not in the trash.
    pub(super) const NEWEST_LIVE: i64 = 4;
    /// A newer version is at its path (in the trash or not).
    pub(super) const HAS_NEWER: i64 = 8;
    /// The first record (by ID) of its blob.
    pub(super) const FIRST_OF_BLOB: i64 = 16;
    /// The first record of its blob its adder added.
    pub(super) const FIRST_OF_BLOB_BY_ADDER: i64 = 32;
    /// Its blob is stored here.
    pub(super) const STORED: i64 = 64;
    /// An original of its blob is there.
    pub(super) const ORIGINAL_OF_BLOB_THERE: i64 = 128;
    /// An original of its blob was released by `free-up-space`.
    pub(super) const BLOB_RELEASED: i64 = 256;
    /// Its own original here was released.
    pub(super) const RELEASED_HERE: i64 = 512;
    /// Its own original here is there.
    pub(super) const SOURCE_THERE: i64 = 1024;
    /// Its own original here is gone or damaged (not released).
    pub(super) const SOURCE_GONE: i64 = 2048;
    /// A member released its original.
    pub(super) const RELEASED_BY_MEMBER: i64 = 4096;
}

// `status` lists these from `photo_rows` alone: a few rows, whatever else the index holds.
const PHOTOS_OF_CLASS: &str =
    "SELECT folder, path, blob_id FROM photo_rows WHERE class = ?1 LIMIT ?2";

const OVERDUE_IN_CLASS: &str = "SELECT COUNT(*) FROM photo_rows WHERE class = ?1 AND held_at < ?2";

const CHECKED_OF_CLASS: &str = "SELECT folder, path, blob_id FROM photo_rows
     WHERE class = ?1 AND held_at >= ?2 LIMIT ?3";

const OVERDUE_OF_CLASS: &str = "SELECT folder, path, blob_id FROM photo_rows
     WHERE class = ?1 AND held_at < ?2 LIMIT ?3";

const RECORDED_AFTER: &str = "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM photo_rows
     WHERE class = ?1 AND created_at_ms > ?2";

const FIRST_RECORD_CLASS: &str = "SELECT class FROM photos
     WHERE substr(blob_id, 1, 8) = substr(?1, 1, 8) AND blob_id = ?1
       AND (?2 IS NULL OR added_by = ?2) ORDER BY record_id LIMIT 1";

const HELD_VERIFIED_AT: &str = "SELECT MAX(at) FROM (
         SELECT verified_at_ms AS at FROM blobs WHERE blob_id = ?1 AND stored = 1
         UNION ALL
         SELECT s.verified_at_ms FROM photo_rows p JOIN source_files s ON s.photo = p.rid
         WHERE substr(p.blob_id, 1, 8) = substr(?1, 1, 8) AND p.blob_id = ?1
           AND s.gone_since_ms IS NULL)";

/// Photo records that share every fact `status` counts them by, and how many they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoClass {
    /// The class's number (for [`Index::photos_of_class`]).
    pub class: i64,
    /// The photo as it is now: the newest version at its path, not in the trash, not moved
    /// away.
    pub current: bool,
    /// In the trash, or purged.
    pub trashed: bool,
    /// An earlier version kept: not in the trash, with a newer version at its path.
    pub earlier: bool,
    /// Its media type's name (`None`: indexed before kinds were kept).
    pub kind: Option<String>,
    /// Who added it (`None`: indexed before adders were kept).
    pub added_by: Option<DeviceId>,
    /// The first record (by ID) of its blob: its blob counted once.
    pub first_of_blob: bool,
    /// The first record of its blob its adder added.
    pub first_of_blob_by_adder: bool,
    /// This device holds its blob: stored, or an original that is there.
    pub held: bool,
    /// An original of its blob here was released by `free-up-space`.
    pub blob_released: bool,
    /// The other devices last seen holding its blob.
    pub holders: Vec<DeviceId>,
    /// Its original here was released by `free-up-space`.
    pub released_here: bool,
    /// A member says it released its original.
    pub released_by_member: bool,
    /// Its original here is there.
    pub source_there: bool,
    /// Its original here is gone or damaged (not released).
    pub source_gone: bool,
    /// Records of the class.
    pub photos: u64,
    /// Their size.
    pub bytes: u64,
}

/// A photo record of a class, as `status` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassPhoto {
    /// Its folder's label.
    pub folder: String,
    /// Its path in the folder.
    pub path: String,
    /// Its blob.
    pub blob: BlobId,
}

impl Index {
    /// Every class that has records.
    pub fn photo_classes(&self) -> Result<Vec<PhotoClass>, IndexError> {
        let mut stmt = self.conn.prepare_cached(CLASSES)?;
        let rows = stmt.query_map([], |r| {
            let facts: i64 = r.get(1)?;
            let kind: String = r.get(2)?;
            let added_by: Vec<u8> = r.get(3)?;
            let holders: String = r.get(4)?;
            let is = |fact: i64| facts & fact != 0;
            let trashed = is(facts::TRASHED);
            Ok(PhotoClass {
                class: r.get(0)?,
                current: !trashed && is(facts::NEWEST_LIVE) && !is(facts::MOVED_AWAY),
                trashed,
                earlier: !trashed && is(facts::HAS_NEWER),
                kind: (!kind.is_empty()).then_some(kind),
                added_by: <[u8; 20]>::try_from(added_by)
                    .ok()
                    .map(DeviceId::from_bytes),
                first_of_blob: is(facts::FIRST_OF_BLOB),
                first_of_blob_by_adder: is(facts::FIRST_OF_BLOB_BY_ADDER),
                held: is(facts::STORED) || is(facts::ORIGINAL_OF_BLOB_THERE),
                blob_released: is(facts::BLOB_RELEASED),
                holders: holders
                    .split(' ')
                    .filter_map(|h| hex::decode(h).ok())
                    .filter_map(|b| <[u8; 20]>::try_from(b).ok())
                    .map(DeviceId::from_bytes)
                    .collect(),
                released_here: is(facts::RELEASED_HERE),
                released_by_member: is(facts::RELEASED_BY_MEMBER),
                source_there: is(facts::SOURCE_THERE),
                source_gone: is(facts::SOURCE_GONE),
                photos: r.get::<_, i64>(5)?.max(0) as u64,
                bytes: r.get::<_, i64>(6)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many records of a class have a blob this device holds but has not checked since
    /// `since_ms` (its copy does not count): counted in `photos_by_check`, none while the
    /// scrub keeps up.
    pub fn overdue_in_class(&self, class: i64, since_ms: u64) -> Result<u64, IndexError> {
        let n: i64 = self
            .conn
            .prepare_cached(OVERDUE_IN_CLASS)?
            .query_row(params![class, clamp(since_ms)], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Up to `limit` records of a class.
    pub fn photos_of_class(&self, class: i64, limit: usize) -> Result<Vec<ClassPhoto>, IndexError> {
        let mut stmt = self.conn.prepare_cached(PHOTOS_OF_CLASS)?;
        let rows = stmt.query_map(params![class, clamp(limit as u64)], class_photo)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every record of a class (for a class from before kinds were kept: what each is).
    pub fn records_of_class(&self, class: i64) -> Result<Vec<StoredRecord>, IndexError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT r.record_id, r.sealed, {PHOTO_COLUMNS} FROM photo_rows p
             JOIN records r ON r.rowid = p.rid WHERE p.class = ?1"
        ))?;
        let rows = stmt.query_map([class], |r| {
            let id = RecordId(blob_id_from(r.get(0)?)?);
            StoredRecord::read(r, 1, id)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` records of a class whose blob this device holds and last checked
    /// since `since_ms`.
    pub fn checked_photos_of_class(
        &self,
        class: i64,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<ClassPhoto>, IndexError> {
        self.class_photos(CHECKED_OF_CLASS, class, since_ms, limit)
    }

    /// Up to `limit` records of a class whose blob this device holds but has not checked
    /// since `since_ms`.
    pub fn overdue_photos_of_class(
        &self,
        class: i64,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<ClassPhoto>, IndexError> {
        self.class_photos(OVERDUE_OF_CLASS, class, since_ms, limit)
    }

    fn class_photos(
        &self,
        sql: &str,
        class: i64,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<ClassPhoto>, IndexError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(
            params![class, clamp(since_ms), clamp(limit as u64)],
            class_photo,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many records of a class were made after `after_ms`, and their size (through
    /// `photos_by_class`: only those).
    pub fn recorded_after(&self, class: i64, after_ms: u64) -> Result<(u64, u64), IndexError> {
        let (n, bytes): (i64, i64) = self
            .conn
            .prepare_cached(RECORDED_AFTER)?
            .query_row(params![class, clamp(after_ms)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        Ok((n.max(0) as u64, bytes.max(0) as u64))
    }

    /// The class of the first record (by ID) of a blob, or of those `adder` added: the one
    /// record that counts the blob once.
    pub fn first_record_class(
        &self,
        blob_id: &BlobId,
        adder: Option<&DeviceId>,
    ) -> Result<Option<i64>, IndexError> {
        Ok(self
            .conn
            .prepare_cached(FIRST_RECORD_CLASS)?
            .query_row(
                params![&blob_id.0[..], adder.map(|d| d.as_bytes().to_vec())],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// When this device last checked its copy of a blob (0: not known), `None` if it holds
    /// none: the later of its stored copy's and its originals' checks.
    pub fn held_verified_at(&self, blob_id: &BlobId) -> Result<Option<u64>, IndexError> {
        let at: Option<i64> = self
            .conn
            .prepare_cached(HELD_VERIFIED_AT)?
            .query_row([&blob_id.0[..]], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(at.map(|at| at.max(0) as u64))
    }
}

fn class_photo(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClassPhoto> {
    Ok(ClassPhoto {
        folder: r.get(0)?,
        path: r.get(1)?,
        blob: BlobId(blob_id_from(r.get(2)?)?),
    })
}

fn clamp(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

#[cfg(test)]
mod tests {
    use photomesh_protocol::identity::DeviceId;
    use photomesh_protocol::keys::KeyRing;
    use photomesh_protocol::record::{FileTime, MediaType, MoveRecord, PhotoRecord, RecordId};
    use photomesh_protocol::seal::BlobId;

    use super::*;
    use crate::index::{Folder, SourceRow, TrashRow};

    const ATTRS: [&str; 4] = ["facts", "kind", "added_by", "holders"];

    /// The rows of `sql`, each as its columns' SQL literals.
    fn rows(ix: &Index, sql: &str) -> Vec<String> {
        let n = ix.conn.prepare(sql).unwrap().column_count();
        let cols: Vec<String> = (0..n).map(|i| format!("quote(c{i})")).collect();
        let sql = format!("SELECT {} FROM ({sql})", cols.join(" || ',' || "));
        let mut stmt = ix.conn.prepare(&sql).unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Every kept count equals what recomputing it from the tables gives.
    fn assert_kept(ix: &Index, step: &str) {
        let attrs = ATTRS
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{a} AS c{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let n = ATTRS.len();
        let group: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let group = group.join(", ");
        let fresh = rows(
            ix,
            &format!(
                "SELECT {group}, COUNT(*) AS c{n}, SUM(size) AS c{} FROM
                   (SELECT {attrs}, size FROM photo_attrs) GROUP BY {group} ORDER BY {group}",
                n + 1
            ),
        );
        let kept = rows(
            ix,
            &format!(
                "SELECT {attrs}, photos AS c{n}, bytes AS c{} FROM photo_classes
                 WHERE photos != 0 ORDER BY {group}",
                n + 1
            ),
        );
        assert_eq!(kept, fresh, "classes after {step}");
        let differ = ATTRS
            .iter()
            .map(|a| format!("c.{a} IS NOT a.{a}"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let misfiled: i64 = ix
            .conn
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM photo_attrs a JOIN photos p USING (record_id)
                     LEFT JOIN photo_classes c ON c.class = p.class
                     WHERE c.class IS NULL OR {differ}"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(misfiled, 0, "records in the wrong class after {step}");
        let stale: i64 = ix
            .conn
            .query_row(
                "SELECT COUNT(*) FROM photo_rows p JOIN photo_checks c USING (rid)
                 WHERE p.held_at IS NOT c.held_at",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stale, 0, "check times after {step}");
        let tallies = |sql: &str| rows(ix, sql);
        assert_eq!(
            tallies("SELECT name AS c0, n AS c1, bytes AS c2 FROM tallies ORDER BY name"),
            tallies(
                "SELECT 'records' AS c0, COUNT(*) AS c1, 0 AS c2 FROM records
                 UNION ALL
                 SELECT 'stored', COUNT(*), COALESCE(SUM(sealed_len), 0) FROM blobs
                 WHERE stored = 1"
            ),
            "tallies after {step}"
        );
        assert_eq!(
            tallies(
                "SELECT folder AS c0, photos AS c1, bytes AS c2 FROM folder_tallies
                 WHERE photos != 0 OR bytes != 0 ORDER BY folder"
            ),
            tallies(
                "SELECT folder AS c0, COUNT(*) AS c1, SUM(size) AS c2 FROM sources
                 WHERE gone_since_ms IS NULL GROUP BY folder ORDER BY folder"
            ),
            "folder tallies after {step}"
        );
        assert_eq!(
            tallies(
                "SELECT device_id AS c0, blobs AS c1 FROM peer_tallies WHERE blobs != 0
                 ORDER BY device_id"
            ),
            tallies(
                "SELECT device_id AS c0, COUNT(*) AS c1 FROM peer_blobs GROUP BY device_id
                 ORDER BY device_id"
            ),
            "peer tallies after {step}"
        );
    }

    fn device(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 20])
    }

    fn blob(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    /// Adds a photo record of `folder/path` with `blob`, by `by`, made at `at`.
    fn photo(ix: &Index, path: &str, blob_n: u8, by: u8, at: u64) -> RecordId {
        let photo = PhotoRecord {
            folder: "camera".into(),
            path: path.into(),
            size: 1000 + u64::from(blob_n),
            mtime: FileTime {
                seconds: at as i64,
                nanos: 0,
            },
            capture_time: None,
            media_type: if blob_n.is_multiple_of(2) {
                MediaType::Jpeg
            } else {
                MediaType::Raf
            },
            plaintext_hash: [blob_n; 32],
            blob_id: blob(blob_n),
            blob_epoch: 1,
            added_by: device(by),
            created_at_ms: at,
        };
        let id =
            RecordId(*blake3::hash(format!("{path} {blob_n} {by} {at}").as_bytes()).as_bytes());
        ix.add_photo_record(&id, b"pmsr sealed", &photo, &KeyRing::default(), at)
            .unwrap();
        id
    }

    fn source(ix: &Index, path: &str, record_id: RecordId, size: u64) {
        let row = SourceRow {
            path: path.into(),
            size,
            mtime_s: 1,
            mtime_ns: 0,
            inode: 1,
            record_id,
            gone: false,
        };
        ix.put_source("camera", &row).unwrap();
    }

    #[test]
    fn every_count_status_reads_is_kept_as_the_index_changes() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        let folder = Folder {
            label: "camera".into(),
            path: "/photos/camera".into(),
        };
        ix.add_folder(&folder, 1).unwrap();
        assert_kept(&ix, "creation");

        let a1 = photo(&ix, "a.jpg", 1, 1, 10);
        let b = photo(&ix, "b.jpg", 2, 1, 11);
        // The same content recorded by another device at another path.
        let c = photo(&ix, "c.jpg", 1, 2, 12);
        source(&ix, "a.jpg", a1, 1001);
        source(&ix, "b.jpg", b, 1002);
        assert_kept(&ix, "photos and sources");

        // An edit: a new version, its source row now naming it.
        let a2 = photo(&ix, "a.jpg", 3, 1, 20);
        source(&ix, "a.jpg", a2, 1003);
        assert_kept(&ix, "a new version");

        ix.add_blob(&blob(1), 1100, &[]).unwrap();
        ix.add_stored_blobs([(&blob(3), 1300, &[][..]), (&blob(4), 1400, &[][..])])
            .unwrap();
        ix.set_blob_stored(&blob(1), true).unwrap();
        ix.evict_stored_blob(&blob(3)).unwrap();
        assert_kept(&ix, "blobs stored and evicted");

        ix.set_peer_blobs(&device(7), [blob(1), blob(2)].into_iter(), 5)
            .unwrap();
        ix.set_peer_blobs(&device(8), [blob(1)].into_iter(), 5)
            .unwrap();
        assert_kept(&ix, "peers' holdings");
        ix.set_peer_blobs(&device(7), [blob(2), blob(3), blob(9)].into_iter(), 6)
            .unwrap();
        assert_kept(&ix, "a peer's holdings changed");

        let trashed = |record_id, purged| TrashRow {
            record_id,
            purged,
            since_ms: 30,
            blob: None,
        };
        ix.set_trash(&[trashed(a2, false)]).unwrap();
        assert_kept(&ix, "an edit in the trash");
        ix.set_trash(&[trashed(b, true), trashed(c, false)])
            .unwrap();
        assert_kept(&ix, "the trash changed");

        let moved = MoveRecord {
            folder: "camera".into(),
            path: "b.jpg".into(),
            from: b,
            to: c,
            added_by: device(1),
            created_at_ms: 40,
        };
        ix.add_move_record(&RecordId([9; 32]), b"pmsr move", &moved, 40)
            .unwrap();
        assert_kept(&ix, "a move");

        ix.mark_sources_gone("camera", &["a.jpg"], 50).unwrap();
        assert_kept(&ix, "an original gone");
        ix.mark_source_back("camera", "a.jpg").unwrap();
        ix.mark_source_damaged("camera", "b.jpg", 51).unwrap();
        assert_kept(&ix, "one back, one damaged");
        assert!(ix.release_source("camera", "a.jpg", &a2, 52).unwrap());
        assert_kept(&ix, "an original released");
        ix.set_released_by(&[(a2, device(7)), (c, device(8))])
            .unwrap();
        assert_kept(&ix, "releases by members");
        ix.set_released_by(&[(c, device(8))]).unwrap();
        ix.unrelease_source("camera", "a.jpg").unwrap();
        assert_kept(&ix, "a release taken back");
        ix.set_source_verified("camera", "a.jpg", 60).unwrap();
        ix.set_blob_verified(&blob(1), 70).unwrap();
        ix.set_blob_verified(&blob(2), 80).unwrap();
        assert_kept(&ix, "copies checked again");
        ix.set_trash(&[]).unwrap();
        assert_kept(&ix, "the trash emptied");

        // The kind and adder of a record indexed before they were kept.
        ix.conn
            .execute(
                "UPDATE photo_rows SET media_type = NULL, added_by = NULL
                 WHERE rid = (SELECT rowid FROM records WHERE record_id = ?1)",
                [&c.0[..]],
            )
            .unwrap();
        assert_kept(&ix, "a record without kind or adder");
        let mut filled = PhotoRecord {
            folder: "camera".into(),
            path: "c.jpg".into(),
            size: 1001,
            mtime: FileTime {
                seconds: 12,
                nanos: 0,
            },
            capture_time: None,
            media_type: MediaType::Png,
            plaintext_hash: [1; 32],
            blob_id: blob(1),
            blob_epoch: 1,
            added_by: device(2),
            created_at_ms: 12,
        };
        ix.set_added_by(&c, &filled).unwrap();
        filled.media_type = MediaType::Jpeg;
        ix.set_added_by(&c, &filled).unwrap();
        assert_kept(&ix, "kind and adder filled in");

        ix.remove_source("camera", "b.jpg").unwrap();
        assert!(ix.remove_folder("camera").unwrap());
        assert_kept(&ix, "the folder removed");
    }

    #[test]
    fn keeping_the_counts_searches_indexes_only() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::create(&dir.path().join("index.sqlite")).unwrap();
        // What the triggers refresh: the records at a path or of a blob, found through
        // `photos_by_path` and `photos_by_blob`, each from one search of each table.
        let refreshed = [
            "SELECT * FROM photo_attrs WHERE folder = ?1 AND path = ?2
                OR substr(blob_id, 1, 8) = substr(?3, 1, 8) AND blob_id = ?3",
            "SELECT * FROM photo_attrs WHERE folder = ?1 AND path = ?2",
            "SELECT * FROM photo_attrs WHERE substr(blob_id, 1, 8) = substr(?1, 1, 8)
                AND blob_id = ?1",
            "SELECT * FROM photo_attrs
             WHERE substr(blob_id, 1, 8) = (SELECT substr(blob_id, 1, 8) FROM photo_rows
                                            WHERE rid = ?1)
               AND blob_id = (SELECT blob_id FROM photo_rows WHERE rid = ?1)",
            "SELECT * FROM photo_attrs
             WHERE (folder, path) = (SELECT folder, path FROM photos WHERE record_id = ?1)",
            "SELECT * FROM photo_attrs
             WHERE substr(blob_id, 1, 8) IN (SELECT substr(blob_id, 1, 8) FROM photo_rows
                                             WHERE rid IN (?1, ?2))
               AND blob_id IN (SELECT blob_id FROM photo_rows WHERE rid IN (?1, ?2))",
            "SELECT * FROM photo_attrs WHERE record_id = ?1",
            "SELECT * FROM photo_attrs_changed WHERE substr(blob_id, 1, 8) = substr(?1, 1, 8)
                AND blob_id = ?1",
        ];
        for sql in refreshed {
            let n = ix.conn.prepare(sql).unwrap().parameter_count();
            let params = vec![vec![0u8; 32]; n];
            let steps =
                crate::index::tests::plan(&ix, sql, rusqlite::params_from_iter(params.iter()));
            assert!(
                steps.iter().all(|s| !s.starts_with("SCAN")),
                "{sql}: {steps:?}"
            );
        }
        // An upload's "already backed up?" is one search of `photos_by_hash`.
        let steps =
            crate::index::tests::plan(&ix, super::super::records::PHOTO_WITH_HASH, [vec![0u8; 32]]);
        assert!(
            steps.iter().any(|s| s.contains("photos_by_hash"))
                && !steps.iter().any(|s| s.starts_with("SCAN")),
            "{steps:?}"
        );
        // The first originals found gone, read in the order they went, and no others.
        let steps = crate::index::tests::plan(&ix, super::super::folders::FIRST_GONE_SOURCES, [5]);
        assert!(
            steps.iter().any(|s| s.contains("USING INDEX sources_lost"))
                && !steps.iter().any(|s| s.contains("TEMP B-TREE")),
            "{steps:?}"
        );
        for sql in STATUS_QUERIES {
            let n = ix.conn.prepare(sql).unwrap().parameter_count();
            let params: Vec<i64> = vec![1; n];
            let steps =
                crate::index::tests::plan(&ix, sql, rusqlite::params_from_iter(params.iter()));
            // Only the classes are read whole.
            let scans: Vec<_> = steps
                .iter()
                .filter(|s| s.starts_with("SCAN") && *s != "SCAN photo_classes")
                .collect();
            assert!(scans.is_empty(), "{sql}: {steps:?}");
            // Overdue checks are counted in an index, not looked up photo by photo.
            if sql.contains("held_at") {
                assert!(
                    steps.iter().any(|s| s.contains("photos_by_check")),
                    "{sql}: {steps:?}"
                );
            }
        }
    }
}
