//! One simulated participant on the media thread: its str0m `Rtc` (RTP mode, full ICE, DTLS,
//! SRTP; TWCC feedback as a full receiver), its own UDP socket, its synthetic publisher and what
//! it received.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kham_sfu::str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use kham_sfu::str0m::format::Codec;
use kham_sfu::str0m::media::{Direction, MediaKind, Mid, Simulcast, SimulcastLayer};
use kham_sfu::str0m::rtp::{RtpWrite, Ssrc};
use kham_sfu::str0m::{Candidate, Event, Rtc};

use crate::load::media::{Stamp, Vp8State, opus_payload, stream_id};
use crate::load::stats::RecvStats;

/// Simulcast encodings, lowest first, as browsers name them.
pub const RIDS: [&str; 3] = ["q", "h", "f"];

/// Shape of what each publisher sends.
#[derive(Debug, Clone)]
pub struct MediaShape {
    /// Bit rate of the q, h and f layers (VP8 data).
    pub layer_bps: [u64; 3],
    /// Frames per second of every layer.
    pub fps: u32,
    /// A keyframe on every layer this often (and when the server asks for one).
    pub keyframe_every: Duration,
    /// A keyframe is this many times a delta frame.
    pub keyframe_factor: usize,
    /// Largest RTP payload.
    pub max_payload: usize,
}

impl Default for MediaShape {
    fn default() -> Self {
        MediaShape {
            layer_bps: [150_000, 500_000, 1_500_000],
            fps: 30,
            keyframe_every: Duration::from_secs(4),
            keyframe_factor: 5,
            max_payload: 1200,
        }
    }
}

/// Errors setting up a client's media session.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("binding the client's UDP socket: {0}")]
    Bind(std::io::Error),
    #[error("str0m made no offer")]
    NoOffer,
    #[error("the server's SDP did not parse or apply: {0}")]
    Sdp(String),
    #[error("an answer came with no offer of ours outstanding")]
    NoPendingOffer,
}

struct Layer {
    vp8: Vp8State,
    seq: u64,
    counter: u32,
    keyframe_due: bool,
}

struct Publisher {
    audio_mid: Mid,
    video_mid: Mid,
    next_frame: Instant,
    next_audio: Instant,
    next_keyframe: Instant,
    frame_ts: u32,
    audio_ts: u32,
    audio_seq: u64,
    audio_counter: u32,
    layers: [Layer; 3],
    declared: bool,
}

/// One participant.
pub struct Client {
    pub idx: usize,
    pub rtc: Rtc,
    pub socket: mio::net::UdpSocket,
    pub local: SocketAddr,
    pub next: Instant,
    pub dead: Option<String>,
    pub connected: bool,
    pending: Option<SdpPendingOffer>,
    publisher: Option<Publisher>,
    pub recv: RecvStats,
    pub ws_open: Instant,
    pub first_rtp: Option<Instant>,
    /// RTP packets this client wrote.
    pub sent_packets: u64,
    /// The DTLS-SRTP profile of its session, once the ServerHello went past
    /// ([`crate::load::srtp`]).
    pub srtp_profile: Option<u16>,
}

