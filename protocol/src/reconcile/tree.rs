//! The [`Store`] a session reads, and [`FingerprintTree`], the in-memory store that caches
//! ID sums so any range's fingerprint costs O(log n), and keeps the set's [`Sketch`].

use std::sync::Arc;

use super::item::{Bound, IdSum, Item};
use super::sketch::{CodedSymbol, Sketch};

/// A sorted set of items that a reconciliation session can read.
///
/// The session only needs ranks, prefix sums, ordered iteration and the set's sketch, so any
/// ordered index can back it: [`FingerprintTree`] in memory, or later an on-disk index that
/// keeps the same sums and a [`Sketch`] updated on insert.
pub trait Store {
    /// The number of items in the set.
    fn len(&self) -> u64;

    /// Whether the set holds no item.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of items below `bound` and the sum of their IDs.
    fn prefix(&self, bound: &Bound) -> (u64, IdSum);

    /// The item at position `rank` in sort order, or `None` past the end.
    fn item_at(&self, rank: u64) -> Option<Item>;

    /// Calls `visit` on the items from position `rank` on, in order, until it returns `false`.
    fn visit_from(&self, rank: u64, visit: &mut dyn FnMut(&Item) -> bool);

    /// Whether the set holds `item`.
    fn contains(&self, item: &Item) -> bool;

    /// The first symbols of the set's rateless sketch ([`Sketch::symbols`]), kept up to date
    /// as items arrive so that reading them costs nothing per session. A store that keeps no
    /// sketch returns an empty slice; sessions then only split ranges.
    fn sketch(&self) -> &[CodedSymbol];
}

/// Most items a leaf holds; a full leaf splits in two on insert.
const LEAF_MAX: usize = 64;
/// Most children an inner node holds; a full node splits in two on insert.
const INNER_MAX: usize = 32;

/// A B+-tree of items whose inner nodes cache each child's count and item sum.
///
/// Insertion updates the cached sums on the path from the root, so the tree is built once and
/// kept up to date as items arrive; no session rebuilds it. A built tree holds each item's
/// 40 bytes in a full leaf plus a share of the per-leaf summary (about 1.04 times 40 bytes in
/// all). Items inserted in order keep leaves full; in random order they leave them about
/// two-thirds full, until [`FingerprintTree::compact`]. The tree also keeps the set's
/// [`Sketch`] (a fixed 200 KB), updated by the same insert.
///
/// A clone shares every node with the original (nodes are reference counted): it costs the
/// root and the sketch, and an insert or removal on either copies only the nodes on its path.
/// So a session can read a snapshot of a set that keeps growing.
#[derive(Debug, Clone)]
pub struct FingerprintTree {
    root: Node,
    len: u64,
    sketch: Sketch,
}

#[derive(Debug)]
enum Node {
    Leaf(Vec<Item>),
    Inner(Vec<Child>),
}

