//! `gateway oncall` and `gateway alerts log` (issue #6): who is on call now
//! and for the next days, and what was sent to whom, when, with what outcome.

use gateway_core::oncall::{Roster, Source};
use gateway_core::state::UnixMs;
use serde::Serialize;

use super::site::SiteArgs;
use super::tickets::{json_text, load_site, local_time, now_ms, open_store, table};

/// Arguments of `gateway oncall`.
#[derive(Debug, clap::Args)]
pub struct OncallArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Show the rotation from this local time (`"2026-12-24 09:00"`) instead of now.
    #[arg(long, value_name = "LOCAL_TIME")]
    pub at: Option<String>,
    /// How many days ahead to list. Default 14.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `gateway alerts`.
#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AlertsCommand,
}

/// `gateway alerts …`.
#[derive(Debug, clap::Subcommand)]
pub enum AlertsCommand {
    /// What was sent to whom, when, and the outcome (newest first), and each channel's health.
    Log {
        #[command(flatten)]
        site: SiteArgs,
        /// Only this ticket's alerts.
        #[arg(long)]
        ticket: Option<u64>,
        /// At most this many lines. Default 50.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Send a test message on each channel (or one) now, to whoever is on
    /// duty in tier 1, and say whether the channel accepted it. Nothing is
    /// recorded; the `mqtt` channel needs `gateway run` and is skipped.
    Test {
        #[command(flatten)]
        site: SiteArgs,
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
    },
}

/// One shift in the listing.
#[derive(Clone, Debug, Serialize)]
pub struct ShiftRow {
    /// Tier, 1-based.
    pub tier: usize,
    /// Tier name.
    pub tier_name: String,
    /// Start (Unix ms).
    pub from_ms: UnixMs,
    /// End (Unix ms).
    pub to_ms: UnixMs,
    /// Person id (`null`: nobody — a gap).
    pub person: Option<String>,
    /// Person's name.
    pub name: Option<String>,
    /// `rotation` or `override: <note>`.
    pub source: String,
}

/// The shifts of every tier from `from_ms` for `days` days.
pub fn shifts(
    roster: &Roster,
    names: &dyn Fn(&str) -> Option<String>,
    from_ms: UnixMs,
    days: u32,
) -> Vec<ShiftRow> {
    let to = from_ms + i64::from(days) * 24 * 3600 * 1000;
    let mut out = Vec::new();
    for (i, t) in roster.tiers().iter().enumerate() {
        for s in roster.shifts(i, from_ms, to) {
            out.push(ShiftRow {
                tier: i + 1,
                tier_name: t.name.clone(),
                from_ms: s.from_ms,
                to_ms: s.to_ms,
                name: s.duty.as_ref().and_then(|d| names(&d.person)),
                person: s.duty.as_ref().map(|d| d.person.clone()),
                source: match s.duty.map(|d| d.source) {
                    Some(Source::Rotation) => "rotation".to_owned(),
                    Some(Source::Override(n)) if n.is_empty() => "override".to_owned(),
                    Some(Source::Override(n)) => format!("override: {n}"),
                    None => "GAP".to_owned(),
                },
            });
        }
    }
    out
}

/// Runs `gateway oncall`; returns the exit code.
pub fn oncall(args: OncallArgs) -> u8 {
    let site = match load_site(&args.site) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(a) = site.config.raw.alerts.clone() else {
        eprintln!(
            "{}: no [alerts] section: nobody is on call",
            site.config_file.display()
        );
        return super::EXIT_CONFIG;
    };
    let roster = match Roster::from_config(&a, site.tz) {
        Ok(r) => r,
        Err(errs) => {
            super::print_config_errors(&site.config_file, &errs);
            return super::EXIT_CONFIG;
        }
    };
    let from = match &args.at {
        Some(t) => match gateway_core::maintenance::parse_local(t, site.tz) {
            Ok(ms) => ms,
            Err(e) => {
                eprintln!("gateway oncall: --at {t:?} {e}");
                return super::EXIT_CONFIG;
            }
        },
        None => now_ms(),
    };
    let names = |id: &str| a.person(id).map(|p| p.name.clone());
    let rows = shifts(&roster, &names, from, args.days.clamp(1, 366));
    if args.json {
        print!("{}", json_text(&rows));
        return 0;
    }
    println!("on call at {}:", local_time(site.tz, from));
    for (i, t) in roster.tiers().iter().enumerate() {
        let who = roster
            .on_call(i, from)
            .map(|d| {
                let name = names(&d.person).unwrap_or_else(|| d.person.clone());
                match d.source {
                    Source::Rotation => name,
                    Source::Override(n) => format!("{name} (override {n})"),
                }
            })
            .unwrap_or_else(|| "NOBODY (gap)".to_owned());
        println!("  tier {} {}: {who}", i + 1, t.name);
    }
    println!("\nnext {} days:", args.days);
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                format!("{} {}", r.tier, r.tier_name),
                local_time(site.tz, r.from_ms),
                local_time(site.tz, r.to_ms),
                r.name.clone().unwrap_or_else(|| "-".to_owned()),
                r.source.clone(),
            ]
        })
        .collect();
    print!("{}", table(&["TIER", "FROM", "TO", "WHO", "WHY"], &lines));
    0
}

