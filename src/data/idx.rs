//! The IDX container format of the MNIST files, parsed from bytes without panicking.
//!
//! An IDX file is a big-endian header `0x00 0x00 <type> <rank>` followed by `rank` u32
//! dimensions and the data. softnet reads only unsigned-byte files (type 0x08): images of
//! rank 3 (magic 0x00000803) and labels of rank 1 (magic 0x00000801).

use crate::error::IdxErrorKind;

/// Magic number of an unsigned-byte rank-3 IDX file (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an unsigned-byte rank-1 IDX file (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The first two bytes of every gzip stream.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Largest inflated file accepted, 1 GiB: a gzip bomb (a few MB that inflate to many GB)
/// fails with [`IdxErrorKind::TooLarge`] instead of exhausting memory. MNIST's biggest file
/// is 47 MB inflated; even EMNIST's largest (550 MB) fits.
pub const MAX_INFLATED_BYTES: u64 = 1 << 30;

/// Images of an IDX file, borrowed: `count` images of `rows x cols` u8 pixels, row-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdxImages<'a> {
    /// Number of images.
    pub count: usize,
    /// Rows of each image.
    pub rows: usize,
    /// Columns of each image.
    pub cols: usize,
    /// `count * rows * cols` pixels, image after image.
    pub pixels: &'a [u8],
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

/// Checks the magic number and the length against `rank` dimensions; returns the dimensions
/// and the data that follows the header.
fn parse_header(bytes: &[u8], magic: u32, rank: usize) -> Result<(Vec<u32>, &[u8]), IdxErrorKind> {
    if bytes.is_empty() {
        return Err(IdxErrorKind::Empty);
    }
    let header_len = 4 + 4 * rank;
    let found = read_u32(bytes, 0).ok_or(IdxErrorKind::Truncated {
        expected: header_len as u64,
        found: bytes.len() as u64,
    })?;
    if found != magic {
        return Err(IdxErrorKind::BadMagic {
            found,
            expected: magic,
        });
    }
    if bytes.len() < header_len {
        return Err(IdxErrorKind::Truncated {
            expected: header_len as u64,
            found: bytes.len() as u64,
        });
    }
    let dims: Vec<u32> = (0..rank)
        .filter_map(|i| read_u32(bytes, 4 + 4 * i))
        .collect();
    // u64 cannot overflow for three u32 factors below 2^21 each, but a hostile header can
    // exceed that, so multiply checked.
    let data_len = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)))
        .ok_or_else(|| IdxErrorKind::DimensionsTooLarge { dims: dims.clone() })?;
    let data = &bytes[header_len..];
    let found = data.len() as u64;
    if found < data_len {
        return Err(IdxErrorKind::Truncated {
            expected: header_len as u64 + data_len,
            found: bytes.len() as u64,
        });
    }
    if found > data_len {
        return Err(IdxErrorKind::TrailingBytes {
            extra: found - data_len,
        });
    }
    Ok((dims, data))
}

/// Parses an images file (magic 0x00000803). Never panics; borrows the pixels.
///
/// ```
/// use softnet::data::idx::parse_images;
/// let mut file = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2];
/// file.extend_from_slice(&[0, 64, 128, 255]);
/// let images = parse_images(&file).unwrap();
/// assert_eq!((images.count, images.rows, images.cols), (1, 2, 2));
/// assert_eq!(images.pixels, &[0, 64, 128, 255]);
/// ```
pub fn parse_images(bytes: &[u8]) -> Result<IdxImages<'_>, IdxErrorKind> {
    let (dims, pixels) = parse_header(bytes, IMAGES_MAGIC, 3)?;
    Ok(IdxImages {
        count: dims[0] as usize,
        rows: dims[1] as usize,
        cols: dims[2] as usize,
        pixels,
    })
}

/// Parses a labels file (magic 0x00000801), checking every label is below `classes`.
pub fn parse_labels(bytes: &[u8], classes: usize) -> Result<&[u8], IdxErrorKind> {
    let (_, labels) = parse_header(bytes, LABELS_MAGIC, 1)?;
    if let Some((index, value)) = super::first_label_out_of_range(labels, classes) {
        return Err(IdxErrorKind::LabelOutOfRange {
            index,
            value,
            classes,
        });
    }
    Ok(labels)
}

