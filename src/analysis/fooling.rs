//! Fooling the classifier: the tutorial's weight-image addition and the fast gradient sign
//! method (FGSM, Goodfellow et al. 2015).
//!
//! Images are flat f32 slices in [0, 1] (`[n, 784]` for MNIST, row-major). Nothing here runs a
//! model: predictions and input gradients come from the caller, or through the `predict`
//! closure of [`fooling_sweep`], so this works for every model softnet trains.
//!
//! Shapes are the caller's contract: mismatched lengths panic at the public edge (`assert!`).

/// Share of the samples whose true label is not `target` that are predicted as `target`.
///
/// `labels` and `predictions` are `[n]`. Samples labelled `target` are left out: they cannot be
/// fooled into it. Returns 0 when every sample is labelled `target` (or there are none).
pub fn fooling_rate(labels: &[u8], predictions: &[u8], target: u8) -> f32 {
    assert_eq!(labels.len(), predictions.len(), "fooling_rate: lengths");
    let (mut eligible, mut fooled) = (0usize, 0usize);
    for (&l, &p) in labels.iter().zip(predictions) {
        if l != target {
            eligible += 1;
            fooled += usize::from(p == target);
        }
    }
    if eligible == 0 {
        0.0
    } else {
        fooled as f32 / eligible as f32
    }
}

/// Share of the samples whose prediction differs from their true label (the success rate of an
/// untargeted attack such as FGSM, when measured on the perturbed inputs).
pub fn error_rate(labels: &[u8], predictions: &[u8]) -> f32 {
    assert_eq!(labels.len(), predictions.len(), "error_rate: lengths");
    if labels.is_empty() {
        return 0.0;
    }
    let wrong = labels
        .iter()
        .zip(predictions)
        .filter(|(l, p)| l != p)
        .count();
    wrong as f32 / labels.len() as f32
}

/// `out = image + scale * direction`, without clipping: what the tutorial does when it adds the
/// target class's weight image `W[:, target]` to a digit. The result may leave [0, 1]; the
/// linear model does not care, and it shows how far outside the data the fooling input lies.
///
/// `image` may hold many images (`[n, d]`) when `direction` holds one (`[d]`): the direction is
/// added to each.
pub fn add_scaled(image: &[f32], direction: &[f32], scale: f32, out: &mut [f32]) {
    add_scaled_impl(image, direction, scale, out, |v| v);
}

/// Like [`add_scaled`], then clipped to [0, 1] so the result is still a valid image.
pub fn add_scaled_clipped(image: &[f32], direction: &[f32], scale: f32, out: &mut [f32]) {
    add_scaled_impl(image, direction, scale, out, |v| v.clamp(0.0, 1.0));
}

fn add_scaled_impl(
    image: &[f32],
    direction: &[f32],
    scale: f32,
    out: &mut [f32],
    finish: impl Fn(f32) -> f32,
) {
    assert!(!direction.is_empty(), "add_scaled: empty direction");
    assert_eq!(image.len(), out.len(), "add_scaled: image and out lengths");
    assert_eq!(
        image.len() % direction.len(),
        0,
        "add_scaled: image length is not a multiple of the direction length"
    );
    for (img, o) in image
        .chunks_exact(direction.len())
        .zip(out.chunks_exact_mut(direction.len()))
    {
        for ((o, &x), &d) in o.iter_mut().zip(img).zip(direction) {
            *o = finish(x + scale * d);
        }
    }
}

