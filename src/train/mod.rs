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

use std::sync::Mutex;

use crate::data::batch::{gather, Batcher};
use crate::data::{BatchOrder, Rows, PIXELS};
use crate::kernels::{self, gemm, GemmWorkspace, MatRef};
use crate::nn::{DropoutKey, Input, Mode, Model, Workspace};
use crate::optim::{Optimizer, Update};

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
    // With a dense head, only the layers before it run in shards.
    let body = model.head_start().unwrap_or(arch.layers().len());
    // Forward, weight gradient and input gradient: three multiply-adds per weight use and row.
    let macs = (0..body).map(|i| layer_macs(arch, i)).sum::<usize>().max(1);
    let weights: usize = (0..body)
        .flat_map(|i| arch.params_of(i).into_iter().take(1))
        .map(|p| p.shape.iter().product::<usize>())
        .sum();
    let flops_per_row = 6 * macs;
    // A shard's weights are packed and its gradient summed once whatever its rows, so a
    // shard needs enough uses of each weight: MIN_SHARD_ROWS rows of a dense layer (one use
    // a row), fewer of a convolution (a filter is used at every output pixel).
    let reuse_rows = (MIN_SHARD_ROWS * weights).div_ceil(macs);
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

/// Multiply-adds of layer `i` of `arch` per example.
fn layer_macs(arch: &crate::nn::Architecture, i: usize) -> usize {
    use crate::nn::LayerSpec;
    match arch.layers()[i] {
        LayerSpec::Linear { out } => arch.input_shape(i).len() * out,
        LayerSpec::Conv2d { kernel, .. } => {
            arch.shapes()[i].len() * kernel * kernel * arch.input_shape(i).channels
        }
        _ => 0,
    }
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

/// The dense head of a convolutional model, run over the whole batch at once (its wide
/// products split into pieces on the pool) between the shards' passes through the layers
/// before it: each shard packing and streaming the head's megabytes of weights, and writing
/// a weight gradient of its own to be summed, made the head most of a step.
#[derive(Debug)]
struct Head {
    /// Its first layer ([`Model::head_start`]).
    start: usize,
    /// Where its parameters begin in the arena (the gradients before are the shards').
    params: usize,
    ws: Workspace,
    /// The batch's labels, in batch order.
    labels: Vec<u8>,
    /// Where the head's first layer can leave its weight gradient to the update: what
    /// updating it with its gradient needs (see [`FusedWeight`]).
    fused: Option<FusedHead>,
    /// Whether this step's backward pass left that weight gradient to the update.
    deferred: bool,
}

/// Rows of the head's first weight a piece of the fused update computes the gradient of
/// and updates at once: its gradient (256 KB for 1024 outputs) stays in L2 between the
/// product that writes it and the update that reads it.
const FUSED_ROWS: usize = 64;

/// The head's first weight, `[k, n]`, and one scratch per thread for updating it piece
/// by piece.
#[derive(Debug)]
struct FusedHead {
    k: usize,
    n: usize,
    scratch: Vec<Mutex<FusedScratch>>,
}

/// One thread's room for a piece of the fused weight update: packing buffers and the
/// piece's gradient (`[FUSED_ROWS, n]`).
#[derive(Debug)]
struct FusedScratch {
    gemm: GemmWorkspace,
    grad: Vec<f32>,
}

/// The head's first weight updated piece by piece while its gradient `Xᵀ·dZ` is made: a
/// whole-weight gradient (12.8 MB for the tutorial's fc1) would be written to memory and
/// read back by the update. Each piece's gradient is the same product with the same bits
/// as the split backward pass's, and the update is elementwise, so the bits are those of
/// computing the whole gradient first.
struct FusedWeight<'a> {
    x: &'a [f32],     // [rows, k]
    d_out: &'a [f32], // [rows, n]
    rows: usize,
    k: usize,
    n: usize,
    update: Update,
    scratch: &'a [Mutex<FusedScratch>],
}

