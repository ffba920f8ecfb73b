//! The GraphDef of softnet's models, for TensorBoard's Graphs tab.
//!
//! softnet does not execute a graph; this one describes the computation with the node names of
//! the TensorFlow tutorial, so the Graphs tab draws the same picture: the scopes `input`,
//! `variables` (or `layer1`, `layer2`, ...), `logits`, `loss`, `train` and `evaluation`, with
//! edges from the inputs each operation reads. Edges carry `_output_shapes` (batch size `?`).

use crate::nn::{Architecture, LayerSpec, Shape};

use super::proto::{
    attr_value, tensor_shape_proto, AttrValue, GraphDef, NodeDef, TensorShapeProto, DT_BOOL,
    DT_FLOAT, DT_INT32, DT_INT64,
};

/// Unknown dimension (the batch).
const BATCH: i64 = -1;

/// Names of one dense layer in the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerNames {
    /// Weight variable, `[inputs, outputs]`: `variables/Weight`, `layer1/weight`, `logits/weight`.
    pub weight: String,
    /// Bias variable, `[outputs]`: `variables/Bias`, `layer1/bias`, `logits/bias`.
    pub bias: String,
    /// Scope of the layer's operations: `logits`, `layer1`, ...
    pub scope: String,
}

/// The names of the layers of a model with `num_hidden` hidden layers, input side first.
///
/// Softmax regression (no hidden layers) uses the tutorial's `variables/Weight`,
/// `variables/Bias` and `logits`; a dense network uses `layer<k>/weight`, `layer<k>/bias`
/// (k from 1) for hidden layers and `logits/weight`, `logits/bias` for the last one.
/// These are also good [`ParamView`](super::ParamView) paths.
pub fn layer_names(num_hidden: usize) -> Vec<LayerNames> {
    // The names come from the architecture (one place makes them); widths do not matter.
    let arch = Architecture::dense(1, &vec![1; num_hidden], 1).expect("widths of 1 are valid");
    (0..arch.layers().len())
        .filter_map(|i| {
            let params = arch.params_of(i);
            let [weight, bias] = &params[..] else {
                return None;
            };
            Some(LayerNames {
                weight: weight.path.clone(),
                bias: bias.path.clone(),
                scope: arch.layer_scope(i),
            })
        })
        .collect()
}

