//! The simulator: devices running real [`Session`]s over simulated links and a simulated
//! clock, with the faults a [`Scenario`] asks for, and the invariants checked at the end.
//!
//! Each device keeps a [`FingerprintTree`] of record items (its stored set, which survives a
//! crash) and reconciles with two random peers every couple of seconds. What a session reports
//! missing is fetched from that peer with a `Fetch` message and arrives in a `Records` message,
//! so a record is only held once it crossed the network. Time is microseconds since the start.
//!
//! Device 0 founds the mesh: its real signed membership records (an introduction of every
//! device as `full`) are among the initial records, and a scenario may have two devices
//! revoke each other at once; at the end every live device evaluates the trust set from the
//! membership records it holds, and all must agree.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use photomesh_protocol::identity::{DeviceId, DeviceKeys};
use photomesh_protocol::membership::{
    Introduce, MembershipRecord, Revoke, Role, Statement, TrustSet,
};
use photomesh_protocol::reconcile::{
    Bound, Config, Event, FingerprintTree, IdSum, Item, Session, Store,
};

use crate::{Scenario, SimRng};

/// The most devices a run may have.
pub const MAX_NODES: usize = 20;

/// Bytes a record takes in a `Records` message (a sealed record is a few hundred bytes).
const RECORD_SIZE: u64 = 300;
/// Bytes of framing around every message (stream headers, session ID).
const MESSAGE_OVERHEAD: u64 = 16;
/// Most items in one `Fetch` or `Records` message.
const FETCH_BATCH: usize = 500;
/// How often a device starts sessions, on average.
const SYNC_INTERVAL_US: u64 = 2_000_000;
/// Peers a device syncs with per interval.
const PEERS_PER_SYNC: usize = 2;
/// How long a fetch stays outstanding before the item may be asked for again.
const FETCH_RETRY_US: u64 = 10_000_000;
/// Simulated time allowed after the last disruption for the mesh to converge.
const CONVERGE_LIMIT_US: u64 = 600_000_000;
/// How long photos keep being added.
const ADD_WINDOW_US: u64 = 45_000_000;

/// A run's figures, printed when it converged (the command line prints the seed first).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The seed the run used.
    pub seed: u64,
    /// The scenario's name.
    pub scenario: &'static str,
    /// Devices in the run.
    pub nodes: usize,
    /// Records in the mesh at the end: every record ever added.
    pub records: u64,
    /// Simulated time when every live device held every record, in microseconds.
    pub converged_at_us: u64,
    /// Simulated time of the last disruption (add, heal, restart, join), in microseconds.
    pub last_disruption_us: u64,
    /// Per device: what it sent and received.
    pub devices: Vec<DeviceStats>,
}

/// What one device sent and received over the whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Bytes sent, reconciliation and record transfer together.
    pub bytes_sent: u64,
    /// Bytes of reconciliation frames sent.
    pub reconcile_bytes_sent: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Sessions that ended well.
    pub sessions_done: u64,
    /// Sessions that failed (timeouts, lost or stale frames).
    pub sessions_failed: u64,
}

/// Why a run failed: an invariant did not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The arguments do not describe a run.
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// Some live device still lacked records when the time limit passed.
    #[error("not converged after {limit_s} s of simulated time past the last disruption: {detail}")]
    NotConverged {
        /// The time limit, in seconds.
        limit_s: u64,
        /// Which devices lacked how many records.
        detail: String,
    },
    /// Two live devices evaluate different trust sets from their membership records.
    #[error("devices disagree on who is in the mesh: {0}")]
    TrustDiffers(String),
    /// A device holds a record that was never added (a forged or corrupted item).
    #[error("device {device} holds {count} records nobody added")]
    UnknownRecords {
        /// The device.
        device: usize,
        /// How many such records.
        count: usize,
    },
}

/// Runs `scenario` with `nodes` devices from `seed`, returning the figures if every
/// invariant held.
pub fn run(scenario: &Scenario, seed: u64, nodes: usize) -> Result<Report, Failure> {
    if !(2..=MAX_NODES).contains(&nodes) {
        return Err(Failure::BadArguments(format!(
            "--nodes must be 2 to {MAX_NODES}, got {nodes}"
        )));
    }
    let mut sim = Sim::new(scenario, seed, nodes);
    sim.run()
}

