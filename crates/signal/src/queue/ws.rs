//! `GET /queue/ws?token=T`: a station's or a doctor's connection to the specialist queue. The
//! token is checked before the upgrade (401/403 with a typed reason): a station token carries
//! the `queue` grant, a doctor's token the specialties it may take (`specialties` claim).

use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use kham_proto::{
    MAX_MESSAGE_BYTES, QueueClientMsg, QueueErrorCode, QueueServerMsg, Role, close_code,
    parse_queue_msg,
};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::service::{Conn, QueueService};
use super::state::{NewRequest, Op, QueueError};
use crate::http::{ApiError, unix_now};
use crate::rate::{TokenBucket, Verdict};
use crate::token::Claims;

const PING_EVERY: Duration = Duration::from_secs(10);
const SILENCE_LIMIT: Duration = Duration::from_secs(35);

#[derive(Debug, Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    token: String,
}

/// Who is on the other end.
#[derive(Clone)]
enum Party {
    Station,
    Doctor(Vec<String>),
}

pub async fn queue_ws(
    State(q): State<QueueService>,
    query: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if q.config()
        .draining
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return ApiError::draining().into_response();
    }
    let Ok(Query(query)) = query else {
        return bad_request("expected the query token=TOKEN");
    };
    let (claims, party) = match authorize(&q, &query.token) {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let Ok(upgrade) = upgrade else {
        return bad_request("expected a WebSocket upgrade");
    };
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| session(socket, q, claims, party))
}

fn bad_request(message: &str) -> Response {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message).into_response()
}

/// The token's claims and what it may do in the queue.
fn authorize(q: &QueueService, token: &str) -> Result<(Claims, Party), ApiError> {
    let keys = &q.config().keys;
    let (claims, extra) = keys
        .verify_with::<DutyClaims>(token, unix_now())
        .map_err(ApiError::unauthorized)?;
    if claims.role == Role::Doctor && !extra.specialties.is_empty() {
        let known = q.store().settings().specialties;
        let mine: Vec<String> = extra
            .specialties
            .into_iter()
            .filter(|s| known.contains(s))
            .collect();
        if mine.is_empty() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "none of this token's specialties is in this server's queue",
            ));
        }
        return Ok((claims, Party::Doctor(mine)));
    }
    if claims.grants.queue {
        return Ok((claims, Party::Station));
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "the token has neither the queue grant (a station) nor specialties (a doctor on duty)",
    ))
}

/// The claim a doctor's duty token adds to [`Claims`].
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct DutyClaims {
    #[serde(default)]
    pub specialties: Vec<String>,
}

async fn session(socket: WebSocket, q: QueueService, claims: Claims, party: Party) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<QueueServerMsg>(64);
    let conn_id: u64 = rand::random();
    let who = claims.sub.clone();
    let specialties = match &party {
        Party::Station => Vec::new(),
        Party::Doctor(s) => s.clone(),
    };
    let (view, mut view_rx) = watch::channel(None);
    let conn = Conn {
        id: conn_id,
        tx: tx.clone(),
        view: std::sync::Arc::new(view),
        name: claims.name.clone(),
        specialties: specialties.clone(),
    };
    let settings = q.store().settings();
    let hello = QueueServerMsg::Hello {
        role: if matches!(party, Party::Doctor(_)) {
            Role::Doctor
        } else {
            Role::Station
        },
        specialties: if specialties.is_empty() {
            settings.specialties.clone()
        } else {
            specialties
        },
        policy: settings.policy,
    };
    if sink.send(text(&hello)).await.is_err() {
        return;
    }
    match &party {
        Party::Station => q.station_connected(&who, conn),
        Party::Doctor(_) => q.doctor_connected(&who, conn),
    }
    drop(tx);
    let mut bucket = TokenBucket::new(q.config().limits, std::time::Instant::now());
    let mut last_rx = tokio::time::Instant::now();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(m) => if sink.send(text(&m)).await.is_err() { break },
                // Replaced by a newer connection of the same identity.
                None => {
                    let _ = sink.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: close_code::REPLACED,
                        reason: Utf8Bytes::from_static("replaced"),
                    }))).await;
                    break;
                }
            },
            changed = view_rx.changed() => {
                // Its sender lives in the service's map only: gone means replaced.
                if changed.is_err() {
                    let _ = sink.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: close_code::REPLACED,
                        reason: Utf8Bytes::from_static("replaced"),
                    }))).await;
                    break;
                }
                let latest = view_rx.borrow_and_update().clone();
                if let Some(m) = latest
                    && sink.send(text(&m)).await.is_err()
                {
                    break;
                }
            }
            frame = stream.next() => {
                last_rx = tokio::time::Instant::now();
                let Some(Ok(frame)) = frame else { break };
                match frame {
                    Message::Text(t) => {
                        let reply = match bucket.take(std::time::Instant::now()) {
                            Verdict::Pass => handle(&q, &who, &claims, &party, t.as_str()),
                            Verdict::Drop { .. } => Some(error(QueueErrorCode::RateLimited,
                                "too many messages; slow down")),
                            Verdict::Flooding => {
                                let _ = sink.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                                    code: close_code::FLOODING,
                                    reason: Utf8Bytes::from_static("flooding"),
                                }))).await;
                                break;
                            }
                        };
                        if let Some(r) = reply
                            && sink.send(text(&r)).await.is_err()
                        {
                            break;
                        }
                    }
                    Message::Binary(_) => {
                        let _ = sink.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                            code: 1003,
                            reason: Utf8Bytes::from_static("text JSON frames only"),
                        }))).await;
                        break;
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            _ = ping.tick() => {
                if last_rx.elapsed() > SILENCE_LIMIT { break; }
                if sink.send(Message::Ping(Default::default())).await.is_err() { break; }
            }
        }
    }
    match party {
        Party::Station => q.station_disconnected(&who, conn_id),
        Party::Doctor(_) => q.doctor_disconnected(&who, conn_id),
    }
}

