//! The specialist queue's state machine, sans IO: every operation takes the time (`now`, in
//! milliseconds on any monotonic scale) as a parameter and reads no clock, so tests drive it
//! with virtual time. It says what happened ([`Effect`]); the service ([`super::service`])
//! turns that into messages, rooms and tokens.
//!
//! A request is `Waiting`, then `Offered` to a doctor (offer policy only), then `Assigned` to
//! a doctor who took or accepted it, until that doctor confirms it reached the call
//! ([`Op::Confirm`]): only then does it leave the queue as taken. A doctor who vanishes, or does
//! not confirm within `accept_timeout`, puts it back at the head of its urgency class.

use std::collections::{BTreeMap, HashMap, VecDeque};

use kham_proto::{LeftReason, QueueErrorCode, QueuePolicy, RequestStage, Urgency};

mod views;

/// How long served wait times are kept for the dashboard's distribution.
pub const HISTORY_MS: u64 = 3600 * 1000;

/// Settings of the queue (from `[queue]`).
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub specialties: Vec<String>,
    pub policy: QueuePolicy,
    /// A station whose connection dropped keeps its place this long.
    pub station_grace_ms: u64,
    /// A request nobody took within this leaves the queue (`expired`).
    pub expire_after_ms: u64,
    /// A doctor who took a request must reach the call within this, or it goes back.
    pub accept_timeout_ms: u64,
    /// Offer policy: a doctor answers an offer within this.
    pub offer_timeout_ms: u64,
    /// Requests in the queue at most (all specialties).
    pub max_requests: usize,
    /// Characters of a note (and of a shared patient name) at most.
    pub max_note_chars: usize,
    /// The estimate per place ahead when too few requests were served to measure.
    pub default_eta_per_place_ms: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            specialties: [
                "cardiology",
                "paediatrics",
                "obstetrics",
                "infectious_disease",
                "general",
            ]
            .map(String::from)
            .to_vec(),
            policy: QueuePolicy::Take,
            station_grace_ms: 60_000,
            expire_after_ms: 30 * 60_000,
            accept_timeout_ms: 45_000,
            offer_timeout_ms: 30_000,
            max_requests: 1000,
            max_note_chars: 280,
            default_eta_per_place_ms: 5 * 60_000,
        }
    }
}

/// A typed refusal; nothing changed in the queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("unknown specialty; the queue has: {0}")]
    UnknownSpecialty(String),
    #[error("the note or patient name is longer than {0} characters")]
    TooLong(usize),
    #[error("this station already has a request in the queue")]
    AlreadyQueued,
    #[error("the queue is full; try again later")]
    QueueFull,
    #[error("no such request in the queue (cancelled, expired or already served)")]
    NotFound,
    #[error("another doctor took this request first")]
    AlreadyTaken,
    #[error("this request is outside your specialties")]
    NotYourSpecialty,
    #[error("mark yourself available first (or finish the request you took)")]
    NotAvailable,
    #[error("no request waits in your specialties")]
    Empty,
    #[error("this is not a doctor on duty here")]
    UnknownDoctor,
}

impl QueueError {
    pub fn code(&self) -> QueueErrorCode {
        match self {
            QueueError::UnknownSpecialty(_) => QueueErrorCode::UnknownSpecialty,
            QueueError::TooLong(_) => QueueErrorCode::TooLong,
            QueueError::AlreadyQueued => QueueErrorCode::AlreadyQueued,
            QueueError::QueueFull => QueueErrorCode::QueueFull,
            QueueError::NotFound => QueueErrorCode::NotFound,
            QueueError::AlreadyTaken => QueueErrorCode::AlreadyTaken,
            QueueError::NotYourSpecialty => QueueErrorCode::NotYourSpecialty,
            QueueError::NotAvailable | QueueError::UnknownDoctor => QueueErrorCode::NotAvailable,
            QueueError::Empty => QueueErrorCode::Empty,
        }
    }
}

/// A new request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    /// The station's identity (its token's subject): one open request per station.
    pub station: String,
    /// The station's display name, shown to doctors.
    pub station_name: String,
    pub specialty: String,
    pub urgency: Urgency,
    pub note: String,
    pub patient_name: Option<String>,
    /// Whether the station is connected now (false: entered by the booking system; the grace
    /// starts now).
    pub online: bool,
}

