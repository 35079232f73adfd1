//! The door every incoming handshake passes: how many may be in progress before a stranger
//! has to prove its address, and how many at all.
//!
//! An nQUIC responder does four X25519 operations for an `IK` first message, before it knows
//! whether the initiator is trusted, and keeps a connection's state until the close drains. A
//! flood of protected Initials (from addresses real or forged) would make a node pay that for
//! each. The gate admits a few handshakes freely; past [`FREE_HANDSHAKES`] in progress or
//! [`FREE_PER_SECOND`] begun in the last second (per address: [`FREE_PER_ADDRESS`] and
//! [`FREE_PER_ADDRESS_PER_SECOND`]), an initiator whose address is not yet validated is
//! answered with a stateless QUIC Retry — no Diffie-Hellman, no connection state — and only
//! the initiators that return its token are let in, up to [`MAX_HANDSHAKES`] in progress
//! ([`MAX_PER_ADDRESS`] from one address); past that they are refused. A member's client
//! follows a Retry on its own, at the cost of one round trip. A Retry costs the node a MAC
//! and a datagram, so past [`RETRIES_PER_SECOND`] a second ([`RETRIES_PER_ADDRESS`] to one
//! address) a flood's packets are dropped unanswered.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Handshakes in progress before an unvalidated initiator gets a Retry.
pub const FREE_HANDSHAKES: usize = 8;
/// Handshakes in progress from one address before an unvalidated one from there gets a Retry.
pub const FREE_PER_ADDRESS: usize = 2;
/// Unvalidated handshakes let in within a second before the next gets a Retry.
pub const FREE_PER_SECOND: usize = 32;
/// Unvalidated handshakes let in from one address within a second before the next from there
/// gets a Retry.
pub const FREE_PER_ADDRESS_PER_SECOND: usize = 4;
/// Retries sent within a second before the next unvalidated initiator is dropped unanswered.
pub const RETRIES_PER_SECOND: usize = 2048;
/// Retries sent to one address within a second before its next is dropped unanswered.
pub const RETRIES_PER_ADDRESS: usize = 64;
/// Addresses whose recent handshakes are remembered; beyond, every unvalidated initiator gets
/// a Retry until the second is over.
const REMEMBERED: usize = 4096;
/// The window the per-second counts cover.
const WINDOW: Duration = Duration::from_secs(1);
/// Handshakes in progress beyond which even a validated initiator is refused.
pub const MAX_HANDSHAKES: usize = 64;
/// Handshakes in progress from one address beyond which it is refused.
pub const MAX_PER_ADDRESS: usize = 8;

/// What to do with an incoming connection.
#[derive(Debug)]
pub enum Verdict {
    /// Go on with the handshake; the ticket counts it until dropped.
    Admit(Ticket),
    /// Answer with a Retry: the initiator must prove its address first.
    Retry,
    /// Drop it unanswered: more Retries than a member could need went out this second.
    Ignore,
    /// Refuse it: too many handshakes in progress.
    Refuse,
}

/// The count of handshakes in progress, shared by every task that runs one.
#[derive(Clone, Debug)]
pub struct Gate(Arc<crate::lock::Mutex<Counts>>);

impl Default for Gate {
    fn default() -> Self {
        Self(Arc::new(crate::lock::Mutex::new(
            "the handshakes in progress",
            Counts::default(),
        )))
    }
}

#[derive(Debug, Default)]
struct Counts {
    /// Handshakes in progress, in all and by address.
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    /// Unvalidated handshakes let in since `window_start`, in all and by address.
    window_start: Option<Instant>,
    recent: usize,
    recent_by_address: HashMap<IpAddr, usize>,
    /// Retries sent since `window_start`, in all and by address.
    retries: usize,
    retries_by_address: HashMap<IpAddr, usize>,
}

