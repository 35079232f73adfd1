//! [`Sketch`]: a rateless invertible Bloom lookup table over items, the set sketch a session
//! tries before splitting ranges when two sets differ by little.
//!
//! The design follows rateless IBLTs (Yang, Gilad and Alizadeh, SIGCOMM 2024): a set is coded
//! into an endless sequence of [`CodedSymbol`]s, and each item is folded into symbol `i` with
//! probability `1 / (1 + i/2)` (always into symbol 0), at indices drawn from a generator seeded
//! by the item's hash. A symbol holds the XOR of its items' timestamps, IDs and 4-byte checks,
//! and their count modulo 256. Because every prefix of the sequence is itself a sketch, the
//! store keeps the first [`MAX_SKETCH_SYMBOLS`] up to date on insert (about 16 symbols touched
//! per item) and a session copies as long a prefix as the difference needs: no session ever
//! reads the whole set to build one.
//!
//! Subtracting two sketches of the same length gives a sketch of the symmetric difference;
//! [`decode`] peels it (a symbol with count ±1 whose check matches, and whose item maps to
//! that index, holds exactly one item). About 1.4 symbols per difference suffice once `d` is in
//! the hundreds, more for tiny `d`. Decoding can fail (too few symbols) or, with negligible
//! probability, succeed wrongly; the session therefore confirms every result against the
//! peer's root fingerprint and falls back to range splitting, so neither yields a wrong answer.
//!
//! This module does not use XOR as a fingerprint: the range fingerprints stay hashes of sums.
//! XOR here is only the IBLT's cell arithmetic, and a wrong peel is caught by the confirmation.

use std::collections::{BTreeSet, VecDeque};

use super::item::{ID_LEN, Item};

/// The most coded symbols a sketch in a frame may have, and how many a [`Sketch`] keeps.
pub const MAX_SKETCH_SYMBOLS: usize = 4096;

/// Bytes of one coded symbol on the wire: count (1), timestamp (8), ID (32), check (4).
pub(crate) const SYMBOL_LEN: usize = 1 + 8 + ID_LEN + 4;

/// The BLAKE3 key-derivation context of an item's sketch hash.
const SKETCH_CONTEXT: &str = "photomesh 2026 reconcile sketch item hash v1";

/// One cell of a rateless IBLT: XORs of the timestamps, IDs and checks of the items coded into
/// it, and their count modulo 256 (a difference of counts is all decoding needs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodedSymbol {
    count: u8,
    timestamp: u64,
    id: [u8; ID_LEN],
    check: u32,
}

impl CodedSymbol {
    /// Folds `item` (with its check) in, counting it `+1` (`add`) or `-1`.
    fn toggle(&mut self, item: &Item, check: u32, add: bool) {
        self.count = if add {
            self.count.wrapping_add(1)
        } else {
            self.count.wrapping_sub(1)
        };
        self.timestamp ^= item.timestamp;
        for (a, b) in self.id.iter_mut().zip(item.id.iter()) {
            *a ^= b;
        }
        self.check ^= check;
    }

    /// `self - other`: a symbol of the items in one set's cell and not the other's.
    fn subtract(&self, other: &CodedSymbol) -> CodedSymbol {
        let mut id = self.id;
        for (a, b) in id.iter_mut().zip(other.id.iter()) {
            *a ^= b;
        }
        CodedSymbol {
            count: self.count.wrapping_sub(other.count),
            timestamp: self.timestamp ^ other.timestamp,
            id,
            check: self.check ^ other.check,
        }
    }

    fn is_zero(&self) -> bool {
        *self == CodedSymbol::default()
    }

    /// Appends the symbol's [`SYMBOL_LEN`] bytes.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.push(self.count);
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.check.to_le_bytes());
    }

    /// Reads a symbol from exactly [`SYMBOL_LEN`] bytes; every byte pattern is a valid symbol.
    pub(crate) fn read(bytes: &[u8; SYMBOL_LEN]) -> Self {
        let mut timestamp = [0; 8];
        timestamp.copy_from_slice(&bytes[1..9]);
        let mut id = [0; ID_LEN];
        id.copy_from_slice(&bytes[9..9 + ID_LEN]);
        let mut check = [0; 4];
        check.copy_from_slice(&bytes[9 + ID_LEN..]);
        CodedSymbol {
            count: bytes[0],
            timestamp: u64::from_le_bytes(timestamp),
            id,
            check: u32::from_le_bytes(check),
        }
    }
}

/// The first symbols of a set's rateless IBLT, kept up to date as items are added or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sketch {
    symbols: Vec<CodedSymbol>,
}

impl Default for Sketch {
    fn default() -> Self {
        Self::new()
    }
}

impl Sketch {
    /// An empty set's sketch of [`MAX_SKETCH_SYMBOLS`] symbols.
    pub fn new() -> Self {
        Self::with_len(MAX_SKETCH_SYMBOLS)
    }

