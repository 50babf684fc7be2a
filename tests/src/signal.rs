//! WebSocket signaling client for the kham protocol (`crates/proto/PROTOCOL.md`).
//!
//! Messages are handled as `serde_json::Value` on purpose: the tests check the wire format, not
//! the server's own Rust types. A reader task turns the socket into a stream of
//! [`SignalEvent`]s; [`SignalClient`] adds waiting helpers that *stash* messages they skip, so a
//! later `expect` still finds them (message order between independent events is not something the
//! tests should depend on).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Default time to wait for an expected message.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A close frame received from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// WebSocket close code.
    pub code: u16,
    /// Close reason text.
    pub reason: String,
}

/// Something that happened on the socket.
#[derive(Debug, Clone)]
pub enum SignalEvent {
    /// A JSON text message.
    Msg(Value),
    /// A text message that is not JSON (a protocol violation by the server).
    NonJson(String),
    /// A binary message (a protocol violation by the server).
    Binary(Vec<u8>),
    /// The connection ended: `Some` with the close frame, `None` if it ended without one.
    Closed(Option<CloseInfo>),
    /// A transport error (the connection is gone after this; a `Closed` follows).
    Error(String),
}

/// The `type` of a message, or "".
pub fn msg_type(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Cloneable sending half.
#[derive(Clone)]
pub struct SignalSender {
    sink: Arc<Mutex<SplitSink<Ws, Message>>>,
}

impl SignalSender {
    /// Sends a JSON message.
    pub async fn send_json(&self, v: &Value) -> Result<()> {
        self.send_text(v.to_string()).await
    }

    /// Sends a raw text frame.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<()> {
        self.send_message(Message::text(text.into())).await
    }

    /// Sends any WebSocket message.
    pub async fn send_message(&self, m: Message) -> Result<()> {
        let mut sink = self.sink.lock().await;
        sink.send(m)
            .await
            .context("sending on the signaling socket")?;
        Ok(())
    }

    /// Sends a close frame (normal closure).
    pub async fn close(&self) -> Result<()> {
        let mut sink = self.sink.lock().await;
        sink.close().await.context("closing the signaling socket")?;
        Ok(())
    }
}

/// A connected signaling socket with waiting helpers.
pub struct SignalClient {
    tx: SignalSender,
    rx: mpsc::UnboundedReceiver<SignalEvent>,
    stash: VecDeque<SignalEvent>,
    closed: Option<Option<CloseInfo>>,
}

/// Connects a WebSocket to `url` and spawns the reader task. Returns the sender and the event
/// stream.
pub async fn connect_raw(
    url: &str,
) -> Result<(SignalSender, mpsc::UnboundedReceiver<SignalEvent>)> {
    // Allow large *outgoing* frames (the >64 KiB test) and large incoming ones (we check the
    // server, not ourselves).
    let config = WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20));
    let (ws, _resp) = tokio::time::timeout(
        DEFAULT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(url, Some(config), true),
    )
    .await
    .map_err(|_| anyhow!("WebSocket connect to {url} timed out"))?
    .map_err(|e| describe_connect_error(url, e))?;
    let (sink, mut stream) = ws.split();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut close = None;
        while let Some(item) = stream.next().await {
            let ev = match item {
                Ok(Message::Text(t)) => match serde_json::from_str::<Value>(t.as_str()) {
                    Ok(v) => SignalEvent::Msg(v),
                    Err(_) => SignalEvent::NonJson(t.to_string()),
                },
                Ok(Message::Binary(b)) => SignalEvent::Binary(b.to_vec()),
                Ok(Message::Close(f)) => {
                    close = Some(
                        f.map(|f| CloseInfo {
                            code: u16::from(f.code),
                            reason: f.reason.to_string(),
                        })
                        .unwrap_or(CloseInfo {
                            code: 1005,
                            reason: String::new(),
                        }),
                    );
                    continue;
                }
                Ok(_) => continue, // ping/pong/raw frames
                Err(e) => SignalEvent::Error(e.to_string()),
            };
            let is_err = matches!(ev, SignalEvent::Error(_));
            if ev_tx.send(ev).is_err() {
                return;
            }
            if is_err {
                break;
            }
        }
        let _ = ev_tx.send(SignalEvent::Closed(close));
    });
    Ok((
        SignalSender {
            sink: Arc::new(Mutex::new(sink)),
        },
        ev_rx,
    ))
}

fn describe_connect_error(url: &str, e: tokio_tungstenite::tungstenite::Error) -> anyhow::Error {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Http(resp) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            anyhow!(
                "WebSocket upgrade to {url} rejected: HTTP {} {body}",
                resp.status()
            )
        }
        other => anyhow!("WebSocket connect to {url} failed: {other}"),
    }
}

impl SignalClient {
    /// Connects to a full `ws://` URL.
    pub async fn connect(url: &str) -> Result<Self> {
        let (tx, rx) = connect_raw(url).await?;
        Ok(Self::from_parts(tx, rx))
    }

    /// Connects to a full `ws://` URL and waits for `welcome`; returns it with the client.
    pub async fn connect_welcomed(url: &str) -> Result<(Self, Value)> {
        let mut c = Self::connect(url).await?;
        let welcome = c.expect("welcome").await?;
        Ok((c, welcome))
    }

    /// Builds a client from a sender and an event stream.
    pub fn from_parts(tx: SignalSender, rx: mpsc::UnboundedReceiver<SignalEvent>) -> Self {
        SignalClient {
            tx,
            rx,
            stash: VecDeque::new(),
            closed: None,
        }
    }

    /// The sending half (cloneable).
    pub fn sender(&self) -> SignalSender {
        self.tx.clone()
    }

