#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
//! The signaling service on a real TCP listener with a fake media engine: the room API's
//! authentication, a room's life (created by the API, closed after the departure timeout), and
//! offers reaching media only once a participant is admitted.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kham_proto::{ParticipantId, Role};
use kham_signal::{
    AppState, Claims, Counters, Media, MediaError, MediaEvent, MediaPerms, RoomSettings,
    RoomTimeouts, Rooms, TokenKeys,
};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct FakeMedia {
    log: Mutex<Vec<String>>,
}

impl Media for FakeMedia {
    fn open_room(&self, room: &str, _events: mpsc::Sender<MediaEvent>) {
        self.log.lock().unwrap().push(format!("open {room}"));
    }
    fn offer(
        &self,
        room: &str,
        peer: ParticipantId,
        _p: MediaPerms,
        sdp: String,
        _screen: Option<Vec<String>>,
    ) -> oneshot::Receiver<Result<String, MediaError>> {
        self.log
            .lock()
            .unwrap()
            .push(format!("offer {room} {peer}"));
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(if sdp.starts_with("v=0") {
            Ok("v=0 answer".into())
        } else {
            Err(MediaError::BadSdp("nope".into()))
        });
        rx
    }
    fn answer(
        &self,
        _room: &str,
        _peer: ParticipantId,
        _sdp: String,
    ) -> oneshot::Receiver<Result<(), MediaError>> {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Err(MediaError::BadState("no offer".into())));
        rx
    }
    fn remove(&self, room: &str, peer: ParticipantId) {
        self.log
            .lock()
            .unwrap()
            .push(format!("remove {room} {peer}"));
    }
    fn ice_restart(&self, room: &str, peer: ParticipantId) {
        self.log
            .lock()
            .unwrap()
            .push(format!("ice_restart {room} {peer}"));
    }
    fn audio_only(&self, room: &str, peer: ParticipantId, enabled: bool) {
        self.log
            .lock()
            .unwrap()
            .push(format!("audio_only {room} {peer} {enabled}"));
    }
    fn video_view(&self, room: &str, peer: ParticipantId, views: Vec<kham_proto::VideoView>) {
        self.log
            .lock()
            .unwrap()
            .push(format!("video_view {room} {peer} {}", views.len()));
    }
    fn close_room(&self, room: &str) {
        self.log.lock().unwrap().push(format!("close {room}"));
    }
}

const SECRET: &str = "test-secret-test-secret-test-secret";

async fn start(media: Arc<FakeMedia>) -> (SocketAddr, TokenKeys) {
    start_with_grace(media, Duration::ZERO).await
}

/// `reconnect_grace`: how long a dropped socket's participant waits for a resume.
async fn start_with_grace(
    media: Arc<FakeMedia>,
    reconnect_grace: Duration,
) -> (SocketAddr, TokenKeys) {
    let keys = TokenKeys::new("key", SECRET);
    let settings = RoomSettings {
        max_participants: 8,
        max_rooms: 100,
        timeouts: RoomTimeouts {
            empty_timeout: Duration::from_millis(400),
            departure_timeout: Duration::from_millis(300),
            reconnect_grace,
        },
        turn: Default::default(),
    };
    let state = AppState {
        keys: keys.clone(),
        rooms: Rooms::new(media, settings),
        counters: Arc::new(Counters::default()),
        health: Arc::new(|| serde_json::json!({})),
        draining: Arc::new(AtomicBool::new(false)),
        limits: kham_signal::RateLimits::default(),
    };
    let app = kham_signal::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, keys)
}

fn token(keys: &TokenKeys, room: &str, sub: &str, role: Role, room_create: bool) -> String {
    let mut grants = role.default_grants();
    grants.room_create = room_create;
    let c = Claims {
        iss: "key".into(),
        sub: sub.into(),
        name: sub.into(),
        room: room.into(),
        role,
        exp: 4_000_000_000,
        nbf: 0,
        jti: format!("j-{sub}"),
        grants,
    };
    keys.sign(&c).unwrap()
}

