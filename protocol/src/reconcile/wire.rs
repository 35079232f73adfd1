//! The frame format: how a turn's sections and ranges are written and strictly parsed.
//!
//! A frame is `version (1) | flags (1) | seq (varint) | [summary] | [sketch request] |
//! [sketch chunk] | range count (varint) | ranges | check (4)`. Flag bit 0 marks the last
//! frame of a turn; bits 1, 2 and 3 say that the summary, the sketch request and the sketch
//! chunk are present (each at most once, in that order); other bits are refused. `seq` counts
//! the frames each side sent in the session, from 0, so a lost, duplicated or reordered frame
//! is caught. `check` is the first 4 bytes of BLAKE3 over everything before it, so a truncated
//! or corrupted frame is caught even when it would parse.
//!
//! - A summary is `count (varint) | fingerprint (16)`: the sender's whole set.
//! - A sketch request is `start (varint) | end (varint)`: "send your sketch's symbols
//!   `start..end`", with `start < end <= MAX_SKETCH_SYMBOLS`.
//! - A sketch chunk is `total (varint) | start (varint) | n (varint) | n symbols (45 each)`:
//!   symbols `start..start + n` of a sketch of `total` symbols, with `n >= 1`,
//!   `start + n <= total <= MAX_SKETCH_SYMBOLS`.
//!
//! A range is `upper bound | payload`; its lower bound is the previous range's upper bound
//! (the turn's first range starts at [`Bound::MIN`]). A bound is
//! `varint(timestamp delta + 1)` (0 = infinite), then one byte holding the range's mode (high
//! 2 bits) and the prefix length (low 6 bits), then the prefix; timestamp deltas restart at 0
//! in each frame. Items in a list are `varint(timestamp delta) | id (32)`, deltas from the
//! range's lower bound, then from the previous item.

use super::ReconcileError;
use super::item::{Bound, FINGERPRINT_LEN, Fingerprint, ID_LEN, Item};
use super::sketch::{CodedSymbol, MAX_SKETCH_SYMBOLS, SYMBOL_LEN};

/// The protocol version this module writes and the only one it reads.
pub(crate) const VERSION: u8 = 2;
/// Flag bit: this frame ends its turn.
const FLAG_LAST: u8 = 1;
/// Flag bit: the frame carries a summary.
const FLAG_SUMMARY: u8 = 2;
/// Flag bit: the frame carries a sketch request.
const FLAG_REQUEST: u8 = 4;
/// Flag bit: the frame carries a sketch chunk.
const FLAG_SKETCH: u8 = 8;
/// The most bytes the sections other than the symbols take: a summary, a request and a
/// chunk header.
pub(crate) const MAX_SECTIONS_LEN: usize = (10 + FINGERPRINT_LEN) + 2 * 10 + 3 * 10;
/// Bytes of the frame check.
const CHECK_LEN: usize = 4;
/// The largest frame header: version, flags, and two 10-byte varints.
pub(crate) const MAX_HEADER_LEN: usize = 2 + 10 + 10;
/// Overhead of the frame check.
pub(crate) const TRAILER_LEN: usize = CHECK_LEN;
/// The most bytes a bound takes.
pub(crate) const MAX_BOUND_LEN: usize = 19 + 1 + ID_LEN;
/// The most bytes an item in a list takes.
pub(crate) const MAX_ITEM_LEN: usize = 10 + ID_LEN;
/// The fewest bytes an item in a list takes.
const MIN_ITEM_LEN: usize = 1 + ID_LEN;

/// What a range says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Nothing to do in this range.
    Skip,
    /// "My items in this range have this fingerprint": the peer answers if its own differs.
    Fingerprint(Fingerprint),
    /// "These are all my items in this range": the peer answers with the ones it alone has.
    List(Vec<Item>),
    /// "These are items you lack in this range": the answer to a list, needing none itself.
    Items(Vec<Item>),
}

impl Mode {
    fn tag(&self) -> u8 {
        match self {
            Mode::Skip => 0,
            Mode::Fingerprint(_) => 1,
            Mode::List(_) => 2,
            Mode::Items(_) => 3,
        }
    }

