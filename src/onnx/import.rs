//! An ONNX graph as a softnet model.
//!
//! The graph must be a chain: one float input, then nodes each of which reads the previous
//! one's output (plus constants), down to the logits. Each node becomes a softnet layer,
//! or nothing when it only reorders values (`Reshape`, `Transpose`, `Flatten`, `Identity`,
//! `Dropout`), which [`View`] follows so that:
//! - `Conv` and `MaxPool` must see the activations as the NCHW image of softnet's NHWC
//!   buffer (true of any one-channel input, and of NHWC values transposed to NCHW);
//! - a `Gemm` or `MatMul` after a flatten of NCHW activations reads its features in
//!   `(c, h, w)` order, so its weight rows are permuted to softnet's `(h, w, c)`.
//!
//! Anything else is refused with the node's name and the reason. A final `Softmax` or
//! `LogSoftmax` (PyTorch's MNIST example ends in one) is dropped: softnet's models end at
//! the logits, whose softmax is the same.

use std::collections::HashMap;
use std::path::Path;

use super::proto::{
    attribute_type, data_type, tensor_shape_proto::dimension, type_proto, AttributeProto,
    GraphProto, ModelProto, NodeProto, TensorProto,
};
use super::view::View;
use super::{Imported, OnnxError};
use crate::nn::{Architecture, LayerSpec, Model, Padding, Shape};

/// Most dimensions softnet follows in a value or a shape tensor.
const MAX_RANK: usize = 8;
/// Most values of one example's activations (as `nn::arch` allows).
const MAX_ACTIVATION: usize = 1 << 26;
/// Most elements of one tensor.
const MAX_ELEMENTS: usize = 1 << 30;
/// Most outputs (units, filters) of one layer, as `nn::arch` allows.
const MAX_WIDTH: usize = 1 << 16;
/// Most layers softnet makes of a graph (its networks have a dozen).
const MAX_LAYERS: usize = 1024;

/// The error for a node: its name (or index) and operator.
fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("node #{index} ({})", node.op_type)
    } else {
        format!("node {:?} ({})", node.name, node.op_type)
    }
}

/// A constant tensor as a softnet importer needs it.
enum Values {
    Float(Vec<f32>),
    Int64(Vec<i64>),
}

/// A tensor's shape, checked: non-negative dimensions whose product fits.
fn tensor_dims(t: &TensorProto) -> Result<(Vec<usize>, usize), String> {
    if t.dims.len() > MAX_RANK {
        return Err(format!("{} dimensions", t.dims.len()));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    let mut count = 1usize;
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| format!("dimension {d} is negative"))?;
        count = count
            .checked_mul(d)
            .filter(|&c| c <= MAX_ELEMENTS)
            .ok_or_else(|| format!("dimensions {:?} are too large", t.dims))?;
        dims.push(d);
    }
    Ok((dims, count))
}

/// The values of a tensor stored in the model: float or int64, in `raw_data` or in the
/// typed field, their count what the dimensions say.
fn tensor_values(t: &TensorProto) -> Result<(Vec<usize>, Values), String> {
    let (dims, count) = tensor_dims(t)?;
    if t.data_location != 0 || !t.external_data.is_empty() {
        return Err("its data is in an external file (softnet reads self-contained models)".into());
    }
    if t.segment.is_some() {
        return Err("it is a segment of a larger tensor".into());
    }
    let raw = |width: usize| -> Result<Option<&[u8]>, String> {
        if t.raw_data.is_empty() {
            return Ok(None);
        }
        if Some(t.raw_data.len()) != count.checked_mul(width) {
            return Err(format!(
                "raw_data holds {} bytes, but dimensions {dims:?} need {count} values of {width} bytes",
                t.raw_data.len()
            ));
        }
        Ok(Some(&t.raw_data))
    };
    let values = match t.data_type {
        data_type::FLOAT => Values::Float(match raw(4)? {
            Some(bytes) => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            None if t.float_data.len() == count => t.float_data.clone(),
            None => {
                return Err(format!(
                    "float_data holds {} values, but dimensions {dims:?} need {count}",
                    t.float_data.len()
                ))
            }
        }),
        data_type::INT64 => Values::Int64(match raw(8)? {
            Some(bytes) => bytes
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            None if t.int64_data.len() == count => t.int64_data.clone(),
            None => {
                return Err(format!(
                    "int64_data holds {} values, but dimensions {dims:?} need {count}",
                    t.int64_data.len()
                ))
            }
        }),
        other => {
            return Err(format!(
                "element type {other} (softnet reads FLOAT and INT64)"
            ))
        }
    };
    Ok((dims, values))
}

