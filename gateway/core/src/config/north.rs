//! The north side's sections (issue #4): `[mqtt]`, `[outbox]`, `[influx]`,
//! `[commands]` and `[admin]`. See `docs/config.md` and `docs/mqtt.md`.
//!
//! Secrets (MQTT password, InfluxDB token, command secret) are never written
//! in the file itself: each is read from a file (`*_file`) or an environment
//! variable (`*_env`) when the gateway starts, and kept in a [`Secret`] whose
//! `Debug` prints `**REDACTED**`.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::HumanDuration;

/// A secret value read at start (password, token, shared key). Its `Debug`
/// and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// Where a secret comes from: a file (its content, trailing newline
/// trimmed) or an environment variable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// A file holding the secret (e.g. `/etc/bms/mqtt.pass`, mode 0600).
    #[serde(default)]
    pub file: Option<String>,
    /// An environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
}

impl SecretSource {
    /// Whether a source is given.
    pub fn is_set(&self) -> bool {
        self.file.is_some() || self.env.is_some()
    }

    /// Reads the secret: `Ok(None)` when no source is given.
    pub fn read(
        &self,
        base: &std::path::Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Secret>, String> {
        if let Some(f) = &self.file {
            let path = base.join(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                return Err(format!("the secret file {} is empty", path.display()));
            }
            return Ok(Some(Secret::new(text)));
        }
        if let Some(v) = &self.env {
            return match env(v) {
                Some(s) if !s.is_empty() => Ok(Some(Secret::new(s))),
                _ => Err(format!("the environment variable {v} is not set or empty")),
            };
        }
        Ok(None)
    }

    fn check(&self, path: &str, errs: &mut Vec<ConfigError>) {
        if self.file.is_some() && self.env.is_some() {
            errs.push(ConfigError::new(path, "give either file or env, not both"));
        }
        if self.file.as_deref().is_some_and(|f| f.trim().is_empty())
            || self.env.as_deref().is_some_and(|e| e.trim().is_empty())
        {
            errs.push(ConfigError::new(
                path,
                "an empty file name or variable name",
            ));
        }
    }
}

/// MQTT quality of service (our own type: library types stay out of config).
/// Written `0` or `1`, as an integer (as `docs/config.md` shows) or as a
/// string (`"0"`, `"1"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Qos {
    /// At most once: sent, never resent.
    AtMostOnce,
    /// At least once: resent until the broker acknowledges it.
    #[default]
    AtLeastOnce,
}

