//! The web server: pages and assets from the binary, the JSON API
//! (`docs/api.md`) and the server-sent events stream.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::auth::{LoginError, Session};
use crate::commands::{CommandError, TICKET_OPS, ticket_op};
use crate::state::{Shared, now_ms};

type St = State<Arc<Shared>>;

const SESSION_COOKIE: &str = "bms_session";
const KIOSK_COOKIE: &str = crate::kiosk::COOKIE;
/// Header carrying the CSRF token of the session on every writing request.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// SSE: at most one snapshot per this interval per stream.
const SSE_MIN_INTERVAL: Duration = Duration::from_millis(250);
/// SSE: a snapshot at least this often (staleness, clock).
const SSE_MAX_INTERVAL: Duration = Duration::from_secs(5);
/// SSE: a keep-alive comment this often (below `[http] idle_timeout`).
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The router of every page and API.
pub fn router(shared: Arc<Shared>) -> Router {
    let read = Router::new()
        .route("/", get(|| async { page(WALL_HTML) }))
        .route("/tickets", get(|| async { page(TICKETS_HTML) }))
        .route("/devices/{site}/{gateway}/{id}", get(device_page))
        .route("/devices/{site}/{id}", get(legacy_device_page))
        .route("/api/snapshot", get(snapshot))
        .route("/api/health", get(health))
        .route("/metrics", get(metrics))
        .route(
            "/api/sites/{site}/gateways/{gateway}/devices/{id}",
            get(device_api),
        )
        .route(
            "/api/sites/{site}/gateways/{gateway}/devices/{id}/history",
            get(history_api),
        )
        .route("/api/sites/{site}/devices/{id}", get(legacy_device_api))
        .route(
            "/api/sites/{site}/devices/{id}/history",
            get(legacy_device_api),
        )
        .route("/api/tickets", get(tickets))
        .route("/api/tickets/{site}/{gateway}/{n}", get(ticket))
        .route("/events", get(events))
        .merge(crate::reports::routes()) // monthly reports (issue 7)
        .route_layer(middleware::from_fn_with_state(shared.clone(), read_gate));
    Router::new()
        .merge(read)
        .route("/assets/{file}", get(asset))
        .route("/login", get(|| async { page(TICKETS_HTML) }))
        // The phone page of one ticket, the link of the alerts: see
        // `ticket_page` for why it is outside the read gate.
        .route("/tickets/{site}/{gateway}/{id}", get(ticket_page))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route(
            "/api/tickets/{site}/{gateway}/{n}/{op}",
            post(ticket_action),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            Arc::new(security_policy(&shared)),
            crate::headers::add,
        ))
        .with_state(shared)
}

fn security_policy(shared: &Shared) -> crate::headers::Policy {
    crate::headers::Policy::new(shared.settings.file.http.frame_ancestor.as_deref())
}

/// Serves until `stop`. The listener is bound by the caller so that a
/// busy port is reported before anything else starts.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let h = &shared.settings.file.http;
    let limits = crate::listener::Limits {
        header_timeout: h.header_timeout.get(),
        idle_timeout: h.idle_timeout.get(),
        max_connections: h.max_connections,
    };
    let refusal =
        crate::listener::refusal_text(&crate::headers::raw_lines(&security_policy(&shared)));
    let stats = shared.http_stats.clone();
    crate::listener::serve(
        listener,
        router(shared),
        limits,
        stats,
        refusal.into(),
        stop,
    )
    .await
}

/// Binds the HTTP listener with a clear message when the port is taken.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!(
            "cannot listen on {addr} for the web pages: {e}; is another dashboard running? \
             Choose another address with --listen (or [http] listen)"
        )
    })
}

const WALL_HTML: &str = include_str!("../assets/wall.html");
const TICKETS_HTML: &str = include_str!("../assets/tickets.html");
const DEVICE_HTML: &str = include_str!("../assets/device.html");
const NOT_FOUND_HTML: &str = include_str!("../assets/404.html");
const TICKET_HTML: &str = include_str!("../assets/ticket.html");

