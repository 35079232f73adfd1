//! The [`Store`] a session reads, and [`FingerprintTree`], the in-memory store that caches
//! ID sums so any range's fingerprint costs O(log n), and keeps the set's [`Sketch`].

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
/// kept up to date as items arrive; no session rebuilds it. Each item costs its 40 bytes in a
/// leaf plus a share of the per-leaf summary (about 1.3 times 40 bytes in all). The tree also
/// keeps the set's [`Sketch`] (a fixed 200 KB), updated by the same insert.
#[derive(Debug)]
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

#[derive(Debug)]
struct Child {
    node: Box<Node>,
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
        items.dedup();
        let len = items.len() as u64;
        let mut sketch = Sketch::new();
        items.iter().for_each(|item| sketch.insert(item));
        // Leaves are filled to 3/4 so that the first inserts do not split every leaf.
        let per_leaf = LEAF_MAX * 3 / 4;
        let mut level: Vec<Child> = items
            .chunks(per_leaf)
            .map(|chunk| {
                let mut leaf = Vec::with_capacity(LEAF_MAX);
                leaf.extend_from_slice(chunk);
                Child::new(Node::Leaf(leaf))
            })
            .collect();
        if level.is_empty() {
            return Self::new();
        }
        while level.len() > 1 {
            let per_node = INNER_MAX * 3 / 4;
            let mut next = Vec::with_capacity(level.len() / per_node + 1);
            let mut rest = level.into_iter().peekable();
            while rest.peek().is_some() {
                let mut children = Vec::with_capacity(INNER_MAX);
                children.extend(rest.by_ref().take(per_node));
                next.push(Child::new(Node::Inner(children)));
            }
            level = next;
        }
        let root = level
            .pop()
            .map(|child| *child.node)
            .unwrap_or(Node::Leaf(Vec::new()));
        Self { root, len, sketch }
    }

    /// Inserts `item`; returns `false` if the tree already held it.
    pub fn insert(&mut self, item: Item) -> bool {
        match insert_into(&mut self.root, item) {
            Inserted::AlreadyPresent => false,
            Inserted::Done => {
                self.len += 1;
                self.sketch.insert(&item);
                true
            }
            Inserted::Split(right) => {
                let left = std::mem::replace(&mut self.root, Node::Inner(Vec::new()));
                let mut children = Vec::with_capacity(INNER_MAX);
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
        if !remove_from(&mut self.root, item) {
            return false;
        }
        self.len -= 1;
        self.sketch.remove(item);
        true
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
            match insert_into(&mut child.node, item) {
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
            let mut right = Vec::with_capacity(INNER_MAX);
            right.extend(children.drain(INNER_MAX / 2..));
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
            if !remove_from(&mut child.node, item) {
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
            node: Box::new(node),
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
        ) {
            let mut tree = FingerprintTree::from_items(built.iter().copied());
            let mut expected: std::collections::BTreeSet<Item> = built.into_iter().collect();
            for item in inserted {
                prop_assert_eq!(tree.insert(item), expected.insert(item));
            }
            // Removals of held items (picked by index) and of arbitrary ones, mixed.
            for (held, pick, other) in removed {
                let item = match (held, expected.len()) {
                    (true, n) if n > 0 => *expected.iter().nth(pick.index(n)).unwrap(),
                    _ => other,
                };
                prop_assert_eq!(tree.remove(&item), expected.remove(&item));
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
