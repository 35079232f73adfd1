//! Two sessions driven against each other over a perfect in-memory link, with property tests
//! over set shapes and over damaged frames.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// The outcome of a session run to its end.
#[derive(Debug)]
struct Outcome {
    /// What each side learned it lacks, in the order reported.
    missing: [Vec<Item>; 2],
    stats: [SessionStats; 2],
}

/// Drives an initiator over `a` and a responder over `b` until neither has anything to send.
fn run(
    a: &FingerprintTree,
    b: &FingerprintTree,
    config: &Config,
    seed: u64,
) -> Result<Outcome, ReconcileError> {
    run_stores(a, b, config, seed)
}

/// [`run`] over any stores.
fn run_stores(
    a: &dyn Store,
    b: &dyn Store,
    config: &Config,
    seed: u64,
) -> Result<Outcome, ReconcileError> {
    let now = Duration::ZERO;
    let stores = [a, b];
    let mut sessions = [
        Session::initiate(config.clone(), seed, now, a)?,
        Session::respond(config.clone(), seed ^ 1, now)?,
    ];
    let mut missing = [Vec::new(), Vec::new()];
    loop {
        let mut progress = false;
        for from in 0..2 {
            let to = 1 - from;
            while let Some(frame) = sessions[from].poll_transmit(now, stores[from]) {
                progress = true;
                sessions[to].handle_frame(now, stores[to], &frame)?;
            }
        }
        for side in 0..2 {
            while let Some(event) = sessions[side].poll_event() {
                if let Event::Missing(item) = event {
                    missing[side].push(item);
                }
            }
        }
        if !progress {
            break;
        }
    }
    assert!(
        sessions[0].is_done() && sessions[1].is_done(),
        "sessions stalled: {sessions:?}"
    );
    Ok(Outcome {
        missing,
        stats: [sessions[0].stats(), sessions[1].stats()],
    })
}

/// Checks that each side learned exactly what the other alone holds.
fn assert_union(a: &BTreeSet<Item>, b: &BTreeSet<Item>, outcome: &Outcome) {
    let learned_a: BTreeSet<Item> = outcome.missing[0].iter().copied().collect();
    let learned_b: BTreeSet<Item> = outcome.missing[1].iter().copied().collect();
    assert_eq!(
        learned_a.len(),
        outcome.missing[0].len(),
        "side A learned an item twice"
    );
    assert_eq!(
        learned_b.len(),
        outcome.missing[1].len(),
        "side B learned an item twice"
    );
    assert_eq!(learned_a, b.difference(a).copied().collect::<BTreeSet<_>>());
    assert_eq!(learned_b, a.difference(b).copied().collect::<BTreeSet<_>>());
}

fn item(timestamp: u64, seed: u64) -> Item {
    Item::new(timestamp, *blake3::hash(&seed.to_le_bytes()).as_bytes())
}

/// The shapes of set pairs the properties cover.
#[derive(Clone, Debug)]
enum Shape {
    Empty,
    Equal,
    Disjoint,
    OneSided,
    Overlapping,
    Clustered,
    Scattered,
}

