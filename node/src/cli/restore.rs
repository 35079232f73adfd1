//! `photomesh restore` and `photomesh verify`.

use std::path::Path;

use anyhow::{Result, bail};
use photomesh::home::Home;
use photomesh::home::config::Config;
use photomesh::library::progress::Reporter;
use photomesh::library::restore::{self, Copy, Plan, RestoreReport, Selection};
use photomesh::replicate::restore_fetch::{Mesh, MeshEvent};

use super::format::{bytes, count};

/// How long a restore with no node running looks on the LAN for the mesh's devices.
const BROWSE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The photos `restore`'s flags select.
pub fn selection(
    folder: Option<String>,
    since: Option<String>,
    until: Option<String>,
    paths: Vec<String>,
) -> Result<Selection> {
    let date = |flag: &str, text: Option<String>| -> Result<Option<i64>> {
        let Some(text) = text else { return Ok(None) };
        let full = if text.len() == 10 {
            format!("{text} 00:00:00")
        } else {
            text.clone()
        };
        match photomesh::library::media::parse_exif_datetime(&full.replace('-', ":")) {
            Some(t) => Ok(Some(t)),
            None => bail!(
                "{flag} {text:?} is not a date: write YYYY-MM-DD or \"YYYY-MM-DD HH:MM:SS\" \
                 (the camera's local time)"
            ),
        }
    };
    Ok(Selection {
        folder,
        since: date("--since", since)?,
        until: date("--until", until)?,
        paths,
        ..Selection::default()
    })
}

/// `photomesh restore`: catches up with the mesh, writes every selected photo from this
/// device's copies, and fetches from the members what it lacks or finds damaged.
pub fn restore(
    home: &Home,
    home_path: &Path,
    config: &Config,
    to: &Path,
    selection: &Selection,
    dry_run: bool,
    json: bool,
) -> Result<bool> {
    if home.keys.current().is_none() {
        bail!(
            "this device is a vault: it holds the library sealed and no key to open it; \
             restore on a full device (it fetches from this one), or recover the key with \
             `photomesh init --recover`"
        );
    }
    // With no node running, devices not seen at a known address are looked for on the LAN.
    let found = if Mesh::node_runs(home_path) || !config.discovery.browse {
        Default::default()
    } else {
        photomesh::daemon::discovery::browse_members(home, BROWSE_WAIT)
    };
    let mut mesh = Mesh::connect(home_path, &config.peers.resolve(), &found, &mut |e| say(&e))?;
    let me = home.device.device_id();
    let members = photomesh::mesh::trust_set(home)?
        .devices()
        .filter(|m| m.device != me)
        .count();
    let plan = restore::plan(home, to, selection)?;
    if plan.photos.is_empty() && plan.refused.is_empty() {
        if members > 0 && mesh.reached.is_empty() {
            bail!(
                "no photo to restore here, and no member of the mesh could be reached to catch \
                 up with its records ({}); start a member's node, or give its address with \
                 `photomesh peer add HOST:PORT`",
                mesh.unreachable.join("; ")
            );
        }
        if home.index.photo_record_count()? == 0 {
            bail!("the library holds no photo yet: nothing to restore");
        }
    }
    if dry_run {
        return dry(home, &plan, json);
    }
    let missing = plan.missing();
    if !missing.is_empty() {
        say!(
            "Fetching {} this device does not hold from the mesh{}",
            count(missing.len() as u64, "photo"),
            if mesh.through_node() {
                " (through the running node)"
            } else {
                ""
            }
        );
        mesh.fetch(&missing, &mut |e| say(&e))?;
    }
    let mut report = restore::run(home, &plan, None, &mut Reporter::for_stderr())?;
    let needs = std::mem::take(&mut report.needs_copy);
    if !needs.is_empty() {
        say!(
            "This device's copy of {} is missing, changed or damaged: fetching from the mesh",
            count(needs.len() as u64, "photo")
        );
        let mut blobs: Vec<_> = needs
            .iter()
            .map(|i| plan.photos[*i].photo.blob_id)
            .collect();
        blobs.sort();
        blobs.dedup();
        mesh.fetch(&blobs, &mut |e| say(&e))?;
        let second = restore::run(home, &plan, Some(&needs), &mut Reporter::for_stderr())?;
        merge(&mut report, second, &plan, &mesh);
    }
    drop(mesh);
    if json {
        out_block!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!(
            "Restored {} ({}) to {}; {} already there{}.",
            count(report.restored, "photo"),
            bytes(report.bytes),
            to.display(),
            report.already_present,
            if report.fetched > 0 {
                format!(
                    "; {} of them from copies fetched from the mesh",
                    report.fetched
                )
            } else {
                String::new()
            }
        )?;
        for n in &report.not_restored {
            out!("  not restored: {}: {}", n.path, n.reason)?;
        }
    }
    Ok(report.not_restored.is_empty())
}

