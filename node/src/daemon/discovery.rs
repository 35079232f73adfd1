//! Finding the other members of the mesh on the LAN with mDNS (`mdns-sd`).
//!
//! [`Discovery`] advertises this node under `_photomesh._udp.local.` with the port its QUIC
//! endpoint listens on and the host's current addresses (re-read by `mdns-sd` every few
//! seconds, so a DHCP change or a new interface is announced), and browses for the adverts of
//! others. Every advert it resolves is matched against the current members — re-read through
//! the caller's closure at every advert and every [`RECHECK`], since devices are introduced
//! and revoked while the node runs — and each member found is reported with its addresses
//! through the caller's `on_found(device, addresses)`, again whenever its addresses change.
//! The mesh's discovery keys are re-read the same way: after a revocation the node advertises
//! under the new key, and still recognises adverts under the older ones.
//!
//! What is in an advert, and why a stranger can do nothing with it, is specified in
//! `protocol/DISCOVERY.md`; the format lives in `photomesh_protocol::discovery`. This module
//! only does the I/O. It does not dial: the connection manager does, from what it is told.
//! Advertising and browsing are switched separately ([`Settings`]); with both off no socket
//! is opened. Dropping a [`Discovery`] withdraws the advert (a DNS-SD goodbye) and stops the
//! `mdns-sd` thread and the browser thread.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mdns_sd::{ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo};
use photomesh_protocol::discovery::{
    Advert, AdvertNames, DiscoveryKey, DiscoveryKeys, Flags, NONCE_LEN, SERVICE_TYPE, TAG_KEY,
    VERSION_KEY,
};
use photomesh_protocol::identity::DeviceId;
use tracing::{debug, info, trace, warn};

use crate::home::Home;
use crate::mesh::{self, MeshError};

/// How often adverts not (or no longer) matched are checked again against the members.
pub const RECHECK: Duration = Duration::from_secs(1);
/// How often `mdns-sd` re-reads the host's addresses (its default is 5 s).
const ADDRESS_CHECK_SECS: u32 = 2;
/// How long a drop waits for the goodbye and for `mdns-sd` to stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// What discovery does; the configuration keys are `discovery.advertise` and
/// `discovery.browse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Publish this node's advert, so members on the LAN can find it.
    pub advertise: bool,
    /// Look for members' adverts, and report them.
    pub browse: bool,
}

impl Default for Settings {
    /// Both on.
    fn default() -> Self {
        Self {
            advertise: true,
            browse: true,
        }
    }
}

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// `mdns-sd` refused (no usable interface, port 5353 not available, …).
    #[error(
        "mDNS discovery could not start: {0}; turn it off with `discovery.advertise = false` and \
         `discovery.browse = false`, and add peers by address"
    )]
    Mdns(#[from] mdns_sd::Error),
    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
    /// The browser thread could not be started.
    #[error("cannot start the mDNS browser thread: {0}")]
    Thread(std::io::Error),
    /// The membership records could not be read.
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// The index holds no founding record for the mesh.
    #[error("the membership records hold no founding record for this mesh; is the index damaged?")]
    NoFoundingRecord,
}

/// This device's mesh's discovery keys, from the membership records in its index.
pub fn keys(home: &Home) -> Result<DiscoveryKeys, DiscoveryError> {
    let founder = mesh::founder(home)?;
    let records = mesh::records(home)?;
    DiscoveryKeys::for_mesh(&founder, &records).ok_or(DiscoveryError::NoFoundingRecord)
}

