//! Inline SVG charts: drawn here, so the printed page needs no script.

use std::fmt::Write as _;

use super::{Lang, class_name, esc, percent_text, term};
use crate::glossary;
use crate::report::{DeviceReport, MonthReport};

/// Colour of a day spent in planned maintenance only (no up or down time).
const MAINTENANCE: &str = "#91a7ff";

/// Colour of a figure against its target: green met, amber below but at
/// least 90 %, red below 90 %, grey no data.
fn colour(a: Option<f64>, target_percent: f64) -> &'static str {
    match a {
        None => "#c8c8c8",
        Some(a) if a * 100.0 + 1e-9 >= target_percent => "#2f9e44",
        Some(a) if a >= 0.9 => "#f08c00",
        Some(_) => "#e03131",
    }
}

/// The lower end of the percentage axis: 90 %, or lower in steps of 10
/// when a figure is below it.
fn axis_floor(values: impl Iterator<Item = f64>) -> f64 {
    let min = values.fold(90.0_f64, |m, v| m.min(v * 100.0));
    ((min / 10.0).floor() * 10.0).clamp(0.0, 90.0)
}

/// Horizontal bars per class: availability and intact rate, the target as a
/// red tick, the axis from [`axis_floor`] to 100 %.
pub(super) fn class_chart(r: &MonthReport, lang: Lang) -> String {
    let (label_w, plot_w, bar_h, row_h) = (150.0, 420.0, 11.0, 34.0);
    let width = label_w + plot_w + 70.0;
    let height = 30.0 + row_h * r.classes.len() as f64 + 24.0;
    let lo = axis_floor(
        r.classes
            .iter()
            .flat_map(|c| [c.figures.availability, c.intact_rate])
            .flatten(),
    );
    let x = |p: f64| label_w + (p.clamp(lo, 100.0) - lo) / (100.0 - lo) * plot_w;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{}">"#,
        lang.t(
            "各类设备完好率与目标",
            "Availability and intact rate per class against target"
        )
    );
    // Grid and axis labels.
    let mut tick = lo;
    while tick <= 100.0 + 1e-9 {
        let tx = x(tick);
        let _ = write!(
            s,
            r##"<line x1="{tx:.1}" y1="22" x2="{tx:.1}" y2="{:.1}" stroke="#e0e0e0"/><text x="{tx:.1}" y="16" font-size="10" text-anchor="middle" fill="#555">{tick:.0}%</text>"##,
            height - 24.0
        );
        tick += if 100.0 - lo > 20.0 { 10.0 } else { 2.0 };
    }
    for (i, c) in r.classes.iter().enumerate() {
        let y = 28.0 + row_h * i as f64;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#222">{}</text>"##,
            label_w - 8.0,
            y + bar_h + 3.0,
            esc(class_name(c.class, lang))
        );
        for (j, (value, fill)) in [
            (c.figures.availability, "#1c7ed6"),
            (c.intact_rate, "#74c0fc"),
        ]
        .into_iter()
        .enumerate()
        {
            let by = y + j as f64 * (bar_h + 1.0);
            if let Some(v) = value {
                let w = (x(v * 100.0) - label_w).max(1.0);
                let _ = write!(
                    s,
                    r##"<rect x="{label_w}" y="{by:.1}" width="{w:.1}" height="{bar_h}" fill="{fill}"/><text x="{:.1}" y="{:.1}" font-size="9" fill="#222">{}</text>"##,
                    label_w + w + 4.0,
                    by + bar_h - 2.0,
                    esc(&percent_text(Some(v)))
                );
            }
        }
        let tx = x(c.target_percent);
        let _ = write!(
            s,
            r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#c92a2a" stroke-width="2"/>"##,
            y - 3.0,
            y + 2.0 * bar_h + 4.0
        );
    }
    let ly = height - 8.0;
    let _ = write!(
        s,
        r##"<rect x="{label_w}" y="{:.1}" width="10" height="8" fill="#1c7ed6"/><text x="{:.1}" y="{ly:.1}" font-size="10">{}</text><rect x="{:.1}" y="{:.1}" width="10" height="8" fill="#74c0fc"/><text x="{:.1}" y="{ly:.1}" font-size="10">{}</text><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{ly:.1}" stroke="#c92a2a" stroke-width="2"/><text x="{:.1}" y="{ly:.1}" font-size="10">{}</text></svg>"##,
        ly - 8.0,
        label_w + 14.0,
        term(glossary::AVAILABILITY, lang),
        label_w + 150.0,
        ly - 8.0,
        label_w + 164.0,
        term(glossary::INTACT_RATE, lang),
        label_w + 300.0,
        ly - 9.0,
        label_w + 300.0,
        label_w + 306.0,
        lang.t("目标", "target"),
    );
    s
}

/// One device's month as a row of day cells coloured against its target,
/// hatched for days still to come, with day numbers 1, 5, 10, … below.
pub(super) fn day_strip(d: &DeviceReport, lang: Lang) -> String {
    let (cell, gap, h) = (13.0, 1.0, 14.0);
    let n = d.days.len() as f64;
    let width = n * (cell + gap);
    let height = h + 11.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="strip" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{}">"#,
        term(glossary::DAILY_AVAILABILITY, lang)
    );
    for (i, day) in d.days.iter().enumerate() {
        let x = i as f64 * (cell + gap);
        let (fill, extra) = if day.future {
            ("#ffffff", r##" stroke="#bbb" stroke-dasharray="2 2""##)
        } else if day.availability.is_none() && day.maintenance_ms > 0 {
            (MAINTENANCE, "")
        } else {
            (colour(day.availability, d.target_percent), "")
        };
        let title = if day.future {
            format!("{} –", day.date)
        } else {
            format!("{} {}", day.date, percent_text(day.availability))
        };
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="0" width="{cell}" height="{h}" fill="{fill}"{extra}><title>{}</title></rect>"#,
            esc(&title)
        );
        let num = i + 1;
        if num == 1 || num % 5 == 0 {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="8" text-anchor="middle" fill="#666">{num}</text>"##,
                x + cell / 2.0,
                h + 9.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// The legend of the strips.
pub(super) fn strip_legend(lang: Lang) -> String {
    let items = [
        ("#2f9e44", "", lang.t("达标", "target met")),
        (
            "#f08c00",
            "",
            lang.t("未达标（≥ 90 %）", "below target (≥ 90 %)"),
        ),
        ("#e03131", "", lang.t("低于 90 %", "below 90 %")),
        (MAINTENANCE, "", lang.t("全天保养", "maintenance only")),
        ("#c8c8c8", "", lang.t("无数据", "no data")),
        (
            "#ffffff",
            r##" stroke="#bbb" stroke-dasharray="2 2""##,
            lang.t("尚未到来", "still to come"),
        ),
    ];
    let mut s = String::from(
        r#"<svg class="legend" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 680 14" width="680" height="14">"#,
    );
    let mut x = 0.0;
    for (fill, extra, label) in items {
        let _ = write!(
            s,
            r##"<rect x="{x:.1}" y="1" width="12" height="12" fill="{fill}"{extra}/><text x="{:.1}" y="11" font-size="10" fill="#222">{}</text>"##,
            x + 16.0,
            esc(label)
        );
        x += 112.0;
    }
    s.push_str("</svg>");
    s
}
