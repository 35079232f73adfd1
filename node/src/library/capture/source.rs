//! Bounded random access to the bytes of a file (or of a buffer, or of a part of either).
//!
//! Every parser reads through [`Bytes`]: a read past the end fails instead of panicking, and
//! a file is read through a small cache with a budget, so a damaged or hostile file cannot
//! make a parser read more than [`READ_BUDGET`] bytes or call the system more than
//! [`MAX_READS`] times, however its offsets point.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// At most this many bytes are read from a file for one capture time.
pub(crate) const READ_BUDGET: u64 = 32 << 20;
/// At most this many reads are made from a file for one capture time.
pub(crate) const MAX_READS: u32 = 200_000;
/// Small reads are served from a cache filled this many bytes at a time.
const CACHE_FILL: usize = 1024;

/// Random-access bytes.
pub(crate) trait Bytes {
    /// How many bytes there are.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `pos`; false (and `buf` unspecified) when they are not
    /// all there or cannot be read.
    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> bool;
}

/// A buffer's bytes.
pub(crate) struct Mem<'a>(pub &'a [u8]);

impl Bytes for Mem<'_> {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> bool {
        let Ok(start) = usize::try_from(pos) else {
            return false;
        };
        match start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

/// A file's bytes, read through a cache and within a budget.
pub(crate) struct FileBytes<'f> {
    file: &'f File,
    size: u64,
    cache: Vec<u8>,
    cache_pos: u64,
    budget: u64,
    reads: u32,
}

impl<'f> FileBytes<'f> {
    /// The file's bytes as they are now; `None` when its length cannot be read.
    pub(crate) fn new(file: &'f File) -> Option<Self> {
        Some(FileBytes {
            file,
            size: file.metadata().ok()?.len(),
            cache: Vec::new(),
            cache_pos: 0,
            budget: READ_BUDGET,
            reads: 0,
        })
    }

    /// How many bytes were read from the file so far.
    #[cfg(test)]
    pub(crate) fn spent(&self) -> u64 {
        READ_BUDGET - self.budget
    }

    fn raw_read(&mut self, pos: u64, buf: &mut [u8]) -> bool {
        let len = buf.len() as u64;
        if self.reads >= MAX_READS || len > self.budget {
            return false;
        }
        self.reads += 1;
        self.budget -= len;
        let mut file = self.file;
        file.seek(SeekFrom::Start(pos)).is_ok() && file.read_exact(buf).is_ok()
    }
}

impl Bytes for FileBytes<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> bool {
        let Some(end) = pos.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > self.size {
            return false;
        }
        if buf.is_empty() {
            return true;
        }
        let cache_end = self.cache_pos + self.cache.len() as u64;
        if pos >= self.cache_pos && end <= cache_end {
            // Both differences fit: they are within the cache's length.
            let from = (pos - self.cache_pos) as usize;
            buf.copy_from_slice(&self.cache[from..from + buf.len()]);
            return true;
        }
        if buf.len() >= CACHE_FILL {
            return self.raw_read(pos, buf);
        }
        let fill = (self.size - pos).min(CACHE_FILL as u64) as usize;
        let mut cache = std::mem::take(&mut self.cache);
        cache.resize(fill, 0);
        if !self.raw_read(pos, &mut cache) {
            cache.clear();
            self.cache = cache;
            return false;
        }
        buf.copy_from_slice(&cache[..buf.len()]);
        self.cache = cache;
        self.cache_pos = pos;
        true
    }
}

/// The bytes `[start, start + size)` of other bytes, clamped to them.
pub(crate) struct Window<'a> {
    inner: &'a mut dyn Bytes,
    start: u64,
    size: u64,
}

impl<'a> Window<'a> {
    /// The part of `inner` from `start`, `size` bytes long (or less at its end).
    pub(crate) fn new(inner: &'a mut dyn Bytes, start: u64, size: u64) -> Self {
        let size = size.min(inner.size().saturating_sub(start));
        Window { inner, start, size }
    }
}

impl Bytes for Window<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> bool {
        match pos.checked_add(buf.len() as u64) {
            Some(end) if end <= self.size => self.inner.read_at(self.start + pos, buf),
            _ => false,
        }
    }
}

