//! ONNX models out and in (feature `onnx`): softnet's models for onnxruntime and other
//! runtimes, and models trained elsewhere (PyTorch, TensorFlow) for softnet.
//!
//! [`export_bytes`] writes a dense or convolutional model as an opset-13 graph taking
//! `[N, 784]` float pixels / 255 and giving `[N, classes]` logits (optionally also their
//! softmax); [`import_bytes`] reads chains of `Gemm` (or `MatMul` + `Add`), `Relu`, `Conv`,
//! `MaxPool`, `Flatten`/`Reshape`/`Transpose` and a final `Softmax` (or `LogSoftmax`), in
//! NCHW as PyTorch exports them or in NHWC as TensorFlow's converters and softnet write
//! them, and refuses anything else by node name.
//!
//! Layouts: softnet is NHWC, ONNX's `Conv` NCHW. The export transposes the input to NCHW
//! for the convolutions (filters OIHW) and back to NHWC before the first dense layer, whose
//! weights stay softnet's as they are. The import follows every reshape and transpose: a
//! convolution must see softnet's buffer as NCHW (any one-channel input does), and a dense
//! layer after a flatten in NCHW's `(c, h, w)` order gets its weight rows permuted to
//! softnet's `(h, w, c)`.
//!
//! The protobuf messages are declared by hand with `prost` ([`proto`]). Reading never
//! panics: `prost` checks every length against the bytes left, the file is capped at
//! [`MAX_ONNX_BYTES`] and so is the memory its decoded messages would take, and every
//! tensor's dimensions are checked (non-negative, product without overflow) and must match
//! its data before any value is copied.

mod budget;
mod export;
mod import;
pub mod proto;
mod view;

use std::path::{Path, PathBuf};

pub use export::{
    conv_pads, to_proto, ExportOptions, INPUT_NAME, IR_VERSION, LOGITS_NAME, OPSET,
    PROBABILITIES_NAME,
};

use crate::nn::Model;

/// Largest ONNX file softnet reads: 20 times the tutorial's CNN (13 MB). Decoding makes a
/// struct of at most a few hundred bytes per message of at least two bytes, so a file of
/// empty messages could take about 100 times its size: before decoding, a walk over the
/// wire format adds up what the decoded messages would take and refuses a file that would
/// need more than 256 MiB plus 16 bytes per byte of the file.
pub const MAX_ONNX_BYTES: u64 = 256 << 20;

/// What went wrong with an ONNX file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxErrorKind {
    /// Reading or writing the file failed.
    #[error("{0}")]
    Io(
        /// What the OS said.
        std::io::Error,
    ),
    /// The bytes are not an ONNX model softnet can trust: not protobuf, a tensor whose data
    /// does not match its shape, no graph, no input...
    #[error("{0}")]
    Invalid(
        /// What is wrong.
        String,
    ),
    /// A node softnet cannot turn into a layer: an operator it lacks, or one with
    /// attributes or shapes it does not support.
    #[error("{node}: {reason}")]
    Unsupported {
        /// `node "name" (Op)`, or `node #index (Op)` when it has no name.
        node: String,
        /// Why.
        reason: String,
    },
}

/// An ONNX file could not be read, written or turned into a softnet model; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct OnnxError {
    /// The file concerned.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: OnnxErrorKind,
}

impl OnnxError {
    fn invalid(path: &Path, reason: String) -> Self {
        OnnxError {
            path: path.to_path_buf(),
            kind: OnnxErrorKind::Invalid(reason),
        }
    }

    fn unsupported(path: &Path, node: &str, reason: String) -> Self {
        OnnxError {
            path: path.to_path_buf(),
            kind: OnnxErrorKind::Unsupported {
                node: node.to_string(),
                reason,
            },
        }
    }

    fn io(path: &Path, e: std::io::Error) -> Self {
        OnnxError {
            path: path.to_path_buf(),
            kind: OnnxErrorKind::Io(e),
        }
    }
}

/// A model read from ONNX, with what the import changed on the way.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The model.
    pub model: Model,
    /// What was adapted: weight rows reordered from NCHW flatten order, a final Softmax
    /// left out, ...
    pub notes: Vec<String>,
}

/// The ONNX bytes of `model` (see [`to_proto`] for the graph).
pub fn export_bytes(model: &Model, options: &ExportOptions) -> Vec<u8> {
    prost::Message::encode_to_vec(&to_proto(model, options))
}

/// Writes `model` to `path` as ONNX, atomically.
pub fn export_file(model: &Model, path: &Path, options: &ExportOptions) -> Result<(), OnnxError> {
    crate::io::write_atomically(path, &export_bytes(model, options))
        .map_err(|e| OnnxError::io(path, e))
}

/// The softnet model of an ONNX model's bytes; `path` only names the source in errors.
pub fn import_bytes(bytes: &[u8], path: &Path) -> Result<Imported, OnnxError> {
    if bytes.len() as u64 > MAX_ONNX_BYTES {
        return Err(OnnxError::invalid(
            path,
            format!(
                "{} bytes is larger than any model softnet reads",
                bytes.len()
            ),
        ));
    }
    import::import(bytes, path)
}

/// Reads the ONNX file at `path` (at most [`MAX_ONNX_BYTES`]) as a softnet model.
pub fn import_file(path: &Path) -> Result<Imported, OnnxError> {
    let len = std::fs::metadata(path)
        .map_err(|e| OnnxError::io(path, e))?
        .len();
    if len > MAX_ONNX_BYTES {
        return Err(OnnxError::invalid(
            path,
            format!("{len} bytes is larger than any model softnet reads"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| OnnxError::io(path, e))?;
    import_bytes(&bytes, path)
}
