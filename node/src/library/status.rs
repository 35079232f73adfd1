//! What `photomesh status` reports about this device: who it is, its folders, its library,
//! and what the last scan found — read from the home — and, when a node runs on the home,
//! what it reports live through the control socket: its connections and transfers.
//!
//! Its figures come from the counts the index keeps as it changes (`index/tallies.rs`: the
//! photo records by class, and tallies), so `status` takes the same time at any library size.
//! What depends on the time is counted in an index of only the records it concerns: copies
//! whose check is overdue, photos recorded lately. Lists that name photos name at most
//! [`LISTED`].

use std::collections::{BTreeMap, HashMap};

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::messages::StorageReport;
use photomesh_protocol::record::MediaType;

use crate::home::Home;
use crate::index::{ClassPhoto, FolderStats, IndexError, PhotoClass, ScanSummary};
use crate::library::copies::Copies;
pub use crate::library::copies::CopyOf;
use crate::mesh::DeviceEntry;
use crate::net::control::TransferStatus;
use crate::net::control::{LiveConnection, LiveStatus};

/// The status of one device, as printed or serialised with `--json`.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    /// The device's ID.
    pub device_id: String,
    /// The device's name.
    pub device_name: String,
    /// The home directory.
    pub home: String,
    /// The current library key epoch.
    pub key_epoch: Option<u32>,
    /// Each folder with its photo count and bytes.
    pub folders: Vec<FolderStats>,
    /// Photo records held (every version of every photo).
    pub photo_records: u64,
    /// Every record held, readable here or not (a vault holds them all sealed).
    pub records: u64,
    /// The most recent scan, if any.
    pub last_scan: Option<ScanSummary>,
    /// The other devices of the mesh, as this device last synced with them.
    pub peers: Vec<PeerStatus>,
    /// How safe the photos are (on a full device, which can read the records).
    pub safety: Option<Safety>,
    /// Whether a node runs on this home (it answered on the control socket).
    pub node_running: bool,
    /// Where the running node listens.
    pub listening: Option<String>,
    /// QUIC connections the running node holds open (closing ones included).
    pub open_connections: Option<u64>,
    /// Blobs the running node is receiving.
    pub transfers: Vec<TransferStatus>,
    /// Which blobs this device keeps copies of (`photomesh run --hold`): `all` or `own`.
    pub hold: &'static str,
    /// What it holds against what its hold policy says it should (on a full device).
    pub holding: Option<Holding>,
    /// Its own recorded originals found gone from their folders, with where copies are: the
    /// first [`LISTED`] found gone.
    pub originals_gone: Vec<GoneOriginal>,
    /// How many of its own recorded originals are gone from their folders or damaged.
    pub originals_gone_total: u64,
    /// Photos the watcher recorded since the last full scan finished.
    pub recorded_since_scan: u64,
    /// Free bytes on the blob store's disk.
    pub disk_free: Option<u64>,
    /// What this device stores, its room and its quota, as its hello tells the others.
    pub storage: Option<StorageReport>,
    /// Blobs the running node leaves unfetched for lack of room, if any.
    pub disk_short: Option<crate::net::control::DiskShort>,
    /// Where the re-verification of the stored blobs is.
    pub scrub: crate::library::scrub::ScrubStatus,
    /// What the trash holds.
    pub trash: TrashSummary,
    /// Earlier versions of edited photos kept.
    pub versions: VersionsSummary,
    /// Originals this device released to free its space (`free-up-space`), of photos still
    /// current: safe on other devices, not here.
    pub released: crate::library::free_up::Amount,
    /// What `free-up-space` would free now (with the default `--older-than`).
    pub free_up_now: crate::library::free_up::Amount,
    /// The recovery key (on a full device).
    pub recovery: Option<crate::mesh::recovery::Summary>,
    /// The router's port mapping, when the running node asks for one (`[nat] map_port`).
    pub port_mapping: Option<crate::net::portmap::MapState>,
}

/// Earlier versions of edited photos, in figures.
#[derive(Debug, Default, serde::Serialize)]
pub struct VersionsSummary {
    /// Earlier versions kept (the photos as they are now not counted).
    pub earlier: u64,
    /// Their size.
    pub bytes: u64,
    /// What `[versions] keep` says.
    pub keep: String,
}

/// The trash, in figures.
#[derive(Debug, Default, serde::Serialize)]
pub struct TrashSummary {
    /// Photos in the trash (on a full device; a vault reads none).
    pub photos: u64,
    /// Photo versions (records) in the trash.
    pub versions: u64,
    /// Their size, as far as known.
    pub bytes: u64,
    /// When the next one leaves the trash for good (ms since the epoch).
    pub next_purge_ms: Option<u64>,
}

/// What a device holds against what it should.
#[derive(Debug, serde::Serialize)]
pub struct Holding {
    /// Blobs it should hold (every version of every photo, or of its own).
    pub should_hold: u64,
    /// Of those, blobs it holds: stored, or as an original that is there.
    pub holds: u64,
}

/// A recorded original of this device that is no longer in its folder, or is there but
/// damaged (its content no longer matches its record).
#[derive(Debug, serde::Serialize)]
pub struct GoneOriginal {
    /// Its folder label.
    pub folder: String,
    /// Its path.
    pub path: String,
    /// Since when it is known gone or damaged (ms since the epoch).
    pub gone_since_ms: u64,
    /// There, but damaged (rot): not gone.
    pub damaged: bool,
    /// Whether this device's blob store holds a copy.
    pub stored_here: bool,
    /// The members known to hold a copy verified within the scrub period.
    pub copies_on: Vec<String>,
}