#[derive(Debug)]
enum Message {
    Reconcile { session_id: u64, frame: Vec<u8> },
    Abort { session_id: u64 },
    Fetch { items: Vec<Item> },
    Records { items: Vec<Item> },
}

impl Message {
    fn size(&self) -> u64 {
        MESSAGE_OVERHEAD
            + match self {
                Message::Reconcile { frame, .. } => frame.len() as u64,
                Message::Abort { .. } => 0,
                Message::Fetch { items } => items.len() as u64 * 40,
                Message::Records { items } => items.len() as u64 * RECORD_SIZE,
            }
    }
}

#[derive(Debug)]
enum Action {
    Deliver {
        from: usize,
        to: usize,
        message: Message,
    },
    Sync {
        device: usize,
    },
    AddPhoto {
        device: usize,
    },
    Crash {
        device: usize,
    },
    Restart {
        device: usize,
    },
    Join {
        device: usize,
    },
    Partition,
    Heal,
    /// Each device revokes the other, before either can hear of the other's revocation.
    RevokeEachOther {
        a: usize,
        b: usize,
    },
}

impl Action {
    /// Whether the action changes the mesh (so convergence is measured from the last one).
    fn is_disruption(&self) -> bool {
        !matches!(self, Action::Deliver { .. } | Action::Sync { .. })
    }
}

struct Device {
    alive: bool,
    store: FingerprintTree,
    /// Sessions by (peer, session ID).
    sessions: BTreeMap<(usize, u64), Session>,
    /// Items asked for, with when.
    requested: BTreeMap<Item, u64>,
    stats: DeviceStats,
}

struct Link {
    latency_us: u64,
    bytes_per_s: u64,
    /// When the link finishes sending what is queued on it.
    busy_until_us: u64,
}

struct Sim<'a> {
    scenario: &'a Scenario,
    seed: u64,
    rng: SimRng,
    now: u64,
    queue: BTreeMap<(u64, u64), Action>,
    next_seq: u64,
    devices: Vec<Device>,
    /// Directed links by (from, to).
    links: BTreeMap<(usize, usize), Link>,
    /// Every record ever added, the set every device must end with.
    all_records: BTreeSet<Item>,
    partitioned: bool,
    last_disruption: u64,
    /// Disruptions still in the queue; convergence is judged once none is left.
    disruptions_pending: usize,
    config: Config,
    /// Every device's keys, and the membership records by record ID.
    keys: Vec<DeviceKeys>,
    membership: BTreeMap<[u8; 32], MembershipRecord>,
}

impl<'a> Sim<'a> {
    fn new(scenario: &'a Scenario, seed: u64, nodes: usize) -> Self {
        let mut rng = SimRng::new(seed);
        let late = (scenario.late_joiners as usize).min(nodes - 1);
        let present = nodes - late;
        let mut initial: Vec<Vec<Item>> = vec![Vec::new(); nodes];
        let mut all_records = BTreeSet::new();
        for i in 0..scenario.initial_records {
            let item = Item::new(
                1_600_000_000_000 + i * 1_000 + rng.range(0, 1_000),
                rng.bytes32(),
            );
            all_records.insert(item);
            let owner = rng.range(0, present as u64) as usize;
            for (device, held) in initial.iter_mut().enumerate().take(present) {
                if device == owner || rng.chance(scenario.initial_share) {
                    held.push(item);
                }
            }
        }
        // The mesh: device 0 founds it and introduces every other device as a full member.
        let keys: Vec<DeviceKeys> = (0..nodes)
            .map(|_| DeviceKeys::from_secrets(rng.bytes32(), rng.bytes32()))
            .collect();
        let mut membership = BTreeMap::new();
        for (i, device) in keys.iter().enumerate() {
            let record = MembershipRecord::sign(
                &keys[0],
                Statement::Introduce(Introduce {
                    signing_key: device.signing_public(),
                    noise_key: device.noise_public(),
                    role: Role::Full,
                    name: format!("device {i}"),
                    created_at_ms: 1_500_000_000_000 + i as u64,
                }),
            );
            if let Ok(record) = record {
                let item = Item::new(record.timestamp_ms(), record.record_id.0);
                all_records.insert(item);
                for held in initial.iter_mut().take(present) {
                    held.push(item);
                }
                membership.insert(record.record_id.0, record);
            }
        }
        let devices = initial
            .into_iter()
            .enumerate()
            .map(|(device, items)| Device {
                alive: device < present,
                store: FingerprintTree::from_items(items),
                sessions: BTreeMap::new(),
                requested: BTreeMap::new(),
                stats: DeviceStats::default(),
            })
            .collect();
        let mut links = BTreeMap::new();
        for a in 0..nodes {
            for b in 0..nodes {
                if a != b {
                    let latency_us =
                        rng.range(scenario.latency_ms.0, scenario.latency_ms.1 + 1) * 1_000;
                    let bytes_per_s =
                        rng.range(scenario.bandwidth_kbps.0, scenario.bandwidth_kbps.1 + 1) * 1_000;
                    links.insert(
                        (a, b),
                        Link {
                            latency_us,
                            bytes_per_s,
                            busy_until_us: 0,
                        },
                    );
                }
            }
        }
        let config = Config {
            idle_timeout: Duration::from_secs(10),
            ..Config::default()
        };
        let mut sim = Sim {
            scenario,
            seed,
            rng,
            now: 0,
            queue: BTreeMap::new(),
            next_seq: 0,
            devices,
            links,
            all_records,
            partitioned: false,
            last_disruption: 0,
            disruptions_pending: 0,
            config,
            keys,
            membership,
        };
        sim.schedule_scenario(nodes, present);
        sim
    }