/// One admitted handshake; dropping it (when the handshake ends, either way) frees its place.
#[derive(Debug)]
pub struct Ticket {
    gate: Gate,
    address: IpAddr,
}

impl Gate {
    /// Judges a new handshake from `address` at `now`; `validated` when it carries a token
    /// from a Retry (quinn's `Incoming::remote_address_validated`).
    pub fn judge(&self, address: IpAddr, validated: bool, now: Instant) -> Verdict {
        let mut counts = self.0.lock();
        let counts = &mut *counts;
        if counts
            .window_start
            .is_none_or(|start| now.duration_since(start) >= WINDOW)
        {
            counts.window_start = Some(now);
            counts.recent = 0;
            counts.recent_by_address.clear();
            counts.retries = 0;
            counts.retries_by_address.clear();
        }
        let from_there = counts.by_address.get(&address).copied().unwrap_or(0);
        if !validated {
            let recent_there = counts.recent_by_address.get(&address).copied();
            let busy = counts.total >= FREE_HANDSHAKES
                || from_there >= FREE_PER_ADDRESS
                || counts.recent >= FREE_PER_SECOND
                || recent_there.unwrap_or(0) >= FREE_PER_ADDRESS_PER_SECOND
                || (recent_there.is_none() && counts.recent_by_address.len() >= REMEMBERED);
            if busy {
                let retried = counts.retries_by_address.get(&address).copied();
                if counts.retries >= RETRIES_PER_SECOND
                    || retried.unwrap_or(0) >= RETRIES_PER_ADDRESS
                    || (retried.is_none() && counts.retries_by_address.len() >= REMEMBERED)
                {
                    return Verdict::Ignore;
                }
                counts.retries += 1;
                *counts.retries_by_address.entry(address).or_default() += 1;
                return Verdict::Retry;
            }
            counts.recent += 1;
            *counts.recent_by_address.entry(address).or_default() += 1;
        } else if counts.total >= MAX_HANDSHAKES || from_there >= MAX_PER_ADDRESS {
            return Verdict::Refuse;
        }
        counts.total += 1;
        *counts.by_address.entry(address).or_default() += 1;
        Verdict::Admit(Ticket {
            gate: self.clone(),
            address,
        })
    }

    /// Handshakes in progress now.
    pub fn in_progress(&self) -> usize {
        self.0.lock().total
    }

    /// Lets `incoming` in, answers it with a Retry, or refuses it, as [`Gate::judge`] says.
    /// Returns the ticket of an admitted handshake, to hold until it ends.
    pub fn admit(&self, incoming: quinn::Incoming) -> Option<(quinn::Incoming, Ticket)> {
        let validated = incoming.remote_address_validated();
        let ip = incoming.remote_address().ip().to_canonical();
        match self.judge(ip, validated, Instant::now()) {
            Verdict::Admit(ticket) => Some((incoming, ticket)),
            Verdict::Retry if incoming.may_retry() => {
                if let Err(e) = incoming.retry() {
                    e.into_incoming().refuse();
                }
                None
            }
            Verdict::Retry | Verdict::Refuse => {
                incoming.refuse();
                None
            }
            Verdict::Ignore => {
                incoming.ignore();
                None
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.gate.0.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                counts.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 168, 1, last])
    }

    fn admitted(verdict: Verdict) -> Ticket {
        match verdict {
            Verdict::Admit(ticket) => ticket,
            other => panic!("not admitted: {other:?}"),
        }
    }

