//! Int8 2-D convolution for inference: one NHWC image of u8 activations times an HWIO
//! filter of i8 weights, summed exactly in i32.
//!
//! `out[oy][ox][co] = Σ x[iy][ix][ci] · w[ky][kx][ci][co]` over the window, where `x` is the
//! byte `pad` outside the image (the zero point of the caller's quantization, so that
//! padding stands for 0). What the sums mean is the caller's business: with `x ≈ (q - z) ·
//! s_x` and `w ≈ q_w · s_w[co]`, [`rescale`] turns them into f32.
//!
//! **Method.** The image is copied into scratch with its padding (the byte `pad`) on every
//! side, then its patch rows (`kh·kw·cin` bytes, im2col's order, the filter's row order),
//! each zero-padded to a multiple of four, so no window needs a bounds check; the filter is
//! packed once, ahead of the products ([`PackedFilter`]), as `[K/4][blocks][16][4]`: for
//! each group of four depths and each block of sixteen output channels, the channels'
//! four weights side by side. One 64-byte load then holds what `vpdpbusd` (AVX-512 VNNI)
//! multiplies with four bytes of a patch broadcast to all lanes: sixteen channels, four
//! products each, added to sixteen i32 sums. A register tile of six positions by up to
//! four blocks ([`super::vnni`]) loads only. A linear layer is the 1x1 convolution of one
//! pixel ([`PackedFilter::matrix`], [`matmul_u8_i8`]): its rows are images.
//!
//! **Paths.** [`Int8Path::current`]: VNNI where the thread's SIMD level is AVX-512 and
//! the CPU has VNNI (detected once), else plain loops over the same layout, compiled by
//! [`dispatch`] at the thread's level (so `SOFTNET_SIMD=portable` runs them without
//! vector extensions). Integer sums do not depend on the order: every path gives the same
//! i32 values, those of [`conv2d_u8_i8_naive`], which the property tests check.
//!
//! **No overflow.** A sum has at most `255 · 127 · K` in magnitude; [`MAX_PATCH`] keeps it,
//! and the zero-point correction of [`rescale`], below 2³¹.

#![forbid(unsafe_code)]

use super::conv::ConvGeometry;
use super::simd::{dispatch, Level, Simd, SimdKernel};
use super::vnni::{self, BLOCK, DEPTH};

/// Bytes copied at once where a window's row is short (one or a few channels): a fixed-size
/// copy is two instructions, a call to `memcpy` costs more than the bytes it copies. The
/// copies may run this far past their end, into room the scratch keeps for it.
const SLACK: usize = 16;

/// Rows and columns of the image with its padding: every window inside.
fn padded_dims(g: &ConvGeometry) -> (usize, usize) {
    let rows = ((g.out_height() - 1) * g.stride + g.kernel_h).max(g.pad_top() + g.height);
    let cols = ((g.out_width() - 1) * g.stride + g.kernel_w).max(g.pad_left() + g.width);
    (rows, cols)
}

/// Bytes of the padded image (0 when there is no output).
fn padded_len(g: &ConvGeometry) -> usize {
    if g.out_height() == 0 || g.out_width() == 0 {
        return 0;
    }
    let (rows, cols) = padded_dims(g);
    rows * cols * g.in_channels
}

/// Largest patch (`kh·kw·cin`) the kernels take: twice `255 · 127 · K` stays below 2³¹.
pub const MAX_PATCH: usize = i32::MAX as usize / (2 * 255 * 127);

/// Which code computes the int8 products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Path {
    /// Plain loops, compiled at the thread's SIMD level.
    Portable,
    /// AVX-512 VNNI (`vpdpbusd`).
    Vnni,
}

impl Int8Path {
    /// The path the kernels take on this thread: VNNI at the AVX-512 level where the CPU
    /// has it, else portable.
    pub fn current() -> Self {
        if Level::current() == Level::Avx512 && vnni::detected() {
            Int8Path::Vnni
        } else {
            Int8Path::Portable
        }
    }

    /// A short name (`vnni`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Int8Path::Portable => "portable",
            Int8Path::Vnni => "vnni",
        }
    }
}