/// One line of the log (JSON).
#[derive(Clone, Debug, Serialize)]
pub struct LogRow {
    /// Row id.
    pub id: i64,
    /// When recorded.
    pub created_ms: UnixMs,
    /// page, escalation, acknowledged, resolved, digest.
    pub kind: String,
    /// Ticket.
    pub ticket: Option<u64>,
    /// Tier paged.
    pub tier: u8,
    /// Channel.
    pub channel: String,
    /// To whom (names).
    pub to: Vec<String>,
    /// Title.
    pub title: String,
    /// pending, held, digested, sent, expired.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// When sent or given up.
    pub done_ms: Option<UnixMs>,
    /// Last failure.
    pub last_error: Option<String>,
    /// A fallback copy of a notice that failed on this channel.
    pub via: Option<String>,
}

/// Runs `gateway alerts …`; returns the exit code.
pub async fn alerts(args: AlertsArgs) -> u8 {
    let (site_args, ticket, limit, json) = match args.command {
        AlertsCommand::Log {
            site,
            ticket,
            limit,
            json,
        } => (site, ticket, limit, json),
        AlertsCommand::Test { site, channel } => return test(&site, channel.as_deref()).await,
    };
    let site = match load_site(&site_args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let store = match open_store(&site) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (rows, channels) = match (
        store.alert_log(ticket, None, limit.max(1)),
        store.alert_channels(),
    ) {
        (Ok(r), Ok(c)) => (r, c),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("gateway alerts log: {e}");
            return super::EXIT_UNAVAILABLE;
        }
    };
    let rows: Vec<LogRow> = rows
        .into_iter()
        .map(|r| LogRow {
            id: r.id,
            created_ms: r.created_ms,
            kind: r.notice.kind.as_str().to_owned(),
            ticket: r.notice.ticket,
            tier: r.notice.tier,
            channel: r.channel,
            to: r.notice.message.to.iter().map(|p| p.name.clone()).collect(),
            title: r.notice.message.title,
            state: r.state.as_str().to_owned(),
            attempts: r.attempts,
            done_ms: r.done_ms,
            last_error: r.last_error,
            via: r.via,
        })
        .collect();
    if json {
        print!(
            "{}",
            json_text(&serde_json::json!({"alerts": rows, "channels": channels}))
        );
        return 0;
    }
    if rows.is_empty() {
        println!("no alerts recorded");
        return 0;
    }
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                local_time(site.tz, r.created_ms),
                r.ticket.map_or_else(|| "-".to_owned(), |t| format!("#{t}")),
                if r.tier > 0 {
                    format!("{} t{}", r.kind, r.tier)
                } else {
                    r.kind.clone()
                },
                match &r.via {
                    Some(v) => format!("{} (for {v})", r.channel),
                    None => r.channel.clone(),
                },
                if r.to.is_empty() {
                    "-".to_owned()
                } else {
                    r.to.join(", ")
                },
                match (r.state.as_str(), r.done_ms) {
                    ("sent", Some(d)) => format!("sent {}", local_time(site.tz, d)),
                    (s, _) => s.to_owned(),
                },
                r.attempts.to_string(),
                r.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "TIME",
                "TICKET",
                "WHAT",
                "CHANNEL",
                "TO",
                "OUTCOME",
                "TRIES",
                "LAST ERROR"
            ],
            &lines
        )
    );
    let failing: Vec<String> = channels
        .iter()
        .filter(|c| c.failing > 0)
        .map(|c| {
            format!(
                "  {}: {} failing, last error: {}",
                c.channel,
                c.failing,
                c.last_error.as_deref().unwrap_or("-")
            )
        })
        .collect();
    if !failing.is_empty() {
        println!("\nchannels failing now:\n{}", failing.join("\n"));
    }
    0
}

