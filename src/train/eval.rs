//! `evaluation`: loss, accuracy and confusion matrix over a whole dataset.

use std::sync::Mutex;

use super::parallel::Pool;
use crate::data::{Dataset, PIXELS};
use crate::kernels;
use crate::kernels::listed::NonZeroRows;
use crate::nn::linear::Serial;
use crate::nn::{Input, Mode, Model, Workspace};

/// Rows evaluated per chunk of a dense model; chunk results are summed in chunk order.
const CHUNK_ROWS: usize = 500;
/// Most activation and scratch floats of one workspace: a convolutional model's chunks hold
/// fewer rows (a row of the tutorial's CNN needs about 50 thousand).
const WORKSPACE_FLOATS: usize = 4 << 20;

/// Chunks of a convolutional model whose dense head runs once over all of their rows: the
/// convolutions want chunks small enough for their patches to stay in cache, the head's
/// wide products as many rows as there are to stream its weights once for (the tutorial's
/// fc1 holds 12.8 MB of them).
const HEAD_CHUNKS: usize = 6;

/// Rows per chunk for `model`: [`CHUNK_ROWS`] for a dense model (whose results, summed in
/// chunk order, are pinned by tests), fewer for one whose rows need more memory.
fn chunk_rows(model: &Model) -> usize {
    if !model.architecture().is_convolutional() {
        return CHUNK_ROWS;
    }
    let per_row = Workspace::inference(model, 2).floats() - Workspace::inference(model, 1).floats();
    let per_row = per_row.max(1);
    (WORKSPACE_FLOATS / per_row).clamp(1, CHUNK_ROWS)
}

/// Loss, accuracy and confusion matrix of a model on a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    /// Mean softmax cross-entropy.
    pub loss: f64,
    /// Share of examples classified correctly.
    pub accuracy: f64,
    /// Examples classified correctly.
    pub correct: usize,
    /// Examples evaluated.
    pub count: usize,
    /// `confusion[true][predicted]` counts, `classes x classes`.
    pub confusion: Vec<Vec<usize>>,
}

impl EvalResult {
    /// The result of `n` examples from their summed loss and their confusion matrix.
    pub(crate) fn from_confusion(loss_sum: f64, confusion: Vec<Vec<usize>>, n: usize) -> Self {
        let correct = (0..confusion.len()).map(|c| confusion[c][c]).sum();
        EvalResult {
            loss: loss_sum / n.max(1) as f64,
            accuracy: correct as f64 / n.max(1) as f64,
            correct,
            count: n,
            confusion,
        }
    }
}

#[derive(Debug)]
struct Chunk {
    /// The non-zero pixels of this chunk of the dataset last listed.
    listed: NonZeroRows,
    predictions: Vec<usize>,
    loss: f64,
}

/// Reusable buffers for evaluating one model shape, one chunk per worker pass.
///
/// For a model whose first layer is narrow (softmax regression), the evaluator lists each
/// example's non-zero pixels when it evaluates the same dataset ([`Dataset::id`]) a second
/// time in a row, and from then on multiplies only those: the test set of a run is listed
/// once and evaluated twenty times, while a dataset evaluated once is not worth listing.
/// The results are those of [`Model::inference`] on the pixels, bit for bit.
#[derive(Debug)]
pub struct Evaluator {
    chunks: Vec<Chunk>,
    /// Rows per chunk.
    chunk_rows: usize,
    /// One workspace per thread: a chunk takes whichever is free (its results do not depend
    /// on which).
    workspaces: Vec<Mutex<Workspace>>,
    /// For a convolutional model with a dense head ([`Model::head_start`]): where the head
    /// starts, and one workspace per thread for the head over [`HEAD_CHUNKS`] chunks.
    head: Option<(usize, Vec<Mutex<Workspace>>)>,
    /// The dataset evaluated last, and the one the chunks' lists are of.
    last_id: Option<u64>,
    listed_id: Option<u64>,
    pool: Pool,
    classes: usize,
    /// Logits of the last evaluated dataset, `[count, classes]`.
    logits: Vec<f32>,
    /// [`Evaluator::one`]'s workspaces, made at its first call.
    one: Option<OneImage>,
}

