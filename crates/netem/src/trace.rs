//! Capacity over time: rate steps (piecewise constant bit/s) or Mahimahi delivery opportunities.

use std::sync::Arc;
use std::time::Duration;

/// Highest rate a trace holds (about 1.1 Pbit/s): keeps every product of rate and nanoseconds
/// inside `u128`. Higher rates are clamped.
pub(crate) const MAX_BPS: u64 = 1 << 50;
/// Longest trace period (about 146 years): keeps absolute nanosecond times inside `u64`.
pub(crate) const MAX_PERIOD_NS: u64 = 1 << 62;
pub(crate) const NS_PER_SEC: u64 = 1_000_000_000;
const NS_PER_MS: u64 = 1_000_000;
/// Bits one Mahimahi delivery opportunity carries: one 1500-byte packet.
pub(crate) const MAHIMAHI_OPPORTUNITY_BITS: u64 = 1500 * 8;

/// Per-segment link parameters of an OpenNetLab trace (each field as given, when given).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SegmentParams {
    /// Random loss probability while in this segment (`0..=1`).
    pub loss: Option<f64>,
    /// Round-trip time of the segment; the link uses `rtt / 2` as one-way propagation delay.
    pub rtt: Option<Duration>,
    /// Jitter of the segment.
    pub jitter: Option<Duration>,
}

/// A capacity-over-time recording. It loops: offset `t` and `t + duration()` are the same point.
///
/// Two kinds exist behind one type:
/// - rate steps (from [`Trace::from_steps`], [`Trace::fixed`], Norway HSDPA, Belgium 4G and
///   OpenNetLab files): a piecewise-constant rate in bit/s;
/// - delivery opportunities (Mahimahi files): instants at which up to 1500 bytes may leave.
///
/// Cloning is cheap (the data is shared).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Rate(Arc<RateTrace>),
    Opportunities(Arc<OppTrace>),
}

