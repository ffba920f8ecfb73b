//! Pictures of a model and a dataset, and the one-page HTML report: the glue between
//! [`inspect`] (which runs the model) and the drawing modules beside this one (which draw
//! slices). Each `softnet` picture subcommand is one call here.

use thiserror::Error;

use crate::analysis::calibration::{most_confident_mistakes, CalibrationReport, ConfidentMistake};
use crate::analysis::fooling::fooling_rate;
use crate::analysis::inspect::{
    self, calibration_at, evaluate_with_logits, fgsm_sweep, fit_model_temperature, to_unit,
    weight_fooling_sweep, FgsmOutcome, InspectError,
};
use crate::data::{Dataset, Mnist, PIXELS};
use crate::nn::Model;
use crate::render::digits::{digits_grid_f32, digits_grid_with, DigitsGrid, F32Range};
use crate::render::plots::{calibration_figure, fooling_rate_plot};
use crate::render::report::HtmlReport;
use crate::render::weights::weights_grid;
use crate::render::{RenderError, RgbImage};

/// Why a picture or the report could not be made.
#[derive(Debug, Error)]
pub enum PictureError {
    /// The analysis behind the picture failed.
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// Drawing or writing failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Nothing to draw.
    #[error("pictures: {0}")]
    Empty(String),
}

/// The default fooling scales: the tutorial's `W[:, target]` at a quarter to four times.
pub const WEIGHT_SCALES: [f32; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

/// The default FGSM step sizes (pixel units, images in [0, 1]).
pub const FGSM_EPSILONS: [f32; 6] = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2];

/// Columns of a near-square grid of `n` tiles (5 for 25).
fn square_cols(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).max(1)
}

/// The first `count` digits of `data` in a near-square grid, each captioned with its label.
pub fn digits_picture(
    data: &Dataset,
    count: usize,
    title: Option<&str>,
) -> Result<RgbImage, PictureError> {
    let n = count.min(data.len());
    if n == 0 {
        return Err(PictureError::Empty("no digits to show".into()));
    }
    let captions: Vec<String> = data.labels()[..n]
        .iter()
        .map(|l| format!("label {l}"))
        .collect();
    let mut opts = DigitsGrid::new(square_cols(n));
    if let Some(t) = title {
        opts = opts.title(t);
    }
    Ok(digits_grid_with(
        &data.pixels()[..n * PIXELS],
        &captions,
        &opts,
    )?)
}

/// The model's first-layer weights as images. Softmax regression: the columns `W[:, j]`,
/// titled by class, in two rows. A deeper model: the first `units` units of `layer1/weight`;
/// a convolutional one: its first `units` filters.
pub fn weights_picture(model: &Model, units: usize) -> Result<RgbImage, PictureError> {
    let layer = &model.layers()[0];
    if layer.convolutional {
        return filters_picture(model, units);
    }
    let w = model.weight(0);
    let arch = model.architecture();
    let (columns, titles, grid_cols, title): (Vec<usize>, Vec<String>, usize, String) = if arch
        .is_softmax_regression()
    {
        let cols: Vec<usize> = (0..layer.fan_out).collect();
        (
            cols.clone(),
            cols.iter().map(|c| c.to_string()).collect(),
            layer.fan_out.div_ceil(2).max(1),
            "Weights W[:, j] per class (red: evidence for the class, blue: against)".to_string(),
        )
    } else {
        let n = units.clamp(1, layer.fan_out);
        let cols: Vec<usize> = (0..n).collect();
        (
            cols.clone(),
            cols.iter().map(|c| format!("unit {c}")).collect(),
            square_cols(n).max(4).min(n),
            format!(
                "{}: units 0\u{2013}{} of {} ({})",
                layer.weight_path,
                n - 1,
                layer.fan_out,
                arch.describe()
            ),
        )
    };
    Ok(weights_grid(
        w,
        layer.fan_in,
        layer.fan_out,
        &columns,
        &titles,
        grid_cols,
        Some(&title),
    )?)
}

