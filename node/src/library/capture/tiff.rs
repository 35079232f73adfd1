//! TIFF structures: the EXIF block of a JPEG, HEIF, PNG, WebP or JXL, and whole TIFF-based
//! raw files (DNG, CR2, NEF, ARW, …, RW2 with its magic 0x55, ORF with `RO`, BigTIFF).
//!
//! Only IFD0 and the Exif IFD are read, entry by entry: an entry or an IFD that points
//! outside the data is skipped, so a damaged GPS or interoperability IFD (never followed)
//! or a bad maker note hides nothing else.

use photomesh_protocol::record::CaptureTime;

use super::source::{self, Bytes, Endian};
use super::{Evidence, parse_exif_datetime, parse_exif_offset, xmp};

const TAG_DATE_TIME_ORIGINAL: u16 = 0x9003;
const TAG_OFFSET_TIME_ORIGINAL: u16 = 0x9011;
const TAG_EXIF_IFD: u16 = 0x8769;
const TAG_XMP: u16 = 0x02BC;
/// More entries than this in one IFD are not read (real IFDs have a few hundred at most).
const MAX_ENTRIES: u64 = 4096;
/// The longest string value read: dates and offsets are 20 and 7 bytes.
const MAX_STRING: u64 = 64;

/// The dates of one IFD, as written (trimmed of NULs and blanks; `None` when absent or
/// empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IfdDates {
    /// `DateTimeOriginal`.
    pub(crate) dto: Option<Vec<u8>>,
    /// `OffsetTimeOriginal`.
    pub(crate) oto: Option<Vec<u8>>,
}

/// The capture-time tags of an EXIF block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExifDates {
    /// IFD0's.
    pub(crate) ifd0: IfdDates,
    /// The Exif IFD's.
    pub(crate) exif: IfdDates,
}

impl ExifDates {
    /// Rule 1: the Exif IFD's `DateTimeOriginal`, else IFD0's, with the Exif IFD's
    /// `OffsetTimeOriginal`, else IFD0's (a malformed offset is no offset).
    pub(crate) fn time(&self) -> Option<CaptureTime> {
        let parse = |v: &Option<Vec<u8>>| {
            v.as_deref()
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(parse_exif_datetime)
        };
        let local_seconds = parse(&self.exif.dto).or_else(|| parse(&self.ifd0.dto))?;
        let offset = self.exif.oto.as_ref().or(self.ifd0.oto.as_ref());
        Some(CaptureTime {
            local_seconds,
            utc_offset_minutes: offset
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(parse_exif_offset),
        })
    }
}

/// What IFD0 and the Exif IFD of a TIFF structure say.
#[derive(Debug, Default)]
pub(crate) struct Tiff {
    /// The dates.
    pub(crate) dates: ExifDates,
    /// Where IFD0's XMP packet (tag 700) is: offset and length.
    pub(crate) xmp: Option<(u64, u64)>,
}

/// Reads a whole TIFF-based file: EXIF, else the XMP packet of IFD0.
pub(crate) fn read_file(b: &mut dyn Bytes, ev: &mut Evidence) {
    let Some(tiff) = read(b) else {
        return;
    };
    ev.set_exif(tiff.dates);
    if !ev.has_exif_time()
        && let Some((pos, len)) = tiff.xmp
    {
        ev.set_xmp(source::read_vec(b, pos, len, xmp::MAX_XMP));
    }
}

/// Reads the TIFF structure that starts at the start of `b`; `None` when it has no TIFF
/// header.
pub(crate) fn read(b: &mut dyn Bytes) -> Option<Tiff> {
    let h = header(b)?;
    let mut out = Tiff::default();
    let ifd0 = read_ifd(b, &h, h.first_ifd);
    out.dates.ifd0 = ifd0.dates;
    out.xmp = ifd0.xmp;
    if let Some(exif) = ifd0.exif_ifd {
        out.dates.exif = read_ifd(b, &h, exif).dates;
    }
    Some(out)
}

