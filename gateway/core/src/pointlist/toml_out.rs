//! A [`Profile`] as TOML text in the layout of the shipped profiles
//! (`description`, `order`, `[health]`, `[[identify]]`, `[[point]]` with
//! the keys in the documented order and defaults left out).

use std::fmt::Write as _;

use super::export::{order_text, type_text};
use crate::config::{Profile, RuleDef};
use crate::model::Deadband;

/// A TOML basic string.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML float that reads back as the same `f64` (`1.0`, `0.01`, `1e-7`).
fn float(v: f64) -> String {
    let s = format!("{v:?}");
    if s.contains(['.', 'e', 'E']) || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// A key: bare when it may be, quoted otherwise.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_owned()
    } else {
        string(k)
    }
}

fn rule(r: &RuleDef) -> String {
    let mut parts = Vec::new();
    if let Some(w) = &r.when {
        parts.push(format!("when = {}", string(w)));
    }
    if let Some(h) = r.hold {
        parts.push(format!("for = {}", string(&h.to_string())));
    }
    if let Some(l) = &r.label_zh {
        parts.push(format!("label_zh = {}", string(l)));
    }
    if let Some(l) = &r.label_en {
        parts.push(format!("label_en = {}", string(l)));
    }
    format!("{{ {} }}", parts.join(", "))
}

/// The profile as TOML text; [`crate::config::load::parse_profile`] reads
/// it back to an equal [`Profile`].
pub fn profile_to_toml(p: &Profile) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "description = {}", string(&p.description));
    let _ = writeln!(out, "order = {}", string(order_text(p.order)));
    if p.primary_values {
        out.push_str("primary_values = true\n");
    }
    if p.requires_ct_ratio {
        out.push_str("requires_ct_ratio = true\n");
    }
    if !p.health.is_empty() {
        out.push_str("\n[health]\n");
        for (name, r) in &p.health {
            let _ = writeln!(out, "{} = {}", key(name), rule(r));
        }
    }
    for d in &p.identify {
        out.push_str("\n[[identify]]\n");
        let _ = writeln!(out, "area = {}", string(&d.area.to_string()));
        let _ = writeln!(out, "address = {}", d.address);
        let _ = writeln!(out, "type = {}", string(type_text(d.type_name)));
        if let Some(o) = d.order {
            let _ = writeln!(out, "order = {}", string(order_text(o)));
        }
        let equals: Vec<String> = d.equals.iter().map(|v| float(*v)).collect();
        let _ = writeln!(out, "equals = [{}]", equals.join(", "));
        if let Some(l) = &d.label {
            let _ = writeln!(out, "label = {}", string(l));
        }
    }
    for pt in &p.points {
        out.push_str("\n[[point]]\n");
        let mut kv = |k: &str, v: String| {
            let _ = writeln!(out, "{k} = {v}");
        };
        kv("name", string(&pt.name));
        if let Some(l) = &pt.label_zh {
            kv("label_zh", string(l));
        }
        if let Some(l) = &pt.label_en {
            kv("label_en", string(l));
        }
        if !pt.unit.is_empty() {
            kv("unit", string(&pt.unit));
        }
        kv("area", string(&pt.area.to_string()));
        kv("address", pt.address.to_string());
        kv("type", string(type_text(pt.type_name)));
        if let Some(b) = pt.bit {
            kv("bit", b.to_string());
        }
        if let Some(l) = pt.length {
            kv("length", l.to_string());
        }
        if let Some(o) = pt.order {
            kv("order", string(order_text(o)));
        }
        if pt.scale != 1.0 {
            kv("scale", float(pt.scale));
        }
        if pt.offset != 0.0 {
            kv("offset", float(pt.offset));
        }
        if let Some(v) = pt.min {
            kv("min", float(v));
        }
        if let Some(v) = pt.max {
            kv("max", float(v));
        }
        match pt.deadband {
            Some(Deadband::Absolute(v)) => kv("deadband", float(v)),
            Some(Deadband::Percent(v)) => kv("deadband", string(&format!("{v}%"))),
            None => {}
        }
        if let Some(h) = pt.heartbeat {
            kv("heartbeat", string(&h.to_string()));
        }
        if pt.alarm {
            kv("alarm", "true".to_owned());
        }
        if pt.critical {
            kv("critical", "true".to_owned());
        }
        if pt.writable {
            kv("writable", "true".to_owned());
        }
        if let Some(v) = pt.write_min {
            kv("write_min", float(v));
        }
        if let Some(v) = pt.write_max {
            kv("write_max", float(v));
        }
        if let Some(r) = pt.ratio {
            kv("ratio", string(super::export::ratio_text(r)));
        }
        if let Some(a) = &pt.alias_of {
            kv("alias_of", string(a));
        }
        if let Some(d) = &pt.description {
            kv("description", string(d));
        }
    }
    out
}
