//! `gateway tickets list|show|ack|resolve|close`: the fault tickets of a
//! running or stopped gateway, read from its database.
//!
//! Reading is always direct (SQLite lets a CLI read while the gateway
//! writes). Changing is not: the running gateway holds the ticket book in
//! memory, so the CLI sends a command and waits for its answer ([`send`]):
//!
//! 1. Try to take the data directory's lock (`store::DataDirLock`), which a
//!    running gateway holds for as long as it runs and the system releases
//!    when it ends, even by SIGKILL or a power cut. Held: a gateway is
//!    running; go to 2. Taken: no gateway runs, and none can start while
//!    the CLI holds it; apply the command here and now, as the stopped
//!    gateway would (`Store::apply_command_locally`, one `BEGIN IMMEDIATE`
//!    transaction), and release the lock. (A heartbeat would not do: a
//!    gateway stopped a second ago has a fresh one.)
//! 2. Queue the command and poll for its outcome every [`POLL`] for up to
//!    [`WAIT`]. No answer by then: the command stays queued and the gateway
//!    applies it when it gets to it; the CLI says so and exits 69.
//!
//! The shared pieces (loading the site, opening the store, local times) are
//! used by `maintenance` and `status` too.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::DateTime;
use chrono_tz::Tz;
use gateway_core::config::Resolved;
use gateway_core::maintenance::Window;
use gateway_core::state::UnixMs;
use gateway_core::tickets::{Ticket, TicketEvent};
use serde::Serialize;

use super::site::SiteArgs;
use crate::store::{
    Command, CommandError, DataDirLock, Store, StoreError, TicketFilter, data_dir_of,
};

#[cfg(test)]
mod tests;

/// How long the CLI waits for a running gateway's answer.
pub const WAIT: Duration = Duration::from_secs(5);
/// How often it looks for the answer meanwhile.
pub const POLL: Duration = Duration::from_millis(100);

/// Exit code of a refused command (no such ticket, wrong state, bad window)
/// or of a database that cannot be read.
pub const EXIT_REFUSED: u8 = 1;

/// Arguments of `gateway tickets`.
#[derive(Debug, clap::Args)]
pub struct TicketsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TicketsCommand,
}

/// The `tickets` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TicketsCommand {
    /// List tickets: those not closed, or all with --all.
    List {
        #[command(flatten)]
        site: SiteArgs,
        /// Include closed tickets.
        #[arg(long)]
        all: bool,
        /// Only this device's tickets.
        #[arg(long)]
        device: Option<String>,
        /// Print JSON (an array of tickets) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one ticket with its whole trail.
    Show {
        #[command(flatten)]
        site: SiteArgs,
        /// Ticket number.
        id: u64,
        /// Print JSON (the ticket and its events).
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an open ticket (I am on it).
    Ack(ActArgs),
    /// Resolve an open or acknowledged ticket (repaired).
    Resolve(ActArgs),
    /// Close a resolved ticket.
    Close(ActArgs),
}

/// Arguments of `ack`, `resolve` and `close`.
#[derive(Debug, clap::Args)]
pub struct ActArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Ticket number.
    pub id: u64,
    /// Who acts (name of the engineer).
    #[arg(long)]
    pub by: String,
    /// Free-text note.
    #[arg(long, default_value = "")]
    pub note: String,
}

/// A configuration with what the CLI derives from it.
#[derive(Debug)]
pub struct Site {
    /// The validated configuration.
    pub config: Resolved,
    /// The site's time zone.
    pub tz: Tz,
    /// The gateway's data directory.
    pub data_dir: PathBuf,
    /// The configuration file it was read from.
    pub config_file: PathBuf,
}

impl Site {
    /// A site from a validated configuration read from `config_file`.
    pub fn new(config: Resolved, config_file: &Path) -> Result<Site, String> {
        let tz = gateway_core::ledger::parse_tz(&config.timezone).map_err(|e| e.to_string())?;
        let data_dir = data_dir_of(config_file, &config.data_dir);
        Ok(Site {
            config,
            tz,
            data_dir,
            config_file: config_file.to_path_buf(),
        })
    }

