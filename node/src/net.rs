//! The network below replication: quinn endpoints with nQUIC crypto ([`transport`]), dialling
//! a member ([`dial`]), framed messages on streams ([`frame`]), the application close codes
//! ([`close`]), mDNS discovery ([`discovery`]), and the local control socket ([`control`]).

pub mod close;
pub mod control;

pub mod discovery;
pub mod frame;
pub mod transport;