impl Clone for Node {
    /// A copy with room to grow to a full node, so the insert that follows a copy
    /// (`Arc::make_mut`) does not reallocate past the node's size.
    fn clone(&self) -> Self {
        match self {
            Self::Leaf(items) => {
                let mut copy = Vec::with_capacity(LEAF_MAX.max(items.len()));
                copy.extend_from_slice(items);
                Self::Leaf(copy)
            }
            Self::Inner(children) => {
                let mut copy = Vec::with_capacity((INNER_MAX + 1).max(children.len()));
                copy.extend(children.iter().cloned());
                Self::Inner(copy)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Child {
    node: Arc<Node>,
    count: u64,
    sum: IdSum,
    /// The largest item in the child's subtree.
    last: Item,
}

impl Default for FingerprintTree {
    fn default() -> Self {
        Self::new()
    }
}

impl FingerprintTree {
    /// Makes an empty tree.
    pub fn new() -> Self {
        Self {
            root: Node::Leaf(Vec::new()),
            len: 0,
            sketch: Sketch::new(),
        }
    }

    /// Builds a tree from items in any order, ignoring duplicates, in O(n log n).
    pub fn from_items(items: impl IntoIterator<Item = Item>) -> Self {
        let mut items: Vec<Item> = items.into_iter().collect();
        items.sort_unstable();
        Self::from_sorted(items)
    }

    /// Builds a tree from items in increasing order, in O(n), holding no more than the tree
    /// itself: a set read in order from an index is never held twice. Repeated items are
    /// ignored; an item out of order is inserted once the rest is built.
    pub fn from_sorted(items: impl IntoIterator<Item = Item>) -> Self {
        let mut sketch = Sketch::new();
        let mut len = 0;
        let mut late = Vec::new();
        // Leaves are full and hold no spare room: a set is mostly loaded once and grows
        // slowly, and a leaf that splits gets room then.
        let mut level: Vec<Child> = Vec::new();
        let mut leaf: Vec<Item> = Vec::with_capacity(LEAF_MAX);
        let mut previous: Option<Item> = None;
        for item in items {
            match previous {
                Some(p) if item == p => continue,
                Some(p) if item < p => {
                    late.push(item);
                    continue;
                }
                _ => {}
            }
            previous = Some(item);
            sketch.insert(&item);
            len += 1;
            leaf.push(item);
            if leaf.len() == LEAF_MAX {
                let full = std::mem::replace(&mut leaf, Vec::with_capacity(LEAF_MAX));
                level.push(Child::new(Node::Leaf(full)));
            }
        }
        if !leaf.is_empty() {
            leaf.shrink_to_fit();
            level.push(Child::new(Node::Leaf(leaf)));
        }
        let mut tree = Self::from_leaves(level, len, sketch);
        for item in late {
            tree.insert(item);
        }
        tree
    }

    /// The tree over `level`, a row of leaves in order holding `len` items in all.
    fn from_leaves(mut level: Vec<Child>, len: u64, sketch: Sketch) -> Self {
        if level.is_empty() {
            return Self::new();
        }
        while level.len() > 1 {
            let per_node = INNER_MAX * 3 / 4;
            let mut next = Vec::with_capacity(level.len() / per_node + 1);
            let mut rest = level.into_iter().peekable();
            while rest.peek().is_some() {
                let mut children = Vec::with_capacity(INNER_MAX + 1);
                children.extend(rest.by_ref().take(per_node));
                next.push(Child::new(Node::Inner(children)));
            }
            level = next;
        }
        let root = level
            .pop()
            .map(|child| Arc::unwrap_or_clone(child.node))
            .unwrap_or(Node::Leaf(Vec::new()));
        Self { root, len, sketch }
    }

    /// Inserts `item`; returns `false` if the tree already held it.
    pub fn insert(&mut self, item: Item) -> bool {
        // Looked up first, so that a present item copies no node shared with a clone.
        if self.contains(&item) {
            return false;
        }
        match insert_into(&mut self.root, item) {
            Inserted::AlreadyPresent => false,
            Inserted::Done => {
                self.len += 1;
                self.sketch.insert(&item);
                true
            }
            Inserted::Split(right) => {
                let left = std::mem::replace(&mut self.root, Node::Inner(Vec::new()));
                let mut children = Vec::with_capacity(INNER_MAX + 1);
                children.push(Child::new(left));
                children.push(Child::new(right));
                self.root = Node::Inner(children);
                self.len += 1;
                self.sketch.insert(&item);
                true
            }
        }
    }

    /// Removes `item`; returns `false` if the tree did not hold it. Nodes are not merged
    /// again (an emptied one is dropped), so a tree that loses many items keeps some slack.
    pub fn remove(&mut self, item: &Item) -> bool {
        if !self.contains(item) || !remove_from(&mut self.root, item) {
            return false;
        }
        self.len -= 1;
        self.sketch.remove(item);
        true
    }

    /// Repacks the leaves under each inner node into full ones, where inserts left them part
    /// empty: a set filled in random order (records fetched by ID, ordered by time) holds
    /// about 1.45 times its items' bytes, a compacted one about 1.1. Items and summaries
    /// stay as they were; nodes shared with a clone are left as they are, so a session's
    /// snapshot costs nothing more. O(n) when there is slack; worth calling after many
    /// inserts, not after each.
    pub fn compact(&mut self) {
        compact_node(&mut self.root);
    }

    /// Every item, in order.
    pub fn items(&self) -> Vec<Item> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        self.visit_from(0, &mut |item| {
            out.push(*item);
            true
        });
        out
    }

    /// The heap memory the tree holds, in bytes (allocated capacity, not just what is used).
    pub fn heap_bytes(&self) -> usize {
        fn node_bytes(node: &Node) -> usize {
            match node {
                Node::Leaf(items) => items.capacity() * size_of::<Item>(),
                Node::Inner(children) => {
                    children.capacity() * size_of::<Child>()
                        + children
                            .iter()
                            .map(|c| size_of::<Node>() + node_bytes(&c.node))
                            .sum::<usize>()
                }
            }
        }
        node_bytes(&self.root) + self.sketch.heap_bytes()
    }
}

impl Store for FingerprintTree {
    fn len(&self) -> u64 {
        self.len
    }

    fn prefix(&self, bound: &Bound) -> (u64, IdSum) {
        let mut count = 0;
        let mut sum = IdSum::ZERO;
        let mut node = &self.root;
        loop {
            match node {
                Node::Leaf(items) => {
                    for item in items.iter().take_while(|item| bound.is_above(item)) {
                        count += 1;
                        sum.add_item(item);
                    }
                    return (count, sum);
                }
                Node::Inner(children) => {
                    let mut next = None;
                    for child in children {
                        if bound.is_above(&child.last) {
                            count += child.count;
                            sum.add(&child.sum);
                        } else {
                            next = Some(&child.node);
                            break;
                        }
                    }
                    match next {
                        Some(child) => node = child,
                        None => return (count, sum),
                    }
                }
            }
        }
    }

    fn item_at(&self, rank: u64) -> Option<Item> {
        let mut rank = rank;
        let mut node = &self.root;
        loop {
            match node {
                Node::Leaf(items) => return items.get(usize::try_from(rank).ok()?).copied(),
                Node::Inner(children) => {
                    let mut next = None;
                    for child in children {
                        if rank < child.count {
                            next = Some(&child.node);
                            break;
                        }
                        rank -= child.count;
                    }
                    node = next?;
                }
            }
        }
    }

    fn visit_from(&self, rank: u64, visit: &mut dyn FnMut(&Item) -> bool) {
        visit_node(&self.root, rank, visit);
    }

    fn sketch(&self) -> &[CodedSymbol] {
        self.sketch.symbols()
    }

    fn contains(&self, item: &Item) -> bool {
        let mut node = &self.root;
        loop {
            match node {
                Node::Leaf(items) => return items.binary_search(item).is_ok(),
                Node::Inner(children) => match children.iter().find(|c| c.last >= *item) {
                    Some(child) => node = &child.node,
                    None => return false,
                },
            }
        }
    }
}

/// Visits the items of `node` from position `skip` on; returns `false` once `visit` stopped.
fn visit_node(node: &Node, skip: u64, visit: &mut dyn FnMut(&Item) -> bool) -> bool {
    match node {
        Node::Leaf(items) => {
            let start = usize::try_from(skip).unwrap_or(usize::MAX).min(items.len());
            items[start..].iter().all(visit)
        }
        Node::Inner(children) => {
            let mut skip = skip;
            for child in children {
                if skip >= child.count {
                    skip -= child.count;
                    continue;
                }
                if !visit_node(&child.node, skip, visit) {
                    return false;
                }
                skip = 0;
            }
            true
        }
    }
}

enum Inserted {
    AlreadyPresent,
    Done,
    /// The node split; this is its new right sibling.
    Split(Node),
}

fn insert_into(node: &mut Node, item: Item) -> Inserted {
    match node {
        Node::Leaf(items) => {
            let Err(at) = items.binary_search(&item) else {
                return Inserted::AlreadyPresent;
            };
            if items.len() < LEAF_MAX {
                items.insert(at, item);
                return Inserted::Done;
            }
            let mut right = Vec::with_capacity(LEAF_MAX);
            if at == items.len() {
                // Past a full leaf's last item, as items arriving in order are: the leaf
                // stays full and the new one starts with the item (halving would leave
                // every leaf of an ordered fill half empty).
                right.push(item);
                return Inserted::Split(Node::Leaf(right));
            }
            right.extend(items.drain(LEAF_MAX / 2..));
            if at <= LEAF_MAX / 2 {
                items.insert(at, item);
            } else {
                right.insert(at - LEAF_MAX / 2, item);
            }
            Inserted::Split(Node::Leaf(right))
        }
        Node::Inner(children) => {
            let last = children.len().saturating_sub(1);
            let at = children.iter().position(|c| c.last >= item).unwrap_or(last);
            let Some(child) = children.get_mut(at) else {
                // An inner node always has children; an empty one cannot hold `item`.
                children.push(Child::new(Node::Leaf(vec![item])));
                return Inserted::Done;
            };
            match insert_into(Arc::make_mut(&mut child.node), item) {
                Inserted::AlreadyPresent => return Inserted::AlreadyPresent,
                Inserted::Done => {
                    child.count += 1;
                    child.sum.add_item(&item);
                    child.last = child.last.max(item);
                    return Inserted::Done;
                }
                Inserted::Split(right) => {
                    let right = Child::new(right);
                    child.count = child.count + 1 - right.count;
                    child.sum.add_item(&item);
                    child.sum.sub(&right.sum);
                    child.last = subtree_last(&child.node).unwrap_or(child.last);
                    children.insert(at + 1, right);
                }
            }
            if children.len() <= INNER_MAX {
                return Inserted::Done;
            }
            // The same for a node whose last child split: it stays full.
            let keep = if at + 2 == children.len() {
                INNER_MAX
            } else {
                INNER_MAX / 2
            };
            let mut right = Vec::with_capacity(INNER_MAX + 1);
            right.extend(children.drain(keep..));
            Inserted::Split(Node::Inner(right))
        }
    }
}

/// Removes `item` from `node`'s subtree, keeping each child's summary; a child left empty
/// is dropped.
fn remove_from(node: &mut Node, item: &Item) -> bool {
    match node {
        Node::Leaf(items) => match items.binary_search(item) {
            Ok(at) => {
                items.remove(at);
                true
            }
            Err(_) => false,
        },
        Node::Inner(children) => {
            let Some(at) = children.iter().position(|c| c.last >= *item) else {
                return false;
            };
            let child = &mut children[at];
            if !remove_from(Arc::make_mut(&mut child.node), item) {
                return false;
            }
            child.count -= 1;
            child.sum.sub_item(item);
            match subtree_last(&child.node) {
                Some(last) if child.count > 0 => child.last = last,
                _ => {
                    children.remove(at);
                }
            }
            true
        }
    }
}

fn compact_node(node: &mut Node) {
    let Node::Inner(children) = node else { return };
    let leaves = children
        .iter()
        .all(|c| matches!(*c.node, Node::Leaf(_)) && Arc::strong_count(&c.node) == 1);
    if !leaves {
        for child in children.iter_mut() {
            if let Some(node) = Arc::get_mut(&mut child.node) {
                compact_node(node);
            }
        }
        return;
    }
    let items: u64 = children.iter().map(|c| c.count).sum();
    let needed = usize::try_from(items.div_ceil(LEAF_MAX as u64)).unwrap_or(usize::MAX);
    if needed >= children.len() {
        return;
    }
    let mut packed = Vec::with_capacity(INNER_MAX + 1);
    let mut leaf = Vec::with_capacity(LEAF_MAX);
    for child in children.drain(..) {
        let Node::Leaf(items) = Arc::unwrap_or_clone(child.node) else {
            continue;
        };
        for item in items {
            leaf.push(item);
            if leaf.len() == LEAF_MAX {
                let full = std::mem::replace(&mut leaf, Vec::with_capacity(LEAF_MAX));
                packed.push(Child::new(Node::Leaf(full)));
            }
        }
    }
    if !leaf.is_empty() {
        packed.push(Child::new(Node::Leaf(leaf)));
    }
    *children = packed;
}

fn subtree_last(node: &Node) -> Option<Item> {
    match node {
        Node::Leaf(items) => items.last().copied(),
        Node::Inner(children) => children.last().map(|c| c.last),
    }
}

impl Child {
    /// Wraps a node, computing its summary from its direct contents.
    fn new(node: Node) -> Self {
        let (count, sum) = match &node {
            Node::Leaf(items) => {
                let mut sum = IdSum::ZERO;
                items.iter().for_each(|item| sum.add_item(item));
                (items.len() as u64, sum)
            }
            Node::Inner(children) => {
                let mut sum = IdSum::ZERO;
                children.iter().for_each(|c| sum.add(&c.sum));
                (children.iter().map(|c| c.count).sum(), sum)
            }
        };
        let last = subtree_last(&node).unwrap_or(Item::new(0, [0; 32]));
        Self {
            node: Arc::new(node),
            count,
            sum,
            last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_prefix(items: &[Item], bound: &Bound) -> (u64, IdSum) {
        let mut sum = IdSum::ZERO;
        let below: Vec<_> = items.iter().filter(|i| bound.is_above(i)).collect();
        below.iter().for_each(|i| sum.add_item(i));
        (below.len() as u64, sum)
    }

    fn arb_item() -> impl Strategy<Value = Item> {
        (0u64..50, any::<[u8; 32]>()).prop_map(|(t, id)| Item::new(t, id))
    }

    proptest! {
        #[test]
        fn tree_matches_a_sorted_vec(
            built in proptest::collection::vec(arb_item(), 0..300),
            inserted in proptest::collection::vec(arb_item(), 0..300),
            removed in proptest::collection::vec((any::<bool>(), any::<prop::sample::Index>(), arb_item()), 0..300),
            probes in proptest::collection::vec(arb_item(), 0..20),
            compact in any::<(bool, bool)>(),
        ) {
            let mut tree = FingerprintTree::from_items(built.iter().copied());
            let mut expected: std::collections::BTreeSet<Item> = built.into_iter().collect();
            for item in inserted {
                prop_assert_eq!(tree.insert(item), expected.insert(item));
            }
            if compact.0 {
                tree.compact();
            }
            // Removals of held items (picked by index) and of arbitrary ones, mixed.
            for (held, pick, other) in removed {
                let item = match (held, expected.len()) {
                    (true, n) if n > 0 => *expected.iter().nth(pick.index(n)).unwrap(),
                    _ => other,
                };
                prop_assert_eq!(tree.remove(&item), expected.remove(&item));
            }
            if compact.1 {
                tree.compact();
            }
            let expected: Vec<Item> = expected.into_iter().collect();
            prop_assert_eq!(tree.len(), expected.len() as u64);
            prop_assert_eq!(tree.items(), expected.clone());
            for (rank, item) in expected.iter().enumerate() {
                prop_assert_eq!(tree.item_at(rank as u64), Some(*item));
                prop_assert!(tree.contains(item));
            }
            prop_assert_eq!(tree.item_at(expected.len() as u64), None);
            for probe in probes {
                prop_assert_eq!(tree.contains(&probe), expected.contains(&probe));
                let bound = Bound::at(&probe);
                prop_assert_eq!(tree.prefix(&bound), naive_prefix(&expected, &bound));
            }
            prop_assert_eq!(tree.prefix(&Bound::MAX), naive_prefix(&expected, &Bound::MAX));
            let mut sketch = Sketch::new();
            expected.iter().for_each(|item| sketch.insert(item));
            prop_assert_eq!(tree.sketch(), sketch.symbols());
        }
    }

    proptest! {
        #[test]
        fn a_clone_is_a_snapshot_that_later_changes_to_either_do_not_reach(
            built in proptest::collection::vec(arb_item(), 0..500),
            changes in proptest::collection::vec((any::<bool>(), any::<bool>(), arb_item()), 0..200),
        ) {
            let mut tree = FingerprintTree::from_items(built.iter().copied());
            let snapshot = tree.clone();
            let before = tree.items();
            let mut copy = tree.clone();
            let mut expected: std::collections::BTreeSet<Item> = built.into_iter().collect();
            for (on_tree, insert, item) in changes {
                let target = if on_tree { &mut tree } else { &mut copy };
                if insert { target.insert(item); } else { target.remove(&item); }
                target.compact();
                if on_tree {
                    if insert { expected.insert(item); } else { expected.remove(&item); }
                }
            }
            prop_assert_eq!(snapshot.items(), before.clone());
            prop_assert_eq!(snapshot.prefix(&Bound::MAX), naive_prefix(&before, &Bound::MAX));
            let expected: Vec<Item> = expected.into_iter().collect();
            prop_assert_eq!(tree.items(), expected.clone());
            prop_assert_eq!(tree.prefix(&Bound::MAX), naive_prefix(&expected, &Bound::MAX));
        }
    }

    proptest! {
        #[test]
        fn building_from_a_mostly_sorted_stream_gives_the_same_set(
            mut items in proptest::collection::vec(arb_item(), 0..400),
            swaps in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..5),
        ) {
            items.sort_unstable();
            // A few out of order, and a few repeated.
            for (a, b) in swaps {
                if !items.is_empty() {
                    let (a, b) = (a.index(items.len()), b.index(items.len()));
                    items.swap(a, b);
                    items.push(items[a]);
                }
            }
            let streamed = FingerprintTree::from_sorted(items.iter().copied());
            let expected: std::collections::BTreeSet<Item> = items.into_iter().collect();
            let expected: Vec<Item> = expected.into_iter().collect();
            prop_assert_eq!(streamed.len(), expected.len() as u64);
            prop_assert_eq!(streamed.items(), expected.clone());
            prop_assert_eq!(streamed.prefix(&Bound::MAX), naive_prefix(&expected, &Bound::MAX));
            let mut sketch = Sketch::new();
            expected.iter().for_each(|item| sketch.insert(item));
            prop_assert_eq!(streamed.sketch(), sketch.symbols());
        }
    }

    #[test]
    fn a_loaded_tree_holds_about_its_items_bytes() {
        let items =
            (0..100_000u64).map(|i| Item::new(i, *blake3::hash(&i.to_le_bytes()).as_bytes()));
        let tree = FingerprintTree::from_items(items);
        let per_item = (tree.heap_bytes() - tree.sketch.heap_bytes()) as f64 / 100_000.0;
        assert!(
            per_item < 1.1 * size_of::<Item>() as f64,
            "{per_item} bytes per item"
        );
    }

    /// Bytes per item in `tree`'s nodes, the fixed sketch left out.
    fn per_item(tree: &FingerprintTree) -> f64 {
        (tree.heap_bytes() - tree.sketch.heap_bytes()) as f64 / tree.len() as f64
    }

    #[test]
    fn a_tree_filled_in_order_or_compacted_holds_about_its_items_bytes() {
        let item = |i: u64| Item::new(i % 1000, *blake3::hash(&i.to_le_bytes()).as_bytes());
        let mut random = FingerprintTree::new();
        (0..100_000).for_each(|i| assert!(random.insert(item(i))));
        let loose = per_item(&random);
        assert!(loose > 1.3 * 40.0, "random inserts leave slack: {loose}");
        let snapshot = random.clone();
        random.compact();
        assert!(
            per_item(&random) > 1.3 * 40.0,
            "nodes a snapshot shares are left"
        );
        drop(snapshot);
        random.compact();
        // Each inner node keeps its room for children, and may end in a part-full leaf.
        assert!(
            per_item(&random) < 1.15 * 40.0,
            "compacted: {}",
            per_item(&random)
        );
        assert_eq!(
            random.items(),
            FingerprintTree::from_items((0..100_000).map(item)).items()
        );

        let mut ordered = FingerprintTree::new();
        let mut items: Vec<Item> = (0..100_000).map(item).collect();
        items.sort_unstable();
        items.iter().for_each(|i| assert!(ordered.insert(*i)));
        assert!(
            per_item(&ordered) < 1.1 * 40.0,
            "in order: {}",
            per_item(&ordered)
        );
    }

    #[test]
    fn inserting_in_order_splits_correctly() {
        let mut tree = FingerprintTree::new();
        for i in 0..5000u64 {
            let mut id = [0; 32];
            id[..8].copy_from_slice(&i.to_be_bytes());
            assert!(tree.insert(Item::new(i / 3, id)));
        }
        assert_eq!(tree.len(), 5000);
        let items = tree.items();
        assert!(items.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(tree.item_at(4321), Some(items[4321]));
        assert_eq!(tree.prefix(&Bound::at(&items[1000])).0, 1000);
    }

    #[test]
    fn emptying_a_tree_and_filling_it_again_keeps_it_sound() {
        let item = |i: u64| {
            let mut id = [0; 32];
            id[..8].copy_from_slice(&i.to_be_bytes());
            Item::new(i, id)
        };
        let mut tree = FingerprintTree::from_items((0..3000).map(item));
        for i in 0..3000 {
            assert!(tree.remove(&item(i)));
            assert!(!tree.remove(&item(i)));
        }
        assert_eq!(
            (tree.len(), tree.prefix(&Bound::MAX)),
            (0, (0, IdSum::ZERO))
        );
        assert_eq!(tree.sketch(), Sketch::new().symbols());
        // Old items removed and newer ones added, as a re-verified blob's item moves on.
        for i in 0..3000 {
            assert!(tree.insert(item(i + 5000)));
        }
        assert_eq!(tree.items(), (5000..8000).map(item).collect::<Vec<_>>());
        assert_eq!(tree.item_at(1234), Some(item(6234)));
    }
}
