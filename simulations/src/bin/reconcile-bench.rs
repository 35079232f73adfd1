//! `reconcile-bench`: bytes, round trips and CPU time of one reconciliation session between
//! two sets that differ by `d` items, for photomesh and for the `negentropy` crate on the same
//! sets, against the lower bound of 32 bytes per difference.
//!
//! Side A (the initiator) lacks `d` items that side B holds: the newest ones ("clustered"),
//! or ones spread over the whole set ("scattered"); `d = n` is a new device. Each figure is from a
//! single run; CPU time is wall time spent inside each side's calls on one thread.
//! Benchmarks print figures and never fail on a time.
//!
//! At n = 1,000,000 each case with a target in DESIGN §7 is marked met or NOT MET (bytes both
//! ways, round trips, CPU ≤ 50 ms per side for d ≤ 1,000, tree memory ≤ 100 MB), and a last
//! line counts them. KB here are 1,000 bytes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use photomesh_protocol::reconcile::{Config, Event, FingerprintTree, Item, Session, Store};
use photomesh_simulations::SimRng;

/// Measures reconciliation costs for n in {1k, 10k, 100k, 1M} and several difference sizes.
#[derive(Debug, Parser)]
struct Args {
    /// Print one JSON object per case instead of a table.
    #[arg(long)]
    json: bool,
    /// The largest set size to run (1000, 10000, 100000 or 1000000).
    #[arg(long, default_value_t = 1_000_000)]
    max_n: u64,
    /// Skip the `negentropy` baseline.
    #[arg(long)]
    no_negentropy: bool,
    /// The seed of the generated sets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// How the `d` differing items are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spread {
    Clustered,
    Scattered,
}

/// One side's costs.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
struct Cost {
    bytes_a_to_b: u64,
    bytes_b_to_a: u64,
    round_trips: f64,
    cpu_a_ms: f64,
    cpu_b_ms: f64,
    found: u64,
}

/// A DESIGN §7 target, which holds at n = 1,000,000.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Target {
    max_bytes: u64,
    max_round_trips: Option<f64>,
    max_cpu_ms: Option<f64>,
}

/// The set size the DESIGN §7 targets are stated for.
const TARGET_N: u64 = 1_000_000;

/// The target of a case, if DESIGN §7 sets one.
fn target(n: u64, d: u64, spread: Spread) -> Option<Target> {
    if n != TARGET_N {
        return None;
    }
    let (max_bytes, max_round_trips) = match (d, spread) {
        (0, _) => (64, Some(1.0)),
        (10, Spread::Scattered) => (2_000, Some(3.0)),
        (1_000, Spread::Clustered) => (40_000, Some(4.0)),
        (1_000, Spread::Scattered) => (700_000, Some(4.0)),
        (d, _) if d == n => (n * 32 * 11 / 10, None),
        _ => return None,
    };
    Some(Target {
        max_bytes,
        max_round_trips,
        max_cpu_ms: (d <= 1_000).then_some(50.0),
    })
}

impl Target {
    /// What the cost misses of the target, or an empty list when it is met.
    fn misses(&self, cost: &Cost) -> Vec<&'static str> {
        let mut misses = Vec::new();
        if cost.bytes_a_to_b + cost.bytes_b_to_a > self.max_bytes {
            misses.push("bytes");
        }
        if self
            .max_round_trips
            .is_some_and(|max| cost.round_trips > max)
        {
            misses.push("round trips");
        }
        if self
            .max_cpu_ms
            .is_some_and(|max| cost.cpu_a_ms > max || cost.cpu_b_ms > max)
        {
            misses.push("cpu");
        }
        misses
    }

    fn describe(&self) -> String {
        let mut out = format!("<={} B", self.max_bytes);
        if let Some(rt) = self.max_round_trips {
            out += &format!(", <={rt} RTT");
        }
        out
    }
}