/// Builds the graph of a model with `input` features, the given hidden layer widths (ReLU) and
/// `classes` outputs, trained by softmax cross-entropy and gradient descent.
pub fn model_graph(input: usize, hidden: &[usize], classes: usize) -> GraphDef {
    let mut g = Builder::default();
    let dim = |n: usize| n as i64;

    // input
    g.source("input/image", "Placeholder", DT_FLOAT, &[BATCH, dim(input)]);
    g.source(
        "input/label",
        "Placeholder",
        DT_FLOAT,
        &[BATCH, dim(classes)],
    );

    // variables and forward layers
    let names = layer_names(hidden.len());
    let widths: Vec<usize> = std::iter::once(input)
        .chain(hidden.iter().copied())
        .chain(std::iter::once(classes))
        .collect();
    let mut x = "input/image".to_string(); // activation feeding the next layer
    let mut layer_inputs = Vec::new(); // what each layer's MatMul read, for the gradients
    for (k, layer) in names.iter().enumerate() {
        let (n_in, n_out) = (dim(widths[k]), dim(widths[k + 1]));
        g.variable(&layer.weight, &[n_in, n_out]);
        g.variable(&layer.bias, &[n_out]);
        let matmul = format!("{}/MatMul", layer.scope);
        let add = format!("{}/add", layer.scope);
        g.op(&matmul, "MatMul", &[&x, &layer.weight], &[&[BATCH, n_out]]);
        g.op(&add, "Add", &[&matmul, &layer.bias], &[&[BATCH, n_out]]);
        layer_inputs.push(x);
        x = if k + 1 < names.len() {
            let relu = format!("{}/Relu", layer.scope);
            g.op(&relu, "Relu", &[&add], &[&[BATCH, n_out]]);
            relu
        } else {
            add
        };
    }
    let logits = x;
    let c = dim(classes);

    // loss
    let xent = "loss/SoftmaxCrossEntropyWithLogits";
    g.op(
        xent,
        "SoftmaxCrossEntropyWithLogits",
        &[&logits, "input/label"],
        &[&[BATCH], &[BATCH, c]],
    );
    g.source("loss/Const", "Const", DT_INT32, &[1]);
    g.op("loss/Mean", "Mean", &[xent, "loss/Const"], &[&[]]);

    // train: backward pass, then one update per variable
    g.source("train/gradients/Shape", "Const", DT_INT32, &[0]);
    g.source("train/gradients/grad_ys_0", "Const", DT_FLOAT, &[]);
    g.op(
        "train/gradients/Fill",
        "Fill",
        &["train/gradients/Shape", "train/gradients/grad_ys_0"],
        &[&[]],
    );
    let mean_grad = "train/gradients/loss/Mean_grad";
    g.op(&format!("{mean_grad}/Shape"), "Shape", &[xent], &[&[1]]);
    g.op(
        &format!("{mean_grad}/Tile"),
        "Tile",
        &["train/gradients/Fill", &format!("{mean_grad}/Shape")],
        &[&[BATCH]],
    );
    g.op(
        &format!("{mean_grad}/truediv"),
        "RealDiv",
        &[&format!("{mean_grad}/Tile"), &format!("{mean_grad}/Shape")],
        &[&[BATCH]],
    );
    let xent_grad = "train/gradients/loss/SoftmaxCrossEntropyWithLogits_grad";
    g.op(
        &format!("{xent_grad}/ExpandDims"),
        "ExpandDims",
        &[&format!("{mean_grad}/truediv")],
        &[&[BATCH, 1]],
    );
    // (softmax - onehot) / batch: the second output of the fused op times the upstream gradient.
    g.op(
        &format!("{xent_grad}/mul"),
        "Mul",
        &[&format!("{xent_grad}/ExpandDims"), &format!("{xent}:1")],
        &[&[BATCH, c]],
    );
    let mut upstream = format!("{xent_grad}/mul"); // gradient of the current layer's `add`
    let mut param_grads = Vec::new(); // (variable, gradient node)
    for k in (0..names.len()).rev() {
        let layer = &names[k];
        let (n_in, n_out) = (dim(widths[k]), dim(widths[k + 1]));
        let grad = format!("train/gradients/{}", layer.scope);
        let bias_grad = format!("{grad}/add_grad/Sum");
        let weight_grad = format!("{grad}/MatMul_grad/MatMul_1");
        g.op(&bias_grad, "Sum", &[&upstream], &[&[n_out]]);
        g.op(
            &weight_grad,
            "MatMul",
            &[&layer_inputs[k], &upstream],
            &[&[n_in, n_out]],
        );
        param_grads.push((layer.bias.clone(), bias_grad));
        param_grads.push((layer.weight.clone(), weight_grad));
        if k > 0 {
            let input_grad = format!("{grad}/MatMul_grad/MatMul");
            g.op(
                &input_grad,
                "MatMul",
                &[&upstream, &layer.weight],
                &[&[BATCH, n_in]],
            );
            let below = &names[k - 1].scope;
            let relu_grad = format!("train/gradients/{below}/Relu_grad/ReluGrad");
            g.op(
                &relu_grad,
                "ReluGrad",
                &[&input_grad, &format!("{below}/Relu")],
                &[&[BATCH, n_in]],
            );
            upstream = relu_grad;
        }
    }
    g.source(
        "train/GradientDescent/learning_rate",
        "Const",
        DT_FLOAT,
        &[],
    );
    let mut updates = Vec::new();
    for (variable, grad) in param_grads.iter().rev() {
        let update = format!("train/GradientDescent/update_{variable}/ApplyGradientDescent");
        let shape = g.shape_of(variable);
        g.op(
            &update,
            "ApplyGradientDescent",
            &[variable, "train/GradientDescent/learning_rate", grad],
            &[&shape],
        );
        updates.push(format!("^{update}"));
    }
    let controls: Vec<&str> = updates.iter().map(String::as_str).collect();
    g.op("train/GradientDescent", "NoOp", &controls, &[]);

    // evaluation
    g.source("evaluation/ArgMax/dimension", "Const", DT_INT32, &[]);
    g.op(
        "evaluation/ArgMax",
        "ArgMax",
        &[&logits, "evaluation/ArgMax/dimension"],
        &[&[BATCH]],
    );
    g.source("evaluation/ArgMax_1/dimension", "Const", DT_INT32, &[]);
    g.op(
        "evaluation/ArgMax_1",
        "ArgMax",
        &["input/label", "evaluation/ArgMax_1/dimension"],
        &[&[BATCH]],
    );
    g.set_dtype("evaluation/ArgMax", "output_type", DT_INT64);
    g.set_dtype("evaluation/ArgMax_1", "output_type", DT_INT64);
    g.op(
        "evaluation/Equal",
        "Equal",
        &["evaluation/ArgMax", "evaluation/ArgMax_1"],
        &[&[BATCH]],
    );
    g.set_dtype("evaluation/Equal", "T", DT_INT64);
    g.op(
        "evaluation/Cast",
        "Cast",
        &["evaluation/Equal"],
        &[&[BATCH]],
    );
    g.set_dtype("evaluation/Cast", "SrcT", DT_BOOL);
    g.set_dtype("evaluation/Cast", "DstT", DT_FLOAT);
    g.source("evaluation/Const", "Const", DT_INT32, &[1]);
    g.op(
        "evaluation/Mean",
        "Mean",
        &["evaluation/Cast", "evaluation/Const"],
        &[&[]],
    );

    GraphDef { node: g.nodes }
}

