//! Int8 model files: symmetric per-output-channel int8 weights, f32 scales and biases.
//!
//! Each layer with parameters of a [`Model`] (linear or convolutional) becomes three
//! tensors, under the f32 file's names:
//!
//! | tensor | dtype | shape | meaning |
//! |---|---|---|---|
//! | `<weight path>` (`variables/Weight`, `layer1/weight`, …) | I8 | `[fan_in, fan_out]` | `q[i][j] = round(w[i][j] / scale[j])`, in `-127..=127` |
//! | `<weight path>` of a convolution (`conv1/weight`, …) | I8 | `[kh, kw, in, out]` (HWIO) | `q[y][x][i][o] = round(w[y][x][i][o] / scale[o])`, in `-127..=127` |
//! | `<weight path>_scale` | F32 | `[fan_out]` (`[out]`) | `scale[j] = max \|w[…][j]\| / 127` over the output channel's `fan_in` (`kh·kw·in`) weights, finite and > 0 |
//! | `<bias path>` | F32 | `[fan_out]` (`[out]`) | the bias, unquantized |
//!
//! Layers without parameters (ReLU, pooling, flatten, dropout) have no tensors, as in the
//! f32 file. The metadata holds [`QUANTIZATION_KEY`] = [`QUANTIZATION_INT8`] beside the
//! architecture and the softnet version, so `w ≈ q * scale` in numpy (`scale[None, :]` for
//! a matrix, broadcast along the last axis for a filter). Symmetric (no zero point) keeps
//! the integer dot product a plain `Σ x_i q_ij` in i32; per output channel keeps one large
//! column (or filter) from crushing the resolution of the others. A filter viewed
//! row-major is the `[kh·kw·in, out]` matrix of its product, so both kinds quantize alike.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::model_file::{load_model_bytes, ARCHITECTURE_KEY, MAX_MODEL_BYTES, VERSION_KEY};
// Where the inference engine has always found it; one reader serves both kinds of file.
pub use super::model_file::read_model_file;
use crate::error::ModelError;
use crate::nn::{Architecture, Model};

/// Metadata key that marks a quantized file.
pub const QUANTIZATION_KEY: &str = "quantization";
/// Its value for symmetric per-output-channel int8 weights.
pub const QUANTIZATION_INT8: &str = "int8-symmetric-per-output-channel";
/// Suffix of a weight tensor's name that names its per-channel scales.
pub const SCALE_SUFFIX: &str = "_scale";
/// Largest magnitude of a quantized weight (symmetric: -128 is never used).
pub const Q_MAX: i8 = 127;

/// One layer with int8 weights: linear, or a convolution's filter.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedLayer {
    /// Inputs each output sums over (`kh·kw·in` for a filter).
    pub fan_in: usize,
    /// Outputs of the layer (output channels of a filter).
    pub fan_out: usize,
    /// Shape of the weights: `[fan_in, fan_out]`, or `[kh, kw, in, out]` for a filter.
    pub shape: Vec<usize>,
    /// Quantized weights, row-major in [`QuantizedLayer::shape`] (the f32 file's layout),
    /// which is `[fan_in, fan_out]` for both kinds.
    pub weight: Vec<i8>,
    /// Per-output-channel scales, `[fan_out]`: `w[i][j] ≈ weight[i][j] * scale[j]`.
    pub scale: Vec<f32>,
    /// Bias, `[fan_out]`, f32.
    pub bias: Vec<f32>,
    /// Path of the weights (`variables/Weight`, `layer1/weight`, …).
    pub weight_path: String,
    /// Path of the bias.
    pub bias_path: String,
}

/// A network whose weights are int8 (see the module docs for the format).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedModel {
    arch: Architecture,
    layers: Vec<QuantizedLayer>,
}

impl QuantizedModel {
    /// Quantizes `model`'s weights per output channel: `scale[j] = max_i |w[i][j]| / 127`
    /// over the `[fan_in, fan_out]` view of linear weights and filters alike (1 for an
    /// all-zero column, so every scale is positive), `q = round(w / scale)`.
    pub fn quantize(model: &Model) -> Self {
        let layers = model
            .layers()
            .iter()
            .enumerate()
            .map(|(l, p)| {
                let w = model.weight(l); // [fan_in, fan_out]
                let mut scale = vec![0.0f32; p.fan_out];
                for row in w.chunks_exact(p.fan_out) {
                    for (s, v) in scale.iter_mut().zip(row) {
                        *s = s.max(v.abs());
                    }
                }
                for s in &mut scale {
                    *s = if *s > 0.0 { *s / f32::from(Q_MAX) } else { 1.0 };
                }
                let weight = w
                    .chunks_exact(p.fan_out)
                    .flat_map(|row| {
                        row.iter().zip(&scale).map(|(v, s)| {
                            (v / s).round().clamp(-f32::from(Q_MAX), f32::from(Q_MAX)) as i8
                        })
                    })
                    .collect();
                QuantizedLayer {
                    fan_in: p.fan_in,
                    fan_out: p.fan_out,
                    shape: p.weight_shape.clone(),
                    weight,
                    scale,
                    bias: model.bias(l).to_vec(),
                    weight_path: p.weight_path.clone(),
                    bias_path: p.bias_path.clone(),
                }
            })
            .collect();
        QuantizedModel {
            arch: model.architecture().clone(),
            layers,
        }
    }

