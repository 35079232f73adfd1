//! The page every running node serves (`[web]`, default `127.0.0.1:8470`): is every photo
//! safe, who is online, what is being copied; the photos; photos added from a phone's
//! browser; add, rename or revoke a device; the trash.
//!
//! A small axum server on the node's runtime. This file holds the server, the overview, the
//! login and the checks every request passes ([`auth`] says which); each other section has
//! its handlers in a file ([`devices`], [`library`]: photos and trash, [`receive`]: uploads,
//! kept on disk by [`upload`]). HTML is rendered on the server ([`pages`], maud: templates
//! checked when the node is compiled); the one script keeps the overview live from
//! server-sent events (`/events`) and hashes uploads, with no build step. Every asset is in
//! the binary.
//!
//! The page reads and writes the home through its own handle (a second SQLite connection,
//! as a command would), on blocking threads; it asks the running node only for what is
//! live (connections, transfers).

mod auth;
mod devices;
mod invite;
mod library;
mod pages;
mod receive;
mod upload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Form, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use auth::{AuthError, MIN_PASSWORD_LEN, password_file, set_password};

use crate::daemon::NodeHandle;
use crate::home::{Home, HomeError};
use crate::library::status::Targets;
use crate::lock::Mutex;

/// How often the live parts of the page are looked at again.
pub const REFRESH: Duration = Duration::from_secs(1);
/// The longest a form's body may be.
const FORM_LIMIT: usize = 64 << 10;

/// How the page is served.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Host names answered besides IP addresses, `localhost` and this computer's names.
    pub hosts: Vec<String>,
    /// What safety is measured against, as `status` measures it.
    pub targets: Targets,
    /// Where uploads from a browser go unless a folder labelled `Uploads` exists.
    pub uploads: PathBuf,
    /// What in the folders is backed up (`[folders] ignore`), for uploads.
    pub selection: crate::ignore::Selection,
}

/// Why the page could not be served.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Beyond loopback without a password.
    #[error(
        "the page would listen on {0}, beyond this computer, and no password is set: set one \
         with `photomesh web password`, or listen on 127.0.0.1 (`[web] listen`)"
    )]
    NeedsPassword(SocketAddr),
    /// The address could not be bound.
    #[error(
        "the page cannot listen on {addr}: {source} (another program uses it? set `[web] \
         listen`, or `[web] enabled = false`)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The password file could not be read.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The home could not be opened.
    #[error(transparent)]
    Home(#[from] HomeError),
}

/// The page's socket, bound, with what it serves: made before the node starts, so that a
/// page that cannot be served stops `photomesh run` with a clear message.
pub struct Bound {
    listener: std::net::TcpListener,
    local: SocketAddr,
    home_path: PathBuf,
    home: Home,
    options: WebOptions,
}

/// Checks the page may be served as `options` say, and binds its socket.
pub fn bind(home_path: &Path, options: WebOptions) -> Result<Bound, WebError> {
    if !options.listen.ip().is_loopback() && auth::password_hash(home_path)?.is_none() {
        return Err(WebError::NeedsPassword(options.listen));
    }
    let addr = options.listen;
    let bind_err = |source| WebError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    Ok(Bound {
        listener,
        local,
        home_path: home_path.to_owned(),
        home: Home::open(home_path)?,
        options,
    })
}

impl Bound {
    /// Where the page is served.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves the page for `node` on the current runtime until the task is dropped or the
    /// runtime ends.
    pub fn serve(self, node: NodeHandle) -> Result<tokio::task::JoinHandle<()>, WebError> {
        let addr = self.local;
        let listener = tokio::net::TcpListener::from_std(self.listener)
            .map_err(|source| WebError::Bind { addr, source })?;
        let mut names = auth::own_names();
        names.extend(self.options.hosts.iter().map(|h| h.to_ascii_lowercase()));
        let web = Arc::new(Web {
            node,
            loopback: self.local.ip().is_loopback(),
            home_path: self.home_path,
            home: Arc::new(Mutex::new("the page's home", self.home)),
            names,
            targets: self.options.targets,
            uploads: self.options.uploads,
            selection: self.options.selection,
            receiving: upload::Receiving::default(),
            auth: auth::Auth::default(),
            invitations: invite::Invitations::default(),
        });
        let app = router(web);
        Ok(tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, service).await {
                tracing::warn!("the page stopped: {e}");
            }
        }))
    }
}

struct Web {
    node: NodeHandle,
    loopback: bool,
    home_path: PathBuf,
    home: Arc<Mutex<Home>>,
    names: Vec<String>,
    targets: Targets,
    uploads: PathBuf,
    selection: crate::ignore::Selection,
    receiving: upload::Receiving,
    auth: auth::Auth,
    invitations: invite::Invitations,
}

type Shared = Arc<Web>;

impl Web {
    /// Whether a session needs a login: beyond loopback always; on loopback once a password
    /// is set. A password file that cannot be read counts as set.
    fn login_required(&self) -> bool {
        !self.loopback || !matches!(auth::password_hash(&self.home_path), Ok(None))
    }

