//! What the media shards publish for operators, once per second: each shard owns plain integer
//! counters on its thread and copies them, with every room's per-participant figures, into its
//! board. Readers (the monitor, `/healthz`) lock a board only to clone an `Arc`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kham_proto::ParticipantId;
use kham_sfu::{MediaTotals, PeerMediaStats};

/// Counters of one shard since it started. Only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardCounters {
    pub udp_in: u64,
    pub udp_out: u64,
    pub udp_bytes_in: u64,
    pub udp_bytes_out: u64,
    /// Datagrams no room accepted, or that could not be parsed.
    pub udp_dropped: u64,
    /// Datagrams larger than the receive buffer, dropped whole as they were cut short.
    pub udp_oversized: u64,
    /// Datagrams the socket refused to send (buffer full).
    pub send_dropped: u64,
    pub rooms_panicked: u64,
    /// ICE restarts requested by clients and put into a server offer.
    pub ice_restarts: u64,
    /// ICE-TCP: packets in and out, connections accepted, closed as junk or silent, open now.
    pub tcp_in: u64,
    pub tcp_out: u64,
    pub tcp_accepted: u64,
    pub tcp_closed_bad: u64,
    pub tcp_connections: u64,
    /// RTP, NACK, PLI and RTX totals of every participant this shard has carried.
    pub media: MediaTotals,
    pub layer_switches: u64,
    pub keyframe_requests: u64,
    /// Allocator decisions by `kham_bwe::Reason::index`.
    pub allocation_switches: [u64; kham_sfu::kham_bwe::Reason::ALL.len()],
    /// Not a counter: connected participants now, by media path ([`PATHS`]).
    pub sessions_by_path: [u64; 3],
}

/// The media paths of [`ShardCounters::sessions_by_path`], as the metric labels them.
pub const PATHS: [&str; 3] = ["udp", "tcp", "relayed"];

impl ShardCounters {
    pub fn add(&mut self, o: &ShardCounters) {
        self.udp_in += o.udp_in;
        self.udp_out += o.udp_out;
        self.udp_bytes_in += o.udp_bytes_in;
        self.udp_bytes_out += o.udp_bytes_out;
        self.udp_dropped += o.udp_dropped;
        self.udp_oversized += o.udp_oversized;
        self.send_dropped += o.send_dropped;
        self.rooms_panicked += o.rooms_panicked;
        self.ice_restarts += o.ice_restarts;
        self.tcp_in += o.tcp_in;
        self.tcp_out += o.tcp_out;
        self.tcp_accepted += o.tcp_accepted;
        self.tcp_closed_bad += o.tcp_closed_bad;
        self.tcp_connections += o.tcp_connections;
        self.media.add(&o.media);
        self.layer_switches += o.layer_switches;
        self.keyframe_requests += o.keyframe_requests;
        for (a, b) in self
            .allocation_switches
            .iter_mut()
            .zip(o.allocation_switches)
        {
            *a += b;
        }
        for (a, b) in self.sessions_by_path.iter_mut().zip(o.sessions_by_path) {
            *a += b;
        }
    }
}

/// One room's media as of the last publication.
#[derive(Debug, Clone, Default)]
pub struct RoomMedia {
    pub peers: Vec<PeerMediaStats>,
}

/// What one shard published last.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    pub counters: ShardCounters,
    pub rooms: HashMap<String, RoomMedia>,
}

/// Where a shard publishes.
pub type Board = Arc<Mutex<Arc<ShardSnapshot>>>;

/// All shards' boards.
#[derive(Clone, Default)]
pub struct MediaBoards {
    boards: Vec<Board>,
}

impl MediaBoards {
    pub fn new(boards: Vec<Board>) -> Self {
        MediaBoards { boards }
    }

    fn snapshots(&self) -> Vec<Arc<ShardSnapshot>> {
        self.boards
            .iter()
            .map(|b| b.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Sum of every shard's counters.
    pub fn counters(&self) -> ShardCounters {
        let mut total = ShardCounters::default();
        for s in self.snapshots() {
            total.add(&s.counters);
        }
        total
    }

    /// Every room's media figures, and the node's counters.
    pub fn read(&self) -> (HashMap<String, RoomMedia>, ShardCounters) {
        let mut rooms = HashMap::new();
        let mut total = ShardCounters::default();
        for s in self.snapshots() {
            total.add(&s.counters);
            for (id, r) in &s.rooms {
                rooms.insert(id.clone(), r.clone());
            }
        }
        (rooms, total)
    }
}

/// Folds the cumulative totals rooms report into a shard's counters, so they keep growing
/// when rooms and participants go away. The shard keeps one per thread.
#[derive(Debug, Default)]
pub struct Accumulator {
    peers: HashMap<(String, ParticipantId), MediaTotals>,
    rooms: HashMap<String, kham_sfu::RoomStats>,
}

impl Accumulator {
    /// Adds the growth since the last call of everything in `rooms` to `c`. Whatever a
    /// participant did between the last publication and its departure is not counted (at most
    /// one second).
    pub fn fold<'a>(
        &mut self,
        c: &mut ShardCounters,
        rooms: impl Iterator<Item = (&'a str, &'a RoomMedia, kham_sfu::RoomStats)>,
    ) {
        let mut peers = HashMap::with_capacity(self.peers.len());
        let mut seen_rooms = HashMap::with_capacity(self.rooms.len());
        for (room, media, st) in rooms {
            for p in &media.peers {
                let key = (room.to_owned(), p.id.clone());
                let before = self.peers.get(&key).copied().unwrap_or_default();
                c.media.add(&p.totals.since(&before));
                peers.insert(key, p.totals);
            }
            let before = self.rooms.get(room).copied().unwrap_or_default();
            c.layer_switches += st.layer_switches.saturating_sub(before.layer_switches);
            c.keyframe_requests += st
                .keyframe_requests
                .saturating_sub(before.keyframe_requests);
            for (i, n) in c.allocation_switches.iter_mut().enumerate() {
                *n += st.allocation_switches[i].saturating_sub(before.allocation_switches[i]);
            }
            seen_rooms.insert(room.to_owned(), st);
        }
        self.peers = peers;
        self.rooms = seen_rooms;
    }
}
