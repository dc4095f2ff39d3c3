//! The InfluxDB sink: poll outcomes as InfluxDB line protocol, written to
//! `/api/v2/write` (see `docs/influx.md`).
//!
//! Two halves, kept apart:
//!
//! - [`line`] is the encoder. It is pure (no IO, no clock): one
//!   [`PollOutcome`] becomes at most one line
//!
//!   ```text
//!   pump,device=pump-1,gateway=gw-1,site=hq outlet_pressure=3.25,running=true,run_hours=1234i 1790000000123
//!   ```
//!
//!   The measurement is the device class ([`DeviceClass::as_str`]); the tags
//!   `device`, `gateway` and `site` are written sorted by key (the order
//!   InfluxDB recommends); the fields are the points whose sample has good
//!   quality, in profile order; the timestamp is the poll's completion time
//!   in Unix milliseconds, so the writer asks for `precision=ms`.
//!
//!   Field types stay stable per point, because InfluxDB refuses a whole
//!   batch when a field changes type: floats are written as floats (always
//!   with a fraction or an exponent, never as a bare integer), integers with
//!   the `i` suffix, booleans as `true`/`false`, text as a quoted string.
//!   A sample that cannot be written is left out of the line rather than
//!   written differently: non-finite floats, unsigned values above
//!   `i64::MAX` (they would need the `u` type, which not every server
//!   accepts), and points named like a key the servers reserve (`time`,
//!   `_field`, `_measurement`) or like one of our tags (`device`,
//!   `gateway`, `site`, which InfluxDB 3 refuses as field names of the same
//!   measurement). Line protocol cannot carry a line feed
//!   inside a value, so a CR or LF in text becomes a space.
//!
//!   Escaping follows the line-protocol specification: in the measurement,
//!   commas and spaces; in tag keys, tag values and field keys, commas,
//!   equals signs and spaces; in string field values, double quotes and
//!   backslashes. Each is escaped with a backslash.
//!
//! - [`InfluxWriter`] sends a batch of lines in one request: `POST
//!   {url}/api/v2/write?org=…&bucket=…&precision=ms` with the body as
//!   `text/plain; charset=utf-8` and `Authorization: Token …` when a token is
//!   set (the InfluxDB 2 write API, which InfluxDB 3 and VictoriaMetrics also
//!   serve), over HTTP/1.1 with the same `reqwest` client as the alert
//!   channels (one HTTP stack in the binary: a dedicated InfluxDB client
//!   crate brought a second one, ≈ 2 MB of code). Every request is
//!   bounded by a timeout ([`WRITE_TIMEOUT`] unless changed with
//!   [`InfluxWriter::with_timeout`]). Outcomes are classified by kind, never
//!   by message text ([`WriteError`]):
//!
//!   | answer | result |
//!   |---|---|
//!   | 2xx | `Ok` |
//!   | no answer: refused, reset, DNS, TLS, timeout | `Retry` |
//!   | 408, 429, 5xx | `Retry` |
//!   | 3xx, 401, 403, 404, 405 (wrong address, token or bucket) | `Reject` |
//!   | 413 (batch too large) | `TooLarge` |
//!   | any other 4xx (400 bad line or field type conflict, 422…) | `Refused` |
//!
//!   The caller ([`crate::north::influx_feed`]) keeps a batch and retries
//!   it on `Retry` (the server or the network will recover) and on
//!   `Reject` (a setting is wrong: every batch would meet it, so none is
//!   given up); it splits a batch on `TooLarge`, and sets the lines of a
//!   `Refused` batch aside in the dead-letter table, so that the lines
//!   behind them are written.

use std::fmt::{self, Write as _};
use std::time::Duration;

use gateway_core::config::{InfluxConfig, Resolved, Secret};
use gateway_core::model::{PollOutcome, Value};

#[cfg(doc)]
use gateway_core::model::DeviceClass;

