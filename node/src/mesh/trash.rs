//! The trash as the mesh agrees on it: lifecycle records (`protocol/LIFECYCLE.md`) signed by
//! full members, evaluated against the members into the index's `trash` table, and signed
//! here for `delete` and `trash`.

use std::collections::BTreeSet;

use photomesh_protocol::lifecycle::{Action, Lifecycle, LifecycleRecord, State, Statement, Target};
use photomesh_protocol::record::RecordId;

use super::{MeshError, require_full, trust_set};
use crate::home::Home;
use crate::index::TrashRow;

/// Rewrites the index's `trash` table from every lifecycle record held and the members now:
/// after a lifecycle record arrived, or the members changed. A record that does not decode
/// or whose signer does not count changes nothing.
pub fn refresh(home: &Home) -> Result<(), MeshError> {
    let records: Vec<LifecycleRecord> = home
        .index
        .lifecycle_records()?
        .iter()
        .filter_map(|bytes| LifecycleRecord::decode(bytes).ok())
        .collect();
    let trust = trust_set(home)?;
    let lifecycle = Lifecycle::evaluate(&records, &trust);
    // A purge counts from when this device first held it (the signer picks its timestamp, and
    // could backdate it past the hold); one this device signed counts at once.
    let arrivals = home.index.lifecycle_arrivals()?;
    let me = home.device.device_id();
    let mut purged_since: std::collections::BTreeMap<RecordId, u64> = Default::default();
    for r in records
        .iter()
        .filter(|r| r.statement.action == Action::Purge && trust.counts(&r.signer, &r.record_id))
    {
        let at = if r.signer == me {
            0
        } else {
            arrivals.get(&r.record_id).copied().unwrap_or(u64::MAX)
        };
        for t in &r.statement.targets {
            let since = purged_since.entry(t.record).or_insert(u64::MAX);
            *since = (*since).min(at);
        }
    }
    let rows: Vec<TrashRow> = lifecycle
        .entries()
        .filter_map(|(record_id, state, blob)| match state {
            State::Live => None,
            State::InTrash { since_ms } => Some(TrashRow {
                record_id,
                purged: false,
                since_ms,
                blob,
            }),
            State::Purged => Some(TrashRow {
                record_id,
                purged: true,
                since_ms: purged_since.get(&record_id).copied().unwrap_or(u64::MAX),
                blob,
            }),
        })
        .collect();
    home.index.set_trash(&rows)?;
    let released: Vec<_> = lifecycle
        .released()
        .flat_map(|(record, by)| by.iter().map(move |device| (record, *device)))
        .collect();
    home.index.set_released_by(&released)?;
    Ok(())
}

/// Tells the mesh which of its originals this device released (`free-up-space`) and which it
/// holds again since, by `Release` and `Return` records naming no blob: what it says
/// (`released_by`) is brought in line with its sources. Returns the records signed.
pub fn sync_releases(home: &Home, now_ms: u64) -> Result<u64, MeshError> {
    if home.keys.current().is_none() {
        return Ok(0);
    }
    let me = home.device.device_id();
    let said = home.index.released_by(Some(&me))?;
    let now: BTreeSet<RecordId> = home
        .index
        .released_photos()?
        .into_iter()
        .map(|(record, _)| record)
        .collect();
    let mut signed = 0;
    for (action, records) in [
        (
            Action::Release,
            now.difference(&said).copied().collect::<Vec<_>>(),
        ),
        (Action::Return, said.difference(&now).copied().collect()),
    ] {
        for chunk in records.chunks(photomesh_protocol::lifecycle::MAX_TARGETS) {
            require_full(home)?;
            let targets = chunk
                .iter()
                .map(|record| Target {
                    record: *record,
                    blob: None,
                })
                .collect();
            let record = LifecycleRecord::sign(
                &home.device,
                Statement {
                    action,
                    targets,
                    created_at_ms: now_ms,
                },
            )?;
            home.index
                .add_record(&record.record_id, &record.bytes, now_ms)?;
            signed += 1;
        }
    }
    if signed > 0 {
        refresh(home)?;
    }
    Ok(signed)
}

/// Signs a lifecycle record doing `action` to the photo records `records`, stores it and
/// brings the trash up to date. Each target carries its blob unless a photo record still live
/// (and not among `records`) has it too, so a vault drops no blob a live photo needs.
pub fn sign(
    home: &Home,
    action: Action,
    records: &[(RecordId, photomesh_protocol::seal::BlobId)],
    now_ms: u64,
) -> Result<LifecycleRecord, MeshError> {
    require_full(home)?;
    let named: BTreeSet<RecordId> = records.iter().map(|(r, _)| *r).collect();
    let mut targets = Vec::with_capacity(records.len());
    for (record, blob) in records {
        let shared = home.index.blob_live(blob, &named)?;
        targets.push(Target {
            record: *record,
            blob: (!shared).then_some(*blob),
        });
    }
    // Later than every record already naming these photos, so that an undo supersedes what
    // it undoes even when another device's clock ran ahead (`LIFECYCLE.md`).
    let newest = home
        .index
        .lifecycle_records()?
        .iter()
        .filter_map(|bytes| LifecycleRecord::decode(bytes).ok())
        .filter(|r| {
            r.statement
                .targets
                .iter()
                .any(|t| named.contains(&t.record))
        })
        .map(|r| r.timestamp_ms())
        .max();
    let created_at_ms = newest.map_or(now_ms, |t| now_ms.max(t.saturating_add(1)));
    let record = LifecycleRecord::sign(
        &home.device,
        Statement {
            action,
            targets,
            created_at_ms,
        },
    )?;
    home.index
        .add_record(&record.record_id, &record.bytes, now_ms)?;
    refresh(home)?;
    Ok(record)
}
