//! A grid of digit images, each upscaled with its caption above it.
//!
//! Layout (all in pixels, deterministic; [`DigitsGrid::size`] computes it):
//! a [`MARGIN`] around everything, an optional title band of [`TITLE_H`], then `rows x cols`
//! cells. A cell is [`PAD`] + caption band [`CAPTION_H`] + the digit (`side * scale` square)
//! + [`PAD`] tall and [`PAD`] + digit + [`PAD`] wide.

use plotters::style::text_anchor::HPos;

use super::draw::{self, ALERT, FRAME, INK};
use super::{RenderError, RgbImage};

/// Space around the whole grid.
pub const MARGIN: u32 = 10;
/// Height of the optional title band.
pub const TITLE_H: u32 = 40;
/// Space around each cell's content.
pub const PAD: u32 = 8;
/// Height of each caption band.
pub const CAPTION_H: u32 = 22;

/// How f32 pixels map to gray for [`digits_grid_f32`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum F32Range {
    /// 0 is white, 1 is black, values outside are clipped.
    #[default]
    Clip01,
    /// Each image's own minimum is white and maximum black (what matplotlib's `imshow` does by
    /// default, so a digit with a weight image added looks as in the tutorial).
    PerImage,
}

/// Options of a digits grid; [`DigitsGrid::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DigitsGrid {
    /// Digits per row.
    pub cols: usize,
    /// Side of one square digit image in pixels (28 for MNIST).
    pub side: u32,
    /// Upscaling factor (each pixel becomes `scale x scale`).
    pub scale: u32,
    /// Title drawn above the grid.
    pub title: Option<String>,
    /// Digits whose caption and frame are drawn in red (empty: none), e.g. fooled predictions.
    pub marked: Vec<bool>,
    /// Mapping of f32 pixels, for [`digits_grid_f32`].
    pub f32_range: F32Range,
}

impl DigitsGrid {
    /// `cols` digits per row, 28x28 digits upscaled 4x, no title.
    pub fn new(cols: usize) -> Self {
        DigitsGrid {
            cols,
            side: 28,
            scale: 4,
            title: None,
            marked: Vec::new(),
            f32_range: F32Range::Clip01,
        }
    }

    /// Sets the title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Marks digits (one flag per digit) to draw in red.
    pub fn marked(mut self, marked: Vec<bool>) -> Self {
        self.marked = marked;
        self
    }

    /// Sets the upscaling factor.
    pub fn scale(mut self, scale: u32) -> Self {
        self.scale = scale;
        self
    }

    /// Sets the f32 pixel mapping.
    pub fn f32_range(mut self, range: F32Range) -> Self {
        self.f32_range = range;
        self
    }

    fn cell(&self) -> (u32, u32) {
        let d = self.side * self.scale;
        (d + 2 * PAD, d + 2 * PAD + CAPTION_H)
    }

    /// Pixel size `(width, height)` of the grid of `n` digits.
    pub fn size(&self, n: usize) -> (u32, u32) {
        let cols = self.cols.min(n).max(1) as u32;
        let rows = n.div_ceil(self.cols.max(1)) as u32;
        let (cw, ch) = self.cell();
        let title = if self.title.is_some() { TITLE_H } else { 0 };
        (cols * cw + 2 * MARGIN, title + rows * ch + 2 * MARGIN)
    }
}

/// Grid of MNIST digits (`images` is `[n, 784]`, u8, 0 = background) in rows of `cols`, each 4x
/// upscaled with its caption (e.g. `"label 7"`) above it. 25 digits with `cols = 5` make a 5x5
/// grid of 660x770 pixels.
pub fn digits_grid(
    images: &[u8],
    captions: &[String],
    cols: usize,
) -> Result<RgbImage, RenderError> {
    digits_grid_with(images, captions, &DigitsGrid::new(cols))
}

