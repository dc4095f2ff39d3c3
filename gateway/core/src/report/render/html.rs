//! The report as one printable HTML page (see the parent module doc).

use std::fmt::Write as _;

use chrono_tz::Tz;

use super::svg::{class_chart, day_strip, strip_legend};
use super::{
    Lang, class_name, duration_text, esc, gap_reason_text, local_minute, opt_duration_text,
    percent_text, target_text, term, zone,
};
use crate::glossary;
use crate::report::MonthReport;
use crate::tickets::TicketEventKind;

/// A string for a CSS `content:` value.
fn css_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // Never `</style>` inside the style element.
            '<' => out.push_str("\\3C "),
            '>' => out.push_str("\\3E "),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `2026年11月` / `November 2026`.
fn month_title(month: &str, lang: Lang) -> String {
    let (y, m) = month.split_once('-').unwrap_or((month, ""));
    let m: u32 = m.parse().unwrap_or(0);
    match lang {
        Lang::Zh => format!("{y}年{m}月"),
        Lang::En => {
            const NAMES: [&str; 12] = [
                "January",
                "February",
                "March",
                "April",
                "May",
                "June",
                "July",
                "August",
                "September",
                "October",
                "November",
                "December",
            ];
            let name = m
                .checked_sub(1)
                .and_then(|i| NAMES.get(i as usize))
                .copied()
                .unwrap_or("");
            format!("{name} {y}")
        }
    }
}

