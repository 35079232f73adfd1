//! Integration tests for photomesh: they run the real `photomesh` binary on real folders and
//! real SQLite files and real QUIC on loopback. This library holds what the tests
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

pub mod bench;
pub mod browser;
pub mod flood;
pub mod http;
pub mod nat;
pub mod netns;
pub mod page;
pub mod samples;
pub mod syncthing;

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

/// A number from the environment variable `name`, or `default` when it is unset or not a
/// number (benchmarks' settings).
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Builds the release `photomesh` binary, for benchmarks: they run from
/// `target/release/deps`, so [`photomesh_bin`] finds it next to them.
pub fn build_release_binary() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow::anyhow!("the tests crate has no workspace above it"))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "photomesh",
            "--bin",
            "photomesh",
        ])
        .current_dir(root)
        .status()
        .map_err(|e| anyhow::anyhow!("running cargo build: {e}"))?;
    anyhow::ensure!(
        status.success(),
        "`cargo build --release -p photomesh` failed"
    );
    let bin = photomesh_bin();
    anyhow::ensure!(
        bin.is_file(),
        "{} is missing after the build",
        bin.display()
    );
    Ok(())
}

/// How long the helpers below wait for a node to get somewhere.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Node {
    /// A new device named `name`, initialised in `dir/name`.
    pub fn init(dir: &Path, name: &str) -> Self {
        let node = Self::at(dir.join(name));
        node.ok(&["init", "--name", name]);
        node
    }

    /// Starts `pair` on loopback (with `extra` arguments) and returns the process, once it
    /// listens, and the text code it shows.
    pub fn start_pair(&self, extra: &[&str]) -> (Spawned, String) {
        let mut args = vec!["pair", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut pair = self.spawn(&args);
        let line = pair.wait_for_line(WAIT, |l| l.starts_with("Code: "));
        let code = line.trim_start_matches("Code: ").trim().to_owned();
        pair.wait_for_line(WAIT, |l| l.contains("listening on"));
        (pair, code)
    }

    /// Starts the node (`run`) on loopback and returns the process and its address.
    pub fn start_run(&self) -> (Spawned, String) {
        self.start_run_with_env(&[])
    }

    /// Starts the node (`run`) with extra environment variables.
    pub fn start_run_with_env(&self, env: &[(&str, &str)]) -> (Spawned, String) {
        self.start_run_at("127.0.0.1:0", env)
    }

    /// Starts the node (`run`) listening at `listen`, with extra environment variables.
    pub fn start_run_at(&self, listen: &str, env: &[(&str, &str)]) -> (Spawned, String) {
        let mut run = self.spawn_with_env(&["run", "--listen", listen], env);
        let line = run.wait_for_line(WAIT, |l| l.contains("listening on"));
        let addr = line.rsplit(' ').next().unwrap_or_default().to_owned();
        (run, addr)
    }

    /// Starts the node (`run`) on loopback with its page at `web` (`127.0.0.1:0`: any free
    /// port), and returns the process, its QUIC address and the page's `HOST:PORT`.
    pub fn start_run_web(&self, web: &str) -> (Spawned, String, String) {
        let mut run = self.spawn(&["run", "--listen", "127.0.0.1:0", "--web", web]);
        let line = run.wait_for_line(WAIT, |l| l.contains("listening on"));
        let addr = line.rsplit(' ').next().unwrap_or_default().to_owned();
        let page = run.wait_for_line(WAIT, |l| l.starts_with("The page: "));
        let page = page
            .trim_start_matches("The page: http://")
            .trim_end_matches('/')
            .to_owned();
        (run, addr, page)
    }

    /// Sends one raw line to the running node's control socket and returns the answer line.
    pub fn control_line(&self, line: &[u8]) -> String {
        use std::io::{BufRead, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(self.home.join("control.sock"))
            .expect("the node's control socket answers");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        stream.write_all(line).unwrap();
        let mut answer = String::new();
        std::io::BufReader::new(stream)
            .read_line(&mut answer)
            .unwrap();
        answer
    }

    /// Pairs `joiner` into this node's mesh with `role` (`full` or `vault`).
    pub fn invite(&self, joiner: &Node, role: &str) {
        let (pair, code) = self.start_pair(&["--role", role]);
        joiner.ok(&["join", &code]);
        let (exit, out) = pair.wait(WAIT);
        assert_eq!(exit, 0, "pair failed: {out}");
    }
}

/// A loopback UDP address that was free a moment ago, to start a node at a known address.
pub fn free_udp_addr() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

/// Polls `check` every 100 ms until it gives a value, and returns it; panics after [`WAIT`]
/// with `what` and the last thing `check` reported. (A bounded wait for an event that
/// another process causes.)
pub fn wait_until<T>(what: &str, check: impl FnMut() -> Result<T, String>) -> T {
    wait_until_every(what, std::time::Duration::from_millis(100), check)
}

/// [`wait_until`], polling every `every` (zero: as fast as `check` runs), for a moment that
/// passes quickly (a transfer under way, progress about to be persisted).
pub fn wait_until_every<T>(
    what: &str,
    every: std::time::Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) => assert!(
                std::time::Instant::now() < deadline,
                "{what} did not happen within {WAIT:?}; last seen: {last}"
            ),
        }
        std::thread::sleep(every);
    }
}

