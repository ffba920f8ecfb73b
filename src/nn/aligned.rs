//! A parameter arena whose first value lies on a 64-byte boundary.
//!
//! The kernels load sixteen weights at a time from rows whose starts are multiples of 64
//! bytes apart from the arena's start. A `Vec<f32>` starts wherever the allocator puts it
//! (16 bytes past a boundary for an `mmap`ed block, anywhere for a reused one), and a
//! misaligned arena splits every such load over two cache lines: one image through a
//! 784-256-10 network took a quarter longer, by the luck of the heap.

use std::ops::{Deref, DerefMut};

/// Bytes of alignment: a cache line, one AVX-512 vector.
const ALIGN: usize = 64;
/// f32 slots the start may move by.
const SLACK: usize = ALIGN / std::mem::size_of::<f32>() - 1;

/// `len` f32 values, starting 64-byte aligned; derefs to `[f32]`. Safe code: it keeps a few
/// floats of slack in its `Vec` and starts at the first aligned one.
#[derive(Debug)]
pub(crate) struct AlignedF32 {
    storage: Vec<f32>,
    start: usize,
    len: usize,
}

impl AlignedF32 {
    /// `len` zeros.
    pub(crate) fn zeros(len: usize) -> Self {
        let storage = vec![0.0; len + SLACK];
        // An f32 is 4-byte aligned, so the distance to the boundary is whole f32s.
        let start = (storage.as_ptr() as usize).wrapping_neg() % ALIGN / std::mem::size_of::<f32>();
        AlignedF32 {
            storage,
            start,
            len,
        }
    }
}

impl Deref for AlignedF32 {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedF32 {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

impl Clone for AlignedF32 {
    // A copy lives in its own allocation, aligned anew.
    fn clone(&self) -> Self {
        let mut copy = AlignedF32::zeros(self.len);
        copy.copy_from_slice(self);
        copy
    }
}

impl PartialEq for AlignedF32 {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_cache_line_and_clones_keep_values_and_alignment() {
        for len in [0, 1, 15, 16, 784 * 10 + 10, 203_530] {
            let mut a = AlignedF32::zeros(len);
            assert_eq!(a.len(), len);
            assert_eq!(a.as_ptr() as usize % ALIGN, 0, "len {len}");
            for (i, v) in a.iter_mut().enumerate() {
                *v = i as f32;
            }
            let b = a.clone();
            assert_eq!(b.as_ptr() as usize % ALIGN, 0);
            assert_eq!(a, b);
            assert!(b.iter().enumerate().all(|(i, &v)| v == i as f32));
        }
    }
}
