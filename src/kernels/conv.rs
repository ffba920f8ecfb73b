//! 2-D convolution, forward and both gradients, over NHWC activations and HWIO filters
//! (TensorFlow's layouts): direct SIMD kernels where the channels come in vectors of 16,
//! im2col and the blocked [`gemm`] for every other shape.
//!
//! With NHWC input and a HWIO filter, the patch an output position `(oy, ox)` reads is its
//! `(ky, kx, cin)` values, in the order of the filter viewed as a row-major `[K, cout]`
//! matrix (`K = kh·kw·cin`), and the values of one filter row `ky` are a contiguous run of
//! the input (`kw` neighbouring pixels of `cin` channels).
//!
//! **Direct kernels** (output channels a multiple of 16; for the input gradient, stride 1
//! and input channels a multiple of 16). Each image is first copied into a zero-padded
//! image in scratch, so that every window lies inside it. Then register tiles of a few
//! rows by 16 to 64 channels (up to 24 vectors of accumulators, sized per SIMD level) run
//! over the sum:
//!
//! - forward: a tile of output positions, over the taps `(ky, kx, ci)` in order, adds a
//!   broadcast input value times a row of the filter; then the bias;
//! - filter gradient: a tile of filter rows `(ky, kx, ci)`, starting from what the batch's
//!   earlier images gave, over the output positions in order, adds a broadcast input value
//!   times a row of `d_out`;
//! - input gradient (stride 1): the forward kernel on `d_out` padded by `k - 1 - pad`,
//!   with the filter flipped in both axes and its in and out channels swapped.
//!
//! Nothing is packed or copied per tile, as im2col's patches and gemm's panels are.
//!
//! **im2col + gemm** (any shape). Over a chunk of `P` output positions (consecutive in
//! `(image, oy, ox)` order, so consecutive rows of the NHWC output):
//!
//! - forward: `out[P, cout] = patches[P, K] · W[K, cout]`, then `+ bias`;
//! - filter gradient: `dW[K, cout] += patches[P, K]ᵀ · d_out[P, cout]`, chunk after chunk;
//! - input gradient: `d_patches[P, K] = d_out[P, cout] · W[K, cout]ᵀ`, then each patch row
//!   is added back where it was read from (col2im).
//!
//! The patches of a chunk (a few hundred KB whatever the batch) stay in cache between
//! being written and being multiplied; gemm skips depths that are zero across a whole
//! panel, so padding costs little in the product.
//!
//! Either way, the scratch comes from the caller ([`ConvGeometry::scratch_len`]) and no
//! kernel allocates. Results are deterministic, but the two methods sum in different
//! orders, so they agree to rounding, not to the bit.

use super::elementwise::{add_bias_rows, column_sums_into};
use super::gemm::{gemm, GemmWorkspace, MatRef, KC};
use super::simd::{dispatch, Level, Simd, SimdKernel};

/// How a convolution treats the border, by TensorFlow's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Output size `ceil(in / stride)`, with `max((out - 1)·stride + k - in, 0)` zeros of
    /// padding, half of them (rounded down) before the input, the rest after it.
    Same,
    /// No padding: output size `(in - k) / stride + 1` (rounded down), 0 when `in < k`.
    Valid,
}

/// The shape of a 2-D convolution of one image: its input, its filter, stride and padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    /// Input rows of pixels.
    pub height: usize,
    /// Input columns of pixels.
    pub width: usize,
    /// Channels of each input pixel.
    pub in_channels: usize,
    /// Channels of each output pixel (filters).
    pub out_channels: usize,
    /// Filter rows.
    pub kernel_h: usize,
    /// Filter columns.
    pub kernel_w: usize,
    /// Step between windows, the same along both axes (at least 1).
    pub stride: usize,
    /// Border rule.
    pub padding: Padding,
}

/// Output size along one axis.
fn out_size(input: usize, kernel: usize, stride: usize, padding: Padding) -> usize {
    match padding {
        Padding::Same => input.div_ceil(stride),
        Padding::Valid if input < kernel => 0,
        Padding::Valid => (input - kernel) / stride + 1,
    }
}

/// Padding before the input along one axis.
fn pad_before(input: usize, kernel: usize, stride: usize, padding: Padding) -> usize {
    match padding {
        Padding::Valid => 0,
        Padding::Same => {
            let out = input.div_ceil(stride);
            if out == 0 {
                return 0;
            }
            ((out - 1) * stride + kernel).saturating_sub(input) / 2
        }
    }
}

/// Patch values to aim for in one chunk of scratch: a few hundred KB, which stay in the
/// second-level cache between im2col and the product.
const CHUNK_VALUES: usize = 64 * 1024;
/// Chunks hold a multiple of this many output positions: whole row blocks of gemm's
/// packing, so no block is cut short in the middle of a chunk.
const CHUNK_STEP: usize = 96;

impl ConvGeometry {
    /// Output rows.
    pub fn out_height(&self) -> usize {
        out_size(self.height, self.kernel_h, self.stride, self.padding)
    }

    /// Output columns.
    pub fn out_width(&self) -> usize {
        out_size(self.width, self.kernel_w, self.stride, self.padding)
    }

    /// Rows of zero padding above the input (those below are whatever SAME needs beyond).
    pub fn pad_top(&self) -> usize {
        pad_before(self.height, self.kernel_h, self.stride, self.padding)
    }

    /// Columns of zero padding left of the input.
    pub fn pad_left(&self) -> usize {
        pad_before(self.width, self.kernel_w, self.stride, self.padding)
    }

    /// Values of one input image, `height·width·in_channels`.
    pub fn input_len(&self) -> usize {
        self.height * self.width * self.in_channels
    }

    /// Values of one output image, `out_height·out_width·out_channels`.
    pub fn output_len(&self) -> usize {
        self.out_height() * self.out_width() * self.out_channels
    }

    /// Values of the filter, `kernel_h·kernel_w·in_channels·out_channels`.
    pub fn filter_len(&self) -> usize {
        self.patch_len() * self.out_channels
    }

    /// f32s of scratch that each of the three passes needs for `rows` images: a padded
    /// image (and, for the input gradient, the flipped filter) for the direct kernels, or
    /// one chunk of patches for im2col; neither grows past a fixed size however many
    /// images there are.
    pub fn scratch_len(&self, rows: usize) -> usize {
        let patches = self.chunk_positions(rows) * self.patch_len();
        let forward = if self.direct() {
            Direct::forward(self).padded_len()
        } else {
            patches
        };
        let input_gradient = if self.direct_input_gradient() {
            self.filter_len() + Direct::input_gradient(self).padded_len()
        } else {
            patches
        };
        forward.max(input_gradient)
    }

    /// Whether the forward pass and the filter gradient run the direct kernels: when the
    /// output channels come in whole vectors.
    fn direct(&self) -> bool {
        self.out_channels % LANES == 0
    }

    /// Whether the input gradient runs the direct kernel: at stride 1, when the input
    /// channels come in whole vectors.
    fn direct_input_gradient(&self) -> bool {
        self.stride == 1 && self.in_channels % LANES == 0
    }

    /// Values of one patch row, `K = kernel_h·kernel_w·in_channels`.
    fn patch_len(&self) -> usize {
        self.kernel_h * self.kernel_w * self.in_channels
    }

    /// Output positions of one image.
    fn positions(&self) -> usize {
        self.out_height() * self.out_width()
    }

    /// Output positions per chunk of patches for `rows` images: whole row blocks of gemm
    /// (at least one), as many as fit in [`CHUNK_VALUES`], never more than there are.
    fn chunk_positions(&self, rows: usize) -> usize {
        let fit = CHUNK_VALUES / self.patch_len().max(1) / CHUNK_STEP * CHUNK_STEP;
        fit.max(CHUNK_STEP).min(rows * self.positions())
    }

    /// Panics unless the geometry can be computed with (stride, kernel and input channels
    /// at least 1).
    fn assert_valid(&self) {
        assert!(self.stride >= 1, "convolution stride is 0");
        assert!(self.in_channels >= 1, "convolution over 0 input channels");
        assert!(
            self.kernel_h >= 1 && self.kernel_w >= 1,
            "convolution kernel is {}x{}",
            self.kernel_h,
            self.kernel_w
        );
    }
}

/// Panics with the buffer's name unless it holds exactly `want` values.
fn assert_len(name: &str, len: usize, want: usize) {
    assert!(len == want, "{name} holds {len} values, not {want}");
}

/// Panics unless `scratch` holds what `rows` images need.
fn assert_scratch(g: &ConvGeometry, rows: usize, scratch: &[f32]) {
    let want = g.scratch_len(rows);
    assert!(
        scratch.len() >= want,
        "scratch holds {} values, below the {want} of scratch_len",
        scratch.len()
    );
}

