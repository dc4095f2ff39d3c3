//! The `[alerts]` section (issue #6): channels, people, the on-call
//! rotation and the paging policy. See `docs/alerts.md` and
//! `docs/config.md` (`## [alerts]`).
//!
//! Shape only here, plus [`AlertsConfig::check`], which collects every
//! problem with its path (`alerts.channel[2].url`, `alerts.critical.channels[1]`)
//! including coverage gaps of the rotation (see [`crate::oncall`]).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::north::SecretSource;
use super::tickets::ClockTime;
use crate::HumanDuration;

/// Language of the messages people receive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// Simplified Chinese (default).
    #[default]
    Zh,
    /// English.
    En,
}

/// What a channel is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A generic HTTP(S) endpoint receiving a JSON body, optionally signed
    /// with HMAC-SHA256 in a header.
    Webhook,
    /// WeCom group robot (企业微信群机器人), markdown message.
    Wecom,
    /// DingTalk custom robot (钉钉自定义机器人), markdown, optional signature.
    Dingtalk,
    /// Feishu / Lark custom bot (飞书自定义机器人), optional signature.
    Feishu,
    /// E-mail over SMTP to each paged person's address.
    Email,
    /// The gateway's MQTT topic `…/alert` (through the MQTT outbox).
    Mqtt,
}

impl ChannelKind {
    /// The name used in config, logs and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Wecom => "wecom",
            ChannelKind::Dingtalk => "dingtalk",
            ChannelKind::Feishu => "feishu",
            ChannelKind::Email => "email",
            ChannelKind::Mqtt => "mqtt",
        }
    }

    /// Channels that post to a URL.
    pub const fn is_http(self) -> bool {
        matches!(
            self,
            ChannelKind::Webhook | ChannelKind::Wecom | ChannelKind::Dingtalk | ChannelKind::Feishu
        )
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refused when the
    /// server does not offer it. Default.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only allowed to a loopback host (a local relay).
    None,
}

/// One way of reaching people.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Unique id, `[a-z0-9_-]`, used in the policy and in `fallback`.
    pub id: String,
    /// What it is.
    pub kind: ChannelKind,
    /// HTTP(S) URL of the webhook or robot (webhook, wecom, dingtalk, feishu).
    #[serde(default)]
    pub url: Option<String>,
    /// Signing secret: HMAC key of a webhook, the `SEC…` secret of a
    /// DingTalk robot, the signature secret of a Feishu bot. Optional.
    #[serde(default)]
    pub secret: SecretSource,
    /// Header carrying the webhook's HMAC-SHA256 signature (hex).
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// Messages at most this many per minute on this channel (DingTalk
    /// robots refuse more than 20). Default 20.
    #[serde(default = "default_rate")]
    pub max_per_minute: u32,
    /// Another channel that carries a message this one could not deliver
    /// after `[alerts] fallback_after` attempts.
    #[serde(default)]
    pub fallback: Option<String>,
    /// Time allowed for one delivery attempt. Default `"10s"`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// SMTP server host (email).
    #[serde(default)]
    pub host: Option<String>,
    /// SMTP port (email). Default: 587 with STARTTLS, 465 with TLS, 25 plain.
    #[serde(default)]
    pub port: Option<u16>,
    /// SMTP security (email): `starttls` (default), `tls`, or `none` (loopback only).
    #[serde(default)]
    pub tls: SmtpTls,
    /// SMTP user name (email); with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP password (email), from a file or an environment variable.
    #[serde(default)]
    pub password: SecretSource,
    /// Sender address (email), e.g. `"BMS 网关 <bms@example.com>"`.
    #[serde(default)]
    pub from: Option<String>,
    /// A CA certificate (PEM) trusted for the SMTP server besides the
    /// system's (a site's own mail relay). Relative to the config file.
    #[serde(default)]
    pub ca_file: Option<String>,
}

fn default_signature_header() -> String {
    "X-BMS-Signature".to_owned()
}
const fn default_rate() -> u32 {
    20
}
const fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// A person who can be paged.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    /// Unique id, `[a-z0-9_-]`, used in tiers, overrides and `away`.
    pub id: String,
    /// Name shown in messages (`张工`).
    pub name: String,
    /// E-mail address (needed by e-mail channels).
    #[serde(default)]
    pub email: Option<String>,
    /// Mobile number, used to @-mention the person in WeCom and DingTalk groups.
    #[serde(default)]
    pub mobile: Option<String>,
}

