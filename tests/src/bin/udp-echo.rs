//! A reachability check for the multi-host tests, which cannot count on `ping` being
//! installed: `udp-echo serve PORT` answers every datagram with the same bytes, for ever;
//! `udp-echo ask ADDRESS` sends one datagram and exits 0 if the answer comes within a second,
//! 1 otherwise.

use std::net::UdpSocket;
use std::time::Duration;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let usage = "usage: udp-echo serve PORT | udp-echo ask ADDRESS:PORT";
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("serve"), Some(port)) => {
            let port: u16 = port.parse().context("PORT")?;
            let socket = UdpSocket::bind(("0.0.0.0", port))?;
            println!("serving");
            let mut buf = [0u8; 512];
            loop {
                let (n, from) = socket.recv_from(&mut buf)?;
                socket.send_to(&buf[..n], from)?;
            }
        }
        (Some("ask"), Some(address)) => {
            let socket = UdpSocket::bind("0.0.0.0:0")?;
            socket.set_read_timeout(Some(Duration::from_secs(1)))?;
            let answered = socket.send_to(b"echo", &address).is_ok()
                && socket.recv_from(&mut [0u8; 16]).is_ok();
            std::process::exit(if answered { 0 } else { 1 })
        }
        _ => anyhow::bail!(usage),
    }
}
