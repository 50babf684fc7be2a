//! The membership state machine of one consult: who is in the call, who waits in the lobby,
//! which tokens a doctor already admitted, whether the consult ended. Pure: every operation
//! returns the effects (messages, closes, media removals, revocations) for the caller to carry
//! out, so the rules are unit tested without sockets, media or storage.
//!
//! Revoked tokens are not kept here: a revocation must outlive the room, so the room actor hands
//! [`Effect::Revoke`] to the registry's store and consults that store before every join.

use std::collections::HashSet;

use kham_proto::{
    ClientMsg, ErrorCode, Grants, LeaveReason, LobbyEntry, PROTOCOL_VERSION, ParticipantId,
    ParticipantInfo, Role, ServerMsg, Status, close_code,
};

use crate::notice::{Who, leave_reason_str};
use crate::token::Claims;

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    One(ParticipantId),
    /// Everyone in the call (not the lobby).
    Admitted,
    /// Everyone in the call but one.
    AdmittedExcept(ParticipantId),
}

/// Something the room actor must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(Target, ServerMsg),
    /// Close this participant's socket with the code (after the messages before it).
    Close(ParticipantId, u16),
    /// Tear down this participant's media session.
    MediaRemove(ParticipantId),
    /// The consult is over: close the room.
    RoomEnded,
    /// Membership changed (for webhooks and metrics; nothing is sent to participants).
    Member(Who, MemberChange),
    /// Revoke this token (denied or removed) until its expiry `exp` (Unix seconds), beyond the
    /// life of this room.
    Revoke {
        jti: String,
        exp: u64,
    },
}

/// How membership changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Entered the lobby (`waiting`) or the call.
    Joined {
        waiting: bool,
    },
    Admitted,
    /// Left the room; the reason as in `participant_left`, or `ended`.
    Left(&'static str),
}

/// A member as the operator API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub info: ParticipantInfo,
    pub status: Status,
    /// When it joined, in milliseconds since the room started.
    pub since_ms: u64,
}

/// Why a join is refused before the WebSocket upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    #[error("the access token was revoked (denied or removed)")]
    Revoked,
    #[error("the room is full")]
    Full,
    #[error("the consult has ended")]
    Ended,
    #[error("this server holds as many rooms as it may; try again later")]
    TooManyRooms,
}

impl JoinRefusal {
    pub fn code(self) -> &'static str {
        match self {
            JoinRefusal::Revoked => "revoked_token",
            JoinRefusal::Full => "room_full",
            JoinRefusal::Ended => "room_ended",
            JoinRefusal::TooManyRooms => "too_many_rooms",
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    info: ParticipantInfo,
    identity: String,
    jti: String,
    /// The token's expiry (Unix seconds): how long a revocation of it must hold.
    exp: u64,
    grants: Grants,
    status: Status,
    since_ms: u64,
    /// The secret that resumes this member's session (`resume.rs`); none for a join that did
    /// not ask for one.
    resume_token: Option<String>,
}

impl Member {
    fn who(&self) -> Who {
        Who {
            id: self.info.id.clone(),
            identity: self.identity.clone(),
            role: self.info.role,
            name: self.info.name.clone(),
        }
    }
}

/// Membership of one room.
#[derive(Debug)]
pub struct RoomState {
    room: String,
    max_participants: usize,
    max_lobby: usize,
    members: Vec<Member>,
    /// Tokens (`jti`) a doctor admitted from the lobby: the same token reconnecting (a new tab,
    /// a dropped link) comes straight back into the call while the room lives.
    admitted_tokens: HashSet<String>,
    ended: bool,
    /// The last chat message's `seq` (`chat.rs`).
    chat_seq: u64,
}

impl RoomState {
    pub fn new(room: impl Into<String>, max_participants: usize) -> Self {
        RoomState {
            room: room.into(),
            max_participants,
            max_lobby: 16,
            members: Vec::new(),
            admitted_tokens: HashSet::new(),
            ended: false,
            chat_seq: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Participants in the call.
    pub fn admitted_count(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.status == Status::Admitted)
            .count()
    }

    /// Participants waiting in the lobby.
    pub fn lobby_count(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.status == Status::Waiting)
            .count()
    }

    /// Grants of a member.
    pub fn grants(&self, id: &ParticipantId) -> Option<Grants> {
        self.member(id).map(|m| m.grants)
    }

