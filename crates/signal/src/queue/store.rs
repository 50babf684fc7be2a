//! Where the queue lives: behind [`QueueStore`], so it can move to the shared store several
//! nodes use (Redis: each operation one script over the serialized state, or a hash per
//! request), as the room registry's directory would. [`MemoryQueue`] is one node's, in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use kham_proto::QueueEntry;

use super::state::{Effect, Op, QueueError, QueueSettings, QueueState, QueueStats, StationView};

/// The queue's state, shared by every connection of this node. Each call is atomic: two
/// doctors taking the same request at once are serialized, and exactly one wins. `now` is
/// milliseconds on the caller's monotonic clock.
pub trait QueueStore: Send + Sync + 'static {
    fn apply(&self, op: Op, now: u64) -> Result<Vec<Effect>, QueueError>;
    fn station_view(&self, station: &str, now: u64) -> Option<StationView>;
    /// Every station's view, by station identity.
    fn station_views(&self, now: u64) -> HashMap<String, StationView>;
    fn board(&self, specialties: &[String], now: u64) -> Vec<QueueEntry>;
    fn entry(&self, id: u64, now: u64) -> Option<QueueEntry>;
    fn is_available(&self, doctor: &str) -> bool;
    fn stats(&self, now: u64) -> QueueStats;
    fn settings(&self) -> QueueSettings;
}

/// The queue of one node, in memory.
#[derive(Debug)]
pub struct MemoryQueue {
    state: Mutex<QueueState>,
}

impl MemoryQueue {
    pub fn new(settings: QueueSettings) -> Self {
        MemoryQueue {
            state: Mutex::new(QueueState::new(settings)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl QueueStore for MemoryQueue {
    fn apply(&self, op: Op, now: u64) -> Result<Vec<Effect>, QueueError> {
        self.lock().apply(op, now)
    }
    fn station_view(&self, station: &str, now: u64) -> Option<StationView> {
        self.lock().station_view(station, now)
    }
    fn station_views(&self, now: u64) -> HashMap<String, StationView> {
        self.lock().station_views(now)
    }
    fn board(&self, specialties: &[String], now: u64) -> Vec<QueueEntry> {
        self.lock().board(specialties, now)
    }
    fn entry(&self, id: u64, now: u64) -> Option<QueueEntry> {
        self.lock().entry(id, now)
    }
    fn is_available(&self, doctor: &str) -> bool {
        self.lock().is_available(doctor)
    }
    fn stats(&self, now: u64) -> QueueStats {
        self.lock().stats(now)
    }
    fn settings(&self) -> QueueSettings {
        self.lock().settings().clone()
    }
}
