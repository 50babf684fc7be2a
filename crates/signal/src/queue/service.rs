//! The queue's IO side: the connected stations and doctors, the clock, rooms and tokens.
//! Every change goes through [`QueueService::apply`]: the store applies it atomically, then
//! the effects are carried out (a room and two tokens for a pairing, an offer, notices) and
//! everyone connected gets their fresh view (a station its place, a doctor its board).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kham_proto::{LeftReason, QueueErrorCode, QueueServerMsg, Role};
use tokio::sync::{mpsc, watch};

use super::state::{Effect, Op, QueueError, QueueStats};
use super::store::QueueStore;
use crate::http::unix_now;
use crate::notice::{Notice, SharedObserver};
use crate::rate::RateLimits;
use crate::registry::Rooms;
use crate::token::{Claims, TokenKeys};

/// How often timers (expiry, grace, lapsed offers) are checked.
const TICK: Duration = Duration::from_millis(500);
/// Views (places, boards) are recomputed at most this often: a burst of changes costs one
/// refresh, not one per change for every connection.
const REFRESH_EVERY: Duration = Duration::from_millis(50);
/// A doctor's board lists at most this many requests (the first in serving order).
pub const BOARD_MAX: usize = 100;

/// What the service needs besides the store.
#[derive(Clone)]
pub struct QueueServiceConfig {
    pub keys: TokenKeys,
    pub rooms: Rooms,
    pub observer: SharedObserver,
    pub draining: Arc<AtomicBool>,
    pub limits: RateLimits,
    /// Lifetime of the room tokens handed out at pairing.
    pub call_token_ttl: Duration,
}

/// A connected queue client. Messages that must arrive (`paired`, `left`, `offer`, errors)
/// go through `tx`; its view (`queued`, `board`) is only ever the latest one, coalesced in
/// `view`, so a burst of queue changes cannot fill its channel and crowd out a pairing.
#[derive(Clone)]
pub(crate) struct Conn {
    pub id: u64,
    pub tx: mpsc::Sender<QueueServerMsg>,
    pub view: Arc<watch::Sender<Option<QueueServerMsg>>>,
    pub name: String,
    /// A doctor's specialties (empty for a station).
    pub specialties: Vec<String>,
}

#[derive(Default)]
struct Conns {
    stations: HashMap<String, Conn>,
    doctors: HashMap<String, Conn>,
}

struct Inner {
    store: Arc<dyn QueueStore>,
    cfg: QueueServiceConfig,
    conns: Mutex<Conns>,
    epoch: Instant,
    /// Views are out of date.
    dirty: Arc<tokio::sync::Notify>,
}

/// The queue of this node with its connections. Cheap to clone.
#[derive(Clone)]
pub struct QueueService {
    inner: Arc<Inner>,
}

