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
