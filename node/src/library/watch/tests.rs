//! Tests of the folder watcher: the pure rules (what an event means, when a file is complete)
//! and the real thing — real files, real inotify, real SQLite.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, CreateKind, Flag, ModifyKind, RenameMode};
use notify::{Event, EventKind};
use photomesh_protocol::record::Record;

use super::*;
use crate::clock::now_ms;
use crate::home::Home;
use crate::index::Folder;

// ---- pure rules ----

#[test]
fn an_overflow_asks_for_a_rescan() {
    let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
    assert_eq!(classify(&overflow), vec![Action::Rescan]);
}

#[test]
fn events_map_to_actions() {
    let p = PathBuf::from("/photos/IMG_0001.JPG");
    let event = |kind| Event::new(kind).add_path(p.clone());
    assert_eq!(
        classify(&event(EventKind::Create(CreateKind::File))),
        vec![Action::Created(p.clone())]
    );
    assert_eq!(
        classify(&event(EventKind::Access(AccessKind::Close(
            AccessMode::Write
        )))),
        vec![Action::Closed(p.clone())]
    );
    assert_eq!(
        classify(&event(EventKind::Modify(ModifyKind::Name(RenameMode::To)))),
        vec![Action::MovedIn(p.clone())]
    );
    assert_eq!(
        classify(&event(EventKind::Modify(ModifyKind::Name(
            RenameMode::From
        )))),
        vec![Action::Gone(p.clone())]
    );
    // Our own reading of a file must not make it pending again.
    assert_eq!(
        classify(&event(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        )))),
        vec![Action::Ignore]
    );
    assert_eq!(
        classify(&event(EventKind::Access(AccessKind::Open(AccessMode::Any)))),
        vec![Action::Ignore]
    );
}

#[test]
fn opens_of_files_do_not_wake_the_watcher() {
    let p = PathBuf::from("/photos/IMG_0001.JPG");
    let event = |kind| Ok(Event::new(kind).add_path(p.clone()));
    assert!(!worth_waking_for(&event(EventKind::Access(
        AccessKind::Open(AccessMode::Any)
    ))));
    assert!(worth_waking_for(&event(EventKind::Access(
        AccessKind::Close(AccessMode::Write)
    ))));
    assert!(worth_waking_for(&event(EventKind::Create(
        CreateKind::File
    ))));
    assert!(worth_waking_for(&Err(notify::Error::generic("lost"))));
}

fn pending(now: Instant) -> Pending {
    Pending::new(
        FileToScan {
            folder: "f".into(),
            root: "/f".into(),
            rel_path: "a.jpg".into(),
            abs_path: "/f/a.jpg".into(),
        },
        now,
    )
}

const STAT: Stat = Stat {
    size: 10,
    mtime_s: 1,
    mtime_ns: 2,
    inode: 3,
};

#[test]
fn a_file_held_open_is_not_complete_however_long_it_is_unchanged_within_the_timeout() {
    let options = WatchOptions::default();
    let t0 = Instant::now();
    let mut p = pending(t0);
    p.writing = true;
    p.observe(STAT, t0);
    let later = t0 + options.settle * 10;
    assert!(!p.is_complete(later, &options));
    // Closed: complete after the grace.
    p.writing = false;
    p.closed = true;
    p.last_event = later;
    assert!(!p.is_complete(later, &options));
    assert!(p.is_complete(later + options.close_grace, &options));
}

#[test]
fn a_file_held_open_forever_is_taken_after_the_writer_timeout() {
    let options = WatchOptions::default();
    let t0 = Instant::now();
    let mut p = pending(t0);
    p.writing = true;
    p.observe(STAT, t0);
    assert!(p.is_complete(t0 + options.open_writer_timeout, &options));
}

#[test]
fn a_file_with_no_writer_is_complete_once_settled() {
    let options = WatchOptions::default();
    let t0 = Instant::now();
    let mut p = pending(t0);
    assert!(
        !p.is_complete(t0 + options.settle, &options),
        "never looked at"
    );
    p.observe(STAT, t0);
    assert!(!p.is_complete(t0 + options.settle / 2, &options));
    // It grew: the settle period starts again.
    let t1 = t0 + options.settle / 2;
    p.observe(Stat { size: 20, ..STAT }, t1);
    assert!(!p.is_complete(t0 + options.settle, &options));
    p.observe(Stat { size: 20, ..STAT }, t0 + options.settle);
    assert!(p.is_complete(t1 + options.settle, &options));
}

// ---- the real watcher ----

