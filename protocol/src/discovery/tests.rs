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
    // After one revocation (regression vector: `DiscoveryKey::rotated`).
    assert_eq!(
        hex_lower(k.rotated(&RecordId([0x55; 32])).as_bytes()),
        "94e96b352462985a2c34570f9a39cc5d8d704a27ea1cfb12700964dbc624bc1a"
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

#[test]
fn every_revocation_rotates_the_key_and_a_revoked_device_recognises_nobody_after() {
    let founder = DeviceKeys::from_secrets([1; 32], [2; 32]);
    let (nas, phone, tablet) = (
        DeviceKeys::from_secrets([3; 32], [4; 32]),
        DeviceKeys::from_secrets([5; 32], [6; 32]),
        DeviceKeys::from_secrets([7; 32], [8; 32]),
    );
    let sign = |signer: &DeviceKeys, statement| MembershipRecord::sign(signer, statement).unwrap();
    let introduce = |who: &DeviceKeys, at| {
        sign(
            &founder,
            Statement::Introduce(Introduce {
                signing_key: who.signing_public(),
                noise_key: who.noise_public(),
                role: Role::Full,
                name: "x".into(),
                created_at_ms: at,
            }),
        )
    };
    let revoke = |signer: &DeviceKeys, who: &DeviceKeys, at| {
        sign(
            signer,
            Statement::Revoke(Revoke {
                device: who.device_id(),
                keep: vec![],
                created_at_ms: at,
            }),
        )
    };
    let f = founder.device_id();
    let before = vec![
        introduce(&founder, 1),
        introduce(&nas, 2),
        introduce(&phone, 3),
        introduce(&tablet, 4),
    ];
    let k0 = DiscoveryKeys::for_mesh(&f, &before).unwrap();
    assert_eq!(
        k0,
        DiscoveryKeys::one(DiscoveryKey::for_mesh(&f, &before).unwrap())
    );

    // The phone is revoked: one more key, derived from that revocation's record.
    let phone_out = revoke(&founder, &phone, 10);
    let mut after = before.clone();
    after.push(phone_out.clone());
    let k1 = DiscoveryKeys::for_mesh(&f, &after).unwrap();
    assert_eq!(k1.newest_first().count(), 2);
    assert_eq!(*k1.current(), k0.current().rotated(&phone_out.record_id));
    // A record order or a copy changes nothing.
    let mut shuffled = after.clone();
    shuffled.reverse();
    shuffled.push(phone_out.clone());
    assert_eq!(DiscoveryKeys::for_mesh(&f, &shuffled), Some(k1.clone()));

    let members = [&nas.device_id(), &founder.device_id()];
    let nas_advert = Advert::new(k1.current(), &nas.device_id(), Flags::default(), [1; 16]);
    // The phone holds the records up to its revocation, not that one: it knows only the
    // old key, and the NAS's advert is random bytes to it.
    assert_eq!(nas_advert.identify_any(&k0, &members), None);
    // A member that has heard of it recognises the NAS; and a member that has not yet heard
    // of it is still recognised under the key before.
    assert_eq!(
        nas_advert.identify_any(&k1, &members).map(|(d, _)| d),
        Some(nas.device_id())
    );
    let late = Advert::new(
        k0.current(),
        &founder.device_id(),
        Flags::default(),
        [2; 16],
    );
    assert_eq!(
        late.identify_any(&k1, &members).map(|(d, _)| d),
        Some(founder.device_id())
    );

    // A revocation signed by the revoked phone itself counts for nothing: no new key. A
    // second genuine one: a third key.
    let mut more = after.clone();
    more.push(revoke(&phone, &nas, 11));
    assert_eq!(DiscoveryKeys::for_mesh(&f, &more), Some(k1.clone()));
    let tablet_out = revoke(&founder, &tablet, 12);
    more.push(tablet_out.clone());
    let k2 = DiscoveryKeys::for_mesh(&f, &more).unwrap();
    assert_eq!(*k2.current(), k1.current().rotated(&tablet_out.record_id));
    assert_eq!(k2.newest_first().count(), 3);
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
