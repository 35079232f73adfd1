//! Photos added from a phone's browser (a phone that runs no node, an iPhone): the page
//! hashes each pick (BLAKE3, in the browser), asks which are already backed up, and sends
//! the others in chunks that resume where the last one ended. A whole file is hashed again
//! here and must match before it is placed in `Uploads/<phone name>/` and recorded like any
//! photo (its capture time from its own metadata), then replicated.
//!
//! On disk: `uploads.partial/HASH.part` (the bytes so far) beside `HASH.json` (name, size,
//! time, phone), in the home; the finished file in the `Uploads` folder (`[web] uploads`,
//! default `HOME/Uploads`), registered as a folder on the first upload.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::home::Home;
use crate::library::scan::FileToScan;
use crate::lock::Mutex;

/// The most bytes one chunk request may carry.
pub const MAX_CHUNK: usize = 8 << 20;
/// The largest file that may be uploaded.
pub const MAX_FILE: u64 = 256 << 30;
/// The most files one check may ask about.
pub const MAX_CHECK: usize = 2000;
/// The label of the folder uploads go to.
pub const LABEL: &str = "Uploads";
/// The home's folder of uploads under way.
pub const PARTIAL_DIR: &str = "uploads.partial";
/// An upload not touched for this long is given up (its bytes removed).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(7 * 86_400);
/// Free space an upload leaves on the home's disk, beyond its own size.
pub const KEEP_FREE: u64 = 256 << 20;

/// Why an upload step failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The request is malformed.
    #[error("{0}")]
    Bad(String),
    /// The chunk does not start where the upload stands.
    #[error("this upload stands at {have} bytes; send from there")]
    Offset {
        /// Bytes held.
        have: u64,
    },
    /// The whole file does not match its hash.
    #[error("the file arrived damaged (its hash does not match); it is sent again from the start")]
    Damaged,
    /// The disk has no room for it.
    #[error(
        "this device has {free} MB free and the file needs {needs} MB (and {keep} MB kept \
         free): make room on it, or upload to another device",
        free = free >> 20, needs = needs >> 20, keep = KEEP_FREE >> 20
    )]
    NoRoom {
        /// Free bytes.
        free: u64,
        /// The file's size.
        needs: u64,
    },
    /// Another request works on the same file.
    #[error("this file is being received by another request")]
    Busy,
    /// This device cannot record photos.
    #[error("this device is a vault: it cannot read or record photos; upload to a full device")]
    Vault,
    /// A disk or index operation failed.
    #[error("{0}")]
    Io(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> UploadError + '_ {
    move |e| UploadError::Io(format!("{}: {e}", path.display()))
}

/// What the browser says of one pick.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Pick {
    /// Its BLAKE3 hash (hex).
    pub hash: String,
    /// Its size.
    pub size: u64,
}

/// Where one pick stands here.
#[derive(Debug, serde::Serialize)]
pub struct PickState {
    /// Its hash (hex).
    pub hash: String,
    /// Already backed up: a photo with this content is recorded.
    pub backed_up: bool,
    /// Bytes already received of it, when not backed up.
    pub have: u64,
}

/// What a chunk brings.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The file's hash.
    pub hash: [u8; 32],
    /// Where the chunk starts.
    pub offset: u64,
    /// The whole file's size.
    pub size: u64,
    /// The file's name on the phone.
    pub name: String,
    /// Its modification time (ms since the epoch).
    pub mtime_ms: u64,
    /// The phone's name.
    pub device: String,
}

/// The answer to a chunk.
#[derive(Debug, serde::Serialize)]
pub struct ChunkDone {
    /// Bytes held now.
    pub have: u64,
    /// Where it was placed, once whole (`Uploads/PHONE/NAME`).
    pub placed: Option<String>,
    /// Whether the file was recorded as a new photo (false: it was there already).
    pub recorded: bool,
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct Meta {
    name: String,
    size: u64,
    mtime_ms: u64,
    device: String,
}

/// Files being received: one request at a time per file.
#[derive(Default)]
pub struct Receiving(Mutex<HashSet<[u8; 32]>>);

struct Claim<'a>(&'a Receiving, [u8; 32]);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.0.lock().remove(&self.1);
    }
}