fn page(html: &'static str) -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(html)).into_response()
}

/// The glossary's names for the pages (`const GLOSSARY`), made once from
/// `gateway_core::glossary`: the pages show the names the report and the
/// alerts use.
static GLOSSARY_JS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(gateway_core::glossary::js);

async fn asset(Path(file): Path<String>) -> Response {
    let (ty, body): (&str, &'static [u8]) = match file.as_str() {
        "style.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../assets/style.css"),
        ),
        "common.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/common.js"),
        ),
        "glossary.js" => ("text/javascript; charset=utf-8", GLOSSARY_JS.as_bytes()),
        "wall.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/wall.js"),
        ),
        "tickets.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/tickets.js"),
        ),
        "ticketing.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/ticketing.js"),
        ),
        "ticket.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/ticket.js"),
        ),
        "phone.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../assets/phone.css"),
        ),
        "uPlot.iife.min.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/vendor/uplot/uPlot.iife.min.js"),
        ),
        "uPlot.min.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../assets/vendor/uplot/uPlot.min.css"),
        ),
        "device.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/device.js"),
        ),
        "reports.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/reports.js"),
        ),
        _ => return not_found_json("no such asset"),
    };
    (
        [
            (header::CONTENT_TYPE, ty),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn session(shared: &Shared, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = cookie(headers, SESSION_COOKIE)?;
    shared.auth.session(id).map(|s| (id.to_owned(), s))
}

fn wants_json(req_path: &str) -> bool {
    req_path.starts_with("/api/") || req_path == "/events"
}

/// Reading needs nothing when no kiosk token is configured; otherwise a
/// session or the kiosk token (`?kiosk=` once, then a cookie derived from
/// it: see [`crate::kiosk`]).
async fn read_gate(State(shared): St, req: Request, next: Next) -> Response {
    let Some(kiosk) = shared.settings.kiosk.clone() else {
        return next.run(req).await;
    };
    let secure = shared.settings.file.http.secure_cookie;
    let now_s = u64::try_from(now_ms() / 1000).unwrap_or(0);
    let set_cookie = |mut r: Response| {
        if let Ok(v) = HeaderValue::from_str(&kiosk.set_cookie(now_s, secure)) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        r
    };
    if session(&shared, req.headers()).is_some() {
        return next.run(req).await;
    }
    if let Some(c) = cookie(req.headers(), KIOSK_COOKIE)
        && let crate::kiosk::CookieCheck::Valid { renew } = kiosk.check_cookie(c, now_s)
    {
        let r = next.run(req).await;
        return if renew { set_cookie(r) } else { r };
    }
    let from_query = req
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| k == "kiosk" && kiosk.token_matches(v));
    if from_query {
        return set_cookie(next.run(req).await);
    }
    if wants_json(req.uri().path()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "log in, or open the wall page with ?kiosk=<token>"})),
        )
            .into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        Html("<!doctype html><meta charset=utf-8><title>401</title><link rel=\"stylesheet\" href=\"/assets/style.css\"><body class=\"refused\"><p>请登录，或以 <code>?kiosk=令牌</code> 打开墙面页。</p><p>Log in, or open the wall page with <code>?kiosk=TOKEN</code>.</p><p><a href=\"/login\">登录 / Log in</a></p>"),
    )
        .into_response()
}

