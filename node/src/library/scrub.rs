//! The scrub: every stored blob, and every original against its record, re-verified on a
//! schedule, so rot is found before anyone needs the photo — and so each copy's verification
//! time, which the peers learn, stays within the period that makes it count. A pass walks the
//! blob store in ID order, then the originals in (folder, path) order, one at a time; where it
//! is, when the pass started and when the last one finished are kept in the index's `meta`,
//! so a pass resumes across restarts. A pass starts once the previous one is a `period` old.
//! What a check finds is healed as `verify` heals it
//! ([`crate::library::verify::heal_blob`], [`crate::library::verify::original_checked`]).
//!
//! This module holds the steps; the running node drives them (`daemon::scrub`), reading each
//! file without holding the home, at a bounded rate.

use std::path::PathBuf;

use photomesh_protocol::seal::BlobId;

use crate::blob::store::BlobStoreError;
use crate::home::Home;
use crate::index::{IndexError, SourceRow};
use crate::library::verify::{Finding, heal_blob, original_checked};

const CURSOR: &str = "scrub_cursor";
/// Where the pass is among the originals (`[folder, path]` as JSON), once the blobs are done.
const ORIGINALS_CURSOR: &str = "scrub_original_cursor";
const PASS_STARTED: &str = "scrub_pass_started_ms";
const LAST_PASS: &str = "scrub_last_pass_ms";
const FOUND: &str = "scrub_found";
const CHECKED: &str = "scrub_checked";

/// What the scrub does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Check this blob (of this sealed length).
    Check(BlobId, u64),
    /// Check this original against its record.
    CheckOriginal(Original),
    /// A pass just ended (everything was checked).
    PassDone,
    /// Nothing until this time (ms since the epoch): the last pass is recent.
    IdleUntil(u64),
}

/// An original to check, with what its check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    /// Its folder's label.
    pub label: String,
    /// Its folder's path.
    pub root: PathBuf,
    /// The original as last scanned.
    pub row: SourceRow,
    /// Its recorded plaintext hash.
    pub expected: Option<[u8; 32]>,
}

/// Where the scrub is, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScrubStatus {
    /// When the last full pass ended (ms since the epoch).
    pub last_pass_ms: Option<u64>,
    /// When the pass under way started, if one is.
    pub pass_started_ms: Option<u64>,
    /// Blobs and originals checked so far in the pass under way.
    pub checked: u64,
    /// Blobs in the store plus originals in the folders.
    pub of: u64,
    /// Damaged or missing blobs and originals this pass found (and set aside).
    pub found: u64,
}

fn meta_u64(home: &Home, key: &str) -> Result<Option<u64>, IndexError> {
    Ok(home.index.meta(key)?.and_then(|v| v.parse().ok()))
}

fn cursor(home: &Home) -> Result<Option<BlobId>, IndexError> {
    Ok(home.index.meta(CURSOR)?.and_then(|hex| {
        let bytes = hex::decode(hex).ok()?;
        Some(BlobId(<[u8; 32]>::try_from(bytes).ok()?))
    }))
}

/// `None`: the pass is still among the blobs; `Some(None)`: at the first original.
fn originals_cursor(home: &Home) -> Result<Option<Option<(String, String)>>, IndexError> {
    Ok(home
        .index
        .meta(ORIGINALS_CURSOR)?
        .filter(|v| !v.is_empty())
        .map(|v| serde_json::from_str(&v).ok()))
}

/// The scrub's next step at `now_ms`, when a pass should start every `period_ms`.
pub fn next(home: &Home, period_ms: u64, now_ms: u64) -> Result<Next, IndexError> {
    if meta_u64(home, PASS_STARTED)?.is_none() {
        if let Some(last) = meta_u64(home, LAST_PASS)?
            && now_ms < last.saturating_add(period_ms)
        {
            return Ok(Next::IdleUntil(last.saturating_add(period_ms)));
        }
        home.index.set_meta(PASS_STARTED, &now_ms.to_string())?;
        home.index.set_meta(FOUND, "0")?;
        home.index.set_meta(CHECKED, "0")?;
        home.index.set_meta(CURSOR, "")?;
        home.index.set_meta(ORIGINALS_CURSOR, "")?;
    }
    let among_originals = originals_cursor(home)?;
    if among_originals.is_none()
        && let Some((blob, len)) = home.index.next_stored_blob(cursor(home)?.as_ref())?
    {
        return Ok(Next::Check(blob, len));
    }
    let after = among_originals.flatten();
    let next = home
        .index
        .next_source(after.as_ref().map(|(f, p)| (f.as_str(), p.as_str())))?;
    match next {
        Some((label, root, row)) => Ok(Next::CheckOriginal(Original {
            expected: home.index.plaintext_hash_of(&row.record_id)?,
            label,
            root,
            row,
        })),
        None => {
            home.index.set_meta(LAST_PASS, &now_ms.to_string())?;
            home.index.set_meta(PASS_STARTED, "")?;
            home.index.set_meta(CURSOR, "")?;
            home.index.set_meta(ORIGINALS_CURSOR, "")?;
            Ok(Next::PassDone)
        }
    }
}