#[derive(Debug, serde::Serialize)]
struct Case {
    n: u64,
    d: u64,
    spread: &'static str,
    lower_bound_bytes: u64,
    tree_bytes: usize,
    photomesh: Cost,
    photomesh_ratio: Option<f64>,
    negentropy: Option<Cost>,
    negentropy_ratio: Option<f64>,
    target: Option<Target>,
    target_met: Option<bool>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.json {
        println!(
            "{:>8} {:>8} {:>9} | {:>10} {:>10} {:>5} {:>8} {:>8} {:>6} | {:>10} {:>10} {:>5} {:>8} {:>8} {:>6} | target",
            "n",
            "d",
            "spread",
            "A->B B",
            "B->A B",
            "RTT",
            "cpuA ms",
            "cpuB ms",
            "ratio",
            "neg A->B",
            "neg B->A",
            "RTT",
            "cpuA ms",
            "cpuB ms",
            "ratio"
        );
    }
    let (mut met, mut missed) = (0, 0);
    for n in [1_000u64, 10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|n| *n <= args.max_n)
    {
        let mut rng = SimRng::new(args.seed ^ n);
        // Photos over the years: timestamps in seconds, about 5 minutes apart.
        let mut timestamp = 1_500_000_000u64;
        let full: Vec<Item> = (0..n)
            .map(|_| {
                timestamp += rng.range(1, 600);
                Item::new(timestamp, rng.bytes32())
            })
            .collect();
        let tree_b = FingerprintTree::from_items(full.iter().copied());
        let built = Instant::now();
        let mut inserted = FingerprintTree::new();
        for index in scattered_indices(&mut rng, n, n) {
            inserted.insert(full[index as usize]);
        }
        let tree_mb = tree_b.heap_bytes().max(inserted.heap_bytes()) as f64 / 1e6;
        let memory_note = if n == TARGET_N {
            if tree_mb <= 100.0 {
                met += 1;
                " (target <=100 MB: met)"
            } else {
                missed += 1;
                " (target <=100 MB: NOT MET)"
            }
        } else {
            ""
        };
        if !args.json {
            println!(
                "# n={n}: tree {:.1} MB built in one pass, {:.1} MB built by {n} random inserts in {:.0} ms{memory_note}",
                tree_b.heap_bytes() as f64 / 1e6,
                inserted.heap_bytes() as f64 / 1e6,
                built.elapsed().as_secs_f64() * 1e3
            );
        }
        drop(inserted);
        let cases = [
            (0, Spread::Scattered),
            (1, Spread::Scattered),
            (10, Spread::Scattered),
            (100, Spread::Scattered),
            (1_000, Spread::Clustered),
            (1_000, Spread::Scattered),
            (n, Spread::Clustered),
        ];
        for (d, spread) in cases {
            let d = d.min(n);
            let lacking: std::collections::BTreeSet<u64> = match spread {
                Spread::Clustered => (n - d..n).collect(),
                Spread::Scattered => scattered_indices(&mut rng, n, d).collect(),
            };
            let side_a: Vec<Item> = (0..n)
                .filter(|i| !lacking.contains(i))
                .map(|i| full[i as usize])
                .collect();
            let tree_a = FingerprintTree::from_items(side_a.iter().copied());
            let ours = run_photomesh(&tree_a, &tree_b, rng.next_u64())?;
            if ours.found != d {
                bail!("photomesh found {} of {d} differences (n={n})", ours.found);
            }
            let theirs = if args.no_negentropy {
                None
            } else {
                Some(run_negentropy(&side_a, &full)?)
            };
            let lower_bound = 32 * d;
            let ratio = |cost: &Cost| {
                (d > 0).then(|| (cost.bytes_a_to_b + cost.bytes_b_to_a) as f64 / lower_bound as f64)
            };
            let case_target = target(n, d, spread);
            let target_met = case_target.map(|t| t.misses(&ours).is_empty());
            match target_met {
                Some(true) => met += 1,
                Some(false) => missed += 1,
                None => {}
            }
            let case = Case {
                n,
                d,
                spread: if spread == Spread::Clustered {
                    "clustered"
                } else {
                    "scattered"
                },
                lower_bound_bytes: lower_bound,
                tree_bytes: tree_b.heap_bytes(),
                photomesh_ratio: ratio(&ours),
                photomesh: ours,
                negentropy_ratio: theirs.as_ref().and_then(ratio),
                negentropy: theirs,
                target: case_target,
                target_met,
            };
            print_case(&case, args.json)?;
        }
    }
    if !args.json && met + missed > 0 {
        println!("# DESIGN §7 targets at n={TARGET_N}: {met} met, {missed} not met");
    }
    Ok(())
}

fn print_case(case: &Case, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(case)?);
        return Ok(());
    }
    let fmt_ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}"));
    let fmt_cost = |c: &Cost, r: Option<f64>| {
        format!(
            "{:>10} {:>10} {:>5} {:>8.2} {:>8.2} {:>6}",
            c.bytes_a_to_b,
            c.bytes_b_to_a,
            c.round_trips,
            c.cpu_a_ms,
            c.cpu_b_ms,
            fmt_ratio(r)
        )
    };
    let neg = case
        .negentropy
        .as_ref()
        .map_or("(skipped)".to_string(), |c| {
            fmt_cost(c, case.negentropy_ratio)
        });
    let verdict = match case.target {
        None => "-".to_string(),
        Some(target) => {
            let misses = target.misses(&case.photomesh);
            if misses.is_empty() {
                format!("met ({})", target.describe())
            } else {
                format!("NOT MET: {} ({})", misses.join(", "), target.describe())
            }
        }
    };
    println!(
        "{:>8} {:>8} {:>9} | {} | {} | {}",
        case.n,
        case.d,
        case.spread,
        fmt_cost(&case.photomesh, case.photomesh_ratio),
        neg,
        verdict
    );
    Ok(())
}

