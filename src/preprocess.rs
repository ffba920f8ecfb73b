//! Turning an arbitrary picture of a digit into a 28x28 MNIST-style image.
//!
//! MNIST was made by size-normalising each digit to fit a 20x20 box (keeping the aspect ratio,
//! with anti-aliasing, hence grey levels) and centring it in a 28x28 field by its centre of mass.
//! [`mnist_from_gray`] repeats that on any greyscale image:
//!
//! 1. decide the polarity from the border's mean: a light border means dark ink, which is
//!    inverted so that ink is bright on black, as in MNIST;
//! 2. subtract the background level (the border's median) and stretch so the darkest ink is 255,
//!    which makes pencil on grey paper look like MNIST's full-contrast strokes;
//! 3. crop to the bounding box of the ink (pixels at least [`INK_THRESHOLD`] of full ink);
//! 4. scale the longer side to 20 px by area averaging (each output pixel is the mean of the
//!    source area it covers);
//! 5. place the result in a 28x28 frame so that its centre of mass lands on pixel (14, 14)
//!    (row and column indices, the convention MNIST's own images follow: their mean centre of
//!    mass is (14.0, 14.0)), shifting by whole pixels and never cutting the digit.
//!
//! [`mnist_from_rgba`] does the same on 8-bit RGBA pixels (a browser canvas's), turning each
//! into grey with [`gray_from_rgba`]. With the `render` feature, [`mnist_from_png`] decodes any
//! PNG first (grey, RGB, palette, with or without alpha, 1 to 16 bits, interlaced or not);
//! colour becomes luma and transparency is composited over white, by the same arithmetic, so a
//! canvas saved as PNG gives `mnist_from_png` exactly what `mnist_from_rgba` gives the canvas.
//!
//! Everything but the PNG decoding uses `core` only and allocates nothing: the digit pad's
//! WebAssembly build (`web/wasm/`) and `softnet predict` run this very code.
//!
//! Output is row-major, 784 bytes, 0 = background, 255 = full ink, like the IDX files.
#![forbid(unsafe_code)]

/// Images with more pixels than this are refused before any pixel is decoded (2^26, about
/// 67 Mpixels: far beyond any photo of a digit, and it caps memory at a few hundred MB).
pub const MAX_PIXELS: u64 = 1 << 26;

/// Fraction of full ink (after background removal and stretching) a pixel needs to count
/// towards the bounding box. Keeps faint noise and JPEG-like halos from widening the crop.
pub const INK_THRESHOLD: f32 = 0.1;

/// Least contrast, out of 255, between the background and the darkest ink for an image to be
/// considered to contain anything at all.
const MIN_CONTRAST: f32 = 16.0;

/// Side of the output image.
pub const SIDE: usize = 28;

/// Side of the box the digit is scaled to fit.
pub const BOX: usize = 20;

/// Errors of turning a picture into an MNIST-style image.
///
/// `Display` is written by hand rather than derived: the grey path builds without `std`
/// (and so without `thiserror`) for the digit pad's WebAssembly module.
#[derive(Debug)]
pub enum PreprocessError {
    /// The bytes are not a PNG this decoder can read.
    #[cfg(feature = "render")]
    Decode(png::DecodingError),
    /// The image claims more than [`MAX_PIXELS`] pixels.
    TooLarge {
        /// Width claimed.
        width: u64,
        /// Height claimed.
        height: u64,
    },
    /// Width or height is zero, or the pixel buffer does not hold width x height pixels.
    BadDimensions {
        /// Width given.
        width: usize,
        /// Height given.
        height: usize,
        /// Length of the pixel buffer.
        len: usize,
    },
    /// Nothing stands out from the background: a blank or uniform image.
    Empty,
}

impl core::fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            #[cfg(feature = "render")]
            Self::Decode(e) => write!(f, "not a readable png: {e}"),
            Self::TooLarge { width, height } => write!(
                f,
                "image too large: {width}x{height} pixels (at most {MAX_PIXELS} allowed)"
            ),
            Self::BadDimensions { width, height, len } => write!(
                f,
                "bad image dimensions: {width}x{height} with {len} pixel bytes"
            ),
            Self::Empty => {
                f.write_str("no ink found: the image is blank or has too little contrast")
            }
        }
    }
}