    /// Whether the peer must answer this range.
    pub(crate) fn is_question(&self) -> bool {
        matches!(self, Mode::Fingerprint(_) | Mode::List(_))
    }
}

/// One range of a frame, with both ends resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) lower: Bound,
    pub(crate) upper: Bound,
    pub(crate) mode: Mode,
}

/// A sender's whole set, in brief.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) count: u64,
    pub(crate) fingerprint: Fingerprint,
}

/// Some consecutive symbols of a sketch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SketchChunk {
    /// The number of symbols in the whole sketch being sent.
    pub(crate) total: usize,
    /// The index of the first symbol here.
    pub(crate) start: usize,
    pub(crate) symbols: Vec<CodedSymbol>,
}

/// A parsed frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) last: bool,
    pub(crate) seq: u64,
    pub(crate) summary: Option<Summary>,
    /// Sketch symbols asked for, `start..end`.
    pub(crate) request: Option<std::ops::Range<usize>>,
    pub(crate) sketch: Option<SketchChunk>,
    pub(crate) ranges: Vec<Range>,
}

/// Writes the sections and ranges of one frame.
pub(crate) struct FrameWriter {
    summary: Option<Summary>,
    request: Option<std::ops::Range<usize>>,
    sketch: Option<SketchChunk>,
    body: Vec<u8>,
    count: u64,
    prev_timestamp: u64,
}

impl FrameWriter {
    pub(crate) fn new() -> Self {
        Self {
            summary: None,
            request: None,
            sketch: None,
            body: Vec::new(),
            count: 0,
            prev_timestamp: 0,
        }
    }

    /// Bytes the frame would take at most if finished now.
    pub(crate) fn len(&self) -> usize {
        let sections = if self.summary.is_some() || self.request.is_some() || self.sketch.is_some()
        {
            MAX_SECTIONS_LEN
        } else {
            0
        };
        let symbols = self.sketch.as_ref().map_or(0, |c| c.symbols.len());
        MAX_HEADER_LEN + sections + symbols * SYMBOL_LEN + self.body.len() + TRAILER_LEN
    }

    /// Adds the summary section.
    pub(crate) fn set_summary(&mut self, summary: Summary) {
        self.summary = Some(summary);
    }

    /// Adds the sketch request section.
    pub(crate) fn set_request(&mut self, request: std::ops::Range<usize>) {
        self.request = Some(request);
    }

    /// Adds the sketch chunk section.
    pub(crate) fn set_sketch(&mut self, chunk: SketchChunk) {
        self.sketch = Some(chunk);
    }

    /// Whether the frame says anything yet.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0 && self.summary.is_none() && self.request.is_none() && self.sketch.is_none()
    }

    /// Appends a range; `lower` must be the previous range's upper bound.
    pub(crate) fn push(&mut self, lower: &Bound, upper: &Bound, mode: &Mode) {
        self.write_bound(upper, mode.tag());
        match mode {
            Mode::Skip => {}
            Mode::Fingerprint(fp) => self.body.extend_from_slice(&fp.0),
            Mode::List(items) | Mode::Items(items) => {
                write_varint(&mut self.body, items.len() as u128);
                let mut prev = lower.timestamp();
                for item in items {
                    write_varint(
                        &mut self.body,
                        u128::from(item.timestamp.saturating_sub(prev)),
                    );
                    self.body.extend_from_slice(&item.id);
                    prev = item.timestamp;
                }
            }
        }
        self.count += 1;
    }

    /// Writes the timestamp, then one byte holding the mode tag (high 2 bits) and the prefix
    /// length (low 6 bits), then the prefix.
    fn write_bound(&mut self, bound: &Bound, tag: u8) {
        if bound.is_infinite() {
            write_varint(&mut self.body, 0);
            self.body.push(tag << 6);
            return;
        }
        let delta = u128::from(bound.timestamp().saturating_sub(self.prev_timestamp));
        write_varint(&mut self.body, delta + 1);
        self.prev_timestamp = bound.timestamp();
        let prefix = bound.prefix();
        self.body.push(tag << 6 | prefix.len() as u8);
        self.body.extend_from_slice(prefix);
    }

    /// Finishes the frame.
    pub(crate) fn finish(self, seq: u64, last: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.push(VERSION);
        let mut flags = if last { FLAG_LAST } else { 0 };
        if self.summary.is_some() {
            flags |= FLAG_SUMMARY;
        }
        if self.request.is_some() {
            flags |= FLAG_REQUEST;
        }
        if self.sketch.is_some() {
            flags |= FLAG_SKETCH;
        }
        out.push(flags);
        write_varint(&mut out, u128::from(seq));
        if let Some(summary) = &self.summary {
            write_varint(&mut out, u128::from(summary.count));
            out.extend_from_slice(&summary.fingerprint.0);
        }
        if let Some(request) = &self.request {
            write_varint(&mut out, request.start as u128);
            write_varint(&mut out, request.end as u128);
        }
        if let Some(chunk) = &self.sketch {
            write_varint(&mut out, chunk.total as u128);
            write_varint(&mut out, chunk.start as u128);
            write_varint(&mut out, chunk.symbols.len() as u128);
            for symbol in &chunk.symbols {
                symbol.write(&mut out);
            }
        }
        write_varint(&mut out, u128::from(self.count));
        out.extend_from_slice(&self.body);
        let check = blake3::hash(&out);
        out.extend_from_slice(&check.as_bytes()[..CHECK_LEN]);
        out
    }
}