/// Where a photo's copies are, for `photomesh status --photo`.
#[derive(Debug, serde::Serialize)]
pub struct PhotoCopies {
    /// Its folder label.
    pub folder: String,
    /// Its path.
    pub path: String,
    /// The blob ID (hex).
    pub blob: String,
    /// Every known copy, this device's first.
    pub copies: Vec<CopyOf>,
}

/// Another device as this one sees it.
#[derive(Debug, serde::Serialize)]
pub struct PeerStatus {
    /// Its device ID.
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// `full` or `vault`.
    pub role: &'static str,
    /// Whether it synced with this device in the last [`ONLINE_WITHIN_MS`] ms.
    pub online: bool,
    /// When it last synced with this device (ms since the epoch).
    pub last_sync_ms: Option<u64>,
    /// How many blobs it held then.
    pub blobs_held: u64,
    /// The running node's connection to it now, if any.
    pub connection: Option<LiveConnection>,
    /// The last time it sent blob data that failed verification, if ever.
    pub bad_data: Option<BadData>,
    /// Its last restore drill, if one ran (`photomesh drill`).
    pub drill: Option<crate::replicate::drill::DeviceDrill>,
    /// Why the running node's last dial of it failed, when it is not connected.
    pub unreachable: Option<String>,
    /// What it last said of its storage (in its hello).
    pub storage: Option<StorageReport>,
}

/// A peer caught sending blob data that does not match the blob's ID.
#[derive(Debug, serde::Serialize)]
pub struct BadData {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// The blob it was sending (hex).
    pub blob: String,
    /// What failed.
    pub reason: String,
    /// Whether it is still not asked for blobs ([`crate::replicate::bad_peer::BAD_PEER_COOLDOWN`]).
    pub avoided: bool,
}

/// A device counts as online if it synced within this many milliseconds.
pub const ONLINE_WITHIN_MS: u64 = 10_000;

/// Verified copies of the photos on distinct devices.
#[derive(Debug, serde::Serialize)]
pub struct Safety {
    /// Photos (the newest version of each path).
    pub photos: u64,
    /// Their total size.
    pub bytes: u64,
    /// Copies on distinct devices each photo should reach: 3, or every member if fewer.
    pub replica_goal: u64,
    /// A copy counts only if its device verified it within this many ms (the scrub period).
    pub verified_within_ms: u64,
    /// Photos that have reached the goal.
    pub at_goal: u64,
    /// Photos below the goal, with their copy counts (fewest first): at most [`LISTED`].
    pub below_goal: Vec<BelowGoal>,
    /// How many photos are below the goal.
    pub below_goal_total: u64,
    /// The photos by kind (`jpeg`, `raf`, `mp4`, `xmp`, `other`, …): count and bytes.
    pub kinds: std::collections::BTreeMap<&'static str, KindCount>,
}

/// How many photos of a kind, and their size.
#[derive(Debug, Default, serde::Serialize)]
pub struct KindCount {
    /// Photos.
    pub photos: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A photo that is not yet safe.
#[derive(Debug, serde::Serialize)]
pub struct BelowGoal {
    /// Its folder label.
    pub folder: String,
    /// Its path.
    pub path: String,
    /// Devices known to hold a copy verified within the scrub period (this one included).
    pub copies: u64,
    /// Copies held whose last check is older than the scrub period: not counted.
    pub unverified: u64,
}

/// The replica goal unless configured: every photo on this many distinct devices.
pub const DEFAULT_REPLICA_GOAL: u64 = 3;

/// The most photos a list of `status` names (below the goal, originals gone); the totals
/// count them all.
pub const LISTED: usize = 1000;

/// What `status` is measured against (the configuration's say).
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    /// Photos should reach this many copies on distinct devices, or every member if the mesh
    /// has fewer.
    pub goal: u64,
    /// A copy counts if its device verified it within this long (the scrub period).
    pub verified_within: std::time::Duration,
    /// This device's quota (`[storage] max_bytes`).
    pub quota: Option<u64>,
    /// How long deleted photos stay in the trash (`[trash] retention`).
    pub retention: std::time::Duration,
    /// How long another device's purge is held (`[trash] purge_hold`).
    pub purge_hold: std::time::Duration,
    /// Which earlier versions are kept (`[versions] keep`).
    pub keep: crate::home::config::Keep,
    /// Verified copies on other devices that let `free-up-space` release an original
    /// (`[storage] free_up_copies`): a released photo is safe with as many (or the goal, if
    /// lower).
    pub free_up_copies: u64,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            goal: DEFAULT_REPLICA_GOAL,
            verified_within: crate::home::config::DEFAULT_SCRUB_PERIOD,
            quota: None,
            retention: crate::home::config::DEFAULT_TRASH_RETENTION,
            purge_hold: crate::home::config::DEFAULT_PURGE_HOLD,
            keep: crate::home::config::Keep::All,
            free_up_copies: u64::from(crate::home::config::DEFAULT_FREE_UP_COPIES),
        }
    }
}

/// Gathers the status from the home's index, with the default targets.
pub fn status(home: &Home) -> Result<Status, IndexError> {
    status_with(home, Targets::default())
}

