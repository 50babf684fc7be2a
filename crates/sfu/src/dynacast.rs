//! Dynacast: simulcast layers no subscriber needs are paused at the publisher, sparing its
//! uplink (a commune station on 3G sending a 720p layer nobody shows is wasting most of it).
//!
//! "Needed" follows what subscribers show, not what their links carry: a subscriber whose link
//! only fits the lowest layer today still needs the higher ones offered so it can step up when
//! capacity returns. A layer is needed up to the largest `max_spatial` (tile size) among the
//! subscribers that show the video; nothing is needed when nobody shows it (everyone audio-only,
//! every tile hidden, or nobody else in the room). A needed layer is resumed at once; an unneeded
//! one is paused after [`PAUSE_AFTER`], so a tile briefly resized does not toggle the encoder.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use kham_proto::LayerActive;
use str0m::media::MediaKind;

use crate::peer::Peer;
use crate::room::RoomEvent;

/// An unneeded layer keeps flowing this long before the publisher is told to stop it.
pub const PAUSE_AFTER: Duration = Duration::from_secs(3);

/// Updates every simulcast track's needed layers; queues `publish_layers` for those changed.
pub(crate) fn update(now: Instant, peers: &mut [Peer], events: &mut VecDeque<RoomEvent>) {
    for i in 0..peers.len() {
        for ti in 0..peers[i].tracks_in.len() {
            let (publisher, mid, count) = {
                let t = &peers[i].tracks_in[ti];
                if t.kind != MediaKind::Video || t.rids.len() < 2 {
                    continue;
                }
                (peers[i].id.clone(), t.mid, t.layer_count())
            };
            let need = peers
                .iter()
                .enumerate()
                .filter(|(j, p)| *j != i && p.perms.subscribe && !p.adapt.audio_only)
                .flat_map(|(_, p)| p.tracks_out.iter())
                .filter(|t| t.publisher == publisher && t.source_mid == mid && !t.gone && t.visible)
                .map(|t| t.max_spatial.min(count - 1))
                .max();
            let track = &mut peers[i].tracks_in[ti];
            let mut changed = false;
            for l in 0..usize::from(count) {
                let needed = need.is_some_and(|n| l <= usize::from(n));
                if needed {
                    track.unneeded_since[l] = None;
                    if !track.active[l] {
                        track.active[l] = true;
                        changed = true;
                    }
                } else if track.active[l] {
                    let since = *track.unneeded_since[l].get_or_insert(now);
                    if now.saturating_duration_since(since) >= PAUSE_AFTER {
                        track.active[l] = false;
                        changed = true;
                    }
                }
            }
            if changed {
                let layers = track
                    .rids
                    .iter()
                    .zip(track.active)
                    .map(|(rid, active)| LayerActive::plain(rid.to_string(), active))
                    .collect();
                tracing::debug!(%publisher, %mid, active = ?track.active, "dynacast");
                events.push_back(RoomEvent::PublishLayers {
                    peer: publisher,
                    mid: mid.to_string(),
                    layers,
                });
            }
        }
    }
}
