//! The Janus side of the comparison (issue 15, part 2): Janus VideoRoom started from the
//! project's own script (`benches/browser/janus/janus.sh`) in its own network namespace, and
//! one participant's signaling over Janus's JSON API on WebSocket (subprotocol
//! `janus-protocol`), next to [`crate::load::signal`] (kham's).
//!
//! Janus keeps publishing and subscribing apart: a participant that publishes and receives has
//! two PeerConnections, a publisher handle (the client offers sendonly Opus + three VP8
//! simulcast encodings, `rid_order` low to high, as `benches/browser/configs/janus.mjs` does) and
//! a subscriber handle (Janus offers every subscribed feed in one multistream session, the
//! client answers). Subscribers ask for substream 2 (`f`, the top layer) and temporal layer 2
//! (every frame): what kham forwards with `media.adaptation = false`. The media side is the
//! generator's str0m clients, unchanged: the subscriber PeerConnection is engine client
//! `subscriber_base + seat`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::load::engine::{Cmd, EngineError, EngineHandle};

/// The load generator's namespace: apart from the browser benchmark's (`kham-janus`,
/// 10.77.0.x), so the two can run on one machine.
pub const NETNS: &str = "kham-load";
const HOST_IF: &str = "khl0";
const NS_IF: &str = "khl1";
const NET: &str = "10.78.0";
/// The host side of the veth: the generator's clients bind here.
pub const HOST_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 78, 0, 1));
/// The namespace side: the server under test (Janus, or kham with `--netns`).
pub const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 78, 0, 2));
/// Janus's WebSocket transport port (`janus.transport.websockets.jcfg.in`).
const WS_PORT: u16 = 8188;
/// One UDP port per PeerConnection: two per participant that publishes and receives.
const PORTS: (u16, u16) = (20000, 40000);
/// Janus drops a session silent for 60 s (`session_timeout`).
const KEEPALIVE: Duration = Duration::from_secs(25);
/// VideoRoom's "No such feed" (the publisher's PeerConnection is not up yet).
const NO_SUCH_FEED: i64 = 428;
/// How often a subscriber asks again for a feed that does not exist yet (its join time
/// includes up to this much of polling).
const FEED_POLL: Duration = Duration::from_millis(50);
/// How long a subscriber waits for the feeds it wants to exist.
const FEED_WAIT: Duration = Duration::from_secs(30);
/// Substream and temporal layer every subscriber asks for: the top layer, every frame.
pub const SUBSTREAM: u8 = 2;
pub const TEMPORAL: u8 = 2;

