//! `meter-sdm630`: a three-phase multifunction meter (Eastron SDM630 map).
//!
//! Phase voltages wander around 220 V (line voltages ≈ 380 V follow from the
//! phasors), phase currents follow a daily load curve of the building
//! (higher in working hours) scaled by a rated current drawn per meter,
//! power per phase is V·I·pf, frequency wanders around 50 Hz, and the import
//! energy only ever increases by the power integrated over time.
//!
//! The same model serves every meter profile of the library (DTSU666,
//! ADL400, SDM630-MCT, SDM120): points are written by name, a single-phase
//! meter's `voltage`/`current`/`power` are phase 1, a power point in `kW`
//! gets kilowatts, and the rated current is kept inside the profile's
//! current range (a 45 A SDM120 is not loaded like a 100 A incomer).

use rand::Rng;
use rand::rngs::StdRng;

use super::{Behaviour, SiteTime, Writer, wander};

/// Model of one meter.
#[derive(Debug)]
pub struct Meter {
    volts: [f64; 3],
    /// Per-phase imbalance factor around 1.
    imbalance: [f64; 3],
    rated_a: f64,
    load: f64,
    pf: f64,
    hz: f64,
    import_kwh: f64,
}

impl Meter {
    /// A meter with a random size and energy history.
    pub fn new(rng: &mut StdRng) -> Self {
        Self {
            volts: [220.0, 220.0, 220.0].map(|v: f64| v + rng.random_range(-2.0..2.0)),
            imbalance: [1.0, 1.0, 1.0].map(|f: f64| f + rng.random_range(-0.12..0.12)),
            rated_a: rng.random_range(20.0..120.0),
            load: 0.3,
            pf: rng.random_range(0.88..0.96),
            hz: 50.0,
            import_kwh: rng.random_range(10_000.0..200_000.0_f64).floor(),
        }
    }

    /// A meter sized for `points`: its rated current is at most 60 % of
    /// the largest current the profile (with the device's ratios) accepts.
    pub fn for_points(rng: &mut StdRng, points: &[gateway_core::model::Point]) -> Self {
        let mut m = Self::new(rng);
        let limit = points
            .iter()
            .filter(|p| p.name.starts_with("current") && p.unit == "A")
            .filter_map(|p| p.max)
            .fold(f64::INFINITY, f64::min);
        if limit.is_finite() && limit > 0.0 {
            m.rated_a = m.rated_a.min(0.6 * limit);
        }
        m
    }

    /// Building load as a fraction of rated current at local hour `h`.
    fn load_curve(h: f64) -> f64 {
        if (8.0..20.0).contains(&h) {
            0.55 + 0.2 * ((h - 8.0) / 12.0 * std::f64::consts::PI).sin()
        } else {
            0.2
        }
    }

    fn phase_current(&self, i: usize) -> f64 {
        self.rated_a * self.load * self.imbalance[i]
    }

    fn phase_power(&self, i: usize) -> f64 {
        self.volts[i] * self.phase_current(i) * self.pf
    }

    fn line_voltage(&self, a: usize, b: usize) -> f64 {
        // |Va − Vb| for phasors 120° apart: √(Va² + Vb² + Va·Vb).
        let (va, vb) = (self.volts[a], self.volts[b]);
        (va * va + vb * vb + va * vb).sqrt()
    }
}

#[cfg(test)]
impl Meter {
    pub(super) fn energy_kwh(&self) -> f64 {
        self.import_kwh
    }

    /// (voltage, current, power factor, power) of phase `i`.
    pub(super) fn phase(&self, i: usize) -> (f64, f64, f64, f64) {
        (
            self.volts[i],
            self.phase_current(i),
            self.pf,
            self.phase_power(i),
        )
    }
}

impl Behaviour for Meter {
    fn step(&mut self, now: SiteTime, dt: f64, rng: &mut StdRng) {
        for v in &mut self.volts {
            *v = wander(*v, 220.0, 0.5, 212.0, 228.0, dt, rng);
        }
        let goal = Self::load_curve(now.local_hour());
        self.load = wander(self.load, goal, 0.01, 0.05, 1.0, dt, rng);
        self.pf = wander(self.pf, 0.92, 0.002, 0.85, 0.99, dt, rng);
        self.hz = wander(self.hz, 50.0, 0.01, 49.9, 50.1, dt, rng);
        let total_w: f64 = (0..3).map(|i| self.phase_power(i)).sum();
        self.import_kwh += total_w * dt / 3_600_000.0;
    }

    fn render(&self, out: &mut Writer<'_>) {
        let kilo = |out: &Writer<'_>, name: &str| {
            out.points()
                .iter()
                .any(|p| p.name == name && p.unit.starts_with('k'))
        };
        let power = |out: &mut Writer<'_>, name: &str, watts: f64| {
            let v = if kilo(out, name) {
                watts / 1000.0
            } else {
                watts
            };
            out.num(name, v);
        };
        out.num("voltage", self.volts[0]);
        out.num("current", self.phase_current(0));
        power(out, "power", self.phase_power(0));
        let names = [
            ("voltage_l1", "current_l1", "power_l1"),
            ("voltage_l2", "current_l2", "power_l2"),
            ("voltage_l3", "current_l3", "power_l3"),
        ];
        for (i, (v, c, p)) in names.iter().enumerate() {
            out.num(v, self.volts[i]);
            out.num(c, self.phase_current(i));
            power(out, p, self.phase_power(i));
        }
        power(
            out,
            "total_power",
            (0..3).map(|i| self.phase_power(i)).sum(),
        );
        out.num("power_factor", self.pf);
        out.num("frequency", self.hz);
        out.num("import_energy", self.import_kwh);
        out.num("export_energy", 0.0);
        out.num("voltage_l1_l2", self.line_voltage(0, 1));
        out.num("voltage_l2_l3", self.line_voltage(1, 2));
        out.num("voltage_l3_l1", self.line_voltage(2, 0));
        out.num("total_energy", self.import_kwh);
    }
}
