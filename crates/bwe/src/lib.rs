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
//! - [`Allocator`]: the per-subscriber policy on top of it: audio always allocated, step-down
//!   on evidence (clearly below, or below for a while), temporal upgrades after a short hold and
//!   spatial ones after a longer, padded one with a backoff after failures, pause only when even
//!   the lowest layers do not fit, and what str0m's `bwe().set_bitrate(min, desired)` is asked
//!   for: the ideal, in probe pulses. Every change carries a [`Reason`]. The module's manual
//!   says which measured failure each rule answers.

mod allocator;
mod input;
mod layer;
mod plan;

pub use allocator::{Allocation, Allocator, AllocatorConfig, Decision, Probe, Reason, Switch};
pub use input::{Kind, Priority, SubscriberInput, TrackInput};
pub use layer::{Layer, LayerRates, MAX_SPATIAL, MAX_TEMPORAL, MIN_UPPER_FPS};
pub use plan::{Plan, plan};