impl core::error::Error for PreprocessError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            #[cfg(feature = "render")]
            Self::Decode(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "render")]
impl From<png::DecodingError> for PreprocessError {
    fn from(e: png::DecodingError) -> Self {
        Self::Decode(e)
    }
}

/// Decodes a PNG and converts it with [`mnist_from_gray`].
#[cfg(feature = "render")]
pub fn mnist_from_png(bytes: &[u8]) -> Result<[u8; SIDE * SIDE], PreprocessError> {
    let (width, height, gray) = decode_gray(bytes)?;
    mnist_from_gray(width, height, &gray)
}

/// Decodes any PNG to 8-bit grey (luma), alpha composited over white. Returns width, height and
/// the row-major pixels.
#[cfg(feature = "render")]
pub fn decode_gray(bytes: &[u8]) -> Result<(usize, usize, std::vec::Vec<u8>), PreprocessError> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // Palette and low bit depths to 8 bits, tRNS to alpha, 16 bits down to 8.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info()?;
    let (w, h) = reader.info().size();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(PreprocessError::TooLarge {
            width: w.into(),
            height: h.into(),
        });
    }
    let (color, depth) = reader.output_color_type();
    // Both follow from the header; a mismatch would be a decoder bug, not bad input, but it
    // costs nothing to refuse instead of panicking.
    let size = reader
        .output_buffer_size()
        .ok_or(PreprocessError::TooLarge {
            width: w.into(),
            height: h.into(),
        })?;
    let mut buf = std::vec![0u8; size];
    let info = reader.next_frame(&mut buf)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = color.samples();
    if depth != png::BitDepth::Eight || info.line_size == 0 || info.line_size < w * channels {
        return Err(PreprocessError::BadDimensions {
            width: w,
            height: h,
            len: buf.len(),
        });
    }
    let mut gray = std::vec::Vec::with_capacity(w * h);
    for row in buf.chunks(info.line_size).take(h) {
        for px in row[..w * channels].chunks_exact(channels) {
            gray.push(to_gray(color, px));
        }
    }
    if gray.len() != w * h {
        return Err(PreprocessError::BadDimensions {
            width: w,
            height: h,
            len: gray.len(),
        });
    }
    Ok((w, h, gray))
}

/// One pixel of an 8-bit decoded row to grey: Rec. 601 luma, alpha over white.
#[cfg(feature = "render")]
fn to_gray(color: png::ColorType, px: &[u8]) -> u8 {
    let v = match (color, px) {
        (png::ColorType::Grayscale, [g]) => f32::from(*g),
        (png::ColorType::GrayscaleAlpha, [g, a]) => over_white(f32::from(*g), *a),
        (png::ColorType::Rgb, [r, g, b]) => luma(*r, *g, *b),
        (png::ColorType::Rgba, [r, g, b, a]) => return gray_from_rgba(*r, *g, *b, *a),
        // Indexed is expanded to RGB(A) by the decoder; anything else cannot occur, and
        // white (background) is the harmless answer.
        _ => 255.0,
    };
    to_byte(v)
}

/// Rec. 601 luma of an 8-bit RGB colour, unrounded.
fn luma(r: u8, g: u8, b: u8) -> f32 {
    0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
}

/// A grey level seen through alpha `a` over a white background.
fn over_white(v: f32, a: u8) -> f32 {
    let a = f32::from(a) / 255.0;
    v * a + 255.0 * (1.0 - a)
}

/// Rounded to the nearest byte.
fn to_byte(v: f32) -> u8 {
    round_f32(v).clamp(0.0, 255.0) as u8
}

/// The grey level [`mnist_from_png`] gives an 8-bit RGBA pixel: Rec. 601 luma, composited over
/// white by its alpha, rounded.
pub fn gray_from_rgba(r: u8, g: u8, b: u8, a: u8) -> u8 {
    to_byte(over_white(luma(r, g, b), a))
}

