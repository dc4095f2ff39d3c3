//! Topics: `{prefix}/{site}/{gateway}/…`, every segment an id.

use crate::check::{Reason, Refusal, is_id};

/// Which message a topic carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `…/status`.
    Status,
    /// `…/alarm`.
    Alarm,
    /// `…/alert`.
    Alert,
    /// `…/cmd/reply`.
    Reply,
    /// `…/cmd/{op}`: a command going to the gateway.
    Command(&'a str),
    /// `…/tickets/{id}`.
    Ticket(u64),
    /// `…/{device}/telemetry`.
    Telemetry(&'a str),
    /// `…/{device}/state`.
    State(&'a str),
    /// `…/{device}/event`.
    Event(&'a str),
}

impl Kind<'_> {
    /// The kind's name, fit for a counter label.
    pub const fn name(&self) -> &'static str {
        match self {
            Kind::Status => "status",
            Kind::Alarm => "alarm",
            Kind::Alert => "alert",
            Kind::Reply => "reply",
            Kind::Command(_) => "command",
            Kind::Ticket(_) => "ticket",
            Kind::Telemetry(_) => "telemetry",
            Kind::State(_) => "state",
            Kind::Event(_) => "event",
        }
    }
}

/// A topic taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topic<'a> {
    /// Site id.
    pub site: &'a str,
    /// Gateway id.
    pub gateway: &'a str,
    /// What it carries.
    pub kind: Kind<'a>,
}

/// Takes a topic apart; refuses one not under `prefix`, of a shape not in
/// `docs/mqtt.md`, or with a segment that is not an id
/// (`[A-Za-z0-9_.-]{1,64}`).
pub fn parse_topic<'a>(prefix: &str, topic: &'a str) -> Result<Topic<'a>, Refusal> {
    let bad = |why: &str| Refusal::new(Reason::BadTopic, format!("topic {topic:?}: {why}"));
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| bad("not under the prefix"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [site, gateway, tail @ ..] = parts.as_slice() else {
        return Err(bad("too short"));
    };
    for (what, s) in [("site", site), ("gateway", gateway)] {
        if !is_id(s) {
            return Err(bad(&format!("the {what} is not an id")));
        }
    }
    let kind = match tail {
        ["status"] => Kind::Status,
        ["alarm"] => Kind::Alarm,
        ["alert"] => Kind::Alert,
        ["cmd", "reply"] => Kind::Reply,
        ["cmd", op] if is_id(op) => Kind::Command(op),
        ["tickets", n] => Kind::Ticket(ticket_number(n).ok_or_else(|| bad("bad ticket number"))?),
        [dev, what] if is_id(dev) => match *what {
            "telemetry" => Kind::Telemetry(dev),
            "state" => Kind::State(dev),
            "event" => Kind::Event(dev),
            _ => return Err(bad("unknown message")),
        },
        _ => return Err(bad("unknown message")),
    };
    Ok(Topic {
        site,
        gateway,
        kind,
    })
}

fn ticket_number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
