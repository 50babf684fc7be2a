//! Shared by the queue's integration tests: the queue's routes on a loopback listener with a
//! media engine that does nothing, tokens, and a WebSocket client.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kham_proto::{ParticipantId, QueueServerMsg, Role, VideoView};
use kham_signal::queue::api::router;
use kham_signal::{
    Claims, Media, MediaError, MediaEvent, MediaPerms, MemoryQueue, QueueService,
    QueueServiceConfig, QueueSettings, RoomSettings, RoomTimeouts, Rooms, TokenKeys,
};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

pub struct NoMedia;

impl Media for NoMedia {
    fn open_room(&self, _: &str, _: mpsc::Sender<MediaEvent>) {}
    fn offer(
        &self,
        _: &str,
        _: ParticipantId,
        _: MediaPerms,
        _: String,
        _: Option<Vec<String>>,
    ) -> oneshot::Receiver<Result<String, MediaError>> {
        oneshot::channel().1
    }
    fn answer(
        &self,
        _: &str,
        _: ParticipantId,
        _: String,
    ) -> oneshot::Receiver<Result<(), MediaError>> {
        oneshot::channel().1
    }
    fn remove(&self, _: &str, _: ParticipantId) {}
    fn ice_restart(&self, _: &str, _: ParticipantId) {}
    fn audio_only(&self, _: &str, _: ParticipantId, _: bool) {}
    fn video_view(&self, _: &str, _: ParticipantId, _: Vec<VideoView>) {}
    fn close_room(&self, _: &str) {}
}

pub const SECRET: &str = "test-secret-test-secret-test-secret";
pub const SPECIALTIES: [&str; 5] = [
    "cardiology",
    "paediatrics",
    "obstetrics",
    "infectious_disease",
    "general",
];

pub async fn start() -> (SocketAddr, TokenKeys, QueueService) {
    start_with(QueueSettings {
        max_requests: 100_000,
        ..QueueSettings::default()
    })
    .await
}

pub async fn start_with(settings: QueueSettings) -> (SocketAddr, TokenKeys, QueueService) {
    let keys = TokenKeys::new("key", SECRET);
    let rooms = Rooms::new(
        Arc::new(NoMedia),
        RoomSettings {
            max_participants: 8,
            max_rooms: 100_000,
            timeouts: RoomTimeouts {
                empty_timeout: Duration::from_secs(5),
                departure_timeout: Duration::from_secs(1),
                reconnect_grace: Duration::ZERO,
            },
            turn: Default::default(),
        },
    );
    let queue = QueueService::start(
        Arc::new(MemoryQueue::new(settings)),
        QueueServiceConfig {
            keys: keys.clone(),
            rooms,
            observer: Arc::new(kham_signal::NoObserver),
            draining: Arc::new(AtomicBool::new(false)),
            limits: kham_signal::RateLimits::default(),
            call_token_ttl: Duration::from_secs(3600),
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(queue.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, keys, queue)
}

pub fn claims(keys: &TokenKeys, sub: &str, role: Role) -> Claims {
    let mut grants = role.default_grants();
    grants.queue = role == Role::Station;
    Claims {
        iss: keys.api_key().into(),
        sub: sub.into(),
        name: sub.into(),
        room: String::new(),
        role,
        exp: 4_000_000_000,
        nbf: 0,
        jti: format!("j-{sub}"),
        grants,
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(addr: SocketAddr, token: &str) -> Ws {
    let url = format!("ws://{addr}/queue/ws?token={token}");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

pub async fn next(ws: &mut Ws) -> Option<QueueServerMsg> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

pub async fn send(ws: &mut Ws, v: serde_json::Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}
