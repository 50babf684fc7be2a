//! A media connection that drops is a state, not a departure.
//!
//! A participant whose media stops (str0m's ICE-lite agent went `Disconnected`: no consent
//! check for 15 s; or nothing at all arrived for [`crate::stats::SILENCE_LOST`]) is marked
//! *reconnecting*: its `Rtc`, tracks, subscriptions and adaptation state stay, and the room is
//! told ([`RoomEvent::Reconnecting`]) so signaling can show it. An ICE-lite agent comes back from
//! `Disconnected` by itself when checks arrive again (same credentials, any source address), and
//! an ICE restart gives it new credentials over the same DTLS session. When media flows again
//! the peer is [`RoomEvent::Reconnected`] and asks every publisher it receives for a keyframe
//! (its decoders lost their references in the gap). Only after
//! [`crate::RoomConfig::reconnect_grace`] without recovery is it lost and removed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::peer::Peer;
use crate::room::RoomEvent;

/// What changed for one peer at this check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    /// It just came back: the room requests keyframes for it.
    Back,
}

/// Updates one peer's reconnecting state at `now`: marks it, brings it back, or declares it
/// lost once `grace` has passed.
pub(crate) fn update(
    now: Instant,
    grace: Duration,
    p: &mut Peer,
    events: &mut VecDeque<RoomEvent>,
) -> Change {
    if !p.connected || p.lost {
        return Change::None;
    }
    let down = p.ice_down || p.counters.silent();
    match (down, p.reconnecting_since) {
        (true, None) => {
            tracing::debug!(peer = %p.id, ice_down = p.ice_down, "media silent: reconnecting");
            p.reconnecting_since = Some(now);
            events.push_back(RoomEvent::Reconnecting { peer: p.id.clone() });
            Change::None
        }
        (true, Some(since)) => {
            if now.saturating_duration_since(since) >= grace {
                tracing::debug!(peer = %p.id, "media did not come back within the grace");
                p.lost = true;
            }
            Change::None
        }
        (false, Some(_)) => {
            tracing::debug!(peer = %p.id, "media back");
            p.reconnecting_since = None;
            events.push_back(RoomEvent::Reconnected { peer: p.id.clone() });
            Change::Back
        }
        (false, None) => Change::None,
    }
}
