//! Confidence versus accuracy: reliability bins, expected calibration error (ECE) and
//! temperature scaling.
//!
//! Inputs are plain row-major slices: `probs` and `logits` are `[n, classes]`, `labels` is
//! `[n]`. Nothing here knows about models; the caller runs the model and hands over its outputs.
//!
//! The "confidence" of a prediction is its largest posterior probability, and the prediction is
//! the first class holding it (ties go to the lower class index, as `argmax` does).

use thiserror::Error;

/// What is wrong with the inputs of a calibration function.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CalibrationError {
    /// A slice's length does not match the shape given.
    #[error("calibration: {what} has {got} values, expected {expected}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The length implied by the other arguments.
        expected: usize,
    },
    /// A label is not a class index.
    #[error("calibration: label {label} at sample {index} is not below the class count {classes}")]
    Label {
        /// Sample index.
        index: usize,
        /// The label found.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// There are no samples, no classes or no bins.
    #[error("calibration: {0} must not be zero")]
    Empty(&'static str),
}

/// One confidence bin of a reliability diagram: samples whose confidence lies in
/// `[lower, upper)` (the last bin also holds confidence 1.0).
#[derive(Debug, Clone, PartialEq)]
pub struct ReliabilityBin {
    /// Lower edge of the bin.
    pub lower: f32,
    /// Upper edge of the bin.
    pub upper: f32,
    /// Samples whose confidence falls in the bin.
    pub count: usize,
    /// Of those, how many were classified correctly.
    pub correct: usize,
    /// Mean confidence of the samples in the bin (0 when the bin is empty).
    pub mean_confidence: f32,
    /// `correct / count` (0 when the bin is empty).
    pub accuracy: f32,
}

/// Everything the calibration figure and the report need.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationReport {
    /// Equal-width bins over [0, 1].
    pub bins: Vec<ReliabilityBin>,
    /// Expected calibration error: `sum_b count_b / n * |accuracy_b - mean_confidence_b|`.
    pub ece: f32,
    /// The confidence (max posterior) of every correctly classified sample, in sample order.
    pub confidences_correct: Vec<f32>,
    /// The confidence of every misclassified sample, in sample order.
    pub confidences_wrong: Vec<f32>,
    /// Share of samples classified correctly.
    pub accuracy: f32,
}

impl CalibrationReport {
    /// Number of samples the report was computed from.
    pub fn samples(&self) -> usize {
        self.confidences_correct.len() + self.confidences_wrong.len()
    }
}

/// A misclassified sample, for the "most confidently wrong" list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfidentMistake {
    /// Index of the sample in the evaluated set.
    pub index: usize,
    /// True label.
    pub label: u8,
    /// Predicted class.
    pub predicted: u8,
    /// The predicted class's probability.
    pub confidence: f32,
}

fn check_shapes(
    values: &[f32],
    what: &'static str,
    labels: &[u8],
    classes: usize,
) -> Result<(), CalibrationError> {
    if classes == 0 {
        return Err(CalibrationError::Empty("the class count"));
    }
    if labels.is_empty() {
        return Err(CalibrationError::Empty("the number of samples"));
    }
    let expected = labels.len() * classes;
    if values.len() != expected {
        return Err(CalibrationError::Shape {
            what,
            got: values.len(),
            expected,
        });
    }
    if let Some((index, label)) = crate::data::first_label_out_of_range(labels, classes) {
        return Err(CalibrationError::Label {
            index,
            label,
            classes,
        });
    }
    Ok(())
}

/// Index and value of the largest entry; ties go to the first.
fn argmax(row: &[f32]) -> (usize, f32) {
    let mut best = (0, row[0]);
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}

