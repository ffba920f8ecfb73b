//! Text and small shapes drawn straight onto an [`RgbImage`] through plotters' bitmap backend.

use plotters::backend::{BitMapBackend, RGBPixel};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::{register_fonts, FAMILY};
use super::{RenderError, RgbImage};

/// Near-black used for text.
pub(crate) const INK: [u8; 3] = [30, 30, 30];
/// Red used to mark wrong or fooled predictions.
pub(crate) const ALERT: [u8; 3] = [200, 30, 30];
/// Light gray for frames.
pub(crate) const FRAME: [u8; 3] = [200, 200, 200];

fn font(size: f64, bold: bool) -> FontDesc<'static> {
    register_fonts();
    let style = if bold {
        FontStyle::Bold
    } else {
        FontStyle::Normal
    };
    FontDesc::new(FontFamily::Name(FAMILY), size, style)
}

/// Width in pixels of `text` at `size`.
pub(crate) fn text_width(text: &str, size: f64, bold: bool) -> Result<u32, RenderError> {
    let (w, _) = font(size, bold).box_size(text).map_err(RenderError::plot)?;
    Ok(w)
}

/// The largest size up to `size` at which `text` fits in `max_width` pixels (never below 8).
pub(crate) fn fit_size(
    text: &str,
    size: f64,
    bold: bool,
    max_width: u32,
) -> Result<f64, RenderError> {
    let mut s = size;
    while s > 8.0 && text_width(text, s, bold)? > max_width {
        s -= 1.0;
    }
    Ok(s)
}

/// Draws `text` with its top edge at `y`, anchored at `x` as `h` says.
#[allow(clippy::too_many_arguments)]
pub(crate) fn text(
    img: &mut RgbImage,
    text: &str,
    x: i32,
    y: i32,
    size: f64,
    color: [u8; 3],
    bold: bool,
    h: HPos,
) -> Result<(), RenderError> {
    let (w, hgt) = (img.width, img.height);
    let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut img.data, (w, hgt))
        .map_err(RenderError::plot)?;
    let root = backend.into_drawing_area();
    let style = font(size, bold)
        .color(&RGBColor(color[0], color[1], color[2]))
        .pos(Pos::new(h, VPos::Top));
    root.draw(&Text::new(text.to_string(), (x, y), style))
        .map_err(RenderError::plot)?;
    root.present().map_err(RenderError::plot)?;
    Ok(())
}

/// A one-pixel rectangle outline around `(x, y, w, h)`.
pub(crate) fn frame(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
    img.fill_rect(x, y, w, 1, color);
    img.fill_rect(x, y + h.saturating_sub(1), w, 1, color);
    img.fill_rect(x, y, 1, h, color);
    img.fill_rect(x + w.saturating_sub(1), y, 1, h, color);
}
