//! Verification: is everything this device is responsible for still what was recorded?
//!
//! Checks every original file against its record (it must exist, and its content must hash
//! to the recorded plaintext hash) and every blob in the blob store against its ID, and runs
//! SQLite's integrity check on the index. It changes nothing: it only reports.
//!
//! An original whose size or mtime changed is *changed* (a new scan will record it); one
//! whose size and mtime are the same but whose content differs is *corrupt* — the bytes
//! changed under the file system's nose, which is what bit rot looks like.

use std::fs::{self, File};
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
        report.findings.push(Finding {
            kind: FindingKind::Corrupt,
            item: home.path.join("index.sqlite").display().to_string(),
            detail: format!("SQLite integrity check: {problem}"),
        });
    }
    let work = originals(home, &mut report.findings)?;
    let blobs = home.index.stored_blobs()?;
    progress.start(
        "verify",
        (work.len() + blobs.len()) as u64,
        work.iter().map(|(_, r)| r.size).sum(),
    );
    for (path, row) in work {
        report.sources_checked += 1;
        progress.advance(1, row.size);
        report.findings.extend(check_original(home, &path, &row)?);
    }
    for blob_id in blobs {
        report.blobs_checked += 1;
        progress.advance(1, 0);
        report.findings.extend(check_blob(home, &blob_id));
    }
    progress.finish();
    Ok(report)
}

/// Every recorded original of the folders that are there, in path order; a folder that is
/// gone is a finding.
fn originals(
    home: &Home,
    findings: &mut Vec<Finding>,
) -> Result<Vec<(PathBuf, SourceRow)>, IndexError> {
    let mut work = Vec::new();
    for folder in &home.index.folders()? {
        let sources = home.index.sources(&folder.label)?;
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
                .map(|row| (folder.path.join(&row.path), row)),
        );
    }
    Ok(work)
}

/// Checks one original against its record: there, unchanged, and hashing as recorded.
fn check_original(
    home: &Home,
    path: &Path,
    row: &SourceRow,
) -> Result<Option<Finding>, IndexError> {
    let item = path.display().to_string();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Some(Finding {
                kind: FindingKind::Missing,
                item,
                detail: describe_io(&e),
            }));
        }
    };
    if meta.len() != row.size
        || meta.mtime() != row.mtime_s
        || meta.mtime_nsec() as u32 != row.mtime_ns
    {
        return Ok(Some(Finding {
            kind: FindingKind::Changed,
            item,
            detail: "changed since it was recorded; `photomesh scan` records the new version"
                .into(),
        }));
    }
    let expected = home.index.plaintext_hash_of(&row.record_id)?;
    let mut hasher = blake3::Hasher::new();
    let read = File::open(path).and_then(|f| {
        hasher
            .update_reader(BufReader::with_capacity(1 << 20, f))
            .map(|_| ())
    });
    if let Err(e) = read {
        return Ok(Some(Finding {
            kind: FindingKind::Missing,
            item,
            detail: describe_io(&e),
        }));
    }
    if expected != Some(*hasher.finalize().as_bytes()) {
        return Ok(Some(Finding {
            kind: FindingKind::Corrupt,
            item,
            detail: "its content no longer matches its record although its size and \
                     modification time are unchanged (disk corruption?)"
                .into(),
        }));
    }
    Ok(None)
}

/// Checks one stored blob against its ID.
fn check_blob(home: &Home, blob_id: &BlobId) -> Option<Finding> {
    let (kind, detail) = match home.blobs.verify(blob_id) {
        Ok(()) => return None,
        Err(BlobStoreError::Missing(_)) => {
            (FindingKind::Missing, "not in the blob store".to_owned())
        }
        Err(BlobStoreError::Corrupt(_)) => (
            FindingKind::Corrupt,
            "its content no longer matches its ID".to_owned(),
        ),
        Err(e) => (FindingKind::Missing, e.to_string()),
    };
    Some(Finding {
        kind,
        item: format!("blob {blob_id}"),
        detail,
    })
}
