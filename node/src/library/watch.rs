//! Watched folders: a photo written into a folder is recorded within moments of being
//! complete, and never half-way.
//!
//! [`run`] watches every folder of the home recursively with inotify (through `notify`),
//! follows folders added or removed while it runs, and turns events into *pending* files.
//! A pending file is scanned — with the scanner's own rules, through
//! [`scan::scan_files`] — only once it is complete:
//!
//! - **closed after writing**: inotify's close-after-write, or a rename into place (the way
//!   phones, `rsync` and Syncthing finish a file written under a temporary name), followed by
//!   [`WatchOptions::close_grace`] without further events. The grace lets a rename that
//!   follows a close land first, so a temporary name is never recorded, and gathers a burst
//!   of files into one batch.
//! - **settled**: for a file that changed without a writer we saw open it (a `touch`, a hard
//!   link, a file already inside a folder that was moved in), once its size, mtime and inode
//!   have stayed the same for [`WatchOptions::settle`].
//! - a file a writer still holds open (created or written, not yet closed) waits for the
//!   close. Only if it stays unchanged for [`WatchOptions::open_writer_timeout`] is it
//!   scanned anyway — a writer that keeps a finished file open forever must not keep a photo
//!   out of the backup. Pauses shorter than that, however many, never get a file recorded
//!   half-way.
//!
//! On top, the scanner rereads size and mtime after hashing and drops a file that changed
//! while it was read. After each batch that recorded something, `on_recorded(count)` is
//! called (the daemon announces the new records to its peers).
//!
//! A full rescan runs at start (after the watches are in place, so nothing falls between
//! them), every [`WatchOptions::rescan_every`], when a folder is added, and when the kernel
//! says it dropped events (inotify queue overflow) or a watch could not be set. It leaves out
//! the files still pending here. A vanished file deletes nothing, as in any scan.
//!
//! The watcher never takes the node down: an error is logged and the work retried later. It
//! runs on a thread of its own with its own connection to the index, and stops when the
//! future returned by [`run`] is dropped.
//!
//! Architecture Invariant: a file is recorded only once it is complete — closed by its
//! writer, renamed into place, or unchanged for the settle period with no writer holding it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};

use crate::home::{Home, HomeError};
use crate::ignore::Selection;
use crate::index::Folder;
use crate::library::progress::Silent;
use crate::library::scan::{self, FileToScan};

/// How the watcher waits and how often it rescans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// Time between full rescans, which catch what the watcher missed. Default: 1 hour.
    pub rescan_every: Duration,
    /// Quiet time after a file is closed or renamed into place before it is scanned.
    /// Default: 100 ms.
    pub close_grace: Duration,
    /// How long a file that no writer holds open must keep its size, mtime and inode before
    /// it is scanned. Default: 400 ms.
    pub settle: Duration,
    /// How long a file a writer still holds open must stay unchanged before it is scanned
    /// anyway. Default: 30 s.
    pub open_writer_timeout: Duration,
    /// What is not backed up (`[folders] ignore`). Default: the default patterns.
    pub selection: Selection,
    /// What a deletion in a watched folder means (`[watch] deletions`). Default: keep.
    pub deletions: crate::home::config::Deletions,
    /// How long the trash keeps what a mirrored deletion puts there (for what is said).
    pub trash_retention: Duration,
}

/// How long after a file went from a watched folder its deletion is mirrored to the trash
/// (`[watch] deletions = "trash"`): a file that was moved, not deleted, has arrived at its
/// new place by then and is recorded as moved.
pub const MIRROR_AFTER: Duration = Duration::from_secs(3);

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            rescan_every: Duration::from_secs(3600),
            close_grace: Duration::from_millis(100),
            settle: Duration::from_millis(400),
            open_writer_timeout: Duration::from_secs(30),
            selection: Selection::default(),
            deletions: crate::home::config::Deletions::Keep,
            trash_retention: crate::home::config::DEFAULT_TRASH_RETENTION,
        }
    }
}

