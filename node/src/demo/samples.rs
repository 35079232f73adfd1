//! Sample photo libraries made on the spot, for `photomesh demo` and the tests: real JPEGs
//! with EXIF capture times (encoded by `jpeg-encoder`, EXIF written by `kamadak-exif`), PNGs
//! and MP4s with the right magic bytes, and a plaintext marker planted in every file so tests
//! can look for leaks.
//!
//! [`write_library`] makes tiny noise images, quick for tests; [`write_demo_library`] makes
//! photo-like scenes (sky, sun, hills, water) of a few hundred kilobytes each and a short
//! fake video. Everything is deterministic in its seed. Nothing here reads a real photo.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use exif::{Field, In, Tag, Value};

/// Why a sample could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The JPEG or its EXIF could not be encoded (a size of zero, or too large).
    #[error("cannot encode a sample JPEG: {0}")]
    Encode(String),
    /// A file or folder could not be written.
    #[error("cannot write the sample {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// A string planted in every sample file, so a test can prove no plaintext leaked.
pub const MARKER: &[u8] = b"PHOTOMESH-PLAINTEXT-MARKER";

/// A small deterministic generator (SplitMix64), so sample libraries replay from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A real baseline JPEG of `width`×`height` random pixels carrying EXIF `DateTimeOriginal`
/// (`YYYY:MM:DD HH:MM:SS`) and, if given, `OffsetTimeOriginal` (`+HH:MM`).
pub fn jpeg_with_exif(
    rng: &mut Rng,
    width: u16,
    height: u16,
    taken: &str,
    offset: Option<&str>,
) -> Result<Vec<u8>, SampleError> {
    let mut pixels = vec![0u8; usize::from(width) * usize::from(height) * 3];
    rng.fill(&mut pixels);
    encode_jpeg(&pixels, width, height, taken, offset)
}

/// Encodes RGB `pixels` as a baseline JPEG with EXIF capture time and the [`MARKER`].
fn encode_jpeg(
    pixels: &[u8],
    width: u16,
    height: u16,
    taken: &str,
    offset: Option<&str>,
) -> Result<Vec<u8>, SampleError> {
    let encode = |e: &dyn std::fmt::Display| SampleError::Encode(e.to_string());
    let taken_field = Field {
        tag: Tag::DateTimeOriginal,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![taken.as_bytes().to_vec()]),
    };
    let offset_field = offset.map(|o| Field {
        tag: Tag::OffsetTimeOriginal,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![o.as_bytes().to_vec()]),
    });
    let description = Field {
        tag: Tag::ImageDescription,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![MARKER.to_vec()]),
    };
    let mut writer = exif::experimental::Writer::new();
    writer.push_field(&taken_field);
    writer.push_field(&description);
    if let Some(f) = &offset_field {
        writer.push_field(f);
    }
    let mut tiff = Cursor::new(Vec::new());
    writer.write(&mut tiff, false).map_err(|e| encode(&e))?;
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(tiff.get_ref());

    let mut jpeg = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, 85);
    encoder.add_app_segment(1, app1).map_err(|e| encode(&e))?;
    encoder
        .encode(pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| encode(&e))?;
    Ok(jpeg)
}

/// Bytes that start like a PNG, followed by `len` random bytes and the marker.
pub fn png_like(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut data = b"\x89PNG\r\n\x1a\n".to_vec();
    let start = data.len();
    data.resize(start + len, 0);
    rng.fill(&mut data[start..]);
    data.extend_from_slice(MARKER);
    data
}

