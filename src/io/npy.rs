//! A reader and writer for `.npy` files holding little-endian float32 arrays (numpy format
//! 1.0/2.0, C order): how reference dumps and `--init` weights arrive.

use std::path::Path;

use crate::error::ModelError;

/// An f32 array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, C order.
    pub values: Vec<f32>,
}

/// Reads a little-endian float32, C-order `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_npy(&bytes).map_err(|reason| ModelError::invalid(path, reason))
}

/// Parses `.npy` bytes (see [`read_npy`]).
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (header_len, header_at): (usize, usize) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = header_at
        .checked_add(header_len)
        .and_then(|end| bytes.get(header_at..end))
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or(format!("the .npy header has no {key}"))?;
        let rest = &header[at + key.len() + 2..];
        Ok(rest.trim_start_matches([':', ' ']))
    };
    if !field("descr")?.starts_with("'<f4'") {
        return Err(format!(
            "only little-endian float32 is supported, header: {header}"
        ));
    }
    if !field("fortran_order")?.starts_with("False") {
        return Err("only C-order arrays are supported".into());
    }
    // `(d0, d1, ...)`; a `)` before the `(` crashed the earlier `[1..close]` (found by the
    // `npy` fuzz target).
    let shape_text = field("shape")?;
    let inside = shape_text
        .strip_prefix('(')
        .and_then(|s| s.get(..s.find(')')?))
        .ok_or("malformed shape in the .npy header")?;
    let shape: Vec<usize> = inside
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("bad dimension {s:?} in the .npy header"))
        })
        .collect::<Result<_, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the .npy shape is too large")?;
    let data = &bytes[header_at + header_len..];
    if Some(data.len()) != count.checked_mul(4) {
        return Err(format!(
            "the .npy data has {} bytes, its shape {shape:?} needs {}",
            data.len(),
            count.saturating_mul(4)
        ));
    }
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(NpyArray { shape, values })
}

/// The bytes of a `.npy` (format 1.0) file holding `values` with `shape`.
pub fn npy_bytes(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let bytes = npy_bytes(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        let a = parse_npy(&bytes).unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.values[5], 6.5);
        assert_eq!(parse_npy(&npy_bytes(&[4], &[0.0; 4])).unwrap().shape, [4]);
        assert!(parse_npy(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .contains("needs 24"));
        assert!(parse_npy(b"hello").is_err());
    }
}
