//! Analyses of a trained model: calibration, fooling.
//!
//! [`calibration`] and [`fooling`] take plain slices (probabilities, logits, labels, images)
//! and know no model type. [`inspect`] runs a `Model` over a `Dataset` and feeds them (logits,
//! input gradients for FGSM). Drawing the results is `render`'s (feature `render`:
//! `render::pictures` makes the pictures and the HTML report of the `softnet` subcommands
//! `show`, `weights`, `fool`, `calibration` and `report`); nothing here draws.

pub mod calibration;
pub mod fooling;
pub mod inspect;
