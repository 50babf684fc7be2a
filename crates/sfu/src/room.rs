//! The room engine: every participant's `Rtc`, and the forwarding between them.
//!
//! Where a packet goes: `poll_output` drains each peer's `Rtc`; an `Event::RtpPacket` from a
//! publisher lands in [`Room::forward`], which asks each subscriber's [`Forwarder`] whether and how
//! to send it and writes it to that subscriber's `StreamTx`. Which layer a subscriber gets is
//! `TrackOut::desired_layer` (fixed at the middle layer until the allocator sets it), resolved
//! against the layers actually flowing by [`TrackIn::effective_layer`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kham_proto::{ParticipantId, TrackInfo};
use str0m::bwe::BweKind;
use str0m::format::Codec as StrCodec;
use str0m::media::{KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{Receive, Transmit};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Event, IceConnectionState, Input, Output};

use crate::adapt::{ALLOCATION_INTERVAL, Adaptation, ImageDemand, allocate};
use crate::codec::{Codec, is_keyframe_start, parse_vp8, vp8_keyframe_size};
use crate::error::SfuError;
use crate::forward::{Forwarder, InPacket, Want};
use crate::peer::{Peer, Permissions, ViewProblem};
use crate::red::{forwarded, write_red};
use crate::stats::STATS_INTERVAL;
use crate::track::{LogOnce, MAX_LAYERS, OutState, RedOut, TrackIn, TrackOut};
use crate::{audio_rate, dynacast, notify, reconnect};

/// Room settings.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Addresses announced as ICE host candidates (the media socket, or the public address).
    pub candidates: Vec<SocketAddr>,
    /// Addresses announced as passive ICE-TCP host candidates (RFC 6544), for clients whose
    /// UDP is blocked; the shell owns the listener and the RFC 4571 framing (`rfc4571.rs`).
    pub tcp_candidates: Vec<SocketAddr>,
    /// Media sessions allowed at once.
    pub max_peers: usize,
    /// Simulcast layer each subscriber receives until the allocator decides (1 = middle).
    pub default_layer: u8,
    /// Keyframe requests to a publisher layer are at most this frequent.
    pub keyframe_request_interval: Duration,
    /// How each subscriber's layers are chosen.
    pub adaptation: Adaptation,
    /// A participant whose media stopped is kept this long for it to come back
    /// (`reconnect.rs`) before it is lost and removed.
    pub reconnect_grace: Duration,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            candidates: Vec::new(),
            tcp_candidates: Vec::new(),
            max_peers: 8,
            default_layer: 1,
            keyframe_request_interval: Duration::from_millis(500),
            adaptation: Adaptation::default(),
            reconnect_grace: Duration::from_secs(30),
        }
    }
}

/// Something the signaling layer must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    /// Send this offer to the participant; its answer goes to [`Room::accept_answer`].
    Offer {
        peer: ParticipantId,
        sdp: String,
        tracks: Vec<TrackInfo>,
    },
    /// ICE and DTLS completed for this participant.
    Connected { peer: ParticipantId },
    /// The participant's media stopped (no consent check, or nothing at all arriving); it is
    /// kept for [`RoomConfig::reconnect_grace`].
    Reconnecting { peer: ParticipantId },
    /// Its media flows again (after [`RoomEvent::Reconnecting`]).
    Reconnected { peer: ParticipantId },
    /// The participant's media connection is gone (not back within the reconnect grace, or a
    /// fatal error); it has been removed from the room.
    Lost { peer: ParticipantId },
    /// The full state of this subscriber's received videos changed (send `video_state`).
    VideoState {
        peer: ParticipantId,
        tracks: Vec<kham_proto::VideoState>,
    },
    /// Dynacast: tell this publisher which encodings of its video `mid` to send.
    PublishLayers {
        peer: ParticipantId,
        mid: String,
        layers: Vec<kham_proto::LayerActive>,
    },
    /// Tell this publisher to cap the Opus bitrate of its audio `mid` (`None`: its default)
    /// and to put `ptime` ms of speech in a packet (`None`: its default).
    AudioRate {
        peer: ParticipantId,
        mid: String,
        max_bitrate: Option<u32>,
        ptime: Option<u16>,
    },
    /// Someone's shown connection quality changed: everyone's scores (send `quality` to all).
    Quality {
        scores: Vec<kham_proto::QualityEntry>,
    },
}

/// What [`Room::poll_output`] yields.
#[derive(Debug)]
pub enum RoomOutput {
    /// Send this datagram.
    Transmit(Transmit),
    /// Tell the signaling layer.
    Event(RoomEvent),
    /// Nothing more until this time (or new input).
    Timeout(Instant),
}

/// Counters since the room was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomStats {
    pub rtp_in: u64,
    pub rtp_out: u64,
    pub keyframe_requests: u64,
    pub layer_switches: u64,
    /// Allocator decisions, by `kham_bwe::Reason::index`.
    pub allocation_switches: [u64; kham_bwe::Reason::ALL.len()],
}

/// One consultation's media: the participants' `Rtc`s and the forwarding between them.
pub struct Room {
    config: RoomConfig,
    peers: Vec<Peer>,
    events: VecDeque<RoomEvent>,
    stats: RoomStats,
    /// xorshift state for the first sequence number of each outgoing stream.
    rng: u64,
    /// Latest time seen in any input (starts at creation).
    last_now: Instant,
    /// When subscribers' allocations are next due.
    next_allocation: Instant,
    /// Source of `TrackOut::key`.
    next_key: u32,
    /// When qualities are next judged.
    next_quality: Instant,
    /// The frame being forwarded to subscribers (`vitals.rs`), reused: no allocation per frame.
    vitals_buf: Vec<u8>,
}

