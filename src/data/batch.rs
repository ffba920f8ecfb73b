//! Minibatches: which examples make up each batch, and gathering them as f32 into a
//! reused buffer.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::mnist::{Rows, PIXELS};
/// Converts u8 pixels to `v / 255` in f32 (the SIMD kernel, exact as the division).
pub use crate::kernels::narrow::pixels_to_unit;

pub use crate::pixels::PIXEL_TO_UNIT;

/// The order in which training examples are visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOrder {
    /// File order: update `s` uses examples `[batch*s mod n, +batch)` (the reference runs).
    Sequential,
    /// A fresh permutation every epoch from a seeded ChaCha8 generator, as the tutorial's
    /// `next_batch` shuffles; a batch that crosses an epoch's end takes the rest of the old
    /// permutation and the start of the new one.
    Shuffle {
        /// Seed of the permutations.
        seed: u64,
    },
}

/// Hands out the indices of successive minibatches. Allocates its permutation once.
#[derive(Debug, Clone)]
pub struct Batcher {
    order: BatchOrder,
    permutation: Vec<u32>,
    epoch: u64,
    position: usize,
}

impl Batcher {
    /// A batcher over `examples` examples.
    ///
    /// # Panics
    /// If `examples` is 0 or does not fit in u32.
    pub fn new(examples: usize, order: BatchOrder) -> Self {
        assert!(examples > 0, "cannot draw batches from an empty dataset");
        let examples = u32::try_from(examples).expect("at most 2^32 examples");
        let mut batcher = Batcher {
            order,
            permutation: (0..examples).collect(),
            epoch: 0,
            position: 0,
        };
        batcher.permute();
        batcher
    }

    /// Where the batcher stands: `(epoch, position within the epoch)`.
    pub fn position(&self) -> (u64, usize) {
        (self.epoch, self.position)
    }

    /// Jumps to `(epoch, position)`, as [`Batcher::position`] reported it: a run resumed
    /// there draws exactly the batches the uninterrupted run drew.
    pub fn seek(&mut self, epoch: u64, position: usize) {
        self.epoch = epoch;
        self.position = position.min(self.permutation.len());
        self.permute();
    }

    /// The examples of the next batch of `batch`, when they are one contiguous run: in
    /// file order, short of the epoch's end.
    pub fn next_range(&self, batch: usize) -> Option<std::ops::Range<usize>> {
        if self.order != BatchOrder::Sequential {
            return None;
        }
        let examples = self.permutation.len();
        let start = if self.position == examples {
            0
        } else {
            self.position
        };
        (start + batch <= examples).then_some(start..start + batch)
    }

    /// Fills `out` with the indices of the next batch.
    pub fn next_indices(&mut self, out: &mut [u32]) {
        for slot in out.iter_mut() {
            if self.position == self.permutation.len() {
                self.epoch += 1;
                self.position = 0;
                self.permute();
            }
            *slot = self.permutation[self.position];
            self.position += 1;
        }
    }

    /// The examples the next batches start with, as far as this epoch's order goes (at
    /// most `count`): what a step can ask the memory for before it needs them.
    pub fn upcoming(&self, count: usize) -> &[u32] {
        let end = self.permutation.len().min(self.position + count);
        &self.permutation[self.position..end]
    }

