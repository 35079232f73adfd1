//! The photo folders of a `full` device: which files are photos and videos ([`media`]),
//! recording them as sealed records ([`scan`], [`watch`]), getting them back ([`restore`]),
//! checking nothing rotted ([`verify`]), rebuilding a damaged index ([`repair`]), and what
//! `status` shows ([`status`]).

pub mod capture;
pub mod copies;
pub mod folders;
pub mod free_up;
mod known;
pub mod links;
pub mod media;
pub mod progress;
pub mod repair;
pub mod restore;
pub mod scan;
pub mod scrub;
pub mod status;
pub mod thumbs;
pub mod trash;
pub mod verify;
pub mod watch;
