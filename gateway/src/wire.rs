//! The MQTT message schema: topics and payloads, in one place. Documented
//! with an example of each in `docs/mqtt.md`; a test there parses every
//! example with these builders' output shape.
//!
//! Every payload is a JSON object (UTF-8) with `seq` (per gateway, strictly
//! increasing, surviving restarts) and `ts` (Unix ms when the message was
//! made). Times inside are Unix ms; availability figures are fractions 0–1,
//! thresholds per cent.

use gateway_core::config::{Resolved, ResolvedDevice};
use gateway_core::model::{PollOutcome, Quality, Value};
use gateway_core::state::{HardAlarm, Transition, UnixMs};
use gateway_core::tickets::TicketEvent;
use serde_json::{Map, Value as Json, json};

use crate::output::bad_reason_name;

/// The topics of one gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    base: String,
}

impl Topics {
    /// Topics under `{prefix}/{site}/{gateway}`.
    pub fn new(prefix: &str, site: &str, gateway: &str) -> Topics {
        Topics {
            base: format!("{prefix}/{site}/{gateway}"),
        }
    }
    /// `…/status` (retained; also the last will).
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }
    /// `…/{device}/telemetry`.
    pub fn telemetry(&self, device: &str) -> String {
        format!("{}/{device}/telemetry", self.base)
    }
    /// `…/{device}/state` (retained).
    pub fn state(&self, device: &str) -> String {
        format!("{}/{device}/state", self.base)
    }
    /// `…/{device}/event`.
    pub fn event(&self, device: &str) -> String {
        format!("{}/{device}/event", self.base)
    }
    /// `…/tickets/{id}` (retained).
    pub fn ticket(&self, id: u64) -> String {
        format!("{}/tickets/{id}", self.base)
    }
    /// `…/alert`: on-call alerts (issue #6).
    pub fn alert(&self) -> String {
        format!("{}/alert", self.base)
    }
    /// `…/alarm`.
    pub fn alarm(&self) -> String {
        format!("{}/alarm", self.base)
    }
    /// `…/cmd/#`, the commands filter.
    pub fn commands(&self) -> String {
        format!("{}/cmd/#", self.base)
    }
    /// `…/cmd/reply`.
    pub fn reply(&self) -> String {
        format!("{}/cmd/reply", self.base)
    }
    /// The part after `…/cmd/` of a command topic, if it is one.
    pub fn command_op<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.base.as_str())?
            .strip_prefix("/cmd/")
            .filter(|op| *op != "reply")
    }
}

/// Which gateway this is (for `status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Site id.
    pub site: String,
    /// Gateway id.
    pub gateway: String,
    /// The site's display names (`site_name_zh`, `site_name_en`), if configured.
    pub site_name_zh: Option<String>,
    /// English.
    pub site_name_en: Option<String>,
}

impl Identity {
    /// The identity of a configuration.
    pub fn of(cfg: &Resolved) -> Identity {
        Identity {
            site: cfg.site.clone(),
            gateway: cfg.gateway.clone(),
            site_name_zh: cfg.raw.site_name_zh.clone(),
            site_name_en: cfg.raw.site_name_en.clone(),
        }
    }
}

/// A payload without its `seq` yet (given at the outbox append).
pub type Body = Map<String, Json>;

/// Adds `seq` and serialises.
pub fn with_seq(mut body: Body, seq: u64) -> Vec<u8> {
    body.insert("seq".to_owned(), json!(seq));
    serde_json::to_vec(&Json::Object(body)).unwrap_or_default()
}

/// A decoded value as JSON (`null` for a non-finite float).
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::String(s.clone()),
    }
}

/// `status`: `{"state":"online"|"offline","version","started_at","site","gateway","site_name_zh","site_name_en","ts","seq"}`
/// (the site names only when configured).
pub fn status(cfg: &Identity, online: bool, started_ms: UnixMs, now_ms: UnixMs) -> Body {
    let mut b = Map::new();
    b.insert("ts".into(), json!(now_ms));
    b.insert(
        "state".into(),
        json!(if online { "online" } else { "offline" }),
    );
    b.insert("site".into(), json!(cfg.site));
    b.insert("gateway".into(), json!(cfg.gateway));
    if let Some(n) = &cfg.site_name_zh {
        b.insert("site_name_zh".into(), json!(n));
    }
    if let Some(n) = &cfg.site_name_en {
        b.insert("site_name_en".into(), json!(n));
    }
    b.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    b.insert("started_at".into(), json!(started_ms));
    b
}