/// What the importer has made of the nodes so far.
struct Importer<'a> {
    opset: i64,
    /// Initializers and `Constant` outputs, by value name.
    constants: HashMap<&'a str, &'a TensorProto>,
    /// How many nodes read each value.
    uses: HashMap<&'a str, usize>,
    /// Graph outputs.
    outputs: Vec<&'a str>,
    layers: Vec<LayerSpec>,
    /// Per layer with parameters, in order: the weight in softnet's layout and the bias.
    params: Vec<(Vec<f32>, Vec<f32>)>,
    /// softnet's input shape, once a layer fixes it.
    input: Option<Shape>,
    /// softnet's shape of the current activations (None: still the input, not fixed yet).
    shape: Option<Shape>,
    view: View,
    current: &'a str,
    /// A dense layer whose bias an `Add` may still set (after `MatMul`, or `Gemm` without C).
    open_bias: Option<usize>,
    /// The output of a final `Softmax` or `LogSoftmax`, when there is one.
    softmax: Option<&'a str>,
    notes: Vec<String>,
}

/// One node and where it is, for messages.
struct At<'a> {
    node: &'a NodeProto,
    label: String,
}

impl At<'_> {
    fn attribute(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    fn int(&self, name: &str, default: i64) -> Result<i64, String> {
        match self.attribute(name) {
            None => Ok(default),
            Some(a) if a.r#type == attribute_type::INT => Ok(a.i),
            Some(_) => Err(format!("attribute {name} is not an integer")),
        }
    }

    fn float(&self, name: &str, default: f32) -> Result<f32, String> {
        match self.attribute(name) {
            None => Ok(default),
            Some(a) if a.r#type == attribute_type::FLOAT => Ok(a.f),
            Some(_) => Err(format!("attribute {name} is not a float")),
        }
    }

    fn ints(&self, name: &str) -> Result<Option<&[i64]>, String> {
        match self.attribute(name) {
            None => Ok(None),
            Some(a) if a.r#type == attribute_type::INTS && a.ints.len() <= MAX_RANK => {
                Ok(Some(&a.ints))
            }
            Some(_) => Err(format!("attribute {name} is not a short list of integers")),
        }
    }

    fn string(&self, name: &str) -> Result<Option<&str>, String> {
        match self.attribute(name) {
            None => Ok(None),
            Some(a) if a.r#type == attribute_type::STRING => std::str::from_utf8(&a.s)
                .map(Some)
                .map_err(|_| format!("attribute {name} is not UTF-8")),
            Some(_) => Err(format!("attribute {name} is not a string")),
        }
    }

    /// Refuses any attribute not in `known`: an attribute softnet does not read would
    /// change what the node computes.
    fn only(&self, known: &[&str]) -> Result<(), String> {
        match self
            .node
            .attribute
            .iter()
            .find(|a| !known.contains(&a.name.as_str()))
        {
            Some(a) => Err(format!(
                "attribute {} is not supported (softnet reads {})",
                a.name,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )),
            None => Ok(()),
        }
    }
}

/// A 2-D attribute that must hold the same value twice (softnet's square kernels, equal
/// strides); `default` when absent.
fn square(name: &str, values: Option<&[i64]>, default: usize) -> Result<usize, String> {
    match values {
        None => Ok(default),
        Some(&[a, b]) if a == b && a > 0 && a as usize <= MAX_WIDTH => Ok(a as usize),
        Some(v) => Err(format!(
            "{name} {v:?}: softnet supports equal values along both axes"
        )),
    }
}

impl<'a> Importer<'a> {
    /// A constant input of the node: `index`-th, which must be in the model.
    fn constant(&self, at: &At<'a>, index: usize) -> Result<Option<&'a TensorProto>, String> {
        match at.node.input.get(index).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => self.constants.get(name).copied().map(Some).ok_or_else(|| {
                format!(
                    "input {name:?} is neither a constant nor the previous layer's output \
                     (softnet reads a chain of layers)"
                )
            }),
        }
    }

