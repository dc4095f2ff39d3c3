//! Monthly availability reports across all sites, from the central ledger
//! (`docs/report.md`): `GET /reports` (month picker and site chooser) and
//! `GET /reports/{YYYY-MM}?site=S&lang=zh|en&format=html|csv|xlsx|json`
//! (`&section=NAME` picks the CSV's one table, default `devices`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use gateway_core::model::DeviceClass;
use gateway_core::report::{
    Lang, ReportError, SECTIONS, SiteInfo, build, parse_month, to_csv, to_html, to_json, to_xlsx,
};
use serde::Deserialize;
use serde_json::json;

use crate::state::{Shared, now_ms};

/// The time zone of the sites' calendar months.
pub const TIMEZONE: &str = "Asia/Shanghai";

/// [`TIMEZONE`], parsed.
pub fn zone() -> chrono_tz::Tz {
    gateway_core::ledger::parse_tz(TIMEZONE).unwrap_or(chrono_tz::Asia::Shanghai)
}

/// `[[report_site]]`: what the report of one site needs that its gateways
/// do not publish.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSite {
    /// The site id (the gateways' `site`).
    pub site: String,
    /// The name in the report's header. Default: the id.
    #[serde(default)]
    pub name: Option<String>,
    /// The site's IANA time zone (calendar months and days). Default
    /// `Asia/Shanghai`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Class targets in per cent, as the gateway's `[availability.class.*]
    /// target`, e.g. `{ pump = 97.5 }`. Default: the service standard's.
    #[serde(default)]
    pub class_targets: BTreeMap<String, f64>,
}

/// Errors of the `[[report_site]]` entries (unknown zone or class, target
/// outside 0–100, a site given twice).
pub fn check_sites(sites: &[ReportSite]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for s in sites {
        if !seen.insert(s.site.as_str()) {
            errors.push(format!(
                "[[report_site]] site = {:?} is given twice",
                s.site
            ));
        }
        if let Some(tz) = &s.timezone
            && let Err(e) = gateway_core::ledger::parse_tz(tz)
        {
            errors.push(format!(
                "[[report_site]] site = {:?}: timezone: {e}",
                s.site
            ));
        }
        for (class, target) in &s.class_targets {
            if class_of(class).is_none() {
                errors.push(format!(
                    "[[report_site]] site = {:?}: class_targets: unknown class {class:?}; use one of {}",
                    s.site,
                    DeviceClass::ALL.map(DeviceClass::as_str).join(", ")
                ));
            }
            if !(0.0..=100.0).contains(target) {
                errors.push(format!(
                    "[[report_site]] site = {:?}: class_targets.{class} = {target}: give a per cent between 0 and 100",
                    s.site
                ));
            }
        }
    }
    errors
}

fn class_of(name: &str) -> Option<DeviceClass> {
    DeviceClass::ALL.into_iter().find(|c| c.as_str() == name)
}

/// The site's header, zone and class targets: its `[[report_site]]` or
/// the defaults.
fn site_info(shared: &Shared, id: &str) -> (SiteInfo, BTreeMap<DeviceClass, f64>) {
    let conf = shared
        .settings
        .file
        .report_sites
        .iter()
        .find(|s| s.site == id);
    let info = SiteInfo {
        id: id.to_owned(),
        name: conf
            .and_then(|c| c.name.clone())
            .unwrap_or_else(|| id.to_owned()),
        timezone: conf
            .and_then(|c| c.timezone.clone())
            .unwrap_or_else(|| TIMEZONE.to_owned()),
    };
    let targets = conf
        .map(|c| {
            c.class_targets
                .iter()
                .filter_map(|(k, v)| Some((class_of(k)?, *v)))
                .collect()
        })
        .unwrap_or_default();
    (info, targets)
}

/// Why a report is not built.
enum Refused {
    /// The site is not in the ledger: the sites that are.
    UnknownSite(Vec<String>),
    /// The month begins before the site's retention cutoff (this one).
    NotKept(i64),
}

