//! What this binary is: version, commit, target, profile (set by `build.rs`).

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit (12 hex digits, `-dirty` with uncommitted changes), or `unknown`.
pub const COMMIT: &str = env!("BMS_BUILD_COMMIT");
/// The commit's date (YYYY-MM-DD), or `unknown`.
pub const COMMIT_DATE: &str = env!("BMS_BUILD_DATE");
/// The target triple.
pub const TARGET: &str = env!("BMS_BUILD_TARGET");
/// `release` or `debug`.
pub const PROFILE: &str = env!("BMS_BUILD_PROFILE");

/// `--version` text: `0.1.0 (commit 1a2b3c4d5e6f 2026-11-27, x86_64-unknown-linux-gnu, release)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BMS_BUILD_COMMIT"),
    " ",
    env!("BMS_BUILD_DATE"),
    ", ",
    env!("BMS_BUILD_TARGET"),
    ", ",
    env!("BMS_BUILD_PROFILE"),
    ")"
);
