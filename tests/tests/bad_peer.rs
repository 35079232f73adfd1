//! A peer that serves corrupted blob data: three devices where one (a misbehaving server
//! built here from the library's public pieces — real nQUIC, a real home — whose blob
//! encodings have a byte flipped) holds the same blobs as an honest one. The receiver stores
//! nothing corrupt, records the bad peer, and ends with byte-identical blobs from the
//! honest peer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use photomesh::blob::source::BlobSource;
use photomesh::home::Home;
use photomesh::mesh;
use photomesh::net::frame as net;
use photomesh::net::transport;
use photomesh::replicate::held::HeldBlobs;
use photomesh::replicate::records::RecordSet;
use photomesh_protocol::messages::{BlobHeader, Hello, Request};
use photomesh_protocol::seal::BlobId;
use photomesh_tests::{Node, wait_until};

/// Where in every blob encoding the misbehaving server flips a byte: past the first chunk
/// group, so good data comes first.
const FLIP_AT: usize = 40_000;

/// Serves the home's records and blob sets like a node, but every blob with a byte flipped.
async fn serve_corrupted(home: Home, endpoint: quinn::Endpoint) {
    let set = RecordSet::load(&home).unwrap();
    let held = HeldBlobs::load(&home).unwrap();
    let home = Arc::new(tokio::sync::Mutex::new(home));
    let held = Arc::new(held);
    while let Some(incoming) = endpoint.accept().await {
        let (home, set, held) = (home.clone(), set.clone(), held.clone());
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else {
                return;
            };
            while let Ok((mut send, mut recv)) = connection.accept_bi().await {
                let Ok(request) = net::read_frame::<Request>(&mut recv).await else {
                    return;
                };
                match request {
                    Request::Hello(_) => {
                        let hello = {
                            let home = home.lock().await;
                            Hello {
                                device: home.device.device_id(),
                                name: home.device_name().unwrap(),
                                has_aes: false,
                                membership: home.index.membership_records().unwrap(),
                                addresses: Vec::new(),
                                verified_since: None,
                                storage: None,
                            }
                        };
                        net::write_frame(&mut send, &hello).await.unwrap();
                        let _ = send.finish();
                    }
                    Request::Reconcile => {
                        let _ =
                            photomesh::replicate::records::serve_reconcile(&home, &set, send, recv)
                                .await;
                    }
                    Request::Fetch(ids) => {
                        let _ = photomesh::replicate::records::serve_fetch(&home, ids, send).await;
                    }
                    Request::ReconcileBlobs => {
                        let _ = photomesh::replicate::blobs::serve_reconcile_blobs(
                            &home, &held, send, recv,
                        )
                        .await;
                    }
                    Request::Blob {
                        blob_id,
                        from_group,
                    } => {
                        let source = BlobSource::open(&*home.lock().await, &BlobId(blob_id))
                            .unwrap()
                            .expect("the misbehaving peer holds every blob");
                        let sealed_len = source.sealed_len();
                        let mut encoded = Vec::new();
                        source.encode(from_group, &mut encoded).unwrap();
                        let at = FLIP_AT.min(encoded.len() - 1);
                        encoded[at] ^= 0x20;
                        net::write_frame(&mut send, &BlobHeader::Follows { sealed_len })
                            .await
                            .unwrap();
                        let _ = send.write_all(&encoded).await;
                        let _ = send.finish();
                    }
                    // Requests added later are not part of this test.
                    #[allow(unreachable_patterns)]
                    _ => return,
                }
            }
        });
    }
}