/// Why the watcher could not start or stopped. Once running, it logs errors and retries
/// rather than stopping.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The home could not be opened.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// inotify could not be started (too many inotify instances for this user?).
    #[error(
        "watching folders could not start: {0} (raise fs.inotify.max_user_instances, or rely on the scheduled rescans)"
    )]
    Notify(#[from] notify::Error),
    /// The watcher's thread could not be started or ended without saying why.
    #[error("the folder watcher's thread failed: {0}")]
    Thread(String),
}

/// Watches the folders of the home at `home_path` until the returned future is dropped,
/// calling `on_recorded(count)` after each batch that recorded `count` new or changed files.
pub async fn run(
    home_path: PathBuf,
    options: WatchOptions,
    on_recorded: impl Fn(usize) + Send + Sync + 'static,
) -> Result<(), WatchError> {
    let (inbox, messages) = mpsc::sync_channel(EVENT_QUEUE);
    let flags = Arc::new(Flags::default());
    let stop = StopOnDrop {
        inbox: inbox.clone(),
        flags: flags.clone(),
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("photomesh-watch".into())
        .spawn(move || {
            let result = watch_thread(&home_path, options, &on_recorded, inbox, messages, &flags);
            let _ = done_tx.send(result);
        })
        .map_err(|e| WatchError::Thread(e.to_string()))?;
    let result = done_rx
        .await
        .unwrap_or_else(|_| Err(WatchError::Thread("it panicked".into())));
    drop(stop);
    result
}

/// What the watcher thread's inbox receives.
enum Message {
    /// An event (or error) from inotify.
    Event(notify::Result<Event>),
    /// The future of [`run`] was dropped.
    Stop,
}

/// What the watcher thread is told outside its (bounded) inbox.
#[derive(Debug, Default)]
struct Flags {
    /// [`run`]'s future was dropped.
    stop: AtomicBool,
    /// The inbox was full and events were dropped: rescan, as on a kernel overflow.
    lost: AtomicBool,
}

/// Tells the watcher thread to stop when [`run`]'s future is dropped.
struct StopOnDrop {
    inbox: SyncSender<Message>,
    flags: Arc<Flags>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.flags.stop.store(true, Ordering::SeqCst);
        // Wakes the thread if it sleeps; if the inbox is full it is awake anyway.
        let _ = self.inbox.try_send(Message::Stop);
    }
}

/// Events held for the thread while it is busy (a long rescan). Past this, events are
/// dropped and a rescan is made instead, so memory stays bounded during a large copy.
const EVENT_QUEUE: usize = 65_536;

/// After a failed scan, how long before trying again.
const RETRY: Duration = Duration::from_secs(2);
/// After a failed full rescan or watch, how long before trying again.
const RESCAN_RETRY: Duration = Duration::from_secs(30);
/// How often the folder list is checked for changes.
const FOLDER_CHECK: Duration = Duration::from_millis(500);
/// How often pending files are looked at while some are waiting.
const TICK: Duration = Duration::from_millis(50);

fn watch_thread(
    home_path: &Path,
    options: WatchOptions,
    on_recorded: &dyn Fn(usize),
    inbox: SyncSender<Message>,
    messages: Receiver<Message>,
    flags: &Arc<Flags>,
) -> Result<(), WatchError> {
    let mut state = State::new(home_path, options, inbox, flags.clone())?;
    tracing::debug!(home = %home_path.display(), "folder watcher started");
    loop {
        let now = Instant::now();
        state.check_folders(now);
        // Take in what happened while we were busy before deciding what is complete.
        while let Ok(message) = messages.try_recv() {
            match message {
                Message::Stop => return Ok(()),
                Message::Event(event) => state.handle(event, Instant::now()),
            }
        }
        if flags.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if flags.lost.swap(false, Ordering::SeqCst) {
            state.handle(
                Ok(Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan)),
                Instant::now(),
            );
        }
        state.work(on_recorded);
        let wait = state.next_wakeup(Instant::now());
        match messages.recv_timeout(wait) {
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
            Ok(Message::Event(event)) => state.handle(event, Instant::now()),
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Size, mtime and inode: what says a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    size: u64,
    mtime_s: i64,
    mtime_ns: i64,
    inode: u64,
}

impl Stat {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_s: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
            inode: meta.ino(),
        }
    }
}