fn snapshot_json(shared: &Shared) -> Json {
    let mut s = match shared.model.lock() {
        Ok(m) => m.snapshot(now_ms(), shared.stale_ms()),
        Err(_) => json!({"sites": []}),
    };
    if let (Ok(intact), Some(sites)) = (shared.intact.lock(), s["sites"].as_array_mut()) {
        for site in sites {
            let id = site["id"].as_str().unwrap_or("").to_owned();
            if let Some(classes) = site["classes"].as_object_mut() {
                for (class, f) in classes.iter_mut() {
                    f["intact_month"] = json!(intact.get(&id).and_then(|m| m.get(class)));
                }
            }
        }
    }
    // Month to date and the downtime left, as of now (not of the last
    // minute's figures): they move the moment a tile turns red.
    if let Ok(tz) = gateway_core::ledger::parse_tz(&shared.settings.file.timezone) {
        crate::model::add_month_figures(&mut s, tz, now_ms());
    }
    s["ui"] = json!({
        "language": shared.settings.file.language,
        "rotate_every_s": shared.settings.file.rotate_every.get().as_secs(),
        "stale_after_s": shared.settings.file.stale_after.get().as_secs(),
    });
    s["broker_connected"] = json!(shared.connected.load(Ordering::Relaxed));
    s
}

/// `?site=…` on `/api/snapshot` and `/events`: one site's view only.
#[derive(Debug, Default, Deserialize)]
struct SiteFilter {
    site: Option<String>,
}

/// The snapshot as text, or only `site`'s part of it (its entry in
/// `sites` and its recent `events`; a site not heard gives an empty
/// `sites`), shared by every client (see [`crate::snapcache`]), for a
/// client that has seen model version `seen`.
async fn cached_snapshot(shared: &Shared, seen: u64, site: Option<&str>) -> crate::snapcache::Snap {
    shared
        .snap_cache
        .get(
            seen,
            site,
            || *shared.changed.borrow(),
            || snapshot_json(shared),
        )
        .await
}

async fn snapshot(
    State(shared): St,
    axum::extract::Query(filter): axum::extract::Query<SiteFilter>,
) -> Response {
    let seen = *shared.changed.borrow();
    let snap = cached_snapshot(&shared, seen, filter.site.as_deref()).await;
    (
        [(header::CONTENT_TYPE, "application/json")],
        snap.text.as_ref().clone(),
    )
        .into_response()
}

async fn health(State(shared): St) -> Response {
    let counters = shared
        .model
        .lock()
        .map(|m| json!(m.counters))
        .unwrap_or(Json::Null);
    axum::Json(json!({
        "broker": shared.settings.broker_url,
        "broker_connected": shared.connected.load(Ordering::Relaxed),
        "mqtt_oversized": shared.oversized.load(Ordering::Relaxed),
        "started_ms": shared.started_ms,
        "now": now_ms(),
        "counters": counters,
        "history_dropped": shared
            .history
            .as_ref()
            .map(|h| h.dropped.load(Ordering::Relaxed)),
        "history_ranges_refused": shared
            .history
            .as_ref()
            .map(|h| h.ranges_refused.load(Ordering::Relaxed)),
        // central ledger queue (issue 7)
        "ledger_dropped": shared.ledger.as_ref().map(|l| l.dropped.load(Ordering::Relaxed)),
        "login": shared.auth.counts(),
        "http": shared.http_stats.json(),
    }))
    .into_response()
}

/// `GET /metrics`: the intake counters of `/api/health` in the Prometheus
/// text format (same access as `/api/health`).
async fn metrics(State(shared): St) -> Response {
    let load =
        |a: Option<&std::sync::atomic::AtomicU64>| a.map_or(0, |a| a.load(Ordering::Relaxed));
    let extra = [
        (
            "history_dropped_total",
            "Messages the history store could not keep up with.",
            load(shared.history.as_ref().map(|h| &h.dropped)),
        ),
        (
            "history_ranges_refused_total",
            "History requests refused for an unknown range= value.",
            load(shared.history.as_ref().map(|h| &h.ranges_refused)),
        ),
        (
            "ledger_dropped_total",
            "Messages the central ledger could not keep up with.",
            load(shared.ledger.as_ref().map(|l| &l.dropped)),
        ),
    ];
    let text = match shared.model.lock() {
        Ok(m) => crate::model::prometheus(&m.counters, &extra),
        Err(_) => String::new(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn not_found_json(what: &str) -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({"error": what}))).into_response()
}

