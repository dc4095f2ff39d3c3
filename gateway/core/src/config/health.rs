//! The `[health]` section: how poll outcomes become Up/Down (issue #3).
//! Owned by the health layer; see `docs/config.md` (`## [health]`) and the
//! module doc of [`crate::health`], which states the rules these keys tune.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::HumanDuration;

const DEFAULT_COMMS_FAILURES: u32 = 3;
const DEFAULT_DOWN_HOLD: HumanDuration = HumanDuration::from_secs(0);
const DEFAULT_UP_HOLD: HumanDuration = HumanDuration::from_secs(10);
const DEFAULT_RECOVERY_RESOLUTION: HumanDuration = HumanDuration::from_secs(5);
const DEFAULT_PROBE_INTERVAL_MAX: HumanDuration = HumanDuration::from_secs(60);

/// The largest `comms_failures` accepted: more would hide a dead device for
/// a long time even at fast poll rates.
pub const MAX_COMMS_FAILURES: u32 = 1000;
/// The longest `down_hold` / `up_hold` accepted.
pub const MAX_HOLD: Duration = Duration::from_secs(24 * 3600);
/// The shortest `recovery_resolution` accepted.
pub const MIN_RECOVERY_RESOLUTION: Duration = Duration::from_millis(100);
/// The longest `recovery_resolution` / `probe_interval_max` accepted.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(3600);

const fn default_comms_failures() -> u32 {
    DEFAULT_COMMS_FAILURES
}
const fn default_down_hold() -> HumanDuration {
    DEFAULT_DOWN_HOLD
}
const fn default_up_hold() -> HumanDuration {
    DEFAULT_UP_HOLD
}
const fn default_recovery_resolution() -> HumanDuration {
    DEFAULT_RECOVERY_RESOLUTION
}
const fn default_probe_interval_max() -> HumanDuration {
    DEFAULT_PROBE_INTERVAL_MAX
}

/// How device health is judged: when a device counts as unreachable, and
/// how long a fault or a recovery must last before the state changes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Consecutive failed polls (timeout, transport or framing error on every
    /// request of the poll) after which a device is Down with reason `comms`.
    /// The Down interval starts at the first of those failed polls.
    /// 1–1000; default `3`.
    #[serde(default = "default_comms_failures")]
    pub comms_failures: u32,
    /// How long a fault rule must stay true (on consecutive reachable polls)
    /// before an Up device goes Down with reason `rule:<name>`. The Down
    /// interval starts when the rule first became true. `"0s"` (the default)
    /// = at once.
    #[serde(default = "default_down_hold")]
    pub down_hold: HumanDuration,
    /// How long a Down device must answer with no fault rule true before it
    /// is Up again; a failed poll or a true rule restarts the wait. The Up
    /// interval starts at the first good poll. Default `"10s"`.
    #[serde(default = "default_up_hold")]
    pub up_hold: HumanDuration,
    /// `false` (the default): a Modbus exception answer proves the device is
    /// reachable, so a poll whose only failures are exceptions is a good
    /// poll. `true`: such a poll counts as a failed poll towards
    /// `comms_failures` (for devices that answer exceptions when broken).
    #[serde(default)]
    pub exception_is_fault: bool,
    /// How soon after a silent device answers again its recovery is seen:
    /// a device that stopped answering is probed every
    /// `max(poll_interval, recovery_resolution)`, as long as its line has
    /// the time (see `docs/availability.md`, "Resolution"). 100ms–1h;
    /// default `"5s"`.
    #[serde(default = "default_recovery_resolution")]
    pub recovery_resolution: HumanDuration,
    /// The longest spacing between two probes of a silent device when its
    /// line has no time to spare (many silent units): beyond it the probe is
    /// made even if it delays healthy units. ≥ `recovery_resolution`, ≤ 1h;
    /// default `"60s"`.
    #[serde(default = "default_probe_interval_max")]
    pub probe_interval_max: HumanDuration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            comms_failures: DEFAULT_COMMS_FAILURES,
            down_hold: DEFAULT_DOWN_HOLD,
            up_hold: DEFAULT_UP_HOLD,
            exception_is_fault: false,
            recovery_resolution: DEFAULT_RECOVERY_RESOLUTION,
            probe_interval_max: DEFAULT_PROBE_INTERVAL_MAX,
        }
    }
}

