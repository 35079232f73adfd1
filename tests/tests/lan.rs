//! Multi-host tests on a LAN of network namespaces (`photomesh_tests::netns`) with real mDNS.
//! They need root to make namespaces, and are skipped with a message otherwise (CI runs as
//! root).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use photomesh_protocol::identity::DeviceId;
use photomesh_tests::netns::{Lan, is_root, photomesh_on};
use photomesh_tests::{Spawned, wait_until};

const WAIT: Duration = Duration::from_secs(30);

fn device(name: &str) -> DeviceId {
    let mut id = [0u8; 20];
    id.copy_from_slice(&blake3::hash(name.as_bytes()).as_bytes()[..20]);
    DeviceId::from_bytes(id)
}

/// Starts `discover-probe` on `host` for `me` in `mesh`, advertising `port`.
fn probe(
    lan: &Lan,
    host: usize,
    mesh: &str,
    port: u16,
    me: DeviceId,
    members: &[DeviceId],
) -> Spawned {
    probe_with(lan, host, &[], mesh, port, me, members)
}

/// [`probe`] with options (`--no-advertise`, `--no-browse`).
fn probe_with(
    lan: &Lan,
    host: usize,
    options: &[&str],
    mesh: &str,
    port: u16,
    me: DeviceId,
    members: &[DeviceId],
) -> Spawned {
    let mut command = lan.host(host).command(env!("CARGO_BIN_EXE_discover-probe"));
    command
        .args(options)
        .arg(mesh)
        .arg(port.to_string())
        .arg(me.to_string());
    command.args(members.iter().map(|m| m.to_string()));
    let mut spawned = Spawned::start(command);
    spawned.wait_for_line(WAIT, |l| l == "started");
    spawned
}

/// Waits for `probe` to report `device` at exactly `address`, and returns the line.
fn wait_found(probe: &mut Spawned, device: DeviceId, address: &str) -> String {
    let prefix = format!("found {device} ");
    probe.wait_for_line(WAIT, |l| {
        l.strip_prefix(&prefix)
            .is_some_and(|rest| rest.split(' ').any(|a| a == address))
    })
}

/// Issue 7: three hosts on a LAN find each other by mDNS alone, with the right device IDs
/// and addresses; a device of another mesh on the same LAN — even one using a member's
/// device ID — is not matched, and does not match them.
#[test]
fn issue_7_three_hosts_discover_each_other_and_not_another_mesh() {
    if !is_root() {
        eprintln!("SKIPPED: making network namespaces needs root; run the tests as root");
        return;
    }
    let lan = Lan::new(3);
    let ours: Vec<DeviceId> = ["phone", "laptop", "nas"]
        .iter()
        .map(|n| device(n))
        .collect();
    let ports = [41001u16, 41002, 41003];
    let mut members: Vec<Spawned> = (0..3)
        .map(|i| probe(&lan, i, "our mesh", ports[i], ours[i], &ours))
        .collect();
    // Another mesh on the same LAN: its first device reuses our phone's device ID (and knows
    // all our IDs); its second device is on the first host, next to our phone.
    let theirs = [ours[0], device("their tablet")];
    let their_members = [theirs[0], theirs[1], ours[1], ours[2]];
    let mut stranger = probe(&lan, 2, "their mesh", 42001, theirs[0], &their_members);
    let mut their_tablet = probe(&lan, 0, "their mesh", 42002, theirs[1], &their_members);

    for (i, probe) in members.iter_mut().enumerate() {
        for j in (0..3).filter(|j| *j != i) {
            let address = format!("{}:{}", lan.host(j).address, ports[j]);
            wait_found(probe, ours[j], &address);
        }
    }
    // Their mesh works too, so its adverts are on the LAN and resolvable.
    wait_found(
        &mut stranger,
        theirs[1],
        &format!("{}:42002", lan.host(0).address),
    );
    wait_found(
        &mut their_tablet,
        theirs[0],
        &format!("{}:42001", lan.host(2).address),
    );
    // Each of our devices has resolved both of their adverts (and judged them).
    for probe in members.iter_mut() {
        for port in [42001, 42002] {
            let needle = format!(":{port}");
            probe.wait_for_line(WAIT, |l| {
                l.contains("advert resolved") && l.contains(&needle)
            });
        }
    }

    let outputs: Vec<String> = members
        .into_iter()
        .chain([stranger, their_tablet])
        .map(|p| p.terminate().1)
        .collect();
    for (i, output) in outputs.iter().enumerate() {
        let ours_here = i < 3;
        let me = if ours_here { ours[i] } else { theirs[i - 3] };
        // Our devices advertise ports 4100x, theirs 4200x.
        let other_mesh = if ours_here { ":4200" } else { ":4100" };
        for line in output.lines().filter(|l| l.starts_with("found ")) {
            assert!(
                !line.contains(other_mesh),
                "process {i} matched a device of the other mesh: {line}\n{output}"
            );
            assert!(
                !line.starts_with(&format!("found {me} ")),
                "process {i} reported itself: {line}"
            );
        }
    }
}

