//! Adaptive stream: from how a subscriber shows a video (its `video_view` report) to the highest
//! simulcast layer worth sending it. A 320x180 tile never gets the 720p layer; a hidden tile
//! gets nothing.

use kham_proto::VideoViewSize;

use crate::track::{MAX_LAYERS, TrackIn};

/// A layer may be stretched this much on screen before the next one up is worth its bits.
const MAX_UPSCALE: f64 = 1.25;

/// Picture sizes assumed for the top layer when no keyframe has told (a 720p camera); lower
/// layers halve it, as browsers' simulcast does.
const ASSUMED_TOP: (u16, u16) = (1280, 720);

/// What a view allows: the highest spatial layer and whether to send anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewLimit {
    pub max_spatial: u8,
    pub visible: bool,
    /// The client capped the layer above what the publisher has.
    pub nonexistent_layer: bool,
}

/// The limit a view puts on a track.
pub fn limit(view: VideoViewSize, track: &TrackIn) -> ViewLimit {
    let count = usize::from(track.layer_count());
    let top = count - 1;
    let visible = view.visible && view.width > 0 && view.height > 0;
    let size = |l: usize| -> (u16, u16) {
        track.sizes[l].unwrap_or_else(|| {
            let (w, h) = track.sizes[top].unwrap_or(ASSUMED_TOP);
            let shift = (top - l) as u32;
            ((w >> shift).max(1), (h >> shift).max(1))
        })
    };
    // The smallest layer that covers the tile without stretching it more than MAX_UPSCALE
    // (object-fit: cover scales by the larger ratio).
    let fits = |l: usize| {
        let (w, h) = size(l);
        let scale =
            (f64::from(view.width) / f64::from(w)).max(f64::from(view.height) / f64::from(h));
        scale <= MAX_UPSCALE
    };
    let by_size = (0..count).find(|&l| fits(l)).unwrap_or(top);
    let (cap, nonexistent_layer) = match view.max_spatial {
        Some(m) => (usize::from(m).min(top), usize::from(m) > top),
        None => (top, false),
    };
    ViewLimit {
        max_spatial: by_size.min(cap).min(MAX_LAYERS - 1) as u8,
        visible,
        nonexistent_layer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::media::{MediaKind, Mid};

    fn track(rids: &[&str]) -> TrackIn {
        TrackIn::new(
            Mid::from("1"),
            MediaKind::Video,
            rids.iter().map(|r| (*r).into()).collect(),
        )
    }

    fn view(width: u32, height: u32) -> VideoViewSize {
        VideoViewSize {
            width,
            height,
            visible: true,
            max_spatial: None,
        }
    }

    #[test]
    fn tile_size_picks_the_smallest_layer_that_covers_it() {
        let t = track(&["q", "h", "f"]);
        assert_eq!(limit(view(320, 180), &t).max_spatial, 0);
        assert_eq!(
            limit(view(400, 225), &t).max_spatial,
            0,
            "25 % stretch is fine"
        );
        assert_eq!(limit(view(640, 360), &t).max_spatial, 1);
        assert_eq!(limit(view(1920, 1080), &t).max_spatial, 2);
        // A tall phone tile showing a landscape video with cover needs the height.
        assert_eq!(limit(view(360, 640), &t).max_spatial, 2);
    }

    #[test]
    fn measured_sizes_replace_the_assumption() {
        let mut t = track(&["q", "h", "f"]);
        t.sizes = [Some((160, 90)), Some((320, 180)), Some((640, 360))];
        assert_eq!(limit(view(320, 180), &t).max_spatial, 1);
    }

    #[test]
    fn hidden_zero_and_capped_views() {
        let t = track(&["q", "h", "f"]);
        let mut v = view(1280, 720);
        v.visible = false;
        assert!(!limit(v, &t).visible);
        assert!(!limit(view(0, 720), &t).visible);
        v = view(1280, 720);
        v.max_spatial = Some(1);
        assert_eq!(limit(v, &t).max_spatial, 1);
        v.max_spatial = Some(9);
        let l = limit(v, &t);
        assert_eq!((l.max_spatial, l.nonexistent_layer), (2, true));
        // Without simulcast there is one layer whatever the view.
        let single = track(&[]);
        let l = limit(view(7680, 4320), &single);
        assert_eq!(l.max_spatial, 0);
    }
}
