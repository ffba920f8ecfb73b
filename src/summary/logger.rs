//! What the trainer logs: the tutorial's summaries in a `train` and a `test` run.

use super::graph::{architecture_graph, model_graph};
use super::histogram::histogram;
use super::proto::{summary, Summary};
use super::{SummaryError, SummaryWriter};
use std::path::Path;

/// How many columns of the first weight matrix [`TensorBoardLogger::log_weight_images`] draws
/// (all 10 for softmax regression).
pub const MAX_WEIGHT_IMAGES: usize = 10;

/// A read-only view of one parameter tensor, as the model's parameter visitor hands it out.
#[derive(Clone, Copy, Debug)]
pub struct ParamView<'a> {
    /// Path, used as the tag prefix: `variables/Weight`, `variables/Bias`, `layer1/weight`.
    pub path: &'a str,
    /// Shape, outermost first: `[784, 10]` for a weight (row-major, one column per output).
    pub shape: &'a [usize],
    /// The values, `shape.iter().product()` of them.
    pub values: &'a [f32],
}

impl ParamView<'_> {
    fn check(&self) -> Result<(), SummaryError> {
        let expected = self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if expected == Some(self.values.len()) {
            Ok(())
        } else {
            Err(param_error(
                self.path,
                format!(
                    "shape {:?} does not hold the {} values given",
                    self.shape,
                    self.values.len()
                ),
            ))
        }
    }
}

/// The TensorBoard log of one training: `<logdir>/train` and `<logdir>/test`, as in the tutorial.
///
/// Everything is computed and written only when a method is called (at evaluations); each
/// method flushes what it logged before returning.
#[derive(Debug)]
pub struct TensorBoardLogger {
    train: SummaryWriter,
    test: SummaryWriter,
}

impl TensorBoardLogger {
    /// Creates `<logdir>/train` and `<logdir>/test`, each with a new event file.
    pub fn create(logdir: &Path) -> Result<Self, SummaryError> {
        let mut logger = TensorBoardLogger {
            train: SummaryWriter::create(&logdir.join("train"))?,
            test: SummaryWriter::create(&logdir.join("test"))?,
        };
        // Both files exist with their header at once, so TensorBoard lists the runs from the start.
        logger.flush()?;
        Ok(logger)
    }

