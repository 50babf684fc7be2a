//! A participant's connection quality in four words, shown to everyone in the room (bars next to
//! each name) and to operators: a pure function of the figures str0m measures (loss and jitter
//! in both directions, round-trip time), whether media flows at all, and whether the videos the
//! participant receives fit the link (the allocator's shortfall).
//!
//! Deliberately simple and honest: no figure, no verdict ([`score`] returns `None`); the worst
//! figure decides. A 300 kbit/s link with 3 % loss reads "good" at best on loss alone and "poor"
//! once its video runs two layers short of the tile. [`Tracker`] shows a worse verdict at once
//! and a better one only after it held for [`UPGRADE_AFTER`], so the bars do not flicker.

use std::time::{Duration, Instant};

use crate::adapt::Shortfall;

/// Connection quality, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quality {
    Excellent,
    Good,
    Poor,
    /// The media connection went silent: nothing arrived for several seconds.
    Lost,
}

impl Quality {
    /// Lower-case name, as in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Excellent => "excellent",
            Quality::Good => "good",
            Quality::Poor => "poor",
            Quality::Lost => "lost",
        }
    }
}

/// What the verdict is based on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QualityInput {
    /// ICE and DTLS are up.
    pub connected: bool,
    /// Nothing at all arrived from the participant for a few seconds.
    pub silent: bool,
    /// Worst loss fraction (0..1) of either direction, if measured.
    pub loss: Option<f32>,
    pub rtt: Option<Duration>,
    /// Worst interarrival jitter of either direction, if measured.
    pub jitter: Option<Duration>,
    /// How far the videos it receives fall short of what it shows.
    pub shortfall: Shortfall,
}

/// Loss below which (and RTT below which) a call is excellent / good. Above the good limits it
/// is poor: speech starts breaking up and video freezes.
const EXCELLENT_LOSS: f32 = 0.02;
const GOOD_LOSS: f32 = 0.05;
const EXCELLENT_RTT: Duration = Duration::from_millis(200);
const GOOD_RTT: Duration = Duration::from_millis(400);
const EXCELLENT_JITTER: Duration = Duration::from_millis(30);
const GOOD_JITTER: Duration = Duration::from_millis(100);

/// A better verdict is shown once it held this long.
pub const UPGRADE_AFTER: Duration = Duration::from_secs(3);

/// The verdict the room shows for one participant, smoothed.
#[derive(Debug, Default)]
pub struct Tracker {
    shown: Option<Quality>,
    better_since: Option<Instant>,
}

impl Tracker {
    /// Folds in a fresh verdict; returns true when the shown one changed.
    pub fn update(&mut self, now: Instant, verdict: Option<Quality>) -> bool {
        let Some(v) = verdict else {
            return false;
        };
        match self.shown {
            Some(s) if v < s => {
                let since = *self.better_since.get_or_insert(now);
                if now.saturating_duration_since(since) < UPGRADE_AFTER {
                    return false;
                }
            }
            Some(s) if v == s => {
                self.better_since = None;
                return false;
            }
            _ => {}
        }
        self.shown = Some(v);
        self.better_since = None;
        true
    }

    /// What is shown now.
    pub fn shown(&self) -> Option<Quality> {
        self.shown
    }
}

fn grade<T: PartialOrd>(v: T, excellent: T, good: T) -> Quality {
    if v < excellent {
        Quality::Excellent
    } else if v < good {
        Quality::Good
    } else {
        Quality::Poor
    }
}

