//! A browser's session on a node's page, driven by hand: the session cookie and CSRF token a
//! loopback page hands any browser, and the upload requests the page's script sends.

use crate::http::{self, Response};

/// A session on the page at `addr`.
#[derive(Debug, Clone)]
pub struct PageSession {
    /// The page's `HOST:PORT`.
    pub addr: String,
    /// The `Cookie` header value.
    pub cookie: String,
    /// The token every change carries (replace it to send a forged one).
    pub csrf: String,
}

/// One chunk of an upload, as the page's script describes it.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// The whole file's BLAKE3 hash (hex).
    pub hash: &'a str,
    /// Where the chunk starts.
    pub offset: usize,
    /// The whole file's size.
    pub size: usize,
    /// The file's name, percent-encoded.
    pub name: &'a str,
    /// The phone's name, percent-encoded.
    pub device: &'a str,
    /// The chunk's bytes.
    pub bytes: &'a [u8],
}

impl PageSession {
    /// Opens a session on a loopback page (no password): its "Add photos" page sets the
    /// cookie and carries the token.
    pub fn open(addr: &str) -> anyhow::Result<Self> {
        let page = http::request(addr, "GET", "/upload", &[], b"")?;
        let cookie = page
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .ok_or_else(|| anyhow::anyhow!("no session cookie: {page:?}"))?
            .to_owned();
        let text = page.text();
        let csrf = text
            .split("data-csrf=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .ok_or_else(|| anyhow::anyhow!("no CSRF token in the page"))?
            .to_owned();
        Ok(Self {
            addr: addr.to_owned(),
            cookie,
            csrf,
        })
    }

    /// Sends one chunk (`PUT /upload/HASH`).
    pub fn put(&self, chunk: Chunk<'_>) -> std::io::Result<Response> {
        let (offset, size) = (chunk.offset.to_string(), chunk.size.to_string());
        http::request(
            &self.addr,
            "PUT",
            &format!("/upload/{}", chunk.hash),
            &[
                ("Cookie", self.cookie.as_str()),
                ("X-CSRF-Token", self.csrf.as_str()),
                ("X-Upload-Offset", &offset),
                ("X-Upload-Size", &size),
                ("X-Upload-Name", chunk.name),
                ("X-Upload-Mtime", "1700000000000"),
                ("X-Upload-Device", chunk.device),
            ],
            chunk.bytes,
        )
    }

    /// Asks where one file stands (`POST /upload/check`): `backed_up` and `have`.
    pub fn check(&self, hash: &str, size: usize) -> anyhow::Result<serde_json::Value> {
        let body = format!("[{{\"hash\":\"{hash}\",\"size\":{size}}}]");
        let r = http::request(
            &self.addr,
            "POST",
            "/upload/check",
            &[
                ("Cookie", self.cookie.as_str()),
                ("X-CSRF-Token", self.csrf.as_str()),
            ],
            body.as_bytes(),
        )?;
        anyhow::ensure!(r.status == 200, "check: {} {}", r.status, r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body)?;
        Ok(v[0].clone())
    }
}