/// An i8 filter arranged for the kernels, with what its zero-point correction needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedFilter {
    geometry: ConvGeometry,
    /// Patch bytes per position, `K` rounded up to [`DEPTH`].
    kpad: usize,
    /// `[kpad / 4][blocks][16][4]`, zeros past `K` and past the output channels.
    packed: Vec<i8>,
    /// `[cout]`: `Σ_k w[k][c]`.
    sums: Vec<i32>,
}

impl PackedFilter {
    /// Packs `filter` (`[kh, kw, cin, cout]` row-major, HWIO) for convolutions of shape `g`.
    ///
    /// # Panics
    /// If `filter` does not hold `g.filter_len()` values, `g` has no output channels, or
    /// its patch is larger than [`MAX_PATCH`].
    pub fn new(g: &ConvGeometry, filter: &[i8]) -> Self {
        assert!(g.stride >= 1 && g.kernel_h >= 1 && g.kernel_w >= 1 && g.in_channels >= 1);
        assert!(g.out_channels >= 1, "convolution with 0 output channels");
        let (k, cout) = (g.kernel_h * g.kernel_w * g.in_channels, g.out_channels);
        assert!(k <= MAX_PATCH, "patch of {k} values, above {MAX_PATCH}");
        assert_eq!(filter.len(), k * cout, "filter is not [{k}, {cout}]");
        let kpad = k.next_multiple_of(DEPTH);
        let blocks = cout.div_ceil(BLOCK);
        let mut packed = vec![0i8; kpad * blocks * BLOCK];
        for (kk, row) in filter.chunks_exact(cout).enumerate() {
            let (group, t) = (kk / DEPTH, kk % DEPTH);
            for (c, &w) in row.iter().enumerate() {
                let (b, lane) = (c / BLOCK, c % BLOCK);
                packed[((group * blocks + b) * BLOCK + lane) * DEPTH + t] = w;
            }
        }
        let mut sums = vec![0i32; cout];
        for row in filter.chunks_exact(cout) {
            for (s, &w) in sums.iter_mut().zip(row) {
                *s += i32::from(w);
            }
        }
        PackedFilter {
            geometry: *g,
            kpad,
            packed,
            sums,
        }
    }

    /// The convolution's shape.
    pub fn geometry(&self) -> &ConvGeometry {
        &self.geometry
    }

    /// `[cout]`: each output channel's sum of weights, `Σ_k w[k][c]`.
    pub fn sums(&self) -> &[i32] {
        &self.sums
    }

    /// Bytes of scratch [`conv2d_u8_i8`] needs: the image padded on every side, and its
    /// patch rows (each with a few bytes of room after it).
    pub fn scratch_len(&self) -> usize {
        let g = &self.geometry;
        let positions = g.out_height() * g.out_width();
        if positions == 0 {
            return 0;
        }
        padded_len(g) + SLACK + positions * self.kpad + SLACK
    }

    /// Packs the matrix `weights` (`[k, n]` row-major) for [`matmul_u8_i8`]: the filter of
    /// a 1x1 convolution over one pixel of `k` channels, which is what a linear layer is.
    ///
    /// # Panics
    /// As [`PackedFilter::new`].
    pub fn matrix(k: usize, n: usize, weights: &[i8]) -> Self {
        let g = ConvGeometry {
            height: 1,
            width: 1,
            in_channels: k,
            out_channels: n,
            kernel_h: 1,
            kernel_w: 1,
            stride: 1,
            padding: super::conv::Padding::Valid,
        };
        Self::new(&g, weights)
    }

    /// Whether this is a matrix ([`PackedFilter::matrix`]).
    pub fn is_matrix(&self) -> bool {
        let g = &self.geometry;
        (g.height, g.width, g.kernel_h, g.kernel_w) == (1, 1, 1, 1)
    }

    /// Bytes of scratch [`matmul_u8_i8`] needs for `rows` rows (none when `k` is a multiple
    /// of four: the rows are read in place).
    pub fn matmul_scratch_len(&self, rows: usize) -> usize {
        if self.kpad == self.geometry.in_channels {
            0
        } else {
            rows * self.kpad
        }
    }
}

