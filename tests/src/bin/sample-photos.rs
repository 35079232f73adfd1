//! Writes a sample photo library into a folder: `sample-photos DIR [COUNT]`.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: sample-photos DIR [COUNT]"))?,
    );
    let count = match args.next() {
        Some(c) => c.to_string_lossy().parse()?,
        None => 24,
    };
    std::fs::create_dir_all(&dir)?;
    let files = photomesh_tests::samples::write_library(&dir, count, 1);
    println!("wrote {} sample files to {}", files.len(), dir.display());
    Ok(())
}
