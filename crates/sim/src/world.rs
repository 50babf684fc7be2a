//! The simulated call: the room, the publisher and the viewers, each behind its own emulated
//! uplink and downlink, on one virtual clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kham_netem::{Link, LinkConfig};
use kham_proto::ParticipantId;
use kham_sfu::str0m::bwe::{Bitrate, BweKind};
use kham_sfu::str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use kham_sfu::str0m::format::Codec;
use kham_sfu::str0m::media::{
    Direction, KeyframeRequestKind, MediaKind, Mid, Simulcast, SimulcastLayer,
};
use kham_sfu::str0m::net::{DatagramRecv, Protocol, Receive};
use kham_sfu::str0m::rtp::{RtpWrite, Ssrc};
use kham_sfu::str0m::{Candidate, Event, Input, Output, Rtc};
use kham_sfu::{Permissions, Room, RoomConfig, RoomEvent, RoomOutput};

use crate::encoder::{DEFAULT_MAX_BPS, EncodingLimits};
use crate::source::{AUDIO_WIRE_BPS, AudioSource, OutPacket, SentAudio, VideoSource};
use crate::viewer::{AudioLog, VideoModel};

const SERVER: &str = "10.0.0.1:7882";
/// UDP and IP header bytes each datagram adds on the wire.
const OVERHEAD: usize = 28;

/// The bytes a datagram takes on an emulated link: its length and [`OVERHEAD`], a DTLS record
/// (first byte 20-63, RFC 7983) rounded up to 256 bytes. The handshake's keys and signatures come
/// from the crypto library's generator, a byte or two longer or shorter from run to run, and
/// that shifted every later packet of the run by microseconds: results of one seed differed
/// between runs (benches/README.md, "Run-to-run variation"). (`crate::dtls` now also gives every
/// endpoint one certificate and every handshake signature one length; the rounding stays.)
fn wire_size(contents: &[u8]) -> usize {
    let n = contents.len();
    let n = if matches!(contents.first(), Some(20..=63)) {
        n.div_ceil(256) * 256
    } else {
        n
    };
    n + OVERHEAD
}
const RIDS: [&str; 3] = ["q", "h", "f"];

/// A datagram in flight.
#[derive(Debug)]
pub struct Datagram {
    source: SocketAddr,
    destination: SocketAddr,
    contents: Vec<u8>,
}

/// Per-bin byte counts of one viewer's downlink.
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    /// Bytes offered to the downlink per bin.
    pub sent: Vec<u64>,
    /// Bytes delivered per bin.
    pub received: Vec<u64>,
    /// Queueing delay of every delivered packet, in ms.
    pub queue_ms: Vec<f32>,
}

pub(crate) enum Role {
    Publisher {
        /// Boxed: the encoder state is much larger than a viewer's.
        video: Box<VideoSource>,
        audio: AudioSource,
        video_mid: Mid,
        audio_mid: Mid,
        next_frame: Instant,
        next_audio: Instant,
        sent_audio: Vec<SentAudio>,
        scratch: Vec<OutPacket>,
    },
    Viewer {
        video: VideoModel,
        audio: AudioLog,
        last_pli: Option<Instant>,
        video_ssrc: Option<Ssrc>,
    },
}

pub(crate) struct Endpoint {
    pub id: ParticipantId,
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub next: Instant,
    pub up: Link<Datagram>,
    pub down: Link<Datagram>,
    pub role: Role,
    pub traffic: Traffic,
    /// The receive m-lines the room mapped for this client (from its offers).
    pub tracks: Vec<kham_proto::TrackInfo>,
    /// Bandwidth estimates this client's own estimator produced (the publisher's, from the
    /// room's TWCC feedback).
    pub estimates: Vec<u64>,
}

pub(crate) struct World {
    pub start: Instant,
    pub now: Instant,
    pub room: Room,
    pub eps: Vec<Endpoint>,
    pub bin: Duration,
    /// What the room told participants besides offers (video states, dynacast, quality), when.
    pub notices: Vec<(Instant, RoomEvent)>,
    /// Run a send-side estimator in the publisher, as a browser does (off in the benchmarks,
    /// whose publisher sends a fixed ladder).
    pub publisher_bwe: bool,
}

