//! Per-participant media figures for operators: what str0m reports once per interval
//! ([`STATS_INTERVAL`]: `Event::PeerStats`, `MediaIngressStats`, `MediaEgressStats`), folded into
//! monotonic totals and per-interval rates, plus the one per-packet counter str0m does not
//! report (retransmissions sent).
//!
//! Cost: the events arrive once per second per participant; the per-packet work is one byte
//! comparison on each transmitted datagram, on plain integers owned by the room. Nothing here
//! reads a clock: rates use the timestamps carried by the events.
//!
//! The shell reads [`Room::media_stats`](crate::Room::media_stats) at most once a second.

use std::time::{Duration, Instant};

use kham_proto::ParticipantId;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};

use crate::peer::Peer;
use crate::track::OutState;

/// How often str0m reports each participant's figures.
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// A participant that sent nothing at all (not even RTCP or consent checks) for this long is
/// counted as silent: its network has probably gone, before ICE consent formally expires.
pub const SILENCE_LOST: Duration = Duration::from_secs(3);

/// Cumulative totals of one participant's media since its session started. Only ever grows, so
/// the shell can sum deltas into node-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaTotals {
    /// RTP packets and bytes received from this participant (its published streams).
    pub rtp_packets_in: u64,
    pub rtp_bytes_in: u64,
    /// RTP packets and bytes sent to this participant (others' streams), retransmissions included.
    pub rtp_packets_out: u64,
    pub rtp_bytes_out: u64,
    /// NACKs this participant sent us about the streams it receives.
    pub nacks_received: u64,
    /// NACKs we sent this participant about the streams it publishes.
    pub nacks_sent: u64,
    /// PLIs and FIRs this participant sent us (it needs a keyframe).
    pub plis_received: u64,
    /// PLIs and FIRs we sent this participant (a subscriber needs a keyframe of its video).
    pub plis_sent: u64,
    /// Retransmissions (RTX) sent to this participant.
    pub rtx_sent: u64,
}

impl MediaTotals {
    /// Adds another participant's totals (for room and node sums).
    pub fn add(&mut self, o: &MediaTotals) {
        self.rtp_packets_in += o.rtp_packets_in;
        self.rtp_bytes_in += o.rtp_bytes_in;
        self.rtp_packets_out += o.rtp_packets_out;
        self.rtp_bytes_out += o.rtp_bytes_out;
        self.nacks_received += o.nacks_received;
        self.nacks_sent += o.nacks_sent;
        self.plis_received += o.plis_received;
        self.plis_sent += o.plis_sent;
        self.rtx_sent += o.rtx_sent;
    }

    /// `self - earlier`, field by field, never negative.
    pub fn since(&self, earlier: &MediaTotals) -> MediaTotals {
        MediaTotals {
            rtp_packets_in: self.rtp_packets_in.saturating_sub(earlier.rtp_packets_in),
            rtp_bytes_in: self.rtp_bytes_in.saturating_sub(earlier.rtp_bytes_in),
            rtp_packets_out: self.rtp_packets_out.saturating_sub(earlier.rtp_packets_out),
            rtp_bytes_out: self.rtp_bytes_out.saturating_sub(earlier.rtp_bytes_out),
            nacks_received: self.nacks_received.saturating_sub(earlier.nacks_received),
            nacks_sent: self.nacks_sent.saturating_sub(earlier.nacks_sent),
            plis_received: self.plis_received.saturating_sub(earlier.plis_received),
            plis_sent: self.plis_sent.saturating_sub(earlier.plis_sent),
            rtx_sent: self.rtx_sent.saturating_sub(earlier.rtx_sent),
        }
    }
}

/// The simulcast layer of one publisher's video a subscriber currently receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReceived {
    pub publisher: ParticipantId,
    /// 0 = lowest; `None` while nothing is forwarded yet (or paused).
    pub layer: Option<u8>,
}

/// Where the media to one participant goes now: the destination of the last datagram str0m
/// sent it. For operators' counts of sessions by path (direct UDP, ICE-TCP, through a TURN
/// relay, which the server tells by the relay's address); never logged or shown with the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPath {
    /// Over ICE-TCP (RFC 4571) rather than UDP.
    pub tcp: bool,
    pub remote: std::net::SocketAddr,
}

