//! The real-file corpus (`tests/corpus/`, fetched by `scripts/fetch-corpus`) through a real
//! node: every camera and phone file is scanned as its kind, recorded with the capture time
//! its reader gives (held to exiftool's by `corpus_capture.rs`), and restored byte for byte
//! with its mtime.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use photomesh::library::media::capture_time;
use photomesh_protocol::record::MediaType;
use photomesh_tests::{Node, assert_has, tree};

/// One line of `tests/corpus/manifest.tsv`.
struct Entry {
    file: String,
    kind: String,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The fetched corpus and its manifest; fails (never skips) when it was not fetched.
fn corpus() -> (PathBuf, Vec<Entry>) {
    let files = photomesh_tests::corpus_files();
    let manifest = fs::read_to_string(workspace().join("tests/corpus/manifest.tsv")).unwrap();
    let entries: Vec<Entry> = manifest
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Entry {
                file: cols[0].to_owned(),
                kind: cols[3].to_owned(),
            }
        })
        .collect();
    let missing: Vec<&str> = entries
        .iter()
        .filter(|e| !files.join(&e.file).is_file())
        .map(|e| e.file.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "the real-file corpus is not fetched ({} files missing, e.g. {:?}): run \
         `scripts/fetch-corpus` first (README: Tests)",
        missing.len(),
        missing.first()
    );
    (files, entries)
}

/// The kind name photomesh gives what the manifest (exiftool's names) calls `kind`.
fn our_kind(kind: &str) -> &str {
    match kind {
        "heic" => "heif",
        k => k,
    }
}

#[test]
fn every_real_file_is_scanned_as_its_kind_and_restored_byte_for_byte() {
    let (files, entries) = corpus();
    let dir = tempfile::tempdir().unwrap();
    let pics = dir.path().join("pics");
    for (i, e) in entries.iter().enumerate() {
        let to = pics.join(&e.file);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(files.join(&e.file), &to).unwrap();
        // Distinct mtimes with nanoseconds, so a restore that loses them is caught.
        let mtime = SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_600_000_000 + i as u64 * 86_400)
            + Duration::from_nanos(123_456_789 + i as u64);
        fs::File::options()
            .write(true)
            .open(&to)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    let node = Node::init(dir.path(), "laptop");
    node.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "corpus"]);

    let scan = node.json(&["scan"]);
    let n = entries.len() as u64;
    assert_eq!(scan["files_seen"], n, "{scan}");
    assert_eq!(scan["new_files"], n, "{scan}");
    assert_eq!(scan["problems"].as_array().unwrap().len(), 0, "{scan}");
    assert_eq!(scan["left_out"]["ignored"], 0, "{scan}");
    let mut want_kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &entries {
        *want_kinds.entry(our_kind(&e.kind)).or_default() += 1;
    }
    let got_kinds: BTreeMap<&str, u64> = scan["kinds"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(got_kinds, want_kinds, "scan counts by kind");

    // Each file is recorded as its kind (read from its content).
    let photos = node.json(&["photos"]);
    let by_path: BTreeMap<&str, &serde_json::Value> = photos
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap(), p))
        .collect();
    let mut wrong = Vec::new();
    for e in &entries {
        let p = by_path[e.file.as_str()];
        if p["media_type"] != our_kind(&e.kind) {
            wrong.push(format!("{}: recorded as {}", e.file, p["media_type"]));
        }
        // The record carries the capture time the reader gives (`corpus_capture.rs` holds
        // the reader to exiftool's times).
        let kind = MediaType::from_name(p["media_type"].as_str().unwrap()).unwrap();
        let read = capture_time(&fs::File::open(pics.join(&e.file)).unwrap(), kind);
        let recorded = (
            p["capture_local_seconds"].as_i64(),
            p["capture_utc_offset_minutes"].as_i64(),
        );
        let want = (
            read.map(|c| c.local_seconds),
            read.and_then(|c| c.utc_offset_minutes).map(i64::from),
        );
        if recorded != want {
            wrong.push(format!("{}: recorded {recorded:?}, read {want:?}", e.file));
        }
    }
    assert!(wrong.is_empty(), "kinds and capture times: {wrong:#?}");

    let out = dir.path().join("restored");
    node.ok(&[
        "restore",
        "--to",
        out.to_str().unwrap(),
        "--folder",
        "corpus",
    ]);
    let (got, want) = (tree(&out), tree(&pics));
    assert_has(&got, &want);
    assert_eq!(got.len(), want.len());
}