/// How long one write request may take before it is abandoned (and
/// reported as [`WriteError::Retry`]).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Field keys a line cannot carry: the ones the servers reserve (a line
/// with one is refused) and our tag keys (InfluxDB 3 refuses a field named
/// like a tag of the same measurement).
const RESERVED_FIELD_KEYS: [&str; 6] = [
    "time",
    "_field",
    "_measurement",
    "device",
    "gateway",
    "site",
];

/// How much of a server's error text is kept in a message.
const MAX_SERVER_TEXT: usize = 300;

/// `,key=value` for each tag, given sorted by key (as InfluxDB recommends).
/// An empty tag value is not allowed; such a tag is left out.
fn push_tags(tags: &[(&str, &str)], out: &mut String) {
    for (key, value) in tags {
        if value.is_empty() {
            continue;
        }
        out.push(',');
        escape_key(key, out);
        out.push('=');
        escape_key(value, out);
    }
}

/// One `bms_availability` line for a device's state (what its retained MQTT
/// `state` says), for boards of availability over time:
/// `bms_availability,class=pump,device=pump-1,gateway=gw-1,site=hq state="up",up=1i,rolling=0.99,month=0.995,threshold=98.0 1790000000000`.
/// `rolling` and `month` (0–1) are left out while unknown; `up` is 1 when
/// the device is Up, else 0 (a numeric state for graphs).
pub fn availability_line(cfg: &Resolved, v: &crate::wire::StateView, now_ms: i64) -> String {
    let mut out = String::with_capacity(160);
    out.push_str("bms_availability");
    push_tags(
        &[
            ("class", v.class),
            ("device", v.device.as_str()),
            ("gateway", cfg.gateway.as_str()),
            ("site", cfg.site.as_str()),
        ],
        &mut out,
    );
    let _ = write!(
        out,
        " state=\"{}\",up={}i",
        v.state,
        i32::from(v.state == "up")
    );
    for (key, value) in [("rolling", v.rolling), ("month", v.month)] {
        if let Some(x) = value.filter(|x| x.is_finite()) {
            let _ = write!(out, ",{key}=");
            float(x, &mut out);
        }
    }
    out.push_str(",threshold=");
    float(v.threshold, &mut out);
    let _ = write!(out, " {now_ms}");
    out
}

/// One line for one poll outcome (None when no good sample).
///
/// Also `None` when the outcome names a device that `cfg` does not have.
pub fn line(cfg: &Resolved, o: &PollOutcome) -> Option<String> {
    let device = cfg.devices.get(o.device)?;
    let mut fields = String::new();
    for sample in &o.samples {
        if !sample.quality.is_good() {
            continue;
        }
        let (Some(value), Some(point)) = (&sample.value, device.points.get(sample.point)) else {
            continue;
        };
        if RESERVED_FIELD_KEYS.contains(&point.name.as_str()) {
            continue;
        }
        let mark = fields.len();
        if !fields.is_empty() {
            fields.push(',');
        }
        escape_key(&point.name, &mut fields);
        fields.push('=');
        if !field_value(value, &mut fields) {
            fields.truncate(mark);
        }
    }
    if fields.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(fields.len() + 64);
    escape_measurement(device.class.as_str(), &mut out);
    push_tags(
        &[
            ("device", device.id.as_str()),
            ("gateway", cfg.gateway.as_str()),
            ("site", cfg.site.as_str()),
        ],
        &mut out,
    );
    out.push(' ');
    out.push_str(&fields);
    // Writing to a String cannot fail.
    let _ = write!(out, " {}", o.ts_ms);
    Some(out)
}

