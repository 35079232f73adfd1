//! Scanning: turning the files in the photo folders into sealed records.
//!
//! A scan walks every folder, takes the files whose extension and magic bytes say photo or
//! video, and skips the ones whose size, mtime and inode are unchanged since the last scan.
//! Each new or changed file is read twice — once to hash the plaintext (the hash picks the
//! file key), once to seal it on the fly and compute the blob ID and its bao outboard — and
//! gets a new sealed record; an older record of the same path is kept. No copy of the photo
//! is stored.
//!
//! Architecture Invariant: a scan opens source files read-only and never writes, moves or
//! deletes them.
//!
//! [`scan_files`] runs the same pipeline on a given set of files: the watcher (`watch`) hands
//! it the files it saw complete.
//!
//! A file that cannot be read, or changes while it is read, is reported and skipped; the scan
//! carries on. Results are committed to the index in batches, so an interrupted scan keeps
//! what it finished. Files are hashed and sealed on worker threads; one thread writes the
//! index.

use crate::lock::Mutex;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::clock::now_ms;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use photomesh_protocol::keys::ContentKey;
use photomesh_protocol::record::{FileTime, MediaType, MoveRecord, PhotoRecord, Record, RecordId};

use crate::blob::sealed;
use crate::home::Home;
use crate::ignore::Selection;
use crate::index::{IndexError, LeftOut, ScanProblem, ScanSummary, SourceRow};
use crate::library::known::{Known, Passed};
use crate::library::media;
use crate::library::progress::{Progress, Silent};
use crate::original::NotAFile;

/// Why a scan stopped before it finished. Problems with single files do not stop a scan;
/// they are listed in its summary.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The index could not be written.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A record could not be sealed.
    #[error("sealing a record failed: {0}")]
    Record(#[from] photomesh_protocol::record::RecordError),
    /// This device holds no library key, so it cannot add photos.
    #[error("this device holds no library key and cannot add photos")]
    NoLibraryKey,
}

/// A file that needs hashing and sealing.
struct Candidate {
    folder: String,
    /// The folder's path.
    root: PathBuf,
    rel_path: String,
    abs_path: PathBuf,
    size: u64,
    mtime: FileTime,
    inode: u64,
    media_type: MediaType,
    previous: Option<RecordId>,
    /// The previous record's file was found gone (or released by `free-up-space`): back now.
    was_gone: bool,
}

/// What a worker learned about one file.
struct Sealed {
    candidate: Candidate,
    /// What the content is (the candidate's kind is what its name says).
    media_type: MediaType,
    plaintext_hash: [u8; 32],
    capture_time: Option<photomesh_protocol::record::CaptureTime>,
    summary: sealed::SealedSummary,
}

/// Records committed per index transaction.
const BATCH: usize = 256;
/// Most files a scan keeps in memory to read: a first scan of a million files walks its
/// folders twice rather than hold them all. (A handful in unit tests, so they cover both.)
const IN_MEMORY: usize = if cfg!(test) { 8 } else { 4096 };
/// Longest time between commits while work is flowing.
const BATCH_TIME: Duration = Duration::from_secs(2);

/// Scans every folder of `home` with the default ignore patterns, records what is new or
/// changed, and returns the summary (also stored in the index for `status`).
pub fn scan(home: &Home, progress: &mut dyn Progress) -> Result<ScanSummary, ScanError> {
    scan_selected(home, &Selection::default(), progress)
}

/// [`scan`] with the given ignore patterns (`[folders] ignore`).
pub fn scan_selected(
    home: &Home,
    selection: &Selection,
    progress: &mut dyn Progress,
) -> Result<ScanSummary, ScanError> {
    scan_skipping(home, selection, progress, &|_, _| false)
}

