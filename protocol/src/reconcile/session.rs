//! [`Session`]: one reconciliation conversation with one peer, as a sans-IO state machine.

use std::collections::VecDeque;
use std::ops::Range as SymbolRange;
use std::time::Duration;

use super::item::{Bound, Item};
use super::sketch::{self, CodedSymbol, Difference, MAX_SKETCH_SYMBOLS, SYMBOL_LEN};
use super::tree::Store;
use super::wire::{
    self, FrameWriter, MAX_BOUND_LEN, MAX_ITEM_LEN, MAX_SECTIONS_LEN, Mode, Range, SketchChunk,
    Summary,
};
use super::{Config, Event, ReconcileError, SessionStats};

/// Subranges a mismatching range splits into (a range holding fewer items splits into one
/// subrange per item).
pub const SPLITS: u64 = 16;

/// Split points move by up to `1 / JITTER_DIVISOR` of a bucket at random, so the ranges two
/// sessions compare differ. Half a bucket measured best in `reconcile-bench` (1/8 cost about
/// 6% more bytes at n = 1M, 1,000 scattered differences).
const JITTER_DIVISOR: u64 = 2;

/// The responder sends a sketch unasked when the two set sizes differ by at most this much.
/// Such a sketch is at most 71 symbols (3.2 KB), far below what splitting costs at any `d`
/// it decodes, and when the difference turns out larger the session falls back.
const EAGER_MAX_DIFF: u64 = 32;

/// A sketch is used only when both sets hold at least this many items per estimated
/// difference. A sketch costs about 77 bytes a difference; splitting costs about 320 bytes a
/// difference for every level of 16 between the difference and the set size, so it is cheaper
/// for sets that differ by a large share (a new device), and a sketch for the rest.
const SKETCH_MIN_RATIO: u64 = 64;

/// One reconciliation conversation with one peer.
///
/// The two sides take turns. A turn is one or more frames; the last frame of a turn carries a
/// flag. The initiator's first turn is the summary of its whole set (count and fingerprint),
/// so equal sets cost one frame each way.
///
/// When the sets differ, the responder answers with its own summary and either a sketch
/// (when the counts differ by at most [`EAGER_MAX_DIFF`]: the common "a few new photos" case)
/// or the first [`SPLITS`]-way split of its set. The initiator decodes a sketch against its
/// own, confirms the result against the responder's summary and sends the items the responder
/// lacks: both sides know everything after three turns. A sketch that does not decode is
/// extended once (rateless sketches only grow), then abandoned for range splitting from the
/// root. When the responder split instead and the differences look spread over most of the
/// subranges, the initiator asks for a sketch sized from the count difference rather than
/// splitting further (range splitting pays ~16 fingerprints per level for each scattered
/// difference); when they are clustered it splits on.
///
/// Range splitting: each side answers every range the other asked about: a matching
/// fingerprint is skipped, a mismatching one is split in [`SPLITS`] subranges (or, when the
/// side holds few items there, listed), and a list is answered with the items the lister
/// lacks. A split ends at the splitter's last item and adds an empty list for the rest of the
/// range, so items newer than all of the splitter's arrive in the next answer. A side whose turn asks nothing is done once it sent it, and so is the side that
/// receives it. Answers are streamed: frames never exceed [`Config::max_frame_size`], and a
/// long answer is written lazily as frames are polled.
///
/// Inputs: [`Session::handle_frame`] and [`Session::handle_timeout`]. Outputs:
/// [`Session::poll_transmit`], [`Session::poll_event`], [`Session::poll_timeout`]. The caller
/// passes the set (any [`Store`]) to every call that reads it, and owns it in between.
#[derive(Debug)]
pub struct Session {
    config: Config,
    rng: SplitMix64,
    state: State,
    /// Whether this side opened the session.
    initiator: bool,
    /// Frames this side sent, so the `seq` of the next.
    send_seq: u64,
    /// Frames the peer sent, so the `seq` expected next.
    recv_seq: u64,
    /// Turns completed by either side.
    turns: u32,
    /// Whether the peer is in the middle of a turn, so frames from it are expected.
    receiving: bool,
    /// Whether the peer's current turn asked anything.
    peer_asked: bool,
    /// Whether this side owes the peer a turn (it is answering one, or opening the session).
    answering: bool,
    /// Whether the turn being written asked anything.
    we_asked: bool,
    /// Where the incoming turn's next range starts.
    in_pos: Bound,
    /// Where the outgoing turn's next range starts.
    out_pos: Bound,
    pending: VecDeque<Action>,
    events: VecDeque<Event>,
    deadline: Option<Duration>,
    stats: SessionStats,
    /// The summary to put in the next frame.
    out_summary: Option<Summary>,
    /// The sketch request to put in the next frame.
    out_request: Option<SymbolRange<usize>>,
    /// Sketch symbols still to send.
    out_sketch: Option<OutSketch>,
    /// Initiator: whether the responder may still send a sketch unasked.
    eager_allowed: bool,
    /// Initiator: the latest summary of the responder's set.
    peer_summary: Option<Summary>,
    /// Initiator: the sketch symbols received so far, from index 0.
    in_sketch: Vec<CodedSymbol>,
    /// Initiator: the length of the sketch being received.
    in_sketch_total: usize,
    /// Initiator: whether a sketch chunk arrived in the peer's current turn.
    sketch_in_turn: bool,
    /// Initiator: the symbols asked for and not yet received.
    asked: Option<SymbolRange<usize>>,
    /// Initiator: whether a sketch was already extended once.
    extended: bool,
    /// Initiator: the ranges of the responder's first turn, held until the turn ends.
    deferred: Vec<Range>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Active,
    Done,
    Failed(ReconcileError),
}

