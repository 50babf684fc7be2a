//! One task per room owns its [`RoomState`] and the senders of its participants' sockets.
//! Sessions and the media engine talk to it through bounded channels; nothing is shared.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kham_proto::{
    ClientMsg, ErrorCode, LeaveReason, ParticipantId, Role, ServerMsg, Status, close_code,
};
use serde::Serialize;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::http::unix_now;
use crate::media::{Media, MediaError, MediaEvent, MediaPerms};
use crate::notice::{Notice, SharedObserver};
use crate::rate::{RateLimits, TokenBucket, Verdict};
use crate::revocations::{Revocation, SharedRevocations};
use crate::room_state::{Effect, JoinRefusal, MemberChange, ResumeRefusal, RoomState};
use crate::token::Claims;

/// What a session's writer task receives.
#[derive(Debug, Clone)]
pub enum Outbound {
    Msg(ServerMsg),
    Close(u16, &'static str),
}

/// Commands to a room's task.
pub(crate) enum RoomCmd {
    CheckJoin {
        claims: Claims,
        reply: oneshot::Sender<Result<(), JoinRefusal>>,
    },
    Join {
        id: ParticipantId,
        claims: Claims,
        /// What kind of client joined (from its User-Agent), for operators.
        client: String,
        /// Names the socket: a later `Disconnected` of a socket that was replaced is ignored.
        conn: u64,
        tx: mpsc::Sender<Outbound>,
        reply: oneshot::Sender<Result<(), JoinRefusal>>,
    },
    /// A client comes back on a new socket with its `resume_token` (`room_state/resume.rs`).
    Resume {
        id: ParticipantId,
        claims: Claims,
        secret: String,
        conn: u64,
        tx: mpsc::Sender<Outbound>,
        reply: oneshot::Sender<Result<(), ResumeRefusal>>,
    },
    Client {
        id: ParticipantId,
        msg: ClientMsg,
    },
    Disconnected {
        id: ParticipantId,
        conn: u64,
        lost: bool,
    },
    /// The session closed the socket itself for abuse (flooding): it leaves with `reason`.
    Expelled {
        id: ParticipantId,
        reason: LeaveReason,
    },
    Summary {
        reply: oneshot::Sender<RoomSummary>,
    },
    End {
        reason: String,
    },
    Detail {
        reply: oneshot::Sender<RoomDetail>,
    },
    /// An operator removes a participant.
    Remove {
        id: ParticipantId,
        reason: String,
        reply: oneshot::Sender<Result<(), (ErrorCode, String)>>,
    },
}

/// A room as operators see it: everyone in it, with display names (admins only).
#[derive(Debug, Clone, Serialize)]
pub struct RoomDetail {
    pub room: String,
    pub age_s: u64,
    pub members: Vec<MemberDetail>,
}

/// One person in a room, for operators.
#[derive(Debug, Clone, Serialize)]
pub struct MemberDetail {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    pub status: Status,
    /// Seconds since this person joined the room.
    pub joined_s: u64,
    /// Client kind from the User-Agent, e.g. `chrome/android`, `native`.
    pub client: String,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// ICE and DTLS came up at least once.
    pub media_connected: bool,
}

/// What the room task keeps per session besides its socket.
pub(crate) struct SessionInfo {
    client: String,
    /// When the join clock started: WebSocket opened, or admitted from the lobby. Cleared
    /// once media connected.
    join_started: Option<Instant>,
    media_connected: bool,
    /// The socket attached now (see [`RoomCmd::Join`]).
    conn: u64,
    /// Its socket dropped at this time; it may resume until the reconnect grace ends.
    detached_since: Option<Instant>,
    /// Its media stopped and has not come back (`MediaEvent::Reconnecting`).
    media_down: bool,
    /// The server offer not answered yet, with its `offer_id`: sent again on a resume.
    pending_offer: Option<(u64, ServerMsg)>,
    /// The latest `publish_layers` and `audio_rate` per mid and `video_state`: what a resumed
    /// client must not have missed.
    replay: Vec<ServerMsg>,
    /// Its chat allowance ([`CHAT_LIMITS`]), beside the socket's own limit.
    chat: TokenBucket,
}

/// Chat per sender: 8 messages at once, 2 a second sustained. A message past that is not
/// relayed and the sender is told (`rate_limited`); the socket's own limit still closes a flood.
const CHAT_LIMITS: RateLimits = RateLimits {
    rate: 2.0,
    burst: 8,
    flood_after: u32::MAX,
};

impl SessionInfo {
    fn new(client: String, conn: u64) -> Self {
        SessionInfo {
            client,
            join_started: Some(Instant::now()),
            media_connected: false,
            conn,
            detached_since: None,
            media_down: false,
            pending_offer: None,
            replay: Vec::new(),
            chat: TokenBucket::new(CHAT_LIMITS, Instant::now()),
        }
    }

