//! photomesh as a headless service: `photomesh run` speaking the sd_notify protocol to a real
//! notification socket (ready only once it listens, watchdog pings, stopping on SIGTERM), its
//! log when standard error is the journal, the systemd unit in `dist/` as `systemd-analyze`
//! judges it, the example configuration beside it, and `pair` over SSH (with and without a
//! terminal).

#![allow(clippy::unwrap_used)]

use std::fs::{self, File};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use photomesh_tests::{Node, Spawned, WAIT, photomesh_bin, wait_until};

/// The highest exposure `systemd-analyze security` may give the unit (0 is best, 10 worst).
const MAX_EXPOSURE: f64 = 3.0;

#[test]
fn run_tells_the_service_manager_it_is_ready_alive_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "pi");
    let manager = NotifySocket::bind(&dir.path().join("notify.sock"));
    let log = dir.path().join("stderr.log");
    let stderr = File::create(&log).unwrap();
    let journal = device_and_inode(&log);
    let mut run = RunningNode::start(
        &node,
        stderr,
        &[
            ("NOTIFY_SOCKET", manager.path.to_str().unwrap()),
            // Pinged every 100 ms.
            ("WATCHDOG_USEC", "200000"),
            ("JOURNAL_STREAM", &journal),
            ("PHOTOMESH_LOG", "info"),
        ],
    );

    let ready = manager.next();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready.contains("STATUS=listening on 127.0.0.1:"),
        "{ready:?}"
    );
    // Ready means listening: the control socket answers at once, and the port is taken.
    let live = photomesh::net::control::live_status(&node.home)
        .unwrap()
        .expect("the control socket answers once the node said READY=1");
    let addr: SocketAddr = live.listening.parse().unwrap();
    assert_ne!(addr.port(), 0);
    let taken = std::net::UdpSocket::bind(addr).unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::AddrInUse);

    for _ in 0..3 {
        assert_eq!(manager.next(), "WATCHDOG=1\n");
    }

    run.terminate();
    while !manager.next().lines().any(|l| l == "STOPPING=1") {}
    assert_eq!(run.wait(), 0, "{}", fs::read_to_string(&log).unwrap());

    // Standard error was the journal: no timestamps of its own, no colour.
    let logged = fs::read_to_string(&log).unwrap();
    assert!(logged.contains("listening"), "{logged}");
    for line in logged.lines() {
        assert!(
            starts_with_level(line),
            "a journal line with a timestamp: {line:?}"
        );
        assert!(
            !line.contains('\x1b'),
            "a journal line with colour: {line:?}"
        );
    }
}

