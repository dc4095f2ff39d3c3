//! `gateway maintenance add|list|remove`: planned maintenance windows added
//! at run time, beside the `[[maintenance]]` windows of the configuration.
//!
//! A new window is parsed exactly as a configured one
//! (`Window::from_config`, times local to the site) and checked against
//! every configured and stored window (`check_windows`); an overlap is
//! refused with a message naming both windows. Adding and removing go
//! through the same protocol as ticket commands (see `cli::tickets`): sent
//! to a running gateway, applied directly to a stopped one. Only windows
//! added here can be removed here; configured ones are edited in the file.

use gateway_core::config::MaintenanceWindowConfig;
use gateway_core::maintenance::{Schedule, Target, Window};
use gateway_core::model::DeviceClass;
use serde::Serialize;

use super::site::SiteArgs;
use super::tickets::{
    EXIT_REFUSED, Site, WAIT, json_text, load_site, local_time, now_ms, read, report, send, table,
};
use crate::store::{Command, Store, check_new_window};

/// Arguments of `gateway maintenance`.
#[derive(Debug, clap::Args)]
pub struct MaintenanceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: MaintenanceCommand,
}

/// The `maintenance` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MaintenanceCommand {
    /// Plan a maintenance window for a device or a class.
    Add(AddArgs),
    /// List configured and added windows.
    List {
        #[command(flatten)]
        site: SiteArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a window added with `maintenance add`.
    Remove {
        #[command(flatten)]
        site: SiteArgs,
        /// Window id.
        id: String,
    },
}

/// Arguments of `maintenance add`.
#[derive(Debug, Default, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Window id (lowercase letters, digits, '-', '_'); default `mw-<n>`.
    #[arg(long)]
    pub id: Option<String>,
    /// The device under maintenance.
    #[arg(long, required_unless_present = "class", conflicts_with = "class")]
    pub device: Option<String>,
    /// Every device of this class (pump, distribution, fire_alarm, …).
    #[arg(long)]
    pub class: Option<String>,
    /// Recurring: days and local times, e.g. "Tue 20:00-22:00", "Mon,Thu 20:00-22:00".
    #[arg(long, required_unless_present = "from", conflicts_with_all = ["from", "to"])]
    pub weekly: Option<String>,
    /// One-off start, local time: "2026-12-01 20:00".
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// One-off end, local time: "2026-12-01 22:00".
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Free text (what is done, who does it).
    #[arg(long, default_value = "")]
    pub note: String,
}

/// Builds the window `maintenance add` asks for, checked on its own and
/// against `existing` (configured and stored windows). The error is the
/// message for the person.
pub fn window_from_args(a: &AddArgs, site: &Site, existing: &[Window]) -> Result<Window, String> {
    let class = match &a.class {
        None => None,
        Some(c) => Some(
            DeviceClass::ALL
                .into_iter()
                .find(|k| k.as_str() == c.trim())
                .ok_or_else(|| {
                    let all: Vec<&str> = DeviceClass::ALL.iter().map(|k| k.as_str()).collect();
                    format!("unknown class {c:?}; use one of {}", all.join(", "))
                })?,
        ),
    };
    if let Some(d) = &a.device
        && !site.config.devices.iter().any(|x| &x.id == d)
    {
        return Err(format!(
            "no device {d:?} in the configuration; `gateway status --config …` (or `--data-dir …`) lists them"
        ));
    }
    let id = match &a.id {
        Some(id) => id.clone(),
        None => (1..)
            .map(|n| format!("mw-{n}"))
            .find(|id| !existing.iter().any(|w| &w.id == id))
            .unwrap_or_else(|| "mw".to_owned()),
    };
    let c = MaintenanceWindowConfig {
        id,
        device: a.device.clone(),
        class,
        from: a.from.clone(),
        to: a.to.clone(),
        weekly: a.weekly.clone(),
        note: a.note.clone(),
    };
    let w = Window::from_config(&c, site.tz).map_err(|e| e.to_string())?;
    check_new_window(existing, &[], &w).map_err(|e| e.to_string())?;
    Ok(w)
}

/// One line of `maintenance list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowRow {
    /// The window.
    #[serde(flatten)]
    pub window: Window,
    /// `config` (the file) or `added` (`maintenance add`).
    pub source: &'static str,
    /// The schedule for people, in local time.
    pub when: String,
}

/// The schedule for people: `Tue,Thu 20:00-22:00` or `2026-12-01 20:00 → 2026-12-01 22:00`.
pub fn schedule_text(site: &Site, s: &Schedule) -> String {
    match s {
        Schedule::Once { from_ms, to_ms } => format!(
            "{} → {}",
            local_time(site.tz, *from_ms),
            local_time(site.tz, *to_ms)
        ),
        Schedule::Weekly { days, start, end } => {
            let days: Vec<String> = days.iter().map(ToString::to_string).collect();
            format!(
                "{} {}-{}",
                days.join(","),
                start.format("%H:%M"),
                end.format("%H:%M")
            )
        }
    }
}

/// Configured then stored windows.
pub fn window_rows(site: &Site, stored: &[Window]) -> Vec<WindowRow> {
    let configured = site.configured_windows();
    configured
        .into_iter()
        .map(|w| (w, "config"))
        .chain(stored.iter().cloned().map(|w| (w, "added")))
        .map(|(window, source)| WindowRow {
            when: schedule_text(site, &window.schedule),
            window,
            source,
        })
        .collect()
}

/// The `maintenance list` table.
pub fn list_text(rows: &[WindowRow]) -> String {
    if rows.is_empty() {
        return "no maintenance windows\n".to_owned();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let target = match &r.window.target {
                Target::Device(d) => d.clone(),
                Target::Class(c) => format!("class {c}"),
            };
            vec![
                r.window.id.clone(),
                target,
                r.when.clone(),
                r.source.to_owned(),
                r.window.note.clone(),
            ]
        })
        .collect();
    table(&["ID", "TARGET", "WHEN", "SOURCE", "NOTE"], &cells)
}

/// Runs `gateway maintenance …`; returns the exit code.
pub async fn maintenance(args: MaintenanceArgs) -> u8 {
    match args.command {
        MaintenanceCommand::List { site, json } => read(&site, |site, store| {
            let rows = window_rows(site, &store.windows()?);
            Ok(if json {
                json_text(&rows)
            } else {
                list_text(&rows)
            })
        }),
        MaintenanceCommand::Remove { site, id } => {
            send_window_command(&site, |_, _| Ok(Command::RemoveWindow { id })).await
        }
        MaintenanceCommand::Add(a) => {
            let site = a.site.clone();
            send_window_command(&site, |site, store| {
                let mut existing = site.configured_windows();
                existing.extend(store.windows().map_err(|e| e.to_string())?);
                window_from_args(&a, site, &existing).map(Command::AddWindow)
            })
            .await
        }
    }
}

/// Opens (creating it: windows may be planned before the first run) the
/// store, builds the command and sends it.
async fn send_window_command(
    args: &SiteArgs,
    make: impl FnOnce(&Site, &Store) -> Result<Command, String>,
) -> u8 {
    let site = match load_site(args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut store = match Store::open(&site.data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway: {e}");
            return EXIT_REFUSED;
        }
    };
    let cmd = match make(&site, &store) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gateway: {e}");
            return EXIT_REFUSED;
        }
    };
    report(send(&mut store, &site, &cmd, now_ms(), WAIT).await)
}
