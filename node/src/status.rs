//! What `photomesh status` reports about this device: who it is, its folders, its library,
//! and what the last scan found.

use crate::home::Home;
use crate::index::{FolderStats, IndexError, ScanSummary};

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
}

/// Gathers the status from the home's index.
pub fn status(home: &Home) -> Result<Status, IndexError> {
    Ok(Status {
        device_id: home.device.device_id().to_string(),
        device_name: home.device_name()?,
        home: home.path.display().to_string(),
        key_epoch: home.keys.current().map(|k| k.epoch()),
        folders: home.index.folder_stats()?,
        photo_records: home.index.photo_record_count()?,
        records: home.index.record_count()?,
        last_scan: home.index.last_scan()?,
    })
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
}

/// The newest record of every photo path (optionally in one folder), opened with this
/// device's keys. Records it cannot open are skipped and counted in the second value.
pub fn photos(home: &Home, folder: Option<&str>) -> Result<(Vec<PhotoEntry>, u64), IndexError> {
    let mut unreadable = 0;
    let mut out = Vec::new();
    for row in home.index.latest_photos(folder)? {
        match photomesh_protocol::record::Record::open(&row.sealed, &home.keys) {
            Ok(photomesh_protocol::record::Record::Photo(p)) => out.push(PhotoEntry {
                folder: p.folder,
                path: p.path,
                size: p.size,
                media_type: p.media_type.name(),
                capture_local_seconds: p.capture_time.map(|c| c.local_seconds),
                capture_utc_offset_minutes: p.capture_time.and_then(|c| c.utc_offset_minutes),
                blob_id: p.blob_id.to_hex(),
                record_id: row.record_id.to_hex(),
            }),
            Err(_) => unreadable += 1,
        }
    }
    Ok((out, unreadable))
}
