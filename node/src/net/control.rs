//! The local control socket: how `photomesh status`, `devices` and other verbs talk to the
//! node that runs on the same home (`photomesh run`).
//!
//! The socket is `control.sock` in the home, mode 0600: only the home's owner can connect.
//! Beside it, `node.lock` is held locked (an OS file lock, released when the process dies
//! however it dies) for as long as a node runs, so a second node on the same home is refused
//! with a clear message. A socket file left by a node that was killed is stale: nothing
//! answers on it, and the next node replaces it. A clean exit removes it.
//!
//! The protocol (`node/CONTROL.md`) is newline-delimited JSON: the client writes one request
//! per line, `{"version":1,"verb":"status"}`, and reads one response line per request,
//! `{"version":1,"ok":true,"result":…}` or `{"version":1,"ok":false,"error":"…"}`. A request
//! longer than [`MAX_REQUEST_BYTES`] is answered with an error and the connection closed;
//! anything malformed is answered with an error naming the problem, and the node carries on.
//!
//! This module does not know what the node is: the daemon gives the server a function that
//! answers a verb.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// The socket's file name in the home.
pub const SOCKET_FILE: &str = "control.sock";
/// The lock file a running node holds locked, in the home.
pub const LOCK_FILE: &str = "node.lock";
/// The protocol version this node speaks.
pub const VERSION: u64 = 1;
/// The longest request line accepted, in bytes (the newline not counted).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// The longest response line a client accepts, in bytes.
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// How long a client waits for the node to answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the control socket could not be opened or asked.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another node holds this home.
    #[error(
        "another photomesh node already runs on this home ({0}); stop it first (or use another --home)"
    )]
    AlreadyRunning(PathBuf),
    /// A file or socket operation failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket or lock file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The node answered something that is not a response of this protocol.
    #[error(
        "the running node gave an answer this photomesh cannot read ({0}); is it another version?"
    )]
    BadAnswer(String),
    /// The node refused the request.
    #[error("the running node refused the request: {0}")]
    Refused(String),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ControlError + '_ {
    move |source| ControlError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Which end of a connection dialled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialler {
    /// This device dialled.
    Here,
    /// The peer dialled.
    There,
}

/// A transfer as `status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TransferStatus {
    /// The blob's ID (hex).
    pub blob: String,
    /// The devices it is being fetched from.
    pub peers: Vec<String>,
    /// Verified bytes so far.
    pub done: u64,
    /// The blob's sealed length.
    pub total: u64,
    /// Verified bytes per second since this try started.
    pub bytes_per_s: f64,
    /// Seconds left at that rate, once there is a rate.
    pub eta_s: Option<f64>,
}

/// A fetch a local command asked the running node for (control verbs `fetch` and
/// `fetch_progress`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FetchJob {
    /// Whether it is still running.
    pub running: bool,
    /// Blobs asked for.
    pub wanted: usize,
    /// Of those, blobs now held.
    pub fetched: usize,
    /// Members that could not supply what they were asked for, with the reason.
    pub problems: Vec<String>,
}

/// A restore drill a local command asked the running node for (control verbs `drill` and
/// `drill_progress`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DrillJob {
    /// Whether it is still running.
    pub running: bool,
    /// Each device's result, once done.
    pub devices: Vec<crate::replicate::drill::DeviceDrill>,
    /// Why the drill could not run at all, if so.
    pub problem: Option<String>,
}

/// What a running node reports live: its connections and transfers in progress.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LiveStatus {
    /// The node's device ID.
    pub device_id: String,
    /// The address its QUIC endpoint is bound to.
    pub listening: String,
    /// When the node started (ms since the epoch).
    pub started_at_ms: u64,
    /// QUIC connections the endpoint holds open, closing ones included.
    pub open_connections: u64,
    /// The connection to each peer it is connected to now.
    pub connections: Vec<LiveConnection>,
    /// Blobs being received.
    pub transfers: Vec<TransferStatus>,
    /// Blobs waiting because the disk is nearly full, if any are.
    #[serde(default)]
    pub disk_short: Option<DiskShort>,
    /// The router's port mapping, when `[nat] map_port` asks for one.
    #[serde(default)]
    pub port_mapping: Option<crate::net::portmap::MapState>,
    /// Members not connected now, with why the last dial of each failed.
    #[serde(default)]
    pub unreached: Vec<(String, String)>,
}

/// Blobs a node does not fetch because they would eat into its free-space reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskShort {
    /// Free bytes on the blob store's disk when last looked.
    pub free: u64,
    /// The reserve kept free (`[storage] reserve`).
    pub reserve: u64,
    /// The cap on what this device stores (`[storage] max_bytes`), when that is what binds.
    #[serde(default)]
    pub quota: Option<u64>,
    /// Bytes of blobs stored, when the quota binds.
    #[serde(default)]
    pub used: u64,
    /// Blobs waiting for room.
    pub blobs_waiting: u64,
    /// Their size, as far as known.
    pub bytes_waiting: u64,
}

