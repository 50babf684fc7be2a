//! What the allocator is told about one subscriber.

use std::time::Duration;

use crate::layer::{Layer, LayerRates};

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
    /// Screen or image share (an X-ray, a wound photo): video with the highest priority.
    Screen,
}

/// Who a video shows, in allocation order: earlier variants are served first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Screen or image share.
    Share,
    /// The active speaker, or the doctor.
    Featured,
    Other,
}

/// One track the subscriber is subscribed to.
#[derive(Debug, Clone, Copy)]
pub struct TrackInput {
    /// Caller's handle for the track, echoed in decisions.
    pub key: u32,
    pub kind: Kind,
    pub priority: Priority,
    /// Measured bitrate of each layer (for audio, `bps[0][0]` is the stream's rate).
    pub rates: LayerRates,
    /// Highest spatial layer the subscriber's tile needs (from its rendered size).
    pub max_spatial: u8,
    /// Whether the tile is visible at all; hidden tiles get no video.
    pub visible: bool,
    /// What the video would send for this tile if its publisher were not shaped for the
    /// subscribers' links (its top layer capped to their estimates, or stopped as unaffordable);
    /// `None` when the measured rates already show it. Only what the estimator is asked to probe
    /// for (`desired`) uses it: measured rates alone would keep a link's estimate where the shaped
    /// encoder put it (the encoder follows the estimate, the ideal follows the encoder, and
    /// nothing asks for more).
    pub unshaped_bps: Option<u64>,
    /// The bitrate cap the publisher was told for its lowest encoding (the video floor,
    /// `kham-sfu` dynacast), `None` when it is not shaped. The lowest layer's cost is remembered
    /// for seconds (a restarted layer measures low at first); a cap lowered since bounds that
    /// memory, so the pause rule does not count what the layer cost before it was shaped to fit.
    pub lowest_cap_bps: Option<u64>,
}

impl TrackInput {
    /// The layers this track can be given, lowest first: a screen share's keep resolution and
    /// give up frame rate first ([`LayerRates::share_ladder`]), a camera's give up resolution
    /// first ([`LayerRates::ladder`]).
    pub fn ladder(&self, out: &mut Vec<(Layer, u64)>) {
        if self.kind == Kind::Screen {
            self.rates.share_ladder(self.max_spatial, out);
        } else {
            self.rates.ladder(self.max_spatial, out);
        }
    }
}

/// Everything known about one subscriber at one instant.
#[derive(Debug, Clone, Copy)]
pub struct SubscriberInput<'a> {
    /// Egress estimate towards the subscriber (str0m's GoogCC, smoothed over 3 s), `None`
    /// before the first one.
    pub estimate_bps: Option<u64>,
    /// The same estimate before smoothing: it falls within a feedback interval of a capacity
    /// collapse, where the smoothed one takes seconds. `None` when unknown.
    pub raw_estimate_bps: Option<u64>,
    /// The delay-based detector sees overuse now (queues growing at the bottleneck).
    pub overusing: bool,
    /// Fraction of packets the subscriber reports lost (0..1).
    pub loss: f32,
    pub rtt: Option<Duration>,
    /// The subscriber chose audio only (to save data).
    pub audio_only: bool,
    /// The link drops packets at random (a tenth or more lost with no queue at the
    /// bottleneck): the estimate is the loss-based controller's answer to that, not capacity.
    /// Video is then not paused for bandwidth while no overuse is seen (`Allocator::update`).
    pub lossy: bool,
    /// Nothing comes back from the subscriber (an outage; kham-sfu's `gap.rs`): no upgrade and
    /// no pulse, since nothing can confirm them.
    pub outage: bool,
    pub tracks: &'a [TrackInput],
}
