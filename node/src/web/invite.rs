//! "Add a device": one invitation at a time, run as `photomesh pair` runs it
//! (`mesh::pairing::pair`), on a thread of its own with its own home handle, while the page
//! shows its code and, live, what became of it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use photomesh_protocol::membership::Role;
use photomesh_protocol::pairing::PairingCode;

use crate::clock::now_ms;
use crate::home::Home;
use crate::lock::Mutex;
use crate::mesh::pairing::{Joined, PairObserver, PairOptions};

/// Where an invitation is.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Its code is being made.
    Starting,
    /// Its code is shown; no device has joined yet.
    Waiting,
    /// A device joined.
    Joined {
        /// Its name.
        name: String,
        /// Its role.
        role: &'static str,
    },
    /// It ended without a device (expired, cancelled, or failed).
    Ended(String),
}

/// The invitation the page shows.
#[derive(Debug, Clone)]
pub struct Invitation {
    /// A number that grows with every invitation (the page names the one it shows).
    pub serial: u64,
    /// The role offered.
    pub role: Role,
    /// Its text code, once made.
    pub code: Option<String>,
    /// When the code stops working (ms since the epoch).
    pub expires_at_ms: u64,
    /// Where it is.
    pub stage: Stage,
    /// Attempts that failed (a wrong code, a revoked device), newest last.
    pub attempts: Vec<String>,
}

/// The page's invitation, if one was started.
#[derive(Default)]
pub struct Invitations {
    current: Arc<Mutex<Option<Invitation>>>,
    cancel: Mutex<Option<tokio_util::sync::CancellationToken>>,
}

struct Observe(Arc<Mutex<Option<Invitation>>>, u64);

impl Observe {
    fn update(&self, f: impl FnOnce(&mut Invitation)) {
        if let Some(inv) = self.0.lock().as_mut().filter(|i| i.serial == self.1) {
            f(inv);
        }
    }
}

impl PairObserver for Observe {
    fn ready(&mut self, _code: &PairingCode, text: &str, _listening: std::net::SocketAddr) {
        self.update(|inv| {
            inv.code = Some(text.to_owned());
            inv.stage = Stage::Waiting;
        });
    }

    fn attempt_failed(&mut self, why: &str) {
        self.update(|inv| {
            inv.attempts.push(why.to_owned());
            let len = inv.attempts.len();
            inv.attempts.drain(..len.saturating_sub(5));
        });
    }
}

impl Invitations {
    /// The invitation shown now, if any.
    pub fn current(&self) -> Option<Invitation> {
        self.current.lock().clone()
    }

    /// Starts an invitation offering `role` for `expires`, replacing (and ending) any other.
    pub fn start(&self, home: PathBuf, role: Role, expires: Duration) {
        let serial = self.current.lock().as_ref().map_or(1, |i| i.serial + 1);
        let cancel = tokio_util::sync::CancellationToken::new();
        if let Some(old) = self.cancel.lock().replace(cancel.clone()) {
            old.cancel();
        }
        *self.current.lock() = Some(Invitation {
            serial,
            role,
            code: None,
            expires_at_ms: now_ms() + u64::try_from(expires.as_millis()).unwrap_or(u64::MAX),
            stage: Stage::Starting,
            attempts: Vec::new(),
        });
        let observe = Observe(self.current.clone(), serial);
        std::thread::spawn(move || {
            let end = run(
                home,
                role,
                expires,
                cancel,
                Observe(observe.0.clone(), serial),
            );
            observe.update(|inv| inv.stage = end);
        });
    }

    /// Ends the invitation shown, if it still waits.
    pub fn cancel(&self) {
        if let Some(token) = self.cancel.lock().take() {
            token.cancel();
        }
    }
}

fn run(
    home: PathBuf,
    role: Role,
    expires: Duration,
    cancel: tokio_util::sync::CancellationToken,
    mut observe: Observe,
) -> Stage {
    let home = match Home::open(&home) {
        Ok(h) => h,
        Err(e) => return Stage::Ended(format!("the home could not be opened: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Stage::Ended(format!("could not start: {e}")),
    };
    let options = PairOptions {
        role,
        expires_in: expires,
        listen: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        png: None,
    };
    runtime.block_on(async {
        tokio::select! {
            joined = crate::mesh::pairing::pair(&home, options, &mut observe) => match joined {
                Ok(Joined { name, role, .. }) => Stage::Joined { name, role },
                Err(e) => Stage::Ended(e.to_string()),
            },
            () = cancel.cancelled() => Stage::Ended("cancelled".into()),
        }
    })
}