/// [`scan_selected`], leaving out the files for which `skip(folder_label, rel_path)` is true
/// (the watcher's files that are still being written). A skipped file is neither read nor
/// counted as missing.
pub fn scan_skipping(
    home: &Home,
    selection: &Selection,
    progress: &mut dyn Progress,
    skip: &dyn Fn(&str, &str) -> bool,
) -> Result<ScanSummary, ScanError> {
    // Checked before anything is written, so a device without the key leaves no scan behind.
    home.keys.current().ok_or(ScanError::NoLibraryKey)?;
    let started = now_ms();
    let scan_id = home.index.begin_scan(started)?;
    let mut summary = ScanSummary {
        started_at_ms: started,
        ..ScanSummary::default()
    };
    // The home may sit inside a folder (`~/photos/.photomesh`): its blob store is no photo.
    let home_dir = home.path.canonicalize().ok();
    let mut walk = Walk::new(selection, home_dir.as_deref());
    let mut kinds: std::collections::BTreeMap<&'static str, u64> = Default::default();
    let mut folders = Vec::new();
    for folder in home.index.folders()? {
        match fs::metadata(&folder.path) {
            Ok(m) if m.is_dir() => folders.push(folder),
            Ok(_) => walk.problems.push(problem(&folder.path, "is no longer a folder; nothing in it was scanned and nothing recorded from it was forgotten")),
            Err(e) => walk.problems.push(problem(
                &folder.path,
                &format!("{}; nothing in it was scanned and nothing recorded from it was forgotten (is the disk mounted?)", describe_io(&e)),
            )),
        }
    }

    // First pass: what is unchanged, missing or back, and what is to be read. The files to
    // read are kept only while they are few; past that the second pass walks again.
    let mut work = Some(Vec::new());
    let (mut to_read, mut bytes_to_read) = (0u64, 0u64);
    for folder in &folders {
        let (mut gone, mut missing) = (Vec::new(), 0);
        let mut passed = |p: Passed| -> Result<(), IndexError> {
            // Originals released by `free-up-space` are not there on purpose: not missing.
            if !p.released {
                missing += 1;
                if !p.row.gone {
                    gone.push(p.row.path);
                }
            }
            if gone.len() >= BATCH {
                mark_gone(home, &folder.label, &mut gone)?;
            }
            Ok(())
        };
        let mut known = Known::new(&home.index, &folder.label);
        let mut failed = None;
        walk.walk(&folder.path, &folder.path, &mut |abs, rel, meta| {
            if failed.is_some() {
                return;
            }
            let (was_gone, work_for) =
                match look(&mut known, folder, rel, abs, meta, skip, &mut passed) {
                    Ok(Some(looked)) => looked,
                    Ok(None) => return,
                    Err(e) => return failed = Some(e),
                };
            summary.files_seen += 1;
            *kinds
                .entry(media::type_from_extension(abs).name())
                .or_default() += 1;
            match work_for {
                Some(c) => {
                    to_read += 1;
                    bytes_to_read += c.size;
                    if let Some(w) = work.as_mut().filter(|w| w.len() < IN_MEMORY) {
                        w.push(c);
                    } else {
                        work = None;
                    }
                }
                None => {
                    summary.unchanged_files += 1;
                    if was_gone && let Err(e) = home.index.mark_source_back(&folder.label, rel) {
                        failed = Some(e);
                    }
                }
            }
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
        known.finish(&mut passed)?;
        mark_gone(home, &folder.label, &mut gone)?;
        summary.missing_files += missing;
    }
    summary.left_out = walk.left_out;
    summary.kinds = kinds.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();

    let mut problems = walk.problems;
    progress.start("scan", to_read, bytes_to_read);
    let mut recorder = Recorder::new(home, Some(scan_id), progress)?;
    match work {
        Some(work) => recorder.record(work, &mut summary, &mut problems)?,
        // Second pass: the same walk, reading its files a chunk at a time.
        None => {
            let mut walk = Walk::new(selection, home_dir.as_deref());
            let mut chunk = Vec::new();
            let mut failed = None;
            for folder in &folders {
                let mut known = Known::new(&home.index, &folder.label);
                walk.walk(&folder.path, &folder.path, &mut |abs, rel, meta| {
                    if failed.is_some() {
                        return;
                    }
                    let c = match look(&mut known, folder, rel, abs, meta, skip, &mut |_| Ok(())) {
                        Ok(Some((_, Some(c)))) => c,
                        Ok(_) => return,
                        Err(e) => return failed = Some(ScanError::from(e)),
                    };
                    chunk.push(c);
                    if chunk.len() >= IN_MEMORY
                        && let Err(e) =
                            recorder.record(std::mem::take(&mut chunk), &mut summary, &mut problems)
                    {
                        failed = Some(e);
                    }
                });
                if let Some(e) = failed.take() {
                    return Err(e);
                }
            }
            recorder.record(chunk, &mut summary, &mut problems)?;
        }
    }
    summary.finished_at_ms = Some(now_ms());
    recorder.finish(&mut summary, &mut problems)?;
    Ok(summary)
}

/// The walk's next file, `rel` in `folder`, against what the index recorded (`known`, which
/// hands the sources walked past to `passed`): `None` when `skip` leaves it out; else whether
/// its recorded original was found gone, and the work to read it if it is new or changed.
fn look(
    known: &mut Known<'_>,
    folder: &crate::index::Folder,
    rel: &str,
    abs: &Path,
    meta: &fs::Metadata,
    skip: &dyn Fn(&str, &str) -> bool,
    passed: &mut dyn FnMut(Passed) -> Result<(), IndexError>,
) -> Result<Option<(bool, Option<Candidate>)>, IndexError> {
    let previous = known.take(rel, passed)?;
    if skip(&folder.label, rel) {
        return Ok(None);
    }
    let work = candidate(
        &folder.label,
        &folder.path,
        rel,
        abs,
        meta,
        previous.as_ref(),
    );
    Ok(Some((previous.is_some_and(|p| p.gone), work)))
}

/// Marks the sources at `paths` of `folder` gone, and empties `paths`.
fn mark_gone(home: &Home, folder: &str, paths: &mut Vec<String>) -> Result<(), IndexError> {
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    home.index.mark_sources_gone(folder, &refs, now_ms())?;
    paths.clear();
    Ok(())
}

/// A file the watcher wants looked at: where it is, and which folder it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileToScan {
    /// The label of the folder it is in.
    pub folder: String,
    /// That folder's path.
    pub root: PathBuf,
    /// Its path relative to that folder, `/`-separated.
    pub rel_path: String,
    /// Its full path.
    pub abs_path: PathBuf,
}

/// Scans only the given files, with the same rules as [`scan`]: ignored files and
/// anything but a regular file are left out, unchanged ones are skipped, new and changed
/// ones get a new record (an older record of the same path is kept), and a file that has
/// vanished is skipped — nothing is ever forgotten. Problems with single files are returned
/// in the summary (and not stored as the last scan: `status` keeps showing the last full
/// scan).
pub fn scan_files(
    home: &Home,
    selection: &Selection,
    files: &[FileToScan],
) -> Result<ScanSummary, ScanError> {
    let mut summary = ScanSummary {
        started_at_ms: now_ms(),
        ..ScanSummary::default()
    };
    let mut problems = Vec::new();
    let mut work = Vec::new();
    for file in files {
        if selection.ignores_path(&file.rel_path) {
            summary.left_out.ignored += 1;
            continue;
        }
        let meta = match fs::symlink_metadata(&file.abs_path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                problems.push(problem(&file.abs_path, &describe_io(&e)));
                continue;
            }
        };
        match NotAFile::of(meta.file_type()) {
            None => {}
            Some(NotAFile::Directory) => continue,
            Some(NotAFile::Symlink) => {
                summary.left_out.symlinks += 1;
                continue;
            }
            Some(_) => {
                summary.left_out.not_regular += 1;
                continue;
            }
        }
        summary.files_seen += 1;
        let kind = media::type_from_extension(&file.abs_path);
        *summary.kinds.entry(kind.name().to_owned()).or_default() += 1;
        let previous = home.index.source(&file.folder, &file.rel_path)?;
        match candidate(
            &file.folder,
            &file.root,
            &file.rel_path,
            &file.abs_path,
            &meta,
            previous.as_ref(),
        ) {
            Some(c) => work.push(c),
            None => {
                summary.unchanged_files += 1;
                if previous.is_some_and(|p| p.gone) {
                    home.index.mark_source_back(&file.folder, &file.rel_path)?;
                }
            }
        }
    }
    seal_and_record(home, work, &mut summary, problems, &mut Silent)?;
    Ok(summary)
}

