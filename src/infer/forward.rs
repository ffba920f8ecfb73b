//! Forward passes over borrowed weights and caller scratch, for [`super::ClassifierRef`]:
//! plain scalar loops that need neither the heap nor `std` (no SIMD detection), so they run
//! on a microcontroller or in WebAssembly as they do here.
//!
//! **Same numbers as the std engine.** A dense f32 layer sums each output in the order of
//! the std `Classifier`'s dot product (32 running sums, one per lane, reduced as a tree), and
//! multiplies and adds with two roundings, as its portable level does on a target without
//! FMA: the logits are then equal bit for bit (the SIMD levels fuse the multiply-add and
//! differ in the last bits). The int8 path is the std one's integer arithmetic and f32
//! rescaling, step by step. [`exp`] is the std kernels' exponential, lane by lane.
//! Convolutional networks sum in their own order (the std engine blocks its sums for the
//! cache): the logits differ from its in the last bits.

use super::arch_ref::{ArchRef, Layer};

/// `PIXEL_TO_UNIT[v] == v as f32 / 255.0`, as `data::batch::PIXEL_TO_UNIT` (a division, not a
/// multiplication by 1/255, which rounds differently for some values).
pub(super) const PIXEL_TO_UNIT: [f32; 256] = {
    let mut table = [0.0f32; 256];
    let mut v = 0;
    while v < 256 {
        table[v] = v as f32 / 255.0;
        v += 1;
    }
    table
};

/// The byte ranges of one layer's tensors inside the data section (weights, biases and, for
/// int8, scales); empty for layers without parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ParamRef {
    pub weight: (u32, u32),
    pub bias: (u32, u32),
    pub scale: (u32, u32),
}

/// What a forward pass reads: the network, its tensors, and how its scratch is cut.
#[derive(Debug, Clone, Copy)]
pub(super) struct Net<'a, 'p> {
    pub arch: &'p ArchRef,
    pub params: &'p [ParamRef],
    pub data: &'a [u8],
    pub int8: bool,
    /// f32 values in each of the two halves of the scratch.
    pub half: usize,
}

/// f32 values each of the two activation buffers needs for `arch`: the largest output a
/// layer writes to a buffer (the last layer writes the caller's logits), and the input
/// when the first layer does not read the pixels itself.
pub(super) fn half_len(arch: &ArchRef) -> usize {
    let layers = arch.layers();
    let mut half = match layers[0] {
        Layer::Linear { .. } => 0,
        _ => arch.input.len(),
    };
    for (i, layer) in layers[..layers.len() - 1].iter().enumerate() {
        if matches!(
            layer,
            Layer::Linear { .. } | Layer::Conv { .. } | Layer::Pool { .. }
        ) {
            half = half.max(arch.shapes[i].len());
        }
    }
    half
}

fn f32_at(bytes: &[u8], i: usize) -> f32 {
    let b = &bytes[4 * i..4 * i + 4];
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn range(data: &[u8], r: (u32, u32)) -> &[u8] {
    &data[r.0 as usize..r.1 as usize]
}

/// Where the current activations are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Pixels,
    A,
    B,
}

