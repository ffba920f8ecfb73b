//! Training: minibatches cut into fixed-size shards, gradients reduced in a fixed order, an
//! optimiser step; evaluation over a whole dataset.
//!
//! Shard sizes depend only on the model and the batch size, never on the thread count, and
//! shard gradients are summed in shard order: the trained weights are bit-identical for any
//! number of threads.

pub mod checkpoint;
mod eval;
mod parallel;
pub mod run;

pub use eval::{evaluate, EvalResult, Evaluator};
pub use parallel::Pool;
pub use run::{
    observe_initial, run, run_while_loading, EvalEvent, Observer, OnNan, RunConfig, RunSummary,
    Silent, TrainError,
};

use crate::data::batch::{gather, Batcher};
use crate::data::{BatchOrder, Rows, PIXELS};
use crate::kernels;
use crate::nn::{DropoutKey, Input, Mode, Model, Workspace};
use crate::optim::Optimizer;

/// A mean cross-entropy above this many nats means the logits are off by thousands: the
/// stable loss never overflows, so "diverged" must be a threshold as well as NaN.
pub const DIVERGED_LOSS: f64 = 1e4;

/// Work below this many FLOPs per shard is not worth a task of its own.
const MIN_SHARD_FLOPS: usize = 2_000_000;
/// Fewer rows than this per shard make packing a dense layer's weights dominate.
const MIN_SHARD_ROWS: usize = 32;

/// How a batch of `batch` rows of `model` is cut: the rows of each shard. Depends on the
/// model and the batch size alone.
pub fn shard_rows(model: &Model, batch: usize) -> Vec<usize> {
    let arch = model.architecture();
    // Forward, weight gradient and input gradient: three multiply-adds per weight use and row.
    let macs = arch.forward_macs().max(1);
    let flops_per_row = 6 * macs;
    // A shard's weights are packed and its gradient summed once whatever its rows, so a
    // shard needs enough uses of each weight: MIN_SHARD_ROWS rows of a dense layer (one use
    // a row), fewer of a convolution (a filter is used at every output pixel).
    let reuse_rows = (MIN_SHARD_ROWS * arch.weight_count()).div_ceil(macs);
    let min_rows = reuse_rows
        .max(MIN_SHARD_FLOPS.div_ceil(flops_per_row))
        .max(1);
    // A power of two, so the shards split evenly over 1, 2, 4, 8 or 16 threads (3 shards
    // on 2 cores would leave one core idle for a third of every step).
    let shards = prev_power_of_two((batch / min_rows).max(1));
    let base = batch / shards;
    let extra = batch % shards;
    (0..shards).map(|s| base + usize::from(s < extra)).collect()
}

/// The largest power of two not above `n` (`n >= 1`).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// One shard's buffers: its rows' examples and pixels and labels, the passes' workspace
/// and its gradient.
#[derive(Debug)]
struct Shard {
    /// Where this shard's rows start in the batch.
    first: usize,
    rows: usize,
    indices: Vec<u32>,
    pixels: Vec<u8>,
    labels: Vec<u8>,
    ws: Workspace,
    grads: Vec<f32>,
    loss: f64,
    correct: usize,
}

/// What one training step measured on its batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Mean cross-entropy of the batch before the update.
    pub loss: f64,
    /// Examples of the batch classified correctly before the update.
    pub correct: usize,
}

/// Trains a [`Model`] by minibatch gradient descent. Everything a step needs is allocated
/// in [`Trainer::new`]: a step performs no heap allocation.
#[derive(Debug)]
pub struct Trainer {
    model: Model,
    optimizer: Optimizer,
    batcher: Batcher,
    batch: usize,
    shards: Vec<Shard>,
    grads: Vec<f32>,
    pool: Pool,
    steps_done: u64,
    /// Keys the dropout masks, with the update number and the row in the batch.
    seed: u64,
}

impl Trainer {
    /// A trainer for `model` on a dataset of `examples` examples, `batch` examples a step,
    /// visited in `order`, on `threads` threads (None: all cores).
    ///
    /// # Panics
    /// If `batch` or `examples` is 0.
    pub fn new(
        model: Model,
        optimizer: Optimizer,
        examples: usize,
        batch: usize,
        order: BatchOrder,
        threads: Option<usize>,
    ) -> Self {
        assert!(batch > 0, "batch size must be positive");
        let shards = shard_rows(&model, batch)
            .into_iter()
            .scan(0, |first, rows| {
                *first += rows;
                Some((*first - rows, rows))
            })
            .map(|(first, rows)| Shard {
                first,
                rows,
                indices: vec![0; rows],
                pixels: vec![0; rows * PIXELS],
                labels: vec![0; rows],
                ws: Workspace::new(&model, rows),
                grads: vec![0.0; model.params().len()],
                loss: 0.0,
                correct: 0,
            })
            .collect();
        Trainer {
            grads: vec![0.0; model.params().len()],
            optimizer,
            batcher: Batcher::new(examples, order),
            batch,
            shards,
            pool: Pool::new(threads),
            steps_done: 0,
            seed: 0,
            model,
        }
    }

