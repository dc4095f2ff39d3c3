use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::config::load::load;
use crate::model::{Area, BadReason, DataType, DeviceClass, Point, PollClass, WordOrder};

const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(300);
const MIN: i64 = 60_000;
const NONE: Vec<usize> = Vec::new();

fn point(name: &str, data_type: DataType, deadband: Option<Deadband>) -> Point {
    Point {
        name: name.to_owned(),
        unit: String::new(),
        area: Area::Holding,
        address: 0,
        data_type,
        order: WordOrder::Abcd,
        scale: 1.0,
        offset: 0.0,
        min: None,
        max: None,
        alarm: false,
        critical: false,
        deadband,
        heartbeat: None,
        write: None,
    }
}

fn device(points: Vec<Point>) -> ResolvedDevice {
    ResolvedDevice {
        id: "dev".to_owned(),
        name_zh: "设备".to_owned(),
        name_en: "dev".to_owned(),
        class: DeviceClass::Other,
        location: String::new(),
        location_en: String::new(),
        labels: Default::default(),
        bus: 0,
        unit: 1,
        profile: "test".to_owned(),
        poll_interval: Duration::from_secs(1),
        alarm_interval: Duration::from_millis(500),
        max_gap: 8,
        max_registers: 125,
        max_bits: 2000,
        points: std::sync::Arc::new(points),
        health: BTreeMap::new(),
        threshold_percent: 98.0,
        writable: Default::default(),
    }
}

fn good(point: usize, value: Value) -> Sample {
    Sample {
        point,
        value: Some(value),
        quality: Quality::Good,
    }
}

fn poll(device: usize, ts_ms: i64, samples: Vec<Sample>) -> PollOutcome {
    PollOutcome {
        device,
        ts_ms,
        class: PollClass::Full,
        samples,
        failure: None,
        requests: 1,
        failed_requests: 0,
        elapsed_us: 0,
    }
}

/// One float point 0 with `deadband`; feeds `(ts_ms, value)` and returns
/// which were published.
fn run_float(deadband: Option<Deadband>, steps: &[(i64, f64)]) -> Vec<bool> {
    let mut rbe = Rbe::new(
        &[device(vec![point("p", DataType::F32, deadband)])],
        DEFAULT_HEARTBEAT,
    );
    steps
        .iter()
        .map(|&(ts, v)| {
            !rbe.select(&poll(0, ts, vec![good(0, Value::Float(v))]))
                .is_empty()
        })
        .collect()
}

#[test]
fn the_first_value_of_every_point_is_published() {
    let mut rbe = Rbe::new(
        &[
            device(vec![
                point("a", DataType::F32, Some(Deadband::Absolute(100.0))),
                point("b", DataType::Bool, None),
            ]),
            device(vec![point("t", DataType::String(8), None)]),
        ],
        DEFAULT_HEARTBEAT,
    );
    let first = poll(
        0,
        1000,
        vec![good(0, Value::Float(1.0)), good(1, Value::Bool(false))],
    );
    assert_eq!(rbe.select(&first), vec![0, 1]);
    assert_eq!(rbe.select(&poll(0, 2000, first.samples.clone())), NONE);
    let text = poll(1, 2000, vec![good(0, Value::Text("A".to_owned()))]);
    assert_eq!(rbe.select(&text), vec![0]);
}

#[test]
fn an_absolute_deadband_publishes_moves_beyond_it_from_the_last_published_value() {
    let published = run_float(
        Some(Deadband::Absolute(0.5)),
        &[
            (0, 10.0),
            (1000, 10.3),  // 0.3 from 10.0
            (2000, 10.5),  // exactly the band: not beyond it
            (3000, 10.51), // beyond: published, now the reference
            (4000, 10.2),  // 0.31 below 10.51
            (5000, 10.0),  // 0.51 below 10.51
            (6000, 9.6),   // 0.4 below 10.0
        ],
    );
    assert_eq!(published, [true, false, false, true, false, true, false]);
}

#[test]
fn a_slow_drift_is_reported_once_it_has_moved_a_band_in_total() {
    let steps: Vec<(i64, f64)> = (0..10).map(|i| (i * 1000, 20.0 + 0.1 * i as f64)).collect();
    let published = run_float(Some(Deadband::Absolute(0.25)), &steps);
    // 20.0 published; 20.3 is the first beyond 0.25; then 20.6, 20.9.
    let at: Vec<usize> = (0..10).filter(|&i| published[i]).collect();
    assert_eq!(at, [0, 3, 6, 9]);
}

