//! The HTTP control interface (loopback): inject and clear faults, read and
//! set point values while the simulator runs.
//!
//! | method | path | what |
//! |---|---|---|
//! | `GET` | `/faults` | every fault, active or scheduled |
//! | `POST` | `/faults` | inject: `{"device":"pump-1","fault":"exception","code":4,"duration":"30s"}` → `201 {"id":N}` |
//! | `DELETE` | `/faults/{id}` | clear one fault (`404` if unknown) |
//! | `DELETE` | `/faults` | clear every fault |
//! | `GET` | `/devices` | devices: id, bus, unit, profile |
//! | `GET` | `/devices/{id}/points` | current values, as the gateway would decode them |
//! | `PUT` | `/devices/{id}/points/{name}` | `{"value": 24.5, "hold": false}`: set a value (held until released when `hold`) |
//! | `DELETE` | `/devices/{id}/points/{name}` | release a held value |
//!
//! Errors answer `{"error": "…"}` with 404 (unknown device, point or fault)
//! or 422 (a fault or value that cannot apply).

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use gateway_core::config::FaultConfig;
use gateway_core::model::Value;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::building::Building;
use crate::bus::lock;
use crate::error::SimError;

type Shared = Arc<Mutex<Building>>;

/// Serves the control interface on `listener` until `token` is cancelled.
pub(crate) async fn serve(listener: TcpListener, building: Shared, token: CancellationToken) {
    let app = Router::new()
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/faults/{id}", delete(clear_fault))
        .route("/devices", get(devices))
        .route("/devices/{id}/points", get(points))
        .route(
            "/devices/{id}/points/{name}",
            axum::routing::put(set_point).delete(release_point),
        )
        .with_state(building);
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(token.cancelled_owned())
        .await
    {
        tracing::warn!(%error, "control interface stopped");
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match self {
            SimError::UnknownDevice(_) | SimError::UnknownPoint { .. } => StatusCode::NOT_FOUND,
            SimError::Fault { .. } | SimError::Value { .. } | SimError::Config(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

async fn list_faults(State(b): State<Shared>) -> Response {
    Json(lock(&b).faults(Instant::now())).into_response()
}

async fn add_fault(
    State(b): State<Shared>,
    Json(cfg): Json<FaultConfig>,
) -> Result<Response, SimError> {
    let now = Instant::now();
    let id = lock(&b).inject(&cfg, now, now)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn clear_fault(State(b): State<Shared>, Path(id): Path<u64>) -> Response {
    if lock(&b).clear(id, Instant::now()) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no fault with id {id}") })),
        )
            .into_response()
    }
}

async fn clear_faults(State(b): State<Shared>) -> StatusCode {
    lock(&b).clear_all(Instant::now());
    StatusCode::NO_CONTENT
}

async fn devices(State(b): State<Shared>) -> Response {
    Json(lock(&b).devices()).into_response()
}

async fn points(State(b): State<Shared>, Path(id): Path<String>) -> Result<Response, SimError> {
    Ok(Json(lock(&b).points(&id)?).into_response())
}

/// Body of `PUT /devices/{id}/points/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPoint {
    value: serde_json::Value,
    #[serde(default)]
    hold: bool,
}

/// A JSON scalar as a point value.
pub(crate) fn value_of_json(v: &serde_json::Value) -> Option<Value> {
    Some(match v {
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else {
                Value::Float(n.as_f64()?)
            }
        }
        serde_json::Value::String(s) => Value::Text(s.clone()),
        _ => return None,
    })
}

async fn set_point(
    State(b): State<Shared>,
    Path((id, name)): Path<(String, String)>,
    Json(body): Json<SetPoint>,
) -> Result<Response, SimError> {
    let Some(value) = value_of_json(&body.value) else {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": "value must be a boolean, number or string" })),
        )
            .into_response());
    };
    lock(&b).set_point(&id, &name, &value, body.hold, Instant::now())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn release_point(
    State(b): State<Shared>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, SimError> {
    let was_held = lock(&b).release(&id, &name, Instant::now())?;
    Ok(Json(json!({ "released": was_held })).into_response())
}