/// `out[oh, ow, cout]` (i32, overwritten) = the convolution of one image `input[h, w, cin]`
/// (u8, `pad` outside it) with `filter`; `scratch` holds at least
/// [`filter.scratch_len()`](PackedFilter::scratch_len) bytes, its contents unused.
///
/// # Panics
/// If a slice's length is not the geometry's.
pub fn conv2d_u8_i8(
    filter: &PackedFilter,
    input: &[u8],
    pad: u8,
    out: &mut [i32],
    scratch: &mut [u8],
) {
    let g = &filter.geometry;
    assert_eq!(
        input.len(),
        g.input_len(),
        "input is not one [h, w, cin] image"
    );
    assert_eq!(out.len(), g.output_len(), "out is not [oh, ow, cout]");
    let need = filter.scratch_len();
    assert!(
        scratch.len() >= need,
        "scratch holds {} bytes, below the {need} of scratch_len",
        scratch.len()
    );
    if out.is_empty() {
        return;
    }
    dispatch(ConvU8 {
        filter,
        input,
        pad,
        out,
        patches: &mut scratch[..need],
    });
}

/// `out[rows, n]` (i32, overwritten) = `x[rows, k] · w[k, n]` for a `filter` made by
/// [`PackedFilter::matrix`]; `scratch` holds at least
/// [`filter.matmul_scratch_len(rows)`](PackedFilter::matmul_scratch_len) bytes.
///
/// # Panics
/// If `filter` is not a matrix or a slice's length is not the shapes'.
pub fn matmul_u8_i8(filter: &PackedFilter, x: &[u8], out: &mut [i32], scratch: &mut [u8]) {
    assert!(
        filter.is_matrix(),
        "matmul_u8_i8 takes a PackedFilter::matrix"
    );
    let (k, n) = (filter.geometry.in_channels, filter.geometry.out_channels);
    assert_eq!(x.len() % k, 0, "x is not [rows, {k}]");
    let rows = x.len() / k;
    assert_eq!(out.len(), rows * n, "out is not [{rows}, {n}]");
    let need = filter.matmul_scratch_len(rows);
    assert!(
        scratch.len() >= need,
        "scratch holds {} bytes, below the {need} of matmul_scratch_len",
        scratch.len()
    );
    if out.is_empty() {
        return;
    }
    dispatch(MatmulU8 {
        filter,
        x,
        out,
        padded: &mut scratch[..need],
    });
}

/// The arguments of [`matmul_u8_i8`], checked, as a kernel.
struct MatmulU8<'a> {
    filter: &'a PackedFilter,
    x: &'a [u8],
    out: &'a mut [i32],
    padded: &'a mut [u8],
}

impl SimdKernel for MatmulU8<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let f = self.filter;
        let k = f.geometry.in_channels;
        let rows = self.x.len() / k;
        let patches = if self.padded.is_empty() {
            self.x
        } else {
            for (dst, src) in self
                .padded
                .chunks_exact_mut(f.kpad)
                .zip(self.x.chunks_exact(k))
            {
                dst[..k].copy_from_slice(src);
                dst[k..].fill(0);
            }
            &*self.padded
        };
        products(s, patches, rows, f, self.out);
    }
}

/// `out[p][c] = Σ_k patches[p][k] · w[k][c]` for `positions` patch rows of `f.kpad` bytes,
/// on the thread's int8 path.
#[inline(always)]
fn products<S: Simd>(_: S, patches: &[u8], positions: usize, f: &PackedFilter, out: &mut [i32]) {
    let cout = f.geometry.out_channels;
    if S::LEVEL == Level::Avx512 && vnni::detected() {
        vnni::matmul_u8_i8(patches, positions, f.kpad, &f.packed, cout, out);
    } else {
        matmul_portable(patches, f.kpad, &f.packed, cout, out);
    }
}

/// The arguments of [`conv2d_u8_i8`], checked, as a kernel.
struct ConvU8<'a> {
    filter: &'a PackedFilter,
    input: &'a [u8],
    pad: u8,
    out: &'a mut [i32],
    patches: &'a mut [u8],
}

impl SimdKernel for ConvU8<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let f = self.filter;
        let g = &f.geometry;
        let positions = g.out_height() * g.out_width();
        let patches = im2col_u8(g, self.input, self.pad, f.kpad, self.patches);
        products(s, patches, positions, f, self.out);
    }
}