    /// Keeps `msg` as the latest of its kind (and mid) for a resume.
    fn remember(&mut self, msg: &ServerMsg) {
        let same = |old: &ServerMsg| match (old, msg) {
            (ServerMsg::PublishLayers { mid: a, .. }, ServerMsg::PublishLayers { mid: b, .. })
            | (ServerMsg::AudioRate { mid: a, .. }, ServerMsg::AudioRate { mid: b, .. }) => a == b,
            (ServerMsg::VideoState { .. }, ServerMsg::VideoState { .. }) => true,
            _ => false,
        };
        self.replay.retain(|old| !same(old));
        self.replay.push(msg.clone());
    }
}

/// A room as listed by the API (no names: those are for the room's members and admins).
#[derive(Debug, Clone, Serialize)]
pub struct RoomSummary {
    pub room: String,
    pub age_s: u64,
    pub participants: usize,
    pub lobby: usize,
}

/// Timing of a room's life.
#[derive(Debug, Clone, Copy)]
pub struct RoomTimeouts {
    /// Close a room nobody ever joined after this long.
    pub empty_timeout: Duration,
    /// Close a room this long after the last participant left.
    pub departure_timeout: Duration,
    /// Keep a participant whose socket dropped this long for a resume (zero: it leaves at
    /// once, as before resumes existed).
    pub reconnect_grace: Duration,
}

pub(crate) struct RoomActor {
    pub id: String,
    pub state: RoomState,
    pub sessions: HashMap<ParticipantId, mpsc::Sender<Outbound>>,
    pub media: Arc<dyn Media>,
    pub created: Instant,
    pub timeouts: RoomTimeouts,
    pub ever_joined: bool,
    pub observer: SharedObserver,
    pub info: HashMap<ParticipantId, SessionInfo>,
    /// The registry's revoked tokens: consulted before every join, fed by [`Effect::Revoke`].
    pub revocations: SharedRevocations,
    /// Source of `offer_id`s.
    pub next_offer_id: u64,
    /// TURN servers handed to participants (`turn.rs`).
    pub turn: crate::turn::TurnSettings,
}

impl RoomActor {
    /// Runs until the room closes (ended, or empty past its timeout).
    pub async fn run(
        mut self,
        mut cmds: mpsc::Receiver<RoomCmd>,
        on_exit: impl FnOnce(&str, bool),
    ) {
        let (ev_tx, mut events) = mpsc::channel(256);
        self.media.open_room(&self.id, ev_tx);
        self.observer.notice(Notice::RoomStarted {
            room: self.id.clone(),
        });
        let mut empty_since = Some(Instant::now());
        loop {
            let deadline = empty_since.map(|t| {
                t + if self.ever_joined {
                    self.timeouts.departure_timeout
                } else {
                    self.timeouts.empty_timeout
                }
            });
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let grace = self.next_grace_end();
            let grace_over = async {
                match grace {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => break,
                },
                Some(ev) = events.recv() => self.media_event(ev),
                _ = grace_over => self.graces_over(Instant::now()),
                _ = sleep => {
                    tracing::info!(room = %self.id, "room closed: empty");
                    break;
                }
            }
            if self.state.is_ended() {
                tracing::info!(room = %self.id, "room closed: consult ended");
                break;
            }
            empty_since = match (self.state.is_empty(), empty_since) {
                (true, None) => Some(Instant::now()),
                (true, s) => s,
                (false, _) => None,
            };
        }
        self.media.close_room(&self.id);
        self.observer.notice(Notice::RoomFinished {
            room: self.id.clone(),
            ended: self.state.is_ended(),
        });
        on_exit(&self.id, self.state.is_ended());
    }

