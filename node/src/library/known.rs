//! The recorded originals of one folder, read from the index a page at a time in path order
//! beside a walk of the folder in the same order ([`crate::library::scan`]'s `Walk`), so a
//! scan of a million files keeps a page of rows in memory, not a map of them all.
//!
//! The walk visits paths in byte order (a directory sorts as its name with a `/` after
//! it), which is SQLite's order of the `sources` primary key `(folder, path)`: the two
//! lists merge like sorted files. A recorded path the walk passes without visiting is
//! missing from the folder.

use std::collections::VecDeque;

use crate::index::{Index, IndexError, SourceRow};

/// Rows read from the index at once.
const PAGE: usize = 1024;

/// A recorded original the walk passed without seeing.
#[derive(Debug)]
pub(crate) struct Passed {
    /// The recorded source.
    pub(crate) row: SourceRow,
    /// Released by `free-up-space`: not there on purpose.
    pub(crate) released: bool,
}

/// The recorded originals of a folder, in path order, consumed as the walk goes.
pub(crate) struct Known<'a> {
    index: &'a Index,
    folder: &'a str,
    page: VecDeque<(SourceRow, bool)>,
    /// The last path read from the index (`""` before the first page).
    last: String,
    exhausted: bool,
}

impl<'a> Known<'a> {
    /// The recorded originals of `folder`, none read yet.
    pub(crate) fn new(index: &'a Index, folder: &'a str) -> Self {
        Self {
            index,
            folder,
            page: VecDeque::new(),
            last: String::new(),
            exhausted: false,
        }
    }

    /// Moves on to `path`, the walk's next file: calls `passed` with every recorded source
    /// before it (the walk did not see them), and returns the recorded source at `path`, if
    /// any. Paths must come in increasing byte order.
    pub(crate) fn take(
        &mut self,
        path: &str,
        passed: &mut dyn FnMut(Passed) -> Result<(), IndexError>,
    ) -> Result<Option<SourceRow>, IndexError> {
        while let Some((row, _)) = self.front()? {
            match row.path.as_str().cmp(path) {
                std::cmp::Ordering::Less => {
                    let (row, released) = self.pop();
                    passed(Passed { row, released })?;
                }
                std::cmp::Ordering::Equal => return Ok(Some(self.pop().0)),
                std::cmp::Ordering::Greater => break,
            }
        }
        Ok(None)
    }

    /// Calls `passed` with every recorded source after the walk's last file.
    pub(crate) fn finish(
        mut self,
        passed: &mut dyn FnMut(Passed) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        while self.front()?.is_some() {
            let (row, released) = self.pop();
            passed(Passed { row, released })?;
        }
        Ok(())
    }

    fn front(&mut self) -> Result<Option<&(SourceRow, bool)>, IndexError> {
        if self.page.is_empty() && !self.exhausted {
            let rows = self.index.sources_after(self.folder, &self.last, PAGE)?;
            self.exhausted = rows.len() < PAGE;
            if let Some((row, _)) = rows.last() {
                self.last.clone_from(&row.path);
            }
            self.page.extend(rows);
        }
        Ok(self.page.front())
    }

    fn pop(&mut self) -> (SourceRow, bool) {
        // Only called after `front` returned a row.
        self.page.pop_front().unwrap_or_else(|| unreachable!())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use photomesh_protocol::record::RecordId;

    fn row(path: &str) -> SourceRow {
        SourceRow {
            path: path.into(),
            size: 1,
            mtime_s: 1,
            mtime_ns: 0,
            inode: 1,
            record_id: RecordId([7; 32]),
            gone: false,
        }
    }

    #[test]
    fn merges_a_sorted_walk_with_the_index_across_pages() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::create(&dir.path().join("index.sqlite")).unwrap();
        let folder = crate::index::Folder {
            label: "f".into(),
            path: "/f".into(),
        };
        index.add_folder(&folder, 1).unwrap();
        // More than a page, every third path not on disk.
        let recorded: Vec<String> = (0..PAGE * 2 + 10)
            .map(|i| format!("d/{i:05}.jpg"))
            .collect();
        index
            .transaction(|ix| {
                for (n, p) in recorded.iter().enumerate() {
                    let record_id = crate::index::tests::add_photo_at(ix, "f", p, n as u64);
                    ix.put_source(
                        "f",
                        &SourceRow {
                            record_id,
                            ..row(p)
                        },
                    )?;
                }
                Ok::<_, IndexError>(())
            })
            .unwrap();
        let mut known = Known::new(&index, "f");
        let (mut found, mut missing) = (0, Vec::new());
        let mut passed = |p: Passed| {
            missing.push(p.row.path);
            Ok(())
        };
        for (i, p) in recorded.iter().enumerate() {
            if i % 3 != 0 {
                found += usize::from(known.take(p, &mut passed).unwrap().is_some());
            }
        }
        // A new file past the last recorded one finds nothing.
        assert!(known.take("e.jpg", &mut passed).unwrap().is_none());
        known.finish(&mut passed).unwrap();
        let expected: Vec<String> = recorded.iter().step_by(3).cloned().collect();
        assert_eq!(missing, expected);
        assert_eq!(found, recorded.len() - expected.len());
    }
}
