//! Sample photo libraries for the tests: the generator lives in the node crate
//! (`photomesh::demo::samples`, which `photomesh demo` uses too); this module re-exports it with
//! helpers that panic on failure, as tests want.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

pub use photomesh::demo::samples::{MARKER, Rng, mp4_like, png_like, write_demo_library};

/// A real baseline JPEG of `width`×`height` random pixels with an EXIF capture time
/// ([`photomesh::demo::samples::jpeg_with_exif`]).
pub fn jpeg_with_exif(
    rng: &mut Rng,
    width: u16,
    height: u16,
    taken: &str,
    offset: Option<&str>,
) -> Vec<u8> {
    photomesh::demo::samples::jpeg_with_exif(rng, width, height, taken, offset)
        .expect("a sample JPEG encodes")
}

/// Writes a small mixed library into `dir` ([`photomesh::demo::samples::write_library`]).
pub fn write_library(dir: &Path, photos: usize, seed: u64) -> Vec<PathBuf> {
    photomesh::demo::samples::write_library(dir, photos, seed)
        .expect("the sample library is written")
}

/// Writes a 320×240 photo into `folder` the way a camera app does: under a temporary name,
/// then renamed into place (over an existing photo, an edit).
pub fn take_photo(folder: &Path, name: &str, seed: u64) {
    let mut rng = Rng::new(seed);
    let bytes = jpeg_with_exif(&mut rng, 320, 240, "2025:07:01 12:00:00", None);
    let part = folder.join(format!(".{name}.part"));
    std::fs::write(&part, bytes).expect("the photo is written");
    std::fs::rename(&part, folder.join(name)).expect("the photo is renamed into place");
}