/// The dates of the first IFD of the TIFF structure at the start of `b` (a CR3's `CMT2` box
/// holds the Exif IFD that way).
pub(crate) fn first_ifd_dates(b: &mut dyn Bytes) -> Option<IfdDates> {
    let h = header(b)?;
    Some(read_ifd(b, &h, h.first_ifd).dates)
}

/// EXIF dates of the TIFF structure in `b` after an optional `Exif\0\0` header.
pub(crate) fn read_exif_block(b: &mut dyn Bytes) -> Option<ExifDates> {
    let start = if source::starts_with(b, 0, b"Exif\0") {
        6
    } else {
        0
    };
    let size = b.size();
    let mut w = source::Window::new(b, start, size);
    read(&mut w).map(|t| t.dates)
}

struct Header {
    endian: Endian,
    big: bool,
    first_ifd: u64,
}

fn header(b: &mut dyn Bytes) -> Option<Header> {
    let head: [u8; 16] = {
        let mut buf = [0u8; 16];
        let n = b.size().min(16) as usize;
        if n < 8 || !b.read_at(0, &mut buf[..n]) {
            return None;
        }
        buf
    };
    let endian = match &head[..2] {
        b"II" => Endian { little: true },
        b"MM" => Endian { little: false },
        _ => return None,
    };
    // Any magic: 42, 43 (BigTIFF), 0x55 (RW2), `RO`/`RS` (ORF), …
    let magic = endian.u16(&head[2..])?;
    if magic == 43 {
        if endian.u16(&head[4..])? != 8 {
            return None;
        }
        Some(Header {
            endian,
            big: true,
            first_ifd: endian.u64(&head[8..])?,
        })
    } else {
        Some(Header {
            endian,
            big: false,
            first_ifd: u64::from(endian.u32(&head[4..])?),
        })
    }
}

#[derive(Default)]
struct Ifd {
    dates: IfdDates,
    exif_ifd: Option<u64>,
    xmp: Option<(u64, u64)>,
}

/// Reads the tags we want from the IFD at `pos`.
fn read_ifd(b: &mut dyn Bytes, h: &Header, pos: u64) -> Ifd {
    let mut out = Ifd::default();
    let (count_len, entry_len, field_len) = if h.big { (8, 20, 8) } else { (2, 12, 4) };
    let Some(count) = source::read_vec(b, pos, count_len, 8) else {
        return out;
    };
    let count = if h.big {
        h.endian.u64(&count)
    } else {
        h.endian.u16(&count).map(u64::from)
    };
    let Some(count) = count.filter(|_| pos != 0) else {
        return out;
    };
    let table_pos = pos + count_len;
    let whole = b.size().saturating_sub(table_pos) / entry_len;
    let count = count.min(MAX_ENTRIES).min(whole);
    let Some(table) = source::read_vec(b, table_pos, count * entry_len, usize::MAX) else {
        return out;
    };
    let e = h.endian;
    for (i, entry) in table.chunks_exact(entry_len as usize).enumerate() {
        let (Some(tag), Some(typ)) = (e.u16(entry), e.u16(&entry[2..])) else {
            continue;
        };
        let n = if h.big {
            e.u64(&entry[4..])
        } else {
            e.u32(&entry[4..]).map(u64::from)
        };
        let Some(n) = n else {
            continue;
        };
        let field = &entry[(entry_len - field_len) as usize..];
        let Some(unit) = type_size(typ) else {
            continue;
        };
        let Some(total) = n.checked_mul(unit) else {
            continue;
        };
        // The value is in the entry when it fits, else at the offset the entry holds.
        let value_pos = if total <= field_len {
            table_pos + i as u64 * entry_len + (entry_len - field_len)
        } else if h.big {
            let Some(p) = e.u64(field) else { continue };
            p
        } else {
            let Some(p) = e.u32(field) else { continue };
            u64::from(p)
        };
        match tag {
            TAG_DATE_TIME_ORIGINAL if unit == 1 => out.dates.dto = string(b, value_pos, n),
            TAG_OFFSET_TIME_ORIGINAL if unit == 1 => out.dates.oto = string(b, value_pos, n),
            TAG_EXIF_IFD if n >= 1 => {
                out.exif_ifd = match typ {
                    3 => e.u16(field).map(u64::from),
                    4 | 13 => e.u32(field).map(u64::from),
                    16 | 18 if h.big => e.u64(field),
                    _ => None,
                }
            }
            TAG_XMP if unit == 1 && n > 0 => out.xmp = Some((value_pos, n)),
            _ => {}
        }
    }
    out
}