async fn not_found(req: Request) -> Response {
    if wants_json(req.uri().path()) {
        return not_found_json("no such API; see docs/api.md");
    }
    (StatusCode::NOT_FOUND, Html(NOT_FOUND_HTML)).into_response()
}

fn device_json(shared: &Shared, site: &str, gateway: &str, id: &str) -> Option<Json> {
    shared
        .model
        .lock()
        .ok()?
        .device(site, gateway, id, now_ms(), shared.stale_ms())
}

/// The gateways of `site` that have a device `id`, sorted.
fn gateways_with(shared: &Shared, site: &str, id: &str) -> Vec<String> {
    let Ok(m) = shared.model.lock() else {
        return Vec::new();
    };
    m.sites.get(site).map_or_else(Vec::new, |gws| {
        gws.values()
            .filter(|g| g.devices.contains_key(id))
            .map(|g| g.id.clone())
            .collect()
    })
}

/// One path segment, percent-encoded (everything but RFC 3986's
/// unreserved characters), for building URLs from ids.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn no_device(site: &str, gateway: &str, id: &str) -> Response {
    not_found_json(&format!(
        "no device {id:?} on gateway {gateway:?} of site {site:?}"
    ))
}

async fn device_page(
    State(shared): St,
    Path((site, gateway, id)): Path<(String, String, String)>,
) -> Response {
    match device_json(&shared, &site, &gateway, &id) {
        Some(_) => page(DEVICE_HTML),
        None => (StatusCode::NOT_FOUND, Html(NOT_FOUND_HTML)).into_response(),
    }
}

async fn device_api(
    State(shared): St,
    Path((site, gateway, id)): Path<(String, String, String)>,
) -> Response {
    match device_json(&shared, &site, &gateway, &id) {
        Some(d) => axum::Json(d).into_response(),
        None => no_device(&site, &gateway, &id),
    }
}

/// Where a URL without the gateway (`/devices/{site}/{id}`,
/// `/api/sites/{site}/devices/{id}[/history]`, from before a device was
/// (site, gateway, device)) leads: the new URL when exactly one gateway of
/// the site has the device id, else the gateways that have it (none or
/// several).
fn legacy_target(
    shared: &Shared,
    uri: &axum::http::Uri,
    site: &str,
    id: &str,
) -> Result<String, Vec<String>> {
    let gws = gateways_with(shared, site, id);
    let [gateway] = gws.as_slice() else {
        return Err(gws);
    };
    let (s, g, d) = (segment(site), segment(gateway), segment(id));
    let path = if uri.path().starts_with("/api/") {
        let tail = if uri.path().ends_with("/history") {
            "/history"
        } else {
            ""
        };
        format!("/api/sites/{s}/gateways/{g}/devices/{d}{tail}")
    } else {
        format!("/devices/{s}/{g}/{d}")
    };
    Ok(match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    })
}

fn permanent_redirect(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => not_found_json("no such device"),
    }
}

/// The old two-segment device page: 308 to the page of the one gateway with
/// that device id; 404 when none has it; 409 listing them when several do.
async fn legacy_device_page(
    State(shared): St,
    uri: axum::http::Uri,
    Path((site, id)): Path<(String, String)>,
) -> Response {
    match legacy_target(&shared, &uri, &site, &id) {
        Ok(to) => permanent_redirect(&to),
        Err(gws) if gws.is_empty() => (StatusCode::NOT_FOUND, Html(NOT_FOUND_HTML)).into_response(),
        Err(gws) => {
            let esc = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('"', "&quot;")
            };
            let links: String = gws
                .iter()
                .map(|g| {
                    format!(
                        "<li><a href=\"/devices/{}/{}/{}\">{}</a></li>",
                        segment(&site),
                        segment(g),
                        segment(&id),
                        esc(g)
                    )
                })
                .collect();
            let html = format!(
                "<!doctype html><meta charset=utf-8><title>409</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
                 <body><div class=\"page\"><h1>409</h1><p>项目 {site} 的多个网关都有设备 {id}，请选择网关：</p>\
                 <p>Several gateways of site {site} have a device {id}; choose the gateway:</p><ul>{links}</ul></div></body>",
                site = esc(&site),
                id = esc(&id),
            );
            (StatusCode::CONFLICT, Html(html)).into_response()
        }
    }
}

