//! Room lifecycle notices for the outside world (webhooks, metrics). Rooms emit them as things
//! happen; an [`Observer`] receives them on the room's task, so it must never block.

use std::sync::Arc;
use std::time::Duration;

use kham_proto::{LeaveReason, LeftReason, ParticipantId, Role, Urgency};

/// Who a notice is about. The display name travels only so an observer that is explicitly
/// allowed to may use it (webhooks with `include_names`); never log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub id: ParticipantId,
    /// The token's subject: the booking system's own id for this person.
    pub identity: String,
    pub role: Role,
    pub name: String,
}

/// Something that happened in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The room's task started (first join or `POST /api/rooms`).
    RoomStarted { room: String },
    /// The room closed: `ended` when the consult was ended (doctor or operator), otherwise it
    /// stayed empty past its timeout.
    RoomFinished { room: String, ended: bool },
    /// Someone entered the room: the lobby (`waiting`) or the call.
    ParticipantJoined {
        room: String,
        who: Who,
        waiting: bool,
    },
    /// A doctor admitted a waiting participant into the call.
    ParticipantAdmitted { room: String, who: Who },
    /// Someone left the room (from the call or the lobby).
    ParticipantLeft {
        room: String,
        who: Who,
        reason: &'static str,
    },
    /// A participant's media connected: `join_time` from the WebSocket opening (or from the
    /// admission, for someone who waited in the lobby) to ICE + DTLS up.
    MediaConnected {
        room: String,
        participant: ParticipantId,
        role: Role,
        join_time: Duration,
    },
    /// A station's request entered the specialist queue. No names, no note.
    QueueEntered {
        request_id: u64,
        specialty: String,
        urgency: Urgency,
    },
    /// A doctor took a request and reached its call; `waited_ms` from entering to then.
    QueueTaken {
        request_id: u64,
        specialty: String,
        urgency: Urgency,
        waited_ms: u64,
    },
    /// A request left the queue without a call (cancelled, expired, abandoned).
    QueueLeft {
        request_id: u64,
        specialty: String,
        urgency: Urgency,
        reason: LeftReason,
        waited_ms: u64,
    },
}

/// Receives notices. Called on room tasks: must return at once (queue, count, drop).
pub trait Observer: Send + Sync + 'static {
    fn notice(&self, notice: Notice);
}

/// An observer that ignores everything.
pub struct NoObserver;

impl Observer for NoObserver {
    fn notice(&self, _: Notice) {}
}

/// Shared observer handle.
pub type SharedObserver = Arc<dyn Observer>;

/// Wire name of a leave reason (as in `participant_left`), plus `ended` for an ended consult.
pub fn leave_reason_str(r: LeaveReason) -> &'static str {
    match r {
        LeaveReason::Left => "left",
        LeaveReason::Removed => "removed",
        LeaveReason::ConnectionLost => "connection_lost",
        LeaveReason::Denied => "denied",
        LeaveReason::Replaced => "replaced",
        LeaveReason::Flooding => "flooding",
    }
}
