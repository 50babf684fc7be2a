//! # kham-sfu: the room engine
//!
//! One [`Room`] per consultation owns every participant's str0m `Rtc` (ICE-lite, RTP mode) and
//! forwards each publisher's RTP to every subscriber, rewriting SSRC, sequence numbers,
//! timestamps and VP8 picture ids per subscriber so each sees one continuous stream per track.
//!
//! Sans-IO: no sockets, no threads, no clock. The shell (the `kham` server, or the simulator)
//! owns the UDP socket and the time and drives the room:
//!
//! ```text
//! room.add_peer(now, id, perms, offer_sdp) -> answer_sdp     (signaling)
//! room.handle_receive(now, datagram)                          (a UDP datagram arrived)
//! room.handle_timeout(now)                                    (the last Timeout was reached)
//! loop { match room.poll_output() {                           (after every input)
//!     Transmit(t) => send t.contents to t.destination,
//!     Event(e)    => tell signaling (server offer, connected, lost),
//!     Timeout(t)  => wait until t or the next input; break } }
//! ```
//!
//! Invariants: a subscriber's forwarded stream never goes backwards or skips sequence numbers
//! because of a layer switch; spatial switches happen only at a keyframe of the new layer; a
//! keyframe request reaches a publisher layer at most once per `keyframe_request_interval`
//! whatever the number of subscribers waiting. Malformed input is an `Err`, never a panic.
//!
//! Where to look: `room.rs` (poll loop, `forward`), `forward.rs` (per-subscriber rewriting and
//! layer switching), `adapt.rs` (where a layer is chosen: the allocator per subscriber, RED on or
//! off), `view.rs` (tile size to layer), `dynacast.rs` (layers paused at the publisher),
//! `audio_rate.rs` (the publisher's Opus rate capped for a thin listener),
//! `notify.rs` (`video_state` and `quality` to participants), `red.rs` (RFC 2198), `track.rs`
//! (published and received tracks, layer fallback, keyframe-starved layers), `peer.rs`
//! (renegotiation), `codec.rs` (keyframe and picture-size detection), `stats.rs` (per-participant
//! figures for operators, read with [`Room::media_stats`] at most once a second), `quality.rs`
//! (the excellent/good/poor/lost verdict), `vitals.rs` (vital signs over data channels, reserved
//! like audio by the allocator).
//!
//! Repair: str0m answers subscribers' NACKs with RTX from a bounded per-stream history (1024
//! packets or 3 s, whichever is less, and at most 15 % of the stream's bytes), NACKs what a
//! publisher's uplink lost (video negotiates RTX), and returns transport-wide congestion control
//! feedback to publishers so the browser's own estimator adapts a weak uplink. Audio gets RED
//! towards subscribers whose receiver reports show loss, and Opus in-band FEC is negotiated
//! (`useinbandfec=1`).

mod adapt;
mod audio_rate;
mod codec;
mod dynacast;
mod error;
mod forward;
mod gap;
mod meter;
mod notify;
mod peer;
pub mod quality;
mod reconnect;
pub mod red;
mod repair_delay;
pub mod rfc4571;
mod room;
mod screen;
pub mod sdp_check;
mod stats;
mod track;
pub mod view;
pub mod vitals;

pub use adapt::{
    ALLOCATION_INTERVAL, Adaptation, RED_OFF_AFTER, RED_OFF_LOSS, RED_ON_LOSS, Shortfall,
};
pub use codec::{
    Codec, Vp8Info, h264_is_keyframe, is_keyframe_start, parse_vp8, vp8_keyframe_size,
};
pub use error::SfuError;
pub use forward::{Forwarder, InPacket, OutPacket, Want};
pub use kham_bwe;
pub use peer::Permissions;
pub use room::{Room, RoomConfig, RoomEvent, RoomOutput, RoomStats};
pub use screen::{MAX_SCREEN_MIDS, ScreenMidError};
pub use stats::{LayerReceived, MediaPath, MediaTotals, PeerMediaStats, STATS_INTERVAL};
pub use str0m;
