//! The report as CSV (see the parent module doc for the layout).

use chrono_tz::Tz;

use super::{local_fmt, zone};
use crate::report::MonthReport;
use crate::state::UnixMs;

/// One CSV cell, quoted when it holds a comma, a quote or a line break.
fn cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

fn time(tz: Tz, ms: UnixMs) -> String {
    local_fmt(tz, ms, "%Y-%m-%d %H:%M:%S")
}

struct Csv {
    out: String,
}

impl Csv {
    fn block(&mut self, header: &[&str]) {
        if !self.out.is_empty() {
            self.out.push_str("\r\n");
        }
        self.row(header.iter().map(|h| (*h).to_owned()).collect());
    }

    fn row(&mut self, cells: Vec<String>) {
        let line: Vec<String> = cells.iter().map(|c| cell(c)).collect();
        self.out.push_str(&line.join(","));
        self.out.push_str("\r\n");
    }
}

/// The report as CSV: every figure of the JSON, one block per section.
pub fn to_csv(r: &MonthReport) -> String {
    let tz = zone(r);
    let mut c = Csv { out: String::new() };
    let p = &r.period;
    c.block(&[
        "section",
        "site",
        "site_name",
        "month",
        "from",
        "to",
        "until",
        "length_ms",
        "in_progress",
        "timezone",
        "generated",
    ]);
    c.row(vec![
        "period".into(),
        r.site.id.clone(),
        r.site.name.clone(),
        p.month.clone(),
        time(tz, p.from_ms),
        time(tz, p.to_ms),
        time(tz, p.until_ms),
        p.length_ms.to_string(),
        p.in_progress.to_string(),
        p.timezone.clone(),
        time(tz, r.generated_ms),
    ]);

    c.block(&[
        "section",
        "class",
        "devices",
        "target_percent",
        "availability",
        "availability_met",
        "intact_rate",
        "intact_met",
        "up_ms",
        "down_ms",
        "maintenance_ms",
        "unknown_ms",
        "incidents",
        "mtbf_ms",
        "mttr_ms",
        "coverage",
    ]);
    for k in &r.classes {
        let f = &k.figures;
        c.row(vec![
            "class".into(),
            k.class.as_str().into(),
            k.devices.to_string(),
            k.target_percent.to_string(),
            opt(f.availability),
            opt(k.availability_met),
            opt(k.intact_rate),
            opt(k.intact_met),
            f.totals.up_ms.to_string(),
            f.totals.down_ms.to_string(),
            f.totals.maintenance_ms.to_string(),
            f.totals.unknown_ms.to_string(),
            f.incidents.to_string(),
            opt(f.mtbf_ms),
            opt(f.mttr_ms),
            opt(f.coverage),
        ]);
    }

    let k = &r.kpis;
    c.block(&["section", "kpi", "value", "target", "met"]);
    c.row(vec![
        "kpi".into(),
        "timeliness".into(),
        opt(k.timeliness),
        k.timeliness_target.to_string(),
        opt(k.timeliness_met),
    ]);
    c.row(vec![
        "kpi".into(),
        "rework_rate".into(),
        opt(k.rework_rate),
        k.rework_target.to_string(),
        opt(k.rework_met),
    ]);
    c.row(vec![
        "kpi".into(),
        "overnight".into(),
        k.overnight.to_string(),
        "0".into(),
        k.overnight_met.to_string(),
    ]);

    c.block(&[
        "section",
        "device",
        "name_zh",
        "name_en",
        "class",
        "location",
        "target_percent",
        "availability",
        "met",
        "up_ms",
        "down_ms",
        "maintenance_ms",
        "unknown_ms",
        "incidents",
        "mtbf_ms",
        "mttr_ms",
        "coverage",
        "in_service_from",
        "in_service_to",
        "service_coverage",
    ]);
    for d in &r.devices {
        let f = &d.figures;
        c.row(vec![
            "device".into(),
            d.id.clone(),
            d.name_zh.clone(),
            d.name_en.clone(),
            d.class.as_str().into(),
            d.location.clone(),
            d.target_percent.to_string(),
            opt(f.availability),
            opt(d.met),
            f.totals.up_ms.to_string(),
            f.totals.down_ms.to_string(),
            f.totals.maintenance_ms.to_string(),
            f.totals.unknown_ms.to_string(),
            f.incidents.to_string(),
            opt(f.mtbf_ms),
            opt(f.mttr_ms),
            opt(f.coverage),
            time(tz, d.in_service_from_ms),
            time(tz, d.in_service_to_ms),
            opt(d.service_coverage),
        ]);
    }

    c.block(&[
        "section",
        "device",
        "date",
        "availability",
        "down_ms",
        "maintenance_ms",
        "unknown_ms",
        "future",
    ]);
    for d in &r.devices {
        for day in &d.days {
            c.row(vec![
                "day".into(),
                d.id.clone(),
                day.date.clone(),
                opt(day.availability),
                day.down_ms.to_string(),
                day.maintenance_ms.to_string(),
                day.unknown_ms.to_string(),
                day.future.to_string(),
            ]);
        }
    }

    let t = &r.tickets.figures;
    c.block(&[
        "section",
        "opened",
        "critical",
        "ordinary",
        "response_median_ms",
        "response_p90_ms",
        "repair_median_ms",
        "repair_p90_ms",
        "resolved",
        "on_time",
        "timeliness",
        "reworks",
        "rework_rate",
        "overnight",
    ]);
    c.row(vec![
        "tickets".into(),
        t.opened.to_string(),
        t.critical.to_string(),
        t.ordinary.to_string(),
        opt(t.response_median_ms),
        opt(t.response_p90_ms),
        opt(t.repair_median_ms),
        opt(t.repair_p90_ms),
        t.resolved.to_string(),
        t.on_time.to_string(),
        opt(t.timeliness),
        t.reworks.to_string(),
        opt(t.rework_rate),
        t.overnight.to_string(),
    ]);

    c.block(&["section", "class", "opened", "critical", "ordinary"]);
    for b in &r.tickets.by_class {
        c.row(vec![
            "tickets_by_class".into(),
            b.class.as_str().into(),
            b.opened.to_string(),
            b.critical.to_string(),
            b.ordinary.to_string(),
        ]);
    }

    c.block(&[
        "section", "ticket", "device", "class", "severity", "summary", "start", "deadline",
        "resolved",
    ]);
    for m in &r.tickets.missed {
        c.row(vec![
            "missed".into(),
            m.ticket.to_string(),
            m.device.clone(),
            m.class.as_str().into(),
            m.severity.as_str().into(),
            m.summary.clone(),
            time(tz, m.start_ms),
            time(tz, m.deadline_ms),
            m.resolved_ms.map_or_else(String::new, |ms| time(tz, ms)),
        ]);
    }

    c.block(&[
        "section",
        "ticket",
        "device",
        "class",
        "kind",
        "reworks_in_period",
        "step",
        "at",
        "by",
        "note",
    ]);
    for w in &r.tickets.reworks {
        for h in &w.trail {
            c.row(vec![
                "rework".into(),
                w.ticket.to_string(),
                w.device.clone(),
                w.class.as_str().into(),
                w.kind.clone(),
                w.reworks_in_period.to_string(),
                h.kind.as_str().into(),
                time(tz, h.at_ms),
                h.by.clone(),
                h.note.clone(),
            ]);
        }
    }

    let cv = &r.coverage;
    c.block(&[
        "section",
        "in_service_ms",
        "known_ms",
        "coverage",
        "short_gaps",
        "short_gaps_ms",
    ]);
    c.row(vec![
        "coverage".into(),
        cv.in_service_ms.to_string(),
        cv.known_ms.to_string(),
        opt(cv.coverage),
        cv.short_gaps.to_string(),
        cv.short_gaps_ms.to_string(),
    ]);
    c.block(&["section", "from", "to", "length_ms", "reason", "devices"]);
    for g in &cv.gaps {
        c.row(vec![
            "gap".into(),
            time(tz, g.from_ms),
            time(tz, g.to_ms),
            (g.to_ms - g.from_ms).to_string(),
            g.reason.clone(),
            g.devices.join(" "),
        ]);
    }
    c.block(&["section", "window", "target", "schedule", "note"]);
    for w in &cv.windows {
        c.row(vec![
            "window".into(),
            w.id.clone(),
            w.target.clone(),
            w.schedule.clone(),
            w.note.clone(),
        ]);
    }
    c.out
}