/// A layer's input: the image itself, or a buffer of activations (mutable: int8 layers
/// quantize it in place).
enum Input<'x> {
    Pixels(&'x [u8; 784]),
    Values(&'x mut [f32]),
}

/// The logits of one image into `out` (`[classes]`).
///
/// `scratch` holds at least `2 * net.half` values; `out` exactly `classes` (checked by the
/// caller).
pub(super) fn logits(net: Net<'_, '_>, pixels: &[u8; 784], scratch: &mut [f32], out: &mut [f32]) {
    let arch = net.arch;
    let (a, rest) = scratch.split_at_mut(net.half);
    let b = &mut rest[..net.half];
    let layers = arch.layers();
    let mut at = At::Pixels;
    if !matches!(layers[0], Layer::Linear { .. }) {
        for (x, &p) in a.iter_mut().zip(pixels) {
            *x = PIXEL_TO_UNIT[usize::from(p)];
        }
        at = At::A;
    }
    let last = layers.len() - 1;
    for (i, layer) in layers.iter().enumerate() {
        let (inp, outp) = (arch.input_shape(i), arch.shapes[i]);
        let (n_in, n_out) = (inp.len(), outp.len());
        if let Layer::Relu = layer {
            let values = match at {
                At::Pixels => unreachable!("the pixels were copied before a ReLU"),
                At::A => &mut a[..n_in],
                At::B => &mut b[..n_in],
            };
            for v in values {
                *v = v.max(0.0);
            }
            continue;
        }
        if let Layer::Flatten | Layer::Dropout = layer {
            // The identity on the buffer (flatten reads the values in (h, w, c) order).
            continue;
        }
        let is_last = i == last;
        let (src, dst): (Input<'_>, &mut [f32]) = match at {
            At::Pixels if is_last => (Input::Pixels(pixels), &mut *out),
            At::Pixels => (Input::Pixels(pixels), &mut a[..n_out]),
            At::A if is_last => (Input::Values(&mut a[..n_in]), &mut *out),
            At::A => (Input::Values(&mut a[..n_in]), &mut b[..n_out]),
            At::B if is_last => (Input::Values(&mut b[..n_in]), &mut *out),
            At::B => (Input::Values(&mut b[..n_in]), &mut a[..n_out]),
        };
        at = if at == At::A { At::B } else { At::A };
        let p = net.params[i];
        let weight = range(net.data, p.weight);
        let bias = range(net.data, p.bias);
        match (*layer, src) {
            (Layer::Linear { .. }, src) if net.int8 => {
                linear_int8(src, weight, range(net.data, p.scale), bias, dst)
            }
            (Layer::Linear { .. }, Input::Pixels(x)) => linear_dot(
                |i| PIXEL_TO_UNIT[usize::from(x[i])],
                n_in,
                weight,
                bias,
                dst,
            ),
            (Layer::Linear { .. }, Input::Values(x)) if arch.is_dense() => {
                linear_dot(|i| x[i], n_in, weight, bias, dst)
            }
            (Layer::Linear { .. }, Input::Values(x)) => linear_axpy(x, weight, bias, dst),
            (
                Layer::Conv {
                    kernel,
                    stride,
                    same,
                    ..
                },
                Input::Values(x),
            ) => {
                let g = Conv {
                    h: inp.h as usize,
                    w: inp.w as usize,
                    cin: inp.c as usize,
                    oh: outp.h as usize,
                    ow: outp.w as usize,
                    cout: outp.c as usize,
                    k: kernel as usize,
                    stride: stride as usize,
                    pad_top: pad_before(inp.h, outp.h, kernel, stride, same),
                    pad_left: pad_before(inp.w, outp.w, kernel, stride, same),
                };
                conv(&g, x, weight, bias, dst)
            }
            (Layer::Pool { size, stride }, Input::Values(x)) => pool(
                (inp.w as usize, inp.c as usize),
                (outp.h as usize, outp.w as usize),
                size as usize,
                stride as usize,
                x,
                dst,
            ),
            _ => unreachable!("convolutions and pooling read buffers; other layers returned"),
        }
    }
}

/// Padding before the input along one axis: TensorFlow's SAME puts the smaller half first.
fn pad_before(input: u32, output: u32, kernel: u32, stride: u32, same: bool) -> usize {
    if !same || output == 0 {
        return 0;
    }
    (((output - 1) * stride + kernel).saturating_sub(input) / 2) as usize
}

/// `y_j = Σ_i x_i w_ij + b_j` summed as the std engine's dot product: 32 running sums (sum
/// `k` takes `i ≡ k mod 32`, in order), then `(a_i + a_{8+i}) + (b_i + b_{8+i})`, halves, pairs.
fn linear_dot(x: impl Fn(usize) -> f32, fan_in: usize, w: &[u8], bias: &[u8], y: &mut [f32]) {
    let fan_out = y.len();
    for (j, y) in y.iter_mut().enumerate() {
        let mut acc = [0.0f32; 32];
        for i in 0..fan_in {
            let xi = x(i);
            // x = 0 adds ±0 to a sum that is never -0: skipping it changes no bit.
            if xi != 0.0 {
                acc[i % 32] += xi * f32_at(w, i * fan_out + j);
            }
        }
        let t: [f32; 8] =
            core::array::from_fn(|i| (acc[i] + acc[8 + i]) + (acc[16 + i] + acc[24 + i]));
        let q: [f32; 4] = core::array::from_fn(|i| t[i] + t[4 + i]);
        *y = ((q[0] + q[2]) + (q[1] + q[3])) + f32_at(bias, j);
    }
}

/// `y = x·W + b` one input row at a time (the weights are read in order; zero inputs, most
/// of them after a ReLU, are skipped).
fn linear_axpy(x: &[f32], w: &[u8], bias: &[u8], y: &mut [f32]) {
    let fan_out = y.len();
    y.fill(0.0);
    for (&xi, row) in x.iter().zip(w.chunks_exact(4 * fan_out)) {
        if xi == 0.0 {
            continue;
        }
        for (o, wb) in y.iter_mut().zip(row.chunks_exact(4)) {
            *o += xi * f32::from_le_bytes([wb[0], wb[1], wb[2], wb[3]]);
        }
    }
    for (j, o) in y.iter_mut().enumerate() {
        *o += f32_at(bias, j);
    }
}

/// Int8 weights per output channel: the input as integers with one scale (the pixels with
/// 1/255, or activations quantized to `-255..=255`), `Σ x_i q_ij` in i32, then
/// `y_j = acc_j · (scale_x · scale_j) + b_j`, as the std engine computes it.
fn linear_int8(x: Input<'_>, q: &[u8], scale: &[u8], bias: &[u8], y: &mut [f32]) {
    match x {
        // The f32 model reads p / 255: the same scale, exactly representable inputs.
        Input::Pixels(p) => {
            dot_int8_all(|i| i32::from(p[i]), p.len(), q, scale, bias, 1.0 / 255.0, y)
        }
        Input::Values(v) => {
            let x_scale = quantize_in_place(v);
            // Quantized values are whole numbers in -255..=255: the cast is exact.
            dot_int8_all(|i| v[i] as i32, v.len(), q, scale, bias, x_scale, y)
        }
    }
}

fn dot_int8_all(
    x: impl Fn(usize) -> i32,
    fan_in: usize,
    q: &[u8],
    scale: &[u8],
    bias: &[u8],
    x_scale: f32,
    y: &mut [f32],
) {
    let fan_out = y.len();
    for (j, y) in y.iter_mut().enumerate() {
        let mut acc = 0i32;
        for i in 0..fan_in {
            // |x| <= 255, |q| <= 127 and fan_in <= 65536 (dense widths): below 2^31.
            acc += x(i) * i32::from(q[i * fan_out + j] as i8);
        }
        *y = acc as f32 * (x_scale * f32_at(scale, j)) + f32_at(bias, j);
    }
}

/// Quantizes `x` in place to whole numbers in `-255..=255` (stored as f32) and returns the
/// scale (`x ≈ q · scale`): `max|x| / 255`; all zeros (or a non-finite maximum) give zeros
/// with scale 1. The std engine's `quantize_activations`, operation for operation.
pub(super) fn quantize_in_place(x: &mut [f32]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, v| m.max(abs(*v)));
    if !(max.is_finite() && max > 0.0) {
        x.fill(0.0);
        return 1.0;
    }
    let inv = 255.0 / max;
    for v in x.iter_mut() {
        *v = round_half_away(*v * inv).clamp(-255.0, 255.0);
    }
    max / 255.0
}