/// The patch rows of one image into the scratch (`[positions, kpad]` after the padded
/// image): `pad` where a window covers padding, zeros past `K`. Returns the patch rows.
#[inline(always)]
fn im2col_u8<'s>(
    g: &ConvGeometry,
    image: &[u8],
    pad: u8,
    kpad: usize,
    scratch: &'s mut [u8],
) -> &'s [u8] {
    let (k, cin) = (g.kernel_h * g.kernel_w * g.in_channels, g.in_channels);
    let (ow, positions) = (g.out_width(), g.out_height() * g.out_width());
    let (rows, cols) = padded_dims(g);
    let (padded, patches) = scratch.split_at_mut(rows * cols * cin + SLACK);
    padded.fill(pad);
    let line = g.width * cin;
    let at = (g.pad_top() * cols + g.pad_left()) * cin;
    for (dst, src) in padded[at..]
        .chunks_mut(cols * cin)
        .zip(image.chunks_exact(line))
    {
        dst[..line].copy_from_slice(src);
    }
    let run = g.kernel_w * cin;
    let s = g.stride;
    for p in 0..positions {
        let (oy, ox) = (p / ow, p % ow);
        let row = &mut patches[p * kpad..][..kpad + SLACK];
        for ky in 0..g.kernel_h {
            let from = ((oy * s + ky) * cols + ox * s) * cin;
            let to = ky * run;
            if run <= SLACK {
                // Past `run`: bytes the next copies (or the zeros below) overwrite.
                row[to..to + SLACK].copy_from_slice(&padded[from..from + SLACK]);
            } else {
                row[to..to + run].copy_from_slice(&padded[from..from + run]);
            }
        }
        // At most three zeros past `K`; the fourth byte, if any, is the next row's.
        row[k..k + DEPTH].copy_from_slice(&[0; DEPTH]);
    }
    &patches[..positions * kpad]
}

/// The patch rows of one image into `patches` (`[positions, kpad]`), window by window
/// with bounds checks: the twin of [`im2col_u8`], kept for its tests.
#[cfg(test)]
fn im2col_u8_checked(g: &ConvGeometry, image: &[u8], pad: u8, kpad: usize, patches: &mut [u8]) {
    let (k, cin) = (g.kernel_h * g.kernel_w * g.in_channels, g.in_channels);
    let (ow, positions) = (g.out_width(), g.out_height() * g.out_width());
    let (pt, pl, s) = (g.pad_top(), g.pad_left(), g.stride);
    let run = g.kernel_w * cin;
    for (p, row) in patches.chunks_exact_mut(kpad).take(positions).enumerate() {
        let (oy, ox) = (p / ow, p % ow);
        // Columns of the window inside the image: kx in kx0..kx1.
        let x0 = (ox * s) as isize - pl as isize;
        let kx0 = (-x0).clamp(0, g.kernel_w as isize) as usize;
        let kx1 = (g.width as isize - x0).clamp(kx0 as isize, g.kernel_w as isize) as usize;
        let y0 = (oy * s) as isize - pt as isize;
        let (window, tail) = row.split_at_mut(k);
        tail.fill(0);
        for (ky, dst) in window.chunks_exact_mut(run).enumerate() {
            let iy = y0 + ky as isize;
            if iy < 0 || iy >= g.height as isize || kx0 == kx1 {
                dst.fill(pad);
                continue;
            }
            let ix0 = (x0 + kx0 as isize) as usize;
            let src = &image[(iy as usize * g.width + ix0) * cin..][..(kx1 - kx0) * cin];
            dst[..kx0 * cin].fill(pad);
            dst[kx0 * cin..kx1 * cin].copy_from_slice(src);
            dst[kx1 * cin..].fill(pad);
        }
    }
}

