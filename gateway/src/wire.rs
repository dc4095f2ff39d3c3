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

fn value_json(v: &Value) -> Json {
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