/// Gathers the status from the home's index, measured against `targets`.
pub fn status_with(home: &Home, targets: Targets) -> Result<Status, IndexError> {
    let classes = home.index.photo_classes()?;
    let copies = Copies::new(home, targets.verified_within)?;
    let disk_free = home.blobs.free_bytes().ok();
    let (originals_gone, originals_gone_total) = originals_gone(home, &classes, &copies)?;
    // Read once: the peers and the recovery key are both shown from it.
    let trust = crate::mesh::trust_set(home).ok();
    Ok(Status {
        device_id: home.device.device_id().to_string(),
        // As the mesh calls it (a rename from another device), else as given to `init`.
        device_name: match trust.as_ref().and_then(|t| t.get(&home.device.device_id())) {
            Some(me) => me.name.clone(),
            None => home.device_name()?,
        },
        home: home.path.display().to_string(),
        key_epoch: home.keys.current().map(|k| k.epoch()),
        folders: home.index.folder_stats()?,
        photo_records: classes.iter().map(|c| c.photos).sum(),
        records: home.index.record_count()?,
        last_scan: home.index.last_scan()?,
        peers: peers(home, trust.as_ref())?,
        safety: safety(home, &targets, &classes, &copies)?,
        node_running: false,
        listening: None,
        open_connections: None,
        transfers: Vec::new(),
        hold: crate::replicate::held::HoldPolicy::of(home)?.name(),
        holding: holding(home, &classes, targets.retention, targets.purge_hold)?,
        originals_gone,
        originals_gone_total,
        recorded_since_scan: recorded_since_scan(home, &classes)?,
        disk_free,
        storage: disk_free
            .map(|free| -> Result<_, IndexError> {
                Ok(StorageReport {
                    used: home.index.stored_bytes()?,
                    free,
                    quota: targets.quota,
                })
            })
            .transpose()?,
        disk_short: None,
        scrub: crate::library::scrub::status(home)?,
        trash: trash_summary(home, targets.retention)?,
        recovery: trust
            .as_ref()
            .and_then(|t| crate::mesh::recovery::summary(home, t)),
        port_mapping: None,
        versions: VersionsSummary {
            earlier: classes.iter().filter(|c| c.earlier).map(|c| c.photos).sum(),
            bytes: classes.iter().filter(|c| c.earlier).map(|c| c.bytes).sum(),
            keep: targets.keep.name(),
        },
        released: crate::library::free_up::released(home)?,
        free_up_now: crate::library::free_up::would_free(
            home,
            &crate::library::free_up::Settings {
                copies: targets.free_up_copies,
                verified_within: targets.verified_within,
                ..crate::library::free_up::Settings::default()
            },
        )?,
    })
}

fn trash_summary(home: &Home, retention: std::time::Duration) -> Result<TrashSummary, IndexError> {
    let list = match crate::library::trash::list(home, retention) {
        Ok(list) => list,
        Err(crate::library::trash::TrashError::Index(e)) => return Err(e),
        Err(e) => {
            tracing::debug!("reading the trash: {e}");
            return Ok(TrashSummary::default());
        }
    };
    Ok(TrashSummary {
        photos: list.photos.len() as u64,
        versions: list.versions,
        bytes: list.bytes,
        next_purge_ms: list.next_purge_ms,
    })
}

/// The blobs of every photo record (or of those this device added, holding its own), each
/// counted once through its first record, but the originals it released (`free-up-space`)
/// and what left the trash for good.
fn holding(
    home: &Home,
    classes: &[PhotoClass],
    retention: std::time::Duration,
    hold: std::time::Duration,
) -> Result<Option<Holding>, IndexError> {
    if home.keys.current().is_none() {
        return Ok(None);
    }
    let me = home.device.device_id();
    let own =
        crate::replicate::held::HoldPolicy::of(home)? == crate::replicate::held::HoldPolicy::Own;
    let counted = |c: &PhotoClass| {
        !c.blob_released
            && if own {
                c.first_of_blob_by_adder && c.added_by == Some(me)
            } else {
                c.first_of_blob
            }
    };
    let mut holding = Holding {
        should_hold: 0,
        holds: 0,
    };
    for class in classes.iter().filter(|c| counted(c)) {
        holding.should_hold += class.photos;
        if class.held {
            holding.holds += class.photos;
        }
    }
    // Not what left the trash for good (the trash is read, not the library).
    let by_class: HashMap<i64, &PhotoClass> = classes.iter().map(|c| (c.class, c)).collect();
    let retention = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    let purged = home.index.purgeable_blobs(
        crate::clock::now_ms(),
        retention,
        u64::try_from(hold.as_millis()).unwrap_or(u64::MAX),
    )?;
    for blob in &purged {
        let first = home.index.first_record_class(blob, own.then_some(&me))?;
        if let Some(class) = first.and_then(|c| by_class.get(&c)).filter(|c| counted(c)) {
            holding.should_hold = holding.should_hold.saturating_sub(1);
            if class.held {
                holding.holds = holding.holds.saturating_sub(1);
            }
        }
    }
    Ok(Some(holding))
}