    /// Runs `f` with the page's home on a blocking thread, its key ring as the home's key
    /// file says now (a revocation elsewhere may have rotated it: an upload is sealed with
    /// the newest epoch, as any photo).
    async fn with_home<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Home) -> T + Send + 'static,
    ) -> Result<T, PageError> {
        let home = self.home.clone();
        tokio::task::spawn_blocking(move || {
            let mut home = home.lock();
            home.reload_keys()
                .map_err(|e| PageError::internal(format!("reading the library keys: {e}")))?;
            Ok(f(&mut home))
        })
        .await
        .map_err(|e| PageError::internal(format!("the page's worker failed: {e}")))?
    }

    /// The overview's live part, rendered.
    async fn overview(&self) -> Result<pages::Overview, PageError> {
        let targets = self.targets;
        let live = self.node.live();
        self.with_home(move |home| -> Result<pages::Overview, PageError> {
            let mut status = crate::library::status::status_with(home, targets)
                .map_err(|e| PageError::internal(e.to_string()))?;
            crate::library::status::apply_live(&mut status, Some(live));
            Ok(pages::Overview {
                vault: home.keys.current().is_none(),
                status,
                now_ms: crate::clock::now_ms(),
            })
        })
        .await?
    }
}

fn router(web: Shared) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/events", get(events))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/photos", get(library::photos))
        .route("/thumb/{record}", get(library::thumb))
        .route("/upload", get(receive::upload_page))
        .route("/upload/check", post(receive::upload_check))
        .route(
            "/upload/{hash}",
            axum::routing::put(receive::upload_chunk).layer(axum::extract::DefaultBodyLimit::max(
                upload::MAX_CHUNK + 4096,
            )),
        )
        .route("/devices", get(devices::devices))
        .route(
            "/devices/invite",
            get(devices::invitation).post(devices::invite),
        )
        .route("/devices/invite/cancel", post(devices::cancel_invite))
        .route(
            "/devices/revoke",
            get(devices::revoke_page).post(devices::revoke),
        )
        .route(
            "/devices/rename",
            get(devices::rename_page).post(devices::rename),
        )
        .route("/trash", get(library::trash))
        .route("/trash/restore", post(library::trash_restore))
        .route(
            "/trash/empty",
            get(library::trash_empty_page).post(library::trash_empty),
        )
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
        .layer(axum::middleware::from_fn_with_state(web.clone(), guard))
        .layer(axum::middleware::from_fn(hardened))
        .with_state(web)
}

/// A page that went wrong: its status and what to say.
#[derive(Debug)]
struct PageError(StatusCode, String);

impl PageError {
    fn internal(why: String) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, why)
    }
    fn bad(why: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, why.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        (self.0, Html(pages::problem(self.0, &self.1).into_string())).into_response()
    }
}

fn refuse(code: StatusCode, why: &str) -> Response {
    PageError(code, why.to_owned()).into_response()
}

/// Every request passes here first (the rules: [`auth`]).
async fn guard(
    State(web): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(auth::host_name);
    let Some(host) = host.filter(|h| auth::host_allowed(h, &web.names)) else {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this page answers only to its own address; open it by IP address or by this \
             computer's name",
        );
    };
    let path = request.uri().path().to_owned();
    if path.starts_with("/static/") {
        return next.run(request).await;
    }
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes && !same_origin(&request, &host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "a form from another site was refused",
        );
    }
    let cookie = request
        .headers()
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| auth::cookie(c, auth::COOKIE))
        .map(str::to_owned);
    let mut session = cookie.as_deref().and_then(|id| web.auth.get(id));
    let mut new_cookie = None;
    if session.is_none() && !web.login_required() {
        match web.auth.open(false) {
            Ok((id, s)) => {
                new_cookie = Some(auth::set_cookie(&id));
                session = Some(s);
            }
            Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }
    let mut request = request;
    if path == "/login" {
        request.extensions_mut().insert(LoginFrom(peer));
        return next.run(request).await;
    }
    let Some(session) = session else {
        return if request.method() == Method::GET {
            Redirect::to("/login").into_response()
        } else {
            refuse(StatusCode::UNAUTHORIZED, "log in first")
        };
    };
    if changes {
        let (ok, rebuilt) = carries_csrf(request, &session.csrf).await;
        if !ok {
            return refuse(
                StatusCode::FORBIDDEN,
                "this form is out of date or came from elsewhere (no valid CSRF token): reload \
                 the page and try again",
            );
        }
        request = rebuilt;
    }
    request.extensions_mut().insert(session);
    if let Some(id) = cookie.filter(|_| new_cookie.is_none()) {
        request.extensions_mut().insert(SessionId(id));
    }
    let mut response = next.run(request).await;
    if let Some(cookie) = new_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Headers on every answer: nothing but this page's own files runs or loads, no other site
/// may frame it (a revoke button under someone else's page), types are not guessed, and no
/// address leaks to another site in a Referer. (`no-referrer` would make the browser send
/// `Origin: null` with the page's own forms, which [`same_origin`] refuses.)
async fn hardened(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The session cookie's value, for `logout`.
#[derive(Clone)]
struct SessionId(String);
/// Who is logging in, for the rate limit.
#[derive(Clone, Copy)]
struct LoginFrom(SocketAddr);

/// An `Origin` header, when the browser sends one, names this page's host.
fn same_origin(request: &Request, host: &str) -> bool {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return true;
    };
    let origin = origin.to_str().unwrap_or("");
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    rest.and_then(auth::host_name).is_some_and(|h| h == host)
}

/// Whether a request that changes something carries `csrf`, in its `X-CSRF-Token` header
/// or its form's `csrf` field; the request comes back whole (its body read into memory, at
/// most [`FORM_LIMIT`]).
async fn carries_csrf(request: Request, csrf: &str) -> (bool, Request) {
    if let Some(token) = request.headers().get("x-csrf-token") {
        let ok = token.to_str().is_ok_and(|t| auth::same(t, csrf));
        return (ok, request);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return (false, Request::from_parts(parts, Body::empty()));
    };
    let ok = bytes.split(|b| *b == b'&').any(|pair| {
        pair.strip_prefix(b"csrf=")
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|v| auth::same(v, csrf))
    });
    (ok, Request::from_parts(parts, Body::from(bytes)))
}

