//! The on-demand specialist queue: a commune station asks for a consult in a specialty, the
//! first free specialist answers. [`state`] is the sans-IO state machine, [`store`] the
//! interface it lives behind, [`service`] its connections, rooms and tokens, [`ws`] the
//! `/queue/ws` socket and [`api`] the booking system's HTTP routes.

pub mod api;
pub mod service;
pub mod state;
pub mod store;
mod ws;

#[cfg(test)]
mod state_tests;

pub use service::{QueueService, QueueServiceConfig};
pub use state::{Effect, NewRequest, Op, QueueError, QueueSettings, QueueState, QueueStats};
pub use store::{MemoryQueue, QueueStore};
