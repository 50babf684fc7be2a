//! A WebRTC endpoint built on `webrtc` 0.21 (the async layer over the sans-IO `rtc` crate).
//!
//! A [`Peer`] can publish one Opus audio track and one VP8 video track (synthetic RTP, see
//! [`crate::media`]) and records every RTP packet it receives, per remote track. Signaling is not
//! done here: [`crate::client::Participant`] feeds it offers/answers from the kham WebSocket.
//!
//! Notes on the 0.21 API that matter here:
//! * Sockets must be bound to a concrete `127.0.0.1:0`: a wildcard address is expanded to all
//!   interfaces *except* loopback, and the server only announces 127.0.0.1.
//! * `TrackLocalStaticRTP::write_rtp` only queues the packet to the driver; the core then drops
//!   it (logging via `log`, which nobody sees) if the SSRC is not one of the track's encodings or
//!   the payload type is not negotiated. So the SSRCs are fixed here and the payload type is read
//!   back from the sender's negotiated parameters.
//! * Remote tracks appear through `on_track` on their first RTP packet; packets must be drained
//!   with `TrackRemote::poll` promptly (the queue holds 256 events, overflow is dropped).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::{rtcp, rtp};
use std::collections::VecDeque;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceConnectionState, RTCIceGatheringState, RTCPeerConnectionState,
    RTCSessionDescription, Registry, register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::media;

/// Opus payload type we offer.
pub const OPUS_PT: u8 = 111;
/// VP8 payload type we offer.
pub const VP8_PT: u8 = 96;
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
/// RIDs of the simulcast layers, lowest first (as the browser SDK sends them).
pub const SIMULCAST_RIDS: [&str; 3] = ["q", "h", "f"];

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Opus
    Audio,
    /// VP8
    Video,
}

impl MediaKind {
    /// `"audio"` / `"video"` as used by the signaling protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }

    fn from_rtc(k: RtpCodecKind) -> Option<Self> {
        match k {
            RtpCodecKind::Audio => Some(MediaKind::Audio),
            RtpCodecKind::Video => Some(MediaKind::Video),
            _ => None,
        }
    }
}

/// How the peer takes part in media.
#[derive(Debug, Clone, Copy)]
pub struct PeerOptions {
    /// Publish an Opus track (sendonly m-line). If false, a recvonly audio m-line is offered.
    pub audio: bool,
    /// Publish a VP8 track (sendonly m-line). If false, a recvonly video m-line is offered.
    pub video: bool,
    /// Send video as three simulcast layers with RIDs `q`, `h`, `f` (as the browser SDK does);
    /// packets then carry the mid and rid header extensions.
    pub simulcast: bool,
    /// Send a video keyframe every this many frames (30 = once a second). `None` behaves like
    /// a browser encoder: a keyframe first, then only when the SFU asks (PLI/FIR).
    pub keyframe_interval: Option<u64>,
}

impl PeerOptions {
    /// Publish audio and video (doctor, station, patient).
    pub fn publish() -> Self {
        PeerOptions {
            audio: true,
            video: true,
            simulcast: false,
            keyframe_interval: Some(media::KEYFRAME_INTERVAL),
        }
    }
    /// Publish audio and video with three simulcast video layers (like the browser SDK).
    pub fn publish_simulcast() -> Self {
        PeerOptions {
            audio: true,
            video: true,
            simulcast: true,
            keyframe_interval: Some(media::KEYFRAME_INTERVAL),
        }
    }
    /// Keyframes only on request (PLI/FIR) after the first, like a browser.
    pub fn keyframes_on_request(mut self) -> Self {
        self.keyframe_interval = None;
        self
    }
    /// Publish nothing; offer recvonly audio + video (observer).
    pub fn receive_only() -> Self {
        PeerOptions {
            audio: false,
            video: false,
            simulcast: false,
            keyframe_interval: None,
        }
    }
}

/// One RTP packet we sent.
#[derive(Debug, Clone)]
pub struct SentPacket {
    /// RTP sequence number
    pub seq: u16,
    /// RTP timestamp
    pub ts: u32,
    /// Marker bit
    pub marker: bool,
    /// Full RTP payload
    pub payload: Bytes,
    /// When it was handed to the stack
    pub at: Instant,
}