/// How often the rotation hands over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Every {
    /// Each person is on duty for a week (default).
    #[default]
    Week,
    /// Each person is on duty for a day.
    Day,
}

/// One tier of the escalation chain, with the people who take turns in it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Name of the tier in messages (`值班工程师`, `主管`, `经理`).
    pub name: String,
    /// Person ids taking turns, in order: the first is on duty from the
    /// rotation's `start`, the next from the following handover…
    pub people: Vec<String>,
}

/// The rotation: who is on duty in each tier, when.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// `week` (default) or `day`.
    #[serde(default)]
    pub every: Every,
    /// Local time of the handover. Default `"09:00"`.
    #[serde(default = "default_handover")]
    pub handover: ClockTime,
    /// Local date (`"2026-11-02"`) of the first handover: each tier's first
    /// person is on duty from `start` at `handover`. Times before it count
    /// backwards in the same order.
    pub start: String,
    /// Tier 1 (engineer on duty), tier 2 (supervisor), tier 3 (manager)…
    #[serde(default, rename = "tier")]
    pub tiers: Vec<TierConfig>,
}

fn default_handover() -> ClockTime {
    ClockTime(chrono::NaiveTime::MIN + chrono::TimeDelta::hours(9))
}

/// A dated override: someone else is on duty in a tier for a while
/// (holiday cover, a swap).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    /// Tier number, 1 for the engineer on duty.
    pub tier: u8,
    /// Who is on duty instead.
    pub person: String,
    /// Start, local time `"2026-12-24 09:00"`.
    pub from: String,
    /// End (exclusive), local time.
    pub to: String,
    /// Free text (why).
    #[serde(default)]
    pub note: String,
}

/// A person away (leave, holiday): whoever the rotation would put on duty
/// must be covered by an override meanwhile.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwayConfig {
    /// Person id.
    pub person: String,
    /// Start, local time `"2026-12-24 09:00"`.
    pub from: String,
    /// End (exclusive), local time.
    pub to: String,
    /// Free text.
    #[serde(default)]
    pub note: String,
}

/// Outside working hours, what happens to a new fault's page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutsideHours {
    /// Page at once, day or night.
    Page,
    /// Wait for the start of the next working period.
    Defer,
}

/// How tickets of one severity are paged.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityPolicy {
    /// Channel ids a page goes out on (every one of them).
    #[serde(default)]
    pub channels: Vec<String>,
    /// Not acknowledged within this long after a tier was paged → the next
    /// tier is paged, until the last tier.
    pub ack_within: HumanDuration,
    /// `page` or `defer` outside working hours.
    pub outside_hours: OutsideHours,
}

fn default_critical() -> SeverityPolicy {
    SeverityPolicy {
        channels: Vec::new(),
        ack_within: HumanDuration::from_secs(10 * 60),
        outside_hours: OutsideHours::Page,
    }
}
fn default_ordinary() -> SeverityPolicy {
    SeverityPolicy {
        channels: Vec::new(),
        ack_within: HumanDuration::from_secs(60 * 60),
        outside_hours: OutsideHours::Defer,
    }
}

