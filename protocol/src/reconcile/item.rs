//! Items, range bounds, ID sums and fingerprints: the values reconciliation compares.

use std::cmp::Ordering;

/// Length in bytes of an item's ID (a BLAKE3 hash: a record ID or a blob ID).
pub const ID_LEN: usize = 32;

/// Length in bytes of a range [`Fingerprint`].
pub const FINGERPRINT_LEN: usize = 16;

/// The BLAKE3 key-derivation context of range fingerprints.
const FINGERPRINT_CONTEXT: &str = "photomesh 2026 reconcile range fingerprint v1";

/// One member of a reconciled set, ordered by `(timestamp, id)`.
///
/// For records the timestamp is the time the record was made; for sets with no natural time
/// (blob IDs) any stable number works, `0` included. Sets are compared by this whole key: two
/// items with the same ID and different timestamps are different items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Item {
    /// The sort key's first part, usually seconds or milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The sort key's second part: the item's 32-byte ID.
    pub id: [u8; ID_LEN],
}

impl Item {
    /// Makes an item from its timestamp and ID.
    pub fn new(timestamp: u64, id: [u8; ID_LEN]) -> Self {
        Self { timestamp, id }
    }
}

/// The exclusive upper end of a range: every item that sorts below it is inside.
///
/// A finite bound is a timestamp and an ID prefix (the rest of the ID is zero), so that the
/// bound between two neighbouring items costs only the bytes that tell them apart. The
/// infinite bound sorts above every item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bound {
    infinite: bool,
    timestamp: u64,
    id: [u8; ID_LEN],
    prefix_len: u8,
}

impl Bound {
    /// The lowest bound: no item sorts below it.
    pub const MIN: Bound = Bound {
        infinite: false,
        timestamp: 0,
        id: [0; ID_LEN],
        prefix_len: 0,
    };

    /// The infinite bound: every item sorts below it.
    pub const MAX: Bound = Bound {
        infinite: true,
        timestamp: 0,
        id: [0; ID_LEN],
        prefix_len: 0,
    };

    /// The bound exactly at `item`: `item` itself is not below it.
    pub fn at(item: &Item) -> Self {
        Self {
            infinite: false,
            timestamp: item.timestamp,
            id: item.id,
            prefix_len: ID_LEN as u8,
        }
    }

    /// The shortest bound `b` with `below < b <= above`; `below` must sort before `above`.
    pub fn between(below: &Item, above: &Item) -> Self {
        if below.timestamp != above.timestamp {
            return Self {
                infinite: false,
                timestamp: above.timestamp,
                id: [0; ID_LEN],
                prefix_len: 0,
            };
        }
        let shared = below
            .id
            .iter()
            .zip(above.id.iter())
            .take_while(|(a, b)| a == b)
            .count();
        let prefix_len = (shared + 1).min(ID_LEN);
        let mut id = [0; ID_LEN];
        id[..prefix_len].copy_from_slice(&above.id[..prefix_len]);
        Self {
            infinite: false,
            timestamp: above.timestamp,
            id,
            prefix_len: prefix_len as u8,
        }
    }

    /// The shortest bound above `item` that no item with its timestamp reaches: the next
    /// timestamp with an empty prefix, or `None` at the last timestamp.
    pub fn after(item: &Item) -> Option<Self> {
        Some(Self {
            infinite: false,
            timestamp: item.timestamp.checked_add(1)?,
            id: [0; ID_LEN],
            prefix_len: 0,
        })
    }

    /// Makes a finite bound from a timestamp and an ID prefix of at most 32 bytes, or `None`
    /// when the prefix is longer.
    pub fn from_prefix(timestamp: u64, prefix: &[u8]) -> Option<Self> {
        if prefix.len() > ID_LEN {
            return None;
        }
        let mut id = [0; ID_LEN];
        id[..prefix.len()].copy_from_slice(prefix);
        Some(Self {
            infinite: false,
            timestamp,
            id,
            prefix_len: prefix.len() as u8,
        })
    }

    /// Whether this is the infinite bound.
    pub fn is_infinite(&self) -> bool {
        self.infinite
    }

    /// The timestamp of a finite bound (`u64::MAX` for the infinite one).
    pub fn timestamp(&self) -> u64 {
        if self.infinite {
            u64::MAX
        } else {
            self.timestamp
        }
    }

    /// The bytes of the ID prefix that the bound carries.
    pub fn prefix(&self) -> &[u8] {
        &self.id[..usize::from(self.prefix_len)]
    }

