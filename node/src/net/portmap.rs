//! A port mapping from the router, so that a node behind a home router (an offsite vault at a
//! friend's house) can be reached from the internet: PCP (RFC 6887), falling back to NAT-PMP
//! (RFC 6886), through the `crab_nat` crate. Asked for only when `[nat] map_port` says so —
//! opening a port to the internet is the owner's decision.
//!
//! The mapping is for the node's UDP port, asked with the same external port, for two hours,
//! renewed halfway, asked again a minute after a failure, and removed when the node stops.
//! [`PortMap`] holds where it stands, for `status`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Duration;

use crab_nat::{InternetProtocol, PortMapping, PortMappingOptions, PortMappingType, TimeoutConfig};

use crate::clock::now_ms;

/// The lifetime asked for (the gateway may grant another).
const LIFETIME_S: u32 = 7200;
/// How long after a failure the mapping is asked for again.
const RETRY: Duration = Duration::from_secs(60);
/// How long removing the mapping may take when the node stops.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests to the gateway: a quarter second, doubled for each of three retries (under 4 s
/// in all), so a router that does not answer is found out quickly.
const TIMEOUTS: TimeoutConfig = TimeoutConfig {
    initial_timeout: Duration::from_millis(250),
    max_retries: 3,
    max_retry_timeout: Some(Duration::from_secs(2)),
};

/// Where the port mapping stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MapState {
    /// Being asked for.
    Asking {
        /// The router asked.
        gateway: String,
    },
    /// In place: the internet reaches this node at `external`.
    Mapped {
        /// The router's outside address and the port mapped to this node.
        external: String,
        /// `PCP` or `NAT-PMP`.
        protocol: String,
        /// The router.
        gateway: String,
        /// Seconds the router granted; renewed halfway.
        lifetime_s: u32,
        /// When it was last granted (ms since the epoch).
        since_ms: u64,
    },
    /// Not in place, and why.
    Failed {
        /// The router asked, if one was found.
        gateway: Option<String>,
        /// What went wrong, in words.
        why: String,
        /// When (ms since the epoch); asked again a minute later.
        at_ms: u64,
    },
}

/// The mapping's state, shared with `status`.
pub struct PortMap(crate::lock::Mutex<Option<MapState>>);

impl Default for PortMap {
    fn default() -> Self {
        Self(crate::lock::Mutex::new("the port mapping", None))
    }
}

impl PortMap {
    /// Where it stands; `None` when no mapping is asked for.
    pub fn state(&self) -> Option<MapState> {
        self.0.lock().clone()
    }

    fn set(&self, state: MapState) {
        *self.0.lock() = Some(state);
    }
}

/// The IPv4 default gateway, from the kernel's routing table (`/proc/net/route`).
pub fn default_gateway() -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    gateway_in(&table)
}

/// The default route's gateway in a `/proc/net/route` table: the first line whose
/// destination and mask are zero and whose gateway is set (little-endian hex).
fn gateway_in(table: &str) -> Option<Ipv4Addr> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (destination, gateway, mask) = (fields.get(1)?, fields.get(2)?, fields.get(7)?);
        if *destination != "00000000" || *mask != "00000000" {
            return None;
        }
        let gateway = u32::from_str_radix(gateway, 16).ok()?;
        (gateway != 0).then(|| Ipv4Addr::from(gateway.to_le_bytes()))
    })
}

