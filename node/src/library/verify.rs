//! Verification: is everything this device is responsible for still what was recorded?
//!
//! Checks every original file against its record (it must exist, and its content must hash
//! to the recorded plaintext hash) and every blob in the blob store against its ID, and runs
//! SQLite's integrity check on the index first: a damaged index is the one finding, and
//! nothing else is checked (that would write into it).
//!
//! An original whose size or mtime changed is *changed* (a new scan will record it); one
//! whose size and mtime are the same but whose content differs is *corrupt* — the bytes
//! changed under the file system's nose, which is what bit rot looks like.

use std::io::BufReader;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use photomesh_protocol::seal::BlobId;

use crate::blob::store::BlobStoreError;
use crate::home::Home;
use crate::index::{IndexError, SourceRow};
use crate::library::progress::Progress;
use crate::library::scan::describe_io;

/// What is wrong with one item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// `missing`, `changed` or `corrupt`.
    pub kind: FindingKind,
    /// The file, folder or blob concerned.
    pub item: String,
    /// What was found, in words.
    pub detail: String,
}

/// The kinds of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    /// Recorded but not there.
    Missing,
    /// Changed since it was recorded (a scan will record the new version).
    Changed,
    /// Damaged: the content no longer matches its record.
    Corrupt,
}

/// The result of a verification.
#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Original files checked.
    pub sources_checked: u64,
    /// Blobs checked.
    pub blobs_checked: u64,
    /// Everything found wrong.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// Whether everything checked out.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks every original and every stored blob.
pub fn verify(home: &Home, progress: &mut dyn Progress) -> Result<VerifyReport, IndexError> {
    let mut report = VerifyReport::default();
    if let Some(problem) = home.index.integrity_problem()? {
        // Checking on would write what it finds into the damaged file.
        report.findings.push(Finding {
            kind: FindingKind::Corrupt,
            item: home.index.path().display().to_string(),
            detail: format!(
                "the index is damaged (SQLite's check: {problem}); nothing else was checked. \
                 Run `photomesh repair-index` (with no node running on this home), then \
                 `photomesh verify` again"
            ),
        });
        return Ok(report);
    }
    let work = originals(home, &mut report.findings)?;
    let blobs = home.index.stored_blobs()?;
    progress.start(
        "verify",
        (work.len() + blobs.len()) as u64,
        work.iter().map(|(_, _, r)| r.size).sum(),
    );
    for (label, root, row) in work {
        report.sources_checked += 1;
        progress.advance(1, row.size);
        let expected = home.index.plaintext_hash_of(&row.record_id)?;
        let finding = check_original(&root, &row, expected, u64::MAX);
        original_checked(home, &label, &row.path, finding.as_ref())?;
        report.findings.extend(finding);
    }
    for blob_id in blobs {
        report.blobs_checked += 1;
        progress.advance(1, 0);
        report.findings.extend(check_blob(home, &blob_id)?);
    }
    // The verification times changed: a running node reloads what it holds, and tells its
    // peers.
    home.index.bump_gone_version()?;
    progress.finish();
    Ok(report)
}

/// Takes in what the check of an original found: good, it is verified now; damaged in place,
/// or changed or gone, it is no longer held, so the node fetches the recorded copy.
pub fn original_checked(
    home: &Home,
    label: &str,
    path: &str,
    finding: Option<&Finding>,
) -> Result<(), IndexError> {
    let now = crate::clock::now_ms();
    match finding.map(|f| f.kind) {
        None => home.index.set_source_verified(label, path, now),
        Some(FindingKind::Corrupt) => home.index.mark_source_damaged(label, path, now),
        Some(_) => home
            .index
            .mark_sources_gone(label, &[path], now)
            .map(|_| ()),
    }
}

