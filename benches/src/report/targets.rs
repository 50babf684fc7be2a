//! Issue 12's simulator targets, judged per scenario (and subscriber) against the baselines of
//! the same run, on the medians over seeds:
//!
//! - frozen time at most the `lowest_layer` baseline's + 0.5 point (time without moving video:
//!   freezes plus deliberate pauses, as the browser benchmark counts it);
//! - mean height at least 1.3 x the lowest layer's wherever the link's mean capacity is
//!   600 kbit/s or more;
//! - utilisation at least 75 %;
//! - recovery within 6 s of capacity returning, where the scenario has a return;
//! - no audio gap where the lowest-layer baseline has none.
//!
//! A target that does not apply to a scenario is left out of its verdict and of the counts.

use std::fmt::Write as _;

use kham_sim::ConfigName;

use super::aggregate::Aggregate;

pub const FROZEN_MARGIN_POINTS: f64 = 0.5;
pub const HEIGHT_FACTOR: f64 = 1.3;
pub const HEIGHT_MIN_CAPACITY_KBPS: f64 = 600.0;
pub const UTILISATION_MIN_PCT: f64 = 75.0;
pub const RECOVERY_MAX_S: f64 = 6.0;

/// The family of steady thin links (issue 14: audio down to 48 kbit/s).
pub const AUDIO_FAMILY: &str = "audio";

/// Issue 14's simulator targets on one thin-link scenario (kham's medians): audio loss after
/// repair under 1 % from 64 kbit/s and under 3 % at 48 kbit/s, no audio gap and a p95 audio
/// delay under 400 ms from 48 kbit/s. A line per scenario, "met" or what missed; links under
/// 48 kbit/s have no target and are reported only.
pub fn audio_targets(aggregates: &[Aggregate<'_>]) -> Vec<String> {
    aggregates
        .iter()
        .filter(|a| a.config == ConfigName::Kham && a.family == AUDIO_FAMILY)
        .map(|a| {
            let capacity = a.median("mean_capacity_kbps").unwrap_or(0.0);
            let loss = a.median("audio_loss_after_repair_pct").unwrap_or(100.0);
            let gaps = a.median("audio_gaps").unwrap_or(f64::INFINITY);
            let delay = a.median("p95_audio_delay_ms").unwrap_or(f64::INFINITY);
            let mut missed = Vec::new();
            if capacity < 47.5 {
                return format!("{}: no target below 48 kbit/s (loss {loss:.1} %, {gaps} gaps, p95 delay {delay:.0} ms)", a.subject);
            }
            let max_loss = if capacity >= 63.5 { 1.0 } else { 3.0 };
            if loss >= max_loss {
                missed.push(format!("audio loss {loss:.1} % (target < {max_loss} %)"));
            }
            if gaps > 0.0 {
                missed.push(format!("{gaps} audio gaps (target 0)"));
            }
            if delay >= 400.0 {
                missed.push(format!("p95 audio delay {delay:.0} ms (target < 400)"));
            }
            if missed.is_empty() {
                format!("{}: met (loss {loss:.1} %, no gap, p95 delay {delay:.0} ms)", a.subject)
            } else {
                format!("{}: NOT met: {}", a.subject, missed.join(", "))
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Frozen,
    Height,
    Utilisation,
    Recovery,
    AudioGaps,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Frozen,
        Target::Height,
        Target::Utilisation,
        Target::Recovery,
        Target::AudioGaps,
    ];

    /// Key in the JSON and label in tables.
    pub fn key(self) -> &'static str {
        match self {
            Target::Frozen => "frozen",
            Target::Height => "height",
            Target::Utilisation => "utilisation",
            Target::Recovery => "recovery",
            Target::AudioGaps => "audio_gaps",
        }
    }

    /// Whether kham's value must be at most the bound (else at least).
    fn at_most(self) -> bool {
        matches!(self, Target::Frozen | Target::Recovery | Target::AudioGaps)
    }
}

/// One target judged on one scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Check {
    pub target: Target,
    /// kham's median.
    pub value: f64,
    /// The bound it is held to (from the baseline where the target says so).
    pub bound: f64,
    pub met: bool,
}

impl Check {
    fn new(target: Target, value: f64, bound: f64) -> Check {
        // A tiny tolerance so a figure printed equal to its bound counts as meeting it.
        let met = if target.at_most() {
            value <= bound + 1e-9
        } else {
            value + 1e-9 >= bound
        };
        Check {
            target,
            value,
            bound,
            met,
        }
    }
}

/// The targets that apply to one scenario (and subscriber), judged.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub subject: String,
    pub family: String,
    pub subscriber: String,
    pub checks: Vec<Check>,
}

