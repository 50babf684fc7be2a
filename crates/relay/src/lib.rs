//! `kham-relay`: a UDP relay that puts real WebRTC clients (browsers) behind emulated weak
//! links in front of kham's media port.
//!
//! Each client (source address) gets its own uplink and downlink from `kham-netem` (capacity
//! trace or fixed rate, droptail queue, delay, jitter, loss), created on its first datagram
//! from a spec chosen by order of appearance, and its own upstream-facing socket. The pure
//! logic is `kham_netem::Relay`; this crate adds the sockets, the clock and the command line.
//! See `crates/netem/README.md`, "Relay mode".

mod server;
pub mod spec;
pub mod stats;

pub use server::{Options, RelayServer};