/// Takes in the result of checking `blob` (`BlobStore::verify`): heals a bad copy, notes a
/// good one verified now, and moves the pass on past it.
pub fn checked(
    home: &Home,
    blob: &BlobId,
    result: Result<(), BlobStoreError>,
) -> Result<Option<Finding>, IndexError> {
    let finding = heal_blob(home, blob, result)?;
    advance(home, finding.is_some())?;
    home.index.set_meta(CURSOR, &blob.to_hex())?;
    // Once past the last blob, the originals come next.
    if home.index.next_stored_blob(Some(blob))?.is_none() {
        home.index.set_meta(ORIGINALS_CURSOR, "null")?;
    }
    Ok(finding)
}

/// Takes in what the check of an original found
/// ([`crate::library::verify::check_original`]), and moves the pass on past it.
pub fn checked_original(
    home: &Home,
    original: &Original,
    finding: Option<&Finding>,
) -> Result<(), IndexError> {
    original_checked(home, &original.label, &original.row.path, finding)?;
    advance(home, finding.is_some())?;
    let at = serde_json::to_string(&(&original.label, &original.row.path))
        .map_err(|e| IndexError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
    home.index.set_meta(ORIGINALS_CURSOR, &at)
}

fn advance(home: &Home, found: bool) -> Result<(), IndexError> {
    if found {
        let found = meta_u64(home, FOUND)?.unwrap_or(0) + 1;
        home.index.set_meta(FOUND, &found.to_string())?;
    }
    let done = meta_u64(home, CHECKED)?.unwrap_or(0) + 1;
    home.index.set_meta(CHECKED, &done.to_string())
}

/// Where the scrub is.
pub fn status(home: &Home) -> Result<ScrubStatus, IndexError> {
    let pass_started_ms = meta_u64(home, PASS_STARTED)?;
    Ok(ScrubStatus {
        last_pass_ms: meta_u64(home, LAST_PASS)?,
        pass_started_ms,
        checked: if pass_started_ms.is_some() {
            meta_u64(home, CHECKED)?.unwrap_or(0)
        } else {
            0
        },
        of: home.index.stored_blob_count()? + home.index.present_source_count()?,
        found: meta_u64(home, FOUND)?.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_walks_every_blob_once_heals_what_is_bad_and_waits_a_period() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::mesh::create_device(&dir.path().join("home"), "nas", None, 1).unwrap();
        let mut blobs = Vec::new();
        for i in 0..3u8 {
            let data = vec![i; 70_000 + usize::from(i)];
            let id = BlobId::of_sealed(&data);
            home.blobs.put(&id, &data[..]).unwrap();
            home.index
                .add_stored_blobs([(&id, data.len() as u64, &[][..])])
                .unwrap();
            blobs.push(id);
        }
        blobs.sort();
        // One rots.
        let rotten = home.blobs.path_of(&blobs[1]);
        let mut bytes = std::fs::read(&rotten).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&rotten, bytes).unwrap();

        let (period, t0) = (1_000, 5_000);
        let mut found = Vec::new();
        let mut order = Vec::new();
        loop {
            match next(&home, period, t0).unwrap() {
                Next::Check(blob, _) => {
                    order.push(blob);
                    let result = home.blobs.verify(&blob);
                    found.extend(checked(&home, &blob, result).unwrap());
                    assert_eq!(status(&home).unwrap().checked, order.len() as u64);
                }
                Next::CheckOriginal(o) => panic!("no original here: {o:?}"),
                Next::PassDone => break,
                Next::IdleUntil(_) => panic!("the first pass starts at once"),
            }
        }
        assert_eq!(order, blobs, "every blob once, in ID order");
        assert_eq!(found.len(), 1);
        assert!(found[0].item.contains(&blobs[1].to_hex()));
        assert!(
            !home.index.blob_stored(&blobs[1]).unwrap(),
            "no longer held"
        );
        let st = status(&home).unwrap();
        assert_eq!((st.last_pass_ms, st.found, st.of), (Some(t0), 1, 2));
        // The next pass waits for the period.
        assert_eq!(
            next(&home, period, t0 + 10).unwrap(),
            Next::IdleUntil(t0 + period)
        );
        assert!(matches!(
            next(&home, period, t0 + period).unwrap(),
            Next::Check(..)
        ));
    }

    #[test]
    fn a_pass_checks_the_originals_after_the_blobs_and_stamps_each_good_one() {
        use crate::library::progress::Silent;
        let dir = tempfile::tempdir().unwrap();
        let home = crate::mesh::create_device(&dir.path().join("home"), "laptop", None, 1).unwrap();
        let photos = dir.path().join("photos");
        let mut files = crate::demo::samples::write_library(&photos, 3, 9).unwrap();
        files.sort();
        crate::library::folders::add(&home, &photos, None).unwrap();
        crate::library::scan::scan(&home, &mut Silent).unwrap();
        let data = vec![7u8; 5000];
        let stored = BlobId::of_sealed(&data);
        home.blobs.put(&stored, &data[..]).unwrap();
        home.index
            .add_stored_blobs([(&stored, 5000, &[][..])])
            .unwrap();
        // Everything verified long ago; then one original rots (size and mtime kept).
        home.index.set_blob_verified(&stored, 1).unwrap();
        for f in &files {
            let rel = f.strip_prefix(&photos).unwrap().to_str().unwrap();
            home.index.set_source_verified("photos", rel, 1).unwrap();
        }
        assert_eq!(home.index.held_verified_since().unwrap(), Some(1));
        let rotten = &files[1];
        let mtime = std::fs::metadata(rotten).unwrap().modified().unwrap();
        let mut bytes = std::fs::read(rotten).unwrap();
        bytes[100] ^= 1;
        std::fs::write(rotten, &bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(rotten)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let rel = rotten.strip_prefix(&photos).unwrap().to_str().unwrap();
        let (_, _, rotten_blob) = home.index.current_photo_at("photos", rel).unwrap().unwrap();

        let t0 = crate::clock::now_ms();
        let mut order = Vec::new();
        let mut found = 0;
        loop {
            match next(&home, 1_000_000, t0).unwrap() {
                Next::Check(blob, _) => {
                    order.push(blob.to_hex());
                    let result = home.blobs.verify(&blob);
                    found += usize::from(checked(&home, &blob, result).unwrap().is_some());
                }
                Next::CheckOriginal(o) => {
                    order.push(o.root.join(&o.row.path).display().to_string());
                    let finding = crate::library::verify::check_original(
                        &o.root,
                        &o.row,
                        o.expected,
                        u64::MAX,
                    );
                    found += usize::from(finding.is_some());
                    checked_original(&home, &o, finding.as_ref()).unwrap();
                }
                Next::PassDone => break,
                Next::IdleUntil(_) => panic!("the first pass starts at once"),
            }
        }
        let mut expected = vec![stored.to_hex()];
        expected.extend(files.iter().map(|f| f.display().to_string()));
        assert_eq!(
            order, expected,
            "the blob, then every original in path order"
        );
        assert_eq!(found, 1);
        let st = status(&home).unwrap();
        assert_eq!((st.found, st.of), (1, 1 + files.len() as u64 - 1));
        // Every good copy is verified now; the rotten original is no longer held.
        let held = home.index.held_blobs().unwrap();
        assert_eq!(
            held.len(),
            files.len(),
            "the stored blob and the good originals"
        );
        assert!(held.iter().all(|(_, at)| *at >= t0), "{held:?}");
        assert!(home.index.held_verified_since().unwrap() >= Some(t0));
        assert!(!held.iter().any(|(b, _)| *b == rotten_blob));
        let gone = home.index.gone_sources().unwrap();
        assert!(gone.len() == 1 && gone[0].damaged, "{gone:?}");
        // A scan does not take a damaged original back while it is unchanged.
        crate::library::scan::scan(&home, &mut Silent).unwrap();
        assert!(home.index.gone_sources().unwrap()[0].damaged);
        assert_eq!(home.index.held_blobs().unwrap().len(), files.len());
    }

    #[test]
    fn a_pass_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home");
        let home = crate::mesh::create_device(&path, "nas", None, 1).unwrap();
        for i in 0..4u8 {
            let data = vec![i; 1000];
            let id = BlobId::of_sealed(&data);
            home.blobs.put(&id, &data[..]).unwrap();
            home.index.add_stored_blobs([(&id, 1000, &[][..])]).unwrap();
        }
        let Next::Check(first, _) = next(&home, 1, 0).unwrap() else {
            panic!("a blob to check")
        };
        checked(&home, &first, Ok(())).unwrap();
        drop(home);
        let home = Home::open(&path).unwrap();
        let Next::Check(second, _) = next(&home, 1, 0).unwrap() else {
            panic!("a blob to check")
        };
        assert!(
            second > first,
            "resumed after the first, not from the start"
        );
        assert_eq!(status(&home).unwrap().checked, 1);
    }
}