impl Verdict {
    pub fn all_met(&self) -> bool {
        self.checks.iter().all(|c| c.met)
    }

    pub fn check(&self, target: Target) -> Option<&Check> {
        self.checks.iter().find(|c| c.target == target)
    }

    /// `frozen yes, height no, ...` over the targets that apply.
    pub fn text(&self) -> String {
        let parts: Vec<String> = self
            .checks
            .iter()
            .map(|c| format!("{} {}", c.target.key(), if c.met { "yes" } else { "no" }))
            .collect();
        parts.join(", ")
    }
}

/// A verdict for every scenario (and subscriber) that has a `kham` aggregate.
pub fn verdicts(aggregates: &[Aggregate<'_>]) -> Vec<Verdict> {
    aggregates
        .iter()
        // The thin links of issue 14 are judged on audio alone (`audio_targets`).
        .filter(|a| a.config == ConfigName::Kham && a.family != AUDIO_FAMILY)
        .map(|kham| {
            let lowest = aggregates
                .iter()
                .find(|a| a.config == ConfigName::LowestLayer && a.subject == kham.subject);
            let base = |key: &str| lowest.and_then(|l| l.median(key));
            let mut checks = Vec::new();
            // Paused video counts as frozen here: pausing must not pass for not freezing.
            if let (Some(k), Some(b)) = (
                kham.median("frozen_or_paused_pct"),
                base("frozen_or_paused_pct"),
            ) {
                checks.push(Check::new(Target::Frozen, k, b + FROZEN_MARGIN_POINTS));
            }
            let capacity = kham.median("mean_capacity_kbps").unwrap_or(0.0);
            if capacity >= HEIGHT_MIN_CAPACITY_KBPS
                && let (Some(k), Some(b)) = (kham.median("mean_height"), base("mean_height"))
            {
                checks.push(Check::new(Target::Height, k, b * HEIGHT_FACTOR));
            }
            if let Some(k) = kham.median("utilisation_pct") {
                checks.push(Check::new(Target::Utilisation, k, UTILISATION_MIN_PCT));
            }
            if let Some(k) = kham.median("recovery_s") {
                checks.push(Check::new(Target::Recovery, k, RECOVERY_MAX_S));
            }
            if base("audio_gaps") == Some(0.0)
                && let Some(k) = kham.median("audio_gaps")
            {
                checks.push(Check::new(Target::AudioGaps, k, 0.0));
            }
            Verdict {
                subject: kham.subject.clone(),
                family: kham.family.clone(),
                subscriber: kham.subscriber.clone(),
                checks,
            }
        })
        .collect()
}

/// How many scenarios met each target and all of them, in one family or overall.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    /// The family, or `all` for the overall tally.
    pub family: String,
    /// (met, applicable) per target, in [`Target::ALL`] order.
    pub per_target: [(usize, usize); 5],
    /// Scenarios that met every target that applies to them, of all scenarios.
    pub all: (usize, usize),
}

impl Tally {
    fn of<'a>(family: &str, verdicts: impl Iterator<Item = &'a Verdict>) -> Tally {
        let mut t = Tally {
            family: family.to_owned(),
            per_target: [(0, 0); 5],
            all: (0, 0),
        };
        for v in verdicts {
            for c in &v.checks {
                if let Some(i) = Target::ALL.iter().position(|x| *x == c.target) {
                    t.per_target[i].1 += 1;
                    t.per_target[i].0 += usize::from(c.met);
                }
            }
            t.all.1 += 1;
            t.all.0 += usize::from(v.all_met());
        }
        t
    }

    /// `met on X of Y (frozen a/b, height c/d, ...)`.
    pub fn text(&self) -> String {
        let mut s = format!("met on {} of {}", self.all.0, self.all.1);
        let parts: Vec<String> = Target::ALL
            .iter()
            .zip(self.per_target)
            .filter(|(_, (_, of))| *of > 0)
            .map(|(t, (met, of))| format!("{} {met}/{of}", t.key()))
            .collect();
        if !parts.is_empty() {
            let _ = write!(s, " ({})", parts.join(", "));
        }
        s
    }
}