/// Issue 7: when a host's address changes (a new DHCP lease), the other members are told the
/// new address within a few seconds (`mdns-sd` re-reads addresses every 2 s).
#[test]
fn a_changed_address_is_followed() {
    if !is_root() {
        eprintln!("SKIPPED: making network namespaces needs root; run the tests as root");
        return;
    }
    let mut lan = Lan::new(2);
    let ours = [device("phone"), device("nas")];
    let mut phone = probe(&lan, 0, "our mesh", 41001, ours[0], &ours);
    let _nas = probe(&lan, 1, "our mesh", 41002, ours[1], &ours);
    wait_found(
        &mut phone,
        ours[1],
        &format!("{}:41002", lan.host(1).address),
    );
    let new = std::net::Ipv4Addr::new(10, 77, 0, 200);
    lan.readdress(1, new);
    let line = wait_found(&mut phone, ours[1], &format!("{new}:41002"));
    assert!(
        !line.contains("10.77.0.2:"),
        "the old address is still reported: {line}"
    );
}

/// Issue 7: advertising and browsing are switched separately. A device that does not
/// advertise still finds the others and is not found; a device that does not browse is found
/// and finds nobody.
#[test]
fn advertising_and_browsing_can_be_turned_off() {
    if !is_root() {
        eprintln!("SKIPPED: making network namespaces needs root; run the tests as root");
        return;
    }
    let lan = Lan::new(3);
    let ours = [device("phone"), device("laptop"), device("nas")];
    let mut phone = probe(&lan, 0, "our mesh", 41001, ours[0], &ours);
    let mut quiet = probe_with(
        &lan,
        1,
        &["--no-advertise"],
        "our mesh",
        41002,
        ours[1],
        &ours,
    );
    let deaf = probe_with(&lan, 2, &["--no-browse"], "our mesh", 41003, ours[2], &ours);
    let at = |i: usize, port: u16| format!("{}:{port}", lan.host(i).address);
    // The quiet device browses: it finds both others (so its queries and their answers
    // cross the LAN), and the phone finds the deaf device.
    wait_found(&mut quiet, ours[0], &at(0, 41001));
    wait_found(&mut quiet, ours[2], &at(2, 41003));
    wait_found(&mut phone, ours[2], &at(2, 41003));
    let (phone, quiet, deaf) = (phone.terminate().1, quiet.terminate().1, deaf.terminate().1);
    assert!(
        !phone.contains(&format!("found {} ", ours[1])),
        "the phone found a device that does not advertise:\n{phone}"
    );
    assert!(!quiet.contains("advertising on mDNS"), "{quiet}");
    assert!(
        !deaf.lines().any(|l| l.starts_with("found ")),
        "a device that does not browse reported members:\n{deaf}"
    );
}

