//! Held-out links: synthetic rural links of the class kham is judged on, generated from a seed,
//! for evaluating an allocator on links it was not tuned on (`adaptation --holdout N
//! --holdout-seed S`). Change the seed between evaluations; never tune on one.
//!
//! Each link: capacity that moves between levels from about 50 kbit/s to 3 Mbit/s as a Markov
//! chain around a level typical of that link (a weak commune station stays mostly low, a town
//! mostly high), dwelling seconds to tens of seconds on each; 0-3 handover outages of 1-20 s
//! per two minutes; RTT 100-400 ms; random or bursty (Gilbert-Elliott) loss of 0-5 %.
//!
//! The same seed gives the same link forever: numbers come from `rand_pcg` (whose output is
//! fixed per seed by its reference vectors), converted to floats and ranges here rather than
//! through `rand`'s distributions, whose values may change between versions.

use std::time::Duration;

use kham_sim::netem::{LossModel, Trace};
use kham_sim::{CapacityEvent, LinkSpec, Scenario};
use rand_pcg::Pcg64Mcg;
use rand_pcg::rand_core::{Rng, SeedableRng};

/// Capacity levels of the chain, kbit/s: log-spaced from 50 kbit/s to 3 Mbit/s.
pub const LEVELS_KBPS: [u64; 8] = [50, 90, 160, 290, 520, 930, 1670, 3000];
/// Each dwell's capacity is its level times a factor in this range, so links do not share
/// exact rates.
pub const LEVEL_SPREAD: (f64, f64) = (0.85, 1.15);
/// Time on one level, log-uniform.
pub const DWELL_S: (f64, f64) = (2.0, 40.0);
/// Handover outage length, log-uniform.
pub const OUTAGE_S: (f64, f64) = (1.0, 20.0);
/// Most outages per two minutes.
pub const MAX_OUTAGES_PER_2MIN: u64 = 3;
pub const RTT_MS: (u64, u64) = (100, 400);
/// Loss rate, uniform.
pub const LOSS: (f64, f64) = (0.0, 0.05);
/// Mean burst length of bursty loss, packets.
pub const BURST: (f64, f64) = (2.0, 6.0);
pub const JITTER_MS: (u64, u64) = (2, 15);

/// One generated link and the parameters it was drawn with.
#[derive(Debug, Clone)]
pub struct HoldoutLink {
    /// `holdout-<set seed>.<index>`: with the parameters below, how to find it again.
    pub id: String,
    pub seed: u64,
    /// (duration, bit/s) steps, outages included as zero.
    pub steps: Vec<(Duration, u64)>,
    pub outages: Vec<(Duration, Duration)>,
    pub rtt: Duration,
    pub jitter: Duration,
    pub loss: f64,
    /// Mean burst length when the loss is bursty.
    pub burst: Option<f64>,
}

struct Draw(Pcg64Mcg);

impl Draw {
    /// Stream `stream` of the link `seed`: the link's parameters, its capacity chain and its
    /// outages each draw from their own stream, so a shorter link has the same RTT and loss and
    /// begins with the same capacity as a longer one of the same seed.
    fn new(seed: u64, stream: u64) -> Draw {
        Draw(Pcg64Mcg::seed_from_u64(
            seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407),
        ))
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, (lo, hi): (f64, f64)) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn log_uniform(&mut self, (lo, hi): (f64, f64)) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }

    /// Uniform integer in [lo, hi].
    fn int(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.0.next_u64() % (hi - lo + 1)
    }
}

