//! `photomesh free-up-space`: removes the originals of photos safe on other devices.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use photomesh::home::Home;
use photomesh::home::config::{Config, format_duration};
use photomesh::library::free_up::{self, KeptReason, Report, Settings};
use photomesh::library::progress::Reporter;

use super::format::{bytes, count};

/// Lines of a list shown before "… and N more".
const SHOWN: usize = 20;

/// The arguments of `photomesh free-up-space`.
pub struct FreeUpArgs {
    pub folder: Option<String>,
    pub older_than: Duration,
    pub dry_run: bool,
    pub json: bool,
}

/// `photomesh free-up-space`. Exit 1 when an original could not be checked or removed, or
/// was found not as recorded.
pub fn free_up_space(
    home: &Home,
    home_path: &Path,
    config: &Config,
    args: FreeUpArgs,
) -> Result<bool> {
    let settings = Settings {
        folder: args.folder,
        older_than: args.older_than,
        copies: u64::from(config.storage.free_up_copies),
        verified_within: config.scrub.period,
    };
    let report = if args.dry_run {
        free_up::dry_run(home, &settings)?
    } else {
        free_up::free_up(home, &settings, &mut Reporter::for_stderr())?
    };
    // A node running on this home tells its peers at once that it no longer holds them.
    if !report.dry_run
        && !report.removed.is_empty()
        && let Err(e) = photomesh::net::control::ask(home_path, "announce")
    {
        tracing::debug!("could not tell the running node: {e}");
    }
    if args.json {
        out_block!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_report(&report)?;
    }
    Ok(!report.has_problems())
}

fn print_report(r: &Report) -> std::io::Result<()> {
    let n = r.removed.len() as u64;
    let safe = match r.copies_needed {
        1 => "whose photos have a verified copy on another device".to_owned(),
        n => format!("whose photos have at least {n} verified copies on other devices"),
    };
    if r.dry_run {
        out!(
            "Would free {}: {} {safe}, recorded at least {} ago. Nothing was changed.",
            bytes(r.bytes_freed),
            count(n, "original"),
            format_duration(Duration::from_secs(r.older_than_s))
        )?;
        for p in r.removed.iter().take(SHOWN) {
            out!(
                "  {}/{}  {}  (copies on {})",
                p.folder,
                p.path,
                bytes(p.size),
                p.copies_on.join(", ")
            )?;
        }
        more(r.removed.len(), SHOWN)?;
    } else if n > 0 {
        out!(
            "Freed {}: removed {} {safe}. They stay in the library on every device.",
            bytes(r.bytes_freed),
            count(n, "original")
        )?;
    } else {
        out!(
            "Freed nothing: no original here was recorded at least {} ago and has a photo \
             with at least {} verified copies on other devices.",
            format_duration(Duration::from_secs(r.older_than_s)),
            r.copies_needed
        )?;
    }
    if !r.kept.is_empty() {
        let why: Vec<String> = [
            (
                KeptReason::BelowCopies,
                "with too few verified copies elsewhere",
            ),
            (
                KeptReason::TooRecent,
                "recorded too recently (--older-than)",
            ),
            (KeptReason::Changed, "not as recorded"),
            (KeptReason::Failed, "that could not be read or removed"),
        ]
        .into_iter()
        .filter(|(reason, _)| r.kept_for(*reason) > 0)
        .map(|(reason, what)| format!("{} {what}", r.kept_for(reason)))
        .collect();
        out!(
            "Kept {}: {}.",
            count(r.kept.len() as u64, "original"),
            why.join(", ")
        )?;
        // Problems first, every one; then the photos short of copies.
        let mut shown = 0;
        for reason in [
            KeptReason::Failed,
            KeptReason::Changed,
            KeptReason::BelowCopies,
        ] {
            for k in r.kept.iter().filter(|k| k.reason == reason) {
                let problem = matches!(reason, KeptReason::Failed | KeptReason::Changed);
                if !problem && shown >= SHOWN {
                    break;
                }
                shown += 1;
                out!("  {}/{}: {}", k.folder, k.path, k.detail)?;
            }
        }
        more(r.kept.len() - r.kept_for(KeptReason::TooRecent), shown)?;
    }
    if !r.restore.is_empty() {
        let to = if r.dry_run { "Once freed, to" } else { "To" };
        out!("{to} get them back into their folders (fetched from the other devices):")?;
        for command in &r.restore {
            out!("  {command}")?;
        }
        out!("  (add --path LABEL/PATH for one photo)")?;
    }
    Ok(())
}

/// "… and N more" when fewer than `listed` lines were shown.
fn more(listed: usize, shown: usize) -> std::io::Result<()> {
    if listed > shown {
        out!("  … and {} more (`--json` lists them all)", listed - shown)?;
    }
    Ok(())
}
