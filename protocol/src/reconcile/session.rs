//! [`Session`]: one reconciliation conversation with one peer, as a sans-IO state machine.

use std::collections::VecDeque;
use std::time::Duration;

use super::item::{Bound, Item};
use super::tree::Store;
use super::wire::{self, FrameWriter, MAX_BOUND_LEN, MAX_ITEM_LEN, Mode};
use super::{Config, Event, ReconcileError, SessionStats};

/// Subranges a mismatching range splits into (a range holding fewer items splits into one
/// subrange per item).
pub const SPLITS: u64 = 16;

/// Split points move by up to `1 / JITTER_DIVISOR` of a bucket at random, so the ranges two
/// sessions compare differ. Half a bucket measured best in `reconcile-bench` (1/8 cost about
/// 6% more bytes at n = 1M, 1,000 scattered differences).
const JITTER_DIVISOR: u64 = 2;

/// One reconciliation conversation with one peer.
///
/// The two sides take turns. A turn is one or more frames; the last frame of a turn carries a
/// flag. The initiator's first turn is the fingerprint of its whole set, so equal sets cost one
/// frame each way. Each side answers every range the other asked about: a matching
/// fingerprint is skipped, a mismatching one is split in [`SPLITS`] subranges (or, when the
/// side holds few items there, listed), and a list is answered with the items the lister
/// lacks. A side whose turn asks nothing is done once it sent it, and so is the side that
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Active,
    Done,
    Failed(ReconcileError),
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
}

impl Session {
    /// Starts a session as the side that opens it, sending the fingerprint of the whole set.
    ///
    /// `seed` drives the random choice of split points; the caller draws it from its own
    /// (seeded) source. `now` is the caller's clock, in any epoch it keeps for the session.
    pub fn initiate(
        config: Config,
        seed: u64,
        now: Duration,
        store: &dyn Store,
    ) -> Result<Self, ReconcileError> {
        let mut session = Self::new(config, seed)?;
        let (count, sum) = store.prefix(&Bound::MAX);
        session.answering = true;
        session.pending.push_back(Action::Range {
            lower: Bound::MIN,
            upper: Bound::MAX,
            mode: Mode::Fingerprint(sum.fingerprint(count)),
        });
        session.deadline = Some(now + session.config.idle_timeout);
        Ok(session)
    }

    /// Starts a session as the side that answers, waiting for the peer's first frame.
    pub fn respond(config: Config, seed: u64, now: Duration) -> Result<Self, ReconcileError> {
        let mut session = Self::new(config, seed)?;
        session.receiving = true;
        session.deadline = Some(now + session.config.idle_timeout);
        Ok(session)
    }

    fn new(config: Config, seed: u64) -> Result<Self, ReconcileError> {
        config.validate()?;
        Ok(Self {
            config,
            rng: SplitMix64(seed),
            state: State::Active,
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
        if let Some(range) = frame.ranges.last() {
            self.in_pos = range.upper;
        }
        for range in frame.ranges {
            if range.mode.is_question() {
                self.peer_asked = true;
            }
            self.answer(store, range.lower, range.upper, range.mode);
        }
        if frame.last {
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
        } else if self.peer_asked {
            self.answering = true;
        }
        Ok(())
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
        let mut prev_bound = lower;
        let (_, mut prev_sum) = store.prefix(&lower);
        let mut prev_rank = first;
        for i in 1..=parts {
            let (bound, rank) = if i == parts {
                (upper, first + count)
            } else {
                let jitter = if jitter_span >= 2 {
                    self.rng.below(jitter_span)
                } else {
                    0
                };
                let rank = first + i * count / parts + jitter;
                match (store.item_at(rank - 1), store.item_at(rank)) {
                    (Some(below), Some(above)) => (Bound::between(&below, &above), rank),
                    // The store changed under us; fall back to one range for the rest.
                    _ => (upper, first + count),
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
            if bound == upper {
                break;
            }
        }
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self, now: Duration, store: &dyn Store) -> Option<Vec<u8>> {
        if self.state != State::Active || !self.answering {
            return None;
        }
        let max = self.config.max_frame_size;
        let mut writer = FrameWriter::new();
        while let Some(action) = self.pending.front_mut() {
            let lower = match action {
                Action::Range { lower, .. } | Action::Items { lower, .. } => *lower,
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
            }
        }
        let last = self.pending.is_empty() && !self.receiving;
        if !last && writer.range_count() == 0 {
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
