//! The rules for the folders a device backs up: a usable label, and no folder inside
//! another (a photo belongs to one folder only).

use std::path::{Path, PathBuf};

use crate::clock::now_ms;
use crate::home::Home;
use crate::index::{Folder, IndexError};

/// Why a folder could not be added.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// The path does not exist or cannot be read.
    #[error("cannot add {path}: it does not exist or cannot be read ({source})")]
    Unreadable {
        /// The path given.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// This device is a vault: it holds no library key, so it cannot back up photos.
    #[error(
        "this device is a vault: it stores the library sealed and holds no key to seal photos \
         with, so it backs up no folder of its own; add the folder on a full device (one \
         paired with `photomesh pair --role full`)"
    )]
    Vault,
    /// The path is a file.
    #[error("cannot add {0}: it is a file, not a folder")]
    NotAFolder(PathBuf),
    /// The label is empty, holds a '/' or starts with '.'.
    #[error("the label {0:?} is not usable: use a plain name without '/' or a leading '.'")]
    BadLabel(String),
    /// The folder is inside another one, or holds one.
    #[error(
        "{path} overlaps the folder {label:?} ({other}): a photo must belong to one folder only"
    )]
    Overlaps {
        /// The folder given.
        path: PathBuf,
        /// The label of the folder it overlaps.
        label: String,
        /// That folder's path.
        other: PathBuf,
    },
    /// Another folder has this label.
    #[error("the label {label:?} is already used by {other}; choose another with --label")]
    LabelTaken {
        /// The label.
        label: String,
        /// The folder that has it.
        other: PathBuf,
    },
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Adds `path` as a backed-up folder labelled `label` (default: the folder's own name).
pub fn add(home: &Home, path: &Path, label: Option<String>) -> Result<Folder, FolderError> {
    let unreadable = |source| FolderError::Unreadable {
        path: path.to_owned(),
        source,
    };
    if home.keys.current().is_none() {
        return Err(FolderError::Vault);
    }
    if !std::fs::metadata(path).map_err(unreadable)?.is_dir() {
        return Err(FolderError::NotAFolder(path.to_owned()));
    }
    let path = path.canonicalize().map_err(unreadable)?;
    let label = label.unwrap_or_else(|| default_label(&path));
    check_label(&label)?;
    for existing in home.index.folders()? {
        check_apart(&path, &label, &existing)?;
    }
    let folder = Folder { label, path };
    home.index.add_folder(&folder, now_ms())?;
    Ok(folder)
}

/// A folder's own name, or `root` for `/`.
fn default_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
}

fn check_label(label: &str) -> Result<(), FolderError> {
    if label.is_empty() || label.contains('/') || label.starts_with('.') {
        return Err(FolderError::BadLabel(label.to_owned()));
    }
    Ok(())
}

/// A new folder must neither overlap an existing one nor take its label.
fn check_apart(path: &Path, label: &str, existing: &Folder) -> Result<(), FolderError> {
    if path.starts_with(&existing.path) || existing.path.starts_with(path) {
        return Err(FolderError::Overlaps {
            path: path.to_owned(),
            label: existing.label.clone(),
            other: existing.path.clone(),
        });
    }
    if existing.label == label {
        return Err(FolderError::LabelTaken {
            label: label.to_owned(),
            other: existing.path.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(label: &str, path: &str) -> Folder {
        Folder {
            label: label.into(),
            path: path.into(),
        }
    }

    #[test]
    fn labels_are_plain_names() {
        assert!(check_label("Camera").is_ok());
        for bad in ["", "a/b", ".hidden"] {
            assert!(
                matches!(check_label(bad), Err(FolderError::BadLabel(_))),
                "{bad:?}"
            );
        }
        assert_eq!(default_label(Path::new("/home/ann/Pictures")), "Pictures");
        assert_eq!(default_label(Path::new("/")), "root");
    }

    #[test]
    fn folders_may_not_nest_or_share_a_label() {
        let pictures = folder("Pictures", "/home/ann/Pictures");
        let inside = check_apart(Path::new("/home/ann/Pictures/2024"), "2024", &pictures);
        assert!(matches!(inside, Err(FolderError::Overlaps { .. })));
        let around = check_apart(Path::new("/home/ann"), "ann", &pictures);
        assert!(matches!(around, Err(FolderError::Overlaps { .. })));
        let taken = check_apart(Path::new("/media/sd"), "Pictures", &pictures);
        assert!(matches!(taken, Err(FolderError::LabelTaken { .. })));
        // A sibling whose name starts the same is not inside.
        assert!(check_apart(Path::new("/home/ann/Pictures2"), "P2", &pictures).is_ok());
    }
}
