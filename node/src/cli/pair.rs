//! `pair` and `join`: inviting a device by QR code, and joining with one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use photomesh::home::Home;
use photomesh_protocol::membership::Role;

use super::args::RoleArg;
use super::format::utc;

/// `photomesh pair`.
pub fn pair(
    home: &Home,
    role: RoleArg,
    png: Option<PathBuf>,
    expires: Duration,
    listen: SocketAddr,
) -> Result<bool> {
    let role = match role {
        RoleArg::Full => Role::Full,
        RoleArg::Vault => Role::Vault,
    };
    let options = photomesh::mesh::pairing::PairOptions {
        role,
        expires_in: expires,
        listen,
        png: png.as_deref(),
    };
    let joined = super::runtime()?.block_on(photomesh::mesh::pairing::pair(
        home,
        options,
        &mut PrintPairing { png: png.clone() },
    ))?;
    out!(
        "Joined: {} ({}) as a {} device.",
        joined.name,
        joined.device_id,
        joined.role
    )?;
    Ok(true)
}

/// `photomesh join`.
pub fn join(
    mut home: Home,
    code: Option<String>,
    qr: Option<&Path>,
    leave_current_mesh: bool,
) -> Result<bool> {
    let code = photomesh::mesh::pairing::read_code(code.as_deref(), qr)?;
    let name = home.device_name()?;
    let joined = super::runtime()?.block_on(photomesh::mesh::pairing::join(
        &mut home,
        &code,
        leave_current_mesh,
        &name,
    ))?;
    out!(
        "Joined the mesh as a {} device. Members: {}.",
        joined.role,
        joined.members.join(", ")
    )?;
    if joined.role == "vault" {
        out!("This device holds no library key: it stores photos it cannot read.")?;
    }
    Ok(true)
}

/// Prints what `pair` shows: the QR code, the text code, and failed attempts.
struct PrintPairing {
    png: Option<PathBuf>,
}

impl photomesh::mesh::pairing::PairObserver for PrintPairing {
    fn ready(
        &mut self,
        code: &photomesh_protocol::pairing::PairingCode,
        text: &str,
        listening: SocketAddr,
    ) {
        if let Ok(qr) = photomesh::mesh::qr::to_terminal(text) {
            let _ = out_block!("{qr}");
        }
        let _ =
            out!("Scan the QR code with the new device, or type this there: photomesh join CODE");
        let _ = out!("Code: {text}");
        if let Some(png) = &self.png {
            let _ = out!("QR code written to {}", png.display());
        }
        let addresses: Vec<String> = code.addresses.iter().map(ToString::to_string).collect();
        let _ = out!(
            "Offering the {} role; listening on {listening} (addresses in the code: {}); the code works once, until {}.",
            code.role.name(),
            addresses.join(", "),
            utc(code.expires_at as i64 * 1000)
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }

    fn attempt_failed(&mut self, why: &str) {
        say!("{why}; still waiting");
    }
}