/// A convolutional model's first filters, `[kh, kw, in, out]`: the first `units` filters as
/// `kh x kw` images of their first input channel (MNIST's only one), in a near-square grid.
fn filters_picture(model: &Model, units: usize) -> Result<RgbImage, PictureError> {
    let layer = &model.layers()[0];
    let (kh, kw, channels, filters) = match layer.weight_shape[..] {
        [kh, kw, channels, filters] => (kh, kw, channels, filters),
        _ => {
            return Err(PictureError::Empty(format!(
                "{} has shape {:?}, not [kh, kw, in, out]",
                layer.weight_path, layer.weight_shape
            )))
        }
    };
    if kh != kw {
        return Err(PictureError::Empty(format!(
            "{}: only square filters are drawn, not {kh}x{kw}",
            layer.weight_path
        )));
    }
    let n = units.clamp(1, filters);
    // Channel 0 of each filter as a [kh * kw, n] matrix, the layout the grid draws.
    let w = model.weight(0);
    let mut shown = vec![0.0f32; kh * kw * n];
    for pixel in 0..kh * kw {
        let row = &w[pixel * channels * filters..][..filters];
        shown[pixel * n..(pixel + 1) * n].copy_from_slice(&row[..n]);
    }
    let channel_note = if channels > 1 {
        format!(", input channel 0 of {channels}")
    } else {
        String::new()
    };
    let title = format!(
        "{}: filters 0\u{2013}{} of {filters}, {kh}x{kw}{channel_note}",
        layer.weight_path,
        n - 1
    );
    let columns: Vec<usize> = (0..n).collect();
    let titles: Vec<String> = columns.iter().map(|c| format!("filter {c}")).collect();
    Ok(weights_grid(
        &shown,
        kh * kw,
        n,
        &columns,
        &titles,
        square_cols(n).max(4).min(n),
        Some(&title),
    )?)
}

/// Digits changed by an attack, each captioned `label → prediction`; digits now predicted
/// as `marked_when(label, prediction)` says are framed in red. Each image is shown over its
/// own value range, as the tutorial's `imshow` does, since added weights leave [0, 1].
pub fn changed_digits_picture(
    images: &[f32],
    labels: &[u8],
    predictions: &[u8],
    title: &str,
    marked_when: impl Fn(u8, u8) -> bool,
) -> Result<RgbImage, PictureError> {
    let n = labels.len().min(predictions.len());
    if n == 0 {
        return Err(PictureError::Empty("no digits to show".into()));
    }
    let captions: Vec<String> = labels
        .iter()
        .zip(predictions)
        .map(|(l, p)| format!("{l} \u{2192} pred {p}"))
        .collect();
    let marked = labels
        .iter()
        .zip(predictions)
        .map(|(&l, &p)| marked_when(l, p))
        .collect();
    let opts = DigitsGrid::new(square_cols(n))
        .title(title)
        .marked(marked)
        .f32_range(F32Range::PerImage);
    Ok(digits_grid_f32(&images[..n * PIXELS], &captions, &opts)?)
}

/// Stacks pictures top to bottom on white, left-aligned (e.g. calibration before and after a
/// temperature).
pub fn stack_vertically(parts: &[RgbImage]) -> RgbImage {
    let width = parts.iter().map(|p| p.width).max().unwrap_or(0);
    let height = parts.iter().map(|p| p.height).sum();
    let mut out = RgbImage::new(width, height, [255; 3]);
    let mut top = 0usize;
    let row_bytes = width as usize * 3;
    for p in parts {
        let pw = p.width as usize * 3;
        for y in 0..p.height as usize {
            let dst = (top + y) * row_bytes;
            out.data[dst..dst + pw].copy_from_slice(&p.data[y * pw..(y + 1) * pw]);
        }
        top += p.height as usize;
    }
    out
}

/// Settings of [`model_report`].
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Where the model came from (shown under the title).
    pub model_name: String,
    /// Extra `(key, value)` facts shown in the numbers table (e.g. the model file's
    /// training settings).
    pub metadata: Vec<(String, String)>,
    /// Target class of the weight-image attack.
    pub target: u8,
    /// Scale of the weight image added to the digits shown.
    pub scale: f32,
    /// FGSM step shown and quoted.
    pub eps: f32,
    /// Training images (the last ones) a temperature is fitted on; 0: no temperature.
    pub temperature_fit: usize,
    /// Digits per picture.
    pub count: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            model_name: "model".into(),
            metadata: Vec::new(),
            target: 7,
            scale: 1.0,
            eps: 0.1,
            temperature_fit: 5000,
            count: 25,
        }
    }
}

/// The numbers the report shows, for printing and testing.
#[derive(Debug, Clone)]
pub struct ReportNumbers {
    /// Test accuracy.
    pub accuracy: f64,
    /// Mean test loss.
    pub loss: f64,
    /// Calibration at temperature 1.
    pub calibration: CalibrationReport,
    /// Fitted temperature and the calibration at it.
    pub tempered: Option<(f32, CalibrationReport)>,
    /// Weight-image fooling rate per scale (softmax regression only).
    pub weight_sweep: Option<Vec<(f32, f32)>>,
    /// FGSM outcomes per eps of [`FGSM_EPSILONS`] and the chosen one (last).
    pub fgsm: Vec<FgsmOutcome>,
    /// The most confidently wrong test digits.
    pub mistakes: Vec<ConfidentMistake>,
}

