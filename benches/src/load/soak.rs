//! The soak (issue 15, item 5): consults replaced one at a time while media flows, for as long
//! as asked (an hour for the report), watching the server's memory, its per-room and
//! per-participant state and its forwarded rate for drift.
//!
//! Every `--churn` seconds the oldest consult leaves (both participants say goodbye and close
//! their media) and a new one joins under a new room name, so the server creates and tears
//! down a room, two participants, their tracks and media sessions every few seconds while the
//! number of live consults stays at `--size`.

use std::collections::VecDeque;

use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use crate::load::engine::{Cmd, EngineHandle};
use crate::load::server::{ServerCounters, Target};
use crate::load::signal;

/// A consult of the soak: its room and its two participants' client indexes.
struct Consult {
    seats: [usize; 2],
    leave: watch::Sender<bool>,
}

/// The consults that come and go.
pub struct Churn {
    tag: String,
    live: VecDeque<Consult>,
    next_room: usize,
    next_idx: usize,
    joins: Vec<oneshot::Receiver<Result<(), String>>>,
    pub replaced: u64,
    pub join_failures: Vec<String>,
    pub joins_ok: u64,
}

impl Churn {
    /// The consults already joined: seats `2r` and `2r + 1` of room `r`, with their leave
    /// channels.
    pub fn new(tag: &str, rooms: usize, leaves: Vec<watch::Sender<bool>>) -> Churn {
        let mut live = VecDeque::new();
        let mut leaves = leaves.into_iter();
        for r in 0..rooms {
            // One channel per consult: both seats of room r were given leave channel r.
            if let Some(leave) = leaves.next() {
                live.push_back(Consult {
                    seats: [2 * r, 2 * r + 1],
                    leave,
                });
            }
        }
        Churn {
            tag: tag.to_owned(),
            live,
            next_room: rooms,
            next_idx: 2 * rooms,
            joins: Vec::new(),
            replaced: 0,
            join_failures: Vec::new(),
            joins_ok: 0,
        }
    }

    /// The oldest consult leaves, a new one joins.
    pub fn rotate(
        &mut self,
        target: &Target,
        engine: &EngineHandle,
        tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> Result<(), crate::load::server::ServerError> {
        self.collect_joins();
        if let Some(old) = self.live.pop_front() {
            let _ = old.leave.send(true);
            let engine = engine.clone();
            // The goodbye goes out on the WebSocket first; the sockets close a moment later.
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                for idx in old.seats {
                    let _ = engine.send(Cmd::Remove { idx });
                }
            }));
        }
        let room = format!("{}-c{}", self.tag, self.next_room);
        self.next_room += 1;
        let (leave, leave_rx) = watch::channel(false);
        let mut seats = [0; 2];
        for (k, (who, role)) in [
            ("doctor", kham_proto::Role::Doctor),
            ("station", kham_proto::Role::Station),
        ]
        .into_iter()
        .enumerate()
        {
            let idx = self.next_idx;
            self.next_idx += 1;
            seats[k] = idx;
            let token = target.token(&room, &format!("{room}-{who}"), role)?;
            let (tx, rx) = oneshot::channel();
            self.joins.push(rx);
            tasks.push(tokio::spawn(signal::participant(
                signal::Joiner {
                    idx,
                    url: target.ws_url(&room, &token),
                    publish: true,
                },
                engine.clone(),
                leave_rx.clone(),
                tx,
            )));
        }
        self.live.push_back(Consult { seats, leave });
        self.replaced += 1;
        Ok(())
    }

    /// Counts the joins that have answered.
    fn collect_joins(&mut self) {
        self.joins.retain_mut(|rx| match rx.try_recv() {
            Ok(Ok(())) => {
                self.joins_ok += 1;
                false
            }
            Ok(Err(e)) => {
                self.join_failures.push(e);
                false
            }
            Err(oneshot::error::TryRecvError::Closed) => {
                self.join_failures.push("signaling task ended".into());
                false
            }
            Err(oneshot::error::TryRecvError::Empty) => true,
        });
    }

    /// Every consult still live says goodbye (the end of the run).
    pub fn leave_all(&mut self) {
        self.collect_joins();
        for c in &self.live {
            let _ = c.leave.send(true);
        }
    }
}

/// One second of the soak.
#[derive(Debug, Clone, Copy, Default)]
pub struct SoakSample {
    pub t: f64,
    pub rss_mb: f64,
    pub forwarded_pps: f64,
    pub rooms: u64,
    pub participants: u64,
    pub tracks: u64,
    pub media_sessions: u64,
}

impl SoakSample {
    pub fn new(t: f64, rss_mb: Option<f64>, forwarded_pps: f64, c: Option<ServerCounters>) -> Self {
        let c = c.unwrap_or_default();
        SoakSample {
            t,
            rss_mb: rss_mb.unwrap_or(0.0),
            forwarded_pps,
            rooms: c.rooms,
            participants: c.participants,
            tracks: c.tracks,
            media_sessions: c.media_sessions,
        }
    }
}