/// `telemetry` of the samples `which` (indices into `o.samples`; all when
/// `None`): `{"ts","device","class","points":{name:value},"units":{name:unit},"quality":{name:reason}}`.
/// `quality` lists only points that are not good (their value is null or
/// the raw out-of-range value).
pub fn telemetry(dev: &ResolvedDevice, o: &PollOutcome, which: Option<&[usize]>) -> Body {
    let mut points = Map::new();
    let mut units = Map::new();
    let mut quality = Map::new();
    let mut add = |i: usize| {
        let Some(s) = o.samples.get(i) else { return };
        let Some(p) = dev.points.get(s.point) else {
            return;
        };
        points.insert(
            p.name.clone(),
            s.value.as_ref().map_or(Json::Null, value_json),
        );
        if !p.unit.is_empty() {
            units.insert(p.name.clone(), json!(p.unit));
        }
        if let Quality::Bad(r) = s.quality {
            quality.insert(p.name.clone(), json!(bad_reason_name(r)));
        }
    };
    match which {
        Some(idx) => idx.iter().copied().for_each(&mut add),
        None => (0..o.samples.len()).for_each(&mut add),
    }
    let mut b = Map::new();
    b.insert("ts".into(), json!(o.ts_ms));
    b.insert("device".into(), json!(dev.id));
    b.insert("class".into(), json!(dev.class.as_str()));
    b.insert("points".into(), Json::Object(points));
    b.insert("units".into(), Json::Object(units));
    b.insert("quality".into(), Json::Object(quality));
    b
}

/// A payload serialised up to its `seq`: `bytes[..split]` ends with
/// `"seq":`, `bytes[split..]` follows the number. Written straight into
/// bytes (no [`serde_json::Value`]), byte for byte what [`with_seq`] makes
/// of the same message (keys in alphabetical order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    bytes: Vec<u8>,
    split: usize,
}

impl Encoded {
    /// `body` serialised now, its `seq` left to fill in: byte for byte
    /// what [`with_seq`] makes of it later, but held as bytes instead of a
    /// tree of [`serde_json::Value`] maps (at start every device's `state`
    /// waits for its seq at once: their maps were megabytes of the peak
    /// heap).
    pub fn from_body(mut body: Body) -> Encoded {
        // The key goes where `with_seq` puts it (the map's own order);
        // its value is never written.
        body.insert("seq".to_owned(), Json::Null);
        let mut bytes = Vec::with_capacity(256);
        let mut split = 0;
        bytes.push(b'{');
        for (i, (k, v)) in body.iter().enumerate() {
            if i > 0 {
                bytes.push(b',');
            }
            let _ = serde_json::to_writer(&mut bytes, k);
            bytes.push(b':');
            if k == "seq" {
                split = bytes.len();
            } else {
                let _ = serde_json::to_writer(&mut bytes, v);
            }
        }
        bytes.push(b'}');
        Encoded { bytes, split }
    }

    /// The payload with `seq`.
    pub fn with_seq(&self, seq: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + 20);
        out.extend_from_slice(&self.bytes[..self.split]);
        put_num(&mut out, seq);
        out.extend_from_slice(&self.bytes[self.split..]);
        out
    }

    /// Bytes without the seq.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for an empty payload (never made by the encoders).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A JSON string (escaped as serde_json escapes it).
fn put_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A number or other plain value as serde_json writes it (integers with
/// itoa, finite floats with ryu, a non-finite float as null).
fn put_num<T: serde::Serialize>(out: &mut Vec<u8>, v: T) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &v);
}

