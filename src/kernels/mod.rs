//! Numeric kernels over flat row-major `f32` slices.
//!
//! Kernels know nothing of layers or datasets: they take slices, dimensions and strides (and
//! a [`GemmWorkspace`] for packing), never allocate, and never return `Result`. Shapes are
//! checked with `assert!` at this public edge. Every kernel has a naive twin in [`naive`],
//! the specification and the oracle of the property tests. The one exception to "never
//! allocate" is made ahead of the products: [`listed`]'s lists and packed weights own
//! memory, which they reuse, so that [`listed::matmul`] itself does not.
//!
//! # SIMD: chosen at run time
//!
//! The instruction level ([`simd::Level`]: portable, AVX2 + FMA, AVX-512) is detected once
//! per process, or forced with `SOFTNET_SIMD=portable|avx2|avx512`; no build flag is
//! needed. How to write a dispatched kernel:
//!
//! 1. Check shapes in a plain public function, then pack the checked arguments into a
//!    struct and call [`simd::dispatch`] with it.
//! 2. Implement [`simd::SimdKernel`] for the struct: `run<S: Simd>(self, s: S)` is the body,
//!    marked `#[inline(always)]`, and so is every helper it calls (generic over
//!    `S: Simd`, taking `s`). `dispatch` calls it inside one `#[target_feature]` function
//!    per level, so the body is compiled once per level; a helper that is not inlined is
//!    compiled without the level's features (slow, never wrong).
//! 3. Do vector arithmetic with the token's methods (`s.load`, `s.mul_add`, `s.store`, ...)
//!    on `S::F32` (sixteen f32 lanes). Sizes that depend on the register count are the
//!    level's constants (`S::MR`); a const-generic helper picked by
//!    `if S::MR == 8 { f::<S, 8>() } else { f::<S, 4>() }` keeps arrays sized at compile
//!    time. Scalar tails use `s.mul_add_scalar`, so they round as the lanes do.
//! 4. No `unsafe` outside [`simd`]: a missing operation becomes a token method there, one
//!    implementation per level, with a `// SAFETY:` line, and a case in its tests.
//! 5. Test the kernel on every level with [`simd::with_level`] over
//!    [`simd::Level::supported`], against its twin in [`naive`].
//!
//! Kernels built from [`gemm()`] and plain loops (as convolution by im2col is) need none of
//! this: `gemm` dispatches itself.

pub mod conv;
pub mod conv_int8;
pub mod elementwise;
#[cfg(test)]
mod every_level;
pub mod gemm;
pub mod listed;
pub mod naive;
mod naive_conv;
pub mod narrow;
pub mod pool;
pub mod simd;
pub mod vnni;

pub use elementwise::{
    add_bias_rows, argmax_rows, column_sums_into, relu_backward_in_place, relu_in_place,
    scaled_add, softmax_cross_entropy, sum_into,
};
pub use gemm::{gemm, GemmWorkspace, MatRef, Operand, PixelRef};

