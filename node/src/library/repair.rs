//! Repairing a damaged index (`photomesh repair-index`): a new index is built from what can
//! still be read of the damaged one and from the blob store, beside it
//! (`index.sqlite.repairing`), and put in its place only when done; the damaged file is moved
//! aside, never written to. A repair cut short leaves the damaged index where it was.
//!
//! The keys are files of their own and are kept. From the old index it takes, row by row and
//! stepping over damaged pages ([`Salvage`]), the settings (`meta`: the device's name, the
//! mesh's founder, the hold policy), the folders, the configured peers, where members were
//! last seen, and the sealed records. Each record goes through the path a record from a peer
//! takes ([`store_records`]): stored under the hash of its bytes (a row whose bytes do not
//! hash to its ID is damaged, and left out) and opened again into the query tables. Every
//! file of the blob store is verified against its name and registered with its outboard; one
//! that fails is quarantined, as `verify` does. What the old index knew of source files is
//! not taken: the next scan hashes every file and links it to its record again
//! (`library::scan`), and the node fetches from the mesh the records lost here.
//!
//! When the mesh's membership records are lost, the device cannot talk to its mesh: it founds
//! a mesh of its own and takes no other record, so that it can join its mesh again (a device
//! holding photo records cannot join), which sends them back.
//!
//! It runs only while no node runs on the home, and holds the node lock throughout. A sound
//! index (SQLite's full integrity check) is left alone.

use std::path::{Path, PathBuf};

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::membership::{MembershipRecord, Statement};
use photomesh_protocol::record::record_id;
use photomesh_protocol::seal::BlobId;

use crate::blob::store::BlobStoreError;
use crate::clock::now_ms;
use crate::home::{self, Home, HomeError};
use crate::index::{Folder, IndexError, Salvage, Salvaged, StoredRecord};
use crate::library::progress::Progress;
use crate::library::verify::{Finding, heal_blob};
use crate::mesh::{self, MeshError};
use crate::net::control::{ControlError, NodeLock};
use crate::replicate::records::store_records;

/// Where the new index is built, in the home, until it is put in place.
const BUILDING: &str = "index.sqlite.repairing";
/// Records re-added per transaction.
const RECORDS_PER_COMMIT: usize = 1024;
/// Blobs registered per transaction.
const BLOBS_PER_COMMIT: usize = 256;

/// Why the repair could not run (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// A node runs on the home.
    #[error(
        "a photomesh node runs on this home ({0}); stop it first, then run \
         `photomesh repair-index` again (the index must not change under it)"
    )]
    NodeRunning(PathBuf),
    /// The node lock could not be taken.
    #[error(transparent)]
    Lock(ControlError),
    /// The home could not be opened, or the new index made.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The new index could not be written.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The new index's mesh could not be set up.
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// The blob store could not be listed.
    #[error(transparent)]
    BlobStore(#[from] BlobStoreError),
}

/// What `repair-index` did.
#[derive(Debug)]
pub enum Repaired {
    /// The index passed SQLite's integrity check: nothing was changed.
    Sound(PathBuf),
    /// A new index was built.
    Rebuilt(Box<RepairReport>),
}