    /// Whether a member takes part in the consult's health data (chat, vitals, images).
    pub fn health_data(&self, id: &ParticipantId) -> bool {
        self.member(id)
            .is_some_and(|m| m.grants.health_data(m.info.role))
    }

    /// Whether a member is in the call.
    pub fn is_admitted(&self, id: &ParticipantId) -> bool {
        self.member(id)
            .is_some_and(|m| m.status == Status::Admitted)
    }

    /// Checks a join without changing anything (before the WebSocket upgrade). Revocation is
    /// the caller's to check (it outlives the room).
    pub fn check_join(&self, claims: &Claims) -> Result<(), JoinRefusal> {
        self.placement(claims).map(|_| ())
    }

    /// Where a join goes: the call, or the lobby for a role that waits, unless a doctor already
    /// admitted this very token (a reconnect) and the call has room for it.
    fn placement(&self, claims: &Claims) -> Result<Status, JoinRefusal> {
        if self.ended {
            return Err(JoinRefusal::Ended);
        }
        // A reconnect of the same identity replaces its old session, so it does not count.
        let others = |st: Status| {
            self.members
                .iter()
                .filter(|m| m.status == st && m.identity != claims.sub)
                .count()
        };
        let call_has_room = others(Status::Admitted) < self.max_participants;
        if !claims.role.waits_in_lobby() {
            return if call_has_room {
                Ok(Status::Admitted)
            } else {
                Err(JoinRefusal::Full)
            };
        }
        if call_has_room && self.admitted_tokens.contains(&claims.jti) {
            return Ok(Status::Admitted);
        }
        if others(Status::Waiting) >= self.max_lobby {
            return Err(JoinRefusal::Full);
        }
        Ok(Status::Waiting)
    }

    /// Adds a participant: into the lobby if its role waits, into the call otherwise.
    pub fn join(
        &mut self,
        id: ParticipantId,
        claims: &Claims,
        now_ms: u64,
    ) -> Result<Vec<Effect>, JoinRefusal> {
        self.join_resumable(id, claims, now_ms, None)
    }

    /// [`Self::join`], and the session can later be resumed with `resume` (the secret, and the
    /// grace announced in `welcome`, in milliseconds).
    pub fn join_resumable(
        &mut self,
        id: ParticipantId,
        claims: &Claims,
        now_ms: u64,
        resume: Option<(String, u64)>,
    ) -> Result<Vec<Effect>, JoinRefusal> {
        let status = self.placement(claims)?;
        let mut fx = Vec::new();
        if let Some(old) = self
            .members
            .iter()
            .find(|m| m.identity == claims.sub)
            .map(|m| m.info.id.clone())
        {
            // Targets are resolved when the effects are applied, after the new member is in:
            // keep the old session's departure from the new one, whose first message must be
            // `welcome` (and who has no use for news of its own old session).
            fx.extend(
                self.leave(&old, LeaveReason::Replaced)
                    .into_iter()
                    .map(|e| match e {
                        Effect::Send(Target::Admitted, m) => {
                            Effect::Send(Target::AdmittedExcept(id.clone()), m)
                        }
                        other => other,
                    }),
            );
            fx.push(Effect::Close(old, close_code::REPLACED));
        }
        let info = ParticipantInfo {
            id: id.clone(),
            name: claims.name.clone(),
            role: claims.role,
            audio_muted: false,
            video_muted: false,
            reconnecting: false,
        };
        let (resume_token, reconnect_grace_ms) = match resume {
            Some((t, g)) => (Some(t), Some(g)),
            None => (None, None),
        };
        let member = Member {
            info: info.clone(),
            identity: claims.sub.clone(),
            jti: claims.jti.clone(),
            exp: claims.exp,
            grants: claims.grants,
            status,
            since_ms: now_ms,
            resume_token: resume_token.clone(),
        };
        fx.push(Effect::Member(
            member.who(),
            MemberChange::Joined {
                waiting: status == Status::Waiting,
            },
        ));
        self.members.push(member);
        fx.push(Effect::Send(
            Target::One(id.clone()),
            ServerMsg::Welcome {
                protocol: PROTOCOL_VERSION,
                room: self.room.clone(),
                me: info.clone(),
                participants: if status == Status::Admitted {
                    self.admitted_except(&id)
                } else {
                    Vec::new()
                },
                status,
                resume_token,
                reconnect_grace_ms,
                ice_servers: Vec::new(),
            },
        ));
        match status {
            Status::Admitted => {
                fx.push(Effect::Send(
                    Target::AdmittedExcept(id.clone()),
                    ServerMsg::ParticipantJoined { participant: info },
                ));
                if claims.grants.admit {
                    fx.push(Effect::Send(Target::One(id), self.lobby_msg(now_ms)));
                }
            }
            Status::Waiting => fx.extend(self.lobby_update(now_ms)),
        }
        Ok(fx)
    }