/// One participant's media, as the operator API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerMediaStats {
    pub id: ParticipantId,
    /// ICE and DTLS are up.
    pub connected: bool,
    /// Where its media goes now (nothing sent yet: `None`).
    pub path: Option<MediaPath>,
    pub totals: MediaTotals,
    /// Rates over the last stats interval: packets (RTP) and kbit/s (everything on the wire).
    pub pps_in: f64,
    pub pps_out: f64,
    pub kbps_in: f64,
    pub kbps_out: f64,
    /// Round-trip time, when str0m could measure one (TWCC or RTCP receiver reports).
    pub rtt: Option<Duration>,
    /// Fraction (0..1) lost of what this participant sends us.
    pub loss_in: Option<f32>,
    /// Fraction (0..1) lost of what we send it, as its receiver reports say.
    pub loss_out: Option<f32>,
    /// The send-side bandwidth estimate towards this participant, if estimation is enabled
    /// (`None` until the adaptation work turns it on).
    pub estimate_bps: Option<u64>,
    /// Nothing at all arrived from it for at least [`SILENCE_LOST`].
    pub silent: bool,
    pub audio_tracks: u8,
    pub video_tracks: u8,
    pub layers: Vec<LayerReceived>,
    /// Video paused to save a weak link: chosen by the participant, or paused by the allocator.
    pub audio_only: bool,
    /// The connection quality the room shows everyone (`quality.rs`), once judged.
    pub quality: Option<crate::quality::Quality>,
}

/// The last cumulative counters str0m reported for one stream (mid, rid).
#[derive(Debug, Clone, Copy)]
struct StreamMark {
    mid: Mid,
    rid: Option<Rid>,
    packets: u64,
    bytes: u64,
    nacks: u64,
    plis: u64,
}

/// What a room keeps per participant between stats events.
#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    totals: MediaTotals,
    ingress: Vec<StreamMark>,
    egress: Vec<StreamMark>,
    /// Previous peer event: (timestamp, wire bytes in, out, RTP packets in, out).
    prev: Option<(Instant, u64, u64, u64, u64)>,
    pps_in: f64,
    pps_out: f64,
    kbps_in: f64,
    kbps_out: f64,
    silent_for: Duration,
    rtt: Option<Duration>,
    loss_in_twcc: Option<f32>,
    loss_out_twcc: Option<f32>,
    /// Worst per-stream figures from receiver reports since the last peer event.
    loss_in_rr: Option<f32>,
    loss_out_rr: Option<f32>,
    rtt_rr: Option<Duration>,
    estimate_bps: Option<u64>,
    /// Worst interarrival jitter of either direction over the last interval (and the one being
    /// collected).
    jitter: Option<Duration>,
    jitter_next: Option<Duration>,
    /// Payload types this participant's retransmissions use (refreshed once per interval).
    rtx_pts: [u8; 8],
    rtx_pt_count: u8,
}

/// Folds a cumulative per-stream report into `marks`, returning the growth since the last one
/// (a stream that restarted counts from zero).
fn growth(marks: &mut Vec<StreamMark>, mid: Mid, rid: Option<Rid>, now: [u64; 4]) -> [u64; 4] {
    let [packets, bytes, nacks, plis] = now;
    let d = |new: u64, old: u64| if new >= old { new - old } else { new };
    match marks.iter_mut().find(|m| m.mid == mid && m.rid == rid) {
        Some(m) => {
            let out = [
                d(packets, m.packets),
                d(bytes, m.bytes),
                d(nacks, m.nacks),
                d(plis, m.plis),
            ];
            *m = StreamMark {
                mid,
                rid,
                packets,
                bytes,
                nacks,
                plis,
            };
            out
        }
        None => {
            // Bounded: a participant has a handful of m-lines (16 x 3 layers at most).
            if marks.len() < 64 {
                marks.push(StreamMark {
                    mid,
                    rid,
                    packets,
                    bytes,
                    nacks,
                    plis,
                });
            }
            now
        }
    }
}