fn arb_pair() -> impl Strategy<Value = (BTreeSet<Item>, BTreeSet<Item>)> {
    let shape = prop_oneof![
        Just(Shape::Empty),
        Just(Shape::Equal),
        Just(Shape::Disjoint),
        Just(Shape::OneSided),
        Just(Shape::Overlapping),
        Just(Shape::Clustered),
        Just(Shape::Scattered),
    ];
    (shape, 0usize..3000, 0usize..200, any::<u64>(), 1u64..1000).prop_map(
        |(shape, n, d, seed, spread)| {
            // Timestamps repeat often (spread is small against n), so ID prefixes decide bounds.
            let base: Vec<Item> = (0..n as u64)
                .map(|i| item(i * spread / 7, seed.wrapping_add(i)))
                .collect();
            let extra = |count: usize, salt: u64| -> Vec<Item> {
                (0..count as u64)
                    .map(|i| item(seed % 1000 + i * spread, salt ^ seed ^ i << 20))
                    .collect()
            };
            let all: BTreeSet<Item> = base.iter().copied().collect();
            match shape {
                Shape::Empty => (
                    BTreeSet::new(),
                    if n % 2 == 0 { BTreeSet::new() } else { all },
                ),
                Shape::Equal => (all.clone(), all),
                Shape::Disjoint => (all, extra(n / 2 + d, 1).into_iter().collect()),
                Shape::OneSided => (all.clone(), all.into_iter().chain(extra(d, 2)).collect()),
                Shape::Overlapping => {
                    let a = base
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % 3 != 0)
                        .map(|(_, x)| *x)
                        .collect();
                    let b = base
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % 3 != 1)
                        .map(|(_, x)| *x)
                        .collect();
                    (a, b)
                }
                Shape::Clustered => {
                    // Both sides lack a contiguous run of the other's newest items.
                    let cut = n.saturating_sub(d);
                    let a = base[..cut].iter().copied().chain(extra(d / 2, 3)).collect();
                    (a, all)
                }
                Shape::Scattered => {
                    let step = (n / d.max(1)).max(1);
                    let a = base
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % step != 0)
                        .map(|(_, x)| *x)
                        .collect();
                    let b = base
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % step != step / 2)
                        .map(|(_, x)| *x)
                        .collect();
                    (a, b)
                }
            }
        },
    )
}

/// A store whose sketch lies: it is the sketch of another set, or none at all.
struct LyingSketch<'a> {
    tree: &'a FingerprintTree,
    sketch: Option<Sketch>,
}

/// How a [`LyingSketch`] lies.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// No sketch at all.
    None,
    /// The sketch of the set plus many other items: it does not peel.
    TooDifferent,
    /// The sketch of the set with one item swapped for another: it peels to a wrong answer,
    /// as a hash collision would.
    Swapped,
}

impl<'a> LyingSketch<'a> {
    fn new(tree: &'a FingerprintTree, lie: Lie, salt: u64) -> Self {
        let items = tree.items();
        let sketch = match lie {
            Lie::None => None,
            Lie::TooDifferent => {
                let mut sketch = Sketch::new();
                items.iter().for_each(|i| sketch.insert(i));
                (0..500).for_each(|i| sketch.insert(&item(i, salt ^ (i << 32))));
                Some(sketch)
            }
            Lie::Swapped => {
                let mut sketch = Sketch::new();
                let skip = items.len() / 2;
                for (index, i) in items.iter().enumerate() {
                    if index != skip {
                        sketch.insert(i);
                    }
                }
                sketch.insert(&item(7, salt));
                Some(sketch)
            }
        };
        Self { tree, sketch }
    }
}

impl Store for LyingSketch<'_> {
    fn len(&self) -> u64 {
        self.tree.len()
    }
    fn prefix(&self, bound: &Bound) -> (u64, IdSum) {
        self.tree.prefix(bound)
    }
    fn item_at(&self, rank: u64) -> Option<Item> {
        self.tree.item_at(rank)
    }
    fn visit_from(&self, rank: u64, visit: &mut dyn FnMut(&Item) -> bool) {
        self.tree.visit_from(rank, visit);
    }
    fn contains(&self, item: &Item) -> bool {
        self.tree.contains(item)
    }
    fn sketch(&self) -> &[CodedSymbol] {
        self.sketch.as_ref().map_or(&[], Sketch::symbols)
    }
}

