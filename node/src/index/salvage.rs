//! Reading what can still be read from a damaged index, for `repair-index`.
//!
//! The old file is opened read-only (it is evidence, never written to) and each table is
//! read in rowid order, a chunk of rows at a time. A damaged page fails the read that reaches
//! it; the reader then looks for the first row past the damage it can reach again (doubling
//! steps, then a binary search back) and carries on, counting the rows it stepped over. Rowids
//! are given out in order and these tables never delete, so that count is the number of rows
//! lost. Nothing here decides what a row is worth: the caller checks each (a record against
//! its ID) and writes the good ones through the ordinary paths.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, Row};

use photomesh_protocol::record::RecordId;

use super::stored::{FIELDS_OF_COMPACT, PHOTO_COLUMNS, StoredRecord};
use super::{Folder, IndexError, at_open};

/// Rows read per query.
const CHUNK: i64 = 512;

/// A damaged index, open read-only.
pub struct Salvage {
    conn: Connection,
    path: PathBuf,
}

/// What reading one table gave.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Salvaged<T> {
    /// The rows read.
    pub rows: Vec<T>,
    /// Rows stepped over because they could not be read.
    pub unreadable: u64,
    /// Whether the table could not be read at all, or not to its end (how many rows were lost
    /// past that point is not known).
    pub cut_short: bool,
}

impl<T> Salvaged<T> {
    /// Whether every row was read.
    pub fn is_whole(&self) -> bool {
        self.unreadable == 0 && !self.cut_short
    }
}

/// A row of `devices_seen`: a member, when it was last seen, where, and whether it has AES.
pub type SeenRow = (Vec<u8>, i64, Option<String>, Option<bool>);

