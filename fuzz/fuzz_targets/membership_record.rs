//! Membership records. Raw bytes first (what a peer sends); then the same bytes as the body
//! of a record signed with a fixed key, so that the statement decoder behind the signature
//! check is reached too. Decoded records go through the trust-set evaluation.

#![no_main]

use libfuzzer_sys::fuzz_target;
use photomesh_protocol::membership::{MAGIC, MembershipRecord, TrustSet};

/// `PAIRING.md`: the membership signature's context.
const CONTEXT: &[u8] = b"photomesh 2026-11-22 membership record v1\0";

fuzz_target!(|data: &[u8]| {
    let _ = MembershipRecord::decode(data);
    if let Ok(record) = MembershipRecord::decode(&photomesh_fuzz::signed(MAGIC, CONTEXT, data)) {
        assert_eq!(MembershipRecord::decode(&record.bytes).ok(), Some(record.clone()));
        let founder = record.signer;
        let trust = TrustSet::evaluate(&founder, &[record]);
        let _ = trust.members().count();
    }
});
