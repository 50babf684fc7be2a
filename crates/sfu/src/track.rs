//! Tracks: what a publisher sends (`TrackIn`) and what a subscriber receives (`TrackOut`).

use std::time::{Duration, Instant};

use kham_proto::ParticipantId;
use str0m::media::{MediaKind, Mid, Rid};

use crate::codec::Codec;
use crate::forward::Forwarder;
use crate::meter::LayerMeter;

/// At most this many simulcast layers per track.
pub const MAX_LAYERS: usize = 3;

/// A layer not seen for this long is considered gone (the browser dropped it).
pub const LAYER_TIMEOUT: Duration = Duration::from_secs(2);

/// One track a publisher sends: an audio or a video m-line, possibly with simulcast layers.
#[derive(Debug)]
pub struct TrackIn {
    pub mid: Mid,
    pub kind: MediaKind,
    /// Learned from the first packet's payload type.
    pub codec: Codec,
    pub clock_rate: u32,
    /// Rids in layer order (lowest first); empty without simulcast.
    pub rids: Vec<Rid>,
    /// When a packet of each layer was last seen.
    pub seen: [Option<Instant>; MAX_LAYERS],
    /// When a keyframe was last requested for each layer (shared by all subscribers).
    pub last_keyframe_request: [Option<Instant>; MAX_LAYERS],
    /// Bitrate of each spatial and temporal layer, for the allocator.
    pub meter: LayerMeter,
}

impl TrackIn {
    pub fn new(mid: Mid, kind: MediaKind, rids: Vec<Rid>) -> Self {
        TrackIn {
            mid,
            kind,
            codec: Codec::Other,
            clock_rate: if kind == MediaKind::Audio {
                48_000
            } else {
                90_000
            },
            rids: order_rids(rids),
            seen: [None; MAX_LAYERS],
            last_keyframe_request: [None; MAX_LAYERS],
            meter: LayerMeter::default(),
        }
    }

    /// Layer index of a rid (0 without simulcast).
    pub fn layer_of(&self, rid: Option<Rid>) -> Option<u8> {
        match rid {
            None => Some(0),
            Some(r) => self.rids.iter().position(|x| *x == r).map(|i| i as u8),
        }
    }

    /// The rid of a layer, for keyframe requests.
    pub fn rid_of(&self, layer: u8) -> Option<Rid> {
        self.rids.get(usize::from(layer)).copied()
    }

    /// The best layer to forward for a subscriber wanting `desired`: the highest layer at or
    /// below it that is flowing, else the lowest flowing layer above it, else `desired` itself.
    pub fn effective_layer(&self, desired: u8, now: Instant) -> u8 {
        let alive = |l: usize| {
            self.seen[l].is_some_and(|t| now.saturating_duration_since(t) < LAYER_TIMEOUT)
        };
        let top = usize::from(desired).min(MAX_LAYERS - 1);
        if let Some(l) = (0..=top).rev().find(|&l| alive(l)) {
            return l as u8;
        }
        (top + 1..MAX_LAYERS)
            .find(|&l| alive(l))
            .map_or(desired, |l| l as u8)
    }
}

/// Orders rids from lowest to highest quality: well-known names first, otherwise offer order.
fn order_rids(mut rids: Vec<Rid>) -> Vec<Rid> {
    let rank = |r: &Rid| match &**r {
        "q" | "l" | "lo" | "low" | "0" => Some(0),
        "h" | "m" | "mid" | "medium" | "1" => Some(1),
        "f" | "hi" | "high" | "2" => Some(2),
        _ => None,
    };
    if rids.iter().all(|r| rank(r).is_some()) {
        rids.sort_by_key(|r| rank(r));
    }
    rids.truncate(MAX_LAYERS);
    rids
}

/// Negotiation state of a subscriber's m-line carrying someone else's track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// Needs an m-line in the next server offer.
    ToOpen,
    /// In an offer not answered yet.
    Negotiating(Mid),
    /// Media flows.
    Open(Mid),
    /// Publisher gone: stop the m-line in the next offer.
    ToStop(Mid),
    /// Stop offered, not answered yet.
    NegotiatingStop(Mid),
}

/// One track a subscriber receives.
#[derive(Debug)]
pub struct TrackOut {
    /// Room-unique handle, the allocator's track key.
    pub key: u32,
    pub publisher: ParticipantId,
    pub source_mid: Mid,
    pub kind: MediaKind,
    pub state: OutState,
    /// The publisher left; stop at the next negotiation.
    pub gone: bool,
    /// The layer this subscriber should get (the allocator's decision; fixed for now).
    pub desired_layer: u8,
    pub forwarder: Forwarder,
    /// Payload type mapping (publisher pt, subscriber pt) of the last packet.
    pub pt_map: Option<(u8, u8)>,
    /// Highest spatial layer the subscriber's tile needs.
    pub max_spatial: u8,
    /// Whether the subscriber shows this video at all.
    pub visible: bool,
}

impl TrackOut {
    pub fn mid(&self) -> Option<Mid> {
        match self.state {
            OutState::ToOpen => None,
            OutState::Negotiating(m)
            | OutState::Open(m)
            | OutState::ToStop(m)
            | OutState::NegotiatingStop(m) => Some(m),
        }
    }
}
