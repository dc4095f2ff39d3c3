//! `gateway profile import` / `gateway profile export`: a device's point
//! list between a spreadsheet (.xlsx or .csv, the layout of
//! docs/profiles.md "Point lists from spreadsheets") and a profile TOML.
//!
//! Import reports every problem of the sheets at once (sheet, row, column,
//! cell), runs the profile validation of `gateway check` on the result and
//! writes the TOML only when it passes; neither command overwrites a file
//! without `--force`.

use std::path::{Path, PathBuf};

use gateway_core::config::load::parse_profile;
use gateway_core::config::validate::is_profile_name;
use gateway_core::model::WordOrder;
use gateway_core::pointlist::{ImportOptions, export, import, profile_to_toml};

use crate::sheets::{SheetFileError, format_of, read_tables, render};

/// Exit code when an input file cannot be read (EX_NOINPUT).
const EXIT_NO_INPUT: u8 = 66;
/// Exit code when the output cannot be written (EX_CANTCREAT).
const EXIT_CANT_CREATE: u8 = 73;

/// Arguments of `gateway profile`.
#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
}

/// The `gateway profile` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// Make a profile TOML from a point list (.xlsx or .csv).
    Import(ImportArgs),
    /// Write a profile's points as a point list (.xlsx or .csv).
    Export(ExportArgs),
}

/// Arguments of `gateway profile import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The point list: .xlsx (also .xls, .ods) or .csv (UTF-8; GBK is decoded).
    pub file: PathBuf,
    /// The profile file to write; its name (without .toml) is the profile's name.
    #[arg(long)]
    pub out: PathBuf,
    /// The sheet holding the points (default: the first).
    #[arg(long)]
    pub sheet: Option<String>,
    /// How plain addresses count: 0 = protocol addresses, 1 = the list
    /// counts from 1 (register 1 is protocol address 0). A `base` column
    /// overrides it per row; reference numbers (40001) are always 1-based.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub base: Option<u8>,
    /// The profile's description (default: the `profile` sheet's, else "Imported from FILE").
    #[arg(long)]
    pub description: Option<String>,
    /// The profile's word order: ABCD, CDAB, BADC or DCBA (default: the `profile` sheet's, else ABCD).
    #[arg(long, value_parser = parse_order)]
    pub order: Option<WordOrder>,
    /// Overwrite `--out` if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `gateway profile export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The profile TOML.
    pub profile: PathBuf,
    /// The point list to write: .xlsx or .csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite `--out` if it exists.
    #[arg(long)]
    pub force: bool,
}

fn parse_order(s: &str) -> Result<WordOrder, String> {
    match s.to_ascii_uppercase().as_str() {
        "ABCD" => Ok(WordOrder::Abcd),
        "CDAB" => Ok(WordOrder::Cdab),
        "BADC" => Ok(WordOrder::Badc),
        "DCBA" => Ok(WordOrder::Dcba),
        _ => Err(format!("{s:?}: give ABCD, CDAB, BADC or DCBA")),
    }
}

/// Runs `gateway profile …`; returns the exit code.
pub fn profile(args: &ProfileArgs) -> u8 {
    match &args.command {
        ProfileCommand::Import(a) => import_cmd(a),
        ProfileCommand::Export(a) => export_cmd(a),
    }
}

fn refuse_overwrite(out: &Path, force: bool, cmd: &str) -> bool {
    if out.exists() && !force {
        eprintln!(
            "gateway profile {cmd}: {} exists; give --force to overwrite it, or another --out",
            out.display()
        );
        return true;
    }
    false
}

/// Writes through a temporary file beside `out`, so that a failed write
/// never leaves half a file.
fn write_file(out: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(out).map_err(|e| e.error)?;
    Ok(())
}

fn file_error(cmd: &str, e: &SheetFileError) -> u8 {
    eprintln!("gateway profile {cmd}: {e}");
    match e {
        SheetFileError::UnknownKind(_) => super::EXIT_CONFIG,
        _ => EXIT_NO_INPUT,
    }
}

