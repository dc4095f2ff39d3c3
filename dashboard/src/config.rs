//! The dashboard's configuration file (TOML), documented setting by setting
//! in `docs/dashboard.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use gateway_core::HumanDuration;
use gateway_core::config::{MAX_KEEP_MONTHS, MIN_KEEP_MONTHS, SecretSource};
use serde::Deserialize;

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the gateways publish.
    #[serde(default)]
    pub mqtt: MqttSection,
    /// The web server.
    #[serde(default)]
    pub http: HttpSection,
    /// Where the dashboard keeps its own files. Default `"data"`, relative to
    /// the configuration file.
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// A device whose gateway said nothing about it (telemetry or state) for
    /// this long is shown as stale. Default `"150s"` (gateways publish every
    /// state each minute).
    #[serde(default = "default_stale_after")]
    pub stale_after: HumanDuration,
    /// Time zone of the sites, for month-to-date figures. Default `Asia/Shanghai`.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Language of the pages when the browser has not chosen: `zh-CN` or `en`.
    #[serde(default = "default_language")]
    pub language: String,
    /// Seconds each site stays on the wall page when several are shown.
    #[serde(default = "default_rotate")]
    pub rotate_every: HumanDuration,
    /// The history kept for the device page's charts.
    #[serde(default)]
    pub history: HistorySection,
    /// Limits on password guessing at `/api/login`.
    #[serde(default)]
    pub login: LoginSection,
    /// How long the central ledger (`ledger.db`, the monthly reports) keeps
    /// transitions and closed tickets.
    #[serde(default)]
    pub ledger: LedgerSection,
    /// People who may log in to acknowledge and resolve tickets.
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
    /// The command key of each gateway the dashboard may send commands to.
    #[serde(default, rename = "gateway")]
    pub gateways: Vec<GatewayKey>,
    /// Monthly reports: each site's name, time zone and class targets
    /// (issue 7; `[[report_site]]` in docs/dashboard.md).
    #[serde(default, rename = "report_site")]
    pub report_sites: Vec<crate::reports::ReportSite>,
    /// Caps on what the MQTT messages may make the dashboard keep.
    #[serde(default)]
    pub limits: LimitsSection,
}

/// `[limits]`: how much anyone who may publish under the prefix can make
/// the dashboard keep. A message beyond a cap is refused and counted
/// (`refused_by_cap` in `/api/health` and `/metrics`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Sites kept. Default `200`.
    #[serde(default = "default_max_sites")]
    pub max_sites: usize,
    /// Gateways kept per site. Default `16`.
    #[serde(default = "default_max_gateways")]
    pub max_gateways_per_site: usize,
    /// Devices kept per gateway. Default `2000`.
    #[serde(default = "default_max_devices")]
    pub max_devices_per_gateway: usize,
    /// Points kept per device. Default `500`.
    #[serde(default = "default_max_points")]
    pub max_points_per_device: usize,
    /// Tickets kept per gateway (open and recently closed). Default `1000`.
    #[serde(default = "default_max_tickets")]
    pub max_tickets_per_gateway: usize,
    /// Largest payload taken, in bytes. Default `262144` (256 KiB).
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_sites: default_max_sites(),
            max_gateways_per_site: default_max_gateways(),
            max_devices_per_gateway: default_max_devices(),
            max_points_per_device: default_max_points(),
            max_tickets_per_gateway: default_max_tickets(),
            max_payload_bytes: default_max_payload(),
        }
    }
}

const fn default_max_sites() -> usize {
    200
}
const fn default_max_gateways() -> usize {
    16
}
const fn default_max_devices() -> usize {
    2000
}
const fn default_max_points() -> usize {
    500
}
const fn default_max_tickets() -> usize {
    1000
}
const fn default_max_payload() -> usize {
    256 * 1024
}

impl Config {
    /// The sites the wall rotates through: the allowed sites (`[mqtt]
    /// sites`, then the sites of `[mqtt] gateways`), else the
    /// `[[report_site]]`s; empty: every site heard.
    pub fn rotation(&self) -> Vec<String> {
        let mut out: Vec<String> = if !self.mqtt.sites.is_empty() {
            self.mqtt.sites.clone()
        } else if !self.mqtt.gateways.is_empty() {
            self.mqtt
                .gateways
                .iter()
                .filter_map(|g| g.split_once('/').map(|(s, _)| s.to_owned()))
                .collect()
        } else {
            self.report_sites.iter().map(|r| r.site.clone()).collect()
        };
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|s| seen.insert(s.clone()));
        out
    }
}

