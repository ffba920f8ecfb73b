//! Row-wise and element-wise kernels: bias add, fused softmax + cross-entropy and its
//! gradient, column sums, argmax, ReLU, scaled add. SIMD ([`super::simd`]) where they are
//! hot.

use super::simd::{dispatch, exp, Simd, SimdKernel};

const LANES: usize = 16;

/// A kernel from a closure that is generic over the level (which closures cannot be):
/// `kernel!(|s| body)` with the captured variables named.
macro_rules! kernel {
    ($name:ident { $($field:ident: $ty:ty),* $(,)? } -> $out:ty, |$s:ident| $body:block) => {{
        struct $name<'a> {
            $($field: $ty,)*
            _life: std::marker::PhantomData<&'a ()>,
        }
        impl SimdKernel for $name<'_> {
            type Output = $out;
            #[inline(always)]
            fn run<S: Simd>(self, $s: S) -> $out {
                let $name { $($field,)* .. } = self;
                $body
            }
        }
        dispatch($name { $($field,)* _life: std::marker::PhantomData })
    }};
}

/// `y += alpha * x`, element-wise (the SGD update is `scaled_add(w, -lr, grad)`).
pub fn scaled_add(y: &mut [f32], alpha: f32, x: &[f32]) {
    assert_eq!(y.len(), x.len(), "scaled_add needs equal lengths");
    kernel!(ScaledAdd { y: &'a mut [f32], alpha: f32, x: &'a [f32] } -> (), |s| {
        let a = s.splat(alpha);
        let mut yc = y.chunks_exact_mut(LANES);
        let mut xc = x.chunks_exact(LANES);
        for (yv, xv) in (&mut yc).zip(&mut xc) {
            // Multiply then add (two roundings), as `w - lr * g` does in the reference
            // frameworks.
            let r = s.add(s.load(yv), s.mul(a, s.load(xv)));
            s.store(r, yv);
        }
        for (yv, xv) in yc.into_remainder().iter_mut().zip(xc.remainder()) {
            *yv += alpha * xv;
        }
    })
}

/// One Adam update's rates and hyper-parameters, the same for every parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// The learning rate of this update.
    pub lr: f32,
    /// L2 weight decay λ (0: none).
    pub weight_decay: f32,
    /// β1.
    pub beta1: f32,
    /// β2.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
    /// The bias corrections of this update, `1 - β1^t` and `1 - β2^t`.
    pub c1: f32,
    /// See `c1`.
    pub c2: f32,
}

/// One Adam update of `w` from the gradient `g`, with the moments `m` and `v` (all the same
/// length), element by element:
/// `g' = g + λw; m = β1 m + (1 - β1) g'; v = β2 v + (1 - β2) g' g'; w -= lr (m / c1) / (√(v / c2) + ε)`,
/// each operation rounded on its own (no fused multiply-adds), so every level gives the
/// bits of the scalar formula.
pub fn adam(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: AdamStep) {
    assert!(
        w.len() == g.len() && g.len() == m.len() && m.len() == v.len(),
        "adam needs equal lengths"
    );
    // Plain loops over fixed-size chunks, dispatched so that the compiler vectorises the
    // divisions and square roots for the level (outside, they ran four lanes wide).
    kernel!(Adam { w: &'a mut [f32], g: &'a [f32], m: &'a mut [f32], v: &'a mut [f32], step: AdamStep } -> (), |_s| {
        let AdamStep { lr, weight_decay: wd, beta1, beta2, eps, c1, c2 } = step;
        let one = |w: &mut f32, g: f32, m: &mut f32, v: &mut f32| {
            let g = g + wd * *w;
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *w -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
        };
        let mut wc = w.chunks_exact_mut(LANES);
        let mut gc = g.chunks_exact(LANES);
        let mut mc = m.chunks_exact_mut(LANES);
        let mut vc = v.chunks_exact_mut(LANES);
        for (((w, g), m), v) in (&mut wc).zip(&mut gc).zip(&mut mc).zip(&mut vc) {
            let w: &mut [f32; LANES] = w.try_into().expect("a chunk");
            let g: &[f32; LANES] = g.try_into().expect("a chunk");
            let m: &mut [f32; LANES] = m.try_into().expect("a chunk");
            let v: &mut [f32; LANES] = v.try_into().expect("a chunk");
            for i in 0..LANES {
                one(&mut w[i], g[i], &mut m[i], &mut v[i]);
            }
        }
        let rest = wc.into_remainder().iter_mut().zip(gc.remainder());
        for ((w, &g), (m, v)) in rest.zip(mc.into_remainder().iter_mut().zip(vc.into_remainder())) {
            one(w, g, m, v);
        }
    })
}

