//! Offsite (issue 18): a vault in another house, behind a NAT router that runs a real
//! port-mapping daemon (miniupnpd), is reached from the internet through the port it has the
//! router map; the mapping goes when the node stops; without the daemon, the vault's
//! `status` says it has no mapping and why, and the laptop's that the vault is unreachable.
//! Needs root for the namespaces (skipped with a message otherwise; CI runs as root) and
//! Debian's miniupnpd-nftables (`.ci/run` installs it).

#![allow(clippy::unwrap_used)]

use std::fs;

use photomesh_tests::nat::{Nat, ROUTER_OUTSIDE};
use photomesh_tests::netns::{Host, is_root, photomesh_in};
use photomesh_tests::{Node, Spawned, WAIT, samples, wait_until};

/// Starts the node of `node` in `host` at `listen`; returns it once it listens.
fn run_on(host: &Host, node: &Node, listen: &str) -> Spawned {
    let mut run = photomesh_in(host, node, &["run", "--listen", listen]);
    run.wait_for_line(WAIT, |l| l.contains("listening on"));
    run
}

fn status(node: &Node) -> serde_json::Value {
    node.json(&["status"])
}

#[test]
fn a_vault_behind_a_nat_router_maps_its_port_and_is_reached_from_outside() {
    if !is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut nat = Nat::new();
    let (laptop, vault) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "vault"),
    );

    // Paired while the vault visits the laptop's network... here, through the router: the
    // vault dials out (masqueraded), as a phone scanning the code would.
    let png = dir.path().join("code.png");
    let png_arg = png.to_str().unwrap();
    let mut pair = photomesh_in(
        &nat.outside,
        &laptop,
        &[
            "pair",
            "--role",
            "vault",
            "--png",
            png_arg,
            "--listen",
            "0.0.0.0:0",
        ],
    );
    pair.wait_for_line(WAIT, |l| l.contains("listening on"));
    let (code, out) = photomesh_in(&nat.inside, &vault, &["join", "--qr", png_arg]).wait(WAIT);
    assert_eq!(code, 0, "join: {out}");
    let (code, out) = pair.wait(WAIT);
    assert_eq!(code, 0, "pair: {out}");

    let pics = dir.path().join("pics");
    samples::write_library(&pics, 6, 201);
    laptop.ok(&["folder", "add", pics.to_str().unwrap()]);
    laptop.ok(&["scan"]);
    let n = laptop.json(&["photos"]).as_array().unwrap().len() as u64;

    // The vault asks the router for its port.
    fs::write(vault.home.join("config.toml"), "[nat]\nmap_port = true\n").unwrap();
    let vault_run = run_on(&nat.inside, &vault, "0.0.0.0:7447");
    let external = format!("{ROUTER_OUTSIDE}:7447");
    wait_until("the router maps the vault's port", || {
        let s = status(&vault);
        if s["port_mapping"]["state"] == "mapped" && s["port_mapping"]["external"] == *external {
            Ok(())
        } else {
            Err(s["port_mapping"].to_string())
        }
    });
    assert_eq!(nat.forwards().len(), 1, "{:?}", nat.forwards());
    let text = vault.ok(&["status"]);
    assert!(
        text.contains(&format!("Outside  reachable at {external}")),
        "{text}"
    );

    // The laptop, on the internet, knows only the router's outside address (a name would
    // do too: it is resolved at every dial).
    laptop.ok(&["peer", "add", &external]);
    let laptop_run = run_on(&nat.outside, &laptop, "0.0.0.0:0");
    wait_until("the vault holds every photo", || {
        let report = vault.json(&["verify"]);
        if report["blobs_checked"] == n {
            Ok(())
        } else {
            Err(report.to_string())
        }
    });
    let s = status(&laptop);
    let v = &s["peers"][0];
    assert_eq!(v["connection"]["address"], *external, "{s}");
    assert_eq!(
        v["connection"]["dialled"], "here",
        "the laptop reached the vault through the mapping: {s}"
    );

    // Stopped, the vault removes its mapping from the router.
    drop(laptop_run);
    let (code, out) = vault_run.terminate();
    assert_eq!(code, 0, "{out}");
    assert!(nat.forwards().is_empty(), "{:?}", nat.forwards());

    // Without the mapping daemon, the vault says it has no mapping, and why; the laptop (on
    // a new port, so no old flow through the router helps it) cannot reach it, and says so.
    nat.stop_daemon();
    let _vault_run = run_on(&nat.inside, &vault, "0.0.0.0:7447");
    wait_until("the vault says it has no mapping", || {
        let s = status(&vault);
        if s["port_mapping"]["state"] == "failed" {
            Ok(())
        } else {
            Err(s["port_mapping"].to_string())
        }
    });
    let text = vault.ok(&["status"]);
    assert!(
        text.contains("NOT reachable from beyond the router") && text.contains("10.1.0.1"),
        "{text}"
    );
    let _laptop_run = run_on(&nat.outside, &laptop, "0.0.0.0:0");
    wait_until("the laptop says the vault is unreachable", || {
        let text = laptop.ok(&["status"]);
        if text.contains("unreachable: no answer from 11.0.0.1:7447") {
            Ok(())
        } else {
            Err(text)
        }
    });
}
