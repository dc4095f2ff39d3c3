//! Where a command finds a gateway's store and configuration: `--config
//! FILE` (its `data_dir`), `--data-dir DIR`, or both.
//!
//! With `--data-dir` alone the configuration is the one the gateway last
//! ran with: `gateway run` and the demos write its absolute path into the
//! data directory ([`CONFIG_RECORD`]) at start. A path, not a copy: the
//! configuration names its profiles folder and secrets relative to itself
//! and through the environment, which a copy elsewhere would lose.
//!
//! `DIR` may be the data directory itself (it holds `gateway.db`) or a
//! folder with exactly one such directory directly inside it, like the
//! folder `dashboard demo` prints (its gateway's data is in `gateway/`).

use std::path::{Path, PathBuf};

use crate::store::DB_FILE;

/// The file in the data directory naming the configuration the gateway
/// last ran with (one line: its absolute path).
pub const CONFIG_RECORD: &str = "gateway.config";

/// `--config FILE` and/or `--data-dir DIR` (at least one).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SiteArgs {
    /// The gateway configuration file (for data_dir, the devices and the
    /// time zone). Optional with --data-dir: then the configuration the
    /// gateway last ran with.
    #[arg(long, short, required_unless_present = "data_dir")]
    pub config: Option<PathBuf>,
    /// The gateway's data directory (holding gateway.db), or a folder with
    /// one inside it, such as the folder a demo prints; instead of the
    /// configuration's data_dir.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl SiteArgs {
    /// Only a configuration file.
    pub fn config(file: impl Into<PathBuf>) -> SiteArgs {
        SiteArgs {
            config: Some(file.into()),
            data_dir: None,
        }
    }

    /// Only a data directory.
    pub fn data_dir(dir: impl Into<PathBuf>) -> SiteArgs {
        SiteArgs {
            config: None,
            data_dir: Some(dir.into()),
        }
    }
}

/// Records in `data_dir` that the gateway runs with `config_file`, so that
/// `--data-dir` alone finds it. Best effort: a failure only costs the
/// commands their `--config`-less form, so it is returned for a warning.
pub fn record_config(data_dir: &Path, config_file: &Path) -> std::io::Result<()> {
    let abs = std::path::absolute(config_file)?;
    let abs = abs.canonicalize().unwrap_or(abs);
    let tmp = data_dir.join(format!("{CONFIG_RECORD}.tmp"));
    std::fs::write(&tmp, format!("{}\n", abs.display()))?;
    std::fs::rename(&tmp, data_dir.join(CONFIG_RECORD))
}

/// The configuration recorded in `data_dir`, if any.
pub fn recorded_config(data_dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(data_dir.join(CONFIG_RECORD)).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| PathBuf::from(line))
}

/// The data directory `dir` names: itself when it holds a store, else the
/// one folder directly inside it that does. The error says what, where and
/// what to do.
pub fn find_store_dir(dir: &Path) -> Result<PathBuf, String> {
    if dir.join(DB_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "--data-dir {}: no such folder; give the data folder a gateway or demo printed (it holds {DB_FILE}), or --config FILE",
                dir.display()
            ));
        }
        Err(e) => return Err(format!("--data-dir {}: cannot read it: {e}", dir.display())),
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join(DB_FILE).is_file())
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!(
            "--data-dir {}: no gateway store there ({DB_FILE} is neither in it nor in a folder directly inside it); \
             give the data folder a gateway or demo printed, or --config FILE of a gateway that has run",
            dir.display()
        )),
        _ => Err(format!(
            "--data-dir {}: several gateway stores inside it ({}); give the one you mean",
            dir.display(),
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Which configuration file and data directory `args` name: the file (given,
/// or recorded in the data directory) and the data directory when given.
/// Beside `--config`, a `--data-dir` without a store is taken as it is (a
/// window may be planned before the gateway's first run); alone, it must
/// hold one.
pub fn resolve(args: &SiteArgs) -> Result<(PathBuf, Option<PathBuf>), String> {
    let dir = match (&args.data_dir, &args.config) {
        (Some(d), Some(_)) => Some(find_store_dir(d).unwrap_or_else(|_| d.clone())),
        (Some(d), None) => Some(find_store_dir(d)?),
        (None, _) => None,
    };
    match (&args.config, &dir) {
        (Some(c), _) => Ok((c.clone(), dir)),
        (None, Some(d)) => match recorded_config(d) {
            Some(c) if c.is_file() => Ok((c, dir)),
            Some(c) => Err(format!(
                "{}: the gateway ran with the configuration {}, which is no longer there; give it with --config FILE",
                d.join(CONFIG_RECORD).display(),
                c.display()
            )),
            None => Err(format!(
                "{}: the store does not say which configuration the gateway ran with \
                 (no {CONFIG_RECORD}: written by gateway run from this version on); give it with --config FILE",
                d.display()
            )),
        },
        (None, None) => Err("give --config FILE or --data-dir DIR".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_store_is_found_in_the_folder_or_one_level_down() {
        let t = tempfile::tempdir().unwrap();
        let gw = t.path().join("gateway");
        std::fs::create_dir_all(&gw).unwrap();
        std::fs::create_dir_all(t.path().join("dashboard")).unwrap();
        assert!(
            find_store_dir(t.path())
                .unwrap_err()
                .contains("no gateway store")
        );
        std::fs::write(gw.join(DB_FILE), b"").unwrap();
        assert_eq!(find_store_dir(t.path()).unwrap(), gw);
        assert_eq!(find_store_dir(&gw).unwrap(), gw);
        let other = t.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join(DB_FILE), b"").unwrap();
        assert!(find_store_dir(t.path()).unwrap_err().contains("several"));
        let e = find_store_dir(&t.path().join("nope")).unwrap_err();
        assert!(e.contains("no such folder"), "{e}");
    }

    #[test]
    fn a_data_dir_alone_takes_the_recorded_configuration() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(DB_FILE), b"").unwrap();
        let e = resolve(&SiteArgs::data_dir(t.path())).unwrap_err();
        assert!(e.contains("--config FILE"), "{e}");
        let cfg = t.path().join("site.toml");
        std::fs::write(&cfg, "").unwrap();
        record_config(t.path(), &cfg).unwrap();
        let (file, dir) = resolve(&SiteArgs::data_dir(t.path())).unwrap();
        assert_eq!(file, cfg.canonicalize().unwrap());
        assert_eq!(dir.as_deref(), Some(t.path()));
        std::fs::remove_file(&cfg).unwrap();
        let e = resolve(&SiteArgs::data_dir(t.path())).unwrap_err();
        assert!(e.contains("no longer there"), "{e}");
    }
}