impl Receiving {
    fn claim(&self, hash: [u8; 32]) -> Result<Claim<'_>, UploadError> {
        if self.0.lock().insert(hash) {
            Ok(Claim(self, hash))
        } else {
            Err(UploadError::Busy)
        }
    }
}

/// `text` with its `%XX` escapes decoded (how the page sends names in headers), if it is
/// UTF-8 then.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A hash from its hex.
pub fn parse_hash(hex_text: &str) -> Result<[u8; 32], UploadError> {
    hex::decode(hex_text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| UploadError::Bad(format!("{hex_text:?} is not a BLAKE3 hash")))
}

/// A name from a phone made safe as one path component: no separators, no control
/// characters, no leading dot, at most 120 characters; `fallback` if nothing is left.
pub fn safe_name(name: &str, fallback: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    let mut out: String = cleaned.chars().take(120).collect();
    if out.is_empty() || out == ".." {
        out = fallback.to_owned();
    }
    out
}

fn partial_paths(home: &Path, hash: &[u8; 32]) -> (PathBuf, PathBuf) {
    let dir = home.join(PARTIAL_DIR);
    let hex = hex::encode(hash);
    (
        dir.join(format!("{hex}.part")),
        dir.join(format!("{hex}.json")),
    )
}

/// Where each pick stands: backed up (by content), or how much of it is here.
pub fn check(home: &Home, picks: &[Pick]) -> Result<Vec<PickState>, UploadError> {
    if home.keys.current().is_none() {
        return Err(UploadError::Vault);
    }
    forget_abandoned(&home.path.join(PARTIAL_DIR), ABANDONED_AFTER);
    if picks.len() > MAX_CHECK {
        return Err(UploadError::Bad(format!(
            "at most {MAX_CHECK} files at a time"
        )));
    }
    let hashes = picks
        .iter()
        .map(|p| parse_hash(&p.hash))
        .collect::<Result<Vec<_>, _>>()?;
    let known = home
        .index
        .known_plaintext_hashes(&hashes)
        .map_err(|e| UploadError::Io(e.to_string()))?;
    Ok(picks
        .iter()
        .zip(&hashes)
        .map(|(pick, hash)| {
            let backed_up = known.contains(hash);
            let have = if backed_up {
                pick.size
            } else {
                fs::metadata(partial_paths(&home.path, hash).0).map_or(0, |m| m.len())
            };
            PickState {
                hash: pick.hash.clone(),
                backed_up,
                have,
            }
        })
        .collect())
}

