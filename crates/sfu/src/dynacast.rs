//! Dynacast: what each publisher's simulcast encoder should send, told to its browser
//! (`publish_layers`, applied with `RTCRtpSender.setParameters`).
//!
//! Three rules, per published video:
//!
//! - **Needed layers.** A layer is needed up to the largest `max_spatial` (tile size) among the
//!   subscribers that show the video; nothing is needed when nobody shows it. A needed layer is
//!   resumed at once; an unneeded one is paused after [`PAUSE_AFTER`], so a tile briefly resized
//!   does not toggle the encoder. A station on 3G does not upload a 720p layer nobody shows.
//! - **The encoder follows the best link.** Above the lowest layer, only layers the strongest
//!   subscriber's budget can carry are sent (a layer starts once the budget covers its minimum
//!   with a margin and stops after it has not for [`PAUSE_AFTER`]), and each one sent is capped
//!   at the best budget of the subscribers that receive it or could upgrade into it
//!   ([`follow_cap`]): in a 1:1 consult the encoding forwarded then runs at what the
//!   subscriber's link carries, adapting continuously as a direct call's encoder does, instead of
//!   the subscriber jumping between three fixed rates (until 2026-12-03 only the top encoding
//!   followed, so a subscriber whose budget lay between two layers' default rates stayed on the
//!   lowest). The cap never exceeds what the encoding's resolution can use (libwebrtc's maximum
//!   for it).
//! - **A video floor that fits.** When a subscriber that shows the video is on the lowest layer
//!   or paused for bandwidth, and its budget cannot carry the lowest layer as the publisher sends
//!   it, the lowest encoding is shaped down to fit that budget with all of its temporal layers
//!   ([`floor_fit`]; down to [`FLOOR_MIN_BPS`], Chrome's own minimum for small encodings), with
//!   smaller pictures at the bottom (the allocator may still drop temporal layers, which costs
//!   the publisher no keyframe), so video pauses only when even that does not fit beside the
//!   audio. The floor is lowered after
//!   [`FLOOR_LOWER_AFTER`] of need, raised as the weakest budget grows, and lifted after
//!   [`FLOOR_LIFT_AFTER`] without need.
//!
//! A video sent as one encoding (a screen share) has no layers to choose from: its one encoding
//! follows the weakest subscriber showing it ([`single`]).
//!
//! A client that ignores these messages (or cannot apply them) keeps its own encodings: the
//! allocator works from measured layer rates, so nothing depends on being obeyed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use kham_bwe::{Kind, Reason};
use kham_proto::LayerActive;
use str0m::media::MediaKind;

use crate::peer::Peer;
use crate::room::RoomEvent;
use crate::track::{MAX_LAYERS, TrackIn};

mod single;

/// An unneeded layer keeps flowing this long before the publisher is told to stop it.
pub const PAUSE_AFTER: Duration = Duration::from_secs(3);
/// A layer no subscriber's link can carry keeps flowing this long before it is stopped: an
/// estimate that is only application-limited (audio-only for a while, or the start of a call)
/// must not stop the layers a probe is about to show the link can carry.
pub const UNAFFORDABLE_PAUSE_AFTER: Duration = Duration::from_secs(10);
/// The lowest encoding is never shaped below this (libwebrtc's minimum for 180p and below).
pub const FLOOR_MIN_BPS: u64 = 30_000;
/// A floor is applied (or lowered) once needed this long...
pub const FLOOR_LOWER_AFTER: Duration = Duration::from_secs(1);
/// ...and lifted after this long without need.
pub const FLOOR_LIFT_AFTER: Duration = Duration::from_secs(10);
/// Limits are re-sent at most this often for rate changes (starting or stopping a layer is
/// sent at once).
const RESEND_AFTER: Duration = Duration::from_secs(1);
/// A cap changes only when it moves by more than this share.
const CAP_CHANGE: f64 = 0.15;
/// A cap is raised at most this often, and only by more than [`RAISE_CHANGE`]: in Chromium
/// raising an encoding's `maxBitrate` usually re-initialises the simulcast encoder, a keyframe
/// on every encoding (6 of 8 raises, 0 of 8 cuts: `benches/browser/keyframe-costs.mjs`), so a
/// cap that followed every rise of a fluctuating link put a keyframe on every subscriber's link
/// every second or two (`KEYFRAME COSTS`). Cuts stay prompt: they are free and they are what
/// keeps a layer inside a link that shrank.
const RAISE_AFTER: Duration = Duration::from_secs(8);
const RAISE_CHANGE: f64 = 0.3;
/// A layer above the lowest starts once the best budget covers its minimum by this factor.
const START_MARGIN: f64 = 1.3;
/// The top layer's cap is this share of the best subscriber's budget for the video while some
/// subscriber receives it: the allocator keeps its up-switch headroom
/// (`kham_bwe::AllocatorConfig::up_headroom`)...
const FOLLOW_SHARE: f64 = 0.85;
/// ...and this share while nobody does yet, so that the upgrade into it fits the allocator's
/// spatial headroom (`spatial_up_headroom` 0.75 of the estimate, the budget being 0.95 of it);
/// once forwarded it grows to `FOLLOW_SHARE`.
const ENTRY_SHARE: f64 = 0.7;
/// Below this floor the lowest encoding also sends smaller pictures (scale 8: 90p)... (50
/// kbit/s until 2026-12-06, when the floor moved from the budget at `headroom` to [`floor_fit`],
/// about a fifth lower for the same link: 40 keeps 90p to about the same links, and a direct
/// call's encoder keeps 180p down to 40-60 kbit/s.)
const FLOOR_SMALL_BELOW: u64 = 40_000;
/// ...until the floor is lifted or back above this: a change of scale re-initialises
/// Chromium's VP8 simulcast encoder, a keyframe on every encoding (measured: see
/// `KEYFRAME COSTS` below), so it must not follow every move of the weakest link.
const FLOOR_FULL_SIZE_FROM: u64 = 100_000;