    fn floats(
        &self,
        at: &At<'a>,
        index: usize,
        what: &str,
    ) -> Result<(Vec<usize>, Vec<f32>), String> {
        let t = self
            .constant(at, index)?
            .ok_or_else(|| format!("{what} is missing"))?;
        let described = |e: String| format!("{what} {:?}: {e}", t.name);
        match tensor_values(t).map_err(described)? {
            (dims, Values::Float(v)) => {
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(described("holds NaN or infinite values".into()));
                }
                Ok((dims, v))
            }
            (_, Values::Int64(_)) => Err(described("is INT64, expected FLOAT".into())),
        }
    }

    /// A bias of `out` values: `[out]`, `[1, out]`, or one value to broadcast.
    fn bias(&self, at: &At<'a>, index: usize, out: usize) -> Result<Option<Vec<f32>>, String> {
        if self.constant(at, index)?.is_none() {
            return Ok(None);
        }
        if out == 0 || out > MAX_WIDTH {
            return Err(format!(
                "{out} outputs: softnet's layers have 1 to {MAX_WIDTH}"
            ));
        }
        let (dims, v) = self.floats(at, index, "the bias")?;
        match dims[..] {
            [n] | [1, n] if n == out => Ok(Some(v)),
            [] | [1] | [1, 1] => Ok(Some(vec![v[0]; out])),
            _ => Err(format!("the bias has shape {dims:?}, expected [{out}]")),
        }
    }

    /// Sets softnet's shape for a layer that needs `shape`: fixes the input if this is the
    /// first such layer, else checks that the activations have it.
    fn fix_shape(&mut self, shape: Shape) -> Result<(), String> {
        match self.shape {
            None => {
                self.input = Some(shape);
                self.shape = Some(shape);
                Ok(())
            }
            Some(s) if s == shape => Ok(()),
            Some(s) => Err(format!(
                "its input is {shape} (h x w x c) here, but softnet's activations are {s} at this point"
            )),
        }
    }

    /// The NCHW image this node reads: `[c, h, w]` in the order softnet's buffer has it.
    fn nchw_input(&mut self) -> Result<Shape, String> {
        let [c, h, w] = self.view.dims[..] else {
            return Err(format!(
                "its input has shape {:?} per example, expected [channels, height, width]",
                self.view.dims
            ));
        };
        let shape = Shape::new(h, w, c);
        if !self.view.same_order(&View::nchw(shape)) {
            return Err(format!(
                "its input [{c}, {h}, {w}] is not laid out as softnet's NHWC activations \
                 transposed to NCHW (an NCHW input of more than one channel, or a reshape \
                 softnet cannot follow)"
            ));
        }
        if matches!(self.shape, Some(s) if s.is_flat() && !shape.is_flat()) {
            return Err("a convolution or pooling after a dense layer".into());
        }
        self.fix_shape(shape)?;
        Ok(shape)
    }

    fn push_params(&mut self, spec: LayerSpec, weight: Vec<f32>, bias: Vec<f32>) {
        self.layers.push(spec);
        self.params.push((weight, bias));
    }

    /// `Gemm` and `MatMul`: a dense layer on the flattened activations.
    fn dense(
        &mut self,
        at: &At<'a>,
        transposed: bool,
        bias: Option<Vec<f32>>,
    ) -> Result<(), String> {
        let (dims, w) = self.floats(at, 1, "the weight")?;
        let [rows, cols] = dims[..] else {
            return Err(format!(
                "the weight has shape {dims:?}, expected 2 dimensions"
            ));
        };
        let (k, out) = if transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        if self.view.dims.len() != 1 {
            return Err(format!(
                "its input has shape {:?} per example; softnet's dense layers read flat features \
                 (Flatten or Reshape first)",
                self.view.dims
            ));
        }
        if k != self.view.len() {
            return Err(format!(
                "the weight is [{rows}, {cols}]{}: {k} inputs, but the layer before gives {}",
                if transposed { " (transB)" } else { "" },
                self.view.len()
            ));
        }
        if out == 0 || out > MAX_WIDTH {
            return Err(format!(
                "{out} outputs: softnet's layers have 1 to {MAX_WIDTH}"
            ));
        }
        let bias = match bias {
            Some(b) if b.len() != out => {
                return Err(format!("the bias has {} values, expected {out}", b.len()))
            }
            b => b,
        };
        // softnet's weight is [in, out] over its own feature order.
        let plain = self.view.is_plain();
        let mut weight = vec![0.0; k * out];
        for i in 0..k {
            let row = self.view.source(i);
            for j in 0..out {
                let v = if transposed {
                    w[j * k + i]
                } else {
                    w[i * out + j]
                };
                weight[row * out + j] = v;
            }
        }
        if !plain {
            self.notes.push(format!(
                "{}: weight rows reordered from the graph's flatten order to softnet's (h, w, c)",
                at.label
            ));
        }
        match self.shape {
            Some(s) if !s.is_flat() => self.layers.push(LayerSpec::Flatten),
            Some(_) => {}
            None => self.fix_shape(Shape::flat(k))?,
        }
        self.open_bias = bias.is_none().then_some(self.params.len());
        self.push_params(
            LayerSpec::Linear { out },
            weight,
            bias.unwrap_or_else(|| vec![0.0; out]),
        );
        self.shape = Some(Shape::flat(out));
        self.view = View::plain(vec![out]);
        Ok(())
    }

    fn gemm(&mut self, at: &At<'a>) -> Result<(), String> {
        at.only(&["alpha", "beta", "transA", "transB"])?;
        if at.int("transA", 0)? != 0 {
            return Err("transA = 1 (the activations transposed) is not supported".into());
        }
        let trans_b = match at.int("transB", 0)? {
            0 => false,
            1 => true,
            v => return Err(format!("transB = {v}")),
        };
        let (alpha, beta) = (at.float("alpha", 1.0)?, at.float("beta", 1.0)?);
        if alpha != 1.0 {
            return Err(format!("alpha = {alpha}: softnet supports 1"));
        }
        let weight = self.constant(at, 1)?.ok_or("the weight is missing")?;
        let (dims, _) =
            tensor_dims(weight).map_err(|e| format!("the weight {:?}: {e}", weight.name))?;
        let [rows, cols] = dims[..] else {
            return Err(format!(
                "the weight has shape {dims:?}, expected 2 dimensions"
            ));
        };
        let out = if trans_b { rows } else { cols };
        let bias = self.bias(at, 2, out)?;
        if bias.is_some() && beta != 1.0 {
            return Err(format!("beta = {beta}: softnet supports 1"));
        }
        self.dense(at, trans_b, bias)
    }

    fn conv(&mut self, at: &At<'a>) -> Result<(), String> {
        at.only(&[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ])?;
        let input = self.nchw_input()?;
        if at.int("group", 1)? != 1 {
            return Err(format!(
                "group = {}: softnet has no grouped convolutions",
                at.int("group", 1)?
            ));
        }
        if let Some(d) = at.ints("dilations")? {
            if d.iter().any(|&v| v != 1) {
                return Err(format!(
                    "dilations {d:?}: softnet has no dilated convolutions"
                ));
            }
        }
        let (dims, w) = self.floats(at, 1, "the weight")?;
        let [out, ci, kh, kw] = dims[..] else {
            return Err(format!(
                "the weight has shape {dims:?}, expected [out, in, kh, kw]"
            ));
        };
        if kh != kw {
            return Err(format!(
                "a {kh}x{kw} kernel: softnet supports square kernels"
            ));
        }
        if let Some(k) = at.ints("kernel_shape")? {
            if k != [kh as i64, kw as i64] {
                return Err(format!(
                    "kernel_shape {k:?} is not the weight's [{kh}, {kw}]"
                ));
            }
        }
        if ci != input.channels {
            return Err(format!(
                "the weight reads {ci} channels, but the input has {}",
                input.channels
            ));
        }
        let stride = square("strides", at.ints("strides")?, 1)?;
        let pads = at.ints("pads")?.unwrap_or(&[0, 0, 0, 0]);
        let padding = match at.string("auto_pad")?.unwrap_or("NOTSET") {
            "VALID" => Padding::Valid,
            "SAME_UPPER" => Padding::Same,
            "SAME_LOWER" => {
                let even = |n: usize| {
                    let (a, b) = super::export::conv_pads(n, kh, stride, Padding::Same);
                    a == b
                };
                if !(even(input.height) && even(input.width)) {
                    return Err(
                        "auto_pad SAME_LOWER puts the odd zero before the input; softnet's SAME \
                         puts it after"
                            .into(),
                    );
                }
                Padding::Same
            }
            "NOTSET" | "" => {
                let explicit = |padding| {
                    let (t, b) = super::export::conv_pads(input.height, kh, stride, padding);
                    let (l, r) = super::export::conv_pads(input.width, kw, stride, padding);
                    [t, l, b, r].map(|v| v as i64)
                };
                if pads == explicit(Padding::Valid) {
                    Padding::Valid
                } else if pads == explicit(Padding::Same) {
                    Padding::Same
                } else {
                    return Err(format!(
                        "pads {pads:?} on a {}x{} input are neither SAME ({:?}, the odd zero \
                         after) nor VALID (none)",
                        input.height,
                        input.width,
                        explicit(Padding::Same)
                    ));
                }
            }
            other => return Err(format!("auto_pad {other}")),
        };
        if out == 0 || out > MAX_WIDTH || kh == 0 {
            return Err(format!(
                "{out} filters of {kh}x{kw}: softnet's layers have 1 to {MAX_WIDTH}, of at least 1x1"
            ));
        }
        let bias = self.bias(at, 2, out)?.unwrap_or_else(|| vec![0.0; out]);
        let side = |n: usize| match padding {
            Padding::Same => Some(n.div_ceil(stride)),
            Padding::Valid => (n >= kh).then(|| (n - kh) / stride + 1),
        };
        let (Some(h), Some(wd)) = (side(input.height), side(input.width)) else {
            return Err(format!(
                "a {kh}x{kw} window does not fit the {}x{} input",
                input.height, input.width
            ));
        };
        let next = Shape::new(h, wd, out);
        if next.len() > MAX_ACTIVATION {
            return Err("its output is too large".into());
        }
        // OIHW [out, in, kh, kw] to softnet's HWIO [kh, kw, in, out].
        let mut weight = vec![0.0; w.len()];
        for o in 0..out {
            for i in 0..ci {
                for y in 0..kh {
                    for x in 0..kw {
                        weight[((y * kw + x) * ci + i) * out + o] =
                            w[((o * ci + i) * kh + y) * kw + x];
                    }
                }
            }
        }
        self.push_params(
            LayerSpec::Conv2d {
                out_channels: out,
                kernel: kh,
                stride,
                padding,
            },
            weight,
            bias,
        );
        self.open_bias = None;
        self.shape = Some(next);
        self.view = View::nchw(next);
        Ok(())
    }

    fn max_pool(&mut self, at: &At<'a>) -> Result<(), String> {
        at.only(&[
            "auto_pad",
            "ceil_mode",
            "dilations",
            "kernel_shape",
            "pads",
            "storage_order",
            "strides",
        ])?;
        let input = self.nchw_input()?;
        let size = square("kernel_shape", at.ints("kernel_shape")?, 0)?;
        if size == 0 {
            return Err("kernel_shape is missing".into());
        }
        let stride = square("strides", at.ints("strides")?, 1)?;
        if let Some(d) = at.ints("dilations")? {
            if d.iter().any(|&v| v != 1) {
                return Err(format!("dilations {d:?}: softnet has no dilated pooling"));
            }
        }
        if let Some(p) = at.ints("pads")? {
            if p.iter().any(|&v| v != 0) {
                return Err(format!("pads {p:?}: softnet pools without padding (VALID)"));
            }
        }
        match at.string("auto_pad")?.unwrap_or("NOTSET") {
            "NOTSET" | "" | "VALID" => {}
            other => {
                return Err(format!(
                    "auto_pad {other}: softnet pools without padding (VALID)"
                ))
            }
        }
        if size > input.height || size > input.width {
            return Err(format!(
                "a {size}x{size} window exceeds the {}x{} input",
                input.height, input.width
            ));
        }
        if at.int("ceil_mode", 0)? != 0
            && ((input.height - size) % stride != 0 || (input.width - size) % stride != 0)
        {
            return Err("ceil_mode = 1 adds a partial window softnet does not have".into());
        }
        let side = |n: usize| (n - size) / stride + 1;
        let next = Shape::new(side(input.height), side(input.width), input.channels);
        self.layers.push(LayerSpec::MaxPool2d { size, stride });
        self.open_bias = None;
        self.shape = Some(next);
        self.view = View::nchw(next);
        Ok(())
    }

    fn reshape(&mut self, at: &At<'a>) -> Result<(), String> {
        at.only(&["allowzero"])?;
        let t = self.constant(at, 1)?.ok_or("the target shape is missing")?;
        let Values::Int64(target) = tensor_values(t)
            .map_err(|e| format!("the target shape {:?}: {e}", t.name))?
            .1
        else {
            return Err("the target shape is not INT64".into());
        };
        if target.is_empty() || target.len() > MAX_RANK {
            return Err(format!("target shape {target:?}"));
        }
        let allow_zero = at.int("allowzero", 0)? != 0;
        if allow_zero && target.contains(&0) {
            return Err("allowzero with a 0 in the shape".into());
        }
        if !matches!(target[0], -1 | 0) {
            return Err(format!(
                "target shape {target:?}: the first dimension (the batch) must be -1 or 0"
            ));
        }
        let len = self.view.len();
        let rest = &target[1..];
        // A 0 copies the input's dimension at that place.
        let mut dims: Vec<Option<usize>> = Vec::new();
        for (i, &d) in rest.iter().enumerate() {
            dims.push(match d {
                0 => Some(*self.view.dims.get(i).ok_or_else(|| {
                    format!("target shape {target:?}: a 0 past the input's dimensions")
                })?),
                -1 if target[0] == 0 && !dims.contains(&None) => None,
                d if d > 0 => {
                    Some(usize::try_from(d).map_err(|_| format!("target shape {target:?}"))?)
                }
                _ => {
                    return Err(format!(
                    "target shape {target:?}: softnet needs every dimension but the batch known"
                ))
                }
            });
        }
        let known = dims
            .iter()
            .flatten()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| format!("target shape {target:?} is too large"))?;
        let missing = if known == 0 || len % known != 0 {
            None
        } else {
            Some(len / known)
        };
        let dims: Vec<usize> = dims
            .into_iter()
            .map(|d| d.or(missing).unwrap_or(0))
            .collect();
        let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if count != Some(len) || dims.contains(&0) {
            return Err(format!(
                "target shape {target:?} does not hold the {len} values of each example"
            ));
        }
        self.view = self.view.reshape(dims);
        Ok(())
    }

    fn transpose(&mut self, at: &At<'a>) -> Result<(), String> {
        at.only(&["perm"])?;
        let perm = at
            .ints("perm")?
            .ok_or("no perm attribute (a reversed batch axis)")?;
        let rank = self.view.dims.len() + 1;
        let mut seen = vec![false; rank];
        for &p in perm {
            match usize::try_from(p).ok().filter(|&p| p < rank) {
                Some(p) if !seen[p] => seen[p] = true,
                _ => return Err(format!("perm {perm:?} is not a permutation of 0..{rank}")),
            }
        }
        if perm.len() != rank || perm[0] != 0 {
            return Err(format!("perm {perm:?}: softnet keeps the batch axis first"));
        }
        let inner: Vec<usize> = perm[1..].iter().map(|&p| p as usize - 1).collect();
        self.view = self
            .view
            .transpose(&inner)
            .ok_or("a transpose of a reshaped transpose, which softnet does not follow")?;
        Ok(())
    }

    fn flatten(&mut self, at: &At<'a>) -> Result<(), String> {
        at.only(&["axis"])?;
        match at.int("axis", 1)? {
            1 => {}
            a => {
                return Err(format!(
                    "axis = {a}: softnet flattens all but the batch (axis 1)"
                ))
            }
        }
        self.view = self.view.reshape(vec![self.view.len()]);
        Ok(())
    }

    fn add(&mut self, at: &At<'a>) -> Result<(), String> {
        let layer = self
            .open_bias
            .take()
            .ok_or("an Add that is not the bias of a MatMul (or of a Gemm without one)")?;
        // The other input is the bias, on either side.
        let other = if at.node.input.first().map(String::as_str) == Some(self.current) {
            1
        } else {
            0
        };
        let out = self.view.len();
        let bias = self.bias(at, other, out)?.ok_or("the bias is missing")?;
        self.params[layer].1 = bias;
        Ok(())
    }

    fn softmax(&mut self, at: &At<'a>) -> Result<(), String> {
        at.only(&["axis"])?;
        let axis = at.int("axis", if self.opset >= 13 { -1 } else { 1 })?;
        if self.view.dims.len() != 1 || !matches!(axis, 1 | -1) {
            return Err(
                "softnet drops a final softmax over the logits, and this is not one".into(),
            );
        }
        Ok(())
    }

    /// One node of the chain.
    fn node(&mut self, at: &At<'a>) -> Result<(), String> {
        let op = at.node.op_type.as_str();
        if op != "Add" {
            self.open_bias = None;
        }
        if self.softmax.is_some() {
            return Err("a node after the final softmax".into());
        }
        match op {
            "Gemm" => self.gemm(at),
            "MatMul" => {
                at.only(&[])?;
                self.dense(at, false, None)
            }
            "Add" => self.add(at),
            "Conv" => self.conv(at),
            "MaxPool" => self.max_pool(at),
            "Relu" => {
                at.only(&[])?;
                self.layers.push(LayerSpec::Relu);
                Ok(())
            }
            "Flatten" => self.flatten(at),
            "Reshape" => self.reshape(at),
            "Transpose" => self.transpose(at),
            "Identity" => at.only(&[]),
            "Dropout" => {
                // The identity at inference, unless told to train.
                at.only(&["seed"])?;
                if at.node.input.get(2).is_some_and(|s| !s.is_empty()) {
                    return Err("a training_mode input".into());
                }
                Ok(())
            }
            "Softmax" | "LogSoftmax" => self.softmax(at),
            _ => Err(
                "operator not supported (softnet reads Gemm, MatMul, Add, Relu, Conv, MaxPool, \
                 Flatten, Reshape, Transpose, Identity, Dropout and a final Softmax or LogSoftmax)"
                    .into(),
            ),
        }
    }
}

