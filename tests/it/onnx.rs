//! ONNX export and import without Python: round trips give back the same parameters, a
//! PyTorch-style NCHW graph made here computes what it says once imported, malformed bytes
//! are errors (never panics), unsupported nodes are named.

use std::path::Path;

use prost::Message;
use softnet::nn::{Architecture, Input, LayerSpec, Model, Workspace};
use softnet::onnx::proto::{
    data_type, tensor_shape_proto::dimension, tensor_shape_proto::Dimension, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use softnet::onnx::{
    export_bytes, import_bytes, to_proto, ExportOptions, OnnxErrorKind, LOGITS_NAME,
    PROBABILITIES_NAME,
};

use crate::common::max_abs_diff;

fn params(model: &Model) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    model.visit_params(|p| out.push((p.path.to_string(), p.shape.to_vec(), p.values.to_vec())));
    out
}

/// Logits of `rows` inputs `x` (`[rows, 784]` in `[0, 1]`).
fn logits(model: &Model, x: &[f32], rows: usize) -> Vec<f32> {
    let mut ws = Workspace::inference(model, rows);
    model.inference(Input::Unit(x), rows, &mut ws).to_vec()
}

fn inputs(rows: usize) -> Vec<f32> {
    (0..rows * 784)
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect()
}

fn round_trip(arch: &str, expected: &str) {
    let arch = Architecture::from_spec(arch).unwrap();
    let model = Model::he_normal(arch, 24);
    // Biases are zero after He init: give them values so that they are checked too.
    let mut model = model;
    let count = model.params().len();
    for (i, p) in model.params_mut().iter_mut().enumerate() {
        if *p == 0.0 {
            *p = (i as f32 / count as f32) - 0.5;
        }
    }
    for probabilities in [false, true] {
        let bytes = export_bytes(&model, &ExportOptions { probabilities });
        let imported = import_bytes(&bytes, Path::new("round-trip.onnx")).unwrap();
        assert_eq!(imported.model.architecture().describe(), expected);
        // Bit for bit: the import undoes the export's transposes exactly.
        assert_eq!(params(&imported.model), params(&model));
        let x = inputs(3);
        assert_eq!(logits(&imported.model, &x, 3), logits(&model, &x, 3));
        // Nothing was adapted but the optional Softmax.
        assert_eq!(
            imported.notes.len(),
            usize::from(probabilities),
            "{:?}",
            imported.notes
        );
    }
}

#[test]
fn dense_models_round_trip_to_the_same_parameters() {
    round_trip("fc10", "784-10");
    round_trip("fc64,fc32,fc10", "784-64-32-10");
}

#[test]
fn cnns_round_trip_to_the_same_parameters_less_dropout() {
    round_trip(
        "conv5x5x8s2,conv3x3x4valid,pool3s2,fc16,dropout0.5,fc10",
        "28x28x1:conv5x5x8s2,relu,conv3x3x4valid,relu,pool3s2,flatten,fc16,relu,fc10",
    );
    round_trip(
        "conv5x5x32,pool2,conv5x5x64,pool2,fc1024,dropout0.5,fc10",
        "28x28x1:conv5x5x32,relu,pool2,conv5x5x64,relu,pool2,flatten,fc1024,relu,fc10",
    );
}

#[test]
fn exported_graphs_have_unique_names_a_dynamic_batch_and_say_how_to_feed_them() {
    let model = Model::he_normal(Architecture::cnn(), 1);
    let m = to_proto(
        &model,
        &ExportOptions {
            probabilities: true,
        },
    );
    assert_eq!(m.opset_import[0].version, 13);
    assert!(m.doc_string.contains("divided by 255"), "{}", m.doc_string);
    let g = m.graph.unwrap();
    let mut names: Vec<&str> = g.node.iter().map(|n| n.name.as_str()).collect();
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(
        ops,
        [
            "Reshape",
            "Transpose",
            "Conv",
            "Relu",
            "MaxPool",
            "Conv",
            "Relu",
            "MaxPool",
            "Transpose",
            "Flatten",
            "Gemm",
            "Relu",
            "Gemm",
            "Softmax"
        ]
    );
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "node names repeat");
    let outputs: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outputs, [LOGITS_NAME, PROBABILITIES_NAME]);
    let Some(type_proto::Value::TensorType(t)) = g.input[0].r#type.clone().unwrap().value else {
        panic!("the input is a tensor");
    };
    let dims = t.shape.unwrap().dim;
    assert_eq!(dims[0].value, Some(dimension::Value::DimParam("N".into())));
    assert_eq!(dims[1].value, Some(dimension::Value::DimValue(784)));
    let conv1 = &g.node[2];
    let pads = conv1.attribute.iter().find(|a| a.name == "pads").unwrap();
    assert_eq!(pads.ints, [2, 2, 2, 2]);
}