/// `out = a + b`, element by element: the first step of summing shard gradients, one pass
/// instead of a copy and an add.
pub fn sum_into(out: &mut [f32], a: &[f32], b: &[f32]) {
    assert!(
        out.len() == a.len() && a.len() == b.len(),
        "sum_into needs equal lengths"
    );
    kernel!(SumInto { out: &'a mut [f32], a: &'a [f32], b: &'a [f32] } -> (), |s| {
        let mut oc = out.chunks_exact_mut(LANES);
        let (mut ac, mut bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        for ((ov, av), bv) in (&mut oc).zip(&mut ac).zip(&mut bc) {
            s.store(s.add(s.load(av), s.load(bv)), ov);
        }
        for ((ov, av), bv) in oc
            .into_remainder()
            .iter_mut()
            .zip(ac.remainder())
            .zip(bc.remainder())
        {
            *ov = av + bv;
        }
    })
}

/// Adds `bias[j]` to every row of the row-major `[rows, bias.len()]` matrix `m`.
pub fn add_bias_rows(m: &mut [f32], bias: &[f32]) {
    let cols = bias.len();
    assert!(
        cols > 0 || m.is_empty(),
        "bias of length 0 on a non-empty matrix"
    );
    if cols == 0 {
        return;
    }
    assert_eq!(
        m.len() % cols,
        0,
        "matrix length is not a multiple of the bias length"
    );
    // Plain loops, dispatched so that the compiler vectorises them for the level.
    kernel!(AddBias { m: &'a mut [f32], bias: &'a [f32] } -> (), |_s| {
        for row in m.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    })
}

/// `out[j] (+)= Σ_i m[i, j]` over the row-major `[rows, out.len()]` matrix `m`, summing rows
/// in order.
pub fn column_sums_into(m: &[f32], out: &mut [f32], accumulate: bool) {
    let cols = out.len();
    if !accumulate {
        out.fill(0.0);
    }
    if cols == 0 {
        return;
    }
    assert_eq!(
        m.len() % cols,
        0,
        "matrix length is not a multiple of the column count"
    );
    kernel!(ColumnSums { m: &'a [f32], out: &'a mut [f32] } -> (), |_s| {
        for row in m.chunks_exact(out.len()) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
    })
}

/// Index of the largest value of each row of the row-major `[rows, cols]` matrix `m`
/// (the first one on ties, as `argmax` does in numpy and TensorFlow), written to `out`.
pub fn argmax_rows(m: &[f32], cols: usize, out: &mut [usize]) {
    assert!(cols > 0, "argmax over zero columns");
    assert_eq!(
        m.len(),
        out.len() * cols,
        "argmax output has the wrong number of rows"
    );
    for (row, o) in m.chunks_exact(cols).zip(out.iter_mut()) {
        *o = argmax(row);
    }
}

/// Index of the largest value (the first on ties); NaN never wins.
#[inline]
pub fn argmax(row: &[f32]) -> usize {
    let Some(&first) = row.first() else {
        return 0;
    };
    // Selects, not branches: which value wins is data, and a mispredicted branch a row
    // cost more than the whole row.
    let (mut best, mut best_value) = (0, first);
    for (j, &v) in row.iter().enumerate().skip(1) {
        let wins = v > best_value;
        best = if wins { j } else { best };
        best_value = if wins { v } else { best_value };
    }
    best
}

/// Panics unless `logits` holds one row of `classes > 0` values for each label.
fn assert_labelled_logits(logits: &[f32], labels: &[u8], classes: usize) {
    assert!(classes > 0, "softmax over zero classes");
    assert_eq!(
        logits.len(),
        labels.len() * classes,
        "logits are not labels x classes"
    );
}

/// Fused, numerically stable softmax + cross-entropy over the rows of `logits`
/// (`[rows, classes]`, row-major).
///
/// Returns the **sum** over rows of `-log softmax(z)[label]`, computed as
/// `log Σ exp(z - max) - (z_label - max)` so logits up to ±1e4 give neither NaN nor inf.
/// Writes `grad = scale * (softmax(z) - onehot(label))`; with `scale = 1 / batch` that is
/// the gradient of the mean loss with respect to the logits. `grad` doubles as scratch.
pub fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
    scale: f32,
    grad: &mut [f32],
) -> f64 {
    assert_labelled_logits(logits, labels, classes);
    assert_eq!(
        grad.len(),
        logits.len(),
        "gradient and logits differ in size"
    );
    kernel!(SoftmaxXent {
        logits: &'a [f32],
        labels: &'a [u8],
        classes: usize,
        scale: f32,
        grad: &'a mut [f32],
    } -> f64, |s| {
        let mut loss = 0.0f64;
        // Shift each row by its max into `grad`, exponentiate the whole buffer with SIMD,
        // then normalise row by row: N = 10 is too narrow to vectorise per row.
        for (z, g) in logits
            .chunks_exact(classes)
            .zip(grad.chunks_exact_mut(classes))
        {
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for (gv, zv) in g.iter_mut().zip(z) {
                *gv = zv - max;
            }
        }
        exp_slice(s, grad);
        for ((z, g), &label) in logits
            .chunks_exact(classes)
            .zip(grad.chunks_exact_mut(classes))
            .zip(labels)
        {
            let label = usize::from(label);
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = g.iter().sum();
            loss += f64::from(sum.ln() - (z[label] - max));
            let inv = 1.0 / sum;
            for gv in g.iter_mut() {
                *gv = *gv * inv * scale;
            }
            g[label] -= scale;
        }
        loss
    })
}

