//! `photomesh delete` and `photomesh trash list|restore|empty`.

use std::path::Path;

use anyhow::Result;
use photomesh::home::Home;
use photomesh::home::config::{Config, format_duration, parse_duration};
use photomesh::library::restore::Selection;
use photomesh::library::trash::{self, Done, TrashList};
use photomesh_protocol::record::RecordId;

use super::args::TrashCommand;
use super::format::{bytes, count, utc};

/// Splits the photos named on the command line into record IDs (64 hex digits) and paths.
fn named(photos: Vec<String>) -> (Vec<RecordId>, Vec<String>) {
    let mut ids = Vec::new();
    let mut paths = Vec::new();
    for p in photos {
        match hex::decode(&p)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            Some(id) => ids.push(RecordId(id)),
            None => paths.push(p),
        }
    }
    (ids, paths)
}

/// Tells a node running on this home, so its peers hear at once.
fn announce(home_path: &Path) {
    if let Err(e) = photomesh::net::control::ask(home_path, "announce") {
        tracing::debug!("could not tell the running node: {e}");
    }
}

/// The arguments of `photomesh delete`.
pub struct DeleteArgs {
    pub photos: Vec<String>,
    pub folder: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub originals: bool,
    pub dry_run: bool,
    pub json: bool,
}

/// `photomesh delete`.
pub fn delete(home: &Home, home_path: &Path, config: &Config, a: DeleteArgs) -> Result<bool> {
    let (ids, paths) = named(a.photos);
    let Selection {
        folder,
        since,
        until,
        ..
    } = super::restore::selection(a.folder, a.since, a.until, Vec::new())?;
    let selection = Selection {
        folder,
        since,
        until,
        paths,
        ..Selection::default()
    };
    let retention = config.trash.retention;
    let done = trash::delete(home, &selection, &ids, a.originals, a.dry_run, retention)?;
    if !a.dry_run {
        announce(home_path);
    }
    if a.json {
        out_block!("{}", serde_json::to_string_pretty(&done)?)?;
        return Ok(done.originals_kept.is_empty() || !a.originals);
    }
    print_entries(&done)?;
    let kept = format_duration(retention);
    if done.dry_run {
        out!(
            "Would move {} ({}, {}) to the trash; nothing was changed.",
            count(done.photos.len() as u64, "photo"),
            count(done.versions, "version"),
            bytes(done.bytes)
        )?;
        return Ok(true);
    }
    out!(
        "Moved {} ({}, {}) to the mesh's trash: every device keeps {} for {kept}, then \
         purges {}. `photomesh trash restore` brings {} back until then.",
        count(done.photos.len() as u64, "photo"),
        count(done.versions, "version"),
        bytes(done.bytes),
        if done.photos.len() == 1 { "it" } else { "them" },
        if done.photos.len() == 1 { "it" } else { "them" },
        if done.photos.len() == 1 { "it" } else { "them" },
    )?;
    if a.originals {
        out!(
            "Removed {} from this device's folders.",
            count(done.originals_removed.len() as u64, "original")
        )?;
        for (file, why) in &done.originals_kept {
            out!("  kept {file}: {why}")?;
        }
        Ok(done.originals_kept.is_empty())
    } else {
        out!("Your files in the folders were not touched (`--originals` removes this device's).")?;
        Ok(true)
    }
}

/// `photomesh trash …`.
pub fn trash(home: &Home, home_path: &Path, config: &Config, cmd: TrashCommand) -> Result<bool> {
    let retention = config.trash.retention;
    match cmd {
        TrashCommand::List { json } => {
            let list = trash::list(home, retention)?;
            if json {
                out_block!("{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                print_list(&list, home.keys.current().is_none())?;
            }
            Ok(true)
        }
        TrashCommand::Restore {
            photos,
            all,
            dry_run,
            json,
        } => {
            let (ids, paths) = named(photos);
            let selection = Selection {
                paths,
                ..Selection::default()
            };
            let done = trash::restore(home, &selection, &ids, all, dry_run)?;
            if !dry_run {
                announce(home_path);
            }
            if json {
                out_block!("{}", serde_json::to_string_pretty(&done)?)?;
                return Ok(true);
            }
            print_entries(&done)?;
            out!(
                "{} {} out of the trash, on every device.",
                if dry_run { "Would take" } else { "Took" },
                count(done.photos.len() as u64, "photo"),
            )?;
            Ok(true)
        }
        TrashCommand::Empty {
            older_than,
            dry_run,
            json,
        } => {
            let older_than = older_than
                .map(|t| parse_duration(&t).map_err(|e| anyhow::anyhow!("--older-than {t:?}: {e}")))
                .transpose()?;
            let done = trash::empty(home, older_than, dry_run)?;
            if !dry_run {
                announce(home_path);
            }
            if json {
                out_block!("{}", serde_json::to_string_pretty(&done)?)?;
                return Ok(true);
            }
            if done.photos.is_empty() {
                out!("Nothing in the trash to purge.")?;
                return Ok(true);
            }
            print_entries(&done)?;
            out!(
                "{} {} ({}) for good, on every device.{}",
                if dry_run { "Would purge" } else { "Purged" },
                count(done.photos.len() as u64, "photo"),
                bytes(done.bytes),
                if dry_run {
                    " Nothing was changed."
                } else {
                    " Their originals in the folders are not touched."
                }
            )?;
            Ok(true)
        }
    }
}

fn print_entries(done: &Done) -> std::io::Result<()> {
    for p in done.photos.iter().take(20) {
        let versions = if p.versions > 1 {
            format!(" ({} versions)", p.versions)
        } else {
            String::new()
        };
        out!("  {}/{}{versions}", p.folder, p.path)?;
    }
    if done.photos.len() > 20 {
        out!(
            "  … and {} more (--json lists them all)",
            done.photos.len() - 20
        )?;
    }
    Ok(())
}

fn print_list(list: &TrashList, vault: bool) -> std::io::Result<()> {
    if list.versions == 0 {
        return out!("The trash is empty.");
    }
    if vault {
        out!(
            "{} in the trash (a vault reads no photo; list them on a full device).",
            count(list.versions, "photo version")
        )?;
    } else {
        for p in &list.photos {
            out!(
                "  {:>10}  deleted {}  purged after {}  {}/{}",
                bytes(p.bytes),
                utc(p.since_ms as i64),
                utc(p.purge_at_ms as i64),
                p.folder,
                p.path
            )?;
        }
        out!(
            "{} ({}) in the trash.",
            count(list.photos.len() as u64, "photo"),
            bytes(list.bytes)
        )?;
    }
    if let Some(next) = list.next_purge_ms {
        out!("Next purge: {}.", utc(next as i64))?;
    }
    Ok(())
}
