//! Synthetic media of the load generator: VP8 simulcast frames with valid RFC 7741 payload
//! descriptors (15-bit PictureID, TL0PICIDX, an L1T3 temporal pattern) and Opus-sized audio.
//!
//! Every RTP payload carries a [`Stamp`]: which generator stream it belongs to, a per-stream
//! counter and its send time, so a subscriber measures one-way delay through the server (sender
//! and receiver share the process clock) and gaps in what it receives.

/// Marks a stamp ("KHLD").
const MAGIC: u32 = 0x4B48_4C44;
/// Bytes of a stamp.
pub const STAMP_LEN: usize = 20;
/// Opus TOC byte: CELT fullband 20 ms, mono, one frame.
const OPUS_TOC: u8 = 0xF8;
/// VP8 payload descriptor length written here: X, I (2 bytes), L, T/K.
const DESC_LEN: usize = 6;
/// Temporal layer of frame `n % 4` in the L1T3 pattern (0, 2, 1, 2).
const L1T3: [u8; 4] = [0, 2, 1, 2];

/// What a generator stream carries: audio, or simulcast layer 0..=2 (q, h, f).
pub fn stream_id(client: usize, kind: u8) -> u32 {
    ((client as u32) << 2) | u32::from(kind & 3)
}

/// The stamp every payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// [`stream_id`] of the sending stream.
    pub stream: u32,
    /// Packets sent on that stream before this one.
    pub counter: u32,
    /// Send time, nanoseconds since the generator's clock base.
    pub sent_ns: u64,
}

impl Stamp {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&self.stream.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.sent_ns.to_be_bytes());
    }

    fn read(b: &[u8]) -> Option<Stamp> {
        let b = b.get(..STAMP_LEN)?;
        let u32_at = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
        if u32_at(0)? != MAGIC {
            return None;
        }
        Some(Stamp {
            stream: u32_at(4)?,
            counter: u32_at(8)?,
            sent_ns: u64::from_be_bytes(b.get(12..20)?.try_into().ok()?),
        })
    }
}

/// Filler bytes (their content does not matter: SRTP encrypts them, kham reads only the
/// descriptor and the frame header). A byte-by-byte generator cost 11 % of the generator's CPU.
const FILLER: [u8; 256] = [0xA5; 256];

/// Pads `out` to `len` bytes.
fn fill(out: &mut Vec<u8>, len: usize) {
    while out.len() < len {
        let n = (len - out.len()).min(FILLER.len());
        out.extend_from_slice(&FILLER[..n]);
    }
}

/// One audio payload: Opus TOC, stamp, filler; 60-100 bytes as Opus at 32-48 kbit/s.
pub fn opus_payload(stamp: Stamp) -> Vec<u8> {
    let len = 60 + (stamp.counter % 41) as usize;
    let mut b = Vec::with_capacity(len);
    b.push(OPUS_TOC);
    stamp.write(&mut b);
    fill(&mut b, len);
    b
}

/// Where one simulcast layer is in its picture sequence.
#[derive(Debug, Clone, Default)]
pub struct Vp8State {
    frame: u64,
    picture_id: u16,
    tl0: u8,
}

/// A VP8 frame cut into RTP payloads.
#[derive(Debug)]
pub struct Vp8Frame {
    /// Payloads in order; the last one gets the marker bit.
    pub payloads: Vec<Vec<u8>>,
}

/// Width and height of layer 0..=2 (320x180, 640x360, 1280x720).
fn size_of(layer: u8) -> (u16, u16) {
    match layer {
        0 => (320, 180),
        1 => (640, 360),
        _ => (1280, 720),
    }
}

impl Vp8State {
    /// The next frame of `frame_bytes` bytes (VP8 data, descriptors not counted) in payloads of
    /// at most `max_payload` bytes; `stamp` makes a stamp per payload from the packet's index.
    pub fn frame(
        &mut self,
        layer: u8,
        keyframe: bool,
        frame_bytes: usize,
        max_payload: usize,
        mut stamp: impl FnMut() -> Stamp,
    ) -> Vp8Frame {
        let tid = if keyframe {
            0
        } else {
            L1T3[(self.frame % 4) as usize]
        };
        if tid == 0 {
            self.tl0 = self.tl0.wrapping_add(1);
        }
        self.frame += 1;
        self.picture_id = (self.picture_id + 1) & 0x7FFF;
        let chunk = max_payload.saturating_sub(DESC_LEN).max(STAMP_LEN + 16);
        let header: Vec<u8> = vp8_header(keyframe, frame_bytes, size_of(layer));
        let frame_bytes = frame_bytes.max(header.len() + STAMP_LEN + 1);
        let mut payloads = Vec::with_capacity(frame_bytes / chunk + 1);
        let mut left = frame_bytes;
        let mut first = true;
        while left > 0 {
            let n = left.min(chunk);
            let mut b = Vec::with_capacity(DESC_LEN + n.max(STAMP_LEN));
            let first_byte = 0x80 | if first { 0x10 } else { 0 };
            let pid = self.picture_id;
            // X | ext: I, L, T | M + 15-bit PictureID | TL0PICIDX | TID (Y=1 on layer 0), KEYIDX 0.
            b.extend_from_slice(&[
                first_byte,
                0xE0,
                0x80 | (pid >> 8) as u8,
                (pid & 0xFF) as u8,
                self.tl0,
                (tid << 6) | if tid == 0 { 0x20 } else { 0 },
            ]);
            if first {
                b.extend_from_slice(&header);
            }
            stamp().write(&mut b);
            let len = (DESC_LEN + n).max(b.len());
            fill(&mut b, len);
            left = left.saturating_sub(len - DESC_LEN);
            payloads.push(b);
            first = false;
        }
        Vp8Frame { payloads }
    }
}