/// Removes the uploads under way in `dir` that nothing touched for `after`.
fn forget_abandoned(dir: &Path, after: Duration) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > after);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Appends a chunk to its upload. Returns the bytes held now and whether the file is whole.
/// Runs without the home: only the home's path.
pub fn append(
    home: &Path,
    receiving: &Receiving,
    chunk: &Chunk,
    data: &[u8],
) -> Result<(u64, bool), UploadError> {
    if chunk.size > MAX_FILE {
        return Err(UploadError::Bad(format!(
            "files up to {} GiB are taken",
            MAX_FILE >> 30
        )));
    }
    if chunk.offset + data.len() as u64 > chunk.size {
        return Err(UploadError::Bad(
            "the chunk runs past the file's size".into(),
        ));
    }
    let _claim = receiving.claim(chunk.hash)?;
    let (part, meta_path) = partial_paths(home, &chunk.hash);
    let dir = home.join(PARTIAL_DIR);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let meta = Meta {
        name: chunk.name.clone(),
        size: chunk.size,
        mtime_ms: chunk.mtime_ms,
        device: chunk.device.clone(),
    };
    let have = fs::metadata(&part).map_or(0, |m| m.len());
    if have == 0 {
        let free = rustix::fs::statvfs(&dir)
            .map(|st| st.f_bavail.saturating_mul(st.f_frsize))
            .unwrap_or(u64::MAX);
        if free < chunk.size.saturating_add(KEEP_FREE) {
            return Err(UploadError::NoRoom {
                free,
                needs: chunk.size,
            });
        }
        let text = serde_json::to_vec(&meta).map_err(|e| UploadError::Io(e.to_string()))?;
        fs::write(&meta_path, text).map_err(io_err(&meta_path))?;
    } else {
        let stored: Option<Meta> = fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if stored.is_some_and(|s| s.size != chunk.size) {
            return Err(UploadError::Bad(
                "the size differs from the upload's first chunk".into(),
            ));
        }
    }
    if chunk.offset != have {
        return Err(UploadError::Offset { have });
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .map_err(io_err(&part))?;
    file.write_all(data).map_err(io_err(&part))?;
    file.sync_data().map_err(io_err(&part))?;
    let have = have + data.len() as u64;
    Ok((have, have == chunk.size))
}

/// Checks a whole upload against its hash; a damaged one is removed (it is sent again).
/// Runs without the home (a long read for a large video).
pub fn verify_whole(home: &Path, hash: &[u8; 32]) -> Result<(), UploadError> {
    let (part, meta) = partial_paths(home, hash);
    let mut hasher = blake3::Hasher::new();
    let mut file = File::open(&part).map_err(io_err(&part))?;
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(&part))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    if hasher.finalize().as_bytes() != hash {
        let _ = fs::remove_file(&part);
        let _ = fs::remove_file(&meta);
        return Err(UploadError::Damaged);
    }
    Ok(())
}

/// The Uploads folder: the folder labelled [`LABEL`], or `default` made and added as it.
fn uploads_folder(home: &Home, default: &Path) -> Result<PathBuf, UploadError> {
    let folders = home
        .index
        .folders()
        .map_err(|e| UploadError::Io(e.to_string()))?;
    if let Some(f) = folders.into_iter().find(|f| f.label == LABEL) {
        return Ok(f.path);
    }
    fs::create_dir_all(default).map_err(io_err(default))?;
    let folder = crate::library::folders::add(home, default, Some(LABEL.to_owned()))
        .map_err(|e| UploadError::Io(e.to_string()))?;
    Ok(folder.path)
}

/// Places a verified upload in `Uploads/<phone>/` and records it. Returns where, and
/// whether it was recorded as a new photo.
pub fn place(
    home: &Home,
    hash: &[u8; 32],
    default_folder: &Path,
    selection: &crate::ignore::Selection,
) -> Result<(String, bool), UploadError> {
    if home.keys.current().is_none() {
        return Err(UploadError::Vault);
    }
    let (part, meta_path) = partial_paths(&home.path, hash);
    let meta: Meta = fs::read(&meta_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| UploadError::Io(format!("{}: unreadable", meta_path.display())))?;
    let root = uploads_folder(home, default_folder)?;
    let device = safe_name(&meta.device, "browser");
    let dir = root.join(&device);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let name = safe_name(&meta.name, "upload");
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
        _ => (name.clone(), String::new()),
    };
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_millis(meta.mtime_ms);
    fs::File::open(&part)
        .and_then(|f| f.set_modified(mtime))
        .map_err(io_err(&part))?;
    // The uploads folder may be on another disk than the home: then the bytes are copied
    // beside their place first (a hidden name the scan leaves alone).
    let mut source = part.clone();
    let mut copied = None;
    let mut n = 1;
    let target = loop {
        let candidate = if n == 1 {
            dir.join(&name)
        } else {
            dir.join(format!("{stem} ({n}){ext}"))
        };
        // A hard link never replaces a file that is there.
        match fs::hard_link(&source, &candidate) {
            Ok(()) => break candidate,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices && copied.is_none() => {
                let tmp = dir.join(format!(
                    ".{}{}",
                    hex::encode(hash),
                    crate::ignore::UPLOAD_TMP_SUFFIX
                ));
                copy_synced(&part, &tmp).map_err(io_err(&tmp))?;
                fs::File::open(&tmp)
                    .and_then(|f| f.set_modified(mtime))
                    .map_err(io_err(&tmp))?;
                source = tmp.clone();
                copied = Some(tmp);
            }
            Err(e) => return Err(io_err(&candidate)(e)),
        }
    };
    if let Some(tmp) = copied {
        let _ = fs::remove_file(tmp);
    }
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    let _ = fs::remove_file(&part);
    let _ = fs::remove_file(&meta_path);
    let rel_path = format!(
        "{device}/{}",
        target
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    let summary = crate::library::scan::scan_files(
        home,
        selection,
        &[FileToScan {
            folder: LABEL.to_owned(),
            root: root.clone(),
            rel_path: rel_path.clone(),
            abs_path: target,
        }],
    )
    .map_err(|e| UploadError::Io(e.to_string()))?;
    Ok((format!("{LABEL}/{rel_path}"), summary.new_files > 0))
}