/// Appends a field value; false (and possibly a partial write, which the
/// caller truncates) when the value cannot be written.
fn field_value(value: &Value, out: &mut String) -> bool {
    match value {
        Value::Float(f) => return float(*f, out),
        Value::Int(i) => {
            let _ = write!(out, "{i}i");
        }
        Value::UInt(u) => {
            if i64::try_from(*u).is_err() {
                return false;
            }
            let _ = write!(out, "{u}i");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Text(t) => {
            out.push('"');
            escape_string(t, out);
            out.push('"');
        }
    }
    true
}

/// Appends a finite float in a form every line-protocol parser reads as a
/// float: Rust's shortest round-trip form, which always has a fraction or an
/// exponent (`3.0`, `0.1`, `1e-7`), with the exponent's sign written out
/// (`1e+16`) as in the specification's examples. False for NaN and ±∞.
fn float(f: f64, out: &mut String) -> bool {
    if !f.is_finite() {
        return false;
    }
    let text = format!("{f:?}");
    match text.split_once('e') {
        Some((mantissa, exp)) if !exp.starts_with('-') => {
            let _ = write!(out, "{mantissa}e+{exp}");
        }
        _ => out.push_str(&text),
    }
    true
}

/// Measurement: commas and spaces are escaped.
fn escape_measurement(s: &str, out: &mut String) {
    escape(s, &[',', ' '], out);
}

/// Tag keys, tag values and field keys: commas, equals signs and spaces
/// are escaped.
fn escape_key(s: &str, out: &mut String) {
    escape(s, &[',', '=', ' '], out);
}

/// String field values: double quotes and backslashes are escaped; CR and
/// LF, which line protocol cannot carry in a value, become spaces.
fn escape_string(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
}

fn escape(s: &str, special: &[char], out: &mut String) {
    for c in s.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Why a write failed, and what sending the same batch again can do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// worth retrying as it is (network, 5xx, 408, 429)
    #[error("{0}")]
    Retry(String),
    /// the request is wrong whatever it carries (redirect, 401, 403, 404,
    /// 405: the address, token or bucket): every batch would meet it
    #[error("{0}")]
    Reject(String),
    /// the server refused these lines (400, 422 and other 4xx): the same
    /// lines would be refused again
    #[error("{message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's reason, with what to do.
        message: String,
    },
    /// 413: the batch is too large for the server; smaller ones may pass
    #[error("{0}")]
    TooLarge(String),
}

impl WriteError {
    /// True for [`WriteError::Retry`].
    pub fn is_retry(&self) -> bool {
        matches!(self, WriteError::Retry(_))
    }
}

/// Writes batches of lines to one bucket of an InfluxDB 2 compatible
/// server (`POST {url}/api/v2/write?org=…&bucket=…&precision=ms`).
pub struct InfluxWriter {
    client: reqwest::Client,
    /// `{url}/api/v2/write` with org, bucket and precision.
    endpoint: reqwest::Url,
    /// `Token …`, marked sensitive (never printed by the HTTP stack).
    authorization: Option<reqwest::header::HeaderValue>,
    url: String,
    org: String,
    bucket: String,
    timeout: Duration,
}

