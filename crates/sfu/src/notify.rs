//! What the room tells participants about adaptation: each subscriber's `video_state` (which of
//! its videos are paused and why, which layer it gets) and everyone's connection quality. Both
//! are computed on the allocation tick, never per packet, and sent only when they change.

use std::collections::VecDeque;
use std::time::Instant;

use kham_bwe::Reason;
use kham_proto::{LayerRef, PauseReason, QualityEntry, QualityLevel, VideoState};
use str0m::media::MediaKind;

use crate::peer::Peer;
use crate::quality::{Quality, score};
use crate::room::RoomEvent;
use crate::track::{MAX_LAYERS, OutState};

/// The states of a subscriber's received videos, in m-line order.
pub(crate) fn video_states(peer: &Peer) -> Vec<VideoState> {
    let alloc = peer.adapt.allocation();
    peer.tracks_out
        .iter()
        .filter(|t| t.kind == MediaKind::Video && !t.gone)
        .filter_map(|t| {
            let OutState::Open(mid) = t.state else {
                return None;
            };
            let decided = alloc
                .decisions
                .iter()
                .find(|d| d.key == t.key)
                .and_then(|d| d.paused);
            let chosen = if peer.adapt.audio_only {
                Some(PauseReason::AudioOnly)
            } else if !t.visible {
                Some(PauseReason::Hidden)
            } else {
                decided.map(|r| match r {
                    Reason::AudioOnlyChosen => PauseReason::AudioOnly,
                    Reason::Hidden => PauseReason::Hidden,
                    Reason::LayerGone => PauseReason::NoVideo,
                    _ => PauseReason::Bandwidth,
                })
            };
            let current = t.forwarder.current();
            let reason = match (chosen, current) {
                (Some(r), _) => Some(r),
                // Asked for but nothing forwarded: the publisher sends nothing usable yet.
                (None, None) => Some(PauseReason::NoVideo),
                (None, Some(_)) => None,
            };
            let layer = match (reason, current) {
                (None, Some(s)) => Some(LayerRef {
                    spatial: s,
                    temporal: t.forwarder.max_temporal().min(MAX_LAYERS as u8 - 1),
                }),
                _ => None,
            };
            Some(VideoState {
                mid: mid.to_string(),
                participant: t.publisher.clone(),
                paused: reason.is_some(),
                reason,
                layer,
            })
        })
        .collect()
}

/// Queues a `video_state` for every connected subscriber whose states changed.
pub(crate) fn video_state_changes(peers: &mut [Peer], events: &mut VecDeque<RoomEvent>) {
    for p in peers
        .iter_mut()
        .filter(|p| p.connected && p.perms.subscribe)
    {
        let states = video_states(p);
        if states != p.video_states {
            p.video_states = states.clone();
            events.push_back(RoomEvent::VideoState {
                peer: p.id.clone(),
                tracks: states,
            });
        }
    }
}

/// Re-judges everyone's quality; queues the room's scores when a shown one changed.
pub(crate) fn quality_changes(now: Instant, peers: &mut [Peer], events: &mut VecDeque<RoomEvent>) {
    let mut changed = false;
    for p in peers.iter_mut() {
        let verdict = score(p.quality_input());
        changed |= p.quality.update(now, verdict);
    }
    if changed {
        let scores = peers
            .iter()
            .filter_map(|p| {
                Some(QualityEntry {
                    id: p.id.clone(),
                    quality: wire(p.quality.shown()?),
                })
            })
            .collect();
        events.push_back(RoomEvent::Quality { scores });
    }
}

fn wire(q: Quality) -> QualityLevel {
    match q {
        Quality::Excellent => QualityLevel::Excellent,
        Quality::Good => QualityLevel::Good,
        Quality::Poor => QualityLevel::Poor,
        Quality::Lost => QualityLevel::Lost,
    }
}
