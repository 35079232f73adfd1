//! The partial-file format: a large blob being received lives in `blobs/partial/ID`, with the
//! verified chunk groups persisted beside it (`ID.progress`), so a killed node or a dropped
//! peer resumes exactly what is missing. A progress file is trusted no further than the data.

use std::fs::{self};
use std::io;
use std::path::{Path, PathBuf};

/// The number of chunk groups of a blob of `sealed_len` bytes.
pub(crate) fn groups_of(sealed_len: u64) -> u64 {
    sealed_len.div_ceil(GROUP_BYTES)
}

/// A set of chunk groups, as sorted, disjoint, non-adjacent ranges.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct GroupSet(pub(crate) Vec<(u64, u64)>);

impl GroupSet {
    pub(crate) fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.0.push((start, end));
        self.0.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.0.len());
        for (s, e) in self.0.drain(..) {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.0 = merged;
    }

    pub(crate) fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut kept = Vec::with_capacity(self.0.len() + 1);
        for &(s, e) in &self.0 {
            if e <= start || s >= end {
                kept.push((s, e));
                continue;
            }
            if s < start {
                kept.push((s, start));
            }
            if e > end {
                kept.push((end, e));
            }
        }
        self.0 = kept;
    }

    pub(crate) fn contains(&self, group: u64) -> bool {
        self.0.iter().any(|&(s, e)| s <= group && group < e)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of groups in the set.
    pub(crate) fn len(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }

    /// The group after the last one in the set (0 when empty).
    pub(crate) fn end(&self) -> u64 {
        self.0.last().map_or(0, |r| r.1)
    }

    /// The first group not in the set.
    pub(crate) fn first_missing(&self) -> u64 {
        match self.0.first() {
            Some(&(0, e)) => e,
            _ => 0,
        }
    }

    /// The verified bytes the set stands for in a blob of `sealed_len` bytes.
    pub(crate) fn bytes(&self, sealed_len: u64) -> u64 {
        self.0
            .iter()
            .map(|&(s, e)| (e * GROUP_BYTES).min(sealed_len) - (s * GROUP_BYTES).min(sealed_len))
            .sum()
    }

    /// The ranges of `0..total` outside the set.
    pub(crate) fn gaps(&self, total: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut at = 0;
        for &(s, e) in &self.0 {
            if s > at {
                gaps.push((at, s.min(total)));
            }
            at = at.max(e);
        }
        if at < total {
            gaps.push((at, total));
        }
        gaps.retain(|(s, e)| s < e);
        gaps
    }
}

/// Bytes per chunk group: the unit of verification and of resumption.
pub(crate) const GROUP_BYTES: u64 = 16 * 1024;
/// How much verified data one peer's stream may bring between two persisted progress marks.
pub(crate) const PERSIST_EVERY: u64 = 4 * 1024 * 1024;
/// The first line of a progress file.
pub(crate) const PROGRESS_MAGIC: &str = "photomesh partial v1";

pub(crate) fn progress_path(partial: &Path) -> PathBuf {
    partial.with_extension("progress")
}

/// The verified chunk groups persisted for a partial blob, and the blob's sealed length.
/// A progress file that does not parse, or claims ranges out of order, counts as nothing
/// verified; ranges past the partial file's length on disk are cut to it.
pub(crate) fn read_progress(partial: &Path) -> (GroupSet, Option<u64>) {
    let Ok(text) = fs::read_to_string(progress_path(partial)) else {
        return (GroupSet::default(), None);
    };
    let on_disk = fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    parse_progress(&text, on_disk)
}

/// [`read_progress`] of a progress file's `text`, with `on_disk` bytes of the partial file.
pub(crate) fn parse_progress(text: &str, on_disk: u64) -> (GroupSet, Option<u64>) {
    let nothing = (GroupSet::default(), None);
    let mut lines = text.lines();
    let Some(sealed_len) = lines
        .next()
        .and_then(|l| l.strip_prefix(PROGRESS_MAGIC))
        .and_then(|l| l.trim().parse::<u64>().ok())
    else {
        return nothing;
    };
    let mut set = GroupSet::default();
    let mut last_end = 0;
    for line in lines {
        let mut words = line.split_whitespace();
        let (Some(Ok(start)), Some(Ok(end)), None) = (
            words.next().map(str::parse::<u64>),
            words.next().map(str::parse::<u64>),
            words.next(),
        ) else {
            return nothing;
        };
        let aligned = start % GROUP_BYTES == 0 && (end % GROUP_BYTES == 0 || end == sealed_len);
        if !aligned || start >= end || start < last_end || end > sealed_len {
            return nothing;
        }
        last_end = end;
        // Never trust more than what is on disk.
        let end_group = if end <= on_disk {
            groups_of(end)
        } else {
            on_disk / GROUP_BYTES
        };
        set.insert(start / GROUP_BYTES, end_group);
    }
    (set, Some(sealed_len))
}

