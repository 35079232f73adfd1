//! Freeing up space (`photomesh free-up-space`): removing from this device's folders the
//! originals of photos that are safe on other devices — a full phone's way out.
//!
//! An original is removed only if its photo is a current one of the library (its newest
//! version, not in the trash), it was recorded at least `older_than` ago, and at least
//! `[storage] free_up_copies` other members hold a copy verified within the scrub period (as
//! [`crate::library::copies`] counts them; this device's own copy is the one going). A
//! released original is no deletion: the photo stays in the library on every device (a
//! release record, no blob named, tells the other members), the scan and the watcher do not
//! take it for gone or moved, every member's `status` counts it safe while it keeps the
//! copies its release required, the running node does not fetch it back, and `photomesh
//! restore` does. When its content reappears at its path the
//! next scan links it to its record again, and it is held here again.
//!
//! Before a file is removed it is opened through [`crate::original::open`] and checked
//! against its record: size, modification time, and the BLAKE3 hash of its content. The hash
//! costs one read of each file removed (about as long as copying it once, on the device that
//! is short of space, not of time), and it is what makes the promise true: a file whose bytes
//! differ from what the mesh holds — rot since the last check, an edit that kept its size and
//! mtime — is never removed. It is kept and named (a damaged one is marked so, as `verify`
//! does). The file is then marked released in the index and unlinked only if it is still the
//! very file checked ([`crate::original::remove`]); if that fails the mark is taken back.
//! Nothing else in the folders is touched: sidecars and each half of a Live Photo are photos
//! of their own, judged alone.

use std::io::BufReader;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::clock::now_ms;
use crate::home::Home;
use crate::index::{CurrentSource, IndexError};
use crate::library::copies::Copies;
use crate::library::progress::Progress;
use crate::library::scan::describe_io;

/// Photos recorded more recently than this are kept unless told otherwise (`--older-than`).
pub const DEFAULT_OLDER_THAN: Duration = Duration::from_secs(86_400);

/// What may be freed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Only this folder (its label); `None`: every folder.
    pub folder: Option<String>,
    /// Only photos recorded at least this long ago.
    pub older_than: Duration,
    /// Verified copies on other devices a photo needs (`[storage] free_up_copies`, at least
    /// 1).
    pub copies: u64,
    /// A copy counts only if its device verified it within this long (`[scrub] period`).
    pub verified_within: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            folder: None,
            older_than: DEFAULT_OLDER_THAN,
            copies: u64::from(crate::home::config::DEFAULT_FREE_UP_COPIES),
            verified_within: crate::home::config::DEFAULT_SCRUB_PERIOD,
        }
    }
}

/// Why nothing could be freed.
#[derive(Debug, thiserror::Error)]
pub enum FreeUpError {
    /// The index could not be read or written.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A vault keeps no folders, only sealed copies.
    #[error(
        "this device is a vault: it has no folders and no originals to remove (its copies are \
         what lets the other devices free their space)"
    )]
    Vault,
    /// No folder of this device has the label asked for.
    #[error(
        "no folder is labelled {0:?} on this device (`photomesh folder list` shows the labels)"
    )]
    UnknownFolder(String),
    /// Zero copies elsewhere would remove the only copy.
    #[error(
        "free_up_copies is 0: at least 1 verified copy on another device is needed before an \
         original is removed here (set [storage] free_up_copies to 1 or more)"
    )]
    NoCopies,
}

/// A number of photos and their size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Amount {
    /// Photos.
    pub photos: u64,
    /// Their originals' bytes.
    pub bytes: u64,
}

/// What `free-up-space` did (or, in a dry run, would do).
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// Whether nothing was changed (`--dry-run`).
    pub dry_run: bool,
    /// Verified copies on other devices each photo needed.
    pub copies_needed: u64,
    /// Only photos recorded at least this many seconds ago were taken.
    pub older_than_s: u64,
    /// The originals removed (in a dry run: that would be), with where their copies are.
    pub removed: Vec<Released>,
    /// Their bytes: the space freed.
    pub bytes_freed: u64,
    /// The originals kept, each with its reason.
    pub kept: Vec<Kept>,
    /// The commands that bring the removed photos back into their folders.
    pub restore: Vec<String>,
}

/// An original removed (or that would be).
#[derive(Debug, serde::Serialize)]
pub struct Released {
    /// Its folder's label.
    pub folder: String,
    /// Its path in the folder.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// The other devices holding a verified copy.
    pub copies_on: Vec<String>,
}

