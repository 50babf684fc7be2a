//! A dropped socket is not a departure: the room keeps the member for the reconnect grace, the
//! call sees it "reconnecting", and its client resumes on a new socket
//! (`room_state/resume.rs` holds the rules; this is the room task's part: sockets, time).

use std::time::Instant;

use kham_proto::{LeaveReason, ParticipantId, close_code};
use tokio::sync::{mpsc, oneshot};

use super::{Outbound, RoomActor};
use crate::room_state::ResumeRefusal;
use crate::token::Claims;

impl RoomActor {
    /// A session's socket closed. `lost`: without a close from the client (network gone, a
    /// reader that stopped reading); the member then waits for a resume. A socket that was
    /// already replaced by a resume (`conn` is not the current one) changes nothing.
    pub(super) fn disconnected(&mut self, id: ParticipantId, conn: u64, lost: bool) {
        if self.info.get(&id).is_some_and(|i| i.conn != conn) {
            return;
        }
        if self.sessions.remove(&id).is_none() {
            return;
        }
        if !lost || self.timeouts.reconnect_grace.is_zero() {
            let reason = if lost {
                LeaveReason::ConnectionLost
            } else {
                LeaveReason::Left
            };
            let fx = self.state.leave(&id, reason);
            self.apply(fx);
            return;
        }
        tracing::debug!(room = %self.id, peer = %id, "signaling dropped: waiting for a resume");
        if let Some(i) = self.info.get_mut(&id) {
            i.detached_since = Some(Instant::now());
        }
        let fx = self.state.set_reconnecting(&id, true);
        self.apply(fx);
    }

    /// A client back on a new socket.
    pub(super) fn resume(
        &mut self,
        id: ParticipantId,
        claims: Claims,
        secret: String,
        conn: u64,
        tx: mpsc::Sender<Outbound>,
        reply: oneshot::Sender<Result<(), ResumeRefusal>>,
    ) {
        let now_ms = self.created.elapsed().as_millis() as u64;
        // A token revoked since (denied, removed) does not come back this way either.
        let fx = match self.check_revoked(&claims) {
            Ok(()) => self.state.resume(&id, &claims, &secret, now_ms),
            Err(_) => Err(ResumeRefusal),
        };
        let fx = match fx {
            Ok(fx) => fx,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        // The old socket, if the server had not noticed it die yet, is closed; its own
        // `Disconnected` then names a connection that is no longer current.
        if let Some(old) = self.sessions.insert(id.clone(), tx) {
            let _ = old.try_send(Outbound::Close(close_code::REPLACED, "replaced"));
        }
        let _ = reply.send(Ok(()));
        tracing::debug!(room = %self.id, peer = %id, "session resumed");
        let (replay, media_down) = match self.info.get_mut(&id) {
            Some(i) => {
                i.conn = conn;
                i.detached_since = None;
                let mut replay: Vec<_> = i.pending_offer.iter().map(|(_, m)| m.clone()).collect();
                replay.extend(i.replay.iter().cloned());
                (replay, i.media_down)
            }
            None => (Vec::new(), false),
        };
        self.apply(fx);
        for msg in replay {
            self.send(&id, msg);
        }
        if !media_down {
            let fx = self.state.set_reconnecting(&id, false);
            self.apply(fx);
        }
    }

    /// When the earliest reconnect grace ends.
    pub(super) fn next_grace_end(&self) -> Option<Instant> {
        let grace = self.timeouts.reconnect_grace;
        self.info
            .values()
            .filter_map(|i| i.detached_since)
            .min()
            .map(|t| t + grace)
    }

    /// Members whose socket stayed away for the whole grace leave (`connection_lost`), unless
    /// their media still flows: a call is not cut because signaling alone is down, and the
    /// wait starts again.
    pub(super) fn graces_over(&mut self, now: Instant) {
        let grace = self.timeouts.reconnect_grace;
        let over: Vec<ParticipantId> = self
            .info
            .iter()
            .filter(|(_, i)| i.detached_since.is_some_and(|t| now >= t + grace))
            .map(|(id, _)| id.clone())
            .collect();
        for id in over {
            let media_flows = self
                .info
                .get(&id)
                .is_some_and(|i| i.media_connected && !i.media_down);
            if media_flows {
                if let Some(i) = self.info.get_mut(&id) {
                    i.detached_since = Some(now);
                }
                continue;
            }
            tracing::info!(room = %self.id, peer = %id, "no resume within the grace: left");
            if let Some(i) = self.info.get_mut(&id) {
                i.detached_since = None;
            }
            let fx = self.state.leave(&id, LeaveReason::ConnectionLost);
            self.apply(fx);
        }
    }
}
