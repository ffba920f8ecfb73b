//! `evaluation`: loss, accuracy and confusion matrix over a whole dataset.

use super::parallel::Pool;
use crate::data::{Dataset, PIXELS};
use crate::kernels;
use crate::nn::{Input, Model, Workspace};

/// Rows evaluated per chunk; chunk results are summed in chunk order.
const CHUNK_ROWS: usize = 500;

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

#[derive(Debug)]
struct Chunk {
    ws: Workspace,
    scratch: Vec<f32>,
    predictions: Vec<usize>,
    loss: f64,
}

/// Reusable buffers for evaluating one model shape, one chunk per worker pass.
#[derive(Debug)]
pub struct Evaluator {
    chunks: Vec<Chunk>,
    pool: Pool,
    classes: usize,
    /// Logits of the last evaluated dataset, `[count, classes]`.
    logits: Vec<f32>,
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
        let classes = model.architecture().classes;
        let chunks = examples.div_ceil(CHUNK_ROWS).max(1);
        Evaluator {
            chunks: (0..chunks)
                .map(|_| Chunk {
                    ws: Workspace::inference(model, CHUNK_ROWS),
                    scratch: vec![0.0; CHUNK_ROWS * classes],
                    predictions: vec![0; CHUNK_ROWS],
                    loss: 0.0,
                })
                .collect(),
            pool,
            classes,
            logits: vec![0.0; examples * classes],
        }
    }

    /// Evaluates `model` on `data` (at most the examples this evaluator was made for).
    pub fn evaluate(&mut self, model: &Model, data: &Dataset) -> EvalResult {
        let n = data.len();
        let classes = self.classes;
        assert!(
            n <= self.chunks.len() * CHUNK_ROWS,
            "evaluator was sized for fewer examples"
        );
        let mut work: Vec<(usize, &mut Chunk, &mut [f32])> = Vec::new();
        let mut logits_left: &mut [f32] = &mut self.logits[..n * classes];
        for (c, chunk) in self.chunks.iter_mut().enumerate() {
            let start = c * CHUNK_ROWS;
            if start >= n {
                break;
            }
            let rows = CHUNK_ROWS.min(n - start);
            let (mine, rest) = logits_left.split_at_mut(rows * classes);
            logits_left = rest;
            work.push((start, chunk, mine));
        }
        self.pool.for_each(&mut work, |(start, chunk, logits_out)| {
            let rows = logits_out.len() / classes;
            let pixels = &data.pixels()[*start * PIXELS..(*start + rows) * PIXELS];
            let labels = &data.labels()[*start..*start + rows];
            let logits = model.inference(Input::Pixels(pixels), rows, &mut chunk.ws);
            logits_out.copy_from_slice(logits);
            chunk.loss = kernels::softmax_cross_entropy(
                logits_out,
                labels,
                classes,
                1.0,
                &mut chunk.scratch[..rows * classes],
            );
            kernels::argmax_rows(logits_out, classes, &mut chunk.predictions[..rows]);
        });
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
        let correct = (0..classes).map(|c| confusion[c][c]).sum();
        EvalResult {
            loss: loss / n.max(1) as f64,
            accuracy: correct as f64 / n.max(1) as f64,
            correct,
            count: n,
            confusion,
        }
    }

    /// Logits of the last evaluated dataset, `[count, classes]`.
    pub fn logits(&self, count: usize) -> &[f32] {
        &self.logits[..count * self.classes]
    }
}

/// Evaluates `model` on `data` with fresh buffers (see [`Evaluator`] to reuse them).
pub fn evaluate(model: &Model, data: &Dataset) -> EvalResult {
    Evaluator::new(model, data.len(), None).evaluate(model, data)
}