/// One client message; the direct reply, if any (views follow through the service).
fn handle(
    q: &QueueService,
    who: &str,
    claims: &Claims,
    party: &Party,
    text: &str,
) -> Option<QueueServerMsg> {
    let msg = match parse_queue_msg(text) {
        Ok(m) => m,
        Err(e) => return Some(error(e.code, &e.message)),
    };
    let doctor = || who.to_owned();
    let op = match (party, msg) {
        (_, QueueClientMsg::Ping { id }) => return Some(QueueServerMsg::Pong { id }),
        (
            Party::Station,
            QueueClientMsg::Request {
                specialty,
                urgency,
                note,
                patient_name,
            },
        ) => Op::Enter(NewRequest {
            station: who.to_owned(),
            station_name: claims.name.clone(),
            specialty,
            urgency,
            note: note.trim().to_owned(),
            patient_name: patient_name
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty()),
            online: true,
        }),
        (Party::Station, QueueClientMsg::Cancel) => Op::Cancel {
            station: who.to_owned(),
        },
        (Party::Doctor(_), QueueClientMsg::Available { available }) => Op::SetAvailable {
            doctor: doctor(),
            available,
        },
        (Party::Doctor(_), QueueClientMsg::Take { request_id }) => Op::Take {
            doctor: doctor(),
            id: request_id,
            room: QueueService::new_room_id(),
        },
        (Party::Doctor(_), QueueClientMsg::Accept { request_id }) => Op::Accept {
            doctor: doctor(),
            id: request_id,
            room: QueueService::new_room_id(),
        },
        (Party::Doctor(_), QueueClientMsg::Decline { request_id }) => Op::Decline {
            doctor: doctor(),
            id: request_id,
        },
        (Party::Doctor(_), QueueClientMsg::InCall { request_id }) => Op::Confirm {
            doctor: doctor(),
            id: request_id,
        },
        (Party::Station, _) => {
            return Some(error(
                QueueErrorCode::Forbidden,
                "a station may send request, cancel and ping",
            ));
        }
        (Party::Doctor(_), _) => {
            return Some(error(
                QueueErrorCode::Forbidden,
                "a doctor on duty may send available, take, accept, decline, in_call and ping",
            ));
        }
    };
    match q.apply(op) {
        Ok(()) => None,
        Err(e) => Some(queue_error(&e)),
    }
}

pub(crate) fn queue_error(e: &QueueError) -> QueueServerMsg {
    error(e.code(), &e.to_string())
}

fn error(code: QueueErrorCode, message: &str) -> QueueServerMsg {
    QueueServerMsg::Error {
        code,
        message: message.to_owned(),
    }
}

fn text(m: &QueueServerMsg) -> Message {
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(m).unwrap_or_else(|_| "{}".into()),
    ))
}
