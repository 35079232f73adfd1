//! Deterministic, seeded simulations of many photomesh devices running the real protocol
//! state machines over a simulated network and clock.
//!
//! A run is a pure function of its [`Scenario`], seed and device count: one seeded generator
//! ([`SimRng`]) draws every random choice, events wait in an ordered queue, and every
//! collection that is iterated is ordered (`BTreeMap`/`BTreeSet`), so a failing seed replays
//! exactly. Nothing here reads the wall clock, sleeps, or opens a socket.
//!
//! # Layout
//! - [`rng`]: the seeded generator.
//! - [`scenario`]: the named scenarios (faults, churn, photos added) a run follows.
//! - [`sim`]: the simulator: devices, links, the event queue, invariants and the report.

pub mod rng;
pub mod scenario;
pub mod sim;

pub use rng::SimRng;
pub use scenario::{SCENARIOS, Scenario};
pub use sim::{Failure, MAX_NODES, Report, run};