/// Looks on the LAN for the members of the home's mesh, without advertising, for at most
/// `wait` or until every other member was found (what a restore with no node running does
/// to find devices it has no address for). Returns what was found; nothing when mDNS is not
/// available (that is not an error: the caller still has the addresses it knows).
pub fn browse_members(
    home: &Home,
    wait: Duration,
) -> std::collections::HashMap<DeviceId, Vec<SocketAddr>> {
    use std::sync::mpsc;
    let me = home.device.device_id();
    let members: Vec<DeviceId> = match mesh::trust_set(home) {
        Ok(trust) => trust.devices().map(|m| m.device).collect(),
        Err(_) => return Default::default(),
    };
    let others = members.iter().filter(|d| **d != me).count();
    let Ok(keys) = keys(home) else {
        return Default::default();
    };
    if others == 0 {
        return Default::default();
    }
    let (tx, rx) = mpsc::channel();
    let listed = members.clone();
    let started = Discovery::start(
        me,
        move || keys.clone(),
        0,
        Settings {
            advertise: false,
            browse: true,
        },
        move || listed.clone(),
        move |device, addrs| {
            let _ = tx.send((device, addrs));
        },
    );
    let Ok(discovery) = started else {
        return Default::default();
    };
    let mut found = std::collections::HashMap::new();
    let until = std::time::Instant::now() + wait;
    while found.len() < others {
        let Some(left) = until.checked_duration_since(std::time::Instant::now()) else {
            break;
        };
        match rx.recv_timeout(left) {
            Ok((device, addrs)) => {
                found.insert(device, addrs);
            }
            Err(_) => break,
        }
    }
    drop(discovery);
    found
}

/// The running discovery service. Drop it to stop.
pub struct Discovery {
    daemon: Option<ServiceDaemon>,
    advert_fullname: Option<String>,
    stop: Arc<AtomicBool>,
    browser: Option<JoinHandle<()>>,
}

/// This node's advert, kept so that it can be published again under a new key.
struct Advertiser {
    daemon: ServiceDaemon,
    me: DeviceId,
    names: AdvertNames,
    port: u16,
    flags: Flags,
    nonce: [u8; NONCE_LEN],
    /// The key it is published under.
    key: DiscoveryKey,
}

impl Advertiser {
    /// Publishes the advert under `self.key` (again: the same names, a new tag); returns its
    /// full name.
    fn publish(&self) -> Result<String, DiscoveryError> {
        let advert = Advert::new(&self.key, &self.me, self.flags, self.nonce);
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            &self.names.instance,
            &self.names.host,
            (),
            self.port,
            &advert.txt()[..],
        )?
        .enable_addr_auto();
        let fullname = info.get_fullname().to_owned();
        self.daemon.register(info)?;
        Ok(fullname)
    }

    /// Publishes the advert again if the mesh's newest key is not the one it is under.
    fn follow(&mut self, keys: &DiscoveryKeys) {
        if *keys.current() == self.key {
            return;
        }
        self.key = keys.current().clone();
        match self.publish() {
            Ok(_) => info!("advertising under the mesh's new discovery key (a device was revoked)"),
            Err(e) => warn!("could not advertise under the mesh's new discovery key: {e}"),
        }
    }
}

impl Discovery {
    /// Starts advertising `me` (listening on `port`) and/or browsing, as `settings` say.
    /// `keys` returns the mesh's discovery keys and `members` the current members' device
    /// IDs (it may include `me`); both are called from the discovery thread at every advert
    /// and every [`RECHECK`], so keep them cheap — e.g. a read of the node's trust set.
    /// `on_found` is called from that thread for each member found, and again when the
    /// addresses it advertises change.
    pub fn start<K, M, F>(
        me: DeviceId,
        keys: K,
        port: u16,
        settings: Settings,
        members: M,
        on_found: F,
    ) -> Result<Self, DiscoveryError>
    where
        K: Fn() -> DiscoveryKeys + Send + 'static,
        M: Fn() -> Vec<DeviceId> + Send + 'static,
        F: FnMut(DeviceId, Vec<SocketAddr>) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let mut discovery = Self {
            daemon: None,
            advert_fullname: None,
            stop: stop.clone(),
            browser: None,
        };
        if !settings.advertise && !settings.browse {
            info!("mDNS discovery is off");
            return Ok(discovery);
        }
        let daemon = ServiceDaemon::new()?;
        daemon.set_ip_check_interval(ADDRESS_CHECK_SECS)?;
        // Dropping `discovery` from here on shuts the daemon down.
        discovery.daemon = Some(daemon.clone());

