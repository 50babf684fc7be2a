//! Media shards: each is a thread that owns one UDP socket, the clock, and the rooms hashed to
//! it. Everything of a room happens on its shard with `&mut Room`: no lock on the packet path.
//! Signaling reaches a shard through a bounded command channel ([`MediaHandle`] implements the
//! signaling crate's `Media` trait); room events go back through each room's event channel.
//! Counters are plain integers of the shard; once per second the shard publishes them, with each
//! room's per-participant figures, to its board (`media_stats.rs`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kham_proto::ParticipantId;
use kham_sfu::str0m::Input;
use kham_sfu::str0m::net::{DatagramRecv, Protocol, Receive};
use kham_sfu::{Permissions, Room, RoomConfig, RoomEvent, RoomOutput, SfuError};
use kham_signal::{Media, MediaError, MediaEvent, MediaPerms};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::media_stats::{
    Accumulator, Board, MediaBoards, RoomMedia, ShardCounters, ShardSnapshot,
};
use crate::recv_batch::{self, RecvBatch};
use crate::send_batch::SendBatch;

/// How often a shard publishes its figures.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

enum ShardCmd {
    OpenRoom {
        room: String,
        events: mpsc::Sender<MediaEvent>,
    },
    Offer {
        room: String,
        peer: ParticipantId,
        perms: MediaPerms,
        sdp: String,
        screen: Option<Vec<String>>,
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    Answer {
        room: String,
        peer: ParticipantId,
        sdp: String,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Remove {
        room: String,
        peer: ParticipantId,
    },
    IceRestart {
        room: String,
        peer: ParticipantId,
    },
    AudioOnly {
        room: String,
        peer: ParticipantId,
        enabled: bool,
    },
    VideoView {
        room: String,
        peer: ParticipantId,
        views: Vec<kham_proto::VideoView>,
    },
    CloseRoom {
        room: String,
    },
}

/// Signaling's handle to the shards.
pub struct MediaHandle {
    shards: Vec<mpsc::Sender<ShardCmd>>,
}

impl MediaHandle {
    fn shard(&self, room: &str) -> &mpsc::Sender<ShardCmd> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        room.hash(&mut h);
        &self.shards[(h.finish() % self.shards.len() as u64) as usize]
    }

    fn send(&self, room: &str, cmd: ShardCmd) {
        if self.shard(room).try_send(cmd).is_err() {
            tracing::warn!("media shard queue full or stopped; command dropped");
        }
    }
}

impl Media for MediaHandle {
    fn open_room(&self, room: &str, events: mpsc::Sender<MediaEvent>) {
        self.send(
            room,
            ShardCmd::OpenRoom {
                room: room.into(),
                events,
            },
        );
    }

    fn offer(
        &self,
        room: &str,
        peer: ParticipantId,
        perms: MediaPerms,
        sdp: String,
        screen: Option<Vec<String>>,
    ) -> oneshot::Receiver<Result<String, MediaError>> {
        let (reply, rx) = oneshot::channel();
        self.send(
            room,
            ShardCmd::Offer {
                room: room.into(),
                peer,
                perms,
                sdp,
                screen,
                reply,
            },
        );
        rx
    }

    fn answer(
        &self,
        room: &str,
        peer: ParticipantId,
        sdp: String,
    ) -> oneshot::Receiver<Result<(), MediaError>> {
        let (reply, rx) = oneshot::channel();
        self.send(
            room,
            ShardCmd::Answer {
                room: room.into(),
                peer,
                sdp,
                reply,
            },
        );
        rx
    }

    fn remove(&self, room: &str, peer: ParticipantId) {
        self.send(
            room,
            ShardCmd::Remove {
                room: room.into(),
                peer,
            },
        );
    }

    fn ice_restart(&self, room: &str, peer: ParticipantId) {
        self.send(
            room,
            ShardCmd::IceRestart {
                room: room.into(),
                peer,
            },
        );
    }

    fn audio_only(&self, room: &str, peer: ParticipantId, enabled: bool) {
        self.send(
            room,
            ShardCmd::AudioOnly {
                room: room.into(),
                peer,
                enabled,
            },
        );
    }

