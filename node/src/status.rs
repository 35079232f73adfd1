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
        last_scan: home.index.last_scan()?,
    })
}
