//! A virtual-time world for room-engine tests: str0m client peers and a [`Room`] exchanging
//! datagrams in memory, with no sockets and no clock. Shared by the test files of this crate.
#![allow(dead_code)] // each test file uses a part of it
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::Instant;

use kham_proto::ParticipantId;
use kham_sfu::str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use kham_sfu::str0m::channel::{ChannelConfig, ChannelId, Reliability};
use kham_sfu::str0m::media::{Direction, MediaKind, MediaTime, Mid};
use kham_sfu::str0m::net::{DatagramRecv, Protocol, Receive, Transmit};
use kham_sfu::str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use kham_sfu::{Permissions, Room, RoomConfig, RoomEvent, RoomOutput};

pub const SERVER: &str = "127.0.0.1:7882";
pub const BOTH: Permissions = Permissions {
    publish: true,
    subscribe: true,
    health_data: true,
};

pub struct Client {
    pub id: ParticipantId,
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub next: Instant,
    /// Deliver this client's datagrams (false: its network is gone).
    pub online: bool,
    pub received: Vec<(u32, u16, u32, Vec<u8>)>,
    pub connected: bool,
    /// Behind a NAT: the address the room sees (and sends to) instead of `addr`. Changing it
    /// is a NAT rebinding: what the room still sends to the old one is lost.
    pub nat: Option<SocketAddr>,
    /// Data channels open at this client, with their labels, and the data received on them.
    pub channels: Vec<(ChannelId, String)>,
    pub channel_data: Vec<(String, Vec<u8>)>,
    /// The playout delay (min, max) the last received packet carried, if any.
    pub play_delay: Option<(MediaTime, MediaTime)>,
    /// Every `n`th datagram from the room to this client is lost (0: none).
    pub drop_every: u32,
    dropped_count: u32,
}

impl Client {
    pub fn new(id: &str, addr: &str, now: Instant) -> Client {
        Client::with_config(id, addr, now, Rtc::builder().set_rtp_mode(true))
    }

    /// A client whose str0m is configured by `config` (RTP mode is the caller's choice).
    pub fn with_config(id: &str, addr: &str, now: Instant, config: RtcConfig) -> Client {
        let mut rtc = config.build(now);
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
            nat: None,
            channels: Vec::new(),
            channel_data: Vec::new(),
            play_delay: None,
            drop_every: 0,
            dropped_count: 0,
        }
    }

    /// The client's offer to the room, with one media line.
    pub fn offer(&mut self, kind: MediaKind, dir: Direction) -> (String, SdpPendingOffer, Mid) {
        let mut change = self.rtc.sdp_api();
        let mid = change.add_media(kind, dir, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        (offer.to_sdp_string(), pending, mid)
    }

    /// The client's offer with one media line and the two vital-sign channels, as the web
    /// client opens them (waveforms unordered without retransmission, numerics reliable).
    pub fn offer_with_vitals(
        &mut self,
        kind: MediaKind,
        dir: Direction,
    ) -> (String, SdpPendingOffer, Mid) {
        self.offer_with_channels(kind, dir, false)
    }

    /// The client's offer with one media line, the vital-sign channels and, when `images`, the
    /// image channel (reliable, ordered).
    pub fn offer_with_channels(
        &mut self,
        kind: MediaKind,
        dir: Direction,
        images: bool,
    ) -> (String, SdpPendingOffer, Mid) {
        let mut change = self.rtc.sdp_api();
        let mid = change.add_media(kind, dir, None, None, None);
        change.add_channel_with_config(ChannelConfig {
            label: kham_sfu::vitals::WAVE_LABEL.into(),
            ordered: false,
            reliability: Reliability::MaxRetransmits { retransmits: 0 },
            ..Default::default()
        });
        change.add_channel(kham_sfu::vitals::NUM_LABEL.into());
        if images {
            change.add_channel(kham_sfu::vitals::IMAGE_LABEL.into());
        }
        let (offer, pending) = change.apply().unwrap();
        (offer.to_sdp_string(), pending, mid)
    }

    /// Writes binary `data` on its open channel `label`; false when not open or not taken.
    pub fn send(&mut self, label: &str, binary: bool, data: &[u8]) -> bool {
        let Some(id) = self
            .channels
            .iter()
            .find(|(_, l)| l == label)
            .map(|(id, _)| *id)
        else {
            return false;
        };
        let Some(mut ch) = self.rtc.channel(id) else {
            return false;
        };
        ch.write(binary, data).unwrap_or(false)
    }
}

