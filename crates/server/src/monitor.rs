//! The operators' view of this node, rebuilt once per second: every room with its people
//! (signaling) and their media figures (shards), quality verdicts, node load and a few minutes
//! of history per participant for the dashboard's sparklines.
//!
//! The view is published through a `watch` channel: the SSE stream, `/api/admin/node` and
//! `/metrics` read the latest one; nothing here runs per packet.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use kham_proto::{ParticipantId, Role, Status};
use kham_sfu::quality::{Quality, QualityInput, score};
use kham_sfu::{PeerMediaStats, STATS_INTERVAL};
use kham_signal::{RoomDetail, Rooms};
use serde::Serialize;
use tokio::sync::watch;

use crate::cpu::CpuSampler;
use crate::media_stats::{MediaBoards, RoomMedia, ShardCounters};
use crate::metrics::Metrics;

/// How much history each participant keeps (one sample per second).
pub const HISTORY: usize = 300;

/// Node load.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeLoad {
    /// CPU of this process in percent of one core (up to `cores` x 100); null until measured.
    pub cpu_percent: Option<f64>,
    pub cores: usize,
    pub rooms: usize,
    /// In calls (not counting the lobby).
    pub participants: usize,
    pub lobby: usize,
    /// Tracks published (audio + video).
    pub tracks: usize,
    /// UDP datagrams per second and kbit/s at the media sockets.
    pub pps_in: f64,
    pub pps_out: f64,
    pub kbps_in: f64,
    pub kbps_out: f64,
    /// Datagrams read and dropped since start: unroutable, unparsable or oversized input.
    pub udp_dropped: u64,
    pub udp_send_dropped: u64,
    /// Datagrams the kernel dropped at the media sockets because their receive buffer was full
    /// (the shards never saw them); null where the kernel does not tell (not Linux).
    pub udp_kernel_drops: Option<u64>,
    pub uptime_s: u64,
    pub draining: bool,
}

/// One row of the rooms table (no names).
#[derive(Debug, Clone, Serialize)]
pub struct RoomRow {
    pub room: String,
    pub age_s: u64,
    /// In the call, by role.
    pub participants: BTreeMap<&'static str, usize>,
    pub lobby: usize,
    pub kbps_in: f64,
    pub kbps_out: f64,
    /// The worst participant's quality; null until something was measured.
    pub quality: Option<&'static str>,
}

/// The layer of one publisher's video a participant receives.
#[derive(Debug, Clone, Serialize)]
pub struct LayerView {
    pub publisher: ParticipantId,
    pub layer: Option<u8>,
}

/// One participant, for admins (display name included).
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantView {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    pub status: Status,
    pub joined_s: u64,
    pub client: String,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// ICE + DTLS up now.
    pub connected: bool,
    pub quality: Option<&'static str>,
    pub rtt_ms: Option<f64>,
    /// Loss of what it sends us / of what we send it, in percent.
    pub loss_in_percent: Option<f64>,
    pub loss_out_percent: Option<f64>,
    /// Send-side bandwidth estimate towards it; null until bandwidth estimation is enabled.
    pub estimate_kbps: Option<f64>,
    pub layers: Vec<LayerView>,
    pub audio_only: bool,
    pub pps_in: f64,
    pub pps_out: f64,
    pub kbps_in: f64,
    pub kbps_out: f64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub nacks_received: u64,
    pub plis_received: u64,
    pub rtx_sent: u64,
    pub audio_tracks: u8,
    pub video_tracks: u8,
}

/// One room in detail.
#[derive(Debug, Clone, Serialize)]
pub struct RoomView {
    pub room: String,
    pub age_s: u64,
    pub lobby: usize,
    pub kbps_in: f64,
    pub kbps_out: f64,
    pub quality: Option<&'static str>,
    pub participants: Vec<ParticipantView>,
}

