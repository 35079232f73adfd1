//! Pairing: `photomesh pair` on a device in the mesh, `photomesh join` on the new one.
//!
//! The inviter makes a one-time secret and shows it in a pairing code (QR and text), then
//! listens. The joiner connects with `Noise_IKpsk1` — the inviter's Noise key and the
//! secret both come from the code, so a wrong secret fails at the inviter on the very first
//! handshake message and nobody who merely saw the inviter on the network can pair. Over that
//! channel the joiner proves its Ed25519 key (a signature binding it to its Noise key and the
//! inviter's) and names itself; the inviter signs an *introduce* record and answers with every
//! membership record, the mesh's founder, and — for a `full` joiner only — the library keys.
//! The joiner checks that the records make it a member with the offered role and the inviter
//! a full member before it stores anything, and says whether it joined; the inviter stores
//! the introduction only when it did. The PSK is derived from the whole code, so a code with
//! a field changed (the role, say) fails the handshake. The exchange is specified in
//! `protocol/PAIRING.md`.
//!
//! A code works once: `pair` stops after the first successful join, and the secret dies with
//! the process. A failed attempt (wrong secret, bad request) does not end the invitation.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use photomesh_protocol::identity::{DeviceId, verify_signature};
use photomesh_protocol::keys::KeyRing;
use photomesh_protocol::membership::{MembershipRecord, Role, TrustSet};
use photomesh_protocol::messages::{JoinConfirm, JoinRequest, JoinResponse, join_proof_message};
use photomesh_protocol::nquic::{NoiseKey, Suite};
use photomesh_protocol::pairing::{PairingCode, PairingCodeError};

use crate::clock::now_ms;
use crate::home::{Home, HomeError};
use crate::index::IndexError;
use crate::mesh::qr::{self, QrError};
use crate::mesh::{self, MeshError, MeshTrust};
use crate::net::close::Close;
use crate::net::dial::{self, DialError, DialFailure};
use crate::net::frame::{self, NetError};
use crate::net::transport;

/// How long a joiner tries one address of the inviter before the next.
pub const JOIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the inviter waits for the joiner to say it stored the welcome.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the joiner waits for the inviter to close after its confirmation.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why pairing failed.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// The code is bad (typo, expired, other version…).
    #[error(transparent)]
    Code(#[from] PairingCodeError),
    /// The QR image could not be read.
    #[error(transparent)]
    Qr(#[from] QrError),
    /// Membership could not be read or changed.
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The key files could not be written.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// Talking to the other device failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The inviter refused.
    #[error("the inviting device refused: {0}")]
    Refused(String),
    /// The joiner found the welcome invalid; nothing was recorded.
    #[error("the joining device declined the welcome ({0}); it was not added")]
    Declined(String),
    /// The joiner did not confirm in time; nothing was recorded.
    #[error("the joining device did not say whether it joined within {0:?}; it was not added")]
    Unconfirmed(Duration),
    /// No address of the inviter answered.
    #[error("could not reach the inviting device:\n{0}")]
    Unreachable(String),
    /// The inviter's answer does not check out; nothing was stored.
    #[error("the inviting device's answer is not valid ({0}); nothing was changed")]
    BadWelcome(String),
    /// This device already belongs to a mesh or holds photos.
    #[error("{0}")]
    NotFresh(String),
    /// Nobody joined before the code expired.
    #[error("the code expired and no device joined; run `photomesh pair` again to make a new one")]
    Expired,
}

/// What `pair` prints as it goes.
pub trait PairObserver {
    /// The code is ready to be shown.
    fn ready(&mut self, code: &PairingCode, text: &str, listening: SocketAddr);
    /// An attempt failed; the invitation goes on.
    fn attempt_failed(&mut self, why: &str);
}

/// What a successful pairing added.
#[derive(Debug, serde::Serialize)]
pub struct Joined {
    /// The new member's device ID.
    pub device_id: String,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: &'static str,
}

/// Options of `photomesh pair`.
pub struct PairOptions<'a> {
    /// The role offered.
    pub role: Role,
    /// How long the code works.
    pub expires_in: Duration,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where to write the QR code as a PNG, if anywhere.
    pub png: Option<&'a Path>,
}

