//! Reading a configuration and its profiles from disk.
//!
//! The parsing and validation themselves are pure (`gateway_core::config`);
//! this module only finds and reads the files, then hands the texts over.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gateway_core::config::{ConfigError, Resolved, load};

/// Loads and validates the gateway configuration at `path`, with its
/// profiles from the folder named by `profiles_dir` (relative to the file).
/// Every problem found is returned, never just the first.
pub fn load_config(path: &Path) -> Result<Resolved, Vec<ConfigError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            path: file.clone(),
            message: format!("cannot read the configuration file: {e}"),
        }]
    })?;
    let env = |name: &str| std::env::var(name).ok();
    let config = load::parse_config(&file, &text, &env)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let dir = resolve_dir(base, &config.profiles_dir);

    // Every profile in the folder is read (they are small), so that
    // validation can name the available ones when a device asks for a
    // profile that does not exist.
    let mut profiles = BTreeMap::new();
    let mut errors = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let p = entry.path();
                if p.extension().and_then(|e| e.to_str()) != Some("toml") {
                    continue;
                }
                let Some(name) = p.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                match std::fs::read_to_string(&p) {
                    Ok(t) => {
                        profiles.insert(name.to_owned(), (p.display().to_string(), t));
                    }
                    Err(e) => errors.push(ConfigError {
                        path: p.display().to_string(),
                        message: format!("cannot read the profile: {e}"),
                    }),
                }
            }
        }
        Err(e) => errors.push(ConfigError {
            path: format!("{file}: profiles_dir"),
            message: format!(
                "cannot read the profiles folder {}: {e}; set profiles_dir to the folder holding the *.toml device profiles",
                dir.display()
            ),
        }),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // The [simulator] section is only read by `gateway simulate`, but a
    // mistake in it is still a mistake in the file: report it with the rest.
    let bus_ids: Vec<&str> = config.buses.iter().map(|b| b.id.as_str()).collect();
    let device_ids: Vec<&str> = config.devices.iter().map(|d| d.id.as_str()).collect();
    let sim_errors = config.simulator.check("", &bus_ids, &device_ids);
    match load::load(&file, &text, &profiles, &env) {
        Ok(resolved) if sim_errors.is_empty() => Ok(resolved),
        Ok(_) => Err(sim_errors),
        Err(mut errors) => {
            errors.extend(sim_errors);
            Err(errors)
        }
    }
}

/// The profile folder: absolute as written, else relative to the config file's folder.
pub fn resolve_dir(base: &Path, dir: &str) -> PathBuf {
    let d = Path::new(dir);
    if d.is_absolute() {
        d.to_path_buf()
    } else {
        base.join(d)
    }
}