/// On-call alerts.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Set false to keep the section but page nobody. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `zh` (default) or `en`.
    #[serde(default)]
    pub language: Language,
    /// Link to a ticket's page on the dashboard, with `{site}`, `{gateway}`
    /// and `{id}` replaced, e.g. `"http://bms.local:8080/tickets/{site}/{gateway}/{id}"`.
    #[serde(default)]
    pub dashboard_url: Option<String>,
    /// Working hours, local: days and times as `"Mon,Tue,Wed,Thu,Fri 08:00-18:00"` (default).
    #[serde(default = "default_working_hours")]
    pub working_hours: String,
    /// Critical tickets (fire, leak). Default: every 10 min, page at night.
    #[serde(default = "default_critical")]
    pub critical: SeverityPolicy,
    /// Ordinary faults. Default: every 60 min, deferred to working hours.
    #[serde(default = "default_ordinary")]
    pub ordinary: SeverityPolicy,
    /// Send a short follow-up when a paged ticket is acknowledged or resolved. Default true.
    #[serde(default = "yes")]
    pub follow_ups: bool,
    /// A new ticket for the same device and kind within this long of the
    /// previous page is not paged again. Default `"10m"`.
    #[serde(default = "default_dedupe")]
    pub dedupe_window: HumanDuration,
    /// Per channel: after this many messages within a minute, further ones
    /// are gathered into one digest. Default 5.
    #[serde(default = "default_digest_after")]
    pub digest_after: u32,
    /// How long a digest gathers before it is sent. Default `"30s"`.
    #[serde(default = "default_digest_delay")]
    pub digest_delay: HumanDuration,
    /// The daily shift handover digest on or off. Default on.
    #[serde(default = "yes")]
    pub handover: bool,
    /// When the handover digest is sent, `HH:MM` in the site's time zone.
    /// Default `"08:00"`.
    #[serde(default = "default_handover_at")]
    pub handover_at: String,
    /// The channels the handover digest goes on. Default: every channel
    /// of the critical and ordinary policies.
    #[serde(default)]
    pub handover_channels: Option<Vec<String>>,
    /// First retry after a failed delivery; doubles up to `retry_max`. Default `"5s"`.
    #[serde(default = "default_retry_min")]
    pub retry_min: HumanDuration,
    /// Longest wait between retries. Default `"5m"`.
    #[serde(default = "default_retry_max")]
    pub retry_max: HumanDuration,
    /// A message not delivered within this long is given up (`expired`). Default `"24h"`.
    #[serde(default = "default_expire")]
    pub expire_after: HumanDuration,
    /// After this many failed attempts on a channel, a copy goes to its
    /// `fallback` channel (if any). Default 3.
    #[serde(default = "default_fallback_after")]
    pub fallback_after: u32,
    /// Notices sent, expired or digested longer ago than this are deleted
    /// from the log (never a pending or held one, nor one of a ticket not
    /// closed). At least a day. Default `"180d"`.
    #[serde(default = "default_keep")]
    pub keep: HumanDuration,
    /// Every channel.
    #[serde(default, rename = "channel")]
    pub channels: Vec<ChannelConfig>,
    /// Every person.
    #[serde(default, rename = "person")]
    pub people: Vec<PersonConfig>,
    /// The on-call rotation.
    pub rotation: RotationConfig,
    /// Dated overrides.
    #[serde(default, rename = "override")]
    pub overrides: Vec<OverrideConfig>,
    /// People away.
    #[serde(default)]
    pub away: Vec<AwayConfig>,
}

const fn yes() -> bool {
    true
}
fn default_working_hours() -> String {
    "Mon,Tue,Wed,Thu,Fri 08:00-18:00".to_owned()
}
const fn default_dedupe() -> HumanDuration {
    HumanDuration::from_secs(600)
}
const fn default_digest_after() -> u32 {
    5
}
const fn default_digest_delay() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_handover_at() -> String {
    "08:00".to_owned()
}
const fn default_retry_min() -> HumanDuration {
    HumanDuration::from_secs(5)
}
const fn default_retry_max() -> HumanDuration {
    HumanDuration::from_secs(300)
}
const fn default_expire() -> HumanDuration {
    HumanDuration::from_secs(24 * 3600)
}
const fn default_fallback_after() -> u32 {
    3
}
/// 180 days.
const fn default_keep() -> HumanDuration {
    HumanDuration::from_secs(180 * 24 * 3600)
}
/// The shortest `keep`: a day.
const MIN_KEEP: Duration = Duration::from_secs(24 * 3600);

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Whether `host` is a loopback name or address.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `http://` or `https://` with a host: `Ok(())`, else what is wrong.
pub fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            format!(
                "{url:?} is not an http(s) URL; write the robot's or endpoint's address, e.g. \"https://oapi.dingtalk.com/robot/send?access_token=…\""
            )
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

