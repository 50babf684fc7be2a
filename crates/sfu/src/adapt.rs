//! Where a layer is chosen: each subscriber's allocator, fed with str0m's egress estimate and
//! the publishers' measured layer rates, decides what the room forwards to it.

use std::time::{Duration, Instant};

use kham_bwe::{Allocation, Allocator, AllocatorConfig, Kind, Layer, Priority, TrackInput};
use str0m::bwe::Bitrate;
use str0m::media::MediaKind;

use crate::peer::Peer;
use crate::track::TrackIn;

/// How layers are chosen for subscribers.
#[derive(Debug, Clone)]
pub enum Adaptation {
    /// Per-subscriber allocation from the bandwidth estimate (what kham ships).
    Auto(AllocatorConfig),
    /// Always this layer (or the closest flowing one): the benchmark baselines
    /// ("no adaptation" = top layer, "lowest layer only").
    Fixed(Layer),
}

impl Default for Adaptation {
    fn default() -> Self {
        Adaptation::Auto(AllocatorConfig::default())
    }
}

impl Adaptation {
    /// Initial estimate for str0m's estimator, `None` to leave it (and its pacer) off.
    pub(crate) fn initial_estimate(&self) -> Option<Bitrate> {
        match self {
            Adaptation::Auto(c) => Some(Bitrate::bps(c.initial_estimate_bps)),
            Adaptation::Fixed(_) => None,
        }
    }
}

/// Allocation interval: often enough to step down within a few hundred milliseconds of the
/// estimate dropping, rare enough to cost nothing.
pub const ALLOCATION_INTERVAL: Duration = Duration::from_millis(200);

/// One subscriber's adaptation state.
#[derive(Debug)]
pub struct SubscriberAdapt {
    pub allocator: Allocator,
    /// Latest egress estimate from str0m.
    pub estimate_bps: Option<u64>,
    /// The subscriber chose audio only.
    pub audio_only: bool,
    /// Scratch space reused between allocations.
    inputs: Vec<TrackInput>,
}

impl SubscriberAdapt {
    pub fn new(config: &Adaptation) -> Self {
        let cfg = match config {
            Adaptation::Auto(c) => c.clone(),
            Adaptation::Fixed(_) => AllocatorConfig::default(),
        };
        SubscriberAdapt {
            allocator: Allocator::new(cfg),
            estimate_bps: None,
            audio_only: false,
            inputs: Vec::new(),
        }
    }

    /// The last allocation.
    pub fn allocation(&self) -> &Allocation {
        self.allocator.allocation()
    }
}

/// Runs the allocation of subscriber `sub` and applies it to its forwarders.
/// `publishers` finds the track a subscription carries.
pub(crate) fn allocate(
    now: Instant,
    mode: &Adaptation,
    sub: &mut Peer,
    find: impl Fn(&kham_proto::ParticipantId, str0m::media::Mid) -> Option<kham_bwe::LayerRates>,
) {
    if let Adaptation::Fixed(layer) = mode {
        for out in sub
            .tracks_out
            .iter_mut()
            .filter(|t| t.kind == MediaKind::Video)
        {
            out.desired_layer = layer.spatial;
            out.forwarder.set_max_temporal(layer.temporal);
        }
        return;
    }
    let adapt = &mut sub.adapt;
    adapt.inputs.clear();
    for out in &sub.tracks_out {
        if out.mid().is_none() || out.gone {
            continue;
        }
        let Some(rates) = find(&out.publisher, out.source_mid) else {
            continue;
        };
        let kind = if out.kind == MediaKind::Audio {
            Kind::Audio
        } else {
            Kind::Video
        };
        adapt.inputs.push(TrackInput {
            key: out.key,
            kind,
            priority: Priority::Featured,
            rates,
            max_spatial: out.max_spatial,
            visible: out.visible,
        });
    }
    let input = kham_bwe::SubscriberInput {
        estimate_bps: adapt.estimate_bps,
        loss: 0.0,
        rtt: None,
        audio_only: adapt.audio_only,
        tracks: &adapt.inputs,
    };
    let alloc = adapt.allocator.update(now, &input);
    for s in &alloc.switches {
        tracing::debug!(subscriber = %sub.id, track = s.key, from = ?s.from, to = ?s.to, reason = s.reason.as_str(), "layer switch");
    }
    for d in alloc.decisions.iter().filter(|d| d.kind != Kind::Audio) {
        let Some(out) = sub.tracks_out.iter_mut().find(|t| t.key == d.key) else {
            continue;
        };
        match d.layer {
            Some(l) => {
                out.desired_layer = l.spatial;
                out.forwarder.set_max_temporal(l.temporal);
                if out.forwarder.target().is_none() {
                    out.forwarder.set_target(Some(l.spatial));
                }
            }
            None => {
                if out.forwarder.target().is_some() {
                    out.forwarder.set_target(None);
                }
            }
        }
    }
    let probe = alloc.probe;
    sub.rtc
        .bwe()
        .set_bitrate(Bitrate::bps(probe.min_bps), Bitrate::bps(probe.desired_bps));
}

/// The measured rates of a published track.
pub(crate) fn rates_of(track: &TrackIn) -> kham_bwe::LayerRates {
    track.meter.rates()
}
