//! Videos that are not QuickTime: AVCHD transport streams (the `MDPM` user-data SEI of the
//! H.264 stream) and Matroska/WebM (`DateUTC` of the segment's `Info`).

use photomesh_protocol::record::CaptureTime;

use super::source::{self, Bytes};
use super::{Evidence, civil_seconds};

/// How far into a transport stream the `MDPM` SEI is looked for.
const MAX_TS_SCAN: u64 = 6 << 20;
/// The most bytes of one PID's payload kept at once.
const MAX_PID_BUFFER: usize = 64 << 10;
/// The `uuid_iso_iec_11578` of the SEI that carries `MDPM` (modified DV pack metadata).
const MDPM_UUID: [u8; 16] = [
    0x17, 0xee, 0x8c, 0x60, 0xf8, 0x4d, 0x11, 0xd9, 0x8c, 0xd6, 0x08, 0x00, 0x20, 0x0c, 0x9a, 0x66,
];

/// One PID's payload since its last packet start.
struct Stream {
    pid: u16,
    data: Vec<u8>,
    /// Where the search for the marker goes on from.
    searched: usize,
}

/// Reads an MTS/M2TS: the recording date of the first `MDPM` SEI of the first few MB.
pub(crate) fn read_mts(b: &mut dyn Bytes, ev: &mut Evidence) {
    // Sync bytes every 188 bytes (TS), or every 192 after a time code (M2TS).
    let synced = |b: &mut dyn Bytes, packet: u64, skip: u64| {
        (0..4).all(|k| source::array::<1>(b, k * packet + skip).is_none_or(|[c]| c == 0x47))
            && source::array::<1>(b, skip) == Some([0x47])
    };
    let (packet, skip) = if synced(b, 192, 4) {
        (192u64, 4u64)
    } else if synced(b, 188, 0) {
        (188, 0)
    } else {
        return;
    };
    let mut streams: Vec<Stream> = Vec::new();
    let mut pos = 0u64;
    while pos < MAX_TS_SCAN {
        let Some(p) = source::array::<188>(b, pos + skip) else {
            return;
        };
        pos += packet;
        if p[0] != 0x47 {
            return;
        }
        let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
        let start = p[1] & 0x40 != 0;
        let payload = match (p[3] >> 4) & 3 {
            1 => &p[4..],
            3 => match p.get(5 + usize::from(p[4])..) {
                Some(s) => s,
                None => continue,
            },
            _ => continue,
        };
        if pid == 0x1fff {
            continue;
        }
        let index = match streams.iter().position(|s| s.pid == pid) {
            Some(i) => i,
            None if streams.len() < 64 => {
                streams.push(Stream {
                    pid,
                    data: Vec::new(),
                    searched: 0,
                });
                streams.len() - 1
            }
            None => continue,
        };
        let s = &mut streams[index];
        if start {
            s.data.clear();
            s.searched = 0;
        }
        if s.data.len() + payload.len() > MAX_PID_BUFFER {
            // Keep the tail, where a marker may have begun.
            let keep = 1024.min(s.data.len());
            s.data.drain(..s.data.len() - keep);
            s.searched = 0;
        }
        s.data.extend_from_slice(payload);
        match find_mdpm(&s.data[s.searched..]) {
            Search::Found(t) => {
                ev.native = t;
                return;
            }
            Search::NotYet(from) => s.searched += from,
        }
    }
}

enum Search {
    /// A marker was found and read: its date, if it holds one.
    Found(Option<CaptureTime>),
    /// Nothing complete yet: search again from this index.
    NotYet(usize),
}

/// Looks for the `MDPM` marker in `data` and reads its entries when they are all there.
fn find_mdpm(data: &[u8]) -> Search {
    let marker_len = MDPM_UUID.len() + 4;
    let mut from = 0;
    while let Some(i) = data[from..]
        .windows(marker_len)
        .position(|w| w[..16] == MDPM_UUID && &w[16..] == b"MDPM")
    {
        let at = from + i;
        // The SEI payload is escaped (00 00 03 → 00 00); the marker has no zeros to escape.
        let body = unescape(&data[at + marker_len..], 1 + 255 * 5);
        let Some(&count) = body.first() else {
            return Search::NotYet(at);
        };
        let need = 1 + usize::from(count) * 5;
        if body.len() < need {
            return Search::NotYet(at);
        }
        if let Some(t) = mdpm_date(&body[1..need]) {
            return Search::Found(Some(t));
        }
        from = at + marker_len;
    }
    Search::NotYet(data.len().saturating_sub(marker_len - 1).max(from))
}