/// What an evaluation needs of `logits` (`[rows, classes]`, row-major): the sum over rows
/// of the cross-entropy, bit for bit what [`softmax_cross_entropy`] returns, and each row's
/// [`argmax`] in `predictions`, without the gradient.
///
/// Ten classes are too narrow for vectors along a row, so rows go sixteen at a time with a
/// row in each lane (a class to a vector): the same maximum, exponentials and sum as the
/// row-by-row kernel, lane by lane, then the logarithm and the loss row by row, in order.
///
/// ```
/// # use softnet::kernels::elementwise::{argmax_rows, cross_entropy_and_argmax, softmax_cross_entropy};
/// let logits = [0.5, 2.0, -1.0, 3.0, 3.0, 0.0];
/// let mut predictions = [9; 2];
/// let loss = cross_entropy_and_argmax(&logits, &[1, 2], 3, &mut predictions);
/// let mut grad = [0.0; 6];
/// assert_eq!(loss, softmax_cross_entropy(&logits, &[1, 2], 3, 1.0, &mut grad));
/// assert_eq!(predictions, [1, 0]);
/// ```
pub fn cross_entropy_and_argmax(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
    predictions: &mut [usize],
) -> f64 {
    assert_labelled_logits(logits, labels, classes);
    assert_eq!(
        predictions.len(),
        labels.len(),
        "predictions and labels differ in number"
    );
    // The most classes the lanes take; wider rows go row by row.
    const MAX_CLASSES: usize = 16;
    let mut lane_loss = 0.0f64;
    let lane_rows = if classes <= MAX_CLASSES {
        labels.len() / LANES * LANES
    } else {
        0
    };
    let (z_lanes, z_rest) = logits.split_at(lane_rows * classes);
    let (lane_labels, rest_labels) = labels.split_at(lane_rows);
    let (lane_predictions, rest_predictions) = predictions.split_at_mut(lane_rows);
    let loss = &mut lane_loss;
    kernel!(Lanes {
        z_lanes: &'a [f32],
        lane_labels: &'a [u8],
        lane_predictions: &'a mut [usize],
        classes: usize,
        loss: &'a mut f64,
    } -> (), |s| {
        for ((z, group_labels), group_predictions) in z_lanes
            .chunks_exact(LANES * classes)
            .zip(lane_labels.chunks_exact(LANES))
            .zip(lane_predictions.chunks_exact_mut(LANES))
        {
            let mut columns = [s.zero(); MAX_CLASSES];
            for (j, column) in columns[..classes].iter_mut().enumerate() {
                *column = s.load_array(&std::array::from_fn(|lane| z[lane * classes + j]));
            }
            let columns = &columns[..classes];
            let (mut best, mut best_index) = (columns[0], s.zero());
            let mut max = s.max(s.splat(f32::NEG_INFINITY), columns[0]);
            for (j, &column) in columns.iter().enumerate().skip(1) {
                // `>`, as `argmax` compares: the first of equals wins and NaN never does.
                let wins = s.gt(column, best);
                best = s.select(wins, column, best);
                best_index = s.select(wins, s.splat(j as f32), best_index);
                max = s.max(max, column);
            }
            let mut sum = exp(s, s.sub(columns[0], max));
            for &column in &columns[1..] {
                sum = s.add(sum, exp(s, s.sub(column, max)));
            }
            let (max, sum) = (s.to_array(max), s.to_array(sum));
            let best_index = s.to_array(best_index);
            for lane in 0..LANES {
                let label = usize::from(group_labels[lane]);
                *loss += f64::from(sum[lane].ln() - (z[lane * classes + label] - max[lane]));
                group_predictions[lane] = best_index[lane] as usize;
            }
        }
    });
    let mut loss = lane_loss;
    for ((z, &label), prediction) in z_rest
        .chunks_exact(classes)
        .zip(rest_labels)
        .zip(rest_predictions)
    {
        *prediction = argmax(z);
        loss += f64::from(row_cross_entropy(z, usize::from(label)));
    }
    loss
}

