//! Softmax regression, dense and convolutional networks for MNIST, trained and run on the CPU.
//!
//! softnet trains the TensorFlow tutorial's softmax regression (`logits = x·W + b`,
//! `W[784, 10]`), multilayer perceptrons and convolutional networks, reproducing TensorFlow's
//! numbers, and runs trained models through an inference engine that allocates nothing per
//! prediction. The `softnet` command line (feature `cli`) is a thin layer over this crate.
//!
//! # Data representation
//!
//! - An image is 784 bytes (28x28, row-major, 0 = background), as in the MNIST files; a
//!   [`Dataset`](data::Dataset) holds `n` of them back to back (`[n, 784]` u8) with their
//!   labels (`[n]` u8, `0..10`). Kernels turn a pixel `p` into `p / 255` as they read it.
//! - Matrices are flat row-major `f32` slices with their shape written beside them. A batch
//!   is `[rows, 784]`; a weight is `[fan_in, fan_out]`, so a layer computes `x·W + b` for a
//!   batch of row vectors; logits are `[rows, classes]`.
//! - A model's parameters live in one flat arena, carved into named views
//!   (`variables/Weight`, `layer1/weight`, ...). Optimisers, checkpoints, model files and
//!   summaries all walk it through [`Model::visit_params`](nn::Model::visit_params).
//!
//! # Modules, along the data flow
//!
//! | step | module |
//! |---|---|
//! | IDX bytes → [`Dataset`](data::Dataset), batches into reused buffers | [`data`] ([`download`] fetches the files) |
//! | a model: architecture, parameter arena, forward and backward passes | [`nn`] |
//! | the numeric kernels under them: blocked gemm, narrow and listed products, softmax | [`kernels`] |
//! | a pixel byte as a network input (`p / 255`), one table for data, kernels and inference | [`pixels`] |
//! | minibatch training in shards, evaluation, the run loop and its observers, checkpoints | [`train`] |
//! | SGD, momentum, Adam, schedules | [`optim`] |
//! | model files (safetensors, int8), `.npy` | [`io`] |
//! | inference only: [`Classifier`], and [`ClassifierRef`] without `std` | [`infer`] |
//! | TensorBoard event files | [`summary`] |
//! | ONNX export and import | [`onnx`] |
//! | pictures, plots, the HTML report; any picture of a digit as MNIST input | [`render`], [`preprocess`] |
//! | calibration, fooling images | [`analysis`] |
//! | typed errors at each boundary | [`error`] |
//!
//! # Example
//!
//! Train the tutorial's model for a few steps on a dataset made in code, then classify an
//! image with the inference engine:
//!
//! ```
//! # #[cfg(feature = "std")] {
//! use softnet::data::{BatchOrder, Dataset};
//! use softnet::nn::Model;
//! use softnet::optim::Optimizer;
//! use softnet::train::Trainer;
//! use softnet::Classifier;
//!
//! // Digit `l` lights up the l-th band of 78 pixels.
//! let labels: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
//! let pixels: Vec<u8> = labels
//!     .iter()
//!     .flat_map(|&l| (0..784).map(move |p| if p / 78 == usize::from(l) { 255 } else { 0 }))
//!     .collect();
//! let data = Dataset::new(pixels, labels);
//! let mut trainer = Trainer::new(
//!     Model::softmax_regression(), Optimizer::sgd(0.5), data.len(), 50,
//!     BatchOrder::Sequential, Some(1),
//! );
//! for _ in 0..50 {
//!     trainer.step(&data);
//! }
//! let classifier = Classifier::from_model(trainer.model())?;
//! let image: &[u8; 784] = data.image(3).try_into().unwrap();
//! assert_eq!(classifier.predict(image).0, 3);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `std` | yes | everything but [`ClassifierRef`]: data, training, model files, [`Classifier`] |
//! | `parallel` | yes | training and evaluation on rayon's threads (the same results with any thread count) |
//! | `gz` | yes | gzip'd IDX files |
//! | `cli` | yes | the `softnet` binary |
//! | `tensorboard` | yes | [`summary`]: TensorBoard event files |
//! | `render` | yes | [`render`]: PNG pictures, plots, the HTML report; PNG input for [`preprocess`] |
//! | `download` | yes | [`download`]: fetching MNIST with SHA-256 verification |
//! | `onnx` | yes (with `cli`) | [`onnx`]: ONNX export and import |
//!
//! With `default-features = false` the crate is `#![no_std]` and holds [`ClassifierRef`]
//! only: a model file's bytes (`include_bytes!`) parsed in place and run with caller
//! scratch, no allocation (microcontrollers, WebAssembly). `std` alone adds training,
//! evaluation, model files and the [`Classifier`] engine. The kernels choose their SIMD
//! instructions at run time (AVX-512, AVX2 + FMA or portable; see [`kernels::simd`]), so no
//! build flag is needed.
// The tests of the no_std core run under the std test harness.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![warn(missing_docs)]
// `unsafe` lives where it is needed (the prefetch hints in `kernels`, mapping and huge pages
// in `data`), each with a `// SAFETY:` note; every other module stays without it.
#![deny(unsafe_code)]

pub mod error;
pub mod infer;
pub mod pixels;

pub use infer::ClassifierRef;

// Everything below needs `std` (the heap, files, threads, run-time CPU detection); without
// it the crate is `#![no_std]` and holds the zero-copy `ClassifierRef` only.
#[cfg(feature = "std")]
pub mod data;
#[cfg(feature = "std")]
pub mod io;
#[cfg(feature = "std")]
#[allow(unsafe_code)]
pub mod kernels;
#[cfg(feature = "std")]
pub mod nn;
#[cfg(feature = "std")]
pub mod optim;
#[cfg(feature = "std")]
pub mod train;

#[cfg(feature = "std")]
pub use infer::Classifier;

#[cfg(feature = "tensorboard")]
pub mod summary;

#[cfg(feature = "render")]
pub mod render;

#[cfg(feature = "std")]
pub mod analysis;

#[cfg(feature = "download")]
pub mod download;

#[cfg(feature = "onnx")]
pub mod onnx;

pub mod preprocess;

// The README's examples run as doctests, from a file beside the model its embedding example
// bakes in (see there).
#[cfg(all(doctest, feature = "std"))]
#[path = "../tests/fixtures/readme_doctests.rs"]
mod readme_doctests;
