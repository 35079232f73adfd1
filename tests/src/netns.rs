//! A LAN of several hosts made of Linux network namespaces, for multi-host tests with real
//! mDNS.
//!
//! [`Lan::new`] creates one namespace holding a bridge (`br0`) and one namespace per host,
//! each with an `eth0` that is one end of a veth pair whose other end is a port of the bridge.
//! Host `i` gets `10.77.0.(i+1)/24`. Since the bridge has a namespace of its own, nothing of
//! the test LAN touches the machine's own interfaces, and the addresses cannot collide with
//! another test's. Namespace names carry the process ID and a counter, so parallel runs do
//! not collide either. Dropping the [`Lan`] — also when a test panics — deletes every
//! namespace it made, and with them the veths and the bridge.
//!
//! Multicast between the hosts needs no setting beyond this: veths are created with the
//! `MULTICAST` flag, mDNS (224.0.0.251, ff02::fb) is link-local so no multicast route is
//! needed (`mdns-sd` joins the group on each interface by address), and link-local groups are
//! flooded by a bridge even with IGMP snooping on. Snooping is turned off anyway
//! (`mcast_snooping 0`), so that a bridge without a querier never prunes a group.
//!
//! Creating namespaces needs root (`CAP_SYS_ADMIN`); tests call [`is_root`] first and skip
//! with a message otherwise. Commands run inside a host with [`Host::command`]
//! (`ip netns exec NAME …`).

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The interface of each host on the LAN.
pub const INTERFACE: &str = "eth0";

/// Whether this process runs as root (and can make namespaces).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Real, effective, saved, filesystem: the effective one decides.
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// One host of the LAN: a network namespace.
#[derive(Debug, Clone)]
pub struct Host {
    /// The namespace's name.
    pub netns: String,
    /// The host's IPv4 address on the LAN.
    pub address: Ipv4Addr,
}

impl Host {
    /// A command that runs `program` inside this host's namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns]).arg(program);
        command
    }
}

/// Runs `photomesh --home HOME ARGS…` for `node` on `host` (logging at info) and returns
/// the process.
pub fn photomesh_on(lan: &Lan, host: usize, node: &crate::Node, args: &[&str]) -> crate::Spawned {
    photomesh_in(lan.host(host), node, args)
}

/// [`photomesh_on`] for any host (a namespace of another topology, `crate::nat`).
pub fn photomesh_in(host: &Host, node: &crate::Node, args: &[&str]) -> crate::Spawned {
    photomesh_in_with_env(host, node, args, &[("PHOTOMESH_LOG", "photomesh=info")])
}

/// [`photomesh_in`] with the environment variables `env` instead of the info log level.
pub fn photomesh_in_with_env(
    host: &Host,
    node: &crate::Node,
    args: &[&str],
    env: &[(&str, &str)],
) -> crate::Spawned {
    let mut command = host.command(crate::photomesh_bin());
    command
        .arg("--home")
        .arg(&node.home)
        .args(args)
        .env_remove("PHOTOMESH_HOME")
        .envs(env.iter().copied());
    crate::Spawned::start(command)
}

/// A test LAN: a bridge and hosts, each in its own namespace. Removed on drop.
#[derive(Debug)]
pub struct Lan {
    bridge_netns: String,
    hosts: Vec<Host>,
    /// Every namespace made so far, removed on drop (also after a half-made LAN failed).
    made: Vec<String>,
}