/// Notes that a file (or a folder, with every file under it) the watcher saw go is gone
/// from its folder: this device no longer holds that original (nothing is forgotten; a
/// running node fetches a copy of it if it holds every photo).
pub fn note_gone(home: &Home, folder: &str, rel_path: &str) -> Result<usize, IndexError> {
    home.index.mark_sources_gone(folder, &[rel_path], now_ms())
}

/// The work for one file, or `None` when its size, mtime and inode say it is unchanged since
/// `previous` was recorded.
fn candidate(
    folder: &str,
    root: &Path,
    rel: &str,
    abs: &Path,
    meta: &fs::Metadata,
    previous: Option<&SourceRow>,
) -> Option<Candidate> {
    let media_type = media::type_from_extension(abs);
    let mtime = FileTime {
        seconds: meta.mtime(),
        nanos: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
    };
    if let Some(p) = previous
        && p.size == meta.len()
        && p.mtime_s == mtime.seconds
        && p.mtime_ns == mtime.nanos
        && p.inode == meta.ino()
    {
        return None;
    }
    Some(Candidate {
        folder: folder.to_owned(),
        root: root.to_owned(),
        rel_path: rel.to_owned(),
        abs_path: abs.to_owned(),
        size: meta.len(),
        mtime,
        inode: meta.ino(),
        media_type,
        previous: previous.map(|p| p.record_id),
        was_gone: previous.is_some_and(|p| p.gone),
    })
}

