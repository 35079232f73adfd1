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
    /// Which scenario to run; `list` names them all.
    #[arg(long, default_value = "calm")]
    scenario: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.scenario == "list" {
        for scenario in SCENARIOS {
            println!("{:<10} {}", scenario.name, scenario.description);
        }
        return ExitCode::SUCCESS;
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
