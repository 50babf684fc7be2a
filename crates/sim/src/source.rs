//! The synthetic publisher's media: three VP8-like simulcast encodings with three temporal
//! layers and keyframes on request, shaped and rate-controlled as a browser's are
//! ([`crate::encoder`]), and Opus-like audio with DTX pauses.
//!
//! Payloads carry a small marker after the codec headers (layer, frame or packet number,
//! capture time, frame height) so the viewer can tell what it got; the SFU never looks past the
//! VP8 header.

use std::time::{Duration, Instant};

use crate::encoder::{
    CAPTURE_FPS, Encoding, EncodingLimits, MTU_PAYLOAD, RATE_LAG, SimulcastAllocator,
    TEMPORAL_FRAMES, TEMPORAL_SHARE, encoder_budget,
};

/// Frames per second of the camera.
pub const FPS: u32 = CAPTURE_FPS as u32;
/// Temporal layer of each frame in libwebrtc's three-layer pattern.
const PATTERN: [u8; 4] = [0, 2, 1, 2];
/// Marker written after the codec headers: layer (1) + number (4) + capture micros (8) +
/// frame height (2).
pub const MARK_LEN: usize = 15;
/// A keyframe is this many times the size of a base-layer (TL0) frame at the same rate.
const KEYFRAME_FACTOR: f64 = 4.0;
/// Bytes on the wire per second of the audio source while talking: 75-byte Opus-like payloads
/// every 20 ms, plus RTP, SRTP and UDP/IP headers (about 50 bytes). A publisher's own
/// estimate covers audio too; the encoders get what is left.
pub const AUDIO_WIRE_BPS: u64 = (75 + 50) * 8 * 50;

/// Deterministic xorshift for frame size variation and talk spurts.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One RTP packet to write on a layer's stream.
#[derive(Debug, Clone)]
pub struct OutPacket {
    pub layer: u8,
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// State of one simulcast encoding's encoder.
#[derive(Debug, Clone)]
struct LayerEnc {
    seq: u64,
    picture_id: u16,
    tl0: u8,
    pattern_pos: usize,
    keyframe_wanted: bool,
    limits: EncodingLimits,
    params: Encoding,
    /// Rate the allocator gives this encoding; 0 = not sent.
    allocated: u64,
    /// Rate the encoder produces now: follows `allocated` with [`RATE_LAG`].
    rate: f64,
    /// When `rate` was last moved towards `allocated`.
    rate_at: Option<Instant>,
    /// Frame-rate limiter: captured frames are encoded while this reaches 1.
    credit: f64,
}

/// The video encoder of the synthetic publisher.
#[derive(Debug, Clone)]
pub struct VideoSource {
    layers: [LayerEnc; 3],
    /// Whether each encoding is active (dynacast: `publish_layers`' `active`; a weak publisher
    /// could stop the top one). An active encoding may still not be sent when the send target
    /// does not cover its minimum ([`VideoSource::sending`]).
    pub active: [bool; 3],
    /// A broken encoder: these layers never send a keyframe (bad-input tests).
    pub never_keyframe: [bool; 3],
    /// Latest REMB from the server (video bit/s), if any.
    remb: Option<u64>,
    /// The publisher's own estimate less audio, when it runs one.
    own_estimate: Option<u64>,
    allocator: SimulcastAllocator,
    frame_no: u32,
    rng: Rng,
    start: Instant,
}

impl VideoSource {
    pub fn new(seed: u64, start: Instant) -> Self {
        let enc = |i: u64| {
            let limits = EncodingLimits::default();
            LayerEnc {
                seq: 1000 * (i + 1),
                picture_id: (100 * i) as u16,
                tl0: 0,
                pattern_pos: 0,
                keyframe_wanted: true,
                limits,
                params: Encoding::resolve(i as usize, &limits),
                allocated: 0,
                rate: 0.0,
                rate_at: None,
                credit: 1.0,
            }
        };
        let mut v = VideoSource {
            layers: [enc(0), enc(1), enc(2)],
            active: [true; 3],
            never_keyframe: [false; 3],
            remb: None,
            own_estimate: None,
            allocator: SimulcastAllocator::default(),
            frame_no: 0,
            rng: Rng::new(seed),
            start,
        };
        v.reallocate();
        v
    }

