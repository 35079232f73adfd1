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
use std::io::{self, BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use photomesh_protocol::record::PhotoRecord;
use photomesh_protocol::seal::BlobId;

use crate::blob::sealed::OpenError;
use crate::blob::source::BlobSource;
use crate::home::Home;
use crate::index::IndexError;
use crate::library::progress::Progress;
use crate::library::scan::describe_io;

/// Which photos a restore writes.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this folder, written straight into the destination (otherwise into
    /// `DEST/LABEL/`).
    pub folder: Option<String>,
    /// Only photos taken (else last modified) at or after this local time, in seconds since
    /// 1970 in the camera's zone.
    pub since: Option<i64>,
    /// Only photos taken (else last modified) before this local time.
    pub until: Option<i64>,
    /// Only these photos or folders: `LABEL/PATH`, or a `PATH` within the folders, or a
    /// folder above either (every photo under it).
    pub paths: Vec<String>,
    /// Which versions of each photo.
    pub versions: Versions,
}

/// Which versions of a photo a restore writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Versions {
    /// The newest (the photo as it is now).
    #[default]
    Newest,
    /// Version N (1 is the first recorded, as `photomesh versions` numbers them), at the
    /// photo's own path.
    Number(usize),
    /// Every version: the newest at the photo's path, each earlier one beside it as
    /// `NAME.vN.EXT`.
    All,
}

/// Where version `n` of a photo at `target` goes when every version is restored.
pub fn version_path(target: &Path, n: usize) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let named = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.v{n}.{ext}"),
        _ => format!("{name}.v{n}"),
    };
    target.with_file_name(named)
}

impl Selection {
    pub(crate) fn takes(&self, photo: &PhotoRecord) -> bool {
        let when = photo
            .capture_time
            .map_or(photo.mtime.seconds, |c| c.local_seconds);
        let under = |path: &str, prefix: &str| {
            let prefix = prefix.trim_end_matches('/');
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|r| r.starts_with('/'))
        };
        let labelled = format!("{}/{}", photo.folder, photo.path);
        self.since.is_none_or(|t| when >= t)
            && self.until.is_none_or(|t| when < t)
            && (self.paths.is_empty()
                || self
                    .paths
                    .iter()
                    .any(|p| under(&labelled, p) || under(&photo.path, p)))
    }
}

/// Where the bytes of a photo to restore are, as this device sees it before reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy {
    /// In this device's blob store.
    Stored,
    /// This device's own original.
    Original(PathBuf),
    /// Not on this device: it must come from a member of the mesh.
    Missing,
}

/// One photo a restore is to write.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Its record.
    pub photo: PhotoRecord,
    /// Where it goes.
    pub target: PathBuf,
    /// Its own original on this device, where its folder is one of this device's.
    pub source: Option<PathBuf>,
    /// Where its bytes are.
    pub copy: Copy,
}

/// The photos a restore writes, and those it cannot even plan (records it cannot open,
/// unsafe paths).
#[derive(Debug, Default)]
pub struct Plan {
    /// The photos, in folder and path order.
    pub photos: Vec<Planned>,
    /// Photos left out, with the reason.
    pub refused: Vec<NotRestored>,
}

impl Plan {
    /// The blobs this device does not hold: they must be fetched before the restore.
    pub fn missing(&self) -> Vec<BlobId> {
        let mut blobs: Vec<BlobId> = self
            .photos
            .iter()
            .filter(|p| p.copy == Copy::Missing)
            .map(|p| p.photo.blob_id)
            .collect();
        blobs.sort();
        blobs.dedup();
        blobs
    }
}

