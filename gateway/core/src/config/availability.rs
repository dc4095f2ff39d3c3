//! The `[availability]` section: targets (thresholds), the rolling window and
//! the coverage a window needs before it may open a ticket (issue #3).
//! Owned by the ledger layer; see `docs/config.md` (`## [availability]`),
//! `docs/availability.md` and the module doc of [`crate::ledger`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::HumanDuration;
use crate::model::DeviceClass;

const DEFAULT_ROLLING_WINDOW: HumanDuration = HumanDuration::from_secs(24 * 3600);
const DEFAULT_MIN_COVERAGE: f64 = 0.5;

/// The shortest rolling window accepted: shorter windows turn every blip
/// into a ticket.
pub const MIN_ROLLING_WINDOW: Duration = Duration::from_secs(60);
/// The longest rolling window accepted: the in-memory ledger keeps this much
/// history per device.
pub const MAX_ROLLING_WINDOW: Duration = Duration::from_secs(31 * 24 * 3600);

const fn default_rolling_window() -> HumanDuration {
    DEFAULT_ROLLING_WINDOW
}
const fn default_min_coverage() -> f64 {
    DEFAULT_MIN_COVERAGE
}

/// Availability targets and the rolling window, with per-class overrides.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityConfig {
    /// Length of the rolling window over which a device's availability is
    /// watched against its target (a ticket opens when it falls below).
    /// 1m–31d; default `"24h"`.
    #[serde(default = "default_rolling_window")]
    pub rolling_window: HumanDuration,
    /// The least coverage ((Up + Down + Maintenance) ÷ window length) a
    /// rolling window needs before its availability may open a ticket, as a
    /// fraction 0–1: right after the gateway starts, a few minutes of data
    /// must not decide. Default `0.5`.
    #[serde(default = "default_min_coverage")]
    pub min_coverage: f64,
    /// Per-class overrides: `[availability.class.pump]` with `target` and/or
    /// `rolling_window`.
    #[serde(default)]
    pub class: BTreeMap<DeviceClass, ClassAvailability>,
}

/// Overrides for one device class (`[availability.class.<class>]`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassAvailability {
    /// Availability target of the class in per cent (0 < t ≤ 100), replacing
    /// the service standard's 99 or 98. A device's own `threshold` still wins.
    #[serde(default)]
    pub target: Option<f64>,
    /// Rolling window of the class, replacing `availability.rolling_window`.
    #[serde(default)]
    pub rolling_window: Option<HumanDuration>,
}

impl Default for AvailabilityConfig {
    fn default() -> Self {
        AvailabilityConfig {
            rolling_window: DEFAULT_ROLLING_WINDOW,
            min_coverage: DEFAULT_MIN_COVERAGE,
            class: BTreeMap::new(),
        }
    }
}

impl AvailabilityConfig {
    /// Every problem in the section (paths like `availability.min_coverage`,
    /// `availability.class.pump.target`).
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        check_window(
            "availability.rolling_window",
            self.rolling_window,
            &mut errs,
        );
        if !(self.min_coverage.is_finite() && (0.0..=1.0).contains(&self.min_coverage)) {
            errs.push(ConfigError::new(
                "availability.min_coverage",
                format!(
                    "{} is not a fraction between 0 and 1; write e.g. 0.5 (half the window must have data)",
                    self.min_coverage
                ),
            ));
        }
        for (class, over) in &self.class {
            if let Some(t) = over.target
                && !(t.is_finite() && t > 0.0 && t <= 100.0)
            {
                errs.push(ConfigError::new(
                    format!("availability.class.{class}.target"),
                    format!("{t} is not a percentage; write e.g. 98 or 99.5 (0 < target ≤ 100)"),
                ));
            }
            if let Some(w) = over.rolling_window {
                check_window(
                    &format!("availability.class.{class}.rolling_window"),
                    w,
                    &mut errs,
                );
            }
        }
        errs
    }

    /// The target in per cent for a device of `class`: the device's own
    /// override when it has one, else the class override, else the service
    /// standard's default ([`DeviceClass::default_target_percent`]).
    pub fn threshold_percent(&self, class: DeviceClass, device_override: Option<f64>) -> f64 {
        device_override
            .or_else(|| self.class.get(&class).and_then(|c| c.target))
            .unwrap_or(class.default_target_percent())
    }

    /// The rolling window for devices of `class`.
    pub fn rolling_window(&self, class: DeviceClass) -> Duration {
        self.class
            .get(&class)
            .and_then(|c| c.rolling_window)
            .unwrap_or(self.rolling_window)
            .get()
    }

    /// [`rolling_window`](Self::rolling_window) in milliseconds.
    pub fn rolling_window_ms(&self, class: DeviceClass) -> i64 {
        i64::try_from(self.rolling_window(class).as_millis()).unwrap_or(i64::MAX)
    }

    /// The longest rolling window of any class: how much closed history the
    /// in-memory [`Ledger`](crate::ledger::Ledger) must keep.
    pub fn longest_rolling_window(&self) -> Duration {
        self.class
            .values()
            .filter_map(|c| c.rolling_window)
            .map(HumanDuration::get)
            .fold(self.rolling_window.get(), Duration::max)
    }
}