#[derive(Debug, PartialEq)]
pub(crate) struct RateTrace {
    /// Non-empty; each step has a positive duration; ends strictly increase; last end = period.
    steps: Vec<Step>,
    period_ns: u64,
    /// Bits one period carries, times 1e9 (sum of `bps * duration_ns`).
    work: u128,
    has_segments: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Step {
    end_ns: u64,
    bps: u64,
    /// `bps`, or during a zero-rate step the last non-zero rate before it (looping): the rate a
    /// time-limited queue converts its limit with during an outage.
    hold_bps: u64,
    seg: Option<SegmentParams>,
}

#[derive(Debug, PartialEq)]
pub(crate) struct OppTrace {
    /// Non-decreasing milliseconds, non-empty.
    times_ms: Vec<u64>,
    /// Last value, positive.
    period_ms: u64,
    /// 12000 for an unscaled trace.
    bits_per_opp: u64,
}

/// One rate step in nanoseconds, as the parsers and `from_steps` build them.
pub(crate) struct RawStep {
    pub(crate) duration_ns: u64,
    pub(crate) bps: u64,
    pub(crate) seg: Option<SegmentParams>,
}

pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Trace {
    /// A piecewise-constant trace: step `(d, rate)` lasts `d` at `rate` bit/s; the list loops.
    ///
    /// Zero-length steps are skipped; rates above 2^50 bit/s are clamped; a total length beyond
    /// about 146 years is cut there. With no step of positive length the trace is a 1 s outage
    /// that loops (capacity 0 forever).
    pub fn from_steps(steps: &[(Duration, u64)]) -> Trace {
        let raw = steps.iter().map(|&(d, bps)| RawStep {
            duration_ns: duration_ns(d),
            bps,
            seg: None,
        });
        Trace::from_raw_steps(raw).unwrap_or_else(|| Trace::fixed(0))
    }

    /// A constant rate in bit/s (one 1 s step that loops).
    pub fn fixed(bps: u64) -> Trace {
        let bps = bps.min(MAX_BPS);
        let steps = vec![Step {
            end_ns: NS_PER_SEC,
            bps,
            hold_bps: bps,
            seg: None,
        }];
        Trace {
            kind: Kind::Rate(Arc::new(RateTrace {
                steps,
                period_ns: NS_PER_SEC,
                work: u128::from(bps) * u128::from(NS_PER_SEC),
                has_segments: false,
            })),
        }
    }

    /// None when the steps last no time at all.
    pub(crate) fn from_raw_steps(raw: impl IntoIterator<Item = RawStep>) -> Option<Trace> {
        let mut steps = Vec::new();
        let mut end: u64 = 0;
        let mut work: u128 = 0;
        let mut has_segments = false;
        for s in raw {
            if s.duration_ns == 0 {
                continue;
            }
            let d = s.duration_ns.min(MAX_PERIOD_NS - end);
            if d == 0 {
                break;
            }
            let bps = s.bps.min(MAX_BPS);
            end += d;
            work += u128::from(bps) * u128::from(d);
            has_segments |= s.seg.is_some();
            steps.push(Step {
                end_ns: end,
                bps,
                hold_bps: bps,
                seg: s.seg,
            });
        }
        if steps.is_empty() {
            return None;
        }
        fill_hold(&mut steps);
        Some(Trace {
            kind: Kind::Rate(Arc::new(RateTrace {
                steps,
                period_ns: end,
                work,
                has_segments,
            })),
        })
    }

    /// None when there is no opportunity or the period is zero.
    pub(crate) fn from_opportunities(times_ms: Vec<u64>) -> Option<Trace> {
        let period_ms = *times_ms.last()?;
        if period_ms == 0 || times_ms.windows(2).any(|w| w[0] > w[1]) {
            return None;
        }
        if period_ms > MAX_PERIOD_NS / NS_PER_MS {
            return None;
        }
        Some(Trace {
            kind: Kind::Opportunities(Arc::new(OppTrace {
                times_ms,
                period_ms,
                bits_per_opp: MAHIMAHI_OPPORTUNITY_BITS,
            })),
        })
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    /// Length of one period.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.period_ns())
    }

    pub(crate) fn period_ns(&self) -> u64 {
        match &self.kind {
            Kind::Rate(r) => r.period_ns,
            Kind::Opportunities(o) => o.period_ms * NS_PER_MS,
        }
    }

    /// Capacity in bit/s at offset `t` (looping). Rate traces: the rate of the step holding `t`.
    /// Mahimahi traces: the opportunities in the 1 s window centred on `t`, times 1500 bytes.
    pub fn capacity_bps_at(&self, t: Duration) -> u64 {
        self.capacity_bps_at_ns(duration_ns(t))
    }

    pub(crate) fn capacity_bps_at_ns(&self, t: u64) -> u64 {
        match &self.kind {
            Kind::Rate(r) => r.step_at(t).bps,
            Kind::Opportunities(o) => o.window_bps(t),
        }
    }

    /// Rate a time-limited queue converts its limit with at `t`: the capacity, or during an
    /// outage the last non-zero rate before it (Mahimahi: the trace mean), so a queue still fills
    /// during an outage instead of refusing everything.
    pub(crate) fn drain_bps_at_ns(&self, t: u64) -> u64 {
        match &self.kind {
            Kind::Rate(r) => r.step_at(t).hold_bps,
            Kind::Opportunities(o) => match o.window_bps(t) {
                0 => o.mean_bps(),
                bps => bps,
            },
        }
    }

    /// Mean capacity over one period, in bit/s.
    pub fn mean_bps(&self) -> u64 {
        match &self.kind {
            Kind::Rate(r) => u64::try_from(r.work / u128::from(r.period_ns)).unwrap_or(u64::MAX),
            Kind::Opportunities(o) => o.mean_bps(),
        }
    }

    /// The same trace with every capacity multiplied by `factor` (negative or NaN: 0).
    /// Mahimahi traces keep their opportunity instants; each one carries `factor * 1500` bytes.
    pub fn scaled(&self, factor: f64) -> Trace {
        let scale = |v: u64| -> u64 {
            let x = v as f64 * factor;
            if x.is_nan() || x <= 0.0 {
                0
            } else {
                (x.round() as u64).min(MAX_BPS)
            }
        };
        match &self.kind {
            Kind::Rate(r) => {
                let mut start = 0;
                let raw = r.steps.iter().map(|s| {
                    let d = s.end_ns - start;
                    start = s.end_ns;
                    RawStep {
                        duration_ns: d,
                        bps: scale(s.bps),
                        seg: s.seg,
                    }
                });
                Trace::from_raw_steps(raw.collect::<Vec<_>>()).unwrap_or_else(|| Trace::fixed(0))
            }
            Kind::Opportunities(o) => Trace {
                kind: Kind::Opportunities(Arc::new(OppTrace {
                    times_ms: o.times_ms.clone(),
                    period_ms: o.period_ms,
                    bits_per_opp: scale(o.bits_per_opp),
                })),
            },
        }
    }

    /// OpenNetLab per-segment loss, RTT and jitter at offset `t`, when the trace carries them.
    pub fn segment_at(&self, t: Duration) -> Option<SegmentParams> {
        self.segment_at_ns(duration_ns(t))
    }

    pub(crate) fn segment_at_ns(&self, t: u64) -> Option<SegmentParams> {
        match &self.kind {
            Kind::Rate(r) if r.has_segments => r.step_at(t).seg,
            _ => None,
        }
    }

    /// True for Mahimahi (delivery-opportunity) traces.
    pub fn is_opportunity_based(&self) -> bool {
        matches!(self.kind, Kind::Opportunities(_))
    }
}

/// Sets `hold_bps` of zero-rate steps to the last non-zero rate before them, looping.
fn fill_hold(steps: &mut [Step]) {
    let mut last = steps
        .iter()
        .rev()
        .map(|s| s.bps)
        .find(|&b| b > 0)
        .unwrap_or(0);
    for s in steps {
        if s.bps > 0 {
            last = s.bps;
        }
        s.hold_bps = last;
    }
}

impl RateTrace {
    fn index_at_offset(&self, off: u64) -> usize {
        self.steps
            .partition_point(|s| s.end_ns <= off)
            .min(self.steps.len() - 1)
    }