/// The graph of any architecture: [`model_graph`]'s for a dense network, otherwise one
/// name scope per layer (`conv1`, `pool1`, `flatten`, `fc1`, ...; ReLU and dropout inside
/// the scope of the layer they follow), then `loss`, `train` (one update per parameter from
/// the backward pass, drawn as one node) and `evaluation`.
pub fn architecture_graph(arch: &Architecture) -> GraphDef {
    if let Some(w) = arch.dense_widths() {
        return model_graph(w[0], &w[1..w.len() - 1], w[w.len() - 1]);
    }
    let mut g = Builder::default();
    let dims = |s: Shape| -> Vec<i64> {
        if s.is_flat() {
            vec![BATCH, s.len() as i64]
        } else {
            vec![BATCH, s.height as i64, s.width as i64, s.channels as i64]
        }
    };
    let input = arch.input();
    let classes = arch.classes() as i64;
    g.source(
        "input/image",
        "Placeholder",
        DT_FLOAT,
        &[BATCH, input.len() as i64],
    );
    g.source("input/label", "Placeholder", DT_FLOAT, &[BATCH, classes]);
    let mut x = "input/image".to_string();
    if !input.is_flat() {
        g.source("input/Reshape/shape", "Const", DT_INT32, &[4]);
        g.op(
            "input/Reshape",
            "Reshape",
            &[&x, "input/Reshape/shape"],
            &[&dims(input)],
        );
        x = "input/Reshape".into();
    }
    let mut variables = Vec::new();
    for (i, spec) in arch.layers().iter().enumerate() {
        let scope = arch.layer_scope(i);
        let out = dims(arch.shapes()[i]);
        for p in arch.params_of(i) {
            let shape: Vec<i64> = p.shape.iter().map(|&d| d as i64).collect();
            g.variable(&p.path, &shape);
            variables.push(p.path);
        }
        let params = arch.params_of(i);
        let name = match spec {
            LayerSpec::Linear { .. } => {
                let matmul = format!("{scope}/MatMul");
                g.op(&matmul, "MatMul", &[&x, &params[0].path], &[&out]);
                let add = format!("{scope}/add");
                g.op(&add, "Add", &[&matmul, &params[1].path], &[&out]);
                add
            }
            LayerSpec::Conv2d { .. } => {
                let conv = format!("{scope}/Conv2D");
                g.op(&conv, "Conv2D", &[&x, &params[0].path], &[&out]);
                let add = format!("{scope}/BiasAdd");
                g.op(&add, "BiasAdd", &[&conv, &params[1].path], &[&out]);
                add
            }
            LayerSpec::Relu => {
                let relu = format!("{scope}/Relu");
                g.op(&relu, "Relu", &[&x], &[&out]);
                relu
            }
            LayerSpec::MaxPool2d { .. } => {
                let pool = format!("{scope}/MaxPool");
                g.op(&pool, "MaxPool", &[&x], &[&out]);
                pool
            }
            LayerSpec::Flatten => {
                let shape = format!("{scope}/Reshape/shape");
                g.source(&shape, "Const", DT_INT32, &[2]);
                let reshape = format!("{scope}/Reshape");
                g.op(&reshape, "Reshape", &[&x, &shape], &[&out]);
                reshape
            }
            LayerSpec::Dropout { .. } => {
                let mask = format!("{scope}/dropout/mask");
                g.source(&mask, "RandomUniform", DT_FLOAT, &out);
                let mul = format!("{scope}/dropout/mul");
                g.op(&mul, "Mul", &[&x, &mask], &[&out]);
                mul
            }
        };
        x = name;
    }
    let logits = x;
    let xent = "loss/SoftmaxCrossEntropyWithLogits";
    g.op(
        xent,
        "SoftmaxCrossEntropyWithLogits",
        &[&logits, "input/label"],
        &[&[BATCH], &[BATCH, classes]],
    );
    g.source("loss/Const", "Const", DT_INT32, &[1]);
    g.op("loss/Mean", "Mean", &[xent, "loss/Const"], &[&[]]);
    let shapes: Vec<Vec<i64>> = variables.iter().map(|v| g.shape_of(v)).collect();
    let shape_refs: Vec<&[i64]> = shapes.iter().map(Vec::as_slice).collect();
    g.op(
        "train/gradients/Backprop",
        "SymbolicGradient",
        &["loss/Mean"],
        &shape_refs,
    );
    g.source(
        "train/GradientDescent/learning_rate",
        "Const",
        DT_FLOAT,
        &[],
    );
    let mut updates = Vec::new();
    for (k, variable) in variables.iter().enumerate() {
        let update = format!("train/GradientDescent/update_{variable}/ApplyGradientDescent");
        let grad = format!("train/gradients/Backprop:{k}");
        g.op(
            &update,
            "ApplyGradientDescent",
            &[variable, "train/GradientDescent/learning_rate", &grad],
            &[&shapes[k]],
        );
        updates.push(format!("^{update}"));
    }
    let controls: Vec<&str> = updates.iter().map(String::as_str).collect();
    g.op("train/GradientDescent", "NoOp", &controls, &[]);
    g.source("evaluation/ArgMax/dimension", "Const", DT_INT32, &[]);
    g.op(
        "evaluation/ArgMax",
        "ArgMax",
        &[&logits, "evaluation/ArgMax/dimension"],
        &[&[BATCH]],
    );
    g.set_dtype("evaluation/ArgMax", "output_type", DT_INT64);
    GraphDef { node: g.nodes }
}

