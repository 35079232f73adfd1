//! What kind each file is, and when it was taken.
//!
//! Every file is kept; its kind only decides how it is counted and how its capture time is
//! read. The kind is the one its extension names when its first bytes agree, else the one its
//! first bytes show, else [`MediaType::Other`]. The
//! capture time is read by [`super::capture`], by exiftool's rule (EXIF `DateTimeOriginal`
//! first), from every kind of photo and video that carries one.
//!
//! This module reads only the file it is given, and never writes.

use std::fs::File;
use std::path::Path;

use photomesh_protocol::record::{CaptureTime, MediaType};

/// Bytes read from the start of a file to check its kind.
pub const SNIFF_LEN: usize = 16;

/// The kind a file's name says: its extension, or [`MediaType::Other`].
pub fn type_from_extension(path: &Path) -> MediaType {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return MediaType::Other;
    };
    match ext.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" | "jpe" => MediaType::Jpeg,
        "mpo" => MediaType::Mpo,
        "heic" | "heif" | "hif" => MediaType::Heif,
        "avif" => MediaType::Avif,
        "jxl" => MediaType::Jxl,
        "png" => MediaType::Png,
        "gif" => MediaType::Gif,
        "webp" => MediaType::Webp,
        "tif" | "tiff" => MediaType::Tiff,
        "bmp" => MediaType::Bmp,
        "dng" => MediaType::Dng,
        "cr2" => MediaType::Cr2,
        "cr3" => MediaType::Cr3,
        "crw" => MediaType::Crw,
        "nef" => MediaType::Nef,
        "nrw" => MediaType::Nrw,
        "arw" => MediaType::Arw,
        "sr2" => MediaType::Sr2,
        "raf" => MediaType::Raf,
        "rw2" => MediaType::Rw2,
        "orf" => MediaType::Orf,
        "pef" => MediaType::Pef,
        "srw" => MediaType::Srw,
        "3fr" => MediaType::ThreeFr,
        "iiq" => MediaType::Iiq,
        "x3f" => MediaType::X3f,
        "mp4" | "m4v" => MediaType::Mp4,
        "mov" | "qt" => MediaType::Mov,
        "3gp" | "3g2" => MediaType::ThreeGp,
        "mts" | "m2ts" | "m2t" => MediaType::Mts,
        "avi" => MediaType::Avi,
        "mkv" => MediaType::Mkv,
        "webm" => MediaType::Webm,
        "xmp" => MediaType::Xmp,
        "aae" => MediaType::Aae,
        "thm" => MediaType::Thm,
        _ => MediaType::Other,
    }
}

/// The kind of a file from its name's kind and its first bytes: the name's kind when the
/// content agrees, else the kind the content alone shows, else [`MediaType::Other`]. A file
/// is kept whatever its kind; the kind only decides how its capture time is read and how it
/// is counted.
pub fn kind_of(by_name: MediaType, head: &[u8]) -> MediaType {
    if by_name != MediaType::Other && content_matches(by_name, head) {
        by_name
    } else {
        sniff(head).unwrap_or(MediaType::Other)
    }
}