    fn video_view(&self, room: &str, peer: ParticipantId, views: Vec<kham_proto::VideoView>) {
        self.send(
            room,
            ShardCmd::VideoView {
                room: room.into(),
                peer,
                views,
            },
        );
    }

    fn close_room(&self, room: &str) {
        self.send(room, ShardCmd::CloseRoom { room: room.into() });
    }
}

/// Where shards bind and what they announce.
pub struct ShardSetup {
    pub sockets: Vec<std::net::UdpSocket>,
    /// Per shard: the addresses announced as ICE candidates.
    pub announce: Vec<Vec<SocketAddr>>,
    /// Per shard: its ICE-TCP listener and the addresses announced as its passive TCP
    /// candidates (`None`: no ICE-TCP).
    pub tcp: Vec<Option<(std::net::TcpListener, Vec<SocketAddr>)>>,
    pub max_participants: usize,
    /// How subscribers' layers are chosen (`media.adaptation`).
    pub adaptation: kham_sfu::Adaptation,
    /// How long a participant whose media stopped is kept (`rooms.reconnect_grace`).
    pub reconnect_grace: Duration,
    /// Addresses of the TURN servers' relays (`turn.rs`): a participant whose media goes to one
    /// of them is counted as relayed.
    pub relay_ips: Vec<std::net::IpAddr>,
}

/// Starts the shard threads; their figures are read through the returned boards.
pub fn start(setup: ShardSetup) -> anyhow::Result<(MediaHandle, MediaBoards)> {
    let mut shards = Vec::new();
    let mut boards = Vec::new();
    let mut tcp_setups = setup.tcp.into_iter();
    for (i, (socket, announce)) in setup.sockets.into_iter().zip(setup.announce).enumerate() {
        let tcp_setup = tcp_setups.next().flatten();
        let (tx, rx) = mpsc::channel(1024);
        let board: Board = Arc::new(Mutex::new(Arc::new(ShardSnapshot::default())));
        boards.push(board.clone());
        // Every room of the shard starts from these settings (its candidates are the shard's).
        let template = RoomConfig {
            max_peers: setup.max_participants,
            adaptation: setup.adaptation.clone(),
            reconnect_grace: setup.reconnect_grace,
            ..RoomConfig::default()
        };
        socket.set_nonblocking(true)?;
        let relay_ips = setup.relay_ips.clone();
        std::thread::Builder::new()
            .name(format!("kham-shard-{i}"))
            .spawn(move || {
                // Everything this thread logs names its shard (entered once, not per packet).
                let _shard = crate::logging::shard_span(i).entered();
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "shard runtime failed to start");
                        return;
                    }
                };
                rt.block_on(async move {
                    let tcp = tcp_setup.and_then(|(listener, tcp_announce)| {
                        let local = tcp_announce.first().copied()?;
                        match TcpListener::from_std(listener) {
                            Ok(l) => Some((crate::ice_tcp::IceTcp::new(l, local), tcp_announce)),
                            Err(e) => {
                                tracing::error!(error = %e, "ICE-TCP listener failed; UDP only");
                                None
                            }
                        }
                    });
                    match UdpSocket::from_std(socket) {
                        Ok(s) => {
                            Shard::new(s, announce, tcp, template, board, relay_ips)
                                .run(rx)
                                .await
                        }
                        Err(e) => tracing::error!(error = %e, "shard socket failed"),
                    }
                });
            })?;
        shards.push(tx);
    }
    Ok((MediaHandle { shards }, MediaBoards::new(boards)))
}

struct RoomEntry {
    room: Room,
    events: mpsc::Sender<MediaEvent>,
    next_timeout: Instant,
}