// KEYFRAME COSTS. What a `setParameters` change costs in Chromium (headless Chromium on this
// machine, 2026-12-04, a publisher in a kham room with adaptation off, `keyFramesEncoded` of
// each encoding 2.5 s after each change): `maxBitrate` of any encoding, up or down, costs
// nothing; a `maxFramerate` on one encoding that differs from the others', a
// `scaleResolutionDownBy` change, and any encoding turned on or off each cost one keyframe on
// every active encoding (libwebrtc's `RequiresEncoderReset`). Until 2026-12-04 the floor also
// set `maxFramerate` 15 below 80 kbit/s: each floor move across it reset the encoder, a
// subscriber on the lowest layer of a weak link received a keyframe it could not afford, and
// (seen in the same measurement) every encoding's frame rate fell to the limit, 720p included. The
// server lowers the frame rate itself now (the allocator drops temporal layers), which costs
// nothing at the publisher.

/// What an encoding is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EncodingLimits {
    pub active: bool,
    pub max_bitrate: Option<u32>,
    pub max_framerate: Option<f32>,
    pub scale_resolution_down_by: Option<f32>,
}

/// Per published video: what was last told, and the floor's hysteresis.
#[derive(Debug, Clone, Default)]
pub struct Dynacast {
    pub sent: [EncodingLimits; MAX_LAYERS],
    /// When each encoding was last told to start or stop (a restart that follows is ours).
    pub toggled_at: [Option<Instant>; MAX_LAYERS],
    sent_at: Option<Instant>,
    /// When a cap was last raised (see [`RAISE_AFTER`]).
    raised_at: Option<Instant>,
    /// Since when each layer has been unneeded (not shown), or unaffordable.
    unneeded_since: [Option<Instant>; MAX_LAYERS],
    unaffordable_since: [Option<Instant>; MAX_LAYERS],
    /// Layers stopped because no link could carry them (not because nobody shows them).
    unaffordable: [bool; MAX_LAYERS],
    floor: Option<u64>,
    /// Whether the floor sends small pictures (`FLOOR_SMALL_BELOW`, sticky).
    small: bool,
    floor_wanted_since: Option<Instant>,
    floor_unneeded_since: Option<Instant>,
}

impl Dynacast {
    pub fn new() -> Self {
        Dynacast {
            sent: [EncodingLimits {
                active: true,
                ..EncodingLimits::default()
            }; MAX_LAYERS],
            ..Dynacast::default()
        }
    }

    /// Whether the publisher was told to send layer `l`.
    pub fn active(&self, l: usize) -> bool {
        self.sent.get(l).is_some_and(|e| e.active)
    }
}

/// What one subscriber wants of one published video.
#[derive(Debug, Clone, Copy)]
struct Want {
    max_spatial: u8,
    /// The subscriber's budget for this video (its video budget less its other videos).
    budget_bps: u64,
    /// The highest such budget of the last few seconds (the layers to keep flowing), or
    /// `u64::MAX` while its estimate is too young to tell.
    peak_bps: u64,
    /// What the lowest encoding may cost for this subscriber to receive all of its temporal
    /// layers ([`floor_fit`]), `u64::MAX` while its estimate is unknown.
    floor_bps: u64,
    /// On the lowest layer or paused for bandwidth: the floor matters to it.
    at_floor: bool,
    /// The spatial layer it receives now.
    on_layer: Option<u8>,
}