/// One RTP packet we received (after SRTP decryption).
#[derive(Debug, Clone)]
pub struct RecvPacket {
    /// RTP SSRC
    pub ssrc: u32,
    /// RTP sequence number
    pub seq: u16,
    /// RTP timestamp
    pub ts: u32,
    /// Marker bit
    pub marker: bool,
    /// Payload type
    pub pt: u8,
    /// RTP payload
    pub payload: Bytes,
    /// Arrival time
    pub at: Instant,
}

/// Everything received on one remote track (one `on_track`).
#[derive(Debug, Clone)]
pub struct RecvTrack {
    /// Audio or video.
    pub kind: MediaKind,
    /// The remote track id (from the remote SDP msid).
    pub track_id: String,
    /// The remote stream id (from the remote SDP msid).
    pub stream_id: String,
    /// mid of the transceiver it arrived on, once resolved.
    pub mid: Option<String>,
    /// RID if simulcast.
    pub rid: Option<String>,
    /// SSRCs in order of first appearance.
    pub ssrcs: Vec<u32>,
    /// Received packets in arrival order.
    pub packets: Vec<RecvPacket>,
    /// `OnEnded` was seen.
    pub ended: bool,
}

/// One RTP stream of a published track: a simulcast layer, or the only stream.
pub struct LocalLayer {
    /// RID when simulcast.
    pub rid: Option<String>,
    /// SSRC of this stream.
    pub ssrc: u32,
    sent: Mutex<Vec<SentPacket>>,
    paused: AtomicBool,
}

impl LocalLayer {
    /// Stops (true) or resumes (false) sending this layer, like a browser disabling a simulcast
    /// encoding. Sequence numbers continue where they stopped; the first frame after resuming
    /// is a keyframe.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// Packets sent so far on this stream.
    pub fn sent(&self) -> Vec<SentPacket> {
        lock(&self.sent).clone()
    }
}

/// A published local track.
#[derive(Clone)]
pub struct LocalTrack {
    /// Audio or video.
    pub kind: MediaKind,
    /// Its RTP streams: one, or the simulcast layers lowest first.
    pub layers: Vec<Arc<LocalLayer>>,
    track: Arc<TrackLocalStaticRTP>,
    write_errors: Arc<AtomicU64>,
    last_write_error: Arc<Mutex<Option<String>>>,
    keyframe_requests: Arc<KeyframeRequests>,
}

/// PLI/FIR received for a published track.
#[derive(Default)]
struct KeyframeRequests {
    count: AtomicU64,
    /// SSRCs asked for and not yet served; 0 = unknown SSRC, serve all layers.
    pending: Mutex<Vec<u32>>,
}

