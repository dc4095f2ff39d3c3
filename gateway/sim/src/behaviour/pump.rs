//! `pump-vfd`: a pump on a variable-frequency drive.
//!
//! The pump runs on a duty cycle (about 10 minutes on, 5 off, phase chosen
//! at random so two pumps do not switch together). Running, the frequency
//! ramps at 2 Hz/s toward 45–50 Hz; stopped, toward 0. Current, voltage and
//! outlet pressure follow the frequency by the affinity laws (pressure ∝ f²),
//! with a static head of about 0.6 bar; run hours count while running.
//!
//! A profile that adds a writable `run_cmd` point (coil or `bool`/`bit`
//! register) lets a master start and stop the pump: once written, the
//! command holds (true: runs, false: stopped) instead of the duty cycle,
//! and `run_cmd` reads back what was written. The shipped `pump-vfd`
//! profile has no such point: its pumps only report.

use rand::Rng;
use rand::rngs::StdRng;

use gateway_core::model::Value;

use super::{Behaviour, SiteTime, Writer, approach, wander};

const ON_S: f64 = 600.0;
const OFF_S: f64 = 300.0;

/// Model of one pump and its drive.
#[derive(Debug)]
pub struct Pump {
    running: bool,
    /// Seconds left in the current on/off phase.
    phase_left: f64,
    target_hz: f64,
    hz: f64,
    pressure_noise: f64,
    run_hours: f64,
    dc_bus: f64,
    /// A master's start (true) or stop (false) command, holding over the
    /// duty cycle once written.
    commanded: Option<bool>,
}

impl Pump {
    /// A pump at a random point of its duty cycle.
    pub fn new(rng: &mut StdRng) -> Self {
        let running = rng.random_bool(0.6);
        let phase_left = rng.random_range(0.0..if running { ON_S } else { OFF_S });
        let target_hz = rng.random_range(45.0..50.0);
        Self {
            running,
            phase_left,
            target_hz,
            hz: if running { target_hz } else { 0.0 },
            pressure_noise: 0.0,
            run_hours: rng.random_range(1_000.0..20_000.0_f64).floor(),
            dc_bus: 540.0,
            commanded: None,
        }
    }
}

impl Pump {
    /// The output frequency now, Hz.
    pub(super) fn frequency(&self) -> f64 {
        self.hz
    }

    /// Whether the pump is in the running part of its duty cycle.
    pub(super) fn is_running(&self) -> bool {
        self.running || self.hz > 0.0
    }

    /// The frequency the drive ramps to while running (a setpoint write).
    pub(super) fn set_target(&mut self, hz: f64) {
        self.target_hz = hz.clamp(0.0, 50.0);
    }

    /// The frequency the drive ramps to while running.
    pub(super) fn target(&self) -> f64 {
        self.target_hz
    }
}

impl Behaviour for Pump {
    fn step(&mut self, _now: SiteTime, dt: f64, rng: &mut StdRng) {
        self.phase_left -= dt;
        if let Some(on) = self.commanded {
            self.running = on;
        } else if self.phase_left <= 0.0 {
            self.running = !self.running;
            self.phase_left = if self.running { ON_S } else { OFF_S } * rng.random_range(0.8..1.2);
            self.target_hz = rng.random_range(45.0..50.0);
        }
        let goal = if self.running { self.target_hz } else { 0.0 };
        self.hz = approach(self.hz, goal, 2.0, dt);
        if self.running {
            self.run_hours += dt / 3600.0;
        }
        self.pressure_noise = wander(self.pressure_noise, 0.0, 0.02, -0.08, 0.08, dt, rng);
        self.dc_bus = wander(self.dc_bus, 540.0, 1.0, 530.0, 550.0, dt, rng);
    }

    fn render(&self, out: &mut Writer<'_>) {
        let load = self.hz / 50.0;
        out.bool("running", self.running || self.hz > 0.0);
        out.bool("fault", false);
        out.bool("ready", true);
        out.bool("remote", true);
        out.num("frequency", self.hz);
        out.num(
            "output_current",
            if self.hz > 0.0 {
                3.0 + 25.0 * load * load
            } else {
                0.0
            },
        );
        out.num("output_voltage", (380.0 * load).round());
        out.num(
            "outlet_pressure",
            (0.6 + 3.2 * load * load + self.pressure_noise * load).max(0.0),
        );
        out.int("fault_code", 0);
        out.num("run_hours", self.run_hours.floor());
        out.num("dc_bus_voltage", self.dc_bus.round());
        out.bool("run_cmd", self.commanded.unwrap_or(self.running));
    }

    fn writable(&self, point: &str) -> bool {
        point == "run_cmd"
    }

    fn written(&mut self, point: &str, value: &Value) {
        if point == "run_cmd"
            && let Some(v) = value.as_f64()
        {
            self.commanded = Some(v != 0.0);
            self.running = v != 0.0;
        }
    }
}
