//! Pairing and membership with real processes on loopback: QR and text codes, every bad
//! code, devices lists, revocation enforced by a running node, vaults, and recovery.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use photomesh::home::Home;
use photomesh_protocol::pairing::PairingCode;
use photomesh_protocol::record::Record;
use photomesh_tests::{Node, WAIT};
use serde_json::Value;

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn device_id(node: &Node) -> String {
    node.json(&["status"])["device_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn devices(node: &Node) -> Vec<(String, String, String, bool)> {
    let list = node.json(&["devices"]);
    let mut out: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        // The recovery identity is a member but no device: not listed here.
        .filter(|d| d["role"] != "recovery")
        .map(|d| {
            (
                d["device_id"].as_str().unwrap().to_owned(),
                d["name"].as_str().unwrap().to_owned(),
                d["role"].as_str().unwrap().to_owned(),
                d["revoked"].as_bool().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn pair_by_qr_png_and_text_then_revoke_is_enforced_by_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "phone"),
        Node::init(dir.path(), "tablet"),
    );

    // A → B through a PNG of the QR code, read back by a real QR decoder.
    let png = dir.path().join("code.png");
    let (pair, _) = a.start_pair(&["--png", png.to_str().unwrap()]);
    let joined = b.ok(&["join", "--qr", png.to_str().unwrap()]);
    assert!(
        joined.contains("Joined the mesh as a full device"),
        "{joined}"
    );
    let (code, out) = pair.wait(WAIT);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Joined: phone"), "{out}");

    // A → C by the typed text code.
    let (pair, text) = a.start_pair(&[]);
    c.ok(&["join", &text.to_lowercase()]);
    assert_eq!(pair.wait(WAIT).0, 0);

    // A and C agree on the members; B, which joined earlier, knows A and itself.
    let a_devices = devices(&a);
    assert_eq!(a_devices.len(), 3);
    assert_eq!(devices(&c), a_devices);
    assert_eq!(devices(&b).len(), 2);
    assert!(
        a_devices
            .iter()
            .all(|(_, _, role, revoked)| role == "full" && !revoked)
    );

    // A runs; B and C reach it.
    let (run, addr) = a.start_run();
    let pong: Value = b.json(&["ping", &addr]);
    assert_eq!(pong["name"], "laptop");
    c.ok(&["ping", &addr]);
    // Talking to A taught B about C (membership travels with every hello).
    assert_eq!(devices(&b), a_devices);

    // A revokes B while running: B is refused from then on, C is not.
    let b_id = device_id(&b);
    a.ok(&["revoke", &b_id]);
    let refused = wait_until_refused(&b, &addr);
    assert!(refused.contains("not trusted"), "{refused}");
    c.ok(&["ping", &addr]);
    assert!(
        devices(&a)
            .iter()
            .any(|(id, _, _, revoked)| *id == b_id && *revoked)
    );
    // C learned of the revocation from A.
    assert!(
        devices(&c)
            .iter()
            .any(|(id, _, _, revoked)| *id == b_id && *revoked)
    );
    // The key rotated: A seals new content under epoch 2.
    assert_eq!(a.json(&["status"])["key_epoch"], 2);

    // And C, once revoked, is refused too.
    a.ok(&["revoke", &device_id(&c)]);
    let refused = wait_until_refused(&c, &addr);
    assert!(refused.contains("not trusted"), "{refused}");
    assert_eq!(a.json(&["status"])["key_epoch"], 3);

    let (code, out) = run.terminate();
    assert_eq!(code, 0, "run did not stop cleanly: {out}");
}

/// Pings until the peer refuses (the running node reloads its trust set within a fraction
/// of a second of the revocation), bounded.
fn wait_until_refused(node: &Node, addr: &str) -> String {
    let run = photomesh_tests::wait_until("a refusal", || {
        let run = node.run(&["ping", addr]);
        if run.code != 0 {
            Ok(run)
        } else {
            Err(run.stdout)
        }
    });
    assert_eq!(run.code, 2);
    run.stderr
}

#[test]
fn a_code_works_once_and_a_wrong_secret_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, x) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "phone"),
        Node::init(dir.path(), "stranger"),
    );
    let (pair, text) = a.start_pair(&[]);

    // An attacker who saw the inviter on the network but not the QR code: right key and
    // address, wrong secret, correct check value.
    let mut forged: PairingCode = text.parse().unwrap();
    forged.secret[0] ^= 0xff;
    let run = x.run(&["join", &forged.to_string()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("wrong secret"), "{}", run.stderr);
    assert_eq!(devices(&a).len(), 1, "a wrong secret added a device");

    // The right secret in a code with another field changed (and its check value made to
    // match): the role, or the expiry. Every field is bound into the handshake, so the
    // inviter refuses on the first message and records nobody.
    let real: PairingCode = text.parse().unwrap();
    let other_role = PairingCode {
        role: photomesh_protocol::membership::Role::Vault,
        ..real.clone()
    };
    let later = PairingCode {
        expires_at: real.expires_at + 60,
        ..real
    };
    for changed in [other_role, later] {
        let run = x.run(&["join", &changed.to_string()]);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stderr.contains("refused the pairing"), "{}", run.stderr);
    }
    assert_eq!(devices(&a).len(), 1, "a changed code added a device");
    assert_eq!(devices(&x).len(), 1, "a changed code joined a mesh");

    // The invitation survives the failed attempt: the real device still joins.
    b.ok(&["join", &text]);
    let (code, out) = pair.wait(WAIT);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("refused"),
        "the failed attempt was not reported: {out}"
    );

    // The same code again: nobody is listening for it any more.
    let fresh = Node::init(dir.path(), "late");
    let again = fresh.run(&["join", &text]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("works once"), "{}", again.stderr);
    assert_eq!(devices(&a).len(), 2);
}