impl LocalTrack {
    /// PLI/FIR received from the SFU for this track so far.
    pub fn keyframe_requests(&self) -> u64 {
        self.keyframe_requests.count.load(Ordering::Relaxed)
    }
    /// SSRC of the first (or only) stream.
    pub fn ssrc(&self) -> u32 {
        self.layers[0].ssrc
    }
    /// Packets sent so far on the first (or only) stream.
    pub fn sent(&self) -> Vec<SentPacket> {
        self.layers[0].sent()
    }
    /// Packets sent so far, per layer.
    pub fn sent_layers(&self) -> Vec<Vec<SentPacket>> {
        self.layers.iter().map(|l| l.sent()).collect()
    }
    /// Number of packets sent so far over all layers.
    pub fn sent_count(&self) -> usize {
        self.layers.iter().map(|l| lock(&l.sent).len()).sum()
    }
    /// `write_rtp` failures so far, with the last error message.
    pub fn write_errors(&self) -> (u64, Option<String>) {
        (
            self.write_errors.load(Ordering::Relaxed),
            lock(&self.last_write_error).clone(),
        )
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Handler {
    state: watch::Sender<RTCPeerConnectionState>,
    ice: watch::Sender<RTCIceConnectionState>,
    gathering: watch::Sender<RTCIceGatheringState>,
    received: Arc<Mutex<Vec<RecvTrack>>>,
    recv_notify: Arc<tokio::sync::Notify>,
    pc: OnceLock<Weak<dyn PeerConnection>>,
    label: String,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathering.send_replace(state);
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        self.ice.send_replace(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if verbose() {
            eprintln!("[peer {}] connection state {state}", self.label);
        }
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // Called inline by the driver: do no work here, hand the track to a task.
        let received = Arc::clone(&self.received);
        let notify = Arc::clone(&self.recv_notify);
        let pc = self.pc.get().cloned();
        let label = self.label.clone();
        tokio::spawn(async move {
            let Some(kind) = MediaKind::from_rtc(track.kind().await) else {
                return;
            };
            let track_id = track.track_id().await.to_string();
            let stream_id = track.stream_id().await.to_string();
            let idx = {
                let mut r = lock(&received);
                r.push(RecvTrack {
                    kind,
                    track_id: track_id.clone(),
                    stream_id,
                    mid: None,
                    rid: None,
                    ssrcs: Vec::new(),
                    packets: Vec::new(),
                    ended: false,
                });
                r.len() - 1
            };
            if verbose() {
                eprintln!("[peer {label}] on_track {kind:?} track_id={track_id}");
            }
            notify.notify_waiters();
            while let Some(ev) = track.poll().await {
                match ev {
                    TrackRemoteEvent::OnOpen(init) => {
                        let mid = match pc.as_ref().and_then(Weak::upgrade) {
                            Some(pc) => mid_of_receiver(&*pc, init.receiver_id.into()).await,
                            None => None,
                        };
                        let mut r = lock(&received);
                        let t = &mut r[idx];
                        if t.mid.is_none() {
                            t.mid = mid;
                        }
                        if t.rid.is_none() {
                            t.rid = init.rid.clone().filter(|r| !r.is_empty());
                        }
                        if !t.ssrcs.contains(&init.ssrc) {
                            t.ssrcs.push(init.ssrc);
                        }
                    }
                    TrackRemoteEvent::OnRtpPacket(p) => {
                        let mut r = lock(&received);
                        let t = &mut r[idx];
                        if !t.ssrcs.contains(&p.header.ssrc) {
                            t.ssrcs.push(p.header.ssrc);
                        }
                        t.packets.push(RecvPacket {
                            ssrc: p.header.ssrc,
                            seq: p.header.sequence_number,
                            ts: p.header.timestamp,
                            marker: p.header.marker,
                            pt: p.header.payload_type,
                            payload: p.payload,
                            at: Instant::now(),
                        });
                    }
                    TrackRemoteEvent::OnEnded => {
                        lock(&received)[idx].ended = true;
                        break;
                    }
                    _ => {}
                }
            }
            lock(&received)[idx].ended = true;
        });
    }
}

async fn mid_of_receiver(pc: &dyn PeerConnection, transceiver_id: usize) -> Option<String> {
    for t in pc.get_transceivers().await {
        if t.id() == transceiver_id {
            return t.mid().await.ok().flatten();
        }
    }
    None
}

fn verbose() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| std::env::var("KHAM_TEST_LOG").is_ok_and(|v| v != "0" && !v.is_empty()))
}

/// A WebRTC peer connection with synthetic publishers and a receive recorder.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    handler: Arc<Handler>,
    state_rx: watch::Receiver<RTCPeerConnectionState>,
    gathering_rx: watch::Receiver<RTCIceGatheringState>,
    /// Published audio track, if any.
    pub audio: Option<LocalTrack>,
    /// Published video track, if any.
    pub video: Option<LocalTrack>,
    senders: Mutex<Vec<JoinHandle<()>>>,
    sending: Arc<AtomicBool>,
    keyframe_interval: Option<u64>,
    label: String,
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/VP8".to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: String::new(),
            },
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: "pli".to_owned(),
            },
            RTCPFeedback {
                typ: "ccm".to_owned(),
                parameter: "fir".to_owned(),
            },
        ],
    }
}

fn random_ssrc() -> u32 {
    loop {
        let s: u32 = rand::random();
        if s != 0 {
            return s;
        }
    }
}