/// [`digits_grid`] with options (title, scale, marked digits).
pub fn digits_grid_with(
    images: &[u8],
    captions: &[String],
    opts: &DigitsGrid,
) -> Result<RgbImage, RenderError> {
    let dim = check(images.len(), captions, opts)?;
    render(captions, opts, |i, p| images[i * dim + p] as f32 / 255.0)
}

/// Grid of f32 digits (`images` is `[n, side * side]`), e.g. digits with a weight image added
/// (which leave [0, 1]: pick [`F32Range::PerImage`] to see the whole change).
pub fn digits_grid_f32(
    images: &[f32],
    captions: &[String],
    opts: &DigitsGrid,
) -> Result<RgbImage, RenderError> {
    let dim = check(images.len(), captions, opts)?;
    let ranges: Vec<(f32, f32)> = images
        .chunks_exact(dim)
        .map(|img| match opts.f32_range {
            F32Range::Clip01 => (0.0, 1.0),
            F32Range::PerImage => {
                let lo = img.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = img.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if hi > lo && hi.is_finite() && lo.is_finite() {
                    (lo, hi)
                } else {
                    (0.0, 1.0)
                }
            }
        })
        .collect();
    render(captions, opts, |i, p| {
        let (lo, hi) = ranges[i];
        (images[i * dim + p] - lo) / (hi - lo)
    })
}

/// Checks the shapes; returns the pixels per digit.
fn check(len: usize, captions: &[String], opts: &DigitsGrid) -> Result<usize, RenderError> {
    let dim = (opts.side * opts.side) as usize;
    let n = captions.len();
    if n == 0 || opts.cols == 0 || dim == 0 || opts.scale == 0 {
        return Err(RenderError::Input(format!(
            "digits grid needs digits, columns, a side and a scale (got {n} captions, {} columns, side {}, scale {})",
            opts.cols, opts.side, opts.scale
        )));
    }
    if len != n * dim {
        return Err(RenderError::Input(format!(
            "digits grid: {len} pixels for {n} captions of {dim} pixels each"
        )));
    }
    if !opts.marked.is_empty() && opts.marked.len() != n {
        return Err(RenderError::Input(format!(
            "digits grid: {} marks for {n} digits",
            opts.marked.len()
        )));
    }
    Ok(dim)
}

