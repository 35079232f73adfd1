//! Lifecycle records (trash, restore, purge, release), raw and behind a valid signature with
//! a fixed key, so that the statement decoder is reached.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::lifecycle::{LifecycleRecord, MAGIC};

/// `LIFECYCLE.md`: the lifecycle signature's context.
const CONTEXT: &[u8] = b"photomesh 2026-12-06 lifecycle record v1\0";

fuzz_target!(|data: &[u8]| {
    let _ = LifecycleRecord::decode(data);
    if let Ok(record) = LifecycleRecord::decode(&photomesh_fuzz::signed(MAGIC, CONTEXT, data)) {
        let _ = record.timestamp_ms();
    }
});