fn abs(v: f32) -> f32 {
    f32::from_bits(v.to_bits() & 0x7fff_ffff)
}

/// `f32::round` (half away from zero) without `std`: exact for every f32.
pub(super) fn round_half_away(v: f32) -> f32 {
    // From 2^23 on every f32 is whole (and NaN and infinities stay as they are).
    if v.is_nan() || abs(v) >= 8_388_608.0 {
        return v;
    }
    // Truncation toward zero is exact below 2^23, and so is the difference.
    let t = v as i32 as f32;
    let frac = v - t;
    let r = if abs(frac) >= 0.5 {
        t + if v < 0.0 { -1.0 } else { 1.0 }
    } else {
        t
    };
    // Keep the sign of a result of zero, as `round` does (-0.3 rounds to -0).
    f32::from_bits(r.to_bits() | (v.to_bits() & 0x8000_0000))
}

/// `round_ties_even` for the exponential (exact below 2^22; its caller discards larger
/// values).
fn round_ties_even(v: f32) -> f32 {
    if v.is_nan() || abs(v) >= 4_194_304.0 {
        return v;
    }
    // Adding 1.5·2^23 leaves no fraction bits: the addition rounds to even, subtracting
    // brings the whole number back.
    const SHIFT: f32 = 12_582_912.0;
    (v + SHIFT) - SHIFT
}