/// A file waiting to be complete.
#[derive(Debug, Clone)]
struct Pending {
    file: FileToScan,
    /// A writer has it open: it was created or written, and not closed since.
    writing: bool,
    /// Its writer closed it, or it was renamed into place, after the last write.
    closed: bool,
    /// When the last event about it arrived.
    last_event: Instant,
    /// Its size, mtime and inode when last looked at, and since when they are unchanged.
    stat: Option<(Stat, Instant)>,
}

impl Pending {
    fn new(file: FileToScan, now: Instant) -> Self {
        Self {
            file,
            writing: false,
            closed: false,
            last_event: now,
            stat: None,
        }
    }

    /// Whether the file counts as complete at `now`.
    fn is_complete(&self, now: Instant, options: &WatchOptions) -> bool {
        let stable_for = |d: Duration| {
            self.stat
                .is_some_and(|(_, since)| now.saturating_duration_since(since) >= d)
        };
        if self.writing {
            stable_for(options.open_writer_timeout)
                && now.saturating_duration_since(self.last_event) >= options.open_writer_timeout
        } else if self.closed {
            now.saturating_duration_since(self.last_event) >= options.close_grace
        } else {
            stable_for(options.settle)
                && now.saturating_duration_since(self.last_event) >= options.settle
        }
    }

    /// When it could next become complete, if nothing happens.
    fn due(&self, options: &WatchOptions) -> Instant {
        if self.closed && !self.writing {
            self.last_event + options.close_grace
        } else {
            // Needs polling of its stat; the tick does that.
            self.last_event
        }
    }

    /// Records a fresh look at the file's metadata.
    fn observe(&mut self, stat: Stat, now: Instant) {
        match self.stat {
            Some((old, _)) if old == stat => {}
            _ => self.stat = Some((stat, now)),
        }
    }
}

/// What an event means for the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Events were lost: rescan everything.
    Rescan,
    /// A file was created: a writer holds it open, unless it is a new hard link.
    Created(PathBuf),
    /// A file was written: a writer holds it open.
    Writing(PathBuf),
    /// A file's writer closed it.
    Closed(PathBuf),
    /// A file or a folder arrived under this name by a rename.
    MovedIn(PathBuf),
    /// A folder was created.
    FolderCreated(PathBuf),
    /// A file's metadata changed (touch, chmod).
    Touched(PathBuf),
    /// A file went away from this name.
    Gone(PathBuf),
    /// Nothing to do (opens, reads, our own scanning).
    Ignore,
}

/// What `event` means (pure, so it can be tested without a kernel).
fn classify(event: &Event) -> Vec<Action> {
    if event.need_rescan() {
        return vec![Action::Rescan];
    }
    let each = |f: fn(PathBuf) -> Action| event.paths.iter().cloned().map(f).collect();
    match event.kind {
        EventKind::Create(CreateKind::Folder) => each(Action::FolderCreated),
        EventKind::Create(_) => each(Action::Created),
        EventKind::Modify(ModifyKind::Data(_)) => each(Action::Writing),
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => each(Action::Closed),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => each(Action::MovedIn),
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => each(Action::Gone),
        EventKind::Modify(ModifyKind::Metadata(_)) => each(Action::Touched),
        EventKind::Remove(_) => each(Action::Gone),
        _ => vec![Action::Ignore],
    }
}

/// Whether an event from notify is worth waking the watcher's thread for. notify watches
/// every open of a file too (inotify `IN_OPEN`): the node opening originals to serve them,
/// the scanner reading them. Those are no news: dropped on notify's thread, they cost no
/// wake-up of ours (in the replication bench, one per blob served).
fn worth_waking_for(event: &notify::Result<Event>) -> bool {
    !matches!(event, Ok(e) if matches!(e.kind, EventKind::Access(AccessKind::Open(_))))
}

