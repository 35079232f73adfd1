//! Peer addresses as the user gave them (`HOST:PORT`, a name or an IP address), resolved again
//! every time they are dialled: a NAS behind a dynamic DNS name, or a friend's router whose
//! address changes, is found at its new address without anyone editing anything.

use std::net::SocketAddr;
use std::time::Duration;

/// How long one name may take to resolve before it is left out of this round.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Every address `names` resolve to now, in order, without repeats. A name that does not
/// resolve now is left out (the device may be away, the resolver down), logged once per
/// call at debug level: it is tried again next time.
pub async fn resolve_all(names: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for name in names {
        let resolved: Vec<SocketAddr> = match name.parse::<SocketAddr>() {
            Ok(addr) => vec![addr],
            Err(_) => {
                match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(name.as_str()))
                    .await
                {
                    Ok(Ok(addrs)) => addrs.collect(),
                    Ok(Err(e)) => {
                        tracing::debug!(%name, "a peer address does not resolve now: {e}");
                        Vec::new()
                    }
                    Err(_) => {
                        tracing::debug!(%name, "a peer address took too long to resolve");
                        Vec::new()
                    }
                }
            }
        };
        for addr in resolved {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    out
}

/// Checks that `text` is `HOST:PORT` (a name or an address, and a port from 1), and returns
/// it as it will be stored.
pub fn host_port(text: &str) -> Result<String, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!(
                "{text:?} has port 0; give the port the node listens on"
            ));
        }
        return Ok(addr.to_string());
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "{text:?} is not an address like 192.168.1.20:7447, [2001:db8::7]:7447 or \
             nas.example.org:7447"
        ));
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !port_ok || !host_ok {
        return Err(format!(
            "{text:?} is not an address like 192.168.1.20:7447, [2001:db8::7]:7447 or \
             nas.example.org:7447"
        ));
    }
    Ok(format!("{}:{port}", host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_are_checked_and_kept_as_given() {
        assert_eq!(host_port(" 192.0.2.7:7447 "), Ok("192.0.2.7:7447".into()));
        assert_eq!(
            host_port("[2001:db8::7]:7447"),
            Ok("[2001:db8::7]:7447".into())
        );
        assert_eq!(
            host_port("NAS.example.org:7447"),
            Ok("nas.example.org:7447".into())
        );
        for bad in [
            "nas",
            "nas:",
            ":7447",
            "nas:0",
            "192.0.2.7:0",
            "nas:99999",
            "a b:1",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn names_resolve_at_each_call_and_those_that_do_not_are_left_out() {
        let names = vec![
            "127.0.0.1:7447".to_owned(),
            "localhost:7448".to_owned(),
            "nothing.invalid:7449".to_owned(),
            "127.0.0.1:7447".to_owned(),
        ];
        let resolved = resolve_all(&names).await;
        assert_eq!(resolved[0], "127.0.0.1:7447".parse().unwrap());
        assert!(
            resolved
                .iter()
                .any(|a| a.port() == 7448 && a.ip().is_loopback()),
            "{resolved:?}"
        );
        assert!(resolved.iter().all(|a| a.port() != 7449), "{resolved:?}");
        assert_eq!(
            resolved.iter().filter(|a| a.port() == 7447).count(),
            1,
            "no repeats"
        );
    }
}
