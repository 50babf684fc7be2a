//! What one simulated run measured: the figures of ../shared/design/QUALITY.md for one
//! subscriber under one configuration, and a time series for plots.

use serde::Serialize;

/// How the room chose layers in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigName {
    /// The allocator (what kham ships).
    Kham,
    /// Always the top layer.
    NoAdaptation,
    /// Always the lowest simulcast layer.
    LowestLayer,
}

impl ConfigName {
    pub const ALL: [ConfigName; 3] = [
        ConfigName::Kham,
        ConfigName::NoAdaptation,
        ConfigName::LowestLayer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConfigName::Kham => "kham",
            ConfigName::NoAdaptation => "no_adaptation",
            ConfigName::LowestLayer => "lowest_layer",
        }
    }
}

/// Figures for one subscriber; `None` where a metric does not apply (no capacity drop, no
/// bottleneck queue...).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    /// Freezes by the WebRTC rule, not counting deliberate pauses (audio-only) or outages.
    pub frozen_time_pct: f64,
    /// The same with deliberate pauses counted: time without moving video outside outages.
    pub frozen_or_paused_pct: f64,
    pub freezes_per_min: f64,
    /// Runs of 200 ms or more of speech missing after repair.
    pub audio_gaps: u32,
    pub audio_loss_after_repair_pct: f64,
    /// 95th percentile of speech packets' delay from the publisher's send to the subscriber's
    /// receipt (one-way link delay plus every queue on the way; packets that never arrived or
    /// arrived past the playout deadline are in the loss figure instead).
    pub p95_audio_delay_ms: Option<f64>,
    pub utilisation_pct: Option<f64>,
    /// The room's estimate towards the subscriber over the same reference as utilisation
    /// (capped at 100 % per second): how much of the link the estimator found, where
    /// utilisation is how much of it the viewer received. `None` without adaptation.
    pub estimate_pct: Option<f64>,
    pub p95_queue_delay_ms: Option<f64>,
    pub downswitch_s: Option<f64>,
    pub recovery_s: Option<f64>,
    pub switches_per_min: f64,
    pub audio_only_pct: f64,
    /// Mean height of rendered frames as encoded (180/360/720 by default; less when the
    /// server scales an encoding down).
    pub mean_height: f64,
    /// Mean received kbit/s (video + audio).
    pub mean_kbps: f64,
    /// Mean capacity of the subscriber's downlink over the call.
    pub mean_capacity_kbps: f64,
}

/// One point of the time series (one per 200 ms of virtual time).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    /// Seconds since the call started.
    pub t: f64,
    /// Capacity of the subscriber's downlink.
    pub capacity_kbps: f64,
    /// The room's egress estimate towards the subscriber (`None` without adaptation).
    pub estimate_kbps: Option<f64>,
    /// What the room sent towards the subscriber (offered to the link).
    pub sent_kbps: f64,
    /// What reached the subscriber.
    pub received_kbps: f64,
    /// Layer chosen by the room: spatial + temporal / 3 (0 = lowest, 2.67 = top), `None`
    /// while video is paused.
    pub layer: Option<f64>,
}

/// One scenario under one configuration, for one subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub scenario: String,
    /// Scenario family: `steps`, `outages`, `loss`, `rtt`, `traces`, `two_subscribers`.
    pub family: String,
    pub config: ConfigName,
    /// Which subscriber (`viewer`, or `strong`/`weak` in two-subscriber scenarios).
    pub subscriber: String,
    /// The scenario's seed (links and publisher media).
    pub seed: u64,
    pub duration_s: f64,
    pub metrics: Metrics,
    #[serde(skip)]
    pub series: Vec<Sample>,
}