fn put_value(out: &mut Vec<u8>, v: Option<&Value>) {
    match v {
        None => out.extend_from_slice(b"null"),
        Some(Value::Bool(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Some(Value::Int(i)) => put_num(out, *i),
        Some(Value::UInt(u)) => put_num(out, *u),
        // A non-finite float is null, as `value_json` makes it.
        Some(Value::Float(f)) => put_num(out, *f),
        Some(Value::Text(s)) => put_str(out, s),
    }
}

/// Encodes telemetry without building a [`Body`]: the same bytes as
/// `with_seq(telemetry(dev, o, which), seq)`. Keeps, per device, its
/// points' order by name (the order of a JSON object's keys).
#[derive(Debug, Default)]
pub struct TelemetryEncoder {
    /// Per device index: each point's rank among the device's point names,
    /// and the point table it was made for (its address: a reloaded
    /// configuration has new tables). Only the order of keys depends on it;
    /// names and values are always read from the table given.
    ranks: Vec<Option<(usize, Vec<u32>)>>,
    /// Selected samples as (rank, sample index), reused.
    order: Vec<(u32, usize)>,
    /// Reused output buffer.
    buf: Vec<u8>,
}

impl TelemetryEncoder {
    fn ranks(&mut self, index: usize, dev: &ResolvedDevice) -> &[u32] {
        if self.ranks.len() <= index {
            self.ranks.resize(index + 1, None);
        }
        let slot = &mut self.ranks[index];
        let table = std::sync::Arc::as_ptr(&dev.points) as usize;
        let stale = slot
            .as_ref()
            .is_none_or(|(t, r)| *t != table || r.len() != dev.points.len());
        if stale {
            let mut by_name: Vec<usize> = (0..dev.points.len()).collect();
            by_name.sort_by(|a, b| dev.points[*a].name.cmp(&dev.points[*b].name));
            let mut ranks = vec![0u32; dev.points.len()];
            for (rank, p) in by_name.into_iter().enumerate() {
                ranks[p] = u32::try_from(rank).unwrap_or(u32::MAX);
            }
            *slot = Some((table, ranks));
        }
        slot.as_ref().map_or(&[][..], |(_, r)| r.as_slice())
    }

    /// Forgets the cached orders (the configuration was reloaded).
    pub fn reset(&mut self) {
        self.ranks.clear();
    }

    /// Telemetry of the samples `which` of `o` (all when `None`), see
    /// [`telemetry`].
    pub fn telemetry(
        &mut self,
        dev: &ResolvedDevice,
        o: &PollOutcome,
        which: Option<&[usize]>,
    ) -> Encoded {
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        {
            let ranks = self.ranks(o.device, dev);
            let mut add = |i: usize| {
                let Some(s) = o.samples.get(i) else { return };
                if let Some(r) = ranks.get(s.point) {
                    order.push((*r, i));
                }
            };
            match which {
                Some(idx) => idx.iter().copied().for_each(&mut add),
                None => (0..o.samples.len()).for_each(&mut add),
            }
        }
        // Stable: of two samples of one point the last wins, as in a map.
        order.sort_by_key(|(r, _)| *r);
        order.reverse();
        order.dedup_by_key(|(r, _)| *r);
        order.reverse();
        let out = &mut self.buf;
        out.clear();
        out.extend_from_slice(b"{\"class\":");
        put_str(out, dev.class.as_str());
        out.extend_from_slice(b",\"device\":");
        put_str(out, &dev.id);
        out.extend_from_slice(b",\"points\":{");
        let mut first = true;
        for &(_, i) in &order {
            let s = &o.samples[i];
            let p = &dev.points[s.point];
            if !first {
                out.push(b',');
            }
            first = false;
            put_str(out, &p.name);
            out.push(b':');
            put_value(out, s.value.as_ref());
        }
        out.extend_from_slice(b"},\"quality\":{");
        let mut first = true;
        for &(_, i) in &order {
            let s = &o.samples[i];
            if let Quality::Bad(r) = s.quality {
                if !first {
                    out.push(b',');
                }
                first = false;
                put_str(out, &dev.points[s.point].name);
                out.push(b':');
                put_str(out, &bad_reason_name(r));
            }
        }
        out.extend_from_slice(b"},\"seq\":");
        let split = out.len();
        out.extend_from_slice(b",\"ts\":");
        put_num(out, o.ts_ms);
        out.extend_from_slice(b",\"units\":{");
        let mut first = true;
        for &(_, i) in &order {
            let p = &dev.points[o.samples[i].point];
            if !p.unit.is_empty() {
                if !first {
                    out.push(b',');
                }
                first = false;
                put_str(out, &p.name);
                out.push(b':');
                put_str(out, &p.unit);
            }
        }
        out.extend_from_slice(b"}}");
        let enc = Encoded {
            bytes: out.clone(),
            split,
        };
        self.order = order;
        enc
    }
}

/// What a device's retained `state` says.
#[derive(Clone, Debug, PartialEq)]
pub struct StateView {
    /// Device id.
    pub device: String,
    /// Class name.
    pub class: &'static str,
    /// Display name in Chinese and English, and where the device is (for
    /// consumers such as the dashboard, which never see the configuration).
    pub name_zh: String,
    /// Display name in English.
    pub name_en: String,
    /// Location text from the configuration (may be empty).
    pub location: String,
    /// The location in English (`location` when none is configured).
    pub location_en: String,
    /// Display labels of the device's points and fault rules.
    pub labels: std::sync::Arc<gateway_core::config::Labels>,
    /// `up`, `down`, `maintenance`, `unknown`.
    pub state: &'static str,
    /// Since when.
    pub since_ms: UnixMs,
    /// Why (`comms`, `rule:…`, `maintenance:…`, `startup`).
    pub reason: Option<String>,
    /// Rolling availability 0–1 (None: no Up/Down time in the window).
    pub rolling: Option<f64>,
    /// The rolling window in seconds.
    pub rolling_window_s: i64,
    /// Month-to-date availability 0–1.
    pub month: Option<f64>,
    /// Month-to-date Up time, ms (what `month` is made of).
    pub month_up_ms: Option<i64>,
    /// Month-to-date Down time, ms.
    pub month_down_ms: Option<i64>,
    /// Target, per cent.
    pub threshold: f64,
    /// The device's hard alarms active now, in the order of its points.
    pub alarms: Vec<ActiveAlarm>,
}

/// A hard alarm active now, as the retained `state` carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveAlarm {
    /// The critical point's name.
    pub point: String,
    /// When it became active (Unix ms).
    pub since_ms: UnixMs,
}

/// `state`: `{"ts","device","class","name_zh","name_en","location","location_en","state","since","reason","reason_label":[zh,en],"availability":{"rolling","rolling_window_s","month","month_up_s","month_down_s","threshold","below"},"alarms":[{"point","since"}],"labels":{"points":{name:[zh,en]},"rules":{name:[zh,en]}}}`.
///
/// `location_en`, `reason_label` (the label of a `rule:…` reason, absent
/// otherwise) and `labels` are for display; a consumer that predates them
/// ignores them, one that needs them treats their absence as "no labels".
///
/// `alarms` is always present (empty when none is active): being retained,
/// it tells a consumer that starts later which hard alarms are active,
/// which the non-retained `alarm` messages cannot.
pub fn state(v: &StateView, now_ms: UnixMs) -> Body {
    let below = [v.rolling, v.month]
        .into_iter()
        .flatten()
        .any(|a| a < v.threshold / 100.0);
    let mut b = Map::new();
    b.insert("ts".into(), json!(now_ms));
    b.insert("device".into(), json!(v.device));
    b.insert("class".into(), json!(v.class));
    b.insert("name_zh".into(), json!(v.name_zh));
    b.insert("name_en".into(), json!(v.name_en));
    b.insert("location".into(), json!(v.location));
    b.insert("location_en".into(), json!(v.location_en));
    b.insert("state".into(), json!(v.state));
    b.insert("since".into(), json!(v.since_ms));
    b.insert("reason".into(), json!(v.reason));
    if let Some(l) = v
        .reason
        .as_deref()
        .and_then(|r| r.strip_prefix("rule:"))
        .and_then(|r| v.labels.rules.get(r))
    {
        b.insert("reason_label".into(), json!([l.zh, l.en]));
    }
    b.insert(
        "availability".into(),
        json!({
            "rolling": v.rolling,
            "rolling_window_s": v.rolling_window_s,
            "month": v.month,
            "month_up_s": v.month_up_ms.map(|m| m / 1000),
            "month_down_s": v.month_down_ms.map(|m| m / 1000),
            "threshold": v.threshold,
            "below": below,
        }),
    );
    b.insert(
        "alarms".into(),
        Json::Array(
            v.alarms
                .iter()
                .map(|a| json!({"point": a.point, "since": a.since_ms}))
                .collect(),
        ),
    );
    b.insert("labels".into(), labels_json(&v.labels));
    b
}

/// `{"points":{name:[zh,en]},"rules":{name:[zh,en]}}`.
fn labels_json(l: &gateway_core::config::Labels) -> Json {
    let pairs = |m: &std::collections::BTreeMap<String, gateway_core::config::Label>| {
        Json::Object(
            m.iter()
                .map(|(k, l)| (k.clone(), json!([l.zh, l.en])))
                .collect(),
        )
    };
    json!({"points": pairs(&l.points), "rules": pairs(&l.rules)})
}

/// `event` of a transition: `{"ts","type":"transition","device","from","to","reason","at"}`.
pub fn transition(t: &Transition, now_ms: UnixMs) -> Body {
    let mut b = Map::new();
    b.insert("ts".into(), json!(now_ms));
    b.insert("type".into(), json!("transition"));
    b.insert("device".into(), json!(t.device));
    b.insert("from".into(), json!(t.from.as_str()));
    b.insert("to".into(), json!(t.to.as_str()));
    b.insert("reason".into(), json!(t.reason));
    b.insert("at".into(), json!(t.at_ms));
    b
}

/// `event` of a threshold crossing: `{"ts","type":"threshold","device","crossing":"below"|"recovered","availability","threshold","at"}`.
pub fn threshold(
    device: &str,
    crossing: &gateway_core::ledger::Crossing,
    at_ms: UnixMs,
    now_ms: UnixMs,
) -> Body {
    let (below, a, t) = crossing.parts();
    let word = if below { "below" } else { "recovered" };
    let mut b = Map::new();
    b.insert("ts".into(), json!(now_ms));
    b.insert("type".into(), json!("threshold"));
    b.insert("device".into(), json!(device));
    b.insert("crossing".into(), json!(word));
    b.insert("availability".into(), json!(a));
    b.insert("threshold".into(), json!(t));
    b.insert("at".into(), json!(at_ms));
    b
}

/// `alarm`: `{"ts","device","point","active","at"}`.
pub fn alarm(a: &HardAlarm, now_ms: UnixMs) -> Body {
    let mut b = Map::new();
    b.insert("ts".into(), json!(now_ms));
    b.insert("device".into(), json!(a.device));
    b.insert("point".into(), json!(a.point));
    b.insert("active".into(), json!(a.active));
    b.insert("at".into(), json!(a.at_ms));
    b
}

/// `tickets/{id}`: `{"ts","event":"opened"|…,"at","ticket":{…the whole ticket…}}`.
pub fn ticket(ev: &TicketEvent, now_ms: UnixMs) -> Body {
    let mut b = Map::new();
    b.insert("ts".into(), json!(now_ms));
    b.insert("event".into(), json!(ev.kind.as_str()));
    b.insert("at".into(), json!(ev.at_ms));
    b.insert(
        "ticket".into(),
        serde_json::to_value(&ev.ticket).unwrap_or(Json::Null),
    );
    b
}

#[cfg(test)]
mod tests {

    /// A body serialised ahead of its seq gives the very bytes `with_seq`
    /// gives: keys before and after `seq`, nested maps, escapes, a body
    /// that carried a `seq` already, an empty body.
    #[test]
    fn a_body_encoded_before_its_seq_is_byte_for_byte_what_with_seq_makes() {
        let bodies = [
            json!({"alarms": [], "device": "pump-1", "labels": {"points": {"seq": ["序", "q\"x"]}}, "ts": 17, "zz": null}),
            json!({"a": 1}),
            json!({"z": "\u{1}\n"}),
            json!({"seq": 99, "state": "up"}),
            json!({}),
        ];
        for b in bodies {
            let Json::Object(body) = b else {
                unreachable!()
            };
            for seq in [0, 7, u64::MAX] {
                let want = with_seq(body.clone(), seq);
                let got = Encoded::from_body(body.clone()).with_seq(seq);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want)
                );
            }
        }
    }
    use super::*;

    fn view(alarms: Vec<ActiveAlarm>) -> StateView {
        StateView {
            device: "fire-panel-1".into(),
            class: "fire_alarm",
            name_zh: "1号消防主机".into(),
            name_en: "Fire panel 1".into(),
            location: "B1".into(),
            location_en: "B1".into(),
            labels: Default::default(),
            state: "down",
            since_ms: 5,
            reason: Some("rule:panel_fault".into()),
            rolling: None,
            rolling_window_s: 60,
            month: None,
            month_up_ms: None,
            month_down_ms: None,
            threshold: 99.0,
            alarms,
        }
    }

    /// A pump, a fire panel, a meter and a fan coil (the shipped profiles).
    fn devices() -> (tempfile::TempDir, Resolved) {
        let dir = tempfile::tempdir().unwrap();
        let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/profiles");
        let mut text = format!(
            "site = \"s\"\ngateway = \"g\"\ndata_dir = \"data\"\nprofiles_dir = \"{profiles}\"\n\
             [[bus]]\nid = \"b\"\nkind = \"rtu\"\nport = \"/dev/null\"\n"
        );
        for (i, (class, profile)) in [
            ("pump", "pump-vfd"),
            ("fire_alarm", "fire-panel"),
            ("distribution", "meter-sdm630"),
            ("hvac", "fan-coil"),
        ]
        .iter()
        .enumerate()
        {
            text.push_str(&format!(
                "[[device]]\nid = \"d-{i}\"\nname_zh = \"设备\"\nclass = \"{class}\"\nbus = \"b\"\nunit = {}\nprofile = \"{profile}\"\n",
                i + 1
            ));
        }
        let file = dir.path().join("gateway.toml");
        std::fs::write(&file, text).unwrap();
        let cfg = crate::files::load_config(&file).unwrap();
        (dir, cfg)
    }

    #[test]
    fn the_telemetry_encoder_writes_the_same_bytes_as_the_json_builder() {
        use gateway_core::model::{BadReason, PollClass, Sample};
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let (_dir, cfg) = devices();
        let mut rng = StdRng::seed_from_u64(7);
        let mut enc = TelemetryEncoder::default();
        let texts = ["", "a\"b\\c", "温度\u{1}\n", "\u{7f}\u{2028}"];
        let floats = [
            0.0,
            -0.0,
            1.5,
            -45.41,
            1e21,
            1e-7,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
        ];
        let reasons = [
            BadReason::NotANumber,
            BadReason::Infinite,
            BadReason::OutOfRange,
            BadReason::InvalidText,
            BadReason::Exception { code: 2 },
            BadReason::NotRead,
        ];
        for round in 0..400 {
            let device = round % cfg.devices.len();
            let dev = &cfg.devices[device];
            let samples: Vec<Sample> = (0..dev.points.len())
                .map(|point| {
                    let value = match rng.random_range(0..7) {
                        0 => None,
                        1 => Some(Value::Bool(rng.random())),
                        2 => Some(Value::Int(rng.random())),
                        3 => Some(Value::UInt(rng.random())),
                        4 => Some(Value::Float(floats[rng.random_range(0..floats.len())])),
                        5 => Some(Value::Float(rng.random::<f64>() * 1e4 - 5e3)),
                        _ => Some(Value::Text(texts[rng.random_range(0..texts.len())].into())),
                    };
                    let quality = if rng.random_range(0..4) == 0 {
                        Quality::Bad(reasons[rng.random_range(0..reasons.len())])
                    } else {
                        Quality::Good
                    };
                    Sample {
                        point,
                        value,
                        quality,
                    }
                })
                .collect();
            let o = PollOutcome {
                device,
                ts_ms: rng.random_range(0..i64::MAX),
                class: PollClass::Full,
                samples,
                failure: None,
                requests: 1,
                failed_requests: 0,
                elapsed_us: 0,
            };
            // All, none, a subset in any order (with repeats), out of range.
            let mut which: Vec<usize> = (0..rng.random_range(0..=dev.points.len() + 2))
                .map(|_| rng.random_range(0..dev.points.len() + 1))
                .collect();
            if round % 5 == 0 {
                which.sort_unstable();
                which.dedup();
            }
            let seq = rng.random::<u64>();
            for w in [None, Some(which.as_slice())] {
                let want = with_seq(telemetry(dev, &o, w), seq);
                let got = enc.telemetry(dev, &o, w).with_seq(seq);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "round {round}"
                );
            }
        }
    }

    #[test]
    fn the_state_payload_always_lists_the_active_alarms() {
        let b = Json::Object(state(&view(Vec::new()), 10));
        assert_eq!(b["alarms"], json!([]));
        let b = Json::Object(state(
            &view(vec![ActiveAlarm {
                point: "fault".into(),
                since_ms: 7,
            }]),
            10,
        ));
        assert_eq!(b["alarms"], json!([{"point": "fault", "since": 7}]));
    }
}