    /// The f32 model these int8 weights stand for (`q * scale`).
    pub fn dequantize(&self) -> Model {
        let mut model = Model::zeros(self.arch.clone());
        for layer in &self.layers {
            let w: Vec<f32> = layer
                .weight
                .chunks_exact(layer.fan_out)
                .flat_map(|row| row.iter().zip(&layer.scale).map(|(&q, s)| f32::from(q) * s))
                .collect();
            model.set_param(&layer.weight_path, &w);
            model.set_param(&layer.bias_path, &layer.bias);
        }
        model
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }

    /// The layers, input to output.
    pub fn layers(&self) -> &[QuantizedLayer] {
        &self.layers
    }
}

/// The safetensors bytes of `model`, with `extra` metadata (e.g. the source's training
/// settings).
pub fn quantized_to_bytes(model: &QuantizedModel, extra: &[(&str, String)]) -> Vec<u8> {
    let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for l in &model.layers {
        let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        buffers.push((
            l.weight_path.clone(),
            Dtype::I8,
            l.shape.clone(),
            l.weight.iter().map(|&q| q as u8).collect(),
        ));
        buffers.push((
            format!("{}{SCALE_SUFFIX}", l.weight_path),
            Dtype::F32,
            vec![l.fan_out],
            f32_bytes(&l.scale),
        ));
        buffers.push((
            l.bias_path.clone(),
            Dtype::F32,
            vec![l.fan_out],
            f32_bytes(&l.bias),
        ));
    }
    let views = buffers.iter().map(|(name, dtype, shape, bytes)| {
        let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
            .expect("a quantized tensor's bytes match its shape");
        (name.clone(), view)
    });
    let mut metadata: HashMap<String, String> = HashMap::new();
    for (k, v) in extra {
        metadata.insert((*k).to_string(), v.clone());
    }
    metadata.insert(ARCHITECTURE_KEY.into(), model.arch.describe());
    metadata.insert(VERSION_KEY.into(), env!("CARGO_PKG_VERSION").into());
    metadata.insert(QUANTIZATION_KEY.into(), QUANTIZATION_INT8.into());
    safetensors::serialize(views, Some(metadata)).expect("a model's tensors serialize")
}

/// The metadata of a safetensors file (empty when it has none); `path` names it in errors.
pub fn read_metadata(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>, ModelError> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| ModelError::invalid(path, format!("not a safetensors file: {e}")))?;
    Ok(header.metadata().clone().unwrap_or_default())
}

/// Whether `bytes` is a safetensors file whose metadata marks it quantized (any scheme).
pub fn is_quantized(bytes: &[u8]) -> bool {
    SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, h)| {
            h.metadata()
                .as_ref()
                .map(|m| m.contains_key(QUANTIZATION_KEY))
        })
        .unwrap_or(false)
}