    fn schedule(&mut self, at: u64, action: Action) {
        if action.is_disruption() {
            self.disruptions_pending += 1;
        }
        self.queue.insert((at, self.next_seq), action);
        self.next_seq += 1;
    }

    fn schedule_scenario(&mut self, nodes: usize, present: usize) {
        let s = self.scenario;
        for device in 0..nodes {
            let at = self.rng.range(0, SYNC_INTERVAL_US);
            self.schedule(at, Action::Sync { device });
        }
        let sources: Vec<usize> = (0..3.min(present))
            .map(|_| self.rng.range(0, present as u64) as usize)
            .collect();
        for _ in 0..s.photos_added {
            let device = sources[self.rng.range(0, sources.len() as u64) as usize];
            let at = self.rng.range(0, ADD_WINDOW_US);
            self.schedule(at, Action::AddPhoto { device });
        }
        if let Some((start, end)) = s.partition_s {
            self.partitioned = start == 0;
            self.schedule(end * 1_000_000, Action::Heal);
            if start > 0 {
                self.schedule(start * 1_000_000, Action::Partition);
            }
        }
        for _ in 0..s.crashes.min(present as u64) {
            let device = self.rng.range(0, present as u64) as usize;
            let at = self.rng.range(1_000_000, ADD_WINDOW_US);
            let down = self.rng.range(1_000_000, 20_000_000);
            self.schedule(at, Action::Crash { device });
            self.schedule(at + down, Action::Restart { device });
        }
        for device in present..nodes {
            let at = self.rng.range(5_000_000, ADD_WINDOW_US);
            self.schedule(at, Action::Join { device });
        }
        if let Some(at_s) = s.revocation_race_s {
            // Device 1 and the first device of the other half (device 0, the founder, stays
            // out of it), which a partition keeps apart.
            let (a, b) = (1.min(nodes - 1), (nodes / 2).max(1));
            if a != b {
                self.schedule(at_s * 1_000_000, Action::RevokeEachOther { a, b });
            }
        }
    }

    fn run(&mut self) -> Result<Report, Failure> {
        let mut deadline = None;
        while let Some(((at, _), action)) = self.queue.pop_first() {
            self.now = at;
            if action.is_disruption() {
                self.last_disruption = self.now;
                self.disruptions_pending -= 1;
            }
            self.apply(action);
            if self.disruptions_pending == 0 {
                let limit = *deadline.get_or_insert(self.now + CONVERGE_LIMIT_US);
                if self.converged() {
                    return self.report();
                }
                if self.now > limit {
                    return Err(Failure::NotConverged {
                        limit_s: CONVERGE_LIMIT_US / 1_000_000,
                        detail: self.lacking(),
                    });
                }
            }
        }
        Err(Failure::NotConverged {
            limit_s: 0,
            detail: "the event queue ran dry".into(),
        })
    }