/// The verdict; `None` while nothing has been measured yet, including before the media
/// connection is first up: a participant still connecting is not "lost". Judged so, the first
/// verdict was taken in the moment between joining and ICE, and the tracker's hold on better
/// verdicts kept "lost" on a clean link's newcomer for 3 s after its video was already shown
/// (Chromium, `browser-quality --clean`, observer phase).
pub fn score(i: QualityInput) -> Option<Quality> {
    if !i.connected {
        return None;
    }
    if i.silent {
        return Some(Quality::Lost);
    }
    let by_shortfall = match i.shortfall {
        Shortfall::None => None,
        Shortfall::Reduced => Some(Quality::Good),
        Shortfall::Severe => Some(Quality::Poor),
    };
    // The worst of the figures that exist; with no link figure at all there is no verdict.
    let figures = [
        i.loss.map(|l| grade(l, EXCELLENT_LOSS, GOOD_LOSS)),
        i.rtt.map(|r| grade(r, EXCELLENT_RTT, GOOD_RTT)),
        i.jitter.map(|j| grade(j, EXCELLENT_JITTER, GOOD_JITTER)),
    ];
    let link = figures.into_iter().flatten().max()?;
    Some(link.max(by_shortfall.unwrap_or(Quality::Excellent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(loss: Option<f32>, rtt_ms: Option<u64>) -> Option<Quality> {
        score(QualityInput {
            connected: true,
            silent: false,
            loss,
            rtt: rtt_ms.map(Duration::from_millis),
            ..Default::default()
        })
    }

    #[test]
    fn no_figures_no_verdict() {
        assert_eq!(q(None, None), None);
    }

    #[test]
    fn silent_is_lost_but_still_connecting_has_no_verdict() {
        let mut i = QualityInput {
            connected: false,
            silent: true,
            loss: Some(0.0),
            ..Default::default()
        };
        assert_eq!(score(i), None);
        i.connected = true;
        assert_eq!(score(i), Some(Quality::Lost));
        i.silent = false;
        assert_eq!(score(i), Some(Quality::Excellent));
    }

    #[test]
    fn worse_figure_decides() {
        assert_eq!(q(Some(0.0), Some(40)), Some(Quality::Excellent));
        assert_eq!(q(Some(0.03), Some(40)), Some(Quality::Good));
        assert_eq!(q(Some(0.0), Some(300)), Some(Quality::Good));
        assert_eq!(q(Some(0.10), Some(40)), Some(Quality::Poor));
        assert_eq!(q(Some(0.01), Some(900)), Some(Quality::Poor));
        assert_eq!(q(Some(0.01), None), Some(Quality::Excellent));
        assert_eq!(q(None, Some(450)), Some(Quality::Poor));
    }

    #[test]
    fn jitter_and_shortfall_lower_the_verdict() {
        let base = QualityInput {
            connected: true,
            loss: Some(0.0),
            rtt: Some(Duration::from_millis(40)),
            ..Default::default()
        };
        assert_eq!(score(base), Some(Quality::Excellent));
        let jittery = QualityInput {
            jitter: Some(Duration::from_millis(60)),
            ..base
        };
        assert_eq!(score(jittery), Some(Quality::Good));
        let reduced = QualityInput {
            shortfall: Shortfall::Reduced,
            ..base
        };
        assert_eq!(score(reduced), Some(Quality::Good));
        // The weak rural link of the tests: 3 % loss, video two layers short of the tile.
        let weak = QualityInput {
            loss: Some(0.03),
            rtt: Some(Duration::from_millis(300)),
            shortfall: Shortfall::Severe,
            ..base
        };
        assert_eq!(score(weak), Some(Quality::Poor));
        // A shortfall alone, without any link figure, is not a verdict yet.
        let blind = QualityInput {
            connected: true,
            shortfall: Shortfall::Severe,
            ..Default::default()
        };
        assert_eq!(score(blind), None);
    }

    #[test]
    fn tracker_shows_worse_at_once_and_better_after_a_while() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        assert!(!t.update(t0, None));
        assert!(t.update(t0, Some(Quality::Excellent)));
        assert!(t.update(t0, Some(Quality::Poor)));
        assert_eq!(t.shown(), Some(Quality::Poor));
        assert!(!t.update(t0 + Duration::from_secs(1), Some(Quality::Good)));
        assert!(!t.update(t0 + Duration::from_secs(2), Some(Quality::Excellent)));
        assert!(t.update(t0 + Duration::from_secs(4), Some(Quality::Excellent)));
        assert_eq!(t.shown(), Some(Quality::Excellent));
        // A dip back to the shown value resets the wait.
        assert!(t.update(t0 + Duration::from_secs(5), Some(Quality::Good)));
        assert!(!t.update(t0 + Duration::from_secs(6), Some(Quality::Excellent)));
        assert!(!t.update(t0 + Duration::from_secs(7), Some(Quality::Good)));
        assert!(!t.update(t0 + Duration::from_secs(8), Some(Quality::Excellent)));
    }

    #[test]
    fn ordering_is_best_first() {
        assert!(Quality::Excellent < Quality::Good);
        assert!(Quality::Poor < Quality::Lost);
        assert_eq!(Quality::Poor.as_str(), "poor");
    }
}
