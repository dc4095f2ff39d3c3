//! The report as tables for office work: one [`Table`] per section, with
//! headers in the report's language and typed cells (percentages, hours,
//! minutes, local times), rendered by [`super::csv`] (one CSV file per
//! table) and [`super::xlsx`] (one sheet per table).

use chrono_tz::Tz;

use super::{Lang, class_name, gap_reason_text, local_fmt, zone};
use crate::report::MonthReport;
use crate::state::UnixMs;
use crate::tickets::Severity;

/// One cell of a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text as is.
    Text(String),
    /// A count or a number shown as is.
    Int(i64),
    /// A fraction 0–1 shown as a percentage (`99.51`, the header says %);
    /// empty for none.
    Percent(Option<f64>),
    /// A duration in ms shown in hours (`710.50`); empty for none.
    Hours(Option<i64>),
    /// A duration in ms shown in minutes (`59.95`); empty for none.
    Minutes(Option<i64>),
    /// An instant shown as the site's local time; empty for none.
    Time(Option<UnixMs>),
    /// Met / missed against a target; empty when not judged.
    Met(Option<bool>),
    /// Yes / no.
    Flag(bool),
}

/// One section of the report as a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The section's id: the CSV file's suffix and `--section` value
    /// (`devices`).
    pub id: &'static str,
    /// Its title in the report's language (the sheet name).
    pub title: &'static str,
    /// Column headers in the report's language, units included.
    pub columns: Vec<&'static str>,
    /// The rows, each as long as `columns`.
    pub rows: Vec<Vec<Cell>>,
}

/// The ids of the sections, in order: what `--section` accepts.
pub const SECTIONS: [&str; 12] = [
    "period",
    "classes",
    "kpis",
    "devices",
    "days",
    "tickets",
    "tickets_by_class",
    "missed",
    "reworks",
    "coverage",
    "gaps",
    "windows",
];

/// The text of a cell in CSV: numbers with two decimals, times as the
/// site's local time, met / missed and yes / no in the report's language.
pub fn cell_text(c: &Cell, tz: Tz, lang: Lang) -> String {
    let fixed = |v: f64| format!("{v:.2}");
    match c {
        Cell::Text(s) => s.clone(),
        Cell::Int(n) => n.to_string(),
        Cell::Percent(f) => f.map_or_else(String::new, |f| fixed(f * 100.0)),
        Cell::Hours(ms) => ms.map_or_else(String::new, |ms| fixed(ms as f64 / 3_600_000.0)),
        Cell::Minutes(ms) => ms.map_or_else(String::new, |ms| fixed(ms as f64 / 60_000.0)),
        Cell::Time(t) => t.map_or_else(String::new, |t| local_time(tz, t)),
        Cell::Met(m) => m.map_or_else(String::new, |m| {
            if m {
                lang.t("达标", "met").to_owned()
            } else {
                lang.t("未达标", "missed").to_owned()
            }
        }),
        Cell::Flag(b) => if *b {
            lang.t("是", "yes")
        } else {
            lang.t("否", "no")
        }
        .to_owned(),
    }
}

/// `2026-11-03 14:00:00` in the zone.
pub(super) fn local_time(tz: Tz, ms: UnixMs) -> String {
    local_fmt(tz, ms, "%Y-%m-%d %H:%M:%S")
}

fn severity(s: Severity, lang: Lang) -> String {
    match s {
        Severity::Critical => lang.t("紧急", "critical"),
        Severity::Ordinary => lang.t("普通", "ordinary"),
    }
    .to_owned()
}