/// Parses an int8 model from safetensors `bytes`; `path` only names the source in errors.
///
/// Validates the header (size, JSON, offsets: the `safetensors` crate), the quantization
/// scheme, the architecture, and each tensor's name, dtype and shape against it; scales
/// must be finite and positive, biases finite.
pub fn load_quantized_bytes(bytes: &[u8], path: &Path) -> Result<QuantizedModel, ModelError> {
    let invalid = |reason: String| ModelError::invalid(path, reason);
    let metadata = read_metadata(bytes, path)?;
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| invalid(format!("not a safetensors file: {e}")))?;
    match metadata.get(QUANTIZATION_KEY).map(String::as_str) {
        Some(QUANTIZATION_INT8) => {}
        Some(other) => {
            return Err(invalid(format!(
                "unknown quantization {other:?}, expected {QUANTIZATION_INT8:?}"
            )))
        }
        None => return Err(invalid("no quantization in the metadata".into())),
    }
    let text = metadata
        .get(ARCHITECTURE_KEY)
        .ok_or_else(|| invalid("no architecture in the metadata".into()))?;
    let arch = Architecture::parse_described(text).map_err(|e| {
        invalid(format!(
            "metadata architecture {text:?} is not like 784-256-10 or 28x28x1:conv5x5x32,…: {e}"
        ))
    })?;
    if arch.parameter_count() > MAX_MODEL_BYTES as usize {
        return Err(invalid(format!(
            "architecture {} is too large",
            arch.describe()
        )));
    }
    // The f32 model of this architecture names the layers.
    let skeleton = Model::zeros(arch.clone());
    let mut expected: Vec<String> = Vec::new();
    for p in skeleton.layers() {
        expected.push(p.weight_path.clone());
        expected.push(format!("{}{SCALE_SUFFIX}", p.weight_path));
        expected.push(p.bias_path.clone());
    }
    for name in tensors.names() {
        if !expected.iter().any(|n| n == name) {
            return Err(invalid(format!(
                "unexpected tensor {name:?} for architecture {}",
                arch.describe()
            )));
        }
    }
    let tensor = |name: &str, dtype: Dtype, shape: &[usize]| {
        let view = tensors
            .tensor(name)
            .map_err(|_| invalid(format!("missing tensor {name:?}")))?;
        if view.dtype() != dtype {
            return Err(invalid(format!(
                "tensor {name:?} is {:?}, expected {dtype:?}",
                view.dtype()
            )));
        }
        if view.shape() != shape {
            return Err(invalid(format!(
                "tensor {name:?} has shape {:?}, expected {shape:?}",
                view.shape()
            )));
        }
        Ok(view.data())
    };
    let floats = |name: &str, data: &[u8], positive: bool| {
        let values: Vec<f32> = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(invalid(format!(
                "tensor {name:?} holds NaN or infinite values"
            )));
        }
        if positive && values.iter().any(|&v| v <= 0.0) {
            return Err(invalid(format!(
                "tensor {name:?} holds a scale that is not positive"
            )));
        }
        Ok(values)
    };
    let mut layers = Vec::new();
    for p in skeleton.layers() {
        let scale_name = format!("{}{SCALE_SUFFIX}", p.weight_path);
        let w = tensor(&p.weight_path, Dtype::I8, &p.weight_shape)?;
        let s = tensor(&scale_name, Dtype::F32, &[p.fan_out])?;
        let b = tensor(&p.bias_path, Dtype::F32, &[p.fan_out])?;
        let weight: Vec<i8> = w.iter().map(|&v| v as i8).collect();
        if weight.contains(&i8::MIN) {
            // -128 has no positive twin: a symmetric scheme never writes it.
            return Err(invalid(format!(
                "tensor {:?} holds -128, outside the symmetric range -127..=127",
                p.weight_path
            )));
        }
        layers.push(QuantizedLayer {
            fan_in: p.fan_in,
            fan_out: p.fan_out,
            shape: p.weight_shape.clone(),
            weight,
            scale: floats(&scale_name, s, true)?,
            bias: floats(&p.bias_path, b, false)?,
            weight_path: p.weight_path.clone(),
            bias_path: p.bias_path.clone(),
        });
    }
    Ok(QuantizedModel { arch, layers })
}

/// A model file of either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyModel {
    /// F32 weights ([`load_model_bytes`]).
    F32(Model),
    /// Int8 weights ([`load_quantized_bytes`]).
    Int8(QuantizedModel),
}

impl AnyModel {
    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        match self {
            AnyModel::F32(m) => m.architecture(),
            AnyModel::Int8(m) => m.architecture(),
        }
    }
}

/// Parses a model file of either kind: quantized when its metadata says so.
pub fn load_any_model_bytes(bytes: &[u8], path: &Path) -> Result<AnyModel, ModelError> {
    if is_quantized(bytes) {
        load_quantized_bytes(bytes, path).map(AnyModel::Int8)
    } else {
        load_model_bytes(bytes, path).map(AnyModel::F32)
    }
}