/// Fast gradient sign method: `out = clip(x + eps * sign(grad_x), 0, 1)`, where `grad_x` is the
/// gradient of the loss (for the true label) with respect to the input `x`.
///
/// A zero gradient entry leaves its pixel unchanged (sign 0), so `eps = 0` changes nothing but
/// the clipping of values already outside [0, 1].
pub fn fgsm_perturb(x: &[f32], grad_x: &[f32], eps: f32, out: &mut [f32]) {
    assert_eq!(x.len(), grad_x.len(), "fgsm_perturb: x and grad_x lengths");
    assert_eq!(x.len(), out.len(), "fgsm_perturb: x and out lengths");
    for ((o, &x), &g) in out.iter_mut().zip(x).zip(grad_x) {
        let sign = if g > 0.0 {
            1.0
        } else if g < 0.0 {
            -1.0
        } else {
            0.0
        };
        *o = (x + eps * sign).clamp(0.0, 1.0);
    }
}

/// L-infinity and L2 norms of `x_adv - x` (one image, or a batch taken as one vector).
pub fn perturbation_norms(x: &[f32], x_adv: &[f32]) -> (f32, f32) {
    assert_eq!(x.len(), x_adv.len(), "perturbation_norms: lengths");
    let (mut linf, mut sq) = (0f32, 0f64);
    for (&a, &b) in x.iter().zip(x_adv) {
        let d = b - a;
        linf = linf.max(d.abs());
        sq += f64::from(d) * f64::from(d);
    }
    (linf, sq.sqrt() as f32)
}

/// Mean over images (`[n, dim]`) of the per-image L-infinity and L2 norms of `x_adv - x`.
pub fn mean_perturbation_norms(x: &[f32], x_adv: &[f32], dim: usize) -> (f32, f32) {
    assert!(dim > 0, "mean_perturbation_norms: dim is 0");
    assert_eq!(x.len(), x_adv.len(), "mean_perturbation_norms: lengths");
    assert_eq!(x.len() % dim, 0, "mean_perturbation_norms: shape");
    let n = x.len() / dim;
    if n == 0 {
        return (0.0, 0.0);
    }
    let (mut linf, mut l2) = (0f64, 0f64);
    for (a, b) in x.chunks_exact(dim).zip(x_adv.chunks_exact(dim)) {
        let (i, t) = perturbation_norms(a, b);
        linf += f64::from(i);
        l2 += f64::from(t);
    }
    ((linf / n as f64) as f32, (l2 / n as f64) as f32)
}

