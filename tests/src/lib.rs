//! Integration tests for photomesh: they run the real `photomesh` binary on real folders,
//! real SQLite files and (later) real QUIC. This library holds the shared helpers; the tests
//! themselves live in `tests/tests/`.
