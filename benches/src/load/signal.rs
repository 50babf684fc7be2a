//! One participant's signaling: the kham WebSocket protocol (`crates/proto/PROTOCOL.md`) with
//! kham-proto's own message types, on the tokio runtime. It joins, hands SDP to the media
//! thread and back, and keeps the socket read (pings, later offers) until told to leave.

use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use kham_proto::{ClientMsg, ServerMsg, Status};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::load::engine::{Cmd, EngineError, EngineHandle};

/// Why a participant could not join or stay.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("WebSocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the server closed the socket before {0}")]
    Closed(&'static str),
    #[error("the first message was not `welcome`")]
    NoWelcome,
    #[error("put in the lobby (a role that waits)")]
    Waiting,
    #[error("server error {code:?}: {message}")]
    Server { code: String, message: String },
    #[error("media thread: {0}")]
    Engine(#[from] EngineError),
    #[error("client media: {0}")]
    Client(#[from] crate::load::client::ClientError),
    #[error("the media thread dropped a reply")]
    NoReply,
    #[error("encoding a message: {0}")]
    Json(#[from] serde_json::Error),
}

/// Who joins.
#[derive(Debug, Clone)]
pub struct Joiner {
    pub idx: usize,
    pub url: String,
    pub publish: bool,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, m: &ClientMsg) -> Result<(), SignalError> {
    ws.send(Message::text(serde_json::to_string(m)?)).await?;
    Ok(())
}

/// The next protocol message (pings are answered by tungstenite while reading).
async fn next_msg(ws: &mut Ws, what: &'static str) -> Result<ServerMsg, SignalError> {
    loop {
        match ws.next().await {
            None => return Err(SignalError::Closed(what)),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Text(t))) => {
                // A message type this generator does not know is not an error.
                if let Ok(m) = serde_json::from_str::<ServerMsg>(&t) {
                    return Ok(m);
                }
            }
            Some(Ok(Message::Close(_))) => return Err(SignalError::Closed(what)),
            Some(Ok(_)) => {}
        }
    }
}

async fn answer_offer(
    ws: &mut Ws,
    engine: &EngineHandle,
    idx: usize,
    sdp: String,
    offer_id: Option<u64>,
) -> Result<(), SignalError> {
    let (reply, rx) = oneshot::channel();
    engine.send(Cmd::Offer { idx, sdp, reply })?;
    let answer = rx.await.map_err(|_| SignalError::NoReply)??;
    send(
        ws,
        &ClientMsg::Answer {
            sdp: answer,
            offer_id,
        },
    )
    .await
}

/// Joins, publishes or subscribes, and stays until `leave` turns true. Returns when the media
/// session is set up (`joined` is sent then) or on error; the socket is then served in the
/// background of the same task until `leave`.
pub async fn participant(
    j: Joiner,
    engine: EngineHandle,
    mut leave: watch::Receiver<bool>,
    joined: oneshot::Sender<Result<(), String>>,
) {
    let mut joined = Some(joined);
    let r = run(&j, &engine, &mut leave, &mut joined).await;
    if let Some(tx) = joined.take() {
        let _ = tx.send(r.map_err(|e| e.to_string()));
    } else if let Err(e) = r {
        eprintln!("load: participant {} signaling ended: {e}", j.idx);
    }
}

async fn run(
    j: &Joiner,
    engine: &EngineHandle,
    leave: &mut watch::Receiver<bool>,
    joined: &mut Option<oneshot::Sender<Result<(), String>>>,
) -> Result<(), SignalError> {
    let ws_open = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(j.url.as_str()).await?;
    match next_msg(&mut ws, "welcome").await? {
        ServerMsg::Welcome { status, .. } => {
            if status == Status::Waiting {
                return Err(SignalError::Waiting);
            }
        }
        ServerMsg::Error { code, message } => {
            return Err(SignalError::Server {
                code: format!("{code:?}"),
                message,
            });
        }
        _ => return Err(SignalError::NoWelcome),
    }
    let (reply, rx) = oneshot::channel();
    engine.send(Cmd::Create {
        idx: j.idx,
        publish: j.publish,
        ws_open,
        reply,
    })?;
    let offer = rx.await.map_err(|_| SignalError::NoReply)??;
    send(
        &mut ws,
        &ClientMsg::Offer {
            sdp: offer,
            screen: None,
        },
    )
    .await?;
    loop {
        tokio::select! {
            changed = leave.changed() => {
                if changed.is_err() || *leave.borrow() {
                    let _ = send(&mut ws, &ClientMsg::Leave).await;
                    let _ = ws.close(None).await;
                    return Ok(());
                }
            }
            m = next_msg(&mut ws, "leaving") => match m? {
                ServerMsg::Answer { sdp } => {
                    engine.send(Cmd::Answer { idx: j.idx, sdp })?;
                    if let Some(tx) = joined.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                ServerMsg::Offer { sdp, offer_id, .. } => {
                    answer_offer(&mut ws, engine, j.idx, sdp, offer_id).await?;
                }
                ServerMsg::Error { code, message } => {
                    let e = SignalError::Server { code: format!("{code:?}"), message };
                    if joined.is_some() {
                        return Err(e);
                    }
                    eprintln!("load: participant {}: {e}", j.idx);
                }
                ServerMsg::Ended { .. } | ServerMsg::Removed { .. } | ServerMsg::Denied { .. } => {
                    return Err(SignalError::Closed("the end of the run"));
                }
                _ => {}
            }
        }
    }
}
