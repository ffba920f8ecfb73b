//! How an ONNX value lines up with softnet's activation buffer.
//!
//! softnet keeps one example's activations as a row-major `(h, w, c)` array. An ONNX graph
//! may reshape, transpose and flatten them (NCHW for `Conv`, back again, or not, before
//! `Gemm`), which reorders the values without changing them. A [`View`] records that
//! reordering: the buffer seen as the row-major array `pre`, its axes permuted by `perm`
//! (ONNX axis `i` runs along `pre` axis `perm[i]`), read row-major into the ONNX shape
//! `dims`. The importer asks it two things: does a `Conv` see the buffer as the NCHW image
//! softnet's layer would, and where in the buffer does a `Gemm`'s `i`-th feature live.

use crate::nn::Shape;

/// The order of an ONNX value's elements relative to softnet's buffer (one example).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct View {
    /// The ONNX shape, batch left out.
    pub(crate) dims: Vec<usize>,
    pre: Vec<usize>,
    perm: Vec<usize>,
}

impl View {
    /// A value whose row-major order is the buffer's.
    pub(crate) fn plain(dims: Vec<usize>) -> Self {
        let perm = (0..dims.len()).collect();
        View {
            pre: dims.clone(),
            dims,
            perm,
        }
    }

    /// The NCHW `[c, h, w]` view of softnet's `(h, w, c)` activations: what ONNX's `Conv`
    /// and `MaxPool` read and write.
    pub(crate) fn nchw(shape: Shape) -> Self {
        View {
            dims: vec![shape.channels, shape.height, shape.width],
            pre: vec![shape.height, shape.width, shape.channels],
            perm: vec![2, 0, 1],
        }
    }

    /// Values per example.
    pub(crate) fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// `(pre, perm)` with the axes of size 1 dropped and the axes that stay next to each
    /// other in order merged: two views with the same canonical form order the values alike.
    fn canonical(&self) -> (Vec<usize>, Vec<usize>) {
        // Axes of size 1 move nothing.
        let kept: Vec<usize> = (0..self.pre.len()).filter(|&a| self.pre[a] > 1).collect();
        let position = |a: usize| kept.iter().position(|&k| k == a);
        let perm: Vec<usize> = self.perm.iter().filter_map(|&a| position(a)).collect();
        // Runs of consecutive axes in the permuted order are one axis.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for &a in &perm {
            match groups.last_mut() {
                Some(g) if g.last() == Some(&(a.wrapping_sub(1))) && a > 0 => g.push(a),
                _ => groups.push(vec![a]),
            }
        }
        let mut by_start: Vec<usize> = (0..groups.len()).collect();
        by_start.sort_by_key(|&g| groups[g][0]);
        let pre = by_start
            .iter()
            .map(|&g| groups[g].iter().map(|&a| self.pre[kept[a]]).product())
            .collect();
        let perm = (0..groups.len())
            .map(|g| by_start.iter().position(|&s| s == g).unwrap_or(0))
            .collect();
        (pre, perm)
    }

    /// Whether the value's row-major order is the buffer's.
    pub(crate) fn is_plain(&self) -> bool {
        self.canonical().1.len() <= 1
    }

    /// Whether the two views put the values in the same order.
    pub(crate) fn same_order(&self, other: &View) -> bool {
        self.len() == other.len() && self.canonical() == other.canonical()
    }

    /// The value reshaped to `dims` (same count): the order does not change.
    pub(crate) fn reshape(&self, dims: Vec<usize>) -> View {
        if self.is_plain() {
            return View::plain(dims);
        }
        View {
            dims,
            pre: self.pre.clone(),
            perm: self.perm.clone(),
        }
    }

    /// The value transposed by `perm` (batch left out: a permutation of `0..dims.len()`);
    /// `None` for a transpose of a reshape of a transpose, which softnet does not follow.
    pub(crate) fn transpose(&self, perm: &[usize]) -> Option<View> {
        let dims: Vec<usize> = perm.iter().map(|&p| self.dims[p]).collect();
        if self.is_plain() {
            return Some(View {
                dims,
                pre: self.dims.clone(),
                perm: perm.to_vec(),
            });
        }
        let permuted: Vec<usize> = self.perm.iter().map(|&p| self.pre[p]).collect();
        (permuted == self.dims).then(|| View {
            dims,
            pre: self.pre.clone(),
            perm: perm.iter().map(|&p| self.perm[p]).collect(),
        })
    }

    /// Where in the buffer the value's `i`-th element (row-major) lives.
    pub(crate) fn source(&self, i: usize) -> usize {
        let mut strides = vec![1; self.pre.len()];
        for a in (0..self.pre.len().saturating_sub(1)).rev() {
            strides[a] = strides[a + 1] * self.pre[a + 1];
        }
        let mut rest = i;
        let mut at = 0;
        for k in (0..self.perm.len()).rev() {
            let axis = self.perm[k];
            let size = self.pre[axis];
            at += (rest % size) * strides[axis];
            rest /= size;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_and_transpose_to_nchw_is_a_conv_input_for_one_channel_and_not_for_three() {
        // softnet's export: [784] -> [28, 28, 1] -> NCHW [1, 28, 28].
        let v = View::plain(vec![784])
            .reshape(vec![28, 28, 1])
            .transpose(&[2, 0, 1])
            .unwrap();
        assert_eq!(v.dims, [1, 28, 28]);
        assert!(v.same_order(&View::nchw(Shape::new(28, 28, 1))));
        assert!(v.is_plain());
        // PyTorch's: [784] -> [1, 28, 28] straight away.
        let v = View::plain(vec![784]).reshape(vec![1, 28, 28]);
        assert!(v.same_order(&View::nchw(Shape::new(28, 28, 1))));
        // Three channels read as NCHW are not softnet's NHWC buffer.
        let v = View::plain(vec![3, 4, 4]);
        assert!(!v.same_order(&View::nchw(Shape::new(4, 4, 3))));
        // ... unless transposed from NHWC.
        let v = View::plain(vec![4, 4, 3]).transpose(&[2, 0, 1]).unwrap();
        assert!(v.same_order(&View::nchw(Shape::new(4, 4, 3))));
    }

    #[test]
    fn flattening_nchw_reads_channel_major_and_transposing_back_restores_the_order() {
        let shape = Shape::new(2, 3, 4);
        let flat = View::nchw(shape).reshape(vec![24]);
        assert!(!flat.is_plain());
        // Element (c, h, w) of the flattened NCHW value is buffer (h, w, c).
        for c in 0..4 {
            for h in 0..2 {
                for w in 0..3 {
                    assert_eq!(flat.source((c * 2 + h) * 3 + w), (h * 3 + w) * 4 + c);
                }
            }
        }
        let back = View::nchw(shape).transpose(&[1, 2, 0]).unwrap();
        assert_eq!(back.dims, [2, 3, 4]);
        assert!(back.is_plain());
        let flat = back.reshape(vec![24]);
        assert!((0..24).all(|i| flat.source(i) == i));
        // A transpose of a reshaped NCHW value is not followed.
        assert!(View::nchw(shape)
            .reshape(vec![4, 6])
            .transpose(&[1, 0])
            .is_none());
    }
}
