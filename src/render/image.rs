//! In-memory images and their PNG encoding.

use std::path::Path;

use super::RenderError;

/// An 8-bit RGB image, row-major: `data` is `[height, width, 3]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, rows top to bottom, pixels left to right, R G B.
    pub data: Vec<u8>,
}

/// An 8-bit grayscale image, row-major: `data` is `[height, width]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height` bytes, rows top to bottom.
    pub data: Vec<u8>,
}

fn encode(
    width: u32,
    height: u32,
    color: png::ColorType,
    data: &[u8],
) -> Result<Vec<u8>, RenderError> {
    let err = |e: png::EncodingError| RenderError::Encode {
        width,
        height,
        message: e.to_string(),
    };
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    // Pictures are small and mostly flat colour: the best compression costs milliseconds and
    // keeps the HTML report (which embeds them as base64) small.
    enc.set_compression(png::Compression::High);
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(data).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

fn save(path: &Path, bytes: &[u8]) -> Result<(), RenderError> {
    std::fs::write(path, bytes).map_err(|source| RenderError::Write {
        path: path.to_path_buf(),
        source,
    })
}

impl RgbImage {
    /// A `width x height` image filled with `color`.
    pub fn new(width: u32, height: u32, color: [u8; 3]) -> Self {
        let n = width as usize * height as usize;
        let mut data = Vec::with_capacity(n * 3);
        for _ in 0..n {
            data.extend_from_slice(&color);
        }
        RgbImage {
            width,
            height,
            data,
        }
    }

    /// The pixel at column `x`, row `y`; `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.data.get(i..i + 3).map(|p| [p[0], p[1], p[2]])
    }

    /// Sets the pixel at column `x`, row `y`; pixels outside the image are ignored.
    pub fn put_pixel(&mut self, x: u32, y: u32, color: [u8; 3]) {
        if x >= self.width || y >= self.height {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        if let Some(p) = self.data.get_mut(i..i + 3) {
            p.copy_from_slice(&color);
        }
    }

    /// Fills the rectangle with top-left corner `(x, y)` and size `w x h` (clipped to the image).
    pub fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, color: [u8; 3]) {
        for yy in y..y.saturating_add(h).min(self.height) {
            for xx in x..x.saturating_add(w).min(self.width) {
                self.put_pixel(xx, yy, color);
            }
        }
    }

    /// Encodes the image as PNG.
    pub fn encode_png(&self) -> Result<Vec<u8>, RenderError> {
        self.check()?;
        encode(self.width, self.height, png::ColorType::Rgb, &self.data)
    }

    /// Encodes the image as PNG and writes it to `path`.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<(), RenderError> {
        save(path.as_ref(), &self.encode_png()?)
    }

    fn check(&self) -> Result<(), RenderError> {
        let want = self.width as usize * self.height as usize * 3;
        if self.data.len() != want {
            return Err(RenderError::Input(format!(
                "rgb image {}x{} has {} bytes, expected {want}",
                self.width,
                self.height,
                self.data.len()
            )));
        }
        Ok(())
    }
}

impl GrayImage {
    /// A gray image from MNIST-style pixels (`[height, width]`, 0 = background), shown as the
    /// tutorial does: dark ink on white, upscaled by `scale` with square pixels.
    pub fn from_pixels(
        pixels: &[u8],
        width: u32,
        height: u32,
        scale: u32,
    ) -> Result<Self, RenderError> {
        if pixels.len() != width as usize * height as usize || scale == 0 {
            return Err(RenderError::Input(format!(
                "gray image {width}x{height} (scale {scale}) from {} pixels",
                pixels.len()
            )));
        }
        let (w, h) = (width * scale, height * scale);
        let mut data = Vec::with_capacity(w as usize * h as usize);
        for y in 0..h {
            for x in 0..w {
                let v = pixels[(y / scale) as usize * width as usize + (x / scale) as usize];
                data.push(255 - v);
            }
        }
        Ok(GrayImage {
            width: w,
            height: h,
            data,
        })
    }

    /// Encodes the image as PNG.
    pub fn encode_png(&self) -> Result<Vec<u8>, RenderError> {
        if self.data.len() != self.width as usize * self.height as usize {
            return Err(RenderError::Input(format!(
                "gray image {}x{} has {} bytes",
                self.width,
                self.height,
                self.data.len()
            )));
        }
        encode(
            self.width,
            self.height,
            png::ColorType::Grayscale,
            &self.data,
        )
    }

    /// Encodes the image as PNG and writes it to `path`.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<(), RenderError> {
        save(path.as_ref(), &self.encode_png()?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes a PNG into (width, height, color type, pixels): the oracle for the encoders.
    pub(crate) fn decode(bytes: &[u8]) -> (u32, u32, png::ColorType, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, info.color_type, buf)
    }

    #[test]
    fn rgb_round_trips_through_png() {
        let mut img = RgbImage::new(3, 2, [10, 20, 30]);
        img.put_pixel(2, 1, [255, 0, 7]);
        img.put_pixel(5, 5, [1, 1, 1]); // outside: ignored
        assert_eq!(img.pixel(2, 1), Some([255, 0, 7]));
        assert_eq!(img.pixel(3, 0), None);
        let (w, h, c, data) = decode(&img.encode_png().unwrap());
        assert_eq!((w, h, c), (3, 2, png::ColorType::Rgb));
        assert_eq!(data, img.data);
    }

    #[test]
    fn gray_is_inverted_and_upscaled() {
        let img = GrayImage::from_pixels(&[0, 255, 128, 10], 2, 2, 3).unwrap();
        assert_eq!((img.width, img.height), (6, 6));
        assert_eq!(&img.data[..6], &[255, 255, 255, 0, 0, 0]);
        assert_eq!(img.data[6 * 5 + 5], 245);
        let (w, h, c, data) = decode(&img.encode_png().unwrap());
        assert_eq!((w, h, c), (6, 6, png::ColorType::Grayscale));
        assert_eq!(data, img.data);
        assert!(GrayImage::from_pixels(&[0; 3], 2, 2, 1).is_err());
    }

    #[test]
    fn bad_sizes_are_errors_naming_the_problem() {
        let img = RgbImage {
            width: 2,
            height: 2,
            data: vec![0; 5],
        };
        assert!(img
            .encode_png()
            .unwrap_err()
            .to_string()
            .contains("2x2 has 5 bytes"));
        let empty = RgbImage::new(0, 0, [0; 3]);
        assert!(empty.encode_png().is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/dir/x.png");
        let e = RgbImage::new(1, 1, [0; 3]).save_png(&path).unwrap_err();
        assert!(e.to_string().contains("missing/dir/x.png"), "{e}");
    }
}
