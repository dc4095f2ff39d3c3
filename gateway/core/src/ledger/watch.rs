//! Edge detection of availability against its threshold.

use std::collections::BTreeSet;

use serde::Serialize;

/// Availability crossed a device's threshold. `availability` is a fraction
/// 0–1; `threshold` is in per cent, as given to [`ThresholdWatch::check`]
/// (the units [`TicketBook::on_availability_below`
/// ](crate::tickets::TicketBook::on_availability_below) takes).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "crossing")]
pub enum Crossing {
    /// Availability fell below the threshold.
    Below {
        /// The availability that fell below, 0–1.
        availability: f64,
        /// The threshold in per cent.
        threshold: f64,
    },
    /// Availability is back at or above the threshold (plus hysteresis).
    Recovered {
        /// The availability now, 0–1.
        availability: f64,
        /// The threshold in per cent.
        threshold: f64,
    },
}

impl Crossing {
    /// `(below, availability 0–1, threshold per cent)`.
    pub fn parts(&self) -> (bool, f64, f64) {
        match *self {
            Crossing::Below {
                availability,
                threshold,
            } => (true, availability, threshold),
            Crossing::Recovered {
                availability,
                threshold,
            } => (false, availability, threshold),
        }
    }
}

/// Edge detector for "availability crossed its threshold", per device.
///
/// A device is either *above* (the initial state) or *below*. Above → below
/// when availability < threshold: [`Crossing::Below`], once. Below → above
/// when availability ≥ threshold + hysteresis: [`Crossing::Recovered`],
/// once. `None` availability (no data, too little coverage) changes
/// nothing. The hysteresis is 0 unless set with
/// [`with_hysteresis`](Self::with_hysteresis).
#[derive(Clone, Debug, Default)]
pub struct ThresholdWatch {
    hysteresis_percent: f64,
    below: BTreeSet<String>,
}

impl ThresholdWatch {
    /// A watch with every device above its threshold and no hysteresis.
    pub fn new() -> Self {
        Self::default()
    }

    /// A watch whose devices recover only at `threshold + points` per cent
    /// (e.g. 0.1 with a 98 % threshold: back at 98.1 %). Negative or
    /// non-finite values count as 0.
    pub fn with_hysteresis(points: f64) -> Self {
        ThresholdWatch {
            hysteresis_percent: if points.is_finite() {
                points.max(0.0)
            } else {
                0.0
            },
            below: BTreeSet::new(),
        }
    }

    /// Compares the device's availability (0–1) with its threshold (per
    /// cent) and reports a crossing, only when the side changes.
    pub fn check(
        &mut self,
        device: &str,
        availability: Option<f64>,
        threshold_percent: f64,
    ) -> Option<Crossing> {
        let a = availability.filter(|a| a.is_finite())?;
        // Compare fractions, not `a × 100`: an availability of exactly 57 of
        // 100 then equals a 57 % threshold (both are the same rounded quotient).
        if self.below.contains(device) {
            if a >= (threshold_percent + self.hysteresis_percent) / 100.0 {
                self.below.remove(device);
                return Some(Crossing::Recovered {
                    availability: a,
                    threshold: threshold_percent,
                });
            }
        } else if a < threshold_percent / 100.0 {
            self.below.insert(device.to_owned());
            return Some(Crossing::Below {
                availability: a,
                threshold: threshold_percent,
            });
        }
        None
    }

    /// Whether the device is below its threshold now.
    pub fn is_below(&self, device: &str) -> bool {
        self.below.contains(device)
    }

    /// Sets the device's side without reporting a crossing: after a restart
    /// the watch starts with every device above, so a device still below
    /// whose availability ticket is open, or resolved and not yet closed,
    /// should be marked below — else its next check reports `Below` again
    /// and the ticket book takes it for a new fault (a false rework).
    pub fn set_below(&mut self, device: &str, below: bool) {
        if below {
            self.below.insert(device.to_owned());
        } else {
            self.below.remove(device);
        }
    }

    /// Forgets a device (removed from the configuration): it starts above again.
    pub fn forget(&mut self, device: &str) {
        self.below.remove(device);
    }
}