/// The seed of link `index` of the set `set_seed`: links of one set are independent.
pub fn link_seed(set_seed: u64, index: u64) -> u64 {
    set_seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

impl HoldoutLink {
    /// Link `index` of the set `set_seed`, `secs` long.
    pub fn generate(set_seed: u64, index: u64, secs: u64) -> HoldoutLink {
        let seed = link_seed(set_seed, index);
        let total = secs as f64;
        let last = LEVELS_KBPS.len() as i64 - 1;
        let mut p = Draw::new(seed, 1);
        // The link's typical level: never the extremes, so the chain reaches both ways.
        let centre = p.int((1, last as u64 - 1)) as i64;
        let rtt = Duration::from_millis(p.int(RTT_MS));
        let jitter = Duration::from_millis(p.int(JITTER_MS));
        let loss = p.uniform(LOSS);
        let burst = (p.unit() < 0.5).then(|| p.uniform(BURST));
        let mut d = Draw::new(seed, 2);
        let mut level = centre;
        let mut steps: Vec<(f64, f64, u64)> = Vec::new();
        let mut t = 0.0;
        while t < total {
            let dwell = d.log_uniform(DWELL_S).min(total - t);
            let bps = LEVELS_KBPS[level as usize] as f64 * 1000.0 * d.uniform(LEVEL_SPREAD);
            steps.push((t, t + dwell, bps as u64));
            t += dwell;
            // One or two levels up or down, pulled back towards the typical level.
            let r = d.unit();
            let mut step = match r {
                r if r < 0.15 => -2,
                r if r < 0.5 => -1,
                r if r < 0.85 => 1,
                _ => 2,
            };
            if (level + step - centre).abs() > 3 {
                step = -step;
            }
            level = (level + step).clamp(0, last);
        }
        // Handover outages, apart from each other and from the first and last 10 s.
        let mut d = Draw::new(seed, 3);
        let max = (MAX_OUTAGES_PER_2MIN * secs).div_ceil(120);
        let count = d.int((0, max));
        let mut outages: Vec<(f64, f64)> = Vec::new();
        for _ in 0..count {
            let len = d.log_uniform(OUTAGE_S);
            let room = total - 20.0 - len;
            if room <= 0.0 {
                continue;
            }
            let start = 10.0 + d.uniform((0.0, room));
            let clear = outages
                .iter()
                .all(|&(s, e)| start + len + 5.0 < s || start > e + 5.0);
            if clear {
                outages.push((start, start + len));
            }
        }
        outages.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ms = |s: f64| Duration::from_millis((s * 1000.0).round() as u64);
        let outages: Vec<(Duration, Duration)> =
            outages.iter().map(|&(s, e)| (ms(s), ms(e))).collect();
        HoldoutLink {
            id: format!("holdout-{set_seed}.{index}"),
            seed,
            steps: cut(&steps, &outages, ms),
            outages,
            rtt,
            jitter,
            loss,
            burst,
        }
    }

    /// Mean capacity over the link, bit/s.
    pub fn mean_bps(&self) -> u64 {
        let (work, time) = self.steps.iter().fold((0.0, 0.0), |(w, t), &(d, bps)| {
            (w + d.as_secs_f64() * bps as f64, t + d.as_secs_f64())
        });
        (work / f64::max(time, 1e-9)) as u64
    }

    /// The link's name in reports: its id and what it was drawn with.
    pub fn name(&self) -> String {
        let (lo, hi) = self
            .steps
            .iter()
            .map(|s| s.1)
            .filter(|&b| b > 0)
            .fold((u64::MAX, 0), |(lo, hi), b| (lo.min(b), hi.max(b)));
        let loss = match self.burst {
            Some(b) => format!("{:.1}% bursty x{b:.1}", self.loss * 100.0),
            None => format!("{:.1}% random", self.loss * 100.0),
        };
        let outages: Vec<String> = self
            .outages
            .iter()
            .map(|(s, e)| format!("{:.0}", (*e - *s).as_secs_f64()))
            .collect();
        let length: Duration = self.steps.iter().map(|s| s.0).sum();
        format!(
            "{} ({} s, {}k mean, {}-{}k, rtt {} ms, loss {loss}, outages [{}] s)",
            self.id,
            length.as_secs(),
            self.mean_bps() / 1000,
            lo / 1000,
            hi / 1000,
            self.rtt.as_millis(),
            outages.join(" ")
        )
    }

    /// The link as a one-viewer scenario of family `holdout`: outages are excluded from
    /// freezes and audio loss as in the outage family, and each one's end is a capacity return
    /// (the recovery figure).
    pub fn scenario(&self, secs: u64) -> Scenario {
        let loss = match self.burst {
            Some(b) => LossModel::bursty(self.loss, b),
            None => LossModel::Random { p: self.loss },
        };
        let mut link = LinkSpec::trace(Trace::from_steps(&self.steps), self.rtt).with_loss(loss);
        link.jitter = self.jitter;
        let mut sc = Scenario::single(&self.name(), "holdout", Duration::from_secs(secs), link);
        sc.outages = self.outages.clone();
        sc.events = self
            .outages
            .iter()
            .map(|&(_, end)| CapacityEvent::Return { at: end })
            .collect();
        sc
    }
}

/// Capacity steps with the outage windows cut in at zero, as (duration, bit/s).
fn cut(
    steps: &[(f64, f64, u64)],
    outages: &[(Duration, Duration)],
    ms: impl Fn(f64) -> Duration,
) -> Vec<(Duration, u64)> {
    // Boundaries of both, in ms, then the rate in force on each piece.
    let mut cuts: Vec<Duration> = steps.iter().flat_map(|&(s, e, _)| [ms(s), ms(e)]).collect();
    cuts.extend(outages.iter().flat_map(|&(s, e)| [s, e]));
    cuts.sort();
    cuts.dedup();
    let rate_at = |t: Duration| -> u64 {
        if outages.iter().any(|&(s, e)| t >= s && t < e) {
            return 0;
        }
        steps
            .iter()
            .find(|&&(s, e, _)| t >= ms(s) && t < ms(e))
            .map_or(0, |s| s.2)
    };
    let mut out: Vec<(Duration, u64)> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let bps = rate_at(a);
        match out.last_mut() {
            Some(last) if last.1 == bps => last.0 += b - a,
            _ => out.push((b - a, bps)),
        }
    }
    out
}

