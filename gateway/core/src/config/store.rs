//! The `[store]` section: how long the gateway's database keeps history,
//! and how much of the data disk telemetry may never use.

use serde::Deserialize;

use super::ConfigError;

/// The fewest months `[store] keep_months` accepts: the month before the
/// current one must stay whole for its report, and the in-memory ledger
/// reloads up to a month of history (the longest rolling window) at start.
pub const MIN_KEEP_MONTHS: u32 = 2;
/// The most months `[store] keep_months` accepts (100 years: "forever").
pub const MAX_KEEP_MONTHS: u32 = 1200;
const DEFAULT_KEEP_MONTHS: u32 = 24;

const fn default_keep_months() -> u32 {
    DEFAULT_KEEP_MONTHS
}

const DEFAULT_MIN_FREE: &str = "64MB";

fn default_min_free() -> String {
    DEFAULT_MIN_FREE.to_owned()
}

/// `[store]`: retention of `gateway.db` (see `docs/config.md`, `## [store]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Full calendar months kept before the current one, in the site's time
    /// zone: closed availability intervals, closed tickets with their
    /// events, finished commands and ended maintenance windows lying
    /// entirely before the 1st of the month this many months ago are
    /// deleted (at start, then daily). At least 2. Default `24`.
    #[serde(default = "default_keep_months")]
    pub keep_months: u32,
    /// Free space on the data disk that telemetry may not use, e.g.
    /// `"64MB"`: below it the outboxes drop their oldest telemetry so that
    /// the ledger, events and tickets keep room. `"0"` turns the reserve
    /// off. Default `"64MB"`.
    #[serde(default = "default_min_free")]
    pub min_free: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            keep_months: DEFAULT_KEEP_MONTHS,
            min_free: default_min_free(),
        }
    }
}

impl StoreConfig {
    /// The reserve in bytes (the default when unparsable: validation
    /// reports that).
    pub fn min_free_bytes(&self) -> u64 {
        super::parse_size(&self.min_free)
            .or_else(|_| super::parse_size(DEFAULT_MIN_FREE))
            .unwrap_or(64_000_000)
    }

    /// Every problem in the section (paths `store.keep_months`,
    /// `store.min_free`).
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        if self.min_free.trim() != "0"
            && let Err(e) = super::parse_size(&self.min_free)
        {
            errs.push(ConfigError::new("store.min_free", e));
        }
        if (MIN_KEEP_MONTHS..=MAX_KEEP_MONTHS).contains(&self.keep_months) {
            return errs;
        }
        errs.push(ConfigError::new(
            "store.keep_months",
            format!(
                "{} months is outside {MIN_KEEP_MONTHS}–{MAX_KEEP_MONTHS}; keep at least the month before the current one whole (default {DEFAULT_KEEP_MONTHS})",
                self.keep_months
            ),
        ));
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_months_below_two_or_absurdly_large_is_refused_with_its_path() {
        assert!(StoreConfig::default().check().is_empty());
        assert_eq!(StoreConfig::default().keep_months, 24);
        for ok in [2, 24, 1200] {
            assert!(
                StoreConfig {
                    keep_months: ok,
                    ..StoreConfig::default()
                }
                .check()
                .is_empty(),
                "{ok}"
            );
        }
        for bad in [0, 1, 1201] {
            let errs = StoreConfig {
                keep_months: bad,
                ..StoreConfig::default()
            }
            .check();
            assert_eq!(errs.len(), 1, "{bad}");
            assert_eq!(errs[0].path, "store.keep_months");
            assert!(
                errs[0].message.starts_with(&format!("{bad} months")),
                "{}",
                errs[0].message
            );
        }
    }

    #[test]
    fn min_free_is_a_size_zero_turns_it_off_and_nonsense_is_refused() {
        assert_eq!(StoreConfig::default().min_free_bytes(), 64_000_000);
        for (text, bytes) in [("2MB", 2_000_000), ("1MiB", 1_048_576), ("0", 0)] {
            let c = StoreConfig {
                min_free: text.to_owned(),
                ..StoreConfig::default()
            };
            assert!(c.check().is_empty(), "{text}");
            assert_eq!(c.min_free_bytes(), bytes, "{text}");
        }
        let c = StoreConfig {
            min_free: "lots".to_owned(),
            ..StoreConfig::default()
        };
        let errs = c.check();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "store.min_free");
    }
}
