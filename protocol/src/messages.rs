//! Application messages that devices exchange over nQUIC streams, and their framing.
//!
//! Every message is postcard-encoded behind a 4-byte big-endian length, and no frame may be
//! longer than [`MAX_FRAME_LEN`]: a reader learns the length first and refuses an oversized
//! frame before it buffers it. Decoding any bytes gives a message or an error, never a panic.
//!
//! The pairing exchange (specified in `PAIRING.md`), and between members the [`Request`] that
//! opens every stream: hello, record and blob-set reconciliation, record and blob fetches
//! (a whole blob, or a range of its chunk groups so that several peers can send one blob at
//! once), and the announcement that something new was recorded.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::identity::DeviceId;
use crate::keys::KeyRing;
use crate::membership::Role;

/// The longest frame accepted, in bytes (length prefix not counted).
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Domain separation for the joiner's proof of its signing key.
pub const JOIN_PROOF_CONTEXT: &[u8] = b"photomesh 2026-11-22 join proof v1\0";

/// The joiner's first and only message in a pairing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The joiner's Ed25519 public key.
    pub signing_key: [u8; 32],
    /// The joiner's name for itself.
    pub name: String,
    /// Ed25519 signature by `signing_key` over [`join_proof_message`]: binds the signing key
    /// to the Noise key the joiner connected with, for this inviter.
    #[serde(with = "serde_bytes_64")]
    pub proof: [u8; 64],
}

/// What the joiner signs: the context, its own Noise key, the inviter's Noise key.
pub fn join_proof_message(joiner_noise_key: &[u8; 32], inviter_noise_key: &[u8; 32]) -> Vec<u8> {
    let mut m = JOIN_PROOF_CONTEXT.to_vec();
    m.extend_from_slice(joiner_noise_key);
    m.extend_from_slice(inviter_noise_key);
    m
}

/// The inviter's answer to a [`JoinRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinResponse {
    /// The joiner is in.
    Welcome {
        /// The founder of the mesh: the anchor of its membership.
        founder: DeviceId,
        /// Every membership record the inviter holds, including the joiner's introduction.
        membership: Vec<Vec<u8>>,
        /// The role the joiner was given.
        role: Role,
        /// The library keys, for a `full` joiner only.
        library_keys: Option<KeyRing>,
    },
    /// The joiner was refused.
    Refused {
        /// Why, in words for the joiner's user.
        reason: String,
    },
}

/// The joiner's last word in a pairing, after it checked and stored the [`JoinResponse`]:
/// the inviter records the new member only when it says `Joined`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinConfirm {
    /// The joiner stored the welcome: it is a member now.
    Joined,
    /// The joiner found the welcome invalid and stored nothing.
    Declined {
        /// Why, in words for the inviter's user.
        reason: String,
    },
}

/// The first message on a connection between members, each way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's device ID.
    pub device: DeviceId,
    /// The sender's name.
    pub name: String,
    /// Whether the sender has AES instructions (picks the suite next time).
    pub has_aes: bool,
    /// Every membership record the sender holds, so that introductions and revocations
    /// spread with every conversation.
    pub membership: Vec<Vec<u8>>,
    /// Where the sender last reached other members (`HOST:PORT`), so that a device learns
    /// how to reach members it has never met. At most [`MAX_ADDRESSES`].
    pub addresses: Vec<(DeviceId, String)>,
    /// Since when every copy the sender holds was verified (ms since the epoch, by its
    /// clock): its copies count towards the replica goal while this is within the scrub
    /// period. `None` from a device that holds nothing or does not say (a ping).
    pub verified_since: Option<u64>,
    /// How much the sender stores and has room for, so every member's `status` shows who is
    /// running out; `None` when it could not tell.
    pub storage: Option<StorageReport>,
}

/// A member's storage, as its hello tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageReport {
    /// Bytes of blobs it stores.
    pub used: u64,
    /// Free bytes on its blob store's disk.
    pub free: u64,
    /// The most it may store (`[storage] max_bytes`), if capped.
    pub quota: Option<u64>,
}

impl StorageReport {
    /// How many more bytes of blobs it has room for: its free space, within its quota.
    pub fn room(&self) -> u64 {
        match self.quota {
            Some(quota) => self.free.min(quota.saturating_sub(self.used)),
            None => self.free,
        }
    }

    /// Whether it is running out: less than a tenth of what it could hold (what it stores
    /// plus its room) is left.
    pub fn is_low(&self) -> bool {
        let room = self.room();
        room < self.used.saturating_add(room) / 10
    }
}

/// The most member addresses one [`Hello`] carries.
pub const MAX_ADDRESSES: usize = 256;