/// `n` held-out scenarios of the set `set_seed`, `secs` long each.
pub fn holdout(n: u64, set_seed: u64, secs: u64) -> Vec<Scenario> {
    (0..n)
        .map(|k| HoldoutLink::generate(set_seed, k, secs).scenario(secs))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_one_link() {
        let a = HoldoutLink::generate(7, 3, 120);
        let b = HoldoutLink::generate(7, 3, 120);
        assert_eq!(a.steps, b.steps);
        assert_eq!(a.name(), b.name());
        assert!(a.name().starts_with("holdout-7.3 (120 s, "), "{}", a.name());
        // Another index or another set is another link.
        assert_ne!(a.steps, HoldoutLink::generate(7, 4, 120).steps);
        assert_ne!(a.steps, HoldoutLink::generate(8, 3, 120).steps);
        // A shorter one of the same seed: same RTT and loss, the same capacity at the start.
        let short = HoldoutLink::generate(7, 3, 60);
        assert_eq!(
            (short.rtt, short.loss, short.burst),
            (a.rtt, a.loss, a.burst)
        );
        let (long, shorter) = (Trace::from_steps(&a.steps), Trace::from_steps(&short.steps));
        let outage = |l: &HoldoutLink, t: Duration| l.outages.iter().any(|&(s, e)| t >= s && t < e);
        for t in (0..60).map(Duration::from_secs) {
            if !outage(&a, t) && !outage(&short, t) {
                assert_eq!(long.capacity_bps_at(t), shorter.capacity_bps_at(t), "{t:?}");
            }
        }
        assert!(
            short.name().starts_with("holdout-7.3 (60 s, "),
            "{}",
            short.name()
        );
    }

    #[test]
    fn parameters_stay_in_the_rural_range() {
        let (lo, hi) = (
            (LEVELS_KBPS[0] as f64 * 1000.0 * LEVEL_SPREAD.0) as u64,
            (LEVELS_KBPS[7] as f64 * 1000.0 * LEVEL_SPREAD.1) as u64,
        );
        let (mut bursty, mut with_outage, mut means) = (0, 0, Vec::new());
        for k in 0..200 {
            let l = HoldoutLink::generate(1, k, 120);
            let total: Duration = l.steps.iter().map(|s| s.0).sum();
            assert_eq!(total, Duration::from_secs(120), "{}", l.name());
            for &(_, bps) in &l.steps {
                assert!(
                    bps == 0 || (lo..=hi).contains(&bps),
                    "{bps} in {}",
                    l.name()
                );
            }
            assert!(l.outages.len() as u64 <= MAX_OUTAGES_PER_2MIN);
            for &(s, e) in &l.outages {
                let len = (e - s).as_secs_f64();
                assert!((0.999..=20.001).contains(&len), "{}", l.name());
                assert!(s >= Duration::from_secs(10) && e <= Duration::from_secs(110));
                // The trace is at zero exactly there.
                let trace = Trace::from_steps(&l.steps);
                let mid = s + (e - s) / 2;
                assert_eq!(trace.capacity_bps_at(mid), 0);
                assert!(trace.capacity_bps_at(e + Duration::from_millis(1)) > 0);
            }
            with_outage += usize::from(!l.outages.is_empty());
            let rtt = l.rtt.as_millis() as u64;
            assert!((RTT_MS.0..=RTT_MS.1).contains(&rtt));
            assert!((LOSS.0..=LOSS.1).contains(&l.loss));
            bursty += usize::from(l.burst.is_some());
            means.push(l.mean_bps());
        }
        // Both loss kinds, links with and without outages, weak and strong links.
        assert!((50..150).contains(&bursty), "{bursty} bursty of 200");
        assert!(
            (50..=190).contains(&with_outage),
            "{with_outage} with outages"
        );
        assert!(means.iter().any(|&m| m < 300_000) && means.iter().any(|&m| m > 1_000_000));
    }

    #[test]
    fn dwell_times_are_seconds_to_tens_of_seconds() {
        let l = HoldoutLink::generate(2, 0, 600);
        // Steps between outages come from dwells of 2-40 s (merged when a level repeats, cut
        // by an outage or the end).
        let longest = l.steps.iter().map(|s| s.0).max().unwrap();
        assert!(longest <= Duration::from_millis(40_001), "{longest:?}");
        assert!(
            l.steps.len() >= 600 / 40,
            "{} steps in 600 s",
            l.steps.len()
        );
    }

    #[test]
    fn a_scenario_excludes_its_outages_and_measures_recovery_after_each() {
        let l = (0..50)
            .map(|k| HoldoutLink::generate(3, k, 120))
            .find(|l| !l.outages.is_empty())
            .expect("a link with an outage");
        let sc = l.scenario(120);
        assert_eq!(sc.family, "holdout");
        assert_eq!(sc.outages, l.outages);
        assert_eq!(sc.events.len(), l.outages.len());
        assert_eq!(sc.viewers[0].down.delay * 2, l.rtt);
    }
}