/// Sketch symbols being sent: `symbols` are those from index `next` to `total`.
#[derive(Debug)]
struct OutSketch {
    total: usize,
    next: usize,
    symbols: VecDeque<CodedSymbol>,
}

/// A range still to be written into the outgoing turn.
#[derive(Debug)]
enum Action {
    /// Send this range with this mode as it is.
    Range {
        lower: Bound,
        upper: Bound,
        mode: Mode,
    },
    /// Send our items in the range, except those the peer listed, over as many frames as needed.
    Items {
        lower: Bound,
        upper: Bound,
        exclude: Vec<Item>,
    },
    /// Send these items (sorted), which a decoded sketch showed the peer lacks, from `next` on.
    Send { items: Vec<Item>, next: usize },
}

impl Session {
    /// Starts a session as the side that opens it, sending the summary of the whole set.
    ///
    /// `seed` drives the random choice of split points; the caller draws it from its own
    /// (seeded) source. `now` is the caller's clock, in any epoch it keeps for the session.
    pub fn initiate(
        config: Config,
        seed: u64,
        now: Duration,
        store: &dyn Store,
    ) -> Result<Self, ReconcileError> {
        let mut session = Self::new(config, seed, true)?;
        session.answering = true;
        session.out_summary = Some(summary(store));
        session.eager_allowed = session.config.sketches;
        session.deadline = Some(now + session.config.idle_timeout);
        Ok(session)
    }

    /// Starts a session as the side that answers, waiting for the peer's first frame.
    pub fn respond(config: Config, seed: u64, now: Duration) -> Result<Self, ReconcileError> {
        let mut session = Self::new(config, seed, false)?;
        session.receiving = true;
        session.deadline = Some(now + session.config.idle_timeout);
        Ok(session)
    }

    fn new(config: Config, seed: u64, initiator: bool) -> Result<Self, ReconcileError> {
        config.validate()?;
        Ok(Self {
            config,
            rng: SplitMix64(seed),
            state: State::Active,
            initiator,
            send_seq: 0,
            recv_seq: 0,
            turns: 0,
            receiving: false,
            peer_asked: false,
            answering: false,
            we_asked: false,
            in_pos: Bound::MIN,
            out_pos: Bound::MIN,
            pending: VecDeque::new(),
            events: VecDeque::new(),
            deadline: None,
            stats: SessionStats::default(),
            out_summary: None,
            out_request: None,
            out_sketch: None,
            eager_allowed: false,
            peer_summary: None,
            in_sketch: Vec::new(),
            in_sketch_total: 0,
            sketch_in_turn: false,
            asked: None,
            extended: false,
            deferred: Vec::new(),
        })
    }

    /// Handles one frame from the peer. An error ends the session: every later call returns it.
    pub fn handle_frame(
        &mut self,
        now: Duration,
        store: &dyn Store,
        frame: &[u8],
    ) -> Result<(), ReconcileError> {
        self.check_active()?;
        let result = self.handle_frame_inner(store, frame);
        if let Err(err) = &result {
            self.fail(err.clone());
        } else if self.receiving {
            self.deadline = Some(now + self.config.idle_timeout);
        }
        result
    }

