//! A reader and writer for `.npy` files holding little-endian float32 arrays (numpy format
//! 1.0/2.0, C order): how reference dumps and `--init` weights arrive.

use std::path::Path;

use crate::error::ModelError;
use crate::nn::Model;

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

/// The `.npy` file names of the `i`-th layer with parameters of `model`, `(weight, bias)`:
/// `W1.npy`, `b1.npy`, `W2.npy`, ... for a dense network (the reference dumps' names), and
/// for a network with convolutions the parameter's scope with `_w`/`_b` (`conv1_w.npy`,
/// `conv1_b.npy`, `fc1_w.npy`, ...: `conv1/weight` is `conv1_w.npy`).
pub fn npy_names(model: &Model, i: usize) -> (String, String) {
    let layer = &model.layers()[i];
    if model.architecture().is_convolutional() {
        let scope = |path: &str| path.rsplit_once('/').map_or(path, |(s, _)| s).to_string();
        (
            format!("{}_w.npy", scope(&layer.weight_path)),
            format!("{}_b.npy", scope(&layer.bias_path)),
        )
    } else {
        (format!("W{}.npy", i + 1), format!("b{}.npy", i + 1))
    }
}

/// Copies initial weights from the `.npy` files in `dir` into `model`, named as
/// [`npy_names`] says (`W.npy` and `b.npy` also do for softmax regression). Every weight
/// file must exist and have the parameter's shape (HWIO `[kh, kw, in, out]` for filters);
/// a missing bias file leaves that bias as it is.
pub fn load_init_dir(model: &mut Model, dir: &Path) -> Result<(), ModelError> {
    let single = model.layers().len() == 1;
    for i in 0..model.layers().len() {
        let layer = model.layers()[i].clone();
        let (w_name, b_name) = npy_names(model, i);
        let mut w_path = dir.join(&w_name);
        let mut b_path = dir.join(&b_name);
        if single && !w_path.exists() {
            w_path = dir.join("W.npy");
        }
        if single && !b_path.exists() {
            b_path = dir.join("b.npy");
        }
        let w = read_npy(&w_path)?;
        if w.shape != layer.weight_shape {
            return Err(ModelError::invalid(
                &w_path,
                format!(
                    "shape {:?} does not fit {} {:?}",
                    w.shape, layer.weight_path, layer.weight_shape
                ),
            ));
        }
        model.set_param(&layer.weight_path, &w.values);
        if b_path.exists() {
            let b = read_npy(&b_path)?;
            if b.shape != [layer.fan_out] {
                return Err(ModelError::invalid(
                    &b_path,
                    format!(
                        "shape {:?} does not fit {} [{}]",
                        b.shape, layer.bias_path, layer.fan_out
                    ),
                ));
            }
            model.set_param(&layer.bias_path, &b.values);
        }
    }
    Ok(())
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