    fn converged(&self) -> bool {
        // Counts first: cheap, and they differ for most of a run.
        let total = self.all_records.len() as u64;
        if self
            .devices
            .iter()
            .any(|d| d.alive && d.store.len() != total)
        {
            return false;
        }
        let (count, sum) = self.all_sum();
        self.devices
            .iter()
            .filter(|d| d.alive)
            .all(|d| d.store.prefix(&Bound::MAX) == (count, sum))
    }

    fn all_sum(&self) -> (u64, IdSum) {
        let mut sum = IdSum::ZERO;
        self.all_records.iter().for_each(|item| sum.add_item(item));
        (self.all_records.len() as u64, sum)
    }

    fn lacking(&self) -> String {
        let mut out = Vec::new();
        for (i, device) in self.devices.iter().enumerate().filter(|(_, d)| d.alive) {
            let lacks = self
                .all_records
                .iter()
                .filter(|item| !device.store.contains(item))
                .count();
            if lacks > 0 {
                out.push(format!("device {i} lacks {lacks}"));
            }
        }
        out.join(", ")
    }

    fn report(&self) -> Result<Report, Failure> {
        // Equal sums are strong evidence; check item by item too, so the invariant is exact.
        for (device, d) in self.devices.iter().enumerate().filter(|(_, d)| d.alive) {
            let held: BTreeSet<Item> = d.store.items().into_iter().collect();
            let unknown = held.difference(&self.all_records).count();
            if unknown > 0 {
                return Err(Failure::UnknownRecords {
                    device,
                    count: unknown,
                });
            }
            if held.len() != self.all_records.len() {
                return Err(Failure::NotConverged {
                    limit_s: 0,
                    detail: self.lacking(),
                });
            }
        }
        // One trust set everywhere; after a race, exactly one of the two is revoked.
        let alive: Vec<usize> = (0..self.devices.len())
            .filter(|d| self.devices[*d].alive)
            .collect();
        if let Some(&first) = alive.first() {
            let expected = self.trust(first);
            for &device in &alive[1..] {
                if self.trust(device) != expected {
                    return Err(Failure::TrustDiffers(format!(
                        "device {device} and device {first} evaluate different trust sets"
                    )));
                }
            }
            let revoked = expected.1.len();
            let raced = self.scenario.revocation_race_s.is_some();
            let members = expected.0.len();
            if (raced && revoked != 1)
                || (!raced && revoked != 0)
                || members + revoked != self.devices.len()
            {
                return Err(Failure::TrustDiffers(format!(
                    "{members} members and {revoked} revoked of {} devices, where {} should be \
                     revoked",
                    self.devices.len(),
                    usize::from(raced)
                )));
            }
        }
        Ok(Report {
            seed: self.seed,
            scenario: self.scenario.name,
            nodes: self.devices.len(),
            records: self.all_records.len() as u64,
            converged_at_us: self.now,
            last_disruption_us: self.last_disruption,
            devices: self.devices.iter().map(|d| d.stats).collect(),
        })
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        let half = self.devices.len() / 2;
        self.devices[a].alive
            && self.devices[b].alive
            && !(self.partitioned && (a < half) != (b < half))
    }

