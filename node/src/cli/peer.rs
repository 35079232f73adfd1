//! `peer add`, `peer list` and `ping`: members beyond the LAN.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use photomesh::clock::now_ms;
use photomesh::home::Home;

/// `photomesh peer add`.
pub fn add(home: &Home, address: &str) -> Result<bool> {
    use std::net::ToSocketAddrs;
    let address = photomesh::net::resolve::host_port(address).map_err(anyhow::Error::msg)?;
    // A name is kept as a name, and resolved again at every dial; say now if it does not
    // resolve, but keep it (the resolver may be down, the name not yet published).
    let now = match address.to_socket_addrs() {
        Ok(resolved) => {
            let resolved: Vec<String> = resolved.map(|a| a.to_string()).collect();
            if resolved == [address.clone()] {
                String::new()
            } else {
                format!(" (now {})", resolved.join(", "))
            }
        }
        Err(e) => format!(" (it does not resolve now: {e}; it is tried again at every dial)"),
    };
    if home.index.add_peer(&address, now_ms())? {
        out!("Added peer {address}{now}. A running node dials it within a second.")?;
    } else {
        out!("{address} was already a configured peer.")?;
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
