//! Integration tests for photomesh: they run the real `photomesh` binary on real folders and
//! real SQLite files (and, with later issues, real QUIC). This library holds what the tests
//! share — running the binary, and making sample photos — and the tests themselves live in
//! `tests/tests/`.
//!
//! The binary is the one `cargo test --workspace` builds (`target/<profile>/photomesh`, found
//! next to the test executable), or the one named by `PHOTOMESH_BIN`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod samples;

/// The `photomesh` binary under test.
pub fn photomesh_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PHOTOMESH_BIN") {
        return PathBuf::from(bin);
    }
    // target/<profile>/deps/<test executable> → target/<profile>/photomesh
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("photomesh");
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (which builds it), \
         or build it first with `cargo build -p photomesh`, or set PHOTOMESH_BIN",
        bin.display()
    );
    bin
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A photomesh node: a home directory the binary is pointed at.
pub struct Node {
    /// The home directory.
    pub home: PathBuf,
}

impl Node {
    /// A node whose home is `home` (not yet created).
    pub fn at(home: impl Into<PathBuf>) -> Self {
        Self { home: home.into() }
    }

    /// Runs `photomesh --home HOME ARGS…`.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(photomesh_bin())
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .env_remove("PHOTOMESH_HOME")
            .output()
            .expect("photomesh runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed (exit 0) and returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, 0, "photomesh {args:?} failed: {run:#?}");
        run.stdout
    }

    /// Runs a command with `--json` that must succeed, and parses its output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.ok(&args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
    }
}

/// Content and modification time (seconds, nanoseconds) of every file under `dir`, to prove
/// a folder was left untouched. Meant for the small folders tests make.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                out.insert(path, (bytes, meta.mtime(), meta.mtime_nsec()));
            }
        }
    }
    out
}