struct Shard {
    socket: UdpSocket,
    /// Datagrams the rooms produced in this wake-up, sent together at its end.
    out: SendBatch,
    /// Destination given to str0m for every datagram: the first announced address.
    local: SocketAddr,
    announce: Vec<SocketAddr>,
    /// ICE over TCP (`ice_tcp.rs`), and the passive TCP candidates rooms announce.
    tcp: Option<crate::ice_tcp::IceTcp>,
    tcp_announce: Vec<SocketAddr>,
    /// Settings of every new room (`new_room` adds the candidates).
    template: RoomConfig,
    /// Rooms by name. Shared names (`Arc<str>`): the address cache, the TCP connections and the
    /// timer pass hold them by reference count, without an allocation each.
    rooms: HashMap<Arc<str>, RoomEntry>,
    /// The timer pass's list of due rooms, kept between passes (its capacity is reused).
    due: Vec<Arc<str>>,
    /// Remote address -> room, learned on the first datagram a room accepted.
    /// Shared names (`Arc<str>`): the fast path clones one per datagram, a reference count
    /// rather than a heap allocation.
    by_addr: HashMap<SocketAddr, Arc<str>>,
    /// When `by_addr` was last cleared for being full: for a while after that, datagrams other
    /// than STUN from unknown addresses still ask every room (a peer's known address may have
    /// been forgotten); otherwise they are dropped at once (see `datagram`).
    addr_cache_cleared: Option<Instant>,
    counters: ShardCounters,
    accumulator: Accumulator,
    board: Board,
    seed: u64,
    /// TURN relay addresses ([`ShardSetup::relay_ips`]).
    relay_ips: Vec<std::net::IpAddr>,
}

/// Bound on the address cache; cleared when exceeded (rebuilt from the slow path).
const MAX_ADDR_CACHE: usize = 65_536;
/// After the address cache was cleared, how long non-STUN datagrams from unknown addresses may
/// still take the slow path: longer than the consent checks (RFC 7675, about every 5 s) that
/// re-teach a live peer's address.
const RELEARN: Duration = Duration::from_secs(30);
/// Datagrams read per wake-up before the shard looks at commands and timers again: one
/// `select!` (and one scan of every room's next timeout) per batch, not per datagram, so the
/// socket's queue empties faster under load and a flood costs less per datagram.
const RECV_BATCH: usize = 64;

