//! Bandwidth allocation: given what one subscriber's link can carry, which layer of which track
//! it receives.
//!
//! Pure and sans-IO: the caller (the SFU room, or the simulator) measures layer bitrates and
//! owns the clock; this crate only decides. Two levels:
//!
//! - [`plan`]: a stateless, budget-monotone plan. Every possible upgrade of every track is put
//!   in one fixed order (lowest layer of each video in priority order, then upgrades, higher
//!   priorities first) and a budget buys the longest prefix that fits. A larger budget buys a
//!   longer prefix, so it can never lower any track's layer.
//! - [`Allocator`]: the per-subscriber policy on top of it: audio always allocated, headroom
//!   below the estimate, immediate step-down when the estimate falls below what is sent,
//!   step-up only after the estimate (raised by probing) has covered the next step for a hold
//!   time, a hold that doubles after an upgrade that had to be undone, and a probing target for
//!   str0m's `bwe().set_bitrate(min, desired)`. Every change carries a [`Reason`].

mod allocator;
mod input;
mod layer;
mod plan;

pub use allocator::{Allocation, Allocator, AllocatorConfig, Decision, Probe, Reason, Switch};
pub use input::{Kind, Priority, SubscriberInput, TrackInput};
pub use layer::{Layer, LayerRates, MAX_SPATIAL, MAX_TEMPORAL};
pub use plan::{Plan, plan};
