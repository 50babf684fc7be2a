//! The room engine in virtual time with str0m client peers: no sockets, no clock, fully
//! deterministic. A publisher sends Opus RTP through the room to a subscriber; the subscriber must
//! see one SSRC with contiguous sequence numbers and the same payloads; then the publisher goes
//! silent (no DTLS close, no STUN) and the room must report it lost within the ICE consent timeout.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kham_proto::ParticipantId;
use kham_sfu::str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use kham_sfu::str0m::format::Codec;
use kham_sfu::str0m::media::{Direction, MediaKind, Mid};
use kham_sfu::str0m::net::{DatagramRecv, Protocol, Receive, Transmit};
use kham_sfu::str0m::rtp::{RtpWrite, SeqNo};
use kham_sfu::str0m::{Candidate, Event, Input, Output, Rtc};
use kham_sfu::{Permissions, Room, RoomConfig, RoomEvent, RoomOutput};

const SERVER: &str = "127.0.0.1:7882";
const BOTH: Permissions = Permissions {
    publish: true,
    subscribe: true,
};

struct Client {
    id: ParticipantId,
    addr: SocketAddr,
    rtc: Rtc,
    next: Instant,
    /// Deliver this client's datagrams (false: its network is gone).
    online: bool,
    received: Vec<(u32, u16, u32, Vec<u8>)>,
    connected: bool,
}

impl Client {
    fn new(id: &str, addr: &str, now: Instant) -> Client {
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(now);
        let addr: SocketAddr = addr.parse().unwrap();
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Client {
            id: id.into(),
            addr,
            rtc,
            next: now,
            online: true,
            received: Vec::new(),
            connected: false,
        }
    }

    /// The client's offer to the room, with one media line.
    fn offer(&mut self, kind: MediaKind, dir: Direction) -> (String, SdpPendingOffer, Mid) {
        let mut change = self.rtc.sdp_api();
        let mid = change.add_media(kind, dir, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        (offer.to_sdp_string(), pending, mid)
    }
}

struct World {
    now: Instant,
    room: Room,
    clients: Vec<Client>,
    events: Vec<RoomEvent>,
    lost_at: Option<Instant>,
}

impl World {
    fn new() -> World {
        let now = Instant::now();
        let config = RoomConfig {
            candidates: vec![SERVER.parse().unwrap()],
            ..RoomConfig::default()
        };
        World {
            now,
            room: Room::new(config, 7, now),
            clients: Vec::new(),
            events: Vec::new(),
            lost_at: None,
        }
    }

    fn join(&mut self, mut c: Client, kind: MediaKind, dir: Direction) -> Mid {
        let (offer, pending, mid) = c.offer(kind, dir);
        let answer = self
            .room
            .add_peer(self.now, c.id.clone(), BOTH, &offer)
            .unwrap();
        c.rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
        self.clients.push(c);
        mid
    }

    fn deliver_to_room(&mut self, t: Transmit) {
        let contents = DatagramRecv::try_from(&t.contents[..]).unwrap();
        let r = Receive {
            proto: Protocol::Udp,
            source: t.source,
            destination: t.destination,
            contents,
        };
        // A datagram the room refuses is dropped, as the shell does.
        let _ = self.room.handle_receive(self.now, r);
    }

    /// Runs everyone until nothing is due before `until`, then sets the clock to `until`.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.drain();
            let room_next = self.room_next();
            let next = self
                .clients
                .iter()
                .map(|c| c.next)
                .chain([room_next])
                .min()
                .unwrap();
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            self.room.handle_timeout(self.now);
            for c in &mut self.clients {
                if c.next <= self.now {
                    c.rtc.handle_input(Input::Timeout(self.now)).unwrap();
                }
            }
        }
    }

    fn room_next(&mut self) -> Instant {
        loop {
            match self.room.poll_output() {
                RoomOutput::Timeout(t) => return t,
                other => self.room_output(other),
            }
        }
    }

    fn room_output(&mut self, out: RoomOutput) {
        match out {
            RoomOutput::Transmit(t) => {
                if let Some(c) = self
                    .clients
                    .iter_mut()
                    .find(|c| c.addr == t.destination && c.online)
                {
                    let contents = DatagramRecv::try_from(&t.contents[..]).unwrap();
                    let r = Receive {
                        proto: Protocol::Udp,
                        source: t.source,
                        destination: t.destination,
                        contents,
                    };
                    c.rtc.handle_input(Input::Receive(self.now, r)).unwrap();
                }
            }
            RoomOutput::Event(RoomEvent::Offer { peer, sdp, tracks }) => {
                let c = self.clients.iter_mut().find(|c| c.id == peer).unwrap();
                let answer = c
                    .rtc
                    .sdp_api()
                    .accept_offer(SdpOffer::from_sdp_string(&sdp).unwrap())
                    .unwrap();
                self.room
                    .accept_answer(&peer, &answer.to_sdp_string())
                    .unwrap();
                self.events.push(RoomEvent::Offer {
                    peer,
                    sdp: String::new(),
                    tracks,
                });
            }
            RoomOutput::Event(e) => {
                if matches!(e, RoomEvent::Lost { .. }) {
                    self.lost_at.get_or_insert(self.now);
                }
                self.events.push(e)
            }
            RoomOutput::Timeout(_) => {}
        }
    }

    /// Moves every pending datagram and event until all sides only wait.
    fn drain(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.clients.len() {
                loop {
                    match self.clients[i].rtc.poll_output().unwrap() {
                        Output::Timeout(t) => {
                            self.clients[i].next = t;
                            break;
                        }
                        Output::Transmit(t) => {
                            moved = true;
                            if self.clients[i].online {
                                self.deliver_to_room(t);
                            }
                        }
                        Output::Event(Event::Connected) => self.clients[i].connected = true,
                        Output::Event(Event::RtpPacket(p)) => {
                            let c = &mut self.clients[i];
                            c.received.push((
                                *p.header.ssrc,
                                p.header.sequence_number,
                                p.header.timestamp,
                                p.payload.to_vec(),
                            ));
                        }
                        Output::Event(_) => {}
                    }
                }
            }
            loop {
                match self.room.poll_output() {
                    RoomOutput::Timeout(_) => break,
                    other => {
                        moved = true;
                        self.room_output(other);
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }
}

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

    // The publisher's network vanishes: no DTLS close, no more STUN consent checks.
    w.clients[0].online = false;
    let gone_at = w.now;
    w.run_until(gone_at + Duration::from_secs(30));
    let lost = w
        .events
        .iter()
        .any(|e| matches!(e, RoomEvent::Lost { peer } if peer.as_str() == "pub"));
    assert!(lost, "publisher reported lost within 30 s: {:?}", w.events);
    let after = w.lost_at.unwrap() - gone_at;
    println!("silent peer reported lost after {after:?} of virtual time");
    assert!(
        after >= Duration::from_secs(5),
        "not before consent checks could have been missed: {after:?}"
    );
    assert_eq!(w.room.len(), 1, "only the subscriber remains");
    // The subscriber was offered the stop of the publisher's m-line.
    let stopped = w.events.iter().any(|e| matches!(e, RoomEvent::Offer { peer, tracks, .. } if peer.as_str() == "sub" && tracks.iter().all(|t| !t.active)));
    assert!(stopped, "{:?}", w.events);
}