impl<'de> Deserialize<'de> for Qos {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Qos;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a QoS of 0 or 1")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Qos, E> {
                match v {
                    0 => Ok(Qos::AtMostOnce),
                    1 => Ok(Qos::AtLeastOnce),
                    _ => Err(E::custom(format!("QoS {v} is not supported: write 0 or 1"))),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Qos, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Qos, E> {
                match v.trim() {
                    "0" => Ok(Qos::AtMostOnce),
                    "1" => Ok(Qos::AtLeastOnce),
                    _ => Err(E::custom(format!(
                        "QoS {v:?} is not supported: write 0 or 1"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Qos {
    /// 0 or 1.
    pub const fn as_u8(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
        }
    }
}

/// `[mqtt]`: the broker and what is published.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Publish at all. Default `true` when the section is present.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Broker URL: `mqtt://host:port` (plain, default port 1883) or
    /// `mqtts://host:port` (TLS, default port 8883).
    pub url: String,
    /// Topic prefix; topics are `{prefix}/{site}/{gateway}/…`. Default `"bms"`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// MQTT client id. Default `"{site}-{gateway}"`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// User name, if the broker wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Where the password comes from: `password = { file = "…" }` or
    /// `password = { env = "BMS_MQTT_PASSWORD" }`.
    #[serde(default)]
    pub password: SecretSource,
    /// TLS: the CA certificate (PEM) that signed the broker's certificate.
    /// Without it, `mqtts://` uses the system's trusted roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// TLS client certificate (PEM), with `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<String>,
    /// TLS client key (PEM, PKCS#8 or RSA), with `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<String>,
    /// Keep-alive interval, 5s–1h. Default `"30s"`.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: HumanDuration,
    /// QoS of telemetry (`0` or `1`); everything else is always QoS 1.
    /// Default `1`.
    #[serde(default)]
    pub telemetry_qos: Qos,
    /// Publishes waiting for the broker's acknowledgement at once, 1–1000.
    /// Default `100`.
    #[serde(default = "default_inflight")]
    pub max_inflight: u16,
    /// First wait before reconnecting; doubles up to `reconnect_max`.
    /// Default `"1s"`.
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min: HumanDuration,
    /// Longest wait between reconnection attempts. Default `"60s"`.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max: HumanDuration,
    /// How often each device's retained `state` is republished with fresh
    /// availability figures (it is also published on every change).
    /// Default `"60s"`.
    #[serde(default = "default_state_every")]
    pub state_every: HumanDuration,
    /// Default heartbeat of report by exception: a point unchanged beyond
    /// its deadband is still published this often. Default `"5m"`.
    #[serde(default = "default_heartbeat")]
    pub heartbeat: HumanDuration,
    /// Largest MQTT packet the gateway accepts from the broker, e.g.
    /// `"256KiB"`, 1KiB–256MiB. Sent to the broker as the MQTT 5 Maximum
    /// Packet Size, so that a compliant broker (Mosquitto 2) never delivers
    /// a bigger message (a huge command cannot cut the gateway off).
    /// Default `"1MiB"`.
    #[serde(default = "default_max_packet_size")]
    pub max_packet_size: String,
}

/// When the outbox writes reach the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// Every append is synced before it is published (SQLite
    /// `synchronous = FULL`): a power cut loses nothing that was appended.
    Always,
    /// Appends are synced at WAL checkpoints (`synchronous = NORMAL`): a
    /// process crash loses nothing; a power cut can lose the appends of the
    /// last moments (typically under a second). The default.
    #[default]
    Batch,
    /// Never synced by us (`synchronous = OFF`): the operating system
    /// decides; a power cut can lose several seconds and, rarely, corrupt
    /// the outbox (it is then set aside and started anew).
    Off,
}

/// `[outbox]`: the disk queue in front of MQTT and InfluxDB.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Largest size of the outbox, e.g. `"256MB"`; when full, the oldest
    /// telemetry is dropped first (counted and logged), never events,
    /// tickets or alarms. Default `"256MB"`.
    #[serde(default = "default_outbox_size")]
    pub max_size: String,
    /// When appends reach the disk: `always`, `batch` (default) or `off`.
    #[serde(default)]
    pub fsync: Fsync,
}

/// `[influx]`: optional telemetry sink (InfluxDB 2 `/api/v2/write`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// Write at all. Default `true` when the section is present.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Base URL: `http://host:8086` or `https://…` (without `/api/v2/write`).
    pub url: String,
    /// Organisation.
    pub org: String,
    /// Bucket.
    pub bucket: String,
    /// Where the API token comes from (`{ file = … }` or `{ env = … }`).
    #[serde(default)]
    pub token: SecretSource,
    /// Lines per write request, 1–50 000. Default `5000`.
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// Longest wait before a partial batch is written. Default `"1s"`.
    #[serde(default = "default_flush")]
    pub flush_every: HumanDuration,
}

/// `[commands]`: commands arriving over MQTT (`…/cmd/…`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsConfig {
    /// Accept commands at all. Default `true` when the section is present.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The shared HMAC-SHA256 key (`{ file = … }` or `{ env = … }`); required.
    pub secret: SecretSource,
    /// A command older (or further in the future) than this is refused as
    /// stale. Default `"5m"`.
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
}

/// `[admin]`: the loopback HTTP listener for `/healthz` and `/metrics`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address. Default `"127.0.0.1:9898"`; `""` turns it off.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
        }
    }
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_size: default_outbox_size(),
            fsync: Fsync::default(),
        }
    }
}

