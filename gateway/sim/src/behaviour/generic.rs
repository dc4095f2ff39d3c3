//! The fallback for profiles without a model of their own.
//!
//! Numbers wander inside the point's `min..max` (or 0..100 when unbounded),
//! booleans stay false, text reads as a model name `SIM-<profile>`. Every
//! coil and holding register is writable and keeps what was written.

use gateway_core::model::{Area, DataType, Point, Value};
use rand::Rng;
use rand::rngs::StdRng;

use super::{Behaviour, SiteTime, Writer, wander};

#[derive(Debug)]
struct Slot {
    name: String,
    writable: bool,
    value: Value,
    /// For numbers: (lo, hi) of the wander; `None` = fixed value.
    range: Option<(f64, f64)>,
}

/// A device that just shows plausible numbers.
#[derive(Debug)]
pub struct Generic {
    slots: Vec<Slot>,
}

impl Generic {
    /// One slot per point.
    pub fn new(profile: &str, points: &[Point], rng: &mut StdRng) -> Self {
        let slots = points
            .iter()
            .map(|p| {
                let writable = matches!(p.area, Area::Coil | Area::Holding);
                let (value, range) = match p.data_type {
                    DataType::Bool | DataType::Bit(_) => (Value::Bool(false), None),
                    DataType::String(_) => (Value::Text(format!("SIM-{profile}")), None),
                    _ => {
                        let unsigned =
                            matches!(p.data_type, DataType::U16 | DataType::U32 | DataType::U64);
                        let lo = p.min.unwrap_or(0.0);
                        let lo = if unsigned { lo.max(0.0) } else { lo };
                        let hi = p.max.unwrap_or(lo + 100.0);
                        let v = rng.random_range(0.0..=1.0) * (hi - lo) + lo;
                        (Value::Float(v), Some((lo, hi)))
                    }
                };
                Slot {
                    name: p.name.clone(),
                    writable,
                    value,
                    range,
                }
            })
            .collect();
        Self { slots }
    }
}

impl Behaviour for Generic {
    fn step(&mut self, _now: SiteTime, dt: f64, rng: &mut StdRng) {
        for slot in &mut self.slots {
            if let (Some((lo, hi)), Value::Float(v)) = (slot.range, &slot.value)
                && !slot.writable
            {
                let centre = (lo + hi) / 2.0;
                slot.value = Value::Float(wander(*v, centre, (hi - lo) * 0.01, lo, hi, dt, rng));
            }
        }
    }

    fn render(&self, out: &mut Writer<'_>) {
        for slot in &self.slots {
            out.value(&slot.name, slot.value.clone());
        }
    }

    fn writable(&self, point: &str) -> bool {
        self.slots.iter().any(|s| s.name == point && s.writable)
    }

    fn written(&mut self, point: &str, value: &Value) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.name == point) {
            slot.value = value.clone();
        }
    }
}
