//! The network below replication: quinn endpoints with nQUIC crypto ([`transport`]), dialling
//! another device ([`dial`]), framed messages on streams ([`frame`]), the application close
//! codes ([`close`]), the local control socket and its messages ([`control`]), the bound
//! on incoming handshakes ([`gate`]), and peer addresses resolved at each dial ([`resolve`]).

pub mod close;
pub mod control;
pub mod dial;
pub mod frame;
pub mod gate;
pub mod gso;
pub mod portmap;
pub mod resolve;
pub mod transport;
