//! The model's stages and the scope names that identify them in logs, graphs and files.
//!
//! The tutorial's graph has the stages `input` → `variables` → `logits` → `loss` → `train`,
//! with `evaluation` beside them. Building a [`Model`](super::Model) is separate from running
//! it: the model holds parameters; [`Model::inference`](super::Model::inference),
//! [`Model::loss`](super::Model::loss), the trainer's step (`train`) and
//! [`evaluate`](crate::train::evaluate) (`evaluation`) run it.

/// Scope names of the tutorial's graph.
pub mod scope {
    /// Placeholders for images and labels.
    pub const INPUT: &str = "input";
    /// The weight matrix of softmax regression.
    pub const WEIGHT: &str = "variables/Weight";
    /// The bias vector of softmax regression.
    pub const BIAS: &str = "variables/Bias";
    /// `x·W + b`.
    pub const LOGITS: &str = "logits";
    /// Mean softmax cross-entropy.
    pub const LOSS: &str = "loss";
    /// The SGD update.
    pub const TRAIN: &str = "train";
    /// Accuracy.
    pub const EVALUATION: &str = "evaluation";
}