/// The first [`LISTED`] of its own originals found gone or damaged, and how many there are.
fn originals_gone(
    home: &Home,
    classes: &[PhotoClass],
    copies: &Copies,
) -> Result<(Vec<GoneOriginal>, u64), IndexError> {
    let total = classes
        .iter()
        .filter(|c| c.source_gone && !c.trashed)
        .map(|c| c.photos)
        .sum();
    let mut out = Vec::new();
    for gone in home.index.first_gone_sources(LISTED)? {
        out.push(GoneOriginal {
            stored_here: home.index.blob_stored(&gone.blob)?,
            copies_on: copies
                .of_peers(home, &gone.blob)?
                .into_iter()
                .filter(|c| c.counts)
                .map(|c| c.device)
                .collect(),
            folder: gone.folder,
            path: gone.path,
            gone_since_ms: gone.since_ms,
            damaged: gone.damaged,
        });
    }
    Ok((out, total))
}

/// One version of a photo, as `photomesh versions` lists it.
#[derive(Debug, serde::Serialize)]
pub struct VersionEntry {
    /// Its number: 1 is the first recorded.
    pub n: usize,
    /// When it was recorded (ms since the epoch).
    pub recorded_at_ms: u64,
    /// The file's modification time then (seconds since the epoch).
    pub mtime_s: i64,
    /// Its size.
    pub size: u64,
    /// The device that recorded it.
    pub device: String,
    /// Whether it is in the trash.
    pub trashed: bool,
    /// Whether it is the photo as it is now.
    pub current: bool,
    /// The photo record (hex).
    pub record_id: String,
}

/// Every version of the photo at `folder`/`path`, oldest first; empty if none is recorded.
pub fn versions(home: &Home, folder: &str, path: &str) -> Result<Vec<VersionEntry>, IndexError> {
    let names: HashMap<DeviceId, String> = crate::mesh::trust_set(home)
        .map(|t| {
            t.members()
                .chain(t.revoked())
                .map(|m| (m.device, m.name.clone()))
                .collect()
        })
        .unwrap_or_default();
    let all = home.index.versions(folder, path)?;
    let current = home
        .index
        .current_photo_at(folder, path)?
        .map(|(record, _, _)| record);
    let mut out = Vec::new();
    for (i, v) in all.iter().enumerate() {
        let photo = home
            .index
            .record(&v.record_id)?
            .and_then(|record| record.open_photo(&home.keys).ok());
        let Some(photo) = photo else { continue };
        if v.purged {
            continue;
        }
        out.push(VersionEntry {
            n: i + 1,
            recorded_at_ms: v.created_at_ms,
            mtime_s: photo.mtime.seconds,
            size: v.size,
            device: names
                .get(&photo.added_by)
                .cloned()
                .unwrap_or_else(|| photo.added_by.to_string()),
            trashed: v.trashed,
            current: current == Some(v.record_id) && !v.trashed,
            record_id: hex::encode(v.record_id.0),
        });
    }
    Ok(out)
}

/// Every known copy of the newest version of the photo at `folder`/`path`, with when each was
/// last verified; `None` if no such photo is recorded.
pub fn photo_copies(
    home: &Home,
    folder: &str,
    path: &str,
    verified_within: std::time::Duration,
) -> Result<Option<PhotoCopies>, IndexError> {
    let Some((_, _, blob)) = home.index.current_photo_at(folder, path)? else {
        return Ok(None);
    };
    let copies = Copies::new(home, verified_within)?;
    let held = home.index.held_verified_at(&blob)?;
    let mut all: Vec<CopyOf> = copies.mine(held).into_iter().collect();
    all.extend(copies.of_peers(home, &blob)?);
    Ok(Some(PhotoCopies {
        folder: folder.to_owned(),
        path: path.to_owned(),
        blob: blob.to_hex(),
        copies: all,
    }))
}

/// A photo as the page's photo grid shows it.
#[derive(Debug, serde::Serialize)]
pub struct NewPhoto {
    /// Its current record (hex): what its thumbnail is asked by.
    pub record_id: String,
    /// Its folder label.
    pub folder: String,
    /// Its path.
    pub path: String,
    /// Its kind (`jpeg`, `mp4`, …).
    pub kind: MediaType,
    /// Its size.
    pub size: u64,
    /// When it was taken, local wall-clock seconds since 1970, if known.
    pub taken_local_seconds: Option<i64>,
    /// Copies on distinct devices verified within the scrub period (this one included).
    pub copies: u64,
    /// Its versions (this one included).
    pub versions: u64,
}

/// The photos added last, newest first (at most `limit`), with their copies and versions.
pub fn newest(
    home: &Home,
    limit: usize,
    verified_within: std::time::Duration,
) -> Result<Vec<NewPhoto>, IndexError> {
    let copies = Copies::new(home, verified_within)?;
    let mut out = Vec::new();
    for row in home.index.newest_photos(limit)? {
        let Ok(p) = row.record.open_photo(&home.keys) else {
            continue;
        };
        let held = home.index.held_verified_at(&p.blob_id)?;
        let mut all: Vec<CopyOf> = copies.mine(held).into_iter().collect();
        all.extend(copies.of_peers(home, &p.blob_id)?);
        let versions = versions(home, &p.folder, &p.path)?.len() as u64;
        out.push(NewPhoto {
            record_id: row.record_id.to_hex(),
            kind: p.media_type,
            size: p.size,
            taken_local_seconds: p.capture_time.map(|c| c.local_seconds),
            copies: all.iter().filter(|c| c.counts).count() as u64,
            versions,
            folder: p.folder,
            path: p.path,
        });
    }
    Ok(out)
}