/// Converts a greyscale image (row-major, `width * height` bytes, any polarity) to a 28x28
/// MNIST-style image: bright ink on black, the ink's bounding box scaled to fit 20x20, centred
/// by centre of mass. See the module docs for the steps.
pub fn mnist_from_gray(
    width: usize,
    height: usize,
    pixels: &[u8],
) -> Result<[u8; SIDE * SIDE], PreprocessError> {
    if width == 0 || height == 0 || width.checked_mul(height) != Some(pixels.len()) {
        return Err(PreprocessError::BadDimensions {
            width,
            height,
            len: pixels.len(),
        });
    }
    mnist_from_fn(width, height, |i| pixels[i])
}

/// [`mnist_from_gray`] for 8-bit RGBA pixels (row-major, `4 * width * height` bytes, e.g. a
/// canvas's `ImageData`), each turned into grey by [`gray_from_rgba`] as it is read.
pub fn mnist_from_rgba(
    width: usize,
    height: usize,
    rgba: &[u8],
) -> Result<[u8; SIDE * SIDE], PreprocessError> {
    let n = width.checked_mul(height);
    if width == 0 || height == 0 || n.and_then(|n| n.checked_mul(4)) != Some(rgba.len()) {
        return Err(PreprocessError::BadDimensions {
            width,
            height,
            len: rgba.len(),
        });
    }
    mnist_from_fn(width, height, |i| {
        let p = &rgba[4 * i..4 * i + 4];
        gray_from_rgba(p[0], p[1], p[2], p[3])
    })
}

/// The steps of the module docs on the grey image whose pixel `i` (row-major) is `gray(i)`;
/// `width * height` is checked by the caller. Reads each pixel a few times instead of keeping
/// copies, so it needs no memory beyond the 20x20 box.
fn mnist_from_fn(
    width: usize,
    height: usize,
    gray: impl Fn(usize) -> u8,
) -> Result<[u8; SIDE * SIDE], PreprocessError> {
    if (width as u64) * (height as u64) > MAX_PIXELS {
        return Err(PreprocessError::TooLarge {
            width: width as u64,
            height: height as u64,
        });
    }

    // 1. Polarity from the border's mean.
    let (mut sum, mut count) = (-0.0f32, 0usize);
    for_each_border(width, height, |i| {
        sum += f32::from(gray(i));
        count += 1;
    });
    let invert = sum / count as f32 > 127.5;
    let ink_of = |i: usize| if invert { 255 - gray(i) } else { gray(i) };

    // 2. Background level (border median, in ink space) and contrast stretch.
    let mut histogram = [0usize; 256];
    for_each_border(width, height, |i| histogram[usize::from(ink_of(i))] += 1);
    let bg = f32::from(nth_smallest(&histogram, count / 2));
    let peak = f32::from((0..width * height).map(ink_of).max().unwrap_or(0));
    if peak - bg < MIN_CONTRAST {
        return Err(PreprocessError::Empty);
    }
    let scale = 255.0 / (peak - bg);
    let ink =
        |x: usize, y: usize| ((f32::from(ink_of(y * width + x)) - bg) * scale).clamp(0.0, 255.0);

    // 3. Bounding box of the pixels with enough ink.
    let threshold = INK_THRESHOLD * 255.0;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in 0..height {
        for x in 0..width {
            if ink(x, y) >= threshold {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
    }
    if x0 == usize::MAX {
        return Err(PreprocessError::Empty);
    }
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);

    // 4. Longer side to 20 px, aspect ratio kept, by area averaging (separable box filter:
    // each output pixel sums its rows' horizontal sums, in the taps' order).
    let s = BOX as f32 / cw.max(ch) as f32;
    let ow = (round_f32(cw as f32 * s) as usize).clamp(1, BOX);
    let oh = (round_f32(ch as f32 * s) as usize).clamp(1, BOX);
    let mut small = [-0.0f32; BOX * BOX]; // [oh, ow]
    for j in 0..oh {
        for (iy, wy) in taps(ch, oh, j) {
            for x in 0..ow {
                let across =
                    taps(cw, ow, x).fold(-0.0f32, |acc, (ix, wx)| acc + ink(x0 + ix, y0 + iy) * wx);
                small[j * ow + x] += across * wy;
            }
        }
    }
    let small = &small[..oh * ow];

    // 5. Centre of mass to (14, 14), whole-pixel shift, digit kept inside the frame.
    let (mut m, mut mx, mut my) = (0f64, 0f64, 0f64);
    for (y, row) in small.chunks_exact(ow).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            m += f64::from(v);
            mx += f64::from(v) * x as f64;
            my += f64::from(v) * y as f64;
        }
    }
    if m <= 0.0 {
        return Err(PreprocessError::Empty);
    }
    let centre = (SIDE / 2) as f64;
    let place = |com: f64, len: usize| -> usize {
        let off = round_f64(centre - com);
        off.clamp(0.0, (SIDE - len) as f64) as usize
    };
    let (ox, oy) = (place(mx / m, ow), place(my / m, oh));
    let mut out = [0u8; SIDE * SIDE];
    for (y, row) in small.chunks_exact(ow).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            out[(oy + y) * SIDE + ox + x] = to_byte(v);
        }
    }
    Ok(out)
}

