//! The per-subscriber policy: hysteresis, fast step-down, probe-confirmed step-up, pause and
//! resume, and the probing target for the estimator.

use std::time::{Duration, Instant};

use crate::input::{Kind, SubscriberInput, TrackInput};
use crate::layer::Layer;
use crate::plan::{Plan, plan, wants_video};

/// Estimate assumed for a subscriber that never sends transport feedback.
pub const UNLIMITED_BPS: u64 = 100_000_000;

/// Tuning of the policy. The defaults are what kham ships; the simulator measures them.
#[derive(Debug, Clone)]
pub struct AllocatorConfig {
    /// Share of the estimate used when choosing layers after a drop or at start.
    pub headroom: f64,
    /// Share of the estimate the allocation must fit in before an upgrade (below `headroom`:
    /// the gap is the hysteresis band in which a steady link changes nothing).
    pub up_headroom: f64,
    /// Estimate assumed before the estimator has one: low, so the first frames come from the
    /// lowest layer fast and probing raises it.
    pub initial_estimate_bps: u64,
    /// How long the estimate must cover an upgrade before it is made.
    pub up_hold: Duration,
    /// Upper bound of the hold after repeated failed upgrades.
    pub max_up_hold: Duration,
    /// A step-down this soon after an upgrade marks the upgrade as failed (hold doubles).
    pub failed_upgrade_window: Duration,
    /// After this long without a step-down the hold returns to `up_hold`.
    pub calm_after: Duration,
    /// No upgrades while the subscriber reports more loss than this.
    pub max_loss_for_upgrade: f32,
    /// Video is paused (audio only) when the estimate stays below this share of audio plus
    /// the lowest layers...
    pub pause_factor: f64,
    /// ...for this long. Until then, and at the start of a subscription, the lowest layer
    /// flows even above the estimate: an estimator that sees only audio (application-limited)
    /// would otherwise never learn that the link carries video.
    pub pause_wait: Duration,
    /// ...except when the estimate is below this share of audio plus the lowest layers: then
    /// video pauses after only `deep_pause_wait` (a transient dip of the estimator is not a
    /// 60 kbit/s link, but two seconds of video queued in front of the audio are too many).
    pub deep_pause_factor: f64,
    pub deep_pause_wait: Duration,
    /// A subscriber that has given no estimate this long after its first allocation sends no
    /// transport feedback at all (a client without TWCC): it is then not limited, since
    /// nothing would ever raise the initial estimate.
    pub no_estimate_grace: Duration,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        AllocatorConfig {
            headroom: 0.9,
            up_headroom: 0.8,
            initial_estimate_bps: 600_000,
            up_hold: Duration::from_millis(1000),
            max_up_hold: Duration::from_secs(6),
            failed_upgrade_window: Duration::from_secs(4),
            calm_after: Duration::from_secs(20),
            max_loss_for_upgrade: 0.12,
            no_estimate_grace: Duration::from_secs(5),
            pause_factor: 0.8,
            pause_wait: Duration::from_secs(2),
            deep_pause_factor: 0.5,
            deep_pause_wait: Duration::from_millis(500),
        }
    }
}

/// Why a track's layer changed (or why it is paused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// First allocation of a new subscription.
    Start,
    /// The estimate fell below what was being sent.
    BandwidthDrop,
    /// The estimate covered a higher allocation for the hold time.
    ProbeConfirmed,
    /// The tile got smaller or larger.
    TileSize,
    /// The tile is hidden (or became visible again).
    Hidden,
    /// The subscriber chose audio only (or stopped).
    AudioOnlyChosen,
    /// The layer stopped flowing from the publisher.
    LayerGone,
}

impl Reason {
    /// Every reason, in [`Reason::index`] order.
    pub const ALL: [Reason; 7] = [
        Reason::Start,
        Reason::BandwidthDrop,
        Reason::ProbeConfirmed,
        Reason::TileSize,
        Reason::Hidden,
        Reason::AudioOnlyChosen,
        Reason::LayerGone,
    ];

    /// Position in [`Reason::ALL`], for fixed-size counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Start => "start",
            Reason::BandwidthDrop => "bandwidth_drop",
            Reason::ProbeConfirmed => "probe_confirmed",
            Reason::TileSize => "tile_size",
            Reason::Hidden => "hidden",
            Reason::AudioOnlyChosen => "audio_only_chosen",
            Reason::LayerGone => "layer_gone",
        }
    }
}

/// The decision for one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub key: u32,
    pub kind: Kind,
    /// Layer to forward; `None` = paused (video only; audio is never paused).
    pub layer: Option<Layer>,
    /// Measured bitrate of that layer.
    pub bps: u64,
    /// Why video is paused, when it is.
    pub paused: Option<Reason>,
}

