//! A subscriber whose link loses packets is told, on the video it receives, to hold frames long
//! enough for NACK repairs (`repair_delay.rs`): the playout-delay extension is negotiated with a
//! browser-like client that offers it, nothing is written while no NACK came, and a minimum of
//! at least the margin over the round trip once the subscriber has asked for repairs.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod world;

use std::time::Duration;

use kham_sfu::str0m::Rtc;
use kham_sfu::str0m::format::Codec;
use kham_sfu::str0m::media::{Direction, MediaKind};
use kham_sfu::str0m::rtp::{Extension, RtpWrite, SeqNo};
use world::{Client, World};

/// One VP8 keyframe packet of a 320x180 picture (descriptor, frame tag, start code, size).
fn vp8_keyframe(first: bool, fill: u8) -> Vec<u8> {
    let mut p = vec![if first { 0x10 } else { 0x00 }];
    // Frame tag: keyframe (bit 0 clear), version 0, shown; then the start code and the size.
    p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
    p.extend_from_slice(&320u16.to_le_bytes());
    p.extend_from_slice(&180u16.to_le_bytes());
    p.resize(300, fill);
    p
}

#[test]
fn a_lossy_subscriber_gets_a_playout_delay_for_its_repairs() {
    let mut w = World::new();
    let t0 = w.now;
    let mid = w.join(
        Client::new("pub", "127.0.0.2:5000", t0),
        MediaKind::Video,
        Direction::SendOnly,
    );
    // A browser offers the playout-delay extension (Chromium at id 5).
    let config = Rtc::builder()
        .set_rtp_mode(true)
        .set_extension(5, Extension::PlayoutDelay);
    w.join(
        Client::with_config("sub", "127.0.0.3:5000", t0, config),
        MediaKind::Video,
        Direction::RecvOnly,
    );
    w.run_until(t0 + Duration::from_secs(2));
    assert!(w.clients.iter().all(|c| c.connected), "ICE + DTLS up");
    let pt = *w.clients[0]
        .rtc
        .codec_config()
        .find(|p| p.spec().codec == Codec::Vp8)
        .unwrap()
        .pt();

    // 15 frames a second, two packets each, every frame a keyframe (no keyframe request
    // needs an answer). The two packets are written 5 ms apart: written at one instant on one
    // stream, the first never reached the room (str0m's client side; not looked into).
    let mut seq = 1000u64;
    let mut send_for = |w: &mut World, from: Duration, secs: u64| {
        for f in 0..secs * 15 {
            let at = t0 + from + Duration::from_millis(f * 1000 / 15);
            w.run_until(at);
            let ts = 90_000 + (from.as_millis() as u32 + f as u32 * 1000 / 15) * 90;
            for k in 0..2 {
                w.run_until(at + Duration::from_millis(k * 5));
                let mut api = w.clients[0].rtc.direct_api();
                let tx = api.stream_tx_by_mid(mid, None).unwrap();
                tx.write_rtp(
                    RtpWrite::new(
                        pt.into(),
                        SeqNo::from(seq),
                        ts,
                        at + Duration::from_millis(k * 5),
                        vp8_keyframe(k == 0, seq as u8),
                    )
                    .marker(k == 1)
                    .nackable(true),
                );
                seq += 1;
            }
        }
    };

    // A clean link: video flows, no NACK, nothing written.
    send_for(&mut w, Duration::from_secs(2), 4);
    let clean = w.clients[1].received.len();
    assert!(
        clean >= 60,
        "video forwarded on the clean link: {clean} packets"
    );
    assert_eq!(
        w.clients[1].play_delay, None,
        "no playout delay without repairs"
    );

    // Every 10th datagram to the subscriber lost: it asks for repairs, and the room tells its
    // browser to wait for them.
    w.clients[1].drop_every = 10;
    send_for(&mut w, Duration::from_secs(6), 6);
    let (min, max) = w.clients[1]
        .play_delay
        .expect("a playout delay once the subscriber sent NACKs");
    let min_ms = min.as_seconds() * 1000.0;
    assert!(
        (50.0..=700.0).contains(&min_ms),
        "minimum = round trip + 50 ms margin, capped: {min_ms} ms"
    );
    assert!(
        (max.as_seconds() - 10.0).abs() < 1e-6,
        "maximum left at the browser's default: {} s",
        max.as_seconds()
    );
}
