//! A small seeded mutator for `cargo test`: deterministic, no coverage feedback (that is what
//! libFuzzer in `fuzz/` adds). From the saved inputs of a target it makes new ones by flipping,
//! inserting, deleting, repeating and splicing bytes, and by writing "interesting" values
//! (0, 0xff, 0x7f, 0x80, lengths) where parsers read lengths and flags.

/// xorshift64*: only to make inputs, not for anything secret.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

const INTERESTING: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, 0x0a, 0x3a, 0x22, 0x2c, 0x10];

/// A new input from `seeds` (empty seeds: random bytes), at most `max_len` long.
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut v = if seeds.is_empty() {
        (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect()
    } else {
        seeds[rng.below(seeds.len())].clone()
    };
    for _ in 0..=rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                v.insert(i, rng.next_u64() as u8);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(len - i) + 1;
                v.drain(i..i + n.min(8));
            }
            3 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            4 if len > 0 => {
                // Repeat a piece (deep nesting, long lists).
                let i = rng.below(len);
                let n = (rng.below(len - i) + 1).min(32);
                let piece = v[i..i + n].to_vec();
                for _ in 0..rng.below(8) + 1 {
                    v.splice(i..i, piece.iter().copied());
                }
            }
            5 if !seeds.is_empty() => {
                // Splice the tail of another input.
                let other = &seeds[rng.below(seeds.len())];
                let i = rng.below(len + 1);
                let j = rng.below(other.len() + 1);
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            _ if len > 0 => {
                v.truncate(rng.below(len));
            }
            _ => v.push(rng.next_u64() as u8),
        }
    }
    v.truncate(max_len);
    v
}