/// One change of layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch {
    pub key: u32,
    pub from: Option<Layer>,
    pub to: Option<Layer>,
    pub reason: Reason,
}

/// What to ask the estimator for (str0m `bwe().set_bitrate(min, desired)`): desired above the
/// estimate makes it probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Probe {
    pub min_bps: u64,
    pub desired_bps: u64,
}

/// The result of one update.
#[derive(Debug, Clone, Default)]
pub struct Allocation {
    /// One per input track, in input order.
    pub decisions: Vec<Decision>,
    /// Changes made by this update.
    pub switches: Vec<Switch>,
    pub probe: Probe,
    /// Estimate used (the input's, or the initial one).
    pub estimate_bps: u64,
}

#[derive(Debug, Clone, Copy)]
struct TrackState {
    key: u32,
    layer: Option<Layer>,
    paused: Option<Reason>,
    /// Whether video ever flowed (a subscription waits for the publisher's first layer).
    started: bool,
    /// Limits seen last time, to attribute changes to them.
    visible: bool,
    max_spatial: u8,
    audio_only: bool,
}

/// Allocation state for one subscriber.
#[derive(Debug)]
pub struct Allocator {
    config: AllocatorConfig,
    tracks: Vec<TrackState>,
    /// Since when the estimate has covered an upgrade.
    pending_up: Option<Instant>,
    last_up: Option<Instant>,
    last_down: Option<Instant>,
    hold: Duration,
    out: Allocation,
    first_update: Option<Instant>,
    /// Since when the estimate has not covered even the lowest layers.
    short_since: Option<Instant>,
    /// Since when the estimate has been below `deep_pause_factor` of the lowest layers.
    deep_since: Option<Instant>,
}

impl Allocator {
    pub fn new(config: AllocatorConfig) -> Self {
        let hold = config.up_hold;
        Allocator {
            config,
            tracks: Vec::new(),
            pending_up: None,
            last_up: None,
            last_down: None,
            hold,
            out: Allocation::default(),
            first_update: None,
            short_since: None,
            deep_since: None,
        }
    }

