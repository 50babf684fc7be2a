//! What the room engine does with clients' offers before and after str0m: offers larger than
//! the protocol needs are refused unparsed, a participant without the publish grant has its send
//! m-lines answered `inactive`, server offers only add what the room publishes, and errors tell
//! the client fixed texts.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod world;

use std::time::{Duration, Instant};

use kham_sfu::sdp_check::SdpLimit;
use kham_sfu::str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use kham_sfu::str0m::media::{Direction, MediaKind, Simulcast, SimulcastLayer};
use kham_sfu::str0m::{Candidate, Rtc};
use kham_sfu::{Permissions, Room, RoomConfig, RoomEvent, SfuError};
use world::{Client, World};

const PUBLISHER: Permissions = Permissions {
    publish: true,
    subscribe: true,
    health_data: true,
};
const OBSERVER: Permissions = Permissions {
    publish: false,
    subscribe: true,
    health_data: false,
};

fn config() -> RoomConfig {
    RoomConfig {
        candidates: vec![world::SERVER.parse().unwrap()],
        ..RoomConfig::default()
    }
}

fn room(now: Instant) -> Room {
    Room::new(config(), 3, now)
}

fn client(now: Instant, port: u16) -> Rtc {
    let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    rtc
}

fn simulcast() -> Simulcast {
    let mut s = Simulcast::new();
    s.send = ["q", "h", "f"].map(SimulcastLayer::new).to_vec();
    s
}

/// A client offer as the web client makes it: sendonly audio, sendonly simulcast video.
fn publish_offer(rtc: &mut Rtc) -> (String, SdpPendingOffer) {
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    change.add_media(
        MediaKind::Video,
        Direction::SendOnly,
        None,
        None,
        Some(simulcast()),
    );
    let (offer, pending) = change.apply().unwrap();
    (offer.to_sdp_string(), pending)
}

/// The direction attribute of each m-line of `sdp`.
fn directions(sdp: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("m=") {
            out.push(String::new());
        }
        if let Some(last) = out.last_mut()
            && ["a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive"].contains(&line)
        {
            *last = line[2..].to_owned();
        }
    }
    out
}

