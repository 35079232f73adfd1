//! When a photo or video was taken: its capture time, read from the file's own metadata.
//!
//! The rule is exiftool's, as `tests/corpus/README.md` states it, applied to the file's main
//! image only (for HEIF the primary item; never a second picture of an MPO, a thumbnail or a
//! preview image's own metadata when the main one has any):
//!
//! 1. EXIF `DateTimeOriginal` of the Exif IFD, else of IFD0, with `OffsetTimeOriginal` (Exif
//!    IFD, else IFD0) when present;
//! 2. else a date the format itself carries: CanonRaw's time stamp (CRW), SigmaRaw's `TIME`
//!    property (X3F), the H.264 `MDPM` SEI of an AVCHD stream (MTS), RIFF `IDIT` (AVI),
//!    Matroska `DateUTC` (MKV, WebM), with the offset the value carries (`DateUTC` is UTC);
//! 3. else, for QuickTime-based videos, the `mvhd` creation time, as UTC;
//! 4. else XMP `exif:DateTimeOriginal`, `photoshop:DateCreated`, `xmp:CreateDate`, with the
//!    offset written in the value.
//!
//! The file is parsed by hand, format by format (see the submodules). Every read is bounded,
//! by a byte budget and a count of reads, so a damaged or hostile file gives no time, never
//! a panic, a hang or a large allocation; a damaged part (a bad GPS IFD, a truncated box)
//! only hides what it holds.
//!
//! Known differences from exiftool 12.57, deliberate: an AVI `IDIT` written as
//! `YYYY/MM/DD HH:MM:SS` keeps its seconds (exiftool drops them), and the whole first video
//! frames of an AVCHD stream are searched for the `MDPM` SEI (exiftool looks at the first
//! kilobyte of the first frame, and one more frame).

mod isobmff;
mod jpeg;
mod png;
mod raw;
mod riff;
mod source;
mod tiff;
mod video;
mod xmp;

use std::fs::File;

use photomesh_protocol::record::{CaptureTime, MediaType};

use self::source::{Bytes, FileBytes, Mem};

/// Reads the capture time of a file of kind `media_type` (as [`super::media::kind_of`] gave
/// it), from the file's start whatever its offset; `None` when it carries none by the rule
/// above, or when it cannot be read. At most a few MB are read, whatever the file's size.
pub fn capture_time(file: &File, media_type: MediaType) -> Option<CaptureTime> {
    let mut bytes = FileBytes::new(file)?;
    capture_time_of(&mut bytes, media_type)
}

/// [`capture_time`] of a file's content held in memory.
pub fn capture_time_in(data: &[u8], media_type: MediaType) -> Option<CaptureTime> {
    capture_time_of(&mut Mem(data), media_type)
}

fn capture_time_of(b: &mut dyn Bytes, media_type: MediaType) -> Option<CaptureTime> {
    use MediaType as M;
    let mut ev = Evidence::default();
    match media_type {
        M::Jpeg | M::Mpo | M::Thm => jpeg::read(b, &mut ev),
        M::Heif | M::Avif => isobmff::read_heif(b, &mut ev),
        M::Cr3 => isobmff::read_cr3(b, &mut ev),
        M::Mp4 | M::Mov | M::ThreeGp => isobmff::read_quicktime(b, &mut ev),
        M::Jxl => isobmff::read_jxl(b, &mut ev),
        M::Png => png::read_png(b, &mut ev),
        M::Gif => png::read_gif(b, &mut ev),
        M::Webp => riff::read_webp(b, &mut ev),
        M::Avi => riff::read_avi(b, &mut ev),
        M::Tiff
        | M::Dng
        | M::Cr2
        | M::Nef
        | M::Nrw
        | M::Arw
        | M::Sr2
        | M::Pef
        | M::Srw
        | M::ThreeFr
        | M::Iiq
        | M::Rw2
        | M::Orf => tiff::read_file(b, &mut ev),
        M::Crw => raw::read_crw(b, &mut ev),
        M::Raf => raw::read_raf(b, &mut ev),
        M::X3f => raw::read_x3f(b, &mut ev),
        M::Mts => video::read_mts(b, &mut ev),
        M::Mkv | M::Webm => video::read_matroska(b, &mut ev),
        M::Xmp => {
            ev.xmp = source::read_vec(b, 0, u64::MAX, xmp::MAX_XMP);
        }
        // A Minolta MRW has no kind of its own: it is recognised by its content.
        M::Other => raw::read_mrw(b, &mut ev),
        M::Bmp | M::Aae => {}
    }
    ev.decide()
}