        let mut advertiser = None;
        if settings.advertise {
            let mut random = [0u8; NONCE_LEN + 8];
            getrandom::fill(&mut random).map_err(|e| DiscoveryError::Random(e.to_string()))?;
            let mut nonce = [0u8; NONCE_LEN];
            nonce.copy_from_slice(&random[..NONCE_LEN]);
            let mut name_bytes = [0u8; 8];
            name_bytes.copy_from_slice(&random[NONCE_LEN..]);
            let names = AdvertNames::new(name_bytes);
            let instance = names.instance.clone();
            let publisher = Advertiser {
                daemon: daemon.clone(),
                me,
                names,
                port,
                flags: Flags {
                    aes: crate::net::transport::has_aes_hardware(),
                },
                nonce,
                key: keys().current().clone(),
            };
            discovery.advert_fullname = Some(publisher.publish()?);
            info!(%instance, port, "advertising on mDNS");
            advertiser = Some(publisher);
        }

        let events = if settings.browse {
            info!("browsing mDNS for members");
            Some(daemon.browse(SERVICE_TYPE)?)
        } else {
            None
        };
        let mut browser = Browser {
            me,
            keys,
            own: discovery.advert_fullname.clone(),
            members,
            on_found,
            seen: BTreeMap::new(),
        };
        let handle = std::thread::Builder::new()
            .name("photomesh-discovery".into())
            .spawn(move || {
                let mut followed = std::time::Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    match &events {
                        Some(events) => match events.recv_timeout(RECHECK) {
                            Ok(event) => browser.handle(event),
                            // Disconnected: the daemon has shut down.
                            Err(_) if events.is_disconnected() => break,
                            Err(_) => browser.recheck(),
                        },
                        None => std::thread::sleep(RECHECK),
                    }
                    // Once a RECHECK, however busy the LAN's adverts keep the thread.
                    if let Some(advertiser) = &mut advertiser
                        && followed.elapsed() >= RECHECK
                    {
                        followed = std::time::Instant::now();
                        advertiser.follow(&(browser.keys)());
                    }
                }
                debug!("mDNS discovery thread stopped");
            })
            .map_err(DiscoveryError::Thread)?;
        discovery.browser = Some(handle);
        Ok(discovery)
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(daemon) = self.daemon.take() {
            if let Some(fullname) = self.advert_fullname.take() {
                // A goodbye, so members forget this advert now rather than at its TTL.
                if let Ok(done) = daemon.unregister(&fullname) {
                    let _ = done.recv_timeout(SHUTDOWN_WAIT);
                }
            }
            match daemon.shutdown() {
                Ok(done) => {
                    let _ = done.recv_timeout(SHUTDOWN_WAIT);
                }
                Err(e) => warn!("mDNS daemon did not shut down cleanly: {e}"),
            }
        }
        if let Some(browser) = self.browser.take() {
            let _ = browser.join();
        }
    }
}

/// One advert seen on the LAN.
struct Seen {
    advert: Advert,
    addresses: Vec<SocketAddr>,
    /// The member it matched and the addresses reported with it, if any.
    reported: Option<(DeviceId, Vec<SocketAddr>)>,
}

/// The browser thread's state.
struct Browser<K, M, F> {
    me: DeviceId,
    keys: K,
    own: Option<String>,
    members: M,
    on_found: F,
    /// Adverts by instance full name.
    seen: BTreeMap<String, Seen>,
}

