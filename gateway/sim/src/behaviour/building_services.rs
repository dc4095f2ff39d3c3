//! Small building services: breaker contacts, leak sensors, the sprinkler
//! main's pressure transmitter, the surge/earthing monitor and the elevator.

use rand::Rng;
use rand::rngs::StdRng;

use super::{Behaviour, SiteTime, Writer, wander};

/// `breaker-di8`: eight breakers closed (circuit 8 is a spare, left open), none tripped.
#[derive(Debug)]
pub struct Breakers;

impl Behaviour for Breakers {
    fn step(&mut self, _now: SiteTime, _dt: f64, _rng: &mut StdRng) {}

    fn render(&self, out: &mut Writer<'_>) {
        for i in 1..=8 {
            out.bool(&format!("breaker_{i}"), i != 8);
            out.bool(&format!("trip_{i}"), false);
        }
    }
}

/// `leak-sensor`: dry, cable intact.
#[derive(Debug)]
pub struct LeakSensor;

impl Behaviour for LeakSensor {
    fn step(&mut self, _now: SiteTime, _dt: f64, _rng: &mut StdRng) {}

    fn render(&self, out: &mut Writer<'_>) {
        out.bool("leak", false);
        out.bool("cable_break", false);
        out.int("leak_zone", 0);
    }
}

/// `pressure-transmitter`: the sprinkler main held at ~0.45 MPa by its jockey pump.
#[derive(Debug)]
pub struct Pressure {
    mpa: f64,
}

impl Pressure {
    /// A transmitter near its nominal pressure.
    pub fn new(rng: &mut StdRng) -> Self {
        Self {
            mpa: 0.45 + rng.random_range(-0.01..0.01),
        }
    }
}

impl Behaviour for Pressure {
    fn step(&mut self, _now: SiteTime, dt: f64, rng: &mut StdRng) {
        self.mpa = wander(self.mpa, 0.45, 0.002, 0.40, 0.50, dt, rng);
    }

    fn render(&self, out: &mut Writer<'_>) {
        out.num("pressure", self.mpa);
        out.int("sensor_status", 0);
    }
}

/// `spd-monitor`: surge protector healthy, earth resistance ~1.2 Ω.
#[derive(Debug)]
pub struct Spd {
    ohms: f64,
    strikes: i64,
}

impl Spd {
    /// A monitor with a small strike history.
    pub fn new(rng: &mut StdRng) -> Self {
        Self {
            ohms: 1.2,
            strikes: rng.random_range(0..4),
        }
    }
}

impl Behaviour for Spd {
    fn step(&mut self, _now: SiteTime, dt: f64, rng: &mut StdRng) {
        self.ohms = wander(self.ohms, 1.2, 0.005, 1.1, 1.3, dt, rng);
    }

    fn render(&self, out: &mut Writer<'_>) {
        out.bool("spd_ok", true);
        out.bool("earth_ok", true);
        out.int("strike_count", self.strikes);
        out.num("earth_resistance", self.ohms);
    }
}

const LOWEST: i64 = -1;
const HIGHEST: i64 = 6;
const SECONDS_PER_FLOOR: f64 = 2.5;
const DOOR_S: f64 = 6.0;

/// `elevator-status`: a car serving floors −1…6: doors open, wait, travel.
#[derive(Debug)]
pub struct Elevator {
    floor: i64,
    target: i64,
    /// Seconds until the next event (door closes, next floor, next call).
    timer: f64,
    door_open: bool,
}

impl Elevator {
    /// A car idle at a random floor.
    pub fn new(rng: &mut StdRng) -> Self {
        let floor = rng.random_range(LOWEST..=HIGHEST);
        Self {
            floor,
            target: floor,
            timer: rng.random_range(1.0..20.0),
            door_open: false,
        }
    }

    fn direction(&self) -> i64 {
        (self.target - self.floor).signum()
    }
}

impl Behaviour for Elevator {
    fn step(&mut self, _now: SiteTime, dt: f64, rng: &mut StdRng) {
        self.timer -= dt;
        while self.timer <= 0.0 {
            if self.direction() != 0 {
                self.floor += self.direction();
                if self.floor == self.target {
                    self.door_open = true;
                    self.timer += DOOR_S;
                } else {
                    self.timer += SECONDS_PER_FLOOR;
                }
            } else if self.door_open {
                self.door_open = false;
                self.timer += rng.random_range(5.0..30.0);
            } else {
                self.target = rng.random_range(LOWEST..=HIGHEST);
                self.timer += if self.target == self.floor {
                    DOOR_S
                } else {
                    SECONDS_PER_FLOOR
                };
                self.door_open = self.target == self.floor;
            }
        }
    }

    fn render(&self, out: &mut Writer<'_>) {
        let moving = self.direction() != 0;
        out.bool("running", moving);
        out.bool("fault", false);
        out.bool("door_open", self.door_open);
        out.bool("inspection", false);
        out.int("floor", self.floor);
        out.int(
            "direction",
            match self.direction() {
                1 => 1,
                -1 => 2,
                _ => 0,
            },
        );
        out.int("fault_code", 0);
        out.value(
            "model",
            gateway_core::model::Value::Text("SIM-LIFT-1000".to_owned()),
        );
    }
}
