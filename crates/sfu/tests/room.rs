//! The room engine in virtual time with str0m client peers: no sockets, no clock, fully
//! deterministic. A publisher sends Opus RTP through the room to a subscriber; the subscriber must
//! see one SSRC with contiguous sequence numbers and the same payloads; then the publisher goes
//! silent (no DTLS close, no STUN) and the room must report it lost within the ICE consent timeout.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod world;

use std::time::Duration;

use kham_sfu::RoomEvent;
use kham_sfu::str0m::format::Codec;
use kham_sfu::str0m::media::{Direction, MediaKind};
use kham_sfu::str0m::rtp::{RtpWrite, SeqNo};
use world::{Client, World};

#[test]
fn audio_is_forwarded_continuously_and_a_silent_peer_is_lost() {
    let mut w = World::new();
    let t0 = w.now;
    let mid = w.join(
        Client::new("pub", "127.0.0.2:5000", t0),
        MediaKind::Audio,
        Direction::SendOnly,
    );
    w.join(
        Client::new("sub", "127.0.0.3:5000", t0),
        MediaKind::Audio,
        Direction::RecvOnly,
    );
    w.run_until(t0 + Duration::from_secs(2));
    assert!(
        w.clients.iter().all(|c| c.connected),
        "ICE + DTLS up in virtual time"
    );
    assert!(
        w.events.iter().any(|e| matches!(e, RoomEvent::Offer { peer, tracks, .. } if peer.as_str() == "sub" && tracks.len() == 1)),
        "the subscriber was offered the publisher's track: {:?}",
        w.events
    );

    // 5 s of Opus-like audio, one packet every 20 ms.
    let pt = *w.clients[0]
        .rtc
        .codec_config()
        .find(|p| p.spec().codec == Codec::Opus)
        .unwrap()
        .pt();
    let mut sent = Vec::new();
    for i in 0..250u64 {
        let at = t0 + Duration::from_secs(2) + Duration::from_millis(20 * i);
        w.run_until(at);
        let payload = vec![(i % 251) as u8; 60];
        let mut api = w.clients[0].rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).unwrap();
        tx.write_rtp(
            RtpWrite::new(
                pt.into(),
                SeqNo::from(100 + i),
                48_000 + 960 * i as u32,
                at,
                payload.clone(),
            )
            .marker(i == 0),
        );
        sent.push(payload);
    }
    w.run_until(w.now + Duration::from_millis(500));

    let got = &w.clients[1].received;
    assert!(got.len() >= 245, "received {} of 250", got.len());
    let ssrc = got[0].0;
    assert!(got.iter().all(|p| p.0 == ssrc), "one SSRC");
    for pair in got.windows(2) {
        assert_eq!(
            pair[1].1,
            pair[0].1.wrapping_add(1),
            "contiguous sequence numbers"
        );
        assert_eq!(
            pair[1].2.wrapping_sub(pair[0].2),
            960,
            "timestamps advance by one 20 ms frame"
        );
    }
    let first = sent.iter().position(|p| *p == got[0].3).unwrap();
    for (k, p) in got.iter().enumerate() {
        assert_eq!(p.3, sent[first + k], "payload {k} forwarded unchanged");
    }
    assert_eq!(w.room.stats().rtp_out as usize, got.len());

    // The publisher's network vanishes: no DTLS close, no more STUN consent checks. It is
    // reconnecting within seconds, and lost only after the reconnect grace (30 s).
    w.clients[0].online = false;
    let gone_at = w.now;
    w.run_until(gone_at + Duration::from_secs(45));
    let lost = w
        .events
        .iter()
        .any(|e| matches!(e, RoomEvent::Lost { peer } if peer.as_str() == "pub"));
    assert!(lost, "publisher reported lost within 45 s: {:?}", w.events);
    let after = w.lost_at.unwrap() - gone_at;
    println!("silent peer reported lost after {after:?} of virtual time");
    assert!(
        after >= Duration::from_secs(30),
        "not before the reconnect grace: {after:?}"
    );
    assert_eq!(w.room.len(), 1, "only the subscriber remains");
    // The subscriber was offered the stop of the publisher's m-line.
    let stopped = w.events.iter().any(|e| matches!(e, RoomEvent::Offer { peer, tracks, .. } if peer.as_str() == "sub" && tracks.iter().all(|t| !t.active)));
    assert!(stopped, "{:?}", w.events);
}
