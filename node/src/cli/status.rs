//! `photomesh status` and `photomesh photos`.

use std::path::Path;

use anyhow::Result;
use photomesh::home::Home;
use photomesh::home::config::Config;
use photomesh::index::FolderStats;
use photomesh::library::status::{PeerStatus, Safety, Status};

use super::format::{bytes, count, utc};
use super::scan::print_scan;

/// `photomesh status`.
pub fn status(home: &Home, home_path: &Path, config: &Config, json: bool) -> Result<bool> {
    let targets = targets(config);
    let mut status = photomesh::library::status::status_with(home, targets)?;
    photomesh::library::status::apply_live(&mut status, super::live_status(home_path));
    if json {
        out_block!("{}", serde_json::to_string_pretty(&status)?)?;
    } else {
        print_status(&status)?;
    }
    Ok(true)
}

/// What `status` (and the page) measure against, as the configuration says.
pub fn targets(config: &Config) -> photomesh::library::status::Targets {
    photomesh::library::status::Targets {
        goal: config
            .status
            .replica_goal
            .map_or(photomesh::library::status::DEFAULT_REPLICA_GOAL, u64::from),
        verified_within: config.scrub.period,
        quota: config.storage.max_bytes,
        retention: config.trash.retention,
        purge_hold: config.trash.purge_hold,
        keep: config.versions.keep,
        free_up_copies: u64::from(config.storage.free_up_copies),
    }
}

/// `photomesh status --photo LABEL/PATH`: where the photo's copies are and when each was last
/// verified. Exit 2 if no such photo is recorded.
pub fn photo(home: &Home, config: &Config, photo: &str, json: bool) -> Result<bool> {
    let (folder, path) = photo.split_once('/').ok_or_else(|| {
        anyhow::anyhow!(
            "{photo:?} is not LABEL/PATH: give the folder's label, a slash and the photo's \
             path in it, as `photomesh photos` prints them"
        )
    })?;
    let within = config.scrub.period;
    let Some(copies) = photomesh::library::status::photo_copies(home, folder, path, within)? else {
        anyhow::bail!(
            "no photo is recorded at {photo:?} (`photomesh photos` lists them; labels: \
             `photomesh folder list`)"
        );
    };
    if json {
        out_block!("{}", serde_json::to_string_pretty(&copies)?)?;
        return Ok(true);
    }
    let counted = copies.copies.iter().filter(|c| c.counts).count();
    out!(
        "{}/{}  blob {}…  {} counted (verified within {})",
        copies.folder,
        copies.path,
        copies.blob.get(..16).unwrap_or(&copies.blob),
        if counted == 1 {
            "1 copy".to_owned()
        } else {
            format!("{counted} copies")
        },
        photomesh::home::config::format_duration(within)
    )?;
    if copies.copies.is_empty() {
        out!("  no copy known: not yet safe anywhere")?;
    }
    for c in &copies.copies {
        let when = if c.verified_at_ms == 0 {
            "never verified".to_owned()
        } else {
            format!("verified {}", utc(c.verified_at_ms as i64))
        };
        let note = if c.counts { "" } else { "  (not counted)" };
        out!("  {:<16} {when}{note}", c.device)?;
    }
    Ok(true)
}

/// `photomesh versions LABEL/PATH`.
pub fn versions(home: &Home, photo: &str, json: bool) -> Result<bool> {
    let (folder, path) = photo.split_once('/').ok_or_else(|| {
        anyhow::anyhow!(
            "{photo:?} is not LABEL/PATH: give the folder's label, a slash and the photo's \
             path in it, as `photomesh photos` prints them"
        )
    })?;
    let versions = photomesh::library::status::versions(home, folder, path)?;
    if versions.is_empty() {
        anyhow::bail!("no photo is recorded at {photo:?} (`photomesh photos` lists them)");
    }
    if json {
        out_block!("{}", serde_json::to_string_pretty(&versions)?)?;
        return Ok(true);
    }
    for v in &versions {
        let note = match (v.current, v.trashed) {
            (true, _) => "  (current)",
            (_, true) => "  (in the trash)",
            _ => "",
        };
        out!(
            "  {:>3}  recorded {}  {:>10}  by {}{note}",
            v.n,
            utc(v.recorded_at_ms as i64),
            bytes(v.size),
            v.device
        )?;
    }
    out!(
        "{}; `photomesh restore --path {photo} --version N` writes one, `--all-versions` every one.",
        count(versions.len() as u64, "version")
    )?;
    Ok(true)
}