/// `[mqtt]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// The broker, `mqtt://host:port` or `mqtts://host:port` (TLS, default
    /// port 8883). Default `mqtt://127.0.0.1:1883`, or the embedded broker
    /// when `embedded_listen` is set.
    #[serde(default)]
    pub url: Option<String>,
    /// Run an embedded broker (rumqttd) on this address, e.g.
    /// `127.0.0.1:18830`, and read from it. Default: none.
    #[serde(default)]
    pub embedded_listen: Option<String>,
    /// Topic prefix, as the gateways' `[mqtt] prefix`. Default `bms`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Only these sites (empty: every site seen). Messages of other sites
    /// are refused and counted (`not_allowed`).
    #[serde(default)]
    pub sites: Vec<String>,
    /// Only these gateways, as `"site/gateway"` (empty: every gateway of
    /// the allowed sites). Messages of other gateways are refused and
    /// counted (`not_allowed`).
    #[serde(default)]
    pub gateways: Vec<String>,
    /// MQTT client id. Default `bms-dashboard`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Broker user name (optional).
    #[serde(default)]
    pub username: Option<String>,
    /// Broker password (`{ file = … }` or `{ env = … }`).
    #[serde(default)]
    pub password: SecretSource,
    /// TLS (`mqtts://`): the CA certificate (PEM) that signed the broker's
    /// certificate, relative to this file. Without it the system's trusted
    /// roots are used.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Largest MQTT packet accepted from the broker, e.g. `"256KiB"`,
    /// 1KiB–256MiB. Announced to the broker as the MQTT 5 Maximum Packet
    /// Size: a compliant broker (Mosquitto 2) drops a bigger message for
    /// this client instead of sending it. Default `"1MiB"`.
    #[serde(default = "default_max_packet_size")]
    pub max_packet_size: String,
}

impl Default for MqttSection {
    fn default() -> Self {
        MqttSection {
            url: None,
            embedded_listen: None,
            prefix: default_prefix(),
            sites: Vec::new(),
            gateways: Vec::new(),
            client_id: default_client_id(),
            username: None,
            password: SecretSource::default(),
            ca_file: None,
            max_packet_size: default_max_packet_size(),
        }
    }
}

fn default_max_packet_size() -> String {
    gateway_core::config::DEFAULT_MAX_PACKET.to_owned()
}

/// `[http]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Listen address. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A token that opens the wall page and the read-only API without a
    /// login (`?kiosk=TOKEN`), `{ file = … }` or `{ env = … }`. Default: none;
    /// then the wall page is open to anyone who can reach the port.
    #[serde(default)]
    pub kiosk_token: SecretSource,
    /// Mark the session and kiosk cookies `Secure` (set when served behind
    /// HTTPS).
    #[serde(default)]
    pub secure_cookie: bool,
    /// How long the kiosk cookie set by `?kiosk=TOKEN` lasts. A wall in use
    /// gets a fresh one once half of it has passed; a screen unused this
    /// long must open `?kiosk=TOKEN` again. Default `"7d"`.
    #[serde(default = "default_kiosk_lifetime")]
    pub kiosk_cookie_lifetime: HumanDuration,
    /// A connection that has not sent a whole request head this long after
    /// it opened, or after its previous response, is closed. Default `"10s"`.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: HumanDuration,
    /// A connection on which nothing was read or written this long (a
    /// stalled upload, a client that stops reading) is closed. Longer than
    /// the event stream's 15 s keep-alive. Default `"60s"`.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Open connections at most; more are answered 503 and closed at once,
    /// and counted in `/api/health` (`http.refused`). Default `1024`.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The one origin allowed to show the pages in a frame, e.g.
    /// `"https://portal.example.com"`. Default: none (no page may be framed).
    #[serde(default)]
    pub frame_ancestor: Option<String>,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: default_listen(),
            kiosk_token: SecretSource::default(),
            secure_cookie: false,
            kiosk_cookie_lifetime: default_kiosk_lifetime(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            frame_ancestor: None,
        }
    }
}

/// `[login]`: limits on password guessing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSection {
    /// Attempts allowed per user name (configured or not) within `window`;
    /// a right password gives its attempt back. Default `5`.
    #[serde(default = "default_max_failures_per_user")]
    pub max_failures_per_user: u32,
    /// Attempts allowed per client address (IPv6: per /64) within `window`.
    /// Default `20`.
    #[serde(default = "default_max_failures_per_ip")]
    pub max_failures_per_ip: u32,
    /// The sliding window of both limits. Default `"15m"`.
    #[serde(default = "default_login_window")]
    pub window: HumanDuration,
    /// argon2 password checks running at once at most; each holds the
    /// hash's memory cost (19 MiB with `hash-password`'s parameters) while
    /// it runs. Default: the number of CPU cores (2 when unknown).
    #[serde(default)]
    pub max_concurrent_checks: Option<u32>,
    /// How long a login waits for a free check before it is answered 503
    /// with `Retry-After` (and not counted as a failure). Default `"2s"`.
    #[serde(default = "default_check_wait")]
    pub check_wait: HumanDuration,
    /// User names and client addresses remembered at most (each); when
    /// full, expired ones and then the least recently seen are forgotten.
    /// Default `10000`.
    #[serde(default = "default_max_tracked")]
    pub max_tracked: u32,
    /// Reverse proxies (addresses or blocks like `"10.0.0.0/8"`) whose
    /// `X-Forwarded-For` names the client. Default none: the TCP peer is
    /// the client, whatever the header says.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// How long a login lasts, used or not: a shift of the on-call
    /// engineer, who logs in once on the phone. The session cookie keeps
    /// it across closing the browser. Default `"12h"`; `"5m"` to `"7d"`.
    #[serde(default = "default_session_lifetime")]
    pub session_lifetime: HumanDuration,
}

