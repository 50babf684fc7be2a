//! An outage is not congestion. When a subscriber's link goes dead for a moment (a handover, a
//! dead zone), nothing comes back from it; when the link returns it flushes the packets it held,
//! late, and the first transport feedback reports the packets lost in the gap. GoogCC reads both
//! as congestion and cuts its estimate, and the allocator would then step the video down on a link
//! that is as good as before: in the simulator, after a 2 s outage of a 1 Mbit/s link the
//! unsmoothed estimate fell from 972 to 628 kbit/s 0.2 s after the link came back, 720p stepped
//! down to 360p at 1.6 s, and the picture took 6-8 s (median of 20 seeds) to come back.
//!
//! So while the feedback is missing, and for a moment after it is back, the estimator's readings
//! are not the link's: the allocator does not step down on them ([`FeedbackGap::is_open`]), and
//! once the feedback has flowed normally for [`SETTLE`] the estimator is started again from the
//! estimate it had before the gap ([`FeedbackGap::restart_due`]). Its initial probes measure the
//! link at once: a link that really became thinner (a handover to a weaker cell) shows in them,
//! and the allocator steps down on that as on any collapse.
//!
//! Only datagram arrival times are read: a subscriber that receives video sends transport
//! feedback every 50-100 ms, and receiver reports alone (what comes while nothing arrives) are
//! 0.4-1 s apart.

use std::time::{Duration, Instant};

/// Nothing heard from a subscriber for this long while video flows to it: a gap opens.
pub const GAP: Duration = Duration::from_millis(500);
/// While a gap is open, a silence this long still belongs to it (receiver reports during a
/// longer outage)...
const STILL_QUIET: Duration = Duration::from_millis(250);
/// ...and it closes once datagrams have come at the usual pace for this long: the link's flush
/// and the feedback about it are over.
pub const SETTLE: Duration = Duration::from_millis(600);

/// One subscriber's feedback gaps.
#[derive(Debug, Default)]
pub struct FeedbackGap {
    heard_at: Option<Instant>,
    open: Option<Open>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    estimate_before: u64,
    close_at: Instant,
}

impl FeedbackGap {
    /// A datagram arrived from the subscriber at `now` (every datagram: two stores, and while a
    /// gap is open a comparison). A gap is opened by the allocation ([`Self::silent`]).
    pub fn heard(&mut self, now: Instant) {
        if let (Some(o), Some(h)) = (&mut self.open, self.heard_at)
            && now.saturating_duration_since(h) >= STILL_QUIET
        {
            o.close_at = now + SETTLE;
        }
        self.heard_at = Some(now);
    }

    /// At `now`, with no datagram since: true when the silence has reached [`GAP`] and no gap
    /// is open (the caller then opens one if video flows). Checked at every allocation, so a
    /// gap opens half a second into an outage, not at the first report that ends its silence.
    pub fn silent(&self, now: Instant) -> bool {
        self.open.is_none()
            && self
                .heard_at
                .is_some_and(|h| now.saturating_duration_since(h) >= GAP)
    }

    /// Opens a gap at `now`; `estimate_bps` is the estimate from before it.
    pub fn open(&mut self, now: Instant, estimate_bps: u64) {
        self.open = Some(Open {
            estimate_before: estimate_bps,
            close_at: now + SETTLE,
        });
    }

    /// A gap is open: the estimator's readings are the gap's.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Once per gap, when it has closed: the estimate to start the estimator again from. Not
    /// while the subscriber is still silent (the receiver reports of a long outage).
    pub fn restart_due(&mut self, now: Instant) -> Option<u64> {
        let o = self.open?;
        let flowing = self
            .heard_at
            .is_some_and(|h| now.saturating_duration_since(h) < STILL_QUIET);
        if now < o.close_at || !flowing {
            return None;
        }
        self.open = None;
        Some(o.estimate_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silence_opens_a_gap_that_closes_after_the_feedback_settles() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut g = FeedbackGap::default();
        // Feedback every 80 ms: no gap.
        for ms in (0..2000).step_by(80) {
            g.heard(at(ms));
            assert!(!g.silent(at(ms + 40)), "{ms}");
        }
        // A 2 s outage with receiver reports in it.
        assert!(!g.silent(at(2000)));
        assert!(g.silent(at(2420)), "half a second without a datagram");
        g.open(at(2420), 900_000);
        assert!(g.is_open());
        g.heard(at(2900));
        assert!(!g.silent(at(3600)), "open already: no second gap");
        g.heard(at(3900));
        assert_eq!(g.restart_due(at(4000)), None);
        // Long after that report, with nothing heard since: still the outage.
        assert_eq!(g.restart_due(at(4000 + 600)), None);
        // Feedback again from 4.7 s at the usual pace: closed 600 ms after it resumed.
        for ms in (4700..5300).step_by(80) {
            g.heard(at(ms));
            assert_eq!(g.restart_due(at(ms)), None, "{ms}");
        }
        g.heard(at(5340));
        assert_eq!(g.restart_due(at(5340)), Some(900_000));
        assert!(!g.is_open());
        assert_eq!(g.restart_due(at(5400)), None, "once");
    }

    #[test]
    fn nothing_heard_yet_is_no_silence() {
        let g = FeedbackGap::default();
        assert!(!g.silent(Instant::now()));
    }
}
