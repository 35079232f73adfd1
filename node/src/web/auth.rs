//! Who may use the page: the password (an Argon2 hash in the home), sessions, CSRF tokens,
//! the Host header, and how often a login may fail.
//!
//! Rules, in the order [`super::guard`] applies them:
//! - A request whose Host is not this node's (an IP address, `localhost`, this computer's
//!   name, or a configured `[web] hosts` name) is refused: a page on another site that
//!   rebinds its name to this address gets nothing.
//! - Without a password, only loopback is served, and every browser there gets a session
//!   at once. With a password (required beyond loopback), a session comes only from a login.
//! - Every POST carries its session's CSRF token (a form field `csrf` or the header
//!   `X-CSRF-Token`), and an `Origin`, if sent, must be this Host.
//! - Sessions live in memory (a restarted node asks for the login again), in a cookie that is
//!   `HttpOnly` and `SameSite=Strict`.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::home::HomeError;
use crate::lock::Mutex;

/// The file in the home that holds the page's password hash (a PHC string).
pub const PASSWORD_FILE: &str = "web.password";
/// The session cookie's name.
pub const COOKIE: &str = "photomesh_session";
/// How long a session lasts without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 86_400);
/// The most sessions kept; the least recently used goes first.
const MAX_SESSIONS: usize = 256;
/// Failed logins allowed from one address within [`LOGIN_WINDOW`] (and ten times as many
/// from all addresses together).
pub const LOGIN_FAILURES: usize = 5;
/// The window [`LOGIN_FAILURES`] counts over.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// The shortest password `photomesh web password` accepts.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Why the password could not be set or read.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Too short.
    #[error("a password for the page needs at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    /// The password file could not be read or written.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// Argon2 refused to hash (it does not, for these parameters: a bug).
    #[error("the password could not be hashed: {0}")]
    Hash(String),
    /// The stored hash is not a hash.
    #[error("{0}: not a password hash; set the password again with `photomesh web password`")]
    Corrupt(PathBuf),
}

/// The path of the password file of `home`.
pub fn password_file(home: &Path) -> PathBuf {
    home.join(PASSWORD_FILE)
}

/// The stored hash, if a password is set.
pub fn password_hash(home: &Path) -> Result<Option<String>, AuthError> {
    let path = password_file(home);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim().to_owned();
            PasswordHash::new(&text).map_err(|_| AuthError::Corrupt(path.clone()))?;
            Ok(Some(text))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HomeError::Io { path, source }.into()),
    }
}

/// Hashes `password` (Argon2id, the crate's default cost) and stores the hash in the home,
/// readable by its owner only. Sessions of a running node stay valid until it restarts.
pub fn set_password(home: &Path, password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AuthError::TooShort);
    }
    let random = crate::home::random32()?;
    let salt = SaltString::encode_b64(&random[..16]).map_err(|e| AuthError::Hash(e.to_string()))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Hash(e.to_string()))?
        .to_string();
    let path = password_file(home);
    let io = |source| HomeError::Io {
        path: path.clone(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        file.write_all(format!("{hash}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(())
}

/// Whether `password` matches `hash` (a PHC string). Slow on purpose: run it off the
/// runtime's threads.
pub fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// One browser's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token every POST of this session must carry.
    pub csrf: String,
    /// Whether it began with a login (it can log out).
    pub login: bool,
    last_used: Instant,
}

/// The sessions and the login failures of a running page.
#[derive(Debug)]
pub struct Auth {
    sessions: Mutex<BTreeMap<String, Session>>,
    failures: Mutex<VecDeque<(Instant, IpAddr)>>,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            sessions: Mutex::new("the page's sessions", BTreeMap::new()),
            failures: Mutex::new("the page's failed logins", VecDeque::new()),
        }
    }
}

fn token() -> Result<String, HomeError> {
    Ok(hex::encode(crate::home::random32()?))
}

