//! The droptail queue's limit.

use std::time::Duration;

use crate::trace::NS_PER_SEC;

/// Droptail limit of a link's queue. The packet being serialized counts as queued until its
/// last bit has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueLimit {
    /// Drop a packet if the queued bytes plus its own would exceed this many bytes.
    Bytes(usize),
    /// Drop a packet if the queued bytes plus its own would take longer than this to drain at
    /// the current capacity. During an outage (capacity 0) the last non-zero rate before it is
    /// used (Mahimahi traces: the trace's mean), so the queue fills as a real buffer would,
    /// then drops.
    Time(Duration),
}

impl QueueLimit {
    /// Whether a packet of `size` bytes fits behind `queued` bytes when the queue drains at
    /// `drain_bps()` (asked only for a time limit).
    pub(crate) fn admits(
        &self,
        queued: usize,
        size: usize,
        drain_bps: impl FnOnce() -> u64,
    ) -> bool {
        let total = queued.saturating_add(size);
        match *self {
            QueueLimit::Bytes(max) => total <= max,
            QueueLimit::Time(limit) => {
                let drain_bps = drain_bps();
                if drain_bps == 0 {
                    return false;
                }
                let bits = (total as u128).saturating_mul(8);
                let drain_ns = bits * u128::from(NS_PER_SEC) / u128::from(drain_bps);
                drain_ns <= limit.as_nanos()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(QueueLimit::Bytes(3000).admits(1500, 1500, || 0));
        assert!(!QueueLimit::Bytes(3000).admits(1501, 1500, || 0));
        assert!(!QueueLimit::Bytes(10).admits(usize::MAX, usize::MAX, || 0));
        let t = QueueLimit::Time(Duration::from_millis(100));
        // 1 Mbit/s drains 12 500 bytes in 100 ms.
        assert!(t.admits(11_000, 1500, || 1_000_000));
        assert!(!t.admits(11_001, 1500, || 1_000_000));
        assert!(!t.admits(0, 1, || 0));
        assert!(!t.admits(usize::MAX, usize::MAX, || 1));
    }
}
