//! The synthetic publisher obeys like a browser: per-encoding limits, REMB shared lowest
//! encoding first, encodings that stop and restart with a keyframe, a rate that settles in
//! about a second, and today's ladder byte for byte when nothing steers it.

use std::time::Instant;

use crate::encoder::{EncodingLimits, PACKET_OVERHEAD_BYTES};
use crate::source::{OutPacket, Rng, VideoSource};

/// VP8 descriptor bytes the source writes before a frame's own bytes.
const DESCRIPTOR: usize = 6;

/// What one encoding sent over a window.
#[derive(Debug, Default, Clone)]
struct Sent {
    /// Frame bytes (payload less descriptors).
    media_bytes: u64,
    packets: u64,
    frames: u64,
    keyframes: u64,
    /// Height in the marker of every frame.
    heights: Vec<u16>,
    /// Keyframe dimensions (from the VP8 keyframe header).
    key_dims: Vec<(u16, u16)>,
}

impl Sent {
    fn media_bps(&self, secs: f64) -> f64 {
        self.media_bytes as f64 * 8.0 / secs
    }

    /// Frame bytes plus the packet overhead the encoder budgets for (descriptor included).
    fn wire_bps(&self, secs: f64) -> f64 {
        (self.media_bytes + self.packets * PACKET_OVERHEAD_BYTES) as f64 * 8.0 / secs
    }
}

struct Clock {
    start: Instant,
    frame: u64,
}

impl Clock {
    fn now(&self) -> Instant {
        self.start + VideoSource::frame_interval() * self.frame as u32
    }
}

fn source() -> (VideoSource, Clock) {
    let start = Instant::now();
    (VideoSource::new(5, start), Clock { start, frame: 0 })
}

/// Encodes `secs` of frames and tallies them per encoding.
fn encode(src: &mut VideoSource, clock: &mut Clock, secs: f64) -> [Sent; 3] {
    let mut out: [Sent; 3] = Default::default();
    let frames = (secs * 30.0).round() as u64;
    let mut packets: Vec<OutPacket> = Vec::new();
    for _ in 0..frames {
        packets.clear();
        src.frame(clock.now(), &mut packets);
        clock.frame += 1;
        for p in &packets {
            let s = &mut out[usize::from(p.layer)];
            s.packets += 1;
            s.media_bytes += (p.payload.len() - DESCRIPTOR) as u64;
            if p.payload[0] & 0x10 != 0 {
                s.frames += 1;
                let key = p.payload[DESCRIPTOR] & 1 == 0;
                let mark = DESCRIPTOR + if key { 10 } else { 3 };
                s.heights.push(u16::from_be_bytes([
                    p.payload[mark + 13],
                    p.payload[mark + 14],
                ]));
                if key {
                    s.keyframes += 1;
                    let d = &p.payload[DESCRIPTOR + 6..DESCRIPTOR + 10];
                    s.key_dims.push((
                        u16::from_le_bytes([d[0], d[1]]),
                        u16::from_le_bytes([d[2], d[3]]),
                    ));
                }
            }
        }
    }
    out
}

fn within(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= tolerance * want
}

#[test]
fn without_remb_or_limits_the_ladder_is_todays_byte_for_byte() {
    // Today's frame sizes, written out independently: 150/500/1500 kbit/s at 30 fps, the
    // 40/20/40 temporal split in the pattern 0,2,1,2, sizes varied by 0.75-1.25 from the same
    // random stream, a keyframe of 4 base frames first.
    let rates = [150_000.0, 500_000.0, 1_500_000.0];
    let mut rng = Rng::new(5);
    let mut want: Vec<[usize; 3]> = Vec::new();
    for n in 0..300usize {
        let mut sizes = [0usize; 3];
        for (layer, rate) in rates.iter().enumerate() {
            let variation = 0.75 + 0.5 * rng.next_f64();
            let tid = [0, 2, 1, 2][n % 4];
            let (share, per_sec) = match tid {
                0 => (0.4, 7.5),
                1 => (0.2, 7.5),
                _ => (0.4, 15.0),
            };
            let bytes = if n == 0 {
                rate * 0.4 / 7.5 / 8.0 * 4.0
            } else {
                rate * share / per_sec / 8.0 * variation
            };
            sizes[layer] = bytes as usize;
        }
        want.push(sizes);
    }
    let (mut src, clock) = source();
    let mut packets = Vec::new();
    for (n, sizes) in want.iter().enumerate() {
        packets.clear();
        src.frame(
            clock.start + VideoSource::frame_interval() * n as u32,
            &mut packets,
        );
        let mut got = [0usize; 3];
        for p in &packets {
            got[usize::from(p.layer)] += p.payload.len() - DESCRIPTOR;
        }
        assert_eq!(&got, sizes, "frame {n}");
    }
    assert_eq!(src.sending(), [true; 3]);
    let (mut src, mut clock) = source();
    let sent = encode(&mut src, &mut clock, 4.0);
    for (i, s) in sent.iter().enumerate() {
        assert_eq!(s.frames, 120, "30 fps on encoding {i}");
        assert!(s.heights.iter().all(|&h| h == [180, 360, 720][i]));
        assert_eq!(s.key_dims, vec![[(320, 180), (640, 360), (1280, 720)][i]]);
    }
}