/// The routes (behind the read gate like the other pages).
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/reports", get(index))
        .route("/reports/{month}", get(report))
}

/// Query of both pages.
#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    site: Option<String>,
    lang: Option<String>,
    format: Option<String>,
    /// The one table of a CSV download (default `devices`).
    section: Option<String>,
    /// The report as it stood at this time (Unix ms; default now).
    at: Option<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Html,
    Csv,
    Xlsx,
    Json,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn t(lang: Lang, zh: &'static str, en: &'static str) -> &'static str {
    if lang == Lang::En { en } else { zh }
}

/// An error page (or `{"error": …}` for `format=json`).
fn error(status: StatusCode, format: Format, lang: Lang, text: &str) -> Response {
    if format == Format::Json {
        return (status, axum::Json(json!({ "error": text }))).into_response();
    }
    let html = format!(
        "<!doctype html><html lang=\"{l}\"><head><meta charset=\"utf-8\"><title>{code} · BMS</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\"></head><body><div class=\"page\">\
         <h1>{code}</h1><p id=\"error\">{msg}</p><p><a href=\"/reports{q}\">{back}</a> · <a href=\"/\">{wall}</a></p>\
         </div></body></html>",
        l = t(lang, "zh-CN", "en"),
        code = status.as_u16(),
        msg = esc(text),
        q = t(lang, "", "?lang=en"),
        back = t(lang, "月报", "Monthly reports"),
        wall = t(lang, "墙面", "Wall"),
    );
    (status, Html(html)).into_response()
}

fn sites(shared: &Shared) -> Result<Vec<String>, String> {
    let Some(l) = &shared.ledger else {
        return Ok(Vec::new());
    };
    let conn = crate::ledger::open(l.path()).map_err(|e| e.to_string())?;
    crate::ledger::sites(&conn).map_err(|e| e.to_string())
}

async fn index(State(shared): State<Arc<Shared>>, Query(q): Query<ReportQuery>) -> Response {
    let lang = q.lang.as_deref().and_then(Lang::parse).unwrap_or_default();
    let s = shared.clone();
    let list = match tokio::task::spawn_blocking(move || sites(&s)).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, Format::Html, lang, &e);
        }
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Format::Html,
                lang,
                &e.to_string(),
            );
        }
    };
    let (y, m) = gateway_core::ledger::month_of(zone(), now_ms());
    let this = format!("{y:04}-{m:02}");
    let options: String = list
        .iter()
        .map(|s| format!("<option value=\"{0}\">{0}</option>", esc(s)))
        .collect();
    let body = if list.is_empty() {
        format!(
            "<p id=\"empty\">{}</p>",
            t(
                lang,
                "还没有收到任何网关的设备事件。网关连接到同一 MQTT 服务器后，这里会列出它们的项目。",
                "No gateway has reported device events yet. Sites appear here once their gateways publish to this broker."
            )
        )
    } else {
        format!(
            "<form method=\"get\" id=\"picker\">\
             <label>{site} <select name=\"site\" id=\"site\">{options}</select></label> \
             <label>{month} <input type=\"month\" name=\"month\" id=\"month\" value=\"{this}\" max=\"{this}\" required></label> \
             <label>{format} <select name=\"format\"><option value=\"html\">HTML</option><option value=\"xlsx\">Excel (xlsx)</option><option value=\"csv\">CSV</option><option value=\"json\">JSON</option></select></label> \
             <input type=\"hidden\" name=\"lang\" value=\"{l}\"> <button type=\"submit\">{open}</button></form>\
             <h2>{this_month}</h2><ul id=\"sites\">{links}</ul>",
            site = t(lang, "项目", "Site"),
            month = t(lang, "月份", "Month"),
            format = t(lang, "格式", "Format"),
            open = t(lang, "打开", "Open"),
            this_month = t(lang, "本月报告", "This month"),
            l = t(lang, "zh", "en"),
            links = list
                .iter()
                .map(|s| format!(
                    "<li><a href=\"/reports/{this}?site={0}&amp;lang={1}\">{0}</a> · \
                     <a href=\"/reports/{this}?site={0}&amp;format=xlsx&amp;lang={1}\">Excel</a> · \
                     <a href=\"/reports/{this}?site={0}&amp;format=csv&amp;lang={1}\">CSV</a> · \
                     <a href=\"/reports/{this}?site={0}&amp;format=json\">JSON</a></li>",
                    esc(s),
                    t(lang, "zh", "en")
                ))
                .collect::<String>(),
        )
    };
    let html = format!(
        "<!doctype html><html lang=\"{l}\"><head><meta charset=\"utf-8\"><title>{title} · BMS</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\"></head><body><div class=\"page\">\
         <header><h1>{title}</h1><nav><a href=\"/\">{wall}</a> · <a href=\"/tickets\">{tickets}</a> · \
         <a href=\"/reports?lang={other}\" id=\"lang\">{other_name}</a></nav></header>{body}\
         <p class=\"note\">{note}</p></div><script src=\"/assets/reports.js\"></script></body></html>",
        l = t(lang, "zh-CN", "en"),
        title = t(lang, "设备完好率月报", "Monthly availability report"),
        wall = t(lang, "墙面", "Wall"),
        tickets = t(lang, "工单", "Tickets"),
        other = t(lang, "en", "zh"),
        other_name = t(lang, "English", "中文"),
        note = t(
            lang,
            "报告由各网关发布的设备状态变化和工单重建，与网关本地的 gateway report 结果一致。",
            "Rebuilt from the state changes and tickets the gateways publish; it agrees with each gateway's own `gateway report`."
        ),
    );
    ([(header::CACHE_CONTROL, "no-cache")], Html(html)).into_response()
}

