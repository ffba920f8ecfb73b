//! The model-dependent half of the analyses: runs a [`Model`] over a [`Dataset`] and hands the
//! outputs to the slice-level functions of [`calibration`](super::calibration) and
//! [`fooling`](super::fooling).
//!
//! Logits come from [`Model::inference`]; FGSM's input gradient from [`Model::forward`],
//! [`Model::loss`] and [`Model::backward`] with an input-gradient buffer, so every analysis
//! here works for softmax regression and for MLPs alike. The one exception is the tutorial's
//! weight-image addition, which needs the single weight matrix of softmax regression
//! ([`weight_direction`] says so with an error for deeper models).
//!
//! Passes run in chunks of [`CHUNK_ROWS`] rows over one [`Workspace`], so memory stays small
//! whatever the dataset size.

use thiserror::Error;

use super::calibration::{
    fit_temperature, reliability, softmax_with_temperature, CalibrationError, CalibrationReport,
};
use super::fooling::{error_rate, fgsm_perturb, fooling_sweep, mean_perturbation_norms};
use crate::data::{Dataset, PIXELS};
use crate::kernels;
use crate::nn::{Input, Model, Workspace};
use crate::train::{EvalResult, Evaluator};

/// Rows per forward/backward pass.
pub const CHUNK_ROWS: usize = 500;

/// Calibration bins, as in the tutorial (0.1 wide).
pub const BINS: usize = 10;

/// Why an analysis of a model cannot run.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum InspectError {
    /// The model's input width is not the dataset's image size.
    #[error(
        "inspect: the model takes {got} inputs per example, the images have {expected} pixels"
    )]
    InputSize {
        /// The model's input width.
        got: usize,
        /// Pixels per image.
        expected: usize,
    },
    /// The weight-image attack on a model with hidden layers.
    #[error(
        "inspect: adding a class's weight image is defined for softmax regression only; \
         model {arch} has hidden layers, so its first-layer weights are not per-class images \
         (use the fast gradient sign method, --method fgsm, which works for any model)"
    )]
    NotSoftmaxRegression {
        /// The model's architecture (`784-256-10`).
        arch: String,
    },
    /// A target class the model does not have.
    #[error("inspect: target class {target} is not below the model's {classes} classes")]
    Target {
        /// The class asked for.
        target: usize,
        /// The model's class count.
        classes: usize,
    },
    /// A dataset or image batch without examples.
    #[error("inspect: {0} has no examples")]
    Empty(&'static str),
    /// Labels, probabilities or shapes the calibration functions reject.
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
}

fn check_input(model: &Model) -> Result<(), InspectError> {
    let got = model.architecture().input_len();
    if got != PIXELS {
        return Err(InspectError::InputSize {
            got,
            expected: PIXELS,
        });
    }
    Ok(())
}

fn check_target(model: &Model, target: usize) -> Result<(), InspectError> {
    let classes = model.architecture().classes();
    if target >= classes {
        return Err(InspectError::Target { target, classes });
    }
    Ok(())
}

/// Pixels as the model sees them: `value / 255` in [0, 1].
pub fn to_unit(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| f32::from(p) / 255.0).collect()
}

/// A whole dataset through the model: accuracy, loss and confusion matrix, with the logits
/// (`[n, classes]`) kept for the calibration and mistakes analyses.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// Accuracy, mean loss, confusion matrix.
    pub result: EvalResult,
    /// `[n, classes]` logits.
    pub logits: Vec<f32>,
}

impl Evaluated {
    /// The confusion matrix flattened row-major (`[true, predicted]`), as the HTML report takes it.
    pub fn confusion_flat(&self) -> Vec<u64> {
        self.result
            .confusion
            .iter()
            .flatten()
            .map(|&c| c as u64)
            .collect()
    }
}

/// Evaluates `model` on `data` and keeps the logits.
pub fn evaluate_with_logits(model: &Model, data: &Dataset) -> Result<Evaluated, InspectError> {
    check_input(model)?;
    if data.is_empty() {
        return Err(InspectError::Empty("the dataset"));
    }
    let mut evaluator = Evaluator::new(model, data.len(), None);
    let result = evaluator.evaluate(model, data);
    let logits = evaluator.logits(data.len()).to_vec();
    Ok(Evaluated { result, logits })
}

