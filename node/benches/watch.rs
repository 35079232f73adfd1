//! Watched-folder benchmark: `cargo bench -p photomesh --bench watch`.
//!
//! Writes 20 JPEG-like files of ~3 MiB, one after another, into a watched folder and prints
//! the median and worst time from the file's close to its record committed in the index
//! (the moment the watcher calls `on_recorded`, which is when the daemon announces it).
//! That time is the close grace (`WatchOptions::close_grace`, 100 ms) plus hashing, sealing
//! and committing; the second line prints the last part alone (`scan::scan_files` on the same
//! files) so the two can be told apart.
//!
//! Budget (DESIGN §13): a photo written into a watched folder is present and verified on an
//! online peer with a median under 2 s; this is the local part of it. Set
//! `PHOTOMESH_BENCH_QUICK=1` for a small, fast run that checks the bench itself works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use photomesh::index::Folder;
use photomesh::library::scan::{self, FileToScan};
use photomesh::library::watch::{self, WatchOptions};

const SIZE: usize = 3_158_000;

fn main() {
    let quick = std::env::var_os("PHOTOMESH_BENCH_QUICK").is_some();
    let writes = if quick { 3 } else { 20 };
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    fs::create_dir_all(&data).unwrap();
    let dir = tempfile::tempdir_in(&data).unwrap();
    let home_path = dir.path().join("home");
    let photos = dir.path().join("photos");
    fs::create_dir(&photos).unwrap();
    let home = photomesh::mesh::create_device(&home_path, "bench", None, 0).unwrap();
    home.index
        .add_folder(
            &Folder {
                label: "photos".into(),
                path: photos.clone(),
            },
            0,
        )
        .unwrap();
    let options = WatchOptions::default();
    println!(
        "photomesh watch benchmark: {writes} writes of {:.1} MiB (close grace {} ms, settle {} ms)",
        SIZE as f64 / (1 << 20) as f64,
        options.close_grace.as_millis(),
        options.settle.as_millis()
    );

    let (recorded_tx, recorded) = mpsc::channel::<Instant>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let task = runtime.spawn(watch::run(home_path.clone(), options, move |_| {
        let _ = recorded_tx.send(Instant::now());
    }));
    // The watcher is live once its start rescan is recorded as finished.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        runtime.block_on(tokio::task::yield_now());
        if home
            .index
            .last_scan()
            .unwrap()
            .is_some_and(|s| s.finished_at_ms.is_some())
        {
            break;
        }
        assert!(Instant::now() < deadline, "the watcher did not start");
        std::thread::sleep(Duration::from_millis(10));
    }

    let mut latencies = Vec::new();
    let mut content = vec![0u8; SIZE];
    for i in 0..writes {
        blake3::Hasher::new()
            .update(&(i as u64).to_le_bytes())
            .finalize_xof()
            .fill(&mut content);
        content[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
        let mut file = fs::File::create(photos.join(format!("IMG_{i:04}.JPG"))).unwrap();
        file.write_all(&content).unwrap();
        drop(file);
        let closed = Instant::now();
        let at = recorded
            .recv_timeout(Duration::from_secs(30))
            .expect("the photo was recorded");
        latencies.push(at.saturating_duration_since(closed));
    }
    task.abort();
    drop(runtime);
    assert_eq!(home.index.photo_record_count().unwrap(), writes as u64);

    // The same work without the watcher: a second home, never watched, records each file.
    let other =
        photomesh::mesh::create_device(&dir.path().join("other"), "bench", None, 0).unwrap();
    other
        .index
        .add_folder(
            &Folder {
                label: "photos".into(),
                path: photos.clone(),
            },
            0,
        )
        .unwrap();
    let mut work_times = Vec::new();
    for i in 0..writes {
        let name = format!("IMG_{i:04}.JPG");
        let start = Instant::now();
        let summary = scan::scan_files(
            &other,
            &photomesh::ignore::Selection::default(),
            &[FileToScan {
                folder: "photos".into(),
                root: photos.clone(),
                rel_path: name.clone(),
                abs_path: photos.join(&name),
            }],
        )
        .unwrap();
        work_times.push(start.elapsed());
        assert_eq!(summary.new_files, 1);
    }

    let (median, worst) = stats(&mut latencies);
    println!(
        "close -> recorded   median {:>6.1} ms   worst {:>6.1} ms   (budget for the whole trip to a peer: median under 2 s)",
        ms(median),
        ms(worst)
    );
    let (median, worst) = stats(&mut work_times);
    println!(
        "  of which work     median {:>6.1} ms   worst {:>6.1} ms   (scan_files: hash, seal, commit one file)",
        ms(median),
        ms(worst)
    );
}

fn stats(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