/// Invites one device: shows a code, waits for it to join, introduces it.
pub async fn pair(
    home: &Home,
    options: PairOptions<'_>,
    observer: &mut dyn PairObserver,
) -> Result<Joined, PairingError> {
    if mesh::my_role(home)? != Some(Role::Full) {
        return Err(MeshError::NotFull("vault or revoked").into());
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| PairingError::Net(NetError::Connection(format!("no randomness: {e}"))))?;
    let trust = Arc::new(MeshTrust::new(mesh::trust_set(home)?));
    let mut code = PairingCode {
        role: options.role,
        noise_key: home.device.noise_public(),
        secret,
        expires_at: now_ms() / 1000 + options.expires_in.as_secs(),
        port: 0,
        addresses: Vec::new(),
    };
    // Bound first: the port and addresses are part of the code, and so of the PSK.
    let endpoint = transport::endpoint(options.listen, None).map_err(|source| NetError::Bind {
        addr: options.listen,
        source,
    })?;
    let local = endpoint.local_addr().map_err(|source| NetError::Bind {
        addr: options.listen,
        source,
    })?;
    code.port = local.port();
    code.addresses = if local.ip().is_unspecified() {
        frame::local_addresses()
    } else {
        vec![local.ip()]
    };
    code.addresses
        .truncate(photomesh_protocol::pairing::MAX_ADDRESSES);
    endpoint.set_server_config(Some(transport::server_config(
        home.device.noise_secret(),
        trust,
        Some(code.psk()),
        None,
        transport::os_random(),
    )));
    let text = code.to_string();
    if let Some(png) = options.png {
        qr::write_png(&text, png)?;
    }
    observer.ready(&code, &text, local);

    let deadline = tokio::time::Instant::now() + options.expires_in;
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            () = tokio::time::sleep_until(deadline) => {
                Close::Done.close_endpoint(&endpoint);
                return Err(PairingError::Expired);
            }
        };
        let Some(incoming) = incoming else {
            return Err(PairingError::Expired);
        };
        let remote = transport::canonical(incoming.remote_address());
        let connection = match incoming.await {
            Ok(c) => c,
            Err(e) => {
                observer.attempt_failed(&format!(
                    "a device at {remote} tried to pair and was refused: {e} (a wrong or old code)"
                ));
                continue;
            }
        };
        match welcome(home, &code, &connection).await {
            Ok(joined) => {
                Close::Done.close(&connection);
                Close::Done.close_endpoint(&endpoint);
                endpoint.wait_idle().await;
                return Ok(joined);
            }
            Err(why) => {
                observer.attempt_failed(&format!("pairing with {remote} failed: {why}"));
                Close::Refused.close(&connection);
            }
        }
    }
}

