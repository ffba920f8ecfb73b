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
//! [`mnist_from_png`] decodes any PNG first (grey, RGB, palette, with or without alpha, 1 to 16
//! bits, interlaced or not); colour becomes luma and transparency is composited over white.
//!
//! Output is row-major, 784 bytes, 0 = background, 255 = full ink, like the IDX files.
#![forbid(unsafe_code)]

use std::io::Cursor;

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
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The bytes are not a PNG this decoder can read.
    #[error("not a readable png: {0}")]
    Decode(#[from] png::DecodingError),
    /// The image claims more than [`MAX_PIXELS`] pixels.
    #[error("image too large: {width}x{height} pixels (at most {MAX_PIXELS} allowed)")]
    TooLarge {
        /// Width claimed.
        width: u64,
        /// Height claimed.
        height: u64,
    },
    /// Width or height is zero, or the pixel buffer does not hold width x height bytes.
    #[error("bad image dimensions: {width}x{height} with {len} pixel bytes")]
    BadDimensions {
        /// Width given.
        width: usize,
        /// Height given.
        height: usize,
        /// Length of the pixel buffer.
        len: usize,
    },
    /// Nothing stands out from the background: a blank or uniform image.
    #[error("no ink found: the image is blank or has too little contrast")]
    Empty,
}

/// Decodes a PNG and converts it with [`mnist_from_gray`].
pub fn mnist_from_png(bytes: &[u8]) -> Result<[u8; SIDE * SIDE], PreprocessError> {
    let (width, height, gray) = decode_gray(bytes)?;
    mnist_from_gray(width, height, &gray)
}

/// Decodes any PNG to 8-bit grey (luma), alpha composited over white. Returns width, height and
/// the row-major pixels.
pub fn decode_gray(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), PreprocessError> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
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
    let mut buf = vec![0u8; size];
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
    let mut gray = Vec::with_capacity(w * h);
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
fn to_gray(color: png::ColorType, px: &[u8]) -> u8 {
    let luma =
        |r: u8, g: u8, b: u8| 0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b);
    let over_white = |v: f32, a: u8| {
        let a = f32::from(a) / 255.0;
        v * a + 255.0 * (1.0 - a)
    };
    let v = match (color, px) {
        (png::ColorType::Grayscale, [g]) => f32::from(*g),
        (png::ColorType::GrayscaleAlpha, [g, a]) => over_white(f32::from(*g), *a),
        (png::ColorType::Rgb, [r, g, b]) => luma(*r, *g, *b),
        (png::ColorType::Rgba, [r, g, b, a]) => over_white(luma(*r, *g, *b), *a),
        // Indexed is expanded to RGB(A) by the decoder; anything else cannot occur, and
        // white (background) is the harmless answer.
        _ => 255.0,
    };
    v.round().clamp(0.0, 255.0) as u8
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
    if (width as u64) * (height as u64) > MAX_PIXELS {
        return Err(PreprocessError::TooLarge {
            width: width as u64,
            height: height as u64,
        });
    }

    // 1. Polarity from the border's mean.
    let border = border_pixels(width, height, pixels);
    let mean = border.iter().map(|&v| f32::from(v)).sum::<f32>() / border.len() as f32;
    let invert = mean > 127.5;
    let ink_of = |v: u8| if invert { 255 - v } else { v };

    // 2. Background level (border median, in ink space) and contrast stretch.
    let mut border_ink: Vec<u8> = border.iter().map(|&v| ink_of(v)).collect();
    border_ink.sort_unstable();
    let bg = f32::from(border_ink[border_ink.len() / 2]);
    let peak = f32::from(pixels.iter().map(|&v| ink_of(v)).max().unwrap_or(0));
    if peak - bg < MIN_CONTRAST {
        return Err(PreprocessError::Empty);
    }
    let scale = 255.0 / (peak - bg);
    let ink: Vec<f32> = pixels
        .iter()
        .map(|&v| ((f32::from(ink_of(v)) - bg) * scale).clamp(0.0, 255.0))
        .collect();

    // 3. Bounding box of the pixels with enough ink.
    let threshold = INK_THRESHOLD * 255.0;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (y, row) in ink.chunks_exact(width).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            if v >= threshold {
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

    // 4. Longer side to 20 px, aspect ratio kept, by area averaging (separable box filter).
    let s = BOX as f32 / cw.max(ch) as f32;
    let ow = ((cw as f32 * s).round() as usize).clamp(1, BOX);
    let oh = ((ch as f32 * s).round() as usize).clamp(1, BOX);
    let wx = area_weights(cw, ow);
    let wy = area_weights(ch, oh);
    // Horizontal pass: ch rows of ow.
    let mut tmp = vec![0f32; ch * ow];
    for y in 0..ch {
        let src = &ink[(y0 + y) * width + x0..][..cw];
        for (j, taps) in wx.iter().enumerate() {
            tmp[y * ow + j] = taps.iter().map(|&(i, w)| src[i] * w).sum();
        }
    }
    // Vertical pass: oh rows of ow.
    let mut small = vec![0f32; oh * ow];
    for (j, taps) in wy.iter().enumerate() {
        for x in 0..ow {
            small[j * ow + x] = taps.iter().map(|&(i, w)| tmp[i * ow + x] * w).sum();
        }
    }

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
        let off = (centre - com).round();
        off.clamp(0.0, (SIDE - len) as f64) as usize
    };
    let (ox, oy) = (place(mx / m, ow), place(my / m, oh));
    let mut out = [0u8; SIDE * SIDE];
    for (y, row) in small.chunks_exact(ow).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            out[(oy + y) * SIDE + ox + x] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(out)
}

/// The outer ring of pixels (each once).
fn border_pixels(width: usize, height: usize, p: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(2 * (width + height));
    b.extend_from_slice(&p[..width]);
    if height > 1 {
        b.extend_from_slice(&p[(height - 1) * width..]);
    }
    for y in 1..height.saturating_sub(1) {
        b.push(p[y * width]);
        if width > 1 {
            b.push(p[y * width + width - 1]);
        }
    }
    b
}

/// For resampling `n_in` samples to `n_out` by area averaging: for each output sample, the
/// input samples it covers and their weights (overlap / output footprint; they sum to 1).
fn area_weights(n_in: usize, n_out: usize) -> Vec<Vec<(usize, f32)>> {
    let r = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|j| {
            let (a, b) = (j as f64 * r, (j + 1) as f64 * r);
            let first = a.floor() as usize;
            let last = (b.ceil() as usize).min(n_in);
            (first..last)
                .filter_map(|i| {
                    let overlap = (b.min(i as f64 + 1.0) - a.max(i as f64)).max(0.0);
                    (overlap > 0.0).then_some((i, (overlap / r) as f32))
                })
                .collect()
        })
        .collect()
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
    fn area_weights_sum_to_one_and_cover_the_input() {
        for (n_in, n_out) in [(140, 20), (7, 20), (21, 20), (1, 1), (1, 20), (1000, 3)] {
            let w = area_weights(n_in, n_out);
            assert_eq!(w.len(), n_out);
            let mut cover = vec![0f64; n_in];
            for taps in &w {
                let s: f32 = taps.iter().map(|t| t.1).sum();
                assert!((s - 1.0).abs() < 1e-5, "{n_in}->{n_out}: {s}");
                for &(i, wt) in taps {
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

    #[test]
    fn one_pixel_pngs_are_empty_not_a_panic() {
        let png = encode(1, 1, png::ColorType::Grayscale, png::BitDepth::Eight, &[0]);
        assert!(matches!(mnist_from_png(&png), Err(PreprocessError::Empty)));
    }

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