    fn handle_frame_inner(
        &mut self,
        store: &dyn Store,
        bytes: &[u8],
    ) -> Result<(), ReconcileError> {
        if bytes.len() > self.config.max_frame_size {
            return Err(ReconcileError::FrameTooLarge {
                len: bytes.len(),
                max: self.config.max_frame_size,
            });
        }
        if !self.receiving {
            return Err(ReconcileError::UnexpectedFrame);
        }
        let frame = wire::parse_frame(bytes, self.in_pos)?;
        if frame.seq != self.recv_seq {
            return Err(ReconcileError::OutOfSequence {
                expected: self.recv_seq,
                got: frame.seq,
            });
        }
        self.recv_seq += 1;
        self.stats.frames_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        if let Some(peer) = frame.summary {
            if self.initiator {
                self.peer_summary = Some(peer);
            } else if self.turns == 0 && self.stats.frames_received == 1 {
                self.peer_asked = true;
                self.answer_summary(store, peer);
            } else {
                return Err(ReconcileError::Malformed(
                    "a summary after the initiator's first frame",
                ));
            }
        }
        if let Some(request) = frame.request {
            if self.initiator {
                return Err(ReconcileError::UnexpectedSketch(
                    "a sketch request to the initiator",
                ));
            }
            self.peer_asked = true;
            self.answer_request(store, request);
        }
        if let Some(chunk) = frame.sketch {
            self.receive_chunk(chunk)?;
            self.peer_asked = true;
        }
        if let Some(range) = frame.ranges.last() {
            self.in_pos = range.upper;
        }
        let defer = self.initiator && self.turns == 1 && self.eager_allowed;
        for range in frame.ranges {
            if range.mode.is_question() {
                self.peer_asked = true;
            }
            if defer {
                self.deferred.push(range);
            } else {
                self.answer(store, range.lower, range.upper, range.mode);
            }
        }
        if frame.last {
            if self.initiator {
                self.end_peer_turn(store)?;
                // What the initiator queued from a sketch (or from its absence) must be sent.
                self.peer_asked |= !self.pending.is_empty() || self.out_request.is_some();
            }
            self.receiving = false;
            self.in_pos = Bound::MIN;
            self.turns += 1;
            if self.turns > self.config.max_turns {
                return Err(ReconcileError::TooManyTurns(self.config.max_turns));
            }
            if self.peer_asked {
                self.answering = true;
            } else {
                self.state = State::Done;
                self.deadline = None;
            }
        } else if self.peer_asked && !defer {
            self.answering = true;
        }
        Ok(())
    }

    /// Responder: answers the initiator's summary with nothing (equal sets), a sketch (sizes
    /// that differ a little) or the first split of the whole set.
    fn answer_summary(&mut self, store: &dyn Store, peer: Summary) {
        let ours = summary(store);
        if ours.fingerprint == peer.fingerprint {
            return;
        }
        self.out_summary = Some(ours);
        let diff = ours.count.abs_diff(peer.count);
        // Equal counts with different sets mean at least one item on each side.
        let estimate = if diff == 0 { 2 } else { diff };
        let len = sketch::symbols_for(estimate);
        let symbols = store.sketch();
        if self.config.sketches
            && diff <= EAGER_MAX_DIFF
            && ours.count.min(peer.count) >= SKETCH_MIN_RATIO.saturating_mul(estimate)
            && len <= symbols.len()
        {
            self.out_sketch = Some(OutSketch {
                total: len,
                next: 0,
                symbols: symbols[..len].iter().copied().collect(),
            });
            return;
        }
        self.answer(
            store,
            Bound::MIN,
            Bound::MAX,
            Mode::Fingerprint(peer.fingerprint),
        );
    }

    /// Responder: queues the sketch symbols asked for (as many as the store keeps) and a fresh
    /// summary to confirm them against.
    fn answer_request(&mut self, store: &dyn Store, request: SymbolRange<usize>) {
        self.out_summary = Some(summary(store));
        // The answer keeps the session open even with no symbols: the initiator decodes,
        // or falls back to splitting, and answers in turn.
        self.we_asked = true;
        let symbols = store.sketch();
        let end = request.end.min(symbols.len());
        if request.start < end && self.config.sketches {
            self.out_sketch = Some(OutSketch {
                total: end,
                next: request.start,
                symbols: symbols[request.start..end].iter().copied().collect(),
            });
        }
    }

