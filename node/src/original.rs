//! Opening an original file inside a photo folder — the one way every path that reads
//! originals (scan, watch, serve, restore, verify) opens them.
//!
//! Architecture Invariant: the node opens nothing in a folder but a regular file, and never
//! through a symbolic link. The path below the folder is resolved with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), so a link anywhere in it — a file or a
//! directory replaced by a link to `/etc` — is refused, not followed; the open is
//! non-blocking, so a FIFO put where a photo was cannot stall a thread; and the type is
//! checked on the open descriptor, so nothing can be swapped in between a check and the open.
//! The folder itself may sit behind a link (`~/Pictures` on another disk): the user chose it.

use std::fmt;
use std::fs::{File, FileType};
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// What is at a path instead of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAFile {
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO (named pipe).
    Fifo,
    /// A socket.
    Socket,
    /// A character or block device.
    Device,
    /// A directory.
    Directory,
}

impl NotAFile {
    /// What a file type is, when it is not a regular file.
    pub fn of(file_type: FileType) -> Option<Self> {
        Some(if file_type.is_file() {
            return None;
        } else if file_type.is_symlink() {
            Self::Symlink
        } else if file_type.is_fifo() {
            Self::Fifo
        } else if file_type.is_socket() {
            Self::Socket
        } else if file_type.is_dir() {
            Self::Directory
        } else {
            Self::Device
        })
    }

    /// The kind's name in a sentence: "a FIFO".
    pub fn name(self) -> &'static str {
        match self {
            Self::Symlink => "a symbolic link",
            Self::Fifo => "a FIFO",
            Self::Socket => "a socket",
            Self::Device => "a device",
            Self::Directory => "a folder",
        }
    }
}

impl fmt::Display for NotAFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Symlink => f.write_str(
                "it is a symbolic link (or is reached through one); photomesh never follows links",
            ),
            other => write!(
                f,
                "it is {}, not a regular file; photomesh reads only regular files",
                other.name()
            ),
        }
    }
}

impl std::error::Error for NotAFile {}

/// The [`NotAFile`] inside an error from [`open`], if that is why it failed.
pub fn not_a_file(e: &io::Error) -> Option<NotAFile> {
    e.get_ref()?.downcast_ref::<NotAFile>().copied()
}

/// Opens `rel` (a `/`-separated path) below the folder `root`, read-only, if it is a regular
/// file reached without following any link.
pub fn open(root: &Path, rel: &str) -> io::Result<File> {
    let dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let opened = match rustix::fs::openat2(
        &dir,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        // Kernels before 5.6 have no openat2: every component is checked by hand instead.
        Err(rustix::io::Errno::NOSYS) => open_component_wise(&dir, rel, flags),
        other => other,
    };
    let fd = opened.map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => {
            io::Error::new(io::ErrorKind::InvalidInput, NotAFile::Symlink)
        }
        e => io::Error::from(e),
    })?;
    let file = File::from(fd);
    if let Some(not) = NotAFile::of(file.metadata()?.file_type()) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, not));
    }
    Ok(file)
}

/// Removes the original `rel` below the folder `root` if it is still the file `opened` (the
/// same device and inode: what was just checked through [`open`]), reached without following
/// any link — for `free-up-space`, which releases originals safe elsewhere. Another file put
/// at its path meanwhile is left alone, with an error saying so.
pub fn remove(root: &Path, rel: &str, opened: &File) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
    let dir = if parent.is_empty() {
        root_fd
    } else {
        match rustix::fs::openat2(
            &root_fd,
            parent,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(rustix::io::Errno::NOSYS) => open_component_wise(&root_fd, parent, flags),
            other => other,
        }
        .map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => {
                io::Error::new(io::ErrorKind::InvalidInput, NotAFile::Symlink)
            }
            e => io::Error::from(e),
        })?
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            NotAFile::Directory,
        ));
    }
    let there = rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
    let expected = opened.metadata()?;
    if there.st_dev as u64 != expected.dev() || there.st_ino as u64 != expected.ino() {
        return Err(io::Error::other(
            "another file took its place while it was checked; it was left alone",
        ));
    }
    rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty())?;
    Ok(())
}

/// `openat2` by hand: each directory on the way opened with `O_NOFOLLOW`, and `..` refused.
fn open_component_wise(
    root: &rustix::fd::OwnedFd,
    rel: &str,
    flags: OFlags,
) -> rustix::io::Result<rustix::fd::OwnedFd> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Err(rustix::io::Errno::INVAL);
    };
    let mut dir: Option<rustix::fd::OwnedFd> = None;
    for part in dirs.iter().chain(std::iter::once(last)) {
        if *part == ".." || *part == "." {
            return Err(rustix::io::Errno::XDEV);
        }
    }
    for part in dirs {
        let at = dir.as_ref().unwrap_or(root);
        let opened = rustix::fs::openat(
            at,
            *part,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        );
        dir = Some(match opened {
            // A link where a folder should be is refused as not a directory: say it is a
            // link, as `openat2` does.
            Err(rustix::io::Errno::NOTDIR)
                if rustix::fs::statat(at, *part, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| {
                        rustix::fs::FileType::from_raw_mode(st.st_mode)
                            == rustix::fs::FileType::Symlink
                    }) =>
            {
                return Err(rustix::io::Errno::LOOP);
            }
            other => other?,
        });
    }
    rustix::fs::openat(
        dir.as_ref().unwrap_or(root),
        *last,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn only_regular_files_below_the_folder_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("photos");
        std::fs::create_dir_all(root.join("2024")).unwrap();
        std::fs::write(root.join("2024/a.jpg"), b"photo").unwrap();
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        symlink(dir.path().join("secret"), root.join("link.jpg")).unwrap();
        symlink(dir.path(), root.join("up")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo.jpg").as_path(),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();

        let mut text = String::new();
        io::Read::read_to_string(&mut open(&root, "2024/a.jpg").unwrap(), &mut text).unwrap();
        assert_eq!(text, "photo");
        let kind = |rel: &str| not_a_file(&open(&root, rel).unwrap_err());
        assert_eq!(kind("link.jpg"), Some(NotAFile::Symlink));
        assert_eq!(kind("up/secret"), Some(NotAFile::Symlink));
        assert_eq!(kind("../secret"), Some(NotAFile::Symlink));
        // A FIFO with no writer: refused at once, not waited on.
        assert_eq!(kind("fifo.jpg"), Some(NotAFile::Fifo));
        assert_eq!(kind("2024"), Some(NotAFile::Directory));
        let gone = open(&root, "2024/nothing.jpg").unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        assert!(kind("fifo.jpg").unwrap().to_string().contains("a FIFO"));
    }

    #[test]
    fn the_hand_resolver_refuses_links_too() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("photos");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/a.jpg"), b"x").unwrap();
        symlink(dir.path(), root.join("up")).unwrap();
        let fd =
            rustix::fs::open(&root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK;
        assert!(open_component_wise(&fd, "d/a.jpg", flags).is_ok());
        // A linked folder mid-path is refused as a link (kernels before 5.6, qemu-user).
        assert_eq!(
            open_component_wise(&fd, "up/photos/d/a.jpg", flags).unwrap_err(),
            rustix::io::Errno::LOOP
        );
        assert!(open_component_wise(&fd, "d/../d/a.jpg", flags).is_err());
    }
}