    /// The current upgrade hold (grows after failed upgrades).
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// Decides every track's layer at `now`. Call on every new estimate and a few times a
    /// second; cheap when nothing changes.
    pub fn update(&mut self, now: Instant, input: &SubscriberInput<'_>) -> &Allocation {
        let cfg = self.config.clone();
        let first = *self.first_update.get_or_insert(now);
        let no_feedback = now.saturating_duration_since(first) >= cfg.no_estimate_grace;
        let estimate = match input.estimate_bps {
            Some(e) => e,
            None if no_feedback => UNLIMITED_BPS,
            None => cfg.initial_estimate_bps,
        }
        .max(1);
        self.out.switches.clear();
        self.out.estimate_bps = estimate;
        self.tracks
            .retain(|s| input.tracks.iter().any(|t| t.key == s.key));

        let audio_bps: u64 = input
            .tracks
            .iter()
            .filter(|t| t.kind == Kind::Audio)
            .map(|t| t.rates.bps[0][0])
            .sum();
        let budget = |share: f64| ((estimate as f64 * share) as u64).saturating_sub(audio_bps);
        let down_plan = plan(input.tracks, input.audio_only, budget(cfg.headroom));
        let up_plan = plan(input.tracks, input.audio_only, budget(cfg.up_headroom));

        // 1. New tracks start on their lowest layer; limits (tile, visibility, audio-only,
        //    vanished layers) apply at once.
        let mut forced = false;
        for t in input.tracks.iter().filter(|t| t.kind != Kind::Audio) {
            let Some(i) = self.tracks.iter().position(|s| s.key == t.key) else {
                // The lowest layer whatever the estimate says: before feedback the estimate is
                // only the configured guess, and a 60 kbit/s link must not begin with a 720p
                // keyframe queued in front of its audio. The normal step-up (one hold) reaches
                // the layer that fits within a second or two.
                let layer = lowest(t, input.audio_only);
                self.tracks.push(TrackState {
                    key: t.key,
                    layer,
                    started: layer.is_some(),
                    paused: None,
                    visible: t.visible,
                    max_spatial: t.max_spatial,
                    audio_only: input.audio_only,
                });
                self.out.switches.push(Switch {
                    key: t.key,
                    from: None,
                    to: layer,
                    reason: Reason::Start,
                });
                continue;
            };
            let s = self.tracks[i];
            if !s.started {
                // Waiting for the publisher's first layer: start on the lowest as soon as one
                // flows.
                if let Some(layer) = lowest(t, input.audio_only) {
                    let state = &mut self.tracks[i];
                    state.layer = Some(layer);
                    state.started = true;
                    self.out.switches.push(Switch {
                        key: t.key,
                        from: None,
                        to: Some(layer),
                        reason: Reason::Start,
                    });
                }
                continue;
            }
            let clamped = clamp(s.layer, t, input.audio_only);
            let reason = if input.audio_only != s.audio_only {
                Reason::AudioOnlyChosen
            } else if t.visible != s.visible {
                Reason::Hidden
            } else if t.max_spatial != s.max_spatial {
                Reason::TileSize
            } else {
                Reason::LayerGone
            };
            let limits_grew = (!input.audio_only && s.audio_only)
                || (t.visible && !s.visible)
                || t.max_spatial > s.max_spatial;
            let state = &mut self.tracks[i];
            state.visible = t.visible;
            state.max_spatial = t.max_spatial;
            state.audio_only = input.audio_only;
            if clamped != s.layer {
                state.layer = clamped;
                forced = true;
                self.out.switches.push(Switch {
                    key: t.key,
                    from: s.layer,
                    to: clamped,
                    reason,
                });
            } else if limits_grew && s.layer.is_none() {
                // Back from hidden or audio-only: start at the layer that fits now.
                let layer = down_plan.layer_of(t.key);
                if layer.is_some() {
                    state.layer = layer;
                    forced = true;
                    self.out.switches.push(Switch {
                        key: t.key,
                        from: None,
                        to: layer,
                        reason,
                    });
                }
            }
        }

        // 2. Step down at once when the estimate no longer covers what is sent; pause video
        //    only once the estimate has stayed below even the lowest layers.
        let current_bps = self.video_bps(input.tracks) + audio_bps;
        let lowest_bps: u64 = audio_bps
            + input
                .tracks
                .iter()
                .filter(|t| {
                    self.tracks
                        .iter()
                        .any(|s| s.key == t.key && s.layer.is_some())
                })
                .filter_map(|t| lowest(t, input.audio_only).and_then(|l| t.rates.get(l)))
                .sum::<u64>();
        if (estimate as f64) < cfg.pause_factor * lowest_bps as f64 {
            self.short_since.get_or_insert(now);
        } else {
            self.short_since = None;
        }
        // Far below even the lowest layers (a 60 kbit/s link), waiting only fills the queue
        // in front of the audio: pause soon.
        if (estimate as f64) < cfg.deep_pause_factor * lowest_bps as f64 {
            self.deep_since.get_or_insert(now);
        } else {
            self.deep_since = None;
        }
        let waited = |since: Option<Instant>, wait: Duration| {
            since.is_some_and(|t| now.saturating_duration_since(t) >= wait)
        };
        let pause_ok = waited(self.short_since, cfg.pause_wait)
            || waited(self.deep_since, cfg.deep_pause_wait);
        if !forced && current_bps > estimate {
            let mut changed = false;
            for s in &mut self.tracks {
                let target = down_plan.layer_of(s.key);
                let mut new = s.layer.min(target);
                if new.is_none() && !pause_ok {
                    let floor = input
                        .tracks
                        .iter()
                        .find(|t| t.key == s.key)
                        .and_then(|t| lowest(t, input.audio_only));
                    new = s.layer.min(floor);
                }
                if new != s.layer {
                    self.out.switches.push(Switch {
                        key: s.key,
                        from: s.layer,
                        to: new,
                        reason: Reason::BandwidthDrop,
                    });
                    s.layer = new;
                    changed = true;
                }
            }
            if changed {
                if self
                    .last_up
                    .is_some_and(|u| now.saturating_duration_since(u) < cfg.failed_upgrade_window)
                {
                    self.hold = (self.hold * 2).min(cfg.max_up_hold);
                }
                self.last_down = Some(now);
                self.pending_up = None;
            }
        } else if !forced {
            // 3. Step up once the estimate has covered a better allocation for the hold time.
            let better = self.improves(&up_plan);
            let lossy = input.loss > cfg.max_loss_for_upgrade;
            if better && !lossy {
                let since = *self.pending_up.get_or_insert(now);
                if now.saturating_duration_since(since) >= self.hold {
                    for s in &mut self.tracks {
                        let new = s.layer.max(up_plan.layer_of(s.key));
                        if new != s.layer {
                            self.out.switches.push(Switch {
                                key: s.key,
                                from: s.layer,
                                to: new,
                                reason: Reason::ProbeConfirmed,
                            });
                            s.layer = new;
                        }
                    }
                    self.last_up = Some(now);
                    self.pending_up = None;
                }
            } else {
                self.pending_up = None;
            }
        }
        if self
            .last_down
            .is_none_or(|d| now.saturating_duration_since(d) >= cfg.calm_after)
        {
            self.hold = cfg.up_hold;
        }

        self.fill_decisions(input, &down_plan);
        let video_now: u64 = self
            .out
            .decisions
            .iter()
            .filter(|d| d.kind != Kind::Audio)
            .map(|d| d.bps)
            .sum();
        // Ask the estimator for the next step above what is sent: above the estimate it probes
        // with padding. Probing for everything the subscriber could use at once was measured
        // (adaptation bench, 2M-300k-2M) to recover faster but to freeze twice as often: the
        // padding plus an upgrade's keyframe burst overshoot the link and the estimate collapses.
        let next = plan_next_step(input, &self.tracks, video_now, &down_plan, &up_plan);
        let wanted = audio_bps + video_now + next;
        let desired = (wanted as f64 / cfg.up_headroom) as u64;
        self.out.probe = Probe {
            min_bps: audio_bps.max(20_000),
            desired_bps: desired.max(audio_bps + 20_000),
        };
        &self.out
    }

