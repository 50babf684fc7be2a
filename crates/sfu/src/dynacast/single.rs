//! A video sent as one encoding (a screen share; a client without simulcast) follows its
//! weakest viewer: its `maxBitrate` is capped to what the weakest subscriber showing it can
//! receive with every temporal layer ([`super::floor_fit`] of its budget), as an SFU passes the
//! lowest receiver estimate back to a non-simulcast sender (REMB in Janus and mediasoup).
//!
//! Why: with no lower encoding to forward, the subscriber gets what the encoder sends or
//! nothing. Chromium's screen-share encoder refines a still, detailed picture at 0.5-1.1 Mbit/s
//! for the first 5-6 s after every keyframe before it settles near 100 kbit/s (measured on the
//! test's 720p film, 2026-12-06). Behind a 300 kbit/s link that burst paused the share (and the
//! camera with it), the lowest layer's remembered cost kept it paused, and the resume's keyframe
//! started the burst again: shared as the doctor joined, the doctor's first share frame came
//! 17-21 s after its tile in every run (`tests/browser/screen-share.test.mjs`, `SHARE_AT_JOIN=1`),
//! 7-18 s capped. Capped, the encoder spreads the same refinement over the link's rate, as a
//! direct call's encoder would.
//!
//! The cut is made at once (a lower `maxBitrate` costs no keyframe); a raise waits as the
//! simulcast caps do ([`super::RAISE_AFTER`], [`super::RAISE_CHANGE`]). The encoding is never
//! stopped from here: a share nobody can afford is paused per subscriber by the allocator.

use std::time::Instant;

use kham_proto::LayerActive;

use super::{CAP_CHANGE, RAISE_AFTER, RAISE_CHANGE, RESEND_AFTER, Want, max_bps};
use crate::track::TrackIn;

/// A single encoding is never capped below this: a 720p still picture at 50 kbit/s still
/// refines to full quality within seconds (a lower cap mostly slows that).
pub const SINGLE_MIN_BPS: u64 = 50_000;

/// The cap a single encoding should have for `wants` (`None`: the client's default).
fn wanted_cap(track: &TrackIn, wants: &[Want]) -> Option<u64> {
    let weakest = wants
        .iter()
        .filter(|w| w.floor_bps != u64::MAX)
        .map(|w| w.floor_bps)
        .min()?;
    let cap = weakest.max(SINGLE_MIN_BPS);
    (cap < max_bps(track.sizes[0], 0)).then_some(cap)
}

/// The message for a single-encoding video, when its cap must change.
pub(super) fn decide(
    now: Instant,
    track: &mut TrackIn,
    wants: &[Want],
) -> Option<Vec<LayerActive>> {
    let wanted = wanted_cap(track, wants);
    let d = &mut track.dynacast;
    let sent = d.sent[0].max_bitrate.map(u64::from);
    // Sent only on a change, so `sent_at` is the last change. A raise waits RAISE_AFTER after
    // it: a link that dips and recovers within seconds does not move the encoder twice.
    let since = |wait| {
        d.sent_at
            .is_none_or(|t| now.saturating_duration_since(t) >= wait)
    };
    let (raise_due, resend_due) = (since(RAISE_AFTER), since(RESEND_AFTER));
    let next = match (sent, wanted) {
        // Nobody showing it can say what it carries (no estimate yet, or no viewer): as it is.
        (_, None) if wants.iter().all(|w| w.floor_bps == u64::MAX) => sent,
        (None, Some(w)) => Some(w),
        (Some(s), Some(w)) if (w as f64) < s as f64 / (1.0 + CAP_CHANGE) && resend_due => Some(w),
        (Some(s), Some(w)) if w as f64 > s as f64 * (1.0 + RAISE_CHANGE) && raise_due => Some(w),
        (Some(_), None) if raise_due => None,
        _ => sent,
    };
    if next == sent {
        return None;
    }
    d.sent[0].max_bitrate = next.map(|b| b.min(u64::from(u32::MAX)) as u32);
    d.sent_at = Some(now);
    Some(vec![LayerActive {
        // The encoding has no rid: the client applies "" to its only encoding.
        rid: String::new(),
        active: true,
        max_bitrate: d.sent[0].max_bitrate,
        max_framerate: None,
        scale_resolution_down_by: None,
    }])
}