impl Peer {
    /// Creates the peer connection and adds its transceivers (nothing is negotiated yet).
    /// `label` only names the peer in diagnostics.
    pub async fn new(label: &str, opts: PeerOptions) -> Result<Arc<Self>> {
        crate::diag::install();
        let mut me = MediaEngine::default();
        me.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )?;
        me.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: vp8_codec(),
                payload_type: VP8_PT,
            },
            RtpCodecKind::Video,
        )?;
        // mid for audio too (the default interceptors register it for video only), so a server
        // that routes by the mid extension works for both kinds.
        me.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: MID_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )?;
        let registry = register_default_interceptors(Registry::new(), &mut me)?
            // Application-most, so the default interceptors see all inbound RTCP first.
            .with(Slot::from(14_000), KeyframeRequestTap::default());

        let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
        let (ice_tx, _ice_rx) = watch::channel(RTCIceConnectionState::New);
        let (gathering_tx, gathering_rx) = watch::channel(RTCIceGatheringState::New);
        let handler = Arc::new(Handler {
            state: state_tx,
            ice: ice_tx,
            gathering: gathering_tx,
            received: Arc::new(Mutex::new(Vec::new())),
            recv_notify: Arc::new(tokio::sync::Notify::new()),
            pc: OnceLock::new(),
            label: label.to_owned(),
        });

        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(me)
            .with_interceptor_registry(registry)
            .with_handler(Arc::clone(&handler) as Arc<dyn PeerConnectionEventHandler>)
            // Loopback on purpose: a wildcard would skip it (see the module docs).
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .context("building the webrtc PeerConnection")?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let _ = handler.pc.set(Arc::downgrade(&pc));

        let stream_id = format!("kham-test-{label}");
        let mut audio = None;
        let mut video = None;
        for (kind, publish) in [
            (MediaKind::Audio, opts.audio),
            (MediaKind::Video, opts.video),
        ] {
            let rtc_kind = match kind {
                MediaKind::Audio => RtpCodecKind::Audio,
                MediaKind::Video => RtpCodecKind::Video,
            };
            if publish {
                let codec = match kind {
                    MediaKind::Audio => opus_codec(),
                    MediaKind::Video => vp8_codec(),
                };
                let rids: Vec<Option<String>> = if kind == MediaKind::Video && opts.simulcast {
                    SIMULCAST_RIDS
                        .iter()
                        .map(|r| Some((*r).to_owned()))
                        .collect()
                } else {
                    vec![None]
                };
                let layers: Vec<Arc<LocalLayer>> = rids
                    .into_iter()
                    .map(|rid| {
                        Arc::new(LocalLayer {
                            rid,
                            ssrc: random_ssrc(),
                            sent: Mutex::new(Vec::new()),
                            paused: AtomicBool::new(false),
                        })
                    })
                    .collect();
                let codings = layers
                    .iter()
                    .map(|l| RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            rid: l.rid.clone().unwrap_or_default(),
                            ssrc: Some(l.ssrc),
                            ..Default::default()
                        },
                        codec: codec.clone(),
                        ..Default::default()
                    })
                    .collect();
                let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                    stream_id.clone(),
                    format!("{label}-{}", kind.as_str()),
                    format!("{label}-{}", kind.as_str()),
                    rtc_kind,
                    codings,
                )));
                pc.add_transceiver_from_track(
                    Arc::clone(&track) as Arc<dyn TrackLocal>,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        streams: vec![],
                        send_encodings: vec![],
                    }),
                )
                .await
                .with_context(|| format!("adding the {} track", kind.as_str()))?;
                let lt = LocalTrack {
                    kind,
                    layers,
                    track,
                    write_errors: Arc::new(AtomicU64::new(0)),
                    last_write_error: Arc::new(Mutex::new(None)),
                    keyframe_requests: Arc::new(KeyframeRequests::default()),
                };
                match kind {
                    MediaKind::Audio => audio = Some(lt),
                    MediaKind::Video => video = Some(lt),
                }
            } else {
                pc.add_transceiver_from_kind(
                    rtc_kind,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        streams: vec![],
                        send_encodings: vec![],
                    }),
                )
                .await?;
            }
        }

        Ok(Arc::new(Peer {
            pc,
            handler,
            state_rx,
            gathering_rx,
            audio,
            video,
            senders: Mutex::new(Vec::new()),
            sending: Arc::new(AtomicBool::new(false)),
            keyframe_interval: opts.keyframe_interval,
            label: label.to_owned(),
        }))
    }

    /// The underlying connection.
    pub fn pc(&self) -> &Arc<dyn PeerConnection> {
        &self.pc
    }

    /// Current connection state.
    pub fn state(&self) -> RTCPeerConnectionState {
        *self.state_rx.borrow()
    }

    async fn wait_gathered(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.gathering_rx.clone();
        tokio::time::timeout(
            timeout,
            rx.wait_for(|s| *s == RTCIceGatheringState::Complete),
        )
        .await
        .map_err(|_| anyhow!("ICE gathering did not complete within {timeout:?}"))?
        .map_err(|_| anyhow!("peer dropped"))?;
        Ok(())
    }

    /// Creates the (one) publish offer, applies it locally and waits for host candidates.
    pub async fn create_offer(&self) -> Result<String> {
        let offer = self.pc.create_offer(None).await.context("create_offer")?;
        self.pc
            .set_local_description(offer)
            .await
            .context("set_local_description(offer)")?;
        self.wait_gathered(Duration::from_secs(5)).await?;
        let desc = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow!("no local description after set_local_description"))?;
        Ok(desc.sdp)
    }

    /// Applies the server's answer to our offer.
    pub async fn apply_answer(&self, sdp: &str) -> Result<()> {
        let desc = RTCSessionDescription::answer(sdp.to_owned()).context("parsing answer SDP")?;
        self.pc
            .set_remote_description(desc)
            .await
            .context("set_remote_description(answer)")?;
        Ok(())
    }

    /// Applies a server offer and returns our answer SDP.
    pub async fn answer_offer(&self, sdp: &str) -> Result<String> {
        let desc = RTCSessionDescription::offer(sdp.to_owned()).context("parsing offer SDP")?;
        self.pc
            .set_remote_description(desc)
            .await
            .context("set_remote_description(offer)")?;
        let answer = self.pc.create_answer(None).await.context("create_answer")?;
        self.pc
            .set_local_description(answer)
            .await
            .context("set_local_description(answer)")?;
        if *self.gathering_rx.borrow() != RTCIceGatheringState::Complete {
            self.wait_gathered(Duration::from_secs(5)).await?;
        }
        let desc = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow!("no local description after set_local_description"))?;
        Ok(desc.sdp)
    }

    /// Waits for `RTCPeerConnectionState::Connected` (ICE + DTLS done).
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.state_rx.clone();
        let res = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            }),
        )
        .await;
        match res {
            Err(_) => bail!(
                "peer {} not connected within {timeout:?} (state {})",
                self.label,
                self.state()
            ),
            Ok(Err(_)) => bail!("peer {} dropped", self.label),
            Ok(Ok(s)) if *s == RTCPeerConnectionState::Connected => Ok(()),
            Ok(Ok(s)) => bail!("peer {} connection {}", self.label, *s),
        }
    }

    /// Payload type, mid and header-extension ids negotiated for a published track.
    async fn negotiated(&self, kind: MediaKind) -> Result<Negotiated> {
        let want = match kind {
            MediaKind::Audio => "audio/opus",
            MediaKind::Video => "video/vp8",
        };
        for t in self.pc.get_transceivers().await {
            let Ok(Some(sender)) = t.sender().await else {
                continue;
            };
            if MediaKind::from_rtc(sender.track().kind().await) != Some(kind) {
                continue;
            }
            let params = sender.get_parameters().await?;
            let Some(pt) = params
                .rtp_parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(want))
                .map(|c| c.payload_type)
            else {
                bail!(
                    "no {want} among negotiated codecs {:?}",
                    params
                        .rtp_parameters
                        .codecs
                        .iter()
                        .map(|c| (&c.rtp_codec.mime_type, c.payload_type))
                        .collect::<Vec<_>>()
                );
            };
            let ext = |uri: &str| {
                params
                    .rtp_parameters
                    .header_extensions
                    .iter()
                    .find(|h| h.uri == uri)
                    .and_then(|h| u8::try_from(h.id).ok())
            };
            return Ok(Negotiated {
                pt,
                mid: t.mid().await.ok().flatten(),
                mid_ext: ext(MID_URI),
                rid_ext: ext(RID_URI),
            });
        }
        bail!("no sender for {}", kind.as_str())
    }

    /// Starts the synthetic publishers (audio every 20 ms, video at 30 fps with a keyframe
    /// every second). Call after [`Self::wait_connected`].
    pub async fn start_sending(self: &Arc<Self>) -> Result<()> {
        if self.sending.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut handles = Vec::new();
        if let Some(a) = &self.audio {
            let n = self.negotiated(MediaKind::Audio).await?;
            handles.push(spawn_audio(a.clone(), n.pt, Arc::clone(&self.sending)));
        }
        if let Some(v) = &self.video {
            let n = self.negotiated(MediaKind::Video).await?;
            let simulcast = v.layers.len() > 1;
            // Simulcast layers are told apart by the rid extension (and bundled by mid), as a
            // browser does; a single stream is identified by its SSRC from the SDP.
            let ext = if simulcast {
                let (Some(mid), Some(mid_ext), Some(rid_ext)) =
                    (n.mid.clone(), n.mid_ext, n.rid_ext)
                else {
                    bail!(
                        "simulcast needs the mid and rid header extensions negotiated, got {n:?}"
                    );
                };
                Some((mid, mid_ext, rid_ext))
            } else {
                None
            };
            handles.push(spawn_keyframe_request_reader(v.clone()));
            handles.push(spawn_video(
                v.clone(),
                n.pt,
                ext,
                self.keyframe_interval,
                Arc::clone(&self.sending),
            ));
        }
        lock(&self.senders).extend(handles);
        Ok(())
    }

    /// Stops the synthetic publishers (already queued packets still go out).
    pub fn stop_sending(&self) {
        self.sending.store(false, Ordering::SeqCst);
        for h in lock(&self.senders).drain(..) {
            h.abort();
        }
    }

    /// Snapshot of everything received so far, one entry per remote track.
    pub fn received(&self) -> Vec<RecvTrack> {
        lock(&self.handler.received).clone()
    }

    /// Total RTP packets received over all tracks.
    pub fn received_packet_count(&self) -> usize {
        lock(&self.handler.received)
            .iter()
            .map(|t| t.packets.len())
            .sum()
    }

    /// Snapshot of the remote track received on `mid` (the latest one if the mid was reused).
    pub fn received_on_mid(&self, mid: &str) -> Option<RecvTrack> {
        lock(&self.handler.received)
            .iter()
            .rev()
            .find(|t| t.mid.as_deref() == Some(mid))
            .cloned()
    }

    /// The mids of the current transceivers with their negotiated direction, for diagnostics.
    pub async fn transceiver_summary(&self) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        for t in self.pc.get_transceivers().await {
            let mid = t.mid().await.ok().flatten();
            let dir = t
                .current_direction()
                .await
                .map(|d| d.to_string())
                .unwrap_or_default();
            out.push((mid, dir));
        }
        out
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.stop_sending();
        let _ = self.pc.close().await;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.sending.store(false, Ordering::SeqCst);
        for h in lock(&self.senders).drain(..) {
            h.abort();
        }
    }
}

