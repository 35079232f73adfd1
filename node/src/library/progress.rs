//! Progress of long work: a bar on a terminal, a plain line every few seconds otherwise.
//!
//! Progress goes to standard error, so standard output stays clean for results and `--json`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Something that is told how long work is progressing.
pub trait Progress {
    /// Work of `total_items` items and `total_bytes` bytes begins.
    fn start(&mut self, what: &str, total_items: u64, total_bytes: u64);
    /// `items` more items and `bytes` more bytes are done.
    fn advance(&mut self, items: u64, bytes: u64);
    /// The work is over.
    fn finish(&mut self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: &str, _: u64, _: u64) {}
    fn advance(&mut self, _: u64, _: u64) {}
    fn finish(&mut self) {}
}

/// Shows a bar when standard error is a terminal, and otherwise prints a line every
/// [`LINE_INTERVAL`].
pub enum Reporter {
    /// An interactive bar, with the item counts shown in its message.
    Bar(Option<(indicatif::ProgressBar, String, u64, u64)>),
    /// Periodic plain lines.
    Lines(LineState),
}

/// How often the plain-line reporter prints.
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// State of the plain-line reporter.
pub struct LineState {
    what: String,
    total_items: u64,
    total_bytes: u64,
    items: u64,
    bytes: u64,
    started: Instant,
    last_line: Instant,
}

impl Reporter {
    /// The reporter that fits standard error.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() {
            Self::Bar(None)
        } else {
            Self::Lines(LineState {
                what: String::new(),
                total_items: 0,
                total_bytes: 0,
                items: 0,
                bytes: 0,
                started: Instant::now(),
                last_line: Instant::now(),
            })
        }
    }
}

impl LineState {
    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.bytes as f64 / secs;
        let eta = match self.total_bytes.checked_sub(self.bytes) {
            Some(left) if rate > 0.0 && left > 0 => {
                format!(", about {} left", rough_duration(left as f64 / rate))
            }
            _ => String::new(),
        };
        format!(
            "{}: {}/{} files, {}/{} MB, {:.0} MB/s{eta}",
            self.what,
            self.items,
            self.total_items,
            self.bytes / 1_000_000,
            self.total_bytes / 1_000_000,
            rate / 1e6
        )
    }
}

/// Seconds as a rough duration: `40s`, `12m`, `3h 20m`.
pub fn rough_duration(secs: f64) -> String {
    let s = secs.round().max(0.0) as u64;
    match s {
        0..=99 => format!("{s}s"),
        100..=5_999 => format!("{}m", s.div_ceil(60)),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

impl Progress for Reporter {
    fn start(&mut self, what: &str, total_items: u64, total_bytes: u64) {
        match self {
            Self::Bar(bar) => {
                let b = indicatif::ProgressBar::new(total_bytes);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                ) {
                    b.set_style(style.progress_chars("=> "));
                }
                b.set_message(format!("{what}: 0/{total_items} files"));
                *bar = Some((b, what.to_owned(), 0, total_items));
            }
            Self::Lines(state) => {
                state.what = what.to_owned();
                state.total_items = total_items;
                state.total_bytes = total_bytes;
                state.started = Instant::now();
                state.last_line = Instant::now();
            }
        }
    }

    fn advance(&mut self, items: u64, bytes: u64) {
        match self {
            Self::Bar(Some((b, what, done, total))) => {
                b.inc(bytes);
                *done += items;
                b.set_message(format!("{what}: {done}/{total} files"));
            }
            Self::Bar(None) => {}
            Self::Lines(state) => {
                state.items += items;
                state.bytes += bytes;
                if state.last_line.elapsed() >= LINE_INTERVAL {
                    state.last_line = Instant::now();
                    eprintln!("{}", state.line());
                }
            }
        }
    }

    fn finish(&mut self) {
        match self {
            Self::Bar(bar) => {
                if let Some((b, ..)) = bar.take() {
                    b.finish_and_clear();
                }
            }
            Self::Lines(state) => {
                // Short work needs no closing line; long work gets one to match its others.
                if state.started.elapsed() >= LINE_INTERVAL {
                    eprintln!("{} (done)", state.line());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_carry_an_eta() {
        let state = LineState {
            what: "restore".into(),
            total_items: 10,
            total_bytes: 300_000_000,
            items: 5,
            bytes: 100_000_000,
            started: Instant::now() - Duration::from_secs(10),
            last_line: Instant::now(),
        };
        let line = state.line();
        assert!(
            line.starts_with("restore: 5/10 files, 100/300 MB, 10 MB/s"),
            "{line}"
        );
        assert!(line.ends_with("about 20s left"), "{line}");
        assert_eq!(rough_duration(7_260.0), "2h 1m");
        assert_eq!(rough_duration(150.0), "3m");
    }
}
