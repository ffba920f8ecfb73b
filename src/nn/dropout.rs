//! Dropout: during training each unit is kept with probability `1 - rate` and scaled by
//! `1 / (1 - rate)` (TensorFlow's `nn.dropout`), dropped (zero) otherwise; the identity at
//! evaluation and inference.
//!
//! Each keep/drop bit is a pure function of `(seed, update, example, layer, unit)`: a
//! counter-based hash (SplitMix64's finaliser over the mixed key), not a stream drawn in
//! order. A unit's bit does not depend on which shard or thread computes it, so training
//! with dropout gives the same weights on any number of threads, and a resumed run draws the
//! masks the uninterrupted one would have.

/// What a training pass's dropout masks are keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropoutKey {
    /// The run's seed.
    pub seed: u64,
    /// The update number (0 for the first update of a run).
    pub step: u64,
    /// The index in the batch of the pass's first row (a shard's place in its batch).
    pub first_row: usize,
}

/// SplitMix64's finaliser: a bijection of `u64` whose every output bit depends on every
/// input bit.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The golden-ratio increment SplitMix64 steps its counter by.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The hash of one row's key; its units' bits are `mix(row_key + unit · GAMMA)`.
fn row_key(key: &DropoutKey, layer: usize, row: usize) -> u64 {
    let example = (key.first_row + row) as u64;
    let mut h = mix(key.seed ^ GAMMA);
    h = mix(h ^ key.step.wrapping_mul(GAMMA));
    h = mix(h ^ (layer as u64).wrapping_add(1).wrapping_mul(GAMMA));
    mix(h ^ example.wrapping_add(1).wrapping_mul(GAMMA))
}

/// Whether the unit with hash `h` is kept: its top 53 bits, as a number in `[0, 1)`, fall
/// below `keep`.
#[inline]
fn kept(h: u64, keep_threshold: u64) -> bool {
    (h >> 11) < keep_threshold
}

/// `keep · 2^53`: [`kept`]'s threshold for a drop probability `rate`.
fn threshold(rate: f32) -> u64 {
    ((1.0 - f64::from(rate)) * (1u64 << 53) as f64) as u64
}

/// Forward in training: `x[rows, units]` (in place) becomes `x · m` with the multiplier
/// `m[rows, units]` (written) `1 / (1 - rate)` for kept units and 0 for dropped ones.
/// `layer` tells two dropout layers of one network apart.
pub fn forward_train(
    key: &DropoutKey,
    layer: usize,
    rate: f32,
    rows: usize,
    x: &mut [f32],
    m: &mut [f32],
) {
    let units = x.len() / rows.max(1);
    debug_assert_eq!(x.len(), rows * units);
    debug_assert_eq!(m.len(), x.len());
    let scale = 1.0 / (1.0 - rate);
    let keep = threshold(rate);
    for (r, (x, m)) in x
        .chunks_exact_mut(units)
        .zip(m.chunks_exact_mut(units))
        .enumerate()
    {
        let base = row_key(key, layer, r);
        for (u, (x, m)) in x.iter_mut().zip(m.iter_mut()).enumerate() {
            let h = mix(base.wrapping_add((u as u64).wrapping_mul(GAMMA)));
            *m = if kept(h, keep) { scale } else { 0.0 };
            *x *= *m;
        }
    }
}

/// Backward: `d[rows, units] *= m` with the multiplier [`forward_train`] wrote.
pub fn backward(d: &mut [f32], m: &[f32]) {
    debug_assert_eq!(d.len(), m.len());
    for (d, &m) in d.iter_mut().zip(m) {
        *d *= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_about_one_minus_rate_scales_them_and_is_a_function_of_the_key() {
        let (rows, units) = (40, 500);
        let key = DropoutKey {
            seed: 7,
            step: 3,
            first_row: 10,
        };
        let mut x = vec![2.0f32; rows * units];
        let mut m = vec![0.0f32; rows * units];
        forward_train(&key, 0, 0.25, rows, &mut x, &mut m);
        let kept = x.iter().filter(|&&v| v != 0.0).count();
        let share = kept as f64 / x.len() as f64;
        assert!((share - 0.75).abs() < 0.01, "kept {share}");
        assert!(x.iter().all(|&v| v == 0.0 || v == 2.0 / 0.75));
        // Rows 10.. of the batch, computed as one pass of rows 10..50 or as a pass of the
        // last 20 rows alone (another shard): the same bits.
        let tail = DropoutKey {
            first_row: 30,
            ..key
        };
        let mut x2 = vec![2.0f32; 20 * units];
        let mut m2 = vec![0.0f32; 20 * units];
        forward_train(&tail, 0, 0.25, 20, &mut x2, &mut m2);
        assert_eq!(&x[20 * units..], &x2[..]);
        // Another step, seed or layer draws another mask.
        for other in [DropoutKey { step: 4, ..key }, DropoutKey { seed: 8, ..key }] {
            let mut y = vec![2.0f32; rows * units];
            forward_train(&other, 0, 0.25, rows, &mut y, &mut m2.repeat(2));
            assert_ne!(x, y);
        }
        let mut y = vec![2.0f32; rows * units];
        forward_train(&key, 1, 0.25, rows, &mut y, &mut m2.repeat(2));
        assert_ne!(x, y);
        let mut d = vec![1.0f32; rows * units];
        backward(&mut d, &m);
        assert_eq!(d.iter().map(|v| v * 2.0).collect::<Vec<_>>(), x);
    }
}