/// At most `max` bytes of `data` with H.264's emulation prevention bytes removed.
fn unescape(data: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(max.min(data.len()));
    let mut zeros = 0;
    for &c in data {
        if out.len() >= max {
            break;
        }
        if zeros >= 2 && c == 3 {
            zeros = 0;
            continue;
        }
        zeros = if c == 0 { zeros + 1 } else { 0 };
        out.push(c);
    }
    out
}

/// The recording date of `MDPM` entries (tag, 4 bytes): tag 0x18 holds the zone and the
/// BCD year and month, tag 0x19 the day and time. The zone byte: 0x20 sign, 0x1e hours,
/// 0x01 half an hour, 0x40 daylight saving time (then the offset is not given: exiftool
/// writes it with ` DST` after, which no longer reads as an offset).
fn mdpm_date(entries: &[u8]) -> Option<CaptureTime> {
    let entry = |tag: u8| {
        entries
            .chunks_exact(5)
            .find(|e| e[0] == tag)
            .map(|e| [e[1], e[2], e[3], e[4]])
    };
    let (first, second) = (entry(0x18)?, entry(0x19)?);
    let bcd = |v: u8| ((v >> 4) < 10 && (v & 15) < 10).then(|| i64::from((v >> 4) * 10 + (v & 15)));
    let zone = first[0];
    let year = bcd(first[1])? * 100 + bcd(first[2])?;
    let local = civil_seconds(
        year,
        bcd(first[3])?,
        bcd(second[0])?,
        bcd(second[1])?,
        bcd(second[2])?,
        bcd(second[3])?,
    )?;
    let offset = (zone & 0x40 == 0).then(|| {
        let minutes = i16::from((zone >> 1) & 0x0f) * 60 + if zone & 1 != 0 { 30 } else { 0 };
        if zone & 0x20 != 0 { -minutes } else { minutes }
    });
    Some(CaptureTime {
        local_seconds: local,
        utc_offset_minutes: offset,
    })
}

const EBML_HEADER: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const CLUSTER: u32 = 0x1F43_B675;
const DATE_UTC: u32 = 0x4461;
/// Seconds from 1970 to 2001-01-01, Matroska's epoch.
const MATROSKA_EPOCH: i64 = 978_307_200;
/// The largest `Info` or `SeekHead` element read.
const MAX_ELEMENT: u64 = 1 << 20;

/// An EBML element: its id, where its data starts, and its size (`None`: unknown).
struct Element {
    id: u32,
    start: u64,
    size: Option<u64>,
}

fn element(b: &mut dyn Bytes, pos: u64) -> Option<Element> {
    let mut head = [0u8; 12];
    let n = b.size().saturating_sub(pos).min(12) as usize;
    if n < 2 || !b.read_at(pos, &mut head[..n]) {
        return None;
    }
    let head = &head[..n];
    let id_len = head[0].leading_zeros() as usize + 1;
    if id_len > 4 {
        return None;
    }
    let id = head
        .get(..id_len)?
        .iter()
        .fold(0u32, |v, &c| v << 8 | u32::from(c));
    let size_first = *head.get(id_len)?;
    let size_len = size_first.leading_zeros() as usize + 1;
    if size_len > 8 {
        return None;
    }
    let bytes = head.get(id_len..id_len + size_len)?;
    let mask = if size_len == 8 { 0 } else { 0xFFu8 >> size_len };
    let mut value = u64::from(bytes[0] & mask);
    let mut all_ones = bytes[0] & mask == mask;
    for &c in &bytes[1..] {
        value = value << 8 | u64::from(c);
        all_ones &= c == 0xFF;
    }
    Some(Element {
        id,
        start: pos + (id_len + size_len) as u64,
        size: (!all_ones).then_some(value),
    })
}

/// The children of `[start, end)`; stops at the first that is damaged, and after a child of
/// unknown size (which runs to `end`).
fn children(b: &mut dyn Bytes, start: u64, end: u64) -> Vec<Element> {
    let mut out = Vec::new();
    let mut pos = start;
    while out.len() < 1024 && pos < end {
        let Some(e) = element(b, pos) else {
            break;
        };
        match e.size {
            Some(size) => {
                let Some(next) = e.start.checked_add(size).filter(|&n| n <= end) else {
                    out.push(e);
                    break;
                };
                pos = next;
                out.push(e);
            }
            None => {
                out.push(e);
                break;
            }
        }
    }
    out
}

