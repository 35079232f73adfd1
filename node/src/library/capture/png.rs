//! PNG (the `eXIf` chunk, ImageMagick's hex-encoded "Raw profile type exif/APP1/xmp" text
//! chunks, zlib-compressed or not, and the `XML:com.adobe.xmp` text chunk), wherever they
//! are (before or after the image data), and GIF (its XMP application extension).

use std::io::Read;

use super::source::{self, Bytes, Mem, Window};
use super::{Evidence, tiff, xmp};

/// More chunks than this are not looked at.
const MAX_CHUNKS: usize = 100_000;
/// The largest text chunk read (compressed or not).
const MAX_TEXT: usize = 4 << 20;
/// The most bytes a text chunk is inflated to, or a raw profile decoded to.
const MAX_INFLATED: u64 = 4 << 20;

/// Reads a PNG.
pub(crate) fn read_png(b: &mut dyn Bytes, ev: &mut Evidence) {
    if !source::starts_with(b, 0, b"\x89PNG\r\n\x1a\n") {
        return;
    }
    let mut pos = 8u64;
    let mut xmp_packet = None;
    for _ in 0..MAX_CHUNKS {
        let Some(h) = source::array::<8>(b, pos) else {
            break;
        };
        let len = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        let kind = [h[4], h[5], h[6], h[7]];
        let data = pos + 8;
        match &kind {
            b"IEND" => break,
            b"eXIf" if ev.exif.is_none() => {
                if let Some(dates) = tiff::read_exif_block(&mut Window::new(b, data, len)) {
                    ev.set_exif(dates);
                }
            }
            b"tEXt" | b"zTXt" | b"iTXt" => {
                if let Some(chunk) = source::read_vec(b, data, len, MAX_TEXT)
                    && let Some((keyword, text)) = text_chunk(&kind, &chunk)
                {
                    match keyword.as_slice() {
                        b"Raw profile type exif" | b"Raw profile type APP1" => {
                            if let Some(profile) = raw_profile(&text) {
                                if profile.starts_with(b"Exif\0")
                                    || profile.starts_with(b"II")
                                    || profile.starts_with(b"MM")
                                {
                                    if ev.exif.is_none()
                                        && let Some(dates) =
                                            tiff::read_exif_block(&mut Mem(&profile))
                                    {
                                        ev.set_exif(dates);
                                    }
                                } else if xmp_packet.is_none() {
                                    xmp_packet = Some(profile);
                                }
                            }
                        }
                        b"Raw profile type xmp" if xmp_packet.is_none() => {
                            xmp_packet = raw_profile(&text);
                        }
                        b"XML:com.adobe.xmp" if xmp_packet.is_none() => xmp_packet = Some(text),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        pos = data.saturating_add(len).saturating_add(4);
    }
    if !ev.has_exif_time() {
        ev.set_xmp(xmp_packet);
    }
}

/// The keyword and the (inflated) text of a `tEXt`, `zTXt` or `iTXt` chunk.
fn text_chunk(kind: &[u8; 4], chunk: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let nul = chunk.iter().position(|&c| c == 0)?;
    let keyword = chunk[..nul].to_vec();
    let rest = &chunk[nul + 1..];
    let text = match kind {
        b"tEXt" => rest.get(..MAX_INFLATED as usize).unwrap_or(rest).to_vec(),
        b"zTXt" => inflate(rest.get(1..)?),
        _ => {
            // Compression flag and method, language tag, translated keyword, text.
            let (&flag, rest) = rest.split_first()?;
            let rest = rest.get(1..)?;
            let lang = rest.iter().position(|&c| c == 0)?;
            let rest = &rest[lang + 1..];
            let translated = rest.iter().position(|&c| c == 0)?;
            let text = &rest[translated + 1..];
            if flag == 1 {
                inflate(text)
            } else {
                text.get(..MAX_INFLATED as usize).unwrap_or(text).to_vec()
            }
        }
    };
    Some((keyword, text))
}

/// zlib data inflated, as much of it as is sound, at most [`MAX_INFLATED`] bytes.
fn inflate(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // A damaged stream yields what came before the damage.
    let _ = flate2::read::ZlibDecoder::new(data)
        .take(MAX_INFLATED)
        .read_to_end(&mut out);
    out
}

/// The bytes of an ImageMagick raw profile: `\n<name>\n<length>\n<hex digits, wrapped>`.
fn raw_profile(text: &[u8]) -> Option<Vec<u8>> {
    let mut lines = text.trim_ascii_start().splitn(2, |&c| c == b'\n');
    let _name = lines.next()?;
    let rest = lines.next()?.trim_ascii_start();
    let len_end = rest.iter().position(|c| !c.is_ascii_digit())?;
    let len = super::digits(&rest[..len_end])?;
    let len = usize::try_from(len).ok()?.min(MAX_INFLATED as usize);
    let mut out = Vec::with_capacity(len.min(1 << 20));
    let mut high = None;
    for &c in &rest[len_end..] {
        if out.len() >= len {
            break;
        }
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            c if c.is_ascii_whitespace() => continue,
            _ => break,
        };
        match high.take() {
            None => high = Some(v),
            Some(h) => out.push(h << 4 | v),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Reads a GIF: the XMP application extension, before or between the images.
pub(crate) fn read_gif(b: &mut dyn Bytes, ev: &mut Evidence) {
    let Some(head) = source::array::<13>(b, 0) else {
        return;
    };
    if !head.starts_with(b"GIF87a") && !head.starts_with(b"GIF89a") {
        return;
    }
    let mut pos = 13 + color_table(head[10]);
    for _ in 0..MAX_CHUNKS {
        let Some([block]) = source::array::<1>(b, pos) else {
            return;
        };
        match block {
            0x21 => {
                let Some([label, size]) = source::array::<2>(b, pos + 1) else {
                    return;
                };
                if label == 0xFF && size == 11 && source::starts_with(b, pos + 3, b"XMP DataXMP") {
                    // The packet is stored raw, followed by a "magic trailer".
                    let start = pos + 14;
                    ev.set_xmp(source::read_vec(b, start, u64::MAX, xmp::MAX_XMP));
                    return;
                }
                match skip_sub_blocks(b, pos + 2) {
                    Some(next) => pos = next,
                    None => return,
                }
            }
            0x2C => {
                let Some(descriptor) = source::array::<10>(b, pos) else {
                    return;
                };
                // Descriptor, local colour table, LZW code size, then the data.
                let data = pos + 10 + color_table(descriptor[9]) + 1;
                match skip_sub_blocks(b, data) {
                    Some(next) => pos = next,
                    None => return,
                }
            }
            _ => return,
        }
    }
}

/// The length of the colour table a GIF flags byte announces.
fn color_table(flags: u8) -> u64 {
    if flags & 0x80 != 0 {
        3 << ((flags & 7) + 1)
    } else {
        0
    }
}

/// Where the sub-blocks starting at `pos` end (after their terminator).
fn skip_sub_blocks(b: &mut dyn Bytes, mut pos: u64) -> Option<u64> {
    for _ in 0..1_000_000 {
        let [len] = source::array::<1>(b, pos)?;
        pos += 1 + u64::from(len);
        if len == 0 {
            return Some(pos);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::capture::parse_exif_datetime;
    use crate::library::capture::tiff::tests::build;
    use std::io::Write;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        c.extend_from_slice(&[0; 4]);
        c
    }

    fn profile(bytes: &[u8]) -> Vec<u8> {
        let mut text = format!("\nexif\n    {}\n", bytes.len()).into_bytes();
        for (i, b) in bytes.iter().enumerate() {
            text.extend_from_slice(format!("{b:02x}").as_bytes());
            if i % 36 == 35 {
                text.push(b'\n');
            }
        }
        text.push(b'\n');
        text
    }

    fn png(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut file = b"\x89PNG\r\n\x1a\n".to_vec();
        file.extend(chunk(b"IHDR", &[0; 13]));
        for c in chunks {
            file.extend_from_slice(c);
        }
        file.extend(chunk(b"IEND", b""));
        file
    }

    fn time(file: &[u8]) -> Option<i64> {
        let mut ev = Evidence::default();
        read_png(&mut Mem(file), &mut ev);
        ev.decide().map(|t| t.local_seconds)
    }

    #[test]
    fn a_ztxt_raw_profile_is_inflated_and_hex_decoded() {
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend(build(&[], &[(0x9003, 2, b"2004:06:21 23:37:53\0")]));
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&profile(&exif)).unwrap();
        let mut data = b"Raw profile type exif\0\0".to_vec();
        data.extend(z.finish().unwrap());
        let file = png(&[chunk(b"IDAT", &[1, 2, 3]), chunk(b"zTXt", &data)]);
        assert_eq!(time(&file), parse_exif_datetime("2004:06:21 23:37:53"));
        for cut in 0..file.len() {
            let _ = time(&file[..cut]);
        }
        // The same, uncompressed in a tEXt chunk.
        let mut data = b"Raw profile type exif\0".to_vec();
        data.extend(profile(&exif));
        assert!(time(&png(&[chunk(b"tEXt", &data)])).is_some());
        // Damaged hex and zlib data give no date, and no panic.
        let mut data = b"Raw profile type exif\0".to_vec();
        data.extend_from_slice(b"\nexif\n  99999999999\nzz");
        assert_eq!(time(&png(&[chunk(b"tEXt", &data)])), None);
        let mut data = b"Raw profile type exif\0\0".to_vec();
        data.extend_from_slice(&[0x78, 0x9c, 0xff, 0xff, 0xff]);
        assert_eq!(time(&png(&[chunk(b"zTXt", &data)])), None);
    }

    #[test]
    fn an_exif_chunk_after_the_image_data_is_read() {
        let tiff = build(
            &[],
            &[
                (0x9003, 2, b"2022:08:22 20:30:46\0"),
                (0x9011, 2, b"+02:00\0"),
            ],
        );
        let file = png(&[chunk(b"IDAT", &[0; 100]), chunk(b"eXIf", &tiff)]);
        assert_eq!(time(&file), parse_exif_datetime("2022:08:22 20:30:46"));
    }

    #[test]
    fn raw_profiles_decode() {
        assert_eq!(
            raw_profile(b"\nexif\n  4\n0a0B\n0c0d"),
            Some(vec![10, 11, 12, 13])
        );
        assert_eq!(raw_profile(b"\nexif\n  2\n0a0b0c0d"), Some(vec![10, 11]));
        assert_eq!(raw_profile(b"\nexif\n"), None);
        assert_eq!(raw_profile(b""), None);
    }

    #[test]
    fn gif_xmp_is_found_after_other_blocks() {
        let mut gif = b"GIF89a\x01\0\x01\0\x80\0\0".to_vec();
        gif.extend_from_slice(&[0; 6]);
        // A graphic control extension, an image, then the XMP extension.
        gif.extend_from_slice(&[0x21, 0xF9, 4, 0, 0, 0, 0, 0]);
        gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x4C, 0x01, 0]);
        gif.extend_from_slice(b"\x21\xFF\x0bXMP DataXMP");
        gif.extend_from_slice(
            b"<x:xmpmeta xmlns:xmp='http://ns.adobe.com/xap/1.0/' xmp:CreateDate='2001-02-03T04:05:06'/>",
        );
        gif.extend_from_slice(&[1, 0xFF, 0xFE, 0, 0, 0x3B]);
        let mut ev = Evidence::default();
        read_gif(&mut Mem(&gif), &mut ev);
        assert_eq!(
            ev.decide().map(|t| t.local_seconds),
            parse_exif_datetime("2001:02:03 04:05:06")
        );
        for cut in 0..gif.len() {
            read_gif(&mut Mem(&gif[..cut]), &mut Evidence::default());
        }
    }
}
