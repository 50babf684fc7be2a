//! Scenarios as data: the links of a call and the capacity events the figures refer to.

use std::time::Duration;

use kham_netem::{LinkConfig, LossModel, QueueLimit, Trace};

/// One direction of a participant's access link.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub trace: Trace,
    /// One-way propagation delay (half the base RTT).
    pub delay: Duration,
    pub jitter: Duration,
    pub loss: LossModel,
    pub queue: QueueLimit,
}

impl LinkSpec {
    /// A fixed-rate link with a 400 ms droptail buffer (cellular buffers are deep).
    pub fn fixed(bps: u64, rtt: Duration) -> Self {
        LinkSpec::trace(Trace::fixed(bps), rtt)
    }

    pub fn trace(trace: Trace, rtt: Duration) -> Self {
        LinkSpec {
            trace,
            delay: rtt / 2,
            jitter: Duration::from_millis(5),
            loss: LossModel::None,
            queue: QueueLimit::Time(Duration::from_millis(400)),
        }
    }

    pub fn with_loss(mut self, loss: LossModel) -> Self {
        self.loss = loss;
        self
    }

    pub(crate) fn config(&self, seed: u64) -> LinkConfig {
        LinkConfig {
            trace: self.trace.clone(),
            delay: self.delay,
            jitter: self.jitter,
            queue: self.queue,
            loss: self.loss,
            seed,
        }
    }
}

/// One subscriber and its downlink.
#[derive(Debug, Clone)]
pub struct ViewerSpec {
    pub name: String,
    pub down: LinkSpec,
}

/// A capacity change the downswitch and recovery figures are measured from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CapacityEvent {
    /// Capacity falls to `to_bps` at `at`.
    Drop { at: Duration, to_bps: u64 },
    /// Capacity returns at `at`.
    Return { at: Duration },
}

/// One simulated call.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub family: String,
    pub duration: Duration,
    pub viewers: Vec<ViewerSpec>,
    /// The publisher's uplink (a strong link unless the scenario is about a weak uplink).
    pub publisher_up: LinkSpec,
    pub events: Vec<CapacityEvent>,
    /// Windows of deliberate outage (capacity 0), excluded from freeze and loss figures.
    pub outages: Vec<(Duration, Duration)>,
    pub seed: u64,
}

impl Scenario {
    /// A call with one viewer behind `down`.
    pub fn single(name: &str, family: &str, duration: Duration, down: LinkSpec) -> Self {
        Scenario {
            name: name.to_string(),
            family: family.to_string(),
            duration,
            viewers: vec![ViewerSpec {
                name: "viewer".into(),
                down,
            }],
            publisher_up: LinkSpec::fixed(20_000_000, Duration::from_millis(20)),
            events: Vec::new(),
            outages: Vec::new(),
            seed: 1,
        }
    }

    /// A capacity step at rural scale (RFC 8867 style): `high` for `secs.0` seconds, `low` for
    /// `secs.1`, `high` again for `secs.2`, with the drop and return as capacity events.
    pub fn step(name: &str, high: u64, low: u64, rtt: Duration, secs: (u64, u64, u64)) -> Self {
        let s = Duration::from_secs;
        let trace = Trace::from_steps(&[(s(secs.0), high), (s(secs.1), low), (s(secs.2), high)]);
        let mut sc = Scenario::single(
            name,
            "steps",
            s(secs.0 + secs.1 + secs.2),
            LinkSpec::trace(trace, rtt),
        );
        sc.events = vec![
            CapacityEvent::Drop {
                at: s(secs.0),
                to_bps: low,
            },
            CapacityEvent::Return {
                at: s(secs.0 + secs.1),
            },
        ];
        sc
    }

    /// This scenario's viewer replaced by a strong one (5 Mbit/s) beside a weak one on the
    /// original downlink: the strong one must not be dragged down.
    pub fn with_strong_viewer(mut self) -> Self {
        let weak = self.viewers.remove(0).down;
        self.viewers = vec![
            ViewerSpec {
                name: "strong".into(),
                down: LinkSpec::fixed(5_000_000, Duration::from_millis(60)),
            },
            ViewerSpec {
                name: "weak".into(),
                down: weak,
            },
        ];
        self
    }

    /// Base round-trip time of a viewer's path (for the decoder's wait for repairs).
    pub(crate) fn rtt(&self, v: &ViewerSpec) -> Duration {
        v.down.delay * 2 + self.publisher_up.delay * 2
    }
}
