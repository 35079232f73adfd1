//! ISO base media files: HEIF/AVIF (the primary item's `Exif` and XMP items), CR3 (the
//! `CMT1`/`CMT2` TIFF boxes in Canon's `uuid` box of `moov`), MP4/MOV/3GP (`mvhd`, and the
//! same Canon boxes that Canon's cameras also write in their videos) and JPEG XL (`Exif` and
//! `xml ` boxes).

use photomesh_protocol::record::CaptureTime;

use super::source::{self, Bytes, Mem, Window};
use super::{Evidence, tiff, xmp};

/// More boxes than this in one container are not looked at.
const MAX_BOXES: usize = 4096;
/// The largest `meta` box of a HEIF read (the items' data is outside it, or in `idat`).
const MAX_META: u64 = 4 << 20;
/// The most bytes of an `Exif` item read.
const MAX_EXIF_ITEM: usize = 4 << 20;
/// Canon's metadata `uuid` box (in `moov` of CR3 files and Canon videos).
const CANON_UUID: [u8; 16] = [
    0x85, 0xc0, 0xb6, 0x87, 0x82, 0x0f, 0x11, 0xe0, 0x81, 0x11, 0xf4, 0xce, 0x46, 0x2b, 0x6a, 0x48,
];
/// The `uuid` box of an XMP packet (top level of MP4 files).
const XMP_UUID: [u8; 16] = [
    0xbe, 0x7a, 0xcf, 0xcb, 0x97, 0xa9, 0x42, 0xe8, 0x9c, 0x71, 0x99, 0x94, 0x91, 0xe3, 0xaf, 0xac,
];
/// Seconds between 1904-01-01 (QuickTime's epoch) and 1970-01-01.
pub(crate) const QUICKTIME_EPOCH_OFFSET: i64 = 2_082_844_800;

/// A box: its type, where its payload starts and how long it is.
#[derive(Clone, Copy, Debug)]
struct BoxAt {
    kind: [u8; 4],
    start: u64,
    len: u64,
}

/// The boxes in `[start, end)` of `b`, in order; stops at the first damaged header.
fn boxes(b: &mut dyn Bytes, start: u64, end: u64) -> Vec<BoxAt> {
    let end = end.min(b.size());
    let mut out = Vec::new();
    let mut pos = start;
    while out.len() < MAX_BOXES && pos.saturating_add(8) <= end {
        let Some(header) = source::array::<8>(b, pos) else {
            break;
        };
        let size32 = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let (size, header_len) = match size32 {
            0 => (end - pos, 8),
            1 => match source::be64(b, pos + 8) {
                Some(s) => (s, 16),
                None => break,
            },
            s => (u64::from(s), 8),
        };
        if size < header_len || size > end - pos {
            break;
        }
        let kind = [header[4], header[5], header[6], header[7]];
        out.push(BoxAt {
            kind,
            start: pos + header_len,
            len: size - header_len,
        });
        pos += size;
    }
    out
}

fn find(list: &[BoxAt], kind: &[u8; 4]) -> Option<BoxAt> {
    list.iter().find(|x| &x.kind == kind).copied()
}

fn top_level(b: &mut dyn Bytes) -> Vec<BoxAt> {
    let size = b.size();
    boxes(b, 0, size)
}

/// The TIFF dates of Canon's `uuid` box in `moov`: `CMT1` is IFD0, `CMT2` the Exif IFD.
fn canon_exif(b: &mut dyn Bytes, moov: BoxAt) -> Option<tiff::ExifDates> {
    let children = boxes(b, moov.start, moov.start + moov.len);
    let canon = children.iter().find(|x| {
        &x.kind == b"uuid" && x.len >= 16 && source::array::<16>(b, x.start) == Some(CANON_UUID)
    })?;
    let inner = boxes(b, canon.start + 16, canon.start + canon.len);
    let mut dates = tiff::ExifDates::default();
    if let Some(cmt1) = find(&inner, b"CMT1") {
        dates.ifd0 = tiff::first_ifd_dates(&mut Window::new(b, cmt1.start, cmt1.len))?;
    }
    if let Some(cmt2) = find(&inner, b"CMT2") {
        dates.exif = tiff::first_ifd_dates(&mut Window::new(b, cmt2.start, cmt2.len))?;
    }
    Some(dates)
}