/// Calls `f` with the index of each pixel of the outer ring, each once: the top row, the
/// bottom row, then the left and right ends of the rows between.
fn for_each_border(width: usize, height: usize, mut f: impl FnMut(usize)) {
    (0..width).for_each(&mut f);
    if height > 1 {
        ((height - 1) * width..height * width).for_each(&mut f);
    }
    for y in 1..height.saturating_sub(1) {
        f(y * width);
        if width > 1 {
            f(y * width + width - 1);
        }
    }
}

/// The value at index `n` of the sorted values a histogram counts (`n` below their number).
fn nth_smallest(histogram: &[usize; 256], n: usize) -> u8 {
    let mut seen = 0;
    for (v, &c) in (0u8..=255).zip(histogram) {
        seen += c;
        if seen > n {
            return v;
        }
    }
    255
}

/// For resampling `n_in` samples to `n_out` by area averaging: the input samples output
/// sample `j` covers and their weights (overlap / output footprint; they sum to 1).
fn taps(n_in: usize, n_out: usize, j: usize) -> impl Iterator<Item = (usize, f32)> {
    let r = n_in as f64 / n_out as f64;
    let (a, b) = (j as f64 * r, (j + 1) as f64 * r);
    let first = floor_f64(a) as usize;
    let last = (ceil_f64(b) as usize).min(n_in);
    (first..last).filter_map(move |i| {
        let overlap = (b.min(i as f64 + 1.0) - a.max(i as f64)).max(0.0);
        (overlap > 0.0).then_some((i, (overlap / r) as f32))
    })
}

// `core` has no `round`, `floor` or `ceil` for floats (they are `std`'s, through libm): these
// give the same results (`rounding_matches_std` checks it) for the finite values used here.

/// `f32::round`: halfway cases away from zero.
fn round_f32(v: f32) -> f32 {
    // From 2^23 on every f32 is an integer.
    if v.is_nan() || v.abs() >= 8_388_608.0 {
        return v;
    }
    let t = v as i32 as f32; // truncated, exactly
    let d = v - t; // exact: a float's fraction needs no more bits than the float
    let r = if d >= 0.5 {
        t + 1.0
    } else if d <= -0.5 {
        t - 1.0
    } else {
        t
    };
    signed_zero_f32(r, v)
}

/// From 2^52 on every f64 is an integer.
const F64_INTEGRAL: f64 = 4_503_599_627_370_496.0;

/// `f64::round`: halfway cases away from zero.
fn round_f64(v: f64) -> f64 {
    if v.is_nan() || v.abs() >= F64_INTEGRAL {
        return v;
    }
    let t = v as i64 as f64;
    let d = v - t;
    let r = if d >= 0.5 {
        t + 1.0
    } else if d <= -0.5 {
        t - 1.0
    } else {
        t
    };
    signed_zero_f64(r, v)
}

/// `f64::floor`.
fn floor_f64(v: f64) -> f64 {
    if v.is_nan() || v.abs() >= F64_INTEGRAL {
        return v;
    }
    let t = v as i64 as f64;
    signed_zero_f64(if t > v { t - 1.0 } else { t }, v)
}

/// `f64::ceil`.
fn ceil_f64(v: f64) -> f64 {
    if v.is_nan() || v.abs() >= F64_INTEGRAL {
        return v;
    }
    let t = v as i64 as f64;
    signed_zero_f64(if t < v { t + 1.0 } else { t }, v)
}