/// Updates every simulcast track's encodings; queues `publish_layers` for those changed.
pub(crate) fn update(now: Instant, peers: &mut [Peer], events: &mut VecDeque<RoomEvent>) {
    for i in 0..peers.len() {
        for ti in 0..peers[i].tracks_in.len() {
            let (publisher, mid, count, simulcast) = {
                let t = &peers[i].tracks_in[ti];
                if t.kind != MediaKind::Video {
                    continue;
                }
                (
                    peers[i].id.clone(),
                    t.mid,
                    t.layer_count(),
                    t.rids.len() >= 2,
                )
            };
            let wants: Vec<Want> = peers
                .iter()
                .enumerate()
                .filter(|(j, p)| *j != i && p.perms.subscribe && !p.adapt.audio_only)
                .flat_map(|(_, p)| {
                    p.tracks_out
                        .iter()
                        .filter(|t| {
                            t.publisher == publisher && t.source_mid == mid && !t.gone && t.visible
                        })
                        .map(move |t| want_of(p, t.key, t.max_spatial.min(count - 1), simulcast))
                })
                .collect();
            let track = &mut peers[i].tracks_in[ti];
            let layers = if simulcast {
                decide(now, track, count, &wants)
            } else {
                single::decide(now, track, &wants)
            };
            if let Some(layers) = layers {
                tracing::debug!(%publisher, %mid, ?layers, "dynacast");
                events.push_back(RoomEvent::PublishLayers {
                    peer: publisher,
                    mid: mid.to_string(),
                    layers,
                });
            }
        }
    }
}

fn want_of(sub: &Peer, key: u32, max_spatial: u8, simulcast: bool) -> Want {
    let alloc = sub.adapt.allocation();
    let mine = alloc.decisions.iter().find(|d| d.key == key);
    // What the subscriber's other videos take: what they get now; for a single encoding (a
    // share, allocated first) only what their lowest layers cost, so that the share's bursts
    // fit the link beside the cameras' lowest layers rather than beside whatever the cameras
    // climbed to while the share was quiet.
    let others: u64 = alloc
        .decisions
        .iter()
        .filter(|d| d.key != key && d.kind != Kind::Audio)
        .map(|d| match sub.adapt.lowest_layer_bps(d.key) {
            Some(lowest) if !simulcast && d.layer.is_some() => d.bps.min(lowest),
            _ => d.bps,
        })
        .sum();
    let on_layer = mine.and_then(|d| d.layer).map(|l| l.spatial);
    let at_floor = match mine {
        Some(d) => match d.layer {
            Some(l) => l.spatial == 0,
            None => d.paused == Some(Reason::BandwidthDrop),
        },
        None => false,
    };
    // Before its first estimate a subscriber is not a reason to shape anything.
    let known = sub.adapt.estimate_bps.is_some();
    Want {
        max_spatial,
        budget_bps: if known {
            alloc.video_budget_bps.saturating_sub(others)
        } else {
            u64::MAX
        },
        floor_bps: if known {
            floor_fit(alloc.video_up_budget_bps.saturating_sub(others))
        } else {
            u64::MAX
        },
        peak_bps: match sub.adapt.budget_peak() {
            Some(p) if known => p.saturating_sub(others),
            _ => u64::MAX,
        },
        at_floor,
        on_layer,
    }
}

