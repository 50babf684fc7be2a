#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! The specialist queue over its real routes: who may connect, typed errors for bad input,
//! a pairing's room token, a station that reconnects within its grace, a doctor who takes and
//! vanishes, and the booking system's HTTP API.

mod queue_common;

use std::time::Duration;

use kham_proto::{QueueErrorCode, QueueServerMsg, RequestStage, Role};
use kham_signal::QueueSettings;
use queue_common::*;
use serde_json::json;

async fn recv(ws: &mut Ws) -> QueueServerMsg {
    tokio::time::timeout(Duration::from_secs(5), next(ws))
        .await
        .expect("a message within 5 s")
        .expect("socket open")
}

/// The next message that `pick` accepts, skipping the others (views).
async fn until<T>(ws: &mut Ws, mut pick: impl FnMut(&QueueServerMsg) -> Option<T>) -> T {
    loop {
        let m = recv(ws).await;
        if let Some(t) = pick(&m) {
            return t;
        }
    }
}

async fn error_code(ws: &mut Ws) -> QueueErrorCode {
    until(ws, |m| match m {
        QueueServerMsg::Error { code, .. } => Some(*code),
        _ => None,
    })
    .await
}

fn station_token(keys: &kham_signal::TokenKeys, sub: &str) -> String {
    keys.sign(&claims(keys, sub, Role::Station)).unwrap()
}

fn doctor_token(keys: &kham_signal::TokenKeys, sub: &str, specialties: &[&str]) -> String {
    let c = claims(keys, sub, Role::Doctor);
    keys.sign_with(&c, &json!({"specialties": specialties}))
        .unwrap()
}

