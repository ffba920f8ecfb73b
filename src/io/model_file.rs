//! Models as safetensors files: one F32 tensor per parameter, named by its path
//! (`variables/Weight` `[784, 10]`, `variables/Bias` `[10]`; `layer1/weight`, … for MLPs),
//! with the architecture, the softnet version and the training settings in the metadata.
//! Python's `safetensors` opens them (`safetensors.numpy.load_file`).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::ModelError;
use crate::nn::{Architecture, Model};

/// Metadata key of the architecture (`"784-256-10"`).
pub const ARCHITECTURE_KEY: &str = "architecture";
/// Metadata key of the softnet version that wrote the file.
pub const VERSION_KEY: &str = "softnet_version";
/// Largest model file softnet reads (a header can claim anything; the file cannot).
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// The safetensors bytes of `model`, with `extra` metadata (e.g. training settings).
pub fn model_to_bytes(model: &Model, extra: &[(&str, String)]) -> Vec<u8> {
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    model.visit_params(|p| {
        let bytes = p.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((p.path.to_string(), p.shape.to_vec(), bytes));
    });
    let views = buffers.iter().map(|(name, shape, bytes)| {
        let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
            .expect("a parameter's bytes match its shape");
        (name.clone(), view)
    });
    let mut metadata: HashMap<String, String> = HashMap::new();
    metadata.insert(ARCHITECTURE_KEY.into(), model.architecture().describe());
    metadata.insert(VERSION_KEY.into(), env!("CARGO_PKG_VERSION").into());
    metadata.insert("format".into(), "np".into());
    for (k, v) in extra {
        metadata.insert((*k).to_string(), v.clone());
    }
    safetensors::serialize(views, Some(metadata)).expect("a model's tensors serialize")
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename. A crash
/// leaves either the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves `model` to `path` (atomically) with `extra` metadata.
pub fn save_model(model: &Model, path: &Path, extra: &[(&str, String)]) -> Result<(), ModelError> {
    write_atomically(path, &model_to_bytes(model, extra)).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads a model file written by softnet or by any tool that uses the same tensor names.
pub fn load_model(path: &Path) -> Result<Model, ModelError> {
    load_model_bytes(&read_model_file(path)?, path)
}

/// Reads `path` (at most [`MAX_MODEL_BYTES`]), whole: the bytes of a model file of either
/// kind, before parsing.
pub fn read_model_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_MODEL_BYTES {
        return Err(ModelError::invalid(
            path,
            format!("{len} bytes is larger than any softnet model"),
        ));
    }
    std::fs::read(path).map_err(io)
}

/// Parses a model from safetensors `bytes`; `path` only names the source in errors.
///
/// Validates everything: the header (size, JSON, offsets inside the file and not
/// overlapping, which the `safetensors` crate checks), the architecture, and every tensor's
/// name, dtype and shape against it.
pub fn load_model_bytes(bytes: &[u8], path: &Path) -> Result<Model, ModelError> {
    let invalid = |reason: String| ModelError::invalid(path, reason);
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| invalid(format!("not a safetensors file: {e}")))?;
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| invalid(format!("not a safetensors file: {e}")))?;
    let arch = match header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(ARCHITECTURE_KEY))
    {
        Some(text) => Architecture::parse_described(text)
            .map_err(|e| invalid(format!("metadata architecture {text:?} is not like 784-256-10 or 28x28x1:conv5x5x32,…: {e}")))?,
        None => infer_architecture(&tensors).ok_or_else(|| {
            invalid("no architecture in the metadata and the tensor names do not give one".into())
        })?,
    };
    if arch.parameter_count() > (MAX_MODEL_BYTES / 4) as usize {
        return Err(invalid(format!(
            "architecture {} is too large",
            arch.describe()
        )));
    }
    let mut model = Model::zeros(arch);
    let mut expected: Vec<(String, Vec<usize>)> = Vec::new();
    model.visit_params(|p| expected.push((p.path.to_string(), p.shape.to_vec())));
    for name in tensors.names() {
        if !expected.iter().any(|(n, _)| n == name) {
            return Err(invalid(format!(
                "unexpected tensor {name:?} for architecture {}",
                model.architecture().describe()
            )));
        }
    }
    for (name, shape) in expected {
        let view = tensors
            .tensor(&name)
            .map_err(|_| invalid(format!("missing tensor {name:?}")))?;
        if view.dtype() != Dtype::F32 {
            return Err(invalid(format!(
                "tensor {name:?} is {:?}, expected F32",
                view.dtype()
            )));
        }
        if view.shape() != shape.as_slice() {
            return Err(invalid(format!(
                "tensor {name:?} has shape {:?}, expected {shape:?}",
                view.shape()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(invalid(format!(
                "tensor {name:?} holds NaN or infinite values"
            )));
        }
        model.set_param(&name, &values);
    }
    Ok(model)
}

/// The architecture a file's tensor names and shapes imply, when its metadata has none
/// (dense networks only, named as softnet names them).
fn infer_architecture(tensors: &SafeTensors<'_>) -> Option<Architecture> {
    if let Ok(w) = tensors.tensor(crate::nn::scope::WEIGHT) {
        if let [input, classes] = *w.shape() {
            return Architecture::dense(input, &[], classes).ok();
        }
    }
    let mut widths = Vec::new();
    for layer in 1.. {
        let (w, last) = match tensors.tensor(&format!("layer{layer}/weight")) {
            Ok(w) => (w, false),
            Err(_) => (tensors.tensor("logits/weight").ok()?, true),
        };
        let [fan_in, fan_out] = *w.shape() else {
            return None;
        };
        if widths.is_empty() {
            widths.push(fan_in);
        } else if widths.last() != Some(&fan_in) {
            return None;
        }
        widths.push(fan_out);
        if last {
            break;
        }
    }
    if widths.len() < 2 {
        return None;
    }
    Architecture::dense(
        widths[0],
        &widths[1..widths.len() - 1],
        widths[widths.len() - 1],
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_an_mlp_and_names_tensors_by_path() {
        let model = Model::he_normal(Architecture::mlp(&[16]), 3);
        let bytes = model_to_bytes(&model, &[("training", "{}".into())]);
        let back = load_model_bytes(&bytes, Path::new("m.safetensors")).unwrap();
        assert_eq!(back, model);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = st.names();
        names.sort();
        assert_eq!(
            names,
            [
                "layer1/bias",
                "layer1/weight",
                "logits/bias",
                "logits/weight"
            ]
        );
    }

    #[test]
    fn rejects_wrong_shapes_and_garbage_with_the_file_name() {
        let model = Model::softmax_regression();
        let mut bytes = model_to_bytes(&model, &[]);
        // Claim a 784-11 architecture: the stored [784, 10] weight no longer fits.
        let at = bytes.windows(6).position(|w| w == b"784-10").unwrap();
        bytes[at + 5] = b'1';
        let err = load_model_bytes(&bytes, Path::new("bad.safetensors")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("bad.safetensors: "), "{msg}");
        assert!(msg.contains("shape"), "{msg}");
        let err =
            load_model_bytes(b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk", Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("not a safetensors file"), "{err}");
    }
}