/// Logits (`[n, classes]`) of f32 images (`[n, 784]`, any range: fooled digits leave [0, 1]).
pub fn logits_f32(model: &Model, images: &[f32]) -> Result<Vec<f32>, InspectError> {
    check_input(model)?;
    let dim = model.architecture().input_len();
    if images.len() % dim != 0 {
        return Err(CalibrationError::Shape {
            what: "images",
            got: images.len(),
            expected: images.len() / dim * dim,
        }
        .into());
    }
    let classes = model.architecture().classes();
    let n = images.len() / dim;
    let mut out = vec![0f32; n * classes];
    let mut ws = Workspace::inference(model, CHUNK_ROWS.min(n.max(1)));
    for (x, o) in images
        .chunks(CHUNK_ROWS * dim)
        .zip(out.chunks_mut(CHUNK_ROWS * classes))
    {
        let rows = x.len() / dim;
        o.copy_from_slice(model.inference(Input::Unit(x), rows, &mut ws));
    }
    Ok(out)
}

/// Predicted classes (`[n]`) of f32 images (`[n, 784]`), written into `out`.
pub fn predict_f32(model: &Model, images: &[f32], out: &mut [u8]) -> Result<(), InspectError> {
    let classes = model.architecture().classes();
    let logits = logits_f32(model, images)?;
    if logits.len() != out.len() * classes {
        return Err(CalibrationError::Shape {
            what: "predictions",
            got: out.len(),
            expected: logits.len() / classes,
        }
        .into());
    }
    let mut idx = vec![0usize; out.len()];
    kernels::argmax_rows(&logits, classes, &mut idx);
    for (o, i) in out.iter_mut().zip(idx) {
        // Labels are u8: models with more than 256 classes are out of scope.
        *o = u8::try_from(i).unwrap_or(u8::MAX);
    }
    Ok(())
}

/// Gradient of the summed cross-entropy with respect to the input, `[n, 784]`, for f32
/// images (`[n, 784]`) and their true `labels` (`[n]`): forward, loss, backward with an
/// input-gradient buffer, chunk by chunk. Works for every architecture.
pub fn input_gradient(
    model: &Model,
    images: &[f32],
    labels: &[u8],
) -> Result<Vec<f32>, InspectError> {
    check_input(model)?;
    let dim = model.architecture().input_len();
    let classes = model.architecture().classes();
    if images.len() != labels.len() * dim {
        return Err(CalibrationError::Shape {
            what: "images",
            got: images.len(),
            expected: labels.len() * dim,
        }
        .into());
    }
    if let Some((index, label)) = crate::data::first_label_out_of_range(labels, classes) {
        return Err(CalibrationError::Label {
            index,
            label,
            classes,
        }
        .into());
    }
    let mut grad = vec![0f32; images.len()];
    let mut ws = Workspace::new(model, CHUNK_ROWS.min(labels.len().max(1)));
    // Parameter gradients are a by-product of backward; one arena, overwritten per chunk.
    let mut param_grads = vec![0f32; model.params().len()];
    for ((x, y), g) in images
        .chunks(CHUNK_ROWS * dim)
        .zip(labels.chunks(CHUNK_ROWS))
        .zip(grad.chunks_mut(CHUNK_ROWS * dim))
    {
        let rows = y.len();
        model.forward(Input::Unit(x), rows, &mut ws);
        // Scale 1: the gradient of the sum over rows, so each row's input gradient is its
        // own loss's gradient, independent of the chunking.
        model.loss(y, 1.0, &mut ws);
        model.backward(Input::Unit(x), rows, &mut ws, &mut param_grads, Some(g));
    }
    Ok(grad)
}

/// The tutorial's fooling direction: column `target` of softmax regression's `W[784, 10]`
/// (`[784]`). Errors for models with hidden layers, where no such per-class image exists.
pub fn weight_direction(model: &Model, target: usize) -> Result<Vec<f32>, InspectError> {
    check_input(model)?;
    check_target(model, target)?;
    let arch = model.architecture();
    if !arch.is_softmax_regression() {
        return Err(InspectError::NotSoftmaxRegression {
            arch: arch.describe(),
        });
    }
    let w = model.weight(0); // [784, classes]
    Ok(w.chunks_exact(arch.classes())
        .map(|row| row[target])
        .collect())
}