    pub fn frame_interval() -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(FPS))
    }

    /// Starts or stops an encoding (dynacast); one that starts again begins with a keyframe.
    pub fn set_active(&mut self, layer: usize, on: bool) {
        if let Some(a) = self.active.get_mut(layer)
            && *a != on
        {
            *a = on;
            self.allocator.reconfigured();
            self.reallocate();
        }
    }

    /// Applies the server's limits to an encoding (`setParameters`).
    pub fn set_limits(&mut self, layer: usize, limits: EncodingLimits) {
        if let Some(l) = self.layers.get_mut(layer)
            && l.limits != limits
        {
            l.limits = limits;
            l.params = Encoding::resolve(layer, &limits);
            self.allocator.reconfigured();
            self.reallocate();
        }
    }

    /// A REMB from the server: the video budget (bit/s) until the next one.
    pub fn set_remb(&mut self, bps: u64) {
        if self.remb != Some(bps) {
            self.remb = Some(bps);
            self.reallocate();
        }
    }

    /// The publisher's own send-side estimate (bit/s, audio included).
    pub fn set_own_estimate(&mut self, bps: u64) {
        let video = bps.saturating_sub(AUDIO_WIRE_BPS);
        if self.own_estimate != Some(video) {
            self.own_estimate = Some(video);
            self.reallocate();
        }
    }

    /// Which encodings are being sent.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn sending(&self) -> [bool; 3] {
        self.layers.each_ref().map(|l| l.allocated > 0)
    }

    /// The rate the allocator gives each encoding (0 = not sent).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn allocation(&self) -> [u64; 3] {
        self.layers.each_ref().map(|l| l.allocated)
    }

    /// The effective parameters of each encoding.
    pub fn encodings(&self) -> [Encoding; 3] {
        self.layers.each_ref().map(|l| l.params)
    }

    fn reallocate(&mut self) {
        let encodings = self.encodings();
        let cap = match (self.remb, self.own_estimate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let budget = encoder_budget(cap, &encodings, self.active, &self.allocator);
        let rates = self.allocator.allocate(budget, &encodings, self.active);
        for (l, rate) in self.layers.iter_mut().zip(rates) {
            if rate > 0 && l.allocated == 0 {
                // An encoding that starts sends a keyframe and begins at its rate.
                l.keyframe_wanted = true;
                l.rate = rate as f64;
                l.rate_at = None;
                l.credit = 1.0;
            }
            l.allocated = rate;
        }
    }

    /// A keyframe was requested on `layer`.
    pub fn request_keyframe(&mut self, layer: u8) {
        if let Some(l) = self.layers.get_mut(usize::from(layer)) {
            l.keyframe_wanted = true;
        }
    }

    /// Encodes the frame captured at `now` on every encoding being sent.
    pub fn frame(&mut self, now: Instant, out: &mut Vec<OutPacket>) {
        let capture_us = now.saturating_duration_since(self.start).as_micros() as u64;
        let ts = (capture_us * 90 / 1000) as u32;
        self.frame_no += 1;
        for layer in 0..3u8 {
            let enc = &mut self.layers[usize::from(layer)];
            if enc.allocated == 0 {
                continue;
            }
            // maxFramerate: encode only as many captured frames as the limit allows.
            let fps = enc.params.fps;
            enc.credit += fps / CAPTURE_FPS;
            if enc.credit < 1.0 - 1e-9 {
                continue;
            }
            enc.credit = (enc.credit - 1.0).min(1.0);
            // Rate control settles on a new rate over about a second.
            if let Some(at) = enc.rate_at {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                let k = 1.0 - (-dt / RATE_LAG.as_secs_f64()).exp();
                enc.rate += (enc.allocated as f64 - enc.rate) * k;
            }
            enc.rate_at = Some(now);
            let variation = 0.75 + 0.5 * self.rng.next_f64();
            let key = enc.keyframe_wanted && !self.never_keyframe[usize::from(layer)];
            if key {
                enc.keyframe_wanted = false;
                enc.pattern_pos = 0;
            }
            let tid = PATTERN[enc.pattern_pos % PATTERN.len()];
            enc.pattern_pos += 1;
            if tid == 0 {
                enc.tl0 = enc.tl0.wrapping_add(1);
            }
            enc.picture_id = (enc.picture_id + 1) & 0x7fff;
            let rate = enc.rate;
            // Frames of a temporal layer per second: TL0 and TL1 a quarter each, TL2 half.
            let per_sec = fps * TEMPORAL_FRAMES[usize::from(tid)];
            let mut bytes = rate * TEMPORAL_SHARE[usize::from(tid)] / per_sec / 8.0 * variation;
            if key {
                bytes =
                    rate * TEMPORAL_SHARE[0] / (fps * TEMPORAL_FRAMES[0]) / 8.0 * KEYFRAME_FACTOR;
            }
            let bytes = (bytes as usize).max(MARK_LEN + 10);
            let (width, height) = (enc.params.width as u16, enc.params.height as u16);
            let mut left = bytes;
            let mut first = true;
            while left > 0 {
                let chunk = left.min(MTU_PAYLOAD);
                left -= chunk;
                let mut p = Vec::with_capacity(chunk + 16);
                // VP8 descriptor: X, S on the first packet, PictureID (15 bit), TL0PICIDX, TID.
                p.push(0x80 | if first { 0x10 } else { 0 });
                p.push(0xe0);
                p.push(0x80 | (enc.picture_id >> 8) as u8);
                p.push(enc.picture_id as u8);
                p.push(enc.tl0);
                p.push((tid << 6) | if tid > 0 { 0x20 } else { 0 });
                if first {
                    // Frame tag: P bit 0 on keyframes, show_frame set; keyframes carry the start
                    // code and dimensions.
                    p.extend_from_slice(&[if key { 0x10 } else { 0x11 }, 0, 0]);
                    if key {
                        p.extend_from_slice(&[0x9d, 0x01, 0x2a]);
                        p.extend_from_slice(&width.to_le_bytes());
                        p.extend_from_slice(&height.to_le_bytes());
                    }
                    p.push(layer);
                    p.extend_from_slice(&self.frame_no.to_be_bytes());
                    p.extend_from_slice(&capture_us.to_be_bytes());
                    p.extend_from_slice(&height.to_be_bytes());
                }
                // `chunk` counts the frame's own bytes, after the 6-byte descriptor.
                p.resize((6 + chunk).max(p.len()), 0xab);
                out.push(OutPacket {
                    layer,
                    seq: enc.seq,
                    ts,
                    marker: left == 0,
                    payload: p,
                });
                enc.seq += 1;
                first = false;
            }
        }
    }
}