/// Photo records this device added since the last scan finished (through each of its
/// classes' records made since: only those are read).
fn recorded_since_scan(home: &Home, classes: &[PhotoClass]) -> Result<u64, IndexError> {
    let Some(finished) = home.index.last_scan()?.and_then(|s| s.finished_at_ms) else {
        return Ok(0);
    };
    let me = Some(home.device.device_id());
    let mut n = 0;
    for class in classes.iter().filter(|c| c.added_by == me) {
        n += home.index.recorded_after(class.class, finished)?.0;
    }
    Ok(n)
}

/// Adds what the running node reports live (if one runs): a peer is online exactly when
/// the node is connected to it.
pub fn apply_live(status: &mut Status, live: Option<LiveStatus>) {
    let Some(live) = live else { return };
    status.node_running = true;
    status.listening = Some(live.listening);
    status.open_connections = Some(live.open_connections);
    status.transfers = live.transfers;
    status.disk_short = live.disk_short;
    status.port_mapping = live.port_mapping;
    for peer in &mut status.peers {
        peer.connection = live
            .connections
            .iter()
            .find(|c| c.device_id == peer.device_id)
            .cloned();
        peer.online = peer.connection.is_some();
        peer.unreachable = live
            .unreached
            .iter()
            .find(|(id, _)| *id == peer.device_id && peer.connection.is_none())
            .map(|(_, why)| why.clone());
    }
}

/// A transfer as `status` prints it, naming the peers by name where known:
/// `receiving 3f2a… 45.1 MiB of 100.0 MiB from nas, 38 MB/s, ETA 1 s`.
pub fn describe_transfer(t: &TransferStatus, peers: &[PeerStatus]) -> String {
    let mib = |n: u64| format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20));
    let from: Vec<&str> = t
        .peers
        .iter()
        .map(|id| {
            peers
                .iter()
                .find(|p| &p.device_id == id)
                .map_or(id.as_str(), |p| p.name.as_str())
        })
        .collect();
    let mut line = format!(
        "receiving {}… {} of {}",
        t.blob.get(..4).unwrap_or(&t.blob),
        mib(t.done),
        mib(t.total)
    );
    if !from.is_empty() {
        line.push_str(" from ");
        line.push_str(&from.join(", "));
    }
    line.push_str(&format!(", {:.0} MB/s", t.bytes_per_s / 1e6));
    match t.eta_s {
        Some(eta) => line.push_str(&format!(", ETA {} s", eta.ceil() as u64)),
        None => line.push_str(", starting"),
    }
    line
}

/// Adds what the running node reports live to the `devices` list.
pub fn apply_live_devices(devices: &mut [DeviceEntry], live: Option<&LiveStatus>) {
    let Some(live) = live else { return };
    for device in devices.iter_mut().filter(|d| !d.this_device) {
        device.connection = live
            .connections
            .iter()
            .find(|c| c.device_id == device.device_id)
            .cloned();
        device.online = Some(device.connection.is_some());
    }
}

fn peers(
    home: &Home,
    trust: Option<&photomesh_protocol::membership::TrustSet>,
) -> Result<Vec<PeerStatus>, IndexError> {
    let Some(trust) = trust else {
        return Ok(Vec::new());
    };
    let me = home.device.device_id();
    let now = crate::clock::now_ms();
    let mut drills: HashMap<String, crate::replicate::drill::DeviceDrill> =
        crate::replicate::drill::last(home)?
            .into_iter()
            .map(|d| (d.device_id.clone(), d))
            .collect();
    let mut out = Vec::new();
    for m in trust.devices().filter(|m| m.device != me) {
        let sync = home.index.peer_sync(&m.device)?;
        out.push(PeerStatus {
            device_id: m.device.to_string(),
            name: m.name.clone(),
            role: m.role.name(),
            online: sync.is_some_and(|(_, at)| now.saturating_sub(at) <= ONLINE_WITHIN_MS),
            last_sync_ms: sync.map(|(_, at)| at),
            blobs_held: sync.map_or(0, |(n, _)| n),
            connection: None,
            storage: home.index.peer_report(&m.device)?.and_then(|r| r.storage),
            bad_data: home.index.last_bad(&m.device)?.map(|b| BadData {
                avoided: crate::replicate::bad_peer::avoided(&b, now),
                at_ms: b.at_ms,
                blob: b.blob.to_hex(),
                reason: b.reason,
            }),
            drill: drills.remove(&m.device.to_string()),
            unreachable: None,
        });
    }
    Ok(out)
}