fn worst(a: Option<f32>, b: Option<f32>) -> Option<f32> {
    let b = b.filter(|v| v.is_finite());
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// RTP timestamp units to time.
fn jitter_time(units: u32, clock_rate: u32) -> Duration {
    Duration::from_micros(u64::from(units) * 1_000_000 / u64::from(clock_rate.max(1)))
}

impl PeerCounters {
    /// Fraction (0..1) lost of what we send this participant, last interval.
    pub(crate) fn loss_out(&self) -> Option<f32> {
        self.loss_out_twcc
    }

    /// Fraction lost of what this participant sends us, last interval.
    pub(crate) fn loss_in(&self) -> Option<f32> {
        self.loss_in_twcc
    }

    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// NACKs this participant sent about what we send it, since it joined.
    pub(crate) fn nacks_received(&self) -> u64 {
        self.totals.nacks_received
    }

    pub(crate) fn jitter(&self) -> Option<Duration> {
        self.jitter
    }

    pub(crate) fn silent(&self) -> bool {
        self.silent_for >= SILENCE_LOST
    }

    fn note_jitter(&mut self, j: Duration) {
        self.jitter_next = Some(self.jitter_next.map_or(j, |x| x.max(j)));
    }

    fn ingress(&mut self, s: &MediaIngressStats) {
        let [p, b, n, k] = growth(
            &mut self.ingress,
            s.mid,
            s.rid,
            [s.packets, s.bytes, s.nacks, s.plis + s.firs],
        );
        self.totals.rtp_packets_in += p;
        self.totals.rtp_bytes_in += b;
        self.totals.nacks_sent += n;
        self.totals.plis_sent += k;
        self.loss_in_rr = worst(self.loss_in_rr, s.loss);
    }

    fn egress(&mut self, s: &MediaEgressStats) {
        let [p, b, n, k] = growth(
            &mut self.egress,
            s.mid,
            s.rid,
            [s.packets, s.bytes, s.nacks, s.plis + s.firs],
        );
        self.totals.rtp_packets_out += p;
        self.totals.rtp_bytes_out += b;
        self.totals.nacks_received += n;
        self.totals.plis_received += k;
        self.loss_out_rr = worst(self.loss_out_rr, s.loss);
        if let Some(r) = s.rtt {
            self.rtt_rr = Some(self.rtt_rr.map_or(r, |x| x.max(r)));
        }
    }

    /// The peer-level event opens each interval (str0m emits it before the stream events):
    /// rates are computed over the previous interval, and the per-stream worst figures of the
    /// previous interval become current.
    fn peer(&mut self, s: &PeerStats) {
        let (pk_in, pk_out) = (self.totals.rtp_packets_in, self.totals.rtp_packets_out);
        if let Some((t, w_in, w_out, p_in, p_out)) = self.prev {
            let dt = s.timestamp.saturating_duration_since(t).as_secs_f64();
            if dt > 0.0 {
                let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / dt;
                self.kbps_in = rate(s.peer_bytes_rx, w_in) * 8.0 / 1000.0;
                self.kbps_out = rate(s.peer_bytes_tx, w_out) * 8.0 / 1000.0;
                self.pps_in = rate(pk_in, p_in);
                self.pps_out = rate(pk_out, p_out);
                if s.peer_bytes_rx == w_in {
                    self.silent_for += s.timestamp.saturating_duration_since(t);
                } else {
                    self.silent_for = Duration::ZERO;
                }
            }
        }
        self.prev = Some((s.timestamp, s.peer_bytes_rx, s.peer_bytes_tx, pk_in, pk_out));
        let pair_rtt = s
            .selected_candidate_pair
            .as_ref()
            .and_then(|p| p.current_round_trip_time);
        self.rtt = pair_rtt.or(s.rtt).or(self.rtt_rr);
        self.loss_in_twcc = s.ingress_loss_fraction.filter(|v| v.is_finite());
        self.loss_out_twcc = s.egress_loss_fraction.filter(|v| v.is_finite());
        self.estimate_bps = s.bwe_tx.map(|b| b.as_u64());
        // Receiver-report figures are per interval: start collecting the next one. Keep the
        // last values for display until then.
        if self.loss_in_twcc.is_none() {
            self.loss_in_twcc = self.loss_in_rr;
        }
        if self.loss_out_twcc.is_none() {
            self.loss_out_twcc = self.loss_out_rr;
        }
        self.loss_in_rr = None;
        self.loss_out_rr = None;
        self.rtt_rr = None;
        if self.jitter_next.is_some() {
            self.jitter = self.jitter_next.take();
        }
    }

    /// Counts a datagram sent to this participant if it is an RTP retransmission. SRTP leaves
    /// the RTP header in clear, so the payload type is readable.
    #[inline]
    pub(crate) fn on_transmit(&mut self, datagram: &[u8]) {
        if self.rtx_pt_count == 0 || datagram.len() < 12 || datagram[0] >> 6 != 2 {
            return;
        }
        let pt = datagram[1] & 0x7f;
        // 64..=95 are RTCP packet types seen through the marker bit (RFC 5761).
        if (64..=95).contains(&pt) {
            return;
        }
        if self.rtx_pts[..usize::from(self.rtx_pt_count)].contains(&pt) {
            self.totals.rtx_sent += 1;
        }
    }
}

impl Peer {
    /// Feeds one of str0m's stats events.
    pub(crate) fn on_peer_stats(&mut self, s: &PeerStats) {
        self.counters.peer(s);
        // Payload types only change on renegotiation: refreshing once per interval is enough.
        let mut n = 0;
        for p in self.rtc.codec_config().params() {
            if let Some(rtx) = p.resend()
                && n < self.counters.rtx_pts.len()
            {
                self.counters.rtx_pts[n] = *rtx;
                n += 1;
            }
        }
        self.counters.rtx_pt_count = n as u8;
    }

    pub(crate) fn on_ingress_stats(&mut self, s: &MediaIngressStats) {
        self.counters.ingress(s);
        // Audio only: video packets of one frame share a timestamp and are paced out, and layer
        // switches jump it, so RFC 3550 jitter of video says little about the link.
        if let Some(t) = self
            .tracks_in
            .iter()
            .find(|t| t.mid == s.mid && t.kind == MediaKind::Audio)
        {
            self.counters
                .note_jitter(jitter_time(s.jitter, t.clock_rate));
        }
    }

    pub(crate) fn on_egress_stats(&mut self, s: &MediaEgressStats) {
        self.counters.egress(s);
        if let (Some(r), Some(t)) = (
            &s.remote,
            self.tracks_out
                .iter()
                .find(|t| t.mid() == Some(s.mid) && t.kind == MediaKind::Audio),
        ) {
            let rate = t.forwarder.clock_rate();
            self.counters.note_jitter(jitter_time(r.jitter, rate));
        }
    }

    /// What this participant's connection quality is judged on.
    pub(crate) fn quality_input(&self) -> crate::quality::QualityInput {
        let c = &self.counters;
        crate::quality::QualityInput {
            connected: self.connected,
            silent: c.silent(),
            loss: worst(c.loss_in(), c.loss_out()),
            rtt: c.rtt(),
            jitter: c.jitter(),
            shortfall: self.adapt.shortfall,
        }
    }

    /// The operator's view of this participant.
    pub(crate) fn media_stats(&self) -> PeerMediaStats {
        let c = &self.counters;
        let count = |k: MediaKind| self.tracks_in.iter().filter(|t| t.kind == k).count() as u8;
        PeerMediaStats {
            id: self.id.clone(),
            connected: self.connected,
            path: self.path,
            totals: c.totals,
            pps_in: c.pps_in,
            pps_out: c.pps_out,
            kbps_in: c.kbps_in,
            kbps_out: c.kbps_out,
            rtt: c.rtt,
            loss_in: c.loss_in_twcc,
            loss_out: c.loss_out_twcc,
            estimate_bps: self.adapt.estimate_bps.or(c.estimate_bps),
            silent: c.silent(),
            quality: self.quality.shown(),
            audio_tracks: count(MediaKind::Audio),
            video_tracks: count(MediaKind::Video),
            layers: self
                .tracks_out
                .iter()
                .filter(|t| t.kind == MediaKind::Video && matches!(t.state, OutState::Open(_)))
                .map(|t| LayerReceived {
                    publisher: t.publisher.clone(),
                    layer: t.forwarder.current(),
                })
                .collect(),
            // Chosen by the participant, or video paused by the allocator for bandwidth.
            audio_only: self.adapt.audio_only
                || self.adapt.allocation().decisions.iter().any(|d| {
                    d.kind != kham_bwe::Kind::Audio
                        && d.paused == Some(kham_bwe::Reason::BandwidthDrop)
                }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn peer_event(t: Instant, rx: u64, tx: u64) -> PeerStats {
        PeerStats {
            peer_bytes_rx: rx,
            peer_bytes_tx: tx,
            bytes_rx: 0,
            bytes_tx: 0,
            timestamp: t,
            bwe_tx: None,
            egress_loss_fraction: None,
            ingress_loss_fraction: None,
            rtt: None,
            selected_candidate_pair: None,
        }
    }

    fn ingress(
        t: Instant,
        mid: &str,
        packets: u64,
        nacks: u64,
        loss: Option<f32>,
    ) -> MediaIngressStats {
        MediaIngressStats {
            mid: mid.into(),
            rid: None,
            bytes: packets * 1000,
            packets,
            firs: 0,
            plis: 1,
            nacks,
            jitter: 0,
            rtt: None,
            loss,
            timestamp: t,
            remote: None,
        }
    }

    #[test]
    fn totals_grow_by_deltas_and_rates_use_event_time() {
        let t0 = Instant::now();
        let mut c = PeerCounters::default();
        c.peer(&peer_event(t0, 0, 0));
        c.ingress(&ingress(t0, "0", 50, 1, Some(0.02)));
        c.ingress(&ingress(t0, "1", 30, 0, None));
        let t1 = t0 + Duration::from_secs(2);
        c.peer(&peer_event(t1, 250_000, 500_000));
        assert_eq!(c.totals.rtp_packets_in, 80);
        assert_eq!(c.totals.rtp_bytes_in, 80_000);
        assert_eq!(c.totals.plis_sent, 2);
        assert!((c.pps_in - 40.0).abs() < 1e-9, "{}", c.pps_in);
        assert!((c.kbps_in - 1000.0).abs() < 1e-9, "{}", c.kbps_in);
        assert!((c.kbps_out - 2000.0).abs() < 1e-9);
        // The receiver-report loss of the last interval is shown when TWCC gives none.
        assert_eq!(c.loss_in_twcc, Some(0.02));
        // Cumulative counters again: only the growth is added; a restarted stream counts anew.
        c.ingress(&ingress(t1, "0", 70, 3, None));
        c.ingress(&ingress(t1, "1", 5, 0, None));
        assert_eq!(c.totals.rtp_packets_in, 80 + 20 + 5);
        assert_eq!(c.totals.nacks_sent, 3);
    }

    #[test]
    fn silence_is_counted_in_event_time() {
        let t0 = Instant::now();
        let mut c = PeerCounters::default();
        c.peer(&peer_event(t0, 100, 100));
        for s in 1..=3 {
            c.peer(&peer_event(t0 + Duration::from_secs(s), 100, 200));
        }
        assert!(c.silent_for >= SILENCE_LOST);
        c.peer(&peer_event(t0 + Duration::from_secs(4), 101, 200));
        assert_eq!(c.silent_for, Duration::ZERO);
    }

    #[test]
    fn counts_only_rtx_payload_types() {
        let mut c = PeerCounters::default();
        c.rtx_pts[0] = 97;
        c.rtx_pt_count = 1;
        let mut rtp = [0u8; 20];
        rtp[0] = 0x80;
        rtp[1] = 96; // media
        c.on_transmit(&rtp);
        rtp[1] = 0x80 | 97; // RTX with the marker bit
        c.on_transmit(&rtp);
        rtp[1] = 200; // RTCP sender report
        c.on_transmit(&rtp);
        c.on_transmit(&[0x00, 0x01, 0, 0]); // STUN
        assert_eq!(c.totals.rtx_sent, 1);
    }
}