impl Default for LoginSection {
    fn default() -> Self {
        LoginSection {
            max_failures_per_user: default_max_failures_per_user(),
            max_failures_per_ip: default_max_failures_per_ip(),
            window: default_login_window(),
            max_concurrent_checks: None,
            check_wait: default_check_wait(),
            max_tracked: default_max_tracked(),
            trusted_proxies: Vec::new(),
            session_lifetime: default_session_lifetime(),
        }
    }
}

const fn default_max_failures_per_user() -> u32 {
    5
}
const fn default_max_failures_per_ip() -> u32 {
    20
}
const fn default_login_window() -> HumanDuration {
    HumanDuration::from_secs(15 * 60)
}
const fn default_check_wait() -> HumanDuration {
    HumanDuration::from_secs(2)
}
const fn default_max_tracked() -> u32 {
    10_000
}
const fn default_session_lifetime() -> HumanDuration {
    HumanDuration::from_secs(crate::auth::DEFAULT_SESSION_LIFETIME.as_secs())
}

impl LoginSection {
    /// The checked policy; every problem is pushed to `errors`.
    fn policy(&self, errors: &mut Vec<String>) -> crate::auth::Policy {
        let mut check = |ok: bool, msg: String| {
            if !ok {
                errors.push(msg);
            }
        };
        check(
            (1..=1000).contains(&self.max_failures_per_user),
            format!(
                "[login] max_failures_per_user = {}: give 1–1000 (default 5)",
                self.max_failures_per_user
            ),
        );
        check(
            (1..=100_000).contains(&self.max_failures_per_ip),
            format!(
                "[login] max_failures_per_ip = {}: give 1–100000 (default 20)",
                self.max_failures_per_ip
            ),
        );
        check(
            self.window.get() >= std::time::Duration::from_secs(1),
            format!(
                "[login] window = \"{}\": give at least \"1s\" (default \"15m\")",
                self.window
            ),
        );
        check(
            self.max_concurrent_checks
                .is_none_or(|n| (1..=64).contains(&n)),
            format!(
                "[login] max_concurrent_checks = {}: give 1–64, or leave it out for the number of cores",
                self.max_concurrent_checks.unwrap_or_default()
            ),
        );
        check(
            self.check_wait.get() <= std::time::Duration::from_secs(60),
            format!(
                "[login] check_wait = \"{}\": give at most \"60s\" (default \"2s\")",
                self.check_wait
            ),
        );
        check(
            (100..=1_000_000).contains(&self.max_tracked),
            format!(
                "[login] max_tracked = {}: give 100–1000000 (default 10000)",
                self.max_tracked
            ),
        );
        check(
            (300..=7 * 86400).contains(&self.session_lifetime.get().as_secs()),
            format!(
                "[login] session_lifetime = \"{}\": give \"5m\" to \"7d\" (default \"12h\", a shift)",
                self.session_lifetime
            ),
        );
        let mut trusted_proxies = Vec::new();
        for p in &self.trusted_proxies {
            match p.parse::<crate::auth::Cidr>() {
                Ok(c) => trusted_proxies.push(c),
                Err(e) => errors.push(format!("[login] trusted_proxies: {e}")),
            }
        }
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        crate::auth::Policy {
            limits: crate::auth::Limits {
                per_user: self.max_failures_per_user,
                per_ip: self.max_failures_per_ip,
                window: self.window.get(),
                max_tracked: self.max_tracked as usize,
            },
            max_checks: self.max_concurrent_checks.map_or(cores, |n| n as usize),
            check_wait: self.check_wait.get(),
            trusted_proxies,
            session_lifetime: self.session_lifetime.get(),
        }
    }
}

const fn default_kiosk_lifetime() -> HumanDuration {
    HumanDuration::from_secs(7 * 86400)
}
const fn default_header_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
const fn default_idle_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
const fn default_max_connections() -> usize {
    1024
}