/// Every recorded original of the folders that are there (with its folder's path), in path
/// order; a folder that is gone is a finding.
fn originals(
    home: &Home,
    findings: &mut Vec<Finding>,
) -> Result<Vec<(String, PathBuf, SourceRow)>, IndexError> {
    let mut work = Vec::new();
    for folder in &home.index.folders()? {
        // Originals released by `free-up-space` are not there on purpose.
        let released = home.index.released_paths(&folder.label)?;
        let mut sources = home.index.sources(&folder.label)?;
        sources.retain(|path, _| !released.contains(path));
        if !folder.path.is_dir() {
            findings.push(Finding {
                kind: FindingKind::Missing,
                item: folder.path.display().to_string(),
                detail: format!(
                    "folder {:?} is gone or not mounted; {} recorded originals are not there",
                    folder.label,
                    sources.len()
                ),
            });
            continue;
        }
        let mut rows: Vec<_> = sources.into_values().collect();
        rows.sort_by(|a, b| a.path.cmp(&b.path));
        work.extend(
            rows.into_iter()
                .map(|row| (folder.label.clone(), folder.path.clone(), row)),
        );
    }
    Ok(work)
}

/// Checks one original (in folder `root`) against its record: there, a regular file,
/// unchanged, and hashing to `expected`, its recorded plaintext hash, read at most `rate`
/// bytes a second (`u64::MAX`: at once). Only reads the file.
pub fn check_original(
    root: &Path,
    row: &SourceRow,
    expected: Option<[u8; 32]>,
    rate: u64,
) -> Option<Finding> {
    let item = root.join(&row.path).display().to_string();
    let opened =
        crate::original::open(root, &row.path).and_then(|file| Ok((file.metadata()?, file)));
    let (meta, file) = match opened {
        Ok(m) => m,
        Err(e) => {
            return Some(Finding {
                kind: FindingKind::Missing,
                item,
                detail: describe_io(&e),
            });
        }
    };
    if meta.len() != row.size
        || meta.mtime() != row.mtime_s
        || meta.mtime_nsec() as u32 != row.mtime_ns
    {
        return Some(Finding {
            kind: FindingKind::Changed,
            item,
            detail: "changed since it was recorded; `photomesh scan` records the new version"
                .into(),
        });
    }
    let mut hasher = blake3::Hasher::new();
    let read = hasher
        .update_reader(crate::pace::Paced::new(
            BufReader::with_capacity(1 << 20, file),
            rate,
        ))
        .map(|_| ());
    if let Err(e) = read {
        return Some(Finding {
            kind: FindingKind::Missing,
            item,
            detail: describe_io(&e),
        });
    }
    if expected != Some(*hasher.finalize().as_bytes()) {
        return Some(Finding {
            kind: FindingKind::Corrupt,
            item,
            detail: "its content no longer matches its record although its size and \
                     modification time are unchanged (disk corruption?)"
                .into(),
        });
    }
    None
}

/// Checks one stored blob. A missing or damaged one is healed as far as this device can: its
/// copy is quarantined (never served again) and it is no longer held, so the running node —
/// told at once, and its peers at their next reconciliation — fetches a good copy.
fn check_blob(home: &Home, blob_id: &BlobId) -> Result<Option<Finding>, IndexError> {
    let checked = home.blobs.verify(blob_id);
    // Purged (or set aside) by the running node since the list was read: not a finding.
    if matches!(checked, Err(BlobStoreError::Missing(_))) && !home.index.blob_stored(blob_id)? {
        return Ok(None);
    }
    heal_blob(home, blob_id, checked)
}