#[test]
fn bad_codes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "phone"),
    );

    // A code may not live less than a minute or more than a week.
    let run = a.run(&["pair", "--expires", "1s"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("at least 60 seconds"), "{}", run.stderr);
    let run = a.run(&["pair", "--expires", "99999d"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("at most 7 days"), "{}", run.stderr);

    // Expired, or claiming to work for years: the joiner refuses before connecting.
    let (pair, text) = a.start_pair(&["--expires", "1m"]);
    let mut expired: PairingCode = text.parse().unwrap();
    expired.expires_at = now_s() - 5;
    let run = b.run(&["join", &expired.to_string()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    let mut forever: PairingCode = text.parse().unwrap();
    forever.expires_at = u64::from(u32::MAX);
    let run = b.run(&["join", &forever.to_string()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("longer than the 7 days"),
        "{}",
        run.stderr
    );
    drop(pair);

    // A typo.
    let mut chars: Vec<char> = text.chars().collect();
    chars[5] = if chars[5] == 'Q' { 'R' } else { 'Q' };
    let typo: String = chars.into_iter().collect();
    let run = b.run(&["join", &typo]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("typo"), "{}", run.stderr);

    // Another format version (with a valid check value).
    let parsed: PairingCode = text.parse().unwrap();
    let mut bytes = parsed.to_bytes();
    bytes[0] = 9;
    let n = bytes.len() - 4;
    let check = blake3::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&check.as_bytes()[..4]);
    let other_version = photomesh_protocol::base32::encode(&bytes);
    let run = b.run(&["join", &other_version]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("format version 9"), "{}", run.stderr);

    // A PNG with no QR code in it, and a file that is no PNG.
    let blank = dir.path().join("blank.png");
    write_blank_png(&blank);
    let run = b.run(&["join", "--qr", blank.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("holds no QR code"), "{}", run.stderr);
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"hello").unwrap();
    let run = b.run(&["join", "--qr", junk.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not a readable PNG"), "{}", run.stderr);

    // Nothing of it changed either side.
    assert_eq!(devices(&a).len(), 1);
    assert_eq!(devices(&b).len(), 1);
}

#[test]
fn a_member_of_a_mesh_does_not_join_another_without_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, f) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "phone"),
        Node::init(dir.path(), "friend"),
    );
    let (pair, text) = a.start_pair(&[]);
    b.ok(&["join", &text]);
    pair.wait(WAIT);

    let (pair, text) = f.start_pair(&["--expires", "60s"]);
    let run = b.run(&["join", &text]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("already belongs to a mesh"),
        "{}",
        run.stderr
    );
    b.ok(&["join", &text, "--leave-current-mesh"]);
    assert_eq!(pair.wait(WAIT).0, 0);
    let names: Vec<String> = devices(&b).into_iter().map(|d| d.1).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"friend".to_owned()) && names.contains(&"phone".to_owned()));
}

