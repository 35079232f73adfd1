//! Scan benchmark: `cargo bench -p photomesh --bench scan`.
//!
//! Prints
//! - the machine's single-core limit for what a first scan must do to every byte: BLAKE3 of
//!   the plaintext, ChaCha20-Poly1305 sealing, and BLAKE3 (bao outboard) of the sealed bytes,
//!   measured in memory, with each part on its own;
//! - first-scan throughput on a generated 1 GiB library (340 photos of ~3 MiB), median of 3;
//! - rescan time of 100,000 unchanged small files, median of 5.
//!
//! Budgets (DESIGN §13): first scan at least 1/1.5 of the single-core limit; rescan under 2 s.
//! The libraries are generated once under `target/bench-data/` and reused, so later runs read
//! them from the page cache (say so when quoting figures). Set `PHOTOMESH_BENCH_QUICK=1` for
//! a small, fast run that checks the bench itself works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use photomesh::blob::sealed;
use photomesh::home::Home;
use photomesh::index::Folder;
use photomesh::library::progress::Silent;
use photomesh_protocol::keys::LibraryKey;
use photomesh_protocol::seal::{SEGMENT_LEN, SegmentCipher};

fn main() {
    let quick = std::env::var_os("PHOTOMESH_BENCH_QUICK").is_some();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    fs::create_dir_all(&data).unwrap();
    println!("photomesh scan benchmark ({} cores available)", cores());

    let limit = single_core_limit(if quick { 16 << 20 } else { 256 << 20 });

    let (photos, photo_size) = if quick {
        (8, 1 << 20)
    } else {
        (340, 3_158_000)
    };
    let library = data.join(format!("library-{photos}x{photo_size}"));
    generate_library(&library, photos, photo_size);
    let total = (photos * photo_size) as f64;
    let mut runs = Vec::new();
    for i in 0..3 {
        let home = data.join(format!("home-first-{i}"));
        let _ = fs::remove_dir_all(&home);
        let h = photomesh::mesh::create_device(&home, "bench", None, 0).unwrap();
        h.index
            .add_folder(
                &Folder {
                    label: "lib".into(),
                    path: library.clone(),
                },
                0,
            )
            .unwrap();
        let start = Instant::now();
        let summary = photomesh::library::scan::scan(&h, &mut Silent).unwrap();
        let took = start.elapsed();
        assert_eq!(summary.new_files as usize, photos);
        runs.push(took);
        drop(h);
        fs::remove_dir_all(&home).unwrap();
    }
    let first = median(&mut runs);
    let first_mbps = total / first.as_secs_f64() / 1e6;
    println!(
        "first scan       {:>8.0} MB/s  ({} files, {:.2} GB, median of 3: {:.2} s; page cache warm)",
        first_mbps,
        photos,
        total / 1e9,
        first.as_secs_f64()
    );
    println!(
        "                 = {:.2}x the single-core limit (budget: at least 0.67x)",
        first_mbps / limit
    );

    let small = if quick { 2_000 } else { 100_000 };
    let small_dir = data.join(format!("small-{small}"));
    generate_small(&small_dir, small);
    let home = data.join(format!("home-rescan-{small}"));
    let h = match Home::open(&home) {
        Ok(h) => h,
        Err(_) => {
            let _ = fs::remove_dir_all(&home);
            let h = photomesh::mesh::create_device(&home, "bench", None, 0).unwrap();
            h.index
                .add_folder(
                    &Folder {
                        label: "small".into(),
                        path: small_dir.clone(),
                    },
                    0,
                )
                .unwrap();
            let start = Instant::now();
            let s = photomesh::library::scan::scan(&h, &mut Silent).unwrap();
            println!(
                "first scan of {} small files: {:.1} s ({:.0} files/s)",
                s.new_files,
                start.elapsed().as_secs_f64(),
                s.new_files as f64 / start.elapsed().as_secs_f64()
            );
            h
        }
    };
    let mut rescans = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let s = photomesh::library::scan::scan(&h, &mut Silent).unwrap();
        rescans.push(start.elapsed());
        assert_eq!(s.unchanged_files as usize, small);
    }
    let rescan = median(&mut rescans);
    println!(
        "rescan           {:>8.3} s     ({} unchanged files, median of 5; budget: under 2 s)",
        rescan.as_secs_f64(),
        small
    );
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn median(runs: &mut [Duration]) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// Measures, on one core and in memory, each part of the per-byte work and our pipeline.
/// Returns the limit the primitives set, in MB/s.
fn single_core_limit(len: usize) -> f64 {
    let mut plain = vec![0u8; len];
    blake3::Hasher::new()
        .update(b"bench")
        .finalize_xof()
        .fill(&mut plain);
    let rate = |f: &mut dyn FnMut()| {
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect();
        len as f64 / median(&mut times).as_secs_f64() / 1e6
    };
    let mut hash = [0u8; 32];
    let blake3_rate = rate(&mut || {
        let mut h = blake3::Hasher::new();
        h.update(&plain);
        hash = *h.finalize().as_bytes();
    });
    let key = LibraryKey::new(1, [1; 32]).content_key();
    let file_key = key.file_key(&hash);
    let cipher = SegmentCipher::for_sealing(&file_key, len as u64);
    let mut buf = Vec::with_capacity(SEGMENT_LEN + 16);
    let chacha_rate = rate(&mut || {
        for (i, seg) in plain.chunks(SEGMENT_LEN).enumerate() {
            buf.clear();
            buf.extend_from_slice(seg);
            cipher.seal_segment(i as u64, &mut buf).unwrap();
        }
    });
    let pipeline_rate = rate(&mut || {
        let mut h = blake3::Hasher::new();
        h.update(&plain);
        let plaintext_hash = *h.finalize().as_bytes();
        sealed::summarize(&plain[..], &key, &plaintext_hash, len as u64).unwrap();
    });
    println!("single core, in memory ({} MiB):", len >> 20);
    println!("  BLAKE3                     {blake3_rate:>8.0} MB/s");
    println!("  ChaCha20-Poly1305 (seal)   {chacha_rate:>8.0} MB/s");
    // Every byte is hashed twice (plaintext, then sealed bytes) and sealed once.
    let limit = 1.0 / (2.0 / blake3_rate + 1.0 / chacha_rate);
    println!(
        "  limit: 2 x BLAKE3 + seal   {limit:>8.0} MB/s  (BLAKE3 of the plaintext and of the sealed bytes, one seal)"
    );
    println!(
        "  our pipeline, in memory    {pipeline_rate:>8.0} MB/s  (hash, then seal on the fly into the bao outboard)"
    );
    limit
}