/// What a check of a stored blob found (`checked`, the result of `BlobStore::verify`), with
/// a missing or damaged copy healed as [`check_blob`] says. The scrub checks blobs without
/// the home and hands the result here.
pub fn heal_blob(
    home: &Home,
    blob_id: &BlobId,
    checked: Result<(), BlobStoreError>,
) -> Result<Option<Finding>, IndexError> {
    let (kind, what) = match checked {
        Ok(()) => {
            home.index
                .set_blob_verified(blob_id, crate::clock::now_ms())?;
            return Ok(None);
        }
        Err(BlobStoreError::Missing(_)) => (FindingKind::Missing, "not in the blob store"),
        Err(BlobStoreError::Corrupt(_)) => {
            (FindingKind::Corrupt, "its content no longer matches its ID")
        }
        Err(e) => {
            // Unreadable (an I/O error): not known bad, so left where it is.
            return Ok(Some(Finding {
                kind: FindingKind::Missing,
                item: format!("blob {blob_id}"),
                detail: e.to_string(),
            }));
        }
    };
    let moved = home.blobs.quarantine(blob_id);
    home.index.evict_stored_blob(blob_id)?;
    let detail = match moved {
        Ok(Some(to)) => format!(
            "{what}; moved to {} and no longer held: a good copy is fetched from the peers \
             that hold one",
            to.display()
        ),
        Ok(None) => {
            format!("{what}; no longer held: a good copy is fetched from the peers that hold one")
        }
        Err(e) => format!("{what}; no longer held, but moving it aside failed: {e}"),
    };
    Ok(Some(Finding {
        kind,
        item: format!("blob {blob_id}"),
        detail,
    }))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::library::progress::Silent;
    use crate::library::{folders, scan};

    /// A device with one folder of five sample files (three JPEGs, a PNG, an MP4), scanned.
    fn scanned() -> (tempfile::TempDir, Home, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::mesh::create_device(&dir.path().join("home"), "laptop", None, 1).unwrap();
        let photos = dir.path().join("photos");
        let files = crate::demo::samples::write_library(&photos, 3, 9).unwrap();
        folders::add(&home, &photos, None).unwrap();
        let summary = scan::scan(&home, &mut Silent).unwrap();
        assert_eq!((summary.new_files, summary.problems.len()), (5, 0));
        let again = scan::scan(&home, &mut Silent).unwrap();
        assert_eq!((again.new_files, again.unchanged_files), (0, 5));
        (dir, home, files)
    }

    fn kinds(report: &VerifyReport) -> Vec<(FindingKind, String)> {
        let mut found: Vec<_> = report
            .findings
            .iter()
            .map(|f| (f.kind, f.item.clone()))
            .collect();
        found.sort_by(|a, b| a.1.cmp(&b.1));
        found
    }

    #[test]
    fn a_scanned_folder_verifies_clean() {
        let (_dir, home, _) = scanned();
        let report = verify(&home, &mut Silent).unwrap();
        assert_eq!(report.sources_checked, 5);
        assert!(report.is_clean(), "{:?}", kinds(&report));
    }

    #[test]
    fn rot_an_edit_and_a_deletion_are_each_found_as_what_they_are() {
        let (_dir, home, files) = scanned();
        // Rot: one byte flipped, size and modification time kept.
        let rotten = &files[0];
        let mtime = fs::metadata(rotten).unwrap().modified().unwrap();
        let mut bytes = fs::read(rotten).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(rotten, &bytes).unwrap();
        fs::File::options()
            .write(true)
            .open(rotten)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        // An edit: the size changes.
        let edited = &files[1];
        let mut longer = fs::read(edited).unwrap();
        longer.extend_from_slice(b"edited");
        fs::write(edited, longer).unwrap();
        // A deletion.
        let deleted = &files[2];
        fs::remove_file(deleted).unwrap();

        let report = verify(&home, &mut Silent).unwrap();
        assert_eq!(report.sources_checked, 5);
        let mut expected = vec![
            (FindingKind::Corrupt, rotten.display().to_string()),
            (FindingKind::Changed, edited.display().to_string()),
            (FindingKind::Missing, deleted.display().to_string()),
        ];
        expected.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(kinds(&report), expected);
        // None of the three is held now; the rotten one is known damaged, not gone.
        let gone = home.index.gone_sources().unwrap();
        assert_eq!(gone.len(), 3, "{gone:?}");
        let damaged: Vec<_> = gone.iter().filter(|g| g.damaged).collect();
        assert!(
            damaged.len() == 1 && rotten.ends_with(&damaged[0].path),
            "{gone:?}"
        );
        assert_eq!(home.index.held_blobs().unwrap().len(), 2);
    }

    #[test]
    fn a_clean_verify_stamps_every_copy_verified_now() {
        let (dir, home, files) = scanned();
        for f in &files {
            let rel = f.strip_prefix(dir.path().join("photos")).unwrap();
            home.index
                .set_source_verified("photos", rel.to_str().unwrap(), 1)
                .unwrap();
        }
        assert!(
            home.index
                .held_blobs()
                .unwrap()
                .iter()
                .all(|(_, at)| *at == 1)
        );
        let before = crate::clock::now_ms();
        assert!(verify(&home, &mut Silent).unwrap().is_clean());
        let held = home.index.held_blobs().unwrap();
        assert_eq!(held.len(), 5);
        assert!(held.iter().all(|(_, at)| *at >= before), "{held:?}");
    }
}