/// The inviter's side of one pairing conversation.
async fn welcome(
    home: &Home,
    code: &PairingCode,
    connection: &quinn::Connection,
) -> Result<Joined, PairingError> {
    let data = transport::handshake_data(connection)
        .ok_or_else(|| NetError::Connection("no handshake data".into()))?;
    if !data.pairing {
        return Err(PairingError::Refused("not a pairing connection".into()));
    }
    let peer_noise = data.peer.0;
    let (mut send, mut recv) = connection
        .accept_bi()
        .await
        .map_err(|e| NetError::Connection(e.to_string()))?;
    let request: JoinRequest = frame::read_frame(&mut recv).await?;
    let proof_ok = verify_signature(
        &request.signing_key,
        &join_proof_message(&peer_noise, &code.noise_key),
        &request.proof,
    );
    let joiner = DeviceId::from_signing_key(&request.signing_key);
    let trust = mesh::trust_set(home)?;
    let refusal = if !proof_ok {
        Some("the joining device's proof of its key does not verify")
    } else if trust.is_revoked(&joiner) {
        Some("this device was revoked from the mesh and cannot join again")
    } else if request.name.len() > photomesh_protocol::membership::MAX_NAME_LEN {
        Some("the device name is too long")
    } else {
        None
    };
    if let Some(reason) = refusal {
        let answer = JoinResponse::Refused {
            reason: reason.to_owned(),
        };
        frame::write_frame(&mut send, &answer).await?;
        let _ = send.finish();
        return Err(PairingError::Refused(reason.to_owned()));
    }
    let record = mesh::sign_introduce(
        home,
        request.signing_key,
        peer_noise,
        code.role,
        &request.name,
        now_ms(),
    )?;
    let mut membership = home.index.membership_records()?;
    membership.push(record.bytes.clone());
    let welcome = JoinResponse::Welcome {
        founder: mesh::founder(home)?,
        membership,
        role: code.role,
        library_keys: (code.role == Role::Full).then(|| home.keys.clone()),
    };
    frame::write_frame(&mut send, &welcome).await?;
    let _ = send.finish();
    // Recorded only once the joiner says it stored the welcome: a joiner that refuses it (or
    // vanishes) leaves no member behind that would never sync.
    let confirm: JoinConfirm = tokio::time::timeout(CONFIRM_TIMEOUT, frame::read_frame(&mut recv))
        .await
        .map_err(|_| PairingError::Unconfirmed(CONFIRM_TIMEOUT))??;
    if let JoinConfirm::Declined { reason } = confirm {
        return Err(PairingError::Declined(
            crate::shown::Shown(&reason).to_string(),
        ));
    }
    let now = now_ms();
    home.index.transaction(|ix| -> Result<(), PairingError> {
        ix.add_record(&record.record_id, &record.bytes, now)?;
        ix.set_seen(&joiner, now, None, None)?;
        Ok(())
    })?;
    // The recovery responder key (and, for a full joiner, the library keys) as shares: they
    // reach the new member through whichever member it syncs with first.
    if let Err(e) = mesh::shares::fill(home, now) {
        tracing::warn!("writing key shares for the new member: {e}");
    }
    Ok(Joined {
        device_id: joiner.to_string(),
        name: request.name,
        role: code.role.name(),
    })
}

/// Reads a pairing code from its text or from a PNG of its QR code.
pub fn read_code(text: Option<&str>, png: Option<&Path>) -> Result<PairingCode, PairingError> {
    let text = match (text, png) {
        (Some(t), _) => t.to_owned(),
        (None, Some(p)) => qr::read_png(p)?,
        (None, None) => {
            return Err(PairingError::Code(PairingCodeError::Length(0)));
        }
    };
    Ok(text.parse()?)
}

/// What `join` learned.
#[derive(Debug, serde::Serialize)]
pub struct JoinedMesh {
    /// The role this device was given.
    pub role: &'static str,
    /// The founder of the mesh.
    pub founder: String,
    /// The members, by name.
    pub members: Vec<String>,
}

/// Joins the mesh of the device that showed `code`.
pub async fn join(
    home: &mut Home,
    code: &PairingCode,
    force: bool,
    name: &str,
) -> Result<JoinedMesh, PairingError> {
    code.check_expiry(now_ms() / 1000)?;
    check_fresh(home, force)?;
    let mut failures = Vec::new();
    for ip in &code.addresses {
        let addr = SocketAddr::new(*ip, code.port);
        match try_join(home, code, addr, name).await {
            Ok(result) => return Ok(result),
            Err(PairingError::Unreachable(why)) => failures.push(format!("  {addr}: {why}")),
            Err(other) => return Err(other),
        }
    }
    if failures.is_empty() {
        failures.push("  the code holds no address".into());
    }
    Err(PairingError::Unreachable(failures.join("\n")))
}

