//! A softnet model as an ONNX graph (opset 13, f32).
//!
//! Dense layers are `Gemm` nodes with softnet's `[in, out]` weights as they are (`transB`
//! 0). Convolutions run in ONNX's NCHW: the `[N, 784]` input is reshaped to NHWC `[N, 28,
//! 28, 1]` and transposed to NCHW; filters are written OIHW (softnet's HWIO transposed); and
//! before the first dense layer the activations are transposed back to NHWC and flattened,
//! so that layer reads its features in softnet's `(h, w, c)` order and its weights need no
//! permutation. Dropout is the identity at inference and writes no node.

use std::collections::HashSet;

use super::proto::tensor_shape_proto::{dimension, Dimension};
use super::proto::{
    data_type, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::nn::{LayerSpec, Model, Padding, Shape};

/// The operator set the exported graphs use.
pub const OPSET: i64 = 13;
/// The IR version that goes with [`OPSET`].
pub const IR_VERSION: i64 = 7;
/// Name of the exported graph's input: `[N, 784]` float pixels / 255.
pub const INPUT_NAME: &str = "pixels";
/// Name of the exported graph's logits output, `[N, classes]`.
pub const LOGITS_NAME: &str = "logits";
/// Name of the optional probabilities output (softmax of the logits), `[N, classes]`.
pub const PROBABILITIES_NAME: &str = "probabilities";
/// Name of the batch dimension.
const BATCH: &str = "N";

/// What [`to_proto`] writes beyond the logits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Add a second output, [`PROBABILITIES_NAME`]: the softmax of the logits.
    pub probabilities: bool,
}

/// The ONNX padding of a convolution along one axis: `(before, after)` zeros, as softnet's
/// (TensorFlow's) rule puts them: SAME pads `max((out - 1)·stride + k - in, 0)` in all, the
/// smaller half before the input.
pub fn conv_pads(input: usize, kernel: usize, stride: usize, padding: Padding) -> (usize, usize) {
    match padding {
        Padding::Valid => (0, 0),
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(input);
            (total / 2, total - total / 2)
        }
    }
}

/// Whether the activations are the flat `[N, features]` matrix or an NCHW image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Flat,
    Nchw,
}

/// The graph as it is being written: nodes, initializers, the names taken so far and the
/// value the next node reads.
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    taken: HashSet<String>,
    current: String,
}

impl Builder {
    /// `name`, or `name_2`, `name_3`, ... if taken: every node, value and initializer name
    /// in the graph is unique.
    fn unique(&mut self, name: &str) -> String {
        let mut candidate = name.to_string();
        let mut k = 2;
        while self.taken.contains(&candidate) {
            candidate = format!("{name}_{k}");
            k += 1;
        }
        self.taken.insert(candidate.clone());
        candidate
    }

    /// Appends a node that reads the current value (and `extra` inputs) and makes its output,
    /// named `output` or after the node, the current value.
    fn node(
        &mut self,
        name: &str,
        op: &str,
        extra: Vec<String>,
        attribute: Vec<AttributeProto>,
        output: Option<&str>,
    ) {
        let name = self.unique(name);
        let out = match output {
            Some(o) => self.unique(o),
            None => name.clone(),
        };
        let mut input = vec![self.current.clone()];
        input.extend(extra);
        self.nodes.push(NodeProto {
            input,
            output: vec![out.clone()],
            name,
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
        self.current = out;
    }

    /// Adds a float initializer and returns its name.
    fn floats(&mut self, name: &str, dims: &[usize], values: Vec<f32>, doc: &str) -> String {
        let name = self.unique(name);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type::FLOAT,
            name: name.clone(),
            doc_string: doc.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// Adds a 1-D int64 initializer and returns its name.
    fn int64s(&mut self, name: &str, values: &[i64]) -> String {
        let name = self.unique(name);
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: data_type::INT64,
            name: name.clone(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    /// NHWC flat `[N, h·w·c]` to NCHW `[N, c, h, w]`.
    fn nhwc_to_nchw(&mut self, shape: Shape) {
        let dims = [
            -1,
            shape.height as i64,
            shape.width as i64,
            shape.channels as i64,
        ];
        let target = self.int64s("input/Reshape/shape", &dims);
        self.node("input/Reshape", "Reshape", vec![target], vec![], None);
        self.node(
            "input/Transpose",
            "Transpose",
            vec![],
            vec![AttributeProto::ints("perm", &[0, 3, 1, 2])],
            None,
        );
    }

    /// NCHW `[N, c, h, w]` to flat `[N, h·w·c]` in softnet's `(h, w, c)` order.
    fn nchw_to_flat(&mut self, scope: &str) {
        self.node(
            &format!("{scope}/Transpose"),
            "Transpose",
            vec![],
            vec![AttributeProto::ints("perm", &[0, 2, 3, 1])],
            None,
        );
        self.node(
            &format!("{scope}/Flatten"),
            "Flatten",
            vec![],
            vec![AttributeProto::int("axis", 1)],
            None,
        );
    }
}

/// A float tensor value `[N, features]`.
fn batch_of(name: &str, features: usize, doc: &str) -> ValueInfoProto {
    let dim = |value| Dimension { value: Some(value) };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        dim(dimension::Value::DimParam(BATCH.into())),
                        dim(dimension::Value::DimValue(features as i64)),
                    ],
                }),
            })),
        }),
        doc_string: doc.into(),
    }
}