impl Room {
    /// A new empty room at time `now`. `seed` drives the only randomness (initial sequence
    /// numbers).
    pub fn new(config: RoomConfig, seed: u64, now: Instant) -> Self {
        Room {
            config,
            peers: Vec::new(),
            events: VecDeque::new(),
            stats: RoomStats::default(),
            rng: seed | 1,
            last_now: now,
            next_allocation: now,
            next_key: 0,
            next_quality: now,
            vitals_buf: Vec::with_capacity(crate::vitals::MAX_IMAGE_FRAME + 256),
        }
    }

    /// Participants with a media session.
    pub fn peer_ids(&self) -> Vec<ParticipantId> {
        self.peers.iter().map(|p| p.id.clone()).collect()
    }

    /// Number of media sessions.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether the room has no media session.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> RoomStats {
        self.stats
    }

    /// Each participant's media figures (`stats.rs`); meant to be read at most once a second.
    pub fn media_stats(&self) -> Vec<crate::PeerMediaStats> {
        self.peers.iter().map(|p| p.media_stats()).collect()
    }

    /// Starts a participant's media session from its offer, or renegotiates the session it has
    /// (a client's new offer: the SDK's packet-time change, a track added); returns the answer
    /// SDP.
    pub fn add_peer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        perms: Permissions,
        offer: &str,
    ) -> Result<String, SfuError> {
        if let Some(peer) = self.peers.iter_mut().find(|p| p.id == id) {
            return renegotiate(peer, offer);
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(SfuError::RoomFull);
        }
        // Before str0m parses anything: parsing and answering hundreds of m-lines stalls
        // every room of the shard.
        crate::sdp_check::check_offer(offer)?;
        // Without the publish grant nothing the participant sends would be forwarded: answer
        // its send m-lines `inactive` so its browser does not upload at all.
        let receive_only;
        let offer = if perms.publish {
            offer
        } else {
            receive_only = crate::sdp_check::receive_only(offer);
            receive_only.as_str()
        };
        let mut peer = Peer::new(
            now,
            id,
            perms,
            &self.config.candidates,
            &self.config.tcp_candidates,
            &self.config.adaptation,
        )?;
        let answer = peer.accept_offer(offer)?;
        if perms.subscribe {
            // Everything already published in the room.
            for other in &self.peers {
                for t in &other.tracks_in {
                    let seq = next_seq(&mut self.rng);
                    self.next_key += 1;
                    peer.tracks_out.push(new_track_out(
                        &self.config,
                        self.next_key,
                        seq,
                        other.id.clone(),
                        t,
                    ));
                }
            }
        }
        self.peers.push(peer);
        Ok(answer)
    }

    /// A participant's offer with the video m-lines it names screen shares (`screen`: `None`
    /// keeps what an earlier offer said; an old client never says). The list is checked
    /// against the offer before anything else is done with it.
    pub fn offer(
        &mut self,
        now: Instant,
        id: ParticipantId,
        perms: Permissions,
        offer: &str,
        screen: Option<&[String]>,
    ) -> Result<String, SfuError> {
        let mids = screen.map(|s| crate::screen::check(offer, s)).transpose()?;
        let answer = self.add_peer(now, id.clone(), perms, offer)?;
        if let Some(mids) = mids {
            crate::screen::apply(&mut self.peers, &id, mids);
        }
        Ok(answer)
    }

    /// Applies a participant's answer to the last server offer.
    pub fn accept_answer(&mut self, id: &ParticipantId, answer: &str) -> Result<(), SfuError> {
        self.peer_mut(id)?.accept_answer(answer)?;
        tracing::debug!(peer = %id, "answer accepted");
        Ok(())
    }

    /// Restarts a participant's ICE: the next server offer carries new credentials (a client
    /// whose ICE failed, or whose network changed). Nothing to do while one is negotiated.
    pub fn request_ice_restart(&mut self, id: &ParticipantId) -> Result<(), SfuError> {
        let p = self.peer_mut(id)?;
        if !p.restart_offered {
            p.restart_wanted = true;
            p.dirty = true;
        }
        Ok(())
    }

    /// Media that stopped (`reconnect.rs`): marked, brought back, or lost after the grace.
    fn reconnects(&mut self, now: Instant) {
        let grace = self.config.reconnect_grace;
        for i in 0..self.peers.len() {
            let p = &mut self.peers[i];
            if reconnect::update(now, grace, p, &mut self.events) == reconnect::Change::Back {
                if std::mem::take(&mut p.restarted)
                    && let Some(init) = self.config.adaptation.initial_estimate()
                {
                    // Possibly a new network: the old estimate says nothing about it.
                    p.rtc.bwe().reset(init);
                    p.adapt.estimate_bps = None;
                    p.adapt.estimator_restarted(now);
                }
                self.keyframes_after_gap(i);
            }
        }
    }

    /// Peer `i`'s media had a gap: its decoders lost their references, and so did those of
    /// everyone receiving its video. Keyframes for all of them, rather than waiting for each
    /// browser to give up on retransmissions (behind a network switch Chromium asked only
    /// after 4-6 s).
    fn keyframes_after_gap(&mut self, i: usize) {
        let id = self.peers[i].id.clone();
        // Video only: a keyframe request on an audio track goes unanswered and would be
        // reported as a publisher that ignores requests.
        let mids: Vec<Mid> = self.peers[i]
            .tracks_out
            .iter()
            .filter(|t| t.kind == MediaKind::Video)
            .filter_map(|t| t.mid())
            .collect();
        for mid in mids {
            self.keyframe_requested_by_subscriber(i, mid);
        }
        let viewers: Vec<(usize, Mid)> = (0..self.peers.len())
            .filter(|&j| j != i)
            .flat_map(|j| {
                self.peers[j]
                    .tracks_out
                    .iter()
                    .filter(|t| t.publisher == id && t.kind == MediaKind::Video)
                    .filter_map(move |t| Some((j, t.mid()?)))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (j, mid) in viewers {
            self.keyframe_requested_by_subscriber(j, mid);
        }
    }

    /// Removes a participant's media session; others' m-lines carrying it are stopped.
    pub fn remove_peer(&mut self, id: &ParticipantId) -> bool {
        let Some(i) = self.peers.iter().position(|p| p.id == *id) else {
            return false;
        };
        let mut peer = self.peers.swap_remove(i);
        peer.rtc.disconnect();
        for p in &mut self.peers {
            for t in p.tracks_out.iter_mut().filter(|t| t.publisher == *id) {
                t.gone = true;
                p.dirty = true;
            }
        }
        true
    }

    /// Asks for a given simulcast layer of `publisher`'s video for `subscriber` (`None` pauses).
    /// The switch happens at the next keyframe of that layer.
    pub fn set_layer(
        &mut self,
        subscriber: &ParticipantId,
        publisher: &ParticipantId,
        layer: Option<u8>,
    ) -> Result<(), SfuError> {
        let peer = self.peer_mut(subscriber)?;
        for t in peer
            .tracks_out
            .iter_mut()
            .filter(|t| t.publisher == *publisher && t.kind == MediaKind::Video)
        {
            match layer {
                Some(l) => {
                    t.desired_layer = l.min(MAX_LAYERS as u8 - 1);
                    if t.forwarder.target().is_none() {
                        t.forwarder.set_target(Some(t.desired_layer));
                    }
                }
                None => t.forwarder.set_target(None),
            }
        }
        Ok(())
    }

    /// The layer currently forwarded of `publisher`'s video to `subscriber`.
    pub fn current_layer(
        &self,
        subscriber: &ParticipantId,
        publisher: &ParticipantId,
    ) -> Option<u8> {
        let peer = self.peers.iter().find(|p| p.id == *subscriber)?;
        peer.tracks_out
            .iter()
            .find(|t| t.publisher == *publisher && t.kind == MediaKind::Video)?
            .forwarder
            .current()
    }

    /// Whether a datagram belongs to one of this room's peers (ICE username or known address).
    pub fn accepts(&self, input: &Input) -> bool {
        self.peers.iter().any(|p| p.rtc.accepts(input))
    }

    /// Feeds a datagram received on the media socket.
    pub fn handle_receive(&mut self, now: Instant, r: Receive) -> Result<(), SfuError> {
        self.handle_datagram(Input::Receive(now, r))
    }

    /// Feeds a datagram already wrapped as str0m input (the shell checked [`Self::accepts`]).
    pub fn handle_datagram(&mut self, input: Input) -> Result<(), SfuError> {
        let Input::Receive(now, _) = &input else {
            return Err(SfuError::NotOurs);
        };
        self.advance(*now);
        let peer = self
            .peers
            .iter_mut()
            .find(|p| p.rtc.accepts(&input))
            .ok_or(SfuError::NotOurs)?;
        peer.dirty = true;
        peer.adapt.gap.heard(*now);
        peer.rtc
            .handle_input(input)
            .map_err(|e| SfuError::Input(e.to_string()))
    }

    /// Drives time: call at (or after) the instant of the last `Timeout` output.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if now >= self.next_allocation {
            self.next_allocation = now + ALLOCATION_INTERVAL;
            self.allocate_all(now);
        }
        self.reconnects(now);
        for p in &mut self.peers {
            if p.next_timeout.is_none_or(|t| t <= now) {
                if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(peer = %p.id, error = %e, "timeout handling failed");
                    p.lost = true;
                }
                p.dirty = true;
            }
        }
    }

    fn advance(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
    }

    /// Next output. Call until it returns `Timeout`, after every input.
    pub fn poll_output(&mut self) -> RoomOutput {
        loop {
            if let Some(e) = self.events.pop_front() {
                return RoomOutput::Event(e);
            }
            if let Some(i) = self.peers.iter().position(|p| p.lost) {
                let id = self.peers[i].id.clone();
                self.remove_peer(&id);
                return RoomOutput::Event(RoomEvent::Lost { peer: id });
            }
            let Some(i) = self.peers.iter().position(|p| p.dirty) else {
                // With no peers nothing is due: wake in a second anyway, it costs nothing.
                let next = self.peers.iter().filter_map(|p| p.next_timeout).min();
                let next = next.unwrap_or(self.last_now + Duration::from_secs(1));
                let next = if self.peers.is_empty() {
                    next
                } else {
                    next.min(self.next_allocation)
                };
                // str0m may ask to be woken at the instant it was just woken (its pacer with the
                // estimator on); at least a millisecond keeps a shell, virtual or real, from
                // spinning on it.
                return RoomOutput::Timeout(next.max(self.last_now + Duration::from_millis(1)));
            };
            if let Some((sdp, tracks)) = self.peers[i].negotiate_if_needed() {
                let peer = self.peers[i].id.clone();
                tracing::debug!(%peer, tracks = tracks.len(), "server offer");
                return RoomOutput::Event(RoomEvent::Offer { peer, sdp, tracks });
            }
            match self.peers[i].rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let p = &mut self.peers[i];
                    p.counters.on_transmit(&t.contents);
                    p.path = Some(crate::stats::MediaPath {
                        tcp: t.proto == str0m::net::Protocol::Tcp,
                        remote: t.destination,
                    });
                    return RoomOutput::Transmit(t);
                }
                Ok(Output::Timeout(t)) => {
                    let p = &mut self.peers[i];
                    p.next_timeout = Some(t);
                    p.dirty = false;
                }
                Ok(Output::Event(e)) => self.handle_event(i, e),
                Err(e) => {
                    tracing::debug!(peer = %self.peers[i].id, error = %e, "poll_output failed");
                    self.peers[i].lost = true;
                }
            }
        }
    }

    fn handle_event(&mut self, i: usize, e: Event) {
        match e {
            Event::RtpPacket(pkt) => self.forward(i, pkt),
            Event::Connected => {
                tracing::debug!(peer = %self.peers[i].id, "media connected");
                self.peers[i].connected = true;
                self.events.push_back(RoomEvent::Connected {
                    peer: self.peers[i].id.clone(),
                });
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                // ICE-lite: the browser stopped its consent checks. Not over yet: checks that
                // come back revive the agent (`reconnect.rs`).
                self.peers[i].ice_down = true;
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => {
                let p = &mut self.peers[i];
                p.ice_down = false;
                // An ICE restart's new path is nominated (the client asks for one when its
                // path goes silent: a network switch) before the peer was ever marked
                // reconnecting: what was sent in the switch is lost, so keyframes now. A gap long
                // enough to mark it is handled when its media is back (`reconnects`).
                if p.reconnecting_since.is_none() && std::mem::take(&mut p.restarted) {
                    tracing::debug!(peer = %p.id, "new path after an ICE restart");
                    self.keyframes_after_gap(i);
                }
            }
            Event::MediaAdded(m) if m.direction.is_receiving() => {
                self.media_added(i, m.mid, m.kind, m.simulcast)
            }
            Event::KeyframeRequest(req) => self.keyframe_requested_by_subscriber(i, req.mid),
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                let p = &mut self.peers[i];
                let e = estimate.as_u64();
                if p.adapt
                    .estimate_bps
                    .is_none_or(|old| e.abs_diff(old) * 5 > old)
                {
                    tracing::debug!(peer = %p.id, estimate_bps = e, "egress estimate");
                }
                p.adapt.estimate_bps = Some(e);
            }
            Event::ChannelOpen(id, label) => self.peers[i].vitals.opened(id, &label),
            Event::ChannelClose(id) => self.peers[i].vitals.closed(id),
            Event::ChannelData(d) => self.vitals_frame(i, d),
            Event::Closed => self.peers[i].lost = true,
            Event::PeerStats(s) => self.peers[i].on_peer_stats(&s),
            Event::MediaIngressStats(s) => self.peers[i].on_ingress_stats(&s),
            Event::MediaEgressStats(s) => self.peers[i].on_egress_stats(&s),
            _ => {}
        }
    }

    fn media_added(
        &mut self,
        i: usize,
        mid: Mid,
        kind: MediaKind,
        simulcast: Option<str0m::media::Simulcast>,
    ) {
        if !self.peers[i].perms.publish || self.peers[i].tracks_in.iter().any(|t| t.mid == mid) {
            return;
        }
        // Our answer carries `a=simulcast:recv` with the offered rids, so the browser sends all.
        let rids = simulcast
            .map(|s| if s.recv.is_empty() { s.send } else { s.recv })
            .map(|layers| layers.iter().map(|l| l.rid).collect())
            .unwrap_or_default();
        let mut track = TrackIn::new(mid, kind, rids);
        track.screen = kind == MediaKind::Video && self.peers[i].screen_mids.contains(&mid);
        tracing::debug!(peer = %self.peers[i].id, %mid, ?kind, rids = ?track.rids, "track published");
        let publisher = self.peers[i].id.clone();
        for j in 0..self.peers.len() {
            if j != i && self.peers[j].perms.subscribe {
                self.next_key += 1;
                let out = new_track_out(
                    &self.config,
                    self.next_key,
                    next_seq(&mut self.rng),
                    publisher.clone(),
                    &track,
                );
                self.peers[j].tracks_out.push(out);
                self.peers[j].dirty = true;
            }
        }
        self.peers[i].tracks_in.push(track);
    }

    /// Forwards one vitals frame from peer `i` to every other participant that takes vital
    /// signs (`vitals.rs`). Bad framing, or a sender without the grants, is dropped.
    fn vitals_frame(&mut self, i: usize, d: str0m::channel::ChannelData) {
        use crate::vitals::{FrameError, Lane, check_frame, forwarded_frame};
        let now = self.last_now;
        let publisher = &mut self.peers[i];
        let Some(lane) = publisher.vitals.lane(d.id) else {
            return;
        };
        let allowed = publisher.perms.publish && publisher.perms.health_data;
        let checked = if allowed {
            check_frame(lane, d.binary, &d.data)
        } else {
            Err(FrameError::NotAllowed)
        };
        if let Err(e) = checked {
            if publisher.vitals.drop_frame() {
                tracing::debug!(peer = %publisher.id, reason = %e, "vitals frame dropped (logged once)");
            }
            return;
        }
        publisher.vitals.record(now, lane, d.data.len());
        if let (Lane::Image, Some(&kind)) = (lane, d.data.get(1)) {
            publisher.vitals.image_frame(now, kind);
        }
        forwarded_frame(publisher.id.as_str(), &d.data, &mut self.vitals_buf);
        let (_, rest) = split_one(&mut self.peers, i);
        for sub in rest {
            if !sub.connected || !sub.perms.subscribe || !sub.perms.health_data {
                continue;
            }
            if lane == Lane::Wave && !sub.vitals.wave_ok() {
                continue;
            }
            let Some(id) = sub.vitals.channel(lane) else {
                continue;
            };
            // A full SCTP send buffer drops the frame (a waveform is worthless late; numerics
            // come again within a second).
            let Some(mut ch) = sub.rtc.channel(id) else {
                continue;
            };
            if matches!(ch.write(true, &self.vitals_buf), Ok(true)) {
                sub.dirty = true;
            } else if sub.vitals.refused() {
                tracing::debug!(subscriber = %sub.id, "vitals frame refused by a full SCTP send buffer (logged once)");
            }
        }
    }

    /// Forwards one publisher packet to every subscriber of its track.
    fn forward(&mut self, i: usize, pkt: RtpPacket) {
        self.stats.rtp_in += 1;
        let now = pkt.timestamp;
        let ssrc = pkt.header.ssrc;
        let pt = *pkt.header.payload_type;
        let Some((ti, layer)) = self.locate(i, ssrc) else {
            return;
        };
        let publisher = &mut self.peers[i];
        // A RED payload type is folded onto its primary codec's parameters.
        let params = publisher
            .rtc
            .codec_config()
            .find(|p| *p.pt() == pt || p.red().is_some_and(|r| *r == pt))
            .copied();
        let red_in = params.and_then(|p| p.red()).is_some_and(|r| *r == pt);
        let track = &mut publisher.tracks_in[usize::from(ti)];
        if let Some(params) = params {
            track.clock_rate = params.spec().clock_rate.get();
            track.codec = match params.spec().codec {
                StrCodec::Opus => Codec::Opus,
                StrCodec::Vp8 => Codec::Vp8,
                StrCodec::H264 => Codec::H264,
                _ => Codec::Other,
            };
        }
        if track.seen[usize::from(layer)].is_none() {
            tracing::debug!(publisher = %publisher.id, mid = %track.mid, layer, "first packet of layer");
        }
        track.on_packet(layer, now);
        let vp8 = if track.codec == Codec::Vp8 {
            parse_vp8(&pkt.payload)
        } else {
            None
        };
        let tid = vp8.and_then(|v| v.tid).unwrap_or(0);
        // A malformed RED payload is dropped.
        let Some(payload) = forwarded(&pkt.payload, red_in) else {
            return;
        };
        // What a subscriber's link carries: header, the payload forwarded (a publisher's RED is
        // forwarded as its primary block; RED to a subscriber doubles it in `adapt`) and the
        // UDP/IP overhead. Counting the publisher's RED payload made Chromium's audio look like
        // 48 kbit/s when 33 reach the subscriber, and a thin link's floor (audio plus the
        // lowest video layer) look a third higher than it is: behind metro-4 (about 100
        // kbit/s) video paused at 55-65 kbit/s estimated and stayed paused for 35 s.
        track.meter.record(
            now,
            layer,
            tid,
            payload.len() + pkt.header.header_len + 28,
            pkt.header.marker,
        );
        // Parsed once per packet for all subscribers; each gets its own picture-id patch.
        let vp8_desc = match vp8 {
            Some(v) if v.picture_id.is_some() => {
                str0m::rtp::Vp8Descriptor::parse(&pkt.payload).ok()
            }
            _ => None,
        };
        let keyframe = is_keyframe_start(track.codec, &pkt.payload);
        if keyframe && track.kind == MediaKind::Video {
            track.on_keyframe(layer, now);
            if let Some(size) = vp8.and_then(|_| vp8_keyframe_size(&pkt.payload)) {
                track.sizes[usize::from(layer)] = Some(size);
            }
        }
        let input = InPacket {
            layer,
            seq: *pkt.seq_no,
            ts: pkt.header.timestamp,
            at: now,
            keyframe,
            vp8,
        };
        let (source_mid, is_video) = (track.mid, track.kind == MediaKind::Video);
        let ext = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let mut want_keyframe = [false; MAX_LAYERS];
        // One copy of the payload per incoming packet, shared by every subscriber that gets it
        // unchanged (str0m keeps an `Arc<[u8]>` and patches VP8 descriptors on serialization):
        // a reference count per subscriber instead of an allocation per subscriber.
        let mut shared: Option<Arc<[u8]>> = None;
        let mut switches = 0;
        let mut sent = 0;
        let (pubs, rest) = split_one(&mut self.peers, i);
        // Borrowed, not cloned: a clone was a heap allocation per packet.
        let publisher_id = &pubs.id;
        let track = &pubs.tracks_in[usize::from(ti)];
        for sub in rest {
            // Nothing is written before the subscriber's DTLS is up: str0m would queue it and
            // flush stale media in a burst. The forwarder asks for a keyframe once it is.
            if !sub.connected {
                continue;
            }
            for out in sub.tracks_out.iter_mut() {
                if out.publisher != *publisher_id || out.source_mid != source_mid {
                    continue;
                }
                let OutState::Open(mid) = out.state else {
                    continue;
                };
                if is_video && out.forwarder.target().is_some() {
                    let eff = track.effective_layer(out.desired_layer, now);
                    if out.forwarder.target() != Some(eff) {
                        out.forwarder.set_target(Some(eff));
                    }
                }
                let before = out.forwarder.switches();
                let was_forwarding = out.forwarder.current().is_some();
                let decided = out.forwarder.process(&input);
                if !was_forwarding && out.forwarder.current().is_some() {
                    tracing::debug!(subscriber = %sub.id, publisher = %publisher_id, %mid, layer, "forwarding starts");
                    if is_video && !sub.bwe_restarted {
                        // str0m probes once at the start of a session, and the subscriber's
                        // first packets are audio, which gives its probes no padding to send:
                        // their result is the audio rate and the estimate starts near its
                        // 40 kbit/s floor. Now that video (and its RTX stream, the padding
                        // source) flows, start the estimator again so its initial probes
                        // measure the link.
                        // (Tried 2026-12-04 and taken back: capping these initial probes at 2x
                        // the initial estimate, to queue less in front of the audio of a 60
                        // kbit/s link, slowed the clean-link ramp: the station's 360p came at
                        // 12.6 s and the server scored it "poor" for 5 s.)
                        sub.bwe_restarted = true;
                        if let Some(init) = self.config.adaptation.initial_estimate() {
                            sub.rtc.bwe().reset(init);
                            sub.adapt.estimator_restarted(now);
                        }
                    }
                }
                switches += out.forwarder.switches() - before;
                if let Want::Keyframe(l) = out.forwarder.want()
                    && let Some(w) = want_keyframe.get_mut(usize::from(l))
                {
                    *w = true;
                }
                let Some(o) = decided else { continue };
                let pt_out = match out.pt_map {
                    Some((a, b)) if a == pt => b,
                    _ => {
                        let Some(m) = params.and_then(|p| sub.rtc.codec_config().match_params(p))
                        else {
                            continue;
                        };
                        out.pt_map = Some((pt, *m.pt()));
                        out.red.pt = m.red().map(|r| *r);
                        *m.pt()
                    }
                };
                let (pt_write, data) = if is_video {
                    (pt_out, share(&mut shared, payload))
                } else {
                    let red = &mut out.red;
                    audio_payload(red, sub.adapt.red, pt_out, o.ts, payload, &mut shared)
                };
                let mut ext = ext.clone();
                if is_video && let Some((min, max)) = sub.adapt.repair.extension() {
                    ext.play_delay_min = Some(MediaTime::from_millis(min.as_millis() as u64));
                    ext.play_delay_max = Some(MediaTime::from_millis(max.as_millis() as u64));
                }
                let mut write = RtpWrite::new(pt_write.into(), o.seq.into(), o.ts, now, data)
                    .marker(pkt.header.marker)
                    .ext_vals(ext)
                    .nackable(is_video);
                if let (Some(pid), Some(d)) = (o.picture_id, vp8_desc) {
                    let mut b = d.patch().picture_id(pid);
                    if let Some(t) = o.tl0_pic_idx {
                        b = b.tl0_pic_idx(t);
                    }
                    if let Ok(patch) = b.build() {
                        write = write.vp8_patch(patch);
                    }
                }
                if let Some(tx) = sub.rtc.direct_api().stream_tx_by_mid(mid, None) {
                    tx.write_rtp(write);
                    sub.dirty = true;
                    sent += 1;
                }
            }
        }
        self.stats.rtp_out += sent;
        self.stats.layer_switches += switches;
        for (l, want) in want_keyframe.iter().enumerate() {
            if *want {
                self.request_keyframe(i, ti, l as u8, now);
            }
        }
    }

    /// Which track and layer an SSRC of publisher `i` carries (cached after the first packet).
    fn locate(&mut self, i: usize, ssrc: str0m::rtp::Ssrc) -> Option<(u8, u8)> {
        let p = &mut self.peers[i];
        if let Some(&(_, t, l)) = p.ssrc_map.iter().find(|(s, _, _)| *s == ssrc) {
            return Some((t, l));
        }
        let (mid, rid) = {
            let mut api = p.rtc.direct_api();
            let Some(rx) = api.stream_rx(&ssrc) else {
                tracing::trace!(peer = %p.id, "packet for an unknown SSRC");
                return None;
            };
            (rx.mid(), rx.rid())
        };
        let Some(ti) = p.tracks_in.iter().position(|t| t.mid == mid) else {
            tracing::trace!(peer = %p.id, %mid, "packet for an unknown track");
            return None;
        };
        let Some(layer) = p.tracks_in[ti].layer_of(rid) else {
            tracing::trace!(peer = %p.id, %mid, ?rid, "packet for an unknown layer");
            return None;
        };
        tracing::debug!(peer = %p.id, %mid, ?rid, layer, ssrc = *ssrc, "stream mapped");
        if p.ssrc_map.len() < 16 {
            p.ssrc_map.push((ssrc, ti as u8, layer));
        }
        Some((ti as u8, layer))
    }

    /// Sends a PLI for one layer of a publisher's track, at most once per interval for all
    /// subscribers together.
    fn request_keyframe(&mut self, i: usize, ti: u8, layer: u8, now: Instant) {
        let interval = self.config.keyframe_request_interval;
        let p = &mut self.peers[i];
        let t = &mut p.tracks_in[usize::from(ti)];
        let last = &mut t.last_keyframe_request[usize::from(layer)];
        if last.is_some_and(|l| now.saturating_duration_since(l) < interval) {
            return;
        }
        *last = Some(now);
        if let Some(a) = t.keyframe_awaited.get_mut(usize::from(layer)) {
            a.get_or_insert(now);
        }
        let (mid, rid) = (t.mid, t.rid_of(layer));
        if let Some(rx) = p.rtc.direct_api().stream_rx_by_mid(mid, rid) {
            tracing::debug!(publisher = %p.id, %mid, layer, "keyframe requested");
            rx.request_keyframe(KeyframeRequestKind::Pli);
            p.dirty = true;
            self.stats.keyframe_requests += 1;
        }
    }

    /// A subscriber lost its decoder state: ask the publisher for a keyframe of the layer it gets.
    fn keyframe_requested_by_subscriber(&mut self, i: usize, mid: Mid) {
        let Some(out) = self.peers[i]
            .tracks_out
            .iter()
            .find(|t| t.mid() == Some(mid))
        else {
            return;
        };
        let (publisher, source_mid) = (out.publisher.clone(), out.source_mid);
        let layer = out
            .forwarder
            .current()
            .or(out.forwarder.target())
            .unwrap_or(0);
        let Some(pi) = self.peers.iter().position(|p| p.id == publisher) else {
            return;
        };
        let Some(ti) = self.peers[pi]
            .tracks_in
            .iter()
            .position(|t| t.mid == source_mid)
        else {
            return;
        };
        let now = self.last_now;
        self.request_keyframe(pi, ti as u8, layer, now);
    }

    /// Runs every connected subscriber's allocation, then tells participants what changed:
    /// video states, dynacast layers, and (once a second) connection quality.
    fn allocate_all(&mut self, now: Instant) {
        for p in &mut self.peers {
            p.vitals.roll(now);
            for t in &mut p.tracks_in {
                t.meter.roll(now);
                t.expire_starvation(now);
                for l in 0..MAX_LAYERS {
                    if t.starved(l, now) && t.log_once(LogOnce::NoKeyframe) {
                        tracing::warn!(publisher = %p.id, mid = %t.mid, layer = l, "publisher sends no keyframe on this layer despite requests; its subscribers fall back to other layers");
                    }
                }
            }
        }
        for i in 0..self.peers.len() {
            if !self.peers[i].perms.subscribe || !self.peers[i].connected {
                continue;
            }
            let (sub, others) = split_one(&mut self.peers, i);
            let others: Vec<&Peer> = others.map(|p| &*p).collect();
            // The vital signs and images it receives, reserved like audio (`vitals.rs`).
            let (vitals_bps, image) = if sub.perms.health_data {
                let takes_images = sub.vitals.channel(crate::vitals::Lane::Image).is_some();
                others
                    .iter()
                    .fold((0, ImageDemand::default()), |(v, mut i), p| {
                        i.measured_bps += p.vitals.image_bps();
                        i.in_flight |= takes_images && p.vitals.image_in_flight(now);
                        (v + p.vitals.bps(), i)
                    })
            } else {
                (0, ImageDemand::default())
            };
            let image_bps = allocate(
                now,
                &self.config.adaptation,
                sub,
                vitals_bps,
                image,
                |publisher, mid| {
                    let p = others.iter().find(|p| p.id == *publisher)?;
                    p.tracks_in.iter().find(|t| t.mid == mid)
                },
            );
            // Waveforms are weighed against audio and vitals only: an image in flight does not
            // stop them.
            let reserved = sub.adapt.allocation().audio_bps.saturating_sub(image_bps);
            let decisions = &sub.adapt.allocation().decisions;
            let videos = decisions.iter().filter(|d| d.kind == kham_bwe::Kind::Video);
            let link = crate::vitals::WaveLink {
                thin: sub.adapt.video_starved() && !sub.adapt.estimate_young(now),
                video_flows: videos.clone().next().is_none()
                    || videos.clone().any(|d| d.layer.is_some()),
            };
            if sub
                .vitals
                .update_wave(now, sub.adapt.estimate_bps, link, reserved)
            {
                tracing::debug!(subscriber = %sub.id, estimate = ?sub.adapt.estimate_bps, reserved, vitals_bps, ?link, on = sub.vitals.wave_ok(), "waveforms switched");
            }
            for s in &sub.adapt.allocation().switches {
                if let Some(n) = self.stats.allocation_switches.get_mut(s.reason.index()) {
                    *n += 1;
                }
            }
            sub.dirty = true;
        }
        dynacast::update(now, &mut self.peers, &mut self.events);
        audio_rate::update(now, &mut self.peers, &mut self.events);
        notify::video_state_changes(&mut self.peers, &mut self.events);
        if now >= self.next_quality {
            self.next_quality = now + STATS_INTERVAL;
            notify::quality_changes(now, &mut self.peers, &mut self.events);
        }
    }

    /// Adaptive stream: how a subscriber shows its received videos (`video_view`). Sizes are
    /// clamped, layers capped to what exists, unknown mids ignored; each kind of nonsense is
    /// logged once per participant. Applied at the next allocation (within 200 ms).
    pub fn set_video_views(
        &mut self,
        subscriber: &ParticipantId,
        views: &[kham_proto::VideoView],
    ) -> Result<(), SfuError> {
        let i = self
            .peers
            .iter()
            .position(|p| p.id == *subscriber)
            .ok_or_else(|| SfuError::UnknownPeer(subscriber.clone()))?;
        for v in views {
            let (size, absurd) = v.clamped();
            let peer = &mut self.peers[i];
            if absurd && peer.log_once(ViewProblem::AbsurdSize) {
                tracing::info!(peer = %peer.id, width = v.width, height = v.height, "video_view with an absurd size, clamped");
            }
            let Some(out) = peer
                .tracks_out
                .iter_mut()
                .find(|t| t.kind == MediaKind::Video && t.mid().is_some_and(|m| *m == *v.mid))
            else {
                if peer.log_once(ViewProblem::UnknownMid) {
                    tracing::info!(peer = %peer.id, "video_view for a mid that is not a received video, ignored");
                }
                continue;
            };
            out.view = Some(size);
            let (publisher, source_mid) = (out.publisher.clone(), out.source_mid);
            let layers = self
                .peers
                .iter()
                .find(|p| p.id == publisher)
                .and_then(|p| p.tracks_in.iter().find(|t| t.mid == source_mid))
                .map(|t| t.layer_count());
            let peer = &mut self.peers[i];
            if let (Some(m), Some(n)) = (v.max_spatial, layers)
                && m >= n
                && peer.log_once(ViewProblem::NonexistentLayer)
            {
                tracing::info!(peer = %peer.id, asked = m, layers = n, "video_view asks for a layer the publisher does not have, capped");
            }
        }
        Ok(())
    }

    /// The last allocation for a subscriber (estimate, per-track layers, probe target).
    pub fn allocation(&self, subscriber: &ParticipantId) -> Option<&kham_bwe::Allocation> {
        let p = self.peers.iter().find(|p| p.id == *subscriber)?;
        Some(p.adapt.allocation())
    }

    /// Lets a subscriber receive audio only (to save data), or video again.
    pub fn set_audio_only(&mut self, subscriber: &ParticipantId, on: bool) -> Result<(), SfuError> {
        self.peer_mut(subscriber)?.adapt.audio_only = on;
        Ok(())
    }

    fn peer_mut(&mut self, id: &ParticipantId) -> Result<&mut Peer, SfuError> {
        self.peers
            .iter_mut()
            .find(|p| p.id == *id)
            .ok_or_else(|| SfuError::UnknownPeer(id.clone()))
    }
}

