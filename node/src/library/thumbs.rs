//! Thumbnails for the page: made on this device from the photo as this device holds it
//! (its original, or its stored blob opened with the library key and checked against the
//! record), cached in the home (`thumbs/BLOB.jpg`), and never sent to another device.
//!
//! JPEG (and MPO's first picture), PNG and WebP are decoded (`zune-jpeg`, `png`,
//! `image-webp`), turned as their EXIF orientation says, scaled down by averaging boxes of
//! pixels, and written as a JPEG. Other kinds get no thumbnail: the page labels them. A
//! picture larger than [`MAX_PIXELS`], or a file larger than [`MAX_BYTES`], gets none
//! either, so a hostile file cannot make the device decode a bomb.

use std::io::Cursor;
use std::path::PathBuf;

use photomesh_protocol::record::{MediaType, PhotoRecord, RecordId};

use crate::blob::source::BlobSource;
use crate::home::Home;

/// The longest side of a thumbnail, in pixels.
pub const SIDE: usize = 320;
/// The most pixels decoded to make one thumbnail (a 100-megapixel picture).
pub const MAX_PIXELS: usize = 100_000_000;
/// The largest photo file a thumbnail is made from.
pub const MAX_BYTES: u64 = 64 << 20;
/// The folder of the home that caches them.
pub const DIR: &str = "thumbs";

/// Why there is no thumbnail.
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    /// No such photo record here.
    #[error("no such photo")]
    NoPhoto,
    /// A kind that is not drawn.
    #[error("{0} pictures get no thumbnail")]
    Kind(&'static str),
    /// Too large to decode here.
    #[error("too large for a thumbnail")]
    TooLarge,
    /// This device holds no good copy.
    #[error("this device holds no copy to draw it from")]
    NoCopy,
    /// The picture does not decode.
    #[error("the picture does not decode: {0}")]
    Decode(String),
    /// The cache could not be written.
    #[error("{0}")]
    Io(String),
}

/// Whether photos of `kind` get thumbnails.
pub fn drawn(kind: MediaType) -> bool {
    matches!(
        kind,
        MediaType::Jpeg | MediaType::Mpo | MediaType::Png | MediaType::Webp
    )
}

fn cache_path(home: &Home, photo: &PhotoRecord) -> PathBuf {
    home.path
        .join(DIR)
        .join(format!("{}.jpg", photo.blob_id.to_hex()))
}

/// A thumbnail found in the cache, or what is needed to make it.
pub enum Prepared {
    /// Cached: the JPEG.
    Cached(Vec<u8>),
    /// To make ([`Prepared::finish`]): the photo's content, its kind, and where to cache it.
    Make {
        /// The photo's verified content.
        content: Vec<u8>,
        /// Its kind.
        kind: MediaType,
        /// The cache file.
        cache: PathBuf,
    },
}

/// Reads what the thumbnail of photo record `id` needs from the home: the cached one, or
/// the photo's content. The decoding is left to [`Prepared::finish`], which needs no home
/// (so a page does not hold the home while a large picture decodes).
pub fn prepare(home: &Home, id: &RecordId) -> Result<Prepared, ThumbError> {
    let record = home
        .index
        .record(id)
        .map_err(|e| ThumbError::Io(e.to_string()))?
        .ok_or(ThumbError::NoPhoto)?;
    let photo = record
        .open_photo(&home.keys)
        .map_err(|_| ThumbError::NoPhoto)?;
    if !drawn(photo.media_type) {
        return Err(ThumbError::Kind(photo.media_type.name()));
    }
    let cache = cache_path(home, &photo);
    if let Ok(cached) = std::fs::read(&cache) {
        return Ok(Prepared::Cached(cached));
    }
    if photo.size > MAX_BYTES {
        return Err(ThumbError::TooLarge);
    }
    Ok(Prepared::Make {
        content: plaintext(home, &photo)?,
        kind: photo.media_type,
        cache,
    })
}

