//! Per-packet cost of the forwarding decision: `Forwarder::process` (sequence, timestamp and
//! VP8 picture-id rewriting with a layer switch every second) and VP8 descriptor parsing.
//!
//! `cargo run --release -p kham-benches --bin forward` prints nanoseconds per packet.

use std::hint::black_box;
use std::time::{Duration, Instant};

use kham_sfu::{Forwarder, InPacket, parse_vp8};

fn main() {
    let packets: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    // A VP8 packet with a 15-bit picture id, TL0PICIDX and TID, as Chromium sends.
    let mut payload = vec![0x90u8, 0xe0, 0x80, 0x00, 0, 0x40, 0x00, 0x9d, 0x01, 0x2a];
    payload.resize(1100, 0x55);

    let t0 = Instant::now();
    let mut parsed = 0u64;
    for i in 0..packets {
        payload[3] = i as u8;
        if parse_vp8(black_box(&payload)).is_some() {
            parsed += 1;
        }
    }
    let parse_ns = t0.elapsed().as_nanos() as f64 / packets as f64;

    let base = Instant::now();
    let mut f = Forwarder::new(90_000, 1000);
    f.set_target(Some(1));
    let mut forwarded = 0u64;
    let t1 = Instant::now();
    for i in 0..packets {
        // 3 layers interleaved; ~10 packets per frame, 30 fps; keyframe every 300 packets.
        let layer = (i % 3) as u8;
        let n = i / 3;
        if n % 900 == 0 {
            f.set_target(Some(((n / 900) % 3) as u8));
        }
        let vp8 = parse_vp8(&payload).map(|mut v| {
            v.picture_id = Some((n / 10) as u16 & 0x7fff);
            v.keyframe = n % 300 == 0;
            v
        });
        let p = InPacket {
            layer,
            seq: 10_000 * u64::from(layer) + n,
            ts: (n / 10 * 3000) as u32,
            at: base + Duration::from_micros(n * 3333),
            keyframe: n % 300 == 0,
            vp8,
        };
        if f.process(black_box(&p)).is_some() {
            forwarded += 1;
        }
    }
    let fwd_ns = t1.elapsed().as_nanos() as f64 / packets as f64;
    println!("packets: {packets}");
    println!("vp8 descriptor parse: {parse_ns:.1} ns/packet ({parsed} parsed)");
    println!(
        "forwarder decision + rewrite (incl. parse): {fwd_ns:.1} ns/packet ({forwarded} forwarded, {} layer switches)",
        f.switches()
    );
}