/// The old two-segment device API and history: 308 to the URL of the one
/// gateway with that device id; 404 when none has it; 409 with the
/// gateways (and their URLs) when several do.
async fn legacy_device_api(
    State(shared): St,
    uri: axum::http::Uri,
    Path((site, id)): Path<(String, String)>,
) -> Response {
    match legacy_target(&shared, &uri, &site, &id) {
        Ok(to) => permanent_redirect(&to),
        Err(gws) if gws.is_empty() => not_found_json(&format!("no device {id:?} on site {site:?}")),
        Err(gws) => {
            let tail = if uri.path().ends_with("/history") {
                "/history"
            } else {
                ""
            };
            let urls: Vec<String> = gws
                .iter()
                .map(|g| {
                    format!(
                        "/api/sites/{}/gateways/{}/devices/{}{tail}",
                        segment(&site),
                        segment(g),
                        segment(&id)
                    )
                })
                .collect();
            (
                StatusCode::CONFLICT,
                axum::Json(json!({
                    "error": format!(
                        "several gateways of site {site:?} have a device {id:?}; name the gateway: /api/sites/{{site}}/gateways/{{gateway}}/devices/{{device}}"
                    ),
                    "gateways": gws,
                    "urls": urls,
                })),
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct RangeQuery {
    range: Option<String>,
}

async fn history_api(
    State(shared): St,
    Path((site, gateway, id)): Path<(String, String, String)>,
    q: axum::extract::Query<RangeQuery>,
) -> Response {
    // `1h`, `6h`, `24h` (also when absent), `7d`, `30d` or `auto`; any other
    // value is refused and counted (`history_ranges_refused`).
    let range = match crate::history::RangeArg::parse(q.0.range.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            if let Some(h) = &shared.history {
                h.ranges_refused.fetch_add(1, Ordering::Relaxed);
            }
            return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": e}))).into_response();
        }
    };
    if device_json(&shared, &site, &gateway, &id).is_none() {
        return no_device(&site, &gateway, &id);
    }
    // Rows from before the gateway was recorded belong to this device only
    // when no other gateway of the site has its id (history.rs).
    let legacy = gateways_with(&shared, &site, &id) == [gateway.as_str()];
    let sh = shared.clone();
    let r = tokio::task::spawn_blocking(move || {
        let key = crate::history::DeviceKey {
            site: &site,
            gateway: &gateway,
            device: &id,
        };
        sh.history.as_ref().map(|h| {
            let now = now_ms();
            let range = match range {
                crate::history::RangeArg::Fixed(r) => r,
                crate::history::RangeArg::Auto => h.pick_range(&key, legacy, now)?,
            };
            h.query(&key, legacy, range, now)
        })
    })
    .await;
    match r {
        Ok(Some(Ok(j))) => axum::Json(j).into_response(),
        Ok(None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "history is off ([history] enabled = false)"})),
        )
            .into_response(),
        Ok(Some(Err(e))) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": format!("cannot read the history: {e}")})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": "history query failed"})),
        )
            .into_response(),
    }
}

async fn tickets(State(shared): St) -> Response {
    let all = shared
        .model
        .lock()
        .map(|m| m.all_tickets())
        .unwrap_or_default();
    axum::Json(json!({"tickets": all})).into_response()
}

