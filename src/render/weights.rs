//! Weight columns as images: `W[:, j]` of a `[fan_in, units]` weight matrix, reshaped to a
//! `side x side` square (`fan_in = side^2`, 784 = 28^2 for MNIST), drawn with a diverging
//! colour map centred on zero (blue negative, white zero, red positive) over the symmetric
//! range `±max|w|` of the columns shown, and a colour bar with tick labels on the right.

use plotters::style::text_anchor::HPos;

use super::draw::{self, FRAME, INK};
use super::{RenderError, RgbImage};

/// Space around everything.
const MARGIN: u32 = 12;
/// Title band above the grid when there is a title.
const TITLE_H: u32 = 40;
/// Space around each tile.
const PAD: u32 = 8;
/// Caption band above each tile.
const CAPTION_H: u32 = 26;
/// Upscaling of each weight pixel of a 28x28 tile; smaller tiles (a 5x5 filter) are
/// enlarged until they are at least [`MIN_TILE`] pixels wide, so they stay readable.
const SCALE: u32 = 5;
/// Smallest tile width in pixels.
const MIN_TILE: u32 = 100;

/// Upscaling of each weight pixel for tiles of `side x side`.
fn scale_for(side: u32) -> u32 {
    SCALE.max(MIN_TILE.div_ceil(side.max(1)))
}
/// Colour bar: gap before it, its width, room for tick labels after it.
const BAR_GAP: u32 = 18;
const BAR_W: u32 = 22;
const BAR_LABELS: u32 = 76;

/// The colour-map stops (ColorBrewer RdBu, reversed so positive is red).
const STOPS: [[f32; 3]; 5] = [
    [5.0, 48.0, 97.0],
    [67.0, 147.0, 195.0],
    [247.0, 247.0, 247.0],
    [214.0, 96.0, 77.0],
    [103.0, 0.0, 31.0],
];

/// Diverging colour for `t` in [-1, 1] (clipped): dark blue at -1, near white at 0, dark red
/// at 1.
pub fn diverging_color(t: f32) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(-1.0, 1.0) };
    let pos = (t + 1.0) * 2.0; // 0..4 over the 5 stops
    let i = (pos.floor() as usize).min(3);
    let f = pos - i as f32;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    [0, 1, 2].map(|k| (a[k] + (b[k] - a[k]) * f).round() as u8)
}

/// Tick label with a true minus sign.
fn tick_label(v: f32, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    if v < 0.0 && s.chars().any(|c| c.is_ascii_digit() && c != '0') {
        format!("\u{2212}{s}")
    } else {
        s
    }
}

/// Enough decimals to tell the ticks `±max, ±max/2, 0` apart.
fn decimals_for(max: f32) -> usize {
    if max >= 10.0 {
        1
    } else if max >= 1.0 {
        2
    } else {
        // two significant digits of max / 2
        ((-(max / 2.0).log10()).floor() as i64 + 2).clamp(2, 6) as usize
    }
}

/// Pixel size `(width, height)` of [`weights_grid`]'s picture for `tiles` tiles of `side x side`.
pub fn weights_grid_size(tiles: usize, side: u32, grid_cols: usize, titled: bool) -> (u32, u32) {
    let cols = grid_cols.min(tiles).max(1) as u32;
    let rows = tiles.div_ceil(grid_cols.max(1)) as u32;
    let t = side * scale_for(side);
    let w = 2 * MARGIN + cols * (t + 2 * PAD) + BAR_GAP + BAR_W + BAR_LABELS;
    let h = 2 * MARGIN + if titled { TITLE_H } else { 0 } + rows * (t + 2 * PAD + CAPTION_H);
    (w, h)
}

