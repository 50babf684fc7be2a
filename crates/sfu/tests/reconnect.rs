//! A media connection that drops is a state, not a departure (`reconnect.rs`): in virtual time
//! with str0m client peers, a publisher whose network disappears is marked reconnecting within
//! seconds and comes back by itself when its network returns, before or after str0m's 15 s
//! consent timeout; an ICE restart gives it new credentials over the same DTLS session; after a
//! NAT rebinding the room sends to the new address within seconds.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod world;

use std::time::{Duration, Instant};

use kham_sfu::RoomEvent;
use kham_sfu::str0m::format::Codec;
use kham_sfu::str0m::media::{Direction, MediaKind, Mid};
use kham_sfu::str0m::rtp::{RtpWrite, SeqNo};
use world::{Client, World};

/// A publisher and a subscriber of audio, connected.
fn call() -> (World, Mid) {
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
    assert!(w.clients.iter().all(|c| c.connected));
    (w, mid)
}

/// The publisher sends 20 ms audio packets from the world's now until `until`; `seq` goes on
/// from call to call.
fn talk(w: &mut World, mid: Mid, seq: &mut u64, until: Instant) {
    let pt = *w.clients[0]
        .rtc
        .codec_config()
        .find(|p| p.spec().codec == Codec::Opus)
        .unwrap()
        .pt();
    while w.now < until {
        let at = w.now + Duration::from_millis(20);
        w.run_until(at);
        let mut api = w.clients[0].rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).unwrap();
        tx.write_rtp(
            RtpWrite::new(
                pt.into(),
                SeqNo::from(100 + *seq),
                48_000 + 960 * *seq as u32,
                at,
                vec![7; 60],
            )
            .marker(*seq == 0),
        );
        *seq += 1;
    }
}

fn position(w: &World, f: impl Fn(&RoomEvent) -> bool) -> Option<usize> {
    w.events.iter().position(f)
}

#[test]
fn a_gap_shorter_or_longer_than_the_consent_timeout_is_survived() {
    for gap_s in [6, 20] {
        let (mut w, mid) = call();
        let mut seq = 0;
        let start = w.now;
        talk(&mut w, mid, &mut seq, start + Duration::from_secs(2));
        let before = w.clients[1].received.len();
        assert!(before >= 90, "{before} packets before the gap");

        // The publisher's network goes away (the world drops its datagrams both ways).
        w.clients[0].online = false;
        let gone = w.now;
        talk(&mut w, mid, &mut seq, gone + Duration::from_secs(gap_s));
        let reconnecting = position(
            &w,
            |e| matches!(e, RoomEvent::Reconnecting { peer } if peer.as_str() == "pub"),
        );
        assert!(reconnecting.is_some(), "gap {gap_s} s: {:?}", w.events);
        assert!(
            !w.events.iter().any(|e| matches!(e, RoomEvent::Lost { .. })),
            "gap {gap_s} s: lost within the grace: {:?}",
            w.events
        );

        // It comes back: the same session, media forwarded again, marked back.
        w.clients[0].online = true;
        let back = w.now;
        talk(&mut w, mid, &mut seq, back + Duration::from_secs(5));
        let reconnected = position(
            &w,
            |e| matches!(e, RoomEvent::Reconnected { peer } if peer.as_str() == "pub"),
        );
        assert!(
            reconnected.is_some_and(|r| Some(r) > reconnecting),
            "gap {gap_s} s: {:?}",
            w.events
        );
        let after = w.clients[1].received.len() - before;
        println!("gap {gap_s} s: {after} packets forwarded in the 5 s after it");
        assert!(after >= 150, "gap {gap_s} s: {after} packets after the gap");
        assert_eq!(w.room.len(), 2);
    }
}

