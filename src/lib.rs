//! softnet: softmax regression and small dense networks on the CPU.
//!
//! (crate docs are filled in with the core; see README.md)

pub mod data;
pub mod error;
pub mod infer;
pub mod io;
pub mod kernels;
pub mod nn;
pub mod optim;
pub mod train;

pub use infer::Classifier;

#[cfg(feature = "tensorboard")]
pub mod summary;

#[cfg(feature = "render")]
pub mod render;

pub mod analysis;

#[cfg(feature = "download")]
pub mod download;

#[cfg(feature = "render")]
pub mod preprocess;

/// The README's examples run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
