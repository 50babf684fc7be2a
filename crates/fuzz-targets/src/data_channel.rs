//! The data-channel framing the room reads (`kham_sfu::vitals`, issue 16): the two-byte check
//! of vital-sign and image frames, the forwarded form a subscriber gets, the per-publisher rate
//! and image-transfer bookkeeping, and the image reservation, driven by a script of frames the
//! bytes describe.
//!
//! Each step is `[flags][dt][len: u16 LE][len bytes]`: `flags` chooses the lane (low two bits),
//! text or binary (bit 2) and the length of the publisher's id (bits 3-7, times 10: ids past 255
//! bytes are cut); `dt` advances virtual time by `dt` x 20 ms. What must hold, whatever comes:
//! no panic; a frame passes only with version 1, a kind of its lane (never one marked
//! forwarded) and a length within its lane's limit; the forwarded frame is the frame with the
//! id put in front and no longer than the room's reused buffer (so forwarding never
//! allocates); a transfer's reservation ends at its end frame or [`IMAGE_IDLE`] after its last
//! frame; measured rates never exceed what was recorded; the image reservation is bounded by
//! its measured rate, [`IMAGE_FLOOR_MAX_BPS`] and the estimate.

use std::time::{Duration, Instant};

use kham_sfu::vitals::{
    FORWARDED, IMAGE_FLOOR_MAX_BPS, IMAGE_IDLE, KIND_IMAGE_CHUNK, KIND_IMAGE_END, KIND_IMAGE_START,
    KIND_NUMERICS, KIND_WAVE, KINDS_IMAGE, Lane, MAX_FRAME, MAX_IMAGE_FRAME, PeerVitals,
    VITALS_VERSION, check_frame, forwarded_frame, image_reservation,
};

/// What the room's reused forwarding buffer holds without growing (`Room::vitals_buf`).
const FORWARD_CAPACITY: usize = MAX_IMAGE_FRAME + 256;

/// Runs the script; panics when an invariant breaks.
pub fn data_channel(data: &[u8]) {
    let t0 = Instant::now();
    let mut now = t0;
    let mut v = PeerVitals::default();
    let mut out = Vec::with_capacity(FORWARD_CAPACITY);
    let capacity = out.capacity();
    // Bytes recorded so far (wire rate bound) and the state of the transfer as the script
    // drives it: when its last start or chunk passed, and whether an end came after it.
    let mut recorded: u64 = 0;
    let mut last_image: Option<Instant> = None;
    let mut rest = data;
    while let [flags, dt, l0, l1, tail @ ..] = rest {
        let n = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (frame, next) = tail.split_at(n);
        rest = next;
        now += Duration::from_millis(u64::from(*dt) * 20);
        let lane = match flags & 3 {
            0 => Lane::Wave,
            1 => Lane::Numerics,
            _ => Lane::Image,
        };
        let binary = flags & 4 == 0;
        let id: String = "p".repeat(usize::from(flags >> 3) * 10);
        let checked = check_frame(lane, binary, frame);
        if checked.is_ok() {
            let max = if lane == Lane::Image {
                MAX_IMAGE_FRAME
            } else {
                MAX_FRAME
            };
            assert!(binary, "a text frame passed");
            assert!((2..=max).contains(&frame.len()), "length {}", frame.len());
            assert_eq!(frame[0], VITALS_VERSION);
            assert_eq!(frame[1] & FORWARDED, 0, "a client frame marked forwarded");
            let kind_ok = match lane {
                Lane::Wave => frame[1] == KIND_WAVE,
                Lane::Numerics => frame[1] == KIND_NUMERICS,
                Lane::Image => KINDS_IMAGE.contains(&frame[1]),
            };
            assert!(kind_ok, "kind {} on {lane:?}", frame[1]);

            v.record(now, lane, frame.len());
            recorded += (frame.len() + 85) as u64 * 8;
            if lane == Lane::Image {
                v.image_frame(now, frame[1]);
                match frame[1] {
                    KIND_IMAGE_START | KIND_IMAGE_CHUNK => last_image = Some(now),
                    KIND_IMAGE_END => last_image = None,
                    _ => {}
                }
            }

            forwarded_frame(&id, frame, &mut out);
            let id_len = id.len().min(255);
            assert_eq!(out.len(), frame.len() + 1 + id_len);
            assert!(
                out.len() <= FORWARD_CAPACITY,
                "forwarded frame of {}",
                out.len()
            );
            assert_eq!(out.capacity(), capacity, "forwarding allocated");
            assert_eq!(out[0], frame[0]);
            assert_eq!(out[1], frame[1] | FORWARDED);
            assert_eq!(usize::from(out[2]), id_len);
            assert_eq!(&out[3 + id_len..], &frame[2..]);
        } else {
            v.drop_frame();
        }
        v.roll(now);

        let in_flight = v.image_in_flight(now);
        let expected = last_image.is_some_and(|t| now.saturating_duration_since(t) < IMAGE_IDLE);
        assert_eq!(in_flight, expected, "transfer in flight");
        // A rate is at most everything recorded over the shortest window (1 s).
        assert!(
            v.bps() + v.image_bps() <= recorded,
            "rates past what was recorded"
        );

        // The reservation from any estimate and round-trip time the frame's bytes give.
        let [a, b, c, ..] = *frame else { continue };
        let estimate = (u64::from(a) << 12) * u64::from(b);
        let rtt = Duration::from_millis(u64::from(c) * 4);
        let measured = v.image_bps();
        let other = u64::from(b) * 1000;
        let r = image_reservation(measured, in_flight, Some(estimate), Some(rtt), other);
        assert!(r >= measured, "below the measured rate");
        assert!(
            r <= measured.max(IMAGE_FLOOR_MAX_BPS.min(estimate)),
            "{r} past the cap (measured {measured}, estimate {estimate})"
        );
        if !in_flight {
            assert_eq!(r, measured, "reserved past a transfer's end");
        }
        assert_eq!(
            image_reservation(measured, in_flight, None, Some(rtt), other),
            measured,
            "no estimate: the measured rate"
        );
    }
}
