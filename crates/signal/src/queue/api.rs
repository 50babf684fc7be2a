//! The queue's HTTP routes: the `/queue/ws` socket, and for a booking system (a token with the
//! `room_create` grant) `POST /api/queue` (enqueue for a station), `DELETE /api/queue/{id}` and
//! `GET /api/queue` (lengths and waits per specialty, no names).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use kham_proto::Urgency;
use serde::Deserialize;
use serde_json::json;

use super::service::QueueService;
use super::state::{NewRequest, Op, QueueError};
use crate::http::{ApiError, bearer_token, unix_now};

/// The queue's routes, to merge into the server's router.
pub fn router(q: QueueService) -> Router {
    Router::new()
        .route("/queue/ws", get(super::ws::queue_ws))
        .route("/api/queue", post(enqueue).get(summary))
        .route("/api/queue/{id}", delete(cancel))
        .with_state(q)
}

fn booking_system(q: &QueueService, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = bearer_token(headers).unwrap_or("");
    let claims = q
        .config()
        .keys
        .verify(token, unix_now())
        .map_err(ApiError::unauthorized)?;
    if !claims.grants.room_create {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token lacks the room_create grant",
        ));
    }
    Ok(())
}

fn refused(e: &QueueError) -> ApiError {
    let status = match e {
        QueueError::NotFound => StatusCode::NOT_FOUND,
        QueueError::AlreadyQueued | QueueError::AlreadyTaken => StatusCode::CONFLICT,
        QueueError::QueueFull => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let code = match e {
        QueueError::UnknownSpecialty(_) => "unknown_specialty",
        QueueError::TooLong(_) => "too_long",
        QueueError::AlreadyQueued => "already_queued",
        QueueError::QueueFull => "queue_full",
        QueueError::NotFound => "not_found",
        _ => "bad_request",
    };
    ApiError::new(status, code, e.to_string())
}

#[derive(Debug, Deserialize)]
struct Enqueue {
    /// The station's identity: the `sub` of the station token it connects with.
    station: String,
    /// The station's display name, shown to doctors.
    station_name: String,
    specialty: String,
    urgency: Urgency,
    #[serde(default)]
    note: String,
}

/// `POST /api/queue`: a booking system queues a request for a station, which then connects with
/// its station token within `queue.station_grace` to see its place and be paired.
async fn enqueue(
    State(q): State<QueueService>,
    headers: HeaderMap,
    body: Result<Json<Enqueue>, JsonRejection>,
) -> Result<Response, ApiError> {
    booking_system(&q, &headers)?;
    if q.config()
        .draining
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(ApiError::draining());
    }
    let Json(b) = body.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected JSON {\"station\": string, \"station_name\": string, \"specialty\": string, \
             \"urgency\": \"routine\" or \"urgent\", \"note\": optional string}",
        )
    })?;
    if b.station.is_empty() || b.station.len() > 128 || b.station_name.chars().count() > 128 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "station must be 1-128 characters and station_name at most 128",
        ));
    }
    let station = b.station.clone();
    q.apply(Op::Enter(NewRequest {
        station: b.station,
        station_name: b.station_name,
        specialty: b.specialty,
        urgency: b.urgency,
        note: b.note,
        patient_name: None,
        online: false,
    }))
    .map_err(|e| refused(&e))?;
    let v = q
        .store()
        .station_view(&station, q.now())
        .ok_or_else(ApiError::unavailable)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"request_id": v.id, "position": v.position, "eta_ms": v.eta_ms})),
    )
        .into_response())
}

/// `DELETE /api/queue/{id}`.
async fn cancel(
    State(q): State<QueueService>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    booking_system(&q, &headers)?;
    let id: u64 = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "request ids are numbers",
        )
    })?;
    q.apply(Op::CancelId { id }).map_err(|e| refused(&e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/queue`: per specialty, requests waiting, the oldest wait and available doctors.
async fn summary(State(q): State<QueueService>, headers: HeaderMap) -> Result<Response, ApiError> {
    booking_system(&q, &headers)?;
    Ok(Json(json!({"specialties": q.stats().specialties})).into_response())
}