impl Shard {
    fn new(
        socket: UdpSocket,
        announce: Vec<SocketAddr>,
        tcp: Option<(crate::ice_tcp::IceTcp, Vec<SocketAddr>)>,
        template: RoomConfig,
        board: Board,
        relay_ips: Vec<std::net::IpAddr>,
    ) -> Self {
        let (tcp, tcp_announce) = match tcp {
            Some((t, a)) => (Some(t), a),
            None => (None, Vec::new()),
        };
        let bound = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        // str0m's ICE agent drops a STUN request whose destination is not one of its local
        // candidates, which are the announced addresses. Behind a 1:1 NAT or the link
        // emulator's relay (`media.announce`) datagrams still arrive on the bound socket, so they
        // are handed in as addressed to the (first) announced address. Without an announce
        // list the first announced address is the bound one.
        let local = announce.first().copied().unwrap_or(bound);
        Shard {
            socket,
            out: SendBatch::new(),
            local,
            announce,
            tcp,
            tcp_announce,
            template,
            rooms: HashMap::new(),
            due: Vec::new(),
            by_addr: HashMap::new(),
            addr_cache_cleared: None,
            counters: ShardCounters::default(),
            accumulator: Accumulator::default(),
            board,
            seed: rand::random(),
            relay_ips,
        }
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<ShardCmd>) {
        let mut rx = RecvBatch::new();
        let mut scratch = vec![0u8; kham_sfu::rfc4571::MAX_FRAME];
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self
                .rooms
                .values()
                .map(|r| r.next_timeout)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                biased;
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                r = self.socket.readable() => match r {
                    Ok(()) => self.receive(&mut rx),
                    Err(e) => tracing::debug!(error = %e, "udp readiness error"),
                },
                ev = std::future::poll_fn(|cx| match self.tcp.as_mut() {
                    Some(t) => t.poll_event(cx),
                    None => std::task::Poll::Pending,
                }) => self.tcp_event(ev, &mut scratch),
                _ = tokio::time::sleep_until(next.into()) => self.timeouts(),
                _ = publish.tick() => self.publish(),
            }
            self.flush();
        }
    }

    /// Reads what the socket has queued, [`RECV_BATCH`] datagrams at most, a system call per
    /// [`recv_batch::MAX_BATCH`] (`recv_batch.rs`), and hands each to its room.
    fn receive(&mut self, rx: &mut RecvBatch) {
        let mut read = 0;
        while read < RECV_BATCH {
            let n = match rx.recv(&self.socket) {
                Ok(n) => n,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        tracing::debug!(error = %e, "udp recv error");
                    }
                    break;
                }
            };
            for d in rx.iter() {
                match d {
                    Some((data, source)) => self.datagram(data, source),
                    None => {
                        self.counters.udp_in += 1;
                        self.counters.udp_oversized += 1;
                    }
                }
            }
            read += n;
            if n < recv_batch::MAX_BATCH {
                break;
            }
        }
    }

    /// Sends the datagrams of this wake-up (`send_batch.rs`).
    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let done = self.out.flush(&self.socket);
        done.count(&mut self.counters);
    }

    fn command(&mut self, cmd: ShardCmd) {
        let now = Instant::now();
        match cmd {
            ShardCmd::OpenRoom { room, events } => {
                let entry = self.new_room(events, now);
                self.rooms.insert(room.into(), entry);
            }
            ShardCmd::Offer {
                room,
                peer,
                perms,
                sdp,
                screen,
                reply,
            } => {
                // What str0m logs while it reads the client's SDP is about this participant.
                let _call = crate::logging::peer_span(&room, &peer).entered();
                let perms = Permissions {
                    publish: perms.publish,
                    subscribe: perms.subscribe,
                    health_data: perms.health_data,
                };
                let r = self.with_room(&room, |r| {
                    r.offer(now, peer, perms, &sdp, screen.as_deref())
                });
                let _ = reply.send(r.map_err(to_media_error));
                self.drain(&room);
            }
            ShardCmd::Answer {
                room,
                peer,
                sdp,
                reply,
            } => {
                let _call = crate::logging::peer_span(&room, &peer).entered();
                let r = self.with_room(&room, |r| r.accept_answer(&peer, &sdp));
                let _ = reply.send(r.map_err(to_media_error));
                self.drain(&room);
            }
            ShardCmd::Remove { room, peer } => {
                let _call = crate::logging::peer_span(&room, &peer).entered();
                let _ = self.with_room(&room, |r| Ok(r.remove_peer(&peer)));
                self.drain(&room);
            }
            ShardCmd::IceRestart { room, peer } => {
                let _call = crate::logging::peer_span(&room, &peer).entered();
                if self
                    .with_room(&room, |r| r.request_ice_restart(&peer))
                    .is_ok()
                {
                    self.counters.ice_restarts += 1;
                }
                self.drain(&room);
            }
            // A participant without a media session yet: nothing to apply, nothing to report.
            ShardCmd::AudioOnly {
                room,
                peer,
                enabled,
            } => {
                let _call = crate::logging::peer_span(&room, &peer).entered();
                let _ = self.with_room(&room, |r| r.set_audio_only(&peer, enabled));
            }
            ShardCmd::VideoView { room, peer, views } => {
                let _call = crate::logging::peer_span(&room, &peer).entered();
                let _ = self.with_room(&room, |r| r.set_video_views(&peer, &views));
            }
            ShardCmd::CloseRoom { room } => {
                if let Some(tcp) = self.tcp.as_mut() {
                    tcp.forget_room(&room);
                }
                self.rooms.remove(room.as_str());
                self.by_addr.retain(|_, r| **r != *room);
            }
        }
    }

    /// Runs `f` on a room, isolating a panic inside str0m or the engine to that room.
    fn with_room<T>(
        &mut self,
        room: &str,
        f: impl FnOnce(&mut Room) -> Result<T, SfuError>,
    ) -> Result<T, SfuError> {
        let Some(entry) = self.rooms.get_mut(room) else {
            return Err(SfuError::Input("room is not open".into()));
        };
        match catch_unwind(AssertUnwindSafe(|| f(&mut entry.room))) {
            Ok(r) => r,
            Err(_) => {
                self.room_panicked(room);
                Err(SfuError::Input("internal error".into()))
            }
        }
    }

    fn new_room(&mut self, events: mpsc::Sender<MediaEvent>, now: Instant) -> RoomEntry {
        let config = RoomConfig {
            candidates: self.announce.clone(),
            tcp_candidates: self.tcp_announce.clone(),
            ..self.template.clone()
        };
        // Each room gets its own seed (initial sequence numbers differ between rooms).
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        RoomEntry {
            room: Room::new(config, self.seed, now),
            events,
            next_timeout: now,
        }
    }

    fn room_panicked(&mut self, room: &str) {
        tracing::error!(%room, "room engine panicked; its media sessions are dropped");
        self.counters.rooms_panicked += 1;
        if let Some(entry) = self.rooms.remove(room) {
            for peer in entry.room.peer_ids() {
                let _ = entry.events.try_send(MediaEvent::Lost { peer });
            }
            // Keep the room open (empty) so later offers work.
            let fresh = self.new_room(entry.events, Instant::now());
            self.rooms.insert(room.into(), fresh);
        }
        self.by_addr.retain(|_, r| &**r != room);
    }

    fn datagram(&mut self, data: &[u8], source: SocketAddr) {
        self.counters.udp_in += 1;
        self.counters.udp_bytes_in += data.len() as u64;
        let now = Instant::now();
        let Ok(contents) = DatagramRecv::try_from(data) else {
            self.counters.udp_dropped += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        // Fast path: the room this address was last seen in; slow path: ask every room (the
        // first STUN request of a peer names its ICE username).
        let cached = self.by_addr.get(&source).filter(|id| {
            self.rooms
                .get::<str>(id)
                .is_some_and(|e| e.room.accepts(&input))
        });
        let room_id = match cached {
            Some(id) => id.clone(),
            None => {
                // ICE-lite: a peer's address becomes usable only through a STUN binding request
                // from it, which the slow path then caches. Anything else from an address no
                // room has seen is junk (or a peer whose cache entry was just cleared), and
                // asking every room's every peer about it is what a flood would cost.
                let is_stun = data.first().is_some_and(|b| *b < 2);
                let relearning = self
                    .addr_cache_cleared
                    .is_some_and(|t| now.saturating_duration_since(t) < RELEARN);
                if !is_stun && !relearning {
                    self.counters.udp_dropped += 1;
                    return;
                }
                let Some(id) = self
                    .rooms
                    .iter()
                    .find(|(_, e)| e.room.accepts(&input))
                    .map(|(id, _)| id.clone())
                else {
                    self.counters.udp_dropped += 1;
                    return;
                };
                if self.by_addr.len() >= MAX_ADDR_CACHE {
                    self.by_addr.clear();
                    self.addr_cache_cleared = Some(now);
                }
                self.by_addr.insert(source, id.clone());
                id
            }
        };
        if let Err(e) = self.with_room(&room_id, |r| r.handle_datagram(input)) {
            self.counters.udp_dropped += 1;
            tracing::debug!(error = %e, "datagram rejected");
        }
        self.drain(&room_id);
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        let mut due = std::mem::take(&mut self.due);
        due.extend(
            self.rooms
                .iter()
                .filter(|(_, e)| e.next_timeout <= now)
                .map(|(id, _)| id.clone()),
        );
        for id in due.drain(..) {
            let _ = self.with_room(&id, |r| {
                r.handle_timeout(now);
                Ok(())
            });
            self.drain(&id);
        }
        self.due = due;
    }

    /// Sends what the room has to send and forwards its events, until it reports a timeout.
    fn drain(&mut self, room: &str) {
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        let counters = &mut self.counters;
        let tcp = &mut self.tcp;
        let (out, socket) = (&mut self.out, &self.socket);
        let out = catch_unwind(AssertUnwindSafe(|| {
            loop {
                match entry.room.poll_output() {
                    RoomOutput::Transmit(t) if t.proto == Protocol::Tcp => {
                        let sent = tcp
                            .as_mut()
                            .is_some_and(|tcp| tcp.send(t.destination, &t.contents));
                        if sent {
                            counters.tcp_out += 1;
                        } else {
                            counters.send_dropped += 1;
                        }
                    }
                    RoomOutput::Transmit(t) => {
                        if out.push(t) {
                            out.flush(socket).count(counters);
                        }
                    }
                    RoomOutput::Event(e) => {
                        let ev = match e {
                            RoomEvent::Offer { peer, sdp, tracks } => {
                                MediaEvent::Offer { peer, sdp, tracks }
                            }
                            RoomEvent::Connected { peer } => MediaEvent::Connected { peer },
                            RoomEvent::Reconnecting { peer } => MediaEvent::Reconnecting { peer },
                            RoomEvent::Reconnected { peer } => MediaEvent::Reconnected { peer },
                            RoomEvent::Lost { peer } => MediaEvent::Lost { peer },
                            RoomEvent::VideoState { peer, tracks } => {
                                MediaEvent::VideoState { peer, tracks }
                            }
                            RoomEvent::PublishLayers { peer, mid, layers } => {
                                MediaEvent::PublishLayers { peer, mid, layers }
                            }
                            RoomEvent::AudioRate {
                                peer,
                                mid,
                                max_bitrate,
                                ptime,
                            } => MediaEvent::AudioRate {
                                peer,
                                mid,
                                max_bitrate,
                                ptime,
                            },
                            RoomEvent::Quality { scores } => MediaEvent::Quality { scores },
                        };
                        if entry.events.try_send(ev).is_err() {
                            tracing::warn!("room event queue full; event dropped");
                        }
                    }
                    RoomOutput::Timeout(t) => {
                        entry.next_timeout = t;
                        break;
                    }
                }
            }
        }));
        if out.is_err() {
            self.room_panicked(room);
        }
    }
}