/// A revocation rotates the discovery key: a member that learns of it advertises under the
/// new key at once; a device that knows the new key finds it (and a member that has not yet
/// heard, under the old key); the revoked device, which never gets the revocation record,
/// still finds the member that has not heard, and no longer finds the one that has.
#[test]
fn a_revocation_rotates_the_discovery_key() {
    if !is_root() {
        eprintln!("SKIPPED: making network namespaces needs root; run the tests as root");
        return;
    }
    let lan = Lan::new(3);
    let (laptop, nas, phone) = (device("laptop"), device("nas"), device("phone"));
    let ours = [laptop, nas, phone];
    let mut command = lan.host(0).command(env!("CARGO_BIN_EXE_discover-probe"));
    command.args(["our mesh", "41001", &laptop.to_string()]);
    command.args(ours.iter().map(|d| d.to_string()));
    let (mut laptop_probe, mut laptop_in) = Spawned::start_with_stdin(command);
    laptop_probe.wait_for_line(WAIT, |l| l == "started");
    let _nas_probe = probe(&lan, 1, "our mesh", 41002, nas, &ours);
    let (laptop_at, nas_at) = (
        format!("{}:41001", lan.host(0).address),
        format!("{}:41002", lan.host(1).address),
    );

    // The laptop learns that the phone was revoked: it advertises under the next key.
    use std::io::Write as _;
    writeln!(laptop_in, "rotate phone revoked").unwrap();
    laptop_probe.wait_for_line(WAIT, |l| l.contains("new discovery key"));

    // Knowing the new key: both found, the NAS (not yet told) under the old one.
    let mut told = probe_with(
        &lan,
        2,
        &["--no-advertise"],
        "our mesh/phone revoked",
        41003,
        device("tablet"),
        &ours,
    );
    wait_found(&mut told, laptop, &laptop_at);
    wait_found(&mut told, nas, &nas_at);
    drop(told);

    // The revoked phone knows only the old key: it finds the NAS, and the laptop not, in
    // the same time and longer (a bounded wait: an absence has no event to await).
    let mut revoked = probe_with(
        &lan,
        2,
        &["--no-advertise"],
        "our mesh",
        41004,
        phone,
        &ours,
    );
    wait_found(&mut revoked, nas, &nas_at);
    std::thread::sleep(3 * photomesh::daemon::discovery::RECHECK);
    let (_, seen) = revoked.terminate();
    let prefix = format!("found {laptop} ");
    assert!(
        !seen.lines().any(|l| l.starts_with(&prefix)),
        "the revoked device still recognises the laptop's advert:\n{seen}"
    );
}

/// Dropping a `Discovery` stops it and withdraws its advert: the others are told at once
/// (a DNS-SD goodbye), not when the advert would expire.
#[test]
fn a_stopped_node_withdraws_its_advert() {
    if !is_root() {
        eprintln!("SKIPPED: making network namespaces needs root; run the tests as root");
        return;
    }
    let lan = Lan::new(2);
    let ours = [device("phone"), device("nas")];
    let mut phone = probe(&lan, 0, "our mesh", 41001, ours[0], &ours);
    let mut command = lan.host(1).command(env!("CARGO_BIN_EXE_discover-probe"));
    command.arg("--stop-at-eof").args(["our mesh", "41002"]);
    command.args(ours.iter().rev().map(|d| d.to_string()));
    let (leaving, stdin) = Spawned::start_with_stdin(command);
    wait_found(
        &mut phone,
        ours[1],
        &format!("{}:41002", lan.host(1).address),
    );
    drop(stdin);
    let (code, output) = leaving.wait(WAIT);
    assert_eq!(code, 0, "{output}");
    assert!(output.lines().any(|l| l == "stopped"), "{output}");
    phone.wait_for_line(WAIT, |l| l.contains("advert withdrawn"));
}

/// The LAN helper: a host whose link is down is unreachable, and reachable again once it is
/// back up; the namespaces are gone after the LAN is dropped.
#[test]
fn a_link_goes_down_and_comes_back() {
    if !is_root() {
        eprintln!("SKIPPED: making network namespaces needs root; run the tests as root");
        return;
    }
    let lan = Lan::new(2);
    let names: Vec<String> = lan.hosts().iter().map(|h| h.netns.clone()).collect();
    let server = echo_servers(&lan, &[1]);
    let ping = |from, to| echo(&lan, from, to);
    wait_until("host 0 reaches host 1", || {
        ping(0, 1)
            .then_some(())
            .ok_or_else(|| "no answer".to_owned())
    });
    lan.link_down(1);
    assert!(!ping(0, 1), "host 1 answered with its link down");
    lan.link_up(1);
    wait_until("host 0 reaches host 1 again", || {
        ping(0, 1)
            .then_some(())
            .ok_or_else(|| "no answer".to_owned())
    });
    drop(server);
    drop(lan);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip runs");
    let left = String::from_utf8_lossy(&left.stdout);
    for name in names {
        assert!(
            !left.contains(&name),
            "{name} is left after the LAN was dropped"
        );
    }
}

/// Starts `udp-echo serve 7` on each of `hosts`.
fn echo_servers(lan: &Lan, hosts: &[usize]) -> Vec<Spawned> {
    hosts
        .iter()
        .map(|host| {
            let mut server = Spawned::start({
                let mut c = lan.host(*host).command(env!("CARGO_BIN_EXE_udp-echo"));
                c.args(["serve", "7"]);
                c
            });
            server.wait_for_line(WAIT, |l| l == "serving");
            server
        })
        .collect()
}

