//! The `photomesh` command line.

fn main() {}