impl fmt::Debug for InfluxWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfluxWriter")
            .field("url", &self.url)
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl InfluxWriter {
    /// A writer for `[influx]`, with the token read from its source (`None`:
    /// no `Authorization` header, for servers that do not check it).
    /// Nothing is sent yet. Errors: the URL is not an `http(s)://host[:port]`
    /// base URL, or the token cannot go into an HTTP header.
    pub fn new(cfg: &InfluxConfig, token: Option<Secret>) -> Result<InfluxWriter, String> {
        let url = cfg.url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&url).map_err(|e| {
            format!("influx.url {url:?} is not a URL ({e}); write e.g. http://127.0.0.1:8086")
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "influx.url {url:?} is not an http(s) URL with a host; write e.g. http://127.0.0.1:8086"
            ));
        }
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err(format!(
                "influx.url {url:?}: give only scheme, host and port (the gateway always \
                 writes to /api/v2/write at the root of the server)"
            ));
        }
        let token = token.as_ref().map(Secret::expose).unwrap_or("");
        let bad_token = || {
            "the InfluxDB token has characters that cannot go into an HTTP header \
             (control or non-ASCII characters); check the token file or variable"
                .to_owned()
        };
        if !token.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
            return Err(bad_token());
        }
        let authorization = if token.is_empty() {
            None
        } else {
            let mut v = reqwest::header::HeaderValue::from_str(&format!("Token {token}"))
                .map_err(|_| bad_token())?;
            v.set_sensitive(true);
            Some(v)
        };
        let mut endpoint = parsed;
        endpoint.set_path("/api/v2/write");
        endpoint
            .query_pairs_mut()
            .append_pair("org", &cfg.org)
            .append_pair("bucket", &cfg.bucket)
            .append_pair("precision", "ms");
        // Built without a crypto provider: use ring, like MQTT and the alerts.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("bms-gateway/", env!("CARGO_PKG_VERSION")))
            // A redirect is reported (the module doc's table), not followed:
            // a POST would become a GET and the batch would be lost.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot set up the HTTP client for InfluxDB at {url}: {e}"))?;
        Ok(InfluxWriter {
            client,
            endpoint,
            authorization,
            url,
            org: cfg.org.clone(),
            bucket: cfg.bucket.clone(),
            timeout: WRITE_TIMEOUT,
        })
    }

    /// The same writer with another request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> InfluxWriter {
        self.timeout = timeout;
        self
    }

    /// Writes lines ('\n'-separated) in one request.
    ///
    /// An empty batch sends nothing and succeeds.
    pub async fn write(&self, lines: &str) -> Result<(), WriteError> {
        if lines.trim().is_empty() {
            return Ok(());
        }
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(lines.to_owned());
        if let Some(a) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, a.clone());
        }
        let exchange = async {
            let response = request.send().await?;
            let status = response.status();
            if status.is_success() {
                return Ok(None);
            }
            // The server's reason, for the log; a body that cannot be read
            // leaves the status alone to speak.
            let text = response.text().await.unwrap_or_default();
            Ok(Some((status, text)))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some((status, text)))) => refused(&self.url, status, &text),
            Ok(Err(e)) => unreachable_server(&self.url, &e),
            Err(_) => Err(WriteError::Retry(format!(
                "InfluxDB at {} did not answer within {} ms; the batch is kept and retried",
                self.url,
                self.timeout.as_millis()
            ))),
        }
    }
}

/// Sorts a refusal (any status but 2xx) into retry or reject (see the
/// module doc).
fn refused(url: &str, status: reqwest::StatusCode, text: &str) -> Result<(), WriteError> {
    let code = status.as_u16();
    let text = shorten(text.trim());
    let said = if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    };
    if code == 408 || code == 429 || status.is_server_error() {
        return Err(WriteError::Retry(format!(
            "InfluxDB at {url} answered {status}{said}; the batch is kept and retried"
        )));
    }
    let what_to_do = match code {
        401 | 403 => "check [influx] token and that it may write to the bucket",
        404 => "check [influx] org and bucket, and that the server offers /api/v2/write",
        405 => "check [influx] url: the server does not take writes there",
        413 => {
            return Err(WriteError::TooLarge(format!(
                "InfluxDB at {url} refused the write with {status}{said}; the batch is split \
                 (lower [influx] batch to avoid it)"
            )));
        }
        300..=399 => "set [influx] url to the address the server redirects to",
        _ => {
            return Err(WriteError::Refused {
                status: code,
                message: format!(
                    "InfluxDB at {url} refused the lines with {status}{said}; they are set aside \
                     (gateway dead-letters shows them)"
                ),
            });
        }
    };
    Err(WriteError::Reject(format!(
        "InfluxDB at {url} refused the write with {status}{said}; {what_to_do}"
    )))
}