/// What a file says about its capture time, by the rule's four sources.
#[derive(Debug, Default)]
pub(crate) struct Evidence {
    /// Rule 1: the main image's EXIF, once found.
    pub(crate) exif: Option<tiff::ExifDates>,
    /// Rule 2: the date the format itself carries.
    pub(crate) native: Option<CaptureTime>,
    /// Rule 3: the QuickTime creation time (UTC).
    pub(crate) quicktime: Option<CaptureTime>,
    /// Rule 4: the main image's XMP packet (at most [`xmp::MAX_XMP`] bytes).
    pub(crate) xmp: Option<Vec<u8>>,
}

impl Evidence {
    /// Whether rule 1 already gives a time: nothing else need be read.
    pub(crate) fn has_exif_time(&self) -> bool {
        self.exif.as_ref().and_then(tiff::ExifDates::time).is_some()
    }

    /// Records EXIF dates unless the main image's were found already.
    pub(crate) fn set_exif(&mut self, dates: tiff::ExifDates) {
        if self.exif.is_none() {
            self.exif = Some(dates);
        }
    }

    /// Records an XMP packet unless the main image's was found already.
    pub(crate) fn set_xmp(&mut self, packet: Option<Vec<u8>>) {
        if self.xmp.is_none() {
            self.xmp = packet;
        }
    }

    fn decide(&self) -> Option<CaptureTime> {
        self.exif
            .as_ref()
            .and_then(tiff::ExifDates::time)
            .or(self.native)
            .or(self.quicktime)
            .or_else(|| self.xmp.as_deref().and_then(xmp::capture_time))
    }
}

/// Parses EXIF's `YYYY:MM:DD HH:MM:SS` (anything may follow) into seconds since 1970 in the
/// camera's zone. Year 0000, or a month, day or time out of range, is no date.
pub fn parse_exif_datetime(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let b = b.get(..19)?;
    let seps = [(4, b':'), (7, b':'), (10, b' '), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let num = |from: usize, to: usize| digits(&b[from..to]);
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, se) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    civil_seconds(y, mo, d, h, mi, se)
}

/// Seconds since 1970 of a wall-clock date and time, or `None` when out of range (year 0).
pub(crate) fn civil_seconds(y: i64, mo: i64, d: i64, h: i64, mi: i64, se: i64) -> Option<i64> {
    let valid = (1..=9999).contains(&y)
        && (1..=12).contains(&mo)
        && (1..=31).contains(&d)
        && (0..=23).contains(&h)
        && (0..=59).contains(&mi)
        && (0..=60).contains(&se);
    valid.then(|| days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// The value of ASCII decimal digits (at least one, at most 18), or `None`.
pub(crate) fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |n, &c| n * 10 + i64::from(c - b'0')))
}

/// Parses EXIF's `+HH:MM` offset into minutes.
pub fn parse_exif_offset(s: &str) -> Option<i16> {
    let b = s.trim().as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    offset_minutes(b[0], &b[1..3], &b[4..6])
}

