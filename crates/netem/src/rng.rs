//! The link's random numbers: xoshiro256++ seeded through SplitMix64.
//!
//! Hand-written (about thirty lines) rather than taken from `rand`: the output stream is fixed
//! by this file alone, so a seed recorded in a scenario reproduces the same losses and jitter
//! after any dependency upgrade, and the crate stays dependency-light. Not cryptographic.

/// SplitMix64 step: expands one `u64` seed into well-mixed state words.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++ (Blackman and Vigna, 2019).
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// One independent stream per `(seed, stream)`: the link draws loss and jitter from separate
    /// streams so the sequence of each does not depend on how calls interleave.
    pub(crate) fn new(seed: u64, stream: u64) -> Rng {
        let mut sm = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    #[cfg(test)]
    fn from_state(s: [u64; 4]) -> Rng {
        Rng { s }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = self.s;
        let result = s0.wrapping_add(s3).rotate_left(23).wrapping_add(s0);
        let t = s1 << 17;
        let s2 = s2 ^ s0;
        let s3 = s3 ^ s1;
        let s1 = s1 ^ s2;
        let s0 = s0 ^ s3;
        let s2 = s2 ^ t;
        let s3 = s3.rotate_left(45);
        self.s = [s0, s1, s2, s3];
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (clamped to `[0, 1]`; NaN counts as 0).
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        if p.is_nan() || p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        self.next_f64() < p
    }

    /// Uniform in `[0, n]` (inclusive), by widening multiplication (bias below 2^-64 * n).
    pub(crate) fn up_to(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let span = u128::from(n) + 1;
        ((u128::from(self.next_u64()) * span) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro256plusplus_reference_outputs() {
        // Reference implementation (xoshiro256plusplus.c) from state {1, 2, 3, 4}.
        let mut r = Rng::from_state([1, 2, 3, 4]);
        assert_eq!(r.next_u64(), 41_943_041);
        assert_eq!(r.next_u64(), 58_720_359);
        assert_eq!(r.next_u64(), 3_588_806_011_781_223);
    }

    #[test]
    fn streams_and_seeds_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(1, 0).next_u64()).collect();
        let mut x = Rng::new(1, 0);
        let mut y = Rng::new(1, 1);
        let mut z = Rng::new(2, 0);
        let (vx, vy, vz) = (x.next_u64(), y.next_u64(), z.next_u64());
        assert_eq!(a[0], vx);
        assert_ne!(vx, vy);
        assert_ne!(vx, vz);
    }

    #[test]
    fn ranges() {
        let mut r = Rng::new(7, 0);
        for _ in 0..10_000 {
            let f = r.next_f64();
            assert!((0.0..1.0).contains(&f));
            assert!(r.up_to(5) <= 5);
        }
        assert!(!r.chance(f64::NAN));
        assert!(!r.chance(0.0));
        assert!(r.chance(1.0));
        assert_eq!(r.up_to(0), 0);
        let _ = r.up_to(u64::MAX);
    }
}
