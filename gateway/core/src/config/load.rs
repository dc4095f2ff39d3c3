//! Parsing configuration text (no file IO: the caller reads the files).

use std::collections::BTreeMap;

use super::{Config, ConfigError, Profile, Resolved};

/// Parses a gateway file's text (after `${VAR}` substitution with `env`).
/// `file` names the source in error messages; syntax errors carry line and column.
pub fn parse_config(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let _ = (file, text, env);
    todo!("issue #2: config parsing")
}

/// Parses one profile's text.
pub fn parse_profile(file: &str, text: &str) -> Result<Profile, Vec<ConfigError>> {
    let _ = (file, text);
    todo!("issue #2: profile parsing")
}

/// Parse + validate in one call, for callers that already hold all texts.
/// `profiles` maps a profile name to (file name, text).
pub fn load(
    file: &str,
    text: &str,
    profiles: &BTreeMap<String, (String, String)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, Vec<ConfigError>> {
    let _ = (file, text, profiles, env);
    todo!("issue #2: config loading")
}