    /// Sends a JSON message.
    pub async fn send(&self, v: Value) -> Result<()> {
        self.tx.send_json(&v).await
    }

    /// Sends a raw text frame.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<()> {
        self.tx.send_text(text).await
    }

    /// Sends `{"type":"ping","id":id}` (the id is an integer, as in `kham-proto`).
    pub async fn ping(&self, id: u64) -> Result<()> {
        self.send(json!({"type": "ping", "id": id})).await
    }

    /// Sends a ping and waits for the matching pong (proves the connection is usable).
    pub async fn ping_pong(&mut self, id: u64) -> Result<()> {
        self.ping(id).await?;
        self.expect_where(&format!("pong with id {id}"), DEFAULT_TIMEOUT, move |v| {
            msg_type(v) == "pong" && v.get("id").and_then(Value::as_u64) == Some(id)
        })
        .await?;
        Ok(())
    }

    /// Once a `Closed` event has been consumed: its close frame.
    pub fn closed(&self) -> Option<&Option<CloseInfo>> {
        self.closed.as_ref()
    }

    async fn next_raw(&mut self, timeout: Duration) -> Option<SignalEvent> {
        if let Some(c) = &self.closed {
            return Some(SignalEvent::Closed(c.clone()));
        }
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(ev)) => {
                if let SignalEvent::Closed(c) = &ev {
                    self.closed = Some(c.clone());
                }
                Some(ev)
            }
            Ok(None) => {
                self.closed = Some(None);
                Some(SignalEvent::Closed(None))
            }
            Err(_) => None,
        }
    }

    /// Next event (stashed ones first); `None` on timeout.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<SignalEvent> {
        if let Some(ev) = self.stash.pop_front() {
            return Some(ev);
        }
        self.next_raw(timeout).await
    }

    /// Next JSON message; errors on timeout, close, or a non-JSON frame.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Value> {
        match self.next_event(timeout).await {
            Some(SignalEvent::Msg(v)) => Ok(v),
            Some(other) => bail!("expected a JSON message, got {other:?}"),
            None => bail!("no message within {timeout:?}"),
        }
    }

    /// Waits for a message matching `pred`, stashing everything else. Errors on timeout or when
    /// the connection closes first (the error lists what was seen).
    pub async fn expect_where(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        if let Some(pos) = self
            .stash
            .iter()
            .position(|ev| matches!(ev, SignalEvent::Msg(v) if pred(v)))
            && let Some(SignalEvent::Msg(v)) = self.stash.remove(pos)
        {
            return Ok(v);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_raw(left).await {
                None => bail!(
                    "timed out after {timeout:?} waiting for {what}; other messages: {}",
                    summarize(&self.stash)
                ),
                Some(SignalEvent::Msg(v)) if pred(&v) => return Ok(v),
                Some(SignalEvent::Closed(c)) => bail!(
                    "connection closed ({c:?}) while waiting for {what}; other messages: {}",
                    summarize(&self.stash)
                ),
                Some(ev) => self.stash.push_back(ev),
            }
        }
    }

    /// Waits for a message with this `type`.
    pub async fn expect(&mut self, ty: &str) -> Result<Value> {
        self.expect_timeout(ty, DEFAULT_TIMEOUT).await
    }

    /// Waits for a message with this `type`, with a timeout.
    pub async fn expect_timeout(&mut self, ty: &str, timeout: Duration) -> Result<Value> {
        let t = ty.to_owned();
        self.expect_where(&format!("{ty:?}"), timeout, move |v| msg_type(v) == t)
            .await
    }

    /// Waits for `{"type":"error","code":code}`.
    pub async fn expect_error(&mut self, code: &str) -> Result<Value> {
        let v = self.expect("error").await?;
        let got = v.get("code").and_then(Value::as_str).unwrap_or("");
        if got != code {
            bail!("expected error code {code:?}, got {v}");
        }
        Ok(v)
    }

    /// Waits for the connection to close, stashing messages; returns the close frame.
    pub async fn expect_closed(&mut self, timeout: Duration) -> Result<Option<CloseInfo>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_raw(left).await {
                None => bail!("connection not closed within {timeout:?}"),
                Some(SignalEvent::Closed(c)) => return Ok(c),
                Some(ev) => self.stash.push_back(ev),
            }
        }
    }

    /// Collects every message of type `ty` arriving within `window` (stashing others).
    pub async fn collect_for(&mut self, window: Duration, ty: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut keep = VecDeque::new();
        while let Some(ev) = self.stash.pop_front() {
            match ev {
                SignalEvent::Msg(v) if msg_type(&v) == ty => out.push(v),
                other => keep.push_back(other),
            }
        }
        self.stash = keep;
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match self.next_raw(left).await {
                None => break,
                Some(SignalEvent::Msg(v)) if msg_type(&v) == ty => out.push(v),
                Some(SignalEvent::Closed(c)) => {
                    self.stash.push_back(SignalEvent::Closed(c));
                    break;
                }
                Some(ev) => self.stash.push_back(ev),
            }
        }
        out
    }

    /// Everything received so far without waiting (drains the stash and the queue).
    pub fn drain(&mut self) -> Vec<SignalEvent> {
        let mut out: Vec<_> = self.stash.drain(..).collect();
        while let Ok(ev) = self.rx.try_recv() {
            if let SignalEvent::Closed(c) = &ev {
                self.closed = Some(c.clone());
            }
            out.push(ev);
        }
        out
    }
}

fn summarize(stash: &VecDeque<SignalEvent>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for ev in stash {
        parts.push(match ev {
            SignalEvent::Msg(v) => {
                let s = v.to_string();
                if s.chars().count() > 200 {
                    format!("{}…", s.chars().take(200).collect::<String>())
                } else {
                    s
                }
            }
            other => format!("{other:?}"),
        });
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}
