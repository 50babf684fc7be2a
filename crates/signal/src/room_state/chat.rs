//! Chat: text messages to everyone in the call, and from a doctor to one lobby entry ("I will be
//! with you in 5 minutes"). The room relays them in the order it handles them (one counter per
//! room, `seq`) and keeps nothing: no history, so nothing outlives the room, and a member who
//! joins later sees only what is written after. Texts are health data: nothing here or in the
//! room actor logs them, and they never reach metrics or webhooks. The per-sender rate limit is
//! the actor's (it owns the clocks).

use kham_proto::{ChatMessage, ErrorCode, MAX_CHAT_BYTES, ParticipantId, ServerMsg, Status};

use super::{Effect, RoomState, Target, require_admit};

impl RoomState {
    /// Relays one chat message from `from`, stamped `ts_ms` (Unix milliseconds).
    pub fn chat(
        &mut self,
        from: &ParticipantId,
        text: String,
        to: Option<ParticipantId>,
        ts_ms: u64,
    ) -> Result<Vec<Effect>, (ErrorCode, String)> {
        let me = self
            .member(from)
            .ok_or((ErrorCode::Internal, "not a member".into()))?
            .clone();
        if me.status != Status::Admitted {
            return Err((
                ErrorCode::BadState,
                "in the lobby, chat is only received (from the doctor)".into(),
            ));
        }
        if !me.grants.health_data(me.info.role) {
            return Err((
                ErrorCode::Forbidden,
                "the token lacks the health_data grant (chat, vitals, images)".into(),
            ));
        }
        if text.len() > MAX_CHAT_BYTES {
            return Err((
                ErrorCode::TooLarge,
                format!("a chat message is at most {MAX_CHAT_BYTES} bytes of UTF-8"),
            ));
        }
        if text.trim().is_empty() {
            return Err((ErrorCode::BadMessage, "an empty chat message".into()));
        }
        let recipients: Vec<ParticipantId> = match &to {
            None => self
                .members
                .iter()
                .filter(|m| m.status == Status::Admitted && m.grants.health_data(m.info.role))
                .map(|m| m.info.id.clone())
                .collect(),
            Some(id) => {
                require_admit(&me)?;
                match self.member(id) {
                    Some(t) if t.status == Status::Waiting => vec![id.clone(), from.clone()],
                    Some(_) => {
                        return Err((
                            ErrorCode::BadState,
                            format!("{id} is in the call: chat there goes to everyone"),
                        ));
                    }
                    None => return Err((ErrorCode::NotFound, format!("no lobby entry {id}"))),
                }
            }
        };
        self.chat_seq += 1;
        let msg = ServerMsg::Chat(ChatMessage {
            seq: self.chat_seq,
            from: from.clone(),
            name: me.info.name.clone(),
            role: me.info.role,
            ts_ms,
            text,
            to,
        });
        Ok(recipients
            .into_iter()
            .map(|id| Effect::Send(Target::One(id), msg.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use kham_proto::{Grants, Role};

    use super::super::tests::claims;
    use super::*;

    fn chats_to(fx: &[Effect], id: &str) -> Vec<ChatMessage> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Send(Target::One(p), ServerMsg::Chat(c)) if p.as_str() == id => {
                    Some(c.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// A doctor, a station and an observer in the call, a patient waiting.
    fn room() -> RoomState {
        let mut s = RoomState::new("r", 8);
        s.join("d".into(), &claims("doc", Role::Doctor), 0).unwrap();
        s.join("s".into(), &claims("st", Role::Station), 0).unwrap();
        s.join("o".into(), &claims("obs", Role::Observer), 0)
            .unwrap();
        s.join("p".into(), &claims("pat", Role::Patient), 0)
            .unwrap();
        s
    }

    #[test]
    fn the_call_gets_it_in_order_the_lobby_and_observer_do_not() {
        let mut s = room();
        let a = s.chat(&"s".into(), "một".into(), None, 5).unwrap();
        let b = s.chat(&"d".into(), "two".into(), None, 6).unwrap();
        for who in ["d", "s"] {
            let got: Vec<_> = chats_to(&a, who)
                .into_iter()
                .chain(chats_to(&b, who))
                .collect();
            assert_eq!(got.len(), 2, "{who}");
            assert_eq!((got[0].seq, got[0].text.as_str()), (1, "một"));
            assert_eq!((got[1].seq, got[1].text.as_str()), (2, "two"));
            assert_eq!(got[1].name, "name-doc");
            assert_eq!(got[1].ts_ms, 6);
        }
        assert!(chats_to(&a, "p").is_empty(), "the lobby hears nothing");
        assert!(chats_to(&a, "o").is_empty(), "no health_data grant");
        // The observer cannot write either, unless its token grants it.
        assert_eq!(
            s.chat(&"o".into(), "x".into(), None, 7).unwrap_err().0,
            ErrorCode::Forbidden
        );
        let mut c = claims("obs2", Role::Observer);
        c.grants = Grants {
            health_data: Some(true),
            ..c.grants
        };
        s.join("o2".into(), &c, 8).unwrap();
        let fx = s.chat(&"d".into(), "three".into(), None, 9).unwrap();
        assert_eq!(chats_to(&fx, "o2")[0].seq, 3);
    }

    #[test]
    fn a_doctor_writes_to_the_lobby_and_only_a_doctor() {
        let mut s = room();
        let fx = s
            .chat(&"d".into(), "5 phút nữa".into(), Some("p".into()), 1)
            .unwrap();
        let to_p = chats_to(&fx, "p");
        assert_eq!(to_p.len(), 1);
        assert_eq!(to_p[0].to.as_ref().map(|t| t.as_str()), Some("p"));
        assert_eq!(chats_to(&fx, "d").len(), 1, "echoed to the doctor");
        assert!(chats_to(&fx, "s").is_empty(), "not to the call");
        assert_eq!(
            s.chat(&"s".into(), "x".into(), Some("p".into()), 2)
                .unwrap_err()
                .0,
            ErrorCode::Forbidden
        );
        assert_eq!(
            s.chat(&"d".into(), "x".into(), Some("s".into()), 2)
                .unwrap_err()
                .0,
            ErrorCode::BadState
        );
        assert_eq!(
            s.chat(&"d".into(), "x".into(), Some("nobody".into()), 2)
                .unwrap_err()
                .0,
            ErrorCode::NotFound
        );
        // The waiting patient cannot write.
        assert_eq!(
            s.chat(&"p".into(), "x".into(), None, 2).unwrap_err().0,
            ErrorCode::BadState
        );
    }

    #[test]
    fn too_long_or_empty_is_a_typed_error() {
        let mut s = room();
        let long = "é".repeat(MAX_CHAT_BYTES / 2 + 1);
        let (code, text) = s.chat(&"d".into(), long, None, 1).unwrap_err();
        assert_eq!(code, ErrorCode::TooLarge);
        assert!(!text.contains('é'), "the text is not echoed");
        assert!(
            s.chat(&"d".into(), "é".repeat(MAX_CHAT_BYTES / 2), None, 1)
                .is_ok()
        );
        assert_eq!(
            s.chat(&"d".into(), " \n ".into(), None, 1).unwrap_err().0,
            ErrorCode::BadMessage
        );
    }
}