async fn report(
    State(shared): State<Arc<Shared>>,
    Path(month): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Response {
    let lang = q.lang.as_deref().and_then(Lang::parse).unwrap_or_default();
    let format = match q.format.as_deref().map(str::trim) {
        None | Some("" | "html") => Format::Html,
        Some("csv") => Format::Csv,
        Some("xlsx") => Format::Xlsx,
        Some("json") => Format::Json,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                Format::Html,
                lang,
                &format!("format {other:?} is not known; use html, csv, xlsx or json"),
            );
        }
    };
    let section = q.section.as_deref().map(str::trim).unwrap_or("devices");
    if !SECTIONS.contains(&section) || (q.section.is_some() && format != Format::Csv) {
        return error(
            StatusCode::BAD_REQUEST,
            format,
            lang,
            &format!(
                "section {section:?} is not a CSV table of the report; use format=csv with one of {}",
                SECTIONS.join(", ")
            ),
        );
    }
    if let Some(l) = &q.lang
        && Lang::parse(l).is_none()
    {
        return error(
            StatusCode::BAD_REQUEST,
            format,
            lang,
            &format!("lang {l:?} is not known; use zh or en"),
        );
    }
    let (year, month_no) = match parse_month(&month) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, format, lang, &e.to_string()),
    };
    let Some(ledger) = &shared.ledger else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format,
            lang,
            "the central ledger could not be opened at start; see the dashboard's log",
        );
    };
    let path = ledger.path().to_owned();
    let site = q.site.clone().unwrap_or_default();
    let mut now = now_ms();
    if let Some(at) = q.at {
        if at > now || at <= 0 {
            return error(
                StatusCode::BAD_REQUEST,
                format,
                lang,
                &format!("at={at} is not a past time; give Unix milliseconds up to now ({now})"),
            );
        }
        now = at;
    }
    let s = site.clone();
    let (info, class_targets) = site_info(&shared, &site);
    let tz = gateway_core::ledger::parse_tz(&info.timezone).unwrap_or_else(|_| zone());
    let done = tokio::task::spawn_blocking(move || {
        let conn = crate::ledger::open(&path).map_err(|e| e.to_string())?;
        let known = crate::ledger::sites(&conn).map_err(|e| e.to_string())?;
        if !known.contains(&s) {
            return Ok(Err(Refused::UnknownSite(known)));
        }
        // A month before the site's retention cutoff: partly deleted.
        if let (Ok((from, _)), Some(kept)) = (
            gateway_core::ledger::month_window(tz, year, month_no),
            crate::ledger::retention::retained_from(&conn, &s).map_err(|e| e.to_string())?,
        ) && from < kept
        {
            return Ok(Err(Refused::NotKept(kept)));
        }
        crate::ledger::input(&conn, &info, year, month_no, now)
            .map_err(|e| e.to_string())
            .map(|i| {
                i.map(|mut i| {
                    i.class_targets = class_targets;
                    i
                })
                .ok_or(Refused::UnknownSite(Vec::new()))
            })
    })
    .await;
    let input = match done {
        Ok(Ok(Ok(i))) => i,
        Ok(Ok(Err(Refused::NotKept(kept)))) => {
            let (y, m) = gateway_core::ledger::month_of(tz, kept);
            return error(
                StatusCode::NOT_FOUND,
                format,
                lang,
                &format!(
                    "{year}-{month_no:02} is before the data this dashboard keeps for site {site:?}: older transitions and tickets were deleted ([ledger] keep_months = {} in the dashboard's configuration); the first month that can be reported is {y}-{m:02}, and the gateway's own `gateway report` may still have this month",
                    shared.settings.file.ledger.keep_months
                ),
            );
        }
        Ok(Ok(Err(Refused::UnknownSite(known)))) => {
            let what = if site.is_empty() {
                "no site given; add ?site=<site id>".to_owned()
            } else {
                format!("site {site:?} is not known to this dashboard")
            };
            let status = if site.is_empty() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::NOT_FOUND
            };
            return error(
                status,
                format,
                lang,
                &format!("{what}; the sites with data are: {}", known.join(", ")),
            );
        }
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, format, lang, &e),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format,
                lang,
                &e.to_string(),
            );
        }
    };
    let r = match build(&input) {
        Ok(r) => r,
        Err(e @ (ReportError::BadMonth(_) | ReportError::FutureMonth { .. })) => {
            return error(StatusCode::BAD_REQUEST, format, lang, &e.to_string());
        }
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format,
                lang,
                &e.to_string(),
            );
        }
    };
    let name = format!(
        "report-{}-{:04}-{:02}",
        site.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
            "_"
        ),
        year,
        month_no
    );
    let (ty, body, ext) = match format {
        Format::Html => {
            // One self-contained printable page: its inline `<style>` is
            // allowed by hash (crate::headers), nothing else inline.
            let html = to_html(&r, lang);
            let mut resp =
                ([(header::CACHE_CONTROL, "no-cache")], Html(html.clone())).into_response();
            crate::headers::allow_inline_styles(&mut resp, &html);
            return resp;
        }
        Format::Csv => match to_csv(&r, section, lang) {
            Some(text) => ("text/csv; charset=utf-8", text.into_bytes(), "csv"),
            None => {
                return error(StatusCode::BAD_REQUEST, format, lang, "unknown section");
            }
        },
        Format::Xlsx => match to_xlsx(&r, lang) {
            Ok(book) => (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                book,
                "xlsx",
            ),
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format,
                    lang,
                    &e.to_string(),
                );
            }
        },
        Format::Json => match to_json(&r) {
            Ok(j) => ("application/json", j.into_bytes(), "json"),
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format,
                    lang,
                    &e.to_string(),
                );
            }
        },
    };
    let name = if format == Format::Csv {
        format!("{name}-{section}")
    } else {
        name
    };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{ext}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ty)),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_sites_are_checked_with_clear_messages() {
        let c: crate::config::Config = toml::from_str(
            "[[report_site]]\nsite = \"a\"\nname = \"湖畔\"\ntimezone = \"Europe/Berlin\"\nclass_targets = { pump = 97.5 }\n\
             [[report_site]]\nsite = \"b\"\ntimezone = \"Mars/Base\"\nclass_targets = { pumps = 120.0 }\n\
             [[report_site]]\nsite = \"a\"\n",
        )
        .unwrap();
        let e = check_sites(&c.report_sites).join("\n");
        assert!(e.contains("\"Mars/Base\""), "{e}");
        assert!(e.contains("unknown class \"pumps\""), "{e}");
        assert!(e.contains("between 0 and 100"), "{e}");
        assert!(e.contains("\"a\" is given twice"), "{e}");
        assert!(!e.contains("\"Europe/Berlin\""), "{e}");
        assert!(check_sites(&c.report_sites[..1]).is_empty());
    }

    #[tokio::test]
    async fn a_month_before_the_retention_cutoff_is_404_naming_the_setting() {
        use chrono::TimeZone;
        let local = |y, m, d| {
            chrono_tz::Asia::Shanghai
                .with_ymd_and_hms(y, m, d, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        };
        let dir = tempfile::tempdir().unwrap();
        {
            let c = crate::ledger::open(&dir.path().join(crate::ledger::FILE)).unwrap();
            c.execute(
                "INSERT INTO transitions (site, gateway, seq, device, at_ms, from_state, to_state)
                 VALUES ('s1', 'gw', 1, 'pump-1', ?1, 'unknown', 'up')",
                [local(2024, 10, 15)],
            )
            .unwrap();
            c.execute(
                "INSERT INTO retention (site, from_ms) VALUES ('s1', ?1)",
                [local(2024, 11, 1)],
            )
            .unwrap();
        }
        let text = format!(
            "data_dir = {:?}\n[ledger]\nkeep_months = 24\n",
            dir.path().display().to_string()
        );
        let settings = crate::config::check(toml::from_str(&text).unwrap(), dir.path()).unwrap();
        let mut shared = Shared::new(settings);
        shared.ledger = Some(
            crate::ledger::Ledger::start(
                dir.path(),
                crate::ledger::Retention::of(&shared.settings),
            )
            .unwrap(),
        );
        let shared = Arc::new(shared);
        let get_section = |month: &str, format: &str, section: Option<&str>| {
            report(
                State(shared.clone()),
                Path(month.to_owned()),
                Query(ReportQuery {
                    site: Some("s1".to_owned()),
                    lang: None,
                    format: Some(format.to_owned()),
                    section: section.map(str::to_owned),
                    at: Some(local(2025, 6, 1)),
                }),
            )
        };
        let get = |month: &str, format: &str| get_section(month, format, None);
        let r = get("2024-10", "json").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let e = v["error"].as_str().unwrap();
        assert!(
            e.contains("2024-10 is before the data this dashboard keeps"),
            "{e}"
        );
        assert!(e.contains("[ledger] keep_months = 24"), "{e}");
        assert!(
            e.contains("first month that can be reported is 2024-11"),
            "{e}"
        );
        let r = get("2024-10", "html").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(get("2024-11", "json").await.status(), StatusCode::OK);

        // Downloads for office work: a one-table CSV with a BOM, a workbook.
        let r = get_section("2024-11", "csv", Some("gaps")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let name = r.headers()[header::CONTENT_DISPOSITION].to_str().unwrap();
        assert!(name.ends_with("-2024-11-gaps.csv\""), "{name}");
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(body.starts_with("\u{feff}开始,结束,".as_bytes()));
        let r = get("2024-11", "xlsx").await;
        assert_eq!(r.status(), StatusCode::OK);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(body.starts_with(b"PK\x03\x04"), "a zip container");
        for (format, section) in [("csv", "everything"), ("json", "devices")] {
            let r = get_section("2024-11", format, Some(section)).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{format} {section}");
        }
    }
}
