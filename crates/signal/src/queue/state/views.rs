//! What the queue looks like to each side, read from [`QueueState`] without changing it: a
//! station's place and estimated wait, a doctor's board, the operators' figures.

use std::collections::{BTreeMap, HashMap};

use kham_proto::{QueueEntry, RequestStage};

use super::{Duty, HISTORY_MS, QueueState, QueueStats, SpecialtyStats, Stage, StationView};

impl QueueState {
    /// The station's request, its place among the waiting requests of its specialty (1 is
    /// next) and a rough estimate of the wait.
    pub fn station_view(&self, station: &str, now: u64) -> Option<StationView> {
        let id = self.by_station(station)?;
        let r = self.requests.get(&id)?;
        let (stage, room) = match &r.stage {
            Stage::Waiting => (RequestStage::Waiting, None),
            Stage::Offered { .. } => (RequestStage::Offered, None),
            Stage::Assigned { room, .. } => (RequestStage::Connecting, Some(room.clone())),
        };
        let position = if stage == RequestStage::Waiting {
            let ahead = self
                .requests
                .values()
                .filter(|o| {
                    o.req.specialty == r.req.specialty
                        && o.stage == Stage::Waiting
                        && o.key() < r.key()
                })
                .count();
            ahead as u32 + 1
        } else {
            0
        };
        Some(StationView {
            id,
            specialty: r.req.specialty.clone(),
            urgency: r.req.urgency,
            stage,
            position,
            eta_ms: u64::from(position) * self.per_place_ms(&r.req.specialty, now),
            room,
        })
    }

    /// Every station's view at once, in one pass (what a refresh sends to all stations): the
    /// places come from one sort per specialty instead of a scan of the queue per station.
    pub fn station_views(&self, now: u64) -> HashMap<String, StationView> {
        let mut place: HashMap<u64, u32> = HashMap::new();
        let mut per_specialty: HashMap<&str, u32> = HashMap::new();
        for r in self.ordered(|r| r.stage == Stage::Waiting) {
            let n = per_specialty.entry(r.req.specialty.as_str()).or_default();
            *n += 1;
            place.insert(r.id, *n);
        }
        let mut per_place: HashMap<&str, u64> = HashMap::new();
        self.requests
            .values()
            .map(|r| {
                let (stage, room) = match &r.stage {
                    Stage::Waiting => (RequestStage::Waiting, None),
                    Stage::Offered { .. } => (RequestStage::Offered, None),
                    Stage::Assigned { room, .. } => (RequestStage::Connecting, Some(room.clone())),
                };
                let position = place.get(&r.id).copied().unwrap_or(0);
                let unit = *per_place
                    .entry(r.req.specialty.as_str())
                    .or_insert_with(|| self.per_place_ms(&r.req.specialty, now));
                let view = StationView {
                    id: r.id,
                    specialty: r.req.specialty.clone(),
                    urgency: r.req.urgency,
                    stage,
                    position,
                    eta_ms: u64::from(position) * unit,
                    room,
                };
                (r.req.station.clone(), view)
            })
            .collect()
    }

    /// Time per place ahead: the mean gap between the specialty's last served requests over the
    /// last hour, divided among its available doctors; the configured default when fewer than
    /// two were served.
    fn per_place_ms(&self, specialty: &str, now: u64) -> u64 {
        let times: Vec<u64> = self
            .served
            .iter()
            .filter(|(t, s, _)| s == specialty && now.saturating_sub(*t) <= HISTORY_MS)
            .map(|(t, _, _)| *t)
            .collect();
        match (times.first(), times.last()) {
            (Some(first), Some(last)) if times.len() >= 2 => {
                (last.saturating_sub(*first) / (times.len() as u64 - 1)).max(1000)
            }
            _ => self.settings.default_eta_per_place_ms,
        }
    }

    /// The live queue of these specialties, in serving order.
    pub fn board(&self, specialties: &[String], now: u64) -> Vec<QueueEntry> {
        self.ordered(|r| specialties.contains(&r.req.specialty))
            .into_iter()
            .map(|r| QueueEntry {
                request_id: r.id,
                specialty: r.req.specialty.clone(),
                urgency: r.req.urgency,
                stage: match r.stage {
                    Stage::Waiting => RequestStage::Waiting,
                    Stage::Offered { .. } => RequestStage::Offered,
                    Stage::Assigned { .. } => RequestStage::Connecting,
                },
                waited_ms: now.saturating_sub(r.entered),
                station: r.req.station_name.clone(),
                note: r.req.note.clone(),
                patient_name: r.req.patient_name.clone(),
            })
            .collect()
    }

    /// The entry of one request (for an offer).
    pub fn entry(&self, id: u64, now: u64) -> Option<QueueEntry> {
        let r = self.requests.get(&id)?;
        self.board(std::slice::from_ref(&r.req.specialty), now)
            .into_iter()
            .find(|e| e.request_id == id)
    }

    /// Whether the doctor is on duty and available.
    pub fn is_available(&self, doctor: &str) -> bool {
        self.doctors
            .get(doctor)
            .is_some_and(|d| matches!(d.duty, Duty::Available(_)))
    }

    /// Operator figures at `now`.
    pub fn stats(&self, now: u64) -> QueueStats {
        let mut specialties: BTreeMap<String, SpecialtyStats> = self
            .settings
            .specialties
            .iter()
            .map(|s| (s.clone(), SpecialtyStats::default()))
            .collect();
        for r in self.requests.values() {
            if let Some(s) = specialties.get_mut(&r.req.specialty) {
                s.waiting += 1;
                s.oldest_wait_ms = s.oldest_wait_ms.max(now.saturating_sub(r.entered));
            }
        }
        for d in self.doctors.values() {
            if matches!(d.duty, Duty::Available(_)) {
                for sp in &d.specialties {
                    if let Some(s) = specialties.get_mut(sp) {
                        s.doctors_available += 1;
                    }
                }
            }
        }
        QueueStats {
            specialties,
            served_waits_ms: self
                .served
                .iter()
                .filter(|(t, _, _)| now.saturating_sub(*t) <= HISTORY_MS)
                .map(|(_, _, w)| *w)
                .collect(),
        }
    }

    /// Requests in the queue (all stages).
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}
