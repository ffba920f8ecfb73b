//! Integration tests, one binary (see STYLE.md): modules by subject.

#[cfg(feature = "gz")]
mod arriving;
#[cfg(feature = "cli")]
mod bench_cli;
#[cfg(feature = "cli")]
mod cli;
mod cnn;
#[cfg(feature = "cli")]
mod cnn_cli;
mod cnn_int8;
mod common;
#[cfg(feature = "download")]
mod download;
mod fuzz_regressions;
mod gradcheck;
mod idx;
mod infer;
mod kernels;
mod model_file;
#[cfg(feature = "onnx")]
mod onnx;
#[cfg(feature = "render")]
mod pictures;
#[cfg(feature = "render")]
mod preprocess;
mod reference;
#[cfg(feature = "render")]
mod render;
#[cfg(feature = "cli")]
mod resume;
#[cfg(feature = "tensorboard")]
mod summary;
#[cfg(feature = "tensorboard")]
mod tb_logdir;
mod training;