/// Photos larger than a few chunk groups, so a flipped byte lands inside one.
fn write_photos(dir: &Path, count: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = photomesh_tests::samples::Rng::new(99);
    for i in 0..count {
        let mut bytes = vec![0u8; 120_000 + i * 10_000];
        rng.fill(&mut bytes);
        bytes[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
        std::fs::write(dir.join(format!("IMG_{i:04}.JPG")), bytes).unwrap();
    }
}

/// Waits until `verify` has checked `want` stored blobs, and returns how many findings.
fn wait_for_blobs(node: &Node, want: u64) -> serde_json::Value {
    wait_until(&format!("holding {want} blobs"), || {
        let report = node.json(&["verify"]);
        if report["blobs_checked"] == want {
            Ok(report)
        } else {
            Err(report.to_string())
        }
    })
}

#[test]
fn a_peer_serving_corrupted_blobs_is_caught_recorded_and_avoided() {
    let dir = tempfile::tempdir().unwrap();
    let (laptop, bad, receiver) = (
        Node::init(dir.path(), "laptop"),
        Node::init(dir.path(), "bad"),
        Node::init(dir.path(), "receiver"),
    );
    let pics = dir.path().join("pics");
    write_photos(&pics, 3);
    laptop.ok(&["folder", "add", pics.to_str().unwrap()]);
    laptop.ok(&["scan"]);
    laptop.invite(&bad, "full");
    laptop.invite(&receiver, "full");

    // The future misbehaving device first replicates every blob honestly.
    {
        let (_laptop_run, addr) = laptop.start_run();
        bad.ok(&["peer", "add", &addr]);
        let (_bad_run, _) = bad.start_run();
        let report = wait_for_blobs(&bad, 3);
        assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
    }

    // Now it serves them corrupted; the honest laptop is away.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bad_home = Home::open(&bad.home).unwrap();
    let bad_id = bad_home.device.device_id().to_string();
    let trust = Arc::new(mesh::MeshTrust::new(mesh::trust_set(&bad_home).unwrap()));
    let config = transport::server_config(
        bad_home.device.noise_secret(),
        trust,
        None,
        None,
        transport::os_random(),
    );
    let bad_addr: SocketAddr = {
        let _guard = runtime.enter();
        let endpoint = transport::endpoint("127.0.0.1:0".parse().unwrap(), Some(config)).unwrap();
        let addr = endpoint.local_addr().unwrap();
        runtime.spawn(serve_corrupted(bad_home, endpoint));
        addr
    };
    receiver.ok(&["peer", "add", &bad_addr.to_string()]);
    let (mut receiver_run, _) = receiver.start_run_with_env(&[("PHOTOMESH_LOG", "photomesh=info")]);
    receiver_run.wait_for_line(photomesh_tests::WAIT, |l| {
        l.contains("does not match the blob ID")
    });

    // Recorded, persisted, shown per peer; and nothing was stored from it.
    let status = receiver.json(&["status"]);
    let peer = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["device_id"] == bad_id.as_str())
        .unwrap_or_else(|| panic!("no bad peer in {status}"))
        .clone();
    let bad_data = &peer["bad_data"];
    assert!(
        bad_data["reason"]
            .as_str()
            .unwrap()
            .contains("verification failed"),
        "{status}"
    );
    assert_eq!(bad_data["avoided"], true, "{status}");
    assert_eq!(status["photo_records"], 3, "{status}");
    let report = receiver.json(&["verify"]);
    assert_eq!(report["blobs_checked"], 0, "{report}");
    assert_eq!(
        std::fs::read_dir(receiver.home.join("blobs"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().len() == 2)
            .count(),
        0,
        "a blob file is in the store"
    );

    // The honest laptop comes back: the blobs come from it, byte for byte.
    let (_laptop_run, addr) = laptop.start_run();
    receiver.ok(&["peer", "add", &addr]);
    let report = wait_for_blobs(&receiver, 3);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
    let out = dir.path().join("restored");
    receiver.ok(&["restore", "--to", out.to_str().unwrap()]);
    for (path, (bytes, ..)) in photomesh_tests::snapshot(&pics) {
        let rel = path.strip_prefix(&pics).unwrap();
        assert!(
            std::fs::read(out.join("pics").join(rel)).unwrap() == bytes,
            "{} differs",
            rel.display()
        );
    }
    // Still avoided for blobs, and still on record after a restart.
    drop(receiver_run);
    let status = receiver.json(&["status"]);
    assert!(
        status["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["device_id"] == bad_id.as_str() && p["bad_data"]["avoided"] == true),
        "{status}"
    );
    runtime.shutdown_background();
}