impl HealthConfig {
    /// Every problem in the section (paths like `health.comms_failures`).
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        if self.comms_failures == 0 {
            errs.push(ConfigError::new(
                "health.comms_failures",
                "is 0; give the number of consecutive failed polls that make a device Down, e.g. 3",
            ));
        } else if self.comms_failures > MAX_COMMS_FAILURES {
            errs.push(ConfigError::new(
                "health.comms_failures",
                format!(
                    "{} is more than {MAX_COMMS_FAILURES}; a dead device would stay Up for too long, give e.g. 3",
                    self.comms_failures
                ),
            ));
        }
        for (path, hold) in [
            ("health.down_hold", self.down_hold),
            ("health.up_hold", self.up_hold),
        ] {
            if hold.get() > MAX_HOLD {
                errs.push(ConfigError::new(
                    path,
                    format!("{hold} is longer than 24h; give a shorter hold, e.g. \"30s\""),
                ));
            }
        }
        let resolution = self.recovery_resolution.get();
        let ceiling = self.probe_interval_max.get();
        if !(MIN_RECOVERY_RESOLUTION..=MAX_PROBE_INTERVAL).contains(&resolution) {
            errs.push(ConfigError::new(
                "health.recovery_resolution",
                format!(
                    "{} is outside 100ms–1h; give how soon a recovery must be seen, e.g. \"5s\"",
                    self.recovery_resolution
                ),
            ));
        }
        if ceiling > MAX_PROBE_INTERVAL {
            errs.push(ConfigError::new(
                "health.probe_interval_max",
                format!(
                    "{} is longer than 1h; a silent device would go unprobed too long, give e.g. \"60s\"",
                    self.probe_interval_max
                ),
            ));
        } else if ceiling < resolution {
            errs.push(ConfigError::new(
                "health.probe_interval_max",
                format!(
                    "{} is shorter than recovery_resolution ({}); give at least that",
                    self.probe_interval_max, self.recovery_resolution
                ),
            ));
        }
        errs
    }

    /// `down_hold` in milliseconds.
    pub fn down_hold_ms(&self) -> i64 {
        duration_ms(self.down_hold.get())
    }

    /// `up_hold` in milliseconds.
    pub fn up_hold_ms(&self) -> i64 {
        duration_ms(self.up_hold.get())
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrapper {
        #[serde(default)]
        health: HealthConfig,
    }

    fn parse(text: &str) -> Result<HealthConfig, String> {
        toml::from_str::<Wrapper>(text)
            .map(|w| w.health)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_absent_section_gives_the_documented_defaults() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg, HealthConfig::default());
        assert_eq!(cfg.comms_failures, 3);
        assert_eq!(cfg.down_hold_ms(), 0);
        assert_eq!(cfg.up_hold_ms(), 10_000);
        assert!(!cfg.exception_is_fault);
        assert_eq!(cfg.recovery_resolution.get(), Duration::from_secs(5));
        assert_eq!(cfg.probe_interval_max.get(), Duration::from_secs(60));
        assert!(cfg.check().is_empty());
    }

    #[test]
    fn every_key_is_read() {
        let cfg = parse(
            "[health]\ncomms_failures = 5\ndown_hold = \"30s\"\nup_hold = \"1m\"\nexception_is_fault = true\nrecovery_resolution = \"2s\"\nprobe_interval_max = \"30s\"\n",
        )
        .unwrap();
        assert_eq!(cfg.recovery_resolution.get(), Duration::from_secs(2));
        assert_eq!(cfg.probe_interval_max.get(), Duration::from_secs(30));
        assert_eq!(cfg.comms_failures, 5);
        assert_eq!(cfg.down_hold_ms(), 30_000);
        assert_eq!(cfg.up_hold_ms(), 60_000);
        assert!(cfg.exception_is_fault);
    }

    #[test]
    fn unknown_keys_and_bare_numbers_are_refused() {
        let err = parse("[health]\ncomms_failure = 5\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = parse("[health]\nup_hold = 10\n").unwrap_err();
        assert!(err.contains("no unit"), "{err}");
    }

    #[test]
    fn check_reports_every_problem_with_its_path() {
        let cfg = HealthConfig {
            comms_failures: 0,
            down_hold: HumanDuration::from_secs(2 * 24 * 3600),
            up_hold: HumanDuration::from_secs(25 * 3600),
            exception_is_fault: false,
            recovery_resolution: HumanDuration::from_millis(10),
            probe_interval_max: HumanDuration::from_secs(2 * 3600),
        };
        let paths: Vec<String> = cfg.check().into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "health.comms_failures",
                "health.down_hold",
                "health.up_hold",
                "health.recovery_resolution",
                "health.probe_interval_max"
            ]
        );
        let inverted = HealthConfig {
            recovery_resolution: HumanDuration::from_secs(30),
            probe_interval_max: HumanDuration::from_secs(10),
            ..HealthConfig::default()
        };
        let errs = inverted.check();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "health.probe_interval_max");
        let too_many = HealthConfig {
            comms_failures: 1001,
            ..HealthConfig::default()
        };
        let errs = too_many.check();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("1001"), "{}", errs[0].message);
    }
}