async fn ticket(
    State(shared): St,
    Path((site, gw, n)): Path<(String, String, String)>,
) -> Response {
    let found = n.parse::<u64>().ok().and_then(|n| {
        shared
            .model
            .lock()
            .ok()
            .and_then(|m| m.ticket(&site, Some(&gw), n))
    });
    match found {
        Some((g, mut t)) => {
            t["site"] = json!(site);
            t["gateway"] = json!(g);
            axum::Json(t).into_response()
        }
        None => not_found_json(&format!("no ticket {n:?} from {site}/{gw}")),
    }
}

/// `?lang=en` on a page: English instead of the default Chinese.
#[derive(Debug, Default, Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

/// `GET /tickets/{site}/{gateway}/{id}`: the phone page of a ticket (the
/// `dashboard_url` of the alerts). The page is static; its data comes from
/// the gated APIs. Someone who may read gets a 404 page for a ticket the
/// dashboard does not know; someone who may not yet (kiosk token set, not
/// logged in: the engineer who opened the alert on the phone) gets the page,
/// which asks for the login first, so that nothing is told about which
/// tickets exist before it.
async fn ticket_page(
    State(shared): St,
    headers: HeaderMap,
    Path((site, gw, n)): Path<(String, String, String)>,
    axum::extract::Query(q): axum::extract::Query<LangQuery>,
) -> Response {
    let may_read = shared.settings.kiosk.is_none() || session(&shared, &headers).is_some();
    if !may_read {
        return page(TICKET_HTML);
    }
    let known = n.parse::<u64>().ok().is_some_and(|n| {
        shared
            .model
            .lock()
            .is_ok_and(|m| m.ticket(&site, Some(&gw), n).is_some())
    });
    if known {
        page(TICKET_HTML)
    } else {
        no_ticket_page(&site, &gw, &n, q.lang.as_deref() == Some("en"))
    }
}

/// The 404 page of an unknown ticket, in Chinese or English, naming it.
fn no_ticket_page(site: &str, gw: &str, n: &str, en: bool) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let (lang, title, text, list, other, other_href) = if en {
        (
            "en",
            "Ticket not found",
            format!(
                "There is no ticket #{} from gateway {} of site {}. It may have been closed long ago and forgotten, or the link is mistyped.",
                esc(n),
                esc(gw),
                esc(site)
            ),
            "All tickets",
            "中文",
            "?lang=zh-CN",
        )
    } else {
        (
            "zh-CN",
            "找不到工单",
            format!(
                "项目 {} 的网关 {} 没有 #{} 号工单。它可能早已关闭而不再保留，或链接有误。",
                esc(site),
                esc(gw),
                esc(n)
            ),
            "全部工单",
            "English",
            "?lang=en",
        )
    };
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>404 · {title}</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <link rel=\"stylesheet\" href=\"/assets/phone.css\"></head>\
         <body class=\"phone\"><main class=\"ph\"><h1>404 · {title}</h1><p class=\"ph-text\">{text}</p>\
         <p class=\"ph-links\"><a class=\"ph-btn\" href=\"/tickets\">{list}</a> <a href=\"{other_href}\">{other}</a></p>\
         </main></body></html>"
    );
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, "no-cache")],
        Html(html),
    )
        .into_response()
}

