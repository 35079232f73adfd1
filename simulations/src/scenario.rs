//! The named scenarios a simulation run follows.

/// What happens during a run, besides devices syncing.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The name given to `--scenario`.
    pub name: &'static str,
    /// One line saying what the scenario exercises.
    pub description: &'static str,
    /// Records that exist before the run, spread over the devices present at the start.
    pub initial_records: u64,
    /// Chance that a device present at the start already holds a given initial record.
    pub initial_share: f64,
    /// Photos added during the run, on up to three devices.
    pub photos_added: u64,
    /// Chance that a message is lost on the way.
    pub loss: f64,
    /// Chance that a message is held up on the way (up to four times its link's latency),
    /// so that later messages overtake it.
    pub reorder: f64,
    /// Per-link one-way latency, drawn per link from this range, in milliseconds.
    pub latency_ms: (u64, u64),
    /// Per-link bandwidth, drawn per link from this range, in kilobytes per second.
    pub bandwidth_kbps: (u64, u64),
    /// A partition of the devices into two halves, from and to these seconds.
    pub partition_s: Option<(u64, u64)>,
    /// Devices that crash (losing sessions and messages in flight, keeping their stored set)
    /// and restart later.
    pub crashes: u64,
    /// Devices that join after the start with an empty set.
    pub late_joiners: u64,
    /// At this second, two full devices on either side of the partition revoke each other,
    /// each before it can hear of the other's revocation (real signed membership records).
    pub revocation_race_s: Option<u64>,
}

const BASE: Scenario = Scenario {
    name: "calm",
    description: "no faults: devices with overlapping sets sync while photos are added",
    initial_records: 2000,
    initial_share: 0.8,
    photos_added: 60,
    loss: 0.0,
    reorder: 0.0,
    latency_ms: (1, 20),
    bandwidth_kbps: (2_000, 50_000),
    partition_s: None,
    crashes: 0,
    late_joiners: 0,
    revocation_race_s: None,
};

/// Every scenario, by name.
pub const SCENARIOS: &[Scenario] = &[
    BASE,
    Scenario {
        name: "lossy",
        description: "5% message loss, latency 5-400 ms, bandwidth 50 kB/s-5 MB/s",
        loss: 0.05,
        latency_ms: (5, 400),
        bandwidth_kbps: (50, 5_000),
        ..BASE
    },
    Scenario {
        name: "partition",
        description: "the mesh splits in two halves from 5 s to 40 s, photos added on both sides",
        partition_s: Some((5, 40)),
        ..BASE
    },
    Scenario {
        name: "crash",
        description: "a third of the devices crash and restart, keeping their stored sets",
        crashes: 7,
        ..BASE
    },
    Scenario {
        name: "late-join",
        description: "a quarter of the devices join late with nothing",
        late_joiners: 5,
        ..BASE
    },
    Scenario {
        name: "reorder",
        description: "a tenth of the messages overtaken by later ones, 2% loss",
        loss: 0.02,
        reorder: 0.1,
        latency_ms: (5, 200),
        ..BASE
    },
    Scenario {
        name: "revoke-race",
        description: "two full devices revoke each other at once across a partition; every device ends with one trust set",
        partition_s: Some((5, 40)),
        revocation_race_s: Some(10),
        loss: 0.02,
        reorder: 0.05,
        crashes: 3,
        ..BASE
    },
    Scenario {
        name: "chaos",
        description: "loss, reordering, slow links, a partition, crashes and late joiners at once",
        loss: 0.03,
        reorder: 0.05,
        latency_ms: (5, 300),
        bandwidth_kbps: (100, 10_000),
        partition_s: Some((10, 35)),
        crashes: 5,
        late_joiners: 3,
        ..BASE
    },
];

impl Scenario {
    /// The scenario called `name`, if there is one.
    pub fn by_name(name: &str) -> Option<&'static Scenario> {
        SCENARIOS.iter().find(|s| s.name == name)
    }
}