/// Draws weight columns `columns` of `weights` (`[fan_in, units]`, row-major, so column `j` is
/// `weights[i * units + j]` for `i < fan_in`) as `sqrt(fan_in)`-square images in rows of
/// `grid_cols`, each under its entry of `titles`, with an optional overall `title`.
///
/// For softmax regression: `fan_in = 784`, `units = 10`, `columns = 0..10`, titles `"0"`..`"9"`,
/// `grid_cols = 5` (a 2x5 grid). For a deeper model: the first layer's weights and as many
/// hidden units as wanted.
pub fn weights_grid(
    weights: &[f32],
    fan_in: usize,
    units: usize,
    columns: &[usize],
    titles: &[String],
    grid_cols: usize,
    title: Option<&str>,
) -> Result<RgbImage, RenderError> {
    let side = (fan_in as f64).sqrt().round() as usize;
    if side == 0 || side * side != fan_in {
        return Err(RenderError::Input(format!(
            "weights grid: fan_in {fan_in} is not a square number of pixels"
        )));
    }
    if weights.len() != fan_in * units {
        return Err(RenderError::Input(format!(
            "weights grid: {} weights for a [{fan_in}, {units}] matrix",
            weights.len()
        )));
    }
    if columns.is_empty() || grid_cols == 0 || titles.len() != columns.len() {
        return Err(RenderError::Input(format!(
            "weights grid: {} columns, {} titles, {grid_cols} grid columns",
            columns.len(),
            titles.len()
        )));
    }
    if let Some(&bad) = columns.iter().find(|&&c| c >= units) {
        return Err(RenderError::Input(format!(
            "weights grid: column {bad} of a matrix with {units} columns"
        )));
    }
    let max = columns
        .iter()
        .flat_map(|&j| (0..fan_in).map(move |i| weights[i * units + j].abs()))
        .filter(|v| v.is_finite())
        .fold(0f32, f32::max);
    // An all-zero matrix (e.g. right after zero initialisation) still gets a readable bar.
    let max = if max > 0.0 { max } else { 1.0 };

    let side = side as u32;
    let (w, h) = weights_grid_size(columns.len(), side, grid_cols, title.is_some());
    let mut img = RgbImage::new(w, h, [255; 3]);
    let mut top = MARGIN;
    if let Some(title) = title {
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
        top += TITLE_H;
    }
    let scale = scale_for(side);
    let t = side * scale;
    let (cw, ch) = (t + 2 * PAD, t + 2 * PAD + CAPTION_H);
    for (k, (&j, caption)) in columns.iter().zip(titles).enumerate() {
        let (col, row) = ((k % grid_cols) as u32, (k / grid_cols) as u32);
        let (x0, y0) = (MARGIN + col * cw, top + row * ch);
        let size = draw::fit_size(caption, 18.0, true, t)?;
        draw::text(
            &mut img,
            caption,
            (x0 + cw / 2) as i32,
            (y0 + PAD) as i32,
            size,
            INK,
            true,
            HPos::Center,
        )?;
        let (dx, dy) = (x0 + PAD, y0 + PAD + CAPTION_H);
        for y in 0..t {
            for x in 0..t {
                let i = ((y / scale) * side + x / scale) as usize;
                img.put_pixel(
                    dx + x,
                    dy + y,
                    diverging_color(weights[i * units + j] / max),
                );
            }
        }
        draw::frame(&mut img, dx - 1, dy - 1, t + 2, t + 2, FRAME);
    }

    // Colour bar, as tall as the tile area, +max at the top.
    let grid_cols_used = grid_cols.min(columns.len()) as u32;
    let bx = MARGIN + grid_cols_used * cw + BAR_GAP;
    let by = top + PAD + CAPTION_H;
    let bh = h - by - MARGIN - PAD;
    for y in 0..bh {
        let v = 1.0 - 2.0 * y as f32 / (bh - 1).max(1) as f32;
        img.fill_rect(bx, by + y, BAR_W, 1, diverging_color(v));
    }
    draw::frame(&mut img, bx - 1, by - 1, BAR_W + 2, bh + 2, INK);
    let decimals = decimals_for(max);
    for k in 0..5 {
        let frac = k as f32 / 4.0;
        let v = max * (1.0 - 2.0 * frac);
        let y = by + (frac * (bh - 1) as f32).round() as u32;
        img.fill_rect(bx + BAR_W, y, 5, 1, INK);
        // Centre the label on the tick: text is drawn from its top, ~0.6 of the size above.
        draw::text(
            &mut img,
            &tick_label(v, decimals),
            (bx + BAR_W + 8) as i32,
            y as i32 - 8,
            14.0,
            INK,
            false,
            HPos::Left,
        )?;
    }
    draw::text(
        &mut img,
        "weight",
        (bx + BAR_W / 2) as i32,
        (by - CAPTION_H + 2) as i32,
        14.0,
        INK,
        false,
        HPos::Center,
    )?;
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_map_is_centred_and_symmetric() {
        assert_eq!(diverging_color(0.0), [247, 247, 247]);
        assert_eq!(diverging_color(1.0), [103, 0, 31]);
        assert_eq!(diverging_color(-1.0), [5, 48, 97]);
        assert_eq!(diverging_color(5.0), diverging_color(1.0));
        assert_eq!(diverging_color(f32::NAN), diverging_color(0.0));
        let (r, b) = (diverging_color(0.5), diverging_color(-0.5));
        assert!(r[0] > r[2] && b[2] > b[0], "{r:?} {b:?}");
    }

    #[test]
    fn tick_labels() {
        assert_eq!(tick_label(-0.4213, 2), "\u{2212}0.42");
        assert_eq!(tick_label(0.0, 2), "0.00");
        assert_eq!(tick_label(-0.0001, 2), "0.00");
        assert_eq!(decimals_for(0.42), 2);
        assert_eq!(decimals_for(0.0042), 4);
        assert_eq!(decimals_for(3.0), 2);
    }

    #[test]
    fn softmax_weights_make_a_2x5_grid_with_colours_in_place() {
        let (fan_in, units) = (784, 10);
        let mut w = vec![0f32; fan_in * units];
        w[3] = 0.5; // W[0, 3]: top-left pixel of column 3, the maximum
        w[units + 4] = -0.5; // W[1, 4]: pixel (1, 0) of column 4, the minimum
        let titles: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        let cols: Vec<usize> = (0..10).collect();
        let img = weights_grid(&w, fan_in, units, &cols, &titles, 5, None).unwrap();
        assert_eq!((img.width, img.height), weights_grid_size(10, 28, 5, false));
        assert_eq!(
            (img.width, img.height),
            (12 * 2 + 5 * 156 + 18 + 22 + 76, 12 * 2 + 2 * 182)
        );
        let cw = 28 * SCALE + 2 * PAD;
        let dy = MARGIN + PAD + CAPTION_H;
        let x3 = MARGIN + 3 * cw + PAD;
        assert_eq!(img.pixel(x3, dy), Some(diverging_color(1.0)));
        assert_eq!(img.pixel(x3 + SCALE, dy), Some(diverging_color(0.0)));
        let x4 = MARGIN + 4 * cw + PAD;
        assert_eq!(img.pixel(x4 + SCALE, dy), Some(diverging_color(-1.0)));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let t = vec!["a".to_string()];
        assert!(weights_grid(&[0.0; 20], 10, 2, &[0], &t, 1, None).is_err());
        assert!(weights_grid(&[0.0; 8], 4, 2, &[2], &t, 1, None).is_err());
        assert!(weights_grid(&[0.0; 8], 4, 2, &[0], &[], 1, None).is_err());
        assert!(weights_grid(&[0.0; 7], 4, 2, &[0], &t, 1, None).is_err());
        assert!(weights_grid(&[0.0; 8], 4, 2, &[0], &t, 1, None).is_ok());
    }
}
