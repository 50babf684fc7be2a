//! Where rooms live. In-memory for one node; the interface (`get_or_create`, `create`, `list`,
//! `end`) is what a Redis-backed directory implements when rooms span nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kham_proto::{ErrorCode, ParticipantId};
use tokio::sync::{mpsc, oneshot};

use crate::actor::{RoomActor, RoomCmd, RoomDetail, RoomSummary, RoomTimeouts};
use crate::media::Media;
use crate::notice::{NoObserver, SharedObserver};
use crate::room_state::{JoinRefusal, RoomState};

/// How long an ended consult's id stays closed to new joins (longer than any token lives).
const ENDED_TOMBSTONE: Duration = Duration::from_secs(24 * 3600);

/// A room's command channel.
#[derive(Clone)]
pub struct RoomHandle {
    pub(crate) tx: mpsc::Sender<RoomCmd>,
}

/// Room settings from configuration.
#[derive(Debug, Clone, Copy)]
pub struct RoomSettings {
    pub max_participants: usize,
    pub timeouts: RoomTimeouts,
}

/// The rooms of this node. The lock guards only the map (control plane, never per packet).
#[derive(Clone)]
pub struct Rooms {
    inner: Arc<Inner>,
}

struct Inner {
    rooms: Mutex<HashMap<String, RoomHandle>>,
    ended: Mutex<HashMap<String, Instant>>,
    media: Arc<dyn Media>,
    settings: RoomSettings,
    observer: SharedObserver,
}

/// Why an operator's removal failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveError {
    NoRoom,
    NoParticipant,
}

impl Rooms {
    pub fn new(media: Arc<dyn Media>, settings: RoomSettings) -> Self {
        Self::with_observer(media, settings, Arc::new(NoObserver))
    }

    /// Rooms whose lifecycle notices go to `observer` (webhooks, metrics).
    pub fn with_observer(
        media: Arc<dyn Media>,
        settings: RoomSettings,
        observer: SharedObserver,
    ) -> Self {
        Rooms {
            inner: Arc::new(Inner {
                rooms: Mutex::new(HashMap::new()),
                ended: Mutex::new(HashMap::new()),
                media,
                settings,
                observer,
            }),
        }
    }

    /// The room, created if needed. Refused if this consult already ended.
    pub fn get_or_create(&self, room: &str) -> Result<RoomHandle, JoinRefusal> {
        self.create(room).map(|(h, _)| h)
    }

    /// Creates a room if absent; returns whether it was created.
    pub fn create(&self, room: &str) -> Result<(RoomHandle, bool), JoinRefusal> {
        {
            let mut ended = lock(&self.inner.ended);
            ended.retain(|_, t| t.elapsed() < ENDED_TOMBSTONE);
            if ended.contains_key(room) {
                return Err(JoinRefusal::Ended);
            }
        }
        let mut rooms = lock(&self.inner.rooms);
        if let Some(h) = rooms.get(room)
            && !h.tx.is_closed()
        {
            return Ok((h.clone(), false));
        }
        let (tx, rx) = mpsc::channel(1024);
        let handle = RoomHandle { tx };
        rooms.insert(room.to_owned(), handle.clone());
        let actor = RoomActor {
            id: room.to_owned(),
            state: RoomState::new(room, self.inner.settings.max_participants),
            sessions: HashMap::new(),
            media: self.inner.media.clone(),
            created: Instant::now(),
            timeouts: self.inner.settings.timeouts,
            ever_joined: false,
            observer: self.inner.observer.clone(),
            info: HashMap::new(),
        };
        let this = self.clone();
        let expected = handle.tx.clone();
        tokio::spawn(actor.run(rx, move |id, ended| {
            let mut rooms = lock(&this.inner.rooms);
            // Only remove our own entry: a new room of the same id may already exist.
            if rooms.get(id).is_some_and(|h| h.tx.same_channel(&expected)) {
                rooms.remove(id);
            }
            if ended {
                lock(&this.inner.ended).insert(id.to_owned(), Instant::now());
            }
        }));
        tracing::info!(%room, "room created");
        Ok((handle, true))
    }

    /// Summaries of all rooms.
    pub async fn list(&self) -> Vec<RoomSummary> {
        let handles: Vec<RoomHandle> = lock(&self.inner.rooms).values().cloned().collect();
        let mut out = Vec::new();
        for h in handles {
            let (reply, rx) = oneshot::channel();
            if h.tx.send(RoomCmd::Summary { reply }).await.is_ok()
                && let Ok(s) = rx.await
            {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.room.cmp(&b.room));
        out
    }

    /// Everyone in every room, with names (for operators).
    pub async fn details(&self) -> Vec<RoomDetail> {
        let handles: Vec<RoomHandle> = lock(&self.inner.rooms).values().cloned().collect();
        let mut out = Vec::new();
        for h in handles {
            if let Some(d) = detail_of(&h).await {
                out.push(d);
            }
        }
        out.sort_by(|a, b| a.room.cmp(&b.room));
        out
    }

    /// One room's members, if it is open.
    pub async fn detail(&self, room: &str) -> Option<RoomDetail> {
        let h = lock(&self.inner.rooms).get(room).cloned()?;
        detail_of(&h).await
    }

    /// An operator removes a participant (from the call or the lobby); its token is revoked
    /// for this room.
    pub async fn remove_participant(
        &self,
        room: &str,
        id: &ParticipantId,
        reason: &str,
    ) -> Result<(), RemoveError> {
        let h = lock(&self.inner.rooms)
            .get(room)
            .cloned()
            .ok_or(RemoveError::NoRoom)?;
        let (reply, rx) = oneshot::channel();
        h.tx.send(RoomCmd::Remove {
            id: id.clone(),
            reason: reason.to_owned(),
            reply,
        })
        .await
        .map_err(|_| RemoveError::NoRoom)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err((ErrorCode::NotFound, _))) => Err(RemoveError::NoParticipant),
            Ok(Err(_)) | Err(_) => Err(RemoveError::NoRoom),
        }
    }

    /// Number of open rooms.
    pub fn len(&self) -> usize {
        lock(&self.inner.rooms).len()
    }

    /// Whether no room is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends a consult for everyone (operator action).
    pub async fn end(&self, room: &str, reason: &str) -> bool {
        let h = lock(&self.inner.rooms).get(room).cloned();
        match h {
            Some(h) => {
                h.tx.send(RoomCmd::End {
                    reason: reason.to_owned(),
                })
                .await
                .is_ok()
            }
            None => false,
        }
    }
}

async fn detail_of(h: &RoomHandle) -> Option<RoomDetail> {
    let (reply, rx) = oneshot::channel();
    h.tx.send(RoomCmd::Detail { reply }).await.ok()?;
    rx.await.ok()
}

/// A poisoned map lock only means another thread panicked mid-insert; the map is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
