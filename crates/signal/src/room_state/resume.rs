//! Resuming a session, and the "reconnecting" mark others see meanwhile.
//!
//! A participant whose signaling socket or media dropped stays a member for the reconnect grace
//! (the room actor keeps the time). Its client comes back on a new socket with the
//! `resume_token` it got in `welcome`: the same participant id, status, mutes and media session,
//! and a full snapshot (`resumed`) from which it reconciles what it missed. A resume names the
//! participant, proves it with the secret, and must come from the same identity (`sub`) in the
//! same room: the secret alone is not enough, and a secret from another room or another person
//! finds nothing. Every refusal looks the same ([`ResumeRefusal`]), so a guess learns nothing.

use kham_proto::{PROTOCOL_VERSION, ParticipantId, ServerMsg, Status};

use super::{Effect, RoomState, Target};
use crate::token::Claims;

/// Why a resume is refused: no such participant here, another identity, or a wrong secret.
/// One answer for all of them; the client joins anew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no session to resume: join again")]
pub struct ResumeRefusal;

impl RoomState {
    /// Takes a member's session back after a dropped socket. The effects start with `resumed`
    /// to it (then the lobby, for one who admits).
    pub fn resume(
        &mut self,
        id: &ParticipantId,
        claims: &Claims,
        secret: &str,
        now_ms: u64,
    ) -> Result<Vec<Effect>, ResumeRefusal> {
        let m = self.member(id).ok_or(ResumeRefusal)?;
        let known = m
            .resume_token
            .as_deref()
            .is_some_and(|t| same_secret(t, secret));
        if !known || m.identity != claims.sub || self.ended {
            return Err(ResumeRefusal);
        }
        let (me, status, admits) = (m.info.clone(), m.status, m.grants.admit);
        let mut fx = vec![Effect::Send(
            Target::One(id.clone()),
            ServerMsg::Resumed {
                protocol: PROTOCOL_VERSION,
                room: self.room.clone(),
                me,
                participants: if status == Status::Admitted {
                    self.admitted_except(id)
                } else {
                    Vec::new()
                },
                status,
                ice_servers: Vec::new(),
            },
        )];
        if admits && status == Status::Admitted {
            fx.push(Effect::Send(
                Target::One(id.clone()),
                self.lobby_msg(now_ms),
            ));
        }
        Ok(fx)
    }

    /// Marks a member as reconnecting (or back); the call hears of a change through
    /// `participant_updated`. Nothing for an unknown member or no change.
    pub fn set_reconnecting(&mut self, id: &ParticipantId, on: bool) -> Vec<Effect> {
        let Some(m) = self.member_mut(id) else {
            return Vec::new();
        };
        if m.info.reconnecting == on {
            return Vec::new();
        }
        m.info.reconnecting = on;
        if m.status != Status::Admitted {
            return Vec::new();
        }
        let participant = m.info.clone();
        vec![Effect::Send(
            Target::AdmittedExcept(id.clone()),
            ServerMsg::ParticipantUpdated { participant },
        )]
    }

    /// Whether a member is marked reconnecting.
    pub fn is_reconnecting(&self, id: &ParticipantId) -> bool {
        self.member(id).is_some_and(|m| m.info.reconnecting)
    }
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room_state::tests::claims;
    use kham_proto::Role;

    fn room_with_two() -> RoomState {
        let mut s = RoomState::new("r", 8);
        let doc = claims("doc", Role::Doctor);
        s.join_resumable("d".into(), &doc, 0, Some(("secret-d".into(), 30_000)))
            .unwrap();
        let mut pat = claims("pat", Role::Patient);
        pat.grants.admit = false;
        s.join_resumable("p".into(), &pat, 0, Some(("secret-p".into(), 30_000)))
            .unwrap();
        s.handle(
            &"d".into(),
            kham_proto::ClientMsg::Admit { id: "p".into() },
            10,
        )
        .unwrap();
        s
    }