/// The encodings the publisher should send now; `Some` when the message must be sent.
fn decide(
    now: Instant,
    track: &mut TrackIn,
    count: u8,
    wants: &[Want],
) -> Option<Vec<LayerActive>> {
    let count = usize::from(count).min(MAX_LAYERS);
    let need = wants.iter().map(|w| w.max_spatial).max();
    let best = wants.iter().map(|w| w.budget_bps).max().unwrap_or(0);
    let best_peak = wants.iter().map(|w| w.peak_bps).max().unwrap_or(0);
    let d = &mut track.dynacast;
    let mut next = d.sent;

    // Which layers to send: those a tile needs, except (above the lowest) those no link has
    // been able to carry for a while. A layer shown again starts at once whatever the links
    // say (their estimates fell while nothing was sent); one stopped as unaffordable starts
    // again once the best link of the last seconds covers its minimum with a margin.
    for (l, enc) in next.iter_mut().enumerate().take(count) {
        let shown = need.is_some_and(|n| l <= usize::from(n));
        let min = min_bps(track.sizes[l], l);
        let affordable = l == 0 || best_peak >= min;
        if !shown {
            d.unaffordable_since[l] = None;
            let since = *d.unneeded_since[l].get_or_insert(now);
            if enc.active && now.saturating_duration_since(since) >= PAUSE_AFTER {
                enc.active = false;
                d.unaffordable[l] = false;
            }
            continue;
        }
        d.unneeded_since[l] = None;
        if !enc.active {
            let back = !d.unaffordable[l] || best_peak as f64 >= min as f64 * START_MARGIN;
            if back {
                enc.active = true;
                d.unaffordable[l] = false;
                d.unaffordable_since[l] = None;
            }
        } else if affordable {
            d.unaffordable_since[l] = None;
        } else {
            let since = *d.unaffordable_since[l].get_or_insert(now);
            if now.saturating_duration_since(since) >= UNAFFORDABLE_PAUSE_AFTER {
                enc.active = false;
                d.unaffordable[l] = true;
            }
        }
    }

    // Every layer above the lowest runs at the budget of those it serves (within what its
    // resolution can use); the lowest at its floor.
    for (l, enc) in next.iter_mut().enumerate().take(count) {
        enc.max_bitrate = None;
        if l > 0 && enc.active && best != u64::MAX {
            let cap = follow_cap(wants, l as u8);
            let (min, max) = (min_bps(track.sizes[l], l), max_bps(track.sizes[l], l));
            if cap < max {
                enc.max_bitrate = Some(cap.clamp(min, max) as u32);
            }
        }
    }
    let floor = floor(now, d, wants);
    next[0].max_bitrate = floor.map(|f| f as u32);
    d.small = match floor {
        Some(f) if f < FLOOR_SMALL_BELOW => true,
        Some(f) if f < FLOOR_FULL_SIZE_FROM => d.small,
        _ => false,
    };
    next[0].max_framerate = None;
    next[0].scale_resolution_down_by = d.small.then_some(8.0);

    // Raises wait (see RAISE_AFTER), unless the encoder is re-initialised anyway (a layer
    // turned on or off, a new scale): then they ride along.
    let resets = next.iter().zip(&d.sent).take(count).any(|(a, b)| {
        a.active != b.active || a.scale_resolution_down_by != b.scale_resolution_down_by
    });
    let raise_due = d
        .raised_at
        .is_none_or(|t| now.saturating_duration_since(t) >= RAISE_AFTER);
    let mut raised = false;
    for (n, s) in next.iter_mut().zip(&d.sent).take(count) {
        let up = match (n.max_bitrate, s.max_bitrate) {
            (None, Some(_)) => true,
            (Some(x), Some(y)) => f64::from(x) > f64::from(y),
            _ => false,
        };
        if !up || resets {
            raised |= up;
            continue;
        }
        let big = match (n.max_bitrate, s.max_bitrate) {
            (Some(x), Some(y)) => f64::from(x) > f64::from(y) * (1.0 + RAISE_CHANGE),
            _ => true,
        };
        if raise_due && big {
            raised = true;
        } else {
            n.max_bitrate = s.max_bitrate;
        }
    }

    keep_increasing(&mut next, count, &track.sizes);

    let changed_state = next.iter().zip(&d.sent).take(count).any(|(a, b)| {
        a.active != b.active
            || a.max_framerate != b.max_framerate
            || a.scale_resolution_down_by != b.scale_resolution_down_by
    });
    let changed_rate =
        next.iter()
            .zip(&d.sent)
            .take(count)
            .any(|(a, b)| match (a.max_bitrate, b.max_bitrate) {
                (Some(x), Some(y)) => {
                    f64::from(x).max(1.0) / f64::from(y).max(1.0) > 1.0 + CAP_CHANGE
                        || f64::from(y).max(1.0) / f64::from(x).max(1.0) > 1.0 + CAP_CHANGE
                }
                (x, y) => x != y,
            });
    let due = d
        .sent_at
        .is_none_or(|t| now.saturating_duration_since(t) >= RESEND_AFTER);
    if !(changed_state || changed_rate && due) {
        return None;
    }
    for (l, (a, b)) in next.iter().zip(&d.sent).enumerate().take(count) {
        if a.active != b.active {
            d.toggled_at[l] = Some(now);
        }
    }
    d.sent = next;
    d.sent_at = Some(now);
    if raised {
        d.raised_at = Some(now);
    }
    Some(
        track
            .rids
            .iter()
            .zip(next)
            .map(|(rid, e)| LayerActive {
                rid: rid.to_string(),
                active: e.active,
                max_bitrate: e.max_bitrate,
                max_framerate: e.max_framerate,
                scale_resolution_down_by: e.scale_resolution_down_by,
            })
            .collect(),
    )
}

/// Caps each active encoding above the lowest below the next active one's cap (by
/// [`CAP_CHANGE`]; never below its own minimum), after the raises were held back (the lowest
/// is the floor's).
///
/// Why: libwebrtc's simulcast rate allocator orders encodings by `maxBitrate` and gives what
/// is left to the last, so a middle encoding capped above the top one (its cut applied at
/// once, the top one's raise held for [`RAISE_AFTER`]) sends more than the top one; the
/// allocator's ladder keeps only layers that cost more than the one below, so the top layer
/// vanished from it and its subscriber was sent down (`layer_gone`). Simulator, rtt-150ms
/// (1 Mbit/s): 360p capped at 658 kbit/s and sent at 690 while 720p was held at 600, the
/// subscriber back on 360p two seconds after each upgrade.
fn keep_increasing(
    next: &mut [EncodingLimits; MAX_LAYERS],
    count: usize,
    sizes: &[Option<(u16, u16)>],
) {
    let mut above: Option<u64> = None;
    for l in (1..count.min(MAX_LAYERS)).rev() {
        let size = sizes.get(l).copied().flatten();
        let enc = &mut next[l];
        if !enc.active {
            continue;
        }
        if let Some(limit) = above {
            let own = enc.max_bitrate.map_or(max_bps(size, l), u64::from);
            let bound = ((limit as f64 / (1.0 + CAP_CHANGE)) as u64).max(min_bps(size, l));
            if own > bound {
                enc.max_bitrate = Some(bound as u32);
            }
        }
        above = Some(enc.max_bitrate.map_or(max_bps(size, l), u64::from));
    }
}