impl Prepared {
    /// The thumbnail: the cached one, or made now and cached.
    pub fn finish(self) -> Result<Vec<u8>, ThumbError> {
        let (content, kind, cache) = match self {
            Prepared::Cached(jpeg) => return Ok(jpeg),
            Prepared::Make {
                content,
                kind,
                cache,
            } => (content, kind, cache),
        };
        let jpeg = make(&content, kind)?;
        let io = |e: std::io::Error| ThumbError::Io(format!("{}: {e}", cache.display()));
        if let Some(dir) = cache.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // A name of its own: two requests may make the same thumbnail at once.
        let nonce = crate::home::random32().map_err(|e| ThumbError::Io(e.to_string()))?;
        let tmp = cache.with_extension(format!("{}.tmp", hex::encode(&nonce[..8])));
        std::fs::write(&tmp, &jpeg).map_err(io)?;
        std::fs::rename(&tmp, &cache).map_err(io)?;
        Ok(jpeg)
    }
}

/// The photo's content, checked against its record, from wherever this device holds it.
fn plaintext(home: &Home, photo: &PhotoRecord) -> Result<Vec<u8>, ThumbError> {
    let blob = BlobSource::open(home, &photo.blob_id)
        .map_err(|e| ThumbError::Io(e.to_string()))?
        .ok_or(ThumbError::NoCopy)?;
    let mut out = Vec::with_capacity(usize::try_from(photo.size).unwrap_or(0));
    blob.open_into(&home.keys, photo, &mut out)
        .map_err(|_| ThumbError::NoCopy)?;
    Ok(out)
}

/// A decoded picture: RGB, 3 bytes a pixel, row by row.
struct Rgb {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

/// Makes the thumbnail of a picture of `kind` held in `bytes`.
pub fn make(bytes: &[u8], kind: MediaType) -> Result<Vec<u8>, ThumbError> {
    let picture = match kind {
        MediaType::Jpeg | MediaType::Mpo => jpeg(bytes)?,
        MediaType::Png => png(bytes)?,
        MediaType::Webp => webp(bytes)?,
        other => return Err(ThumbError::Kind(other.name())),
    };
    let small = shrink(&picture, SIDE);
    let small = orient(small, orientation(bytes));
    let mut out = Vec::new();
    let encoder = jpeg_encoder::Encoder::new(&mut out, 82);
    let (w, h) = (
        u16::try_from(small.width).map_err(|_| ThumbError::TooLarge)?,
        u16::try_from(small.height).map_err(|_| ThumbError::TooLarge)?,
    );
    encoder
        .encode(&small.pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| ThumbError::Decode(e.to_string()))?;
    Ok(out)
}

fn check_size(width: usize, height: usize) -> Result<(), ThumbError> {
    if width == 0 || height == 0 {
        return Err(ThumbError::Decode("an empty picture".into()));
    }
    if width.saturating_mul(height) > MAX_PIXELS {
        return Err(ThumbError::TooLarge);
    }
    Ok(())
}

fn jpeg(bytes: &[u8]) -> Result<Rgb, ThumbError> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(1 << 16)
        .set_max_height(1 << 16);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder
        .decode_headers()
        .map_err(|e| ThumbError::Decode(e.to_string()))?;
    let info = decoder
        .info()
        .ok_or_else(|| ThumbError::Decode("no picture header".into()))?;
    let (width, height) = (usize::from(info.width), usize::from(info.height));
    check_size(width, height)?;
    let pixels = decoder
        .decode()
        .map_err(|e| ThumbError::Decode(e.to_string()))?;
    if pixels.len() != width * height * 3 {
        return Err(ThumbError::Decode("an unexpected pixel layout".into()));
    }
    Ok(Rgb {
        width,
        height,
        pixels,
    })
}

