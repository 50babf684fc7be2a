//! The admin API's JSON handlers. Room data is read fresh from the room tasks, joined with the
//! shards' latest media figures (at most a second old); node load comes from the monitor.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kham_proto::ParticipantId;
use kham_signal::{ApiError, RemoveError, valid_room_id};
use serde::Deserialize;
use serde_json::json;

use super::{Admin, AdminState, OPENAPI, authorize};
use crate::monitor::{room_row, room_view};

/// Longest reason an operator may give (it is shown to the people removed).
const MAX_REASON: usize = 200;

fn not_found(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such {what}"),
    )
}

/// axum's rejection text quotes the path and its parser; the detail goes to the debug log.
fn path_error(e: PathRejection) -> ApiError {
    tracing::debug!(detail = %e.body_text(), "admin path refused");
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "the path's room or participant id is not valid text",
    )
}

/// A body that could not be read (too large, cut off): axum's text, to the debug log only.
fn body_error(e: BytesRejection) -> ApiError {
    tracing::debug!(detail = %e.body_text(), "admin action body unreadable");
    ApiError::new(
        e.status(),
        "bad_request",
        "the body could not be read (too large or incomplete)",
    )
}

/// `GET /api/openapi.json` (public: it describes the API, it holds no data).
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /metrics`.
pub async fn metrics(
    State(s): State<AdminState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !s.metrics_public {
        authorize(&s.keys, &headers, None)?;
    }
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        s.metrics.encode(),
    )
        .into_response())
}

/// `GET /api/admin/node`.
pub async fn node(_: Admin, State(s): State<AdminState>) -> Response {
    Json(s.view.borrow().node.clone()).into_response()
}

/// Upper bounds (seconds) of the dashboard's wait-time distribution; the last bucket is open.
const WAIT_BUCKETS: [u64; 6] = [60, 300, 600, 900, 1800, 3600];

/// `GET /api/admin/queue`: per specialty, requests in the queue, the oldest wait and the
/// available doctors; the waits of the requests served in the last hour, as counts per bucket.
/// No names, no notes.
pub async fn queue(_: Admin, State(s): State<AdminState>) -> Response {
    let stats = s.queue.stats();
    let mut counts = [0u64; WAIT_BUCKETS.len() + 1];
    for w in &stats.served_waits_ms {
        let i = WAIT_BUCKETS
            .iter()
            .position(|b| w / 1000 < *b)
            .unwrap_or(WAIT_BUCKETS.len());
        counts[i] += 1;
    }
    let buckets: Vec<_> = counts
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"le_s": WAIT_BUCKETS.get(i), "count": n}))
        .collect();
    Json(json!({
        "specialties": stats.specialties,
        "served_last_hour": stats.served_waits_ms.len(),
        "wait_buckets": buckets,
    }))
    .into_response()
}

/// `GET /api/admin/rooms`.
pub async fn rooms(_: Admin, State(s): State<AdminState>) -> Response {
    let details = s.rooms.details().await;
    let (media, _) = s.boards.read();
    let rooms: Vec<_> = details
        .iter()
        .map(|d| room_row(&room_view(d, media.get(&d.room))))
        .collect();
    Json(json!({ "rooms": rooms })).into_response()
}

/// `GET /api/admin/rooms/{room}`: everyone with names, media figures and history.
pub async fn room(
    _: Admin,
    State(s): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(room) = path.map_err(path_error)?;
    if !valid_room_id(&room) {
        return Err(not_found("room"));
    }
    let d = s
        .rooms
        .detail(&room)
        .await
        .ok_or_else(|| not_found("room"))?;
    let (media, _) = s.boards.read();
    let view = room_view(&d, media.get(&room));
    let history = s
        .history
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .room(&room);
    let mut body = serde_json::to_value(&view).unwrap_or_default();
    body["history"] = json!(history);
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    reason: Option<String>,
}

/// The optional `{"reason": "..."}` of an action; an empty body takes `default`.
fn reason(body: &[u8], default: &str) -> Result<String, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(default.to_owned());
    }
    let b: ActionBody = serde_json::from_slice(body).map_err(|e| {
        // serde's text quotes the body; ours says what is expected.
        tracing::debug!(detail = %e, "admin action body refused");
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            "expected {\"reason\": string} or no body",
        )
    })?;
    let r = b.reason.unwrap_or_else(|| default.to_owned());
    if r.is_empty() || r.chars().count() > MAX_REASON || r.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("reason must be 1-{MAX_REASON} printable characters"),
        ));
    }
    Ok(r)
}

/// `POST /api/admin/rooms/{room}/close`: ends the consult for everyone in it.
pub async fn close_room(
    _: Admin,
    State(s): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(room) = path.map_err(path_error)?;
    let body = body.map_err(body_error)?;
    let reason = reason(&body, "closed_by_operator")?;
    if !valid_room_id(&room) || !s.rooms.end(&room, &reason).await {
        return Err(not_found("room"));
    }
    tracing::info!(%room, "room closed by an operator");
    Ok(Json(json!({"room": room, "closed": true})).into_response())
}

/// `POST /api/admin/rooms/{room}/participants/{participant}/remove`.
pub async fn remove_participant(
    _: Admin,
    State(s): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path((room, participant)) = path.map_err(path_error)?;
    let body = body.map_err(body_error)?;
    let reason = reason(&body, "removed_by_operator")?;
    if !valid_room_id(&room) {
        return Err(not_found("room"));
    }
    let id = ParticipantId(participant);
    match s.rooms.remove_participant(&room, &id, &reason).await {
        Ok(()) => {
            tracing::info!(%room, peer = %id, "participant removed by an operator");
            Ok(Json(json!({"room": room, "participant": id, "removed": true})).into_response())
        }
        Err(RemoveError::NoRoom) => Err(not_found("room")),
        Err(RemoveError::NoParticipant) => Err(not_found("participant")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_bodies() {
        assert_eq!(reason(b"", "d").ok().as_deref(), Some("d"));
        assert_eq!(reason(b" \n", "d").ok().as_deref(), Some("d"));
        assert_eq!(reason(b"{}", "d").ok().as_deref(), Some("d"));
        assert_eq!(
            reason(r#"{"reason":"bác sĩ nghỉ"}"#.as_bytes(), "d")
                .ok()
                .as_deref(),
            Some("bác sĩ nghỉ")
        );
        // The refusal is our fixed text: nothing of the body or of serde's wording.
        let e = reason(br#"{"reason": 5, "<script>": "x"}"#, "d").unwrap_err();
        assert_eq!(e.message(), r#"expected {"reason": string} or no body"#);
        let status = |r: Result<String, ApiError>| r.err().map(|e| e.into_response().status());
        assert_eq!(status(reason(b"{nope", "d")), Some(StatusCode::BAD_REQUEST));
        assert_eq!(
            status(reason(br#"{"why":1}"#, "d")),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            status(reason(br#"{"reason":""}"#, "d")),
            Some(StatusCode::BAD_REQUEST)
        );
        let long = format!(r#"{{"reason":"{}"}}"#, "x".repeat(MAX_REASON + 1));
        assert_eq!(
            status(reason(long.as_bytes(), "d")),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}