    /// Sets the seed of the dropout masks (0 by default). A unit's mask bit is a function of
    /// this seed, the update number, the example's row in its batch and the unit alone,
    /// so the thread count never changes it and a resumed run draws the same masks.
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// The seed of the dropout masks.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Puts the logits of the latest step's batch, as its forward pass computed them before
    /// the update, into `out` (`[batch, classes]`, rows in batch order); empty before the
    /// first step.
    pub fn batch_logits(&self, out: &mut Vec<f32>) {
        out.clear();
        if self.steps_done == 0 {
            return;
        }
        for shard in &self.shards {
            out.extend_from_slice(self.model.logits(&shard.ws, shard.rows));
        }
    }

    /// The model as trained so far.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Gives back the model.
    pub fn into_model(self) -> Model {
        self.model
    }

    /// The optimiser and its state.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// Updates done so far.
    pub fn steps_done(&self) -> u64 {
        self.steps_done
    }

    /// The batcher's position (for checkpoints).
    pub fn batch_position(&self) -> (u64, usize) {
        self.batcher.position()
    }

    /// Restores a checkpointed state: parameters, optimiser, batch position and step count.
    pub fn restore(
        &mut self,
        params: &[f32],
        optimizer: Optimizer,
        position: (u64, usize),
        steps: u64,
    ) {
        self.model.params_mut().copy_from_slice(params);
        self.optimizer = optimizer;
        self.batcher.seek(position.0, position.1);
        self.steps_done = steps;
    }

    /// Rows per shard (for reports).
    pub fn shard_sizes(&self) -> Vec<usize> {
        self.shards.iter().map(|s| s.rows).collect()
    }

    /// Runs `f` with this trainer inside its thread pool, so the steps it takes hand their
    /// shards to the workers directly (see [`Pool::run`]); results are the same either way.
    pub fn in_pool<R: Send>(&mut self, f: impl FnOnce(&mut Self) -> R + Send) -> R {
        let pool = self.pool.clone();
        pool.run(|| f(self))
    }

    /// The trainer's thread pool (clones share its threads), for an
    /// [`Evaluator::with_pool`] that evaluates between its steps.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Threads the trainer runs on.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Examples per update.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// One update, refusing a non-finite loss (or one above [`DIVERGED_LOSS`]): with [`OnNan::Stop`] an error names the
    /// step and the parameters stay as they were; with [`OnNan::Skip`] the update is not
    /// applied and `None` is returned.
    pub fn step_guarded<'a>(
        &mut self,
        data: impl Into<Rows<'a>>,
        on_nan: OnNan,
    ) -> Result<Option<StepStats>, TrainError> {
        let stats = self.compute_gradients(data.into());
        if stats.loss.is_finite() && stats.loss <= DIVERGED_LOSS {
            self.apply_gradients();
            return Ok(Some(stats));
        }
        match on_nan {
            OnNan::Stop => Err(TrainError::Diverged {
                step: self.steps_done + 1,
                loss: stats.loss,
            }),
            OnNan::Skip => {
                self.steps_done += 1;
                Ok(None)
            }
        }
    }

    /// One update on the next batch of `data`: forward, loss, backward per shard (in
    /// parallel), gradients summed in shard order, one optimiser step.
    ///
    /// # Panics
    /// If `data` does not hold the batch's examples (a whole [`Dataset`](crate::data::Dataset)
    /// always does; for a part, see [`Trainer::next_rows`]).
    pub fn step<'a>(&mut self, data: impl Into<Rows<'a>>) -> StepStats {
        let stats = self.compute_gradients(data.into());
        self.apply_gradients();
        stats
    }

    /// The examples the next step reads, when they are one contiguous run (batches in file
    /// order, short of an epoch's end): a step can then take just those
    /// [`Rows`], for instance while the rest of the data is still loading.
    pub fn next_rows(&self) -> Option<std::ops::Range<usize>> {
        self.batcher.next_range(self.batch)
    }

    fn compute_gradients(&mut self, data: Rows<'_>) -> StepStats {
        for shard in &mut self.shards {
            self.batcher.next_indices(&mut shard.indices);
        }
        let grad_scale = 1.0 / self.batch as f32;
        let model = &self.model;
        let classes = model.architecture().classes();
        let (seed, step) = (self.seed, self.steps_done);
        // The next step's examples: each shard asks the memory for its next rows (those at
        // its place in the next batch) while it copies these.
        let upcoming = self.batcher.upcoming(self.batch);
        self.pool.for_each(&mut self.shards, |shard| {
            let next = upcoming.get(shard.first..).unwrap_or_default();
            gather(
                data,
                &shard.indices,
                &next[..shard.rows.min(next.len())],
                &mut shard.pixels,
                &mut shard.labels,
            );
            // The products read the bytes, each in its own way: the narrow ones skip zero
            // pixels, the blocked gemm converts them as it packs.
            let input = Input::Pixels(&shard.pixels);
            let mode = Mode::Train(DropoutKey {
                seed,
                step,
                first_row: shard.first,
            });
            model.forward_with(input, shard.rows, &mut shard.ws, mode);
            let logits = model.logits(&shard.ws, shard.rows);
            shard.correct = count_correct(logits, &shard.labels, classes);
            shard.loss = model.loss(&shard.labels, grad_scale, &mut shard.ws);
            model.backward(input, shard.rows, &mut shard.ws, &mut shard.grads, None);
        });
        let loss: f64 = self.shards.iter().map(|s| s.loss).sum();
        StepStats {
            loss: loss / self.batch as f64,
            correct: self.shards.iter().map(|s| s.correct).sum(),
        }
    }

    fn apply_gradients(&mut self) {
        let (update, first, second) = self.optimizer.begin_update();
        let shards = &self.shards;
        let arena = ArenaPart {
            params: self.model.params_mut(),
            sum: &mut self.grads,
            first,
            second,
        };
        // Each part sums its shards' gradients in shard order and applies the update to
        // its parameters: elementwise, so the parts give the bits of one whole pass.
        let update_part = |offset: usize, part: ArenaPart<'_>| {
            let range = offset..offset + part.params.len();
            let grads: &[f32] = match shards.as_slice() {
                // `a + b` then `+= c` gives the bits `a`, `+= b`, `+= c` would.
                [first, second, more @ ..] => {
                    kernels::sum_into(
                        part.sum,
                        &first.grads[range.clone()],
                        &second.grads[range.clone()],
                    );
                    for shard in more {
                        kernels::scaled_add(part.sum, 1.0, &shard.grads[range.clone()]);
                    }
                    part.sum
                }
                only => &only[0].grads[range],
            };
            update.apply_part(part.params, grads, part.first, part.second);
        };
        if arena.state_fits() {
            arena.for_each_part(&self.pool, 0, &update_part);
        } else {
            update_part(0, arena);
        }
        self.steps_done += 1;
    }
}