fn import_cmd(a: &ImportArgs) -> u8 {
    let name = a
        .out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    if a.out.extension().and_then(|e| e.to_str()) != Some("toml") || !is_profile_name(&name) {
        eprintln!(
            "gateway profile import: --out {}: the profile file's name is the profile's name: \
             lowercase letters, digits, '-' and '_', ending in .toml (e.g. pump-vfd.toml)",
            a.out.display()
        );
        return super::EXIT_CONFIG;
    }
    if refuse_overwrite(&a.out, a.force, "import") {
        return super::EXIT_CONFIG;
    }
    let (tables, note) = match read_tables(&a.file) {
        Ok(t) => t,
        Err(e) => return file_error("import", &e),
    };
    if let Some(note) = note {
        eprintln!(
            "{}: not UTF-8; read as {note}. Check the Chinese labels in the result",
            a.file.display()
        );
    }
    let file_name = a
        .file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let opts = ImportOptions {
        sheet: a.sheet.clone(),
        base: a.base,
        description: a.description.clone(),
        order: a.order,
        fallback_description: format!("Imported from {file_name}"),
        name: name.clone(),
    };
    let profile = match import(&tables, &opts) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!(
                "{}: {} error{}; nothing written:",
                a.file.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            for e in &errors {
                eprintln!("  - {e}");
            }
            return super::EXIT_CONFIG;
        }
    };
    let sheet = a
        .sheet
        .clone()
        .or_else(|| tables.first().map(|t| t.name.clone()))
        .unwrap_or_default();
    let text = format!(
        "# Imported from {file_name} (sheet {sheet:?}) by `gateway profile import`.\n{}",
        profile_to_toml(&profile)
    );
    // The text must mean exactly what was checked.
    match parse_profile(&a.out.display().to_string(), &text) {
        Ok(back) if back == profile => {}
        _ => {
            eprintln!(
                "gateway profile import: internal error: the TOML written would not read back as the profile checked; nothing written"
            );
            return super::EXIT_CONFIG;
        }
    }
    if let Err(e) = write_file(&a.out, text.as_bytes()) {
        eprintln!("gateway profile import: {}: {e}", a.out.display());
        return EXIT_CANT_CREATE;
    }
    println!(
        "wrote {}: profile {name:?}, {} points, {} health rules, {} identify entries \
         (plain addresses counted from {}{})",
        a.out.display(),
        profile.points.len(),
        profile.health.len(),
        profile.identify.len(),
        a.base.unwrap_or(0),
        if a.base.is_none() {
            "; give --base 1 if the list counts from 1"
        } else {
            ""
        }
    );
    let missing = profile.missing_labels();
    if !missing.is_empty() {
        println!(
            "note: {} without label_zh and label_en: {} (screens show a name made from the identifier)",
            missing.len(),
            missing.join(", ")
        );
    }
    0
}

fn export_cmd(a: &ExportArgs) -> u8 {
    let format = match format_of(&a.out, true) {
        Ok(f) => f,
        Err(e) => return file_error("export", &e),
    };
    if refuse_overwrite(&a.out, a.force, "export") {
        return super::EXIT_CONFIG;
    }
    let text = match std::fs::read_to_string(&a.profile) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("gateway profile export: {}: {e}", a.profile.display());
            return EXIT_NO_INPUT;
        }
    };
    let profile = match parse_profile(&a.profile.display().to_string(), &text) {
        Ok(p) => p,
        Err(errors) => {
            super::print_config_errors(&a.profile, &errors);
            return super::EXIT_CONFIG;
        }
    };
    let bytes = match render(&export(&profile), format) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("gateway profile export: {e}");
            return EXIT_CANT_CREATE;
        }
    };
    if let Err(e) = write_file(&a.out, &bytes) {
        eprintln!("gateway profile export: {}: {e}", a.out.display());
        return EXIT_CANT_CREATE;
    }
    println!(
        "wrote {}: {} points, {} health rules, {} identify entries",
        a.out.display(),
        profile.points.len(),
        profile.health.len(),
        profile.identify.len()
    );
    0
}
