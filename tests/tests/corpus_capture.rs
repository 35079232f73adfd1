//! The capture time read from every file of the real-file corpus (`tests/corpus/`) must be
//! the one exiftool gives by the rule in `tests/corpus/README.md`, and every file must be
//! taken as the kind the manifest names, as the scanner takes it (extension, then the first
//! bytes).
//!
//! The files are not in git: `scripts/fetch-corpus` downloads them. A missing corpus fails
//! this test, it is never skipped.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use photomesh::library::{capture, media};
use photomesh_protocol::record::{CaptureTime, MediaType};

/// Files whose manifest line is exiftool 12.57's reading but not what the file says:
/// (file, the capture time and offset photomesh reads instead, why). The test checks that
/// the manifest still says what it said (else the exception is stale) and that photomesh
/// reads the value given here.
const KNOWN_EXCEPTIONS: &[(&str, &str, &str, &str)] = &[
    (
        "avi/exiftool-pentax-kx.avi",
        "2009:10:27 12:14:34",
        "-",
        // IDIT is `2009/10/27 12:14:34`; exiftool's ConvertRIFFDate takes the branch meant
        // for Casio's `2001/ 1/27  1:42PM` and writes `:00` for the seconds (the Pentax
        // maker notes say 12:14:34 too).
        "exiftool drops the seconds of a YYYY/MM/DD HH:MM:SS IDIT",
    ),
    (
        "mts/hachoir-panasonic-ag-hmc151.MTS",
        "2009:07:09 14:33:35",
        "+00:00",
        // The MDPM SEI (tags 0x18/0x19: zone byte 0x00, 2009-07-09 14:33:35) sits 2 kB into
        // the first video PES, which this 8 kB sample cuts short; exiftool parses only the
        // first 1 kB of a PES (and a next, complete one), even with -ee.
        "exiftool stops before the MDPM SEI of this truncated stream",
    ),
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus_dir() -> PathBuf {
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    };
    target.join("corpus").join("files")
}

/// `YYYY:MM:DD HH:MM:SS` for seconds since 1970, as exiftool writes it.
fn format_local(seconds: i64) -> String {
    let [y, m, d, h, min, s] = photomesh::clock::utc_fields(seconds.saturating_mul(1000));
    format!("{y:04}:{m:02}:{d:02} {h:02}:{min:02}:{s:02}")
}

fn format_offset(minutes: i16) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// The manifest's two columns for a capture time.
fn columns(time: Option<CaptureTime>) -> (String, String) {
    match time {
        None => ("-".into(), "-".into()),
        Some(t) => (
            format_local(t.local_seconds),
            t.utc_offset_minutes
                .map_or_else(|| "-".into(), format_offset),
        ),
    }
}

/// The kind the scanner gives the file: by its name, checked against its first bytes.
fn scanner_kind(path: &Path, file: &mut File) -> MediaType {
    let mut head = [0u8; media::SNIFF_LEN];
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..]).unwrap() {
            0 => break,
            n => len += n,
        }
    }
    media::kind_of(media::type_from_extension(path), &head[..len])
}

#[test]
fn formatting_round_trips() {
    assert_eq!(format_local(0), "1970:01:01 00:00:00");
    assert_eq!(
        format_local(media::parse_exif_datetime("2024:02:29 12:34:56").unwrap()),
        "2024:02:29 12:34:56"
    );
    assert_eq!(format_offset(-330), "-05:30");
    assert_eq!(format_offset(0), "+00:00");
}

#[test]
fn every_corpus_file_has_the_capture_time_exiftool_gives() {
    let root = workspace_root();
    let manifest = std::fs::read_to_string(root.join("tests/corpus/manifest.tsv")).unwrap();
    let dir = corpus_dir();
    let mut lines = manifest.lines();
    let header = lines.next().unwrap();
    assert_eq!(
        header, "file\tsha256\tsize\tkind\tcapture_time\toffset\tsource",
        "the manifest's columns changed"
    );
    let mut missing = Vec::new();
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 6, "a short manifest line: {line:?}");
        let (name, kind, want_time, want_offset) = (cols[0], cols[3], cols[4], cols[5]);
        let path = dir.join(name);
        let Ok(mut file) = File::open(&path) else {
            missing.push(name.to_owned());
            continue;
        };
        checked += 1;
        let media_type = scanner_kind(&path, &mut file);
        // The manifest names HEIF files `heic` where `MediaType::name` says `heif`.
        let want_kind = if kind == "heic" { "heif" } else { kind };
        if media_type.name() != want_kind {
            mismatches.push(format!(
                "{name}: kind {} but the manifest says {kind}",
                media_type.name()
            ));
        }
        // The scanner calls `capture_time` after hashing: the file is at its end.
        file.seek(SeekFrom::End(0)).unwrap();
        let (got_time, got_offset) = columns(media::capture_time(&file, media_type));
        let (want_time, want_offset) = match KNOWN_EXCEPTIONS.iter().find(|e| e.0 == name) {
            Some(&(_, time, offset, why)) => {
                if (got_time.as_str(), got_offset.as_str()) == (want_time, want_offset) {
                    mismatches.push(format!(
                        "{name}: a known exception ({why}) that now matches the manifest: \
                         remove it"
                    ));
                }
                (time, offset)
            }
            None => (want_time, want_offset),
        };
        if (got_time.as_str(), got_offset.as_str()) != (want_time, want_offset) {
            mismatches.push(format!(
                "{name} ({}): got {got_time} {got_offset}, want {want_time} {want_offset}",
                media_type.name()
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "{} corpus file(s) missing under {}: run `scripts/fetch-corpus` first (first: {})",
        missing.len(),
        dir.display(),
        missing[0]
    );
    assert!(checked > 0, "the manifest lists no file");
    assert!(
        mismatches.is_empty(),
        "{} of {checked} corpus files disagree with the manifest:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Every prefix of the small corpus files, and copies with bytes overwritten, give a time or
/// none, but never a panic (and never take long: every read is bounded).
#[test]
fn truncated_and_damaged_corpus_files_never_panic() {
    let root = workspace_root();
    let manifest = std::fs::read_to_string(root.join("tests/corpus/manifest.tsv")).unwrap();
    let dir = corpus_dir();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut tried = 0;
    for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let name = line.split('\t').next().unwrap();
        let path = dir.join(name);
        let data = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{}: {e}: run `scripts/fetch-corpus` first", path.display())
        });
        let kind = media::kind_of(
            media::type_from_extension(&path),
            &data[..data.len().min(media::SNIFF_LEN)],
        );
        // Every prefix of the small files; of the larger ones, every prefix within the first
        // 4 kB and 400 more spread over the file.
        let lens: Vec<usize> = if data.len() <= 16 << 10 {
            (0..data.len()).collect()
        } else {
            (0..4096)
                .chain((0..400).map(|i| data.len() / 400 * i))
                .collect()
        };
        for len in lens {
            let _ = capture::capture_time_in(&data[..len], kind);
            tried += 1;
        }
        if data.len() <= 256 << 10 {
            for _ in 0..200 {
                let mut damaged = data.clone();
                for _ in 0..1 + next() % 8 {
                    let at = (next() % data.len() as u64) as usize;
                    damaged[at] = next() as u8;
                }
                let _ = capture::capture_time_in(&damaged, kind);
                tried += 1;
            }
        }
    }
    assert!(tried > 0);
}