/// Minimal HTTP/1.1 request on a fresh connection; returns (status, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test]
async fn room_api_requires_a_room_create_token() {
    let media = Arc::new(FakeMedia::default());
    let (addr, keys) = start(media.clone()).await;
    let body = r#"{"room":"appt-1"}"#;
    assert_eq!(http(addr, "POST", "/api/rooms", None, body).await.0, 401);
    let forged = TokenKeys::new("key", "another-secret-another-secret-xx");
    let bad = token(&forged, "", "booking", Role::Observer, true);
    assert_eq!(
        http(addr, "POST", "/api/rooms", Some(&bad), body).await.0,
        401
    );
    let doctor = token(&keys, "appt-1", "dr", Role::Doctor, false);
    assert_eq!(
        http(addr, "POST", "/api/rooms", Some(&doctor), body)
            .await
            .0,
        403
    );
    let booking = token(&keys, "", "booking", Role::Observer, true);
    assert_eq!(
        http(addr, "POST", "/api/rooms", Some(&booking), "{nope")
            .await
            .0,
        400
    );
    assert_eq!(
        http(
            addr,
            "POST",
            "/api/rooms",
            Some(&booking),
            r#"{"room":"a b"}"#
        )
        .await
        .0,
        400
    );
    let (status, text) = http(addr, "POST", "/api/rooms", Some(&booking), body).await;
    assert_eq!(
        (status, text.contains("\"created\":true")),
        (201, true),
        "{text}"
    );
    assert_eq!(
        http(addr, "POST", "/api/rooms", Some(&booking), body)
            .await
            .0,
        200
    );
    let (status, text) = http(addr, "GET", "/api/rooms", Some(&booking), "").await;
    assert_eq!(status, 200);
    assert!(text.contains("appt-1"), "{text}");
    // Nobody joins: closed after the empty timeout.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, text) = http(addr, "GET", "/api/rooms", Some(&booking), "").await;
    assert!(!text.contains("appt-1"), "{text}");
    assert!(
        media
            .log
            .lock()
            .unwrap()
            .contains(&"close appt-1".to_string())
    );
}

#[tokio::test]
async fn plain_get_of_the_socket_url_tells_why() {
    let (addr, keys) = start(Arc::new(FakeMedia::default())).await;
    let t = token(&keys, "room-a", "p", Role::Patient, false);
    let (status, body) = http(addr, "GET", &format!("/ws?room=room-b&token={t}"), None, "").await;
    assert_eq!(status, 401);
    assert!(body.contains("wrong_room"), "{body}");
    let (status, body) = http(addr, "GET", "/ws?room=room-a&token=x.y.z", None, "").await;
    assert_eq!((status, body.contains("invalid_token")), (401, true));
}

