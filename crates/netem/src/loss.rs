//! Random packet loss: none, independent (Bernoulli) or bursty (Gilbert-Elliott).

use crate::rng::Rng;

/// How packets are lost on the wire. Probabilities outside `[0, 1]` are clamped, NaN counts as 0.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LossModel {
    /// No random loss.
    #[default]
    None,
    /// Each packet is lost independently with probability `p`.
    Random {
        /// Loss probability per packet.
        p: f64,
    },
    /// Two-state Markov chain (Gilbert-Elliott): a good and a bad state, each with its own loss
    /// probability. The state moves once per packet, after the packet's fate is drawn.
    GilbertElliott {
        /// Probability of moving from good to bad after a packet.
        p_good_to_bad: f64,
        /// Probability of moving from bad to good after a packet (1 / mean bad-state length).
        p_bad_to_good: f64,
        /// Loss probability in the good state.
        loss_good: f64,
        /// Loss probability in the bad state.
        loss_bad: f64,
    },
}

impl LossModel {
    /// Gilbert-Elliott model with long-run loss rate `mean_loss` in bursts of `mean_burst_len`
    /// consecutive packets on average (`loss_bad = 1`, `loss_good = 0`, so bursts are exactly
    /// the bad-state sojourns: geometric with mean `1 / p_bad_to_good`).
    ///
    /// `mean_burst_len` below 1 (or NaN) is taken as 1; `mean_loss` is clamped to `[0, 1]`. With
    /// bursts of length `L` the highest reachable loss is `L / (L + 1)` (at least one good packet
    /// between bursts): larger values give that maximum.
    pub fn bursty(mean_loss: f64, mean_burst_len: f64) -> LossModel {
        let burst = if mean_burst_len.is_nan() || mean_burst_len < 1.0 {
            1.0
        } else {
            mean_burst_len
        };
        let m = if mean_loss.is_nan() {
            0.0
        } else {
            mean_loss.clamp(0.0, 1.0)
        };
        let r = 1.0 / burst;
        // Stationary P(bad) = p / (p + r) = m  =>  p = r m / (1 - m).
        let p = if m >= 1.0 {
            1.0
        } else {
            (r * m / (1.0 - m)).min(1.0)
        };
        LossModel::GilbertElliott {
            p_good_to_bad: p,
            p_bad_to_good: r,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// Long-run loss probability of the model (stationary distribution for Gilbert-Elliott).
    pub fn mean_loss(&self) -> f64 {
        match *self {
            LossModel::None => 0.0,
            LossModel::Random { p } => clamp01(p),
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let (p, r) = (clamp01(p_good_to_bad), clamp01(p_bad_to_good));
                let bad = if p + r > 0.0 { p / (p + r) } else { 0.0 };
                bad * clamp01(loss_bad) + (1.0 - bad) * clamp01(loss_good)
            }
        }
    }
}

fn clamp01(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

/// Per-link state of a loss model (the Gilbert-Elliott chain's current state).
#[derive(Debug, Clone, Default)]
pub(crate) struct LossState {
    bad: bool,
}

impl LossState {
    /// Draws whether the next packet is lost and moves the chain.
    pub(crate) fn lose(&mut self, model: &LossModel, rng: &mut Rng) -> bool {
        match *model {
            LossModel::None => false,
            LossModel::Random { p } => rng.chance(p),
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let lost = rng.chance(if self.bad { loss_bad } else { loss_good });
                let flip = rng.chance(if self.bad {
                    p_bad_to_good
                } else {
                    p_good_to_bad
                });
                self.bad ^= flip;
                lost
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursty_parameters() {
        let LossModel::GilbertElliott {
            p_good_to_bad,
            p_bad_to_good,
            loss_good,
            loss_bad,
        } = LossModel::bursty(0.05, 4.0)
        else {
            panic!("not Gilbert-Elliott");
        };
        assert!((p_bad_to_good - 0.25).abs() < 1e-12);
        assert!((p_good_to_bad / (p_good_to_bad + p_bad_to_good) - 0.05).abs() < 1e-12);
        assert_eq!((loss_good, loss_bad), (0.0, 1.0));
        assert!((LossModel::bursty(0.05, 4.0).mean_loss() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn bursty_degenerate_inputs() {
        for (m, l) in [
            (f64::NAN, f64::NAN),
            (-1.0, 0.0),
            (2.0, 3.0),
            (1.0, 1.0),
            (0.0, f64::INFINITY),
        ] {
            let model = LossModel::bursty(m, l);
            let mean = model.mean_loss();
            assert!((0.0..=1.0).contains(&mean), "{m} {l} -> {mean}");
        }
        assert_eq!(LossModel::bursty(0.0, 3.0).mean_loss(), 0.0);
    }
}
