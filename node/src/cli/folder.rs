//! `photomesh folder add|list|remove`.

use anyhow::{Result, bail};
use photomesh::home::Home;
use photomesh::index::Folder;

use super::args::FolderCommand;

/// `photomesh folder …`.
pub fn folder(home: &Home, cmd: FolderCommand) -> Result<bool> {
    match cmd {
        FolderCommand::Add { path, label } => {
            let Folder { label, path } = photomesh::library::folders::add(home, &path, label)?;
            out!(
                "Added folder {label:?} ({}). Run `photomesh scan` to record its photos.",
                path.display()
            )?;
            Ok(true)
        }
        FolderCommand::List { json } => {
            let folders = home.index.folders()?;
            if json {
                out_block!("{}", serde_json::to_string_pretty(&folders)?)?;
            } else if folders.is_empty() {
                out!("No folders yet: add one with `photomesh folder add PATH`.")?;
            } else {
                for f in folders {
                    let note = if f.path.is_dir() { "" } else { "  (not found)" };
                    out!("{:<16} {}{note}", f.label, f.path.display())?;
                }
            }
            Ok(true)
        }
        FolderCommand::Remove { label } => {
            if !home.index.remove_folder(&label)? {
                bail!(
                    "there is no folder labelled {label:?}; `photomesh folder list` shows the labels"
                );
            }
            out!(
                "Removed folder {label:?}. Its files were not touched, and its photos stay in the library."
            )?;
            Ok(true)
        }
    }
}
