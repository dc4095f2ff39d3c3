//! Command-line interface of the `gateway` binary.

mod backup;
mod check;
mod dead_letters;
mod demo;
mod maintenance;
mod oncall;
mod profile;
mod propose;
mod read;
mod report;
mod run;
mod scan;
mod simulate;
mod site;
mod status;
mod tickets;
mod write;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use backup::{BackupArgs, RestoreArgs, backup, restore};
pub use check::check;
pub use dead_letters::{DeadLettersArgs, dead_letters};
pub use demo::{DemoArgs, demo, look_commands};
pub use maintenance::{MaintenanceArgs, MaintenanceCommand, maintenance};
pub use oncall::{AlertsArgs, AlertsCommand, OncallArgs, alerts, oncall};
pub use profile::{ExportArgs, ImportArgs, ProfileArgs, ProfileCommand, profile};
pub use read::{ReadArgs, read};
pub use report::{
    Format, RenderFailure, ReportArgs, ReportFailure, folder_files, input_from_store, render,
    report,
};
pub use run::{NorthParts, RunArgs, run, start_north};
pub use scan::{ScanArgs, scan};
pub use simulate::{SimulateArgs, simulate};
pub use site::{CONFIG_RECORD, SiteArgs, find_store_dir, record_config};
pub use status::{StatusArgs, run_status as status};
pub use tickets::{TicketsArgs, TicketsCommand, tickets};
pub use write::{WriteArgs, WritesArgs, WritesCommand, write, writes};

/// Exit code for a configuration or usage error (EX_USAGE, sysexits.h).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code when a peer could not be reached (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// Exit code when the ledger database is damaged or lost and is refused at
/// start (EX_DATAERR): restarting will not fix it; `gateway restore` does.
pub const EXIT_DAMAGED: u8 = 65;
/// Exit code when the ledger database turned out damaged while running
/// (EX_IOERR): the service manager restarts the gateway, whose start check
/// then refuses the file with [`EXIT_DAMAGED`] and the way back.
pub const EXIT_LEDGER_FAILED: u8 = 74;

/// BMS edge gateway: polls building equipment over Modbus RTU/TCP.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, long_version = crate::buildinfo::LONG_VERSION, about, long_about = None)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `gateway=debug`. Also `RUST_LOG`.
    #[arg(long, global = true, env = "GATEWAY_LOG", default_value = "info")]
    pub log: String,
    /// Log format: `auto` is journald's native protocol under systemd
    /// (structured fields, `BMS_DEVICE=…`), text otherwise.
    #[arg(
        long,
        global = true,
        env = "GATEWAY_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    pub log_format: crate::logging::LogFormat,
    /// Same as `--log-format json`.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration and print the poll plan (requests per bus and device per cycle).
    Check {
        /// The gateway configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Also list every planned request with the points it carries.
        #[arg(long, short)]
        verbose: bool,
        /// Exit with code 2 when a line cannot carry the polls configured on it.
        #[arg(long)]
        strict: bool,
    },
    /// Run the gateway daemon.
    Run(RunArgs),
    /// Read registers or bits from one device (like mbpoll).
    Read(ReadArgs),
    /// Find which unit ids answer on a line or endpoint.
    Scan(ScanArgs),
    /// Serve the simulated building described by a configuration.
    Simulate(SimulateArgs),
    /// Simulated building + gateway in one process, values shown live (nothing to install).
    Demo(DemoArgs),
    /// Fault tickets: list, show, ack, resolve, close.
    Tickets(TicketsArgs),
    /// Planned maintenance windows: add, list, remove.
    Maintenance(MaintenanceArgs),
    /// Each device's state and availability against its target.
    Status(StatusArgs),
    /// Copy the data directory's databases (online: the gateway may run).
    Backup(BackupArgs),
    /// Put a backup back into a data directory (the gateway must be stopped).
    Restore(RestoreArgs),
    /// Monthly availability report (HTML for printing, CSV tables, xlsx, JSON).
    Report(ReportArgs),
    /// Who is on call now and for the next two weeks, by tier.
    Oncall(OncallArgs),
    /// On-call alerts: `log` lists what was sent to whom, when, and the outcome; `test` tries each channel.
    Alerts(AlertsArgs),
    /// Write a value to a device's point (a signed command to the running gateway).
    Write(WriteArgs),
    /// Writes to devices: `log` lists the audit (who, when, old, new, read-back, result).
    Writes(WritesArgs),
    /// Lines the time-series store refused and that were set aside: print them as line protocol (`--clear` deletes them).
    DeadLetters(DeadLettersArgs),
    /// Device profiles: `import` a point list (.xlsx/.csv) into a profile TOML, `export` one as a point list.
    Profile(ProfileArgs),
}

/// Prints every configuration error, one per line, with a count.
pub fn print_config_errors(file: &std::path::Path, errors: &[gateway_core::config::ConfigError]) {
    eprintln!(
        "{}: {} error{} in the configuration:",
        file.display(),
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        eprintln!("  - {e}");
    }
}