impl Shard {
    /// Copies the counters and every room's figures to the board (once per second).
    /// A TCP connection needs attention (`ice_tcp.rs`).
    fn tcp_event(&mut self, ev: crate::ice_tcp::TcpEvent, scratch: &mut [u8]) {
        use crate::ice_tcp::TcpEvent;
        let Some(tcp) = self.tcp.as_mut() else {
            return;
        };
        let i = match ev {
            TcpEvent::Accepted => return,
            TcpEvent::Writable(i) => {
                tcp.flush(i);
                return;
            }
            TcpEvent::Readable(i) => i,
        };
        let open = tcp.read(i);
        loop {
            let Some(tcp) = self.tcp.as_mut() else {
                return;
            };
            let c = &mut tcp.conns[i];
            let (n, peer) = match c.reader.next_frame() {
                Ok(Some(r)) => {
                    let n = r.len();
                    scratch[..n].copy_from_slice(&c.reader.bytes()[r]);
                    (n, c.peer)
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "ICE-TCP: bad frame, connection closed");
                    tcp.close(i, true);
                    return;
                }
            };
            if !self.tcp_packet(i, peer, &scratch[..n]) {
                if let Some(tcp) = self.tcp.as_mut() {
                    tcp.close(i, true);
                }
                return;
            }
        }
        if !open && let Some(tcp) = self.tcp.as_mut() {
            tcp.close(i, false);
        }
    }

    /// One packet from ICE-TCP connection `i`. False: the connection is not an ICE peer of
    /// ours (its first packet is no binding request any room accepts) and is closed.
    fn tcp_packet(&mut self, i: usize, peer: SocketAddr, data: &[u8]) -> bool {
        let Some(tcp) = self.tcp.as_mut() else {
            return false;
        };
        let (greeted, cached, local) = {
            let c = &tcp.conns[i];
            (c.greeted, c.room.clone(), tcp.local)
        };
        if !greeted && !crate::ice_tcp::is_stun_binding_request(data) {
            return false;
        }
        self.counters.tcp_in += 1;
        let now = Instant::now();
        let Ok(contents) = DatagramRecv::try_from(data) else {
            return greeted;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Tcp,
                source: peer,
                destination: local,
                contents,
            },
        );
        let room_id = cached
            .filter(|id| self.rooms.get(id).is_some_and(|e| e.room.accepts(&input)))
            .or_else(|| {
                self.rooms
                    .iter()
                    .find(|(_, e)| e.room.accepts(&input))
                    .map(|(id, _)| id.clone())
            });
        let Some(room_id) = room_id else {
            return greeted;
        };
        if let Err(e) = self.with_room(&room_id, |r| r.handle_datagram(input)) {
            tracing::debug!(error = %e, "ICE-TCP packet rejected");
            return greeted;
        }
        if let Some(c) = self.tcp.as_mut().and_then(|t| t.conns.get_mut(i)) {
            c.greeted = true;
            c.last_rx = now;
            if c.room.as_deref() != Some(&*room_id) {
                c.room = Some(room_id.clone());
            }
        }
        self.drain(&room_id);
        true
    }

    fn publish(&mut self) {
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.expire(Instant::now());
            self.counters.tcp_accepted = tcp.counters.accepted;
            self.counters.tcp_closed_bad = tcp.counters.closed_bad;
            self.counters.tcp_connections = tcp.conns.len() as u64;
        }
        let rooms: HashMap<String, (RoomMedia, kham_sfu::RoomStats)> = self
            .rooms
            .iter()
            .map(|(id, e)| {
                let st = e.room.stats();
                let media = RoomMedia {
                    peers: e.room.media_stats(),
                };
                (id.to_string(), (media, st))
            })
            .collect();
        self.accumulator.fold(
            &mut self.counters,
            rooms.iter().map(|(id, (m, st))| (id.as_str(), m, *st)),
        );
        self.counters.sessions_by_path = sessions_by_path(
            rooms.values().flat_map(|(m, _)| m.peers.iter()),
            &self.relay_ips,
        );
        let snapshot = ShardSnapshot {
            counters: self.counters,
            rooms: rooms.into_iter().map(|(id, (m, _))| (id, m)).collect(),
        };
        *self.board.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
    }
}