/// Parameters per part of an update (see [`ArenaPart::for_each_part`]).
const UPDATE_PART: usize = 1 << 14;

/// A part of the parameter arena, with the same part of the summed gradient and of the
/// optimiser's state (`first` and `second` empty where the rule keeps none).
struct ArenaPart<'a> {
    params: &'a mut [f32],
    sum: &'a mut [f32],
    first: &'a mut [f32],
    second: &'a mut [f32],
}

impl<'a> ArenaPart<'a> {
    /// Whether the state is as long as the parameters or empty, so it splits with them.
    fn state_fits(&self) -> bool {
        let n = self.params.len();
        self.sum.len() == n
            && [self.first.len(), self.second.len()]
                .iter()
                .all(|&l| l == 0 || l == n)
    }

    /// Splits at `mid`: the parts before and from it.
    fn split_at(self, mid: usize) -> (Self, Self) {
        fn split(s: &mut [f32], mid: usize) -> (&mut [f32], &mut [f32]) {
            if s.is_empty() {
                (&mut [], &mut [])
            } else {
                s.split_at_mut(mid)
            }
        }
        let (params, params_b) = self.params.split_at_mut(mid);
        let (sum, sum_b) = self.sum.split_at_mut(mid);
        let (first, first_b) = split(self.first, mid);
        let (second, second_b) = split(self.second, mid);
        (
            ArenaPart {
                params,
                sum,
                first,
                second,
            },
            ArenaPart {
                params: params_b,
                sum: sum_b,
                first: first_b,
                second: second_b,
            },
        )
    }

    /// Runs `work(offset, part)` on parts of at most [`UPDATE_PART`] parameters, halving
    /// the arena on the pool's threads. With many shards, summing their gradients is most
    /// of an update (16 shards of 784-256-10 read 13 MB a step): on one thread it would be
    /// a serial part of every step that grows with the thread count.
    fn for_each_part(
        self,
        pool: &Pool,
        offset: usize,
        work: &(impl Fn(usize, ArenaPart<'_>) + Sync),
    ) {
        let len = self.params.len();
        if len <= UPDATE_PART {
            return work(offset, self);
        }
        // Halves at multiples of 16 floats (64 bytes, a cache line).
        let mid = (len / 2).next_multiple_of(16);
        let (a, b) = self.split_at(mid);
        pool.join(
            || a.for_each_part(pool, offset, work),
            || b.for_each_part(pool, offset + mid, work),
        );
    }
}

/// Rows of `logits` whose argmax is the label.
pub fn count_correct(logits: &[f32], labels: &[u8], classes: usize) -> usize {
    logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &l)| kernels::elementwise::argmax(row) == usize::from(l))
        .count()
}
