//! Integration tests, one binary (see STYLE.md): modules by subject.

mod common;
#[cfg(feature = "download")]
mod download;
mod idx;
mod infer;
mod kernels;
mod model_file;
#[cfg(feature = "render")]
mod pictures;
#[cfg(feature = "render")]
mod preprocess;
mod reference;
#[cfg(feature = "render")]
mod render;
#[cfg(feature = "tensorboard")]
mod summary;
#[cfg(feature = "tensorboard")]
mod tb_logdir;
mod training;