/// Every section of the report as a table, in [`SECTIONS`] order.
pub fn tables(r: &MonthReport, lang: Lang) -> Vec<Table> {
    let t = |zh: &'static str, en: &'static str| lang.t(zh, en);
    let text = |s: &str| Cell::Text(s.to_owned());
    let count = |n: u32| Cell::Int(i64::from(n));
    let target = |p: f64| Cell::Percent(Some(p / 100.0));
    let mut out = Vec::with_capacity(SECTIONS.len());

    let p = &r.period;
    out.push(Table {
        id: "period",
        title: t("统计期", "Period"),
        columns: vec![
            t("项目编号", "Site id"),
            t("项目", "Site"),
            t("月份", "Month"),
            t("开始", "From"),
            t("结束", "To"),
            t("统计至", "Reported until"),
            t("时长（小时）", "Length (h)"),
            t("本月未结束", "In progress"),
            t("时区", "Time zone"),
            t("生成时间", "Generated"),
        ],
        rows: vec![vec![
            text(&r.site.id),
            text(&r.site.name),
            text(&p.month),
            Cell::Time(Some(p.from_ms)),
            Cell::Time(Some(p.to_ms)),
            Cell::Time(Some(p.until_ms)),
            Cell::Hours(Some(p.length_ms)),
            Cell::Flag(p.in_progress),
            text(&p.timezone),
            Cell::Time(Some(r.generated_ms)),
        ]],
    });

    out.push(Table {
        id: "classes",
        title: t("按设备类别", "By class"),
        columns: vec![
            t("设备类别", "Class"),
            t("台数", "Devices"),
            t("目标（%）", "Target (%)"),
            t("设备完好率（时间）（%）", "Availability (time) (%)"),
            t("设备完好率结论", "Availability result"),
            t("传统完好率（%）", "Intact rate (%)"),
            t("传统完好率结论", "Intact rate result"),
            t("运行（小时）", "Up (h)"),
            t("停机（分钟）", "Downtime (min)"),
            t("保养（分钟）", "Maintenance (min)"),
            t("无数据（小时）", "No data (h)"),
            t("故障次数", "Incidents"),
            t("MTBF（小时）", "MTBF (h)"),
            t("MTTR（分钟）", "MTTR (min)"),
            t("数据覆盖（%）", "Coverage (%)"),
        ],
        rows: r
            .classes
            .iter()
            .map(|k| {
                let f = &k.figures;
                vec![
                    text(class_name(k.class, lang)),
                    count(k.devices),
                    target(k.target_percent),
                    Cell::Percent(f.availability),
                    Cell::Met(k.availability_met),
                    Cell::Percent(k.intact_rate),
                    Cell::Met(k.intact_met),
                    Cell::Hours(Some(f.totals.up_ms)),
                    Cell::Minutes(Some(f.totals.down_ms)),
                    Cell::Minutes(Some(f.totals.maintenance_ms)),
                    Cell::Hours(Some(f.totals.unknown_ms)),
                    count(f.incidents),
                    Cell::Hours(f.mtbf_ms),
                    Cell::Minutes(f.mttr_ms),
                    Cell::Percent(f.coverage),
                ]
            })
            .collect(),
    });

    let k = &r.kpis;
    out.push(Table {
        id: "kpis",
        title: t("工程维修指标", "Repair KPIs"),
        columns: vec![
            t("指标", "KPI"),
            t("本月（%）", "This month (%)"),
            t("本月（次）", "This month (count)"),
            t("目标", "Target"),
            t("结论", "Result"),
        ],
        rows: vec![
            vec![
                text(t("维修及时率", "Repair timeliness")),
                Cell::Percent(k.timeliness),
                Cell::Text(String::new()),
                text(t("100 %", "100 %")),
                Cell::Met(k.timeliness_met),
            ],
            vec![
                text(t("返修率", "Rework rate")),
                Cell::Percent(k.rework_rate),
                Cell::Text(String::new()),
                text(t("< 1 %", "< 1 %")),
                Cell::Met(k.rework_met),
            ],
            vec![
                text(t(
                    "日常小修不过夜（过夜次数）",
                    "Small repairs left overnight",
                )),
                Cell::Text(String::new()),
                count(k.overnight),
                text("0"),
                Cell::Met(Some(k.overnight_met)),
            ],
        ],
    });

    out.push(Table {
        id: "devices",
        title: t("设备明细", "Per device"),
        columns: vec![
            t("设备编号", "Device id"),
            t("设备名称", "Device name"),
            t("设备类别", "Class"),
            t("位置", "Location"),
            t("目标（%）", "Target (%)"),
            t("设备完好率（%）", "Availability (%)"),
            t("结论", "Result"),
            t("运行（小时）", "Up (h)"),
            t("停机（分钟）", "Downtime (min)"),
            t("保养（分钟）", "Maintenance (min)"),
            t("无数据（小时）", "No data (h)"),
            t("故障次数", "Incidents"),
            t("MTBF（小时）", "MTBF (h)"),
            t("MTTR（分钟）", "MTTR (min)"),
            t("数据覆盖（%）", "Coverage (%)"),
            t("在用起", "In service from"),
            t("在用至", "In service to"),
            t("在用期数据覆盖（%）", "Coverage in service (%)"),
        ],
        rows: r
            .devices
            .iter()
            .map(|d| {
                let f = &d.figures;
                vec![
                    text(&d.id),
                    text(match lang {
                        Lang::Zh => &d.name_zh,
                        Lang::En => &d.name_en,
                    }),
                    text(class_name(d.class, lang)),
                    text(&d.location),
                    target(d.target_percent),
                    Cell::Percent(f.availability),
                    Cell::Met(d.met),
                    Cell::Hours(Some(f.totals.up_ms)),
                    Cell::Minutes(Some(f.downtime_ms)),
                    Cell::Minutes(Some(f.maintenance_ms)),
                    Cell::Hours(Some(f.totals.unknown_ms)),
                    count(f.incidents),
                    Cell::Hours(f.mtbf_ms),
                    Cell::Minutes(f.mttr_ms),
                    Cell::Percent(f.coverage),
                    Cell::Time(Some(d.in_service_from_ms)),
                    Cell::Time(Some(d.in_service_to_ms)),
                    Cell::Percent(d.service_coverage),
                ]
            })
            .collect(),
    });

    out.push(Table {
        id: "days",
        title: super::term(crate::glossary::DAILY_AVAILABILITY, lang),
        columns: vec![
            t("设备编号", "Device id"),
            t("日期", "Date"),
            t("设备完好率（%）", "Availability (%)"),
            t("停机（分钟）", "Downtime (min)"),
            t("保养（分钟）", "Maintenance (min)"),
            t("无数据（分钟）", "No data (min)"),
            t("尚未到来", "Still to come"),
        ],
        rows: r
            .devices
            .iter()
            .flat_map(|d| {
                d.days.iter().map(|day| {
                    vec![
                        text(&d.id),
                        text(&day.date),
                        Cell::Percent(day.availability),
                        Cell::Minutes(Some(day.down_ms)),
                        Cell::Minutes(Some(day.maintenance_ms)),
                        Cell::Minutes(Some(day.unknown_ms)),
                        Cell::Flag(day.future),
                    ]
                })
            })
            .collect(),
    });

    let f = &r.tickets.figures;
    out.push(Table {
        id: "tickets",
        title: t("工单指标", "Ticket figures"),
        columns: vec![
            t("新开工单", "Opened"),
            t("其中紧急", "of which critical"),
            t("其中普通", "of which ordinary"),
            t("响应时间 中位数（分钟）", "Response time, median (min)"),
            t("响应时间 P90（分钟）", "Response time, p90 (min)"),
            t("修复时间 中位数（分钟）", "Repair time, median (min)"),
            t("修复时间 P90（分钟）", "Repair time, p90 (min)"),
            t("修复", "Repaired"),
            t("按期修复", "Repaired on time"),
            t("维修及时率（%）", "Repair timeliness (%)"),
            t("返修", "Reworks"),
            t("返修率（%）", "Rework rate (%)"),
            t("过夜未修", "Left overnight"),
        ],
        rows: vec![vec![
            count(f.opened),
            count(f.critical),
            count(f.ordinary),
            Cell::Minutes(f.response_median_ms),
            Cell::Minutes(f.response_p90_ms),
            Cell::Minutes(f.repair_median_ms),
            Cell::Minutes(f.repair_p90_ms),
            count(f.resolved),
            count(f.on_time),
            Cell::Percent(f.timeliness),
            count(f.reworks),
            Cell::Percent(f.rework_rate),
            count(f.overnight),
        ]],
    });

    out.push(Table {
        id: "tickets_by_class",
        title: t("工单按设备类别", "Tickets by class"),
        columns: vec![
            t("设备类别", "Class"),
            t("新开工单", "Opened"),
            t("其中紧急", "of which critical"),
            t("其中普通", "of which ordinary"),
        ],
        rows: r
            .tickets
            .by_class
            .iter()
            .map(|b| {
                vec![
                    text(class_name(b.class, lang)),
                    count(b.opened),
                    count(b.critical),
                    count(b.ordinary),
                ]
            })
            .collect(),
    });

    out.push(Table {
        id: "missed",
        title: t("超时工单", "Missed deadlines"),
        columns: vec![
            t("工单号", "Ticket"),
            t("设备编号", "Device id"),
            t("设备类别", "Class"),
            t("级别", "Severity"),
            t("内容", "Summary"),
            t("开单", "Started"),
            t("期限", "Deadline"),
            t("修复", "Resolved"),
        ],
        rows: r
            .tickets
            .missed
            .iter()
            .map(|m| {
                vec![
                    Cell::Int(i64::try_from(m.ticket).unwrap_or(i64::MAX)),
                    text(&m.device),
                    text(class_name(m.class, lang)),
                    Cell::Text(severity(m.severity, lang)),
                    text(&m.summary),
                    Cell::Time(Some(m.start_ms)),
                    Cell::Time(Some(m.deadline_ms)),
                    Cell::Time(m.resolved_ms),
                ]
            })
            .collect(),
    });

    out.push(Table {
        id: "reworks",
        title: t("返修工单", "Reworks"),
        columns: vec![
            t("工单号", "Ticket"),
            t("设备编号", "Device id"),
            t("设备类别", "Class"),
            t("类型", "Kind"),
            t("本月返修", "Reworks this month"),
            t("步骤", "Step"),
            t("时间", "When"),
            t("经办人", "By"),
            t("说明", "Note"),
        ],
        rows: r
            .tickets
            .reworks
            .iter()
            .flat_map(|w| {
                w.trail.iter().map(|h| {
                    vec![
                        Cell::Int(i64::try_from(w.ticket).unwrap_or(i64::MAX)),
                        text(&w.device),
                        text(class_name(w.class, lang)),
                        text(&w.kind),
                        count(w.reworks_in_period),
                        text(h.kind.as_str()),
                        Cell::Time(Some(h.at_ms)),
                        text(&h.by),
                        text(&h.note),
                    ]
                })
            })
            .collect(),
    });

    let cv = &r.coverage;
    out.push(Table {
        id: "coverage",
        title: t("数据覆盖", "Coverage"),
        columns: vec![
            t("在用时间（小时）", "In service (h)"),
            t("有数据（小时）", "With data (h)"),
            t("数据覆盖（%）", "Coverage (%)"),
            t("短时无数据（次）", "Short gaps (count)"),
            t("短时无数据（分钟）", "Short gaps (min)"),
        ],
        rows: vec![vec![
            Cell::Hours(Some(cv.in_service_ms)),
            Cell::Hours(Some(cv.known_ms)),
            Cell::Percent(cv.coverage),
            count(cv.short_gaps),
            Cell::Minutes(Some(cv.short_gaps_ms)),
        ]],
    });

    out.push(Table {
        id: "gaps",
        title: t("无数据时段", "Periods without data"),
        columns: vec![
            t("开始", "From"),
            t("结束", "To"),
            t("时长（分钟）", "Length (min)"),
            t("原因", "Why"),
            t("设备", "Devices"),
        ],
        rows: cv
            .gaps
            .iter()
            .map(|g| {
                vec![
                    Cell::Time(Some(g.from_ms)),
                    Cell::Time(Some(g.to_ms)),
                    Cell::Minutes(Some(g.to_ms - g.from_ms)),
                    Cell::Text(gap_reason_text(&g.reason, lang)),
                    Cell::Text(g.devices.join(" ")),
                ]
            })
            .collect(),
    });

    out.push(Table {
        id: "windows",
        title: t("计划保养窗口", "Maintenance windows"),
        columns: vec![
            t("窗口", "Window"),
            t("对象", "Applies to"),
            t("时间", "When"),
            t("说明", "Note"),
        ],
        rows: cv
            .windows
            .iter()
            .map(|w| {
                vec![
                    text(&w.id),
                    text(&w.target),
                    text(&w.schedule),
                    text(&w.note),
                ]
            })
            .collect(),
    });
    out
}

/// The zone of the report, for rendering cells.
pub(super) fn report_zone(r: &MonthReport) -> Tz {
    zone(r)
}
