//! What subscribers receive: per-SSRC sequence gaps (kham renumbers what it forwards, so a gap
//! in a subscriber's stream is loss), per-generator-stream accounting against what publishers
//! sent, and one-way delay histograms. Updated on the media thread without locks.

use std::collections::HashMap;

/// Delay histogram: 50 µs buckets up to 2 s, and one overflow bucket (reported as 2000 ms:
/// "at least 2 s").
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u32>,
    count: u64,
}

const BUCKET_US: u64 = 50;
const BUCKETS: usize = 40_000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS + 1],
            count: 0,
        }
    }
}

impl Histogram {
    /// Records a delay in microseconds.
    pub fn record(&mut self, us: u64) {
        let i = ((us / BUCKET_US) as usize).min(BUCKETS);
        self.buckets[i] = self.buckets[i].saturating_add(1);
        self.count += 1;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0..=1) in milliseconds (upper edge of its bucket), None when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= want {
                let edge = (i as u64 + 1).min(BUCKETS as u64);
                return Some((edge * BUCKET_US) as f64 / 1000.0);
            }
        }
        Some((BUCKETS as u64 * BUCKET_US) as f64 / 1000.0)
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a = a.saturating_add(*b);
        }
        self.count += o.count;
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.buckets.iter_mut().for_each(|b| *b = 0);
        self.count = 0;
    }
}

/// Sequence-number tracking of one received SSRC (kham's rewritten numbering).
#[derive(Debug, Clone, Default)]
pub struct SeqTrack {
    first: Option<u64>,
    max: u64,
    /// Packets received (duplicates included).
    pub received: u64,
    /// Packets that arrived below the highest number seen (reordered or duplicated).
    pub late: u64,
}

impl SeqTrack {
    /// Notes one packet.
    pub fn packet(&mut self, seq: u64) {
        self.received += 1;
        match self.first {
            None => {
                self.first = Some(seq);
                self.max = seq;
            }
            Some(_) if seq > self.max => self.max = seq,
            Some(_) => self.late += 1,
        }
    }

    /// Numbers missing between the first and the highest seen.
    pub fn gaps(&self) -> u64 {
        let Some(first) = self.first else { return 0 };
        // Reordered packets fill gaps they left; duplicates (rare) would hide a loss.
        (self.max - first + 1).saturating_sub(self.received)
    }
}

/// Accounting of one generator stream as one subscriber received it.
#[derive(Debug, Clone, Default)]
pub struct CounterTrack {
    /// Counter of the first packet received.
    pub first: u32,
    /// Highest counter received.
    pub max: u32,
    /// Packets received.
    pub received: u64,
    /// Counters skipped when a higher one arrived (sum of forward jumps).
    pub skipped: u64,
    /// Packets that arrived below the highest counter (each fills one skipped counter, or is a
    /// duplicate).
    pub late: u64,
    /// When the latest packet arrived (ns since the generator's clock base).
    pub last_ns: u64,
}

impl CounterTrack {
    fn packet(&mut self, counter: u32, now_ns: u64) {
        self.last_ns = now_ns;
        if self.received == 0 {
            self.first = counter;
            self.max = counter;
        } else if counter > self.max {
            self.skipped += u64::from(counter - self.max - 1);
            self.max = counter;
        } else {
            self.late += 1;
        }
        self.received += 1;
    }
}

/// Everything one client received.
#[derive(Debug, Default)]
pub struct RecvStats {
    /// By received SSRC.
    pub seq: HashMap<u32, SeqTrack>,
    /// By generator stream ([`crate::load::media::stream_id`]).
    pub streams: HashMap<u32, CounterTrack>,
    /// Payloads without a readable stamp.
    pub unstamped: u64,
}

impl RecvStats {
    /// Notes a received packet; returns its delay in µs and whether it was audio, if it had a
    /// stamp.
    pub fn packet(
        &mut self,
        ssrc: u32,
        seq: u64,
        stamp: Option<crate::load::media::Stamp>,
        now_ns: u64,
    ) -> Option<(u64, bool)> {
        self.seq.entry(ssrc).or_default().packet(seq);
        let Some(st) = stamp else {
            self.unstamped += 1;
            return None;
        };
        self.streams
            .entry(st.stream)
            .or_default()
            .packet(st.counter, now_ns);
        Some((now_ns.saturating_sub(st.sent_ns) / 1000, st.stream & 3 == 3))
    }

    /// Packets received on all SSRCs.
    pub fn received(&self) -> u64 {
        self.seq.values().map(|s| s.received).sum()
    }

    /// Sequence gaps on all SSRCs.
    pub fn gaps(&self) -> u64 {
        self.seq.values().map(SeqTrack::gaps).sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_late_packets_are_counted() {
        let mut s = SeqTrack::default();
        for q in [10, 11, 13, 12, 16] {
            s.packet(q);
        }
        assert_eq!(s.received, 5);
        assert_eq!(s.late, 1);
        assert_eq!(s.gaps(), 2); // 14, 15
        let mut c = CounterTrack::default();
        for q in [5, 6, 9, 7] {
            c.packet(q, 0);
        }
        assert_eq!(
            (c.first, c.max, c.received, c.skipped, c.late),
            (5, 9, 4, 2, 1)
        );
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for us in 0..1000 {
            h.record(us);
        }
        assert_eq!(h.quantile_ms(0.5), Some(0.5));
        assert_eq!(h.quantile_ms(0.99), Some(1.0));
        h.record(10_000_000);
        assert_eq!(h.quantile_ms(1.0), Some(2000.0));
    }
}
