//! The binary's own smoke test. (The full integration tests live in the `photomesh-tests`
//! crate; this file also makes `cargo test --workspace` build the `photomesh` binary they run.)

use std::process::Command;

#[test]
fn help_names_every_verb() {
    let out = Command::new(env!("CARGO_BIN_EXE_photomesh"))
        .arg("--help")
        .output()
        .expect("photomesh runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for verb in [
        "init", "folder", "scan", "status", "photos", "restore", "verify",
    ] {
        assert!(
            help.contains(verb),
            "--help does not mention {verb}:\n{help}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_photomesh"))
        .arg("no-such-verb")
        .output()
        .expect("photomesh runs");
    assert_eq!(out.status.code(), Some(2));
}