impl Client {
    /// Binds a socket on `bind`, makes the `Rtc` and its offer (sendonly audio + simulcast
    /// video for a publisher, recvonly audio for a subscriber only).
    pub fn new(
        idx: usize,
        bind: std::net::IpAddr,
        publish: bool,
        ws_open: Instant,
        now: Instant,
    ) -> Result<(Client, String), ClientError> {
        let (socket, local, mut rtc) = Self::endpoint(bind, now)?;
        let mut change = rtc.sdp_api();
        let mut mids = None;
        if publish {
            let audio_mid =
                change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            let mut sim = Simulcast::new();
            for r in RIDS {
                sim.add_send_layer(SimulcastLayer::new(r));
            }
            let video_mid =
                change.add_media(MediaKind::Video, Direction::SendOnly, None, None, Some(sim));
            mids = Some((audio_mid, video_mid));
        } else {
            change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = change.apply().ok_or(ClientError::NoOffer)?;
        let publisher = mids.map(|(audio_mid, video_mid)| Publisher {
            audio_mid,
            video_mid,
            next_frame: now,
            next_audio: now,
            next_keyframe: now,
            frame_ts: 0,
            audio_ts: 0,
            audio_seq: 1,
            audio_counter: 0,
            layers: std::array::from_fn(|_| Layer {
                vp8: Vp8State::default(),
                seq: 1,
                counter: 0,
                keyframe_due: true,
            }),
            declared: false,
        });
        let mut c = Client::fresh(idx, (socket, local, rtc), ws_open, now);
        c.pending = Some(pending);
        c.publisher = publisher;
        Ok((c, offer.to_sdp_string()))
    }

    /// A receive-only client whose media session the server offers (Janus's subscriber
    /// flow: the server offers, the client answers); returns the client and its answer.
    pub fn answering(
        idx: usize,
        bind: std::net::IpAddr,
        offer: &str,
        ws_open: Instant,
        now: Instant,
    ) -> Result<(Client, String), ClientError> {
        let mut c = Client::fresh(idx, Self::endpoint(bind, now)?, ws_open, now);
        let answer = c.accept_offer(offer)?;
        Ok((c, answer))
    }

    /// A client on `endpoint` with nothing negotiated, published or received yet.
    fn fresh(
        idx: usize,
        (socket, local, rtc): (mio::net::UdpSocket, SocketAddr, Rtc),
        ws_open: Instant,
        now: Instant,
    ) -> Client {
        Client {
            idx,
            rtc,
            socket,
            local,
            next: now,
            dead: None,
            connected: false,
            pending: None,
            publisher: None,
            recv: RecvStats::default(),
            ws_open,
            first_rtp: None,
            sent_packets: 0,
            srtp_profile: None,
        }
    }

    /// A non-blocking UDP socket on `bind` and an `Rtc` (RTP mode, Opus and VP8) with the
    /// socket's address as its host candidate.
    fn endpoint(
        bind: std::net::IpAddr,
        now: Instant,
    ) -> Result<(mio::net::UdpSocket, SocketAddr, Rtc), ClientError> {
        let std_sock =
            std::net::UdpSocket::bind(SocketAddr::new(bind, 0)).map_err(ClientError::Bind)?;
        std_sock.set_nonblocking(true).map_err(ClientError::Bind)?;
        let local = std_sock.local_addr().map_err(ClientError::Bind)?;
        let socket = mio::net::UdpSocket::from_std(std_sock);
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .enable_opus(true, false)
            .build(now);
        if let Ok(c) = Candidate::host(local, "udp") {
            rtc.add_local_candidate(c);
        }
        Ok((socket, local, rtc))
    }

    /// Applies the server's answer to our offer.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), ClientError> {
        let pending = self.pending.take().ok_or(ClientError::NoPendingOffer)?;
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| ClientError::Sdp(e.to_string()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| ClientError::Sdp(e.to_string()))
    }