/// Reads a CR3.
pub(crate) fn read_cr3(b: &mut dyn Bytes, ev: &mut Evidence) {
    let top = top_level(b);
    if let Some(moov) = find(&top, b"moov")
        && let Some(dates) = canon_exif(b, moov)
    {
        ev.set_exif(dates);
    }
}

/// Reads an MP4, MOV or 3GP: Canon's EXIF, the `mvhd` creation time, XMP.
pub(crate) fn read_quicktime(b: &mut dyn Bytes, ev: &mut Evidence) {
    let top = top_level(b);
    let Some(moov) = find(&top, b"moov") else {
        return;
    };
    if let Some(dates) = canon_exif(b, moov) {
        ev.set_exif(dates);
    }
    let children = boxes(b, moov.start, moov.start + moov.len);
    if let Some(mvhd) = find(&children, b"mvhd") {
        ev.quicktime = mvhd_creation(b, mvhd);
    }
    if ev.has_exif_time() || ev.quicktime.is_some() {
        return;
    }
    let xmp_box = top
        .iter()
        .find(|x| {
            &x.kind == b"uuid" && x.len >= 16 && source::array::<16>(b, x.start) == Some(XMP_UUID)
        })
        .map(|x| (x.start + 16, x.len - 16))
        .or_else(|| {
            let udta = find(&children, b"udta")?;
            let inner = boxes(b, udta.start, udta.start + udta.len);
            find(&inner, b"XMP_").map(|x| (x.start, x.len))
        });
    if let Some((pos, len)) = xmp_box {
        ev.set_xmp(source::read_vec(b, pos, len, xmp::MAX_XMP));
    }
}

/// The creation time of an `mvhd` box, as exiftool reads it: seconds since 1904, or since
/// 1970 when smaller than that difference (cameras that got the epoch wrong), in UTC; none
/// when zero.
fn mvhd_creation(b: &mut dyn Bytes, mvhd: BoxAt) -> Option<CaptureTime> {
    let [version] = source::array::<1>(b, mvhd.start)?;
    let raw = if version == 1 {
        source::be64(b, mvhd.start + 4).filter(|_| mvhd.len >= 12)?
    } else {
        u64::from(source::be32(b, mvhd.start + 4).filter(|_| mvhd.len >= 8)?)
    };
    let raw = i64::try_from(raw).ok()?;
    let unix = if raw >= QUICKTIME_EPOCH_OFFSET {
        raw - QUICKTIME_EPOCH_OFFSET
    } else {
        raw
    };
    (raw != 0).then_some(CaptureTime {
        local_seconds: unix,
        utc_offset_minutes: Some(0),
    })
}

/// Reads a JPEG XL container: its `Exif` box (a 4-byte offset, then TIFF) and `xml ` box.
/// Brotli-compressed `brob` boxes are not read.
pub(crate) fn read_jxl(b: &mut dyn Bytes, ev: &mut Evidence) {
    if !source::starts_with(b, 0, b"\0\0\0\x0cJXL \r\n\x87\n") {
        return;
    }
    let top = top_level(b);
    if let Some(exif) = find(&top, b"Exif")
        && let Some(offset) = source::be32(b, exif.start)
    {
        let skip = 4 + u64::from(offset);
        let mut w = Window::new(b, exif.start + skip, exif.len.saturating_sub(skip));
        if let Some(t) = tiff::read(&mut w) {
            ev.set_exif(t.dates);
        }
    }
    if !ev.has_exif_time()
        && let Some(x) = find(&top, b"xml ")
    {
        ev.set_xmp(source::read_vec(b, x.start, x.len, xmp::MAX_XMP));
    }
}

/// An item of a HEIF file.
#[derive(Debug, Default, Clone)]
struct Item {
    id: u32,
    kind: [u8; 4],
    content_type: Vec<u8>,
    encoded: bool,
    /// The items this one describes (`cdsc` references).
    describes: Vec<u32>,
    construction: u8,
    /// Extents: offset (from the file's start, or from `idat`'s) and length.
    extents: Vec<(u64, u64)>,
}