/// No answer (refused, reset, DNS, TLS): retry, unless the request itself
/// could not be built.
fn unreachable_server(url: &str, source: &reqwest::Error) -> Result<(), WriteError> {
    let mut message = source.to_string();
    let mut cause = std::error::Error::source(source);
    while let Some(c) = cause {
        let _ = write!(message, ": {c}");
        cause = c.source();
    }
    if source.is_builder() {
        Err(WriteError::Reject(format!(
            "cannot build a write request for InfluxDB at {url}: {message}"
        )))
    } else {
        Err(WriteError::Retry(format!(
            "cannot reach InfluxDB at {url}: {message}; the batch is kept and retried"
        )))
    }
}

/// At most [`MAX_SERVER_TEXT`] characters of a server's text.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_SERVER_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gateway_core::config::load::load;
    use gateway_core::model::{BadReason, PollClass, Quality, Sample};

    use super::*;

    const CONFIG: &str = r#"
site = "hq"
gateway = "gw-1"

[[bus]]
id = "line-1"
kind = "rtu"
port = "/dev/null"

[[device]]
id = "pump-1"
name_zh = "1号泵"
class = "pump"
bus = "line-1"
unit = 1
profile = "mixed"

[[device]]
id = "fire-1"
name_zh = "消防主机"
class = "fire_alarm"
bus = "line-1"
unit = 2
profile = "mixed"
"#;

    /// One point of each kind the encoder distinguishes.
    const PROFILE: &str = r#"
description = "every value type"

[[point]]
name = "pressure"
area = "holding"
address = 0
type = "f32"

[[point]]
name = "run_hours"
area = "holding"
address = 2
type = "i32"

[[point]]
name = "starts"
area = "holding"
address = 4
type = "u64"

[[point]]
name = "running"
area = "coil"
address = 0
type = "bool"

[[point]]
name = "model"
area = "holding"
address = 8
type = "string"
length = 8

