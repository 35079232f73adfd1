//! JPEG (and MPO, THM, and the JPEGs inside RAF and X3F files): the first `Exif` and XMP
//! APP1 segments before the image data. The later pictures of an MPO, and gain maps, come
//! after the first image's scan and are never reached.

use super::source::{self, Bytes, Window};
use super::{Evidence, tiff, xmp};

/// More segments than this before the scan are not read.
const MAX_SEGMENTS: usize = 1024;
const XMP_ID: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
/// How much junk between two segments is skipped.
const MAX_JUNK: u64 = 4096;

/// Reads the JPEG that starts at the start of `b`.
pub(crate) fn read(b: &mut dyn Bytes, ev: &mut Evidence) {
    if !source::starts_with(b, 0, &[0xFF, 0xD8]) {
        return;
    }
    let mut pos = 2u64;
    let mut xmp_packet = None;
    for _ in 0..MAX_SEGMENTS {
        let Some([ff, mut marker]) = source::array::<2>(b, pos) else {
            break;
        };
        if ff != 0xFF {
            // Junk between segments (as exiftool does, skip to the next marker).
            match resync(b, pos) {
                Some(next) => {
                    pos = next;
                    continue;
                }
                None => break,
            }
        }
        // Fill bytes.
        let mut fills = 0;
        while marker == 0xFF && fills < 64 {
            pos += 1;
            fills += 1;
            match source::array::<1>(b, pos + 1) {
                Some([m]) => marker = m,
                None => return,
            }
        }
        match marker {
            0xD9 | 0xDA => break,
            0x01 | 0xD0..=0xD8 => {
                pos += 2;
                continue;
            }
            _ => {}
        }
        let Some(len) = source::be16(b, pos + 2).filter(|&l| l >= 2) else {
            break;
        };
        let (data, data_len) = (pos + 4, u64::from(len) - 2);
        if marker == 0xE1 {
            if ev.exif.is_none() && source::starts_with(b, data, b"Exif\0") {
                let mut w = Window::new(b, data + 6, data_len.saturating_sub(6));
                if let Some(t) = tiff::read(&mut w) {
                    ev.set_exif(t.dates);
                }
            } else if xmp_packet.is_none() && source::starts_with(b, data, XMP_ID) {
                let id = XMP_ID.len() as u64;
                xmp_packet =
                    source::read_vec(b, data + id, data_len.saturating_sub(id), xmp::MAX_XMP);
            }
        }
        pos = data + data_len;
    }
    if !ev.has_exif_time() {
        ev.set_xmp(xmp_packet);
    }
}

/// The next `0xFF` within a little of `pos`, where a marker may start again.
fn resync(b: &mut dyn Bytes, pos: u64) -> Option<u64> {
    let ahead = source::read_vec(b, pos, MAX_JUNK, MAX_JUNK as usize)?;
    let at = ahead.iter().position(|&c| c == 0xFF)?;
    Some(pos + at as u64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::library::capture::source::Mem;
    use crate::library::capture::tiff::tests::build;

    /// A JPEG with the given APP segments, then a scan.
    pub(crate) fn jpeg(segments: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        for (marker, data) in segments {
            out.extend_from_slice(&[0xFF, *marker]);
            out.extend_from_slice(&((data.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&[0xFF, 0xDA, 0, 2, 0x12, 0x34, 0xFF, 0xD9]);
        out
    }

    pub(crate) fn exif_app1(tiff: &[u8]) -> Vec<u8> {
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(tiff);
        app1
    }

    #[test]
    fn the_first_exif_segment_is_read_and_damage_only_hides() {
        let tiff = build(&[], &[(0x9003, 2, b"2005:01:14 08:57:59\0")]);
        let other = build(&[], &[(0x9003, 2, b"1999:01:01 00:00:00\0")]);
        let file = jpeg(&[
            (0xE0, b"JFIF\0\x01\x02".to_vec()),
            (0xE1, exif_app1(&tiff)),
            (0xE1, exif_app1(&other)),
        ]);
        let mut ev = Evidence::default();
        read(&mut Mem(&file), &mut ev);
        assert_eq!(
            ev.decide().map(|t| t.local_seconds),
            super::super::parse_exif_datetime("2005:01:14 08:57:59")
        );
        for cut in 0..file.len() {
            let mut ev = Evidence::default();
            read(&mut Mem(&file[..cut]), &mut ev);
            let _ = ev.decide();
        }
        // Junk between two segments is skipped.
        let mut junky = jpeg(&[
            (0xED, b"Photoshop 3.0\0".to_vec()),
            (0xE1, exif_app1(&tiff)),
        ]);
        let at = 2 + 4 + 14;
        junky.splice(at..at, [0x12; 16]);
        let mut ev = Evidence::default();
        read(&mut Mem(&junky), &mut ev);
        assert!(ev.decide().is_some());
    }

    #[test]
    fn xmp_is_kept_when_exif_has_no_date() {
        let mut xmp_seg = XMP_ID.to_vec();
        xmp_seg.extend_from_slice(
            b"<x:xmpmeta><rdf:Description xmlns:photoshop='http://ns.adobe.com/photoshop/1.0/' photoshop:DateCreated='2010-05-06T07:08:09-04:00'/></x:xmpmeta>",
        );
        let file = jpeg(&[(0xE1, exif_app1(&build(&[], &[]))), (0xE1, xmp_seg)]);
        let mut ev = Evidence::default();
        read(&mut Mem(&file), &mut ev);
        let t = ev.decide().unwrap();
        assert_eq!(t.utc_offset_minutes, Some(-240));
    }
}