/// An original kept, and why.
#[derive(Debug, serde::Serialize)]
pub struct Kept {
    /// Its folder's label.
    pub folder: String,
    /// Its path in the folder.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// Why it was kept.
    pub reason: KeptReason,
    /// The reason in words, with what to do if anything.
    pub detail: String,
}

/// Why an original was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptReason {
    /// Fewer verified copies on other devices than needed.
    BelowCopies,
    /// Recorded more recently than `older_than`.
    TooRecent,
    /// Not as recorded (changed, gone, damaged): never removed.
    Changed,
    /// It could not be read or removed.
    Failed,
}

impl Report {
    /// Whether an original could not be checked or removed, or was found not as recorded
    /// (the command then exits 1).
    pub fn has_problems(&self) -> bool {
        self.kept
            .iter()
            .any(|k| matches!(k.reason, KeptReason::Changed | KeptReason::Failed))
    }

    /// How many originals were kept for `reason`.
    pub fn kept_for(&self, reason: KeptReason) -> usize {
        self.kept.iter().filter(|k| k.reason == reason).count()
    }
}

/// What `free-up-space` would remove, without touching anything: the originals, their
/// copies elsewhere, and those kept with the reason known without reading them.
pub fn dry_run(home: &Home, settings: &Settings) -> Result<Report, FreeUpError> {
    let plan = plan(home, settings)?;
    let mut report = Report::new(settings, true, plan.kept);
    for (source, copies_on) in plan.eligible {
        report.bytes_freed += source.source.size;
        report.removed.push(Released::of(source, copies_on));
    }
    report.restore = restore_commands(home, &report.removed)?;
    Ok(report)
}

/// Removes the originals [`dry_run`] names, each once checked against its record, and marks
/// them released.
pub fn free_up(
    home: &Home,
    settings: &Settings,
    progress: &mut dyn Progress,
) -> Result<Report, FreeUpError> {
    let plan = plan(home, settings)?;
    let mut report = Report::new(settings, false, plan.kept);
    let total: u64 = plan.eligible.iter().map(|(s, _)| s.source.size).sum();
    progress.start("free up space", plan.eligible.len() as u64, total);
    for (source, copies_on) in plan.eligible {
        progress.advance(1, source.source.size);
        match release(home, &source)? {
            None => {
                report.bytes_freed += source.source.size;
                report.removed.push(Released::of(source, copies_on));
            }
            Some((reason, detail)) => report.kept.push(Kept {
                folder: source.folder,
                path: source.source.path,
                size: source.source.size,
                reason,
                detail,
            }),
        }
    }
    progress.finish();
    // The other members count these photos safe at their `free_up_copies` too.
    if let Err(e) = crate::mesh::trash::sync_releases(home, now_ms()) {
        tracing::warn!("telling the mesh which originals are released: {e}");
    }
    report.restore = restore_commands(home, &report.removed)?;
    Ok(report)
}

/// How much `free-up-space` with `settings` would free now (nothing on a vault), for
/// `status`. In every folder it is counted by class (`index/tallies.rs`): the originals
/// there of current photos whose blob enough other members hold, less those recorded within
/// `older_than`, the only ones read. In one folder, its originals are read.
pub fn would_free(home: &Home, settings: &Settings) -> Result<Amount, IndexError> {
    if settings.folder.is_some() {
        return planned(home, settings);
    }
    if home.keys.current().is_none() || settings.copies == 0 {
        return Ok(Amount::default());
    }
    let copies = Copies::new(home, settings.verified_within)?;
    let older_than = u64::try_from(settings.older_than.as_millis()).unwrap_or(u64::MAX);
    let recorded_by = now_ms().saturating_sub(older_than);
    let mut amount = Amount::default();
    for class in home.index.photo_classes()? {
        if !class.current || !class.source_there {
            continue;
        }
        if copies.peers_among(&class.holders).1 < settings.copies {
            continue;
        }
        let (recent, recent_bytes) = home.index.recorded_after(class.class, recorded_by)?;
        amount.photos += class.photos.saturating_sub(recent);
        amount.bytes += class.bytes.saturating_sub(recent_bytes);
    }
    Ok(amount)
}

/// What [`plan`] would free.
fn planned(home: &Home, settings: &Settings) -> Result<Amount, IndexError> {
    match plan(home, settings) {
        Ok(plan) => Ok(Amount {
            photos: plan.eligible.len() as u64,
            bytes: plan.eligible.iter().map(|(s, _)| s.source.size).sum(),
        }),
        Err(FreeUpError::Index(e)) => Err(e),
        Err(_) => Ok(Amount::default()),
    }
}