fn check_fresh(home: &Home, force: bool) -> Result<(), PairingError> {
    let photos = home.index.photo_record_count()?;
    if photos > 0 {
        return Err(PairingError::NotFresh(format!(
            "this device already holds {photos} photo records sealed with its own library key; \
             joining another mesh would leave them unreadable there. Join from a freshly \
             initialised home (photomesh --home NEW_DIR init), then add the folders"
        )));
    }
    let others = mesh::trust_set(home)?
        .devices()
        .filter(|m| m.device != home.device.device_id())
        .count();
    if others > 0 && !force {
        return Err(PairingError::NotFresh(format!(
            "this device already belongs to a mesh with {others} other devices; \
             to leave it and join another, run join again with --leave-current-mesh"
        )));
    }
    Ok(())
}

async fn try_join(
    home: &mut Home,
    code: &PairingCode,
    addr: SocketAddr,
    name: &str,
) -> Result<JoinedMesh, PairingError> {
    let endpoint = dial::client_endpoint(&addr)?;
    let config = joiner_config(home, code);
    let connection = match dial::connect(&endpoint, config, addr, JOIN_CONNECT_TIMEOUT).await {
        Ok(c) => c,
        Err(DialError {
            failure: DialFailure::NoAnswer(_),
            ..
        }) => {
            return Err(PairingError::Unreachable(
                "no answer: is `photomesh pair` still running there? A code works once, \
                 and only until it expires"
                    .into(),
            ));
        }
        Err(e) if e.refused() => return Err(PairingError::Refused(e.describe(true))),
        Err(e) => return Err(PairingError::Unreachable(e.describe(true))),
    };
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(e.to_string()))?;
    let request = JoinRequest {
        signing_key: home.device.signing_public(),
        name: name.to_owned(),
        proof: home.device.sign(&join_proof_message(
            &home.device.noise_public(),
            &code.noise_key,
        )),
    };
    frame::write_frame(&mut send, &request).await?;
    let response: JoinResponse = frame::read_frame(&mut recv).await?;
    let outcome = match response {
        JoinResponse::Refused { reason } => Err(PairingError::Refused(
            crate::shown::Shown(&reason).to_string(),
        )),
        JoinResponse::Welcome {
            founder,
            membership,
            role,
            library_keys,
        } => accept_welcome(home, code, founder, &membership, role, library_keys),
    };
    // Tell the inviter whether this device joined (it records the member only then), and
    // let it close first so that the answer is not lost with the connection.
    let confirm = match &outcome {
        Ok(_) => Some(JoinConfirm::Joined),
        Err(PairingError::BadWelcome(why)) => Some(JoinConfirm::Declined {
            reason: why.clone(),
        }),
        Err(_) => None,
    };
    if let Some(confirm) = confirm
        && frame::write_frame(&mut send, &confirm).await.is_ok()
    {
        let _ = send.finish();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.closed()).await;
    }
    Close::Done.close(&connection);
    endpoint.wait_idle().await;
    outcome
}

/// The joiner's client configuration for the inviter that showed `code`: `IKpsk1` to its key,
/// with the code's PSK.
fn joiner_config(home: &Home, code: &PairingCode) -> quinn::ClientConfig {
    transport::client_config(
        home.device.noise_secret(),
        NoiseKey(code.noise_key),
        Suite::choose(transport::has_aes_hardware(), None),
        Some(code.psk()),
        transport::os_random(),
    )
}

