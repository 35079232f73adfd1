//! `photomesh-simulations`: runs one seeded simulation and says whether it converged.
//!
//! This binary is the command line and nothing more; the simulator lives in the library.

use std::process::ExitCode;

use clap::Parser;
use photomesh_simulations::{SCENARIOS, Scenario, run};

/// Runs a deterministic, seeded simulation of photomesh devices reconciling their record sets.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The seed; the same seed, node count and scenario replay the same run exactly.
    /// Without it, one is drawn from the clock and printed.
    #[arg(long)]
    seed: Option<u64>,
    /// How many devices, 2 to 20.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Which scenario to run; `list` names them all, `all` runs each.
    #[arg(long, default_value = "calm")]
    scenario: String,
    /// Run this many seeds, from `--seed` (default 1) on, and print one line per scenario:
    /// how many converged, the slowest, and each failing seed with its replay command.
    #[arg(long)]
    seeds: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.scenario == "list" {
        for scenario in SCENARIOS {
            println!("{:<10} {}", scenario.name, scenario.description);
        }
        return ExitCode::SUCCESS;
    }
    if let Some(count) = args.seeds {
        return sweep(&args, count);
    }
    let Some(scenario) = Scenario::by_name(&args.scenario) else {
        eprintln!(
            "unknown scenario {:?}; `--scenario list` names them",
            args.scenario
        );
        return ExitCode::from(2);
    };
    let seed = args.seed.unwrap_or_else(|| {
        // The only entropy in a run: a seed that is printed so the run can be replayed.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    println!(
        "seed={seed} scenario={} nodes={}",
        scenario.name, args.nodes
    );
    match run(scenario, seed, args.nodes) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            println!(
                "FAILED seed={seed} scenario={} nodes={}: {failure}",
                scenario.name, args.nodes
            );
            println!(
                "replay: cargo run --release -p photomesh-simulations -- --seed {seed} --nodes {} --scenario {}",
                args.nodes, scenario.name
            );
            ExitCode::FAILURE
        }
    }
}

/// `--seeds N`: every seed of a range, for one scenario or all.
fn sweep(args: &Args, count: u64) -> ExitCode {
    let scenarios: Vec<&Scenario> = if args.scenario == "all" {
        SCENARIOS.iter().collect()
    } else {
        match Scenario::by_name(&args.scenario) {
            Some(s) => vec![s],
            None => {
                eprintln!(
                    "unknown scenario {:?}; `--scenario list` names them",
                    args.scenario
                );
                return ExitCode::from(2);
            }
        }
    };
    let first = args.seed.unwrap_or(1);
    let mut failed_any = false;
    for scenario in scenarios {
        let start = std::time::Instant::now();
        let (mut converged, mut slowest) = (0u64, (0.0f64, first));
        for seed in first..first.saturating_add(count) {
            match run(scenario, seed, args.nodes) {
                Ok(report) => {
                    converged += 1;
                    let after = report
                        .converged_at_us
                        .saturating_sub(report.last_disruption_us)
                        as f64
                        / 1e6;
                    if after > slowest.0 {
                        slowest = (after, seed);
                    }
                }
                Err(failure) => {
                    failed_any = true;
                    println!(
                        "FAILED seed={seed} scenario={} nodes={}: {failure}\nreplay: cargo run --release -p photomesh-simulations -- --seed {seed} --nodes {} --scenario {}",
                        scenario.name, args.nodes, args.nodes, scenario.name
                    );
                }
            }
        }
        println!(
            "{:<12} nodes={} seeds {first}..{}: {converged} of {count} converged; slowest {:.1} s after the last disruption (seed {}); {:.0} s",
            scenario.name,
            args.nodes,
            first + count - 1,
            slowest.0,
            slowest.1,
            start.elapsed().as_secs_f64()
        );
    }
    if failed_any {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