/// `photomesh photos`.
pub fn photos(home: &Home, folder: Option<&str>, json: bool) -> Result<bool> {
    let (photos, unreadable) = photomesh::library::status::photos(home, folder)?;
    if json {
        out_block!("{}", serde_json::to_string_pretty(&photos)?)?;
    } else {
        for p in &photos {
            let taken = p
                .capture_local_seconds
                .map(|s| utc(s.saturating_mul(1000)).replace(" UTC", ""))
                .unwrap_or_else(|| "-".into());
            let mut notes = Vec::new();
            if !p.links.sidecars.is_empty() {
                notes.push(format!("sidecars: {}", p.links.sidecars.join(", ")));
            }
            if let Some(of) = &p.links.sidecar_of {
                notes.push(format!("sidecar of {of}"));
            }
            if let Some(pair) = &p.links.live_pair {
                notes.push(format!("Live Photo with {pair}"));
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("  ({})", notes.join("; "))
            };
            out!(
                "{:<5} {:>10}  {:<16}  {}/{}{notes}",
                p.media_type,
                bytes(p.size),
                taken,
                p.folder,
                p.path
            )?;
        }
        out!("{}", count(photos.len() as u64, "photo"))?;
    }
    if unreadable > 0 {
        say!("{unreadable} records could not be opened with this device's keys");
    }
    Ok(unreadable == 0)
}

fn print_recovery(r: &photomesh::mesh::recovery::Summary) -> std::io::Result<()> {
    let by = r.made_by.as_deref().unwrap_or("another device");
    match (r.in_place, r.held_here, r.exported_at_ms) {
        (false, ..) => out!(
            "Recovery WARNING: this mesh has no recovery key yet; the node makes one when it \
             starts. Then export it: photomesh recovery-key export"
        ),
        (true, true, None) => out!(
            "Recovery WARNING: the recovery phrase was never exported. Nothing brings the \
             photos back if every full device is lost: photomesh recovery-key export"
        ),
        (true, true, Some(at)) => out!("Recovery phrase exported {}", utc(at as i64)),
        (true, false, _) => out!("Recovery phrase made on {by} (export it there)"),
    }
}

