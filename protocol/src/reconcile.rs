//! Range-based set reconciliation (Meyer, SRDS 2023): two devices learn exactly which items
//! each lacks, exchanging a few fingerprints when their sets are close.
//!
//! Items are `(timestamp, 32-byte ID)` pairs ([`Item`]) in a sorted set ([`Store`]). A
//! range's fingerprint is BLAKE3 of the sum of its items modulo 2^256 (each the ID plus the
//! timestamp times 2^192, see [`IdSum`]) and its count, truncated to 16 bytes
//! ([`Fingerprint`]); [`FingerprintTree`] caches those sums so any range costs O(log n) and
//! inserting updates them in place. A [`Session`] compares two sets: equal ranges are
//! skipped, unequal ones split 16 ways at randomised points, and small ones listed, so a
//! session with `d` differences costs O(d log n) work and round trips that grow with log₁₆ n.
//!
//! Before splitting, a session tries a set sketch when the difference looks small or
//! scattered: a prefix of a rateless invertible Bloom lookup table ([`Sketch`]) that the store
//! keeps up to date on insert. Decoding one shows both sides their whole difference in one
//! exchange; the result is confirmed against the peer's count and fingerprint, and a sketch
//! that does not decode, or decodes wrongly, only costs a fallback to splitting.
//!
//! The machine is generic over the set: records, or each device's set of blob IDs, are both a
//! [`Store`] of items. It does not move records or blobs: it only reports, as [`Event`]s,
//! what each side lacks; the caller fetches them.
//!
//! Like quinn-proto, this module does no I/O and reads no clock: frames come in through
//! [`Session::handle_frame`] and go out through [`Session::poll_transmit`], time is the
//! caller's `now`, and the split points come from a seed the caller gives; the sketch's
//! symbol indices come from each item's hash.

mod item;
mod session;
mod sketch;
mod tree;
mod wire;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use item::{Bound, FINGERPRINT_LEN, Fingerprint, ID_LEN, IdSum, Item};
pub use session::{SPLITS, Session};
pub use sketch::{CodedSymbol, MAX_SKETCH_SYMBOLS, Sketch};
pub use tree::{FingerprintTree, Store};

/// The smallest frame size a [`Config`] may set: enough for a full list and its bounds.
pub const MIN_FRAME_SIZE: usize = 4096;

/// How a [`Session`] behaves. Both sides should use the same values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The largest frame this side sends or accepts, in bytes (at least [`MIN_FRAME_SIZE`]).
    pub max_frame_size: usize,
    /// A mismatching range holding at most this many of our items is listed, not split.
    ///
    /// Splitting is cheaper than listing (about 20 bytes per subrange against 34 per item),
    /// so the default is low: 8 measured best at n = 1M without adding a round trip.
    pub list_threshold: u64,
    /// How long the session waits for a frame from the peer before it fails.
    pub idle_timeout: Duration,
    /// The most turns (one side's frames up to its last) a session may take before it fails.
    pub max_turns: u32,
    /// Whether the session may send or ask for a set sketch before splitting ranges. With
    /// `false` it only splits ranges (as version 1 did); a responder so configured never
    /// sends a sketch, and an initiator so configured refuses one.
    pub sketches: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 64 * 1024,
            list_threshold: 8,
            idle_timeout: Duration::from_secs(30),
            max_turns: 40,
            sketches: true,
        }
    }
}

impl Config {
    /// Checks that the values let a session make progress.
    pub fn validate(&self) -> Result<(), ReconcileError> {
        if self.max_frame_size < MIN_FRAME_SIZE {
            return Err(ReconcileError::InvalidConfig(
                "max_frame_size is below MIN_FRAME_SIZE",
            ));
        }
        if self.list_threshold < 1 || self.list_threshold > 64 {
            return Err(ReconcileError::InvalidConfig(
                "list_threshold must be in 1..=64",
            ));
        }
        if self.max_turns == 0 {
            return Err(ReconcileError::InvalidConfig(
                "max_turns must be at least 1",
            ));
        }
        Ok(())
    }
}

/// What a session learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer holds this item and we do not: fetch it.
    Missing(Item),
    /// We hold this item and the peer does not; the peer learns of it in the frame just sent.
    PeerMissing(Item),
}

/// Bytes, frames and turns of a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Bytes of frames sent.
    pub bytes_sent: u64,
    /// Bytes of frames received.
    pub bytes_received: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Turns completed by either side; a round trip is two turns.
    pub turns: u32,
}

/// Why a session failed. Every error ends the session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// The frame ended before a field it announced.
    #[error("reconcile frame truncated: it ends inside a field")]
    Truncated,
    /// The frame's check bytes do not match its contents.
    #[error("reconcile frame corrupted: its check bytes do not match")]
    BadCheck,
    /// The frame was written by a protocol version this side does not speak.
    #[error("reconcile frame has unsupported version {0}; this side speaks version 2")]
    UnsupportedVersion(u8),
    /// A field holds a value the format does not allow.
    #[error("malformed reconcile frame: {0}")]
    Malformed(&'static str),
    /// A range mode tag is not one the format defines.
    #[error("reconcile frame has unknown range mode {0}")]
    UnknownMode(u8),
    /// A range's upper bound is not above its lower bound.
    #[error("reconcile frame has ranges out of order")]
    BoundsOutOfOrder,
    /// A listed item is outside its range or not in strictly increasing order.
    #[error("reconcile frame lists an item outside its range or out of order")]
    ItemOutOfRange,
    /// The frame is larger than this side accepts.
    #[error("reconcile frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's size.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The frame is not the next one the peer should send: one was lost, repeated or reordered.
    #[error("reconcile frame out of sequence: expected frame {expected}, got {got}")]
    OutOfSequence {
        /// The sequence number expected.
        expected: u64,
        /// The sequence number received.
        got: u64,
    },
    /// A frame arrived while it was this side's turn, or after the session ended.
    #[error("reconcile frame arrived when the peer should be silent")]
    UnexpectedFrame,
    /// A sketch or sketch request arrived that this side did not ask for or cannot take.
    #[error("reconcile frame has an unexpected sketch section: {0}")]
    UnexpectedSketch(&'static str),
    /// The session took more turns than [`Config::max_turns`] allows.
    #[error("reconcile session exceeded {0} turns")]
    TooManyTurns(u32),
    /// The peer was silent for longer than [`Config::idle_timeout`].
    #[error("reconcile session timed out waiting for the peer")]
    TimedOut,
    /// The [`Config`] would not let a session make progress.
    #[error("invalid reconcile config: {0}")]
    InvalidConfig(&'static str),
}