/// Hashes and seals `work` on worker threads and commits the records in batches (problems
/// with single files go in the summary).
fn seal_and_record(
    home: &Home,
    work: Vec<Candidate>,
    summary: &mut ScanSummary,
    mut problems: Vec<ScanProblem>,
    progress: &mut dyn Progress,
) -> Result<(), ScanError> {
    progress.start("scan", work.len() as u64, work.iter().map(|c| c.size).sum());
    let mut recorder = Recorder::new(home, None, progress)?;
    recorder.record(work, summary, &mut problems)?;
    summary.finished_at_ms = Some(now_ms());
    recorder.finish(summary, &mut problems)
}

/// Seals candidates and records them, a chunk at a time, into one scan: with a `scan_id`,
/// problems and the running summary are stored as that scan's as they are committed.
struct Recorder<'a> {
    writer: Writer<'a>,
    progress: &'a mut dyn Progress,
}

/// What commits a scan's records.
#[derive(Clone, Copy)]
struct Writer<'a> {
    home: &'a Home,
    scan_id: Option<i64>,
    device: photomesh_protocol::identity::DeviceId,
    library_key: &'a photomesh_protocol::keys::LibraryKey,
}

impl<'a> Recorder<'a> {
    /// A recorder for `home`'s current library key; `progress` has been started.
    fn new(
        home: &'a Home,
        scan_id: Option<i64>,
        progress: &'a mut dyn Progress,
    ) -> Result<Self, ScanError> {
        Ok(Self {
            writer: Writer {
                home,
                scan_id,
                device: home.device.device_id(),
                library_key: home.keys.current().ok_or(ScanError::NoLibraryKey)?,
            },
            progress,
        })
    }

