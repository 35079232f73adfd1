//! Writing received blobs past the page cache (`O_DIRECT`), where the filesystem allows it.
//!
//! A replica writes what it receives and rarely reads it back soon: copying every received
//! byte into the page cache first costs a kernel copy into freshly allocated pages (on the
//! development VM, 1.5–2 CPU-seconds per GB, more than the QUIC decryption and the BLAKE3
//! verification together), and evicts pages the device's user may want. Direct writes go
//! from our buffer to the device instead. The page cache is still used where it helps:
//! reading originals and serving stored blobs.
//!
//! Direct I/O needs the buffer, the file offset and the length aligned to the device's
//! logical block; everything here aligns to [`ALIGN`] (4 KiB, a multiple of every common
//! block size). A write whose length is not a multiple of it has its last partial block
//! written through the page cache. A filesystem that refuses direct I/O (`EINVAL`: tmpfs on
//! older kernels, some FUSE filesystems) gets ordinary buffered writes; nothing else
//! changes, durability included: callers flush (`fsync`/`syncfs`) exactly as before.

use crate::lock::Mutex;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// The alignment of direct-write buffers, offsets and lengths.
pub const ALIGN: usize = 4096;

/// A reusable byte buffer whose contents start at an [`ALIGN`] boundary in memory. Safe
/// code: the window is placed inside an ordinary `Vec` at the first aligned address.
#[derive(Default)]
pub struct Aligned {
    vec: Vec<u8>,
    start: usize,
    len: usize,
}

fn round_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

impl Aligned {
    /// Makes the buffer `len` bytes long. The bytes are whatever the buffer held before
    /// (callers overwrite them).
    pub fn set_len(&mut self, len: usize) {
        let needed = round_up(len) + ALIGN;
        if self.vec.len() < needed {
            self.vec.resize(needed, 0);
        }
        self.start = self.vec.as_ptr().align_offset(ALIGN);
        self.len = len;
    }

    /// The buffer's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.vec[self.start..self.start + self.len]
    }

    /// The bytes, to fill.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..self.start + self.len]
    }

    /// The memory the buffer holds.
    fn capacity(&self) -> usize {
        self.vec.len()
    }
}

/// Buffers kept for reuse, up to a byte budget: a buffer used again costs nothing, a new
/// one costs the kernel fresh zeroed pages (and, on a VM, the host faulting them in).
pub struct Pool {
    free: Mutex<Vec<Aligned>>,
    keep_bytes: usize,
}

impl Pool {
    /// A pool that keeps at most `keep_bytes` of idle buffers.
    pub fn new(keep_bytes: usize) -> Self {
        Self {
            free: Mutex::new("the buffer pool", Vec::new()),
            keep_bytes,
        }
    }

    /// A buffer of `len` bytes: the smallest idle one large enough, else a new one.
    pub fn take(&self, len: usize) -> Aligned {
        let reused = {
            let mut free = self.free.lock();
            let needed = round_up(len) + ALIGN;
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= needed)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i)
                // None fits: grow the largest rather than allocate beside it.
                .or_else(|| {
                    free.iter()
                        .enumerate()
                        .max_by_key(|(_, b)| b.capacity())
                        .map(|(i, _)| i)
                });
            best.map(|best| free.swap_remove(best))
        };
        let mut buf = reused.unwrap_or_default();
        buf.set_len(len);
        buf
    }

    /// Returns a buffer for reuse; dropped instead if the pool holds its budget already.
    pub fn give(&self, buf: Aligned) {
        {
            let mut free = self.free.lock();
            let held: usize = free.iter().map(Aligned::capacity).sum();
            if held + buf.capacity() <= self.keep_bytes {
                free.push(buf);
            }
        }
    }
}

/// A file written with direct I/O while the filesystem allows it, with buffered writes
/// after the first refusal.
pub struct DirectFile {
    file: File,
    direct: AtomicBool,
}

/// The open flag for direct I/O, where the platform has one.
fn direct_flag() -> i32 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        rustix::fs::OFlags::DIRECT.bits() as i32
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        0
    }
}