/// What a rebuilt index holds, and what could not be recovered.
#[derive(Debug, Default, serde::Serialize)]
pub struct RepairReport {
    /// The new index.
    pub index: PathBuf,
    /// Where the old index (with its WAL) was moved; `None` when there was none.
    pub moved_to: Option<PathBuf>,
    /// Why nothing could be read from the old index, when nothing could.
    pub unreadable: Option<String>,
    /// Records re-added, checked against their IDs.
    pub records_recovered: u64,
    /// Records that could not be read, or did not check out.
    pub records_lost: u64,
    /// Whether the records table could not be read to its end (more may be lost than
    /// counted).
    pub records_cut_short: bool,
    /// Records that were read and check out but were not taken, because the mesh's
    /// membership was lost (see [`RepairReport::new_mesh`]).
    pub records_held_back: u64,
    /// Of the records recovered, photo records this device can open.
    pub photos_recovered: u64,
    /// The folders recovered.
    pub folders: Vec<Folder>,
    /// Whether the folders could not all be read.
    pub folders_lost: bool,
    /// The folders this device had recorded photos from that are not configured now: to
    /// add again (only said when folders were lost).
    pub folders_to_add: Vec<String>,
    /// Settings (`meta`) recovered.
    pub settings_recovered: u64,
    /// Whether some settings could not be read.
    pub settings_lost: bool,
    /// Configured peer addresses recovered.
    pub peers_recovered: u64,
    /// Whether the mesh's membership was lost: the device now founds a mesh of its own.
    pub new_mesh: bool,
    /// The device's name.
    pub name: String,
    /// Whether it was recovered (else it is the name given, or a placeholder).
    pub name_recovered: bool,
    /// Blobs of the blob store verified and registered.
    pub blobs_registered: u64,
    /// Blobs that failed their check (quarantined) or could not be read.
    pub blob_findings: Vec<Finding>,
}

impl RepairReport {
    /// Whether everything the old index held was recovered and every blob checked out.
    pub fn is_complete(&self) -> bool {
        self.unreadable.is_none()
            && self.records_lost == 0
            && !self.records_cut_short
            && !self.folders_lost
            && !self.settings_lost
            && !self.new_mesh
            && self.blob_findings.is_empty()
    }
}

/// Set in `meta` by a repair that lost records: the running node syncs records with a member
/// before it rescans the folders.
pub const CATCH_UP_BEFORE_SCAN: &str = "catch_up_before_scan";

/// How long a node waits for a member to send lost records back before it rescans anyway.
pub const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Repairs the index of the home at `home_path`. `fallback_name` names the device if its
/// name cannot be recovered (else it is "repaired device").
pub fn repair_index(
    home_path: &Path,
    fallback_name: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<Repaired, RepairError> {
    let _lock = NodeLock::take(home_path).map_err(|e| match e {
        ControlError::AlreadyRunning(home) => RepairError::NodeRunning(home),
        other => RepairError::Lock(other),
    })?;
    let index_path = home::index_file(home_path);
    if let Ok(old) = Salvage::open(&index_path)
        && old.integrity_check()?.is_none()
    {
        return Ok(Repaired::Sound(index_path));
    }
    // The new index is built beside the old one and put in place only when done: a repair
    // cut short leaves the damaged index where it was, and the next one starts again.
    let building = home_path.join(BUILDING);
    for leftover in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{leftover}", building.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => tracing::info!("removed {}, left by a repair cut short", file.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(HomeError::Io { path: file, source }.into()),
        }
    }
    let home = Home::with_new_index(home_path, &building)?;
    let mut report = RepairReport {
        index: index_path.clone(),
        ..RepairReport::default()
    };
    let old = if index_path.exists() {
        match Salvage::open(&index_path) {
            Ok(old) => Some(old),
            Err(IndexError::Corrupt { detail, .. }) => {
                report.unreadable = Some(detail);
                None
            }
            Err(e) => {
                report.unreadable = Some(e.to_string());
                None
            }
        }
    } else {
        report.unreadable = Some("there was no index file".into());
        None
    };
    match &old {
        Some(old) => {
            salvage_settings(&home, old, &mut report)?;
            salvage_membership(&home, old)?;
        }
        None => {
            report.settings_lost = true;
            report.folders_lost = true;
        }
    }
    settle_membership(&home, fallback_name, &mut report)?;
    if let Some(old) = &old {
        salvage_records(&home, old, &mut report, progress)?;
    }
    if report.folders_lost {
        let configured: Vec<&str> = report.folders.iter().map(|f| f.label.as_str()).collect();
        report.folders_to_add = home
            .index
            .folders_added_by(&home.device.device_id())?
            .into_iter()
            .filter(|label| !configured.contains(&label.as_str()))
            .collect();
    }
    register_blobs(&home, &mut report, progress)?;
    if report.records_lost > 0 || report.records_cut_short {
        // Records lost here may still be on the other members: the node waits for them before
        // its first rescan, which would otherwise record their files anew.
        home.index.set_meta(CATCH_UP_BEFORE_SCAN, "1")?;
    }
    // Both closed before the files move.
    drop((home, old));
    report.moved_to = home::replace_index(home_path, &building, now_ms())?;
    Ok(Repaired::Rebuilt(Box::new(report)))
}

