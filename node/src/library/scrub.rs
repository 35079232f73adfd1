//! The scrub: every stored blob re-verified on a schedule, so rot is found before anyone needs
//! the photo. A pass walks the blob store in ID order, one blob at a time; where it is (the
//! last blob checked), when the pass started and when the last one finished are kept in the
//! index's `meta`, so a pass resumes across restarts. A pass starts once the previous one is a
//! `period` old. What a check finds is healed as `verify` heals it
//! ([`crate::library::verify::heal_blob`]).
//!
//! This module holds the steps; the running node drives them (`daemon::scrub`), reading each
//! blob without holding the home, at a bounded rate.

use photomesh_protocol::seal::BlobId;

use crate::blob::store::BlobStoreError;
use crate::home::Home;
use crate::index::IndexError;
use crate::library::verify::{Finding, heal_blob};

const CURSOR: &str = "scrub_cursor";
const PASS_STARTED: &str = "scrub_pass_started_ms";
const LAST_PASS: &str = "scrub_last_pass_ms";
const FOUND: &str = "scrub_found";
const CHECKED: &str = "scrub_checked";

/// What the scrub does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Check this blob (of this sealed length).
    Check(BlobId, u64),
    /// A pass just ended (every stored blob was checked).
    PassDone,
    /// Nothing until this time (ms since the epoch): the last pass is recent.
    IdleUntil(u64),
}

/// Where the scrub is, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScrubStatus {
    /// When the last full pass ended (ms since the epoch).
    pub last_pass_ms: Option<u64>,
    /// When the pass under way started, if one is.
    pub pass_started_ms: Option<u64>,
    /// Blobs checked so far in the pass under way.
    pub checked: u64,
    /// Blobs in the store.
    pub of: u64,
    /// Damaged or missing blobs this pass found (and set aside).
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
    }
    match home.index.next_stored_blob(cursor(home)?.as_ref())? {
        Some((blob, len)) => Ok(Next::Check(blob, len)),
        None => {
            home.index.set_meta(LAST_PASS, &now_ms.to_string())?;
            home.index.set_meta(PASS_STARTED, "")?;
            home.index.set_meta(CURSOR, "")?;
            Ok(Next::PassDone)
        }
    }
}

/// Takes in the result of checking `blob` (`BlobStore::verify`): heals a bad copy, and moves
/// the pass on past it.
pub fn checked(
    home: &Home,
    blob: &BlobId,
    result: Result<(), BlobStoreError>,
) -> Result<Option<Finding>, IndexError> {
    let finding = heal_blob(home, blob, result)?;
    if finding.is_some() {
        let found = meta_u64(home, FOUND)?.unwrap_or(0) + 1;
        home.index.set_meta(FOUND, &found.to_string())?;
    }
    let done = meta_u64(home, CHECKED)?.unwrap_or(0) + 1;
    home.index.set_meta(CHECKED, &done.to_string())?;
    home.index.set_meta(CURSOR, &blob.to_hex())?;
    Ok(finding)
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
        of: home.index.stored_blob_count()?,
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
