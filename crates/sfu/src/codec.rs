//! What the forwarder needs to know about a video payload, parsed without allocating and
//! without trusting the bytes (every index is bounds-checked; malformed payloads yield `None`).

/// Codec of a forwarded track, as far as forwarding cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Opus,
    Vp8,
    H264,
    /// Anything else negotiated: forwarded, but no keyframe detection.
    Other,
}

/// Fields of a VP8 RTP payload descriptor (RFC 7741 section 4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Info {
    /// 15-bit (or 7-bit) PictureID, if present.
    pub picture_id: Option<u16>,
    /// Whether the PictureID uses the 15-bit form.
    pub picture_id_15bit: bool,
    pub tl0_pic_idx: Option<u8>,
    /// Temporal layer index, if present.
    pub tid: Option<u8>,
    /// First packet of a frame that is a keyframe.
    pub keyframe: bool,
}

/// Parses a VP8 payload descriptor and, for the first packet of a frame, the keyframe bit.
pub fn parse_vp8(payload: &[u8]) -> Option<Vp8Info> {
    parse_vp8_at(payload).map(|(info, _)| info)
}

/// The picture size a VP8 keyframe announces (RFC 6386 section 9.1: after the 3-byte frame tag,
/// the start code 9d 01 2a, then 14-bit width and height). `None` for anything else.
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let (info, at) = parse_vp8_at(payload)?;
    if !info.keyframe {
        return None;
    }
    let h = payload.get(at..at + 10)?;
    if h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
    let height = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
    (width > 0 && height > 0).then_some((width, height))
}

/// The descriptor and the offset of the VP8 payload after it.
fn parse_vp8_at(payload: &[u8]) -> Option<(Vp8Info, usize)> {
    let b0 = *payload.first()?;
    let extended = b0 & 0x80 != 0;
    let start = b0 & 0x10 != 0;
    let partition = b0 & 0x07;
    let mut info = Vp8Info::default();
    let mut i = 1;
    if extended {
        let x = *payload.get(i)?;
        i += 1;
        let (has_pid, has_tl0, has_tid, has_key) =
            (x & 0x80 != 0, x & 0x40 != 0, x & 0x20 != 0, x & 0x10 != 0);
        if has_pid {
            let p = *payload.get(i)?;
            i += 1;
            if p & 0x80 != 0 {
                let lo = *payload.get(i)?;
                i += 1;
                info.picture_id = Some((u16::from(p & 0x7f) << 8) | u16::from(lo));
                info.picture_id_15bit = true;
            } else {
                info.picture_id = Some(u16::from(p & 0x7f));
            }
        }
        if has_tl0 {
            info.tl0_pic_idx = Some(*payload.get(i)?);
            i += 1;
        }
        if has_tid || has_key {
            let t = *payload.get(i)?;
            i += 1;
            if has_tid {
                info.tid = Some(t >> 6);
            }
        }
    }
    let first_payload_byte = *payload.get(i)?;
    // The VP8 frame header's P bit (inverse keyframe flag) is only in the first partition's start.
    info.keyframe = start && partition == 0 && first_payload_byte & 0x01 == 0;
    Some((info, i))
}

/// Whether an H.264 RTP payload (RFC 6184) starts an IDR picture or carries an SPS.
pub fn h264_is_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    let Some(&b0) = payload.first() else {
        return false;
    };
    match b0 & 0x1f {
        // STAP-A: 2-byte sizes followed by NAL units.
        24 => {
            let mut i = 1;
            while i + 2 < payload.len() {
                let size = usize::from(u16::from_be_bytes([payload[i], payload[i + 1]]));
                let Some(&nal) = payload.get(i + 2) else {
                    return false;
                };
                if matches!(nal & 0x1f, IDR | SPS) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        // FU-A: only the start fragment names the type.
        28 => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == IDR),
        t => t == IDR || t == SPS,
    }
}

/// Whether this packet starts a frame the decoder can begin from.
pub fn is_keyframe_start(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => parse_vp8(payload).is_some_and(|i| i.keyframe),
        Codec::H264 => h264_is_keyframe(payload),
        Codec::Opus | Codec::Other => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_descriptor_and_keyframe() {
        // X=1 S=1 PID=0 | I=1 L=1 T=1 | M=1 pid 0x1234 | tl0 9 | tid 1 | payload P=0 (key)
        let p = [
            0x90,
            0xe0,
            0x80 | 0x12,
            0x34,
            9,
            0x40,
            0x10,
            0x02,
            0x00,
            0x9d,
            0x01,
            0x2a,
        ];
        // The VP8 payload starts at index 6 (0x10: P bit clear, a keyframe).
        let i = parse_vp8(&p).unwrap();
        assert_eq!(i.picture_id, Some(0x1234));
        assert!(i.picture_id_15bit);
        assert_eq!(i.tl0_pic_idx, Some(9));
        assert_eq!(i.tid, Some(1));
        assert!(i.keyframe);
        // Same with P=1: a delta frame.
        let mut d = p;
        d[6] = 0x11;
        assert!(!parse_vp8(&d).unwrap().keyframe);
        // A continuation packet (S=0) is never a keyframe start.
        let mut c = p;
        c[0] = 0x80;
        assert!(!parse_vp8(&c).unwrap().keyframe);
    }

    #[test]
    fn vp8_keyframe_size_is_read_from_the_frame_header() {
        // Descriptor X=1 S=1 | I=1 | 7-bit pid, then a keyframe tag, start code, 640 x 360.
        let mut p = vec![0x90, 0x80, 0x05, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        p.extend_from_slice(&640u16.to_le_bytes());
        p.extend_from_slice(&(360u16 | 0x4000).to_le_bytes()); // scale bits are not size
        assert_eq!(vp8_keyframe_size(&p), Some((640, 360)));
        let mut delta = p.clone();
        delta[3] = 0x11;
        assert_eq!(vp8_keyframe_size(&delta), None);
        let mut bad = p.clone();
        bad[6] = 0x00;
        assert_eq!(vp8_keyframe_size(&bad), None);
        for n in 0..p.len() {
            assert_eq!(vp8_keyframe_size(&p[..n]), None, "len {n}");
        }
    }

    #[test]
    fn vp8_truncated_is_none_not_panic() {
        let p = [0x90, 0xe0, 0x80 | 0x12, 0x34, 9, 0x40];
        for n in 0..p.len() {
            assert_eq!(parse_vp8(&p[..n]), None, "len {n}");
        }
    }

    #[test]
    fn h264_keyframes() {
        assert!(h264_is_keyframe(&[0x65, 1, 2]));
        assert!(!h264_is_keyframe(&[0x41, 1, 2]));
        assert!(h264_is_keyframe(&[0x7c, 0x85, 0]));
        assert!(!h264_is_keyframe(&[0x7c, 0x05, 0]));
        // STAP-A with SPS then PPS
        assert!(h264_is_keyframe(&[0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68]));
        assert!(!h264_is_keyframe(&[0x78, 0, 9]));
        assert!(!h264_is_keyframe(&[]));
    }
}
