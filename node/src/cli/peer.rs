//! `peer add`, `peer list` and `ping`: members beyond the LAN.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use photomesh::clock::now_ms;
use photomesh::home::Home;

/// `photomesh peer add`.
pub fn add(home: &Home, address: &str) -> Result<bool> {
    use std::net::ToSocketAddrs;
    let resolved: Vec<SocketAddr> = address
        .to_socket_addrs()
        .with_context(|| {
            format!("{address:?} is not an address like 192.168.1.20:7447 or nas.local:7447")
        })?
        .collect();
    let Some(first) = resolved.first() else {
        bail!("{address:?} resolves to no address");
    };
    if home.index.add_peer(&first.to_string(), now_ms())? {
        out!("Added peer {first}. A running node dials it within a second.")?;
    } else {
        out!("{first} was already a configured peer.")?;
    }
    Ok(true)
}

/// `photomesh peer list`.
pub fn list(home: &Home) -> Result<bool> {
    for p in home.index.peers()? {
        out!("{p}")?;
    }
    Ok(true)
}

/// `photomesh ping`.
pub fn ping(home: &Home, address: SocketAddr, device: Option<String>, json: bool) -> Result<bool> {
    let device = device
        .map(|d| {
            d.parse()
                .with_context(|| format!("{d:?} is not a device ID"))
        })
        .transpose()?;
    let pong = super::runtime()?.block_on(photomesh::daemon::hello::ping(home, address, device))?;
    if json {
        out_block!("{}", serde_json::to_string_pretty(&pong)?)?;
    } else {
        out!(
            "{} ({}) answered at {} in {:.1} ms",
            pong.name,
            pong.device_id,
            pong.address,
            pong.round_trip_ms
        )?;
    }
    Ok(true)
}