/// A `photomesh` process running in the background, whose output lines are collected.
pub struct Spawned {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Node {
    /// Starts `photomesh --home HOME ARGS…` in the background.
    pub fn spawn(&self, args: &[&str]) -> Spawned {
        self.spawn_with_env(args, &[])
    }

    /// Starts `photomesh --home HOME ARGS…` in the background with extra environment
    /// variables (e.g. `PHOTOMESH_LOG=info` to read what the node does).
    pub fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Spawned {
        let mut command = Command::new(photomesh_bin());
        command
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .env_remove("PHOTOMESH_HOME")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied());
        Spawned::start(command)
    }
}

impl Spawned {
    /// Starts `command` in the background (standard input closed), collecting its standard
    /// output and standard error lines.
    pub fn start(mut command: Command) -> Spawned {
        command.stdin(std::process::Stdio::null());
        Self::start_with_stdin_as_set(command)
    }

    /// [`Spawned::start`], with standard input a pipe: dropping the returned end closes it.
    pub fn start_with_stdin(mut command: Command) -> (Spawned, std::process::ChildStdin) {
        command.stdin(std::process::Stdio::piped());
        let mut spawned = Self::start_with_stdin_as_set(command);
        let stdin = spawned.child.stdin.take().expect("piped");
        (spawned, stdin)
    }

    fn start_with_stdin_as_set(mut command: Command) -> Spawned {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} starts: {e}"));
        let (tx, lines) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Spawned {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The process ID (for reading its CPU time and memory in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `timeout`) for an output line that `matches`, and returns it.
    pub fn wait_for_line(
        &mut self,
        timeout: std::time::Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return line.clone();
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no matching output line within {timeout:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits (at most `timeout`) for the process to exit, and returns its exit code and all
    /// its output.
    pub fn wait(mut self, timeout: std::time::Duration) -> (i32, String) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Collect what is left of the output.
                while let Ok(line) = self
                    .lines
                    .recv_timeout(std::time::Duration::from_millis(200))
                {
                    self.seen.push(line);
                }
                return (status.code().unwrap_or(-1), self.seen.join("\n"));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the process did not exit within {timeout:?}; output:\n{}",
                self.seen.join("\n")
            );
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stops the process with SIGTERM (as an operator would) and waits for it.
    pub fn terminate(self) -> (i32, String) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.wait(std::time::Duration::from_secs(20))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Content and modification time (seconds, nanoseconds) of every regular file under `dir`
/// (sockets, like a running node's control socket, are left out), to prove a folder was left
/// untouched. Meant for the small folders tests make.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let bytes = fs::read(&path).unwrap();
                out.insert(path, (bytes, meta.mtime(), meta.mtime_nsec()));
            }
        }
    }
    out
}

/// Calls back whenever a file is opened (inotify `IN_OPEN`), until dropped: a test shows
/// with it that a process never opened a file.
pub struct FileWatcher {
    /// Kept for its drop, which stops the watch.
    _watcher: notify::RecommendedWatcher,
}

