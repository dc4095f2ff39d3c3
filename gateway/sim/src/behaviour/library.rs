//! Models for the maker-map profiles of the library that are not meters:
//! the two pump drives (on top of the [`Pump`] duty cycle), the booster
//! controller, and the field transmitters. Each keeps its profile's health
//! rules quiet in normal operation, so that the demo shows them Up.

use gateway_core::model::Value;
use rand::rngs::StdRng;

use super::pump::Pump;
use super::{Behaviour, SiteTime, Writer, approach, wander};

/// Which drive map a [`Drive`] renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriveMap {
    /// `drive-invt-gd200a`.
    InvtGd200a,
    /// `drive-delta-c2000`.
    DeltaC2000,
}

/// A pump on a drive of a maker's map.
#[derive(Debug)]
pub struct Drive {
    pump: Pump,
    map: DriveMap,
}

impl Drive {
    /// A drive at a random point of its pump's duty cycle.
    pub fn new(map: DriveMap, rng: &mut StdRng) -> Self {
        Self {
            pump: Pump::new(rng),
            map,
        }
    }
}

impl Behaviour for Drive {
    fn step(&mut self, now: SiteTime, dt: f64, rng: &mut StdRng) {
        self.pump.step(now, dt, rng);
    }

    fn render(&self, out: &mut Writer<'_>) {
        let hz = self.pump.frequency();
        let load = hz / 50.0;
        let running = self.pump.is_running();
        let current = if hz > 0.0 {
            3.0 + 25.0 * load * load
        } else {
            0.0
        };
        out.num("frequency", hz);
        out.num("output_current", current);
        out.num("dc_bus_voltage", 540.0);
        match self.map {
            DriveMap::InvtGd200a => {
                out.int("state", if running { 1 } else { 3 });
                out.int("fault_code", 0);
                out.num("frequency_setpoint", self.pump.target());
                out.num(
                    "set_frequency",
                    if running { self.pump.target() } else { 0.0 },
                );
                out.num("output_voltage", (380.0 * load).round());
                out.num("speed", (2950.0 * load).round());
                out.num("pid_feedback", 20.0 + 50.0 * load * load);
            }
            DriveMap::DeltaC2000 => {
                out.int("error_code", 0);
                out.bool("status_bit0", running);
                out.bool("running", running);
                out.bool("jog", false);
                out.num("frequency_command", self.pump.target());
                out.num("output_voltage", 380.0 * load);
            }
        }
    }

    fn writable(&self, point: &str) -> bool {
        self.map == DriveMap::InvtGd200a && point == "frequency_setpoint"
    }

    fn written(&mut self, point: &str, value: &Value) {
        if point == "frequency_setpoint"
            && let Some(hz) = value.as_f64()
        {
            self.pump.set_target(hz);
        }
    }
}

/// `booster-pump-controller`: pump 1 holds the outlet at the setpoint in
/// auto mode; the inlet has water.
#[derive(Debug)]
pub struct Booster {
    setpoint: f64,
    run: bool,
    pressure: f64,
    hz: f64,
}

impl Booster {
    /// A booster set running at 0.35 MPa.
    pub fn new() -> Self {
        Self {
            setpoint: 0.35,
            run: true,
            pressure: 0.35,
            hz: 42.0,
        }
    }
}

impl Behaviour for Booster {
    fn step(&mut self, _now: SiteTime, dt: f64, rng: &mut StdRng) {
        let goal_hz = if self.run {
            30.0 + 40.0 * self.setpoint
        } else {
            0.0
        };
        self.hz = approach(self.hz, goal_hz.min(50.0), 2.0, dt);
        let goal = if self.run { self.setpoint } else { 0.2 };
        self.pressure = wander(self.pressure, goal, 0.003, 0.0, 1.6, dt, rng);
    }

    fn render(&self, out: &mut Writer<'_>) {
        out.num("outlet_pressure", self.pressure);
        out.num("inlet_pressure", 0.2);
        out.num("pressure_setpoint", self.setpoint);
        out.num("frequency", self.hz);
        out.bool("pump1_running", self.run);
        out.bool("pump2_running", false);
        out.bool("pump3_running", false);
        out.bool("auto_mode", self.run);
        for name in [
            "pump1_fault",
            "pump2_fault",
            "pump3_fault",
            "low_water",
            "over_pressure",
            "system_fault",
        ] {
            out.bool(name, false);
        }
        out.int("remote_run", i64::from(self.run));
    }

    fn writable(&self, point: &str) -> bool {
        matches!(point, "pressure_setpoint" | "remote_run")
    }

    fn written(&mut self, point: &str, value: &Value) {
        let Some(v) = value.as_f64() else { return };
        match point {
            "pressure_setpoint" => self.setpoint = v.clamp(0.1, 1.6),
            "remote_run" => self.run = v != 0.0,
            _ => {}
        }
    }
}

/// `th-sensor-rs485`: a plant room at about 24 °C and 55 %RH.
#[derive(Debug)]
pub struct Climate {
    temperature: f64,
    humidity: f64,
}

impl Climate {
    /// Room conditions.
    pub fn new() -> Self {
        Self {
            temperature: 24.0,
            humidity: 55.0,
        }
    }
}

impl Behaviour for Climate {
    fn step(&mut self, _now: SiteTime, dt: f64, rng: &mut StdRng) {
        self.temperature = wander(self.temperature, 24.0, 0.05, 18.0, 30.0, dt, rng);
        self.humidity = wander(self.humidity, 55.0, 0.2, 35.0, 75.0, dt, rng);
    }

    fn render(&self, out: &mut Writer<'_>) {
        out.num("temperature", self.temperature);
        out.num("humidity", self.humidity);
    }
}

/// `level-transmitter-rs485`: a roof tank about 2.5 m full, the transmitter
/// set to metres with 3 decimals as the profile expects.
#[derive(Debug)]
pub struct Level {
    level: f64,
}

impl Level {
    /// A tank at its normal level.
    pub fn new() -> Self {
        Self { level: 2.5 }
    }
}

impl Behaviour for Level {
    fn step(&mut self, _now: SiteTime, dt: f64, rng: &mut StdRng) {
        self.level = wander(self.level, 2.5, 0.01, 1.5, 3.5, dt, rng);
    }

    fn render(&self, out: &mut Writer<'_>) {
        out.int("unit_code", 1);
        out.int("decimals", 3);
        out.num("level", self.level);
    }
}