impl Lan {
    /// Makes a LAN of `hosts` hosts. Panics, after removing what it made, if `ip` fails.
    pub fn new(hosts: usize) -> Self {
        assert!(hosts <= 250, "a test LAN has at most 250 hosts");
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "pmtest-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut lan = Self {
            bridge_netns: format!("{prefix}-lan"),
            hosts: Vec::new(),
            made: Vec::new(),
        };
        let br = lan.bridge_netns.clone();
        lan.add_netns(&br);
        ip(&["-n", &br, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &br,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        for i in 0..hosts {
            let netns = format!("{prefix}-h{i}");
            lan.add_netns(&netns);
            let port = format!("p{i}");
            ip(&["-n", &netns, "link", "set", "lo", "up"]);
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", INTERFACE,
                "netns", &netns,
            ]);
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"]);
            let octet = u8::try_from(i + 1).expect("at most 250 hosts");
            let address = Ipv4Addr::new(10, 77, 0, octet);
            ip(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                INTERFACE,
            ]);
            ip(&["-n", &netns, "link", "set", INTERFACE, "up"]);
            lan.hosts.push(Host { netns, address });
        }
        lan
    }

    /// The hosts, in order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host `i`.
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// Takes host `i`'s link down: it is cut off the LAN (its address stays configured).
    pub fn link_down(&self, i: usize) {
        ip(&["-n", &self.hosts[i].netns, "link", "set", INTERFACE, "down"]);
    }

    /// Brings host `i`'s link back up.
    pub fn link_up(&self, i: usize) {
        ip(&["-n", &self.hosts[i].netns, "link", "set", INTERFACE, "up"]);
    }

    /// Gives host `i` a new address in place of its current one, as a DHCP client does when
    /// the lease changes: the old address is removed, then the new one added. (In that order:
    /// removing a primary address also removes the secondaries of its subnet.)
    pub fn readdress(&mut self, i: usize, address: Ipv4Addr) {
        let host = &mut self.hosts[i];
        let (new, old) = (format!("{address}/24"), format!("{}/24", host.address));
        ip(&["-n", &host.netns, "addr", "del", &old, "dev", INTERFACE]);
        ip(&["-n", &host.netns, "addr", "add", &new, "dev", INTERFACE]);
        host.address = address;
    }

    /// Splits the LAN in two: nothing crosses the bridge between a host of `one` and a host
    /// of `other` (unicast or multicast), while each side still reaches its own. Needs `nft`
    /// (nftables). [`Lan::heal`] undoes it.
    pub fn partition(&self, one: &[usize], other: &[usize]) {
        let ports = |hosts: &[usize]| {
            hosts
                .iter()
                .map(|i| format!("\"p{i}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (a, b) = (ports(one), ports(other));
        self.nft(&format!(
            "add rule bridge pmtest partition iifname {{ {a} }} oifname {{ {b} }} drop\n\
             add rule bridge pmtest partition iifname {{ {b} }} oifname {{ {a} }} drop\n"
        ));
    }

    /// Joins the halves of a [`Lan::partition`] again.
    pub fn heal(&self) {
        self.nft("flush chain bridge pmtest partition\n");
    }

    /// Drops `percent` % of the frames host `i` sends or is sent, at random (nftables
    /// `numgen random`: this kernel has no netem).
    pub fn lossy(&self, i: usize, percent: u32) {
        let chance = if percent >= 100 {
            String::new()
        } else {
            format!("numgen random mod 100 < {percent} ")
        };
        self.nft(&format!(
            "add rule bridge pmtest loss iifname \"p{i}\" {chance}drop\n\
             add rule bridge pmtest loss oifname \"p{i}\" {chance}drop\n"
        ));
    }

    /// Runs an nft script in the bridge's namespace, after making the table it uses.
    fn nft(&self, script: &str) {
        use std::io::Write as _;
        let table = "add table bridge pmtest\n\
            add chain bridge pmtest partition { type filter hook forward priority 0; policy accept; }\n\
            add chain bridge pmtest loss { type filter hook forward priority 1; policy accept; }\n";
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.bridge_netns, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `nft` (is nftables installed?): {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(format!("{table}{script}").as_bytes());
        }
        let out = child.wait_with_output().expect("nft runs");
        assert!(
            out.status.success(),
            "nft failed on {script:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    fn add_netns(&mut self, name: &str) {
        ip(&["netns", "add", name]);
        self.made.push(name.to_owned());
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Hosts first, then the bridge; deleting a namespace deletes its interfaces (and
        // with them the other end of each veth).
        for name in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Two hosts joined by one veth pair, nothing between them: a home LAN's link for the
/// replication bench (`Link::new(1500)`: the MTU of Ethernet). Host `i` gets
/// `10.78.0.(i+1)/24` on its [`INTERFACE`]. Removed on drop, like a [`Lan`].
#[derive(Debug)]
pub struct Link {
    hosts: [Host; 2],
}

impl Link {
    /// Makes the two namespaces and the veth pair with `mtu` on both ends. Panics, after
    /// removing what it made, if `ip` fails.
    pub fn new(mtu: u16) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "pmlink-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let host = |i: u8| Host {
            netns: format!("{prefix}-h{i}"),
            address: Ipv4Addr::new(10, 78, 0, i + 1),
        };
        let link = Self {
            hosts: [host(0), host(1)],
        };
        let [a, b] = &link.hosts;
        for h in &link.hosts {
            ip(&["netns", "add", &h.netns]);
            ip(&["-n", &h.netns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "-n", &a.netns, "link", "add", INTERFACE, "type", "veth", "peer", "name", INTERFACE,
            "netns", &b.netns,
        ]);
        let mtu = mtu.to_string();
        for h in &link.hosts {
            let address = format!("{}/24", h.address);
            ip(&["-n", &h.netns, "link", "set", INTERFACE, "mtu", &mtu]);
            ip(&["-n", &h.netns, "addr", "add", &address, "dev", INTERFACE]);
            ip(&["-n", &h.netns, "link", "set", INTERFACE, "up"]);
        }
        link
    }

    /// Host `i` (0 or 1).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &h.netns]).status();
        }
    }
}

/// Runs `ip ARGS…`, panicking with its error output if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (is iproute2 installed?): {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