/// The packet's payload as shared by all its subscribers (copied on first use).
fn share(shared: &mut Option<Arc<[u8]>>, payload: &[u8]) -> Arc<[u8]> {
    shared.get_or_insert_with(|| Arc::from(payload)).clone()
}

/// The payload type and payload of an audio packet for one subscriber: RED with the previous
/// packet when `red_on` and the subscriber negotiated RED (its own buffer: the previous packet
/// is the subscriber's), the shared primary otherwise. The previous payload is kept in a buffer
/// reused from packet to packet.
fn audio_payload(
    red: &mut RedOut,
    red_on: bool,
    pt: u8,
    ts: u32,
    primary: &[u8],
    shared: &mut Option<Arc<[u8]>>,
) -> (u8, Arc<[u8]>) {
    let out = match red.pt.filter(|_| red_on) {
        Some(red_pt) => {
            red.scratch.clear();
            let prev = red
                .prev_ts
                .map(|p| (ts.wrapping_sub(p), red.prev.as_slice()))
                .filter(|(off, _)| *off > 0);
            write_red(&mut red.scratch, pt, primary, prev);
            (red_pt, Arc::from(red.scratch.as_slice()))
        }
        None => (pt, share(shared, primary)),
    };
    red.prev.clear();
    red.prev.extend_from_slice(primary);
    red.prev_ts = Some(ts);
    out
}