/// RFC 6386 §9.1 frame tag (and for a keyframe the start code and size).
fn vp8_header(keyframe: bool, total: usize, (w, h): (u16, u16)) -> Vec<u8> {
    let header_len: usize = if keyframe { 10 } else { 3 };
    let first_part = (total.saturating_sub(header_len) as u32).min(0x7_FFFF);
    let tag = u32::from(!keyframe) | (1 << 4) | (first_part << 5);
    let mut b = vec![tag as u8, (tag >> 8) as u8, (tag >> 16) as u8];
    if keyframe {
        b.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        b.extend_from_slice(&(w & 0x3FFF).to_le_bytes());
        b.extend_from_slice(&(h & 0x3FFF).to_le_bytes());
    }
    b
}

/// Length of the VP8 payload descriptor at the start of `p`, if it parses.
fn vp8_descriptor_len(p: &[u8]) -> Option<usize> {
    let first = *p.first()?;
    let mut i = 1;
    if first & 0x80 != 0 {
        let ext = *p.get(i)?;
        i += 1;
        if ext & 0x80 != 0 {
            i += if *p.get(i)? & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            i += 1;
        }
        if ext & 0x30 != 0 {
            i += 1;
        }
    }
    (i <= p.len()).then_some(i)
}

/// The stamp of a received VP8 payload (after the descriptor, and after the frame header on the
/// first packet of a frame).
pub fn vp8_stamp(p: &[u8]) -> Option<Stamp> {
    let d = vp8_descriptor_len(p)?;
    let start = p[0] & 0x10 != 0 && p[0] & 0x0F == 0;
    let data = p.get(d..)?;
    let at = if start {
        if *data.first()? & 1 == 0 { 10 } else { 3 }
    } else {
        0
    };
    Stamp::read(data.get(at..)?)
}

/// The stamp of a received Opus payload (after the TOC byte).
pub fn opus_stamp(p: &[u8]) -> Option<Stamp> {
    Stamp::read(p.get(1..)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stamps() -> impl FnMut() -> Stamp {
        let mut n = 0;
        move || {
            n += 1;
            Stamp {
                stream: 7,
                counter: n - 1,
                sent_ns: 42,
            }
        }
    }

    #[test]
    fn frames_round_trip_their_stamps_and_fit() {
        let mut s = Vp8State::default();
        for (key, bytes) in [(true, 30_000), (false, 6_250), (false, 600)] {
            let f = s.frame(2, key, bytes, 1200, stamps());
            let total: usize = f.payloads.iter().map(|p| p.len() - DESC_LEN).sum();
            assert!(total >= bytes, "{total} < {bytes}");
            for (i, p) in f.payloads.iter().enumerate() {
                assert!(p.len() <= 1200);
                let st = vp8_stamp(p).unwrap();
                assert_eq!(st.counter, i as u32);
                assert_eq!(st.stream, 7);
            }
            let first = &f.payloads[0];
            assert_eq!(first[0] & 0x10, 0x10);
            assert_eq!(first[DESC_LEN] & 1, u8::from(!key));
            if key {
                assert_eq!(first[DESC_LEN + 3..DESC_LEN + 6], [0x9d, 0x01, 0x2a]);
            }
        }
    }

    #[test]
    fn audio_round_trips_and_garbage_is_refused() {
        let st = Stamp {
            stream: 4,
            counter: 9,
            sent_ns: 123_456_789,
        };
        let p = opus_payload(st);
        assert!((60..=100).contains(&p.len()));
        assert_eq!(opus_stamp(&p), Some(st));
        assert_eq!(opus_stamp(&[0xF8, 1, 2]), None);
        assert_eq!(vp8_stamp(&[0x90]), None);
        assert_eq!(vp8_stamp(&[]), None);
    }
}
