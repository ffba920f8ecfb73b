//! Naive convolution and max-pooling: the specification of [`super::conv`] and
//! [`super::pool`], written as the definitions read, over every output and every tap, with
//! f64 sums. Re-exported from [`super::naive`].
//!
//! The `_f64` versions are the same loops in f64 throughout, for gradient checks.

use super::conv::ConvGeometry;
use super::pool::PoolGeometry;

/// The input pixel `(iy, ix)` that tap `(ky, kx)` of the window at output `(oy, ox)` reads,
/// or None when it falls on the padding.
fn tap(g: &ConvGeometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
    let iy = (oy * g.stride + ky).checked_sub(g.pad_top())?;
    let ix = (ox * g.stride + kx).checked_sub(g.pad_left())?;
    (iy < g.height && ix < g.width).then_some((iy, ix))
}

/// Calls `f(input index, filter index, output index)` for every product of the
/// convolution of `rows` images, indices over the whole batch.
fn for_each_product(g: &ConvGeometry, rows: usize, mut f: impl FnMut(usize, usize, usize)) {
    let (oh, ow) = (g.out_height(), g.out_width());
    let (cin, cout) = (g.in_channels, g.out_channels);
    for n in 0..rows {
        for oy in 0..oh {
            for ox in 0..ow {
                for ky in 0..g.kernel_h {
                    for kx in 0..g.kernel_w {
                        let Some((iy, ix)) = tap(g, oy, ox, ky, kx) else {
                            continue;
                        };
                        for ci in 0..cin {
                            for co in 0..cout {
                                f(
                                    n * g.input_len() + (iy * g.width + ix) * cin + ci,
                                    ((ky * g.kernel_w + kx) * cin + ci) * cout + co,
                                    n * g.output_len() + (oy * ow + ox) * cout + co,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// [`conv2d_forward`] in f64: `conv(input, filter) + bias`.
pub fn conv2d_forward_f64(
    g: &ConvGeometry,
    rows: usize,
    input: &[f64],
    filter: &[f64],
    bias: &[f64],
) -> Vec<f64> {
    let mut out: Vec<f64> = (0..rows * g.output_len())
        .map(|i| bias[i % g.out_channels])
        .collect();
    for_each_product(g, rows, |i, f, o| out[o] += input[i] * filter[f]);
    out
}

/// [`conv2d_backward_input`] in f64.
pub fn conv2d_backward_input_f64(
    g: &ConvGeometry,
    rows: usize,
    d_out: &[f64],
    filter: &[f64],
) -> Vec<f64> {
    let mut d_input = vec![0.0; rows * g.input_len()];
    for_each_product(g, rows, |i, f, o| d_input[i] += d_out[o] * filter[f]);
    d_input
}

/// [`conv2d_backward_filter`] in f64: `(d_filter, d_bias)`.
pub fn conv2d_backward_filter_f64(
    g: &ConvGeometry,
    rows: usize,
    input: &[f64],
    d_out: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let mut d_filter = vec![0.0; g.filter_len()];
    for_each_product(g, rows, |i, f, o| d_filter[f] += input[i] * d_out[o]);
    let mut d_bias = vec![0.0; g.out_channels];
    for (o, d) in d_out.iter().enumerate() {
        d_bias[o % g.out_channels] += d;
    }
    (d_filter, d_bias)
}

fn widen(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

fn narrow_into(values: &[f64], out: &mut [f32]) {
    assert_eq!(values.len(), out.len(), "output of the wrong length");
    for (o, &v) in out.iter_mut().zip(values) {
        *o = v as f32;
    }
}

/// `out[rows, oh, ow, cout] = conv(input[rows, h, w, cin], filter[kh, kw, cin, cout]) +
/// bias[cout]`, each output summed in f64 and rounded once.
pub fn conv2d_forward(
    g: &ConvGeometry,
    rows: usize,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    let sums = conv2d_forward_f64(g, rows, &widen(input), &widen(filter), &widen(bias));
    narrow_into(&sums, out);
}

/// `d_input[rows, h, w, cin]`: each input's gradient, the sum over every output that read
/// it of `d_out · filter`, in f64.
pub fn conv2d_backward_input(
    g: &ConvGeometry,
    rows: usize,
    d_out: &[f32],
    filter: &[f32],
    d_input: &mut [f32],
) {
    let sums = conv2d_backward_input_f64(g, rows, &widen(d_out), &widen(filter));
    narrow_into(&sums, d_input);
}

/// `d_filter[kh, kw, cin, cout]` and `d_bias[cout]`: each weight's gradient, the sum over
/// every product it took part in of `input · d_out`, and each bias's, the sum of its
/// channel of `d_out`, in f64.
pub fn conv2d_backward_filter(
    g: &ConvGeometry,
    rows: usize,
    input: &[f32],
    d_out: &[f32],
    d_filter: &mut [f32],
    d_bias: &mut [f32],
) {
    let (f, b) = conv2d_backward_filter_f64(g, rows, &widen(input), &widen(d_out));
    narrow_into(&f, d_filter);
    narrow_into(&b, d_bias);
}

/// Max-pool: each output is the first value of its window (row-major) that no later value
/// exceeds, a NaN counting as larger than any number; `argmax` gets its index within the
/// image's input.
pub fn max_pool_forward(
    g: &PoolGeometry,
    rows: usize,
    input: &[f32],
    out: &mut [f32],
    argmax: Option<&mut [u32]>,
) {
    let (oh, ow, c) = (g.out_height(), g.out_width(), g.channels);
    let mut indices = vec![0u32; rows * g.output_len()];
    for n in 0..rows {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut best: Option<usize> = None;
                    for wy in 0..g.size {
                        for wx in 0..g.size {
                            let (y, x) = (oy * g.stride + wy, ox * g.stride + wx);
                            let i = (y * g.width + x) * c + ch;
                            let v = input[n * g.input_len() + i];
                            let larger = match best {
                                None => true,
                                Some(b) => {
                                    let b = input[n * g.input_len() + b];
                                    if b.is_nan() {
                                        false
                                    } else {
                                        v.is_nan() || v > b
                                    }
                                }
                            };
                            if larger {
                                best = Some(i);
                            }
                        }
                    }
                    let o = n * g.output_len() + (oy * ow + ox) * c + ch;
                    let i = best.expect("a window holds at least one value");
                    out[o] = input[n * g.input_len() + i];
                    indices[o] = i as u32;
                }
            }
        }
    }
    if let Some(argmax) = argmax {
        argmax.copy_from_slice(&indices);
    }
}

/// Max-pool's gradient: zeros, then each output's gradient added at its recorded argmax.
pub fn max_pool_backward(
    g: &PoolGeometry,
    rows: usize,
    d_out: &[f32],
    argmax: &[u32],
    d_input: &mut [f32],
) {
    d_input.fill(0.0);
    for n in 0..rows {
        for o in 0..g.output_len() {
            let (d, i) = (
                d_out[n * g.output_len() + o],
                argmax[n * g.output_len() + o],
            );
            d_input[n * g.input_len() + i as usize] += d;
        }
    }
}
