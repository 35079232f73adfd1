//! Pairing codes: what a QR code (or its text form) carries from a device in the mesh to a
//! device that wants to join (specified in `PAIRING.md`).
//!
//! A code holds the inviter's Noise key (the joiner connects with `IKpsk1` and must know the
//! responder's static key), a one-time 32-byte secret, the offered role, an expiry, the
//! inviter's addresses and port, a format version and a check value. The Noise PSK is derived
//! from the whole code, not the secret alone, so a code with any field changed fails the
//! handshake itself. Its text form is
//! base32 in groups of eight; parsing ignores case, dashes and spaces, reads 0/1/8 as O/I/B,
//! and names what is wrong: a foreign character (with its position), a typo (failed check),
//! a newer format, an expired code.
//!
//! Nothing here reads the clock or draws randomness: `now` and the secret come from the
//! caller.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::base32;
use crate::membership::Role;

/// The pairing code format version.
pub const FORMAT_VERSION: u8 = 2;
/// At most this many addresses in a code.
pub const MAX_ADDRESSES: usize = 4;
/// BLAKE3 `derive_key` context for the Noise PSK derived from the code (its secret and every
/// other field).
pub const PSK_CONTEXT: &str = "photomesh 2026-12-06 pairing psk v2";
/// The shortest time a code may work, in seconds.
pub const MIN_LIFETIME_S: u64 = 60;
/// The longest time a code may work, in seconds (7 days).
pub const MAX_LIFETIME_S: u64 = 7 * 24 * 3600;
/// How far the joiner's clock may run behind the inviter's before a code's expiry looks
/// farther away than [`MAX_LIFETIME_S`], in seconds.
const CLOCK_SKEW_S: u64 = 24 * 3600;
/// Bytes of check value at the end of the encoded code.
const CHECK_LEN: usize = 4;

/// A pairing invitation.
#[derive(Clone, PartialEq, Eq)]
pub struct PairingCode {
    /// The role the joiner is offered.
    pub role: Role,
    /// The inviter's Noise static key.
    pub noise_key: [u8; 32],
    /// The one-time secret.
    pub secret: [u8; 32],
    /// When the code stops working, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// The UDP port the inviter listens on.
    pub port: u16,
    /// The inviter's addresses (at most [`MAX_ADDRESSES`]).
    pub addresses: Vec<IpAddr>,
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is never printed.
        f.debug_struct("PairingCode")
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .field("port", &self.port)
            .field("addresses", &self.addresses)
            .finish_non_exhaustive()
    }
}

/// Why a pairing code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingCodeError {
    /// A character outside the code alphabet.
    #[error(
        "character {position} ({character:?}) cannot appear in a pairing code; codes use A-Z and 2-7"
    )]
    Character {
        /// 1-based position among the code's characters (dashes and spaces not counted).
        position: usize,
        /// The character.
        character: char,
    },
    /// Too short or too long to be a code.
    #[error(
        "this is not a whole pairing code ({0} characters); check that it was copied completely"
    )]
    Length(usize),
    /// The check value does not match: a typo.
    #[error(
        "the pairing code has a typo: its check value does not match; compare it with the one shown on the inviting device"
    )]
    Check,
    /// A format this build does not read.
    #[error(
        "this pairing code has format version {0}, which this photomesh does not read (it reads version {FORMAT_VERSION}); update photomesh on one of the devices"
    )]
    Version(u8),
    /// Well-formed but inconsistent content.
    #[error("the pairing code is damaged: {0}")]
    Malformed(&'static str),
    /// Past its expiry.
    #[error(
        "the pairing code expired {ago} seconds ago; make a new one with `photomesh pair` on the inviting device"
    )]
    Expired {
        /// Seconds since it expired.
        ago: u64,
    },
    /// An expiry farther ahead than any code `photomesh pair` makes.
    #[error(
        "the pairing code says it works for another {ahead} seconds, longer than the 7 days a code can work: it was changed, or this device's clock is wrong"
    )]
    TooFarAhead {
        /// Seconds until the expiry the code carries.
        ahead: u64,
    },
}