/// The graph's one data input: its name and its shape without the batch.
fn graph_input<'a>(
    graph: &'a GraphProto,
    constants: &HashMap<&str, &TensorProto>,
) -> Result<(&'a str, Vec<usize>), String> {
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !constants.contains_key(i.name.as_str()))
        .collect();
    let [input] = inputs[..] else {
        return Err(format!(
            "the graph has {} inputs besides its initializers; softnet models take one",
            inputs.len()
        ));
    };
    let name = &input.name;
    let Some(type_proto::Value::TensorType(t)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!("input {name:?} is not a tensor"));
    };
    if t.elem_type != data_type::FLOAT {
        return Err(format!(
            "input {name:?} has element type {}, expected FLOAT (1)",
            t.elem_type
        ));
    }
    let shape = t
        .shape
        .as_ref()
        .ok_or_else(|| format!("input {name:?} has no shape"))?;
    if shape.dim.len() < 2 || shape.dim.len() > MAX_RANK {
        return Err(format!(
            "input {name:?} has {} dimensions, expected a batch and one to three more",
            shape.dim.len()
        ));
    }
    let mut dims = Vec::new();
    let mut len = 1usize;
    for d in &shape.dim[1..] {
        let v = match d.value {
            Some(dimension::Value::DimValue(v)) if v > 0 => v as usize,
            _ => {
                return Err(format!(
                    "input {name:?}: every dimension but the batch must be a positive number"
                ))
            }
        };
        len = len
            .checked_mul(v)
            .filter(|&l| l <= MAX_ACTIVATION)
            .ok_or_else(|| format!("input {name:?} is too large"))?;
        dims.push(v);
    }
    Ok((name.as_str(), dims))
}