/// One live connection, as a running node reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LiveConnection {
    /// The peer's device ID.
    pub device_id: String,
    /// An ID both ends of the connection derive alike (from its keys), in hex: the same
    /// value on both sides means both hold the same connection.
    pub connection_id: String,
    /// The peer's address.
    pub address: String,
    /// When the connection was adopted (ms since the epoch).
    pub since_ms: u64,
    /// Who dialled it.
    pub dialled: Dialler,
}

/// The home's node lock, held: no node can start on the home until it is dropped (or the
/// process ends, however it ends).
pub struct NodeLock(File);

impl NodeLock {
    /// Takes the node lock of `home`; refuses if a node runs on it (or anything else holds
    /// it, such as a `repair-index`).
    pub fn take(home: &Path) -> Result<Self, ControlError> {
        let lock_path = home.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => Ok(Self(lock)),
            Err(fs::TryLockError::WouldBlock) => Err(ControlError::AlreadyRunning(home.to_owned())),
            Err(fs::TryLockError::Error(e)) => Err(io_error(&lock_path)(e)),
        }
    }
}

/// The open control socket of a running node. Dropping it removes the socket file.
pub struct ControlSocket {
    path: PathBuf,
    listener: tokio::net::UnixListener,
    _lock: File,
}

impl ControlSocket {
    /// Takes the home's node lock and opens its control socket, replacing a stale one.
    /// Refuses if another node runs on this home. Must be called inside a tokio runtime.
    pub fn bind(home: &Path) -> Result<Self, ControlError> {
        let NodeLock(lock) = NodeLock::take(home)?;
        let path = home.join(SOCKET_FILE);
        if fs::symlink_metadata(&path).is_ok() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                // Something answers although the lock was free: a node that does not lock.
                return Err(ControlError::AlreadyRunning(home.to_owned()));
            }
            tracing::info!(
                path = %path.display(),
                "replacing a stale control socket left by a node that did not stop cleanly"
            );
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
        let listener = tokio::net::UnixListener::bind(&path).map_err(io_error(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(io_error(&path))?;
        Ok(Self {
            path,
            listener,
            _lock: lock,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves clients until the task is dropped: each on its own task, each request line
    /// answered by `answer(verb, args)` (`args` is the request's `"args"`, or null).
    pub async fn serve<F>(&self, answer: F)
    where
        F: Fn(&str, &Value) -> Result<Value, String> + Send + Sync + 'static,
    {
        let answer = Arc::new(answer);
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("control socket: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_client(stream, &*answer).await {
                    tracing::debug!("control client: {e}");
                }
            });
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Answers one client's requests, one line each, until it hangs up.
async fn serve_client(
    stream: tokio::net::UnixStream,
    answer: &(dyn Fn(&str, &Value) -> Result<Value, String> + Send + Sync),
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = tokio::io::BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut read)
            .take(MAX_REQUEST_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let complete = line.last() == Some(&b'\n');
        if !complete && line.len() > MAX_REQUEST_BYTES {
            let response = error_response(&format!(
                "request longer than {MAX_REQUEST_BYTES} bytes; the connection is closed"
            ));
            write.write_all(&response).await?;
            return Ok(());
        }
        let response = match parse_request(&line) {
            Ok((verb, args)) => match answer(&verb, &args) {
                Ok(result) => {
                    encode_line(&json!({"version": VERSION, "ok": true, "result": result}))
                }
                Err(e) => error_response(&e),
            },
            Err(e) => error_response(&e),
        };
        write.write_all(&response).await?;
        if !complete {
            // The client ended without a newline: that was its last request.
            return Ok(());
        }
    }
}

fn encode_line(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn error_response(error: &str) -> Vec<u8> {
    encode_line(&json!({"version": VERSION, "ok": false, "error": error}))
}

/// Parses one request line into its verb and arguments (`"args"`, null when absent), or says
/// what is wrong with it.
pub fn parse_request(line: &[u8]) -> Result<(String, Value), String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        format!("the request is not JSON ({e}); send e.g. {{\"version\":1,\"verb\":\"status\"}}")
    })?;
    let object = value
        .as_object()
        .ok_or("the request must be a JSON object, e.g. {\"version\":1,\"verb\":\"status\"}")?;
    match object.get("version") {
        None => {}
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(v) => {
            return Err(format!(
                "protocol version {v} is not spoken here; this node speaks version {VERSION}"
            ));
        }
    }
    let args = object.get("args").cloned().unwrap_or(Value::Null);
    match object.get("verb") {
        Some(Value::String(verb)) => Ok((verb.clone(), args)),
        Some(_) => Err("\"verb\" must be a string".into()),
        None => Err("the request has no \"verb\"".into()),
    }
}

/// Asks the node running on `home` to do `verb`, and returns its result; `None` when no
/// node runs there (no socket, or a stale one nothing answers on).
pub fn ask(home: &Path, verb: &str) -> Result<Option<Value>, ControlError> {
    ask_with(home, verb, Value::Null)
}

/// [`ask`] with arguments (the request's `"args"`).
pub fn ask_with(home: &Path, verb: &str, args: Value) -> Result<Option<Value>, ControlError> {
    let path = home.join(SOCKET_FILE);
    let stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(io_error(&path)(e)),
    };
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(CLIENT_TIMEOUT)))
        .map_err(io_error(&path))?;
    let request = if args.is_null() {
        encode_line(&json!({"version": VERSION, "verb": verb}))
    } else {
        encode_line(&json!({"version": VERSION, "verb": verb, "args": args}))
    };
    (&stream).write_all(&request).map_err(io_error(&path))?;
    let mut line = Vec::new();
    io::BufReader::new(io::Read::take(&stream, MAX_RESPONSE_BYTES))
        .read_until(b'\n', &mut line)
        .map_err(io_error(&path))?;
    let response: Value =
        serde_json::from_slice(&line).map_err(|e| ControlError::BadAnswer(e.to_string()))?;
    if response["version"].as_u64() != Some(VERSION) {
        return Err(ControlError::BadAnswer(format!(
            "protocol version {}",
            response["version"]
        )));
    }
    match response["ok"].as_bool() {
        Some(true) => Ok(Some(response["result"].clone())),
        Some(false) => Err(ControlError::Refused(
            response["error"]
                .as_str()
                .unwrap_or("no reason given")
                .to_owned(),
        )),
        None => Err(ControlError::BadAnswer("no \"ok\" field".into())),
    }
}