/// `gateway alerts test`: one message per channel, sent directly.
async fn test(args: &SiteArgs, only: Option<&str>) -> u8 {
    use gateway_core::alerts::{Message, Notice, NoticeKind, Recipient};
    use gateway_core::config::{ChannelKind, Language};
    let site = match load_site(args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let config = site.config_file.as_path();
    let Some(a) = site.config.raw.alerts.clone() else {
        eprintln!("{}: no [alerts] section", config.display());
        return super::EXIT_CONFIG;
    };
    if let Some(id) = only
        && a.channel(id).is_none()
    {
        eprintln!("gateway alerts test: no channel {id:?} in [alerts]");
        return super::EXIT_CONFIG;
    }
    let base = config
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."))
        .to_path_buf();
    let (channels, _mqtt) =
        match crate::alerts::build_channels(&a, &site.config, &base, &|v| std::env::var(v).ok()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("gateway alerts test: {e}");
                return super::EXIT_CONFIG;
            }
        };
    let now = now_ms();
    let to: Vec<Recipient> = Roster::from_config(&a, site.tz)
        .ok()
        .and_then(|r| r.on_call(0, now))
        .and_then(|d| a.person(&d.person))
        .map(|p| Recipient {
            id: p.id.clone(),
            name: p.name.clone(),
            mobile: p.mobile.clone(),
            email: p.email.clone(),
        })
        .into_iter()
        .collect();
    let zh = a.language == Language::Zh;
    let mut failed = 0;
    for c in a.channels.iter().filter(|c| only.is_none_or(|o| o == c.id)) {
        if c.kind == ChannelKind::Mqtt {
            println!(
                "{}: skipped (the mqtt channel publishes through `gateway run`)",
                c.id
            );
            continue;
        }
        let Some(ch) = channels.get(&c.id) else {
            continue;
        };
        let n = Notice {
            key: format!("test/{}/{now}", c.id),
            ticket: None,
            kind: NoticeKind::Page,
            tier: 0,
            channel: c.id.clone(),
            message: Message {
                title: if zh {
                    format!(
                        "【测试】{} {} 告警通道 {}",
                        site.config.site, site.config.gateway, c.id
                    )
                } else {
                    format!(
                        "[Test] {} {} alert channel {}",
                        site.config.site, site.config.gateway, c.id
                    )
                },
                lines: vec![if zh {
                    format!("这是一条测试消息，时间：{}", local_time(site.tz, now))
                } else {
                    format!("This is a test message, sent {}", local_time(site.tz, now))
                }],
                link: None,
                link_text: String::new(),
                to: to.clone(),
                urgent: false,
            },
            at_ms: now,
            held: false,
            covers: Vec::new(),
        };
        match ch.send(&n, now).await {
            Ok(()) => println!("{}: accepted", c.id),
            Err(e) => {
                failed += 1;
                println!("{}: FAILED: {e}", c.id);
            }
        }
    }
    if failed > 0 {
        super::EXIT_UNAVAILABLE
    } else {
        0
    }
}