/// A home with one folder, `photos`, in a temporary directory.
struct Setup {
    _dir: tempfile::TempDir,
    home_path: PathBuf,
    photos: PathBuf,
    /// A connection of the test's own, to look at what the watcher recorded.
    home: Home,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temporary directory");
    let home_path = dir.path().join("home");
    let photos = dir.path().join("photos");
    fs::create_dir(&photos).expect("photos folder");
    let home = crate::mesh::create_device(&home_path, "test", None, 0).expect("home");
    home.index
        .add_folder(
            &Folder {
                label: "photos".into(),
                path: photos.clone(),
            },
            0,
        )
        .expect("folder");
    Setup {
        _dir: dir,
        home_path,
        photos,
        home,
    }
}

/// A running watcher; stopped when dropped.
struct Watching {
    runtime: Option<tokio::runtime::Runtime>,
    announced: Arc<AtomicUsize>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// Starts the watcher and waits until its start rescan is done (so its watches are set).
fn start(s: &Setup) -> Watching {
    let announced = Arc::new(AtomicUsize::new(0));
    let counter = announced.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = now_ms();
    let home_path = s.home_path.clone();
    runtime.spawn(async move {
        let result = run(home_path, WatchOptions::default(), move |n| {
            counter.fetch_add(n, Ordering::SeqCst);
        })
        .await;
        assert!(result.is_ok(), "the watcher stopped: {result:?}");
    });
    let watching = Watching {
        runtime: Some(runtime),
        announced,
    };
    wait_for_scan_after(s, started, &watching);
    watching
}

/// Waits until a full scan that started at or after `since_ms` has finished.
fn wait_for_scan_after(s: &Setup, since_ms: u64, w: &Watching) {
    wait_until("a full rescan", || {
        if let Some(rt) = &w.runtime {
            rt.block_on(tokio::task::yield_now());
        }
        match s.home.index.last_scan().expect("last scan") {
            Some(scan) if scan.started_at_ms >= since_ms && scan.finished_at_ms.is_some() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

/// Every photo record in the index: (relative path, size), in order.
fn records(s: &Setup) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = s
        .home
        .index
        .records_after(0)
        .expect("records")
        .into_iter()
        .filter_map(|(_, record)| match record.open(&s.home.keys) {
            Ok(Record::Photo(p)) => Some((p.path, p.size)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn records_by_path(s: &Setup) -> BTreeMap<String, Vec<u64>> {
    let mut map: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (path, size) in records(s) {
        map.entry(path).or_default().push(size);
    }
    map
}

fn wait_until<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what} did not happen within 20 s; last seen: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the photo records are exactly `expected` (path → sizes of its records).
fn wait_for_records(s: &Setup, expected: &[(&str, &[u64])]) {
    let expected: BTreeMap<String, Vec<u64>> = expected
        .iter()
        .map(|(p, sizes)| (p.to_string(), sizes.to_vec()))
        .collect();
    wait_until("the expected records", || {
        let now = records_by_path(s);
        if now == expected {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
}

/// JPEG-looking bytes: the JPEG signature, then content set by `seed`.
fn jpeg_like(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut bytes);
    bytes[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    bytes
}

#[test]
fn a_copied_photo_is_recorded_once_and_announced() {
    let s = setup();
    let w = start(&s);
    let outside = s.home_path.join("IMG_0001.JPG.source");
    fs::write(&outside, jpeg_like(1, 200_000)).expect("write");
    fs::copy(&outside, s.photos.join("IMG_0001.JPG")).expect("copy");
    wait_for_records(&s, &[("IMG_0001.JPG", &[200_000])]);
    // A second photo after it: by the time it is recorded, any second record of the first
    // would have been made too.
    fs::write(s.photos.join("IMG_0002.JPG"), jpeg_like(2, 1000)).expect("write");
    wait_for_records(
        &s,
        &[("IMG_0001.JPG", &[200_000]), ("IMG_0002.JPG", &[1000])],
    );
    wait_until("both announced", || {
        match w.announced.load(Ordering::SeqCst) {
            2 => Ok(()),
            n => Err(format!("{n} announced")),
        }
    });
}

#[test]
fn a_file_written_slowly_is_recorded_only_once_complete() {
    let s = setup();
    let _w = start(&s);
    let chunk = 256 * 1024;
    let content = jpeg_like(3, chunk * 6);
    let path = s.photos.join("VID_SLOW.JPG");
    let mut file = fs::File::create(&path).expect("create");
    // Pauses both shorter and longer than the settle period, while the file is held open:
    // a settle timer alone would record it half-way during the long ones.
    let pauses = [200, 700, 200, 700, 200, 0];
    for (piece, pause) in content.chunks(chunk).zip(pauses) {
        file.write_all(piece).expect("write");
        file.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(pause));
        assert_eq!(
            records(&s),
            vec![],
            "a file still held open by its writer was recorded"
        );
    }
    drop(file);
    wait_for_records(&s, &[("VID_SLOW.JPG", &[content.len() as u64])]);
}

#[test]
fn a_file_renamed_into_place_is_recorded_under_its_final_name_only() {
    let s = setup();
    let _w = start(&s);
    // rsync's way: a hidden temporary name.
    fs::write(s.photos.join(".IMG_0010.JPG.Xa8f2"), jpeg_like(10, 300_000)).expect("write");
    fs::rename(
        s.photos.join(".IMG_0010.JPG.Xa8f2"),
        s.photos.join("IMG_0010.JPG"),
    )
    .expect("rename");
    // A temporary extension.
    fs::write(s.photos.join("IMG_0011.JPG.part"), jpeg_like(11, 300_000)).expect("write");
    fs::rename(
        s.photos.join("IMG_0011.JPG.part"),
        s.photos.join("IMG_0011.JPG"),
    )
    .expect("rename");
    // The hard case: the temporary name looks like a photo too, and the file is renamed
    // while still open (closed under its final name).
    let mut file = fs::File::create(s.photos.join("tmp_IMG_0012.JPG")).expect("create");
    file.write_all(&jpeg_like(12, 300_000)).expect("write");
    fs::rename(
        s.photos.join("tmp_IMG_0012.JPG"),
        s.photos.join("IMG_0012.JPG"),
    )
    .expect("rename");
    drop(file);
    wait_for_records(
        &s,
        &[
            ("IMG_0010.JPG", &[300_000]),
            ("IMG_0011.JPG", &[300_000]),
            ("IMG_0012.JPG", &[300_000]),
        ],
    );
}

#[test]
fn a_file_in_a_new_subdirectory_is_found() {
    let s = setup();
    let _w = start(&s);
    let sub = s.photos.join("2026").join("11").join("22");
    // Created and written at once: the file may land before the new folders are watched.
    fs::create_dir_all(&sub).expect("mkdir");
    fs::write(sub.join("IMG_0020.JPG"), jpeg_like(20, 5000)).expect("write");
    wait_for_records(&s, &[("2026/11/22/IMG_0020.JPG", &[5000])]);
    // A folder moved in whole: its files raise no events of their own.
    let outside = s.home_path.parent().expect("parent").join("trip");
    fs::create_dir_all(outside.join("day1")).expect("mkdir");
    fs::write(
        outside.join("day1").join("IMG_0021.JPG"),
        jpeg_like(21, 6000),
    )
    .expect("write");
    fs::rename(&outside, s.photos.join("trip")).expect("move in");
    wait_for_records(
        &s,
        &[
            ("2026/11/22/IMG_0020.JPG", &[5000]),
            ("trip/day1/IMG_0021.JPG", &[6000]),
        ],
    );
}

#[test]
fn a_hard_link_is_recorded_once_settled() {
    // No writer opens a hard link, so no close follows its creation.
    let s = setup();
    let _w = start(&s);
    let outside = s.home_path.join("LINKED.JPG");
    fs::write(&outside, jpeg_like(70, 8000)).expect("write");
    fs::hard_link(&outside, s.photos.join("LINKED.JPG")).expect("link");
    // Waiting for a writer that does not exist would take the 30 s writer timeout, longer
    // than `wait_for_records` waits.
    wait_for_records(&s, &[("LINKED.JPG", &[8000])]);
}

#[test]
fn a_folder_added_while_running_is_watched() {
    let s = setup();
    let w = start(&s);
    let camera = s.home_path.parent().expect("parent").join("camera");
    fs::create_dir(&camera).expect("mkdir");
    fs::write(camera.join("OLD.JPG"), jpeg_like(30, 4000)).expect("write");
    let added = now_ms();
    s.home
        .index
        .add_folder(
            &Folder {
                label: "camera".into(),
                path: camera.clone(),
            },
            added,
        )
        .expect("add folder");
    // Adding a folder makes the watcher watch it and rescan (which finds what was there).
    wait_for_scan_after(&s, added, &w);
    wait_for_records(&s, &[("OLD.JPG", &[4000])]);
    fs::write(camera.join("NEW.JPG"), jpeg_like(31, 4000)).expect("write");
    wait_for_records(&s, &[("OLD.JPG", &[4000]), ("NEW.JPG", &[4000])]);
}

#[test]
fn changes_made_while_not_running_are_caught_by_the_start_rescan() {
    let s = setup();
    fs::write(s.photos.join("A.JPG"), jpeg_like(40, 4000)).expect("write");
    let summary = scan::scan(&s.home, &mut Silent).expect("scan");
    assert_eq!(summary.new_files, 1);
    // While no watcher runs: A changes, B appears.
    fs::write(s.photos.join("A.JPG"), jpeg_like(41, 5000)).expect("write");
    fs::write(s.photos.join("B.JPG"), jpeg_like(42, 6000)).expect("write");
    let w = start(&s);
    wait_for_records(&s, &[("A.JPG", &[4000, 5000]), ("B.JPG", &[6000])]);
    wait_until("both announced", || {
        match w.announced.load(Ordering::SeqCst) {
            2 => Ok(()),
            n => Err(format!("{n} announced")),
        }
    });
}

#[test]
fn an_overflow_rescans_and_finds_what_the_lost_events_were_about() {
    let s = setup();
    // The watcher's state driven by hand: its events are never delivered, as if the kernel
    // had dropped them.
    let (inbox, _undelivered) = mpsc::sync_channel(EVENT_QUEUE);
    let mut state = State::new(
        &s.home_path,
        WatchOptions::default(),
        inbox,
        Arc::new(Flags::default()),
    )
    .expect("state");
    let announced = AtomicUsize::new(0);
    let on_recorded = |n| {
        announced.fetch_add(n, Ordering::SeqCst);
    };
    state.check_folders(Instant::now());
    state.work(&on_recorded);
    fs::write(s.photos.join("LOST.JPG"), jpeg_like(60, 7000)).expect("write");
    state.work(&on_recorded);
    assert_eq!(
        records(&s),
        vec![],
        "nothing is recorded without its events"
    );
    state.handle(
        Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan)),
        Instant::now(),
    );
    state.work(&on_recorded);
    assert_eq!(records(&s), vec![("LOST.JPG".to_string(), 7000)]);
    assert_eq!(announced.load(Ordering::SeqCst), 1);
}

#[test]
fn a_scheduled_rescan_finds_what_the_watcher_missed() {
    let s = setup();
    let (inbox, _undelivered) = mpsc::sync_channel(EVENT_QUEUE);
    let options = WatchOptions {
        rescan_every: Duration::from_millis(200),
        ..WatchOptions::default()
    };
    let mut state =
        State::new(&s.home_path, options, inbox, Arc::new(Flags::default())).expect("state");
    state.check_folders(Instant::now());
    state.work(&|_| {});
    fs::write(s.photos.join("MISSED.JPG"), jpeg_like(61, 3000)).expect("write");
    wait_until("a scheduled rescan", || {
        state.work(&|_| {});
        match records(&s) {
            r if r.is_empty() => Err("nothing recorded".into()),
            r => Ok(r),
        }
    });
    assert_eq!(records(&s), vec![("MISSED.JPG".to_string(), 3000)]);
}

#[test]
fn a_deleted_photo_keeps_its_record() {
    let s = setup();
    let _w = start(&s);
    fs::write(s.photos.join("DELETED.JPG"), jpeg_like(80, 2000)).expect("write");
    wait_for_records(&s, &[("DELETED.JPG", &[2000])]);
    fs::remove_file(s.photos.join("DELETED.JPG")).expect("remove");
    // By the time a later photo is recorded, the deletion has been seen.
    fs::write(s.photos.join("LATER.JPG"), jpeg_like(81, 2000)).expect("write");
    wait_for_records(&s, &[("DELETED.JPG", &[2000]), ("LATER.JPG", &[2000])]);
    assert_eq!(
        s.home.index.photo_record_count().expect("count"),
        2,
        "a vanished file deletes nothing"
    );
}

#[test]
fn a_photo_is_recorded_after_the_watcher_catches_a_vanished_temporary_file() {
    // A file that appears and vanishes before it is complete leaves nothing behind, and
    // does not stop what comes after it.
    let s = setup();
    let _w = start(&s);
    let mut f = fs::File::create(s.photos.join("GONE.JPG")).expect("create");
    f.write_all(&jpeg_like(50, 1000)).expect("write");
    fs::remove_file(s.photos.join("GONE.JPG")).expect("remove");
    drop(f);
    fs::write(s.photos.join("KEPT.JPG"), jpeg_like(51, 1000)).expect("write");
    wait_for_records(&s, &[("KEPT.JPG", &[1000])]);
}