#[test]
fn a_journal_stream_inherited_without_the_stream_keeps_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::init(dir.path(), "laptop");
    let log = dir.path().join("stderr.log");
    let stderr = File::create(&log).unwrap();
    // Another file's device and inode: standard error is not the journal.
    let other = device_and_inode(dir.path());
    let mut run = RunningNode::start(
        &node,
        stderr,
        &[("JOURNAL_STREAM", &other), ("PHOTOMESH_LOG", "info")],
    );
    let line = wait_until("the node logs that it listens", || {
        let logged = fs::read_to_string(&log).map_err(|e| e.to_string())?;
        logged
            .lines()
            .find(|l| l.contains("listening"))
            .map(str::to_owned)
            .ok_or(logged)
    });
    assert!(!starts_with_level(&line), "no timestamp: {line:?}");
    run.terminate();
    assert_eq!(run.wait(), 0);
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    // `verify` checks that ExecStart names an executable: the one under test stands in for
    // /usr/bin/photomesh.
    let dir = tempfile::tempdir().unwrap();
    let unit = fs::read_to_string(unit_path()).unwrap();
    let bin = photomesh_bin();
    let copy = dir.path().join("photomesh.service");
    fs::write(
        &copy,
        unit.replace("/usr/bin/photomesh", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = systemd_analyze(&["verify", "--man=false", copy.to_str().unwrap()]);
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify {}: {}{}",
        unit_path().display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_unit_is_sandboxed() {
    let unit = unit_path();
    let out = systemd_analyze(&[
        "security",
        "--offline=true",
        "--no-pager",
        unit.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for photomesh.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|figure| figure.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in the report: {report}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        exposure <= MAX_EXPOSURE,
        "{} is exposed at {exposure} (at most {MAX_EXPOSURE}):\n{report}",
        unit.display()
    );
}

#[test]
fn the_example_configuration_is_what_config_init_writes() {
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("config.toml");
    Node::at(dir.path()).ok(&["--config", written.to_str().unwrap(), "config", "init"]);
    let written = fs::read_to_string(written).unwrap();
    let example_path = repo_root().join("dist/config.toml");
    let example = fs::read_to_string(&example_path).unwrap();
    assert!(
        example.ends_with(&written),
        "{} is out of date: keep its header and replace the rest with what \
         `photomesh --config NEW.toml config init` writes",
        example_path.display()
    );
}

#[test]
fn pair_without_a_terminal_prints_a_qr_code_and_the_text_code() {
    let dir = tempfile::tempdir().unwrap();
    let pi = Node::init(dir.path(), "pi");
    let phone = Node::init(dir.path(), "phone");
    let pair = pi.spawn(&["pair", "--listen", "127.0.0.1:0"]);
    let (code, output) = join_with_the_text_code(pair, &phone);
    let scanned = scan_terminal_qr(&output, dir.path());
    assert!(
        scanned.eq_ignore_ascii_case(&code),
        "{scanned} is not {code}"
    );
}

#[test]
fn pair_on_a_terminal_prints_a_qr_code_and_the_text_code() {
    let dir = tempfile::tempdir().unwrap();
    let pi = Node::init(dir.path(), "pi");
    let laptop = Node::init(dir.path(), "laptop");
    // `script` gives `pair` a terminal, as `ssh -t` does.
    let command = format!(
        "{} --home {} pair --listen 127.0.0.1:0",
        photomesh_bin().display(),
        pi.home.display()
    );
    let mut script = Command::new("script");
    script
        .args([
            "--quiet",
            "--return",
            "--flush",
            "--command",
            &command,
            "/dev/null",
        ])
        .env_remove("PHOTOMESH_HOME");
    let (code, output) = join_with_the_text_code(Spawned::start(script), &laptop);
    let scanned = scan_terminal_qr(&output, dir.path());
    assert!(
        scanned.eq_ignore_ascii_case(&code),
        "{scanned} is not {code}"
    );
}

/// `joiner` joins with the text code `pair` shows (as a device without a camera does); returns
/// the code and everything `pair` printed.
fn join_with_the_text_code(mut pair: Spawned, joiner: &Node) -> (String, String) {
    let line = pair.wait_for_line(WAIT, |l| l.starts_with("Code: "));
    let code = line.trim_start_matches("Code: ").trim().to_owned();
    pair.wait_for_line(WAIT, |l| l.contains("listening on"));
    joiner.ok(&["join", &code]);
    let (exit, output) = pair.wait(WAIT);
    assert_eq!(exit, 0, "pair failed: {output}");
    (code, output)
}

/// The QR code drawn with half blocks in `output`, decoded by a real QR decoder (as a phone
/// camera reads it).
fn scan_terminal_qr(output: &str, dir: &Path) -> String {
    let rows: Vec<Vec<char>> = output
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && l.chars().all(|c| " █▀▄".contains(c)))
        .map(|l| l.chars().collect())
        .collect();
    assert!(rows.len() > 10, "no QR code in the output:\n{output}");
    // Each character is two modules, one above the other; dark modules are blank.
    const SCALE: usize = 8;
    let width = rows[0].len();
    let height = rows.len() * 2;
    let mut pixels = vec![0u8; width * SCALE * height * SCALE];
    for (row, cells) in rows.iter().enumerate() {
        for (x, cell) in cells.iter().enumerate() {
            let light = [matches!(cell, '█' | '▀'), matches!(cell, '█' | '▄')];
            for (half, light) in light.into_iter().enumerate() {
                let y = row * 2 + half;
                for py in y * SCALE..(y + 1) * SCALE {
                    let start = py * width * SCALE + x * SCALE;
                    pixels[start..start + SCALE].fill(if light { 255 } else { 0 });
                }
            }
        }
    }
    let path = dir.join("terminal-qr.png");
    let file = std::io::BufWriter::new(File::create(&path).unwrap());
    let mut encoder = png::Encoder::new(file, (width * SCALE) as u32, (height * SCALE) as u32);
    encoder.set_color(png::ColorType::Grayscale);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
    photomesh::mesh::qr::read_png(&path).unwrap()
}

/// A service manager's notification socket: a datagram socket at a path.
struct NotifySocket {
    path: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    fn bind(path: &Path) -> Self {
        let socket = UnixDatagram::bind(path).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        Self {
            path: path.to_owned(),
            socket,
        }
    }

    /// The next message, waiting at most [`WAIT`].
    fn next(&self) -> String {
        let mut buf = [0; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) => panic!("no message on the notification socket within {WAIT:?}: {e}"),
        }
    }
}

/// `photomesh run` with standard error going to a file, killed if the test fails.
struct RunningNode(Child);

impl RunningNode {
    fn start(node: &Node, stderr: File, env: &[(&str, &str)]) -> Self {
        let child = Command::new(photomesh_bin())
            .arg("--home")
            .arg(&node.home)
            .args(["run", "--listen", "127.0.0.1:0"])
            .env_remove("PHOTOMESH_HOME")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Self(child)
    }

    fn terminate(&mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Its exit code, waiting at most [`WAIT`].
    fn wait(&mut self) -> i32 {
        wait_until("the node exits", || match self.0.try_wait() {
            Ok(Some(status)) => Ok(status.code().unwrap_or(-1)),
            Ok(None) => Err("still running".into()),
            Err(e) => Err(e.to_string()),
        })
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `DEVICE:INODE` of `path`, as systemd writes `JOURNAL_STREAM`.
fn device_and_inode(path: &Path) -> String {
    let meta = fs::metadata(path).unwrap();
    format!("{}:{}", meta.dev(), meta.ino())
}

/// Whether a log line starts with its level, not a timestamp.
fn starts_with_level(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or_default();
    ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&first)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

fn unit_path() -> PathBuf {
    repo_root().join("dist/photomesh.service")
}

/// Runs `systemd-analyze ARGS`; fails with what to install when it is missing.
fn systemd_analyze(args: &[&str]) -> std::process::Output {
    match Command::new("systemd-analyze").args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "systemd-analyze is missing, so dist/photomesh.service cannot be checked: install \
             systemd (`apt-get install systemd`)"
        ),
        Err(e) => panic!("running systemd-analyze: {e}"),
    }
}