    /// The maintenance windows of the configuration file.
    pub fn configured_windows(&self) -> Vec<Window> {
        self.config
            .raw
            .maintenance
            .iter()
            .filter_map(|c| Window::from_config(c, self.tz).ok())
            .collect()
    }

    /// A device's Chinese name, if the configuration has the device.
    pub fn device_name(&self, id: &str) -> Option<&str> {
        self.config
            .devices
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.name_zh.as_str())
    }
}

/// Loads the site of `gateway <cmd> --config FILE` and/or `--data-dir DIR`
/// (see `cli::site`), printing what is wrong.
pub(super) fn load_site(args: &SiteArgs) -> Result<Site, u8> {
    let (file, dir) = match super::site::resolve(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gateway: {e}");
            return Err(super::EXIT_CONFIG);
        }
    };
    let mut site = load_site_file(&file)?;
    if let Some(d) = dir {
        site.data_dir = d;
    }
    Ok(site)
}

/// Loads the site of a configuration file, printing what is wrong.
pub(super) fn load_site_file(config: &Path) -> Result<Site, u8> {
    let resolved = crate::files::load_config(config).map_err(|errors| {
        super::print_config_errors(config, &errors);
        super::EXIT_CONFIG
    })?;
    Site::new(resolved, config).map_err(|e| {
        eprintln!("{}: {e}", config.display());
        super::EXIT_CONFIG
    })
}

/// Opens the database of a gateway that has run with this site's data_dir.
pub(super) fn open_store(site: &Site) -> Result<Store, u8> {
    Store::open_existing(&site.data_dir).map_err(|e| {
        match e {
            StoreError::Missing { .. } => eprintln!(
                "gateway: no gateway store in {} (no {}): no gateway has run with this data directory yet; \
                 start it (gateway run) or give the right --data-dir DIR or --config FILE",
                site.data_dir.display(),
                crate::store::DB_FILE
            ),
            e => eprintln!("gateway: {e}"),
        }
        EXIT_REFUSED
    })
}

/// Now, from the system clock, in Unix ms.
pub(super) fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `2026-11-03 18:00` in the site's zone.
pub fn local_time(tz: Tz, ms: UnixMs) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// A duration for people: `45s`, `12m`, `3h 05m`, `2d 4h`.
pub fn human_ms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

/// Columns a terminal gives a string (CJK characters take two).
pub fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let c = u32::from(c);
            let wide = (0x1100..=0x115F).contains(&c)
                || (0x2E80..=0xA4CF).contains(&c)
                || (0xAC00..=0xD7A3).contains(&c)
                || (0xF900..=0xFAFF).contains(&c)
                || (0xFE30..=0xFE4F).contains(&c)
                || (0xFF00..=0xFF60).contains(&c)
                || (0xFFE0..=0xFFE6).contains(&c);
            if wide { 2 } else { 1 }
        })
        .sum()
}

/// Lays out rows as left-aligned columns two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| display_width(h)).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(display_width(cell));
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for r in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, w)) in r.iter().zip(&widths).enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(w - display_width(cell) + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// How a command sent by the CLI ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// No gateway was running: this CLI applied it; the outcome text.
    Applied(String),
    /// The running gateway applied or refused it.
    Answered(Result<String, String>),
    /// Queued (this id) but the running gateway did not answer in time.
    Pending(i64),
}

/// Whether a gateway is running on this site's data directory: it holds
/// the directory's lock for as long as it runs.
pub fn gateway_running(site: &Site) -> bool {
    DataDirLock::is_held(&site.data_dir)
}