/// What encoding `l` (above the lowest) may use: the most that a subscriber receiving it (or a
/// higher one) can carry at [`FOLLOW_SHARE`] of its budget, or one below it could upgrade into
/// at [`ENTRY_SHARE`]. Every active layer follows, not only the top one: in a 1:1 consult on a
/// link between two layers' default rates (a 600 kbit/s budget: 180p at 150 kbit/s, 360p at
/// 500-700) the middle layer is shaped to fit and forwarded, instead of the subscriber staying
/// on the lowest at a third of its link. A layer some strong subscriber receives is not capped
/// (its budget is above what the layer can use).
fn follow_cap(wants: &[Want], l: u8) -> u64 {
    wants
        .iter()
        .map(|w| {
            let share = match w.on_layer {
                Some(on) if on >= l => FOLLOW_SHARE,
                _ => ENTRY_SHARE,
            };
            (w.budget_bps as f64 * share) as u64
        })
        .max()
        .unwrap_or(u64::MAX)
}

/// What `track` would send for a tile that needs layers up to `max_spatial` if it were not
/// shaped for the links (`kham_bwe::TrackInput::unshaped_bps`): the top needed layer's
/// resolution maximum while that layer is capped, its restart rate ([`START_MARGIN`] x its
/// minimum) while it is stopped as unaffordable, the lowest layer's default while the floor
/// shapes it. `None` when nothing is shaped (the measured rates are the truth).
///
/// Why: each of those shapes follows the subscribers' estimates, and the allocator's `desired`
/// followed the measured rates, so nothing asked the estimator for more than the shaped encoder
/// sent. Behind a 2 Mbit/s link (browser-quality, step-2M-300k-2M, 2026-12-04c) the estimate
/// stayed at 959 kbit/s for 25 s, the 720p encoding capped at 774 and sending 650, while the
/// direct call took 1.5-1.8 Mbit/s; with a 5 Mbit/s subscriber behind a publisher on 3G the
/// estimate stayed at 444 kbit/s for 80 s with the 720p encoding stopped.
pub fn unshaped_bps(track: &TrackIn, max_spatial: u8) -> Option<u64> {
    if track.kind != MediaKind::Video {
        return None;
    }
    if track.rids.len() < 2 {
        return single::unshaped_bps(track);
    }
    let count = usize::from(track.layer_count());
    let top = usize::from(max_spatial).min(count - 1);
    let d = &track.dynacast;
    let sent = d.sent[top];
    let size = track.sizes[top];
    if !sent.active {
        return d.unaffordable[top].then(|| (min_bps(size, top) as f64 * START_MARGIN) as u64);
    }
    sent.max_bitrate.map(|_| {
        if top == 0 {
            default_floor_bps()
        } else {
            max_bps(size, top)
        }
    })
}

/// The cap the lowest encoding of a video was told (a simulcast video's floor, a single
/// encoding's cap), if any (`kham_bwe::TrackInput::lowest_cap_bps`).
pub fn lowest_cap_bps(track: &TrackIn) -> Option<u64> {
    if track.kind != MediaKind::Video {
        return None;
    }
    let sent = track.dynacast.sent[0];
    sent.active
        .then_some(sent.max_bitrate)
        .flatten()
        .map(u64::from)
}

/// The lowest encoding's bitrate cap, with its hysteresis; `None` = the client's default.
fn floor(now: Instant, d: &mut Dynacast, wants: &[Want]) -> Option<u64> {
    // What the weakest subscriber at the floor can carry.
    let wanted = wants
        .iter()
        // Only where the budget at `headroom` cannot carry the unshaped lowest layer (what
        // decided it before `floor_fit`): a floor applied for a budget just above that, at the
        // start of a call whose first estimates are low, stays for `FLOOR_LIFT_AFTER` after
        // the estimate grew, and in the simulator (rtt-50ms, 4 seeds) cost the climb a third
        // of its height.
        .filter(|w| w.at_floor && w.budget_bps < default_floor_bps() && w.floor_bps != u64::MAX)
        .map(|w| w.floor_bps.max(FLOOR_MIN_BPS))
        .min()
        .filter(|&b| d.floor.is_some_and(|f| b < f) || b < default_floor_bps());
    match wanted {
        Some(w) => {
            d.floor_unneeded_since = None;
            let since = *d.floor_wanted_since.get_or_insert(now);
            let lower = d
                .floor
                .is_none_or(|f| (w as f64) < f as f64 / (1.0 + CAP_CHANGE));
            let raise = d
                .floor
                .is_some_and(|f| w as f64 > f as f64 * (1.0 + CAP_CHANGE));
            if (lower && now.saturating_duration_since(since) >= FLOOR_LOWER_AFTER) || raise {
                d.floor = Some(w);
            }
        }
        None => {
            d.floor_wanted_since = None;
            if d.floor.is_some() {
                let since = *d.floor_unneeded_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= FLOOR_LIFT_AFTER {
                    d.floor = None;
                    d.floor_unneeded_since = None;
                }
            }
        }
    }
    d.floor
}