fn copy_synced(from: &Path, to: &Path) -> io::Result<()> {
    let mut out = File::create(to)?;
    io::copy(&mut File::open(from)?, &mut out)?;
    out.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_arrive_percent_encoded() {
        assert_eq!(percent_decode("IMG%20%C3%A9.jpg").unwrap(), "IMG é.jpg");
        assert_eq!(percent_decode("plain").unwrap(), "plain");
        assert!(percent_decode("%zz").is_none());
        assert!(percent_decode("%C3").is_none(), "not UTF-8");
        assert!(percent_decode("%4").is_none());
    }

    #[test]
    fn names_from_a_phone_stay_one_component() {
        assert_eq!(safe_name("IMG_0001.HEIC", "x"), "IMG_0001.HEIC");
        assert_eq!(safe_name("../../etc/passwd", "x"), "_.._etc_passwd");
        assert_eq!(safe_name("..", "x"), "x");
        assert_eq!(safe_name(".hidden", "x"), "hidden");
        assert_eq!(safe_name("a\nb\0c", "x"), "a_b_c");
        assert_eq!(safe_name("", "browser"), "browser");
        assert_eq!(safe_name(&"é".repeat(500), "x").chars().count(), 120);
    }

    #[test]
    fn chunks_append_in_order_only_and_a_damaged_file_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let receiving = Receiving::default();
        let content = b"hello, photo".to_vec();
        let hash = *blake3::hash(&content).as_bytes();
        let chunk = |offset: u64| Chunk {
            hash,
            offset,
            size: content.len() as u64,
            name: "a.jpg".into(),
            mtime_ms: 1_700_000_000_000,
            device: "iPhone".into(),
        };
        assert_eq!(
            append(dir.path(), &receiving, &chunk(0), &content[..5]).unwrap(),
            (5, false)
        );
        // A repeated or skipped chunk is told where the upload stands.
        for wrong in [0, 7] {
            match append(dir.path(), &receiving, &chunk(wrong), &content[5..6]) {
                Err(UploadError::Offset { have: 5 }) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            append(dir.path(), &receiving, &chunk(5), &[0; 100]),
            Err(UploadError::Bad(_))
        ));
        assert_eq!(
            append(dir.path(), &receiving, &chunk(5), &content[5..]).unwrap(),
            (content.len() as u64, true)
        );
        verify_whole(dir.path(), &hash).unwrap();

        // The same length, other bytes: refused as damaged, and the upload starts over.
        let mut other = content.clone();
        other[0] ^= 1;
        let (part, _) = partial_paths(dir.path(), &hash);
        fs::write(&part, &other).unwrap();
        assert!(matches!(
            verify_whole(dir.path(), &hash),
            Err(UploadError::Damaged)
        ));
        assert!(!part.exists());
    }
}