impl DirectFile {
    /// Opens `path` for writing with `options` (create, truncate...), direct if possible.
    pub fn open(path: &Path, options: &OpenOptions) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let flag = direct_flag();
        if flag != 0 {
            let mut direct = options.clone();
            direct.custom_flags(flag);
            match direct.open(path) {
                Ok(file) => {
                    return Ok(Self {
                        file,
                        direct: AtomicBool::new(true),
                    });
                }
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            file: options.open(path)?,
            direct: AtomicBool::new(false),
        })
    }

    /// Creates (or truncates) `path` and writes `buf` into it.
    pub fn create_with(path: &Path, buf: &Aligned) -> io::Result<()> {
        let file = Self::open(
            path,
            OpenOptions::new().write(true).create(true).truncate(true),
        )?;
        file.write_at(buf, 0)
    }

    /// Whether writes still go past the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// Writes `buf` at `offset`. Direct writes need `offset` to be a multiple of [`ALIGN`]
    /// (others are written buffered); a length that is not a multiple of it, which only the
    /// last piece of a file has, has its last partial block written buffered.
    pub fn write_at(&self, buf: &Aligned, offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.is_direct() && offset.is_multiple_of(ALIGN as u64) {
            let whole = buf.len() / ALIGN * ALIGN;
            match self.file.write_all_at(&buf.bytes()[..whole], offset) {
                Ok(()) if whole == buf.len() => return Ok(()),
                Ok(()) => return self.write_tail(&buf.bytes()[whole..], offset + whole as u64),
                // This filesystem (or device) wants other alignment: buffered from now on.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    self.stop_direct()?;
                }
                Err(e) => return Err(e),
            }
        } else if self.is_direct() {
            self.stop_direct()?;
        }
        self.file.write_all_at(buf.bytes(), offset)
    }

    /// Writes a file's last partial block through the page cache. A direct write would
    /// need it padded to a whole block and the file cut back after it, and the cut (an
    /// `ftruncate` that frees the padding's block) cost a small blob's receiver as much CPU
    /// as its direct write.
    fn write_tail(&self, tail: &[u8], offset: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.set_direct_flag(false)?;
        let written = self.file.write_all_at(tail, offset);
        if self.set_direct_flag(true).is_err() {
            // Buffered from now on: as correct, only slower.
            self.direct.store(false, Ordering::Relaxed);
        }
        written
    }

    /// Turns direct I/O off for this file.
    fn stop_direct(&self) -> io::Result<()> {
        self.direct.store(false, Ordering::Relaxed);
        self.set_direct_flag(false)
    }

    /// Sets or clears the file's direct I/O flag.
    fn set_direct_flag(&self, on: bool) -> io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::fs::OFlags;
            let flags = rustix::fs::fcntl_getfl(&self.file)?;
            let flags = if on {
                flags | OFlags::DIRECT
            } else {
                flags - OFlags::DIRECT
            };
            rustix::fs::fcntl_setfl(&self.file, flags)?;
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = on;
        Ok(())
    }

    /// The file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_aligned() {
        let pool = Pool::new(1 << 20);
        let mut buf = pool.take(5000);
        assert_eq!(buf.bytes().as_ptr().align_offset(ALIGN), 0);
        buf.bytes_mut().fill(7);
        pool.give(buf);
        // Reused, shorter: still aligned, the same memory.
        let buf = pool.take(100);
        assert_eq!(buf.bytes().as_ptr().align_offset(ALIGN), 0);
        assert!(buf.bytes().iter().all(|&b| b == 7));
    }

    #[test]
    fn the_pool_keeps_no_more_than_its_budget() {
        let pool = Pool::new(3 * ALIGN);
        pool.give(pool.take(ALIGN));
        pool.give(pool.take(5 * ALIGN));
        let held: usize = pool.free.lock().iter().map(|b| b.capacity()).sum();
        assert!(held <= 3 * ALIGN, "{held}");
    }

    #[test]
    fn a_file_written_directly_has_exactly_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::new(0);
        for len in [0, 1, ALIGN - 1, ALIGN, 3 * ALIGN + 17] {
            let mut buf = pool.take(len);
            for (i, b) in buf.bytes_mut().iter_mut().enumerate() {
                *b = (i % 251) as u8;
            }
            let path = dir.path().join(format!("f{len}"));
            DirectFile::create_with(&path, &buf).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), buf.bytes(), "length {len}");
        }
    }

    #[test]
    fn pieces_written_at_offsets_make_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial");
        let file = DirectFile::open(
            &path,
            OpenOptions::new().write(true).create(true).truncate(false),
        )
        .unwrap();
        let pool = Pool::new(0);
        let mut second = pool.take(ALIGN + 10);
        second.bytes_mut().fill(2);
        let mut first = pool.take(2 * ALIGN);
        first.bytes_mut().fill(1);
        // Out of order, the short piece last in the file, as a range helper writes them.
        file.write_at(&second, 2 * ALIGN as u64).unwrap();
        file.write_at(&first, 0).unwrap();
        let read = std::fs::read(&path).unwrap();
        assert_eq!(read.len(), 3 * ALIGN + 10);
        assert!(read[..2 * ALIGN].iter().all(|&b| b == 1));
        assert!(read[2 * ALIGN..].iter().all(|&b| b == 2));
        // An unaligned offset still writes, buffered.
        let mut odd = pool.take(3);
        odd.bytes_mut().fill(9);
        file.write_at(&odd, 5).unwrap();
        assert!(!file.is_direct());
        assert_eq!(&std::fs::read(&path).unwrap()[5..8], &[9, 9, 9]);
    }
}