[[point]]
name = "time"
area = "holding"
address = 12
type = "u16"
"#;

    fn resolved() -> Resolved {
        let mut profiles = BTreeMap::new();
        profiles.insert(
            "mixed".to_owned(),
            ("mixed.toml".to_owned(), PROFILE.to_owned()),
        );
        load("test.toml", CONFIG, &profiles, &|_| None).expect("valid config")
    }

    fn good(point: usize, value: Value) -> Sample {
        Sample {
            point,
            value: Some(value),
            quality: Quality::Good,
        }
    }

    fn outcome(device: usize, samples: Vec<Sample>) -> PollOutcome {
        PollOutcome {
            device,
            ts_ms: 1_790_000_000_123,
            class: PollClass::Full,
            samples,
            failure: None,
            requests: 1,
            failed_requests: 0,
            elapsed_us: 1000,
        }
    }

    #[test]
    fn the_availability_line_carries_state_figures_and_target() {
        let cfg = resolved();
        let mut v = crate::wire::StateView {
            device: "pump 1".into(),
            name_zh: "水泵".into(),
            name_en: "Pump".into(),
            location: String::new(),
            location_en: String::new(),
            labels: Default::default(),
            class: "pump",
            state: "down",
            since_ms: 0,
            reason: Some("comms".into()),
            rolling: Some(0.5),
            rolling_window_s: 60,
            month: None,
            month_up_ms: None,
            month_down_ms: None,
            threshold: 98.0,
            alarms: Vec::new(),
        };
        let l = availability_line(&cfg, &v, 1_790_000_000_000);
        assert_eq!(
            l,
            format!(
                "bms_availability,class=pump,device=pump\\ 1,gateway={},site={} state=\"down\",up=0i,rolling=0.5,threshold=98.0 1790000000000",
                cfg.gateway, cfg.site
            )
        );
        v.state = "up";
        v.month = Some(1.0);
        let l = availability_line(&cfg, &v, 1);
        assert!(
            l.contains(" state=\"up\",up=1i,rolling=0.5,month=1.0,threshold=98.0 1"),
            "{l}"
        );
    }

    #[test]
    fn writes_every_value_type_with_sorted_tags_and_a_millisecond_timestamp() {
        let cfg = resolved();
        let o = outcome(
            0,
            vec![
                good(0, Value::Float(3.25)),
                good(1, Value::Int(-12)),
                good(2, Value::UInt(1234)),
                good(3, Value::Bool(true)),
                good(4, Value::Text("KSB 50".into())),
            ],
        );
        assert_eq!(
            line(&cfg, &o).unwrap(),
            "pump,device=pump-1,gateway=gw-1,site=hq \
             pressure=3.25,run_hours=-12i,starts=1234i,running=true,model=\"KSB 50\" \
             1790000000123"
        );
    }

    #[test]
    fn measurement_is_the_device_class() {
        let cfg = resolved();
        let o = outcome(1, vec![good(3, Value::Bool(false))]);
        assert_eq!(
            line(&cfg, &o).unwrap(),
            "fire_alarm,device=fire-1,gateway=gw-1,site=hq running=false 1790000000123"
        );
    }

    #[test]
    fn floats_always_read_as_floats() {
        let cases = [
            (3.0, "3.0"),
            (-0.5, "-0.5"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e300, "1.5e+300"),
            (1e-7, "1e-7"),
            (-2.5e-10, "-2.5e-10"),
            (f64::MAX, "1.7976931348623157e+308"),
        ];
        for (f, want) in cases {
            let mut out = String::new();
            assert!(float(f, &mut out));
            assert_eq!(out, want, "{f}");
            assert_eq!(out.parse::<f64>().unwrap(), f, "{out} round-trips");
        }
    }

    #[test]
    fn non_finite_floats_and_huge_unsigned_values_are_left_out() {
        let cfg = resolved();
        let o = outcome(
            0,
            vec![
                good(0, Value::Float(f64::NAN)),
                good(1, Value::Int(7)),
                good(2, Value::UInt(u64::MAX)),
                good(0, Value::Float(f64::INFINITY)),
            ],
        );
        assert_eq!(
            line(&cfg, &o).unwrap(),
            "pump,device=pump-1,gateway=gw-1,site=hq run_hours=7i 1790000000123"
        );
        let o = outcome(0, vec![good(0, Value::Float(f64::NEG_INFINITY))]);
        assert_eq!(line(&cfg, &o), None);
        let o = outcome(0, vec![good(2, Value::UInt(i64::MAX as u64))]);
        assert!(
            line(&cfg, &o)
                .unwrap()
                .contains(" starts=9223372036854775807i ")
        );
    }

    #[test]
    fn no_good_sample_gives_no_line() {
        let cfg = resolved();
        let bad = |point, reason| Sample {
            point,
            value: Some(Value::Float(99.0)),
            quality: Quality::Bad(reason),
        };
        let o = outcome(
            0,
            vec![
                bad(0, BadReason::OutOfRange),
                bad(1, BadReason::NotRead),
                Sample {
                    point: 3,
                    value: None,
                    quality: Quality::Good,
                },
            ],
        );
        assert_eq!(line(&cfg, &o), None);
        assert_eq!(line(&cfg, &outcome(0, Vec::new())), None);
        // A device index the configuration does not have.
        assert_eq!(
            line(&cfg, &outcome(9, vec![good(0, Value::Float(1.0))])),
            None
        );
        // A bad sample next to a good one: only the good one is written.
        let o = outcome(
            0,
            vec![bad(0, BadReason::OutOfRange), good(1, Value::Int(5))],
        );
        assert_eq!(
            line(&cfg, &o).unwrap(),
            "pump,device=pump-1,gateway=gw-1,site=hq run_hours=5i 1790000000123"
        );
    }

    #[test]
    fn reserved_field_keys_and_tag_keys_are_left_out() {
        let mut cfg = resolved();
        let o = outcome(0, vec![good(5, Value::UInt(3)), good(1, Value::Int(1))]);
        assert_eq!(
            line(&cfg, &o).unwrap(),
            "pump,device=pump-1,gateway=gw-1,site=hq run_hours=1i 1790000000123"
        );
        std::sync::Arc::make_mut(&mut cfg.devices[0].points)[0].name = "site".into();
        let o = outcome(0, vec![good(0, Value::Float(1.0)), good(1, Value::Int(1))]);
        assert_eq!(
            line(&cfg, &o).unwrap(),
            "pump,device=pump-1,gateway=gw-1,site=hq run_hours=1i 1790000000123"
        );
    }

    #[test]
    fn escapes_each_part_by_its_own_rules() {
        let mut cfg = resolved();
        // Validation keeps ids and names plain; the encoder escapes anyway.
        cfg.site = "my site,a=b".into();
        cfg.gateway = "gw\\1".into();
        cfg.devices[0].id = "p=1 x".into();
        std::sync::Arc::make_mut(&mut cfg.devices[0].points)[0].name = "out pressure,bar=x".into();
        let o = outcome(
            0,
            vec![
                good(0, Value::Float(1.5)),
                good(4, Value::Text("say \"hi\" C:\\x, a=b\r\nnext".into())),
            ],
        );
        assert_eq!(
            line(&cfg, &o).unwrap(),
            r#"pump,device=p\=1\ x,gateway=gw\1,site=my\ site\,a\=b out\ pressure\,bar\=x=1.5,model="say \"hi\" C:\\x, a=b  next" 1790000000123"#
        );

        let mut m = String::new();
        escape_measurement("a b,c=d", &mut m);
        assert_eq!(m, r"a\ b\,c=d");
    }

    #[test]
    fn empty_tag_values_are_left_out() {
        let mut cfg = resolved();
        cfg.gateway = String::new();
        let o = outcome(0, vec![good(1, Value::Int(1))]);
        assert_eq!(
            line(&cfg, &o).unwrap(),
            "pump,device=pump-1,site=hq run_hours=1i 1790000000123"
        );
    }

    fn influx(url: &str) -> InfluxConfig {
        InfluxConfig {
            enabled: true,
            url: url.to_owned(),
            org: "o".to_owned(),
            bucket: "b".to_owned(),
            token: Default::default(),
            batch: 5000,
            flush_every: gateway_core::HumanDuration::from_secs(1),
        }
    }

    #[test]
    fn writer_refuses_urls_and_tokens_it_could_not_use() {
        assert!(InfluxWriter::new(&influx("http://127.0.0.1:8086"), None).is_ok());
        assert!(InfluxWriter::new(&influx("https://influx.example:443/"), None).is_ok());
        let err = InfluxWriter::new(&influx("http://"), None).unwrap_err();
        assert!(err.contains("influx.url"), "{err}");
        let err = InfluxWriter::new(&influx("ftp://x:21"), None).unwrap_err();
        assert!(err.contains("http(s)"), "{err}");
        let err = InfluxWriter::new(&influx("http://x:8086/influx"), None).unwrap_err();
        assert!(err.contains("only scheme, host and port"), "{err}");
        let err = InfluxWriter::new(&influx("http://x:99999"), None).unwrap_err();
        assert!(err.contains("not a URL"), "{err}");
        let err =
            InfluxWriter::new(&influx("http://x:8086"), Some(Secret::new("a\nb"))).unwrap_err();
        assert!(err.contains("token"), "{err}");
        assert!(!err.contains("a\nb"), "the token is never shown");
    }

    #[test]
    fn writer_debug_shows_no_token() {
        let w = InfluxWriter::new(&influx("http://x:8086"), Some(Secret::new("s3cr3t"))).unwrap();
        let shown = format!("{w:?}");
        assert!(
            shown.contains("http://x:8086") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn long_server_texts_are_shortened_on_a_character_boundary() {
        let text = "错".repeat(400);
        let short = shorten(&text);
        assert_eq!(short.chars().count(), MAX_SERVER_TEXT + 1);
        assert_eq!(shorten("ok"), "ok");
    }
}
