//! photomesh's protocol: every format that goes on the wire or on disk, and every state
//! machine that drives a conversation between devices, with **no I/O**.
//!
//! This crate opens no file or socket, spawns no task, reads no clock and draws no
//! unseeded randomness: time comes in as an argument and secrets come in as bytes the caller
//! drew. That keeps every format testable with fixed vectors and every state machine drivable
//! by a simulated network (see the `photomesh-simulations` crate).
//!
//! # Layout
//! - [`base32`]: base32 as people type it, for codes and phrases.
//! - [`element`]: what every element of the replicated set shares: ID and keyless timestamp.
//! - [`discovery`]: the mDNS advert, which only members of the mesh can read (`DISCOVERY.md`).
//! - [`identity`]: device keys and device IDs (base32 groups with a check character).
//! - [`keys`]: the library key, its epochs, and every key derived from it.
//! - [`lifecycle`]: signed trash/restore/purge records and each photo's state (`LIFECYCLE.md`).
//! - [`membership`]: signed introduce/revoke records and the trust set they imply.
//! - [`messages`]: application messages between devices, and their length-prefixed framing.
//! - [`pairing`]: pairing codes (QR and text) that invite a device into the mesh.
//! - [`seal`]: the sealing format for photo content (`SEALING.md`).
//! - [`record`]: sealed, versioned records that describe photos.
//! - [`nquic`]: Noise as QUIC's crypto layer, for quinn (`NQUIC.md`).
//! - [`reconcile`]: range-based set reconciliation of records and blob IDs (Merkle summaries).

pub mod base32;
pub mod discovery;
pub mod element;
pub mod identity;
pub mod keys;
pub mod lifecycle;
pub mod membership;
pub mod messages;
pub mod nquic;
pub mod pairing;
pub mod reconcile;
pub mod record;
pub mod recovery;
pub mod seal;
pub mod share;
mod signed;