    /// An empty set's sketch of `len` symbols (at most [`MAX_SKETCH_SYMBOLS`]).
    pub fn with_len(len: usize) -> Self {
        Self {
            symbols: vec![CodedSymbol::default(); len.min(MAX_SKETCH_SYMBOLS)],
        }
    }

    /// Adds `item`, touching the ~16 symbols it maps to. The caller adds each item once.
    pub fn insert(&mut self, item: &Item) {
        self.toggle(item, true);
    }

    /// Removes an item that was added.
    pub fn remove(&mut self, item: &Item) {
        self.toggle(item, false);
    }

    fn toggle(&mut self, item: &Item, add: bool) {
        let (check, mut indices) = mapping(item);
        let len = self.symbols.len() as u64;
        while let Some(index) = indices.next_below(len) {
            if let Some(symbol) = self.symbols.get_mut(index as usize) {
                symbol.toggle(item, check, add);
            }
        }
    }

    /// The symbols, in order.
    pub fn symbols(&self) -> &[CodedSymbol] {
        &self.symbols
    }

    /// The heap memory the sketch holds, in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.symbols.capacity() * size_of::<CodedSymbol>()
    }
}

/// What decoding two sketches found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Difference {
    /// Items only the peer (the first sketch) holds, in order.
    pub(crate) theirs: Vec<Item>,
    /// Items only this side (the second sketch) holds, in order.
    pub(crate) ours: Vec<Item>,
}

/// Peels `theirs - ours` (over `theirs.len()` symbols), or `None` if it does not peel to zero.
///
/// A success is what the symbols say, not proof: the caller confirms it against the sets.
pub(crate) fn decode(theirs: &[CodedSymbol], ours: &[CodedSymbol]) -> Option<Difference> {
    if ours.len() < theirs.len() {
        return None;
    }
    let mut cells: Vec<CodedSymbol> = theirs
        .iter()
        .zip(ours.iter())
        .map(|(t, o)| t.subtract(o))
        .collect();
    let len = cells.len() as u64;
    let mut found_theirs = BTreeSet::new();
    let mut found_ours = BTreeSet::new();
    // Each peel empties at least one cell for good only if it is genuine; a bound on peels
    // keeps hostile symbols from looping.
    let max_items = 2 * cells.len() + 16;
    let mut queue: VecDeque<usize> = (0..cells.len()).collect();
    while let Some(at) = queue.pop_front() {
        let cell = cells[at];
        let add = match cell.count {
            1 => true,
            255 => false,
            _ => continue,
        };
        let item = Item::new(cell.timestamp, cell.id);
        let (check, mut indices) = mapping(&item);
        if check != cell.check {
            continue;
        }
        // A pure cell's item must map to it; this rejects most false positives for free.
        let mut maps_here = false;
        let mut touched = Vec::new();
        while let Some(index) = indices.next_below(len) {
            maps_here |= index == at as u64;
            touched.push(index as usize);
        }
        if !maps_here {
            continue;
        }
        let fresh = if add {
            found_theirs.insert(item)
        } else {
            found_ours.insert(item)
        };
        if !fresh || found_theirs.len() + found_ours.len() > max_items {
            return None;
        }
        for index in touched {
            if let Some(other) = cells.get_mut(index) {
                // Undo the item: count it the other way.
                other.toggle(&item, check, !add);
                if matches!(other.count, 1 | 255) {
                    queue.push_back(index);
                }
            }
        }
    }
    if !cells.iter().all(CodedSymbol::is_zero) {
        return None;
    }
    if found_theirs.iter().any(|item| found_ours.contains(item)) {
        return None;
    }
    Some(Difference {
        theirs: found_theirs.into_iter().collect(),
        ours: found_ours.into_iter().collect(),
    })
}

/// An item's 4-byte check and the generator of the symbol indices it maps to.
fn mapping(item: &Item) -> (u32, Indices) {
    let mut hasher = blake3::Hasher::new_derive_key(SKETCH_CONTEXT);
    hasher.update(&item.timestamp.to_le_bytes());
    hasher.update(&item.id);
    let hash = hasher.finalize();
    let bytes = hash.as_bytes();
    let mut check = [0; 4];
    check.copy_from_slice(&bytes[..4]);
    let mut seed = [0; 8];
    seed.copy_from_slice(&bytes[4..12]);
    (
        u32::from_le_bytes(check),
        Indices {
            state: u64::from_le_bytes(seed),
            next: 0,
        },
    )
}

/// The increasing symbol indices one item maps to: 0, then gaps drawn so that index `i` is
/// included with probability `2 / (i + 2)`, independently of the others.
struct Indices {
    /// SplitMix64 state.
    state: u64,
    /// The next index to yield.
    next: u64,
}