/// A client's offer on a session it already has. Refused while a server offer waits for its
/// answer (the client answers that one, then offers again: it is the polite side of glare).
/// A participant without the publish grant has its send m-lines answered `inactive`, as on
/// its first offer.
fn renegotiate(peer: &mut Peer, offer: &str) -> Result<String, SfuError> {
    if peer.pending.is_some() {
        return Err(SfuError::Glare(peer.id.clone()));
    }
    let own = crate::sdp_check::check_reoffer(offer, peer.m_lines, peer.own_m_lines)?;
    let answer = if peer.perms.publish {
        peer.accept_offer(offer)
    } else {
        peer.accept_offer(&crate::sdp_check::receive_only(offer))
    }?;
    peer.own_m_lines = own;
    Ok(answer)
}

/// xorshift64 step: only to spread initial sequence numbers, not for security. Kept below
/// 30000 so no stream starts near the 16-bit rollover.
fn next_seq(rng: &mut u64) -> u16 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    (*rng % 30_000) as u16
}

fn new_track_out(
    config: &RoomConfig,
    key: u32,
    first_seq: u16,
    publisher: ParticipantId,
    t: &TrackIn,
) -> TrackOut {
    let mut forwarder = Forwarder::new(t.clock_rate, first_seq);
    // With the allocator on, a new subscription starts on the lowest layer (its keyframe is
    // the smallest burst) until the first allocation says more fits: a subscriber on a 60 kbit/s
    // link must not start with a 360p keyframe queued in front of its audio.
    let desired = match (&config.adaptation, t.kind) {
        (_, MediaKind::Audio) | (Adaptation::Auto(_), _) => 0,
        (Adaptation::Fixed(_), _) => config.default_layer,
    };
    forwarder.set_target(Some(desired));
    TrackOut {
        key,
        publisher,
        source_mid: t.mid,
        kind: t.kind,
        state: OutState::ToOpen,
        gone: false,
        desired_layer: desired,
        forwarder,
        pt_map: None,
        max_spatial: MAX_LAYERS as u8 - 1,
        visible: true,
        view: None,
        red: Default::default(),
        screen: t.screen,
    }
}

/// Splits a slice into the element at `i` and the others, both mutable.
fn split_one<T>(v: &mut [T], i: usize) -> (&mut T, impl Iterator<Item = &mut T>) {
    let (left, right) = v.split_at_mut(i);
    let (me, right) = right.split_first_mut().expect("index in bounds");
    (me, left.iter_mut().chain(right.iter_mut()))
}