    /// Removes a participant (left, lost, denied, removed).
    pub fn leave(&mut self, id: &ParticipantId, reason: LeaveReason) -> Vec<Effect> {
        let Some(i) = self.members.iter().position(|m| m.info.id == *id) else {
            return Vec::new();
        };
        let m = self.members.remove(i);
        let mut fx = vec![Effect::Member(
            m.who(),
            MemberChange::Left(leave_reason_str(reason)),
        )];
        match m.status {
            Status::Admitted => fx.extend([
                Effect::MediaRemove(id.clone()),
                Effect::Send(
                    Target::Admitted,
                    ServerMsg::ParticipantLeft {
                        id: id.clone(),
                        reason,
                    },
                ),
            ]),
            Status::Waiting => fx.extend(self.lobby_update(0)),
        }
        fx
    }

    /// Handles a control message (everything but `offer`/`answer`, which the actor sends to media
    /// after [`Self::check_media`]).
    pub fn handle(
        &mut self,
        from: &ParticipantId,
        msg: ClientMsg,
        now_ms: u64,
    ) -> Result<Vec<Effect>, (ErrorCode, String)> {
        let me = self
            .member(from)
            .ok_or((ErrorCode::Internal, "not a member".into()))?
            .clone();
        match msg {
            ClientMsg::Ping { id } => Ok(vec![Effect::Send(
                Target::One(from.clone()),
                ServerMsg::Pong { id },
            )]),
            ClientMsg::Leave => {
                let mut fx = self.leave(from, LeaveReason::Left);
                fx.push(Effect::Close(from.clone(), close_code::NORMAL));
                Ok(fx)
            }
            ClientMsg::Mute { kind, muted } => {
                require_admitted(&me)?;
                let m = self
                    .member_mut(from)
                    .ok_or((ErrorCode::Internal, "not a member".into()))?;
                let state = match kind {
                    kham_proto::MediaKind::Audio => &mut m.info.audio_muted,
                    kham_proto::MediaKind::Video => &mut m.info.video_muted,
                };
                // A repeated mute changes nothing, so nothing is re-sent to the call.
                if *state == muted {
                    return Ok(Vec::new());
                }
                *state = muted;
                Ok(vec![Effect::Send(
                    Target::Admitted,
                    ServerMsg::ParticipantUpdated {
                        participant: m.info.clone(),
                    },
                )])
            }
            ClientMsg::Admit { id } => {
                require_admit(&me)?;
                let target = self
                    .member(&id)
                    .ok_or((ErrorCode::NotFound, format!("no lobby entry {id}")))?;
                if target.status != Status::Waiting {
                    return Err((
                        ErrorCode::BadState,
                        format!("{id} is not waiting in the lobby"),
                    ));
                }
                if self.admitted_count() >= self.max_participants {
                    return Err((ErrorCode::BadState, "the call is full".into()));
                }
                let others = self.admitted_except(&id);
                let m = self
                    .member_mut(&id)
                    .ok_or((ErrorCode::NotFound, "gone".into()))?;
                m.status = Status::Admitted;
                let info = m.info.clone();
                let who = m.who();
                let jti = m.jti.clone();
                self.admitted_tokens.insert(jti);
                let mut fx = vec![
                    Effect::Member(who, MemberChange::Admitted),
                    Effect::Send(
                        Target::One(id.clone()),
                        ServerMsg::Admitted {
                            participants: others,
                            ice_servers: Vec::new(),
                        },
                    ),
                    Effect::Send(
                        Target::AdmittedExcept(id.clone()),
                        ServerMsg::ParticipantJoined { participant: info },
                    ),
                ];
                fx.extend(self.lobby_update(now_ms));
                Ok(fx)
            }
            ClientMsg::Deny { id, reason } => {
                require_admit(&me)?;
                let target = self
                    .member(&id)
                    .ok_or((ErrorCode::NotFound, format!("no lobby entry {id}")))?;
                if target.status != Status::Waiting {
                    return Err((
                        ErrorCode::BadState,
                        format!("{id} is not waiting in the lobby"),
                    ));
                }
                let mut fx: Vec<Effect> = self.revoke(&id).into_iter().collect();
                let reason = reason.unwrap_or_else(|| "denied_by_doctor".into());
                fx.push(Effect::Send(
                    Target::One(id.clone()),
                    ServerMsg::Denied { reason },
                ));
                fx.extend(self.leave(&id, LeaveReason::Denied));
                fx.push(Effect::Close(id, close_code::DENIED));
                Ok(fx)
            }
            ClientMsg::Remove { id, reason } => {
                require_admit(&me)?;
                if id == *from {
                    return Err((ErrorCode::BadState, "use leave to leave".into()));
                }
                if self.member(&id).is_none() {
                    return Err((ErrorCode::NotFound, format!("no participant {id}")));
                }
                let mut fx: Vec<Effect> = self.revoke(&id).into_iter().collect();
                let reason = reason.unwrap_or_else(|| "removed_by_doctor".into());
                fx.push(Effect::Send(
                    Target::One(id.clone()),
                    ServerMsg::Removed { reason },
                ));
                fx.extend(self.leave(&id, LeaveReason::Removed));
                fx.push(Effect::Close(id, close_code::REMOVED));
                Ok(fx)
            }
            ClientMsg::EndConsult => {
                require_admit(&me)?;
                Ok(self.end("ended_by_doctor"))
            }
            ClientMsg::Offer { .. }
            | ClientMsg::Answer { .. }
            | ClientMsg::AudioOnly { .. }
            | ClientMsg::VideoView { .. }
            | ClientMsg::Chat { .. }
            | ClientMsg::IceRestart => {
                Err((ErrorCode::Internal, "media message routed to state".into()))
            }
        }
    }