impl AlertsConfig {
    /// The channels the handover digest goes on (see `handover_channels`),
    /// each once, in order.
    pub fn handover_channel_ids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let all = match &self.handover_channels {
            Some(list) => list.clone(),
            None => self
                .critical
                .channels
                .iter()
                .chain(&self.ordinary.channels)
                .cloned()
                .collect(),
        };
        for c in all {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    /// The channel with this id.
    pub fn channel(&self, id: &str) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// The person with this id.
    pub fn person(&self, id: &str) -> Option<&PersonConfig> {
        self.people.iter().find(|p| p.id == id)
    }

    /// Every problem in the section; `timezone` is the site's zone (an
    /// invalid one is reported elsewhere; UTC is assumed here then).
    /// `mqtt` says whether the file has an `[mqtt]` section (an `mqtt`
    /// channel publishes through it).
    pub fn check(&self, timezone: &str, mqtt: bool) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut e = |p: String, m: String| errs.push(ConfigError::new(p, m));
        // The handover digest.
        if let Err(m) = crate::alerts::handover::parse_at(&self.handover_at) {
            e("alerts.handover_at".to_owned(), m);
        }
        for (i, id) in self.handover_channels.iter().flatten().enumerate() {
            if !self.channels.iter().any(|c| &c.id == id) {
                e(
                    format!("alerts.handover_channels[{i}]"),
                    format!("no channel {id:?} in [[alerts.channel]]"),
                );
            }
        }
        // Channels.
        for (i, c) in self.channels.iter().enumerate() {
            let path = format!("alerts.channel[{i}]");
            if !is_id(&c.id) {
                e(
                    format!("{path}.id"),
                    format!("{:?} is not an id; use a-z, 0-9, - and _", c.id),
                );
            }
            if self.channels[..i].iter().any(|o| o.id == c.id) {
                e(
                    format!("{path}.id"),
                    format!("channel {:?} is defined twice", c.id),
                );
            }
            if c.kind.is_http() {
                match &c.url {
                    None => e(
                        format!("{path}.url"),
                        format!("a {} channel needs url", c.kind),
                    ),
                    Some(u) => {
                        if let Err(m) = check_http_url(u) {
                            e(format!("{path}.url"), m);
                        }
                    }
                }
            } else if c.url.is_some() {
                e(
                    format!("{path}.url"),
                    format!("a {} channel has no url; remove it", c.kind),
                );
            }
            if c.kind == ChannelKind::Email {
                match c.host.as_deref() {
                    None | Some("") => e(
                        format!("{path}.host"),
                        "an email channel needs the SMTP server's host".to_owned(),
                    ),
                    Some(h) => {
                        if c.tls == SmtpTls::None && !is_loopback_host(h) {
                            e(
                                format!("{path}.tls"),
                                format!(
                                    "\"none\" sends the password and mail in clear; it is only allowed to a loopback host, not {h:?}; use \"starttls\" or \"tls\""
                                ),
                            );
                        }
                    }
                }
                if c.from.as_deref().is_none_or(|f| !f.contains('@')) {
                    e(
                        format!("{path}.from"),
                        "an email channel needs a sender address, e.g. \"bms@example.com\""
                            .to_owned(),
                    );
                }
                if c.ca_file.is_some() && c.tls == SmtpTls::None {
                    e(
                        format!("{path}.ca_file"),
                        "is only used with tls = \"starttls\" or \"tls\"".to_owned(),
                    );
                }
                if c.username.is_some() != c.password.is_set() {
                    e(
                        format!("{path}.username"),
                        "give both username and password, or neither".to_owned(),
                    );
                }
            }
            if c.kind == ChannelKind::Mqtt {
                if !mqtt {
                    e(
                        format!("{path}.kind"),
                        "an mqtt channel publishes on the gateway's MQTT connection; add an [mqtt] section".to_owned(),
                    );
                }
                if self.channels[..i]
                    .iter()
                    .any(|o| o.kind == ChannelKind::Mqtt)
                {
                    e(
                        format!("{path}.kind"),
                        "only one mqtt channel is possible (there is one topic, …/alert)"
                            .to_owned(),
                    );
                }
            }
            if c.max_per_minute == 0 {
                e(
                    format!("{path}.max_per_minute"),
                    "is 0; give how many messages a minute the channel takes, e.g. 20".to_owned(),
                );
            }
            if c.timeout.get().is_zero() || c.timeout.get() > Duration::from_secs(120) {
                e(
                    format!("{path}.timeout"),
                    "must be between 1ms and 2m".to_owned(),
                );
            }
            if let Some(f) = &c.fallback {
                if f == &c.id {
                    e(
                        format!("{path}.fallback"),
                        "a channel cannot fall back to itself".to_owned(),
                    );
                } else if self.channel(f).is_none() {
                    e(
                        format!("{path}.fallback"),
                        format!("no channel {f:?} is defined in [[alerts.channel]]"),
                    );
                }
            }
            if c.signature_header.trim().is_empty() {
                e(
                    format!("{path}.signature_header"),
                    "is empty; give a header name".to_owned(),
                );
            }
        }
        // People.
        for (i, p) in self.people.iter().enumerate() {
            let path = format!("alerts.person[{i}]");
            if !is_id(&p.id) {
                e(
                    format!("{path}.id"),
                    format!("{:?} is not an id; use a-z, 0-9, - and _", p.id),
                );
            }
            if self.people[..i].iter().any(|o| o.id == p.id) {
                e(
                    format!("{path}.id"),
                    format!("person {:?} is defined twice", p.id),
                );
            }
            if p.email.as_deref().is_some_and(|m| !m.contains('@')) {
                e(
                    format!("{path}.email"),
                    format!(
                        "{:?} is not an e-mail address",
                        p.email.as_deref().unwrap_or("")
                    ),
                );
            }
        }
        // Policy.
        for (name, pol) in [("critical", &self.critical), ("ordinary", &self.ordinary)] {
            for (j, ch) in pol.channels.iter().enumerate() {
                if self.channel(ch).is_none() {
                    let known: Vec<&str> = self.channels.iter().map(|c| c.id.as_str()).collect();
                    e(
                        format!("alerts.{name}.channels[{j}]"),
                        format!(
                            "unknown channel {ch:?}; define it as [[alerts.channel]] (defined: {})",
                            if known.is_empty() {
                                "none".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
            }
            if pol.ack_within.get() < Duration::from_secs(60) {
                e(
                    format!("alerts.{name}.ack_within"),
                    "is shorter than a minute; give the time allowed to acknowledge, e.g. \"10m\""
                        .to_owned(),
                );
            }
        }
        if self.enabled && self.critical.channels.is_empty() && self.ordinary.channels.is_empty() {
            e(
                "alerts".to_owned(),
                "neither [alerts.critical] nor [alerts.ordinary] lists channels: nobody would be paged".to_owned(),
            );
        }
        if let Err(m) = crate::maintenance::parse_weekly(&self.working_hours) {
            e("alerts.working_hours".to_owned(), m);
        }
        if let Some(u) = &self.dashboard_url
            && let Err(m) = check_http_url(u)
        {
            e("alerts.dashboard_url".to_owned(), m);
        }
        if self.digest_after == 0 {
            e(
                "alerts.digest_after".to_owned(),
                "is 0; give how many single messages a minute come before a digest, e.g. 5"
                    .to_owned(),
            );
        }
        if self.retry_min.get().is_zero() || self.retry_min > self.retry_max {
            e(
                "alerts.retry_min".to_owned(),
                "must be above 0 and at most retry_max".to_owned(),
            );
        }
        if self.expire_after.get() < Duration::from_secs(60) {
            e(
                "alerts.expire_after".to_owned(),
                "is shorter than a minute".to_owned(),
            );
        }
        if self.fallback_after == 0 {
            e(
                "alerts.fallback_after".to_owned(),
                "is 0; give a number of attempts, e.g. 3".to_owned(),
            );
        }
        if self.keep.get() < MIN_KEEP {
            e(
                "alerts.keep".to_owned(),
                format!(
                    "\"{}\" is shorter than a day; the alert log must keep at least \"1d\" (default \"180d\")",
                    self.keep
                ),
            );
        }
        // Rotation and coverage.
        let tz: chrono_tz::Tz = timezone.parse().unwrap_or(chrono_tz::UTC);
        errs.extend(crate::oncall::check_rotation(self, tz));
        errs
    }
}
