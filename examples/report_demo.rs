//! Every picture and the HTML report from synthetic data, without a trained model or MNIST.
//!
//! Digits are the font's glyphs "0".."9" drawn at random sizes and offsets with noise; the
//! "model" is template matching (class mean minus overall mean, a stand-in for softmax
//! regression's W), made over-confident on purpose so calibration has something to show.
//!
//! ```text
//! cargo run --release --example report_demo -- OUT_DIR
//! tests/report_browser_check.sh OUT_DIR/report.html OUT_DIR
//! ```

use std::path::PathBuf;

use plotters::backend::{BitMapBackend, RGBPixel};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use softnet::analysis::calibration::{
    fit_temperature, most_confident_mistakes, reliability, softmax_with_temperature,
};
use softnet::analysis::fooling::{add_scaled, fooling_rate, fooling_sweep};
use softnet::render::digits::{
    digits_grid, digits_grid_f32, digits_grid_with, DigitsGrid, F32Range,
};
use softnet::render::font::{register_fonts, FAMILY};
use softnet::render::plots::{calibration_figure, fooling_rate_plot};
use softnet::render::report::HtmlReport;
use softnet::render::weights::weights_grid;

const D: usize = 784;
/// Sharpness of the demo model (1 / noise variance is about 64).
const K: f32 = 4.0;
/// Scale of the weight image added in the fooling grid.
const FOOL_SCALE: f32 = 0.4;

/// One 28x28 synthetic digit (u8, 0 = background).
fn synth_digit(class: u8, rng: &mut ChaCha8Rng) -> Vec<u8> {
    register_fonts();
    let mut rgb = vec![0u8; D * 3];
    {
        let root = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut rgb, (28, 28))
            .expect("buffer is 28x28x3")
            .into_drawing_area();
        let size = rng.random_range(22.0..28.0);
        let style = FontDesc::new(FontFamily::Name(FAMILY), size, FontStyle::Bold)
            .color(&WHITE)
            .pos(Pos::new(HPos::Center, VPos::Center));
        let (dx, dy) = (rng.random_range(-2..=2), rng.random_range(-2..=2));
        root.draw(&Text::new(class.to_string(), (14 + dx, 14 + dy), style))
            .expect("draw digit");
        root.present().expect("present");
    }
    rgb.chunks_exact(3)
        .map(|p| {
            let noise: f32 = rng.random_range(0.0..110.0);
            (f32::from(p[0]) * 0.8 + noise).min(255.0) as u8
        })
        .collect()
}

fn dataset(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * D);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let c = rng.random_range(0..10u8);
        images.extend(synth_digit(c, &mut rng));
        labels.push(c);
    }
    (images, labels)
}

fn to_f32(images: &[u8]) -> Vec<f32> {
    images.iter().map(|&p| f32::from(p) / 255.0).collect()
}

/// logits = x W + b (W is [784, 10], b is [10]).
fn logits(x: &[f32], w: &[f32], b: &[f32; 10]) -> Vec<f32> {
    x.chunks_exact(D)
        .flat_map(|img| {
            (0..10).map(move |j| {
                b[j] + img
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| v * w[i * 10 + j])
                    .sum::<f32>()
            })
        })
        .collect()
}