/// This device's address on the way to `gateway` (what PCP wants to hear as the client).
fn local_address_towards(gateway: IpAddr) -> std::io::Result<IpAddr> {
    let bind: SocketAddr = match gateway {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.connect((gateway, 5351))?;
    Ok(socket.local_addr()?.ip())
}

/// Keeps `port` (UDP) mapped on the router (`gateway`, else the default gateway) until
/// `stop` is cancelled, then removes the mapping.
pub async fn keep_mapped(
    port: u16,
    gateway: Option<IpAddr>,
    state: Arc<PortMap>,
    stop: tokio_util::sync::CancellationToken,
) {
    let Some(port) = NonZeroU16::new(port) else {
        return;
    };
    loop {
        match map_once(port, gateway, &state).await {
            Ok(mut mapping) => loop {
                let renew = Duration::from_secs(u64::from(mapping.lifetime().max(2) / 2));
                tokio::select! {
                    () = stop.cancelled() => {
                        remove(mapping).await;
                        return;
                    }
                    () = tokio::time::sleep(renew) => {}
                }
                if let Err(e) = mapping.renew().await {
                    let why = format!("the router stopped renewing the port mapping: {e}");
                    tracing::warn!("port mapping: {why}");
                    state.set(MapState::Failed {
                        gateway: Some(IpAddr::from(mapping.gateway()).to_string()),
                        why,
                        at_ms: now_ms(),
                    });
                    break;
                }
                if let Some(MapState::Mapped {
                    lifetime_s,
                    since_ms,
                    ..
                }) = state.0.lock().as_mut()
                {
                    *lifetime_s = mapping.lifetime();
                    *since_ms = now_ms();
                }
            },
            Err(failed) => {
                if let MapState::Failed { why, .. } = &failed {
                    tracing::warn!("port mapping: {why}");
                }
                state.set(failed);
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Asks for the mapping once; records the outcome in `state`.
async fn map_once(
    port: NonZeroU16,
    gateway: Option<IpAddr>,
    state: &PortMap,
) -> Result<PortMapping, MapState> {
    let failed = |gateway: Option<IpAddr>, why: String| MapState::Failed {
        gateway: gateway.map(|g| g.to_string()),
        why,
        at_ms: now_ms(),
    };
    let Some(gateway) = gateway.or_else(|| default_gateway().map(IpAddr::V4)) else {
        return Err(failed(
            None,
            "no default route: this device is not behind a router (set [nat] gateway if it is)"
                .into(),
        ));
    };
    state.set(MapState::Asking {
        gateway: gateway.to_string(),
    });
    let client = local_address_towards(gateway)
        .map_err(|e| failed(Some(gateway), format!("no route to the router: {e}")))?;
    let options = PortMappingOptions {
        external_port: Some(port),
        lifetime_seconds: Some(LIFETIME_S),
        timeout_config: Some(TIMEOUTS),
    };
    let mapping = PortMapping::new(gateway.into(), client, InternetProtocol::Udp, port, options)
        .await
        .map_err(|e| {
            failed(
                Some(gateway),
                format!(
                    "the router {gateway} did not map the port ({e}); does it offer PCP or NAT-PMP \
                 (often called UPnP in its settings), and is it switched on?"
                ),
            )
        })?;
    let (protocol, external_ip) = match mapping.mapping_type() {
        PortMappingType::Pcp { external_ip, .. } => ("PCP", Some(external_ip)),
        PortMappingType::NatPmp => (
            "NAT-PMP",
            crab_nat::natpmp::external_address(gateway.into(), Some(TIMEOUTS))
                .await
                .ok()
                .map(IpAddr::V4),
        ),
    };
    let external = match external_ip {
        Some(ip) => SocketAddr::new(ip, mapping.external_port().get()).to_string(),
        None => format!("?:{}", mapping.external_port()),
    };
    tracing::info!(%external, protocol, %gateway, "port mapped by the router");
    state.set(MapState::Mapped {
        external,
        protocol: protocol.to_owned(),
        gateway: gateway.to_string(),
        lifetime_s: mapping.lifetime(),
        since_ms: now_ms(),
    });
    Ok(mapping)
}

/// Removes the mapping from the router (the node stops), within [`REMOVE_TIMEOUT`].
async fn remove(mapping: PortMapping) {
    let port = mapping.external_port();
    match tokio::time::timeout(REMOVE_TIMEOUT, mapping.try_drop()).await {
        Ok(Ok(())) => tracing::info!(%port, "port mapping removed"),
        Ok(Err((e, _))) => tracing::warn!(%port, "removing the port mapping: {e}"),
        Err(_) => tracing::warn!(%port, "removing the port mapping: the router did not answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_gateway_is_read_from_the_routing_table() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(gateway_in(table), Some(Ipv4Addr::new(192, 168, 0, 1)));
        let no_default = "Iface\tDestination\tGateway\n\
                          eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(gateway_in(no_default), None);
        assert_eq!(gateway_in("garbage\nmore garbage"), None);
    }
}