#[test]
fn a_percent_deadband_is_relative_to_the_last_published_magnitude() {
    let published = run_float(
        Some(Deadband::Percent(2.0)),
        &[
            (0, 200.0),
            (1000, 203.0),  // band 4
            (2000, 205.0),  // 5 > 4: published
            (3000, 200.95), // band 4.1: 4.05 is inside
            (4000, -100.0), // far: published
            (5000, -98.5),  // band 2 (magnitude)
            (6000, -97.9),  // 2.1 > 2
        ],
    );
    assert_eq!(published, [true, false, true, false, true, false, true]);
}

#[test]
fn a_percent_deadband_around_zero_publishes_any_change() {
    let published = run_float(
        Some(Deadband::Percent(10.0)),
        &[(0, 0.0), (1000, 0.0), (2000, 0.001)],
    );
    assert_eq!(published, [true, false, true]);
}

#[test]
fn without_a_deadband_any_change_is_published_even_between_close_big_integers() {
    let mut rbe = Rbe::new(
        &[device(vec![point("n", DataType::U64, None)])],
        DEFAULT_HEARTBEAT,
    );
    let big = u64::MAX - 1; // u64::MAX - 1 and u64::MAX are the same f64
    let mut send = |ts, v| {
        !rbe.select(&poll(0, ts, vec![good(0, Value::UInt(v))]))
            .is_empty()
    };
    assert!(send(0, big));
    assert!(!send(1000, big));
    assert!(send(2000, big + 1));
}

#[test]
fn the_heartbeat_republishes_an_unchanged_value() {
    let mut own = point("own", DataType::F32, Some(Deadband::Absolute(1.0)));
    own.heartbeat = Some(Duration::from_secs(10));
    let mut rbe = Rbe::new(
        &[device(vec![
            point("default", DataType::F32, Some(Deadband::Absolute(1.0))),
            own,
        ])],
        Duration::from_secs(60),
    );
    let mut at = |ts: i64| {
        rbe.select(&poll(
            0,
            ts,
            vec![good(0, Value::Float(5.0)), good(1, Value::Float(5.0))],
        ))
    };
    assert_eq!(at(0), vec![0, 1]);
    assert_eq!(at(9_999), NONE);
    assert_eq!(at(10_000), vec![1]); // own heartbeat, exactly due
    assert_eq!(at(19_999), NONE);
    assert_eq!(at(20_000), vec![1]);
    assert_eq!(at(59_999), vec![1]);
    assert_eq!(at(60_000), vec![0]); // default heartbeat; own was published at 59_999
    assert_eq!(at(69_999), vec![1]);
}

#[test]
fn a_clock_stepping_back_costs_one_publication_not_a_silence() {
    let mut rbe = Rbe::new(
        &[device(vec![point("p", DataType::F32, None)])],
        Duration::from_secs(60),
    );
    let mut at = |ts: i64| {
        !rbe.select(&poll(0, ts, vec![good(0, Value::Float(1.0))]))
            .is_empty()
    };
    assert!(at(100 * MIN));
    assert!(at(40 * MIN)); // an hour back: published, and the new reference
    assert!(!at(40 * MIN + 59_000));
    assert!(at(41 * MIN));
}

#[test]
fn alarm_points_publish_every_change_despite_a_deadband_also_in_alarm_polls() {
    let mut alarm = point("level", DataType::F32, Some(Deadband::Absolute(10.0)));
    alarm.alarm = true;
    let mut rbe = Rbe::new(
        &[device(vec![
            point("temperature", DataType::F32, Some(Deadband::Absolute(10.0))),
            point("trip", DataType::Bool, None),
            alarm,
        ])],
        DEFAULT_HEARTBEAT,
    );
    let full = poll(
        0,
        0,
        vec![
            good(0, Value::Float(20.0)),
            good(1, Value::Bool(false)),
            good(2, Value::Float(1.0)),
        ],
    );
    assert_eq!(rbe.select(&full), vec![0, 1, 2]);
    // Alarm-class polls carry only the alarm points, by their point index.
    let mut alarm_poll = |ts, trip, level| {
        let mut o = poll(
            0,
            ts,
            vec![good(1, Value::Bool(trip)), good(2, Value::Float(level))],
        );
        o.class = PollClass::Alarm;
        rbe.select(&o)
    };
    assert_eq!(alarm_poll(500, false, 1.0), NONE);
    assert_eq!(alarm_poll(1000, false, 1.5), vec![1]); // sample 1 = point 2
    assert_eq!(alarm_poll(1500, true, 1.5), vec![0]);
    assert_eq!(alarm_poll(2000, true, 1.5), NONE);
    // The non-alarm point keeps its deadband in the next full poll.
    let next = poll(
        0,
        2500,
        vec![
            good(0, Value::Float(25.0)),
            good(1, Value::Bool(true)),
            good(2, Value::Float(1.5)),
        ],
    );
    assert_eq!(rbe.select(&next), NONE);
}