/// `n` items with timestamps 10 apart, and the same set lacking `d` of them spread evenly.
fn scattered_pair(n: u64, d: u64) -> (BTreeSet<Item>, BTreeSet<Item>) {
    let full: BTreeSet<Item> = (0..n).map(|i| item(i * 10, i)).collect();
    let step = n / d.max(1);
    let lacking: BTreeSet<Item> = full
        .iter()
        .enumerate()
        .filter(|(i, _)| (*i as u64) % step == step / 2 && (*i as u64) / step < d)
        .map(|(_, x)| *x)
        .collect();
    (full.difference(&lacking).copied().collect(), full)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn lying_sketches_never_yield_a_wrong_result(
        (a, b) in arb_pair(),
        seed in any::<u64>(),
        liar in 0usize..2,
        lie in prop_oneof![Just(Lie::None), Just(Lie::TooDifferent), Just(Lie::Swapped)],
    ) {
        // A sketch that fails to peel, or peels to a wrong difference (what a hash collision
        // would do), must be caught by the summary check and end in range splitting.
        let tree_a = FingerprintTree::from_items(a.iter().copied());
        let tree_b = FingerprintTree::from_items(b.iter().copied());
        let lying = LyingSketch::new(if liar == 0 { &tree_a } else { &tree_b }, lie, seed);
        let (store_a, store_b): (&dyn Store, &dyn Store) = if liar == 0 {
            (&lying, &tree_b)
        } else {
            (&tree_a, &lying)
        };
        let outcome = run_stores(store_a, store_b, &Config::default(), seed)
            .expect("a session over a lying sketch still succeeds");
        assert_union(&a, &b, &outcome);
    }

    #[test]
    fn both_sides_learn_exactly_the_union(
        (a, b) in arb_pair(),
        seed in any::<u64>(),
        small in any::<bool>(),
        list_threshold in 1u64..=64,
        sketches in any::<bool>(),
    ) {
        let max_frame_size = if small { MIN_FRAME_SIZE } else { Config::default().max_frame_size };
        let config = Config { max_frame_size, list_threshold, sketches, ..Config::default() };
        let tree_a = FingerprintTree::from_items(a.iter().copied());
        let tree_b = FingerprintTree::from_items(b.iter().copied());
        let outcome = run(&tree_a, &tree_b, &config, seed).expect("an honest session succeeds");
        assert_union(&a, &b, &outcome);
        for stats in outcome.stats {
            prop_assert!(stats.frames_sent == 0 || stats.bytes_sent <= stats.frames_sent * config.max_frame_size as u64);
        }
    }

    #[test]
    fn inserting_learned_items_mid_session_still_ends_with_the_union((a, b) in arb_pair(), seed in any::<u64>()) {
        // As a node does: each side adds what it learns while the session is still running.
        let mut trees = [
            FingerprintTree::from_items(a.iter().copied()),
            FingerprintTree::from_items(b.iter().copied()),
        ];
        let config = Config { max_frame_size: MIN_FRAME_SIZE, ..Config::default() };
        let now = Duration::ZERO;
        let mut sessions = [
            Session::initiate(config.clone(), seed, now, &trees[0]).expect("valid config"),
            Session::respond(config, seed, now).expect("valid config"),
        ];
        let mut progress = true;
        while progress {
            progress = false;
            for from in 0..2 {
                let to = 1 - from;
                while let Some(frame) = sessions[from].poll_transmit(now, &trees[from]) {
                    progress = true;
                    sessions[to].handle_frame(now, &trees[to], &frame).expect("honest frame");
                    while let Some(event) = sessions[to].poll_event() {
                        if let Event::Missing(item) = event {
                            trees[to].insert(item);
                        }
                    }
                }
            }
        }
        prop_assert!(sessions[0].is_done() && sessions[1].is_done());
        let union: Vec<Item> = a.union(&b).copied().collect();
        prop_assert_eq!(trees[0].items(), union.clone());
        prop_assert_eq!(trees[1].items(), union);
    }

    #[test]
    fn damaged_frames_fail_the_session(
        (a, b) in arb_pair(),
        seed in any::<u64>(),
        damage in 0u8..5,
        pick in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        garbage in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let config = Config { max_frame_size: MIN_FRAME_SIZE, ..Config::default() };
        let tree_a = FingerprintTree::from_items(a.iter().copied());
        let tree_b = FingerprintTree::from_items(b.iter().copied());
        let now = Duration::ZERO;
        let stores = [&tree_a, &tree_b];
        let mut sessions = [
            Session::initiate(config.clone(), seed, now, &tree_a).expect("valid config"),
            Session::respond(config.clone(), seed, now).expect("valid config"),
        ];
        // Record the honest exchange, then replay it with one frame damaged.
        let mut log: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut progress = true;
        while progress {
            progress = false;
            for from in 0..2 {
                while let Some(frame) = sessions[from].poll_transmit(now, stores[from]) {
                    progress = true;
                    sessions[1 - from].handle_frame(now, stores[1 - from], &frame).expect("honest frame");
                    log.push((from, frame));
                }
            }
        }
        let victim = pick.index(log.len());
        let mut sessions = [
            Session::initiate(config.clone(), seed, now, &tree_a).expect("valid config"),
            Session::respond(config.clone(), seed, now).expect("valid config"),
        ];
        for (index, (from, frame)) in log.iter().enumerate() {
            let to = 1 - from;
            while sessions[*from].poll_transmit(now, stores[*from]).is_some() {}
            if index < victim {
                sessions[to].handle_frame(now, stores[to], frame).expect("honest frame");
                continue;
            }
            let result = match damage {
                // Truncated.
                0 => sessions[to].handle_frame(now, stores[to], &frame[..cut.index(frame.len())]),
                // Duplicated.
                1 => sessions[to].handle_frame(now, stores[to], frame).and_then(|()| sessions[to].handle_frame(now, stores[to], frame)),
                // Reordered: the next frame the same side sent comes first.
                2 => match log[index + 1..].iter().find(|(f, _)| f == from) {
                    Some((_, later)) => sessions[to].handle_frame(now, stores[to], later),
                    None => sessions[to].handle_frame(now, stores[to], frame).and_then(|()| sessions[to].handle_frame(now, stores[to], frame)),
                },
                // One byte flipped.
                3 => {
                    let mut bad = frame.clone();
                    let at = cut.index(bad.len());
                    bad[at] ^= 0x5a;
                    sessions[to].handle_frame(now, stores[to], &bad)
                }
                // Garbage.
                _ => sessions[to].handle_frame(now, stores[to], &garbage),
            };
            prop_assert!(result.is_err(), "damage {damage} to frame {index} went unnoticed");
            // Whatever was reported before the damage is true.
            let (own, other) = if to == 0 { (&a, &b) } else { (&b, &a) };
            while let Some(event) = sessions[to].poll_event() {
                if let Event::Missing(item) = event {
                    prop_assert!(other.contains(&item) && !own.contains(&item));
                }
            }
            // A session that already finished keeps its (correct) result and refuses the frame.
            prop_assert!(sessions[to].error().is_some() || sessions[to].is_done());
            prop_assert!(sessions[to].handle_frame(now, stores[to], frame).is_err(), "an ended session stays ended");
            break;
        }
    }

    #[test]
    fn frames_with_a_valid_check_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600), flags in 0u8..16) {
        // A peer that computes the check over nonsense must get an error or a harmless parse.
        let mut frame = vec![2, flags, 0];
        frame.extend_from_slice(&body);
        let check = blake3::hash(&frame);
        frame.extend_from_slice(&check.as_bytes()[..4]);
        let tree = FingerprintTree::from_items((0..100).map(|i| item(i, i)));
        let mut session = Session::respond(Config::default(), 7, Duration::ZERO).expect("valid config");
        let _ = session.handle_frame(Duration::ZERO, &tree, &frame);
        while session.poll_transmit(Duration::ZERO, &tree).is_some() {}
        // The same nonsense as the answer to an initiator's first frame.
        let mut session = Session::initiate(Config::default(), 7, Duration::ZERO, &tree).expect("valid config");
        while session.poll_transmit(Duration::ZERO, &tree).is_some() {}
        let _ = session.handle_frame(Duration::ZERO, &tree, &frame);
        while session.poll_transmit(Duration::ZERO, &tree).is_some() {}
    }

    #[test]
    fn hostile_summaries_and_sketches_never_panic(
        count in any::<u64>(),
        symbols in 1usize..=MAX_SKETCH_SYMBOLS,
        start in 0usize..8,
        request_end in 1usize..=MAX_SKETCH_SYMBOLS,
    ) {
        // A responder that claims any count and sends any sketch shape, and an initiator that
        // asks for any symbols, get answers or errors, never a panic.
        let tree = FingerprintTree::from_items((0..500).map(|i| item(i, i)));
        let now = Duration::ZERO;
        let mut initiator = Session::initiate(Config::default(), 1, now, &tree).expect("valid config");
        while initiator.poll_transmit(now, &tree).is_some() {}
        let mut writer = wire::FrameWriter::new();
        writer.set_summary(wire::Summary { count, fingerprint: Fingerprint([7; FINGERPRINT_LEN]) });
        let n = symbols.min(40);
        if start + n <= symbols {
            writer.set_sketch(wire::SketchChunk { total: symbols, start, symbols: tree.sketch()[..n].to_vec() });
        }
        let _ = initiator.handle_frame(now, &tree, &writer.finish(0, true));
        while initiator.poll_transmit(now, &tree).is_some() {}
        let mut responder = Session::respond(Config::default(), 1, now).expect("valid config");
        let mut writer = wire::FrameWriter::new();
        writer.set_summary(wire::Summary { count, fingerprint: Fingerprint([7; FINGERPRINT_LEN]) });
        writer.set_request(0..request_end);
        let _ = responder.handle_frame(now, &tree, &writer.finish(0, true));
        while responder.poll_transmit(now, &tree).is_some() {}
    }
}

