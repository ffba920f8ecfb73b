//! Analyses of a trained model: calibration, fooling.
//!
//! These take plain slices (probabilities, logits, labels, images) so they depend on no model
//! type and need no optional feature; pictures of their results live in `render`.

pub mod calibration;
pub mod fooling;