/// RSS may grow this much from the end of the warm-up to the end of the run.
pub const RSS_FLAT: f64 = 0.05;
/// The forwarded rate at the end at least this share of the rate after the warm-up.
pub const RATE_KEPT: f64 = 0.95;

/// The soak's verdict: the first and the last window after `warmup_s` compared (windows of
/// 5 minutes, or a sixth of the run when shorter).
pub fn summary(samples: &[SoakSample], warmup_s: f64) -> Value {
    let after: Vec<&SoakSample> = samples.iter().filter(|s| s.t >= warmup_s).collect();
    let n = (after.len() / 6).clamp(1, 300);
    if after.len() < 2 * n {
        return json!({ "valid": false, "reason": "too short for a first and a last window" });
    }
    let (first, last) = (&after[..n], &after[after.len() - n..]);
    let mean = |w: &[&SoakSample], f: &dyn Fn(&SoakSample) -> f64| {
        w.iter().map(|s| f(s)).sum::<f64>() / w.len() as f64
    };
    let max = |w: &[&SoakSample], f: fn(&SoakSample) -> u64| w.iter().map(|s| f(s)).max();
    let rss0 = mean(first, &|s| s.rss_mb);
    let rss1 = mean(last, &|s| s.rss_mb);
    let pps0 = mean(first, &|s| s.forwarded_pps);
    let pps1 = mean(last, &|s| s.forwarded_pps);
    let growth = if rss0 > 0.0 {
        rss1 / rss0 - 1.0
    } else {
        f64::NAN
    };
    type Gauge = (&'static str, fn(&SoakSample) -> u64);
    let gauges: [Gauge; 4] = [
        ("rooms", |s| s.rooms),
        ("participants", |s| s.participants),
        ("tracks", |s| s.tracks),
        ("media_sessions", |s| s.media_sessions),
    ];
    // Means, not maxima: a replacement overlaps the old consult and the new one for a moment.
    // A map that grows shows as a growing mean; one consult's worth of difference is allowed.
    let mut state = serde_json::Map::new();
    let mut state_flat = true;
    for (name, f) in gauges {
        let (a, b) = (mean(first, &|s| f(s) as f64), mean(last, &|s| f(s) as f64));
        let per_consult = mean(first, &|s| f(s) as f64) / mean(first, &|s| s.rooms.max(1) as f64);
        state_flat &= b <= a * (1.0 + RSS_FLAT) + per_consult.max(1.0);
        state.insert(
            name.into(),
            json!({ "first_window_mean": a, "last_window_mean": b, "last_window_max": max(last, f) }),
        );
    }
    let rss_flat = growth <= RSS_FLAT;
    let rate_kept = pps1 >= RATE_KEPT * pps0;
    json!({
        "window_s": n,
        "rss_mb_first_window": rss0,
        "rss_mb_last_window": rss1,
        "rss_mb_max": after.iter().map(|s| s.rss_mb).fold(0.0, f64::max),
        "rss_growth_pct": growth * 100.0,
        "rss_flat": rss_flat,
        "forwarded_pps_first_window": pps0,
        "forwarded_pps_last_window": pps1,
        "rate_kept": rate_kept,
        "state": state,
        "state_flat": state_flat,
        "met": rss_flat && rate_kept && state_flat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        rss: impl Fn(f64) -> f64,
        pps: impl Fn(f64) -> f64,
        rooms: impl Fn(f64) -> u64,
    ) -> Value {
        let v: Vec<SoakSample> = (0..600)
            .map(|i| {
                let t = f64::from(i);
                SoakSample {
                    t,
                    rss_mb: rss(t),
                    forwarded_pps: pps(t),
                    rooms: rooms(t),
                    participants: 40,
                    tracks: 80,
                    media_sessions: 40,
                }
            })
            .collect();
        summary(&v, 60.0)
    }

    #[test]
    fn a_flat_run_meets_and_each_kind_of_drift_fails() {
        assert_eq!(run(|_| 100.0, |_| 5000.0, |_| 20)["met"], true);
        // 10 % more memory at the end.
        let v = run(|t| 100.0 + t / 60.0, |_| 5000.0, |_| 20);
        assert_eq!(
            (v["rss_flat"].clone(), v["met"].clone()),
            (json!(false), json!(false))
        );
        // The forwarded rate sags.
        let v = run(|_| 100.0, |t| 5000.0 - 2.0 * t, |_| 20);
        assert_eq!(v["rate_kept"], false);
        // Rooms pile up.
        let v = run(|_| 100.0, |_| 5000.0, |t| 20 + (t / 50.0) as u64);
        assert_eq!(v["state_flat"], false);
    }

    #[test]
    fn too_short_is_said() {
        let v = summary(&[SoakSample::default()], 0.0);
        assert_eq!(v["valid"], false);
    }
}