fn argmax_rows(z: &[f32]) -> Vec<u8> {
    z.chunks_exact(10)
        .map(|r| (0..10).fold(0, |b, i| if r[i] > r[b] { i } else { b }) as u8)
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "report-demo".into()),
    );
    std::fs::create_dir_all(&out)?;

    // "Training": nearest class mean as a linear model, logit_c = K (x . m_c - |m_c|^2 / 2);
    // W holds K (m_c - mean_c m_c) (the shared part cancels in the softmax) and b the rest.
    // K is a few times 1 / noise variance, so the model is over-confident.
    let (train_x, train_y) = dataset(2000, 1);
    let train_f = to_f32(&train_x);
    let mut w = vec![0f32; D * 10];
    let mut counts = [0f32; 10];
    let mut b = [0f32; 10];
    for (img, &c) in train_f.chunks_exact(D).zip(&train_y) {
        counts[usize::from(c)] += 1.0;
        for (i, &v) in img.iter().enumerate() {
            w[i * 10 + usize::from(c)] += v;
        }
    }
    for i in 0..D {
        let row = &mut w[i * 10..i * 10 + 10];
        for (j, v) in row.iter_mut().enumerate() {
            *v /= counts[j];
        }
        for (j, v) in row.iter().enumerate() {
            b[j] -= 0.5 * K * v * v;
        }
        let mean = row.iter().sum::<f32>() / 10.0;
        row.iter_mut().for_each(|v| *v = (*v - mean) * K);
    }

    let (test_x, test_y) = dataset(2000, 2);
    let test_f = to_f32(&test_x);
    let z = logits(&test_f, &w, &b);
    let pred = argmax_rows(&z);
    let mut probs = vec![0f32; z.len()];
    softmax_with_temperature(&z, 10, 1.0, &mut probs);

    // show
    let captions: Vec<String> = test_y[..25].iter().map(|l| format!("label {l}")).collect();
    let digits = digits_grid(&test_x[..25 * D], &captions, 5)?;
    digits.save_png(out.join("digits.png"))?;

    // weights
    let titles: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let cols: Vec<usize> = (0..10).collect();
    let weights = weights_grid(
        &w,
        D,
        10,
        &cols,
        &titles,
        5,
        Some("Weights W[:, j] per class"),
    )?;
    weights.save_png(out.join("weights.png"))?;

    // fool: add W[:, 7] (scaled to the pixel range) to the first 25 digits
    let target = 7u8;
    let dir: Vec<f32> = (0..D).map(|i| w[i * 10 + usize::from(target)]).collect();
    let max = dir.iter().fold(0f32, |m, v| m.max(v.abs()));
    let dir: Vec<f32> = dir.iter().map(|v| v / max).collect();
    let mut fooled = vec![0f32; 25 * D];
    add_scaled(&test_f[..25 * D], &dir, FOOL_SCALE, &mut fooled);
    let fooled_pred = argmax_rows(&logits(&fooled, &w, &b));
    let fool_caps: Vec<String> = test_y[..25]
        .iter()
        .zip(&fooled_pred)
        .map(|(l, p)| format!("{l} \u{2192} pred {p}"))
        .collect();
    let marked: Vec<bool> = fooled_pred.iter().map(|&p| p == target).collect();
    let opts = DigitsGrid::new(5)
        .title(format!("Digits + W[:, {target}] (scale {FOOL_SCALE})"))
        .marked(marked)
        .f32_range(F32Range::PerImage);
    let fooled_img = digits_grid_f32(&fooled, &fool_caps, &opts)?;
    fooled_img.save_png(out.join("fooled.png"))?;
    let preds_line: Vec<String> = fooled_pred.iter().map(|p| p.to_string()).collect();
    println!("[{}]", preds_line.join(" "));
    let scales = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0];
    let sweep = fooling_sweep(&test_f, &test_y, &dir, target, &scales, |x, p| {
        p.copy_from_slice(&argmax_rows(&logits(x, &w, &b)));
    });
    for (s, r) in &sweep {
        println!("scale {s:.2}: fooling rate {:.1}%", r * 100.0);
    }
    let fool_plot = fooling_rate_plot(
        &sweep,
        "scale of the added weight image W[:, 7]",
        "Fooling rate towards 7",
    )?;
    fool_plot.save_png(out.join("fooling.png"))?;

    // calibration, before and after a temperature fitted on the training set
    let cal = reliability(&probs, &test_y, 10, 10)?;
    calibration_figure(&cal, "Synthetic digits")?.save_png(out.join("calibration.png"))?;
    let t = fit_temperature(&logits(&train_f, &w, &b), &train_y, 10)?;
    let mut probs_t = vec![0f32; z.len()];
    softmax_with_temperature(&z, 10, t, &mut probs_t);
    let cal_t = reliability(&probs_t, &test_y, 10, 10)?;
    calibration_figure(&cal_t, &format!("After temperature scaling (T = {t:.2})"))?
        .save_png(out.join("calibration_t.png"))?;
    println!(
        "accuracy {:.4}, ECE {:.4} -> {:.4} with T = {t:.3}",
        cal.accuracy, cal.ece, cal_t.ece
    );

    // most confidently wrong
    let mistakes = most_confident_mistakes(&probs, &test_y, 10, 10)?;
    let mut mx = Vec::new();
    for m in &mistakes {
        mx.extend_from_slice(&test_x[m.index * D..(m.index + 1) * D]);
    }
    let m_caps: Vec<String> = mistakes
        .iter()
        .map(|m| format!("{} \u{2192} {} ({:.2})", m.label, m.predicted, m.confidence))
        .collect();
    let mistakes_img = digits_grid_with(
        &mx,
        &m_caps,
        &DigitsGrid::new(5).marked(vec![true; mistakes.len()]),
    )?;
    mistakes_img.save_png(out.join("mistakes.png"))?;

    // confusion matrix
    let mut confusion = vec![0u64; 100];
    for (&l, &p) in test_y.iter().zip(&pred) {
        confusion[usize::from(l) * 10 + usize::from(p)] += 1;
    }

    let mut r = HtmlReport::new("softnet report (synthetic demo)");
    r.subtitle(
        "Synthetic glyph digits and a template-matching model; every number below is made up.",
    )
    .section("Run")
    .numbers(&[
        ("test digits", test_y.len().to_string()),
        ("test accuracy", format!("{:.2}%", cal.accuracy * 100.0)),
        ("ECE (10 bins)", format!("{:.4}", cal.ece)),
        ("fitted temperature", format!("{t:.3}")),
        ("ECE after temperature", format!("{:.4}", cal_t.ece)),
        (
            "fooling rate towards 7 at scale 0.4 (first 25)",
            format!(
                "{:.1}%",
                fooling_rate(&test_y[..25], &fooled_pred, target) * 100.0
            ),
        ),
    ])
    .section("Test digits")
    .figure(
        &digits.encode_png()?,
        "The first 25 test digits with their labels",
    )
    .section("Weights")
    .figure(
        &weights.encode_png()?,
        "W[:, j] for each class j; red: evidence for the class, blue: against",
    )
    .section("Fooling the classifier")
    .figure(
        &fooled_img.encode_png()?,
        "Digits with W[:, 7] added; red: now predicted as 7",
    )
    .figure(
        &fool_plot.encode_png()?,
        "Share of non-7 test digits predicted as 7, per scale",
    )
    .section("Confidence and accuracy")
    .figure(
        &calibration_figure(&cal, "Synthetic digits")?.encode_png()?,
        "Before temperature scaling",
    )
    .figure(
        &calibration_figure(&cal_t, &format!("After temperature scaling (T = {t:.2})"))?
            .encode_png()?,
        "After temperature scaling",
    )
    .section("Confusion matrix");
    r.confusion_matrix(&confusion, 10)?;
    r.confident_mistakes(&mistakes_img.encode_png()?, &mistakes);
    r.save(out.join("report.html"))?;
    println!("wrote {}", out.join("report.html").display());
    Ok(())
}