type Session = axum::Extension<auth::Session>;

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        pages::JS,
    )
}

async fn overview(State(web): State<Shared>, session: Session) -> Result<Html<String>, PageError> {
    let overview = web.overview().await?;
    Ok(Html(
        pages::overview_page(&overview, &session).into_string(),
    ))
}

/// Which live parts a page listens to (`/events?want=overview,invite`).
#[derive(serde::Deserialize)]
struct Want {
    want: Option<String>,
}

/// The live parts, as server-sent events: `overview` (the overview's live part) and
/// `invite` (the invitation shown), each sent when it changed, and only those the page
/// asked for (both, if it named none).
async fn events(
    State(web): State<Shared>,
    axum::extract::Query(want): axum::extract::Query<Want>,
) -> impl IntoResponse {
    let wants = |part: &str| {
        want.want
            .as_deref()
            .is_none_or(|w| w.split(',').any(|p| p == part))
    };
    let (want_overview, want_invite) = (wants("overview"), wants("invite"));
    struct Last {
        overview: String,
        invite: String,
        first: bool,
    }
    let state = (
        web,
        Last {
            overview: String::new(),
            invite: String::new(),
            first: true,
        },
    );
    let stream = futures_util::stream::unfold(state, move |(web, mut last)| async move {
        loop {
            if !last.first {
                tokio::time::sleep(REFRESH).await;
            }
            last.first = false;
            let mut event = None;
            let invite = web
                .invitations
                .current()
                .filter(|_| want_invite)
                .map(|i| pages::invitation_live(&i).into_string())
                .unwrap_or_default();
            if invite != last.invite {
                last.invite.clone_from(&invite);
                event = Some(Event::default().event("invite").data(invite));
            } else if want_overview && let Ok(overview) = web.overview().await {
                let html = pages::overview_live(&overview).into_string();
                if html != last.overview {
                    last.overview.clone_from(&html);
                    event = Some(Event::default().event("overview").data(html));
                }
            }
            if let Some(event) = event {
                return Some((Ok::<_, std::convert::Infallible>(event), (web, last)));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(serde::Deserialize)]
struct LoginForm {
    password: String,
}

async fn login_page(State(web): State<Shared>) -> Response {
    if !web.login_required() {
        return Redirect::to("/").into_response();
    }
    Html(pages::login(None).into_string()).into_response()
}

async fn login(
    State(web): State<Shared>,
    axum::Extension(LoginFrom(from)): axum::Extension<LoginFrom>,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Some(wait) = web.auth.login_wait(from.ip()) {
        let why = format!(
            "too many wrong passwords from {}: wait {} s and try again",
            from.ip(),
            wait.as_secs().max(1)
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Html(pages::login(Some(&why)).into_string()),
        )
            .into_response();
    }
    let hash = match auth::password_hash(&web.home_path) {
        Ok(Some(hash)) => hash,
        Ok(None) => return Redirect::to("/").into_response(),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let ok = tokio::task::spawn_blocking(move || auth::verify(&hash, &form.password))
        .await
        .unwrap_or(false);
    if !ok {
        web.auth.failed_login(from.ip());
        return (
            StatusCode::UNAUTHORIZED,
            Html(pages::login(Some("that is not the password")).into_string()),
        )
            .into_response();
    }
    match web.auth.open(true) {
        Ok((id, _)) => (
            [(header::SET_COOKIE, auth::set_cookie(&id))],
            Redirect::to("/"),
        )
            .into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn logout(State(web): State<Shared>, request: Request) -> Response {
    if let Some(SessionId(id)) = request.extensions().get::<SessionId>() {
        web.auth.close(id);
    }
    (
        [(header::SET_COOKIE, auth::clear_cookie())],
        Redirect::to("/login"),
    )
        .into_response()
}