/// `2^n` for whole `n` (subnormal below -126, 0 below -149), as `kernels::simd::pow2n`.
fn pow2n(n: f32) -> f32 {
    if n < -126.0 {
        if n >= -149.0 {
            f32::from_bits(1 << ((n + 149.0) as i32))
        } else {
            0.0
        }
    } else {
        f32::from_bits((n + (127.0 + 8_388_608.0)).to_bits() << 23)
    }
}

/// `e^x`: the std kernels' `kernels::simd::exp`, one lane, with the multiply-adds unfused
/// (as its portable level runs on a target without FMA).
pub(super) fn exp(x: f32) -> f32 {
    let mad = |a: f32, b: f32, c: f32| a * b + c;
    let finite = x.is_finite();
    let neg_underflow = x < -103.63 && finite;
    let r = round_ties_even(x * core::f32::consts::LOG2_E);
    let big = r > 127.0;
    let r_safe = if big { 127.0 } else { r };
    let excess = if big { r - 127.0 } else { 0.0 };
    let scale = pow2n(excess);
    let y = x - r * 0.693_359_4;
    let y = y - r * -2.121_944_4e-4;
    let y2 = y * y;
    let y4 = y2 * y2;
    let (p0, p1, p2) = (1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0);
    let (p3, p4, p5) = (1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0);
    let z = mad(mad(p3, y, p2), y2, mad(mad(p5, y, p4), y4, mad(p1, y, p0)));
    let z = mad(z, y2, y);
    let n2 = pow2n(r_safe);
    let z = ((z + 1.0) * scale) * n2;
    if x.is_nan() {
        return f32::from_bits(0x7FC0_0101);
    }
    if x > 88.723 && finite {
        return f32::INFINITY;
    }
    if neg_underflow {
        return 0.0;
    }
    if !finite {
        return if x.is_sign_negative() {
            0.0
        } else {
            f32::INFINITY
        };
    }
    z
}

/// A convolution's geometry (NHWC, one image; HWIO filter).
struct Conv {
    h: usize,
    w: usize,
    cin: usize,
    oh: usize,
    ow: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad_top: usize,
    pad_left: usize,
}

/// `y[oy, ox, co] = Σ x[iy, ix, ci] · f[ky, kx, ci, co] + b[co]`, taps on the padding
/// skipped; each output pixel's channels accumulate together (the filter's rows are
/// contiguous in `co`).
fn conv(g: &Conv, x: &[f32], f: &[u8], bias: &[u8], y: &mut [f32]) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let o = &mut y[(oy * g.ow + ox) * g.cout..][..g.cout];
            o.fill(0.0);
            for ky in 0..g.k {
                let Some(iy) = (oy * g.stride + ky).checked_sub(g.pad_top) else {
                    continue;
                };
                if iy >= g.h {
                    continue;
                }
                for kx in 0..g.k {
                    let Some(ix) = (ox * g.stride + kx).checked_sub(g.pad_left) else {
                        continue;
                    };
                    if ix >= g.w {
                        continue;
                    }
                    let pixel = &x[(iy * g.w + ix) * g.cin..][..g.cin];
                    let taps = &f[4 * (ky * g.k + kx) * g.cin * g.cout..][..4 * g.cin * g.cout];
                    for (&xi, row) in pixel.iter().zip(taps.chunks_exact(4 * g.cout)) {
                        if xi == 0.0 {
                            continue;
                        }
                        for (v, wb) in o.iter_mut().zip(row.chunks_exact(4)) {
                            *v += xi * f32::from_le_bytes([wb[0], wb[1], wb[2], wb[3]]);
                        }
                    }
                }
            }
            for (j, v) in o.iter_mut().enumerate() {
                *v += f32_at(bias, j);
            }
        }
    }
}