    /// Initiator: takes one chunk of the responder's sketch, which must continue the sketch
    /// being received, or start one this side may receive now.
    fn receive_chunk(&mut self, chunk: SketchChunk) -> Result<(), ReconcileError> {
        if !self.initiator {
            return Err(ReconcileError::UnexpectedSketch(
                "a sketch from the initiator",
            ));
        }
        if chunk.start != self.in_sketch.len() {
            return Err(ReconcileError::UnexpectedSketch(
                "a sketch chunk out of order",
            ));
        }
        if self.in_sketch.len() < self.in_sketch_total {
            if chunk.total != self.in_sketch_total {
                return Err(ReconcileError::UnexpectedSketch(
                    "a sketch chunk of another length",
                ));
            }
        } else {
            let asked = self
                .asked
                .as_ref()
                .is_some_and(|asked| chunk.start == asked.start && chunk.total <= asked.end);
            let eager = self.turns == 1 && self.eager_allowed && chunk.start == 0;
            if !asked && !eager {
                return Err(ReconcileError::UnexpectedSketch(
                    "a sketch this side did not ask for",
                ));
            }
            self.asked = None;
            self.in_sketch_total = chunk.total;
        }
        if chunk.start + chunk.symbols.len() > self.in_sketch_total {
            return Err(ReconcileError::UnexpectedSketch(
                "a sketch chunk past its end",
            ));
        }
        self.in_sketch.extend(chunk.symbols);
        self.sketch_in_turn = true;
        Ok(())
    }

    /// Initiator: acts on the responder's turn once it ended: decodes a sketch, or falls
    /// back when one asked for did not come, or decides how to answer the first split.
    fn end_peer_turn(&mut self, store: &dyn Store) -> Result<(), ReconcileError> {
        if self.sketch_in_turn {
            self.sketch_in_turn = false;
            if self.in_sketch.len() < self.in_sketch_total {
                return Err(ReconcileError::UnexpectedSketch(
                    "a turn that ends inside a sketch",
                ));
            }
            self.deferred.clear();
            self.eager_allowed = false;
            self.use_sketch(store);
        } else if self.asked.take().is_some() {
            // The peer keeps no sketch, or a shorter one than asked for.
            self.fall_back(store);
        } else if self.eager_allowed && self.turns == 1 {
            self.eager_allowed = false;
            let ranges = std::mem::take(&mut self.deferred);
            match self.sketch_worth_asking(store, &ranges) {
                Some(len) => {
                    self.out_request = Some(0..len);
                    self.asked = Some(0..len);
                }
                None => {
                    for range in ranges {
                        self.answer(store, range.lower, range.upper, range.mode);
                    }
                }
            }
        }
        Ok(())
    }

    /// Initiator: decodes the received sketch against ours and confirms the result; on
    /// success reports it and queues the items the peer lacks, else extends the sketch once,
    /// else falls back to range splitting.
    fn use_sketch(&mut self, store: &dyn Store) {
        let ours = store.sketch();
        let decoded =
            sketch::decode(&self.in_sketch, ours).filter(|diff| self.confirms(store, diff));
        if let Some(diff) = decoded {
            for item in &diff.theirs {
                self.events.push_back(Event::Missing(*item));
            }
            self.pending.push_back(Action::Send {
                items: diff.ours,
                next: 0,
            });
            self.in_sketch = Vec::new();
            self.in_sketch_total = 0;
            return;
        }
        let have = self.in_sketch.len();
        let end = (2 * have).min(ours.len()).min(MAX_SKETCH_SYMBOLS);
        if !self.extended && have < end {
            self.extended = true;
            self.out_request = Some(have..end);
            self.asked = Some(have..end);
        } else {
            self.fall_back(store);
        }
    }