/// Writes the patch rows of output positions `first..first + patches.len() / K` (counted
/// over the whole batch in `(image, oy, ox)` order) into `patches` (`[P, K]`), zeros where
/// a window covers padding.
fn im2col(g: &ConvGeometry, input: &[f32], first: usize, patches: &mut [f32]) {
    let (k, cin) = (g.patch_len(), g.in_channels);
    let (oh, ow, positions) = (g.out_height(), g.out_width(), g.positions());
    let (pt, pl, s) = (g.pad_top(), g.pad_left(), g.stride);
    let run = g.kernel_w * cin;
    debug_assert_eq!(patches.len() % k.max(1), 0);
    for (p, row) in (first..).zip(patches.chunks_exact_mut(k)) {
        let (image, at) = (p / positions, p % positions);
        let (oy, ox) = (at / ow, at % ow);
        debug_assert!(oy < oh);
        let image = &input[image * g.input_len()..][..g.input_len()];
        // Columns of the window inside the input: kx in kx0..kx1.
        let x0 = (ox * s) as isize - pl as isize;
        let kx0 = (-x0).clamp(0, g.kernel_w as isize) as usize;
        let kx1 = (g.width as isize - x0).clamp(kx0 as isize, g.kernel_w as isize) as usize;
        let y0 = (oy * s) as isize - pt as isize;
        for (ky, dst) in row.chunks_exact_mut(run).enumerate() {
            let iy = y0 + ky as isize;
            if iy < 0 || iy >= g.height as isize || kx0 == kx1 {
                dst.fill(0.0);
                continue;
            }
            let ix0 = (x0 + kx0 as isize) as usize;
            let src = &image[(iy as usize * g.width + ix0) * cin..][..(kx1 - kx0) * cin];
            dst[..kx0 * cin].fill(0.0);
            dst[kx0 * cin..kx1 * cin].copy_from_slice(src);
            dst[kx1 * cin..].fill(0.0);
        }
    }
}

/// Adds the patch rows `d_patches` (`[P, K]`) of output positions `first..` back onto the
/// input positions they were read from (the transpose of [`im2col`]); padding is dropped.
fn col2im_add(g: &ConvGeometry, d_patches: &[f32], first: usize, d_input: &mut [f32]) {
    let (k, cin) = (g.patch_len(), g.in_channels);
    let (ow, positions) = (g.out_width(), g.positions());
    let (pt, pl, s) = (g.pad_top(), g.pad_left(), g.stride);
    let run = g.kernel_w * cin;
    for (p, row) in (first..).zip(d_patches.chunks_exact(k)) {
        let (image, at) = (p / positions, p % positions);
        let (oy, ox) = (at / ow, at % ow);
        let image = &mut d_input[image * g.input_len()..][..g.input_len()];
        let x0 = (ox * s) as isize - pl as isize;
        let kx0 = (-x0).clamp(0, g.kernel_w as isize) as usize;
        let kx1 = (g.width as isize - x0).clamp(kx0 as isize, g.kernel_w as isize) as usize;
        let y0 = (oy * s) as isize - pt as isize;
        for (ky, src) in row.chunks_exact(run).enumerate() {
            let iy = y0 + ky as isize;
            if iy < 0 || iy >= g.height as isize || kx0 == kx1 {
                continue;
            }
            let ix0 = (x0 + kx0 as isize) as usize;
            let dst = &mut image[(iy as usize * g.width + ix0) * cin..][..(kx1 - kx0) * cin];
            for (d, v) in dst.iter_mut().zip(&src[kx0 * cin..kx1 * cin]) {
                *d += v;
            }
        }
    }
}

/// `out[rows, oh, ow, cout] = conv(input[rows, h, w, cin], filter[kh, kw, cin, cout]) +
/// bias[cout]`, overwriting `out`.
///
/// Each output is the sum of its products plus the bias, as TensorFlow's `conv2d`
/// followed by `bias_add`. `scratch` holds at least
/// [`g.scratch_len(rows)`](ConvGeometry::scratch_len) values; its contents are not used.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    g: &ConvGeometry,
    rows: usize,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    ws: &mut GemmWorkspace,
) {
    g.assert_valid();
    assert_len("input", input.len(), rows * g.input_len());
    assert_len("filter", filter.len(), g.filter_len());
    assert_len("bias", bias.len(), g.out_channels);
    assert_len("out", out.len(), rows * g.output_len());
    assert_scratch(g, rows, scratch);
    if g.direct() {
        forward_direct(g, rows, input, filter, bias, out, scratch);
    } else {
        forward_im2col(g, rows, input, filter, bias, out, scratch, ws);
    }
}

/// The forward pass by im2col and gemm, a chunk of output positions at a time.
#[allow(clippy::too_many_arguments)]
fn forward_im2col(
    g: &ConvGeometry,
    rows: usize,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    ws: &mut GemmWorkspace,
) {
    let (k, cout) = (g.patch_len(), g.out_channels);
    let total = rows * g.positions();
    let chunk = g.chunk_positions(rows);
    for first in (0..total).step_by(chunk.max(1)) {
        let p = chunk.min(total - first);
        let patches = &mut scratch[..p * k];
        im2col(g, input, first, patches);
        let out = &mut out[first * cout..(first + p) * cout];
        gemm(
            p,
            cout,
            k,
            MatRef::row_major(patches, k),
            MatRef::row_major(filter, cout),
            out,
            cout,
            false,
            ws,
        );
        add_bias_rows(out, bias);
    }
}

/// Lanes of one vector of output channels.
const LANES: usize = 16;

/// `p / divisor` for every `p` below a limit, by a multiplication and a shift where the
/// limit allows: the direct kernels find the window of an output position this way once per
/// position (filter gradient) or tile row (forward), and a 64-bit division there took a
/// fifth of conv1's filter gradient (`perf`).
#[derive(Debug, Clone, Copy)]
struct Divider {
    divisor: usize,
    /// `ceil(2^32 / divisor)`, or 0 where it would not be exact (then `p / divisor`).
    magic: u64,
}

impl Divider {
    /// Exact for `p < limit`: with `magic = (2^32 + e) / d`, `0 <= e < d`, and `p = q·d + r`,
    /// `p·magic / 2^32 = q + r/d + p·e/(d·2^32) < q + (d - 1)/d + p/2^32`, below `q + 1`
    /// when `p·d < 2^32`, which `limit·d <= 2^32` gives.
    fn new(divisor: usize, limit: usize) -> Self {
        let exact = divisor > 0 && (limit as u128) * (divisor as u128) <= 1 << 32;
        let magic = if exact {
            (1u64 << 32).div_ceil(divisor as u64)
        } else {
            0
        };
        Divider { divisor, magic }
    }

    #[inline(always)]
    fn quotient(self, p: usize) -> usize {
        if self.magic != 0 {
            ((p as u64 * self.magic) >> 32) as usize
        } else {
            p / self.divisor
        }
    }
}

/// A convolution as the direct kernels see it: VALID windows over an image already padded,
/// `[hp, wp, cin]`, with a `[kh, kw, cin, cout]` filter.
#[derive(Debug, Clone, Copy)]
struct Direct {
    /// Padded rows and columns.
    hp: usize,
    wp: usize,
    cin: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    /// Output columns and positions (rows times columns).
    ow: usize,
    positions: usize,
    /// Division by `ow` over the positions.
    by_ow: Divider,
}

impl Direct {
    /// The forward convolution of `g`, over its input padded so that every window lies
    /// inside: `(oh - 1)·stride + kh` rows by `(ow - 1)·stride + kw` columns.
    fn forward(g: &ConvGeometry) -> Self {
        Direct {
            hp: (g.out_height().max(1) - 1) * g.stride + g.kernel_h,
            wp: (g.out_width().max(1) - 1) * g.stride + g.kernel_w,
            cin: g.in_channels,
            cout: g.out_channels,
            kh: g.kernel_h,
            kw: g.kernel_w,
            stride: g.stride,
            ow: g.out_width(),
            positions: g.positions(),
            by_ow: Divider::new(g.out_width(), g.positions()),
        }
    }