#[derive(Default)]
struct Builder {
    nodes: Vec<NodeDef>,
}

impl Builder {
    /// An operation with inputs and one shape per output.
    fn op(&mut self, name: &str, op: &str, inputs: &[&str], shapes: &[&[i64]]) {
        let mut node = NodeDef {
            name: name.to_string(),
            op: op.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        if !shapes.is_empty() {
            let list = attr_value::ListValue {
                shape: shapes.iter().map(|s| shape(s)).collect(),
            };
            node.attr.insert(
                "_output_shapes".into(),
                AttrValue {
                    value: Some(attr_value::Value::List(list)),
                },
            );
        }
        self.nodes.push(node);
    }

    /// A node without inputs (placeholder, constant) of the given type and shape.
    fn source(&mut self, name: &str, op: &str, dtype: i32, dims: &[i64]) {
        self.op(name, op, &[], &[dims]);
        self.set_dtype(name, "dtype", dtype);
        if op == "Placeholder" {
            let node = self.nodes.last_mut().expect("just pushed");
            node.attr.insert(
                "shape".into(),
                AttrValue {
                    value: Some(attr_value::Value::Shape(shape(dims))),
                },
            );
        }
    }

    /// A float variable with its zero initial value and the assignment between them.
    fn variable(&mut self, name: &str, dims: &[i64]) {
        self.source(name, "VariableV2", DT_FLOAT, dims);
        let initial = format!("{name}/initial_value");
        self.source(&initial, "Const", DT_FLOAT, dims);
        self.op(
            &format!("{name}/Assign"),
            "Assign",
            &[name, &initial],
            &[dims],
        );
    }

    fn set_dtype(&mut self, name: &str, key: &str, dtype: i32) {
        if let Some(node) = self.nodes.iter_mut().rev().find(|n| n.name == name) {
            node.attr.insert(
                key.into(),
                AttrValue {
                    value: Some(attr_value::Value::Type(dtype)),
                },
            );
        }
    }

    /// The first output shape recorded for `name`.
    fn shape_of(&self, name: &str) -> Vec<i64> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .and_then(|n| match n.attr.get("_output_shapes")?.value.as_ref()? {
                attr_value::Value::List(list) => list.shape.first().cloned(),
                _ => None,
            })
            .map(|s| s.dim.iter().map(|d| d.size).collect())
            .unwrap_or_default()
    }
}