    fn send(&mut self, from: usize, to: usize, message: Message) {
        let size = message.size();
        let stats = &mut self.devices[from].stats;
        stats.bytes_sent += size;
        stats.messages_sent += 1;
        if let Message::Reconcile { frame, .. } = &message {
            stats.reconcile_bytes_sent += frame.len() as u64;
        }
        if !self.reachable(from, to) || self.rng.chance(self.scenario.loss) {
            return;
        }
        // Drawn only when the scenario reorders, so that the others replay as before.
        let held_up = self.scenario.reorder > 0.0 && self.rng.chance(self.scenario.reorder);
        let jitter = if held_up { self.rng.range(1, 5) } else { 0 };
        let now = self.now;
        let Some(link) = self.links.get_mut(&(from, to)) else {
            return;
        };
        let start = link.busy_until_us.max(now);
        let transmit = size * 1_000_000 / link.bytes_per_s.max(1);
        link.busy_until_us = start + transmit;
        let at = start + transmit + link.latency_us * (1 + jitter);
        self.schedule(at, Action::Deliver { from, to, message });
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Deliver { from, to, message } => {
                if !self.reachable(from, to) {
                    return;
                }
                let stats = &mut self.devices[to].stats;
                stats.bytes_received += message.size();
                stats.messages_received += 1;
                self.receive(from, to, message);
            }
            Action::Sync { device } => {
                let next = self.now
                    + self
                        .rng
                        .range(SYNC_INTERVAL_US / 2, SYNC_INTERVAL_US * 3 / 2);
                self.schedule(next, Action::Sync { device });
                if self.devices[device].alive {
                    self.sync(device);
                }
            }
            Action::AddPhoto { device } => {
                if self.devices[device].alive {
                    let item = Item::new(1_700_000_000_000 + self.now / 1_000, self.rng.bytes32());
                    self.all_records.insert(item);
                    self.devices[device].store.insert(item);
                } else {
                    // The photo is taken once the device is back up.
                    let at = self.now + 1_000_000;
                    self.schedule(at, Action::AddPhoto { device });
                }
            }
            Action::Partition => self.partitioned = true,
            Action::Crash { device } => {
                let d = &mut self.devices[device];
                d.alive = false;
                d.sessions.clear();
                d.requested.clear();
            }
            Action::Restart { device } | Action::Join { device } => {
                self.devices[device].alive = true
            }
            Action::Heal => self.partitioned = false,
            Action::RevokeEachOther { a, b } => {
                self.revoke(a, b);
                self.revoke(b, a);
            }
        }
    }

    /// `by` signs a revocation of `target`, keeping nothing it signed, and stores it.
    fn revoke(&mut self, by: usize, target: usize) {
        let Ok(record) = MembershipRecord::sign(
            &self.keys[by],
            Statement::Revoke(Revoke {
                device: self.keys[target].device_id(),
                keep: Vec::new(),
                created_at_ms: 1_700_000_000_000 + self.now / 1_000,
            }),
        ) else {
            return;
        };
        let item = Item::new(record.timestamp_ms(), record.record_id.0);
        self.all_records.insert(item);
        self.devices[by].store.insert(item);
        self.membership.insert(record.record_id.0, record);
    }

    /// The trust set `device` evaluates from the membership records it holds: the members'
    /// device IDs, and the revoked ones.
    fn trust(&self, device: usize) -> (BTreeSet<DeviceId>, BTreeSet<DeviceId>) {
        let records: Vec<MembershipRecord> = self.devices[device]
            .store
            .items()
            .iter()
            .filter_map(|item| self.membership.get(&item.id).cloned())
            .collect();
        let trust = TrustSet::evaluate(&self.keys[0].device_id(), &records);
        let members = trust.members().map(|m| m.device).collect();
        let revoked = self
            .keys
            .iter()
            .map(DeviceKeys::device_id)
            .filter(|d| trust.is_revoked(d))
            .collect();
        (members, revoked)
    }

    /// Times out stale sessions and opens new ones with random peers.
    fn sync(&mut self, device: usize) {
        let now = Duration::from_micros(self.now);
        let mut ended = Vec::new();
        for (key, session) in &mut self.devices[device].sessions {
            session.handle_timeout(now);
            if session.error().is_some() || session.is_done() {
                ended.push(*key);
            }
        }
        for key in ended {
            self.end_session(device, key);
        }
        let nodes = self.devices.len();
        for _ in 0..PEERS_PER_SYNC {
            let peer = self.rng.range(0, nodes as u64 - 1) as usize;
            let peer = if peer >= device { peer + 1 } else { peer };
            if self.devices[device]
                .sessions
                .keys()
                .any(|(p, _)| *p == peer)
            {
                continue;
            }
            let session_id = self.rng.next_u64();
            let seed = self.rng.next_u64();
            let d = &mut self.devices[device];
            let Ok(session) = Session::initiate(self.config.clone(), seed, now, &d.store) else {
                return;
            };
            d.sessions.insert((peer, session_id), session);
            self.pump(device, (peer, session_id));
        }
    }

    fn end_session(&mut self, device: usize, key: (usize, u64)) {
        if let Some(session) = self.devices[device].sessions.remove(&key) {
            let stats = &mut self.devices[device].stats;
            if session.is_done() {
                stats.sessions_done += 1;
            } else {
                stats.sessions_failed += 1;
            }
        }
    }

    fn receive(&mut self, from: usize, to: usize, message: Message) {
        match message {
            Message::Reconcile { session_id, frame } => {
                let now = Duration::from_micros(self.now);
                let key = (from, session_id);
                let seed = self.rng.next_u64();
                let d = &mut self.devices[to];
                let session = match d.sessions.entry(key) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => {
                        let Ok(session) = Session::respond(self.config.clone(), seed, now) else {
                            return;
                        };
                        entry.insert(session)
                    }
                };
                if session.handle_frame(now, &d.store, &frame).is_err() {
                    self.end_session(to, key);
                    self.send(to, from, Message::Abort { session_id });
                    return;
                }
                self.pump(to, key);
            }
            Message::Abort { session_id } => self.end_session(to, (from, session_id)),
            Message::Fetch { items } => {
                let store = &self.devices[to].store;
                let held: Vec<Item> = items
                    .into_iter()
                    .filter(|item| store.contains(item))
                    .collect();
                for chunk in held.chunks(FETCH_BATCH) {
                    self.send(
                        to,
                        from,
                        Message::Records {
                            items: chunk.to_vec(),
                        },
                    );
                }
            }
            Message::Records { items } => {
                let d = &mut self.devices[to];
                for item in items {
                    d.requested.remove(&item);
                    d.store.insert(item);
                }
            }
        }
    }

    /// Sends what a session has to send and fetches what it found missing.
    fn pump(&mut self, device: usize, key: (usize, u64)) {
        let now_us = self.now;
        let now = Duration::from_micros(now_us);
        let (peer, session_id) = key;
        let mut frames = Vec::new();
        let mut fetch = Vec::new();
        let d = &mut self.devices[device];
        let Some(session) = d.sessions.get_mut(&key) else {
            return;
        };
        while let Some(frame) = session.poll_transmit(now, &d.store) {
            frames.push(frame);
        }
        while let Some(event) = session.poll_event() {
            if let Event::Missing(item) = event {
                let asked_recently = d
                    .requested
                    .get(&item)
                    .is_some_and(|at| now_us < at + FETCH_RETRY_US);
                if !asked_recently && !d.store.contains(&item) {
                    d.requested.insert(item, now_us);
                    fetch.push(item);
                }
            }
        }
        let ended = session.is_done() || session.error().is_some();
        for frame in frames {
            self.send(device, peer, Message::Reconcile { session_id, frame });
        }
        for chunk in fetch.chunks(FETCH_BATCH) {
            self.send(
                device,
                peer,
                Message::Fetch {
                    items: chunk.to_vec(),
                },
            );
        }
        if ended {
            self.end_session(device, key);
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>6} {:>12} {:>12} {:>9} {:>12} {:>9} {:>9} {:>7}",
            "device",
            "bytes_sent",
            "recon_bytes",
            "msgs_sent",
            "bytes_recv",
            "msgs_recv",
            "sessions",
            "failed"
        )?;
        for (i, d) in self.devices.iter().enumerate() {
            writeln!(
                f,
                "{:>6} {:>12} {:>12} {:>9} {:>12} {:>9} {:>9} {:>7}",
                i,
                d.bytes_sent,
                d.reconcile_bytes_sent,
                d.messages_sent,
                d.bytes_received,
                d.messages_received,
                d.sessions_done,
                d.sessions_failed
            )?;
        }
        let bytes: u64 = self.devices.iter().map(|d| d.bytes_sent).sum();
        let messages: u64 = self.devices.iter().map(|d| d.messages_sent).sum();
        write!(
            f,
            "converged seed={} scenario={} nodes={} records={} time={:.3}s after_last_disruption={:.3}s bytes={} messages={}",
            self.seed,
            self.scenario,
            self.nodes,
            self.records,
            self.converged_at_us as f64 / 1e6,
            self.converged_at_us.saturating_sub(self.last_disruption_us) as f64 / 1e6,
            bytes,
            messages
        )
    }
}