/// What a restore did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    /// Photos written.
    pub restored: u64,
    /// Photos already present at their path with the right content.
    pub already_present: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Photos restored from a copy fetched from the mesh because this device's own copy was
    /// missing, changed or damaged.
    pub fetched: u64,
    /// Photos not restored, with the reason.
    pub not_restored: Vec<NotRestored>,
    /// The photos (indexes into the plan) whose copy on this device turned out missing,
    /// changed or damaged when read: a copy from the mesh may restore them.
    #[serde(skip)]
    pub needs_copy: Vec<usize>,
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
/// `to/LABEL/PATH`, or at `to/PATH` when one folder is named, from what this device holds.
pub fn restore(
    home: &Home,
    to: &Path,
    only_folder: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<RestoreReport, RestoreError> {
    let selection = Selection {
        folder: only_folder.map(str::to_owned),
        ..Selection::default()
    };
    let plan = plan(home, to, &selection)?;
    let mut report = run(home, &plan, None, progress)?;
    for i in std::mem::take(&mut report.needs_copy) {
        report.not_restored.push(NotRestored {
            path: plan.photos[i].target.display().to_string(),
            reason: no_copy(plan.photos[i].source.as_deref()),
        });
    }
    Ok(report)
}

/// The photos of the library that `selection` takes — the newest version of each place a
/// photo is now (a photo that moved is restored where it went) — with where each goes under
/// `to` and where its bytes are.
pub fn plan(home: &Home, to: &Path, selection: &Selection) -> Result<Plan, RestoreError> {
    let folders: BTreeMap<String, PathBuf> = home
        .index
        .folders()?
        .into_iter()
        .map(|f| (f.label, f.path))
        .collect();
    let only_folder = selection.folder.as_deref();
    if let Some(label) = only_folder {
        let known =
            folders.contains_key(label) || !home.index.latest_photos(Some(label))?.is_empty();
        if !known {
            return Err(RestoreError::UnknownFolder(label.to_owned()));
        }
    }
    let mut plan = Plan::default();
    for row in home.index.latest_photos(only_folder)? {
        let photo = match row.record.open_photo(&home.keys) {
            Ok(photo) => photo,
            Err(e) => {
                plan.refused.push(NotRestored {
                    path: format!("record {}", row.record_id),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if !selection.takes(&photo) {
            continue;
        }
        let Some(rel) = safe_relative(&photo.path) else {
            plan.refused.push(NotRestored {
                path: photo.path.clone(),
                reason: "the recorded path is not a safe relative path; refused".into(),
            });
            continue;
        };
        let target = match only_folder {
            Some(_) => to.join(&rel),
            None => to.join(&photo.folder).join(&rel),
        };
        let source = folders.get(&photo.folder).map(|f| f.join(&rel));
        for (photo, target) in versions(home, photo, target, selection.versions, &mut plan)? {
            let copy = copy_of(home, &photo)?;
            plan.photos.push(Planned {
                photo,
                target,
                source: source.clone(),
                copy,
            });
        }
    }
    Ok(plan)
}

/// The versions of `photo` (the newest) that `which` asks for, each with where it goes.
fn versions(
    home: &Home,
    photo: PhotoRecord,
    target: PathBuf,
    which: Versions,
    plan: &mut Plan,
) -> Result<Vec<(PhotoRecord, PathBuf)>, RestoreError> {
    if which == Versions::Newest {
        return Ok(vec![(photo, target)]);
    }
    let all = home.index.versions(&photo.folder, &photo.path)?;
    let mut out = Vec::new();
    let newest = all.iter().rposition(|v| !v.trashed);
    for (i, version) in all.iter().enumerate() {
        let n = i + 1;
        let wanted = match which {
            Versions::Number(want) => n == want,
            _ => !version.trashed,
        };
        if !wanted {
            continue;
        }
        if version.purged {
            plan.refused.push(NotRestored {
                path: format!("{}/{} version {n}", photo.folder, photo.path),
                reason: "it was purged ([versions] keep, or the trash emptied)".into(),
            });
            continue;
        }
        let opened = home
            .index
            .record(&version.record_id)?
            .map(|record| record.open_photo(&home.keys));
        match opened {
            Some(Ok(v)) => {
                let at = if which == Versions::All && Some(i) != newest {
                    version_path(&target, n)
                } else {
                    target.clone()
                };
                out.push((v, at));
            }
            Some(Err(e)) => plan.refused.push(NotRestored {
                path: format!("{}/{} version {n}", photo.folder, photo.path),
                reason: e.to_string(),
            }),
            None => {}
        }
    }
    if out.is_empty()
        && let Versions::Number(n) = which
    {
        plan.refused.push(NotRestored {
            path: format!("{}/{}", photo.folder, photo.path),
            reason: format!(
                "it has no version {n} (`photomesh versions {}/{}` lists {})",
                photo.folder,
                photo.path,
                all.len()
            ),
        });
    }
    Ok(out)
}

/// Where this device holds the bytes of `photo`, as far as it knows before reading them.
fn copy_of(home: &Home, photo: &PhotoRecord) -> Result<Copy, RestoreError> {
    Ok(match BlobSource::open(home, &photo.blob_id)? {
        Some(blob) if blob.is_stored() => Copy::Stored,
        Some(_) => Copy::Original(
            home.index
                .originals_of(&photo.blob_id)?
                .first()
                .map(|o| o.root.join(&o.rel))
                .unwrap_or_default(),
        ),
        None => {
            // Its original here (if any) is gone or no longer as recorded: no longer held.
            home.index
                .mark_originals_gone(&photo.blob_id, crate::clock::now_ms())?;
            Copy::Missing
        }
    })
}

/// Writes the planned photos (all, or those at `only`), each from wherever this device
/// holds its bytes, verified. A photo whose copy here is missing, changed or damaged is
/// listed in [`RestoreReport::needs_copy`] (a stored copy found damaged is evicted from the
/// blob store, so that a fetch replaces it), not in `not_restored`.
pub fn run(
    home: &Home,
    plan: &Plan,
    only: Option<&[usize]>,
    progress: &mut dyn Progress,
) -> Result<RestoreReport, RestoreError> {
    let mut report = RestoreReport::default();
    if only.is_none() {
        report
            .not_restored
            .extend(plan.refused.iter().map(|n| NotRestored {
                path: n.path.clone(),
                reason: n.reason.clone(),
            }));
    }
    let all: Vec<usize> = (0..plan.photos.len()).collect();
    let indexes = only.unwrap_or(&all);
    let mut made = std::collections::HashSet::new();
    for i in indexes {
        if let Some(dir) = plan.photos[*i].target.parent()
            && made.insert(dir.to_owned())
        {
            fs::create_dir_all(dir).map_err(|e| RestoreError::Destination {
                path: dir.to_owned(),
                reason: describe_io(&e),
            })?;
        }
    }
    progress.start(
        "restore",
        indexes.len() as u64,
        indexes.iter().map(|i| plan.photos[*i].photo.size).sum(),
    );
    for &i in indexes {
        let planned = &plan.photos[i];
        let photo = &planned.photo;
        match restore_one(home, photo, &planned.target) {
            Ok(Outcome::Written) => {
                report.restored += 1;
                report.bytes += photo.size;
                if only.is_some() || planned.copy == Copy::Missing {
                    report.fetched += 1;
                }
            }
            Ok(Outcome::AlreadyPresent) => report.already_present += 1,
            Err(Failed::NoGoodCopy { damaged_store }) => {
                if damaged_store {
                    home.index.evict_stored_blob(&photo.blob_id)?;
                    let _ = fs::remove_file(home.blobs.path_of(&photo.blob_id));
                } else {
                    home.index
                        .mark_originals_gone(&photo.blob_id, crate::clock::now_ms())?;
                }
                report.needs_copy.push(i);
            }
            Err(Failed::Other(reason)) => report.not_restored.push(NotRestored {
                path: planned.target.display().to_string(),
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

/// Why one photo was not written.
enum Failed {
    /// This device's copy is missing, changed or damaged (`damaged_store`: the blob store's
    /// copy failed its check).
    NoGoodCopy { damaged_store: bool },
    /// Anything else (the destination), said in words.
    Other(String),
}

impl From<String> for Failed {
    fn from(reason: String) -> Self {
        Self::Other(reason)
    }
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

fn restore_one(home: &Home, photo: &PhotoRecord, target: &Path) -> Result<Outcome, Failed> {
    if let Ok(meta) = fs::symlink_metadata(target) {
        return if meta.is_file() && meta.len() == photo.size && same_content(target, photo) {
            Ok(Outcome::AlreadyPresent)
        } else {
            Err(Failed::Other(
                "a different file is already there; it was not overwritten".into(),
            ))
        };
    }
    let dir = target
        .parent()
        .ok_or_else(|| Failed::Other("the target has no parent folder".into()))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.photomesh-restore"));
    let result = write_verified(home, photo, &tmp).and_then(|()| {
        fs::hard_link(&tmp, target).map_err(|e| {
            Failed::Other(if e.kind() == io::ErrorKind::AlreadyExists {
                "a file appeared at that path during the restore; it was not overwritten".into()
            } else {
                describe_io(&e)
            })
        })
    });
    let _ = fs::remove_file(&tmp);
    result.map(|()| Outcome::Written)
}

/// Writes the verified plaintext to `tmp`, fsynced and with the recorded mtime. The sealed
/// bytes come from wherever this device holds the blob ([`BlobSource`]): its store, or an
/// original with the recorded content.
fn write_verified(home: &Home, photo: &PhotoRecord, tmp: &Path) -> Result<(), Failed> {
    let blob = BlobSource::open(home, &photo.blob_id)
        .map_err(|e| Failed::Other(e.to_string()))?
        .ok_or(Failed::NoGoodCopy {
            damaged_store: false,
        })?;
    let written = |e: io::Error| {
        Failed::Other(format!(
            "cannot write {}: {}",
            tmp.display(),
            describe_io(&e)
        ))
    };
    let file = File::create(tmp).map_err(written)?;
    let mut out = BufWriter::with_capacity(1 << 20, &file);
    blob.open_into(&home.keys, photo, &mut out)
        .map_err(|e| match e {
            // The destination failed, or the key is not here: say so. Anything else failed
            // reading this device's copy, which a copy from the mesh replaces.
            OpenError::Write(e) => written(e),
            e @ OpenError::UnknownEpoch(_) => Failed::Other(e.to_string()),
            OpenError::Io(_) | OpenError::Seal(_) | OpenError::Mismatch(_) => Failed::NoGoodCopy {
                damaged_store: blob.is_stored(),
            },
        })?;
    out.flush().map_err(written)?;
    drop(out);
    file.sync_all().map_err(written)?;
    file.set_modified(system_time(photo)).map_err(|e| {
        Failed::Other(format!(
            "cannot set the modification time: {}",
            describe_io(&e)
        ))
    })?;
    Ok(())
}

/// Why this device holds no good copy of a photo: its original is gone or changed, its
/// stored copy damaged, or it never had one.
pub fn no_copy(source: Option<&Path>) -> String {
    match source.map(|src| (src, fs::symlink_metadata(src))) {
        None => "this device holds no copy of it, and no member of the mesh supplied one".into(),
        Some((src, Err(e))) => format!(
            "the original {} cannot be read: {}",
            src.display(),
            describe_io(&e)
        ),
        Some((src, Ok(_))) => format!(
            "the original {} no longer holds the recorded content (changed since it was \
             recorded, or this device's stored copy is damaged), and no member of the mesh \
             supplied a copy",
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