/// Takes the settings, folders and peers that can be read from the old index.
fn salvage_settings(
    home: &Home,
    old: &Salvage,
    report: &mut RepairReport,
) -> Result<(), RepairError> {
    let meta = old.meta();
    report.settings_lost = !meta.is_whole();
    let folders = old.folders();
    report.folders_lost = !folders.is_whole();
    let peers = old.peers();
    let seen = old.devices_seen();
    let learned = old.learned_addresses();
    home.index.transaction(|ix| -> Result<(), IndexError> {
        for (key, value) in &meta.rows {
            ix.set_meta(key, value)?;
        }
        for (folder, added_at_ms) in &folders.rows {
            if ix.add_folder(folder, (*added_at_ms).max(0) as u64)? {
                report.folders.push(folder.clone());
            }
        }
        for (address, added_at_ms) in &peers.rows {
            ix.add_peer(address, (*added_at_ms).max(0) as u64)?;
        }
        for (device, last_seen_ms, address, has_aes) in &seen.rows {
            if let Some(device) = device_id(device) {
                let when = (*last_seen_ms).max(0) as u64;
                ix.set_seen(&device, when, address.as_deref(), *has_aes)?;
            }
        }
        for (device, address, at_ms) in &learned.rows {
            if let Some(device) = device_id(device) {
                ix.learn_address(&device, address, (*at_ms).max(0) as u64)?;
            }
        }
        Ok(())
    })?;
    report.settings_recovered = meta.rows.len() as u64;
    report.peers_recovered = peers.rows.len() as u64;
    Ok(())
}

/// Takes the membership records that can be read (a first pass over the records: whether
/// the mesh is recovered decides what happens to the others).
fn salvage_membership(home: &Home, old: &Salvage) -> Result<(), RepairError> {
    let mut membership = Vec::new();
    old.records(|chunk| {
        membership.extend(chunk.into_iter().filter_map(|(id, record)| match record {
            StoredRecord::Sealed(bytes)
                if MembershipRecord::is_membership(&bytes) && valid(&id, &bytes) =>
            {
                Some(bytes)
            }
            _ => None,
        }));
        Ok::<_, IndexError>(())
    })?;
    store_records(home, &membership)?;
    Ok(())
}

/// Takes every record that can be read and checks out. When the mesh was lost they are only
/// counted, not taken: a device holding photo records cannot join a mesh, and joining again
/// brings them back from the mesh (the damaged file keeps them too).
fn salvage_records(
    home: &Home,
    old: &Salvage,
    report: &mut RepairReport,
    progress: &mut dyn Progress,
) -> Result<(), RepairError> {
    let take = !report.new_mesh;
    let expected = old.last_record_row().unwrap_or(0).max(0) as u64;
    progress.start("records", expected, 0);
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let flush = |pending: &mut Vec<Vec<u8>>, report: &mut RepairReport| {
        if take {
            let stored = store_records(home, &pending[..])? as u64;
            report.records_recovered += stored;
            report.records_lost += pending.len() as u64 - stored;
        } else {
            report.records_held_back += pending.len() as u64;
        }
        pending.clear();
        Ok::<_, IndexError>(())
    };
    let walked: Salvaged<()> = old.records(|chunk| {
        progress.advance(chunk.len() as u64, 0);
        for (id, record) in chunk {
            // One kept as its photo's fields is sealed again: a damaged field gives another
            // ID, and the record is lost like one whose bytes were damaged.
            match record.sealed(&home.keys) {
                Ok(bytes) if valid(&id, &bytes) => pending.push(bytes),
                _ => report.records_lost += 1,
            }
        }
        if pending.len() >= RECORDS_PER_COMMIT {
            flush(&mut pending, report)?;
        }
        Ok::<_, IndexError>(())
    })?;
    flush(&mut pending, report)?;
    progress.finish();
    report.records_lost += walked.unreadable;
    report.records_cut_short = walked.cut_short;
    report.photos_recovered = home.index.photo_record_count()?;
    Ok(())
}

