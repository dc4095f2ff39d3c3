//! The `[store]` section: how long the gateway's database keeps history.

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
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            keep_months: DEFAULT_KEEP_MONTHS,
        }
    }
}

impl StoreConfig {
    /// Every problem in the section (path `store.keep_months`).
    pub fn check(&self) -> Vec<ConfigError> {
        if (MIN_KEEP_MONTHS..=MAX_KEEP_MONTHS).contains(&self.keep_months) {
            return Vec::new();
        }
        vec![ConfigError::new(
            "store.keep_months",
            format!(
                "{} months is outside {MIN_KEEP_MONTHS}–{MAX_KEEP_MONTHS}; keep at least the month before the current one whole (default {DEFAULT_KEEP_MONTHS})",
                self.keep_months
            ),
        )]
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
            assert!(StoreConfig { keep_months: ok }.check().is_empty(), "{ok}");
        }
        for bad in [0, 1, 1201] {
            let errs = StoreConfig { keep_months: bad }.check();
            assert_eq!(errs.len(), 1, "{bad}");
            assert_eq!(errs[0].path, "store.keep_months");
            assert!(
                errs[0].message.starts_with(&format!("{bad} months")),
                "{}",
                errs[0].message
            );
        }
    }
}