/// `N` bytes at `pos`.
pub(crate) fn array<const N: usize>(b: &mut dyn Bytes, pos: u64) -> Option<[u8; N]> {
    let mut out = [0; N];
    b.read_at(pos, &mut out).then_some(out)
}

/// A big-endian `u16` at `pos`.
pub(crate) fn be16(b: &mut dyn Bytes, pos: u64) -> Option<u16> {
    array(b, pos).map(u16::from_be_bytes)
}

/// A big-endian `u32` at `pos`.
pub(crate) fn be32(b: &mut dyn Bytes, pos: u64) -> Option<u32> {
    array(b, pos).map(u32::from_be_bytes)
}

/// A big-endian `u64` at `pos`.
pub(crate) fn be64(b: &mut dyn Bytes, pos: u64) -> Option<u64> {
    array(b, pos).map(u64::from_be_bytes)
}

/// A little-endian `u32` at `pos`.
pub(crate) fn le32(b: &mut dyn Bytes, pos: u64) -> Option<u32> {
    array(b, pos).map(u32::from_le_bytes)
}

/// Up to `len` bytes from `pos` (fewer at the end, at most `max`); `None` when `pos` is past
/// the end or the bytes cannot be read.
pub(crate) fn read_vec(b: &mut dyn Bytes, pos: u64, len: u64, max: usize) -> Option<Vec<u8>> {
    let avail = b.size().checked_sub(pos)?;
    let n = usize::try_from(len.min(avail).min(max as u64)).ok()?;
    let mut out = vec![0; n];
    b.read_at(pos, &mut out).then_some(out)
}

/// Whether the bytes at `pos` are `magic`.
pub(crate) fn starts_with(b: &mut dyn Bytes, pos: u64, magic: &[u8]) -> bool {
    let mut buf = [0u8; 32];
    let Some(buf) = buf.get_mut(..magic.len()) else {
        return false;
    };
    b.read_at(pos, buf) && buf == magic
}

/// Reads numbers of one byte order out of slices.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Endian {
    /// Little-endian ("II"), else big-endian ("MM").
    pub(crate) little: bool,
}

impl Endian {
    /// A `u16` at the start of `s`.
    pub(crate) fn u16(self, s: &[u8]) -> Option<u16> {
        let a: [u8; 2] = s.get(..2)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(a)
        } else {
            u16::from_be_bytes(a)
        })
    }

    /// A `u32` at the start of `s`.
    pub(crate) fn u32(self, s: &[u8]) -> Option<u32> {
        let a: [u8; 4] = s.get(..4)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    }

    /// A `u64` at the start of `s`.
    pub(crate) fn u64(self, s: &[u8]) -> Option<u64> {
        let a: [u8; 8] = s.get(..8)?.try_into().ok()?;
        Some(if self.little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_fail_and_windows_clamp() {
        let data = [1u8, 2, 3, 4, 5, 6];
        let mut mem = Mem(&data);
        assert_eq!(be16(&mut mem, 4), Some(0x0506));
        assert_eq!(be16(&mut mem, 5), None);
        assert_eq!(be16(&mut mem, u64::MAX), None);
        let mut w = Window::new(&mut mem, 2, 100);
        assert_eq!(w.size(), 4);
        assert_eq!(be32(&mut w, 0), Some(0x0304_0506));
        assert_eq!(be32(&mut w, 1), None);
        let w2 = Window::new(&mut mem, 10, 5);
        assert_eq!(w2.size(), 0);
        assert_eq!(read_vec(&mut mem, 4, 10, 1), Some(vec![5]));
        assert_eq!(read_vec(&mut mem, 7, 10, 10), None);
    }

    #[test]
    fn a_file_is_read_through_the_cache_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let mut b = FileBytes::new(&file).unwrap();
        assert_eq!(b.size(), 20_000);
        for pos in [0u64, 1, 4095, 4096, 10_000, 19_996] {
            let got = be32(&mut b, pos).unwrap();
            let p = pos as usize;
            assert_eq!(got.to_be_bytes(), data[p..p + 4]);
        }
        assert_eq!(be32(&mut b, 19_997), None);
        let big = read_vec(&mut b, 100, 10_000, 1 << 20).unwrap();
        assert_eq!(big, data[100..10_100]);
        // A budget spent refuses further reads instead of reading on.
        b.budget = 3;
        b.cache.clear();
        assert_eq!(be32(&mut b, 0), None);
    }
}
