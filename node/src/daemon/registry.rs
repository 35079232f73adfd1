//! The connection manager's rules, kept apart from I/O so they can be tested alone: which of
//! two connections between the same pair of devices survives, the registry of live
//! connections (one per peer), and the reconnect backoff.
//!
//! The daemon (`daemon.rs`) drives them: it adopts every connection, dialled or accepted,
//! into the [`Registry`], and dials a member only when the registry holds no connection to it
//! and its [`Backoff`] allows.
//!
//! **One connection per pair.** When two dials cross, each end holds two connections to the
//! same peer. Both ends apply [`keep_existing`], which depends only on who dialled each
//! connection and on the two Noise keys — never on timing — so both keep the same one: the
//! connection dialled by the device with the smaller Noise key. The other is closed with
//! [`crate::net::close::Close::Duplicate`], which neither side counts as a failure. Two connections dialled by the
//! same side mean that side dropped the first (it dials only members it holds no connection
//! to), so the newer wins.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use photomesh_protocol::identity::DeviceId;

use crate::net::control::Dialler;

/// The dialler whose connection a pair keeps when dials cross: the device with the smaller
/// Noise key.
pub fn preferred(own_key: &[u8; 32], peer_key: &[u8; 32]) -> Dialler {
    if own_key < peer_key {
        Dialler::Here
    } else {
        Dialler::There
    }
}

/// Whether this device keeps the connection it already holds to a peer (`existing`) rather
/// than a `new` one, by who dialled each. Both ends reach the same answer about the same
/// two connections.
pub fn keep_existing(
    own_key: &[u8; 32],
    peer_key: &[u8; 32],
    existing: Dialler,
    new: Dialler,
) -> bool {
    existing != new && existing == preferred(own_key, peer_key)
}

/// One live connection to a peer.
#[derive(Clone)]
pub struct Link {
    /// This node's number for it (never reused while the node runs).
    pub id: u64,
    /// The connection.
    pub connection: quinn::Connection,
    /// The peer device.
    pub device: DeviceId,
    /// Who dialled.
    pub dialler: Dialler,
    /// When it was adopted (ms since the epoch).
    pub since_ms: u64,
    /// Wakes the connection's sync loop (a peer's announcement, or this device's).
    pub wake: Arc<tokio::sync::Notify>,
}

/// What adopting a new connection decided.
pub enum Adoption {
    /// The connection is now the peer's; `replaced` is the one it displaced, to close as a
    /// duplicate.
    Adopted {
        /// The displaced connection, if any.
        replaced: Option<Link>,
    },
    /// The registry holds a connection that the rule keeps over the new one; the caller
    /// checks that it still answers before closing the new one as a duplicate.
    KeepExisting(Link),
}

/// The live connections, at most one per peer (by Noise key).
#[derive(Default)]
pub struct Registry {
    links: BTreeMap<[u8; 32], Link>,
}

impl Registry {
    /// Offers a new connection to the peer `peer_key`. Connections that are already closed
    /// do not count.
    pub fn offer(&mut self, own_key: &[u8; 32], peer_key: [u8; 32], link: Link) -> Adoption {
        let existing = self
            .links
            .get(&peer_key)
            .filter(|l| l.connection.close_reason().is_none())
            .cloned();
        match existing {
            Some(existing) if keep_existing(own_key, &peer_key, existing.dialler, link.dialler) => {
                Adoption::KeepExisting(existing)
            }
            existing => {
                self.links.insert(peer_key, link);
                Adoption::Adopted { replaced: existing }
            }
        }
    }

    /// Puts `link` in place of the peer's connection whatever it was (the kept one did not
    /// answer), and returns the one displaced.
    pub fn replace(&mut self, peer_key: [u8; 32], link: Link) -> Option<Link> {
        self.links.insert(peer_key, link)
    }

    /// The peer's connection, if it is still `id`.
    pub fn is_current(&self, peer_key: &[u8; 32], id: u64) -> bool {
        self.links.get(peer_key).is_some_and(|l| l.id == id)
    }

    /// Forgets the peer's connection if it is still `id`.
    pub fn remove(&mut self, peer_key: &[u8; 32], id: u64) {
        if self.is_current(peer_key, id) {
            self.links.remove(peer_key);
        }
    }

    /// Whether a live connection to the peer is held.
    pub fn holds(&self, peer_key: &[u8; 32]) -> bool {
        self.links
            .get(peer_key)
            .is_some_and(|l| l.connection.close_reason().is_none())
    }

    /// Every held connection.
    pub fn links(&self) -> impl Iterator<Item = (&[u8; 32], &Link)> {
        self.links.iter()
    }

