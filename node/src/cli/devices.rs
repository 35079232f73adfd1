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

/// `photomesh revoke`.
pub fn revoke(mut home: Home, device: &str) -> Result<bool> {
    let id: photomesh_protocol::identity::DeviceId = device
        .parse()
        .with_context(|| format!("{device:?} is not a device ID"))?;
    let epoch = photomesh::mesh::revoke(&mut home, &id, now_ms())?;
    out!(
        "Revoked {id}. Every member will refuse it as soon as it hears of this. \
         New photos are sealed with key epoch {epoch}, which it never had."
    )?;
    Ok(true)
}

/// `photomesh recovery-key export`.
pub fn export_recovery_key(home: &Home, png: Option<PathBuf>, again: bool) -> Result<bool> {
    if home.keys.current().is_none() {
        bail!(
            "this device holds no library key (it is a vault); export the recovery key on a full device"
        );
    }
    if home.index.meta("recovery_exported_at_ms")?.is_some() && !again {
        bail!("the recovery key was already exported; pass --again to print it again");
    }
    let phrase = home.keys.to_recovery_phrase();
    out!("RECOVERY KEY — read this first.")?;
    out!("Whoever has this phrase can read every photo in the library. Write it on paper and")?;
    out!("keep it somewhere safe, away from your devices. It is the only way back if every full")?;
    out!("device is lost: losing it and all devices loses the photos. photomesh keeps no copy.")?;
    out!()?;
    out_block!("{}", photomesh::mesh::qr::to_terminal(&phrase)?)?;
    out!("Recovery phrase: {phrase}")?;
    if let Some(png) = png {
        photomesh::mesh::qr::write_png(&phrase, &png)?;
        out!("QR code written to {}", png.display())?;
    }
    home.index
        .set_meta("recovery_exported_at_ms", &now_ms().to_string())?;
    Ok(true)
}