/// Connected participants by the path their media takes now: direct UDP, ICE-TCP, or through
/// a TURN relay (UDP or TCP to one of `relay_ips`), in [`crate::media_stats::PATHS`] order.
fn sessions_by_path<'a>(
    peers: impl Iterator<Item = &'a kham_sfu::PeerMediaStats>,
    relay_ips: &[std::net::IpAddr],
) -> [u64; 3] {
    let mut n = [0; 3];
    for p in peers {
        if let Some(path) = p.path.filter(|_| p.connected) {
            n[path_index(path, relay_ips)] += 1;
        }
    }
    n
}

/// 0 direct UDP, 1 ICE-TCP, 2 relayed (the relay's address, whichever transport reaches it).
fn path_index(path: kham_sfu::MediaPath, relay_ips: &[std::net::IpAddr]) -> usize {
    if relay_ips.contains(&path.remote.ip()) {
        2
    } else if path.tcp {
        1
    } else {
        0
    }
}

/// What signaling tells the client: the engine's fixed texts. str0m's own messages (heap
/// addresses, fragments of the client's SDP) go to the debug log only.
fn to_media_error(e: SfuError) -> MediaError {
    tracing::debug!(error = %e, "media request refused");
    let message = e.public_message();
    match e {
        SfuError::SdpParse(_) | SfuError::SdpRejected(_) | SfuError::SdpLimit(_) => {
            MediaError::BadSdp(message)
        }
        SfuError::Glare(_) => MediaError::Glare(message),
        SfuError::Screen(_) => MediaError::BadMessage(message),
        _ => MediaError::BadState(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_media_path_is_relayed_when_it_goes_to_a_relay_address() {
        let relays: Vec<std::net::IpAddr> = vec![[203, 0, 113, 7].into()];
        let path = |tcp, ip: [u8; 4]| kham_sfu::MediaPath {
            tcp,
            remote: SocketAddr::from((ip, 40_000)),
        };
        assert_eq!(path_index(path(false, [198, 51, 100, 1]), &relays), 0);
        assert_eq!(path_index(path(true, [198, 51, 100, 1]), &relays), 1);
        assert_eq!(path_index(path(false, [203, 0, 113, 7]), &relays), 2);
        assert_eq!(path_index(path(true, [203, 0, 113, 7]), &relays), 2);
        assert_eq!(path_index(path(false, [203, 0, 113, 7]), &[]), 0);
    }
}