/// Whether host `to`'s echo server answers host `from`.
fn echo(lan: &Lan, from: usize, to: usize) -> bool {
    lan.host(from)
        .command(env!("CARGO_BIN_EXE_udp-echo"))
        .arg("ask")
        .arg(format!("{}:7", lan.host(to).address))
        .status()
        .expect("udp-echo runs")
        .success()
}

/// The LAN helper's nftables rules: a partition cuts the halves apart and keeps each whole,
/// and heals; a link dropping every frame is cut off.
#[test]
fn a_partition_splits_the_lan_and_heals() {
    if !is_root() {
        eprintln!("SKIPPED: making network namespaces needs root; run the tests as root");
        return;
    }
    let lan = Lan::new(3);
    let _servers = echo_servers(&lan, &[0, 1, 2]);
    let ping = |from, to| echo(&lan, from, to);
    let reaches = |from: usize, to: usize| {
        wait_until(&format!("host {from} reaches host {to}"), || {
            ping(from, to)
                .then_some(())
                .ok_or_else(|| "no answer".to_owned())
        })
    };
    reaches(0, 2);
    lan.partition(&[0, 1], &[2]);
    reaches(0, 1);
    assert!(!ping(0, 2), "host 2 answered across the partition");
    assert!(!ping(2, 1), "host 1 answered across the partition");
    lan.heal();
    reaches(0, 2);
    lan.lossy(1, 100);
    assert!(!ping(0, 1), "host 1 answered with every frame dropped");
    reaches(0, 2);
}

/// Waits until `node` holds `want` blobs, every one verified.
fn wait_for_verified_blobs(node: &photomesh_tests::Node, want: u64) {
    wait_until(
        &format!("{} holding {want} blobs", node.home.display()),
        || {
            let report = node.json(&["verify"]);
            if report["blobs_checked"] == want
                && report["findings"].as_array().is_some_and(Vec::is_empty)
            {
                Ok(())
            } else {
                Err(report.to_string())
            }
        },
    );
}

/// Issue 7: three hosts on a LAN, each running a real node with no configured peers. They
/// pair by QR code files, then find each other by mDNS alone — the laptop changed its
/// address after pairing, so what the others remember of it is stale — and a photo written
/// into the phone's watched folder reaches the laptop and the vault. The vault's link goes
/// down; a photo taken meanwhile reaches it once the link is back.
#[test]
fn issue_7_nodes_on_a_lan_discover_pair_replicate_and_catch_up_after_a_link_outage() {
    if !is_root() {
        eprintln!("SKIPPED: making network namespaces needs root; run the tests as root");
        return;
    }
    let mut lan = Lan::new(3);
    let dir = tempfile::tempdir().unwrap();
    let (phone, laptop, nas) = (
        photomesh_tests::Node::init(dir.path(), "phone"),
        photomesh_tests::Node::init(dir.path(), "laptop"),
        photomesh_tests::Node::init(dir.path(), "nas"),
    );
    let camera = dir.path().join("camera");
    std::fs::create_dir_all(&camera).unwrap();
    phone.ok(&["folder", "add", camera.to_str().unwrap()]);

    // Pairing across hosts: the laptop (host 1) shows a code as a PNG file, which the phone
    // (host 0) and the NAS (host 2) read.
    for (host, joiner, role) in [(0, &phone, "full"), (2, &nas, "vault")] {
        let png = dir.path().join(format!("code-{role}.png"));
        let png_arg = png.to_str().unwrap();
        let mut pair = photomesh_on(
            &lan,
            1,
            &laptop,
            &[
                "pair",
                "--role",
                role,
                "--png",
                png_arg,
                "--listen",
                "0.0.0.0:0",
            ],
        );
        pair.wait_for_line(WAIT, |l| l.contains("listening on"));
        let join = photomesh_on(&lan, host, joiner, &["join", "--qr", png_arg]);
        let (code, out) = join.wait(WAIT);
        assert_eq!(code, 0, "join on host {host}: {out}");
        let (code, out) = pair.wait(WAIT);
        assert_eq!(code, 0, "pair: {out}");
    }
    // The three devices, and the recovery key (the mesh's recovery identity).
    let devices = laptop.json(&["devices"]);
    let mut roles: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["role"].as_str())
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["full", "full", "recovery", "vault"], "{devices}");

    // A new DHCP lease for the laptop: the address the others paired with is gone.
    lan.readdress(1, std::net::Ipv4Addr::new(10, 77, 0, 51));

    let _runs: Vec<Spawned> = [(0, &phone), (1, &laptop), (2, &nas)]
        .into_iter()
        .map(|(host, node)| {
            let mut run = photomesh_on(&lan, host, node, &["run"]);
            run.wait_for_line(WAIT, |l| l.contains("listening on"));
            run
        })
        .collect();
    // Every node reaches both others, on the LAN's addresses.
    for node in [&phone, &laptop, &nas] {
        wait_until("both other devices online", || {
            let status = node.json(&["status"]);
            let peers = status["peers"].as_array().cloned().unwrap_or_default();
            let online = peers.iter().filter(|p| p["online"] == true).count();
            if online == 2 {
                Ok(())
            } else {
                Err(status.to_string())
            }
        });
    }
    // The phone reaches the laptop at its new IPv4 address, or over IPv6 (link-local, from
    // its advert): never at the address it paired with.
    let devices = phone.json(&["devices"]);
    let laptop_at = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "laptop")
        .and_then(|d| d["connection"]["address"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        laptop_at.starts_with("10.77.0.51:") || laptop_at.starts_with('['),
        "the laptop's new address: {devices}"
    );

    // A photo written into the phone's watched folder reaches the laptop and the vault.
    photomesh_tests::samples::take_photo(&camera, "IMG_0001.JPG", 1);
    wait_for_verified_blobs(&laptop, 1);
    wait_for_verified_blobs(&nas, 1);
    assert_eq!(laptop.json(&["status"])["photo_records"], 1);

    // The NAS's link goes down; a photo taken meanwhile reaches the laptop only …
    lan.link_down(2);
    photomesh_tests::samples::take_photo(&camera, "IMG_0002.JPG", 2);
    wait_for_verified_blobs(&laptop, 2);
    assert_eq!(nas.json(&["verify"])["blobs_checked"], 1);
    // … and the NAS catches up once its link is back.
    lan.link_up(2);
    wait_for_verified_blobs(&nas, 2);
}