/// The originals released here whose photos are still current: how many, and their size
/// (their classes' counts).
pub fn released(home: &Home) -> Result<Amount, IndexError> {
    let mut amount = Amount::default();
    for class in home.index.photo_classes()? {
        if class.current && class.released_here {
            amount.photos += class.photos;
            amount.bytes += class.bytes;
        }
    }
    Ok(amount)
}

/// The originals that may go (with the devices holding counted copies), and those kept.
struct Plan {
    eligible: Vec<(CurrentSource, Vec<String>)>,
    kept: Vec<Kept>,
}

fn plan(home: &Home, settings: &Settings) -> Result<Plan, FreeUpError> {
    if home.keys.current().is_none() {
        return Err(FreeUpError::Vault);
    }
    if settings.copies == 0 {
        return Err(FreeUpError::NoCopies);
    }
    if let Some(label) = &settings.folder
        && !home.index.folders()?.iter().any(|f| &f.label == label)
    {
        return Err(FreeUpError::UnknownFolder(label.clone()));
    }
    let copies = Copies::new(home, settings.verified_within)?;
    let older_than = u64::try_from(settings.older_than.as_millis()).unwrap_or(u64::MAX);
    let recorded_by = now_ms().saturating_sub(older_than);
    let mut plan = Plan {
        eligible: Vec::new(),
        kept: Vec::new(),
    };
    for source in home.index.current_sources(settings.folder.as_deref())? {
        let kept = |reason, detail| Kept {
            folder: source.folder.clone(),
            path: source.source.path.clone(),
            size: source.source.size,
            reason,
            detail,
        };
        if source.recorded_at_ms > recorded_by {
            plan.kept.push(kept(
                KeptReason::TooRecent,
                format!(
                    "recorded less than {} ago (--older-than)",
                    crate::home::config::format_duration(settings.older_than)
                ),
            ));
            continue;
        }
        let copies_on: Vec<String> = copies
            .of_peers(home, &source.blob)?
            .into_iter()
            .filter(|c| c.counts)
            .map(|c| c.device)
            .collect();
        if (copies_on.len() as u64) < settings.copies {
            let on = match copies_on.as_slice() {
                [] => String::new(),
                devices => format!(" (on {})", devices.join(", ")),
            };
            plan.kept.push(kept(
                KeptReason::BelowCopies,
                format!(
                    "{} verified {} on other devices{on}, {} needed ([storage] free_up_copies)",
                    copies_on.len(),
                    if copies_on.len() == 1 {
                        "copy"
                    } else {
                        "copies"
                    },
                    settings.copies
                ),
            ));
            continue;
        }
        plan.eligible.push((source, copies_on));
    }
    Ok(plan)
}

impl Report {
    fn new(settings: &Settings, dry_run: bool, kept: Vec<Kept>) -> Self {
        Self {
            dry_run,
            copies_needed: settings.copies,
            older_than_s: settings.older_than.as_secs(),
            removed: Vec::new(),
            bytes_freed: 0,
            kept,
            restore: Vec::new(),
        }
    }
}

impl Released {
    fn of(source: CurrentSource, copies_on: Vec<String>) -> Self {
        Self {
            folder: source.folder,
            path: source.source.path,
            size: source.source.size,
            copies_on,
        }
    }
}

