//! Restoring photos to a folder, through the sealed path.
//!
//! Every photo is restored from its blob: from the blob store when this device holds a
//! replica, otherwise from the original file sealed on the fly. Either way the bytes go
//! through the full check — every segment opened and authenticated, the blob ID and the
//! plaintext hash compared with the record — before the file appears at its path, so what is
//! restored is exactly what was recorded, or nothing.
//!
//! Architecture Invariant: restore never overwrites an existing file. A file that is already
//! there with the same content counts as restored; a different one is reported and left
//! alone. Files are written to a temporary name, fsynced, given their recorded mtime, and
//! hard-linked into place (which fails if the name was taken meanwhile).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use photomesh_protocol::record::{PhotoRecord, Record};

use crate::blob::sealed::{self, OpenError};
use crate::blob::source::BlobSource;
use crate::home::Home;
use crate::index::IndexError;
use crate::library::progress::Progress;
use crate::library::scan::describe_io;

/// What a restore did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    /// Photos written.
    pub restored: u64,
    /// Photos already present at their path with the right content.
    pub already_present: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Photos not restored, with the reason.
    pub not_restored: Vec<NotRestored>,
}

/// A photo that was not restored.
#[derive(Debug, serde::Serialize)]
pub struct NotRestored {
    /// Where it would have gone.
    pub path: String,
    /// Why it was not.
    pub reason: String,
}

/// Why a restore could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The index could not be read.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// No folder with that label.
    #[error("there is no folder labelled {0:?}; `photomesh folder list` shows the labels")]
    UnknownFolder(String),
    /// The destination could not be created.
    #[error("cannot create {path}: {reason}")]
    Destination {
        /// The destination.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Restores the newest version of every photo (or of one folder's) under `to`: at
/// `to/LABEL/PATH`, or at `to/PATH` when one folder is named.
pub fn restore(
    home: &Home,
    to: &Path,
    only_folder: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<RestoreReport, RestoreError> {
    let folders: BTreeMap<String, PathBuf> = home
        .index
        .folders()?
        .into_iter()
        .map(|f| (f.label, f.path))
        .collect();
    if let Some(label) = only_folder {
        let known =
            folders.contains_key(label) || !home.index.latest_photos(Some(label))?.is_empty();
        if !known {
            return Err(RestoreError::UnknownFolder(label.to_owned()));
        }
    }
    fs::create_dir_all(to).map_err(|e| RestoreError::Destination {
        path: to.to_owned(),
        reason: describe_io(&e),
    })?;
    let rows = home.index.latest_photos(only_folder)?;
    let mut report = RestoreReport::default();
    let photos: Vec<_> = rows
        .into_iter()
        .filter_map(|row| match Record::open_photo(&row.sealed, &home.keys) {
            Ok(photo) => Some(photo),
            Err(e) => {
                report.not_restored.push(NotRestored {
                    path: format!("record {}", row.record_id),
                    reason: e.to_string(),
                });
                None
            }
        })
        .collect();
    progress.start(
        "restore",
        photos.len() as u64,
        photos.iter().map(|p| p.size).sum(),
    );
    for photo in photos {
        let Some(rel) = safe_relative(&photo.path) else {
            report.not_restored.push(NotRestored {
                path: photo.path.clone(),
                reason: "the recorded path is not a safe relative path; refused".into(),
            });
            progress.advance(1, 0);
            continue;
        };
        let target = match only_folder {
            Some(_) => to.join(&rel),
            None => to.join(&photo.folder).join(&rel),
        };
        let source = folders.get(&photo.folder).map(|f| f.join(&rel));
        match restore_one(home, &photo, source.as_deref(), &target) {
            Ok(Outcome::Written) => {
                report.restored += 1;
                report.bytes += photo.size;
            }
            Ok(Outcome::AlreadyPresent) => report.already_present += 1,
            Err(reason) => report.not_restored.push(NotRestored {
                path: target.display().to_string(),
                reason,
            }),
        }
        progress.advance(1, photo.size);
    }
    progress.finish();
    Ok(report)
}

enum Outcome {
    Written,
    AlreadyPresent,
}

/// A relative path with no `..`, no root and no empty parts, or `None`.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if path.is_empty() || path.contains('\0') {
        return None;
    }
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_owned())
}

fn restore_one(
    home: &Home,
    photo: &PhotoRecord,
    source: Option<&Path>,
    target: &Path,
) -> Result<Outcome, String> {
    if let Ok(meta) = fs::symlink_metadata(target) {
        return if meta.is_file() && meta.len() == photo.size && same_content(target, photo) {
            Ok(Outcome::AlreadyPresent)
        } else {
            Err("a different file is already there; it was not overwritten".into())
        };
    }
    let dir = target.parent().ok_or("the target has no parent folder")?;
    fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create {}: {}", dir.display(), describe_io(&e)))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.photomesh-restore"));
    let result = write_verified(home, photo, source, &tmp).and_then(|()| {
        fs::hard_link(&tmp, target).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                "a file appeared at that path during the restore; it was not overwritten".into()
            } else {
                describe_io(&e)
            }
        })
    });
    let _ = fs::remove_file(&tmp);
    result.map(|()| Outcome::Written)
}