#[test]
fn an_ice_restart_renews_the_credentials_and_media_goes_on() {
    let (mut w, mid) = call();
    let mut seq = 0;
    let start = w.now;
    talk(&mut w, mid, &mut seq, start + Duration::from_secs(1));
    let offers_before = w.events.len();
    w.hold_offers = true;
    // A flood of restart requests while one is outstanding makes one offer.
    for _ in 0..100 {
        w.room.request_ice_restart(&"pub".into()).unwrap();
    }
    w.run_until(w.now + Duration::from_millis(100));
    assert_eq!(w.held_offers.len(), 1, "one offer for 100 requests");
    let (peer, sdp) = w.held_offers.pop().expect("a restart offer");
    assert_eq!(peer.as_str(), "pub");
    assert!(
        w.events[offers_before..]
            .iter()
            .any(|e| matches!(e, RoomEvent::Offer { peer, .. } if peer.as_str() == "pub"))
    );
    let ufrag = |sdp: &str| {
        sdp.lines()
            .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
            .map(str::to_owned)
    };
    let first_ufrag = ufrag(&sdp).unwrap();
    // The client answers it (its own credentials change too) ...
    w.hold_offers = false;
    let c = &mut w.clients[0];
    let answer = c
        .rtc
        .sdp_api()
        .accept_offer(kham_sfu::str0m::change::SdpOffer::from_sdp_string(&sdp).unwrap())
        .unwrap();
    w.room
        .accept_answer(&"pub".into(), &answer.to_sdp_string())
        .unwrap();
    let before = w.clients[1].received.len();
    let t = w.now;
    talk(&mut w, mid, &mut seq, t + Duration::from_secs(3));
    // ... and media flows through the restart.
    let after = w.clients[1].received.len() - before;
    assert!(after >= 140, "{after} packets after the restart");
    assert!(!w.events.iter().any(|e| matches!(e, RoomEvent::Lost { .. })));
    // A second restart offers other credentials again.
    w.hold_offers = true;
    w.room.request_ice_restart(&"pub".into()).unwrap();
    w.run_until(w.now + Duration::from_millis(100));
    let (_, sdp2) = w.held_offers.pop().expect("a second restart offer");
    assert_ne!(ufrag(&sdp2).unwrap(), first_ufrag);
    assert!(w.room.request_ice_restart(&"nobody".into()).is_err());
}

#[test]
fn after_a_nat_rebinding_media_follows_the_new_address_within_seconds() {
    let mut w = World::new();
    let t0 = w.now;
    let mid = w.join(
        Client::new("pub", "127.0.0.2:5000", t0),
        MediaKind::Audio,
        Direction::SendOnly,
    );
    let mut sub = Client::new("sub", "10.0.0.3:5000", t0);
    sub.nat = Some("203.0.113.1:40000".parse().unwrap());
    w.join(sub, MediaKind::Audio, Direction::RecvOnly);
    w.run_until(t0 + Duration::from_secs(2));
    assert!(w.clients.iter().all(|c| c.connected));
    let mut seq = 0;
    let start = w.now;
    talk(&mut w, mid, &mut seq, start + Duration::from_secs(3));
    assert!(w.clients[1].received.len() >= 140);

    // The carrier's NAT gives the subscriber a new public address; the old one is dead.
    w.clients[1].nat = Some("203.0.113.3:40001".parse().unwrap());
    let rebound = w.now;
    let before = w.clients[1].received.len();
    let mut back_after = None;
    while w.now < rebound + Duration::from_secs(20) {
        let t = w.now;
        talk(&mut w, mid, &mut seq, t + Duration::from_millis(100));
        if back_after.is_none() && w.clients[1].received.len() > before + 5 {
            back_after = Some(w.now - rebound);
        }
    }
    let back_after = back_after.expect("media never reached the new address");
    println!("media at the new address {back_after:?} after the rebinding");
    assert!(
        back_after <= Duration::from_secs(3),
        "downlink black-holed for {back_after:?}"
    );
    assert!(!w.events.iter().any(|e| matches!(e, RoomEvent::Lost { .. })));
    // The operator's view follows: the subscriber's media path is the new address, over UDP.
    let stats = w.room.media_stats();
    let sub = stats.iter().find(|p| p.id.as_str() == "sub").expect("sub");
    assert_eq!(
        sub.path,
        Some(kham_sfu::MediaPath {
            tcp: false,
            remote: "203.0.113.3:40001".parse().unwrap()
        })
    );
}
