//! Layers of a video track and their measured bitrates.

/// Spatial (simulcast) layers per track.
pub const MAX_SPATIAL: usize = 3;
/// Temporal layers per spatial layer.
pub const MAX_TEMPORAL: usize = 3;

/// One selectable layer: a simulcast stream and how many of its temporal layers.
/// Ordered from lowest to highest quality (spatial first, then temporal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Layer {
    pub spatial: u8,
    pub temporal: u8,
}

impl Layer {
    pub const LOWEST: Layer = Layer {
        spatial: 0,
        temporal: 0,
    };

    pub const fn new(spatial: u8, temporal: u8) -> Self {
        Layer { spatial, temporal }
    }
}

/// Frame rate below which a layer above the lowest resolution is not worth its pixels: at
/// low rates a subscriber gets 180p at a fluid frame rate rather than 360p at 4 frames a second
/// (frame rate before resolution, as Jitsi's allocator does).
pub const MIN_UPPER_FPS: u8 = 12;

/// Measured bitrate of each layer, cumulative over temporal layers: `bps[s][t]` is what the
/// subscriber receives when forwarded spatial layer `s` with temporal layers `0..=t`.
/// Zero means the layer is not flowing (or has no such temporal layer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerRates {
    pub bps: [[u64; MAX_TEMPORAL]; MAX_SPATIAL],
    /// Frames per second of each layer, cumulative like `bps`; 0 when not measured.
    pub fps: [[u8; MAX_TEMPORAL]; MAX_SPATIAL],
}

impl LayerRates {
    /// Bitrate of one layer, `None` when it is not available.
    pub fn get(&self, layer: Layer) -> Option<u64> {
        let r = *self
            .bps
            .get(usize::from(layer.spatial))?
            .get(usize::from(layer.temporal))?;
        (r > 0).then_some(r)
    }

    /// Rates from bitrates alone (frame rates unknown).
    pub fn from_bps(bps: [[u64; MAX_TEMPORAL]; MAX_SPATIAL]) -> Self {
        LayerRates {
            bps,
            fps: [[0; MAX_TEMPORAL]; MAX_SPATIAL],
        }
    }

    /// Whether a layer is on the ladder at all: above the lowest resolution, only temporal
    /// layers with a fluid frame rate ([`MIN_UPPER_FPS`]), unless the whole spatial layer runs
    /// slower than that (a slide share) or its frame rates are unknown.
    pub(crate) fn fluid_enough(&self, layer: Layer) -> bool {
        let s = usize::from(layer.spatial);
        if s == 0 {
            return true;
        }
        let Some(fps) = self.fps.get(s) else {
            return true;
        };
        let own = fps.get(usize::from(layer.temporal)).copied().unwrap_or(0);
        let best = fps.iter().copied().max().unwrap_or(0);
        own == 0 || own >= MIN_UPPER_FPS || best < MIN_UPPER_FPS
    }

    /// The available layers at or below `max_spatial`, lowest first, keeping only those that
    /// cost more than the one before (a measured rate that dips below a lower layer's would
    /// make an "upgrade" that saves bits, which the plan must not contain) and, above the
    /// lowest resolution, only fluid ones (frame rate before resolution).
    pub fn ladder(&self, max_spatial: u8, out: &mut Vec<(Layer, u64)>) {
        out.clear();
        let top = usize::from(max_spatial).min(MAX_SPATIAL - 1);
        for s in 0..=top {
            for t in 0..MAX_TEMPORAL {
                let layer = Layer::new(s as u8, t as u8);
                if let Some(bps) = self.get(layer)
                    && self.fluid_enough(layer)
                    && out.last().is_none_or(|&(_, prev)| bps > prev)
                {
                    out.push((layer, bps));
                }
            }
        }
    }

    /// The ladder of a screen share: resolution kept, frame rate given up first. Each spatial
    /// layer at its lowest temporal layer, lowest first, then the temporal layers of the top
    /// one; no frame-rate floor (a PACS viewer or a slide is read, not watched: a sharp still
    /// frame at 2 fps is worth more than a fluid one too coarse to read). The web client sends a
    /// share as one full-resolution encoding with temporal layers (`L1T3`), where this is just
    /// its temporal layers; a publisher that simulcasts its share still gets the top resolution
    /// before any frame rate. Layers are ascending in [`Layer`]'s order and in cost, like
    /// [`LayerRates::ladder`]'s, so the plan stays monotone in the budget.
    pub fn share_ladder(&self, max_spatial: u8, out: &mut Vec<(Layer, u64)>) {
        out.clear();
        let top = usize::from(max_spatial).min(MAX_SPATIAL - 1);
        let push = |layer: Layer, out: &mut Vec<(Layer, u64)>| {
            if let Some(bps) = self.get(layer)
                && out.last().is_none_or(|&(_, prev)| bps > prev)
            {
                out.push((layer, bps));
            }
        };
        for s in 0..=top {
            push(Layer::new(s as u8, 0), out);
        }
        if let Some(&(top_layer, _)) = out.last() {
            for t in 1..MAX_TEMPORAL {
                push(Layer::new(top_layer.spatial, t as u8), out);
            }
        }
    }