/// Reads a Matroska or WebM file: `DateUTC` of the segment's `Info` (found in order, or
/// through the `SeekHead`).
pub(crate) fn read_matroska(b: &mut dyn Bytes, ev: &mut Evidence) {
    let size = b.size();
    let Some(header) = element(b, 0).filter(|e| e.id == EBML_HEADER) else {
        return;
    };
    let Some(segment_pos) = header.size.and_then(|s| header.start.checked_add(s)) else {
        return;
    };
    let Some(segment) = element(b, segment_pos).filter(|e| e.id == SEGMENT) else {
        return;
    };
    let seg_end = segment
        .size
        .and_then(|s| segment.start.checked_add(s))
        .map_or(size, |e| e.min(size));
    let mut info_pos = None;
    for child in children(b, segment.start, seg_end) {
        match child.id {
            INFO => {
                ev.native = date_utc(b, &child, seg_end);
                return;
            }
            SEEK_HEAD if info_pos.is_none() => info_pos = seek_info(b, &child, segment.start),
            CLUSTER => break,
            _ => {}
        }
    }
    if let Some(pos) = info_pos
        && let Some(info) = element(b, pos).filter(|e| e.id == INFO)
    {
        ev.native = date_utc(b, &info, seg_end);
    }
}

/// Where the `SeekHead` says `Info` is.
fn seek_info(b: &mut dyn Bytes, head: &Element, segment_start: u64) -> Option<u64> {
    let end = head.start + head.size?.min(MAX_ELEMENT);
    for seek in children(b, head.start, end).iter().filter(|e| e.id == SEEK) {
        let seek_end = seek.start + seek.size?.min(64);
        let (mut id, mut position) = (None, None);
        for field in children(b, seek.start, seek_end) {
            let len = field.size?.min(8);
            let raw = source::read_vec(b, field.start, len, 8)?;
            let value = raw.iter().fold(0u64, |v, &c| v << 8 | u64::from(c));
            match field.id {
                SEEK_ID => id = Some(value),
                SEEK_POSITION => position = Some(value),
                _ => {}
            }
        }
        if id == Some(u64::from(INFO)) {
            return segment_start.checked_add(position?);
        }
    }
    None
}

