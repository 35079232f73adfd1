//! Rule 4: the capture time an XMP packet gives, as exiftool reads it: `exif:DateTimeOriginal`,
//! else `photoshop:DateCreated`, else `xmp:CreateDate` (by namespace, whatever the prefix:
//! old files write `xap:`), as an attribute or an element. The value's zone is kept,
//! however it is spelled at its end (`Z`, `+02:00`, Apple's `GMT+02:00`).

use photomesh_protocol::record::CaptureTime;

use super::offset_minutes;

/// The most bytes of an XMP packet read.
pub(crate) const MAX_XMP: usize = 2 << 20;

const PROPERTIES: [(&[u8], &[u8]); 3] = [
    (b"http://ns.adobe.com/exif/1.0/", b"DateTimeOriginal"),
    (b"http://ns.adobe.com/photoshop/1.0/", b"DateCreated"),
    (b"http://ns.adobe.com/xap/1.0/", b"CreateDate"),
];

/// The capture time of an XMP packet, or `None`.
pub(crate) fn capture_time(packet: &[u8]) -> Option<CaptureTime> {
    let prefixes = namespaces(packet);
    PROPERTIES.iter().find_map(|&(ns, name)| {
        prefixes
            .iter()
            .filter(|(_, uri)| *uri == ns)
            .find_map(|(prefix, _)| {
                values(packet, prefix, name)
                    .into_iter()
                    .find_map(parse_date)
            })
    })
}

/// Every `xmlns:prefix="uri"` of the packet, in order.
fn namespaces(x: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = find(&x[from..], b"xmlns:") {
        let start = from + i + 6;
        from = start;
        let rest = &x[start..];
        let name_len = rest.iter().take_while(|&&c| is_name(c)).count();
        let prefix = &rest[..name_len];
        let Some((value, _)) = attribute_value(&rest[name_len..]) else {
            continue;
        };
        if !prefix.is_empty() && out.len() < 256 {
            out.push((prefix, value));
        }
    }
    out
}

/// The values of `prefix:name`, as attributes (`prefix:name="v"`) and as elements
/// (`<prefix:name>v</prefix:name>`), in order.
fn values<'a>(x: &'a [u8], prefix: &[u8], name: &[u8]) -> Vec<&'a [u8]> {
    let mut qname = prefix.to_vec();
    qname.push(b':');
    qname.extend_from_slice(name);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = find(&x[from..], &qname) {
        let at = from + i;
        from = at + qname.len();
        let before = at.checked_sub(1).map(|j| x[j]);
        let after = &x[from..];
        if after.first().is_some_and(|&c| is_name(c)) || before.is_some_and(is_name) {
            continue;
        }
        if before == Some(b'<') {
            // An element: its text up to the next tag.
            let Some(gt) = after.iter().position(|&c| c == b'>') else {
                continue;
            };
            if after[..gt].ends_with(b"/") {
                continue;
            }
            let text = &after[gt + 1..];
            let end = text.iter().position(|&c| c == b'<').unwrap_or(text.len());
            out.push(&text[..end]);
        } else if before != Some(b'/')
            && let Some((value, _)) = attribute_value(after)
        {
            out.push(value);
        }
        if out.len() >= 16 {
            break;
        }
    }
    out
}

/// The quoted value of `="value"` (blanks allowed around `=`), and what follows it.
fn attribute_value(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let s = s.trim_ascii_start();
    let s = s.strip_prefix(b"=")?.trim_ascii_start();
    let quote = *s.first().filter(|&&q| q == b'"' || q == b'\'')?;
    let body = &s[1..];
    let end = body.iter().position(|&c| c == quote)?;
    Some((&body[..end], &body[end + 1..]))
}