/// The floor for a subscriber whose budget for temporal upgrades (`up_headroom`, less its other
/// videos) is `up_budget_bps`: small enough that the allocator forwards every temporal layer of
/// the shaped encoding even when the floor's hysteresis ([`CAP_CHANGE`]) leaves it above the
/// budget. Until 2026-12-06 the floor followed the budget at `headroom`, which the temporal
/// upgrade (at the lower `up_headroom`) never fitted: a subscriber at the floor received its
/// base temporal layer only. On metro-7 in Chromium (65-110 kbit/s received) kham showed 90p at
/// 3-6 fps where the direct call showed 180p at 13-15 fps with the same bits: a direct call's
/// encoder at these rates keeps the frame rate and lowers the quality of each frame.
fn floor_fit(up_budget_bps: u64) -> u64 {
    (up_budget_bps as f64 / (1.0 + CAP_CHANGE)) as u64
}

/// What the lowest encoding sends when not shaped (the web client's 180p default).
fn default_floor_bps() -> u64 {
    150_000
}

/// libwebrtc's minimum bitrate for an encoding of this picture size (its simulcast table);
/// by layer index for a 720p camera while the size is unknown.
fn min_bps(size: Option<(u16, u16)>, layer: usize) -> u64 {
    match height(size, layer) {
        0..=180 => 30_000,
        181..=360 => 150_000,
        361..=540 => 350_000,
        541..=720 => 600_000,
        _ => 800_000,
    }
}

/// libwebrtc's maximum bitrate for an encoding of this picture size.
fn max_bps(size: Option<(u16, u16)>, layer: usize) -> u64 {
    match height(size, layer) {
        0..=180 => 200_000,
        181..=270 => 450_000,
        271..=360 => 700_000,
        361..=540 => 1_200_000,
        541..=720 => 2_500_000,
        _ => 4_000_000,
    }
}

