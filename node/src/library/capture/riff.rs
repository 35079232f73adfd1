//! RIFF files: WebP (`EXIF` and `XMP ` chunks) and AVI (the `IDIT` date, in `hdrl` or
//! `INFO`).

use photomesh_protocol::record::CaptureTime;

use super::source::{self, Bytes, Window};
use super::{Evidence, civil_seconds, digits, tiff, xmp};

/// More chunks than this in one list are not looked at.
const MAX_CHUNKS: usize = 4096;

/// A chunk: its id, where its data starts and how long it is.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    id: [u8; 4],
    start: u64,
    len: u64,
}

/// The chunks in `[start, end)`; stops at the first that does not fit.
fn chunks(b: &mut dyn Bytes, start: u64, end: u64) -> Vec<Chunk> {
    let end = end.min(b.size());
    let mut out = Vec::new();
    let mut pos = start;
    while out.len() < MAX_CHUNKS && pos.saturating_add(8) <= end {
        let Some(h) = source::array::<8>(b, pos) else {
            break;
        };
        let len = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
        let data = pos + 8;
        // The last chunk may be cut short: it is kept, clamped.
        out.push(Chunk {
            id: [h[0], h[1], h[2], h[3]],
            start: data,
            len: len.min(end - data),
        });
        pos = data.saturating_add(len).saturating_add(len & 1);
    }
    out
}

fn riff_body(b: &mut dyn Bytes, form: &[u8; 4]) -> Option<(u64, u64)> {
    let head = source::array::<12>(b, 0)?;
    if &head[..4] != b"RIFF" || &head[8..] != form {
        return None;
    }
    let len = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
    Some((12, (8 + len).min(b.size())))
}

/// Reads a WebP.
pub(crate) fn read_webp(b: &mut dyn Bytes, ev: &mut Evidence) {
    let Some((start, end)) = riff_body(b, b"WEBP") else {
        return;
    };
    let list = chunks(b, start, end);
    if let Some(exif) = list.iter().find(|c| &c.id == b"EXIF")
        && let Some(dates) = tiff::read_exif_block(&mut Window::new(b, exif.start, exif.len))
    {
        ev.set_exif(dates);
    }
    if !ev.has_exif_time()
        && let Some(x) = list.iter().find(|c| &c.id == b"XMP ")
    {
        ev.set_xmp(source::read_vec(b, x.start, x.len, xmp::MAX_XMP));
    }
}

/// Reads an AVI: the first `IDIT` chunk of its header lists (the `movi` list of frames is
/// skipped).
pub(crate) fn read_avi(b: &mut dyn Bytes, ev: &mut Evidence) {
    let Some((start, end)) = riff_body(b, b"AVI ") else {
        return;
    };
    ev.native = find_idit(b, start, end, 0);
}

fn find_idit(b: &mut dyn Bytes, start: u64, end: u64, depth: u32) -> Option<CaptureTime> {
    for c in chunks(b, start, end) {
        match &c.id {
            b"IDIT" => {
                let raw = source::read_vec(b, c.start, c.len, 64)?;
                return parse_riff_date(&raw);
            }
            b"LIST" if depth < 3 && c.len >= 4 => {
                let kind = source::array::<4>(b, c.start)?;
                if &kind == b"movi" {
                    continue;
                }
                if let Some(t) = find_idit(b, c.start + 4, c.start + c.len, depth + 1) {
                    return Some(t);
                }
            }
            _ => {}
        }
    }
    None
}

/// An AVI date as cameras write it: `Mon Mar 10 15:04:43 2003`, `2009/10/27 12:14:34`
/// (exiftool drops these seconds; they are kept here), Casio's `2001/ 1/27  1:42PM`,
/// `2002-12-16  15:35:01`, or EXIF's own form. No zone.
pub(crate) fn parse_riff_date(raw: &[u8]) -> Option<CaptureTime> {
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    let s = std::str::from_utf8(&raw[..end]).ok()?.trim();
    let local = ctime(s).or_else(|| numeric(s))?;
    Some(CaptureTime {
        local_seconds: local,
        utc_offset_minutes: None,
    })
}

/// `Www Mmm DD HH:MM:SS YYYY`.
fn ctime(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let parts: Vec<&str> = s.split_ascii_whitespace().take(6).collect();
    if parts.len() < 5 {
        return None;
    }
    let month = MONTHS
        .iter()
        .position(|m| parts[1].eq_ignore_ascii_case(m))? as i64
        + 1;
    let year = digits(parts[4].as_bytes())?;
    let day = digits(parts[2].as_bytes())?;
    let time: Vec<&str> = parts[3].split(':').collect();
    let [h, mi, se] = time[..] else {
        return None;
    };
    let n = |x: &str| (x.len() == 2).then(|| digits(x.as_bytes())).flatten();
    civil_seconds(year, month, day, n(h)?, n(mi)?, n(se)?)
}