/// Everything operators see, as of `at_ms`.
#[derive(Debug, Clone, Default)]
pub struct OpsView {
    pub at_ms: u64,
    pub node: NodeLoad,
    pub rooms: Vec<RoomRow>,
    pub details: BTreeMap<String, RoomView>,
    pub counters: ShardCounters,
    /// The kernel's drops at the media sockets since they were opened (`NodeLoad`).
    pub kernel_drops: Option<u64>,
    /// In calls, by role, across rooms.
    pub by_role: BTreeMap<&'static str, usize>,
    pub audio_only: usize,
}

/// One history sample: Unix seconds, kbit/s in, kbit/s out, worst loss in percent.
pub type Sample = (u64, f64, f64, Option<f64>);

/// A few minutes of figures per participant.
#[derive(Debug, Default)]
pub struct History {
    series: HashMap<(String, ParticipantId), VecDeque<Sample>>,
}

impl History {
    fn record(&mut self, at_s: u64, details: &BTreeMap<String, RoomView>) {
        let mut alive = HashMap::with_capacity(self.series.len());
        for (room, r) in details {
            for p in &r.participants {
                if p.status != Status::Admitted {
                    continue;
                }
                let key = (room.clone(), p.id.clone());
                let mut s = self.series.remove(&key).unwrap_or_default();
                if s.len() >= HISTORY {
                    s.pop_front();
                }
                let loss = match (p.loss_in_percent, p.loss_out_percent) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                s.push_back((at_s, p.kbps_in, p.kbps_out, loss));
                alive.insert(key, s);
            }
        }
        self.series = alive;
    }

    /// A room's history, by participant id.
    pub fn room(&self, room: &str) -> BTreeMap<ParticipantId, Vec<Sample>> {
        self.series
            .iter()
            .filter(|((r, _), _)| r == room)
            .map(|((_, p), s)| (p.clone(), s.iter().copied().collect()))
            .collect()
    }
}

pub fn role_key(r: Role) -> &'static str {
    r.as_str()
}

