//! The signaling WebSocket: token check before the upgrade, then one task per participant that
//! relays between the socket and its room's task.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use kham_proto::{
    ErrorCode, LeaveReason, MAX_MESSAGE_BYTES, ParticipantId, ServerMsg, close_code,
    parse_client_msg,
};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::actor::{Outbound, RoomCmd};
use crate::http::{ApiError, AppState, unix_now};
use crate::rate::{TokenBucket, Verdict};
use crate::registry::RoomHandle;
use crate::room_state::JoinRefusal;
use crate::token::{Claims, TokenError};

/// How often the server pings an idle socket, and how long silence is tolerated.
const PING_EVERY: Duration = Duration::from_secs(10);
const SILENCE_LIMIT: Duration = Duration::from_secs(35);
/// A frame the client's TCP window has not taken in this long means a reader that stopped
/// reading: the session ends (otherwise a write would wait on it for ever).
const WRITE_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
pub struct JoinQuery {
    #[serde(default)]
    room: String,
    #[serde(default)]
    token: String,
    /// A resume: the participant id the client had, and the `resume_token` of its `welcome`.
    #[serde(default)]
    resume: String,
    #[serde(default)]
    resume_token: String,
}

/// A resume's participant id and secret are at most this long (ours are far shorter).
const MAX_RESUME_FIELD: usize = 64;

/// How a session attaches to its room.
enum Attach {
    /// A new participant.
    Join,
    /// The same participant on a new socket (`room_state/resume.rs`); `None`: its room is gone.
    Resume { id: ParticipantId, secret: String },
}

/// `GET /ws?room=R&token=T` (a join) or `GET /ws?room=R&token=T&resume=ID&resume_token=S` (a
/// resume).
pub async fn ws_handler(
    State(app): State<AppState>,
    query: Result<Query<JoinQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Draining (SIGTERM): calls in progress go on, nobody new comes in.
    if app.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return ApiError::draining().into_response();
    }
    // axum's own rejection text quotes the query parser; ours says what is expected.
    let Ok(Query(q)) = query else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected the query room=ROOM&token=TOKEN, each once",
        )
        .into_response();
    };
    let client = crate::user_agent::client_kind(
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    if !q.resume.is_empty() || !q.resume_token.is_empty() {
        return resume_handler(app, q, client, upgrade);
    }
    // The token is checked first, so a plain GET learns why it is refused too.
    // Before the room is looked up: a revoked token must not even (re)create its room.
    let claims = match admitted(
        &app,
        app.keys.verify_for_room(&q.token, &q.room, unix_now()),
    ) {
        Ok(c) => c,
        Err(e) => return ApiError::unauthorized(e).into_response(),
    };
    let room = match app.rooms.get_or_create(&q.room) {
        Ok(r) => r,
        Err(refusal) => {
            if refusal == JoinRefusal::TooManyRooms {
                app.counters.signal_error(refusal.code());
            }
            return ApiError::refused(refusal).into_response();
        }
    };
    let (reply, rx) = oneshot::channel();
    if room
        .tx
        .send(RoomCmd::CheckJoin {
            claims: claims.clone(),
            reply,
        })
        .await
        .is_err()
    {
        return ApiError::unavailable().into_response();
    }
    match rx.await {
        Ok(Ok(())) => {}
        Ok(Err(JoinRefusal::Revoked)) => {
            app.counters.signal_error(TokenError::Revoked.code());
            return ApiError::unauthorized(TokenError::Revoked).into_response();
        }
        Ok(Err(refusal)) => return ApiError::refused(refusal).into_response(),
        Err(_) => return ApiError::unavailable().into_response(),
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => {
            return ApiError::new(
                rejection.status(),
                "bad_request",
                "expected a WebSocket upgrade: GET with Connection: upgrade, Upgrade: websocket, \
                 Sec-WebSocket-Version: 13 and Sec-WebSocket-Key",
            )
            .into_response();
        }
    };
    limited(upgrade)
        .on_upgrade(move |socket| session(socket, Some(room), claims, client, Attach::Join, app))
}

/// A resume: the token must be this room's and genuine (its expiry may have passed, see
/// [`crate::token::TokenKeys::verify_for_resume`]); whether the session can be resumed is told
/// after the upgrade, with close code 4006 when it cannot, because a browser's WebSocket sees
/// no HTTP status.
fn resume_handler(
    app: AppState,
    q: JoinQuery,
    client: String,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if q.resume.is_empty()
        || q.resume_token.is_empty()
        || q.resume.len() > MAX_RESUME_FIELD
        || q.resume_token.len() > MAX_RESUME_FIELD
    {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "a resume takes room, token, resume (the participant id) and resume_token (from welcome), \
             each at most 64 characters",
        )
        .into_response();
    }
    let claims = match admitted(
        &app,
        app.keys.verify_for_resume(&q.token, &q.room, unix_now()),
    ) {
        Ok(c) => c,
        Err(e) => return ApiError::unauthorized(e).into_response(),
    };
    let Ok(upgrade) = upgrade else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected a WebSocket upgrade",
        )
        .into_response();
    };
    let room = app.rooms.get(&q.room);
    let attach = Attach::Resume {
        id: ParticipantId::from(q.resume.as_str()),
        secret: q.resume_token,
    };
    limited(upgrade).on_upgrade(move |socket| session(socket, room, claims, client, attach, app))
}