/// An MP4 whose `moov/mvhd` says it was made at `unix_seconds` (UTC), followed by an `mdat`
/// box of `len` random bytes (with the marker in it).
pub fn mp4_like(rng: &mut Rng, unix_seconds: i64, len: usize) -> Vec<u8> {
    let created = (unix_seconds + 2_082_844_800) as u32;
    let mut mvhd = vec![0, 0, 0, 0];
    mvhd.extend_from_slice(&created.to_be_bytes());
    mvhd.extend_from_slice(&created.to_be_bytes());
    mvhd.extend_from_slice(&[0; 88]);
    let mut out = b"\0\0\0\x14ftypisom\0\0\x02\0isom".to_vec();
    out.extend_from_slice(&((8 + 8 + mvhd.len()) as u32).to_be_bytes());
    out.extend_from_slice(b"moov");
    out.extend_from_slice(&((8 + mvhd.len()) as u32).to_be_bytes());
    out.extend_from_slice(b"mvhd");
    out.extend_from_slice(&mvhd);
    let mut payload = vec![0u8; len];
    rng.fill(&mut payload);
    payload.extend_from_slice(MARKER);
    out.extend_from_slice(&((8 + payload.len()) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    out.extend_from_slice(&payload);
    out
}

/// Writes a small mixed library into `dir`: `photos` tiny JPEGs with EXIF spread over
/// sub-folders, a PNG, and an MP4. Returns the files written.
pub fn write_library(dir: &Path, photos: usize, seed: u64) -> Result<Vec<PathBuf>, SampleError> {
    let mut rng = Rng::new(seed);
    let mut written = Vec::new();
    for i in 0..photos {
        let taken = format!(
            "2024:{:02}:{:02} 10:{:02}:00",
            i % 12 + 1,
            i % 28 + 1,
            i % 60
        );
        let jpeg = jpeg_with_exif(&mut rng, 64, 48, &taken, Some("+01:00"))?;
        let path = dir.join(format!("2024/{:02}/IMG_{i:04}.JPG", i % 12 + 1));
        write(&path, &jpeg)?;
        written.push(path);
    }
    let png = dir.join("screenshot.png");
    write(&png, &png_like(&mut rng, 20_000))?;
    written.push(png);
    let mp4 = dir.join("clip.mp4");
    write(&mp4, &mp4_like(&mut rng, 1_704_067_200, 200_000))?;
    written.push(mp4);
    Ok(written)
}

/// Writes a phone's camera roll into `dir`: `photos` photo-like JPEGs (landscapes of
/// 800×600, some upright, each scene different) with EXIF capture times over a summer,
/// and one short fake video `VID_0001.MP4` of 1 MB. Returns the files written.
pub fn write_demo_library(
    dir: &Path,
    photos: usize,
    seed: u64,
) -> Result<Vec<PathBuf>, SampleError> {
    let mut rng = Rng::new(seed);
    let mut written = Vec::new();
    for i in 0..photos {
        let (width, height) = if i % 5 == 3 { (600, 800) } else { (800, 600) };
        let pixels = scene(&mut rng, width, height);
        let day = i % 30 + 1;
        let taken = format!(
            "2024:{:02}:{day:02} {:02}:{:02}:{:02}",
            6 + i / 30 % 3,
            8 + i % 11,
            (i * 7) % 60,
            (i * 13) % 60
        );
        let jpeg = encode_jpeg(&pixels, width, height, &taken, Some("+02:00"))?;
        let path = dir.join(format!("IMG_{:04}.JPG", i + 1));
        write(&path, &jpeg)?;
        written.push(path);
    }
    let video = dir.join("VID_0001.MP4");
    write(&video, &mp4_like(&mut rng, 1_719_835_200, 1_000_000))?;
    written.push(video);
    Ok(written)
}

/// A landscape of `width`×`height` RGB pixels: a sky graded from its zenith colour to the
/// horizon, a sun with its glow, a range of far hills, near hills, sometimes a lake with a
/// level shore that mirrors the sky and the sun, and a little grain, all drawn from `rng`.
fn scene(rng: &mut Rng, width: u16, height: u16) -> Vec<u8> {
    let mut unit = || (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32;
    let zenith = [unit() * 80.0, 60.0 + unit() * 90.0, 140.0 + unit() * 115.0];
    let horizon_sky = [
        200.0 + unit() * 55.0,
        150.0 + unit() * 90.0,
        120.0 + unit() * 100.0,
    ];
    let hill = [
        20.0 + unit() * 80.0,
        70.0 + unit() * 90.0,
        10.0 + unit() * 50.0,
    ];
    let sun = (unit(), 0.08 + unit() * 0.25, 0.035 + unit() * 0.05);
    let far = (3.0 + unit() * 9.0, unit() * 6.3, 0.02 + unit() * 0.04);
    let near = (1.5 + unit() * 5.0, unit() * 6.3, 0.03 + unit() * 0.07);
    let horizon = 0.42 + unit() * 0.2;
    let shore = if unit() < 0.45 {
        Some(horizon + near.2 + 0.08 + unit() * 0.15)
    } else {
        None
    };
    let far_colour = mix(horizon_sky, [70.0, 90.0, 120.0], 0.6);
    let (w, h) = (f32::from(width), f32::from(height));
    let sky = |fx: f32, fy: f32| {
        let mut c = mix(zenith, horizon_sky, fy / horizon);
        let d = ((fx - sun.0).powi(2) + ((fy - sun.1) * h / w).powi(2)).sqrt();
        if d < sun.2 {
            c = [255.0, 242.0, 205.0];
        } else if d < sun.2 * 4.0 {
            c = mix([255.0, 225.0, 170.0], c, (d - sun.2) / (sun.2 * 3.0));
        }
        c
    };
    let mut pixels = Vec::with_capacity(usize::from(width) * usize::from(height) * 3);
    let mut grain = Rng::new(rng.next_u64());
    for y in 0..height {
        let fy = f32::from(y) / h;
        for x in 0..width {
            let fx = f32::from(x) / w;
            let far_ridge = horizon - 0.05
                + far.2 * (fx * far.0 + far.1).sin()
                + far.2 * 0.4 * (fx * far.0 * 2.7).sin();
            let near_ridge = horizon + near.2 * (fx * near.0 + near.1).sin();
            let mut rgb = match shore {
                Some(shore) if fy > shore => {
                    // The lake mirrors the sky above the shore, darker and rippled.
                    let mirrored = (2.0 * shore - fy).max(0.0);
                    let ripple = (fy * 400.0).sin() * 0.004;
                    let c = sky(fx + ripple, mirrored * horizon / shore);
                    [c[0] * 0.75, c[1] * 0.8, c[2] * 0.9]
                }
                _ if fy < far_ridge => sky(fx, fy),
                _ if fy < near_ridge => {
                    mix(far_colour, hill, ((fy - far_ridge) / 0.2).clamp(0.0, 0.5))
                }
                _ => {
                    let shade = 1.0 - (fy - near_ridge) * 0.7;
                    [hill[0] * shade, hill[1] * shade, hill[2] * shade]
                }
            };
            let noise = (grain.next_u64() % 13) as f32 - 6.0;
            for c in &mut rgb {
                *c = (*c + noise).clamp(0.0, 255.0);
            }
            pixels.extend(rgb.map(|c| c as u8));
        }
    }
    pixels
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    let t = t.clamp(0.0, 1.0);
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), SampleError> {
    let error = |source| SampleError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(error)?;
    }
    fs::write(path, bytes).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_library_is_real_varied_jpegs_and_a_video() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_demo_library(dir.path(), 4, 1).unwrap();
        assert_eq!(files.len(), 5);
        let mut seen = std::collections::BTreeSet::new();
        for f in &files[..4] {
            let bytes = fs::read(f).unwrap();
            assert!(bytes.starts_with(&[0xFF, 0xD8]), "{}", f.display());
            assert!(
                bytes.len() > 20_000,
                "{}: {} bytes",
                f.display(),
                bytes.len()
            );
            let kind = crate::library::media::type_from_extension(f);
            assert!(
                crate::library::media::content_matches(kind, &bytes),
                "{}",
                f.display()
            );
            let taken = crate::library::media::capture_time(&fs::File::open(f).unwrap(), kind);
            assert!(taken.is_some(), "{} has a capture time", f.display());
            seen.insert(*blake3::hash(&bytes).as_bytes());
        }
        assert_eq!(seen.len(), 4, "every photo differs");
        assert!(fs::read(&files[4]).unwrap().len() > 1_000_000);
        // The same seed makes the same library.
        let again = tempfile::tempdir().unwrap();
        write_demo_library(again.path(), 4, 1).unwrap();
        assert_eq!(
            fs::read(&files[2]).unwrap(),
            fs::read(again.path().join("IMG_0003.JPG")).unwrap()
        );
    }
}
