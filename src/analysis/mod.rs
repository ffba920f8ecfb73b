//! Analyses of a trained model: calibration, fooling.
//!
//! [`calibration`] and [`fooling`] take plain slices (probabilities, logits, labels, images)
//! and know no model type. [`inspect`] runs a `Model` over a `Dataset` and feeds them (logits,
//! input gradients for FGSM); [`pictures`] (feature `render`) turns the results into the
//! pictures and the HTML report of the `softnet` subcommands `show`, `weights`, `fool`,
//! `calibration` and `report`.

pub mod calibration;
pub mod fooling;
pub mod inspect;
#[cfg(feature = "render")]
pub mod pictures;