fn height(size: Option<(u16, u16)>, layer: usize) -> u16 {
    size.map_or([180, 360, 720][layer.min(2)], |(w, h)| w.min(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::media::{Mid, Rid};

    fn track() -> TrackIn {
        TrackIn::new(
            Mid::from("v"),
            MediaKind::Video,
            vec![Rid::from("q"), Rid::from("h"), Rid::from("f")],
        )
    }

    fn want(max_spatial: u8, budget_bps: u64, at_floor: bool) -> Want {
        Want {
            max_spatial,
            budget_bps,
            // The floor's own rules are tested on the budget; `floor_fit` apart.
            floor_bps: budget_bps,
            peak_bps: budget_bps,
            at_floor,
            on_layer: Some(if at_floor { 0 } else { max_spatial }),
        }
    }

    /// A subscriber showing every layer, receiving `on`, with `budget_bps` for the video.
    fn want_on(on: u8, budget_bps: u64) -> Want {
        Want {
            on_layer: Some(on),
            ..want(2, budget_bps, false)
        }
    }

    fn run(t: &mut TrackIn, from: Instant, secs: u64, wants: &[Want]) -> Option<Vec<LayerActive>> {
        let mut last = None;
        for ms in (0..secs * 1000).step_by(200) {
            if let Some(l) = decide(from + Duration::from_millis(ms), t, 3, wants) {
                last = Some(l);
            }
        }
        last
    }

    #[test]
    fn a_strong_subscriber_gets_every_layer_with_default_limits() {
        let t0 = Instant::now();
        let mut t = track();
        // The defaults are what the client started with: nothing to say.
        assert!(run(&mut t, t0, 5, &[want(2, 5_000_000, false)]).is_none());
        assert!(
            t.dynacast
                .sent
                .iter()
                .all(|e| e.active && e.max_bitrate.is_none())
        );
    }

    #[test]
    fn the_top_encoding_follows_a_single_subscribers_budget() {
        let t0 = Instant::now();
        let mut t = track();
        // 500 kbit/s for video: 720p (min 600 k) stops once that lasted, 360p is capped below
        // the budget.
        let on_lowest = want_on(0, 500_000);
        let l = run(&mut t, t0, 11, &[on_lowest]).expect("message");
        assert!(!l[2].active);
        assert!(l[1].active);
        // Nobody receives 360p yet: capped lower, so the upgrade into it fits.
        assert_eq!(l[1].max_bitrate, Some(350_000));
        assert_eq!(l[0].max_bitrate, None);
        // The link grows: 720p starts again once 1.3 x its minimum fits, capped likewise.
        let l = run(
            &mut t,
            t0 + Duration::from_secs(11),
            2,
            &[want(2, 1_000_000, false)],
        )
        .expect("message");
        assert!(l[2].active);
        assert_eq!(l[2].max_bitrate, Some(850_000));
        assert_eq!(
            l[1].max_bitrate, None,
            "360p's maximum is below what a 1 Mbit/s budget allows"
        );
    }

    #[test]
    fn caps_are_cut_at_once_and_raised_rarely() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut t = track();
        let l = run(&mut t, t0, 2, &[want_on(2, 1_000_000)]).expect("message");
        assert_eq!(l[2].max_bitrate, Some(850_000));
        // The link shrinks: the cut goes out at once.
        let l = run(&mut t, at(2), 2, &[want_on(2, 800_000)]).expect("message");
        assert_eq!(l[2].max_bitrate, Some(680_000));
        // It grows back: the first raise goes out...
        let l = run(&mut t, at(4), 2, &[want_on(2, 1_200_000)]).expect("message");
        assert_eq!(l[2].max_bitrate, Some(1_020_000));
        // ...the next one waits RAISE_AFTER, a small one longer still.
        assert!(run(&mut t, at(6), 5, &[want_on(2, 2_000_000)]).is_none());
        let l = run(&mut t, at(11), 2, &[want_on(2, 2_000_000)]).expect("message");
        assert_eq!(l[2].max_bitrate, Some(1_700_000));
        assert!(run(&mut t, at(13), 10, &[want_on(2, 2_300_000)]).is_none());
    }

    #[test]
    fn what_a_shaped_encoding_would_send_unshaped_is_what_the_estimator_probes_for() {
        let t0 = Instant::now();
        let mut t = track();
        assert_eq!(unshaped_bps(&t, 2), None, "nothing shaped yet");
        // 500 kbit/s for video: 720p stopped as unaffordable, 360p capped.
        run(&mut t, t0, 11, &[want_on(1, 500_000)]).expect("message");
        assert!(!t.dynacast.sent[2].active);
        assert_eq!(
            unshaped_bps(&t, 2),
            Some(780_000),
            "720p's restart rate (1.3 x its minimum)"
        );
        assert_eq!(
            unshaped_bps(&t, 1),
            Some(700_000),
            "360p's maximum, for a tile that needs no more"
        );
        // A 1 Mbit/s budget: 720p runs, capped to it: its maximum is what probing aims at.
        run(
            &mut t,
            t0 + Duration::from_secs(11),
            2,
            &[want_on(2, 1_000_000)],
        )
        .expect("message");
        assert_eq!(t.dynacast.sent[2].max_bitrate, Some(850_000));
        assert_eq!(unshaped_bps(&t, 2), Some(2_500_000));
    }

    #[test]
    fn the_layer_a_single_subscriber_receives_follows_its_budget_too() {
        let t0 = Instant::now();
        let mut t = track();
        // 600 kbit/s for video, on 360p: 720p still flows (its minimum fits), and 360p, the
        // layer forwarded, is shaped to the budget rather than left at its default rate.
        let on_middle = want_on(1, 600_000);
        let l = run(&mut t, t0, 3, &[on_middle]).expect("message");
        assert!(l[2].active);
        assert_eq!(l[1].max_bitrate, Some(510_000));
        assert_eq!(l[2].max_bitrate, Some(600_000), "720p at its minimum");
        // A second subscriber on a strong link receiving 720p: 360p is no longer capped.
        let strong = want_on(2, 3_000_000);
        let l = run(&mut t, t0 + Duration::from_secs(3), 2, &[on_middle, strong]).expect("message");
        assert_eq!(l[1].max_bitrate, None);
        assert_eq!(l[2].max_bitrate, None);
    }

    #[test]
    fn a_lower_encoding_is_never_capped_above_the_one_above_it() {
        let t0 = Instant::now();
        let mut t = track();
        // On 360p with 800 kbit/s for video: 360p would follow at 680 k, while 720p, which
        // nobody receives, is held at its minimum (600 k). Sent as such, the browser's simulcast
        // allocator (ordered by maxBitrate) sends 360p above 720p, 720p drops out of the
        // allocator's ladder and the subscriber can never move up into it.
        let l = run(&mut t, t0, 3, &[want_on(1, 800_000)]).expect("message");
        assert_eq!(l[2].max_bitrate, Some(600_000));
        let h = l[1].max_bitrate.expect("360p capped");
        assert!(
            f64::from(h) * (1.0 + CAP_CHANGE) <= 600_000.0 + 1.0,
            "360p at {h} below 720p's 600 k"
        );
        // Layer by layer: only active encodings above count, the lowest is the floor's, and no
        // encoding is capped below its own minimum.
        let capped = |b: Option<u32>| EncodingLimits {
            active: true,
            max_bitrate: b,
            ..EncodingLimits::default()
        };
        let mut next = [capped(None), capped(None), capped(Some(400_000))];
        keep_increasing(&mut next, 3, &[None; 3]);
        assert_eq!(next[0].max_bitrate, None);
        assert_eq!(next[1].max_bitrate, Some(347_826));
        let mut next = [capped(None), capped(Some(658_000)), capped(Some(150_000))];
        next[2].active = false;
        keep_increasing(&mut next, 3, &[None; 3]);
        assert_eq!(next[1].max_bitrate, Some(658_000), "720p is not sent");
        let mut next = [capped(None), capped(None), capped(Some(160_000))];
        keep_increasing(&mut next, 3, &[None; 3]);
        assert_eq!(next[1].max_bitrate, Some(150_000), "360p's minimum");
    }

    /// A link that thins slowly (5 % a second, inside the floor's hysteresis) and one that
    /// wobbles: the floor, hysteresis included, never costs more than the subscriber's budget
    /// for temporal upgrades, so the allocator can forward every temporal layer of it.
    #[test]
    fn the_floor_always_fits_the_temporal_upgrade_budget() {
        let t0 = Instant::now();
        let mut t = track();
        let strong = want(2, 3_000_000, false);
        let mut up_budget = 140_000.0_f64;
        let mut floor = None;
        for s in 0..40u64 {
            up_budget *= if s < 25 {
                0.95
            } else if s % 2 == 0 {
                1.12
            } else {
                0.9
            };
            let b = up_budget as u64;
            let weak = Want {
                floor_bps: floor_fit(b),
                ..want(2, b, true)
            };
            if let Some(l) = run(&mut t, t0 + Duration::from_secs(s), 1, &[weak, strong]) {
                floor = l[0].max_bitrate;
            }
            if let Some(f) = floor {
                assert!(
                    u64::from(f) <= b.max(FLOOR_MIN_BPS),
                    "second {s}: floor {f} above the temporal budget {b}"
                );
            }
        }
        assert!(floor.is_some(), "the floor was applied");
    }

    #[test]
    fn the_floor_shapes_the_lowest_encoding_for_the_weakest_subscriber_and_lifts_later() {
        let t0 = Instant::now();
        let mut t = track();
        let weak = want(2, 60_000, true);
        let strong = want(2, 3_000_000, false);
        let l = run(&mut t, t0, 3, &[weak, strong]).expect("message");
        assert_eq!(l[0].max_bitrate, Some(60_000));
        assert_eq!(
            l[0].max_framerate, None,
            "a frame rate limit would reset the encoder"
        );
        assert_eq!(l[0].scale_resolution_down_by, None);
        assert!(l[2].active, "the strong subscriber still gets 720p");
        // Lower still: smaller pictures too, never under Chrome's minimum.
        let l = run(
            &mut t,
            t0 + Duration::from_secs(3),
            3,
            &[want(2, 10_000, true), strong],
        )
        .expect("message");
        assert_eq!(l[0].max_bitrate, Some(FLOOR_MIN_BPS as u32));
        assert_eq!(l[0].scale_resolution_down_by, Some(8.0));
        // A little better: the rate follows, the picture size stays (a new size is a keyframe on
        // every encoding).
        let l = run(
            &mut t,
            t0 + Duration::from_secs(6),
            2,
            &[want(2, 70_000, true), strong],
        )
        .expect("message");
        assert_eq!(l[0].max_bitrate, Some(70_000));
        assert_eq!(l[0].scale_resolution_down_by, Some(8.0));
        // The weak link recovers: the floor rises with it, then lifts after a quiet while.
        let l = run(
            &mut t,
            t0 + Duration::from_secs(8),
            2,
            &[want(2, 120_000, true), strong],
        )
        .expect("message");
        assert_eq!(l[0].max_bitrate, Some(120_000));
        assert_eq!(
            l[0].scale_resolution_down_by, None,
            "back above 100 kbit/s: full size"
        );
        assert!(
            run(
                &mut t,
                t0 + Duration::from_secs(10),
                5,
                &[want(2, 400_000, false), strong]
            )
            .is_none()
        );
        let l = run(
            &mut t,
            t0 + Duration::from_secs(15),
            8,
            &[want(2, 400_000, false), strong],
        )
        .expect("message");
        assert_eq!(l[0].max_bitrate, None);
    }

    #[test]
    fn nobody_shows_it_nothing_is_sent_and_it_resumes_at_once() {
        let t0 = Instant::now();
        let mut t = track();
        let l = run(&mut t, t0, 5, &[]).expect("message");
        assert!(l.iter().all(|e| !e.active));
        // A subscriber shows it again: resumed at once.
        let l = decide(
            t0 + Duration::from_secs(6),
            &mut t,
            3,
            &[want(0, 5_000_000, false)],
        )
        .expect("message");
        assert!(l[0].active && !l[1].active);
    }
}