    /// Whether a decoded difference, applied to our set, gives the peer's summary: this is
    /// what turns a sketch's answer into a fact, whatever hash collisions did to it.
    fn confirms(&self, store: &dyn Store, diff: &Difference) -> bool {
        let Some(peer) = self.peer_summary else {
            return false;
        };
        let (count, mut sum) = store.prefix(&Bound::MAX);
        for item in &diff.theirs {
            if store.contains(item) {
                return false;
            }
            sum.add_item(item);
        }
        for item in &diff.ours {
            if !store.contains(item) {
                return false;
            }
            sum.sub_item(item);
        }
        let Some(count) = (count + diff.theirs.len() as u64).checked_sub(diff.ours.len() as u64)
        else {
            return false;
        };
        count == peer.count && sum.fingerprint(count) == peer.fingerprint
    }

    /// Initiator: gives up on sketches and restarts range splitting from the whole set.
    fn fall_back(&mut self, store: &dyn Store) {
        self.in_sketch = Vec::new();
        self.in_sketch_total = 0;
        self.asked = None;
        self.out_request = None;
        self.extended = true;
        self.deferred.clear();
        self.pending.push_back(Action::Range {
            lower: Bound::MIN,
            upper: Bound::MAX,
            mode: Mode::Fingerprint(summary(store).fingerprint),
        });
    }

    /// Initiator: the sketch length to ask for instead of answering the responder's first
    /// split, when the differences look spread over most subranges and few against the sets.
    fn sketch_worth_asking(&self, store: &dyn Store, ranges: &[Range]) -> Option<usize> {
        let peer = self.peer_summary?;
        let (mut fingerprints, mut mismatched) = (0u64, 0u64);
        for range in ranges {
            let theirs = match &range.mode {
                Mode::Fingerprint(theirs) => theirs,
                // The empty tail after the peer's last item: a sketch covers it too.
                Mode::List(items) if items.is_empty() => continue,
                _ => return None,
            };
            fingerprints += 1;
            let (low_count, low_sum) = store.prefix(&range.lower);
            let (high_count, mut sum) = store.prefix(&range.upper);
            sum.sub(&low_sum);
            if sum.fingerprint(high_count - low_count) != *theirs {
                mismatched += 1;
            }
        }
        // Clustered differences (the newest photos) are cheaper to list by range.
        if fingerprints == 0 || 2 * mismatched < fingerprints {
            return None;
        }
        let count = store.len();
        let estimate = peer.count.abs_diff(count).max(mismatched);
        let len = sketch::symbols_for(estimate);
        // The peer's count is its word: saturate rather than trust it not to overflow.
        let worth = count.min(peer.count) >= SKETCH_MIN_RATIO.saturating_mul(estimate)
            && len <= store.sketch().len()
            && len <= MAX_SKETCH_SYMBOLS;
        worth.then_some(len)
    }

    /// Turns one incoming range into events and pending answers.
    fn answer(&mut self, store: &dyn Store, lower: Bound, upper: Bound, mode: Mode) {
        match mode {
            Mode::Skip => {}
            Mode::Fingerprint(theirs) => {
                let (low_count, low_sum) = store.prefix(&lower);
                let (high_count, mut sum) = store.prefix(&upper);
                sum.sub(&low_sum);
                let count = high_count - low_count;
                if sum.fingerprint(count) == theirs {
                    return;
                }
                if count <= self.config.list_threshold {
                    let mut items = Vec::with_capacity(count as usize);
                    store.visit_from(low_count, &mut |item| {
                        let inside = upper.is_above(item);
                        if inside {
                            items.push(*item);
                        }
                        inside
                    });
                    self.pending.push_back(Action::Range {
                        lower,
                        upper,
                        mode: Mode::List(items),
                    });
                } else {
                    self.split(store, lower, upper, low_count, count);
                }
            }
            Mode::List(theirs) => {
                for item in &theirs {
                    if !store.contains(item) {
                        self.events.push_back(Event::Missing(*item));
                    }
                }
                self.pending.push_back(Action::Items {
                    lower,
                    upper,
                    exclude: theirs,
                });
            }
            Mode::Items(theirs) => {
                for item in theirs {
                    if !store.contains(&item) {
                        self.events.push_back(Event::Missing(item));
                    }
                }
            }
        }
    }