/// Whether `s` is a plain origin (`scheme://host[:port]`, nothing after it)
/// that may go into a Content-Security-Policy `frame-ancestors`.
fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    ["http", "https"].contains(&scheme)
        && !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// `[history]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySection {
    /// Record history at all. Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Raw values are kept this long. Default `"48h"`.
    #[serde(default = "default_raw")]
    pub raw_retention: HumanDuration,
    /// One-minute averages (with min and max) are kept this long. Default `"90d"`.
    #[serde(default = "default_rollup")]
    pub rollup_retention: HumanDuration,
}

impl Default for HistorySection {
    fn default() -> Self {
        HistorySection {
            enabled: true,
            raw_retention: default_raw(),
            rollup_retention: default_rollup(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_raw() -> HumanDuration {
    HumanDuration::from_secs(48 * 3600)
}
fn default_rollup() -> HumanDuration {
    HumanDuration::from_secs(90 * 86400)
}

/// `[ledger]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSection {
    /// Full calendar months kept before the current one, in each site's
    /// report time zone: transitions and closed tickets lying entirely
    /// before the 1st of the month this many months ago are deleted (daily).
    /// At least 2. Default `24`.
    #[serde(default = "default_keep_months")]
    pub keep_months: u32,
}

impl Default for LedgerSection {
    fn default() -> Self {
        LedgerSection {
            keep_months: default_keep_months(),
        }
    }
}

const fn default_keep_months() -> u32 {
    24
}

/// `[[user]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name; also the `by` of the commands this user sends.
    pub name: String,
    /// PHC string of an argon2 hash (`dashboard hash-password`).
    pub password_hash: String,
}

/// `[[gateway]]`: the command secret of one gateway (or every gateway of a site).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayKey {
    /// The site.
    pub site: String,
    /// The gateway; `*` (default) for every gateway of the site.
    #[serde(default = "star")]
    pub gateway: String,
    /// The gateway's `[commands] secret`.
    pub command_secret: SecretSource,
}

fn star() -> String {
    "*".to_owned()
}
fn default_data_dir() -> String {
    "data".to_owned()
}
fn default_stale_after() -> HumanDuration {
    HumanDuration::from_secs(150)
}
fn default_rotate() -> HumanDuration {
    HumanDuration::from_secs(20)
}
fn default_tz() -> String {
    "Asia/Shanghai".to_owned()
}
fn default_language() -> String {
    "zh-CN".to_owned()
}
fn default_prefix() -> String {
    "bms".to_owned()
}
fn default_client_id() -> String {
    "bms-dashboard".to_owned()
}
fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

/// The configuration checked and ready: addresses parsed, secrets read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// As written.
    pub file: Config,
    /// The broker URL the subscriber connects to.
    pub broker_url: String,
    /// The embedded broker's address, when one runs.
    pub embedded: Option<SocketAddr>,
    /// The HTTP listen address.
    pub listen: SocketAddr,
    /// The data folder (absolute or relative to the working directory).
    pub data_dir: PathBuf,
    /// The kiosk token's check (only its hash is kept), when set.
    pub kiosk: Option<crate::kiosk::Kiosk>,
    /// The broker password, when set.
    pub mqtt_password: Option<String>,
    /// How logins are limited (`[login]`).
    pub login: crate::auth::Policy,
    /// `[mqtt] max_packet_size` in bytes.
    pub max_packet: u32,
    /// The folder of the configuration file (relative paths start here).
    pub base_dir: PathBuf,
    /// `(site, gateway or "*", secret)`.
    pub secrets: Vec<(String, String, String)>,
}

impl Settings {
    /// The command secret of a gateway, if configured.
    pub fn secret_for(&self, site: &str, gateway: &str) -> Option<&str> {
        self.secrets
            .iter()
            .find(|(s, g, _)| s == site && g == gateway)
            .or_else(|| self.secrets.iter().find(|(s, g, _)| s == site && g == "*"))
            .map(|(_, _, k)| k.as_str())
    }
}

/// The allow-lists and `[limits]`.
fn check_intake(file: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    for s in &file.mqtt.sites {
        if !bms_wire::check::is_id(s) {
            errors.push(format!(
                "[mqtt] sites: {s:?} is not a site id (1–64 of A-Z a-z 0-9 _ . -)"
            ));
        }
    }
    for g in &file.mqtt.gateways {
        let ok = g
            .split_once('/')
            .is_some_and(|(s, w)| bms_wire::check::is_id(s) && bms_wire::check::is_id(w));
        if !ok {
            errors.push(format!(
                "[mqtt] gateways: {g:?} is not \"site/gateway\" (ids of 1–64 of A-Z a-z 0-9 _ . -)"
            ));
        }
    }
    let l = &file.limits;
    for (name, v, max) in [
        ("max_sites", l.max_sites, 100_000),
        ("max_gateways_per_site", l.max_gateways_per_site, 10_000),
        (
            "max_devices_per_gateway",
            l.max_devices_per_gateway,
            100_000,
        ),
        ("max_points_per_device", l.max_points_per_device, 4096),
        (
            "max_tickets_per_gateway",
            l.max_tickets_per_gateway,
            100_000,
        ),
    ] {
        if !(1..=max).contains(&v) {
            errors.push(format!("[limits] {name} = {v}: give 1–{max}"));
        }
    }
    if !(1024..=16 << 20).contains(&l.max_payload_bytes) {
        errors.push(format!(
            "[limits] max_payload_bytes = {}: give 1024–16777216 (default 262144, 256 KiB)",
            l.max_payload_bytes
        ));
    }
    errors
}

