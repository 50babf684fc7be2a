//! HTTP routes of the signaling service: the WebSocket, the room API, health.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::rate::RateLimits;
use crate::registry::Rooms;
use crate::room_state::JoinRefusal;
use crate::token::{Claims, TokenError, TokenKeys};

/// Extra fields for `/healthz`, supplied by the server (media counters).
pub type HealthFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub keys: TokenKeys,
    pub rooms: Rooms,
    pub counters: Arc<Counters>,
    pub health: HealthFn,
    pub draining: Arc<AtomicBool>,
    /// The per-socket rate limit of signaling messages.
    pub limits: RateLimits,
}

/// Signaling error counts by type (bounded label set).
#[derive(Default)]
pub struct Counters {
    errors: Mutex<BTreeMap<&'static str, u64>>,
    resumes: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    pub fn signal_error(&self, kind: &'static str) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    /// A resume attempt, by result (`ok`, `refused`).
    pub fn resume(&self, result: &'static str) {
        *self
            .resumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(result)
            .or_default() += 1;
    }

    pub fn resumes(&self) -> BTreeMap<&'static str, u64> {
        self.resumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn errors(&self) -> BTreeMap<&'static str, u64> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The signaling routes; the server adds static files and TLS.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(crate::ws::ws_handler))
        .route("/api/rooms", post(create_room).get(list_rooms))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// An error reply: JSON `{"error": code, "message": text}`; internals are logged, not sent.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// Any error reply: `{"error": code, "message": message}` with this status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    /// The text sent as `message`.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The server is draining (shutting down): no new joins or rooms.
    pub fn draining() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "draining",
            message: "this server is shutting down; try again on another".into(),
        }
    }
    pub fn unauthorized(e: TokenError) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: e.code(),
            message: e.to_string(),
        }
    }
    pub fn refused(r: JoinRefusal) -> Self {
        let status = match r {
            JoinRefusal::Revoked => StatusCode::UNAUTHORIZED,
            // The node's capacity, not this caller's fault: another node, or later, may do.
            JoinRefusal::TooManyRooms => StatusCode::SERVICE_UNAVAILABLE,
            JoinRefusal::Full | JoinRefusal::Ended => StatusCode::FORBIDDEN,
        };
        ApiError {
            status,
            code: r.code(),
            message: r.to_string(),
        }
    }
    pub fn unavailable() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: "try again".into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }
    fn forbidden(message: &str) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}

/// A refused JSON body, in our words: axum's and serde's texts quote the client's input and
/// the libraries' wording, so they go to the debug log only.
fn json_body_error(e: &JsonRejection, expected: &str) -> ApiError {
    tracing::debug!(detail = %e.body_text(), "JSON body refused");
    let problem = match e {
        JsonRejection::MissingJsonContentType(_) => "the Content-Type is not application/json",
        JsonRejection::JsonSyntaxError(_) => "the body is not valid JSON",
        JsonRejection::JsonDataError(_) => "the body has missing or mistyped fields",
        _ => "the body could not be read",
    };
    ApiError::new(
        e.status(),
        "bad_request",
        format!("{problem}; expected {expected}"),
    )
}

/// Seconds since the Unix epoch (token times).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Room ids are what booking systems use as appointment ids: short, URL-safe.
pub fn valid_room_id(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= 64
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive
/// (RFC 9110, section 11.1) and may be followed by more than one space; another scheme or no
/// header gives `None`.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

fn bearer(app: &AppState, headers: &HeaderMap) -> Result<Claims, ApiError> {
    let token = bearer_token(headers).unwrap_or("");
    let claims = app
        .keys
        .verify(token, unix_now())
        .map_err(ApiError::unauthorized)?;
    if !claims.grants.room_create {
        return Err(ApiError::forbidden("the token lacks the room_create grant"));
    }
    Ok(claims)
}

#[derive(Debug, Deserialize)]
struct CreateRoom {
    room: String,
}

/// `POST /api/rooms {"room": "..."}`: the booking system creates a room per appointment.
async fn create_room(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateRoom>, JsonRejection>,
) -> Result<Response, ApiError> {
    bearer(&app, &headers)?;
    if app.draining.load(Ordering::Relaxed) {
        return Err(ApiError::draining());
    }
    let Json(body) = body.map_err(|e| json_body_error(&e, r#"{"room": string}"#))?;
    if !valid_room_id(&body.room) {
        return Err(ApiError::bad_request(
            "room ids are 1-64 characters of A-Z a-z 0-9 - _",
        ));
    }
    let (_, created) = app.rooms.create(&body.room).map_err(|r| {
        if r == JoinRefusal::TooManyRooms {
            app.counters.signal_error(r.code());
        }
        ApiError::refused(r)
    })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({"room": body.room, "created": created}))).into_response())
}

/// `GET /api/rooms`: open rooms with counts (no names).
async fn list_rooms(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    bearer(&app, &headers)?;
    Ok(Json(json!({"rooms": app.rooms.list().await})).into_response())
}

async fn healthz(State(app): State<AppState>) -> Response {
    let mut body = (app.health)();
    if let Some(o) = body.as_object_mut() {
        o.insert("status".into(), json!("ok"));
        o.insert("rooms".into(), json!(app.rooms.len()));
        o.insert("signal_errors".into(), json!(app.counters.errors()));
    }
    Json(body).into_response()
}

async fn readyz(State(app): State<AppState>) -> Response {
    if app.draining.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false})),
        )
            .into_response()
    } else {
        Json(json!({"ready": true})).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().expect("header value"));
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEaReR  abc",
            " Bearer abc ",
        ] {
            assert_eq!(bearer_token(&auth(v)), Some("abc"), "{v:?}");
        }
        for v in ["Basic abc", "Bearerabc", "Bearer", "abc"] {
            assert_eq!(bearer_token(&auth(v)), None, "{v:?}");
        }
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