    /// Splits a range holding `count` of our items, from rank `first`, into [`SPLITS`]
    /// subranges (or `count`, if fewer) at randomised ranks, each sent with its fingerprint.
    fn split(&mut self, store: &dyn Store, lower: Bound, upper: Bound, first: u64, count: u64) {
        let parts = SPLITS.min(count);
        let bucket = count / parts;
        // Jitter stays below a bucket, so split ranks stay strictly increasing, and small
        // enough that no subrange outgrows the list threshold when none would without it (an
        // extra level would cost a round trip). Subranges still differ between sessions,
        // because their parents' bounds were drawn at random.
        let jitter_span = if count > SPLITS * self.config.list_threshold {
            bucket / JITTER_DIVISOR
        } else {
            let slack = (self.config.list_threshold + 1).saturating_sub(count.div_ceil(SPLITS));
            (bucket / JITTER_DIVISOR).min(slack)
        };
        // After our last item the range is empty on our side: a tail subrange there, listed
        // empty, fetches whatever the peer holds that is newer than all of ours in one answer
        // (the common case: a device behind by its newest photos), for a few bytes otherwise.
        let tail = store
            .item_at(first + count - 1)
            .and_then(|last| Bound::after(&last))
            .filter(|tail| *tail < upper);
        let end = tail.unwrap_or(upper);
        let mut prev_bound = lower;
        let (_, mut prev_sum) = store.prefix(&lower);
        let mut prev_rank = first;
        for i in 1..=parts {
            let (bound, rank) = if i == parts {
                (end, first + count)
            } else {
                let jitter = if jitter_span >= 2 {
                    self.rng.below(jitter_span)
                } else {
                    0
                };
                let rank = first + i * count / parts + jitter;
                match (store.item_at(rank - 1), store.item_at(rank)) {
                    (Some(below), Some(above)) if Bound::between(&below, &above) < end => {
                        (Bound::between(&below, &above), rank)
                    }
                    // The store changed under us; fall back to one range for the rest.
                    _ => (end, first + count),
                }
            };
            let (_, sum_to) = store.prefix(&bound);
            let mut sum = sum_to;
            sum.sub(&prev_sum);
            let fingerprint = sum.fingerprint(rank - prev_rank);
            self.pending.push_back(Action::Range {
                lower: prev_bound,
                upper: bound,
                mode: Mode::Fingerprint(fingerprint),
            });
            prev_bound = bound;
            prev_sum = sum_to;
            prev_rank = rank;
            if bound == end {
                break;
            }
        }
        if let Some(tail) = tail {
            self.pending.push_back(Action::Range {
                lower: tail,
                upper,
                mode: Mode::List(Vec::new()),
            });
        }
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self, now: Duration, store: &dyn Store) -> Option<Vec<u8>> {
        if self.state != State::Active || !self.answering {
            return None;
        }
        let max = self.config.max_frame_size;
        let mut writer = FrameWriter::new();
        if let Some(summary) = self.out_summary.take() {
            // The initiator's summary asks the responder to compare; the responder's informs.
            self.we_asked |= self.initiator && self.turns == 0;
            writer.set_summary(summary);
        }
        if let Some(request) = self.out_request.take() {
            self.we_asked = true;
            writer.set_request(request);
        }
        if let Some(out) = &mut self.out_sketch {
            // MIN_FRAME_SIZE leaves room for dozens of symbols after the headers.
            let room = max.saturating_sub(writer.len() + MAX_SECTIONS_LEN) / SYMBOL_LEN;
            let take = room.max(1).min(out.symbols.len());
            let symbols: Vec<CodedSymbol> = out.symbols.drain(..take).collect();
            writer.set_sketch(SketchChunk {
                total: out.total,
                start: out.next,
                symbols,
            });
            out.next += take;
            self.we_asked = true;
            if out.symbols.is_empty() {
                self.out_sketch = None;
            }
        }
        while let Some(action) = self.pending.front_mut() {
            let lower = match action {
                Action::Range { lower, .. } | Action::Items { lower, .. } => *lower,
                Action::Send { .. } => self.out_pos,
            };
            // Room for a skip up to this action, plus this action's header.
            let needed = 2 * MAX_BOUND_LEN + 2 + 10;
            if writer.len() + needed > max {
                break;
            }
            if lower != self.out_pos {
                writer.push(&self.out_pos, &lower, &Mode::Skip);
                self.out_pos = lower;
            }
            match action {
                Action::Range { lower, upper, mode } => {
                    let size = match mode {
                        Mode::List(items) | Mode::Items(items) => items.len() * MAX_ITEM_LEN,
                        _ => 16,
                    };
                    if writer.len() + MAX_BOUND_LEN + 1 + 10 + size > max {
                        break;
                    }
                    if mode.is_question() {
                        self.we_asked = true;
                    }
                    writer.push(lower, upper, mode);
                    self.out_pos = *upper;
                    self.pending.pop_front();
                }
                Action::Items {
                    lower,
                    upper,
                    exclude,
                } => {
                    let room = (max - writer.len() - MAX_BOUND_LEN - 1 - 10) / MAX_ITEM_LEN;
                    let (first, _) = store.prefix(lower);
                    let mut items = Vec::new();
                    let mut next = None;
                    let mut excluded = exclude.iter().peekable();
                    store.visit_from(first, &mut |item| {
                        if !upper.is_above(item) {
                            return false;
                        }
                        while excluded.next_if(|e| *e < item).is_some() {}
                        if excluded.peek() == Some(&item) {
                            return true;
                        }
                        if items.len() == room {
                            next = Some(*item);
                            return false;
                        }
                        items.push(*item);
                        true
                    });
                    let end = match (next, items.last()) {
                        (Some(next), Some(last)) => Bound::between(last, &next),
                        (Some(_), None) => break,
                        (None, _) => *upper,
                    };
                    for item in &items {
                        self.events.push_back(Event::PeerMissing(*item));
                    }
                    writer.push(lower, &end, &Mode::Items(items));
                    self.out_pos = end;
                    if end == *upper {
                        self.pending.pop_front();
                    } else {
                        *lower = end;
                    }
                }
                Action::Send { items, next } => {
                    let room = (max - writer.len() - MAX_BOUND_LEN - 1 - 10) / MAX_ITEM_LEN;
                    let end = next.saturating_add(room).min(items.len());
                    if end == *next && end < items.len() {
                        break;
                    }
                    let chunk = items[*next..end].to_vec();
                    let upper = match (chunk.last(), items.get(end)) {
                        (Some(last), Some(following)) => Bound::between(last, following),
                        _ => Bound::MAX,
                    };
                    for item in &chunk {
                        self.events.push_back(Event::PeerMissing(*item));
                    }
                    if !chunk.is_empty() {
                        writer.push(&self.out_pos, &upper, &Mode::Items(chunk));
                        self.out_pos = upper;
                    }
                    *next = end;
                    if end == items.len() {
                        self.pending.pop_front();
                    }
                }
            }
        }
        let last = self.pending.is_empty() && self.out_sketch.is_none() && !self.receiving;
        if !last && writer.is_empty() {
            return None;
        }
        let frame = writer.finish(self.send_seq, last);
        self.send_seq += 1;
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += frame.len() as u64;
        if last {
            self.turns += 1;
            self.answering = false;
            self.out_pos = Bound::MIN;
            if self.we_asked {
                self.receiving = true;
                self.peer_asked = false;
                self.we_asked = false;
                self.deadline = Some(now + self.config.idle_timeout);
            } else {
                self.state = State::Done;
                self.deadline = None;
            }
        }
        Some(frame)
    }

