//! Deleting photos into the mesh's trash, listing it, restoring from it, emptying it, and
//! purging what left it for good (`protocol/LIFECYCLE.md` says what the records mean).
//!
//! A delete names every version of each photo it selects. Originals in the folders are never
//! touched, unless asked (`--originals`), and then only on the device whose file it is, only
//! while the file is still what was recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use photomesh_protocol::lifecycle::{Action, MAX_TARGETS};
use photomesh_protocol::record::RecordId;
use photomesh_protocol::seal::BlobId;

use crate::clock::now_ms;
use crate::home::Home;
use crate::home::config::Keep;
use crate::index::IndexError;
use crate::library::restore::Selection;
use crate::mesh::MeshError;

/// Why a trash operation could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrashError {
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Signing or evaluating the records failed.
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// A vault reads no photo.
    #[error(
        "this device is a vault: it reads no photo, so it cannot choose any to delete or \
         restore; do it on a full device (its trash is emptied by what they decide)"
    )]
    Vault,
    /// Nothing was said to select.
    #[error(
        "say which photos: LABEL/PATH (as `photomesh photos` lists them), a record ID, \
         --folder, --path, --since or --until"
    )]
    NoSelection,
    /// The selection matched nothing.
    #[error("no photo matches{0}; `photomesh {1}` lists them")]
    NothingMatches(&'static str, &'static str),
}

/// What the trash holds, one photo (its versions) per entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrashEntry {
    /// The folder label.
    pub folder: String,
    /// The path within the folder.
    pub path: String,
    /// Its versions in the trash.
    pub versions: u64,
    /// Their size.
    pub bytes: u64,
    /// In the trash since (ms since the epoch).
    pub since_ms: u64,
    /// When it leaves the trash for good, at this device's retention (ms since the epoch).
    pub purge_at_ms: u64,
    /// The photo records (hex), for `trash restore` by ID.
    pub records: Vec<String>,
}

/// The result of `delete`, `trash restore` or `trash empty`.
#[derive(Debug, Default, serde::Serialize)]
pub struct Done {
    /// Whether nothing was changed (`--dry-run`).
    pub dry_run: bool,
    /// The photos concerned, each with its versions.
    pub photos: Vec<TrashEntry>,
    /// Versions (photo records) named.
    pub versions: u64,
    /// Their size.
    pub bytes: u64,
    /// Originals removed from this device's folders (`--originals`).
    pub originals_removed: Vec<String>,
    /// Originals left where they are, with why.
    pub originals_kept: Vec<(String, String)>,
    /// Lifecycle records signed.
    pub records_signed: u64,
}

/// The trash's totals and what it holds, for `trash list` and `status`.
#[derive(Debug, Default, serde::Serialize)]
pub struct TrashList {
    /// Photo records in the trash (a vault counts what it cannot read too).
    pub versions: u64,
    /// The photos, on a full device.
    pub photos: Vec<TrashEntry>,
    /// Their size, as far as known.
    pub bytes: u64,
    /// When the next one leaves the trash for good (ms since the epoch).
    pub next_purge_ms: Option<u64>,
}