#[derive(Debug, Clone)]
struct Negotiated {
    pt: u8,
    mid: Option<String>,
    mid_ext: Option<u8>,
    rid_ext: Option<u8>,
}

async fn write(track: &LocalTrack, layer: &LocalLayer, pkt: rtp::Packet) {
    let rec = SentPacket {
        seq: pkt.header.sequence_number,
        ts: pkt.header.timestamp,
        marker: pkt.header.marker,
        payload: pkt.payload.clone(),
        at: Instant::now(),
    };
    match track.track.write_rtp(pkt).await {
        Ok(()) => lock(&layer.sent).push(rec),
        Err(e) => {
            track.write_errors.fetch_add(1, Ordering::Relaxed);
            *lock(&track.last_write_error) = Some(e.to_string());
        }
    }
}

fn header(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool) -> rtp::Header {
    rtp::Header {
        version: 2,
        payload_type: pt,
        sequence_number: seq,
        timestamp: ts,
        ssrc,
        marker,
        ..Default::default()
    }
}

fn spawn_audio(lt: LocalTrack, pt: u8, running: Arc<AtomicBool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let layer = Arc::clone(&lt.layers[0]);
        let mut seq: u16 = rand::random();
        let mut ts: u32 = rand::random();
        let mut n: u64 = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while running.load(Ordering::Relaxed) {
            tick.tick().await;
            let pkt = rtp::Packet {
                header: header(pt, seq, ts, layer.ssrc, n == 0),
                payload: media::opus_payload(layer.ssrc, n),
            };
            write(&lt, &layer, pkt).await;
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(media::AUDIO_TS_STEP);
            n += 1;
        }
    })
}