/// `d` distinct indices in `0..n`, in random order.
fn scattered_indices(rng: &mut SimRng, n: u64, d: u64) -> impl Iterator<Item = u64> {
    // A partial Fisher-Yates shuffle over a lazily materialised permutation.
    let mut swapped = std::collections::HashMap::new();
    let picks: Vec<u64> = (0..d)
        .map(|i| {
            let j = rng.range(i, n);
            let at_j = *swapped.get(&j).unwrap_or(&j);
            let at_i = *swapped.get(&i).unwrap_or(&i);
            swapped.insert(j, at_i);
            at_j
        })
        .collect();
    picks.into_iter()
}

fn run_photomesh(a: &FingerprintTree, b: &FingerprintTree, seed: u64) -> Result<Cost> {
    let now = Duration::ZERO;
    let config = Config::default();
    let mut cpu = [Duration::ZERO; 2];
    let start = Instant::now();
    let mut sessions = [
        Session::initiate(config.clone(), seed, now, a)?,
        Session::respond(config, seed.rotate_left(1), now)?,
    ];
    cpu[0] += start.elapsed();
    let stores: [&dyn Store; 2] = [a, b];
    let mut found = 0;
    loop {
        let mut progress = false;
        for from in 0..2 {
            let to = 1 - from;
            loop {
                let start = Instant::now();
                let frame = sessions[from].poll_transmit(now, stores[from]);
                cpu[from] += start.elapsed();
                let Some(frame) = frame else { break };
                progress = true;
                let start = Instant::now();
                sessions[to]
                    .handle_frame(now, stores[to], &frame)
                    .context("photomesh session")?;
                cpu[to] += start.elapsed();
            }
            let start = Instant::now();
            while let Some(event) = sessions[from].poll_event() {
                if from == 0 && matches!(event, Event::Missing(_)) {
                    found += 1;
                }
            }
            cpu[from] += start.elapsed();
        }
        if !progress {
            break;
        }
    }
    if !(sessions[0].is_done() && sessions[1].is_done()) {
        bail!("photomesh session did not finish");
    }
    let stats = sessions[0].stats();
    Ok(Cost {
        bytes_a_to_b: stats.bytes_sent,
        bytes_b_to_a: stats.bytes_received,
        round_trips: f64::from(stats.turns) / 2.0,
        cpu_a_ms: cpu[0].as_secs_f64() * 1e3,
        cpu_b_ms: cpu[1].as_secs_f64() * 1e3,
        found,
    })
}

fn run_negentropy(a: &[Item], b: &[Item]) -> Result<Cost> {
    use negentropy::{Id, Negentropy, NegentropyStorageVector};
    let storage = |items: &[Item]| -> Result<NegentropyStorageVector> {
        let mut storage = NegentropyStorageVector::with_capacity(items.len());
        for item in items {
            storage
                .insert(item.timestamp, Id::from_byte_array(item.id))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        storage.seal().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(storage)
    };
    let (storage_a, storage_b) = (storage(a)?, storage(b)?);
    let neg = |e: negentropy::Error| anyhow::anyhow!("negentropy: {e:?}");
    let mut cost = Cost::default();
    let mut cpu = [Duration::ZERO; 2];
    let start = Instant::now();
    let mut client = Negentropy::borrowed(&storage_a, 0).map_err(neg)?;
    let mut server = Negentropy::borrowed(&storage_b, 0).map_err(neg)?;
    let mut query = client.initiate().map_err(neg)?;
    cpu[0] += start.elapsed();
    let (mut have, mut need) = (Vec::new(), Vec::new());
    loop {
        cost.bytes_a_to_b += query.len() as u64;
        let start = Instant::now();
        let answer = server.reconcile(&query).map_err(neg)?;
        cpu[1] += start.elapsed();
        cost.bytes_b_to_a += answer.len() as u64;
        cost.round_trips += 1.0;
        let start = Instant::now();
        let next = client
            .reconcile_with_ids(&answer, &mut have, &mut need)
            .map_err(neg)?;
        cpu[0] += start.elapsed();
        match next {
            Some(next) => query = next,
            None => break,
        }
    }
    cost.found = need.len() as u64;
    cost.cpu_a_ms = cpu[0].as_secs_f64() * 1e3;
    cost.cpu_b_ms = cpu[1].as_secs_f64() * 1e3;
    Ok(cost)
}