/// Loads a model file of either kind.
pub fn load_any_model(path: &Path) -> Result<AnyModel, ModelError> {
    load_any_model_bytes(&read_model_file(path)?, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(model: &QuantizedModel) -> Vec<u8> {
        quantized_to_bytes(model, &[])
    }

    #[test]
    fn quantizes_per_channel_within_half_a_step() {
        let model = Model::he_normal(Architecture::mlp(&[12]), 7);
        let q = QuantizedModel::quantize(&model);
        let back = q.dequantize();
        for (l, layer) in q.layers().iter().enumerate() {
            // The largest weight of each column maps to ±127 exactly.
            for j in 0..layer.fan_out {
                let col_max = (0..layer.fan_in)
                    .map(|i| layer.weight[i * layer.fan_out + j].unsigned_abs())
                    .max();
                assert_eq!(col_max, Some(127));
            }
            for (i, (a, b)) in model.weight(l).iter().zip(back.weight(l)).enumerate() {
                let s = layer.scale[i % layer.fan_out];
                assert!((a - b).abs() <= s / 2.0 + 1e-7, "{a} vs {b}, step {s}");
            }
            assert_eq!(model.bias(l), back.bias(l));
        }
    }

    #[test]
    fn an_all_zero_column_gets_scale_one() {
        let q = QuantizedModel::quantize(&Model::softmax_regression());
        assert_eq!(q.layers()[0].scale, vec![1.0; 10]);
        assert!(q.layers()[0].weight.iter().all(|&v| v == 0));
    }

    #[test]
    fn round_trips_and_is_about_four_times_smaller() {
        let model = Model::he_normal(Architecture::softmax_regression(), 3);
        let q = QuantizedModel::quantize(&model);
        let bytes = quantized_to_bytes(&q, &[("training", "{}".into())]);
        assert!(is_quantized(&bytes));
        assert_eq!(
            load_quantized_bytes(&bytes, Path::new("q")).unwrap(),
            q.clone()
        );
        assert_eq!(
            load_any_model_bytes(&bytes, Path::new("q")).unwrap(),
            AnyModel::Int8(q)
        );
        let f32_len = super::super::model_to_bytes(&model, &[]).len();
        let ratio = f32_len as f64 / bytes.len() as f64;
        assert!((3.5..4.1).contains(&ratio), "{f32_len} / {}", bytes.len());
        assert!(!is_quantized(&super::super::model_to_bytes(&model, &[])));
    }

    #[test]
    fn filters_get_one_scale_per_output_channel_and_the_file_shrinks_fourfold() {
        let arch = Architecture::from_spec("conv5x5x32,pool2,conv5x5x64,pool2,fc64,fc10").unwrap();
        let model = Model::he_normal(arch, 5);
        let q = QuantizedModel::quantize(&model);
        let conv = &q.layers()[1];
        assert_eq!(conv.shape, vec![5, 5, 32, 64]);
        assert_eq!((conv.fan_in, conv.fan_out), (800, 64));
        let w = model.weight(1); // [5, 5, 32, 64]: output channel fastest
        for o in 0..64 {
            let max = (0..800).map(|k| w[k * 64 + o].abs()).fold(0.0f32, f32::max);
            assert_eq!(conv.scale[o], max / 127.0, "channel {o}");
            let peak = (0..800)
                .map(|k| conv.weight[k * 64 + o].unsigned_abs())
                .max();
            assert_eq!(peak, Some(127), "channel {o}");
        }
        let back = q.dequantize();
        for (i, (a, b)) in w.iter().zip(back.weight(1)).enumerate() {
            assert!(
                (a - b).abs() <= conv.scale[i % 64] / 2.0 + 1e-7,
                "{a} vs {b}"
            );
        }
        let bytes = quantized_to_bytes(&q, &[]);
        let loaded = load_quantized_bytes(&bytes, Path::new("cnn8")).unwrap();
        assert_eq!(loaded, q);
        let f32_len = super::super::model_to_bytes(&model, &[]).len();
        let ratio = f32_len as f64 / bytes.len() as f64;
        assert!((3.8..4.1).contains(&ratio), "{f32_len} / {}", bytes.len());
        // A filter saved as the [fan_in, fan_out] matrix is refused.
        let mut flat = q.clone();
        flat.layers[1].shape = vec![800, 64];
        let err = load_quantized_bytes(&bytes_of(&flat), Path::new("f")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f: tensor \"conv2/weight\" has shape [800, 64], expected [5, 5, 32, 64]"
        );
    }

    #[test]
    fn refuses_bad_scales() {
        let model = Model::he_normal(Architecture::softmax_regression(), 3);
        let mut q = QuantizedModel::quantize(&model);
        q.layers[0].scale[3] = 0.0;
        let err = load_quantized_bytes(&bytes_of(&q), Path::new("z.safetensors")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "z.safetensors: tensor \"variables/Weight_scale\" holds a scale that is not positive"
        );
        q.layers[0].scale[3] = f32::NAN;
        let err = load_quantized_bytes(&bytes_of(&q), Path::new("n")).unwrap_err();
        assert!(err.to_string().contains("NaN or infinite"), "{err}");
        q.layers[0].scale[3] = -0.5;
        assert!(load_quantized_bytes(&bytes_of(&q), Path::new("n")).is_err());
    }
}