/// What changes the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Enter(NewRequest),
    /// The station (by identity) withdraws its request.
    Cancel {
        station: String,
    },
    /// A request withdrawn by id (the booking system).
    CancelId {
        id: u64,
    },
    /// The station's connection came or went.
    StationOnline {
        station: String,
        online: bool,
    },
    /// A doctor's duty connection opened, with the specialties of its token.
    DoctorOnline {
        doctor: String,
        specialties: Vec<String>,
    },
    /// A doctor's duty connection closed.
    DoctorGone {
        doctor: String,
    },
    SetAvailable {
        doctor: String,
        available: bool,
    },
    /// Take `id`, or the next request of the doctor's specialties; the room id is the caller's.
    Take {
        doctor: String,
        id: Option<u64>,
        room: String,
    },
    Accept {
        doctor: String,
        id: u64,
        room: String,
    },
    Decline {
        doctor: String,
        id: u64,
    },
    /// The doctor reached the call of `id`: it leaves the queue as taken.
    Confirm {
        doctor: String,
        id: u64,
    },
    /// Timers: expiry, station grace, unconfirmed assignments, unanswered offers.
    Tick,
}

/// Something that happened, for the service to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Entered {
        id: u64,
        specialty: String,
        urgency: Urgency,
    },
    /// A doctor took (or accepted) a request: make its room and tell both sides.
    Assigned {
        id: u64,
        station: String,
        doctor: String,
        room: String,
    },
    /// Offer policy: offer this request to this doctor.
    Offered {
        id: u64,
        doctor: String,
        expires_in_ms: u64,
    },
    /// An assignment or offer fell through; the request is back in the queue (at the head).
    Returned { id: u64, doctor: String },
    /// The request left the queue.
    Left {
        id: u64,
        station: String,
        specialty: String,
        urgency: Urgency,
        reason: LeftReason,
        /// From entering to being taken (for `Taken`), or to leaving.
        waited_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Waiting,
    Offered {
        doctor: String,
        until: u64,
    },
    Assigned {
        doctor: String,
        room: String,
        until: u64,
    },
}

#[derive(Debug, Clone)]
struct Request {
    id: u64,
    req: NewRequest,
    entered: u64,
    /// Order within its urgency: returned requests go first, then by arrival.
    returned: bool,
    seq: u64,
    stage: Stage,
    /// When the station's connection dropped (`None`: connected).
    gone_since: Option<u64>,
    declined_by: Vec<String>,
}

impl Request {
    fn key(&self) -> (std::cmp::Reverse<Urgency>, bool, u64) {
        (
            std::cmp::Reverse(self.req.urgency),
            !self.returned,
            self.seq,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Duty {
    Busy,
    /// Available since (the longest-idle doctor is offered first).
    Available(u64),
    /// Holding an offer or an assignment.
    Engaged(u64),
}

#[derive(Debug, Clone)]
struct Doctor {
    specialties: Vec<String>,
    duty: Duty,
}

/// Per-specialty figures for operators.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpecialtyStats {
    pub waiting: u32,
    pub oldest_wait_ms: u64,
    pub doctors_available: u32,
}

/// Operator figures: no names, no notes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    pub specialties: BTreeMap<String, SpecialtyStats>,
    /// Wait times (ms) of the requests served in the last hour, oldest first.
    pub served_waits_ms: Vec<u64>,
}

/// A station's view of its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationView {
    pub id: u64,
    pub specialty: String,
    pub urgency: Urgency,
    pub stage: RequestStage,
    pub position: u32,
    pub eta_ms: u64,
    /// The room when assigned (the station rejoins it after a reconnect).
    pub room: Option<String>,
}

/// The queue.
#[derive(Debug, Default)]
pub struct QueueState {
    settings: QueueSettings,
    requests: HashMap<u64, Request>,
    doctors: HashMap<String, Doctor>,
    next_id: u64,
    next_seq: u64,
    /// (when, specialty, wait ms) of served requests, for the last hour, in time order.
    served: VecDeque<(u64, String, u64)>,
    /// The latest `now` applied. Callers read their clock before they take the store's lock,
    /// so two operations can arrive out of order by a millisecond or so; the state's own clock
    /// never goes back (the served history stays in order, durations never negative).
    clock: u64,
}