fn pct(f: Option<f32>) -> Option<f64> {
    f.map(|v| (f64::from(v) * 1000.0).round() / 10.0)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Joins signaling's view of a room with the shard's media figures.
pub fn room_view(d: &RoomDetail, media: Option<&RoomMedia>) -> RoomView {
    let mut participants = Vec::with_capacity(d.members.len());
    let mut worst: Option<Quality> = None;
    for m in &d.members {
        let stats: Option<&PeerMediaStats> =
            media.and_then(|r| r.peers.iter().find(|p| p.id == m.id));
        let quality = match stats {
            // Before media first connects there is nothing to judge.
            // The verdict the room shows its participants; until it has one, the link figures.
            Some(s) if s.connected || m.media_connected => s.quality.or_else(|| {
                score(QualityInput {
                    connected: s.connected,
                    silent: s.silent,
                    loss: match (s.loss_in, s.loss_out) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    },
                    rtt: s.rtt,
                    ..Default::default()
                })
            }),
            _ => None,
        };
        if let Some(q) = quality {
            worst = Some(worst.map_or(q, |w| w.max(q)));
        }
        let t = stats.map(|s| s.totals).unwrap_or_default();
        participants.push(ParticipantView {
            id: m.id.clone(),
            name: m.name.clone(),
            role: m.role,
            status: m.status,
            joined_s: m.joined_s,
            client: m.client.clone(),
            audio_muted: m.audio_muted,
            video_muted: m.video_muted,
            connected: stats.is_some_and(|s| s.connected),
            quality: quality.map(Quality::as_str),
            rtt_ms: stats
                .and_then(|s| s.rtt)
                .map(|r| round1(r.as_secs_f64() * 1000.0)),
            loss_in_percent: pct(stats.and_then(|s| s.loss_in)),
            loss_out_percent: pct(stats.and_then(|s| s.loss_out)),
            estimate_kbps: stats
                .and_then(|s| s.estimate_bps)
                .map(|b| round1(b as f64 / 1000.0)),
            layers: stats
                .map(|s| {
                    s.layers
                        .iter()
                        .map(|l| LayerView {
                            publisher: l.publisher.clone(),
                            layer: l.layer,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            audio_only: stats.is_some_and(|s| s.audio_only),
            pps_in: round1(stats.map_or(0.0, |s| s.pps_in)),
            pps_out: round1(stats.map_or(0.0, |s| s.pps_out)),
            kbps_in: round1(stats.map_or(0.0, |s| s.kbps_in)),
            kbps_out: round1(stats.map_or(0.0, |s| s.kbps_out)),
            packets_in: t.rtp_packets_in,
            packets_out: t.rtp_packets_out,
            bytes_in: t.rtp_bytes_in,
            bytes_out: t.rtp_bytes_out,
            nacks_received: t.nacks_received,
            plis_received: t.plis_received,
            rtx_sent: t.rtx_sent,
            audio_tracks: stats.map_or(0, |s| s.audio_tracks),
            video_tracks: stats.map_or(0, |s| s.video_tracks),
        });
    }
    let sum = |f: fn(&ParticipantView) -> f64| round1(participants.iter().map(f).sum());
    RoomView {
        room: d.room.clone(),
        age_s: d.age_s,
        lobby: d
            .members
            .iter()
            .filter(|m| m.status == Status::Waiting)
            .count(),
        kbps_in: sum(|p| p.kbps_in),
        kbps_out: sum(|p| p.kbps_out),
        quality: worst.map(Quality::as_str),
        participants,
    }
}

/// The rooms-table row of a room.
pub fn room_row(v: &RoomView) -> RoomRow {
    let mut participants: BTreeMap<&'static str, usize> =
        [Role::Doctor, Role::Station, Role::Patient, Role::Observer]
            .into_iter()
            .map(|r| (role_key(r), 0))
            .collect();
    for p in &v.participants {
        if p.status == Status::Admitted {
            *participants.entry(role_key(p.role)).or_default() += 1;
        }
    }
    RoomRow {
        room: v.room.clone(),
        age_s: v.age_s,
        participants,
        lobby: v.lobby,
        kbps_in: v.kbps_in,
        kbps_out: v.kbps_out,
        quality: v.quality,
    }
}

/// What the monitor reads from and writes to.
pub struct Monitor {
    pub rooms: Rooms,
    pub boards: MediaBoards,
    pub metrics: Arc<Metrics>,
    pub history: Arc<Mutex<History>>,
    pub draining: Arc<AtomicBool>,
    pub view: watch::Sender<Arc<OpsView>>,
    /// Inodes of the media sockets, for the kernel's drop counts; empty when unknown.
    pub sockets: Vec<u64>,
}

impl Monitor {
    /// Rebuilds the view every second, forever.
    pub async fn run(self) {
        let started = Instant::now();
        let mut cpu = CpuSampler::default();
        let mut prev: Option<(Instant, ShardCounters)> = None;
        let mut tick = tokio::time::interval(STATS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let details = self.rooms.details().await;
            let (media, counters) = self.boards.read();
            let kernel_drops = crate::udp::kernel_drops(&self.sockets).await;
            let mut view = OpsView {
                at_ms: unix_ms(),
                counters,
                kernel_drops,
                ..OpsView::default()
            };
            for d in &details {
                let v = room_view(d, media.get(&d.room));
                view.rooms.push(room_row(&v));
                view.details.insert(d.room.clone(), v);
            }
            let mut node = NodeLoad {
                cpu_percent: cpu.sample(now).map(round1),
                cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
                rooms: view.rooms.len(),
                udp_dropped: counters.udp_dropped + counters.udp_oversized,
                udp_send_dropped: counters.send_dropped,
                udp_kernel_drops: kernel_drops,
                uptime_s: started.elapsed().as_secs(),
                draining: self.draining.load(Ordering::Relaxed),
                ..NodeLoad::default()
            };
            for r in &view.rooms {
                for (role, n) in &r.participants {
                    *view.by_role.entry(role).or_default() += n;
                    node.participants += n;
                }
                node.lobby += r.lobby;
            }
            for room in media.values() {
                for p in &room.peers {
                    node.tracks += usize::from(p.audio_tracks) + usize::from(p.video_tracks);
                    if p.audio_only {
                        view.audio_only += 1;
                    }
                    if let Some(bps) = p.estimate_bps {
                        self.metrics.observe_estimate(bps);
                    }
                }
            }
            if let Some((t0, c0)) = prev {
                let dt = now.saturating_duration_since(t0).as_secs_f64();
                if dt > 0.0 {
                    let rate = |a: u64, b: u64| round1(a.saturating_sub(b) as f64 / dt);
                    node.pps_in = rate(counters.udp_in, c0.udp_in);
                    node.pps_out = rate(counters.udp_out, c0.udp_out);
                    node.kbps_in =
                        round1(rate(counters.udp_bytes_in, c0.udp_bytes_in) * 8.0 / 1000.0);
                    node.kbps_out =
                        round1(rate(counters.udp_bytes_out, c0.udp_bytes_out) * 8.0 / 1000.0);
                }
            }
            prev = Some((now, counters));
            view.node = node;
            self.history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(view.at_ms / 1000, &view.details);
            self.view.send_replace(Arc::new(view));
        }
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kham_signal::MemberDetail;

    fn member(id: &str, role: Role, status: Status) -> MemberDetail {
        MemberDetail {
            id: id.into(),
            name: format!("name {id}"),
            role,
            status,
            joined_s: 3,
            client: "native".into(),
            audio_muted: false,
            video_muted: false,
            media_connected: status == Status::Admitted,
        }
    }

    fn stats(id: &str, loss: Option<f32>) -> PeerMediaStats {
        PeerMediaStats {
            id: id.into(),
            connected: true,
            path: None,
            totals: Default::default(),
            pps_in: 100.0,
            pps_out: 90.0,
            kbps_in: 800.0,
            kbps_out: 700.0,
            rtt: None,
            loss_in: loss,
            loss_out: None,
            estimate_bps: None,
            silent: false,
            audio_tracks: 1,
            video_tracks: 1,
            layers: vec![],
            audio_only: false,
            quality: None,
        }
    }

    #[test]
    fn room_view_joins_people_and_media_and_takes_the_worst_quality() {
        let d = RoomDetail {
            room: "r".into(),
            age_s: 10,
            members: vec![
                member("a", Role::Doctor, Status::Admitted),
                member("b", Role::Station, Status::Admitted),
                member("c", Role::Patient, Status::Waiting),
            ],
        };
        let media = RoomMedia {
            peers: vec![stats("a", Some(0.0)), stats("b", Some(0.08))],
        };
        let v = room_view(&d, Some(&media));
        assert_eq!(v.participants.len(), 3);
        assert_eq!(v.participants[0].quality, Some("excellent"));
        assert_eq!(v.participants[1].quality, Some("poor"));
        assert_eq!(v.participants[1].loss_in_percent, Some(8.0));
        assert_eq!(v.participants[2].quality, None, "lobby: nothing to judge");
        assert_eq!(v.quality, Some("poor"));
        assert_eq!(v.lobby, 1);
        assert_eq!(v.kbps_in, 1600.0);
        assert_eq!(v.participants[0].estimate_kbps, None);
        let row = room_row(&v);
        assert_eq!(row.participants["doctor"], 1);
        assert_eq!(row.participants["patient"], 0);
        assert_eq!(row.participants["observer"], 0);

        let mut h = History::default();
        let mut details = BTreeMap::new();
        details.insert("r".to_owned(), v);
        for t in 0..(HISTORY as u64 + 5) {
            h.record(t, &details);
        }
        let room = h.room("r");
        assert_eq!(room.len(), 2, "lobby entries have no history");
        assert_eq!(room[&ParticipantId::from("a")].len(), HISTORY);
        h.record(1000, &BTreeMap::new());
        assert!(h.room("r").is_empty(), "gone participants are forgotten");
    }
}