const fn yes() -> bool {
    true
}
fn default_prefix() -> String {
    "bms".to_owned()
}
const fn default_keep_alive() -> HumanDuration {
    HumanDuration::from_secs(30)
}
const fn default_inflight() -> u16 {
    100
}
const fn default_reconnect_min() -> HumanDuration {
    HumanDuration::from_secs(1)
}
const fn default_reconnect_max() -> HumanDuration {
    HumanDuration::from_secs(60)
}
const fn default_state_every() -> HumanDuration {
    HumanDuration::from_secs(60)
}
const fn default_heartbeat() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_max_packet_size() -> String {
    DEFAULT_MAX_PACKET.to_owned()
}
fn default_outbox_size() -> String {
    "256MB".to_owned()
}
const fn default_batch() -> u32 {
    5000
}
const fn default_flush() -> HumanDuration {
    HumanDuration::from_secs(1)
}
const fn default_max_age() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_admin_listen() -> String {
    "127.0.0.1:9898".to_owned()
}

/// A broker address from `[mqtt] url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    /// TLS (`mqtts://`).
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// The shortest command secret accepted (`[commands] secret` on a gateway,
/// `command_secret` on the dashboard), in bytes.
pub const MIN_COMMAND_SECRET_BYTES: usize = 32;

/// Checks a command secret once read: at least
/// [`MIN_COMMAND_SECRET_BYTES`] bytes. The error names `setting` and the
/// length found (never the secret) and says how to make a good one.
pub fn check_command_secret(setting: &str, secret: &Secret) -> Result<(), String> {
    let n = secret.expose().len();
    if n >= MIN_COMMAND_SECRET_BYTES {
        return Ok(());
    }
    Err(format!(
        "{setting}: the secret is {n} bytes long; give at least {MIN_COMMAND_SECRET_BYTES} (a short key can be guessed from one signed command): make one with `openssl rand -hex 32`, put it on the gateway and the dashboard, and restart both"
    ))
}

/// `url` with any user name and password (`user:pass@`) replaced by
/// `***@`, for messages and logs. A URL without them is returned as it is.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let tail = &rest[at + 1..];
            match scheme {
                Some(s) => format!("{s}://***@{tail}"),
                None => format!("***@{tail}"),
            }
        }
        None => url.to_owned(),
    }
}

/// Parses `mqtt://host[:port]` or `mqtts://host[:port]`. A URL holding a
/// user name or password (`mqtt://user:pass@host`) is refused, and no
/// message ever repeats that part: credentials belong in `username` and
/// `password = { file = … }` (or `{ env = … }`), where they are never logged.
pub fn parse_broker_url(url: &str) -> Result<BrokerUrl, String> {
    let shown = redact_url(url);
    if shown != url {
        return Err(format!(
            "{shown:?}: the URL holds a user name or password; write only mqtt://host:port and give them as [mqtt] username and password = {{ file = \"…\" }} (or {{ env = \"…\" }}); if that password was in use, change it: it may have been logged"
        ));
    }
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("tcp://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("ssl://") {
        (true, r)
    } else {
        return Err(format!(
            "{url:?} is not a broker URL; write mqtt://host:1883 or mqtts://host:8883"
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return Err(format!(
            "{url:?}: give only host and port, e.g. mqtt://broker.local:1883"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port: u16 = p
                .parse()
                .map_err(|_| format!("{url:?}: port {p:?} is not a number 1–65535"))?;
            if port == 0 {
                return Err(format!("{url:?}: port 0 is not a broker port"));
            }
            (h.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        return Err(format!("{url:?}: the host is missing"));
    }
    Ok(BrokerUrl {
        tls,
        host: host.to_owned(),
        port,
    })
}

/// Parses a size such as `"256MB"`, `"64 MiB"`, `"1GB"`, `"500kB"` or a
/// plain number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. \"256MB\""))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "kib" => 1024.0,
        "mb" | "m" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "gb" | "g" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?}; use B, kB, MB, GB (or KiB, MiB, GiB)"
            ));
        }
    };
    let bytes = n * mult;
    if !bytes.is_finite() || !(0.0..=1e15).contains(&bytes) {
        return Err(format!("{s:?} is out of range"));
    }
    // Whole bytes: the fraction of a byte is dropped on purpose.
    Ok(bytes as u64)
}

