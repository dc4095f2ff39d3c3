//! `lighting-relay`: a lighting controller with eight circuits on a timetable.
//!
//! Circuits 1–4 are evening circuits (on 18:00–23:30 site time), circuits
//! 5–8 working-hours circuits (on 07:30–22:00); a controller whose device id
//! contains `garden` keeps every circuit on from dusk to 23:30 only. A master
//! may switch a circuit (coil write); the manual state holds until the
//! timetable's next edge for that circuit, as on real controllers. Lux
//! follows the sun (0 at night, up to ~800 lx at noon) plus the circuits' light.

use gateway_core::model::Value;
use rand::rngs::StdRng;

use super::{Behaviour, SiteTime, Writer};

const CIRCUITS: usize = 8;

/// Model of one controller.
#[derive(Debug)]
pub struct Lighting {
    garden: bool,
    on: [bool; CIRCUITS],
    scheduled: [Option<bool>; CIRCUITS],
    hour: f64,
}

impl Lighting {
    /// A controller; the timetable depends on the device id (see module doc).
    pub fn new(device_id: &str) -> Self {
        Self {
            garden: device_id.contains("garden"),
            on: [false; CIRCUITS],
            scheduled: [None; CIRCUITS],
            hour: 0.0,
        }
    }

    fn timetable(&self, circuit: usize, h: f64) -> bool {
        if self.garden || circuit < 4 {
            (18.0..23.5).contains(&h)
        } else {
            (7.5..22.0).contains(&h)
        }
    }

    fn circuit_index(point: &str) -> Option<usize> {
        let n: usize = point.strip_prefix("circuit_")?.parse().ok()?;
        (1..=CIRCUITS).contains(&n).then(|| n - 1)
    }
}

#[cfg(test)]
impl Lighting {
    pub(super) fn is_on(&self, circuit: usize) -> bool {
        self.on[circuit]
    }
}

impl Behaviour for Lighting {
    fn step(&mut self, now: SiteTime, _dt: f64, _rng: &mut StdRng) {
        self.hour = now.local_hour();
        for c in 0..CIRCUITS {
            let want = self.timetable(c, self.hour);
            if self.scheduled[c] != Some(want) {
                // A timetable edge (or the first step): the timetable wins.
                self.scheduled[c] = Some(want);
                self.on[c] = want;
            }
        }
    }

    fn render(&self, out: &mut Writer<'_>) {
        for c in 0..CIRCUITS {
            out.bool(&format!("circuit_{}", c + 1), self.on[c]);
            out.bool(&format!("lamp_fail_{}", c + 1), false);
        }
        let sun = (std::f64::consts::PI * (self.hour - 6.0) / 12.0)
            .sin()
            .max(0.0)
            * 800.0;
        let lamps = self.on.iter().filter(|o| **o).count() as f64 * 40.0;
        out.num("lux", (sun + lamps).round());
        out.int("controller_fault", 0);
    }

    fn writable(&self, point: &str) -> bool {
        Self::circuit_index(point).is_some()
    }

    fn written(&mut self, point: &str, value: &Value) {
        if let (Some(c), Some(v)) = (Self::circuit_index(point), value.as_f64()) {
            self.on[c] = v != 0.0;
        }
    }
}