impl Salvage {
    /// Opens the index at `path` read-only. Fails when SQLite cannot open it at all (it is
    /// not a database, or its first page is gone).
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| at_open(path, e))?;
        // Reading the schema is the first thing any query does: a file that is not a
        // database, or whose first page is damaged, fails here.
        conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| at_open(path, e))?;
        Ok(Self {
            conn,
            path: path.to_owned(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SQLite's full integrity check of the file (every page, and every index against its
    /// table): `None` when it is sound, else what is wrong.
    pub fn integrity_check(&self) -> Result<Option<String>, IndexError> {
        super::check(&self.conn, "integrity_check")
    }

    /// The `meta` table: (key, value).
    pub fn meta(&self) -> Salvaged<(String, String)> {
        self.table("meta", "key, value", |r| Ok((r.get(1)?, r.get(2)?)))
    }

    /// The configured folders, each with when it was added (ms since the epoch).
    pub fn folders(&self) -> Salvaged<(Folder, i64)> {
        self.table("folders", "label, path, added_at_ms", |r| {
            Ok((
                Folder {
                    label: r.get(1)?,
                    path: PathBuf::from(r.get::<_, String>(2)?),
                },
                r.get(3)?,
            ))
        })
    }

    /// The configured peer addresses, each with when it was added.
    pub fn peers(&self) -> Salvaged<(String, i64)> {
        self.table("peers", "address, added_at_ms", |r| {
            Ok((r.get(1)?, r.get(2)?))
        })
    }

    /// Where each member was last seen.
    pub fn devices_seen(&self) -> Salvaged<SeenRow> {
        self.table(
            "devices_seen",
            "device_id, last_seen_ms, address, has_aes",
            |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
    }

    /// Addresses of members that other members told this device about: (device ID,
    /// address, when).
    pub fn learned_addresses(&self) -> Salvaged<(Vec<u8>, String, i64)> {
        self.table(
            "learned_addresses",
            "device_id, address, learned_at_ms",
            |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?)),
        )
    }

    /// The highest rowid of `records`, if it can be read: about how many records there were.
    pub fn last_record_row(&self) -> Option<i64> {
        self.conn
            .query_row("SELECT MAX(rowid) FROM records", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .ok()
            .flatten()
    }

    /// The `records` table, a chunk at a time: `each` gets the (record ID, record) of each
    /// chunk read, and may stop the walk with an error. The rows are not kept. A record kept
    /// as its photo's fields is read with them: one whose photo row cannot be read is lost.
    pub fn records<E>(
        &self,
        mut each: impl FnMut(Vec<([u8; 32], StoredRecord)>) -> Result<(), E>,
    ) -> Result<Salvaged<()>, E> {
        // An index from before photo records were kept as their fields (schema 13) has no
        // such columns, and none of its records needs them.
        let fields = self
            .conn
            .prepare(&format!("SELECT {PHOTO_COLUMNS} FROM photos p LIMIT 0"))
            .is_ok();
        // From schema 14 those are kept by the record's row, in `photo_rows`.
        let keyed_by_row = self
            .conn
            .prepare("SELECT rid FROM photo_rows LIMIT 0")
            .is_ok();
        let (table, rowid, columns) = if keyed_by_row {
            (
                format!("records r {FIELDS_OF_COMPACT}"),
                "r.rowid",
                format!("r.record_id, r.sealed, {PHOTO_COLUMNS}"),
            )
        } else if fields {
            (
                "records r LEFT JOIN photos p ON length(r.sealed) = 0 AND p.record_id = r.record_id"
                    .to_owned(),
                "r.rowid",
                format!("r.record_id, r.sealed, {PHOTO_COLUMNS}"),
            )
        } else {
            (
                "records".to_owned(),
                "rowid",
                "record_id, sealed".to_owned(),
            )
        };
        self.walk(
            &table,
            rowid,
            &columns,
            |r| {
                let id: Vec<u8> = r.get(1)?;
                let id = <[u8; 32]>::try_from(id).map_err(|_| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Blob,
                        "a record ID is not 32 bytes".into(),
                    )
                })?;
                Ok((id, StoredRecord::read(r, 2, RecordId(id))?))
            },
            &mut each,
        )
    }

    /// Every readable row of `table`, `read` taking columns 1… (`columns`; column 0 is the
    /// rowid).
    fn table<T>(
        &self,
        table: &str,
        columns: &str,
        read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Salvaged<T> {
        let mut rows = Vec::new();
        let walked = self.walk(table, "rowid", columns, read, &mut |chunk: Vec<T>| {
            rows.extend(chunk);
            Ok::<_, std::convert::Infallible>(())
        });
        let Ok(outcome) = walked;
        Salvaged {
            rows,
            unreadable: outcome.unreadable,
            cut_short: outcome.cut_short,
        }
    }

    /// Reads `table` (a table, or a join named by its first table's `rowid`) in rowid order,
    /// stepping over what cannot be read; hands each chunk of rows read to `each`.
    fn walk<T, E>(
        &self,
        table: &str,
        rowid: &str,
        columns: &str,
        read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
        each: &mut dyn FnMut(Vec<T>) -> Result<(), E>,
    ) -> Result<Salvaged<()>, E> {
        // `>=`, not `>`: SQLite finds the first row past `p` by landing on `p`, which may be
        // on the damaged page when `p` is the last row before a good one.
        let sql = format!(
            "SELECT {rowid}, {columns} FROM {table} WHERE {rowid} >= ?1 ORDER BY {rowid}
             LIMIT {CHUNK}"
        );
        let mut outcome = Salvaged::default();
        let Ok(mut stmt) = self.conn.prepare(&sql) else {
            // No such table (an older index), or the schema cannot be read.
            outcome.cut_short = true;
            return Ok(outcome);
        };
        // The first rowid not read yet (SQLite gives out rowids from 1).
        let mut next = 1i64;
        loop {
            let mut chunk = Vec::new();
            let mut failed = false;
            let mut count = 0;
            match stmt.query([next]) {
                Ok(mut rows) => loop {
                    match rows.next() {
                        Ok(Some(row)) => {
                            count += 1;
                            // The rowid first: a row whose other columns cannot be read is
                            // counted and stepped over alone.
                            let Ok(rowid) = row.get::<_, i64>(0) else {
                                failed = true;
                                break;
                            };
                            next = rowid.saturating_add(1);
                            match read(row) {
                                Ok(value) => chunk.push(value),
                                Err(_) => outcome.unreadable += 1,
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                },
                Err(_) => failed = true,
            }
            if !chunk.is_empty() {
                each(chunk)?;
            }
            if failed {
                match next_readable(&mut stmt, next) {
                    Some(readable) => {
                        outcome.unreadable += (readable - next) as u64;
                        next = readable;
                    }
                    None => {
                        outcome.cut_short = true;
                        return Ok(outcome);
                    }
                }
            } else if count < CHUNK {
                return Ok(outcome);
            }
        }
    }
}

/// The smallest `p > from` from which rows can be read again (`stmt`, reading the rows from
/// `p` on, reads one), found by doubling steps and a binary search back; `None` when there is
/// none (the table cannot be read from `from` on).
fn next_readable(stmt: &mut rusqlite::Statement<'_>, from: i64) -> Option<i64> {
    let readable = |stmt: &mut rusqlite::Statement<'_>, p: i64| {
        stmt.query([p])
            .and_then(|mut rows| rows.next().map(|r| r.is_some()))
            .is_ok()
    };
    // (bad, good]: reading from `bad` failed, from `good` worked.
    let mut bad = from;
    let mut step = 1i64;
    let good = loop {
        let probe = from.checked_add(step)?;
        if readable(stmt, probe) {
            break probe;
        }
        bad = probe;
        step = step.checked_mul(2)?;
    };
    let (mut bad, mut good) = (bad, good);
    while good - bad > 1 {
        let mid = bad + (good - bad) / 2;
        if readable(stmt, mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Some(good)
}

/// Damaging index files on purpose, for the tests of the index and of `repair-index`.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    const PAGE: usize = 4096;

    /// Overwrites the `n` pages nearest the middle of the closed index at `path` that are
    /// leaves of the `records` table holding no membership record (`pmmr`), and returns how
    /// many rows those pages held.
    pub(crate) fn damage_record_pages(path: &Path, n: usize) -> usize {
        damage_table_leaves(path, "records", n)
    }

    /// Overwrites the `n` leaves of `table` nearest the middle of the closed index at `path`
    /// that hold no membership record (`pmmr`), and returns how many rows they held.
    pub(crate) fn damage_table_leaves(path: &Path, table: &str, n: usize) -> usize {
        let leaves: std::collections::HashSet<usize> = {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            let mut stmt = conn
                .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf'")
                .unwrap();
            // `dbstat` counts pages from 1; the file's pages are counted from 0 here.
            stmt.query_map([table], |r| r.get::<_, i64>(0))
                .unwrap()
                .map(|p| usize::try_from(p.unwrap() - 1).unwrap())
                .collect()
        };
        damage_pages_where(path, n, |p, page| {
            leaves.contains(&p) && count(page, b"pmmr") == 0
        })
    }

    /// Overwrites the `n` table leaves nearest the middle of the closed index at `path` for
    /// which `pick(page)` holds, and returns how many rows they held.
    pub(crate) fn damage_leaves_where(
        path: &Path,
        n: usize,
        pick: impl Fn(&[u8]) -> bool,
    ) -> usize {
        damage_pages_where(path, n, |_, page| pick(page))
    }

    /// Overwrites the `n` table leaves nearest the middle of the closed index at `path` for
    /// which `pick(page number from 0, page)` holds, and returns how many rows they held.
    fn damage_pages_where(path: &Path, n: usize, pick: impl Fn(usize, &[u8]) -> bool) -> usize {
        let wal = format!("{}-wal", path.display());
        assert!(
            std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
            "the index is closed, its WAL checkpointed"
        );
        let mut bytes = std::fs::read(path).unwrap();
        let pages = bytes.len() / PAGE;
        let mut leaves: Vec<usize> = (1..pages)
            .filter(|&p| {
                let page = &bytes[p * PAGE..(p + 1) * PAGE];
                page[0] == 0x0D && pick(p, page)
            })
            .collect();
        leaves.sort_by_key(|&p| p.abs_diff(pages / 2));
        assert!(leaves.len() >= n, "{} pages to pick from", leaves.len());
        let mut rows = 0;
        for &p in &leaves[..n] {
            let page = &mut bytes[p * PAGE..(p + 1) * PAGE];
            // The cell count of a leaf page's header.
            rows += usize::from(u16::from_be_bytes([page[3], page[4]]));
            page.fill(0xA5);
        }
        std::fs::write(path, bytes).unwrap();
        rows
    }

    /// How many times `what` occurs in `page`.
    pub(crate) fn count(page: &[u8], what: &[u8]) -> usize {
        page.windows(what.len()).filter(|w| *w == what).count()
    }
}

#[cfg(test)]
mod tests {
    use photomesh_protocol::record::RecordId;

    use super::testing::damage_record_pages;
    use super::*;
    use crate::index::Index;

    /// An index of `n` records (with a folder and a setting), closed.
    fn index_with_records(dir: &Path, n: u32) -> PathBuf {
        let path = dir.join("index.sqlite");
        let ix = Index::create(&path).unwrap();
        ix.set_meta("hold", "own").unwrap();
        let folder = Folder {
            label: "camera".into(),
            path: "/photos/camera".into(),
        };
        ix.add_folder(&folder, 1).unwrap();
        ix.transaction(|ix| {
            for i in 0..n {
                let mut sealed = b"pmsr".to_vec();
                sealed.extend_from_slice(&[i as u8; 300]);
                let id = *blake3::hash(&i.to_le_bytes()).as_bytes();
                ix.add_record(&RecordId(id), &sealed, 1)?;
            }
            Ok::<_, IndexError>(())
        })
        .unwrap();
        path
    }

    #[test]
    fn an_index_from_before_records_were_kept_as_fields_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        // Schema 12: `photos` without the columns that seal a record again.
        let path = dir.path().join("index.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &super::super::schema::MIGRATIONS[..12] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 12).unwrap();
            for i in 0..50u8 {
                let id = *blake3::hash(&[i]).as_bytes();
                let sealed = [b"pmsr".as_slice(), &[i; 300]].concat();
                conn.execute(
                    "INSERT INTO records VALUES (?1, ?2, 1)",
                    rusqlite::params![&id[..], sealed],
                )
                .unwrap();
            }
        }
        let old = Salvage::open(&path).unwrap();
        let mut read = 0;
        let walked = old
            .records(|chunk| {
                assert!(
                    chunk
                        .iter()
                        .all(|(_, r)| matches!(r, StoredRecord::Sealed(_)))
                );
                read += chunk.len();
                Ok::<_, IndexError>(())
            })
            .unwrap();
        assert_eq!(read, 50);
        assert!(walked.is_whole(), "{walked:?}");
    }

    #[test]
    fn a_query_that_meets_a_damaged_page_names_the_file_and_the_repair() {
        let dir = tempfile::tempdir().unwrap();
        let path = index_with_records(dir.path(), 2000);
        damage_record_pages(&path, 2);
        // The file opens: the damage is in the middle, met only by a query that reads it.
        let ix = Index::open(&path).unwrap();
        let err = ix.records_after(0).unwrap_err();
        assert!(matches!(err, IndexError::Corrupt { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("photomesh repair-index"), "{message}");
        assert!(ix.integrity_problem().unwrap().is_some());
    }

    #[test]
    fn rows_past_damaged_pages_are_read_and_the_rows_on_them_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = index_with_records(dir.path(), 2000);
        let lost = damage_record_pages(&path, 2);
        let before = std::fs::read(&path).unwrap();
        let old = Salvage::open(&path).unwrap();
        assert!(old.integrity_check().unwrap().is_some());
        let mut read = 0;
        let walked = old
            .records(|chunk| {
                read += chunk.len();
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(walked.unreadable as usize, lost);
        assert!(!walked.cut_short);
        assert_eq!(read + lost, 2000);
        assert_eq!(old.meta().rows, vec![("hold".to_owned(), "own".to_owned())]);
        assert_eq!(old.folders().rows.len(), 1);
        assert!(old.folders().is_whole());
        drop(old);
        assert!(
            std::fs::read(&path).unwrap() == before,
            "the damaged file was written to"
        );
    }

    #[test]
    fn a_file_that_is_no_database_cannot_be_salvaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        std::fs::write(&path, vec![0x55; 8192]).unwrap();
        assert!(matches!(
            Salvage::open(&path),
            Err(IndexError::Corrupt { .. })
        ));
    }
}
