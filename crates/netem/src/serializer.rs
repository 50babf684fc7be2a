//! When the packet at the head of the queue starts and finishes leaving the bottleneck.

use crate::trace::{Kind, Trace};

/// Start and completion of the head packet, in nanoseconds since the link's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scheduled {
    /// When its first bit leaves (rate traces) or its first opportunity comes (Mahimahi).
    pub(crate) start: u64,
    /// When its last bit has left; None if capacity never comes (an all-zero trace).
    pub(crate) done: Option<u64>,
}

/// Serialization state between packets. Rate traces need none: a packet's completion follows
/// from its start and the rate steps. Mahimahi traces keep a cursor on the opportunities: a
/// packet's bytes may span several, and the next queued packet continues in the rest of the
/// opportunity the previous one finished in; when the queue runs empty the rest is wasted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Serializer {
    /// Next opportunity (global index across loops) and bits of it already used; None when the
    /// queue ran empty (the next packet takes the first opportunity after its arrival).
    cursor: Option<(u64, u64)>,
    /// The cursor once the current head has left.
    after_head: (u64, u64),
}

impl Serializer {
    /// Schedules the new head packet of `bits` bits, which may start at `t` (its arrival, or
    /// the completion of the packet before it).
    pub(crate) fn schedule(&mut self, trace: &Trace, t: u64, bits: u64) -> Scheduled {
        match trace.kind() {
            Kind::Rate(r) => Scheduled {
                start: t,
                done: r.finish(t, bits),
            },
            Kind::Opportunities(o) => {
                // Opportunities strictly after the arrival: one at the arrival instant itself
                // may already have been used up (as in Mahimahi, which drains the link before
                // enqueueing).
                let (g, used) = self.cursor.unwrap_or_else(|| (o.first_after(t), 0));
                let b = o.bits_per_opp();
                let start = o.time_of(g);
                if b == 0 {
                    return Scheduled { start, done: None };
                }
                let total = used.saturating_add(bits);
                let n = total.div_ceil(b).max(1);
                let last = g.saturating_add(n - 1);
                let used_last = total - (n - 1) * b;
                self.after_head = if used_last >= b {
                    (last.saturating_add(1), 0)
                } else {
                    (last, used_last)
                };
                Scheduled {
                    start,
                    done: Some(o.time_of(last)),
                }
            }
        }
    }

    /// The head packet has left; `more` tells whether another packet is queued behind it.
    pub(crate) fn head_left(&mut self, more: bool) {
        self.cursor = more.then_some(self.after_head);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn mahimahi_bytes_span_opportunities() {
        // Opportunities at 1, 2, 3 ms; period 3 ms.
        let trace = Trace::parse("1\n2\n3\n").expect("parses");
        let mut s = Serializer::default();
        // 1000 bytes arriving at 0: first opportunity at 1 ms, 500 bytes of it left over.
        let a = s.schedule(&trace, 0, 8000);
        assert_eq!(
            a,
            Scheduled {
                start: MS,
                done: Some(MS)
            }
        );
        s.head_left(true);
        // The next queued 1000 bytes take the rest of 1 ms and 500 bytes at 2 ms.
        let b = s.schedule(&trace, MS, 8000);
        assert_eq!(
            b,
            Scheduled {
                start: MS,
                done: Some(2 * MS)
            }
        );
        s.head_left(false);
        // Queue ran empty: the rest of 2 ms is wasted; a packet arriving at 2 ms waits for 3 ms.
        let c = s.schedule(&trace, 2 * MS, 8);
        assert_eq!(
            c,
            Scheduled {
                start: 3 * MS,
                done: Some(3 * MS)
            }
        );
        s.head_left(false);
        // 3000 bytes arriving at 3.5 ms: two opportunities, 4 (=1 of loop 1) and 5 ms.
        let d = s.schedule(&trace, 3 * MS + MS / 2, 24_000);
        assert_eq!(
            d,
            Scheduled {
                start: 4 * MS,
                done: Some(5 * MS)
            }
        );
    }

    #[test]
    fn rate_trace() {
        let trace = Trace::fixed(1_000_000);
        let mut s = Serializer::default();
        // 1250 bytes at 1 Mbit/s: 10 ms.
        assert_eq!(
            s.schedule(&trace, 5, 10_000),
            Scheduled {
                start: 5,
                done: Some(5 + 10 * MS)
            }
        );
        let zero = Trace::fixed(0);
        assert_eq!(s.schedule(&zero, 5, 1).done, None);
        let zero_mm = Trace::parse("1\n2\n").expect("parses").scaled(0.0);
        assert_eq!(s.schedule(&zero_mm, 5, 1).done, None);
    }
}
