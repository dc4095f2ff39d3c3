//! Rendering poll outcomes for people and programs (`run --stdout`, `demo`).

use std::fmt::Write as _;

use gateway_core::config::Resolved;
use gateway_core::model::{BadReason, PollClass, PollOutcome, Quality, Value};
use serde_json::{Map, Value as Json, json};

fn value_json(v: &Value) -> Json {
    match v {
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::String(s.clone()),
    }
}

/// Short machine name of a bad-quality reason.
pub fn bad_reason_name(r: BadReason) -> String {
    match r {
        BadReason::NotANumber => "nan".into(),
        BadReason::Infinite => "infinite".into(),
        BadReason::OutOfRange => "out_of_range".into(),
        BadReason::InvalidText => "invalid_text".into(),
        BadReason::Exception { code } => format!("exception_{code}"),
        BadReason::NotRead => "not_read".into(),
    }
}

/// One JSON object (a single line) describing a poll outcome, with
/// `"type": "poll"` (engine events on the same stream have their own type).
///
/// `points` holds every point read (null when no value could be decoded);
/// `quality` lists only the points whose quality is not good, with why.
pub fn outcome_json_line(cfg: &Resolved, o: &PollOutcome) -> String {
    let dev = &cfg.devices[o.device];
    let mut points = Map::with_capacity(o.samples.len());
    let mut quality = Map::new();
    for s in &o.samples {
        let Some(p) = dev.points.get(s.point) else {
            continue;
        };
        points.insert(
            p.name.clone(),
            s.value.as_ref().map_or(Json::Null, value_json),
        );
        if let Quality::Bad(r) = s.quality {
            quality.insert(p.name.clone(), Json::String(bad_reason_name(r)));
        }
    }
    let line = json!({
        "type": "poll",
        "ts": o.ts_ms,
        "site": cfg.site,
        "gateway": cfg.gateway,
        "device": dev.id,
        "class": dev.class.as_str(),
        "poll": match o.class { PollClass::Full => "full", PollClass::Alarm => "alarm" },
        "points": points,
        "quality": quality,
        "failure": o.failure.map(|f| f.to_string()),
        "requests": o.requests,
        "failed_requests": o.failed_requests,
        "elapsed_us": o.elapsed_us,
    });
    line.to_string()
}

/// Formats a value with its unit for a terminal.
pub fn value_text(v: &Value, unit: &str) -> String {
    let mut s = match v {
        Value::Bool(b) => if *b { "on" } else { "off" }.to_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => {
            if f.abs() >= 1000.0 {
                format!("{f:.0}")
            } else if f.abs() >= 10.0 {
                format!("{f:.1}")
            } else {
                format!("{f:.2}")
            }
        }
        Value::Text(t) => t.clone(),
    };
    if !unit.is_empty() {
        let _ = write!(s, " {unit}");
    }
    s
}
