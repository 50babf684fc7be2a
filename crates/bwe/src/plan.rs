//! The stateless, budget-monotone plan: which layer of each video fits a budget.

use crate::input::{Kind, Priority, TrackInput};
use crate::layer::Layer;

/// Layers chosen for a budget.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Per input video track, in input order: (key, layer or `None` for paused, bitrate).
    pub video: Vec<(u32, Option<Layer>, u64)>,
    /// Sum of the chosen video bitrates.
    pub video_bps: u64,
    /// What the next step not bought would add (`None` when everything is bought).
    pub next_step_bps: Option<u64>,
    /// What buying every step would cost: the most video this subscriber can use.
    pub full_bps: u64,
}

impl Plan {
    /// The layer chosen for a track.
    pub fn layer_of(&self, key: u32) -> Option<Layer> {
        self.video
            .iter()
            .find(|(k, _, _)| *k == key)
            .and_then(|(_, l, _)| *l)
    }
}

/// Whether a track takes part in video allocation at all.
pub(crate) fn wants_video(t: &TrackInput, audio_only: bool) -> bool {
    t.kind != Kind::Audio && t.visible && !audio_only
}

fn effective_priority(t: &TrackInput) -> Priority {
    if t.kind == Kind::Screen {
        Priority::Share
    } else {
        t.priority
    }
}

/// Buys the longest prefix of the fixed step order that fits `budget_bps` of video:
/// first the lowest layer of every video in priority order (a lower-priority video gets nothing
/// while a higher one is paused), then upgrades one layer at a time, round-robin among videos of
/// the same priority, higher priorities first. Stopping at the first step that does not fit
/// (rather than skipping it) is what makes the plan monotone in the budget.
pub fn plan(tracks: &[TrackInput], audio_only: bool, budget_bps: u64) -> Plan {
    let mut order: Vec<usize> = (0..tracks.len())
        .filter(|&i| wants_video(&tracks[i], audio_only))
        .collect();
    order.sort_by_key(|&i| (effective_priority(&tracks[i]), tracks[i].key));
    let ladders: Vec<Vec<(Layer, u64)>> = order
        .iter()
        .map(|&i| {
            let mut v = Vec::new();
            tracks[i].ladder(&mut v);
            v
        })
        .collect();

    // Steps as (position in `order`, ladder index), in buying order.
    let mut steps: Vec<(usize, usize)> = Vec::new();
    for (pos, ladder) in ladders.iter().enumerate() {
        if !ladder.is_empty() {
            steps.push((pos, 0));
        }
    }
    let mut pos = 0;
    while pos < order.len() {
        let class = effective_priority(&tracks[order[pos]]);
        let end = (pos..order.len())
            .find(|&p| effective_priority(&tracks[order[p]]) != class)
            .unwrap_or(order.len());
        let mut level = 1;
        loop {
            let mut any = false;
            for (p, ladder) in ladders.iter().enumerate().take(end).skip(pos) {
                if level < ladder.len() {
                    steps.push((p, level));
                    any = true;
                }
            }
            if !any {
                break;
            }
            level += 1;
        }
        pos = end;
    }

    let step_cost = |&(p, l): &(usize, usize)| -> u64 {
        let ladder = &ladders[p];
        let prev = if l == 0 { 0 } else { ladder[l - 1].1 };
        ladder[l].1.saturating_sub(prev)
    };
    let full_bps = steps.iter().map(step_cost).sum();
    let mut chosen: Vec<Option<usize>> = vec![None; order.len()];
    let mut spent = 0u64;
    let mut next_step_bps = None;
    for step in &steps {
        let cost = step_cost(step);
        if spent + cost > budget_bps {
            next_step_bps = Some(cost);
            break;
        }
        spent += cost;
        chosen[step.0] = Some(step.1);
    }

    let mut video = Vec::new();
    for (i, t) in tracks.iter().enumerate() {
        if t.kind == Kind::Audio {
            continue;
        }
        let entry = order
            .iter()
            .position(|&o| o == i)
            .and_then(|p| chosen[p].map(|l| ladders[p][l]));
        match entry {
            Some((layer, bps)) => video.push((t.key, Some(layer), bps)),
            None => video.push((t.key, None, 0)),
        }
    }
    Plan {
        video,
        video_bps: spent,
        next_step_bps,
        full_bps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::LayerRates;

    pub(crate) fn sim_rates() -> LayerRates {
        LayerRates::from_bps([
            [60_000, 90_000, 150_000],
            [200_000, 300_000, 500_000],
            [600_000, 900_000, 1_500_000],
        ])
    }

    fn video(key: u32, priority: Priority) -> TrackInput {
        TrackInput {
            key,
            kind: Kind::Video,
            priority,
            rates: sim_rates(),
            max_spatial: 2,
            visible: true,
            unshaped_bps: None,
            lowest_cap_bps: None,
        }
    }

    #[test]
    fn lowest_layers_for_everyone_before_any_upgrade() {
        let tracks = [video(1, Priority::Featured), video(2, Priority::Other)];
        let p = plan(&tracks, false, 130_000);
        assert_eq!(p.layer_of(1), Some(Layer::new(0, 0)));
        assert_eq!(p.layer_of(2), Some(Layer::new(0, 0)));
        assert_eq!(p.video_bps, 120_000);
        assert_eq!(p.next_step_bps, Some(30_000));
    }

    #[test]
    fn featured_video_is_upgraded_first_and_lower_priority_waits() {
        let tracks = [video(2, Priority::Other), video(1, Priority::Featured)];
        // 60k for the other video's lowest layer, 600k for the featured one's (2, 0).
        let p = plan(&tracks, false, 700_000);
        assert_eq!(p.layer_of(1), Some(Layer::new(2, 0)));
        assert_eq!(p.layer_of(2), Some(Layer::new(0, 0)));
        // Too little for one video: the featured one gets it, the other is paused.
        let p = plan(&tracks, false, 100_000);
        assert_eq!(p.layer_of(1), Some(Layer::new(0, 0)));
        assert_eq!(p.layer_of(2), None);
    }

    #[test]
    fn screen_share_beats_the_featured_camera() {
        let mut share = video(9, Priority::Other);
        share.kind = Kind::Screen;
        let tracks = [video(1, Priority::Featured), share];
        let p = plan(&tracks, false, 70_000);
        assert_eq!(p.layer_of(9), Some(Layer::LOWEST));
        assert_eq!(p.layer_of(1), None);
    }

    #[test]
    fn hidden_tiles_audio_only_and_tile_size_limit_layers() {
        let mut small = video(1, Priority::Featured);
        small.max_spatial = 0;
        let mut hidden = video(2, Priority::Featured);
        hidden.visible = false;
        let p = plan(&[small, hidden], false, 10_000_000);
        assert_eq!(p.layer_of(1), Some(Layer::new(0, 2)));
        assert_eq!(p.layer_of(2), None);
        assert_eq!(p.full_bps, 150_000);
        let p = plan(&[video(1, Priority::Featured)], true, 10_000_000);
        assert_eq!(p.layer_of(1), None);
        assert_eq!(p.video_bps, 0);
    }
}