async fn events(
    State(shared): St,
    axum::extract::Query(filter): axum::extract::Query<SiteFilter>,
) -> Response {
    let site = filter.site;
    let rx = shared.changed.subscribe();
    // After the first event: wait for a change (or SSE_MAX_INTERVAL), then
    // at least SSE_MIN_INTERVAL since the last event, and send the shared
    // snapshot. When it is the one already sent (the next build is not due
    // yet) and does not cover the version seen, look again a little later
    // rather than waiting for a further change.
    struct Stream {
        shared: Arc<Shared>,
        rx: tokio::sync::watch::Receiver<u64>,
        site: Option<String>,
        last: Option<(Instant, u64)>,
        behind: bool,
    }
    let start = Stream {
        shared,
        rx,
        site,
        last: None,
        behind: false,
    };
    let stream = futures::stream::unfold(start, |mut st| async move {
        loop {
            if let Some((at, _)) = st.last {
                if !st.behind
                    && let Ok(Err(_)) =
                        tokio::time::timeout(SSE_MAX_INTERVAL, st.rx.changed()).await
                {
                    // The model is gone: the server is stopping.
                    return None;
                }
                let since = at.elapsed();
                if since < SSE_MIN_INTERVAL {
                    tokio::time::sleep(SSE_MIN_INTERVAL - since).await;
                }
            }
            let seen = *st.rx.borrow_and_update();
            let snap = cached_snapshot(&st.shared, seen, st.site.as_deref()).await;
            st.behind = snap.covers < seen;
            if let Some((at, build)) = st.last
                && build == snap.build
                && at.elapsed() < SSE_MAX_INTERVAL
            {
                // Nothing new to send (woken by a change this snapshot
                // covers, or behind and the next build not due yet).
                tokio::time::sleep(SSE_MIN_INTERVAL).await;
                continue;
            }
            st.last = Some((Instant::now(), snap.build));
            let ev = Event::default().event("snapshot").data(snap.text.as_str());
            return Some((Ok::<_, Infallible>(ev), st));
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE))
        .into_response()
}

#[derive(Deserialize)]
struct LoginBody {
    user: String,
    password: String,
}

/// `X-Forwarded-For`: read only when the peer is a trusted proxy.
const FORWARDED_FOR: &str = "x-forwarded-for";

fn limited(code: StatusCode, retry_after_s: u64, error: String) -> Response {
    (
        code,
        [(header::RETRY_AFTER, retry_after_s.to_string())],
        axum::Json(json!({"error": error, "retry_after_s": retry_after_s})),
    )
        .into_response()
}

/// The peer address comes from `ConnectInfo`, which the server must
/// provide (`into_make_service_with_connect_info::<SocketAddr>`).
async fn login(
    State(shared): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<axum::Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(b)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "send JSON {\"user\": …, \"password\": …}"})),
        )
            .into_response();
    };
    let forwarded = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let client = shared.settings.login.client_ip(peer.ip(), forwarded);
    let user = crate::auth::logged_name(&b.user);
    match shared.auth.login(client, &b.user, &b.password).await {
        Ok((id, s)) => {
            tracing::info!(%client, %user, "login");
            let secure = if shared.settings.file.http.secure_cookie {
                "; Secure"
            } else {
                ""
            };
            // Max-Age: a phone browser closed and reopened during the
            // shift keeps the login ([login] session_lifetime).
            let c = format!(
                "{SESSION_COOKIE}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
                shared.auth.session_lifetime().as_secs()
            );
            let mut resp = axum::Json(json!({"user": s.user, "csrf": s.csrf})).into_response();
            if let Ok(v) = HeaderValue::from_str(&c) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(LoginError::Wrong) => {
            tracing::warn!(%client, %peer, %user, "failed login: wrong user name or password");
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "wrong user name or password"})),
            )
                .into_response()
        }
        Err(LoginError::Limited(scope, s)) => {
            let by = match scope {
                crate::auth::Scope::User => "user name",
                crate::auth::Scope::Ip => "client address",
            };
            tracing::warn!(%client, %peer, %user, limit = by, retry_after_s = s, "login refused unchecked: too many attempts");
            limited(
                StatusCode::TOO_MANY_REQUESTS,
                s,
                format!("too many failed logins; try again in {s} s"),
            )
        }
        Err(LoginError::Busy(s)) => {
            tracing::warn!(%client, %peer, %user, "login refused unchecked: too many logins being checked");
            limited(
                StatusCode::SERVICE_UNAVAILABLE,
                s,
                format!("too many logins at once; try again in {s} s"),
            )
        }
        Err(LoginError::Failed) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": "login check failed"})),
        )
            .into_response(),
    }
}