    /// Ends the consult for everyone (a doctor, or an operator).
    pub fn end(&mut self, reason: &str) -> Vec<Effect> {
        self.ended = true;
        let mut fx = Vec::new();
        for m in std::mem::take(&mut self.members) {
            fx.push(Effect::Member(m.who(), MemberChange::Left("ended")));
            fx.push(Effect::Send(
                Target::One(m.info.id.clone()),
                ServerMsg::Ended {
                    reason: reason.into(),
                },
            ));
            if m.status == Status::Admitted {
                fx.push(Effect::MediaRemove(m.info.id.clone()));
            }
            fx.push(Effect::Close(m.info.id, close_code::ENDED));
        }
        fx.push(Effect::RoomEnded);
        fx
    }

    /// An operator removes someone (in the call or the lobby): as a doctor's `remove`, the
    /// token is revoked for this room.
    pub fn remove_by_operator(
        &mut self,
        id: &ParticipantId,
        reason: &str,
    ) -> Result<Vec<Effect>, (ErrorCode, String)> {
        if self.member(id).is_none() {
            return Err((ErrorCode::NotFound, format!("no participant {id}")));
        }
        let mut fx: Vec<Effect> = self.revoke(id).into_iter().collect();
        fx.push(Effect::Send(
            Target::One(id.clone()),
            ServerMsg::Removed {
                reason: reason.into(),
            },
        ));
        fx.extend(self.leave(id, LeaveReason::Removed));
        fx.push(Effect::Close(id.clone(), close_code::REMOVED));
        Ok(fx)
    }

    /// Everyone in the room, call and lobby, in join order.
    pub fn members(&self) -> Vec<MemberView> {
        self.members
            .iter()
            .map(|m| MemberView {
                info: m.info.clone(),
                status: m.status,
                since_ms: m.since_ms,
            })
            .collect()
    }

    /// Whether a member may send an offer (`publish` decides what the SFU accepts from it).
    pub fn check_media(&self, id: &ParticipantId) -> Result<Grants, (ErrorCode, String)> {
        let m = self
            .member(id)
            .ok_or((ErrorCode::Internal, "not a member".into()))?;
        if m.status != Status::Admitted {
            return Err((ErrorCode::BadState, "wait until a doctor admits you".into()));
        }
        Ok(m.grants)
    }