impl Indices {
    /// The next index if it is below `len`.
    fn next_below(&mut self, len: u64) -> Option<u64> {
        let index = self.next;
        if index >= len {
            return None;
        }
        // Given index i, no index in (i, j] is chosen with probability
        // prod_{t=i+1..=j} t / (t + 2) = (i+1)(i+2) / ((j+1)(j+2)). Draw r in (0, 1] and take
        // the smallest j with (j+1)(j+2) >= (i+1)(i+2) / r. IEEE-754 square roots are exactly
        // rounded, so every platform draws the same indices.
        let r = ((self.random() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let i = index as f64;
        let target = (i + 1.0) * (i + 2.0) / r;
        let j = (((1.0 + 4.0 * target).sqrt() - 3.0) / 2.0).ceil();
        self.next = if j < 1e15 {
            (j as u64).max(index + 1)
        } else {
            u64::MAX
        };
        Some(index)
    }

    fn random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// How many symbols to send for a difference of about `estimate` items: 1.7 per item plus a
/// fixed margin. `tests::sketch_size_decodes_reliably` pins the failure rate it gives (about
/// 1% for `d` from 5 to 40, less above; at `d` = 10 it is 33 symbols, 1,485 bytes).
pub(crate) fn symbols_for(estimate: u64) -> usize {
    let wanted = estimate
        .saturating_mul(17)
        .div_ceil(10)
        .saturating_add(SLACK)
        .min(MAX_SKETCH_SYMBOLS as u64);
    usize::try_from(wanted).unwrap_or(MAX_SKETCH_SYMBOLS)
}

/// The symbols added to every sketch beyond 1.7 per estimated difference: small differences
/// need relatively more, as two items can land in the same few cells.
const SLACK: u64 = 16;

#[cfg(test)]
mod tests {
    use super::*;

    fn item(seed: u64) -> Item {
        Item::new(seed % 1000, *blake3::hash(&seed.to_le_bytes()).as_bytes())
    }

    fn sketch_of(items: impl IntoIterator<Item = Item>) -> Sketch {
        let mut sketch = Sketch::new();
        items.into_iter().for_each(|i| sketch.insert(&i));
        sketch
    }

    #[test]
    fn an_item_maps_to_about_sixteen_symbols() {
        let total: usize = (0..1000u64)
            .map(|s| {
                let (_, mut indices) = mapping(&item(s));
                std::iter::from_fn(|| indices.next_below(MAX_SKETCH_SYMBOLS as u64)).count()
            })
            .sum();
        let mean = total as f64 / 1000.0;
        assert!((13.0..19.0).contains(&mean), "mean {mean}");
    }

    #[test]
    fn removing_undoes_inserting() {
        let mut sketch = sketch_of((0..50).map(item));
        for s in 0..50 {
            sketch.remove(&item(s));
        }
        assert_eq!(sketch, Sketch::new());
    }

    #[test]
    fn decodes_a_two_sided_difference() {
        let shared = (0..5000).map(item);
        let ours = sketch_of(shared.clone().chain((10_000..10_030).map(item)));
        let theirs = sketch_of(shared.chain((20_000..20_040).map(item)));
        let len = symbols_for(70);
        let diff = decode(&theirs.symbols()[..len], ours.symbols()).expect("peels");
        let mut want_theirs: Vec<Item> = (20_000..20_040).map(item).collect();
        let mut want_ours: Vec<Item> = (10_000..10_030).map(item).collect();
        want_theirs.sort();
        want_ours.sort();
        assert_eq!(diff.theirs, want_theirs);
        assert_eq!(diff.ours, want_ours);
    }

    #[test]
    fn too_short_a_sketch_fails_instead_of_lying() {
        let ours = sketch_of((0..100).map(item));
        let theirs = sketch_of((0..100).chain(1000..1300).map(item));
        assert_eq!(decode(&theirs.symbols()[..40], ours.symbols()), None);
    }

    #[test]
    fn sketch_size_decodes_reliably() {
        // Measures the margin `symbols_for` gives: failures only cost a fallback, but they
        // should be rare for the small differences sent without being asked for.
        for d in [1u64, 2, 5, 10, 20, 40, 100, 1000] {
            let trials = if d >= 100 { 20 } else { 300 };
            let mut failures = 0;
            for trial in 0..trials {
                let base = trial * 1_000_000;
                let ours = sketch_of((base..base + 3).map(item));
                let theirs = sketch_of((base..base + 3 + d).map(item));
                let len = symbols_for(d);
                if decode(&theirs.symbols()[..len], ours.symbols()).is_none() {
                    failures += 1;
                }
            }
            assert!(
                failures * 50 <= trials,
                "d = {d}: {failures} of {trials} sketches of {} symbols failed",
                symbols_for(d)
            );
        }
    }

    #[test]
    fn symbols_round_trip_through_bytes() {
        let sketch = sketch_of((0..10).map(item));
        for symbol in sketch.symbols().iter().take(20) {
            let mut bytes = Vec::new();
            symbol.write(&mut bytes);
            let array: [u8; SYMBOL_LEN] = bytes.as_slice().try_into().expect("symbol length");
            assert_eq!(CodedSymbol::read(&array), *symbol);
        }
    }
}
