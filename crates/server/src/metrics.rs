//! `/metrics`: the node's figures in the OpenMetrics text format (which Prometheus scrapes).
//!
//! Two histograms are observed as things happen (join time, bandwidth estimate); everything
//! else is read at scrape time from the monitor's latest view and the shards' counters, so
//! nothing is updated per packet. Labels come from fixed small sets (role, direction, reason,
//! error type): never a room, participant or name.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use kham_signal::Counters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::http_limits::ConnLimit;
use crate::monitor::OpsView;
use crate::webhooks::WebhookStats;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry and the metrics observed as events happen.
pub struct Metrics {
    registry: Registry,
    join_time: Histogram,
    estimate: Histogram,
    queue_wait: Histogram,
    /// Requests that left the queue, by outcome (taken, cancelled, expired, abandoned).
    queue_outcomes: Arc<[AtomicU64; 4]>,
}

/// The outcomes of queued requests, in `queue_outcomes` order.
const OUTCOMES: [kham_proto::LeftReason; 4] = [
    kham_proto::LeftReason::Taken,
    kham_proto::LeftReason::Cancelled,
    kham_proto::LeftReason::Expired,
    kham_proto::LeftReason::Abandoned,
];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Where the scrape-time figures come from.
pub struct Sources {
    pub view: watch::Receiver<Arc<OpsView>>,
    pub signal: Arc<Counters>,
    pub webhooks: Arc<WebhookStats>,
    pub draining: Arc<AtomicBool>,
    pub http: Arc<ConnLimit>,
    /// The specialist queue, set once it runs (it needs the rooms, which need these metrics).
    pub queue: Arc<OnceLock<kham_signal::QueueService>>,
}

impl Metrics {
    pub fn new(sources: Sources) -> Arc<Metrics> {
        let mut registry = Registry::default();
        // Seconds from the WebSocket opening (or admission) to media connected.
        let join_time = Histogram::new([0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0]);
        registry.register(
            "kham_join_seconds",
            "Time from opening the signaling WebSocket (or being admitted from the lobby) to media connected",
            join_time.clone(),
        );
        let estimate = Histogram::new([100e3, 250e3, 500e3, 1e6, 1.5e6, 2.5e6, 4e6, 8e6]);
        registry.register(
            "kham_egress_estimate_bits_per_second",
            "Send-side bandwidth estimate towards each participant, sampled once per second (empty until bandwidth estimation is enabled)",
            estimate.clone(),
        );
        // Seconds a request waited in the specialist queue until a doctor reached its call.
        let queue_wait = Histogram::new([30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0]);
        registry.register(
            "kham_queue_wait_seconds",
            "Time a specialist-queue request waited from entering the queue to its doctor reaching the call",
            queue_wait.clone(),
        );
        let queue_outcomes: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
        registry.register_collector(Box::new(NodeCollector(sources, queue_outcomes.clone())));
        Arc::new(Metrics {
            registry,
            join_time,
            estimate,
            queue_wait,
            queue_outcomes,
        })
    }

    /// A request left the queue: `waited` is set when a doctor took it.
    pub fn observe_queue(&self, outcome: kham_proto::LeftReason, waited_secs: Option<f64>) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.queue_outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(w) = waited_secs {
            self.queue_wait.observe(w);
        }
    }

    pub fn observe_join(&self, seconds: f64) {
        self.join_time.observe(seconds);
    }

    pub fn observe_estimate(&self, bps: u64) {
        self.estimate.observe(bps as f64);
    }

    /// The whole exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

struct NodeCollector(Sources, Arc<[AtomicU64; 4]>);

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCollector")
    }
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

/// `layer_availability` plus one value per allocator reason (a fixed, small label set).
fn allocation_reasons(c: &crate::media_stats::ShardCounters) -> Vec<(&'static str, u64)> {
    let mut v = vec![("layer_availability", c.layer_switches)];
    for r in kham_sfu::kham_bwe::Reason::ALL {
        v.push((r.as_str(), c.allocation_switches[r.index()]));
    }
    v
}

fn labelled_counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (l, v) in values {
        ConstCounter::new(*v).encode(m.encode_family(&[(label, *l)])?)?;
    }
    Ok(())
}

fn labelled_gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, i64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (l, v) in values {
        ConstGauge::new(*v).encode(m.encode_family(&[(label, *l)])?)?;
    }
    Ok(())
}

