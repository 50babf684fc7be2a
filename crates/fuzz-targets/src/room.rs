//! A room fed what anyone on the network, or any token holder, can send it: datagrams from a
//! participant's address (raw, or STUN binding requests carrying the right ICE username so
//! they get past `Room::accepts` into str0m's ICE agent, with any attributes after it), SDP
//! offers of any text, and time. Nothing may panic, and afterwards the room must still take a
//! valid participant (kham's shard contains a panic per room; here a contained panic is still
//! a finding).
//!
//! What it does not reach: RTP and RTCP past SRTP (a fuzzer cannot forge the keys; the payload
//! parsers behind it have their own targets: `vp8`, `red`, `forwarder`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kham_proto::ParticipantId;
use kham_sfu::str0m::change::{SdpAnswer, SdpPendingOffer};
use kham_sfu::str0m::media::{Direction, MediaKind};
use kham_sfu::str0m::net::{DatagramRecv, Protocol, Receive, Transmit};
use kham_sfu::str0m::{Candidate, Event, Input, Output, Rtc};
use kham_sfu::{Permissions, Room, RoomConfig, RoomOutput};

const SERVER: &str = "127.0.0.1:7882";
const CLIENT: &str = "127.0.0.2:5000";
/// SDP offers of fuzz text per input (the room holds 8).
const MAX_SDP_ADDS: usize = 4;

/// A str0m client with an offer of an audio and a video line, its ICE username fragment, and
/// what it needs to take the answer.
fn client_offer(now: Instant) -> (Rtc, String, String, SdpPendingOffer) {
    let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
    if let Ok(c) = Candidate::host(CLIENT.parse().expect("address"), "udp") {
        rtc.add_local_candidate(c);
    }
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    change.add_media(MediaKind::Video, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().expect("an offer");
    let sdp = offer.to_sdp_string();
    let ufrag = ice_ufrag(&sdp).expect("the offer has an ICE ufrag");
    (rtc, sdp, ufrag, pending)
}

/// What the other side receives of a datagram sent in memory.
fn received(t: &Transmit) -> Option<Receive<'_>> {
    Some(Receive {
        proto: Protocol::Udp,
        source: t.source,
        destination: t.destination,
        contents: DatagramRecv::try_from(&t.contents[..]).ok()?,
    })
}

/// Lets the client and the room exchange datagrams (ICE, then DTLS) for up to `for_` of
/// virtual time; true once the client is connected.
fn handshake(room: &mut Room, client: &mut Rtc, now: &mut Instant, for_: Duration) -> bool {
    let end = *now + for_;
    let mut connected = false;
    while *now < end && !connected {
        let mut next = end;
        loop {
            match client.poll_output() {
                Ok(Output::Timeout(t)) => {
                    next = next.min(t);
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    if let Some(r) = received(&t) {
                        let _ = room.handle_receive(*now, r);
                    }
                }
                Ok(Output::Event(Event::Connected)) => connected = true,
                Ok(Output::Event(_)) => {}
                Err(_) => return false,
            }
        }
        loop {
            match room.poll_output() {
                RoomOutput::Timeout(t) => {
                    next = next.min(t);
                    break;
                }
                RoomOutput::Transmit(t) => {
                    if let Some(r) = received(&t) {
                        let _ = client.handle_input(Input::Receive(*now, r));
                    }
                }
                RoomOutput::Event(_) => {}
            }
        }
        *now = next.max(*now + Duration::from_millis(1));
        room.handle_timeout(*now);
        let _ = client.handle_input(Input::Timeout(*now));
    }
    connected
}

fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .map(str::to_string)
}

/// A STUN binding request with USERNAME `user`, then `attrs` as further attributes.
fn stun(user: &str, attrs: &[u8], txid: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x0006u16.to_be_bytes());
    body.extend_from_slice(&(user.len() as u16).to_be_bytes());
    body.extend_from_slice(user.as_bytes());
    body.resize(body.len().next_multiple_of(4), 0);
    body.extend_from_slice(attrs);
    let mut m = Vec::with_capacity(20 + body.len());
    m.extend_from_slice(&0x0001u16.to_be_bytes());
    m.extend_from_slice(&(body.len() as u16).to_be_bytes());
    m.extend_from_slice(&0x2112_a442u32.to_be_bytes());
    m.extend_from_slice(&[txid; 12]);
    m.extend_from_slice(&body);
    m
}

/// Runs the script; panics on a panic inside the room or when the room refuses a valid
/// participant afterwards.
pub fn room(data: &[u8]) {
    let t0 = Instant::now();
    let mut now = t0;
    let server: SocketAddr = SERVER.parse().expect("address");
    let client: SocketAddr = CLIENT.parse().expect("address");
    let config = RoomConfig {
        candidates: vec![server],
        ..RoomConfig::default()
    };
    let mut room = Room::new(config, 1, now);
    let both = Permissions {
        publish: true,
        subscribe: true,
        health_data: true,
    };
    let (mut peer, offer, client_ufrag, pending) = client_offer(now);
    let answer = room
        .add_peer(now, ParticipantId::from("a"), both, &offer)
        .expect("a str0m offer is accepted");
    let server_ufrag = ice_ufrag(&answer).expect("the answer has an ICE ufrag");
    let user = format!("{server_ufrag}:{client_ufrag}");
    // The first byte chooses: ICE and DTLS done first (datagrams from the participant's
    // address then reach str0m's DTLS and SRTP), or not (only STUN gets in).
    if data.first().is_some_and(|b| b & 1 == 1) {
        let answer = SdpAnswer::from_sdp_string(&answer).expect("the room's answer parses");
        peer.sdp_api()
            .accept_answer(pending, answer)
            .expect("the client takes the answer");
        let connected = handshake(&mut room, &mut peer, &mut now, Duration::from_secs(3));
        assert!(
            connected,
            "ICE and DTLS with a str0m client in virtual time"
        );
    }

    let mut sdp_adds = 0;
    let mut rest = data.get(1..).unwrap_or_default();
    while let [mode, dt, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        now += Duration::from_millis(u64::from(*dt) * 4);
        match mode % 4 {
            0 | 1 => {
                let datagram = if mode % 4 == 0 {
                    bytes.to_vec()
                } else {
                    stun(&user, bytes, *dt)
                };
                let Ok(contents) = DatagramRecv::try_from(&datagram[..]) else {
                    continue;
                };
                let input = Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source: client,
                        destination: server,
                        contents,
                    },
                );
                if room.accepts(&input) {
                    let _ = room.handle_datagram(input);
                }
            }
            2 => {
                room.handle_timeout(now);
                drain(&mut room);
            }
            _ if sdp_adds < MAX_SDP_ADDS => {
                sdp_adds += 1;
                if let Ok(text) = std::str::from_utf8(bytes) {
                    let id = ParticipantId::from(format!("s{sdp_adds}").as_str());
                    let _ = room.add_peer(now, id, both, text);
                }
            }
            _ => {}
        }
    }
    room.handle_timeout(now);
    drain(&mut room);
    let (_, offer, _, _) = client_offer(now);
    assert!(
        room.add_peer(now, ParticipantId::from("after"), both, &offer)
            .is_ok(),
        "the room refuses a valid participant after the script"
    );
}

fn drain(room: &mut Room) {
    for _ in 0..1000 {
        if matches!(room.poll_output(), RoomOutput::Timeout(_)) {
            break;
        }
    }
}