/// `out[p][c] = Σ_k patches[p][k] · w[k][c]`, the packed layout read one block of
/// sixteen channels at a time; the compiler vectorizes the lanes at the dispatch's level.
#[inline(always)]
fn matmul_portable(patches: &[u8], kpad: usize, packed: &[i8], cout: usize, out: &mut [i32]) {
    let blocks = cout.div_ceil(BLOCK);
    let group = blocks * BLOCK * DEPTH;
    for (row, x) in out.chunks_exact_mut(cout).zip(patches.chunks_exact(kpad)) {
        for b in 0..blocks {
            let mut acc = [0i32; BLOCK];
            for (x4, w) in x.chunks_exact(DEPTH).zip(packed.chunks_exact(group)) {
                let w = &w[b * BLOCK * DEPTH..][..BLOCK * DEPTH];
                for (a, w4) in acc.iter_mut().zip(w.chunks_exact(DEPTH)) {
                    for (&xv, &wv) in x4.iter().zip(w4) {
                        *a += i32::from(xv) * i32::from(wv);
                    }
                }
            }
            let c0 = b * BLOCK;
            let n = (cout - c0).min(BLOCK);
            row[c0..c0 + n].copy_from_slice(&acc[..n]);
        }
    }
}

/// `out[p][c] = (acc[p][c] - zero_point · sums[c]) · (x_scale · w_scale[c]) + bias[c]` in
/// f32 (`[positions, cout]` both), then `max(·, 0)` where `relu`: the sums of
/// [`conv2d_u8_i8`] as the layer's outputs, for inputs `x ≈ (q - zero_point) · x_scale`
/// and weights `w ≈ q_w · w_scale[c]`.
///
/// # Panics
/// If the lengths disagree.
#[allow(clippy::too_many_arguments)]
pub fn rescale(
    acc: &[i32],
    zero_point: u8,
    sums: &[i32],
    x_scale: f32,
    w_scale: &[f32],
    bias: &[f32],
    relu: bool,
    out: &mut [f32],
) {
    let cout = sums.len();
    assert!(cout > 0 && w_scale.len() == cout && bias.len() == cout);
    assert_eq!(acc.len(), out.len(), "acc and out differ in length");
    assert_eq!(acc.len() % cout, 0, "acc is not [positions, {cout}]");
    dispatch(Rescale {
        acc,
        zero_point,
        sums,
        x_scale,
        w_scale,
        bias,
        relu,
        out,
    });
}

/// The arguments of [`rescale`], checked, as a kernel: plain loops the compiler vectorizes
/// at the dispatch's level (separate multiply and add, so every level rounds alike).
struct Rescale<'a> {
    acc: &'a [i32],
    zero_point: u8,
    sums: &'a [i32],
    x_scale: f32,
    w_scale: &'a [f32],
    bias: &'a [f32],
    relu: bool,
    out: &'a mut [f32],
}

impl SimdKernel for Rescale<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, _: S) {
        let cout = self.sums.len();
        let z = i32::from(self.zero_point);
        for (o, a) in self
            .out
            .chunks_exact_mut(cout)
            .zip(self.acc.chunks_exact(cout))
        {
            let per_channel = self.sums.iter().zip(self.w_scale).zip(self.bias);
            for ((o, &a), ((&s, &ws), &b)) in o.iter_mut().zip(a).zip(per_channel) {
                let v = (a - z * s) as f32 * (self.x_scale * ws) + b;
                *o = if self.relu { v.max(0.0) } else { v };
            }
        }
    }
}

