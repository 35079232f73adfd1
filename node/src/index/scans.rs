//! The history of scans: each scan's summary and the files it could not read.

use rusqlite::{OptionalExtension, params};

use super::{Index, IndexError};

/// What one scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanSummary {
    /// When the scan started (ms since the epoch).
    pub started_at_ms: u64,
    /// When it finished, if it did.
    pub finished_at_ms: Option<u64>,
    /// Photo and video files seen.
    pub files_seen: u64,
    /// Files recorded for the first time.
    pub new_files: u64,
    /// Files whose content changed and got a new record.
    pub changed_files: u64,
    /// Files skipped because size, mtime and inode were unchanged.
    pub unchanged_files: u64,
    /// Previously recorded files no longer found (and not found moved).
    pub missing_files: u64,
    /// New files that are recorded photos moved from a place where they are gone.
    pub moved_files: u64,
    /// Bytes read to hash and seal.
    pub bytes_read: u64,
    /// Files that could not be read, with the reason.
    pub problems: Vec<ScanProblem>,
    /// Files seen, by kind (`jpeg`, `raf`, `xmp`, `other`, …): what their names say.
    pub kinds: std::collections::BTreeMap<String, u64>,
    /// What the folders hold that is not backed up, by reason (unreadable files are the
    /// `problems`).
    pub left_out: LeftOut,
}

/// What a scan did not back up, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeftOut {
    /// Files and folders matched by an ignore pattern (an ignored folder counts once).
    pub ignored: u64,
    /// Symbolic links (never followed).
    pub symlinks: u64,
    /// FIFOs, sockets and devices: not regular files.
    pub not_regular: u64,
}

impl LeftOut {
    /// Everything left out.
    pub fn total(&self) -> u64 {
        self.ignored + self.symlinks + self.not_regular
    }
}

/// A file a scan could not record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScanProblem {
    /// The file's full path.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// The parts of a summary kept as JSON in `scans.details`.
#[derive(serde::Deserialize)]
struct Details {
    kinds: std::collections::BTreeMap<String, u64>,
    left_out: LeftOut,
    #[serde(default)]
    moved_files: u64,
}

impl Index {
    /// Starts a scan's history entry.
    pub fn begin_scan(&self, now_ms: u64) -> Result<i64, IndexError> {
        self.conn.execute(
            "INSERT INTO scans (started_at_ms) VALUES (?1)",
            [now_ms as i64],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records a problem a scan met.
    pub fn add_scan_problem(&self, scan_id: i64, problem: &ScanProblem) -> Result<(), IndexError> {
        self.conn.execute(
            "INSERT INTO scan_problems (scan_id, path, reason) VALUES (?1, ?2, ?3)",
            params![scan_id, problem.path, problem.reason],
        )?;
        Ok(())
    }

    /// Writes a scan's counters (called as it goes and when it ends).
    pub fn update_scan(&self, scan_id: i64, s: &ScanSummary) -> Result<(), IndexError> {
        self.conn.execute(
            "UPDATE scans SET finished_at_ms = ?2, files_seen = ?3, new_files = ?4,
               changed_files = ?5, unchanged_files = ?6, missing_files = ?7, bytes_read = ?8,
               details = ?9
             WHERE scan_id = ?1",
            params![
                scan_id,
                s.finished_at_ms.map(|t| t as i64),
                s.files_seen as i64,
                s.new_files as i64,
                s.changed_files as i64,
                s.unchanged_files as i64,
                s.missing_files as i64,
                s.bytes_read as i64,
                serde_json::json!({
                    "kinds": s.kinds,
                    "left_out": s.left_out,
                    "moved_files": s.moved_files,
                })
                .to_string(),
            ],
        )?;
        Ok(())
    }

    /// The most recent scan, with its problems.
    pub fn last_scan(&self) -> Result<Option<ScanSummary>, IndexError> {
        let row = self
            .conn
            .query_row(
                "SELECT scan_id, started_at_ms, finished_at_ms, files_seen, new_files,
                        changed_files, unchanged_files, missing_files, bytes_read, details
                 FROM scans ORDER BY scan_id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        ScanSummary {
                            started_at_ms: r.get::<_, i64>(1)? as u64,
                            finished_at_ms: r.get::<_, Option<i64>>(2)?.map(|t| t as u64),
                            files_seen: r.get::<_, i64>(3)? as u64,
                            new_files: r.get::<_, i64>(4)? as u64,
                            changed_files: r.get::<_, i64>(5)? as u64,
                            unchanged_files: r.get::<_, i64>(6)? as u64,
                            missing_files: r.get::<_, i64>(7)? as u64,
                            moved_files: 0,
                            bytes_read: r.get::<_, i64>(8)? as u64,
                            problems: Vec::new(),
                            kinds: Default::default(),
                            left_out: LeftOut::default(),
                        },
                        r.get::<_, Option<String>>(9)?,
                    ))
                },
            )
            .optional()?;
        let Some((scan_id, mut summary, details)) = row else {
            return Ok(None);
        };
        // Written by this code only; a scan from before it was kept has none.
        if let Some(details) = details.and_then(|d| serde_json::from_str::<Details>(&d).ok()) {
            summary.kinds = details.kinds;
            summary.left_out = details.left_out;
            summary.moved_files = details.moved_files;
        }
        let mut stmt = self
            .conn
            .prepare("SELECT path, reason FROM scan_problems WHERE scan_id = ?1 ORDER BY rowid")?;
        summary.problems = stmt
            .query_map([scan_id], |r| {
                Ok(ScanProblem {
                    path: r.get(0)?,
                    reason: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some(summary))
    }
}