impl<K, M, F> Browser<K, M, F>
where
    K: Fn() -> DiscoveryKeys,
    M: Fn() -> Vec<DeviceId>,
    F: FnMut(DeviceId, Vec<SocketAddr>),
{
    fn handle(&mut self, event: ServiceEvent) {
        match event {
            ServiceEvent::ServiceResolved(service) => self.resolved(&service),
            ServiceEvent::ServiceRemoved(_, fullname) => {
                trace!(%fullname, "advert withdrawn");
                self.seen.remove(&fullname);
            }
            _ => {}
        }
    }

    fn resolved(&mut self, service: &ResolvedService) {
        let txt = &service.txt_properties;
        self.advert(
            &service.fullname,
            txt.get_property_val_str(VERSION_KEY),
            txt.get_property_val_str(TAG_KEY),
            socket_addresses(service.get_addresses(), service.port),
        );
    }

    /// An advert resolved: instance `fullname`, TXT values `v` and `t`, its addresses.
    fn advert(
        &mut self,
        fullname: &str,
        version: Option<&str>,
        tag: Option<&str>,
        addresses: Vec<SocketAddr>,
    ) {
        if self.own.as_deref() == Some(fullname) {
            return;
        }
        let advert = match Advert::parse(version, tag) {
            Ok(advert) => advert,
            Err(e) => {
                debug!(%fullname, "ignoring an mDNS advert: {e}");
                return;
            }
        };
        trace!(%fullname, ?addresses, "advert resolved");
        let entry = self
            .seen
            .entry(fullname.to_owned())
            .or_insert_with(|| Seen {
                advert,
                addresses: Vec::new(),
                reported: None,
            });
        if entry.advert != advert {
            // Same instance name, new advert: a restart that drew the same name (or a
            // spoof); judge it afresh.
            entry.advert = advert;
            entry.reported = None;
        }
        entry.addresses = addresses;
        let (keys, members) = ((self.keys)(), (self.members)());
        Self::match_one(&self.me, &keys, &members, entry, &mut self.on_found);
    }

    /// Matches every advert again against the current members.
    fn recheck(&mut self) {
        if self.seen.is_empty() {
            return;
        }
        let (keys, members) = ((self.keys)(), (self.members)());
        for entry in self.seen.values_mut() {
            Self::match_one(&self.me, &keys, &members, entry, &mut self.on_found);
        }
    }

    fn match_one(
        me: &DeviceId,
        keys: &DiscoveryKeys,
        members: &[DeviceId],
        entry: &mut Seen,
        on_found: &mut F,
    ) {
        let others: Vec<&DeviceId> = members.iter().filter(|d| *d != me).collect();
        let found = entry.advert.identify_any(keys, &others);
        let Some((device, flags)) = found else {
            entry.reported = None;
            return;
        };
        if entry.addresses.is_empty() {
            return;
        }
        let report = (device, entry.addresses.clone());
        if entry.reported.as_ref() != Some(&report) {
            debug!(device = %device.short(), addresses = ?report.1, aes = flags.aes, "member found on mDNS");
            on_found(device, report.1.clone());
            entry.reported = Some(report);
        }
    }
}