/// Sends a command by the protocol in the module doc: applied here when no
/// gateway runs, else queued for the running gateway and its answer awaited
/// (polling with tokio's clock, up to `wait`). `now_ms` is the wall-clock
/// time of the request. A refusal when applied here is an `Err`.
pub async fn send(
    store: &mut Store,
    site: &Site,
    cmd: &Command,
    now_ms: UnixMs,
    wait: Duration,
) -> Result<Delivery, CommandError> {
    enum Local {
        Applied(String),
        Running,
    }
    let windows = site.configured_windows();
    // Holding the data directory's lock, no gateway can start meanwhile.
    let lock = DataDirLock::try_acquire(&site.data_dir).map_err(|e| {
        CommandError::Store(StoreError::Dir {
            path: site.data_dir.join(crate::store::LOCK_FILE),
            source: e,
        })
    })?;
    let local = match &lock {
        None => Local::Running,
        Some(_) => store.transaction(|s| -> Result<Local, CommandError> {
            s.apply_command_locally(&site.config.raw.tickets, site.tz, &windows, cmd, now_ms)
                .map(Local::Applied)
        })?,
    };
    drop(lock);
    if let Local::Applied(text) = local {
        return Ok(Delivery::Applied(text));
    }
    let id = store.enqueue_command(cmd)?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(answer) = store.command_result(id)? {
            return Ok(Delivery::Answered(answer));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Delivery::Pending(id));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Prints how a sent command ended; returns the exit code.
pub(super) fn report(result: Result<Delivery, CommandError>) -> u8 {
    match result {
        Ok(Delivery::Applied(text)) | Ok(Delivery::Answered(Ok(text))) => {
            println!("{text}");
            0
        }
        Ok(Delivery::Answered(Err(text))) => {
            eprintln!("gateway: {text}");
            EXIT_REFUSED
        }
        Err(e) => {
            eprintln!("gateway: {e}");
            EXIT_REFUSED
        }
        Ok(Delivery::Pending(id)) => {
            eprintln!(
                "gateway: the running gateway has not answered within {} s; the command is queued (#{id}) and will be applied when it gets to it",
                WAIT.as_secs()
            );
            super::EXIT_UNAVAILABLE
        }
    }
}

/// The `tickets list` table.
pub fn list_text(site: &Site, tickets: &[Ticket], now_ms: UnixMs) -> String {
    if tickets.is_empty() {
        return "no tickets\n".to_owned();
    }
    let rows: Vec<Vec<String>> = tickets
        .iter()
        .map(|t| {
            let mut deadline = local_time(site.tz, t.deadline_ms);
            if t.state.is_active() && now_ms > t.deadline_ms {
                deadline.push_str(" overdue");
            }
            vec![
                format!("#{}", t.id),
                t.device.clone(),
                t.kind.clone(),
                t.severity.to_string(),
                t.state.to_string(),
                human_ms(now_ms - t.opened_ms),
                deadline,
                t.acknowledged
                    .as_ref()
                    .map_or_else(String::new, |s| s.by.clone()),
            ]
        })
        .collect();
    table(
        &[
            "ID", "DEVICE", "KIND", "SEVERITY", "STATE", "AGE", "DEADLINE", "ACKED BY",
        ],
        &rows,
    )
}

/// The `tickets show` text: the ticket and its whole trail.
pub fn show_text(site: &Site, t: &Ticket, now_ms: UnixMs) -> String {
    let tz = site.tz;
    let mut out = String::new();
    let name = site
        .device_name(&t.device)
        .map_or_else(String::new, |n| format!(" ({n})"));
    let _ = writeln!(
        out,
        "ticket #{}  {}{}  {}  {}  {}",
        t.id, t.device, name, t.kind, t.severity, t.state
    );
    let mut field = |label: &str, value: String| {
        let _ = writeln!(out, "{:<14}{value}", format!("{label}:"));
    };
    field("summary", t.summary.clone());
    field(
        "opened",
        format!(
            "{} ({} ago)",
            local_time(tz, t.opened_ms),
            human_ms(now_ms - t.opened_ms)
        ),
    );
    if let Some(at) = t.reopened_ms {
        field(
            "reopened",
            format!("{} (rework {})", local_time(tz, at), t.reworks),
        );
    }
    let due = if !t.state.is_active() {
        String::new()
    } else if now_ms > t.deadline_ms {
        format!(" (overdue by {})", human_ms(now_ms - t.deadline_ms))
    } else {
        format!(" (in {})", human_ms(t.deadline_ms - now_ms))
    };
    field(
        "deadline",
        format!("{}{due}", local_time(tz, t.deadline_ms)),
    );
    let steps = [
        ("acknowledged", &t.acknowledged),
        ("resolved", &t.resolved),
        ("closed", &t.closed),
    ];
    if let Some(at) = t.recovered_ms {
        field("recovered", format!("{} (by itself)", local_time(tz, at)));
    }
    for (label, step) in steps {
        if let Some(s) = step {
            let note = if s.note.is_empty() {
                String::new()
            } else {
                format!(": {}", s.note)
            };
            field(
                label,
                format!("{} by {}{note}", local_time(tz, s.at_ms), s.by),
            );
        }
    }
    let _ = writeln!(out, "history:");
    let rows: Vec<Vec<String>> = t
        .history
        .iter()
        .map(|h| {
            let mut note = h.note.clone();
            if let Some(d) = h.deadline_ms {
                if !note.is_empty() {
                    note.push_str("; ");
                }
                note.push_str(&format!("due {}", local_time(tz, d)));
            }
            vec![
                format!("  {}", local_time(tz, h.at_ms)),
                h.kind.to_string(),
                h.by.clone(),
                note,
            ]
        })
        .collect();
    out.push_str(&table(&["  WHEN", "WHAT", "BY", "NOTE"], &rows));
    out
}

/// `tickets show --json`: the ticket and every stored event of it.
#[derive(Debug, Serialize)]
pub struct ShowJson<'a> {
    /// The ticket as stored.
    pub ticket: &'a Ticket,
    /// Its events, oldest first.
    pub events: Vec<TicketEvent>,
}