    /// The highest available layer's bitrate (0 when nothing flows).
    pub fn top_bps(&self) -> u64 {
        let mut v = Vec::new();
        self.ladder(MAX_SPATIAL as u8 - 1, &mut v);
        v.last().map_or(0, |&(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_skips_missing_and_non_increasing_layers() {
        let rates = LayerRates::from_bps([
            [60_000, 90_000, 150_000],
            [0, 0, 0],
            [600_000, 550_000, 1_500_000],
        ]);
        let mut v = Vec::new();
        rates.ladder(2, &mut v);
        let layers: Vec<Layer> = v.iter().map(|&(l, _)| l).collect();
        assert_eq!(
            layers,
            vec![
                Layer::new(0, 0),
                Layer::new(0, 1),
                Layer::new(0, 2),
                Layer::new(2, 0),
                Layer::new(2, 2)
            ]
        );
        rates.ladder(0, &mut v);
        assert_eq!(v.len(), 3);
        assert_eq!(rates.top_bps(), 1_500_000);
        assert_eq!(rates.get(Layer::new(1, 0)), None);
        assert_eq!(rates.get(Layer::new(7, 0)), None);
    }

    #[test]
    fn frame_rate_before_resolution_above_the_lowest_layer() {
        let rates = LayerRates {
            bps: [
                [60_000, 90_000, 150_000],
                [200_000, 300_000, 500_000],
                [600_000, 900_000, 1_500_000],
            ],
            // A 30 fps camera: T0 7.5, T0+T1 15, all 30 frames a second.
            fps: [[7, 15, 30], [7, 15, 30], [7, 15, 30]],
        };
        let mut v = Vec::new();
        rates.ladder(2, &mut v);
        let layers: Vec<Layer> = v.iter().map(|&(l, _)| l).collect();
        assert_eq!(
            layers,
            vec![
                Layer::new(0, 0),
                Layer::new(0, 1),
                Layer::new(0, 2),
                Layer::new(1, 1),
                Layer::new(1, 2),
                Layer::new(2, 1),
                Layer::new(2, 2)
            ]
        );
        // A 15 fps camera: above 180p only the full frame rate.
        let slow = LayerRates {
            fps: [[3, 7, 15], [3, 7, 15], [3, 7, 15]],
            ..rates
        };
        slow.ladder(2, &mut v);
        let layers: Vec<Layer> = v.iter().map(|&(l, _)| l).collect();
        assert_eq!(layers[3..], [Layer::new(1, 2), Layer::new(2, 2)]);
        // A slide share at 5 fps keeps every layer.
        let slides = LayerRates {
            fps: [[1, 2, 5], [1, 2, 5], [1, 2, 5]],
            ..rates
        };
        slides.ladder(2, &mut v);
        assert_eq!(v.len(), 9);
    }

    #[test]
    fn a_share_keeps_its_resolution_and_gives_up_frame_rate_first() {
        let rates = LayerRates {
            bps: [
                [60_000, 90_000, 150_000],
                [200_000, 300_000, 500_000],
                [600_000, 900_000, 1_500_000],
            ],
            fps: [[7, 15, 30], [7, 15, 30], [7, 15, 30]],
        };
        let mut v = Vec::new();
        rates.share_ladder(2, &mut v);
        let layers: Vec<Layer> = v.iter().map(|&(l, _)| l).collect();
        // The top resolution at its lowest frame rate (7 fps, below the camera's floor) before
        // any temporal layer.
        assert_eq!(
            layers,
            vec![
                Layer::new(0, 0),
                Layer::new(1, 0),
                Layer::new(2, 0),
                Layer::new(2, 1),
                Layer::new(2, 2)
            ]
        );
        // A single full-resolution encoding with temporal layers (the web client's share).
        let single = LayerRates::from_bps([[400_000, 600_000, 900_000], [0; 3], [0; 3]]);
        single.share_ladder(2, &mut v);
        let layers: Vec<Layer> = v.iter().map(|&(l, _)| l).collect();
        assert_eq!(
            layers,
            vec![Layer::new(0, 0), Layer::new(0, 1), Layer::new(0, 2)]
        );
        // A tile that needs only 360p stops at spatial layer 1, then its frame rate.
        rates.share_ladder(1, &mut v);
        assert_eq!(v.last().map(|&(l, _)| l), Some(Layer::new(1, 2)));
        assert_eq!(v.len(), 4);
    }
}