/// `ext`: (mid, mid extension id, rid extension id) when simulcast.
fn spawn_video(
    lt: LocalTrack,
    pt: u8,
    ext: Option<(String, u8, u8)>,
    keyframe_interval: Option<u64>,
    running: Arc<AtomicBool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        struct State {
            seq: u16,
            picture_id: u16,
            was_paused: bool,
        }
        let mut st: Vec<State> = lt
            .layers
            .iter()
            .map(|_| State {
                seq: rand::random(),
                picture_id: rand::random::<u16>() & 0x7FFF,
                was_paused: false,
            })
            .collect();
        let n_layers = lt.layers.len();
        // One capture clock for all layers, as an encoder does.
        let mut ts: u32 = rand::random();
        let mut frame_no: u64 = 0;
        let mut tick = tokio::time::interval(Duration::from_micros(33_333));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while running.load(Ordering::Relaxed) {
            tick.tick().await;
            let periodic = match keyframe_interval {
                Some(n) => frame_no.is_multiple_of(n.max(1)),
                None => frame_no == 0,
            };
            let requested: Vec<u32> = std::mem::take(&mut *lock(&lt.keyframe_requests.pending));
            for (li, layer) in lt.layers.iter().enumerate() {
                let s = &mut st[li];
                if layer.paused.load(Ordering::SeqCst) {
                    s.was_paused = true;
                    continue;
                }
                let key = periodic
                    || s.was_paused
                    || requested.iter().any(|&r| r == 0 || r == layer.ssrc);
                s.was_paused = false;
                let frame = media::vp8_frame_layer(layer.ssrc, frame_no, key, li, n_layers);
                let payloads = media::vp8_packetize(&frame, s.picture_id);
                let last = payloads.len() - 1;
                for (i, payload) in payloads.into_iter().enumerate() {
                    let mut h = header(pt, s.seq, ts, layer.ssrc, i == last);
                    if let (Some((mid, mid_ext, rid_ext)), Some(rid)) = (&ext, &layer.rid) {
                        let _ = h.set_extension(*mid_ext, Bytes::from(mid.clone().into_bytes()));
                        let _ = h.set_extension(*rid_ext, Bytes::from(rid.clone().into_bytes()));
                    }
                    write(&lt, layer, rtp::Packet { header: h, payload }).await;
                    s.seq = s.seq.wrapping_add(1);
                }
                s.picture_id = (s.picture_id + 1) & 0x7FFF;
            }
            ts = ts.wrapping_add(media::VIDEO_TS_STEP);
            frame_no += 1;
        }
    })
}