    /// Answers a server offer (remote tracks added or stopped).
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, ClientError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| ClientError::Sdp(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| ClientError::Sdp(e.to_string()))?;
        Ok(answer.to_sdp_string())
    }

    /// When this client next has media to write (None: it publishes nothing).
    pub fn next_media(&self) -> Option<Instant> {
        let p = self.publisher.as_ref()?;
        self.connected.then(|| p.next_frame.min(p.next_audio))
    }

    /// Handles one str0m event.
    pub fn event(&mut self, e: Event, now: Instant, now_ns: u64) -> Option<(u64, bool)> {
        match e {
            Event::Connected => {
                self.connected = true;
                if let Some(p) = &mut self.publisher {
                    p.next_frame = now;
                    p.next_audio = now;
                    p.next_keyframe = now;
                }
                None
            }
            Event::KeyframeRequest(req) => {
                if let Some(p) = &mut self.publisher
                    && req.mid == p.video_mid
                {
                    let layer = req.rid.and_then(|r| RIDS.iter().position(|x| **x == *r));
                    match layer {
                        Some(i) => p.layers[i].keyframe_due = true,
                        None => p.layers.iter_mut().for_each(|l| l.keyframe_due = true),
                    }
                }
                None
            }
            Event::RtpPacket(pkt) => {
                self.first_rtp.get_or_insert(now);
                let pt = pkt.header.payload_type;
                let codec = self
                    .rtc
                    .codec_config()
                    .find(|c| c.pt() == pt)
                    .map(|c| c.spec().codec);
                let stamp = match codec {
                    Some(Codec::Vp8) => crate::load::media::vp8_stamp(&pkt.payload),
                    Some(Codec::Opus) => crate::load::media::opus_stamp(&pkt.payload),
                    _ => None,
                };
                self.recv
                    .packet(*pkt.header.ssrc, *pkt.seq_no, stamp, now_ns)
            }
            _ => None,
        }
    }

    /// Writes the media due at `now` into the `Rtc` (sent at the next poll).
    pub fn produce(
        &mut self,
        now: Instant,
        now_ns: u64,
        shape: &MediaShape,
        sent: &mut std::collections::HashMap<u32, u32>,
    ) {
        let Some(p) = &mut self.publisher else { return };
        if !self.connected {
            return;
        }
        let vp8 = self
            .rtc
            .codec_config()
            .find(|c| c.spec().codec == Codec::Vp8)
            .map(|c| c.pt());
        let opus = self
            .rtc
            .codec_config()
            .find(|c| c.spec().codec == Codec::Opus)
            .map(|c| c.pt());
        let idx = self.idx;
        let mut api = self.rtc.direct_api();
        while p.next_audio <= now {
            p.next_audio += Duration::from_millis(20);
            let Some(pt) = opus else { break };
            let Some(tx) = api.stream_tx_by_mid(p.audio_mid, None) else {
                break;
            };
            let stream = stream_id(idx, 3);
            let payload = opus_payload(Stamp {
                stream,
                counter: p.audio_counter,
                sent_ns: now_ns,
            });
            tx.write_rtp(RtpWrite::new(
                pt,
                p.audio_seq.into(),
                p.audio_ts,
                now,
                payload,
            ));
            p.audio_seq += 1;
            p.audio_ts = p.audio_ts.wrapping_add(960);
            p.audio_counter += 1;
            self.sent_packets += 1;
            sent.insert(stream, p.audio_counter);
        }
        let frame_interval = Duration::from_secs(1) / shape.fps.max(1);
        while p.next_frame <= now {
            p.next_frame += frame_interval;
            p.frame_ts = p.frame_ts.wrapping_add(90_000 / shape.fps.max(1));
            let Some(pt) = vp8 else { break };
            if !p.declared {
                for (i, rid) in RIDS.iter().enumerate() {
                    let base = 0x1000_0000 | ((idx as u32) << 4);
                    let ssrc: Ssrc = (base | i as u32).into();
                    let rtx: Ssrc = (base | 8 | i as u32).into();
                    if api
                        .stream_tx_by_mid(p.video_mid, Some((*rid).into()))
                        .is_none()
                    {
                        api.declare_stream_tx(ssrc, Some(rtx), p.video_mid, Some((*rid).into()));
                    }
                }
                p.declared = true;
            }
            let periodic = now >= p.next_keyframe;
            if periodic {
                p.next_keyframe = now + shape.keyframe_every;
            }
            for (i, rid) in RIDS.iter().enumerate() {
                let layer = &mut p.layers[i];
                let key = periodic || layer.keyframe_due;
                layer.keyframe_due = false;
                let delta = (shape.layer_bps[i] / 8 / u64::from(shape.fps.max(1))) as usize;
                let bytes = if key {
                    delta * shape.keyframe_factor
                } else {
                    delta
                };
                let stream = stream_id(idx, i as u8);
                let mut counter = layer.counter;
                let frame = layer.vp8.frame(i as u8, key, bytes, shape.max_payload, || {
                    let s = Stamp {
                        stream,
                        counter,
                        sent_ns: now_ns,
                    };
                    counter += 1;
                    s
                });
                // Counted as sent only once str0m has the stream to write it on.
                let Some(tx) = api.stream_tx_by_mid(p.video_mid, Some((*rid).into())) else {
                    continue;
                };
                layer.counter = counter;
                sent.insert(stream, counter);
                let last = frame.payloads.len().saturating_sub(1);
                for (k, payload) in frame.payloads.into_iter().enumerate() {
                    tx.write_rtp(
                        RtpWrite::new(pt, layer.seq.into(), p.frame_ts, now, payload)
                            .marker(k == last)
                            .nackable(true),
                    );
                    layer.seq += 1;
                    self.sent_packets += 1;
                }
            }
        }
    }
}