    /// The input gradient of `g` (stride 1) as a forward convolution: `d_out` padded by
    /// `kh - 1 - pad_top` rows above and `kw - 1 - pad_left` columns left, to `h + kh - 1`
    /// by `w + kw - 1`, convolved VALID with the filter flipped in both axes and its
    /// channels swapped, gives an `[h, w, cin]` image.
    fn input_gradient(g: &ConvGeometry) -> Self {
        debug_assert_eq!(g.stride, 1);
        Direct {
            hp: g.height + g.kernel_h - 1,
            wp: g.width + g.kernel_w - 1,
            cin: g.out_channels,
            cout: g.in_channels,
            kh: g.kernel_h,
            kw: g.kernel_w,
            stride: 1,
            ow: g.width,
            positions: g.height * g.width,
            by_ow: Divider::new(g.width, g.height * g.width),
        }
    }

    fn padded_len(&self) -> usize {
        self.hp * self.wp * self.cin
    }

    /// Where the window of output position `p` starts in the padded image, by a division.
    #[inline(always)]
    fn window_at_divided(&self, p: usize) -> usize {
        ((p / self.ow) * self.stride * self.wp + (p % self.ow) * self.stride) * self.cin
    }

    /// [`Direct::window_at_divided`] through [`Divider`].
    #[inline(always)]
    fn window_at(&self, p: usize) -> usize {
        let oy = self.by_ow.quotient(p);
        let ox = p - oy * self.ow;
        (oy * self.wp + ox) * self.stride * self.cin
    }
}

/// Copies `image` (`[h, w, c]`) into `padded` (`[.., wp, c]`) `top` rows down and `left`
/// columns right, cropped to `hp` rows and `wp` columns; the values around it are left as
/// they are (zeros, written once for the whole batch).
fn pad_into(
    image: &[f32],
    (h, w, c): (usize, usize, usize),
    (top, left): (usize, usize),
    (hp, wp): (usize, usize),
    padded: &mut [f32],
) {
    let columns = w.min(wp.saturating_sub(left));
    for y in top..hp.min(top + h) {
        let src = &image[(y - top) * w * c..][..columns * c];
        padded[(y * wp + left) * c..][..columns * c].copy_from_slice(src);
    }
}

/// Runs `$body` for each block of channels of `$cout` (a multiple of 16), with `$j0` its
/// first channel, `$v` its vectors of 16 and `$r` the rows of its register tiles, sized for
/// the registers of the level `$S`:
///
/// - AVX-512 (32 registers, one per vector): blocks of 64 channels by 6 rows (24
///   accumulators, and few enough row pointers to stay in general registers), then 32 by 8
///   (16 accumulators; twelve rows ran no faster: their row pointers no longer fit in
///   general registers, and 25 filter rows left a last tile mostly empty), then a last 16
///   by 8;
/// - AVX2 (16 registers, two per vector): 16 channels by 6 rows (12 registers of
///   accumulators, 2 for the filter row, one broadcast) for the forward kernel, where
///   32 channels by 3 rows spilled accumulators (half again as slow); the filter gradient
///   (`$filter` true) takes 32 channels by 3 rows first, which reads each `d_out` row
///   fewer times and ran faster there;
/// - portable: 32 channels by 2 rows, then 16 by 4 (sixteen 128-bit registers on a baseline
///   x86-64, four per vector).
///
/// The tile shape changes which outputs are computed together, never the order of any
/// output's sum, so every level computes the same values (the fused ones bit for bit).
macro_rules! for_channel_blocks {
    ($S:ident, $filter:expr, $cout:expr, |$j0:ident, $r:ident, $v:ident| $body:expr) => {{
        let mut $j0 = 0;
        while $j0 < $cout {
            let vectors = ($cout - $j0) / LANES;
            $j0 += LANES
                * match (<$S as Simd>::LEVEL, vectors) {
                    (Level::Avx512, 4..) => {
                        const $r: usize = 6;
                        const $v: usize = 4;
                        $body;
                        $v
                    }
                    (Level::Avx512, 2..) => {
                        const $r: usize = 8;
                        const $v: usize = 2;
                        $body;
                        $v
                    }
                    (Level::Avx512, _) => {
                        const $r: usize = 8;
                        const $v: usize = 1;
                        $body;
                        $v
                    }
                    (Level::Avx2, 2..) if $filter => {
                        const $r: usize = 3;
                        const $v: usize = 2;
                        $body;
                        $v
                    }
                    (Level::Avx2, _) => {
                        const $r: usize = 6;
                        const $v: usize = 1;
                        $body;
                        $v
                    }
                    (Level::Portable, 2..) => {
                        const $r: usize = 2;
                        const $v: usize = 2;
                        $body;
                        $v
                    }
                    (Level::Portable, _) => {
                        const $r: usize = 4;
                        const $v: usize = 1;
                        $body;
                        $v
                    }
                };
        }
    }};
}

/// The forward pass straight from the padded images: see [`direct_tiles`].
fn forward_direct(
    g: &ConvGeometry,
    rows: usize,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
) {
    if rows * g.output_len() == 0 {
        return;
    }
    let d = Direct::forward(g);
    let padded = &mut scratch[..d.padded_len()];
    padded.fill(0.0);
    dispatch(DirectConv {
        d,
        shape: (g.height, g.width, g.in_channels),
        at: (g.pad_top(), g.pad_left()),
        images: input,
        filter,
        bias: Some(bias),
        out,
        padded,
    });
}

/// A direct convolution of a batch, for [`dispatch`]: each `[h, w, c]` image of `images`
/// (`shape`) is copied into `padded` at `at` (rows, columns), then convolved by
/// [`direct_tiles`] into its `[positions, cout]` image of `out`.
struct DirectConv<'a> {
    d: Direct,
    shape: (usize, usize, usize),
    at: (usize, usize),
    images: &'a [f32],
    filter: &'a [f32],
    bias: Option<&'a [f32]>,
    out: &'a mut [f32],
    padded: &'a mut [f32],
}

impl SimdKernel for DirectConv<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let DirectConv {
            d,
            shape,
            at,
            images,
            filter,
            bias,
            out,
            padded,
        } = self;
        let (h, w, c) = shape;
        let images = images
            .chunks_exact(h * w * c)
            .zip(out.chunks_exact_mut(d.positions * d.cout));
        for (image, out) in images {
            pad_into(image, shape, at, (d.hp, d.wp), padded);
            for_channel_blocks!(S, false, d.cout, |j0, R, V| direct_tiles::<S, R, V>(
                s, &d, padded, filter, bias, j0, out
            ));
        }
    }
}

/// Channels `j0..j0 + 16·V` of one image's output (`[positions, cout]`) from its padded
/// input, plus `bias` when given.
///
/// Each register tile holds `R` output positions (consecutive in `(oy, ox)`
/// order) by `16·V` channels and runs over the taps `(ky, kx, ci)` in order: a broadcast
/// input value times a row of the filter, per tap and position. Nothing is packed; each
/// output is its products summed in tap order, then the bias.
#[inline(always)]
fn direct_tiles<S: Simd, const R: usize, const V: usize>(
    s: S,
    d: &Direct,
    padded: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    j0: usize,
    out: &mut [f32],
) {
    let (cin, cout) = (d.cin, d.cout);
    for t in (0..d.positions).step_by(R) {
        // The last tile may hold fewer positions: its dead rows repeat the first one.
        let live = R.min(d.positions - t);
        let bases: [usize; R] =
            std::array::from_fn(|r| d.window_at(t + if r < live { r } else { 0 }));
        let mut acc = [[s.zero(); V]; R];
        // The taps are summed in blocks of gemm's KC, each block from zero and then added
        // to the sum so far, as the im2col product sums its depths: the forward pass gives
        // the im2col path's bits. A longer running sum rounds differently, and a training
        // run amplifies that wherever two values of a pooling window nearly tie (the
        // tutorial's CNN then left TensorFlow's parameters by 1e-5 within ten updates).
        let mut in_block = 0;
        let mut partial = false;
        // A filter row `ky` reads `kw·cin` consecutive values of the padded image, and
        // its taps are consecutive rows of the filter.
        let run = d.kw * cin;
        for ky in 0..d.kh {
            let at = ky * d.wp * cin;
            let values: [&[f32]; R] = std::array::from_fn(|r| &padded[bases[r] + at..][..run]);
            let taps = &filter[ky * run * cout..][..run * cout];
            let mut j = 0;
            while j < run {
                let end = run.min(j + (KC - in_block));
                for j in j..end {
                    let row = &taps[j * cout + j0..][..V * LANES];
                    let w: [S::F32; V] = std::array::from_fn(|v| s.load(&row[v * LANES..]));
                    for (acc, values) in acc.iter_mut().zip(&values) {
                        // Checked, and the checks are gone from the loop: every `values`
                        // row holds `run` values and `j < run`.
                        let x = s.splat(values[j]);
                        for (a, w) in acc.iter_mut().zip(&w) {
                            *a = s.mul_add(x, *w, *a);
                        }
                    }
                }
                in_block += end - j;
                j = end;
                if in_block == KC {
                    store_tile(
                        s,
                        &acc,
                        live,
                        partial,
                        None,
                        &mut out[t * cout + j0..],
                        cout,
                    );
                    acc = [[s.zero(); V]; R];
                    partial = true;
                    in_block = 0;
                }
            }
        }
        store_tile(
            s,
            &acc,
            live,
            partial,
            bias.map(|b| &b[j0..]),
            &mut out[t * cout + j0..],
            cout,
        );
    }
}