    /// Keeps only the connections for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8; 32], &Link) -> bool) {
        self.links.retain(|k, l| keep(k, l));
    }
}

/// The first wait after a failed dial.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two dials of the same device at the same address.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The wait after `failures` failed dials in a row (at least 1): 1 s, doubling up to 60 s,
/// less up to a fifth drawn by `jitter` (in `[0, 1)`), so devices that failed together do
/// not all come back at once.
pub fn backoff_delay(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let nominal = BACKOFF_FIRST
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX);
    nominal.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
}

/// Failed dials per (device, address), and when each may be dialled again.
#[derive(Default)]
pub struct Backoff {
    failed: BTreeMap<(DeviceId, SocketAddr), (u32, Instant)>,
}

impl Backoff {
    /// Notes a failed dial at `now`; returns the wait before the next one.
    pub fn failed(
        &mut self,
        device: DeviceId,
        addr: SocketAddr,
        now: Instant,
        jitter: f64,
    ) -> Duration {
        let entry = self.failed.entry((device, addr)).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        let wait = backoff_delay(entry.0, jitter);
        entry.1 = now + wait;
        wait
    }

    /// Whether the device may be dialled at `addr` at `now`.
    pub fn due(&self, device: &DeviceId, addr: SocketAddr, now: Instant) -> bool {
        self.failed
            .get(&(*device, addr))
            .is_none_or(|(_, at)| now >= *at)
    }

    /// Forgets the failures of a device at every address (it connected, or a new address
    /// was learned for it).
    pub fn reset(&mut self, device: &DeviceId) {
        self.failed.retain(|(d, _), _| d != device);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff_delay(n, 0.0).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff_delay(u32::MAX, 0.0), BACKOFF_MAX);
        // Jitter only ever shortens the wait, by at most a fifth.
        for n in 1..=9 {
            let nominal = backoff_delay(n, 0.0);
            for jitter in [0.1, 0.5, 0.999] {
                let d = backoff_delay(n, jitter);
                assert!(
                    d <= nominal && d >= nominal.mul_f64(0.8),
                    "{n} {jitter} {d:?}"
                );
            }
        }
    }

    #[test]
    fn backoff_is_per_address_and_resets() {
        let (key, other) = (DeviceId::from_bytes([1; 20]), DeviceId::from_bytes([2; 20]));
        let a: SocketAddr = "10.0.0.1:7447".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:7447".parse().unwrap();
        let t0 = Instant::now();
        let mut backoff = Backoff::default();
        assert!(backoff.due(&key, a, t0));
        assert_eq!(backoff.failed(key, a, t0, 0.0), Duration::from_secs(1));
        assert!(!backoff.due(&key, a, t0));
        assert!(backoff.due(&key, b, t0), "another address is not held back");
        assert!(backoff.due(&key, a, t0 + Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(backoff.failed(key, a, t1, 0.0), Duration::from_secs(2));
        assert!(!backoff.due(&key, a, t1 + Duration::from_millis(1999)));
        backoff.failed(other, a, t1, 0.0);
        backoff.reset(&key);
        assert!(backoff.due(&key, a, t1));
        assert!(!backoff.due(&other, a, t1), "a reset is per device");
        // After a reset the schedule starts again at one second.
        assert_eq!(backoff.failed(key, a, t1, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn both_ends_keep_the_same_connection_when_dials_cross() {
        let small = [1; 32];
        let large = [9; 32];
        // Who dialled a connection, as the end `at_small` (or the other) sees it.
        let view = |dialled_by_small: bool, at_small: bool| {
            if dialled_by_small == at_small {
                Dialler::Here
            } else {
                Dialler::There
            }
        };
        // Which connection (dialled by small or not) an end keeps, holding `held` first.
        let kept = |at_small: bool, held: bool| {
            let (own, peer) = if at_small {
                (small, large)
            } else {
                (large, small)
            };
            if keep_existing(&own, &peer, view(held, at_small), view(!held, at_small)) {
                held
            } else {
                !held
            }
        };
        // Whatever each end happened to hold first, both keep the connection dialled by the
        // smaller key.
        for small_held_its_own in [true, false] {
            for large_held_small_s in [true, false] {
                assert!(kept(true, small_held_its_own));
                assert!(kept(false, large_held_small_s));
            }
        }
        // A second connection from the same dialler replaces the first.
        assert!(!keep_existing(&small, &large, Dialler::Here, Dialler::Here));
        assert!(!keep_existing(
            &small,
            &large,
            Dialler::There,
            Dialler::There
        ));
        assert_eq!(preferred(&small, &large), Dialler::Here);
        assert_eq!(preferred(&large, &small), Dialler::There);
    }
}