/// Adds the second pass (over the photos whose copy here failed) to the first.
fn merge(report: &mut RestoreReport, second: RestoreReport, plan: &Plan, mesh: &Mesh) {
    report.restored += second.restored;
    report.already_present += second.already_present;
    report.bytes += second.bytes;
    report.fetched += second.fetched;
    report.not_restored.extend(second.not_restored);
    for i in second.needs_copy {
        let planned = &plan.photos[i];
        let mut reason = restore::no_copy(planned.source.as_deref());
        if !mesh.unreachable.is_empty() {
            reason.push_str(&format!(" (unreachable: {})", mesh.unreachable.join("; ")));
        }
        report.not_restored.push(restore::NotRestored {
            path: planned.target.display().to_string(),
            reason,
        });
    }
}

/// `restore --dry-run`: each photo, where it would go and where its bytes would come from.
fn dry(home: &Home, plan: &Plan, json: bool) -> Result<bool> {
    let names = device_names(home)?;
    let mut rows = Vec::new();
    for p in &plan.photos {
        let from = match &p.copy {
            Copy::Stored => "this device's blob store".to_owned(),
            Copy::Original(path) => format!("this device's original {}", path.display()),
            Copy::Missing => {
                let holders: Vec<String> = home
                    .index
                    .blob_holders(&p.photo.blob_id)?
                    .iter()
                    .map(|d| names.get(d).cloned().unwrap_or_else(|| d.short()))
                    .collect();
                if holders.is_empty() {
                    "the mesh (no member is known to hold it yet)".to_owned()
                } else {
                    format!("the mesh: {}", holders.join(", "))
                }
            }
        };
        rows.push(serde_json::json!({
            "path": p.target.display().to_string(),
            "size": p.photo.size,
            "from": from,
        }));
    }
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "would_restore": rows,
                "refused": plan.refused,
            }))?
        )?;
    } else {
        for r in &rows {
            out!(
                "would write {} ({}) from {}",
                r["path"].as_str().unwrap_or_default(),
                bytes(r["size"].as_u64().unwrap_or_default()),
                r["from"].as_str().unwrap_or_default()
            )?;
        }
        for n in &plan.refused {
            out!("  would not restore: {}: {}", n.path, n.reason)?;
        }
        out!(
            "Dry run: {} ({}) would be restored; nothing was written.",
            count(plan.photos.len() as u64, "photo"),
            bytes(plan.photos.iter().map(|p| p.photo.size).sum())
        )?;
    }
    Ok(plan.refused.is_empty())
}

fn device_names(
    home: &Home,
) -> Result<std::collections::HashMap<photomesh_protocol::identity::DeviceId, String>> {
    Ok(photomesh::mesh::trust_set(home)?
        .members()
        .map(|m| (m.device, m.name.clone()))
        .collect())
}

/// What the mesh session says, on stderr.
fn say(event: &MeshEvent<'_>) {
    match event {
        MeshEvent::Reached { name, new_records } if *new_records > 0 => {
            say!("Caught up with {name}: {new_records} new records")
        }
        MeshEvent::Reached { .. } => {}
        MeshEvent::Unreachable(why) => say!("  could not fetch from {why}"),
        MeshEvent::Progress { done, of } if done == of || done % 64 == 0 => {
            say!("Fetched {done} of {of}")
        }
        MeshEvent::Progress { .. } => {}
    }
}

/// `photomesh verify`.
pub fn verify(home: &Home, json: bool) -> Result<bool> {
    let report = photomesh::library::verify::verify(home, &mut Reporter::for_stderr())?;
    // What it quarantined is fetched again at once by a node running on this home.
    if !report.is_clean()
        && let Err(e) = photomesh::net::control::ask(&home.path, "announce")
    {
        tracing::debug!("could not tell the running node: {e}");
    }
    if json {
        out_block!("{}", serde_json::to_string_pretty(&report)?)?;
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
