//! The photomesh node: everything that touches the outside world — the home directory, the
//! SQLite index, the blob store, the photo folders — and drives the sans-IO formats of
//! `photomesh-protocol`. The `photomesh` binary (`main.rs`) is only the command line on top.

pub mod transport;