/// Parses a whole frame, checking every field, given the bound where its first range starts.
pub(crate) fn parse_frame(bytes: &[u8], start: Bound) -> Result<Frame, ReconcileError> {
    let body_len = bytes
        .len()
        .checked_sub(CHECK_LEN)
        .ok_or(ReconcileError::Truncated)?;
    let (body, check) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes()[..CHECK_LEN] != *check {
        return Err(ReconcileError::BadCheck);
    }
    let mut reader = Reader {
        bytes: body,
        pos: 0,
    };
    let version = reader.byte()?;
    if version != VERSION {
        return Err(ReconcileError::UnsupportedVersion(version));
    }
    let flags = reader.byte()?;
    if flags & !(FLAG_LAST | FLAG_SUMMARY | FLAG_REQUEST | FLAG_SKETCH) != 0 {
        return Err(ReconcileError::Malformed("unknown flag bits"));
    }
    let seq = reader.varint_u64()?;
    let summary = if flags & FLAG_SUMMARY != 0 {
        let count = reader.varint_u64()?;
        let mut fp = [0; FINGERPRINT_LEN];
        fp.copy_from_slice(reader.take(FINGERPRINT_LEN)?);
        Some(Summary {
            count,
            fingerprint: Fingerprint(fp),
        })
    } else {
        None
    };
    let request = if flags & FLAG_REQUEST != 0 {
        let start = reader.symbol_index()?;
        let end = reader.symbol_index()?;
        if start >= end {
            return Err(ReconcileError::Malformed("empty sketch request"));
        }
        Some(start..end)
    } else {
        None
    };
    let sketch = if flags & FLAG_SKETCH != 0 {
        let total = reader.symbol_index()?;
        let start = reader.symbol_index()?;
        let n = reader.symbol_index()?;
        if n == 0 || start + n > total {
            return Err(ReconcileError::Malformed("sketch chunk outside its sketch"));
        }
        let bytes = reader.take(n * SYMBOL_LEN)?;
        let symbols = bytes
            .chunks_exact(SYMBOL_LEN)
            .map(|chunk| {
                let mut symbol = [0; SYMBOL_LEN];
                symbol.copy_from_slice(chunk);
                CodedSymbol::read(&symbol)
            })
            .collect();
        Some(SketchChunk {
            total,
            start,
            symbols,
        })
    } else {
        None
    };
    let count = reader.varint_u64()?;
    // Each range takes at least two bytes, so a count beyond that is a lie.
    if count > (body.len() / 2) as u64 {
        return Err(ReconcileError::Truncated);
    }
    let mut ranges = Vec::with_capacity(count as usize);
    let mut lower = start;
    let mut prev_timestamp = 0u64;
    for _ in 0..count {
        if lower.is_infinite() {
            return Err(ReconcileError::BoundsOutOfOrder);
        }
        let (upper, tag) = reader.bound(&mut prev_timestamp)?;
        if upper <= lower {
            return Err(ReconcileError::BoundsOutOfOrder);
        }
        let mode = match tag {
            0 => Mode::Skip,
            1 => {
                let mut fp = [0; FINGERPRINT_LEN];
                fp.copy_from_slice(reader.take(FINGERPRINT_LEN)?);
                Mode::Fingerprint(Fingerprint(fp))
            }
            tag @ (2 | 3) => {
                let items = reader.items(&lower, &upper)?;
                if tag == 2 {
                    Mode::List(items)
                } else {
                    Mode::Items(items)
                }
            }
            tag => return Err(ReconcileError::UnknownMode(tag)),
        };
        ranges.push(Range { lower, upper, mode });
        lower = upper;
    }
    if reader.pos != body.len() {
        return Err(ReconcileError::Malformed(
            "trailing bytes after the last range",
        ));
    }
    Ok(Frame {
        last: flags & FLAG_LAST != 0,
        seq,
        summary,
        request,
        sketch,
        ranges,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ReconcileError> {
        let end = self.pos.checked_add(n).ok_or(ReconcileError::Truncated)?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(ReconcileError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, ReconcileError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u128, ReconcileError> {
        let mut value: u128 = 0;
        for shift in (0..).step_by(7).take(19) {
            let byte = self.byte()?;
            value |= u128::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ReconcileError::Malformed("varint longer than 19 bytes"))
    }

    /// Reads a count or index of sketch symbols, at most [`MAX_SKETCH_SYMBOLS`].
    fn symbol_index(&mut self) -> Result<usize, ReconcileError> {
        let value = self.varint()?;
        if value > MAX_SKETCH_SYMBOLS as u128 {
            return Err(ReconcileError::Malformed(
                "sketch index above MAX_SKETCH_SYMBOLS",
            ));
        }
        Ok(value as usize)
    }

    fn varint_u64(&mut self) -> Result<u64, ReconcileError> {
        u64::try_from(self.varint()?).map_err(|_| ReconcileError::Malformed("varint overflows u64"))
    }

    /// Reads a bound and the mode tag packed with it.
    fn bound(&mut self, prev_timestamp: &mut u64) -> Result<(Bound, u8), ReconcileError> {
        let encoded = self.varint()?;
        let packed = self.byte()?;
        let (tag, prefix_len) = (packed >> 6, usize::from(packed & 0x3f));
        if encoded == 0 {
            if prefix_len != 0 {
                return Err(ReconcileError::Malformed("infinite bound with a prefix"));
            }
            return Ok((Bound::MAX, tag));
        }
        let timestamp = u64::try_from(encoded - 1 + u128::from(*prev_timestamp))
            .map_err(|_| ReconcileError::Malformed("bound timestamp overflows u64"))?;
        *prev_timestamp = timestamp;
        let prefix = self.take(prefix_len.min(ID_LEN + 1))?;
        let bound = Bound::from_prefix(timestamp, prefix)
            .ok_or(ReconcileError::Malformed("bound prefix longer than an ID"))?;
        Ok((bound, tag))
    }

    fn items(&mut self, lower: &Bound, upper: &Bound) -> Result<Vec<Item>, ReconcileError> {
        let count = self.varint_u64()?;
        if count > ((self.bytes.len() - self.pos) / MIN_ITEM_LEN) as u64 {
            return Err(ReconcileError::Truncated);
        }
        let mut items: Vec<Item> = Vec::with_capacity(count as usize);
        let mut prev = lower.timestamp();
        for _ in 0..count {
            let delta = self.varint_u64()?;
            let timestamp = prev
                .checked_add(delta)
                .ok_or(ReconcileError::Malformed("item timestamp overflows u64"))?;
            let mut id = [0; ID_LEN];
            id.copy_from_slice(self.take(ID_LEN)?);
            let item = Item::new(timestamp, id);
            let in_order = items.last().is_none_or(|last| *last < item);
            if !in_order || !upper.is_above(&item) || lower.is_above(&item) {
                return Err(ReconcileError::ItemOutOfRange);
            }
            prev = timestamp;
            items.push(item);
        }
        Ok(items)
    }
}

fn write_varint(out: &mut Vec<u8>, mut value: u128) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