/// Draws the grid; `ink(i, p)` is digit `i`'s pixel `p` in [0, 1] (1 = black).
fn render(
    captions: &[String],
    opts: &DigitsGrid,
    ink: impl Fn(usize, usize) -> f32,
) -> Result<RgbImage, RenderError> {
    let n = captions.len();
    let (w, h) = opts.size(n);
    let mut img = RgbImage::new(w, h, [255; 3]);
    let top = if let Some(title) = &opts.title {
        let size = draw::fit_size(title, 22.0, true, w - 2 * MARGIN)?;
        draw::text(
            &mut img,
            title,
            (w / 2) as i32,
            (MARGIN + 6) as i32,
            size,
            INK,
            true,
            HPos::Center,
        )?;
        MARGIN + TITLE_H
    } else {
        MARGIN
    };
    let (cw, ch) = opts.cell();
    let d = opts.side * opts.scale;
    for (i, caption) in captions.iter().enumerate() {
        let (col, row) = ((i % opts.cols) as u32, (i / opts.cols) as u32);
        let x0 = MARGIN + col * cw;
        let y0 = top + row * ch;
        let marked = opts.marked.get(i).copied().unwrap_or(false);
        let color = if marked { ALERT } else { INK };
        let size = draw::fit_size(caption, 15.0, marked, d)?;
        draw::text(
            &mut img,
            caption,
            (x0 + cw / 2) as i32,
            (y0 + PAD) as i32,
            size,
            color,
            marked,
            HPos::Center,
        )?;
        let (dx, dy) = (x0 + PAD, y0 + PAD + CAPTION_H);
        for y in 0..d {
            for x in 0..d {
                let p = (y / opts.scale) * opts.side + x / opts.scale;
                let v = ink(i, p as usize);
                // NaN maps to white rather than poisoning the cast.
                let g = 255 - (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                img.put_pixel(dx + x, dy + y, [g; 3]);
            }
        }
        draw::frame(
            &mut img,
            dx - 1,
            dy - 1,
            d + 2,
            d + 2,
            if marked { ALERT } else { FRAME },
        );
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captions(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("label {}", i % 10)).collect()
    }

    #[test]
    fn five_by_five_grid_has_the_documented_size() {
        let images = vec![0u8; 25 * 784];
        let img = digits_grid(&images, &captions(25), 5).unwrap();
        // 5 cells of 112 + 16 plus margins; 5 cells of 112 + 16 + 22 plus margins.
        assert_eq!((img.width, img.height), (5 * 128 + 20, 5 * 150 + 20));
        assert_eq!(img.data.len(), (img.width * img.height * 3) as usize);
        let titled = DigitsGrid::new(5).title("t");
        assert_eq!(titled.size(25), (660, 810));
        // 7 digits in rows of 5: 2 rows, 5 columns.
        assert_eq!(DigitsGrid::new(5).size(7), (660, 2 * 150 + 20));
        // 3 digits in rows of 5: the row shrinks to 3.
        assert_eq!(DigitsGrid::new(5).size(3), (3 * 128 + 20, 170));
    }

    #[test]
    fn pixels_are_upscaled_dark_on_white() {
        let mut images = vec![0u8; 2 * 784];
        images[0] = 255; // digit 0, pixel (0, 0): black
        images[784 + 27] = 128; // digit 1, pixel (27, 0): mid gray
        let img = digits_grid(&images, &captions(2), 2).unwrap();
        let (dx, dy) = (MARGIN + PAD, MARGIN + PAD + CAPTION_H);
        for (x, y) in [(0, 0), (3, 3)] {
            assert_eq!(img.pixel(dx + x, dy + y), Some([0; 3]));
        }
        assert_eq!(img.pixel(dx + 4, dy), Some([255; 3]));
        let dx1 = dx + 128;
        assert_eq!(img.pixel(dx1 + 27 * 4 + 3, dy + 3), Some([127; 3]));
        // The caption band holds dark text.
        let caption_ink = (MARGIN..MARGIN + 128)
            .flat_map(|x| (MARGIN + PAD..MARGIN + PAD + CAPTION_H).map(move |y| (x, y)))
            .filter(|&(x, y)| img.pixel(x, y).unwrap()[0] < 128)
            .count();
        assert!(caption_ink > 30, "caption pixels {caption_ink}");
    }

    #[test]
    fn f32_per_image_range_stretches_each_digit() {
        let mut images = vec![-0.5f32; 784];
        images[0] = 1.5;
        let opts = DigitsGrid::new(1).f32_range(F32Range::PerImage);
        let img = digits_grid_f32(&images, &captions(1), &opts).unwrap();
        let (dx, dy) = (MARGIN + PAD, MARGIN + PAD + CAPTION_H);
        assert_eq!(img.pixel(dx, dy), Some([0; 3]));
        assert_eq!(img.pixel(dx + 4, dy), Some([255; 3]));
        let clipped = digits_grid_f32(&images, &captions(1), &DigitsGrid::new(1)).unwrap();
        assert_eq!(clipped.pixel(dx, dy), Some([0; 3]));
    }

    #[test]
    fn wrong_shapes_are_errors() {
        assert!(digits_grid(&[0; 783], &captions(1), 1).is_err());
        assert!(digits_grid(&[], &[], 5).is_err());
        assert!(digits_grid(&[0; 784], &captions(1), 0).is_err());
        let opts = DigitsGrid::new(1).marked(vec![true, false]);
        assert!(digits_grid_with(&[0; 784], &captions(1), &opts).is_err());
    }
}