    fn step_at(&self, t: u64) -> &Step {
        &self.steps[self.index_at_offset(t % self.period_ns)]
    }

    /// Absolute time at which `bits` bits starting at absolute time `start` have been
    /// serialized, following the rate steps exactly (no rounding until the last step, which is
    /// rounded up to the nanosecond). None when that never happens (zero capacity, or beyond
    /// `u64` nanoseconds).
    pub(crate) fn finish(&self, start: u64, bits: u64) -> Option<u64> {
        if bits == 0 {
            return Some(start);
        }
        if self.work == 0 {
            return None;
        }
        let p = self.period_ns;
        let mut need = u128::from(bits) * u128::from(NS_PER_SEC);
        let mut base = start - start % p;
        let mut i = self.index_at_offset(start % p);
        let mut t = start;
        loop {
            let step = &self.steps[i];
            let end = base.checked_add(step.end_ns)?;
            let avail = u128::from(step.bps) * u128::from(end - t);
            if step.bps > 0 && need <= avail {
                let dt = need.div_ceil(u128::from(step.bps));
                return t.checked_add(u64::try_from(dt).ok()?);
            }
            need -= avail;
            t = end;
            i += 1;
            if i == self.steps.len() {
                i = 0;
                base = end;
                if need > self.work {
                    // Skip whole periods at once so a tiny-capacity trace cannot spin.
                    let n = (need - 1) / self.work;
                    need -= n * self.work;
                    let skip = u64::try_from(n).ok()?.checked_mul(p)?;
                    base = base.checked_add(skip)?;
                    t = base;
                }
            }
        }
    }
}

impl OppTrace {
    fn period_ns(&self) -> u64 {
        self.period_ms * NS_PER_MS
    }

    pub(crate) fn bits_per_opp(&self) -> u64 {
        self.bits_per_opp
    }

    /// Number of opportunities at absolute times strictly before `t`.
    fn count_before(&self, t: u64) -> u64 {
        let p = self.period_ns();
        let loops = t / p;
        let off = t % p;
        let within = self.times_ms.partition_point(|&m| m * NS_PER_MS < off) as u64;
        // Loop k's entries equal to the period fall at (k + 1) * period: not before `t` when `t`
        // is exactly a loop start.
        let at_end = if off == 0 && loops > 0 {
            let len = self.times_ms.len();
            (len - self.times_ms.partition_point(|&m| m < self.period_ms)) as u64
        } else {
            0
        };
        loops
            .saturating_mul(self.times_ms.len() as u64)
            .saturating_add(within)
            - at_end
    }

    /// Global index (counting across loops, in time order) of the first opportunity strictly
    /// after absolute time `t`.
    pub(crate) fn first_after(&self, t: u64) -> u64 {
        self.count_before(t.saturating_add(1))
    }

    /// Absolute time of opportunity `g` (saturating).
    pub(crate) fn time_of(&self, g: u64) -> u64 {
        let len = self.times_ms.len() as u64;
        let ms = (g / len)
            .saturating_mul(self.period_ms)
            .saturating_add(self.times_ms[(g % len) as usize]);
        ms.saturating_mul(NS_PER_MS)
    }

    fn window_bps(&self, t: u64) -> u64 {
        let half = NS_PER_SEC / 2;
        let p = self.period_ns();
        let shift = half.div_ceil(p).saturating_mul(p);
        let a = t.saturating_add(shift) - half;
        let b = a.saturating_add(NS_PER_SEC);
        (self.count_before(b) - self.count_before(a)).saturating_mul(self.bits_per_opp)
    }

