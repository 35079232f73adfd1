//! Raw formats that are not TIFF at their start: Canon CRW (CIFF heaps), Fujifilm RAF (an
//! embedded JPEG), Sigma X3F (an embedded JPEG, else the `TIME` property) and Minolta MRW
//! (a TIFF block).

use super::source::{self, Bytes, Window};
use super::{Evidence, digits, jpeg, tiff, wall_clock_unix};

/// CIFF's `TimeStamp` record: Unix seconds of the camera's clock, then zone fields.
const CIFF_TIME_STAMP: u16 = 0x180e;
/// More CIFF directory entries than this are not read, in all.
const MAX_CIFF_ENTRIES: usize = 10_000;
/// The largest X3F property list read.
const MAX_PROPERTIES: usize = 1 << 20;

/// Reads a Canon CRW: the time stamp of its CIFF heaps (searched depth-first).
pub(crate) fn read_crw(b: &mut dyn Bytes, ev: &mut Evidence) {
    let Some(head) = source::array::<14>(b, 0) else {
        return;
    };
    if &head[..2] != b"II" || &head[6..14] != b"HEAPCCDR" {
        return;
    }
    let header_len = u64::from(u32::from_le_bytes([head[2], head[3], head[4], head[5]]));
    let size = b.size();
    let mut budget = MAX_CIFF_ENTRIES;
    if let Some(seconds) = ciff_heap(
        b,
        header_len,
        size.saturating_sub(header_len),
        0,
        &mut budget,
    ) {
        ev.native = wall_clock_unix(i64::from(seconds));
    }
}

/// Searches the CIFF heap `[start, start + len)` for the time stamp.
fn ciff_heap(
    b: &mut dyn Bytes,
    start: u64,
    len: u64,
    depth: u32,
    budget: &mut usize,
) -> Option<u32> {
    if depth > 8 || len < 6 {
        return None;
    }
    let dir = u64::from(source::le32(b, start + len - 4)?);
    let dir_pos = start.checked_add(dir)?;
    let count = u16::from_le_bytes(source::array::<2>(b, dir_pos)?);
    for i in 0..u64::from(count) {
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        let Some(e) = source::array::<10>(b, dir_pos + 2 + 10 * i) else {
            break;
        };
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let size = u64::from(u32::from_le_bytes([e[2], e[3], e[4], e[5]]));
        let offset = u64::from(u32::from_le_bytes([e[6], e[7], e[8], e[9]]));
        let in_entry = tag & 0xC000 == 0x4000;
        if tag & 0x3FFF == CIFF_TIME_STAMP {
            let seconds = if in_entry {
                u32::from_le_bytes([e[2], e[3], e[4], e[5]])
            } else {
                source::le32(b, start.checked_add(offset)?)?
            };
            return Some(seconds);
        }
        if !in_entry && matches!(tag & 0x3800, 0x2800 | 0x3000) {
            let Some(sub) = start.checked_add(offset) else {
                continue;
            };
            if sub.checked_add(size).is_none_or(|end| end > start + len) {
                continue;
            }
            if let Some(found) = ciff_heap(b, sub, size, depth + 1, budget) {
                return Some(found);
            }
        }
    }
    None
}

/// Reads a Fujifilm RAF: the EXIF of the JPEG whose place the header gives.
pub(crate) fn read_raf(b: &mut dyn Bytes, ev: &mut Evidence) {
    if !source::starts_with(b, 0, b"FUJIFILMCCD-RAW") {
        return;
    }
    let (Some(offset), Some(len)) = (source::be32(b, 84), source::be32(b, 88)) else {
        return;
    };
    jpeg::read(&mut Window::new(b, offset.into(), len.into()), ev);
}

/// Reads a Sigma X3F: the EXIF of its JPEG preview when it has one (newer models), else
/// the `TIME` property (Unix seconds of the camera's clock).
pub(crate) fn read_x3f(b: &mut dyn Bytes, ev: &mut Evidence) {
    if !source::starts_with(b, 0, b"FOVb") {
        return;
    }
    let size = b.size();
    let Some(dir) = size.checked_sub(4).and_then(|p| source::le32(b, p)) else {
        return;
    };
    let dir = u64::from(dir);
    let Some(head) = source::array::<12>(b, dir) else {
        return;
    };
    if &head[..4] != b"SECd" {
        return;
    }
    let count = u32::from_le_bytes([head[8], head[9], head[10], head[11]]).min(1024);
    let mut entries = Vec::new();
    for i in 0..u64::from(count) {
        let Some(e) = source::array::<12>(b, dir + 12 + 12 * i) else {
            break;
        };
        let offset = u64::from(u32::from_le_bytes([e[0], e[1], e[2], e[3]]));
        let len = u64::from(u32::from_le_bytes([e[4], e[5], e[6], e[7]]));
        entries.push(([e[8], e[9], e[10], e[11]], offset, len));
    }
    // A JPEG preview: version 2.0, type 2, format 18.
    const JPEG_PREVIEW: &[u8] = b"SECi\0\0\x02\0\x02\0\0\0\x12\0\0\0";
    for &(kind, offset, len) in &entries {
        if matches!(&kind, b"IMAG" | b"IMA2")
            && len > 28
            && source::starts_with(b, offset, JPEG_PREVIEW)
            && source::starts_with(b, offset + 28, &[0xFF, 0xD8, 0xFF, 0xE1])
        {
            jpeg::read(&mut Window::new(b, offset + 28, len - 28), ev);
            break;
        }
    }
    if ev.has_exif_time() {
        return;
    }
    if let Some(&(_, offset, len)) = entries.iter().find(|e| &e.0 == b"PROP")
        && let Some(props) = source::read_vec(b, offset, len, MAX_PROPERTIES)
        && let Some(value) = x3f_property(&props, "TIME")
    {
        let seconds = digits(value.trim().as_bytes());
        ev.native = seconds.and_then(wall_clock_unix);
    }
}