/// What [`Evaluator::one`] runs one example in: a workspace for the whole model and, for a
/// convolutional model with a dense head, one for the head with its products split into
/// pieces for the pool.
#[derive(Debug)]
struct OneImage {
    ws: Workspace,
    head: Option<(usize, Workspace)>,
}

impl Evaluator {
    /// Buffers for evaluating `model`'s architecture on up to `examples` examples, on a
    /// pool of its own with `threads` threads (None: all cores).
    pub fn new(model: &Model, examples: usize, threads: Option<usize>) -> Self {
        Self::with_pool(model, examples, Pool::new(threads))
    }

    /// Like [`Evaluator::new`], on an existing pool: evaluations during training should run
    /// on the trainer's threads ([`Trainer::pool`](super::Trainer::pool)), not wake a second
    /// set that competes with the first for the cores.
    pub fn with_pool(model: &Model, examples: usize, pool: Pool) -> Self {
        let classes = model.architecture().classes();
        let chunk_rows = chunk_rows(model);
        let chunks = examples.div_ceil(chunk_rows).max(1);
        let head = model
            .architecture()
            .is_convolutional()
            .then(|| model.head_start())
            .flatten()
            .filter(|_| chunks > 1)
            .map(|h| {
                let groups = chunks.div_ceil(HEAD_CHUNKS);
                let rows = chunk_rows * HEAD_CHUNKS.min(chunks);
                let workspaces = (0..pool.threads().min(groups))
                    .map(|_| Mutex::new(eval_head_workspace(model, rows, h)))
                    .collect();
                (h, workspaces)
            });
        Evaluator {
            chunks: (0..chunks)
                .map(|_| Chunk {
                    listed: NonZeroRows::new(),
                    predictions: vec![0; chunk_rows],
                    loss: 0.0,
                })
                .collect(),
            chunk_rows,
            workspaces: (0..pool.threads().min(chunks))
                .map(|_| Mutex::new(Workspace::inference(model, chunk_rows)))
                .collect(),
            head,
            last_id: None,
            listed_id: None,
            pool,
            classes,
            logits: vec![0.0; examples * classes],
            one: None,
        }
    }

    /// The logits of one example `x` (`[classes]`), the same bits as [`Model::inference`]
    /// gives, with the wide linear layers of a convolutional model's dense head split into
    /// column pieces on this evaluator's threads: one image of the tutorial's CNN reads
    /// fc1's 12.8 MB of weights once, which pays where several cores read memory faster
    /// than one (`softnet bench` measures both rates; where they are equal, the split only
    /// adds the threads' hand-off). The layers before the head run on this thread. The
    /// first call makes the workspaces; later ones allocate nothing.
    pub fn one<'s>(&'s mut self, model: &Model, x: Input<'_>) -> &'s [f32] {
        let threads = self.pool.threads();
        let one = self.one.get_or_insert_with(|| OneImage {
            ws: Workspace::inference(model, 1),
            head: (threads > 1)
                .then(|| model.head_start())
                .flatten()
                .map(|h| (h, Workspace::head(model, 1, h, threads))),
        });
        let Some((head, head_ws)) = &mut one.head else {
            return model.inference(x, 1, &mut one.ws);
        };
        let head = *head;
        model.forward_body(x, 1, &mut one.ws, Mode::Eval, head);
        let input = model.head_input(&mut one.ws, 1, head);
        model.head_input(head_ws, 1, head).copy_from_slice(input);
        let pool = &self.pool;
        pool.run(|| model.forward_head(1, head_ws, Mode::Eval, head, pool));
        model.logits(head_ws, 1)
    }