/// Whether `dir` was generated in full: a marker beside it says so (not inside: a scan backs
/// up every file in a folder). A marker inside, from older runs, is moved beside.
fn is_complete(dir: &Path) -> bool {
    let marker = dir.with_extension("complete");
    if fs::remove_file(dir.join(".complete")).is_ok() {
        fs::write(&marker, b"").unwrap();
    }
    marker.exists()
}

/// Photos of random content behind a JPEG signature; written once and reused.
fn generate_library(dir: &Path, count: usize, size: usize) {
    if is_complete(dir) {
        return;
    }
    fs::create_dir_all(dir).unwrap();
    let start = Instant::now();
    let mut buf = vec![0u8; size];
    for i in 0..count {
        blake3::Hasher::new()
            .update(&(i as u64).to_le_bytes())
            .finalize_xof()
            .fill(&mut buf);
        buf[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
        fs::write(dir.join(format!("IMG_{i:05}.JPG")), &buf).unwrap();
    }
    fs::write(dir.with_extension("complete"), b"").unwrap();
    println!(
        "(generated {count} photos in {:.1} s)",
        start.elapsed().as_secs_f64()
    );
}

/// Small files in folders of 1,000; written once and reused.
fn generate_small(dir: &Path, count: usize) {
    if is_complete(dir) {
        return;
    }
    let start = Instant::now();
    for i in 0..count {
        let sub: PathBuf = dir.join(format!("{:03}", i / 1000));
        if i % 1000 == 0 {
            fs::create_dir_all(&sub).unwrap();
        }
        let mut content = vec![0xFF, 0xD8, 0xFF, 0xE0];
        content.extend_from_slice(&(i as u64).to_le_bytes());
        content.resize(2048, (i % 251) as u8);
        fs::write(sub.join(format!("IMG_{i:06}.JPG")), &content).unwrap();
    }
    fs::write(dir.with_extension("complete"), b"").unwrap();
    println!(
        "(generated {count} small files in {:.1} s)",
        start.elapsed().as_secs_f64()
    );
}