fn met_text(met: Option<bool>, lang: Lang) -> String {
    match met {
        Some(true) => format!(r#"<span class="ok">{}</span>"#, lang.t("达标", "met")),
        Some(false) => format!(r#"<span class="bad">{}</span>"#, lang.t("未达标", "missed")),
        None => "–".to_owned(),
    }
}

fn step_text(kind: TicketEventKind, lang: Lang) -> &'static str {
    match kind {
        TicketEventKind::Opened => lang.t("开单", "opened"),
        TicketEventKind::Acknowledged => lang.t("接单", "acknowledged"),
        TicketEventKind::Arrived => lang.t("到场", "arrived on site"),
        TicketEventKind::Recovered => lang.t("设备恢复", "device recovered"),
        TicketEventKind::Resolved => lang.t("修复", "resolved"),
        TicketEventKind::Reopened => lang.t("返修重开", "reopened (rework)"),
        TicketEventKind::Closed => lang.t("关闭", "closed"),
    }
}

/// The fonts of the page and its margins: CJK fonts first (Linux, Windows, macOS).
const FONTS: &str = r#""Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "Microsoft YaHei", "PingFang SC", sans-serif"#;

const CSS: &str = r#"
:root { --ink: #222; --muted: #666; --line: #d0d0d0; --head: #f1f3f5; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "Microsoft YaHei", "PingFang SC", sans-serif;
       color: var(--ink); font-size: 10pt; line-height: 1.4; margin: 0 auto; max-width: 190mm; padding: 8mm 0; }
header.doc { border-bottom: 2px solid var(--ink); margin-bottom: 4mm; }
header.doc h1 { font-size: 17pt; margin: 0 0 1mm; }
header.doc .meta { color: var(--muted); font-size: 9pt; }
.progress { border: 1.5px solid #f08c00; background: #fff4e6; padding: 2mm 3mm; margin: 3mm 0; font-weight: bold; }
section.page { break-before: page; }
section.page:first-of-type { break-before: auto; }
h2 { font-size: 13pt; border-left: 4px solid #1c7ed6; padding-left: 2mm; margin: 2mm 0 3mm; break-after: avoid; }
h3 { font-size: 11pt; margin: 4mm 0 2mm; break-after: avoid; }
table { border-collapse: collapse; width: 100%; margin: 0 0 3mm; font-size: 8.5pt; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
th, td { border: 1px solid var(--line); padding: 1mm 1.4mm; text-align: left; vertical-align: middle; }
th { background: var(--head); font-weight: 600; }
td.n, th.n { text-align: right; white-space: nowrap; }
table.devices td:first-child { width: 42%; }
.ok { color: #2b8a3e; font-weight: 600; }
.bad { color: #c92a2a; font-weight: 600; }
.muted { color: var(--muted); }
.small { font-size: 8pt; }
svg { display: block; max-width: 100%; height: auto; }
svg.strip, svg.legend { display: inline-block; height: auto; }
.chart-box { break-inside: avoid; margin: 2mm 0 4mm; }
ul.trail { margin: 0; padding-left: 4mm; }
dl.defs dt { font-weight: 600; margin-top: 1.5mm; }
dl.defs dd { margin: 0 0 0 4mm; }
@media print {
  body { max-width: none; padding: 0; }
  header.doc { margin-top: 0; }
}
"#;

/// The report as one self-contained HTML page in `lang`.
pub fn to_html(r: &MonthReport, lang: Lang) -> String {
    let tz = zone(r);
    let mut h = String::with_capacity(64 * 1024);
    let title = lang.t(
        "设备设施完好率月报",
        "Monthly equipment availability report",
    );
    let period_text = month_title(&r.period.month, lang);
    let generated = local_minute(tz, r.generated_ms);
    let site_line = if r.site.name == r.site.id {
        r.site.id.clone()
    } else {
        format!("{} ({})", r.site.name, r.site.id)
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · {} · {}</title><style>{CSS}",
        lang.t("zh-CN", "en"),
        esc(title),
        esc(&site_line),
        esc(&period_text),
    );
    // The page margins: site and period, generation time, page n / N.
    let progress_mark = if r.period.in_progress {
        lang.t("（本月未结束）", " (month in progress)")
    } else {
        ""
    };
    let margin = |content: String| {
        format!("content: {content}; font-family: {FONTS}; font-size: 8pt; color: #555;")
    };
    let page_no = match lang {
        Lang::Zh => "\"第 \" counter(page) \" 页，共 \" counter(pages) \" 页\"".to_owned(),
        Lang::En => "\"page \" counter(page) \" of \" counter(pages)".to_owned(),
    };
    let _ = writeln!(
        h,
        "@page {{ size: A4; margin: 16mm 12mm 16mm 12mm;\n  @top-left {{ {} }}\n  @top-right {{ {} }}\n  @bottom-center {{ {} }} }}\n</style></head><body>",
        margin(css_string(&format!(
            "{site_line} · {period_text}{progress_mark}"
        ))),
        margin(css_string(&format!(
            "{} {generated}",
            lang.t("生成于", "generated")
        ))),
        margin(page_no),
    );

    let _ = writeln!(
        h,
        "<header class=\"doc\"><h1>{}</h1><div class=\"meta\">{}{} · {}{} – {} ({}) · {}{}</div></header>",
        esc(title),
        lang.t("项目：", "Site: "),
        esc(&site_line),
        lang.t("统计期：", "Period: "),
        esc(&local_minute(tz, r.period.from_ms)),
        esc(&local_minute(tz, r.period.to_ms)),
        esc(&r.period.timezone),
        lang.t("生成时间：", "Generated: "),
        esc(&generated),
    );
    if r.period.in_progress {
        let _ = writeln!(
            h,
            "<div class=\"progress\">{} {}</div>",
            lang.t(
                "本月尚未结束，数据截至",
                "This month is still in progress; figures up to"
            ),
            esc(&local_minute(tz, r.period.until_ms)),
        );
    }
    summary(&mut h, r, lang);
    devices(&mut h, r, lang);
    strips(&mut h, r, lang);
    tickets(&mut h, r, tz, lang);
    coverage(&mut h, r, tz, lang);
    h.push_str("</body></html>\n");
    h
}

fn summary(h: &mut String, r: &MonthReport, lang: Lang) {
    let _ = writeln!(
        h,
        "<section class=\"page\" id=\"summary\"><h2>1. {}</h2>",
        lang.t("概览", "Summary")
    );
    if r.classes.is_empty() {
        let _ = write!(
            h,
            "<p class=\"muted\">{}</p>",
            lang.t("本月没有设备数据。", "No device was in service this month.")
        );
    } else {
        let _ = writeln!(
            h,
            "<table><thead><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th>{}</th><th class=\"n\">{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr></thead><tbody>",
            lang.t("设备类别", "Class"),
            lang.t("台数", "Devices"),
            term(glossary::TARGET, lang),
            term(glossary::AVAILABILITY, lang),
            lang.t("结论", "Result"),
            term(glossary::INTACT_RATE, lang),
            lang.t("结论", "Result"),
            lang.t("停机时长", "Downtime"),
            lang.t("故障次数", "Incidents"),
        );
        for c in &r.classes {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(class_name(c.class, lang)),
                c.devices,
                target_text(c.target_percent),
                percent_text(c.figures.availability),
                met_text(c.availability_met, lang),
                percent_text(c.intact_rate),
                met_text(c.intact_met, lang),
                duration_text(c.figures.downtime_ms, lang),
                c.figures.incidents,
            );
        }
        h.push_str("</tbody></table>\n<div class=\"chart-box\">");
        h.push_str(&class_chart(r, lang));
        h.push_str("</div>\n");
    }
    let k = &r.kpis;
    let t = &r.tickets.figures;
    let _ = writeln!(
        h,
        "<h3>{}</h3><table><thead><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        lang.t("工程维修指标", "Repair KPIs"),
        lang.t("指标", "KPI"),
        lang.t("本月", "This month"),
        lang.t("目标", "Target"),
        lang.t("结论", "Result"),
        lang.t("说明", "Basis"),
    );
    let _ = writeln!(
        h,
        "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">100 %</td><td>{}</td><td>{}</td></tr>",
        lang.t("维修及时率", "Repair timeliness"),
        percent_text(k.timeliness),
        met_text(k.timeliness_met, lang),
        esc(&match lang {
            Lang::Zh => format!("按期修复 {} / 修复 {}", t.on_time, t.resolved),
            Lang::En => format!(
                "{} of {} repairs within their deadline",
                t.on_time, t.resolved
            ),
        }),
    );
    let _ = writeln!(
        h,
        "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">&lt; 1 %</td><td>{}</td><td>{}</td></tr>",
        lang.t("返修率", "Rework rate"),
        percent_text(k.rework_rate),
        met_text(k.rework_met, lang),
        esc(&match lang {
            Lang::Zh => format!("返修 {} / 修复 {}", t.reworks, t.resolved),
            Lang::En => format!("{} reworks per {} repairs", t.reworks, t.resolved),
        }),
    );
    let _ = writeln!(
        h,
        "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">0</td><td>{}</td><td>{}</td></tr>\n</tbody></table></section>",
        lang.t("日常小修不过夜（过夜次数）", "Small repairs left overnight"),
        k.overnight,
        met_text(Some(k.overnight_met), lang),
        lang.t(
            "普通工单在当日下班前未修复的次数",
            "ordinary tickets not repaired by the end of their working day"
        ),
    );
}

fn devices(h: &mut String, r: &MonthReport, lang: Lang) {
    let _ = writeln!(
        h,
        "<section class=\"page\" id=\"devices\"><h2>2. {}</h2><p class=\"small muted\">{}</p>",
        lang.t("设备明细", "Per device"),
        lang.t(
            "按达标情况与完好率排序，最差的在前。完好率 = 运行 ÷（运行 + 故障），计划保养与无数据时段不计入；数据覆盖按设备在用期计算。",
            "Worst first. Availability = up ÷ (up + down); planned maintenance and time without data are left out. Coverage is over each device's time in service."
        ),
    );
    if r.devices.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"muted\">{}</p></section>",
            lang.t("本月没有设备数据。", "No device was in service this month.")
        );
        return;
    }
    let _ = writeln!(
        h,
        "<table class=\"devices\"><thead><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">MTBF</th><th class=\"n\">MTTR</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr></thead><tbody>",
        lang.t("设备", "Device"),
        term(glossary::AVAILABILITY, lang),
        term(glossary::TARGET, lang),
        lang.t("停机", "Downtime"),
        lang.t("故障", "Incid."),
        lang.t("保养", "Maint."),
        lang.t("数据覆盖", "Coverage"),
    );
    for d in &r.devices {
        let name = match lang {
            Lang::Zh => &d.name_zh,
            Lang::En => &d.name_en,
        };
        let service =
            service_text(r, d, lang).map_or_else(String::new, |t| format!(" · {}", esc(&t)));
        let avail_class = match d.met {
            Some(false) => " bad",
            _ => "",
        };
        let _ = writeln!(
            h,
            "<tr><td><b>{}</b><br><span class=\"small muted\">{} · {}{service}</span></td><td class=\"n{avail_class}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(name),
            esc(&d.id),
            esc(class_name(d.class, lang)),
            percent_text(d.figures.availability),
            target_text(d.target_percent),
            duration_text(d.figures.downtime_ms, lang),
            d.figures.incidents,
            opt_duration_text(d.figures.mtbf_ms, lang),
            opt_duration_text(d.figures.mttr_ms, lang),
            duration_text(d.figures.maintenance_ms, lang),
            percent_text(d.service_coverage),
        );
    }
    h.push_str("</tbody></table></section>\n");
}

/// `自 11-20 00:00 起` / `since 11-20 00:00` for a device in service for
/// part of the period only; `None` for the whole period.
fn service_text(r: &MonthReport, d: &crate::report::DeviceReport, lang: Lang) -> Option<String> {
    let tz = zone(r);
    let short = |ms| super::local_fmt(tz, ms, "%m-%d %H:%M");
    let late = d.in_service_from_ms > r.period.from_ms;
    let early = d.in_service_to_ms < r.period.until_ms;
    let (from, to) = (short(d.in_service_from_ms), short(d.in_service_to_ms));
    Some(match (late, early, lang) {
        (false, false, _) => return None,
        (true, false, Lang::Zh) => format!("在用期 自 {from} 起"),
        (true, false, Lang::En) => format!("in service since {from}"),
        (false, true, Lang::Zh) => format!("在用期 至 {to} 止"),
        (false, true, Lang::En) => format!("in service until {to}"),
        (true, true, Lang::Zh) => format!("在用期 {from} – {to}"),
        (true, true, Lang::En) => format!("in service {from} – {to}"),
    })
}

fn strips(h: &mut String, r: &MonthReport, lang: Lang) {
    if r.devices.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<section class=\"page\" id=\"daily\"><h2>2.1 {}</h2><div class=\"chart-box\">{}</div>\n<table class=\"strips\"><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>",
        term(glossary::DAILY_AVAILABILITY, lang),
        strip_legend(lang),
        lang.t("设备", "Device"),
        lang.t("每日（1日至月末）", "Each day (1st to month end)"),
    );
    for d in &r.devices {
        let name = match lang {
            Lang::Zh => &d.name_zh,
            Lang::En => &d.name_en,
        };
        let _ = writeln!(
            h,
            "<tr><td>{}<br><span class=\"small muted\">{}</span></td><td>{}</td></tr>",
            esc(name),
            esc(&d.id),
            day_strip(d, lang)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn tickets(h: &mut String, r: &MonthReport, tz: Tz, lang: Lang) {
    let t = &r.tickets.figures;
    let _ = writeln!(
        h,
        "<section class=\"page\" id=\"tickets\"><h2>3. {}</h2>\n<table><thead><tr><th>{}</th><th class=\"n\">{}</th></tr></thead><tbody>",
        lang.t("工单", "Tickets"),
        lang.t("项目", "Item"),
        lang.t("本月", "This month"),
    );
    let rows: [(&str, String); 11] = [
        (lang.t("新开工单", "Opened"), t.opened.to_string()),
        (
            lang.t("其中紧急", "of which critical"),
            t.critical.to_string(),
        ),
        (
            lang.t("其中普通", "of which ordinary"),
            t.ordinary.to_string(),
        ),
        (
            lang.t("响应时间 中位数", "Response time, median"),
            opt_duration_text(t.response_median_ms, lang),
        ),
        (
            lang.t("响应时间 P90", "Response time, p90"),
            opt_duration_text(t.response_p90_ms, lang),
        ),
        (
            lang.t("修复时间 中位数", "Repair time, median"),
            opt_duration_text(t.repair_median_ms, lang),
        ),
        (
            lang.t("修复时间 P90", "Repair time, p90"),
            opt_duration_text(t.repair_p90_ms, lang),
        ),
        (lang.t("修复", "Repaired"), t.resolved.to_string()),
        (
            lang.t("按期修复", "Repaired on time"),
            t.on_time.to_string(),
        ),
        (lang.t("返修", "Reworks"), t.reworks.to_string()),
        (
            lang.t("过夜未修", "Left overnight"),
            t.overnight.to_string(),
        ),
    ];
    for (label, value) in rows {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(label),
            esc(&value)
        );
    }
    h.push_str("</tbody></table>\n");

    if !r.tickets.by_class.is_empty() {
        let _ = writeln!(
            h,
            "<h3>{}</h3><table><thead><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr></thead><tbody>",
            lang.t("按设备类别", "By class"),
            lang.t("设备类别", "Class"),
            lang.t("新开", "Opened"),
            lang.t("紧急", "Critical"),
            lang.t("普通", "Ordinary"),
        );
        for c in &r.tickets.by_class {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(class_name(c.class, lang)),
                c.opened,
                c.critical,
                c.ordinary
            );
        }
        h.push_str("</tbody></table>\n");
    }

    let _ = write!(
        h,
        "<h3>{}</h3>",
        lang.t("超时工单", "Tickets that missed their deadline")
    );
    if r.tickets.missed.is_empty() {
        let _ = writeln!(h, "<p class=\"muted\">{}</p>", lang.t("无。", "None."));
    } else {
        let _ = writeln!(
            h,
            "<table><thead><tr><th class=\"n\">#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            lang.t("设备", "Device"),
            lang.t("内容", "Summary"),
            lang.t("开单", "Started"),
            lang.t("期限", "Deadline"),
            lang.t("修复", "Repaired"),
        );
        for m in &r.tickets.missed {
            let _ = writeln!(
                h,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                m.ticket,
                esc(&m.device),
                esc(&m.summary),
                esc(&local_minute(tz, m.start_ms)),
                esc(&local_minute(tz, m.deadline_ms)),
                m.resolved_ms.map_or_else(
                    || lang.t("统计期内未修复", "not within the period").to_owned(),
                    |ms| esc(&local_minute(tz, ms))
                ),
            );
        }
        h.push_str("</tbody></table>\n");
    }

    let _ = write!(h, "<h3>{}</h3>", lang.t("返修工单", "Reworks"));
    if r.tickets.reworks.is_empty() {
        let _ = writeln!(h, "<p class=\"muted\">{}</p>", lang.t("无。", "None."));
    } else {
        let _ = writeln!(
            h,
            "<table><thead><tr><th class=\"n\">#</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            lang.t("设备", "Device"),
            lang.t("内容", "Summary"),
            lang.t("工单轨迹", "Trail"),
        );
        for w in &r.tickets.reworks {
            let mut trail = String::from("<ul class=\"trail\">");
            for s in &w.trail {
                let note = if s.note.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", esc(&s.note))
                };
                let _ = write!(
                    trail,
                    "<li>{} {} ({}){note}</li>",
                    esc(&local_minute(tz, s.at_ms)),
                    step_text(s.kind, lang),
                    esc(&s.by),
                );
            }
            trail.push_str("</ul>");
            let _ = writeln!(
                h,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{trail}</td></tr>",
                w.ticket,
                esc(&w.device),
                esc(&w.summary),
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</section>\n");
}

fn coverage(h: &mut String, r: &MonthReport, tz: Tz, lang: Lang) {
    let c = &r.coverage;
    let _ = write!(
        h,
        "<section class=\"page\" id=\"coverage\"><h2>4. {}</h2>\n<dl class=\"defs\">",
        lang.t("数据覆盖与统计方法", "Data coverage and method"),
    );
    let defs: [(&str, &str); 7] = [
        (
            term(glossary::AVAILABILITY, lang),
            lang.t(
                "运行时间 ÷（运行时间 + 故障时间）。计划保养时段与无数据时段（网关离线）两边都不计入，另列为数据覆盖。",
                "Time up ÷ (time up + time down). Planned maintenance and time without data (gateway offline) are left out of both and shown as coverage.",
            ),
        ),
        (
            term(glossary::INTACT_RATE, lang),
            lang.t(
                "每一时刻：运行台数 ÷（运行 + 故障台数），按时间加权平均；全部设备保养或无数据的时刻不计入。",
                "At each instant, devices up ÷ devices up or down, averaged over time; instants when no device is up or down are left out.",
            ),
        ),
        (
            lang.t("停机与故障次数", "Downtime and incidents"),
            lang.t(
                "停机为本月内故障时长（含上月延续的故障）；故障次数为本月内有停机时间的故障，每个故障计一次：跨月的故障在两个月各计一次，网关离线或保养前后的同一故障只计一次（只有恢复运行才结束一个故障）。",
                "Downtime is time down this month (including an outage running in from last month); incidents are the faults with down time this month, each counted once: a fault across the month boundary counts in both months, one fault across a gateway outage or maintenance once (only a return to up ends a fault).",
            ),
        ),
        (
            lang.t("时间精度", "Time resolution"),
            lang.t(
                "通讯故障按轮询时刻计：失联设备按 max(轮询周期, recovery_resolution，默认 5 秒) 的间隔探测，恢复最迟在实际恢复后一个间隔内记入；同一线路上失联设备过多时间隔按线路时间放宽（最长 probe_interval_max，默认 60 秒），网关日志与 /metrics 会说明。",
                "Comms outages are dated by polls: a silent device is probed every max(poll interval, recovery_resolution, default 5 s), so its return is recorded at most one such spacing late; with many silent devices on one line the spacing widens with the line's time (at most probe_interval_max, default 60 s), which the gateway's log and /metrics show.",
            ),
        ),
        (
            "MTBF / MTTR",
            lang.t(
                "运行时间 ÷ 故障次数；本月内故障时间 ÷ 故障次数。",
                "Time up ÷ incidents; time down this month ÷ incidents.",
            ),
        ),
        (
            lang.t("数据覆盖", "Coverage"),
            lang.t(
                "（运行 + 故障 + 保养）÷ 统计时长：网关掌握设备状态的时间比例。",
                "(Up + down + maintenance) ÷ the period: how much of the time the gateway knew the device's state.",
            ),
        ),
        (
            lang.t("工单指标", "Ticket figures"),
            lang.t(
                "维修及时率 = 期限内修复 ÷ 修复；返修率 = 返修 ÷ 修复（同一设备同类故障在返修期内再次出现）；普通工单期限为当日下班时间，紧急工单为开单后规定时限。中位数与 P90 按最近秩计算。",
                "Timeliness = repairs within their deadline ÷ repairs; rework rate = reopenings ÷ repairs (the same fault on the same device within the rework period); ordinary tickets are due at the end of their working day, critical ones within the critical deadline. Median and p90 by nearest rank.",
            ),
        ),
    ];
    for (term, def) in defs {
        let _ = write!(h, "<dt>{}</dt><dd>{}</dd>", esc(term), esc(def));
    }
    h.push_str("</dl>\n");
    let (from_t, until_t) = (
        local_minute(tz, r.period.from_ms),
        local_minute(tz, r.period.until_ms),
    );
    let para = match lang {
        Lang::Zh => format!(
            "统计期 {from_t} – {until_t}（{}）。全部设备在用期的数据覆盖：{}（{} / {}）。",
            r.period.timezone,
            percent_text(c.coverage),
            duration_text(c.known_ms, lang),
            duration_text(c.in_service_ms, lang),
        ),
        Lang::En => format!(
            "Period {from_t} – {until_t} ({}). Coverage of all devices' time in service: {} ({} of {}).",
            r.period.timezone,
            percent_text(c.coverage),
            duration_text(c.known_ms, lang),
            duration_text(c.in_service_ms, lang),
        ),
    };
    let _ = writeln!(h, "<p>{}</p>", esc(&para));
    let _ = write!(
        h,
        "<h3>{}</h3>",
        lang.t("无数据时段", "Periods without data")
    );
    if c.gaps.is_empty() {
        let _ = writeln!(h, "<p class=\"muted\">{}</p>", lang.t("无。", "None."));
    } else {
        let _ = writeln!(
            h,
            "<table><thead><tr><th>{}</th><th>{}</th><th class=\"n\">{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            lang.t("开始", "From"),
            lang.t("结束", "To"),
            lang.t("时长", "Length"),
            lang.t("原因", "Why"),
            lang.t("设备", "Devices"),
        );
        let total = r.devices.len();
        for g in &c.gaps {
            let who = if g.devices.len() == total && total > 1 {
                lang.t("全部设备", "all devices").to_owned()
            } else {
                g.devices.join(", ")
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"small\">{}</td></tr>",
                esc(&local_minute(tz, g.from_ms)),
                esc(&local_minute(tz, g.to_ms)),
                duration_text(g.to_ms - g.from_ms, lang),
                esc(&gap_reason_text(&g.reason, lang)),
                esc(&who),
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if c.short_gaps > 0 {
        let _ = writeln!(
            h,
            "<p class=\"small muted\">{}</p>",
            esc(&match lang {
                Lang::Zh => format!(
                    "另有 {} 段不足 1 分钟的无数据时段（共 {}），多为网关启动后首次连上设备前的几秒。",
                    c.short_gaps,
                    duration_text(c.short_gaps_ms, lang)
                ),
                Lang::En => format!(
                    "Also {} stretches without data shorter than a minute ({} in all), mostly the seconds after a gateway start before a device is reached.",
                    c.short_gaps,
                    duration_text(c.short_gaps_ms, lang)
                ),
            })
        );
    }
    let _ = write!(
        h,
        "<h3>{}</h3>",
        lang.t("计划保养窗口", "Planned maintenance windows")
    );
    if c.windows.is_empty() {
        let _ = writeln!(h, "<p class=\"muted\">{}</p>", lang.t("无。", "None."));
    } else {
        let _ = writeln!(
            h,
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            lang.t("窗口", "Window"),
            lang.t("对象", "Applies to"),
            lang.t("时间", "When"),
            lang.t("说明", "Note"),
        );
        for w in &c.windows {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&w.id),
                esc(&w.target),
                esc(&w.schedule),
                esc(&w.note)
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</section>\n");
}