/// Whether the first bytes of a file agree with the kind its extension names. Sidecars and
/// other files have no magic to check: any content agrees.
pub fn content_matches(media_type: MediaType, head: &[u8]) -> bool {
    use MediaType as M;
    let tiff = is_tiff(head);
    let brand = iso_brand(head);
    match media_type {
        M::Jpeg | M::Mpo => head.starts_with(&[0xFF, 0xD8, 0xFF]),
        // A Canon THM is a small JPEG; other tools write THM files of their own.
        M::Xmp | M::Aae | M::Thm | M::Other => true,
        M::Png => head.starts_with(b"\x89PNG\r\n\x1a\n"),
        M::Gif => head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a"),
        M::Webp => riff(head, b"WEBP"),
        M::Avi => riff(head, b"AVI "),
        M::Bmp => head.starts_with(b"BM"),
        M::Jxl => head.starts_with(&[0xFF, 0x0A]) || head.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n"),
        M::Tiff | M::Dng | M::Nef | M::Nrw | M::Arw | M::Sr2 | M::Pef | M::Srw | M::ThreeFr => tiff,
        M::Iiq => tiff || head.starts_with(b"IIII"),
        M::Cr2 => tiff && head.get(8..10) == Some(b"CR"),
        M::Crw => head.starts_with(b"II") && head.get(6..14) == Some(b"HEAPCCDR"),
        M::Raf => head.starts_with(b"FUJIFILMCCD-RAW"),
        M::Rw2 => head.starts_with(b"IIU\0"),
        M::Orf => [&b"IIRO"[..], b"IIRS", b"MMOR"]
            .iter()
            .any(|m| head.starts_with(m)),
        M::X3f => head.starts_with(b"FOVb"),
        M::Mkv | M::Webm => head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]),
        // A transport stream: sync bytes every 188 bytes (TS), or every 192 after a 4-byte
        // time code (M2TS, as AVCHD cameras write).
        M::Mts => head.first() == Some(&0x47) || head.get(4) == Some(&0x47),
        M::Heif => matches!(
            brand,
            Some(b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1")
        ),
        M::Avif => matches!(brand, Some(b"avif" | b"avis" | b"mif1" | b"msf1" | b"miaf")),
        M::Cr3 => brand == Some(b"crx "),
        // Video containers vary by recorder; any ISO base media file, or a QuickTime file
        // that opens with one of its classic atoms, is accepted as any of them.
        M::Mp4 | M::Mov | M::ThreeGp => {
            brand.is_some()
                || matches!(
                    head.get(4..8),
                    Some(b"moov" | b"mdat" | b"wide" | b"free" | b"skip")
                )
        }
    }
}

/// The kind the first bytes alone show, for a file whose name says something else.
fn sniff(head: &[u8]) -> Option<MediaType> {
    use MediaType as M;
    let by_brand = |brand: &[u8]| match brand {
        b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => M::Heif,
        b"avif" | b"avis" => M::Avif,
        b"crx " => M::Cr3,
        b"qt  " => M::Mov,
        b if b.starts_with(b"3g") => M::ThreeGp,
        _ => M::Mp4,
    };
    if let Some(brand) = iso_brand(head) {
        return Some(by_brand(brand));
    }
    [
        M::Jpeg,
        M::Png,
        M::Gif,
        M::Webp,
        M::Avi,
        M::Jxl,
        M::Cr2,
        M::Crw,
        M::Raf,
        M::Rw2,
        M::Orf,
        M::X3f,
        M::Mkv,
        M::Tiff,
    ]
    .into_iter()
    .find(|&kind| content_matches(kind, head))
}

fn is_tiff(head: &[u8]) -> bool {
    // Classic TIFF and BigTIFF, either byte order.
    [&b"II*\0"[..], b"MM\0*", b"II+\0", b"MM\0+"]
        .iter()
        .any(|m| head.starts_with(m))
}

fn riff(head: &[u8], form: &[u8; 4]) -> bool {
    head.starts_with(b"RIFF") && head.get(8..12) == Some(form)
}

fn iso_brand(head: &[u8]) -> Option<&[u8]> {
    (head.get(4..8) == Some(b"ftyp"))
        .then(|| head.get(8..12))
        .flatten()
}

/// Reads the capture time of a photo or video, or `None` when the file carries none (or it
/// cannot be read: a damaged EXIF block is not a reason to refuse the photo). The rule and
/// the formats are [`super::capture`]'s.
///
/// The file is read from its start, wherever its offset is: callers seek it back.
pub fn capture_time(file: &File, media_type: MediaType) -> Option<CaptureTime> {
    super::capture::capture_time(file, media_type)
}