/// The smallest outbox accepted.
pub const MIN_OUTBOX: u64 = 1_000_000;

/// The default largest MQTT packet a client accepts (gateway and dashboard).
pub const DEFAULT_MAX_PACKET: &str = "1MiB";

/// Parses an MQTT client's `max_packet_size` (1KiB–256MiB: below 1 KiB no
/// real message fits; MQTT cannot carry more than 256 MiB).
pub fn parse_packet_size(s: &str) -> Result<u32, String> {
    let n = parse_size(s)?;
    if !(1024..=268_435_455).contains(&n) {
        return Err(format!(
            "{s:?} is out of range; give 1KiB–256MiB, e.g. \"1MiB\""
        ));
    }
    // In range: at most 268 435 455, which fits.
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

impl MqttConfig {
    /// The defaults of every key, with this broker URL (for `--mqtt-url`
    /// when the file has no `[mqtt]`).
    pub fn for_url(url: &str) -> MqttConfig {
        MqttConfig {
            enabled: true,
            url: url.to_owned(),
            prefix: default_prefix(),
            client_id: None,
            username: None,
            password: SecretSource::default(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive: default_keep_alive(),
            telemetry_qos: Qos::default(),
            max_inflight: default_inflight(),
            reconnect_min: default_reconnect_min(),
            reconnect_max: default_reconnect_max(),
            state_every: default_state_every(),
            heartbeat: default_heartbeat(),
            max_packet_size: default_max_packet_size(),
        }
    }

    /// The largest packet accepted from the broker, in bytes (the default
    /// when unparsable: validation reports that).
    pub fn max_packet_bytes(&self) -> u32 {
        parse_packet_size(&self.max_packet_size).unwrap_or(1 << 20)
    }

    /// Every problem of the section (paths `mqtt.…`).
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        if let Err(e) = parse_broker_url(&self.url) {
            errs.push(ConfigError::new("mqtt.url", e));
        }
        if self.prefix.is_empty()
            || self.prefix.starts_with('/')
            || self.prefix.ends_with('/')
            || self.prefix.contains(['#', '+'])
        {
            errs.push(ConfigError::new(
                "mqtt.prefix",
                format!(
                    "{:?} cannot start a topic; use letters, digits, '-', '_' and inner '/'",
                    self.prefix
                ),
            ));
        }
        if let Some(id) = &self.client_id
            && (id.is_empty() || id.len() > 23 * 4)
        {
            errs.push(ConfigError::new(
                "mqtt.client_id",
                "give 1–92 characters (or leave it out for {site}-{gateway})",
            ));
        }
        self.password.check("mqtt.password", &mut errs);
        if self.password.is_set() && self.username.is_none() {
            errs.push(ConfigError::new(
                "mqtt.password",
                "a password needs a username",
            ));
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            errs.push(ConfigError::new(
                "mqtt.client_cert_file",
                "give client_cert_file and client_key_file together",
            ));
        }
        let tls = parse_broker_url(&self.url).is_ok_and(|u| u.tls);
        if !tls
            && (self.ca_file.is_some()
                || self.client_cert_file.is_some()
                || self.client_key_file.is_some())
        {
            errs.push(ConfigError::new(
                "mqtt.url",
                "TLS files are given but the URL is mqtt://; use mqtts://host:8883",
            ));
        }
        let ka = self.keep_alive.get();
        if ka < Duration::from_secs(5) || ka > Duration::from_secs(3600) {
            errs.push(ConfigError::new(
                "mqtt.keep_alive",
                "must be between 5s and 1h",
            ));
        }
        if !(1..=1000).contains(&self.max_inflight) {
            errs.push(ConfigError::new("mqtt.max_inflight", "must be 1–1000"));
        }
        if self.reconnect_min.get().is_zero() || self.reconnect_min.get() > self.reconnect_max.get()
        {
            errs.push(ConfigError::new(
                "mqtt.reconnect_min",
                "must be above zero and at most reconnect_max",
            ));
        }
        if self.state_every.get() < Duration::from_secs(1) {
            errs.push(ConfigError::new("mqtt.state_every", "must be at least 1s"));
        }
        if self.heartbeat.get() < Duration::from_secs(1) {
            errs.push(ConfigError::new("mqtt.heartbeat", "must be at least 1s"));
        }
        if let Err(e) = parse_packet_size(&self.max_packet_size) {
            errs.push(ConfigError::new("mqtt.max_packet_size", e));
        }
        errs
    }

    /// The client id: the configured one or `{site}-{gateway}`.
    pub fn client_id_for(&self, site: &str, gateway: &str) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("{site}-{gateway}"))
    }
}

