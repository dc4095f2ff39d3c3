//! `fan-coil`: a fan-coil controller.
//!
//! Powered 08:00–20:00 site time unless a master switches it; the room
//! temperature drifts toward the setpoint (faster at higher fan speed) when
//! powered and toward the ambient 28 °C otherwise; the valve opens while the
//! room is more than 0.3 °C off the setpoint in the mode's direction.
//! `power`, `mode`, `fan_speed` and `setpoint` are writable.

use gateway_core::model::Value;
use rand::Rng;
use rand::rngs::StdRng;

use super::{Behaviour, SiteTime, Writer, wander};

const AMBIENT: f64 = 28.0;

/// Model of one fan coil.
#[derive(Debug)]
pub struct FanCoil {
    power: bool,
    /// Manual power state until the schedule's next edge.
    scheduled: Option<bool>,
    mode: i64,
    fan_speed: i64,
    setpoint: f64,
    room: f64,
}

impl FanCoil {
    /// A fan coil in a room slightly warmer than its setpoint.
    pub fn new(rng: &mut StdRng) -> Self {
        Self {
            power: false,
            scheduled: None,
            mode: 0,
            fan_speed: 2,
            setpoint: 24.0,
            room: rng.random_range(25.0..28.0),
        }
    }

    fn valve_open(&self) -> bool {
        let off = self.room - self.setpoint;
        self.power
            && match self.mode {
                0 => off > 0.3,
                1 => off < -0.3,
                _ => false,
            }
    }
}

impl Behaviour for FanCoil {
    fn step(&mut self, now: SiteTime, dt: f64, rng: &mut StdRng) {
        let want = (8.0..20.0).contains(&now.local_hour());
        if self.scheduled != Some(want) {
            self.scheduled = Some(want);
            self.power = want;
        }
        // First-order drift: toward the setpoint while the valve is open
        // (time constant ~10 min at fan speed 0, faster at higher speeds),
        // back toward ambient when the valve is shut or the unit is off.
        let (target, tau) = if !self.power {
            (AMBIENT, 1800.0)
        } else if self.valve_open() {
            (self.setpoint, 600.0 / (1.0 + self.fan_speed as f64 * 0.5))
        } else {
            (AMBIENT, 3600.0)
        };
        self.room += (target - self.room) * (dt / tau).min(1.0);
        self.room = wander(self.room, self.room, 0.005, 10.0, 40.0, dt, rng);
    }

    fn render(&self, out: &mut Writer<'_>) {
        out.bool("power", self.power);
        out.int("mode", self.mode);
        out.int("fan_speed", if self.power { self.fan_speed } else { 0 });
        out.num("setpoint", self.setpoint);
        out.num("room_temperature", (self.room * 10.0).round() / 10.0);
        out.bool("valve_open", self.valve_open());
        out.bool("filter_alarm", false);
        out.int("fault_code", 0);
    }

    fn writable(&self, point: &str) -> bool {
        matches!(point, "power" | "mode" | "fan_speed" | "setpoint")
    }

    fn written(&mut self, point: &str, value: &Value) {
        let Some(v) = value.as_f64() else { return };
        match point {
            "power" => self.power = v != 0.0,
            "mode" => self.mode = (v as i64).clamp(0, 2),
            "fan_speed" => self.fan_speed = (v as i64).clamp(0, 3),
            "setpoint" => self.setpoint = v.clamp(5.0, 35.0),
            _ => {}
        }
    }
}