impl Collector for NodeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let view = s.view.borrow().clone();
        let c = view.counters;
        let n = |v: usize| v as i64;
        gauge(&mut e, "kham_rooms", "Open rooms", n(view.node.rooms))?;
        let roles: Vec<(&str, i64)> = ["doctor", "station", "patient", "observer"]
            .iter()
            .map(|r| (*r, n(view.by_role.get(r).copied().unwrap_or(0))))
            .collect();
        labelled_gauge(
            &mut e,
            "kham_participants",
            "Participants in calls, by role",
            "role",
            &roles,
        )?;
        gauge(
            &mut e,
            "kham_lobby_participants",
            "People waiting in lobbies",
            n(view.node.lobby),
        )?;
        gauge(
            &mut e,
            "kham_tracks",
            "Tracks published (audio and video)",
            n(view.node.tracks),
        )?;
        gauge(
            &mut e,
            "kham_audio_only_subscriptions",
            "Participants whose video is paused to save a weak link (chosen audio-only, or paused by the allocator)",
            n(view.audio_only),
        )?;
        labelled_counter(
            &mut e,
            "kham_udp_datagrams",
            "UDP datagrams at the media sockets",
            "direction",
            &[("in", c.udp_in), ("out", c.udp_out)],
        )?;
        labelled_counter(
            &mut e,
            "kham_udp_bytes",
            "UDP payload bytes at the media sockets",
            "direction",
            &[("in", c.udp_bytes_in), ("out", c.udp_bytes_out)],
        )?;
        labelled_counter(
            &mut e,
            "kham_udp_dropped",
            "UDP datagrams dropped: no room accepted them or they did not parse (unroutable), larger than the receive buffer (oversized), or the socket refused to send (send_buffer_full)",
            "reason",
            &[
                ("unroutable", c.udp_dropped),
                ("oversized", c.udp_oversized),
                ("send_buffer_full", c.send_dropped),
            ],
        )?;
        if let Some(d) = view.kernel_drops {
            counter(
                &mut e,
                "kham_udp_kernel_drops",
                "UDP datagrams the kernel dropped at the media sockets because their receive buffer was full (never seen by kham; Linux only)",
                d,
            )?;
        }
        labelled_counter(
            &mut e,
            "kham_rtp_packets",
            "RTP packets received from publishers (in) and sent to subscribers (out, retransmissions included)",
            "direction",
            &[
                ("in", c.media.rtp_packets_in),
                ("out", c.media.rtp_packets_out),
            ],
        )?;
        labelled_counter(
            &mut e,
            "kham_rtp_bytes",
            "RTP bytes received from publishers (in) and sent to subscribers (out)",
            "direction",
            &[("in", c.media.rtp_bytes_in), ("out", c.media.rtp_bytes_out)],
        )?;
        labelled_counter(
            &mut e,
            "kham_nacks",
            "NACKs received from subscribers and sent to publishers",
            "direction",
            &[
                ("received", c.media.nacks_received),
                ("sent", c.media.nacks_sent),
            ],
        )?;
        labelled_counter(
            &mut e,
            "kham_plis",
            "Keyframe requests (PLI and FIR) received from subscribers and sent to publishers",
            "direction",
            &[
                ("received", c.media.plis_received),
                ("sent", c.media.plis_sent),
            ],
        )?;
        counter(
            &mut e,
            "kham_rtx_packets",
            "Retransmissions (RTX) sent to subscribers",
            c.media.rtx_sent,
        )?;
        labelled_counter(
            &mut e,
            "kham_allocation_switches",
            "Layer decisions for subscribers, by reason (layer_availability: the forwarded simulcast layer changed because a publisher's layers appeared or stopped; the others are the allocator's reasons)",
            "reason",
            &allocation_reasons(&c),
        )?;
        counter(
            &mut e,
            "kham_keyframe_requests",
            "Keyframe requests the SFU sent to publishers on behalf of subscribers",
            c.keyframe_requests,
        )?;
        counter(
            &mut e,
            "kham_rooms_panicked",
            "Room engines that panicked and were reset",
            c.rooms_panicked,
        )?;
        let resumes = s.signal.resumes();
        let resumes: Vec<(&str, u64)> = ["ok", "refused"]
            .iter()
            .map(|k| (*k, resumes.get(k).copied().unwrap_or(0)))
            .collect();
        labelled_counter(
            &mut e,
            "kham_resumes",
            "Signaling sessions resumed after a dropped socket, by result",
            "result",
            &resumes,
        )?;
        counter(
            &mut e,
            "kham_ice_tcp_connections_accepted",
            "ICE-TCP connections accepted (clients whose UDP is blocked)",
            c.tcp_accepted,
        )?;
        counter(
            &mut e,
            "kham_ice_tcp_connections_refused",
            "ICE-TCP connections closed for junk (a first packet that is no STUN binding request, a bad frame) or silence",
            c.tcp_closed_bad,
        )?;
        labelled_counter(
            &mut e,
            "kham_ice_tcp_packets",
            "Media and ICE packets carried over ICE-TCP, by direction",
            "direction",
            &[("in", c.tcp_in), ("out", c.tcp_out)],
        )?;
        let paths: Vec<(&str, i64)> = crate::media_stats::PATHS
            .iter()
            .zip(c.sessions_by_path)
            .map(|(l, v)| (*l, v as i64))
            .collect();
        labelled_gauge(
            &mut e,
            "kham_media_sessions",
            "Connected participants by the path of their media: direct UDP, ICE-TCP, or relayed by a TURN server (an address of turn.urls or turn.relay_ips)",
            "path",
            &paths,
        )?;
        counter(
            &mut e,
            "kham_ice_restarts",
            "ICE restarts the server offered (a client's ICE failed or its network changed)",
            c.ice_restarts,
        )?;
        let errors = s.signal.errors();
        let errors: Vec<(&str, u64)> = errors.iter().map(|(k, v)| (*k, *v)).collect();
        labelled_counter(
            &mut e,
            "kham_signal_errors",
            "Signaling errors by type",
            "type",
            &errors,
        )?;
        let w = &s.webhooks;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        labelled_counter(
            &mut e,
            "kham_webhook_deliveries",
            "Webhook events by outcome (retried counts attempts that failed and were tried again)",
            "result",
            &[
                ("delivered", get(&w.delivered)),
                ("failed", get(&w.failed)),
                ("dropped", get(&w.dropped)),
                ("retried", get(&w.retried)),
            ],
        )?;
        gauge(
            &mut e,
            "kham_http_connections",
            "Open HTTP connections, WebSockets and TLS handshakes included",
            n(s.http.open()),
        )?;
        gauge(
            &mut e,
            "kham_http_connections_max",
            "The cap on open HTTP connections (http.max_connections, as fitted to the open-file limit)",
            n(s.http.max()),
        )?;
        counter(
            &mut e,
            "kham_http_connections_refused",
            "HTTP connections closed at once because the cap was reached",
            s.http.refused(),
        )?;
        gauge(
            &mut e,
            "kham_draining",
            "1 while the server drains before shutting down",
            i64::from(s.draining.load(Ordering::Relaxed)),
        )?;
        let outcomes: Vec<(&str, u64)> = OUTCOMES
            .iter()
            .zip(self.1.iter())
            .map(|(o, n)| (o.as_str(), n.load(Ordering::Relaxed)))
            .collect();
        labelled_counter(
            &mut e,
            "kham_queue_requests",
            "Specialist-queue requests that left the queue, by outcome (taken, cancelled, expired, abandoned)",
            "outcome",
            &outcomes,
        )?;
        if let Some(q) = s.queue.get() {
            let stats = q.stats();
            let waiting: Vec<(&str, i64)> = stats
                .specialties
                .iter()
                .map(|(k, v)| (k.as_str(), i64::from(v.waiting)))
                .collect();
            labelled_gauge(
                &mut e,
                "kham_queue_length",
                "Requests in the specialist queue (waiting or being connected), by specialty",
                "specialty",
                &waiting,
            )?;
            let doctors: Vec<(&str, i64)> = stats
                .specialties
                .iter()
                .map(|(k, v)| (k.as_str(), i64::from(v.doctors_available)))
                .collect();
            labelled_gauge(
                &mut e,
                "kham_queue_doctors_available",
                "Doctors on duty and available, by specialty",
                "specialty",
                &doctors,
            )?;
        }
        if let Some(cpu) = crate::cpu::process_cpu_seconds() {
            let c = ConstCounter::new(cpu);
            c.encode(e.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time of the process",
                None,
                c.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