fn is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':') || c >= 0x80
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An XMP date as exiftool converts it (`YYYY-MM-DDThh:mm[:ss][rest]` becomes
/// `YYYY:MM:DD hh:mm[:ss][rest]`, other dates have their dashes turned to colons), then
/// read as `YYYY:MM:DD HH:MM:SS` with the zone that ends the value (`Z`, `±HH:MM`).
pub(crate) fn parse_date(value: &[u8]) -> Option<CaptureTime> {
    let v = value.trim_ascii();
    let converted: Vec<u8> = if let Some(c) = convert_iso(v) {
        c
    } else if v.len() >= 4 && v[..4].iter().all(u8::is_ascii_digit) {
        v.iter()
            .map(|&c| if c == b'-' { b':' } else { c })
            .collect()
    } else {
        v.to_vec()
    };
    let local = super::parse_exif_datetime(std::str::from_utf8(converted.get(..19)?).ok()?)?;
    Some(CaptureTime {
        local_seconds: local,
        utc_offset_minutes: trailing_offset(&converted),
    })
}

/// `YYYY-MM-DDThh:mm(:ss)?(\S*)` to `YYYY:MM:DD hh:mm(:ss)?\S*`.
fn convert_iso(v: &[u8]) -> Option<Vec<u8>> {
    let d = |r: std::ops::Range<usize>| v.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shape = d(0..4)
        && v.get(4) == Some(&b'-')
        && d(5..7)
        && v.get(7) == Some(&b'-')
        && d(8..10)
        && v.get(10) == Some(&b'T')
        && d(11..13)
        && v.get(13) == Some(&b':')
        && d(14..16);
    let rest = v.get(16..)?;
    if !shape || rest.iter().any(u8::is_ascii_whitespace) {
        return None;
    }
    let mut out = Vec::with_capacity(v.len());
    out.extend_from_slice(&v[..4]);
    out.push(b':');
    out.extend_from_slice(&v[5..7]);
    out.push(b':');
    out.extend_from_slice(&v[8..10]);
    out.push(b' ');
    out.extend_from_slice(&v[11..16]);
    out.extend_from_slice(rest);
    Some(out)
}

/// The zone at the end of a value: `Z`, or `±HH:MM`.
fn trailing_offset(v: &[u8]) -> Option<i16> {
    if v.ends_with(b"Z") {
        return Some(0);
    }
    let tail = v.get(v.len().checked_sub(6)?..)?;
    if tail[3] != b':' {
        return None;
    }
    offset_minutes(tail[0], &tail[1..3], &tail[4..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(x: &str) -> Option<(i64, Option<i16>)> {
        capture_time(x.as_bytes()).map(|t| (t.local_seconds, t.utc_offset_minutes))
    }

    #[test]
    fn xmp_dates_keep_their_zone_however_spelled() {
        let s = |v: &str| parse_date(v.as_bytes()).map(|t| (t.local_seconds, t.utc_offset_minutes));
        let base = super::super::parse_exif_datetime("2024:04:22 14:38:09").unwrap();
        assert_eq!(
            s("2024-04-22T14:38:09.526GMT+02:00"),
            Some((base, Some(120)))
        );
        assert_eq!(s("2024-04-22T14:38:09Z"), Some((base, Some(0))));
        assert_eq!(s("2024-04-22T14:38:09-05:30"), Some((base, Some(-330))));
        assert_eq!(s("2024-04-22T14:38:09"), Some((base, None)));
        assert_eq!(s("2024-04-22T14:38:09GMT+2"), Some((base, None)));
        assert_eq!(s(" 2024:04:22 14:38:09 "), Some((base, None)));
        // exiftool turns every dash to a colon here, so a negative zone is lost.
        assert_eq!(s("2024-04-22 14:38:09-05:00"), Some((base, None)));
        // No seconds, no time, no date.
        assert_eq!(s("2024-04-22T14:38-05:00"), None);
        assert_eq!(s("2024-04-22"), None);
        assert_eq!(s("0000-00-00T00:00:00"), None);
        assert_eq!(s(""), None);
    }

    #[test]
    fn properties_are_found_by_namespace_in_order() {
        let exif_ns = "xmlns:exif='http://ns.adobe.com/exif/1.0/'";
        let xap_ns = "xmlns:xap=\"http://ns.adobe.com/xap/1.0/\"";
        let ps_ns = "xmlns:ps='http://ns.adobe.com/photoshop/1.0/'";
        let packet = format!(
            "<rdf:Description {xap_ns} {ps_ns} {exif_ns} xap:CreateDate=\"2005-11-21T17:07:14+01:00\" \
             exif:DateTimeOriginal = '2005-06-09T20:09:27+02:00'><ps:DateCreated>2005-01-01</ps:DateCreated></rdf:Description>"
        );
        let want = super::super::parse_exif_datetime("2005:06:09 20:09:27").unwrap();
        assert_eq!(t(&packet), Some((want, Some(120))));
        // photoshop:DateCreated without a time is skipped for xmp:CreateDate.
        let packet = format!(
            "<d {xap_ns} {ps_ns}><ps:DateCreated>2005-01-01</ps:DateCreated><xap:CreateDate>2005-11-21T17:07:14+01:00</xap:CreateDate></d>"
        );
        let want = super::super::parse_exif_datetime("2005:11:21 17:07:14").unwrap();
        assert_eq!(t(&packet), Some((want, Some(60))));
        // A prefix bound to another namespace, a longer name, a closing tag: no date.
        assert_eq!(
            t("<d xmlns:xmp='urn:other' xmp:CreateDate='2005-11-21T17:07:14Z'/>"),
            None
        );
        assert_eq!(
            t(&format!(
                "<d {xap_ns} xap:CreateDateX='2005-11-21T17:07:14Z'/>"
            )),
            None
        );
        assert_eq!(t(&format!("<d {xap_ns}></xap:CreateDate>")), None);
        for cut in 0..packet.len() {
            let _ = capture_time(&packet.as_bytes()[..cut]);
        }
        assert_eq!(t(""), None);
        assert_eq!(t("xmlns:"), None);
        assert_eq!(t("xmlns:a='"), None);
    }
}
