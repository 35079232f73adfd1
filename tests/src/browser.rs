//! A real headless Chromium, driven through chromedriver's W3C WebDriver protocol: just the
//! commands the page tests use (go, find, click, type, read, run a script, screenshot).
//! Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http;

/// The Chromium binary.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Its driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser window, closed (with its driver) when dropped.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window `width` × `height` CSS pixels.
    pub fn start(width: u32, height: u32) -> Self {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: install Debian's chromium and chromium-driver (.ci/run does)"
            );
        }
        let port = free_tcp_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http::request(&addr, "GET", "/status", &[], b"").is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("a profile directory");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-extensions",
                    "--no-first-run", "--password-store=basic",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut browser = Self {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let answer = browser.call("POST", "/session", Some(caps));
        browser.session = answer["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_owned();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let answer = http::request(
            &self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        let value: Value = serde_json::from_slice(&answer.body)
            .unwrap_or_else(|e| panic!("chromedriver said no JSON ({e}): {}", answer.text()));
        assert!(
            answer.status == 200,
            "chromedriver {method} {path} failed ({}): {value}",
            answer.status
        );
        value["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url`.
    pub fn go(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The elements `css` selects now.
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.session_call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_object()?.values().next()?.as_str().map(str::to_owned))
            .collect()
    }

    /// The first element `css` selects, waiting (up to 30 s) for one.
    pub fn find(&self, css: &str) -> String {
        self.wait_for(&format!("an element {css:?}"), || {
            self.find_all(css).into_iter().next()
        })
    }

    /// The text of the first element `css` selects (read by a script, so a part the page
    /// has just replaced is read as it is now), waiting for one.
    pub fn text(&self, css: &str) -> String {
        self.wait_text(css, &format!("an element {css:?}"), |_| true)
    }

    fn text_now(&self, css: &str) -> Option<String> {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.innerText : null;",
            Value::from(css)
        );
        self.script(&script).as_str().map(str::to_owned)
    }

    /// Waits (up to 30 s) until the text of `css` satisfies `ok`, and returns it.
    pub fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_for(what, || self.text_now(css).filter(|t| ok(t)))
    }

    /// Clicks the first element `css` selects.
    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.session_call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Types `text` into the first element `css` selects.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Replaces the text of the first input `css` selects with `text`.
    pub fn fill(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.session_call("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.type_into(css, text);
    }

    /// Runs `script` (a function body; `return` gives its value) in the page.
    pub fn script(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The value of the page's cookie `name` (HttpOnly ones too).
    pub fn cookie(&self, name: &str) -> String {
        self.session_call("GET", &format!("/cookie/{name}"), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's address now.
    pub fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A PNG of the window, saved at `path`.
    pub fn screenshot(&self, path: &Path) -> Vec<u8> {
        let data = self.session_call("GET", "/screenshot", None);
        save_png(&data, path)
    }

    /// A PNG of the first element `css` selects, saved at `path`.
    pub fn element_screenshot(&self, css: &str, path: &Path) -> Vec<u8> {
        let id = self.find(css);
        let data = self.session_call("GET", &format!("/element/{id}/screenshot"), None);
        save_png(&data, path)
    }

    fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + crate::WAIT;
        loop {
            if let Some(v) = check() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "waited {:?} for {what}; the page at {} reads: {}",
                crate::WAIT,
                self.url(),
                self.script("return document.body ? document.body.innerText : ''")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn save_png(data: &Value, path: &Path) -> Vec<u8> {
    let png = data_encoding::BASE64
        .decode(data.as_str().unwrap_or_default().as_bytes())
        .expect("a base64 screenshot");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("the screenshot folder");
    }
    std::fs::write(path, &png).expect("the screenshot is saved");
    png
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http::request(
                &self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                &[],
                b"",
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where the page tests keep their screenshots: `target/web-screenshots/NAME.png`.
pub fn screenshot_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("web-screenshots").join(format!("{name}.png"))
}
