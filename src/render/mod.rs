//! PNG pictures, plots and the HTML report.
//!
//! Everything here draws into an [`RgbImage`] (8-bit RGB, row-major `[height, width, 3]`) and
//! encodes it with the `png` crate; plots are drawn by `plotters` on its bitmap backend with
//! DejaVu Sans compiled into the binary (see `assets/fonts/`), so no system font is needed.
//!
//! | picture | function |
//! |---|---|
//! | digits with captions | [`digits::digits_grid`], [`digits::digits_grid_f32`] |
//! | weight columns as images | [`weights::weights_grid`] |
//! | calibration (3 plots) | [`plots::calibration_figure`] |
//! | fooling rate vs scale | [`plots::fooling_rate_plot`] |
//! | one HTML page | [`report::HtmlReport`] |
//!
//! Inputs are plain slices and shapes, and the results of [`analysis`](crate::analysis);
//! only [`pictures`], which runs a model over a dataset to draw what the `softnet` picture
//! subcommands show, knows model and dataset types. Data flows one way: analysis, then
//! drawing.

use std::path::PathBuf;

use thiserror::Error;

pub mod digits;
mod draw;
pub mod font;
pub mod image;
pub mod pictures;
pub mod plots;
pub mod report;
pub mod weights;

pub use image::{GrayImage, RgbImage};

/// What went wrong while drawing or writing a picture.
#[derive(Debug, Error)]
pub enum RenderError {
    /// Writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// PNG encoding failed (for instance a zero-sized image).
    #[error("cannot encode png ({width}x{height}): {message}")]
    Encode {
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
        /// The encoder's message.
        message: String,
    },
    /// The inputs do not describe a picture (wrong lengths, nothing to draw, ...).
    #[error("render: {0}")]
    Input(String),
    /// The plotting library failed.
    #[error("plotting failed: {0}")]
    Plot(String),
}

impl RenderError {
    fn plot(e: impl std::fmt::Display) -> Self {
        RenderError::Plot(e.to_string())
    }
}