    /// The next thing the caller should act on: an item one side lacks.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should next be called, if the session waits for the peer.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.state == State::Active {
            self.deadline
        } else {
            None
        }
    }

    /// Fails the session if the peer has been silent past the idle timeout.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.state == State::Active && self.deadline.is_some_and(|deadline| now >= deadline) {
            self.fail(ReconcileError::TimedOut);
        }
    }

    /// Whether the session ended well: both sides have learned what they lack.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<&ReconcileError> {
        match &self.state {
            State::Failed(err) => Some(err),
            _ => None,
        }
    }

    /// Bytes, frames and turns so far.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            turns: self.turns,
            ..self.stats
        }
    }

    fn check_active(&self) -> Result<(), ReconcileError> {
        match &self.state {
            State::Active => Ok(()),
            State::Done => Err(ReconcileError::UnexpectedFrame),
            State::Failed(err) => Err(err.clone()),
        }
    }

    fn fail(&mut self, err: ReconcileError) {
        self.state = State::Failed(err);
        self.pending.clear();
        self.deadline = None;
    }
}

/// The summary of a whole set: its count and fingerprint.
fn summary(store: &dyn Store) -> Summary {
    let (count, sum) = store.prefix(&Bound::MAX);
    Summary {
        count,
        fingerprint: sum.fingerprint(count),
    }
}

/// SplitMix64: a small seeded generator for split points, so the crate needs no RNG crate and
/// a seed means the same thing in every version.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; `n` must not be zero.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
