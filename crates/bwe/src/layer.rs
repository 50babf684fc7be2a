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

/// Measured bitrate of each layer, cumulative over temporal layers: `bps[s][t]` is what the
/// subscriber receives when forwarded spatial layer `s` with temporal layers `0..=t`.
/// Zero means the layer is not flowing (or has no such temporal layer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerRates {
    pub bps: [[u64; MAX_TEMPORAL]; MAX_SPATIAL],
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

    /// The available layers at or below `max_spatial`, lowest first, keeping only those that
    /// cost more than the one before (a measured rate that dips below a lower layer's would
    /// make an "upgrade" that saves bits, which the plan must not contain).
    pub fn ladder(&self, max_spatial: u8, out: &mut Vec<(Layer, u64)>) {
        out.clear();
        let top = usize::from(max_spatial).min(MAX_SPATIAL - 1);
        for s in 0..=top {
            for t in 0..MAX_TEMPORAL {
                let layer = Layer::new(s as u8, t as u8);
                if let Some(bps) = self.get(layer)
                    && out.last().is_none_or(|&(_, prev)| bps > prev)
                {
                    out.push((layer, bps));
                }
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
        let rates = LayerRates {
            bps: [
                [60_000, 90_000, 150_000],
                [0, 0, 0],
                [600_000, 550_000, 1_500_000],
            ],
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
}
