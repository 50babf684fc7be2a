//! What a subscriber sees: frame reassembly, a VP8-like decodability model, rendered frames,
//! and received audio.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kham_sfu::parse_vp8;

use crate::playout::Playout;
use crate::source::MARK_LEN;

/// A rendered frame: complete and decodable, shown at its playout time.
#[derive(Debug, Clone, Copy)]
pub struct Rendered {
    /// When it is shown (the receiver's playout delay applied: `playout.rs`).
    pub at: Instant,
    pub spatial: u8,
    /// Frame height as encoded (the encoding's `scaleResolutionDownBy` applied).
    pub height: u16,
    pub capture_us: u64,
}

#[derive(Debug, Default, Clone)]
struct Assembly {
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    packets: u32,
    tid: u8,
    tl0: u8,
    key: bool,
    spatial: u8,
    height: u16,
    capture_us: u64,
    complete_at: Option<Instant>,
}

/// The viewer's video decoder model.
///
/// A frame renders when all its packets are in and the decoder can use it: a keyframe always;
/// a TL0 frame when the previous TL0 frame was decoded; a higher temporal frame when its TL0
/// base was. A TL0 frame still missing `give_up` after a later one completed breaks the chain:
/// nothing renders until a keyframe, which the viewer asks for (PLI).
#[derive(Debug)]
pub struct VideoModel {
    frames: BTreeMap<u64, Assembly>,
    /// Unwrapped picture id of the last rendered frame.
    last_rendered: Option<u64>,
    last_tl0: Option<u8>,
    broken: bool,
    pid_base: Option<(u16, u64)>,
    give_up: Duration,
    /// The publisher's clock origin (capture times are relative to it) and the playout clock.
    start: Instant,
    playout: Playout,
    pub rendered: Vec<Rendered>,
    /// Set when a keyframe should be requested.
    pub want_keyframe: bool,
}

impl VideoModel {
    pub fn new(give_up: Duration, start: Instant) -> Self {
        VideoModel {
            start,
            playout: Playout::default(),
            frames: BTreeMap::new(),
            last_rendered: None,
            last_tl0: None,
            broken: true,
            pid_base: None,
            give_up,
            rendered: Vec::new(),
            want_keyframe: false,
        }
    }

    fn unwrap_pid(&mut self, pid: u16) -> u64 {
        let Some((last, ext)) = self.pid_base else {
            self.pid_base = Some((pid, u64::from(pid) + (1 << 20)));
            return u64::from(pid) + (1 << 20);
        };
        let diff = (i32::from(pid) - i32::from(last)).rem_euclid(0x8000);
        let delta = if diff >= 0x4000 { diff - 0x8000 } else { diff };
        let ext = (ext as i64 + i64::from(delta)) as u64;
        if delta > 0 {
            self.pid_base = Some((pid, ext));
        }
        ext
    }

    /// One received video packet.
    pub fn packet(&mut self, now: Instant, seq: u64, marker: bool, payload: &[u8]) {
        let Some(info) = parse_vp8(payload) else {
            return;
        };
        let Some(pid) = info.picture_id else {
            return;
        };
        let pid = self.unwrap_pid(pid);
        if self.last_rendered.is_some_and(|l| pid <= l) {
            return;
        }
        let start = payload.first().is_some_and(|b| b & 0x10 != 0);
        let a = self.frames.entry(pid).or_default();
        a.packets += 1;
        a.tid = info.tid.unwrap_or(0);
        a.tl0 = info.tl0_pic_idx.unwrap_or(0);
        if start {
            a.first_seq = Some(seq);
            a.key = info.keyframe;
            let desc = descriptor_len(payload);
            let head = desc + if info.keyframe { 10 } else { 3 };
            if let Some(m) = payload.get(head..head + MARK_LEN) {
                a.spatial = m[0];
                a.capture_us = u64::from_be_bytes(m[5..13].try_into().unwrap_or([0; 8]));
                a.height = u16::from_be_bytes(m[13..15].try_into().unwrap_or([0; 2]));
            }
        }
        if marker {
            a.last_seq = Some(seq);
        }
        if let (Some(f), Some(l)) = (a.first_seq, a.last_seq)
            && a.complete_at.is_none()
            && l >= f
            && u64::from(a.packets) > l - f
        {
            a.complete_at = Some(now);
        }
        self.decode(now);
    }

    /// Renders what can be rendered, in picture order.
    pub fn decode(&mut self, now: Instant) {
        while let Some((&pid, a)) = self.frames.iter().find(|(_, a)| a.complete_at.is_some()) {
            let a = a.clone();
            let ok = if a.key {
                true
            } else if self.broken {
                false
            } else if a.tid == 0 {
                self.last_tl0.is_some_and(|t| a.tl0 == t.wrapping_add(1))
            } else {
                self.last_tl0 == Some(a.tl0)
            };
            if ok {
                self.frames.remove(&pid);
                self.frames.retain(|&p, _| p > pid);
                if a.tid == 0 {
                    self.last_tl0 = Some(a.tl0);
                }
                self.broken = false;
                self.last_rendered = Some(pid);
                let at = self.playout.show(now, self.start, a.capture_us);
                self.rendered.push(Rendered {
                    at,
                    spatial: a.spatial,
                    height: a.height,
                    capture_us: a.capture_us,
                });
                continue;
            }
            // Not decodable yet: its reference may still arrive, unless it waited too long.
            let waited = a
                .complete_at
                .is_some_and(|c| now.saturating_duration_since(c) >= self.give_up);
            if self.broken || waited {
                if !self.broken {
                    self.broken = true;
                }
                self.want_keyframe = true;
                // Keep only frames that could start decoding again.
                self.frames.retain(|_, f| f.key || f.complete_at.is_none());
                if self
                    .frames
                    .values()
                    .any(|f| f.key && f.complete_at.is_some())
                {
                    continue;
                }
            }
            break;
        }
        // Bound the memory of incomplete frames.
        while self.frames.len() > 256 {
            self.frames.pop_first();
        }
    }
}

/// Length of a VP8 payload descriptor (RFC 7741 4.2).
fn descriptor_len(p: &[u8]) -> usize {
    let Some(&b0) = p.first() else { return 0 };
    if b0 & 0x80 == 0 {
        return 1;
    }
    let Some(&x) = p.get(1) else { return 2 };
    let mut n = 2;
    if x & 0x80 != 0 {
        n += if p.get(n).is_some_and(|b| b & 0x80 != 0) {
            2
        } else {
            1
        };
    }
    if x & 0x40 != 0 {
        n += 1;
    }
    if x & 0x30 != 0 {
        n += 1;
    }
    n
}

/// Audio as received: packet ids and arrival times.
#[derive(Debug, Default)]
pub struct AudioLog {
    pub received: BTreeMap<u32, Instant>,
}

impl AudioLog {
    pub fn packet(&mut self, now: Instant, payload: &[u8]) {
        if let Some(id) = payload.get(1..5) {
            let id = u32::from_be_bytes(id.try_into().unwrap_or([0; 4]));
            self.received.entry(id).or_insert(now);
        }
    }
}