fn png(bytes: &[u8]) -> Result<Rgb, ThumbError> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: MAX_PIXELS * 4,
        },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let err = |e: png::DecodingError| ThumbError::Decode(e.to_string());
    let mut reader = decoder.read_info().map_err(err)?;
    let (width, height) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    check_size(width, height)?;
    let size = reader.output_buffer_size().ok_or(ThumbError::TooLarge)?;
    let mut buf = vec![0; size];
    let frame = reader.next_frame(&mut buf).map_err(err)?;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(ThumbError::Decode("an unexpanded palette".into()));
        }
    };
    Ok(to_rgb(width, height, &buf[..frame.buffer_size()], channels))
}

fn webp(bytes: &[u8]) -> Result<Rgb, ThumbError> {
    let err = |e: image_webp::DecodingError| ThumbError::Decode(e.to_string());
    let mut decoder = image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(err)?;
    let (w, h) = decoder.dimensions();
    let (width, height) = (w as usize, h as usize);
    check_size(width, height)?;
    let size = decoder.output_buffer_size().ok_or(ThumbError::TooLarge)?;
    let mut buf = vec![0; size];
    decoder.read_image(&mut buf).map_err(err)?;
    let channels = if decoder.has_alpha() { 4 } else { 3 };
    Ok(to_rgb(width, height, &buf, channels))
}

/// Grey, grey and alpha, RGB or RGBA pixels as RGB (alpha over white).
fn to_rgb(width: usize, height: usize, data: &[u8], channels: usize) -> Rgb {
    let mut pixels = Vec::with_capacity(width * height * 3);
    for px in data.chunks_exact(channels).take(width * height) {
        let (rgb, alpha) = match channels {
            1 => ([px[0]; 3], 255),
            2 => ([px[0]; 3], px[1]),
            3 => ([px[0], px[1], px[2]], 255),
            _ => ([px[0], px[1], px[2]], px[3]),
        };
        for c in rgb {
            let over_white =
                (u32::from(c) * u32::from(alpha) + 255 * (255 - u32::from(alpha))) / 255;
            pixels.push(over_white as u8);
        }
    }
    pixels.resize(width * height * 3, 255);
    Rgb {
        width,
        height,
        pixels,
    }
}

/// The picture scaled to fit in `side` × `side` (never up), each pixel the average of the
/// box of source pixels it covers.
fn shrink(src: &Rgb, side: usize) -> Rgb {
    let scale = (src.width.max(src.height) as f64 / side as f64).max(1.0);
    let width = ((src.width as f64 / scale).round() as usize).clamp(1, side);
    let height = ((src.height as f64 / scale).round() as usize).clamp(1, side);
    let mut pixels = vec![0u8; width * height * 3];
    for y in 0..height {
        let (y0, y1) = (
            y * src.height / height,
            ((y + 1) * src.height / height).max(y * src.height / height + 1),
        );
        for x in 0..width {
            let (x0, x1) = (
                x * src.width / width,
                ((x + 1) * src.width / width).max(x * src.width / width + 1),
            );
            let mut sum = [0u64; 3];
            for sy in y0..y1.min(src.height) {
                let row = &src.pixels
                    [(sy * src.width + x0) * 3..(sy * src.width + x1.min(src.width)) * 3];
                for px in row.chunks_exact(3) {
                    for c in 0..3 {
                        sum[c] += u64::from(px[c]);
                    }
                }
            }
            let n = ((y1.min(src.height) - y0) * (x1.min(src.width) - x0)).max(1) as u64;
            for c in 0..3 {
                pixels[(y * width + x) * 3 + c] = (sum[c] / n) as u8;
            }
        }
    }
    Rgb {
        width,
        height,
        pixels,
    }
}

/// The EXIF orientation of a JPEG (1: as stored), read with `kamadak-exif`.
fn orientation(bytes: &[u8]) -> u32 {
    exif::Reader::new()
        .read_from_container(&mut Cursor::new(bytes))
        .ok()
        .and_then(|e| {
            e.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
                .and_then(|f| f.value.get_uint(0))
        })
        .unwrap_or(1)
}

