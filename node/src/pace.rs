//! A reader that reads at most a given number of bytes a second, sleeping between reads: the
//! scrub's pace, held within each file (a 100 MiB video is not read in one burst).

use std::io::Read;
use std::time::{Duration, Instant};

/// Reads from `inner` at no more than `rate` bytes a second on average since the first read
/// (`u64::MAX`: no limit). It sleeps the calling thread: use it on a blocking thread.
pub struct Paced<R> {
    inner: R,
    rate: u64,
    started: Option<Instant>,
    read: u64,
}

impl<R> Paced<R> {
    /// Paces `inner` to `rate` bytes a second.
    pub fn new(inner: R, rate: u64) -> Self {
        Self {
            inner,
            rate: rate.max(1),
            started: None,
            read: 0,
        }
    }
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let started = *self.started.get_or_insert_with(Instant::now);
        if self.rate != u64::MAX {
            // Ahead of the pace: wait until the bytes read so far are due.
            let due = Duration::from_secs_f64(self.read as f64 / self.rate as f64);
            if let Some(rest) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        // At most a tenth of a second's worth at a time, so the pace holds within a read.
        let most = usize::try_from((self.rate / 10).max(64 << 10)).unwrap_or(usize::MAX);
        let n = buf.len().min(most);
        let got = self.inner.read(&mut buf[..n])?;
        self.read += got as u64;
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_everything_and_no_faster_than_the_rate() {
        let data = vec![7u8; 300_000];
        let started = Instant::now();
        let mut out = Vec::new();
        Paced::new(&data[..], 1_000_000)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        // 300 kB at 1 MB/s: the last read may start at 0.2 s at the earliest.
        assert!(started.elapsed() >= Duration::from_millis(200));
        let mut fast = Vec::new();
        Paced::new(&data[..], u64::MAX)
            .read_to_end(&mut fast)
            .unwrap();
        assert_eq!(fast, data);
    }
}