/// Max over `size x size` windows every `stride` pixels (VALID), per channel.
fn pool(
    (w, c): (usize, usize),
    (oh, ow): (usize, usize),
    size: usize,
    stride: usize,
    x: &[f32],
    y: &mut [f32],
) {
    for oy in 0..oh {
        for ox in 0..ow {
            let o = &mut y[(oy * ow + ox) * c..][..c];
            for (ch, v) in o.iter_mut().enumerate() {
                let mut m = f32::NEG_INFINITY;
                for py in 0..size {
                    for px in 0..size {
                        let xv = x[((oy * stride + py) * w + ox * stride + px) * c + ch];
                        if xv > m || xv.is_nan() {
                            m = xv;
                        }
                    }
                }
                *v = m;
            }
        }
    }
}

/// Tests of the no_std core (`cargo test --no-default-features` runs them).
#[cfg(test)]
mod core_tests {
    use super::*;

    #[test]
    fn rounding_matches_std() {
        let mut v = -300.0f32;
        while v < 300.0 {
            assert_eq!(round_half_away(v).to_bits(), v.round().to_bits(), "{v}");
            assert_eq!(round_ties_even(v), v.round_ties_even(), "{v}");
            v += 0.0625 / 3.0;
        }
        for v in [
            0.5f32,
            -0.5,
            1.5,
            -2.5,
            0.49999997,
            8_388_607.5,
            -0.0,
            1e30,
            f32::NAN,
        ] {
            assert_eq!(round_half_away(v).to_bits(), v.round().to_bits(), "{v}");
        }
    }

    #[test]
    fn same_padding_puts_the_smaller_half_first() {
        // 28 wide, 5x5 stride 1: 4 zeros, 2 before. Stride 2 over 28: 14 out, 3 zeros, 1 before.
        assert_eq!(pad_before(28, 28, 5, 1, true), 2);
        assert_eq!(pad_before(28, 14, 5, 2, true), 1);
        assert_eq!(pad_before(28, 24, 5, 1, false), 0);
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::kernels::simd::{with_level, Level};

    #[test]
    fn the_pixel_table_is_the_training_codes() {
        assert_eq!(PIXEL_TO_UNIT, crate::data::batch::PIXEL_TO_UNIT);
    }

    #[test]
    fn exp_is_the_portable_kernels_bit_for_bit() {
        let mut xs: Vec<f32> = (0..4000).map(|i| -120.0 + i as f32 * 0.05231).collect();
        xs.extend([0.0, -0.0, 88.7, 88.8, -87.5, -103.0, -104.0, f32::INFINITY]);
        xs.extend([f32::NEG_INFINITY, f32::NAN, 1e-8, -1e-8]);
        let mut std_exp = xs.clone();
        with_level(Level::Portable, || {
            crate::kernels::elementwise::exp_in_place(&mut std_exp)
        });
        for (&x, &e) in xs.iter().zip(&std_exp) {
            let ours = exp(x);
            if Level::Portable.fuses_mul_add() {
                assert!((ours - e).abs() <= 2e-7 * e.abs(), "{x}: {ours} vs {e}");
            } else {
                assert_eq!(ours.to_bits(), e.to_bits(), "{x}: {ours} vs {e}");
            }
        }
    }
}
