//! The photomesh node: everything that touches the outside world — the home directory, the
//! SQLite index, the blob store, the photo folders — and drives the sans-IO formats of
//! `photomesh-protocol`. The `photomesh` binary (`main.rs`) is only the command line on top.
//!
//! # Layout
//! - [`config`]: the configuration file (`config.toml`), its fields and their sources.
//! - [`demo`]: `photomesh demo` — three nodes on one machine, paired and replicating.
//! - [`home`]: the home directory — key files, index and blob store, created by `init`.
//! - [`index`]: the SQLite index and its migrations.
//! - [`blobstore`]: the content-addressed store of sealed blobs (replicas).
//! - [`media`]: which files are photos and videos, and their capture time.
//! - [`sealed`]: streaming between plaintext files and sealed blobs.
//! - [`scan`]: turning folders into sealed records.
//! - [`watch`]: watched folders — recording new photos once they are complete.
//! - [`restore`] and [`verify`]: getting photos back, and checking nothing rotted.
//! - [`status`]: what `photomesh status` shows.
//! - [`progress`]: progress bars and lines for long work.
//! - [`mesh`]: membership — founding, introducing, revoking, and the trust set.
//! - [`pairing`]: `pair` and `join` — inviting a device by QR code.
//! - [`daemon`]: the running node (`run`), its [`daemon::NodeHandle`], and the member hello
//!   (`ping`).
//! - [`connections`]: one connection per pair of devices, and the reconnect backoff.
//! - [`control`]: the local control socket through which verbs talk to the running node.
//! - [`discovery`]: finding members on the LAN with mDNS (`protocol/DISCOVERY.md`).
//! - [`net`]: framed messages on quinn streams, addresses, connection errors in words.
//! - [`sync`]: record replication — reconcile the record sets, fetch what is missing.
//! - [`blobs`]: blob replication — held-blob sets, verified streaming, originals sealed on the fly.
//! - [`samples`]: sample photo libraries (the demo's camera roll, the tests' folders).
//! - [`qr`]: QR codes on the terminal and in PNG files.
//! - [`transfers`]: blob transfers in progress, with rate and ETA.
//! - [`transport`]: quinn endpoints with nQUIC crypto.

pub mod blobs;
pub mod blobstore;
pub mod config;
pub mod connections;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod direct;
pub mod discovery;
pub mod home;
pub mod index;
pub mod media;
pub mod mesh;
pub mod net;
pub mod pairing;
pub mod progress;
pub mod qr;
pub mod restore;
pub mod samples;
pub mod scan;
pub mod sealed;
pub mod status;
pub mod sync;
pub mod transfers;
pub mod transport;
pub mod verify;
pub mod watch;