/// The live status of the node running on `home`, or `None` when none runs.
pub fn live_status(home: &Path) -> Result<Option<LiveStatus>, ControlError> {
    ask(home, "status")?
        .map(|v| serde_json::from_value(v).map_err(|e| ControlError::BadAnswer(e.to_string())))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_or_refused_with_a_reason() {
        assert_eq!(
            parse_request(br#"{"version":1,"verb":"status"}"#).unwrap(),
            ("status".to_owned(), Value::Null)
        );
        assert_eq!(
            parse_request(b"{\"verb\":\"status\"}\n").unwrap(),
            ("status".to_owned(), Value::Null)
        );
        assert_eq!(
            parse_request(br#"{"version":1,"verb":"fetch","args":{"blobs":[]}}"#).unwrap(),
            ("fetch".to_owned(), json!({"blobs": []}))
        );
        for (bad, says) in [
            (&b"status"[..], "not JSON"),
            (b"[1,2]", "JSON object"),
            (br#"{"version":2,"verb":"status"}"#, "version 2"),
            (br#"{"version":1}"#, "no \"verb\""),
            (br#"{"verb":7}"#, "must be a string"),
            (b"\xff\xfe", "not JSON"),
        ] {
            let e = parse_request(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[tokio::test]
    async fn a_second_node_is_refused_and_a_stale_socket_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let socket = ControlSocket::bind(dir.path()).unwrap();
        let mode = fs::metadata(socket.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            ControlSocket::bind(dir.path()),
            Err(ControlError::AlreadyRunning(_))
        ));
        drop(socket);
        assert!(!dir.path().join(SOCKET_FILE).exists(), "removed on drop");
        // A socket file nothing answers on (a killed node's) is replaced.
        drop(std::os::unix::net::UnixListener::bind(dir.path().join(SOCKET_FILE)).unwrap());
        assert!(dir.path().join(SOCKET_FILE).exists());
        assert!(ask(dir.path(), "status").unwrap().is_none());
        let socket = ControlSocket::bind(dir.path()).unwrap();
        let path = dir.path().to_owned();
        let server = tokio::spawn(async move {
            socket
                .serve(|verb, _| match verb {
                    "status" => Ok(json!({"fine": true})),
                    other => Err(format!("unknown verb {other:?}")),
                })
                .await;
        });
        let answer =
            tokio::task::spawn_blocking(move || (ask(&path, "status"), ask(&path, "dance")))
                .await
                .unwrap();
        assert_eq!(answer.0.unwrap().unwrap()["fine"], true);
        assert!(matches!(answer.1, Err(ControlError::Refused(e)) if e.contains("dance")));
        server.abort();
    }
}
