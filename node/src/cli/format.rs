//! How the command line writes sizes and times.

/// `n` and the noun, plural unless `n` is 1: "1 problem", "2 problems", "1 photo".
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

/// Formats milliseconds since the epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn utc(ms: i64) -> String {
    let [y, m, d, h, mi, _] = photomesh::clock::utc_fields(ms);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02} UTC")
}
