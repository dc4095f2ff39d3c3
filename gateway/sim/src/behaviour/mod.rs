//! How each simulated device model behaves over time.
//!
//! A [`Behaviour`] owns a small physical model (a pump's frequency, a
//! meter's energy counter) and is driven by the simulator's tick:
//! [`step`](Behaviour::step) advances the model by `dt` seconds of site time,
//! [`render`](Behaviour::render) writes the whole model into the device's
//! register bank. Because `render` always writes every point it knows, a
//! forced value (a fault, a held point) disappears by itself at the next
//! render once it is lifted. Writes from a Modbus master reach the model
//! through [`written`](Behaviour::written) for the points the model declares
//! [`writable`](Behaviour::writable).
//!
//! The behaviour is chosen by profile name ([`for_profile`]); any other
//! profile gets the [`generic`] one. Randomness comes from a per-device
//! seeded generator, so a seed reproduces a run.

mod building_services;
mod fire;
mod generic;
mod hvac;
mod library;
mod lighting;
mod meter;
mod pump;

use std::fmt;

use gateway_core::model::{Point, Value};
use rand::Rng;
use rand::rngs::StdRng;

use crate::bank::Bank;

/// Site time: Unix time plus the site's fixed UTC offset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiteTime {
    /// Milliseconds since the Unix epoch (UTC).
    pub unix_ms: i64,
    /// Offset of the site's zone from UTC, seconds (Asia/Shanghai: 8 h).
    pub utc_offset_s: i32,
}

impl SiteTime {
    /// Local hour of day as a fraction, 0.0 ≤ h < 24.0.
    pub fn local_hour(&self) -> f64 {
        let local_s = self.unix_ms.div_euclid(1000) + i64::from(self.utc_offset_s);
        local_s.rem_euclid(86_400) as f64 / 3600.0
    }
}

/// Fixed UTC offset, in seconds, of an IANA zone name or `UTC±H[:MM]` text.
/// Unknown names give `None` (the caller falls back to +8 h and says so).
pub fn utc_offset_of(zone: &str) -> Option<i32> {
    let hours = |h: i32| Some(h * 3600);
    match zone {
        "UTC" | "Etc/UTC" | "GMT" | "Europe/London" | "Europe/Lisbon" => hours(0),
        "Asia/Shanghai" | "Asia/Chongqing" | "Asia/Harbin" | "Asia/Urumqi" | "Asia/Hong_Kong"
        | "Asia/Macau" | "Asia/Taipei" | "Asia/Singapore" | "Asia/Kuala_Lumpur" | "Asia/Manila"
        | "Australia/Perth" => hours(8),
        "Asia/Tokyo" | "Asia/Seoul" => hours(9),
        "Asia/Bangkok" | "Asia/Jakarta" | "Asia/Ho_Chi_Minh" => hours(7),
        "Asia/Kolkata" => Some(5 * 3600 + 1800),
        "Asia/Dubai" => hours(4),
        "Europe/Berlin" | "Europe/Paris" | "Europe/Madrid" | "Europe/Rome" => hours(1),
        "America/New_York" => hours(-5),
        "America/Los_Angeles" => hours(-8),
        other => {
            let rest = other
                .strip_prefix("UTC")
                .or_else(|| other.strip_prefix("GMT"))?;
            let (sign, rest) = match rest.as_bytes().first()? {
                b'+' => (1, &rest[1..]),
                b'-' => (-1, &rest[1..]),
                _ => return None,
            };
            let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
            let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
            ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 3600 + m * 60))
        }
    }
}

/// Writes a model into a bank by point name. Names the device does not have
/// (a point disabled by an override) are skipped; a value the point's type
/// cannot hold is skipped and logged: a behaviour bug must not stop serving.
#[derive(Debug)]
pub struct Writer<'a> {
    bank: &'a mut Bank,
}

impl<'a> Writer<'a> {
    /// A writer over `bank`.
    pub fn new(bank: &'a mut Bank) -> Self {
        Self { bank }
    }