/// One row's `log Σ exp(z - max) - (z_label - max)`, rounded step by step as
/// [`softmax_cross_entropy`] rounds it (the exponentials are the same SIMD ones, sixteen
/// at a time), for rows the lanes do not take.
fn row_cross_entropy(z: &[f32], label: usize) -> f32 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum = kernel!(RowSum { z: &'a [f32], max: f32 } -> f32, |s| {
        let mut sum = -0.0f32;
        for chunk in z.chunks(LANES) {
            let mut lanes = [0.0f32; LANES];
            for (lane, &v) in lanes.iter_mut().zip(chunk) {
                *lane = v - max;
            }
            for &e in &s.to_array(exp(s, s.load_array(&lanes)))[..chunk.len()] {
                sum += e;
            }
        }
        sum
    });
    sum.ln() - (z[label] - max)
}

/// Row-wise softmax of `logits` (`[rows, classes]`) into `probs`.
pub fn softmax_rows(logits: &[f32], classes: usize, probs: &mut [f32]) {
    assert!(classes > 0, "softmax over zero classes");
    assert_eq!(
        logits.len(),
        probs.len(),
        "probabilities and logits differ in size"
    );
    assert_eq!(logits.len() % classes, 0, "logits are not rows x classes");
    for (z, p) in logits
        .chunks_exact(classes)
        .zip(probs.chunks_exact_mut(classes))
    {
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for (pv, zv) in p.iter_mut().zip(z) {
            *pv = zv - max;
        }
    }
    exp_in_place(probs);
    for p in probs.chunks_exact_mut(classes) {
        let inv = 1.0 / p.iter().sum::<f32>();
        for v in p.iter_mut() {
            *v *= inv;
        }
    }
}

/// `v = exp(v)` element-wise with the SIMD exponential (the tail goes through the same
/// SIMD path, so every element is rounded alike).
pub fn exp_in_place(values: &mut [f32]) {
    kernel!(ExpInPlace { values: &'a mut [f32] } -> (), |s| {
        exp_slice(s, values)
    })
}

/// [`exp_in_place`] at the level of `s`.
#[inline(always)]
fn exp_slice<S: Simd>(s: S, values: &mut [f32]) {
    let mut chunks = values.chunks_exact_mut(LANES);
    for c in &mut chunks {
        s.store(exp(s, s.load(c)), c);
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let e = exp(s, s.load_partial(tail));
        s.store_partial(e, tail);
    }
}

/// `v = max(v, 0)` element-wise (NaN becomes 0, as `vmaxps` has it).
pub fn relu_in_place(values: &mut [f32]) {
    kernel!(Relu { values: &'a mut [f32] } -> (), |s| {
        let zero = s.zero();
        let mut chunks = values.chunks_exact_mut(LANES);
        for c in &mut chunks {
            s.store(s.max(s.load(c), zero), c);
        }
        for v in chunks.into_remainder() {
            *v = v.max(0.0);
        }
    })
}

/// Back through a ReLU: zeroes `grad` wherever the layer's output `activation` was not
/// positive.
pub fn relu_backward_in_place(grad: &mut [f32], activation: &[f32]) {
    assert_eq!(
        grad.len(),
        activation.len(),
        "gradient and activation differ in size"
    );
    kernel!(ReluBackward { grad: &'a mut [f32], activation: &'a [f32] } -> (), |_s| {
        for (g, &a) in grad.iter_mut().zip(activation) {
            if a <= 0.0 {
                *g = 0.0;
            }
        }
    })
}