/// HWIO `[kh, kw, in, out]` filters as ONNX's OIHW `[out, in, kh, kw]`.
fn hwio_to_oihw(w: &[f32], kh: usize, kw: usize, ci: usize, co: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..ci {
                for o in 0..co {
                    out[((o * ci + i) * kh + y) * kw + x] = w[((y * kw + x) * ci + i) * co + o];
                }
            }
        }
    }
    out
}

/// The model's doc string: what goes in, what comes out, how the layout was handled.
fn doc_string(model: &Model, options: &ExportOptions) -> String {
    let arch = model.architecture();
    let mut doc = format!(
        "softnet {} ({}). Input `{INPUT_NAME}`: float32 [N, {}], each image's pixels \
         row-major, every byte divided by 255 (0 = background, 1 = ink). Output `{LOGITS_NAME}`: \
         float32 [N, {}], the classes' logits.",
        env!("CARGO_PKG_VERSION"),
        arch.describe(),
        arch.input_len(),
        arch.classes()
    );
    if options.probabilities {
        doc += &format!(" Output `{PROBABILITIES_NAME}`: their softmax.");
    }
    if arch.is_convolutional() {
        let s = arch.input();
        doc += &format!(
            " Layout: softnet is NHWC; the input is reshaped to [N, {}, {}, {}] and transposed \
             to NCHW for Conv and MaxPool (filters OIHW, softnet's HWIO transposed), then \
             transposed back to NHWC and flattened in (h, w, c) order before the first dense \
             layer, whose weights are softnet's unchanged. Dropout is left out (identity at \
             inference).",
            s.height, s.width, s.channels
        );
    }
    doc
}