/// Some digits with `scale * W[:, target]` added (no clipping, as in the tutorial) and the
/// model's new predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightFooled {
    /// The changed images, `[n, 784]`.
    pub images: Vec<f32>,
    /// The model's predictions for them, `[n]`.
    pub predictions: Vec<u8>,
}

/// Adds `scale * W[:, target]` to each of the f32 `images` (`[n, 784]`) and predicts them.
pub fn weight_fool(
    model: &Model,
    images: &[f32],
    target: usize,
    scale: f32,
) -> Result<WeightFooled, InspectError> {
    let dir = weight_direction(model, target)?;
    let mut moved = vec![0f32; images.len()];
    super::fooling::add_scaled(images, &dir, scale, &mut moved);
    let mut predictions = vec![0u8; images.len() / PIXELS];
    predict_f32(model, &moved, &mut predictions)?;
    Ok(WeightFooled {
        images: moved,
        predictions,
    })
}

/// Fooling rate towards `target` over all of `data` (share of the digits not labelled
/// `target` that are predicted as `target` once `scale * W[:, target]` is added), for each of
/// `scales`: `(scale, rate)` pairs in order.
pub fn weight_fooling_sweep(
    model: &Model,
    data: &Dataset,
    target: usize,
    scales: &[f32],
) -> Result<Vec<(f32, f32)>, InspectError> {
    let dir = weight_direction(model, target)?;
    if data.is_empty() {
        return Err(InspectError::Empty("the dataset"));
    }
    let images = to_unit(data.pixels());
    // `weight_direction` checked the model's input width and the target, so prediction
    // cannot fail inside the closure.
    let mut failed = None;
    let sweep = fooling_sweep(
        &images,
        data.labels(),
        &dir,
        target as u8,
        scales,
        |x, out| {
            if let Err(e) = predict_f32(model, x, out) {
                failed = Some(e);
            }
        },
    );
    match failed {
        Some(e) => Err(e),
        None => Ok(sweep),
    }
}

/// What the fast gradient sign method did at one `eps`.
#[derive(Debug, Clone, PartialEq)]
pub struct FgsmOutcome {
    /// Step size of the attack (L-infinity budget).
    pub eps: f32,
    /// Accuracy on the clean images.
    pub accuracy_before: f32,
    /// Accuracy on the perturbed images.
    pub accuracy_after: f32,
    /// Share of the digits classified correctly before that are misclassified after (the
    /// attack's success rate).
    pub success_rate: f32,
    /// Mean over images of the L-infinity size of the change.
    pub mean_linf: f32,
    /// Mean over images of the L2 size of the change.
    pub mean_l2: f32,
    /// Predictions on the perturbed images, `[n]`.
    pub predictions: Vec<u8>,
}

/// The fast gradient sign attack on f32 `images` (`[n, 784]` in [0, 1]) with true `labels`,
/// for each of `epsilons`: `x' = clip(x + eps * sign(dL/dx), 0, 1)`. The gradient is taken
/// once at the clean images (it does not depend on `eps`). Returns one outcome per `eps` and
/// the perturbed images of the last `eps`.
pub fn fgsm_sweep(
    model: &Model,
    images: &[f32],
    labels: &[u8],
    epsilons: &[f32],
) -> Result<(Vec<FgsmOutcome>, Vec<f32>), InspectError> {
    if labels.is_empty() {
        return Err(InspectError::Empty("the image batch"));
    }
    let grad = input_gradient(model, images, labels)?;
    let mut before = vec![0u8; labels.len()];
    predict_f32(model, images, &mut before)?;
    let accuracy_before = 1.0 - error_rate(labels, &before);
    let mut adversarial = vec![0f32; images.len()];
    let mut outcomes = Vec::with_capacity(epsilons.len());
    for &eps in epsilons {
        fgsm_perturb(images, &grad, eps, &mut adversarial);
        let mut after = vec![0u8; labels.len()];
        predict_f32(model, &adversarial, &mut after)?;
        let (mut was_right, mut flipped) = (0usize, 0usize);
        for ((&l, &b), &a) in labels.iter().zip(&before).zip(&after) {
            if l == b {
                was_right += 1;
                flipped += usize::from(a != l);
            }
        }
        let (mean_linf, mean_l2) = mean_perturbation_norms(images, &adversarial, PIXELS);
        outcomes.push(FgsmOutcome {
            eps,
            accuracy_before,
            accuracy_after: 1.0 - error_rate(labels, &after),
            success_rate: if was_right == 0 {
                0.0
            } else {
                flipped as f32 / was_right as f32
            },
            mean_linf,
            mean_l2,
            predictions: after,
        });
    }
    Ok((outcomes, adversarial))
}