fn receive(d: &Datagram) -> Option<Receive<'_>> {
    Some(Receive {
        proto: Protocol::Udp,
        source: d.source,
        destination: d.destination,
        contents: DatagramRecv::try_from(&d.contents[..]).ok()?,
    })
}

impl World {
    pub fn new(config: RoomConfig, seed: u64, bin: Duration) -> World {
        // Every run starts at the same instant, one hour after str0m's wall-clock origin, which
        // is a whole second (vendor/str0m/KHAM-PATCH.md): instants become the same NTP and
        // abs-send-time values, rounded the same way, in every process.
        let start = kham_sfu::str0m::time_origin() + Duration::from_secs(3600);
        crate::dtls::install();
        let config = RoomConfig {
            candidates: vec![SERVER.parse().expect("server address")],
            ..config
        };
        World {
            start,
            now: start,
            room: Room::new(config, seed, start),
            eps: Vec::new(),
            bin,
            notices: Vec::new(),
            publisher_bwe: false,
        }
    }

    fn client_rtc(&self, addr: SocketAddr) -> Rtc {
        // Opus with RED offered, as browsers do: the room sends RED to lossy viewers.
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .enable_opus(true, true)
            .build(self.now);
        if let Ok(c) = Candidate::host(addr, "udp") {
            rtc.add_local_candidate(c);
        }
        rtc
    }

