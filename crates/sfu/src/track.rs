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
    /// When the track's first packet (any layer) arrived.
    pub first_packet: Option<Instant>,
    /// When a keyframe was last requested for each layer (shared by all subscribers).
    pub last_keyframe_request: [Option<Instant>; MAX_LAYERS],
    /// Bitrate of each spatial and temporal layer, for the allocator.
    pub meter: LayerMeter,
    /// Picture size of each layer, from its last VP8 keyframe.
    pub sizes: [Option<(u16, u16)>; MAX_LAYERS],
    /// When a keyframe of each layer was last seen.
    pub keyframe_seen: [Option<Instant>; MAX_LAYERS],
    /// Since when a requested keyframe of each layer has not come (cleared by a keyframe).
    pub keyframe_awaited: [Option<Instant>; MAX_LAYERS],
    /// The publisher's RED payload type for this (audio) track, if it negotiated RED.
    pub red_pt: Option<u8>,
    /// The Opus cap told to the publisher of this (audio) track (`audio_rate.rs`).
    pub audio_rate: crate::audio_rate::AudioRate,
    /// Dynacast: what the publisher was last told to send (`dynacast.rs`).
    pub dynacast: crate::dynacast::Dynacast,
    /// Problems already logged for this track (log once): bit per [`LogOnce`].
    pub logged: u8,
    /// Since when each layer has flowed without a restart, and how long a restarted layer must
    /// flow before it is offered to the allocator ([`FIRST_SETTLE`]).
    pub flowing_since: [Option<Instant>; MAX_LAYERS],
    pub settle: [Duration; MAX_LAYERS],
    /// The publisher named this video m-line a screen share (`screen.rs`).
    pub screen: bool,
}

/// A publisher-side problem logged once per track.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum LogOnce {
    NoKeyframe = 1,
}

/// A keyframe awaited this long is considered not coming: subscribers waiting for it fall back
/// to a layer that does send keyframes, and the publisher is logged once.
pub const KEYFRAME_STARVED: Duration = Duration::from_secs(3);
/// A layer silent this long has paused (and a keyframe request made meanwhile was unanswerable).
/// Also how long a layer may be silent while one below it keeps flowing before its subscribers
/// are moved down ([`TrackIn::effective_layer`]).
pub const LAYER_GAP: Duration = Duration::from_millis(500);
/// A layer with a packet this recent is flowing now (15 fps: a frame every 67 ms).
pub const LAYER_LIVE: Duration = Duration::from_millis(200);

/// For this long after a track's first packet, a layer it declared but has not sent yet is
/// waited for rather than replaced by a higher one: a browser starts its simulcast encodings
/// within milliseconds of each other, and whichever packet comes first must not decide that a
/// new subscriber on a 60 kbit/s link starts with the 720p keyframe.
pub const LAYER_START_WAIT: Duration = Duration::from_secs(1);

/// How long a starved layer is avoided before it is tried again.
pub const STARVED_RETRY: Duration = Duration::from_secs(10);