    /// The revocation of a member's token (none for an unknown id); its admission is
    /// forgotten too.
    fn revoke(&mut self, id: &ParticipantId) -> Option<Effect> {
        let (jti, exp) = self.member(id).map(|m| (m.jti.clone(), m.exp))?;
        self.admitted_tokens.remove(&jti);
        Some(Effect::Revoke { jti, exp })
    }

    fn lobby_update(&self, now_ms: u64) -> Vec<Effect> {
        let msg = self.lobby_msg(now_ms);
        self.members
            .iter()
            .filter(|m| m.status == Status::Admitted && m.grants.admit)
            .map(|m| Effect::Send(Target::One(m.info.id.clone()), msg.clone()))
            .collect()
    }

    fn lobby_msg(&self, now_ms: u64) -> ServerMsg {
        let entries = self
            .members
            .iter()
            .filter(|m| m.status == Status::Waiting)
            .map(|m| LobbyEntry {
                id: m.info.id.clone(),
                name: m.info.name.clone(),
                role: m.info.role,
                waiting_since_ms: now_ms.saturating_sub(m.since_ms),
            })
            .collect();
        ServerMsg::Lobby { entries }
    }

    fn admitted_except(&self, id: &ParticipantId) -> Vec<ParticipantInfo> {
        self.members
            .iter()
            .filter(|m| m.status == Status::Admitted && m.info.id != *id)
            .map(|m| m.info.clone())
            .collect()
    }

    fn member(&self, id: &ParticipantId) -> Option<&Member> {
        self.members.iter().find(|m| m.info.id == *id)
    }

    fn member_mut(&mut self, id: &ParticipantId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.info.id == *id)
    }

    /// Ids of members a target resolves to.
    pub fn resolve(&self, t: &Target) -> Vec<ParticipantId> {
        match t {
            Target::One(id) => vec![id.clone()],
            Target::Admitted => self
                .members
                .iter()
                .filter(|m| m.status == Status::Admitted)
                .map(|m| m.info.id.clone())
                .collect(),
            Target::AdmittedExcept(x) => self
                .members
                .iter()
                .filter(|m| m.status == Status::Admitted && m.info.id != *x)
                .map(|m| m.info.id.clone())
                .collect(),
        }
    }
}

fn require_admit(m: &Member) -> Result<(), (ErrorCode, String)> {
    if m.grants.admit && m.status == Status::Admitted && m.info.role == Role::Doctor {
        Ok(())
    } else {
        Err((ErrorCode::Forbidden, "only a doctor can do this".into()))
    }
}

fn require_admitted(m: &Member) -> Result<(), (ErrorCode, String)> {
    if m.status == Status::Admitted {
        Ok(())
    } else {
        Err((ErrorCode::BadState, "still in the lobby".into()))
    }
}