/// The softnet model of an ONNX model's bytes; `path` names the file in errors.
pub(crate) fn import(bytes: &[u8], path: &Path) -> Result<Imported, OnnxError> {
    super::budget::check(bytes).map_err(|e| OnnxError::invalid(path, e))?;
    let model: ModelProto = prost::Message::decode(bytes)
        .map_err(|e| OnnxError::invalid(path, format!("not an ONNX model (protobuf): {e}")))?;
    let invalid = |reason: String| OnnxError::invalid(path, reason);
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .ok_or_else(|| invalid("no opset_import for the standard domain".into()))?;
    if opset < 7 {
        return Err(invalid(format!(
            "opset {opset}: softnet reads opset 7 and later"
        )));
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| invalid("no graph".into()))?;
    let mut constants: HashMap<&str, &TensorProto> = HashMap::new();
    for t in &graph.initializer {
        constants.insert(t.name.as_str(), t);
    }
    let (input_name, input_dims) = graph_input(graph, &constants).map_err(invalid)?;
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for node in &graph.node {
        for i in &node.input {
            *uses.entry(i.as_str()).or_default() += 1;
        }
    }
    let mut im = Importer {
        opset,
        constants,
        uses,
        outputs: graph.output.iter().map(|o| o.name.as_str()).collect(),
        layers: Vec::new(),
        params: Vec::new(),
        input: None,
        shape: None,
        view: View::plain(input_dims),
        current: input_name,
        open_bias: None,
        softmax: None,
        notes: Vec::new(),
    };
    let mut logits = input_name;
    for (index, node) in graph.node.iter().enumerate() {
        let at = At {
            node,
            label: node_label(node, index),
        };
        let unsupported = |reason: String| OnnxError::unsupported(path, &at.label, reason);
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(unsupported(format!(
                "domain {:?} is not ONNX's",
                node.domain
            )));
        }
        if node.op_type == "Constant" {
            let value = node
                .attribute
                .iter()
                .find(|a| a.name == "value")
                .filter(|a| a.r#type == attribute_type::TENSOR && node.attribute.len() == 1)
                .and_then(|a| a.t.as_deref())
                .ok_or_else(|| {
                    unsupported("softnet reads Constant nodes with one tensor `value`".into())
                })?;
            for out in &node.output {
                im.constants.insert(out.as_str(), value);
            }
            continue;
        }
        // Add is commutative: its bias may come first.
        let reads = |k: usize| node.input.get(k).map(String::as_str) == Some(im.current);
        if !(reads(0) || (node.op_type == "Add" && reads(1))) {
            return Err(unsupported(format!(
                "it does not read {:?}, the previous layer's output (softnet reads a chain of layers)",
                im.current
            )));
        }
        if im.uses.get(im.current).copied().unwrap_or(0) > 1 {
            return Err(unsupported(format!(
                "{:?} feeds {} nodes; softnet reads a chain of layers",
                im.current, im.uses[im.current]
            )));
        }
        let Some(out) = node.output.first().filter(|o| !o.is_empty()) else {
            return Err(unsupported("no output".into()));
        };
        for extra in node.output.iter().skip(1).filter(|o| !o.is_empty()) {
            if im.uses.contains_key(extra.as_str()) || im.outputs.contains(&extra.as_str()) {
                return Err(unsupported(format!("its second output {extra:?} is used")));
            }
        }
        im.node(&at).map_err(unsupported)?;
        if im.layers.len() > MAX_LAYERS {
            return Err(unsupported(format!("more than {MAX_LAYERS} layers")));
        }
        if matches!(node.op_type.as_str(), "Softmax" | "LogSoftmax") {
            im.softmax = Some(out.as_str());
        } else {
            logits = out.as_str();
        }
        im.current = out.as_str();
    }
    let Some(input) = im.input else {
        return Err(invalid(
            "the graph has no dense, convolution or pooling layer".into(),
        ));
    };
    if !matches!(im.layers.last(), Some(LayerSpec::Linear { .. })) {
        return Err(invalid(format!(
            "the graph ends in {:?}, not a dense layer's logits (then optionally a softmax)",
            logits
        )));
    }
    for out in &im.outputs {
        if *out != logits && Some(*out) != im.softmax {
            return Err(invalid(format!(
                "output {out:?} is neither the logits {logits:?} nor their softmax"
            )));
        }
    }
    if im.outputs.is_empty() {
        return Err(invalid("the graph has no outputs".into()));
    }
    if let Some(s) = im.softmax {
        im.notes.push(format!(
            "the final softmax ({s:?}) is left out: softnet's model ends at the logits {logits:?}"
        ));
    }
    let arch = Architecture::new(input, im.layers)
        .map_err(|e| invalid(format!("the layers make no softnet network: {e}")))?;
    let mut model = Model::zeros(arch);
    let arch = model.architecture().clone();
    let mut params = im.params.into_iter();
    for i in 0..arch.layers().len() {
        if let [w, b] = &arch.params_of(i)[..] {
            let (weight, bias) = params.next().unwrap_or_default();
            if !(model.set_param(&w.path, &weight) && model.set_param(&b.path, &bias)) {
                return Err(invalid(format!(
                    "layer {} ({}): parameter sizes do not match the layer",
                    i + 1,
                    w.path
                )));
            }
        }
    }
    Ok(Imported {
        model,
        notes: im.notes,
    })
}
