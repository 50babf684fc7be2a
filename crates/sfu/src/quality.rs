//! A participant's connection quality in four words, for operators: a pure function of the
//! figures str0m measures (loss, round-trip time) and whether media flows at all.
//!
//! Deliberately simple and honest: no figure, no verdict ([`score`] returns `None`). The
//! adaptation work extends [`QualityInput`] with the bandwidth estimate and audio-only state.

use std::time::Duration;

/// Connection quality, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quality {
    Excellent,
    Good,
    Poor,
    /// No media connection, or nothing arrived for several seconds.
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
}

/// Loss below which (and RTT below which) a call is excellent / good. Above the good limits it
/// is poor: speech starts breaking up and video freezes.
const EXCELLENT_LOSS: f32 = 0.02;
const GOOD_LOSS: f32 = 0.05;
const EXCELLENT_RTT: Duration = Duration::from_millis(200);
const GOOD_RTT: Duration = Duration::from_millis(400);

/// The verdict; `None` when connected but nothing has been measured yet.
pub fn score(i: QualityInput) -> Option<Quality> {
    if !i.connected || i.silent {
        return Some(Quality::Lost);
    }
    let by_loss = i.loss.map(|l| {
        if l < EXCELLENT_LOSS {
            Quality::Excellent
        } else if l < GOOD_LOSS {
            Quality::Good
        } else {
            Quality::Poor
        }
    });
    let by_rtt = i.rtt.map(|r| {
        if r < EXCELLENT_RTT {
            Quality::Excellent
        } else if r < GOOD_RTT {
            Quality::Good
        } else {
            Quality::Poor
        }
    });
    // The worse of the two figures that exist.
    match (by_loss, by_rtt) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
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
        })
    }

    #[test]
    fn no_figures_no_verdict() {
        assert_eq!(q(None, None), None);
    }

    #[test]
    fn not_connected_or_silent_is_lost() {
        let mut i = QualityInput {
            connected: false,
            silent: false,
            loss: Some(0.0),
            rtt: None,
        };
        assert_eq!(score(i), Some(Quality::Lost));
        i.connected = true;
        i.silent = true;
        assert_eq!(score(i), Some(Quality::Lost));
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
    fn ordering_is_best_first() {
        assert!(Quality::Excellent < Quality::Good);
        assert!(Quality::Poor < Quality::Lost);
        assert_eq!(Quality::Poor.as_str(), "poor");
    }
}