fn full(home: &Home) -> Result<(), TrashError> {
    match home.keys.current() {
        Some(_) => Ok(()),
        None => Err(TrashError::Vault),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Puts the photos `selection` and `ids` name (every version of each) in the trash.
/// `originals` also removes their files from this device's folders.
pub fn delete(
    home: &Home,
    selection: &Selection,
    ids: &[RecordId],
    originals: bool,
    dry_run: bool,
    retention: Duration,
) -> Result<Done, TrashError> {
    full(home)?;
    if selection.folder.is_none()
        && selection.since.is_none()
        && selection.until.is_none()
        && selection.paths.is_empty()
        && ids.is_empty()
    {
        return Err(TrashError::NoSelection);
    }
    let now = now_ms();
    let mut chosen: Chosen = BTreeMap::new();
    for row in home.index.latest_photos(selection.folder.as_deref())? {
        let Ok(photo) = row.record.open_photo(&home.keys) else {
            continue;
        };
        let by_id = ids.contains(&row.record_id);
        let by_selection = (selection.since.is_some()
            || selection.until.is_some()
            || !selection.paths.is_empty()
            || selection.folder.is_some())
            && selection.takes(&photo);
        if !(by_id || by_selection) {
            continue;
        }
        let versions = home
            .index
            .versions(&photo.folder, &photo.path)?
            .into_iter()
            .filter(|v| !v.trashed)
            .map(|v| (v.record_id, v.blob, v.size))
            .collect();
        chosen.insert((photo.folder, photo.path), versions);
    }
    if chosen.is_empty() {
        return Err(TrashError::NothingMatches("", "photos"));
    }
    let mut done = done_of(&chosen, now, millis(retention), dry_run);
    if dry_run {
        return Ok(done);
    }
    done.records_signed = sign_all(home, Action::Trash, &chosen, now)?;
    if originals {
        remove_originals(home, &chosen, &mut done)?;
    }
    Ok(done)
}

/// Mirrors a deletion seen in a watched folder (`[watch] deletions = "trash"`): the photos at
/// `path` of `folder`, or under it, whose originals are still gone (a file moved elsewhere is
/// recorded as moved, and one released by `free-up-space` is not gone) and that this device
/// added, go to the trash. `None` when there were none.
pub fn mirror_deletion(
    home: &Home,
    folder: &str,
    path: &str,
    retention: Duration,
) -> Result<Option<Done>, TrashError> {
    full(home)?;
    let me = home.device.device_id();
    let mut paths = Vec::new();
    for gone in home.index.gone_under(folder, path)? {
        let Some((record, _, _)) = home.index.current_photo_at(folder, &gone)? else {
            continue;
        };
        let mine = home
            .index
            .record(&record)?
            .and_then(|stored| stored.open_photo(&home.keys).ok())
            .is_some_and(|p| p.added_by == me);
        let trashed = home
            .index
            .versions(folder, &gone)?
            .iter()
            .any(|v| v.record_id == record && v.trashed);
        if mine && !trashed {
            paths.push(format!("{folder}/{gone}"));
        }
    }
    if paths.is_empty() {
        return Ok(None);
    }
    let selection = Selection {
        folder: Some(folder.to_owned()),
        paths,
        ..Selection::default()
    };
    delete(home, &selection, &[], false, false, retention).map(Some)
}

/// Takes the photos `selection` and `ids` name (or all, with `all`) out of the trash.
pub fn restore(
    home: &Home,
    selection: &Selection,
    ids: &[RecordId],
    all: bool,
    dry_run: bool,
) -> Result<Done, TrashError> {
    full(home)?;
    let nothing = selection.folder.is_none() && selection.paths.is_empty() && ids.is_empty();
    if nothing && !all {
        return Err(TrashError::NoSelection);
    }
    let chosen = in_trash(home, |t| {
        all || ids.contains(&t.record_id)
            || selection.folder.as_ref().is_some_and(|f| *f == t.folder)
                && selection.paths.is_empty()
            || selection.paths.iter().any(|p| under(&t.folder, &t.path, p))
    })?;
    if chosen.is_empty() {
        return Err(TrashError::NothingMatches(" in the trash", "trash list"));
    }
    let now = now_ms();
    let mut done = done_of(&chosen, now, 0, dry_run);
    if !dry_run {
        done.records_signed = sign_all(home, Action::Restore, &chosen, now)?;
    }
    Ok(done)
}

/// Empties the trash for good, on every device: all of it, or what has been in it for at
/// least `older_than`.
pub fn empty(home: &Home, older_than: Option<Duration>, dry_run: bool) -> Result<Done, TrashError> {
    full(home)?;
    let now = now_ms();
    let cutoff = older_than.map_or(u64::MAX, |d| now.saturating_sub(millis(d)));
    let chosen = in_trash(home, |t| t.since_ms <= cutoff)?;
    let mut done = done_of(&chosen, now, 0, dry_run);
    if !dry_run && !chosen.is_empty() {
        done.records_signed = sign_all(home, Action::Purge, &chosen, now)?;
    }
    Ok(done)
}

/// What the trash holds now, and when each photo leaves it at `retention`.
pub fn list(home: &Home, retention: Duration) -> Result<TrashList, TrashError> {
    let rows = home.index.trash_rows()?;
    let in_trash: Vec<_> = rows.iter().filter(|r| !r.purged).collect();
    let chosen = in_trash_grouped(home)?;
    let retention = millis(retention);
    let mut list = TrashList {
        versions: in_trash.len() as u64,
        next_purge_ms: in_trash
            .iter()
            .map(|r| r.since_ms.saturating_add(retention))
            .min(),
        ..TrashList::default()
    };
    for ((folder, path), versions) in chosen {
        let entry = entry(folder, path, &versions, retention);
        list.bytes += entry.bytes;
        list.photos.push(entry);
    }
    list.photos
        .sort_by_key(|e| (e.since_ms, e.folder.clone(), e.path.clone()));
    Ok(list)
}

/// What a purge freed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Blobs removed from the blob store.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Removes from the blob store every blob whose photos left the trash for good (purged, or
/// in it longer than `retention`) and that no live photo needs. The originals in the folders
/// are not touched.
pub fn purge_due(home: &Home, retention: Duration, hold: Duration) -> Result<Purged, TrashError> {
    let mut purged = Purged::default();
    for blob in home
        .index
        .purgeable_blobs(now_ms(), millis(retention), millis(hold))?
    {
        if !home.index.blob_stored(&blob)? && !home.blobs.contains(&blob) {
            continue;
        }
        // No longer stored first, so nothing looks for the file once it is gone.
        home.index.evict_stored_blob(&blob)?;
        match home.blobs.remove(&blob) {
            Ok(bytes) => {
                purged.blobs += 1;
                purged.bytes += bytes;
            }
            Err(e) => tracing::warn!("purging blob {blob}: {e}"),
        }
    }
    Ok(purged)
}

/// Purges, on every device, the earlier versions `keep` no longer keeps, of the photos whose
/// newest version this device recorded (so that one device decides for each photo). Returns
/// the versions purged.
pub fn expire_versions(home: &Home, keep: Keep) -> Result<u64, TrashError> {
    if keep == Keep::All || home.keys.current().is_none() {
        return Ok(0);
    }
    let me = home.device.device_id();
    let now = now_ms();
    let mut chosen: Chosen = BTreeMap::new();
    for (folder, path, newest_by) in home.index.paths_with_versions()? {
        if newest_by.as_deref() != Some(&me.as_bytes()[..]) {
            continue;
        }
        let live: Vec<_> = home
            .index
            .versions(&folder, &path)?
            .into_iter()
            .filter(|v| !v.trashed)
            .collect();
        let mut expired = Vec::new();
        for (i, v) in live.iter().enumerate() {
            // Never the newest; each earlier one by its rank, or by when it was replaced.
            let Some(next) = live.get(i + 1) else { break };
            let gone = match keep {
                Keep::All => false,
                Keep::Newest(n) => live.len() - i > n as usize,
                Keep::For(d) => next.created_at_ms.saturating_add(millis(d)) <= now,
            };
            if gone {
                expired.push((v.record_id, v.blob, v.size));
            }
        }
        if !expired.is_empty() {
            chosen.insert((folder, path), expired);
        }
    }
    if chosen.is_empty() {
        return Ok(0);
    }
    sign_all(home, Action::Purge, &chosen, now)?;
    Ok(chosen.values().map(|v| v.len() as u64).sum())
}

type Chosen = BTreeMap<(String, String), Vec<(RecordId, BlobId, u64)>>;

struct InTrash {
    record_id: RecordId,
    folder: String,
    path: String,
    since_ms: u64,
}

/// The photos in the trash, each with its versions: (record, blob, size, in the trash since).
type Grouped = BTreeMap<(String, String), Vec<(RecordId, BlobId, u64, u64)>>;

fn in_trash_grouped(home: &Home) -> Result<Grouped, IndexError> {
    let mut out: BTreeMap<(String, String), Vec<_>> = BTreeMap::new();
    for t in home.index.trashed_photos()? {
        out.entry((t.folder, t.path))
            .or_default()
            .push((t.record_id, t.blob, t.size, t.since_ms));
    }
    Ok(out)
}

/// The photos in the trash whose versions `take` accepts.
fn in_trash(home: &Home, take: impl Fn(&InTrash) -> bool) -> Result<Chosen, TrashError> {
    let mut chosen: Chosen = BTreeMap::new();
    for t in home.index.trashed_photos()? {
        let probe = InTrash {
            record_id: t.record_id,
            folder: t.folder.clone(),
            path: t.path.clone(),
            since_ms: t.since_ms,
        };
        if take(&probe) {
            chosen
                .entry((t.folder, t.path))
                .or_default()
                .push((t.record_id, t.blob, t.size));
        }
    }
    Ok(chosen)
}

fn under(folder: &str, path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    let labelled = format!("{folder}/{path}");
    [labelled.as_str(), path].iter().any(|p| {
        *p == prefix
            || p.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

fn entry(
    folder: String,
    path: String,
    versions: &[(RecordId, BlobId, u64, u64)],
    retention: u64,
) -> TrashEntry {
    let since_ms = versions.iter().map(|v| v.3).max().unwrap_or(0);
    TrashEntry {
        folder,
        path,
        versions: versions.len() as u64,
        bytes: versions.iter().map(|v| v.2).sum(),
        since_ms,
        purge_at_ms: since_ms.saturating_add(retention),
        records: versions.iter().map(|v| hex::encode(v.0.0)).collect(),
    }
}

fn done_of(chosen: &Chosen, now: u64, retention: u64, dry_run: bool) -> Done {
    let mut done = Done {
        dry_run,
        ..Done::default()
    };
    for ((folder, path), versions) in chosen {
        let with_time: Vec<_> = versions.iter().map(|(r, b, s)| (*r, *b, *s, now)).collect();
        let entry = entry(folder.clone(), path.clone(), &with_time, retention);
        done.versions += entry.versions;
        done.bytes += entry.bytes;
        done.photos.push(entry);
    }
    done
}

/// Signs `action` for every version chosen, in records of at most [`MAX_TARGETS`].
fn sign_all(home: &Home, action: Action, chosen: &Chosen, now: u64) -> Result<u64, TrashError> {
    let all: Vec<(RecordId, BlobId)> = chosen
        .values()
        .flatten()
        .map(|(record, blob, _)| (*record, *blob))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut signed = 0;
    for chunk in all.chunks(MAX_TARGETS) {
        crate::mesh::trash::sign(home, action, chunk, now)?;
        signed += 1;
    }
    Ok(signed)
}

/// Removes the originals of the deleted photos from this device's folders: only a file that
/// is still what was recorded (same size and modification time), so a newer edit is kept.
fn remove_originals(home: &Home, chosen: &Chosen, done: &mut Done) -> Result<(), TrashError> {
    use std::os::unix::fs::MetadataExt;
    let folders: BTreeMap<String, std::path::PathBuf> = home
        .index
        .folders()?
        .into_iter()
        .map(|f| (f.label, f.path))
        .collect();
    for (folder, path) in chosen.keys() {
        let (Some(root), Some(source)) = (folders.get(folder), home.index.source(folder, path)?)
        else {
            continue;
        };
        let file = root.join(path);
        let shown = file.display().to_string();
        let meta = match std::fs::symlink_metadata(&file) {
            Ok(meta) => meta,
            // Not in the folder (released by free-up-space, or gone): nothing to remove.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                done.originals_kept.push((shown, e.to_string()));
                continue;
            }
        };
        let same = meta.is_file()
            && meta.len() == source.size
            && meta.mtime() == source.mtime_s
            && meta.mtime_nsec() as u32 == source.mtime_ns;
        if !same {
            done.originals_kept
                .push((shown, "changed since it was recorded: kept".into()));
            continue;
        }
        match std::fs::remove_file(&file) {
            Ok(()) => {
                home.index
                    .mark_sources_gone(folder, &[path.as_str()], now_ms())?;
                done.originals_removed.push(shown);
            }
            Err(e) => done.originals_kept.push((shown, e.to_string())),
        }
    }
    Ok(())
}
