//! `gateway status`: each configured device's state, since when (local time
//! of the site), why, and its availability over the rolling window and the
//! month to date against its target — computed with `gateway_core::ledger`
//! from the stored intervals, so it works for a running or stopped gateway.
//!
//! Availability is Up ÷ (Up + Down); Maintenance and Unknown time are left
//! out of both and shown as coverage (JSON). A dash means no Up or Down time
//! in the window. For a stopped gateway the time after its last heartbeat is
//! unknown (`gateway_down`), as in `gateway report`: its devices' last
//! states are not carried on to now.

use gateway_core::ledger::{month_to_date, totals};
use gateway_core::state::{DeviceState, UnixMs};
use serde::Serialize;

use super::report::seen_intervals;
use super::site::SiteArgs;
use super::tickets::{Site, gateway_running, human_ms, json_text, local_time, now_ms, read, table};
use crate::store::{Store, StoreError};

/// Arguments of `gateway status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One device's line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceStatusRow {
    /// Device id.
    pub device: String,
    /// Chinese name.
    pub name_zh: String,
    /// Class.
    pub class: String,
    /// Current state (`unknown` when nothing is recorded).
    pub state: DeviceState,
    /// Since when (Unix ms), if recorded.
    pub since_ms: Option<UnixMs>,
    /// Why (`comms`, `rule:<name>`, `maintenance:<id>`, `gateway_down`…).
    pub reason: Option<String>,
    /// The rolling window's length in ms.
    pub rolling_window_ms: i64,
    /// Availability (0–1) over the rolling window.
    pub rolling: Option<f64>,
    /// Coverage (0–1) of the rolling window.
    pub rolling_coverage: Option<f64>,
    /// Availability (0–1) over the month to date.
    pub month: Option<f64>,
    /// Coverage (0–1) of the month to date.
    pub month_coverage: Option<f64>,
    /// Target in per cent.
    pub threshold_percent: f64,
}

impl DeviceStatusRow {
    /// True when an availability figure is known and below the target.
    pub fn below(&self) -> bool {
        [self.rolling, self.month]
            .into_iter()
            .flatten()
            .any(|a| a * 100.0 < self.threshold_percent)
    }
}

/// The whole status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    /// When it was computed.
    pub now_ms: UnixMs,
    /// The last heartbeat of a gateway.
    pub last_heartbeat_ms: Option<UnixMs>,
    /// Whether a gateway is running (it holds the data directory's lock).
    pub running: bool,
    /// Start of the month to date (local midnight of the 1st).
    pub month_from_ms: UnixMs,
    /// One row per configured device, in file order.
    pub devices: Vec<DeviceStatusRow>,
}

/// Computes the status of every configured device at `now_ms`.
pub fn status(site: &Site, store: &Store, now_ms: UnixMs) -> Result<Status, StoreError> {
    let open = store.open_intervals()?;
    let (month_from, _) = month_to_date(site.tz, now_ms);
    let avail = &site.config.raw.availability;
    let mut devices = Vec::new();
    for d in &site.config.devices {
        let current = open.iter().find(|o| o.0 == d.id);
        let window = avail.rolling_window_ms(d.class);
        let from = now_ms.saturating_sub(window);
        let earliest = from.min(month_from);
        // After a stopped gateway's last heartbeat nothing is known: the
        // same intervals as `gateway report` reads.
        let ivs = seen_intervals(site, store, Some(&d.id), earliest, now_ms, now_ms)?;
        let rolling = totals(&ivs, from, now_ms);
        let month = totals(&ivs, month_from, now_ms);
        devices.push(DeviceStatusRow {
            device: d.id.clone(),
            name_zh: d.name_zh.clone(),
            class: d.class.as_str().to_owned(),
            state: current.map_or(DeviceState::Unknown, |o| o.1),
            since_ms: current.map(|o| o.3),
            reason: current.and_then(|o| o.2.clone()),
            rolling_window_ms: window,
            rolling: rolling.availability(),
            rolling_coverage: rolling.coverage(),
            month: month.availability(),
            month_coverage: month.coverage(),
            threshold_percent: d.threshold_percent,
        });
    }
    let last_heartbeat_ms = store.last_heartbeat()?;
    Ok(Status {
        now_ms,
        last_heartbeat_ms,
        running: gateway_running(site),
        month_from_ms: month_from,
        devices,
    })
}

/// `24h`, `7d`, `90m`: a window length as its header.
fn window_text(ms: i64) -> String {
    const H: i64 = 3_600_000;
    if ms > 48 * H && ms % (24 * H) == 0 {
        format!("{}d", ms / (24 * H))
    } else if ms > 0 && ms % H == 0 {
        format!("{}h", ms / H)
    } else {
        human_ms(ms)
    }
}

fn percent(a: Option<f64>) -> String {
    a.map_or_else(|| "-".to_owned(), |a| format!("{:.2}%", a * 100.0))
}

fn target_text(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p}%")
    }
}

/// The `status` text: a line about the gateway, then one row per device.
pub fn status_text(site: &Site, s: &Status) -> String {
    let mut out = match (s.running, s.last_heartbeat_ms) {
        (true, Some(h)) => format!(
            "gateway running (heartbeat {} ago)\n",
            human_ms(s.now_ms - h)
        ),
        (_, Some(h)) => format!(
            "gateway NOT running (last heartbeat {}, {} ago)\n",
            local_time(site.tz, h),
            human_ms(s.now_ms - h)
        ),
        (_, None) => "gateway has never run\n".to_owned(),
    };
    out.push_str(&format!(
        "month to date from {} ({})\n",
        local_time(site.tz, s.month_from_ms),
        site.tz
    ));
    let rows: Vec<Vec<String>> = s
        .devices
        .iter()
        .map(|d| {
            vec![
                d.device.clone(),
                d.name_zh.clone(),
                d.state.to_string(),
                d.since_ms
                    .map_or_else(|| "-".to_owned(), |t| local_time(site.tz, t)),
                d.reason.clone().unwrap_or_default(),
                percent(d.rolling),
                percent(d.month),
                target_text(d.threshold_percent),
                if d.below() { "BELOW" } else { "" }.to_owned(),
            ]
        })
        .collect();
    let rolling = match s.devices.first() {
        Some(d)
            if s.devices
                .iter()
                .all(|x| x.rolling_window_ms == d.rolling_window_ms) =>
        {
            window_text(d.rolling_window_ms)
        }
        _ => "ROLLING".to_owned(),
    };
    out.push_str(&table(
        &[
            "DEVICE", "NAME", "STATE", "SINCE", "REASON", &rolling, "MONTH", "TARGET", "",
        ],
        &rows,
    ));
    out
}

/// Runs `gateway status`; returns the exit code.
pub fn run_status(args: StatusArgs) -> u8 {
    let json = args.json;
    read(&args.site, |site, store| {
        let s = status(site, store, now_ms())?;
        Ok(if json {
            json_text(&s)
        } else {
            status_text(site, &s)
        })
    })
}
