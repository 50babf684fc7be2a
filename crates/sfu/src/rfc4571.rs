//! RFC 4571 framing for ICE over TCP (RFC 6544): every STUN, DTLS, RTP and RTCP packet travels
//! as a 2-byte big-endian length followed by the packet. Sans-IO: the shell reads the stream
//! into [`FrameReader::spare`] and takes whole packets out; it writes through [`FrameWriter`],
//! which is bounded and drops a packet that does not fit rather than queueing seconds of media
//! behind a slow connection (head-of-line blocking would hold audio back).
//!
//! Both buffers are allocated once per connection; nothing is allocated per packet.

use std::ops::Range;

/// Largest packet accepted in a frame: a media packet is at most an MTU (about 1200-1500 bytes
/// from a browser); a longer frame is garbage or an attack.
pub const MAX_FRAME: usize = 4096;
/// What a reader buffers: a few whole frames.
const READ_BUF: usize = 4 * (MAX_FRAME + 2);

/// Why a stream is not RFC 4571 framed packets: the connection should be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {0} bytes, more than {MAX_FRAME}")]
    TooLong(usize),
    #[error("an empty frame")]
    Empty,
}

/// Takes whole packets out of a byte stream.
pub struct FrameReader {
    buf: Box<[u8]>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            buf: vec![0; READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }
}

impl FrameReader {
    /// Where to read more bytes into (never empty while [`Self::next_frame`] is drained first:
    /// a whole frame always fits).
    pub fn spare(&mut self) -> &mut [u8] {
        if (self.start > 0 && self.end == self.buf.len()) || self.start == self.end {
            // Move what is left of a partial frame to the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`Self::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The next whole packet, as a range of [`Self::bytes`]; `None` until more is read.
    pub fn next_frame(&mut self) -> Result<Option<Range<usize>>, FrameError> {
        let avail = &self.buf[self.start..self.end];
        let [hi, lo, ..] = *avail else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > MAX_FRAME {
            return Err(FrameError::TooLong(len));
        }
        if avail.len() < 2 + len {
            return Ok(None);
        }
        let from = self.start + 2;
        self.start = from + len;
        Ok(Some(from..from + len))
    }

    /// The reader's buffer, for the ranges [`Self::next_frame`] returns.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Frames packets into a bounded output buffer for a TCP connection.
pub struct FrameWriter {
    buf: Vec<u8>,
    /// Bytes before this were written to the connection.
    sent: usize,
}

impl FrameWriter {
    /// A writer holding at most `capacity` bytes not yet written.
    pub fn new(capacity: usize) -> Self {
        FrameWriter {
            buf: Vec::with_capacity(capacity),
            sent: 0,
        }
    }

    /// Frames `packet`; false (and nothing queued) when it does not fit, or is too long.
    pub fn push(&mut self, packet: &[u8]) -> bool {
        if packet.is_empty() || packet.len() > MAX_FRAME {
            return false;
        }
        if self.sent > 0 && self.buf.len() + 2 + packet.len() > self.buf.capacity() {
            // Reclaim what was written.
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
        if self.buf.len() + 2 + packet.len() > self.buf.capacity() {
            return false;
        }
        self.buf
            .extend_from_slice(&(packet.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(packet);
        true
    }

    /// What is still to be written.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.sent..]
    }

    /// `n` bytes of [`Self::pending`] were written.
    pub fn written(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.buf.len());
        if self.sent == self.buf.len() {
            self.buf.clear();
            self.sent = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(p: &[u8]) -> Vec<u8> {
        let mut v = (p.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(p);
        v
    }

    /// Feeds `stream` in pieces of `step` bytes; returns the packets or the error.
    fn read_all(stream: &[u8], step: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut r = FrameReader::default();
        let mut out = Vec::new();
        for mut chunk in stream.chunks(step) {
            // As a socket read does: at most what fits.
            while !chunk.is_empty() {
                let spare = r.spare();
                assert!(!spare.is_empty(), "room after frames are taken out");
                let n = spare.len().min(chunk.len());
                spare[..n].copy_from_slice(&chunk[..n]);
                r.filled(n);
                chunk = &chunk[n..];
                while let Some(range) = r.next_frame()? {
                    out.push(r.bytes()[range].to_vec());
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn packets_come_out_whole_however_the_stream_is_cut() {
        let packets: Vec<Vec<u8>> = (1..40u16)
            .map(|i| vec![i as u8; usize::from(i) * 37 % 1500 + 1])
            .collect();
        let stream: Vec<u8> = packets.iter().flat_map(|p| frame(p)).collect();
        for step in [1, 2, 3, 7, 100, 1499, 4096, stream.len()] {
            assert_eq!(read_all(&stream, step).unwrap(), packets, "step {step}");
        }
        // A frame of the largest size passes; the stream may end inside a frame.
        let big = vec![9u8; MAX_FRAME];
        let mut s = frame(&big);
        s.extend_from_slice(&[0, 5, 1, 2]);
        assert_eq!(read_all(&s, 1000).unwrap(), vec![big]);
    }

    #[test]
    fn oversized_empty_and_garbage_frames_are_errors_not_panics() {
        assert_eq!(
            read_all(&[0xff, 0xff, 1, 2, 3], 5),
            Err(FrameError::TooLong(65535))
        );
        assert_eq!(read_all(&[0, 0, 1], 3), Err(FrameError::Empty));
        // An HTTP request sent to the media port: "GE" is a length of 18245.
        assert_eq!(
            read_all(b"GET / HTTP/1.1\r\n\r\n", 4),
            Err(FrameError::TooLong(0x4745))
        );
        // Arbitrary bytes never panic.
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let len = (x % 300) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x >> 24) as u8
                })
                .collect();
            let _ = read_all(&bytes, 1 + (x % 17) as usize);
        }
    }

    #[test]
    fn the_writer_is_bounded_and_drops_what_does_not_fit() {
        let mut w = FrameWriter::new(1000);
        assert!(w.push(&[1; 400]));
        assert!(w.push(&[2; 400]));
        assert!(!w.push(&[3; 400]), "past the bound: dropped");
        assert!(!w.push(&[]) && !w.push(&vec![0; MAX_FRAME + 1]));
        assert_eq!(w.pending().len(), 804);
        // A partial write, then room is reclaimed once written.
        w.written(500);
        assert_eq!(w.pending().len(), 304);
        assert!(w.push(&[3; 400]), "the written part is reclaimed");
        let mut stream = w.pending().to_vec();
        w.written(stream.len());
        assert!(w.pending().is_empty());
        // What it wrote reads back as the packets (after the 500 bytes already sent).
        let mut all = frame(&[1; 400]);
        all.extend(frame(&[2; 400]));
        let mut whole = all[..500].to_vec();
        whole.append(&mut stream);
        let got = read_all(&whole, 333).unwrap();
        assert_eq!(got, vec![vec![1; 400], vec![2; 400], vec![3; 400]]);
    }
}