/// Reads a HEIF or AVIF: the `Exif` and XMP items of the primary item (or of no item in
/// particular), as exiftool takes them for the main image.
pub(crate) fn read_heif(b: &mut dyn Bytes, ev: &mut Evidence) {
    let top = top_level(b);
    let Some(meta) = find(&top, b"meta") else {
        return;
    };
    // `meta` is a full box: version and flags first.
    let Some(meta_bytes) = source::read_vec(b, meta.start, meta.len.min(MAX_META), usize::MAX)
    else {
        return;
    };
    let mut m = Mem(&meta_bytes);
    let children = boxes(&mut m, 4, meta_bytes.len() as u64);
    let primary = find(&children, b"pitm").and_then(|p| {
        let body = meta_bytes.get(p.start as usize..(p.start + p.len) as usize)?;
        match body.first()? {
            0 => body
                .get(4..6)
                .map(|s| u32::from(u16::from_be_bytes([s[0], s[1]]))),
            _ => body
                .get(4..8)
                .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]])),
        }
    });
    let mut items = find(&children, b"iinf")
        .map(|x| item_infos(&meta_bytes, x))
        .unwrap_or_default();
    if let Some(iloc) = find(&children, b"iloc") {
        locations(&meta_bytes, iloc, &mut items);
    }
    if let Some(iref) = find(&children, b"iref") {
        references(&meta_bytes, iref, &mut items);
    }
    let idat = find(&children, b"idat").map(|x| (meta.start + x.start, x.len));
    items.sort_by_key(|i| i.id);
    // The main image's items: those that describe the primary item, or no item at all.
    let main = |i: &&Item| {
        !i.encoded
            && (primary.is_none()
                || i.describes.is_empty()
                || i.describes.contains(&primary.unwrap_or(0)))
    };
    if let Some(exif) = items.iter().filter(main).find(|i| &i.kind == b"Exif")
        && let Some(data) = item_data(b, exif, idat, MAX_EXIF_ITEM)
        && let Some(dates) = heif_exif(&data)
    {
        ev.set_exif(dates);
    }
    if ev.has_exif_time() {
        return;
    }
    if let Some(x) = items
        .iter()
        .filter(main)
        .find(|i| &i.kind == b"mime" && i.content_type == b"application/rdf+xml")
    {
        ev.set_xmp(item_data(b, x, idat, xmp::MAX_XMP));
    }
}

/// The EXIF dates of an `Exif` item: a 4-byte offset to the TIFF header, or (as some
/// writers do) a TIFF header or `Exif\0\0` right away.
fn heif_exif(data: &[u8]) -> Option<tiff::ExifDates> {
    let start = if data.starts_with(b"MM\0*") || data.starts_with(b"II*\0") {
        0
    } else if data.starts_with(b"Exif\0\0") {
        6
    } else {
        let n = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
        4usize.checked_add(usize::try_from(n).ok()?)?
    };
    tiff::read(&mut Mem(data.get(start..)?)).map(|t| t.dates)
}

/// An item's bytes (its extents one after the other), at most `max`.
fn item_data(
    b: &mut dyn Bytes,
    item: &Item,
    idat: Option<(u64, u64)>,
    max: usize,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for &(offset, len) in item.extents.iter().take(64) {
        let room = max.saturating_sub(out.len());
        if room == 0 {
            break;
        }
        let chunk = match item.construction {
            0 => source::read_vec(b, offset, len, room)?,
            1 => {
                let (idat_pos, idat_len) = idat?;
                let end = offset.checked_add(len)?;
                if end > idat_len {
                    return None;
                }
                source::read_vec(b, idat_pos + offset, len, room)?
            }
            _ => return None,
        };
        out.extend_from_slice(&chunk);
    }
    (!out.is_empty()).then_some(out)
}