#[test]
fn observer_send_m_lines_are_answered_inactive() {
    let mut w = World::new();
    let t0 = w.now;
    let mut obs = Client::new("obs", "127.0.0.2:5000", t0);
    let (offer, pending) = publish_offer(&mut obs.rtc);
    assert_eq!(directions(&offer), ["sendonly", "sendonly"]);

    let answer = w
        .room
        .add_peer(t0, obs.id.clone(), OBSERVER, &offer)
        .unwrap();
    assert_eq!(directions(&answer), ["inactive", "inactive"], "{answer}");
    assert!(!answer.contains("a=simulcast"), "no simulcast invited");
    // The client's stack takes the answer: its senders simply stay idle.
    obs.rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    w.clients.push(obs);

    // A publisher with the same offer is answered recvonly, simulcast included.
    let mut p = client(t0, 5001);
    let (offer, _) = publish_offer(&mut p);
    let answer = Room::new(config(), 1, t0)
        .add_peer(t0, "pub".into(), PUBLISHER, &offer)
        .unwrap();
    assert_eq!(directions(&answer), ["recvonly", "recvonly"], "{answer}");
    assert!(answer.contains("a=simulcast:recv"), "{answer}");

    // In a call the observer connects and receives a publisher's track; nobody is offered
    // anything of the observer's.
    w.join(
        Client::new("pub", "127.0.0.3:5000", t0),
        MediaKind::Audio,
        Direction::SendOnly,
    );
    w.run_until(t0 + Duration::from_secs(2));
    assert!(w.clients.iter().all(|c| c.connected), "ICE + DTLS up");
    let offers_to = |who: &str| {
        w.events
            .iter()
            .filter_map(|e| match e {
                RoomEvent::Offer { peer, tracks, .. } if peer.as_str() == who => Some(tracks.len()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(offers_to("obs"), [1], "{:?}", w.events);
    assert!(offers_to("pub").is_empty(), "{:?}", w.events);
}

#[test]
fn sendrecv_from_an_observer_becomes_receive_only() {
    let now = Instant::now();
    let mut room = room(now);
    let mut c = client(now, 5002);
    let mut change = c.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, _) = change.apply().unwrap();
    let answer = room
        .add_peer(now, "obs".into(), OBSERVER, &offer.to_sdp_string())
        .unwrap();
    // The observer only receives: the server may send on it, the client may not.
    assert_eq!(directions(&answer), ["sendonly"], "{answer}");
}

#[test]
fn offers_past_the_protocol_limits_are_refused_before_parsing() {
    let now = Instant::now();
    let mut room = room(now);
    let mut c = client(now, 5003);
    let mut change = c.sdp_api();
    for _ in 0..5 {
        change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    }
    let (offer, _) = change.apply().unwrap();
    let e = room
        .add_peer(now, "many".into(), PUBLISHER, &offer.to_sdp_string())
        .unwrap_err();
    assert!(
        matches!(e, SfuError::SdpLimit(SdpLimit::TooManyVideo)),
        "{e:?}"
    );
    assert_eq!(
        e.public_message(),
        "the offer has more than 2 video m-lines"
    );
    assert!(room.peer_ids().is_empty(), "no session was made");

    // 50 m-lines of text that str0m would choke on are refused by the scan alone.
    let mut fake = String::from("v=0\r\n");
    for i in 0..50 {
        fake.push_str(&format!("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{i}\r\n"));
    }
    let e = room
        .add_peer(now, "fake".into(), PUBLISHER, &fake)
        .unwrap_err();
    assert!(matches!(e, SfuError::SdpLimit(_)), "{e:?}");

    // The limits leave room for what the protocol uses: audio, camera, screen, data.
    let mut change = c.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    change.add_channel("chat".into());
    let (offer, _) = change.apply().unwrap();
    room.add_peer(now, "full".into(), PUBLISHER, &offer.to_sdp_string())
        .unwrap();
}

#[test]
fn garbage_sdp_gets_a_fixed_message() {
    let now = Instant::now();
    let mut room = room(now);
    for garbage in [
        "this is not SDP",
        "v=0\r\nm=audio\r\n",
        "v=0\r\no=- 1 2 IN IP4 x\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:\u{0}\r\n",
    ] {
        let e = room
            .add_peer(now, "g".into(), PUBLISHER, garbage)
            .unwrap_err();
        let m = e.public_message();
        assert!(
            m == "the SDP could not be parsed"
                || m == "the SDP was not accepted (unsupported codecs, directions or transport)",
            "{garbage:?}: {m} ({e})"
        );
        assert!(!m.contains("0x"), "{m}");
    }
}

#[test]
fn answers_may_not_add_m_lines() {
    let mut w = World::new();
    w.hold_offers = true;
    let t0 = w.now;
    w.join(
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
    let (peer, sdp) = w
        .held_offers
        .pop()
        .expect("the subscriber is offered the track");
    assert_eq!(peer.as_str(), "sub");
    let offered = sdp.lines().filter(|l| l.starts_with("m=")).count();
    assert_eq!(offered, 2, "own audio + the publisher's");

    // An "answer" with extra m-lines is refused before str0m would add them.
    let mut bloated = sdp.clone();
    for i in 0..20 {
        bloated.push_str(&format!(
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:x{i}\r\na=recvonly\r\n"
        ));
    }
    let e = w.room.accept_answer(&peer, &bloated).unwrap_err();
    assert!(
        matches!(e, SfuError::SdpLimit(SdpLimit::AnswerMLines)),
        "{e:?}"
    );
    // The real answer still works afterwards.
    let sub = w.clients.iter_mut().find(|c| c.id == peer).unwrap();
    let real = sub
        .rtc
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&sdp).unwrap())
        .unwrap();
    w.room.accept_answer(&peer, &real.to_sdp_string()).unwrap();
}
