//! Replication between two members: record sets reconciled and fetched ([`records`]), held-blob
//! sets reconciled ([`held`], [`blobs`]), blobs fetched verified ([`fetch`], [`receive`]) from
//! several peers at once ([`ranges`]), served ([`serve`]), and transfers in progress
//! ([`transfers`]). [`restore_fetch`] fetches for a restore without a running node.

pub mod bad_peer;
pub mod blobs;
pub mod drill;
pub mod error;
pub mod fetch;
pub mod fetcher;
pub mod held;
pub mod partial_blob;
pub mod ranges;
pub mod receive;
pub mod records;
pub mod restore_fetch;
pub mod serve;
pub mod transfers;

#[cfg(test)]
mod tests;
