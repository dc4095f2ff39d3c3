//! The `dashboard` binary's command line, run as a user would. (Also makes
//! `cargo test` build the binary that the end-to-end suite starts.)

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

#[test]
fn version_names_the_commit_and_help_lists_the_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("dashboard "), "{text}");
    assert!(text.contains("(commit "), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["serve", "demo"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_dashboard"))
        .args(["serve", "--config", "/nonexistent/dashboard.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("/nonexistent/dashboard.toml"), "{err}");
}