/// A device that just joined, whose node never ran, restores the whole library: it finds the
/// laptop by mDNS (the address it paired with is stale), catches up with its records and
/// fetches every photo.
#[test]
fn a_new_device_finds_the_mesh_by_mdns_and_restores_right_after_join() {
    if !is_root() {
        eprintln!("SKIPPED: making network namespaces needs root; run the tests as root");
        return;
    }
    let mut lan = Lan::new(2);
    let dir = tempfile::tempdir().unwrap();
    let laptop = photomesh_tests::Node::init(dir.path(), "laptop");
    let tablet = photomesh_tests::Node::init(dir.path(), "tablet");
    let pics = dir.path().join("pics");
    photomesh_tests::samples::write_library(&pics, 3, 81);
    laptop.ok(&["folder", "add", pics.to_str().unwrap(), "--label", "camera"]);
    laptop.ok(&["scan"]);

    let png = dir.path().join("code.png");
    let png_arg = png.to_str().unwrap();
    let mut pair = photomesh_on(
        &lan,
        0,
        &laptop,
        &["pair", "--png", png_arg, "--listen", "0.0.0.0:0"],
    );
    pair.wait_for_line(WAIT, |l| l.contains("listening on"));
    let (code, out) = photomesh_on(&lan, 1, &tablet, &["join", "--qr", png_arg]).wait(WAIT);
    assert_eq!(code, 0, "join: {out}");
    let (code, out) = pair.wait(WAIT);
    assert_eq!(code, 0, "pair: {out}");

    lan.readdress(0, std::net::Ipv4Addr::new(10, 77, 0, 61));
    let mut run = photomesh_on(&lan, 0, &laptop, &["run"]);
    run.wait_for_line(WAIT, |l| l.contains("listening on"));

    let out_dir = dir.path().join("restored");
    let restore = photomesh_on(
        &lan,
        1,
        &tablet,
        &[
            "restore",
            "--to",
            out_dir.to_str().unwrap(),
            "--folder",
            "camera",
        ],
    );
    let (code, out) = restore.wait(WAIT);
    assert_eq!(code, 0, "restore: {out}");
    assert!(out.contains("Caught up with laptop"), "{out}");
    let (got, want) = (
        photomesh_tests::tree(&out_dir),
        photomesh_tests::tree(&pics),
    );
    photomesh_tests::assert_has(&got, &want);
    assert_eq!(got.len(), want.len());
}