/// One tally per family in first-seen order, then the overall one.
pub fn tallies(verdicts: &[Verdict]) -> (Vec<Tally>, Tally) {
    let mut families: Vec<&str> = Vec::new();
    for v in verdicts {
        if !families.contains(&v.family.as_str()) {
            families.push(&v.family);
        }
    }
    let per = families
        .iter()
        .map(|f| Tally::of(f, verdicts.iter().filter(|v| v.family == *f)))
        .collect();
    (per, Tally::of("all", verdicts.iter()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::aggregate::aggregate;
    use crate::report::fixture;

    #[test]
    fn judges_kham_against_the_lowest_layer_of_the_same_scenario() {
        let mut results = fixture::results();
        for r in &mut results {
            match (r.scenario.as_str(), r.config) {
                // steps_drop: kham froze 0.4 points more than the lowest layer (met), at
                // 1.25 x its height (not met, capacity 1000 kbit/s), utilisation 87.3 (met),
                // recovery 7 s (not met).
                ("steps_drop", ConfigName::Kham) => {
                    r.metrics.frozen_or_paused_pct = 1.4;
                    r.metrics.mean_height = 225.0;
                    r.metrics.recovery_s = Some(7.0);
                }
                ("steps_drop", ConfigName::LowestLayer) => {
                    r.metrics.frozen_or_paused_pct = 1.0;
                    r.metrics.mean_height = 180.0;
                    r.metrics.audio_gaps = 0;
                }
                // strong_weak/weak: frozen 0.6 points more (not met); a link under 600 kbit/s
                // has no height target; the lowest layer has audio gaps, so no audio target.
                ("strong_weak", ConfigName::Kham) => {
                    // Frozen 0.2 but paused the rest: frozen or paused counts.
                    r.metrics.frozen_time_pct = 0.2;
                    r.metrics.frozen_or_paused_pct = 1.6;
                    r.metrics.mean_capacity_kbps = 400.0;
                }
                ("strong_weak", ConfigName::LowestLayer) => r.metrics.frozen_or_paused_pct = 1.0,
                _ => {}
            }
            if r.config == ConfigName::Kham && r.scenario == "steps_drop" {
                r.metrics.audio_gaps = 0;
            }
        }
        let aggs = aggregate(&results);
        let v = verdicts(&aggs);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].text(),
            "frozen yes, height no, utilisation yes, recovery no, audio_gaps yes"
        );
        let h = v[0].check(Target::Height).unwrap();
        assert!((h.bound - 234.0).abs() < 1e-9 && !h.met);
        assert_eq!(v[1].subject, "strong_weak/weak");
        assert_eq!(v[1].text(), "frozen no, utilisation yes");
        assert!(!v[0].all_met() && !v[1].all_met());
        let (per, all) = tallies(&v);
        assert_eq!(per.len(), 2);
        assert_eq!(per[0].family, "steps");
        assert_eq!(all.all, (0, 2));
        assert_eq!(all.per_target[0], (1, 2));
        assert_eq!(
            all.text(),
            "met on 0 of 2 (frozen 1/2, height 0/1, utilisation 2/2, recovery 0/1, audio_gaps 1/1)"
        );
    }

    #[test]
    fn a_scenario_without_a_baseline_is_judged_on_absolute_targets_only() {
        let results: Vec<_> = fixture::results()
            .into_iter()
            .filter(|r| r.config == ConfigName::Kham)
            .collect();
        let v = verdicts(&aggregate(&results));
        assert_eq!(v[0].text(), "utilisation yes");
        assert!(v[0].all_met());
    }
}
