//! The 2-D convolution layer over NHWC activations with HWIO filters (TensorFlow's layouts),
//! `out[rows, oh, ow, co] = Σ x[rows, ·, ·, ci]·filter[kh, kw, ci, co] + bias[co]`, on
//! [`crate::kernels::conv`].

use crate::kernels::conv::{self, ConvGeometry};
use crate::kernels::GemmWorkspace;

/// One convolution layer's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    /// Input and output sizes, kernel, stride and padding.
    pub geometry: ConvGeometry,
}

impl Conv2d {
    /// Scratch floats a pass over `rows` examples needs (shared by the layers, not kept
    /// between forward and backward).
    pub fn scratch_len(&self, rows: usize) -> usize {
        self.geometry.scratch_len(rows)
    }

    /// Forward: `out[rows, oh, ow, co]` from `x[rows, h, w, ci]`, `filter[kh, kw, ci, co]`,
    /// `bias[co]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        rows: usize,
        x: &[f32],
        filter: &[f32],
        bias: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
        ws: &mut GemmWorkspace,
    ) {
        let g = &self.geometry;
        let scratch = &mut scratch[..g.scratch_len(rows)];
        conv::conv2d_forward(g, rows, x, filter, bias, out, scratch, ws);
    }

    /// Backward: `d_filter[kh, kw, ci, co]` and `d_bias[co]` (overwritten) from the input
    /// `x[rows, h, w, ci]` and `d_out[rows, oh, ow, co]`; with `d_in`, the gradient with
    /// respect to `x` (`[rows, h, w, ci]`, overwritten).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        rows: usize,
        x: &[f32],
        filter: &[f32],
        d_out: &[f32],
        d_filter: &mut [f32],
        d_bias: &mut [f32],
        d_in: Option<&mut [f32]>,
        scratch: &mut [f32],
        ws: &mut GemmWorkspace,
    ) {
        let g = &self.geometry;
        let scratch = &mut scratch[..g.scratch_len(rows)];
        conv::conv2d_backward_filter(g, rows, x, d_out, d_filter, d_bias, scratch, ws);
        if let Some(d_in) = d_in {
            conv::conv2d_backward_input(g, rows, d_out, filter, d_in, scratch, ws);
        }
    }
}