impl OutboxConfig {
    /// Every problem of the section.
    pub fn check(&self) -> Vec<ConfigError> {
        match parse_size(&self.max_size) {
            Err(e) => vec![ConfigError::new("outbox.max_size", e)],
            Ok(n) if n < MIN_OUTBOX => {
                vec![ConfigError::new("outbox.max_size", "must be at least 1MB")]
            }
            Ok(_) => Vec::new(),
        }
    }

    /// The size limit in bytes (the default when unparsable: validation
    /// reports that).
    pub fn max_bytes(&self) -> u64 {
        parse_size(&self.max_size).unwrap_or(256_000_000)
    }
}

impl InfluxConfig {
    /// Every problem of the section.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let u = self.url.trim();
        if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
            errs.push(ConfigError::new(
                "influx.url",
                format!("{u:?} is not an http(s) URL; write e.g. http://127.0.0.1:8086"),
            ));
        }
        if self.org.trim().is_empty() {
            errs.push(ConfigError::new("influx.org", "is empty"));
        }
        if self.bucket.trim().is_empty() {
            errs.push(ConfigError::new("influx.bucket", "is empty"));
        }
        self.token.check("influx.token", &mut errs);
        if !(1..=50_000).contains(&self.batch) {
            errs.push(ConfigError::new("influx.batch", "must be 1–50000"));
        }
        if self.flush_every.get() < Duration::from_millis(10) {
            errs.push(ConfigError::new(
                "influx.flush_every",
                "must be at least 10ms",
            ));
        }
        errs
    }
}

impl CommandsConfig {
    /// Every problem of the section.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        self.secret.check("commands.secret", &mut errs);
        if self.enabled && !self.secret.is_set() {
            errs.push(ConfigError::new(
                "commands.secret",
                "commands need a shared secret: secret = { file = \"…\" } or { env = \"…\" }",
            ));
        }
        if self.max_age.get() < Duration::from_secs(1) {
            errs.push(ConfigError::new("commands.max_age", "must be at least 1s"));
        }
        errs
    }
}