/// Whether a row of the old `records` table checks out: its bytes are what its ID names (a
/// damaged row's are not), and a membership record's signature verifies.
fn valid(id: &[u8; 32], bytes: &[u8]) -> bool {
    record_id(bytes).0 == *id
        && (!MembershipRecord::is_membership(bytes) || MembershipRecord::decode(bytes).is_ok())
}

/// Makes sure the new index knows its mesh and its name: the founder recovered (from `meta`,
/// else from the founder's own introduction among the records), or, when the membership is
/// lost, a new mesh of one, which the device leaves by joining again.
fn settle_membership(
    home: &Home,
    fallback_name: Option<&str>,
    report: &mut RepairReport,
) -> Result<(), RepairError> {
    let records = mesh::records(home)?;
    if !has_members(home) {
        let founders: Vec<DeviceId> = records
            .iter()
            .filter(|r| matches!(&r.statement, Statement::Introduce(i) if i.signing_key == r.signer_key))
            .map(|r| r.signer)
            .collect();
        if let [founder] = founders.as_slice() {
            home.index.set_meta("founder", &founder.to_string())?;
        }
    }
    let own_name = mesh::trust_set(home)
        .ok()
        .and_then(|t| t.get(&home.device.device_id()).map(|m| m.name.clone()));
    let recovered = Some(home.device_name()?)
        .filter(|name| !name.is_empty())
        .or(own_name);
    report.name_recovered = recovered.is_some();
    let name = recovered
        .or_else(|| fallback_name.map(str::to_owned))
        .unwrap_or_else(|| "repaired device".to_owned());
    home.index.set_meta("device_name", &name)?;
    report.name = name.clone();
    if home.index.meta("created_at_ms")?.is_none() {
        home.index
            .set_meta("created_at_ms", &now_ms().to_string())?;
    }
    if !has_members(home) {
        mesh::found(home, &name, now_ms())?;
        report.new_mesh = true;
    }
    Ok(())
}

/// Whether the index names a founder whose records make a mesh with members.
fn has_members(home: &Home) -> bool {
    mesh::trust_set(home).is_ok_and(|t| t.members().next().is_some())
}

/// Verifies every blob of the store and registers the good ones as stored; quarantines the
/// others.
fn register_blobs(
    home: &Home,
    report: &mut RepairReport,
    progress: &mut dyn Progress,
) -> Result<(), RepairError> {
    let stored = home.blobs.list()?;
    progress.start(
        "blobs",
        stored.len() as u64,
        stored.iter().map(|(_, len)| len).sum(),
    );
    let mut good: Vec<(BlobId, u64, Vec<u8>)> = Vec::new();
    for (blob_id, len) in stored {
        match home.blobs.outboard_verified(&blob_id) {
            Ok((sealed_len, outboard)) => good.push((blob_id, sealed_len, outboard)),
            Err(e) => report
                .blob_findings
                .extend(heal_blob(home, &blob_id, Err(e))?),
        }
        progress.advance(1, len);
        if good.len() >= BLOBS_PER_COMMIT {
            commit_blobs(home, &mut good, report)?;
        }
    }
    commit_blobs(home, &mut good, report)?;
    progress.finish();
    Ok(())
}