/// Speech payload bytes of the audio source at its default rate (30 kbit/s of Opus-like payload
/// in 20 ms packets, about what Chromium's Opus sends for speech).
const SPEECH_PAYLOAD: usize = 75;
/// The smallest speech payload a bitrate cap brings it to (8 kbit/s: Opus's floor for
/// intelligible narrowband speech).
const SPEECH_PAYLOAD_MIN: usize = 20;

/// Opus-like audio: 20 ms packets while talking, one small DTX packet every 400 ms in pauses.
/// Obeys the server's `audio_rate` request as Chromium does: speech payloads shrink to the cap
/// ([`AudioSource::set_max_bitrate`], `maxBitrate` on the audio sender) and a packet carries
/// the packet time asked for ([`AudioSource::set_ptime`], `a=ptime` in a renegotiation): 40 or
/// 60 ms of speech in one packet of two or three times the payload.
#[derive(Debug, Clone)]
pub struct AudioSource {
    seq: u64,
    /// Number of the next packet (also its marker in the payload).
    pub next_id: u32,
    talking_until: Instant,
    silent_until: Instant,
    last_dtx: Option<Instant>,
    rng: Rng,
    start: Instant,
    /// Speech payload bytes per 20 ms now (the default, or what the server's cap allows).
    speech_payload: usize,
    /// 20 ms frames per packet (1, 2 or 3), and those of the packet being filled.
    frames_per_packet: u32,
    pending_frames: u32,
}