impl QueueState {
    pub fn new(settings: QueueSettings) -> Self {
        QueueState {
            settings,
            next_id: 1,
            ..Default::default()
        }
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// Applies one operation at `now`. An error changes nothing.
    pub fn apply(&mut self, op: Op, now: u64) -> Result<Vec<Effect>, QueueError> {
        let now = now.max(self.clock);
        self.clock = now;
        let mut fx = Vec::new();
        match op {
            Op::Enter(r) => self.enter(r, now, &mut fx)?,
            Op::Cancel { station } => {
                let id = self.by_station(&station).ok_or(QueueError::NotFound)?;
                self.leave(id, LeftReason::Cancelled, now, &mut fx);
            }
            Op::CancelId { id } => {
                if !self.requests.contains_key(&id) {
                    return Err(QueueError::NotFound);
                }
                self.leave(id, LeftReason::Cancelled, now, &mut fx);
            }
            Op::StationOnline { station, online } => {
                if let Some(id) = self.by_station(&station)
                    && let Some(r) = self.requests.get_mut(&id)
                {
                    r.gone_since = if online { None } else { Some(now) };
                }
            }
            Op::DoctorOnline {
                doctor,
                specialties,
            } => {
                // A doctor whose earlier connection still held something keeps it.
                let d = self.doctors.entry(doctor).or_insert(Doctor {
                    specialties: Vec::new(),
                    duty: Duty::Busy,
                });
                d.specialties = specialties;
            }
            Op::DoctorGone { doctor } => {
                self.release_doctor(&doctor, now, &mut fx);
                self.doctors.remove(&doctor);
            }
            Op::SetAvailable { doctor, available } => {
                let d = self
                    .doctors
                    .get_mut(&doctor)
                    .ok_or(QueueError::UnknownDoctor)?;
                match (&d.duty, available) {
                    (Duty::Engaged(_), _) => {
                        // Busy while engaged: let go of what it holds.
                        if !available {
                            self.release_doctor(&doctor, now, &mut fx);
                            if let Some(d) = self.doctors.get_mut(&doctor) {
                                d.duty = Duty::Busy;
                            }
                        }
                    }
                    (Duty::Available(_), true) => {}
                    (_, true) => d.duty = Duty::Available(now),
                    (_, false) => d.duty = Duty::Busy,
                }
            }
            Op::Take { doctor, id, room } => self.take(&doctor, id, room, now, &mut fx)?,
            Op::Accept { doctor, id, room } => {
                let r = self.requests.get_mut(&id).ok_or(QueueError::NotFound)?;
                match &r.stage {
                    Stage::Offered { doctor: d, .. } if *d == doctor => {}
                    Stage::Offered { .. } | Stage::Assigned { .. } => {
                        return Err(QueueError::AlreadyTaken);
                    }
                    Stage::Waiting => return Err(QueueError::NotFound),
                }
                r.stage = Stage::Assigned {
                    doctor: doctor.clone(),
                    room: room.clone(),
                    until: now + self.settings.accept_timeout_ms,
                };
                fx.push(Effect::Assigned {
                    id,
                    station: r.req.station.clone(),
                    doctor,
                    room,
                });
            }
            Op::Decline { doctor, id } => {
                let r = self.requests.get_mut(&id).ok_or(QueueError::NotFound)?;
                if !matches!(&r.stage, Stage::Offered { doctor: d, .. } if *d == doctor) {
                    return Err(QueueError::NotFound);
                }
                r.declined_by.push(doctor.clone());
                r.returned = true;
                self.back_to_queue(id, &mut fx);
                // Still on duty, but last in the idle order.
                if let Some(d) = self.doctors.get_mut(&doctor) {
                    d.duty = Duty::Available(now);
                }
            }
            Op::Confirm { doctor, id } => {
                let r = self.requests.get(&id).ok_or(QueueError::NotFound)?;
                if !matches!(&r.stage, Stage::Assigned { doctor: d, .. } if *d == doctor) {
                    return Err(QueueError::NotFound);
                }
                self.leave(id, LeftReason::Taken, now, &mut fx);
                // In the call: busy until the doctor marks itself available again.
                if let Some(d) = self.doctors.get_mut(&doctor) {
                    d.duty = Duty::Busy;
                }
            }
            Op::Tick => self.tick(now, &mut fx),
        }
        if self.settings.policy == QueuePolicy::Offer {
            self.dispatch(now, &mut fx);
        }
        Ok(fx)
    }

    fn enter(&mut self, r: NewRequest, now: u64, fx: &mut Vec<Effect>) -> Result<(), QueueError> {
        if !self.settings.specialties.contains(&r.specialty) {
            return Err(QueueError::UnknownSpecialty(
                self.settings.specialties.join(", "),
            ));
        }
        let max = self.settings.max_note_chars;
        if r.note.chars().count() > max
            || r.patient_name
                .as_ref()
                .is_some_and(|p| p.chars().count() > max)
        {
            return Err(QueueError::TooLong(max));
        }
        if self.by_station(&r.station).is_some() {
            return Err(QueueError::AlreadyQueued);
        }
        if self.requests.len() >= self.settings.max_requests {
            return Err(QueueError::QueueFull);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.next_seq += 1;
        fx.push(Effect::Entered {
            id,
            specialty: r.specialty.clone(),
            urgency: r.urgency,
        });
        let gone_since = (!r.online).then_some(now);
        self.requests.insert(
            id,
            Request {
                id,
                req: r,
                entered: now,
                returned: false,
                seq: self.next_seq,
                stage: Stage::Waiting,
                gone_since,
                declined_by: Vec::new(),
            },
        );
        Ok(())
    }

    fn take(
        &mut self,
        doctor: &str,
        id: Option<u64>,
        room: String,
        now: u64,
        fx: &mut Vec<Effect>,
    ) -> Result<(), QueueError> {
        let d = self.doctors.get(doctor).ok_or(QueueError::UnknownDoctor)?;
        let id = match id {
            Some(id) => {
                let r = self.requests.get(&id).ok_or(QueueError::NotFound)?;
                if !d.specialties.contains(&r.req.specialty) {
                    return Err(QueueError::NotYourSpecialty);
                }
                match &r.stage {
                    Stage::Waiting => {}
                    // Offered to someone else: taking it directly is still fair game only for
                    // the one it was offered to (who should `accept`).
                    Stage::Offered { doctor: o, .. } if o == doctor => {}
                    _ => return Err(QueueError::AlreadyTaken),
                }
                id
            }
            None => self
                .ordered(|r| d.specialties.contains(&r.req.specialty) && r.stage == Stage::Waiting)
                .first()
                .map(|r| r.id)
                .ok_or(QueueError::Empty)?,
        };
        if !matches!(d.duty, Duty::Available(_))
            && !matches!(self.requests.get(&id).map(|r| &r.stage), Some(Stage::Offered { doctor: o, .. }) if o == doctor)
        {
            return Err(QueueError::NotAvailable);
        }
        let accept_timeout = self.settings.accept_timeout_ms;
        let r = self.requests.get_mut(&id).ok_or(QueueError::NotFound)?;
        r.stage = Stage::Assigned {
            doctor: doctor.to_owned(),
            room: room.clone(),
            until: now + accept_timeout,
        };
        let station = r.req.station.clone();
        if let Some(d) = self.doctors.get_mut(doctor) {
            d.duty = Duty::Engaged(now);
        }
        fx.push(Effect::Assigned {
            id,
            station,
            doctor: doctor.to_owned(),
            room,
        });
        Ok(())
    }

    /// The doctor gives up whatever it holds: its requests go back to the head.
    fn release_doctor(&mut self, doctor: &str, now: u64, fx: &mut Vec<Effect>) {
        let held: Vec<u64> = self
            .requests
            .values()
            .filter(|r| match &r.stage {
                Stage::Offered { doctor: d, .. } | Stage::Assigned { doctor: d, .. } => d == doctor,
                Stage::Waiting => false,
            })
            .map(|r| r.id)
            .collect();
        for id in held {
            if let Some(r) = self.requests.get_mut(&id) {
                r.returned = true;
            }
            self.back_to_queue(id, fx);
            fx.push(Effect::Returned {
                id,
                doctor: doctor.to_owned(),
            });
        }
        if let Some(d) = self.doctors.get_mut(doctor)
            && matches!(d.duty, Duty::Engaged(_))
        {
            d.duty = Duty::Available(now);
        }
    }

    fn back_to_queue(&mut self, id: u64, _fx: &mut [Effect]) {
        if let Some(r) = self.requests.get_mut(&id) {
            r.stage = Stage::Waiting;
        }
    }

    fn leave(&mut self, id: u64, reason: LeftReason, now: u64, fx: &mut Vec<Effect>) {
        let Some(r) = self.requests.remove(&id) else {
            return;
        };
        // A doctor holding it is free again (unless it is the one who took it into a call).
        if reason != LeftReason::Taken
            && let Stage::Offered { doctor, .. } | Stage::Assigned { doctor, .. } = &r.stage
            && let Some(d) = self.doctors.get_mut(doctor)
        {
            d.duty = Duty::Available(now);
        }
        let waited_ms = now.saturating_sub(r.entered);
        if reason == LeftReason::Taken {
            self.served
                .push_back((now, r.req.specialty.clone(), waited_ms));
        }
        fx.push(Effect::Left {
            id,
            station: r.req.station,
            specialty: r.req.specialty,
            urgency: r.req.urgency,
            reason,
            waited_ms,
        });
    }

    fn tick(&mut self, now: u64, fx: &mut Vec<Effect>) {
        let s = &self.settings;
        let mut expired = Vec::new();
        let mut abandoned = Vec::new();
        let mut lapsed = Vec::new();
        for r in self.requests.values() {
            match &r.stage {
                Stage::Waiting => {
                    if now.saturating_sub(r.entered) >= s.expire_after_ms {
                        expired.push(r.id);
                    } else if r
                        .gone_since
                        .is_some_and(|g| now.saturating_sub(g) >= s.station_grace_ms)
                    {
                        abandoned.push(r.id);
                    }
                }
                Stage::Offered { doctor, until } | Stage::Assigned { doctor, until, .. } => {
                    if now >= *until {
                        lapsed.push((
                            r.id,
                            doctor.clone(),
                            matches!(r.stage, Stage::Offered { .. }),
                        ));
                    }
                }
            }
        }
        for id in expired {
            self.leave(id, LeftReason::Expired, now, fx);
        }
        for id in abandoned {
            self.leave(id, LeftReason::Abandoned, now, fx);
        }
        for (id, doctor, offered) in lapsed {
            if let Some(r) = self.requests.get_mut(&id) {
                r.returned = true;
                if offered {
                    r.declined_by.push(doctor.clone());
                }
            }
            self.back_to_queue(id, fx);
            // A doctor who lets an offer or an assignment lapse is away: busy.
            if let Some(d) = self.doctors.get_mut(&doctor) {
                d.duty = Duty::Busy;
            }
            fx.push(Effect::Returned { id, doctor });
        }
        while self
            .served
            .front()
            .is_some_and(|(t, _, _)| now.saturating_sub(*t) > HISTORY_MS)
        {
            self.served.pop_front();
        }
    }

    /// Offer policy: each waiting request, in order, to the longest-idle available doctor of
    /// its specialty who has not declined it.
    fn dispatch(&mut self, now: u64, fx: &mut Vec<Effect>) {
        let waiting: Vec<u64> = self
            .ordered(|r| r.stage == Stage::Waiting)
            .iter()
            .map(|r| r.id)
            .collect();
        for id in waiting {
            let Some(r) = self.requests.get(&id) else {
                continue;
            };
            let best = self
                .doctors
                .iter()
                .filter_map(|(name, d)| match d.duty {
                    Duty::Available(since)
                        if d.specialties.contains(&r.req.specialty)
                            && !r.declined_by.contains(name) =>
                    {
                        Some((since, name.clone()))
                    }
                    _ => None,
                })
                .min();
            let Some((_, doctor)) = best else { continue };
            let until = now + self.settings.offer_timeout_ms;
            if let Some(r) = self.requests.get_mut(&id) {
                r.stage = Stage::Offered {
                    doctor: doctor.clone(),
                    until,
                };
            }
            if let Some(d) = self.doctors.get_mut(&doctor) {
                d.duty = Duty::Engaged(now);
            }
            fx.push(Effect::Offered {
                id,
                doctor,
                expires_in_ms: self.settings.offer_timeout_ms,
            });
        }
    }

    fn by_station(&self, station: &str) -> Option<u64> {
        self.requests
            .values()
            .find(|r| r.req.station == station)
            .map(|r| r.id)
    }

    /// Requests passing `keep`, urgent first, returned ones first, then oldest.
    fn ordered(&self, keep: impl Fn(&Request) -> bool) -> Vec<&Request> {
        let mut v: Vec<&Request> = self.requests.values().filter(|r| keep(r)).collect();
        v.sort_by_key(|r| r.key());
        v
    }
}
