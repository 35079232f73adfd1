//! Deterministic, seeded simulations of many photomesh devices running the real protocol
//! state machines over a simulated network and clock. Empty until the reconciliation issue.
