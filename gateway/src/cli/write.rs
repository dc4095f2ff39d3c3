//! `gateway write DEVICE POINT VALUE` and `gateway writes log`.
//!
//! A write is never applied by the command line itself: it is a signed
//! `write` command (`docs/commands.md`), made with the `[commands] secret`
//! of the configuration and published on the gateway's `…/cmd/write` topic
//! of its `[mqtt]` broker; the running gateway checks it exactly as it
//! checks one from the dashboard (signature, age, nonce, then writes on,
//! device, point, writable, allowed, range), writes it between two polls,
//! reads it back and answers on `…/cmd/reply` with a signed reply, which
//! is checked here before it is believed. So there is one way in for a
//! write, one set of checks and one audit, whoever sends it.
//!
//! `gateway writes log` reads the audit table of the data directory
//! (SQLite lets it read while the gateway writes).

use std::fmt::Write as _;
use std::time::Duration;

use chrono::TimeZone as _;
use gateway_core::HumanDuration;
use gateway_core::state::UnixMs;

use super::site::SiteArgs;
use super::tickets::{load_site, local_time, now_ms, open_store, table};
use crate::cmdin::{self, open_reply};
use crate::store::{WriteFilter, WriteRow, WriteValue};

/// How long `gateway write` waits for the gateway's reply by default.
const DEFAULT_WAIT: Duration = Duration::from_secs(15);

/// Exit code when the gateway refused the write or it did not take.
const EXIT_REFUSED: u8 = 1;

/// Arguments of `gateway write`.
#[derive(Debug, clap::Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Device id.
    pub device: String,
    /// Point name (as in the device's profile).
    pub point: String,
    /// The value, in the point's unit: a number, or true/false (on/off).
    pub value: String,
    /// Who writes (recorded in the audit).
    #[arg(long)]
    pub by: String,
    /// How long to wait for the gateway's answer, e.g. "15s".
    #[arg(long, default_value = "15s")]
    pub wait: HumanDuration,
}

/// Arguments of `gateway writes`.
#[derive(Debug, clap::Args)]
pub struct WritesArgs {
    #[command(subcommand)]
    pub command: WritesCommand,
}

/// The `writes` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WritesCommand {
    /// List the audit of writes to devices, oldest first.
    Log {
        #[command(flatten)]
        site: SiteArgs,
        /// Only this device's writes.
        #[arg(long)]
        device: Option<String>,
        /// Only writes since: a duration back from now ("24h", "7d") or a
        /// local date or time of the site ("2026-12-01", "2026-12-01 08:00").
        #[arg(long)]
        since: Option<String>,
        /// Print JSON (an array of rows) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `gateway write`.
pub async fn write(a: WriteArgs) -> u8 {
    let site = match load_site(&a.site) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(value) = WriteValue::parse(&a.value) else {
        eprintln!(
            "gateway write: value {:?} is not a number or true/false",
            a.value
        );
        return super::EXIT_CONFIG;
    };
    let cfg = &site.config;
    let base = site.config_file.parent().map_or_else(
        || std::path::PathBuf::from("."),
        std::path::Path::to_path_buf,
    );
    let env = |v: &str| std::env::var(v).ok();
    let Some(commands) = cfg.raw.commands.as_ref().filter(|c| c.enabled) else {
        eprintln!(
            "gateway write: {} has no [commands] section turned on; writes travel as signed commands (docs/commands.md)",
            site.config_file.display()
        );
        return super::EXIT_CONFIG;
    };
    let Some(mqtt) = cfg.raw.mqtt.as_ref().filter(|m| m.enabled) else {
        eprintln!(
            "gateway write: {} has no [mqtt] broker; writes travel over MQTT",
            site.config_file.display()
        );
        return super::EXIT_CONFIG;
    };
    let secret = match cmdin::read_secret(commands, &base, &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway write: {e}");
            return super::EXIT_CONFIG;
        }
    };
    let password = match mqtt.password.read(&base, &env) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gateway write: [mqtt] password: {e}");
            return super::EXIT_CONFIG;
        }
    };
    let id = nonce();
    let body = serde_json::json!({
        "op": "write",
        "id": id,
        "ts": now_ms(),
        "by": a.by,
        "site": cfg.site,
        "gateway": cfg.gateway,
        "device": a.device,
        "point": a.point,
        "value": value.to_json(),
    })
    .to_string();
    let payload = cmdin::sign(secret.expose(), &body);
    let topics = crate::wire::Topics::new(&mqtt.prefix, &cfg.site, &cfg.gateway);
    let reply_topic = topics.reply();
    let topic = reply_topic.replace("/cmd/reply", "/cmd/write");
    let key = secret.expose().to_owned();
    let (site_id, gw_id) = (cfg.site.clone(), cfg.gateway.clone());
    let want = id.clone();
    let accept = move |p: &[u8]| {
        open_reply(&key, p).is_ok_and(|r| {
            r.id.as_deref() == Some(want.as_str())
                && r.op == "write"
                && r.site == site_id
                && r.gateway == gw_id
        })
    };
    let client_id = format!("{}-{}-write-{}", cfg.site, cfg.gateway, &id[..8]);
    let wait = a
        .wait
        .get()
        .max(Duration::from_secs(1))
        .min(DEFAULT_WAIT * 4);
    let got = crate::north::mqtt::request(
        mqtt,
        password.as_ref(),
        &base,
        &client_id,
        &topic,
        payload,
        &reply_topic,
        wait,
        &accept,
    )
    .await;
    let reply = match got.map(|p| open_reply(secret.expose(), &p)) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("gateway write: {e}");
            return super::EXIT_UNAVAILABLE;
        }
        Err(e) => {
            eprintln!("gateway write: {e}");
            return super::EXIT_UNAVAILABLE;
        }
    };
    if reply.ok {
        println!("{}", reply.text);
        0
    } else {
        eprintln!("gateway write: {}", reply.detail);
        EXIT_REFUSED
    }
}