// Graphs written here as PyTorch writes them.

fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        name: name.into(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn node(name: &str, op: &str, input: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: input.iter().map(|s| s.to_string()).collect(),
        output: vec![format!("{name}:0")],
        name: name.into(),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
    let mut dim = vec![Dimension {
        value: Some(dimension::Value::DimParam("batch".into())),
    }];
    dim.extend(dims.iter().map(|&d| Dimension {
        value: Some(dimension::Value::DimValue(d)),
    }));
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

fn model(nodes: Vec<NodeProto>, initializer: Vec<TensorProto>, input: &[i64]) -> Vec<u8> {
    let last = nodes.last().unwrap().output[0].clone();
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer,
            input: vec![value("x", input)],
            output: vec![value(&last, &[])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn pseudo(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + seed) * 2654435761usize) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// `[N, 1, 28, 28]` → Conv 3 filters 3x3 pads 1 → Relu → Flatten (c, h, w) → Gemm transB
/// to 4: the dense weights must be permuted for softnet's (h, w, c) order.
struct PytorchCnn {
    bytes: Vec<u8>,
    /// Conv `[3, 1, 3, 3]` and `[3]`.
    cw: Vec<f32>,
    cb: Vec<f32>,
    /// Gemm `[4, 3·784]` (transB) and `[4]`.
    fw: Vec<f32>,
    fb: Vec<f32>,
}

fn pytorch_cnn() -> PytorchCnn {
    let (cw, cb) = (pseudo(3 * 9, 1), pseudo(3, 2));
    let (fw, fb) = (pseudo(4 * 3 * 784, 3), pseudo(4, 4));
    let bytes = model(
        vec![
            node(
                "conv",
                "Conv",
                &["x", "cw", "cb"],
                vec![
                    AttributeProto::ints("kernel_shape", &[3, 3]),
                    AttributeProto::ints("pads", &[1, 1, 1, 1]),
                ],
            ),
            node("relu", "Relu", &["conv:0"], vec![]),
            node(
                "flatten",
                "Flatten",
                &["relu:0"],
                vec![AttributeProto::int("axis", 1)],
            ),
            node(
                "fc",
                "Gemm",
                &["flatten:0", "fw", "fb"],
                vec![AttributeProto::int("transB", 1)],
            ),
        ],
        vec![
            floats("cw", &[3, 1, 3, 3], &cw),
            floats("cb", &[3], &cb),
            floats("fw", &[4, 3 * 784], &fw),
            floats("fb", &[4], &fb),
        ],
        &[1, 28, 28],
    );
    PytorchCnn {
        bytes,
        cw,
        cb,
        fw,
        fb,
    }
}

#[test]
fn a_pytorch_style_nchw_cnn_computes_what_its_graph_says() {
    let PytorchCnn {
        bytes,
        cw,
        cb,
        fw,
        fb,
    } = pytorch_cnn();
    let imported = import_bytes(&bytes, Path::new("pt.onnx")).unwrap();
    assert_eq!(
        imported.model.architecture().describe(),
        "28x28x1:conv3x3x3,relu,flatten,fc4"
    );
    assert!(
        imported.notes[0].contains("reordered"),
        "{:?}",
        imported.notes
    );
    let x = inputs(2);
    let ours = logits(&imported.model, &x, 2);
    // The graph evaluated directly in NCHW, in f64.
    for r in 0..2 {
        let img = &x[r * 784..(r + 1) * 784];
        let mut act = vec![0.0f64; 3 * 784]; // [c, h, w]
        for c in 0..3 {
            for h in 0..28 {
                for w in 0..28 {
                    let mut s = f64::from(cb[c]);
                    for dy in 0..3 {
                        for dx in 0..3 {
                            let (y, xx) = (h + dy, w + dx);
                            if (1..29).contains(&y) && (1..29).contains(&xx) {
                                s += f64::from(cw[c * 9 + dy * 3 + dx])
                                    * f64::from(img[(y - 1) * 28 + xx - 1]);
                            }
                        }
                    }
                    act[(c * 28 + h) * 28 + w] = s.max(0.0);
                }
            }
        }
        for o in 0..4 {
            let mut s = f64::from(fb[o]);
            for (i, a) in act.iter().enumerate() {
                s += f64::from(fw[o * 3 * 784 + i]) * a;
            }
            let got = ours[r * 4 + o];
            assert!((f64::from(got) - s).abs() < 1e-4, "{r} {o}: {got} vs {s}");
        }
    }
}

#[test]
fn tensorflow_style_matmul_add_and_a_final_softmax_import() {
    let (w, b) = (pseudo(784 * 5, 9), pseudo(5, 8));
    let bytes = model(
        vec![
            node("dense/MatMul", "MatMul", &["x", "w"], vec![]),
            node("dense/BiasAdd", "Add", &["b", "dense/MatMul:0"], vec![]),
            node("dense/Softmax", "Softmax", &["dense/BiasAdd:0"], vec![]),
        ],
        vec![floats("w", &[784, 5], &w), floats("b", &[5], &b)],
        &[784],
    );
    let imported = import_bytes(&bytes, Path::new("tf.onnx")).unwrap();
    assert_eq!(imported.model.architecture().describe(), "784-5");
    assert_eq!(imported.model.weight(0), &w[..]);
    assert_eq!(imported.model.bias(0), &b[..]);
    let x = inputs(1);
    let expected: Vec<f32> = (0..5)
        .map(|j| b[j] + (0..784).map(|i| x[i] * w[i * 5 + j]).sum::<f32>())
        .collect();
    assert!(max_abs_diff(&logits(&imported.model, &x, 1), &expected) < 1e-4);
}

fn kind(bytes: &[u8]) -> OnnxErrorKind {
    import_bytes(bytes, Path::new("bad.onnx")).unwrap_err().kind
}

#[test]
fn unsupported_nodes_are_refused_by_name() {
    let (w, b) = (pseudo(784 * 5, 1), pseudo(5, 2));
    let with = |extra: NodeProto| {
        model(
            vec![
                node("fc", "Gemm", &["x", "w", "b"], vec![]),
                extra,
                node("fc2", "Gemm", &["act:0", "w2"], vec![]),
            ],
            vec![
                floats("w", &[784, 5], &w),
                floats("b", &[5], &b),
                floats("w2", &[5, 2], &pseudo(10, 3)),
            ],
            &[784],
        )
    };
    let e = import_bytes(
        &with(node("act", "Sigmoid", &["fc:0"], vec![])),
        Path::new("m.onnx"),
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("m.onnx: node \"act\" (Sigmoid): operator not supported"),
        "{text}"
    );
    // An attribute that would change what a supported operator computes.
    let e = kind(&with(node(
        "act",
        "Relu",
        &["fc:0"],
        vec![AttributeProto::int("x", 1)],
    )));
    assert!(
        matches!(&e, OnnxErrorKind::Unsupported { node, .. } if node == "node \"act\" (Relu)"),
        "{e}"
    );
    // A grouped and a dilated conv.
    let conv = |attrs: Vec<AttributeProto>| {
        model(
            vec![
                node("c", "Conv", &["x", "cw"], attrs),
                node("f", "Flatten", &["c:0"], vec![]),
                node("g", "Gemm", &["f:0", "gw"], vec![]),
            ],
            vec![
                floats("cw", &[2, 1, 3, 3], &pseudo(18, 1)),
                floats("gw", &[2 * 26 * 26, 2], &pseudo(2 * 26 * 26 * 2, 1)),
            ],
            &[1, 28, 28],
        )
    };
    assert!(import_bytes(&conv(vec![]), Path::new("ok.onnx")).is_ok());
    for (attr, reason) in [
        (AttributeProto::int("group", 2), "group = 2"),
        (
            AttributeProto::ints("dilations", &[2, 2]),
            "dilations [2, 2]",
        ),
        (AttributeProto::ints("pads", &[0, 0, 1, 1]), "neither SAME"),
    ] {
        match kind(&conv(vec![attr])) {
            OnnxErrorKind::Unsupported { node, reason: r } => {
                assert_eq!(node, "node \"c\" (Conv)");
                assert!(r.contains(reason), "{r}");
            }
            other => panic!("{other}"),
        }
    }
    // Three channels in NCHW are not softnet's NHWC buffer.
    let rgb = model(
        vec![node("c", "Conv", &["x", "cw"], vec![])],
        vec![floats("cw", &[2, 3, 3, 3], &pseudo(54, 1))],
        &[3, 8, 8],
    );
    assert!(kind(&rgb).to_string().contains("NCHW"));
}

#[test]
fn malformed_bytes_are_errors_not_panics() {
    let model = Model::he_normal(
        Architecture::from_spec("conv3x3x2s2,pool2,fc4,fc10").unwrap(),
        3,
    );
    let bytes = export_bytes(&model, &ExportOptions::default());
    // Every truncation: an error (the graph is cut) or, if the cut falls between fields of
    // the top-level message, a model that fails later; never a panic.
    for cut in (0..bytes.len()).step_by(7) {
        let _ = import_bytes(&bytes[..cut], Path::new("cut.onnx"));
    }
    assert!(matches!(
        kind(&bytes[..bytes.len() / 2]),
        OnnxErrorKind::Invalid(_)
    ));
    // Flipped bytes.
    for i in (0..bytes.len()).step_by(13) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        let _ = import_bytes(&b, Path::new("flipped.onnx"));
    }
    // A graph (field 7, length-delimited) claiming 2^40 bytes.
    let huge = [0x3a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
    assert!(kind(&huge).to_string().contains("not an ONNX model"));
    // Field 7 as a varint: the wrong wire type.
    assert!(kind(&[0x38, 0x01])
        .to_string()
        .contains("not an ONNX model"));
    // Empty: no opset.
    assert!(kind(&[]).to_string().contains("opset"));

    // Tensors whose data does not match their dimensions.
    let tf = |dims: &[i64], raw: usize| {
        let mut w = floats("w", dims, &[]);
        w.raw_data = vec![0; raw];
        self::model(
            vec![node("fc", "MatMul", &["x", "w"], vec![])],
            vec![w],
            &[784],
        )
    };
    assert!(import_bytes(&tf(&[784, 2], 784 * 8), Path::new("ok")).is_ok());
    let e = kind(&tf(&[784, 2], 784 * 8 - 4)).to_string();
    assert!(e.contains("raw_data holds 6268 bytes"), "{e}");
    let e = kind(&tf(&[1 << 40, 1 << 40], 8)).to_string();
    assert!(e.contains("too large"), "{e}");
    let e = kind(&tf(&[-1, 2], 8)).to_string();
    assert!(e.contains("negative"), "{e}");
    let e = kind(&tf(&[784, 2, 1, 1, 1, 1, 1, 1, 1], 784 * 8)).to_string();
    assert!(e.contains("9 dimensions"), "{e}");
}

#[test]
fn imported_cnn_keeps_softnets_layers_and_names() {
    // A PyTorch CNN becomes softnet's conv/pool/fc naming, so the rest of softnet (model
    // files, pictures) treats it as one of its own.
    let m = import_bytes(&pytorch_cnn().bytes, Path::new("pt.onnx"))
        .unwrap()
        .model;
    let names: Vec<String> = params(&m).into_iter().map(|p| p.0).collect();
    assert_eq!(
        names,
        ["conv1/weight", "conv1/bias", "fc1/weight", "fc1/bias"]
    );
    assert!(matches!(
        m.architecture().layers()[0],
        LayerSpec::Conv2d {
            out_channels: 3,
            kernel: 3,
            stride: 1,
            ..
        }
    ));
}

#[cfg(feature = "cli")]
#[test]
fn the_cli_exports_imports_and_names_the_node_it_refuses() {
    use crate::cli::{run_ok, softnet};
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);
    let model = Model::he_normal(
        Architecture::from_spec("conv3x3x4s2,pool2,fc8,fc10").unwrap(),
        5,
    );
    softnet::io::save_model(&model, &file("m.safetensors"), &[]).unwrap();
    let out = run_ok(
        softnet()
            .args(["export", "--model"])
            .arg(file("m.safetensors"))
            .arg("--onnx")
            .arg(file("m.onnx")),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ONNX opset 13"));
    run_ok(
        softnet()
            .arg("import")
            .arg(file("m.onnx"))
            .arg("-o")
            .arg(file("back.safetensors")),
    );
    let back = softnet::io::load_model(&file("back.safetensors")).unwrap();
    assert_eq!(params(&back), params(&model));
    // Logits, printed in full, are the model's.
    let image = [128u8; 784];
    let mut child = softnet()
        .args(["predict", "--stdin", "--logits", "--model"])
        .arg(file("back.safetensors"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &image).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // `0 class l0 l1 ...`
    let printed: Vec<f32> = text
        .split_whitespace()
        .skip(2)
        .map(|v| v.parse().unwrap())
        .collect();
    let x: Vec<f32> = image.iter().map(|&p| f32::from(p) / 255.0).collect();
    assert!(
        max_abs_diff(&printed, &logits(&model, &x, 1)) < 1e-5,
        "{text}"
    );
    // A Sigmoid: exit 1, the node named.
    let w = pseudo(784 * 3, 1);
    std::fs::write(
        file("bad.onnx"),
        self::model(
            vec![
                node("dense", "MatMul", &["x", "w"], vec![]),
                node("squash", "Sigmoid", &["dense:0"], vec![]),
            ],
            vec![floats("w", &[784, 3], &w)],
            &[784],
        ),
    )
    .unwrap();
    let out = softnet()
        .arg("import")
        .arg(file("bad.onnx"))
        .arg("-o")
        .arg(file("x.safetensors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node \"squash\" (Sigmoid)"), "{err}");
    assert!(!file("x.safetensors").exists());
}