/// Reliability diagram and ECE of predicted probabilities `probs` (`[n, classes]`, rows summing
/// to 1) against `labels` (`[n]`), with `bins` equal-width confidence bins over [0, 1]
/// (the tutorial and the issue use 10).
pub fn reliability(
    probs: &[f32],
    labels: &[u8],
    classes: usize,
    bins: usize,
) -> Result<CalibrationReport, CalibrationError> {
    check_shapes(probs, "probs", labels, classes)?;
    if bins == 0 {
        return Err(CalibrationError::Empty("the bin count"));
    }
    let n = labels.len();
    let mut count = vec![0usize; bins];
    let mut correct = vec![0usize; bins];
    // f64 sums: 10_000 confidences near 1.0 lose digits in f32.
    let mut conf_sum = vec![0f64; bins];
    let mut confidences_correct = Vec::new();
    let mut confidences_wrong = Vec::new();
    for (row, &label) in probs.chunks_exact(classes).zip(labels) {
        let (pred, conf) = argmax(row);
        // NaN and values outside [0, 1] land in the end bins rather than out of range.
        let b = ((conf * bins as f32) as usize).min(bins - 1);
        count[b] += 1;
        conf_sum[b] += f64::from(conf);
        if pred == usize::from(label) {
            correct[b] += 1;
            confidences_correct.push(conf);
        } else {
            confidences_wrong.push(conf);
        }
    }
    let mut ece = 0f64;
    let bins: Vec<ReliabilityBin> = (0..bins)
        .map(|b| {
            let (mean_confidence, accuracy) = if count[b] == 0 {
                (0.0, 0.0)
            } else {
                let c = count[b] as f64;
                let mean = conf_sum[b] / c;
                let acc = correct[b] as f64 / c;
                ece += c / n as f64 * (acc - mean).abs();
                (mean as f32, acc as f32)
            };
            ReliabilityBin {
                lower: b as f32 / bins as f32,
                upper: (b + 1) as f32 / bins as f32,
                count: count[b],
                correct: correct[b],
                mean_confidence,
                accuracy,
            }
        })
        .collect();
    let accuracy = confidences_correct.len() as f32 / n as f32;
    Ok(CalibrationReport {
        bins,
        ece: ece as f32,
        confidences_correct,
        confidences_wrong,
        accuracy,
    })
}

/// The `k` misclassified samples with the highest confidence, most confident first (ties: lower
/// sample index first).
pub fn most_confident_mistakes(
    probs: &[f32],
    labels: &[u8],
    classes: usize,
    k: usize,
) -> Result<Vec<ConfidentMistake>, CalibrationError> {
    check_shapes(probs, "probs", labels, classes)?;
    let mut wrong: Vec<ConfidentMistake> = probs
        .chunks_exact(classes)
        .zip(labels)
        .enumerate()
        .filter_map(|(index, (row, &label))| {
            let (pred, confidence) = argmax(row);
            (pred != usize::from(label)).then(|| ConfidentMistake {
                index,
                label,
                // Labels are u8, so models with more than 256 classes are out of scope; saturate
                // rather than panic if one shows up.
                predicted: u8::try_from(pred).unwrap_or(u8::MAX),
                confidence,
            })
        })
        .collect();
    wrong.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.index.cmp(&b.index))
    });
    wrong.truncate(k);
    Ok(wrong)
}

/// `out = softmax(logits / t)` row by row (`logits` and `out` are `[n, classes]`).
///
/// Subtracts the row maximum first so large logits do not overflow.
///
/// # Panics
/// If the slice lengths differ, are not a multiple of `classes`, or `classes` is 0
/// (shapes are the caller's contract, not outside input).
pub fn softmax_with_temperature(logits: &[f32], classes: usize, t: f32, out: &mut [f32]) {
    assert!(classes > 0, "softmax_with_temperature: classes is 0");
    assert_eq!(logits.len(), out.len(), "softmax_with_temperature: lengths");
    assert_eq!(logits.len() % classes, 0, "softmax_with_temperature: shape");
    let inv_t = 1.0 / t;
    for (row, out_row) in logits
        .chunks_exact(classes)
        .zip(out.chunks_exact_mut(classes))
    {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for (o, &z) in out_row.iter_mut().zip(row) {
            *o = ((z - max) * inv_t).exp();
            sum += *o;
        }
        for o in out_row.iter_mut() {
            *o /= sum;
        }
    }
}

/// Mean negative log-likelihood of `labels` under `softmax(logits / t)`, in f64.
pub fn nll_with_temperature(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
    t: f32,
) -> Result<f64, CalibrationError> {
    check_shapes(logits, "logits", labels, classes)?;
    Ok(nll_unchecked(logits, labels, classes, f64::from(t)))
}

fn nll_unchecked(logits: &[f32], labels: &[u8], classes: usize, t: f64) -> f64 {
    let inv_t = 1.0 / t;
    let mut total = 0f64;
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let max = f64::from(max);
        let lse: f64 = row
            .iter()
            .map(|&z| ((f64::from(z) - max) * inv_t).exp())
            .sum::<f64>()
            .ln();
        // -log p_y = lse - (z_y - max) / t
        total += lse - (f64::from(row[usize::from(label)]) - max) * inv_t;
    }
    total / labels.len() as f64
}

/// Smallest and largest temperature `fit_temperature` considers.
pub const TEMPERATURE_RANGE: (f32, f32) = (0.05, 20.0);

