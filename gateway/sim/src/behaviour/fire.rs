//! `fire-panel`: a fire-alarm panel's status table, quiet.
//!
//! No fire, no fault, no supervisory signal, mains and battery healthy,
//! every zone normal. Alarms come only from faults (`fault_bit`) or the
//! control interface, which is what a test of the alarm path wants.

use rand::rngs::StdRng;

use super::{Behaviour, SiteTime, Writer};

/// A quiet panel.
#[derive(Debug)]
pub struct FirePanel;

impl Behaviour for FirePanel {
    fn step(&mut self, _now: SiteTime, _dt: f64, _rng: &mut StdRng) {}

    fn render(&self, out: &mut Writer<'_>) {
        for name in ["fire_alarm", "fault", "supervisory", "silenced"] {
            out.bool(name, false);
        }
        out.bool("mains_ok", true);
        out.bool("battery_ok", true);
        for zone in 1..=8 {
            out.bool(&format!("zone_{zone}_fire"), false);
            out.bool(&format!("zone_{zone}_fault"), false);
        }
        out.int("fire_count", 0);
        out.int("fault_count", 0);
    }
}
