//! # kham-tests: black-box integration tests for the `kham` binary
//!
//! The library is a small test client kit; the tests live in `tests/tests/*.rs`.
//!
//! * [`server`]: build/locate the `kham` binary, spawn `kham serve --dev` on free ports, mint
//!   tokens with `kham token create`, `GET /healthz`.
//! * [`signal`]: a WebSocket client for the signaling protocol (`crates/proto/PROTOCOL.md`),
//!   messages as `serde_json::Value`.
//! * [`peer`]: a WebRTC endpoint (`webrtc` 0.21) that publishes synthetic Opus + VP8 RTP and
//!   records what it receives.
//! * [`client`]: a participant = signaling + peer, negotiating the way the browser SDK does.
//! * [`media`]: the synthetic payloads and VP8 descriptor parsing.
//! * [`http`]: a minimal HTTP/1.1 client (health checks, rejected upgrades).
//!
//! Environment knobs: `KHAM_BIN` (use this binary, do not build), `KHAM_TESTS_NO_BUILD=1`
//! (do not run `cargo build -p kham-server` first), `KHAM_TEST_LOG=1` (echo server output and
//! peer state changes live).

pub mod check;
pub mod client;
pub mod diag;
pub mod http;
pub mod media;
pub mod peer;
pub mod server;
pub mod signal;

pub use client::Participant;
pub use peer::{MediaKind, Peer, PeerOptions};
pub use server::{KhamServer, role};
pub use signal::{SignalClient, SignalEvent, msg_type};

/// Unique-enough room / identity names for one test process.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