impl ReportNumbers {
    /// The FGSM outcome at the report's eps.
    pub fn fgsm_chosen(&self) -> &FgsmOutcome {
        // `model_report` always appends the chosen eps last.
        &self.fgsm[self.fgsm.len() - 1]
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// Everything about `model` on `mnist` in one self-contained page: the numbers (accuracy,
/// loss, ECE, fooling rates, architecture, metadata), the test digits, the weights, the
/// digits fooled by the weight image (softmax regression) and by FGSM, the fooling curves,
/// calibration before and after temperature scaling, the confusion matrix and the most
/// confidently wrong test digits.
pub fn model_report(
    model: &Model,
    mnist: &Mnist,
    opts: &ReportOptions,
) -> Result<(HtmlReport, ReportNumbers), PictureError> {
    let test = &mnist.test;
    let classes = model.architecture().classes();
    let arch = model.architecture();
    let ev = evaluate_with_logits(model, test)?;
    let calibration = calibration_at(&ev.logits, test.labels(), classes, 1.0)?;
    let tempered = if opts.temperature_fit > 0 && !mnist.train.is_empty() {
        let held = inspect::tail(&mnist.train, opts.temperature_fit);
        let t = fit_model_temperature(model, &held)?;
        Some((t, calibration_at(&ev.logits, test.labels(), classes, t)?))
    } else {
        None
    };
    let probs = inspect::probabilities(&ev.logits, classes, 1.0);
    let mistakes =
        most_confident_mistakes(&probs, test.labels(), classes, 10).map_err(InspectError::from)?;

    let n_show = opts.count.min(test.len());
    let shown = to_unit(&test.pixels()[..n_show * PIXELS]);
    let shown_labels = &test.labels()[..n_show];
    let target = usize::from(opts.target);

    // Weight-image fooling: softmax regression only.
    let weight = if arch.is_softmax_regression() {
        let sweep = weight_fooling_sweep(model, test, target, &WEIGHT_SCALES)?;
        let fooled = inspect::weight_fool(model, &shown, target, opts.scale)?;
        Some((sweep, fooled))
    } else {
        None
    };

    // FGSM on the whole test set; the sweep plus the chosen eps, last.
    let all = to_unit(test.pixels());
    let mut eps: Vec<f32> = FGSM_EPSILONS.to_vec();
    eps.push(opts.eps);
    let (fgsm, adversarial) = fgsm_sweep(model, &all, test.labels(), &eps)?;
    let chosen = &fgsm[fgsm.len() - 1];

    let mut r = HtmlReport::new(format!("softnet report: {}", opts.model_name));
    r.subtitle(format!(
        "{} model, {} parameters, evaluated on {} test digits",
        arch.describe(),
        model.params().len(),
        test.len()
    ));
    let mut rows: Vec<(String, String)> = vec![
        ("architecture".into(), arch.describe()),
        ("parameters".into(), model.params().len().to_string()),
        ("test accuracy".into(), pct(ev.result.accuracy)),
        (
            "test loss (mean cross-entropy)".into(),
            format!("{:.4}", ev.result.loss),
        ),
        ("ECE (10 bins)".into(), format!("{:.4}", calibration.ece)),
    ];
    if let Some((t, cal)) = &tempered {
        rows.push((
            format!(
                "temperature fitted on the last {} training digits",
                opts.temperature_fit.min(mnist.train.len())
            ),
            format!("{t:.3}"),
        ));
        rows.push((
            "ECE after temperature scaling".into(),
            format!("{:.4}", cal.ece),
        ));
    }
    if let Some((sweep, fooled)) = &weight {
        if let Some(&(s, rate)) = sweep.iter().find(|(s, _)| *s == 1.0) {
            rows.push((
                format!("fooling rate towards {target}, W[:, {target}] added at scale {s}"),
                pct(f64::from(rate)),
            ));
        }
        rows.push((
            format!(
                "fooled among the {n_show} digits shown (scale {})",
                opts.scale
            ),
            pct(f64::from(fooling_rate(
                shown_labels,
                &fooled.predictions,
                opts.target,
            ))),
        ));
    }
    rows.push((
        format!("FGSM success rate at eps {}", chosen.eps),
        pct(f64::from(chosen.success_rate)),
    ));
    rows.push((
        format!("accuracy under FGSM at eps {}", chosen.eps),
        pct(f64::from(chosen.accuracy_after)),
    ));
    rows.push((
        "FGSM mean change (L\u{221e} / L2)".into(),
        format!("{:.3} / {:.3}", chosen.mean_linf, chosen.mean_l2),
    ));
    rows.extend(opts.metadata.iter().cloned());
    r.section("Run").numbers(&rows);

    r.section("Test digits").figure(
        &digits_picture(test, n_show, None)?.encode_png()?,
        &format!("The first {n_show} test digits with their labels"),
    );
    let first_is_conv = model.layers().first().is_some_and(|l| l.convolutional);
    let weights_caption = if arch.is_softmax_regression() {
        "W[:, j] for each class j: red pixels are evidence for the class, blue against".to_string()
    } else if first_is_conv {
        "The first convolution's filters, one image each (red positive, blue negative)".to_string()
    } else {
        "The first layer's weights, one image per hidden unit (red positive, blue negative)"
            .to_string()
    };
    r.section("Weights").figure(
        &weights_picture(model, if first_is_conv { 32 } else { 16 })?.encode_png()?,
        &weights_caption,
    );

    r.section("Fooling the classifier");
    if let Some((sweep, fooled)) = &weight {
        let pic = changed_digits_picture(
            &fooled.images,
            shown_labels,
            &fooled.predictions,
            &format!("Test digits + {} \u{00d7} W[:, {target}]", opts.scale),
            |l, p| p == opts.target && l != opts.target,
        )?;
        r.figure(
            &pic.encode_png()?,
            &format!("Digits with W[:, {target}] added; red: fooled into {target} (labelled otherwise, now predicted {target})"),
        );
        let plot = fooling_rate_plot(
            sweep,
            &format!("scale of the added weight image W[:, {target}]"),
            &format!(
                "Fooling rate towards {target} over {} test digits",
                test.len()
            ),
        )?;
        r.figure(
            &plot.encode_png()?,
            &format!(
                "Share of the test digits not labelled {target} that are predicted as {target}"
            ),
        );
    } else {
        r.paragraph(&format!(
            "Adding a class's weight image is defined for softmax regression only; this {} \
             model is attacked with the fast gradient sign method alone.",
            arch.describe()
        ));
    }
    let fgsm_pic = changed_digits_picture(
        &adversarial[..n_show * PIXELS],
        shown_labels,
        &chosen.predictions[..n_show],
        &format!("FGSM, eps {}", chosen.eps),
        |l, p| l != p,
    )?;
    r.figure(
        &fgsm_pic.encode_png()?,
        &format!(
            "Fast gradient sign attack at eps {}; red: now misclassified",
            chosen.eps
        ),
    );
    let points: Vec<(f32, f32)> = fgsm[..fgsm.len() - 1]
        .iter()
        .map(|o| (o.eps, o.success_rate))
        .collect();
    r.figure(
        &fooling_rate_plot(
            &points,
            "FGSM step eps (pixel values in [0, 1])",
            "FGSM success rate (correct digits made wrong)",
        )?
        .encode_png()?,
        "Share of correctly classified test digits that FGSM makes wrong, per eps",
    );

    r.section("Confidence and accuracy").figure(
        &calibration_figure(&calibration, "Test set")?.encode_png()?,
        "Max posterior of correct and wrong digits, and accuracy per confidence bin",
    );
    if let Some((t, cal)) = &tempered {
        r.figure(
            &calibration_figure(cal, &format!("Temperature {t:.2}"))?.encode_png()?,
            "The same after temperature scaling",
        );
    }

    r.section("Confusion matrix");
    r.confusion_matrix(&ev.confusion_flat(), classes)?;
    let mut mx = Vec::with_capacity(mistakes.len() * PIXELS);
    for m in &mistakes {
        mx.extend_from_slice(test.image(m.index));
    }
    if !mistakes.is_empty() {
        let captions: Vec<String> = mistakes
            .iter()
            .map(|m| format!("{} \u{2192} {} ({:.2})", m.label, m.predicted, m.confidence))
            .collect();
        let pic = digits_grid_with(
            &mx,
            &captions,
            &DigitsGrid::new(5).marked(vec![true; mistakes.len()]),
        )?;
        r.confident_mistakes(&pic.encode_png()?, &mistakes);
    }

    let numbers = ReportNumbers {
        accuracy: ev.result.accuracy,
        loss: ev.result.loss,
        calibration,
        tempered,
        weight_sweep: weight.map(|(s, _)| s),
        fgsm,
        mistakes,
    };
    Ok((r, numbers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacking_keeps_each_picture() {
        let a = RgbImage::new(3, 2, [10; 3]);
        let b = RgbImage::new(5, 1, [20; 3]);
        let s = stack_vertically(&[a, b]);
        assert_eq!((s.width, s.height), (5, 3));
        assert_eq!(s.pixel(2, 1), Some([10; 3]));
        assert_eq!(s.pixel(4, 1), Some([255; 3]));
        assert_eq!(s.pixel(4, 2), Some([20; 3]));
    }

    #[test]
    fn square_grids() {
        assert_eq!(square_cols(25), 5);
        assert_eq!(square_cols(10), 4);
        assert_eq!(square_cols(1), 1);
    }
}
