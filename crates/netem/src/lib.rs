//! Deterministic, seeded, sans-IO link emulator.
//!
//! A [`Link`] is one direction of a network path: a droptail queue in front of a bottleneck
//! whose capacity follows a [`Trace`], then random loss, propagation delay and jitter. It
//! reads no clock, does no IO and starts no thread: the caller passes `Instant`s (a simulator
//! makes one base `Instant` and advances it virtually), and every random draw comes from a
//! seeded generator, so one seed and one sequence of calls give one outcome. Results do not
//! depend on how often the caller polls: sends and deliveries are computed from the times given,
//! not from the times of the calls.
//!
//! # The model
//!
//! - **Capacity.** Rate traces ([`Trace::from_steps`], [`Trace::fixed`], Norway HSDPA, Belgium
//!   4G, OpenNetLab) serialize a packet in `size * 8 / rate`, following rate changes mid-packet
//!   exactly; rate 0 is an outage: nothing leaves until capacity returns, the queue fills and
//!   drops. Mahimahi traces are delivery opportunities: each carries up to 1500 bytes, a packet's
//!   bytes may span opportunities, the next queued packet continues in the rest of one, an
//!   opportunity with an empty queue is wasted, and a packet can use only opportunities strictly
//!   after its arrival (as Mahimahi). `size` is all that counts: pass the bytes that cross the
//!   bottleneck (UDP payload plus about 28 bytes of headers).
//! - **Queue.** FIFO, droptail on [`QueueLimit::Bytes`] or [`QueueLimit::Time`] (drain time at
//!   the current rate; during an outage at the last non-zero rate).
//! - **Loss.** [`LossModel`] (Bernoulli or Gilbert-Elliott), plus OpenNetLab segment loss. Drawn
//!   at `send`, after the queue check, so [`SendOutcome::DroppedLoss`] is known at once; the
//!   lost packet still waits and uses its capacity (loss on the radio link happens after the
//!   airtime is spent), then is discarded instead of delivered.
//! - **Delivery.** At last bit serialized + propagation delay + jitter, where jitter is uniform
//!   in `[0, jitter]` and a delivery never comes before the previous one (no reordering). An
//!   OpenNetLab segment's positive `rtt` gives `rtt / 2` one way and its positive `jitter`
//!   replaces the configured one while the segment lasts (zeros in those files mean "unset").
//! - **Time.** Offset 0 of the trace is the `start` given to [`Link::new`]. An `Instant` earlier
//!   than one already seen is taken as the latest seen. [`Delivered::queue_delay`] is the wait
//!   before the packet's own serialization began; `delivered_at - sent_at` is the whole one-way
//!   delay.
//! - **Traces.** [`Trace::parse`] reads Mahimahi, OpenNetLab JSON, Norway HSDPA and Belgium 4G
//!   files (format detected from the content; malformed input is a [`TraceError`], never a
//!   panic); [`Trace::scaled`] brings a recording into another rate range.
//! - **Randomness.** xoshiro256++ (hand-written, see `rng.rs`), one stream for loss (drawn in send
//!   order) and one for jitter (drawn in departure order).
//!
//! # Relay
//!
//! [`Relay`] is the pure core of the `kham-relay` UDP relay: a table of clients keyed by source
//! address, each with its own [`LinkPair`] from a [`ClientSpec`] chosen by order of appearance,
//! idle expiry and a bounded client count; the relay binary adds the sockets and the clock.
//!
//! `send` and `poll_deliver` are O(1) amortized (plus a binary search over the trace's steps
//! for rate lookups); queue and in-flight storage are reserved up front and reused.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use kham_netem::{Link, LinkConfig, SendOutcome};
//!
//! let t0 = Instant::now(); // the caller's base instant; the link itself never reads a clock
//! let mut link = Link::new(LinkConfig::fixed(1_000_000, Duration::from_millis(50)), t0);
//! assert_eq!(link.send(t0, 1250, "hello"), SendOutcome::Queued);
//! let due = link.poll_timeout().unwrap(); // 10 ms serialization
//! assert!(link.poll_deliver(due).is_none()); // serialized, now propagating
//! let due = link.poll_timeout().unwrap();
//! assert_eq!(due - t0, Duration::from_millis(60));
//! assert_eq!(link.poll_deliver(due).unwrap().packet, "hello");
//! ```

mod link;
mod loss;
mod queue;
mod relay;
mod rng;
mod serializer;
mod trace;
mod trace_parse;

pub use link::{Delivered, Link, LinkConfig, LinkPair, LinkStats, SendOutcome};
pub use loss::LossModel;
pub use queue::QueueLimit;
pub use relay::{
    ClientId, ClientReport, ClientSpec, FromClient, Relay, RelayConfig, RelayOutput, RelayStats,
    client_seeds,
};
pub use trace::{SegmentParams, Trace};
pub use trace_parse::{Direction, TraceError};