/// The tutorial's sweep: for each `scale`, add `scale * direction` to every image (`[n, dim]`,
/// no clipping, as [`add_scaled`]), predict with `predict(images, predictions_out)`, and
/// measure the [`fooling_rate`] towards `target`. Returns `(scale, rate)` pairs in order, ready
/// for `render::plots::fooling_rate_plot`.
///
/// `predict` receives `[n, dim]` images and fills `[n]` predicted classes.
pub fn fooling_sweep(
    images: &[f32],
    labels: &[u8],
    direction: &[f32],
    target: u8,
    scales: &[f32],
    mut predict: impl FnMut(&[f32], &mut [u8]),
) -> Vec<(f32, f32)> {
    assert_eq!(
        images.len(),
        labels.len() * direction.len(),
        "fooling_sweep: images are not [labels, direction] in shape"
    );
    let mut moved = vec![0f32; images.len()];
    let mut predictions = vec![0u8; labels.len()];
    scales
        .iter()
        .map(|&scale| {
            add_scaled(images, direction, scale, &mut moved);
            predict(&moved, &mut predictions);
            (scale, fooling_rate(labels, &predictions, target))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fooling_rate_ignores_target_labelled_samples() {
        let labels = [7, 1, 2, 3, 7];
        let preds = [7, 7, 2, 7, 1];
        // eligible: 1, 2, 3 -> fooled 1 and 3.
        assert_eq!(fooling_rate(&labels, &preds, 7), 2.0 / 3.0);
        assert_eq!(fooling_rate(&[7, 7], &[1, 7], 7), 0.0);
        assert_eq!(fooling_rate(&[], &[], 7), 0.0);
    }

    #[test]
    fn error_rate_counts_mismatches() {
        assert_eq!(error_rate(&[1, 2, 3, 4], &[1, 0, 3, 0]), 0.5);
        assert_eq!(error_rate(&[], &[]), 0.0);
    }

    #[test]
    fn add_scaled_matches_the_tutorial_and_clipped_stays_in_range() {
        let img = [0.0, 0.5, 1.0, 0.2, 0.9, 0.4];
        let dir = [0.5, -1.0, 0.25];
        let mut out = [0.0; 6];
        add_scaled(&img, &dir, 2.0, &mut out);
        assert_eq!(out, [1.0, -1.5, 1.5, 1.2, -1.1, 0.9]);
        add_scaled_clipped(&img, &dir, 2.0, &mut out);
        assert_eq!(out, [1.0, 0.0, 1.0, 1.0, 0.0, 0.9]);
        add_scaled(&img, &dir, 0.0, &mut out);
        assert_eq!(out, img);
    }

    #[test]
    fn fgsm_with_eps_zero_changes_nothing() {
        let x = [0.0, 0.3, 1.0, 0.7];
        let g = [1.0, -2.0, 0.5, 0.0];
        let mut out = [9.0; 4];
        fgsm_perturb(&x, &g, 0.0, &mut out);
        assert_eq!(out, x);
        assert_eq!(perturbation_norms(&x, &out), (0.0, 0.0));
    }

    #[test]
    fn fgsm_steps_by_eps_along_the_sign_and_clips() {
        let x = [0.0, 0.3, 0.95, 0.7];
        let g = [1.0, -2.0, 0.5, 0.0];
        let mut out = [0.0; 4];
        fgsm_perturb(&x, &g, 0.1, &mut out);
        let want = [0.1, 0.2, 1.0, 0.7];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-6, "{out:?}");
        }
        let (linf, l2) = perturbation_norms(&x, &out);
        assert!((linf - 0.1).abs() < 1e-6);
        // steps 0.1, 0.1, 0.05, 0 -> sqrt(0.0225)
        assert!((l2 - 0.15).abs() < 1e-6, "l2 {l2}");
    }

    #[test]
    fn mean_norms_average_per_image() {
        let x = [0.0; 4];
        let adv = [0.3, 0.4, 0.0, 0.1];
        let (linf, l2) = mean_perturbation_norms(&x, &adv, 2);
        assert!((linf - 0.25).abs() < 1e-6);
        assert!((l2 - 0.3).abs() < 1e-6, "l2 {l2}");
    }

    #[test]
    fn fooling_rate_rises_with_the_scale() {
        // A linear 3-class model on 2 pixels, the class scores are x . w_c; the direction is
        // the target's weight column, as in the tutorial.
        let w = [[1.0f32, 0.0], [0.0, 1.0], [0.6, 0.6]]; // class 2 is the target
        let predict = |imgs: &[f32], out: &mut [u8]| {
            for (img, o) in imgs.chunks_exact(2).zip(out.iter_mut()) {
                let scores: Vec<f32> = w.iter().map(|c| c[0] * img[0] + c[1] * img[1]).collect();
                let best = (0..3).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
                *o = best as u8;
            }
        };
        // Digits at varying distance from the target's region.
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for k in 0..20 {
            let a = 0.2 + 0.04 * k as f32;
            images.extend_from_slice(&[a, 0.1]);
            labels.push(0);
            images.extend_from_slice(&[0.1, a]);
            labels.push(1);
        }
        let scales = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0];
        let sweep = fooling_sweep(&images, &labels, &w[2], 2, &scales, predict);
        let rates: Vec<f32> = sweep.iter().map(|p| p.1).collect();
        assert_eq!(rates[0], 0.0);
        assert!(rates.windows(2).all(|r| r[1] >= r[0]), "{rates:?}");
        assert!(rates[5] > 0.9, "{rates:?}");
        assert!(rates[2] > 0.0 && rates[2] < 1.0, "{rates:?}");
        assert_eq!(sweep[3].0, 2.0);
    }
}
