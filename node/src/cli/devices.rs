//! `devices`, `revoke` and `recovery-key`: the mesh's members, and the way back.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use photomesh::clock::now_ms;
use photomesh::home::Home;

use super::format::utc;

/// `photomesh devices`.
pub fn devices(home: &Home, home_path: &Path, json: bool) -> Result<bool> {
    let mut devices = photomesh::mesh::devices(home)?;
    let live = super::live_status(home_path);
    photomesh::library::status::apply_live_devices(&mut devices, live.as_ref());
    if json {
        out_block!("{}", serde_json::to_string_pretty(&devices)?)?;
    } else {
        for d in &devices {
            let seen = if d.this_device {
                "this device".to_owned()
            } else if let Some(c) = &d.connection {
                format!(
                    "connected via {} since {}",
                    c.address,
                    utc(c.since_ms as i64)
                )
            } else {
                d.last_seen_ms
                    .map(|t| format!("seen {}", utc(t as i64)))
                    .unwrap_or_else(|| "never seen".into())
            };
            let by = d
                .introduced_by_name
                .clone()
                .unwrap_or_else(|| d.introduced_by.clone());
            out!(
                "{:<16} {:<5} {}  introduced by {}, {}{}",
                d.name,
                d.role,
                d.device_id,
                by,
                seen,
                if d.revoked { "  REVOKED" } else { "" }
            )?;
        }
        if live.is_none() {
            out!("(photomesh is not running on this home: no live connections to show)")?;
        }
    }
    Ok(true)
}

/// `photomesh rename`.
pub fn rename(home: &Home, device: &str, name: &str) -> Result<bool> {
    let id = photomesh::mesh::find_member(home, device)?;
    photomesh::mesh::rename(home, &id, name, now_ms())?;
    out!(
        "{} is now called {:?}, here and on every device as the mesh syncs.",
        id.short(),
        name.trim()
    )?;
    Ok(true)
}

/// `photomesh revoke`.
pub fn revoke(mut home: Home, device: &str) -> Result<bool> {
    let id: photomesh_protocol::identity::DeviceId = device
        .parse()
        .with_context(|| format!("{device:?} is not a device ID"))?;
    let revoked = photomesh::mesh::revoke(&mut home, &id, now_ms())?;
    out!(
        "Revoked {id}. Every member will refuse it as soon as it hears of this. \
         New photos are sealed with key epoch {}, which it never had; the other full \
         devices receive it through the mesh.",
        revoked.epoch
    )?;
    if revoked.recovery_rotated {
        out!(
            "It made the recovery key, so the recovery key was replaced too: the old phrase \
             no longer works. Export the new one now: photomesh recovery-key export"
        )?;
    }
    Ok(true)
}

/// `photomesh init --recover PHRASE --from HOST:PORT` with a version 2 phrase.
pub fn recover(
    home_path: &Path,
    name: &str,
    key: &photomesh_protocol::recovery::RecoveryKey,
    from: &str,
) -> Result<bool> {
    use std::net::ToSocketAddrs;
    let addr = from
        .to_socket_addrs()
        .with_context(|| {
            format!("{from:?} is not an address like 192.168.1.20:7447 or nas.example.org:7447")
        })?
        .next()
        .with_context(|| format!("{from:?} resolves to no address"))?;
    say!("Recovering the mesh through {addr} ...");
    let recovered = super::runtime()?.block_on(photomesh::mesh::recover::recover(
        home_path,
        name,
        key,
        addr,
        now_ms(),
    ))?;
    let home = &recovered.home;
    out!(
        "Recovered the mesh as a new full device {name:?} in {}",
        home_path.display()
    )?;
    out!("Device ID: {}", home.device.device_id())?;
    out!(
        "Answered by {:?}; the mesh's devices: {}",
        recovered.answered_by,
        recovered.devices.join(", ")
    )?;
    out!(
        "Library key epochs recovered: {}",
        recovered
            .epochs
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    out!(
        "Next: photomesh run (it syncs every record from {addr}), then photomesh restore --to DIR"
    )?;
    Ok(true)
}

/// `photomesh recovery-key rotate`.
pub fn rotate_recovery_key(mut home: Home, png: Option<PathBuf>) -> Result<bool> {
    let now = now_ms();
    let rotated = photomesh::mesh::recovery::rotate(&home, now)?;
    let epoch = home.rotate_library_key()?;
    photomesh::mesh::shares::fill(&home, now)?;
    out!(
        "Made a new recovery key. The old phrase no longer works ({} recovery identit{} \
         revoked); new photos are sealed with key epoch {epoch}.",
        rotated.revoked.len(),
        if rotated.revoked.len() == 1 {
            "y"
        } else {
            "ies"
        }
    )?;
    if !rotated.introduced_by_old.is_empty() {
        out!("These devices were recovered with an old phrase; revoke any that is not yours:")?;
        for (id, name) in &rotated.introduced_by_old {
            out!("  {name}  {id}")?;
        }
    }
    out!()?;
    print_phrase(&home, &rotated.key, png)
}

/// `photomesh recovery-key export`.
pub fn export_recovery_key(home: &Home, png: Option<PathBuf>, again: bool) -> Result<bool> {
    if home.keys.current().is_none() {
        bail!(
            "this device holds no library key (it is a vault); export the recovery key on a full device"
        );
    }
    let Some(key) = home.recovery_key()? else {
        let made_by = photomesh::mesh::recovery::made_by(&photomesh::mesh::trust_set(home)?);
        bail!(
            "the recovery key was made on {}, and only that device holds it: export it there, \
             or run `photomesh recovery-key rotate` here to make a new one (the old phrase then \
             stops working)",
            made_by.unwrap_or_else(|| "another device".into())
        );
    };
    if home
        .index
        .meta(photomesh::mesh::recovery::EXPORTED_META)?
        .is_some()
        && !again
    {
        bail!("the recovery key was already exported; pass --again to print it again");
    }
    print_phrase(home, &key, png)
}

fn print_phrase(
    home: &Home,
    key: &photomesh_protocol::recovery::RecoveryKey,
    png: Option<PathBuf>,
) -> Result<bool> {
    let phrase = key.to_phrase();
    out!("RECOVERY KEY — read this first.")?;
    out!("Whoever has this phrase can rejoin the mesh and read every photo. Write it on paper")?;
    out!("and keep it somewhere safe, away from your devices. It is the only way back if every")?;
    out!("full device is lost: with it, any surviving device of the mesh (an offsite vault is")?;
    out!("enough) brings everything back. Losing it and every full device loses the photos.")?;
    out!("`photomesh recovery-key rotate` replaces it if anyone else may have seen it.")?;
    out!()?;
    out_block!("{}", photomesh::mesh::qr::to_terminal(&phrase)?)?;
    out!("Recovery phrase: {phrase}")?;
    if let Some(png) = png {
        photomesh::mesh::qr::write_png(&phrase, &png)?;
        out!("QR code written to {}", png.display())?;
    }
    home.index.set_meta(
        photomesh::mesh::recovery::EXPORTED_META,
        &now_ms().to_string(),
    )?;
    Ok(true)
}