#[test]
fn equal_sets_cost_one_small_exchange() {
    let items: Vec<Item> = (0..10_000).map(|i| item(i, i)).collect();
    let tree = FingerprintTree::from_items(items.iter().copied());
    let outcome = run(&tree, &tree, &Config::default(), 1).expect("session succeeds");
    let total = outcome.stats[0].bytes_sent + outcome.stats[1].bytes_sent;
    assert!(total <= 64, "equal sets cost {total} bytes");
    assert_eq!(outcome.stats[0].turns, 2, "one round trip");
    assert!(outcome.missing.iter().all(Vec::is_empty));
}

#[test]
fn a_new_device_receives_everything_in_streamed_frames() {
    let items: BTreeSet<Item> = (0..20_000).map(|i| item(i * 3, i)).collect();
    let full = FingerprintTree::from_items(items.iter().copied());
    let empty = FingerprintTree::new();
    let config = Config {
        max_frame_size: MIN_FRAME_SIZE,
        ..Config::default()
    };
    let outcome = run(&empty, &full, &config, 3).expect("session succeeds");
    assert_union(&BTreeSet::new(), &items, &outcome);
    let bytes = outcome.stats[1].bytes_sent as f64;
    assert!(
        bytes < 1.15 * 32.0 * items.len() as f64,
        "sent {bytes} bytes for {} items",
        items.len()
    );
}

