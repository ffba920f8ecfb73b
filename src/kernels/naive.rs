//! Naive reference kernels: the specification of every kernel and the oracle of the
//! property tests. Plain loops, f64 accumulation, no cleverness.

use super::gemm::MatRef;

/// `C = A·B` (or `C += A·B`) by the triple loop, accumulating each dot product in f64.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                s += f64::from(a.data[i * a.row_stride + p * a.col_stride])
                    * f64::from(b.data[p * b.row_stride + j * b.col_stride]);
            }
            let out = &mut c[i * ldc + j];
            *out = if accumulate {
                *out + s as f32
            } else {
                s as f32
            };
        }
    }
}

/// `y += alpha * x`.
pub fn scaled_add(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv += alpha * xv;
    }
}

/// Adds `bias` to each row.
pub fn add_bias_rows(m: &mut [f32], bias: &[f32]) {
    for (i, v) in m.iter_mut().enumerate() {
        *v += bias[i % bias.len()];
    }
}

/// Column sums of a `[rows, cols]` matrix.
pub fn column_sums(m: &[f32], cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f64; cols];
    for (i, v) in m.iter().enumerate() {
        out[i % cols] += f64::from(*v);
    }
    out.into_iter().map(|v| v as f32).collect()
}

/// Softmax cross-entropy by the textbook formula in f64: returns the summed loss and
/// `scale * (p - onehot)`.
pub fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u8],
    classes: usize,
    scale: f32,
) -> (f64, Vec<f32>) {
    let mut loss = 0.0;
    let mut grad = Vec::with_capacity(logits.len());
    for (z, &label) in logits.chunks(classes).zip(labels) {
        let max = z
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let sum: f64 = z.iter().map(|&v| (f64::from(v) - max).exp()).sum();
        let lse = max + sum.ln();
        loss += lse - f64::from(z[usize::from(label)]);
        for (j, &v) in z.iter().enumerate() {
            let p = (f64::from(v) - lse).exp();
            let onehot = if j == usize::from(label) { 1.0 } else { 0.0 };
            grad.push(((p - onehot) * f64::from(scale)) as f32);
        }
    }
    (loss, grad)
}

/// Row-wise softmax in f64.
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f32> {
    let (_, grad) = softmax_cross_entropy(logits, &vec![0; logits.len() / classes], classes, 1.0);
    // p = grad + onehot(0)
    grad.iter()
        .enumerate()
        .map(|(i, g)| if i % classes == 0 { g + 1.0 } else { *g })
        .collect()
}

/// Argmax of each row (first on ties).
pub fn argmax_rows(m: &[f32], cols: usize) -> Vec<usize> {
    m.chunks(cols)
        .map(|row| {
            let mut best = 0;
            for j in 1..row.len() {
                if row[j] > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// ReLU.
pub fn relu(values: &[f32]) -> Vec<f32> {
    values
        .iter()
        .map(|v| if *v > 0.0 { *v } else { 0.0 })
        .collect()
}

// Convolution and max-pooling: `conv2d_forward`, `conv2d_backward_input`,
// `conv2d_backward_filter` (and their f64 versions), `max_pool_forward`, `max_pool_backward`.
pub use super::naive_conv::*;