#[test]
fn a_quality_change_is_published_whatever_the_value() {
    let mut rbe = Rbe::new(
        &[device(vec![point(
            "p",
            DataType::F32,
            Some(Deadband::Absolute(100.0)),
        )])],
        DEFAULT_HEARTBEAT,
    );
    let mut at = |ts, value: Option<f64>, quality| {
        let s = Sample {
            point: 0,
            value: value.map(Value::Float),
            quality,
        };
        !rbe.select(&poll(0, ts, vec![s])).is_empty()
    };
    let not_read = Quality::Bad(BadReason::NotRead);
    let refused = Quality::Bad(BadReason::Exception { code: 2 });
    let range = Quality::Bad(BadReason::OutOfRange);
    let nan = Quality::Bad(BadReason::NotANumber);
    assert!(at(0, Some(1.0), Quality::Good));
    assert!(at(1000, None, not_read)); // good → bad
    assert!(!at(2000, None, not_read)); // still the same bad
    assert!(at(3000, None, refused)); // a different bad reason
    assert!(at(4000, Some(1.0), Quality::Good)); // bad → good, same value
    assert!(at(5000, Some(150.0), range)); // out of range
    assert!(!at(6000, Some(160.0), range)); // same bad, inside the band
    assert!(at(7000, Some(f64::NAN), nan));
    assert!(!at(8000, Some(f64::NAN), nan)); // NaN equals the NaN before it
}

#[test]
fn booleans_and_text_publish_on_any_change_only() {
    let mut rbe = Rbe::new(
        &[device(vec![
            point("on", DataType::Bit(3), None),
            point("model", DataType::String(16), None),
        ])],
        DEFAULT_HEARTBEAT,
    );
    let mut at = |ts, on, model: &str| {
        rbe.select(&poll(
            0,
            ts,
            vec![
                good(0, Value::Bool(on)),
                good(1, Value::Text(model.to_owned())),
            ],
        ))
    };
    assert_eq!(at(0, true, "LIFT-A"), vec![0, 1]);
    assert_eq!(at(1000, true, "LIFT-A"), NONE);
    assert_eq!(at(2000, false, "LIFT-A"), vec![0]);
    assert_eq!(at(3000, false, "LIFT-B"), vec![1]);
    assert_eq!(at(4000, true, "LIFT-A"), vec![0, 1]);
}

#[test]
fn reset_publishes_everything_again() {
    let mut rbe = Rbe::new(
        &[device(vec![point("p", DataType::F32, None)])],
        DEFAULT_HEARTBEAT,
    );
    let o = poll(0, 0, vec![good(0, Value::Float(1.0))]);
    assert_eq!(rbe.select(&o), vec![0]);
    assert_eq!(rbe.select(&o), NONE);
    rbe.reset();
    assert_eq!(rbe.select(&o), vec![0]);
}

#[test]
fn samples_unknown_to_the_filter_are_published_not_dropped() {
    let mut rbe = Rbe::new(
        &[device(vec![point("p", DataType::F32, None)])],
        DEFAULT_HEARTBEAT,
    );
    let o = poll(
        0,
        0,
        vec![good(0, Value::Float(1.0)), good(7, Value::Float(1.0))],
    );
    assert_eq!(rbe.select(&o), vec![0, 1]);
    assert_eq!(rbe.select(&o), vec![1]);
    let other = poll(3, 0, vec![good(0, Value::Float(1.0))]);
    assert_eq!(rbe.select(&other), vec![0]);
}

#[test]
fn select_into_reuses_the_callers_buffer() {
    let mut rbe = Rbe::new(
        &[device(vec![point("p", DataType::F32, None)])],
        DEFAULT_HEARTBEAT,
    );
    let mut out = vec![42, 43];
    rbe.select_into(&poll(0, 0, vec![good(0, Value::Float(1.0))]), &mut out);
    assert_eq!(out, [0]);
    rbe.select_into(&poll(0, 1, vec![good(0, Value::Float(1.0))]), &mut out);
    assert!(out.is_empty());
}

// --- configuration ---------------------------------------------------------

const PROFILE: &str = r#"
description = "test"

[[point]]
name = "pressure"
unit = "bar"
area = "holding"
address = 0
type = "u16"
scale = 0.01
deadband = 0.05