/// The ONNX model of `model` (see the module's documentation for the graph's form).
pub fn to_proto(model: &Model, options: &ExportOptions) -> ModelProto {
    let arch = model.architecture();
    let mut b = Builder {
        nodes: Vec::new(),
        initializers: Vec::new(),
        taken: HashSet::new(),
        current: INPUT_NAME.into(),
    };
    b.taken.insert(INPUT_NAME.into());
    let mut layout = Layout::Flat;
    let mut param = 0;
    let last = arch.layers().len() - 1;
    for (i, spec) in arch.layers().iter().enumerate() {
        let input = arch.input_shape(i);
        let scope = arch.layer_scope(i);
        match *spec {
            LayerSpec::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
            } => {
                if layout == Layout::Flat {
                    b.nhwc_to_nchw(input);
                    layout = Layout::Nchw;
                }
                let p = &model.layers()[param];
                let w = hwio_to_oihw(
                    model.weight(param),
                    kernel,
                    kernel,
                    input.channels,
                    out_channels,
                );
                let w = b.floats(
                    &p.weight_path,
                    &[out_channels, input.channels, kernel, kernel],
                    w,
                    "OIHW: softnet's HWIO filter transposed",
                );
                let bias = b.floats(
                    &p.bias_path,
                    &[out_channels],
                    model.bias(param).to_vec(),
                    "",
                );
                param += 1;
                let (top, bottom) = conv_pads(input.height, kernel, stride, padding);
                let (left, right) = conv_pads(input.width, kernel, stride, padding);
                let k = kernel as i64;
                let s = stride as i64;
                let pads = [top, left, bottom, right].map(|v| v as i64);
                b.node(
                    &format!("{scope}/Conv"),
                    "Conv",
                    vec![w, bias],
                    vec![
                        AttributeProto::ints("kernel_shape", &[k, k]),
                        AttributeProto::ints("strides", &[s, s]),
                        AttributeProto::ints("pads", &pads),
                        AttributeProto::ints("dilations", &[1, 1]),
                        AttributeProto::int("group", 1),
                    ],
                    None,
                );
            }
            LayerSpec::MaxPool2d { size, stride } => {
                if layout == Layout::Flat {
                    b.nhwc_to_nchw(input);
                    layout = Layout::Nchw;
                }
                let (k, s) = (size as i64, stride as i64);
                b.node(
                    &format!("{scope}/MaxPool"),
                    "MaxPool",
                    vec![],
                    vec![
                        AttributeProto::ints("kernel_shape", &[k, k]),
                        AttributeProto::ints("strides", &[s, s]),
                        AttributeProto::ints("pads", &[0, 0, 0, 0]),
                    ],
                    None,
                );
            }
            LayerSpec::Relu => b.node(&format!("{scope}/Relu"), "Relu", vec![], vec![], None),
            LayerSpec::Dropout { .. } => {}
            LayerSpec::Flatten => {
                if layout == Layout::Nchw {
                    b.nchw_to_flat(&scope);
                    layout = Layout::Flat;
                }
            }
            LayerSpec::Linear { out } => {
                if layout == Layout::Nchw {
                    b.nchw_to_flat(&format!("{scope}/flatten"));
                    layout = Layout::Flat;
                }
                let p = &model.layers()[param];
                let w = b.floats(
                    &p.weight_path,
                    &[input.len(), out],
                    model.weight(param).to_vec(),
                    "[in, out], as softnet keeps it (Gemm transB = 0)",
                );
                let bias = b.floats(&p.bias_path, &[out], model.bias(param).to_vec(), "");
                param += 1;
                let output = (i == last).then_some(LOGITS_NAME);
                b.node(
                    &format!("{scope}/Gemm"),
                    "Gemm",
                    vec![w, bias],
                    vec![],
                    output,
                );
            }
        }
    }
    let classes = arch.classes();
    let mut outputs = vec![batch_of(LOGITS_NAME, classes, "the classes' logits")];
    if options.probabilities {
        b.node(
            "probabilities/Softmax",
            "Softmax",
            vec![],
            vec![AttributeProto::int("axis", 1)],
            Some(PROBABILITIES_NAME),
        );
        outputs.push(batch_of(
            PROBABILITIES_NAME,
            classes,
            "softmax of the logits",
        ));
    }
    let graph = GraphProto {
        node: b.nodes,
        name: "softnet".into(),
        initializer: b.initializers,
        doc_string: arch.describe(),
        input: vec![batch_of(
            INPUT_NAME,
            arch.input_len(),
            "pixels row-major, each byte / 255",
        )],
        output: outputs,
        value_info: Vec::new(),
    };
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "softnet".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: String::new(),
        model_version: 1,
        doc_string: doc_string(model, options),
        graph: Some(graph),
        metadata_props: vec![StringStringEntryProto {
            key: "softnet_architecture".into(),
            value: arch.describe(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::ConvGeometry;

    #[test]
    fn same_padding_puts_the_odd_zero_after_the_input_as_softnets_kernels_do() {
        // (input, kernel, stride): 28/5/1 pads 2 and 2; 28/5/2 needs 3, one before, two
        // after; 7/2/2 needs 1, after; 6/1/3 needs none; 5/4/3 needs 2, one each side.
        for (n, k, s, expected) in [
            (28, 5, 1, (2, 2)),
            (28, 5, 2, (1, 2)),
            (7, 2, 2, (0, 1)),
            (6, 1, 3, (0, 0)),
            (5, 4, 3, (1, 1)),
        ] {
            assert_eq!(conv_pads(n, k, s, Padding::Same), expected, "{n} {k} {s}");
            let g = ConvGeometry {
                height: n,
                width: n,
                in_channels: 1,
                out_channels: 1,
                kernel_h: k,
                kernel_w: k,
                stride: s,
                padding: Padding::Same,
            };
            assert_eq!(g.pad_top(), expected.0);
            // ONNX's output size with these pads is softnet's.
            assert_eq!((n + expected.0 + expected.1 - k) / s + 1, g.out_height());
        }
        assert_eq!(conv_pads(28, 5, 2, Padding::Valid), (0, 0));
    }

    #[test]
    fn filters_go_from_hwio_to_oihw() {
        // [kh=1, kw=2, in=2, out=3]: value = 100·y + 10·x + i, plus 1000·o.
        let mut w = Vec::new();
        for x in 0..2 {
            for i in 0..2 {
                for o in 0..3 {
                    w.push((10 * x + i + 1000 * o) as f32);
                }
            }
        }
        let t = hwio_to_oihw(&w, 1, 2, 2, 3);
        // [o][i][y][x]
        assert_eq!(&t[..4], &[0.0, 10.0, 1.0, 11.0]);
        assert_eq!(&t[8..], &[2000.0, 2010.0, 2001.0, 2011.0]);
    }
}
