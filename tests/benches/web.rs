//! What the page costs a device: the overview and the photo page rendered, a thumbnail made
//! (a phone-sized picture and a 24-megapixel one), an upload received (MB/s and the node's
//! CPU per GB, the whole-file hash and the record included), and the page's own BLAKE3 in a
//! real headless Chromium against the native one.
//!
//! Run with `cargo bench -p photomesh-tests --bench web`. It builds the release `photomesh`
//! binary first, runs one node on loopback over a generated library, and prints medians with
//! the machine. `PHOTOMESH_BENCH_PHOTOS` (default 2,000), `PHOTOMESH_BENCH_UPLOAD_MB`
//! (default 256). The Chromium figure needs Debian's `chromium` and `chromium-driver`; without
//! them it says so and skips that line. No budget: the issue sets none; these are the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use anyhow::{Context, Result};
use photomesh_tests::bench::{Spread, cpu_seconds, load, machine};
use photomesh_tests::page::{Chunk, PageSession};
use photomesh_tests::{Node, http};

fn ms(spread: Spread) -> String {
    format!(
        "{:.1} ms (min {:.1}, max {:.1})",
        spread.median, spread.min, spread.max
    )
}

/// Times `runs` GETs of `path`, each answered 200.
fn time_get(page: &str, cookie: &str, path: &str, runs: usize) -> Result<Spread> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let r = http::request(page, "GET", path, &[("Cookie", cookie)], b"")?;
        anyhow::ensure!(r.status == 200, "GET {path}: {}", r.status);
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Spread::of(times))
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("web bench: run with `cargo bench -p photomesh-tests --bench web`");
        return Ok(());
    }
    let photos = photomesh_tests::env_u64("PHOTOMESH_BENCH_PHOTOS", 2000) as usize;
    let upload_mb = photomesh_tests::env_u64("PHOTOMESH_BENCH_UPLOAD_MB", 256) as usize;
    photomesh_tests::build_release_binary()?;
    println!("web bench on {} (load {})", machine(), load());

    let dir = tempfile::tempdir()?;
    let nas = Node::init(dir.path(), "nas");
    let pics = dir.path().join("pics");
    let files = photomesh_tests::samples::write_library(&pics, photos, 7);
    nas.ok(&["folder", "add", pics.to_str().context("path")?]);
    nas.ok(&["scan"]);
    println!("library: {} files (generated sample photos)", files.len());
    let (run, _, page) = nas.start_run_web("127.0.0.1:0");

    let session = PageSession::open(&page)?;
    let cookie = session.cookie.clone();

    let overview = time_get(&page, &cookie, "/", 50)?;
    println!("GET / (the overview)            {}", ms(overview));

    // The photo page, then each of its thumbnails made (cold), then served from the cache.
    let photos_page = time_get(&page, &cookie, "/photos", 1)?;
    let html = http::request(&page, "GET", "/photos", &[("Cookie", &cookie)], b"")?.text();
    let thumbs: Vec<String> = html
        .split("src=\"/thumb/")
        .skip(1)
        .filter_map(|t| t.split('"').next())
        .map(|t| format!("/thumb/{t}"))
        .collect();
    anyhow::ensure!(!thumbs.is_empty(), "the photo page shows no thumbnail");
    // Some sample files are not pictures that decode (a PNG-like stub): those get no
    // thumbnail (404, and the page shows a tile), and are left out of the figures.
    let mut cold = Vec::new();
    let mut drawn = Vec::new();
    for t in &thumbs {
        let start = Instant::now();
        let r = http::request(&page, "GET", t, &[("Cookie", &cookie)], b"")?;
        if r.status == 200 {
            cold.push(start.elapsed().as_secs_f64() * 1000.0);
            drawn.push(t.clone());
        }
    }
    anyhow::ensure!(!drawn.is_empty(), "no thumbnail could be made");
    let warm = Spread::of(
        drawn
            .iter()
            .map(|t| time_get(&page, &cookie, t, 1).map(|s| s.median))
            .collect::<Result<Vec<_>>>()?,
    );
    let again = time_get(&page, &cookie, "/photos", 20)?;
    println!(
        "GET /photos (60 newest)         {} first, {} after",
        ms(photos_page),
        ms(again)
    );
    println!(
        "thumbnail, sample photo         {} made, {} cached ({} of {} drawn)",
        ms(Spread::of(cold)),
        ms(warm),
        drawn.len(),
        thumbs.len()
    );

    // A 24-megapixel camera JPEG, recorded by the watcher.
    let mut rng = photomesh_tests::samples::Rng::new(24);
    let big =
        photomesh_tests::samples::jpeg_with_exif(&mut rng, 6000, 4000, "2025:09:01 12:00:00", None);
    std::fs::write(pics.join("IMG_24MP.JPG"), &big)?;
    let id = photomesh_tests::wait_until("the 24 MP photo recorded", || {
        let home = photomesh::home::Home::open(&nas.home).map_err(|e| e.to_string())?;
        let rows = home.index.newest_photos(1).map_err(|e| e.to_string())?;
        let row = rows.first().ok_or("no photo")?;
        let p = row
            .record
            .open_photo(&home.keys)
            .map_err(|e| e.to_string())?;
        if p.path == "IMG_24MP.JPG" {
            Ok(row.record_id.to_hex())
        } else {
            Err(p.path)
        }
    });
    let made = time_get(&page, &cookie, &format!("/thumb/{id}.jpg"), 1)?;
    println!(
        "thumbnail, 24 MP JPEG ({:.1} MB)  {} made",
        big.len() as f64 / 1e6,
        ms(made)
    );

    // An upload: 4 MiB chunks of a file of random bytes, as the page sends them.
    let mut data = vec![0u8; upload_mb << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let hash = blake3::hash(&data).to_hex().to_string();
    let cpu_before = cpu_seconds(run.pid())?;
    let start = Instant::now();
    for (i, bytes) in data.chunks(4 << 20).enumerate() {
        let r = session.put(Chunk {
            hash: &hash,
            offset: i * (4 << 20),
            size: data.len(),
            name: "VID_BENCH.MP4",
            device: "bench",
            bytes,
        })?;
        anyhow::ensure!(r.status == 200, "chunk {i}: {} {}", r.status, r.text());
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(run.pid())? - cpu_before;
    let gb = data.len() as f64 / 1e9;
    println!(
        "upload, {upload_mb} MiB in 4 MiB chunks    {:.0} MB/s, node {:.2} CPU-s/GB (hash, sync, place, record)",
        data.len() as f64 / 1e6 / secs,
        cpu / gb
    );

    // BLAKE3: the page's script in Chromium against the native code, on 64 MiB.
    let native = {
        let buf = vec![7u8; 64 << 20];
        let start = Instant::now();
        let _ = blake3::Hasher::new().update(&buf).finalize();
        64.0 * 1.048_576 / start.elapsed().as_secs_f64()
    };
    if std::path::Path::new(photomesh_tests::browser::CHROMIUM).exists()
        && std::path::Path::new(photomesh_tests::browser::CHROMEDRIVER).exists()
    {
        let browser = photomesh_tests::browser::Browser::start(800, 600);
        browser.go(&format!("http://{page}/upload"));
        photomesh_tests::wait_until("the page's script", || {
            let kind = browser.script("return typeof photomeshBlake3;");
            if kind == "object" {
                Ok(())
            } else {
                Err(format!(
                    "{kind}: {}",
                    browser.script("return document.body.innerText;")
                ))
            }
        });
        let value = browser.script(
            "const b = new Uint8Array(64 << 20).fill(7); const h = new photomeshBlake3.Hasher(); \
             const t = performance.now(); h.update(b); h.hex(); return performance.now() - t;",
        );
        let js_ms = value.as_f64().context("no time from the page")?;
        println!(
            "BLAKE3 of 64 MiB                page (Chromium) {:.0} MB/s, native (one core) {:.0} MB/s",
            64.0 * 1.048_576 / (js_ms / 1000.0),
            native
        );
    } else {
        println!("BLAKE3 of 64 MiB                native {native:.0} MB/s; no Chromium here");
    }
    Ok(())
}
