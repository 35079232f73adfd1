//! The network below replication: quinn endpoints with nQUIC crypto ([`transport`]), framed
//! messages on streams ([`frame`]), the application close codes ([`close`]), and the local
//! control socket and its messages ([`control`]).

pub mod close;
pub mod control;
pub mod frame;
pub mod transport;