pub use super::capture::{parse_exif_datetime, parse_exif_offset};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_and_magic_must_agree() {
        assert_eq!(type_from_extension(Path::new("a/IMG.JPG")), MediaType::Jpeg);
        assert_eq!(
            type_from_extension(Path::new("notes.txt")),
            MediaType::Other
        );
        assert!(content_matches(MediaType::Jpeg, &[0xFF, 0xD8, 0xFF, 0xE1]));
        assert!(!content_matches(MediaType::Jpeg, b"hello world"));
        assert!(content_matches(
            MediaType::Heif,
            b"\0\0\0\x18ftypheic\0\0\0\0"
        ));
        assert!(!content_matches(
            MediaType::Heif,
            b"\0\0\0\x18ftypisom\0\0\0\0"
        ));
        assert!(content_matches(MediaType::Cr2, b"II*\0\x10\0\0\0CR\x02\0"));
        assert!(!content_matches(MediaType::Cr2, b"II*\0\x10\0\0\0XX\x02\0"));
        assert!(content_matches(MediaType::Mov, b"\0\0\0\x08wide"));
        assert!(content_matches(MediaType::Webp, b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(!content_matches(MediaType::Png, b""));
    }

    #[test]
    fn every_kind_with_a_magic_is_recognised_by_name_and_content() {
        let cases: [(&str, &[u8]); 34] = [
            ("a.jpg", b"\xFF\xD8\xFF\xE0"),
            ("a.heic", b"\0\0\0\x18ftypheic"),
            ("a.png", b"\x89PNG\r\n\x1a\n"),
            ("a.gif", b"GIF89a"),
            ("a.webp", b"RIFF\0\0\0\0WEBP"),
            ("a.dng", b"II*\0\x08\0\0\0"),
            ("a.cr2", b"II*\0\x10\0\0\0CR"),
            ("a.cr3", b"\0\0\0\x18ftypcrx "),
            ("a.nef", b"MM\0*\0\0\0\x08"),
            ("a.arw", b"II*\0\x08\0\0\0"),
            ("a.mp4", b"\0\0\0\x18ftypmp42"),
            ("a.mov", b"\0\0\0\x14ftypqt  "),
            ("a.MPO", b"\xFF\xD8\xFF\xE1"),
            ("a.avif", b"\0\0\0\x1cftypavif"),
            ("a.jxl", b"\xFF\x0A\xFA"),
            ("a.tif", b"MM\0*\0\0\0\x08"),
            ("a.bmp", b"BM\x36\0"),
            ("a.crw", b"II\x1a\0\0\0HEAPCCDR"),
            ("a.nrw", b"MM\0*\0\0\0\x08"),
            ("a.sr2", b"II*\0\x08\0\0\0"),
            ("a.raf", b"FUJIFILMCCD-RAW 0201"),
            ("a.rw2", b"IIU\0\x18\0\0\0"),
            ("a.orf", b"IIRO\x08\0\0\0"),
            ("a.pef", b"MM\0*\0\0\0\x08"),
            ("a.srw", b"II*\0\x08\0\0\0"),
            ("a.3fr", b"II*\0\x08\0\0\0"),
            ("a.iiq", b"IIII\x01\0\0\0"),
            ("a.x3f", b"FOVb\0\0\x02\0"),
            ("a.3gp", b"\0\0\0\x14ftyp3gp4"),
            ("a.MTS", b"\0\0\0\0\x47\x40\0\x10"),
            ("a.avi", b"RIFF\0\0\0\0AVI LIST"),
            ("a.mkv", b"\x1A\x45\xDF\xA3"),
            ("a.webm", b"\x1A\x45\xDF\xA3"),
            ("a.m2ts", b"\0\0\0\0\x47\x40\0\x10"),
        ];
        let mut kinds = std::collections::BTreeSet::new();
        for (name, head) in cases {
            let kind = type_from_extension(Path::new(name));
            assert_ne!(kind, MediaType::Other, "{name}");
            assert!(content_matches(kind, head), "{name}");
            assert_eq!(kind_of(kind, head), kind, "{name}");
            // A JPEG's bytes under any other name are not that kind, and vice versa.
            if !matches!(kind, MediaType::Jpeg | MediaType::Mpo) {
                assert!(!content_matches(kind, b"\xFF\xD8\xFF\xE0"), "{name}");
                assert!(!content_matches(MediaType::Jpeg, head), "{name}");
            }
            kinds.insert(kind);
        }
        assert_eq!(kinds.len(), 33);
    }

    #[test]
    fn a_misnamed_file_is_kept_as_what_its_content_is() {
        let png = b"\x89PNG\r\n\x1a\n\0\0";
        assert_eq!(kind_of(MediaType::Jpeg, png), MediaType::Png);
        assert_eq!(kind_of(MediaType::Cr2, b"II*\0\x08\0\0\0"), MediaType::Tiff);
        assert_eq!(kind_of(MediaType::Jpeg, b"hello world"), MediaType::Other);
        assert_eq!(
            kind_of(MediaType::Other, b"\xFF\xD8\xFF\xE0"),
            MediaType::Jpeg
        );
        assert_eq!(kind_of(MediaType::Other, b"plain text"), MediaType::Other);
        assert_eq!(kind_of(MediaType::Xmp, b"<x:xmpmeta"), MediaType::Xmp);
        for sidecar in ["a.xmp", "IMG_1.AAE", "MVI_1.THM"] {
            assert_eq!(
                type_from_extension(Path::new(sidecar)).class(),
                photomesh_protocol::record::MediaClass::Sidecar
            );
        }
    }

    #[test]
    fn exif_datetimes_parse() {
        assert_eq!(parse_exif_datetime("1970:01:01 00:00:00"), Some(0));
        assert_eq!(
            parse_exif_datetime("2024:02:29 12:34:56"),
            Some(1_709_210_096)
        );
        assert_eq!(parse_exif_datetime("0000:00:00 00:00:00"), None);
        assert_eq!(parse_exif_datetime("garbage"), None);
        assert_eq!(parse_exif_offset("+05:30"), Some(330));
        assert_eq!(parse_exif_offset("-08:00"), Some(-480));
        assert_eq!(parse_exif_offset("08:00"), None);
    }

    #[test]
    fn quicktime_creation_time_is_read() {
        /// Seconds between 1904-01-01 (QuickTime's epoch) and 1970-01-01.
        const QUICKTIME_EPOCH_OFFSET: i64 = 2_082_844_800;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.mp4");
        // ftyp, then moov containing mvhd (version 0) with creation time 2024-01-01 UTC.
        let created = 1_704_067_200 + QUICKTIME_EPOCH_OFFSET;
        let mut mvhd = vec![0, 0, 0, 0];
        mvhd.extend_from_slice(&(created as u32).to_be_bytes());
        mvhd.extend_from_slice(&[0; 92]);
        let mut moov = ((8 + 8 + mvhd.len()) as u32).to_be_bytes().to_vec();
        moov.extend_from_slice(b"moov");
        moov.extend_from_slice(&((8 + mvhd.len()) as u32).to_be_bytes());
        moov.extend_from_slice(b"mvhd");
        moov.extend_from_slice(&mvhd);
        let mut file = b"\0\0\0\x10ftypisom\0\0\0\0".to_vec();
        file.extend_from_slice(&moov);
        std::fs::write(&path, &file).unwrap();
        assert_eq!(
            capture_time(&File::open(&path).unwrap(), MediaType::Mp4),
            Some(CaptureTime {
                local_seconds: 1_704_067_200,
                utc_offset_minutes: Some(0)
            })
        );
        // A truncated file yields no time, not a panic.
        std::fs::write(&path, &file[..30]).unwrap();
        assert_eq!(
            capture_time(&File::open(&path).unwrap(), MediaType::Mp4),
            None
        );
    }
}
