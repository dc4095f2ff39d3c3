//! Parsing configuration text (no file IO: the caller reads the files).
//!
//! A syntax or type error (serde's phase) is reported with the file, line
//! and column of the offending text in the file as written (before
//! `${VAR}` substitution), and with the table it is in, e.g.
//! `demo.toml:42:1 (device "pump-9"): unknown field `bogus`, expected …`.
//! TOML parsing stops at its first error, so a file with a syntax error
//! yields one error; validation errors are all collected (see
//! [`validate`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;

use super::subst::{self, Position};
use super::validate::{is_profile_name, validate};
use super::{Config, ConfigError, Profile};

/// Parses a gateway file's text (after `${VAR}` substitution with `env`).
/// `file` names the source in error messages; syntax errors carry line and column.
pub fn parse_config(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let substituted = subst::substitute(text, env).map_err(|errs| {
        errs.into_iter()
            .map(|e| ConfigError::new(format!("{file}:{}", e.position()), e.to_string()))
            .collect::<Vec<_>>()
    })?;
    parse_toml(file, text, &substituted.text, |off| {
        substituted.original_offset(off)
    })
}

/// Parses one profile's text. Profiles take no `${VAR}` substitution: they
/// describe a device model, not a site.
pub fn parse_profile(file: &str, text: &str) -> Result<Profile, Vec<ConfigError>> {
    parse_toml(file, text, text, |off| off)
}

/// Parse + validate in one call, for callers that already hold all texts.
/// `profiles` maps a profile name to (file name, text). Every profile given
/// is parsed and checked, used or not. When any text fails to parse, only
/// the parse errors are returned (validation would report their
/// consequences twice). Validation errors carry logical paths
/// (`device "pump-1"`, `profile "pump-vfd" point "fault"`), not the file
/// name: the caller prints which file they belong to.
pub fn load(
    file: &str,
    text: &str,
    profiles: &BTreeMap<String, (String, String)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<super::Resolved, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let config = parse_config(file, text, env)
        .map_err(|e| errors.extend(e))
        .ok();
    let mut parsed = BTreeMap::new();
    for (name, (pfile, ptext)) in profiles {
        match parse_profile(pfile, ptext) {
            Ok(p) => {
                parsed.insert(name.clone(), p);
            }
            Err(e) => errors.extend(e),
        }
    }
    match config {
        Some(config) if errors.is_empty() => validate(&config, &parsed),
        _ => Err(errors),
    }
}

/// The profile names the configuration refers to (valid names only: an
/// invalid one is reported by validation and never becomes a file path),
/// so that the caller knows which `profiles_dir/<name>.toml` files to read.
pub fn profile_names_needed(config: &Config) -> BTreeSet<String> {
    config
        .devices
        .iter()
        .map(|d| d.profile.clone())
        .filter(|p| is_profile_name(p))
        .collect()
}

/// Deserializes `parsed_text`; errors are located in `original` through `map`.
fn parse_toml<T: DeserializeOwned>(
    file: &str,
    original: &str,
    parsed_text: &str,
    map: impl Fn(usize) -> usize,
) -> Result<T, Vec<ConfigError>> {
    toml::from_str::<T>(parsed_text).map_err(|e| {
        let message = e.message().trim().to_owned();
        let path = match e.span() {
            Some(span) => {
                let offset = map(span.start);
                let pos = Position::of_offset(original, offset);
                match table_context(original, offset) {
                    Some(ctx) => format!("{file}:{pos} ({ctx})"),
                    None => format!("{file}:{pos}"),
                }
            }
            None => file.to_owned(),
        };
        vec![ConfigError::new(path, message)]
    })
}

/// Names the table that holds byte `offset` of `text`, from the nearest
/// header above it: `device "pump-9"` (or `device[3]` when it has no `id`)
/// for arrays of tables, `point "frequency"` in profiles, `simulator` for a
/// plain table. `None` at the top level.
///
/// This is a line-based reading of headers, good enough for messages; it
/// does not need the file to be valid TOML.
fn table_context(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    // (array name, index, line start of its body) of the last array element seen.
    let mut current: Option<(String, usize, usize)> = None;
    let mut plain: Option<String> = None;
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        if line_start > offset {
            break;
        }
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            let idx = counts.entry(name.clone()).or_insert(0);
            current = Some((name, *idx, line_start + line.len()));
            *idx += 1;
            plain = None;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            let name = name.trim().to_owned();
            // `[device.points.x]` continues the last `[[device]]`.
            let continues = current
                .as_ref()
                .is_some_and(|(arr, _, _)| name.starts_with(&format!("{arr}.")));
            if !continues {
                current = None;
            }
            plain = Some(name);
        }
        line_start += line.len();
    }
    match (current, plain) {
        (Some((array, index, body)), sub) => {
            let id = element_id(&text[body..]);
            let base = match id {
                Some(id) => format!("{array} {id:?}"),
                None => format!("{array}[{index}]"),
            };
            Some(match sub {
                Some(sub) => format!("{base} [{sub}]"),
                None => base,
            })
        }
        (None, Some(plain)) => Some(plain),
        (None, None) => None,
    }
}

/// The `id = "…"` or `name = "…"` of the table body starting `body`.
fn element_id(body: &str) -> Option<String> {
    for line in body.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            return None;
        }
        let Some((key, value)) = t.split_once('=') else {
            continue;
        };
        if matches!(key.trim(), "id" | "name") {
            let v = value.trim();
            let v = v.strip_prefix('"')?;
            return v.split('"').next().map(str::to_owned);
        }
    }
    None
}
