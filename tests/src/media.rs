//! Synthetic, well-formed media payloads and their parsers.
//!
//! * Audio: one Opus packet per 20 ms (TOC byte `0xF8` = CELT-only, fullband, 20 ms, mono, one
//!   frame) followed by pseudo-random bytes. Timestamps advance 960 per packet (48 kHz).
//! * Video: VP8 per RFC 7741 at ~30 fps, timestamps +3000 per frame (90 kHz). Every packet has a
//!   4-byte payload descriptor (X=1, S=1 on the first packet of a frame, PartID 0, I=1 with a
//!   15-bit PictureID). The frame itself starts with the 3-byte VP8 frame tag (RFC 6386 §9.1);
//!   keyframes have P=0, the start code `9d 01 2a` and 640x480. Frames are split into packets of
//!   at most [`VIDEO_MAX_PACKET_PAYLOAD`] bytes; the marker bit is set on the last packet.
//!
//! Payload contents are unique per packet (they embed the SSRC and a counter), so a receiver can
//! match every received packet to exactly one sent packet.

use bytes::{BufMut, Bytes, BytesMut};

/// Opus TOC byte used for all synthetic audio: config 31 (CELT FB 20 ms), mono, code 0.
pub const OPUS_TOC: u8 = 0xF8;
/// RTP timestamp step per 20 ms audio packet (48 kHz clock).
pub const AUDIO_TS_STEP: u32 = 960;
/// RTP timestamp step per video frame at 30 fps (90 kHz clock).
pub const VIDEO_TS_STEP: u32 = 3000;
/// Largest VP8 data chunk (after the payload descriptor) in one RTP packet.
pub const VIDEO_MAX_PACKET_PAYLOAD: usize = 1000;
/// A keyframe every this many frames (the first frame is always one).
pub const KEYFRAME_INTERVAL: u64 = 30;
/// Synthetic picture size.
pub const WIDTH: u16 = 640;
/// Synthetic picture size.
pub const HEIGHT: u16 = 480;
/// Size of a synthetic keyframe / delta frame (bytes, including the VP8 frame header).
pub const KEYFRAME_BYTES: usize = 2800;
/// See [`KEYFRAME_BYTES`]. Two packets per delta frame, about 300 kbit/s at 30 fps: low
/// enough that the estimates str0m derives from webrtc-rs feedback on a loaded loopback
/// (160-400 kbit/s) do not make the allocator pause these unlayered streams.
pub const DELTA_FRAME_BYTES: usize = 1100;

/// Deterministic filler (xorshift64*), so payloads are reproducible and unique per seed.
fn fill(buf: &mut BytesMut, seed: u64, len: usize) {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    if x == 0 {
        x = 1;
    }
    let mut left = len;
    while left > 0 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let n = left.min(8);
        buf.put_slice(&v[..n]);
        left -= n;
    }
}

/// One synthetic Opus packet; `counter` makes it unique.
pub fn opus_payload(ssrc: u32, counter: u64) -> Bytes {
    let len = 60 + (counter % 40) as usize;
    let mut b = BytesMut::with_capacity(len);
    b.put_u8(OPUS_TOC);
    b.put_u32(ssrc);
    b.put_u64(counter);
    let rest = len - b.len();
    fill(&mut b, (u64::from(ssrc) << 32) ^ counter, rest);
    b.freeze()
}

/// A whole synthetic VP8 frame (frame tag, keyframe start code + size, unique body).
pub fn vp8_frame(ssrc: u32, frame_no: u64, keyframe: bool) -> Bytes {
    vp8_frame_layer(ssrc, frame_no, keyframe, 0, 1)
}

/// A frame of simulcast layer `layer` of `layers` (0 = lowest): each lower layer halves the
/// picture size and roughly halves the frame size.
pub fn vp8_frame_layer(
    ssrc: u32,
    frame_no: u64,
    keyframe: bool,
    layer: usize,
    layers: usize,
) -> Bytes {
    let down = 1usize << layers.saturating_sub(1 + layer).min(4);
    let base = if keyframe {
        KEYFRAME_BYTES
    } else {
        DELTA_FRAME_BYTES
    };
    let total = (base / down).max(200) + (frame_no % 17) as usize;
    let (width, height) = (WIDTH / down as u16, HEIGHT / down as u16);
    let header_len = if keyframe { 10 } else { 3 };
    // first_part_size: pretend the first partition is everything after the header.
    let first_part_size = ((total - header_len) as u32).min(0x7FFFF);
    let p_bit = if keyframe { 0 } else { 1 };
    let version = 0u32;
    let show_frame = 1u32;
    let tag = p_bit | (version << 1) | (show_frame << 4) | (first_part_size << 5);
    let mut b = BytesMut::with_capacity(total);
    b.put_u8((tag & 0xFF) as u8);
    b.put_u8(((tag >> 8) & 0xFF) as u8);
    b.put_u8(((tag >> 16) & 0xFF) as u8);
    if keyframe {
        b.put_slice(&[0x9d, 0x01, 0x2a]);
        b.put_u16_le(width & 0x3FFF); // horizontal scale 0
        b.put_u16_le(height & 0x3FFF); // vertical scale 0
    }
    b.put_u32(ssrc);
    b.put_u64(frame_no);
    let rest = total - b.len();
    fill(
        &mut b,
        (u64::from(ssrc) << 32) ^ frame_no ^ 0xABCD_0000_0000,
        rest,
    );
    b.freeze()
}

/// RFC 7741 payload descriptor: X=1, S as given, PartID 0, I=1, 15-bit PictureID.
pub fn vp8_descriptor(start_of_frame: bool, picture_id: u16) -> [u8; 4] {
    let first = 0x80 | if start_of_frame { 0x10 } else { 0 };
    let pid = picture_id & 0x7FFF;
    [first, 0x80, 0x80 | (pid >> 8) as u8, (pid & 0xFF) as u8]
}