fn check_window(path: &str, w: HumanDuration, errs: &mut Vec<ConfigError>) {
    if w.get() < MIN_ROLLING_WINDOW {
        errs.push(ConfigError::new(
            path,
            format!("{w} is shorter than 1m; give a window such as \"24h\""),
        ));
    } else if w.get() > MAX_ROLLING_WINDOW {
        errs.push(ConfigError::new(
            path,
            format!("{w} is longer than 31d; use the monthly figures for long periods, or give e.g. \"7d\""),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrapper {
        #[serde(default)]
        availability: AvailabilityConfig,
    }

    fn parse(text: &str) -> Result<AvailabilityConfig, String> {
        toml::from_str::<Wrapper>(text)
            .map(|w| w.availability)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_absent_section_gives_the_documented_defaults() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg, AvailabilityConfig::default());
        assert_eq!(
            cfg.rolling_window(DeviceClass::Pump),
            Duration::from_secs(86_400)
        );
        assert_eq!(cfg.rolling_window_ms(DeviceClass::Lighting), 86_400_000);
        assert_eq!(cfg.min_coverage, 0.5);
        assert_eq!(cfg.threshold_percent(DeviceClass::Pump, None), 98.0);
        assert_eq!(cfg.threshold_percent(DeviceClass::FireAlarm, None), 99.0);
        assert!(cfg.check().is_empty());
    }

    #[test]
    fn a_device_override_beats_a_class_override_which_beats_the_standard() {
        let cfg = parse(
            "[availability]\nrolling_window = \"12h\"\nmin_coverage = 0.8\n\
             [availability.class.pump]\ntarget = 97.5\nrolling_window = \"7d\"\n\
             [availability.class.lighting]\ntarget = 99.5\n",
        )
        .unwrap();
        assert!(cfg.check().is_empty());
        assert_eq!(cfg.threshold_percent(DeviceClass::Pump, None), 97.5);
        assert_eq!(cfg.threshold_percent(DeviceClass::Pump, Some(99.9)), 99.9);
        assert_eq!(cfg.threshold_percent(DeviceClass::Lighting, None), 99.5);
        assert_eq!(cfg.threshold_percent(DeviceClass::Hvac, None), 98.0);
        assert_eq!(
            cfg.rolling_window(DeviceClass::Pump),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            cfg.rolling_window(DeviceClass::Lighting),
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(
            cfg.longest_rolling_window(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(cfg.min_coverage, 0.8);
    }

    #[test]
    fn unknown_keys_classes_and_bare_numbers_are_refused() {
        let err = parse("[availability]\nrolling = \"1h\"\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = parse("[availability.class.pumps]\ntarget = 98\n").unwrap_err();
        assert!(err.contains("unknown variant"), "{err}");
        let err = parse("[availability.class.pump]\ntargt = 98\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = parse("[availability]\nrolling_window = 24\n").unwrap_err();
        assert!(err.contains("no unit"), "{err}");
    }

    #[test]
    fn check_reports_every_problem_with_its_path() {
        let cfg = parse(
            "[availability]\nrolling_window = \"10s\"\nmin_coverage = 1.5\n\
             [availability.class.pump]\ntarget = 0\nrolling_window = \"60d\"\n\
             [availability.class.lighting]\ntarget = 100.5\n",
        )
        .unwrap();
        let errs = cfg.check();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "availability.rolling_window",
                "availability.min_coverage",
                "availability.class.pump.target",
                "availability.class.pump.rolling_window",
                "availability.class.lighting.target",
            ]
        );
        assert!(errs[1].message.contains("1.5"), "{}", errs[1].message);
        assert!(errs[4].message.contains("100.5"), "{}", errs[4].message);
    }
}
