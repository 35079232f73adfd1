//! A device's own blob bytes: the content-addressed store of sealed blobs, direct (page-cache
//! bypassing) writes, sealing originals on the fly, and [`source::BlobSource`], the one place
//! that knows where a blob's bytes are (the store, or an original sealed on the fly).

pub mod direct;
pub mod partial;
pub mod sealed;
pub mod source;
pub mod store;
pub mod verify;
