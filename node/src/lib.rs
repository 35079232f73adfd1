//! The photomesh node: everything that touches the outside world — the home directory, the
//! SQLite index, the blob store, the photo folders, the network — driving the sans-IO formats
//! of `photomesh-protocol`. The `photomesh` binary (`main.rs`, `cli/`) is only the command
//! line on top.
//!
//! # Layout
//! The folders are the layers; arrows run downwards only.
//! - [`web`]: the page the running node serves (overview, devices, trash).
//! - [`daemon`]: the running node (`run`): links, the dialler, discovery, the hello.
//! - [`demo`]: `photomesh demo`, and the sample libraries it and the tests use.
//! - [`library`]: the photo folders: scan, media kinds, watch, restore, verify, status.
//! - [`replicate`]: record and blob replication: held sets, fetching, ranges, serving.
//! - [`mesh`]: membership (a new device, founding, introducing, revoking), pairing, QR codes.
//! - [`net`]: QUIC endpoints, framing, close codes, the control socket and its messages.
//! - [`home`]: the home directory (keys, index, store) and the configuration file.
//! - [`blob`]: local blob bytes: the store, direct writes, on-the-fly sealing, blob sources.
//! - [`index`]: the SQLite index and its migrations.
//! - [`error`], [`lock`], [`clock`], [`original`], [`ignore`], [`sorted`], [`shown`]: what
//!   every layer shares.

pub mod blob;
pub mod clock;
pub mod daemon;
pub mod demo;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod home;
pub mod ignore;
pub mod index;
pub mod library;
pub mod lock;
pub mod mesh;
pub mod net;
pub mod original;
pub mod pace;
pub mod replicate;
pub mod shown;
pub mod sorted;
pub mod web;