/// A verified token that is not revoked, or why not (counted).
fn admitted(app: &AppState, verified: Result<Claims, TokenError>) -> Result<Claims, TokenError> {
    let checked = verified.and_then(|c| {
        if app.rooms.is_revoked(&c, unix_now()) {
            Err(TokenError::Revoked)
        } else {
            Ok(c)
        }
    });
    if let Err(e) = &checked {
        app.counters.signal_error(e.code());
    }
    checked
}

/// Frames past our limit are read up to a hard cap so we can answer with close code 1009.
///
/// The read buffer starts at [`READ_BUFFER_BYTES`] instead of tungstenite's 128 KiB, which it
/// allocates and zero-fills on the first read: 128 KiB per participant (heaptrack, `load
/// --scenario fanout --size 98`: 14.7 MB in 112 connections), which took the memory per
/// subscriber from 0.50 to 0.36 MB and per published video from 0.21 to 0.25 MB (idle machine,
/// benches/README.md "session 29"). A longer message still grows the buffer to its length.
fn limited(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES * 16)
        .max_frame_size(MAX_MESSAGE_BYTES * 16)
        .read_buffer_size(READ_BUFFER_BYTES)
}

/// One read of a signaling WebSocket: an offer or answer (a few KiB) in one or two reads.
const READ_BUFFER_BYTES: usize = 8 * 1024;