/// Checks one original against its record and removes it, marked released; or says why it
/// was kept.
fn release(
    home: &Home,
    source: &CurrentSource,
) -> Result<Option<(KeptReason, String)>, IndexError> {
    let row = &source.source;
    let file = match crate::original::open(&source.root, &row.path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some((
                KeptReason::Changed,
                "it is no longer there (the next scan notes it)".into(),
            )));
        }
        Err(e) => return Ok(Some((KeptReason::Failed, describe_io(&e)))),
    };
    let as_recorded = |meta: &std::fs::Metadata| {
        meta.len() == row.size
            && meta.mtime() == row.mtime_s
            && meta.mtime_nsec() as u32 == row.mtime_ns
    };
    let changed = || {
        Some((
            KeptReason::Changed,
            "changed since it was recorded; `photomesh scan` records the new version".into(),
        ))
    };
    match file.metadata() {
        Ok(meta) if as_recorded(&meta) => {}
        Ok(_) => return Ok(changed()),
        Err(e) => return Ok(Some((KeptReason::Failed, describe_io(&e)))),
    }
    let mut hasher = blake3::Hasher::new();
    if let Err(e) = hasher.update_reader(BufReader::with_capacity(1 << 20, &file)) {
        return Ok(Some((KeptReason::Failed, describe_io(&e))));
    }
    match file.metadata() {
        Ok(meta) if as_recorded(&meta) => {}
        Ok(_) => return Ok(changed()),
        Err(e) => return Ok(Some((KeptReason::Failed, describe_io(&e)))),
    }
    if *hasher.finalize().as_bytes() != source.plaintext_hash {
        // Same size and mtime, other bytes: rot. Not held any more, as `verify` would say.
        home.index
            .mark_source_damaged(&source.folder, &row.path, now_ms())?;
        return Ok(Some((
            KeptReason::Changed,
            "its content no longer matches its record although its size and modification \
             time are unchanged (disk corruption?); kept, and `photomesh status` lists it \
             damaged"
                .into(),
        )));
    }
    if !home
        .index
        .release_source(&source.folder, &row.path, &row.record_id, now_ms())?
    {
        return Ok(changed());
    }
    if let Err(e) = crate::original::remove(&source.root, &row.path, &file) {
        home.index.unrelease_source(&source.folder, &row.path)?;
        return Ok(Some((
            KeptReason::Failed,
            format!("it could not be removed: {}", describe_io(&e)),
        )));
    }
    Ok(None)
}

/// `photomesh restore --folder LABEL --to FOLDER` for each folder photos were removed from:
/// what brings them back to their places.
fn restore_commands(home: &Home, removed: &[Released]) -> Result<Vec<String>, IndexError> {
    let home_flag = match crate::home::default_home() {
        Ok(default) if default == home.path => String::new(),
        _ => format!(" --home {}", shell_word(&home.path.display().to_string())),
    };
    let mut out = Vec::new();
    for folder in home.index.folders()? {
        if removed.iter().any(|r| r.folder == folder.label) {
            out.push(format!(
                "photomesh{home_flag} restore --folder {} --to {}",
                shell_word(&folder.label),
                shell_word(&folder.path.display().to_string())
            ));
        }
    }
    Ok(out)
}