/// Copies per photo: this device if it holds the blob, plus every current member last seen
/// holding it, each only if its device verified it within the scrub period. Only members
/// count: a revoked device's copy is not a copy. A photo whose original this device released
/// (`free-up-space`) is safe with the copies its release required, `[storage]
/// free_up_copies` (or the goal, if lower): a phone that freed its space beside a laptop and
/// a NAS is where the household means it to be.
///
/// Counted by class: the photos of a class have the same copies, but for this device's own
/// copy, which does not count where its check is overdue (counted in `photos_by_check`).
fn safety(
    home: &Home,
    targets: &Targets,
    classes: &[PhotoClass],
    copies: &Copies,
) -> Result<Option<Safety>, IndexError> {
    if home.keys.current().is_none() {
        return Ok(None);
    }
    let goal = (copies.members().max(1)).min(targets.goal.max(1));
    let released_goal = goal.min(targets.free_up_copies.max(1));
    let mut safety = Safety {
        photos: 0,
        bytes: 0,
        replica_goal: goal,
        verified_within_ms: copies.within_ms(),
        at_goal: 0,
        below_goal: Vec::new(),
        below_goal_total: 0,
        kinds: Default::default(),
    };
    let mut below = Vec::new();
    for class in classes.iter().filter(|c| c.current) {
        safety.photos += class.photos;
        safety.bytes += class.bytes;
        add_kinds(home, class, &mut safety.kinds)?;
        let (peers, counted) = copies.peers_among(&class.holders);
        let needed = if class.released_here || class.released_by_member {
            released_goal
        } else {
            goal
        };
        let parts = if class.held {
            let late = home
                .index
                .overdue_in_class(class.class, copies.since_ms())?;
            let late = late.min(class.photos);
            [
                (Part::Checked, class.photos - late, counted + 1),
                (Part::Overdue, late, counted),
            ]
        } else {
            [(Part::All, class.photos, counted), (Part::All, 0, counted)]
        };
        for (part, photos, copies) in parts.into_iter().filter(|(_, n, _)| *n > 0) {
            if copies >= needed {
                safety.at_goal += photos;
            } else {
                safety.below_goal_total += photos;
                // Every copy known but those counted: the others' and this device's.
                let known = peers + u64::from(class.held);
                below.push((class.class, part, copies, known - copies));
            }
        }
    }
    safety.below_goal = below_goal(home, below, copies.since_ms())?;
    Ok(Some(safety))
}

/// Which photos of a class a part of it is.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// Every one (this device holds none of their blobs).
    All,
    /// Those whose copy here counts.
    Checked,
    /// Those whose copy here is overdue for its check.
    Overdue,
}

/// The first [`LISTED`] photos below the goal, fewest copies first, from the parts of
/// classes below it: `(class, part, copies, unverified)`. At most [`LISTED`] are read of
/// each part.
fn below_goal(
    home: &Home,
    mut parts: Vec<(i64, Part, u64, u64)>,
    since_ms: u64,
) -> Result<Vec<BelowGoal>, IndexError> {
    parts.sort_by_key(|(_, _, copies, _)| *copies);
    let mut out: Vec<BelowGoal> = Vec::new();
    for (class, part, copies, unverified) in parts {
        if out.len() >= LISTED && out.iter().all(|b| b.copies < copies) {
            break;
        }
        let photos: Vec<ClassPhoto> = match part {
            Part::All => home.index.photos_of_class(class, LISTED)?,
            Part::Checked => home
                .index
                .checked_photos_of_class(class, since_ms, LISTED)?,
            Part::Overdue => home
                .index
                .overdue_photos_of_class(class, since_ms, LISTED)?,
        };
        out.extend(photos.into_iter().map(|p| BelowGoal {
            folder: p.folder,
            path: p.path,
            copies,
            unverified,
        }));
    }
    out.sort_by(|a, b| (a.copies, &a.folder, &a.path).cmp(&(b.copies, &b.folder, &b.path)));
    out.truncate(LISTED);
    Ok(out)
}

/// Adds a class's photos to the counts by kind. Records indexed before kinds were kept
/// (until a node has run once since) are opened for theirs.
fn add_kinds(
    home: &Home,
    class: &PhotoClass,
    kinds: &mut BTreeMap<&'static str, KindCount>,
) -> Result<(), IndexError> {
    let mut add = |kind: MediaType, photos: u64, bytes: u64| {
        let count = kinds.entry(kind.name()).or_default();
        count.photos += photos;
        count.bytes += bytes;
    };
    if let Some(kind) = &class.kind {
        add(
            MediaType::from_name(kind).unwrap_or(MediaType::Other),
            class.photos,
            class.bytes,
        );
        return Ok(());
    }
    for record in home.index.records_of_class(class.class)? {
        if let Ok(p) = record.open_photo(&home.keys) {
            add(p.media_type, 1, p.size);
        }
    }
    Ok(())
}

/// One photo as `photomesh photos` lists it: the newest record of its path.
#[derive(Debug, serde::Serialize)]
pub struct PhotoEntry {
    /// The folder label.
    pub folder: String,
    /// The path within the folder.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: &'static str,
    /// Capture time as local wall-clock seconds since 1970, if the file carries one.
    pub capture_local_seconds: Option<i64>,
    /// The camera's UTC offset in minutes, if known.
    pub capture_utc_offset_minutes: Option<i16>,
    /// The blob ID (hex).
    pub blob_id: String,
    /// The record ID (hex).
    pub record_id: String,
    /// Its sidecars, the photo it is a sidecar of, its Live Photo pair.
    #[serde(flatten)]
    pub links: crate::library::links::Links,
}

