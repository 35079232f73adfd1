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

use photomesh::library::media;
use photomesh_protocol::record::{CaptureTime, MediaType};

/// Files whose capture time is known not to match, with the reason. Empty: every file
/// matches.
const KNOWN_EXCEPTIONS: &[(&str, &str)] = &[];

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

/// `YYYY:MM:DD HH:MM:SS` for seconds since 1970 (Howard Hinnant's `civil_from_days`).
fn format_local(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}:{m:02}:{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
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
        if (got_time.as_str(), got_offset.as_str()) != (want_time, want_offset) {
            let known = KNOWN_EXCEPTIONS.iter().any(|(f, _)| *f == name);
            if !known {
                mismatches.push(format!(
                    "{name} ({}): got {got_time} {got_offset}, want {want_time} {want_offset}",
                    media_type.name()
                ));
            }
        } else if KNOWN_EXCEPTIONS.iter().any(|(f, _)| *f == name) {
            mismatches.push(format!("{name}: listed as a known exception but matches"));
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