/// Replaces the progress file, atomically, with the verified groups `done`.
pub(crate) fn write_progress(partial: &Path, done: &GroupSet, sealed_len: u64) -> io::Result<()> {
    let path = progress_path(partial);
    let tmp = path.with_extension("progress-tmp");
    let mut text = format!("{PROGRESS_MAGIC} {sealed_len}\n");
    for &(s, e) in &done.0 {
        let (start, end) = (
            (s * GROUP_BYTES).min(sealed_len),
            (e * GROUP_BYTES).min(sealed_len),
        );
        text.push_str(&format!("{start} {end}\n"));
    }
    fs::write(&tmp, text)?;
    fs::rename(&tmp, &path)
}

pub(crate) fn remove_partial(partial: &Path) {
    let _ = fs::remove_file(partial);
    let _ = fs::remove_file(progress_path(partial));
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn group_sets_merge_split_and_list_their_gaps() {
        let mut set = GroupSet::default();
        set.insert(10, 20);
        set.insert(30, 40);
        set.insert(20, 25);
        assert_eq!(set.0, vec![(10, 25), (30, 40)]);
        assert_eq!(set.gaps(50), vec![(0, 10), (25, 30), (40, 50)]);
        set.remove(12, 35);
        assert_eq!(set.0, vec![(10, 12), (35, 40)]);
        assert_eq!(set.len(), 7);
        assert_eq!(set.first_missing(), 0);
        set.insert(0, 10);
        assert_eq!(set.first_missing(), 12);
        assert_eq!(
            set.bytes(39 * GROUP_BYTES + 5),
            12 * GROUP_BYTES + 4 * GROUP_BYTES + 5
        );
    }

    #[test]
    fn a_progress_file_is_trusted_no_further_than_the_data_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("partial");
        let len = 100 * GROUP_BYTES + 7;
        let mut done = GroupSet::default();
        done.insert(0, 10);
        done.insert(50, 101);
        write_progress(&target, &done, len).unwrap();
        // No partial file at all: nothing is verified.
        assert_eq!(read_progress(&target).0, GroupSet::default());
        // The partial file holds the whole blob: all of it is as written.
        fs::write(&target, vec![0u8; len as usize]).unwrap();
        assert_eq!(read_progress(&target), (done.clone(), Some(len)));
        // Truncated on disk to 60 groups and a bit: only what is there counts.
        fs::write(&target, vec![0u8; (60 * GROUP_BYTES + 100) as usize]).unwrap();
        assert_eq!(read_progress(&target).0.0, vec![(0, 10), (50, 60)]);
        fs::write(&target, vec![0u8; len as usize]).unwrap();
        // Damaged progress files count as nothing verified.
        let progress = progress_path(&target);
        let good = fs::read_to_string(&progress).unwrap();
        for bad in [
            String::new(),
            "garbage".to_string(),
            good.replace("photomesh partial v1", "photomesh partial v9"),
            format!("{PROGRESS_MAGIC} {len}\n0 100\n"),
            format!("{PROGRESS_MAGIC} {len}\n{} 0\n", 4 * GROUP_BYTES),
            format!(
                "{PROGRESS_MAGIC} {len}\n0 {}\n0 {}\n",
                2 * GROUP_BYTES,
                GROUP_BYTES
            ),
            format!("{PROGRESS_MAGIC} {len}\n0 {}\n", len + GROUP_BYTES),
            format!("{PROGRESS_MAGIC} {len}\n0 {} 5\n", GROUP_BYTES),
            good[..good.len() - 3].to_string() + "x\n",
        ] {
            fs::write(&progress, &bad).unwrap();
            assert_eq!(read_progress(&target).0, GroupSet::default(), "{bad:?}");
        }
    }
}
