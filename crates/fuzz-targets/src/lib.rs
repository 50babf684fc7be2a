//! Fuzz targets: one function per parser that reads bytes from the network or from files a user
//! supplies, each asserting what the parser must keep, not only that it returns.
//!
//! - [`vp8`]: VP8 payload descriptors and keyframe headers, H.264 keyframe detection.
//! - [`red`]: RFC 2198 parsing, and `write_red` then `parse_red` giving back what was written.
//! - [`forwarder`]: the per-subscriber rewriting of simulcast into one stream, driven by a
//!   script of packets, layer targets, temporal limits and resyncs: contiguous sequence
//!   numbers and picture ids out.
//! - [`signal_json`]: client signaling messages; whatever parses serializes back to itself.
//! - [`token`]: a token verifies only if the key signed it.
//! - [`sdp`]: the checks that run before str0m sees an offer or an answer, and the rewrite of a
//!   receive-only participant's offer (no send direction or simulcast line left in it).
//! - [`rfc4571`]: ICE-TCP framing read from a stream in arbitrary pieces.
//! - [`trace`], [`relay_spec`]: link traces and kham-relay spec files.
//! - [`data_channel`]: the vital-sign and image framing the room reads and forwards, the
//!   transfer bookkeeping and the image reservation, driven by a script of frames.
//! - [`room`]: a room fed raw datagrams, STUN requests with the right ICE username and any
//!   attributes, SDP offers of any text and time; it must still take a valid participant.
//!
//! [`TARGETS`] lists them by name for `tests/replay.rs` (the saved corpus under
//! `fuzz/corpus/<name>/`, findings under `fuzz/regressions/<name>/`, then a seeded number of
//! mutations of them) and for the libFuzzer binaries in `fuzz/` (one line each).

mod data_channel;
mod forwarder;
mod room;
mod targets;

pub use data_channel::data_channel;
pub use forwarder::forwarder;
pub use room::room;

pub use targets::{red, relay_spec, rfc4571, sdp, signal_json, signed_token, token, trace, vp8};

/// A target: any bytes in, a panic out when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name (the folder names under `fuzz/corpus/`).
pub const TARGETS: [(&str, Target); 11] = [
    ("vp8", vp8),
    ("red", red),
    ("forwarder", forwarder),
    ("signal_json", signal_json),
    ("token", token),
    ("sdp", sdp),
    ("rfc4571", rfc4571),
    ("trace", trace),
    ("relay_spec", relay_spec),
    ("room", room),
    ("data_channel", data_channel),
];

pub mod mutate;