/// Posterior probabilities `softmax(logits / temperature)`, `[n, classes]`.
pub fn probabilities(logits: &[f32], classes: usize, temperature: f32) -> Vec<f32> {
    let mut probs = vec![0f32; logits.len()];
    softmax_with_temperature(logits, classes, temperature, &mut probs);
    probs
}

/// Reliability bins and ECE ([`BINS`] bins) of `softmax(logits / temperature)` against
/// `labels`.
pub fn calibration_at(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
    temperature: f32,
) -> Result<CalibrationReport, InspectError> {
    let probs = probabilities(logits, classes, temperature);
    Ok(reliability(&probs, labels, classes, BINS)?)
}

/// The temperature that minimises the NLL of `model` on `held_out` (temperature scaling).
/// Fit it on data that is not the test set.
pub fn fit_model_temperature(model: &Model, held_out: &Dataset) -> Result<f32, InspectError> {
    let ev = evaluate_with_logits(model, held_out)?;
    Ok(fit_temperature(
        &ev.logits,
        held_out.labels(),
        model.architecture().classes(),
    )?)
}

/// The last `n` examples of `data` (all of them if it has fewer), e.g. a slice of the
/// training set to fit a temperature on.
pub fn tail(data: &Dataset, n: usize) -> Dataset {
    let n = n.min(data.len());
    let start = data.len() - n;
    Dataset::new(
        data.pixels()[start * PIXELS..].to_vec(),
        data.labels()[start..].to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Architecture;

    /// Two-class-ish linear model: class c scores `x . w_c`, W[i, c] = 1 on pixel c only.
    fn pixel_model() -> Model {
        let mut m = Model::softmax_regression();
        let mut w = vec![0f32; PIXELS * 10];
        for c in 0..10 {
            w[c * 10 + c] = 1.0;
        }
        assert!(m.set_param("variables/Weight", &w));
        m
    }

    #[test]
    fn predictions_follow_the_brightest_marked_pixel() {
        let m = pixel_model();
        let mut x = vec![0f32; 3 * PIXELS];
        x[4] = 1.0;
        x[PIXELS + 9] = 0.5;
        x[2 * PIXELS + 2] = 0.2;
        let mut p = [0u8; 3];
        predict_f32(&m, &x, &mut p).unwrap();
        assert_eq!(p, [4, 9, 2]);
    }

    #[test]
    fn weight_direction_is_the_column_and_mlps_are_refused() {
        let m = pixel_model();
        let d = weight_direction(&m, 3).unwrap();
        assert_eq!(d.len(), PIXELS);
        assert_eq!(d[3], 1.0);
        assert_eq!(d.iter().sum::<f32>(), 1.0);
        assert!(matches!(
            weight_direction(&m, 10),
            Err(InspectError::Target { target: 10, .. })
        ));
        let mlp = Model::he_normal(Architecture::mlp(&[8]), 1);
        let e = weight_direction(&mlp, 7).unwrap_err();
        assert!(e.to_string().contains("--method fgsm"), "{e}");
        assert!(e.to_string().contains("784-8-10"), "{e}");
    }

    #[test]
    fn input_gradient_of_a_linear_model_is_w_times_p_minus_onehot() {
        // dL/dx = W (p - onehot). With x = 0 and zero bias, p is uniform 0.1.
        let m = pixel_model();
        let x = vec![0f32; PIXELS];
        let g = input_gradient(&m, &x, &[3]).unwrap();
        for (i, &v) in g.iter().enumerate() {
            let want = match i {
                3 => 0.1 - 1.0,
                0..=9 => 0.1,
                _ => 0.0,
            };
            assert!((v - want).abs() < 1e-6, "pixel {i}: {v} vs {want}");
        }
    }

    #[test]
    fn input_gradient_matches_finite_differences_on_an_mlp() {
        let m = Model::he_normal(Architecture::mlp(&[16, 12]), 3);
        let mut x: Vec<f32> = (0..2 * PIXELS)
            .map(|i| ((i * 37) % 101) as f32 / 101.0)
            .collect();
        let labels = [4u8, 7];
        let g = input_gradient(&m, &x, &labels).unwrap();
        let loss = |x: &[f32]| -> f64 {
            let z = logits_f32(&m, x).unwrap();
            z.chunks(10)
                .zip(labels)
                .map(|(r, l)| {
                    let max = r.iter().copied().fold(f32::MIN, f32::max) as f64;
                    let lse = r.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
                    lse - r[usize::from(l)] as f64
                })
                .sum()
        };
        for &i in &[100usize, 400, PIXELS + 250, PIXELS + 600] {
            let h = 1e-2f32;
            let keep = x[i];
            x[i] = keep + h;
            let up = loss(&x);
            x[i] = keep - h;
            let down = loss(&x);
            x[i] = keep;
            let fd = (up - down) / (2.0 * f64::from(h));
            assert!(
                (fd - f64::from(g[i])).abs() < 2e-3 + 0.02 * fd.abs(),
                "pixel {i}: finite difference {fd}, backward {}",
                g[i]
            );
        }
    }

    #[test]
    fn fgsm_eps_zero_changes_nothing_and_larger_eps_hurts() {
        let m = pixel_model();
        // Each image lights its label's pixel a little above the rest.
        let mut x = vec![0.3f32; 10 * PIXELS];
        let labels: Vec<u8> = (0..10).collect();
        for c in 0..10 {
            x[c * PIXELS + c] = 0.35;
        }
        let (out, adv) = fgsm_sweep(&m, &x, &labels, &[0.0]).unwrap();
        assert_eq!(adv, x);
        assert_eq!(out[0].success_rate, 0.0);
        assert_eq!(out[0].accuracy_before, 1.0);
        assert_eq!(out[0].accuracy_after, 1.0);
        assert_eq!((out[0].mean_linf, out[0].mean_l2), (0.0, 0.0));
        let (out, _) = fgsm_sweep(&m, &x, &labels, &[0.01, 0.1]).unwrap();
        // eps 0.01: the 0.05 margin survives (own pixel -0.01, others +0.01 -> margin 0.03).
        assert_eq!(out[0].success_rate, 0.0);
        // eps 0.1: every digit flips.
        assert_eq!(out[1].success_rate, 1.0);
        assert!((out[1].mean_linf - 0.1).abs() < 1e-6);
        // Ten marked pixels move by 0.1 each: L2 = sqrt(10) * 0.1.
        assert!((out[1].mean_l2 - 0.1 * 10f32.sqrt()).abs() < 1e-5);
    }

    #[test]
    fn ragged_images_are_an_error_not_a_panic() {
        let m = pixel_model();
        assert!(matches!(
            logits_f32(&m, &[0.0; PIXELS + 3]),
            Err(InspectError::Calibration(CalibrationError::Shape { .. }))
        ));
        let mut out = [0u8; 3];
        assert!(predict_f32(&m, &[0.0; 2 * PIXELS], &mut out).is_err());
    }

    #[test]
    fn tail_takes_the_last_examples() {
        let data = Dataset::new(
            (0..3 * PIXELS).map(|i| (i / PIXELS) as u8).collect(),
            vec![1, 2, 3],
        );
        let t = tail(&data, 2);
        assert_eq!(t.labels(), &[2, 3]);
        assert_eq!(t.image(0)[0], 1);
        assert_eq!(tail(&data, 9).len(), 3);
    }
}