    async fn command(&mut self, cmd: RoomCmd) {
        match cmd {
            RoomCmd::CheckJoin { claims, reply } => {
                let _ = reply.send(self.check_join(&claims));
            }
            RoomCmd::Join {
                id,
                claims,
                client,
                conn,
                tx,
                reply,
            } => {
                let now_ms = self.created.elapsed().as_millis() as u64;
                // Checked again here: a doctor may have revoked the token since the upgrade.
                let grace = self.timeouts.reconnect_grace;
                let resume = (!grace.is_zero()).then(|| {
                    (
                        format!("{:032x}", rand::random::<u128>()),
                        grace.as_millis() as u64,
                    )
                });
                let joined = self.check_revoked(&claims).and_then(|()| {
                    self.state
                        .join_resumable(id.clone(), &claims, now_ms, resume)
                });
                match joined {
                    Ok(fx) => {
                        self.ever_joined = true;
                        self.info.insert(id.clone(), SessionInfo::new(client, conn));
                        self.sessions.insert(id, tx);
                        let _ = reply.send(Ok(()));
                        self.apply(fx);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            RoomCmd::Resume {
                id,
                claims,
                secret,
                conn,
                tx,
                reply,
            } => self.resume(id, claims, secret, conn, tx, reply),
            RoomCmd::Client { id, msg } => self.client(id, msg).await,
            RoomCmd::Disconnected { id, conn, lost } => self.disconnected(id, conn, lost),
            RoomCmd::Expelled { id, reason } => {
                if self.sessions.remove(&id).is_some() {
                    let fx = self.state.leave(&id, reason);
                    self.apply(fx);
                }
            }
            RoomCmd::Summary { reply } => {
                let _ = reply.send(RoomSummary {
                    room: self.id.clone(),
                    age_s: self.created.elapsed().as_secs(),
                    participants: self.state.admitted_count(),
                    lobby: self.state.lobby_count(),
                });
            }
            RoomCmd::End { reason } => {
                let fx = self.state.end(&reason);
                self.apply(fx);
            }
            RoomCmd::Detail { reply } => {
                let now_ms = self.created.elapsed().as_millis() as u64;
                let members = self
                    .state
                    .members()
                    .into_iter()
                    .map(|m| {
                        let info = self.info.get(&m.info.id);
                        MemberDetail {
                            joined_s: now_ms.saturating_sub(m.since_ms) / 1000,
                            client: info.map(|i| i.client.clone()).unwrap_or_default(),
                            media_connected: info.is_some_and(|i| i.media_connected),
                            id: m.info.id,
                            name: m.info.name,
                            role: m.info.role,
                            status: m.status,
                            audio_muted: m.info.audio_muted,
                            video_muted: m.info.video_muted,
                        }
                    })
                    .collect();
                let _ = reply.send(RoomDetail {
                    room: self.id.clone(),
                    age_s: self.created.elapsed().as_secs(),
                    members,
                });
            }
            RoomCmd::Remove { id, reason, reply } => {
                match self.state.remove_by_operator(&id, &reason) {
                    Ok(fx) => {
                        self.apply(fx);
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
    }

    fn check_revoked(&self, claims: &Claims) -> Result<(), JoinRefusal> {
        if self
            .revocations
            .is_revoked(&self.id, &claims.jti, unix_now())
        {
            Err(JoinRefusal::Revoked)
        } else {
            Ok(())
        }
    }

    fn check_join(&self, claims: &Claims) -> Result<(), JoinRefusal> {
        self.check_revoked(claims)
            .and_then(|()| self.state.check_join(claims))
    }

    async fn client(&mut self, id: ParticipantId, msg: ClientMsg) {
        if !self.sessions.contains_key(&id) {
            return;
        }
        let now_ms = self.created.elapsed().as_millis() as u64;
        let result = match msg {
            ClientMsg::Offer { sdp, screen } => self.offer(&id, sdp, screen).await,
            ClientMsg::Answer { sdp, offer_id } => self.answer(&id, sdp, offer_id).await,
            ClientMsg::IceRestart => self.state.check_media(&id).map(|_| {
                self.media.ice_restart(&self.id, id.clone());
                Vec::new()
            }),
            ClientMsg::AudioOnly { enabled } => self
                .state
                .check_media(&id)
                .map(|_| self.media.audio_only(&self.id, id.clone(), enabled))
                .map(|()| Vec::new()),
            ClientMsg::VideoView { views } => self.video_view(&id, views),
            ClientMsg::Chat { text, to } => self.chat(&id, text, to),
            other => self.state.handle(&id, other, now_ms),
        };
        match result {
            Ok(fx) => self.apply(fx),
            Err((code, message)) => self.send(&id, ServerMsg::error(code, message)),
        }
    }

    async fn offer(
        &mut self,
        id: &ParticipantId,
        sdp: String,
        screen: Option<Vec<String>>,
    ) -> Result<Vec<Effect>, (ErrorCode, String)> {
        let grants = self.state.check_media(id)?;
        let perms = MediaPerms {
            publish: grants.publish,
            subscribe: grants.subscribe,
            health_data: self.state.health_data(id),
        };
        let answer = self
            .media
            .offer(&self.id, id.clone(), perms, sdp, screen)
            .await
            .unwrap_or(Err(MediaError::Unavailable));
        match answer {
            Ok(sdp) => Ok(vec![Effect::Send(
                crate::room_state::Target::One(id.clone()),
                ServerMsg::Answer { sdp },
            )]),
            Err(e) => Err(media_error(e)),
        }
    }

    /// A chat message, within the sender's chat allowance. Its text is never logged.
    fn chat(
        &mut self,
        id: &ParticipantId,
        text: String,
        to: Option<ParticipantId>,
    ) -> Result<Vec<Effect>, (ErrorCode, String)> {
        let allowed = self
            .info
            .get_mut(id)
            .map_or(Verdict::Pass, |i| i.chat.take(Instant::now()));
        if allowed != Verdict::Pass {
            return Err((
                ErrorCode::RateLimited,
                format!(
                    "chat: at most {} messages at once, {} a second; this one was not delivered",
                    CHAT_LIMITS.burst, CHAT_LIMITS.rate
                ),
            ));
        }
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.state.chat(id, text, to, unix_ms)
    }

    fn video_view(
        &mut self,
        id: &ParticipantId,
        views: Vec<kham_proto::VideoView>,
    ) -> Result<Vec<Effect>, (ErrorCode, String)> {
        self.state.check_media(id)?;
        if views.len() > kham_proto::MAX_VIEWS {
            return Err((
                ErrorCode::BadMessage,
                format!("at most {} views", kham_proto::MAX_VIEWS),
            ));
        }
        self.media.video_view(&self.id, id.clone(), views);
        Ok(Vec::new())
    }

    async fn answer(
        &mut self,
        id: &ParticipantId,
        sdp: String,
        offer_id: Option<u64>,
    ) -> Result<Vec<Effect>, (ErrorCode, String)> {
        self.state.check_media(id)?;
        let outstanding = self
            .info
            .get(id)
            .and_then(|i| i.pending_offer.as_ref())
            .map(|(o, _)| *o);
        if let (Some(answered), Some(current)) = (offer_id, outstanding)
            && answered != current
        {
            return Err((
                ErrorCode::BadState,
                format!(
                    "this answers offer {answered}, but offer {current} is the one outstanding"
                ),
            ));
        }
        let r = self
            .media
            .answer(&self.id, id.clone(), sdp)
            .await
            .unwrap_or(Err(MediaError::Unavailable));
        if r.is_ok()
            && let Some(i) = self.info.get_mut(id)
        {
            i.pending_offer = None;
        }
        r.map(|()| Vec::new()).map_err(media_error)
    }

    fn media_event(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::Offer { peer, sdp, tracks } => {
                self.next_offer_id += 1;
                let msg = ServerMsg::Offer {
                    sdp,
                    tracks,
                    offer_id: Some(self.next_offer_id),
                    ice_servers: Vec::new(),
                };
                if let Some(i) = self.info.get_mut(&peer) {
                    i.pending_offer = Some((self.next_offer_id, msg.clone()));
                }
                self.send(&peer, msg)
            }
            MediaEvent::Reconnecting { peer } => {
                tracing::debug!(room = %self.id, %peer, "media reconnecting");
                if let Some(i) = self.info.get_mut(&peer) {
                    i.media_down = true;
                }
                let fx = self.state.set_reconnecting(&peer, true);
                self.apply(fx);
            }
            MediaEvent::Reconnected { peer } => {
                tracing::debug!(room = %self.id, %peer, "media back");
                let attached = self.info.get_mut(&peer).is_some_and(|i| {
                    i.media_down = false;
                    i.detached_since.is_none()
                });
                if attached {
                    let fx = self.state.set_reconnecting(&peer, false);
                    self.apply(fx);
                }
            }
            MediaEvent::Connected { peer } => {
                tracing::debug!(room = %self.id, %peer, "media connected");
                let role = self
                    .state
                    .members()
                    .into_iter()
                    .find(|m| m.info.id == peer)
                    .map(|m| m.info.role);
                if let (Some(info), Some(role)) = (self.info.get_mut(&peer), role) {
                    info.media_connected = true;
                    if let Some(t) = info.join_started.take() {
                        self.observer.notice(Notice::MediaConnected {
                            room: self.id.clone(),
                            participant: peer,
                            role,
                            join_time: t.elapsed(),
                        });
                    }
                }
            }
            MediaEvent::VideoState { peer, tracks } => {
                self.send_kept(&peer, ServerMsg::VideoState { tracks })
            }
            MediaEvent::PublishLayers { peer, mid, layers } => {
                self.send_kept(&peer, ServerMsg::PublishLayers { mid, layers })
            }
            MediaEvent::AudioRate {
                peer,
                mid,
                max_bitrate,
                ptime,
            } => self.send_kept(
                &peer,
                ServerMsg::AudioRate {
                    mid,
                    max_bitrate,
                    ptime,
                },
            ),
            MediaEvent::Quality { scores } => self.apply(vec![Effect::Send(
                crate::room_state::Target::Admitted,
                ServerMsg::Quality {
                    participants: scores,
                },
            )]),
            MediaEvent::Lost { peer } => {
                tracing::info!(room = %self.id, %peer, "media connection lost");
                let mut fx = self.state.leave(&peer, LeaveReason::ConnectionLost);
                fx.push(Effect::Close(peer, close_code::NORMAL));
                self.apply(fx);
            }
        }
    }

    fn apply(&mut self, fx: Vec<Effect>) {
        for e in fx {
            match e {
                Effect::Send(target, msg) => {
                    for id in self.state.resolve(&target) {
                        self.send(&id, msg.clone());
                    }
                }
                Effect::Close(id, code) => {
                    if let Some(tx) = self.sessions.remove(&id) {
                        let _ = tx.try_send(Outbound::Close(code, close_reason(code)));
                    }
                }
                Effect::MediaRemove(id) => self.media.remove(&self.id, id),
                Effect::RoomEnded => {}
                Effect::Member(who, change) => self.member_changed(who, change),
                Effect::Revoke { jti, exp } => self.revocations.revoke(
                    Revocation {
                        jti,
                        room: self.id.clone(),
                        exp,
                    },
                    unix_now(),
                ),
            }
        }
    }

    fn member_changed(&mut self, who: crate::notice::Who, change: MemberChange) {
        let room = self.id.clone();
        let notice = match change {
            MemberChange::Joined { waiting } => Notice::ParticipantJoined { room, who, waiting },
            MemberChange::Admitted => {
                // The join clock of someone who waited starts at admission.
                if let Some(i) = self.info.get_mut(&who.id) {
                    i.join_started = Some(Instant::now());
                }
                Notice::ParticipantAdmitted { room, who }
            }
            MemberChange::Left(reason) => {
                self.info.remove(&who.id);
                Notice::ParticipantLeft { room, who, reason }
            }
        };
        self.observer.notice(notice);
    }

    /// Sends a message a resumed client must still get if this one is lost with its socket.
    fn send_kept(&mut self, id: &ParticipantId, msg: ServerMsg) {
        if let Some(i) = self.info.get_mut(id) {
            i.remember(&msg);
        }
        self.send(id, msg);
    }

    fn send(&mut self, id: &ParticipantId, mut msg: ServerMsg) {
        let Some(tx) = self.sessions.get(id) else {
            return;
        };
        // TURN credentials go out where media starts or restarts, fresh each time.
        if self.turn.enabled()
            && let ServerMsg::Welcome { ice_servers, .. }
            | ServerMsg::Resumed { ice_servers, .. }
            | ServerMsg::Admitted { ice_servers, .. }
            | ServerMsg::Offer { ice_servers, .. } = &mut msg
        {
            *ice_servers = self.turn.ice_servers(id, unix_now());
        }
        match tx.try_send(Outbound::Msg(msg)) {
            Ok(()) => {}
            // The session task has ended (the socket closed, cleanly or not): its
            // `Disconnected`, with the real reason, is queued behind the command being handled.
            // The member leaves then.
            Err(TrySendError::Closed(_)) => {
                tracing::debug!(room = %self.id, peer = %id, "message for a session that has ended");
            }
            Err(TrySendError::Full(_)) => {
                // The socket does not drain: drop the session rather than stall the room.
                // Dropping its sender ends the session task, which closes the socket; the
                // client may resume on a new one within the grace.
                tracing::warn!(room = %self.id, peer = %id, "signaling queue full, dropping session");
                let conn = self.info.get(id).map_or(0, |i| i.conn);
                self.disconnected(id.clone(), conn, true);
            }
        }
    }
}

mod reconnect;

fn media_error(e: MediaError) -> (ErrorCode, String) {
    match e {
        MediaError::BadSdp(m) => (ErrorCode::BadSdp, m),
        MediaError::BadState(m) => (ErrorCode::BadState, m),
        MediaError::BadMessage(m) => (ErrorCode::BadMessage, m),
        MediaError::Glare(m) => (ErrorCode::Glare, m),
        MediaError::Unavailable => (ErrorCode::Internal, "media engine unavailable".into()),
    }
}

fn close_reason(code: u16) -> &'static str {
    match code {
        close_code::DENIED => "denied",
        close_code::REMOVED => "removed",
        close_code::ENDED => "ended",
        close_code::REPLACED => "replaced",
        close_code::FLOODING => "flooding",
        _ => "bye",
    }
}
