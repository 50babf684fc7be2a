//! One direction of an emulated link: droptail queue, capacity trace, loss, delay and jitter.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::loss::{LossModel, LossState};
use crate::queue::QueueLimit;
use crate::rng::Rng;
use crate::serializer::Serializer;
use crate::trace::{Trace, duration_ns};

/// Queue entries reserved up front, so a link allocates nothing per packet in steady state.
const RESERVED_PACKETS: usize = 1024;
/// Stream ids of the link's two random streams.
const LOSS_STREAM: u64 = 1;
const JITTER_STREAM: u64 = 2;

/// Configuration of one direction of a link.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Capacity over time; offset 0 is the link's start.
    pub trace: Trace,
    /// One-way propagation delay (an OpenNetLab segment with a positive `rtt` overrides it
    /// with `rtt / 2` while it lasts).
    pub delay: Duration,
    /// Up to this much extra delay, uniform in `[0, jitter]`, drawn per packet; delivery times
    /// never go backwards, so jitter never reorders (an OpenNetLab segment with a positive
    /// `jitter` overrides it while it lasts).
    pub jitter: Duration,
    /// Droptail limit of the queue in front of the bottleneck.
    pub queue: QueueLimit,
    /// Random loss on the wire (OpenNetLab segment loss comes on top).
    pub loss: LossModel,
    /// Seed of the loss and jitter draws.
    pub seed: u64,
}

impl LinkConfig {
    /// Default queue limit: 300 ms of the current capacity, a moderately deep cellular buffer
    /// (deep enough for delay-based congestion control to see queueing, shallow enough that
    /// a sender that overshoots sees loss within a second).
    pub const DEFAULT_QUEUE: QueueLimit = QueueLimit::Time(Duration::from_millis(300));

    /// A constant-rate link: `bps` bit/s, `delay` one way, no jitter, no loss,
    /// [`LinkConfig::DEFAULT_QUEUE`], seed 0.
    pub fn fixed(bps: u64, delay: Duration) -> LinkConfig {
        LinkConfig::with_trace(Trace::fixed(bps), delay)
    }

    /// A link following `trace`, with the same defaults as [`LinkConfig::fixed`].
    pub fn with_trace(trace: Trace, delay: Duration) -> LinkConfig {
        LinkConfig {
            trace,
            delay,
            jitter: Duration::ZERO,
            queue: LinkConfig::DEFAULT_QUEUE,
            loss: LossModel::None,
            seed: 0,
        }
    }
}

/// What happened to an offered packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// It will be delivered.
    Queued,
    /// The queue was full: dropped before the bottleneck, using no capacity.
    DroppedQueueFull,
    /// It will be lost on the wire: it still waits in the queue and uses its share of
    /// capacity, then never arrives.
    DroppedLoss,
}

/// A packet that crossed the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered<P> {
    /// The payload given to [`Link::send`].
    pub packet: P,
    /// Its size as given to `send`.
    pub size: usize,
    /// When it was sent.
    pub sent_at: Instant,
    /// Time it waited in the queue before its own serialization began (Mahimahi: before its
    /// first delivery opportunity).
    pub queue_delay: Duration,
    /// When it arrives: last bit serialized + propagation delay + jitter (never earlier than
    /// the packet before it).
    pub delivered_at: Instant,
}

/// Counters of a link. Bytes are the `size` values given to `send`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets offered to `send`.
    pub sent_packets: u64,
    /// Bytes offered to `send`.
    pub sent_bytes: u64,
    /// Packets returned by `poll_deliver`.
    pub delivered_packets: u64,
    /// Bytes returned by `poll_deliver`.
    pub delivered_bytes: u64,
    /// Packets refused because the queue was full.
    pub dropped_queue_packets: u64,
    /// Bytes refused because the queue was full.
    pub dropped_queue_bytes: u64,
    /// Packets lost on the wire.
    pub dropped_loss_packets: u64,
    /// Bytes lost on the wire.
    pub dropped_loss_bytes: u64,
}

struct Queued<P> {
    /// None when the packet is lost on the wire (it still occupies the queue and capacity).
    packet: Option<P>,
    size: usize,
    arrival: u64,
}

/// One direction of one link. `P` is the payload type; payloads are moved through, never
/// cloned. All times are caller-given `Instant`s; a time earlier than one already seen is
/// taken as the latest seen (time never goes backwards inside the link).
pub struct Link<P> {
    config: LinkConfig,
    start: Instant,
    /// Latest time seen, nanoseconds since `start`.
    now: u64,
    queue: VecDeque<Queued<P>>,
    queued_bytes: usize,
    /// Completion of the head packet (`queue[0]`): start, and done (None: never).
    head: Option<(u64, Option<u64>)>,
    serializer: Serializer,
    /// Serialized packets on their way, in delivery order, with delivery time.
    in_flight: VecDeque<(u64, Delivered<P>)>,
    last_delivery: u64,
    loss_rng: Rng,
    jitter_rng: Rng,
    loss_state: LossState,
    stats: LinkStats,
}