    /// Whether `item` sorts below this bound (is inside a range that ends here).
    pub fn is_above(&self, item: &Item) -> bool {
        self.infinite || (item.timestamp, item.id) < (self.timestamp, self.id)
    }
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.infinite, self.timestamp, self.id).cmp(&(other.infinite, other.timestamp, other.id))
    }
}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The sum of a set of items modulo 2^256, each item counted as its ID read as a little-endian
/// 256-bit integer plus its timestamp times 2^192.
///
/// Sums are commutative and can be subtracted, so the sum of any range is the difference of
/// two prefix sums that a tree caches. Unlike XOR, adding an item twice does not cancel it.
/// The timestamp term keeps `(t1, id)` and `(t2, id)` apart: with IDs alone, two sets that
/// hold the same ID under different timestamps would have equal fingerprints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IdSum([u64; 4]);

impl IdSum {
    /// The sum of no IDs.
    pub const ZERO: IdSum = IdSum([0; 4]);

    /// Adds one ID.
    pub fn add_id(&mut self, id: &[u8; ID_LEN]) {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(id.chunks_exact(8)) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(bytes);
        }
        self.add(&IdSum(limbs));
    }

    /// Adds one item: its ID plus its timestamp times 2^192.
    pub fn add_item(&mut self, item: &Item) {
        self.add_id(&item.id);
        self.add(&IdSum([0, 0, 0, item.timestamp]));
    }

    /// Subtracts one item.
    pub fn sub_item(&mut self, item: &Item) {
        let mut one = IdSum::ZERO;
        one.add_item(item);
        self.sub(&one);
    }

    /// Adds another sum.
    pub fn add(&mut self, other: &IdSum) {
        let mut carry = false;
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            let (s1, c1) = a.overflowing_add(*b);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *a = s2;
            carry = c1 || c2;
        }
    }

    /// Subtracts another sum.
    pub fn sub(&mut self, other: &IdSum) {
        let mut borrow = false;
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            let (d1, b1) = a.overflowing_sub(*b);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            *a = d2;
            borrow = b1 || b2;
        }
    }

    /// The sum as 32 little-endian bytes.
    pub fn to_bytes(&self) -> [u8; ID_LEN] {
        let mut out = [0; ID_LEN];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.0.iter()) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// The fingerprint of a range whose IDs add up to this sum and that holds `count` items.
    pub fn fingerprint(&self, count: u64) -> Fingerprint {
        let mut hasher = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
        hasher.update(&self.to_bytes());
        hasher.update(&count.to_le_bytes());
        let hash = hasher.finalize();
        let mut out = [0; FINGERPRINT_LEN];
        out.copy_from_slice(&hash.as_bytes()[..FINGERPRINT_LEN]);
        Fingerprint(out)
    }
}

/// A range's fingerprint: BLAKE3 of (sum of its items mod 2^256, count), truncated to 16
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; FINGERPRINT_LEN]);

#[cfg(test)]
mod tests {
    use super::*;

    fn item(timestamp: u64, first: u8, second: u8) -> Item {
        let mut id = [0; ID_LEN];
        id[0] = first;
        id[1] = second;
        Item::new(timestamp, id)
    }

    #[test]
    fn between_is_shortest_separating_bound() {
        let (a, b) = (item(5, 1, 2), item(5, 1, 3));
        let bound = Bound::between(&a, &b);
        assert_eq!(bound.prefix(), &[1, 3]);
        assert!(bound.is_above(&a));
        assert!(!bound.is_above(&b));
        let bound = Bound::between(&a, &item(6, 0, 0));
        assert!(bound.prefix().is_empty());
        assert!(bound.is_above(&a) && !bound.is_above(&item(6, 0, 0)));
        assert!(Bound::MAX > Bound::at(&item(u64::MAX, 255, 255)));
    }

    #[test]
    fn sums_add_and_subtract_with_carry() {
        let mut sum = IdSum::ZERO;
        sum.add_id(&[0xff; ID_LEN]);
        sum.add_id(&item(0, 1, 0).id);
        assert_eq!(sum.to_bytes()[0], 0);
        assert_eq!(sum.to_bytes()[1], 0);
        let mut back = sum;
        back.sub(&IdSum([1, 0, 0, 0]));
        assert_eq!(back.to_bytes(), [0xff; ID_LEN]);
        assert_ne!(sum.fingerprint(2), sum.fingerprint(3));
        assert_ne!(IdSum::ZERO.fingerprint(0), sum.fingerprint(2));
    }

    #[test]
    fn one_id_under_two_timestamps_sums_differently() {
        // The pre-version-2 sums counted IDs alone, so {(89, x)} and {(164, x)} looked equal.
        let (early, late) = (item(89, 62, 246), item(164, 62, 246));
        let (mut a, mut b) = (IdSum::ZERO, IdSum::ZERO);
        a.add_item(&early);
        b.add_item(&late);
        assert_ne!(a.fingerprint(1), b.fingerprint(1));
        a.sub_item(&early);
        assert_eq!(a, IdSum::ZERO);
    }
}