/// The value of the property `name` of an X3F property list (`SECp`: UTF-16 strings).
fn x3f_property(p: &[u8], name: &str) -> Option<String> {
    if !p.starts_with(b"SECp") {
        return None;
    }
    let le = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            p.get(at..at.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    let (entries, format, chars) = (le(8)? as usize, le(12)?, le(20)? as usize);
    if format != 0 {
        return None;
    }
    let char_pos = entries.checked_mul(8)?.checked_add(24)?;
    let text: Vec<u16> = p
        .get(char_pos..)?
        .chunks_exact(2)
        .take(chars)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let string_at = |i: usize| -> Option<String> {
        let s = text.get(i..)?;
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        String::from_utf16(&s[..end.min(256)]).ok()
    };
    for i in 0..entries.min(4096) {
        let (Some(name_at), Some(value_at)) = (le(24 + 8 * i), le(28 + 8 * i)) else {
            break;
        };
        if string_at(name_at as usize).as_deref() == Some(name) {
            return string_at(value_at as usize);
        }
    }
    None
}

/// Reads a Minolta MRW (a file of no known kind that starts with its magic): the TIFF of
/// its `TTW` block.
pub(crate) fn read_mrw(b: &mut dyn Bytes, ev: &mut Evidence) {
    if !source::starts_with(b, 0, b"\0MRM") {
        return;
    }
    let Some(data_start) = source::be32(b, 4).map(|n| u64::from(n) + 8) else {
        return;
    };
    let mut pos = 8u64;
    for _ in 0..64 {
        if pos.saturating_add(8) > data_start {
            return;
        }
        let Some(h) = source::array::<8>(b, pos) else {
            return;
        };
        let len = u64::from(u32::from_be_bytes([h[4], h[5], h[6], h[7]]));
        if &h[..4] == b"\0TTW" {
            let Some(t) = tiff::read(&mut Window::new(b, pos + 8, len)) else {
                return;
            };
            ev.set_exif(t.dates);
            return;
        }
        pos = pos.saturating_add(8).saturating_add(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::capture::source::Mem;

    #[test]
    fn a_crw_time_stamp_is_found_in_a_sub_heap() {
        // Root heap: one entry, a sub-heap (0x300a) holding the time stamp record.
        let mut file = b"II\x1a\0\0\0HEAPCCDR\x02\0\x01\0\0\0\0\0\0\0\0\0".to_vec();
        assert_eq!(file.len(), 26);
        let mut sub = Vec::new();
        sub.extend_from_slice(&1_068_485_966u32.to_le_bytes());
        sub.extend_from_slice(&[0; 8]);
        let sub_dir = sub.len() as u32;
        sub.extend_from_slice(&1u16.to_le_bytes());
        sub.extend_from_slice(&CIFF_TIME_STAMP.to_le_bytes());
        sub.extend_from_slice(&12u32.to_le_bytes());
        sub.extend_from_slice(&0u32.to_le_bytes());
        sub.extend_from_slice(&sub_dir.to_le_bytes());
        let mut heap = sub.clone();
        let root_dir = heap.len() as u32;
        heap.extend_from_slice(&1u16.to_le_bytes());
        heap.extend_from_slice(&0x300au16.to_le_bytes());
        heap.extend_from_slice(&(sub.len() as u32).to_le_bytes());
        heap.extend_from_slice(&0u32.to_le_bytes());
        heap.extend_from_slice(&root_dir.to_le_bytes());
        file.extend(heap);
        let mut ev = Evidence::default();
        read_crw(&mut Mem(&file), &mut ev);
        assert_eq!(
            ev.decide().map(|t| (t.local_seconds, t.utc_offset_minutes)),
            Some((1_068_485_966, None))
        );
        for cut in 0..file.len() {
            read_crw(&mut Mem(&file[..cut]), &mut Evidence::default());
        }
        // A heap that contains itself is searched a bounded number of times.
        let mut looped = file.clone();
        let n = looped.len();
        looped[n - 12..n - 8].copy_from_slice(&((n - 26) as u32).to_le_bytes());
        read_crw(&mut Mem(&looped), &mut Evidence::default());
    }

    #[test]
    fn x3f_properties_are_read() {
        let mut p = b"SECp\0\0\x02\0".to_vec();
        p.extend_from_slice(&2u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        let chars: Vec<u16> = "ISO\u{0}100\u{0}TIME\u{0}978307200\u{0}"
            .encode_utf16()
            .collect();
        p.extend_from_slice(&(chars.len() as u32).to_le_bytes());
        for (name, value) in [(0u32, 4u32), (8, 13)] {
            p.extend_from_slice(&name.to_le_bytes());
            p.extend_from_slice(&value.to_le_bytes());
        }
        for c in &chars {
            p.extend_from_slice(&c.to_le_bytes());
        }
        assert_eq!(x3f_property(&p, "TIME").as_deref(), Some("978307200"));
        assert_eq!(x3f_property(&p, "ISO").as_deref(), Some("100"));
        assert_eq!(x3f_property(&p, "NONE"), None);
        for cut in 0..p.len() {
            let _ = x3f_property(&p[..cut], "TIME");
        }
    }
}
