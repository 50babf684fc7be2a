//! # kham-signal: tokens, rooms, lobby and the signaling WebSocket
//!
//! A participant opens `GET /ws?room=R&token=T`; the token (HS256 JWT, [`token`]) is checked
//! before the upgrade, so a bad, expired or wrong-room token gets a 401 with a typed reason.
//! Each room is one task ([`actor`]) owning its membership state machine ([`room_state`]): the
//! lobby, admit/deny/remove, end of consult. Media is reached through the [`Media`] trait, so
//! all of this runs in tests without str0m or sockets.
//!
//! Message flow: socket task -> `RoomCmd` -> room task -> `RoomState::handle` -> `Effect`s ->
//! messages to the sockets of the targeted participants, calls to [`Media`].

pub mod actor;
pub mod http;
pub mod media;
pub mod notice;
pub mod queue;
pub mod rate;
pub mod registry;
pub mod revocations;
pub mod room_state;
pub mod token;
pub mod turn;
mod user_agent;
mod ws;

pub use actor::{MemberDetail, RoomDetail, RoomSummary, RoomTimeouts};
pub use http::{
    ApiError, AppState, Counters, HealthFn, bearer_token, router, unix_now, valid_room_id,
};
pub use media::{Media, MediaError, MediaEvent, MediaPerms};
pub use notice::{NoObserver, Notice, Observer, SharedObserver, Who};
pub use queue::{MemoryQueue, QueueService, QueueServiceConfig, QueueSettings, QueueStore};
pub use rate::RateLimits;
pub use registry::{RemoveError, RoomSettings, Rooms};
pub use revocations::{
    FileRevocations, LoadReport, MemoryRevocations, RevocationStore, SharedRevocations,
};
pub use token::{Claims, TokenError, TokenKeys};
pub use turn::TurnSettings;
