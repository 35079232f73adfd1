//! Restore drills: every backup guide says to test your restores. A drill fetches a random
//! sample of photos from each other device — vaults included — over the running node's
//! connections, and checks each as a restore would: the bao stream verified against the
//! blob ID, the blob opened with the library key and its plaintext hash checked, its size
//! and capture time compared with the record. Nothing is written to any folder or to the
//! blob store; the result is kept per device for `status`.
//!
//! A photo is drawn from the blobs a device is known to hold (its last held-blob set) by
//! taking the first one at or after a random blob ID, so a sample costs a few index
//! lookups however many photos there are. Photos larger than [`MAX_SIZE`] are not drawn:
//! they would be held whole in memory, and the device's own scrub checks them.

use std::collections::BTreeMap;

use photomesh_protocol::identity::DeviceId;
use photomesh_protocol::messages::{BlobHeader, Request};
use photomesh_protocol::record::PhotoRecord;
use photomesh_protocol::seal::BlobId;
use serde::{Deserialize, Serialize};

use crate::home::Home;
use crate::index::IndexError;
use crate::net::frame::{self, NetError};
use crate::replicate::fetcher::FetchError;
use crate::replicate::receive::{Chunks, decode_in_memory, encoded_len_limit};
use crate::replicate::transfers::Transfers;

/// Photos checked on each device when no sample size is given.
pub const DEFAULT_SAMPLE: usize = 8;
/// The largest photo a drill draws (its plaintext size).
pub const MAX_SIZE: u64 = 64 << 20;
/// The `meta` key that holds the last drill of each device (JSON).
const META: &str = "drills";

/// One device's drill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDrill {
    /// Its device ID.
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// When the drill ran (ms since the epoch).
    pub at_ms: u64,
    /// Photos fetched and checked.
    pub checked: u64,
    /// Of those, photos that passed every check.
    pub passed: u64,
    /// What failed, one line per photo (`folder/path: why`).
    pub problems: Vec<String>,
    /// Why the device could not be drilled at all (not connected), if so.
    pub unreachable: Option<String>,
}

impl DeviceDrill {
    /// Whether the device passed: reached, and every photo checked came back right.
    pub fn passed(&self) -> bool {
        self.unreachable.is_none() && self.problems.is_empty()
    }
}

/// A photo to check: where it is, and its record.
struct Drawn {
    blob_id: BlobId,
    photo: PhotoRecord,
}

/// Draws up to `n` distinct photos whose blob `device` holds: at random points first, then
/// (when those met the same blobs again) in blob order from the start, so a sample at least
/// as large as the holdings takes every photo.
fn draw(home: &Home, device: &DeviceId, n: usize) -> Result<Vec<Drawn>, IndexError> {
    let mut drawn = BTreeMap::new();
    let take = |drawn: &mut BTreeMap<BlobId, PhotoRecord>,
                from: &[u8; 32]|
     -> Result<Option<BlobId>, IndexError> {
        let Some((blob_id, record)) = home.index.held_photo_from(device, from, MAX_SIZE)? else {
            return Ok(None);
        };
        if let Ok(photo) = record.open_photo(&home.keys) {
            drawn.entry(blob_id).or_insert(photo);
        }
        Ok(Some(blob_id))
    };
    for _ in 0..n * 2 {
        let mut from = [0u8; 32];
        if getrandom::fill(&mut from).is_err() {
            from = blake3::hash(&crate::clock::now_ms().to_le_bytes()).into();
        }
        if take(&mut drawn, &from)?.is_none() || drawn.len() >= n {
            break;
        }
    }
    let mut from = [0u8; 32];
    while drawn.len() < n {
        let Some(blob) = take(&mut drawn, &from)? else {
            break;
        };
        match next_id(&blob.0) {
            // Past the last blob the walk wraps to the first: every blob was seen.
            Some(next) if next > from => from = next,
            _ => break,
        }
    }
    Ok(drawn
        .into_iter()
        .take(n)
        .map(|(blob_id, photo)| Drawn { blob_id, photo })
        .collect())
}

/// The ID right after `id` (big-endian), `None` after the last.
fn next_id(id: &[u8; 32]) -> Option<[u8; 32]> {
    let mut next = *id;
    for byte in next.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            return Some(next);
        }
    }
    None
}