/// `YYYY[/-]M[/-]D[/] H:MM[:SS][PM]`, blanks allowed after the separators.
fn numeric(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut pos = 0;
    let number = |pos: &mut usize, max: usize| -> Option<i64> {
        while b.get(*pos) == Some(&b' ') {
            *pos += 1;
        }
        let start = *pos;
        while *pos < b.len() && *pos - start < max && b[*pos].is_ascii_digit() {
            *pos += 1;
        }
        digits(&b[start..*pos])
    };
    let sep = |pos: &mut usize, options: &[u8]| -> Option<u8> {
        let c = *b.get(*pos).filter(|c| options.contains(c))?;
        *pos += 1;
        Some(c)
    };
    let year = number(&mut pos, 4)?;
    let s1 = sep(&mut pos, b"/-:")?;
    let month = number(&mut pos, 2)?;
    sep(&mut pos, &[s1])?;
    let day = number(&mut pos, 2)?;
    let _ = sep(&mut pos, b"/");
    if !b.get(pos).is_some_and(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let mut hour = number(&mut pos, 2)?;
    sep(&mut pos, b":")?;
    let minute = number(&mut pos, 2)?;
    let second = match sep(&mut pos, b":") {
        Some(_) => number(&mut pos, 2)?,
        None => 0,
    };
    let rest = s[pos.min(s.len())..].trim_start();
    if rest.starts_with(['P', 'p']) && hour < 12 {
        hour += 12;
    }
    civil_seconds(year, month, day, hour, minute, second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::capture::parse_exif_datetime;
    use crate::library::capture::source::Mem;

    fn date(s: &str) -> Option<i64> {
        parse_riff_date(s.as_bytes()).map(|t| t.local_seconds)
    }

    #[test]
    fn avi_dates_of_every_spelling_parse() {
        let p = |s| parse_exif_datetime(s);
        assert_eq!(
            date("Mon Mar 10 15:04:43 2003\n\0"),
            p("2003:03:10 15:04:43")
        );
        assert_eq!(date("2009/10/27 12:14:34\0"), p("2009:10:27 12:14:34"));
        assert_eq!(date("2001/ 1/27  1:42PM"), p("2001:01:27 13:42:00"));
        assert_eq!(date("2005/11/28/ 09:19"), p("2005:11:28 09:19:00"));
        assert_eq!(date("2002-12-16  15:35:01\0\0"), p("2002:12:16 15:35:01"));
        assert_eq!(date("2002:12:16 15:35:01"), p("2002:12:16 15:35:01"));
        for bad in [
            "",
            "Mon Xyz 10 15:04:43 2003",
            "2002-13-16 15:35:01",
            "2002/12/16",
            "\u{0}",
        ] {
            assert_eq!(date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_idit_chunk_is_found_in_hdrl_and_movi_is_skipped() {
        let chunk = |id: &[u8; 4], data: &[u8]| {
            let mut c = id.to_vec();
            c.extend_from_slice(&(data.len() as u32).to_le_bytes());
            c.extend_from_slice(data);
            if data.len() % 2 == 1 {
                c.push(0);
            }
            c
        };
        let mut hdrl = b"hdrl".to_vec();
        hdrl.extend(chunk(b"avih", &[0; 56]));
        hdrl.extend(chunk(b"IDIT", b"Mon Mar 10 15:04:43 2003\n\0"));
        let mut movi = b"movi".to_vec();
        movi.extend(chunk(b"IDIT", b"Tue Mar 11 15:04:43 2003\n\0"));
        let mut body = b"AVI ".to_vec();
        body.extend(chunk(b"LIST", &movi));
        body.extend(chunk(b"LIST", &hdrl));
        let file = chunk(b"RIFF", &body);
        let mut ev = Evidence::default();
        read_avi(&mut Mem(&file), &mut ev);
        assert_eq!(
            ev.decide().map(|t| t.local_seconds),
            parse_exif_datetime("2003:03:10 15:04:43")
        );
        for cut in 0..file.len() {
            let mut ev = Evidence::default();
            read_avi(&mut Mem(&file[..cut]), &mut ev);
        }
    }
}
