//! # kham-proto: the signaling wire format
//!
//! Everything the browser, the test clients and the server exchange over the signaling
//! WebSocket, as serde types. No IO and no runtime here: the types are shared by `kham-signal`
//! (server side) and by Rust test clients. The human-readable specification is `PROTOCOL.md`
//! beside this crate; the two must agree (the tests at the bottom of `signal.rs` pin the JSON).
//!
//! ```
//! use kham_proto::{ClientMsg, parse_client_msg};
//! let msg = parse_client_msg(r#"{"type":"mute","kind":"audio","muted":true}"#).unwrap();
//! assert!(matches!(msg, ClientMsg::Mute { muted: true, .. }));
//! ```

mod adaptive;
mod ids;
mod queue;
mod role;
mod signal;

pub use adaptive::{
    LayerActive, LayerRef, MAX_VIEW_HEIGHT, MAX_VIEW_WIDTH, MAX_VIEWS, PauseReason, QualityEntry,
    QualityLevel, VideoState, VideoView, VideoViewSize,
};
pub use ids::ParticipantId;
pub use queue::{
    LeftReason, QueueClientMsg, QueueEntry, QueueErrorCode, QueueParseError, QueuePolicy,
    QueueServerMsg, RequestStage, Urgency, parse_queue_msg,
};
pub use role::{Grants, Role};
pub use signal::{
    ChatMessage, ClientMsg, ErrorCode, IceServer, LeaveReason, LobbyEntry, MediaKind, ParseError,
    ParticipantInfo, ServerMsg, Status, TrackInfo, parse_client_msg,
};

/// Version of the signaling protocol carried in `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest signaling frame accepted; larger frames close the socket with code 1009.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest chat text, in bytes of UTF-8 (a longer one is refused with `too_large`).
pub const MAX_CHAT_BYTES: usize = 2000;

/// WebSocket close codes used by the server (4000-4999 are application codes).
pub mod close_code {
    /// Normal closure after `leave`.
    pub const NORMAL: u16 = 1000;
    /// A frame exceeded [`super::MAX_MESSAGE_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// A lobby entry was denied.
    pub const DENIED: u16 = 4001;
    /// Removed from the call by a doctor.
    pub const REMOVED: u16 = 4002;
    /// The consult was ended for everyone.
    pub const ENDED: u16 = 4003;
    /// The same identity joined again from elsewhere; this older session was replaced.
    pub const REPLACED: u16 = 4004;
    /// The client kept sending past the signaling rate limit after `rate_limited` errors.
    pub const FLOODING: u16 = 4005;
    /// A resume named a participant this room no longer has, or a wrong secret: join anew.
    pub const RESUME_FAILED: u16 = 4006;
    /// From a client: it gives this socket up (it stopped answering) and resumes on another;
    /// the participant stays for the reconnect grace.
    pub const ABANDONED: u16 = 4100;
}