/// Checks the inviter's answer and, only if it all holds, stores it.
fn accept_welcome(
    home: &mut Home,
    code: &PairingCode,
    founder: DeviceId,
    membership: &[Vec<u8>],
    role: Role,
    library_keys: Option<KeyRing>,
) -> Result<JoinedMesh, PairingError> {
    let bad = |why: &str| PairingError::BadWelcome(why.to_owned());
    let records: Vec<MembershipRecord> = membership
        .iter()
        .map(|b| MembershipRecord::decode(b))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&e.to_string()))?;
    let trust = TrustSet::evaluate(&founder, &records);
    let me = trust
        .get(&home.device.device_id())
        .ok_or_else(|| bad("it does not make this device a member"))?;
    if me.role != role || role != code.role {
        return Err(bad("the role given is not the role the code offered"));
    }
    let inviter = trust
        .by_noise_key(&code.noise_key)
        .ok_or_else(|| bad("the inviting device is not a member of its own mesh"))?;
    if inviter.role != Role::Full {
        return Err(bad("the inviting device is not a full member"));
    }
    let keys = match (role, library_keys) {
        (Role::Full, Some(keys)) if keys.current().is_some() => keys,
        (Role::Full, _) => return Err(bad("a full member needs the library key, and none came")),
        (Role::Vault, None) => KeyRing::default(),
        (Role::Vault, Some(_)) => return Err(bad("a vault must not receive the library key")),
        (Role::Recovery, _) => return Err(bad("no device joins as the recovery identity")),
    };
    let now = now_ms();
    let inviter_id = inviter.device;
    let founder_text = founder.to_string();
    let names = trust.members().map(|m| m.name.clone()).collect();
    // Keys first: if the process dies before the index commits, the device is still fresh
    // and can simply join again.
    home.keys = keys;
    home.save_keys()?;
    home.index.transaction(|ix| -> Result<(), PairingError> {
        for old in mesh::records(home)? {
            ix.remove_membership_record(&old.record_id)?;
        }
        for r in &records {
            ix.add_record(&r.record_id, &r.bytes, now)?;
        }
        ix.set_meta("founder", &founder_text)?;
        // Seen now; its address is not kept: `pair` listens on a port of its own, gone
        // once the pairing is over.
        ix.set_seen(&inviter_id, now, None, None)?;
        Ok(())
    })?;
    // The recovery key of the mesh of one this device founded at `init` recovers nothing now.
    home.forget_recovery_key()?;
    Ok(JoinedMesh {
        role: role.name(),
        founder: founder_text,
        members: names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::progress::Silent;

    /// What `pair` reported, in order.
    enum Seen {
        Ready(PairingCode),
        Failed(String),
    }

    struct Report(tokio::sync::mpsc::UnboundedSender<Seen>);

    impl PairObserver for Report {
        fn ready(&mut self, code: &PairingCode, _text: &str, _listening: SocketAddr) {
            let _ = self.0.send(Seen::Ready(code.clone()));
        }
        fn attempt_failed(&mut self, why: &str) {
            let _ = self.0.send(Seen::Failed(why.to_owned()));
        }
    }

    /// A joiner that reads the welcome and then declines it (`confirm`), or vanishes.
    async fn join_halfway(
        home: &Home,
        code: &PairingCode,
        confirm: Option<JoinConfirm>,
    ) -> JoinResponse {
        let addr = SocketAddr::new(code.addresses[0], code.port);
        let endpoint = dial::client_endpoint(&addr).unwrap();
        let connection = dial::connect(
            &endpoint,
            joiner_config(home, code),
            addr,
            JOIN_CONNECT_TIMEOUT,
        )
        .await
        .unwrap();
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        let request = JoinRequest {
            signing_key: home.device.signing_public(),
            name: "phone".into(),
            proof: home.device.sign(&join_proof_message(
                &home.device.noise_public(),
                &code.noise_key,
            )),
        };
        frame::write_frame(&mut send, &request).await.unwrap();
        let response: JoinResponse = frame::read_frame(&mut recv).await.unwrap();
        if let Some(confirm) = confirm {
            frame::write_frame(&mut send, &confirm).await.unwrap();
            let _ = send.finish();
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.closed()).await;
        }
        Close::Done.close(&connection);
        endpoint.wait_idle().await;
        response
    }

    fn members(home: &Home) -> usize {
        mesh::trust_set(home).unwrap().devices().count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_inviter_records_a_member_only_once_the_joiner_confirms() {
        let dir = tempfile::tempdir().unwrap();
        let laptop = mesh::create_device(&dir.path().join("laptop"), "laptop", None, 1).unwrap();
        let mut phone = mesh::create_device(&dir.path().join("phone"), "phone", None, 1).unwrap();
        let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let options = PairOptions {
            role: Role::Full,
            expires_in: Duration::from_secs(60),
            listen: "127.0.0.1:0".parse().unwrap(),
            png: None,
        };
        let mut report = Report(tx);
        let inviter = pair(&laptop, options, &mut report);
        let joiner = async {
            let Some(Seen::Ready(code)) = seen.recv().await else {
                panic!("pair did not show a code");
            };
            // Declined: the welcome came (with the phone's introduction in it) but nothing
            // is recorded, and the invitation goes on.
            let declined = JoinConfirm::Declined {
                reason: "not the mesh I meant\nINFO forged line".into(),
            };
            let welcome = join_halfway(&phone, &code, Some(declined)).await;
            assert!(matches!(welcome, JoinResponse::Welcome { .. }));
            let Some(Seen::Failed(why)) = seen.recv().await else {
                panic!("the declined attempt was not reported");
            };
            assert!(why.contains("declined") && why.contains("\\n"), "{why}");
            assert_eq!(members(&laptop), 1, "a declined joiner was recorded");
            // Gone after the welcome without a word: not recorded either.
            join_halfway(&phone, &code, None).await;
            let Some(Seen::Failed(_)) = seen.recv().await else {
                panic!("the vanished joiner was not reported");
            };
            assert_eq!(members(&laptop), 1, "a joiner that vanished was recorded");
            // The real join, confirmed: recorded on both sides.
            join(&mut phone, &code, false, "phone").await.unwrap()
        };
        let (joined, mesh) = tokio::join!(inviter, joiner);
        assert_eq!(joined.unwrap().name, "phone");
        assert_eq!(mesh.role, "full");
        assert_eq!(members(&laptop), 2);
        assert_eq!(members(&phone), 2);
    }

    #[test]
    fn a_code_is_read_from_text_or_refused_with_its_reason() {
        assert!(matches!(
            read_code(None, None),
            Err(PairingError::Code(PairingCodeError::Length(0)))
        ));
        assert!(matches!(
            read_code(Some("NOT-A-PAIRING-CODE"), None),
            Err(PairingError::Code(_))
        ));
        let missing = std::path::Path::new("/nonexistent/qr.png");
        assert!(matches!(
            read_code(None, Some(missing)),
            Err(PairingError::Qr(_))
        ));
    }

    #[test]
    fn only_a_fresh_device_joins_and_leaving_a_mesh_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::mesh::create_device(&dir.path().join("phone"), "phone", None, 1).unwrap();
        // A mesh of one, no photos: fresh.
        check_fresh(&home, false).unwrap();
        // Another member: it must be told to leave.
        let tablet =
            crate::mesh::create_device(&dir.path().join("tablet"), "tablet", None, 1).unwrap();
        crate::mesh::introduce(
            &home,
            tablet.device.signing_public(),
            tablet.device.noise_public(),
            Role::Full,
            "tablet",
            2,
        )
        .unwrap();
        assert!(matches!(
            check_fresh(&home, false),
            Err(PairingError::NotFresh(_))
        ));
        check_fresh(&home, true).unwrap();
        // Photos sealed with its own key: never, whatever it is told.
        let photos = dir.path().join("photos");
        crate::demo::samples::write_library(&photos, 1, 1).unwrap();
        crate::library::folders::add(&home, &photos, None).unwrap();
        crate::library::scan::scan(&home, &mut Silent).unwrap();
        let refused = check_fresh(&home, true).unwrap_err().to_string();
        assert!(refused.contains("photo records"), "{refused}");
    }
}
