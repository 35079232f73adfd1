//! `photomesh scan`, and how a scan summary is printed.

use std::path::Path;

use anyhow::Result;
use photomesh::home::Home;
use photomesh::home::config::Config;
use photomesh::index::ScanSummary;
use photomesh::library::progress::Reporter;

use super::format::{bytes, count};

/// `photomesh scan`.
pub fn scan(home: &Home, home_path: &Path, config: &Config, json: bool) -> Result<bool> {
    // A scan writes into the index: not into a damaged one. The check reads every page of
    // the index (about 0.3 s per 300 MB, some 400,000 photos, when cached), little beside
    // the scan's own walk.
    if let Some(detail) = home.index.integrity_problem()? {
        return Err(photomesh::index::IndexError::Corrupt {
            path: home.index.path().to_owned(),
            detail,
        }
        .into());
    }
    let summary = photomesh::library::scan::scan_selected(
        home,
        &config.folders.selection(),
        &mut Reporter::for_stderr(),
    )?;
    // A node running on this home tells its peers at once (nothing if none runs).
    if let Err(e) = photomesh::net::control::ask(home_path, "announce") {
        tracing::debug!("could not tell the running node: {e}");
    }
    if json {
        out_block!("{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        print_scan(&summary)?;
    }
    Ok(summary.problems.is_empty())
}

pub fn print_scan(s: &ScanSummary) -> std::io::Result<()> {
    out!(
        "Scanned {}: {} new, {} changed, {} unchanged, {} missing, {} unreadable ({} read).",
        count(s.files_seen, "file"),
        s.new_files,
        s.changed_files,
        s.unchanged_files,
        s.missing_files,
        s.problems.len(),
        bytes(s.bytes_read)
    )?;
    if !s.kinds.is_empty() {
        let kinds: Vec<String> = s.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out!("  by kind: {}", kinds.join(", "))?;
    }
    let left = &s.left_out;
    if left.total() > 0 {
        out!(
            "  not backed up: {} ignored by pattern, {}, {} (FIFOs, sockets, devices)",
            left.ignored,
            count(left.symlinks, "symbolic link"),
            count(left.not_regular, "other non-regular file")
        )?;
    }
    for p in &s.problems {
        out!("  {}: {}", p.path, p.reason)?;
    }
    Ok(())
}
