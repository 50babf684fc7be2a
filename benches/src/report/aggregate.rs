//! Runs of one scenario, subscriber and configuration over several seeds, summarised as the
//! median and the spread (min-max) of each figure.

use kham_sim::{ConfigName, Metrics, RunResult};

use super::{group_by, subject};

/// One figure of a run: its JSON key, its table header, its decimals in tables, its value.
pub struct Figure {
    pub key: &'static str,
    pub header: &'static str,
    pub decimals: usize,
    pub get: fn(&Metrics) -> Option<f64>,
}

/// Every figure, in table order.
pub const FIGURES: [Figure; 16] = [
    Figure {
        key: "frozen_time_pct",
        header: "frozen time %",
        decimals: 1,
        get: |m| Some(m.frozen_time_pct),
    },
    Figure {
        key: "frozen_or_paused_pct",
        header: "frozen or paused %",
        decimals: 1,
        get: |m| Some(m.frozen_or_paused_pct),
    },
    Figure {
        key: "freezes_per_min",
        header: "freezes/min",
        decimals: 2,
        get: |m| Some(m.freezes_per_min),
    },
    Figure {
        key: "audio_gaps",
        header: "audio gaps",
        decimals: 0,
        get: |m| Some(f64::from(m.audio_gaps)),
    },
    Figure {
        key: "audio_loss_after_repair_pct",
        header: "audio loss after repair %",
        decimals: 1,
        get: |m| Some(m.audio_loss_after_repair_pct),
    },
    Figure {
        key: "p95_audio_delay_ms",
        header: "p95 audio delay ms",
        decimals: 0,
        get: |m| m.p95_audio_delay_ms,
    },
    Figure {
        key: "utilisation_pct",
        header: "utilisation %",
        decimals: 1,
        get: |m| m.utilisation_pct,
    },
    Figure {
        key: "p95_queue_delay_ms",
        header: "p95 queuing delay ms",
        decimals: 0,
        get: |m| m.p95_queue_delay_ms,
    },
    Figure {
        key: "downswitch_s",
        header: "downswitch s",
        decimals: 2,
        get: |m| m.downswitch_s,
    },
    Figure {
        key: "recovery_s",
        header: "recovery s",
        decimals: 2,
        get: |m| m.recovery_s,
    },
    Figure {
        key: "switches_per_min",
        header: "switches/min",
        decimals: 2,
        get: |m| Some(m.switches_per_min),
    },
    Figure {
        key: "audio_only_pct",
        header: "audio-only %",
        decimals: 1,
        get: |m| Some(m.audio_only_pct),
    },
    Figure {
        key: "estimate_pct",
        header: "estimate %",
        decimals: 1,
        get: |m| m.estimate_pct,
    },
    Figure {
        key: "mean_height",
        header: "mean height",
        decimals: 0,
        get: |m| Some(m.mean_height),
    },
    Figure {
        key: "mean_kbps",
        header: "mean kbit/s",
        decimals: 0,
        get: |m| Some(m.mean_kbps),
    },
    Figure {
        key: "mean_capacity_kbps",
        header: "mean capacity kbit/s",
        decimals: 0,
        get: |m| Some(m.mean_capacity_kbps),
    },
];

/// Median and range of one figure over the runs where it applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Runs the figure applied to.
    pub n: usize,
}

impl Spread {
    /// `None` when no value is finite.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// `median` alone when every run agrees (or there is one), else `median (min-max)`.
    pub fn text(&self, decimals: usize) -> String {
        let f = |x: f64| format!("{x:.decimals$}");
        if f(self.min) == f(self.max) {
            f(self.median)
        } else {
            format!("{} ({}-{})", f(self.median), f(self.min), f(self.max))
        }
    }
}

/// The runs of one scenario (and subscriber) under one configuration, one per seed.
#[derive(Debug, Clone)]
pub struct Aggregate<'a> {
    /// Scenario name, `scenario/subscriber` when the subscriber is not `viewer`.
    pub subject: String,
    pub family: String,
    pub subscriber: String,
    pub config: ConfigName,
    pub runs: Vec<&'a RunResult>,
}

impl Aggregate<'_> {
    /// Median and range of `figure` over the runs.
    pub fn spread(&self, figure: &Figure) -> Option<Spread> {
        Spread::of(self.runs.iter().filter_map(|r| (figure.get)(&r.metrics)))
    }

    /// The median of the figure with JSON key `key`.
    pub fn median(&self, key: &str) -> Option<f64> {
        let f = FIGURES.iter().find(|f| f.key == key)?;
        self.spread(f).map(|s| s.median)
    }
}

/// Groups `results` by scenario, subscriber and configuration, in first-seen order.
pub fn aggregate(results: &[RunResult]) -> Vec<Aggregate<'_>> {
    group_by(results, |r| (subject(r), r.config))
        .into_iter()
        .map(|((subject, config), runs)| Aggregate {
            subject,
            family: runs[0].family.clone(),
            subscriber: runs[0].subscriber.clone(),
            config,
            runs,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn median_and_range_ignore_missing_and_non_finite_values() {
        let s = Spread::of([3.0, 1.0, f64::NAN, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (3.0, 1.0, 10.0, 3));
        let s = Spread::of([4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(s.median, 3.0);
        assert_eq!(Spread::of([f64::INFINITY]), None);
        assert_eq!(s.text(1), "3.0 (1.0-10.0)");
        assert_eq!(Spread::of([2.0, 2.01]).unwrap().text(1), "2.0");
    }

    #[test]
    fn groups_the_seeds_of_each_scenario_subscriber_and_configuration() {
        let mut results = fixture::results();
        let mut again = fixture::results();
        for r in &mut again {
            r.seed = 2;
            r.metrics.frozen_time_pct += 2.0;
            r.metrics.recovery_s = Some(4.0);
        }
        results.extend(again);
        let groups = aggregate(&results);
        assert_eq!(groups.len(), 6);
        for g in &groups {
            assert_eq!(g.runs.len(), 2);
            let frozen = g.spread(&FIGURES[0]).unwrap();
            assert_eq!((frozen.min, frozen.max, frozen.n), (1.34, 3.34, 2));
            // Recovery known in one run of two: the median of that one.
            assert_eq!(g.median("recovery_s"), Some(4.0));
        }
        assert_eq!(groups[3].subject, "strong_weak/weak");
    }
}
