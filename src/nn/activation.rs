//! ReLU, `max(x, 0)`, computed in place on the previous layer's output: its backward needs
//! only the signs of its output, which the buffer keeps.

use crate::kernels;

/// Forward: `x[rows, units] = max(x, 0)`, in place.
pub fn relu_forward(x: &mut [f32]) {
    kernels::relu_in_place(x);
}

/// Backward: `d[rows, units]` zeroed where the output `y[rows, units]` was not positive.
///
/// `y` may have been changed since by later in-place layers as long as they keep each
/// value's sign or zero it along with its gradient (dropout, flatten): the mask is the same.
pub fn relu_backward(d: &mut [f32], y: &[f32]) {
    kernels::relu_backward_in_place(d, y);
}