/// The addresses of an advert as socket addresses: IPv4 first, then IPv6 (a link-local one
/// with its interface), each list sorted.
fn socket_addresses<'a>(ips: impl IntoIterator<Item = &'a ScopedIp>, port: u16) -> Vec<SocketAddr> {
    let mut addresses: Vec<SocketAddr> = ips
        .into_iter()
        .map(|ip| match ip {
            ScopedIp::V6(v6) if v6.addr().is_unicast_link_local() => {
                SocketAddr::V6(SocketAddrV6::new(*v6.addr(), port, 0, v6.scope_id().index))
            }
            other => SocketAddr::new(other.to_ip_addr(), port),
        })
        .filter(|a| !a.ip().is_unspecified() && !a.ip().is_multicast())
        .collect();
    addresses.sort_by_key(|a| (matches!(a.ip(), IpAddr::V6(_)), *a));
    addresses.dedup();
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_put_ipv4_first_sorted_without_unspecified() {
        let ips: Vec<ScopedIp> = ["fe80::1", "10.0.0.2", "2001:db8::1", "10.0.0.1", "0.0.0.0"]
            .iter()
            .map(|s| ScopedIp::from(s.parse::<IpAddr>().unwrap()))
            .collect();
        let got = socket_addresses(&ips, 4000);
        let shown: Vec<String> = got.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            shown,
            [
                "10.0.0.1:4000",
                "10.0.0.2:4000",
                "[2001:db8::1]:4000",
                "[fe80::1]:4000"
            ]
        );
    }

    #[test]
    fn both_off_opens_nothing_and_drops_cleanly() {
        let d = Discovery::start(
            device(1),
            || DiscoveryKeys::one(test_key(1)),
            1,
            Settings {
                advertise: false,
                browse: false,
            },
            Vec::new,
            |_, _| {},
        )
        .unwrap();
        assert!(d.daemon.is_none() && d.browser.is_none());
    }

    fn test_key(byte: u8) -> DiscoveryKey {
        DiscoveryKey::from_founding_record(&photomesh_protocol::record::RecordId([byte; 32]))
    }

    fn device(byte: u8) -> DeviceId {
        DeviceId::from_bytes([byte; 20])
    }

    type Reports = std::rc::Rc<std::cell::RefCell<Vec<(DeviceId, Vec<SocketAddr>)>>>;
    type Members = std::rc::Rc<std::cell::RefCell<Vec<DeviceId>>>;
    type TestBrowser = Browser<
        Box<dyn Fn() -> DiscoveryKeys>,
        Box<dyn Fn() -> Vec<DeviceId>>,
        Box<dyn FnMut(DeviceId, Vec<SocketAddr>)>,
    >;

    /// A browser for device 1 of mesh 1, with the given members, recording what it reports.
    fn browser(members: &[u8]) -> (TestBrowser, Members, Reports) {
        let current: Members = std::rc::Rc::new(std::cell::RefCell::new(
            members.iter().map(|b| device(*b)).collect(),
        ));
        let reports: Reports = Default::default();
        let (m, r) = (current.clone(), reports.clone());
        let browser: TestBrowser = Browser {
            me: device(1),
            keys: Box::new(|| DiscoveryKeys::one(test_key(1))),
            own: Some("pm-own._photomesh._udp.local.".into()),
            members: Box::new(move || m.borrow().clone()),
            on_found: Box::new(move |d, a| r.borrow_mut().push((d, a))),
            seen: BTreeMap::new(),
        };
        (browser, current, reports)
    }

    fn txt(mesh: u8, who: u8, nonce: u8) -> String {
        let advert = Advert::new(&test_key(mesh), &device(who), Flags::default(), [nonce; 16]);
        let [_, (_, t)] = advert.txt();
        t
    }

    fn addr(s: &str) -> Vec<SocketAddr> {
        vec![s.parse().unwrap()]
    }

    #[test]
    fn a_member_is_reported_once_and_again_when_its_addresses_change() {
        let (mut b, _, reports) = browser(&[1, 2]);
        let t = txt(1, 2, 7);
        b.advert("x", Some("1"), Some(&t), addr("10.0.0.2:5000"));
        b.advert("x", Some("1"), Some(&t), addr("10.0.0.2:5000"));
        b.recheck();
        b.advert("x", Some("1"), Some(&t), addr("10.0.0.9:5000"));
        assert_eq!(
            *reports.borrow(),
            [
                (device(2), addr("10.0.0.2:5000")),
                (device(2), addr("10.0.0.9:5000"))
            ]
        );
    }

    #[test]
    fn itself_other_meshes_strangers_and_garbage_are_not_reported() {
        let (mut b, _, reports) = browser(&[1, 2]);
        // Its own advert under its own instance name, and under another one.
        b.advert(
            "pm-own._photomesh._udp.local.",
            Some("1"),
            Some(&txt(1, 1, 1)),
            addr("10.0.0.1:1"),
        );
        b.advert("copy", Some("1"), Some(&txt(1, 1, 2)), addr("10.0.0.1:1"));
        // A member's ID in another mesh; a non-member; malformed adverts.
        b.advert("other", Some("1"), Some(&txt(2, 2, 3)), addr("10.0.0.2:1"));
        b.advert(
            "stranger",
            Some("1"),
            Some(&txt(1, 3, 4)),
            addr("10.0.0.3:1"),
        );
        b.advert("bad", Some("1"), Some("zz"), addr("10.0.0.4:1"));
        b.advert("new", Some("2"), Some(&txt(1, 2, 5)), addr("10.0.0.5:1"));
        b.advert("none", None, None, addr("10.0.0.6:1"));
        b.recheck();
        assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    }

    #[test]
    fn a_device_introduced_later_is_reported_and_a_withdrawn_advert_forgotten() {
        let (mut b, members, reports) = browser(&[1]);
        b.advert("x", Some("1"), Some(&txt(1, 2, 7)), addr("10.0.0.2:5000"));
        b.recheck();
        assert!(reports.borrow().is_empty());
        members.borrow_mut().push(device(2));
        b.recheck();
        assert_eq!(*reports.borrow(), [(device(2), addr("10.0.0.2:5000"))]);
        // Revoked, then introduced again: reported again.
        members.borrow_mut().pop();
        b.recheck();
        members.borrow_mut().push(device(2));
        b.recheck();
        assert_eq!(reports.borrow().len(), 2);
        // Withdrawn: nothing more is reported for it.
        b.handle(ServiceEvent::ServiceRemoved(
            SERVICE_TYPE.into(),
            "x".into(),
        ));
        assert!(b.seen.is_empty());
    }
}