/// Minutes of an offset given as its sign and two-digit hours and minutes.
pub(crate) fn offset_minutes(sign: u8, hours: &[u8], minutes: &[u8]) -> Option<i16> {
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = (digits(hours)?, digits(minutes)?);
    (hours.len() == 2 && minutes.len() == 2 && h <= 23 && m <= 59)
        .then(|| sign * (h * 60 + m) as i16)
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A capture time given as Unix seconds of the camera's wall clock (no zone), as CanonRaw
/// and SigmaRaw store it; `None` for zero.
pub(crate) fn wall_clock_unix(seconds: i64) -> Option<CaptureTime> {
    (seconds != 0).then_some(CaptureTime {
        local_seconds: seconds,
        utc_offset_minutes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_datetimes_parse_strictly() {
        assert_eq!(parse_exif_datetime("1970:01:01 00:00:00"), Some(0));
        assert_eq!(
            parse_exif_datetime(" 2024:02:29 12:34:56.123+01:00"),
            Some(1_709_210_096)
        );
        for bad in [
            "0000:00:00 00:00:00",
            "0000:01:01 00:00:00",
            "2024-02-29 12:34:56",
            "2024:02:29T12:34:56",
            "2024:+2:29 12:34:56",
            "2024:13:01 00:00:00",
            "2024:12:01 24:00:00",
            "    :  :     :  :  ",
            "2024:02:29 12:34",
            "",
            "garbage",
        ] {
            assert_eq!(parse_exif_datetime(bad), None, "{bad:?}");
        }
        assert_eq!(parse_exif_offset("+05:30"), Some(330));
        assert_eq!(parse_exif_offset("-08:00"), Some(-480));
        assert_eq!(parse_exif_offset("+00:00"), Some(0));
        for bad in [
            "08:00", "+8:00", "+08:0", "+08-00", "+24:00", "+05:60", "", "+05:30x",
        ] {
            assert_eq!(parse_exif_offset(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_rules_apply_in_order() {
        let t = |s, o| CaptureTime {
            local_seconds: s,
            utc_offset_minutes: o,
        };
        let mut ev = Evidence {
            xmp: Some(b"<x xmlns:xmp='http://ns.adobe.com/xap/1.0/' xmp:CreateDate='2001-01-01T00:00:05Z'/>".to_vec()),
            ..Evidence::default()
        };
        assert_eq!(ev.decide(), Some(t(978_307_205, Some(0))));
        ev.quicktime = Some(t(3, Some(0)));
        assert_eq!(ev.decide(), Some(t(3, Some(0))));
        ev.native = Some(t(2, None));
        assert_eq!(ev.decide(), Some(t(2, None)));
        // EXIF without a valid date does not count.
        ev.exif = Some(tiff::ExifDates::default());
        assert_eq!(ev.decide(), Some(t(2, None)));
        let mut dates = tiff::ExifDates::default();
        dates.ifd0.dto = Some(b"1970:01:01 00:00:01".to_vec());
        ev.exif = Some(dates);
        assert_eq!(ev.decide(), Some(t(1, None)));
    }

    /// A huge file (sparse: its header, then zeros or endless packets) is read within the
    /// budget, whatever its kind says, and quickly.
    #[test]
    fn a_huge_file_is_read_within_the_budget() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let heads: [&[u8]; 12] = [
            b"\xFF\xD8\xFF\xE1\xFF\xFF",
            b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0mdat",
            b"\0\0\0\x14ftypqt  \0\0\0\0qt  \0\0\0\x01mdat\0\0\0\x02\0\0\0\0",
            b"\x89PNG\r\n\x1a\n\0\0\x20\0IDAT",
            b"GIF89a\x01\0\x01\0\0\0\0",
            b"RIFF\xFF\xFF\xFF\xFFAVI LIST\xF0\xFF\xFF\xFFmovi",
            b"II*\0\x08\0\0\0\xFF\xFF",
            b"\x1A\x45\xDF\xA3\x80\x18\x53\x80\x67\x01\xFF\xFF\xFF\xFF\xFF\xFF\xFF",
            b"II\x1a\0\0\0HEAPCCDR",
            b"FOVb",
            b"\0MRM\xFF\xFF\xFF\xFF",
            b"<x:xmpmeta>",
        ];
        for (i, head) in heads.iter().enumerate() {
            let path = dir.path().join(format!("f{i}"));
            let mut f = File::create(&path).unwrap();
            f.write_all(head).unwrap();
            // A PNG of many small image data chunks.
            if i == 3 {
                for _ in 0..20_000 {
                    f.write_all(&[0, 0, 0x20, 0]).unwrap();
                    f.write_all(b"IDAT").unwrap();
                    f.seek(SeekFrom::Current(0x2000 + 4)).unwrap();
                }
            }
            f.set_len(4 << 30).unwrap();
            drop(f);
            let file = File::open(&path).unwrap();
            for kind in MediaType::ALL {
                let mut bytes = FileBytes::new(&file).unwrap();
                let _ = capture_time_of(&mut bytes, kind);
                assert!(bytes.spent() <= source::READ_BUDGET, "{i} {kind:?}");
            }
        }
        // A transport stream whose packets go on and on, with no MDPM.
        let path = dir.path().join("ts");
        let mut packet = vec![0x47, 0x41, 0x00, 0x10];
        packet.resize(188, 0x11);
        std::fs::write(&path, packet.repeat(50_000)).unwrap();
        let file = File::open(&path).unwrap();
        let mut bytes = FileBytes::new(&file).unwrap();
        assert_eq!(capture_time_of(&mut bytes, MediaType::Mts), None);
        assert!(bytes.spent() <= 8 << 20);
    }

    /// Garbage of every kind and length gives no time, or a time, but never a panic.
    #[test]
    fn garbage_never_panics() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let magics: [&[u8]; 14] = [
            b"\xFF\xD8\xFF\xE1",
            b"\0\0\0\x18ftypheic",
            b"\0\0\0\x18ftypcrx ",
            b"\0\0\0\x0cJXL \r\n\x87\n",
            b"\x89PNG\r\n\x1a\n",
            b"GIF89a",
            b"RIFF\0\0\0\0WEBP",
            b"RIFF\0\0\0\0AVI ",
            b"II*\0",
            b"MM\0*",
            b"II\x1a\0\0\0HEAPCCDR",
            b"FUJIFILMCCD-RAW ",
            b"\0MRM",
            b"\x1A\x45\xDF\xA3",
        ];
        for round in 0..3000 {
            let len = (next() % 600) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Small numbers make offsets and sizes that point inside the buffer.
            if round % 2 == 0 {
                for b in data.iter_mut() {
                    *b %= 24;
                }
            }
            let magic = magics[round % magics.len()];
            let mut file = magic.to_vec();
            file.extend_from_slice(&data);
            for kind in MediaType::ALL {
                let _ = capture_time_in(&file, kind);
                let _ = capture_time_in(&data, kind);
            }
        }
    }
}