impl FusedWeight<'_> {
    /// Updates the weight rows `first..` that `part` holds, halving on the pool's threads
    /// down to [`FUSED_ROWS`] rows.
    fn run(&self, pool: &Pool, first: usize, part: ArenaPart<'_>) {
        let height = part.params.len() / self.n;
        if height > FUSED_ROWS {
            let half = (height / 2).next_multiple_of(FUSED_ROWS);
            let (a, b) = part.split_at(half * self.n);
            pool.join(
                || self.run(pool, first, a),
                || self.run(pool, first + half, b),
            );
            return;
        }
        let (k, n) = (self.k, self.n);
        let mut scratch = crate::nn::lock_free_one(self.scratch);
        let FusedScratch { gemm: ws, grad } = &mut *scratch;
        let grad = &mut grad[..height * n];
        let xt = MatRef::row_major(&self.x[first..], k).t();
        let d = MatRef::row_major(self.d_out, n);
        gemm(height, n, self.rows, xt, d, grad, n, false, ws);
        self.update
            .apply_part(part.params, grad, part.first, part.second);
    }
}

/// Whether a step's mean loss lets its update be applied by [`Trainer::step_guarded`].
fn loss_accepted(loss: f64) -> bool {
    loss.is_finite() && loss <= DIVERGED_LOSS
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
    head: Option<Head>,
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
                // With a dense head, a shard's gradient is the body's alone.
                grads: vec![
                    0.0;
                    model
                        .head_start()
                        .map_or(model.params().len(), |h| model.params_from(h))
                ],
                loss: 0.0,
                correct: 0,
            })
            .collect();
        let pool = Pool::new(threads);
        let head = model.head_start().map(|start| Head {
            start,
            params: model.params_from(start),
            ws: Workspace::head(&model, batch, start, pool.threads()),
            labels: vec![0; batch],
            fused: model.head_weight_deferrable(start).map(|(k, n)| {
                let scratch = (0..pool.threads().max(1))
                    .map(|_| {
                        Mutex::new(FusedScratch {
                            gemm: GemmWorkspace::new(),
                            grad: vec![0.0; FUSED_ROWS.min(k) * n],
                        })
                    })
                    .collect();
                FusedHead { k, n, scratch }
            }),
            deferred: false,
        });
        Trainer {
            grads: vec![0.0; model.params().len()],
            head,
            optimizer,
            batcher: Batcher::new(examples, order),
            batch,
            shards,
            pool,
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
        match &self.head {
            Some(head) => out.extend_from_slice(self.model.logits(&head.ws, self.batch)),
            None => {
                for shard in &self.shards {
                    out.extend_from_slice(self.model.logits(&shard.ws, shard.rows));
                }
            }
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
        let stats = self.compute_gradients(data.into(), true);
        if loss_accepted(stats.loss) {
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
        let stats = self.compute_gradients(data.into(), false);
        self.apply_gradients();
        stats
    }

    /// The examples the next step reads, when they are one contiguous run (batches in file
    /// order, short of an epoch's end): a step can then take just those
    /// [`Rows`], for instance while the rest of the data is still loading.
    pub fn next_rows(&self) -> Option<std::ops::Range<usize>> {
        self.batcher.next_range(self.batch)
    }

    /// Forward and backward passes of the next batch. When `guarded`, an update the loss
    /// refuses ([`loss_accepted`]) will not be applied: the head's first weight gradient is
    /// then computed whole instead of left to the update.
    fn compute_gradients(&mut self, data: Rows<'_>, guarded: bool) -> StepStats {
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
        let head_start = self.head.as_ref().map(|h| h.start);
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
            if let Some(head) = head_start {
                model.forward_body(input, shard.rows, &mut shard.ws, mode, head);
                return;
            }
            model.forward_with(input, shard.rows, &mut shard.ws, mode);
            let logits = model.logits(&shard.ws, shard.rows);
            shard.correct = count_correct(logits, &shard.labels, classes);
            shard.loss = model.loss(&shard.labels, grad_scale, &mut shard.ws);
            model.backward(input, shard.rows, &mut shard.ws, &mut shard.grads, None);
        });
        if let Some(head) = &mut self.head {
            let start = head.start;
            // The shards' outputs, in batch order, are the head's input.
            for shard in &mut self.shards {
                let rows = shard.first..shard.first + shard.rows;
                let body = model.head_input(&mut shard.ws, shard.rows, start);
                let width = body.len() / shard.rows.max(1);
                let all = model.head_input(&mut head.ws, self.batch, start);
                all[rows.start * width..rows.end * width].copy_from_slice(body);
                head.labels[rows].copy_from_slice(&shard.labels);
            }
            let mode = Mode::Train(DropoutKey {
                seed,
                step,
                first_row: 0,
            });
            let batch = self.batch;
            model.forward_head(batch, &mut head.ws, mode, start, &self.pool);
            let correct = count_correct(model.logits(&head.ws, batch), &head.labels, classes);
            let loss = model.loss(&head.labels, grad_scale, &mut head.ws);
            // The loss is known before the backward pass: whether the update will be
            // applied is known too, and with it whether the weight gradient can wait for it.
            head.deferred = head.fused.is_some()
                && (!guarded || loss_accepted(loss / batch as f64))
                && self.optimizer.state_fits(self.grads.len());
            let (grads, pool, defer) = (&mut self.grads, &self.pool, head.deferred);
            model.backward_head(batch, &mut head.ws, grads, start, pool, defer);
            let grad = model.head_input_grad(&mut head.ws, batch, start);
            let width = grad.len() / batch;
            for shard in &mut self.shards {
                let rows = shard.first * width..(shard.first + shard.rows) * width;
                model
                    .head_input_grad(&mut shard.ws, shard.rows, start)
                    .copy_from_slice(&grad[rows]);
            }
            self.pool.for_each(&mut self.shards, |shard| {
                let input = Input::Pixels(&shard.pixels);
                model.backward_body(input, shard.rows, &mut shard.ws, &mut shard.grads, start);
            });
            return StepStats {
                loss: loss / batch as f64,
                correct,
            };
        }
        let loss: f64 = self.shards.iter().map(|s| s.loss).sum();
        StepStats {
            loss: loss / self.batch as f64,
            correct: self.shards.iter().map(|s| s.correct).sum(),
        }
    }

    fn apply_gradients(&mut self) {
        let (update, first, second) = self.optimizer.begin_update();
        let shards = &self.shards;
        // The head's first weight when its gradient was left to the update, with what
        // updating it needs.
        let fused = match &self.head {
            Some(Head {
                start,
                ws,
                fused: Some(FusedHead { k, n, scratch }),
                deferred: true,
                ..
            }) => {
                let (x, d_out, weight) = self.model.head_weight_operands(ws, self.batch, *start);
                let (k, n, rows) = (*k, *n, self.batch);
                let fused = FusedWeight {
                    x,
                    d_out,
                    rows,
                    k,
                    n,
                    update,
                    scratch,
                };
                Some((weight, fused))
            }
            _ => None,
        };
        let arena = ArenaPart {
            params: self.model.params_mut(),
            sum: &mut self.grads,
            first,
            second,
        };
        // Each part sums its shards' gradients in shard order and applies the update to
        // its parameters: elementwise, so the parts give the bits of one whole pass.
        // With a dense head, the gradients from `body` on are the head's, already summed
        // over the batch in `sum`; the shards' are summed below it.
        let body = self.head.as_ref().map(|h| h.params);
        let update_part = |offset: usize, part: ArenaPart<'_>| {
            let range = offset..offset + part.params.len();
            if let Some(body) = body {
                let below = body.clamp(range.start, range.end) - range.start;
                let mine = range.start..range.start + below;
                let sum = &mut part.sum[..below];
                match shards.as_slice() {
                    _ if below == 0 => {}
                    [first, second, more @ ..] => {
                        kernels::sum_into(
                            sum,
                            &first.grads[mine.clone()],
                            &second.grads[mine.clone()],
                        );
                        for shard in more {
                            kernels::scaled_add(sum, 1.0, &shard.grads[mine.clone()]);
                        }
                    }
                    only => sum.copy_from_slice(&only[0].grads[mine]),
                }
                update.apply_part(part.params, part.sum, part.first, part.second);
                return;
            }
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
        match fused {
            Some((weight, fused)) => {
                // The state fits (checked before deferring): the parts around the weight
                // as usual, the weight itself piece by piece with its gradient.
                let (before, rest) = arena.split_at(weight.start);
                let (part, after) = rest.split_at(weight.len());
                before.for_each_part(&self.pool, 0, &update_part);
                fused.run(&self.pool, 0, part);
                after.for_each_part(&self.pool, weight.end, &update_part);
            }
            None if arena.state_fits() => arena.for_each_part(&self.pool, 0, &update_part),
            None => update_part(0, arena),
        }
        if let Some(head) = &mut self.head {
            head.deferred = false;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::nn::{Architecture, Workspace};
    use crate::optim::OptimizerKind;

    /// Images with a third of their pixels set, labels 0 to 9.
    fn data(n: usize) -> Dataset {
        let pixels = (0..n * PIXELS)
            .map(|i| if i % 3 == 0 { (i * 37 % 256) as u8 } else { 0 })
            .collect();
        Dataset::new(pixels, (0..n).map(|i| (i % 10) as u8).collect())
    }

    /// A CNN whose head's products split into several pieces each: 784 inputs and 300
    /// outputs to fc300.
    fn wide_head() -> Architecture {
        Architecture::from_spec("conv3x3x4,pool2,fc300,dropout0.5,fc10").unwrap()
    }

    fn trained(threads: usize, steps: usize) -> Trainer {
        let data = data(256);
        let model = Model::he_normal(wide_head(), 3);
        let optimizer = Optimizer::sgd(0.05);
        let order = BatchOrder::Shuffle { seed: 4 };
        let mut trainer = Trainer::new(model, optimizer, data.len(), 64, order, Some(threads));
        trainer.set_seed(7);
        for _ in 0..steps {
            trainer.step(&data);
        }
        trainer
    }

    #[test]
    fn a_wide_dense_head_trains_the_same_bits_on_1_2_and_3_threads() {
        let bits = |t: Trainer| -> Vec<u32> {
            assert!(t.head.is_some() && t.shard_sizes().len() > 1);
            t.model().params().iter().map(|v| v.to_bits()).collect()
        };
        let one = bits(trained(1, 6));
        assert_eq!(bits(trained(2, 6)), one);
        assert_eq!(bits(trained(3, 6)), one);
    }

    /// The head's step is the whole batch's: its gradient is bit for bit the one a pass of
    /// the model over the whole batch gives (the layers before it, summed over shards,
    /// agree to rounding).
    #[test]
    fn the_head_gets_the_gradient_of_one_pass_over_the_whole_batch() {
        let lr = 0.05;
        head_update_equals_whole_batch(Optimizer::sgd(lr), |want, grads| {
            kernels::scaled_add(want, -lr, grads)
        });
    }

    /// The head's first weight is updated piece by piece as its gradient is made (Adam's
    /// moments included): the bits of an update of the whole gradient.
    #[test]
    fn the_fused_adam_update_of_the_head_equals_the_whole_update() {
        let adam = OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let params = Model::he_normal(wide_head(), 3).params().len();
        let mut optimizer = Optimizer::new(adam, 1e-3, params);
        optimizer.weight_decay = 1e-4;
        let mut reference = optimizer.clone();
        head_update_equals_whole_batch(optimizer, |want, grads| reference.apply(want, grads));
    }

    /// One step of a trainer with `optimizer` on a batch of 64 against a pass over the whole
    /// batch and `apply` (the same rule) on its gradient.
    fn head_update_equals_whole_batch(
        optimizer: Optimizer,
        mut apply: impl FnMut(&mut [f32], &[f32]),
    ) {
        let data = data(64);
        let model = Model::he_normal(wide_head(), 3);
        let mut trainer = Trainer::new(
            model.clone(),
            optimizer,
            64,
            64,
            BatchOrder::Sequential,
            Some(2),
        );
        trainer.set_seed(7);
        let stats = trainer.step(&data);
        let mut ws = Workspace::new(&model, 64);
        let key = DropoutKey {
            seed: 7,
            step: 0,
            first_row: 0,
        };
        let input = Input::Pixels(data.pixels());
        model.forward_with(input, 64, &mut ws, Mode::Train(key));
        let loss = model.loss(data.labels(), 1.0 / 64.0, &mut ws);
        let mut grads = vec![0.0; model.params().len()];
        model.backward(input, 64, &mut ws, &mut grads, None);
        let mut want = model.params().to_vec();
        apply(&mut want, &grads);
        let start = model.head_start().unwrap();
        assert!(model.head_weight_deferrable(start).is_some());
        let head = model.params_from(start);
        assert!(head > 0 && head < want.len());
        let got = trainer.model().params();
        assert_eq!(got[head..], want[head..]);
        for (g, w) in got[..head].iter().zip(&want[..head]) {
            assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()), "{g} vs {w}");
        }
        assert!((stats.loss - loss / 64.0).abs() <= 1e-9 * loss);
    }
}