/// Length of an images file's header: the magic number and three dimensions.
pub const IMAGES_HEADER_LEN: usize = 16;

/// The dimensions `[count, rows, cols]` in the first [`IMAGES_HEADER_LEN`] bytes of an
/// images file, if they are an images header whose data fits in [`MAX_INFLATED_BYTES`].
/// Says nothing of the data that follows; [`parse_images`] checks that.
pub fn images_header(prefix: &[u8]) -> Option<[usize; 3]> {
    if read_u32(prefix, 0)? != IMAGES_MAGIC {
        return None;
    }
    let dims = [
        read_u32(prefix, 4)?,
        read_u32(prefix, 8)?,
        read_u32(prefix, 12)?,
    ];
    let data_len = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)))?;
    if data_len > MAX_INFLATED_BYTES - IMAGES_HEADER_LEN as u64 {
        return None;
    }
    Some(dims.map(|d| d as usize))
}

/// Inflates gzip'd images whose header (checked by the caller) promises exactly
/// `pixels.len()` pixels: the header is skipped, `pixels` filled in order and each piece of
/// `piece_len` bytes handed to `arrived` as soon as it is whole. True when the stream held
/// exactly those bytes; false on any error, early end or trailing data (where
/// [`decompress_if_gzip`] and [`parse_images`] give the precise error).
#[cfg(feature = "gz")]
pub fn inflate_images_in_pieces<'a>(
    gz: &[u8],
    pixels: &'a mut [u8],
    piece_len: usize,
    mut arrived: impl FnMut(&'a [u8]),
) -> bool {
    use std::io::Read;
    let mut decoder = flate2::read::MultiGzDecoder::new(gz);
    if decoder.read_exact(&mut [0u8; IMAGES_HEADER_LEN]).is_err() {
        return false;
    }
    // Called with `pixels` itself (not a reborrow), so the pieces live as long as it does.
    for piece in <[u8]>::chunks_mut(pixels, piece_len.max(1)) {
        if decoder.read_exact(piece).is_err() {
            return false;
        }
        arrived(piece);
    }
    matches!(decoder.read(&mut [0u8; 1]), Ok(0))
}

/// Without the `gz` feature nothing inflates.
#[cfg(not(feature = "gz"))]
pub fn inflate_images_in_pieces<'a>(
    _gz: &[u8],
    _pixels: &'a mut [u8],
    _piece_len: usize,
    _arrived: impl FnMut(&'a [u8]),
) -> bool {
    false
}

/// The first `len` inflated bytes of a gzip stream, if it has that many.
#[cfg(feature = "gz")]
pub fn decompress_prefix(gz: &[u8], len: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut prefix = vec![0u8; len];
    flate2::read::MultiGzDecoder::new(gz)
        .read_exact(&mut prefix)
        .ok()?;
    Some(prefix)
}

/// Without the `gz` feature nothing inflates.
#[cfg(not(feature = "gz"))]
pub fn decompress_prefix(_gz: &[u8], _len: usize) -> Option<Vec<u8>> {
    None
}

/// Returns the file's contents, inflated if it starts with the gzip magic (whatever its name).
///
/// The output grows with the data actually inflated: a header that claims a huge size
/// allocates nothing up front.
/// At most [`MAX_INFLATED_BYTES`] are inflated.
pub fn decompress_if_gzip(bytes: Vec<u8>) -> Result<Vec<u8>, IdxErrorKind> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    inflate_gzip(&bytes)
}

/// Inflates gzip'd bytes (every member), at most [`MAX_INFLATED_BYTES`] of them.
pub fn inflate_gzip(gz: &[u8]) -> Result<Vec<u8>, IdxErrorKind> {
    inflate(gz, MAX_INFLATED_BYTES)
}

