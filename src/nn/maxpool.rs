//! Max-pooling over `size x size` windows every `stride` pixels, VALID (windows inside the
//! image), NHWC, on [`crate::kernels::pool`]. The gradient goes to the first maximum of each
//! window in row-major order (TensorFlow's and JAX's rule); forward records where it is.

use crate::kernels::pool::{self, PoolGeometry};

/// One pooling layer's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Input size, window and stride.
    pub geometry: PoolGeometry,
}

impl MaxPool2d {
    /// Forward: `out[rows, oh, ow, c]` from `x[rows, h, w, c]`; with `argmax`
    /// (`[rows, oh, ow, c]`), where in its image each maximum was, for backward.
    pub fn forward(&self, rows: usize, x: &[f32], out: &mut [f32], argmax: Option<&mut [u32]>) {
        pool::max_pool_forward(&self.geometry, rows, x, out, argmax);
    }

    /// Backward: `d_in[rows, h, w, c]` (overwritten) gets each `d_out[rows, oh, ow, c]` at
    /// its window's maximum.
    pub fn backward(&self, rows: usize, d_out: &[f32], argmax: &[u32], d_in: &mut [f32]) {
        pool::max_pool_backward(&self.geometry, rows, d_out, argmax, d_in);
    }
}
