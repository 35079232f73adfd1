//! Fixed test vectors for key derivation, sealing, record encoding and lifecycle records.
//!
//! The expected values live in `tests/vectors.txt`, checked into the repository: a change to
//! any derivation context, to the sealing format or to the record encoding breaks this test,
//! which is the point — those are formats other devices (and older versions of this one)
//! must keep reading. Regenerate the file only for a deliberate format change, with
//! `PHOTOMESH_WRITE_VECTORS=1 cargo test -p photomesh-protocol --test vectors`, and bump the
//! format version in the same change.

use std::collections::BTreeMap;

use photomesh_protocol::identity::{DeviceId, DeviceKeys};
use photomesh_protocol::keys::LibraryKey;
use photomesh_protocol::lifecycle::{Action, LifecycleRecord, Statement, Target};
use photomesh_protocol::record::{
    CaptureTime, FileTime, MediaType, PhotoRecord, Record, RecordId, record_id,
};
use photomesh_protocol::seal::{self, BlobId};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors.txt");

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Computes every vector from fixed inputs.
fn compute() -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let mut put = |k: &str, val: String| {
        v.insert(k.to_string(), val);
    };

    let device = DeviceKeys::from_secrets([7; 32], [9; 32]);
    put(
        "device.signing_public",
        hex::encode(device.signing_public()),
    );
    put("device.noise_public", hex::encode(device.noise_public()));
    put("device.id", device.device_id().to_string());
    put(
        "device.signature(photomesh)",
        hex::encode(device.sign(b"photomesh")),
    );

    let library = LibraryKey::new(3, [0x42; 32]);
    put("library.record_key", hex::encode(library.record_key()));
    put(
        "library.record_nonce_key",
        hex::encode(library.record_nonce_key()),
    );

    for len in [0usize, 70_000] {
        let plain = plaintext(len);
        let hash = blake3::hash(&plain);
        let file_key = library.content_key().file_key(hash.as_bytes());
        let sealed = seal::seal(&file_key, &plain);
        put(
            &format!("seal.{len}.plaintext_hash"),
            hash.to_hex().to_string(),
        );
        put(
            &format!("seal.{len}.file_key"),
            hex::encode(file_key.as_bytes()),
        );
        put(&format!("seal.{len}.sealed_len"), sealed.len().to_string());
        put(
            &format!("seal.{len}.sealed_head"),
            hex::encode(&sealed[..64.min(sealed.len())]),
        );
        put(
            &format!("seal.{len}.sealed_tail"),
            hex::encode(&sealed[sealed.len() - 32..]),
        );
        put(
            &format!("seal.{len}.blob_id"),
            BlobId::of_sealed(&sealed).to_hex(),
        );
    }

    let record = Record::Photo(PhotoRecord {
        folder: "camera".into(),
        path: "2026/11/IMG_0001.JPG".into(),
        size: 70_000,
        mtime: FileTime {
            seconds: 1_763_000_000,
            nanos: 5,
        },
        capture_time: Some(CaptureTime {
            local_seconds: 1_762_990_000,
            utc_offset_minutes: Some(-300),
        }),
        media_type: MediaType::Jpeg,
        plaintext_hash: *blake3::hash(&plaintext(70_000)).as_bytes(),
        blob_id: BlobId([0xcd; 32]),
        blob_epoch: 3,
        added_by: device.device_id(),
        created_at_ms: 1_763_000_001_000,
    });
    let (id, sealed) = record.seal(&library).expect("sample record seals");
    assert_eq!(id, record_id(&sealed));
    put(
        "record.plain",
        hex::encode(record.encode_plain().expect("encodes")),
    );
    put("record.sealed", hex::encode(&sealed));
    put("record.id", id.to_hex());

    for (name, statement) in lifecycle_statements(id) {
        let signed = LifecycleRecord::sign(&device, statement).expect("vector statement signs");
        put(
            &format!("lifecycle.{name}.bytes"),
            hex::encode(&signed.bytes),
        );
        put(&format!("lifecycle.{name}.id"), signed.record_id.to_hex());
    }
    v
}

/// The lifecycle vectors' statements: a trash of the vector photo record and another (whose
/// blob is shared with a live photo), and a restore of the first.
fn lifecycle_statements(photo: RecordId) -> [(&'static str, Statement); 2] {
    [
        (
            "trash",
            Statement {
                action: Action::Trash,
                targets: vec![
                    Target {
                        record: photo,
                        blob: Some(BlobId([0xcd; 32])),
                    },
                    Target {
                        record: RecordId([0x11; 32]),
                        blob: None,
                    },
                ],
                created_at_ms: 1_765_000_000_000,
            },
        ),
        (
            "restore",
            Statement {
                action: Action::Restore,
                targets: vec![Target {
                    record: photo,
                    blob: Some(BlobId([0xcd; 32])),
                }],
                created_at_ms: 1_765_000_060_000,
            },
        ),
    ]
}

fn load() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(PATH).expect("tests/vectors.txt is checked in");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(" = ").expect("lines are `key = value`");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn vectors_match_the_checked_in_file() {
    let computed = compute();
    if std::env::var_os("PHOTOMESH_WRITE_VECTORS").is_some() {
        let mut text = String::from(
            "# photomesh protocol test vectors: see tests/vectors.rs for the inputs.\n",
        );
        for (k, v) in &computed {
            text.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(PATH, text).expect("write vectors");
    }
    let expected = load();
    assert_eq!(
        computed.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (k, v) in &expected {
        assert_eq!(&computed[k], v, "vector {k} changed");
    }
}

#[test]
fn checked_in_vectors_open() {
    // The other direction: the checked-in sealed bytes open to the checked-in plaintext,
    // so a reader change that still agrees with the writer cannot drift from the file.
    let v = load();
    let library = LibraryKey::new(3, [0x42; 32]);
    let ring = photomesh_protocol::keys::KeyRing::new(library);
    let sealed = hex::decode(&v["record.sealed"]).expect("hex");
    let record = Record::open(&sealed, &ring).expect("vector record opens");
    assert_eq!(
        hex::encode(record.encode_plain().expect("encodes")),
        v["record.plain"]
    );
    let id: DeviceId = v["device.id"].parse().expect("vector device id parses");
    let Record::Photo(photo) = record else {
        panic!("the vector is a photo record")
    };
    assert_eq!(photo.added_by, id);
}

#[test]
fn checked_in_lifecycle_vectors_decode() {
    // The checked-in bytes decode, verify, and say what they were signed to say.
    let v = load();
    let signer = DeviceKeys::from_secrets([7; 32], [9; 32]);
    let photo = RecordId(
        hex::decode(&v["record.id"])
            .expect("hex")
            .try_into()
            .expect("32 bytes"),
    );
    for (name, statement) in lifecycle_statements(photo) {
        let bytes = hex::decode(&v[&format!("lifecycle.{name}.bytes")]).expect("hex");
        let record = LifecycleRecord::decode(&bytes).expect("vector lifecycle record decodes");
        assert_eq!(record.statement, statement, "lifecycle.{name}");
        assert_eq!(record.signer, signer.device_id());
        assert_eq!(record.record_id, record_id(&bytes));
        assert_eq!(
            record.record_id.to_hex(),
            v[&format!("lifecycle.{name}.id")]
        );
    }
}