/// What a capped single encoding would send uncapped, for the estimator's `desired`
/// (`kham_bwe::TrackInput::unshaped_bps`): half again its cap, so the estimator probes above
/// the cap and the cap can be raised (not the resolution's maximum: a share's refinement is a
/// burst, and probing a 300 kbit/s link towards 2.5 Mbit/s for it would only queue the audio).
pub(super) fn unshaped_bps(track: &TrackIn) -> Option<u64> {
    let cap = track.dynacast.sent[0].max_bitrate?;
    Some(u64::from(cap) * 3 / 2)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use str0m::media::{MediaKind, Mid};

    fn share() -> TrackIn {
        let mut t = TrackIn::new(Mid::from("3"), MediaKind::Video, Vec::new());
        t.sizes[0] = Some((1280, 720));
        t
    }

    fn viewer(up_budget_bps: u64) -> Want {
        Want {
            max_spatial: 0,
            budget_bps: up_budget_bps,
            peak_bps: up_budget_bps,
            floor_bps: super::super::floor_fit(up_budget_bps),
            at_floor: true,
            on_layer: Some(0),
        }
    }

    fn cap_of(msg: &Option<Vec<LayerActive>>) -> Option<Option<u32>> {
        msg.as_ref().map(|m| {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].rid, "");
            assert!(m[0].active, "a single encoding is never stopped");
            m[0].max_bitrate
        })
    }

    #[test]
    fn a_single_encoding_follows_its_weakest_viewer_cut_at_once_raised_rarely() {
        let t0 = Instant::now();
        let mut t = share();
        // A 300 kbit/s doctor and a strong observer: the weakest decides, at once.
        let first = decide(t0, &mut t, &[viewer(5_000_000), viewer(230_000)]);
        let cap = cap_of(&first)
            .flatten()
            .expect("capped for the weak viewer");
        assert_eq!(u64::from(cap), super::super::floor_fit(230_000));
        assert_eq!(unshaped_bps(&t), Some(u64::from(cap) * 3 / 2));
        // Nothing to say while it holds.
        assert_eq!(
            decide(t0 + Duration::from_secs(1), &mut t, &[viewer(230_000)]),
            None
        );
        // A raise waits for RAISE_AFTER after the last change...
        let up = [viewer(600_000)];
        assert_eq!(decide(t0 + Duration::from_secs(2), &mut t, &up), None);
        let raised = decide(t0 + RAISE_AFTER, &mut t, &up);
        assert_eq!(
            cap_of(&raised).flatten().map(u64::from),
            Some(super::super::floor_fit(600_000))
        );
        // ...a cut does not (beyond the one-second resend spacing).
        let cut = decide(
            t0 + RAISE_AFTER + Duration::from_secs(1),
            &mut t,
            &[viewer(120_000)],
        );
        assert_eq!(
            cap_of(&cut).flatten().map(u64::from),
            Some(super::super::floor_fit(120_000))
        );
        // Every viewer strong again: the cap is lifted once a raise is due.
        let strong = [viewer(10_000_000)];
        assert_eq!(
            decide(t0 + RAISE_AFTER + Duration::from_secs(2), &mut t, &strong),
            None
        );
        assert_eq!(
            decide(t0 + RAISE_AFTER * 2, &mut t, &strong),
            None,
            "8 s after the cut"
        );
        let lifted = decide(
            t0 + RAISE_AFTER * 2 + Duration::from_secs(1),
            &mut t,
            &strong,
        );
        assert_eq!(cap_of(&lifted), Some(None));
        assert_eq!(unshaped_bps(&t), None);
    }

    #[test]
    fn a_thin_viewer_caps_no_lower_than_the_minimum_and_an_unknown_one_not_at_all() {
        let t0 = Instant::now();
        let mut t = share();
        let unknown = Want {
            floor_bps: u64::MAX,
            budget_bps: u64::MAX,
            peak_bps: u64::MAX,
            ..viewer(0)
        };
        assert_eq!(
            decide(t0, &mut t, &[unknown]),
            None,
            "no estimate yet: as it is"
        );
        assert_eq!(decide(t0, &mut t, &[]), None, "nobody shows it: as it is");
        let thin = decide(t0, &mut t, &[viewer(20_000), unknown]);
        assert_eq!(cap_of(&thin).flatten().map(u64::from), Some(SINGLE_MIN_BPS));
    }
}