impl FileWatcher {
    /// Watches `path` and calls `on_open` for every open of it.
    pub fn on_open(path: &Path, on_open: impl Fn() + Send + 'static) -> Self {
        use notify::Watcher;
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(e) = event
                    && matches!(
                        e.kind,
                        notify::EventKind::Access(notify::event::AccessKind::Open(_))
                    )
                {
                    on_open();
                }
            })
            .unwrap();
        watcher
            .watch(path, notify::RecursiveMode::NonRecursive)
            .unwrap();
        Self { _watcher: watcher }
    }
}

/// [`snapshot`] keyed by the path relative to `dir`, to compare two trees.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, i64, i64)> {
    snapshot(dir)
        .into_iter()
        .map(|(p, v)| (p.strip_prefix(dir).unwrap().to_owned(), v))
        .collect()
}

/// Asserts that `got` holds every file of `want` (two [`tree`]s), byte for byte with its
/// mtime, naming only the paths that differ.
pub fn assert_has(
    got: &BTreeMap<PathBuf, (Vec<u8>, i64, i64)>,
    want: &BTreeMap<PathBuf, (Vec<u8>, i64, i64)>,
) {
    let wrong: Vec<_> = want
        .iter()
        .filter(|(p, v)| got.get(*p) != Some(v))
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        wrong.is_empty(),
        "missing or different (bytes or mtime): {wrong:?}; present: {:?}",
        got.keys()
    );
}

/// Where a node's blob store keeps the blob with this ID (hex), asserted to be there.
pub fn stored_blob(home: &Path, hex: &str) -> PathBuf {
    let path = home.join("blobs").join(&hex[..2]).join(hex);
    assert!(path.is_file(), "{} is stored", path.display());
    path
}

/// The verified bytes a blob's progress file (`blobs/partial/ID.progress`) records: the sum
/// of its `START END` byte ranges, after the header line.
pub fn progress_verified(text: &str) -> u64 {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let start: u64 = words.next()?.parse().ok()?;
            let end: u64 = words.next()?.parse().ok()?;
            end.checked_sub(start)
        })
        .sum()
}

/// Where `scripts/fetch-corpus` put the real-file corpus (`tests/corpus/`): the target
/// directory's `corpus/files`.
pub fn corpus_files() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                workspace.join(t)
            }
        })
        .unwrap_or_else(|| workspace.join("target"))
        .join("corpus/files")
}

/// Copies every file of the real-file corpus into `dir` (its folders kept), for tests that
/// need camera and phone files of every kind. Fails when the corpus was not fetched.
pub fn copy_corpus(dir: &Path) -> usize {
    fn walk(from: &Path, to: &Path, copied: &mut usize) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), &target, copied);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
                *copied += 1;
            }
        }
    }
    let files = corpus_files();
    assert!(
        files.is_dir(),
        "the real-file corpus is not fetched ({}): run `scripts/fetch-corpus` first",
        files.display()
    );
    let mut copied = 0;
    walk(&files, dir, &mut copied);
    copied
}

/// Waits until `node` stores `want` blobs and `verify` finds nothing wrong with any.
pub fn wait_for_verified_blobs(node: &Node, want: u64) {
    wait_until(
        &format!("{} holds {want} blobs", node.home.display()),
        || {
            let report = node.json(&["verify"]);
            if report["blobs_checked"] == want && report["findings"].as_array().unwrap().is_empty()
            {
                Ok(())
            } else {
                Err(report.to_string())
            }
        },
    );
}

/// Waits until every one of `nodes` holds the same number of records (photos, members and
/// key shares alike), and returns it.
pub fn wait_same_records(nodes: &[&Node]) -> u64 {
    wait_until("the devices hold the same records", || {
        let counts: Vec<u64> = nodes
            .iter()
            .map(|n| n.json(&["status"])["records"].as_u64().unwrap())
            .collect();
        if counts.iter().all(|c| *c == counts[0]) {
            Ok(counts[0])
        } else {
            Err(format!("{counts:?}"))
        }
    })
}