    fn mean_bps(&self) -> u64 {
        let bits = u128::from(self.times_ms.len() as u64) * u128::from(self.bits_per_opp);
        u64::try_from(bits * 1000 / u128::from(self.period_ms)).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn steps_loop_and_mean() {
        let t = Trace::from_steps(&[(S, 1_000_000), (Duration::ZERO, 7), (S, 3_000_000)]);
        assert_eq!(t.duration(), 2 * S);
        assert_eq!(t.capacity_bps_at(Duration::from_millis(500)), 1_000_000);
        assert_eq!(t.capacity_bps_at(Duration::from_millis(1500)), 3_000_000);
        assert_eq!(t.capacity_bps_at(Duration::from_millis(2500)), 1_000_000);
        assert_eq!(t.mean_bps(), 2_000_000);
        assert_eq!(t.scaled(0.5).mean_bps(), 1_000_000);
        assert_eq!(t.scaled(f64::NAN).mean_bps(), 0);
        assert_eq!(t.segment_at(S), None);
    }

    #[test]
    fn empty_steps_are_an_outage() {
        let t = Trace::from_steps(&[]);
        assert_eq!(t.mean_bps(), 0);
        assert_eq!(t.duration(), S);
        let Kind::Rate(r) = t.kind() else {
            panic!("rate")
        };
        assert_eq!(r.finish(5, 100), None);
        assert_eq!(r.finish(5, 0), Some(5));
    }

    #[test]
    fn finish_crosses_steps_and_outages() {
        // 1 kbit/s for 1 s, outage 1 s, 2 kbit/s for 1 s.
        let t = Trace::from_steps(&[(S, 1000), (S, 0), (S, 2000)]);
        let Kind::Rate(r) = t.kind() else {
            panic!("rate")
        };
        let ms = |x: u64| x * NS_PER_MS;
        assert_eq!(r.finish(0, 500), Some(ms(500)));
        // 500 bits in the first step, 500 more at 2 kbit/s after the outage.
        assert_eq!(r.finish(ms(500), 1000), Some(ms(2250)));
        // A whole period is 3000 bits: 7000 bits from 0 = 2 periods + 1000 bits.
        assert_eq!(r.finish(0, 7000), Some(ms(6000 + 1000)));
        // A huge packet on a tiny trace does not spin.
        let tiny = Trace::from_steps(&[(Duration::from_nanos(1), 1)]);
        let Kind::Rate(r) = tiny.kind() else {
            panic!("rate")
        };
        assert_eq!(r.finish(0, 1), Some(NS_PER_SEC));
        assert_eq!(r.finish(0, u64::MAX), None);
    }

    #[test]
    fn hold_rate_during_outage() {
        let t = Trace::from_steps(&[(S, 0), (S, 800), (S, 0)]);
        assert_eq!(t.drain_bps_at_ns(0), 800);
        assert_eq!(t.drain_bps_at_ns(2 * NS_PER_SEC + 1), 800);
    }

    #[test]
    fn opportunities() {
        let t = Trace::from_opportunities(vec![0, 0, 5, 10]).expect("valid");
        assert_eq!(t.duration(), Duration::from_millis(10));
        assert_eq!(t.mean_bps(), 4 * 12_000 * 100);
        // 1 s window holds 100 periods of 4 opportunities.
        assert_eq!(t.capacity_bps_at(Duration::from_secs(3)), 4 * 12_000 * 100);
        let Kind::Opportunities(o) = t.kind() else {
            panic!("opp")
        };
        let ms = |x: u64| x * NS_PER_MS;
        assert_eq!(o.first_after(0), 2);
        assert_eq!(o.time_of(2), ms(5));
        assert_eq!(o.first_after(ms(5)), 3);
        assert_eq!(o.time_of(3), ms(10));
        // Loop 1 starts at 10 ms: its two 0 ms entries coincide with the 10 ms entry.
        assert_eq!(o.time_of(4), ms(10));
        assert_eq!(o.first_after(ms(10)), 6);
        assert_eq!(o.time_of(6), ms(15));
        assert_eq!(o.first_after(ms(10) - 1), 3);
        assert!(Trace::from_opportunities(vec![]).is_none());
        assert!(Trace::from_opportunities(vec![0, 0]).is_none());
        assert!(Trace::from_opportunities(vec![3, 2]).is_none());
        assert_eq!(t.scaled(0.5).mean_bps(), t.mean_bps() / 2);
    }
}