pub struct World {
    pub now: Instant,
    pub room: Room,
    pub clients: Vec<Client>,
    pub events: Vec<RoomEvent>,
    pub lost_at: Option<Instant>,
    /// Keep server offers here instead of answering them (to answer by hand).
    pub hold_offers: bool,
    pub held_offers: Vec<(ParticipantId, String)>,
}

impl World {
    pub fn new() -> World {
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
            hold_offers: false,
            held_offers: Vec::new(),
        }
    }

    pub fn join(&mut self, c: Client, kind: MediaKind, dir: Direction) -> Mid {
        self.join_as(c, BOTH, kind, dir)
    }

    pub fn join_as(
        &mut self,
        c: Client,
        perms: Permissions,
        kind: MediaKind,
        dir: Direction,
    ) -> Mid {
        self.join_offering(c, perms, kind, dir, None)
    }

    /// Joins with the vital-sign channels too.
    pub fn join_with_vitals(&mut self, c: Client, perms: Permissions) -> Mid {
        self.join_offering(c, perms, MediaKind::Audio, Direction::SendRecv, Some(false))
    }

    /// Joins with the vital-sign and image channels.
    pub fn join_with_images(&mut self, c: Client, perms: Permissions) -> Mid {
        self.join_offering(c, perms, MediaKind::Audio, Direction::SendRecv, Some(true))
    }

    fn join_offering(
        &mut self,
        mut c: Client,
        perms: Permissions,
        kind: MediaKind,
        dir: Direction,
        channels: Option<bool>,
    ) -> Mid {
        let (offer, pending, mid) = match channels {
            Some(images) => c.offer_with_channels(kind, dir, images),
            None => c.offer(kind, dir),
        };
        let answer = self
            .room
            .add_peer(self.now, c.id.clone(), perms, &offer)
            .unwrap();
        c.rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
            .unwrap();
        self.clients.push(c);
        mid
    }

    fn deliver_to_room(&mut self, t: Transmit, nat: Option<SocketAddr>) {
        let contents = DatagramRecv::try_from(&t.contents[..]).unwrap();
        let r = Receive {
            proto: Protocol::Udp,
            source: nat.unwrap_or(t.source),
            destination: t.destination,
            contents,
        };
        // A datagram the room refuses is dropped, as the shell does.
        let _ = self.room.handle_receive(self.now, r);
    }

    /// Runs everyone until nothing is due before `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Instant) {
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
                    .find(|c| c.nat.unwrap_or(c.addr) == t.destination && c.online)
                {
                    if c.drop_every > 0 {
                        c.dropped_count += 1;
                        if c.dropped_count % c.drop_every == 0 {
                            return;
                        }
                    }
                    let contents = DatagramRecv::try_from(&t.contents[..]).unwrap();
                    let r = Receive {
                        proto: Protocol::Udp,
                        source: t.source,
                        destination: c.addr,
                        contents,
                    };
                    c.rtc.handle_input(Input::Receive(self.now, r)).unwrap();
                }
            }
            RoomOutput::Event(RoomEvent::Offer { peer, sdp, tracks }) if self.hold_offers => {
                self.held_offers.push((peer.clone(), sdp));
                self.events.push(RoomEvent::Offer {
                    peer,
                    sdp: String::new(),
                    tracks,
                });
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
    pub fn drain(&mut self) {
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
                                let nat = self.clients[i].nat;
                                self.deliver_to_room(t, nat);
                            }
                        }
                        Output::Event(Event::Connected) => self.clients[i].connected = true,
                        Output::Event(Event::ChannelOpen(id, label)) => {
                            self.clients[i].channels.push((id, label));
                        }
                        Output::Event(Event::ChannelData(d)) => {
                            let c = &mut self.clients[i];
                            let label = c
                                .channels
                                .iter()
                                .find(|(id, _)| *id == d.id)
                                .map(|(_, l)| l.clone())
                                .unwrap_or_default();
                            c.channel_data.push((label, d.data));
                        }
                        Output::Event(Event::RtpPacket(p)) => {
                            let c = &mut self.clients[i];
                            let e = &p.header.ext_vals;
                            if let (Some(min), Some(max)) = (e.play_delay_min, e.play_delay_max) {
                                c.play_delay = Some((min, max));
                            }
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