    /// Hashes and seals `work` on worker threads and commits the records in batches.
    fn record(
        &mut self,
        work: Vec<Candidate>,
        summary: &mut ScanSummary,
        problems: &mut Vec<ScanProblem>,
    ) -> Result<(), ScanError> {
        let writer = self.writer;
        let progress = &mut *self.progress;
        let content_key = writer.library_key.content_key();
        // A new file can only be a photo that moved if some recorded original is gone.
        let moves = writer.home.index.has_gone_sources()?;

        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(work.len().max(1));
        let queue = Mutex::new("the scan's work queue", work.into_iter());
        let (tx, rx) = mpsc::sync_channel::<Result<Sealed, ScanProblem>>(64);
        std::thread::scope(|s| -> Result<(), ScanError> {
            for _ in 0..threads {
                let tx = tx.clone();
                let queue = &queue;
                let content_key = &content_key;
                s.spawn(move || {
                    loop {
                        let next = queue.lock().next();
                        let Some(candidate) = next else { break };
                        if tx.send(seal_candidate(candidate, content_key)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut batch: Vec<Sealed> = Vec::new();
            let mut last_commit = Instant::now();
            for result in rx {
                match result {
                    Ok(item) => {
                        summary.bytes_read += item.candidate.size;
                        progress.advance(1, item.candidate.size);
                        batch.push(item);
                    }
                    Err(p) => {
                        progress.advance(1, 0);
                        problems.push(p);
                    }
                }
                if batch.len() >= BATCH || last_commit.elapsed() >= BATCH_TIME {
                    writer.commit(&mut batch, moves, summary, problems)?;
                    last_commit = Instant::now();
                }
            }
            writer.commit(&mut batch, moves, summary, problems)
        })
    }

    /// Stores the summary (its `finished_at_ms` set by the caller) and the last problems,
    /// and tells the mesh of originals that are back.
    fn finish(
        self,
        summary: &mut ScanSummary,
        problems: &mut Vec<ScanProblem>,
    ) -> Result<(), ScanError> {
        self.progress.finish();
        self.writer
            .commit(&mut Vec::new(), false, summary, problems)?;
        // A released original back in its folder is held again: the mesh hears of it.
        if let Err(e) = crate::mesh::trash::sync_releases(self.writer.home, now_ms()) {
            tracing::warn!("telling the mesh which originals are released: {e}");
        }
        Ok(())
    }
}

impl Writer<'_> {
    /// Writes `batch` into the index in one transaction, with the problems met since the last
    /// commit and the scan's running summary.
    fn commit(
        &self,
        batch: &mut Vec<Sealed>,
        moves: bool,
        summary: &mut ScanSummary,
        problems: &mut Vec<ScanProblem>,
    ) -> Result<(), ScanError> {
        let home = self.home;
        home.index.transaction(|ix| {
            for item in batch.iter() {
                record_sealed(
                    home,
                    ix,
                    item,
                    self.device,
                    self.library_key,
                    moves,
                    summary,
                )?;
            }
            for p in problems.drain(..) {
                if let Some(scan_id) = self.scan_id {
                    ix.add_scan_problem(scan_id, &p)?;
                }
                summary.problems.push(p);
            }
            if let Some(scan_id) = self.scan_id {
                ix.update_scan(scan_id, summary)?;
            }
            Ok::<_, ScanError>(())
        })?;
        batch.clear();
        Ok(())
    }
}

/// Writes one sealed file into the index (inside the caller's transaction).
fn record_sealed(
    home: &Home,
    ix: &crate::index::Index,
    item: &Sealed,
    device: photomesh_protocol::identity::DeviceId,
    library_key: &photomesh_protocol::keys::LibraryKey,
    moves: bool,
    summary: &mut ScanSummary,
) -> Result<(), ScanError> {
    let c = &item.candidate;
    let source = |record_id| SourceRow {
        path: c.rel_path.clone(),
        size: c.size,
        mtime_s: c.mtime.seconds,
        mtime_ns: c.mtime.nanos,
        inode: c.inode,
        record_id,
        gone: false,
    };
    // Same content under a new mtime or inode (touched, copied back): nothing new to record.
    if let Some(previous) = c.previous
        && ix.plaintext_hash_of(&previous)? == Some(item.plaintext_hash)
    {
        summary.unchanged_files += 1;
        ix.put_source(&c.folder, &source(previous))?;
        // Back (a released original restored to its place): held again.
        if c.was_gone {
            ix.bump_gone_version()?;
        }
        return Ok(());
    }
    // No source row, and the content is the photo recorded at this path now (the index was
    // rebuilt by `repair-index`, or the folder removed and added again): the file is that
    // photo, linked to its record again. Recording it anew would make a second record of it.
    if c.previous.is_none()
        && let Some((record_id, hash, blob_id)) = ix.current_photo_at(&c.folder, &c.rel_path)?
        && hash == item.plaintext_hash
    {
        // Sealed under the record's key epoch (the usual case), it is the record's blob: its
        // verification data may be gone with the old index.
        if blob_id == item.summary.blob_id {
            ix.add_blob(&blob_id, item.summary.sealed_len, &item.summary.outboard)?;
        }
        summary.unchanged_files += 1;
        return Ok(ix.put_source(&c.folder, &source(record_id))?);
    }
    let photo = PhotoRecord {
        folder: c.folder.clone(),
        path: c.rel_path.clone(),
        size: c.size,
        mtime: c.mtime,
        capture_time: item.capture_time,
        media_type: item.media_type,
        plaintext_hash: item.plaintext_hash,
        blob_id: item.summary.blob_id,
        blob_epoch: library_key.epoch(),
        added_by: device,
        created_at_ms: now_ms(),
    };
    let record = Record::Photo(photo.clone());
    let (record_id, sealed) = record.seal(library_key)?;
    ix.add_photo_record(&record_id, &sealed, &photo, &home.keys, now_ms())?;
    ix.add_blob(
        &item.summary.blob_id,
        item.summary.sealed_len,
        &item.summary.outboard,
    )?;
    if home.blobs.contains(&item.summary.blob_id) {
        ix.set_blob_stored(&item.summary.blob_id, true)?;
    }
    ix.put_source(&c.folder, &source(record_id))?;
    if c.previous.is_some() {
        summary.changed_files += 1;
        // The earlier version's content is no longer here: a running node's held set,
        // which had it, reloads.
        ix.bump_gone_version()?;
    } else if let Some((folder, from)) = moves
        .then(|| moved_from(ix, c, &item.plaintext_hash))
        .transpose()?
        .flatten()
    {
        let moved = Record::Move(MoveRecord {
            folder: folder.clone(),
            path: from.path.clone(),
            from: from.record_id,
            to: record_id,
            added_by: device,
            created_at_ms: now_ms(),
        });
        let (move_id, sealed) = moved.seal(library_key)?;
        if let Record::Move(m) = &moved {
            ix.add_move_record(&move_id, &sealed, m, now_ms())?;
        }
        ix.remove_source(&folder, &from.path)?;
        summary.moved_files += 1;
        summary.missing_files = summary.missing_files.saturating_sub(1);
    } else {
        summary.new_files += 1;
    }
    Ok(())
}

/// The recorded original that a new file is, moved: one with the same size and content
/// that is gone from its place (its folder is there, the file is not). Its folder label and
/// source row.
fn moved_from(
    ix: &crate::index::Index,
    c: &Candidate,
    plaintext_hash: &[u8; 32],
) -> Result<Option<(String, SourceRow)>, IndexError> {
    for (folder, root, row) in ix.sources_with_content(c.size, plaintext_hash)? {
        if folder == c.folder && row.path == c.rel_path {
            continue;
        }
        let gone = root.is_dir()
            && matches!(
                fs::symlink_metadata(root.join(&row.path)),
                Err(e) if e.kind() == io::ErrorKind::NotFound
            );
        if gone {
            return Ok(Some((folder, row)));
        }
    }
    Ok(None)
}

/// Hashes and seals one file (on a worker thread), read through one descriptor opened by
/// [`crate::original::open`]: a regular file inside its folder, or nothing.
fn seal_candidate(candidate: Candidate, content_key: &ContentKey) -> Result<Sealed, ScanProblem> {
    let path = candidate.abs_path.clone();
    let fail = |reason: String| ScanProblem {
        path: path.display().to_string(),
        reason,
    };
    let io = |e: io::Error| fail(describe_io(&e));
    let mut file = crate::original::open(&candidate.root, &candidate.rel_path).map_err(io)?;
    let mut head = [0u8; media::SNIFF_LEN];
    let head_len = read_up_to(&mut file, &mut head).map_err(io)?;
    // A file whose content is not what its name says is kept all the same, as what its
    // content is.
    let media_type = media::kind_of(candidate.media_type, &head[..head_len]);
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(BufReader::with_capacity(1 << 20, &file))
        .map_err(io)?;
    let plaintext_hash = *hasher.finalize().as_bytes();
    let capture_time = media::capture_time(&file, media_type);
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let summary = sealed::summarize(
        BufReader::with_capacity(1 << 20, &file),
        content_key,
        &plaintext_hash,
        candidate.size,
    )
    .map_err(io)?;
    // A file still being written, or rewritten while we read it, is left for the next scan.
    let after = file.metadata().map_err(io)?;
    if after.len() != candidate.size
        || after.mtime() != candidate.mtime.seconds
        || after.mtime_nsec() as u32 != candidate.mtime.nanos
        || after.ino() != candidate.inode
    {
        return Err(fail(
            "it changed while it was being read; it will be read again on the next scan".into(),
        ));
    }
    Ok(Sealed {
        candidate,
        media_type,
        plaintext_hash,
        capture_time,
        summary,
    })
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A walk through a folder: which files it takes, and what it leaves out and why.
pub(crate) struct Walk<'a> {
    /// The ignore patterns.
    pub selection: &'a Selection,
    /// A directory never entered (the home, when it sits inside a folder: its blob store
    /// is not a photo folder).
    pub skip_dir: Option<&'a Path>,
    /// Directories and files that could not be read.
    pub problems: Vec<ScanProblem>,
    /// What was left out, counted by reason.
    pub left_out: LeftOut,
}

impl<'a> Walk<'a> {
    pub(crate) fn new(selection: &'a Selection, skip_dir: Option<&'a Path>) -> Self {
        Self {
            selection,
            skip_dir,
            problems: Vec::new(),
            left_out: LeftOut::default(),
        }
    }

    /// Walks `dir` (inside `root`) depth-first in path order, calling `visit` for every
    /// regular file that is not ignored, with its path relative to `root` (`/`-separated).
    /// Symbolic links are never followed, and neither they nor FIFOs, sockets and devices
    /// are visited: they are counted in [`Walk::left_out`]. Unreadable directories are
    /// problems, and skipped.
    pub(crate) fn walk(
        &mut self,
        root: &Path,
        dir: &Path,
        visit: &mut dyn FnMut(&Path, &str, &fs::Metadata),
    ) {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                self.problems.push(problem(dir, &describe_io(&e)));
                return;
            }
        };
        // In the byte order of the paths they lead to, the index's order (`library::known`):
        // a directory sorts as its name with a `/` after it, so `a.jpg` comes before `a/`.
        let mut entries: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| {
                let mut key = e.file_name().into_encoded_bytes();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    key.push(b'/');
                }
                (key, e)
            })
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let entries = entries.into_iter().map(|(_, e)| e);
        for entry in entries {
            let path = entry.path();
            let Some(rel) = relative_text(root, &path) else {
                self.problems.push(problem(
                    &path,
                    "its name is not valid UTF-8; rename it to have it backed up",
                ));
                continue;
            };
            if self.selection.ignores(&rel) {
                self.left_out.ignored += 1;
                continue;
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.problems.push(problem(&path, &describe_io(&e)));
                    continue;
                }
            };
            match NotAFile::of(meta.file_type()) {
                None => visit(&path, &rel, &meta),
                Some(NotAFile::Directory) if Some(path.as_path()) == self.skip_dir => {}
                Some(NotAFile::Directory) => self.walk(root, &path, visit),
                Some(NotAFile::Symlink) => self.left_out.symlinks += 1,
                Some(_) => self.left_out.not_regular += 1,
            }
        }
    }
}

