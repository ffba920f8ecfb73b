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

/// One of `slots` that no other worker holds now, for a piece of work that runs at most one
/// at a time on each thread (so, with a slot per thread, one is free); the first slot, waited
/// for, if none is.
pub(crate) fn lock_free_one<T>(slots: &[std::sync::Mutex<T>]) -> std::sync::MutexGuard<'_, T> {
    slots
        .iter()
        .find_map(|w| w.try_lock().ok())
        .unwrap_or_else(|| {
            slots[0]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
}