/// `s` as one shell word: as it is when it needs no quoting, else in single quotes.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::progress::Silent;
    use std::path::Path;

    /// A device with a folder of sample photos, scanned, alone in its mesh.
    fn scanned(dir: &Path) -> (Home, std::path::PathBuf, Vec<std::path::PathBuf>) {
        let home = crate::mesh::create_device(&dir.join("home"), "phone", None, 1).unwrap();
        let photos = dir.join("photos");
        let files = crate::demo::samples::write_library(&photos, 3, 7).unwrap();
        crate::library::folders::add(&home, &photos, None).unwrap();
        crate::library::scan::scan(&home, &mut Silent).unwrap();
        (home, photos, files)
    }

    fn any_age() -> Settings {
        Settings {
            older_than: Duration::ZERO,
            copies: 1,
            ..Settings::default()
        }
    }

    #[test]
    fn nothing_goes_without_copies_elsewhere_and_recent_photos_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (home, photos, files) = scanned(dir.path());
        let before = std::fs::read_dir(&photos).unwrap().count();
        // Alone in its mesh: no copy on another device, whatever the age.
        let report = free_up(&home, &any_age(), &mut Silent).unwrap();
        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!(report.kept_for(KeptReason::BelowCopies), files.len());
        assert!(
            report.kept[0].detail.contains("0 verified copies"),
            "{report:?}"
        );
        // With the default age, everything just scanned is too recent.
        let report = dry_run(&home, &Settings::default()).unwrap();
        assert_eq!(report.kept_for(KeptReason::TooRecent), files.len());
        assert_eq!(std::fs::read_dir(&photos).unwrap().count(), before);
        assert_eq!(would_free(&home, &any_age()).unwrap(), Amount::default());
        let zero = Settings {
            copies: 0,
            ..any_age()
        };
        assert!(matches!(dry_run(&home, &zero), Err(FreeUpError::NoCopies)));
        let elsewhere = Settings {
            folder: Some("nowhere".into()),
            ..any_age()
        };
        assert!(matches!(
            dry_run(&home, &elsewhere),
            Err(FreeUpError::UnknownFolder(_))
        ));
    }

    #[test]
    fn a_released_original_is_not_held_not_gone_and_comes_back_with_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let (home, photos, files) = scanned(dir.path());
        let file = &files[0];
        let rel = file
            .strip_prefix(&photos)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let row = home.index.source("photos", &rel).unwrap().unwrap();
        let bytes = std::fs::read(file).unwrap();
        let mtime = std::fs::metadata(file).unwrap().modified().unwrap();
        let current = home
            .index
            .current_sources(Some("photos"))
            .unwrap()
            .into_iter()
            .find(|s| s.source.path == rel)
            .unwrap();
        let held = |home: &Home| home.index.held_blobs().unwrap().len();
        let held_before = held(&home);

        assert_eq!(release(&home, &current).unwrap(), None);
        assert!(!file.exists());
        assert_eq!(held(&home), held_before - 1);
        assert!(home.index.gone_sources().unwrap().is_empty());
        assert_eq!(
            released(&home).unwrap(),
            Amount {
                photos: 1,
                bytes: row.size
            }
        );
        // Not a candidate again, and a scan sees nothing missing.
        assert!(
            home.index
                .current_sources(None)
                .unwrap()
                .iter()
                .all(|s| s.source.path != rel)
        );
        let scan = crate::library::scan::scan(&home, &mut Silent).unwrap();
        assert_eq!((scan.missing_files, scan.new_files), (0, 0), "{scan:?}");

        // Its content back at its place (as `restore` writes it): the same photo, held again.
        let records = home.index.photo_record_count().unwrap();
        std::fs::write(file, &bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let scan = crate::library::scan::scan(&home, &mut Silent).unwrap();
        assert_eq!((scan.new_files, scan.changed_files), (0, 0), "{scan:?}");
        // No photo recorded twice (a return record tells the mesh it is held again).
        assert_eq!(home.index.photo_record_count().unwrap(), records);
        assert_eq!(released(&home).unwrap(), Amount::default());
        assert!(home.index.released_by(None).unwrap().is_empty());
        assert_eq!(held(&home), held_before);
    }

    #[test]
    fn a_file_not_as_recorded_is_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (home, photos, files) = scanned(dir.path());
        let sources = home.index.current_sources(None).unwrap();
        let at = |file: &std::path::PathBuf| {
            let rel = file.strip_prefix(&photos).unwrap().to_str().unwrap();
            sources
                .iter()
                .find(|s| s.source.path == rel)
                .unwrap()
                .clone()
        };
        // Edited, with a new mtime.
        std::fs::write(&files[0], b"edited").unwrap();
        let (reason, _) = release(&home, &at(&files[0])).unwrap().unwrap();
        assert_eq!(reason, KeptReason::Changed);
        assert!(files[0].exists());
        // Rot: other bytes under the same size and mtime.
        let meta = std::fs::metadata(&files[1]).unwrap();
        let mut bytes = std::fs::read(&files[1]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&files[1], &bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&files[1])
            .unwrap()
            .set_modified(meta.modified().unwrap())
            .unwrap();
        let (reason, detail) = release(&home, &at(&files[1])).unwrap().unwrap();
        assert_eq!(reason, KeptReason::Changed, "{detail}");
        assert!(files[1].exists());
        assert!(home.index.gone_sources().unwrap()[0].damaged);
        // Gone already.
        std::fs::remove_file(&files[2]).unwrap();
        let (reason, _) = release(&home, &at(&files[2])).unwrap().unwrap();
        assert_eq!(reason, KeptReason::Changed);
        assert_eq!(released(&home).unwrap(), Amount::default());
    }

    #[test]
    fn only_the_file_checked_is_removed_never_one_put_in_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("photos");
        std::fs::create_dir_all(root.join("2024")).unwrap();
        std::fs::write(root.join("2024/a.jpg"), b"checked").unwrap();
        let checked = crate::original::open(&root, "2024/a.jpg").unwrap();
        // Another file renamed over it after the check.
        std::fs::write(root.join("other"), b"new").unwrap();
        std::fs::rename(root.join("other"), root.join("2024/a.jpg")).unwrap();
        assert!(crate::original::remove(&root, "2024/a.jpg", &checked).is_err());
        assert_eq!(std::fs::read(root.join("2024/a.jpg")).unwrap(), b"new");
        // The file checked goes.
        let checked = crate::original::open(&root, "2024/a.jpg").unwrap();
        crate::original::remove(&root, "2024/a.jpg", &checked).unwrap();
        assert!(!root.join("2024/a.jpg").exists());
        assert!(root.join("2024").is_dir(), "its folder stays");
    }

    #[test]
    fn paths_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_word("/home/me/Pictures"), "/home/me/Pictures");
        assert_eq!(shell_word("/home/me/My Photos"), "'/home/me/My Photos'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