    /// The last allocation.
    pub fn allocation(&self) -> &Allocation {
        &self.out
    }

    fn video_bps(&self, tracks: &[TrackInput]) -> u64 {
        self.tracks
            .iter()
            .filter_map(|s| {
                let t = tracks.iter().find(|t| t.key == s.key)?;
                t.rates.get(s.layer?)
            })
            .sum()
    }

    /// Whether `p` raises some track without lowering any.
    fn improves(&self, p: &Plan) -> bool {
        let mut any = false;
        for s in &self.tracks {
            let l = p.layer_of(s.key);
            if l < s.layer {
                return false;
            }
            any |= l > s.layer;
        }
        any
    }

    fn fill_decisions(&mut self, input: &SubscriberInput<'_>, down_plan: &Plan) {
        self.out.decisions.clear();
        for t in input.tracks {
            if t.kind == Kind::Audio {
                self.out.decisions.push(Decision {
                    key: t.key,
                    kind: t.kind,
                    layer: Some(Layer::LOWEST),
                    bps: t.rates.bps[0][0],
                    paused: None,
                });
                continue;
            }
            let Some(s) = self.tracks.iter_mut().find(|s| s.key == t.key) else {
                continue;
            };
            let layer = s.layer;
            let paused = match layer {
                Some(_) => None,
                None if input.audio_only => Some(Reason::AudioOnlyChosen),
                None if !t.visible => Some(Reason::Hidden),
                None if down_plan.full_bps == 0 => Some(Reason::LayerGone),
                None => Some(Reason::BandwidthDrop),
            };
            s.paused = paused;
            self.out.decisions.push(Decision {
                key: t.key,
                kind: t.kind,
                layer,
                bps: layer.and_then(|l| t.rates.get(l)).unwrap_or(0),
                paused,
            });
        }
    }
}

/// The layers a track may send now, lowest first (empty when it may not send video).
fn allowed(t: &TrackInput, audio_only: bool) -> Vec<(Layer, u64)> {
    let mut ladder = Vec::new();
    if wants_video(t, audio_only) {
        t.rates.ladder(t.max_spatial, &mut ladder);
    }
    ladder
}

/// The lowest layer a track can send now, if it may send video at all.
fn lowest(t: &TrackInput, audio_only: bool) -> Option<Layer> {
    allowed(t, audio_only).first().map(|&(l, _)| l)
}

/// A layer still allowed by the track's limits and availability: the highest available layer
/// at or below `layer` (`None` when the video must not or cannot flow).
fn clamp(layer: Option<Layer>, t: &TrackInput, audio_only: bool) -> Option<Layer> {
    let layer = layer?;
    let ladder = allowed(t, audio_only);
    ladder
        .iter()
        .rev()
        .map(|&(l, _)| l)
        .find(|&l| l <= layer)
        .or_else(|| ladder.first().map(|&(l, _)| l))
}

/// Extra video bitrate of the next upgrade beyond what is allocated now (0 at the top).
fn plan_next_step(
    input: &SubscriberInput<'_>,
    tracks: &[TrackState],
    video_now: u64,
    down_plan: &Plan,
    up_plan: &Plan,
) -> u64 {
    // Budget-monotone plans: the plan bought with what is sent now names the next step.
    if video_now >= down_plan.full_bps {
        return 0;
    }
    let current = plan(input.tracks, input.audio_only, video_now);
    let at_current = tracks.iter().all(|s| current.layer_of(s.key) >= s.layer);
    let step = if at_current {
        current.next_step_bps
    } else {
        up_plan.next_step_bps
    };
    step.unwrap_or(0)
}

#[cfg(test)]
mod tests;
