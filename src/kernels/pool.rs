//! 2-D max-pooling over NHWC activations, VALID windows, and its gradient.
//!
//! The gradient of a window's maximum goes to one input: the FIRST maximum of the window
//! in row-major order (`(y, x)`, for each channel on its own), TensorFlow's and JAX's rule.
//! The forward pass records that input's index, so backward is a scatter.
//!
//! NaN: a NaN counts as larger than every number, so a window holding one outputs NaN (the
//! first NaN's bits) and sends its gradient there, as `jax.lax.reduce_window` with `max`
//! propagates NaN. Ties, including `-0.0` against `0.0`, go to the first.

use super::simd::{dispatch, Simd, SimdKernel};

/// The shape of a max-pool of one image: its input and the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolGeometry {
    /// Input rows of pixels.
    pub height: usize,
    /// Input columns of pixels.
    pub width: usize,
    /// Channels of each pixel (pooled each on its own).
    pub channels: usize,
    /// Window side (at least 1).
    pub size: usize,
    /// Step between windows (at least 1).
    pub stride: usize,
}

impl PoolGeometry {
    /// Output rows: `(height - size) / stride + 1` rounded down, 0 when `height < size`.
    pub fn out_height(&self) -> usize {
        valid_out(self.height, self.size, self.stride)
    }

    /// Output columns: `(width - size) / stride + 1` rounded down, 0 when `width < size`.
    pub fn out_width(&self) -> usize {
        valid_out(self.width, self.size, self.stride)
    }

    /// Values of one input image, `height·width·channels`.
    pub fn input_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Values of one output image, `out_height·out_width·channels`.
    pub fn output_len(&self) -> usize {
        self.out_height() * self.out_width() * self.channels
    }

    /// Panics unless window and stride are at least 1.
    fn assert_valid(&self) {
        assert!(self.size >= 1, "max-pool window of size 0");
        assert!(self.stride >= 1, "max-pool stride is 0");
    }
}

fn valid_out(input: usize, size: usize, stride: usize) -> usize {
    if input < size {
        0
    } else {
        (input - size) / stride + 1
    }
}

/// Whether `v` replaces `best` as a window's maximum: strictly larger, or the first NaN.
#[inline(always)]
fn wins(v: f32, best: f32) -> bool {
    v > best || (v.is_nan() && !best.is_nan())
}

/// `out[rows, oh, ow, c]` = the maximum of each window of `input[rows, h, w, c]`; where
/// `argmax` is given (`[rows, oh, ow, c]`), each output's first maximum as an index into
/// its image's input, `(y·width + x)·channels + c`.
pub fn max_pool_forward(
    g: &PoolGeometry,
    rows: usize,
    input: &[f32],
    out: &mut [f32],
    argmax: Option<&mut [u32]>,
) {
    g.assert_valid();
    assert!(
        input.len() == rows * g.input_len(),
        "input holds {} values, not {}",
        input.len(),
        rows * g.input_len()
    );
    assert!(
        out.len() == rows * g.output_len(),
        "out holds {} values, not {}",
        out.len(),
        rows * g.output_len()
    );
    assert!(
        u32::try_from(g.input_len()).is_ok(),
        "an image of {} values is too large for u32 indices",
        g.input_len()
    );
    if let Some(argmax) = &argmax {
        assert!(
            argmax.len() == out.len(),
            "argmax holds {} values, not {}",
            argmax.len(),
            out.len()
        );
    }
    if g.output_len() == 0 {
        return;
    }
    dispatch(PoolForward {
        g: *g,
        input,
        out,
        argmax,
    });
}

/// The loops of [`max_pool_forward`] as a kernel, so each SIMD level compiles them with its
/// own instructions: plain Rust that the compiler vectorizes over the channels (outside the
/// dispatch a generic build would get SSE2 only).
struct PoolForward<'a> {
    g: PoolGeometry,
    input: &'a [f32],
    out: &'a mut [f32],
    argmax: Option<&'a mut [u32]>,
}

