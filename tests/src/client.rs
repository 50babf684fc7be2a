//! A full participant: signaling socket + (optionally) a WebRTC [`Peer`], with the protocol's
//! media negotiation automated the way the browser SDK does it.
//!
//! A background task owns the socket's event stream. It answers server `offer`s, applies the
//! server's `answer` to our one publish offer, keeps the mid → participant map from `offer.tracks`
//! and `tracks`, and then forwards *every* event unchanged to [`Participant::signal`], so a test
//! still sees the whole conversation (a forwarded `offer` has already been answered).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::peer::{MediaKind, Peer, PeerOptions, RecvTrack};
use crate::server::KhamServer;
use crate::signal::{self, SignalClient, SignalEvent, SignalSender, msg_type};

/// Counters of completed negotiations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Negotiations {
    /// Server answers applied to our offer (0 or 1).
    pub answers_applied: u64,
    /// Server offers answered.
    pub offers_answered: u64,
}

struct Shared {
    timeline: Mutex<Vec<(std::time::Instant, String)>>,
    peer: Mutex<Option<Arc<Peer>>>,
    tracks: Mutex<BTreeMap<String, Value>>,
    errors: Mutex<Vec<String>>,
    negotiations: watch::Sender<Negotiations>,
}

enum Command {
    Publish {
        peer: Arc<Peer>,
        done: oneshot::Sender<Result<()>>,
    },
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A participant in a room (see the module docs).
pub struct Participant {
    /// Label for diagnostics (the display name).
    pub name: String,
    /// Role the token was minted with.
    pub role: String,
    /// Room id.
    pub room: String,
    /// The conversation as seen by the test (all events, after automatic handling).
    pub signal: SignalClient,
    /// The `welcome` message.
    pub welcome: Value,
    sender: SignalSender,
    shared: Arc<Shared>,
    negotiations_rx: watch::Receiver<Negotiations>,
    cmd_tx: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl Participant {
    /// Mints a token and joins `room`; waits for `welcome`.
    pub async fn join(
        server: &KhamServer,
        room: &str,
        identity: &str,
        name: &str,
        role: &str,
    ) -> Result<Self> {
        let token = server.token(room, identity, name, role)?;
        let mut p = Self::connect(server, room, &token, name).await?;
        p.role = role.to_owned();
        Ok(p)
    }

    /// Joins with an existing token; waits for `welcome`.
    pub async fn connect(server: &KhamServer, room: &str, token: &str, name: &str) -> Result<Self> {
        let (sender, raw_rx) = signal::connect_raw(&server.ws_url(room, token))
            .await
            .with_context(|| format!("{name} joining {room}"))?;
        let (fwd_tx, fwd_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (neg_tx, neg_rx) = watch::channel(Negotiations::default());
        let shared = Arc::new(Shared {
            timeline: Mutex::new(Vec::new()),
            peer: Mutex::new(None),
            tracks: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(Vec::new()),
            negotiations: neg_tx,
        });
        let task = tokio::spawn(run(
            name.to_owned(),
            sender.clone(),
            raw_rx,
            fwd_tx,
            cmd_rx,
            Arc::clone(&shared),
        ));
        let mut signal = SignalClient::from_parts(sender.clone(), fwd_rx);
        let welcome = signal
            .expect("welcome")
            .await
            .with_context(|| format!("{name}: no welcome"))?;
        Ok(Participant {
            name: name.to_owned(),
            role: String::new(),
            room: room.to_owned(),
            signal,
            welcome,
            sender,
            shared,
            negotiations_rx: neg_rx,
            cmd_tx,
            task,
        })
    }

    /// Our participant id (`welcome.me.id`).
    pub fn id(&self) -> String {
        self.welcome["me"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `welcome.status` ("waiting" or "admitted").
    pub fn status(&self) -> String {
        self.welcome["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Sends a raw JSON message.
    pub async fn send(&self, v: Value) -> Result<()> {
        self.sender.send_json(&v).await
    }

    /// `admit` a lobby entry.
    pub async fn admit(&self, id: &str) -> Result<()> {
        self.send(json!({"type": "admit", "id": id})).await
    }

    /// `deny` a lobby entry.
    pub async fn deny(&self, id: &str, reason: Option<&str>) -> Result<()> {
        let mut v = json!({"type": "deny", "id": id});
        if let Some(r) = reason {
            v["reason"] = json!(r);
        }
        self.send(v).await
    }

    /// `end_consult`.
    pub async fn end_consult(&self) -> Result<()> {
        self.send(json!({"type": "end_consult"})).await
    }

    /// `leave`.
    pub async fn leave(&self) -> Result<()> {
        self.send(json!({"type": "leave"})).await
    }

    /// Creates a [`Peer`], sends the publish offer, applies the server's answer, waits for the
    /// connection (ICE + DTLS) and, if anything is published, starts the synthetic media.
    pub async fn start_media(&self, opts: PeerOptions) -> Result<Arc<Peer>> {
        let peer = Peer::new(&self.name, opts).await?;
        let (done_tx, done_rx) = oneshot::channel();
        self.cmd_tx
            .send(Command::Publish {
                peer: Arc::clone(&peer),
                done: done_tx,
            })
            .map_err(|_| anyhow!("{}: signaling task is gone", self.name))?;
        tokio::time::timeout(Duration::from_secs(15), done_rx)
            .await
            .map_err(|_| anyhow!("{}: no answer to our offer within 15 s", self.name))?
            .map_err(|_| anyhow!("{}: signaling task ended before the answer", self.name))??;
        peer.wait_connected(Duration::from_secs(10))
            .await
            .with_context(|| format!("{}: WebRTC connection to the SFU", self.name))?;
        if opts.audio || opts.video {
            peer.start_sending().await?;
        }
        Ok(peer)
    }

    /// The peer, once [`Self::start_media`] was called.
    pub fn peer(&self) -> Option<Arc<Peer>> {
        lock(&self.shared.peer).clone()
    }

    /// Current mid → Track (JSON) map from `offer.tracks` / `tracks`.
    pub fn tracks(&self) -> BTreeMap<String, Value> {
        lock(&self.shared.tracks).clone()
    }

    /// mids currently mapped to `participant`'s `kind` track (active ones first).
    pub fn mids_of(&self, participant: &str, kind: MediaKind) -> Vec<String> {
        let tracks = lock(&self.shared.tracks);
        let mut v: Vec<(bool, String)> = tracks
            .iter()
            .filter(|(_, t)| {
                t["participant"].as_str() == Some(participant)
                    && t["kind"].as_str() == Some(kind.as_str())
            })
            .map(|(mid, t)| (t["active"].as_bool().unwrap_or(true), mid.clone()))
            .collect();
        v.sort_by_key(|(active, _)| !*active);
        v.into_iter().map(|(_, m)| m).collect()
    }

    /// What we received from `participant`'s `kind` track so far (via the mid map).
    pub fn received_from(&self, participant: &str, kind: MediaKind) -> Option<RecvTrack> {
        let peer = self.peer()?;
        self.mids_of(participant, kind)
            .iter()
            .filter_map(|mid| peer.received_on_mid(mid))
            .max_by_key(|t| t.packets.len())
    }

    /// Waits until at least `min_packets` RTP packets arrived from `participant`'s `kind` track.
    pub async fn wait_media_from(
        &self,
        participant: &str,
        kind: MediaKind,
        min_packets: usize,
        timeout: Duration,
    ) -> Result<RecvTrack> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(t) = self.received_from(participant, kind)
                && t.packets.len() >= min_packets
            {
                return Ok(t);
            }
            if tokio::time::Instant::now() > deadline {
                let peer = self.peer();
                let summary = match &peer {
                    Some(p) => format!("{:?}", p.transceiver_summary().await),
                    None => "no peer".to_owned(),
                };
                let got: Vec<String> = peer
                    .map(|p| {
                        p.received()
                            .iter()
                            .map(|t| {
                                format!(
                                    "{:?} mid={:?} ssrcs={:?} packets={}",
                                    t.kind,
                                    t.mid,
                                    t.ssrcs,
                                    t.packets.len()
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                bail!(
                    "{}: fewer than {min_packets} {} packets from {participant} within {timeout:?}; \
                     mid map {:?}; received tracks {:?}; transceivers {summary}; negotiation errors {:?}",
                    self.name,
                    kind.as_str(),
                    self.tracks(),
                    got,
                    self.errors()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Signaling/negotiation milestones with their times (for failure reports).
    pub fn timeline(&self) -> Vec<(std::time::Instant, String)> {
        lock(&self.shared.timeline).clone()
    }

    /// Negotiation failures seen by the background task.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.shared.errors).clone()
    }

    /// Counters of completed negotiations.
    pub fn negotiations(&self) -> Negotiations {
        *self.negotiations_rx.borrow()
    }

    /// Waits until `pred` holds for the negotiation counters.
    pub async fn wait_negotiations(
        &self,
        timeout: Duration,
        pred: impl Fn(&Negotiations) -> bool,
    ) -> Result<Negotiations> {
        let mut rx = self.negotiations_rx.clone();
        let n = tokio::time::timeout(timeout, rx.wait_for(|n| pred(n)))
            .await
            .map_err(|_| {
                anyhow!(
                    "{}: negotiation condition not met within {timeout:?} (now {:?})",
                    self.name,
                    self.negotiations()
                )
            })?
            .map_err(|_| anyhow!("{}: signaling task ended", self.name))?;
        Ok(*n)
    }

    /// Closes the socket and the peer connection.
    pub async fn close(self) {
        let _ = self.sender.close().await;
        if let Some(p) = self.peer() {
            p.close().await;
        }
        self.task.abort();
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(p) = lock(&self.shared.peer).take() {
            p.stop_sending();
            // Close in the background; dropping the last Arc also tears the driver down.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { p.close().await });
            }
        }
    }
}

fn early_answer() -> bool {
    std::env::var("KHAM_TEST_EARLY_ANSWER").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn mark(shared: &Shared, what: impl Into<String>) {
    lock(&shared.timeline).push((std::time::Instant::now(), what.into()));
}

fn update_tracks(shared: &Shared, list: &Value) {
    if let Some(arr) = list.as_array() {
        let mut t = lock(&shared.tracks);
        for tr in arr {
            if let Some(mid) = tr.get("mid").and_then(Value::as_str) {
                t.insert(mid.to_owned(), tr.clone());
            }
        }
    }
}

async fn answer_offer(
    name: &str,
    sender: &SignalSender,
    shared: &Shared,
    peer: &Peer,
    offer: &Value,
) {
    let Some(sdp) = offer.get("sdp").and_then(Value::as_str) else {
        lock(&shared.errors).push(format!("{name}: server offer without sdp: {offer}"));
        return;
    };
    // Work-around for webrtc-rs 0.21 (client side, not kham): SRTP packets read in the same
    // batch as the DTLS handshake's last flight are dropped ("remote_srtp_context is not set
    // yet"), because the SRTP keys are installed by an event that is applied only after the
    // batch. The SFU starts forwarding right after our answer and its queue is flushed right
    // behind the DTLS Finished, so the keyframe would be lost. Answering once connected avoids
    // that burst. Set KHAM_TEST_EARLY_ANSWER=1 to answer immediately, as a browser does.
    if !early_answer() && peer.state() != webrtc::peer_connection::RTCPeerConnectionState::Connected
    {
        mark(shared, "waiting for our connection before answering");
        if let Err(e) = peer.wait_connected(Duration::from_secs(10)).await {
            lock(&shared.errors).push(format!("{name}: not connected, answering anyway: {e:#}"));
        }
    }
    mark(shared, "answering server offer");
    match peer.answer_offer(sdp).await {
        Ok(answer) => {
            if let Err(e) = sender
                .send_json(&json!({"type": "answer", "sdp": answer}))
                .await
            {
                lock(&shared.errors).push(format!("{name}: sending answer: {e:#}"));
                return;
            }
            mark(shared, "answer to server offer sent");
            shared.negotiations.send_modify(|n| n.offers_answered += 1);
        }
        Err(e) => lock(&shared.errors).push(format!("{name}: answering server offer: {e:#}")),
    }
}

async fn run(
    name: String,
    sender: SignalSender,
    mut raw_rx: mpsc::UnboundedReceiver<SignalEvent>,
    fwd_tx: mpsc::UnboundedSender<SignalEvent>,
    mut cmd_rx: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
) {
    // Our publish offer is outstanding: server offers wait until its answer is applied.
    let mut pending_publish: Option<oneshot::Sender<Result<()>>> = None;
    let mut queued_offers: VecDeque<Value> = VecDeque::new();
    let mut cmds_open = true;
    loop {
        tokio::select! {
            cmd = cmd_rx.recv(), if cmds_open => match cmd {
                None => cmds_open = false,
                Some(Command::Publish { peer, done }) => {
                    let res = async {
                        let sdp = peer.create_offer().await?;
                        *lock(&shared.peer) = Some(Arc::clone(&peer));
                        sender.send_json(&json!({"type": "offer", "sdp": sdp})).await?;
                        mark(&shared, "publish offer sent");
                        Ok::<_, anyhow::Error>(())
                    }.await;
                    match res {
                        Ok(()) => pending_publish = Some(done),
                        Err(e) => { let _ = done.send(Err(e)); }
                    }
                }
            },
            ev = raw_rx.recv() => {
                let Some(ev) = ev else { break };
                if let SignalEvent::Msg(v) = &ev {
                    match msg_type(v) {
                        "answer" => {
                            let peer = lock(&shared.peer).clone();
                            match (peer, v.get("sdp").and_then(Value::as_str)) {
                                (Some(peer), Some(sdp)) => {
                                    let r = peer.apply_answer(sdp).await;
                                    mark(&shared, "server answer applied");
                                    if r.is_ok() {
                                        shared.negotiations.send_modify(|n| n.answers_applied += 1);
                                    } else if let Err(e) = &r {
                                        lock(&shared.errors).push(format!("{name}: applying answer: {e:#}"));
                                    }
                                    if let Some(done) = pending_publish.take() {
                                        let _ = done.send(r);
                                    }
                                    while let Some(o) = queued_offers.pop_front() {
                                        answer_offer(&name, &sender, &shared, &peer, &o).await;
                                    }
                                }
                                (None, _) => lock(&shared.errors).push(format!("{name}: answer without our offer: {v}")),
                                (_, None) => lock(&shared.errors).push(format!("{name}: answer without sdp: {v}")),
                            }
                        }
                        "offer" => {
                            if let Some(t) = v.get("tracks") {
                                update_tracks(&shared, t);
                            }
                            mark(&shared, "server offer arrived");
                            let peer = lock(&shared.peer).clone();
                            match peer {
                                Some(peer) if pending_publish.is_none() => {
                                    answer_offer(&name, &sender, &shared, &peer, v).await;
                                }
                                _ => queued_offers.push_back(v.clone()),
                            }
                        }
                        "tracks" => {
                            if let Some(t) = v.get("tracks") {
                                update_tracks(&shared, t);
                            }
                        }
                        "error" => {
                            // An error while our offer is outstanding is the reply to it.
                            if let Some(done) = pending_publish.take() {
                                let _ = done.send(Err(anyhow!("{name}: server replied to our offer with {v}")));
                            }
                        }
                        _ => {}
                    }
                }
                let closed = matches!(ev, SignalEvent::Closed(_));
                let _ = fwd_tx.send(ev);
                if closed {
                    break;
                }
            }
        }
    }
    if let Some(done) = pending_publish.take() {
        let _ = done.send(Err(anyhow!("{name}: connection closed before the answer")));
    }
}