/// One audio packet sent, for the loss figures.
#[derive(Debug, Clone, Copy)]
pub struct SentAudio {
    pub id: u32,
    pub at: Instant,
    pub speech: bool,
    /// Speech it carries (20, 40 or 60 ms; a DTX packet counts as 20).
    pub frame: Duration,
}

impl AudioSource {
    pub fn new(seed: u64, start: Instant) -> Self {
        AudioSource {
            seq: 5000,
            next_id: 0,
            talking_until: start + Duration::from_secs(4),
            silent_until: start,
            last_dtx: None,
            rng: Rng::new(seed ^ 0xa0d1),
            start,
            speech_payload: SPEECH_PAYLOAD,
            frames_per_packet: 1,
            pending_frames: 0,
        }
    }

    /// The server's packet time (ms; `None`: the default 20). Opus's frame sizes: 20, 40, 60.
    pub fn set_ptime(&mut self, ms: Option<u16>) {
        self.frames_per_packet = u32::from(ms.unwrap_or(20).clamp(20, 60) / 20);
    }

    /// The server's `audio_rate` request: cap the payload bitrate (`None`: the default).
    pub fn set_max_bitrate(&mut self, bps: Option<u32>) {
        self.speech_payload = bps.map_or(SPEECH_PAYLOAD, |b| {
            (b as usize / 8 / 50).clamp(SPEECH_PAYLOAD_MIN, SPEECH_PAYLOAD)
        });
    }

    /// The 20 ms tick at `now`: at most one packet (speech leaves once its packet is full).
    pub fn tick(&mut self, now: Instant) -> Option<(OutPacket, SentAudio)> {
        if now >= self.talking_until && now >= self.silent_until {
            // Next spurt: 2-6 s of speech, then 0.5-2 s of silence.
            let pause = Duration::from_millis(500 + (1500.0 * self.rng.next_f64()) as u64);
            self.silent_until = now + pause;
            self.talking_until = self.silent_until
                + Duration::from_millis(2000 + (4000.0 * self.rng.next_f64()) as u64);
        }
        let talking = now >= self.silent_until;
        // Speech waits until its packet is full; a pause first sends what speech was waiting.
        let (speech, frames) = if talking {
            self.pending_frames += 1;
            if self.pending_frames < self.frames_per_packet {
                return None;
            }
            (true, std::mem::take(&mut self.pending_frames))
        } else if self.pending_frames > 0 {
            (true, std::mem::take(&mut self.pending_frames))
        } else {
            if self
                .last_dtx
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(400))
            {
                return None;
            }
            self.last_dtx = Some(now);
            (false, 1)
        };
        let capture_us = now.saturating_duration_since(self.start).as_micros() as u64;
        let id = self.next_id;
        self.next_id += 1;
        let mut p = Vec::with_capacity(SPEECH_PAYLOAD);
        p.push(u8::from(speech));
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&capture_us.to_be_bytes());
        p.resize(
            if speech {
                self.speech_payload * frames as usize
            } else {
                16
            },
            0x5a,
        );
        let seq = self.seq;
        self.seq += 1;
        Some((
            OutPacket {
                layer: 0,
                seq,
                ts: (capture_us * 48 / 1000) as u32,
                marker: false,
                payload: p,
            },
            SentAudio {
                id,
                at: now,
                speech,
                frame: Duration::from_millis(20 * u64::from(frames)),
            },
        ))
    }
}
