//! `photomesh scan`, and how a scan summary is printed.

use std::path::Path;

use anyhow::Result;
use photomesh::home::Home;
use photomesh::index::ScanSummary;
use photomesh::library::progress::Reporter;

use super::format::bytes;

/// `photomesh scan`.
pub fn scan(home: &Home, home_path: &Path, json: bool) -> Result<bool> {
    let summary = photomesh::library::scan::scan(home, &mut Reporter::for_stderr())?;
    // A node running on this home tells its peers at once (nothing if none runs).
    if let Err(e) = photomesh::net::control::ask(home_path, "announce") {
        tracing::debug!("could not tell the running node: {e}");
    }
    if json {
        out!("{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        print_scan(&summary)?;
    }
    Ok(summary.problems.is_empty())
}

pub fn print_scan(s: &ScanSummary) -> std::io::Result<()> {
    out!(
        "Scanned {} photos and videos: {} new, {} changed, {} unchanged, {} missing, {} unreadable ({} read).",
        s.files_seen,
        s.new_files,
        s.changed_files,
        s.unchanged_files,
        s.missing_files,
        s.problems.len(),
        bytes(s.bytes_read)
    )?;
    for p in &s.problems {
        out!("  {}: {}", p.path, p.reason)?;
    }
    Ok(())
}