[[point]]
name = "flow"
area = "holding"
address = 1
type = "u16"
deadband = "2.5%"
heartbeat = "30s"

[[point]]
name = "temperature"
area = "holding"
address = 2
type = "i16"
deadband = 1

[[point]]
name = "running"
area = "holding"
address = 3
type = "bit"
bit = 0
"#;

const GATEWAY: &str = r#"
site = "s"
gateway = "g"

[[bus]]
id = "tcp"
kind = "tcp"
address = "127.0.0.1:502"

[[device]]
id = "d-1"
name_zh = "设备"
class = "other"
bus = "tcp"
unit = 1
profile = "p"
"#;

fn load_with(profile: &str, extra: &str) -> Result<crate::config::Resolved, Vec<String>> {
    let profiles: BTreeMap<String, (String, String)> =
        [("p".to_owned(), ("p.toml".to_owned(), profile.to_owned()))].into();
    load(
        "gw.toml",
        &format!("{GATEWAY}{extra}"),
        &profiles,
        &|_: &str| None,
    )
    .map_err(|errs| errs.iter().map(ToString::to_string).collect())
}

#[test]
fn profiles_and_overrides_set_deadbands_and_heartbeats() {
    let r = load_with(
        PROFILE,
        "points = { pressure = { deadband = \"1%\", heartbeat = \"2m\" }, flow = { deadband = 3 } }\n",
    )
    .unwrap();
    let p = &r.devices[0].points;
    assert_eq!(p[0].deadband, Some(Deadband::Percent(1.0)));
    assert_eq!(p[0].heartbeat, Some(Duration::from_secs(120)));
    assert_eq!(p[1].deadband, Some(Deadband::Absolute(3.0)));
    assert_eq!(p[1].heartbeat, Some(Duration::from_secs(30)));
    assert_eq!(p[2].deadband, Some(Deadband::Absolute(1.0)));
    assert_eq!(p[3].deadband, None);
    assert_eq!(p[3].heartbeat, None);

    let plain = load_with(PROFILE, "").unwrap();
    let p = &plain.devices[0].points;
    assert_eq!(p[0].deadband, Some(Deadband::Absolute(0.05)));
    assert_eq!(p[1].deadband, Some(Deadband::Percent(2.5)));
}

#[test]
fn bad_deadbands_and_heartbeats_are_all_reported_with_their_paths() {
    let profile = PROFILE
        .replace("deadband = 0.05", "deadband = -0.05")
        .replace("deadband = \"2.5%\"", "deadband = \"150%\"")
        .replace("heartbeat = \"30s\"", "heartbeat = \"500ms\"")
        .replace("deadband = 1", "deadband = nan")
        .replace("bit = 0", "bit = 0\ndeadband = 1");
    let errs = load_with(&profile, "").unwrap_err();
    let expect = [
        (
            "profile \"p\" point \"pressure\"",
            "deadband -0.05 must be a finite number ≥ 0",
        ),
        (
            "profile \"p\" point \"flow\"",
            "deadband \"150%\" must be a percentage from 0 to 100",
        ),
        (
            "profile \"p\" point \"flow\"",
            "heartbeat 500ms is below the minimum of 1s",
        ),
        (
            "profile \"p\" point \"temperature\"",
            "deadband NaN must be a finite number",
        ),
        (
            "profile \"p\" point \"running\"",
            "deadband 1 applies to numbers only; a bit point",
        ),
    ];
    for (path, message) in expect {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(path) && e.contains(message)),
            "no error {path}: {message} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");

    // Overrides of a valid profile, checked per device.
    let errs = load_with(
        PROFILE,
        "points = { pressure = { heartbeat = \"0s\" }, flow = { deadband = inf } }\n",
    )
    .unwrap_err();
    let expect = [
        (
            "device \"d-1\" point \"pressure\"",
            "heartbeat 0s is below the minimum of 1s",
        ),
        (
            "device \"d-1\" point \"flow\"",
            "deadband inf must be a finite number",
        ),
    ];
    for (path, message) in expect {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(path) && e.contains(message)),
            "no error {path}: {message} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
}

#[test]
fn a_deadband_that_is_neither_a_number_nor_a_percentage_is_refused_with_a_hint() {
    let profile = PROFILE.replace("deadband = 0.05", "deadband = \"0.05 bar\"");
    let errs = load_with(&profile, "").unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.contains("invalid deadband \"0.05 bar\"") && e.contains("\"2%\"")),
        "{errs:#?}"
    );
}