/// The temperature `t > 0` minimising the mean NLL of `labels` under `softmax(logits / t)`
/// (temperature scaling, Guo et al. 2017). Fit it on held-out data, not the test set.
///
/// The NLL is convex in `1 / t`, hence unimodal in `log t`: a golden-section search over
/// `log t` in [`TEMPERATURE_RANGE`] (80 steps, far below f32 resolution) finds the minimum
/// deterministically, without gradients.
pub fn fit_temperature(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
) -> Result<f32, CalibrationError> {
    check_shapes(logits, "logits", labels, classes)?;
    let f = |log_t: f64| nll_unchecked(logits, labels, classes, log_t.exp());
    let (mut a, mut b) = (
        f64::from(TEMPERATURE_RANGE.0).ln(),
        f64::from(TEMPERATURE_RANGE.1).ln(),
    );
    let inv_phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - inv_phi * (b - a);
    let mut d = a + inv_phi * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..80 {
        if fc <= fd {
            b = d;
            d = c;
            fd = fc;
            c = b - inv_phi * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + inv_phi * (b - a);
            fd = f(d);
        }
    }
    Ok(((a + b) / 2.0).exp() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Two-class probabilities whose max is `conf`, and labels drawn so that the prediction is
    /// right with probability `conf`: calibrated by construction.
    fn calibrated_case(n: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut probs = Vec::with_capacity(2 * n);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let conf: f32 = rng.random_range(0.5..1.0);
            let pred: u8 = rng.random_range(0..2);
            let right = rng.random::<f32>() < conf;
            let mut row = [1.0 - conf; 2];
            row[usize::from(pred)] = conf;
            probs.extend_from_slice(&row);
            labels.push(if right { pred } else { 1 - pred });
        }
        (probs, labels)
    }

    /// Ten-class logits `sharpness * z`, with labels drawn from `softmax(z)`: a model that is
    /// calibrated at temperature `sharpness` exactly, over-confident at T = 1 when
    /// `sharpness > 1`.
    fn logits_case(n: usize, sharpness: f32, seed: u64) -> (Vec<f32>, Vec<u8>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut logits = Vec::with_capacity(10 * n);
        let mut labels = Vec::with_capacity(n);
        let mut z = [0f32; 10];
        let mut p = [0f32; 10];
        for _ in 0..n {
            let favoured = rng.random_range(0..10);
            for (c, z) in z.iter_mut().enumerate() {
                *z = rng.random_range(-1.0..1.0) + if c == favoured { 2.5 } else { 0.0 };
            }
            softmax_with_temperature(&z, 10, 1.0, &mut p);
            let u: f32 = rng.random();
            let mut acc = 0.0;
            let mut label = 9u8;
            for (c, &pc) in p.iter().enumerate() {
                acc += pc;
                if u < acc {
                    label = c as u8;
                    break;
                }
            }
            logits.extend(z.iter().map(|z| z * sharpness));
            labels.push(label);
        }
        (logits, labels)
    }

    #[test]
    fn hand_computed_bins_accuracy_and_ece() {
        // 4 samples, 3 classes.
        let probs = [
            0.9, 0.05, 0.05, // pred 0, conf 0.9, label 0: right
            0.2, 0.7, 0.1, // pred 1, conf 0.7, label 2: wrong
            0.1, 0.1, 0.8, // pred 2, conf 0.8, label 2: right
            0.35, 0.3, 0.35, // pred 0 (tie with 2, first wins), conf 0.35, label 2: wrong
        ];
        let labels = [0, 2, 2, 2];
        let r = reliability(&probs, &labels, 3, 10).unwrap();
        assert_eq!(r.accuracy, 0.5);
        assert_eq!(r.confidences_correct, vec![0.9, 0.8]);
        assert_eq!(r.confidences_wrong, vec![0.7, 0.35]);
        let counts: Vec<usize> = r.bins.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![0, 0, 0, 1, 0, 0, 0, 1, 1, 1]);
        assert_eq!(r.bins[9].correct, 1);
        assert_eq!(r.bins[7].accuracy, 0.0);
        assert!((r.bins[9].mean_confidence - 0.9).abs() < 1e-6);
        // ECE = 1/4 (|0-0.35| + |0-0.7| + |1-0.8| + |1-0.9|) = 1.35 / 4
        assert!((r.ece - 0.3375).abs() < 1e-6, "ece {}", r.ece);
    }

    #[test]
    fn bin_counts_sum_to_n_and_confidence_one_lands_in_last_bin() {
        let (mut probs, labels) = calibrated_case(1000, 1);
        probs[0] = 1.0;
        probs[1] = 0.0;
        let r = reliability(&probs, &labels, 2, 10).unwrap();
        assert_eq!(r.bins.iter().map(|b| b.count).sum::<usize>(), 1000);
        assert_eq!(r.samples(), 1000);
        assert!(r.bins[9].count > 0);
        // Two classes: nothing below 0.5.
        assert!(r.bins[..5].iter().all(|b| b.count == 0));
        assert_eq!(r.bins[3].lower, 0.3);
        assert_eq!(r.bins[3].upper, 0.4);
    }

    #[test]
    fn perfectly_calibrated_case_has_near_zero_ece() {
        let (probs, labels) = calibrated_case(200_000, 2);
        let r = reliability(&probs, &labels, 2, 10).unwrap();
        assert!(r.ece < 0.01, "ece {}", r.ece);
        // Accuracy equals mean confidence (0.75) when calibrated.
        assert!((r.accuracy - 0.75).abs() < 0.01, "accuracy {}", r.accuracy);
    }

    #[test]
    fn overconfident_case_is_fixed_by_a_temperature_above_one() {
        let (logits, labels) = logits_case(20_000, 3.0, 3);
        let mut probs = vec![0.0; logits.len()];
        softmax_with_temperature(&logits, 10, 1.0, &mut probs);
        let before = reliability(&probs, &labels, 10, 10).unwrap();
        assert!(before.ece > 0.1, "ece before {}", before.ece);

        let t = fit_temperature(&logits, &labels, 10).unwrap();
        // The data were made calibrated at T = 3.
        assert!((t - 3.0).abs() < 0.2, "t {t}");
        softmax_with_temperature(&logits, 10, t, &mut probs);
        let after = reliability(&probs, &labels, 10, 10).unwrap();
        assert!(after.ece < 0.02, "ece {} -> {}", before.ece, after.ece);
        // Temperature does not change predictions.
        assert_eq!(after.accuracy, before.accuracy);
        let nll_fit = nll_with_temperature(&logits, &labels, 10, t).unwrap();
        for other in [t * 0.9, t * 1.1, 1.0] {
            assert!(nll_fit < nll_with_temperature(&logits, &labels, 10, other).unwrap());
        }
    }

    #[test]
    fn underconfident_case_gets_a_temperature_below_one() {
        let (logits, labels) = logits_case(20_000, 0.5, 4);
        let t = fit_temperature(&logits, &labels, 10).unwrap();
        assert!((t - 0.5).abs() < 0.05, "t {t}");
        assert_eq!(t, fit_temperature(&logits, &labels, 10).unwrap());
    }

    #[test]
    fn softmax_rows_sum_to_one_and_temperature_flattens() {
        let logits = [1000.0, 0.0, -1000.0, 1.0, 2.0, 3.0];
        let mut out = [0.0; 6];
        softmax_with_temperature(&logits, 3, 1.0, &mut out);
        assert_eq!(out[0], 1.0);
        assert!((out[3..].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let sharp = out[5];
        softmax_with_temperature(&logits, 3, 10.0, &mut out);
        assert!(out[5] < sharp && out[5] > 1.0 / 3.0);
    }

    #[test]
    fn mistakes_sorted_by_confidence() {
        let probs = [0.9, 0.1, 0.2, 0.8, 0.6, 0.4, 0.05, 0.95];
        let labels = [1, 0, 0, 0];
        let m = most_confident_mistakes(&probs, &labels, 2, 5).unwrap();
        let idx: Vec<usize> = m.iter().map(|m| m.index).collect();
        // sample 2 (0.6 for its label 0) is right; the others are wrong.
        assert_eq!(idx, vec![3, 0, 1]);
        assert_eq!((m[0].label, m[0].predicted), (0, 1));
        assert_eq!(m[0].confidence, 0.95);
        assert_eq!(
            most_confident_mistakes(&probs, &labels, 2, 1)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(
            reliability(&[0.5; 5], &[0, 1], 3, 10),
            Err(CalibrationError::Shape {
                what: "probs",
                got: 5,
                expected: 6
            })
        );
        let e = reliability(&[0.5; 4], &[0, 2], 2, 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "calibration: label 2 at sample 1 is not below the class count 2"
        );
        assert!(reliability(&[], &[], 2, 10).is_err());
        assert!(reliability(&[0.5; 2], &[0], 2, 0).is_err());
        assert!(fit_temperature(&[0.0; 3], &[0], 2).is_err());
    }
}
