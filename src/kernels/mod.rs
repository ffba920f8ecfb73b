//! Numeric kernels over flat row-major `f32` slices.
//!
//! Kernels know nothing of layers or datasets: they take slices, dimensions and strides (and
//! a [`GemmWorkspace`] for packing), never allocate, and never return `Result`. Shapes are
//! checked with `assert!` at this public edge. Every kernel has a naive twin in [`naive`],
//! the specification and the oracle of the property tests.
//!
//! SIMD comes from `wide` (f32x8, AVX2 + FMA when the crate is built with
//! `target-cpu=native`, as `.cargo/config.toml` does; portable lanes otherwise).

pub mod elementwise;
pub mod gemm;
pub mod naive;
pub mod narrow;

pub use elementwise::{
    add_bias_rows, argmax_rows, column_sums_into, relu_backward_in_place, relu_in_place,
    scaled_add, softmax_cross_entropy, sum_into,
};
pub use gemm::{gemm, GemmWorkspace, MatRef, Operand, PixelRef};