mod chat;
mod resume;
pub use resume::ResumeRefusal;

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims of a test member (also used by `resume.rs`'s tests).
    pub(super) fn claims(sub: &str, role: Role) -> Claims {
        Claims {
            iss: "k".into(),
            sub: sub.into(),
            name: format!("name-{sub}"),
            room: "r".into(),
            role,
            exp: u64::MAX,
            nbf: 0,
            jti: format!("jti-{sub}"),
            grants: role.default_grants(),
        }
    }

    fn sends_to(fx: &[Effect], id: &str) -> Vec<ServerMsg> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Send(Target::One(p), m) if p.as_str() == id => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn patient_waits_doctor_sees_lobby_and_admits() {
        let mut s = RoomState::new("r", 8);
        let fx = s.join("d".into(), &claims("doc", Role::Doctor), 0).unwrap();
        assert!(matches!(
            sends_to(&fx, "d")[0],
            ServerMsg::Welcome {
                status: Status::Admitted,
                ..
            }
        ));
        let fx = s
            .join("p".into(), &claims("pat", Role::Patient), 10)
            .unwrap();
        assert!(matches!(
            sends_to(&fx, "p")[0],
            ServerMsg::Welcome {
                status: Status::Waiting,
                ..
            }
        ));
        let lobby = sends_to(&fx, "d");
        assert!(
            matches!(&lobby[0], ServerMsg::Lobby { entries } if entries.len() == 1 && entries[0].id.as_str() == "p")
        );
        // Waiting patients cannot send media nor mute.
        assert_eq!(
            s.check_media(&"p".into()).unwrap_err().0,
            ErrorCode::BadState
        );
        // A patient cannot admit itself, nor can a station.
        assert_eq!(
            s.handle(&"p".into(), ClientMsg::Admit { id: "p".into() }, 20)
                .unwrap_err()
                .0,
            ErrorCode::Forbidden
        );
        s.join("s".into(), &claims("st", Role::Station), 20)
            .unwrap();
        assert_eq!(
            s.handle(&"s".into(), ClientMsg::Admit { id: "p".into() }, 20)
                .unwrap_err()
                .0,
            ErrorCode::Forbidden
        );
        let fx = s
            .handle(&"d".into(), ClientMsg::Admit { id: "p".into() }, 30)
            .unwrap();
        assert!(
            matches!(sends_to(&fx, "p")[0], ServerMsg::Admitted { ref participants, .. } if participants.len() == 2)
        );
        assert!(s.check_media(&"p".into()).is_ok());
        assert_eq!(s.lobby_count(), 0);
        assert_eq!(s.admitted_count(), 3);
    }

    #[test]
    fn denied_token_cannot_rejoin() {
        let mut s = RoomState::new("r", 8);
        s.join("d".into(), &claims("doc", Role::Doctor), 0).unwrap();
        s.join("p".into(), &claims("pat", Role::Patient), 0)
            .unwrap();
        let fx = s
            .handle(
                &"d".into(),
                ClientMsg::Deny {
                    id: "p".into(),
                    reason: None,
                },
                1,
            )
            .unwrap();
        assert!(matches!(sends_to(&fx, "p")[0], ServerMsg::Denied { .. }));
        assert!(fx.contains(&Effect::Close("p".into(), close_code::DENIED)));
        // The token is revoked until its own expiry, before anything is sent.
        assert_eq!(
            fx[0],
            Effect::Revoke {
                jti: "jti-pat".into(),
                exp: u64::MAX
            }
        );
    }

    #[test]
    fn removed_participant_leaves_and_is_revoked() {
        let mut s = RoomState::new("r", 8);
        s.join("d".into(), &claims("doc", Role::Doctor), 0).unwrap();
        s.join("s".into(), &claims("st", Role::Station), 0).unwrap();
        let fx = s
            .handle(
                &"d".into(),
                ClientMsg::Remove {
                    id: "s".into(),
                    reason: None,
                },
                1,
            )
            .unwrap();
        assert!(fx.contains(&Effect::MediaRemove("s".into())));
        assert!(fx.iter().any(|e| matches!(
            e,
            Effect::Send(
                Target::Admitted,
                ServerMsg::ParticipantLeft {
                    reason: LeaveReason::Removed,
                    ..
                }
            )
        )));
        assert_eq!(
            fx[0],
            Effect::Revoke {
                jti: "jti-st".into(),
                exp: u64::MAX
            }
        );
    }

    #[test]
    fn end_consult_closes_everyone_and_blocks_joins() {
        let mut s = RoomState::new("r", 8);
        s.join("d".into(), &claims("doc", Role::Doctor), 0).unwrap();
        s.join("p".into(), &claims("pat", Role::Patient), 0)
            .unwrap();
        let fx = s.handle(&"d".into(), ClientMsg::EndConsult, 1).unwrap();
        assert!(fx.contains(&Effect::Close("p".into(), close_code::ENDED)));
        assert!(fx.contains(&Effect::Close("d".into(), close_code::ENDED)));
        assert!(fx.contains(&Effect::RoomEnded));
        assert!(s.is_empty() && s.is_ended());
        assert_eq!(
            s.check_join(&claims("x", Role::Station)),
            Err(JoinRefusal::Ended)
        );
    }

    #[test]
    fn room_holds_at_most_max_participants() {
        let mut s = RoomState::new("r", 2);
        s.join("a".into(), &claims("a", Role::Doctor), 0).unwrap();
        s.join("b".into(), &claims("b", Role::Station), 0).unwrap();
        assert_eq!(
            s.check_join(&claims("c", Role::Station)),
            Err(JoinRefusal::Full)
        );
        // A patient can still wait, but cannot be admitted into a full call.
        s.join("p".into(), &claims("p", Role::Patient), 0).unwrap();
        assert_eq!(
            s.handle(&"a".into(), ClientMsg::Admit { id: "p".into() }, 1)
                .unwrap_err()
                .0,
            ErrorCode::BadState
        );
    }

    #[test]
    fn same_identity_replaces_old_session() {
        let mut s = RoomState::new("r", 8);
        s.join("d1".into(), &claims("doc", Role::Doctor), 0)
            .unwrap();
        let fx = s
            .join("d2".into(), &claims("doc", Role::Doctor), 5)
            .unwrap();
        assert!(fx.contains(&Effect::Close("d1".into(), close_code::REPLACED)));
        assert_eq!(s.admitted_count(), 1);
    }

    #[test]
    fn repeated_mute_broadcasts_nothing() {
        let mut s = RoomState::new("r", 8);
        s.join("d".into(), &claims("doc", Role::Doctor), 0).unwrap();
        s.join("s".into(), &claims("st", Role::Station), 0).unwrap();
        let mute = |muted| ClientMsg::Mute {
            kind: kham_proto::MediaKind::Audio,
            muted,
        };
        // Unmuting someone who is not muted changes nothing.
        assert_eq!(s.handle(&"s".into(), mute(false), 1).unwrap(), vec![]);
        let fx = s.handle(&"s".into(), mute(true), 2).unwrap();
        assert!(matches!(
            &fx[..],
            [Effect::Send(Target::Admitted, ServerMsg::ParticipantUpdated { participant })]
                if participant.audio_muted && !participant.video_muted
        ));
        assert_eq!(s.handle(&"s".into(), mute(true), 3).unwrap(), vec![]);
        // The camera is its own state.
        let fx = s
            .handle(
                &"s".into(),
                ClientMsg::Mute {
                    kind: kham_proto::MediaKind::Video,
                    muted: true,
                },
                4,
            )
            .unwrap();
        assert_eq!(fx.len(), 1);
        assert_eq!(s.handle(&"s".into(), mute(false), 5).unwrap().len(), 1);
    }

    #[test]
    fn membership_changes_are_reported() {
        let mut s = RoomState::new("r", 8);
        let fx = s.join("d".into(), &claims("doc", Role::Doctor), 0).unwrap();
        assert!(fx.iter().any(|e| matches!(e, Effect::Member(w, MemberChange::Joined { waiting: false }) if w.identity == "doc")));
        let fx = s
            .join("p".into(), &claims("pat", Role::Patient), 0)
            .unwrap();
        assert!(fx.iter().any(|e| matches!(e, Effect::Member(w, MemberChange::Joined { waiting: true }) if w.role == Role::Patient)));
        let fx = s
            .handle(&"d".into(), ClientMsg::Admit { id: "p".into() }, 1)
            .unwrap();
        assert!(fx.iter().any(
            |e| matches!(e, Effect::Member(w, MemberChange::Admitted) if w.id.as_str() == "p")
        ));
        let fx = s
            .remove_by_operator(&"p".into(), "closed_by_operator")
            .unwrap();
        assert!(fx.contains(&Effect::Close("p".into(), close_code::REMOVED)));
        assert!(
            fx.iter()
                .any(|e| matches!(e, Effect::Member(_, MemberChange::Left("removed"))))
        );
        assert!(fx.contains(&Effect::Revoke {
            jti: "jti-pat".into(),
            exp: u64::MAX
        }));
        assert_eq!(
            s.remove_by_operator(&"nobody".into(), "x").unwrap_err().0,
            ErrorCode::NotFound
        );
        let fx = s.end("closed_by_operator");
        assert!(
            fx.iter()
                .any(|e| matches!(e, Effect::Member(_, MemberChange::Left("ended"))))
        );
        assert_eq!(s.members().len(), 0);
    }

    #[test]
    fn lobby_leave_updates_doctor() {
        let mut s = RoomState::new("r", 8);
        s.join("d".into(), &claims("doc", Role::Doctor), 0).unwrap();
        s.join("p".into(), &claims("pat", Role::Patient), 0)
            .unwrap();
        let fx = s.leave(&"p".into(), LeaveReason::Left);
        assert!(
            matches!(&sends_to(&fx, "d")[0], ServerMsg::Lobby { entries } if entries.is_empty())
        );
    }
    /// What each participant receives, in order, when the actor applies `fx` the way it does:
    /// targets resolved against the state after the operation.
    fn delivered(s: &RoomState, fx: &[Effect], to: &str) -> Vec<ServerMsg> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Send(t, m) if s.resolve(t).iter().any(|p| p.as_str() == to) => {
                    Some(m.clone())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rejoin_of_the_same_identity_gets_welcome_first() {
        for role in [Role::Doctor, Role::Station] {
            let mut s = RoomState::new("r", 8);
            s.join("d".into(), &claims("doc", Role::Doctor), 0).unwrap();
            s.join("s1".into(), &claims("st", Role::Station), 0)
                .unwrap();
            let (old, new) = if role == Role::Doctor {
                ("d", "d2")
            } else {
                ("s1", "s2")
            };
            let who = if role == Role::Doctor { "doc" } else { "st" };
            let fx = s.join(new.into(), &claims(who, role), 5).unwrap();
            let got = delivered(&s, &fx, new);
            assert!(
                matches!(got.first(), Some(ServerMsg::Welcome { .. })),
                "{role:?}: first message {got:?}"
            );
            assert!(
                !got.iter()
                    .any(|m| matches!(m, ServerMsg::ParticipantLeft { .. })),
                "{role:?}: no news of its own old session: {got:?}"
            );
            // The others still learn that the old session was replaced.
            let other = if role == Role::Doctor { "s1" } else { "d" };
            assert!(
                delivered(&s, &fx, other).contains(&ServerMsg::ParticipantLeft {
                    id: old.into(),
                    reason: LeaveReason::Replaced
                })
            );
        }
    }

    #[test]
    fn admitted_patient_reconnecting_goes_straight_into_the_call() {
        let mut s = RoomState::new("r", 8);
        s.join("d".into(), &claims("doc", Role::Doctor), 0).unwrap();
        s.join("p1".into(), &claims("pat", Role::Patient), 0)
            .unwrap();
        s.handle(&"d".into(), ClientMsg::Admit { id: "p1".into() }, 1)
            .unwrap();
        // A second tab while the first session is still there: replaces it, in the call.
        let fx = s
            .join("p2".into(), &claims("pat", Role::Patient), 2)
            .unwrap();
        assert!(matches!(
            sends_to(&fx, "p2")[0],
            ServerMsg::Welcome {
                status: Status::Admitted,
                ..
            }
        ));
        assert!(s.check_media(&"p2".into()).is_ok());
        assert_eq!((s.admitted_count(), s.lobby_count()), (2, 0));
        // The link drops, the patient comes back while the room lives: in the call again.
        s.leave(&"p2".into(), LeaveReason::ConnectionLost);
        let fx = s
            .join("p3".into(), &claims("pat", Role::Patient), 3)
            .unwrap();
        assert!(matches!(
            sends_to(&fx, "p3")[0],
            ServerMsg::Welcome {
                status: Status::Admitted,
                ..
            }
        ));
        assert!(fx.iter().any(|e| matches!(e, Effect::Send(Target::AdmittedExcept(p), ServerMsg::ParticipantJoined { .. }) if p.as_str() == "p3")));
        // Another token of the same person was never admitted: it waits.
        let mut other = claims("pat", Role::Patient);
        other.jti = "jti-pat-second-token".into();
        let fx = s.join("p4".into(), &other, 4).unwrap();
        assert!(matches!(
            sends_to(&fx, "p4")[0],
            ServerMsg::Welcome {
                status: Status::Waiting,
                ..
            }
        ));
    }

    #[test]
    fn admitted_patient_waits_when_the_call_filled_up_and_removal_forgets_admission() {
        let mut s = RoomState::new("r", 2);
        s.join("d".into(), &claims("doc", Role::Doctor), 0).unwrap();
        s.join("p".into(), &claims("pat", Role::Patient), 0)
            .unwrap();
        s.handle(&"d".into(), ClientMsg::Admit { id: "p".into() }, 1)
            .unwrap();
        s.leave(&"p".into(), LeaveReason::ConnectionLost);
        s.join("s".into(), &claims("st", Role::Station), 2).unwrap();
        // The call is full now: the reconnecting patient waits rather than being refused.
        let fx = s
            .join("p2".into(), &claims("pat", Role::Patient), 3)
            .unwrap();
        assert!(matches!(
            sends_to(&fx, "p2")[0],
            ServerMsg::Welcome {
                status: Status::Waiting,
                ..
            }
        ));
        // Denied from the lobby: revoked, and its admission is gone with it.
        let fx = s
            .handle(
                &"d".into(),
                ClientMsg::Deny {
                    id: "p2".into(),
                    reason: None,
                },
                4,
            )
            .unwrap();
        assert!(matches!(fx[0], Effect::Revoke { .. }));
        assert!(s.admitted_tokens.is_empty());
    }
}