/// Writes a direct tile's `live` rows of `16·V` channels (rows `cout` apart in `out`): the
/// sums in `acc`, added to what `out` holds when `partial`, then `bias` added.
#[inline(always)]
fn store_tile<S: Simd, const R: usize, const V: usize>(
    s: S,
    acc: &[[S::F32; V]; R],
    live: usize,
    partial: bool,
    bias: Option<&[f32]>,
    out: &mut [f32],
    cout: usize,
) {
    // Through memory once, for the stores: without this LLVM kept a copy of every
    // accumulator in memory up to date inside the loop, a store after each multiply-add
    // (half the speed on 64 channels; measured again inside the dispatch: conv2's
    // forward at batch 50 took 12.6 ms without it, 6.2 ms with it).
    let acc = std::hint::black_box(*acc);
    for (r, acc) in acc.iter().enumerate().take(live) {
        let dst = &mut out[r * cout..][..V * LANES];
        for (v, (dst, a)) in dst.chunks_exact_mut(LANES).zip(acc).enumerate() {
            let sum = if partial { s.add(s.load(dst), *a) } else { *a };
            let sum = match bias {
                Some(bias) => s.add(sum, s.load(&bias[v * LANES..])),
                None => sum,
            };
            s.store(sum, dst);
        }
    }
}

/// `d_input[rows, h, w, cin]`, the gradient of a loss with respect to the input of
/// [`conv2d_forward`] given `d_out[rows, oh, ow, cout]`, the gradient with respect to its
/// output; overwrites `d_input`.
pub fn conv2d_backward_input(
    g: &ConvGeometry,
    rows: usize,
    d_out: &[f32],
    filter: &[f32],
    d_input: &mut [f32],
    scratch: &mut [f32],
    ws: &mut GemmWorkspace,
) {
    g.assert_valid();
    assert_len("d_out", d_out.len(), rows * g.output_len());
    assert_len("filter", filter.len(), g.filter_len());
    assert_len("d_input", d_input.len(), rows * g.input_len());
    assert_scratch(g, rows, scratch);
    if g.direct_input_gradient() {
        backward_input_direct(g, rows, d_out, filter, d_input, scratch);
    } else {
        backward_input_im2col(g, rows, d_out, filter, d_input, scratch, ws);
    }
}

/// The input gradient by gemm into patch space and col2im, a chunk at a time.
fn backward_input_im2col(
    g: &ConvGeometry,
    rows: usize,
    d_out: &[f32],
    filter: &[f32],
    d_input: &mut [f32],
    scratch: &mut [f32],
    ws: &mut GemmWorkspace,
) {
    d_input.fill(0.0);
    let (k, cout) = (g.patch_len(), g.out_channels);
    let total = rows * g.positions();
    let chunk = g.chunk_positions(rows);
    for first in (0..total).step_by(chunk.max(1)) {
        let p = chunk.min(total - first);
        let d_patches = &mut scratch[..p * k];
        gemm(
            p,
            k,
            cout,
            MatRef::row_major(&d_out[first * cout..(first + p) * cout], cout),
            MatRef::row_major(filter, cout).t(),
            d_patches,
            k,
            false,
            ws,
        );
        col2im_add(g, d_patches, first, d_input);
    }
}

/// The input gradient of a stride-1 convolution as the forward convolution of
/// [`Direct::input_gradient`], through [`direct_tiles`]: the flipped filter is written
/// once into scratch, then each image's `d_out` is padded and convolved.
fn backward_input_direct(
    g: &ConvGeometry,
    rows: usize,
    d_out: &[f32],
    filter: &[f32],
    d_input: &mut [f32],
    scratch: &mut [f32],
) {
    if g.output_len() == 0 {
        // No window: nothing reads the input.
        d_input.fill(0.0);
        return;
    }
    if rows * g.input_len() == 0 {
        return;
    }
    let d = Direct::input_gradient(g);
    let (flipped, padded) = scratch.split_at_mut(g.filter_len());
    let padded = &mut padded[..d.padded_len()];
    let (kh, kw, cout) = (g.kernel_h, g.kernel_w, g.out_channels);
    let flipped = &mut flipped[..g.filter_len()];
    dispatch(FlipFilter { g, filter, flipped });
    padded.fill(0.0);
    dispatch(DirectConv {
        d,
        shape: (g.out_height(), g.out_width(), cout),
        at: (kh - 1 - g.pad_top(), kw - 1 - g.pad_left()),
        images: d_out,
        filter: flipped,
        bias: None,
        out: d_input,
        padded,
    });
}

/// `flipped[ky, kx, co, ci] = filter[kh - 1 - ky, kw - 1 - kx, ci, co]`, for [`dispatch`]:
/// 8x8 blocks through register transposes where both channel counts are multiples of 8.
/// The trainer's shards of one or two images each flip the filter again, and a scalar
/// copy took a tenth of conv2's input gradient at two images.
struct FlipFilter<'a> {
    g: &'a ConvGeometry,
    filter: &'a [f32],
    flipped: &'a mut [f32],
}

impl SimdKernel for FlipFilter<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let FlipFilter { g, filter, flipped } = self;
        let (kh, kw, cin, cout) = (g.kernel_h, g.kernel_w, g.in_channels, g.out_channels);
        let taps = filter.chunks_exact(cin * cout).rev();
        for (src, dst) in taps.zip(flipped.chunks_exact_mut(cout * cin)) {
            if cin % 8 != 0 || cout % 8 != 0 {
                for (ci, row) in src.chunks_exact(cout).enumerate() {
                    for (co, &v) in row.iter().enumerate() {
                        dst[co * cin + ci] = v;
                    }
                }
                continue;
            }
            for ci in (0..cin).step_by(8) {
                for co in (0..cout).step_by(8) {
                    let block: [[f32; 8]; 8] = std::array::from_fn(|i| {
                        let row = &src[(ci + i) * cout + co..][..8];
                        std::array::from_fn(|j| row[j])
                    });
                    for (j, row) in s.transpose8(&block).iter().enumerate() {
                        dst[(co + j) * cin + ci..][..8].copy_from_slice(row);
                    }
                }
            }
        }
        debug_assert_eq!(filter.len(), kh * kw * cin * cout);
    }
}

/// `d_filter[kh, kw, cin, cout]` and `d_bias[cout]`, the gradients of a loss with respect
/// to the filter and bias of [`conv2d_forward`] given `d_out[rows, oh, ow, cout]`, summed
/// over the batch; overwrites both.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_filter(
    g: &ConvGeometry,
    rows: usize,
    input: &[f32],
    d_out: &[f32],
    d_filter: &mut [f32],
    d_bias: &mut [f32],
    scratch: &mut [f32],
    ws: &mut GemmWorkspace,
) {
    g.assert_valid();
    assert_len("input", input.len(), rows * g.input_len());
    assert_len("d_out", d_out.len(), rows * g.output_len());
    assert_len("d_filter", d_filter.len(), g.filter_len());
    assert_len("d_bias", d_bias.len(), g.out_channels);
    assert_scratch(g, rows, scratch);
    if g.direct() {
        backward_filter_direct(g, rows, input, d_out, d_filter, d_bias, scratch);
    } else {
        column_sums_into(d_out, d_bias, false);
        backward_filter_im2col(g, rows, input, d_out, d_filter, scratch, ws);
    }
}

/// The filter gradient by gemm, `patchesᵀ · d_out` accumulated a chunk at a time.
fn backward_filter_im2col(
    g: &ConvGeometry,
    rows: usize,
    input: &[f32],
    d_out: &[f32],
    d_filter: &mut [f32],
    scratch: &mut [f32],
    ws: &mut GemmWorkspace,
) {
    let (k, cout) = (g.patch_len(), g.out_channels);
    let total = rows * g.positions();
    if total == 0 {
        d_filter.fill(0.0);
        return;
    }
    let chunk = g.chunk_positions(rows);
    for first in (0..total).step_by(chunk) {
        let p = chunk.min(total - first);
        let patches = &mut scratch[..p * k];
        im2col(g, input, first, patches);
        gemm(
            k,
            cout,
            p,
            MatRef::row_major(patches, k).t(),
            MatRef::row_major(&d_out[first * cout..(first + p) * cout], cout),
            d_filter,
            cout,
            first > 0,
            ws,
        );
    }
}