/// A zero result takes the sign of the input, as std's rounding gives `-0.0` for `-0.3`.
fn signed_zero_f32(r: f32, v: f32) -> f32 {
    if r == 0.0 {
        v * 0.0
    } else {
        r
    }
}

/// [`signed_zero_f32`] for f64.
fn signed_zero_f64(r: f64, v: f64) -> f64 {
    if r == 0.0 {
        v * 0.0
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white canvas with black filled rectangles `(x, y, w, h)`.
    fn canvas(w: usize, h: usize, rects: &[(usize, usize, usize, usize)]) -> Vec<u8> {
        let mut p = vec![255u8; w * h];
        for &(rx, ry, rw, rh) in rects {
            for y in ry..ry + rh {
                for x in rx..rx + rw {
                    p[y * w + x] = 0;
                }
            }
        }
        p
    }

    #[cfg(feature = "render")]
    fn encode(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(color);
        e.set_depth(depth);
        let mut wr = e.write_header().unwrap();
        wr.write_image_data(data).unwrap();
        wr.finish().unwrap();
        out
    }

    /// Bounding box (x0, y0, x1, y1) inclusive of non-zero pixels, centre of mass (x, y).
    fn stats(img: &[u8; 784]) -> ((usize, usize, usize, usize), (f64, f64)) {
        let (mut x0, mut y0, mut x1, mut y1) = (28, 28, 0, 0);
        let (mut m, mut mx, mut my) = (0.0, 0.0, 0.0);
        for y in 0..28 {
            for x in 0..28 {
                let v = f64::from(img[y * 28 + x]);
                if v > 0.0 {
                    x0 = x0.min(x);
                    x1 = x1.max(x);
                    y0 = y0.min(y);
                    y1 = y1.max(y);
                }
                m += v;
                mx += v * x as f64;
                my += v * y as f64;
            }
        }
        ((x0, y0, x1, y1), (mx / m, my / m))
    }

    /// An "L": a tall bar and a foot, dark on light, off-centre on a 120x90 canvas.
    fn ell() -> (usize, usize, Vec<u8>) {
        (
            120,
            90,
            canvas(120, 90, &[(10, 10, 8, 60), (10, 62, 30, 8)]),
        )
    }

    #[test]
    fn dark_on_light_is_inverted_and_light_on_dark_is_not() {
        let (w, h, p) = ell();
        let a = mnist_from_gray(w, h, &p).unwrap();
        let inv: Vec<u8> = p.iter().map(|&v| 255 - v).collect();
        let b = mnist_from_gray(w, h, &inv).unwrap();
        assert_eq!(a, b, "polarity must not matter");
        // Corners are background (0), the bar is full ink.
        assert_eq!(a[0], 0);
        assert_eq!(a[783], 0);
        assert_eq!(*a.iter().max().unwrap(), 255);
    }

    #[test]
    fn a_thin_tall_stroke_is_20_px_tall_and_centred() {
        let p = canvas(200, 200, &[(97, 30, 6, 140)]);
        let img = mnist_from_gray(200, 200, &p).unwrap();
        let ((x0, y0, x1, y1), (cx, cy)) = stats(&img);
        assert_eq!(y1 - y0 + 1, 20);
        // 6/140 of 20 px is under one pixel: one column.
        assert_eq!(x1 - x0 + 1, 1);
        assert!(
            (cx - 14.0).abs() <= 1.0 && (cy - 14.0).abs() <= 1.0,
            "{cx} {cy}"
        );
    }

    #[test]
    fn a_wide_shape_gets_20_px_wide_keeping_its_aspect() {
        let p = canvas(300, 100, &[(20, 40, 200, 50)]);
        let img = mnist_from_gray(300, 100, &p).unwrap();
        let ((x0, y0, x1, y1), _) = stats(&img);
        assert_eq!(x1 - x0 + 1, 20);
        assert_eq!(y1 - y0 + 1, 5);
    }

    #[test]
    fn centre_of_mass_lands_within_a_pixel_of_14_14() {
        let (w, h, p) = ell();
        let img = mnist_from_gray(w, h, &p).unwrap();
        let (_, (cx, cy)) = stats(&img);
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "{cx} {cy}"
        );
        // The L's mass is left of its box centre, so the box sits right of the middle.
        let ((x0, _, x1, _), _) = stats(&img);
        assert!(x0 + x1 > 27, "{x0}..{x1}");
    }

    #[test]
    fn a_tiny_image_is_scaled_up() {
        // 1 px dot on 3x3 black: light ink on dark.
        let mut p = vec![0u8; 9];
        p[4] = 200;
        let img = mnist_from_gray(3, 3, &p).unwrap();
        let ((x0, y0, x1, y1), (cx, cy)) = stats(&img);
        assert_eq!((x1 - x0 + 1, y1 - y0 + 1), (20, 20));
        assert_eq!(img[14 * 28 + 14], 255);
        assert!((cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5);
    }

    #[test]
    fn taps_sum_to_one_and_cover_the_input() {
        for (n_in, n_out) in [(140, 20), (7, 20), (21, 20), (1, 1), (1, 20), (1000, 3)] {
            let mut cover = vec![0f64; n_in];
            for j in 0..n_out {
                let s: f32 = taps(n_in, n_out, j).map(|t| t.1).sum();
                assert!((s - 1.0).abs() < 1e-5, "{n_in}->{n_out}: {s}");
                for (i, wt) in taps(n_in, n_out, j) {
                    cover[i] += f64::from(wt);
                }
            }
            let ratio = n_out as f64 / n_in as f64;
            assert!(
                cover.iter().all(|c| (c - ratio).abs() < 1e-4),
                "{n_in}->{n_out}"
            );
        }
    }

    #[test]
    fn rounding_matches_std() {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s
        };
        let mut f32s = vec![
            0.0f32, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 0.49999997, 254.5, 255.49998,
        ];
        f32s.extend([
            8_388_607.5,
            8_388_608.0,
            -8_388_607.5,
            1e30,
            f32::INFINITY,
            f32::MIN_POSITIVE,
        ]);
        let mut f64s = vec![
            0.0f64,
            -0.0,
            0.5,
            -0.5,
            13.5,
            -13.5,
            0.49999999999999994,
            1e300,
        ];
        f64s.extend([
            4_503_599_627_370_495.5,
            -4_503_599_627_370_495.5,
            f64::NEG_INFINITY,
        ]);
        for _ in 0..100_000 {
            let r = next();
            // Values of every magnitude, and grey levels with fractions.
            f32s.push(f32::from_bits(r as u32));
            f32s.push((r >> 40) as f32 / 65536.0);
            f64s.push(f64::from_bits(r));
            f64s.push((r >> 20) as f64 / 4096.0 - 1e8);
        }
        for v in f32s
            .into_iter()
            .filter(|v| v.is_finite() || v.is_infinite())
        {
            assert_eq!(round_f32(v).to_bits(), v.round().to_bits(), "round({v:e})");
        }
        for v in f64s.into_iter().filter(|v| !v.is_nan()) {
            assert_eq!(round_f64(v).to_bits(), v.round().to_bits(), "round({v:e})");
            assert_eq!(floor_f64(v).to_bits(), v.floor().to_bits(), "floor({v:e})");
            assert_eq!(ceil_f64(v).to_bits(), v.ceil().to_bits(), "ceil({v:e})");
        }
    }

    #[test]
    fn rgba_gives_what_its_grey_gives() {
        let (w, h, p) = ell();
        let want = mnist_from_gray(w, h, &p).unwrap();
        // Opaque grey, and black ink of alpha 255 on a transparent (any colour) background.
        let opaque: Vec<u8> = p.iter().flat_map(|&v| [v, v, v, 255]).collect();
        assert_eq!(mnist_from_rgba(w, h, &opaque).unwrap(), want);
        let clear: Vec<u8> = p
            .iter()
            .flat_map(|&v| {
                if v == 0 {
                    [0, 0, 0, 255]
                } else {
                    [9, 200, 3, 0]
                }
            })
            .collect();
        assert_eq!(mnist_from_rgba(w, h, &clear).unwrap(), want);
        // Grey levels: each pixel is what gray_from_rgba makes of it.
        let mut s = 7u32;
        let rgba: Vec<u8> = (0..w * h * 4)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 24) as u8
            })
            .collect();
        let grey: Vec<u8> = rgba
            .chunks_exact(4)
            .map(|q| gray_from_rgba(q[0], q[1], q[2], q[3]))
            .collect();
        let a = mnist_from_rgba(w, h, &rgba).map_err(|e| e.to_string());
        let b = mnist_from_gray(w, h, &grey).map_err(|e| e.to_string());
        assert_eq!(a, b);
        assert!(matches!(
            mnist_from_rgba(w, h, &opaque[1..]),
            Err(PreprocessError::BadDimensions { .. })
        ));
        assert!(matches!(
            mnist_from_rgba(usize::MAX, 2, &[0; 8]),
            Err(PreprocessError::BadDimensions { .. })
        ));
    }

    #[test]
    fn blank_and_low_contrast_images_are_empty() {
        assert!(matches!(
            mnist_from_gray(10, 10, &[255; 100]),
            Err(PreprocessError::Empty)
        ));
        assert!(matches!(
            mnist_from_gray(10, 10, &[0; 100]),
            Err(PreprocessError::Empty)
        ));
        let mut p = vec![200u8; 100];
        p[55] = 190;
        assert!(matches!(
            mnist_from_gray(10, 10, &p),
            Err(PreprocessError::Empty)
        ));
        assert!(matches!(
            mnist_from_gray(1, 1, &[0]),
            Err(PreprocessError::Empty)
        ));
    }

    #[test]
    fn bad_dimensions_are_errors() {
        assert!(matches!(
            mnist_from_gray(0, 5, &[]),
            Err(PreprocessError::BadDimensions { .. })
        ));
        assert!(matches!(
            mnist_from_gray(4, 4, &[0; 15]),
            Err(PreprocessError::BadDimensions {
                width: 4,
                height: 4,
                len: 15
            })
        ));
        assert!(matches!(
            mnist_from_gray(usize::MAX, 2, &[0; 4]),
            Err(PreprocessError::BadDimensions { .. })
        ));
    }

    #[cfg(feature = "render")]
    #[test]
    fn grey_rgb_rgba_palette_and_16_bit_pngs_agree() {
        let (w, h, p) = ell();
        let want = mnist_from_gray(w, h, &p).unwrap();
        let (w32, h32) = (w as u32, h as u32);
        use png::{BitDepth as D, ColorType as C};
        let gray = encode(w32, h32, C::Grayscale, D::Eight, &p);
        let rgb: Vec<u8> = p.iter().flat_map(|&v| [v, v, v]).collect();
        let rgb = encode(w32, h32, C::Rgb, D::Eight, &rgb);
        let rgba: Vec<u8> = p.iter().flat_map(|&v| [v, v, v, 255]).collect();
        let rgba = encode(w32, h32, C::Rgba, D::Eight, &rgba);
        // Transparent background (any colour under it) composites to white.
        let ga: Vec<u8> = p
            .iter()
            .flat_map(|&v| if v == 0 { [0, 255] } else { [0, 0] })
            .collect();
        let ga = encode(w32, h32, C::GrayscaleAlpha, D::Eight, &ga);
        let g16: Vec<u8> = p.iter().flat_map(|&v| [v, v]).collect();
        let g16 = encode(w32, h32, C::Grayscale, D::Sixteen, &g16);
        let rgb16: Vec<u8> = p
            .iter()
            .flat_map(|&v| [v, 0x12, v, 0x34, v, 0x56])
            .collect();
        let rgb16 = encode(w32, h32, C::Rgb, D::Sixteen, &rgb16);
        let bits: Vec<u8> = p
            .chunks(w)
            .flat_map(|row| {
                row.chunks(8).map(|c| {
                    c.iter()
                        .enumerate()
                        .fold(0u8, |acc, (i, &v)| acc | (u8::from(v > 127) << (7 - i)))
                })
            })
            .collect();
        let one_bit = encode(w32, h32, C::Grayscale, D::One, &bits);
        let pal = {
            let mut out = Vec::new();
            let mut e = png::Encoder::new(&mut out, w32, h32);
            e.set_color(C::Indexed);
            e.set_depth(D::Eight);
            e.set_palette(vec![0, 0, 0, 255, 255, 255]);
            let mut wr = e.write_header().unwrap();
            let idx: Vec<u8> = p.iter().map(|&v| u8::from(v > 127)).collect();
            wr.write_image_data(&idx).unwrap();
            wr.finish().unwrap();
            out
        };
        for (name, bytes) in [
            ("gray", gray),
            ("rgb", rgb),
            ("rgba", rgba),
            ("gray+alpha", ga),
            ("gray16", g16),
            ("rgb16", rgb16),
            ("1-bit", one_bit),
            ("palette", pal),
        ] {
            assert_eq!(mnist_from_png(&bytes).unwrap(), want, "{name}");
        }
    }

    #[cfg(feature = "render")]
    #[test]
    fn coloured_ink_uses_luma() {
        // Pure blue ink (luma 29) on white.
        let (w, h, p) = ell();
        let rgb: Vec<u8> = p
            .iter()
            .flat_map(|&v| if v == 0 { [0, 0, 255] } else { [255, 255, 255] })
            .collect();
        let png = encode(
            w as u32,
            h as u32,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &rgb,
        );
        // After the contrast stretch blue ink is as full as black ink.
        assert_eq!(
            mnist_from_png(&png).unwrap(),
            mnist_from_gray(w, h, &p).unwrap()
        );
    }

    #[cfg(feature = "render")]
    #[test]
    fn one_pixel_pngs_are_empty_not_a_panic() {
        let png = encode(1, 1, png::ColorType::Grayscale, png::BitDepth::Eight, &[0]);
        assert!(matches!(mnist_from_png(&png), Err(PreprocessError::Empty)));
    }

    #[cfg(feature = "render")]
    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[cfg(feature = "render")]
    #[test]
    fn a_header_claiming_huge_dimensions_is_refused() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(100_000u32.to_be_bytes());
        ihdr.extend(100_000u32.to_be_bytes());
        ihdr.extend([8, 0, 0, 0, 0]);
        png.extend(13u32.to_be_bytes());
        png.extend(&ihdr);
        png.extend(crc32(&ihdr).to_be_bytes());
        // The decoder reads the header up to the first image data chunk: give it one (empty).
        png.extend(0u32.to_be_bytes());
        png.extend(b"IDAT");
        png.extend(crc32(b"IDAT").to_be_bytes());
        let err = mnist_from_png(&png).unwrap_err();
        assert!(
            matches!(
                err,
                PreprocessError::TooLarge {
                    width: 100_000,
                    height: 100_000
                }
            ),
            "{err}"
        );
    }

    #[cfg(feature = "render")]
    #[test]
    fn garbage_and_truncated_bytes_are_errors() {
        assert!(matches!(
            mnist_from_png(b""),
            Err(PreprocessError::Decode(_))
        ));
        assert!(matches!(
            mnist_from_png(b"hello, world"),
            Err(PreprocessError::Decode(_))
        ));
        let (w, h, p) = ell();
        let png = encode(
            w as u32,
            h as u32,
            png::ColorType::Grayscale,
            png::BitDepth::Eight,
            &p,
        );
        for cut in [8, 20, 33, png.len() / 2, png.len() - 13] {
            assert!(mnist_from_png(&png[..cut]).is_err(), "cut at {cut}");
        }
        let err = mnist_from_png(b"GIF89a").unwrap_err().to_string();
        assert!(err.starts_with("not a readable png: "), "{err}");
    }

    #[cfg(feature = "render")]
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
            let _ = mnist_from_png(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_pngs(flips in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 1..8)) {
            let p = canvas(20, 20, &[(5, 3, 4, 12)]);
            let mut png = encode(20, 20, png::ColorType::Grayscale, png::BitDepth::Eight, &p);
            for (i, b) in flips {
                let n = png.len();
                png[i % n] ^= b;
            }
            let _ = mnist_from_png(&png);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn any_gray_image_gives_a_result_or_a_typed_error(w in 1usize..40, h in 1usize..40, seed in proptest::prelude::any::<u64>()) {
            let mut s = seed;
            let p: Vec<u8> = (0..w * h).map(|_| { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (s >> 56) as u8 }).collect();
            match mnist_from_gray(w, h, &p) {
                Ok(img) => proptest::prop_assert!(img.iter().any(|&v| v > 0)),
                Err(PreprocessError::Empty) => {}
                Err(e) => proptest::prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