async fn logout(State(shared): St, headers: HeaderMap) -> Response {
    if let Some((id, s)) = session(&shared, &headers) {
        if headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) != Some(s.csrf.as_str()) {
            return csrf_refused();
        }
        shared.auth.logout(&id);
    }
    let mut r = axum::Json(json!({"ok": true})).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{SESSION_COOKIE}=; Path=/; Max-Age=0")) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn me(State(shared): St, headers: HeaderMap) -> Response {
    match session(&shared, &headers) {
        Some((_, s)) => axum::Json(json!({"user": s.user, "csrf": s.csrf})).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "not logged in"})),
        )
            .into_response(),
    }
}

fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(
            json!({"error": format!("missing or wrong {CSRF_HEADER} header; reload the page")}),
        ),
    )
        .into_response()
}

#[derive(Deserialize, Default)]
struct ActionBody {
    #[serde(default)]
    note: String,
}

async fn ticket_action(
    State(shared): St,
    headers: HeaderMap,
    Path((site, gw, n, op)): Path<(String, String, String, String)>,
    body: Option<axum::Json<ActionBody>>,
) -> Response {
    let Some((_, s)) = session(&shared, &headers) else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "log in first"})),
        )
            .into_response();
    };
    if headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) != Some(s.csrf.as_str()) {
        return csrf_refused();
    }
    if !TICKET_OPS.contains(&op.as_str()) {
        return not_found_json(&format!("no action {op:?}; use {}", TICKET_OPS.join(", ")));
    }
    let note = body.map(|b| b.0.note).unwrap_or_default();
    if note.chars().count() > 2000 {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "the note is longer than 2000 characters"})),
        )
            .into_response();
    }
    let Some(n) = n.parse::<u64>().ok().filter(|n| {
        shared
            .model
            .lock()
            .is_ok_and(|m| m.ticket(&site, Some(&gw), *n).is_some())
    }) else {
        return not_found_json(&format!("no ticket {n:?} from {site}/{gw}"));
    };
    match ticket_op(&shared, &site, &gw, &op, n, &s.user, &note).await {
        Ok(result) => {
            tracing::info!(%site, gateway = %gw, ticket = n, %op, user = %s.user, "command confirmed");
            axum::Json(json!({"ok": true, "op": op, "result": result})).into_response()
        }
        Err(e) => {
            // `code` and `state` let the pages say it in the reader's
            // language; `error` is the English text for API clients.
            let mut state = None;
            let mut why = (None, None);
            let (status, code, msg) = match e {
                CommandError::NoSecret => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_secret",
                    format!(
                        "no command secret for {site}/{gw} in the dashboard's configuration ([[gateway]])"
                    ),
                ),
                CommandError::Broker(e) => (
                    StatusCode::BAD_GATEWAY,
                    "broker",
                    format!("cannot send to the broker: {e}"),
                ),
                CommandError::Timeout => (
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    format!(
                        "{site}/{gw} did not answer within {} s; is it online?",
                        crate::commands::REPLY_TIMEOUT.as_secs()
                    ),
                ),
                CommandError::Refused { reason, detail } if reason == "refused" => {
                    // The gateway publishes every change before it replies,
                    // so the state held here is the one that refused.
                    state = shared
                        .model
                        .lock()
                        .ok()
                        .and_then(|m| m.ticket(&site, Some(&gw), n))
                        .and_then(|(_, t)| t["state"].as_str().map(str::to_owned));
                    let msg = format!("the gateway refused: {detail}");
                    why = (Some(reason), Some(detail));
                    (StatusCode::CONFLICT, "refused", msg)
                }
                CommandError::Refused { reason, detail } => {
                    let msg =
                        format!("the gateway did not accept the command ({reason}): {detail}");
                    why = (Some(reason), Some(detail));
                    (StatusCode::CONFLICT, "rejected", msg)
                }
            };
            tracing::warn!(%site, gateway = %gw, ticket = n, %op, error = %msg, "command not done");
            (
                status,
                axum::Json(json!({
                    "ok": false, "op": op, "code": code, "state": state, "error": msg,
                    "reason": why.0, "detail": why.1,
                })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod device_tests;