/// `DateUTC` of an `Info` element: nanoseconds since 2001-01-01 UTC.
fn date_utc(b: &mut dyn Bytes, info: &Element, seg_end: u64) -> Option<CaptureTime> {
    let end = info.start + info.size.unwrap_or(MAX_ELEMENT).min(MAX_ELEMENT);
    let date = children(b, info.start, end.min(seg_end))
        .into_iter()
        .find(|e| e.id == DATE_UTC && e.size == Some(8))?;
    let nanos = i64::from_be_bytes(source::array::<8>(b, date.start)?);
    Some(CaptureTime {
        local_seconds: nanos.div_euclid(1_000_000_000) + MATROSKA_EPOCH,
        utc_offset_minutes: Some(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::capture::parse_exif_datetime;
    use crate::library::capture::source::Mem;

    /// An M2TS stream of 192-byte packets carrying `payload` on PID 0x1011, split across
    /// packets, with a packet of another PID between.
    fn m2ts(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut first = true;
        for piece in payload.chunks(150) {
            let mut p = vec![
                0,
                0,
                0,
                0,
                0x47,
                0x10 | if first { 0x40 } else { 0 },
                0x11,
                0x10,
            ];
            p.extend_from_slice(piece);
            p.resize(192, 0xFF);
            out.extend(p);
            let mut other = vec![0, 0, 0, 0, 0x47, 0x11, 0x00, 0x10];
            other.resize(192, 0);
            out.extend(other);
            first = false;
        }
        out
    }

    fn sei(entries: &[[u8; 5]]) -> Vec<u8> {
        let mut s = vec![
            0, 0, 1, 0xE0, 0, 0, 0x81, 0xC0, 0, 0, 0, 0, 1, 0x06, 0x05, 0x40,
        ];
        s.extend_from_slice(&MDPM_UUID);
        s.extend_from_slice(b"MDPM");
        s.push(entries.len() as u8);
        for e in entries {
            s.extend_from_slice(e);
        }
        // Pad so that the marker straddles packets in the tests.
        let mut padded = vec![0x55; 140];
        padded.extend(s);
        padded.extend_from_slice(&[0x80; 200]);
        padded
    }

    fn time(file: &[u8]) -> Option<(i64, Option<i16>)> {
        let mut ev = Evidence::default();
        read_mts(&mut Mem(file), &mut ev);
        ev.decide().map(|t| (t.local_seconds, t.utc_offset_minutes))
    }

    #[test]
    fn the_mdpm_date_is_read_with_its_zone() {
        let file = m2ts(&sei(&[
            [0x13, 0, 0x16, 0x55, 0x23],
            [0x18, 0x02, 0x20, 0x08, 0x12],
            [0x19, 0x31, 0x23, 0x16, 0x24],
        ]));
        let want = parse_exif_datetime("2008:12:31 23:16:24").unwrap();
        assert_eq!(time(&file), Some((want, Some(60))));
        for cut in 0..file.len() {
            let _ = time(&file[..cut]);
        }
    }

    #[test]
    fn escaped_zeros_dst_and_bad_bcd() {
        // 00:00:01 on 2000-01-02 is escaped as 00 00 03 01 in the stream; west, half hour.
        let mut entries = sei(&[
            [0x18, 0x20 | 0x0B, 0x20, 0x00, 0x01],
            [0x19, 0x02, 0, 0, 0x01],
        ]);
        let at = entries
            .windows(4)
            .position(|w| w == [0x02, 0, 0, 0x01])
            .unwrap();
        entries.insert(at + 3, 3);
        let want = parse_exif_datetime("2000:01:02 00:00:01").unwrap();
        assert_eq!(time(&m2ts(&entries)), Some((want, Some(-330))));
        // Daylight saving time: no offset.
        let dst = sei(&[
            [0x18, 0x42, 0x20, 0x08, 0x12],
            [0x19, 0x31, 0x23, 0x16, 0x24],
        ]);
        assert_eq!(time(&m2ts(&dst)).unwrap().1, None);
        let bad = sei(&[
            [0x18, 0x02, 0x20, 0x08, 0x1F],
            [0x19, 0x31, 0x23, 0x16, 0x24],
        ]);
        assert_eq!(time(&m2ts(&bad)), None);
    }

    fn ebml(id: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = id.to_vec();
        out.push(0x80 | data.len() as u8);
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn matroska_date_utc_is_read_in_order_or_through_the_seek_head() {
        let date = ebml(&[0x44, 0x61], &(1_000_000_000i64 * 5 + 7).to_be_bytes());
        let info = ebml(&[0x15, 0x49, 0xA9, 0x66], &date);
        let header = ebml(&[0x1A, 0x45, 0xDF, 0xA3], &ebml(&[0x42, 0x82], b"webm"));
        let mut file = header.clone();
        // A segment of unknown size.
        file.extend_from_slice(&[
            0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        file.extend(ebml(&[0xEC], &[0; 3]));
        file.extend_from_slice(&info);
        let mut ev = Evidence::default();
        read_matroska(&mut Mem(&file), &mut ev);
        assert_eq!(
            ev.decide().map(|t| (t.local_seconds, t.utc_offset_minutes)),
            Some((MATROSKA_EPOCH + 5, Some(0)))
        );
        for cut in 0..file.len() {
            read_matroska(&mut Mem(&file[..cut]), &mut Evidence::default());
        }
        // Info after a cluster, found through the seek head.
        let seek = ebml(
            &[0x4D, 0xBB],
            &[
                ebml(&[0x53, 0xAB], &[0x15, 0x49, 0xA9, 0x66]),
                ebml(&[0x53, 0xAC], &[0, 0]),
            ]
            .concat(),
        );
        let mut seek_head = ebml(&[0x11, 0x4D, 0x9B, 0x74], &seek);
        let cluster = ebml(&[0x1F, 0x43, 0xB6, 0x75], &[0; 10]);
        let info_at = (seek_head.len() + cluster.len()) as u16;
        let n = seek_head.len();
        seek_head[n - 2..].copy_from_slice(&info_at.to_be_bytes());
        let body = [seek_head, cluster, info].concat();
        let mut file = header;
        file.extend(ebml(&[0x18, 0x53, 0x80, 0x67], &body));
        let mut ev = Evidence::default();
        read_matroska(&mut Mem(&file), &mut ev);
        assert_eq!(
            ev.decide().map(|t| t.local_seconds),
            Some(MATROSKA_EPOCH + 5)
        );
    }
}
