//! Analyses of a trained model: calibration, fooling.
