//! softnet's integration tests, one binary.

#[cfg(feature = "tensorboard")]
mod summary;