async fn session(
    socket: WebSocket,
    room: Option<RoomHandle>,
    claims: Claims,
    client: String,
    attach: Attach,
    app: AppState,
) {
    let room_id = claims.room.clone();
    // Names this socket to the room: a `Disconnected` of a socket a resume replaced is ignored.
    let conn: u64 = rand::random();
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(256);
    let (mut sink, mut stream) = socket.split();
    // The room holds the only sender: when it drops this session (a queue that no longer
    // drains), `out_rx` ends and so does this task, closing the socket.
    let (id, room) = match (attach, room) {
        (Attach::Join, Some(room)) => {
            let id = ParticipantId::from_random(rand::random());
            let (reply, joined) = oneshot::channel();
            let cmd = RoomCmd::Join {
                id: id.clone(),
                claims,
                client,
                conn,
                tx: out_tx,
                reply,
            };
            let refused = match room.tx.send(cmd).await {
                Ok(()) => joined.await.ok().and_then(|r| r.err()),
                Err(_) => None,
            };
            if let Some(r) = refused {
                let msg = ServerMsg::error(kham_proto::ErrorCode::BadState, r.to_string());
                let _ = sink.send(text(&msg)).await;
                let _ = sink.send(close(4000, r.code())).await;
                return;
            }
            (id, room)
        }
        (Attach::Resume { id, secret }, room) => {
            let resumed = match &room {
                Some(room) => {
                    let (reply, answer) = oneshot::channel();
                    let cmd = RoomCmd::Resume {
                        id: id.clone(),
                        claims,
                        secret,
                        conn,
                        tx: out_tx,
                        reply,
                    };
                    room.tx.send(cmd).await.is_ok() && matches!(answer.await, Ok(Ok(())))
                }
                None => false,
            };
            match room {
                Some(room) if resumed => {
                    app.counters.resume("ok");
                    (id, room)
                }
                _ => {
                    app.counters.resume("refused");
                    let refusal = crate::room_state::ResumeRefusal;
                    let msg =
                        ServerMsg::error(kham_proto::ErrorCode::NotFound, refusal.to_string());
                    let _ = sink.send(text(&msg)).await;
                    let _ = sink
                        .send(close(close_code::RESUME_FAILED, "resume_failed"))
                        .await;
                    linger(&mut stream).await;
                    return;
                }
            }
        }
        // A join always has its room (created before the upgrade).
        (Attach::Join, None) => return,
    };
    let mut lost = true;
    let mut bucket = TokenBucket::new(app.limits, std::time::Instant::now());
    let limited = ServerMsg::error(
        ErrorCode::RateLimited,
        format!(
            "too many messages: at most {} a second ({} at once); messages past that are dropped, \
             and a client that keeps sending is disconnected",
            app.limits.rate, app.limits.burst
        ),
    );
    let mut last_rx = tokio::time::Instant::now();
    // The first ping after one period: an immediate one would leave a pong unread if the
    // session is closed at once (a reset would then swallow our close frame).
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(Outbound::Msg(m)) => {
                    if !send_within(&mut sink, text(&m)).await { break; }
                }
                Some(Outbound::Close(code, reason)) => {
                    let _ = send_within(&mut sink, close(code, reason)).await;
                    linger(&mut stream).await;
                    lost = false;
                    break;
                }
                // Dropped by the room: a reader too slow for its queue (reported lost).
                None => break,
            },
            frame = stream.next() => {
                last_rx = tokio::time::Instant::now();
                // Every frame from the client counts (text, and WebSocket pings and pongs);
                // the closing handshake does not.
                if matches!(&frame, Some(Ok(m)) if !matches!(m, Message::Close(_))) {
                    match bucket.take(std::time::Instant::now()) {
                        Verdict::Pass => {}
                        Verdict::Drop { notify } => {
                            app.counters.signal_error("rate_limited");
                            if notify && sink.send(text(&limited)).await.is_err() { break; }
                            continue;
                        }
                        Verdict::Flooding => {
                            app.counters.signal_error("flooding");
                            tracing::info!(room = %room_id, peer = %id, "signaling flood: socket closed");
                            let _ = sink.send(close(close_code::FLOODING, "flooding")).await;
                            // Out of the room before anything else, so the others learn why it
                            // left. The room may still hold messages this socket sent before: keep
                            // taking (and discarding) what it sends until it has let go of the
                            // queue, or a full or closed queue would report `connection_lost`.
                            let _ = room.tx.send(RoomCmd::Expelled { id, reason: LeaveReason::Flooding }).await;
                            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                                while out_rx.recv().await.is_some() {}
                            }).await;
                            linger(&mut stream).await;
                            return;
                        }
                    }
                }
                match frame {
                    Some(Ok(Message::Text(t))) => {
                        if t.len() > MAX_MESSAGE_BYTES {
                            app.counters.signal_error("too_big");
                            let _ = sink.send(close(close_code::TOO_BIG, "message too big")).await;
                            break;
                        }
                        match parse_client_msg(t.as_str()) {
                            Ok(msg) => {
                                if room.tx.send(RoomCmd::Client { id: id.clone(), msg }).await.is_err() { break; }
                            }
                            Err(e) => {
                                app.counters.signal_error(error_label(e.code()));
                                tracing::debug!(peer = %id, detail = e.detail(), "unparsable signaling message");
                                if sink.send(text(&ServerMsg::error(e.code(), e.to_string()))).await.is_err() { break; }
                            }
                        }
                    }
                    Some(Ok(Message::Binary(b))) => {
                        let code = if b.len() > MAX_MESSAGE_BYTES { close_code::TOO_BIG } else { 1003 };
                        app.counters.signal_error("binary");
                        let _ = sink.send(close(code, "text JSON frames only")).await;
                        break;
                    }
                    Some(Ok(Message::Close(frame))) => {
                        // The client closed: send the close reply tungstenite queued, so the
                        // client sees its own clean close (not an abnormal 1006).
                        let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
                        // A client giving up a socket that stopped answering resumes on
                        // another: that is not leaving.
                        lost = frame.is_some_and(|f| f.code == close_code::ABANDONED);
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        // tungstenite refuses frames over the hard cap: still say why.
                        let msg = e.to_string();
                        if msg.contains("too long") || msg.contains("too big") || msg.contains("Space limit") {
                            app.counters.signal_error("too_big");
                            let _ = sink.send(close(close_code::TOO_BIG, "message too big")).await;
                        }
                        break;
                    }
                    None => break,
                }
            }
            _ = ping.tick() => {
                if last_rx.elapsed() > SILENCE_LIMIT { break; }
                if !send_within(&mut sink, Message::Ping(Default::default())).await { break; }
            }
        }
    }
    let _ = room.tx.send(RoomCmd::Disconnected { id, conn, lost }).await;
}

/// Sends a frame, giving up after [`WRITE_LIMIT`]. False when the session should end.
async fn send_within<S>(sink: &mut S, m: Message) -> bool
where
    S: futures_util::Sink<Message> + Unpin,
{
    matches!(
        tokio::time::timeout(WRITE_LIMIT, sink.send(m)).await,
        Ok(Ok(()))
    )
}

/// Closing handshake (RFC 6455 section 7.1.1): after our close frame, read until the client's
/// close or EOF (bounded), so unread client data cannot turn our FIN into a reset that would
/// make the client lose the close frame and its code.
async fn linger<S>(stream: &mut S)
where
    S: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let drain = async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

fn text(m: &ServerMsg) -> Message {
    // Serializing our own enum cannot fail; an empty object is sent if it ever did.
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(m).unwrap_or_else(|_| "{}".into()),
    ))
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

fn error_label(code: kham_proto::ErrorCode) -> &'static str {
    use kham_proto::ErrorCode::*;
    match code {
        BadJson => "bad_json",
        UnknownType => "unknown_type",
        BadMessage => "bad_message",
        Forbidden => "forbidden",
        BadState => "bad_state",
        BadSdp => "bad_sdp",
        NotFound => "not_found",
        Internal => "internal",
        RateLimited => "rate_limited",
        Glare => "glare",
        TooLarge => "too_large",
    }
}
