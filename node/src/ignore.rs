//! Which files of a folder are backed up: every regular file, except what the ignore
//! patterns name (`[folders] ignore`, by default the litter operating systems and NAS boxes
//! leave in photo folders).
//!
//! A pattern without `/` matches a file or folder name at any depth (a matched folder is
//! skipped whole); a pattern with `/` matches the path from the folder's root. `*` matches
//! any run of characters but `/`, `**` any run at all, `?` one character. Matching ignores
//! ASCII case, as the file systems these names come from do (`Thumbs.db`, `THUMBS.DB`).
//!
//! Photomesh's own temporary files (a restore's `.NAME.photomesh-restore`, an upload's
//! `.HASH.photomesh-upload`) are always left out, whatever the patterns say.

/// The default ignore patterns (`config show` prints them).
pub const DEFAULT_IGNORE: &[&str] = &[
    ".DS_Store",
    "._*",
    ".Spotlight-V100",
    ".fseventsd",
    ".Trashes",
    "Thumbs.db",
    "ehthumbs.db",
    "desktop.ini",
    "$RECYCLE.BIN",
    ".thumbnails",
    ".trashed-*",
    ".pending-*",
    ".Trash-*",
    "@eaDir",
    "#recycle",
    "lost+found",
];

/// The suffix of the temporary files a restore writes before linking them into place.
pub const RESTORE_TMP_SUFFIX: &str = ".photomesh-restore";
/// The suffix of the copy an upload from a browser writes beside its place (the uploads
/// folder on another disk than the home) before linking it into place.
pub const UPLOAD_TMP_SUFFIX: &str = ".photomesh-upload";

/// The compiled ignore patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    text: Vec<u8>,
    /// Whether it names a path from the root (it holds a `/`) rather than a name.
    anchored: bool,
}

impl Default for Selection {
    fn default() -> Self {
        Self::new(DEFAULT_IGNORE).unwrap_or(Self {
            patterns: Vec::new(),
        })
    }
}

impl Selection {
    /// Compiles `patterns`; an empty one, or one that could match nothing but the folder
    /// itself, is refused with a sentence saying which.
    pub fn new(patterns: &[impl AsRef<str>]) -> Result<Self, String> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref();
            let trimmed = p.trim_matches('/');
            if trimmed.is_empty() {
                return Err(format!(
                    "the ignore pattern {p:?} would ignore whole folders' roots; remove it \
                     (to stop backing up a folder, use `photomesh folder remove`)"
                ));
            }
            if trimmed.split('/').any(|part| part == "..") {
                return Err(format!(
                    "the ignore pattern {p:?} has a `..`: patterns name paths inside a folder"
                ));
            }
            out.push(Pattern {
                text: trimmed.to_ascii_lowercase().into_bytes(),
                anchored: trimmed.contains('/'),
            });
        }
        Ok(Self { patterns: out })
    }

    /// Whether the file or folder at `rel` (`/`-separated, from the folder's root) is left
    /// out. Only its own name and path are looked at: a caller that walks skips a whole
    /// ignored folder itself.
    pub fn ignores(&self, rel: &str) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        if name.ends_with(RESTORE_TMP_SUFFIX) || name.ends_with(UPLOAD_TMP_SUFFIX) {
            return true;
        }
        let name = name.to_ascii_lowercase();
        // Only anchored patterns look at the whole path: lowercase it only for them.
        let mut rel_lower = None;
        self.patterns.iter().any(|p| {
            if p.anchored {
                let rel = rel_lower.get_or_insert_with(|| rel.to_ascii_lowercase());
                glob(&p.text, rel.as_bytes())
            } else {
                glob(&p.text, name.as_bytes())
            }
        })
    }

    /// Whether `rel` or any folder on its way is left out (for a single file the watcher
    /// sees, which no walk reached).
    pub fn ignores_path(&self, rel: &str) -> bool {
        let mut end = 0;
        for part in rel.split('/') {
            end += part.len();
            if self.ignores(&rel[..end]) {
                return true;
            }
            end += 1;
        }
        false
    }
}

/// Whether `text` matches the glob `pattern` (`*`, `**`, `?`), both already lowercased.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matching with one backtrack point per star kind, as in classic wildcard
    // matchers: linear in practice, never exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize, bool)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            let double = pattern.get(p + 1) == Some(&b'*');
            p += if double { 2 } else { 1 };
            star = Some((p, t, double));
            continue;
        }
        if p < pattern.len() && (pattern[p] == text[t] || (pattern[p] == b'?' && text[t] != b'/')) {
            p += 1;
            t += 1;
            continue;
        }
        match star {
            Some((sp, st, double)) if double || text[st] != b'/' => {
                star = Some((sp, st + 1, double));
                p = sp;
                t = st + 1;
            }
            _ => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_list_leaves_out_os_litter_and_keeps_photos() {
        let s = Selection::default();
        for litter in [
            ".DS_Store",
            "2024/.DS_Store",
            "2024/._IMG_0001.JPG",
            "THUMBS.DB",
            "DCIM/.thumbnails",
            "DCIM/.trashed-1735689600-IMG_1.jpg",
            "DCIM/Camera/.pending-1735689600-IMG_2.jpg",
            "@eaDir",
            "a/.IMG_1.jpg.photomesh-restore",
            "Anna/.0a1b.photomesh-upload",
        ] {
            assert!(s.ignores(litter), "{litter}");
        }
        for kept in [
            "IMG_0001.JPG",
            "2024/IMG_0001.xmp",
            ".hidden-but-mine.jpg",
            "notes.txt",
            "DCIM/thumbnails.jpg",
        ] {
            assert!(!s.ignores(kept), "{kept}");
        }
        assert!(s.ignores_path("DCIM/.thumbnails/123.jpg"));
        assert!(!s.ignores_path("DCIM/Camera/123.jpg"));
    }

    #[test]
    fn patterns_match_names_or_anchored_paths() {
        let s = Selection::new(&["*.tmp", "exports/**", "raw/*.cr?"]).unwrap();
        assert!(s.ignores("a/b/c.TMP"));
        assert!(s.ignores("exports/2024/x.jpg"));
        assert!(!s.ignores("mine/exports/x.jpg"));
        assert!(s.ignores("raw/a.cr2"));
        assert!(!s.ignores("raw/sub/a.cr2"), "`*` stops at `/`");
        assert!(!s.ignores("raw/a.nef"));
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(!glob(b"a*b*c", b"axxbyy"));
        assert!(glob(b"**", b"x/y/z"));
        assert!(!glob(b"?", b"/"));
    }

    #[test]
    fn useless_patterns_are_refused_with_a_reason() {
        assert!(
            Selection::new(&["/"])
                .unwrap_err()
                .contains("folder remove")
        );
        assert!(Selection::new(&["a/../b"]).unwrap_err().contains(".."));
        assert!(Selection::new(&[] as &[&str]).unwrap().patterns.is_empty());
    }
}
