//! Where rooms live. In-memory for one node; the interface (`get_or_create`, `create`, `list`,
//! `end`) is what a Redis-backed directory implements when rooms span nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::actor::{RoomActor, RoomCmd, RoomSummary, RoomTimeouts};
use crate::media::Media;
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
}

impl Rooms {
    pub fn new(media: Arc<dyn Media>, settings: RoomSettings) -> Self {
        Rooms {
            inner: Arc::new(Inner {
                rooms: Mutex::new(HashMap::new()),
                ended: Mutex::new(HashMap::new()),
                media,
                settings,
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

/// A poisoned map lock only means another thread panicked mid-insert; the map is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
