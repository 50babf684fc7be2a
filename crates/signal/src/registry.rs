//! Where rooms live. In-memory for one node; the interface (`get_or_create`, `create`, `list`,
//! `end`) is what a Redis-backed directory implements when rooms span nodes. The registry also
//! owns the revoked tokens ([`crate::revocations`]): they outlive any one room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kham_proto::{ErrorCode, ParticipantId};
use tokio::sync::{mpsc, oneshot};

use crate::actor::{RoomActor, RoomCmd, RoomDetail, RoomSummary, RoomTimeouts};
use crate::media::Media;
use crate::notice::{NoObserver, SharedObserver};
use crate::revocations::{MemoryRevocations, SharedRevocations};
use crate::room_state::{JoinRefusal, RoomState};
use crate::token::Claims;

/// How long an ended consult's id stays closed to new joins (longer than any token lives).
const ENDED_TOMBSTONE: Duration = Duration::from_secs(24 * 3600);

/// A room's command channel.
#[derive(Clone)]
pub struct RoomHandle {
    pub(crate) tx: mpsc::Sender<RoomCmd>,
}

/// Room settings from configuration.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    pub max_participants: usize,
    /// Rooms open at once on this node; creating one more is refused (`too_many_rooms`).
    pub max_rooms: usize,
    pub timeouts: RoomTimeouts,
    /// TURN servers handed to participants, with credentials (`turn.rs`).
    pub turn: crate::turn::TurnSettings,
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
    revocations: SharedRevocations,
    /// Whether the last creation was refused for `max_rooms` (to log that once).
    at_cap: AtomicBool,
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

    /// Rooms whose lifecycle notices go to `observer` (webhooks, metrics); revocations in
    /// memory only.
    pub fn with_observer(
        media: Arc<dyn Media>,
        settings: RoomSettings,
        observer: SharedObserver,
    ) -> Self {
        Self::with_store(
            media,
            settings,
            observer,
            Arc::new(MemoryRevocations::default()),
        )
    }

    /// Rooms with their notices going to `observer` and revoked tokens kept in `revocations`.
    pub fn with_store(
        media: Arc<dyn Media>,
        settings: RoomSettings,
        observer: SharedObserver,
        revocations: SharedRevocations,
    ) -> Self {
        Rooms {
            inner: Arc::new(Inner {
                rooms: Mutex::new(HashMap::new()),
                ended: Mutex::new(HashMap::new()),
                media,
                settings,
                observer,
                revocations,
                at_cap: AtomicBool::new(false),
            }),
        }
    }

    /// Whether this token was revoked (denied or removed) in its room, now or in an earlier
    /// life of the room. `now` is Unix seconds.
    pub fn is_revoked(&self, claims: &Claims, now: u64) -> bool {
        self.inner
            .revocations
            .is_revoked(&claims.room, &claims.jti, now)
    }

    /// The room, created if needed. Refused if this consult already ended.
    /// An open room, never created by the call (a resume must find the room it left).
    pub fn get(&self, room: &str) -> Option<RoomHandle> {
        lock(&self.inner.rooms)
            .get(room)
            .filter(|h| !h.tx.is_closed())
            .cloned()
    }

    pub fn get_or_create(&self, room: &str) -> Result<RoomHandle, JoinRefusal> {
        self.create(room).map(|(h, _)| h)
    }

    /// Creates a room if absent; returns whether it was created. Refused when the consult
    /// ended, or when `max_rooms` rooms are open.
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
        // An entry of this id still in the map is a room that just closed: it is replaced.
        let open = rooms.len() - usize::from(rooms.contains_key(room));
        if open >= self.inner.settings.max_rooms {
            // Once per episode: refusals themselves are counted (`too_many_rooms`), and a
            // client hammering the cap must not flood the log.
            if !self.inner.at_cap.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    open,
                    max_rooms = self.inner.settings.max_rooms,
                    "rooms.max_rooms reached: new rooms are refused until some close"
                );
            }
            return Err(JoinRefusal::TooManyRooms);
        }
        self.inner.at_cap.store(false, Ordering::Relaxed);
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
            revocations: self.inner.revocations.clone(),
            next_offer_id: 0,
            turn: self.inner.settings.turn.clone(),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use kham_proto::{ClientMsg, LeaveReason, Role, ServerMsg};

    use super::*;
    use crate::actor::Outbound;
    use crate::media::{MediaError, MediaEvent, MediaPerms};
    use crate::notice::{Notice, Observer};

    /// Media that accepts nothing and does nothing: these tests are about membership.
    struct NoMedia;

    impl Media for NoMedia {
        fn open_room(&self, _: &str, _: mpsc::Sender<MediaEvent>) {}
        fn offer(
            &self,
            _: &str,
            _: ParticipantId,
            _: MediaPerms,
            _: String,
            _: Option<Vec<String>>,
        ) -> oneshot::Receiver<Result<String, MediaError>> {
            oneshot::channel().1
        }
        fn answer(
            &self,
            _: &str,
            _: ParticipantId,
            _: String,
        ) -> oneshot::Receiver<Result<(), MediaError>> {
            oneshot::channel().1
        }
        fn remove(&self, _: &str, _: ParticipantId) {}
        fn ice_restart(&self, _: &str, _: ParticipantId) {}
        fn audio_only(&self, _: &str, _: ParticipantId, _: bool) {}
        fn video_view(&self, _: &str, _: ParticipantId, _: Vec<kham_proto::VideoView>) {}
        fn close_room(&self, _: &str) {}
    }

    /// Records every notice.
    #[derive(Default)]
    struct Record(Mutex<Vec<Notice>>);

    impl Observer for Record {
        fn notice(&self, n: Notice) {
            lock(&self.0).push(n);
        }
    }

    impl Record {
        fn left(&self) -> Vec<(String, &'static str)> {
            lock(&self.0)
                .iter()
                .filter_map(|n| match n {
                    Notice::ParticipantLeft { who, reason, .. } => {
                        Some((who.identity.clone(), *reason))
                    }
                    _ => None,
                })
                .collect()
        }
    }

    fn settings(max_rooms: usize) -> RoomSettings {
        RoomSettings {
            max_participants: 8,
            max_rooms,
            timeouts: RoomTimeouts {
                empty_timeout: Duration::from_millis(100),
                departure_timeout: Duration::from_millis(100),
                reconnect_grace: Duration::ZERO,
            },
            turn: Default::default(),
        }
    }

    fn rooms(max_rooms: usize) -> (Rooms, Arc<Record>) {
        let record = Arc::new(Record::default());
        let rooms = Rooms::with_observer(Arc::new(NoMedia), settings(max_rooms), record.clone());
        (rooms, record)
    }

    fn claims(room: &str, sub: &str, role: Role) -> Claims {
        Claims {
            iss: "k".into(),
            sub: sub.into(),
            name: sub.into(),
            room: room.into(),
            role,
            exp: crate::http::unix_now() + 3600,
            nbf: 0,
            jti: format!("jti-{room}-{sub}"),
            grants: role.default_grants(),
        }
    }

    /// Joins through the room's task; returns the id and the session's receiving end.
    async fn join(
        h: &RoomHandle,
        c: &Claims,
    ) -> Result<(ParticipantId, mpsc::Receiver<Outbound>), JoinRefusal> {
        let id = ParticipantId::from(format!("p-{}", c.sub).as_str());
        let (tx, rx) = mpsc::channel(256);
        let (reply, r) = oneshot::channel();
        h.tx.send(RoomCmd::Join {
            id: id.clone(),
            claims: c.clone(),
            client: "test".into(),
            conn: 0,
            tx,
            reply,
        })
        .await
        .unwrap();
        r.await.unwrap().map(|()| (id, rx))
    }

    async fn client(h: &RoomHandle, id: &ParticipantId, msg: ClientMsg) {
        h.tx.send(RoomCmd::Client {
            id: id.clone(),
            msg,
        })
        .await
        .unwrap();
    }

    async fn check_join(h: &RoomHandle, c: &Claims) -> Result<(), JoinRefusal> {
        let (reply, r) = oneshot::channel();
        h.tx.send(RoomCmd::CheckJoin {
            claims: c.clone(),
            reply,
        })
        .await
        .unwrap();
        r.await.unwrap()
    }

    /// Waits (bounded, generously for a loaded machine) until no room is open.
    async fn until_no_room(rooms: &Rooms) {
        for _ in 0..500 {
            if rooms.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the room did not close");
    }

    #[tokio::test]
    async fn denial_and_removal_outlive_the_room() {
        let (rooms, _) = rooms(10);
        let h = rooms.get_or_create("r").unwrap();
        let doctor = claims("r", "doc", Role::Doctor);
        let patient = claims("r", "pat", Role::Patient);
        let station = claims("r", "st", Role::Station);
        let (d, _drx) = join(&h, &doctor).await.unwrap();
        let (p, _prx) = join(&h, &patient).await.unwrap();
        let (s, _srx) = join(&h, &station).await.unwrap();
        client(
            &h,
            &d,
            ClientMsg::Deny {
                id: p,
                reason: None,
            },
        )
        .await;
        client(
            &h,
            &d,
            ClientMsg::Remove {
                id: s,
                reason: None,
            },
        )
        .await;
        // Revoked at once, in the room that still lives...
        assert_eq!(check_join(&h, &patient).await, Err(JoinRefusal::Revoked));
        assert_eq!(check_join(&h, &station).await, Err(JoinRefusal::Revoked));
        h.tx.send(RoomCmd::Disconnected {
            id: d,
            conn: 0,
            lost: false,
        })
        .await
        .unwrap();
        until_no_room(&rooms).await;
        // ...and after it closed, for the room created again.
        let now = crate::http::unix_now();
        assert!(rooms.is_revoked(&patient, now));
        assert!(rooms.is_revoked(&station, now));
        assert!(!rooms.is_revoked(&doctor, now));
        let h = rooms.get_or_create("r").unwrap();
        assert_eq!(check_join(&h, &patient).await, Err(JoinRefusal::Revoked));
        assert_eq!(
            join(&h, &station).await.map(|_| ()),
            Err(JoinRefusal::Revoked)
        );
        assert!(join(&h, &doctor).await.is_ok());
        // Only until the token's own expiry.
        assert!(!rooms.is_revoked(&patient, patient.exp));
    }

    #[tokio::test]
    async fn operator_removal_outlives_the_room() {
        let (rooms, _) = rooms(10);
        let h = rooms.get_or_create("op").unwrap();
        let station = claims("op", "st", Role::Station);
        let (s, _srx) = join(&h, &station).await.unwrap();
        rooms
            .remove_participant("op", &s, "removed_by_operator")
            .await
            .unwrap();
        until_no_room(&rooms).await;
        let h = rooms.get_or_create("op").unwrap();
        assert_eq!(check_join(&h, &station).await, Err(JoinRefusal::Revoked));
        // The same token id in another room is another token.
        let mut elsewhere = station.clone();
        elsewhere.room = "other".into();
        assert!(!rooms.is_revoked(&elsewhere, crate::http::unix_now()));
    }

    #[tokio::test]
    async fn rooms_past_max_rooms_are_refused() {
        let (rooms, _) = rooms(2);
        assert!(rooms.create("a").unwrap().1);
        assert!(rooms.create("b").unwrap().1);
        assert_eq!(
            rooms.create("c").map(|_| ()),
            Err(JoinRefusal::TooManyRooms)
        );
        assert_eq!(
            rooms.get_or_create("c").map(|_| ()),
            Err(JoinRefusal::TooManyRooms)
        );
        // An open room is still reachable.
        assert!(!rooms.create("a").unwrap().1);
        assert_eq!(rooms.len(), 2);
        // Once rooms close (empty timeout), new ones can be created again.
        until_no_room(&rooms).await;
        assert!(rooms.create("c").unwrap().1);
    }

    #[tokio::test]
    async fn a_session_that_ended_leaves_with_its_own_reason() {
        let (rooms, record) = rooms(10);
        let h = rooms.get_or_create("r").unwrap();
        let (d, mut drx) = join(&h, &claims("r", "doc", Role::Doctor)).await.unwrap();
        let (s, srx) = join(&h, &claims("r", "st", Role::Station)).await.unwrap();
        // The station's session task ended (clean close): its receiver is gone, and its
        // `Disconnected` is queued behind a message the room sends it.
        drop(srx);
        client(
            &h,
            &d,
            ClientMsg::Mute {
                kind: kham_proto::MediaKind::Audio,
                muted: true,
            },
        )
        .await;
        h.tx.send(RoomCmd::Disconnected {
            id: s.clone(),
            conn: 0,
            lost: false,
        })
        .await
        .unwrap();
        let left = loop {
            match tokio::time::timeout(Duration::from_secs(5), drx.recv()).await {
                Ok(Some(Outbound::Msg(ServerMsg::ParticipantLeft { id, reason }))) if id == s => {
                    break reason;
                }
                Ok(Some(_)) => {}
                other => panic!("no participant_left for the station: {other:?}"),
            }
        };
        assert_eq!(left, LeaveReason::Left);
        assert_eq!(record.left(), vec![("st".to_owned(), "left")]);
    }

    #[tokio::test]
    async fn a_reader_whose_queue_fills_is_dropped_as_lost_and_its_channel_ends() {
        let (rooms, record) = rooms(10);
        let h = rooms.get_or_create("r").unwrap();
        let (d, mut drx) = join(&h, &claims("r", "doc", Role::Doctor)).await.unwrap();
        // The station never reads: its 256-message queue fills with the doctor's updates.
        let (_s, mut srx) = join(&h, &claims("r", "st", Role::Station)).await.unwrap();
        for i in 0..300 {
            client(
                &h,
                &d,
                ClientMsg::Mute {
                    kind: kham_proto::MediaKind::Audio,
                    muted: i % 2 == 0,
                },
            )
            .await;
            if i % 50 == 49 {
                // The doctor reads its own copies (once the room has sent them).
                let (reply, r) = oneshot::channel();
                h.tx.send(RoomCmd::Summary { reply }).await.unwrap();
                r.await.unwrap();
                while drx.try_recv().is_ok() {}
            }
        }
        let mut queued = 0;
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while srx.recv().await.is_some() {
                queued += 1;
            }
        })
        .await;
        assert!(end.is_ok(), "the room dropped its sender: the session ends");
        assert!(queued <= 256, "{queued}");
        assert_eq!(record.left(), vec![("st".to_owned(), "connection_lost")]);
    }
}