    /// Adds the publisher: audio plus simulcast video.
    pub fn add_publisher(
        &mut self,
        up: LinkConfig,
        down: LinkConfig,
        seed: u64,
    ) -> Result<(), String> {
        let addr: SocketAddr = "10.0.1.1:5000".parse().map_err(|_| "addr")?;
        let mut rtc = if self.publisher_bwe {
            Rtc::builder()
                .set_rtp_mode(true)
                .enable_opus(true, true)
                .enable_bwe(Some(Bitrate::kbps(5_000)))
                .build(self.now)
        } else {
            self.client_rtc(addr)
        };
        if self.publisher_bwe {
            if let Ok(c) = Candidate::host(addr, "udp") {
                rtc.add_local_candidate(c);
            }
            // As a browser does: probe for everything its encodings and audio could send.
            let all: u64 = DEFAULT_MAX_BPS.iter().sum::<u64>() + AUDIO_WIRE_BPS;
            rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps(all));
        }
        let mut change = rtc.sdp_api();
        let audio_mid = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let mut sim = Simulcast::new();
        for r in RIDS {
            sim.add_send_layer(SimulcastLayer::new(r));
        }
        let video_mid =
            change.add_media(MediaKind::Video, Direction::SendOnly, None, None, Some(sim));
        let (offer, pending) = change.apply().ok_or("no offer")?;
        let now = self.now;
        let role = Role::Publisher {
            video: Box::new(VideoSource::new(seed, now)),
            audio: AudioSource::new(seed, now),
            video_mid,
            audio_mid,
            next_frame: now + Duration::from_millis(500),
            next_audio: now + Duration::from_millis(500),
            sent_audio: Vec::new(),
            scratch: Vec::new(),
        };
        let perms = Permissions {
            publish: true,
            subscribe: true,
            health_data: true,
        };
        self.join(
            "publisher",
            addr,
            rtc,
            (offer, pending),
            perms,
            (up, down),
            role,
        )
    }

    /// Adds a viewer (subscribes, publishes nothing) behind its links.
    pub fn add_viewer(
        &mut self,
        name: &str,
        up: LinkConfig,
        down: LinkConfig,
        give_up: Duration,
    ) -> Result<(), String> {
        let addr: SocketAddr = format!("10.0.2.{}:5000", self.eps.len() + 1)
            .parse()
            .map_err(|_| "addr")?;
        let mut rtc = self.client_rtc(addr);
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().ok_or("no offer")?;
        let role = Role::Viewer {
            video: VideoModel::new(give_up, self.start),
            audio: AudioLog::default(),
            last_pli: None,
            video_ssrc: None,
        };
        let perms = Permissions {
            publish: false,
            subscribe: true,
            health_data: false,
        };
        self.join(name, addr, rtc, (offer, pending), perms, (up, down), role)
    }

    /// Puts a client's offer to the room, applies the answer and adds it behind its links.
    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        name: &str,
        addr: SocketAddr,
        mut rtc: Rtc,
        (offer, pending): (SdpOffer, SdpPendingOffer),
        perms: Permissions,
        (up, down): (LinkConfig, LinkConfig),
        role: Role,
    ) -> Result<(), String> {
        let id: ParticipantId = name.into();
        let answer = self
            .room
            .add_peer(self.now, id.clone(), perms, &offer.to_sdp_string())
            .map_err(|e| e.to_string())?;
        let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| e.to_string())?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())?;
        let now = self.now;
        self.eps.push(Endpoint {
            id,
            addr,
            rtc,
            next: now,
            up: Link::new(up, now),
            down: Link::new(down, now),
            role,
            traffic: Traffic::default(),
            tracks: Vec::new(),
            estimates: Vec::new(),
        });
        Ok(())
    }

    /// The audio packets the publisher has sent so far (empty without a publisher).
    pub fn sent_audio(&self) -> &[SentAudio] {
        self.eps
            .iter()
            .find_map(|e| match &e.role {
                Role::Publisher { sent_audio, .. } => Some(sent_audio.as_slice()),
                _ => None,
            })
            .unwrap_or_default()
    }

    fn bin_of(&self, t: Instant) -> usize {
        (t.saturating_duration_since(self.start).as_nanos() / self.bin.as_nanos().max(1)) as usize
    }

    /// Runs until `until`, calling `tick` at every bin boundary.
    pub fn run_until(&mut self, until: Instant, mut tick: impl FnMut(&mut World)) {
        let mut next_tick = self.now + self.bin;
        loop {
            self.drain();
            let room_next = self.room_next();
            let mut next = room_next.min(next_tick);
            for ep in &self.eps {
                next = next.min(ep.next);
                if let Some(t) = ep.up.poll_timeout() {
                    next = next.min(t);
                }
                if let Some(t) = ep.down.poll_timeout() {
                    next = next.min(t);
                }
                if let Role::Publisher {
                    next_frame,
                    next_audio,
                    ..
                } = &ep.role
                {
                    next = next.min(*next_frame).min(*next_audio);
                }
            }
            if next > until {
                self.now = until;
                return;
            }
            // str0m may wake at the instant it was just woken: move the virtual clock anyway.
            self.now = if next <= self.now {
                self.now + Duration::from_micros(500)
            } else {
                next
            };
            let now = self.now;
            crate::clock::set(now.saturating_duration_since(self.start));
            if now >= next_tick {
                next_tick += self.bin;
                tick(self);
            }
            self.room.handle_timeout(now);
            for ep in &mut self.eps {
                if ep.next <= now {
                    let _ = ep.rtc.handle_input(Input::Timeout(now));
                }
                media(ep, now);
            }
        }
    }

    fn room_next(&mut self) -> Instant {
        loop {
            match self.room.poll_output() {
                RoomOutput::Timeout(t) => return t,
                other => self.room_output(other),
            }
        }
    }

    pub(crate) fn room_output(&mut self, out: RoomOutput) {
        let now = self.now;
        match out {
            RoomOutput::Transmit(t) => {
                let bin = self.bin_of(now);
                if let Some(ep) = self.eps.iter_mut().find(|e| e.addr == t.destination) {
                    let size = wire_size(&t.contents);
                    add(&mut ep.traffic.sent, bin, size as u64);
                    ep.down.send(
                        now,
                        size,
                        Datagram {
                            source: t.source,
                            destination: t.destination,
                            contents: t.contents.to_vec(),
                        },
                    );
                }
            }
            RoomOutput::Event(RoomEvent::Offer { peer, sdp, tracks }) => {
                let Some(ep) = self.eps.iter_mut().find(|e| e.id == peer) else {
                    return;
                };
                ep.tracks = tracks;
                let Ok(offer) = SdpOffer::from_sdp_string(&sdp) else {
                    return;
                };
                if let Ok(answer) = ep.rtc.sdp_api().accept_offer(offer) {
                    let _ = self.room.accept_answer(&peer, &answer.to_sdp_string());
                }
            }
            RoomOutput::Event(e) => {
                // Dynacast: the publisher's encoder starts, stops and shapes encodings as told,
                // like a browser applying `publish_layers` with setParameters.
                if let RoomEvent::PublishLayers { peer, layers, .. } = &e
                    && let Some(Endpoint {
                        role: Role::Publisher { video, .. },
                        ..
                    }) = self.eps.iter_mut().find(|ep| ep.id == *peer)
                {
                    for l in layers {
                        if let Some(i) = RIDS.iter().position(|r| *r == l.rid) {
                            video.set_limits(
                                i,
                                EncodingLimits {
                                    max_bitrate: l.max_bitrate,
                                    max_framerate: l.max_framerate,
                                    scale_resolution_down_by: l.scale_resolution_down_by,
                                },
                            );
                            video.set_active(i, l.active);
                        }
                    }
                }
                // The audio cap, applied as the SDK applies it (maxBitrate on the sender).
                if let RoomEvent::AudioRate {
                    peer,
                    max_bitrate,
                    ptime,
                    ..
                } = &e
                    && let Some(Endpoint {
                        role: Role::Publisher { audio, .. },
                        ..
                    }) = self.eps.iter_mut().find(|ep| ep.id == *peer)
                {
                    audio.set_max_bitrate(*max_bitrate);
                    audio.set_ptime(*ptime);
                }
                if !matches!(e, RoomEvent::Connected { .. }) {
                    self.notices.push((now, e));
                }
            }
            RoomOutput::Timeout(_) => {}
        }
    }

    /// Moves every datagram and event due now until everyone only waits.
    fn drain(&mut self) {
        let now = self.now;
        loop {
            let mut moved = false;
            for i in 0..self.eps.len() {
                // str0m wants its output polled after every input, or it drops what it had.
                while let Some(d) = self.eps[i].up.poll_deliver(now) {
                    moved = true;
                    if let Some(r) = receive(&d.packet) {
                        let _ = self.room.handle_receive(now, r);
                    }
                    self.room_next();
                }
                while let Some(d) = self.eps[i].down.poll_deliver(now) {
                    moved = true;
                    let bin = self.bin_of(now);
                    let ep = &mut self.eps[i];
                    add(&mut ep.traffic.received, bin, d.size as u64);
                    ep.traffic
                        .queue_ms
                        .push(d.queue_delay.as_secs_f32() * 1000.0);
                    if let Some(r) = receive(&d.packet) {
                        let _ = ep.rtc.handle_input(Input::Receive(now, r));
                    }
                    poll_endpoint(ep, now);
                }
                moved |= poll_endpoint(&mut self.eps[i], now);
            }
            loop {
                match self.room.poll_output() {
                    RoomOutput::Timeout(_) => break,
                    other => {
                        moved = true;
                        self.room_output(other);
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }
}

fn add(v: &mut Vec<u64>, bin: usize, n: u64) {
    if v.len() <= bin {
        v.resize(bin + 1, 0);
    }
    v[bin] += n;
}

/// Drains one endpoint's `Rtc`; true when something moved.
fn poll_endpoint(ep: &mut Endpoint, now: Instant) -> bool {
    let mut moved = false;
    loop {
        match ep.rtc.poll_output() {
            Ok(Output::Timeout(t)) => {
                ep.next = t;
                return moved;
            }
            Ok(Output::Transmit(t)) => {
                moved = true;
                let size = wire_size(&t.contents);
                ep.up.send(
                    now,
                    size,
                    Datagram {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.to_vec(),
                    },
                );
            }
            Ok(Output::Event(e)) => {
                moved = true;
                endpoint_event(ep, now, e);
            }
            Err(_) => {
                ep.next = now + Duration::from_secs(3600);
                return moved;
            }
        }
    }
}

pub(crate) fn endpoint_event(ep: &mut Endpoint, now: Instant, e: Event) {
    if let Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) = &e {
        ep.estimates.push(estimate.as_u64());
    }
    match (&mut ep.role, e) {
        // The publisher's own estimate (only with `publisher_bwe`) and the server's REMB cap
        // its encoders' send target, as in a browser.
        (
            Role::Publisher { video, .. },
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }),
        ) => video.set_own_estimate(estimate.as_u64()),
        (
            Role::Publisher {
                video, video_mid, ..
            },
            Event::EgressBitrateEstimate(BweKind::Remb { estimate, mid }),
        ) if mid == *video_mid => video.set_remb(estimate.as_u64()),
        (
            Role::Publisher {
                video, video_mid, ..
            },
            Event::KeyframeRequest(req),
        ) if req.mid == *video_mid => {
            let layer = req
                .rid
                .and_then(|r| RIDS.iter().position(|x| **x == *r))
                .unwrap_or(0);
            video.request_keyframe(layer as u8);
        }
        (
            Role::Viewer {
                video,
                audio,
                video_ssrc,
                ..
            },
            Event::RtpPacket(p),
        ) => {
            let pt = p.header.payload_type;
            let params = ep
                .rtc
                .codec_config()
                .find(|c| c.pt() == pt || c.red() == Some(pt));
            let red = params.is_some_and(|c| c.red() == Some(pt));
            match params.map(|c| c.spec().codec) {
                // RED: the primary, and the previous packet again if it was lost (what a
                // browser's jitter buffer does with it).
                Some(Codec::Opus) if red => {
                    if let Some(r) = kham_sfu::red::parse_red(&p.payload) {
                        for b in r.redundant() {
                            audio.packet(now, b.data);
                        }
                        audio.packet(now, r.primary.data);
                    }
                }
                Some(Codec::Opus) => audio.packet(now, &p.payload),
                Some(Codec::Vp8) => {
                    *video_ssrc = Some(p.header.ssrc);
                    video.packet(now, *p.seq_no, p.header.marker, &p.payload);
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// Produces the publisher's media due at `now`; asks for keyframes a viewer needs.
fn media(ep: &mut Endpoint, now: Instant) {
    match &mut ep.role {
        Role::Publisher {
            video,
            audio,
            video_mid,
            audio_mid,
            next_frame,
            next_audio,
            sent_audio,
            scratch,
        } => {
            let vp8 = ep
                .rtc
                .codec_config()
                .find(|c| c.spec().codec == Codec::Vp8)
                .map(|c| c.pt());
            let opus = ep
                .rtc
                .codec_config()
                .find(|c| c.spec().codec == Codec::Opus)
                .map(|c| c.pt());
            let mut api = ep.rtc.direct_api();
            while *next_audio <= now {
                let at = *next_audio;
                *next_audio += Duration::from_millis(20);
                if let (Some((p, sent)), Some(pt)) = (audio.tick(at), opus)
                    && let Some(tx) = api.stream_tx_by_mid(*audio_mid, None)
                {
                    tx.write_rtp(RtpWrite::new(pt, p.seq.into(), p.ts, at, p.payload));
                    sent_audio.push(sent);
                }
            }
            while *next_frame <= now {
                let at = *next_frame;
                *next_frame += VideoSource::frame_interval();
                scratch.clear();
                video.frame(at, scratch);
                let Some(pt) = vp8 else { continue };
                for p in scratch.drain(..) {
                    let rid = RIDS[usize::from(p.layer)].into();
                    if api.stream_tx_by_mid(*video_mid, Some(rid)).is_none() {
                        // With an RTX stream, as browsers send: the room's NACKs get resends.
                        let ssrc: Ssrc = (0x1000 + u32::from(p.layer)).into();
                        let rtx: Ssrc = (0x2000 + u32::from(p.layer)).into();
                        api.declare_stream_tx(ssrc, Some(rtx), *video_mid, Some(rid));
                    }
                    if let Some(tx) = api.stream_tx_by_mid(*video_mid, Some(rid)) {
                        tx.write_rtp(
                            RtpWrite::new(pt, p.seq.into(), p.ts, at, p.payload)
                                .marker(p.marker)
                                .nackable(true),
                        );
                    }
                }
            }
        }
        Role::Viewer {
            video,
            last_pli,
            video_ssrc,
            ..
        } => {
            video.decode(now);
            if video.want_keyframe
                && last_pli
                    .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_millis(500))
                && let Some(ssrc) = *video_ssrc
                && let Some(rx) = ep.rtc.direct_api().stream_rx(&ssrc)
            {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                *last_pli = Some(now);
                video.want_keyframe = false;
            }
        }
    }
}