/// The newest record of every photo path (optionally in one folder), opened with this
/// device's keys. Records it cannot open are skipped and counted in the second value.
pub fn photos(home: &Home, folder: Option<&str>) -> Result<(Vec<PhotoEntry>, u64), IndexError> {
    let mut unreadable = 0;
    let mut out = Vec::new();
    for row in home.index.latest_photos(folder)? {
        match row.record.open_photo(&home.keys) {
            Ok(p) => out.push(PhotoEntry {
                folder: p.folder,
                path: p.path,
                size: p.size,
                media_type: p.media_type.name(),
                capture_local_seconds: p.capture_time.map(|c| c.local_seconds),
                capture_utc_offset_minutes: p.capture_time.and_then(|c| c.utc_offset_minutes),
                blob_id: p.blob_id.to_hex(),
                record_id: row.record_id.to_hex(),
                links: Default::default(),
            }),
            Err(_) => unreadable += 1,
        }
    }
    let files: Vec<_> = out
        .iter()
        .map(|e| {
            let kind = photomesh_protocol::record::MediaType::from_name(e.media_type);
            (
                e.folder.as_str(),
                e.path.as_str(),
                kind.unwrap_or(photomesh_protocol::record::MediaType::Other),
            )
        })
        .collect();
    let links = crate::library::links::link(&files);
    for (entry, links) in out.iter_mut().zip(links) {
        entry.links = links;
    }
    Ok((out, unreadable))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use photomesh_protocol::record::{FileTime, PhotoRecord, Record};
    use photomesh_protocol::seal::BlobId;

    use super::*;
    use crate::index::{Folder, SourceRow, TrashRow};

    const DAY_MS: u64 = 86_400_000;

    /// A device whose index records `n` photos, scanned two days ago, with the same few
    /// photos out of the ordinary at any `n`: three originals gone, two whose check is
    /// overdue, one in the trash, one edited, five that a former member was seen holding.
    fn library(dir: &std::path::Path, n: u32) -> Home {
        let home = crate::mesh::create_device(&dir.join("home"), "laptop", None, 1).unwrap();
        let key = home.keys.current().unwrap().clone();
        let me = home.device.device_id();
        let folder = Folder {
            label: "photos".into(),
            path: dir.join("photos"),
        };
        home.index.add_folder(&folder, 1).unwrap();
        let then = crate::clock::now_ms() - 2 * DAY_MS;
        let record = |i: u32, version: u64| {
            let photo = PhotoRecord {
                folder: "photos".into(),
                path: format!("{i:05}.jpg"),
                size: 1000 + u64::from(i),
                mtime: FileTime {
                    seconds: i64::from(i),
                    nanos: 0,
                },
                capture_time: None,
                media_type: if i.is_multiple_of(2) {
                    MediaType::Jpeg
                } else {
                    MediaType::Heif
                },
                plaintext_hash: *blake3::hash(&[i.to_le_bytes(), [version as u8; 4]].concat())
                    .as_bytes(),
                blob_id: BlobId(
                    *blake3::hash(&[i.to_le_bytes(), [version as u8 + 1; 4]].concat()).as_bytes(),
                ),
                blob_epoch: key.epoch(),
                added_by: me,
                created_at_ms: then + version,
            };
            let (id, sealed) = Record::Photo(photo.clone()).seal(&key).unwrap();
            (id, sealed, photo)
        };
        let mut records = Vec::new();
        home.index
            .transaction(|ix| -> Result<(), IndexError> {
                for i in 0..n {
                    let version = if i == 8 { 2 } else { 1 };
                    for v in 1..=version {
                        let (id, sealed, photo) = record(i, v);
                        ix.add_photo_record(&id, &sealed, &photo, &home.keys, then)?;
                        ix.add_blob(&photo.blob_id, photo.size + 100, &[])?;
                        let source = SourceRow {
                            path: photo.path.clone(),
                            size: photo.size,
                            mtime_s: photo.mtime.seconds,
                            mtime_ns: 0,
                            inode: u64::from(i),
                            record_id: id,
                            gone: false,
                        };
                        ix.put_source("photos", &source)?;
                        records.push((id, photo.blob_id));
                    }
                }
                Ok(())
            })
            .unwrap();
        let path = |i: u32| format!("{i:05}.jpg");
        let gone: Vec<String> = (1..4).map(path).collect();
        let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
        home.index
            .mark_sources_gone("photos", &gone, then + 10)
            .unwrap();
        for i in [4, 5] {
            home.index
                .set_source_verified("photos", &path(i), 1)
                .unwrap();
        }
        home.index
            .set_trash(&[TrashRow {
                record_id: records[7].0,
                purged: false,
                since_ms: then,
                blob: None,
            }])
            .unwrap();
        let former = DeviceId::from_bytes([7; 20]);
        let held_there = records[10..15].iter().map(|(_, blob)| *blob);
        home.index
            .set_peer_blobs(&former, held_there, then)
            .unwrap();
        let scan = home.index.begin_scan(then).unwrap();
        let summary = ScanSummary {
            started_at_ms: then,
            finished_at_ms: Some(then + DAY_MS),
            files_seen: u64::from(n),
            ..ScanSummary::default()
        };
        home.index.update_scan(scan, &summary).unwrap();
        home
    }

    #[test]
    fn status_does_the_same_work_whatever_the_number_of_photos() {
        let targets = Targets {
            goal: 1,
            ..Targets::default()
        };
        let mut work = Vec::new();
        for n in [200, 2000] {
            let dir = tempfile::tempdir().unwrap();
            let mut home = library(dir.path(), n);
            let steps = home.index.count_steps();
            let status = status_with(&home, targets).unwrap();
            let status_steps = steps.swap(0, Ordering::Relaxed);
            let json = serde_json::to_string(&status).unwrap();
            assert!(serde_json::to_string(&status).unwrap() == json);
            // The counter sees a read of every photo: it would see one in `status`.
            home.index.latest_photos(None).unwrap();
            let scan_steps = steps.load(Ordering::Relaxed);
            let safety = status.safety.unwrap();
            assert_eq!(safety.photos, u64::from(n) - 1, "one in the trash");
            assert_eq!(status.photo_records, u64::from(n) + 1, "one edited");
            assert_eq!(status.versions.earlier, 1);
            assert_eq!(status.originals_gone_total, 3);
            assert_eq!(status.originals_gone.len(), 3);
            assert_eq!(safety.below_goal_total, 5, "3 gone, 2 overdue");
            let below: Vec<(u64, u64, &str)> = safety
                .below_goal
                .iter()
                .map(|b| (b.copies, b.unverified, b.path.as_str()))
                .collect();
            assert_eq!(
                below,
                [
                    (0, 0, "00001.jpg"),
                    (0, 0, "00002.jpg"),
                    (0, 0, "00003.jpg"),
                    (0, 1, "00004.jpg"),
                    (0, 1, "00005.jpg")
                ]
            );
            assert_eq!(safety.at_goal, u64::from(n) - 1 - 5);
            assert_eq!(
                safety.kinds["jpeg"].photos + safety.kinds["heif"].photos,
                safety.photos
            );
            let holding = status.holding.unwrap();
            assert_eq!(
                (holding.should_hold, holding.holds),
                (u64::from(n) + 1, u64::from(n) + 1 - 3 - 1),
                "every version's blob; not the gone ones, nor the edited one's first"
            );
            assert_eq!(status.folders[0].photos, u64::from(n) - 3 - 1 + 1);
            assert_eq!(status.peers.len(), 0, "a former member is no peer");
            assert_eq!(status.recorded_since_scan, 0);
            assert_eq!(status.trash.versions, 1);
            work.push((status_steps, scan_steps));
        }
        let [(small, small_scan), (large, large_scan)] = work[..] else {
            unreachable!("two sizes")
        };
        assert!(large_scan > small_scan * 5, "{work:?}");
        assert_eq!(large, small, "status's work grew with the photos: {work:?}");
    }

    #[test]
    fn a_copy_counts_only_while_its_check_is_within_the_period() {
        use crate::library::progress::Silent;
        let dir = tempfile::tempdir().unwrap();
        let home = crate::mesh::create_device(&dir.path().join("home"), "laptop", None, 1).unwrap();
        let photos = dir.path().join("photos");
        let files = crate::demo::samples::write_library(&photos, 2, 4).unwrap();
        crate::library::folders::add(&home, &photos, None).unwrap();
        crate::library::scan::scan(&home, &mut Silent).unwrap();
        let day = std::time::Duration::from_secs(86_400);
        let safety = |home: &Home| {
            status_with(
                home,
                Targets {
                    goal: 1,
                    verified_within: day,
                    ..Targets::default()
                },
            )
            .unwrap()
            .safety
            .unwrap()
        };
        let all = files.len() as u64;
        assert_eq!((safety(&home).at_goal, safety(&home).photos), (all, all));

        // One original last verified long ago: its copy no longer counts.
        let rel = files[0].strip_prefix(&photos).unwrap().to_str().unwrap();
        home.index.set_source_verified("photos", rel, 1).unwrap();
        let s = safety(&home);
        assert_eq!(s.at_goal, all - 1);
        assert_eq!((s.below_goal[0].copies, s.below_goal[0].unverified), (0, 1));
        assert_eq!(s.verified_within_ms, 86_400_000);
        let copies = photo_copies(&home, "photos", rel, day).unwrap().unwrap();
        assert_eq!(
            copies.copies,
            vec![CopyOf {
                device: "laptop".into(),
                verified_at_ms: 1,
                counts: false
            }]
        );
        // Verified again: it counts again.
        let now = crate::clock::now_ms();
        home.index.set_source_verified("photos", rel, now).unwrap();
        assert_eq!(safety(&home).at_goal, all);
        let copies = photo_copies(&home, "photos", rel, day).unwrap().unwrap();
        assert!(copies.copies[0].counts && copies.copies[0].verified_at_ms == now);
        assert!(
            photo_copies(&home, "photos", "no/such.jpg", day)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_transfer_reads_as_one_line_with_the_peer_s_name() {
        let nas = PeerStatus {
            device_id: "NAS-ID".into(),
            name: "NAS".into(),
            role: "full",
            online: true,
            last_sync_ms: None,
            blobs_held: 0,
            connection: None,
            bad_data: None,
            drill: None,
            unreachable: None,
            storage: None,
        };
        let mut t = TransferStatus {
            blob: "3f2a77".into(),
            peers: vec!["NAS-ID".into(), "OTHER-ID".into()],
            done: 47_290_777,
            total: 100 << 20,
            bytes_per_s: 38e6,
            eta_s: Some(0.2),
        };
        assert_eq!(
            describe_transfer(&t, std::slice::from_ref(&nas)),
            "receiving 3f2a… 45.1 MiB of 100.0 MiB from NAS, OTHER-ID, 38 MB/s, ETA 1 s"
        );
        t.peers.truncate(1);
        t.eta_s = None;
        t.bytes_per_s = 0.0;
        assert_eq!(
            describe_transfer(&t, &[nas]),
            "receiving 3f2a… 45.1 MiB of 100.0 MiB from NAS, 0 MB/s, starting"
        );
    }
}