/// Reads and checks a configuration file; every problem found is listed.
pub fn load(path: &Path) -> Result<Settings, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
    let file: Config = toml::from_str(&text).map_err(|e| vec![e.to_string()])?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    check(file, &base)
}

/// Checks a parsed configuration; `base` resolves relative paths.
pub fn check(file: Config, base: &Path) -> Result<Settings, Vec<String>> {
    let mut errors = Vec::new();
    let env = |v: &str| std::env::var(v).ok();
    let listen = match file.http.listen.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(e) => {
            errors.push(format!(
                "[http] listen = {:?}: {e}; write an address like \"127.0.0.1:8080\"",
                file.http.listen
            ));
            None
        }
    };
    let mut embedded = None;
    if let Some(l) = &file.mqtt.embedded_listen {
        match l.parse::<SocketAddr>() {
            Ok(a) => embedded = Some(a),
            Err(e) => errors.push(format!(
                "[mqtt] embedded_listen = {l:?}: {e}; write an address like \"127.0.0.1:18830\""
            )),
        }
    }
    let broker_url = match (&file.mqtt.url, embedded) {
        (Some(u), _) => u.clone(),
        (None, Some(a)) => format!("mqtt://{a}"),
        (None, None) => "mqtt://127.0.0.1:1883".to_owned(),
    };
    match gateway_core::config::parse_broker_url(&broker_url) {
        // The message never repeats a password: the URL is shown redacted.
        Err(e) => {
            let shown = gateway_core::config::redact_url(&broker_url);
            errors.push(format!("[mqtt] url = {shown:?}: {e}"));
        }
        Ok(u) if !u.tls && file.mqtt.ca_file.is_some() => errors.push(format!(
            "[mqtt] ca_file is given but url = {broker_url:?} is plain MQTT; use mqtts://host:8883"
        )),
        Ok(_) => {}
    }
    if let Some(ca) = &file.mqtt.ca_file
        && !base.join(ca).is_file()
    {
        errors.push(format!(
            "[mqtt] ca_file = {ca:?}: no such file (looked at {})",
            base.join(ca).display()
        ));
    }
    let max_packet = match gateway_core::config::parse_packet_size(&file.mqtt.max_packet_size) {
        Ok(n) => n,
        Err(e) => {
            errors.push(format!("[mqtt] max_packet_size: {e}"));
            0
        }
    };
    if file.mqtt.prefix.is_empty() || file.mqtt.prefix.contains(['#', '+']) {
        errors.push(format!(
            "[mqtt] prefix = {:?}: give the gateways' prefix, without wildcards (default \"bms\")",
            file.mqtt.prefix
        ));
    }
    if let Err(e) = gateway_core::ledger::parse_tz(&file.timezone) {
        errors.push(format!(
            "timezone = {:?}: {e}; use an IANA name such as \"Asia/Shanghai\"",
            file.timezone
        ));
    }
    errors.extend(crate::reports::check_sites(&file.report_sites)); // issue 7
    errors.extend(check_intake(&file));
    if !["zh-CN", "en"].contains(&file.language.as_str()) {
        errors.push(format!(
            "language = {:?}: use \"zh-CN\" or \"en\"",
            file.language
        ));
    }
    let kiosk = match file.http.kiosk_token.read(base, &env) {
        Ok(t) => {
            t.map(|t| crate::kiosk::Kiosk::new(t.expose(), file.http.kiosk_cookie_lifetime.get()))
        }
        Err(e) => {
            errors.push(format!("[http] kiosk_token: {e}"));
            None
        }
    };
    let h = &file.http;
    if h.kiosk_cookie_lifetime.get() < std::time::Duration::from_secs(3600) {
        errors.push(format!(
            "[http] kiosk_cookie_lifetime = \"{}\": give at least \"1h\" (default \"7d\")",
            h.kiosk_cookie_lifetime
        ));
    }
    if h.header_timeout.get() < std::time::Duration::from_secs(1) {
        errors.push(format!(
            "[http] header_timeout = \"{}\": give at least \"1s\" (default \"10s\")",
            h.header_timeout
        ));
    }
    if h.idle_timeout.get() < std::time::Duration::from_secs(20) {
        errors.push(format!(
            "[http] idle_timeout = \"{}\": give at least \"20s\", more than the event stream's 15 s keep-alive (default \"60s\")",
            h.idle_timeout
        ));
    }
    if !(1..=65_536).contains(&h.max_connections) {
        errors.push(format!(
            "[http] max_connections = {}: give 1–65536 (default 1024)",
            h.max_connections
        ));
    }
    if let Some(o) = &h.frame_ancestor
        && !is_origin(o)
    {
        errors.push(format!(
            "[http] frame_ancestor = {o:?}: give one origin such as \"https://portal.example.com\" (scheme, host, optional port; no path)"
        ));
    }
    let mqtt_password = match file.mqtt.password.read(base, &env) {
        Ok(t) => t.map(|t| t.expose().to_owned()),
        Err(e) => {
            errors.push(format!("[mqtt] password: {e}"));
            None
        }
    };
    let mut names = std::collections::BTreeSet::new();
    for (i, u) in file.users.iter().enumerate() {
        if u.name.trim().is_empty() || u.name.chars().count() > 64 {
            errors.push(format!("[[user]] #{}: name must be 1–64 characters", i + 1));
        }
        if !names.insert(u.name.clone()) {
            errors.push(format!("[[user]] {:?} is listed twice", u.name));
        }
        if let Err(e) = argon2::PasswordHash::new(&u.password_hash) {
            errors.push(format!(
                "[[user]] {:?}: password_hash is not a PHC hash string ({e}); make one with `dashboard hash-password`",
                u.name
            ));
        }
    }
    let login = file.login.policy(&mut errors);
    let mut secrets = Vec::new();
    for g in &file.gateways {
        match g.command_secret.read(base, &env) {
            Ok(Some(k)) => {
                let setting = format!("[[gateway]] {}/{}: command_secret", g.site, g.gateway);
                match gateway_core::config::check_command_secret(&setting, &k) {
                    Ok(()) => {
                        secrets.push((g.site.clone(), g.gateway.clone(), k.expose().to_owned()))
                    }
                    Err(e) => errors.push(e),
                }
            }
            Ok(None) => errors.push(format!(
                "[[gateway]] {}/{}: command_secret is not given; write {{ file = … }} or {{ env = … }}",
                g.site, g.gateway
            )),
            Err(e) => errors.push(format!(
                "[[gateway]] {}/{}: command_secret: {e}",
                g.site, g.gateway
            )),
        }
    }
    if file.history.raw_retention.get() < std::time::Duration::from_secs(60)
        || file.history.rollup_retention.get() < std::time::Duration::from_secs(86400)
    {
        errors.push(
            "[history] raw_retention must be at least \"1m\" and rollup_retention at least \"1d\" (defaults \"48h\", \"90d\")"
                .to_owned(),
        );
    }
    if !(MIN_KEEP_MONTHS..=MAX_KEEP_MONTHS).contains(&file.ledger.keep_months) {
        errors.push(format!(
            "[ledger] keep_months = {}: give {MIN_KEEP_MONTHS}–{MAX_KEEP_MONTHS} months; the month before the current one must stay whole for its report (default 24)",
            file.ledger.keep_months
        ));
    }
    if file.stale_after.get().is_zero() {
        errors.push("stale_after must be more than zero (default \"150s\")".to_owned());
    }
    let data_dir = {
        let p = PathBuf::from(&file.data_dir);
        if p.is_absolute() { p } else { base.join(p) }
    };
    match (errors.is_empty(), listen) {
        (true, Some(listen)) => Ok(Settings {
            file,
            broker_url,
            embedded,
            listen,
            data_dir,
            kiosk,
            mqtt_password,
            login,
            max_packet,
            base_dir: base.to_path_buf(),
            secrets,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(s: &str) -> Result<Settings, Vec<String>> {
        check(toml::from_str(s).unwrap(), Path::new("/etc/bms"))
    }

    #[test]
    fn defaults() {
        let s = parse("").unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.broker_url, "mqtt://127.0.0.1:1883");
        assert_eq!(s.file.mqtt.prefix, "bms");
        assert_eq!(s.file.stale_after.get().as_secs(), 150);
        assert_eq!(s.file.language, "zh-CN");
        assert_eq!(s.data_dir, Path::new("/etc/bms/data"));
        assert_eq!(s.file.ledger.keep_months, 24);
    }

    #[test]
    fn ledger_keep_months_below_two_is_refused_naming_the_setting() {
        assert_eq!(
            parse("[ledger]\nkeep_months = 2\n")
                .unwrap()
                .file
                .ledger
                .keep_months,
            2
        );
        let e = parse("[ledger]\nkeep_months = 1\n").unwrap_err().join("\n");
        assert!(
            e.contains("[ledger] keep_months = 1: give 2–1200 months"),
            "{e}"
        );
        assert!(toml::from_str::<Config>("[ledger]\nkeep = 3\n").is_err());
    }

    #[test]
    fn login_limits_have_documented_defaults_and_are_checked() {
        let p = parse("").unwrap().login;
        assert_eq!(p.limits.per_user, 5);
        assert_eq!(p.limits.per_ip, 20);
        assert_eq!(p.limits.window.as_secs(), 900);
        assert_eq!(p.limits.max_tracked, 10_000);
        assert!(p.max_checks >= 1);
        assert_eq!(p.check_wait.as_secs(), 2);
        assert!(p.trusted_proxies.is_empty());
        let p = parse(
            "[login]\nmax_concurrent_checks = 3\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap()
        .login;
        assert_eq!(p.max_checks, 3);
        assert_eq!(p.trusted_proxies.len(), 2);
        let e = parse(
            "[login]\nmax_failures_per_user = 0\nmax_concurrent_checks = 0\nwindow = \"0s\"\ntrusted_proxies = [\"proxy\", \"10.0.0.0/40\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e.iter().all(|m| m.starts_with("[login] ")), "{e:?}");
        assert!(toml::from_str::<Config>("[login]\nmax_fails = 3\n").is_err());
    }

    #[test]
    fn a_login_lasts_a_twelve_hour_shift_unless_configured() {
        let p = parse("").unwrap().login;
        assert_eq!(p.session_lifetime.as_secs(), 12 * 3600);
        let p = parse("[login]\nsession_lifetime = \"8h\"\n").unwrap().login;
        assert_eq!(p.session_lifetime.as_secs(), 8 * 3600);
        for bad in ["1m", "30d"] {
            let e = parse(&format!("[login]\nsession_lifetime = \"{bad}\"\n")).unwrap_err();
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(e[0].starts_with("[login] session_lifetime"), "{e:?}");
        }
    }

    #[test]
    fn max_packet_size_is_humane_with_a_documented_default() {
        assert_eq!(parse("").unwrap().max_packet, 1 << 20);
        let s = parse("[mqtt]\nmax_packet_size = \"256KiB\"\n").unwrap();
        assert_eq!(s.max_packet, 256 * 1024);
        let e = parse("[mqtt]\nmax_packet_size = \"12\"\n").unwrap_err();
        assert!(e[0].contains("[mqtt] max_packet_size"), "{e:?}");
    }

    #[test]
    fn a_ca_file_needs_mqtts_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        let file = |t: &str| toml::from_str::<Config>(t).unwrap();
        let ok = check(
            file("[mqtt]\nurl = \"mqtts://broker:8883\"\nca_file = \"ca.pem\"\n"),
            dir.path(),
        )
        .unwrap();
        assert_eq!(ok.base_dir, dir.path());
        let e = check(
            file("[mqtt]\nurl = \"mqtt://broker\"\nca_file = \"ca.pem\"\n"),
            dir.path(),
        )
        .unwrap_err();
        assert!(e[0].contains("use mqtts://"), "{e:?}");
        let e = check(
            file("[mqtt]\nurl = \"mqtts://broker\"\nca_file = \"none.pem\"\n"),
            dir.path(),
        )
        .unwrap_err();
        assert!(e[0].contains("no such file"), "{e:?}");
    }

    #[test]
    fn limits_have_defaults_and_are_checked() {
        let s = parse("").unwrap();
        assert_eq!(s.file.limits.max_sites, 200);
        assert_eq!(s.file.limits.max_payload_bytes, 256 * 1024);
        let e = parse(
            "[mqtt]\nsites = [\"<b>\"]\ngateways = [\"a\"]\n[limits]\nmax_sites = 0\nmax_payload_bytes = 10\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e.iter().any(|m| m.contains("[limits] max_sites = 0")),
            "{e:?}"
        );
        assert!(toml::from_str::<Config>("[limits]\nmax_bananas = 3\n").is_err());
    }

    #[test]
    fn the_wall_rotates_through_the_allowed_then_the_report_sites() {
        let s = parse("[mqtt]\ngateways = [\"a/gw-1\", \"a/gw-2\", \"b/gw-1\"]\n").unwrap();
        assert_eq!(s.file.rotation(), ["a", "b"]);
        let s = parse("[mqtt]\nsites = [\"c\"]\ngateways = [\"a/gw-1\"]\n").unwrap();
        assert_eq!(s.file.rotation(), ["c"]);
        assert!(parse("").unwrap().file.rotation().is_empty());
    }

    #[test]
    fn http_limits_and_the_embedding_origin_are_checked_naming_the_setting() {
        let s = parse("").unwrap();
        assert_eq!(s.file.http.header_timeout.get().as_secs(), 10);
        assert_eq!(s.file.http.idle_timeout.get().as_secs(), 60);
        assert_eq!(s.file.http.max_connections, 1024);
        assert_eq!(s.file.http.kiosk_cookie_lifetime.get().as_secs(), 7 * 86400);
        assert!(s.file.http.frame_ancestor.is_none());
        let ok = parse("[http]\nframe_ancestor = \"https://portal.example.com:8443\"\n").unwrap();
        assert!(ok.file.http.frame_ancestor.is_some());
        let e = parse(
            "[http]\nheader_timeout = \"0s\"\nidle_timeout = \"5s\"\nmax_connections = 0\nkiosk_cookie_lifetime = \"1m\"\nframe_ancestor = \"https://a.example; script-src *\"\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 5, "{e:?}");
        for (i, name) in [
            "kiosk_cookie_lifetime",
            "header_timeout",
            "idle_timeout",
            "max_connections",
            "frame_ancestor",
        ]
        .iter()
        .enumerate()
        {
            assert!(e[i].contains(&format!("[http] {name}")), "{e:?}");
        }
    }

    #[test]
    fn the_kiosk_token_is_kept_as_a_hash_only() {
        // Through a file: no process-wide environment is touched.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kiosk"), "wall-secret-123\n").unwrap();
        let s = check(
            toml::from_str("[http]\nkiosk_token = { file = \"kiosk\" }\n").unwrap(),
            dir.path(),
        )
        .unwrap();
        let k = s.kiosk.unwrap();
        assert!(k.token_matches("wall-secret-123"));
        assert!(!format!("{:?}", s.file).contains("wall-secret-123"));
        assert!(!format!("{k:?}").contains("wall-secret-123"));
    }

    #[test]
    fn embedded_broker_is_the_default_url() {
        let s = parse("[mqtt]\nembedded_listen = \"127.0.0.1:18830\"\n").unwrap();
        assert_eq!(s.broker_url, "mqtt://127.0.0.1:18830");
        assert_eq!(s.embedded.unwrap().port(), 18830);
    }

    #[test]
    fn every_error_is_listed() {
        let e = parse(
            "language = \"fr\"\n[http]\nlisten = \"nowhere\"\n[[user]]\nname = \"a\"\npassword_hash = \"plain\"\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].contains("[http] listen"), "{e:?}");
        assert!(e.iter().any(|m| m.contains("hash-password")), "{e:?}");
    }

    #[test]
    fn secret_per_gateway_falls_back_to_the_site() {
        let dir = tempfile::tempdir().unwrap();
        let (k_site, k_gw2) = ("k-site".repeat(6), "k-gw2".repeat(7));
        std::fs::write(dir.path().join("a.key"), format!("{k_site}\n")).unwrap();
        std::fs::write(dir.path().join("b.key"), &k_gw2).unwrap();
        let file: Config = toml::from_str(
            "[[gateway]]\nsite = \"a\"\ncommand_secret = { file = \"a.key\" }\n[[gateway]]\nsite = \"a\"\ngateway = \"gw-2\"\ncommand_secret = { file = \"b.key\" }\n",
        )
        .unwrap();
        let s = check(file, dir.path()).unwrap();
        assert_eq!(s.secret_for("a", "gw-1"), Some(k_site.as_str()));
        assert_eq!(s.secret_for("a", "gw-2"), Some(k_gw2.as_str()));
        assert_eq!(s.secret_for("b", "gw-1"), None);
        let e =
            parse("[[gateway]]\nsite = \"a\"\ncommand_secret = { file = \"/nonexistent/k\" }\n")
                .unwrap_err();
        assert!(e[0].contains("cannot read the secret file"), "{e:?}");
    }

    #[test]
    fn command_secrets_shorter_than_32_bytes_are_refused_naming_the_gateway_and_length() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short.key"), "k\n").unwrap();
        std::fs::write(dir.path().join("long.key"), "k".repeat(32)).unwrap();
        let file: Config = toml::from_str(
            "[[gateway]]\nsite = \"a\"\ngateway = \"gw-1\"\ncommand_secret = { file = \"short.key\" }\n[[gateway]]\nsite = \"b\"\ncommand_secret = { file = \"long.key\" }\n",
        )
        .unwrap();
        let e = check(file, dir.path()).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("[[gateway]] a/gw-1: command_secret"), "{e:?}");
        assert!(e[0].contains("1 bytes"), "{e:?}");
        assert!(e[0].contains("openssl rand -hex 32"), "{e:?}");
    }

    #[test]
    fn a_broker_url_with_credentials_is_refused_and_the_password_is_not_repeated() {
        let e = parse("[mqtt]\nurl = \"mqtt://u:secretpass@127.0.0.1:1883\"\n").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(!e[0].contains("secretpass"), "{e:?}");
        assert!(
            e[0].contains("username") && e[0].contains("password"),
            "{e:?}"
        );
    }
}
