//! Writable points: the `[writes]` and device `writes` settings, the
//! profile's `writable`/`write_min`/`write_max`, and the checks a write
//! passes before it goes to the bus.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use gateway_core::config::load::load;
use gateway_core::config::{ConfigError, Resolved};
use gateway_core::model::{Value, WriteRange};
use gateway_core::write::{Refusal, check};

fn no_env(_: &str) -> Option<String> {
    None
}

/// A profile with every kind of point a write meets.
const PROFILE: &str = r#"
description = "test air handler"

[[point]]
name = "run_cmd"
area = "coil"
address = 0
type = "bool"
writable = true

[[point]]
name = "setpoint"
unit = "°C"
area = "holding"
address = 10
type = "i16"
scale = 0.1
writable = true
write_min = 5.0
write_max = 30.0

[[point]]
name = "flow_limit"
area = "holding"
address = 20
type = "f32"
writable = true

[[point]]
name = "reset"
area = "holding"
address = 30
type = "bit"
bit = 3
writable = true

[[point]]
name = "pressure"
area = "holding"
address = 40
type = "u16"

[[point]]
name = "running"
area = "discrete"
address = 0
type = "bool"
"#;

fn site(writes: &str, device_writes: &str, profile: &str) -> Result<Resolved, Vec<ConfigError>> {
    let text = format!(
        r#"
site = "s"
gateway = "g"
{writes}

[[bus]]
id = "b"
kind = "tcp"
address = "127.0.0.1:502"

[[device]]
id = "ahu-1"
name_zh = "空调"
class = "hvac"
bus = "b"
unit = 1
profile = "ahu"
{device_writes}
"#
    );
    let mut profiles = BTreeMap::new();
    profiles.insert(
        "ahu".to_owned(),
        ("ahu.toml".to_owned(), profile.to_owned()),
    );
    load("site.toml", &text, &profiles, &no_env)
}

fn errors(writes: &str, device_writes: &str, profile: &str) -> Vec<String> {
    match site(writes, device_writes, profile) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn writes_are_off_unless_the_site_and_the_device_both_allow_them() {
    let off = site("", "writes = true", PROFILE).unwrap();
    assert!(off.devices[0].writable.is_empty());
    let device_off = site("[writes]\nenabled = true", "", PROFILE).unwrap();
    assert!(device_off.devices[0].writable.is_empty());
    let all = site("[writes]\nenabled = true", "writes = true", PROFILE).unwrap();
    let names: Vec<&str> = all.devices[0].writable.iter().map(String::as_str).collect();
    assert_eq!(names, ["flow_limit", "reset", "run_cmd", "setpoint"]);
    let some = site(
        "[writes]\nenabled = true",
        "writes = [\"setpoint\"]",
        PROFILE,
    )
    .unwrap();
    let names: Vec<&str> = some.devices[0]
        .writable
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["setpoint"]);
}

#[test]
fn the_runtime_point_carries_writable_and_its_range() {
    let r = site("", "", PROFILE).unwrap();
    let p = |n: &str| r.devices[0].points.iter().find(|p| p.name == n).unwrap();
    assert_eq!(
        p("setpoint").write,
        Some(WriteRange {
            min: Some(5.0),
            max: Some(30.0)
        })
    );
    assert_eq!(p("run_cmd").write, Some(WriteRange::default()));
    assert_eq!(p("pressure").write, None);
}

#[test]
fn writable_is_refused_on_read_only_areas_and_text_and_ranges_must_be_in_order() {
    let bad = r#"
description = "bad"

[[point]]
name = "running"
area = "discrete"
address = 0
type = "bool"
writable = true

[[point]]
name = "temp"
area = "input"
address = 0
type = "i16"
writable = true

[[point]]
name = "model"
area = "holding"
address = 0
type = "string"
length = 8
writable = true

[[point]]
name = "sp"
area = "holding"
address = 10
type = "u16"
writable = true
write_min = 30
write_max = 5

[[point]]
name = "limit"
area = "holding"
address = 11
type = "u16"
write_max = 5
"#;
    let e = errors("", "", bad);
    let has = |path: &str, what: &str| {
        assert!(
            e.iter().any(|m| m.contains(path) && m.contains(what)),
            "no error with {path:?} and {what:?} in {e:#?}"
        );
    };
    has("point \"running\"", "only coil and holding points");
    has("point \"temp\"", "only coil and holding points");
    has("point \"model\"", "string point cannot be `writable`");
    has("point \"sp\"", "write_min 30 is above write_max 5");
    has("point \"limit\"", "not `writable = true`");
}

