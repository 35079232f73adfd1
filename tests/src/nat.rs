//! A house behind a NAT router and a host on the internet, made of network namespaces, for
//! the offsite tests: the vault sits inside, the laptop outside, and the router between them
//! masquerades the inside and runs a real port-mapping daemon (miniupnpd, from Debian's
//! `miniupnpd-nftables`, speaking NAT-PMP and PCP).
//!
//! ```text
//!   inside (10.1.0.2) ── eth0 ─ in0 (10.1.0.1) router out0 (11.0.0.1) ─ eth0 ── outside (11.0.0.2)
//! ```
//!
//! `11.0.0.0/24` stands for the internet: it must not be a private or reserved block, or
//! miniupnpd refuses to map ports (there is no address beyond it to reach). Nothing leaves
//! the namespaces. Dropping the [`Nat`] stops the daemon and deletes every namespace.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::netns::Host;

/// The router's address on the inside.
pub const ROUTER_INSIDE: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
/// The router's address on the internet: what the outside sees of the inside.
pub const ROUTER_OUTSIDE: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 1);

/// The router's ruleset: a forward chain and the NAT chains miniupnpd fills (its nftables
/// backend's default names: table `inet filter`, chains `miniupnpd`, `prerouting_miniupnpd`,
/// `postrouting_miniupnpd`), and masquerading of the inside.
const RULESET: &str = "
table inet filter {
    chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
    chain miniupnpd { }
    chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
    chain prerouting_miniupnpd { }
    chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; oifname \"out0\" masquerade; }
    chain postrouting_miniupnpd { }
}
";

/// The three namespaces and the mapping daemon.
pub struct Nat {
    /// The house's host (behind the router).
    pub inside: Host,
    /// The internet host.
    pub outside: Host,
    router: String,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    made: Vec<String>,
}

impl Nat {
    /// Builds the namespaces and the router's rules, and starts miniupnpd. Panics (after
    /// removing what it made) when a tool is missing or fails.
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "pmnat-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut nat = Self {
            inside: Host {
                netns: format!("{prefix}-in"),
                address: Ipv4Addr::new(10, 1, 0, 2),
            },
            outside: Host {
                netns: format!("{prefix}-out"),
                address: Ipv4Addr::new(11, 0, 0, 2),
            },
            router: format!("{prefix}-rt"),
            dir: tempfile::tempdir().expect("a temporary directory"),
            daemon: None,
            made: Vec::new(),
        };
        let (inside, outside, router) = (
            nat.inside.netns.clone(),
            nat.outside.netns.clone(),
            nat.router.clone(),
        );
        for ns in [&inside, &outside, &router] {
            ip(&["netns", "add", ns]);
            nat.made.push(ns.clone());
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n", &router, "link", "add", "in0", "type", "veth", "peer", "name", "eth0", "netns",
            &inside,
        ]);
        ip(&[
            "-n", &router, "link", "add", "out0", "type", "veth", "peer", "name", "eth0", "netns",
            &outside,
        ]);
        for (ns, dev, addr) in [
            (&router, "in0", "10.1.0.1/24"),
            (&router, "out0", "11.0.0.1/24"),
            (&inside, "eth0", "10.1.0.2/24"),
            (&outside, "eth0", "11.0.0.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        ip(&["-n", &inside, "route", "add", "default", "via", "10.1.0.1"]);
        run(
            Command::new("ip").args([
                "netns",
                "exec",
                &router,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
            ]),
            "sysctl",
        );
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &router, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `nft` (is nftables installed?): {e}"));
        if let Some(mut stdin) = nft.stdin.take() {
            let _ = stdin.write_all(RULESET.as_bytes());
        }
        let out = nft.wait_with_output().expect("nft runs");
        assert!(
            out.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        nat.start_daemon();
        nat
    }

    /// Starts miniupnpd on the router (NAT-PMP and PCP only, no UPnP-IGD HTTP), and waits
    /// until it listens.
    pub fn start_daemon(&mut self) {
        let conf = self.dir.path().join("miniupnpd.conf");
        std::fs::write(
            &conf,
            "ext_ifname=out0\nlistening_ip=in0\nport=0\nenable_natpmp=yes\nenable_upnp=no\n\
             secure_mode=yes\nsystem_uptime=yes\n\
             allow 1024-65535 10.1.0.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
        )
        .expect("the daemon's configuration is written");
        let pid = self.dir.path().join("miniupnpd.pid");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.router, "miniupnpd", "-d", "-f"])
            .arg(&conf)
            .arg("-P")
            .arg(&pid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run miniupnpd (install Debian's miniupnpd-nftables): {e}")
            });
        self.daemon = Some(child);
        // It listens for NAT-PMP/PCP on UDP 5351 of the inside address.
        crate::wait_until("miniupnpd listens", || {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.router, "ss", "-uln"])
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.contains("10.1.0.1:5351") {
                Ok(())
            } else {
                Err(text)
            }
        });
    }

    /// Stops miniupnpd (SIGTERM, as a service manager does) and waits for it to exit.
    pub fn stop_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let pid = std::fs::read_to_string(self.dir.path().join("miniupnpd.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
            let _ = child.wait();
        }
    }

    /// The router's port forwards now: the `dnat` rules miniupnpd added, as `nft` lists them.
    pub fn forwards(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.router,
                "nft",
                "list",
                "chain",
                "inet",
                "filter",
                "prerouting_miniupnpd",
            ])
            .output()
            .expect("nft runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("dnat"))
            .map(|l| l.trim().to_owned())
            .collect()
    }
}

impl Default for Nat {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Nat {
    fn drop(&mut self) {
        self.stop_daemon();
        for ns in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args), "ip");
}

fn run(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    assert!(
        out.status.success(),
        "`{what}` failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