async fn http_status(addr: std::net::SocketAddr, token: &str) -> u16 {
    // A plain GET of the socket's URL: the refusal is an HTTP status with a typed body.
    let url = format!("ws://{addr}/queue/ws?token={token}");
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn tokens_without_the_queue_grant_or_a_known_specialty_are_refused() {
    let (addr, keys, _q) = start().await;
    assert_eq!(http_status(addr, "garbage").await, 401);
    // A plain patient token: neither a station's grant nor a doctor's specialties.
    let patient = keys.sign(&claims(&keys, "p", Role::Patient)).unwrap();
    assert_eq!(http_status(addr, &patient).await, 403);
    assert_eq!(
        http_status(addr, &doctor_token(&keys, "d", &["dentistry"])).await,
        403
    );
    assert_eq!(http_status(addr, &station_token(&keys, "s")).await, 101);
}

#[tokio::test]
async fn bad_input_gets_typed_errors_and_nothing_is_served_twice() {
    let (addr, keys, q) = start().await;
    let mut st = connect(addr, &station_token(&keys, "st-1")).await;
    assert!(matches!(recv(&mut st).await, QueueServerMsg::Hello { .. }));
    send(
        &mut st,
        json!({"type": "request", "specialty": "dentistry", "urgency": "routine"}),
    )
    .await;
    assert_eq!(error_code(&mut st).await, QueueErrorCode::UnknownSpecialty);
    st.send_text("{not json").await;
    assert_eq!(error_code(&mut st).await, QueueErrorCode::BadJson);
    send(&mut st, json!({"type": "request", "specialty": "general"})).await;
    assert_eq!(error_code(&mut st).await, QueueErrorCode::BadMessage);
    send(&mut st, json!({"type": "take"})).await;
    assert_eq!(error_code(&mut st).await, QueueErrorCode::Forbidden);
    send(&mut st, json!({"type": "request", "specialty": "general", "urgency": "routine", "note": "x".repeat(300)})).await;
    assert_eq!(error_code(&mut st).await, QueueErrorCode::TooLong);
    // One request, then a flood of the same: refused, one request in the queue.
    send(
        &mut st,
        json!({"type": "request", "specialty": "general", "urgency": "routine"}),
    )
    .await;
    for _ in 0..10 {
        send(
            &mut st,
            json!({"type": "request", "specialty": "general", "urgency": "urgent"}),
        )
        .await;
    }
    let mut refused = 0;
    while refused < 10 {
        if error_code(&mut st).await == QueueErrorCode::AlreadyQueued {
            refused += 1;
        }
    }
    assert_eq!(q.stats().specialties["general"].waiting, 1);

    // A cardiologist cannot take a general request, by id or as "next".
    let mut cardio = connect(addr, &doctor_token(&keys, "dr-c", &["cardiology"])).await;
    send(&mut cardio, json!({"type": "available", "available": true})).await;
    send(&mut cardio, json!({"type": "take", "request_id": 1})).await;
    assert_eq!(
        error_code(&mut cardio).await,
        QueueErrorCode::NotYourSpecialty
    );
    send(&mut cardio, json!({"type": "take"})).await;
    assert_eq!(error_code(&mut cardio).await, QueueErrorCode::Empty);

    // Cancelled, then taken: not found.
    send(&mut st, json!({"type": "cancel"})).await;
    let mut gp = connect(addr, &doctor_token(&keys, "dr-g", &["general"])).await;
    send(&mut gp, json!({"type": "available", "available": true})).await;
    until(&mut gp, |m| {
        matches!(
            m,
            QueueServerMsg::Board {
                available: true,
                ..
            }
        )
        .then_some(())
    })
    .await;
    send(&mut gp, json!({"type": "take", "request_id": 1})).await;
    assert_eq!(error_code(&mut gp).await, QueueErrorCode::NotFound);
}

#[tokio::test]
async fn pairing_hands_out_room_tokens_and_a_reconnecting_station_gets_its_room_again() {
    let (addr, keys, _q) = start().await;
    let st_token = station_token(&keys, "st-7");
    let mut st = connect(addr, &st_token).await;
    send(&mut st, json!({"type": "request", "specialty": "cardiology", "urgency": "urgent", "note": "đau ngực"})).await;
    let pos = until(&mut st, |m| match m {
        QueueServerMsg::Queued {
            position, stage, ..
        } => {
            assert_eq!(*stage, RequestStage::Waiting);
            Some(*position)
        }
        _ => None,
    })
    .await;
    assert_eq!(pos, 1);
    // The station drops; within its grace a doctor takes the request.
    drop(st);
    let mut dr = connect(addr, &doctor_token(&keys, "dr-1", &["cardiology"])).await;
    send(&mut dr, json!({"type": "available", "available": true})).await;
    let board = until(&mut dr, |m| match m {
        QueueServerMsg::Board {
            entries,
            available: true,
            ..
        } if !entries.is_empty() => Some(entries.clone()),
        _ => None,
    })
    .await;
    assert_eq!(board[0].note, "đau ngực");
    assert_eq!(board[0].patient_name, None, "no patient name unless shared");
    send(&mut dr, json!({"type": "take"})).await;
    let (id, room, token) = until(&mut dr, |m| match m {
        QueueServerMsg::Paired {
            request_id,
            room,
            token,
        } => Some((*request_id, room.clone(), token.clone())),
        _ => None,
    })
    .await;
    let c = keys
        .verify_for_room(&token, &room, kham_signal::unix_now())
        .unwrap();
    assert_eq!((c.role, c.sub.as_str()), (Role::Doctor, "dr-1"));
    // The station comes back and is sent to the same room with its own token.
    let mut st = connect(addr, &st_token).await;
    let (sid, sroom, stoken) = until(&mut st, |m| match m {
        QueueServerMsg::Paired {
            request_id,
            room,
            token,
        } => Some((*request_id, room.clone(), token.clone())),
        _ => None,
    })
    .await;
    assert_eq!((sid, sroom.as_str()), (id, room.as_str()));
    let c = keys
        .verify_for_room(&stoken, &room, kham_signal::unix_now())
        .unwrap();
    assert_eq!((c.role, c.sub.as_str()), (Role::Station, "st-7"));
}

#[tokio::test]
async fn a_doctor_who_takes_and_vanishes_puts_the_request_back_first_in_line() {
    let (addr, keys, q) = start_with(QueueSettings {
        accept_timeout_ms: 60_000,
        ..QueueSettings::default()
    })
    .await;
    let mut a = connect(addr, &station_token(&keys, "st-a")).await;
    send(
        &mut a,
        json!({"type": "request", "specialty": "general", "urgency": "routine"}),
    )
    .await;
    until(&mut a, |m| {
        matches!(m, QueueServerMsg::Queued { .. }).then_some(())
    })
    .await;
    let mut b = connect(addr, &station_token(&keys, "st-b")).await;
    send(
        &mut b,
        json!({"type": "request", "specialty": "general", "urgency": "routine"}),
    )
    .await;
    until(&mut b, |m| {
        matches!(m, QueueServerMsg::Queued { position: 2, .. }).then_some(())
    })
    .await;
    let mut dr = connect(addr, &doctor_token(&keys, "dr-x", &["general"])).await;
    send(&mut dr, json!({"type": "available", "available": true})).await;
    until(&mut dr, |m| {
        matches!(
            m,
            QueueServerMsg::Board {
                available: true,
                ..
            }
        )
        .then_some(())
    })
    .await;
    send(&mut dr, json!({"type": "take"})).await;
    until(&mut a, |m| {
        matches!(m, QueueServerMsg::Paired { .. }).then_some(())
    })
    .await;
    until(&mut b, |m| {
        matches!(m, QueueServerMsg::Queued { position: 1, .. }).then_some(())
    })
    .await;
    // The doctor's page closes before it reaches the call.
    drop(dr);
    until(&mut a, |m| {
        matches!(
            m,
            QueueServerMsg::Queued {
                position: 1,
                stage: RequestStage::Waiting,
                ..
            }
        )
        .then_some(())
    })
    .await;
    until(&mut b, |m| {
        matches!(m, QueueServerMsg::Queued { position: 2, .. }).then_some(())
    })
    .await;
    assert_eq!(q.stats().specialties["general"].waiting, 2);
}

#[tokio::test]
async fn a_booking_system_enqueues_and_cancels_over_http() {
    let (addr, keys, q) = start().await;
    let mut booking = claims(&keys, "booking", Role::Observer);
    booking.grants.room_create = true;
    let booking = keys.sign(&booking).unwrap();
    let station_only = station_token(&keys, "st-z");
    let body = json!({"station": "st-z", "station_name": "Trạm Z", "specialty": "obstetrics", "urgency": "urgent"});
    let post =
        |token: String, body: serde_json::Value| http(addr, "POST", "/api/queue", token, body);
    let r = http(addr, "DELETE", "/api/queue/1", booking.clone(), json!(null)).await;
    assert!(r.starts_with("HTTP/1.1 404"), "nothing to cancel yet: {r}");
    assert!(
        post(station_only, body.clone())
            .await
            .starts_with("HTTP/1.1 403")
    );
    let r = post(booking.clone(), json!({"station": "st-z"})).await;
    assert!(
        r.starts_with("HTTP/1.1 400") || r.starts_with("HTTP/1.1 422"),
        "{r}"
    );
    let r = post(booking.clone(), body.clone()).await;
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    assert!(r.contains("\"position\":1"), "{r}");
    assert!(
        post(booking.clone(), body)
            .await
            .starts_with("HTTP/1.1 409")
    );
    assert_eq!(q.stats().specialties["obstetrics"].waiting, 1);
    // The station connects and sees its place.
    let mut st = connect(addr, &station_token(&keys, "st-z")).await;
    let id = until(&mut st, |m| match m {
        QueueServerMsg::Queued {
            position: 1,
            request_id,
            ..
        } => Some(*request_id),
        _ => None,
    })
    .await;
    let r = http(
        addr,
        "DELETE",
        &format!("/api/queue/{id}"),
        booking.clone(),
        json!(null),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    let reason = until(&mut st, |m| match m {
        QueueServerMsg::Left { reason, .. } => Some(*reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, kham_proto::LeftReason::Cancelled);
    let r = http(addr, "DELETE", "/api/queue/x1", booking, json!(null)).await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
}

async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: String,
    body: serde_json::Value,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let b = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
        b.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

trait SendText {
    async fn send_text(&mut self, t: &str);
}

impl SendText for Ws {
    async fn send_text(&mut self, t: &str) {
        use futures_util::SinkExt;
        self.send(tokio_tungstenite::tungstenite::Message::Text(t.into()))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn offer_policy_offers_to_the_longest_idle_doctor_and_a_decline_passes_it_on() {
    let (addr, keys, _q) = start_with(QueueSettings {
        policy: kham_proto::QueuePolicy::Offer,
        ..QueueSettings::default()
    })
    .await;
    let mut first = connect(addr, &doctor_token(&keys, "dr-first", &["paediatrics"])).await;
    send(&mut first, json!({"type": "available", "available": true})).await;
    until(&mut first, |m| {
        matches!(
            m,
            QueueServerMsg::Board {
                available: true,
                ..
            }
        )
        .then_some(())
    })
    .await;
    let mut second = connect(addr, &doctor_token(&keys, "dr-second", &["paediatrics"])).await;
    let policy = until(&mut second, |m| match m {
        QueueServerMsg::Hello { policy, .. } => Some(*policy),
        _ => None,
    })
    .await;
    assert_eq!(policy, kham_proto::QueuePolicy::Offer);
    send(&mut second, json!({"type": "available", "available": true})).await;
    until(&mut second, |m| {
        matches!(
            m,
            QueueServerMsg::Board {
                available: true,
                ..
            }
        )
        .then_some(())
    })
    .await;
    let mut st = connect(addr, &station_token(&keys, "st-o")).await;
    send(&mut st, json!({"type": "request", "specialty": "paediatrics", "urgency": "routine", "patient_name": "Bé Na"})).await;
    // The longest idle doctor gets it, with the name the station chose to share.
    let entry = until(&mut first, |m| match m {
        QueueServerMsg::Offer { entry, .. } => Some(entry.clone()),
        _ => None,
    })
    .await;
    assert_eq!(entry.patient_name.as_deref(), Some("Bé Na"));
    send(
        &mut first,
        json!({"type": "decline", "request_id": entry.request_id}),
    )
    .await;
    let again = until(&mut second, |m| match m {
        QueueServerMsg::Offer { entry, .. } => Some(entry.request_id),
        _ => None,
    })
    .await;
    assert_eq!(again, entry.request_id);
    // The one who declined cannot accept it now.
    send(
        &mut first,
        json!({"type": "accept", "request_id": entry.request_id}),
    )
    .await;
    assert_eq!(error_code(&mut first).await, QueueErrorCode::AlreadyTaken);
    send(
        &mut second,
        json!({"type": "accept", "request_id": entry.request_id}),
    )
    .await;
    let room = until(&mut second, |m| match m {
        QueueServerMsg::Paired { room, .. } => Some(room.clone()),
        _ => None,
    })
    .await;
    let sroom = until(&mut st, |m| match m {
        QueueServerMsg::Paired { room, .. } => Some(room.clone()),
        _ => None,
    })
    .await;
    assert_eq!(room, sroom);
}