    #[test]
    fn welcome_carries_the_secret_and_the_grace() {
        let mut s = RoomState::new("r", 8);
        let fx = s
            .join_resumable(
                "d".into(),
                &claims("doc", Role::Doctor),
                0,
                Some(("s3cret".into(), 30_000)),
            )
            .unwrap();
        let welcome = fx.iter().find_map(|e| match e {
            Effect::Send(
                _,
                ServerMsg::Welcome {
                    resume_token,
                    reconnect_grace_ms,
                    ..
                },
            ) => Some((resume_token.clone(), *reconnect_grace_ms)),
            _ => None,
        });
        assert_eq!(welcome, Some((Some("s3cret".into()), Some(30_000))));
    }

    #[test]
    fn the_right_secret_from_the_same_identity_resumes_with_a_snapshot() {
        let mut s = room_with_two();
        let fx = s
            .resume(&"p".into(), &claims("pat", Role::Patient), "secret-p", 20)
            .unwrap();
        match &fx[0] {
            Effect::Send(
                Target::One(to),
                ServerMsg::Resumed {
                    me,
                    participants,
                    status,
                    ..
                },
            ) => {
                assert_eq!(to.as_str(), "p");
                assert_eq!(me.id.as_str(), "p");
                assert_eq!(*status, Status::Admitted);
                assert_eq!(participants.len(), 1);
                assert_eq!(participants[0].id.as_str(), "d");
            }
            other => panic!("{other:?}"),
        }
        // The doctor's resume also brings the lobby back.
        let fx = s
            .resume(&"d".into(), &claims("doc", Role::Doctor), "secret-d", 20)
            .unwrap();
        assert!(
            fx.iter()
                .any(|e| matches!(e, Effect::Send(_, ServerMsg::Lobby { .. })))
        );
    }

    #[test]
    fn a_wrong_secret_another_identity_or_an_unknown_id_is_refused_alike() {
        let mut s = room_with_two();
        let pat = claims("pat", Role::Patient);
        assert_eq!(
            s.resume(&"p".into(), &pat, "secret-d", 0),
            Err(ResumeRefusal)
        );
        assert_eq!(s.resume(&"p".into(), &pat, "", 0), Err(ResumeRefusal));
        assert_eq!(
            s.resume(&"p".into(), &pat, "secret-p-longer", 0),
            Err(ResumeRefusal)
        );
        // The doctor's own secret, presented for the patient's id by the doctor: refused.
        let doc = claims("doc", Role::Doctor);
        assert_eq!(
            s.resume(&"p".into(), &doc, "secret-p", 0),
            Err(ResumeRefusal)
        );
        assert_eq!(
            s.resume(&"x".into(), &pat, "secret-p", 0),
            Err(ResumeRefusal)
        );
        // A member who joined without a secret cannot be resumed at all.
        s.join("o".into(), &claims("obs", Role::Doctor), 0).unwrap();
        assert_eq!(
            s.resume(&"o".into(), &claims("obs", Role::Doctor), "", 0),
            Err(ResumeRefusal)
        );
        // Gone after leaving.
        s.leave(&"p".into(), kham_proto::LeaveReason::ConnectionLost);
        assert_eq!(
            s.resume(&"p".into(), &pat, "secret-p", 0),
            Err(ResumeRefusal)
        );
    }

    #[test]
    fn the_call_sees_reconnecting_then_back_once_each() {
        let mut s = room_with_two();
        let fx = s.set_reconnecting(&"p".into(), true);
        assert_eq!(fx.len(), 1);
        match &fx[0] {
            Effect::Send(
                Target::AdmittedExcept(x),
                ServerMsg::ParticipantUpdated { participant },
            ) => {
                assert_eq!(x.as_str(), "p");
                assert!(participant.reconnecting);
            }
            other => panic!("{other:?}"),
        }
        assert!(s.is_reconnecting(&"p".into()));
        assert!(s.set_reconnecting(&"p".into(), true).is_empty());
        let fx = s.set_reconnecting(&"p".into(), false);
        assert!(matches!(
            &fx[0],
            Effect::Send(_, ServerMsg::ParticipantUpdated { participant }) if !participant.reconnecting
        ));
        assert!(s.set_reconnecting(&"nobody".into(), true).is_empty());
    }
}