    #[test]
    fn strangers_prove_their_address_once_handshakes_pile_up() {
        let gate = Gate::default();
        let now = Instant::now();
        // One address: two free handshakes, then a Retry; its validated return is let in.
        let a = admitted(gate.judge(ip(1), false, now));
        let b = admitted(gate.judge(ip(1), false, now));
        assert!(matches!(gate.judge(ip(1), false, now), Verdict::Retry));
        let c = admitted(gate.judge(ip(1), true, now));
        // Others are still free until eight are in progress in all.
        let mut others: Vec<Ticket> = (2..7)
            .map(|i| admitted(gate.judge(ip(i), false, now)))
            .collect();
        assert_eq!(gate.in_progress(), FREE_HANDSHAKES);
        assert!(matches!(gate.judge(ip(50), false, now), Verdict::Retry));
        // A place freed is free again.
        others.pop();
        drop(a);
        assert_eq!(gate.in_progress(), FREE_HANDSHAKES - 2);
        let _d = admitted(gate.judge(ip(50), false, now));
        // The first address still has two in progress (b, c): its next must prove itself.
        assert!(matches!(gate.judge(ip(1), false, now), Verdict::Retry));
        drop((b, c, others));
        assert_eq!(gate.in_progress(), 1);
        let _e = admitted(gate.judge(ip(1), false, now));
    }

    #[test]
    fn a_quick_succession_of_handshakes_is_a_flood_too() {
        let gate = Gate::default();
        let now = Instant::now();
        // Each ends at once, so few are ever in progress: the count per second holds them.
        for _ in 0..FREE_PER_ADDRESS_PER_SECOND {
            drop(admitted(gate.judge(ip(1), false, now)));
        }
        assert!(matches!(gate.judge(ip(1), false, now), Verdict::Retry));
        // Its proven return is let in; other addresses are free up to the total per second.
        drop(admitted(gate.judge(ip(1), true, now)));
        for i in 0..FREE_PER_SECOND - FREE_PER_ADDRESS_PER_SECOND {
            drop(admitted(gate.judge(ip(2 + (i / 4) as u8), false, now)));
        }
        assert!(matches!(gate.judge(ip(200), false, now), Verdict::Retry));
        // The next second starts afresh.
        let later = now + WINDOW;
        drop(admitted(gate.judge(ip(1), false, later)));
        drop(admitted(gate.judge(ip(200), false, later)));
    }

    #[test]
    fn a_flood_past_the_retries_a_member_could_need_is_dropped_unanswered() {
        let gate = Gate::default();
        let now = Instant::now();
        let _busy: Vec<Ticket> = (0..FREE_HANDSHAKES as u8)
            .map(|i| admitted(gate.judge(ip(100 + i), false, now)))
            .collect();
        for _ in 0..RETRIES_PER_ADDRESS {
            assert!(matches!(gate.judge(ip(1), false, now), Verdict::Retry));
        }
        assert!(matches!(gate.judge(ip(1), false, now), Verdict::Ignore));
        // Another address still gets its Retry, and a proven return still gets in.
        assert!(matches!(gate.judge(ip(2), false, now), Verdict::Retry));
        drop(admitted(gate.judge(ip(1), true, now)));
        // Next second: answered again.
        assert!(matches!(
            gate.judge(ip(1), false, now + WINDOW),
            Verdict::Retry
        ));
    }

    #[test]
    fn validated_handshakes_are_bounded_too() {
        let gate = Gate::default();
        let now = Instant::now();
        let from_one: Vec<Ticket> = (0..MAX_PER_ADDRESS)
            .map(|_| admitted(gate.judge(ip(1), true, now)))
            .collect();
        assert!(matches!(gate.judge(ip(1), true, now), Verdict::Refuse));
        let rest: Vec<Ticket> = (0..MAX_HANDSHAKES - MAX_PER_ADDRESS)
            .map(|i| {
                let address = IpAddr::from([10, 0, (i / 200) as u8, (i % 200) as u8]);
                admitted(gate.judge(address, true, now))
            })
            .collect();
        assert!(matches!(gate.judge(ip(2), true, now), Verdict::Refuse));
        assert!(matches!(gate.judge(ip(2), false, now), Verdict::Retry));
        drop((from_one, rest));
        assert_eq!(gate.in_progress(), 0);
        assert!(gate.0.lock().by_address.is_empty());
    }
}