    /// The device's points.
    pub fn points(&self) -> &[Point] {
        self.bank.points()
    }

    /// Sets a point to any value.
    pub fn value(&mut self, name: &str, value: Value) {
        if self.bank.index_of(name).is_none() {
            return;
        }
        if let Err(error) = self.bank.set_named(name, &value) {
            tracing::debug!(point = name, %error, "simulated value not stored");
        }
    }

    /// Sets a numeric point (engineering units, before scaling).
    pub fn num(&mut self, name: &str, v: f64) {
        self.value(name, Value::Float(v));
    }

    /// Sets a boolean point.
    pub fn bool(&mut self, name: &str, v: bool) {
        self.value(name, Value::Bool(v));
    }

    /// Sets an integer point.
    pub fn int(&mut self, name: &str, v: i64) {
        self.value(name, Value::Int(v));
    }
}

/// The model behind one simulated device.
pub trait Behaviour: Send + fmt::Debug {
    /// Advances the model by `dt` seconds ending at site time `now`.
    fn step(&mut self, now: SiteTime, dt: f64, rng: &mut StdRng);
    /// Writes every point the model knows into the bank.
    fn render(&self, out: &mut Writer<'_>);
    /// Whether a master may write this point (coils and holding registers).
    fn writable(&self, _point: &str) -> bool {
        false
    }
    /// A master (or the control interface) wrote `point`; take it into the model.
    fn written(&mut self, _point: &str, _value: &Value) {}
}

/// The behaviour of a profile, by name; the generic one for unknown profiles.
pub fn for_profile(
    profile: &str,
    device_id: &str,
    points: &[Point],
    rng: &mut StdRng,
) -> Box<dyn Behaviour> {
    match profile {
        "pump-vfd" => Box::new(pump::Pump::new(rng)),
        "meter-sdm630" => Box::new(meter::Meter::new(rng)),
        "meter-sdm630-mct" | "meter-dtsu666" | "meter-adl400" | "meter-sdm120" => {
            Box::new(meter::Meter::for_points(rng, points))
        }
        "drive-invt-gd200a" => Box::new(library::Drive::new(library::DriveMap::InvtGd200a, rng)),
        "drive-delta-c2000" => Box::new(library::Drive::new(library::DriveMap::DeltaC2000, rng)),
        "booster-pump-controller" => Box::new(library::Booster::new()),
        "th-sensor-rs485" => Box::new(library::Climate::new()),
        "level-transmitter-rs485" => Box::new(library::Level::new()),
        "breaker-di8" => Box::new(building_services::Breakers),
        "fire-panel" => Box::new(fire::FirePanel),
        "lighting-relay" => Box::new(lighting::Lighting::new(device_id)),
        "fan-coil" => Box::new(hvac::FanCoil::new(rng)),
        "leak-sensor" => Box::new(building_services::LeakSensor),
        "pressure-transmitter" => Box::new(building_services::Pressure::new(rng)),
        "spd-monitor" => Box::new(building_services::Spd::new(rng)),
        "elevator-status" => Box::new(building_services::Elevator::new(rng)),
        other => Box::new(generic::Generic::new(other, points, rng)),
    }
}

/// Moves `x` toward `target` by at most `rate × dt`.
pub(crate) fn approach(x: f64, target: f64, rate: f64, dt: f64) -> f64 {
    let step = rate * dt;
    if (target - x).abs() <= step {
        target
    } else {
        x + step * (target - x).signum()
    }
}

/// A bounded random walk: `x` plus noise of about `sigma` per √s, pulled back
/// toward `centre` and kept in `lo..=hi`.
pub(crate) fn wander(
    x: f64,
    centre: f64,
    sigma: f64,
    lo: f64,
    hi: f64,
    dt: f64,
    rng: &mut StdRng,
) -> f64 {
    let noise = rng.random_range(-1.0..=1.0) * sigma * dt.sqrt();
    let pull = (centre - x) * (0.1 * dt).min(1.0);
    (x + noise + pull).clamp(lo, hi)
}

#[cfg(test)]
mod tests;
