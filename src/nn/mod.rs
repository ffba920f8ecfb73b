//! Models: an [`Architecture`] (layer sizes), its parameters in one flat arena with named
//! views, and the forward/backward passes over a reusable [`Workspace`].
//!
//! Softmax regression is the network without hidden layers: `logits = x·W + b`. A hidden
//! layer adds `relu(x·W + b)` before it. Weights are row-major `[fan_in, fan_out]`, as in
//! the tutorial (`W[784, 10]`), so `x·W` multiplies a batch of row vectors.

pub mod graph;
pub mod init;
pub mod model;
pub mod workspace;

pub use graph::scope;
pub use model::{Architecture, Input, LayerParams, Model, ParamView};
pub use workspace::Workspace;