/// The next message of type `ty` (others are skipped), within 5 s.
async fn recv_type<S>(ws: &mut S, ty: &str) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("timely")
            .expect("open")
            .expect("ok");
        if let Message::Text(t) = m {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["type"] == ty {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn offers_reach_media_only_after_admission_and_rooms_close_when_left() {
    let media = Arc::new(FakeMedia::default());
    let (addr, keys) = start(media.clone()).await;
    let url = |t: &str| format!("ws://{addr}/ws?room=r1&token={t}");
    let (mut doc, _) =
        tokio_tungstenite::connect_async(url(&token(&keys, "r1", "dr", Role::Doctor, false)))
            .await
            .unwrap();
    let (mut pat, _) =
        tokio_tungstenite::connect_async(url(&token(&keys, "r1", "pt", Role::Patient, false)))
            .await
            .unwrap();
    let w = recv_type(&mut pat, "welcome").await;
    assert_eq!(w["status"], "waiting");
    pat.send(Message::text(r#"{"type":"offer","sdp":"v=0"}"#))
        .await
        .unwrap();
    let e = recv_type(&mut pat, "error").await;
    assert_eq!(e["code"], "bad_state");
    assert!(
        !media
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("offer")),
        "no media while waiting"
    );
    // The doctor first gets the (empty) lobby at join, then the update with the patient.
    let mut lobby = recv_type(&mut doc, "lobby").await;
    while lobby["entries"].as_array().is_none_or(|e| e.is_empty()) {
        lobby = recv_type(&mut doc, "lobby").await;
    }
    let id = lobby["entries"][0]["id"].as_str().unwrap().to_owned();
    doc.send(Message::text(format!(r#"{{"type":"admit","id":"{id}"}}"#)))
        .await
        .unwrap();
    recv_type(&mut pat, "admitted").await;
    pat.send(Message::text(r#"{"type":"offer","sdp":"garbage"}"#))
        .await
        .unwrap();
    assert_eq!(recv_type(&mut pat, "error").await["code"], "bad_sdp");
    pat.send(Message::text(r#"{"type":"offer","sdp":"v=0"}"#))
        .await
        .unwrap();
    assert_eq!(recv_type(&mut pat, "answer").await["sdp"], "v=0 answer");
    // Everyone leaves: the room closes after the departure timeout and media is told.
    pat.send(Message::text(r#"{"type":"leave"}"#))
        .await
        .unwrap();
    doc.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let log = media.log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.starts_with("remove r1")), "{log:?}");
    assert!(log.contains(&"close r1".to_string()), "{log:?}");
}

/// The close code the server ends a socket with (skipping messages before it).
async fn close_code_of<S>(ws: &mut S) -> Option<u16>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn a_dropped_socket_is_resumed_within_the_grace_and_leaves_after_it() {
    let media = Arc::new(FakeMedia::default());
    let (addr, keys) = start_with_grace(media.clone(), Duration::from_millis(700)).await;
    let join_url = |t: &str| format!("ws://{addr}/ws?room=r2&token={t}");
    let (mut a, _) =
        tokio_tungstenite::connect_async(join_url(&token(&keys, "r2", "da", Role::Doctor, false)))
            .await
            .unwrap();
    recv_type(&mut a, "welcome").await;
    let b_token = token(&keys, "r2", "db", Role::Doctor, false);
    let (mut b, _) = tokio_tungstenite::connect_async(join_url(&b_token))
        .await
        .unwrap();
    let w = recv_type(&mut b, "welcome").await;
    assert_eq!(w["reconnect_grace_ms"], 700);
    let b_id = w["me"]["id"].as_str().unwrap().to_owned();
    let secret = w["resume_token"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "128 random bits");
    recv_type(&mut a, "participant_joined").await;

    // b's network drops: no close frame. a sees b reconnecting, not leaving.
    drop(b);
    let u = recv_type(&mut a, "participant_updated").await;
    assert_eq!(
        (
            u["participant"]["id"].as_str(),
            u["participant"]["reconnecting"].as_bool()
        ),
        (Some(b_id.as_str()), Some(true))
    );
    let resume_url = |secret: &str| {
        format!("ws://{addr}/ws?room=r2&token={b_token}&resume={b_id}&resume_token={secret}")
    };
    // Each of these resumes finds nothing: the typed close code, and the session stays.
    let refused = |url: String| async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        assert_eq!(
            close_code_of(&mut ws).await,
            Some(kham_proto::close_code::RESUME_FAILED)
        );
    };
    // A wrong secret, or another person's token with the right one.
    refused(resume_url("00000000000000000000000000000000")).await;
    let a_token = token(&keys, "r2", "da", Role::Doctor, false);
    refused(format!(
        "ws://{addr}/ws?room=r2&token={a_token}&resume={b_id}&resume_token={secret}"
    ))
    .await;
    // The right id and secret, the same person, but carried into another room.
    let r3_token = token(&keys, "r3", "db", Role::Doctor, false);
    refused(format!(
        "ws://{addr}/ws?room=r3&token={r3_token}&resume={b_id}&resume_token={secret}"
    ))
    .await;
    // The right one: the same participant, a snapshot, and the call sees it back.
    let (mut b, _) = tokio_tungstenite::connect_async(resume_url(&secret))
        .await
        .unwrap();
    let r = recv_type(&mut b, "resumed").await;
    assert_eq!(r["me"]["id"].as_str(), Some(b_id.as_str()));
    assert_eq!(r["status"], "admitted");
    assert_eq!(r["participants"].as_array().map(Vec::len), Some(1));
    let u = recv_type(&mut a, "participant_updated").await;
    assert_eq!(
        u["participant"]["reconnecting"].as_bool(),
        None,
        "back: {u}"
    );
    // The resumed socket works: a ping is answered.
    b.send(Message::text(r#"{"type":"ping","id":9}"#))
        .await
        .unwrap();
    assert_eq!(recv_type(&mut b, "pong").await["id"], 9);

    // Dropped again and not back within the grace: it leaves, once, as connection_lost.
    drop(b);
    recv_type(&mut a, "participant_updated").await;
    let left = recv_type(&mut a, "participant_left").await;
    assert_eq!(
        (left["id"].as_str(), left["reason"].as_str()),
        (Some(b_id.as_str()), Some("connection_lost"))
    );
    refused(resume_url(&secret)).await;
    assert!(
        media
            .log
            .lock()
            .unwrap()
            .iter()
            .all(|l| !l.starts_with("ice_restart")),
        "a resume alone restarts nothing"
    );
    // A malformed resume is a typed HTTP refusal.
    let (status, body) = http(
        addr,
        "GET",
        &format!("/ws?room=r2&token={b_token}&resume={b_id}"),
        None,
        "",
    )
    .await;
    assert_eq!(
        (status, body.contains("resume_token")),
        (400, true),
        "{body}"
    );
}