    /// Evaluates `model` on `data` (at most the examples this evaluator was made for).
    pub fn evaluate(&mut self, model: &Model, data: &Dataset) -> EvalResult {
        let n = data.len();
        let classes = self.classes;
        let chunk_rows = self.chunk_rows;
        assert!(
            n <= self.chunks.len() * chunk_rows,
            "evaluator was sized for fewer examples"
        );
        let mut work: Vec<(usize, &mut Chunk, &mut [f32])> = Vec::new();
        let mut logits_left: &mut [f32] = &mut self.logits[..n * classes];
        for (c, chunk) in self.chunks.iter_mut().enumerate() {
            let start = c * chunk_rows;
            if start >= n {
                break;
            }
            let rows = chunk_rows.min(n - start);
            let (mine, rest) = logits_left.split_at_mut(rows * classes);
            logits_left = rest;
            work.push((start, chunk, mine));
        }
        let id = Some(data.id());
        let listing = model.reads_listed_inputs() && (self.listed_id == id || self.last_id == id);
        let relist = listing && self.listed_id != id;
        self.last_id = id;
        if listing {
            self.listed_id = id;
        }
        let workspaces = &self.workspaces;
        if let Some((head, head_workspaces)) = &self.head {
            let mut groups: Vec<_> = work.chunks_mut(HEAD_CHUNKS).collect();
            self.pool.for_each(&mut groups, |group| {
                let mut ws = crate::nn::lock_free_one(workspaces);
                let mut head_ws = crate::nn::lock_free_one(head_workspaces);
                // Each chunk through the layers before the head, its output stacked
                // into the head's input.
                let mut at = 0;
                for (start, _, logits_out) in group.iter() {
                    let rows = logits_out.len() / classes;
                    let pixels = &data.pixels()[*start * PIXELS..(*start + rows) * PIXELS];
                    model.forward_body(Input::Pixels(pixels), rows, &mut ws, Mode::Eval, *head);
                    let values = model.head_input(&mut ws, rows, *head);
                    let stacked = model.head_input(&mut head_ws, at + rows, *head);
                    stacked[at * values.len() / rows..].copy_from_slice(values);
                    at += rows;
                }
                drop(ws);
                model.forward_head(at, &mut head_ws, Mode::Eval, *head, &Serial);
                let logits = model.logits(&head_ws, at);
                let mut first = 0;
                for (start, chunk, logits_out) in group.iter_mut() {
                    let rows = logits_out.len() / classes;
                    logits_out.copy_from_slice(&logits[first * classes..(first + rows) * classes]);
                    first += rows;
                    chunk.loss = kernels::elementwise::cross_entropy_and_argmax(
                        logits_out,
                        &data.labels()[*start..*start + rows],
                        classes,
                        &mut chunk.predictions[..rows],
                    );
                }
            });
        } else {
            self.pool.for_each(&mut work, |(start, chunk, logits_out)| {
                let rows = logits_out.len() / classes;
                let pixels = &data.pixels()[*start * PIXELS..(*start + rows) * PIXELS];
                let labels = &data.labels()[*start..*start + rows];
                if relist {
                    chunk.listed.list(pixels, rows, PIXELS);
                }
                let input = if listing {
                    Input::Listed {
                        pixels,
                        listed: &chunk.listed,
                    }
                } else {
                    Input::Pixels(pixels)
                };
                let mut ws = crate::nn::lock_free_one(workspaces);
                let logits = model.inference(input, rows, &mut ws);
                logits_out.copy_from_slice(logits);
                drop(ws);
                chunk.loss = kernels::elementwise::cross_entropy_and_argmax(
                    logits_out,
                    labels,
                    classes,
                    &mut chunk.predictions[..rows],
                );
            });
        }
        let mut confusion = vec![vec![0usize; classes]; classes];
        let mut loss = 0.0;
        for (start, chunk, logits_out) in &work {
            loss += chunk.loss;
            let rows = logits_out.len() / classes;
            for (&p, &l) in chunk.predictions[..rows]
                .iter()
                .zip(&data.labels()[*start..])
            {
                confusion[usize::from(l)][p] += 1;
            }
        }
        EvalResult::from_confusion(loss, confusion, n)
    }