/// The watcher's state, owned by its thread.
struct State {
    home_path: PathBuf,
    home: Home,
    keys_mtime: Option<SystemTime>,
    watcher: notify::RecommendedWatcher,
    options: WatchOptions,
    /// Folders being watched, by label; `None` when watching failed and must be retried.
    watched: BTreeMap<String, (PathBuf, Option<Instant>)>,
    /// The index's `data_version` when the folder list was last read.
    folders_version: Option<i64>,
    next_folder_check: Instant,
    next_rescan: Instant,
    /// Set after a failed batch: pending files wait until then.
    scan_retry_at: Option<Instant>,
    pending: HashMap<PathBuf, Pending>,
    /// Originals were found gone since the last announcement: the node is told, so that it
    /// fetches copies of them (it no longer holds them).
    gone_unannounced: bool,
    /// Deletions to mirror to the trash once [`MIRROR_AFTER`] has passed: folder, path, when.
    to_trash: Vec<(String, String, Instant)>,
}

impl State {
    /// Opens the home and starts inotify, with events going to `inbox` (and `flags.lost` set
    /// when it is full). Nothing is watched
    /// until the first [`State::check_folders`].
    fn new(
        home_path: &Path,
        options: WatchOptions,
        inbox: SyncSender<Message>,
        flags: Arc<Flags>,
    ) -> Result<Self, WatchError> {
        let home = Home::open(home_path)?;
        // Symbolic links are not followed, as the scanner does not follow them.
        let watcher = notify::RecommendedWatcher::new(
            move |event: notify::Result<Event>| {
                if !worth_waking_for(&event) {
                    return;
                }
                if let Err(mpsc::TrySendError::Full(_)) = inbox.try_send(Message::Event(event)) {
                    flags.lost.store(true, Ordering::SeqCst);
                }
            },
            notify::Config::default().with_follow_symlinks(false),
        )?;
        let now = Instant::now();
        Ok(Self {
            keys_mtime: keys_mtime(home_path),
            home_path: home_path.to_owned(),
            home,
            watcher,
            options,
            watched: BTreeMap::new(),
            folders_version: None,
            next_folder_check: now,
            next_rescan: now,
            scan_retry_at: None,
            pending: HashMap::new(),
            gone_unannounced: false,
            to_trash: Vec::new(),
        })
    }

    /// Does what is due: a full rescan, then the pending files that are complete.
    fn work(&mut self, on_recorded: &dyn Fn(usize)) {
        if std::mem::take(&mut self.gone_unannounced) {
            on_recorded(0);
        }
        if Instant::now() >= self.next_rescan {
            self.full_rescan(on_recorded);
        }
        self.scan_ready(Instant::now(), on_recorded);
        self.mirror_deletions(Instant::now(), on_recorded);
    }