impl Auth {
    /// A new session (`login`: opened by a login): its cookie value and the session.
    pub fn open(&self, login: bool) -> Result<(String, Session), HomeError> {
        let id = token()?;
        let session = Session {
            csrf: token()?,
            login,
            last_used: Instant::now(),
        };
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, s| s.last_used.elapsed() < SESSION_IDLE);
        while sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => sessions.remove(&k),
                None => break,
            };
        }
        sessions.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The session a cookie value names, if it is live.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut sessions = self.sessions.lock();
        let session = sessions.get_mut(id)?;
        if session.last_used.elapsed() >= SESSION_IDLE {
            sessions.remove(id);
            return None;
        }
        session.last_used = Instant::now();
        Some(session.clone())
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.sessions.lock().remove(id);
    }

    /// How long `from` must wait before it may try to log in again; `None`: it may now.
    pub fn login_wait(&self, from: IpAddr) -> Option<Duration> {
        let mut failures = self.failures.lock();
        while failures
            .front()
            .is_some_and(|(at, _)| at.elapsed() >= LOGIN_WINDOW)
        {
            failures.pop_front();
        }
        let mine: Vec<Instant> = failures
            .iter()
            .filter(|(_, ip)| *ip == from)
            .map(|(at, _)| *at)
            .collect();
        let limited = if mine.len() >= LOGIN_FAILURES {
            mine.first().copied()
        } else if failures.len() >= LOGIN_FAILURES * 10 {
            failures.front().map(|(at, _)| *at)
        } else {
            None
        };
        limited.map(|oldest| LOGIN_WINDOW.saturating_sub(oldest.elapsed()))
    }

    /// Counts a failed login from `from`.
    pub fn failed_login(&self, from: IpAddr) {
        self.failures.lock().push_back((Instant::now(), from));
    }
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The host part of a Host header (`name`, `1.2.3.4`, `[::1]`, each with an optional port),
/// lower-cased; `None` if it is not one.
pub fn host_name(header: &str) -> Option<String> {
    let header = header.trim();
    let host = if let Some(rest) = header.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        inside
    } else {
        header.split_once(':').map_or(header, |(h, _)| h)
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
    {
        return None;
    }
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// Whether the page answers to `host` (from [`host_name`]): any IP address, `localhost`,
/// this computer's names, and the configured ones. A rebinding attack needs a name of its
/// own, and no such name is on the list.
pub fn host_allowed(host: &str, names: &[String]) -> bool {
    host.parse::<IpAddr>().is_ok()
        || host == "localhost"
        || names.iter().any(|n| n.eq_ignore_ascii_case(host))
}

/// This computer's own names: its host name and the same with `.local` (mDNS), lower-cased.
pub fn own_names() -> Vec<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty());
    match name {
        Some(n) => {
            let short = n.strip_suffix(".local").unwrap_or(&n).to_owned();
            vec![format!("{short}.local"), short]
        }
        None => Vec::new(),
    }
}

/// The value of cookie `name` in a Cookie header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The Set-Cookie header for session `id`.
pub fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_IDLE.as_secs()
    )
}

/// The Set-Cookie header that ends the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_stored_as_a_hash_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        assert!(password_hash(dir.path()).unwrap().is_none());
        assert!(matches!(
            set_password(dir.path(), "short"),
            Err(AuthError::TooShort)
        ));
        set_password(dir.path(), "correct horse").unwrap();
        let hash = password_hash(dir.path()).unwrap().unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify(&hash, "correct horse"));
        assert!(!verify(&hash, "correct horsf"));
        assert!(!verify(&hash, ""));
        let mode = std::fs::metadata(password_file(dir.path()))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
        std::fs::write(password_file(dir.path()), "not a hash").unwrap();
        assert!(matches!(
            password_hash(dir.path()),
            Err(AuthError::Corrupt(_))
        ));
    }

    #[test]
    fn hosts_are_ip_addresses_localhost_or_named() {
        let names = vec!["nas.local".to_owned(), "nas".to_owned()];
        for ok in [
            "127.0.0.1:8470",
            "localhost:8470",
            "[::1]:8470",
            "192.168.1.20",
            "NAS.local:8470",
            "nas",
        ] {
            let host = host_name(ok).unwrap();
            assert!(host_allowed(&host, &names), "{ok}");
        }
        for bad in ["evil.example:8470", "127.0.0.1.evil.example", "nas.evil"] {
            let host = host_name(bad).unwrap();
            assert!(!host_allowed(&host, &names), "{bad}");
        }
        for junk in ["", "[::1", "[zz]:1", "a b", "x/y"] {
            assert!(host_name(junk).is_none(), "{junk}");
        }
    }

    #[test]
    fn logins_fail_a_few_times_then_wait() {
        let auth = Auth::default();
        let me: IpAddr = "192.168.1.5".parse().unwrap();
        let other: IpAddr = "192.168.1.6".parse().unwrap();
        for _ in 0..LOGIN_FAILURES {
            assert!(auth.login_wait(me).is_none());
            auth.failed_login(me);
        }
        let wait = auth.login_wait(me).unwrap();
        assert!(wait > Duration::from_secs(50) && wait <= LOGIN_WINDOW);
        assert!(auth.login_wait(other).is_none());
    }

    #[test]
    fn sessions_are_found_by_cookie_and_closed() {
        let auth = Auth::default();
        let (id, session) = auth.open(true).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        let header = format!("a=b; {COOKIE}={id}; c=d");
        let found = auth.get(cookie(&header, COOKIE).unwrap()).unwrap();
        assert_eq!(found.csrf, session.csrf);
        assert!(same(&found.csrf, &session.csrf));
        assert!(!same(&found.csrf, &id));
        auth.close(&id);
        assert!(auth.get(&id).is_none());
        assert!(auth.get("forged").is_none());
    }
}
