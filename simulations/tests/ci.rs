//! The fixed seeds and scenarios CI runs, plus the checks that make a seed replayable and a
//! broken mesh detected.

use std::process::Command;

use photomesh_simulations::{Failure, SCENARIOS, Scenario, run};

fn scenario(name: &str) -> &'static Scenario {
    Scenario::by_name(name).expect("the scenario exists")
}

/// Runs one CI case and checks every live device ended with every record.
fn converges(name: &str, seed: u64, nodes: usize) {
    let report = run(scenario(name), seed, nodes).unwrap_or_else(|failure| {
        panic!("{name} seed={seed} nodes={nodes} failed: {failure}; replay with --seed {seed} --nodes {nodes} --scenario {name}")
    });
    assert_eq!(report.nodes, nodes);
    assert!(report.records >= scenario(name).initial_records);
    assert!(report.converged_at_us >= report.last_disruption_us);
    assert!(
        report.devices.iter().all(|d| d.messages_sent > 0),
        "every device took part"
    );
}

#[test]
fn calm_converges() {
    converges("calm", 1, 8);
}

#[test]
fn lossy_converges() {
    converges("lossy", 2, 12);
}

#[test]
fn partition_heals_and_converges() {
    converges("partition", 3, 10);
}

#[test]
fn crashed_devices_catch_up() {
    converges("crash", 4, 15);
}

#[test]
fn late_joiners_catch_up() {
    converges("late-join", 5, 12);
}

#[test]
fn chaos_with_twenty_devices_converges() {
    converges("chaos", 6, 20);
}

#[test]
fn reordered_messages_converge() {
    converges("reorder", 8, 12);
}

#[test]
fn two_devices_revoking_each_other_at_once_leave_one_trust_set() {
    // The run checks that every device evaluates the same trust set, with exactly one of
    // the two revoked.
    converges("revoke-race", 9, 20);
}

#[test]
fn a_seed_replays_exactly() {
    let first = run(scenario("chaos"), 77, 9).expect("converges");
    let second = run(scenario("chaos"), 77, 9).expect("converges");
    assert_eq!(first, second);
    let other = run(scenario("chaos"), 78, 9).expect("converges");
    assert_ne!(first, other, "another seed gives another run");
}

#[test]
fn a_mesh_that_cannot_talk_is_reported_as_not_converged() {
    let mute = Scenario {
        name: "mute",
        loss: 1.0,
        ..scenario("calm").clone()
    };
    let result = run(&mute, 1, 4);
    assert!(
        matches!(result, Err(Failure::NotConverged { .. })),
        "{result:?}"
    );
    assert!(matches!(
        run(scenario("calm"), 1, 21),
        Err(Failure::BadArguments(_))
    ));
}

#[test]
fn scenario_names_are_unique() {
    let mut names: Vec<_> = SCENARIOS.iter().map(|s| s.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), SCENARIOS.len());
}

#[test]
fn the_command_line_prints_converged() {
    let exe = env!("CARGO_BIN_EXE_photomesh-simulations");
    let output = Command::new(exe)
        .args(["--seed", "11", "--nodes", "5", "--scenario", "partition"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("converged seed=11 scenario=partition nodes=5")),
        "{stdout}"
    );
    let list = Command::new(exe)
        .args(["--scenario", "list"])
        .output()
        .expect("runs");
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).contains("late-join"));
    let bad = Command::new(exe)
        .args(["--scenario", "nonsense"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
}