fn shape(dims: &[i64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: dims
            .iter()
            .map(|&size| tensor_shape_proto::Dim { size })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn inputs<'a>(g: &'a GraphDef, name: &str) -> Vec<&'a str> {
        let node = g.node.iter().find(|n| n.name == name);
        let node = node.unwrap_or_else(|| panic!("no node {name}"));
        node.input.iter().map(String::as_str).collect()
    }

    /// Every graph must have unique, valid names and inputs that name existing nodes.
    fn check_well_formed(g: &GraphDef) {
        let names: HashSet<&str> = g.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names.len(), g.node.len(), "duplicate node names");
        for n in &g.node {
            let mut chars = n.name.chars();
            let first = chars.next().unwrap();
            assert!(first.is_ascii_alphanumeric() || first == '.', "{}", n.name);
            assert!(
                chars.all(|c| c.is_ascii_alphanumeric() || "_>./".contains(c)),
                "{}",
                n.name
            );
            for input in &n.input {
                let source = input.trim_start_matches('^');
                let source = source.split(':').next().unwrap();
                assert!(names.contains(source), "{} reads missing {input}", n.name);
            }
        }
    }

    #[test]
    fn softmax_regression_graph() {
        let g = model_graph(784, &[], 10);
        check_well_formed(&g);
        assert_eq!(
            inputs(&g, "logits/MatMul"),
            ["input/image", "variables/Weight"]
        );
        assert_eq!(
            inputs(&g, "logits/add"),
            ["logits/MatMul", "variables/Bias"]
        );
        assert_eq!(
            inputs(&g, "loss/SoftmaxCrossEntropyWithLogits"),
            ["logits/add", "input/label"]
        );
        assert_eq!(
            inputs(&g, "evaluation/ArgMax"),
            ["logits/add", "evaluation/ArgMax/dimension"]
        );
        assert_eq!(inputs(&g, "evaluation/ArgMax_1")[0], "input/label");
        assert_eq!(
            inputs(
                &g,
                "train/GradientDescent/update_variables/Weight/ApplyGradientDescent"
            ),
            [
                "variables/Weight",
                "train/GradientDescent/learning_rate",
                "train/gradients/logits/MatMul_grad/MatMul_1"
            ]
        );
        assert_eq!(
            inputs(&g, "variables/Weight/Assign"),
            ["variables/Weight", "variables/Weight/initial_value"]
        );
        assert_eq!(inputs(&g, "train/GradientDescent").len(), 2);
        // The weight's shape travels along its edges.
        let b = Builder { nodes: g.node };
        assert_eq!(b.shape_of("variables/Weight"), [784, 10]);
        assert_eq!(b.shape_of("logits/add"), [-1, 10]);
    }

    #[test]
    fn dense_network_graph() {
        let g = model_graph(784, &[256, 64], 10);
        check_well_formed(&g);
        assert_eq!(
            inputs(&g, "layer1/MatMul"),
            ["input/image", "layer1/weight"]
        );
        assert_eq!(
            inputs(&g, "layer2/MatMul"),
            ["layer1/Relu", "layer2/weight"]
        );
        assert_eq!(
            inputs(&g, "logits/MatMul"),
            ["layer2/Relu", "logits/weight"]
        );
        assert_eq!(inputs(&g, "logits/add"), ["logits/MatMul", "logits/bias"]);
        assert_eq!(
            inputs(&g, "train/gradients/layer1/Relu_grad/ReluGrad"),
            ["train/gradients/layer2/MatMul_grad/MatMul", "layer1/Relu"]
        );
        assert_eq!(
            inputs(&g, "train/gradients/layer1/MatMul_grad/MatMul_1"),
            ["input/image", "train/gradients/layer1/Relu_grad/ReluGrad"]
        );
        // One update per variable: 3 layers x (weight, bias).
        assert_eq!(inputs(&g, "train/GradientDescent").len(), 6);
        assert!(!g.node.iter().any(|n| n.name.starts_with("variables/")));
        let b = Builder { nodes: g.node };
        assert_eq!(b.shape_of("layer2/weight"), [256, 64]);
    }

    #[test]
    fn convolutional_graph_has_a_scope_per_layer() {
        let g = architecture_graph(&Architecture::cnn());
        check_well_formed(&g);
        assert_eq!(
            inputs(&g, "conv1/Conv2D"),
            ["input/Reshape", "conv1/weight"]
        );
        assert_eq!(inputs(&g, "conv1/Relu"), ["conv1/BiasAdd"]);
        assert_eq!(inputs(&g, "pool1/MaxPool"), ["conv1/Relu"]);
        assert_eq!(inputs(&g, "conv2/Conv2D")[0], "pool1/MaxPool");
        assert_eq!(inputs(&g, "flatten/Reshape")[0], "pool2/MaxPool");
        assert_eq!(inputs(&g, "fc1/MatMul"), ["flatten/Reshape", "fc1/weight"]);
        assert_eq!(inputs(&g, "fc1/dropout/mul")[0], "fc1/Relu");
        assert_eq!(inputs(&g, "fc2/MatMul"), ["fc1/dropout/mul", "fc2/weight"]);
        assert_eq!(inputs(&g, "train/GradientDescent").len(), 8);
        let b = Builder { nodes: g.node };
        assert_eq!(b.shape_of("conv2/weight"), [5, 5, 32, 64]);
        assert_eq!(b.shape_of("pool2/MaxPool"), [-1, 7, 7, 64]);
        // A dense architecture draws the dense graph.
        assert_eq!(
            architecture_graph(&Architecture::mlp(&[256, 64])),
            model_graph(784, &[256, 64], 10)
        );
    }

    #[test]
    fn names_of_layers() {
        assert_eq!(layer_names(0)[0].weight, "variables/Weight");
        let names = layer_names(2);
        let weights: Vec<&str> = names.iter().map(|l| l.weight.as_str()).collect();
        assert_eq!(weights, ["layer1/weight", "layer2/weight", "logits/weight"]);
        assert_eq!(names[1].bias, "layer2/bias");
    }
}