/// A fresh command id: 16 characters of `[A-Za-z0-9]`.
fn nonce() -> String {
    use rand::Rng as _;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

/// `--since`: a duration back from `now_ms` or a local date/time in `tz`.
fn parse_since(s: &str, tz: chrono_tz::Tz, now_ms: UnixMs) -> Result<UnixMs, String> {
    if let Ok(d) = s.parse::<HumanDuration>() {
        let back = i64::try_from(d.get().as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_sub(back));
    }
    let naive = chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M")
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .map_err(|_| {
            format!(
                "--since {s:?}: give a duration (\"24h\", \"7d\") or a local date or time (\"2026-12-01\", \"2026-12-01 08:00\")"
            )
        })?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| format!("--since {s:?} does not exist in the site's time zone"))
}

/// The audit as a table; values as JSON text, exactly as stored.
pub fn log_text(tz: chrono_tz::Tz, rows: &[WriteRow]) -> String {
    if rows.is_empty() {
        return "no writes recorded\n".to_owned();
    }
    let v = |x: &Option<serde_json::Value>| x.as_ref().map_or("-".to_owned(), ToString::to_string);
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                local_time(tz, r.ts_ms),
                r.by.clone(),
                r.device.clone(),
                r.point.clone(),
                v(&r.old),
                r.requested.to_string(),
                v(&r.read_back),
                r.result.clone(),
                r.detail.clone(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "when",
            "by",
            "device",
            "point",
            "old",
            "new",
            "read back",
            "result",
            "detail",
        ],
        &body,
    );
    let _ = writeln!(
        out,
        "{} write{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    out
}

/// Runs `gateway writes …`.
pub fn writes(a: WritesArgs) -> u8 {
    match a.command {
        WritesCommand::Log {
            site,
            device,
            since,
            json,
        } => {
            let site = match load_site(&site) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let since_ms = match since.as_deref().map(|s| parse_since(s, site.tz, now_ms())) {
                None => None,
                Some(Ok(ms)) => Some(ms),
                Some(Err(e)) => {
                    eprintln!("gateway writes log: {e}");
                    return super::EXIT_CONFIG;
                }
            };
            let store = match open_store(&site) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let rows = match store.write_log(&WriteFilter {
                device,
                since_ms,
                limit: 0,
            }) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("gateway writes log: {e}");
                    return EXIT_REFUSED;
                }
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".to_owned())
                );
            } else {
                print!("{}", log_text(site.tz, &rows));
            }
            0
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_local_date() {
        let tz: chrono_tz::Tz = "Asia/Shanghai".parse().unwrap();
        let now = 1_796_126_700_000;
        assert_eq!(parse_since("1h", tz, now).unwrap(), now - 3_600_000);
        // 2026-12-01 00:00 in Shanghai is 2026-11-30 16:00 UTC.
        assert_eq!(
            parse_since("2026-12-01", tz, now).unwrap(),
            1_796_054_400_000
        );
        assert_eq!(
            parse_since("2026-12-01 08:00", tz, now).unwrap(),
            1_796_083_200_000
        );
        assert!(parse_since("yesterday", tz, now).is_err());
    }

    #[test]
    fn values_parse_as_numbers_or_booleans() {
        assert_eq!(WriteValue::parse("on"), Some(WriteValue::Bool(true)));
        assert_eq!(WriteValue::parse("false"), Some(WriteValue::Bool(false)));
        assert_eq!(WriteValue::parse("21.5"), Some(WriteValue::Float(21.5)));
        assert_eq!(WriteValue::parse("-3"), Some(WriteValue::Int(-3)));
        assert_eq!(WriteValue::parse("nan"), None);
        assert_eq!(WriteValue::parse("\"x\""), None);
    }
}
