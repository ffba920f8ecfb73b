//! Histograms in TensorFlow's bucket layout.
//!
//! TensorFlow's default buckets (`tensorflow/core/lib/histogram/histogram.cc`) have limits
//! `-DBL_MAX, -1e20.., ..., -1e-12, 0, 1e-12, ..., ~1e20, DBL_MAX`: magnitudes start at 1e-12
//! and grow by 10% up to 1e20. Runs of empty buckets are collapsed into one empty bucket whose
//! limit is that of the run's last bucket, as TensorFlow's `EncodeToProto` does, so every bucket
//! keeps its true left edge (the previous limit) when TensorBoard draws it.

use super::proto::HistogramProto;
use std::sync::OnceLock;

/// The default bucket limits, increasing; the last one is `f64::MAX`.
pub fn default_bucket_limits() -> &'static [f64] {
    static LIMITS: OnceLock<Vec<f64>> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let mut positive = Vec::new();
        let mut v = 1.0e-12;
        while v < 1.0e20 {
            positive.push(v);
            v *= 1.1;
        }
        positive.push(f64::MAX);
        let mut limits: Vec<f64> = positive.iter().rev().map(|&v| -v).collect();
        limits.push(0.0);
        limits.extend_from_slice(&positive);
        limits
    })
}

/// `log2(1e-12)`.
const LOG2_1E_MINUS_12: f64 = -39.863_137_138_648_35;
/// `1 / log2(1.1)`: buckets per doubling.
const STEPS_PER_OCTAVE: f64 = 7.272_540_897_341_713;

/// Index of the bucket that counts `value`: the first limit `>= value`, so bucket `i` holds
/// `(limits[i-1], limits[i]]`. Values beyond `±f64::MAX` (infinities) go to the end buckets.
///
/// `limits` must be [`default_bucket_limits`]. The index is guessed from the float's exponent
/// (the limits grow by 1.1) and then corrected against the limits themselves, so the result is
/// exactly the binary search's, at a fraction of its cost (a test checks both agree).
pub fn bucket_index(limits: &[f64], value: f64) -> usize {
    let zero = limits.len() / 2; // index of the 0.0 limit
    let magnitude = value.abs();
    let guess = if magnitude > 1e-12 && magnitude.is_finite() {
        // log2 from the float's bits (exponent + mantissa as a linear fraction, off by less
        // than 0.09), in steps of 1.1 above 1e-12: within a step or two of the right bucket.
        let bits = magnitude.to_bits();
        let exponent = (bits >> 52) as f64 - 1023.0;
        let fraction = (bits & ((1u64 << 52) - 1)) as f64 / (1u64 << 52) as f64;
        let steps = ((exponent + fraction - LOG2_1E_MINUS_12) * STEPS_PER_OCTAVE).min(zero as f64);
        let steps = steps as usize;
        if value > 0.0 {
            zero + 1 + steps
        } else {
            zero.saturating_sub(1 + steps)
        }
    } else if value > 0.0 && magnitude.is_finite() {
        zero + 1
    } else if value.is_infinite() && value > 0.0 {
        limits.len() - 1
    } else if value.is_infinite() {
        0
    } else {
        zero
    };
    let mut i = guess.min(limits.len() - 1);
    while i > 0 && limits[i - 1] >= value {
        i -= 1;
    }
    while i + 1 < limits.len() && limits[i] < value {
        i += 1;
    }
    i
}

/// Builds the histogram of `values` with TensorFlow's default buckets.
///
/// `min`, `max`, `sum` and `sum_squares` are accumulated in f64. NaNs are skipped (they fall in
/// no bucket), so `num` counts the other values.
pub fn histogram(values: &[f32]) -> HistogramProto {
    let limits = default_bucket_limits();
    let mut counts = vec![0.0f64; limits.len()];
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut num, mut sum, mut sum_squares) = (0.0f64, 0.0f64, 0.0f64);
    for &v in values {
        let v = f64::from(v);
        if v.is_nan() {
            continue;
        }
        counts[bucket_index(limits, v)] += 1.0;
        min = min.min(v);
        max = max.max(v);
        num += 1.0;
        sum += v;
        sum_squares += v * v;
    }
    if num == 0.0 {
        // TensorFlow always writes at least one bucket; an empty histogram reads as 0..0.
        return HistogramProto {
            bucket_limit: vec![f64::MAX],
            bucket: vec![0.0],
            ..Default::default()
        };
    }
    let (bucket_limit, bucket) = collapse_empty_runs(limits, &counts);
    HistogramProto {
        min,
        max,
        num,
        sum,
        sum_squares,
        bucket_limit,
        bucket,
    }
}

