//! `gateway check` and `gateway run` judge a configuration alike: what
//! `check` passes, `run` does not refuse as a configuration error, and what
//! `run` would refuse, `check` reports first (with the file and line where
//! one exists). Only our binary is needed.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bms_e2e::{bin, free_port, run_with_timeout};

/// A small site of one TCP device of profile `test`, in `dir`.
fn site(dir: &Path, timezone: &str, address: &str, profile: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("profiles")).unwrap();
    std::fs::write(
        dir.join("profiles/test.toml"),
        format!("description = \"test\"\n{profile}"),
    )
    .unwrap();
    let file = dir.join("site.toml");
    std::fs::write(
        &file,
        format!(
            r#"site = "hq"
gateway = "gw-1"
timezone = "{timezone}"
data_dir = "data"
profiles_dir = "profiles"

[admin]
listen = ""

[[bus]]
id = "line-1"
kind = "tcp"
address = "{address}"

[[device]]
id = "pump-1"
name_zh = "泵"
class = "pump"
bus = "line-1"
unit = 1
profile = "test"
"#
        ),
    )
    .unwrap();
    file
}

const PLAIN: &str = r#"
[[point]]
name = "pressure"
area = "holding"
address = 0
type = "u16"
"#;

fn gateway(args: &[&str], file: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(args)
            .arg("--config")
            .arg(file)
            .envs(env.iter().copied()),
        Duration::from_secs(20),
    )
    .unwrap();
    (code, format!("{out}{err}"))
}

fn check(file: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    gateway(&["check"], file, env)
}

#[test]
fn an_unknown_time_zone_fails_check_and_run_alike() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let file = site(dir.path(), "Asia/Atlantis", &addr, PLAIN);
    let (code, out) = check(&file, &[]);
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains(r#"timezone: "Asia/Atlantis" is not an IANA time zone name"#),
        "{out}"
    );
    // `run` refuses it the same way, as a configuration error (64), before
    // opening anything; not 69 from the engine.
    let (code, run_out) = gateway(&["run"], &file, &[]);
    assert_eq!(code, Some(64), "{run_out}");
    assert!(run_out.contains("Asia/Atlantis"), "{run_out}");
    assert!(
        !dir.path().join("data").exists(),
        "run opened its data folder"
    );
    // A real zone passes.
    let file = site(dir.path(), "America/Argentina/Buenos_Aires", &addr, PLAIN);
    let (code, out) = check(&file, &[]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn points_reading_the_same_register_are_an_error_unless_marked_as_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    // A copy-paste slip: "temperature" was meant at address 2.
    let overlapping = r#"
[[point]]
name = "energy"
area = "holding"
address = 0
type = "u32"

[[point]]
name = "temperature"
area = "holding"
address = 1
type = "u16"
"#;
    let file = site(dir.path(), "UTC", &addr, overlapping);
    let (code, out) = check(&file, &[]);
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains(
            r#"profile "test" point "temperature": reads holding register 1, which point "energy""#
        ),
        "{out}"
    );
    assert!(out.contains(r#"alias_of = "energy""#), "{out}");

    // Marked as deliberate: accepted.
    let aliased = overlapping.replace(
        "name = \"temperature\"",
        "name = \"temperature\"\nalias_of = \"energy\"",
    );
    let file = site(dir.path(), "UTC", &addr, &aliased);
    let (code, out) = check(&file, &[]);
    assert_eq!(code, Some(0), "{out}");

    // An alias of a point that does not exist is an error.
    let bad_alias = overlapping.replace(
        "name = \"temperature\"",
        "name = \"temperature\"\nalias_of = \"energi\"",
    );
    let file = site(dir.path(), "UTC", &addr, &bad_alias);
    let (code, out) = check(&file, &[]);
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains(r#"alias_of names an unknown point "energi""#),
        "{out}"
    );
}

#[test]
fn bit_points_of_one_status_register_do_not_overlap_unless_they_share_a_bit() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let bits = |second_bit: u8| {
        format!(
            r#"
[[point]]
name = "running"
area = "holding"
address = 10
type = "bit"
bit = 0

[[point]]
name = "fault"
area = "holding"
address = 10
type = "bit"
bit = {second_bit}
"#
        )
    };
    let file = site(dir.path(), "UTC", &addr, &bits(3));
    let (code, out) = check(&file, &[]);
    assert_eq!(code, Some(0), "{out}");
    let file = site(dir.path(), "UTC", &addr, &bits(0));
    let (code, out) = check(&file, &[]);
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains(r#"point "fault": reads holding register 10"#),
        "{out}"
    );
}

#[test]
fn every_shipped_profile_still_passes() {
    let root = bms_e2e::workspace_root();
    let (code, out) = check(&root.join("config/demo.toml"), &[]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn a_variable_set_but_empty_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = site(dir.path(), "UTC", "${BMS_TEST_PARITY_ADDR}", PLAIN);
    let (code, out) = check(&file, &[("BMS_TEST_PARITY_ADDR", "")]);
    assert_eq!(code, Some(64), "{out}");
    let at = format!("{}:13:12", file.display());
    assert!(out.contains(&at), "no file and line {at} in: {out}");
    assert!(
        out.contains("BMS_TEST_PARITY_ADDR is set but empty"),
        "{out}"
    );
    let (code, run_out) = gateway(&["run"], &file, &[("BMS_TEST_PARITY_ADDR", "")]);
    assert_eq!(code, Some(64), "{run_out}");
    assert!(run_out.contains(&at), "{run_out}");
}

#[test]
fn a_secret_that_run_would_miss_fails_check_too() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let file = site(dir.path(), "UTC", &addr, PLAIN);
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "[admin]",
        "[influx]\nurl = \"http://127.0.0.1:9\"\norg = \"o\"\nbucket = \"b\"\ntoken = { file = \"missing-token\" }\n\n[admin]",
    );
    std::fs::write(&file, text).unwrap();
    let (code, out) = check(&file, &[]);
    assert_eq!(code, Some(64), "{out}");
    assert!(out.contains("[influx] token"), "{out}");
    let (code, run_out) = gateway(&["run"], &file, &[]);
    assert_eq!(code, Some(64), "{run_out}");
    assert!(run_out.contains("[influx] token"), "{run_out}");
}