#[test]
fn a_silent_peer_times_out() {
    let tree = FingerprintTree::new();
    let mut session =
        Session::initiate(Config::default(), 0, Duration::ZERO, &tree).expect("valid config");
    assert!(session.poll_transmit(Duration::ZERO, &tree).is_some());
    let deadline = session.poll_timeout().expect("waiting for the peer");
    session.handle_timeout(deadline - Duration::from_millis(1));
    assert!(session.error().is_none());
    session.handle_timeout(deadline);
    assert_eq!(session.error(), Some(&ReconcileError::TimedOut));
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn oversized_frames_and_bad_configs_are_refused() {
    let tree = FingerprintTree::new();
    let mut session = Session::respond(Config::default(), 0, Duration::ZERO).expect("valid config");
    let big = vec![0u8; Config::default().max_frame_size + 1];
    assert!(matches!(
        session.handle_frame(Duration::ZERO, &tree, &big),
        Err(ReconcileError::FrameTooLarge { .. })
    ));
    let config = Config {
        max_frame_size: 100,
        ..Config::default()
    };
    assert!(matches!(
        Session::respond(config, 0, Duration::ZERO),
        Err(ReconcileError::InvalidConfig(_))
    ));
}

#[test]
fn items_inserted_between_sessions_are_found_next_time() {
    let mut a = FingerprintTree::from_items((0..5000).map(|i| item(i, i)));
    let b = FingerprintTree::from_items((0..5000).map(|i| item(i, i)));
    let added = item(2500, 99_999);
    assert!(a.insert(added));
    let outcome = run(&a, &b, &Config::default(), 5).expect("session succeeds");
    assert_eq!(outcome.missing[1], vec![added]);
    assert!(outcome.missing[0].is_empty());
}

#[test]
fn blob_id_sets_with_one_timestamp_reconcile() {
    // Sets with no natural time use one timestamp, so bounds are ID prefixes alone.
    let a: BTreeSet<Item> = (0..3000).map(|i| item(0, i)).collect();
    let b: BTreeSet<Item> = (100..3100).map(|i| item(0, i)).collect();
    let tree_a = FingerprintTree::from_items(a.iter().copied());
    let tree_b = FingerprintTree::from_items(b.iter().copied());
    let outcome = run(&tree_a, &tree_b, &Config::default(), 9).expect("session succeeds");
    assert_union(&a, &b, &outcome);
}

#[test]
fn a_few_differences_cost_one_and_a_half_round_trips() {
    // The responder sends a sketch unasked; the initiator decodes it and answers.
    let (a, b) = scattered_pair(20_000, 10);
    let tree_a = FingerprintTree::from_items(a.iter().copied());
    let tree_b = FingerprintTree::from_items(b.iter().copied());
    let outcome = run(&tree_a, &tree_b, &Config::default(), 11).expect("session succeeds");
    assert_union(&a, &b, &outcome);
    let total = outcome.stats[0].bytes_sent + outcome.stats[1].bytes_sent;
    assert_eq!(outcome.stats[0].turns, 3, "one and a half round trips");
    assert!(total <= 2_000, "10 differences cost {total} bytes");
}

#[test]
fn scattered_differences_ask_for_a_sketch() {
    // 1,000 differences spread over 70,000 items: after the first split the initiator asks
    // for a sketch instead of splitting every subrange down to the items.
    let (a, b) = scattered_pair(70_000, 1_000);
    let tree_a = FingerprintTree::from_items(a.iter().copied());
    let tree_b = FingerprintTree::from_items(b.iter().copied());
    let outcome = run(&tree_a, &tree_b, &Config::default(), 12).expect("session succeeds");
    assert_union(&a, &b, &outcome);
    let total = outcome.stats[0].bytes_sent + outcome.stats[1].bytes_sent;
    assert!(
        outcome.stats[0].turns <= 5,
        "took {} turns",
        outcome.stats[0].turns
    );
    assert!(total <= 100_000, "1,000 differences cost {total} bytes");
    let ranges_only = Config {
        sketches: false,
        ..Config::default()
    };
    let outcome = run(&tree_a, &tree_b, &ranges_only, 12).expect("session succeeds");
    assert_union(&a, &b, &outcome);
}

#[test]
fn a_two_sided_difference_with_equal_counts_is_found() {
    // Equal counts tell the responder nothing of the difference's size: a sketch sized for
    // two fails to peel, is extended once, and then the session splits ranges.
    let shared: Vec<Item> = (0..10_000).map(|i| item(i * 10, i)).collect();
    for extra in [1u64, 20, 300] {
        let a: BTreeSet<Item> = shared
            .iter()
            .copied()
            .chain((0..extra).map(|i| item(i * 37, 1 << 40 | i)))
            .collect();
        let b: BTreeSet<Item> = shared
            .iter()
            .copied()
            .chain((0..extra).map(|i| item(i * 41, 2 << 40 | i)))
            .collect();
        let tree_a = FingerprintTree::from_items(a.iter().copied());
        let tree_b = FingerprintTree::from_items(b.iter().copied());
        let outcome = run(&tree_a, &tree_b, &Config::default(), extra).expect("session succeeds");
        assert_union(&a, &b, &outcome);
    }
}

#[test]
fn unasked_sketch_sections_fail_the_session() {
    let tree = FingerprintTree::from_items((0..100).map(|i| item(i, i)));
    let now = Duration::ZERO;
    // A sketch from the initiator.
    let mut writer = wire::FrameWriter::new();
    writer.set_sketch(wire::SketchChunk {
        total: 1,
        start: 0,
        symbols: tree.sketch()[..1].to_vec(),
    });
    let frame = writer.finish(0, true);
    let mut responder = Session::respond(Config::default(), 1, now).expect("valid config");
    assert!(matches!(
        responder.handle_frame(now, &tree, &frame),
        Err(ReconcileError::UnexpectedSketch(_))
    ));
    // A sketch request to the initiator.
    let mut initiator = Session::initiate(Config::default(), 1, now, &tree).expect("valid config");
    assert!(initiator.poll_transmit(now, &tree).is_some());
    let mut writer = wire::FrameWriter::new();
    writer.set_request(0..10);
    let frame = writer.finish(0, true);
    assert!(matches!(
        initiator.handle_frame(now, &tree, &frame),
        Err(ReconcileError::UnexpectedSketch(_))
    ));
}

#[test]
fn one_id_under_two_timestamps_is_two_items() {
    // Found by `inserting_learned_items_mid_session_still_ends_with_the_union`: when sums
    // counted IDs alone, a range holding (89, x) on one side and (164, x) on the other looked
    // equal, and neither side learned the other's item.
    let shared: Vec<Item> = (0..3000).map(|i| item(i * 7, i)).collect();
    let x = item(0, 1 << 50).id;
    let a: BTreeSet<Item> = shared.iter().copied().chain([Item::new(89, x)]).collect();
    let b: BTreeSet<Item> = shared.iter().copied().chain([Item::new(164, x)]).collect();
    let tree_a = FingerprintTree::from_items(a.iter().copied());
    let tree_b = FingerprintTree::from_items(b.iter().copied());
    for sketches in [false, true] {
        let config = Config {
            sketches,
            ..Config::default()
        };
        let outcome = run(&tree_a, &tree_b, &config, 4).expect("session succeeds");
        assert_union(&a, &b, &outcome);
    }
}

#[test]
fn the_newest_items_arrive_in_two_round_trips() {
    // A device behind by its peer's newest photos: the split's empty tail after its own last
    // item fetches them all at once, whatever the depth of the tree.
    let full: Vec<Item> = (0..20_000).map(|i| item(i * 10, i)).collect();
    let behind: BTreeSet<Item> = full[..19_500].iter().copied().collect();
    let full: BTreeSet<Item> = full.into_iter().collect();
    let tree_a = FingerprintTree::from_items(behind.iter().copied());
    let tree_b = FingerprintTree::from_items(full.iter().copied());
    for (a, b, first, second) in [
        (&tree_a, &tree_b, &behind, &full),
        (&tree_b, &tree_a, &full, &behind),
    ] {
        let outcome = run(a, b, &Config::default(), 13).expect("session succeeds");
        assert_union(first, second, &outcome);
        assert!(
            outcome.stats[0].turns <= 4,
            "took {} turns",
            outcome.stats[0].turns
        );
        let total = outcome.stats[0].bytes_sent + outcome.stats[1].bytes_sent;
        assert!(total <= 36 * 500, "500 newest items cost {total} bytes");
    }
}