/// The filter gradient straight from the padded images (see [`filter_tiles`]) and the
/// bias gradient (see [`bias_sums`]).
fn backward_filter_direct(
    g: &ConvGeometry,
    rows: usize,
    input: &[f32],
    d_out: &[f32],
    d_filter: &mut [f32],
    d_bias: &mut [f32],
    scratch: &mut [f32],
) {
    d_filter.fill(0.0);
    if rows * g.output_len() == 0 {
        d_bias.fill(0.0);
        return;
    }
    let d = Direct::forward(g);
    let padded = &mut scratch[..d.padded_len()];
    padded.fill(0.0);
    dispatch(FilterGradient {
        g,
        d,
        input,
        d_out,
        d_filter,
        d_bias,
        padded,
    });
}

/// [`backward_filter_direct`]'s arguments, for [`dispatch`].
struct FilterGradient<'a> {
    g: &'a ConvGeometry,
    d: Direct,
    input: &'a [f32],
    d_out: &'a [f32],
    d_filter: &'a mut [f32],
    d_bias: &'a mut [f32],
    padded: &'a mut [f32],
}

impl SimdKernel for FilterGradient<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let FilterGradient {
            g,
            d,
            input,
            d_out,
            d_filter,
            d_bias,
            padded,
        } = self;
        bias_sums(s, d_out, d_bias);
        let shape = (g.height, g.width, g.in_channels);
        let images = input
            .chunks_exact(g.input_len())
            .zip(d_out.chunks_exact(g.output_len()));
        for (image, d_out) in images {
            pad_into(
                image,
                shape,
                (g.pad_top(), g.pad_left()),
                (d.hp, d.wp),
                padded,
            );
            for_channel_blocks!(S, true, d.cout, |j0, R, V| filter_rows::<S, R, V>(
                s, &d, padded, d_out, j0, d_filter
            ));
        }
    }
}

/// `d_bias[c] = Σ_p d_out[p, c]` over every row of `d_out` (`[.., cout]`, `cout` a multiple
/// of 16), each a running sum from zero in row order as [`column_sums_into`] adds them (the
/// same bits), but in registers: that one reloads and stores its sums for every row, a
/// chain through memory that cost conv1's filter gradient about a fifth of its time.
#[inline(always)]
fn bias_sums<S: Simd>(s: S, d_out: &[f32], d_bias: &mut [f32]) {
    const V: usize = 4;
    let cout = d_bias.len();
    debug_assert_eq!(cout % LANES, 0);
    for j0 in (0..cout).step_by(V * LANES) {
        let vectors = ((cout - j0) / LANES).min(V);
        let mut acc = [s.zero(); V];
        for row in d_out.chunks_exact(cout) {
            let row = &row[j0..][..vectors * LANES];
            for (a, x) in acc.iter_mut().zip(row.chunks_exact(LANES)) {
                *a = s.add(*a, s.load(x));
            }
        }
        let dst = &mut d_bias[j0..][..vectors * LANES];
        for (a, dst) in acc.iter().zip(dst.chunks_exact_mut(LANES)) {
            s.store(*a, dst);
        }
    }
}

/// [`filter_tiles`] over all `K` filter rows: whole tiles of `R` rows, then the rows left
/// over in a shorter tile, whose dead rows would otherwise cost as much as live ones
/// (conv1's 25 rows in tiles of 8 computed 32).
#[inline(always)]
fn filter_rows<S: Simd, const R: usize, const V: usize>(
    s: S,
    d: &Direct,
    padded: &[f32],
    d_out: &[f32],
    j0: usize,
    d_filter: &mut [f32],
) {
    let k = d.kh * d.kw * d.cin;
    if R * V > 16 {
        // The 24-accumulator tile ran 0.9x with a shorter tile after it (conv2's 800 rows
        // leave 2): the added code cost its loop general registers.
        filter_tiles::<S, R, V>(s, d, padded, d_out, j0, (0, k), d_filter);
        return;
    }
    let full = k - k % R;
    filter_tiles::<S, R, V>(s, d, padded, d_out, j0, (0, full), d_filter);
    let tail = (full, k);
    match k - full {
        0 => {}
        1 => filter_tiles::<S, 1, V>(s, d, padded, d_out, j0, tail, d_filter),
        2 => filter_tiles::<S, 2, V>(s, d, padded, d_out, j0, tail, d_filter),
        3 | 4 => filter_tiles::<S, 4, V>(s, d, padded, d_out, j0, tail, d_filter),
        _ => filter_tiles::<S, R, V>(s, d, padded, d_out, j0, tail, d_filter),
    }
}

/// Adds one image's share to channels `j0..j0 + 16·V` of filter rows `rows.0..rows.1` of
/// `d_filter` (`[K, cout]`), from its padded input and its `d_out` (`[positions, cout]`).
///
/// Each register tile holds `R` filter rows `(ky, kx, ci)` by `16·V` channels,
/// starts from what `d_filter` holds and runs over the output positions in order: a
/// broadcast input value times a row of `d_out`, per position and filter row. So each
/// weight's gradient is one running sum over the batch's positions, image after image.
#[inline(always)]
fn filter_tiles<S: Simd, const R: usize, const V: usize>(
    s: S,
    d: &Direct,
    padded: &[f32],
    d_out: &[f32],
    j0: usize,
    (begin, end): (usize, usize),
    d_filter: &mut [f32],
) {
    let (cin, cout) = (d.cin, d.cout);
    let span = ((d.kh - 1) * d.wp + d.kw) * cin;
    for t in (begin..end).step_by(R) {
        // The last tile may hold fewer rows: its dead rows repeat the first one.
        let live = R.min(end - t);
        let offsets: [usize; R] = std::array::from_fn(|r| {
            let q = t + if r < live { r } else { 0 };
            let (tap, ci) = (q / cin, q % cin);
            ((tap / d.kw) * d.wp + tap % d.kw) * cin + ci
        });
        let mut acc: [[S::F32; V]; R] = std::array::from_fn(|r| {
            let row = &d_filter[(t + r.min(live - 1)) * cout + j0..][..V * LANES];
            std::array::from_fn(|v| s.load(&row[v * LANES..]))
        });
        // The window's start is divided out of `p`: keeping it up to date instead, by rows
        // and columns or by a running offset, made LLVM load all `R` broadcasts ahead of
        // the multiply-adds and spill accumulators (conv2: 8.3 ms became 10-11 ms).
        for (p, grads) in d_out.chunks_exact(cout).enumerate() {
            // With 24 accumulators the hardware division stays: with the multiplication
            // LLVM loaded all six broadcasts ahead of the multiply-adds and spilled
            // accumulators (conv2 ran 0.8x); 5 rows by 64 channels, which fit either way,
            // ran 0.93x. With 16 (conv1) the multiplication is the faster.
            let at = if R * V > 16 {
                d.window_at_divided(p)
            } else {
                d.window_at(p)
            };
            let window = &padded[at..][..span];
            let grads = &grads[j0..][..V * LANES];
            let g: [S::F32; V] = std::array::from_fn(|v| s.load(&grads[v * LANES..]));
            for (acc, &at) in acc.iter_mut().zip(&offsets) {
                let x = s.splat(window[at]);
                for (a, g) in acc.iter_mut().zip(&g) {
                    *a = s.mul_add(x, *g, *a);
                }
            }
        }
        // Through memory once, for the stores, as in `direct_tiles`.
        let acc = std::hint::black_box(acc);
        for (r, acc) in acc.iter().enumerate() {
            if r >= live {
                continue;
            }
            let dst = &mut d_filter[(t + r) * cout + j0..][..V * LANES];
            for (dst, a) in dst.chunks_exact_mut(LANES).zip(acc) {
                s.store(*a, dst);
            }
        }
    }
}

/// The three passes by im2col and gemm whatever the shape, for the tests and benches that
/// compare them with the direct kernels; `scratch` holds [`im2col::scratch_len`] values.
#[doc(hidden)]
pub mod im2col {
    use super::*;

    /// Scratch the im2col passes need for `rows` images.
    pub fn scratch_len(g: &ConvGeometry, rows: usize) -> usize {
        g.chunk_positions(rows) * g.patch_len()
    }

