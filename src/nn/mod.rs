//! Models: an [`Architecture`] (an input shape and a list of layers), its parameters in one
//! flat arena with named views, and the forward/backward passes over a reusable
//! [`Workspace`].
//!
//! Softmax regression is the network of one linear layer: `logits = x·W + b`. A hidden
//! layer adds `relu(x·W + b)` before it; the tutorial's sequel adds convolutions and
//! max-pooling ([`Architecture::cnn`]). Activations are NHWC and filters HWIO (TensorFlow's
//! layouts); weights are row-major `[fan_in, fan_out]`, as in the tutorial (`W[784, 10]`),
//! so `x·W` multiplies a batch of row vectors. One file per layer kind: [`linear`],
//! [`conv2d`], [`maxpool`], [`activation`], [`flatten`], [`dropout`].

pub mod activation;
mod aligned;
pub mod arch;
pub mod conv2d;
pub mod dropout;
pub mod flatten;
pub mod graph;
pub mod init;
pub mod linear;
pub mod maxpool;
pub mod model;
pub mod workspace;

pub use arch::{ArchError, Architecture, LayerSpec, Padding, ParamSpec, Shape};
pub use dropout::DropoutKey;
pub use graph::scope;
pub use linear::Input;
pub use model::{LayerParams, Mode, Model, ParamView};
pub use workspace::Workspace;
