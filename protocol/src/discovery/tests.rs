use proptest::prelude::*;

use super::*;
use crate::identity::DeviceKeys;
use crate::membership::{Introduce, Revoke};

fn key(byte: u8) -> DiscoveryKey {
    DiscoveryKey::from_founding_record(&RecordId([byte; 32]))
}

fn device(byte: u8) -> DeviceId {
    DeviceId::from_bytes([byte; 20])
}

fn parse_txt(txt: &[(&'static str, String); 2]) -> Result<Advert, AdvertError> {
    let get = |k: &str| {
        txt.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.as_str())
    };
    Advert::parse(get(VERSION_KEY), get(TAG_KEY))
}

/// Fixed vectors: a change here is a format change (bump `VERSION`, update `DISCOVERY.md`).
#[test]
fn fixed_vectors() {
    let k = key(0x11);
    assert_eq!(
        hex_lower(k.as_bytes()),
        "e365c47d234e472f2dbd994d2f792f9fe8596bb7a2f9ddd8dc364d109f43a355"
    );
    let advert = Advert::new(&k, &device(0x22), Flags { aes: true }, [0x33; NONCE_LEN]);
    let [(v_key, v), (t_key, t)] = advert.txt();
    assert_eq!((v_key, v.as_str()), ("v", "1"));
    assert_eq!(t_key, "t");
    assert_eq!(
        t,
        "33333333333333333333333333333333fddb9e03450e14075189d6bb47478952bb"
    );
    let names = AdvertNames::new([0x44; 8]);
    assert_eq!(names.instance, "pm-4444444444444444");
    assert_eq!(names.host, "pm-4444444444444444.local.");
}

#[test]
fn a_member_recognises_the_advertiser_and_its_flags() {
    let k = key(1);
    let members = [device(1), device(2), device(3)];
    for flags in [Flags { aes: false }, Flags { aes: true }] {
        let advert = Advert::new(&k, &device(2), flags, [9; NONCE_LEN]);
        let parsed = parse_txt(&advert.txt()).unwrap();
        assert_eq!(parsed, advert);
        assert_eq!(parsed.identify(&k, &members), Some((device(2), flags)));
    }
}

#[test]
fn another_mesh_or_a_non_member_is_not_recognised() {
    let advert = Advert::new(&key(1), &device(2), Flags::default(), [9; NONCE_LEN]);
    // Same device IDs, different mesh.
    assert_eq!(advert.identify(&key(2), &[device(1), device(2)]), None);
    // Same mesh, but the advertiser is not among the members the reader knows.
    assert_eq!(advert.identify(&key(1), &[device(1), device(3)]), None);
}

#[test]
fn every_tampered_byte_is_refused() {
    let k = key(1);
    let members = [device(2)];
    let advert = Advert::new(&k, &device(2), Flags { aes: true }, [9; NONCE_LEN]);
    let [_, (_, t)] = advert.txt();
    let bytes = parse_hex(&t).unwrap();
    for i in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        let parsed = Advert::parse(Some("1"), Some(&hex_lower(&tampered))).unwrap();
        assert_eq!(parsed.identify(&k, &members), None, "byte {i} flipped");
    }
}

#[test]
fn fresh_nonces_make_unlinkable_adverts() {
    let k = key(1);
    let a = Advert::new(&k, &device(2), Flags::default(), [1; NONCE_LEN]).txt();
    let b = Advert::new(&k, &device(2), Flags::default(), [2; NONCE_LEN]).txt();
    // Nothing but the version is common to two adverts of the same device.
    assert_eq!(a[0], b[0]);
    let (ta, tb) = (parse_hex(&a[1].1).unwrap(), parse_hex(&b[1].1).unwrap());
    let common = ta.iter().zip(&tb).filter(|(x, y)| x == y).count();
    assert!(common < 6, "{common} equal bytes");
}

#[test]
fn malformed_txt_is_an_error() {
    let good = "00".repeat(ADVERT_LEN);
    assert_eq!(
        Advert::parse(None, Some(&good)),
        Err(AdvertError::MissingVersion)
    );
    assert_eq!(
        Advert::parse(Some("2"), Some(&good)),
        Err(AdvertError::Version("2".into()))
    );
    assert_eq!(Advert::parse(Some("1"), None), Err(AdvertError::MissingTag));
    for bad in [
        "".to_owned(),
        "0".repeat(ADVERT_LEN * 2 - 1),
        "0".repeat(ADVERT_LEN * 2 + 2),
        "0G".repeat(ADVERT_LEN),
        "0A".repeat(ADVERT_LEN),
        "+f".repeat(ADVERT_LEN),
        "é".repeat(ADVERT_LEN),
    ] {
        assert_eq!(
            Advert::parse(Some("1"), Some(&bad)),
            Err(AdvertError::BadTag),
            "{bad:?}"
        );
    }
    assert!(Advert::parse(Some("1"), Some(&good)).is_ok());
}

#[test]
fn the_key_comes_from_the_founding_record() {
    let founder = DeviceKeys::from_secrets([1; 32], [2; 32]);
    let other = DeviceKeys::from_secrets([3; 32], [4; 32]);
    let introduce = |signer: &DeviceKeys, who: &DeviceKeys, role| {
        MembershipRecord::sign(
            signer,
            Statement::Introduce(Introduce {
                signing_key: who.signing_public(),
                noise_key: who.noise_public(),
                role,
                name: "x".into(),
                created_at_ms: 1,
            }),
        )
        .unwrap()
    };
    let founding = introduce(&founder, &founder, Role::Full);
    let member = introduce(&founder, &other, Role::Vault);
    let self_introduced = introduce(&other, &other, Role::Full);
    let revoke = MembershipRecord::sign(
        &founder,
        Statement::Revoke(Revoke {
            device: other.device_id(),
            keep: vec![],
            created_at_ms: 2,
        }),
    )
    .unwrap();
    let records = [member, self_introduced, revoke, founding.clone()];
    let expected = DiscoveryKey::from_founding_record(&founding.record_id);
    assert_eq!(
        DiscoveryKey::for_mesh(&founder.device_id(), &records),
        Some(expected.clone())
    );
    // The other device's self-introduction founds a different mesh, with a different key.
    let theirs = DiscoveryKey::for_mesh(&other.device_id(), &records).unwrap();
    assert_ne!(theirs, expected);
    assert_eq!(
        DiscoveryKey::for_mesh(&founder.device_id(), &records[..3]),
        None
    );
}

proptest! {
    #[test]
    fn parse_never_panics(version in proptest::option::of(".{0,8}"), tag in proptest::option::of(".{0,80}")) {
        let _ = Advert::parse(version.as_deref(), tag.as_deref());
    }

    #[test]
    fn random_adverts_match_nobody(bytes in proptest::collection::vec(any::<u8>(), ADVERT_LEN)) {
        let parsed = Advert::parse(Some("1"), Some(&hex_lower(&bytes))).unwrap();
        let members: Vec<DeviceId> = (0..8).map(device).collect();
        prop_assert_eq!(parsed.identify(&key(1), &members), None);
    }

    #[test]
    fn round_trip(nonce in any::<[u8; NONCE_LEN]>(), id in any::<[u8; 20]>(), aes: bool) {
        let k = key(7);
        let d = DeviceId::from_bytes(id);
        let advert = Advert::new(&k, &d, Flags { aes }, nonce);
        let parsed = parse_txt(&advert.txt()).unwrap();
        prop_assert_eq!(parsed.identify(&k, &[device(0), d]), Some((d, Flags { aes })));
    }
}