/// The `infe` entries of `iinf` (versions 2 and 3).
fn item_infos(meta: &[u8], iinf: BoxAt) -> Vec<Item> {
    let Some(body) = meta.get(iinf.start as usize..(iinf.start + iinf.len) as usize) else {
        return Vec::new();
    };
    let header = if body.first() == Some(&0) { 6 } else { 8 };
    let mut m = Mem(body);
    let entries = boxes(&mut m, header, body.len() as u64);
    let mut items = Vec::new();
    for infe in entries.iter().filter(|x| &x.kind == b"infe") {
        let Some(e) = body.get(infe.start as usize..(infe.start + infe.len) as usize) else {
            continue;
        };
        let Some(&version) = e.first() else { continue };
        let (id, rest) = match version {
            2 => match e.get(4..6) {
                Some(s) => (u32::from(u16::from_be_bytes([s[0], s[1]])), &e[6..]),
                None => continue,
            },
            3 => match e.get(4..8) {
                Some(s) => (u32::from_be_bytes([s[0], s[1], s[2], s[3]]), &e[8..]),
                None => continue,
            },
            _ => continue,
        };
        // Protection index, type, name, and for `mime` the content type and encoding.
        let (Some(protection), Some(kind)) = (rest.get(..2), rest.get(2..6)) else {
            continue;
        };
        let mut strings = rest[6..].split(|&c| c == 0);
        let _name = strings.next();
        let kind: [u8; 4] = [kind[0], kind[1], kind[2], kind[3]];
        let (content_type, encoding) = if &kind == b"mime" {
            (
                strings.next().unwrap_or_default().to_vec(),
                strings.next().unwrap_or_default(),
            )
        } else {
            (Vec::new(), &[][..])
        };
        items.push(Item {
            id,
            kind,
            content_type,
            encoded: protection != [0, 0] || !encoding.is_empty(),
            ..Item::default()
        });
        if items.len() >= 65_536 {
            break;
        }
    }
    items
}

/// Fills the items' extents from `iloc`.
fn locations(meta: &[u8], iloc: BoxAt, items: &mut [Item]) {
    let Some(body) = meta.get(iloc.start as usize..(iloc.start + iloc.len) as usize) else {
        return;
    };
    let _ = parse_iloc(body, items);
}

fn parse_iloc(body: &[u8], items: &mut [Item]) -> Option<()> {
    let mut r = Reader { s: body, pos: 0 };
    let version = r.u8()?;
    r.skip(3)?;
    let sizes = r.u8()?;
    let (offset_size, length_size) = (sizes >> 4, sizes & 15);
    let sizes2 = r.u8()?;
    let base_offset_size = sizes2 >> 4;
    let index_size = if version >= 1 { sizes2 & 15 } else { 0 };
    let count = if version < 2 {
        u32::from(r.u16()?)
    } else {
        r.u32()?
    };
    for _ in 0..count.min(65_536) {
        let id = if version < 2 {
            u32::from(r.u16()?)
        } else {
            r.u32()?
        };
        let construction = if version >= 1 {
            (r.u16()? & 15) as u8
        } else {
            0
        };
        let _data_reference = r.u16()?;
        let base = r.sized(base_offset_size)?;
        let extent_count = r.u16()?;
        let mut extents = Vec::new();
        for _ in 0..extent_count {
            if index_size > 0 {
                r.sized(index_size)?;
            }
            let offset = r.sized(offset_size)?;
            let length = r.sized(length_size)?;
            if extents.len() < 64 {
                extents.push((base.checked_add(offset)?, length));
            }
        }
        if let Some(item) = items.iter_mut().find(|i| i.id == id) {
            item.construction = construction;
            item.extents = extents;
        }
    }
    Some(())
}

/// Fills the items' `cdsc` references from `iref`.
fn references(meta: &[u8], iref: BoxAt, items: &mut [Item]) {
    let Some(body) = meta.get(iref.start as usize..(iref.start + iref.len) as usize) else {
        return;
    };
    let Some(&version) = body.first() else { return };
    let mut m = Mem(body);
    for r in boxes(&mut m, 4, body.len() as u64) {
        if &r.kind != b"cdsc" {
            continue;
        }
        let Some(s) = body.get(r.start as usize..(r.start + r.len) as usize) else {
            continue;
        };
        let mut rd = Reader { s, pos: 0 };
        let id_of = |rd: &mut Reader<'_>| {
            if version == 0 {
                rd.u16().map(u32::from)
            } else {
                rd.u32()
            }
        };
        let Some(from) = id_of(&mut rd) else { continue };
        let Some(n) = rd.u16() else { continue };
        let to: Vec<u32> = (0..n).map_while(|_| id_of(&mut rd)).collect();
        if let Some(item) = items.iter_mut().find(|i| i.id == from) {
            item.describes.extend(to);
        }
    }
}