    /// [`super::conv2d_forward`] by im2col and gemm.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_forward(
        g: &ConvGeometry,
        rows: usize,
        input: &[f32],
        filter: &[f32],
        bias: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
        ws: &mut GemmWorkspace,
    ) {
        g.assert_valid();
        assert_len("input", input.len(), rows * g.input_len());
        assert_len("filter", filter.len(), g.filter_len());
        assert_len("bias", bias.len(), g.out_channels);
        assert_len("out", out.len(), rows * g.output_len());
        assert!(
            scratch.len() >= scratch_len(g, rows),
            "scratch is too short"
        );
        forward_im2col(g, rows, input, filter, bias, out, scratch, ws);
    }

    /// [`super::conv2d_backward_input`] by gemm and col2im.
    pub fn conv2d_backward_input(
        g: &ConvGeometry,
        rows: usize,
        d_out: &[f32],
        filter: &[f32],
        d_input: &mut [f32],
        scratch: &mut [f32],
        ws: &mut GemmWorkspace,
    ) {
        g.assert_valid();
        assert_len("d_out", d_out.len(), rows * g.output_len());
        assert_len("filter", filter.len(), g.filter_len());
        assert_len("d_input", d_input.len(), rows * g.input_len());
        assert!(
            scratch.len() >= scratch_len(g, rows),
            "scratch is too short"
        );
        backward_input_im2col(g, rows, d_out, filter, d_input, scratch, ws);
    }

    /// [`super::conv2d_backward_filter`] by im2col and gemm.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_backward_filter(
        g: &ConvGeometry,
        rows: usize,
        input: &[f32],
        d_out: &[f32],
        d_filter: &mut [f32],
        d_bias: &mut [f32],
        scratch: &mut [f32],
        ws: &mut GemmWorkspace,
    ) {
        g.assert_valid();
        assert_len("input", input.len(), rows * g.input_len());
        assert_len("d_out", d_out.len(), rows * g.output_len());
        assert_len("d_filter", d_filter.len(), g.filter_len());
        assert_len("d_bias", d_bias.len(), g.out_channels);
        assert!(
            scratch.len() >= scratch_len(g, rows),
            "scratch is too short"
        );
        column_sums_into(d_out, d_bias, false);
        backward_filter_im2col(g, rows, input, d_out, d_filter, scratch, ws);
    }
}

#[cfg(test)]
mod tests {
    //! Each kernel against its naive twin ([`crate::kernels::naive`]) on random geometries,
    //! named hand-computed cases, and a central-difference check of both gradients.
    //!
    //! Tolerance: a fast result `got` and the f64 reference `want` agree when
    //! `|got - want| <= 1e-5 · (1 + mag)`, where `mag` is the same reference computed on the
    //! absolute values of its operands (the sum of the magnitudes of the products, which
    //! bounds how much f32 rounding can accumulate), as the gemm tests do.

    use super::*;
    use crate::kernels::naive;
    use crate::kernels::simd::with_level;
    use proptest::prelude::*;