/// Runs `gateway tickets …`; returns the exit code.
pub async fn tickets(args: TicketsArgs) -> u8 {
    match args.command {
        TicketsCommand::List {
            site,
            all,
            device,
            json,
        } => read(&site, |site, store| {
            let filter = TicketFilter {
                open_only: !all,
                device,
                since_ms: None,
            };
            let list = store.tickets(&filter)?;
            Ok(if json {
                json_text(&list)
            } else {
                list_text(site, &list, now_ms())
            })
        }),
        TicketsCommand::Show { site, id, json } => read(&site, |site, store| {
            let Some(t) = store.ticket(id)? else {
                if store.ticket_deleted(id)? {
                    return Err(CommandError::Deleted(id));
                }
                return Err(CommandError::Ticket(
                    gateway_core::tickets::TicketError::Unknown(id),
                ));
            };
            Ok(if json {
                json_text(&ShowJson {
                    ticket: &t,
                    events: store.ticket_events(id)?,
                })
            } else {
                show_text(site, &t, now_ms())
            })
        }),
        TicketsCommand::Ack(a) => act(a, |id, by, note| Command::Ack { id, by, note }).await,
        TicketsCommand::Resolve(a) => {
            act(a, |id, by, note| Command::Resolve { id, by, note }).await
        }
        TicketsCommand::Close(a) => act(a, |id, by, note| Command::Close { id, by, note }).await,
    }
}

/// Pretty JSON with a final newline.
pub(super) fn json_text<T: Serialize>(v: &T) -> String {
    match serde_json::to_string_pretty(v) {
        Ok(s) => s + "\n",
        Err(e) => error_json(&e.to_string()) + "\n",
    }
}

/// `{"error": "<message>"}`, built by serde_json so that any message (with
/// quotes, backslashes or control characters) gives valid JSON.
pub(super) fn error_json(message: &str) -> String {
    let v = serde_json::json!({ "error": message });
    serde_json::to_string(&v).unwrap_or_else(|_| r#"{"error":"unprintable error"}"#.to_owned())
}

/// Loads the site and its store, runs a read-only query, prints its text.
pub(super) fn read(
    args: &SiteArgs,
    f: impl FnOnce(&Site, &Store) -> Result<String, CommandError>,
) -> u8 {
    let site = match load_site(args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let store = match open_store(&site) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match f(&site, &store) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("gateway: {e}");
            EXIT_REFUSED
        }
    }
}

async fn act(a: ActArgs, make: impl FnOnce(u64, String, String) -> Command) -> u8 {
    let site = match load_site(&a.site) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut store = match open_store(&site) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let cmd = make(a.id, a.by, a.note);
    report(send(&mut store, &site, &cmd, now_ms(), WAIT).await)
}