    /// Recomputes this epoch's permutation from the seed and the epoch number alone.
    fn permute(&mut self) {
        let BatchOrder::Shuffle { seed } = self.order else {
            return;
        };
        for (i, v) in self.permutation.iter_mut().enumerate() {
            *v = i as u32;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(self.epoch);
        // Fisher-Yates with Lemire's multiply-shift: a portable algorithm, so a seed gives the
        // same batches on every machine and every version of `rand`.
        for i in (1..self.permutation.len()).rev() {
            let j = ((u128::from(rng.next_u64()) * (i as u128 + 1)) >> 64) as usize;
            self.permutation.swap(i, j);
        }
    }
}

/// Gathers examples `indices` of `data`: their pixels into `pixels` (`indices.len() x
/// 784`) and labels into `labels`.
///
/// `upcoming` are the examples the caller gathers next (some, all or none of them): row `r`
/// of them is asked for into the second-level cache while row `r` of these is copied, so
/// that they have arrived when their turn comes: shuffled batches come from all over the
/// training set, where the hardware sees no stream to fetch ahead.
pub fn gather(
    data: Rows<'_>,
    indices: &[u32],
    upcoming: &[u32],
    pixels: &mut [u8],
    labels: &mut [u8],
) {
    assert_eq!(
        pixels.len(),
        indices.len() * PIXELS,
        "pixel buffer is not batch x 784"
    );
    assert_eq!(
        labels.len(),
        indices.len(),
        "label buffer is not batch long"
    );
    for (r, (pixel_row, label)) in pixels
        .chunks_exact_mut(PIXELS)
        .zip(labels.iter_mut())
        .enumerate()
    {
        // Shuffled rows are scattered over the whole training set: with the row a few
        // places ahead already on its way from memory, the misses overlap instead of
        // stalling each row in turn (rows asked for a step ahead are on their way already).
        if let Some(&ahead) = indices.get(r + PREFETCH_ROWS_AHEAD) {
            crate::kernels::prefetch(data.image(ahead as usize));
        }
        // Not among `data` yet, while a run's data is still loading.
        if let Some(next) = upcoming.get(r).and_then(|&i| data.get_image(i as usize)) {
            crate::kernels::prefetch_l2(next);
        }
        let i = indices[r] as usize;
        pixel_row.copy_from_slice(data.image(i));
        *label = data.label(i);
    }
}

/// How many rows ahead [`gather`] asks for its pixels.
const PREFETCH_ROWS_AHEAD: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_table_is_the_division() {
        for v in 0..=255u8 {
            assert_eq!(PIXEL_TO_UNIT[v as usize], f32::from(v) / 255.0);
        }
        assert_eq!(PIXEL_TO_UNIT[255], 1.0);
    }

    #[test]
    fn sequential_batches_wrap_in_file_order() {
        let mut b = Batcher::new(5, BatchOrder::Sequential);
        let mut idx = [0u32; 3];
        b.next_indices(&mut idx);
        assert_eq!(idx, [0, 1, 2]);
        b.next_indices(&mut idx);
        assert_eq!(idx, [3, 4, 0]);
        assert_eq!(b.position(), (1, 1));
    }

    #[test]
    fn shuffle_is_a_permutation_per_epoch_and_seeded() {
        let mut a = Batcher::new(100, BatchOrder::Shuffle { seed: 7 });
        let mut b = Batcher::new(100, BatchOrder::Shuffle { seed: 7 });
        let mut c = Batcher::new(100, BatchOrder::Shuffle { seed: 8 });
        let (mut ea, mut eb, mut ec) = ([0u32; 100], [0u32; 100], [0u32; 100]);
        a.next_indices(&mut ea);
        b.next_indices(&mut eb);
        c.next_indices(&mut ec);
        assert_eq!(ea, eb);
        assert_ne!(ea, ec);
        let mut sorted = ea;
        sorted.sort_unstable();
        assert_eq!(sorted.to_vec(), (0..100).collect::<Vec<u32>>());
        assert_ne!(ea.to_vec(), (0..100).collect::<Vec<u32>>());
        let mut second = [0u32; 100];
        a.next_indices(&mut second);
        assert_ne!(ea, second, "each epoch has its own permutation");
    }

    #[test]
    fn upcoming_is_the_next_batch_up_to_the_epoch_end() {
        let mut b = Batcher::new(10, BatchOrder::Shuffle { seed: 4 });
        let mut first = [0u32; 6];
        let ahead = b.upcoming(6).to_vec();
        b.next_indices(&mut first);
        assert_eq!(ahead, first);
        // Four left in this epoch; the next one's order is not drawn yet.
        let ahead = b.upcoming(6).to_vec();
        assert_eq!(ahead.len(), 4);
        let mut second = [0u32; 6];
        b.next_indices(&mut second);
        assert_eq!(ahead, second[..4]);
    }

    #[test]
    fn seek_replays_the_same_batches() {
        let mut a = Batcher::new(50, BatchOrder::Shuffle { seed: 3 });
        let mut skip = [0u32; 70];
        a.next_indices(&mut skip);
        let (epoch, pos) = a.position();
        let mut expected = [0u32; 40];
        a.next_indices(&mut expected);
        let mut b = Batcher::new(50, BatchOrder::Shuffle { seed: 3 });
        b.seek(epoch, pos);
        let mut got = [0u32; 40];
        b.next_indices(&mut got);
        assert_eq!(got, expected);
    }
}