impl SimdKernel for PoolForward<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, _s: S) {
        let PoolForward {
            g,
            input,
            out,
            argmax,
        } = self;
        let (c, ow) = (g.channels, g.out_width());
        let window_at = |oy: usize, ox: usize| (oy * g.stride * g.width + ox * g.stride) * c;
        let images = input
            .chunks_exact(g.input_len())
            .zip(out.chunks_exact_mut(g.output_len()));
        match argmax {
            None => {
                for (image, out) in images {
                    for (o, best) in out.chunks_exact_mut(c).enumerate() {
                        let at = window_at(o / ow, o % ow);
                        best.copy_from_slice(&image[at..at + c]);
                        for (wy, wx) in window(g.size).skip(1) {
                            let pixel = &image[at + (wy * g.width + wx) * c..][..c];
                            for (b, &v) in best.iter_mut().zip(pixel) {
                                *b = if wins(v, *b) { v } else { *b };
                            }
                        }
                    }
                }
            }
            Some(argmax) => {
                let indices = argmax.chunks_exact_mut(g.output_len());
                for ((image, out), argmax) in images.zip(indices) {
                    let outs = out.chunks_exact_mut(c).zip(argmax.chunks_exact_mut(c));
                    for (o, (best, index)) in outs.enumerate() {
                        let at = window_at(o / ow, o % ow);
                        best.copy_from_slice(&image[at..at + c]);
                        for (i, slot) in index.iter_mut().enumerate() {
                            *slot = (at + i) as u32;
                        }
                        for (wy, wx) in window(g.size).skip(1) {
                            let from = at + (wy * g.width + wx) * c;
                            let pixel = &image[from..][..c];
                            for (i, ((b, slot), &v)) in
                                best.iter_mut().zip(index.iter_mut()).zip(pixel).enumerate()
                            {
                                let w = wins(v, *b);
                                *b = if w { v } else { *b };
                                *slot = if w { (from + i) as u32 } else { *slot };
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The offsets `(y, x)` of a `size x size` window, row-major.
#[inline(always)]
fn window(size: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..size).flat_map(move |y| (0..size).map(move |x| (y, x)))
}

/// `d_input[rows, h, w, c]`, the gradient with respect to the input of
/// [`max_pool_forward`] given `d_out[rows, oh, ow, c]` and the `argmax` it recorded:
/// zeros, then each output's gradient added at its first maximum (overlapping windows may
/// add several to one input); overwrites `d_input`.
pub fn max_pool_backward(
    g: &PoolGeometry,
    rows: usize,
    d_out: &[f32],
    argmax: &[u32],
    d_input: &mut [f32],
) {
    g.assert_valid();
    assert!(
        d_out.len() == rows * g.output_len(),
        "d_out holds {} values, not {}",
        d_out.len(),
        rows * g.output_len()
    );
    assert!(
        argmax.len() == d_out.len(),
        "argmax holds {} values, not {}",
        argmax.len(),
        d_out.len()
    );
    assert!(
        d_input.len() == rows * g.input_len(),
        "d_input holds {} values, not {}",
        d_input.len(),
        rows * g.input_len()
    );
    if g.output_len() == 0 {
        d_input.fill(0.0);
        return;
    }
    dispatch(PoolBackward {
        g: *g,
        d_out,
        argmax,
        d_input,
    });
}

/// The loops of [`max_pool_backward`] as a kernel, for the reason [`PoolForward`] is one.
struct PoolBackward<'a> {
    g: PoolGeometry,
    d_out: &'a [f32],
    argmax: &'a [u32],
    d_input: &'a mut [f32],
}

impl SimdKernel for PoolBackward<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, _s: S) {
        let PoolBackward {
            g,
            d_out,
            argmax,
            d_input,
        } = self;
        if g.stride >= g.size {
            // Windows do not overlap: each is written once, its gradient at its argmax and
            // zeros around it, instead of zeroing everything and adding into it after. Only
            // inputs that no window covers still need zeros first.
            let tiled = g.stride == g.size
                && g.out_height() * g.size == g.height
                && g.out_width() * g.size == g.width;
            if !tiled {
                d_input.fill(0.0);
            }
            let images = d_input
                .chunks_exact_mut(g.input_len())
                .zip(d_out.chunks_exact(g.output_len()))
                .zip(argmax.chunks_exact(g.output_len()));
            let (c, ow) = (g.channels, g.out_width());
            for ((d_input, d_out), argmax) in images {
                let outs = d_out.chunks_exact(c).zip(argmax.chunks_exact(c));
                for (o, (d, index)) in outs.enumerate() {
                    let at = ((o / ow) * g.stride * g.width + (o % ow) * g.stride) * c;
                    for (wy, wx) in window(g.size) {
                        let from = at + (wy * g.width + wx) * c;
                        let dst = &mut d_input[from..][..c];
                        for (i, ((dst, &d), &index)) in dst.iter_mut().zip(d).zip(index).enumerate()
                        {
                            // `0.0 + d`, as zeroing then adding gives (-0.0 becomes +0.0).
                            *dst = if index as usize == from + i {
                                0.0 + d
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
            return;
        }
        d_input.fill(0.0);
        let images = d_input
            .chunks_exact_mut(g.input_len())
            .zip(d_out.chunks_exact(g.output_len()))
            .zip(argmax.chunks_exact(g.output_len()));
        for ((d_input, d_out), argmax) in images {
            for (&d, &i) in d_out.iter().zip(argmax) {
                d_input[i as usize] += d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Max-pool against its naive twin, bit for bit (a maximum is one of its inputs, and
    //! the gradient adds the same values in the same order), with many ties, signed zeros
    //! and NaNs; and named cases for the first-maximum rule.

    use super::*;
    use crate::kernels::naive;
    use proptest::prelude::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Runs the fast and naive kernels on `input` and asserts equal bits everywhere.
    fn check(g: &PoolGeometry, rows: usize, input: &[f32], d_out: &[f32]) {
        let n = rows * g.output_len();
        let (mut out, mut index) = (vec![f32::NAN; n], vec![u32::MAX; n]);
        max_pool_forward(g, rows, input, &mut out, Some(&mut index));
        let (mut want, mut want_index) = (vec![0.0; n], vec![0; n]);
        naive::max_pool_forward(g, rows, input, &mut want, Some(&mut want_index));
        assert_eq!(bits(&out), bits(&want), "out");
        assert_eq!(index, want_index, "argmax");
        let mut plain = vec![f32::NAN; n];
        max_pool_forward(g, rows, input, &mut plain, None);
        assert_eq!(bits(&plain), bits(&want), "out without argmax");

        let mut d_input = vec![f32::NAN; rows * g.input_len()];
        max_pool_backward(g, rows, &d_out[..n], &index, &mut d_input);
        let mut want_d = vec![0.0; rows * g.input_len()];
        naive::max_pool_backward(g, rows, &d_out[..n], &want_index, &mut want_d);
        assert_eq!(bits(&d_input), bits(&want_d), "d_input");
    }

    /// Few distinct values, so windows tie often; ±0 and, now and then, NaN.
    fn value() -> impl Strategy<Value = f32> {
        prop_oneof![
            8 => (-3i32..3).prop_map(|v| v as f32),
            2 => prop_oneof![Just(0.0f32), Just(-0.0f32)],
            2 => -1.0f32..1.0,
            1 => Just(f32::NAN),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn max_pool_matches_naive_bit_for_bit(
            (height, width) in (1usize..=9, 1usize..=9),
            channels in prop_oneof![Just(1usize), Just(3), Just(32), 1usize..=5],
            size in 1usize..=4,
            stride in 1usize..=3,
            rows in prop_oneof![Just(0usize), Just(1), 2usize..=3],
            input in prop::collection::vec(value(), 3 * 9 * 9 * 32),
            d_out in prop::collection::vec(-2.0f32..2.0, 3 * 9 * 9 * 32),
        ) {
            let g = PoolGeometry { height, width, channels, size, stride };
            check(&g, rows, &input[..rows * g.input_len()], &d_out);
        }
    }

    #[test]
    fn ties_go_to_the_first_maximum_in_row_major_order() {
        // One 4x4 image, one channel, 2x2 windows: each window's maximum appears twice.
        let g = PoolGeometry {
            height: 4,
            width: 4,
            channels: 1,
            size: 2,
            stride: 2,
        };
        #[rustfmt::skip]
        let input = [
            1.0, 5.0, 7.0, 2.0,
            5.0, 0.0, 1.0, 7.0,
            3.0, 3.0, -0.0, 0.0,
            3.0, 1.0, -1.0, -2.0,
        ];
        let (mut out, mut index) = ([0.0; 4], [0; 4]);
        max_pool_forward(&g, 1, &input, &mut out, Some(&mut index));
        assert_eq!(out, [5.0, 7.0, 3.0, 0.0]);
        assert_eq!(index, [1, 2, 8, 10]);
        // -0.0 and 0.0 tie: the first, -0.0, is the output, bits and all.
        assert!(out[3].is_sign_negative());
        let mut d_input = [9.0; 16];
        max_pool_backward(&g, 1, &[1.0, 2.0, 3.0, 4.0], &index, &mut d_input);
        #[rustfmt::skip]
        let want = [
            0.0, 1.0, 2.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
            3.0, 0.0, 4.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(d_input, want);
    }

    #[test]
    fn nan_wins_its_window_and_the_first_nan_takes_the_gradient() {
        let g = PoolGeometry {
            height: 2,
            width: 2,
            channels: 2,
            size: 2,
            stride: 2,
        };
        // Channel 0: 1, NaN, 5, NaN; channel 1: 2, 3, 4, 1.
        let input = [1.0, 2.0, f32::NAN, 3.0, 5.0, 4.0, f32::NAN, 1.0];
        let (mut out, mut index) = ([0.0; 2], [0; 2]);
        max_pool_forward(&g, 1, &input, &mut out, Some(&mut index));
        assert!(out[0].is_nan());
        assert_eq!(out[1], 4.0);
        assert_eq!(index, [2, 5]);
    }

    /// Non-overlapping windows are written whole, not zeroed and added into: the result
    /// must still be what zeroing and adding gives, `-0.0` arriving as `+0.0`, and inputs
    /// outside every window zero.
    #[test]
    fn disjoint_windows_match_zeroing_then_adding() {
        // 5x5 with 2x2 windows at stride 2: the last row and column are in no window.
        let g = PoolGeometry {
            height: 5,
            width: 5,
            channels: 1,
            size: 2,
            stride: 2,
        };
        let input: Vec<f32> = (0..25).map(|i| (i % 7) as f32).collect();
        let (mut out, mut index) = ([0.0; 4], [0; 4]);
        max_pool_forward(&g, 1, &input, &mut out, Some(&mut index));
        let d_out = [-0.0, 1.5, -2.0, 3.0];
        let mut d_input = [f32::NAN; 25];
        max_pool_backward(&g, 1, &d_out, &index, &mut d_input);
        let mut want = [0.0f32; 25];
        naive::max_pool_backward(&g, 1, &d_out, &index, &mut want);
        assert_eq!(bits(&d_input), bits(&want));
        assert!(d_input.iter().all(|v| v.is_sign_positive() || *v < 0.0));
        assert_eq!(d_input.iter().filter(|v| **v != 0.0).count(), 3);
    }

    #[test]
    fn overlapping_windows_add_their_gradients() {
        // A 3x3 image with a peak in the middle, 2x2 windows at stride 1: all four
        // windows pick the centre, which receives the sum of their gradients.
        let g = PoolGeometry {
            height: 3,
            width: 3,
            channels: 1,
            size: 2,
            stride: 1,
        };
        let input = [0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0];
        let (mut out, mut index) = ([0.0; 4], [0; 4]);
        max_pool_forward(&g, 1, &input, &mut out, Some(&mut index));
        assert_eq!(index, [4; 4]);
        let mut d_input = [0.0; 9];
        max_pool_backward(&g, 1, &[1.0, 2.0, 3.0, 4.0], &index, &mut d_input);
        assert_eq!(d_input, [0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn geometry_is_valid_windows_rounded_down() {
        let g = PoolGeometry {
            height: 7,
            width: 6,
            channels: 64,
            size: 2,
            stride: 2,
        };
        assert_eq!(
            (g.out_height(), g.out_width(), g.output_len()),
            (3, 3, 3 * 3 * 64)
        );
        let g = PoolGeometry {
            height: 1,
            width: 6,
            channels: 1,
            size: 2,
            stride: 2,
        };
        assert_eq!((g.out_height(), g.output_len()), (0, 0));
    }

    #[test]
    #[should_panic(expected = "argmax holds 3 values, not 4")]
    fn a_short_argmax_is_refused() {
        let g = PoolGeometry {
            height: 4,
            width: 4,
            channels: 1,
            size: 2,
            stride: 2,
        };
        max_pool_forward(&g, 1, &[0.0; 16], &mut [0.0; 4], Some(&mut [0; 3]));
    }
}