impl PairingCode {
    /// The Noise PSK for this code: derived from its whole encoding before the check value
    /// (the secret and every other field), so that both ends agree on every field or the
    /// handshake fails.
    pub fn psk(&self) -> [u8; 32] {
        let mut body = self.to_bytes();
        body.truncate(body.len() - CHECK_LEN);
        blake3::derive_key(PSK_CONTEXT, &body)
    }

    /// Checks the code works at `now` (seconds since the Unix epoch): not expired, and not
    /// claiming to work for longer than any code `photomesh pair` makes.
    pub fn check_expiry(&self, now: u64) -> Result<(), PairingCodeError> {
        if now >= self.expires_at {
            Err(PairingCodeError::Expired {
                ago: now - self.expires_at,
            })
        } else if self.expires_at - now > MAX_LIFETIME_S + CLOCK_SKEW_S {
            Err(PairingCodeError::TooFarAhead {
                ahead: self.expires_at - now,
            })
        } else {
            Ok(())
        }
    }

    /// The binary encoding (what the text form and the QR code carry).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![FORMAT_VERSION, role_byte(self.role)];
        b.extend_from_slice(&self.noise_key);
        b.extend_from_slice(&self.secret);
        // Seconds fit u32 until 2106; a later expiry is clamped (codes live a week at most).
        let expires = u32::try_from(self.expires_at).unwrap_or(u32::MAX);
        b.extend_from_slice(&expires.to_le_bytes());
        b.extend_from_slice(&self.port.to_le_bytes());
        let addresses = &self.addresses[..self.addresses.len().min(MAX_ADDRESSES)];
        b.push(addresses.len() as u8);
        for a in addresses {
            match a {
                IpAddr::V4(v4) => {
                    b.push(4);
                    b.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    b.push(6);
                    b.extend_from_slice(&v6.octets());
                }
            }
        }
        let check = blake3::hash(&b);
        b.extend_from_slice(&check.as_bytes()[..CHECK_LEN]);
        b
    }

    /// Decodes the binary encoding. Any bytes give a code or an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PairingCodeError> {
        if bytes.len() < 2 + 64 + 4 + 2 + 1 + CHECK_LEN {
            return Err(PairingCodeError::Length(bytes.len()));
        }
        let (body, check) = bytes.split_at(bytes.len() - CHECK_LEN);
        if blake3::hash(body).as_bytes()[..CHECK_LEN] != *check {
            return Err(PairingCodeError::Check);
        }
        if body[0] != FORMAT_VERSION {
            return Err(PairingCodeError::Version(body[0]));
        }
        let role = match body[1] {
            0 => Role::Full,
            1 => Role::Vault,
            _ => return Err(PairingCodeError::Malformed("unknown role")),
        };
        let mut r = Reader(&body[2..]);
        let noise_key = r.array::<32>()?;
        let secret = r.array::<32>()?;
        let expires_at = u64::from(u32::from_le_bytes(r.array::<4>()?));
        let port = u16::from_le_bytes(r.array::<2>()?);
        let count = usize::from(r.array::<1>()?[0]);
        if count > MAX_ADDRESSES {
            return Err(PairingCodeError::Malformed("too many addresses"));
        }
        let mut addresses = Vec::with_capacity(count);
        for _ in 0..count {
            addresses.push(match r.array::<1>()?[0] {
                4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
                6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
                _ => return Err(PairingCodeError::Malformed("unknown address kind")),
            });
        }
        if !r.0.is_empty() {
            return Err(PairingCodeError::Malformed("trailing bytes"));
        }
        Ok(Self {
            role,
            noise_key,
            secret,
            expires_at,
            port,
            addresses,
        })
    }
}

fn role_byte(role: Role) -> u8 {
    match role {
        Role::Full => 0,
        Role::Vault => 1,
        // Never offered (`pair` invites full or vault devices); a reader refuses it.
        Role::Recovery => 2,
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], PairingCodeError> {
        if self.0.len() < N {
            return Err(PairingCodeError::Malformed("too short"));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }
}

impl fmt::Display for PairingCode {
    /// The text form: base32 in dash-separated groups of eight.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32::grouped(&self.to_bytes(), 8))
    }
}