/// What a member asks for when it opens a stream: the first frame of every stream between
/// members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Greet: the answer is the other side's [`Hello`].
    Hello(Hello),
    /// Reconcile the record sets: both sides then exchange [`ReconcileFrame`]s until the
    /// session ends (`reconcile::Session`; the opener initiates).
    Reconcile,
    /// Send these records (by record ID): the answer is [`Records`] frames, then the stream
    /// ends. At most [`MAX_FETCH`] IDs.
    Fetch(Vec<[u8; 32]>),
    /// Reconcile the sets of blobs each side holds (items with timestamp 0 and the blob ID:
    /// equal holdings are equal sets), like [`Request::Reconcile`].
    ReconcileBlobs,
    /// Send a blob: the answer is a [`BlobHeader`] frame and then, if the blob is there, its
    /// BLAKE3 verified-streaming (bao) encoding with 16 KiB chunk groups, from chunk group
    /// `from_group` to the end, until the stream ends.
    Blob {
        /// The blob.
        blob_id: [u8; 32],
        /// The first chunk group wanted (0 for the whole blob; more to resume).
        from_group: u64,
    },
    /// The sender recorded something new (photos, membership): pull from it now rather
    /// than at the next interval. No answer: the opener finishes its side after this frame,
    /// and the receiver finishes its own without writing anything.
    Announce,
    /// Send part of a blob: the answer is a [`BlobHeader`] frame and then, if the blob is
    /// there, the bao encoding (16 KiB chunk groups) of chunk groups `first_group` up to, not
    /// including, `end_group` (clipped to the blob), until the stream ends. A receiver asks
    /// several peers for different ranges of one blob and verifies each against the blob ID.
    BlobRange {
        /// The blob.
        blob_id: [u8; 32],
        /// The first chunk group wanted.
        first_group: u64,
        /// The chunk group after the last one wanted.
        end_group: u64,
    },
}

/// The answer to [`Request::Blob`] and [`Request::BlobRange`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobHeader {
    /// The blob follows; its sealed length (authenticated by the bao root, the blob ID).
    Follows {
        /// Length of the sealed blob.
        sealed_len: u64,
    },
    /// This device does not hold it (any more).
    NotHere,
}

/// The most record IDs one [`Request::Fetch`] may name.
pub const MAX_FETCH: usize = 4096;

/// One frame of a reconciliation session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileFrame(pub Vec<u8>);

/// Records, as their bytes (sealed photo records or membership records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records(pub Vec<Vec<u8>>);

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Longer than [`MAX_FRAME_LEN`].
    #[error("a message of {0} bytes is longer than the {MAX_FRAME_LEN} allowed")]
    TooLong(usize),
    /// The content does not decode as the expected message.
    #[error("a malformed message: {0}")]
    Malformed(String),
}

/// Encodes a message with its length prefix.
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let body = postcard::to_stdvec(message).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLong(body.len()));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads a frame's length prefix and checks it against the limit.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong(len));
    }
    Ok(len)
}

/// Decodes a frame's body (without its length prefix).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(message)
}

/// serde for `[u8; 64]` (serde derives arrays only up to 32).
mod serde_bytes_64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: Vec<u8> = Vec::deserialize(d)?;
        <[u8; 64]>::try_from(v).map_err(|_| D::Error::custom("expected 64 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn storage_is_low_below_a_tenth_of_what_could_be_held() {
        let report = |used, free, quota| StorageReport { used, free, quota };
        assert_eq!(report(900, 200, None).room(), 200);
        assert!(!report(900, 200, None).is_low());
        assert!(report(950, 100, None).is_low());
        // The quota binds before the disk does.
        assert_eq!(report(950, 10_000, Some(1000)).room(), 50);
        assert!(report(950, 10_000, Some(1000)).is_low());
        assert!(!report(500, 10_000, Some(1000)).is_low());
        assert_eq!(report(1200, 10_000, Some(1000)).room(), 0);
        assert!(
            !report(0, 0, None).is_low(),
            "nothing stored, nothing to hold"
        );
    }

    #[test]
    fn frames_round_trip() {
        let m = JoinRequest {
            signing_key: [1; 32],
            name: "phone".into(),
            proof: [2; 64],
        };
        let frame = encode_frame(&m).unwrap();
        let len = frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        assert_eq!(decode_body::<JoinRequest>(&frame[4..]).unwrap(), m);
        assert!(frame_len((MAX_FRAME_LEN as u32 + 1).to_be_bytes()).is_err());
    }

    #[test]
    fn a_range_request_round_trips_and_older_requests_keep_their_encoding() {
        let m = Request::BlobRange {
            blob_id: [9; 32],
            first_group: 5,
            end_group: 261,
        };
        let frame = encode_frame(&m).unwrap();
        assert_eq!(decode_body::<Request>(&frame[4..]).unwrap(), m);
        // Appended at the end: the requests before it encode as they did.
        assert_eq!(encode_frame(&Request::Announce).unwrap()[4..], [5]);
        assert_eq!(frame[4], 6);
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(m) = decode_body::<JoinResponse>(&b) {
                let again = encode_frame(&m).unwrap();
                prop_assert_eq!(decode_body::<JoinResponse>(&again[4..]).unwrap(), m);
            }
            let _ = decode_body::<JoinRequest>(&b);
            let _ = decode_body::<JoinConfirm>(&b);
            let _ = decode_body::<Hello>(&b);
            let _ = decode_body::<Request>(&b);
            let _ = decode_body::<Records>(&b);
        }
    }
}