/// `path` relative to `root`, `/`-separated, if it is under `root` and valid UTF-8.
pub(crate) fn relative_text(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    Some(parts?.join("/"))
}

fn problem(path: &Path, reason: &str) -> ScanProblem {
    ScanProblem {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    }
}

/// A plain-words description of an I/O error.
pub fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "it no longer exists".into(),
        io::ErrorKind::PermissionDenied => {
            "permission denied: photomesh's user cannot read it".into()
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::progress::Silent;

    #[test]
    fn a_rescan_counts_new_changed_unchanged_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::mesh::create_device(&dir.path().join("home"), "laptop", None, 1).unwrap();
        let photos = dir.path().join("photos");
        let files = crate::demo::samples::write_library(&photos, 3, 4).unwrap();
        crate::library::folders::add(&home, &photos, None).unwrap();
        let first = scan(&home, &mut Silent).unwrap();
        assert_eq!((first.files_seen, first.new_files), (5, 5));

        let mut longer = fs::read(&files[0]).unwrap();
        longer.extend_from_slice(b"edited");
        fs::write(&files[0], longer).unwrap();
        fs::remove_file(&files[1]).unwrap();
        let png = crate::demo::samples::png_like(&mut crate::demo::samples::Rng::new(8), 5_000);
        fs::write(photos.join("new.png"), png).unwrap();
        let second = scan(&home, &mut Silent).unwrap();
        assert_eq!(
            (
                second.new_files,
                second.changed_files,
                second.unchanged_files,
                second.missing_files
            ),
            (1, 1, 3, 1),
            "{second:?}"
        );
        assert!(second.problems.is_empty(), "{:?}", second.problems);
    }

    #[test]
    fn a_file_already_recorded_at_its_path_is_linked_to_its_record_not_recorded_again() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::mesh::create_device(&dir.path().join("home"), "laptop", None, 1).unwrap();
        let photos = dir.path().join("photos");
        let files = crate::demo::samples::write_library(&photos, 3, 5).unwrap();
        crate::library::folders::add(&home, &photos, None).unwrap();
        scan(&home, &mut Silent).unwrap();
        let records = home.index.record_count().unwrap();
        // The folder's source rows are forgotten (as after `repair-index`), and one file
        // is edited meanwhile.
        home.index.remove_folder("photos").unwrap();
        crate::library::folders::add(&home, &photos, None).unwrap();
        let mut longer = fs::read(&files[0]).unwrap();
        longer.extend_from_slice(b"edited");
        fs::write(&files[0], longer).unwrap();
        let again = scan(&home, &mut Silent).unwrap();
        assert_eq!(
            (again.new_files, again.unchanged_files),
            (1, 4),
            "{again:?}"
        );
        assert_eq!(home.index.record_count().unwrap(), records + 1);
        // Linked: the next scan reads nothing.
        let third = scan(&home, &mut Silent).unwrap();
        assert_eq!(
            (third.unchanged_files, third.bytes_read),
            (5, 0),
            "{third:?}"
        );
    }

    #[test]
    fn a_walk_in_path_order_finds_every_file_and_every_missing_one_past_the_memory_limit() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::mesh::create_device(&dir.path().join("home"), "laptop", None, 1).unwrap();
        let photos = dir.path().join("photos");
        // Names whose byte order differs from a walk in plain name order: `a.jpg` < `a/…`
        // < `a0.jpg`, `b-/…` < `b.jpg`; and more files than a scan keeps in memory.
        let mut names = vec![
            "a.jpg",
            "a/x.jpg",
            "a/y/z.jpg",
            "a0.jpg",
            "b-/c.jpg",
            "b.jpg",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        names.extend((0..3 * IN_MEMORY).map(|i| format!("many/{i}.jpg")));
        for (i, name) in names.iter().enumerate() {
            let path = photos.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, format!("\u{ff}\u{d8} photo {i}")).unwrap();
        }
        crate::library::folders::add(&home, &photos, None).unwrap();
        let before = home.index.record_count().unwrap() as u64;
        let first = scan(&home, &mut Silent).unwrap();
        let n = names.len() as u64;
        assert_eq!((first.files_seen, first.new_files), (n, n), "{first:?}");
        assert_eq!(home.index.record_count().unwrap() as u64, before + n);

        for gone in ["a/y/z.jpg", "a0.jpg", "b.jpg", "many/3.jpg"] {
            fs::remove_file(photos.join(gone)).unwrap();
        }
        fs::write(photos.join("a/new.jpg"), "new").unwrap();
        let second = scan(&home, &mut Silent).unwrap();
        assert_eq!(
            (
                second.new_files,
                second.unchanged_files,
                second.missing_files,
                second.bytes_read
            ),
            (1, n - 4, 4, 3),
            "{second:?}"
        );
        // Nothing marked gone that is there: the next scan finds the same four missing.
        let third = scan(&home, &mut Silent).unwrap();
        assert_eq!((third.unchanged_files, third.missing_files), (n - 3, 4));
    }
}