    /// Puts in the trash what went from the folders [`MIRROR_AFTER`] ago and is still gone.
    fn mirror_deletions(&mut self, now: Instant, on_recorded: &dyn Fn(usize)) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.to_trash)
            .into_iter()
            .partition(|(_, _, at)| *at <= now);
        self.to_trash = later;
        for (folder, path, _) in due {
            match crate::library::trash::mirror_deletion(
                &self.home,
                &folder,
                &path,
                self.options.trash_retention,
            ) {
                Ok(Some(done)) => {
                    tracing::info!(
                        %folder,
                        "{} deleted from {path} put in the mesh's trash ([watch] deletions = \"trash\")",
                        done.photos.len()
                    );
                    on_recorded(0);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("putting {folder}/{path} in the trash failed: {e}"),
            }
        }
    }

    /// Follows the index's folder list: watches new folders, unwatches removed ones, and
    /// retries folders that could not be watched.
    fn check_folders(&mut self, now: Instant) {
        if now < self.next_folder_check {
            return;
        }
        self.next_folder_check = now + FOLDER_CHECK;
        let version = match self.home.index.data_version() {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!("watched folders: reading the index failed: {e}");
                return;
            }
        };
        let retry_due = self
            .watched
            .values()
            .any(|(_, failed)| failed.is_some_and(|at| now >= at));
        if version == self.folders_version && !retry_due {
            return;
        }
        let folders = match self.home.index.folders() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("watched folders: reading the folder list failed: {e}");
                return;
            }
        };
        self.folders_version = version;
        let mut added = false;
        let current: BTreeMap<&str, &Folder> =
            folders.iter().map(|f| (f.label.as_str(), f)).collect();
        let gone: Vec<String> = self
            .watched
            .iter()
            .filter(|(label, (path, _))| current.get(label.as_str()).map(|f| &f.path) != Some(path))
            .map(|(label, _)| label.clone())
            .collect();
        for label in gone {
            if let Some((path, failed)) = self.watched.remove(&label) {
                if failed.is_none() {
                    let _ = self.watcher.unwatch(&path);
                }
                self.pending.retain(|_, p| p.file.folder != label);
                tracing::info!(folder = %label, "no longer watching {}", path.display());
            }
        }
        for folder in folders {
            let retry = match self.watched.get(&folder.label) {
                None => true,
                Some((_, failed)) => failed.is_some_and(|at| now >= at),
            };
            if !retry {
                continue;
            }
            match self.watcher.watch(&folder.path, RecursiveMode::Recursive) {
                Ok(()) => {
                    tracing::info!(folder = %folder.label, "watching {}", folder.path.display());
                    self.watched.insert(folder.label, (folder.path, None));
                    added = true;
                }
                Err(e) => {
                    tracing::warn!(
                        folder = %folder.label,
                        "cannot watch {}: {e}; trying again in {}s, and the scheduled rescans still cover it",
                        folder.path.display(),
                        RESCAN_RETRY.as_secs()
                    );
                    self.watched
                        .insert(folder.label, (folder.path, Some(now + RESCAN_RETRY)));
                }
            }
        }
        if added {
            // Whatever is already in a newly watched folder is found by a rescan.
            self.next_rescan = now;
        }
    }

    /// Which folder `path` is in, and its `FileToScan` there, if it is a visible photo or
    /// video name inside a watched folder.
    fn file_at(&self, path: &Path) -> Option<FileToScan> {
        let (label, root) = self
            .watched
            .iter()
            .filter(|(_, (root, _))| path.starts_with(root))
            .max_by_key(|(_, (root, _))| root.components().count())
            .map(|(label, (root, _))| (label, root))?;
        let rel_path = scan::relative_text(root, path)?;
        if rel_path.is_empty() || self.options.selection.ignores_path(&rel_path) {
            return None;
        }
        Some(FileToScan {
            folder: label.clone(),
            root: root.clone(),
            rel_path,
            abs_path: path.to_owned(),
        })
    }

    fn pending_at(&mut self, path: &Path, now: Instant) -> Option<&mut Pending> {
        if !self.pending.contains_key(path) {
            let file = self.file_at(path)?;
            self.pending
                .insert(path.to_owned(), Pending::new(file, now));
        }
        let pending = self.pending.get_mut(path)?;
        pending.last_event = now;
        Some(pending)
    }

    /// Takes in one event.
    fn handle(&mut self, event: notify::Result<Event>, now: Instant) {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("watching folders: {e}; a rescan will catch what was missed");
                self.next_rescan = self.next_rescan.min(now + RETRY);
                return;
            }
        };
        tracing::trace!(?event, "watch event");
        for action in classify(&event) {
            match action {
                Action::Rescan => {
                    tracing::info!("the kernel dropped file events (queue overflow); rescanning");
                    self.next_rescan = now;
                }
                Action::Created(path) => {
                    // `link()` raises the same event as `creat()`, but no writer holds a new
                    // hard link open and no close will follow: let it settle instead.
                    let hard_link = fs::symlink_metadata(&path).is_ok_and(|m| m.nlink() > 1);
                    if let Some(p) = self.pending_at(&path, now) {
                        p.writing = !hard_link;
                        p.closed = false;
                    }
                }
                Action::Writing(path) => {
                    if let Some(p) = self.pending_at(&path, now) {
                        p.writing = true;
                        p.closed = false;
                    }
                }
                Action::Closed(path) => {
                    if let Some(p) = self.pending_at(&path, now) {
                        p.writing = false;
                        p.closed = true;
                    }
                }
                Action::MovedIn(path) => {
                    if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                        self.add_tree(&path, now);
                    } else if let Some(p) = self.pending_at(&path, now) {
                        // A name a writer finished under another name: complete.
                        p.writing = false;
                        p.closed = true;
                    }
                }
                Action::FolderCreated(path) => self.add_tree(&path, now),
                Action::Touched(path) => {
                    self.pending_at(&path, now);
                }
                Action::Gone(path) => {
                    self.pending.remove(&path);
                    self.lost_root(&path, now);
                    self.note_gone(&path);
                }
                Action::Ignore => {}
            }
        }
    }

    /// A file or folder went from a watched folder: its originals are no longer held here.
    fn note_gone(&mut self, path: &Path) {
        let Some(file) = self.file_at(path) else {
            return;
        };
        match scan::note_gone(&self.home, &file.folder, &file.rel_path) {
            Ok(0) => {}
            Ok(n) => {
                self.gone_unannounced = true;
                let root_there = self
                    .watched
                    .get(&file.folder)
                    .is_some_and(|(root, _)| root.is_dir());
                if self.options.deletions == crate::home::config::Deletions::Trash && root_there {
                    self.to_trash.push((
                        file.folder.clone(),
                        file.rel_path.clone(),
                        Instant::now() + MIRROR_AFTER,
                    ));
                }
                tracing::info!(
                folder = %file.folder,
                    "{n} recorded original(s) gone from {}; copies are kept and fetched",
                    path.display()
                )
            }
            Err(e) => tracing::warn!("noting that {} is gone failed: {e}", path.display()),
        }
    }

    /// When a watched folder itself went away (deleted, moved, unmounted), its watch is gone
    /// with it: watch it again once it is back.
    fn lost_root(&mut self, path: &Path, now: Instant) {
        for (label, (root, failed)) in &mut self.watched {
            if root == path && failed.is_none() {
                let _ = self.watcher.unwatch(root);
                *failed = Some(now + RESCAN_RETRY);
                tracing::warn!(folder = %label, "{} went away; watching it again when it is back", root.display());
            }
        }
    }

    /// Makes every file under a new folder pending: files written into it before its watch
    /// was set raise no events of their own.
    fn add_tree(&mut self, dir: &Path, now: Instant) {
        let Some(root) = self
            .watched
            .values()
            .map(|(root, _)| root)
            .filter(|root| dir.starts_with(root))
            .max_by_key(|root| root.components().count())
            .cloned()
        else {
            return;
        };
        let mut found = Vec::new();
        let home_dir = self.home_path.canonicalize().ok();
        let mut walk = scan::Walk::new(&self.options.selection, home_dir.as_deref());
        walk.walk(&root, dir, &mut |abs, _, _| found.push(abs.to_owned()));
        for p in walk.problems {
            tracing::warn!("watched folders: {}: {}", p.path, p.reason);
        }
        for path in found {
            self.pending_at(&path, now);
        }
    }

    /// Scans the pending files that are complete, as one batch.
    fn scan_ready(&mut self, now: Instant, on_recorded: &dyn Fn(usize)) {
        if self.scan_retry_at.is_some_and(|at| now < at) {
            return;
        }
        let mut vanished = Vec::new();
        for (path, pending) in &mut self.pending {
            if pending.closed && !pending.writing {
                continue;
            }
            match fs::symlink_metadata(path) {
                Ok(meta) if meta.is_file() => pending.observe(Stat::of(&meta), now),
                _ => vanished.push(path.clone()),
            }
        }
        for path in vanished {
            self.pending.remove(&path);
        }
        let mut ready: Vec<FileToScan> = self
            .pending
            .values()
            .filter(|p| p.is_complete(now, &self.options))
            .map(|p| p.file.clone())
            .collect();
        if ready.is_empty() {
            return;
        }
        ready.sort_by(|a, b| a.abs_path.cmp(&b.abs_path));
        self.refresh_home();
        match scan::scan_files(&self.home, &self.options.selection, &ready) {
            Ok(summary) => {
                self.scan_retry_at = None;
                for file in &ready {
                    self.pending.remove(&file.abs_path);
                }
                for p in &summary.problems {
                    tracing::warn!("not recorded: {}: {}", p.path, p.reason);
                }
                let recorded = (summary.new_files + summary.changed_files) as usize;
                tracing::debug!(
                    files = ready.len(),
                    recorded,
                    "watched folders: scanned complete files"
                );
                if recorded > 0 {
                    on_recorded(recorded);
                }
            }
            Err(e) => {
                tracing::warn!(
                    "watched folders: recording {} files failed: {e}; trying again in {}s",
                    ready.len(),
                    RETRY.as_secs()
                );
                self.scan_retry_at = Some(now + RETRY);
            }
        }
    }

    /// Scans every folder, leaving out the files still pending here.
    fn full_rescan(&mut self, on_recorded: &dyn Fn(usize)) {
        self.refresh_home();
        let pending: HashSet<(&str, &str)> = self
            .pending
            .values()
            .map(|p| (p.file.folder.as_str(), p.file.rel_path.as_str()))
            .collect();
        let started = Instant::now();
        let selection = &self.options.selection;
        let result = scan::scan_skipping(&self.home, selection, &mut Silent, &|folder, rel| {
            pending.contains(&(folder, rel))
        });
        let now = Instant::now();
        match result {
            Ok(summary) => {
                self.next_rescan = now + self.options.rescan_every;
                let recorded = (summary.new_files + summary.changed_files) as usize;
                tracing::info!(
                    seen = summary.files_seen,
                    recorded,
                    problems = summary.problems.len(),
                    "rescan of the watched folders took {:.1}s",
                    (now - started).as_secs_f64()
                );
                if recorded > 0 {
                    on_recorded(recorded);
                }
            }
            Err(e) => {
                tracing::warn!(
                    "rescan of the watched folders failed: {e}; trying again in {}s",
                    RESCAN_RETRY.as_secs()
                );
                self.next_rescan = now + RESCAN_RETRY;
            }
        }
    }

    /// Reopens the home if its library keys changed (a rotation after a revocation), so new
    /// photos are sealed with the current key; also after the key first arrives.
    fn refresh_home(&mut self) {
        let mtime = keys_mtime(&self.home_path);
        if mtime == self.keys_mtime {
            return;
        }
        match Home::open(&self.home_path) {
            Ok(home) => {
                tracing::debug!("watched folders: library keys changed; reopened the home");
                self.home = home;
                self.keys_mtime = mtime;
            }
            Err(e) => tracing::warn!("watched folders: reopening the home failed: {e}"),
        }
    }

    /// How long the thread may sleep before something is due.
    fn next_wakeup(&self, now: Instant) -> Duration {
        let mut next = self.next_folder_check.min(self.next_rescan);
        let pending = self
            .pending
            .values()
            .map(|p| p.due(&self.options).max(now + TICK))
            .min();
        if let Some(mut at) = pending {
            if let Some(retry) = self.scan_retry_at {
                at = at.max(retry);
            }
            next = next.min(at);
        }
        if let Some(at) = self.to_trash.iter().map(|(_, _, at)| *at).min() {
            next = next.min(at.max(now + TICK));
        }
        next.saturating_duration_since(now)
    }
}

/// When the library key file last changed.
fn keys_mtime(home_path: &Path) -> Option<SystemTime> {
    fs::metadata(home_path.join(crate::home::LIBRARY_KEYS_FILE))
        .and_then(|m| m.modified())
        .ok()
}

#[cfg(test)]
mod tests;