/// Keeps non-empty buckets and replaces each run of empty buckets by one empty bucket with the
/// limit of the run's last bucket.
fn collapse_empty_runs(limits: &[f64], counts: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (mut out_limits, mut out_counts) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < counts.len() {
        let mut end = i;
        if counts[i] == 0.0 {
            while end + 1 < counts.len() && counts[end + 1] == 0.0 {
                end += 1;
            }
        }
        out_limits.push(limits[end]);
        out_counts.push(counts[end]);
        i = end + 1;
    }
    (out_limits, out_counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_layout() {
        let limits = default_bucket_limits();
        // 774 magnitudes from 1e-12 below 1e20, plus DBL_MAX, on each side, plus 0.
        assert_eq!(limits.len(), 2 * 775 + 1);
        assert_eq!(limits[0], -f64::MAX);
        assert_eq!(limits[775], 0.0);
        assert_eq!(limits[776], 1e-12);
        assert!((limits[777] - 1.1e-12).abs() < 1e-24);
        assert_eq!(limits[774], -1e-12);
        assert_eq!(*limits.last().unwrap(), f64::MAX);
        assert!(limits[limits.len() - 2] < 1e20 && limits[limits.len() - 2] > 1e20 / 1.1);
        assert!(limits.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn value_lands_in_its_bucket() {
        let limits = default_bucket_limits();
        assert_eq!(bucket_index(limits, 0.0), 775);
        assert_eq!(bucket_index(limits, 1e-12), 776); // on a limit: (prev, limit]
        assert_eq!(bucket_index(limits, 1.05e-12), 777);
        assert_eq!(bucket_index(limits, -5e-13), 775);
        assert_eq!(bucket_index(limits, f64::INFINITY), limits.len() - 1);
        assert_eq!(bucket_index(limits, f64::NEG_INFINITY), 0);
        for v in [0.5f64, -0.5, 3.0, 1e-5, -7e7] {
            let i = bucket_index(limits, v);
            assert!(limits[i - 1] < v && v <= limits[i], "{v} in bucket {i}");
        }
    }

    #[test]
    fn fast_index_equals_binary_search() {
        let limits = default_bucket_limits();
        let search = |v: f64| {
            limits
                .partition_point(|&limit| limit < v)
                .min(limits.len() - 1)
        };
        let mut values = vec![0.0, -0.0, 1e-13, -1e-13, 1e300, -1e300, f64::MAX, -f64::MAX];
        for &l in limits {
            values.extend([l, l * (1.0 + 1e-15), l * (1.0 - 1e-15), l * 1.05]);
        }
        for k in 0..20_000 {
            let x = (k as f64 * 0.618_033_988_75).fract() * 80.0 - 40.0;
            values.extend([10f64.powf(x), -(10f64.powf(x))]);
        }
        values.extend((0..1000).map(|k| f64::from(k as f32 * 0.001 - 0.5)));
        for v in values {
            assert_eq!(bucket_index(limits, v), search(v), "value {v:e}");
        }
    }

    #[test]
    fn statistics_and_counts() {
        let values = [0.5f32, -0.25, 0.5, 2.0, 0.0];
        let h = histogram(&values);
        assert_eq!(h.num, 5.0);
        assert_eq!(h.min, -0.25);
        assert_eq!(h.max, 2.0);
        assert_eq!(h.sum, 2.75);
        assert_eq!(h.sum_squares, 0.25 + 0.0625 + 0.25 + 4.0);
        assert_eq!(h.bucket.iter().sum::<f64>(), 5.0);
        assert_eq!(h.bucket.len(), h.bucket_limit.len());
        // Each value sits in the bucket whose range holds it: find 0.5's bucket (count 2).
        let i = h.bucket.iter().position(|&c| c == 2.0).unwrap();
        assert!(h.bucket_limit[i - 1] < 0.5 && 0.5 <= h.bucket_limit[i]);
        // Non-empty buckets: -0.25, 0, 0.5, 2.0; empty runs before, between and after: 5.
        assert_eq!(h.bucket.iter().filter(|&&c| c > 0.0).count(), 4);
        assert_eq!(h.bucket.len(), 9);
        // No two consecutive empty buckets remain.
        assert!(h.bucket.windows(2).all(|w| w[0] > 0.0 || w[1] > 0.0));
        assert_eq!(*h.bucket_limit.last().unwrap(), f64::MAX);
    }

    #[test]
    fn many_values_count_exactly() {
        let values: Vec<f32> = (0..7840)
            .map(|i| ((i * 37) % 1001) as f32 * 1e-3 - 0.5)
            .collect();
        let h = histogram(&values);
        assert_eq!(h.bucket.iter().sum::<f64>(), 7840.0);
        assert_eq!(h.num, 7840.0);
        assert!(h.bucket_limit.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn empty_and_nan() {
        let h = histogram(&[]);
        assert_eq!((h.num, h.min, h.max), (0.0, 0.0, 0.0));
        assert_eq!(h.bucket, vec![0.0]);
        let h = histogram(&[f32::NAN, 1.0]);
        assert_eq!((h.num, h.min, h.max, h.sum), (1.0, 1.0, 1.0, 1.0));
        assert_eq!(h.bucket.iter().sum::<f64>(), 1.0);
    }
}