/// Splits a frame into RTP payloads (descriptor + chunk). Returns the payloads in order.
pub fn vp8_packetize(frame: &[u8], picture_id: u16) -> Vec<Bytes> {
    frame
        .chunks(VIDEO_MAX_PACKET_PAYLOAD)
        .enumerate()
        .map(|(i, chunk)| {
            let mut b = BytesMut::with_capacity(4 + chunk.len());
            b.put_slice(&vp8_descriptor(i == 0, picture_id));
            b.put_slice(chunk);
            b.freeze()
        })
        .collect()
}

/// Parsed RFC 7741 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// Descriptor length in bytes (the VP8 data starts here).
    pub len: usize,
    /// S bit: first packet of a VP8 partition.
    pub start: bool,
    /// Partition index.
    pub part_id: u8,
    /// PictureID if present.
    pub picture_id: Option<u16>,
    /// TL0PICIDX if present.
    pub tl0_pic_idx: Option<u8>,
}

/// Parses an RFC 7741 VP8 payload descriptor.
pub fn parse_vp8_descriptor(p: &[u8]) -> Option<Vp8Descriptor> {
    let first = *p.first()?;
    let x = first & 0x80 != 0;
    let start = first & 0x10 != 0;
    let part_id = first & 0x0F;
    let mut i = 1;
    let mut picture_id = None;
    let mut tl0_pic_idx = None;
    if x {
        let ext = *p.get(i)?;
        i += 1;
        let (has_i, has_l, has_t, has_k) = (
            ext & 0x80 != 0,
            ext & 0x40 != 0,
            ext & 0x20 != 0,
            ext & 0x10 != 0,
        );
        if has_i {
            let b0 = *p.get(i)?;
            if b0 & 0x80 != 0 {
                let b1 = *p.get(i + 1)?;
                picture_id = Some((u16::from(b0 & 0x7F) << 8) | u16::from(b1));
                i += 2;
            } else {
                picture_id = Some(u16::from(b0 & 0x7F));
                i += 1;
            }
        }
        if has_l {
            tl0_pic_idx = Some(*p.get(i)?);
            i += 1;
        }
        if has_t || has_k {
            p.get(i)?;
            i += 1;
        }
    }
    if i > p.len() {
        return None;
    }
    Some(Vp8Descriptor {
        len: i,
        start,
        part_id,
        picture_id,
        tl0_pic_idx,
    })
}

/// The VP8 data after the payload descriptor (the part an SFU must forward unchanged).
pub fn vp8_data(payload: &[u8]) -> Option<&[u8]> {
    let d = parse_vp8_descriptor(payload)?;
    Some(&payload[d.len..])
}

/// Whether this RTP payload starts a VP8 keyframe (S=1, PartID 0, P bit 0, start code present).
pub fn is_vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(d) = parse_vp8_descriptor(payload) else {
        return false;
    };
    let data = &payload[d.len..];
    d.start
        && d.part_id == 0
        && data.len() >= 6
        && data[0] & 0x01 == 0
        && data[3..6] == [0x9d, 0x01, 0x2a]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_is_recognised_and_delta_is_not() {
        let key = vp8_frame(7, 0, true);
        let pkts = vp8_packetize(&key, 300);
        assert!(pkts.len() >= 3);
        assert!(is_vp8_keyframe_start(&pkts[0]));
        assert!(!is_vp8_keyframe_start(&pkts[1]));
        let d = parse_vp8_descriptor(&pkts[0]).unwrap();
        assert_eq!(d.len, 4);
        assert_eq!(d.picture_id, Some(300));
        assert!(d.start);
        assert!(!parse_vp8_descriptor(&pkts[1]).unwrap().start);
        // reassembling the data gives the frame back
        let joined: Vec<u8> = pkts
            .iter()
            .flat_map(|p| vp8_data(p).unwrap().to_vec())
            .collect();
        assert_eq!(joined, key.to_vec());
        // width/height
        assert_eq!(u16::from_le_bytes([key[6], key[7]]), WIDTH);
        assert_eq!(u16::from_le_bytes([key[8], key[9]]), HEIGHT);

        let delta = vp8_frame(7, 1, false);
        let pkts = vp8_packetize(&delta, 301);
        assert!(pkts.len() >= 2);
        assert!(!is_vp8_keyframe_start(&pkts[0]));
        assert_eq!(delta[0] & 1, 1);
    }

    #[test]
    fn payloads_are_unique() {
        assert_ne!(opus_payload(1, 1), opus_payload(1, 2));
        assert_ne!(opus_payload(1, 1), opus_payload(2, 1));
        assert_eq!(opus_payload(1, 1)[0], OPUS_TOC);
        assert_ne!(vp8_frame(1, 1, false), vp8_frame(1, 2, false));
    }

    #[test]
    fn short_picture_id_and_extensions_parse() {
        // X=1, S=1, I=1 (7-bit pid 5), L=1, T=1
        let p = [0x90, 0xE0, 0x05, 0x11, 0x40, 0xAA];
        let d = parse_vp8_descriptor(&p).unwrap();
        assert_eq!(d.picture_id, Some(5));
        assert_eq!(d.tl0_pic_idx, Some(0x11));
        assert_eq!(d.len, 5);
        // no X
        let d = parse_vp8_descriptor(&[0x10, 0x00]).unwrap();
        assert_eq!(d.len, 1);
        assert!(parse_vp8_descriptor(&[0x90, 0x80]).is_none());
    }
}