    /// Logs one evaluation at `step` into both runs, as the tutorial's one merged summary
    /// evaluated for each writer:
    /// - `loss/cross_entropy` and `evaluation/accuracy` (from `train` and `test`, each a
    ///   `(loss, accuracy)` pair);
    /// - for each parameter: `<path>/summaries/{mean,stddev,max,min}` (stddev over all
    ///   elements, population) and the histogram `<path>/summaries/histogram`: the same
    ///   values in both runs, since both see the same weights;
    /// - the histogram `logits/logits_histogram`: of `train_logits` (a training batch) in the
    ///   train run, of `test_logits` (the test set) in the test run.
    ///
    /// Then flushes both runs. Fails before writing anything if a parameter's values do not
    /// match its shape.
    pub fn log_eval(
        &mut self,
        step: i64,
        train: (f32, f32),
        test: (f32, f32),
        params: &[ParamView<'_>],
        train_logits: &[f32],
        test_logits: &[f32],
    ) -> Result<(), SummaryError> {
        for param in params {
            param.check()?;
        }
        let mut variables = Vec::new();
        for param in params {
            let stats = Stats::of(param.values);
            let prefix = format!("{}/summaries", param.path);
            for (name, value) in [
                ("mean", stats.mean),
                ("stddev", stats.stddev),
                ("max", stats.max),
                ("min", stats.min),
            ] {
                variables.push(scalar(&format!("{prefix}/{name}"), value as f32));
            }
            variables.push(summary::Value {
                tag: format!("{prefix}/histogram"),
                kind: Some(summary::value::Kind::Histo(histogram(param.values))),
            });
        }
        for (writer, evaluation, logits) in [
            (&mut self.train, train, train_logits),
            (&mut self.test, test, test_logits),
        ] {
            let mut values = eval_scalars(evaluation);
            values.extend(variables.iter().cloned());
            values.push(summary::Value {
                tag: "logits/logits_histogram".into(),
                kind: Some(summary::value::Kind::Histo(histogram(logits))),
            });
            writer.add_summary(Summary { value: values }, step);
        }
        self.flush()
    }

    /// Writes the model's graph (see [`model_graph`]) into the train run and flushes it.
    pub fn log_graph(
        &mut self,
        input: usize,
        hidden: &[usize],
        classes: usize,
    ) -> Result<(), SummaryError> {
        self.train.add_graph(&model_graph(input, hidden, classes));
        self.train.flush()
    }

    /// Writes the graph of any architecture (see [`architecture_graph`]) into the train run
    /// and flushes it.
    pub fn log_architecture_graph(
        &mut self,
        arch: &crate::nn::Architecture,
    ) -> Result<(), SummaryError> {
        self.train.add_graph(&architecture_graph(arch));
        self.train.flush()
    }

    /// Draws the first 2-D parameter in `params` (the first layer's weight, `[pixels, units]`)
    /// as greyscale images, one per column (the first `MAX_WEIGHT_IMAGES`, 10), into the train run
    /// under `<path>/images/image/<k>`; each column is scaled from its min..max to 0..255
    /// (a constant column is mid-grey). The row count must be a square (784 = 28x28).
    /// Does nothing if no parameter is 2-D. Flushes the train run.
    pub fn log_weight_images(
        &mut self,
        step: i64,
        params: &[ParamView<'_>],
    ) -> Result<(), SummaryError> {
        let Some(weight) = params.iter().find(|p| p.shape.len() == 2) else {
            return Ok(());
        };
        weight.check()?;
        let (rows, cols) = (weight.shape[0], weight.shape[1]);
        let side = (rows as f64).sqrt().round() as usize;
        if side * side != rows || side == 0 {
            return Err(param_error(
                weight.path,
                format!("{rows} rows do not make a square image"),
            ));
        }
        let side_u32 = u32::try_from(side)
            .map_err(|_| param_error(weight.path, format!("{rows} rows are too many")))?;
        let mut column = vec![0.0f32; rows];
        let mut pixels = vec![0u8; rows];
        for k in 0..cols.min(MAX_WEIGHT_IMAGES) {
            for (r, v) in column.iter_mut().enumerate() {
                *v = weight.values[r * cols + k];
            }
            scale_to_bytes(&column, &mut pixels);
            let tag = format!("{}/images/image/{k}", weight.path);
            self.train
                .add_image_gray(&tag, side_u32, side_u32, &pixels, step)?;
        }
        self.train.flush()
    }

    /// Writes everything logged so far in both runs.
    pub fn flush(&mut self) -> Result<(), SummaryError> {
        self.train.flush()?;
        self.test.flush()
    }

    /// The train run's writer, to log more.
    pub fn train_writer(&mut self) -> &mut SummaryWriter {
        &mut self.train
    }

    /// The test run's writer, to log more.
    pub fn test_writer(&mut self) -> &mut SummaryWriter {
        &mut self.test
    }
}

fn param_error(path: &str, problem: String) -> SummaryError {
    SummaryError::Param {
        path: path.to_string(),
        problem,
    }
}

fn scalar(tag: &str, value: f32) -> summary::Value {
    summary::Value {
        tag: tag.to_string(),
        kind: Some(summary::value::Kind::SimpleValue(value)),
    }
}

fn eval_scalars((loss, accuracy): (f32, f32)) -> Vec<summary::Value> {
    vec![
        scalar("loss/cross_entropy", loss),
        scalar("evaluation/accuracy", accuracy),
    ]
}

/// The tutorial's `variable_summaries`, accumulated in f64.
#[derive(Debug, PartialEq)]
struct Stats {
    mean: f64,
    stddev: f64,
    max: f64,
    min: f64,
}

impl Stats {
    fn of(values: &[f32]) -> Stats {
        if values.is_empty() {
            return Stats {
                mean: 0.0,
                stddev: 0.0,
                max: 0.0,
                min: 0.0,
            };
        }
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        let (min, max) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(f64::from(v)), hi.max(f64::from(v)))
            });
        Stats {
            mean,
            stddev: var.sqrt(),
            max,
            min,
        }
    }
}

/// Maps `values` linearly from their min..max onto 0..255 (a constant input is 128).
fn scale_to_bytes(values: &[f32], out: &mut [u8]) {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    for (o, &v) in out.iter_mut().zip(values) {
        *o = if range > 0.0 && range.is_finite() {
            ((v - lo) / range * 255.0).round().clamp(0.0, 255.0) as u8
        } else {
            128
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_match_hand_values() {
        let s = Stats::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            s,
            Stats {
                mean: 2.5,
                stddev: 1.25f64.sqrt(),
                max: 4.0,
                min: 1.0
            }
        );
    }

    #[test]
    fn scaling_spans_the_byte_range() {
        let mut out = [0u8; 3];
        scale_to_bytes(&[-1.0, 0.0, 1.0], &mut out);
        assert_eq!(out, [0, 128, 255]);
        scale_to_bytes(&[0.0, 0.0, 0.0], &mut out);
        assert_eq!(out, [128, 128, 128]);
    }

    #[test]
    fn mismatched_shape_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut tb = TensorBoardLogger::create(dir.path()).unwrap();
        let w = [0.0f32; 5];
        let params = [ParamView {
            path: "variables/Weight",
            shape: &[2, 3],
            values: &w,
        }];
        let err = tb
            .log_eval(0, (1.0, 0.5), (1.0, 0.5), &params, &[], &[])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter variables/Weight: shape [2, 3] does not hold the 5 values given"
        );
        let w = [0.0f32; 15];
        let params = [ParamView {
            path: "layer1/weight",
            shape: &[5, 3],
            values: &w,
        }];
        let err = tb.log_weight_images(0, &params).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter layer1/weight: 5 rows do not make a square image"
        );
    }
}
