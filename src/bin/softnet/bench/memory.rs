//! The memory-read ceiling of `softnet bench`: how fast one thread, and all of them
//! together, read a buffer as large as a model's weights, measured in the same run as the
//! FMA ceiling. One image through the CNN reads every weight once (fc1 alone holds 12.8 MB
//! of them), so its time is bounded below by its bytes over this rate as well as by its
//! FLOPs over the FMA ceiling.

use std::time::Instant;

use softnet::kernels::simd::{dispatch, Simd, SimdKernel};

/// Passes over the buffer per sample, after one untimed pass that brings it into whatever
/// cache holds it (as the weights are between one image and the next).
const PASSES: usize = 8;

/// Sums `data` at the kernels' SIMD level with independent chains, so the loads, not the
/// additions, set the pace.
struct ReadSum<'a> {
    data: &'a [f32],
}

impl SimdKernel for ReadSum<'_> {
    type Output = f32;

    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> f32 {
        // Two halves read side by side: two streams for the hardware prefetchers, as a
        // product's packed panels give them.
        let half = self.data.len() / 2 / 128 * 128;
        let (first, second) = self.data.split_at(half);
        let mut acc = [s.zero(); 16];
        for (a, b) in first.chunks_exact(128).zip(second.chunks_exact(128)) {
            for (i, (x, y)) in a.chunks_exact(16).zip(b.chunks_exact(16)).enumerate() {
                acc[i] = s.add(acc[i], s.load(x));
                acc[8 + i] = s.add(acc[8 + i], s.load(y));
            }
        }
        let tail: f32 = second[half.min(second.len())..].iter().sum();
        acc.iter()
            .fold(tail, |sum, &a| sum + s.to_array(a).iter().sum::<f32>())
    }
}

/// GB/s (1e9 bytes a second) at which `threads` threads together read a buffer of `bytes`
/// bytes, each its own contiguous share, [`PASSES`] times; three samples, each with threads
/// of its own.
pub fn read_samples(bytes: usize, threads: usize) -> Vec<f64> {
    let threads = threads.max(1);
    let data: Vec<f32> = (0..bytes.div_ceil(4)).map(|i| (i % 7) as f32).collect();
    let share = data.len().div_ceil(threads);
    let read = |part: &[f32]| {
        let mut sum = dispatch(ReadSum { data: part });
        for _ in 0..PASSES {
            sum += dispatch(ReadSum {
                data: std::hint::black_box(part),
            });
        }
        sum
    };
    (0..3)
        .map(|_| {
            // Each thread times its own passes (the first untimed), so thread start-up is
            // not counted; the slowest thread sets the rate.
            let seconds = std::thread::scope(|s| {
                let workers: Vec<_> = data
                    .chunks(share)
                    .map(|part| {
                        s.spawn(move || {
                            std::hint::black_box(dispatch(ReadSum { data: part }));
                            let started = Instant::now();
                            std::hint::black_box(read(part));
                            started.elapsed().as_secs_f64()
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().expect("the read loop does not panic"))
                    .fold(0.0, f64::max)
            });
            // `read` makes PASSES + 1 passes.
            ((PASSES + 1) * data.len() * 4) as f64 / seconds / 1e9
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sum_reads_every_value() {
        let data: Vec<f32> = (0..1000).map(|i| (i % 5) as f32).collect();
        let want: f32 = data.iter().sum();
        assert_eq!(dispatch(ReadSum { data: &data }), want);
    }

    #[test]
    fn a_rate_is_positive_and_finite() {
        for rate in read_samples(1 << 16, 2) {
            assert!(rate.is_finite() && rate > 0.0, "{rate}");
        }
    }
}
