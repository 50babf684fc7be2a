//! RFC 2198 redundant audio (RED): parsing what a publisher sends and building what a lossy
//! subscriber receives.
//!
//! A RED payload is a list of block headers followed by the blocks' data: each redundant block
//! has a 4-byte header (F=1, payload type, 14-bit timestamp offset back from the packet's
//! timestamp, 10-bit length), the primary block a 1-byte header (F=0, payload type) and takes the
//! rest. With one level of redundancy every Opus packet travels twice, in its own packet and in
//! the next, so a single lost packet costs nothing. Browsers decode RED natively when `red/48000/2`
//! is negotiated.
//!
//! Which audio repair wins where (issue 14):
//! - **RED** (this file, on for a subscriber from 2 % reported loss, `adapt.rs`): a single lost
//!   packet costs nothing and adds no delay; it costs one more copy of the payload, which at the
//!   lowest audio level (16 kbit/s Opus in 60 ms packets, `audio_rate.rs`) is 120 bytes beside
//!   about 65 of headers, so it is sent only while the estimate carries it
//!   (`adapt::RED_MIN_ESTIMATE_FACTOR`).
//! - **Opus in-band FEC** (`useinbandfec=1`, Chromium's default, kept): the encoder adds a
//!   low-rate copy of the previous frame when the receiver reports loss, inside the same packets
//!   and the same cap: repair without a single extra header.
//! - **NACK/RTX for audio**: not used. Chromium 148 does not offer it for Opus (its offer carries
//!   `a=rtcp-fb:111 transport-cc` only, seen 2026-12-05), and at the round-trip times kham is for
//!   (100-400 ms) a resend arrives a round trip after the loss was seen, past the 40-80 ms a
//!   jitter buffer holds for speech: the packet would be concealed already, or the jitter buffer
//!   would have to grow by the round trip, which is the delay audio first avoids. It would win
//!   only on links with a round trip shorter than the jitter buffer (a LAN), where loss is rare.
//!
//! Nothing here allocates except [`write_red`], which appends to a buffer the caller reuses.

/// Most redundant blocks read from one packet (browsers send one or two).
pub const MAX_REDUNDANT: usize = 4;

/// One block of a RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    pub pt: u8,
    /// How far back (in RTP timestamp units) this block's timestamp is; 0 for the primary.
    pub ts_offset: u16,
    pub data: &'a [u8],
}

/// A parsed RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Red<'a> {
    pub primary: Block<'a>,
    redundant: [Option<Block<'a>>; MAX_REDUNDANT],
}

impl<'a> Red<'a> {
    /// The redundant blocks, oldest first (the order they are sent in).
    pub fn redundant(&self) -> impl Iterator<Item = Block<'a>> + '_ {
        self.redundant.iter().flatten().copied()
    }
}

/// Parses a RED payload; `None` when it is malformed (lengths past the end, too many blocks).
pub fn parse_red(payload: &[u8]) -> Option<Red<'_>> {
    let mut headers = [(0u8, 0u16, 0usize); MAX_REDUNDANT];
    let mut n = 0;
    let mut i = 0;
    let primary_pt = loop {
        let b0 = *payload.get(i)?;
        if b0 & 0x80 == 0 {
            i += 1;
            break b0 & 0x7f;
        }
        let h = payload.get(i..i + 4)?;
        if n == MAX_REDUNDANT {
            return None;
        }
        let ts_offset = (u16::from(h[1]) << 6) | u16::from(h[2] >> 2);
        let len = (usize::from(h[2] & 0x03) << 8) | usize::from(h[3]);
        headers[n] = (b0 & 0x7f, ts_offset, len);
        n += 1;
        i += 4;
    };
    let mut redundant = [None; MAX_REDUNDANT];
    for (slot, &(pt, ts_offset, len)) in redundant.iter_mut().zip(&headers[..n]) {
        let data = payload.get(i..i + len)?;
        *slot = Some(Block {
            pt,
            ts_offset,
            data,
        });
        i += len;
    }
    Some(Red {
        primary: Block {
            pt: primary_pt,
            ts_offset: 0,
            data: payload.get(i..)?,
        },
        redundant,
    })
}

/// The payload kham forwards for one a publisher sent: a RED payload's primary block (each
/// subscriber then gets RED or not by its own loss), anything else as it is; `None` for a
/// malformed RED payload. The meter counts this, not what arrived: it is what a subscriber's
/// link carries.
pub fn forwarded(payload: &[u8], red_in: bool) -> Option<&[u8]> {
    if red_in {
        parse_red(payload).map(|r| r.primary.data)
    } else {
        Some(payload)
    }
}

/// Appends a RED payload carrying `primary` and, when it fits the format (timestamp offset below
/// 2^14, length below 1024), one redundant `previous` block: `(ts_offset, data)`.
pub fn write_red(out: &mut Vec<u8>, pt: u8, primary: &[u8], previous: Option<(u32, &[u8])>) {
    let pt = pt & 0x7f;
    let previous = previous.filter(|(off, d)| *off < (1 << 14) && d.len() < 1024 && !d.is_empty());
    if let Some((off, d)) = previous {
        let len = d.len();
        out.extend_from_slice(&[
            0x80 | pt,
            (off >> 6) as u8,
            (((off & 0x3f) as u8) << 2) | ((len >> 8) as u8 & 0x03),
            (len & 0xff) as u8,
        ]);
    }
    out.push(pt);
    if let Some((_, d)) = previous {
        out.extend_from_slice(d);
    }
    out.extend_from_slice(primary);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse_round_trips() {
        let mut buf = Vec::new();
        write_red(&mut buf, 111, b"primary!", Some((960, b"older")));
        let red = parse_red(&buf).unwrap();
        assert_eq!(red.primary.pt, 111);
        assert_eq!(red.primary.data, b"primary!");
        let r: Vec<_> = red.redundant().collect();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].pt, r[0].ts_offset, r[0].data),
            (111, 960, &b"older"[..])
        );
    }

    #[test]
    fn a_publishers_red_is_forwarded_as_its_primary() {
        let mut buf = Vec::new();
        write_red(&mut buf, 111, b"primary!", Some((960, b"older")));
        assert_eq!(forwarded(&buf, true), Some(&b"primary!"[..]));
        assert_eq!(forwarded(&buf, false), Some(&buf[..]));
        assert_eq!(forwarded(&[0x80 | 111, 0, 0], true), None);
    }

    #[test]
    fn without_history_only_the_primary_is_sent() {
        let mut buf = Vec::new();
        write_red(&mut buf, 111, b"abc", None);
        assert_eq!(buf, [111, b'a', b'b', b'c']);
        // An offset too far back for 14 bits is left out rather than wrapped.
        buf.clear();
        write_red(&mut buf, 111, b"abc", Some((1 << 14, b"old")));
        assert_eq!(buf, [111, b'a', b'b', b'c']);
    }

    #[test]
    fn malformed_payloads_are_none_never_a_panic() {
        let mut buf = Vec::new();
        write_red(&mut buf, 111, b"primary", Some((960, b"older")));
        for n in 0..5 {
            assert_eq!(parse_red(&buf[..n]), None, "len {n}");
        }
        // A block length past the end.
        let bad = [0x80 | 111, 0, 0, 200, 111, 1, 2];
        assert_eq!(parse_red(&bad), None);
        // More redundant headers than we read.
        let many = [0xef, 0, 0, 0].repeat(MAX_REDUNDANT + 1);
        assert_eq!(parse_red(&many), None);
        assert_eq!(parse_red(&[]), None);
    }
}