#[test]
fn remb_is_shared_lowest_encoding_first_and_the_wire_rate_obeys_it() {
    // (REMB, encodings sent, whether they can use all of it). At 250 kbit/s h's 150 kbit/s
    // minimum does not fit beside q's 150, and q stays at its 150 kbit/s maximum.
    for (remb, sending, fills) in [
        (100_000, [true, false, false], true),
        (250_000, [true, false, false], false),
        (400_000, [true, true, false], true),
        (600_000, [true, true, false], true),
        (1_500_000, [true, true, true], true),
    ] {
        let (mut src, mut clock) = source();
        encode(&mut src, &mut clock, 1.0);
        src.set_remb(remb);
        assert_eq!(src.sending(), sending, "REMB {remb}");
        // The encoder settles within about a second.
        encode(&mut src, &mut clock, 2.0);
        let sent = encode(&mut src, &mut clock, 10.0);
        let alloc = src.allocation();
        let wire: f64 = sent.iter().map(|s| s.wire_bps(10.0)).sum();
        let want = if fills {
            remb as f64
        } else {
            (0..3)
                .map(|i| {
                    let e = src.encodings()[i];
                    alloc[i] as f64
                        + if alloc[i] > 0 {
                            e.overhead_bps(alloc[i] as f64)
                        } else {
                            0.0
                        }
                })
                .sum()
        };
        assert!(
            within(wire, want, 0.05),
            "REMB {remb}: {wire:.0} bit/s on the wire for {want:.0}, allocation {alloc:?}"
        );
        for i in 0..3 {
            if sending[i] {
                let media = sent[i].media_bps(10.0);
                assert!(
                    within(media, alloc[i] as f64, 0.05),
                    "REMB {remb}, encoding {i}: {media:.0} bit/s for {}",
                    alloc[i]
                );
            } else {
                assert_eq!(sent[i].packets, 0, "REMB {remb}: encoding {i} stopped");
            }
        }
        // Lowest first: q is at its target whenever anything above it is sent.
        if sending[1] {
            assert_eq!(alloc[0], 150_000);
        }
    }
}

#[test]
fn an_encoding_that_stops_restarts_with_a_keyframe_when_it_fits_again() {
    let (mut src, mut clock) = source();
    encode(&mut src, &mut clock, 2.0);
    src.set_remb(500_000);
    assert_eq!(src.sending(), [true, true, false]);
    let low = encode(&mut src, &mut clock, 3.0);
    assert_eq!(low[2].packets, 0);
    // 1.45 Mbit/s: f's 600 kbit/s minimum would fit, but a stopped encoding needs 1.2 x that.
    src.set_remb(1_450_000);
    assert_eq!(src.sending(), [true, true, false], "{:?}", src.allocation());
    src.set_remb(2_500_000);
    assert_eq!(src.sending(), [true; 3]);
    let back = encode(&mut src, &mut clock, 3.0);
    assert_eq!(back[2].keyframes, 1, "f starts again on a keyframe");
    assert_eq!(back[2].frames, 90);
    // The others went on without one.
    assert_eq!((back[0].keyframes, back[1].keyframes), (0, 0));
}

