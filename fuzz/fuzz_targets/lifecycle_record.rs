//! Lifecycle records (trash, restore, purge, release), raw and behind a valid signature with
//! a fixed key, so that the statement decoder is reached.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::identity::DeviceKeys;
use photomesh_protocol::lifecycle::{LifecycleRecord, MAGIC};

/// `LIFECYCLE.md`: the lifecycle signature's context.
const CONTEXT: &[u8] = b"photomesh 2026-12-06 lifecycle record v1\0";

fn signed(body: &[u8]) -> Vec<u8> {
    let keys = DeviceKeys::from_secrets([7; 32], [8; 32]);
    let mut bytes = MAGIC.to_vec();
    bytes.push(1);
    bytes.extend_from_slice(&keys.signing_public());
    bytes.extend_from_slice(body);
    let mut message = CONTEXT.to_vec();
    message.extend_from_slice(&bytes);
    bytes.extend_from_slice(&keys.sign(&message));
    bytes
}

fuzz_target!(|data: &[u8]| {
    let _ = LifecycleRecord::decode(data);
    if let Ok(record) = LifecycleRecord::decode(&signed(data)) {
        let _ = record.timestamp_ms();
    }
});