/// Runs a drill of `sample` photos over each of `links` (each device with its connection, or
/// why there is none), records the results and returns them.
pub async fn drill(
    home: &tokio::sync::Mutex<Home>,
    transfers: &Transfers,
    links: Vec<(DeviceId, String, Result<quinn::Connection, String>)>,
    sample: usize,
) -> Result<Vec<DeviceDrill>, IndexError> {
    let mut results = Vec::new();
    for (device, name, connection) in links {
        let mut result = DeviceDrill {
            device_id: device.to_string(),
            name,
            at_ms: crate::clock::now_ms(),
            checked: 0,
            passed: 0,
            problems: Vec::new(),
            unreachable: None,
        };
        match connection {
            Err(why) => result.unreachable = Some(why),
            Ok(connection) => {
                let (drawn, keys) = {
                    let home = home.lock().await;
                    (draw(&home, &device, sample)?, home.keys.clone())
                };
                for d in drawn {
                    result.checked += 1;
                    match check(&connection, transfers, &keys, &d).await {
                        Ok(()) => result.passed += 1,
                        Err(why) => result
                            .problems
                            .push(format!("{}/{}: {why}", d.photo.folder, d.photo.path)),
                    }
                }
            }
        }
        results.push(result);
    }
    record(&*home.lock().await, &results)?;
    Ok(results)
}

/// Fetches one photo from the device at the other end of `connection` and checks it.
async fn check(
    connection: &quinn::Connection,
    transfers: &Transfers,
    keys: &photomesh_protocol::keys::KeyRing,
    d: &Drawn,
) -> Result<(), String> {
    let blob_id = d.blob_id;
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| frame::describe_lost(&e))?;
    frame::write_frame(
        &mut send,
        &Request::Blob {
            blob_id: blob_id.0,
            from_group: 0,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let _ = send.finish();
    let sealed_len = match frame::read_frame::<BlobHeader>(&mut recv)
        .await
        .map_err(|e| e.to_string())?
    {
        BlobHeader::NotHere => return Err("the device no longer holds it".into()),
        BlobHeader::Follows { sealed_len } => sealed_len,
    };
    if sealed_len > MAX_SIZE * 2 {
        return Err(format!(
            "it says the blob is {sealed_len} bytes, far more than the photo"
        ));
    }
    let limit = encoded_len_limit(sealed_len) as usize;
    let mut encoded = Chunks::default();
    while let Some(chunk) = recv
        .read_chunk(usize::MAX, true)
        .await
        .map_err(|e| NetError::Connection(format!("{e}")).to_string())?
    {
        encoded.len += chunk.bytes.len();
        if encoded.len > limit {
            return Err("the device sent more than the blob's encoding".into());
        }
        encoded.chunks.push_back(chunk.bytes);
    }
    let transfer = transfers.start(blob_id, sealed_len, 0);
    let (keys, photo) = (keys.clone(), d.photo.clone());
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut data = crate::blob::direct::Aligned::default();
        data.set_len(sealed_len as usize);
        decode_in_memory(encoded, &blob_id, &transfer, &mut data).map_err(|e| match e {
            FetchError::Bad(_, why) => format!("the device sent bad data: {why}"),
            FetchError::NotHere => "the device no longer holds it".to_owned(),
            FetchError::Sync(e) => format!("the transfer broke off: {e}"),
        })?;
        let mut plain = Vec::with_capacity(photo.size as usize);
        crate::blob::sealed::open_blob(
            data.bytes(),
            &keys,
            &blob_id,
            &photo.plaintext_hash,
            &mut plain,
        )
        .map_err(|e| format!("it does not open as its record says: {e}"))?;
        if plain.len() as u64 != photo.size {
            return Err(format!(
                "{} bytes, the record says {}",
                plain.len(),
                photo.size
            ));
        }
        let taken = crate::library::capture::capture_time_in(&plain, photo.media_type);
        if taken != photo.capture_time {
            return Err(format!(
                "capture time {taken:?}, the record says {:?}",
                photo.capture_time
            ));
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Keeps each device's latest drill in `meta`.
fn record(home: &Home, results: &[DeviceDrill]) -> Result<(), IndexError> {
    let mut all: BTreeMap<String, DeviceDrill> = last(home)?
        .into_iter()
        .map(|d| (d.device_id.clone(), d))
        .collect();
    for r in results {
        all.insert(r.device_id.clone(), r.clone());
    }
    let json = serde_json::to_string(&all.into_values().collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into());
    home.index.set_meta(META, &json)?;
    home.index
        .set_meta(LAST_META, &crate::clock::now_ms().to_string())
}

/// The `meta` key that notes when the last drill ran.
const LAST_META: &str = "drill_last_ms";

/// When the last drill ran, if one did.
pub fn last_run_ms(home: &Home) -> Result<Option<u64>, IndexError> {
    Ok(home.index.meta(LAST_META)?.and_then(|t| t.parse().ok()))
}

/// The latest drill of each device drilled (callers look up the members they show).
pub fn last(home: &Home) -> Result<Vec<DeviceDrill>, IndexError> {
    Ok(home
        .index
        .meta(META)?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}
