//! The network below replication: quinn endpoints with nQUIC crypto ([`transport`]), dialling
//! another device ([`dial`]), framed messages on streams ([`frame`]), the application close
//! codes ([`close`]), and the local control socket and its messages ([`control`]).

pub mod close;
pub mod control;
pub mod dial;
pub mod frame;
pub mod transport;