/// Reads PLI/FIR for a published track (delivered by [`KeyframeRequestTap`]).
fn spawn_keyframe_request_reader(lt: LocalTrack) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = lt.track.poll().await {
            let TrackLocalEvent::OnRtcpPacket(pkts) = ev else {
                continue;
            };
            for p in &pkts {
                let any = p.as_any();
                let mut targets = Vec::new();
                if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                    targets.push(pli.media_ssrc);
                } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                    targets.extend(fir.fir.iter().map(|e| e.ssrc));
                } else {
                    continue;
                }
                let known: Vec<u32> = targets
                    .into_iter()
                    .map(|t| {
                        if lt.layers.iter().any(|l| l.ssrc == t) {
                            t
                        } else {
                            0
                        }
                    })
                    .collect();
                lt.keyframe_requests.count.fetch_add(1, Ordering::Relaxed);
                lock(&lt.keyframe_requests.pending).extend(known);
            }
        }
    })
}

/// Interceptor that hands PLI/FIR to the application (`TrackLocal::poll`). With the default
/// chain, inbound RTCP is consumed by the interceptors and never reaches the application.
#[derive(Default)]
struct KeyframeRequestTap {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

fn is_keyframe_request(p: &dyn rtcp::Packet) -> bool {
    let any = p.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = webrtc::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(pkts) = &msg.message.packet {
            let wanted: Vec<Box<dyn rtcp::Packet>> = pkts
                .iter()
                .filter(|p| is_keyframe_request(p.as_ref()))
                .cloned()
                .collect();
            if wanted.is_empty() {
                // Everything else has been handled by the interceptors below us.
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(wanted);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequestTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Groups packets by SSRC, keeping arrival order.
pub fn by_ssrc(packets: &[RecvPacket]) -> HashMap<u32, Vec<&RecvPacket>> {
    let mut m: HashMap<u32, Vec<&RecvPacket>> = HashMap::new();
    for p in packets {
        m.entry(p.ssrc).or_default().push(p);
    }
    m
}
