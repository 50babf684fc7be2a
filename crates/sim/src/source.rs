//! The synthetic publisher's media: three VP8-like simulcast layers with three temporal layers
//! and keyframes on request, and Opus-like audio with DTX pauses.
//!
//! Payloads carry a small marker after the codec headers (layer, frame or packet number,
//! capture time) so the viewer can tell what it got; the SFU never looks past the VP8 header.

use std::time::{Duration, Instant};

/// Bitrate of each simulcast layer with all temporal layers (about 180p/360p/720p).
pub const LAYER_BPS: [u64; 3] = [150_000, 500_000, 1_500_000];
/// Frame height of each layer, for the mean-resolution figure.
pub const LAYER_HEIGHT: [u32; 3] = [180, 360, 720];
/// Frames per second of every layer.
pub const FPS: u32 = 30;
/// Temporal layer of each frame in libwebrtc's three-layer pattern.
const PATTERN: [u8; 4] = [0, 2, 1, 2];
/// Share of a layer's bitrate per temporal layer (libwebrtc's 40/20/40 split).
const TEMPORAL_SHARE: [f64; 3] = [0.4, 0.2, 0.4];
/// Largest RTP payload.
const MTU_PAYLOAD: usize = 1150;
/// Marker written after the codec headers: layer (1) + number (4) + capture micros (8).
pub const MARK_LEN: usize = 13;

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

/// State of one simulcast layer's encoder.
#[derive(Debug, Clone)]
struct LayerEnc {
    seq: u64,
    picture_id: u16,
    tl0: u8,
    pattern_pos: usize,
    keyframe_wanted: bool,
}

/// The video encoder of the synthetic publisher.
#[derive(Debug, Clone)]
pub struct VideoSource {
    layers: [LayerEnc; 3],
    /// Whether each layer is being sent (a weak publisher could stop the top one; dynacast
    /// stops the ones nobody needs).
    pub active: [bool; 3],
    /// A broken encoder: these layers never send a keyframe (bad-input tests).
    pub never_keyframe: [bool; 3],
    frame_no: u32,
    rng: Rng,
    start: Instant,
}

impl VideoSource {
    pub fn new(seed: u64, start: Instant) -> Self {
        let enc = |i: u64| LayerEnc {
            seq: 1000 * (i + 1),
            picture_id: (100 * i) as u16,
            tl0: 0,
            pattern_pos: 0,
            keyframe_wanted: true,
        };
        VideoSource {
            layers: [enc(0), enc(1), enc(2)],
            active: [true; 3],
            never_keyframe: [false; 3],
            frame_no: 0,
            rng: Rng::new(seed),
            start,
        }
    }

    pub fn frame_interval() -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(FPS))
    }

    /// Starts or stops a layer; a layer that starts again begins with a keyframe.
    pub fn set_active(&mut self, layer: usize, on: bool) {
        if let (Some(a), Some(enc)) = (self.active.get_mut(layer), self.layers.get_mut(layer)) {
            if on && !*a {
                enc.keyframe_wanted = true;
            }
            *a = on;
        }
    }

    /// A keyframe was requested on `layer`.
    pub fn request_keyframe(&mut self, layer: u8) {
        if let Some(l) = self.layers.get_mut(usize::from(layer)) {
            l.keyframe_wanted = true;
        }
    }

    /// Encodes the frame captured at `now` on every active layer.
    pub fn frame(&mut self, now: Instant, out: &mut Vec<OutPacket>) {
        let capture_us = now.saturating_duration_since(self.start).as_micros() as u64;
        let ts = (capture_us * 90 / 1000) as u32;
        self.frame_no += 1;
        for layer in 0..3u8 {
            if !self.active[usize::from(layer)] {
                continue;
            }
            let variation = 0.75 + 0.5 * self.rng.next_f64();
            let enc = &mut self.layers[usize::from(layer)];
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
            let rate = LAYER_BPS[usize::from(layer)] as f64;
            // Frames of a temporal layer per second: TL0 and TL1 a quarter each, TL2 half.
            let per_sec = f64::from(FPS) * if tid == 2 { 0.5 } else { 0.25 };
            let mut bytes = rate * TEMPORAL_SHARE[usize::from(tid)] / per_sec / 8.0 * variation;
            if key {
                bytes = rate * TEMPORAL_SHARE[0] / (f64::from(FPS) * 0.25) / 8.0 * 4.0;
            }
            let bytes = (bytes as usize).max(MARK_LEN + 10);
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
                        // 320x180, 640x360, 1280x720: what a 720p camera's simulcast sends.
                        let (w, h) = (320u16 << layer, 180u16 << layer);
                        p.extend_from_slice(&[0x9d, 0x01, 0x2a]);
                        p.extend_from_slice(&w.to_le_bytes());
                        p.extend_from_slice(&h.to_le_bytes());
                    }
                    p.push(layer);
                    p.extend_from_slice(&self.frame_no.to_be_bytes());
                    p.extend_from_slice(&capture_us.to_be_bytes());
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

/// Opus-like audio: 20 ms packets while talking, one small DTX packet every 400 ms in pauses.
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
}

/// One audio packet sent, for the loss figures.
#[derive(Debug, Clone, Copy)]
pub struct SentAudio {
    pub id: u32,
    pub at: Instant,
    pub speech: bool,
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
        }
    }

    /// The 20 ms tick at `now`: at most one packet.
    pub fn tick(&mut self, now: Instant) -> Option<(OutPacket, SentAudio)> {
        if now >= self.talking_until && now >= self.silent_until {
            // Next spurt: 2-6 s of speech, then 0.5-2 s of silence.
            let pause = Duration::from_millis(500 + (1500.0 * self.rng.next_f64()) as u64);
            self.silent_until = now + pause;
            self.talking_until = self.silent_until
                + Duration::from_millis(2000 + (4000.0 * self.rng.next_f64()) as u64);
        }
        let speech = now >= self.silent_until;
        if !speech {
            if self
                .last_dtx
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(400))
            {
                return None;
            }
            self.last_dtx = Some(now);
        }
        let capture_us = now.saturating_duration_since(self.start).as_micros() as u64;
        let id = self.next_id;
        self.next_id += 1;
        let mut p = Vec::with_capacity(80);
        p.push(u8::from(speech));
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&capture_us.to_be_bytes());
        p.resize(if speech { 75 } else { 16 }, 0x5a);
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
            },
        ))
    }
}