impl AdminConfig {
    /// Every problem of the section.
    pub fn check(&self) -> Vec<ConfigError> {
        if self.listen.is_empty() || self.listen.parse::<std::net::SocketAddr>().is_ok() {
            Vec::new()
        } else {
            vec![ConfigError::new(
                "admin.listen",
                format!(
                    "{:?} is not an address; write e.g. \"127.0.0.1:9898\" (or \"\" to turn it off)",
                    self.listen
                ),
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_qos_is_accepted_as_an_integer_or_a_string() {
        #[derive(Debug, Deserialize)]
        struct T {
            telemetry_qos: Qos,
        }
        let q = |s: &str| toml::from_str::<T>(s).map(|t| t.telemetry_qos);
        assert_eq!(q("telemetry_qos = 0").unwrap(), Qos::AtMostOnce);
        assert_eq!(q("telemetry_qos = 1").unwrap(), Qos::AtLeastOnce);
        assert_eq!(q("telemetry_qos = \"0\"").unwrap(), Qos::AtMostOnce);
        assert_eq!(q("telemetry_qos = \"1\"").unwrap(), Qos::AtLeastOnce);
        let e = q("telemetry_qos = 2").unwrap_err().to_string();
        assert!(e.contains("write 0 or 1"), "{e}");
        assert!(q("telemetry_qos = \"2\"").is_err());
        assert!(q("telemetry_qos = true").is_err());
    }

    #[test]
    fn broker_urls_parse_with_default_ports_and_clear_errors() {
        assert_eq!(
            parse_broker_url("mqtt://127.0.0.1").unwrap(),
            BrokerUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 1883
            }
        );
        assert_eq!(
            parse_broker_url("mqtts://b.example:9883").unwrap().port,
            9883
        );
        assert!(parse_broker_url("mqtts://b.example").unwrap().tls);
        assert!(
            parse_broker_url("http://x:1883")
                .unwrap_err()
                .contains("not a broker URL")
        );
        assert!(
            parse_broker_url("mqtt://x:port")
                .unwrap_err()
                .contains("port")
        );
        assert!(
            parse_broker_url("mqtt://x:1883/topic")
                .unwrap_err()
                .contains("only host")
        );
    }

    #[test]
    fn broker_urls_with_credentials_are_refused_without_repeating_them() {
        for url in [
            "mqtt://u:secretpass@127.0.0.1:1883",
            "mqtts://u:secretpass@b.example",
            "mqtt://secretpass@b.example",
            "tcp://u:secretpass@b.example:1883/",
            "http://u:secretpass@b.example",
        ] {
            let e = parse_broker_url(url).unwrap_err();
            assert!(!e.contains("secretpass"), "{e}");
            assert!(e.contains("username") && e.contains("password"), "{e}");
        }
        assert_eq!(
            redact_url("mqtt://u:secretpass@b.example:1883"),
            "mqtt://***@b.example:1883"
        );
        assert_eq!(redact_url("mqtt://b.example:1883"), "mqtt://b.example:1883");
        // An @ after the host is not userinfo.
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
    }

    #[test]
    fn command_secrets_shorter_than_32_bytes_are_refused_with_how_to_make_one() {
        for s in ["", "k", &"x".repeat(31)] {
            let e = check_command_secret("[commands] secret", &Secret::new(s)).unwrap_err();
            assert!(e.contains("[commands] secret"), "{e}");
            assert!(e.contains(&format!("{} bytes", s.len())), "{e}");
            assert!(e.contains("openssl rand -hex 32"), "{e}");
        }
        assert!(check_command_secret("x", &Secret::new("x".repeat(32))).is_ok());
        // The message never shows the secret.
        let e = check_command_secret("x", &Secret::new("hunter2")).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_size("256MB").unwrap(), 256_000_000);
        assert_eq!(parse_size("64 MiB").unwrap(), 64 * 1024 * 1024);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(
            parse_size("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
    }

    #[test]
    fn packet_sizes_are_humane_and_bounded() {
        assert_eq!(parse_packet_size("256KiB").unwrap(), 256 * 1024);
        assert_eq!(parse_packet_size(DEFAULT_MAX_PACKET).unwrap(), 1 << 20);
        assert!(
            parse_packet_size("100")
                .unwrap_err()
                .contains("1KiB–256MiB")
        );
        assert!(
            parse_packet_size("1GB")
                .unwrap_err()
                .contains("out of range")
        );
        let mut m = MqttConfig::for_url("mqtt://127.0.0.1");
        assert_eq!(m.max_packet_bytes(), 1 << 20);
        m.max_packet_size = "lots".into();
        let errs = m.check();
        assert!(
            errs.iter()
                .any(|e| e.to_string().contains("mqtt.max_packet_size")),
            "{errs:?}"
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "**REDACTED** **REDACTED**");
        assert_eq!(s.expose(), "hunter2");
    }
}