/// The byte size of one value of a TIFF type.
fn type_size(typ: u16) -> Option<u64> {
    match typ {
        1 | 2 | 6 | 7 => Some(1),
        3 | 8 => Some(2),
        4 | 9 | 11 | 13 => Some(4),
        5 | 10 | 12 | 16 | 17 | 18 => Some(8),
        _ => None,
    }
}

/// A string value: up to its first NUL, trimmed; `None` when empty or unreadable.
fn string(b: &mut dyn Bytes, pos: u64, n: u64) -> Option<Vec<u8>> {
    let raw = source::read_vec(b, pos, n.min(MAX_STRING), MAX_STRING as usize)?;
    if (raw.len() as u64) < n.min(MAX_STRING) {
        return None;
    }
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let s = raw[..end].trim_ascii();
    (!s.is_empty()).then(|| s.to_vec())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::library::capture::source::Mem;

    /// A little-endian TIFF: IFD0 with `ifd0` entries, then an Exif IFD with `exif`
    /// entries (tag, type, count, value bytes); values longer than 4 bytes go after.
    pub(crate) fn build(ifd0: &[(u16, u16, &[u8])], exif: &[(u16, u16, &[u8])]) -> Vec<u8> {
        let mut out = b"II*\0\x08\0\0\0".to_vec();
        let ifd0_len = 2 + 12 * (ifd0.len() + usize::from(!exif.is_empty())) + 4;
        let exif_pos = 8 + ifd0_len;
        let exif_len = 2 + 12 * exif.len() + 4;
        let mut data_pos = exif_pos + if exif.is_empty() { 0 } else { exif_len };
        let mut data = Vec::new();
        let mut write_ifd =
            |out: &mut Vec<u8>, entries: &[(u16, u16, &[u8])], link: Option<usize>| {
                let n = entries.len() + usize::from(link.is_some());
                out.extend_from_slice(&(n as u16).to_le_bytes());
                for &(tag, typ, value) in entries {
                    out.extend_from_slice(&tag.to_le_bytes());
                    out.extend_from_slice(&typ.to_le_bytes());
                    let unit = type_size(typ).unwrap_or(1) as usize;
                    out.extend_from_slice(&((value.len() / unit) as u32).to_le_bytes());
                    if value.len() <= 4 {
                        let mut field = [0u8; 4];
                        field[..value.len()].copy_from_slice(value);
                        out.extend_from_slice(&field);
                    } else {
                        out.extend_from_slice(&(data_pos as u32).to_le_bytes());
                        data.extend_from_slice(value);
                        data_pos += value.len();
                    }
                }
                if let Some(pos) = link {
                    out.extend_from_slice(&TAG_EXIF_IFD.to_le_bytes());
                    out.extend_from_slice(&4u16.to_le_bytes());
                    out.extend_from_slice(&1u32.to_le_bytes());
                    out.extend_from_slice(&(pos as u32).to_le_bytes());
                }
                out.extend_from_slice(&[0; 4]);
            };
        write_ifd(&mut out, ifd0, (!exif.is_empty()).then_some(exif_pos));
        if !exif.is_empty() {
            write_ifd(&mut out, exif, None);
        }
        out.extend_from_slice(&data);
        out
    }

    fn time(data: &[u8]) -> Option<CaptureTime> {
        read(&mut Mem(data))?.dates.time()
    }

    #[test]
    fn the_exif_ifd_wins_over_ifd0_and_offsets_come_along() {
        let tiff = build(
            &[(0x9003, 2, b"2000:01:01 00:00:00\0")],
            &[
                (0x9003, 2, b"2001:01:01 00:00:00\0"),
                (0x9011, 2, b"+02:00\0"),
            ],
        );
        let t = time(&tiff).unwrap();
        assert_eq!(t.local_seconds, 978_307_200);
        assert_eq!(t.utc_offset_minutes, Some(120));
        // IFD0's date when the Exif IFD's is blank.
        let tiff = build(
            &[(0x9003, 2, b"2000:01:01 00:00:00\0")],
            &[(0x9003, 2, b"    :  :     :  :  \0")],
        );
        assert_eq!(time(&tiff).unwrap().local_seconds, 946_684_800);
        assert_eq!(time(&tiff).unwrap().utc_offset_minutes, None);
    }

    #[test]
    fn a_broken_ifd_elsewhere_hides_nothing() {
        // A GPS IFD pointer (0x8825) far outside the data, an entry of an unknown type and
        // one whose value lies past the end.
        let tiff = build(
            &[
                (0x8825, 4, &0xFFFF_FF00u32.to_le_bytes()),
                (0x1234, 99, b"abcd"),
            ],
            &[
                (0x9004, 2, b"2002:02:02 02:02:02\0"),
                (0x9003, 2, b"2002:11:15 10:52:46\0"),
            ],
        );
        let mut broken = tiff.clone();
        // Make the maker-note-like first Exif entry point past the end.
        let exif_pos = 8 + 2 + 12 * 3 + 4;
        broken[exif_pos + 2 + 8..exif_pos + 2 + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let t = time(&broken).unwrap();
        assert_eq!(
            parse_exif_datetime("2002:11:15 10:52:46"),
            Some(t.local_seconds)
        );
        // A truncated Exif IFD: the entries that are there are read.
        for cut in 0..tiff.len() {
            let _ = time(&tiff[..cut]);
        }
    }

    #[test]
    fn rw2_orf_and_big_endian_magics_are_read() {
        let tiff = build(&[(0x9003, 2, b"2008:08:06 15:21:56\0")], &[]);
        for magic in [[0x55u8, 0], *b"RO"] {
            let mut t = tiff.clone();
            t[2..4].copy_from_slice(&magic);
            assert!(time(&t).is_some());
        }
        // A big-endian IFD0 with an inline 4-byte offset.
        let mut be = b"MM\0*\0\0\0\x08\0\x01".to_vec();
        be.extend_from_slice(&[0x90, 0x11, 0, 2, 0, 0, 0, 4]);
        be.extend_from_slice(b"+01\0");
        be.extend_from_slice(&[0; 4]);
        let t = read(&mut Mem(&be)).unwrap();
        assert_eq!(t.dates.ifd0.oto.as_deref(), Some(&b"+01"[..]));
        assert!(t.dates.time().is_none());
        // Not a TIFF.
        assert!(read(&mut Mem(b"XX*\0\x08\0\0\0")).is_none());
        assert!(read(&mut Mem(b"II*\0")).is_none());
    }

    #[test]
    fn an_exif_ifd_pointer_of_type_ifd_is_followed() {
        let mut tiff = build(&[], &[(0x9003, 2, b"2019:10:02 15:12:43\0")]);
        // IFD0's only entry is the Exif IFD pointer: retype it from LONG to IFD (13).
        tiff[8 + 2 + 2..8 + 2 + 4].copy_from_slice(&13u16.to_le_bytes());
        assert!(time(&tiff).is_some());
    }
}