#[cfg(feature = "gz")]
fn inflate(gz: &[u8], limit: u64) -> Result<Vec<u8>, IdxErrorKind> {
    use std::io::Read;
    // The gzip trailer stores the inflated size mod 2^32: a hint for the capacity, capped by
    // a generous ratio to the compressed size so a forged trailer cannot force an allocation.
    let hinted = gz
        .len()
        .checked_sub(4)
        .and_then(|at| gz.get(at..))
        .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize)
        .unwrap_or(0);
    let mut out = super::buffer::large_buffer(hinted.min(gz.len().saturating_mul(16)));
    flate2::read::MultiGzDecoder::new(gz)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| IdxErrorKind::Gzip(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(IdxErrorKind::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(not(feature = "gz"))]
fn inflate(_gz: &[u8], _limit: u64) -> Result<Vec<u8>, IdxErrorKind> {
    Err(IdxErrorKind::GzipUnsupported)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gzip bomb: 8 MiB of zeros compress to ~8 KB; past the limit inflation stops with an
    /// error having allocated about the limit, not the full size.
    #[cfg(feature = "gz")]
    #[test]
    fn inflation_stops_at_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        assert_eq!(
            inflate(&bomb, 1 << 20),
            Err(IdxErrorKind::TooLarge { limit: 1 << 20 })
        );
        assert_eq!(inflate(&bomb, 8 << 20).map(|v| v.len()), Ok(8 << 20));
        assert_eq!(
            IdxErrorKind::TooLarge { limit: 1 << 20 }.to_string(),
            "inflates to more than 1048576 bytes (a gzip bomb?)"
        );
    }

    fn images_file(count: u32, rows: u32, cols: u32, data_len: usize) -> Vec<u8> {
        let mut f = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [count, rows, cols] {
            f.extend_from_slice(&d.to_be_bytes());
        }
        f.extend(std::iter::repeat_n(7u8, data_len));
        f
    }

    #[test]
    fn parses_a_well_formed_images_file() {
        let f = images_file(3, 2, 4, 24);
        let img = parse_images(&f).unwrap();
        assert_eq!(
            (img.count, img.rows, img.cols, img.pixels.len()),
            (3, 2, 4, 24)
        );
    }

    #[test]
    fn rejects_truncated_data_with_sizes() {
        let f = images_file(3, 2, 4, 23);
        assert_eq!(
            parse_images(&f),
            Err(IdxErrorKind::Truncated {
                expected: 16 + 24,
                found: 16 + 23
            })
        );
    }

    #[test]
    fn rejects_trailing_bytes() {
        let f = images_file(1, 2, 2, 6);
        assert_eq!(
            parse_images(&f),
            Err(IdxErrorKind::TrailingBytes { extra: 2 })
        );
    }

    #[test]
    fn rejects_a_truncated_header() {
        assert_eq!(
            parse_images(&[0, 0, 8, 3, 0, 0]),
            Err(IdxErrorKind::Truncated {
                expected: 16,
                found: 6
            })
        );
        assert_eq!(
            parse_images(&[0, 0]),
            Err(IdxErrorKind::Truncated {
                expected: 16,
                found: 2
            })
        );
    }

    #[test]
    fn huge_claimed_dimensions_do_not_allocate_or_overflow() {
        let f = images_file(u32::MAX, u32::MAX, u32::MAX, 0);
        assert!(matches!(
            parse_images(&f),
            Err(IdxErrorKind::DimensionsTooLarge { .. })
        ));
        let f = images_file(u32::MAX, 28, 28, 10);
        assert!(matches!(
            parse_images(&f),
            Err(IdxErrorKind::Truncated { .. })
        ));
    }

    #[test]
    fn labels_file_is_not_an_images_file() {
        let mut f = LABELS_MAGIC.to_be_bytes().to_vec();
        f.extend_from_slice(&1u32.to_be_bytes());
        f.push(3);
        assert_eq!(parse_labels(&f, 10), Ok(&[3u8][..]));
        assert_eq!(
            parse_images(&f),
            Err(IdxErrorKind::BadMagic {
                found: LABELS_MAGIC,
                expected: IMAGES_MAGIC
            })
        );
        f[8] = 10;
        assert_eq!(
            parse_labels(&f, 10),
            Err(IdxErrorKind::LabelOutOfRange {
                index: 0,
                value: 10,
                classes: 10
            })
        );
    }

    #[test]
    fn empty_input_is_its_own_error() {
        assert_eq!(parse_labels(&[], 10), Err(IdxErrorKind::Empty));
    }
}