/// `SET_BITS[m]` lists the set bits of the byte `m`, lowest first (the rest are 0).
static SET_BITS: [[u8; 8]; 256] = {
    let mut table = [[0u8; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let (mut bit, mut n) = (0, 0);
        while bit < 8 {
            if m & (1 << bit) != 0 {
                table[m][n] = bit as u8;
                n += 1;
            }
            bit += 1;
        }
        m += 1;
    }
    table
};

/// Writes `base + i` for each set bit `i` of the byte `mask`, lowest first, to
/// `list[count..]` and returns the new count, without branches: all eight slots from `count`
/// are written (`list` needs them), the ones past the new count with junk.
#[inline(always)]
pub(crate) fn list_set_bits(mask: u32, base: u16, list: &mut [u16], count: usize) -> usize {
    let bits = &SET_BITS[(mask & 0xff) as usize];
    for (slot, &bit) in list[count..count + 8].iter_mut().zip(bits) {
        *slot = base + u16::from(bit);
    }
    count + (mask & 0xff).count_ones() as usize
}

/// Asks the CPU to start loading `values` into its caches, without waiting for them: for
/// reads the hardware cannot see coming (rows picked by an index), issued a few rows ahead.
#[inline(always)]
pub(crate) fn prefetch<T>(values: &[T]) {
    #[cfg(target_arch = "x86_64")]
    prefetch_lines::<{ std::arch::x86_64::_MM_HINT_T0 }, T>(values);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// Like [`prefetch`], into the second-level cache only: for reads a whole step ahead,
/// which would only push the step's own data out of the first.
#[inline(always)]
pub(crate) fn prefetch_l2<T>(values: &[T]) {
    #[cfg(target_arch = "x86_64")]
    prefetch_lines::<{ std::arch::x86_64::_MM_HINT_T1 }, T>(values);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// One prefetch with `HINT` for each cache line of `values`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_lines<const HINT: i32, T>(values: &[T]) {
    const LINE: usize = 64;
    let start = values.as_ptr().cast::<u8>();
    for offset in (0..std::mem::size_of_val(values)).step_by(LINE) {
        // SAFETY: SSE, which `_mm_prefetch` needs, is part of every x86_64 CPU; a prefetch
        // only hints the cache and never faults (and the address lies inside `values`
        // anyway).
        unsafe { std::arch::x86_64::_mm_prefetch::<HINT>(start.wrapping_add(offset).cast()) };
    }
}

/// `dst.copy_from_slice(&src[..dst.len()])` for a row's last few outputs, with `COMMON`
/// values (what the ten classes leave) copied by fixed-size stores: a copy whose length is
/// known only at run time is a call to `memcpy`, which costs more than the stores
/// themselves, once per row of every product.
#[inline(always)]
pub(crate) fn copy_short<const COMMON: usize>(dst: &mut [f32], src: &[f32]) {
    if dst.len() == COMMON {
        dst.copy_from_slice(&src[..COMMON]);
    } else {
        dst.copy_from_slice(&src[..dst.len()]);
    }
}

/// Bit `i` is set when byte `i` (little-endian) of `word` is not zero.
#[inline(always)]
pub(crate) fn nonzero_bytes(word: u64) -> u32 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // Bit 7 of each byte: set when its low seven bits carry into it or it was set already.
    let high = (((word & LOW7) + LOW7) | word) & !LOW7;
    // Moves bit 8i to bit 56 + i; the partial products land on distinct bits, so no carries.
    ((high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

/// A test's reproducible stream of pseudo-random words (xorshift64) from a seed: the kernels'
/// tests draw their values from it, so a failure names a seed that reproduces it.
#[cfg(test)]
pub(crate) fn test_words(seed: u64) -> impl Iterator<Item = u64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonzero_bytes_marks_exactly_the_nonzero_bytes() {
        let scalar = |w: u64| -> u32 {
            (0..8)
                .filter(|i| (w >> (8 * i)) & 0xff != 0)
                .map(|i| 1 << i)
                .sum()
        };
        for byte in 0..=255u64 {
            for at in 0..8 {
                let w = byte << (8 * at);
                assert_eq!(nonzero_bytes(w), scalar(w), "{w:#x}");
            }
        }
        for state in super::test_words(1).take(10_000) {
            // Clear a random half of the bytes, so zeros and non-zeros mix.
            let keep = (0..8)
                .filter(|i| (state >> (56 + i)) & 1 == 1)
                .fold(0u64, |m, i| m | 0xff << (8 * i));
            let w = state & keep;
            assert_eq!(nonzero_bytes(w), scalar(w), "{w:#x}");
        }
    }

    #[test]
    fn set_bits_are_listed_in_order_from_the_base() {
        let mut list = [0u16; 12];
        let count = list_set_bits(0b1010_0101, 100, &mut list, 1);
        assert_eq!(count, 5);
        assert_eq!(&list[1..5], &[100, 102, 105, 107]);
        assert_eq!(list_set_bits(0, 7, &mut list, 3), 3);
    }
}
