//! `photomesh restore` and `photomesh verify`.

use std::path::Path;

use anyhow::Result;
use photomesh::home::Home;
use photomesh::library::progress::Reporter;
use photomesh::replicate::restore_fetch::{self, RestoreFetchEvent};

use super::format::{bytes, count};

/// `photomesh restore`.
pub fn restore(home: Home, to: &Path, folder: Option<&str>, json: bool) -> Result<bool> {
    let home = fetch_for_restore(home, folder)?;
    let report =
        photomesh::library::restore::restore(&home, to, folder, &mut Reporter::for_stderr())?;
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!(
            "Restored {} ({}) to {}; {} already there.",
            count(report.restored, "photo"),
            bytes(report.bytes),
            to.display(),
            report.already_present
        )?;
        for n in &report.not_restored {
            out!("  not restored: {}: {}", n.path, n.reason)?;
        }
    }
    Ok(report.not_restored.is_empty())
}

/// `photomesh verify`.
pub fn verify(home: &Home, json: bool) -> Result<bool> {
    let report = photomesh::library::verify::verify(home, &mut Reporter::for_stderr())?;
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!(
            "Checked {} and {}: {}",
            count(report.sources_checked, "original"),
            count(report.blobs_checked, "stored blob"),
            if report.is_clean() {
                "all good.".to_owned()
            } else {
                format!("{}.", count(report.findings.len() as u64, "problem"))
            }
        )?;
        for f in &report.findings {
            out!("  {:?}: {}: {}", f.kind, f.item, f.detail)?;
        }
    }
    Ok(report.is_clean())
}

/// Fetches what the restore needs from the mesh, with progress on stderr.
fn fetch_for_restore(home: Home, folder: Option<&str>) -> Result<Home> {
    Ok(restore_fetch::fetch_for_restore(
        home,
        folder,
        &mut |event| match event {
            RestoreFetchEvent::Progress {
                done,
                of,
                through_node,
            } => eprintln!(
                "Fetching from the mesh{} the photos this device does not hold: {done} of {of}",
                if through_node {
                    " (through the running node)"
                } else {
                    ""
                }
            ),
            RestoreFetchEvent::Unreachable(problem) => {
                eprintln!("  could not fetch from {problem}")
            }
        },
    )?)
}
