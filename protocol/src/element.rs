//! What every element of the replicated set shares, whatever its format: its ID (the BLAKE3
//! hash of its bytes, [`crate::record::record_id`]) and its timestamp, both read without any
//! key. Together they are the element's item in reconciliation (`reconcile::Item`), so every
//! device, vaults included, orders the set alike. This module sits above the formats
//! (`record`, `membership`, `lifecycle`), which know nothing of each other's bytes.

use crate::lifecycle::LifecycleRecord;
use crate::membership::MembershipRecord;
use crate::record::{RecordError, sealed_header};

/// The timestamp of any element of the replicated set — a sealed photo record, a membership
/// record or a lifecycle record — read without any key.
pub fn timestamp_of(bytes: &[u8]) -> Result<u64, RecordError> {
    if MembershipRecord::is_membership(bytes) {
        MembershipRecord::decode(bytes)
            .map(|r| r.timestamp_ms())
            .map_err(|e| RecordError::Decode(e.to_string()))
    } else if LifecycleRecord::is_lifecycle(bytes) {
        LifecycleRecord::decode(bytes)
            .map(|r| r.timestamp_ms())
            .map_err(|e| RecordError::Decode(e.to_string()))
    } else {
        sealed_header(bytes).map(|h| h.timestamp_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DeviceKeys;
    use crate::keys::LibraryKey;
    use crate::lifecycle::{Action, Statement as LifecycleStatement, Target};
    use crate::membership::{Introduce, Role, Statement};
    use crate::record::RecordId;
    use crate::record::tests::sample;

    #[test]
    fn every_element_of_the_set_has_a_keyless_timestamp() {
        let key = LibraryKey::new(1, [5; 32]);
        let (_, sealed) = sample().seal(&key).unwrap();
        assert_eq!(timestamp_of(&sealed), Ok(sample().timestamp_ms()));
        let device = DeviceKeys::from_secrets([1; 32], [2; 32]);
        let intro = MembershipRecord::sign(
            &device,
            Statement::Introduce(Introduce {
                signing_key: device.signing_public(),
                noise_key: device.noise_public(),
                role: Role::Full,
                name: "a".into(),
                created_at_ms: 42,
            }),
        )
        .unwrap();
        assert_eq!(timestamp_of(&intro.bytes), Ok(42));
        let trash = LifecycleRecord::sign(
            &device,
            LifecycleStatement {
                action: Action::Trash,
                targets: vec![Target {
                    record: RecordId([3; 32]),
                    blob: None,
                }],
                created_at_ms: 43,
            },
        )
        .unwrap();
        assert_eq!(timestamp_of(&trash.bytes), Ok(43));
        assert!(timestamp_of(b"pmmr garbage").is_err());
        assert!(timestamp_of(b"pmlc garbage").is_err());
        assert!(timestamp_of(b"junk").is_err());
    }
}