/// The specification of [`conv2d_u8_i8`]: the sum of each window, term by term, from the
/// unpacked HWIO `filter`.
pub fn conv2d_u8_i8_naive(g: &ConvGeometry, input: &[u8], pad: u8, filter: &[i8], out: &mut [i32]) {
    assert_eq!(input.len(), g.input_len());
    assert_eq!(filter.len(), g.filter_len());
    assert_eq!(out.len(), g.output_len());
    let (cin, cout) = (g.in_channels, g.out_channels);
    let (pt, pl) = (g.pad_top() as isize, g.pad_left() as isize);
    let mut at = 0;
    for oy in 0..g.out_height() {
        for ox in 0..g.out_width() {
            for co in 0..cout {
                let mut sum = 0i32;
                for ky in 0..g.kernel_h {
                    for kx in 0..g.kernel_w {
                        let iy = (oy * g.stride + ky) as isize - pt;
                        let ix = (ox * g.stride + kx) as isize - pl;
                        let inside = (0..g.height as isize).contains(&iy)
                            && (0..g.width as isize).contains(&ix);
                        for ci in 0..cin {
                            let x = if inside {
                                input[(iy as usize * g.width + ix as usize) * cin + ci]
                            } else {
                                pad
                            };
                            let w = filter[((ky * g.kernel_w + kx) * cin + ci) * cout + co];
                            sum += i32::from(x) * i32::from(w);
                        }
                    }
                }
                out[at] = sum;
                at += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::kernels::conv::Padding;
    use crate::kernels::simd::with_level;

    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        crate::kernels::test_words(seed)
            .take(len)
            .map(|w| (w >> 56) as u8)
            .collect()
    }

    /// Weights in the symmetric range, -127..=127.
    fn weights(len: usize, seed: u64) -> Vec<i8> {
        bytes(len, seed ^ 0x5555)
            .into_iter()
            .map(|b| (i32::from(b) % 255 - 127) as i8)
            .collect()
    }

    /// The kernel on every SIMD level this CPU runs (so on every int8 path), each equal to
    /// the naive sums.
    fn check(g: &ConvGeometry, input: &[u8], pad: u8, filter: &[i8]) {
        let mut want = vec![0i32; g.output_len()];
        conv2d_u8_i8_naive(g, input, pad, filter, &mut want);
        let packed = PackedFilter::new(g, filter);
        let mut paths = Vec::new();
        for level in Level::supported() {
            let got = with_level(level, || {
                paths.push(Int8Path::current());
                let mut out = vec![i32::MIN; g.output_len()];
                let mut scratch = vec![0xa5u8; packed.scratch_len() + 3];
                conv2d_u8_i8(&packed, input, pad, &mut out, &mut scratch);
                out
            });
            assert_eq!(got, want, "{level} ({:?}), {g:?}", paths.last());
        }
        if vnni::detected() {
            assert!(paths.contains(&Int8Path::Vnni), "{paths:?}");
        }
        assert_eq!(paths[0], Int8Path::Portable);
    }

    fn geometry() -> impl Strategy<Value = ConvGeometry> {
        (
            (1usize..=11, 1usize..=11, 1usize..=21, 1usize..=70),
            (1usize..=6, 1usize..=6, 1usize..=3),
            prop_oneof![Just(Padding::Same), Just(Padding::Valid)],
        )
            .prop_map(
                |((h, w, cin, cout), (kh, kw, stride), padding)| ConvGeometry {
                    height: h,
                    width: w,
                    in_channels: cin,
                    out_channels: cout,
                    kernel_h: kh,
                    kernel_w: kw,
                    stride,
                    padding,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn every_path_equals_the_naive_sums(g in geometry(), pad in prop_oneof![Just(0u8), any::<u8>()], seed in any::<u64>()) {
            let input = bytes(g.input_len(), seed);
            let filter = weights(g.filter_len(), seed);
            check(&g, &input, pad, &filter);
        }
    }

    fn g(h: usize, cin: usize, cout: usize, k: usize, stride: usize, p: Padding) -> ConvGeometry {
        ConvGeometry {
            height: h,
            width: h,
            in_channels: cin,
            out_channels: cout,
            kernel_h: k,
            kernel_w: k,
            stride,
            padding: p,
        }
    }

    #[test]
    fn the_tutorial_cnn_layers_equal_the_naive_sums() {
        let conv1 = g(28, 1, 32, 5, 1, Padding::Same);
        check(&conv1, &bytes(784, 1), 0, &weights(conv1.filter_len(), 2));
        let conv2 = g(14, 32, 64, 5, 1, Padding::Same);
        check(
            &conv2,
            &bytes(conv2.input_len(), 3),
            0,
            &weights(conv2.filter_len(), 4),
        );
    }

    #[test]
    fn the_largest_sums_do_not_overflow() {
        // One position whose patch is MAX_PATCH values, all 255 times -127 or 127.
        let geo = g(1, MAX_PATCH, 17, 1, 1, Padding::Valid);
        let input = vec![255u8; MAX_PATCH];
        let filter: Vec<i8> = (0..MAX_PATCH * 17)
            .map(|i| if i % 17 == 3 { 127 } else { -127 })
            .collect();
        check(&geo, &input, 0, &filter);
        let packed = PackedFilter::new(&geo, &filter);
        let mut acc = vec![0i32; 17];
        conv2d_u8_i8(
            &packed,
            &input,
            0,
            &mut acc,
            &mut vec![0; packed.scratch_len()],
        );
        let extreme = 255 * 127 * MAX_PATCH as i64;
        assert_eq!(i64::from(acc[0]), -extreme);
        assert_eq!(i64::from(acc[3]), extreme);
        // With the zero point at 255 the correction cancels the sums exactly.
        let mut out = vec![1.0f32; 17];
        rescale(
            &acc,
            255,
            packed.sums(),
            1.0,
            &[1.0; 17],
            &[0.5; 17],
            false,
            &mut out,
        );
        assert_eq!(out, vec![0.5; 17]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matrices_equal_the_naive_sums_on_every_path(rows in 0usize..=14, k in 1usize..=70, n in 1usize..=40, seed in any::<u64>()) {
            let x = bytes(rows * k, seed);
            let w = weights(k * n, seed);
            let want: Vec<i32> = (0..rows * n)
                .map(|at| {
                    let (r, c) = (at / n, at % n);
                    (0..k).map(|i| i32::from(x[r * k + i]) * i32::from(w[i * n + c])).sum()
                })
                .collect();
            let packed = PackedFilter::matrix(k, n, &w);
            prop_assert!(packed.is_matrix());
            for level in Level::supported() {
                let got = with_level(level, || {
                    let mut out = vec![i32::MIN; rows * n];
                    let mut scratch = vec![0x5au8; packed.matmul_scratch_len(rows)];
                    matmul_u8_i8(&packed, &x, &mut out, &mut scratch);
                    out
                });
                prop_assert_eq!(&got, &want, "{}", level);
            }
        }
    }

    #[test]
    fn patch_rows_equal_the_checked_ones() {
        for geo in [
            g(28, 1, 32, 5, 1, Padding::Same),
            g(9, 3, 5, 4, 2, Padding::Same),
            g(7, 20, 3, 3, 3, Padding::Valid),
            g(1, 2, 3, 5, 3, Padding::Same),
        ] {
            let input = bytes(geo.input_len(), 8);
            let packed = PackedFilter::new(&geo, &weights(geo.filter_len(), 1));
            let mut scratch = vec![0x77u8; packed.scratch_len()];
            let fast = im2col_u8(&geo, &input, 3, packed.kpad, &mut scratch).to_vec();
            let mut want = vec![0x11u8; fast.len()];
            im2col_u8_checked(&geo, &input, 3, packed.kpad, &mut want);
            assert_eq!(fast, want, "{geo:?}");
        }
    }

    #[test]
    fn empty_outputs_and_padding_only_windows() {
        // VALID with the kernel larger than the image: nothing to compute.
        let geo = g(3, 2, 5, 4, 1, Padding::Valid);
        let packed = PackedFilter::new(&geo, &weights(geo.filter_len(), 1));
        conv2d_u8_i8(&packed, &bytes(18, 1), 0, &mut [], &mut []);
        // SAME with stride 3 on a 1x1 image: windows mostly over padding.
        let geo = g(1, 3, 19, 5, 3, Padding::Same);
        check(&geo, &[7, 200, 255], 9, &weights(geo.filter_len(), 5));
    }

    #[test]
    fn rescale_applies_zero_point_scales_bias_and_relu() {
        let acc = [100, -40, 7, 0];
        let sums = [3, -2];
        let mut out = [0.0f32; 4];
        rescale(
            &acc,
            2,
            &sums,
            0.5,
            &[2.0, 0.25],
            &[1.0, -1.0],
            false,
            &mut out,
        );
        // (100 - 6)·1 + 1, (-40 + 4)·0.125 - 1, (7 - 6)·1 + 1, (0 + 4)·0.125 - 1
        assert_eq!(out, [95.0, -5.5, 2.0, -0.5]);
        rescale(
            &acc,
            2,
            &sums,
            0.5,
            &[2.0, 0.25],
            &[1.0, -1.0],
            true,
            &mut out,
        );
        assert_eq!(out, [95.0, 0.0, 2.0, 0.0]);
    }
}