#[test]
fn a_device_may_only_name_writable_points_and_the_timeout_is_bounded() {
    let e = errors(
        "[writes]\nenabled = true\ntimeout = \"90s\"",
        "writes = [\"pressure\", \"nope\"]",
        PROFILE,
    );
    let has = |path: &str, what: &str| {
        assert!(
            e.iter().any(|m| m.contains(path) && m.contains(what)),
            "no error with {path:?} and {what:?} in {e:#?}"
        );
    };
    has("device \"ahu-1\" writes \"pressure\"", "is not writable");
    has("device \"ahu-1\" writes \"nope\"", "names no enabled point");
    has("[writes] timeout", "outside 100ms–30s");
}

fn refusal(r: &Resolved, point: &str, v: Value) -> Refusal {
    check(true, "ahu-1", r.devices.first(), point, &v)
        .unwrap_err()
        .refusal
}

#[test]
fn every_check_at_the_edge_refuses_with_its_reason() {
    let r = site(
        "[writes]\nenabled = true",
        "writes = [\"setpoint\", \"run_cmd\", \"reset\"]",
        PROFILE,
    )
    .unwrap();
    let d = r.devices.first();
    assert_eq!(
        check(false, "ahu-1", d, "setpoint", &Value::Float(20.0))
            .unwrap_err()
            .refusal,
        Refusal::WritesOff
    );
    assert_eq!(
        check(true, "ahu-9", None, "setpoint", &Value::Float(20.0))
            .unwrap_err()
            .refusal,
        Refusal::UnknownDevice
    );
    assert_eq!(refusal(&r, "nope", Value::Int(1)), Refusal::UnknownPoint);
    assert_eq!(refusal(&r, "pressure", Value::Int(1)), Refusal::NotWritable);
    assert_eq!(
        refusal(&r, "flow_limit", Value::Float(1.0)),
        Refusal::NotAllowed
    );
    assert_eq!(refusal(&r, "run_cmd", Value::Int(1)), Refusal::WrongKind);
    assert_eq!(
        refusal(&r, "setpoint", Value::Bool(true)),
        Refusal::WrongKind
    );
    assert_eq!(
        refusal(&r, "setpoint", Value::Float(30.5)),
        Refusal::OutOfRange
    );
    assert_eq!(
        refusal(&r, "setpoint", Value::Float(4.9)),
        Refusal::OutOfRange
    );
    assert_eq!(
        refusal(&r, "setpoint", Value::Float(f64::NAN)),
        Refusal::OutOfRange
    );
    // Scale 0.1: 21.55 would be held as 21.6 (or 21.5).
    let e = check(true, "ahu-1", d, "setpoint", &Value::Float(21.55)).unwrap_err();
    assert_eq!(e.refusal, Refusal::NotRepresentable);
    assert!(
        e.detail.contains("cannot hold 21.55 exactly"),
        "{}",
        e.detail
    );
}

#[test]
fn an_accepted_write_names_the_point_and_the_value_the_device_will_hold() {
    let r = site("[writes]\nenabled = true", "writes = true", PROFILE).unwrap();
    let d = r.devices.first();
    let ok = check(true, "ahu-1", d, "setpoint", &Value::Float(21.5)).unwrap();
    assert_eq!(r.devices[0].points[ok.point].name, "setpoint");
    assert!(matches!(ok.value, Value::Float(v) if (v - 21.5).abs() < 1e-9));
    // Ends of the range included.
    assert!(check(true, "ahu-1", d, "setpoint", &Value::Int(30)).is_ok());
    assert!(check(true, "ahu-1", d, "setpoint", &Value::Float(5.0)).is_ok());
    let on = check(true, "ahu-1", d, "run_cmd", &Value::Bool(true)).unwrap();
    assert_eq!(on.value, Value::Bool(true));
    let reset = check(true, "ahu-1", d, "reset", &Value::Bool(true)).unwrap();
    assert_eq!(reset.value, Value::Bool(true));
    // An f32 holds 0.1 only to f32 precision: accepted.
    assert!(check(true, "ahu-1", d, "flow_limit", &Value::Float(0.1)).is_ok());
}