#[test]
fn a_deadband_on_a_boolean_override_is_refused() {
    let errs = load_with(PROFILE, "points = { running = { deadband = \"5%\" } }\n").unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.starts_with("device \"d-1\" point \"running\"")
                && e.contains("applies to numbers only")),
        "{errs:#?}"
    );
}

// --- properties ------------------------------------------------------------

/// One poll of the property tests' single point.
#[derive(Clone, Debug)]
struct Step {
    dt_ms: i64,
    value: Option<f64>,
    quality: Quality,
}

fn step() -> impl Strategy<Value = Step> {
    let quality = prop_oneof![
        6 => Just(Quality::Good),
        1 => Just(Quality::Bad(BadReason::OutOfRange)),
        1 => Just(Quality::Bad(BadReason::NotRead)),
    ];
    (0i64..20_000, -400i32..400, quality).prop_map(|(dt_ms, v, quality)| Step {
        dt_ms,
        // Quarter steps around a slowly varying level; no value when not read.
        value: (quality != Quality::Bad(BadReason::NotRead)).then_some(f64::from(v) / 4.0),
        quality,
    })
}

fn deadband() -> impl Strategy<Value = Option<Deadband>> {
    prop_oneof![
        Just(None),
        (0u32..40).prop_map(|d| Some(Deadband::Absolute(f64::from(d) / 4.0))),
        (0u32..50).prop_map(|p| Some(Deadband::Percent(f64::from(p)))),
    ]
}

/// True when `new` is within the band of `last` (same decoded-or-not, and
/// not beyond the deadband; alarm points have none).
fn within(last: Option<f64>, new: Option<f64>, band: Option<Deadband>) -> bool {
    match (last, new) {
        (None, None) => true,
        (Some(l), Some(n)) => match band {
            None => l == n,
            Some(b) => (n - l).abs() <= b.threshold(l),
        },
        _ => false,
    }
}

proptest! {
    /// Published samples are exactly the needed ones: two consecutive
    /// publications of a point are never within the deadband with the same
    /// quality before the heartbeat (no needless message), and a sample left
    /// out is always within the deadband of the last published one, with
    /// its quality, before the heartbeat (nothing missed).
    #[test]
    fn publishes_exactly_the_moves_beyond_the_band_quality_changes_and_heartbeats(
        band in deadband(),
        alarm in any::<bool>(),
        heartbeat_s in 1u64..60,
        steps in prop::collection::vec(step(), 1..200),
    ) {
        let mut p = point("p", DataType::F32, band);
        p.alarm = alarm;
        let effective = if alarm { None } else { band };
        let heartbeat_ms = i64::try_from(heartbeat_s * 1000).unwrap();
        let mut rbe = Rbe::new(&[device(vec![p])], Duration::from_secs(heartbeat_s));
        let mut now = 1_700_000_000_000i64;
        let mut last: Option<(i64, Option<f64>, Quality)> = None;
        for (i, s) in steps.iter().enumerate() {
            now += s.dt_ms;
            let sample = Sample { point: 0, value: s.value.map(Value::Float), quality: s.quality };
            let published = !rbe.select(&poll(0, now, vec![sample])).is_empty();
            match last {
                None => prop_assert!(published, "step {i}: the first value must be published"),
                Some((ts, value, quality)) => {
                    let quiet = quality == s.quality
                        && now - ts < heartbeat_ms
                        && within(value, s.value, effective);
                    prop_assert_eq!(published, !quiet, "step {}: {:?} after {:?}", i, s, last);
                }
            }
            if published {
                last = Some((now, s.value, s.quality));
            }
        }
    }

    /// Whatever the values, a point is never silent longer than its
    /// heartbeat plus one poll gap.
    #[test]
    fn no_point_is_silent_longer_than_its_heartbeat_and_one_poll(
        band in deadband(),
        heartbeat_s in 1u64..60,
        steps in prop::collection::vec(step(), 1..200),
    ) {
        let mut rbe = Rbe::new(
            &[device(vec![point("p", DataType::F32, band)])],
            Duration::from_secs(heartbeat_s),
        );
        let limit = i64::try_from(heartbeat_s * 1000).unwrap() + 20_000;
        let mut now = 0i64;
        let mut last_published = 0i64;
        for s in &steps {
            now += s.dt_ms;
            let sample = Sample { point: 0, value: s.value.map(Value::Float), quality: s.quality };
            if !rbe.select(&poll(0, now, vec![sample])).is_empty() {
                last_published = now;
            }
            prop_assert!(now - last_published < limit);
        }
    }
}