fn commit_blobs(
    home: &Home,
    good: &mut Vec<(BlobId, u64, Vec<u8>)>,
    report: &mut RepairReport,
) -> Result<(), IndexError> {
    home.index.add_stored_blobs(
        good.iter()
            .map(|(id, len, outboard)| (id, *len, outboard.as_slice())),
    )?;
    report.blobs_registered += good.len() as u64;
    good.clear();
    Ok(())
}

fn device_id(bytes: &[u8]) -> Option<DeviceId> {
    Some(DeviceId::from_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::index::testing::{
        count, damage_leaves_where, damage_record_pages, damage_table_leaves,
    };
    use crate::library::progress::Silent;
    use crate::library::{folders, scan};

    /// A device with a folder of `photos` sample photos, scanned, and one good and one
    /// rotten blob in its store; closed. Returns its home and how many records it holds.
    fn device(dir: &Path, photos: usize) -> (PathBuf, u64) {
        let path = dir.join("home");
        let home = crate::mesh::create_device(&path, "laptop", None, 1).unwrap();
        let pics = dir.join("photos");
        crate::demo::samples::write_library(&pics, photos, 7).unwrap();
        folders::add(&home, &pics, Some("camera".into())).unwrap();
        scan::scan(&home, &mut Silent).unwrap();
        let good = b"a blob another device sent".to_vec();
        let good_id = BlobId(*blake3::hash(&good).as_bytes());
        home.blobs.put(&good_id, &good[..]).unwrap();
        home.index
            .add_stored_blobs([(&good_id, good.len() as u64, &[][..])])
            .unwrap();
        let rotten = home.blobs.path_of(&BlobId([7; 32]));
        fs::create_dir_all(rotten.parent().unwrap()).unwrap();
        fs::write(&rotten, b"not what its name says").unwrap();
        (path, home.index.record_count().unwrap())
    }

    fn rebuilt(repaired: Repaired) -> RepairReport {
        match repaired {
            Repaired::Rebuilt(report) => *report,
            Repaired::Sound(path) => panic!("{} was found sound", path.display()),
        }
    }

    #[test]
    fn a_damaged_index_is_rebuilt_from_what_can_be_read_and_the_blob_store() {
        let dir = tempfile::tempdir().unwrap();
        // Enough photos for several pages of records, each record kept as its fields.
        let (path, records) = device(dir.path(), 400);
        let lost = damage_record_pages(&home::index_file(&path), 2) as u64;
        // What a repair cut short left behind is started over.
        fs::write(path.join(BUILDING), b"half a new index").unwrap();
        let report = rebuilt(repair_index(&path, None, &mut Silent).unwrap());
        assert!(!path.join(BUILDING).exists());
        assert_eq!(report.records_lost, lost, "{report:?}");
        assert_eq!(report.records_recovered, records - lost, "{report:?}");
        assert!(!report.records_cut_short && !report.new_mesh && report.name_recovered);
        assert_eq!(report.folders.len(), 1);
        assert!(!report.folders_lost);
        assert_eq!(report.blobs_registered, 1);
        assert_eq!(report.blob_findings.len(), 1, "{report:?}");
        assert!(!report.is_complete());
        let moved = report.moved_to.clone().unwrap();
        assert!(moved.is_file(), "the damaged index is kept");
        assert!(
            path.join("blobs/quarantine")
                .join(BlobId([7; 32]).to_hex())
                .is_file()
        );

        let home = Home::open(&path).unwrap();
        assert_eq!(home.device_name().unwrap(), "laptop");
        assert_eq!(home.index.record_count().unwrap(), records - lost);
        assert_eq!(home.index.stored_blob_count().unwrap(), 1);
        assert_eq!(
            crate::mesh::my_role(&home).unwrap(),
            Some(photomesh_protocol::membership::Role::Full)
        );
        rescan_records_the_lost(&home, lost, records);
    }

    /// The scan after a repair links every file whose record was recovered; only the photos
    /// whose records were lost (`lost` of `records`) are recorded again, and all checks out.
    fn rescan_records_the_lost(home: &Home, lost: u64, records: u64) {
        let again = scan::scan(home, &mut Silent).unwrap();
        assert_eq!(again.new_files, lost, "{again:?}");
        assert_eq!(home.index.record_count().unwrap(), records);
        assert!(
            crate::library::verify::verify(home, &mut Silent)
                .unwrap()
                .is_clean()
        );
    }

    #[test]
    fn a_damaged_photos_page_loses_the_records_kept_as_its_fields_and_a_scan_brings_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let (path, records) = device(dir.path(), 400);
        // Every photo record here is kept as its fields, one `photo_rows` row each: a damaged
        // page of them is as many records lost, however whole their `records` rows are.
        let lost = damage_table_leaves(&home::index_file(&path), "photo_rows", 1) as u64;
        assert!(lost > 0);
        let report = rebuilt(repair_index(&path, None, &mut Silent).unwrap());
        assert_eq!(report.records_lost, lost, "{report:?}");
        assert_eq!(report.records_recovered, records - lost, "{report:?}");
        rescan_records_the_lost(&Home::open(&path).unwrap(), lost, records);
    }

    #[test]
    fn when_the_membership_is_lost_the_other_records_are_held_back_so_the_device_can_rejoin() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = device(dir.path(), 400);
        // The page with the founding record (`pmmr…`).
        damage_leaves_where(&home::index_file(&path), 1, |page| count(page, b"pmmr") > 0);
        let report = rebuilt(repair_index(&path, None, &mut Silent).unwrap());
        assert!(report.new_mesh, "{report:?}");
        assert!(
            report.records_held_back > 0 && report.records_recovered == 0,
            "{report:?}"
        );
        let home = Home::open(&path).unwrap();
        // Fresh enough to join: no photo record, a mesh of one.
        assert_eq!(home.index.photo_record_count().unwrap(), 0);
        assert_eq!(
            crate::mesh::founder(&home).unwrap(),
            home.device.device_id()
        );
        assert_eq!(home.device_name().unwrap(), "laptop");
    }

    #[test]
    fn a_sound_index_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = device(dir.path(), 2);
        let index = home::index_file(&path);
        let before = fs::read(&index).unwrap();
        assert!(matches!(
            repair_index(&path, None, &mut Silent).unwrap(),
            Repaired::Sound(_)
        ));
        assert_eq!(fs::read(&index).unwrap(), before);
    }

    #[test]
    fn from_an_unreadable_index_only_the_keys_and_blobs_are_kept_and_a_new_mesh_made() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = device(dir.path(), 2);
        let device_id = Home::open(&path).unwrap().device.device_id();
        fs::write(home::index_file(&path), vec![0x5a; 16384]).unwrap();
        let report = rebuilt(repair_index(&path, Some("laptop again"), &mut Silent).unwrap());
        assert!(report.unreadable.is_some(), "{report:?}");
        assert!(report.new_mesh && !report.name_recovered && report.folders_lost);
        assert_eq!(report.name, "laptop again");
        assert_eq!(report.blobs_registered, 1);
        let home = Home::open(&path).unwrap();
        assert_eq!(home.device.device_id(), device_id, "the keys are kept");
        assert_eq!(
            crate::mesh::founder(&home).unwrap(),
            device_id,
            "a mesh of its own, to leave by joining again"
        );
        assert!(home.index.folders().unwrap().is_empty());
    }

    #[test]
    fn nothing_is_touched_while_a_node_holds_the_home() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = device(dir.path(), 2);
        let index = home::index_file(&path);
        fs::write(&index, vec![0x5a; 16384]).unwrap();
        let _node = NodeLock::take(&path).unwrap();
        let err = repair_index(&path, None, &mut Silent).unwrap_err();
        assert!(matches!(err, RepairError::NodeRunning(_)), "{err}");
        assert_eq!(fs::read(&index).unwrap(), vec![0x5a; 16384]);
    }
}
