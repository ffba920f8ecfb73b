//! Integration tests, one binary (see STYLE.md): modules by subject.

mod common;
mod idx;
mod kernels;
mod model_file;
mod reference;
#[cfg(feature = "render")]
mod render;
mod training;