/// The picture as EXIF orientation `o` says to show it: 3 turned half round, 6 a quarter
/// clockwise, 8 a quarter anticlockwise (the mirrored ones, rare, are shown as stored).
fn orient(src: Rgb, o: u32) -> Rgb {
    let (w, h) = (src.width, src.height);
    let (width, height) = match o {
        3 => (w, h),
        6 | 8 => (h, w),
        _ => return src,
    };
    let mut pixels = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            // The source pixel shown at (x, y).
            let (sx, sy) = match o {
                3 => (w - 1 - x, h - 1 - y),
                6 => (y, h - 1 - x),
                _ => (w - 1 - y, x),
            };
            let at = (sy * w + sx) * 3;
            pixels.extend_from_slice(&src.pixels[at..at + 3]);
        }
    }
    Rgb {
        width,
        height,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(jpeg: &[u8]) -> Rgb {
        super::jpeg(jpeg).unwrap()
    }

    #[test]
    fn a_jpeg_png_and_webp_shrink_to_fit_and_keep_their_colour() {
        // A 640×480 red JPEG.
        let mut jpeg = Vec::new();
        let red: Vec<u8> = [200u8, 20, 20].repeat(640 * 480);
        jpeg_encoder::Encoder::new(&mut jpeg, 90)
            .encode(&red, 640, 480, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        let thumb = decode(&make(&jpeg, MediaType::Jpeg).unwrap());
        assert_eq!((thumb.width, thumb.height), (320, 240));
        let px = &thumb.pixels[..3];
        assert!(px[0] > 150 && px[1] < 70 && px[2] < 70, "{px:?}");

        // A 100×50 half-transparent green PNG: drawn over white.
        let mut png_bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut png_bytes, 100, 50);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            w.write_image_data(&[0u8, 255, 0, 128].repeat(100 * 50))
                .unwrap();
        }
        let thumb = decode(&make(&png_bytes, MediaType::Png).unwrap());
        assert_eq!((thumb.width, thumb.height), (100, 50), "never scaled up");
        let px = &thumb.pixels[..3];
        assert!(px[0] > 100 && px[1] > 230 && px[2] > 100, "{px:?}");

        // Kinds not drawn, and junk, are errors, not panics.
        assert!(matches!(
            make(&jpeg, MediaType::Mp4),
            Err(ThumbError::Kind("mp4"))
        ));
        assert!(matches!(
            make(b"junk", MediaType::Jpeg),
            Err(ThumbError::Decode(_))
        ));
        assert!(matches!(
            make(b"junk", MediaType::Png),
            Err(ThumbError::Decode(_))
        ));
        assert!(matches!(
            make(b"junk", MediaType::Webp),
            Err(ThumbError::Decode(_))
        ));
    }

    #[test]
    fn a_picture_claiming_to_be_huge_is_not_decoded() {
        // A PNG header claiming 60000 × 60000 pixels.
        let mut png_bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut png_bytes, 60_000, 60_000);
            enc.set_color(png::ColorType::Rgb);
            let _ = enc.write_header();
        }
        assert!(matches!(
            make(&png_bytes, MediaType::Png),
            Err(ThumbError::TooLarge | ThumbError::Decode(_))
        ));
    }

    #[test]
    fn turned_as_the_orientation_says() {
        // 2×1: a red pixel, then a blue one.
        let src = Rgb {
            width: 2,
            height: 1,
            pixels: vec![255, 0, 0, 0, 0, 255],
        };
        let cw = orient(
            Rgb {
                pixels: src.pixels.clone(),
                ..src
            },
            6,
        );
        assert_eq!((cw.width, cw.height), (1, 2));
        assert_eq!(
            cw.pixels,
            vec![255, 0, 0, 0, 0, 255],
            "red on top after a clockwise turn"
        );
        let half = orient(
            Rgb {
                width: 2,
                height: 1,
                pixels: vec![255, 0, 0, 0, 0, 255],
            },
            3,
        );
        assert_eq!(half.pixels, vec![0, 0, 255, 255, 0, 0]);
    }
}
