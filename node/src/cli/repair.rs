//! `photomesh repair-index`.

use std::path::Path;

use anyhow::Result;
use photomesh::library::progress::Reporter;
use photomesh::library::repair::{RepairReport, Repaired};

use super::format::count;

/// `photomesh repair-index`: 0 when nothing was lost, 1 when something was (or a blob failed
/// its check), 2 when it could not run.
pub fn repair_index(home_path: &Path, name: Option<&str>, json: bool) -> Result<bool> {
    let repaired =
        photomesh::library::repair::repair_index(home_path, name, &mut Reporter::for_stderr())?;
    match repaired {
        Repaired::Sound(index) => {
            if json {
                let answer = serde_json::json!({ "sound": true, "index": index });
                out_block!("{}", serde_json::to_string_pretty(&answer)?)?;
            } else {
                out!(
                    "The index {} passed SQLite's integrity check: nothing to repair, and \
                     nothing was changed.",
                    index.display()
                )?;
            }
            Ok(true)
        }
        Repaired::Rebuilt(report) => {
            if json {
                out_block!("{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                print_report(&report)?;
            }
            Ok(report.is_complete())
        }
    }
}

fn print_report(r: &RepairReport) -> std::io::Result<()> {
    match &r.moved_to {
        Some(old) => out!(
            "Moved the damaged index aside to {} (with its WAL), kept for inspection; built a \
             new index at {}.",
            old.display(),
            r.index.display()
        )?,
        None => out!(
            "There was no index; built a new one at {}.",
            r.index.display()
        )?,
    }
    if let Some(why) = &r.unreadable {
        out!("  nothing could be read from the old index: {why}")?;
    } else {
        let lost = match (r.records_lost, r.records_cut_short) {
            (0, false) => "none lost".to_owned(),
            (n, false) => format!("{n} lost"),
            (n, true) => format!("{n} and more lost (the rest of the table was unreadable)"),
        };
        out!(
            "  records   {} recovered ({}), {lost}",
            r.records_recovered,
            count(r.photos_recovered, "photo record")
        )?;
        if r.records_held_back > 0 {
            out!(
                "            {} more readable but not taken: the mesh sends them once this \
                 device has joined it again",
                r.records_held_back
            )?;
        }
        out!(
            "  settings  {} recovered{}",
            r.settings_recovered,
            if r.settings_lost { ", some lost" } else { "" }
        )?;
        out!(
            "  peers     {} configured addresses recovered",
            r.peers_recovered
        )?;
    }
    for f in &r.folders {
        out!("  folder    {} ({}) recovered", f.label, f.path.display())?;
    }
    if r.folders_lost || r.unreadable.is_some() {
        out!("  folders   could not all be recovered: add each again with")?;
        out!("              photomesh folder add PATH --label LABEL")?;
        if !r.folders_to_add.is_empty() {
            out!(
                "            this device recorded photos from: {}",
                r.folders_to_add.join(", ")
            )?;
        }
    }
    out!(
        "  blobs     {} verified and registered, {} failed their check",
        r.blobs_registered,
        r.blob_findings.len()
    )?;
    for f in &r.blob_findings {
        out!("    {}: {}", f.item, f.detail)?;
    }
    if !r.name_recovered {
        out!(
            "  name      {:?} (not recovered; `repair-index --name NAME` names it)",
            r.name
        )?;
    }
    if r.new_mesh {
        out!(
            "This device's membership of its mesh could not be recovered: it is in a mesh of \
             its own now. Next, before anything else: run `photomesh pair` on a device of the \
             mesh and `photomesh join CODE` here; then add the folders again and run \
             `photomesh scan`."
        )?;
    } else {
        out!(
            "Next: `photomesh run` catches up with the mesh (the other devices send the records \
             missing here), and `photomesh scan` (on a device with folders) links its files to \
             their records again, recording nothing twice."
        )?;
        if r.records_lost > 0 || r.records_cut_short {
            out!(
                "A file scanned before its lost record is back is recorded again: a second \
                 record of the same photo (no second copy of it is stored)."
            )?;
        }
    }
    Ok(())
}