/// A layer silent this long and then back has restarted.
pub const LAYER_RESTART_GAP: Duration = Duration::from_secs(1);
/// A layer above the lowest that the publisher stopped on its own (not told to by dynacast, the
/// rest of the track flowing) and restarted is not
/// offered to the allocator until it has flowed this long again, doubling with each further
/// such restart up to [`MAX_SETTLE`], and forgiven after [`SETTLE_FORGIVEN`] of continuous flow.
/// A browser drops its top encoding when its own uplink estimate cannot carry it and restarts
/// it when the estimate recovers: on a weak 3G uplink that flaps every 10-40 s, and every
/// upgrade into the restarted layer was a keyframe and, at the next drop, a freeze for each
/// subscriber on it (browser-quality weak-publisher-uplink, 2026-12-04: 720p on and off four
/// times in two minutes, 4.4 % frozen against the direct call's 2.6 %).
pub const FIRST_SETTLE: Duration = Duration::from_secs(8);
pub const MAX_SETTLE: Duration = Duration::from_secs(64);
pub const SETTLE_FORGIVEN: Duration = Duration::from_secs(60);

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
            first_packet: None,
            last_keyframe_request: [None; MAX_LAYERS],
            meter: LayerMeter::default(),
            sizes: [None; MAX_LAYERS],
            keyframe_seen: [None; MAX_LAYERS],
            keyframe_awaited: [None; MAX_LAYERS],
            red_pt: None,
            audio_rate: crate::audio_rate::AudioRate::default(),
            dynacast: crate::dynacast::Dynacast::new(),
            logged: 0,
            flowing_since: [None; MAX_LAYERS],
            settle: [Duration::ZERO; MAX_LAYERS],
            screen: false,
        }
    }

    /// Number of spatial layers (1 without simulcast).
    pub fn layer_count(&self) -> u8 {
        self.rids.len().clamp(1, MAX_LAYERS) as u8
    }

    /// A packet of `layer` arrived. A layer that (re)starts flowing after a gap has had no chance
    /// to answer keyframe requests made while it was stopped: its wait starts over.
    pub fn on_packet(&mut self, layer: u8, now: Instant) {
        let l = usize::from(layer).min(MAX_LAYERS - 1);
        let continuous = self.seen[l].is_some_and(|t| now.saturating_duration_since(t) < LAYER_GAP);
        if !continuous {
            self.keyframe_awaited[l] = None;
        }
        if let Some(last) = self.seen[l]
            && self.kind == MediaKind::Video
            && now.saturating_duration_since(last) >= LAYER_GAP
        {
            tracing::debug!(
                mid = %self.mid,
                layer,
                gap_ms = now.saturating_duration_since(last).as_millis() as u64,
                "video layer resumes after a gap"
            );
        }
        match self.seen[l] {
            Some(last) if now.saturating_duration_since(last) >= LAYER_RESTART_GAP => {
                // Told to stop or start meanwhile (dynacast's doing), or the whole track
                // stopped (a camera turned off): not the publisher's uplink.
                let told = self.dynacast.toggled_at[l].is_some_and(|t| t >= last);
                let whole = l > 0 && self.flowing_since[0].is_some_and(|t| t >= last);
                self.settle[l] = if told || whole || l == 0 {
                    Duration::ZERO
                } else if self.settle[l].is_zero() {
                    FIRST_SETTLE
                } else {
                    (self.settle[l] * 2).min(MAX_SETTLE)
                };
                self.flowing_since[l] = Some(now);
            }
            Some(_) => {
                if self.flowing_since[l]
                    .is_some_and(|t| now.saturating_duration_since(t) >= SETTLE_FORGIVEN)
                {
                    self.settle[l] = Duration::ZERO;
                }
            }
            None => self.flowing_since[l] = Some(now),
        }
        self.seen[l] = Some(now);
        self.first_packet.get_or_insert(now);
    }

    /// Whether layer `l` has flowed long enough since the publisher last restarted it on its own
    /// to be offered to the allocator ([`FIRST_SETTLE`]).
    pub fn settled(&self, l: usize, now: Instant) -> bool {
        if l == 0 || self.kind != MediaKind::Video || self.rids.len() < 2 {
            return true;
        }
        match (
            self.flowing_since.get(l).copied().flatten(),
            self.settle.get(l),
        ) {
            (Some(since), Some(settle)) => now.saturating_duration_since(since) >= *settle,
            _ => true,
        }
    }

    /// A starved layer is given another chance after [`STARVED_RETRY`]: subscribers may target
    /// it again, and its keyframe wait starts over.
    pub fn expire_starvation(&mut self, now: Instant) {
        for a in &mut self.keyframe_awaited {
            if a.is_some_and(|t| {
                now.saturating_duration_since(t) >= KEYFRAME_STARVED + STARVED_RETRY
            }) {
                *a = None;
            }
        }
    }

    /// A keyframe of `layer` arrived.
    pub fn on_keyframe(&mut self, layer: u8, now: Instant) {
        let l = usize::from(layer).min(MAX_LAYERS - 1);
        self.keyframe_seen[l] = Some(now);
        self.keyframe_awaited[l] = None;
    }

    /// Whether keyframes of `layer` were asked for and have not come for [`KEYFRAME_STARVED`].
    pub fn starved(&self, layer: usize, now: Instant) -> bool {
        self.keyframe_awaited
            .get(layer)
            .copied()
            .flatten()
            .is_some_and(|t| now.saturating_duration_since(t) >= KEYFRAME_STARVED)
    }

    /// Marks a problem as logged; true the first time.
    pub fn log_once(&mut self, what: LogOnce) -> bool {
        let bit = what as u8;
        let first = self.logged & bit == 0;
        self.logged |= bit;
        first
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
    /// Layers whose keyframes do not come are avoided while another layer flows; a declared layer
    /// at or below `desired` that has not sent yet is waited for during [`LAYER_START_WAIT`].
    ///
    /// A layer silent for [`LAYER_GAP`] while one below it flows now ([`LAYER_LIVE`]) has
    /// stopped at the publisher, not on the way: one camera's encodings are captured together
    /// and leave through one pacer and one uplink, so packets of the lower one still arriving
    /// rule the path out. A browser on a weak uplink stops its top encoding (or drops its
    /// frames) for a moment as its own estimate dips; waiting [`LAYER_TIMEOUT`] for it left its
    /// subscribers on a frozen picture for 2 s each time (browser-quality
    /// weak-publisher-uplink, 2026-12-07: three freezes of 1-2 s on 720p or 360p with the next
    /// layer down flowing).
    pub fn effective_layer(&self, desired: u8, now: Instant) -> u8 {
        let silent_for = |l: usize| self.seen[l].map(|t| now.saturating_duration_since(t));
        let flowing = |l: usize| silent_for(l).is_some_and(|d| d < LAYER_TIMEOUT);
        let healthy = (0..MAX_LAYERS).any(|l| flowing(l) && !self.starved(l, now));
        let stalled = |l: usize| {
            silent_for(l).is_some_and(|d| d >= LAYER_GAP)
                && (0..l)
                    .any(|k| silent_for(k).is_some_and(|d| d < LAYER_LIVE) && !self.starved(k, now))
        };
        // A layer the publisher restarted on its own is not forwarded before it has settled
        // while a settled one below it flows: the allocator does not offer it then
        // (`adapt.rs`), but after a gap just over a second (the meter calls a layer gone after
        // two silent half-second windows) it may not have taken it back yet either, and
        // forwarding the restart's keyframe meant a switch up and, at the allocator's next
        // pass, one back down with a keyframe of the layer below.
        let usable = |l: usize| flowing(l) && !stalled(l) && !(healthy && self.starved(l, now));
        let alive = |l: usize| usable(l) && self.settled(l, now);
        let top = usize::from(desired).min(MAX_LAYERS - 1);
        if let Some(l) = (0..=top)
            .rev()
            .find(|&l| alive(l))
            .or_else(|| (0..=top).rev().find(|&l| usable(l)))
        {
            return l as u8;
        }
        let starting = self
            .first_packet
            .is_none_or(|t| now.saturating_duration_since(t) < LAYER_START_WAIT);
        let declared = usize::from(self.layer_count());
        if starting && (0..=top.min(declared - 1)).any(|l| self.seen[l].is_none()) {
            return desired;
        }
        (top + 1..MAX_LAYERS)
            .find(|&l| usable(l))
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
    /// How the subscriber last said it shows this video (`video_view`), if it did.
    pub view: Option<kham_proto::VideoViewSize>,
    /// Audio: RED towards this subscriber (`red.rs`), with the last primary payload sent.
    pub red: RedOut,
    /// The publisher's screen share (`screen.rs`), told to the subscriber in `TrackInfo`.
    pub screen: bool,
}

/// RED state of one audio track towards one subscriber.
#[derive(Debug, Default)]
pub struct RedOut {
    /// The subscriber's RED payload type, if it negotiated RED.
    pub pt: Option<u8>,
    /// The previous packet's primary payload and output timestamp (reused buffer).
    pub prev: Vec<u8>,
    pub prev_ts: Option<u32>,
    /// Where the RED payload is built before its single copy into the packet (reused buffer).
    pub scratch: Vec<u8>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A video track with three simulcast layers.
    fn simulcast() -> TrackIn {
        TrackIn::new(
            Mid::from("1"),
            MediaKind::Video,
            vec!["q".into(), "h".into(), "f".into()],
        )
    }

    #[test]
    fn a_layer_without_keyframes_is_avoided_then_retried() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = simulcast();
        for ms in (0..4000).step_by(100) {
            for l in 0..3 {
                t.on_packet(l, at(ms));
            }
        }
        t.on_keyframe(0, at(0));
        // Keyframes of layer 2 were asked for at 500 ms and never came.
        t.keyframe_awaited[2] = Some(at(500));
        assert_eq!(t.effective_layer(2, at(3000)), 2, "still waiting");
        assert_eq!(
            t.effective_layer(2, at(3600)),
            1,
            "starved: the next layer down"
        );
        // Every layer starved: better the wanted one than nothing.
        t.keyframe_awaited = [Some(at(0)); MAX_LAYERS];
        assert_eq!(t.effective_layer(2, at(3900)), 2);
        // Starvation expires and the layer is tried again.
        t.keyframe_awaited = [None, None, Some(at(500))];
        t.expire_starvation(at(500) + KEYFRAME_STARVED + STARVED_RETRY);
        assert_eq!(t.keyframe_awaited[2], None);
    }

    #[test]
    fn a_layer_the_publisher_keeps_dropping_must_settle_before_it_is_offered_again() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = simulcast();
        // Send layers 0..=top every 100 ms over [from, to).
        let send = |t: &mut TrackIn, from: u64, to: u64, top: u8| {
            for ms in (from..to).step_by(100) {
                for l in 0..=top {
                    t.on_packet(l, at(ms));
                }
            }
        };
        send(&mut t, 0, 5_000, 2);
        assert!(t.settled(2, at(5_000)), "a first start is not a flap");
        // The browser drops 720p for 3 s on its own and restarts it: 8 s to settle...
        send(&mut t, 5_000, 8_000, 1);
        send(&mut t, 8_000, 10_000, 2);
        assert!(!t.settled(2, at(10_000)));
        assert!(t.settled(1, at(10_000)) && t.settled(0, at(10_000)));
        send(&mut t, 10_000, 16_000, 2);
        assert!(t.settled(2, at(16_000)));
        // ...twice as long after the next drop.
        send(&mut t, 16_000, 19_000, 1);
        send(&mut t, 19_000, 34_000, 2);
        assert!(!t.settled(2, at(34_000)));
        send(&mut t, 34_000, 35_100, 2);
        assert!(t.settled(2, at(35_100)));
        // Stopped and restarted because dynacast said so: offered at once.
        send(&mut t, 35_100, 38_000, 1);
        t.dynacast.toggled_at[2] = Some(at(37_000));
        send(&mut t, 38_000, 38_500, 2);
        assert!(t.settled(2, at(38_500)));
        // The whole track stopped (a camera off) and came back: no flap either.
        send(&mut t, 45_000, 46_000, 2);
        assert!(t.settled(2, at(46_000)));
    }

    #[test]
    fn a_layer_silent_while_the_one_below_flows_is_left_at_once() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = simulcast();
        let send = |t: &mut TrackIn, from: u64, to: u64, layers: &[u8]| {
            for ms in (from..to).step_by(66) {
                for &l in layers {
                    t.on_packet(l, at(ms));
                }
            }
        };
        send(&mut t, 0, 3000, &[0, 1, 2]);
        // 720p stops at 3 s; 360p and 180p go on.
        send(&mut t, 3000, 3900, &[0, 1]);
        assert_eq!(
            t.effective_layer(2, at(3300)),
            2,
            "a few frames late: not yet"
        );
        assert_eq!(
            t.effective_layer(2, at(3600)),
            1,
            "silent 0.6 s, 360p flowing"
        );
        // Back within a second (its encoder dropped frames, not a restart): forwarded again.
        t.on_packet(2, at(3900));
        assert_eq!(t.effective_layer(2, at(3910)), 2);
        // Everything silent (the uplink itself, an outage): no layer is left for another.
        assert_eq!(t.effective_layer(2, at(4600)), 2);
        // 360p stops too while 180p flows: down to 180p.
        send(&mut t, 4000, 5000, &[0]);
        assert_eq!(t.effective_layer(2, at(4990)), 0);
        assert_eq!(t.effective_layer(1, at(4990)), 0);
        // Both restart after more than a second: not forwarded until they have settled.
        send(&mut t, 5000, 5100, &[0, 1, 2]);
        assert_eq!(t.effective_layer(2, at(5100)), 0);
        let settled_at = 5000 + FIRST_SETTLE.as_millis() as u64 + 100;
        send(&mut t, 5100, settled_at, &[0, 1, 2]);
        assert_eq!(t.effective_layer(2, at(settled_at)), 2);
    }

    #[test]
    fn a_new_track_waits_briefly_for_its_lowest_layer() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut t = simulcast();
        // The top encoding's first packet comes first: a subscriber wanting the lowest waits.
        t.on_packet(2, at(0));
        assert_eq!(t.effective_layer(0, at(10)), 0, "q is coming");
        assert_eq!(t.effective_layer(2, at(10)), 2, "f itself flows");
        t.on_packet(0, at(20));
        assert_eq!(t.effective_layer(0, at(30)), 0);
        // A declared layer that never comes is not waited for past the start.
        let mut u = TrackIn::new(
            Mid::from("2"),
            MediaKind::Video,
            vec!["q".into(), "h".into(), "f".into()],
        );
        for ms in (0..2000).step_by(100) {
            u.on_packet(2, at(ms));
        }
        assert_eq!(u.effective_layer(0, at(500)), 0, "still starting");
        assert_eq!(
            u.effective_layer(0, at(1900)),
            2,
            "q never came: the layer that flows"
        );
    }

    #[test]
    fn a_layer_that_resumes_waits_afresh() {
        let t0 = Instant::now();
        let mut t = TrackIn::new(
            Mid::from("1"),
            MediaKind::Video,
            vec!["q".into(), "h".into()],
        );
        t.on_packet(1, t0);
        // Asked for while it was flowing, then it stopped for longer than LAYER_TIMEOUT.
        t.keyframe_awaited[1] = Some(t0);
        let back = t0 + LAYER_GAP + Duration::from_secs(5);
        t.on_packet(1, back);
        assert_eq!(t.keyframe_awaited[1], None);
        assert!(!t.starved(1, back + Duration::from_secs(1)));
    }
}