impl QueueService {
    /// Starts the service and its timer task (needs a tokio runtime).
    pub fn start(store: Arc<dyn QueueStore>, cfg: QueueServiceConfig) -> Self {
        let s = QueueService {
            inner: Arc::new(Inner {
                store,
                cfg,
                conns: Mutex::new(Conns::default()),
                epoch: Instant::now(),
                dirty: Arc::new(tokio::sync::Notify::new()),
            }),
        };
        let weak = Arc::downgrade(&s.inner);
        let dirty = s.inner.dirty.clone();
        tokio::spawn(async move {
            loop {
                // Wakes on the next change (a change during a refresh leaves a permit); checks
                // now and then whether the service is gone.
                let woke = tokio::time::timeout(Duration::from_secs(5), dirty.notified()).await;
                let Some(inner) = weak.upgrade() else { break };
                if woke.is_err() {
                    continue;
                }
                // A bug in one refresh must not leave every station and doctor without views
                // for the rest of the process (this task is their only source): it is logged
                // and the next change refreshes again, as the shard does for a room.
                let refreshed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    QueueService { inner }.refresh()
                }));
                if refreshed.is_err() {
                    tracing::error!(
                        "queue: a view refresh panicked; views refresh on the next change"
                    );
                }
                tokio::time::sleep(REFRESH_EVERY).await;
            }
        });
        let weak = Arc::downgrade(&s.inner);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let _ = QueueService { inner }.apply(Op::Tick);
            }
        });
        s
    }

    pub fn store(&self) -> &Arc<dyn QueueStore> {
        &self.inner.store
    }

    pub(crate) fn config(&self) -> &QueueServiceConfig {
        &self.inner.cfg
    }

    /// Milliseconds since the service started: the queue's clock.
    pub fn now(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// Operator figures (no names).
    pub fn stats(&self) -> QueueStats {
        self.inner.store.stats(self.now())
    }

    /// Applies `op`, carries out its effects and refreshes everyone's view.
    pub fn apply(&self, op: Op) -> Result<(), QueueError> {
        let quiet = op == Op::Tick;
        let fx = self.inner.store.apply(op, self.now())?;
        if quiet && fx.is_empty() {
            return Ok(());
        }
        for e in fx {
            self.carry_out(e);
        }
        self.inner.dirty.notify_one();
        Ok(())
    }

    fn carry_out(&self, e: Effect) {
        let observer = &self.inner.cfg.observer;
        match e {
            Effect::Entered {
                id,
                specialty,
                urgency,
            } => observer.notice(Notice::QueueEntered {
                request_id: id,
                specialty,
                urgency,
            }),
            Effect::Assigned {
                id,
                station,
                doctor,
                room,
            } => self.pair(id, &station, &doctor, &room),
            Effect::Offered {
                id,
                doctor,
                expires_in_ms,
            } => {
                let entry = self.inner.store.entry(id, self.now());
                if let (Some(entry), Some(c)) = (entry, self.doctor_conn(&doctor)) {
                    let _ = c.tx.try_send(QueueServerMsg::Offer {
                        entry,
                        expires_in_ms,
                    });
                }
            }
            Effect::Returned { id, .. } => {
                tracing::info!(
                    request = id,
                    "queue: request returned to the head of the queue"
                );
            }
            Effect::Left {
                id,
                station,
                specialty,
                urgency,
                reason,
                waited_ms,
            } => {
                if reason == LeftReason::Taken {
                    observer.notice(Notice::QueueTaken {
                        request_id: id,
                        specialty,
                        urgency,
                        waited_ms,
                    });
                    return;
                }
                observer.notice(Notice::QueueLeft {
                    request_id: id,
                    specialty,
                    urgency,
                    reason,
                    waited_ms,
                });
                if let Some(c) = self.station_conn(&station) {
                    let _ = c.tx.try_send(QueueServerMsg::Left {
                        reason,
                        message: left_message(reason).into(),
                    });
                }
            }
        }
    }

    /// A doctor took a request: its room, a token each, and both sides told. A room that
    /// cannot be made (the node's room cap) puts the request back and tells the doctor.
    fn pair(&self, id: u64, station: &str, doctor: &str, room: &str) {
        if let Err(refusal) = self.inner.cfg.rooms.create(room) {
            tracing::warn!(
                request = id,
                code = refusal.code(),
                "queue: the consult's room could not be created"
            );
            if let Some(c) = self.doctor_conn(doctor) {
                let _ = c.tx.try_send(QueueServerMsg::Error {
                    code: QueueErrorCode::Unavailable,
                    message: "the server cannot open a room now; the request is back in the queue"
                        .into(),
                });
            }
            let _ = self.inner.store.apply(
                Op::SetAvailable {
                    doctor: doctor.to_owned(),
                    available: false,
                },
                self.now(),
            );
            return;
        }
        tracing::info!(request = id, %room, "queue: request taken, room created");
        if let Some(c) = self.doctor_conn(doctor) {
            self.send_paired(&c, id, doctor, Role::Doctor, room);
        }
        if let Some(c) = self.station_conn(station) {
            self.send_paired(&c, id, station, Role::Station, room);
        }
    }

    /// Sends `paired` with a fresh room token for this identity.
    pub(crate) fn send_paired(&self, c: &Conn, id: u64, identity: &str, role: Role, room: &str) {
        let keys = &self.inner.cfg.keys;
        let now = unix_now();
        let claims = Claims {
            iss: keys.api_key().to_owned(),
            sub: identity.to_owned(),
            name: c.name.clone(),
            room: room.to_owned(),
            role,
            exp: now + self.inner.cfg.call_token_ttl.as_secs().max(60),
            nbf: now.saturating_sub(5),
            jti: format!("{:032x}", rand::random::<u128>()),
            grants: role.default_grants(),
        };
        match keys.sign(&claims) {
            Ok(token) => {
                let _ = c.tx.try_send(QueueServerMsg::Paired {
                    request_id: id,
                    room: room.to_owned(),
                    token,
                });
            }
            Err(_) => tracing::warn!("queue: signing a room token failed"),
        }
    }

    /// Everyone's view: a station its request and place, a doctor the board.
    pub(crate) fn refresh(&self) {
        let now = self.now();
        let (stations, doctors) = {
            let c = lock(&self.inner.conns);
            (
                c.stations
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>(),
                c.doctors
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        let store = &self.inner.store;
        let mut views = if stations.is_empty() {
            HashMap::new()
        } else {
            store.station_views(now)
        };
        for (station, c) in stations {
            if let Some(v) = views.remove(&station) {
                c.view.send_replace(Some(QueueServerMsg::Queued {
                    request_id: v.id,
                    specialty: v.specialty,
                    urgency: v.urgency,
                    stage: v.stage,
                    position: v.position,
                    eta_ms: v.eta_ms,
                }));
            }
        }
        if doctors.is_empty() {
            return;
        }
        let stats = store.stats(now);
        for (doctor, c) in doctors {
            let doctors_available = c
                .specialties
                .iter()
                .map(|s| {
                    let n = stats.specialties.get(s).map_or(0, |x| x.doctors_available);
                    (s.clone(), n)
                })
                .collect();
            c.view.send_replace(Some(QueueServerMsg::Board {
                available: store.is_available(&doctor),
                entries: {
                    let mut e = store.board(&c.specialties, now);
                    e.truncate(BOARD_MAX);
                    e
                },
                doctors_available,
            }));
        }
    }

    /// Registers a station's connection (replacing an older one); a request a doctor took while
    /// the station was away is sent its room again.
    pub(crate) fn station_connected(&self, station: &str, conn: Conn) {
        lock(&self.inner.conns)
            .stations
            .insert(station.to_owned(), conn.clone());
        let _ = self.apply(Op::StationOnline {
            station: station.to_owned(),
            online: true,
        });
        // Taken while it was away: the room again, with a fresh token.
        if let Some(v) = self.inner.store.station_view(station, self.now())
            && let Some(room) = v.room
        {
            self.send_paired(&conn, v.id, station, Role::Station, &room);
        }
    }

    pub(crate) fn station_disconnected(&self, station: &str, conn_id: u64) {
        let mut c = lock(&self.inner.conns);
        if c.stations.get(station).is_some_and(|x| x.id == conn_id) {
            c.stations.remove(station);
            drop(c);
            let _ = self.apply(Op::StationOnline {
                station: station.to_owned(),
                online: false,
            });
        }
    }

    pub(crate) fn doctor_connected(&self, doctor: &str, conn: Conn) {
        let specialties = conn.specialties.clone();
        lock(&self.inner.conns)
            .doctors
            .insert(doctor.to_owned(), conn);
        let _ = self.apply(Op::DoctorOnline {
            doctor: doctor.to_owned(),
            specialties,
        });
    }

    pub(crate) fn doctor_disconnected(&self, doctor: &str, conn_id: u64) {
        let mut c = lock(&self.inner.conns);
        if c.doctors.get(doctor).is_some_and(|x| x.id == conn_id) {
            c.doctors.remove(doctor);
            drop(c);
            let _ = self.apply(Op::DoctorGone {
                doctor: doctor.to_owned(),
            });
        }
    }

    fn doctor_conn(&self, doctor: &str) -> Option<Conn> {
        lock(&self.inner.conns).doctors.get(doctor).cloned()
    }

    fn station_conn(&self, station: &str) -> Option<Conn> {
        lock(&self.inner.conns).stations.get(station).cloned()
    }

    /// A new room id for a consult.
    pub(crate) fn new_room_id() -> String {
        format!("q-{:016x}", rand::random::<u64>())
    }
}

/// What a station is told when its request leaves the queue without a call.
fn left_message(reason: LeftReason) -> &'static str {
    match reason {
        LeftReason::Taken => "a doctor took your request",
        LeftReason::Cancelled => "your request was cancelled",
        LeftReason::Expired => {
            "no specialist was free in time and your request expired; please ask again, or call \
             the district hospital if it cannot wait"
        }
        LeftReason::Abandoned => {
            "your connection was away too long and your request left the queue; please ask again"
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