impl<P> std::fmt::Debug for Link<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("config", &self.config)
            .field("queued_packets", &self.queue.len())
            .field("queued_bytes", &self.queued_bytes)
            .field("in_flight", &self.in_flight.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<P> Link<P> {
    /// A link whose trace offset 0 is `start`.
    pub fn new(config: LinkConfig, start: Instant) -> Self {
        let seed = config.seed;
        Link {
            config,
            start,
            now: 0,
            queue: VecDeque::with_capacity(RESERVED_PACKETS),
            queued_bytes: 0,
            head: None,
            serializer: Serializer::default(),
            in_flight: VecDeque::with_capacity(RESERVED_PACKETS),
            last_delivery: 0,
            loss_rng: Rng::new(seed, LOSS_STREAM),
            jitter_rng: Rng::new(seed, JITTER_STREAM),
            loss_state: LossState::default(),
            stats: LinkStats::default(),
        }
    }

    /// Offers a packet of `size` bytes at `now`. `size` is all that counts against capacity
    /// and queue: pass the bytes that cross the bottleneck (UDP payload plus about 28 bytes of
    /// IP and UDP headers).
    ///
    /// Order: the queue limit first (a full queue drops the packet, using no capacity), then
    /// random loss (drawn now, in send order, so outcomes are known at once; the lost packet
    /// still waits in the queue and uses capacity as radio loss does, and is discarded when it
    /// would have been delivered).
    pub fn send(&mut self, now: Instant, size: usize, packet: P) -> SendOutcome {
        let t = self.advance(now);
        let bytes = size as u64;
        self.stats.sent_packets = self.stats.sent_packets.saturating_add(1);
        self.stats.sent_bytes = self.stats.sent_bytes.saturating_add(bytes);
        let trace = &self.config.trace;
        if !self
            .config
            .queue
            .admits(self.queued_bytes, size, || trace.drain_bps_at_ns(t))
        {
            self.stats.dropped_queue_packets = self.stats.dropped_queue_packets.saturating_add(1);
            self.stats.dropped_queue_bytes = self.stats.dropped_queue_bytes.saturating_add(bytes);
            return SendOutcome::DroppedQueueFull;
        }
        let mut lost = self.loss_state.lose(&self.config.loss, &mut self.loss_rng);
        if let Some(p) = self.config.trace.segment_at_ns(t).and_then(|s| s.loss) {
            // Drawn only where a segment sets a loss, so other traces keep their sequence.
            lost |= self.loss_rng.chance(p);
        }
        let outcome = if lost {
            self.stats.dropped_loss_packets = self.stats.dropped_loss_packets.saturating_add(1);
            self.stats.dropped_loss_bytes = self.stats.dropped_loss_bytes.saturating_add(bytes);
            SendOutcome::DroppedLoss
        } else {
            SendOutcome::Queued
        };
        self.queue.push_back(Queued {
            packet: (!lost).then_some(packet),
            size,
            arrival: t,
        });
        self.queued_bytes = self.queued_bytes.saturating_add(size);
        if self.head.is_none() {
            self.start_head(t);
        }
        outcome
    }

    /// The next packet whose delivery time is at or before `now`, in delivery order.
    pub fn poll_deliver(&mut self, now: Instant) -> Option<Delivered<P>> {
        let t = self.advance(now);
        if self.in_flight.front().is_some_and(|&(at, _)| at <= t) {
            let (_, d) = self.in_flight.pop_front()?;
            self.stats.delivered_packets = self.stats.delivered_packets.saturating_add(1);
            self.stats.delivered_bytes = self.stats.delivered_bytes.saturating_add(d.size as u64);
            return Some(d);
        }
        None
    }

    /// The earliest instant at which something changes: the next delivery or the next
    /// serialization completion. None when nothing is queued or in flight (or the queue waits
    /// on a trace that never has capacity).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let done = self.head.and_then(|(_, done)| done);
        let delivery = self.in_flight.front().map(|&(at, _)| at);
        let next = match (done, delivery) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(self.instant(next))
    }

    /// The earliest instant at which [`Link::poll_deliver`] may return a packet: the next
    /// packet in flight, or the packet being serialized when its last bit leaves plus the
    /// propagation delay it will get (jitter and the no-reordering rule only add to that).
    /// A lower bound, not a promise: polling then may find that packet lost on the wire, and
    /// this moves on. A caller that only forwards deliveries (the relay) wakes about half as
    /// often with this as with [`Link::poll_timeout`], which also reports each serialization
    /// completion; outcomes are the same either way. None when nothing is queued or in flight.
    pub fn poll_delivery_timeout(&self) -> Option<Instant> {
        let delivery = self.in_flight.front().map(|&(at, _)| at);
        let head = self.head.and_then(|(_, done)| done).map(|done| {
            done.saturating_add(duration_ns(self.delay_at(done)))
                .max(self.last_delivery)
        });
        let next = match (head, delivery) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(self.instant(next))
    }

    /// Capacity of the trace at `now` (see [`Trace::capacity_bps_at`]).
    pub fn capacity_bps_at(&self, now: Instant) -> u64 {
        self.config
            .trace
            .capacity_bps_at(now.saturating_duration_since(self.start))
    }

    /// Bytes in the queue, including the packet being serialized and packets that will be
    /// lost on the wire.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Packets in the queue (as counted by [`Link::queued_bytes`]).
    pub fn queued_packets(&self) -> usize {
        self.queue.len()
    }

    /// Packets serialized and not yet returned by `poll_deliver`.
    pub fn in_flight_packets(&self) -> usize {
        self.in_flight.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// The configuration the link was made with.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// The instant of trace offset 0.
    pub fn start(&self) -> Instant {
        self.start
    }

    fn instant(&self, ns: u64) -> Instant {
        // Beyond what `Instant` holds (centuries ahead) only on absurd inputs; the start is
        // then returned rather than panicking.
        self.start
            .checked_add(Duration::from_nanos(ns))
            .unwrap_or(self.start)
    }

    /// Moves the link to `now` (never backwards) and completes every serialization up to it.
    fn advance(&mut self, now: Instant) -> u64 {
        let t = duration_ns(now.saturating_duration_since(self.start)).max(self.now);
        self.now = t;
        while let Some((start, Some(done))) = self.head {
            if done > t {
                break;
            }
            let Some(entry) = self.queue.pop_front() else {
                self.head = None;
                break;
            };
            self.queued_bytes = self.queued_bytes.saturating_sub(entry.size);
            self.serializer.head_left(!self.queue.is_empty());
            self.depart(entry, start, done);
            self.head = None;
            if let Some(next) = self.queue.front() {
                let from = next.arrival.max(done);
                self.start_head(from);
            }
        }
        t
    }

    fn start_head(&mut self, from: u64) {
        if let Some(front) = self.queue.front() {
            let bits = (front.size as u64).saturating_mul(8);
            let s = self.serializer.schedule(&self.config.trace, from, bits);
            self.head = Some((s.start, s.done));
        }
    }

    /// Propagation delay of a packet whose last bit leaves at `done`.
    fn delay_at(&self, done: u64) -> Duration {
        self.config
            .trace
            .segment_at_ns(done)
            .and_then(|s| s.rtt)
            .filter(|r| !r.is_zero())
            .map_or(self.config.delay, |rtt| rtt / 2)
    }

    /// The packet's last bit left at `done`: on to the far end, unless lost on the wire.
    fn depart(&mut self, entry: Queued<P>, start: u64, done: u64) {
        let Some(packet) = entry.packet else {
            return;
        };
        let seg = self.config.trace.segment_at_ns(done);
        let delay = self.delay_at(done);
        let jitter = seg
            .and_then(|s| s.jitter)
            .filter(|j| !j.is_zero())
            .unwrap_or(self.config.jitter);
        let extra = match duration_ns(jitter) {
            0 => 0,
            j => self.jitter_rng.up_to(j),
        };
        let at = done
            .saturating_add(duration_ns(delay))
            .saturating_add(extra)
            .max(self.last_delivery);
        self.last_delivery = at;
        let delivered = Delivered {
            packet,
            size: entry.size,
            sent_at: self.instant(entry.arrival),
            queue_delay: Duration::from_nanos(start.saturating_sub(entry.arrival)),
            delivered_at: self.instant(at),
        };
        self.in_flight.push_back((at, delivered));
    }
}

/// Both directions of one peer's access link, configured separately: `up` carries what the
/// peer sends (towards the server), `down` what it receives.
#[derive(Debug)]
pub struct LinkPair<P> {
    /// Peer to server.
    pub up: Link<P>,
    /// Server to peer.
    pub down: Link<P>,
}

impl<P> LinkPair<P> {
    /// Two links starting at `start`. Give them different seeds for independent loss.
    pub fn new(up: LinkConfig, down: LinkConfig, start: Instant) -> Self {
        LinkPair {
            up: Link::new(up, start),
            down: Link::new(down, start),
        }
    }

    /// The earlier of the two links' timeouts.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.up.poll_timeout(), self.down.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The earlier of the two links' [`Link::poll_delivery_timeout`].
    pub fn poll_delivery_timeout(&self) -> Option<Instant> {
        match (
            self.up.poll_delivery_timeout(),
            self.down.poll_delivery_timeout(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