/// Big-endian numbers out of a slice.
struct Reader<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let out = self.s.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(out)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// A number of 0, 4 or 8 bytes (as `iloc` sizes them).
    fn sized(&mut self, size: u8) -> Option<u64> {
        match size {
            0 => Some(0),
            4 => self.u32().map(u64::from),
            8 => self
                .take(8)
                .map(|s| u64::from_be_bytes(s.try_into().unwrap_or([0; 8]))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::capture::tiff::tests::build;

    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    fn full(kind: &[u8; 4], version: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![version, 0, 0, 0];
        p.extend_from_slice(payload);
        bx(kind, &p)
    }

    fn infe(id: u16, kind: &[u8; 4], content_type: &[u8]) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(kind);
        p.push(0);
        if !content_type.is_empty() {
            p.extend_from_slice(content_type);
            p.push(0);
        }
        full(b"infe", 2, &p)
    }

    fn exif_item(date: &[u8]) -> Vec<u8> {
        let mut data = vec![0, 0, 0, 0];
        data.extend_from_slice(&build(&[], &[(0x9003, 2, date)]));
        data
    }

    /// A HEIF with a primary grid item 2, two Exif items 3 (describing 2) and 4 (describing
    /// 1, another picture), in that order in the file after `meta`.
    fn heif(first: &[u8], second: &[u8]) -> Vec<u8> {
        let ftyp = bx(b"ftyp", b"heic\0\0\0\0mif1heic");
        let pitm = full(b"pitm", 0, &2u16.to_be_bytes());
        let mut iinf_p = 4u16.to_be_bytes().to_vec();
        iinf_p.extend(infe(1, b"hvc1", b""));
        iinf_p.extend(infe(2, b"grid", b""));
        iinf_p.extend(infe(3, b"Exif", b""));
        iinf_p.extend(infe(4, b"Exif", b""));
        let iinf = full(b"iinf", 0, &iinf_p);
        let mut iref_p = Vec::new();
        for (from, to) in [(4u16, 1u16), (3, 2)] {
            let mut r = from.to_be_bytes().to_vec();
            r.extend_from_slice(&1u16.to_be_bytes());
            r.extend_from_slice(&to.to_be_bytes());
            iref_p.extend(bx(b"cdsc", &r));
        }
        let iref = full(b"iref", 0, &iref_p);
        let iloc_len = 8 + 4 + 2 + 2 + 2 * (2 + 2 + 2 + 4 + 4);
        let meta_len = 8 + 4 + pitm.len() + iinf.len() + iref.len() + iloc_len + 8;
        let data_start = ftyp.len() + meta_len;
        let mut iloc_p = vec![0x44, 0x00];
        iloc_p.extend_from_slice(&2u16.to_be_bytes());
        let mut pos = data_start as u32;
        for (id, data) in [(3u16, first), (4, second)] {
            iloc_p.extend_from_slice(&id.to_be_bytes());
            iloc_p.extend_from_slice(&0u16.to_be_bytes());
            iloc_p.extend_from_slice(&1u16.to_be_bytes());
            iloc_p.extend_from_slice(&pos.to_be_bytes());
            iloc_p.extend_from_slice(&(data.len() as u32).to_be_bytes());
            pos += data.len() as u32;
        }
        let iloc = full(b"iloc", 0, &iloc_p);
        assert_eq!(iloc.len(), iloc_len);
        let mut meta_p = Vec::new();
        for part in [&pitm, &iinf, &iref, &iloc] {
            meta_p.extend_from_slice(part);
        }
        let meta = full(b"meta", 0, &meta_p);
        let mut file = ftyp;
        file.extend(meta);
        file.extend(bx(b"free", b""));
        assert_eq!(file.len(), data_start);
        file.extend_from_slice(first);
        file.extend_from_slice(second);
        file
    }

    #[test]
    fn the_primary_items_exif_is_read_not_the_first() {
        // The other picture's Exif item comes first in the file.
        let file = heif(
            &exif_item(b"2021:07:06 16:08:14\0"),
            &exif_item(b"2021:07:06 16:08:12\0"),
        );
        let mut ev = Evidence::default();
        read_heif(&mut Mem(&file), &mut ev);
        let want = super::super::parse_exif_datetime("2021:07:06 16:08:14");
        assert_eq!(ev.decide().map(|t| t.local_seconds), want);
        for cut in 0..file.len() {
            let mut ev = Evidence::default();
            read_heif(&mut Mem(&file[..cut]), &mut ev);
            let _ = ev.decide();
        }
    }

    #[test]
    fn truncated_and_oversized_boxes_stop_the_walk() {
        // A box claiming more than there is, a box of size 0 (to the end), a 64-bit size.
        let mut data = bx(b"ftyp", b"isom");
        data.extend_from_slice(&[0, 0, 0x10, 0, b'm', b'o', b'o', b'v']);
        assert_eq!(boxes(&mut Mem(&data), 0, data.len() as u64).len(), 1);
        let mut data = bx(b"ftyp", b"isom");
        data.extend_from_slice(&[0, 0, 0, 0, b'm', b'd', b'a', b't', 1, 2, 3]);
        let list = boxes(&mut Mem(&data), 0, data.len() as u64);
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].len, 3);
        let mut data = vec![0, 0, 0, 1, b'm', b'd', b'a', b't'];
        data.extend_from_slice(&20u64.to_be_bytes());
        data.extend_from_slice(&[9; 4]);
        let list = boxes(&mut Mem(&data), 0, data.len() as u64);
        assert_eq!((list.len(), list[0].start, list[0].len), (1, 16, 4));
        // A size smaller than the header.
        assert!(boxes(&mut Mem(&[0, 0, 0, 4, b'a', b'b', b'c', b'd']), 0, 8).is_empty());
    }

    #[test]
    fn mvhd_creation_times_are_utc_and_zero_is_none() {
        let mvhd = |version: u8, t: u64| {
            let mut p = vec![version, 0, 0, 0];
            if version == 1 {
                p.extend_from_slice(&t.to_be_bytes());
            } else {
                p.extend_from_slice(&(t as u32).to_be_bytes());
            }
            p.extend_from_slice(&[0; 80]);
            let mut file = bx(b"ftyp", b"qt  ");
            file.extend(bx(b"moov", &bx(b"mvhd", &p)));
            let mut ev = Evidence::default();
            read_quicktime(&mut Mem(&file), &mut ev);
            ev.decide()
        };
        let t = mvhd(0, 1_704_067_200 + QUICKTIME_EPOCH_OFFSET as u64).unwrap();
        assert_eq!(
            (t.local_seconds, t.utc_offset_minutes),
            (1_704_067_200, Some(0))
        );
        let t = mvhd(1, 1_704_067_200 + QUICKTIME_EPOCH_OFFSET as u64).unwrap();
        assert_eq!(t.local_seconds, 1_704_067_200);
        // A camera that counted from 1970.
        assert_eq!(mvhd(0, 1_000_000_000).unwrap().local_seconds, 1_000_000_000);
        assert_eq!(mvhd(0, 0), None);
    }

    #[test]
    fn cr3_reads_cmt2_then_cmt1() {
        let cmt =
            |date: &[u8], offset: &[u8]| build(&[(0x9003, 2, date), (0x9011, 2, offset)], &[]);
        let mut uuid_p = CANON_UUID.to_vec();
        uuid_p.extend(bx(b"CNCV", b"CanonCR3_001/00.09.00/00.00.00"));
        uuid_p.extend(bx(b"CMT1", &cmt(b"2018:02:21 12:08:00\0", b"\0")));
        uuid_p.extend(bx(b"CMT2", &cmt(b"2018:02:21 12:08:56\0", b"+00:00\0")));
        let mut file = bx(b"ftyp", b"crx \0\0\0\x01crx isom");
        file.extend(bx(b"moov", &bx(b"uuid", &uuid_p)));
        let mut ev = Evidence::default();
        read_cr3(&mut Mem(&file), &mut ev);
        let t = ev.decide().unwrap();
        assert_eq!(
            Some(t.local_seconds),
            super::super::parse_exif_datetime("2018:02:21 12:08:56")
        );
        assert_eq!(t.utc_offset_minutes, Some(0));
        for cut in 0..file.len() {
            let mut ev = Evidence::default();
            read_cr3(&mut Mem(&file[..cut]), &mut ev);
            let _ = ev.decide();
        }
    }
}