#[test]
fn a_vault_joins_without_the_library_key_and_cannot_open_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let (a, v) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "pi"),
    );
    let pics = dir.path().join("pics");
    photomesh_tests::samples::write_library(&pics, 2, 3);
    a.ok(&["folder", "add", pics.to_str().unwrap()]);
    a.ok(&["scan"]);

    let (pair, text) = a.start_pair(&["--role", "vault"]);
    let out = v.ok(&["join", &text]);
    assert!(out.contains("vault"), "{out}");
    assert_eq!(pair.wait(WAIT).0, 0);
    assert!(devices(&a).iter().any(|d| d.1 == "pi" && d.2 == "vault"));

    // The vault holds no key: not in its status, not in its key file.
    assert_eq!(v.json(&["status"])["key_epoch"], Value::Null);
    let keys = std::fs::read_to_string(v.home.join("library.keys")).unwrap();
    assert!(!keys.contains("epoch"), "{keys}");
    // A sealed record of the laptop's does not open with the vault's keys, and does with
    // the laptop's.
    let laptop = Home::open(&a.home).unwrap();
    let vault = Home::open(&v.home).unwrap();
    let row = laptop.index.latest_photos(None).unwrap().remove(0);
    let sealed = row.record.sealed(&laptop.keys).unwrap();
    assert!(Record::open(&sealed, &laptop.keys).is_ok());
    assert!(Record::open(&sealed, &vault.keys).is_err());
    // A vault cannot invite anyone.
    let run = v.run(&["pair", "--listen", "127.0.0.1:0"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("only a full device"), "{}", run.stderr);
}

#[test]
fn recovery_phrase_is_printed_once_and_a_format_1_phrase_still_starts_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::init(dir.path(), "laptop");
    let export = a.ok(&["recovery-key", "export"]);
    assert!(export.contains("Whoever has this phrase can rejoin the mesh and read every photo"));
    let phrase = export
        .lines()
        .find_map(|l| l.strip_prefix("Recovery phrase: "))
        .unwrap()
        .to_owned();
    // Once only, unless asked again.
    let again = a.run(&["recovery-key", "export"]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("--again"), "{}", again.stderr);

    // The phrase rejoins its mesh through a member: without one to ask, it says so.
    let r = Node::at(dir.path().join("recovered"));
    let run = r.run(&["init", "--name", "new-laptop", "--recover", &phrase]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--from HOST:PORT"), "{}", run.stderr);
    assert!(!r.home.exists());
    // A format 1 phrase (the key ring itself, from before recovery identities) still starts
    // a new device holding those keys, as it did.
    let original = Home::open(&a.home).unwrap();
    let old_phrase = original.keys.to_recovery_phrase();
    r.ok(&["init", "--name", "new-laptop", "--recover", &old_phrase]);
    let recovered = Home::open(&r.home).unwrap();
    assert_eq!(original.keys, recovered.keys);

    let mut typo: Vec<char> = phrase.chars().collect();
    typo[2] = if typo[2] == 'A' { 'B' } else { 'A' };
    let bad = Node::at(dir.path().join("bad"));
    let run = bad.run(&[
        "init",
        "--name",
        "x",
        "--recover",
        &typo.into_iter().collect::<String>(),
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("typo"), "{}", run.stderr);
    assert!(!bad.home.exists(), "a refused phrase left a home behind");
}

fn write_blank_png(path: &Path) {
    // A valid greyscale PNG of a grey square: a picture, but no QR code in it.
    let img = vec![200u8; 64 * 64];
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), 64, 64);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&img).unwrap();
    w.finish().unwrap();
}