impl FromStr for PairingCode {
    type Err = PairingCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (bytes, chars) = base32::decode(s).map_err(|e| match e {
            base32::Base32Error::Character {
                position,
                character,
            } => PairingCodeError::Character {
                position,
                character,
            },
            base32::Base32Error::Length(n) => PairingCodeError::Length(n),
        })?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            PairingCodeError::Length(_) => PairingCodeError::Length(chars),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> PairingCode {
        PairingCode {
            role: Role::Full,
            noise_key: [7; 32],
            secret: [9; 32],
            expires_at: 1_763_000_600,
            port: 41_641,
            addresses: vec!["192.168.1.20".parse().unwrap(), "fe80::1".parse().unwrap()],
        }
    }

    #[test]
    fn text_form_round_trips_and_tolerates_how_people_type() {
        let code = sample();
        let text = code.to_string();
        assert_eq!(text.parse::<PairingCode>(), Ok(code.clone()));
        assert_eq!(
            text.to_lowercase().replace('-', " ").parse(),
            Ok(code.clone())
        );
        let one_addr = PairingCode {
            addresses: vec!["10.0.0.2".parse().unwrap()],
            ..code
        };
        // One IPv4 address: 82 bytes, 132 characters in 17 groups.
        assert_eq!(one_addr.to_string().replace('-', "").len(), 132);
    }

    #[test]
    fn typos_and_damage_are_named() {
        let text = sample().to_string();
        let mut chars: Vec<char> = text.chars().collect();
        let i = chars.iter().position(|c| *c != '-').unwrap() + 10;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let typo: String = chars.iter().collect();
        assert_eq!(typo.parse::<PairingCode>(), Err(PairingCodeError::Check));
        assert!(matches!(
            format!("{text}!").parse::<PairingCode>(),
            Err(PairingCodeError::Character { character: '!', .. })
        ));
        assert!(matches!(
            text[..40].parse::<PairingCode>(),
            Err(PairingCodeError::Length(_)) | Err(PairingCodeError::Check)
        ));
    }

    #[test]
    fn another_version_is_named() {
        let mut bytes = sample().to_bytes();
        // Version 1: its PSK was derived from the secret alone.
        bytes[0] = 1;
        let n = bytes.len() - CHECK_LEN;
        let check = blake3::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(&check.as_bytes()[..CHECK_LEN]);
        assert_eq!(
            PairingCode::from_bytes(&bytes),
            Err(PairingCodeError::Version(1))
        );
    }

    #[test]
    fn expiry() {
        let code = sample();
        assert!(code.check_expiry(code.expires_at - 1).is_ok());
        assert_eq!(
            code.check_expiry(code.expires_at + 5),
            Err(PairingCodeError::Expired { ago: 5 })
        );
        // A week and the clock skew allowed: still a code `pair` could have made.
        let week = MAX_LIFETIME_S + CLOCK_SKEW_S;
        assert!(code.check_expiry(code.expires_at - week).is_ok());
        assert_eq!(
            code.check_expiry(code.expires_at - week - 1),
            Err(PairingCodeError::TooFarAhead { ahead: week + 1 })
        );
    }

    #[test]
    fn the_psk_binds_every_field_of_the_code() {
        let code = sample();
        // A regression vector: the PSK of `sample()` (BLAKE3 derive_key over its encoding).
        assert_eq!(
            hex::encode(code.psk()),
            "488d126320bc379e4ad9e6b20d2e92bf62e5caf77c1300ebd275045f6b8e84a1"
        );
        let changed = [
            PairingCode {
                role: Role::Vault,
                ..code.clone()
            },
            PairingCode {
                noise_key: [8; 32],
                ..code.clone()
            },
            PairingCode {
                secret: [10; 32],
                ..code.clone()
            },
            PairingCode {
                expires_at: code.expires_at + 1,
                ..code.clone()
            },
            PairingCode {
                port: code.port + 1,
                ..code.clone()
            },
            PairingCode {
                addresses: vec!["192.168.1.21".parse().unwrap()],
                ..code.clone()
            },
        ];
        for other in &changed {
            assert_ne!(other.psk(), code.psk(), "{other:?}");
        }
        // What the joiner reads back derives what the inviter derived.
        assert_eq!(
            PairingCode::from_bytes(&code.to_bytes()).unwrap().psk(),
            code.psk()
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_and_bytes_never_panic(s in ".{0,200}", b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = s.parse::<PairingCode>();
            prop_assert!(PairingCode::from_bytes(&b).is_err() || b.len() >= 75);
        }
    }
}
