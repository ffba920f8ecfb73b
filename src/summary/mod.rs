//! TensorBoard event files: what `softnet train --logdir DIR` writes so that the real
//! `tensorboard --logdir DIR` shows scalars, histograms, images and the graph.
//!
//! The layers, bottom up:
//! - [`record`]: TFRecord framing (length, masked CRC-32C, payload, masked CRC-32C);
//! - [`proto`]: the protobuf messages (`Event`, `Summary`, `HistogramProto`, `GraphDef`) as
//!   `prost` structs, so no `protoc` is needed;
//! - [`histogram`]: TensorFlow's exponential bucket layout;
//! - [`graph`]: the GraphDef of a softmax regression or dense network, with the tutorial's scopes;
//! - [`SummaryWriter`]: one run folder, one event file, records buffered until [`SummaryWriter::flush`];
//! - [`TensorBoardLogger`]: the `train` and `test` runs and what the trainer logs at each evaluation;
//! - [`TensorBoardObserver`]: the trainer's observer that drives the logger at each evaluation.
//!
//! Below the observer nothing knows the model types: parameters arrive as [`ParamView`]s
//! (path, shape, values).
//!
//! ```no_run
//! use softnet::summary::{ParamView, TensorBoardLogger};
//! # fn main() -> Result<(), softnet::summary::SummaryError> {
//! let mut tb = TensorBoardLogger::create(std::path::Path::new("runs/softmax"))?;
//! tb.log_graph(784, &[], 10)?;
//! let (w, b) = (vec![0.0f32; 784 * 10], vec![0.0f32; 10]);
//! let params = [
//!     ParamView { path: "variables/Weight", shape: &[784, 10], values: &w },
//!     ParamView { path: "variables/Bias", shape: &[10], values: &b },
//! ];
//! let (train_logits, test_logits) = (vec![0.0f32; 100 * 10], vec![0.0f32; 10_000 * 10]);
//! tb.log_eval(0, (2.30, 0.10), (2.30, 0.098), &params, &train_logits, &test_logits)?;
//! tb.log_weight_images(0, &params)?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod graph;
pub mod histogram;
mod logger;
mod observer;
pub mod proto;
pub mod record;
mod writer;

pub use logger::{ParamView, TensorBoardLogger};
pub use observer::TensorBoardObserver;
pub use writer::SummaryWriter;

use std::path::PathBuf;

/// What went wrong while writing (or reading back) TensorBoard event files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SummaryError {
    /// The run folder could not be created.
    #[error("cannot create run folder {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The event file could not be created.
    #[error("cannot create event file {path}: {source}")]
    CreateFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing buffered records to the event file failed.
    #[error("cannot write event file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The pixel buffer does not match the image size.
    #[error("image {tag}: {got} bytes given for {width}x{height} with {channels} channel(s)")]
    ImageSize {
        /// Summary tag.
        tag: String,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Channels per pixel.
        channels: u32,
        /// Bytes given.
        got: usize,
    },
    /// PNG encoding failed.
    #[error("image {tag}: png encoding failed: {source}")]
    Png {
        /// Summary tag.
        tag: String,
        /// The cause.
        source: png::EncodingError,
    },
    /// A parameter's values do not match its shape, or its shape cannot be shown as images.
    #[error("parameter {path}: {problem}")]
    Param {
        /// The parameter path (`variables/Weight`).
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// An event file (or a byte buffer of records) is not valid TFRecord framing.
    #[error("event file {path}: {problem} at byte {offset}")]
    Corrupt {
        /// The file (empty when reading from memory).
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: usize,
        /// What is wrong.
        problem: &'static str,
    },
}