/// Writes the verified plaintext to `tmp`, fsynced and with the recorded mtime. The sealed
/// bytes come from wherever this device holds the blob ([`BlobSource`]): its store, or an
/// original with the recorded content; `source` is the photo's own original, named in errors.
fn write_verified(
    home: &Home,
    photo: &PhotoRecord,
    source: Option<&Path>,
    tmp: &Path,
) -> Result<(), String> {
    let blob = BlobSource::open(home, &photo.blob_id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| no_copy(source))?;
    let file = File::create(tmp)
        .map_err(|e| format!("cannot write {}: {}", tmp.display(), describe_io(&e)))?;
    let mut out = BufWriter::with_capacity(1 << 20, &file);
    sealed::open_blob(
        BufReader::with_capacity(1 << 20, blob.sealed_reader()),
        &home.keys,
        &photo.blob_id,
        &photo.plaintext_hash,
        &mut out,
    )
    .map_err(|e| match e {
        OpenError::Mismatch(_) | OpenError::Io(_) | OpenError::Seal(_) if blob.is_stored() => {
            format!("the stored copy of it is damaged ({e}); `photomesh verify` lists what is")
        }
        OpenError::Mismatch(_) | OpenError::Io(_) => match source {
            Some(src) => format!(
                "the original {} no longer holds the recorded content (changed since it was \
                 recorded)",
                src.display()
            ),
            None => e.to_string(),
        },
        e => e.to_string(),
    })?;
    out.flush().map_err(|e| describe_io(&e))?;
    drop(out);
    file.sync_all().map_err(|e| describe_io(&e))?;
    file.set_modified(system_time(photo))
        .map_err(|e| format!("cannot set the modification time: {}", describe_io(&e)))?;
    Ok(())
}

/// Why this device holds no copy of a photo: its original is gone or changed, or it never
/// had one.
fn no_copy(source: Option<&Path>) -> String {
    match source.map(|src| (src, fs::symlink_metadata(src))) {
        None => "this device holds no copy of it (its folder was removed)".into(),
        Some((src, Err(e))) => format!(
            "the original {} cannot be read: {}",
            src.display(),
            describe_io(&e)
        ),
        Some((src, Ok(_))) => format!(
            "the original {} no longer holds the recorded content (changed since it was \
             recorded)",
            src.display()
        ),
    }
}

fn system_time(photo: &PhotoRecord) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(photo.mtime.nanos));
    if photo.mtime.seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(photo.mtime.seconds as u64) + nanos
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(photo.mtime.seconds.unsigned_abs()) + nanos
    }
}

/// Whether the regular file at `path` holds the photo's content (read without following a
/// link or blocking on a FIFO).
fn same_content(path: &Path, photo: &PhotoRecord) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return false;
    };
    let mut hasher = blake3::Hasher::new();
    crate::original::open(dir, name)
        .and_then(|f| hasher.update_reader(f).map(|_| ()))
        .is_ok()
        && hasher.finalize().as_bytes() == &photo.plaintext_hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(safe_relative("a/b.jpg").is_some());
        for bad in ["", "/etc/passwd", "../x.jpg", "a/../../x", "a\0b"] {
            assert!(safe_relative(bad).is_none(), "{bad:?}");
        }
    }

    /// A device with one folder of five sample files, scanned; the folder's files.
    fn scanned(dir: &Path) -> (Home, Vec<PathBuf>) {
        let home = crate::mesh::create_device(&dir.join("home"), "laptop", None, 1).unwrap();
        let photos = dir.join("photos");
        let files = crate::demo::samples::write_library(&photos, 3, 6).unwrap();
        crate::library::folders::add(&home, &photos, None).unwrap();
        crate::library::scan::scan(&home, &mut crate::library::progress::Silent).unwrap();
        (home, files)
    }

    #[test]
    fn originals_come_back_byte_for_byte_and_a_changed_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (home, files) = scanned(dir.path());
        let silent = &mut crate::library::progress::Silent;
        let to = dir.path().join("restored");
        let report = restore(&home, &to, Some("photos"), silent).unwrap();
        assert_eq!((report.restored, report.not_restored.len()), (5, 0));
        for file in &files {
            let relative = file.strip_prefix(dir.path().join("photos")).unwrap();
            assert_eq!(
                fs::read(to.join(relative)).unwrap(),
                fs::read(file).unwrap()
            );
        }
        // One original rewritten with other bytes of the same length, another gone: both
        // named, nothing written for them, the rest already there.
        let mut bytes = fs::read(&files[0]).unwrap();
        bytes[100] ^= 1;
        fs::write(&files[0], &bytes).unwrap();
        fs::remove_file(&files[1]).unwrap();
        let again = dir.path().join("again");
        let report = restore(&home, &again, Some("photos"), silent).unwrap();
        assert_eq!(report.restored, 3);
        let reasons: Vec<&str> = report
            .not_restored
            .iter()
            .map(|n| n.reason.as_str())
            .collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("no longer holds the recorded content")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("cannot be read")),
            "{reasons:?}"
        );
    }
}