#[test]
fn the_encoder_takes_about_a_second_to_settle_on_a_new_rate() {
    let (mut src, mut clock) = source();
    encode(&mut src, &mut clock, 2.0);
    let before = src.allocation()[2] as f64;
    // Down to about 800 kbit/s for f.
    src.set_remb(1_550_000);
    let after = src.allocation()[2] as f64;
    assert!(after < 0.7 * before, "{after} vs {before}");
    let first = encode(&mut src, &mut clock, 0.2)[2].media_bps(0.2);
    encode(&mut src, &mut clock, 1.3);
    let settled = encode(&mut src, &mut clock, 3.0)[2].media_bps(3.0);
    assert!(
        first > after + 0.5 * (before - after),
        "still near the old rate right after the change: {first:.0} (old {before}, new {after})"
    );
    assert!(within(settled, after, 0.05), "{settled:.0} vs {after}");
}

#[test]
fn a_shaped_lowest_encoding_sends_frames_of_its_size_and_rate() {
    let (mut src, mut clock) = source();
    src.set_active(1, false);
    src.set_active(2, false);
    src.set_limits(
        0,
        EncodingLimits {
            max_bitrate: Some(60_000),
            max_framerate: Some(15.0),
            scale_resolution_down_by: Some(8.0),
        },
    );
    let first = encode(&mut src, &mut clock, 2.0);
    assert_eq!(first[0].key_dims, vec![(160, 90)]);
    let sent = encode(&mut src, &mut clock, 10.0);
    assert_eq!(sent[0].frames, 150, "15 fps");
    assert!(sent[0].heights.iter().all(|&h| h == 90));
    let media = sent[0].media_bps(10.0);
    assert!(within(media, 60_000.0, 0.05), "{media:.0} bit/s");
    assert_eq!((sent[1].packets, sent[2].packets), (0, 0));
    // A REMB under the shaped maximum lowers it further, never under the 30 kbit/s minimum.
    src.set_remb(20_000);
    assert_eq!(src.allocation(), [30_000, 0, 0]);
    // Clearing the limits restores the default encoding.
    src.set_limits(0, EncodingLimits::default());
    src.set_remb(10_000_000);
    let back = encode(&mut src, &mut clock, 4.0);
    assert!(back[0].heights.iter().all(|&h| h == 180));
    assert_eq!(back[0].frames, 120);
}

#[test]
fn the_publishers_own_estimate_caps_video_after_audio() {
    let (mut src, _) = source();
    src.set_own_estimate(10_000_000);
    assert_eq!(src.allocation(), [150_000, 500_000, 1_500_000]);
    // A weak uplink: after audio, only q and part of h fit.
    src.set_own_estimate(400_000);
    let a = src.allocation();
    assert_eq!(a[2], 0);
    assert!(a[0] + a[1] < 400_000 - 50_000, "{a:?}");
    // REMB and the own estimate: the tighter one wins.
    src.set_remb(150_000);
    assert_eq!(src.sending(), [true, false, false]);
}

#[test]
fn audio_follows_the_servers_bitrate_cap_like_chromium_with_max_bitrate() {
    use crate::source::AudioSource;
    use std::time::Duration;
    let t0 = Instant::now();
    let mut a = AudioSource::new(7, t0);
    // Speech bytes per second of payload over 2 s of talking (the source talks from t0).
    let speech_bytes = |a: &mut AudioSource, from: Instant| -> usize {
        (0..100)
            .filter_map(|i| a.tick(from + Duration::from_millis(20 * i)))
            .filter(|(_, s)| s.speech)
            .map(|(p, _)| p.payload.len())
            .sum::<usize>()
            / 2
    };
    let default = speech_bytes(&mut a, t0);
    assert_eq!(default, 75 * 50, "30 kbit/s of payload by default");
    a.set_max_bitrate(Some(16_000));
    // Within the first talk spurt (4 s): still talking at 2 s.
    let capped = speech_bytes(&mut a, t0 + Duration::from_millis(2000));
    assert_eq!(capped, 40 * 50, "16 kbit/s: 40-byte payloads");
    a.set_max_bitrate(Some(1_000));
    assert_eq!(
        a.tick(t0 + Duration::from_millis(4000 - 20))
            .map(|(p, _)| p.payload.len()),
        Some(20),
        "never below 8 kbit/s"
    );
    a.set_max_bitrate(None);
    assert_eq!(
        a.tick(t0 + Duration::from_millis(3990))
            .map(|(p, _)| p.payload.len()),
        Some(75),
        "the default again"
    );
}