fn print_status(s: &Status) -> std::io::Result<()> {
    out!("Device   {} ({})", s.device_name, s.device_id)?;
    out!("Home     {}", s.home)?;
    if let Some(epoch) = s.key_epoch {
        out!(
            "Library  {} ({} in all), key epoch {epoch}",
            count(s.photo_records, "photo record"),
            count(s.records, "record")
        )?;
    } else {
        out!(
            "Library  {}, all sealed: this device holds no library key",
            count(s.records, "record")
        )?;
    }
    if s.key_epoch.is_some() {
        print_folders(&s.folders)?;
    } else {
        out!(
            "Vault    stores every photo sealed, for the full devices to restore from; it reads \
             none and backs up no folder of its own"
        )?;
    }
    if let Some(safety) = &s.safety {
        print_safety(safety)?;
    }
    if let Some(recovery) = &s.recovery {
        print_recovery(recovery)?;
    }
    print_node(s)?;
    print_devices(&s.peers)?;
    if !s.transfers.is_empty() {
        out!("Transfers")?;
        for t in &s.transfers {
            out!(
                "  {}",
                photomesh::library::status::describe_transfer(t, &s.peers)
            )?;
        }
    }
    let what = if s.hold == "own" {
        "only the photos this device added (`run --hold own`)"
    } else {
        "every photo of the library"
    };
    match &s.holding {
        Some(h) if h.holds < h.should_hold => out!(
            "Holds    {what}: {} of {} blobs{}",
            thousands(h.holds),
            thousands(h.should_hold),
            if s.node_running {
                "; fetching"
            } else {
                "; the rest is fetched when the node runs (`photomesh run`)"
            }
        )?,
        Some(h) => out!("Holds    {what}: all {} blobs", thousands(h.should_hold))?,
        None => out!("Holds    {what}")?,
    }
    match (&s.disk_short, s.disk_free) {
        (Some(short), _) if short.quota.is_some() => out!(
            "Storage  quota reached: {} of {} stored ([storage] max_bytes); {} ({}) left to \
             other devices (raise max_bytes to take them)",
            bytes(short.used),
            bytes(short.quota.unwrap_or(0)),
            count(short.blobs_waiting, "blob"),
            bytes(short.bytes_waiting)
        )?,
        (Some(short), _) => out!(
            "Disk     nearly full: {} free, {} kept in reserve; {} ({}) wait for room \
             (free some space, or lower [storage] reserve)",
            bytes(short.free),
            bytes(short.reserve),
            count(short.blobs_waiting, "blob"),
            bytes(short.bytes_waiting)
        )?,
        (None, Some(free)) => out!("Disk     {} free", bytes(free))?,
        (None, None) => {}
    }
    if let Some(storage) = &s.storage {
        out!("Storage  {}", describe_storage(storage))?;
    }
    if s.trash.versions > 0 {
        let what = if s.trash.photos > 0 {
            format!(
                "{} ({})",
                count(s.trash.photos, "photo"),
                bytes(s.trash.bytes)
            )
        } else {
            count(s.trash.versions, "photo version")
        };
        let next = s
            .trash
            .next_purge_ms
            .map_or(String::new(), |t| format!("; next purge {}", utc(t as i64)));
        out!("Trash    {what} (`photomesh trash list`){next}")?;
    }
    if s.released.photos > 0 {
        out!(
            "Freed    {} ({}) released from this device's folders by `free-up-space`: safe \
             on other devices; `photomesh restore` brings them back",
            count(s.released.photos, "original"),
            bytes(s.released.bytes)
        )?;
    }
    if s.free_up_now.photos > 0 {
        out!(
            "Free up  {} ({}) could be freed now: their photos have enough verified copies on \
             other devices (`photomesh free-up-space`)",
            count(s.free_up_now.photos, "original"),
            bytes(s.free_up_now.bytes)
        )?;
    }
    if s.versions.earlier > 0 {
        out!(
            "Versions {} of edited photos kept ({}; [versions] keep = {:?})",
            count(s.versions.earlier, "earlier version"),
            bytes(s.versions.bytes),
            s.versions.keep
        )?;
    }
    let scrub = &s.scrub;
    if scrub.of > 0 {
        let last = scrub
            .last_pass_ms
            .map_or("none yet".to_owned(), |ms| utc(ms as i64));
        let now = match scrub.pass_started_ms {
            Some(_) => format!(
                "; this pass {} of {} blobs and originals",
                scrub.checked, scrub.of
            ),
            None => String::new(),
        };
        let found = if scrub.found > 0 {
            format!(
                "; {} found damaged or missing, set aside and fetched again",
                scrub.found
            )
        } else {
            String::new()
        };
        out!("Scrub    last full pass {last}{now}{found}")?;
    }
    if s.originals_gone_total > 0 {
        let one = s.originals_gone_total == 1;
        out!(
            "Gone     {} recorded here {} gone from {} folder{} or damaged (nothing is lost; \
             `photomesh restore` brings {} back):",
            count(s.originals_gone_total, "original"),
            if one { "is" } else { "are" },
            if one { "its" } else { "their" },
            if one { "" } else { "s" },
            if one { "it" } else { "them" },
        )?;
        for g in s.originals_gone.iter().take(20) {
            let mut copies = g.copies_on.clone();
            if g.stored_here {
                copies.insert(0, "this device".into());
            }
            let copies = if copies.is_empty() {
                "no verified copy known yet".to_owned()
            } else {
                format!("good copies on {}", copies.join(", "))
            };
            let what = if g.damaged {
                "damaged (its content no longer matches its record)"
            } else {
                "gone"
            };
            out!("  {}/{}: {what}; {copies}", g.folder, g.path)?;
        }
        more(s.originals_gone_total, s.originals_gone.len().min(20))?;
    }
    match &s.last_scan {
        None if s.key_epoch.is_none() => Ok(()),
        None => out!("Last scan  never: run `photomesh scan`"),
        Some(scan) => {
            out_part!("Last scan  {}: ", utc(scan.started_at_ms as i64))?;
            if scan.finished_at_ms.is_none() {
                out_part!("(did not finish) ")?;
            }
            print_scan(scan)?;
            if s.recorded_since_scan > 0 {
                out!(
                    "  since then the watcher recorded {}",
                    count(s.recorded_since_scan, "new photo")
                )?;
            }
            Ok(())
        }
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_folders(folders: &[FolderStats]) -> std::io::Result<()> {
    if folders.is_empty() {
        out!("Folders  none: add one with `photomesh folder add PATH`")?;
    } else {
        out!("Folders")?;
        for f in folders {
            let note = if Path::new(&f.path).is_dir() {
                ""
            } else {
                "  (not found)"
            };
            out!(
                "  {:<16} {:>7} photos {:>10}   {}{note}",
                f.label,
                f.photos,
                bytes(f.bytes),
                f.path.display()
            )?;
        }
    }
    Ok(())
}

fn print_safety(safety: &Safety) -> std::io::Result<()> {
    out!(
        "Safety   {} of {} photos ({}) have {} verified copies on distinct devices; {} below",
        safety.at_goal,
        safety.photos,
        bytes(safety.bytes),
        safety.replica_goal,
        safety.below_goal_total
    )?;
    let kinds: Vec<String> = safety
        .kinds
        .iter()
        .map(|(k, c)| format!("{k} {}", c.photos))
        .collect();
    if !kinds.is_empty() {
        out!("  by kind: {}", kinds.join(", "))?;
    }
    let within = photomesh::home::config::format_duration(std::time::Duration::from_millis(
        safety.verified_within_ms,
    ));
    for b in safety.below_goal.iter().take(20) {
        let stale = if b.unverified > 0 {
            format!(" (+{} not verified within {within})", b.unverified)
        } else {
            String::new()
        };
        out!(
            "  {} cop{}{stale}: {}/{}",
            b.copies,
            if b.copies == 1 { "y" } else { "ies" },
            b.folder,
            b.path
        )?;
    }
    more(safety.below_goal_total, safety.below_goal.len().min(20))
}

/// After the first `shown` of a list of `total` photos: how many more, and where to see them.
fn more(total: u64, shown: usize) -> std::io::Result<()> {
    let rest = total.saturating_sub(shown as u64);
    if rest == 0 {
        return Ok(());
    }
    let json = if total as usize > photomesh::library::status::LISTED {
        format!(
            "photomesh status --json lists the first {}",
            thousands(photomesh::library::status::LISTED as u64)
        )
    } else {
        "photomesh status --json lists them all".to_owned()
    };
    out!("  … and {} more ({json})", thousands(rest))
}

fn print_node(s: &Status) -> std::io::Result<()> {
    match &s.listening {
        Some(addr) => out!(
            "Node     running, listening on {addr}, {} connection{} open",
            s.open_connections.unwrap_or(0),
            if s.open_connections == Some(1) {
                ""
            } else {
                "s"
            }
        ),
        None => out!(
            "Node     not running: this is what the home records (start it with `photomesh run`)"
        ),
    }?;
    use photomesh::net::portmap::MapState;
    match &s.port_mapping {
        None => Ok(()),
        Some(MapState::Asking { gateway }) => {
            out!("Outside  asking the router {gateway} for a port mapping")
        }
        Some(MapState::Mapped {
            external,
            protocol,
            gateway,
            lifetime_s,
            ..
        }) => out!(
            "Outside  reachable at {external}: port mapped by the router {gateway} ({protocol}, \
             renewed every {} min)",
            lifetime_s / 120
        ),
        Some(MapState::Failed { why, at_ms, .. }) => out!(
            "Outside  NOT reachable from beyond the router: no port mapping ({why}; {})",
            utc(*at_ms as i64)
        ),
    }
}

/// `12.3 GB stored, 40.0 GB free, quota 50.0 GB`, with a warning when less than a tenth of
/// what the device could hold is left.
fn describe_storage(s: &photomesh_protocol::messages::StorageReport) -> String {
    let mut line = format!("{} stored, {} free", bytes(s.used), bytes(s.free));
    if let Some(quota) = s.quota {
        line.push_str(&format!(", quota {}", bytes(quota)));
    }
    if s.is_low() {
        line.push_str(&format!(
            " — running out: {} of room left, less than 10%",
            bytes(s.room())
        ));
    }
    line
}

fn print_devices(peers: &[PeerStatus]) -> std::io::Result<()> {
    if !peers.is_empty() {
        out!("Devices")?;
        for p in peers {
            let state = if let Some(c) = &p.connection {
                format!("online via {} since {}", c.address, utc(c.since_ms as i64))
            } else if p.online {
                "online".to_owned()
            } else {
                p.last_sync_ms
                    .map(|t| format!("last synced {}", utc(t as i64)))
                    .unwrap_or_else(|| "never synced".into())
            };
            out!(
                "  {:<16} {:<5} {:>7} blobs  {}",
                p.name,
                p.role,
                p.blobs_held,
                state
            )?;
            if let Some(why) = &p.unreachable {
                out!("    unreachable: {why}")?;
            }
            if let Some(storage) = &p.storage {
                out!("    {}", describe_storage(storage))?;
            }
            match &p.drill {
                Some(d) if d.passed() => out!(
                    "    restore drill passed {}: {} of {} photos intact",
                    utc(d.at_ms as i64),
                    d.passed,
                    d.checked
                )?,
                Some(d) => out!(
                    "    restore drill FAILED {}: {}",
                    utc(d.at_ms as i64),
                    d.unreachable.clone().unwrap_or_else(|| format!(
                        "{} of {} photos intact; {}",
                        d.passed,
                        d.checked,
                        d.problems.first().cloned().unwrap_or_default()
                    ))
                )?,
                None => {}
            }
            if let Some(bad) = &p.bad_data {
                out!(
                    "    sent bad data for blob {} at {}: {}{}",
                    &bad.blob[..16],
                    utc(bad.at_ms as i64),
                    bad.reason,
                    if bad.avoided {
                        " (not asked for blobs for now)"
                    } else {
                        ""
                    }
                )?;
            }
        }
    }
    Ok(())
}