/// Why Janus could not be started or spoken to.
#[derive(Debug, thiserror::Error)]
pub enum JanusError {
    #[error("{0}: {1}")]
    Script(String, std::io::Error),
    #[error("{0} failed ({1}):\n{2}")]
    ScriptFailed(String, std::process::ExitStatus, String),
    #[error("reading Janus's pid from {0}: {1}")]
    Pid(PathBuf, String),
    #[error("WebSocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("Janus closed the socket before {0}")]
    Closed(&'static str),
    #[error("Janus error {code}: {reason}")]
    Janus { code: i64, reason: String },
    #[error("unexpected Janus reply to {0}: {1}")]
    Unexpected(&'static str, String),
    #[error("no answer from Janus to {0} within 20 s")]
    Timeout(&'static str),
    #[error("media thread: {0}")]
    Engine(#[from] EngineError),
    #[error("client media: {0}")]
    Client(#[from] crate::load::client::ClientError),
    #[error("the media thread dropped a reply")]
    NoReply,
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The network namespace of the run (`janus.sh net`/`up`), deleted on drop.
pub struct Netns {
    script: PathBuf,
    dir: PathBuf,
}

impl Netns {
    fn env(cmd: &mut Command) {
        cmd.env("KHAM_JANUS_NS", NETNS)
            .env("KHAM_JANUS_HOST_IF", HOST_IF)
            .env("KHAM_JANUS_NS_IF", NS_IF)
            .env("KHAM_JANUS_NET", NET)
            .env("KHAM_JANUS_PORT_FIRST", PORTS.0.to_string())
            .env("KHAM_JANUS_PORT_LAST", PORTS.1.to_string());
    }

    fn script(script: &Path, args: &[&str], cpu: Option<usize>) -> Result<String, JanusError> {
        let what = format!("{} {}", script.display(), args.join(" "));
        let mut cmd = Command::new(script);
        cmd.args(args);
        Self::env(&mut cmd);
        match cpu {
            Some(c) => cmd.env("KHAM_JANUS_CPU", c.to_string()),
            None => cmd.env_remove("KHAM_JANUS_CPU"),
        };
        let out = cmd
            .output()
            .map_err(|e| JanusError::Script(what.clone(), e))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            return Err(JanusError::ScriptFailed(what, out.status, text));
        }
        Ok(text)
    }

    /// Creates the namespace and veth only (kham runs there with `--netns`).
    pub fn create(script: &Path, dir: &Path) -> Result<Netns, JanusError> {
        let d = dir.display().to_string();
        Self::script(script, &["net", &d], None)?;
        Ok(Netns {
            script: script.to_path_buf(),
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let d = self.dir.display().to_string();
        if let Err(e) = Self::script(&self.script, &["down", &d], None) {
            eprintln!("load: {e}");
        }
    }
}

/// `benches/browser/janus/janus.sh` of this source tree (`--janus-script` overrides it).
pub fn default_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/janus/janus.sh")
}

/// A Janus this run started; stopped (and its namespace deleted) on drop.
pub struct JanusServer {
    pub pid: u32,
    pub ws_url: String,
    _netns: Netns,
}

impl JanusServer {
    /// `janus.sh up DIR 10.78.0.2` (Janus announces its own veth address), pinned to `cpu`.
    pub fn start(script: &Path, dir: &Path, cpu: Option<usize>) -> Result<JanusServer, JanusError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| JanusError::Script(dir.display().to_string(), e))?;
        let d = dir.display().to_string();
        let ip = SERVER_IP.to_string();
        // The namespace is deleted with `netns` if anything below fails.
        let netns = Netns {
            script: script.to_path_buf(),
            dir: dir.to_path_buf(),
        };
        let out = Netns::script(script, &["up", &d, &ip], cpu)?;
        eprintln!("load: {}", out.trim());
        let pid_file = dir.join("janus.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .map_err(|e| JanusError::Pid(pid_file.clone(), e.to_string()))?
            .trim()
            .parse::<u32>()
            .map_err(|e| JanusError::Pid(pid_file.clone(), e.to_string()))?;
        Ok(JanusServer {
            pid,
            ws_url: format!("ws://{}", SocketAddr::new(SERVER_IP, WS_PORT)),
            _netns: netns,
        })
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One WebSocket to Janus holding one session.
struct Conn {
    ws: Ws,
    next_tx: u64,
    session: Option<u64>,
}

fn janus_error(v: &Value) -> Option<JanusError> {
    if v["janus"] == "error" {
        return Some(JanusError::Janus {
            code: v["error"]["code"].as_i64().unwrap_or(0),
            reason: v["error"]["reason"].as_str().unwrap_or("").to_owned(),
        });
    }
    let data = &v["plugindata"]["data"];
    data.get("error_code").map(|c| JanusError::Janus {
        code: c.as_i64().unwrap_or(0),
        reason: data["error"].as_str().unwrap_or("").to_owned(),
    })
}

impl Conn {
    async fn open(url: &str) -> Result<Conn, JanusError> {
        let mut req = url.into_client_request()?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("janus-protocol"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Conn {
            ws,
            next_tx: 0,
            session: None,
        })
    }

    async fn send(&mut self, mut v: Value) -> Result<String, JanusError> {
        self.next_tx += 1;
        let tx = format!("t{}", self.next_tx);
        v["transaction"] = json!(tx);
        if let Some(s) = self.session {
            v["session_id"] = json!(s);
        }
        self.ws
            .send(Message::text(serde_json::to_string(&v)?))
            .await?;
        Ok(tx)
    }

    /// The next JSON message (anything else, and what does not parse, is skipped).
    async fn next(&mut self, what: &'static str) -> Result<Value, JanusError> {
        loop {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Err(JanusError::Closed(what)),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(t))) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&t) {
                        return Ok(v);
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Sends a request and returns Janus's reply to it (for plugin messages, the event after
    /// the "ack"); an error reply (core or plugin) is an `Err`.
    async fn call(&mut self, what: &'static str, v: Value) -> Result<Value, JanusError> {
        let tx = self.send(v).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let m = tokio::time::timeout_at(deadline, self.next(what))
                .await
                .map_err(|_| JanusError::Timeout(what))??;
            if m["transaction"].as_str() != Some(tx.as_str()) || m["janus"] == "ack" {
                continue;
            }
            return match janus_error(&m) {
                Some(e) => Err(e),
                None => Ok(m),
            };
        }
    }

    async fn create_session(&mut self) -> Result<u64, JanusError> {
        let r = self.call("create", json!({"janus": "create"})).await?;
        let id = r["data"]["id"]
            .as_u64()
            .ok_or_else(|| JanusError::Unexpected("create", r.to_string()))?;
        self.session = Some(id);
        Ok(id)
    }

    async fn attach(&mut self) -> Result<u64, JanusError> {
        let r = self
            .call(
                "attach",
                json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
            )
            .await?;
        r["data"]["id"]
            .as_u64()
            .ok_or_else(|| JanusError::Unexpected("attach", r.to_string()))
    }

    async fn message(
        &mut self,
        what: &'static str,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<Value, JanusError> {
        let mut v = json!({"janus": "message", "handle_id": handle, "body": body});
        if let Some(j) = jsep {
            v["jsep"] = j;
        }
        self.call(what, v).await
    }
}

/// Numeric VideoRoom ids of the run's rooms: `base + index`, `base` from the run's tag so two
/// runs against one Janus do not meet.
pub fn room_base(tag_secs: u64) -> u64 {
    1_000_000 + (tag_secs % 1_000_000) * 1000
}

/// Creates the rooms (same settings as the browser benchmark's room: VP8, Opus, `fir_freq`
/// 10, no bitrate cap, no recording), over one session that is closed afterwards.
pub async fn create_rooms(url: &str, rooms: &[u64], publishers: usize) -> Result<(), JanusError> {
    let mut c = Conn::open(url).await?;
    c.create_session().await?;
    let h = c.attach().await?;
    for r in rooms {
        let body = json!({
            "request": "create", "room": r, "publishers": publishers.max(1),
            "audiocodec": "opus", "videocodec": "vp8", "fir_freq": 10, "record": false,
            "description": "kham load",
        });
        c.message("create room", h, body, None).await?;
    }
    let _ = c.send(json!({"janus": "destroy"})).await;
    let _ = c.ws.close(None).await;
    Ok(())
}

/// One participant of a Janus run.
#[derive(Debug, Clone)]
pub struct JanusSeat {
    /// Engine client of the publisher PeerConnection (and the publisher's feed id - 1).
    pub idx: usize,
    /// Engine client of the subscriber PeerConnection.
    pub sub_idx: usize,
    pub url: String,
    pub room: u64,
    pub publish: bool,
    /// Feeds (publishers' ids) to receive; empty: no subscriber PeerConnection.
    pub feeds: Vec<u64>,
}

/// The feed id of the publisher seat `idx` (Janus lets the client choose it).
pub fn feed_id(idx: usize) -> u64 {
    idx as u64 + 1
}

/// Joins, publishes and subscribes, then keeps the session alive until `leave` turns true;
/// `joined` gets the outcome of the setup.
pub async fn participant(
    s: JanusSeat,
    engine: EngineHandle,
    mut leave: watch::Receiver<bool>,
    joined: oneshot::Sender<Result<(), String>>,
) {
    let mut joined = Some(joined);
    let r = run(&s, &engine, &mut leave, &mut joined).await;
    if let Some(tx) = joined.take() {
        let _ = tx.send(r.map_err(|e| e.to_string()));
    } else if let Err(e) = r {
        eprintln!("load: janus participant {} ended: {e}", s.idx);
    }
}

fn jsep_sdp(v: &Value, what: &'static str) -> Result<String, JanusError> {
    v["jsep"]["sdp"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| JanusError::Unexpected(what, v.to_string()))
}

async fn run(
    s: &JanusSeat,
    engine: &EngineHandle,
    leave: &mut watch::Receiver<bool>,
    joined: &mut Option<oneshot::Sender<Result<(), String>>>,
) -> Result<(), JanusError> {
    let ws_open = Instant::now();
    let mut c = Conn::open(&s.url).await?;
    c.create_session().await?;
    if s.publish {
        let h = c.attach().await?;
        let body = json!({"request": "join", "ptype": "publisher", "room": s.room,
                          "id": feed_id(s.idx), "display": format!("load-{}", s.idx)});
        c.message("join as publisher", h, body, None).await?;
        let (reply, rx) = oneshot::channel();
        engine.send(Cmd::Create {
            idx: s.idx,
            publish: true,
            ws_open,
            reply,
        })?;
        let offer = rx.await.map_err(|_| JanusError::NoReply)??;
        // Our encodings are listed lowest first (q, h, f); Janus assumes highest first
        // unless told.
        let jsep = json!({"type": "offer", "sdp": offer, "trickle": false, "rid_order": "lmh"});
        let body = json!({"request": "publish", "audio": true, "video": true});
        let r = c.message("publish", h, body, Some(jsep)).await?;
        let sdp = jsep_sdp(&r, "publish")?;
        engine.send(Cmd::Answer { idx: s.idx, sdp })?;
    }
    if !s.feeds.is_empty() {
        let h = c.attach().await?;
        let streams: Vec<Value> = s
            .feeds
            .iter()
            .map(|f| json!({"feed": f, "substream": SUBSTREAM, "temporal": TEMPORAL}))
            .collect();
        let body = json!({"request": "join", "ptype": "subscriber", "room": s.room,
                          "streams": streams});
        // A feed exists once its publisher's PeerConnection is up: wait for it.
        let waited = Instant::now();
        let r = loop {
            match c.message("join as subscriber", h, body.clone(), None).await {
                Err(JanusError::Janus { code, .. })
                    if code == NO_SUCH_FEED && waited.elapsed() < FEED_WAIT =>
                {
                    tokio::time::sleep(FEED_POLL).await;
                }
                r => break r?,
            }
        };
        let sdp = jsep_sdp(&r, "join as subscriber")?;
        let (reply, rx) = oneshot::channel();
        engine.send(Cmd::CreateAnswering {
            idx: s.sub_idx,
            sdp,
            ws_open,
            reply,
        })?;
        let answer = rx.await.map_err(|_| JanusError::NoReply)??;
        let jsep = json!({"type": "answer", "sdp": answer, "trickle": false});
        c.message(
            "start",
            h,
            json!({"request": "start", "room": s.room}),
            Some(jsep),
        )
        .await?;
    }
    if let Some(tx) = joined.take() {
        let _ = tx.send(Ok(()));
    }
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.tick().await;
    loop {
        tokio::select! {
            changed = leave.changed() => {
                if changed.is_err() || *leave.borrow() {
                    let _ = c.send(json!({"janus": "destroy"})).await;
                    let _ = c.ws.close(None).await;
                    return Ok(());
                }
            }
            _ = tick.tick() => {
                c.send(json!({"janus": "keepalive"})).await?;
            }
            // Events (webrtcup, media, slowlink, ...) and keepalive acks: read and dropped.
            m = c.next("the end of the run") => { m?; }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_told_apart() {
        let core = json!({"janus": "error", "error": {"code": 458, "reason": "No such session"}});
        assert!(matches!(
            janus_error(&core),
            Some(JanusError::Janus { code: 458, .. })
        ));
        let plugin = json!({"janus": "event", "plugindata": {"plugin": "janus.plugin.videoroom",
            "data": {"videoroom": "event", "error_code": 428, "error": "No such feed (3)"}}});
        assert!(matches!(
            janus_error(&plugin),
            Some(JanusError::Janus {
                code: NO_SUCH_FEED,
                ..
            })
        ));
        let ok =
            json!({"janus": "event", "plugindata": {"data": {"videoroom": "joined", "id": 3}}});
        assert!(janus_error(&ok).is_none());
        assert!(jsep_sdp(&ok, "x").is_err());
        // Garbage never panics.
        assert!(janus_error(&json!([1, 2])).is_none());
        assert!(janus_error(&Value::Null).is_none());
    }
}