    /// Values in [-2, 2) from a seed, a few of them exactly zero (as ReLU outputs are).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        crate::kernels::test_words(seed)
            .take(len)
            .map(|w| {
                if w % 7 == 0 {
                    0.0
                } else {
                    (w >> 40) as f32 / (1u64 << 22) as f32 - 2.0
                }
            })
            .collect()
    }

    fn widen(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| f64::from(x)).collect()
    }

    fn abs(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| f64::from(x).abs()).collect()
    }

    #[track_caller]
    fn assert_close(what: &str, got: &[f32], want: &[f64], mag: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, ((&g, &w), &m)) in got.iter().zip(want).zip(mag).enumerate() {
            let tol = 1e-5 * (1.0 + m);
            assert!(
                (f64::from(g) - w).abs() <= tol,
                "{what}[{i}]: {g} vs {w} (tolerance {tol})"
            );
        }
    }

    /// The three passes: the public ones, which pick a method by shape, or im2col's.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Method {
        Picked,
        Im2col,
    }

    /// Runs the three fast kernels by `method` on `rows` random images of geometry `g`,
    /// every output and the scratch filled with NaN beforehand, and compares them with
    /// the naive ones; returns their outputs, one after the other.
    fn check_method(g: &ConvGeometry, rows: usize, seed: u64, method: Method) -> Vec<f32> {
        let input = values(rows * g.input_len(), seed);
        let filter = values(g.filter_len(), seed + 1);
        let bias = values(g.out_channels, seed + 2);
        let d_out = values(rows * g.output_len(), seed + 3);
        let len = match method {
            Method::Picked => g.scratch_len(rows),
            Method::Im2col => im2col::scratch_len(g, rows),
        };
        let mut scratch = vec![f32::NAN; len];
        let mut ws = GemmWorkspace::new();

        let mut out = vec![f32::NAN; rows * g.output_len()];
        let (s, ws_) = (&mut scratch, &mut ws);
        match method {
            Method::Picked => conv2d_forward(g, rows, &input, &filter, &bias, &mut out, s, ws_),
            Method::Im2col => {
                im2col::conv2d_forward(g, rows, &input, &filter, &bias, &mut out, s, ws_)
            }
        }
        let want =
            naive::conv2d_forward_f64(g, rows, &widen(&input), &widen(&filter), &widen(&bias));
        let mag = naive::conv2d_forward_f64(g, rows, &abs(&input), &abs(&filter), &abs(&bias));
        assert_close("out", &out, &want, &mag);

        scratch.fill(f32::NAN);
        let mut d_input = vec![f32::NAN; rows * g.input_len()];
        let (s, ws_) = (&mut scratch, &mut ws);
        match method {
            Method::Picked => conv2d_backward_input(g, rows, &d_out, &filter, &mut d_input, s, ws_),
            Method::Im2col => {
                im2col::conv2d_backward_input(g, rows, &d_out, &filter, &mut d_input, s, ws_)
            }
        }
        let want = naive::conv2d_backward_input_f64(g, rows, &widen(&d_out), &widen(&filter));
        let mag = naive::conv2d_backward_input_f64(g, rows, &abs(&d_out), &abs(&filter));
        assert_close("d_input", &d_input, &want, &mag);

        scratch.fill(f32::NAN);
        let mut d_filter = vec![f32::NAN; g.filter_len()];
        let mut d_bias = vec![f32::NAN; g.out_channels];
        let (s, ws_) = (&mut scratch, &mut ws);
        let (df, db) = (&mut d_filter, &mut d_bias);
        match method {
            Method::Picked => conv2d_backward_filter(g, rows, &input, &d_out, df, db, s, ws_),
            Method::Im2col => {
                im2col::conv2d_backward_filter(g, rows, &input, &d_out, df, db, s, ws_)
            }
        }
        let (want_f, want_b) =
            naive::conv2d_backward_filter_f64(g, rows, &widen(&input), &widen(&d_out));
        let (mag_f, mag_b) = naive::conv2d_backward_filter_f64(g, rows, &abs(&input), &abs(&d_out));
        assert_close("d_filter", &d_filter, &want_f, &mag_f);
        assert_close("d_bias", &d_bias, &want_b, &mag_b);
        [out, d_input, d_filter, d_bias].concat()
    }

    /// [`check_method`] for both methods on every SIMD level this CPU runs; the levels
    /// that fuse multiply-adds sum in the same order with the same roundings, so their
    /// results must be equal bit for bit.
    fn check_against_naive(g: &ConvGeometry, rows: usize, seed: u64) {
        for method in [Method::Picked, Method::Im2col] {
            let mut fused: Option<(Level, Vec<u32>)> = None;
            for level in Level::supported() {
                let got = with_level(level, || check_method(g, rows, seed, method));
                if !level.fuses_mul_add() {
                    continue;
                }
                let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                match &fused {
                    None => fused = Some((level, bits)),
                    Some((first, want)) => {
                        assert!(bits == *want, "{method:?}: {level} differs from {first}")
                    }
                }
            }
        }
    }

    /// 1, 3 and 32 channels, a few small counts, and 16 and 48, which the direct kernels
    /// cover with a vector of 16 channels besides (or instead of) their pairs.
    fn channels() -> impl Strategy<Value = usize> {
        prop_oneof![
            Just(1usize),
            Just(3),
            Just(32),
            1usize..=5,
            Just(16),
            Just(48)
        ]
    }

    fn geometry() -> impl Strategy<Value = ConvGeometry> {
        (
            (1usize..=9, 1usize..=9, channels(), channels()),
            (1usize..=5, 1usize..=5, 1usize..=2, any::<bool>()),
        )
            .prop_map(
                |((height, width, in_channels, out_channels), (kh, kw, stride, same))| {
                    ConvGeometry {
                        height,
                        width,
                        in_channels,
                        out_channels,
                        kernel_h: kh,
                        kernel_w: kw,
                        stride,
                        padding: if same { Padding::Same } else { Padding::Valid },
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn kernels_match_naive(g in geometry(), rows in prop_oneof![Just(0usize), Just(1), 2usize..=4], seed in any::<u64>()) {
            check_against_naive(&g, rows, seed);
        }
    }

    fn geometry_of(
        (height, width, in_channels, out_channels): (usize, usize, usize, usize),
        (kernel_h, kernel_w, stride): (usize, usize, usize),
        padding: Padding,
    ) -> ConvGeometry {
        ConvGeometry {
            height,
            width,
            in_channels,
            out_channels,
            kernel_h,
            kernel_w,
            stride,
            padding,
        }
    }

    #[test]
    fn geometry_follows_tensorflow_rules() {
        // SAME: out = ceil(in / stride); the odd pad goes after (bottom/right).
        let g = geometry_of((28, 28, 1, 32), (5, 5, 1), Padding::Same);
        assert_eq!(
            (g.out_height(), g.out_width(), g.pad_top(), g.pad_left()),
            (28, 28, 2, 2)
        );
        let g = geometry_of((4, 5, 1, 1), (2, 2, 1), Padding::Same);
        assert_eq!(
            (g.out_height(), g.out_width(), g.pad_top(), g.pad_left()),
            (4, 5, 0, 0)
        );
        let g = geometry_of((5, 5, 1, 1), (3, 4, 2), Padding::Same);
        // out 3; pad_total rows (3-1)*2+3-5 = 2 -> 1 above; columns (3-1)*2+4-5 = 3 -> 1 left.
        assert_eq!(
            (g.out_height(), g.out_width(), g.pad_top(), g.pad_left()),
            (3, 3, 1, 1)
        );
        let g = geometry_of((6, 6, 1, 1), (1, 1, 3), Padding::Same);
        // Stride beyond the kernel: (2-1)*3+1-6 < 0, no padding.
        assert_eq!((g.out_height(), g.pad_top()), (2, 0));
        // VALID: floor((in - k) / stride) + 1, none when the kernel is larger than the input.
        let g = geometry_of((7, 6, 1, 1), (3, 2, 2), Padding::Valid);
        assert_eq!(
            (g.out_height(), g.out_width(), g.pad_top(), g.pad_left()),
            (3, 3, 0, 0)
        );
        let g = geometry_of((2, 6, 1, 1), (3, 2, 1), Padding::Valid);
        assert_eq!((g.out_height(), g.output_len()), (0, 0));
        assert_eq!(g.filter_len(), 6);
    }

    /// A 3x3 image and a 2x2 filter, VALID: each output is its window's dot product.
    #[test]
    fn valid_3x3_input_2x2_filter() {
        let g = geometry_of((3, 3, 1, 1), (2, 2, 1), Padding::Valid);
        let input = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let filter = [1.0, 10.0, 100.0, 1000.0];
        let mut out = [0.0; 4];
        let mut scratch = vec![0.0; g.scratch_len(1)];
        let mut ws = GemmWorkspace::new();
        conv2d_forward(
            &g,
            1,
            &input,
            &filter,
            &[0.5],
            &mut out,
            &mut scratch,
            &mut ws,
        );
        // 1 + 20 + 400 + 5000, 2 + 30 + 500 + 6000, 4 + 50 + 700 + 8000, 5 + 60 + 800 + 9000.
        assert_eq!(out, [5421.5, 6532.5, 8754.5, 9865.5]);
        let mut naive_out = [0.0; 4];
        naive::conv2d_forward(&g, 1, &input, &filter, &[0.5], &mut naive_out);
        assert_eq!(naive_out, out);
    }

    /// SAME with an even kernel pads only after the input: a 2x2 filter over a 3x3 image
    /// reads the pixel, its right, lower and lower-right neighbours (zero past the edge).
    #[test]
    fn same_even_kernel_pads_bottom_right() {
        let g = geometry_of((3, 3, 1, 1), (2, 2, 1), Padding::Same);
        assert_eq!((g.pad_top(), g.pad_left()), (0, 0));
        let input = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let filter = [1.0, 10.0, 100.0, 1000.0];
        let mut out = [0.0; 9];
        let mut scratch = vec![0.0; g.scratch_len(1)];
        let mut ws = GemmWorkspace::new();
        conv2d_forward(
            &g,
            1,
            &input,
            &filter,
            &[0.0],
            &mut out,
            &mut scratch,
            &mut ws,
        );
        let want = [
            5421.0, 6532.0, 603.0, //
            8754.0, 9865.0, 906.0, //
            87.0, 98.0, 9.0,
        ];
        assert_eq!(out, want);
        // The input gradient of a single 1 at output (2, 2) is the filter's tap (0, 0) there.
        let mut d_out = [0.0; 9];
        d_out[8] = 1.0;
        let mut d_input = [f32::NAN; 9];
        conv2d_backward_input(&g, 1, &d_out, &filter, &mut d_input, &mut scratch, &mut ws);
        assert_eq!(d_input, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        // The filter gradient against an all-ones d_out: each tap sums the pixels it reads.
        let mut d_filter = [0.0; 4];
        let mut d_bias = [0.0];
        conv2d_backward_filter(
            &g,
            1,
            &input,
            &[1.0; 9],
            &mut d_filter,
            &mut d_bias,
            &mut scratch,
            &mut ws,
        );
        assert_eq!(d_filter, [45.0, 33.0, 39.0, 28.0]);
        assert_eq!(d_bias, [9.0]);
    }

    /// Stride 2, SAME, two channels in and out: odd padding goes below and right.
    #[test]
    fn same_stride_two_with_channels() {
        let g = geometry_of((4, 4, 2, 2), (3, 3, 2), Padding::Same);
        // out 2; pad_total (2-1)*2+3-4 = 1 -> 0 above, 1 below.
        assert_eq!((g.out_height(), g.pad_top()), (2, 0));
        check_against_naive(&g, 3, 7);
    }

    /// The tutorial's two layers on a few images: conv1's patches span several chunks,
    /// conv2's chunks cross image boundaries.
    #[test]
    fn tutorial_shapes_match_naive() {
        check_against_naive(
            &geometry_of((28, 28, 1, 32), (5, 5, 1), Padding::Same),
            4,
            1,
        );
        check_against_naive(
            &geometry_of((14, 14, 32, 64), (5, 5, 1), Padding::Same),
            2,
            2,
        );
    }

    /// Channel counts that take every block of the direct kernels on every level (64 by
    /// 6 rows, 32, 16) in and out, on positions and filter rows that leave the last tile
    /// part empty.
    #[test]
    fn every_channel_block_matches_naive() {
        check_against_naive(&geometry_of((5, 3, 64, 80), (3, 2, 1), Padding::Same), 2, 3);
        check_against_naive(
            &geometry_of((4, 5, 80, 112), (2, 3, 1), Padding::Valid),
            1,
            4,
        );
        check_against_naive(&geometry_of((6, 5, 48, 96), (3, 3, 2), Padding::Same), 2, 5);
    }

    /// The direct forward sums its taps in gemm's blocks, so it gives the im2col path's
    /// bits: for one block (conv1's 25 taps), for several (a 5x5x32 filter has 800, the
    /// tutorial's conv2), and for a block boundary inside a filter row, on every level.
    #[test]
    fn direct_forward_gives_the_im2col_paths_bits() {
        for (shape, kernel, rows) in [
            ((28, 28, 1, 32), (5, 5, 1), 2),
            ((14, 14, 32, 64), (5, 5, 1), 2),
            ((7, 6, 48, 16), (3, 4, 1), 3),
        ] {
            let g = geometry_of(shape, kernel, Padding::Same);
            assert!(g.direct());
            let input: Vec<f32> = (0..rows * g.input_len())
                .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0).max(0.0))
                .collect();
            let filter: Vec<f32> = (0..g.filter_len())
                .map(|i| (i * 104_729 % 997) as f32 / 997.0 - 0.5)
                .collect();
            let bias: Vec<f32> = (0..g.out_channels)
                .map(|c| c as f32 / 64.0 - 0.25)
                .collect();
            for level in Level::supported().filter(|l| l.fuses_mul_add()) {
                let run = |direct: bool| {
                    let mut out = vec![f32::NAN; rows * g.output_len()];
                    let mut ws = GemmWorkspace::new();
                    with_level(level, || {
                        if direct {
                            let mut scratch = vec![f32::NAN; g.scratch_len(rows)];
                            conv2d_forward(
                                &g,
                                rows,
                                &input,
                                &filter,
                                &bias,
                                &mut out,
                                &mut scratch,
                                &mut ws,
                            );
                        } else {
                            let mut scratch = vec![f32::NAN; im2col::scratch_len(&g, rows)];
                            im2col::conv2d_forward(
                                &g,
                                rows,
                                &input,
                                &filter,
                                &bias,
                                &mut out,
                                &mut scratch,
                                &mut ws,
                            );
                        }
                    });
                    out.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
                };
                assert!(run(true) == run(false), "{shape:?} {kernel:?} on {level}");
            }
        }
    }

    /// `Σ out · r` for the naive forward in f64.
    fn loss(g: &ConvGeometry, x: &[f64], w: &[f64], b: &[f64], r: &[f64]) -> f64 {
        let rows = x.len() / g.input_len();
        naive::conv2d_forward_f64(g, rows, x, w, b)
            .iter()
            .zip(r)
            .map(|(o, r)| o * r)
            .sum()
    }

    /// Central differences of `loss` in f64 for each value of `v`.
    fn central_differences(mut v: Vec<f64>, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        const H: f64 = 1e-3;
        (0..v.len())
            .map(|i| {
                let x = v[i];
                v[i] = x + H;
                let up = f(&v);
                v[i] = x - H;
                let down = f(&v);
                v[i] = x;
                (up - down) / (2.0 * H)
            })
            .collect()
    }

    /// The fast backward kernels against central differences of `Σ out · R` through the
    /// naive forward in f64. The loss is linear in each operand, so the differences are
    /// exact up to f64 rounding (about 1e-12 here); what is left is the f32 rounding of the
    /// fast kernels, within `1e-5 · (1 + Σ|products|)` as above.
    #[test]
    fn gradients_match_central_differences() {
        let cases = [
            geometry_of((5, 4, 3, 2), (3, 3, 1), Padding::Same),
            geometry_of((5, 4, 3, 2), (3, 3, 1), Padding::Valid),
            geometry_of((6, 5, 2, 3), (2, 4, 2), Padding::Same),
            geometry_of((7, 7, 1, 4), (5, 5, 2), Padding::Valid),
            geometry_of((3, 3, 2, 2), (4, 4, 1), Padding::Same),
            // Vectors of 16 channels in and out: the direct kernels.
            geometry_of((4, 5, 16, 16), (3, 2, 1), Padding::Same),
            geometry_of((5, 4, 3, 32), (4, 3, 2), Padding::Valid),
        ];
        for (level, (case, g)) in
            Level::supported().flat_map(|l| cases.iter().enumerate().map(move |c| (l, c)))
        {
            with_level(level, || {
                let rows = 2;
                let seed = 100 * case as u64;
                let input = values(rows * g.input_len(), seed);
                let filter = values(g.filter_len(), seed + 1);
                let bias = values(g.out_channels, seed + 2);
                let r = values(rows * g.output_len(), seed + 3);
                let (x, w, b, r64) = (widen(&input), widen(&filter), widen(&bias), widen(&r));
                let mut scratch = vec![0.0; g.scratch_len(rows)];
                let mut ws = GemmWorkspace::new();

                let mut d_input = vec![0.0; input.len()];
                conv2d_backward_input(g, rows, &r, &filter, &mut d_input, &mut scratch, &mut ws);
                let fd = central_differences(x.clone(), |x| loss(g, x, &w, &b, &r64));
                let mag = naive::conv2d_backward_input_f64(g, rows, &abs(&r), &abs(&filter));
                assert_close(
                    &format!("{level} case {case}: d_input"),
                    &d_input,
                    &fd,
                    &mag,
                );

                let (mut d_filter, mut d_bias) = (vec![0.0; filter.len()], vec![0.0; bias.len()]);
                conv2d_backward_filter(
                    g,
                    rows,
                    &input,
                    &r,
                    &mut d_filter,
                    &mut d_bias,
                    &mut scratch,
                    &mut ws,
                );
                let fd = central_differences(w.clone(), |w| loss(g, &x, w, &b, &r64));
                let (mag_f, mag_b) =
                    naive::conv2d_backward_filter_f64(g, rows, &abs(&input), &abs(&r));
                assert_close(
                    &format!("{level} case {case}: d_filter"),
                    &d_filter,
                    &fd,
                    &mag_f,
                );
                let fd = central_differences(b.clone(), |b| loss(g, &x, &w, b, &r64));
                assert_close(
                    &format!("{level} case {case}: d_bias"),
                    &d_bias,
                    &fd,
                    &mag_b,
                );
            });
        }
    }

    #[test]
    #[should_panic(expected = "filter holds 3 values, not 4")]
    fn a_short_filter_is_refused() {
        let g = geometry_of((3, 3, 1, 1), (2, 2, 1), Padding::Valid);
        let mut out = [0.0; 4];
        let mut ws = GemmWorkspace::new();
        conv2d_forward(
            &g,
            1,
            &[0.0; 9],
            &[0.0; 3],
            &[0.0],
            &mut out,
            &mut [0.0; 400],
            &mut ws,
        );
    }

    #[test]
    #[should_panic(expected = "scratch holds 0 values")]
    fn short_scratch_is_refused() {
        let g = geometry_of((3, 3, 1, 1), (2, 2, 1), Padding::Valid);
        let mut d_input = [0.0; 9];
        let mut ws = GemmWorkspace::new();
        conv2d_backward_input(&g, 1, &[0.0; 4], &[0.0; 4], &mut d_input, &mut [], &mut ws);
    }

    #[test]
    fn divider_equals_the_division_below_its_limit() {
        for divisor in (1..=300).chain([783, 784, 1 << 16, (1 << 16) + 1]) {
            let limit = ((1u64 << 32) / divisor as u64) as usize;
            let d = Divider::new(divisor, limit);
            assert_ne!(d.magic, 0, "divisor {divisor}");
            let near_limit = limit.saturating_sub(5000)..limit;
            for p in (0..5000.min(limit)).chain(near_limit) {
                assert_eq!(d.quotient(p), p / divisor, "{p} / {divisor}");
            }
            // Past the limit the multiplication would not be exact: it divides instead.
            let d = Divider::new(divisor, limit + 1 + divisor);
            let p = limit + divisor;
            assert_eq!(d.quotient(p), p / divisor, "{p} / {divisor}");
        }
    }

    /// The direct filter gradient is one running sum per weight over the batch's positions
    /// in order, and the bias gradient one per channel, whatever the tiles (full ones, a
    /// shorter last one): on the fusing levels, the bits of a scalar loop in that order.
    /// Filter rows 9, 27, 50 and 25 leave 1 to 7 rows past the last whole tile.
    #[test]
    fn direct_filter_gradient_is_one_running_sum_per_weight() {
        let shapes = [
            ((5, 6, 1, 32), (3, 3, 1), Padding::Same),
            ((7, 5, 3, 64), (3, 3, 1), Padding::Valid),
            ((6, 6, 2, 16), (5, 5, 2), Padding::Same),
            ((9, 9, 1, 48), (5, 5, 1), Padding::Same),
        ];
        for (sizes, kernel, padding) in shapes {
            let g = geometry_of(sizes, kernel, padding);
            let rows = 2;
            let input = values(rows * g.input_len(), 11);
            let d_out = values(rows * g.output_len(), 12);
            let (k, cout) = (g.patch_len(), g.out_channels);
            let mut patches = vec![0.0; rows * g.positions() * k];
            im2col(&g, &input, 0, &mut patches);
            let mut want_f = vec![0.0f32; k * cout];
            let mut want_b = vec![0.0f32; cout];
            for (patch, grads) in patches.chunks_exact(k).zip(d_out.chunks_exact(cout)) {
                for (row, &x) in want_f.chunks_exact_mut(cout).zip(patch) {
                    for (w, &dy) in row.iter_mut().zip(grads) {
                        *w = x.mul_add(dy, *w);
                    }
                }
                for (b, &dy) in want_b.iter_mut().zip(grads) {
                    *b += dy;
                }
            }
            for level in Level::supported() {
                let (mut d_filter, mut d_bias) = (vec![f32::NAN; k * cout], vec![f32::NAN; cout]);
                let mut scratch = vec![f32::NAN; g.scratch_len(rows)];
                let mut ws = GemmWorkspace::new();
                with_level(level, || {
                    let (df, db, sc) = (&mut d_filter, &mut d_bias, &mut scratch);
                    conv2d_backward_filter(&g, rows, &input, &d_out, df, db, sc, &mut ws)
                });
                assert_eq!(d_bias, want_b, "{level}: bias gradient of {g:?}");
                if level.fuses_mul_add() {
                    assert_eq!(d_filter, want_f, "{level}: filter gradient of {g:?}");
                }
            }
        }
    }
}
