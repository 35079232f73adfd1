//! What the running node tells a service manager (systemd's `Type=notify`, sd_notify(3)):
//! `READY=1` once it listens and its control socket is up, `WATCHDOG=1` every half of
//! `WATCHDOG_USEC` while it still answers, `STOPPING=1` when asked to stop. And whether
//! standard error is the journal (`JOURNAL_STREAM`), so that the log leaves timestamps to it.
//!
//! The protocol is one datagram of `KEY=value` lines to the Unix socket `NOTIFY_SOCKET` names:
//! a path, or `@name` for an abstract socket. Without `NOTIFY_SOCKET` nothing is sent. Nothing
//! here sends file descriptors, credentials of another process, or reload messages.
//! (The `sd-notify` crate does the same but cannot reach abstract sockets.)

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::AbortOnDropHandle;

use super::NodeHandle;

/// The service manager, as the running node talks to it: told it is ready, and its watchdog
/// pinged until this is dropped.
pub(super) struct Manager {
    notifier: Arc<Notifier>,
    _watchdog: Option<AbortOnDropHandle<()>>,
}

impl Manager {
    /// Tells the service manager (if any) that `node` is ready, and starts pinging its
    /// watchdog (if it has one). `None` when no service manager waits for this process.
    pub(super) fn ready(node: &NodeHandle) -> Option<Self> {
        let notifier = Arc::new(Notifier::from_env()?);
        notifier.ready(&format!("listening on {}", node.local_addr()));
        let watchdog = watchdog_period().map(|period| {
            let task = watchdog_loop(notifier.clone(), period, node.clone());
            AbortOnDropHandle::new(tokio::spawn(task))
        });
        Some(Self {
            notifier,
            _watchdog: watchdog,
        })
    }

    /// Tells the service manager that the node is stopping.
    pub(super) fn stopping(&self) {
        self.notifier.stopping();
    }
}

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
}

impl Notifier {
    /// The socket `NOTIFY_SOCKET` names, or `None` when it is unset (no service manager
    /// waits for this process) or cannot be reached (logged).
    pub fn from_env() -> Option<Self> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        match Self::connect(&name) {
            Ok(notifier) => Some(notifier),
            Err(e) => {
                tracing::warn!(
                    "NOTIFY_SOCKET={}: {e}; the service manager will not hear that the node is \
                     ready",
                    name.to_string_lossy()
                );
                None
            }
        }
    }

    /// The socket named `name`: a path, or `@name` for an abstract socket.
    pub fn connect(name: &OsStr) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        match name.as_bytes() {
            [] => return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty")),
            [b'@', abstract_name @ ..] => connect_abstract(&socket, abstract_name)?,
            _ => socket.connect(name)?,
        }
        // A manager that stopped reading must not stall the node: a full queue drops the
        // message instead.
        socket.set_nonblocking(true)?;
        Ok(Self { socket })
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}\n"));
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping\n");
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1\n");
    }

    fn send(&self, message: &str) {
        match self.socket.send(message.as_bytes()) {
            Ok(_) => tracing::trace!(message, "told the service manager"),
            Err(e) => tracing::debug!(message, "telling the service manager: {e}"),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn connect_abstract(socket: &UnixDatagram, name: &[u8]) -> io::Result<()> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    socket.connect_addr(&std::os::unix::net::SocketAddr::from_abstract_name(name)?)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn connect_abstract(_socket: &UnixDatagram, _name: &[u8]) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, when it is set and
/// `WATCHDOG_PID` (if set) is this process; `None` when no watchdog watches this process.
pub fn watchdog_period() -> Option<Duration> {
    watchdog_period_of(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_period_of(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&usec| usec > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec) / 2)
}

/// Pings the watchdog every `period` for as long as the node answers what its control socket
/// would (the runtime runs its tasks and the node's state is not stuck behind a lock). A
/// node that stops answering stops pinging, and the service manager restarts it.
async fn watchdog_loop(notifier: Arc<Notifier>, period: Duration, node: NodeHandle) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // What `photomesh status` asks: answering takes every lock a status takes.
        drop(node.live());
        notifier.watchdog();
    }
}

/// Whether standard error is the journal: `JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd)
/// names the file standard error is. A child that inherited the variable but not the stream
/// gets `false`.
pub fn stderr_is_journal() -> bool {
    let Some(named) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    named.to_string_lossy().trim() == format!("{}:{}", stat.st_dev, stat.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_pinged_twice_a_period_and_only_by_its_process() {
        let half = Some(Duration::from_millis(100));
        assert_eq!(watchdog_period_of(Some("200000"), None, 7), half);
        assert_eq!(watchdog_period_of(Some("200000"), Some("7"), 7), half);
        assert_eq!(watchdog_period_of(Some("200000"), Some("8"), 7), None);
        assert_eq!(watchdog_period_of(Some("200000"), Some("x"), 7), None);
        assert_eq!(watchdog_period_of(Some("0"), None, 7), None);
        assert_eq!(watchdog_period_of(Some("soon"), None, 7), None);
        assert_eq!(watchdog_period_of(None, Some("7"), 7), None);
    }

    #[test]
    fn messages_reach_a_socket_at_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        Notifier::connect(path.as_os_str()).unwrap().ready("up");
        let mut buf = [0; 256];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up\n");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let mut buf = [0; 256];
        let name = format!("photomesh-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let manager = UnixDatagram::bind_addr(&addr).unwrap();
        let notifier = Notifier::connect(OsStr::new(&format!("@{name}"))).unwrap();
        notifier.stopping();
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=stopping\n");
    }
}
