//! Sample photo libraries made on the spot: real JPEGs with EXIF capture times (encoded by
//! `jpeg-encoder`, EXIF written by `kamadak-exif`), PNGs and MP4s with the right magic bytes,
//! and a plaintext marker planted in every file so tests can look for leaks.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use exif::{Field, In, Tag, Value};

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
) -> Vec<u8> {
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
    writer.write(&mut tiff, false).expect("EXIF encodes");
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(tiff.get_ref());

    let mut pixels = vec![0u8; usize::from(width) * usize::from(height) * 3];
    rng.fill(&mut pixels);
    let mut jpeg = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, 85);
    encoder
        .add_app_segment(1, app1)
        .expect("EXIF fits an APP1 segment");
    encoder
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .expect("JPEG encodes");
    jpeg
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

/// Writes a small mixed library into `dir`: `photos` JPEGs with EXIF spread over
/// sub-folders, a PNG, and an MP4. Returns the files written.
pub fn write_library(dir: &Path, photos: usize, seed: u64) -> Vec<PathBuf> {
    let mut rng = Rng::new(seed);
    let mut written = Vec::new();
    for i in 0..photos {
        let sub = dir.join(format!("2024/{:02}", i % 12 + 1));
        fs::create_dir_all(&sub).expect("create sample folder");
        let path = sub.join(format!("IMG_{i:04}.JPG"));
        let taken = format!(
            "2024:{:02}:{:02} 10:{:02}:00",
            i % 12 + 1,
            i % 28 + 1,
            i % 60
        );
        fs::write(
            &path,
            jpeg_with_exif(&mut rng, 64, 48, &taken, Some("+01:00")),
        )
        .expect("write sample JPEG");
        written.push(path);
    }
    let png = dir.join("screenshot.png");
    fs::write(&png, png_like(&mut rng, 20_000)).expect("write sample PNG");
    written.push(png);
    let mp4 = dir.join("clip.mp4");
    fs::write(&mp4, mp4_like(&mut rng, 1_704_067_200, 200_000)).expect("write sample MP4");
    written.push(mp4);
    written
}
