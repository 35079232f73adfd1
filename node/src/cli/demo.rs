//! `photomesh demo`.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// `photomesh demo`: runs it, and stops it cleanly on Ctrl-C.
pub fn demo(dir: Option<PathBuf>, keep: bool, photos: u16) -> Result<bool> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let cancel = Arc::new(AtomicBool::new(false));
    let signal_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let flag = cancel.clone();
    let shutdown = {
        let _entered = signal_runtime.enter();
        super::shutdown_signal()
    };
    std::thread::spawn(move || {
        signal_runtime.block_on(shutdown);
        flag.store(true, Ordering::Relaxed);
    });
    let options = photomesh::demo::DemoOptions {
        exe: std::env::current_exe().context("cannot find the photomesh binary to run")?,
        parent: dir.unwrap_or_else(std::env::temp_dir),
        keep,
        photos: usize::from(photos),
    };
    let outcome = photomesh::demo::run(&options, &cancel)?;
    if outcome.complete {
        out!(
            "Demo complete: all {} photos and videos reached the phone, the laptop and the NAS.",
            outcome.items
        )?;
        out!("Next: `photomesh init --name NAME` on your own devices; see README.md.")?;
    } else {
        out!("Demo FAILED: not every photo reached every device.")?;
    }
    Ok(outcome.complete)
}
