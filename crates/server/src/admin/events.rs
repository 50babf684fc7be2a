//! `GET /api/admin/events`: a server-sent event stream for the dashboard. One `update` event
//! per second (whenever the monitor publishes a new view): node load, the rooms table, and with
//! `?room=R` that room's participants. The stream ends when the token expires.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use kham_signal::{ApiError, unix_now};
use serde::Deserialize;
use serde_json::json;

use super::{AdminState, authorize};

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    room: Option<String>,
}

pub async fn events(
    State(s): State<AdminState>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| {
        tracing::debug!(detail = %e.body_text(), "events query refused");
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_request",
            "expected the query token=TOKEN and room=ROOM, each at most once",
        )
    })?;
    let claims = authorize(&s.keys, &headers, q.token.as_deref())?;
    let (exp, room) = (claims.exp, q.room);
    let rx = s.view.clone();
    let updates = stream::unfold((rx, true), move |(mut rx, first)| {
        let room = room.clone();
        async move {
            if !first && rx.changed().await.is_err() {
                return None;
            }
            if unix_now() >= exp {
                return None;
            }
            let view = rx.borrow_and_update().clone();
            let detail = room.as_deref().and_then(|r| view.details.get(r));
            let data = json!({
                "at_ms": view.at_ms,
                "node": view.node,
                "rooms": view.rooms,
                "room": detail,
            });
            let ev = Event::default().event("update").data(data.to_string());
            Some((Ok::<_, Infallible>(ev), (rx, false)))
        }
    });
    Ok(Sse::new(updates)
        .keep_alive(KeepAlive::default())
        .into_response())
}