    /// The [`Dataset::id`] of the dataset whose non-zero pixels this evaluator keeps listed,
    /// if any.
    pub fn listed_dataset(&self) -> Option<u64> {
        self.listed_id
    }

    /// Logits of the last evaluated dataset, `[count, classes]`.
    pub fn logits(&self, count: usize) -> &[f32] {
        &self.logits[..count * self.classes]
    }
}

/// [`Workspace::head`] for forward passes alone: without the gradients and dropout masks a
/// training step keeps (half its size for the tutorial's CNN).
fn eval_head_workspace(model: &Model, rows: usize, head: usize) -> Workspace {
    let mut ws = Workspace::head(model, rows, head, 1);
    ws.grad_a = Vec::new();
    ws.grad_b = Vec::new();
    ws.masks.iter_mut().for_each(|m| *m = Vec::new());
    ws.trainable = false;
    ws
}

/// Evaluates `model` on `data` with fresh buffers (see [`Evaluator`] to reuse them).
pub fn evaluate(model: &Model, data: &Dataset) -> EvalResult {
    Evaluator::new(model, data.len(), None).evaluate(model, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Architecture;

    /// Pixels of `n` made-up images, a third of them zero as in MNIST.
    fn images(n: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_u32;
        (0..n * PIXELS)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                if state % 3 == 0 {
                    0
                } else {
                    (state >> 8) as u8
                }
            })
            .collect()
    }

    #[test]
    fn one_image_on_any_number_of_threads_is_the_models_inference_bit_for_bit() {
        // fc600: three pieces of the split product, the last one short.
        for spec in [
            "conv3x3x4,pool2,fc600,dropout0.5,fc10",
            "conv5x5x32,pool2,conv5x5x64,pool2,fc1024,dropout0.5,fc10",
        ] {
            let model = Model::he_normal(Architecture::from_spec(spec).unwrap(), 7);
            let pixels = images(3);
            let mut ws = Workspace::inference(&model, 3);
            let batch = model.inference(Input::Pixels(&pixels), 3, &mut ws).to_vec();
            for threads in [1, 2, 3] {
                let mut evaluator = Evaluator::new(&model, 1, Some(threads));
                for (i, image) in pixels.chunks_exact(PIXELS).enumerate() {
                    let one = evaluator.one(&model, Input::Pixels(image));
                    assert_eq!(
                        one,
                        &batch[i * 10..(i + 1) * 10],
                        "{spec}, {threads} threads"
                    );
                }
            }
        }
    }

    #[test]
    fn a_head_over_several_chunks_gives_the_logits_of_the_models_inference() {
        let model = Model::he_normal(
            Architecture::from_spec("conv3x3x4,pool2,fc300,dropout0.5,fc10").unwrap(),
            5,
        );
        // Three whole chunks and a short one: one group of four.
        let n = 3 * chunk_rows(&model) + 7;
        let pixels = images(n);
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let data = Dataset::new(pixels.clone(), labels);
        let mut ws = Workspace::inference(&model, 100);
        let mut want = Vec::new();
        for batch in pixels.chunks(100 * PIXELS) {
            let rows = batch.len() / PIXELS;
            want.extend_from_slice(model.inference(Input::Pixels(batch), rows, &mut ws));
        }
        let mut results = Vec::new();
        for threads in [1, 3] {
            let mut evaluator = Evaluator::new(&model, n, Some(threads));
            assert!(evaluator.head.is_some());
            results.push(evaluator.evaluate(&model, &data));
            assert!(evaluator.logits(n) == want, "{threads} threads");
        }
        assert_eq!(results[0], results[1]);
    }

    #[test]
    fn one_example_of_a_dense_model_is_its_inference() {
        let model = Model::he_normal(Architecture::mlp(&[300]), 3);
        let pixels = images(1);
        let mut ws = Workspace::inference(&model, 1);
        let want = model.inference(Input::Pixels(&pixels), 1, &mut ws).to_vec();
        let mut evaluator = Evaluator::new(&model, 1, Some(2));
        assert_eq!(evaluator.one(&model, Input::Pixels(&pixels)), want);
    }
}
